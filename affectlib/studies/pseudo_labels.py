"""Where SS-MFAR's pseudo-labels go (notebook 03, §10): per semi-supervised run, the class that
received most of the confident pseudo-labels of its last epoch and its share of them, beside the
run's expression F1, and how the number of confident pseudo-labels goes with that F1.

Inputs are the tables notebook 03 already writes: :func:`affectlib.studies.ssmfar_report.thresholds`
(per run, epoch and class: ``confident_per_step``, the unlabelled images per step whose weak-view
pseudo-label passed the class's Eq. 4 threshold) and the runs table (``method``, ``seed``,
``split``, ``expr_f1``: the scores of the epoch each run selected on validation).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

# a run "piles" its pseudo-labels into one class when that class holds this share of them
PILE_SHARE = 0.8
COLUMNS = ["method", "seed", "top_class", "top_share", "confident_per_step", "expr_f1"]


def concentration(thr: pd.DataFrame, runs: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """One row per (method, seed) of ``thr``: at the run's last epoch, ``top_class`` the class with
    the most confident pseudo-labels and ``top_share`` its share of them ("" and NaN when none
    passed), ``confident_per_step`` their total per step, and the run's ``expr_f1`` on ``split``
    (the split its table reports)."""
    if thr.empty:
        return pd.DataFrame(columns=COLUMNS)
    last = thr[thr["epoch"] == thr.groupby(["method", "seed"])["epoch"].transform("max")]
    rows = []
    for (method, seed), g in last.groupby(["method", "seed"], sort=False):
        counts = g["confident_per_step"].fillna(0.0)
        total = float(counts.sum())
        top = g.loc[counts.idxmax()] if total > 0 else None
        rows.append(
            {
                "method": method,
                "seed": int(seed),
                "top_class": top["class"] if top is not None else "",
                "top_share": float(counts.max()) / total if top is not None else np.nan,
                "confident_per_step": total,
            }
        )
    scores = runs.loc[runs["split"] == split, ["method", "seed", "expr_f1"]]
    return pd.DataFrame(rows).merge(scores, on=["method", "seed"], how="left")[COLUMNS]


def concentration_sentences(conc: pd.DataFrame) -> list[str]:
    """Per method: the runs with no confident pseudo-label at their last epoch, and those that put
    at least :data:`PILE_SHARE` of them into one class, with the classes. Then the Spearman
    correlation of the confident pseudo-labels per step with the expression F1, pooled over every
    run of every method (so differences between the methods count too) and within each method."""
    out = []
    for method, g in conc.groupby("method", sort=False):
        none = int((g["confident_per_step"] <= 0).sum())
        piled = g[g["top_share"] >= PILE_SHARE]
        classes = ", ".join(f"{c} {n}" for c, n in piled["top_class"].value_counts().items())
        out.append(
            f"{method}: of {len(g)} runs, {none} had no confident pseudo-label at the last epoch "
            f"and {len(piled)} put at least {PILE_SHARE:.0%} of them into one class"
            + (f" ({classes})" if classes else "")
            + _rho_text(g, "within the row")
        )
    pooled = _rho_text(conc, f"pooled over all {len(conc)} runs")
    if pooled:
        out.append("confident pseudo-labels per step against expression F1" + pooled)
    return out


def _rho_text(g: pd.DataFrame, where: str) -> str:
    """``"; Spearman rho ... (where)"`` of confident pseudo-labels per step and expression F1, or
    "" when fewer than three runs have both or either is constant."""
    ok = g.dropna(subset=["confident_per_step", "expr_f1"])
    if len(ok) < 3 or ok["confident_per_step"].nunique() < 2 or ok["expr_f1"].nunique() < 2:
        return ""
    rho, p = sps.spearmanr(ok["confident_per_step"], ok["expr_f1"])
    return f"; Spearman rho {rho:+.2f} (p = {p:.3f}, {where})"
