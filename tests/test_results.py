import json
import subprocess

import numpy as np
import pandas as pd
import pytest

from affectlib import distributed, files, profiles, results


def test_table_is_written_as_csv_and_markdown_with_provenance(tmp_path):
    w = results.ResultsWriter(tmp_path, "01_x", profile=profiles.get("smoke"), seeds=[0, 1])
    df = pd.DataFrame({"method": ["a", "b"], "f1": [0.5, 0.25]})
    w.table(df, "table_f1", caption="F1 per method")
    assert pd.read_csv(tmp_path / "01_x" / "table_f1.csv").equals(df)
    md = (tmp_path / "01_x" / "table_f1.md").read_text()
    assert md.startswith("F1 per method\n\n| method | f1 |")
    assert "| b | 0.2500 |" in md
    prov = json.loads((tmp_path / "01_x" / "provenance.json").read_text())
    assert prov["profile"]["name"] == "smoke" and prov["seeds"] == [0, 1]
    assert prov["artifacts"] == ["table_f1.csv", "table_f1.md"]
    for key in ("commit", "device", "versions", "wall_time_s", "data_fingerprint"):
        assert key in prov
    assert prov["versions"]["pandas"] == pd.__version__


def test_a_wide_tables_markdown_shows_the_chosen_columns_and_the_csv_keeps_every_one(tmp_path):
    w = results.ResultsWriter(tmp_path, "01_x", profile=profiles.get("smoke"), seeds=[0])
    df = pd.DataFrame({"epoch": [1, 2], "loss": [0.5, 0.25], "a": [1.5, 2.5], "b": [0.1, 0.2]})
    w.table(df, "table_h", caption="History.", columns=["epoch", "loss"])
    assert pd.read_csv(tmp_path / "01_x" / "table_h.csv").equals(df)
    md = (tmp_path / "01_x" / "table_h.md").read_text()
    assert md.startswith("History. 2 more columns in table_h.csv.\n\n| epoch | loss |\n")
    assert "| 2 | 0.2500 |" in md
    with pytest.raises(KeyError, match=r"table_h: no column\(s\) \['c'\]"):
        w.table(df, "table_h", columns=["epoch", "c"])


def test_atomic_write_leaves_no_temporary_file_and_replaces_content(tmp_path):
    p = tmp_path / "a.txt"
    files.atomic_write_text(p, "one")
    files.atomic_write_text(p, "two")
    assert p.read_text() == "two"
    assert [f.name for f in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path, monkeypatch):
    p = tmp_path / "a.txt"
    files.atomic_write_text(p, "old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", boom)
    with pytest.raises(OSError):
        files.atomic_write_text(p, "new")
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["a.txt"]


def test_git_commit_outside_a_checkout_is_unversioned(tmp_path):
    assert results.git_commit(tmp_path) == "unversioned"


def test_beside_paper_puts_the_published_value_and_delta_next_to_ours():
    ours = pd.DataFrame({"method": ["MFAR", "SS-MFAR", "Ours-only"], "overall": [0.9, 1.2, 1.0]})
    out = results.beside_paper(ours, "ssmfar_table1", on="method", metrics=["overall"])
    assert list(out.columns) == ["method", "overall", "paper: overall", "delta: overall"]
    np.testing.assert_allclose(out["paper: overall"][:2], [1.043, 1.119])
    np.testing.assert_allclose(out["delta: overall"][:2], [0.9 - 1.043, 1.2 - 1.119])
    assert np.isnan(out["paper: overall"][2])


def test_beside_paper_renames_our_keys_to_the_papers_spelling():
    ours = pd.DataFrame({"method": ["mfar"], "exp_f1": [0.3]})
    out = results.beside_paper(
        ours, "ssmfar_table1", on="method", metrics=["exp_f1"], rename={"mfar": "MFAR"}
    )
    assert out["paper: exp_f1"].iloc[0] == pytest.approx(0.222)


def test_unknown_paper_table_lists_the_known_ones():
    with pytest.raises(FileNotFoundError, match="ssmfar_table1"):
        files.paper_table("nope")


def test_fingerprint_changes_with_content_not_with_index():
    a = pd.DataFrame({"x": [1, 2]})
    b = pd.DataFrame({"x": [1, 2]}, index=[5, 6])
    c = pd.DataFrame({"x": [1, 3]})
    assert files.fingerprint_table(a) == files.fingerprint_table(b)
    assert files.fingerprint_table(a) != files.fingerprint_table(c)


def test_git_commit_is_dirty_for_a_changed_source_file_but_not_for_rewritten_results(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "a@b.c")
    git("config", "user.name", "a")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "t.csv").write_text("a\n1\n")
    (tmp_path / "pkg.py").write_text("x = 1\n")
    git("add", ".")
    git("commit", "-qm", "c")
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True
    ).stdout.strip()
    (tmp_path / "results" / "t.csv").write_text("a\n2\n")
    assert results.git_commit(tmp_path / "results") == sha
    (tmp_path / "pkg.py").write_text("x = 2\n")
    assert results.git_commit(tmp_path / "results") == sha + "+dirty"


