"""The embedded default data set: the generative label story.

The licensed data sets (Aff-Wild2, AffectNet, EmotioNet, RAF-DB) are unreachable, so the study generates
its own. This module draws the *labels* and the per-frame parameters a face is rendered from; the
renderer (``affectlib.data.render``) turns them into images and ``affectlib.data.writers`` writes them
in the real file formats. Everything is deterministic from the seed.

The story, for the Aff-Wild2-like set (subjects -> videos -> frames):

1. **Expressions persist over frames.** A video is a sequence of segments (mean length
   ``SEGMENT_MEAN`` frames); each segment's expression is drawn from ``EXPR_PRIOR`` and differs from the
   previous segment's.
2. **AUs follow the expression** through the ground-truth table ``p(AU | expression)`` (:func:`p_au_truth`):
   the Aff-Wild2 column of Kollias et al. Table 1 where it gives a value; for AUs outside Aff-Wild2's 12
   (5, 9, 17, 20), which Aff-Wild2 cannot speak for, Du et al.'s fraction from the same table
   (prototypical AUs 0.9); a low base rate elsewhere. Each AU is a two-state Markov chain per frame
   whose stationary probability is that table's entry (mean dwell ``AU_DWELL`` frames), so activations
   persist; a rendered intensity (FACS B-E, 2-5: ``INTENSITY_PROBS``) rises and decays smoothly behind the
   on/off state. AUs that FACS does not score together (``EXCLUSIVE_AUS``: pressed lips, AU24, and
   parted lips, AU25) never co-occur; each keeps its rate in the table.
3. **Valence/arousal** lie around each expression's place on Russell's circumplex (``CIRCUMPLEX``),
   scaled by how intense the expression is, with slowly varying AR(1) noise.
4. **Missing labels** per video (a video has no file for a task) and per frame (runs of frames), at the
   s-Aff-Wild2 training rates of SS-MFAR §3.1: VA 38465, AU 39066, expression 51737 of 142383 images,
   half of each task's missingness as whole videos, half as runs; both co-missingness rules of §3.1 hold
   by construction (valence and arousal are missing together; all 12 AUs are missing together).
5. **Label noise**: the annotated labels differ from the truth (expression confused with a near class,
   AUs flipped, weak activations missed, VA jitter). The truth is kept beside the annotation so that
   notebooks can compare estimates with it and compute the ceiling the noise allows.

Calibrated from published statistics: the missing-label rates (SS-MFAR §3.1), ``p(AU | expression)``
(Kollias Table 1), the AffectNet and RAF-DB class counts (their papers). Assumptions, because no paper
of the study publishes them: the Aff-Wild2 expression prior ``EXPR_PRIOR`` (shaped like its known
imbalance: Neutral and Other most frequent, Fear and Disgust rare), the base rate of unrelated AUs, the
noise rates in ``NOISE``, segment lengths and dwell times. None of these is tuned to favour a method.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import labels as L
from ..files import paper_table
from .render import pose_aus

# --- published statistics ------------------------------------------------------------------------
SSMFAR_TRAIN_IMAGES = 142383  # SS-MFAR §3.1
SSMFAR_MISSING = {"va": 38465, "au": 39066, "expr": 51737}  # SS-MFAR §3.1, training images
MISSING_RATE = {k: v / SSMFAR_TRAIN_IMAGES for k, v in SSMFAR_MISSING.items()}

# AffectNet manually annotated images per code 0..9 (Mollahosseini et al. 2017, Table 4); Non-Face (10)
# is left out because the renderer draws faces only.
AFFECTNET_COUNTS = {
    0: 74874,
    1: 134415,
    2: 25459,
    3: 14090,
    4: 6378,
    5: 3803,
    6: 24882,
    7: 3750,
    8: 33088,
    9: 11645,
}
# RAF-DB basic emotion images per label 1..7 (Li et al. 2017)
RAFDB_COUNTS = {1: 1619, 2: 355, 3: 877, 4: 5957, 5: 2460, 6: 867, 7: 3204}

# --- assumptions (documented above) --------------------------------------------------------------
EXPR_PRIOR = np.array([0.30, 0.04, 0.03, 0.04, 0.17, 0.10, 0.07, 0.25])  # ABAW order
BASE_RATE = 0.05  # p(AU | expression) for an AU the table does not relate to the expression
NEUTRAL_RATE = 0.03
OTHER_RATE = 0.15  # "Other" is ambiguous: every AU moderately likely
SEGMENT_MEAN = 40  # frames per expression segment
AU_DWELL = 12  # mean frames an AU stays in one state
MISSING_RUN_MEAN = 15  # frames per run of missing labels
NOISE = {"expr_flip": 0.10, "au_flip": 0.03, "au_miss_weak": 0.30, "va_std": 0.08}
CONFUSABLE = {  # where an annotator's expression label goes when it is wrong
    "Neutral": ("Other", "Sadness"),
    "Anger": ("Disgust", "Other"),
    "Disgust": ("Anger", "Other"),
    "Fear": ("Surprise", "Other"),
    "Happiness": ("Neutral", "Other"),
    "Sadness": ("Neutral", "Other"),
    "Surprise": ("Fear", "Happiness"),
    "Other": ("Neutral", "Anger"),
}
# Russell's circumplex, approximate angles of the basic emotions (valence, arousal)
CIRCUMPLEX = {
    "Neutral": (0.0, 0.0),
    "Anger": (-0.55, 0.60),
    "Disgust": (-0.60, 0.30),
    "Fear": (-0.60, 0.65),
    "Happiness": (0.75, 0.40),
    "Sadness": (-0.60, -0.35),
    "Surprise": (0.30, 0.70),
    "Other": (0.0, 0.15),
}
RENDER_AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 15, 17, 20, 23, 24, 25, 26)
# FACS level A..E of a labelled activation. Occurrence labels start at B: the AU-detection sets
# derived from intensity codes (DISFA, BP4D) count an AU as present from intensity 2 (B), a trace (A)
# being "barely detectable" in FACS; the shares of B..E decline towards E (an assumption).
_INTENSITY_SHARES = np.array([0.0, 0.25, 0.20, 0.15, 0.10])
INTENSITY_PROBS = _INTENSITY_SHARES / _INTENSITY_SHARES.sum()


def p_au_truth(aus: tuple[int, ...] = RENDER_AUS) -> pd.DataFrame:
    """The ground-truth ``p(AU | expression)``: rows = ABAW expressions, columns = ``AU<n>``.

    Aff-Wild2 column of Kollias Table 1 where given; Du et al.'s fraction for AUs Aff-Wild2 does not
    annotate (prototypical 0.9); ``NEUTRAL_RATE`` for Neutral, ``OTHER_RATE`` for Other, ``BASE_RATE``
    elsewhere.
    """
    ref = paper_table("kollias_table1_relatedness")
    p = np.full((L.N_EXPR, len(aus)), BASE_RATE)
    p[L.expr_index("Neutral")] = NEUTRAL_RATE
    p[L.expr_index("Other")] = OTHER_RATE
    col = {a: j for j, a in enumerate(aus)}
    for r in ref.itertuples():
        a = int(r.au)
        if a not in col:
            continue
        i = L.expr_index(r.expression)
        if r.source == "affwild2":
            p[i, col[a]] = r.weight
        elif r.source == "domain" and a not in L.ABAW_AUS:
            p[i, col[a]] = 0.9 if r.kind == "prototypical" else r.weight
    return pd.DataFrame(p, index=list(L.EXPRESSIONS), columns=[f"AU{a}" for a in aus])


@dataclass
class Story:
    """What :func:`generate_story` draws: one table per data set, each row one image, holding the
    annotated labels (in the ABAW space, markers for missing), the truth (``true_*`` columns) and the
    render parameters (``identity``, ``I_AU<n>`` intensities, ``yaw``/``pitch``/``roll``)."""

    affwild: pd.DataFrame
    affectnet: pd.DataFrame
    emotionet: pd.DataFrame
    rafdb: pd.DataFrame
    celeb: pd.DataFrame
    p_au: pd.DataFrame
    n_identities: int


# FACS pairs that cannot be scored together: pressed lips (AU24) are not parted lips (AU25). Where the
# independent draws turn both on, the second is turned off; it is drawn at p / (1 - p(first)) so
# that it keeps its calibrated p(AU | expression) (``_exclusive_rates``).
EXCLUSIVE_AUS: tuple[tuple[int, int], ...] = ((24, 25),)


# --- helpers -------------------------------------------------------------------------------------
def _exclusive_rates(p: np.ndarray) -> np.ndarray:
    """Rates (expressions x ``RENDER_AUS``) to draw from, independently, so that after
    :func:`_exclusive` every AU is on at its rate in ``p``: P(second on, first off) =
    q (1 - p_first) = p_second."""
    q = p.copy()
    for first, second in EXCLUSIVE_AUS:
        i, j = RENDER_AUS.index(first), RENDER_AUS.index(second)
        q[:, j] = np.minimum(p[:, j] / np.clip(1.0 - p[:, i], 1e-6, None), 1.0)
    return q


def _exclusive(state: np.ndarray) -> np.ndarray:
    """``state`` (..., len(RENDER_AUS)) with the second AU of each ``EXCLUSIVE_AUS`` pair off where
    the first is on (in place, returned)."""
    for first, second in EXCLUSIVE_AUS:
        i, j = RENDER_AUS.index(first), RENDER_AUS.index(second)
        state[..., j] &= ~state[..., i]
    return state


def _au_chains(expr: np.ndarray, p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """On/off AU states (V, T, A) given expressions (V, T): per-AU two-state Markov chains whose
    stationary probability is ``p[expr]``; re-drawn from it at each expression change."""
    V, T = expr.shape
    A = p.shape[1]
    state = np.zeros((V, T, A), dtype=bool)
    leave = 1.0 / AU_DWELL
    for t in range(T):
        pt = p[expr[:, t]]  # (V, A)
        fresh = rng.random((V, A)) < pt
        if t == 0:
            state[:, 0] = fresh
            continue
        changed = (expr[:, t] != expr[:, t - 1])[:, None]
        prev = state[:, t - 1]
        # on->off with `leave`, off->on with leave*p/(1-p): stationary probability p
        p_on = np.where(prev, 1 - leave, leave * pt / np.clip(1 - pt, 1e-3, None))
        step = rng.random((V, A)) < np.clip(p_on, 0, 1)
        state[:, t] = np.where(changed, fresh, step)
    return state


def _intensities(state: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rendered intensity (V, T, A): each activation gets a FACS level 1..5 (+ jitter); intensity
    follows the target with a first-order lag, so onsets and offsets take a few frames."""
    V, T, A = state.shape
    level = rng.choice(5, size=(V, T, A), p=INTENSITY_PROBS) + 1 + rng.uniform(-0.4, 0.4, (V, T, A))
    # one level per activation: carry the level of an activation's first frame forward
    onset = state & ~np.concatenate([np.zeros((V, 1, A), bool), state[:, :-1]], axis=1)
    lv = np.where(onset, level, 0.0)
    out = np.zeros((V, T, A))
    cur = np.zeros((V, A))
    held = np.zeros((V, A))
    for t in range(T):
        held = np.where(onset[:, t], lv[:, t], held)
        target = np.where(state[:, t], held, 0.0)
        cur = cur + 0.6 * (target - cur)
        out[:, t] = cur
    return out


