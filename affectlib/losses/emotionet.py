"""Losses of TAL EmotioNet 2020 (Wang et al.): multi-view co-regularisation and batch balancing."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from affectlib.losses._common import (
    EPS,
    _at_least_f32,
    _check_probs,
    _check_shape,
    _masked_bce,
)


# ---- TAL EmotioNet 2020 ----
# Wang et al., "Rethinking the Model Chosen Problem in Multi-Task Learning" (TAL, EmotioNet
# Challenge 2020), §2.2-2.3, after Niu et al. 2019 (multi-label co-regularisation, NeurIPS) and
# Hand et al. 2018 (selective learning, AAAI).
def multiview_weight_similarity(
    w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, absolute: bool = False
) -> Tensor:
    """Multi-view loss L_mv of Wang et al. 2020 §2.2 (Niu et al. 2019):
    ``L_mv = 1/C sum_j W_1j^T W_2j / (||W_1j|| ||W_2j||)`` with ``W_ij = [w_ij, b_ij]``, the
    weights and bias of AU j's classifier in view i.

    ``w1``, ``w2`` (C, D) classifier weights of the two views (one row per AU; the views' features
    must have the same width D), ``b1``, ``b2`` (C,) biases. Minimised as printed, the mean cosine
    goes below 0 (towards -1, anti-parallel classifiers), not to 0; the text's aim ("orthogonalize
    the weights") is the ``absolute=True`` reading, ``1/C sum_j |cos_j|``, minimal at 0. A zero
    classifier counts as orthogonal (cosine 0). Returns a scalar in [-1, 1].
    """
    _check_shape("w1", w1, 2)
    if w2.shape != w1.shape or b1.shape != (w1.shape[0],) or b2.shape != b1.shape:
        raise ValueError(
            f"view weights (C, D) and biases (C,) must match: w1 {tuple(w1.shape)}, "
            f"w2 {tuple(w2.shape)}, b1 {tuple(b1.shape)}, b2 {tuple(b2.shape)}"
        )
    a = torch.cat([_at_least_f32(w1), _at_least_f32(b1)[:, None]], dim=1)  # (C, D + 1)
    b = torch.cat([_at_least_f32(w2), _at_least_f32(b2)[:, None]], dim=1)
    cos = F.cosine_similarity(a, b, dim=1, eps=EPS)  # (C,)
    return (cos.abs() if absolute else cos).mean()


def _bernoulli_entropy(p: Tensor) -> Tensor:
    """``H(p) = -(p log p + (1 - p) log(1 - p))`` elementwise, natural log, 0 at p in {0, 1}."""
    return -(torch.xlogy(p, p) + torch.xlogy(1 - p, 1 - p))


def coregularisation_jsd(p1: Tensor, p2: Tensor, mask: Tensor | None = None) -> Tensor:
    """Co-regularisation loss L_cr of Wang et al. 2020 §2.2 (Niu et al. 2019): the Jensen-Shannon
    divergence of the two views' Bernoulli predictions of each AU,
    ``H((p_1j + p_2j) / 2) - (H(p_1j) + H(p_2j)) / 2`` with the binary entropy H (natural log),
    averaged over AUs (the paper's 1/C) and images.

    ``p1``, ``p2`` (B, C) sigmoid probabilities of the two views; ``mask`` (B, C) optional, the
    entries to average over (default all; the paper's L_cr needs no label). Each term lies in
    [0, log 2]. Gradients flow to both views. Empty selection: 0, graph-attached.
    """
    _check_shape("p1", p1, 2)
    if p2.shape != p1.shape:
        raise ValueError(f"p2 shape {tuple(p2.shape)} != p1 {tuple(p1.shape)}")
    _check_probs("p1", p1)
    _check_probs("p2", p2)
    p1, p2 = _at_least_f32(p1), _at_least_f32(p2)
    js = _bernoulli_entropy((p1 + p2) / 2) - (_bernoulli_entropy(p1) + _bernoulli_entropy(p2)) / 2
    m = torch.ones_like(js) if mask is None else mask.to(js.dtype)
    if m.shape != js.shape:
        raise ValueError(f"mask shape {tuple(m.shape)} != p1 {tuple(p1.shape)}")
    return (js * m).sum() / m.sum().clamp_min(1)


def batch_balance_mask(target: Tensor, alpha: float = 0.2, generator=None) -> Tensor:
    """Batch balancing of Wang et al. 2020 §2.3 (selective learning, Hand et al. 2018): per AU,
    with ``n_pos`` positives and ``n_neg`` negatives in the batch, when ``alpha * n_neg > n_pos``
    only ``round(alpha * n_neg)`` negatives drawn at random enter the loss; the others are ignored.
    The paper's example: 90 negatives and 10 positives, ``0.2 * 90 > 10``, 18 negatives kept.

    Read literally, the rule is discontinuous (60 negatives keep 12 beside 11 positives, all 60
    beside 12). ``target`` (B, C) 1 / 0, -1 = no label (never kept). ``generator``: a
    ``torch.Generator`` for the draw (None: the global one, which the loop seeds and restores).
    Returns the bool mask (B, C) of the entries that enter the loss: every positive, the kept
    negatives.
    """
    _check_shape("target", target, 2)
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    neg, pos = target == 0, target == 1
    n_neg, n_pos = neg.sum(dim=0), pos.sum(dim=0)  # (C,)
    keep_n = torch.where(
        alpha * n_neg > n_pos, torch.round(alpha * n_neg.double()).long(), n_neg
    )  # (C,) negatives to keep
    # a random rank among the negatives of each column: negatives draw keys, others sort last
    keys = torch.rand(target.shape, generator=generator, dtype=torch.float64)
    keys = torch.where(neg.cpu(), keys, torch.full_like(keys, 2.0)).to(target.device)
    rank = keys.argsort(dim=0).argsort(dim=0)  # (B, C)
    return pos | (neg & (rank < keep_n[None, :]))


def masked_au_bce(logits: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Recognition loss of one view (Wang et al. 2020 §2.2): binary cross entropy of AU logits
    (B, C) against ``target`` (B, C) 1 / 0 / -1, averaged over the entries of ``mask`` (B, C)
    that are labelled (:func:`batch_balance_mask`'s selection, or every labelled entry).
    0, graph-attached, when none is."""
    elem, labelled = _masked_bce(logits, target)
    m = labelled * mask.to(labelled.dtype)
    return (elem * m).sum() / m.sum().clamp_min(1)
