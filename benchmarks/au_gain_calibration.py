"""How the embedded study's AU gain was chosen: MFAR and the HOG read-out probe at several gains.

For each AU gain (the renderer's ``au_gain``; 1 = FACS-sized movements, the ``hard`` variant)
the cpu profile's data set is generated (cached under ``data/embedded/``), then, on its held-out
test subjects: the HOG read-out probe (:func:`affectlib.data.difficulty.readout_probe`), and MFAR
(Gera et al. 2022, the baseline) trained exactly as notebook 03 trains its MFAR row (its budget:
compact network, 48 px, every 2nd training frame, 4 epochs; ``--init identity``: from the
embedded identity pretraining, as the row starts; ``none``: from scratch) for each seed, with
its epoch selected on validation. Printed per gain: chance, the probe's test scores, MFAR's test
mean over seeds with its 95% interval, and the interval's lower end minus chance.

Only the baseline method and the probe are run: the gain is an instrument setting, never chosen
by comparing methods. The choice for the cpu profile (README, "How learnable"): the smallest gain
at which MFAR's overall clears twice chance within notebook 03's budget. Printed beside it, a
stricter bar fixed before the runs: MFAR's interval clears every task's chance by ``--margin``
(default 0.05, about the largest drop from MFAR that SS-MFAR's Table 1 reports for a task: a row
that much weaker than the baseline would still be seen above chance).

    python benchmarks/au_gain_calibration.py [--gains 1 2 3] [--seeds 0 1 2] [--init identity] \
        [--epochs 6] [--set batch_size=32] [--no-probe] [--no-weak-view]

What it showed on 2 cores (seeds 0-2, test split; chance: expression F1 0.126, AU F1 0.184, VA
0.000, overall 0.310), MFAR mean [95% interval]:

- gain 2, notebook 03's budget (4 epochs, batch 64; 65 s for 3 runs): expression F1 0.202
  [0.143, 0.261], AU F1 0.353 [0.333, 0.373], VA 0.299 [0.216, 0.381], overall 0.853 [0.750,
  0.957]; probe: expression F1 0.414, AU F1 0.537, VA 0.343. Equal to notebook 03's MFAR row.
- gain 3, same budget: expression F1 0.189 [0.182, 0.197], AU F1 0.359, VA 0.297, overall 0.845;
  probe: expression F1 0.451, AU F1 0.538, VA 0.361. A larger gain helps the probe, not MFAR.
- gain 2, 6 epochs (96 s): expression F1 0.222 [0.159, 0.285], overall 0.875 [0.651, 1.098].
- gain 2, batch 32 (74 s): expression F1 0.179, overall 0.745; learning rate 3e-3 for the
  backbone (66 s): expression F1 0.162 [0.034, 0.291], overall 0.689.
- two runs side by side with one thread each (``AFFECTLIB_PARALLEL_RUNS=2``): 39 s each, against
  21.7 s per run alone with two threads: 10% more runs per hour.

No setting within notebook 03's budget meets the stricter bar: MFAR's expression score is limited by
its 180 training steps (7 of its 9 runs at 4 epochs select the last), not by the AUs'
visibility, which the probe reads at either gain. The gain stays 2.

Measured later with the same script and MFAR alone (seeds 0-2, gain 2, test split):

- 12 epochs (187 s for 3 runs): expression F1 0.238 [0.134, 0.341], AU F1 0.347 [0.330, 0.364],
  overall 0.923 [0.723, 1.123]. Three times the steps leave AU F1 where 4 epochs put it: its
  per-AU ROC AUC is 0.57-0.58 for AU1 and AU2 (the probe's F1 0.64-0.76), so more steps alone do
  not close the gap to the probe.
- 240 / 120 / 120 subjects of 24 frames (the same frame count, three times the videos;
  ``--set n_train_subjects=240 --set n_val_subjects=120 --set n_test_subjects=120 --set
  frames_per_video=24``): expression F1 0.139 [0.050, 0.229], AU F1 0.362, overall 0.739.
- from scratch (``--init none``): expression F1 0.222 [0.082, 0.363], AU F1 0.345; without
  dropout: expression F1 0.241 [0.130, 0.351], AU F1 0.351.
- after the weak view became SS-MFAR's public code's crop (``augment.weak``: 8 px of padding
  at 224 on half the images, 2 px at 48; before: 1/8 of the side on every image), notebook 03's
  budget (67 s): expression F1 0.270 [0.091, 0.449] (per seed 0.221, 0.353, 0.236), AU F1
  0.338 [0.306, 0.371], VA 0.298, overall 0.907 [0.490, 1.324]. The fidelity fix raised the
  mean expression score; three seeds still leave its interval wide.
- is the brows' blindness the weak view's doing (a 2 px shift could mask a brow's 1-3 px rise
  for a reader of absolute position)? ``--no-weak-view`` (no crop, no flip; 65 s for 3 runs):
  expression F1 0.282 [0.192, 0.372], AU F1 0.349 [0.298, 0.400], overall 0.918 [0.663, 1.173];
  per-AU test ROC AUC, mean of 3 seeds: AU1 0.595, AU2 0.525, AU4 0.548 (with the weak view, in
  notebook 03's MFAR runs: 0.575, 0.548, 0.601). No: without any augmentation the CNN reads the
  brows no better. Notebook 03's per-AU figure shows what MFAR does instead: on AU1, AU2, AU4,
  AU6, AU23 and AU26 every method sits at the F1 of calling the AU on for every face.

Why, then, does MFAR miss the brows the probe reads? Notebook 01's AU read-out (MFAR's network and
budget on its AU loss alone) reads them no better, and ``benchmarks/au_recipe_ablation.py`` shows
that the paper's training recipe at this budget, not the faces, is what costs them.

A benchmark, not a test: three seeds are three draws of one small budget.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import time
from pathlib import Path

import pandas as pd

from affectlib import profiles, stats
from affectlib.data import augment, difficulty, generate
from affectlib.studies import ssmfar

WORK = Path(__file__).resolve().parents[1] / "build" / "au_gain_calibration"
TASKS = ("expr_f1", "au_f1", "va")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gains", type=float, nargs="+", default=[1.0, 2.0, 3.0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--init", default="identity", choices=("identity", "none"))
    ap.add_argument("--epochs", type=int, default=0, help="0: notebook 03's budget")
    ap.add_argument("--frame-stride", type=int, default=0, help="0: notebook 03's budget")
    ap.add_argument("--margin", type=float, default=0.05)
    ap.add_argument("--no-probe", action="store_true", help="MFAR only (the probe takes minutes)")
    ap.add_argument(
        "--no-weak-view",
        action="store_true",
        help="train on the images as they are (augment.weak with no crop and no flip)",
    )
    ap.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a profile override"
    )
    args = ap.parse_args()
    if args.no_weak_view:  # the training loop reads the views from the module at every step
        augment.weak = functools.partial(augment.weak, crop_p=0.0, flip_p=0.0)
    base = profiles.get(args.profile, **dict(profiles.parse_override(s) for s in args.set))
    plan = ssmfar.budget(base, epochs=args.epochs, frame_stride=args.frame_stride)
    row = ssmfar.table1_row("mfar")
    verdicts = []
    for gain in args.gains:
        p = base.replace(au_gain=gain)
        t0 = time.perf_counter()
        root = generate.ensure(p, 0)
        t_data = time.perf_counter() - t0
        truth = difficulty.load_truth(root)
        chance = difficulty.chance_scores(truth, "test", seed=0).set_index("measure")["chance"]
        probe = None
        if not args.no_probe:
            probe = difficulty.readout_probe(root, split="test", size=plan.image_size)
            probe = probe.set_index("measure")["probe"]
        run_p = p.replace(image_size=plan.image_size, epochs=plan.epochs)
        t0 = time.perf_counter()
        init = "none" if args.init == "none" else row.init
        weights = ssmfar.start_weights(
            [init], run_p.replace(epochs=plan.pretrain_epochs), root, {}, seed=0
        )
        t_pre = time.perf_counter() - t0
        sub = ssmfar.frame_subset(root, plan.frame_stride, val_stride=plan.val_stride)
        records = []
        for seed in args.seeds:
            out = WORK / f"gain{gain:g}-{init}-s{seed}-{'-'.join(args.set)}"
            shutil.rmtree(out, ignore_errors=True)
            records.append(
                ssmfar.run_one(
                    out,
                    method="mfar",
                    row="MFAR",
                    profile=ssmfar.run_profile(
                        ssmfar.Table1Row("mfar", "MFAR", init), run_p, weights
                    ),
                    seed=seed,
                    data_root=sub,
                )
            )
        runs = pd.DataFrame(records)
        wall = runs["wall_s"].sum()
        print(
            f"\nAU gain {gain:g} (nuisance {p.nuisance:g}), MFAR from {init}, {plan.epochs} epochs, "
            f"frame stride {plan.frame_stride}, batch {p.batch_size}, {args.set}: data {t_data:.0f} s, pretraining {t_pre:.0f} s, "
            f"{len(runs)} runs {wall:.0f} s"
        )
        print(
            f"{'measure':>8} {'chance':>7} {'probe':>7} {'MFAR':>7} {'lo':>7} {'hi':>7} {'lo-bar':>7}"
        )
        clears = True
        for k in (*TASKS, "overall"):
            m, lo, hi = stats.mean_ci(runs[k])
            bar = 2 * chance[k] if k == "overall" else chance[k] + args.margin
            clears &= bool(lo > bar)
            pr = f"{probe[k]:7.3f}" if probe is not None and k in probe.index else f"{'':>7}"
            print(f"{k:>8} {chance[k]:7.3f} {pr} {m:7.3f} {lo:7.3f} {hi:7.3f} {lo - bar:+7.3f}")
        print(
            "per seed:", runs[["seed", *TASKS, "overall", "epoch"]].round(3).to_string(index=False)
        )
        verdicts.append((gain, clears))
    print()
    for gain, clears in verdicts:
        print(f"gain {gain:g}: MFAR {'clears' if clears else 'does not clear'} the stricter bar")


if __name__ == "__main__":
    main()
