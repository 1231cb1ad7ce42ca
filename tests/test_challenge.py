"""Challenge submissions: predict -> evaluate round trip on a smoke run, and every malformed or
misaligned predictions file rejected with its file and line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from affectlib import challenge, profiles
from affectlib.cli_challenge import evaluate_main
from affectlib.data import generate
from affectlib.labels import AU_COLUMNS

HEADER = "image,valence,arousal,expression,aus"
AUS = "0,1,0,0,0,0,1,0,0,0,1,0"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "affectlib", *args], capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A smoke run of mfar on the embedded set, and its validation predictions (MTL CSV)."""
    tmp = tmp_path_factory.mktemp("challenge")
    root = generate.ensure(profiles.get("smoke"), 0)
    out = tmp / "run"
    r = cli("train", "mfar", "--profile", "smoke", "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    sub = tmp / "predictions.csv"
    r = cli("predict", str(out), "--data", str(root), "--out", str(sub), "--no-progress")
    assert r.returncode == 0, r.stderr
    return root, out, sub


MTL_VALIDATION = "affwild2/annotations/MTL/validation_set_annotations.txt"


def test_train_predict_evaluate_reproduces_the_runs_validation_metrics(run):
    root, out, sub = run
    lines = sub.read_text().splitlines()
    assert lines[0] == HEADER
    truth_lines = (root / MTL_VALIDATION).read_text().splitlines()
    assert len(lines) == len(truth_lines)  # one row per frame
    r = cli("evaluate", str(sub), "--truth", str(root / MTL_VALIDATION), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    scores = json.loads(r.stdout)["scores"]
    reported = json.loads((out / "metrics.json").read_text())
    # expression and AU scores: exactly the run's
    assert scores["expr_f1"] == reported["expr_f1"]
    assert scores["au_f1"] == reported["au_f1"]
    # VA: the files' labels read at float64 differ from the loop's float32 copies in the 8th digit
    assert scores["va"] == pytest.approx(reported["va"], abs=1e-8)
    assert scores["overall"] == pytest.approx(reported["overall"], abs=1e-8)
    # at the loop's label precision the challenge score is the run's, bit for bit
    truth, _ = challenge.truth_table(root / MTL_VALIDATION)
    predictions, tasks = challenge.read_predictions(sub)
    aligned, errors = challenge.align(predictions, tasks, truth.table)
    assert not errors
    exact = challenge.score(aligned, va_label_dtype=np.float32)
    for k in ("expr_f1", "au_f1", "va", "overall"):
        assert exact[k] == reported[k], k


def test_per_task_submission_is_a_folder_of_video_files_scored_on_that_task(run, tmp_path):
    root, out, _ = run
    folder = tmp_path / "expr"
    r = cli("predict", str(out), "--data", str(root), "--format", "abaw-expr", "--task", "expr",
            "--out", str(folder), "--no-progress")  # fmt: skip
    assert r.returncode == 0, r.stderr
    files = sorted(folder.glob("*.txt"))
    assert files and files[0].read_text().splitlines()[0].startswith("Neutral,Anger")
    truth = root / "affwild2/annotations/EXPR_Classification_Challenge/Validation_Set"
    r = cli("evaluate", str(folder), "--truth", str(truth), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(r.stdout)
    assert result["tasks"] == ["expr"] and set(result["scores"]) >= {"expr_f1", "abaw2021_expr"}
    assert "va" not in result["scores"]


# --- malformed and misaligned predictions ---------------------------------------------------------


def _row(image: str, v="0.5", a="-0.25", expr="3", aus=AUS) -> str:
    return f"{image},{v},{a},{expr},{aus}"


@pytest.fixture
def truth(tmp_path) -> Path:
    rows = [_row(f"v1/{i:05d}.jpg", expr=str(i % 8)) for i in range(1, 6)]
    f = tmp_path / "validation_set_annotations.txt"
    f.write_text("\n".join([HEADER, *rows]) + "\n")
    return f


def evaluate(pred_lines: list[str], truth: Path, capsys) -> tuple[int, dict]:
    pred = truth.parent / "pred.csv"
    pred.write_text("\n".join(pred_lines) + "\n")
    code = evaluate_main([str(pred), "--truth", str(truth), "--json"])
    return code, json.loads(capsys.readouterr().out)


def good_predictions() -> list[str]:
    return [HEADER, *[_row(f"v1/{i:05d}.jpg", expr=str(i % 8)) for i in range(1, 6)]]


def test_perfect_predictions_score_one(truth, capsys):
    code, out = evaluate(good_predictions(), truth, capsys)
    assert code == 0 and out["frames"] == 5
    s = out["scores"]
    assert s["expr_accuracy"] == 1.0
    # AU2, AU12, AU25 present everywhere and predicted: F1 1; the other 9 never present, F1 0
    # (zero_division=0); accuracy 1 for all 12 -> (3/12 + 1) / 2
    assert s["emotionet_final"] == pytest.approx((3 / 12 + 1) / 2)
    assert s["au_f1"] == pytest.approx(3 / 12)
    assert s["valence_ccc"] == s["arousal_ccc"] == 1.0  # constant and equal: CCC 1 by definition
    assert s["overall"] == s["expr_f1"] + s["au_f1"] + s["va"]


MALFORMED = [
    ("wrong column count", 3, _row("v1/00002.jpg", aus="0,1"), "fields", "expected 16 fields"),
    ("valence out of range", 3, _row("v1/00002.jpg", v="1.5"), "valence", "outside [-1, 1]"),
    ("the VA marker", 3, _row("v1/00002.jpg", v="-5", a="-5"), "valence", "no no-label marker"),
    ("expression out of range", 3, _row("v1/00002.jpg", expr="8"), "expression", "outside 0..7"),
    ("no expression", 3, _row("v1/00002.jpg", expr="-1"), "expression", "outside 0..7"),
    ("AU not 0/1", 3, _row("v1/00002.jpg", aus="2" + AUS[1:]), "AU1", "not 0 or 1"),
    ("not a number", 3, _row("v1/00002.jpg", a="x"), "arousal", "not a number"),
]


@pytest.mark.parametrize(("case", "line", "text", "field", "reason"), MALFORMED)
def test_a_malformed_row_is_named_by_file_and_line(truth, capsys, case, line, text, field, reason):
    lines = good_predictions()
    lines[line - 1] = text
    code, out = evaluate(lines, truth, capsys)
    assert code == 1 and out["status"] == "invalid" and out["scores"] == {}
    first = out["errors"][0]
    assert (Path(first["file"]).name, first["line"], first["field"]) == ("pred.csv", line, field)
    assert reason in first["reason"]


def test_a_missing_frame_is_named_at_the_truths_line(truth, capsys):
    lines = good_predictions()
    del lines[3]  # v1/00003.jpg, line 4 of the truth
    code, out = evaluate(lines, truth, capsys)
    assert code == 1
    assert [(Path(e["file"]).name, e["line"], e["field"]) for e in out["errors"]] == [
        (truth.name, 4, "missing")
    ]
    assert "v1/00003.jpg" in out["errors"][0]["reason"]


def test_an_extra_frame_is_named_at_the_predictions_line(truth, capsys):
    lines = [*good_predictions(), _row("v9/00001.jpg")]
    code, out = evaluate(lines, truth, capsys)
    assert code == 1
    assert [(e["line"], e["field"]) for e in out["errors"]] == [(7, "extra")]


def test_a_duplicate_frame_names_the_first_line(truth, capsys):
    lines = [*good_predictions(), _row("v1/00002.jpg")]
    code, out = evaluate(lines, truth, capsys)
    assert code == 1 and out["errors"][0]["line"] == 7
    assert "first on line 3" in out["errors"][0]["reason"]


def test_the_text_report_lists_every_problem_as_file_line(truth, capsys):
    lines = good_predictions()
    lines[2] = _row("v1/00002.jpg", v="2")
    del lines[4]
    pred = truth.parent / "pred.csv"
    pred.write_text("\n".join(lines) + "\n")
    assert evaluate_main([str(pred), "--truth", str(truth)]) == 1
    text = capsys.readouterr().out
    assert f"{pred}:3: valence:" in text and f"{truth}:5: missing:" in text


def test_a_wrong_header_or_missing_file_is_unusable(truth, capsys):
    bad = truth.parent / "bad.csv"
    bad.write_text("image,v,a\nv1/00001.jpg,0,0\n")
    assert evaluate_main([str(bad), "--truth", str(truth)]) == 2
    assert evaluate_main([str(truth.parent / "none.csv"), "--truth", str(truth)]) == 2
    assert "header" in capsys.readouterr().err


def test_per_task_predictions_may_not_hold_the_no_label_marker(tmp_path, capsys):
    truth = tmp_path / "truth" / "v1.txt"
    truth.parent.mkdir()
    truth.write_text("Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n0\n1\n-1\n")
    pred = tmp_path / "pred" / "v1.txt"
    pred.parent.mkdir()
    pred.write_text("Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n0\n-1\n2\n")
    assert evaluate_main([str(pred.parent), "--truth", str(truth.parent), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    errors = [(Path(e["file"]).name, e["line"], e["field"]) for e in out["errors"]]
    # line 3's marker, and so frame 2 has no prediction (the truth's line 3)
    assert ("v1.txt", 3, "expression") in errors and ("v1.txt", 3, "missing") in errors


def test_write_mtl_round_trips_float32_values_exactly(tmp_path):
    va = np.array([[0.1, -0.7], [1.0, -1.0]], dtype=np.float32)
    aus = np.zeros((2, len(AU_COLUMNS)), int)
    f = challenge.write_mtl(tmp_path / "p.csv", ["a/00001.jpg", "a/00002.jpg"], [1, 2], aus, va)
    result, tasks = challenge.read_predictions(f)
    assert tasks == challenge.TASKS and not result.errors
    assert (result.table[["valence", "arousal"]].to_numpy() == va.astype(np.float64)).all()


def test_evaluate_against_a_data_set_folder_and_one_split_scores_the_same(run, capsys):
    root, _, sub = run
    file_args = [str(sub), "--truth", str(root / MTL_VALIDATION), "--json"]
    assert evaluate_main(file_args) == 0
    by_file = json.loads(capsys.readouterr().out)["scores"]
    folder = root / "affwild2"
    folder_args = [str(sub), "--truth", str(folder), "--truth-format", "affwild2-mtl",
                   "--split", "validation", "--json"]  # fmt: skip
    assert evaluate_main(folder_args) == 0
    assert json.loads(capsys.readouterr().out)["scores"] == by_file
