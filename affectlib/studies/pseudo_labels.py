"""Where SS-MFAR's pseudo-labels go (notebook 03, §10): per semi-supervised run, the class that
received most of the confident pseudo-labels of its last epoch, and whether runs that pile their
pseudo-labels into one class end lower on expressions.

Inputs are the tables notebook 03 already writes: :func:`affectlib.studies.ssmfar_report.thresholds`
(per run, epoch and class: ``confident_per_step``, the unlabelled images per step whose weak-view
pseudo-label passed the class's Eq. 4 threshold) and the runs table (``method``, ``seed``,
``split``, ``expr_f1``).
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
    the most confident pseudo-labels, ``top_share`` its share of them (NaN when none passed),
    ``confident_per_step`` their total per step, and the run's ``expr_f1`` on ``split``."""
    if thr.empty:
        return pd.DataFrame(columns=COLUMNS)
    last = thr[thr["epoch"] == thr.groupby(["method", "seed"])["epoch"].transform("max")]
    rows = []
    for (method, seed), g in last.groupby(["method", "seed"], sort=False):
        total = float(g["confident_per_step"].sum())
        top = g.loc[g["confident_per_step"].idxmax()]
        rows.append(
            {
                "method": method,
                "seed": int(seed),
                "top_class": top["class"] if total > 0 else "",
                "top_share": float(top["confident_per_step"]) / total if total > 0 else np.nan,
                "confident_per_step": total,
            }
        )
    scores = runs.loc[runs["split"] == split, ["method", "seed", "expr_f1"]]
    return pd.DataFrame(rows).merge(scores, on=["method", "seed"], how="left")[COLUMNS]


def concentration_sentences(conc: pd.DataFrame) -> list[str]:
    """Per method, the runs that piled their confident pseudo-labels into one class (share at
    least :data:`PILE_SHARE`) and which classes; then, over every run, the Spearman correlation of
    the confident pseudo-labels per step with the expression F1."""
    out = []
    for method, g in conc.groupby("method", sort=False):
        piled = g[g["top_share"] >= PILE_SHARE]
        classes = ", ".join(f"{c} {n}" for c, n in piled["top_class"].value_counts().items())
        out.append(
            f"{method}: {len(piled)} of {len(g)} runs put at least {PILE_SHARE:.0%} of their last "
            f"epoch's confident pseudo-labels into one class" + (f" ({classes})" if classes else "")
        )
    ok = conc.dropna(subset=["confident_per_step", "expr_f1"])
    if len(ok) >= 3 and ok["confident_per_step"].nunique() > 1:
        rho, p = sps.spearmanr(ok["confident_per_step"], ok["expr_f1"])
        out.append(
            f"over all {len(ok)} runs, confident pseudo-labels per step against expression F1: "
            f"Spearman rho {rho:+.2f} (p = {p:.3f})"
        )
    return out
