"""File helpers below the results writer, for every layer that writes or fingerprints files.

Atomic writes (temporary file in the same folder + rename, so an interrupted run never leaves a
half-written file), the fingerprints recorded in provenance and manifests, and the papers' published
tables (``affectlib/reference/*.csv``). They import nothing from affectlib, so the data layer can use
them without depending on :mod:`affectlib.results`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

REFERENCE_DIR = Path(__file__).parent / "reference"


# --- atomic writes -------------------------------------------------------------------------------
def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


# --- fingerprints --------------------------------------------------------------------------------
def fingerprint_files(paths: Iterable[str | Path]) -> str:
    """SHA-256 (first 16 hex digits) over the names and bytes of ``paths`` in sorted order."""
    h = hashlib.sha256()
    for p in sorted(Path(p) for p in paths):
        h.update(str(p.name).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def fingerprint_table(table: pd.DataFrame) -> str:
    """SHA-256 (first 16 hex digits) of an annotation table's content (independent of row index)."""
    values = pd.util.hash_pandas_object(table.reset_index(drop=True), index=False).to_numpy()
    return hashlib.sha256(values.tobytes()).hexdigest()[:16]


# --- the papers' tables --------------------------------------------------------------------------
def paper_table(name: str) -> pd.DataFrame:
    """One of the papers' published tables (``affectlib/reference/NAME.csv``), unchanged."""
    path = REFERENCE_DIR / (name if name.endswith(".csv") else f"{name}.csv")
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in REFERENCE_DIR.glob("*.csv")))
        raise FileNotFoundError(f"no published table {path.name}; known: {known}")
    return pd.read_csv(path)
