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
from affectlib.data.assembly import TrainData
from affectlib.data.cache import ImageCache
from affectlib.labels import EXPR_MISSING, VA_MISSING
from affectlib.methods import get as get_method
from affectlib.methods import resolve_options
from affectlib.methods.teacher_student import add_teacher, outputs
from affectlib.progress import bars_on

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
    (the paper's ResNet-50; the compact CNN of notebooks 03-04 on CPU); seq_len, seq_per_part,
    seq_steps, seq_epochs: the temporal stage (§2.4: 32-frame sequences, batch 16): frames per
    sequence, sequences of each part per batch, batches per epoch, most epochs."""

    image_size: int
    n_expw: int
    n_clips: int
    frames_per_clip: int
    per_part: int
    steps: int
    epochs: int
    lr: float
    backbone: str = "compact"
    seq_len: int = 32
    seq_per_part: int = 4
    seq_steps: int = 20
    seq_epochs: int = 4


BUDGETS = {
    # smoke: seconds; cpu: with the {1, 2, 3} teacher alone (one seed, 5 epochs of 60 steps) the
    # validation score rose through the 4th epoch and levelled off; 3 epochs of 40 steps (half
    # that budget) keep the 12 runs within the cpu profile's time on 2 cores; the temporal stage's
    # fields (seq_*) were set by cost alone;
    # paper: §3.1 (batch 64 in all, Adam 1e-4, at most 40 epochs), sizes of the real sets' scale
    "smoke": Budget(32, 48, 4, 12, 4, 3, 1, 1e-3, "compact", 8, 2, 3, 1),
    "cpu": Budget(48, 1500, 40, 40, 16, 40, 3, 1e-3),
    "gpu": Budget(112, 20000, 400, 60, 21, 500, 40, 1e-4, "resnet18", 32, 8, 200, 40),
    "paper": Budget(224, 20000, 600, 60, 21, 2000, 40, 1e-4, "resnet50", 32, 8, 500, 40),
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
    shared_videos: training videos with frames labelled for both EXPR and VA; affwild2_train:
    every frame of the Aff-Wild2-like training videos (labels where present; the temporal
    stage's sequences)."""

    train: pd.DataFrame
    root: Path
    validation: pd.DataFrame
    test: pd.DataFrame
    images: Path
    shared_videos: int
    videos: int
    extra_root: Path
    affwild2_train: pd.DataFrame


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
        aw.train,
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
    the device, the learning-rate schedule and the forward pass's precision (as
    :class:`affectlib.train.TrainConfig`)."""

    budget: Budget
    model: models.ModelConfig
    device: str = "cpu"
    schedule: str = "cosine"
    precision: str = "auto"


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
    # the start weights hold the backbone only: both heads start fresh in every run
    model = models.build_va_bins_model(
        dataclasses.replace(cfg.model, n_expr=N_BASIC), options["n_bins"]
    )
    tcfg = train.TrainConfig.for_study(
        epochs=b.epochs,
        lr_backbone=b.lr,
        lr_heads=b.lr,
        seed=seed,
        device=cfg.device,
        precision=cfg.precision,
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
    temporal: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[int, pd.DataFrame], pd.DataFrame]:
    """Every arm of :data:`ARMS` for every seed, then (``temporal``) Table 3's
    :func:`run_temporal` on that seed's student with sharing. Returns (runs, history, soft,
    temporal): ``runs`` one row per (arm, seed) with the test scores of the epoch selected on
    validation (:data:`SCORES`), ``epoch``, ``wall_s``, ``train_images``; ``history`` the
    per-epoch training losses (per part) and validation scores of every run (the temporal ones
    included); ``soft`` per seed the training table with the {1, 2, 3} teacher's logits (the
    student's soft labels); ``temporal`` one row per (Table 3 arm, seed)."""
    scratch = tempfile.TemporaryDirectory(prefix="ts-runs-") if runs_dir is None else None
    root = Path(scratch.name if scratch else runs_dir)
    rows, hist, soft, temporal_rows = [], [], {}, []
    total = (len(ARMS) + (2 if temporal else 0)) * len(seeds)
    bar = tqdm(total=total, desc="teacher-student", unit="run", disable=not bars_on(progress))
    try:
        for seed in seeds:
            teacher_table = None
            for arm in ARMS:
                t0 = time.perf_counter()
                table = data.train if arm.startswith("teacher") else teacher_table
                where = root / arm.replace(" ", "_").replace(",", "") / f"seed{seed}"
                model, result = _fit(data, arm, seed, cfg, where, table)
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
            if temporal:
                t_rows, t_hist = run_temporal(data, model, seed, cfg, root / "temporal")
                temporal_rows += t_rows
                hist += t_hist
                bar.update(2)
    finally:
        bar.close()
        if scratch is not None:
            scratch.cleanup()
    history = pd.concat(hist, ignore_index=True)
    return pd.DataFrame(rows), history, soft, pd.DataFrame(temporal_rows)