def test_markdown_shows_an_interval_as_one_cell_and_counts_without_decimals():
    df = pd.DataFrame(
        {
            "row": ["MFAR", "SS-MFAR"],
            "n": [3, 3],
            "epochs": [10.0, np.nan],  # float only because of the gap
            "f1": [0.2023, 0.5],
            "f1 lo": [0.1432, np.nan],
            "f1 hi": [0.2613, np.nan],
            "au_f1": [0.0, 1.0],  # a score of exactly 0 / 1 keeps its decimals
        }
    )
    md = results.to_markdown(df, ".3f").splitlines()
    assert md[0] == "| row | n | epochs | f1 | au_f1 |"
    assert md[2] == "| MFAR | 3 | 10 | 0.202 [0.143, 0.261] | 0.000 |"
    # no interval: the mean alone; a gap stays empty
    assert md[3] == "| SS-MFAR | 3 |  | 0.500 | 1.000 |"


def test_csv_keeps_the_interval_columns_the_markdown_folds(tmp_path):
    w = results.ResultsWriter(tmp_path, "nb")
    df = pd.DataFrame({"m": [0.5], "m lo": [0.4], "m hi": [0.6]})
    w.table(df, "t")
    assert list(pd.read_csv(tmp_path / "nb" / "t.csv").columns) == ["m", "m lo", "m hi"]
    assert "| 0.5000 [0.4000, 0.6000] |" in (tmp_path / "nb" / "t.md").read_text()


def test_figures_get_their_caption_on_one_page(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = results.ResultsWriter(tmp_path, "nb")
    for name, caption in (("fig_a", "First, with\n  a line break."), ("fig_b", "")):
        fig, ax = plt.subplots()
        ax.plot([0, 1])
        w.figure(fig, name, caption=caption)
        plt.close(fig)
    page = tmp_path / "nb" / results.FIGURE_PAGE
    assert results.read_figure_page(page) == {
        "fig_a.png": "First, with a line break.",
        "fig_b.png": "(no caption)",
    }
    assert "![fig_a.png](fig_a.png)" in page.read_text()
    prov = json.loads((tmp_path / "nb" / "provenance.json").read_text())
    assert {"fig_a.png", "fig_b.png", results.FIGURE_PAGE} <= set(prov["artifacts"])


def test_a_notebooks_precision_parameter_overrides_the_profiles(monkeypatch, tmp_path):
    from affectlib import notebook

    data = str(tmp_path)  # a data root given: nothing is generated
    assert notebook.setup("smoke", 0, data).profile.precision == "auto"
    assert notebook.setup("smoke", 0, data, precision="fp32").profile.precision == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        notebook.setup("smoke", 0, data, precision="half")


def test_notebook_runner_takes_the_profiles_parallel_runs_unless_given(monkeypatch):
    from affectlib import notebook

    monkeypatch.setattr(distributed, "cpu_runs_bf16", lambda: False)
    cpu, smoke = profiles.get("cpu"), profiles.get("smoke")
    assert cpu.parallel_runs == 0 and cpu.runs_at_once == 2 and smoke.runs_at_once == 1
    # in bf16 one run takes both cores; a value given wins
    assert profiles.get("cpu", precision="bf16").runs_at_once == 1
    assert profiles.get("cpu", precision="bf16", parallel_runs=2).runs_at_once == 2
    monkeypatch.setattr(distributed, "cpu_runs_bf16", lambda: True)
    assert cpu.runs_at_once == 1 and profiles.get("cpu", precision="fp32").runs_at_once == 2
    monkeypatch.setattr(distributed, "cpu_runs_bf16", lambda: False)
    assert notebook.runner("", 0, cpu) == {"executor": "pool", "max_parallel": 2}
    assert notebook.runner("", 0, smoke) == {"executor": "local", "max_parallel": 1}
    assert notebook.runner("local", 0, cpu) == {"executor": "local", "max_parallel": 2}
    assert notebook.runner("", 1, cpu) == {"executor": "local", "max_parallel": 1}
    assert notebook.runner("submitit", 4, smoke) == {"executor": "submitit", "max_parallel": 4}
    with pytest.raises(ValueError, match="max_parallel must be >= 1"):
        notebook.runner("", -1, smoke)


def test_notebook_finish_writes_the_one_provenance_schema(tmp_path, capsys, monkeypatch):
    from affectlib import notebook

    monkeypatch.delenv(profiles.RESULTS_ENV, raising=False)  # make test's scratch folder

    run = notebook.Setup(profiles.get("smoke"), str(tmp_path / "data"), "/data/abaw")
    out = notebook.writer(
        "09_x",
        run,
        seeds=[0, 1],
        data=[pd.DataFrame({"a": [1]}), pd.DataFrame({"a": [2]})],
        out_dir=str(tmp_path),
        settings={"epochs": 4},
    )
    notebook.finish(out, settings={"runs": 6}, timings={"training": 12.345})
    prov = json.loads((tmp_path / "09_x" / "provenance.json").read_text())
    assert list(prov) == list(notebook.PROVENANCE_KEYS)
    assert prov["settings"] == {"epochs": 4, "runs": 6}
    assert prov["timings"] == {"training": 12.3}
    assert prov["data_root"] == "/data/abaw" and prov["seeds"] == [0, 1]
    assert prov["data_fingerprint"] == files.fingerprint_table(pd.DataFrame({"a": [1, 2]}))
    assert "wrote" in capsys.readouterr().out
