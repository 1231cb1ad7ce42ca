"""What the loss modules share: the log floor, a graph-attached zero, dtype and input checks, the
masked per-entry BCE and the per-column CCC."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

EPS = 1e-8  # floor for probabilities inside a log: log(1e-8) = -18.4, finite and float32-safe


def _zero(like: Tensor) -> Tensor:
    # keeps the graph so that callers can always add and backpropagate
    return like.sum() * 0.0


def _at_least_f32(x: Tensor) -> Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _check_shape(name: str, x: Tensor, ndim: int) -> None:
    if x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")


def _check_probs(name: str, p: Tensor) -> None:
    if p.numel() and (p.min() < 0 or p.max() > 1):
        raise ValueError(f"{name} must be probabilities in [0, 1] (softmax/sigmoid), not logits")


def _check_labels(name: str, y: Tensor, high: int) -> None:
    """Labels must be integers in {-1 (no label), 0, ..., high - 1}."""
    if y.numel() == 0:
        return
    bad = (y != y.round()) | (y < -1) | (y >= high)
    if bad.any():
        values = sorted({float(v) for v in y[bad].unique()[:8].tolist()})
        raise ValueError(f"{name} must hold -1 or integers in [0, {high - 1}]; found {values}")


def _masked_bce(
    logits: Tensor, target: Tensor, pos_weight: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Per-entry BCE (B, M) of AU logits against 1 / 0 (or soft) targets, and the mask (B, M) of
    the labelled entries (target != -1), both in the logits' dtype (float32 at least)."""
    _check_shape("logits", logits, 2)
    if target.shape != logits.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != logits {tuple(logits.shape)}")
    logits = _at_least_f32(logits)
    mask = (target != -1).to(logits.dtype)
    if pos_weight is not None:
        pos_weight = pos_weight.to(logits.device, logits.dtype)
    elem = F.binary_cross_entropy_with_logits(
        logits, target.to(logits.dtype).clamp(0, 1), pos_weight=pos_weight, reduction="none"
    )
    return elem, mask


def _ccc_columns(x: Tensor, y: Tensor) -> Tensor:
    """CCC per column with population statistics; 1.0 where both columns are the same constant."""
    mx, my = x.mean(dim=0), y.mean(dim=0)
    vx = (x - mx).pow(2).mean(dim=0)
    vy = (y - my).pow(2).mean(dim=0)
    cov = ((x - mx) * (y - my)).mean(dim=0)
    denom = vx + vy + (mx - my).pow(2)
    # denom = 0 iff x and y are the same constant: perfect agreement
    return torch.where(denom > 0, 2 * cov / denom.clamp_min(EPS), torch.ones_like(denom))