# --- the temporal stage (§2.4, Table 3) -------------------------------------------------------------
TEMPORAL_ARMS = ("CNN student, same frames", "GRU teacher", "GRU student")
SEQ_COLUMNS = ["path", "video", "frame", "expr", "valence", "arousal", "part"]


@torch.no_grad()
def frame_features(
    model: torch.nn.Module, table: pd.DataFrame, root: Path, image_size: int, device: str
) -> np.ndarray:
    """The frozen CNN's per-frame features (N, D) of ``table``'s images (eval mode: no dropout,
    no augmentation)."""
    cache = ImageCache.build(table, root, size=image_size, progress=False)
    loader = datasets.BatchLoader(
        table, cache, datasets.SequentialSampler(len(table)), 256, au_columns=()
    )
    was = model.training
    model.eval()
    feats = [model.features(b["image"].to(device)).float().cpu().numpy() for b in loader]
    model.train(was)
    return np.concatenate(feats)


def sequence_data(data: StudyData) -> tuple[pd.DataFrame, list[tuple[pd.DataFrame, Path]]]:
    """The temporal stage's training frames: part 1 every frame of the Aff-Wild2-like training
    videos with an expression label, part 2 every frame of those with VA and the AFEW-VA-format
    frames (labels where present). The still-image sets (ExpW, AffectNet) form no sequence, so
    part 3 has none here (the paper does not say how its stills entered the GRU). Returned as the
    frame table (:data:`SEQ_COLUMNS`) and its pieces with their image folders, in order."""
    aw = data.affwild2_train
    pieces = []
    for p, col, marker in ((1, "expr", EXPR_MISSING), (2, "valence", VA_MISSING)):
        videos = aw.loc[aw[col] != marker, "video"].unique()
        rows = aw[aw["video"].isin(videos)].assign(part=p)
        pieces.append((rows[SEQ_COLUMNS].reset_index(drop=True), data.images))
    afew = data.train[data.train["set"] == "afew-va"]
    pieces.append((afew[SEQ_COLUMNS].reset_index(drop=True), data.root))
    table = pd.concat([t for t, _ in pieces], ignore_index=True)
    return table, pieces


def _seq_loader(table, feats, clips, sampler, batch, drop_last=False):
    return three_parts.FeatureClipLoader(table, feats, clips, sampler, batch, drop_last=drop_last)