def _segments(n_videos: int, T: int, rng: np.random.Generator) -> np.ndarray:
    expr = np.zeros((n_videos, T), dtype=np.int64)
    for v in range(n_videos):
        t, prev = 0, -1
        while t < T:
            length = int(rng.geometric(1.0 / SEGMENT_MEAN))
            prior = EXPR_PRIOR.copy()
            if prev >= 0:
                prior[prev] = 0
            e = rng.choice(L.N_EXPR, p=prior / prior.sum())
            expr[v, t : t + length] = e
            t, prev = t + length, e
    return expr


def _missing_mask(video: np.ndarray, frame: np.ndarray, rate: float, rng) -> np.ndarray:
    """A boolean mask with round(rate * N) missing frames: half as whole videos, the rest as runs."""
    n = len(video)
    target = int(round(rate * n))
    miss = np.zeros(n, dtype=bool)
    vids = rng.permutation(np.unique(video))
    for v in vids:  # whole videos, up to half the target
        idx = np.flatnonzero(video == v)
        if miss.sum() + len(idx) > target / 2:
            continue
        miss[idx] = True
    order = np.lexsort((frame, video))
    while miss.sum() < target:
        start = int(rng.integers(n))
        length = min(int(rng.geometric(1.0 / MISSING_RUN_MEAN)), target - int(miss.sum()))
        # a run of consecutive frames of one video (in frame order)
        pos = int(np.flatnonzero(order == start)[0])
        run = order[pos : pos + length]
        run = run[video[run] == video[start]]
        miss[run] = True
    return miss


