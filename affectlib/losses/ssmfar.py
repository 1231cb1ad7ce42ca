"""Losses of SS-MFAR: Gera et al., "SS-MFAR: Semi-supervised multi-task facial affect recognition", 2022
(Eq. 1-9): class re-weighting, the supervised task losses and the semi-supervised expression losses.
``au_bce_per_image`` is Kollias et al. 2024's L_AU (Eq. 1), averaged per image first."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from affectlib.labels import N_EXPR, VA_MISSING
from affectlib.losses._common import (
    EPS,
    _at_least_f32,
    _ccc_columns,
    _check_labels,
    _check_probs,
    _check_shape,
    _masked_bce,
    _zero,
)


# --- class re-weighting (SS-MFAR Eq. 1-2) ---------------------------------------------------------
def expr_class_weights(expr: Tensor, n_classes: int = N_EXPR) -> Tensor:
    """Expression class weights, SS-MFAR Eq. 1: ``W[i] = N / n[i]``.

    ``expr`` (N,) holds class indices, -1 = no label (ignored). N counts the valid labels, n[i]
    those of class i. A class without a sample gets weight 0 (it never occurs as a target).
    Returns float32 (n_classes,). Under the ``"weighted"`` reduction of :func:`weighted_ce` only
    the ratios matter; under ``"mean"`` their scale (K on average over N labels) does too.
    """
    expr = torch.as_tensor(expr)
    _check_shape("expr", expr, 1)
    _check_labels("expr", expr, n_classes)
    valid = expr[expr != -1].long()
    counts = torch.bincount(valid, minlength=n_classes).float()
    return torch.where(counts > 0, counts.sum() / counts.clamp_min(1), torch.zeros_like(counts))


def au_pos_weight(au: Tensor, *, per_entry: bool = False) -> Tensor:
    """AU positive weights for BCE, SS-MFAR Eq. 2: ``W[i] = negatives[i] / positives[i]``.

    ``au`` (N, M) holds 1 / 0, -1 = no label. Counts run over the rows without any -1 (the paper's
    rule: in Aff-Wild2 an image lacks all AU labels or none); ``per_entry=True`` counts every
    labelled entry instead, for data sets where AUs are coded separately (EmotioNet). Always finite:
    an AU without a positive gets 1.0 (plain BCE) — the ratio is undefined there and the weight only
    scales positive terms, which that data lacks; an AU without a negative gets 0, as Eq. 2 says.
    Returns float32 (M,).
    """
    au = torch.as_tensor(au)
    _check_shape("au", au, 2)
    _check_labels("au", au, 2)
    if not per_entry:
        au = au[(au != -1).all(dim=1)]
    pos = (au == 1).sum(dim=0).float()
    neg = (au == 0).sum(dim=0).float()
    return torch.where(pos > 0, neg / pos.clamp_min(1), torch.ones_like(pos))


# --- supervised task losses (SS-MFAR Eq. 5-7) -----------------------------------------------------
CE_REDUCTIONS = ("mean", "weighted")


def _check_reduction(reduction: str) -> None:
    if reduction not in CE_REDUCTIONS:
        raise ValueError(f"reduction must be one of {CE_REDUCTIONS}, got {reduction!r}")


def weighted_ce(
    logits: Tensor, target: Tensor, weight: Tensor | None = None, reduction: str = "weighted"
) -> Tensor:
    """Class-weighted cross entropy, SS-MFAR Eq. 5 with the weights of Eq. 1.

    ``logits`` (B, C), ``target`` (B,) class indices, -1 = no label (ignored). ``reduction``:
    ``"weighted"``, torch's weighted mean ``sum_i w[y_i] * CE_i / sum_i w[y_i]`` (only the weights'
    ratios matter), or ``"mean"``, ``sum_i w[y_i] * CE_i / n`` over the n valid targets (the SS-MFAR
    public code: ``F.cross_entropy(..., weight=w, reduction="none").mean()``, so the weights'
    scale, N / n[i], multiplies the loss too). Without weights both are the plain mean. 0
    (graph-attached) when no target is valid or every valid target has weight 0. Computed in
    float32 at least.
    """
    _check_shape("logits", logits, 2)
    _check_shape("target", target, 1)
    _check_reduction(reduction)
    if weight is not None and weight.shape != (logits.shape[1],):
        raise ValueError(f"weight must have shape ({logits.shape[1]},), got {tuple(weight.shape)}")
    logits = _at_least_f32(logits)  # half-precision logits under AMP would round the weights too
    t = target.long()
    valid = t != -1
    if weight is not None:
        weight = weight.to(logits.device, logits.dtype)
    total = F.cross_entropy(logits, t, weight=weight, ignore_index=-1, reduction="sum")
    if weight is None or reduction == "mean":
        denom = valid.sum().to(logits.dtype)
    else:
        denom = (weight[t.clamp_min(0)] * valid).sum()
    # denom is 0 only when total is 0 too; the clamp turns 0/0 into a graph-attached 0
    return total / denom.clamp_min(EPS)


def au_bce(logits: Tensor, target: Tensor, pos_weight: Tensor | None = None) -> Tensor:
    """Binary cross entropy over AU logits with positive weights, SS-MFAR Eq. 6 with Eq. 2.

    ``logits`` and ``target`` (B, M); target 1 / 0, -1 = no label. Mean over the labelled entries
    (equal to ``F.binary_cross_entropy_with_logits(..., pos_weight=...)`` when no entry is -1);
    0 (graph-attached) when none is labelled.
    """
    elem, mask = _masked_bce(logits, target, pos_weight)
    return (elem * mask).sum() / mask.sum().clamp_min(1)


def au_bce_per_image(logits: Tensor, target: Tensor) -> Tensor:
    """AU binary cross entropy as Kollias et al. 2024 (Case Study I, the L_AU of Eq. 1) write it:
    per image ``sum_i delta_i BCE_i / sum_k delta_k`` over its annotated AUs (``delta_i``: AU i
    is annotated), then the mean over the images with at least one annotated AU, so an image
    annotated for one AU weighs as much as one annotated for all.

    ``logits`` and ``target`` (B, M); target 1 / 0, -1 = no label. Equal to :func:`au_bce` when
    every labelled image has all M AUs labelled. 0 (graph-attached) when none is labelled.
    """
    elem, mask = _masked_bce(logits, target)  # (B, M) each
    per_image = (elem * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1)  # (B,)
    has = (mask.sum(dim=1) > 0).to(logits.dtype)
    return (per_image * has).sum() / has.sum().clamp_min(1)


def ccc_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Concordance loss, SS-MFAR Eq. 7: ``1 - mean_d CCC_d`` over the columns (valence, arousal).

    ``CCC = 2 s_xy / (s_x^2 + s_y^2 + (mean_x - mean_y)^2)`` with population (1/B) statistics,
    per column of ``pred`` / ``target`` (B, 2); the two CCCs are averaged, as the P_VA score does
    (Eq. 10). Constant input: CCC is 0 when one column is constant (no covariance) or both are
    different constants; 1 when both are the same constant. A single row therefore scores 0 unless
    exact. Computed in float32 at least (safe under AMP). Empty batch: 0, graph-attached. Rows must
    be labelled: a target holding the -5 marker raises.
    """
    _check_shape("pred", pred, 2)
    if target.shape != pred.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != pred {tuple(pred.shape)}")
    if pred.shape[0] == 0:
        return _zero(pred)
    if (target == VA_MISSING).any():
        raise ValueError("target holds the -5 'no label' marker; select rows with has_va first")
    return 1.0 - _ccc_columns(_at_least_f32(pred), _at_least_f32(target)).mean()


