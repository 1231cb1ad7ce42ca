"""Training methods: what one batch costs, as a small object the training loop calls.

A method is a :class:`MethodSpec`: a ``loss(model, batch, state, ctx) -> (loss, logs)`` function, the
augmented views it reads from the batch, a state built from the training table before the first
step (class weights, thresholds, ...), optional per-epoch hooks and its default options.
:func:`affectlib.train.fit` knows nothing of a particular paper; it only calls these.

- ``state`` is a plain dict (tensors, numbers) that the checkpoint saves and a resumed run restores,
  so whatever a method learns besides the weights (e.g. SS-MFAR's adaptive thresholds) survives a
  restart. A method may update it in place inside ``loss`` or the hooks.
- ``ctx`` is a :class:`StepContext`: epoch (from 1, as Algorithm 1 of SS-MFAR counts), global step,
  device and the resolved options.
- ``batch`` is the batch dict of the data contract (``image`` uint8, ``expr``, ``au``, ``va``, the
  masks ``has_expr`` / ``has_au`` / ``has_va`` / ``au_mask``) on the training device, plus, per
  name in ``MethodSpec.views``, the augmented uint8 images (``batch["weak"]``, ``batch["strong"]``)
  and which of them were flipped (``batch["weak_flipped"]``, ...). Methods read the masks, never the
  label markers. Under DDP ``model`` is the wrapped network: pass all views through one forward
  call (concatenated) rather than several.
- ``logs`` maps names to scalar tensors (detached), averaged per epoch into the metrics CSV.

:data:`METHODS` is the registry: ``register`` adds a spec; a variant is a
``dataclasses.replace`` of an existing spec with other options (see ``mfar.py``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

Batch = dict[str, Tensor]
State = dict[str, Any]


@dataclass(frozen=True)
class StepContext:
    """What a method may know beside the batch: where the run stands and its options.

    epoch:   current epoch, counting from 1 (SS-MFAR Algorithm 1 and Eq. 4 count from 1).
    step:    optimiser steps taken before this batch, over the whole run (from 0).
    epochs:  epochs of the run.
    device:  the training device.
    options: the method's options after the profile's ``extra`` overrides.
    """

    epoch: int
    step: int
    epochs: int
    device: torch.device
    options: Mapping[str, Any]


LossFn = Callable[[nn.Module, Batch, State, StepContext], tuple[Tensor, dict[str, Tensor]]]
InitStateFn = Callable[[pd.DataFrame, Mapping[str, Any]], State]
EpochHook = Callable[[State, StepContext], None]


def no_state(train_table: pd.DataFrame, options: Mapping[str, Any]) -> State:
    """The state of a method that keeps none."""
    return {}


@dataclass(frozen=True)
class MethodSpec:
    """A training method as the loop sees it.

    name:           registry key, the ``METHOD`` of ``python -m affectlib train METHOD``.
    loss:           ``(model, batch, state, ctx) -> (scalar loss, {name: scalar tensor})``.
    views:          augmented views the loss reads, made by the loop from ``batch["image"]``
                    in this order with the run's augmentation generator ("weak", "strong").
    init_state:     ``(train_table, options) -> state``, called once before the first step
                    (never on resume: the checkpoint's state is restored instead).
    on_epoch_start: optional ``(state, ctx)`` hook before an epoch's first batch.
    on_epoch_end:   optional ``(state, ctx)`` hook after an epoch's last batch, before validation.
    on_train_predictions: optional ``(state, ctx, pred)`` hook before an epoch's first batch,
                    with the model's eval-mode predictions on every training image without
                    augmentation (``affectlib.train.predict``'s dict: ``expr_true`` with -1,
                    ``expr_prob``, ...), when the data provides that pass (``TrainData.train_eval``).
    options:        default options; a profile's ``extra`` overrides those it names.
    paper:          the source, for provenance.
    """

    name: str
    loss: LossFn
    views: tuple[str, ...] = ("weak",)
    init_state: InitStateFn = no_state
    on_epoch_start: EpochHook | None = None
    on_epoch_end: EpochHook | None = None
    on_train_predictions: Callable[[State, StepContext, Mapping[str, Any]], None] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    paper: str = ""


METHODS: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Add ``spec`` to :data:`METHODS` under ``spec.name``; warns when it replaces one."""
    unknown = sorted(set(spec.views) - {"weak", "strong"})
    if unknown:
        raise ValueError(f"method {spec.name!r}: unknown views {unknown}; known: weak, strong")
    if spec.name in METHODS:
        warnings.warn(f"method {spec.name!r} is already registered; replacing it", stacklevel=2)
    METHODS[spec.name] = spec
    return spec


def get(name: str) -> MethodSpec:
    """The registered method called ``name``; the error lists the known ones."""
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; registered: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def resolve_options(spec: MethodSpec, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``spec.options`` with ``overrides`` applied; an override the method does not know is an
    error naming it, so a misspelt option never passes silently."""
    unknown = sorted(set(overrides) - set(spec.options))
    if unknown:
        known = ", ".join(sorted(spec.options)) or "none"
        raise KeyError(f"method {spec.name!r} has no option {', '.join(unknown)}; known: {known}")
    return {**spec.options, **overrides}


# the methods register themselves on import; this import must follow the definitions above
from affectlib.methods import mfar  # noqa: E402, F401
