"""Which data set a folder holds, in which layout, and reading it: ``--format auto``.

A copy of a data set comes in one of several layouts: the release as its authors distribute it, or
a mirror that rearranged it. :func:`detect` looks at a folder (and at its ``annotations`` subfolder
for Aff-Wild2) and returns each layout of :data:`LAYOUTS` that it matches, with the files it would
read, the image folder and what the layout cannot hold; :func:`resolve` insists on exactly one and
otherwise raises :class:`LayoutError` with a message that lists every known layout;
:func:`affectlib.data.layout_readers.load_found` reads it into the standard annotation table (:mod:`affectlib.data.table`) with
the total validation of :mod:`affectlib.data.formats`: every row accepted or rejected with
``FILE:LINE: field: reason``, ``accepted + rejected == rows_read``, ``strict`` raising on the first.

The layouts (``LAYOUTS``; the name is also accepted wherever ``--format`` is):

- ``rafdb-original``: RAF-DB basic as released (Li et al. 2017):
  ``EmoLabel/list_patition_label.txt`` (sic) and ``Image/aligned/NAME_aligned.jpg``; read by
  :mod:`affectlib.data.formats` (``rafdb``).
  Many public loaders read exactly these two paths (e.g. the RafDataSet classes found by searching
  public code for ``EmoLabel/list_patition_label.txt``).
- ``rafdb-csv``: the RAF-DB mirror with ``train_labels.csv`` / ``test_labels.csv``, header
  ``image,label``, rows ``train_00001_aligned.jpg,5``, and its images in one folder per class,
  ``DATASET/{train,test}/LABEL/NAME`` (``DATASET`` optional: the folder itself when absent). The
  label is RAF-DB's own code 1..7 (1 Surprise ... 7 Neutral, ``labels.RAFDB_CODES``), the same code
  as the class folder's name; a 0 is rejected with a reason naming the 1..7 convention (public
  loaders of the original file commonly subtract 1, so 0..6 copies exist: such a file is refused,
  never shifted silently). Not confirmed against a copy of this mirror: a search of public code
  found no loader of these two CSVs; the 1..7 class folders are documented by public READMEs
  (``rafdb/train_set/1`` "Surprise class" ... ``7`` "Neutral class").
- ``rafdb-folders``: RAF-DB as one folder per class without a label file: ``SPLIT/LABEL/*.jpg``
  with LABEL 1..7 (RAF-DB codes, as above) or a class name (``Surprise`` ... ``Neutral``, any
  case; read only when the layout is named: detection takes named class folders for AffectNet's),
  SPLIT one of ``train`` / ``train_set``, ``val`` / ``valid`` / ``validation`` / ``val_set``,
  ``test`` / ``test_set``; under ``DATASET/`` too.
- ``affectnet-original``: AffectNet's ``training.csv`` / ``validation.csv`` (Mollahosseini et al.
  2017), in the folder or in ``Manually_Annotated_file_lists/``, images under
  ``Manually_Annotated_Images/``; read by :mod:`affectlib.data.formats` (``affectnet``).
- ``affectnet-folders``: an AffectNet mirror with one folder per class, ``SPLIT/CLASS/*.jpg``
  (SPLIT as above). Public mirrors name the classes either by AffectNet's code ``0``..``7``
  (``Data/AffectNet/{train,val,test}/{0..7}``, UTS-SSTC/Facial-Emotion-Recognition-HCI
  ``data/affectNet/README.md``) or by name (``{train,val,test}/{anger, contempt, disgust, fear,
  happy, neutral, sad, surprise}``, the same repository's ``data/processed/README.md``); both are
  read, codes through ``labels.AFFECTNET_TO_ABAW``. Such a mirror carries no valence/arousal:
  every row's VA is the
  no-label marker -5 and the description says so; nothing is invented. It keeps only the eight
  expression classes (no None / Uncertain / Non-Face images).
- ``affwild2-tasks-2020``: Aff-Wild2's per-task annotations of the first two ABAW editions (2020,
  2021): ``annotations/{EXPR,AU,VA}_Set/{Training,Validation}_Set/VIDEO.txt`` (the paths of public
  code written for the 2020 release, e.g. ``annotations-20200917.../annotations/EXPR_Set/
  Training_Set``). The expression files of those editions have 7 classes (``Neutral,...,Surprise``,
  no ``Other``; public loaders map 0..6 to those names; -1 no label); the 8-name header of later
  editions is read too.
- ``affwild2-tasks``: the per-task annotations of ABAW 3 and later:
  ``{EXPR_Classification_Challenge | EXPR_Recognition_Challenge, AU_Detection_Challenge,
  VA_Estimation_Challenge}/{Train_Set,Validation_Set}/VIDEO.txt`` (both expression folder names
  occur in public code listing the challenge folders with ``Train_Set`` / ``Validation_Set``, the
  ABAW 3 one beside ``MTL_Challenge``); read by
  :mod:`affectlib.data.formats` (``abaw-expr`` / ``abaw-au`` / ``abaw-va``) and joined with
  :func:`affectlib.data.formats.merge_tasks`.
- ``affwild2-mtl``: the multi-task-learning files ``{training,validation}_set_annotations.txt``
  (and the embedded set's ``test_set_annotations.txt``) in ``MTL/`` or ``MTL_Challenge/`` (ABAW 3)
  or in the folder itself (ABAW 4's s-Aff-Wild2); read as ``abaw-mtl``.

Not read: AffectNet's later distribution ``{train,val}_set/images/N.jpg`` with
``annotations/N_exp.npy`` / ``N_val.npy`` / ``N_aro.npy`` (NumPy files per image).
- ``emotionet-files``: EmotioNet-format ``{training,validation}_annotations.txt`` (the embedded
  set's layout), read as ``emotionet``.

Aff-Wild2 layouts look for their folders in the given folder and in its ``annotations/`` subfolder;
the images are the first of ``cropped_aligned/`` beside the annotations' folder or in the given one.

For a folder-per-class layout a row is one image file: its ``ann_file`` is the image file and
``ann_line`` 0 (no line); a file that is not an image, a file directly in a split folder or in a
class
folder with an unknown name is rejected naming that file. Entries of the data set's folder that no
layout reads (a README, a stray archive) are listed in the description, not read.

A merged per-task table (``affwild2-tasks*``) has one row per (frame, split) however many tasks
annotate it; its ``rows_read`` counts those rows plus the rejected lines, so that
``accepted + rejected == rows_read`` holds for it as for a single file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from affectlib.data.parsing import (
    LoadResult,
    infer_split,
)
from affectlib.labels import (
    AFFECTNET_TO_ABAW,
    EXPRESSIONS,
    RAFDB_CODES,
    RAFDB_TO_ABAW,
    expr_index,
)

__all__ = [
    "AUTO",
    "LAYOUTS",
    "Found",
    "Layout",
    "LayoutError",
    "detect",
    "is_layout",
    "resolve",
]

AUTO = "auto"


@dataclass(frozen=True)
class Layout:
    name: str
    dataset: str
    looks_like: str  # what the folder holds, as the error message lists it


LAYOUTS: tuple[Layout, ...] = (
    Layout("rafdb-original", "RAF-DB", "EmoLabel/list_patition_label.txt + Image/aligned/"),
    Layout(
        "rafdb-csv",
        "RAF-DB",
        "train_labels.csv / test_labels.csv (image,label) + DATASET/SPLIT/1-7/",
    ),
    Layout("rafdb-folders", "RAF-DB", "SPLIT/1..7/*.jpg (one folder per RAF-DB class code)"),
    Layout(
        "affectnet-original",
        "AffectNet",
        "training.csv / validation.csv (or Manually_Annotated_file_lists/) + "
        "Manually_Annotated_Images/",
    ),
    Layout(
        "affectnet-folders",
        "AffectNet",
        "SPLIT/0..7/*.jpg or SPLIT/{anger,contempt,...,surprise}/*.jpg (no valence/arousal)",
    ),
    Layout(
        "affwild2-tasks-2020",
        "Aff-Wild2",
        "[annotations/]{EXPR,AU,VA}_Set/{Training,Validation}_Set/*.txt (ABAW 2020-2021)",
    ),
    Layout(
        "affwild2-tasks",
        "Aff-Wild2",
        "[annotations/]{EXPR_Classification,EXPR_Recognition,AU_Detection,VA_Estimation}_Challenge/"
        "{Train,Validation}_Set/*.txt (ABAW 3 and later)",
    ),
    Layout(
        "affwild2-mtl",
        "Aff-Wild2",
        "[annotations/][MTL/ | MTL_Challenge/]{training,validation}_set_annotations.txt",
    ),
    Layout(
        "emotionet-files", "EmotioNet", "{training,validation}_annotations.txt (EmotioNet format)"
    ),
)
_BY_NAME = {layout.name: layout for layout in LAYOUTS}


def is_layout(name: str) -> bool:
    """Whether ``name`` is ``auto`` or the name of a layout of :data:`LAYOUTS`."""
    return name == AUTO or name in _BY_NAME


class LayoutError(ValueError):
    """No layout, several, or not the one asked for; the message lists the known layouts."""


def known_layouts() -> str:
    return "\n".join(f"  {x.name:<20} {x.dataset:<10} {x.looks_like}" for x in LAYOUTS)


@dataclass
class Part:
    """One annotation file or folder of a found layout: what reads it and the split it holds
    (None: per row, RAF-DB's file)."""

    path: Path
    reader: str  # a formats.FORMATS name, or one of this module's readers
    split: str | None


@dataclass
class Found:
    layout: Layout
    root: Path  # the data set's folder
    images: Path
    parts: list[Part]
    notes: list[str] = field(default_factory=list)

    def describe(self, result: LoadResult | None = None) -> str:
        """What was found: data set, layout, files, splits (from ``result`` when given), notes."""
        lines = [
            f"found {self.layout.dataset} in layout {self.layout.name} at {self.root}",
            f"  images: {self.images}",
            "  annotations:",
        ]
        for p in self.parts:
            where = p.path.relative_to(self.root) if p.path.is_relative_to(self.root) else p.path
            split = p.split or "per row"
            lines.append(f"    {where}  ({p.reader}, split {split})")
        if result is not None:
            counts = result.table["split"].value_counts()
            lines.append(
                "  splits: " + (", ".join(f"{s} {n}" for s, n in counts.items()) or "none")
            )
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


# --- split folder names ---------------------------------------------------------------------------

_SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "train_set": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "val_set": "validation",
    "test": "test",
    "test_set": "test",
}


