"""Learnability probe of the embedded data set: can a small model learn every task, and none fully?

Generates the embedded set of a profile (default: cpu) into a fresh folder, trains MFAR (Gera et al.
2022, Eq. 3: the plain multi-task baseline) with ResNet-18 through the real loaders
(``affectlib.train.run``), and prints, per measure, the probe's validation score beside the
label-blind chance score and the ceiling the label noise allows (``affectlib.data.difficulty``):

- ``F1 AU<n>`` per ABAW AU (prediction: sigmoid > 0.5), ``au_f1`` their mean;
- ``expr_f1``: expression macro F1 over the 8 ABAW classes;
- ``va``: mean CCC of valence and arousal.

The data set is calibrated when every task is *learnable* (probe >= chance + ``--margin``) and none
is *saturated* (probe <= ceiling - ``--margin``); the last lines say which measures miss either.
Then two network-free probes, which separate "the images do not show the label" from "the network
did not learn it in the budget": per AU, the validation AUC of a logistic regression over the raw
24 px grey pixels (:func:`affectlib.data.difficulty.pixel_probe`), and the HOG read-out
(:func:`affectlib.data.difficulty.readout_probe`): per-AU F1 and expression macro F1 of logistic
regressions over HOG features, beside chance, the all-positive F1 and the ceiling, with intervals
over validation videos. ``--readout-only`` runs just these (about a minute with rendering);
``--person-norm`` adds the HOG read-out on person-normalised features (each video's median
subtracted, :func:`affectlib.data.difficulty.subtract_video_median`).
Render time (generation of the whole profile's data set, JPEG included) and probe wall times are
printed; they depend on the machine and on what else runs on it.

    python benchmarks/probe_learnability.py [--profile cpu] [--epochs 3] [--seed 0]

A benchmark, not a test: one seed is one draw; compare calibrations with the same seed.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from affectlib import profiles, train
from affectlib.cli_train import parse_set
from affectlib.data import difficulty, generate
from affectlib.labels import AU_COLUMNS
from affectlib.studies import instrument

DEFAULT_WORK = Path(__file__).resolve().parents[1] / "build" / "probe_learnability"


def au_auc(pred: dict[str, np.ndarray]) -> dict[str, float]:
    """ROC AUC of each AU's probability over its labelled validation rows (0.5: nothing learnt),
    threshold-free, so a probe that calls every face positive does not look like learning."""
    out = {}
    for j, c in enumerate(AU_COLUMNS):
        y, p = pred["au_true"][:, j], pred["au_prob"][:, j]
        keep = y >= 0
        both = keep.any() and 0 < y[keep].mean() < 1
        out[f"F1 {c}"] = float(roc_auc_score(y[keep], p[keep])) if both else float("nan")
    return out


def all_positive_f1(truth: pd.DataFrame, split: str = "validation") -> dict[str, float]:
    """F1 of calling every face positive, 2p / (1 + p) for an AU of validation rate p: a second
    label-blind floor, above ``chance_scores``' base-rate guess (F1 = p) for every rare AU."""
    t = truth[truth["split"] == split]
    out = {}
    for c in AU_COLUMNS:
        y = t[c].to_numpy()
        f1 = difficulty.guess_f1(
            1.0, np.array((y == 1).sum(), float), np.array((y >= 0).sum(), float)
        )
        out[f"F1 {c}"] = float(f1)
    return out


