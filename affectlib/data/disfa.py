"""DISFA-format AU intensity labels: an export of the embedded set, and a loader validated totally.

DISFA (Mavadati et al. 2013) codes 12 AUs per video frame on the FACS intensity scale 0-5, one text
file per subject and AU, in the layout its distribution uses (and every public DISFA loader reads)::

    ActionUnit_Labels/SN001/SN001_au1.txt      lines "FRAME,INTENSITY": frame from 1, intensity 0..5
    ActionUnit_Labels/SN001/SN001_au2.txt      ... one file per AU of DISFA_AUS

DISFA distributes videos; loaders read frames extracted to one folder per subject, here
``images/SN001/00001.jpg`` (frame 1). DISFA has no split file; :func:`export` writes ours,
``splits.csv`` (``subject,split``), and :func:`load` reads it when present.

:func:`export` writes ``<data root>/disfa/`` from the embedded set: the Aff-Wild2-like videos' frames
(hard links to ``affwild2/cropped_aligned``) and the generator's rendered AU intensities
(``truth/affwild2.csv.gz``, ``I_AU<n>``: the intensity the renderer drew each frame with), rounded
and clipped to 0..5 — noise-free, as DISFA's FACS-coded intensities are treated. One subject per
video (``SN<video index + 1>``), the videos' subject-disjoint train / validation / test splits. The
folder is written once and reused while its ``manifest.json`` (the source data set's manifest and a
hash of this module's code) matches. ``generate.py`` is not changed: this is a separate export.

:func:`load` returns a :class:`DisfaResult`: the standard annotation table (one row per frame,
``path`` relative to ``images/``, AU columns ``AU1..AU26`` of DISFA holding occurrence = intensity
>= 2, the convention of DISFA AU detection work; expression -1, VA -5), the intensities (N, 12)
float, the errors and the frames read, with ``accepted + rejected == rows_read``. A row is a
(subject, frame); a line's error rejects its frame, reported with file, line, field and reason:
wrong field count, a non-integer, a frame < 1, an intensity outside 0..5, a frame twice in one file,
a frame missing from another AU file of the subject (reported on the line that has it); a subject
folder missing an AU file is unusable (every frame of it rejected, one error naming the file).
``strict`` raises :class:`~affectlib.data.parsing.AnnotationError` at the first.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from affectlib.data import datasets
from affectlib.data.parsing import AnnotationError, RowError, read_lines
from affectlib.data.table import build_table
from affectlib.files import atomic_write_text
from affectlib.labels import EXPR_MISSING, VA_MISSING

DISFA_AUS = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)
AU_COLUMNS = tuple(f"AU{n}" for n in DISFA_AUS)
MAX_INTENSITY = 5
OCCURRENCE = 2  # intensity >= 2 counts as an occurrence (DISFA detection convention)
FOLDER = "disfa"
LABELS = "ActionUnit_Labels"
IMAGES = "images"
EXPORT_VERSION = 1


def _code_hash() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def subject_name(index: int) -> str:
    """DISFA's subject folder name for a 0-based index: ``SN001`` for 0."""
    return f"SN{index + 1:03d}"


