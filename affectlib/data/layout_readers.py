"""Reading a data set found by :mod:`affectlib.data.layouts`: :func:`load_found` turns a
:class:`~affectlib.data.layouts.Found` into the standard annotation table
(:mod:`affectlib.data.table`) with the total validation of :mod:`affectlib.data.formats`: every row
accepted or rejected with ``FILE:LINE: field: reason``, ``accepted + rejected == rows_read``,
``strict`` raising on the first. The layouts that :mod:`affectlib.data.formats` does not read
itself (the RAF-DB CSV mirror, class folders, Aff-Wild2's per-task files of ABAW 2020) have their
readers here."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from affectlib.data import formats
from affectlib.data.layouts import _CLASS_OF, _CLASS_RULE, Found, Part
from affectlib.data.parsing import (
    IMAGE_SUFFIXES,
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
    parse_int,
    read_lines,
)
from affectlib.labels import (
    AU_MISSING,
    EXPR_MISSING,
    EXPRESSIONS,
    N_AU,
    RAFDB_CODES,
    RAFDB_TO_ABAW,
    VA_MISSING,
)

__all__ = ["load_found"]

# --- readers of the new layouts -------------------------------------------------------------------

_NO_AUS = (AU_MISSING,) * N_AU
_RAFDB_CSV_HEADER = ("image", "label")


def _rafdb_csv_row(line: str, claim: Claim, *, split: str, folder: str) -> Row:
    fields = csv_fields(line)
    expect_fields(fields, 2)
    name = fields[0]
    if not name or "/" in name or "\\" in name:
        raise Reject(
            "image", f"expected a bare file name like train_00001_aligned.jpg, found {name!r}"
        )
    code = parse_int(fields[1], "label")
    if code not in RAFDB_CODES:
        hint = (
            " (this layout uses RAF-DB's codes 1..7; a 0..6 file is not read)" if code == 0 else ""
        )
        raise Reject("label", f"label {code} outside 1..7{hint}")
    path = image_path(f"{folder}/{code}/{name}", "image")
    claim(path)
    return Row(path, "", -1, RAFDB_TO_ABAW[code], _NO_AUS, VA_MISSING, VA_MISSING, split)


def _load_rafdb_csv(part: Part, options: Options) -> LoadResult:
    lines = read_lines(part.path)
    check_header(part.path, lines[0], [_RAFDB_CSV_HEADER])
    split = part.split or "unspecified"
    folder = part.path.name.split("_labels")[0]  # train_labels.csv -> the images' train/ folder
    collector = options.collector("rafdb-csv")
    collector.add_lines(
        str(part.path), lines[1:], 2, partial(_rafdb_csv_row, split=split, folder=folder)
    )
    return collector.result()


def _folder_row(
    rel: str, claim: Claim, *, split: str, expr: int | None, class_name: str, layout: str
) -> Row:
    if _suffix(rel) not in IMAGE_SUFFIXES:
        raise Reject("file", f"not an image file (suffix {_suffix(rel) or 'none'!r})")
    if not class_name:
        raise Reject("file", "an image directly in the split folder: it has no class folder")
    if expr is None:
        raise Reject("class", f"class folder {class_name!r} is not one of {_CLASS_RULE[layout]}")
    path = image_path(rel, "file")
    claim(path)
    return Row(path, "", -1, expr, _NO_AUS, VA_MISSING, VA_MISSING, split)


def _suffix(rel: str) -> str:
    name = rel.rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _load_folder(part: Part, options: Options, *, base: Path, layout: str) -> LoadResult:
    collector = options.collector(layout)
    class_of = _CLASS_OF[layout]
    split = part.split or "unspecified"
    collector.files.append(str(part.path))
    for entry in sorted(part.path.iterdir()):
        files = sorted(p for p in entry.rglob("*") if p.is_file()) if entry.is_dir() else [entry]
        class_name = entry.name if entry.is_dir() else ""
        expr = class_of(class_name) if class_name else None
        for file in files:
            rel = file.relative_to(base).as_posix()
            parse = partial(
                _folder_row, split=split, expr=expr, class_name=class_name, layout=layout
            )
            collector.add(str(file), 0, rel, parse)
    return collector.result()


_EXPR_2020 = EXPRESSIONS[:7]  # ABAW 2020-2021: the 7 classes without Other


def _expr_2020_row(
    line: str, claim: Claim, *, video: str, frame: int, n_classes: int, split: str
) -> Row:
    fields = csv_fields(line)
    expect_fields(fields, 1)
    x = parse_int(fields[0], "expression")
    if not EXPR_MISSING <= x < n_classes:
        raise Reject("expression", f"expression {x} outside -1..{n_classes - 1} (-1 = no label)")
    path = f"{video}/{frame:05d}.jpg"
    claim(path)
    return Row(path, video, frame, x, _NO_AUS, VA_MISSING, VA_MISSING, split)


def _load_expr_2020(part: Part, options: Options) -> LoadResult:
    """The 2020-2021 expression folder: 7-name header (codes 0..6) or the 8-name one (0..7)."""
    files = sorted(p for p in part.path.iterdir() if p.suffix.lower() == ".txt" and p.is_file())
    if not files:
        raise UnusableInputError(f"{part.path}: folder holds no .txt annotation files")
    collector = options.collector("abaw-expr")
    problems: list[RowError] = []
    for file in files:
        try:
            lines = read_lines(file)
            check_header(file, lines[0], [_EXPR_2020, EXPRESSIONS])
        except UnusableInputError as e:
            problems.extend(e.errors or [RowError(str(file), 1, "file", str(e))])
            continue
        n_classes = len(lines[0].split(","))
        collector.files.append(str(file))
        for line_no, line in enumerate(lines[1:], start=2):
            parse = partial(
                _expr_2020_row,
                video=file.stem,
                frame=line_no - 1,
                n_classes=n_classes,
                split=part.split or "unspecified",
            )
            collector.add(str(file), line_no, line, parse)
    if problems:
        listing = "\n".join(str(p) for p in problems)
        raise UnusableInputError(
            f"{len(problems)} of {len(files)} files cannot be read as abaw-expr:\n{listing}",
            problems,
        )
    return collector.result()


def _read_part(found: Found, part: Part, options: Options) -> LoadResult:
    if part.reader in formats.FORMATS:
        images = options.images
        return formats.load(
            part.path, part.reader, split=part.split, images=images, strict=options.strict
        )
    if part.reader == "rafdb-csv":
        return _load_rafdb_csv(part, options)
    if part.reader == "abaw-expr-2020":
        return _load_expr_2020(part, options)
    return _load_folder(part, options, base=found.images, layout=part.reader)


def load_found(found: Found, *, check_images: bool = False, strict: bool = False) -> LoadResult:
    """Every annotation of ``found`` as one LoadResult (``format`` = the layout's name).

    ``check_images``: every accepted row's image must exist under ``found.images`` and open with
    PIL (as ``formats.load(images=...)``). Per-task Aff-Wild2 layouts are joined per (frame, split)
    with :func:`affectlib.data.formats.merge_tasks` (see the module docstring for ``rows_read``).
    """
    if check_images and not found.images.is_dir():
        raise UnusableInputError(f"{found.images}: image folder not found ({found.layout.name})")
    options = Options(strict=strict, images=found.images if check_images else None)
    name = found.layout.name
    if name.startswith("affwild2-tasks"):
        by_task: dict[str, list[LoadResult]] = {}
        for part in found.parts:
            task = part.reader.removesuffix("-2020")
            by_task.setdefault(task, []).append(_read_part(found, part, options))
        combined = {t: LoadResult.combine(rs, t) for t, rs in by_task.items()}
        table = formats.merge_tasks(
            combined.get("abaw-expr"), combined.get("abaw-au"), combined.get("abaw-va")
        )
        errors = [e for r in combined.values() for e in r.errors]
        rejected = len({(e.file, e.line) for e in errors})
        files = [f for r in combined.values() for f in r.files]
        return LoadResult(table, errors, len(table) + rejected, files, format=name)
    return LoadResult.combine([_read_part(found, p, options) for p in found.parts], name)
