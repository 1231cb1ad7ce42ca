"""What hides an AU in the embedded data set: the HOG read-out of one AU, alone and in context.

For each AU asked for, renders ``--faces`` aligned 48 px faces of as many random identities, half
with the AU at ``--intensity`` (default 3, FACS C) and half without, and reports the validation ROC
AUC of the read-out probe of :func:`affectlib.data.difficulty.readout_probe` (HOG features, an L2
logistic regression of the same strength), trained on the first half of the identities and scored
on the other half, in four settings:

- ``clean``: frontal, studio nuisance (``render.neutral_nuisance``), no other AU;
- ``nuisance``: + the Aff-Wild2-like nuisance (light, clutter, occlusion, blur, noise, crop jitter);
- ``pose``: clean, but with the head pose of random frames of the Aff-Wild2-like set;
- ``aus``: clean and frontal, but with the other AUs of random frames of that set;
- ``context``: the other AUs and the head pose of random frames (``pose`` and ``aus`` together);
- ``both``: context and nuisance, as in the data set.

It separates "the AU is drawn too faintly" (low ``clean``) from "the AU is masked by what
co-occurs with it" (high ``clean``, low ``context``), and the head pose (``pose``) from the other
AUs (``aus``) as the masker. The context frames come from the cpu
profile's embedded set (generated if missing).

    python benchmarks/au_isolation.py [--aus 23 24 15] [--faces 2000] [--intensity 3]

A benchmark, not a test: one draw of identities; compare renderer versions with the same seed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from affectlib import profiles
from affectlib.data import difficulty, generate
from affectlib.data import render as R
from affectlib.data.embedded import EXCLUSIVE_AUS

SETTINGS = ("clean", "nuisance", "pose", "aus", "context", "both")


def isolation_auc(
    au: int,
    setting: str,
    context: dict[str, np.ndarray],
    n: int = 2000,
    intensity: float = 3.0,
    seed: int = 1,
    c: float = 1e-3,
) -> float:
    """Held-out-identity AUC of the HOG read-out of ``au`` in one of ``SETTINGS``; ``context``
    holds ``au`` (M, len(RENDER_AUS)) intensities and ``pose`` (M, 3) of frames to draw from."""
    rng = np.random.default_rng(seed)
    ident = R.sample_identities(n, rng)
    noisy = setting in ("nuisance", "both")
    nuis = R.sample_nuisance(n, rng, aligned=True) if noisy else R.neutral_nuisance(n, aligned=True)
    y = rng.integers(0, 2, n)
    rows = rng.integers(0, len(context["au"]), n)
    aus, pose = np.zeros((n, len(R.RENDER_AUS))), np.zeros((n, 3))
    if setting in ("aus", "context", "both"):
        aus = context["au"][rows].copy()
    if setting in ("pose", "context", "both"):
        pose = context["pose"][rows]
    j = R.RENDER_AUS.index(au)
    aus[:, j] = y * intensity
    for (
        first,
        second,
    ) in EXCLUSIVE_AUS:  # as the data set: the second of a pair is off under the first
        if au in (first, second):
            aus[aus[:, R.RENDER_AUS.index(first)] > 0, R.RENDER_AUS.index(second)] = 0
    y = (aus[:, j] > 0).astype(int)
    nuis = R.align_to_pose(ident, pose, nuis)
    x = difficulty.hog_of_images(R.render(ident, aus, pose, nuis, 48))
    train = np.arange(n) < n // 2
    x = (x - x[train].mean(0)) / (x[train].std(0) + 1e-6)
    model = LogisticRegression(C=c, max_iter=1000).fit(x[train], y[train])
    return float(roc_auc_score(y[~train], model.decision_function(x[~train])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aus", type=int, nargs="+", default=[23, 24, 15])
    ap.add_argument("--faces", type=int, default=2000)
    ap.add_argument("--intensity", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    root = generate.ensure(profiles.get("cpu"), 0)
    truth = difficulty.load_truth(root)
    context = {
        "au": truth[[f"I_AU{a}" for a in R.RENDER_AUS]].to_numpy(float).clip(0, R.AU_MAX),
        "pose": truth[["yaw", "pitch", "roll"]].to_numpy(float),
    }
    print(f"HOG read-out AUC, {args.faces} faces (half held out), intensity {args.intensity:g}")
    print("AU    " + "  ".join(f"{s:>8}" for s in SETTINGS))
    t0 = time.perf_counter()
    for au in args.aus:
        aucs = [
            isolation_auc(au, s, context, args.faces, args.intensity, args.seed) for s in SETTINGS
        ]
        print(f"AU{au:<4}" + "  ".join(f"{v:8.3f}" for v in aucs))
    print(f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