# --- export ---------------------------------------------------------------------------------------
def export(root: str | Path) -> Path:
    """``root/disfa/`` written from the embedded set at ``root`` (see the module docstring), or
    reused when its manifest matches. Returns that folder."""
    root = Path(root)
    out = root / FOLDER
    source = json.loads((root / "manifest.json").read_text())
    want = {"version": EXPORT_VERSION, "code": _code_hash(), "source": source}
    manifest = out / "manifest.json"
    if manifest.exists() and json.loads(manifest.read_text()) == want:
        return out
    if out.exists():
        shutil.rmtree(out)
    truth = pd.read_csv(root / "truth" / "affwild2.csv.gz")
    videos = list(dict.fromkeys(truth["video"]))
    splits = []
    for i, video in enumerate(videos):
        name = subject_name(i)
        rows = truth[truth["video"] == video].sort_values("frame")
        labels, images = out / LABELS / name, out / IMAGES / name
        labels.mkdir(parents=True)
        images.mkdir(parents=True)
        for n in DISFA_AUS:
            level = np.clip(np.rint(rows[f"I_AU{n}"].to_numpy()), 0, MAX_INTENSITY).astype(int)
            text = "".join(f"{f},{v}\n" for f, v in zip(rows["frame"], level, strict=True))
            (labels / f"{name}_au{n}.txt").write_text(text)
        for path, frame in zip(rows["path"], rows["frame"], strict=True):
            src = root / "affwild2" / "cropped_aligned" / path
            dst = images / f"{int(frame):05d}.jpg"
            try:
                os.link(src, dst)
            except OSError:  # another file system: copy
                shutil.copyfile(src, dst)
        splits.append((name, rows["split"].iloc[0]))
    pd.DataFrame(splits, columns=["subject", "split"]).to_csv(out / "splits.csv", index=False)
    atomic_write_text(manifest, json.dumps(want, indent=2) + "\n")
    return out


# --- loader ---------------------------------------------------------------------------------------
@dataclass
class DisfaResult:
    """table: the accepted frames (standard table, DISFA's AU columns: occurrence); intensity:
    (N, 12) float32 in :data:`DISFA_AUS` order; errors: one or more per rejected frame; rows_read:
    frames seen; files: the label files read."""

    table: pd.DataFrame
    intensity: np.ndarray
    errors: list[RowError]
    rows_read: int
    files: list[str]

    @property
    def accepted(self) -> int:
        return len(self.table)

    @property
    def rejected(self) -> int:
        return len({(e.file, e.line) for e in self.errors})


def _parse_line(line: str) -> tuple[int, int]:
    """``(frame, intensity)`` of one ``FRAME,INTENSITY`` line; ValueError(field, reason)."""
    fields = [f.strip() for f in line.split(",")]
    if len(fields) != 2:
        raise ValueError("line", f"expected 2 fields FRAME,INTENSITY, got {len(fields)}")
    try:
        frame = int(fields[0])
    except ValueError:
        raise ValueError("frame", f"not an integer: {fields[0]!r}") from None
    if frame < 1:
        raise ValueError("frame", f"frames count from 1, got {frame}")
    try:
        level = int(fields[1])
    except ValueError:
        raise ValueError("intensity", f"not an integer: {fields[1]!r}") from None
    if not 0 <= level <= MAX_INTENSITY:
        raise ValueError("intensity", f"outside 0..{MAX_INTENSITY}: {level}")
    return frame, level


