"""Losses of Bulat et al. 2022 (face pretraining): SwAV, CosFace and the fine-tuning losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from affectlib.losses._common import (
    EPS,
    _at_least_f32,
    _check_labels,
    _check_shape,
    _zero,
)
from affectlib.losses.ssmfar import ccc_loss

# ---- Bulat et al. 2022 (face pretraining): SwAV, CosFace, the fine-tuning VA loss ----
# Bulat, Cheng, Yang, Garbett, Sanchez, Tzimiropoulos, "Pre-training strategies and datasets for
# facial representation learning", ECCV 2022, supplement §1.1 (SwAV), §1.2 (CosFace), §4.1 (VA).
# SwAV's Sinkhorn-Knopp and swapped prediction are lightly's (lightly.loss.SwaVLoss, after the
# authors' code); the functions below fix the paper's settings and the shapes, and are tested
# against a hand computation in tests/test_face_pretraining.py.


def sinkhorn_codes(scores: Tensor, epsilon: float = 0.05, iterations: int = 3) -> Tensor:
    """SwAV's soft codes, Caron et al. 2020 Eq. 3 (Sinkhorn-Knopp, §3.1 "Online clustering").

    ``scores`` (B, K): dot products of unit-norm projections and unit-norm prototypes. Returns
    ``Q`` (B, K), no gradient: ``exp(scores / epsilon)``, then ``iterations`` rounds of making the
    prototype sums 1/K and the sample sums 1/B (the equipartition constraint), each row finally
    scaled to sum to 1. Bulat et al. §1.1: epsilon 0.05; SwAV: 3 iterations. lightly's
    ``sinkhorn``."""
    # deferred: lightly (seconds to import) is needed only by the runs that pretrain with SwAV
    from lightly.loss.swav_loss import sinkhorn

    _check_shape("scores", scores, 2)
    return sinkhorn(_at_least_f32(scores.detach()), iterations=iterations, epsilon=epsilon)


def swav_loss(
    global_scores: list[Tensor],
    small_scores: list[Tensor],
    temperature: float = 0.1,
    epsilon: float = 0.05,
    iterations: int = 3,
) -> Tensor:
    """SwAV's swapped prediction, Caron et al. 2020 Eq. 1-2 with multi-crop (§3.2).

    ``global_scores``: one (B, K) score matrix per high-resolution crop (2 in Bulat et al.),
    ``small_scores``: one per low-resolution crop (6). For each global crop i its codes
    ``q_i = sinkhorn_codes(scores_i)`` are predicted from every other crop v by
    ``-sum_k q_i[k] log softmax(scores_v / temperature)[k]`` (Eq. 2), averaged over the batch;
    the loss is ``mean_i [sum_{v != i} ell(v, q_i) / (V - 1)]`` with V crops in all. Bulat et al.
    §1.1: temperature 0.1, epsilon 0.05. lightly's ``SwaVLoss``; computed in float32 at least."""
    from lightly.loss import SwaVLoss  # deferred, as in sinkhorn_codes

    if not global_scores:
        raise ValueError("swav_loss needs at least one global crop")
    shape = global_scores[0].shape
    for s in [*global_scores, *small_scores]:
        _check_shape("scores", s, 2)
        if s.shape != shape:
            raise ValueError(f"every crop's scores must be {tuple(shape)}, got {tuple(s.shape)}")
    loss = SwaVLoss(
        temperature=temperature, sinkhorn_iterations=iterations, sinkhorn_epsilon=epsilon
    )
    value = loss(
        [_at_least_f32(s) for s in global_scores], [_at_least_f32(s) for s in small_scores]
    )
    return value.reshape(())  # lightly returns shape (1,)


def cosface_loss(
    feat: Tensor, weight: Tensor, target: Tensor, margin: float = 0.35, scale: float = 30.0
) -> Tensor:
    """Large margin cosine loss (CosFace), Wang et al. 2018 Eq. 4; margin 0.35 in Bulat et al.
    §1.2 (face recognition), scale 30 (CosFace §4: s = 30 for its experiments' 64 px training).

    ``feat`` (B, D) features, ``weight`` (C, D) class weights, ``target`` (B,) class indices
    0..C-1: ``cos = normalise(feat) @ normalise(weight).T`` (B, C), logits
    ``scale * (cos - margin * onehot(target))``, mean cross entropy. ``margin`` 0 is the
    normalised softmax (NormFace). Empty batch: 0, graph-attached."""
    _check_shape("feat", feat, 2)
    _check_shape("weight", weight, 2)
    if feat.shape[0] == 0:
        return _zero(feat) + _zero(weight)
    _check_labels("target", target, weight.shape[0])
    if (target < 0).any():
        raise ValueError("cosface_loss: every target must be a class index (no -1)")
    cos = F.normalize(_at_least_f32(feat), dim=1) @ F.normalize(_at_least_f32(weight), dim=1).T
    logits = scale * (cos - margin * F.one_hot(target, weight.shape[0]).to(cos.dtype))
    return F.cross_entropy(logits, target)


def rmse_ccc_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Bulat et al. supplement §4.1: the VA head is trained "to jointly minimise the RMSE and CCC
    losses": ``mean_d sqrt(mean_b (pred - target)^2) + ccc_loss(pred, target)`` over the
    (valence, arousal) columns of ``pred`` / ``target`` (B, 2), equally weighted (the paper gives
    no weights). Rows must be labelled (-5 raises, as :func:`ccc_loss`); empty batch: 0."""
    _check_shape("pred", pred, 2)
    if pred.shape[0] == 0:
        return _zero(pred)
    ccc = ccc_loss(pred, target)
    p, t = _at_least_f32(pred), _at_least_f32(target)
    rmse = ((p - t).pow(2).mean(dim=0) + EPS).sqrt().mean()
    return rmse + ccc


def au_intensity_loss(logits: Tensor, target: Tensor, max_intensity: float = 5.0) -> Tensor:
    """Squared error of AU intensities, Bulat et al. supplement §1.2 (AU intensity estimation;
    the paper states no loss: the l2 its landmark heads use): the head's ``logits`` (B, M) map to
    intensities ``max_intensity * sigmoid(logits)`` in [0, 5], compared with ``target`` (B, M),
    0..5; mean over every entry. Empty batch: 0, graph-attached."""
    _check_shape("logits", logits, 2)
    if target.shape != logits.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != logits {tuple(logits.shape)}")
    if logits.shape[0] == 0:
        return _zero(logits)
    pred = max_intensity * torch.sigmoid(_at_least_f32(logits))
    return (pred - _at_least_f32(target)).pow(2).mean()
