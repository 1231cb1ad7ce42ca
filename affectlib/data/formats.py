"""Annotation files of the real data sets -> the standard annotation table, validated totally.

``load(path, format)`` reads one data set's annotation file(s) and returns a ``LoadResult``: the
standard table of the accepted rows, one ``RowError`` per rejected row, and the number of rows
read, with ``accepted + rejected == rows_read`` always. "Rows read" are the data lines: the header
is not one, and blank lines at the end of a file are not counted; a blank line elsewhere is a row
and is rejected. Every file may use CRLF line endings, trailing spaces and a UTF-8 BOM.

The standard annotation table (DESIGN.md, "data contract"), one row per image, in this order:
``path`` (POSIX, relative to the image root), ``video`` ("" for still-image sets), ``frame``
(1-based, -1 for still images), ``expr`` (ABAW index 0..7, -1 = no label), one ``AU<n>`` column
per AU (1/0, -1 = no label), ``valence``, ``arousal`` (in [-1, 1], -5 = no label), ``split``,
``source`` (the format name), ``ann_file``, ``ann_line`` (where the row was read). Markers are kept
as the file wrote them; masks are derived when batching.

Formats (``FORMATS``):

- ``abaw-mtl``: the ABAW3/ABAW4 multi-task-learning file (``training_set_annotations.txt``).
  Header ``image,valence,arousal,expression,aus`` (the challenge's) or the same with the 12 AUs
  named one by one (``...,expression,AU1,AU2,AU4,...,AU26``); rows
  ``VIDEO/00001.jpg,v,a,expr,au1,...,au12``. ``video`` is the folder part of the image path,
  ``frame`` its file stem (digits, >= 1).
- ``abaw-expr`` / ``abaw-au`` / ``abaw-va``: an ABAW per-task folder (``Train_Set``), one ``.txt``
  per video (a single ``.txt`` is accepted too). Headers
  ``Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other`` (one expression index per row),
  ``AU1,AU2,...,AU26`` (12 values) and ``valence,arousal``. Line ``i + 1`` is frame ``i``, image
  ``VIDEO/{i:05d}.jpg``, ``VIDEO`` the file stem as written (``NAME_left`` / ``NAME_right`` for two
  faces in one video). The other tasks' columns hold markers; ``merge_tasks`` joins the tables.
- ``affectnet``: ``training.csv`` / ``validation.csv``, header ``subDirectory_filePath,face_x,
  face_y,face_width,face_height,facial_landmarks,expression,valence,arousal``. The box must be 4
  finite numbers and the landmarks 136 finite numbers joined by ``;`` (checked, not kept).
  Expression codes 0..10 map through ``labels.AFFECTNET_TO_ABAW`` (Contempt -> Other,
  None/Uncertain/Non-Face -> -1); AffectNet's VA marker -2 becomes -5. ABAW AU columns all -1.
- ``rafdb``: RAF-DB basic ``EmoLabel/list_patition_label.txt`` (sic), no header, ``NAME LABEL``
  split on whitespace, label 1..7 through ``labels.RAFDB_TO_ABAW``; the split comes from the name's
  prefix ``train_`` / ``test_``. ``path`` is the aligned image's name, relative to
  ``Image/aligned``: ``train_00001.jpg`` -> ``train_00001_aligned.jpg``. ABAW AU columns all -1.
- ``emotionet``: an EmotioNet challenge file (``dataFile_1001.txt``): tab separated, field 1 the
  image URL, field 2 a second field (the challenge writes the original URL there), then AU values
  1 (present), 0 (absent) or 999 (not coded -> -1). Layouts, decided on the first line: a header
  whose fields 3.. are all ``AU<n>`` names (any AUs, any order); no header and 62 fields (the
  challenge's ``URL, URL_orig, AU1..AU60``); no header and 27 fields (URL, second field, the 25 AUs of
  ``labels.EMOTIONET_AUS`` in that order). Every AU field must be 0, 1 or 999; the table keeps one
  column per AU of ``labels.EMOTIONET_AUS`` present in the file, in that order; expression -1,
  VA -5. ``path``: the second field when it is a relative image path (``images/000123.jpg``: how a
  local data set written in this format points at its images), otherwise the last component of
  the URL's path, percent-decoded (``http://host/a/N_0000001149_00039.jpg`` ->
  ``N_0000001149_00039.jpg``, the name the challenge's download scripts save under), otherwise the
  first field when it is itself a relative image path. EmotioNet leaves AUs uncoded one by one, so
  the ABAW all-or-none AU rule does not apply.

Rejected rows (one ``RowError`` each, the first problem found): a wrong number of fields; a
non-number, NaN or inf; an integer field that is not an integer; VA outside [-1, 1] other than the
marker; one of valence/arousal labelled while the other is the marker; an expression or AU code
outside the format's range; some ABAW AUs -1 while others are labelled; an image path that is
empty, absolute, has a backslash or ``..``; the same image twice (the second occurrence, naming the
first's line); with ``images=ROOT``, an image missing under ROOT or that PIL cannot open and
``verify()`` (field ``image``). ``verify`` checks a file's structure, not every pixel: a JPEG
truncated inside its entropy-coded data can pass here and fail at decoding.

Unusable input raises ``UnusableInputError`` (no table): a missing path, a directory where a file
is expected, a folder without ``.txt`` files, an unreadable file, text that is not UTF-8, an empty
file, a missing or different header, a split that cannot be inferred. A file whose header is wrong
cannot be interpreted row by row, so it makes the input unusable rather than "all rows rejected";
the exception's ``errors`` name each such file as ``FILE:1: header: ...`` (field ``file`` for an
empty, unreadable or non-UTF-8 file).

Split, when ``split=None``: the one of ``train`` / ``valid`` / ``test`` that the MTL, AffectNet or
EmotioNet file name, or the per-task folder's name, contains (``training_set_annotations.txt``,
``Validation_Set``, ``validation.csv``); a name with none or several of them gives the split
``"unspecified"`` (the rows are validated all the same; nothing falls back to "train" silently, and
training refuses a table without training rows). RAF-DB takes it per row from the name. An explicit
``split`` applies to every row (RAF-DB included).

The table's constructors are :mod:`affectlib.data.table`; the errors, the load result and the
row-by-row reading machinery :mod:`affectlib.data.parsing`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd

from affectlib.data.parsing import (
    IMAGE_SUFFIXES,
    Claim,
    LoadResult,
    Options,
    Reject,
    Row,
    RowError,
    UnusableInputError,
    abaw_aus,
    abaw_expr,
    check_header,
    csv_fields,
    emotionet_au,
    expect_fields,
    image_path,
    infer_split,
    parse_float,
    parse_int,
    parse_va,
    read_lines,
    require_file,
    tab_fields,
    task_files,
    unusable_file,
    video_frame,
)
from affectlib.data.table import AU_NAME, au_number, build_table
from affectlib.labels import (
    AFFECTNET_CODES,
    AFFECTNET_TO_ABAW,
    AFFECTNET_VA_MISSING,
    AU_COLUMNS,
    AU_MISSING,
    EMOTIONET_AUS,
    EXPR_MISSING,
    EXPRESSIONS,
    N_AU,
    RAFDB_CODES,
    RAFDB_TO_ABAW,
    VA_MISSING,
)

__all__ = [
    "FORMATS",
    "SPLITS",
    "load",
    "merge_tasks",
]

FORMATS: tuple[str, ...] = (
    "abaw-mtl",
    "abaw-expr",
    "abaw-au",
    "abaw-va",
    "affectnet",
    "rafdb",
    "emotionet",
)
SPLITS: tuple[str, ...] = ("train", "validation", "test")


# --- the formats ----------------------------------------------------------------------------------

_MTL_HEADERS = (
    ("image", "valence", "arousal", "expression", "aus"),
    ("image", "valence", "arousal", "expression", *AU_COLUMNS),
)


def _mtl_row(line: str, claim: Claim, *, split: str) -> Row:
    fields = csv_fields(line)
    expect_fields(fields, 4 + N_AU)
    path = image_path(fields[0], "image")
    video, frame = video_frame(path, "image")
    claim(path)
    expr = abaw_expr(fields[3], "expression")
    valence, arousal = parse_va(fields[1], fields[2])
    aus = abaw_aus(fields[4:])
    return Row(path, video, frame, expr, aus, valence, arousal, split)


def _load_mtl(path: Path, split: str | None, options: Options) -> LoadResult:
    file = require_file(path, "abaw-mtl")
    split = split or infer_split(file.name, "the file name")
    lines = read_lines(file)
    check_header(file, lines[0], _MTL_HEADERS)
    collector = options.collector("abaw-mtl")
    collector.add_lines(str(file), lines[1:], 2, partial(_mtl_row, split=split))
    return collector.result()


_NO_AUS = (AU_MISSING,) * N_AU
_TASK_HEADERS = {
    "abaw-expr": EXPRESSIONS,
    "abaw-au": AU_COLUMNS,
    "abaw-va": ("valence", "arousal"),
}


def _task_row(line: str, claim: Claim, *, task: str, video: str, frame: int, split: str) -> Row:
    fields = csv_fields(line)
    path = f"{video}/{frame:05d}.jpg"
    claim(path)
    expr, aus, valence, arousal = EXPR_MISSING, _NO_AUS, VA_MISSING, VA_MISSING
    if task == "abaw-expr":
        expect_fields(fields, 1)
        expr = abaw_expr(fields[0], "expression")
    elif task == "abaw-au":
        expect_fields(fields, N_AU)
        aus = abaw_aus(fields)
    else:
        expect_fields(fields, 2)
        valence, arousal = parse_va(fields[0], fields[1])
    return Row(path, video, frame, expr, aus, valence, arousal, split)


def _load_task(path: Path, split: str | None, options: Options, *, task: str) -> LoadResult:
    files = task_files(path)
    collector = options.collector(task)
    folder = path if path.is_dir() else path.parent
    split = split or infer_split(folder.resolve().name, "the folder name")
    problems: list[RowError] = []
    for file in files:
        try:
            lines = read_lines(file)
            check_header(file, lines[0], [_TASK_HEADERS[task]])
        except UnusableInputError as e:
            # every unusable file in the folder is named at once, not one per run
            problems.extend(e.errors or [RowError(str(file), 1, "file", str(e))])
            continue
        video = file.stem
        collector.files.append(str(file))
        for line_no, line in enumerate(lines[1:], start=2):
            # line i + 1 holds frame i
            parse = partial(_task_row, task=task, video=video, frame=line_no - 1, split=split)
            collector.add(str(file), line_no, line, parse)
    if problems:
        listing = "\n".join(str(p) for p in problems)
        raise UnusableInputError(
            f"{len(problems)} of {len(files)} files cannot be read as {task}:\n{listing}",
            problems,
        )
    return collector.result()


_AFFECTNET_HEADER = (
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "facial_landmarks",
    "expression",
    "valence",
    "arousal",
)
_N_LANDMARK_VALUES = 136  # 68 (x, y) points


def _affectnet_row(line: str, claim: Claim, *, split: str) -> Row:
    fields = csv_fields(line)
    expect_fields(fields, len(_AFFECTNET_HEADER))
    path = image_path(fields[0], "subDirectory_filePath")
    claim(path)
    for text, name in zip(fields[1:5], _AFFECTNET_HEADER[1:5], strict=True):
        parse_float(text, name)
    landmarks = fields[5].split(";")
    if len(landmarks) != _N_LANDMARK_VALUES:
        raise Reject(
            "facial_landmarks", f"expected {_N_LANDMARK_VALUES} numbers, found {len(landmarks)}"
        )
    for text in landmarks:
        parse_float(text.strip(), "facial_landmarks")
    code = parse_int(fields[6], "expression")
    if code not in AFFECTNET_CODES:
        raise Reject("expression", f"code {code} outside 0..{max(AFFECTNET_CODES)}")
    valence, arousal = parse_va(fields[7], fields[8], marker=AFFECTNET_VA_MISSING)
    if valence == AFFECTNET_VA_MISSING:
        valence = arousal = VA_MISSING
    return Row(path, "", -1, AFFECTNET_TO_ABAW[code], _NO_AUS, valence, arousal, split)


def _load_affectnet(path: Path, split: str | None, options: Options) -> LoadResult:
    file = require_file(path, "affectnet")
    split = split or infer_split(file.name, "the file name")
    lines = read_lines(file)
    check_header(file, lines[0], [_AFFECTNET_HEADER])
    collector = options.collector("affectnet")
    collector.add_lines(str(file), lines[1:], 2, partial(_affectnet_row, split=split))
    return collector.result()


_RAFDB_SPLITS = {"train_": "train", "test_": "test"}


def _rafdb_row(line: str, claim: Claim, *, split: str | None) -> Row:
    fields = line.split()
    expect_fields(fields or [""], 2)
    name = fields[0]
    if "/" in name or "\\" in name:
        raise Reject("name", f"expected a bare file name like train_00001.jpg, found {name!r}")
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        raise Reject("name", f"no file extension in {name!r}")
    if split is None:
        prefix = next((p for p in _RAFDB_SPLITS if name.startswith(p)), None)
        if prefix is None:
            raise Reject(
                "name", f"cannot infer the split: {name!r} starts with neither train_ nor test_"
            )
        split = _RAFDB_SPLITS[prefix]
    # the aligned images (Image/aligned) insert "_aligned" before the extension
    path = image_path(f"{stem}_aligned.{suffix}", "name")
    claim(path)
    code = parse_int(fields[1], "label")
    if code not in RAFDB_CODES:
        raise Reject("label", f"label {code} outside {min(RAFDB_CODES)}..{max(RAFDB_CODES)}")
    return Row(path, "", -1, RAFDB_TO_ABAW[code], _NO_AUS, VA_MISSING, VA_MISSING, split)


def _load_rafdb(path: Path, split: str | None, options: Options) -> LoadResult:
    file = require_file(path, "rafdb")
    lines = read_lines(file)
    collector = options.collector("rafdb")
    collector.add_lines(str(file), lines, 1, partial(_rafdb_row, split=split))
    return collector.result()


_EMOTIONET_CHALLENGE_AUS = tuple(range(1, 61))  # URL, URL_orig, then AU1..AU60


def _emotionet_layout(file: Path, first: list[str]) -> tuple[tuple[int, ...], bool]:
    """(AU number of each field after the first two, whether line 1 is a header)."""
    names = first[2:]
    if names and all(AU_NAME.fullmatch(n.upper()) for n in names):
        numbers = tuple(au_number(n.upper()) for n in names)
        if len(set(numbers)) != len(numbers):
            raise unusable_file(file, "header", f"an AU is named twice: {names}")
        return numbers, True
    if len(first) == 2 + len(_EMOTIONET_CHALLENGE_AUS):
        return _EMOTIONET_CHALLENGE_AUS, False
    if len(first) == 2 + len(EMOTIONET_AUS):
        return EMOTIONET_AUS, False
    raise unusable_file(
        file,
        "header",
        f"cannot tell the AU order of {len(first)} tab-separated fields: expected a header naming "
        f"the AUs (URL, second field, AU1, AU2, ...), {2 + len(_EMOTIONET_CHALLENGE_AUS)} fields "
        f"(URL, URL_orig, AU1..AU60) or {2 + len(EMOTIONET_AUS)} (URL, second field, the AUs of "
        "labels.EMOTIONET_AUS)",
    )


def _is_relative_image(text: str) -> bool:
    return "://" not in text and PurePosixPath(text).suffix.lower() in IMAGE_SUFFIXES


def _emotionet_path(url: str, second: str) -> str:
    if second and _is_relative_image(second):
        return image_path(second, "second field")
    parts = urlsplit(url)
    if parts.scheme and parts.netloc:
        # not PurePosixPath(...).name: it would turn ".../dir/" into "dir"
        name = unquote(parts.path.rsplit("/", 1)[-1])
        if not name:
            raise Reject("url", f"no file name at the end of the URL {url!r}")
        return image_path(name, "url")
    if url and _is_relative_image(url):
        return image_path(url, "url")
    raise Reject("url", f"neither a URL nor a relative image path: {url!r}")


def _emotionet_row(
    line: str, claim: Claim, *, au_numbers: tuple[int, ...], keep: tuple[int, ...], split: str
) -> Row:
    fields = tab_fields(line)
    expect_fields(fields, 2 + len(au_numbers))
    path = _emotionet_path(fields[0], fields[1])
    claim(path)
    values = [emotionet_au(t, f"AU{n}") for t, n in zip(fields[2:], au_numbers, strict=True)]
    aus = tuple(values[i] for i in keep)
    return Row(path, "", -1, EXPR_MISSING, aus, VA_MISSING, VA_MISSING, split)


def _load_emotionet(path: Path, split: str | None, options: Options) -> LoadResult:
    file = require_file(path, "emotionet")
    split = split or infer_split(file.name, "the file name")
    lines = read_lines(file)
    au_numbers, has_header = _emotionet_layout(file, tab_fields(lines[0]))
    position = {n: i for i, n in enumerate(au_numbers)}
    kept = [n for n in EMOTIONET_AUS if n in position]
    if not kept:
        raise unusable_file(file, "header", "names none of the AUs of labels.EMOTIONET_AUS")
    collector = options.collector("emotionet", [f"AU{n}" for n in kept])
    parse = partial(
        _emotionet_row, au_numbers=au_numbers, keep=tuple(position[n] for n in kept), split=split
    )
    start = 1 if has_header else 0
    collector.add_lines(str(file), lines[start:], start + 1, parse)
    return collector.result()


def load(
    path: str | Path,
    format: str,
    *,
    split: str | None = None,
    images: str | Path | None = None,
    strict: bool = False,
) -> LoadResult:
    """Read one data set's annotations in ``format`` (see the module docstring for each layout).

    ``split`` overrides the inferred split; ``images=ROOT`` also checks that every accepted row's
    image ``ROOT/path`` exists and PIL can verify it; ``strict`` raises AnnotationError on the first
    rejected row instead of collecting errors. Raises UnusableInputError when the input cannot be
    read as the format at all, ValueError for an unknown format or split name.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown annotation format {format!r}; known: {', '.join(FORMATS)}")
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    root = None
    if images is not None:
        root = Path(images)
        if not root.is_dir():
            raise UnusableInputError(f"{root}: image root is not a folder")
    return _LOADERS[format](Path(path), split, Options(strict=strict, images=root))


