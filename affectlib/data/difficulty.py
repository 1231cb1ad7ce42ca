"""How hard the embedded data set is: the ceiling its label noise allows.

The generator keeps the truth beside the annotations (``truth/affwild2.csv.gz``: ``true_expr``,
``true_AU<n>``, ``true_valence``, ``true_arousal``). A model can at best recover the truth; scored
against the noisy annotations, as every method is, a perfect predictor of the truth gets the *noise
ceiling* computed here. No method can be expected above it, so a table of ours is read against it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import labels as L
from .. import metrics


def load_truth(root: str | Path, name: str = "affwild2") -> pd.DataFrame:
    """The generator's per-image truth table of one embedded data set."""
    return pd.read_csv(Path(root) / "truth" / f"{name}.csv.gz")


def noise_ceiling(truth: pd.DataFrame, split: str = "validation") -> pd.DataFrame:
    """Scores (SS-MFAR Eq. 10 terms and per-AU F1) of the true labels against the annotated ones.

    One row per measure: ``expr_f1`` (macro F1, 8 classes), ``au_f1`` (mean of the 12 per-AU F1),
    ``va`` (mean CCC), ``overall`` (their sum, P_MTL), then ``F1 AU<n>`` per AU."""
    t = truth[truth["split"] == split]
    au_true = t[list(L.AU_COLUMNS)].to_numpy()
    au_pred = t[[f"true_{c}" for c in L.AU_COLUMNS]].to_numpy()
    va_true = t[["valence", "arousal"]].to_numpy()
    va_pred = t[["true_valence", "true_arousal"]].to_numpy()
    s = metrics.p_mtl(t["expr"], t["true_expr"], au_true, au_pred, va_true, va_pred)
    per_au = metrics.per_au_f1(au_true, au_pred)
    rows = [{"measure": k, "ceiling": float(s[k])} for k in ("expr_f1", "au_f1", "va", "overall")]
    rows += [
        {"measure": f"F1 {c}", "ceiling": float(v)}
        for c, v in zip(L.AU_COLUMNS, per_au, strict=True)
    ]
    return pd.DataFrame(rows)


def chance_scores(truth: pd.DataFrame, split: str = "validation", seed: int = 0) -> pd.DataFrame:
    """Scores of label-blind predictors, the floor: expression = a random class drawn at the
    training class frequencies, each AU = on at its training base rate, VA = the training mean."""
    rng = np.random.default_rng(seed)
    tr, t = truth[truth["split"] == "train"], truth[truth["split"] == split]
    n = len(t)
    lab = tr["expr"][tr["expr"] >= 0]
    freq = np.bincount(lab, minlength=L.N_EXPR) / max(len(lab), 1)
    expr_pred = rng.choice(L.N_EXPR, size=n, p=freq)
    au_tr = tr[list(L.AU_COLUMNS)].to_numpy()
    rate = np.array([(c[c >= 0] == 1).mean() for c in au_tr.T])
    au_pred = (rng.random((n, len(rate))) < rate).astype(int)
    va_tr = tr[["valence", "arousal"]].to_numpy()
    mean = va_tr[(va_tr != L.VA_MISSING).all(1)].mean(0)
    va_pred = np.tile(mean, (n, 1)) + rng.normal(0, 1e-3, (n, 2))
    s = metrics.p_mtl(
        t["expr"],
        expr_pred,
        t[list(L.AU_COLUMNS)].to_numpy(),
        au_pred,
        t[["valence", "arousal"]].to_numpy(),
        va_pred,
    )
    per_au = metrics.per_au_f1(t[list(L.AU_COLUMNS)].to_numpy(), au_pred)
    rows = [{"measure": k, "chance": float(s[k])} for k in ("expr_f1", "au_f1", "va", "overall")]
    rows += [
        {"measure": f"F1 {c}", "chance": float(v)}
        for c, v in zip(L.AU_COLUMNS, per_au, strict=True)
    ]
    return pd.DataFrame(rows)