# --- semi-supervised expression losses (SS-MFAR Eq. 4, 8, 9) --------------------------------------
def adaptive_thresholds(
    probs: Tensor,
    labels: Tensor,
    epoch: int,
    beta: float = 0.95,
    gamma: float = math.e,
    floor: float = 0.0,
) -> Tensor:
    """Per-class confidence thresholds, SS-MFAR Eq. 4 (after Ada-CM, Li et al. 2022).

    ``T[c] = beta / (1 + gamma**(-epoch)) * mean{probs[i, c] : labels[i] = c = argmax probs[i]}``

    ``probs`` (N, C) softmax scores, ``labels`` (N,) with -1 = unlabelled (ignored). The mean runs
    over the labelled samples of class c that the model classifies correctly. A class without such
    a sample gets the mean confidence over all correctly classified samples (any class) — a
    class-agnostic estimate rather than an arbitrary constant; with no correct sample at all the
    mean is taken as 1, the strictest threshold Eq. 4 can give. ``epoch`` counts from 1 as in
    Algorithm 1; ``floor`` is a lower bound (the paper's public code uses 0.8 and beta 0.97; the
    defaults here are Eq. 4 alone, the SS-MFAR method sets the floor: ``methods/mfar.py``).

    Which samples: Algorithm 1 computes T per iteration from the batch's labelled weak views, the
    public code from a pass over the training set after each epoch; callers pass either set. The
    result is detached (thresholds are not learnt). Returns (C,) in the dtype of ``probs``.
    """
    _check_shape("probs", probs, 2)
    _check_shape("labels", labels, 1)
    n_classes = probs.shape[1]
    _check_labels("labels", labels, n_classes)
    with torch.no_grad():
        valid = labels != -1
        p, y = probs[valid].detach(), labels[valid].long()
        correct = p.argmax(dim=1) == y
        cls = y[correct]
        conf = p[correct, cls]  # probability of the true (= predicted) class
        sums = torch.zeros(n_classes, dtype=p.dtype, device=p.device).index_add_(0, cls, conf)
        counts = torch.bincount(cls, minlength=n_classes)
        fallback = conf.mean() if conf.numel() else torch.ones((), dtype=p.dtype, device=p.device)
        mean = torch.where(counts > 0, sums / counts.clamp_min(1), fallback)
        scale = beta / (1.0 + gamma ** (-float(epoch)))
        return (scale * mean).clamp_min(floor)


