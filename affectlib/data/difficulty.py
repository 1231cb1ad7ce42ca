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
from sklearn.linear_model import LogisticRegression, Ridge
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


def _mean_va(train: pd.DataFrame, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 2): the training mean of valence and arousal (rows with both labelled) for every face,
    plus a 1e-3 jitter from ``rng`` that keeps the CCC of a constant defined (it is ~0)."""
    va = train[["valence", "arousal"]].to_numpy()
    mean = va[(va != L.VA_MISSING).all(1)].mean(0)
    return np.tile(mean, (n, 1)) + rng.normal(0, 1e-3, (n, 2))


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
    va_pred = _mean_va(tr, n, rng)
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


def au_chance(root, split: str, seed: int = 0) -> dict[str, float]:
    """Each AU's label-blind F1 on ``split`` of the embedded set at ``root`` (predicting it on at
    its training base rate, :func:`chance_scores`): ``{"AU1": ...}``."""
    cs = chance_scores(load_truth(root), split, seed=seed)
    return {
        m[3:]: float(c) for m, c in zip(cs["measure"], cs["chance"], strict=True) if m[:3] == "F1 "
    }


def baseline_scores(truth: pd.DataFrame, split: str = "validation", seed: int = 0) -> pd.DataFrame:
    """The label-blind baselines of a results table, scored on ``split`` as every method is (SS-MFAR
    Eq. 10 terms: ``expr_f1``, ``au_f1``, ``va``, ``overall``), one row each (``baseline``):

    - ``chance``: :func:`chance_scores` (classes and AUs guessed at the training rates), the floor
      every verdict reads against;
    - ``majority, no AU``: the most frequent training expression for every face, no AU ever on
      (predict-nothing: AU F1 0), valence and arousal at their training means;
    - ``majority, every AU``: the same expression, every AU on for every face (the highest AU F1 a
      label-blind guess reaches, :func:`guess_f1` at rate 1);
    - ``noise ceiling``: the true labels (:func:`noise_ceiling`).

    Valence and arousal at a constant have CCC 0 (a tiny jitter, drawn from ``seed``, keeps the
    CCC defined)."""
    rng = np.random.default_rng(seed)
    tr, t = truth[truth["split"] == "train"], truth[truth["split"] == split]
    n = len(t)
    lab = tr["expr"][tr["expr"] >= 0]
    majority = int(np.bincount(lab, minlength=L.N_EXPR).argmax())
    va_pred = _mean_va(tr, n, rng)
    au_true = t[list(L.AU_COLUMNS)].to_numpy()
    scores = ("expr_f1", "au_f1", "va", "overall")
    rows = []
    for name, au_on in (("majority, no AU", 0), ("majority, every AU", 1)):
        s = metrics.p_mtl(
            t["expr"],
            np.full(n, majority),
            au_true,
            np.full(au_true.shape, au_on),
            t[["valence", "arousal"]].to_numpy(),
            va_pred,
        )
        rows.append({"baseline": name, **{k: float(s[k]) for k in scores}})
    chance = chance_scores(truth, split, seed).set_index("measure")["chance"]
    ceiling = noise_ceiling(truth, split).set_index("measure")["ceiling"]
    return pd.DataFrame(
        [
            {"baseline": "chance", **{k: float(chance[k]) for k in scores}},
            *rows,
            {"baseline": "noise ceiling", **{k: float(ceiling[k]) for k in scores}},
        ]
    )


def pixel_features(files: list[Path] | list[str], size: int = 24) -> np.ndarray:
    """Grey-level pixels of each image, resized to ``size`` x ``size`` and standardised per pixel
    over the images: (N, size * size) float32."""
    x = np.stack([_grey(Image.open(f), size) for f in files]).reshape(len(files), -1)
    return (x - x.mean(0)) / (x.std(0) + 1e-6)


def _grey(image: Image.Image, size: int) -> np.ndarray:
    """The grey levels (0-255, float32) of ``image`` resized to ``size`` x ``size``."""
    return np.asarray(image.convert("L").resize((size, size), Image.BILINEAR), np.float32)


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


def hog_of_images(
    images: np.ndarray, size: int = 48, cell: int = 6, orientations: int = 9
) -> np.ndarray:
    """Histograms of oriented gradients (Dalal & Triggs 2005, via ``skimage.feature.hog``) of each
    face of ``images`` (N, H, W, 3) uint8 RGB, made grey and resized to ``size`` px: cells of
    ``cell`` px, 2 x 2-cell blocks, L2-Hys block normalisation. The appearance descriptor of
    OpenFace's AU detectors (Baltrusaitis et al. 2015, "Cross-dataset learning and
    person-specific normalisation for automatic Action Unit detection"): local,
    contrast-normalised edge orientations, tolerant of small shifts and of lighting. (N, D)."""
    return np.stack([_hog(Image.fromarray(im), size, cell, orientations) for im in images])


def hog_features(
    files: list[Path] | list[str], size: int = 48, cell: int = 6, orientations: int = 9
) -> np.ndarray:
    """:func:`hog_of_images` of image files (any format PIL reads). (N, D) float32."""
    return np.stack([_hog(Image.open(f), size, cell, orientations) for f in files])


def _hog(image: Image.Image, size: int, cell: int, orientations: int) -> np.ndarray:
    from skimage.feature import hog  # deferred: scikit-image is heavy; only the probe needs it

    return hog(
        _grey(image, size) / 255.0,
        orientations=orientations,
        pixels_per_cell=(cell, cell),
        cells_per_block=(2, 2),
        block_norm="L2-Hys",
        feature_vector=True,
    ).astype(np.float32)


def _f1(tp: np.ndarray, n_pred: np.ndarray, n_true: np.ndarray) -> np.ndarray:
    """F1 = 2 TP / (predicted + true positives); 0 where both are 0 (scikit-learn's convention)."""
    den = n_pred + n_true
    return np.where(den > 0, 2.0 * tp / np.maximum(den, 1e-12), 0.0)


def guess_f1(rate: float | np.ndarray, n_true: np.ndarray, n_labelled: np.ndarray) -> np.ndarray:
    """Expected F1 (ratio of expected counts) of calling each labelled row positive at random with
    probability ``rate``, on ``n_true`` positives among ``n_labelled`` rows: 2 r P / (r N + P).
    ``rate`` = the training base rate is the *chance* of :func:`chance_scores`; ``rate`` = 1 calls
    every face positive, 2 P / (N + P), the best any label-blind guess reaches on F1."""
    return _f1(rate * n_true, rate * n_labelled, n_true)


def _ccc_moments(y: np.ndarray, p: np.ndarray, group: np.ndarray, n_group: int) -> np.ndarray:
    """(6, G) per-group sums n, y, p, y^2, p^2, y p, from which :func:`group_ccc` computes the CCC
    of any reweighting of the groups (a bootstrap over videos) without touching the rows again."""
    return np.stack(
        [np.bincount(group, weights=v, minlength=n_group)
         for v in (np.ones_like(y), y, p, y * y, p * p, y * p)]
    )  # fmt: skip


def group_ccc(moments: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """CCC (SS-MFAR Eq. 11, population statistics as :func:`affectlib.metrics.ccc`) of the rows of
    each group counted ``weight`` times: ``moments`` from :func:`_ccc_moments`, ``weight`` (B, G);
    returns (B,)."""
    n, sy, sp, syy, spp, syp = moments @ weight.T
    n = np.maximum(n, 1e-12)
    my, mp = sy / n, sp / n
    vy, vp, cov = syy / n - my**2, spp / n - mp**2, syp / n - my * mp
    return 2 * cov / np.maximum(vy + vp + (my - mp) ** 2, 1e-12)


def _au_f1s(counts: np.ndarray, rate: float, weight: np.ndarray) -> np.ndarray:
    """(3, B): F1 of the probe, of guessing at ``rate`` and of calling every face positive, from
    per-video ``counts`` (4, V: true positives, predicted, positive, labelled rows) with the videos
    counted ``weight`` (B, V) times."""
    tp, n_pred, n_true, n_lab = counts @ weight.T
    return np.stack(
        [_f1(tp, n_pred, n_true), guess_f1(rate, n_true, n_lab), guess_f1(1.0, n_true, n_lab)]
    )


def subtract_video_median(x: np.ndarray, video: np.ndarray) -> np.ndarray:
    """Person-specific normalisation of features (Baltrusaitis et al. 2015, Sec. 3.2): each row of
    ``x`` (N, D) minus the per-feature median of the rows of its video (``video``, N labels), so
    what a person's face always shows (identity, their lighting) cancels and what changes over
    the video (the expression) stays. Uses no label; it needs the whole video, as OpenFace's
    offline AU detection does. (N, D), a new array."""
    x = np.asarray(x)
    median = pd.DataFrame(x).groupby(np.asarray(video)).transform("median")
    return x - median.to_numpy(np.result_type(x.dtype, np.float32))


def readout_probe(
    root: str | Path,
    split: str = "validation",
    size: int = 48,
    cell: int = 6,
    c: float = 1e-3,
    n_boot: int = 500,
    seed: int = 0,
    margin: float = 0.1,
    person_norm: bool = False,
) -> pd.DataFrame:
    """Can a small trained model read every label of the Aff-Wild2-like set off its images?

    A linear probe on HOG features (:func:`hog_features`, standardised on the training rows): per
    ABAW AU an L2 logistic regression, for the expression a multinomial one, both with balanced
    class weights and one fixed strength ``c`` (not tuned on ``split``), fitted on the training
    subjects against the *annotated* labels and scored on the unseen subjects of ``split`` the way
    every method is: F1 of each AU at probability 0.5 and their mean (``au_f1``), expression macro
    F1 over the 8 classes (``expr_f1``), and, from a ridge regression of the same strength, the mean
    CCC of valence and arousal (``va``; chance 0, the training mean). Rows without a label (< 0,
    or ``VA_MISSING``) are left out of fit and score.

    One row per measure, with the score (``probe``) beside:

    - ``chance``: guessing at the training base rates (:func:`guess_f1`; for the expression,
      classes drawn at the training frequencies), the floor every table of ours is read against;
    - ``all_pos`` (AUs): calling every face positive, the highest F1 a label-blind guess reaches;
    - ``ceiling``: the truth scored against the annotation (:func:`noise_ceiling`);
    - ``auc_true`` (AUs): ROC AUC of the probe's score against the *true* labels, threshold-free;
    - 95% percentile intervals over ``n_boot`` resamples of the ``split`` videos (a video's frames
      are not independent; one resample serves every measure): ``lo``/``hi`` of probe - chance,
      ``auc_lo``/``auc_hi``, ``pos_lo`` of probe - all_pos.

    ``learnable``: ``lo`` > 0 and, for an AU, ``auc_lo`` > 0.5; ``beats_all_pos``: ``pos_lo`` > 0;
    ``saturated``: probe > ceiling - ``margin`` (where the ceiling exceeds ``margin``).

    ``person_norm``: subtract each video's median HOG first (:func:`subtract_video_median`), as
    OpenFace does, to see how much of what hides an AU is the identity.
    """
    truth = load_truth(root)
    truth = truth[truth["split"].isin(["train", split])].reset_index(drop=True)
    image_root = study.image_root(root, "abaw-mtl")
    x = hog_features([image_root / p for p in truth["path"]], size, cell)
    if person_norm:
        x = subtract_video_median(x, truth["video"].to_numpy())
    train = (truth["split"] == "train").to_numpy()
    x = (x - x[train].mean(0)) / (x[train].std(0) + 1e-6)
    x_test = x[~train]
    video = pd.factorize(truth.loc[~train, "video"])[0]
    n_vid = int(video.max()) + 1 if len(video) else 0
    draws = np.random.default_rng(seed).integers(0, n_vid, (n_boot, n_vid))
    weight = np.zeros((n_boot, n_vid))  # (B, V): how often each video is drawn
    for b, d in enumerate(draws):
        weight[b] = np.bincount(d, minlength=n_vid)
    ceiling = noise_ceiling(truth, split).set_index("measure")["ceiling"]

    def per_video(v: np.ndarray) -> np.ndarray:
        return np.bincount(video, weights=v.astype(float), minlength=n_vid)

    def fit(y: np.ndarray) -> LogisticRegression | None:
        keep = train & (y >= 0)
        if len(np.unique(y[keep])) < 2:
            return None
        return LogisticRegression(C=c, max_iter=1000, class_weight="balanced").fit(x[keep], y[keep])

    def interval(b: np.ndarray) -> tuple[float, float]:
        if not len(b) or np.isnan(b).all():
            return float("nan"), float("nan")
        return float(np.nanquantile(b, 0.025)), float(np.nanquantile(b, 0.975))

    rows, boot = [], []
    for col in L.AU_COLUMNS:
        y = truth[col].to_numpy()
        model = fit(y)
        yt, keep = y[~train], y[~train] >= 0
        score = model.decision_function(x_test) if model is not None else None
        pred = (score > 0) & keep if model is not None else np.zeros_like(keep)  # p > 0.5
        pos = (yt == 1) & keep
        counts = np.stack([per_video(m) for m in (pred & pos, pred, pos, keep)])
        lab_tr = y[train & (y >= 0)]
        rate = float((lab_tr == 1).mean()) if len(lab_tr) else 0.0
        point = _au_f1s(counts, rate, np.ones((1, n_vid)))[:, 0]
        b = _au_f1s(counts, rate, weight)
        boot.append(b)
        auc, aucs = float("nan"), np.full(n_boot, np.nan)
        y_true = truth[f"true_{col}"].to_numpy()[~train]
        if model is not None and 0 < y_true[keep].mean() < 1:
            yk, sk, vk = y_true[keep], score[keep], video[keep]
            auc = float(roc_auc_score(yk, sk))
            for i in range(n_boot):
                sw = weight[i, vk]
                if 0 < (sw * yk).sum() < sw.sum():
                    aucs[i] = roc_auc_score(yk, sk, sample_weight=sw)
        lo, hi = interval(b[0] - b[1])
        auc_lo, auc_hi = interval(aucs)
        rows.append(
            {"measure": col, "probe": float(point[0]), "chance": float(point[1]),
             "all_pos": float(point[2]), "ceiling": float(ceiling[f"F1 {col}"]),
             "auc_true": auc, "lo": lo, "hi": hi, "auc_lo": auc_lo, "auc_hi": auc_hi,
             "pos_lo": interval(b[0] - b[2])[0]}
        )  # fmt: skip
    au_rows = pd.DataFrame(rows)
    b = np.mean(boot, 0)  # (3, B): the mean over AUs of each resample
    lo, hi = interval(b[0] - b[1])
    rows.append(
        {
            "measure": "au_f1",
            **{k: float(au_rows[k].mean()) for k in ("probe", "chance", "all_pos")},
            "ceiling": float(ceiling["au_f1"]),
            "auc_true": float(au_rows["auc_true"].mean()),
            "lo": lo,
            "hi": hi,
            "pos_lo": interval(b[0] - b[2])[0],
        }
    )

    # expression: a multinomial read-out, macro F1 over the 8 classes
    y = truth["expr"].to_numpy()
    model = fit(y)
    yt, keep = y[~train], y[~train] >= 0
    pred = model.predict(x_test) if model is not None else np.full(len(yt), -1)
    lab_tr = y[train & (y >= 0)]
    freq = np.bincount(lab_tr, minlength=L.N_EXPR) / max(len(lab_tr), 1)
    tp, n_pred, n_true = (
        np.stack([per_video(m & keep) for m in masks])
        for masks in (
            [(pred == k) & (yt == k) for k in range(L.N_EXPR)],
            [pred == k for k in range(L.N_EXPR)],
            [yt == k for k in range(L.N_EXPR)],
        )
    )
    n_lab = per_video(keep)

    def macro(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t_, p_, n_, m_ = tp @ w.T, n_pred @ w.T, n_true @ w.T, n_lab @ w.T
        return _f1(t_, p_, n_).mean(0), guess_f1(freq[:, None], n_, m_).mean(0)

    (score,), (floor,) = macro(np.ones((1, n_vid)))
    b_score, b_floor = macro(weight)
    lo, hi = interval(b_score - b_floor)
    rows.append(
        {"measure": "expr_f1", "probe": float(score), "chance": float(floor),
         "ceiling": float(ceiling["expr_f1"]), "lo": lo, "hi": hi}
    )  # fmt: skip

    # valence and arousal: a ridge read-out (the same strength), mean CCC of the two (SS-MFAR
    # Eq. 11); predicting the training mean, the label-blind guess, has CCC 0
    va = truth[["valence", "arousal"]].to_numpy(float)
    has_va = (va != L.VA_MISSING).all(1)
    fit_rows = train & has_va
    keep = has_va[~train]
    if fit_rows.sum() > 1 and keep.any():
        pred_va = Ridge(alpha=1.0 / c).fit(x[fit_rows], va[fit_rows]).predict(x_test)
        moments = np.stack(
            [_ccc_moments(va[~train][keep, d], pred_va[keep, d], video[keep], n_vid)
             for d in range(2)]
        )  # fmt: skip

        def ccc(w: np.ndarray) -> np.ndarray:
            return np.mean([group_ccc(m, w) for m in moments], axis=0)

        (score,) = ccc(np.ones((1, n_vid)))
        lo, hi = interval(ccc(weight))
        rows.append(
            {"measure": "va", "probe": float(score), "chance": 0.0,
             "ceiling": float(ceiling["va"]), "lo": lo, "hi": hi}
        )  # fmt: skip

    out = pd.DataFrame(rows)
    cols = ["measure", "probe", "chance", "all_pos", "ceiling", "lo", "hi", "pos_lo",
            "auc_true", "auc_lo", "auc_hi"]  # fmt: skip
    out = out.reindex(columns=cols)
    is_au = out["measure"].isin(L.AU_COLUMNS)
    out["learnable"] = (out["lo"] > 0) & (~is_au | (out["auc_lo"] > 0.5))
    out["beats_all_pos"] = out["pos_lo"] > 0
    # near the ceiling; a measure whose ceiling is itself under the margin (no positives) is not
    out["saturated"] = (out["probe"] > out["ceiling"] - margin) & (out["ceiling"] > margin)
    return out


def readout_verdict(probe: pd.DataFrame) -> str:
    """Plain sentences on a :func:`readout_probe` table: which measures are learnable, which are
    not, which fail to beat calling every face positive, and which sit near the ceiling."""

    def names(mask: pd.Series) -> str:
        return ", ".join(probe.loc[mask, "measure"]) or "none"

    is_au = probe["measure"].isin(L.AU_COLUMNS)
    measured = probe["probe"].notna()
    return "\n".join(
        [
            f"Clearly above chance (95% interval over videos; AUC against the truth above 0.5): "
            f"{names(probe['learnable'])}.",
            f"Not clearly above chance: {names(measured & ~probe['learnable'])}.",
            f"AUs whose F1 does not clearly beat calling every face positive: "
            f"{names(is_au & measured & ~probe['beats_all_pos'])}.",
            f"Near the ceiling the label noise allows: {names(probe['saturated'])}.",
        ]
    )