def _split_folders(root: Path) -> dict[str, Path]:
    return {
        _SPLIT_NAMES[p.name.lower()]: p
        for p in sorted(root.iterdir())
        if p.is_dir() and p.name.lower() in _SPLIT_NAMES
    }


def _class_names(split_dirs: dict[str, Path]) -> set[str]:
    return {c.name for d in split_dirs.values() for c in d.iterdir() if c.is_dir()}


# --- class folders --------------------------------------------------------------------------------

# AffectNet's class names as public folder-per-class mirrors write them, to AffectNet codes
_AFFECTNET_NAMES = {
    "neutral": 0,
    "happy": 1,
    "happiness": 1,
    "sad": 2,
    "sadness": 2,
    "surprise": 3,
    "surprised": 3,
    "fear": 4,
    "fearful": 4,
    "disgust": 5,
    "disgusted": 5,
    "anger": 6,
    "angry": 6,
    "contempt": 7,
}
AFFECTNET_FOLDER_NAMES: dict[int, str] = {
    0: "neutral",
    1: "happy",
    2: "sad",
    3: "surprise",
    4: "fear",
    5: "disgust",
    6: "anger",
    7: "contempt",
}


def _rafdb_class(name: str) -> int | None:
    if name.isdigit():
        code = int(name)
        return RAFDB_TO_ABAW[code] if code in RAFDB_CODES else None
    try:  # a class name (Surprise ... Neutral; happy, sad, angry accepted)
        index = expr_index(name)
    except KeyError:
        return None
    return index if EXPRESSIONS[index] in RAFDB_CODES.values() else None


