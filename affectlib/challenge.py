"""ABAW challenge submissions: writing a run's predictions, reading a predictions file with total
validation, aligning it with the ground truth and computing the challenge metrics.

Submission formats (the ABAW 3 / 4 challenges'):

- multi-task (MTL): one CSV, header ``image,valence,arousal,expression,aus`` (the 12 AUs may also be
  named one by one, ``...,expression,AU1,...,AU26``), one row per frame:
  ``VIDEO/00001.jpg,0.31,-0.2,4,0,1,0,0,0,0,1,0,0,0,1,0``; valence and arousal in [-1, 1], the
  expression an index 0..7 (``labels.EXPRESSIONS``), each AU 0 or 1. A prediction has no
  "no label" marker: -5 or -1 are out of range here.
- per task (the EXPR / AU / VA challenges): a folder with one ``VIDEO.txt`` per video, the task's
  header (``Neutral,...,Other`` / ``AU1,...,AU26`` / ``valence,arousal``) and line ``i + 1`` holding
  frame ``i``, exactly the layout of the per-task annotation files (:mod:`affectlib.data.formats`,
  ``abaw-expr`` / ``abaw-au`` / ``abaw-va``), which read it; markers are then refused.

:func:`read_predictions` reads either; every row is accepted or rejected with ``FILE:LINE: field:
reason`` (wrong column count, non-numbers, values out of range, a duplicate image), as the
annotation loaders do. :func:`align` matches the predictions to the ground-truth rows by image
path: a truth frame without a prediction is an error at the truth's ``FILE:LINE`` (field
``missing``), a prediction of a frame the truth does not hold an error at the prediction's
(field ``extra``). :func:`score` then computes, each task over its labelled frames:

- ``expr_f1`` (P_Exp, macro F1 over 8 classes), ``au_f1`` (P_AU, mean F1 over the 12 AUs), ``va``
  (P_VA, mean CCC of valence and arousal) and ``overall`` = P_MTL = their sum (SS-MFAR Eq. 10,
  :func:`affectlib.metrics.p_mtl`), when the predictions hold all three tasks;
- per task: ``expr_accuracy``; ``abaw2021_expr`` (0.67 F1 + 0.33 accuracy over the 7 basic
  classes, :func:`affectlib.metrics.abaw2021_expr_score`, on the frames whose label is one of
  the 7); ``valence_ccc`` / ``arousal_ccc``; ``per_au_f1``; ``emotionet_final`` ((mean F1 + mean
  accuracy) / 2 over the AUs, the EmotioNet challenge's final score,
  :func:`affectlib.metrics.emotionet_score`);
- ``n_expr`` / ``n_au`` / ``n_va``: the frames each task was scored on.

A run's AU decisions: :func:`affectlib.metrics.score`, with which every run of
:func:`affectlib.train.fit` on :func:`affectlib.data.assembly.build_data` scores and selects its
epochs, decides an AU present when its sigmoid exceeds :data:`RUN_AU_THRESHOLD` (0.5); the
submission uses the same decision, so that it scores what the run reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from affectlib import metrics
from affectlib.data import formats, layout_readers, layouts
from affectlib.data.parsing import (
    Claim,
    LoadResult,
    Options,
    Reject,
    Row,
    RowError,
    UnusableInputError,
    check_header,
    csv_fields,
    expect_fields,
    image_path,
    parse_float,
    parse_int,
    read_lines,
)
from affectlib.files import atomic_write_text
from affectlib.labels import AU_COLUMNS, AU_MISSING, EXPR_MISSING, EXPRESSIONS, N_AU, VA_MISSING

__all__ = [
    "MTL_HEADER",
    "RUN_AU_THRESHOLD",
    "TASKS",
    "Aligned",
    "align",
    "read_predictions",
    "score",
    "write_mtl",
    "write_task",
]

MTL_HEADER = ("image", "valence", "arousal", "expression", "aus")
RUN_AU_THRESHOLD = 0.5  # metrics.score's decision: sigmoid > 0.5
TASKS = ("expr", "au", "va")
_TASK_FORMAT = {"expr": "abaw-expr", "au": "abaw-au", "va": "abaw-va"}
_TASK_HEADER = {
    "expr": ",".join(EXPRESSIONS),
    "au": ",".join(AU_COLUMNS),
    "va": "valence,arousal",
}
_MTL_HEADERS = (MTL_HEADER, ("image", "valence", "arousal", "expression", *AU_COLUMNS))


def _number(x: float) -> str:
    # repr: the shortest text that reads back as the same float (float32 values survive exactly)
    return repr(float(x))


# --- writing -------------------------------------------------------------------------------------


def write_mtl(
    path: str | Path,
    images: list[str],
    expr: np.ndarray,
    aus: np.ndarray,
    va: np.ndarray,
) -> Path:
    """The MTL submission: ``images`` (N,), ``expr`` (N,) class indices, ``aus`` (N, 12) 0/1,
    ``va`` (N, 2) in [-1, 1]; rows in the given order."""
    lines = [",".join(MTL_HEADER)]
    for i, image in enumerate(images):
        au = ",".join(str(int(a)) for a in aus[i])
        lines.append(f"{image},{_number(va[i, 0])},{_number(va[i, 1])},{int(expr[i])},{au}")
    return atomic_write_text(path, "\n".join(lines) + "\n")


def write_task(
    folder: str | Path,
    task: str,
    table: pd.DataFrame,
    expr: np.ndarray,
    aus: np.ndarray,
    va: np.ndarray,
) -> list[Path]:
    """The per-task submission of ``task``: ``folder/VIDEO.txt`` per video of ``table`` (its
    ``video`` and ``frame`` columns), line ``i + 1`` frame ``i``. Every frame 1..last of a video
    must have a row: a file line cannot be left out, and no value is made up for it."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    values = {
        "expr": np.asarray(expr).reshape(-1, 1),
        "au": np.asarray(aus),
        "va": np.asarray(va),
    }[task]
    out = []
    frames = pd.DataFrame({"video": table["video"].to_numpy(), "frame": table["frame"].to_numpy()})
    for video, g in frames.groupby("video", sort=True):
        if not video:
            raise ValueError("per-task submissions are per video: the table has still images")
        order = g.sort_values("frame")
        expected = np.arange(1, len(order) + 1)
        if not np.array_equal(order["frame"].to_numpy(), expected):
            gap = int(np.setdiff1d(expected, order["frame"].to_numpy())[0])
            raise ValueError(
                f"video {video}: frame {gap} has no image, so its line of {video}.txt has no "
                "prediction"
            )
        rows = values[order.index.to_numpy()]
        text = [_TASK_HEADER[task]]
        text += [",".join(_number(x) if task == "va" else str(int(x)) for x in r) for r in rows]
        out.append(atomic_write_text(Path(folder) / f"{video}.txt", "\n".join(text) + "\n"))
    return out