_LOADERS: dict[str, Callable[[Path, str | None, Options], LoadResult]] = {
    "abaw-mtl": _load_mtl,
    **{task: partial(_load_task, task=task) for task in _TASK_HEADERS},
    "affectnet": _load_affectnet,
    "rafdb": _load_rafdb,
    "emotionet": _load_emotionet,
}


# --- joining the ABAW per-task tables -----------------------------------------------------------

_TASK_LABELS = {
    "abaw-expr": ("expr",),
    "abaw-au": AU_COLUMNS,
    "abaw-va": ("valence", "arousal"),
}
_MARKERS = {"expr": EXPR_MISSING, "valence": VA_MISSING, "arousal": VA_MISSING}


def merge_tasks(
    expr: LoadResult | None, au: LoadResult | None, va: LoadResult | None
) -> pd.DataFrame:
    """One standard table from the ABAW per-task tables, joined on (``path``, ``split``).

    A frame absent from a task carries that task's marker (-1 expression / AUs, -5 VA). The join key
    includes ``split`` because Aff-Wild2's per-task partitions differ: a video can be in one task's
    training set and another's validation set, and then its frames appear once per split, each row
    with the labels of that split's tasks. ``source`` lists the tasks a row came from
    (``abaw-expr+abaw-va``), ``ann_file`` their files joined by ``;``; ``ann_line`` is the same in
    every per-task file (frame + 1).
    """
    pairs = (("abaw-expr", expr), ("abaw-au", au), ("abaw-va", va))
    given = [(t, r) for t, r in pairs if r is not None]
    if not given:
        raise ValueError("merge_tasks needs at least one of expr, au, va")
    keys = ["path", "split"]
    merged: pd.DataFrame | None = None
    for task, result in given:
        table = result.table
        sources = set(table["source"]) or {result.format}
        if sources != {task}:
            raise ValueError(f"merge_tasks: the {task} argument holds rows of {sorted(sources)}")
        part = table[[*keys, "video", "frame", "ann_line", "ann_file", *_TASK_LABELS[task]]]
        part = part.rename(
            columns={c: f"{c}@{task}" for c in ("video", "frame", "ann_line", "ann_file")}
        )
        merged = part if merged is None else merged.merge(part, on=keys, how="outer")
    assert merged is not None
    tasks = [t for t, _ in given]

    def first_present(column: str) -> np.ndarray:
        return merged[[f"{column}@{t}" for t in tasks]].bfill(axis=1).iloc[:, 0].to_numpy()

    present = {t: merged[f"ann_file@{t}"].notna().to_numpy() for t in tasks}
    files = merged[[f"ann_file@{t}" for t in tasks]].to_numpy()
    n = len(merged)
    data: dict[str, Sequence | np.ndarray] = {
        "path": merged["path"].to_numpy(),
        "video": first_present("video"),
        "frame": first_present("frame").astype(np.int64),
        "split": merged["split"].to_numpy(),
        "source": ["+".join(t for t in tasks if present[t][i]) for i in range(n)],
        "ann_file": [";".join(f for f in row if isinstance(f, str)) for row in files],
        "ann_line": first_present("ann_line").astype(np.int64),
    }
    for column in ("expr", *AU_COLUMNS, "valence", "arousal"):
        marker = _MARKERS.get(column, AU_MISSING)
        data[column] = (
            merged[column].fillna(marker).to_numpy() if column in merged else np.full(n, marker)
        )
    return build_table(data, AU_COLUMNS)
