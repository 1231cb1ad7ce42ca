"""Evaluation metrics: pure numpy / scikit-learn functions of label and prediction arrays.

Label conventions are the ABAW ones of :mod:`affectlib.labels`: expression -1, AU -1 and
valence-arousal -5 mean "no label". Functions that score one task drop unlabelled entries
themselves, as the challenges do; predictions are class indices (expressions), 0/1 (AUs) or floats
(valence-arousal). A score that has no labelled sample to run over is NaN — "not measured", never a
silent 0 — and its docstring says so.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import f1_score

from affectlib.labels import AU_MISSING, EXPR_MISSING, N_EXPR, VA_MISSING


def _vectors(x: ArrayLike, y: ArrayLike, names: tuple[str, str] = ("x", "y")) -> tuple:
    a = np.asarray(x, dtype=float).ravel()
    b = np.asarray(y, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} differ in length: {a.size} vs {b.size}")
    if a.size == 0:
        raise ValueError(f"{names[0]} and {names[1]} are empty")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError(f"{names[0]} and {names[1]} must be finite")
    return a, b


def _labels_2d(au_true: ArrayLike, au_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(au_true), np.asarray(au_pred)
    if t.ndim != 2 or t.shape != p.shape:
        raise ValueError(
            f"au_true and au_pred must be (N, M) of the same shape, got {t.shape} and {p.shape}"
        )
    return t, p


# --- regression: valence-arousal ------------------------------------------------------------------
def ccc(x: ArrayLike, y: ArrayLike) -> float:
    """Concordance correlation coefficient, SS-MFAR Eq. 11 (Lin 1989).

    ``CCC = 2 s_xy / (s_x^2 + s_y^2 + (mean_x - mean_y)^2)`` with population (1/N) statistics,
    symmetric in x and y, in [-1, 1]. Constant input is defined: 0.0 when one array is constant
    (no covariance) or both are different constants; 1.0 when both are the same constant, the one
    case the formula reads 0/0 — the arrays agree perfectly. Raises on empty, unequal-length or
    non-finite input.
    """
    a, b = _vectors(x, y)
    ma, mb = a.mean(), b.mean()
    cov = np.mean((a - ma) * (b - mb))
    denom = a.var() + b.var() + (ma - mb) ** 2
    return float(2 * cov / denom) if denom > 0 else 1.0


def pcc(x: ArrayLike, y: ArrayLike) -> float:
    """Pearson correlation coefficient (AffectNet's VA metric, Mollahosseini et al. 2017).

    ``cov(x, y) / (s_x s_y)``; 0.0 when either array is constant (no linear association can be
    measured; scipy would return NaN).
    """
    a, b = _vectors(x, y)
    sa, sb = a.std(), b.std()
    if sa == 0 or sb == 0:
        return 0.0
    return float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb))


def rmse(x: ArrayLike, y: ArrayLike) -> float:
    """Root mean squared error ``sqrt(mean((x - y)^2))`` (AffectNet's VA metric)."""
    a, b = _vectors(x, y)
    return float(np.sqrt(np.mean((a - b) ** 2)))


def sagr(x: ArrayLike, y: ArrayLike) -> float:
    """Sign agreement ``mean(sign(x) == sign(y))`` (AffectNet, after Nicolaou et al. 2011).

    ``np.sign`` maps 0 to 0, so a zero agrees only with a zero.
    """
    a, b = _vectors(x, y)
    return float(np.mean(np.sign(a) == np.sign(b)))


# --- classification: expressions ------------------------------------------------------------------
def _valid_expr(expr_true: ArrayLike, expr_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(expr_true).ravel(), np.asarray(expr_pred).ravel()
    if t.shape != p.shape:
        raise ValueError(f"expr_true and expr_pred differ in length: {t.size} vs {p.size}")
    keep = t != EXPR_MISSING
    return t[keep].astype(int), p[keep].astype(int)


def expr_f1(expr_true: ArrayLike, expr_pred: ArrayLike, n_classes: int = N_EXPR) -> float:
    """Macro F1 over ``n_classes`` expressions, the P_Exp term of SS-MFAR Eq. 10.

    ``f1_score(average="macro", labels=range(n_classes), zero_division=0)`` over samples whose
    label is not -1: a class absent from labels and predictions scores 0 and still counts in the
    mean (ABAW divides by 8). NaN when no sample is labelled.
    """
    t, p = _valid_expr(expr_true, expr_pred)
    if t.size == 0:
        return float("nan")
    return float(f1_score(t, p, average="macro", labels=list(range(n_classes)), zero_division=0))


def expr_accuracy(expr_true: ArrayLike, expr_pred: ArrayLike) -> float:
    """Fraction of labelled samples classified correctly (AffectNet's metric in DM Table 2).

    Samples labelled -1 are skipped; NaN when none is labelled.
    """
    t, p = _valid_expr(expr_true, expr_pred)
    return float(np.mean(t == p)) if t.size else float("nan")


def average_class_accuracy(expr_true: ArrayLike, expr_pred: ArrayLike) -> float:
    """Mean per-class recall, "average accuracy" (RAF-DB's metric in DM Table 2).

    Averaged over the classes present among the labels (those absent have no recall), like
    sklearn's ``balanced_accuracy_score``. Samples labelled -1 are skipped; NaN when none is.
    """
    t, p = _valid_expr(expr_true, expr_pred)
    if t.size == 0:
        return float("nan")
    return float(np.mean([np.mean(p[t == c] == c) for c in np.unique(t)]))


def abaw2021_expr_score(expr_true: ArrayLike, expr_pred: ArrayLike, n_classes: int = 7) -> float:
    """ABAW 2021 expression score ``0.67 * macro F1 + 0.33 * accuracy`` over 7 basic expressions
    (teacher-student paper, §3.2). Samples labelled -1 are skipped; NaN when none is."""
    t, p = _valid_expr(expr_true, expr_pred)
    if t.size == 0:
        return float("nan")
    return 0.67 * expr_f1(t, p, n_classes) + 0.33 * expr_accuracy(t, p)


# --- detection: action units ----------------------------------------------------------------------
def per_au_f1(au_true: ArrayLike, au_pred: ArrayLike) -> np.ndarray:
    """Binary F1 of each AU column (positive class 1), entries labelled -1 skipped per column.

    ``zero_division=0``: an AU with no positive label and no positive prediction scores 0.0, not
    NaN. A column without any labelled entry is NaN. Returns (M,) floats.

    Counted in numpy for all columns at once, ``F1 = 2 TP / (2 TP + FP + FN)``, the expression
    scikit-learn's ``f1_score`` evaluates (the same floats: tested): that call validates its input
    on every use, ~1.4 ms per AU, and every run scores its AUs after every epoch
    (``benchmarks/au_scoring_speed.py``: 0.04 ms against 17 ms for 12 AUs of 200 rows). Labelled
    entries must be 0 or 1, in the truth and the predictions alike.
    """
    t, p = _labels_2d(au_true, au_pred)
    t, p = t.astype(int), p.astype(int)
    keep = t != AU_MISSING
    for name, a in (("au_true", t), ("au_pred", p)):
        bad = keep & (a != 0) & (a != 1)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise ValueError(
                f"{name}[{i}, {j}] = {a[i, j]}: AU entries must be 0 or 1 (or -1 in au_true)"
            )
    t_sum = ((t == 1) & keep).sum(axis=0)
    p_sum = ((p == 1) & keep).sum(axis=0)
    tp = ((t == 1) & (p == 1)).sum(axis=0)
    denom = (t_sum + p_sum).astype(float)
    out = np.divide(2.0 * tp, denom, out=np.zeros(t.shape[1]), where=denom > 0)
    out[~keep.any(axis=0)] = np.nan
    return out


def per_au_accuracy(au_true: ArrayLike, au_pred: ArrayLike) -> np.ndarray:
    """Accuracy of each AU column, entries labelled -1 skipped; NaN for a column without labels."""
    t, p = _labels_2d(au_true, au_pred)
    out = np.full(t.shape[1], np.nan)
    for j in range(t.shape[1]):
        keep = t[:, j] != AU_MISSING
        if keep.any():
            out[j] = np.mean(t[keep, j].astype(int) == p[keep, j].astype(int))
    return out


def au_f1(au_true: ArrayLike, au_pred: ArrayLike) -> float:
    """Mean of the per-AU F1 (:func:`per_au_f1`) over the AUs that have labels — the P_AU term of
    SS-MFAR Eq. 10 when every AU is labelled. NaN when no AU has a label."""
    f1 = per_au_f1(au_true, au_pred)
    return float(np.nanmean(f1)) if np.isfinite(f1).any() else float("nan")


def afa(au_true: ArrayLike, au_pred: ArrayLike) -> float:
    """AFA: mean of average F1 and average accuracy over AUs (DM Table 2; EmotioNet challenge).

    ``0.5 * (mean_j F1_j + mean_j Acc_j)``, both per AU with -1 entries skipped; the EmotioNet
    challenge "final score" (Wang et al. 2020, §3) is the same quantity. NaN when no AU has a
    label.
    """
    f1 = per_au_f1(au_true, au_pred)
    acc = per_au_accuracy(au_true, au_pred)
    if not np.isfinite(f1).any():
        return float("nan")
    return float(0.5 * (np.nanmean(f1) + np.nanmean(acc)))


emotionet_score = afa  # the EmotioNet challenge final score, (accuracy + F1) / 2


# --- the ABAW multi-task score --------------------------------------------------------------------
def p_mtl(
    expr_true: ArrayLike,
    expr_pred: ArrayLike,
    au_true: ArrayLike,
    au_pred: ArrayLike,
    va_true: ArrayLike,
    va_pred: ArrayLike,
) -> dict[str, float]:
    """ABAW multi-task score, SS-MFAR Eq. 10: ``P_MTL = P_VA + P_AU + P_Exp``.

    - ``expr_f1``: macro F1 over the 8 expressions (:func:`expr_f1`), samples labelled -1 excluded;
    - ``au_f1``: mean of the 12 per-AU binary F1, rows holding any -1 excluded;
    - ``va``: mean of the CCC of valence and of arousal, rows holding -5 in either excluded;
    - ``overall``: their sum.

    All arrays have one row per sample: expressions (N,), AUs (N, 12), VA (N, 2). Each task is
    scored only on its own labelled rows, as the challenge does. A task without labelled rows is
    NaN, and so is ``overall``.
    """
    et, ep = np.asarray(expr_true).ravel(), np.asarray(expr_pred).ravel()
    at, ap = _labels_2d(au_true, au_pred)
    vt, vp = np.asarray(va_true, dtype=float), np.asarray(va_pred, dtype=float)
    if vt.ndim != 2 or vt.shape[1] != 2 or vt.shape != vp.shape:
        raise ValueError(
            f"va_true and va_pred must be (N, 2) of the same shape, got {vt.shape} and {vp.shape}"
        )
    if not et.size == at.shape[0] == vt.shape[0]:
        raise ValueError(
            f"tasks differ in number of rows: expr {et.size}, AU {at.shape[0]}, VA {vt.shape[0]}"
        )
    au_rows = (at != AU_MISSING).all(axis=1)
    va_rows = (vt != VA_MISSING).all(axis=1)
    scores = {
        "expr_f1": expr_f1(et, ep),
        "au_f1": au_f1(at[au_rows], ap[au_rows]) if au_rows.any() else float("nan"),
        "va": (
            0.5 * (ccc(vt[va_rows, 0], vp[va_rows, 0]) + ccc(vt[va_rows, 1], vp[va_rows, 1]))
            if va_rows.any()
            else float("nan")
        ),
    }
    scores["overall"] = scores["expr_f1"] + scores["au_f1"] + scores["va"]
    return scores


def score(pred: Mapping[str, np.ndarray]) -> dict[str, float]:
    """P_MTL, SS-MFAR Eq. 10, of :func:`affectlib.train.predict`'s output: expression = argmax,
    AU = sigmoid > 0.5, VA as predicted; each task over its labelled rows (:func:`p_mtl`)."""
    return p_mtl(
        pred["expr_true"],
        pred["expr_prob"].argmax(axis=1),
        pred["au_true"],
        (pred["au_prob"] > 0.5).astype(int),
        pred["va_true"],
        pred["va_pred"],
    )


# ---- TAL EmotioNet 2020 ----
def emotionet_per_au(au_true: ArrayLike, au_pred: ArrayLike) -> np.ndarray:
    """The EmotioNet challenge final score of each AU, ``(F1_j + accuracy_j) / 2`` (Wang et al.
    2020, §3; the per-AU curves of their Figure 2), entries labelled -1 skipped per column.
    F1 follows :func:`per_au_f1` (``zero_division=0``: an AU never present and never predicted
    scores F1 0, so its final score is its accuracy / 2). NaN for a column without any labelled
    entry. Returns (M,) floats; their mean over the AUs is :func:`emotionet_score` when every
    column has labels."""
    return 0.5 * (per_au_f1(au_true, au_pred) + per_au_accuracy(au_true, au_pred))


# ---- Bulat et al. 2022 (face pretraining): AU intensity ----
def icc_3_1(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Intra-class correlation ICC(3,1) of Shrout & Fleiss (1979), the AU intensity metric of
    DISFA work (Bulat et al. 2022, supplementary Table 1): two-way mixed, consistency, single
    rater, with the label and the prediction as the k = 2 "raters" of N targets.

    With ``Y`` (N, 2): ``MSR = k sum_i (mean_i - mean)^2 / (N - 1)`` (between targets),
    ``MSE = (SST - SSR - SSC) / ((N - 1)(k - 1))`` (residual, after the rater means),
    ``ICC(3,1) = (MSR - MSE) / (MSR + (k - 1) MSE)``. In [-1, 1]; a constant offset between the
    raters does not lower it (consistency). NaN when it is undefined: fewer than 2 targets, or
    MSR + MSE = 0 (both raters constant). Raises on unequal-length or non-finite input."""
    a, b = _vectors(y_true, y_pred, ("y_true", "y_pred"))
    n, k = a.size, 2
    if n < 2:
        return float("nan")
    y = np.stack([a, b], axis=1)  # (N, k)
    grand = y.mean()
    ss_rows = k * np.sum((y.mean(axis=1) - grand) ** 2)
    ss_cols = n * np.sum((y.mean(axis=0) - grand) ** 2)
    ss_err = np.sum((y - grand) ** 2) - ss_rows - ss_cols
    msr = ss_rows / (n - 1)
    mse = ss_err / ((n - 1) * (k - 1))
    denom = msr + (k - 1) * mse
    return float((msr - mse) / denom) if denom > 0 else float("nan")


def per_au_icc(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """:func:`icc_3_1` per column of (N, M) intensity arrays; rows whose label is negative (no
    label) are left out of that column; NaN for a column with fewer than 2 labelled rows."""
    t, p = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    if t.ndim != 2 or t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must be (N, M) of one shape: {t.shape}, {p.shape}")
    out = np.full(t.shape[1], np.nan)
    for j in range(t.shape[1]):
        keep = t[:, j] >= 0
        if keep.sum() >= 2:
            out[j] = icc_3_1(t[keep, j], p[keep, j])
    return out
