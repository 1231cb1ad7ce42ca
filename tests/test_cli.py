"""The command line, run exactly as a user runs it: python -m affectlib ..."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from affectlib import reproduce

HEADER = "image,valence,arousal,expression,aus\n"


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "affectlib", *args], capture_output=True, text=True, cwd=cwd
    )


def test_generate_writes_the_embedded_set_and_audit_accepts_it(tmp_path):
    r = run("generate", "--out", str(tmp_path / "d"), "--profile", "smoke", "--seed", "3")
    assert r.returncode == 0, r.stderr
    mtl = tmp_path / "d" / "affwild2" / "annotations" / "MTL" / "training_set_annotations.txt"
    a = run("audit", str(mtl), "--format", "abaw-mtl", "--json", "--images",
            str(tmp_path / "d" / "affwild2" / "cropped_aligned"))  # fmt: skip
    assert a.returncode == 0, a.stdout + a.stderr
    summary = json.loads(a.stdout)
    lines = mtl.read_text().splitlines()
    assert summary["rows"] == summary["accepted"] == len(lines) - 1
    assert summary["invalid"]["expr"] == sum(ln.split(",")[3] == "-1" for ln in lines[1:])


def test_audit_exit_status_is_1_when_rows_are_rejected_and_names_the_line(tmp_path):
    f = tmp_path / "training_set_annotations.txt"
    good = "v1/00001.jpg,0.1,0.2,3," + ",".join(["0"] * 12) + "\n"
    bad = "v1/00002.jpg,0.1,-5,3," + ",".join(["0"] * 12) + "\n"
    f.write_text(HEADER + good + bad)
    r = run("audit", str(f), "--format", "abaw-mtl")
    assert r.returncode == 1
    assert f"{f}:3:" in r.stdout


def test_audit_exit_status_is_2_for_unusable_input_without_a_traceback(tmp_path):
    r = run("audit", str(tmp_path / "missing.txt"), "--format", "abaw-mtl")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "missing.txt" in r.stderr


def test_unknown_command_is_an_error():
    assert run("fly").returncode == 2


def _notebook(path: Path, sources: list[str]) -> None:
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


def test_a_failing_notebook_stops_the_run_naming_the_notebook_and_the_cell(tmp_path):
    books = tmp_path / "nb"
    books.mkdir()
    _notebook(books / "01_ok.ipynb", ['profile = "cpu"\nout_dir = "results"', "x = 1"])
    _notebook(books / "02_bad.ipynb", ['profile = "cpu"\nout_dir = "results"', "x = 1", "1 / 0"])
    _notebook(
        books / "03_never.ipynb", ['profile = "cpu"\nout_dir = "results"', "open('ran', 'w')"]
    )
    with pytest.raises(reproduce.NotebookFailed) as e:
        reproduce.reproduce("smoke", None, tmp_path / "out", notebooks=books)
    msg = str(e.value)
    assert "02_bad.ipynb" in msg and "cell" in msg and "ZeroDivisionError" in msg
    assert (tmp_path / "out" / "01_ok" / "01_ok.ipynb").exists()
    assert (tmp_path / "out" / "02_bad" / "02_bad.ipynb").exists()  # kept, with the traceback
    assert not (books / "ran").exists()


def test_only_selects_notebooks_and_rejects_an_unknown_one(tmp_path):
    books = tmp_path / "nb"
    books.mkdir()
    for n in ("01_a", "02_b", "03_c"):
        _notebook(books / f"{n}.ipynb", ['profile = "cpu"'])
    assert [p.stem for p in reproduce.find_notebooks(books, ["03", "01"])] == ["01_a", "03_c"]
    with pytest.raises(ValueError, match="07"):
        reproduce.find_notebooks(books, ["07"])


def test_parameters_reach_the_notebooks_that_declare_them_and_unknown_ones_are_refused(tmp_path):
    books = tmp_path / "nb"
    books.mkdir()
    _notebook(
        books / "01_p.ipynb",
        [
            'profile = "cpu"\nout_dir = "results"\ndata_root = ""\nepochs = 1',
            "open('seen.txt', 'w').write(f'{profile} {data_root} {epochs + 1}')",
        ],
    )
    reproduce.reproduce(
        "smoke",
        None,
        tmp_path / "out",
        notebooks=books,
        parameters={"data_root": "/d", "epochs": 4},
    )
    assert (books / "seen.txt").read_text() == "smoke /d 5"
    with pytest.raises(ValueError, match="formt"):
        reproduce.reproduce(
            "smoke", None, tmp_path / "out", notebooks=books, parameters={"formt": 1}
        )
    assert reproduce.parse_parameter("data_root=/data/abaw") == ("data_root", "/data/abaw")
    assert reproduce.parse_parameter("seeds=[0, 1]") == ("seeds", [0, 1])
    with pytest.raises(ValueError):
        reproduce.parse_parameter("no_equals_sign")


def test_reproduce_hides_the_nbval_overrides_from_its_kernels_and_restores_them(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("AFFECTLIB_PROFILE", "smoke")
    books = tmp_path / "nb"
    books.mkdir()
    _notebook(
        books / "01_env.ipynb",
        [
            'profile = "cpu"\nout_dir = "results"',
            "import os\nopen('env.txt', 'w').write(str(os.environ.get('AFFECTLIB_PROFILE')))",
        ],
    )
    reproduce.reproduce("cpu", None, tmp_path / "out", notebooks=books)
    assert (books / "env.txt").read_text() == "None"
    import os

    assert os.environ["AFFECTLIB_PROFILE"] == "smoke"


def test_reproduce_kernels_run_quiet_with_out_dir_relative_and_no_absolute_paths(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    books = tmp_path / "nb"
    books.mkdir()
    _notebook(
        books / "01_quiet.ipynb",
        [
            'profile = "cpu"\nout_dir = "results"',
            "import os\nopen('env.txt', 'w').write(f\"{os.environ.get('TQDM_DISABLE')} {out_dir}\")",
            "import sys\nopen('path.txt', 'w').write(sys.path[0])",
            "print(os.path.abspath(out_dir))",
        ],
    )
    monkeypatch.setattr(reproduce, "REPO", tmp_path)
    target = reproduce.reproduce("cpu", None, tmp_path / "out", notebooks=books)[0]
    # no progress bars in the kernel; out_dir relative to the notebook's folder
    assert (books / "env.txt").read_text() == "1 ../out"
    assert (books / "path.txt").read_text() == str(tmp_path)  # the checkout first on sys.path
    assert "TQDM_DISABLE" not in __import__("os").environ  # restored afterwards
    text = target.read_text()
    assert str(tmp_path) not in text and '"out\\n"' in text


def test_scrub_paths_names_files_relative_to_the_checkout(tmp_path):
    nb = tmp_path / "x.ipynb"
    nb.write_text('{"a": "/repo/results/03/t.csv", "b": "/repo", "c": "/elsewhere/y"}')
    reproduce.scrub_paths(nb, Path("/repo"))
    assert nb.read_text() == '{"a": "results/03/t.csv", "b": ".", "c": "/elsewhere/y"}'


def test_progress_bars_follow_the_caller_unless_the_environment_turns_them_off(monkeypatch):
    from affectlib.progress import bars_on

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert bars_on(True) and not bars_on(False)
    for off in ("1", "true", "True"):
        monkeypatch.setenv("TQDM_DISABLE", off)
        assert not bars_on(True)
    monkeypatch.setenv("TQDM_DISABLE", "0")
    assert bars_on(True)