def report(
    probe: dict[str, float], auc: dict[str, float], truth: pd.DataFrame, margin: float
) -> pd.DataFrame:
    """One row per measure: the probe, the floors (chance, all-positive), the ceiling, the AUC, and
    whether it is learnable (probe >= chance + margin) and saturated (probe > ceiling - margin)."""
    chance = difficulty.chance_scores(truth).set_index("measure")["chance"]
    ceiling = difficulty.noise_ceiling(truth).set_index("measure")["ceiling"]
    all_on = all_positive_f1(truth)
    rows = []
    for m, v in probe.items():
        if m == "overall":
            continue  # the sum of the three tasks: its parts are judged
        rows.append(
            {
                "measure": m,
                "probe": v,
                "chance": float(chance[m]),
                "all_pos": all_on.get(m, float("nan")),
                "ceiling": float(ceiling[m]),
                "auc": auc.get(m, float("nan")),
            }
        )
    df = pd.DataFrame(rows)
    df["learnable"] = df["probe"] >= df["chance"] + margin
    df["saturated"] = df["probe"] > df["ceiling"] - margin
    return df


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0, help="training seed")
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--margin", type=float, default=0.1, help="distance from chance and ceiling")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help="data and run folder")
    ap.add_argument(
        "--reuse", action="store_true", help="train on the data already in --work (no rendering)"
    )
    ap.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="profile override, e.g. lr_heads=1e-3 or extra.dropout=0 (extra keys are merged)",
    )  # fmt: skip
    ap.add_argument(
        "--readout-only", action="store_true", help="only the network-free read-out probes"
    )
    ap.add_argument(
        "--person-norm", action="store_true",
        help="also the HOG read-out with each video's median HOG subtracted (OpenFace's "
        "person-specific normalisation): how much of what hides an AU is the identity",
    )  # fmt: skip
    args = ap.parse_args()

    base = profiles.get(args.profile, epochs=args.epochs)
    over = parse_set(args.set)
    if "extra" in over:
        over["extra"] = {**base.extra, **over["extra"]}
    profile = base.replace(**over)
    root, out = args.work / "data", args.work / "run"
    render_s = float("nan")
    if not args.reuse:
        t0 = time.perf_counter()
        generate.generate(root, profile, args.data_seed)
        render_s = time.perf_counter() - t0
    if args.readout_only:
        readout(root, args.margin, args.person_norm)
        print(f"generate (render + JPEG) {render_s:.1f} s")
        return
    if out.exists():
        shutil.rmtree(out)  # a fresh run, never a resume
    t0 = time.perf_counter()
    res = train.run("mfar", profile, out, args.seed, data_root=root, progress=False)
    probe_s = time.perf_counter() - t0

    pred = res.test_predictions or res.predictions  # the held-out split when the data has one
    df = report(
        instrument.scores_per_au(pred), au_auc(pred), difficulty.load_truth(root), args.margin
    )
    pd.set_option("display.width", 120)
    print(
        f"profile {profile.name} {args.set or ''}, {profile.image_size} px, {profile.epochs} "
        f"epochs, MFAR, {profile.backbone}, seed {args.seed}, data seed {args.data_seed}"
    )
    print(df.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(
        f"generate (render + JPEG) {render_s:.1f} s; probe (cache + train + validate) {probe_s:.1f} s"
    )
    bad = df[~df["learnable"]]["measure"].tolist()
    hot = df[df["saturated"]]["measure"].tolist()
    print(f"not learnable (< chance + {args.margin:g}): {', '.join(bad) or 'none'}")
    print(f"near the ceiling (> ceiling - {args.margin:g}): {', '.join(hot) or 'none'}")
    readout(root, args.margin, args.person_norm)


def readout(root: Path, margin: float, person_norm: bool = False) -> None:
    """The network-free probes: raw pixels (AUC) and HOG (F1 with floors and intervals); with
    ``person_norm``, the HOG read-out's AUC against the truth beside that of the same read-out on
    person-normalised HOG."""
    fmt = {"float_format": lambda x: f"{x:.3f}", "index": False}
    t0 = time.perf_counter()
    pix = difficulty.pixel_probe(root)
    print(f"linear read-out of the raw pixels ({time.perf_counter() - t0:.1f} s), validation AUC:")
    print(pix.to_string(**fmt))
    t0 = time.perf_counter()
    hog = difficulty.readout_probe(root, margin=margin)
    print(f"linear read-out of HOG features ({time.perf_counter() - t0:.1f} s), validation:")
    print(hog.to_string(**fmt))
    print(difficulty.readout_verdict(hog))
    if person_norm:
        t0 = time.perf_counter()
        norm = difficulty.readout_probe(root, margin=margin, person_norm=True)
        both = pd.DataFrame(
            {name: df.set_index("measure")["auc_true"] for name, df in
             (("plain", hog), ("person_norm", norm))}
        ).loc[list(AU_COLUMNS)]  # fmt: skip
        print(
            f"HOG read-out minus each video's median HOG ({time.perf_counter() - t0:.1f} s), "
            "validation AUC against the truth:"
        )
        print(both.T.to_string(float_format=lambda x: f"{x:.2f}"))


if __name__ == "__main__":
    main()
