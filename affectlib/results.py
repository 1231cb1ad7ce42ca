"""Tables and figures with provenance, and the papers' published tables beside ours.

Every artefact a notebook produces goes through a :class:`ResultsWriter`: tables are written as CSV and
Markdown, figures as PNG, each atomically (temporary file + rename, so an interrupted run never leaves a
half-written file), and ``provenance.json`` beside them records the git commit (or ``"unversioned"``),
the profile, a fingerprint of the data, the seeds, the device, package versions and the wall time.

The papers' numbers live in ``affectlib/reference/*.csv``; :func:`affectlib.files.paper_table` reads one and
:func:`beside_paper` puts it next to ours with a delta column. Columns holding the papers' numbers are
always prefixed ``paper:`` so that nobody mistakes them for a measurement of ours.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import platform
import subprocess
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from affectlib.files import atomic_write_bytes, atomic_write_text, paper_table
from affectlib.files import (
    fingerprint_table as fingerprint_table,  # the notebooks' data fingerprint
)

_VERSIONED_PACKAGES = (
    "affectlib",
    "torch",
    "torchvision",
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "pillow",
    "matplotlib",
    "papermill",
)


# --- provenance ----------------------------------------------------------------------------------
_NOT_RESULTS = (":(top)", ":(top,exclude)results")


def git_commit(where: str | Path | None = None) -> str:
    """The commit of the checkout holding ``where`` (default: this package), ``+dirty`` when tracked
    files outside ``results/`` have changes (``results/`` is what a reproduce run rewrites, so it
    cannot count against the commit that wrote it), or ``"unversioned"`` outside a git checkout."""
    cwd = Path(where) if where else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *_NOT_RESULTS],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unversioned"
    return sha + ("+dirty" if dirty else "")


def device_description() -> str:
    try:
        import torch  # deferred: heavy, and data generation and the audit run without it

        if torch.cuda.is_available():
            return f"cuda: {torch.cuda.get_device_name(0)}"
        from affectlib.distributed import cpu_runs_bf16  # deferred with torch

        threads = torch.get_num_threads()
        bf16 = ", bf16 in hardware" if cpu_runs_bf16() else ", no bf16 hardware"
    except ImportError:  # pragma: no cover - torch is a dependency
        threads, bf16 = os.cpu_count(), ""
    cpu = platform.processor() or platform.machine()
    # whether the cpu profile's "auto" precision ran in bf16 (distributed.resolve_precision)
    return f"cpu: {cpu}, {os.cpu_count()} cores, {threads} threads{bf16}"


def package_versions(names: Iterable[str] = _VERSIONED_PACKAGES) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = "not installed"
    return out


# --- tables --------------------------------------------------------------------------------------
def _fmt(v, floatfmt: str) -> str:
    if isinstance(v, float | np.floating):
        return "" if np.isnan(v) else format(float(v), floatfmt)
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    return str(v).replace("|", "\\|")


def _interval_columns(cols: list[str]) -> dict[str, tuple[str, str]]:
    """Columns ``m`` with both ``m lo`` and ``m hi`` beside them: ``{m: (m lo, m hi)}``."""
    present = set(cols)
    return {c: (f"{c} lo", f"{c} hi") for c in cols if {f"{c} lo", f"{c} hi"} <= present}


def _is_count(values: pd.Series) -> bool:
    """A column of whole numbers (counts, epochs, sizes; a float column only because of a gap):
    every value integral and the largest at least 2, so that scores of exactly 0 or 1 keep their
    decimals."""
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return False
    v = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    if pd.api.types.is_integer_dtype(values):
        return True
    return bool(len(v)) and bool(np.all(v == np.round(v))) and float(np.abs(v).max()) >= 2


def to_markdown(df: pd.DataFrame, floatfmt: str = ".4f") -> str:
    """A GitHub-flavoured Markdown table of ``df`` (index included when it is named or not a range).

    For reading, not for machines (the CSV keeps every column): a metric ``m`` with ``m lo`` and
    ``m hi`` columns is one cell ``mean [lo, hi]``, and columns of whole numbers are printed
    without decimals."""
    if not isinstance(df.index, pd.RangeIndex) or df.index.name is not None:
        df = df.reset_index()
    df = df.rename(columns=str)
    cols = list(df.columns)
    spans = _interval_columns(cols)
    hidden = {c for pair in spans.values() for c in pair}
    shown = [c for c in cols if c not in hidden]
    counts = {c for c in shown if c not in spans and _is_count(df[c])}

    def cell(row: pd.Series, c: str) -> str:
        if c in spans:
            m = _fmt(row[c], floatfmt)
            lo, hi = (_fmt(row[x], floatfmt) for x in spans[c])
            return f"{m} [{lo}, {hi}]" if m and lo and hi else m
        if c in counts and _fmt(row[c], floatfmt):
            return str(int(round(float(row[c]))))
        return _fmt(row[c], floatfmt)

    lines = ["| " + " | ".join(shown) + " |", "|" + "|".join("---" for _ in shown) + "|"]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(cell(row, c) for c in shown) + " |")
    return "\n".join(lines) + "\n"


def beside_paper(
    ours: pd.DataFrame,
    paper: pd.DataFrame | str,
    on: str,
    metrics: Iterable[str],
    paper_on: str | None = None,
    rename: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Our table with the paper's value and ``ours - paper`` beside each metric.

    ``ours`` and ``paper`` are joined on the key column ``on`` (``paper_on`` in the paper's table, with
    ``rename`` mapping our keys to the paper's spelling). For each metric ``m`` the result has ``m``
    (ours), ``paper: m`` (the published number) and ``delta: m``. Rows of ours without a paper row keep
    NaN in the paper columns; the paper's rows we did not run are left out.
    """
    if isinstance(paper, str):
        paper = paper_table(paper)
    metrics = list(metrics)
    paper_on = paper_on or on
    key = ours[on].map(lambda k: (rename or {}).get(k, k))
    p = paper.set_index(paper_on)
    out = ours.copy()
    for m in metrics:
        published = key.map(p[m]) if m in p.columns else pd.Series(np.nan, index=ours.index)
        pos = out.columns.get_loc(m) + 1
        out.insert(pos, f"paper: {m}", pd.to_numeric(published, errors="coerce"))
        out.insert(pos + 1, f"delta: {m}", out[m] - out[f"paper: {m}"])
    return out


