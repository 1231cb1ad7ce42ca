"""The standard annotation table (DESIGN.md, "data contract"), one row per image, in this order:
``path`` (POSIX, relative to the image root), ``video`` ("" for still-image sets), ``frame``
(1-based, -1 for still images), ``expr`` (ABAW index 0..7, -1 = no label), one ``AU<n>`` column
per AU (1/0, -1 = no label), ``valence``, ``arousal`` (in [-1, 1], -5 = no label), ``split``,
``source`` (the format name), ``ann_file``, ``ann_line`` (where the row was read): its columns,
its dtype-stable constructors and the stacking of several tables. Every loader of
:mod:`affectlib.data.formats` returns one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from affectlib.labels import AU_COLUMNS, AU_MISSING

# --- the standard annotation table ------------------------------------------------------------

_STR_COLUMNS = frozenset({"path", "video", "split", "source", "ann_file"})
_FLOAT_COLUMNS = frozenset({"valence", "arousal"})
AU_NAME = re.compile(r"AU([1-9][0-9]*)")


def table_columns(au_columns: Sequence[str] = AU_COLUMNS) -> list[str]:
    """The standard table's columns in order, ``au_columns`` between ``expr`` and ``valence``."""
    for name in au_columns:
        if not AU_NAME.fullmatch(name):
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
    """The ``AU<n>`` columns of a table, in table order: the one parser of AU column names
    (:data:`AU_NAME`) every module uses."""
    return tuple(c for c in table.columns if AU_NAME.fullmatch(str(c)))


def au_number(column: str) -> int:
    """The ``n`` of an ``AU<n>`` column name (``"AU12"`` -> 12); a ValueError names any other."""
    match = AU_NAME.fullmatch(str(column))
    if match is None:
        raise ValueError(f"AU column {column!r} is not named AU<n>")
    return int(match.group(1))


def concat_tables(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Rows of several standard tables in one; AU columns are the union, ordered by AU number.

    An AU a table lacks is filled with -1 (no label), so ABAW and EmotioNet tables stack with int
    dtypes intact (plain ``pd.concat`` would fill NaN and turn the AU columns to float).
    """
    if not tables:
        raise ValueError("concat_tables needs at least one table")
    aus = sorted({c for t in tables for c in au_columns_of(t)}, key=au_number)
    filled = [t.assign(**{c: AU_MISSING for c in aus if c not in t.columns}) for t in tables]
    columns = table_columns(aus)
    merged = pd.concat([t[columns] for t in filled], ignore_index=True)
    return build_table({c: merged[c].to_numpy() for c in columns}, aus)