# --- reading -------------------------------------------------------------------------------------

_NO_AUS = (AU_MISSING,) * N_AU


def _prediction_va(text: str, name: str) -> float:
    x = parse_float(text, name)
    if not -1.0 <= x <= 1.0:
        raise Reject(name, f"{x:g} outside [-1, 1] (a prediction has no no-label marker)")
    return x


def _mtl_row(line: str, claim: Claim) -> Row:
    fields = csv_fields(line)
    expect_fields(fields, 4 + N_AU)
    path = image_path(fields[0], "image")
    claim(path)
    valence = _prediction_va(fields[1], "valence")
    arousal = _prediction_va(fields[2], "arousal")
    expr = parse_int(fields[3], "expression")
    if not 0 <= expr < len(EXPRESSIONS):
        raise Reject("expression", f"expression {expr} outside 0..{len(EXPRESSIONS) - 1}")
    aus = []
    for text, name in zip(fields[4:], AU_COLUMNS, strict=True):
        a = parse_int(text, name)
        if a not in (0, 1):
            raise Reject(name, f"AU decision {a} not 0 or 1")
        aus.append(a)
    return Row(path, "", -1, expr, tuple(aus), valence, arousal, "predicted")


def _task_of_folder(folder: Path) -> str:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".txt" and p.is_file())
    if not files:
        raise UnusableInputError(f"{folder}: folder holds no .txt prediction files")
    header = read_lines(files[0])[0]
    for task, expected in _TASK_HEADER.items():
        if header.replace(" ", "").lower() == expected.lower():
            return task
    raise UnusableInputError(
        f"{files[0]}:1: header: not a per-task header ({' | '.join(_TASK_HEADER.values())})"
    )


