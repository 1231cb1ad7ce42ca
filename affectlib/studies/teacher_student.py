"""Notebook 05's study: the ABAW 2021 teacher-student paper (Vu, Beurton-Aimar & Marchand,
"Multitask multi-database emotion recognition", Tables 1 and 2), trained with the methods of
:mod:`affectlib.methods.teacher_student` on the three parts of :mod:`affectlib.data.three_parts`.

- :func:`budget`: the data sizes and training budget of a profile (chosen with the teacher alone);
- :func:`study_data`: the parts (Aff-Wild2-like per-task files, the ExpW- and AFEW-VA-format
  exports, the AffectNet-format set), the validation and held-out test frames;
- :func:`run_study`: per seed, the teacher on tasks {1, 2} and on {1, 2, 3} (Table 1, Eq. 7), then
  the student without (Eq. 9) and with (Eq. 10) the shared annotations, distilled from that
  seed's {1, 2, 3} teacher (Table 2); each run selects its epoch on validation and is scored on
  the subject-disjoint test split;
- :func:`study_scores`: the paper's metrics (§3.2): EXPR score ``0.67 F1 + 0.33 accuracy`` over
  the 7 basic expressions, CCC of valence and arousal, and ``select`` = the mean of the EXPR score
  and the mean CCC (what each run selects its epoch on; the paper names no selection score);
- :func:`floors`: the label-blind scores (majority class, class prior drawn at random, constant VA).

Table 3 (the CNN + GRU stage) is not run here.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from affectlib import distributed, metrics, models, train
from affectlib.data import datasets, embedded_expw_afew, three_parts
from affectlib.data.cache import ImageCache
from affectlib.labels import EXPR_MISSING, VA_MISSING
from affectlib.methods import get as get_method
from affectlib.methods import resolve_options
from affectlib.methods.teacher_student import add_teacher, outputs

N_BASIC = three_parts.N_BASIC
ARMS: dict[str, dict[str, Any]] = {
    # arm -> method, options, parts trained on, the paper's table and row
    "teacher {1,2}": {"method": "ts-teacher", "options": {}, "parts": (1, 2)},
    "teacher {1,2,3}": {"method": "ts-teacher", "options": {}, "parts": (1, 2, 3)},
    "student, no sharing": {
        "method": "ts-student",
        "options": {"sharing": False},
        "parts": (1, 2, 3),
    },
    "student, with sharing": {
        "method": "ts-student",
        "options": {"sharing": True},
        "parts": (1, 2, 3),
    },
}
PAPER_ROWS = {
    "teacher {1,2}": ("1 teacher CNN", "Multitask tasks {1;2}"),
    "teacher {1,2,3}": ("1 teacher CNN", "Multitask tasks {1;2;3}"),
    "student, no sharing": ("2 student CNN", "No sharing"),
    "student, with sharing": ("2 student CNN", "With sharing"),
}
SCORES = ("expr_score", "expr_f1", "expr_acc", "valence", "arousal", "va", "select")


@dataclass(frozen=True)
class Budget:
    """image_size; n_expw, n_clips, frames_per_clip: the ExpW / AFEW-VA exports; per_part: N
    images of each part in a batch; steps: batches per epoch; epochs: the most epochs of a run
    (the best on validation is kept); lr: Adam's rate (backbone and heads); backbone: the CNN
    (the paper's ResNet-50; the compact CNN of notebooks 03-04 on CPU)."""

    image_size: int
    n_expw: int
    n_clips: int
    frames_per_clip: int
    per_part: int
    steps: int
    epochs: int
    lr: float
    backbone: str = "compact"


BUDGETS = {
    # smoke: seconds; cpu: chosen with the {1, 2, 3} teacher alone (one seed, 5 epochs of 60
    # steps: its validation score levelled off after the 4th epoch), ~10 min for 12 runs on 2 cores;
    # paper: §3.1 (batch 64 in all, Adam 1e-4, at most 40 epochs), sizes of the real sets' scale
    "smoke": Budget(32, 48, 4, 12, 4, 3, 1, 1e-3),
    "cpu": Budget(48, 1500, 40, 40, 16, 60, 4, 1e-3),
    "gpu": Budget(112, 20000, 400, 60, 21, 500, 40, 1e-4, "resnet18"),
    "paper": Budget(224, 20000, 600, 60, 21, 2000, 40, 1e-4, "resnet50"),
}


def budget(profile, **overrides: Any) -> Budget:
    """This notebook's budget for ``profile`` (:data:`BUDGETS`, the cpu one for an unknown
    name); an override of 0 or None keeps the default."""
    base = BUDGETS.get(profile.name, BUDGETS["cpu"])
    unknown = sorted(set(overrides) - set(Budget.__dataclass_fields__))
    if unknown:
        raise KeyError(
            f"unknown budget setting(s) {unknown}; known: {list(Budget.__dataclass_fields__)}"
        )
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v})