def _affectnet_class(name: str) -> int | None:
    code = int(name) if name.isdigit() else _AFFECTNET_NAMES.get(name.lower())
    return AFFECTNET_TO_ABAW[code] if code is not None and 0 <= code <= 7 else None


_CLASS_OF = {"rafdb-folders": _rafdb_class, "affectnet-folders": _affectnet_class}
_CLASS_RULE = {
    "rafdb-folders": "RAF-DB codes 1..7 or the names Surprise, Fear, Disgust, Happiness, Sadness, "
    "Anger, Neutral",
    "affectnet-folders": "AffectNet codes 0..7 or the names "
    + ", ".join(sorted(set(_AFFECTNET_NAMES))),
}


# --- detection ------------------------------------------------------------------------------------


def _files(root: Path, names: Sequence[str]) -> list[Path]:
    return [root / n for n in names if (root / n).is_file()]


def _stray(root: Path, used: Sequence[str]) -> list[str]:
    return sorted(
        p.name for p in root.iterdir() if p.name not in used and not p.name.startswith(".")
    )


def _detect_rafdb_original(root: Path) -> Found | None:
    label = root / "EmoLabel" / "list_patition_label.txt"
    if not label.is_file():
        return None
    return Found(
        _BY_NAME["rafdb-original"], root, root / "Image" / "aligned", [Part(label, "rafdb", None)]
    )


