"""results/README.md, the index written from the results folders (affectlib.results_index)."""

import json
import subprocess

import pandas as pd

from affectlib import results, results_index


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def _repo(tmp_path):
    repo = tmp_path / "repo"
    (repo / "affectlib").mkdir(parents=True)
    (repo / "affectlib" / "x.py").write_text("A = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.email=a@b", "-c", "user.name=a", "add", ".")
    _git(repo, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "one")
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    return repo, sha


def _results(repo, sha):
    out = repo / "results"
    w = results.ResultsWriter(out, "03_mfar_ssmfar")
    df = pd.DataFrame(
        {"row": ["MFAR"], "overall": [0.85], "overall lo": [0.75], "overall hi": [0.95]}
    )
    w.table(df, "table1_ssmfar", caption="Table 1 on the embedded data.")
    w.table(pd.DataFrame({"a": [1]}), "table_extra", caption="An extra table.")
    w.text("- SS-MFAR beats MFAR: no clear difference.\n", "claims.md")
    prov = json.loads((out / "03_mfar_ssmfar" / "provenance.json").read_text())
    prov.update(commit=sha, profile={"name": "cpu"})
    (out / "03_mfar_ssmfar" / "provenance.json").write_text(json.dumps(prov))
    return out


def test_index_shows_status_headline_table_and_other_tables(tmp_path):
    repo, sha = _repo(tmp_path)
    out = _results(repo, sha)
    page = results_index.write_index(out, repo).read_text()
    # a notebook with results shows its status; one without says so
    assert (
        "| SS-MFAR | Table 1 (eight methods, s-Aff-Wild2) | regenerated | 03_mfar_ssmfar |" in page
    )
    assert "| Face pretraining | Table 3 (AffectNet, 100/10/2% labels) | not yet run |" in page
    assert f"Ran at commit `{sha[:12]}` on the `cpu` profile" in page
    # the headline table, folded as the notebook wrote it, with its caption
    assert "Table 1 on the embedded data." in page
    assert "| MFAR | 0.8500 [0.7500, 0.9500] |" in page
    assert "- [table_extra.md](03_mfar_ssmfar/table_extra.md): An extra table." in page
    assert "Warning" not in page  # the code has not changed since the run


def test_index_warns_when_the_code_changed_after_the_run(tmp_path):
    repo, sha = _repo(tmp_path)
    out = _results(repo, sha)
    (repo / "affectlib" / "x.py").write_text("A = 2\n")
    _git(repo, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qam", "two")
    page = results_index.render_index(out, repo)
    assert "changed after that commit" in page
    assert results_index.code_changed_since(sha, ["affectlib"], repo) is True
    assert results_index.code_changed_since("0" * 40, ["affectlib"], repo) is None


def test_every_paper_table_names_a_known_status_and_a_reason_when_not_whole():
    for t in results_index.PAPER_TABLES:
        assert t.paper in results_index.PAPERS
        assert t.status in results_index.STATUSES
        assert (t.notebook is None) == (t.status == "not reproduced")
        if t.status != "regenerated":
            assert t.note, t
    rows = dict((p, s) for p, s, _ in results_index.summary_rows())
    assert rows["SS-MFAR"] == "partial"  # Table 2 is not reproduced


def test_the_readme_status_table_is_written_between_its_markers_only(tmp_path):
    repo, sha = _repo(tmp_path)
    out = _results(repo, sha)
    start, end = results_index.STATUS_START, results_index.STATUS_END
    (repo / "README.md").write_text(f"# top\n\n{start}\nold\n{end}\n\nrest\n")
    results_index.write_index(out, repo)
    text = (repo / "README.md").read_text()
    assert text.startswith(f"# top\n\n{start}\n| paper | status | tables |\n")
    assert "| SS-MFAR | partial | Table 1 (regenerated), Table 2 (not reproduced) |" in text
    assert text.endswith(f"{end}\n\nrest\n") and "old" not in text


def test_a_change_to_another_notebooks_study_module_or_to_the_index_leaves_a_folder_current(
    tmp_path,
):
    repo, _ = _repo(tmp_path)
    studies = repo / "affectlib" / "studies"
    studies.mkdir()
    (studies / "__init__.py").write_text("")
    (studies / "mine.py").write_text("from affectlib.studies import (\n    helper,\n)\n")
    (studies / "helper.py").write_text("B = 1\n")
    (studies / "theirs.py").write_text("C = 1\n")
    (repo / "affectlib" / "results_index.py").write_text("D = 1\n")
    cell = {"cell_type": "code", "source": ["from affectlib.studies import mine as m\n"]}
    (repo / "notebooks").mkdir()
    (repo / "notebooks" / "03_mfar_ssmfar.ipynb").write_text(json.dumps({"cells": [cell]}))
    _git(repo, "-c", "user.email=a@b", "-c", "user.name=a", "add", ".")
    _git(repo, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "studies")
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    out = _results(repo, sha)
    assert results_index.studies_used("03_mfar_ssmfar", repo) == {"mine", "helper"}

    def edit_and_check(path: str) -> bool:
        (repo / path).write_text((repo / path).read_text() + "E = 1\n")
        _git(repo, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qam", path)
        return "changed after that commit" in results_index.render_index(out, repo)

    assert not edit_and_check("affectlib/studies/theirs.py")  # another notebook's module
    assert not edit_and_check("affectlib/results_index.py")  # reads results only
    assert edit_and_check("affectlib/studies/helper.py")  # imported by the notebook's module


def test_a_notebook_changes_its_code_when_a_cells_source_changes_not_its_stored_outputs(tmp_path):
    repo, _ = _repo(tmp_path)
    nb = repo / "notebooks" / "03_x.ipynb"
    nb.parent.mkdir()
    cell = {"cell_type": "code", "source": ["x = 1\n"], "outputs": [], "metadata": {}}
    nb.write_text(json.dumps({"cells": [cell]}))
    commit = ["-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qam"]
    _git(repo, "add", ".")
    _git(repo, *commit, "nb")
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    paths = ["affectlib", "notebooks/03_x.ipynb"]
    nb.write_text(json.dumps({"cells": [{**cell, "outputs": [{"text": "refreshed"}]}]}))
    _git(repo, *commit, "outputs")
    assert results_index.code_changed_since(sha, paths, repo) is False
    nb.write_text(json.dumps({"cells": [{**cell, "source": ["x = 2\n"]}]}))
    _git(repo, *commit, "source")
    assert results_index.code_changed_since(sha, paths, repo) is True
