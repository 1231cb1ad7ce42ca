"""Reading annotation files row by row, for the loaders of :mod:`affectlib.data.formats`: the
errors and the load result, line reading, field parsers (each raising :class:`Reject` naming the
field), the row collector (accepted rows, one :class:`RowError` per rejected row) and the split and
input resolution. The rules they apply are listed in :mod:`affectlib.data.formats`.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from PIL import Image

from affectlib.data.table import build_table, concat_tables
from affectlib.labels import (
    AU_COLUMNS,
    AU_MISSING,
    EMOTIONET_NOT_CODED,
    EXPR_MISSING,
    EXPRESSIONS,
    VA_MISSING,
)

UNSPECIFIED = "unspecified"  # the split of rows whose file name does not state one


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

    @classmethod
    def combine(cls, results: Sequence[LoadResult], fmt: str) -> LoadResult:
        """Several files' results as one: tables stacked, errors, rows read and files joined."""
        return cls(
            table=concat_tables([r.table for r in results]),
            errors=[e for r in results for e in r.errors],
            rows_read=sum(r.rows_read for r in results),
            files=[f for r in results for f in r.files],
            format=fmt,
        )

    @property
    def rejected(self) -> int:
        return len({(e.file, e.line) for e in self.errors})


# --- reading files --------------------------------------------------------------------------------


class Reject(Exception):
    """A row's first problem; caught by the collector and turned into a RowError."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field_name
        self.reason = reason


def unusable_file(file: Path, field_name: str, reason: str) -> UnusableInputError:
    error = RowError(str(file), 1, field_name, reason)
    return UnusableInputError(str(error), [error])


def read_lines(file: Path) -> list[str]:
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
        raise unusable_file(file, "file", f"cannot read: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise unusable_file(
            file, "file", f"not UTF-8 text (byte {e.start}, on line {line})"
        ) from None
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise unusable_file(file, "file", "empty file: no header or data line")
    return lines


def csv_fields(line: str) -> list[str]:
    """Comma-separated fields, stripped; the csv module only when the line quotes something."""
    if '"' in line:
        try:
            fields = next(csv.reader([line], strict=True))
        except csv.Error as e:
            raise Reject("fields", f"malformed quoting: {e}") from None
    else:
        fields = line.split(",")
    return [f.strip() for f in fields]


def tab_fields(line: str) -> list[str]:
    return [f.strip() for f in line.split("\t")]


def expect_fields(fields: list[str], n: int) -> None:
    if len(fields) == 1 and not fields[0]:
        raise Reject("fields", f"empty line, expected {n} fields")
    if len(fields) != n:
        raise Reject("fields", f"expected {n} fields, found {len(fields)}")


def check_header(file: Path, line: str, expected: Sequence[Sequence[str]]) -> None:
    """Raise UnusableInputError unless the header's fields equal one of ``expected`` (any case)."""
    got = [f.strip().strip('"').lower() for f in line.split(",")]
    if any(got == [e.lower() for e in names] for names in expected):
        return
    wanted = " or ".join(repr(",".join(names)) for names in expected)
    raise unusable_file(file, "header", f"expected {wanted}, found {line!r}")


# --- field parsers (each raises Reject naming the field) -----------------------------------------

