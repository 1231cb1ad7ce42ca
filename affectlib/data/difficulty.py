"""How hard the embedded data set is: the ceiling its label noise allows, the floor of label-blind
predictors, and whether its images carry each label at all (a linear read-out of the pixels).

The generator keeps the truth beside the annotations (``truth/affwild2.csv.gz``: ``true_expr``,
``true_AU<n>``, ``true_valence``, ``true_arousal``). A model can at best recover the truth; scored
against the noisy annotations, as every method is, a perfect predictor of the truth gets the *noise
ceiling* computed here. No method can be expected above it, so a table of ours is read against it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from .. import labels as L
from .. import metrics
from . import study


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


def pixel_features(files: list[Path] | list[str], size: int = 24) -> np.ndarray:
    """Grey-level pixels of each image, resized to ``size`` x ``size`` and standardised per pixel
    over the images: (N, size * size) float32."""
    x = np.stack(
        [
            np.asarray(Image.open(f).convert("L").resize((size, size), Image.BILINEAR), np.float32)
            for f in files
        ]
    ).reshape(len(files), -1)
    return (x - x.mean(0)) / (x.std(0) + 1e-6)


def linear_readout(
    x: np.ndarray, y: np.ndarray, train: np.ndarray, c: float = 0.01
) -> tuple[float, float]:
    """ROC AUC, on the training rows and on the others, of an L2-regularised logistic regression
    (scikit-learn, inverse strength ``c``) fitted on the training rows of ``x`` to the 0/1 labels
    ``y``. Rows with a label < 0 (not annotated) are left out; NaN where a side lacks a class."""
    keep = y >= 0
    tr, te = train & keep, ~train & keep
    if len(np.unique(y[tr])) < 2:
        return float("nan"), float("nan")
    model = LogisticRegression(C=c, max_iter=500).fit(x[tr], y[tr])

    def auc(rows: np.ndarray) -> float:
        if len(np.unique(y[rows])) < 2:
            return float("nan")
        return float(roc_auc_score(y[rows], model.decision_function(x[rows])))

    return auc(tr), auc(te)


def pixel_probe(
    root: str | Path, split: str = "validation", size: int = 24, c: float = 0.01
) -> pd.DataFrame:
    """Does the Aff-Wild2-like set's pixels carry each AU? Per ABAW AU, a linear read-out
    (:func:`linear_readout`) of the ``size`` px grey faces, fitted on the training split and scored
    on ``split``, once against the true labels and once against the annotated (noisy) ones.

    A floor on what the images show, not a ceiling on what a network learns: a linear model over
    raw pixels sees neither pose nor identity invariance. Columns: ``measure`` (``AU<n>``),
    ``auc_train_true``, ``auc_true``, ``auc_annotated``."""
    truth = load_truth(root)
    truth = truth[truth["split"].isin(["train", split])].reset_index(drop=True)
    image_root = study.image_root(root, "abaw-mtl")
    x = pixel_features([image_root / p for p in truth["path"]], size)
    train = (truth["split"] == "train").to_numpy()
    rows = []
    for col in L.AU_COLUMNS:
        fit_true, auc_true = linear_readout(x, truth[f"true_{col}"].to_numpy(), train, c)
        _, auc_ann = linear_readout(x, truth[col].to_numpy(), train, c)
        rows.append(
            {
                "measure": col,
                "auc_train_true": fit_true,
                "auc_true": auc_true,
                "auc_annotated": auc_ann,
            }
        )
    return pd.DataFrame(rows)