@dataclass
class StudyData:
    """train: the three parts in one table (``part``, ``set`` columns), relative to ``root``;
    validation / test: the Aff-Wild2-like frames (7 basic expressions, VA), under ``images``;
    shared_videos: training videos with frames labelled for both EXPR and VA."""

    train: pd.DataFrame
    root: Path
    validation: pd.DataFrame
    test: pd.DataFrame
    images: Path
    shared_videos: int
    videos: int
    extra_root: Path


def study_data(
    root: str | Path, profile, b: Budget, seed: int = 0, extra_root: str | Path | None = None
) -> StudyData:
    """The study's data under the embedded (or real) root ``root``; ExpW and AFEW-VA from
    ``extra_root`` (``ExpW/label/label.lst``, ``ExpW/image/origin/``, ``AFEW-VA/``), by default
    the embedded exports, written (once) beside the embedded set for ``profile`` and ``seed``."""
    aw = three_parts.affwild2_tasks(root)
    if aw.test is None:
        raise ValueError(f"{root}: no held-out test split (abaw-mtl test file)")
    extra = Path(extra_root) if extra_root else None
    if extra is None:
        extra = embedded_expw_afew.ensure(
            profile, seed, n_expw=b.n_expw, n_clips=b.n_clips, frames_per_clip=b.frames_per_clip
        )
    parts = three_parts.training_parts(aw, root, extra)
    table, train_root = three_parts.combine(parts)
    return StudyData(
        table,
        train_root,
        aw.validation,
        aw.test,
        aw.images,
        aw.shared_videos(),
        int(aw.train["video"].nunique()),
        extra,
    )


