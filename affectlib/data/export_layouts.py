"""The embedded data set written again in the other layouts its real counterparts circulate in.

:func:`export_layouts` reads the annotation files the generator wrote
(:mod:`affectlib.data.generate`, the data sets' original layouts) with the loaders of
:mod:`affectlib.data.formats`, so every row is validated on the way, and writes each alternative
layout of :mod:`affectlib.data.layouts` under ``OUT/<layout>/``:

- ``rafdb-csv``: ``train_labels.csv`` / ``test_labels.csv`` (``image,label``, RAF-DB codes 1..7) and
  the images in ``DATASET/{train,test}/CODE/NAME_aligned.jpg``;
- ``rafdb-folders``: ``{train,test}/CODE/NAME_aligned.jpg``;
- ``affectnet-folders``: ``{train,val}/CLASS/SUBDIR_FILE.jpg`` with CLASS AffectNet's lower-case
  class name (``anger`` ... ``surprise``; ``layouts.AFFECTNET_FOLDER_NAMES``); the image's
  ``subDirectory_filePath`` with ``/`` turned into ``_`` (:func:`affectnet_folder_name`). Rows
  without an expression (AffectNet's None / Uncertain / Non-Face) have no class folder and are not
  written; valence/arousal cannot be written at all. Both are counted in the returned report;
- ``affwild2-tasks-2020``: ``annotations/{EXPR,AU,VA}_Set/{Training,Validation}_Set/VIDEO.txt``
  (the files' content as in the ABAW 3 folders: the 8-name expression header) and
  ``cropped_aligned`` linking to the embedded images;
- ``affwild2-mtl``: ``annotations/MTL_Challenge/{training,validation,test}_set_annotations.txt`` and
  ``cropped_aligned``.

Images are hard links to the embedded files where the file system allows, copies otherwise; the
Aff-Wild2 image folder is one symbolic link. The generator's own files are not modified.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from affectlib.data import formats, layout_readers, layouts
from affectlib.data.parsing import LoadResult
from affectlib.files import atomic_write_text
from affectlib.labels import ABAW_TO_AFFECTNET, ABAW_TO_RAFDB, AU_COLUMNS, EXPRESSIONS

__all__ = ["EXPORTED", "affectnet_folder_name", "export_layouts"]

EXPORTED = (
    "rafdb-csv",
    "rafdb-folders",
    "affectnet-folders",
    "affwild2-tasks-2020",
    "affwild2-mtl",
)


def affectnet_folder_name(path: str) -> str:
    """An AffectNet image's file name in the folder-per-class export: ``1/0.jpg`` -> ``1_0.jpg``."""
    return path.replace("/", "_")


