"""What a training method is, and the registry of methods (:mod:`affectlib.methods` re-exports it).

A :class:`MethodSpec` is what the training loop calls for one batch; :data:`METHODS` holds the
registered ones (each method file of :mod:`affectlib.methods` registers its own on import).
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
StepFn = Callable[
    [nn.Module, "MethodSpec", Batch, State, StepContext], tuple[Tensor, dict[str, Tensor]]
]
"""``(net, method, batch, state, ctx) -> (loss, logs)``: forward pass(es), loss and backward.

Called with the gradients zeroed; must leave each parameter's gradient in ``.grad`` (its own
``backward`` / ``autograd.grad`` calls) and return the loss it minimised (detached or not) and
detached scalar logs, as ``MethodSpec.loss`` does. It opens no autocast: the loop runs the
network's forward at the run's precision and hands float32 outputs to the losses
(:func:`affectlib.distributed.forward_precision`); the learning rates and ``optimizer.step()``
stay with the loop. Extra learnable quantities of the method (GradNorm's task
weights) and their optimiser state live in ``state``, so that the checkpoint carries them."""


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
    step:           optional :data:`StepFn` for a method that owns its backward pass (per-task
                    gradients, as MGDA-UB; task weights with their own optimiser, as GradNorm):
                    the loop calls it instead of its forward / ``loss`` / backward stages and keeps
                    the rest (the non-finite check, the learning rates, the optimiser step,
                    logging); ``loss`` then names what the step minimises.
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
    step: StepFn | None = None


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
