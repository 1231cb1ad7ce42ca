"""Notebook 03's study: the rows of SS-MFAR Table 1, their budget and data, and their runs.

- :data:`TABLE1`: the rows of SS-MFAR Table 1 (registered method, the paper's row name, backbone
  and starting weights);
- :func:`budget`: image size, epochs and the share of training frames of one run, per profile
  and the seeds of every row (the cpu profile trains 8 rows and the two arms of the positive
  control x 5 seeds + 2 pretrainings within twenty minutes on 2 cores);
- :func:`frame_subset`: the data root of every ``frame_stride``-th frame of each training video
  (consecutive frames are nearly the same image: striding keeps every subject at a fraction of
  the cost), every k-th validation frame (scored after each epoch), the test split whole;
- :func:`start_weights`: the weights file each initialisation source gives (a user's file, or the
  embedded pretraining of :mod:`affectlib.pretraining`);
- :func:`train_arms`: ``train.run`` of every (:class:`Arm`, seed), arms on any data, as one plan
  of :mod:`affectlib.executor`, one record per run; :func:`train_rows`: the same for Table 1
  rows on one data root; :func:`positive_control`: MFAR with fewer expression labels.

The tables, comparisons and figures are :mod:`affectlib.studies.ssmfar_report`.

Scores are SS-MFAR Eq. 10 on the held-out test split (the embedded set; on real data the
validation split, the papers' practice), at the epoch each run selects on validation:
``expr_f1`` (macro F1 of the 8 expressions), ``au_f1`` (mean F1 of the 12 AUs), ``va`` (mean CCC
of valence and arousal), ``overall`` (their sum).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from affectlib import checkpoints, pretraining, train
from affectlib.data import study, writers
from affectlib.executor import Job, run_plan
from affectlib.files import fingerprint_table, paper_table
from affectlib.labels import EXPR_MISSING

BUILD = Path(__file__).resolve().parents[2] / "build"
RUNS_DIR = BUILD / "runs" / "03_mfar_ssmfar"
SUBSETS_DIR = BUILD / "subsets"
SCORES = ("expr_f1", "au_f1", "va", "overall")
# SS-MFAR Table 1 as published (affectlib/reference/ssmfar_table1.csv): our score -> its column
PAPER_TABLE = "ssmfar_table1"
PAPER_COLUMNS = {"expr_f1": "exp_f1", "au_f1": "au_f1", "va": "va_score", "overall": "overall"}
# the paper's own baseline row (the challenge organisers' network, overall only)
PAPER_BASELINE = "Baseline"


def paper_table1() -> pd.DataFrame:
    """SS-MFAR Table 1 as published: one row per paper row (``row``), our score names as columns."""
    p = paper_table(PAPER_TABLE).rename(columns={v: k for k, v in PAPER_COLUMNS.items()})
    return p.rename(columns={"method": "row"})


# --- the rows of Table 1 ----------------------------------------------------------------------------
INIT_SOURCES = ("identity", "affectnet", "none")


@dataclass(frozen=True)
class Table1Row:
    """One row of SS-MFAR Table 1: the registered method, the paper's row name (as in
    ``affectlib/reference/ssmfar_table1.csv``), the backbone and the weights it starts from:
    "identity" (face-recognition pretraining; the paper: MS-Celeb-1M), "affectnet" (expression +
    VA pretraining; the paper: AffectNet) or "none" (from scratch)."""

    method: str
    paper_row: str
    init: str
    backbone: str = "resnet18"


TABLE1: tuple[Table1Row, ...] = (
    Table1Row("mfar", "MFAR", "identity"),
    Table1Row("mfar-rs", "MFAR-RS", "identity"),
    Table1Row("ss-mfar", "SS-MFAR", "identity"),
    Table1Row("ss-mfar-rs", "SS-MFAR-RS", "identity"),
    Table1Row("ss-mfar-nokl", "SS-MFAR-NOKL", "identity"),
    Table1Row("ssp-mfar", "SSP-MFAR", "affectnet"),
    Table1Row("ssp-mfar-sa", "SSP-MFAR-SA", "affectnet"),
    Table1Row("ss-mfar-50", "SS-MFAR-50", "none", backbone="resnet50"),
)


def table1_row(method: str) -> Table1Row:
    """The Table 1 row trained by ``method``; the error lists the methods of the table."""
    for row in TABLE1:
        if row.method == method:
            return row
    raise KeyError(f"{method!r} is no row of Table 1; rows: {', '.join(r.method for r in TABLE1)}")


# --- budget and data ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    """What one run of notebook 03 costs: training ``image_size`` (px; the faces are rendered at
    the profile's size and resized when cached), ``epochs``, ``frame_stride`` (every k-th frame of
    each training video), ``val_stride`` (every k-th frame of each validation video: the split
    scored after every epoch to select one; the test split is always whole), the
    ``pretrain_epochs`` of the identity pretraining and ``affectnet_pretrain_epochs`` of the
    AffectNet-format one (0: ``pretrain_epochs``), ``deep_backbone``, the network of the SS-MFAR-50
    row (the paper's ResNet-50; where that does not fit the budget, the profile's own), and the
    training ``seeds`` of every row (empty: the profile's)."""

    image_size: int
    epochs: int
    frame_stride: int
    pretrain_epochs: int
    val_stride: int = 1
    affectnet_pretrain_epochs: int = 0
    deep_backbone: str = "resnet50"
    seeds: tuple[int, ...] = ()


# cpu: on 2 cores the profile's compact network trains at ~490 img/s at 48 px in float32 (ResNet-18
# ~260; ~1,100 in bf16 on a CPU with AMX),
# an SS-MFAR step costs ~1.2x MFAR's (SSP-MFAR-SA ~2x). Each run: 4 epochs over every 2nd training
# frame (2,880 of 5,760, all 80 subjects) at 48 px, batch 64 (180 steps), validation on every 3rd
# frame after each epoch. The epochs were set on MFAR alone: at 3 epochs its best validation epoch
# was the last for every seed (not converged); over 6 epochs the best were epochs 3, 5 and 6, the
# score wandering between 0.6 and 0.85 from epoch 3 on. The seeds too: more epochs do not steady
# MFAR (test overall of seeds 0-2: 0.94-0.97 at 4 epochs, 0.71-1.01 at 6, 0.82-1.02 at 8; a run's
# score moves by ~0.05 with its CPU thread count alone), so the budget buys seeds, not steps: five
# paired seeds halve the 95% interval of three (t 2.78 / sqrt 5 against 4.30 / sqrt 3). They fit
# (8 rows + the positive control x 5 seeds + 2 pretrainings within ~19 minutes in float32) because
# two runs train side by side, one core each (profile.runs_at_once), on channels-last maps. Where
# the CPU computes bf16 in hardware (profile.precision "auto"), bf16 runs one at a time on both
# cores take 1.75x less time than those float32 pairs (five MFAR runs: 63 s against 110 s;
# README, "Precision"). The SS-MFAR-50 row's larger network does not fit: a ResNet-18 from
# scratch took 92 s per run and left the expression at chance (macro F1 0.07), so on cpu that row
# trains the compact network from scratch and tests the "no pretraining" half of the row only.
# The pretrainings were set on their own validation scores: the identity pretraining's
# identification accuracy (40 identities) is 0.43 / 0.74 / 0.81 / 0.87 after 2 / 6 / 10 / 16
# epochs in float32 (6 / 14 / 24 / 39 s; 0.96 after 10 in bf16). The AffectNet-format one's VA
# CCC levelled off at 0.41 from epoch 5 of 10 in float32, but in bf16 it had not left its plateau
# by epoch 10 (0.06: its cosine rate decays first); over 24 epochs in bf16 (44 s) it reaches 0.40
# at epoch 10 and levels off at 0.42-0.43 from epoch 17, and its expression F1 leaves chance at
# epoch 19 (0.17), so that pretraining runs 24 epochs. smoke: every frame (the class-balanced sampler
# needs a batch of labelled frames), one epoch, the profile's seed.
BUDGETS: dict[str, Budget] = {
    "smoke": Budget(image_size=32, epochs=1, frame_stride=1, pretrain_epochs=1),
    "cpu": Budget(
        image_size=48,
        epochs=4,
        frame_stride=2,
        pretrain_epochs=10,
        affectnet_pretrain_epochs=24,
        val_stride=3,
        deep_backbone="compact",
        seeds=(0, 1, 2, 3, 4),
    ),
}


def pretraining_epochs(plan: Budget) -> dict[str, int]:
    """Epochs of each embedded pretraining of ``plan``: source -> epochs."""
    return {
        "identity": plan.pretrain_epochs,
        "affectnet": plan.affectnet_pretrain_epochs or plan.pretrain_epochs,
    }


def budget(profile, **overrides: int) -> Budget:
    """This notebook's budget for ``profile``: :data:`BUDGETS`, or the profile's own image size and
    epochs with every frame (``paper``); an override of 0 keeps the default."""
    base = BUDGETS.get(profile.name, Budget(profile.image_size, profile.epochs, 1, profile.epochs))
    unknown = sorted(set(overrides) - set(Budget.__dataclass_fields__))
    if unknown:
        raise KeyError(
            f"unknown budget setting(s) {unknown}; known: {list(Budget.__dataclass_fields__)}"
        )
    bad = {k: v for k, v in overrides.items() if isinstance(v, int) and v < 0}
    if bad:
        raise ValueError(f"budget settings must be >= 0 (0: the default), got {bad}")
    return replace(base, **{k: v for k, v in overrides.items() if v})


def frame_subset(
    root: str | Path,
    stride: int,
    dest: str | Path | None = None,
    *,
    val_stride: int = 1,
    expr_share: float = 1.0,
    seed: int = 0,
) -> Path:
    """A data root holding every ``stride``-th frame (frames 1, 1 + stride, ...) of each training
    video of the ABAW MTL set at ``root``, every ``val_stride``-th frame of each validation video
    (the split that selects the epoch, scored after every epoch) and the whole test split;
    all 1 and ``expr_share`` 1: ``root`` itself.

    ``expr_share`` < 1 keeps the expression labels of that share of the training videos (drawn
    with ``seed``) and removes the others' (-1), as ABAW's videos miss labels whole: the positive
    control of notebook 03 (the same method with fewer labels must score lower).

    Written under ``dest`` (default ``<repo>/build/subsets/<labels fingerprint>-<settings>``) as
    the MTL annotation files, with a link to the original image folder, so ``train.run`` and the
    train command read it as any data root (``--data-root``)."""
    if stride < 1 or val_stride < 1:
        raise ValueError(f"frame strides must be >= 1, got {stride} and {val_stride}")
    if not 0 < expr_share <= 1:
        raise ValueError(f"expr_share must lie in (0, 1], got {expr_share}")
    root = Path(root)
    if stride == 1 and val_stride == 1 and expr_share == 1:
        return root
    table = study.load_dataset(root, "abaw-mtl").table
    step = table["split"].map({"train": stride, "validation": val_stride}).fillna(1).astype(int)
    keep = (table["frame"] - 1) % step == 0
    table = table[keep].copy()
    if expr_share < 1:
        videos = np.sort(table.loc[table["split"] == "train", "video"].unique())
        rng = np.random.default_rng([seed, 4])
        kept = rng.choice(videos, size=max(1, round(expr_share * len(videos))), replace=False)
        drop = (table["split"] == "train") & ~table["video"].isin(kept)
        table.loc[drop, "expr"] = EXPR_MISSING
    if dest is None:
        where = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]
        how = f"stride{stride}-val{val_stride}" + (
            f"-expr{expr_share:g}-s{seed}" if expr_share < 1 else ""
        )
        dest = SUBSETS_DIR / f"{fingerprint_table(table)}-{where}-{how}"
    dest = Path(dest)
    mtl = dest / "affwild2" / "annotations" / "MTL"
    for split, part in table.groupby("split"):
        if split in writers.MTL_FILES:
            writers.write_abaw_mtl(part, mtl / writers.MTL_FILES[split])
    link = dest / study.DEFAULT_IMAGES["abaw-mtl"]
    target = study.image_root(root, "abaw-mtl").resolve()
    if link.is_symlink() and link.resolve() != target:
        link.unlink()  # a link left by an earlier root of the same labels
    if not link.is_symlink():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target, target_is_directory=True)
    return dest