def _place(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed: a copy
        shutil.copy2(src, dst)


def _checked(result: LoadResult, what: str) -> pd.DataFrame:
    if result.errors:
        raise ValueError(
            f"{what}: {result.rejected} rows rejected, e.g. {result.errors[0]}; "
            "export needs clean files"
        )
    return result.table


def _rafdb(root: Path, out: Path, report: dict[str, dict[str, int]]) -> None:
    found = layouts.resolve(root / "rafdb", "rafdb-original")
    table = _checked(layout_readers.load_found(found), "rafdb")
    codes = table["expr"].map(ABAW_TO_RAFDB)
    csv_root, folder_root = out / "rafdb-csv", out / "rafdb-folders"
    lines: dict[str, list[str]] = {}
    for name, split, code in tqdm(
        zip(table["path"], table["split"], codes, strict=True),
        total=len(table),
        desc="RAF-DB layouts",
        leave=False,
    ):
        src = found.images / name
        _place(src, csv_root / "DATASET" / split / str(code) / name)
        _place(src, folder_root / split / str(code) / name)
        lines.setdefault(split, ["image,label"]).append(f"{name},{code}")
    for split, rows in lines.items():
        atomic_write_text(csv_root / f"{split}_labels.csv", "\n".join(rows) + "\n")
    report["rafdb-csv"] = report["rafdb-folders"] = {"written": len(table), "not written": 0}


def _affectnet(root: Path, out: Path, report: dict[str, dict[str, int]]) -> None:
    found = layouts.resolve(root / "affectnet", "affectnet-original")
    table = _checked(layout_readers.load_found(found), "affectnet")
    base = out / "affectnet-folders"
    written = 0
    split_folder = {"train": "train", "validation": "val", "test": "test"}
    rows = zip(table["path"], table["split"], table["expr"], strict=True)
    for path, split, expr in tqdm(rows, total=len(table), desc="AffectNet layout", leave=False):
        if expr < 0:
            continue  # no class folder for None / Uncertain / Non-Face
        name = layouts.AFFECTNET_FOLDER_NAMES[ABAW_TO_AFFECTNET[int(expr)]]
        _place(found.images / path, base / split_folder[split] / name / affectnet_folder_name(path))
        written += 1
    report["affectnet-folders"] = {"written": written, "not written": len(table) - written}


def _link_images(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        return
    dst.symlink_to(src.resolve(), target_is_directory=True)


_TASK_COLUMNS = {
    "abaw-expr": ["expr"],
    "abaw-au": list(AU_COLUMNS),
    "abaw-va": ["valence", "arousal"],
}
_TASK_HEADER = {
    "abaw-expr": ",".join(EXPRESSIONS),
    "abaw-au": ",".join(AU_COLUMNS),
    "abaw-va": "valence,arousal",
}
_TASK_2020 = {"abaw-expr": "EXPR_Set", "abaw-au": "AU_Set", "abaw-va": "VA_Set"}
_SET_2020 = {"train": "Training_Set", "validation": "Validation_Set"}


def _value(x: float | int) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _affwild2(root: Path, out: Path, report: dict[str, dict[str, int]]) -> None:
    tasks = layouts.resolve(root / "affwild2", "affwild2-tasks")
    base = out / "affwild2-tasks-2020"
    rows = 0
    for part in tqdm(tasks.parts, desc="Aff-Wild2 per-task layout", leave=False):
        result = formats.load(part.path, part.reader, split=part.split)
        table = _checked(result, str(part.path))
        folder = base / "annotations" / _TASK_2020[part.reader] / _SET_2020[part.split]
        for video, g in table.groupby("video", sort=True):
            g = g.sort_values("frame")
            values = g[_TASK_COLUMNS[part.reader]].to_numpy()
            lines = [_TASK_HEADER[part.reader]] + [",".join(_value(x) for x in r) for r in values]
            atomic_write_text(folder / f"{video}.txt", "\n".join(lines) + "\n")
            rows += len(g)
    _link_images(tasks.images, base / "cropped_aligned")
    report["affwild2-tasks-2020"] = {"written": rows, "not written": 0}

    mtl = layouts.resolve(root / "affwild2", "affwild2-mtl")
    base = out / "affwild2-mtl"
    rows = 0
    for part in mtl.parts:
        _checked(formats.load(part.path, "abaw-mtl"), str(part.path))  # validated before copying
        dst = base / "annotations" / "MTL_Challenge" / part.path.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(part.path, dst)
        rows += len(part.path.read_text().splitlines()) - 1
    _link_images(mtl.images, base / "cropped_aligned")
    report["affwild2-mtl"] = {"written": rows, "not written": 0}


def export_layouts(data_root: str | Path, out: str | Path) -> dict[str, dict[str, int]]:
    """Write the embedded data set at ``data_root`` in every layout of :data:`EXPORTED` under
    ``out/<layout>/``; returns per layout the rows written and those the layout cannot hold."""
    root, target = Path(data_root), Path(out)
    report: dict[str, dict[str, int]] = {}
    _rafdb(root, target, report)
    _affectnet(root, target, report)
    _affwild2(root, target, report)
    return report
