"""The training loop's configuration and optimisation: :class:`TrainConfig` (what
:func:`affectlib.train.fit` is told), :class:`FitResult` (what it returns), the optimiser
(:func:`build_optimizer`) and the per-step learning rates (:func:`lr_schedule`). The loop's own
module re-exports them, so ``train.TrainConfig`` is this class."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from affectlib import models
from affectlib.distributed import resolve_precision

SCHEDULES = ("constant", "cosine")
OPTIMIZERS = ("adam", "lars")
# keys of a profile's ``extra`` read by the loop (those of the model: models.MODEL_EXTRA); every
# other key is a method option
TRAIN_EXTRA = ("deterministic", "log_every")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`fit`; :meth:`from_profile` reads them from a profile.

    epochs, lr_backbone, lr_heads: Adam, 1e-3 for the backbone and 1e-2 for the heads, constant
                      (SS-MFAR §3.2).
    seed:             seeds the augmentation (data order and initialisation are seeded by the
                      caller from the same seed, see :func:`run`).
    device:           "cpu", "cuda" or "cuda:N" (under torchrun each process takes its local rank).
    checkpoint_every: optimiser steps between checkpoints; one is also written after each epoch.
    deterministic:    deterministic algorithms (default on CPU; on CUDA it costs speed).
    progress:         progress bars and the printed configuration (rank 0 only).
    schedule:         "constant" (SS-MFAR §3.2 gives none) or "cosine": each group's rate
                      follows half a cosine from its value to 0 over the run (Loshchilov &
                      Hutter 2017, without restarts), so the last epochs settle instead of
                      swinging from epoch to epoch.
    checkpoints:      write ``checkpoint.pt`` (off: no resume; for the many seconds-long runs of a
                      study, where a ResNet-18 checkpoint with its Adam moments, ~135 MB per epoch,
                      costs more than rerunning).
    epoch_predictions: also write every epoch's predictions, ``epochs/val_NNN.npz`` and, when the
                      data has a test split, ``epochs/test_NNN.npz`` (:func:`predict`'s dict), for
                      studies of the selection itself (per-AU epochs, Wang et al. 2020 §2.4); the
                      loop's own selection never reads the test files.
    betas:            Adam's (beta1, beta2); Bulat et al. fine-tune with (0.5, 0.99).
    warmup_steps:     steps of a linear warm-up from 0 to each group's rate before the schedule
                      (SwAV pretraining, Bulat et al. supplement §1.1: 10 epochs); 0: none.
    optimizer:        "adam", or "lars" (You et al. 2017, SwAV's large-batch optimiser, Bulat et
                      al. §1.1: momentum 0.9, weight decay 1e-6), lightly's implementation.
    compile:          ``torch.compile`` the network the loop trains (validation and prediction
                      run the plain module; the weights are the same tensors). It can pay on a GPU
                      for long runs (``benchmarks/train_throughput.py --compile`` measures it); on a
                      CPU the first steps wait tens of seconds for the compilation.
    log_every:        steps between the loop's reads of the logged losses: 1 reads every step
                      and stops on a non-finite loss before applying it; k > 1 keeps the terms on
                      the device and reads (and checks) them once per k steps and before each
                      checkpoint, so a GPU is not made to wait for the host every step (a
                      non-finite loss then stops the run at the end of its window, with the last
                      good checkpoint kept). The model trained is the same.
    precision:        the forward pass's: "auto" (bf16 autocast on CUDA and on a CPU that runs
                      bf16 in hardware, float32 elsewhere), "bf16" or "fp32"
                      (:func:`affectlib.distributed.resolve_precision`). The weights, gradients and
                      optimiser stay float32, and the network's outputs (but the representation
                      ``feat``) are cast to float32 before any loss sees them
                      (:func:`affectlib.distributed.forward_precision`). The record holds the
                      resolved value, "bf16" or "fp32".
    The five before it are recorded only when they differ from their defaults, so the records
    (and checkpoints) of runs that do not use them stay as they were.
    """

    epochs: int
    lr_backbone: float = 1e-3
    lr_heads: float = 1e-2
    seed: int = 0
    device: str = "cpu"
    checkpoint_every: int = 200
    deterministic: bool = True
    progress: bool = True
    checkpoints: bool = True
    schedule: str = "constant"
    epoch_predictions: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    optimizer: str = "adam"
    compile: bool = False
    log_every: int = 1
    precision: str = "auto"

    def __post_init__(self) -> None:
        resolve_precision(torch.device(self.device), self.precision)  # checks the name
        if self.log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {self.log_every}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        if not (self.lr_backbone > 0 and self.lr_heads > 0):
            raise ValueError(f"learning rates must be > 0, got {self.lr_backbone}, {self.lr_heads}")

    @classmethod
    def for_study(cls, *, device: str, precision: str = "auto", **fields: Any) -> TrainConfig:
        """The configuration of one of a study's many short runs: quiet (no progress bars), no
        checkpoints (rerunning costs less than writing them), deterministic on CPU."""
        return cls(
            device=device,
            precision=precision,
            deterministic=device == "cpu",
            progress=False,
            checkpoints=False,
            **fields,
        )

    @classmethod
    def from_profile(cls, profile, seed: int, **overrides: Any) -> TrainConfig:
        fields = {
            "epochs": profile.epochs,
            "lr_backbone": profile.lr_backbone,
            "lr_heads": profile.lr_heads,
            "seed": seed,
            "device": profile.device,
            "checkpoint_every": profile.checkpoint_every,
            "deterministic": profile.device == "cpu",
            "schedule": profile.lr_schedule,
            "compile": profile.compile,
            "precision": profile.precision,
        }
        return cls(**{**fields, **overrides})

    def record(self) -> dict[str, Any]:
        """The fields that decide the result (``progress`` and ``checkpoints`` do not)."""
        skip = ("progress", "checkpoints", "epoch_predictions")
        defaults = {
            "betas": (0.9, 0.999),
            "warmup_steps": 0,
            "optimizer": "adam",
            "compile": False,
            "log_every": 1,
        }
        out = {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in dataclasses.asdict(self).items()
            if k not in skip and not (k in defaults and _same(v, defaults[k]))
        }
        out["precision"] = self.resolved_precision
        return out

    @property
    def resolved_precision(self) -> str:
        """ "bf16" or "fp32": :attr:`precision` on this machine's :attr:`device`."""
        return resolve_precision(torch.device(self.device), self.precision)


