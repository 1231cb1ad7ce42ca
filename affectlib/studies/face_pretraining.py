"""Notebook 07's study: face pretraining and low-label regimes (Bulat, Cheng, Yang, Garbett, Sanchez &
Tzimiropoulos, "Pre-training strategies and datasets for facial representation learning", ECCV
2022, supplementary Table 3).

The question: does self-supervised pretraining on unlabelled faces beat random and supervised
face-recognition initialisation, most of all when few labels are left?

- the data: :func:`affectnet_setting`, the AffectNet-format expression + valence-arousal set read
  by its real-format loader, its validation file split into validation and a held-out test part
  (other people);
- the label regimes: :func:`label_subsets`, one random subset of the training rows per fraction
  (100%, 10%, 2%), drawn once without looking at the labels (supplement §1.3) and reused for
  every initialisation; nested (2% inside 10% inside 100%), so the regimes differ by labels only;
- the initialisations: :data:`INITS` — random, supervised face recognition (CosFace, the paper's
  ``vggface``) and self-supervised SwAV (the paper's ``ours``), the latter two trained once and
  cached by :func:`affectlib.pretraining.pretrained_weights` on the same identity-set images;
  ImageNet (:data:`NOT_RUN`) needs weights we do not have;
- the runs: :func:`run_study` fine-tunes :class:`~affectlib.methods.pretrain.LinearAffectNet`
  with ``finetune-affect`` (cross entropy + RMSE + CCC, Adam with beta 0.5 / 0.99) for every
  (fraction, initialisation, seed) through :func:`affectlib.train.fit`, selects the epoch on
  validation and scores the test part with :func:`affect_scores`.

:mod:`affectlib.studies.face_pretraining_report` turns the runs into Table 3, the figure and the
verdicts.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from affectlib import distributed, metrics, models, pretraining, train
from affectlib.data import assembly, datasets, disfa
from affectlib.data.cache import ImageCache
from affectlib.labels import EXPR_MISSING, N_EXPR, VA_MISSING
from affectlib.methods.pretrain import FINETUNE_AFFECT, FINETUNE_AU_INTENSITY, LinearAffectNet
from affectlib.progress import bars_on

FRACTIONS = (1.0, 0.1, 0.02)  # supplement §1.3: 100%, 10%, 2% of the training labels
# our initialisations: key -> (pretraining source of affectlib.pretraining, or None: random)
INITS: dict[str, str | None] = {
    "random": None,
    "face recognition": "cosface",
    "self-supervised": "swav",
}
# the paper's row of each of ours (reference/bulat_table3_affectnet_pretraining.csv)
PAPER_ROW = {
    "imagenet": "imagenet",
    "random": "random",
    "face recognition": "vggface",
    "self-supervised": "self-supervised faces",
}
NOT_RUN = {
    "imagenet": "ImageNet weights are not available offline; the paper profile takes a local "
    "weights file by path (notebook parameter imagenet_weights)"
}
SSL = "self-supervised"
METRICS = (
    "accuracy",
    "valence_rmse",
    "valence_sagr",
    "valence_pcc",
    "valence_ccc",
    "arousal_rmse",
    "arousal_sagr",
    "arousal_pcc",
    "arousal_ccc",
)
LOWER_BETTER = ("valence_rmse", "arousal_rmse")
SELECT = "select"  # the validation score each run selects its epoch on


# --- data -----------------------------------------------------------------------------------------
def labelled(table: pd.DataFrame) -> pd.DataFrame:
    """Rows with an expression label or a valence-arousal label (the others feed no loss)."""
    has_e = table["expr"].to_numpy() != EXPR_MISSING
    has_v = (table["valence"].to_numpy() != VA_MISSING) & (
        table["arousal"].to_numpy() != VA_MISSING
    )
    return table[has_e | has_v].reset_index(drop=True)


def affectnet_setting(root: str | Path, *, n_val: int, seed: int) -> assembly.DataPart:
    """The AffectNet-format set under ``root`` (its real-format loader), every expression code the
    file carries (8 classes, AffectNet's Contempt as ABAW "Other"; None / Uncertain are
    unlabelled) and valence-arousal. Training: its training file's labelled rows. Its validation
    file is split once with ``seed``: ``n_val`` rows select each run's epoch, the rest are the
    held-out test part (other people: the still-image set draws a person per image)."""
    part = assembly.load_part(root, "affectnet", "affectnet")
    rows = labelled(part.validation)
    picked = np.zeros(len(rows), bool)
    if 0 < n_val < len(rows):
        picked[np.random.default_rng([seed, 19, 1]).choice(len(rows), n_val, replace=False)] = True
    else:
        raise ValueError(f"n_val must lie in (0, {len(rows)}), got {n_val}")
    return dataclasses.replace(
        part,
        train=labelled(part.train),
        validation=rows[picked].reset_index(drop=True),
        test=rows[~picked].reset_index(drop=True),
    )


def label_subsets(train_rows: pd.DataFrame, fractions: Sequence[float], seed: int) -> pd.DataFrame:
    """One subset of the training rows per fraction, drawn once with ``seed`` without reading a
    label (supplement §1.3: no class balancing) and reused by every initialisation: one random
    order of the rows, each fraction its first ``max(1, round(f * N))`` rows, so the subsets are
    nested. Columns: fraction, row (index into ``train_rows``), path; saved with the results."""
    n = len(train_rows)
    order = np.random.default_rng([seed, 19]).permutation(n)
    out = []
    for f in fractions:
        if not 0 < f <= 1:
            raise ValueError(f"fractions must lie in (0, 1], got {f}")
        rows = np.sort(order[: max(1, round(f * n))])
        out.append(
            pd.DataFrame({"fraction": f, "row": rows, "path": train_rows["path"].iloc[rows]})
        )
    return pd.concat(out, ignore_index=True)


def subset(train_rows: pd.DataFrame, subsets: pd.DataFrame, fraction: float) -> pd.DataFrame:
    """The training rows of ``fraction`` in :func:`label_subsets`' table."""
    rows = subsets.loc[np.isclose(subsets["fraction"], fraction), "row"].to_numpy()
    if len(rows) == 0:
        raise KeyError(
            f"no subset for fraction {fraction}; have {sorted(set(subsets['fraction']))}"
        )
    return train_rows.iloc[rows].reset_index(drop=True)