def start_weights(
    sources: Iterable[str],
    profile,
    root: str | Path | None,
    given: Mapping[str, str],
    *,
    seed: int = 0,
    progress: bool = False,
    epochs: Mapping[str, int] | None = None,
) -> dict[str, Path | None]:
    """The weights file of each initialisation source of :data:`TABLE1` ("none": None).

    ``given[source]`` (a user's file, e.g. real MS-Celeb-1M / AffectNet weights) wins; otherwise,
    on the embedded set at ``root``, the cached pretraining of :func:`pretraining.pretrained_weights`
    under ``profile`` (``epochs[source]`` epochs where given: :func:`pretraining_epochs`); on
    real data (``root`` None) a source without a file is an error."""
    out: dict[str, Path | None] = {}
    for source in dict.fromkeys(sources):
        if source not in INIT_SOURCES:
            raise ValueError(f"unknown source {source!r}; known: {', '.join(INIT_SOURCES)}")
        path = given.get(source) or ""
        if source == "none":
            out[source] = None
        elif path:
            if not Path(path).is_file():
                raise FileNotFoundError(f"{source} weights file not found: {path}")
            out[source] = Path(path)
        elif root is None:
            raise ValueError(
                f"no {source} weights: on real data give the file (notebook parameter "
                f"{source}_weights); only the embedded set carries a stand-in to pretrain on"
            )
        else:
            own = profile.replace(epochs=epochs[source]) if epochs and source in epochs else profile
            out[source] = pretraining.pretrained_weights(
                source, own, root, seed=seed, progress=progress
            )
    return out


