"""Write annotation tables in the real data sets' file formats.

These are the exact layouts ``affectlib.data.formats`` reads (see its docstring for each format); the
embedded generator uses them, and so do tests that need a file in a real format.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import labels as L
from ..files import atomic_write_text

TASK_HEADERS = {
    "expr": ",".join(L.EXPRESSIONS),
    "au": ",".join(L.AU_COLUMNS),
    "va": "valence,arousal",
}
TASK_FOLDERS = {  # the ABAW per-task annotation folders
    "expr": "EXPR_Classification_Challenge",
    "au": "AU_Detection_Challenge",
    "va": "VA_Estimation_Challenge",
}
SPLIT_FOLDERS = {"train": "Train_Set", "validation": "Validation_Set"}
MTL_FILES = {
    "train": "training_set_annotations.txt",
    "validation": "validation_set_annotations.txt",
    "test": "test_set_annotations.txt",  # the embedded set's held-out split (ABAW keeps its own)
}


def _va(x: float) -> str:
    return "-5" if x == L.VA_MISSING else f"{x:.3f}"


def write_abaw_mtl(table: pd.DataFrame, path: str | Path) -> Path:
    """ABAW3/4 MTL file: header ``image,valence,arousal,expression,aus`` then one row per image."""
    lines = ["image,valence,arousal,expression,aus"]
    au = table[list(L.AU_COLUMNS)].to_numpy()
    for i, r in enumerate(table[["path", "valence", "arousal", "expr"]].itertuples(index=False)):
        aus = ",".join(str(int(x)) for x in au[i])
        lines.append(f"{r.path},{_va(r.valence)},{_va(r.arousal)},{int(r.expr)},{aus}")
    return atomic_write_text(path, "\n".join(lines) + "\n")


def write_abaw_tasks(table: pd.DataFrame, root: str | Path, split: str) -> list[Path]:
    """ABAW per-task folders: ``root/<Task>_Challenge/<Split>_Set/VIDEO.txt``, one line per frame.

    A video whose frames all lack a task's label gets no file for that task (as in Aff-Wild2, where a
    video is annotated for some tasks only). Frames are written for 1..max(frame); a frame absent from the
    table is written with the task's marker.
    """
    out = []
    for task, folder in TASK_FOLDERS.items():
        d = Path(root) / folder / SPLIT_FOLDERS[split]
        for video, g in table.groupby("video", sort=True):
            g = g.sort_values("frame")
            n = int(g["frame"].max())
            if task == "expr":
                vals = np.full(n, L.EXPR_MISSING)
                vals[g["frame"].to_numpy() - 1] = g["expr"].to_numpy()
                if (vals == L.EXPR_MISSING).all():
                    continue
                rows = [str(int(v)) for v in vals]
            elif task == "au":
                vals = np.full((n, L.N_AU), L.AU_MISSING)
                vals[g["frame"].to_numpy() - 1] = g[list(L.AU_COLUMNS)].to_numpy()
                if (vals == L.AU_MISSING).all():
                    continue
                rows = [",".join(str(int(x)) for x in v) for v in vals]
            else:
                vals = np.full((n, 2), L.VA_MISSING)
                vals[g["frame"].to_numpy() - 1] = g[["valence", "arousal"]].to_numpy()
                if (vals == L.VA_MISSING).all():
                    continue
                rows = [f"{_va(v)},{_va(a)}" for v, a in vals]
            text = TASK_HEADERS[task] + "\n" + "\n".join(rows) + "\n"
            out.append(atomic_write_text(d / f"{video}.txt", text))
    return out


def write_affectnet(table: pd.DataFrame, path: str | Path, size: int) -> Path:
    """AffectNet ``training.csv`` / ``validation.csv``: path, face box, 68 landmarks, code, VA (-2 = none).

    The embedded images are already cropped faces: the box is the whole image and the landmarks are a
    fixed template scaled to it (the loader validates them; no method uses them).
    """
    header = (
        "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,"
        "expression,valence,arousal"
    )
    t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    lm = np.stack([0.5 + 0.35 * np.cos(t), 0.55 + 0.4 * np.sin(t)], 1) * size
    landmarks = ";".join(f"{v:.2f}" for v in lm.reshape(-1))
    lines = [header]
    for r in table[["path", "affectnet_code", "valence", "arousal"]].itertuples(index=False):
        v = -2 if r.valence == L.VA_MISSING else r.valence
        a = -2 if r.arousal == L.VA_MISSING else r.arousal
        lines.append(f"{r.path},0,0,{size},{size},{landmarks},{int(r.affectnet_code)},{v},{a}")
    return atomic_write_text(path, "\n".join(lines) + "\n")


def write_rafdb(table: pd.DataFrame, path: str | Path) -> Path:
    """RAF-DB basic ``list_patition_label.txt``: ``name label`` per line, no header."""
    lines = [f"{r.name} {int(r.rafdb_label)}" for r in table.itertuples(index=False)]
    return atomic_write_text(path, "\n".join(lines) + "\n")


def write_emotionet(table: pd.DataFrame, path: str | Path) -> Path:
    """EmotioNet-style tab-separated file with a header naming the AUs: ``URL``, a second field holding
    the image path relative to the data set's folder (how a local copy points at its images), then
    one column per AU (1 present, 0 absent, 999 not coded)."""
    aus = [c for c in table.columns if c.startswith("AU") and c[2:].isdigit()]
    lines = ["\t".join(["URL", "image", *aus])]
    vals = table[aus].to_numpy()
    for i, p in enumerate(table["path"]):
        codes = [str(L.EMOTIONET_NOT_CODED if v == L.AU_MISSING else int(v)) for v in vals[i]]
        lines.append("\t".join([f"http://embedded.invalid/{p}", f"images/{p}", *codes]))
    return atomic_write_text(path, "\n".join(lines) + "\n")


def write_identities(table: pd.DataFrame, path: str | Path) -> Path:
    """Identity list of a face-recognition set: ``path identity split`` per line, space separated,
    with a header line (the embedded stand-in for MS-Celeb-1M; read by :func:`read_identities`)."""
    lines = ["path identity split"]
    lines += [f"{r.path} {int(r.label)} {r.split}" for r in table.itertuples(index=False)]
    return atomic_write_text(path, "\n".join(lines) + "\n")


def read_identities(path: str | Path) -> pd.DataFrame:
    """The identity list written by :func:`write_identities`; a malformed line is an error naming it."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].split() != ["path", "identity", "split"]:
        raise ValueError(f"{path}:1: header: expected 'path identity split'")
    rows = []
    for i, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        f = line.split()
        if len(f) != 3 or not f[1].isdigit() or f[2] not in ("train", "validation"):
            raise ValueError(f"{path}:{i}: expected 'PATH IDENTITY train|validation', got {line!r}")
        rows.append((f[0], int(f[1]), f[2]))
    return pd.DataFrame(rows, columns=["path", "identity", "split"])