_RAFDB_CSVS = {"train": "train_labels.csv", "test": "test_labels.csv"}


def _detect_rafdb_csv(root: Path) -> Found | None:
    files = _files(root, list(_RAFDB_CSVS.values()))
    if not files:
        return None
    images = root / "DATASET" if (root / "DATASET").is_dir() else root
    parts = [Part(f, "rafdb-csv", infer_split(f.name, "file")) for f in files]
    notes = [f"the labels' class folders are read under {images}"]
    return Found(_BY_NAME["rafdb-csv"], root, images, parts, notes)


def _folder_root(root: Path) -> Path:
    return root / "DATASET" if (root / "DATASET").is_dir() and not _split_folders(root) else root


def _detect_folders(root: Path, name: str) -> Found | None:
    """Layout ``name`` when some class folder's name is one of its classes (see :func:`detect`
    for the folders both folder layouts would read)."""
    base = _folder_root(root)
    splits = _split_folders(base)
    if not splits:
        return None
    names = _class_names(splits)
    if not any(_CLASS_OF[name](n) is not None for n in names):
        return None
    parts = [Part(d, name, s) for s, d in splits.items()]
    notes = []
    if name == "affectnet-folders":
        notes.append(
            "a folder-per-class mirror carries no valence/arousal: VA is the no-label marker -5 on "
            "every row (not estimated, not invented)"
        )
    stray = _stray(base, [d.name for d in splits.values()])
    if stray:
        notes.append(f"not read (no split folder): {', '.join(stray)}")
    return Found(_BY_NAME[name], root, base, parts, notes)


def _rafdb_codes_only(found: Found) -> bool:
    names = _class_names({p.split or "": p.path for p in found.parts})
    return bool(names) and names <= {str(c) for c in RAFDB_CODES}


def _detect_affectnet_original(root: Path) -> Found | None:
    for folder in (root, root / "Manually_Annotated_file_lists"):
        files = _files(folder, ["training.csv", "validation.csv"])
        if files:
            images = root / "Manually_Annotated_Images"
            parts = [Part(f, "affectnet", infer_split(f.name, "file")) for f in files]
            return Found(
                _BY_NAME["affectnet-original"], root, images if images.is_dir() else root, parts
            )
    return None


_TASK_FOLDERS_2020 = {"abaw-expr": "EXPR_Set", "abaw-au": "AU_Set", "abaw-va": "VA_Set"}
_TASK_FOLDERS = {
    "abaw-expr": ("EXPR_Classification_Challenge", "EXPR_Recognition_Challenge"),
    "abaw-au": ("AU_Detection_Challenge",),
    "abaw-va": ("VA_Estimation_Challenge",),
}
_SET_FOLDERS = {
    "train": ("Train_Set", "Training_Set"),
    "validation": ("Validation_Set",),
}
_MTL_FILES = {
    "train": "training_set_annotations.txt",
    "validation": "validation_set_annotations.txt",
    "test": "test_set_annotations.txt",
}


def _annotation_bases(root: Path) -> list[Path]:
    return [b for b in (root, root / "annotations") if b.is_dir()]


def _affwild2_images(root: Path, base: Path) -> Path:
    for candidate in (base.parent / "cropped_aligned", root / "cropped_aligned"):
        if candidate.is_dir():
            return candidate
    return root / "cropped_aligned"


def _detect_tasks(root: Path, name: str) -> Found | None:
    folders = (
        {t: (f,) for t, f in _TASK_FOLDERS_2020.items()} if name.endswith("2020") else _TASK_FOLDERS
    )
    for base in _annotation_bases(root):
        parts = []
        for task, options in folders.items():
            for option in options:
                for split, set_names in _SET_FOLDERS.items():
                    for set_name in set_names:
                        folder = base / option / set_name
                        if folder.is_dir():
                            reader = (
                                "abaw-expr-2020"
                                if task == "abaw-expr" and name.endswith("2020")
                                else task
                            )
                            parts.append(Part(folder, reader, split))
        if parts:
            tasks = {p.reader.removesuffix("-2020") for p in parts}
            notes = []
            missing = [t for t in folders if t not in tasks]
            if missing:
                notes.append(f"no {', '.join(missing)} annotations: those labels are markers")
            images = _affwild2_images(root, base)
            return Found(_BY_NAME[name], root, images, parts, notes)
    return None


