"""Tests for affectlib.data.audit: counts, co-missingness, exit statuses, the JSON report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from affectlib.data.audit import main, summarize
from affectlib.data.formats import load
from affectlib.labels import EMOTIONET_AUS

REPO = Path(__file__).resolve().parents[1]
HEADER = "image,valence,arousal,expression,aus"
AUS_ON = "1,0,0,1,0,0,1,0,0,0,0,0"
AUS_NONE = ",".join(["-1"] * 12)

# (line, labels present) of a hand-made MTL file; two further rows (lines 7, 8) are bad
ROWS = [
    "v/00001.jpg,0.2,0.3,4," + AUS_ON,  # expr + au + va
    "v/00002.jpg,-5,-5,2," + AUS_NONE,  # expr only
    "v/00003.jpg,-5,-5,-1," + AUS_ON,  # au only
    "v/00004.jpg,0.1,-0.9,-1," + AUS_NONE,  # va only
    "v/00005.jpg,-5,-5,-1," + AUS_NONE,  # none
]
BAD = [
    "v/00006.jpg,3,0.3,4," + AUS_ON,  # line 7: valence out of range
    "v/00007.jpg,0.2,0.3,4,1,-1" + AUS_ON[3:],  # line 8: AUs partly -1
]


def write_mtl(tmp_path: Path, rows: list[str], name: str = "training_set_annotations.txt") -> Path:
    file = tmp_path / name
    file.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return file


def run_json(argv: list[str], capsys) -> tuple[int, dict]:
    status = main([*argv, "--json"])
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # exactly one JSON object
    return status, json.loads(out)


def test_json_counts_equal_the_counts_in_the_file(tmp_path, capsys):
    file = write_mtl(tmp_path, ROWS + BAD)
    status, report = run_json([str(file), "--format", "abaw-mtl"], capsys)
    assert status == 1
    assert {"rows", "accepted", "rejected", "invalid", "errors"} <= set(report)
    assert (report["rows"], report["accepted"], report["rejected"]) == (7, 5, 2)
    assert report["valid"] == {"expr": 2, "au": 2, "va": 2}
    assert report["invalid"] == {"expr": 3, "au": 3, "va": 3}
    assert report["presence"] == {
        "expr+au+va": 1,
        "expr+au": 0,
        "expr+va": 0,
        "expr": 1,
        "au+va": 0,
        "au": 1,
        "va": 1,
        "none": 1,
    }
    assert report["none"] == 1
    assert report["splits"] == {"train": 5}
    assert report["errors"] == [
        {"file": str(file), "line": 7, "field": "valence", "reason": report["errors"][0]["reason"]},
        {"file": str(file), "line": 8, "field": "AU2", "reason": report["errors"][1]["reason"]},
    ]
    assert report["rejected_by_field"] == {"valence": 1, "AU2": 1}


def test_clean_file_exits_0_and_prints_the_counts(tmp_path, capsys):
    file = write_mtl(tmp_path, ROWS)
    assert main([str(file), "--format", "abaw-mtl"]) == 0
    out = capsys.readouterr().out
    assert "rows read          5" in out
    assert "rejected           0" in out
    assert f"{file}:" not in out  # no rejected-row lines


def test_rejected_rows_exit_1_and_are_listed_as_file_line_field_reason(tmp_path, capsys):
    file = write_mtl(tmp_path, ROWS + BAD)
    assert main([str(file), "--format", "abaw-mtl"]) == 1
    lines = capsys.readouterr().out.splitlines()
    listed = [line for line in lines if line.startswith(f"{file}:")]
    assert [line.split(": ")[0:2] for line in listed] == [
        [f"{file}:7", "valence"],
        [f"{file}:8", "AU2"],
    ]


def test_strict_stops_at_the_first_bad_row_with_exit_1(tmp_path, capsys):
    file = write_mtl(tmp_path, ROWS + BAD)
    assert main([str(file), "--format", "abaw-mtl", "--strict"]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    listed = [line for line in out if line.startswith(f"{file}:")]
    assert len(listed) == 1 and listed[0].startswith(f"{file}:7: valence: ")
    status, report = run_json([str(file), "--format", "abaw-mtl", "--strict"], capsys)
    assert status == 1 and [e["line"] for e in report["errors"]] == [7]
    # the counts cover the rows up to the stop: lines 2..6 accepted, line 7 rejected
    assert (report["rows"], report["accepted"], report["rejected"]) == (6, 5, 1)
    assert set(report["invalid"]) == {"va", "au", "expr"}


def test_unusable_input_json_has_the_summary_keys(tmp_path, capsys):
    status, report = run_json([str(tmp_path / "nope.txt"), "--format", "abaw-mtl"], capsys)
    assert status == 2
    assert (report["rows"], report["accepted"], report["rejected"]) == (0, 0, 0)
    assert report["invalid"] == {"va": 0, "au": 0, "expr": 0} and report["errors"] == []


@pytest.mark.parametrize("case", ["missing file", "wrong header", "empty file", "bad argument"])
def test_unusable_input_exits_2_with_the_message_on_stderr(tmp_path, capsys, case):
    path = tmp_path / "train.txt"
    argv = [str(path), "--format", "abaw-mtl"]
    if case == "wrong header":
        path.write_text("image,valence\nv/00001.jpg,0\n", encoding="utf-8")
    elif case == "empty file":
        path.write_text("", encoding="utf-8")
    elif case == "bad argument":
        argv = [str(path), "--format", "abaw"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.strip()
    assert "Traceback" not in captured.err
    assert captured.out == ""


def test_unusable_input_in_json_mode_still_prints_one_json_object(tmp_path, capsys):
    path = tmp_path / "train.txt"
    path.write_text("image,valence\n", encoding="utf-8")
    status, report = run_json([str(path), "--format", "abaw-mtl"], capsys)
    assert status == 2
    assert report["status"] == "unusable"
    assert [(e["line"], e["field"]) for e in report["errors"]] == [(1, "header")]


def test_split_option_reaches_the_loader(tmp_path, capsys):
    path = write_mtl(tmp_path, ROWS, name="annotations.txt")
    status, report = run_json([str(path), "--format", "abaw-mtl", "--split", "test"], capsys)
    assert status == 0 and report["splits"] == {"test": 5}


def test_images_option_rejects_rows_whose_image_is_missing(tmp_path, capsys):
    file = write_mtl(tmp_path, ROWS[:2])
    (tmp_path / "img" / "v").mkdir(parents=True)
    status, report = run_json(
        [str(file), "--format", "abaw-mtl", "--images", str(tmp_path / "img")], capsys
    )
    assert status == 1
    assert [(e["line"], e["field"]) for e in report["errors"]] == [(2, "image"), (3, "image")]
    assert report["accepted"] == 0


def test_summarize_counts_emotionet_aus_present_when_any_is_coded(tmp_path):
    n = len(EMOTIONET_AUS)
    rows = [
        ["https://x.org/a.jpg", ""] + ["999"] * (n - 1) + ["1"],  # one AU coded
        ["https://x.org/b.jpg", ""] + ["999"] * n,  # none coded
    ]
    file = tmp_path / "emotionet_train.txt"
    file.write_text("\n".join("\t".join(r) for r in rows) + "\n", encoding="utf-8")
    summary = summarize(load(file, "emotionet"))
    assert summary["valid"] == {"expr": 0, "au": 1, "va": 0}
    assert summary["presence"]["au"] == 1 and summary["none"] == 1


def test_summarize_presence_adds_up_to_the_accepted_rows(tmp_path):
    summary = summarize(load(write_mtl(tmp_path, ROWS + BAD), "abaw-mtl"))
    assert sum(summary["presence"].values()) == summary["accepted"] == 5
    assert summary["rows"] == summary["accepted"] + summary["rejected"]


@pytest.mark.parametrize(("rows", "expected"), [(ROWS, 0), (ROWS + BAD, 1), (None, 2)])
def test_command_line_exit_status_without_traceback(tmp_path, rows, expected):
    path = write_mtl(tmp_path, rows) if rows is not None else tmp_path / "absent_train.txt"
    code = "import sys; from affectlib.data.audit import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path), "--format", "abaw-mtl"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == expected
    assert "Traceback" not in proc.stderr
