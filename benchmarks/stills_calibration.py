"""How the still-image sets' nuisance was chosen: notebook 04's single-task baseline at several levels.

The still-image sets (AffectNet, EmotioNet, RAF-DB, identities) are rendered with the profile's
``stills_nuisance`` times its ``nuisance`` (pose, light, occlusion, blur, noise). For each level
the cpu profile's data set is generated (cached under ``data/embedded/``), then notebook 04's
single-task baseline (Kollias et al. 2024, "ST": one network per task, ``nc-mt`` on the
AffectNet-format expressions, another on the EmotioNet-format AUs; compact network, notebook 04's
budget) is trained for each seed with its epoch selected on validation, and scored on the held-out
test images. Printed per level and seed: the expression's average accuracy (its label-blind floor,
1/7, is a constant prediction) and macro F1, the AU F1 (0: no AU predicted), and the runs at
either floor.

Only the baseline is run: the level, the starting weights (``--init``) and the training images
(``--n-train``) are instrument and budget settings, never chosen by comparing methods. What it
showed for the cpu profile (README, "How learnable"): from scratch on 600 images, ST sat at a
floor at every level tried (1.25, 1.0, 0.75), so the level stays 1.25; from the identity
pretraining on 1,200 images per set, no ST run did, which is notebook 04's budget.

    python benchmarks/stills_calibration.py [--levels 1.25 1.0 0.75] [--seeds 0 1 2] \
        [--init none|identity] [--n-train 600] [--n-au N] [--epochs 5] [--arms ST "NC MT"]

Notebook 04's set size on the cpu profile (README, "How learnable"; five seeds, identity
pretraining, level 1.25, ST and NC MT): ``--init identity --levels 1.25 --seeds 0 1 2 3 4
--arms ST "NC MT"`` with ``--n-train 1200`` (notebook 04's), ``--n-train 1800``,
``--n-train 2400`` (all 2,091 AffectNet-format basic-expression training images, 2,400
EmotioNet-format ones), ``--n-train 2400 --epochs 4`` and ``--n-train 1200 --epochs 10``.

A benchmark, not a test: three seeds are three draws of one small budget.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import pandas as pd

from affectlib import profiles
from affectlib.data import generate
from affectlib.studies import kollias


def notebook04_study(
    base, *, image_size: int = 48, batch_size: int = 32, epochs: int = 5, weights=None
) -> kollias.StudyConfig:
    """Notebook 04's training settings on profile ``base`` (its learning rates, a compact head
    started fresh), with ``weights`` (backbone -> file) as the starting weights."""
    return kollias.StudyConfig.from_profile(
        base,
        image_size=image_size,
        batch_size=batch_size,
        epochs=epochs,
        lr_backbone=1e-3,
        lr_heads=1e-3,
        weights=weights,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", type=float, nargs="+", default=[1.25, 1.0, 0.75])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--n-train", type=int, default=600, help="training images per set (nb 04)")
    ap.add_argument(
        "--n-au", type=int, default=None, help="EmotioNet-format ones (default: --n-train)"
    )
    ap.add_argument(
        "--arms",
        nargs="+",
        default=["ST"],
        choices=("ST", "NC MT"),
        help="notebook 04's baselines to train: ST (single-task) and/or NC MT (uncoupled)",
    )
    ap.add_argument("--n-val", type=int, default=200)
    ap.add_argument(
        "--max-parallel", type=int, default=2, help="runs side by side, as notebook 04 (cpu: 2)"
    )
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=48)
    ap.add_argument("--backbone", default="compact")
    ap.add_argument(
        "--init",
        default="none",
        choices=("none", "identity"),
        help="starting weights: none (from scratch) or the embedded identity pretraining",
    )
    ap.add_argument("--pretrain-epochs", type=int, default=10)
    args = ap.parse_args()

    base = profiles.get(args.profile)
    study = notebook04_study(
        base, image_size=args.image_size, batch_size=args.batch_size, epochs=args.epochs
    )
    plan = pd.DataFrame(
        {"setting": "affectnet+emotionet", "backbone": args.backbone, "arm": args.arms}
    )
    n_au = args.n_train if args.n_au is None else args.n_au
    rows = []
    for level in args.levels:
        p = base.replace(stills_nuisance=level)
        t0 = time.perf_counter()
        root = generate.ensure(p, 0)
        gen_s = time.perf_counter() - t0
        weights = kollias.start_weights(
            args.init,
            [args.backbone],
            p.replace(image_size=args.image_size),
            root,
            epochs=args.pretrain_epochs,
        )
        setting = kollias.affectnet_emotionet(
            root, n_expr=args.n_train, n_au=n_au, n_val=args.n_val, seed=0
        )
        t0 = time.perf_counter()
        runs = kollias.run_study(
            {setting.name: setting},
            plan,
            {},
            dataclasses.replace(study, weights=weights),
            args.seeds,
            progress=False,
            executor="pool" if args.max_parallel > 1 else "local",
            max_parallel=args.max_parallel,
        )
        wall = time.perf_counter() - t0
        for r in runs.itertuples():
            rows.append(
                {
                    "stills_nuisance": level,
                    "init": args.init,
                    "arm": r.arm,
                    "seed": r.seed,
                    "expr_aa": r.expr_aa,
                    "expr_f1": r.expr_f1,
                    "au_f1": r.au_f1,
                    "expr_floor": abs(r.expr_aa - 1 / 7) < 1e-6,
                    "au_floor": r.au_f1 <= 0,
                }
            )
        print(f"stills_nuisance {level:g}: data {gen_s:.0f} s, {len(runs)} runs {wall:.0f} s")
        print(pd.DataFrame(rows[-len(runs) :]).round(4).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    summary = table.groupby(["stills_nuisance", "arm"], sort=False).agg(
        expr_aa=("expr_aa", "mean"),
        expr_f1=("expr_f1", "mean"),
        au_f1=("au_f1", "mean"),
        expr_floor=("expr_floor", "sum"),
        au_floor=("au_floor", "sum"),
    )
    print("\nmean over seeds and runs at a floor, per level and arm:")
    print(summary.round(4).to_string())


if __name__ == "__main__":
    main()