def symmetric_kl(p: Tensor, q: Tensor, eps: float = EPS) -> Tensor:
    """Symmetric KL divergence, SS-MFAR Eq. 8: ``sum_c p log(p/q) + q log(q/p)``, batch mean.

    ``p``, ``q`` (B, C) probability rows; natural log (the public code's log2 only rescales). Both
    are clamped to ``>= eps`` so a zero probability gives a large finite value, not inf/NaN; the
    clamped entries pass no gradient. Gradients flow to both arguments: detach one to treat it as
    a target. Empty batch: 0, graph-attached.
    """
    _check_shape("p", p, 2)
    if q.shape != p.shape:
        raise ValueError(f"q shape {tuple(q.shape)} != p {tuple(p.shape)}")
    _check_probs("p", p)
    _check_probs("q", q)
    if p.shape[0] == 0:
        return _zero(p) + _zero(q)
    p, q = p.clamp_min(eps), q.clamp_min(eps)
    # p log(p/q) + q log(q/p) = (p - q)(log p - log q)
    return ((p - q) * (p.log() - q.log())).sum(dim=1).mean()


def pseudo_label_ce(
    strong_logits: Tensor,
    weak_probs: Tensor,
    thresholds: Tensor,
    weight: Tensor | None = None,
    reduction: str = "mean",
) -> tuple[Tensor, Tensor]:
    """Unsupervised CE on confident pseudo-labels, SS-MFAR §2.6 (L_CE^u of Eq. 9), FixMatch style.

    Pseudo-label ``y_i = argmax weak_probs[i]``; sample i is confident when
    ``max weak_probs[i] >= thresholds[y_i]`` (Eq. 4 thresholds). Loss
    ``sum_i mask_i * w[y_i] * CE(strong_logits[i], y_i) / D`` over ALL B unlabelled samples of the
    batch, so a batch with few confident samples weighs little (FixMatch convention). ``weight``
    (C,): the Eq. 1 class re-scaling weights, which §2.2 gives both CE terms (the public code uses
    one weighted criterion for both); None: 1. ``reduction`` as :func:`weighted_ce`: ``"mean"``,
    D = B (the public code); ``"weighted"``, D = ``sum_i w[y_i]`` over all B. The weak view is a
    target: it is detached. Returns ``(loss, mask)`` with mask (B,) bool; the non-confident samples
    (``~mask``) are the ones the consistency term :func:`symmetric_kl` uses.
    """
    _check_shape("strong_logits", strong_logits, 2)
    _check_reduction(reduction)
    if weight is not None and weight.shape != (strong_logits.shape[1],):
        raise ValueError(
            f"weight must have shape ({strong_logits.shape[1]},), got {tuple(weight.shape)}"
        )
    if weak_probs.shape != strong_logits.shape:
        raise ValueError(
            f"weak_probs shape {tuple(weak_probs.shape)} != strong_logits "
            f"{tuple(strong_logits.shape)}"
        )
    if thresholds.shape != (strong_logits.shape[1],):
        raise ValueError(
            f"thresholds must have shape ({strong_logits.shape[1]},), got {tuple(thresholds.shape)}"
        )
    weak = weak_probs.detach()
    _check_probs("weak_probs", weak)
    conf, pseudo = weak.max(dim=1)
    mask = conf >= thresholds.to(weak.device, weak.dtype)[pseudo]
    ce = F.cross_entropy(strong_logits, pseudo, reduction="none")  # (B,)
    w = torch.ones_like(ce) if weight is None else weight.to(ce.device, ce.dtype)[pseudo]
    denom = w.sum().clamp_min(EPS) if reduction == "weighted" else max(strong_logits.shape[0], 1)
    return (ce * w * mask).sum() / denom, mask


class ExprLossWeights(NamedTuple):
    """Weights of the expression loss of SS-MFAR Eq. 9 (values from Ada-CM, Li et al. 2022):

    ``L_Exp = supervised * L_CE^s + unsupervised * L_CE^u + consistency * L_KL^c``

    - ``supervised`` (lambda_1 = 0.5): class-weighted CE on labelled weak views (Eq. 5,
      :func:`weighted_ce`);
    - ``unsupervised`` (lambda_2 = 1.0): CE of strong views on confident weak-view pseudo-labels
      (:func:`pseudo_label_ce`);
    - ``consistency`` (lambda_3 = 0.1): symmetric KL between weak and strong views of the
      non-confident unlabelled samples (Eq. 8, :func:`symmetric_kl`).

    The AU and VA losses enter Eq. 9 with weight 1. (The public code used 0.5, 0.5, 0.5.)
    """

    supervised: float = 0.5
    unsupervised: float = 1.0
    consistency: float = 0.1


LAMBDAS = ExprLossWeights()  # == (0.5, 1.0, 0.1)