def read_predictions(path: str | Path) -> tuple[LoadResult, tuple[str, ...]]:
    """A predictions file (MTL CSV) or per-task folder, validated row by row; and the tasks it
    predicts. Raises UnusableInputError when it cannot be read as either."""
    path = Path(path)
    if path.is_dir():
        task = _task_of_folder(path)
        result = formats.load(path, _TASK_FORMAT[task], split="validation")
        table, errors = result.table, list(result.errors)
        # the annotation format allows the no-label markers; a prediction may not hold them
        marked = {
            "expr": table["expr"].to_numpy() == EXPR_MISSING,
            "au": (table[list(AU_COLUMNS)].to_numpy() == AU_MISSING).any(axis=1),
            "va": table["valence"].to_numpy() == VA_MISSING,
        }[task]
        field = {"expr": "expression", "au": "AU1", "va": "valence"}[task]
        for f, n in zip(table["ann_file"][marked], table["ann_line"][marked], strict=True):
            errors.append(RowError(f, int(n), field, "the no-label marker is not a prediction"))
        kept = table[~marked].reset_index(drop=True)
        return (
            LoadResult(kept, errors, result.rows_read, result.files, f"predictions-{task}"),
            (task,),
        )
    if not path.exists():
        raise UnusableInputError(f"{path}: no such file or folder")
    lines = read_lines(path)
    check_header(path, lines[0], _MTL_HEADERS)
    collector = Options(strict=False, images=None).collector("predictions-mtl")
    collector.add_lines(str(path), lines[1:], 2, _mtl_row)
    return collector.result(), TASKS


# --- aligning and scoring ------------------------------------------------------------------------


@dataclass
class Aligned:
    """Ground truth and predictions, one row per truth frame, in the truth's order."""

    truth: pd.DataFrame
    predicted: pd.DataFrame
    tasks: tuple[str, ...]


def align(
    predictions: LoadResult, tasks: tuple[str, ...], truth: pd.DataFrame
) -> tuple[Aligned, list[RowError]]:
    """Match predictions to truth rows by ``path``; errors for missing and extra frames (see the
    module docstring). The aligned frames are the truth rows that have a prediction."""
    pred = predictions.table
    where = dict(zip(pred["path"], range(len(pred)), strict=True))
    errors: list[RowError] = []
    truth_paths = set(truth["path"])
    source = predictions.files[0] if predictions.files else "predictions"
    for path, f, n in zip(truth["path"], truth["ann_file"], truth["ann_line"], strict=True):
        if path not in where:
            errors.append(RowError(f, int(n), "missing", f"no prediction for {path} in {source}"))
    for path, f, n in zip(pred["path"], pred["ann_file"], pred["ann_line"], strict=True):
        if path not in truth_paths:
            errors.append(
                RowError(f, int(n), "extra", f"{path} is not a frame of the ground truth")
            )
    have = truth["path"].map(where)
    keep = have.notna().to_numpy()
    rows = have[keep].astype(int).to_numpy()
    aligned = Aligned(
        truth[keep].reset_index(drop=True), pred.iloc[rows].reset_index(drop=True), tasks
    )
    return aligned, errors


