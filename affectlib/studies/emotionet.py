"""Notebook 06's study: TAL's EmotioNet 2020 entry (Wang et al., "Rethinking the Model Chosen
Problem in Multi-Task Learning"): the multi-view co-regularised network, batch balancing, and one
checkpoint and threshold per AU (Tables 1 and 3, Figure 2), plus what no paper reports: the same
selections scored on a held-out split that no selection saw.

- the data, :func:`split_sets`: the EmotioNet-format set read by its real-format loader; its
  training file split at random into dataset-A (training, 90%) and dataset-B (validation, 10%) as
  §2.1, and its validation file as the held-out test split. In the embedded set every EmotioNet
  image is a face of its own identity, so the three are subject-disjoint;
- the AU groups of §2.1, :func:`au_groups`: the facial AUs the file codes (the model of the first
  group) and the head-pose codes AU51-56 (the second);
- the runs, :func:`run_study`: every (group, arm, seed) trained through :func:`train.fit` with
  every epoch's predictions on B and on the test split kept (``TrainConfig.epoch_predictions``);
  the loop's own selection (the epoch with the best average final score on B) is the baseline;
- the selections, :func:`selection_scores`: :mod:`affectlib.studies.au_selection` on B, scored on
  B and on test; :func:`floors`: the label-blind floors of the final score.

:mod:`affectlib.studies.emotionet_report` turns them into tables, figures and statements.
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
from tqdm.auto import tqdm

from affectlib import distributed, labels, metrics, models, train
from affectlib.data import assembly
from affectlib.data.table import au_columns_of
from affectlib.methods import get as get_method
from affectlib.methods import resolve_options
from affectlib.progress import bars_on
from affectlib.studies import au_selection

POSE_CODES = tuple(f"AU{a}" for a in range(51, 57))  # §2.1: the second group, head pose
# the 12 AUs of the 2017-2018 challenges, on which the paper's Table 3 is scored
CHALLENGE_2018 = tuple(f"AU{a}" for a in labels.EMOTIONET_AUS[:12])
# EmotioNet's facial AUs (labels.EMOTIONET_AUS without the pose codes); the paper's first group
# is 17 of them, which it does not list
EMOTIONET_FACIAL = tuple(f"AU{a}" for a in labels.EMOTIONET_AUS if a < 51)
# each row of Table 3 (and the baseline of Table 1) as a registered method
ARMS: dict[str, str] = {
    "baseline (all)": "tal-mvcr",
    "without multi-view loss": "tal-mvcr-nomv",
    "without co-regularization loss": "tal-mvcr-nocr",
    "without batch balancing": "tal-mvcr-nobb",
}
BASELINE = "baseline (all)"


# --- data ------------------------------------------------------------------------------------------
def split_sets(root: str | Path, *, b_fraction: float = 0.1, seed: int = 0) -> assembly.DataPart:
    """The EmotioNet-format files under ``root`` as one :class:`assembly.DataPart`: ``train`` =
    dataset-A, ``validation`` = dataset-B (a ``b_fraction`` of the training file's rows, drawn
    with ``seed``; §2.1: 2.5k of 25k), ``test`` = the validation file's rows, which no selection
    reads. Rejected rows are reported by the loader with a warning and left out."""
    if not 0 < b_fraction < 1:
        raise ValueError(f"b_fraction must lie in (0, 1), got {b_fraction}")
    part = assembly.load_part(root, "emotionet", "emotionet")
    rows = part.train.reset_index(drop=True)
    n_b = max(1, int(round(b_fraction * len(rows))))
    in_b = np.zeros(len(rows), bool)
    in_b[np.random.default_rng([seed, 606]).choice(len(rows), n_b, replace=False)] = True
    return dataclasses.replace(
        part,
        train=rows[~in_b].reset_index(drop=True),
        validation=rows[in_b].reset_index(drop=True),
        test=part.validation.reset_index(drop=True),
    )


def au_groups(part: assembly.DataPart) -> dict[str, tuple[str, ...]]:
    """§2.1's two groups among the AUs the files code: ``facial`` (every AU below 51, by number)
    and ``pose`` (AU51-56, those present)."""
    cols = sorted(au_columns_of(part.train), key=lambda c: int(c[2:]))
    return {
        "facial": tuple(c for c in cols if c not in POSE_CODES),
        "pose": tuple(c for c in cols if c in POSE_CODES),
    }


def coverage(facial: Sequence[str]) -> dict[str, list[str]]:
    """Which of EmotioNet's facial AUs (:data:`EMOTIONET_FACIAL`) our facial group has, which it
    lacks, and which of its AUs EmotioNet does not code."""
    return {
        "have": [c for c in EMOTIONET_FACIAL if c in facial],
        "lack": [c for c in EMOTIONET_FACIAL if c not in facial],
        "extra": [c for c in facial if c not in EMOTIONET_FACIAL],
    }


def part_counts(part: assembly.DataPart, columns: Sequence[str]) -> pd.DataFrame:
    """Images and positives per AU in dataset-A, dataset-B and the test split (Figure 1's counts)."""
    rows = []
    for name, t in (("A", part.train), ("B", part.validation), ("test", part.test)):
        for c in columns:
            v = t[c].to_numpy()
            rows.append(
                {
                    "split": name,
                    "au": c,
                    "coded": int((v != labels.AU_MISSING).sum()),
                    "positive": int((v == 1).sum()),
                }
            )
    return pd.DataFrame(rows)


# --- floors ---------------------------------------------------------------------------------------
def floors(true: np.ndarray) -> dict[str, float]:
    """Label-blind floors of the final score on labels ``true`` (N, M), each the mean over AUs of
    ``(F1_j + accuracy_j) / 2``: ``nothing`` predicts no AU (F1 0, accuracy 1 - prevalence);
    ``everything`` predicts every AU (F1 2p / (1 + p), accuracy p); ``chance`` predicts AU j
    present at random with its prevalence p_j (expected F1 p_j, accuracy p_j^2 + (1 - p_j)^2).
    Prevalences are those of ``true`` itself, so ``chance`` is the best a label-blind guess at the
    right rates can expect; ``floor`` is the largest of the three. ``<name>_f1`` and
    ``<name>_accuracy``: each predictor's mean F1 and mean accuracy over the AUs."""
    t = np.asarray(true, dtype=float)
    t = np.where(t == labels.AU_MISSING, np.nan, t)
    p = np.nanmean(t, axis=0)
    parts = {
        "nothing": (np.zeros_like(p), 1 - p),
        "everything": (2 * p / (1 + p), p),
        "chance": (p, p**2 + (1 - p) ** 2),
    }
    out = {k: float(np.nanmean(0.5 * (f1 + acc))) for k, (f1, acc) in parts.items()}
    out["floor"] = max(out.values())
    for k, (f1, acc) in parts.items():
        out |= {f"{k}_f1": float(np.nanmean(f1)), f"{k}_accuracy": float(np.nanmean(acc))}
    return out


# --- the runs -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StudyConfig:
    """Training settings of every run.

    backbones: the two views' backbones (:data:`affectlib.models.BACKBONES`); image_size,
    batch_size, epochs, lr_backbone, lr_heads, schedule, precision: as :class:`train.TrainConfig`;
    model: the view settings (:meth:`models.ModelConfig.from_profile`: ``feature_scale``,
    ``dropout``, ...), whose backbone, AUs and weights each view sets; weights: starting weights
    per backbone name (a backbone not named starts from scratch; the classifiers always start
    fresh)."""

    backbones: tuple[str, str]
    image_size: int
    batch_size: int
    epochs: int
    lr_backbone: float
    lr_heads: float
    device: str = "cpu"
    schedule: str = "constant"
    model: models.ModelConfig = dataclasses.field(default_factory=models.ModelConfig)
    weights: Mapping[str, str] = dataclasses.field(default_factory=dict)
    precision: str = "auto"


def build_model(cfg: StudyConfig, n_au: int) -> models.MultiViewAUNet:
    """The two-view network of ``cfg`` for ``n_au`` AUs (not seeded here: the caller seeds)."""
    views = [
        dataclasses.replace(cfg.model, backbone=b, n_au=n_au, weights=cfg.weights.get(b))
        for b in cfg.backbones
    ]
    return models.MultiViewAUNet(views)


def b_scores(pred: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Validation scores of :func:`train.predict`'s output at threshold 0.5: ``f1`` and
    ``accuracy`` (means over AUs) and ``final``, the challenge's final score (§3), which each run
    selects its baseline epoch on."""
    t, p = pred["au_true"], (pred["au_prob"] > 0.5).astype(int)
    return {
        "f1": float(np.nanmean(metrics.per_au_f1(t, p))),
        "accuracy": float(np.nanmean(metrics.per_au_accuracy(t, p))),
        "final": metrics.emotionet_score(t, p),
    }


@dataclass
class RunPredictions:
    """One run's per-epoch predictions: ``true_b`` (N_B, M), ``probs_b`` (E, N_B, M), the same
    on the test split, the AU columns, and the run's wall time."""

    columns: tuple[str, ...]
    true_b: np.ndarray
    probs_b: np.ndarray
    true_test: np.ndarray
    probs_test: np.ndarray
    wall_s: float


def read_epochs(out: Path, epochs: int, columns: Sequence[str]) -> RunPredictions:
    """The ``epochs/{val,test}_NNN.npz`` files a run wrote (``TrainConfig.epoch_predictions``)."""
    loaded = {}
    for split in ("val", "test"):
        files = [out / "epochs" / f"{split}_{e:03d}.npz" for e in range(1, epochs + 1)]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"per-epoch predictions missing: {missing[:3]}")
        arrays = [np.load(f) for f in files]
        loaded[split] = (arrays[0]["au_true"], np.stack([a["au_prob"] for a in arrays]))
    return RunPredictions(tuple(columns), *loaded["val"], *loaded["test"], wall_s=float("nan"))


def fit_run(
    part: assembly.DataPart,
    columns: Sequence[str],
    method: str,
    seed: int,
    cfg: StudyConfig,
    out: Path,
) -> RunPredictions:
    """One run: the ``columns`` AUs of ``part`` (A, B, test), a fresh two-view network seeded by
    ``seed``, the registered ``method``, :func:`train.fit` keeping every epoch's predictions."""
    t0 = time.perf_counter()
    spec = get_method(method)
    options = resolve_options(spec, {"au_columns": list(columns)})
    data, data_record = assembly.build_multi_data(
        [part],
        image_size=cfg.image_size,
        batch_size=cfg.batch_size,
        seed=seed,
        au_columns=columns,
        score=b_scores,
        select="final",
        progress=False,
    )
    distributed.seed_everything(seed)  # the initialisation
    model = build_model(cfg, len(columns))
    tcfg = train.TrainConfig.for_study(
        epochs=cfg.epochs,
        lr_backbone=cfg.lr_backbone,
        lr_heads=cfg.lr_heads,
        seed=seed,
        device=cfg.device,
        precision=cfg.precision,
        schedule=cfg.schedule,
        epoch_predictions=True,
    )
    record = {
        "method": spec.name,
        "options": options,
        "seed": seed,
        "backbones": list(cfg.backbones),
        "views": [dataclasses.asdict(v.cfg) for v in model.views],
        "train": tcfg.record(),
        "data": data_record,
    }
    train.fit(model, spec, data, tcfg, out, record)
    run = read_epochs(out, cfg.epochs, columns)
    run.wall_s = time.perf_counter() - t0
    return run


def run_study(
    part: assembly.DataPart,
    groups: Mapping[str, Sequence[str]],
    plan: Sequence[tuple[str, str]],
    seeds: Sequence[int],
    cfg: StudyConfig,
    runs_dir: str | Path | None = None,
    progress: bool = True,
) -> dict[tuple[str, str, int], RunPredictions]:
    """Train every (group, arm) of ``plan`` (arms: keys of :data:`ARMS`) for every seed; returns
    ``{(group, arm, seed): RunPredictions}``. All arms of a group share the seeds, so comparisons
    pair by seed. ``runs_dir``: where each run's configuration, per-epoch metrics and predictions
    go (None: a temporary folder, removed)."""
    unknown = sorted({a for _, a in plan} - set(ARMS))
    if unknown:
        raise KeyError(f"unknown arms {unknown}; known: {', '.join(ARMS)}")
    scratch = tempfile.TemporaryDirectory(prefix="emotionet-runs-") if runs_dir is None else None
    root = Path(scratch.name if scratch else runs_dir)
    runs = {}
    bar = tqdm(
        total=len(plan) * len(seeds), desc="TAL study", unit="run", disable=not bars_on(progress)
    )
    try:
        for group, arm in plan:
            for seed in seeds:
                out = root / group / ARMS[arm] / f"seed{seed}"
                runs[(group, arm, seed)] = fit_run(part, groups[group], ARMS[arm], seed, cfg, out)
                bar.update()
    finally:
        bar.close()
        if scratch is not None:
            scratch.cleanup()
    return runs


# --- the selections, scored -------------------------------------------------------------------------
def _subset(run: RunPredictions, columns: Sequence[str] | None) -> RunPredictions:
    if columns is None:
        return run
    idx = [run.columns.index(c) for c in columns if c in run.columns]
    return dataclasses.replace(
        run,
        columns=tuple(run.columns[i] for i in idx),
        true_b=run.true_b[:, idx],
        probs_b=run.probs_b[:, :, idx],
        true_test=run.true_test[:, idx],
        probs_test=run.probs_test[:, :, idx],
    )


def selection_scores(
    runs: Mapping[tuple[str, str, int], RunPredictions],
    columns: Mapping[str, Sequence[str]] | None = None,
) -> tuple[pd.DataFrame, dict[tuple[str, str, int], au_selection.Selection]]:
    """Every run's three strategies (:mod:`au_selection`), chosen on B, scored on B and on test:
    one row per (group, arm, seed, strategy, split) with ``f1``, ``accuracy``, ``final``,
    ``kept`` (checkpoints inference needs) and ``wall_s``; and the selections. ``columns``: a
    group's AUs to score on (e.g. :data:`CHALLENGE_2018` for Table 3; default all of the run's);
    the selection then runs on those AUs too, as each AU's choice is its own."""
    rows, chosen = [], {}
    for (group, arm, seed), run in runs.items():
        r = _subset(run, (columns or {}).get(group))
        sel = au_selection.select(r.true_b, r.probs_b)
        chosen[(group, arm, seed)] = sel
        for split, true, probs in (("B", r.true_b, r.probs_b), ("test", r.true_test, r.probs_test)):
            for strategy, s in au_selection.strategy_scores(sel, true, probs).items():
                kept = 1 if strategy == "baseline" else len(sel.kept())
                rows.append(
                    {
                        "group": group,
                        "arm": arm,
                        "seed": seed,
                        "strategy": strategy,
                        "split": split,
                        **s,
                        "kept": kept,
                        "wall_s": run.wall_s,
                    }
                )
    return pd.DataFrame(rows), chosen


def floor_table(
    runs: Mapping[tuple[str, str, int], RunPredictions],
    columns: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """:func:`floors` of each group on B and on test (labels are the same in every run of a
    group, so the first run's serve)."""
    rows, seen = [], set()
    for (group, _arm, _seed), run in runs.items():
        if group in seen:
            continue
        seen.add(group)
        r = _subset(run, (columns or {}).get(group))
        for split, true in (("B", r.true_b), ("test", r.true_test)):
            rows.append({"group": group, "split": split, "aus": len(r.columns), **floors(true)})
    return pd.DataFrame(rows)


def study_record(cfg: StudyConfig, seeds: Sequence[int]) -> dict[str, Any]:
    """The study's settings for provenance."""
    return {
        **{k: v for k, v in dataclasses.asdict(cfg).items() if k != "model"},
        "model": dataclasses.asdict(cfg.model),
        "seeds": list(seeds),
        "thresholds": list(au_selection.THRESHOLDS),
    }