# --- scores ---------------------------------------------------------------------------------------
def affect_scores(pred: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Table 3's metrics of :func:`affectlib.train.predict`'s output: expression ``accuracy``
    over the rows with an expression label (argmax); per valence and arousal RMSE, SAGR, PCC and
    CCC (:mod:`affectlib.metrics`) over the rows with a VA label; ``select`` = (accuracy + mean
    CCC) / 2, what each run selects its epoch on. NaN where a task has no labelled row."""
    et, ep = pred["expr_true"], pred["expr_prob"].argmax(axis=1)
    has_e = et != EXPR_MISSING
    out = {"accuracy": float((et[has_e] == ep[has_e]).mean()) if has_e.any() else math.nan}
    va_t, va_p = pred["va_true"], pred["va_pred"]
    has_v = (va_t != VA_MISSING).all(axis=1)
    for d, name in enumerate(("valence", "arousal")):
        t, p = va_t[has_v, d], va_p[has_v, d]
        for m, fn in (("rmse", metrics.rmse), ("sagr", metrics.sagr), ("pcc", metrics.pcc),
                      ("ccc", metrics.ccc)):  # fmt: skip
            out[f"{name}_{m}"] = fn(t, p) if has_v.any() else math.nan
    out[SELECT] = (out["accuracy"] + (out["valence_ccc"] + out["arousal_ccc"]) / 2) / 2
    return out


def floors(train_rows: pd.DataFrame, test_rows: pd.DataFrame) -> dict[str, float]:
    """Label-blind predictors of ``train_rows`` scored on ``test_rows``: the majority training
    expression for every image (accuracy), the training mean of valence and arousal for every
    image (RMSE, SAGR; PCC and CCC of a constant are 0)."""
    e_train = train_rows["expr"].to_numpy()
    e_train = e_train[e_train != EXPR_MISSING]
    majority = np.bincount(e_train, minlength=N_EXPR).argmax() if len(e_train) else 0
    e_test = test_rows["expr"].to_numpy()
    e_test = e_test[e_test != EXPR_MISSING]
    out = {"accuracy": float((e_test == majority).mean()) if len(e_test) else math.nan}
    for name in ("valence", "arousal"):
        tr = train_rows[name].to_numpy()
        tr = tr[tr != VA_MISSING]
        te = test_rows[name].to_numpy()
        te = te[te != VA_MISSING]
        const = np.full(len(te), tr.mean() if len(tr) else 0.0)
        out[f"{name}_rmse"] = metrics.rmse(te, const)
        out[f"{name}_sagr"] = metrics.sagr(te, const)
        out[f"{name}_pcc"] = 0.0
        out[f"{name}_ccc"] = 0.0
    return out


# --- runs -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StudyConfig:
    """Fine-tuning settings shared by every run.

    image_size, device, precision, schedule, lr_backbone, lr_heads: as
    :class:`affectlib.train.TrainConfig`; betas: Adam's (supplement §1.2: 0.5, 0.99); batch_size: images per step (the paper: 32),
    lowered for a subset smaller than three batches (:func:`budget`); epochs: epochs at 100% of the
    labels; min_steps: the fewest optimiser steps any regime gets (:func:`budget`: a smaller
    subset trains for more epochs, as the paper's 60-240); model: the network
    (:meth:`affectlib.models.ModelConfig.from_profile`); weights: init -> backbone file (None:
    random), see :data:`INITS`.
    """

    image_size: int
    batch_size: int
    epochs: int
    min_steps: int
    lr_backbone: float
    lr_heads: float
    betas: tuple[float, float] = (0.5, 0.99)
    device: str = "cpu"
    schedule: str = "cosine"
    model: models.ModelConfig = dataclasses.field(default_factory=models.ModelConfig)
    weights: Mapping[str, str | None] = dataclasses.field(default_factory=dict)
    precision: str = "auto"


def budget(n_rows: int, cfg: StudyConfig) -> tuple[int, int]:
    """(batch size, epochs) for a training subset of ``n_rows``: the configured batch, or
    ``n_rows // 3`` (at least 2) when the subset holds fewer than three batches; ``cfg.epochs``,
    raised until the run takes at least ``cfg.min_steps`` optimiser steps. The same for every
    initialisation: the budget depends on the subset's size only. Fewer than 2 rows: an error."""
    if n_rows < 2:
        raise ValueError(f"a training subset of {n_rows} row(s) cannot make a batch of 2")
    batch = cfg.batch_size if n_rows >= 3 * cfg.batch_size else max(2, n_rows // 3)
    steps = max(1, n_rows // batch)
    return batch, max(cfg.epochs, math.ceil(cfg.min_steps / steps))


def start_weights(profile, root: str | Path, *, epochs: Mapping[str, int], seed: int = 0,
                  progress: bool = False) -> dict[str, str | None]:  # fmt: skip
    """:attr:`StudyConfig.weights`: each pretrained initialisation of :data:`INITS` from
    :func:`affectlib.pretraining.pretrained_weights` (cached; trained now when missing) under
    ``profile`` with ``epochs[source]`` epochs on the embedded identity set at ``root``; random:
    None."""
    return {
        init: None
        if source is None
        else str(
            pretraining.pretrained_weights(
                source, profile.replace(epochs=epochs[source]), root, seed=seed, progress=progress
            )
        )
        for init, source in INITS.items()
    }


def run_one(
    part: assembly.DataPart,
    train_rows: pd.DataFrame,
    init: str,
    seed: int,
    cfg: StudyConfig,
    out: Path,
) -> dict[str, Any]:
    """One fine-tuning run: ``train_rows`` for training, the part's validation rows to select
    the epoch, its test rows scored once. Returns the test scores, the budget and the wall time."""
    batch, epochs = budget(len(train_rows), cfg)
    data, data_record = assembly.build_multi_data(
        [dataclasses.replace(part, train=train_rows)],
        image_size=cfg.image_size,
        batch_size=batch,
        seed=seed,
        au_columns=(),
        score=affect_scores,
        select=SELECT,
        progress=False,
    )
    model_cfg = dataclasses.replace(cfg.model, n_expr=N_EXPR, weights=cfg.weights.get(init))
    distributed.seed_everything(seed)  # the initialisation of the head (and of random trunks)
    model = LinearAffectNet(model_cfg)
    tcfg = train.TrainConfig.for_study(
        epochs=epochs,
        lr_backbone=cfg.lr_backbone,
        lr_heads=cfg.lr_heads,
        seed=seed,
        device=cfg.device,
        precision=cfg.precision,
        schedule=cfg.schedule,
        betas=tuple(cfg.betas),
    )
    record = {
        "method": FINETUNE_AFFECT.name,
        "options": {},
        "seed": seed,
        "init": init,
        "model": dataclasses.asdict(model_cfg),
        "train": tcfg.record(),
        "data": data_record,
    }
    t0 = time.perf_counter()
    result = train.fit(model, FINETUNE_AFFECT, data, tcfg, out, record)
    test = {k[5:]: v for k, v in result.metrics.items() if k.startswith("test_")}
    return {
        **{m: test[m] for m in METRICS},
        "val_select": result.metrics[SELECT],
        "epoch": result.metrics["epoch"],
        "epochs": epochs,
        "batch_size": batch,
        "train_rows": len(train_rows),
        "wall_s": time.perf_counter() - t0,
    }


def run_study(
    part: assembly.DataPart,
    subsets: pd.DataFrame,
    inits: Sequence[str],
    seeds: Sequence[int],
    cfg: StudyConfig,
    runs_dir: str | Path | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Every (fraction, initialisation, seed): one row with the test scores of
    :func:`affect_scores`, the budget and the wall time. All initialisations of a fraction train
    on the same subset with the same seeds (the head's initialisation, data order and augmentation
    are the seed's), so comparisons pair by seed. ``runs_dir``: where each run's files go (None: a
    temporary folder, removed)."""
    unknown = sorted(set(inits) - set(INITS) - set(cfg.weights))
    if unknown:
        raise KeyError(f"unknown initialisations {unknown}; known: {', '.join(INITS)}")
    fractions = list(dict.fromkeys(subsets["fraction"]))
    scratch = tempfile.TemporaryDirectory(prefix="face-pretraining-") if runs_dir is None else None
    root = Path(scratch.name if scratch else runs_dir)
    rows = []
    bar = tqdm(
        total=len(fractions) * len(inits) * len(seeds),
        desc="fine-tuning",
        unit="run",
        disable=not bars_on(progress),
    )
    try:
        for f in fractions:
            train_rows = subset(part.train, subsets, f)
            for init in inits:
                for seed in seeds:
                    where = root / f"{f:g}" / init.replace(" ", "-") / f"seed{seed}"
                    scores = run_one(part, train_rows, init, seed, cfg, where)
                    rows.append({"fraction": f, "init": init, "seed": seed, **scores})
                    bar.update()
    finally:
        bar.close()
        if scratch is not None:
            scratch.cleanup()
    return pd.DataFrame(rows)


# --- Table 1: AU intensity on the DISFA-format export ---------------------------------------------
@dataclass(frozen=True)
class DisfaSetting:
    """The DISFA-format set, read by its loader: per split the accepted frames, their intensities
    (N, 12) and the image cache at the study's size."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    intensity: Mapping[str, np.ndarray]
    caches: Mapping[str, Any]
    rows_read: int
    rejected: int


def disfa_setting(root: str | Path, *, image_size: int, n_val: int, seed: int) -> DisfaSetting:
    """The embedded set's DISFA-format export (:func:`affectlib.data.disfa.export`, written once)
    read back by :func:`affectlib.data.disfa.load`; its subject-disjoint splits; ``n_val``
    validation frames drawn with ``seed`` (each run scores them every epoch), every test frame."""
    folder = disfa.export(root)
    loaded = disfa.load(folder)
    table, level = loaded.table, loaded.intensity
    parts, inten, caches = {}, {}, {}
    for split in ("train", "validation", "test"):
        rows = np.flatnonzero(table["split"].to_numpy() == split)
        if split == "validation" and 0 < n_val < len(rows):
            rows = np.sort(np.random.default_rng([seed, 19, 2]).choice(rows, n_val, replace=False))
        if len(rows) == 0:
            raise ValueError(f"{folder}: no {split!r} frame")
        parts[split] = table.iloc[rows].reset_index(drop=True)
        inten[split] = level[rows]
        caches[split] = ImageCache.build(
            parts[split], folder / disfa.IMAGES, size=image_size, progress=False
        )
    return DisfaSetting(parts["train"], parts["validation"], parts["test"], inten, caches,
                        loaded.rows_read, loaded.rejected)  # fmt: skip


def intensity_scores(intensity: np.ndarray):
    """The score function of a loader over frames with these true ``intensity`` (N, 12): the
    network's AU probabilities times 5 are its intensities; ``icc`` is the mean ICC(3,1) over AUs
    (:func:`affectlib.metrics.per_au_icc`; an AU constant in the split is NaN and left out),
    ``icc_AU<n>`` per AU. Rows are matched by the predictions' ``index``."""

    def score(pred: Mapping[str, np.ndarray]) -> dict[str, float]:
        icc = metrics.per_au_icc(intensity[pred["index"]], disfa.MAX_INTENSITY * pred["au_prob"])
        mean = float(np.nanmean(icc)) if np.isfinite(icc).any() else math.nan
        return {
            "icc": mean,
            **{f"icc_{c}": float(v) for c, v in zip(disfa.AU_COLUMNS, icc, strict=True)},
        }

    return score


def run_au_one(
    setting: DisfaSetting, rows: np.ndarray, init: str, seed: int, cfg: StudyConfig, out: Path
) -> dict[str, Any]:
    """One AU-intensity fine-tuning run on the training frames ``rows``: the trunk of ``init``
    with a fresh linear AU head (:class:`~affectlib.models.MultiTaskNet`'s), the epoch selected
    on the validation frames' mean ICC, then every test frame scored once."""
    batch, epochs = budget(len(rows), cfg)
    rows = np.sort(rows)
    train_table = setting.train.iloc[rows].reset_index(drop=True)
    # the subset's images, copied out of the training cache (few: it is a low-label regime)
    train_cache = np.ascontiguousarray(setting.caches["train"].images[rows])
    loaders = {
        "train": disfa.IntensityLoader(train_table, train_cache,
                                       datasets.RandomSampler(len(rows), seed), batch,
                                       setting.intensity["train"][rows], drop_last=True),
        "validation": disfa.IntensityLoader(setting.validation, setting.caches["validation"],
                                            datasets.SequentialSampler(len(setting.validation)),
                                            64, setting.intensity["validation"]),
        "test": disfa.IntensityLoader(setting.test, setting.caches["test"],
                                      datasets.SequentialSampler(len(setting.test)), 64,
                                      setting.intensity["test"]),
    }  # fmt: skip
    data = assembly.TrainData(
        train=loaders["train"],
        val=loaders["validation"],
        train_table=train_table,
        source={"format": "disfa", "train_rows": len(rows)},
        score=intensity_scores(setting.intensity["validation"]),
        select="icc",
    )
    model_cfg = dataclasses.replace(
        cfg.model, n_au=len(disfa.AU_COLUMNS), weights=cfg.weights.get(init)
    )
    distributed.seed_everything(seed)
    model = models.build_model(model_cfg)
    tcfg = train.TrainConfig.for_study(
        epochs=epochs,
        lr_backbone=cfg.lr_backbone,
        lr_heads=cfg.lr_heads,
        seed=seed,
        device=cfg.device,
        precision=cfg.precision,
        schedule=cfg.schedule,
        betas=tuple(cfg.betas),
    )
    record = {"method": FINETUNE_AU_INTENSITY.name, "options": {}, "seed": seed, "init": init,
              "model": dataclasses.asdict(model_cfg), "train": tcfg.record(),
              "data": data.source}  # fmt: skip
    t0 = time.perf_counter()
    result = train.fit(model, FINETUNE_AU_INTENSITY, data, tcfg, out, record)
    test_pred = train.predict(model, loaders["test"], torch.device(cfg.device), cfg.precision)
    test = intensity_scores(setting.intensity["test"])(test_pred)
    return {**test, "val_icc": result.metrics["icc"], "epoch": result.metrics["epoch"],
            "epochs": epochs, "batch_size": batch, "train_rows": len(rows),
            "wall_s": time.perf_counter() - t0}  # fmt: skip


def run_au_study(
    setting: DisfaSetting,
    rows: np.ndarray,
    inits: Sequence[str],
    seeds: Sequence[int],
    cfg: StudyConfig,
    runs_dir: str | Path | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Every (initialisation, seed) on the training frames ``rows`` (one subset, drawn once):
    one row with the test ICC per AU and their mean, the budget and the wall time."""
    scratch = (
        tempfile.TemporaryDirectory(prefix="face-pretraining-au-") if runs_dir is None else None
    )
    root = Path(scratch.name if scratch else runs_dir)
    out = []
    bar = tqdm(
        total=len(inits) * len(seeds),
        desc="AU intensity",
        unit="run",
        disable=not bars_on(progress),
    )
    try:
        for init in inits:
            for seed in seeds:
                where = root / "au" / init.replace(" ", "-") / f"seed{seed}"
                out.append({"init": init, "seed": seed,
                            **run_au_one(setting, rows, init, seed, cfg, where)})  # fmt: skip
                bar.update()
    finally:
        bar.close()
        if scratch is not None:
            scratch.cleanup()
    return pd.DataFrame(out)
