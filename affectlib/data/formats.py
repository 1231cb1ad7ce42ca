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
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd
from PIL import Image

from affectlib.labels import (
    AFFECTNET_CODES,
    AFFECTNET_TO_ABAW,
    AFFECTNET_VA_MISSING,
    AU_COLUMNS,
    AU_MISSING,
    EMOTIONET_AUS,
    EMOTIONET_NOT_CODED,
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
    "UNSPECIFIED",
    "AnnotationError",
    "LoadResult",
    "RowError",
    "UnusableInputError",
    "au_columns_of",
    "build_table",
    "concat_tables",
    "empty_table",
    "load",
    "merge_tasks",
    "table_columns",
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
UNSPECIFIED = "unspecified"  # the split of rows whose file name does not state one

# --- the standard annotation table ------------------------------------------------------------

_STR_COLUMNS = frozenset({"path", "video", "split", "source", "ann_file"})
_FLOAT_COLUMNS = frozenset({"valence", "arousal"})
_AU_NAME = re.compile(r"AU([1-9][0-9]*)")


def table_columns(au_columns: Sequence[str] = AU_COLUMNS) -> list[str]:
    """The standard table's columns in order, ``au_columns`` between ``expr`` and ``valence``."""
    for name in au_columns:
        if not _AU_NAME.fullmatch(name):
            raise ValueError(f"AU column {name!r} is not of the form 'AU<n>'")
    if len(set(au_columns)) != len(au_columns):
        raise ValueError(f"AU columns repeat: {list(au_columns)}")
    return [
        "path",
        "video",
        "frame",
        "expr",
        *au_columns,
        "valence",
        "arousal",
        "split",
        "source",
        "ann_file",
        "ann_line",
    ]


def _column(name: str, values: Sequence | np.ndarray) -> pd.Series:
    # explicit dtypes so that an empty table and a full one concatenate without object/float drift
    if name in _STR_COLUMNS:
        return pd.Series(list(values), dtype=str)
    if name in _FLOAT_COLUMNS:
        return pd.Series(np.asarray(values, dtype=np.float64))
    return pd.Series(np.asarray(values, dtype=np.int64))


def build_table(
    data: Mapping[str, Sequence | np.ndarray], au_columns: Sequence[str] = AU_COLUMNS
) -> pd.DataFrame:
    """The standard table from one sequence per column; the dtype-stable constructor.

    dtypes: ``str`` for path/video/split/source/ann_file, float64 for valence/arousal, int64 for the
    rest. ``data`` must hold exactly ``table_columns(au_columns)``, all of one length.
    """
    columns = table_columns(au_columns)
    missing = [c for c in columns if c not in data]
    extra = [c for c in data if c not in columns]
    if missing or extra:
        raise ValueError(f"table columns: missing {missing}, unexpected {extra}")
    lengths = {c: len(data[c]) for c in columns}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"table columns differ in length: {lengths}")
    return pd.DataFrame({c: _column(c, data[c]) for c in columns})


def empty_table(au_columns: Sequence[str] = AU_COLUMNS) -> pd.DataFrame:
    """A standard table with no rows and the same dtypes as a full one."""
    return build_table({c: [] for c in table_columns(au_columns)}, au_columns)


def au_columns_of(table: pd.DataFrame) -> tuple[str, ...]:
    """The ``AU<n>`` columns of a table, in table order."""
    return tuple(c for c in table.columns if _AU_NAME.fullmatch(str(c)))