def score(aligned: Aligned, va_label_dtype: type = np.float64) -> dict[str, Any]:
    """The challenge metrics of the aligned frames (module docstring). ``va_label_dtype``: the
    precision the VA labels are compared at (float64: as written in the annotation files)."""
    t, p = aligned.truth, aligned.predicted
    et, ep = t["expr"].to_numpy(), p["expr"].to_numpy()
    at, ap = t[list(AU_COLUMNS)].to_numpy(), p[list(AU_COLUMNS)].to_numpy()
    vt = t[["valence", "arousal"]].to_numpy().astype(va_label_dtype).astype(np.float64)
    vp = p[["valence", "arousal"]].to_numpy()
    out: dict[str, Any] = {}
    if set(aligned.tasks) == set(TASKS):
        out.update(metrics.p_mtl(et, ep, at, ap, vt, vp))
    if "expr" in aligned.tasks:
        basic = (et >= 0) & (et < 7)
        out["expr_f1"] = metrics.expr_f1(et, ep)
        out["expr_accuracy"] = metrics.expr_accuracy(et, ep)
        out["abaw2021_expr"] = (
            metrics.abaw2021_expr_score(et[basic], ep[basic]) if basic.any() else float("nan")
        )
        out["n_expr"] = int((et != EXPR_MISSING).sum())
    if "au" in aligned.tasks:
        rows = (at != AU_MISSING).all(axis=1)
        f1 = metrics.per_au_f1(at[rows], ap[rows]) if rows.any() else np.full(N_AU, np.nan)
        out["au_f1"] = float(np.nanmean(f1)) if np.isfinite(f1).any() else float("nan")
        out["per_au_f1"] = dict(zip(AU_COLUMNS, map(float, f1), strict=True))
        out["emotionet_final"] = (
            metrics.emotionet_score(at[rows], ap[rows]) if rows.any() else float("nan")
        )
        out["n_au"] = int(rows.sum())
    if "va" in aligned.tasks:
        rows = (vt != VA_MISSING).all(axis=1)
        if rows.any():
            out["valence_ccc"] = metrics.ccc(vt[rows, 0], vp[rows, 0])
            out["arousal_ccc"] = metrics.ccc(vt[rows, 1], vp[rows, 1])
            out["va"] = 0.5 * (out["valence_ccc"] + out["arousal_ccc"])
        else:
            out["valence_ccc"] = out["arousal_ccc"] = out["va"] = float("nan")
        out["n_va"] = int(rows.sum())
    return out


def decisions(pred: Mapping[str, np.ndarray], au_threshold: float = RUN_AU_THRESHOLD):
    """(expression index, AU 0/1, VA) of :func:`affectlib.train.predict`'s output, decided as
    :func:`affectlib.metrics.score` decides them."""
    expr = pred["expr_prob"].argmax(axis=1)
    aus = (pred["au_prob"] > au_threshold).astype(int)
    return expr, aus, pred["va_pred"]


def truth_table(
    path: str | Path, format: str = "auto", split: str | None = None
) -> tuple[LoadResult, str]:
    """The ground truth to score against, and the format it was read as. ``format`` ``auto``: an
    annotation file by its header (MTL or AffectNet), a per-task folder by its files' header, a
    data set folder by its layout (:mod:`affectlib.data.layouts`). ``split`` keeps one split."""
    path = Path(path)
    if format == "auto":
        format = _guess_format(path)
    if layouts.is_layout(format):
        found = layouts.resolve(path, format)
        result = layout_readers.load_found(found)
        format = found.layout.name
    else:
        result = formats.load(path, format)
    if split is not None:
        table = result.table
        result = LoadResult(
            table[table["split"] == split].reset_index(drop=True),
            result.errors,
            result.rows_read,
            result.files,
            result.format,
        )
    return result, format


def _guess_format(path: Path) -> str:
    if path.is_dir():
        txt = [p for p in path.iterdir() if p.suffix.lower() == ".txt" and p.is_file()]
        if txt and not any(p.is_dir() for p in path.iterdir()):
            return _TASK_FORMAT[_task_of_folder(path)]
        return "auto"
    if not path.exists():
        raise UnusableInputError(f"{path}: no such file or folder")
    header = [f.strip().lower() for f in read_lines(path)[0].split(",")]
    if tuple(header) in {tuple(h.lower() for h in x) for x in _MTL_HEADERS}:
        return "abaw-mtl"
    if header and header[0] == "subdirectory_filepath":
        return "affectnet"
    raise UnusableInputError(
        f"{path}: cannot tell the annotation format from its first line; give --truth-format "
        f"({', '.join(formats.FORMATS)})"
    )
