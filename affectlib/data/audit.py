"""The data audit: what an annotation file holds, what was rejected and why.

``python -m affectlib audit PATH --format FORMAT [--images ROOT] [--strict] [--json] [--split S]``
loads PATH with ``affectlib.data.formats.load`` and prints the rows read / accepted / rejected, per
task the accepted rows with a label (valid) and with the no-label marker (invalid), which
combinations of expression / AU / VA labels the accepted rows carry (co-missingness), and then every
rejected row as ``FILE:LINE: field: reason``.

A row "has" a task's label when: expression ``expr != -1``; AUs, at least one AU column ``!= -1``
(ABAW rows are all-or-none; EmotioNet codes AUs one by one); VA ``valence != -5`` (the loader has
already rejected rows where only one of valence/arousal is labelled).

Exit status: 0 nothing rejected, 1 rows rejected (with ``--strict``: at the first one, which is
printed), 2 unusable input (missing or unreadable file, wrong or empty header, unknown split, bad
arguments), with the message on stderr and no traceback. ``--json`` prints one JSON object on
stdout: ``rows``, ``accepted``, ``rejected``, ``valid`` and ``invalid`` (``{"expr", "au", "va"}``
counts among accepted rows), ``presence`` (accepted rows per label combination, keys like
``expr+au+va``, ``au``, ``none``), ``none``, ``splits``, ``rejected_by_field``, ``files``,
``format``, ``status`` and ``errors`` (a list of ``{"file", "line", "field", "reason"}``).

``--format auto`` (or a layout name of :mod:`affectlib.data.layouts`): PATH is a data set's folder;
its data set and layout are detected and printed (data set, layout, files, splits), every file of it
is read, and ``--images ROOT`` replaces the detected image folder. No layout, or several, is
unusable input (exit 2) with a message listing the known layouts. The JSON then also holds
``layout``, ``dataset``, ``images`` and ``notes``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from itertools import product
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd

from affectlib.data import layout_readers, layouts
from affectlib.data.formats import FORMATS, SPLITS, load
from affectlib.data.parsing import LoadResult, RowError, UnusableInputError
from affectlib.data.table import au_columns_of
from affectlib.labels import AU_MISSING, EXPR_MISSING, VA_MISSING

TASKS: tuple[str, ...] = ("expr", "au", "va")
EXIT_OK, EXIT_REJECTED, EXIT_UNUSABLE = 0, 1, 2


def label_presence(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per task, a boolean array: does the row carry that task's label (not the marker)?"""
    aus = list(au_columns_of(table))
    has_au = (
        (table[aus].to_numpy() != AU_MISSING).any(axis=1) if aus else np.zeros(len(table), bool)
    )
    return {
        "expr": table["expr"].to_numpy() != EXPR_MISSING,
        "au": has_au,
        "va": table["valence"].to_numpy() != VA_MISSING,
    }


def _combination(flags: tuple[bool, ...]) -> str:
    return "+".join(t for t, f in zip(TASKS, flags, strict=True) if f) or "none"


def summarize(result: LoadResult) -> dict[str, Any]:
    """The audit's numbers for one LoadResult, as plain JSON-ready types (see the module doc)."""
    present = label_presence(result.table)
    n = result.accepted
    presence = {_combination(flags): 0 for flags in product((True, False), repeat=len(TASKS))}
    stacked = np.stack([present[t] for t in TASKS], axis=1) if n else np.zeros((0, len(TASKS)))
    for flags, count in Counter(map(tuple, stacked.astype(bool).tolist())).items():
        presence[_combination(flags)] = count
    return {
        "format": result.format,
        "files": len(result.files),
        "rows": result.rows_read,
        "accepted": n,
        "rejected": result.rejected,
        "valid": {t: int(present[t].sum()) for t in TASKS},
        "invalid": {t: int(n - present[t].sum()) for t in TASKS},
        "presence": presence,
        "none": presence["none"],
        "splits": {s: int(c) for s, c in result.table["split"].value_counts().items()},
        "rejected_by_field": dict(Counter(e.field for e in result.errors).most_common()),
        "status": "rejected" if result.rejected else "ok",
        "errors": [e.as_dict() for e in result.errors],
    }