def run_profile(
    row: Table1Row, profile, weights: Mapping[str, Path | None], deep_backbone: str = "resnet50"
):
    """The profile ``row`` trains under: its starting weights, and the profile's backbone, or
    for the row of the larger network (SS-MFAR-50, ``row.backbone`` "resnet50")
    ``deep_backbone`` (the budget's: the paper's ResNet-50; on the cpu profile the compact
    network itself, see :data:`BUDGETS`)."""
    w = weights[row.init]
    p = profile.replace(weights=str(w) if w is not None else None)
    if row.backbone == "resnet50":
        return p.replace(backbone=deep_backbone, extra={**p.extra, "backbone": deep_backbone})
    return p


# the positive control: MFAR against itself with the expression labels of a share of the
# training videos, a quarter (the control first planned) and a half (a weaker arm that does not
# start at the floor), each row's label -> share
CONTROL_SHARES = {"mfar-q25": 0.25, "mfar-q50": 0.5}
CONTROLS = tuple(("mfar", label) for label in CONTROL_SHARES)


# --- training -------------------------------------------------------------------------------------
def run_one(
    out_dir: Path,
    *,
    method: str,
    row: str,
    profile,
    seed: int,
    data_root: str | Path | None,
) -> dict:
    """One run of :func:`train_rows`: ``train.run`` into ``out_dir``, its record (the checkpoint is
    removed after a finished run, to spare the disk). An :mod:`affectlib.executor` job."""
    t0 = time.perf_counter()
    fit = train.run(method, profile, out_dir, seed, data_root=data_root, progress=False)
    wall = time.perf_counter() - t0
    (Path(out_dir) / checkpoints.CHECKPOINT).unlink(missing_ok=True)
    prov = json.loads((Path(out_dir) / "provenance.json").read_text())
    tested = f"test_{SCORES[0]}" in fit.metrics
    return {
        "method": method,
        "row": row,
        "seed": int(seed),
        "split": "test" if tested else "validation",
        **{k: float(fit.metrics[f"test_{k}" if tested else k]) for k in SCORES},
        **{f"val_{k}": float(fit.metrics[k]) for k in SCORES},
        "epoch": int(fit.metrics["epoch"]),
        "wall_s": wall,
        "img_per_s": prov.get("train_images_per_s"),
        "dir": str(out_dir),
    }