def _detect_mtl(root: Path) -> Found | None:
    for base in _annotation_bases(root):
        for folder in (base / "MTL", base / "MTL_Challenge", base):
            files = _files(folder, list(_MTL_FILES.values()))
            if files:
                parts = [Part(f, "abaw-mtl", infer_split(f.name, "file")) for f in files]
                return Found(_BY_NAME["affwild2-mtl"], root, _affwild2_images(root, base), parts)
    return None


def _detect_emotionet(root: Path) -> Found | None:
    files = _files(root, ["training_annotations.txt", "validation_annotations.txt"])
    if not files:
        return None
    parts = [Part(f, "emotionet", infer_split(f.name, "file")) for f in files]
    return Found(_BY_NAME["emotionet-files"], root, root, parts)


_DETECTORS: dict[str, Callable[[Path], Found | None]] = {
    "rafdb-original": _detect_rafdb_original,
    "rafdb-csv": _detect_rafdb_csv,
    "rafdb-folders": partial(_detect_folders, name="rafdb-folders"),
    "affectnet-original": _detect_affectnet_original,
    "affectnet-folders": partial(_detect_folders, name="affectnet-folders"),
    "affwild2-tasks-2020": partial(_detect_tasks, name="affwild2-tasks-2020"),
    "affwild2-tasks": partial(_detect_tasks, name="affwild2-tasks"),
    "affwild2-mtl": _detect_mtl,
    "emotionet-files": _detect_emotionet,
}


def detect(root: str | Path) -> list[Found]:
    """Every layout of :data:`LAYOUTS` that the folder ``root`` matches (empty: none).

    Class folders both folder layouts could read: folders named 1..7 only (no 0) are RAF-DB's codes,
    anything else (a 0, AffectNet's class names) AffectNet's; name the layout to read it otherwise.
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: not a folder; --format auto reads a data set's folder")
    found: list[Found] = []
    for name in _BY_NAME:
        hit = _DETECTORS[name](root)
        if hit is not None and hit.layout.name == name:
            found.append(hit)
    names = {f.layout.name for f in found}
    if {"rafdb-folders", "affectnet-folders"} <= names:
        raf = next(f for f in found if f.layout.name == "rafdb-folders")
        drop = "affectnet-folders" if _rafdb_codes_only(raf) else "rafdb-folders"
        found = [f for f in found if f.layout.name != drop]
    # the RAF-DB CSV mirror keeps its images in class folders: one data set, not two
    if "rafdb-csv" in names:
        found = [f for f in found if f.layout.name != "rafdb-folders"]
    return found


def resolve(root: str | Path, format: str = AUTO) -> Found:
    """The one layout of ``root``: ``format`` ``auto`` detects it, a layout name checks it.

    Raises :class:`LayoutError` listing the known layouts when none matches, and the matching ones
    when several do (a folder holding several data sets, or Aff-Wild2 with both the MTL files and
    the per-task folders): then pass a data set's own folder or ``--format LAYOUT``.
    """
    root = Path(root)
    if format != AUTO and format not in _BY_NAME:
        raise LayoutError(f"unknown layout {format!r}; known layouts:\n{known_layouts()}")
    found = detect(root)
    if format != AUTO:
        hit = _DETECTORS[format](root)
        if hit is None:
            layout = _BY_NAME[format]
            raise LayoutError(
                f"{root} is not in layout {format} ({layout.looks_like}); "
                + (f"found: {', '.join(f.layout.name for f in found)}" if found else "found none")
                + f"\nknown layouts:\n{known_layouts()}"
            )
        return hit
    if not found:
        subs = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise LayoutError(
            f"{root}: no known data set layout found"
            + (f" (subfolders: {', '.join(subs[:12])})" if subs else "")
            + f".\nKnown layouts:\n{known_layouts()}\n"
            "Point at the data set's own folder, or name the format explicitly (--format)."
        )
    if len(found) > 1:
        listing = "\n".join(f"  {f.layout.name} ({f.layout.dataset})" for f in found)
        raise LayoutError(
            f"{root} matches several layouts:\n{listing}\n"
            "Name one with --format LAYOUT, or point at one data set's folder."
        )
    return found[0]