def run_temporal(
    data: StudyData,
    cnn: torch.nn.Module,
    seed: int,
    cfg: StudyConfig,
    out: Path,
) -> tuple[list[dict[str, Any]], list[pd.DataFrame]]:
    """Table 3 for one seed: the student CNN ``cnn`` frozen, its per-frame features in sequences of
    ``seq_len`` frames within a video, a bidirectional GRU trained as teacher (Eq. 7) and as
    student with the shared annotations (Eq. 10) from that teacher; each selects its epoch on the
    validation sequences and is scored on the test frames the sequences cover (non-overlapping
    sequences: a video's last frames short of a full sequence are not scored), beside the CNN
    student's scores on the same frames."""
    b, dev = cfg.budget, cfg.device
    table, pieces = sequence_data(data)
    feats = np.concatenate([frame_features(cnn, t, root, b.image_size, dev) for t, root in pieces])
    clips, clip_part = three_parts.part_clips(table, b.seq_len, stride=b.seq_len // 2)
    evaluation = {}
    for name, t in (("validation", data.validation), ("test", data.test)):
        t = t.assign(part=0)[SEQ_COLUMNS]
        f = frame_features(cnn, t, data.images, b.image_size, dev)
        c = datasets.video_clips(t, b.seq_len)
        evaluation[name] = (t, f, c)
    n_parts = len(set(clip_part.tolist()))

    def loaders(train_table):
        sampler = three_parts.PartSampler(clip_part, b.seq_per_part, b.seq_steps, seed)
        ev = {
            k: _seq_loader(t, f, c, datasets.SequentialSampler(len(c)), 64)
            for k, (t, f, c) in evaluation.items()
        }
        train_loader = _seq_loader(
            train_table, feats, clips, sampler, b.seq_per_part * n_parts, drop_last=True
        )
        return TrainData(
            train=train_loader,
            val=ev["validation"],
            train_table=train_table,
            source={"clips": len(clips), "seq_len": b.seq_len},
            score=study_scores,
            select="select",
            test=ev["test"],
        )

    tcfg = train.TrainConfig(
        epochs=b.seq_epochs,
        lr_backbone=b.lr,
        lr_heads=b.lr,
        seed=seed,
        device=dev,
        precision=cfg.precision,
        deterministic=dev == "cpu",
        progress=False,
        checkpoints=False,
        schedule=cfg.schedule,
    )
    rows, hist = [], []
    # the CNN student on the frames the test sequences cover
    t_test, _, c_test = evaluation["test"]
    covered = np.unique(c_test.reshape(-1))
    cache = ImageCache.build(data.test, data.images, size=b.image_size, progress=False)
    loader = datasets.BatchLoader(
        data.test, cache, datasets.SequentialSampler(len(data.test)), 256, au_columns=()
    )
    pred = train.predict(cnn, loader, torch.device(dev), cfg.precision)
    keep = np.isin(pred["index"], covered)
    cnn_scores = study_scores({k: v[keep] for k, v in pred.items()})
    rows.append({"arm": TEMPORAL_ARMS[0], "seed": seed, **cnn_scores, "epoch": 0})
    teacher_table = None
    for arm, method in ((TEMPORAL_ARMS[1], "ts-gru-teacher"), (TEMPORAL_ARMS[2], "ts-gru-student")):
        spec = get_method(method)
        options = resolve_options(spec, {"sharing": method == "ts-gru-student"})
        train_table = table if teacher_table is None else teacher_table
        distributed.seed_everything(seed)
        model = models.SequenceVABins(feats.shape[1], n_expr=N_BASIC, n_bins=options["n_bins"])
        rec = {"method": method, "options": options, "seed": seed, "train": tcfg.record()}
        result = train.fit(
            model, spec, loaders(train_table), tcfg, out / method / f"seed{seed}", rec
        )
        if method == "ts-gru-teacher":
            seq = _seq_loader(table, feats, clips, datasets.SequentialSampler(len(clips)), 64)
            o = outputs(model, seq, torch.device(dev))
            te = np.zeros((len(table), N_BASIC), np.float32)
            tv = np.zeros((len(table), 2, options["n_bins"]), np.float32)
            te[o["index"]], tv[o["index"]] = o["expr"], o["va_bins"]
            teacher_table = add_teacher(table, te, tv)
        m = result.metrics
        rows.append({"arm": arm, "seed": seed, **_reported(m), "epoch": int(m["epoch"])})
        hist.append(result.history.assign(arm=arm, seed=seed))
    return rows, hist