@dataclass(frozen=True)
class Arm:
    """One row of a training plan: a Table 1 row trained on ``data_root``; ``label`` names its runs
    (their ``method`` and folder) where the row's own method would not, e.g. a positive-control
    arm of MFAR on fewer labels, and ``title`` their ``row`` (default: the label, else the row's
    paper name)."""

    row: Table1Row
    data_root: str | Path | None
    label: str | None = None
    title: str | None = None


def train_arms(
    arms: Sequence[Arm],
    seeds: Sequence[int],
    profile,
    weights: Mapping[str, Path | None],
    runs_dir: str | Path | None = None,
    *,
    deep_backbone: str = "resnet50",
    executor: str = "local",
    max_parallel: int = 1,
    fresh: bool = False,
    progress: bool = False,
    log: Callable[[str], None] | None = print,
) -> pd.DataFrame:
    """Train every arm with every seed by :func:`affectlib.train.run`, each in
    ``runs_dir/<label or method>/seed<k>`` (default ``<repo>/build/runs/03_mfar_ssmfar/<profile>``),
    all as one plan of :func:`affectlib.executor.run_plan` on ``executor`` ("local", "pool" with
    ``max_parallel`` runs at once, "submitit"), so arms on different data share the workers: a run
    that finished there under the same configuration and code is not trained again (its stored
    record, wall time included, is returned; ``fresh``: train every run anew), an interrupted one
    continues from its checkpoint.

    One record per run, in (arm, seed) order whatever the backend: ``method`` (the arm's label, else
    its method), ``row`` (the arm's title, else its label, else the paper's name), ``seed``, the
    four scores on the reported split (``split``: "test" when the data has the held-out split, else
    "validation", the papers' practice), the same on validation at the selected epoch
    (``val_<score>``: optimistic, the epoch was chosen there), ``epoch`` (selected on validation
    overall), ``wall_s`` (the whole ``train.run`` call), ``img_per_s`` (training throughput),
    ``reused`` (True: a finished earlier run) and ``dir``."""
    runs_dir = Path(runs_dir) if runs_dir else RUNS_DIR / profile.name
    jobs, names = [], []
    for arm in arms:
        p = run_profile(arm.row, profile, weights, deep_backbone)
        name = arm.label or arm.row.method
        for seed in seeds:
            kwargs = {
                "method": arm.row.method,
                "row": arm.title or arm.label or arm.row.paper_row,
                "profile": p,
                "seed": int(seed),
                "data_root": arm.data_root,
            }
            jobs.append(Job(f"{name}/seed{seed}", runs_dir / name / f"seed{seed}", run_one, kwargs))
            names.append(name)
    records = run_plan(
        jobs, executor=executor, max_parallel=max_parallel, fresh=fresh, progress=progress
    )
    for name, r in zip(names, records, strict=True):
        r["method"] = name
        r.pop("job_wall_s", None)
        if log is not None:
            scores = ", ".join(f"{k} {r[k]:.3f}" for k in SCORES)
            again = " (finished earlier, reused)" if r["reused"] else ""
            log(
                f"{r['method']:>12} seed {r['seed']}: {r['split']} {scores} (epoch {r['epoch']}, "
                f"{r['wall_s']:.1f} s){again}"
            )
    return pd.DataFrame(records)