INT_TEXT = {"0": 0, "1": 1, "-1": -1}  # the common AU / marker spellings, parsed without float()
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def parse_float(text: str, name: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise Reject(name, f"not a number: {text!r}") from None
    if not math.isfinite(x):
        raise Reject(name, f"not a finite number: {text!r}")
    return x


def parse_int(text: str, name: str) -> int:
    known = INT_TEXT.get(text)
    if known is not None:
        return known
    x = parse_float(text, name)
    if x != int(x):
        raise Reject(name, f"not an integer: {text!r}")
    return int(x)


def image_path(text: str, name: str) -> str:
    """A relative POSIX image path, normalised (``./a//b.jpg`` -> ``a/b.jpg``)."""
    if not text:
        raise Reject(name, "empty image path")
    if "\\" in text:
        raise Reject(name, f"not a POSIX path (backslash): {text!r}")
    if text.startswith("/") or re.match(r"[A-Za-z]:", text):
        raise Reject(name, f"absolute path {text!r}; paths are relative to the image root")
    # string operations, not PurePosixPath: this runs once per row of 100k-row files
    parts = text.split("/")
    if ".." in parts:
        raise Reject(name, f"path {text!r} escapes the image root ('..')")
    if parts[-1] in ("", "."):
        raise Reject(name, f"not a file path: {text!r}")
    if "" in parts or "." in parts:
        return "/".join(p for p in parts if p not in ("", "."))
    return text


def video_frame(path: str, name: str) -> tuple[str, int]:
    """``VIDEO/00042.jpg`` -> ("VIDEO", 42); frames are numbered from 1. ``path`` is normalised."""
    video, _, file_name = path.rpartition("/")
    if not video:
        raise Reject(name, f"expected VIDEO/FRAME.jpg, found no video folder in {path!r}")
    stem = file_name.rpartition(".")[0] or file_name
    if not (stem.isascii() and stem.isdigit()):
        raise Reject(name, f"file name {file_name!r} is not a frame number")
    frame = int(stem)
    if frame < 1:
        raise Reject(name, f"frame {frame} in {path!r}: frames are numbered from 1")
    return video, frame


def abaw_expr(text: str, name: str) -> int:
    x = parse_int(text, name)
    if not EXPR_MISSING <= x < len(EXPRESSIONS):
        raise Reject(name, f"expression {x} outside -1..{len(EXPRESSIONS) - 1} (-1 = no label)")
    return x


def parse_va(
    v_text: str,
    a_text: str,
    marker: float = VA_MISSING,
    names: tuple[str, str] = ("valence", "arousal"),
) -> tuple[float, float]:
    """Valence and arousal in [-1, 1], or both the marker; returned as read (marker kept)."""
    values = (parse_float(v_text, names[0]), parse_float(a_text, names[1]))
    for x, name in zip(values, names, strict=True):
        if x != marker and not -1.0 <= x <= 1.0:
            raise Reject(name, f"{x:g} outside [-1, 1] (the no-label marker is {marker:g})")
    v, a = values
    if (v == marker) != (a == marker):
        missing, other = (names[0], names[1]) if v == marker else (names[1], names[0])
        labelled = a if v == marker else v
        raise Reject(
            missing,
            f"{missing} is the no-label marker {marker:g} while {other} is {labelled:g}: "
            "both or neither",
        )
    return v, a


def abaw_au(text: str, name: str) -> int:
    x = parse_int(text, name)
    if x not in (AU_MISSING, 0, 1):
        raise Reject(name, f"AU value {x} not in 0, 1, -1 (-1 = no label)")
    return x


def abaw_aus(texts: Sequence[str], names: Sequence[str] = AU_COLUMNS) -> tuple[int, ...]:
    """The 12 ABAW AUs, each 0/1/-1, all -1 or none (a frame is AU-annotated as a whole)."""
    values = [INT_TEXT.get(t) for t in texts]  # fast path: "0", "1", "-1" are all in range
    if None in values:
        values = [abaw_au(t, n) for t, n in zip(texts, names, strict=True)]
    if AU_MISSING in values and values.count(AU_MISSING) != len(values):
        missing = [n for n, x in zip(names, values, strict=True) if x == AU_MISSING]
        raise Reject(
            missing[0],
            f"{len(missing)} of {len(values)} AUs are -1 ({', '.join(missing)}) while the others "
            "are labelled: all or none",
        )
    return tuple(values)


def emotionet_au(text: str, name: str) -> int:
    x = parse_int(text, name)
    if x == EMOTIONET_NOT_CODED:
        return AU_MISSING
    if x not in (0, 1):
        raise Reject(name, f"AU value {x} not in 0, 1, {EMOTIONET_NOT_CODED} (= not coded)")
    return x


# --- accumulating rows ----------------------------------------------------------------------------


class Row(NamedTuple):
    path: str
    video: str
    frame: int
    expr: int
    aus: tuple[int, ...]
    valence: float
    arousal: float
    split: str


Claim = Callable[[str], None]
RowParser = Callable[[str, Claim], Row]


class Collector:
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
            raise Reject("image", f"duplicate image {path!r}, first on {where}")

    def add(self, file: str, line_no: int, line: str, parse: RowParser) -> None:
        self.rows_read += 1
        self._where = (file, line_no)
        try:
            row = parse(line, self.claim)
            if self.images is not None:
                check_image(self.images, row.path)
        except Reject as r:
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


def check_image(root: Path, path: str) -> None:
    file = root / path
    if not file.is_file():
        raise Reject("image", f"image not found: {file}")
    try:
        with Image.open(file) as im:
            im.verify()
    except (
        Exception
    ) as e:  # PIL signals a bad file with many exception types; all mean "undecodable"
        raise Reject("image", f"cannot decode image {file}: {type(e).__name__}: {e}") from None


@dataclass(frozen=True)
class Options:
    strict: bool
    images: Path | None

    def collector(self, fmt: str, au_columns: Sequence[str] = AU_COLUMNS) -> Collector:
        return Collector(fmt, au_columns, strict=self.strict, images=self.images)


# --- split and input resolution -------------------------------------------------------------------


def infer_split(name: str, what: str) -> str:
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


def require_file(path: Path, fmt: str) -> Path:
    if not path.exists():
        raise UnusableInputError(f"{path}: no such file")
    if path.is_dir():
        raise UnusableInputError(f"{path}: is a directory; format {fmt} expects an annotation file")
    return path


def task_files(path: Path) -> list[Path]:
    if not path.exists():
        raise UnusableInputError(f"{path}: no such file or folder")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".txt" and p.is_file())
        if not files:
            raise UnusableInputError(f"{path}: folder holds no .txt annotation files")
        return files
    return [path]