# --- the writer ----------------------------------------------------------------------------------
FIGURE_PAGE = "figures.md"  # every figure of a notebook with its caption, one page


def read_figure_page(path: str | Path) -> dict[str, str]:
    """``{file name: caption}`` of a ``figures.md`` written by :meth:`ResultsWriter.figure`."""
    out: dict[str, str] = {}
    lines = Path(path).read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("## ") and i + 1 < len(lines):
            out[line[3:].strip()] = lines[i + 1].strip()
    return out


class ResultsWriter:
    """Writes one notebook's tables and figures under ``root/name`` with a provenance record."""

    def __init__(
        self,
        root: str | Path,
        name: str,
        *,
        profile=None,
        seeds: Iterable[int] = (),
        data_fingerprint: str | None = None,
        data_root: str | None = None,
    ):
        self.dir = Path(root) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self._t0 = time.perf_counter()
        self._started = datetime.now(UTC).isoformat(timespec="seconds")
        self.artifacts: list[str] = []
        self.captions: dict[str, str] = {}
        if dataclasses.is_dataclass(profile):
            profile = dataclasses.asdict(profile)
        self.meta = {
            "notebook": name,
            "commit": git_commit(),
            "profile": profile,
            "seeds": [int(s) for s in seeds],
            "data_fingerprint": data_fingerprint,
            "data_root": data_root,
            "device": device_description(),
            "versions": package_versions(),
        }

    # The writing methods return None, so that a notebook cell ending with one shows no path.
    def table(
        self,
        df: pd.DataFrame,
        name: str,
        caption: str = "",
        floatfmt: str = ".4f",
        columns: Sequence[str] | None = None,
    ) -> None:
        """Write ``df`` as ``name.csv`` and ``name.md`` (with ``caption`` above the table).

        ``columns``: the ones the Markdown shows, for a wide table (the CSV keeps every column;
        the Markdown says how many it leaves out). An unknown name is an error."""
        csv = atomic_write_text(self.dir / f"{name}.csv", df.to_csv(index=False))
        shown = df
        if columns is not None:
            unknown = [c for c in columns if c not in df.columns]
            if unknown:
                raise KeyError(f"table {name}: no column(s) {unknown}; it has {list(df.columns)}")
            shown = df[list(columns)]
            left = len(df.columns) - len(shown.columns)
            if left:
                note = f"{left} more columns in {name}.csv."
                caption = f"{caption} {note}" if caption else note
        md = (f"{caption}\n\n" if caption else "") + to_markdown(shown, floatfmt)
        atomic_write_text(self.dir / f"{name}.md", md)
        self._record(csv.name, f"{name}.md")

    def figure(self, fig, name: str, caption: str = "", dpi: int = 110) -> None:
        """Save a matplotlib figure as ``name.png``; ``caption`` (one line) goes beside it, in
        ``figures.md``: every figure of the notebook with its caption, viewable as one page."""
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        path = atomic_write_bytes(self.dir / f"{name}.png", buf.getvalue())
        self.captions[path.name] = " ".join(caption.split())
        self._write_figure_page()
        self._record(path.name, FIGURE_PAGE)

    def _write_figure_page(self) -> None:
        parts = [f"# Figures of {self.name}\n"]
        for png, caption in self.captions.items():
            parts.append(f"## {png}\n{caption or '(no caption)'}\n\n![{png}]({png})\n")
        atomic_write_text(self.dir / FIGURE_PAGE, "\n".join(parts))

    def text(self, content: str, name: str) -> None:
        """Write ``content`` as the file ``name`` (e.g. a notebook's computed claims)."""
        path = atomic_write_text(self.dir / name, content)
        self._record(path.name)

    def _record(self, *names: str) -> None:
        for n in names:
            if n not in self.artifacts:
                self.artifacts.append(n)
        self.write_provenance()

    def write_provenance(self, **extra) -> None:
        """Rewrite ``provenance.json`` with ``extra`` added to the record."""
        self.meta.update(extra)
        record = {
            **self.meta,
            "started": self._started,
            "wall_time_s": round(time.perf_counter() - self._t0, 2),
            "artifacts": sorted(self.artifacts),
        }
        atomic_write_text(
            self.dir / "provenance.json", json.dumps(record, indent=2, default=str) + "\n"
        )