def train_rows(
    rows: Sequence[Table1Row],
    seeds: Sequence[int],
    profile,
    data_root: str | Path | None,
    weights: Mapping[str, Path | None],
    runs_dir: str | Path | None = None,
    **kwargs,
) -> pd.DataFrame:
    """:func:`train_arms` of every row on one ``data_root``, each run in
    ``runs_dir/<method>/seed<k>`` under the row's paper name; ``kwargs`` as there."""
    return train_arms(
        [Arm(r, data_root) for r in rows], seeds, profile, weights, runs_dir, **kwargs
    )


def positive_control(
    seeds: Sequence[int],
    profile,
    root: str | Path,
    weights: Mapping[str, Path | None],
    plan: Budget,
    *,
    data_seed: int = 0,
    **kwargs,
) -> pd.DataFrame:
    """The positive control's runs: MFAR, as its Table 1 row, on the same frames with the
    expression labels of only a share of the training videos (:func:`frame_subset`), one arm per
    entry of :data:`CONTROL_SHARES` (the one list the report reads too), all in one plan
    (:func:`train_arms`, ``kwargs`` as there), over the same ``seeds`` as the table, so that
    :func:`affectlib.studies.ssmfar_report.paired` compares each with MFAR (:data:`CONTROLS`)
    through the same machinery as the paper's claims. More labels must score higher: when the
    seeds cannot show that, they cannot show the paper's smaller differences either."""
    row = table1_row("mfar")
    arms = [
        Arm(
            row,
            frame_subset(
                root,
                plan.frame_stride,
                val_stride=plan.val_stride,
                expr_share=share,
                seed=data_seed,
            ),
            label,
            f"MFAR, {share:.0%} of expression labels",
        )
        for label, share in CONTROL_SHARES.items()
    ]
    return train_arms(arms, seeds, profile, weights, **kwargs)