def _same(a: Any, b: Any) -> bool:
    """``a == b`` with lists and tuples alike (a record read back from JSON holds lists)."""
    norm = lambda x: tuple(x) if isinstance(x, list | tuple) else x  # noqa: E731
    return norm(a) == norm(b)


@dataclass
class FitResult:
    """metrics: the selected epoch's validation scores, its test scores (``test_`` prefix) when
    the data has a test split, ``epoch`` (the selected one) and ``step``; history: one row per
    epoch; predictions: validation labels and predictions of the selected epoch
    (:func:`predict`); test_predictions: the same on the test split (empty without one);
    ``resumed_at``: the step this call started from (0 for a fresh run). On ranks other than 0
    only ``out_dir`` and ``resumed_at`` are set."""

    metrics: dict[str, Any]
    history: pd.DataFrame
    predictions: dict[str, np.ndarray]
    out_dir: Path
    resumed_at: int = 0
    test_predictions: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


def lr_schedule(cfg: TrainConfig, total_steps: int) -> np.ndarray:
    """Learning rate of each parameter group (backbone, heads) at each step: (total_steps, 2).

    ``cfg.schedule`` "constant": the configured rates throughout (SS-MFAR §3.2 gives no
    schedule); "cosine": ``lr * (1 + cos(pi * t / T)) / 2`` at step t of T (Loshchilov & Hutter
    2017, SGDR without restarts), from the configured rate down to near 0 at the last step.
    Computed up front, so a resumed run continues the same curve. ``cfg.warmup_steps`` > 0: the
    first W steps rise linearly, ``lr * (t + 1) / W``, and the schedule runs over the remaining
    steps (SwAV's warm-up then cosine, Bulat et al. supplement §1.1)."""
    warm = min(cfg.warmup_steps, total_steps)
    rest = total_steps - warm
    base = np.tile([cfg.lr_backbone, cfg.lr_heads], (rest, 1))
    if cfg.schedule == "cosine":
        t = np.arange(rest) / max(rest, 1)
        base = base * ((1 + np.cos(np.pi * t)) / 2)[:, None]
    if warm:
        ramp = (np.arange(warm) + 1) / warm
        base = np.concatenate([np.outer(ramp, [cfg.lr_backbone, cfg.lr_heads]), base])
    return base


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser of :func:`fit` over :func:`models.param_groups`: Adam with ``cfg.betas``,
    or LARS (``cfg.optimizer`` "lars"; momentum 0.9, weight decay 1e-6, SwAV's)."""
    groups = models.param_groups(model, cfg.lr_backbone, cfg.lr_heads)
    if cfg.optimizer == "lars":
        # deferred: lightly is imported only by the runs that ask for LARS (it takes seconds)
        from lightly.utils.lars import LARS

        return LARS(groups, lr=cfg.lr_backbone, momentum=0.9, weight_decay=1e-6)
    return torch.optim.Adam(groups, betas=tuple(cfg.betas))