def _until_first_rejection(result: LoadResult) -> LoadResult:
    """The result as a strict read would leave it: the rows before the first rejected row (in file
    order, then line order), and that row."""
    order = {f: i for i, f in enumerate(result.files)}
    first = min(result.errors, key=lambda e: (order.get(e.file, len(order)), e.line))
    t = result.table
    pos = t["ann_file"].map(lambda f: order.get(f, len(order)))
    key = (order.get(first.file, len(order)), first.line)
    before = t[(pos < key[0]) | ((pos == key[0]) & (t["ann_line"] < key[1]))]
    return LoadResult(before, [first], len(before) + 1, result.files, result.format)


def format_summary(summary: dict[str, Any], path: str) -> str:
    """The human-readable report: counts, the per-task table, co-missingness, rejected rows."""
    lines = [
        f"{path} ({summary['format']}, {summary['files']} file(s))",
        f"  rows read  {summary['rows']:>9}"
        + ("  (warning: no data rows)" if not summary["rows"] else ""),
        f"  accepted   {summary['accepted']:>9}",
        f"  rejected   {summary['rejected']:>9}",
        "",
        "  accepted rows per task   valid  invalid",
    ]
    for task in TASKS:
        lines.append(f"    {task:<20} {summary['valid'][task]:>8} {summary['invalid'][task]:>8}")
    lines += ["", "  labels present (expression / AUs / VA)   rows"]
    for combination, count in summary["presence"].items():
        lines.append(f"    {combination:<36} {count:>6}")
    if summary["splits"]:
        splits = ", ".join(f"{s} {c}" for s, c in summary["splits"].items())
        lines += ["", f"  splits: {splits}"]
    if summary["errors"]:
        by_field = ", ".join(f"{f} {c}" for f, c in summary["rejected_by_field"].items())
        lines += ["", f"  rejected rows by field: {by_field}", ""]
        lines += [str(RowError(**e)) for e in summary["errors"]]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m affectlib audit",
        description="Validate an annotation file or folder and report what it holds.",
    )
    p.add_argument("path", help="annotation file, or a per-task folder of per-video .txt files")
    p.add_argument(
        "--format",
        required=True,
        choices=(*FORMATS, layouts.AUTO, *(x.name for x in layouts.LAYOUTS)),
        help="annotation format, or auto / a layout name to read a data set's folder",
    )
    p.add_argument("--images", metavar="ROOT", help="also check every accepted row's image")
    p.add_argument("--split", choices=SPLITS, help="split of every row (else inferred)")
    p.add_argument("--strict", action="store_true", help="stop at the first rejected row")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return p


def _emit_json(obj: dict[str, Any], out: TextIO) -> None:
    out.write(json.dumps(obj) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Run the audit; returns the exit status (0 clean, 1 rows rejected, 2 unusable input)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # argparse exits on bad arguments or --help; report, don't exit
        return int(e.code) if isinstance(e.code, int) else EXIT_UNUSABLE
    found = None
    try:
        # --strict stops at the first rejected row; the counts then cover the rows up to it
        if layouts.is_layout(args.format):
            if args.split:
                raise UnusableInputError("--split: a layout's splits come from its own files")
            found = layouts.resolve(args.path, args.format)
            if args.images:
                found.images = Path(args.images)
            result = layout_readers.load_found(found, check_images=bool(args.images))
        else:
            result = load(args.path, args.format, split=args.split, images=args.images)
    except (UnusableInputError, layouts.LayoutError, OSError) as e:
        # an OSError that escaped the loader (a folder that cannot be listed) is unusable input too
        print(f"unusable input: {e}", file=sys.stderr)
        if args.json:
            errors = [err.as_dict() for err in getattr(e, "errors", [])]
            empty = {"rows": 0, "accepted": 0, "rejected": 0}
            invalid = {t: 0 for t in TASKS}
            _emit_json(
                {
                    "status": "unusable",
                    "message": str(e),
                    **empty,
                    "invalid": invalid,
                    "errors": errors,
                },
                sys.stdout,
            )
        return EXIT_UNUSABLE
    if args.strict and result.errors:
        result = _until_first_rejection(result)
    summary = summarize(result)
    if found is not None:
        summary.update(
            layout=found.layout.name,
            dataset=found.layout.dataset,
            images=str(found.images),
            notes=found.notes,
        )
        if not args.json:
            print(found.describe(result) + "\n")
    if args.json:
        _emit_json(summary, sys.stdout)
    else:
        print(format_summary(summary, args.path))
    return EXIT_REJECTED if result.rejected else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