def study_scores(pred: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The paper's metrics on :func:`affectlib.train.predict`'s output (§3.2): ``expr_score``
    = 0.67 macro F1 + 0.33 accuracy over the 7 basic classes (:func:`metrics.abaw2021_expr_score`),
    ``expr_f1``, ``expr_acc``; ``valence`` / ``arousal`` CCC and their mean ``va`` over the frames
    with VA; ``select`` the mean of ``expr_score`` and ``va``. NaN where nothing is labelled."""
    et, ep = pred["expr_true"], pred["expr_prob"].argmax(axis=1)
    lab = pred["va_true"][:, 0] != VA_MISSING
    vt, vp = pred["va_true"][lab], pred["va_pred"][lab]
    v = metrics.ccc(vt[:, 0], vp[:, 0]) if lab.sum() > 1 else float("nan")
    a = metrics.ccc(vt[:, 1], vp[:, 1]) if lab.sum() > 1 else float("nan")
    s = metrics.abaw2021_expr_score(et, ep, N_BASIC)
    return {
        "expr_score": s,
        "expr_f1": metrics.expr_f1(et, ep, N_BASIC),
        "expr_acc": metrics.expr_accuracy(et, ep),
        "valence": v,
        "arousal": a,
        "va": (v + a) / 2,
        "select": (s + (v + a) / 2) / 2,
    }


def floors(train_table: pd.DataFrame, test: pd.DataFrame, draws: int = 20) -> dict[str, float]:
    """Label-blind scores on ``test``: ``expr_majority`` (every frame the training set's most
    frequent basic class), ``expr_prior`` (classes drawn from the training prior, mean of
    ``draws`` draws, seeded), ``expr_floor`` the higher of the two; VA: a constant prediction has
    CCC 0 (``va_floor``)."""
    e = train_table["expr"].to_numpy()
    e = e[e != EXPR_MISSING]
    prior = np.bincount(e, minlength=N_BASIC) / max(len(e), 1)
    t = test["expr"].to_numpy()
    maj = metrics.abaw2021_expr_score(t, np.full(len(t), int(prior.argmax())), N_BASIC)
    rng = np.random.default_rng(0)
    drawn = [
        metrics.abaw2021_expr_score(t, rng.choice(N_BASIC, len(t), p=prior), N_BASIC)
        for _ in range(draws)
    ]
    return {
        "expr_majority": maj,
        "expr_prior": float(np.mean(drawn)),
        "expr_floor": max(maj, float(np.mean(drawn))),
        "va_floor": 0.0,
    }


@dataclass(frozen=True)
class StudyConfig:
    """Settings of every run: the budget, the model (``model``, its backbone's start ``weights``),
    the device and the learning-rate schedule."""

    budget: Budget
    model: models.ModelConfig
    device: str = "cpu"
    schedule: str = "cosine"


def _fit(
    data: StudyData,
    arm: str,
    seed: int,
    cfg: StudyConfig,
    out: Path,
    table: pd.DataFrame,
) -> tuple[torch.nn.Module, train.FitResult]:
    spec_arm = ARMS[arm]
    spec = get_method(spec_arm["method"])
    options = resolve_options(spec, spec_arm["options"])
    rows = table[table["part"].isin(spec_arm["parts"])].reset_index(drop=True)
    b = cfg.budget
    td, record = three_parts.build_part_data(
        rows,
        data.root,
        {"validation": (data.validation, data.images), "test": (data.test, data.images)},
        image_size=b.image_size,
        per_part=b.per_part,
        steps=b.steps,
        seed=seed,
        score=study_scores,
        select="select",
    )
    distributed.seed_everything(seed)
    with warnings.catch_warnings():
        # the start weights hold the backbone only: both heads start fresh in every run
        warnings.filterwarnings("ignore", r".*; missing \[expr_head", UserWarning)
        model = models.build_va_bins_model(
            dataclasses.replace(cfg.model, n_expr=N_BASIC), options["n_bins"]
        )
    tcfg = train.TrainConfig(
        epochs=b.epochs,
        lr_backbone=b.lr,
        lr_heads=b.lr,
        seed=seed,
        device=cfg.device,
        deterministic=cfg.device == "cpu",
        progress=False,
        checkpoints=False,
        schedule=cfg.schedule,
    )
    rec = {
        "method": spec.name,
        "arm": arm,
        "options": options,
        "seed": seed,
        "model": dataclasses.asdict(cfg.model),
        "train": tcfg.record(),
        "data": record,
    }
    return model, train.fit(model, spec, td, tcfg, out, rec)


def _teacher_logits(model, data: StudyData, cfg: StudyConfig) -> pd.DataFrame:
    """The training table with the teacher's logits on every (un-augmented) training image."""
    cache = ImageCache.build(data.train, data.root, size=cfg.budget.image_size, progress=False)
    loader = datasets.BatchLoader(
        data.train, cache, datasets.SequentialSampler(len(data.train)), 256, au_columns=()
    )
    out = outputs(model, loader, torch.device(cfg.device))
    return add_teacher(data.train, out["expr"], out["va_bins"])


def _reported(final: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(final[f"test_{k}"]) for k in SCORES}


def run_study(
    data: StudyData,
    cfg: StudyConfig,
    seeds: Sequence[int],
    runs_dir: str | Path | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[int, pd.DataFrame]]:
    """Every arm of :data:`ARMS` for every seed. Returns (runs, history, soft): ``runs`` one row
    per (arm, seed) with the test scores of the epoch selected on validation (:data:`SCORES`),
    ``epoch``, ``wall_s``, ``train_images``; ``history`` the per-epoch training losses (per part)
    and validation scores of every run; ``soft`` per seed the training table with the {1, 2, 3}
    teacher's logits (the student's soft labels)."""
    scratch = tempfile.TemporaryDirectory(prefix="ts-runs-") if runs_dir is None else None
    root = Path(scratch.name if scratch else runs_dir)
    rows, hist, soft = [], [], {}
    bar = tqdm(
        total=len(ARMS) * len(seeds), desc="teacher-student", unit="run", disable=not progress
    )
    try:
        for seed in seeds:
            teacher_table = None
            for arm in ARMS:
                t0 = time.perf_counter()
                table = data.train if arm.startswith("teacher") else teacher_table
                model, result = _fit(
                    data, arm, seed, cfg, root / arm.replace(" ", "_") / f"seed{seed}", table
                )
                if arm == "teacher {1,2,3}":
                    teacher_table = _teacher_logits(model, data, cfg)
                    soft[seed] = teacher_table
                wall = time.perf_counter() - t0
                m = result.metrics
                n_parts = len(ARMS[arm]["parts"])
                rows.append(
                    {
                        "arm": arm,
                        "seed": seed,
                        **_reported(m),
                        "epoch": int(m["epoch"]),
                        "wall_s": wall,
                        "train_images": int(m["last_step"]) * cfg.budget.per_part * n_parts,
                    }
                )
                hist.append(result.history.assign(arm=arm, seed=seed))
                bar.update()
    finally:
        bar.close()
        if scratch is not None:
            scratch.cleanup()
    return pd.DataFrame(rows), pd.concat(hist, ignore_index=True), soft