def concat_tables(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Rows of several standard tables in one; AU columns are the union, ordered by AU number.

    An AU a table lacks is filled with -1 (no label), so ABAW and EmotioNet tables stack with int
    dtypes intact (plain ``pd.concat`` would fill NaN and turn the AU columns to float).
    """
    if not tables:
        raise ValueError("concat_tables needs at least one table")
    aus = sorted({c for t in tables for c in au_columns_of(t)}, key=lambda c: int(c[2:]))
    filled = [t.assign(**{c: AU_MISSING for c in aus if c not in t.columns}) for t in tables]
    columns = table_columns(aus)
    merged = pd.concat([t[columns] for t in filled], ignore_index=True)
    return build_table({c: merged[c].to_numpy() for c in columns}, aus)


# --- errors and results --------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    """Why one row (or, on line 1 with field ``header`` / ``file``, one file) was not accepted."""

    file: str
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.reason}"

    def as_dict(self) -> dict[str, str | int]:
        return {"file": self.file, "line": self.line, "field": self.field, "reason": self.reason}


class AnnotationError(ValueError):
    """Raised by ``load(..., strict=True)`` at the first rejected row; ``.error`` says which."""

    def __init__(self, error: RowError) -> None:
        super().__init__(str(error))
        self.error = error


class UnusableInputError(Exception):
    """The input cannot be read as the format at all; ``errors`` names the files at fault."""

    def __init__(self, message: str, errors: Sequence[RowError] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors)


@dataclass
class LoadResult:
    """The accepted rows as a standard table, one error per rejected row, and the rows read."""

    table: pd.DataFrame
    errors: list[RowError]
    rows_read: int
    files: list[str]
    format: str = ""

    @property
    def accepted(self) -> int:
        return len(self.table)

    @property
    def rejected(self) -> int:
        return len({(e.file, e.line) for e in self.errors})


# --- reading files --------------------------------------------------------------------------------


class _Reject(Exception):
    """A row's first problem; caught by the collector and turned into a RowError."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field_name
        self.reason = reason


def _unusable_file(file: Path, field_name: str, reason: str) -> UnusableInputError:
    error = RowError(str(file), 1, field_name, reason)
    return UnusableInputError(str(error), [error])


def _read_lines(file: Path) -> list[str]:
    """The file's lines without line endings or trailing whitespace; trailing blank lines dropped.

    Decoded as UTF-8 with an optional BOM; ``\\n`` and ``\\r\\n`` both end a line, and nothing else
    does, so line numbers match what an editor shows. Raises UnusableInputError when the file is
    unreadable, not UTF-8, or holds no line at all.
    """
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise UnusableInputError(f"{file}: no such file") from None
    except IsADirectoryError:
        raise UnusableInputError(f"{file}: is a directory, expected an annotation file") from None
    except OSError as e:
        raise _unusable_file(file, "file", f"cannot read: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise _unusable_file(
            file, "file", f"not UTF-8 text (byte {e.start}, on line {line})"
        ) from None
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise _unusable_file(file, "file", "empty file: no header or data line")
    return lines


def _csv_fields(line: str) -> list[str]:
    """Comma-separated fields, stripped; the csv module only when the line quotes something."""
    if '"' in line:
        try:
            fields = next(csv.reader([line], strict=True))
        except csv.Error as e:
            raise _Reject("fields", f"malformed quoting: {e}") from None
    else:
        fields = line.split(",")
    return [f.strip() for f in fields]


def _tab_fields(line: str) -> list[str]:
    return [f.strip() for f in line.split("\t")]


def _expect_fields(fields: list[str], n: int) -> None:
    if len(fields) == 1 and not fields[0]:
        raise _Reject("fields", f"empty line, expected {n} fields")
    if len(fields) != n:
        raise _Reject("fields", f"expected {n} fields, found {len(fields)}")


def _check_header(file: Path, line: str, expected: Sequence[Sequence[str]]) -> None:
    """Raise UnusableInputError unless the header's fields equal one of ``expected`` (any case)."""
    got = [f.strip().strip('"').lower() for f in line.split(",")]
    if any(got == [e.lower() for e in names] for names in expected):
        return
    wanted = " or ".join(repr(",".join(names)) for names in expected)
    raise _unusable_file(file, "header", f"expected {wanted}, found {line!r}")


# --- field parsers (each raises _Reject naming the field) -----------------------------------------

_INT_TEXT = {"0": 0, "1": 1, "-1": -1}  # the common AU / marker spellings, parsed without float()
_IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def _parse_float(text: str, name: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise _Reject(name, f"not a number: {text!r}") from None
    if not math.isfinite(x):
        raise _Reject(name, f"not a finite number: {text!r}")
    return x


def _parse_int(text: str, name: str) -> int:
    known = _INT_TEXT.get(text)
    if known is not None:
        return known
    x = _parse_float(text, name)
    if x != int(x):
        raise _Reject(name, f"not an integer: {text!r}")
    return int(x)


def _image_path(text: str, name: str) -> str:
    """A relative POSIX image path, normalised (``./a//b.jpg`` -> ``a/b.jpg``)."""
    if not text:
        raise _Reject(name, "empty image path")
    if "\\" in text:
        raise _Reject(name, f"not a POSIX path (backslash): {text!r}")
    if text.startswith("/") or re.match(r"[A-Za-z]:", text):
        raise _Reject(name, f"absolute path {text!r}; paths are relative to the image root")
    # string operations, not PurePosixPath: this runs once per row of 100k-row files
    parts = text.split("/")
    if ".." in parts:
        raise _Reject(name, f"path {text!r} escapes the image root ('..')")
    if parts[-1] in ("", "."):
        raise _Reject(name, f"not a file path: {text!r}")
    if "" in parts or "." in parts:
        return "/".join(p for p in parts if p not in ("", "."))
    return text


def _video_frame(path: str, name: str) -> tuple[str, int]:
    """``VIDEO/00042.jpg`` -> ("VIDEO", 42); frames are numbered from 1. ``path`` is normalised."""
    video, _, file_name = path.rpartition("/")
    if not video:
        raise _Reject(name, f"expected VIDEO/FRAME.jpg, found no video folder in {path!r}")
    stem = file_name.rpartition(".")[0] or file_name
    if not (stem.isascii() and stem.isdigit()):
        raise _Reject(name, f"file name {file_name!r} is not a frame number")
    frame = int(stem)
    if frame < 1:
        raise _Reject(name, f"frame {frame} in {path!r}: frames are numbered from 1")
    return video, frame


def _abaw_expr(text: str, name: str) -> int:
    x = _parse_int(text, name)
    if not EXPR_MISSING <= x < len(EXPRESSIONS):
        raise _Reject(name, f"expression {x} outside -1..{len(EXPRESSIONS) - 1} (-1 = no label)")
    return x


def _va(
    v_text: str,
    a_text: str,
    marker: float = VA_MISSING,
    names: tuple[str, str] = ("valence", "arousal"),
) -> tuple[float, float]:
    """Valence and arousal in [-1, 1], or both the marker; returned as read (marker kept)."""
    values = (_parse_float(v_text, names[0]), _parse_float(a_text, names[1]))
    for x, name in zip(values, names, strict=True):
        if x != marker and not -1.0 <= x <= 1.0:
            raise _Reject(name, f"{x:g} outside [-1, 1] (the no-label marker is {marker:g})")
    v, a = values
    if (v == marker) != (a == marker):
        missing, other = (names[0], names[1]) if v == marker else (names[1], names[0])
        labelled = a if v == marker else v
        raise _Reject(
            missing,
            f"{missing} is the no-label marker {marker:g} while {other} is {labelled:g}: "
            "both or neither",
        )
    return v, a


def _abaw_au(text: str, name: str) -> int:
    x = _parse_int(text, name)
    if x not in (AU_MISSING, 0, 1):
        raise _Reject(name, f"AU value {x} not in 0, 1, -1 (-1 = no label)")
    return x


def _abaw_aus(texts: Sequence[str], names: Sequence[str] = AU_COLUMNS) -> tuple[int, ...]:
    """The 12 ABAW AUs, each 0/1/-1, all -1 or none (a frame is AU-annotated as a whole)."""
    values = [_INT_TEXT.get(t) for t in texts]  # fast path: "0", "1", "-1" are all in range
    if None in values:
        values = [_abaw_au(t, n) for t, n in zip(texts, names, strict=True)]
    if AU_MISSING in values and values.count(AU_MISSING) != len(values):
        missing = [n for n, x in zip(names, values, strict=True) if x == AU_MISSING]
        raise _Reject(
            missing[0],
            f"{len(missing)} of {len(values)} AUs are -1 ({', '.join(missing)}) while the others "
            "are labelled: all or none",
        )
    return tuple(values)


def _emotionet_au(text: str, name: str) -> int:
    x = _parse_int(text, name)
    if x == EMOTIONET_NOT_CODED:
        return AU_MISSING
    if x not in (0, 1):
        raise _Reject(name, f"AU value {x} not in 0, 1, {EMOTIONET_NOT_CODED} (= not coded)")
    return x


# --- accumulating rows ----------------------------------------------------------------------------


class _Row(NamedTuple):
    path: str
    video: str
    frame: int
    expr: int
    aus: tuple[int, ...]
    valence: float
    arousal: float
    split: str


Claim = Callable[[str], None]
RowParser = Callable[[str, Claim], _Row]


class _Collector:
    """Runs a row parser on every data line and keeps the accepted rows and the errors."""

    def __init__(
        self, fmt: str, au_columns: Sequence[str], *, strict: bool, images: Path | None
    ) -> None:
        self.fmt = fmt
        self.au_columns = tuple(au_columns)
        self.strict = strict
        self.images = images
        self.rows: list[tuple] = []
        self.errors: list[RowError] = []
        self.rows_read = 0
        self.files: list[str] = []
        self._first_seen: dict[str, tuple[str, int]] = {}
        self._where: tuple[str, int] = ("", 0)

    def claim(self, path: str) -> None:
        """Register an image path; a second occurrence is rejected naming the first."""
        first = self._first_seen.setdefault(path, self._where)
        if first != self._where:
            where = f"line {first[1]}" if first[0] == self._where[0] else f"{first[0]}:{first[1]}"
            raise _Reject("image", f"duplicate image {path!r}, first on {where}")

    def add(self, file: str, line_no: int, line: str, parse: RowParser) -> None:
        self.rows_read += 1
        self._where = (file, line_no)
        try:
            row = parse(line, self.claim)
            if self.images is not None:
                _check_image(self.images, row.path)
        except _Reject as r:
            error = RowError(file, line_no, r.field, r.reason)
            if self.strict:
                raise AnnotationError(error) from None
            self.errors.append(error)
            return
        self.rows.append((*row, file, line_no))

    def add_lines(
        self, file: str, lines: Sequence[str], first_line_no: int, parse: RowParser
    ) -> None:
        self.files.append(file)
        for line_no, line in enumerate(lines, start=first_line_no):
            self.add(file, line_no, line, parse)

    def result(self) -> LoadResult:
        n, k = len(self.rows), len(self.au_columns)
        cols = list(zip(*self.rows, strict=True)) if self.rows else [()] * 10
        path, video, frame, expr, aus, valence, arousal, split, ann_file, ann_line = cols
        au = np.asarray(aus, dtype=np.int64).reshape(n, k)
        data: dict[str, Sequence | np.ndarray] = {
            "path": path,
            "video": video,
            "frame": frame,
            "expr": expr,
            **{name: au[:, j] for j, name in enumerate(self.au_columns)},
            "valence": valence,
            "arousal": arousal,
            "split": split,
            "source": [self.fmt] * n,
            "ann_file": ann_file,
            "ann_line": ann_line,
        }
        table = build_table(data, self.au_columns)
        return LoadResult(table, self.errors, self.rows_read, self.files, format=self.fmt)


def _check_image(root: Path, path: str) -> None:
    file = root / path
    if not file.is_file():
        raise _Reject("image", f"image not found: {file}")
    try:
        with Image.open(file) as im:
            im.verify()
    except (
        Exception
    ) as e:  # PIL signals a bad file with many exception types; all mean "undecodable"
        raise _Reject("image", f"cannot decode image {file}: {type(e).__name__}: {e}") from None


@dataclass(frozen=True)
class _Options:
    strict: bool
    images: Path | None

    def collector(self, fmt: str, au_columns: Sequence[str] = AU_COLUMNS) -> _Collector:
        return _Collector(fmt, au_columns, strict=self.strict, images=self.images)


# --- split and input resolution -------------------------------------------------------------------


def _infer_split(name: str, what: str) -> str:
    """The split a file or folder name states (exactly one of train / valid / test in it), else
    ``UNSPECIFIED``: validating rows does not need a split, and no row is assumed to be training data."""
    del what
    low = name.lower()
    found = [
        s
        for key, s in (("train", "train"), ("valid", "validation"), ("test", "test"))
        if key in low
    ]
    return found[0] if len(found) == 1 else UNSPECIFIED


def _require_file(path: Path, fmt: str) -> Path:
    if not path.exists():
        raise UnusableInputError(f"{path}: no such file")
    if path.is_dir():
        raise UnusableInputError(f"{path}: is a directory; format {fmt} expects an annotation file")
    return path


def _task_files(path: Path) -> list[Path]:
    if not path.exists():
        raise UnusableInputError(f"{path}: no such file or folder")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".txt" and p.is_file())
        if not files:
            raise UnusableInputError(f"{path}: folder holds no .txt annotation files")
        return files
    return [path]


# --- the formats ----------------------------------------------------------------------------------

_MTL_HEADERS = (
    ("image", "valence", "arousal", "expression", "aus"),
    ("image", "valence", "arousal", "expression", *AU_COLUMNS),
)


def _mtl_row(line: str, claim: Claim, *, split: str) -> _Row:
    fields = _csv_fields(line)
    _expect_fields(fields, 4 + N_AU)
    path = _image_path(fields[0], "image")
    video, frame = _video_frame(path, "image")
    claim(path)
    expr = _abaw_expr(fields[3], "expression")
    valence, arousal = _va(fields[1], fields[2])
    aus = _abaw_aus(fields[4:])
    return _Row(path, video, frame, expr, aus, valence, arousal, split)


def _load_mtl(path: Path, split: str | None, options: _Options) -> LoadResult:
    file = _require_file(path, "abaw-mtl")
    split = split or _infer_split(file.name, "the file name")
    lines = _read_lines(file)
    _check_header(file, lines[0], _MTL_HEADERS)
    collector = options.collector("abaw-mtl")
    collector.add_lines(str(file), lines[1:], 2, partial(_mtl_row, split=split))
    return collector.result()


_NO_AUS = (AU_MISSING,) * N_AU
_TASK_HEADERS = {
    "abaw-expr": EXPRESSIONS,
    "abaw-au": AU_COLUMNS,
    "abaw-va": ("valence", "arousal"),
}


def _task_row(line: str, claim: Claim, *, task: str, video: str, frame: int, split: str) -> _Row:
    fields = _csv_fields(line)
    path = f"{video}/{frame:05d}.jpg"
    claim(path)
    expr, aus, valence, arousal = EXPR_MISSING, _NO_AUS, VA_MISSING, VA_MISSING
    if task == "abaw-expr":
        _expect_fields(fields, 1)
        expr = _abaw_expr(fields[0], "expression")
    elif task == "abaw-au":
        _expect_fields(fields, N_AU)
        aus = _abaw_aus(fields)
    else:
        _expect_fields(fields, 2)
        valence, arousal = _va(fields[0], fields[1])
    return _Row(path, video, frame, expr, aus, valence, arousal, split)


def _load_task(path: Path, split: str | None, options: _Options, *, task: str) -> LoadResult:
    files = _task_files(path)
    collector = options.collector(task)
    folder = path if path.is_dir() else path.parent
    split = split or _infer_split(folder.resolve().name, "the folder name")
    problems: list[RowError] = []
    for file in files:
        try:
            lines = _read_lines(file)
            _check_header(file, lines[0], [_TASK_HEADERS[task]])
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


def _affectnet_row(line: str, claim: Claim, *, split: str) -> _Row:
    fields = _csv_fields(line)
    _expect_fields(fields, len(_AFFECTNET_HEADER))
    path = _image_path(fields[0], "subDirectory_filePath")
    claim(path)
    for text, name in zip(fields[1:5], _AFFECTNET_HEADER[1:5], strict=True):
        _parse_float(text, name)
    landmarks = fields[5].split(";")
    if len(landmarks) != _N_LANDMARK_VALUES:
        raise _Reject(
            "facial_landmarks", f"expected {_N_LANDMARK_VALUES} numbers, found {len(landmarks)}"
        )
    for text in landmarks:
        _parse_float(text.strip(), "facial_landmarks")
    code = _parse_int(fields[6], "expression")
    if code not in AFFECTNET_CODES:
        raise _Reject("expression", f"code {code} outside 0..{max(AFFECTNET_CODES)}")
    valence, arousal = _va(fields[7], fields[8], marker=AFFECTNET_VA_MISSING)
    if valence == AFFECTNET_VA_MISSING:
        valence = arousal = VA_MISSING
    return _Row(path, "", -1, AFFECTNET_TO_ABAW[code], _NO_AUS, valence, arousal, split)


def _load_affectnet(path: Path, split: str | None, options: _Options) -> LoadResult:
    file = _require_file(path, "affectnet")
    split = split or _infer_split(file.name, "the file name")
    lines = _read_lines(file)
    _check_header(file, lines[0], [_AFFECTNET_HEADER])
    collector = options.collector("affectnet")
    collector.add_lines(str(file), lines[1:], 2, partial(_affectnet_row, split=split))
    return collector.result()


_RAFDB_SPLITS = {"train_": "train", "test_": "test"}


def _rafdb_row(line: str, claim: Claim, *, split: str | None) -> _Row:
    fields = line.split()
    _expect_fields(fields or [""], 2)
    name = fields[0]
    if "/" in name or "\\" in name:
        raise _Reject("name", f"expected a bare file name like train_00001.jpg, found {name!r}")
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        raise _Reject("name", f"no file extension in {name!r}")
    if split is None:
        prefix = next((p for p in _RAFDB_SPLITS if name.startswith(p)), None)
        if prefix is None:
            raise _Reject(
                "name", f"cannot infer the split: {name!r} starts with neither train_ nor test_"
            )
        split = _RAFDB_SPLITS[prefix]
    # the aligned images (Image/aligned) insert "_aligned" before the extension
    path = _image_path(f"{stem}_aligned.{suffix}", "name")
    claim(path)
    code = _parse_int(fields[1], "label")
    if code not in RAFDB_CODES:
        raise _Reject("label", f"label {code} outside {min(RAFDB_CODES)}..{max(RAFDB_CODES)}")
    return _Row(path, "", -1, RAFDB_TO_ABAW[code], _NO_AUS, VA_MISSING, VA_MISSING, split)


def _load_rafdb(path: Path, split: str | None, options: _Options) -> LoadResult:
    file = _require_file(path, "rafdb")
    lines = _read_lines(file)
    collector = options.collector("rafdb")
    collector.add_lines(str(file), lines, 1, partial(_rafdb_row, split=split))
    return collector.result()


_EMOTIONET_CHALLENGE_AUS = tuple(range(1, 61))  # URL, URL_orig, then AU1..AU60


def _emotionet_layout(file: Path, first: list[str]) -> tuple[tuple[int, ...], bool]:
    """(AU number of each field after the first two, whether line 1 is a header)."""
    names = first[2:]
    if names and all(_AU_NAME.fullmatch(n.upper()) for n in names):
        numbers = tuple(int(n[2:]) for n in names)
        if len(set(numbers)) != len(numbers):
            raise _unusable_file(file, "header", f"an AU is named twice: {names}")
        return numbers, True
    if len(first) == 2 + len(_EMOTIONET_CHALLENGE_AUS):
        return _EMOTIONET_CHALLENGE_AUS, False
    if len(first) == 2 + len(EMOTIONET_AUS):
        return EMOTIONET_AUS, False
    raise _unusable_file(
        file,
        "header",
        f"cannot tell the AU order of {len(first)} tab-separated fields: expected a header naming "
        f"the AUs (URL, second field, AU1, AU2, ...), {2 + len(_EMOTIONET_CHALLENGE_AUS)} fields "
        f"(URL, URL_orig, AU1..AU60) or {2 + len(EMOTIONET_AUS)} (URL, second field, the AUs of "
        "labels.EMOTIONET_AUS)",
    )


def _is_relative_image(text: str) -> bool:
    return "://" not in text and PurePosixPath(text).suffix.lower() in _IMAGE_SUFFIXES


def _emotionet_path(url: str, second: str) -> str:
    if second and _is_relative_image(second):
        return _image_path(second, "second field")
    parts = urlsplit(url)
    if parts.scheme and parts.netloc:
        # not PurePosixPath(...).name: it would turn ".../dir/" into "dir"
        name = unquote(parts.path.rsplit("/", 1)[-1])
        if not name:
            raise _Reject("url", f"no file name at the end of the URL {url!r}")
        return _image_path(name, "url")
    if url and _is_relative_image(url):
        return _image_path(url, "url")
    raise _Reject("url", f"neither a URL nor a relative image path: {url!r}")


def _emotionet_row(
    line: str, claim: Claim, *, au_numbers: tuple[int, ...], keep: tuple[int, ...], split: str
) -> _Row:
    fields = _tab_fields(line)
    _expect_fields(fields, 2 + len(au_numbers))
    path = _emotionet_path(fields[0], fields[1])
    claim(path)
    values = [_emotionet_au(t, f"AU{n}") for t, n in zip(fields[2:], au_numbers, strict=True)]
    aus = tuple(values[i] for i in keep)
    return _Row(path, "", -1, EXPR_MISSING, aus, VA_MISSING, VA_MISSING, split)


def _load_emotionet(path: Path, split: str | None, options: _Options) -> LoadResult:
    file = _require_file(path, "emotionet")
    split = split or _infer_split(file.name, "the file name")
    lines = _read_lines(file)
    au_numbers, has_header = _emotionet_layout(file, _tab_fields(lines[0]))
    position = {n: i for i, n in enumerate(au_numbers)}
    kept = [n for n in EMOTIONET_AUS if n in position]
    if not kept:
        raise _unusable_file(file, "header", "names none of the AUs of labels.EMOTIONET_AUS")
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
    return _LOADERS[format](Path(path), split, _Options(strict=strict, images=root))


_LOADERS: dict[str, Callable[[Path, str | None, _Options], LoadResult]] = {
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
