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
    :func:`verdict`'s word without floors: ``"<a> better"`` / ``"<b> better"`` when the interval
    excludes 0, else ``"no clear difference"`` (``"too few paired seeds"`` below 2). Callers that
    know the chance levels judge the floor with :func:`verdict`."""
    x = runs[runs[method_col] == a].set_index(seed_col)[metric]
    y = runs[runs[method_col] == b].set_index(seed_col)[metric]
    seeds = sorted(set(x.index) & set(y.index))
    d = (x.loc[seeds] - y.loc[seeds]).to_numpy(float) if seeds else np.array([])
    mean, lo, hi = mean_ci(d, level)
    found = verdict(lo, hi, len(d))
    return {
        "a": a,
        "b": b,
        "metric": metric,
        "seeds": len(d),
        "diff": mean,
        "diff lo": lo,
        "diff hi": hi,
        "verdict": {"A higher": f"{a} better", "B higher": f"{b} better"}.get(found, found),
    }


def format_ci(mean: float, lo: float, hi: float, digits: int = 3) -> str:
    """``0.412 [0.390, 0.434]``; an empty string for NaN, the mean alone without an interval (a
    baseline row)."""
    if not np.isfinite(mean):
        return ""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


# --- verdicts -----------------------------------------------------------------------------------
UNTESTABLE = "untestable: at the floor"
NO_CLEAR = "no clear difference"
TOO_FEW = "too few paired seeds"
EQUIVALENT = "equivalent within the margin"


def verdict(
    diff_lo: float,
    diff_hi: float,
    n: int,
    *,
    at_floor: bool = False,
    margin: float | None = None,
) -> str:
    """The one verdict on a paired difference ``A - B`` with interval [``diff_lo``, ``diff_hi``]
    over ``n`` paired seeds, used by every notebook:

    - :data:`TOO_FEW` with fewer than 2 pairs or no finite interval;
    - :data:`UNTESTABLE` when ``at_floor``: either side's interval reaches its chance level
      (:func:`reaches_floor`), so a difference would compare noise, not methods;
    - ``"A higher"`` / ``"B higher"`` when the interval excludes 0;
    - :data:`EQUIVALENT` when a ``margin`` was stated up front and the interval lies inside
      (-margin, margin): the only way to say two methods are on par;
    - :data:`NO_CLEAR` otherwise (an interval spanning 0 is not evidence of equality)."""
    if n < 2 or not (np.isfinite(diff_lo) and np.isfinite(diff_hi)):
        return TOO_FEW
    if at_floor:
        return UNTESTABLE
    if diff_lo > 0:
        return "A higher"
    if diff_hi < 0:
        return "B higher"
    if margin is not None and -margin < diff_lo and diff_hi < margin:
        return EQUIVALENT
    return NO_CLEAR


def reaches_floor(lo: float, floor: float) -> bool:
    """Whether an interval whose lower end is ``lo`` reaches the chance level ``floor`` (NaN:
    nothing was measured, which counts as reaching it)."""
    return not (np.isfinite(lo) and lo > floor)


def claim_verdict(claim: str, found: str) -> str:
    """A paper's claim about ``A - B`` (``"above"``, ``"below"`` or ``"on par"``) judged by
    :func:`verdict`'s ``found``: ``"holds"``, ``"fails"`` (the opposite ordering, or an "on par"
    claim that our data separate), or ``found`` itself when it decides nothing (untestable, no
    clear difference, too few seeds)."""
    if claim not in ("above", "below", "on par"):
        raise ValueError(f"claim must be 'above', 'below' or 'on par', got {claim!r}")
    ordered = {"A higher": "above", "B higher": "below"}
    if found in ordered:
        return "holds" if ordered[found] == claim else "fails"
    if found == EQUIVALENT:
        return "holds" if claim == "on par" else "fails"
    return found
