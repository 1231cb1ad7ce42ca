"""Parametric 2-D face renderer: the instrument behind the embedded default data set.

A face is drawn from three groups of parameters and a pose:

- identity (``sample_identities``): face shape, skin tone, feature sizes and spacing, brows, hair line
  and hair style, iris colour, lips, occasionally glasses / beard / moustache;
- action units: one intensity per AU in ``RENDER_AUS``, 0 (absent) .. 5 (FACS intensity E), float;
- pose: yaw, pitch, roll in degrees;
- nuisance (``sample_nuisance``): crop jitter (a loose detector crop of the whole head, or the tight,
  centred crop of a face aligner), gaze, illumination, background clutter, occlusion, blur and
  sensor noise. JPEG artefacts are left to whoever writes the files.

How an AU moves the face follows the FACS manual (Ekman, Friesen & Hager 2002, "Facial Action Coding
System", chapters 2-4): AU1 raises the inner brow (central forehead wrinkles), AU2 the outer brow
(lateral wrinkles), AU4 lowers the brows and pulls them together (vertical glabellar furrows, lower
upper lid), AU5 raises the upper lid (white above the iris), AU6 raises the cheeks (narrows the eye from
below, lower-lid bulge, crow's feet, deeper nasolabial fold), AU7 tightens the lids (lower lid raised
and straightened), AU9 wrinkles the nose (bridge wrinkles, nostrils up, brows down medially), AU10
raises the upper lip (upper teeth show), AU12 pulls the lip corners up and out, AU15 pulls them down,
AU17 pushes the chin boss and lower lip up (chin dimpling, mentolabial crease), AU20 stretches the lips
horizontally, AU23 tightens (narrows, thins, darkens) the lips, AU24 presses them together (the red
parts nearly vanish into a dark line, the skin bulges above and below), AU25 parts the lips, AU26 drops
the jaw (longer face; a wider opening with AU25, the closed mouth carried down without it).

Symmetry: every AU is rendered bilaterally (both sides with the same intensity), so a horizontal flip
of an image keeps its AU labels valid; the flip negates yaw and roll (it swaps AU51/AU52 and AU55/AU56,
see ``pose_aus``). Identities carry a little asymmetry of their own (keys in ``ASYMMETRIC_KEYS``); with
those keys zero, frontal pose and ``neutral_nuisance`` the image is mirror symmetric up to rounding.

Coordinates: the image spans [-1, 1] in x (left to right) and y (top to bottom). Face features live in
"canonical" coordinates (u, v) of a frontal face of half-width ~0.7; every pixel is mapped back into
them (crop jitter, then roll, then an inverse cylinder for yaw and pitch), so each feature is an
anti-aliased signed-distance shape evaluated on a per-batch coordinate grid and composited with alpha.
Bilateral features are evaluated once on |u|. Everything is numpy float32, vectorised over a batch of
faces; the only Python loops run over shape primitives, blur taps and batches. For speed, faces of
similar pose share a batch and each feature group is evaluated only in the window of rows and columns
that can hold it (the canonical box mapped forward through the pose), which changes no pixel.

The pose model is a cylinder: it looks right for |yaw| <= 60 and |pitch|, |roll| <= 30 degrees;
larger angles render but look increasingly artificial (angles beyond 90 are rejected).

Determinism: ``render`` is a pure function of its inputs: the same arrays and ``seed`` give the same
bytes, and a face's pixels do not depend on the other faces rendered with it (nor on ``chunk``).
Sensor noise comes from a counter-based hash of (seed, the face's ``noise_key``, pixel).
"""

from __future__ import annotations

import math

import numpy as np

RENDER_AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 15, 17, 20, 23, 24, 25, 26)
POSE_AUS: tuple[int, ...] = (51, 52, 53, 54, 55, 56)
AU_MAX = 5.0
AU_ATLAS_ROWS: tuple[str, ...] = tuple(f"AU{a}" for a in RENDER_AUS)
ATLAS_GAP = 2  # pixels of white between atlas cells
ASYMMETRIC_KEYS: tuple[str, ...] = ("asym", "hair_part")
N_CLUTTER = 4
# faces per inner batch: ~64k pixels keeps each float32 plane (256 kB) and its temporaries in cache,
# which is ~2x faster than large batches on numpy's one thread
_BATCH_PIXELS = 1 << 16
_USE_WINDOWS = True  # evaluate each feature only in its window (off: whole frame, same image)

IDENTITY_KEYS: tuple[str, ...] = (
    "face_w", "face_h", "jaw_w", "chin_v", "skin", "eye_y", "eye_dx", "eye_w", "eye_h", "iris",
    "brow_gap", "brow_thick", "brow_len", "brow_arch", "brow_rgb", "nose_v", "nose_w", "mouth_v",
    "mouth_w", "lip_u", "lip_l", "lip_rgb", "age", "hair_rgb", "hair_vol", "hairline", "hair_long",
    "fringe", "hair_part", "glasses", "glasses_rgb", "beard", "moustache", "clothes", "asym", "key",
)  # fmt: skip
NUISANCE_KEYS: tuple[str, ...] = (
    "shift", "scale", "gaze", "light", "ambient", "gain", "cast", "bg", "bg_dir", "clutter_kind",
    "clutter_xy", "clutter_size", "clutter_angle", "clutter_rgb", "occ_kind", "occ_xy", "occ_size",
    "occ_angle", "occ_rgb", "blur", "noise", "noise_key",
)  # fmt: skip

# crops (nuisance "shift", "scale"): std of the shift (image half-widths) and of the log scale at
# difficulty 1; an aligned crop scales the face by ALIGNED_SCALE and moves it down by ALIGNED_SHIFT_Y
CROP_JITTER = (0.03, 0.04)
ALIGNED_JITTER = (0.01, 0.02)
ALIGNED_SCALE = 1.3
ALIGNED_SHIFT_Y = 0.03
# occluder kinds (nuisance "occ_kind")
OCC_NONE, OCC_BAR, OCC_HAND, OCC_PATCH = 0, 1, 2, 3

_F = np.float32
_AU_INDEX = {a: i for i, a in enumerate(RENDER_AUS)}
_CRANIUM_V = -0.08  # centre of the cranium ellipse (canonical v)
_PITCH_V = 0.05  # height of the pitch axis
_PITCH_R = 1.15  # radius of the pitch cylinder
_FACE_SCALE = 0.84  # head size in the crop at scale 1: the chin and the crown stay inside
_SOFT = _F(1.0 / 0.05)  # inverse edge width of soft shading blobs (canonical units)

# --- palettes -----------------------------------------------------------------------------------
_SKIN = np.array([[0.97, 0.82, 0.71], [0.86, 0.66, 0.52], [0.66, 0.45, 0.31], [0.40, 0.26, 0.17]])
_HAIR = np.array(
    [
        [0.07, 0.05, 0.04],  # black
        [0.22, 0.13, 0.07],  # dark brown
        [0.42, 0.27, 0.15],  # brown
        [0.78, 0.62, 0.38],  # blond
        [0.55, 0.22, 0.09],  # red
        [0.62, 0.61, 0.60],  # grey
    ]
)
_HAIR_P = np.array([0.32, 0.26, 0.16, 0.12, 0.05, 0.09])
_IRIS = np.array([[0.22, 0.13, 0.07], [0.38, 0.26, 0.12], [0.28, 0.42, 0.58], [0.30, 0.42, 0.28]])
_IRIS_P = np.array([0.55, 0.2, 0.15, 0.1])


