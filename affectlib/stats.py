"""Summaries over seeds: means with 95% intervals, and paired comparisons of two methods.

Every results table of the study reports a mean over seeds with a Student-t interval (few seeds, so
not a normal one); comparisons of two methods pair their runs by seed, since a seed fixes the data
order, augmentation and initialisation, which removes that shared variation from the difference.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import stats as sps


def mean_ci(values: Iterable[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and the two ends of its Student-t interval. One value: the interval is that value
    (NaN width is not useful in a table; ``n`` is reported beside). No finite value: NaNs."""
    x = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if len(x) == 0:
        return (np.nan, np.nan, np.nan)
    m = float(x.mean())
    if len(x) == 1:
        return (m, m, m)
    half = float(sps.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return (m, m - half, m + half)


def summarize_runs(
    runs: pd.DataFrame, by: str | list[str], metrics: Iterable[str], level: float = 0.95
) -> pd.DataFrame:
    """One row per group of ``runs`` (one row per run): for each metric ``m`` its mean ``m`` and
    interval ``m lo`` / ``m hi``, and ``n`` runs. Group order is that of first appearance."""
    by = [by] if isinstance(by, str) else list(by)
    out = []
    for key, g in runs.groupby(by, sort=False):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
        row["n"] = len(g)
        for m in metrics:
            mean, lo, hi = mean_ci(g[m], level)
            row[m], row[f"{m} lo"], row[f"{m} hi"] = mean, lo, hi
        out.append(row)
    return pd.DataFrame(out)


def paired_difference(
    runs: pd.DataFrame,
    a: str,
    b: str,
    metric: str,
    method_col: str = "method",
    seed_col: str = "seed",
    level: float = 0.95,
) -> dict:
    """``a - b`` on ``metric`` paired by seed: mean difference, its t interval, the seeds paired and
    a verdict: ``"a better"`` / ``"b better"`` when the interval excludes 0, else ``"no clear
    difference"``."""
    x = runs[runs[method_col] == a].set_index(seed_col)[metric]
    y = runs[runs[method_col] == b].set_index(seed_col)[metric]
    seeds = sorted(set(x.index) & set(y.index))
    d = (x.loc[seeds] - y.loc[seeds]).to_numpy(float) if seeds else np.array([])
    mean, lo, hi = mean_ci(d, level)
    if len(d) < 2 or not np.isfinite(lo):
        verdict = "too few paired seeds"
    elif lo > 0:
        verdict = f"{a} better"
    elif hi < 0:
        verdict = f"{b} better"
    else:
        verdict = "no clear difference"
    return {
        "a": a,
        "b": b,
        "metric": metric,
        "seeds": len(d),
        "diff": mean,
        "diff lo": lo,
        "diff hi": hi,
        "verdict": verdict,
    }


def format_ci(mean: float, lo: float, hi: float, digits: int = 3) -> str:
    """``0.412 [0.390, 0.434]``; an empty string for NaN."""
    if not np.isfinite(mean):
        return ""
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
