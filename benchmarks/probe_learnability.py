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
Render time (generation of the whole profile's data set, JPEG included) and probe wall time are
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

from affectlib import metrics, profiles, train
from affectlib.data import difficulty, generate
from affectlib.labels import AU_COLUMNS

DEFAULT_WORK = Path(__file__).resolve().parents[1] / "build" / "probe_learnability"


def probe_scores(pred: dict[str, np.ndarray]) -> dict[str, float]:
    """Validation scores of the probe's predictions (:func:`affectlib.train.predict` output):
    ``expr_f1``, ``au_f1``, ``va``, ``overall`` (SS-MFAR Eq. 10) and ``F1 AU<n>`` per AU."""
    s = train.score(pred)
    per_au = metrics.per_au_f1(pred["au_true"], (pred["au_prob"] > 0.5).astype(int))
    return {
        **{k: float(s[k]) for k in ("expr_f1", "au_f1", "va", "overall")},
        **{f"F1 {c}": float(v) for c, v in zip(AU_COLUMNS, per_au, strict=True)},
    }


def report(probe: dict[str, float], truth: pd.DataFrame, margin: float) -> pd.DataFrame:
    """One row per measure: probe, chance, ceiling, and whether it is learnable / not saturated."""
    chance = difficulty.chance_scores(truth).set_index("measure")["chance"]
    ceiling = difficulty.noise_ceiling(truth).set_index("measure")["ceiling"]
    rows = []
    for m, v in probe.items():
        if m == "overall":
            continue  # a sum of the three tasks: its parts are judged
        rows.append(
            {
                "measure": m,
                "probe": v,
                "chance": float(chance[m]),
                "ceiling": float(ceiling[m]),
                "above_chance": v - float(chance[m]),
                "below_ceiling": float(ceiling[m]) - v,
            }
        )
    df = pd.DataFrame(rows)
    df["learnable"] = df["above_chance"] >= margin
    df["saturated"] = df["below_ceiling"] < margin
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
    args = ap.parse_args()

    profile = profiles.get(args.profile, epochs=args.epochs)
    root, out = args.work / "data", args.work / "run"
    render_s = float("nan")
    if not args.reuse:
        t0 = time.perf_counter()
        generate.generate(root, profile, args.data_seed)
        render_s = time.perf_counter() - t0
    if out.exists():
        shutil.rmtree(out)  # a fresh run, never a resume
    t0 = time.perf_counter()
    res = train.run("mfar", profile, out, args.seed, data_root=root, progress=False)
    probe_s = time.perf_counter() - t0

    df = report(probe_scores(res.predictions), difficulty.load_truth(root), args.margin)
    pd.set_option("display.width", 120)
    print(
        f"profile {profile.name}, {profile.image_size} px, {profile.epochs} epochs, MFAR, "
        f"ResNet-18, seed {args.seed}, data seed {args.data_seed}"
    )
    print(df.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"generate (render + JPEG) {render_s:.1f} s; probe (cache + train + validate) {probe_s:.1f} s")
    bad = df[~df["learnable"]]["measure"].tolist()
    hot = df[df["saturated"]]["measure"].tolist()
    print(f"not learnable (< chance + {args.margin:g}): {', '.join(bad) or 'none'}")
    print(f"near the ceiling (> ceiling - {args.margin:g}): {', '.join(hot) or 'none'}")


if __name__ == "__main__":
    main()