# --- parameter sampling -------------------------------------------------------------------------
def _u(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    return rng.uniform(lo, hi, n).astype(_F)


def _skin_tone(t: np.ndarray) -> np.ndarray:
    """Piecewise-linear skin colour along the palette, t in [0, 1] (0 lightest, 1 darkest)."""
    pos = t * (len(_SKIN) - 1)
    i = np.minimum(pos.astype(int), len(_SKIN) - 2)
    f = (pos - i)[:, None]
    return _SKIN[i] * (1 - f) + _SKIN[i + 1] * f


def sample_identities(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Sample ``n`` identities; every array has ``n`` rows (colours are (n, 3) RGB in [0, 1]).

    Lengths are canonical face units (face half-width ~0.7, image half-width 1; 0.01 ~ 1 mm). Brows
    (6-9 mm thick at the head) and lips (vermilion 3.5-5.5 mm upper, 4.5-7 mm lower) are in the
    human range, so that their motion shows at low resolution. ``glasses``,
    ``hair_long`` and ``moustache`` are 0/1; ``beard`` is a density (0 for ~85% of identities);
    ``asym`` (n, 3) offsets eye / brow / mouth-corner heights between the sides and ``hair_part``
    slants the fringe: they are the only asymmetric keys (``ASYMMETRIC_KEYS``). ``key`` (uint32)
    seeds the identity's fixed texture (beard stubble).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    tone = rng.beta(1.3, 1.6, n)
    skin = np.clip(_skin_tone(tone) + rng.normal(0, 0.025, (n, 3)), 0.05, 1.0)
    hair = _HAIR[rng.choice(len(_HAIR), n, p=_HAIR_P)] * rng.uniform(0.85, 1.15, (n, 1))
    # brows stay darker than the skin so that brow motion is visible on every identity
    brow = np.minimum(0.75 * hair + 0.1 * skin, 0.55 * skin)
    lip = np.clip(skin * np.array([0.86, 0.58, 0.58]) + np.array([0.08, 0.0, 0.02]), 0, 1)
    lip = lip * rng.uniform(0.9, 1.05, (n, 1))
    glasses = (rng.random(n) < 0.12).astype(_F)
    bearded = rng.random(n) < 0.15
    beard = np.where(bearded, rng.uniform(0.35, 0.95, n), 0.0)
    bald = rng.random(n) < 0.08
    ident = {
        "face_w": _u(rng, 0.62, 0.74, n),
        "face_h": _u(rng, 0.80, 0.90, n),
        "jaw_w": _u(rng, 0.80, 0.96, n),
        "chin_v": _u(rng, 0.84, 0.94, n),
        "skin": skin,
        "eye_y": _u(rng, -0.13, -0.07, n),
        "eye_dx": _u(rng, 0.24, 0.29, n),
        "eye_w": _u(rng, 0.105, 0.13, n),
        "eye_h": _u(rng, 0.044, 0.058, n),
        "iris": _IRIS[rng.choice(len(_IRIS), n, p=_IRIS_P)] * rng.uniform(0.8, 1.2, (n, 1)),
        "brow_gap": _u(rng, 0.13, 0.165, n),
        "brow_thick": _u(rng, 0.026, 0.04, n),
        "brow_len": _u(rng, 0.26, 0.33, n),
        "brow_arch": _u(rng, 0.008, 0.035, n),
        "brow_rgb": brow,
        "nose_v": _u(rng, 0.17, 0.25, n),
        "nose_w": _u(rng, 0.075, 0.10, n),
        "mouth_v": _u(rng, 0.45, 0.53, n),
        "mouth_w": _u(rng, 0.18, 0.23, n),
        "lip_u": _u(rng, 0.035, 0.055, n),
        "lip_l": _u(rng, 0.045, 0.07, n),
        "lip_rgb": lip,
        "age": rng.beta(1.2, 3.0, n).astype(_F),
        "hair_rgb": np.clip(hair, 0, 1),
        "hair_vol": np.where(bald, 0.0, rng.uniform(0.03, 0.2, n)).astype(_F),
        "hairline": np.where(bald, rng.uniform(-0.95, -0.8, n), rng.uniform(-0.7, -0.52, n)),
        "hair_long": (rng.random(n) < 0.35).astype(_F) * ~bald,
        "fringe": np.where(rng.random(n) < 0.2, rng.uniform(0.3, 0.9, n), 0.0) * ~bald,
        "hair_part": np.where(rng.random(n) < 0.5, rng.uniform(-1, 1, n), 0.0),
        "glasses": glasses,
        "glasses_rgb": rng.uniform(0.0, 0.45, (n, 3)) * rng.uniform(0.2, 1.0, (n, 1)),
        "beard": beard,
        "moustache": (bearded & (rng.random(n) < 0.7)).astype(_F),
        "clothes": rng.uniform(0.05, 0.9, (n, 3)),
        "asym": rng.normal(0, 0.006, (n, 3)),
        "key": rng.integers(0, 2**32, n, dtype=np.uint32),
    }
    return {k: (v if v.dtype == np.uint32 else v.astype(_F)) for k, v in ident.items()}


def sample_nuisance(
    n: int, rng: np.random.Generator, *, difficulty: float = 1.0, aligned: bool = False
) -> dict[str, np.ndarray]:
    """Sample per-face nuisance: crop jitter, gaze, illumination, background, occlusion, blur, noise.

    ``difficulty`` scales every nuisance range (0: clean studio images, 1: default, >1 harder).
    ``aligned`` gives the crop of a face aligner (Aff-Wild2's ``cropped_aligned``, RAF-DB's
    ``aligned``): the face is scaled to fill the crop (``ALIGNED_SCALE``, the eyes at ~46% and the
    mouth at ~78% of the height, as in the 5-point alignment templates) and centred, up to the
    aligner's residual jitter (``ALIGNED_JITTER``); otherwise the whole head sits in a loose crop
    (a detector's box) with the larger jitter ``CROP_JITTER``.
    Occlusion happens with probability ``min(1, 0.15 * difficulty)``. Keys: ``shift`` (n, 2) and
    ``scale`` (n,) place the face in the crop; ``gaze`` (n, 2) moves both irises; ``light`` (n, 3) is
    a unit direction towards the light in camera coordinates (x right, y down, z towards the camera);
    ``ambient`` (n,), ``gain`` (n,), ``cast`` (n, 3) RGB multipliers; ``bg`` (n, 2, 3) gradient
    colours along ``bg_dir`` (n, 2); ``clutter_*`` (n, N_CLUTTER, ...) shapes (kind 0 none, 1 blob,
    2 box, 3 striped box); ``occ_*`` the occluder (kind ``OCC_NONE/BAR/HAND/PATCH``); ``blur`` (n,)
    Gaussian sigma as a fraction of the image side; ``noise`` (n,) std of additive Gaussian noise on
    the [0, 1] scale; ``noise_key`` (n,) uint32 seeds the face's noise.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not np.isfinite(difficulty) or difficulty < 0:
        raise ValueError(f"difficulty must be a finite number >= 0, got {difficulty}")
    d = float(difficulty)
    az = rng.uniform(-np.pi, np.pi, n)
    tilt = np.radians(rng.uniform(0, 55, n) * min(d, 1.5))
    light = np.stack([np.sin(tilt) * np.cos(az), np.sin(tilt) * np.sin(az), np.cos(tilt)], 1)
    cast_amt = 0.12 * min(d, 2.0)
    bg_ang = rng.uniform(0, 2 * np.pi, n)
    clutter_kind = rng.integers(0, 4, (n, N_CLUTTER)) * (rng.random((n, 1)) < min(1, 0.8 * d))
    occ_on = rng.random(n) < min(1.0, 0.15 * d)
    occ_kind = np.where(occ_on, rng.integers(1, 4, n), OCC_NONE)
    noisy = rng.random(n) < 0.6
    blurry = rng.random(n) < 0.5
    jitter = ALIGNED_JITTER if aligned else CROP_JITTER
    scale, centre = (ALIGNED_SCALE, ALIGNED_SHIFT_Y) if aligned else (1.0, 0.0)
    nuis = {
        "shift": rng.normal(0, jitter[0] * d, (n, 2)) + [0.0, centre],
        "scale": np.exp(rng.normal(0, jitter[1] * d, n)) * scale,
        "gaze": rng.normal(0, 0.012, (n, 2)) * min(d, 1.0),
        "light": light,
        "ambient": rng.uniform(0.55, 0.8, n) - 0.15 * min(d, 2.0) * rng.random(n),
        "gain": np.exp(rng.normal(0, 0.12 * d, n)),
        "cast": np.exp(rng.normal(0, cast_amt / 2, (n, 3))),
        "bg": rng.uniform(0.1, 0.9, (n, 2, 3)),
        "bg_dir": np.stack([np.cos(bg_ang), np.sin(bg_ang)], 1),
        "clutter_kind": clutter_kind.astype(np.int64),
        "clutter_xy": rng.uniform(-1.1, 1.1, (n, N_CLUTTER, 2)),
        "clutter_size": rng.uniform(0.1, 0.6, (n, N_CLUTTER, 2)),
        "clutter_angle": rng.uniform(0, np.pi, (n, N_CLUTTER)),
        "clutter_rgb": rng.uniform(0.0, 1.0, (n, N_CLUTTER, 3)),
        "occ_kind": occ_kind.astype(np.int64),
        "occ_xy": rng.uniform(-0.5, 0.5, (n, 2)),
        "occ_size": rng.uniform(0.12, 0.32, (n, 2)),
        "occ_angle": rng.uniform(0, np.pi, n),
        "occ_rgb": rng.uniform(0.05, 0.95, (n, 3)),
        "blur": np.where(blurry, rng.uniform(0.0, 0.018 * d, n), 0.0),
        "noise": np.where(noisy, rng.uniform(0.0, 0.03 * d, n), 0.0),
        "noise_key": rng.integers(0, 2**32, n, dtype=np.uint32),
    }
    out = {}
    for k, v in nuis.items():
        out[k] = v if v.dtype in (np.uint32, np.int64) else v.astype(_F)
    return out


def align_to_pose(
    ident: dict[str, np.ndarray], pose: np.ndarray, nuis: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """``nuis`` with its crop shift corrected per image as a face aligner does: the landmark
    centre (between the eyes and the mouth, on the face's midline) goes where it sits in the
    frontal face, whatever the yaw and pitch.

    Aff-Wild2's ``cropped_aligned`` frames and RAF-DB's ``aligned`` images come from a
    similarity transform fitted to detected landmarks, frame by frame, so a turned head stays
    centred on its eyes and mouth; without this, a 25-degree yaw moves the whole face ~15% of the
    crop sideways. The correction is exact for the pose model of :func:`_frames` (the midline
    point at height v is drawn at R sin(yaw) across and on the pitch cylinder vertically, then
    rolled). Roll is kept (the aligner's residual rotation); the other keys are unchanged.
    """
    n = len(pose)
    rad = np.radians(np.asarray(pose, np.float64))
    yaw, pitch, roll = rad[:, 0], rad[:, 1], rad[:, 2]
    v0 = 0.5 * (np.asarray(ident["eye_y"], np.float64) + np.asarray(ident["mouth_v"], np.float64))
    r = np.asarray(ident["face_w"], np.float64) * 1.02  # the yaw cylinder of _frames
    xr = r * np.sin(yaw)
    arg = np.clip((v0 - _PITCH_V) / _PITCH_R, -1.0, 1.0)
    yr = _PITCH_V + _PITCH_R * np.sin(np.arcsin(arg) - pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    hx, hy = cr * xr - sr * yr, sr * xr + cr * yr  # head frame (inverse of _frames' roll)
    sc = np.asarray(nuis["scale"], np.float64) * _FACE_SCALE
    out = {k: v.copy() for k, v in nuis.items()}
    shift = np.asarray(nuis["shift"], np.float64).reshape(n, 2)
    shift = shift - sc[:, None] * np.stack([hx, hy - v0], 1)
    out["shift"] = shift.astype(_F)
    return out


def neutral_nuisance(n: int, *, aligned: bool = False) -> dict[str, np.ndarray]:
    """Nuisance of a clean studio image: centred crop, frontal light, plain grey background, no gaze
    shift, no clutter, occlusion, blur or noise. The atlas and the symmetry checks use it.
    ``aligned`` frames the face as an aligner does (see ``sample_nuisance``), without jitter."""
    z = np.zeros
    shift = z((n, 2), _F)
    shift[:, 1] = ALIGNED_SHIFT_Y if aligned else 0.0
    return {
        "shift": shift,
        "scale": np.full(n, ALIGNED_SCALE if aligned else 1.0, _F),
        "gaze": z((n, 2), _F),
        "light": np.tile(np.array([0, 0, 1], _F), (n, 1)),
        "ambient": np.full(n, 0.65, _F),
        "gain": np.ones(n, _F),
        "cast": np.ones((n, 3), _F),
        "bg": np.full((n, 2, 3), 0.6, _F),
        "bg_dir": np.tile(np.array([0, 1], _F), (n, 1)),
        "clutter_kind": z((n, N_CLUTTER), np.int64),
        "clutter_xy": z((n, N_CLUTTER, 2), _F),
        "clutter_size": np.full((n, N_CLUTTER, 2), 0.1, _F),
        "clutter_angle": z((n, N_CLUTTER), _F),
        "clutter_rgb": z((n, N_CLUTTER, 3), _F),
        "occ_kind": z(n, np.int64),
        "occ_xy": z((n, 2), _F),
        "occ_size": np.full((n, 2), 0.1, _F),
        "occ_angle": z(n, _F),
        "occ_rgb": z((n, 3), _F),
        "blur": z(n, _F),
        "noise": z(n, _F),
        "noise_key": z(n, np.uint32),
    }


def take(params: dict[str, np.ndarray], index: np.ndarray | slice) -> dict[str, np.ndarray]:
    """Select rows of every array: ``take(ids, subject_of_frame)`` gives one identity row per frame."""
    return {k: v[index] for k, v in params.items()}


def pose_aus(pose: np.ndarray, threshold_deg: float = 15.0) -> np.ndarray:
    """EmotioNet head-pose codes AU51..AU56 (``POSE_AUS``) as 0/1, shape (N, 6), int64.

    Sign convention (the subject's left/right, as FACS codes them; the image shows the subject
    unmirrored, so the subject's left is the image right):
    yaw > 0 turns the head to the subject's left (nose moves to the image right): AU51 when
    ``yaw > threshold``, AU52 (turn right) when ``yaw < -threshold``; pitch > 0 lifts the head (nose
    moves up): AU53 up when ``pitch > threshold``, AU54 down when ``pitch < -threshold``; roll > 0
    tilts the head towards the subject's left shoulder (clockwise on screen): AU55 when
    ``roll > threshold``, AU56 when ``roll < -threshold``. A code needs the angle strictly beyond the
    threshold. A horizontal image flip negates yaw and roll, swapping AU51/52 and AU55/56.
    """
    p = np.asarray(pose, dtype=float)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"pose must have shape (N, 3) = yaw, pitch, roll degrees, got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("pose contains NaN or infinite angles")
    if not np.isfinite(threshold_deg) or threshold_deg < 0:
        raise ValueError(f"threshold_deg must be finite and >= 0, got {threshold_deg}")
    t = threshold_deg
    cols = [p[:, 0] > t, p[:, 0] < -t, p[:, 1] > t, p[:, 1] < -t, p[:, 2] > t, p[:, 2] < -t]
    return np.stack(cols, 1).astype(np.int64)


# --- signed distances and coverage --------------------------------------------------------------
def _cover(d: np.ndarray, inv_w: np.ndarray | float) -> np.ndarray:
    """Anti-aliased coverage of a shape with signed distance ``d`` (negative inside): a ramp one
    pixel wide (``inv_w`` = 1 / pixel size in the units of ``d``)."""
    a = 0.5 - d * inv_w
    return np.clip(a, 0.0, 1.0, out=a)


def _stroke(dc: np.ndarray, half: np.ndarray | float, inv_w: np.ndarray | float) -> np.ndarray:
    """Coverage of a stroke of half-width ``half`` around a centre line at distance ``|dc|``; strokes
    thinner than a pixel are capped at the fraction of the pixel they cover (2 * half / pixel)."""
    a = 0.5 + (half - np.abs(dc)) * inv_w
    return np.clip(a, 0.0, np.minimum(1.0, 2.0 * half * inv_w), out=a)


def _band(y: np.ndarray, top: np.ndarray, bottom: np.ndarray, inv_w: np.ndarray) -> np.ndarray:
    """Coverage of the region top <= y <= bottom (curves as functions of x); an empty or
    zero-thickness region covers nothing, so curves that meet (lip corners) leave no seam."""
    half = np.maximum(bottom - top, 0.0) * 0.5
    return _stroke(y - (top + half), half, inv_w)


def _ellipse(px: np.ndarray, py: np.ndarray, ax: np.ndarray, ay: np.ndarray) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse centred at 0 with half-axes ax, ay:
    d = (r - 1) / |grad r| with r = |(px/ax, py/ay)| (first order, exact on the boundary)."""
    qx = px / ax
    qy = py / ay
    r = np.sqrt(qx * qx + qy * qy)
    g = np.sqrt((qx / ax) ** 2 + (qy / ay) ** 2)
    return (r - 1.0) / (g / (r + 1e-6) + 1e-6)


def _circle(px: np.ndarray, py: np.ndarray, r: np.ndarray | float) -> np.ndarray:
    """Signed distance to a circle of radius r centred at 0."""
    return np.sqrt(px * px + py * py) - r


def _segment(
    px: np.ndarray, py: np.ndarray, ax: np.ndarray, ay: np.ndarray, bx: np.ndarray, by: np.ndarray
) -> np.ndarray:
    """Unsigned distance to the segment a-b (a capsule's SDF is this minus its radius)."""
    pax = px - ax
    pay = py - ay
    bax = bx - ax
    bay = by - ay
    h = np.clip((pax * bax + pay * bay) / (bax * bax + bay * bay + 1e-9), 0.0, 1.0)
    return np.sqrt((pax - bax * h) ** 2 + (pay - bay * h) ** 2)


def _box(
    px: np.ndarray, py: np.ndarray, hx: np.ndarray, hy: np.ndarray, ang: np.ndarray, rad: np.ndarray
) -> np.ndarray:
    """Signed distance to a rectangle centred at 0, half-sizes hx, hy, rotated by ang, corners
    rounded with radius rad (rad = min(hx, hy) gives a stadium)."""
    c = np.cos(ang)
    s = np.sin(ang)
    qx = np.abs(px * c + py * s) - (hx - rad)
    qy = np.abs(-px * s + py * c) - (hy - rad)
    out = np.sqrt(np.maximum(qx, 0.0) ** 2 + np.maximum(qy, 0.0) ** 2)
    return out + np.minimum(np.maximum(qx, qy), 0.0) - rad


def _paint(img: np.ndarray, alpha: np.ndarray, rgb: np.ndarray) -> None:
    """Alpha-composite colour ``rgb`` (B,3,1,1) over ``img`` (B,3,H,W) in place: img += a (c - img)."""
    t = rgb - img
    t *= alpha[:, None]
    img += t


def _hash_uniform(key: np.ndarray, idx: np.ndarray, salt: int) -> np.ndarray:
    """Counter-based uniform noise in [0, 1), shape (B, *idx.shape[1:]): murmur3's 32-bit finaliser
    applied to (pixel index ``idx``, per-face ``key``, salt). It does not depend on the batch a face
    is rendered in, nor on the window a feature is drawn in."""
    k = (key.astype(np.uint32) ^ np.uint32(salt)).reshape(-1, *([1] * (idx.ndim - 1)))
    h = idx.astype(np.uint32) * np.uint32(0x9E3779B1) + k
    for mult in (0x85EBCA6B, 0xC2B2AE35):
        h ^= h >> np.uint32(16)
        h *= np.uint32(mult)
    h ^= h >> np.uint32(16)
    return (h >> np.uint32(8)).astype(_F) * _F(1.0 / (1 << 24))


# --- AU -> geometry -------------------------------------------------------------------------------
def _col(x: np.ndarray) -> np.ndarray:
    """(B,) per-face values -> (B,1,1), to broadcast over (B, H, W) planes."""
    return np.asarray(x, dtype=_F).reshape(-1, 1, 1)


def _rgb(x: np.ndarray) -> np.ndarray:
    """(B, 3) colours -> (B, 3, 1, 1), to broadcast over channels-first images."""
    return np.asarray(x, dtype=_F).reshape(-1, 3, 1, 1)


def _const(rgb: list[float]) -> np.ndarray:
    return np.array(rgb, _F).reshape(3, 1, 1)


def _geometry(ident: dict[str, np.ndarray], au: np.ndarray) -> dict[str, np.ndarray]:
    """Feature geometry (canonical units, each (B,1,1)) from identity and AU intensities.

    Intensities enter as a = I / 5 in [0, 1]; every displacement is linear in a (the lips part in
    full from intensity B of AU25, see below). At a = 1 (FACS E, "maximum") each AU moves its
    features about as far as a face allows (canonical 0.01 ~ 1 mm, the face half-width 0.7 ~ 7 cm):
    the inner brow up 14 mm (AU1), the outer brow 12 mm (AU2), the brows down 8 mm and together
    4.5 mm (AU4), the upper lip up 9 mm baring the teeth (AU10), the lip corners up 11 mm and out
    8-10 mm (AU12) or down 13 mm (AU15), the lower lip up 6 mm (AU17), the mouth 8-10 mm wider
    (AU20) or 10 mm (AU23) / 2.5 mm (AU24) narrower with the lips thinned to a quarter and
    darkened (AU23) or pressed to a tenth, into a dark line between lit bulges (AU24), the lips
    parted 14 mm (AU25), the jaw dropped 18 mm (AU26). In the aligned 48-px
    crop (``sample_nuisance(aligned=True)``) a pixel is ~4 mm, so E moves features 2-5 pixels, B
    (the lowest labelled level) two fifths of that, and A (trace) a fifth: under a pixel, subtle
    but visible beside the neutral face.

    Parted lips mean AU25, as FACS scores them ("25+26" when the jaw drops as well): the opening
    comes from AU25 alone and AU26 widens it; AU26 without AU25 lowers the chin and carries the
    closed mouth down with it; AU23 and AU24 narrow an opening but do not close it. So the image
    shows parted lips exactly when AU25 is on, whatever else is.
    """
    a = {k: _col(au[:, i] / AU_MAX) for k, i in _AU_INDEX.items()}
    i = {k: _col(v) for k, v in ident.items() if k != "key"}
    g: dict[str, np.ndarray] = {}
    # eyes: upper-lid height hu, lower-lid height hl (from the eye's centre line)
    g["eye_y"] = i["eye_y"]
    g["eye_dx"] = i["eye_dx"]
    g["eye_w"] = i["eye_w"]
    g["hu"] = i["eye_h"] * (
        1 + 1.2 * a[5] - 0.45 * a[7] - 0.3 * a[4] - 0.25 * a[6] - 0.2 * a[9]
    ).clip(0.15)
    g["hl"] = (0.8 * i["eye_h"]) * (
        1 + 0.1 * a[5] - 0.7 * a[6] - 0.8 * a[7] - 0.2 * a[12] - 0.25 * a[9]
    ).clip(0.1)
    g["iris_r"] = 0.8 * i["eye_h"]
    # lower-lid bulge, crow's feet, cheek raise, infraorbital furrow (AU6, AU7; strong AU12)
    g["bulge"] = (0.12 + 0.7 * a[6] + 0.65 * a[7]).clip(0, 0.9)
    g["crows"] = a[6]
    g["cheek_lift"] = 0.09 * a[6] + 0.04 * a[12]
    g["cheek_glow"] = (0.1 + 0.55 * np.maximum(a[6], 0.7 * a[12])).clip(0, 0.65)
    g["furrow"] = 0.8 * a[6] + 0.25 * a[7]
    # brows: inner end (x_in, y_in), outer end (x_out, y_out), arch, thickness
    brow_base = i["eye_y"] - i["brow_gap"]
    g["x_in"] = 0.09 - 0.045 * a[4]
    g["x_out"] = g["x_in"] + i["brow_len"] + 0.025 * a[4]
    g["y_in"] = brow_base - 0.14 * a[1] - 0.02 * a[2] + 0.08 * a[4] + 0.045 * a[9]
    g["y_out"] = brow_base + 0.012 - 0.025 * a[1] - 0.12 * a[2] + 0.04 * a[4] + 0.01 * a[9]
    g["arch"] = i["brow_arch"] + 0.025 * a[2] - 0.02 * a[1] - 0.012 * a[4]
    g["brow_t"] = i["brow_thick"] * (1 + 0.3 * a[4])
    # forehead wrinkles: AU1 central, AU2 lateral; glabella (AU4); nose root and bridge (AU4, AU9)
    g["wr_center"] = a[1] + 0.15 * i["age"]
    g["wr_side"] = 0.95 * a[2] + 0.15 * i["age"]
    g["wr_ref"] = brow_base - 0.08 - 0.07 * a[1] - 0.06 * a[2]
    g["glabella"] = a[4]
    g["root"] = (0.5 * a[4] + 0.7 * a[9]).clip(0, 0.9)
    g["nose_wr"] = a[9]
    # nose
    g["nose_v"] = i["nose_v"]
    g["nose_w"] = i["nose_w"] * (1 + 0.22 * a[9] + 0.1 * a[10])
    g["nostril_v"] = i["nose_v"] + 0.022 - 0.04 * a[9] - 0.02 * a[10]
    g["ala"] = 0.15 + 0.6 * a[9] + 0.3 * a[10]
    # mouth: half-width cw, corner height cy, inner gaps, lip thicknesses, AU10 lift, AU17 push
    parted = np.minimum(1.0, 2.5 * a[25])  # full from intensity B (2) up
    narrow = 1 - 0.5 * np.maximum(a[23], a[24])
    mw = i["mouth_w"]
    # a jaw drop with the lips together (AU26 without AU25) carries the closed mouth down with the
    # lower lip, half as far as the chin
    g["mouth_v"] = i["mouth_v"] + 0.09 * a[26] * (1 - parted)
    g["cw"] = mw * (
        1 + 0.42 * a[12] + 0.42 * a[20] - 0.5 * a[23] - 0.12 * a[24] - 0.1 * a[26] + 0.08 * a[15]
    )
    flat = 1 - 0.6 * a[24]  # AU24 presses the lips into a straight line
    g["cy"] = (-0.11 * a[12] + 0.13 * a[15] + 0.03 * a[20] + 0.035 * a[17]) * flat
    # parted lips come from AU25 alone; AU26 widens them, AU23/AU24 narrow them (docstring)
    g["gap_u"] = (0.04 * a[25] + 0.025 * a[26] * parted) * narrow + 0.03 * a[10]
    g["gap_l"] = (0.1 * a[25] + 0.14 * a[26] * parted) * narrow
    g["lift"] = 0.06 * a[10] + 0.02 * a[9]
    g["push"] = 0.06 * a[17]
    thin = 1 - 0.75 * a[23] - 0.9 * a[24] - 0.45 * a[20] - 0.3 * a[12]
    g["th_u"] = i["lip_u"] * thin.clip(0.15)
    g["th_l"] = i["lip_l"] * (thin + 0.3 * a[17]).clip(0.15)
    g["lip_line"] = 0.006 + 0.016 * a[24] + 0.003 * a[23]
    g["lip_edge"] = 0.2 + 0.7 * a[23]
    g["press"] = a[24]
    g["lip_tone"] = 1 - 0.35 * a[23]  # tightened lips darken (compressed, rolled-in red parts)
    g["mentolabial"] = (0.2 + 0.8 * a[17] + 0.55 * a[24] + 0.25 * a[15]).clip(0, 0.95)
    g["chin_boss"] = 0.8 * a[17]
    g["ment_up"] = 0.04 * a[17]
    g["dimple"] = 0.9 * a[17]
    g["stretch"] = a[20]
    g["depress"] = a[15]
    g["nasolabial"] = (
        0.2 * i["age"] + 0.65 * a[12] + 0.65 * a[10] + 0.5 * a[9] + 0.3 * a[6] + 0.2 * a[20]
    ).clip(0, 0.9)
    # jaw: AU26 drops the chin, AU17 lifts the chin boss a little
    g["chin_v"] = i["chin_v"] + 0.18 * a[26] - 0.02 * a[17]
    return g


# How the AU gain (:func:`render`'s ``au_gain``) acts on each geometry key: a position (and the
# press line's width) moves ``gain`` times as far from where the neutral face has it; a size (lid
# heights, brow thickness, nose and mouth widths, lip thickness, lip tone) grows ``gain`` times as
# much above its neutral value, and shrinks by its neutral-to-active factor raised to ``gain``, so
# that it stays positive; a mark's strength (wrinkles, furrows, glow) grows ``gain`` times as much
# above its neutral value, capped at fully drawn (1).
_GAIN_POSITION = ("y_in", "y_out", "x_in", "x_out", "arch", "wr_ref", "nostril_v", "mouth_v", "cy",
                  "gap_u", "gap_l", "lift", "push", "cheek_lift", "ment_up", "chin_v")  # fmt: skip
_GAIN_SIZE = ("hu", "hl", "brow_t", "nose_w", "cw", "th_u", "th_l", "lip_tone")
_GAIN_MARK = ("bulge", "crows", "cheek_glow", "furrow", "wr_center", "wr_side", "glabella", "root",
              "nose_wr", "ala", "lip_edge", "press", "mentolabial", "chin_boss", "dimple",
              "stretch", "depress", "nasolabial")  # fmt: skip
_GAIN_WIDTH = ("lip_line",)  # a stroke width, 0.006 on the neutral face: grows linearly


def _gained_geometry(ident: dict[str, np.ndarray], au: np.ndarray, gain: float) -> dict:
    """:func:`_geometry` with every AU's effect scaled by ``gain`` (1: exactly ``_geometry``).

    FACS sizes every movement for a real face seen at full resolution; in a 48-px crop the same
    movement is 1-5 px under blur, noise and JPEG. ``gain`` > 1 makes each AU's change larger
    than a real face allows (an instrument setting, not realism); ``gain`` 1 is the FACS-sized
    face. Keys not listed in ``_GAIN_*`` do not depend on the AUs."""
    g = _geometry(ident, au)
    if gain == 1.0:
        return g
    g0 = _geometry(ident, np.zeros_like(au))
    out = dict(g)
    for k in _GAIN_POSITION + _GAIN_WIDTH:
        out[k] = g0[k] + _F(gain) * (g[k] - g0[k])
    for k in _GAIN_SIZE:
        r = g[k] / g0[k]
        out[k] = g0[k] * np.where(r >= 1, 1 + _F(gain) * (r - 1), r ** _F(gain))
    for k in _GAIN_MARK:
        out[k] = np.clip(g0[k] + _F(gain) * (g[k] - g0[k]), 0.0, np.maximum(1.0, g0[k]))
    return out


# --- chunk renderer -----------------------------------------------------------------------------
def _mirror_index(size: int) -> np.ndarray:
    """(1, H, W) uint32 pixel index, equal for mirror-image columns: identity textures keyed on it
    are symmetric, so a symmetric identity stays symmetric."""
    col = np.arange(size)
    col = np.minimum(col, size - 1 - col)
    return (np.arange(size)[:, None] * size + col[None, :]).astype(np.uint32)[None]


def _uncylinder(s: np.ndarray, turn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit-cylinder coordinate of the surface point seen at image coordinate ``s`` (in radii) after
    the cylinder turned by ``turn``: sin(arcsin(s) + turn), and its derivative (the local stretch).
    Points the surface cannot show (|s| > 1, or turned behind the cylinder) are pushed outwards
    beyond |1| instead of clamped, so no feature repeats outside the head's silhouette."""
    sc = np.clip(s, -0.999, 0.999)
    cos0 = np.sqrt(1.0 - sc * sc)
    ang = np.arcsin(sc) + turn
    half = _F(np.pi / 2)
    angc = np.clip(ang, -half, half)
    out = np.sin(angc)
    out += (ang - angc) + 4.0 * (s - sc)  # both zero on the visible surface
    return out, np.cos(angc) / cos0


def _frames(
    ident: dict[str, np.ndarray], pose: np.ndarray, nuis: dict[str, np.ndarray], size: int
) -> dict[str, np.ndarray]:
    """Per-pixel coordinates: crop frame (hx, hy), rolled head frame (xr, yr), canonical face (u, v),
    and the inverse pixel sizes used for anti-aliasing in each."""
    c = (np.arange(size, dtype=_F) + 0.5) * _F(2.0 / size) - 1.0
    sx, sy = _col(nuis["shift"][:, 0]), _col(nuis["shift"][:, 1])
    sc = _col(nuis["scale"]) * _FACE_SCALE
    hx = (c[None, None, :] - sx) / sc  # (B,1,W)
    hy = (c[None, :, None] - sy) / sc  # (B,H,1)
    rad = np.radians(pose.astype(_F))
    yaw, pitch, roll = (_col(rad[:, k]) for k in range(3))
    cr, sr = np.cos(roll), np.sin(roll)
    # roll > 0 turns the face clockwise on screen, so the inverse map turns the pixel back
    xr = cr * hx + sr * hy
    yr = cr * hy - sr * hx
    # yaw/pitch: the face is drawn on a cylinder of radius R about a vertical axis (pitch: about a
    # horizontal axis); a pixel at angle phi0 shows the canonical point at phi0 - yaw
    R = _col(ident["face_w"]) * 1.02
    u, ju = _uncylinder(xr / R, -yaw)
    u *= R
    v, jv = _uncylinder((yr - _PITCH_V) / _PITCH_R, pitch)
    v = _PITCH_V + _PITCH_R * v
    px = _F(2.0 / size) / sc  # pixel size in head-frame units, (B,1,1)
    w_can = np.clip(np.maximum(ju, jv), 0.5, 3.0) * px
    return {
        "hx": hx, "hy": hy, "xr": xr, "yr": yr, "u": u, "v": v,
        "au": np.abs(u), "side": np.sign(u).astype(_F),
        "inv_img": 1.0 / px, "inv_can": 1.0 / w_can, "sin_yaw": np.sin(yaw),
        "pix": _mirror_index(size),
        "yaw": yaw, "pitch": pitch, "cr": cr, "sr": sr, "sx": sx, "sy": sy, "sc": sc, "R": R,
    }  # fmt: skip


def _window(
    f: dict, u_max: float | None, v0: float | None, v1: float, size: int
) -> tuple[slice, slice]:
    """Rows and columns that hold the canonical box |u| <= u_max, v0 <= v <= v1 of every face in
    the batch (plus a 2-pixel margin); ``u_max=None`` keeps every column, ``v0=None`` every row
    above. The cylinder maps the box to an axis-aligned rectangle of the rolled frame, so its four
    corners, rolled and placed in the crop, bound it."""
    if not _USE_WINDOWS:
        return slice(0, size), slice(0, size)
    corners = np.array([-1.0, 1.0, -1.0, 1.0], _F)[None, :]
    vv = np.array([v0 or 0.0, v0 or 0.0, v1, v1], _F)[None, :]
    R = f["R"][:, 0]
    yaw, pitch = f["yaw"][:, 0], f["pitch"][:, 0]
    half = np.pi / 2
    if u_max is None:  # anything on the head, hair included, lies within |xr| <= 1
        xr = corners
    else:
        xr = R * np.sin(np.clip(np.arcsin(np.clip(corners * u_max / R, -1, 1)) + yaw, -half, half))
    t = np.clip((vv - _PITCH_V) / _PITCH_R, -1, 1)
    yr = _PITCH_V + _PITCH_R * np.sin(np.clip(np.arcsin(t) - pitch, -half, half))
    cr, sr = f["cr"][:, 0], f["sr"][:, 0]
    sc = f["sc"][:, 0]
    x = (cr * xr - sr * yr) * sc + f["sx"][:, 0]
    y = (sr * xr + cr * yr) * sc + f["sy"][:, 0]
    to_px = size / 2.0
    c0 = int(np.clip(np.floor((x.min() + 1) * to_px) - 2, 0, size))
    c1 = int(np.clip(np.ceil((x.max() + 1) * to_px) + 2, 0, size))
    r0 = int(np.clip(np.floor((y.min() + 1) * to_px) - 2, 0, size))
    r1 = int(np.clip(np.ceil((y.max() + 1) * to_px) + 2, 0, size))
    if u_max is None:
        c0, c1 = 0, size
    if v0 is None:
        r0 = 0
    return slice(r0, max(r0, r1)), slice(c0, max(c0, c1))


def _crop(f: dict, rows: slice, cols: slice) -> dict:
    """The per-pixel entries of ``f`` cut to a window (per-face entries pass through)."""
    out = {}
    for k, x in f.items():
        if x.ndim == 3 and (x.shape[1] > 1 or x.shape[2] > 1):
            x = x[
                :, rows if x.shape[1] > 1 else slice(None), cols if x.shape[2] > 1 else slice(None)
            ]
        out[k] = x
    return out


def _background(img: np.ndarray, nuis: dict[str, np.ndarray], size: int) -> None:
    """Gradient background with clutter shapes, in raw image coordinates."""
    c = (np.arange(size, dtype=_F) + 0.5) * _F(2.0 / size) - 1.0
    x, y = c[None, None, :], c[None, :, None]
    d = nuis["bg_dir"]
    t = (x * _col(d[:, 0]) + y * _col(d[:, 1])) * 0.5 + 0.5
    c0, c1 = _rgb(nuis["bg"][:, 0]), _rgb(nuis["bg"][:, 1])
    img[...] = c0 + t[:, None] * (c1 - c0)
    inv = _F(size / 2.0)
    kinds = nuis["clutter_kind"]
    for k in range(kinds.shape[1]):
        on = kinds[:, k] > 0
        if not on.any():
            continue
        kk = _col(kinds[:, k].astype(_F))
        cx, cy = _col(nuis["clutter_xy"][:, k, 0]), _col(nuis["clutter_xy"][:, k, 1])
        hx, hy = _col(nuis["clutter_size"][:, k, 0]), _col(nuis["clutter_size"][:, k, 1])
        ang = _col(nuis["clutter_angle"][:, k])
        rad = np.where(kk == 1, np.minimum(hx, hy), 0.02)  # blobs are stadiums, boxes nearly square
        dist = _box(x - cx, y - cy, hx, hy, ang, rad)
        a = _cover(dist, inv) * _col(on.astype(_F))
        # striped boxes: alternate bands along the box's own axis
        stripes = np.sin((x * np.cos(ang) + y * np.sin(ang)) * 18.0) > 0
        a *= np.where(kk == 3, stripes, True)
        _paint(img, a, _rgb(nuis["clutter_rgb"][:, k]))


def _head(img: np.ndarray, fg: np.ndarray, f: dict, g: dict, ident: dict) -> np.ndarray:
    """Hair volume, neck, clothes, ears and the skin of the head; returns skin coverage."""
    fw, fh = _col(ident["face_w"]), _col(ident["face_h"])
    hv = _col(ident["hair_vol"])
    xr, yr, ii = f["xr"], f["yr"], f["inv_img"]
    hair = _rgb(ident["hair_rgb"])
    skin = _rgb(ident["skin"])
    # hair behind the head: a cap cut at the ears, or (long hair) a curtain down to the shoulders
    long = _col(ident["hair_long"])
    d_cap = _ellipse(xr, yr - (_CRANIUM_V - 0.03), fw + hv, fh + 0.7 * hv + 0.01)
    d_cap = np.maximum(d_cap, yr - (g["eye_y"] + 0.08 + 0.3 * hv + 3.0 * long))
    bottom = 0.95
    d_curtain = _box(
        xr, yr - 0.5 * (_CRANIUM_V + bottom), fw + hv, 0.5 * (bottom - _CRANIUM_V), 0.0, 0.15
    )
    a_hair = _cover(np.minimum(d_cap, d_curtain + 10.0 * (1.0 - long)), ii)
    a_hair *= _col(ident["hair_vol"] > 0.0)
    # clothes (in the crop frame: the body does not roll with the head) and the neck
    a = _cover(_ellipse(f["hx"], f["hy"] - 1.55, 1.25, 0.65), ii)
    _paint(img, a, _rgb(ident["clothes"]))
    np.maximum(fg, a, out=fg)
    a = _cover(np.maximum(np.abs(f["hx"]) - 0.36 * fw, 0.2 - f["hy"]), ii)
    _paint(img, a, skin * 0.85)
    np.maximum(fg, a, out=fg)
    _paint(img, a_hair, hair)
    np.maximum(fg, a_hair, out=fg)
    # ears sit behind the rotation axis: they slide against the turn and the cranium hides the far
    # one; long hair covers them
    ex = np.abs(xr + 0.3 * fw * f["sin_yaw"]) - 0.97 * fw
    a = _cover(_ellipse(ex, yr - (g["eye_y"] + 0.07), 0.075, 0.14), ii)
    a *= 1.0 - long * a_hair
    _paint(img, a, skin * 0.92)
    np.maximum(fg, a, out=fg)
    # skin: cranium (head frame) united with the jaw (canonical frame, so it turns with the face)
    a = _cover(_ellipse(xr, yr - _CRANIUM_V, fw, fh), ii)
    vj = 0.05
    jaw = _ellipse(f["u"], f["v"] - vj, fw * _col(ident["jaw_w"]), g["chin_v"] - vj)
    np.maximum(a, _cover(jaw, f["inv_can"]), out=a)
    _paint(img, a, skin)
    np.maximum(fg, a, out=fg)
    return a


def _soft(d: np.ndarray) -> np.ndarray:
    """Soft-edged coverage for shading blobs (edge ~0.05 canonical units, independent of size)."""
    return _cover(d, _SOFT)


def _marks_upper(img: np.ndarray, f: dict, g: dict, ident: dict, nuis: dict) -> None:
    """Forehead wrinkles (AU1 central, AU2 lateral), glabellar furrows (AU4), the nose-root wrinkle
    (AU4, AU9) and the chevrons across the bridge (AU9); merged with max() and painted once."""
    u, v, au, ic = f["u"], f["v"], f["au"], f["inv_can"]
    ey = g["eye_y"]
    period = 0.065
    k = (v + 0.25 * u * u - g["wr_ref"]) / period
    dc = (k - np.round(k)) * period
    band = _cover(np.abs(k + 1.0) * period - 1.5 * period, ic)
    # bumps with compact support (nothing leaks out of the window): centre |u| < 0.25, sides
    # 0.1 < |u| < 0.5
    wc = np.maximum(1.0 - (u / 0.25) ** 2, 0.0)
    ws = np.maximum(1.0 - ((au - 0.3) / 0.2) ** 2, 0.0)
    wt = g["wr_center"] * wc * wc + g["wr_side"] * ws * ws
    lines = _stroke(dc, 0.007, ic) * band * np.minimum(wt, 0.9)
    dist = _segment(au, v, 0.032, g["y_in"] - 0.08, 0.026, g["y_in"] + 0.04)
    np.maximum(lines, _stroke(dist, 0.008, ic) * g["glabella"], out=lines)
    dist = np.maximum(np.abs(v - (ey - 0.005)) - 0.006, au - 0.06)
    np.maximum(lines, _stroke(dist + 0.006, 0.006, ic) * g["root"], out=lines)
    k = (v - 0.35 * au - (ey + 0.03)) / 0.035
    dc = (k - np.round(k)) * 0.035
    band = _cover(np.maximum(np.abs(k - 1.0) * 0.035 - 0.05, au - 0.07), ic)
    np.maximum(lines, _stroke(dc, 0.006, ic) * band * g["nose_wr"], out=lines)
    _paint(img, lines, _rgb(ident["skin"]) * 0.6)


def _marks_middle(img: np.ndarray, f: dict, g: dict, ident: dict, nuis: dict) -> None:
    """Cheek apples (rise with AU6 and strong AU12), infraorbital furrow (AU6), lower-lid bulge
    (AU6, AU7) and crow's feet (AU6)."""
    v, au, ic = f["v"], f["au"], f["inv_can"]
    skin = _rgb(ident["skin"])
    ey, edx, ew, hl = g["eye_y"], g["eye_dx"], g["eye_w"], g["hl"]
    cv = g["nose_v"] - 0.01 - g["cheek_lift"]
    light = _soft(_ellipse(au - (edx + 0.02), v - cv, 0.12, 0.065)) * g["cheek_glow"]
    _paint(img, light, np.minimum(skin * 1.08 + 0.03, 1.0))
    fy = ey + hl + 0.055 - 0.3 * g["cheek_lift"]
    tx = (au - edx) / (1.2 * ew)
    dist = np.maximum(np.abs(v - (fy + 0.02 * tx * tx)) - 0.006, (np.abs(tx) - 1.0) * ew)
    lines = _stroke(dist + 0.006, 0.006, ic) * g["furrow"]
    ty = ey + 0.08 * (edx - au)  # the eye's tilted centre line, as in ``_eyes``
    lid = hl * (1.0 - 1.44 * tx * tx) + 0.022
    dist = np.maximum(np.abs(v - ty - lid) - 0.005, (np.abs(tx) - 0.75) * ew)
    np.maximum(lines, _stroke(dist + 0.005, 0.005, ic) * g["bulge"], out=lines)
    cx = edx + ew + 0.025
    for dxe, dye in ((0.06, -0.025), (0.065, 0.005), (0.055, 0.035)):
        dist = _segment(au, v - ey, cx, 0.0, cx + dxe, dye)
        np.maximum(lines, _stroke(dist, 0.005, ic) * g["crows"], out=lines)
    _paint(img, lines, skin * 0.6)


def _marks_lower(img: np.ndarray, f: dict, g: dict, ident: dict, nuis: dict) -> None:
    """Nasolabial fold (AU6/9/10/12/20), chin boss and dimples (AU17), mentolabial crease (AU17,
    AU24), lip-pressor bulge (AU24) and the lines from the lip corners (AU15 down, AU20 out)."""
    v, au, ic = f["v"], f["au"], f["inv_can"]
    skin = _rgb(ident["skin"])
    cw, my = g["cw"], g["mouth_v"]
    cy = g["cy"] + f["side"] * _col(ident["asym"][:, 2])
    yv = v - my
    chin = g["chin_v"] - my - 0.1
    light = _soft(_ellipse(au, yv - chin - 0.02, 0.09, 0.06)) * g["chin_boss"]
    _paint(img, light, np.minimum(skin * 1.08 + 0.03, 1.0))
    # lip presser (AU24): the skin above the upper lip and below the lower lip bulges, lit on its
    # upper side, shadowed where the lower bulge turns under
    top = cy - (g["gap_u"] + g["lift"] + g["th_u"])  # outer edge of the upper lip, mid-mouth
    bot = cy + g["gap_l"] - g["push"] + g["th_l"]  # outer edge of the lower lip
    inside = _cover(au - 0.9 * cw, ic) * g["press"]
    bulge = np.maximum(
        _band(yv, top - 0.03, top - 0.006, ic), _band(yv, bot + 0.004, bot + 0.022, ic)
    )
    _paint(img, bulge * inside, np.minimum(skin * 1.2 + 0.05, 1.0))
    _paint(img, _band(yv, bot + 0.022, bot + 0.04, ic) * inside * 0.9, skin * 0.65)
    ax_, ay_ = g["nose_w"] + 0.03, g["nose_v"] - 0.03 - 0.02 * (g["lift"] > 0)
    bx_, by_ = cw + 0.045, my + 0.8 * g["cy"] + 0.03
    lines = _stroke(_segment(au, v, ax_, ay_, bx_, by_), 0.007, ic) * g["nasolabial"]
    ment_y = g["gap_l"] - g["push"] + g["th_l"] + 0.045 - g["ment_up"]
    dist = np.maximum(np.abs(yv - ment_y + 1.5 * au * au) - 0.007, au - 0.1)
    np.maximum(lines, _stroke(dist + 0.007, 0.007, ic) * g["mentolabial"], out=lines)
    dimples = np.minimum(
        _circle(au - 0.035, yv - chin, 0.012), _circle(au, yv - chin - 0.035, 0.012)
    )
    np.maximum(lines, _cover(dimples, ic) * (0.75 * g["dimple"]), out=lines)
    ccx, ccy = cw + 0.012, cy + 0.01
    dist = _segment(au, yv, ccx, ccy, ccx + 0.06, ccy + 0.055)
    np.maximum(lines, _stroke(dist, 0.006, ic) * g["stretch"], out=lines)
    dist = _segment(au, yv, ccx, ccy + 0.005, ccx + 0.02, ccy + 0.085)
    np.maximum(lines, _stroke(dist, 0.006, ic) * g["depress"], out=lines)
    _paint(img, lines, skin * 0.6)


def _nose(img: np.ndarray, f: dict, g: dict, ident: dict, nuis: dict) -> None:
    """Nose: side shading, wings, nostrils, tip highlight. The protruding parts are shifted by
    parallax so that under yaw the tip moves further than the root."""
    v, ic = f["v"], f["inv_can"]
    skin = _rgb(ident["skin"])
    ey, nv, nw = g["eye_y"], g["nose_v"], g["nose_w"]
    depth = np.clip((v - ey) / (nv - ey), 0.0, 1.0) * 0.12
    un = f["u"] - depth * f["sin_yaw"]
    aun = np.abs(un)
    side = np.sign(un)
    # side shading, stronger on the side facing away from the light
    dist = _segment(aun, v, 0.045, ey + 0.04, 0.8 * nw, nv - 0.025)
    shade = 0.3 * (1.0 - 0.9 * side * _col(nuis["light"][:, 0]))
    _paint(img, _stroke(dist, 0.014, ic) * shade, skin * 0.7)
    # tip highlight
    a = _soft(_ellipse(un, v - (nv - 0.03), 0.03, 0.03))
    _paint(img, a * 0.3, np.minimum(skin * 1.15 + 0.04, 1.0))
    # wings: rings around the nostrils
    d = _ellipse(aun - 0.62 * nw, v - (g["nostril_v"] - 0.012), 0.045, 0.034)
    _paint(img, _stroke(d, 0.006, ic) * g["ala"], skin * 0.65)
    # nostrils
    a = _cover(_ellipse(aun - 0.45 * nw, v - g["nostril_v"], 0.3 * nw, 0.015), ic)
    _paint(img, a * 0.85, skin * 0.3)


def _eyes(img: np.ndarray, f: dict, g: dict, ident: dict, nuis: dict) -> None:
    """Eyes on |u|: crease, sclera, iris, upper-lid line (the marks around them: ``_skin_marks``)."""
    v, au, side, ic = f["v"], f["au"], f["side"], f["inv_can"]
    skin = _rgb(ident["skin"])
    asym = _col(ident["asym"][:, 0])
    ey = g["eye_y"] + side * asym
    edx, ew, hu, hl = g["eye_dx"], g["eye_w"], g["hu"], g["hl"]
    ex = au - edx
    dy = v - ey + 0.08 * ex  # outer corner slightly higher (canthal tilt)
    t = ex / ew
    q = 1.0 - t * t
    yu = -hu * q  # upper lid curve
    yl = hl * q  # lower lid curve
    # lid crease above the upper lid; AU5 lifts it with the lid
    dist = np.maximum(np.abs(dy - (yu - 0.03)) - 0.005, (np.abs(t) - 0.85) * ew)
    _paint(img, _stroke(dist + 0.005, 0.005, ic) * 0.35, skin * 0.62)
    # sclera
    d_eye = np.maximum(yu - dy, dy - yl)
    a_eye = _cover(d_eye, ic)
    _paint(img, a_eye, _const([0.93, 0.92, 0.88]))
    # iris (gaze moves both irises the same way on screen)
    gx, gy = _col(nuis["gaze"][:, 0]), _col(nuis["gaze"][:, 1])
    d_iris = _circle(ex - side * gx, dy - gy, g["iris_r"])
    a = np.minimum(_cover(d_iris, ic), a_eye)
    _paint(img, a, _rgb(ident["iris"]))
    # upper-lid line (lashes), sitting on the lid edge
    dist = np.maximum(np.abs(dy - (yu - 0.004)) - 0.009, (np.abs(t) - 1.08) * ew)
    _paint(img, _stroke(dist + 0.009, 0.009, ic) * 0.9, skin * 0.25)


def _brows(img: np.ndarray, f: dict, g: dict, ident: dict, nuis: dict) -> None:
    """Brows on |u|: a tapered quadratic stroke from the inner end (x_in, y_in) to the outer end
    (x_out, y_out) with an arch; AU1/AU2/AU4/AU9 move the ends (see ``_geometry``)."""
    v, au, side, ic = f["v"], f["au"], f["side"], f["inv_can"]
    asym = _col(ident["asym"][:, 1])
    x0, x1 = g["x_in"], g["x_out"]
    y0, y1 = g["y_in"] + side * asym, g["y_out"] + side * asym
    L = x1 - x0
    s = (au - x0) / L
    yb = y0 + (y1 - y0) * s - 4.0 * g["arch"] * s * (1.0 - s)
    slope = ((y1 - y0) - 4.0 * g["arch"] * (1.0 - 2.0 * s)) / L
    th = g["brow_t"] * (1.15 - 0.55 * s)
    d = np.abs(v - yb) / np.sqrt(1.0 + slope * slope) - th
    d = np.maximum(d, np.maximum(x0 - au, au - x1))
    _paint(img, _cover(d, ic) * 0.92, _rgb(ident["brow_rgb"]))


def _mouth(img: np.ndarray, f: dict, g: dict, ident: dict, nuis: dict) -> None:
    """Mouth on |u|: lips, opening, teeth, lip line (the marks around it: ``_skin_marks``).

    With t = |u| / cw and q = 1 - t^2, the four contours meet at the corners (t = 1, height cy):
    inner upper  yiu = cy t^2 - (gap_u + lift) q,
    inner lower  yil = cy t^2 + gap_l q - push q,
    outer upper  yuo = yiu - (th_u + lift / 2) sqrt(q) (+ a small cupid's bow),
    outer lower  ylo = yil + th_l sqrt(q).
    """
    v, au, side, ic = f["v"], f["au"], f["side"], f["inv_can"]
    lip = _rgb(ident["lip_rgb"]) * g["lip_tone"][:, None]
    cw = g["cw"]
    my = g["mouth_v"]
    cy = g["cy"] + side * _col(ident["asym"][:, 2])
    t = au / cw
    t2 = t * t
    q = np.maximum(1.0 - t2, 0.0)
    sq = np.sqrt(q)
    yv = v - my
    base = cy * t2
    yiu = base - (g["gap_u"] + g["lift"]) * q
    yil = base + g["gap_l"] * q - g["push"] * q
    bow = 0.012 * np.maximum(1.0 - (au / 0.045) ** 2, 0.0)
    yuo = yiu - (g["th_u"] + 0.5 * g["lift"]) * sq + bow * (q > 0)
    ylo = yil + g["th_l"] * sq
    # lips: upper slightly darker than lower; a darker vermilion edge (stronger with AU23)
    _paint(img, _band(yv, yuo, yiu, ic), lip * 0.9)
    _paint(img, _band(yv, yil, ylo, ic), lip)
    d_lips = np.maximum(yuo - yv, yv - ylo)
    d_edge = np.maximum(np.abs(d_lips) - 0.004, (t - 1.0) * cw)
    _paint(img, _stroke(d_edge + 0.004, 0.004, ic) * g["lip_edge"], lip * 0.7)
    # lip line (the commissures show as its ends)
    ym = 0.5 * (yiu + yil)
    dist = np.maximum(np.abs(yv - ym) - g["lip_line"], (t - 1.04) * cw)
    _paint(img, _stroke(dist + g["lip_line"], g["lip_line"], ic) * 0.85, lip * 0.35)
    # opening: dark cavity, upper teeth hanging from the upper lip, lower teeth on the lower lip
    _paint(img, _band(yv, yiu, yil, ic), _const([0.18, 0.06, 0.06]))
    teeth = _const([0.92, 0.89, 0.8])
    _paint(img, _band(yv, yiu, np.minimum(yil, yiu + 0.03), ic), teeth)
    _paint(img, _band(yv, np.maximum(yiu, yil - 0.016), yil, ic) * 0.8, teeth * 0.9)


def _beard(img: np.ndarray, f: dict, g: dict, ident: dict, nuis: dict) -> None:
    """Beard and moustache of the bearded faces (stubble texture fixed per identity)."""
    idx = np.flatnonzero((ident["beard"] > 0) | (ident["moustache"] > 0))
    if not idx.size:
        return
    u, v, au, ic = f["u"][idx], f["v"][idx], f["au"][idx], f["inv_can"][idx]
    gi = {k: x[idx] for k, x in g.items()}
    fw = _col(ident["face_w"][idx])
    hair = _rgb(ident["hair_rgb"][idx])
    tex = 0.65 + 0.35 * _hash_uniform(ident["key"][idx], f["pix"], 0xBEA2D)
    my, cw = gi["mouth_v"], gi["cw"]
    jaw = _ellipse(u, v - 0.05, fw * _col(ident["jaw_w"][idx]), gi["chin_v"] - 0.05)
    top = my - 0.02 + gi["cy"] - 0.5 * np.maximum(au - 0.8 * cw, 0.0)
    d = np.maximum(jaw + 0.01, top - v)
    a = _cover(d, ic) * tex * _col(ident["beard"][idx])
    # moustache: between the nose and the upper lip
    yuo = my - gi["lift"] - gi["gap_u"] - gi["th_u"]
    dm = np.maximum(np.maximum(gi["nostril_v"] + 0.03 - v, v - yuo), au - (cw + 0.03))
    am = _cover(dm, ic) * tex * _col(ident["moustache"][idx]) * 0.9
    np.maximum(a, am, out=a)
    sub = img[idx]
    _paint(sub, a, hair)
    img[idx] = sub


def _hair_front(img: np.ndarray, f: dict, g: dict, ident: dict, nuis: dict) -> None:
    """Hair over the forehead and temples (canonical frame), with an optional slanted fringe."""
    u, v, au, ic = f["u"], f["v"], f["au"], f["inv_can"]
    fw, fh, hv = _col(ident["face_w"]), _col(ident["face_h"]), _col(ident["hair_vol"])
    hl = _col(ident["hairline"])
    fr = _col(ident["fringe"])
    # the hair line curves down to the temples and drops into sideburns near the ears
    ac = np.minimum(au, 1.02 * fw)  # beyond the cylinder the side of the head keeps the temple line
    line = hl + 0.45 * ac * ac + 3.0 * np.maximum(ac - 0.78 * fw, 0.0)
    fringe_to = g["eye_y"] - 0.2 + _col(ident["hair_part"]) * 0.12 * u
    wf = np.maximum(1.0 - (u / (0.85 * fw)) ** 2, 0.0)
    line = line + fr * wf * np.maximum(fringe_to - line, 0.0)
    d = v - line
    # the hair never reaches past its own volume (the cap of ``_head``)
    outer = _ellipse(f["xr"], f["yr"] - (_CRANIUM_V - 0.03), fw + hv + 0.005, fh + 0.7 * hv + 0.015)
    a = np.minimum(_cover(d, ic), _cover(outer, f["inv_img"]))
    a *= _col(ident["hair_vol"] > 0.0)
    _paint(img, a, _rgb(ident["hair_rgb"]))


def _glasses(img: np.ndarray, f: dict, g: dict, ident: dict, nuis: dict) -> None:
    """Glasses of the faces that wear them: tinted lenses, rims, bridge and temples."""
    idx = np.flatnonzero(ident["glasses"] > 0)
    if not idx.size:
        return
    v, au, ic = f["v"][idx], f["au"][idx], f["inv_can"][idx]
    gi = {k: x[idx] for k, x in g.items()}
    rgb = _rgb(ident["glasses_rgb"][idx])
    ey, edx, ew = gi["eye_y"], gi["eye_dx"], gi["eye_w"]
    lens = _ellipse(au - edx, v - (ey + 0.01), 1.55 * ew, 1.15 * ew)
    sub = img[idx]
    _paint(sub, _cover(lens, ic) * 0.12, _const([0.6, 0.7, 0.8]))
    _paint(sub, _stroke(lens, 0.011, ic), rgb)
    bridge = _segment(au, v, 0.0, ey - 0.02, edx - 1.5 * ew, ey - 0.01)
    temple = _segment(au, v, edx + 1.5 * ew, ey - 0.01, edx + 3.0 * ew, ey - 0.02)
    _paint(sub, _stroke(np.minimum(bridge, temple), 0.01, ic), rgb)
    img[idx] = sub


def _shade(f: dict, ident: dict, nuis: dict) -> np.ndarray:
    """Lambertian shading of the head ellipsoid: ambient + (1 - ambient) max(0, n . l)."""
    nx = f["xr"] / (1.1 * _col(ident["face_w"]))
    ny = (f["yr"] - _CRANIUM_V) / (1.15 * _col(ident["face_h"]))
    nz = np.sqrt(np.clip(1.0 - nx * nx - ny * ny, 0.0, 1.0))
    light = nuis["light"]
    ndl = nx * _col(light[:, 0]) + ny * _col(light[:, 1]) + nz * _col(light[:, 2])
    amb = _col(nuis["ambient"])
    return amb + (1.0 - amb) * np.maximum(ndl, 0.0)


def _occluder(img: np.ndarray, f: dict, ident: dict, nuis: dict, idx: np.ndarray) -> None:
    """Bar (pen, microphone, arm), hand (palm and four fingers) or patch over the faces ``idx``."""
    hx, hy = f["hx"][idx], f["hy"][idx]
    ii = f["inv_img"][idx]
    kind = _col(nuis["occ_kind"][idx].astype(_F))
    cx, cy = _col(nuis["occ_xy"][idx, 0]), _col(nuis["occ_xy"][idx, 1])
    sx, sy = _col(nuis["occ_size"][idx, 0]), _col(nuis["occ_size"][idx, 1])
    ang = _col(nuis["occ_angle"][idx])
    px, py = hx - cx, hy - cy
    bar = _box(px, py, 3.0 + 0 * sx, 0.35 * sy, ang, 0.35 * sy)
    patch = _box(px, py, sx, sy, ang, 0.2 * np.minimum(sx, sy))
    # hand: palm below the centre, fingers pointing along the angle, like a hand resting on a cheek
    c, s = np.cos(ang), np.sin(ang)
    palm = _ellipse(px * c + py * s + 0.2, -px * s + py * c, 0.22, 0.17)
    fingers = palm
    for j, length in enumerate((0.2, 0.25, 0.24, 0.18)):
        off = (j - 1.5) * 0.075
        bx, by = -0.05 * c - off * s, -0.05 * s + off * c
        ex, ey = bx + length * c, by + length * s
        fingers = np.minimum(fingers, _segment(px, py, bx, by, ex, ey) - 0.034)
    d = np.where(kind == OCC_BAR, bar, np.where(kind == OCC_HAND, fingers, patch))
    rgb = np.where(kind[:, None] == OCC_HAND, _rgb(ident["skin"][idx]) * 0.95, 0.0)
    rgb = rgb + np.where(kind[:, None] == OCC_HAND, 0.0, _rgb(nuis["occ_rgb"][idx]))
    sub = img[idx]
    _paint(sub, _cover(d, ii), rgb.astype(_F))
    img[idx] = sub


def _blur(img: np.ndarray, sigma_px: np.ndarray) -> np.ndarray:
    """Separable Gaussian blur of (B,3,H,W) images with a per-image sigma (pixels); edges replicate."""
    # weights in scalar float64, each image on its own support: the taps a wider batch adds are
    # exact zeros, so an image's blur does not depend on the others
    sig = [float(x) for x in sigma_px]
    rad = [math.ceil(3.0 * x) for x in sig]
    r = max(rad)
    rows = []
    for x, rx in zip(sig, rad, strict=True):
        taps = [math.exp(-0.5 * (o / x) ** 2) if abs(o) <= rx else 0.0 for o in range(-r, r + 1)]
        total = math.fsum(taps)
        rows.append([t / total for t in taps])
    w = np.array(rows, _F)[:, :, None, None, None]  # (B, taps, 1, 1, 1)
    h, wd = img.shape[2:]
    pad = np.pad(img, ((0, 0), (0, 0), (r, r), (0, 0)), mode="edge")
    out = np.zeros_like(img)
    for k in range(2 * r + 1):
        out += pad[:, :, k : k + h] * w[:, k]
    pad = np.pad(out, ((0, 0), (0, 0), (0, 0), (r, r)), mode="edge")
    out = np.zeros_like(img)
    for k in range(2 * r + 1):
        out += pad[:, :, :, k : k + wd] * w[:, k]
    return out


def _render_chunk(
    ident: dict[str, np.ndarray],
    au: np.ndarray,
    pose: np.ndarray,
    nuis: dict[str, np.ndarray],
    size: int,
    seed: int,
    au_gain: float,
) -> np.ndarray:
    n = au.shape[0]
    g = _gained_geometry(ident, au, au_gain)
    f = _frames(ident, pose, nuis, size)
    img = np.empty((n, 3, size, size), _F)  # channels first: every op runs over whole planes
    _background(img, nuis, size)
    fg = np.zeros((n, size, size), _F)
    _head(img, fg, f, g, ident)
    # features are evaluated only inside the window that holds them for every face of the batch
    for draw, box in (
        (_marks_upper, (0.62, -0.78, 0.1)),
        (_marks_middle, (0.64, -0.22, 0.36)),
        (_marks_lower, (0.62, 0.06, 1.12)),
        (_nose, (0.3, -0.15, 0.36)),
        (_eyes, (0.48, -0.36, 0.06)),
        (_brows, (0.5, -0.62, 0.0)),
        (_beard, (0.76, 0.15, 1.12)),
        (_mouth, (0.5, 0.12, 0.9)),
        (_hair_front, (None, None, 0.35)),
        (_glasses, (0.76, -0.38, 0.18)),
    ):
        rows, cols = _window(f, *box, size)
        if rows.stop > rows.start and cols.stop > cols.start:
            draw(img[:, :, rows, cols], _crop(f, rows, cols), g, ident, nuis)
    # shading applies to the person (fg), the gain and colour cast to the whole picture
    shade = 1.0 + fg * (_shade(f, ident, nuis) - 1.0)
    img *= shade[:, None]
    occluded = np.flatnonzero(nuis["occ_kind"] != OCC_NONE)
    if occluded.size:
        _occluder(img, f, ident, nuis, occluded)
    img *= _rgb(nuis["gain"][:, None] * nuis["cast"])
    sigma = nuis["blur"] * size
    blurry = np.flatnonzero(sigma >= 0.25)
    if blurry.size:
        img[blurry] = _blur(img[blurry], sigma[blurry])
    noisy = np.flatnonzero(nuis["noise"] > 0)
    if noisy.size:
        key = nuis["noise_key"][noisy] ^ np.uint32(seed & 0xFFFFFFFF)
        pix = np.arange(3 * size * size, dtype=np.uint32).reshape(1, 3, size, size)
        u1 = _hash_uniform(key, pix, 0x1)
        u2 = _hash_uniform(key, pix, 0x2)
        gauss = np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(_F(2 * np.pi) * u2)  # Box-Muller
        img[noisy] += gauss * _col(nuis["noise"][noisy])[:, None]
    np.clip(img, 0.0, 1.0, out=img)
    return (img * 255.0 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)


# --- public entry points ------------------------------------------------------------------------
def _check_params(
    params: dict[str, np.ndarray], keys: tuple[str, ...], n: int, what: str
) -> dict[str, np.ndarray]:
    missing = [k for k in keys if k not in params]
    if missing:
        raise KeyError(f"{what} is missing keys {missing}; build it with sample_{what}()")
    for k in keys:
        rows = np.shape(params[k])[0] if np.ndim(params[k]) else None
        if rows != n:
            raise ValueError(f"{what}[{k!r}] has {rows} rows, expected {n} (one per face)")
    return {k: np.asarray(params[k]) for k in keys}


def render(
    identity: dict[str, np.ndarray],
    au: np.ndarray,
    pose: np.ndarray,
    nuisance: dict[str, np.ndarray],
    size: int = 48,
    *,
    seed: int = 0,
    chunk: int = 512,
    au_gain: float = 1.0,
) -> np.ndarray:
    """Render N faces as uint8 RGB images, shape (N, size, size, 3).

    identity: one row per face (use ``take(sample_identities(...), subject_of_face)`` so a subject
    keeps its identity across the frames of a video); au: (N, len(RENDER_AUS)) intensities in
    [0, 5], column j is AU ``RENDER_AUS[j]``, rendered bilaterally; pose: (N, 3) yaw, pitch, roll in
    degrees (sign convention in ``pose_aus``; the renderer is meant for |yaw| <= 60, |pitch|, |roll|
    <= 30); nuisance: one row per face from ``sample_nuisance`` or ``neutral_nuisance``. ``seed``
    salts the sensor noise; ``chunk`` caps the faces rendered at once (memory ~ chunk * size^2 *
    ~0.5 kB); below it faces go in cache-sized batches of ~64k pixels. ``au_gain`` scales every
    AU's effect on the face (1: FACS-sized movements; see ``_gained_geometry``). Same inputs and
    seed give the same bytes; a face's pixels do not depend on the other faces rendered with it.
    """
    au = np.asarray(au, dtype=float)
    pose = np.asarray(pose, dtype=float)
    if au.ndim != 2 or au.shape[1] != len(RENDER_AUS):
        raise ValueError(f"au must have shape (N, {len(RENDER_AUS)}) (RENDER_AUS), got {au.shape}")
    n = au.shape[0]
    if pose.shape != (n, 3):
        raise ValueError(
            f"pose must have shape ({n}, 3) = yaw, pitch, roll degrees, got {pose.shape}"
        )
    if not np.all(np.isfinite(au)) or au.min(initial=0) < 0 or au.max(initial=0) > AU_MAX:
        raise ValueError(f"au intensities must be finite and within [0, {AU_MAX:g}]")
    if not np.all(np.isfinite(pose)) or np.abs(pose).max(initial=0) > 90:
        raise ValueError("pose angles must be finite degrees within [-90, 90]")
    if not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if not (np.isfinite(au_gain) and 0 < au_gain <= 3):
        raise ValueError(f"au_gain must lie in (0, 3], got {au_gain}")
    ident = _check_params(identity, IDENTITY_KEYS, n, "identities")
    nuis = _check_params(nuisance, NUISANCE_KEYS, n, "nuisance")
    out = np.empty((n, size, size, 3), np.uint8)
    step = max(1, min(chunk, _BATCH_PIXELS // (size * size)))
    # faces of similar pose share a batch, so the feature windows stay tight; a face's pixels do not
    # depend on its batch, so the order changes the speed only
    order = np.lexsort((pose[:, 0], np.round(pose[:, 2] / 10), np.round(pose[:, 1] / 10)))
    for start in range(0, n, step):
        sel = order[start : start + step]
        out[sel] = _render_chunk(
            take(ident, sel), au[sel], pose[sel], take(nuis, sel), size, seed, float(au_gain)
        )
    return out


def atlas_identity(seed: int = 0) -> dict[str, np.ndarray]:
    """One plain identity for the atlas: symmetric, no glasses, beard or fringe, medium skin."""
    ident = sample_identities(1, np.random.default_rng(seed))
    for k in ("glasses", "beard", "moustache", "fringe", "hair_part", "age"):
        ident[k][:] = 0
    ident["asym"][:] = 0
    ident["skin"][:] = _skin_tone(np.array([0.3]))
    ident["hair_vol"][:] = np.maximum(ident["hair_vol"], 0.06)
    ident["hairline"][:] = -0.62
    return ident


def au_atlas(size: int = 64, seed: int = 0, au_gain: float = 1.0) -> np.ndarray:
    """Grid of one identity showing each RENDER_AU alone at intensities 0..5, frontal, clean.

    Returns uint8 (rows * (size + gap) - gap, 6 * (size + gap) - gap, 3) for ``plt.imshow``: row r is
    AU ``RENDER_AUS[r]`` (labels in ``AU_ATLAS_ROWS``), column c is intensity c (column 0 is the
    neutral face), cells separated by ``ATLAS_GAP`` white pixels.
    """
    ident1 = atlas_identity(seed)
    n_int = 6
    au = np.zeros((len(RENDER_AUS) * n_int, len(RENDER_AUS)))
    for r in range(len(RENDER_AUS)):
        au[r * n_int : (r + 1) * n_int, r] = np.arange(n_int)
    n = au.shape[0]
    faces = render(
        take(ident1, np.zeros(n, int)),
        au,
        np.zeros((n, 3)),
        neutral_nuisance(n),
        size,
        au_gain=au_gain,
    )
    step = size + ATLAS_GAP
    grid = np.full((len(RENDER_AUS) * step - ATLAS_GAP, n_int * step - ATLAS_GAP, 3), 255, np.uint8)
    for k in range(n):
        r, c = divmod(k, n_int)
        grid[r * step : r * step + size, c * step : c * step + size] = faces[k]
    return grid