def _va(expr: np.ndarray, strength: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """Valence/arousal (V, T) around the circumplex place of each expression, AR(1) noise."""
    centre = np.array([CIRCUMPLEX[n] for n in L.EXPRESSIONS])  # (8, 2)
    V, T = expr.shape
    noise = np.zeros((V, T, 2))
    e = rng.normal(0, 0.12, (V, 2))
    for t in range(T):
        e = 0.9 * e + rng.normal(0, 0.12 * np.sqrt(1 - 0.81), (V, 2))
        noise[:, t] = e
    va = centre[expr] * (0.5 + 0.5 * strength[..., None]) + noise
    return np.clip(va[..., 0], -1, 1), np.clip(va[..., 1], -1, 1)


def _pose(n_videos: int, T: int, rng) -> np.ndarray:
    """Head pose (V, T, 3) of the Aff-Wild2-like frames, yaw / pitch / roll degrees as rendered: a
    per-video offset plus a random walk. The frames are ``cropped_aligned``: the aligner rotates
    each face upright, so only a residual roll is left (std 2 deg, drift 0.2 deg per frame; the
    head's own roll does not reach the image); yaw and pitch stay (std 14 and 8 deg)."""
    base = rng.normal(0, [14.0, 8.0, 2.0], (n_videos, 1, 3))
    drift = np.cumsum(rng.normal(0, [1.0, 0.6, 0.2], (n_videos, T, 3)), axis=1)
    return np.clip(base + drift, [-45, -30, -10], [45, 30, 10])


def _annotate_expr(true: np.ndarray, rng, scale: float) -> np.ndarray:
    out = true.copy()
    flip = rng.random(len(true)) < NOISE["expr_flip"] * scale
    alt = np.array([[L.expr_index(n) for n in CONFUSABLE[e]] for e in L.EXPRESSIONS])
    pick = rng.integers(0, 2, len(true))
    out[flip] = alt[true[flip], pick[flip]]
    return out


def _annotate_aus(true: np.ndarray, intensity: np.ndarray, rng, scale: float) -> np.ndarray:
    out = true.astype(np.int64).copy()
    flip = rng.random(true.shape) < NOISE["au_flip"] * scale
    out[flip] = 1 - out[flip]
    weak = true & (intensity < 1.5) & (rng.random(true.shape) < NOISE["au_miss_weak"] * scale)
    out[weak] = 0
    return out


def _single_images(n: int, expr_true: np.ndarray, p: np.ndarray, rng) -> dict[str, np.ndarray]:
    """AU states, intensities and pose for ``n`` unrelated still images."""
    state = _exclusive(rng.random((n, p.shape[1])) < _exclusive_rates(p)[expr_true])
    level = (
        rng.choice(5, size=state.shape, p=INTENSITY_PROBS) + 1 + rng.uniform(-0.4, 0.4, state.shape)
    )
    inten = np.where(state, level, 0.0)
    pose = np.clip(rng.normal(0, [16.0, 9.0, 7.0], (n, 3)), [-45, -30, -25], [45, 30, 25])
    return {"state": state, "intensity": inten, "pose": pose}


def _frame_block(inten: np.ndarray, pose: np.ndarray) -> dict[str, np.ndarray]:
    cols = {f"I_AU{a}": inten[:, j] for j, a in enumerate(RENDER_AUS)}
    cols.update({"yaw": pose[:, 0], "pitch": pose[:, 1], "roll": pose[:, 2]})
    return cols


# --- the generator -------------------------------------------------------------------------------
def generate_story(profile, seed: int = 0) -> Story:
    """Draw the whole embedded data set's labels and render parameters for ``profile``."""
    rng = np.random.default_rng([seed, 20221])
    ptab = p_au_truth()
    p = ptab.to_numpy()
    abaw_cols = [RENDER_AUS.index(a) for a in L.ABAW_AUS]
    noise = float(profile.label_noise)

    # ---- Aff-Wild2-like: subjects -> videos -> frames
    n_tr, n_va = profile.n_train_subjects, profile.n_val_subjects
    n_sub = n_tr + n_va + profile.n_test_subjects
    vps, T = profile.videos_per_subject, profile.frames_per_video
    V = n_sub * vps
    subject = np.repeat(np.arange(n_sub), vps)
    # three subject-disjoint splits: runs select on validation and report the held-out test split
    split = np.select([subject < n_tr, subject < n_tr + n_va], ["train", "validation"], "test")
    # names like Aff-Wild2's ("1-30-1280x720"); two faces in one video come as NAME_left / NAME_right
    names = [f"{100 + v}-30-640x360" for v in range(V)]
    for v in range(5, V - 1, 11):
        if split[v] == split[v + 1]:
            names[v], names[v + 1] = names[v] + "_left", names[v] + "_right"
    expr = _segments(V, T, rng)
    state = _exclusive(_au_chains(expr, _exclusive_rates(p), rng))
    inten = _intensities(state, rng)
    strength = np.clip(inten.mean(axis=2) / 2.0, 0, 1)
    val, aro = _va(expr, strength, rng)
    pose = _pose(V, T, rng)

    N = V * T
    vid_idx = np.repeat(np.arange(V), T)
    frame = np.tile(np.arange(1, T + 1), V)
    true_expr = expr.reshape(N)
    true_au = state.reshape(N, -1)[:, abaw_cols]
    inten_f = inten.reshape(N, -1)
    true_v, true_a = val.reshape(N), aro.reshape(N)
    ann_expr = _annotate_expr(true_expr, rng, noise)
    ann_au = _annotate_aus(true_au, inten_f[:, abaw_cols], rng, noise)
    ann_v = np.clip(true_v + rng.normal(0, NOISE["va_std"] * noise, N), -1, 1).round(3)
    ann_a = np.clip(true_a + rng.normal(0, NOISE["va_std"] * noise, N), -1, 1).round(3)
    split_f = split[vid_idx]
    for task in ("expr", "au", "va"):
        for s in ("train", "validation", "test"):
            sel = np.flatnonzero(split_f == s)
            if not len(sel):
                continue
            miss = _missing_mask(vid_idx[sel], frame[sel], MISSING_RATE[task], rng)
            rows = sel[miss]
            if task == "expr":
                ann_expr[rows] = L.EXPR_MISSING
            elif task == "au":
                ann_au[rows] = L.AU_MISSING
            else:
                ann_v[rows] = L.VA_MISSING
                ann_a[rows] = L.VA_MISSING
    video_names = np.array(names)[vid_idx]
    aw = {
        "path": [f"{v}/{f:05d}.jpg" for v, f in zip(video_names, frame, strict=True)],
        "video": video_names,
        "frame": frame,
        "expr": ann_expr,
        **{c: ann_au[:, j] for j, c in enumerate(L.AU_COLUMNS)},
        "valence": ann_v,
        "arousal": ann_a,
        "split": split_f,
        "subject": subject[vid_idx],
        "identity": subject[vid_idx],
        "true_expr": true_expr,
        **{f"true_{c}": true_au[:, j].astype(np.int64) for j, c in enumerate(L.AU_COLUMNS)},
        "true_valence": true_v,
        "true_arousal": true_a,
        **_frame_block(inten_f, pose.reshape(N, 3)),
    }
    affwild = pd.DataFrame(aw)
    next_id = n_sub

    # ---- AffectNet-format: one still image per identity, expression + VA
    codes = np.array(list(AFFECTNET_COUNTS))
    pc = np.array(list(AFFECTNET_COUNTS.values()), float)
    n = profile.n_affectnet
    code = rng.choice(codes, size=n, p=pc / pc.sum())
    abaw = np.array([L.AFFECTNET_TO_ABAW[int(c)] for c in code])
    # None/Uncertain images carry an expression we cannot name: draw their faces like "Other"
    face_expr = np.where(abaw < 0, L.expr_index("Other"), abaw)
    one = _single_images(n, face_expr, p, rng)
    strength1 = np.clip(one["intensity"].mean(axis=1) / 2.0, 0, 1)
    va1 = np.array([CIRCUMPLEX[L.EXPRESSIONS[e]] for e in face_expr]) * (
        0.5 + 0.5 * strength1[:, None]
    ) + rng.normal(0, 0.15, (n, 2))
    va1 = np.clip(va1, -1, 1)
    va_ann = np.clip(va1 + rng.normal(0, NOISE["va_std"] * noise, (n, 2)), -1, 1).round(3)
    no_va = rng.random(n) < 0.02  # a few images without VA, written as AffectNet's -2
    va_ann[no_va] = L.VA_MISSING
    an_split = np.where(rng.random(n) < 0.15, "validation", "train")
    ann_e = np.where(abaw < 0, L.EXPR_MISSING, _annotate_expr(face_expr, rng, noise))
    # the file holds AffectNet codes: a noisy label is written as the code of the class it went to
    ann_code = np.array(
        [c if e < 0 else L.ABAW_TO_AFFECTNET[int(e)] for c, e in zip(code, ann_e, strict=True)]
    )
    affectnet = pd.DataFrame(
        {
            "path": [f"{1 + i // 500}/{i:06d}.jpg" for i in range(n)],
            "affectnet_code": ann_code,
            "expr": ann_e,
            "valence": va_ann[:, 0],
            "arousal": va_ann[:, 1],
            "split": an_split,
            "identity": next_id + np.arange(n),
            "true_expr": face_expr,
            "true_valence": va1[:, 0],
            "true_arousal": va1[:, 1],
            **_frame_block(one["intensity"], one["pose"]),
        }
    )
    next_id += n

    # ---- EmotioNet-format: AU-only still images
    n = profile.n_emotionet
    hidden = rng.choice(L.N_EXPR, size=n, p=EXPR_PRIOR)
    one = _single_images(n, hidden, p, rng)
    ann = _annotate_aus(one["state"], one["intensity"], rng, noise)
    emo = {
        "path": [f"emotionet_{i:06d}.jpg" for i in range(n)],
        **{f"AU{a}": ann[:, j] for j, a in enumerate(RENDER_AUS)},
        **{f"AU{50 + k}": v for k, v in enumerate(pose_aus(one["pose"]).T, start=1)},
        "split": np.where(rng.random(n) < 0.15, "validation", "train"),
        "identity": next_id + np.arange(n),
        "true_expr": hidden,
        **{f"true_AU{a}": one["state"][:, j].astype(np.int64) for j, a in enumerate(RENDER_AUS)},
        **_frame_block(one["intensity"], one["pose"]),
    }
    emotionet = pd.DataFrame(emo)
    next_id += n

    # ---- RAF-DB-format: basic expressions
    n = profile.n_rafdb
    rc = np.array(list(RAFDB_COUNTS))
    pr = np.array(list(RAFDB_COUNTS.values()), float)
    rlab = rng.choice(rc, size=n, p=pr / pr.sum())
    rexpr = np.array([L.RAFDB_TO_ABAW[int(c)] for c in rlab])
    one = _single_images(n, rexpr, p, rng)
    is_test = rng.random(n) < 0.2
    ntr = np.cumsum(~is_test)
    nte = np.cumsum(is_test)
    rpaths = [
        f"test_{nte[i]:04d}.jpg" if is_test[i] else f"train_{ntr[i]:05d}.jpg" for i in range(n)
    ]
    ann_r = _annotate_expr(rexpr, rng, noise)
    ann_r[ann_r == L.expr_index("Other")] = rexpr[
        ann_r == L.expr_index("Other")
    ]  # RAF-DB has no Other
    rafdb = pd.DataFrame(
        {
            "name": rpaths,
            "rafdb_label": [L.ABAW_TO_RAFDB[int(e)] for e in ann_r],
            "expr": ann_r,
            "split": np.where(is_test, "test", "train"),
            "identity": next_id + np.arange(n),
            "true_expr": rexpr,
            **_frame_block(one["intensity"], one["pose"]),
        }
    )
    next_id += n

    # ---- identity set for face-recognition pretraining (the MS-Celeb-1M stand-in): subjects of no
    # other set, each in many images with any expression, pose and nuisance; labelled by identity only
    k = profile.pretrain_images_per_subject
    n = profile.n_pretrain_subjects * k
    ident = next_id + np.repeat(np.arange(profile.n_pretrain_subjects), k)
    hidden = rng.choice(L.N_EXPR, size=n, p=EXPR_PRIOR)
    one = _single_images(n, hidden, p, rng)
    celeb = pd.DataFrame(
        {
            "path": [
                f"{i:05d}/{j:03d}.jpg" for i in range(profile.n_pretrain_subjects) for j in range(k)
            ],
            "label": ident - next_id,
            "split": np.where(
                np.tile(np.arange(k), profile.n_pretrain_subjects) < max(1, k // 10),
                "validation",
                "train",
            ),
            "identity": ident,
            "true_expr": hidden,
            **_frame_block(one["intensity"], one["pose"]),
        }
    )
    next_id += profile.n_pretrain_subjects
    return Story(affwild, affectnet, emotionet, rafdb, celeb, ptab, next_id)
