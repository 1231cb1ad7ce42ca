"""How the embedded study's AU gain was chosen: MFAR and the HOG read-out probe at several gains.

For each AU gain (the renderer's ``au_gain``; 1 = FACS-sized movements, the ``hard`` variant)
the cpu profile's data set is generated (cached under ``data/embedded/``), then, on its held-out
test subjects: the HOG read-out probe (:func:`affectlib.data.difficulty.readout_probe`), and MFAR
from scratch (Gera et al. 2022, the baseline; compact network, 48 px) trained for ``--epochs``
over every ``--frame-stride``-th training frame with its epoch selected on validation. Printed
per gain: chance, the probe's and MFAR's test scores, MFAR's validation overall per epoch (how
steady the score is from epoch to epoch) and the ratio of MFAR's overall to chance.

Only the baseline method and the probe are run: the gain is an instrument setting, never chosen
by comparing methods. The choice for the cpu profile (README, "How learnable"): the smallest gain
at which MFAR's overall clears twice chance within notebook 03's budget and stays steady.

    python benchmarks/au_gain_calibration.py [--gains 1 1.5 2] [--epochs 8] [--frame-stride 1]

A benchmark, not a test: one seed is one draw; compare gains with the same seed.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from affectlib import profiles, train
from affectlib.data import difficulty, generate
from affectlib.studies import ssmfar

WORK = Path(__file__).resolve().parents[1] / "build" / "au_gain_calibration"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gains", type=float, nargs="+", default=[1.0, 1.5, 2.0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--frame-stride", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    base = profiles.get(args.profile)
    plan = ssmfar.budget(base)
    for gain in args.gains:
        p = base.replace(au_gain=gain)
        t0 = time.perf_counter()
        root = generate.ensure(p, args.seed)
        probe = difficulty.readout_probe(root, split="test", size=plan.image_size)
        probe = probe.set_index("measure")
        t_probe = time.perf_counter() - t0
        sub = ssmfar.frame_subset(root, args.frame_stride, val_stride=plan.val_stride)
        out = WORK / f"gain{gain:g}"
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        run_p = p.replace(image_size=plan.image_size, epochs=args.epochs)
        fit = train.run("mfar", run_p, out, args.seed, data_root=sub, progress=False)
        t_mfar = time.perf_counter() - t0
        truth = difficulty.load_truth(root)
        chance = difficulty.chance_scores(truth, "test", seed=args.seed).set_index("measure")
        m = fit.metrics
        print(
            f"\nAU gain {gain:g} (nuisance {p.nuisance:g}); probe {t_probe:.0f} s, MFAR {t_mfar:.0f} s"
        )
        print(f"{'measure':>8} {'chance':>7} {'probe':>7} {'MFAR':>7}")
        for k in ("expr_f1", "au_f1", "va"):
            print(
                f"{k:>8} {chance.at[k, 'chance']:7.3f} {probe.at[k, 'probe']:7.3f} "
                f"{m['test_' + k]:7.3f}"
            )
        ratio = m["test_overall"] / chance.at["overall", "chance"]
        print(
            f" overall {chance.at['overall', 'chance']:7.3f} {'':>7} {m['test_overall']:7.3f}"
            f"  (MFAR / chance = {ratio:.2f}, epoch {m['epoch']} selected)"
        )
        steps = ", ".join(f"{v:.2f}" for v in fit.history["overall"])
        print(f"MFAR validation overall per epoch: {steps}")


if __name__ == "__main__":
    main()