def load(folder: str | Path, *, strict: bool = False) -> DisfaResult:
    """Every subject folder under ``folder/ActionUnit_Labels`` (see the module docstring)."""
    folder = Path(folder)
    labels = folder / LABELS
    if not labels.is_dir():
        raise FileNotFoundError(f"{folder}: no {LABELS}/ folder (DISFA layout)")
    split_file = folder / "splits.csv"
    split_of = (
        dict(pd.read_csv(split_file, dtype=str).itertuples(index=False))
        if split_file.exists()
        else {}
    )
    errors: list[RowError] = []
    files: list[str] = []
    accepted: list[tuple] = []
    rows_read = 0

    def reject(error: RowError) -> None:
        if strict:
            raise AnnotationError(error)
        errors.append(error)

    for subject_dir in sorted(p for p in labels.iterdir() if p.is_dir()):
        subject = subject_dir.name
        per_au: dict[int, dict[int, int]] = {}  # au -> frame -> level
        bad: dict[int, RowError] = {}  # frame -> its first error
        unkeyed: list[RowError] = []  # lines whose frame could not be read: a row each
        where: dict[int, tuple[str, int]] = {}  # frame -> first (file, line) that named it
        missing = []
        for n in DISFA_AUS:
            file = subject_dir / f"{subject}_au{n}.txt"
            if not file.is_file():
                missing.append(file)
                continue
            files.append(str(file))
            seen: dict[int, int] = {}  # frame -> line
            per_au[n] = {}
            for line_no, line in enumerate(read_lines(file), start=1):
                try:
                    frame, level = _parse_line(line)
                except ValueError as e:
                    field, reason = e.args
                    error = RowError(str(file), line_no, field, reason)
                    if field in ("line", "frame"):
                        unkeyed.append(error)
                    else:
                        frame = int(line.split(",")[0])
                        where.setdefault(frame, (str(file), line_no))
                        bad.setdefault(frame, error)
                    continue
                where.setdefault(frame, (str(file), line_no))
                if frame in seen:
                    reason = f"frame {frame} twice, first on line {seen[frame]}"
                    bad.setdefault(frame, RowError(str(file), line_no, "frame", reason))
                    continue
                seen[frame] = line_no
                per_au[n][frame] = level
        frames = sorted(where)
        rows_read += len(frames) + len(unkeyed)
        for error in unkeyed:
            reject(error)
        if missing:
            reason = (
                f"subject {subject} has no {missing[0].name} ({len(missing)} AU file(s) missing)"
            )
            if not frames and not unkeyed:  # nothing to count as a row: the folder is unusable
                reject(RowError(str(missing[0]), 1, "file", reason))
            for f in frames:
                reject(RowError(*where[f], "file", reason))
            continue
        for f in frames:
            if f in bad:
                reject(bad[f])
                continue
            absent = [n for n in DISFA_AUS if f not in per_au[n]]
            if absent:
                reason = f"frame {f} has no line in the AU{absent[0]} file of {subject}"
                reject(RowError(*where[f], "frame", reason))
                continue
            levels = tuple(per_au[n][f] for n in DISFA_AUS)
            split = split_of.get(subject, "unspecified")
            accepted.append((subject, f, levels, split, *where[f]))

    n = len(accepted)
    level = np.asarray([a[2] for a in accepted], dtype=np.int64).reshape(n, len(DISFA_AUS))
    table = build_table(
        {
            "path": [f"{a[0]}/{a[1]:05d}.jpg" for a in accepted],
            "video": [a[0] for a in accepted],
            "frame": [a[1] for a in accepted],
            "expr": np.full(n, EXPR_MISSING),
            **{c: (level[:, j] >= OCCURRENCE).astype(np.int64) for j, c in enumerate(AU_COLUMNS)},
            "valence": np.full(n, VA_MISSING),
            "arousal": np.full(n, VA_MISSING),
            "split": [a[3] for a in accepted],
            "source": ["disfa"] * n,
            "ann_file": [a[4] for a in accepted],
            "ann_line": [a[5] for a in accepted],
        },
        AU_COLUMNS,
    )
    return DisfaResult(table, level.astype(np.float32), errors, rows_read, files)


# --- batches with intensities ---------------------------------------------------------------------
class IntensityLoader(datasets.BatchLoader):
    """A :class:`~affectlib.data.datasets.BatchLoader` whose batches also carry ``intensity``
    (float32 (B, 12), 0..5, in :data:`DISFA_AUS` order)."""

    def __init__(self, table, images, sampler, batch_size, intensity: np.ndarray, **kw) -> None:
        super().__init__(table, images, sampler, batch_size, au_columns=AU_COLUMNS, **kw)
        if len(intensity) != len(table):
            raise ValueError(f"{len(intensity)} intensity rows for a table of {len(table)} rows")
        self.intensity = np.asarray(intensity, dtype=np.float32)

    def batch(self, items: np.ndarray) -> dict[str, Tensor]:
        out = super().batch(items)
        out["intensity"] = torch.from_numpy(self.intensity[out["index"].numpy()])
        return out
