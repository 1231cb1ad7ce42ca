"""Losses of Teacher-student: Vu, Beurton-Aimar, Marchand, "Multitask multi-database emotion recognition",
ABAW 2021 (Eq. 1-10), with Deng, Chen, Shi (FG 2020) for the VA bins and the temperature."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from affectlib.losses._common import (
    _at_least_f32,
    _ccc_columns,
    _check_labels,
    _check_shape,
    _zero,
)

# ---- teacher-student (ABAW 2021) ----
# Vu, Beurton-Aimar & Marchand, "Multitask multi-database emotion recognition" (ABAW 2021; the
# teacher-student paper of notebook 05, §2.2, Eq. 1-10), which builds on Deng, Chen & Shi, "Multitask emotion recognition with incomplete labels"
# (FG 2020). Numbers the ABAW 2021 paper does not print are Deng et al.'s, as both groups' public
# code sets them (``options/base_options.py`` of wtomin/Multitask-Emotion-Recognition-with-
# Incomplete-Labels and of glmanhtu/multitask-abaw-2021): VA_BINS = 20 bins of equal width over
# [-1, 1] (``digitize_num``), temperature T = 1.5 (``temperature``).
VA_BINS = 20
TS_TEMPERATURE = 1.5
TS_LAMBDA = 0.6  # ABAW 2021 teacher-student §2.2.3: "The lambda parameter is set to 0.6"


def va_bin_edges(n_bins: int = VA_BINS) -> Tensor:
    """The ``n_bins + 1`` edges of equal bins over [-1, 1] (Deng et al. 2020, ``np.linspace``)."""
    if n_bins < 2:
        raise ValueError(f"n_bins must be >= 2, got {n_bins}")
    return torch.from_numpy(np.linspace(-1.0, 1.0, n_bins + 1))


def va_bin_centres(n_bins: int = VA_BINS) -> Tensor:
    """Mid-points of the :func:`va_bin_edges` bins (n_bins,): the values whose expectation under
    the softmax is the predicted valence / arousal (ABAW 2021 teacher-student §2.2: "predicted VA
    = expectation over bin centres"; Deng et al.'s code takes ``linspace(-1, 1, n_bins)`` instead,
    which reaches the ends of the range)."""
    e = va_bin_edges(n_bins)
    return (e[1:] + e[:-1]) / 2


def va_to_bins(va: Tensor, n_bins: int = VA_BINS) -> Tensor:
    """The bin index (int64, same shape) of each value in [-1, 1]: bin k holds
    ``[edge_k, edge_k+1)``, the last bin also holds 1.0 (Deng et al.'s ``np.digitize`` - 1, with
    the top edge folded into the last bin). A value outside [-1, 1] (the -5 marker) raises."""
    if va.numel() and (va.min() < -1 or va.max() > 1):
        raise ValueError("valence / arousal must lie in [-1, 1]; select labelled rows first")
    inner = va_bin_edges(n_bins)[1:-1].to(va.device)
    return torch.bucketize(va.double(), inner, right=True)


def va_expectation(va_logits: Tensor, n_bins: int = VA_BINS) -> Tensor:
    """Predicted (valence, arousal) (B, 2) from bin logits (B, 2, n_bins): the expectation of the
    bin centres under the softmax at temperature 1 (Eq. 2's regression read-out)."""
    _check_shape("va_logits", va_logits, 3)
    centres = va_bin_centres(n_bins).to(va_logits.device, _at_least_f32(va_logits).dtype)
    return (_at_least_f32(va_logits).softmax(dim=-1) * centres).sum(dim=-1)


def expr_ce_per_sample(logits: Tensor, target: Tensor) -> Tensor:
    """Eq. 1: ``CE(y, SF(f(x), 1))`` per image (B,), ``logits`` (B, C), ``target`` (B,) class
    indices (labelled rows only)."""
    _check_shape("logits", logits, 2)
    _check_labels("target", target, logits.shape[1])
    if (target < 0).any():
        raise ValueError("target holds -1 ('no label'); select labelled rows first")
    return F.cross_entropy(_at_least_f32(logits), target.long(), reduction="none")


def va_bins_ce_per_sample(va_logits: Tensor, va: Tensor) -> Tensor:
    """The classification half of Eq. 2 per image (B,): ``sum_{i in (valence, arousal)}
    CE(onehot(bin(y_i)), SF(f_i(x), 1))``; ``va_logits`` (B, 2, n_bins), ``va`` (B, 2) in [-1, 1]."""
    _check_shape("va_logits", va_logits, 3)
    if va.shape != va_logits.shape[:2]:
        raise ValueError(f"va shape {tuple(va.shape)} != {tuple(va_logits.shape[:2])}")
    n_bins = va_logits.shape[2]
    target = va_to_bins(va, n_bins).to(va_logits.device)  # (B, 2)
    logp = _at_least_f32(va_logits).log_softmax(dim=-1)  # (B, 2, K)
    return -logp.gather(2, target[..., None]).squeeze(2).sum(dim=1)


def va_ccc_term(va_logits: Tensor, va: Tensor) -> Tensor:
    """The regression half of Eq. 2 over a set of images: ``sum_{i in (valence, arousal)}
    (1 - CCC(y_i, E[f_i(x)]))`` with the prediction :func:`va_expectation`; CCC with population
    statistics as :func:`ccc_loss` (one row: CCC 0 unless exact). Empty set: 0, graph-attached."""
    if va_logits.shape[0] == 0:
        return _zero(va_logits)
    pred = va_expectation(va_logits, va_logits.shape[2])
    return (1.0 - _ccc_columns(pred, _at_least_f32(va).to(pred.dtype))).sum()


def distillation_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """Eq. 4-6: ``KL(SF(t, T), SF(s, T)) = sum_c p_t,c log(p_t,c / p_s,c)`` per image, summed over
    every leading axis but the first: (B, C) -> (B,), and (B, 2, n_bins) -> (B,) as the sum of the
    valence and arousal KLs (Eq. 5). The teacher's logits carry no gradient. The paper's equations
    have no ``T^2`` factor (Hinton et al.'s; Deng et al.'s code multiplies by it): none here."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student {tuple(student_logits.shape)} and teacher {tuple(teacher_logits.shape)} "
            "logits differ in shape"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    s = _at_least_f32(student_logits) / temperature
    t = _at_least_f32(teacher_logits).detach().to(s.dtype) / temperature
    log_pt, log_ps = t.log_softmax(dim=-1), s.log_softmax(dim=-1)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum(dim=-1)
    return kl.reshape(kl.shape[0], -1).sum(dim=1)


class TSTerms(NamedTuple):
    """The parts of :func:`teacher_student_loss` (scalars): the total, the supervision (Eq. 1-3,
    lambda applied) and the distillation (Eq. 4-6, weights applied)."""

    total: Tensor
    supervision: Tensor
    distillation: Tensor


def teacher_student_loss(
    expr_logits: Tensor,
    va_logits: Tensor,
    expr: Tensor,
    va: Tensor,
    sup_expr: Tensor,
    sup_va: Tensor,
    part: Tensor,
    teacher_expr: Tensor | None = None,
    teacher_va: Tensor | None = None,
    lam: float = TS_LAMBDA,
    temperature: float = TS_TEMPERATURE,
) -> TSTerms:
    """The batch loss of the teacher (Eq. 7) or the student (Eq. 8-10), divided by N.

    ``expr_logits`` (B, 7), ``va_logits`` (B, 2, n_bins), ``expr`` (B,) (any value where not
    supervised), ``va`` (B, 2) (any value where not supervised), ``sup_expr`` / ``sup_va`` (B,)
    bool: the images whose ground truth supervises that task, ``part`` (B,) int: the training
    part each image came from (1 Mixed EXPR, 2 Mixed VA, 3 Affect EXPR_VA; a batch holds N images
    of each part present, §2.2). Teacher (``teacher_*`` None), Eq. 7: ``sum_i sum_n L_i`` with
    ``L_expr`` = Eq. 1 CE and ``L_va`` = Eq. 2 (bin CE per image; ``1 - CCC`` per dimension over
    the part's supervised images). Student, Eq. 8-10: per image and task, ``lam * L + (1 - lam)
    * D`` where the task is supervised (Eq. 8, G) and ``D`` alone where it is not (the
    ``D(f_t^j, f_s^j)`` terms of Eq. 9 / the NA branch of Eq. 10), ``D`` = :func:`distillation_kl`
    at ``temperature``. Which images are supervised for which task decides Eq. 9 (each image its
    own part's task: part 1 expressions, part 2 VA, part 3 both) versus Eq. 10 (also the shared
    annotation of a part 1 / part 2 image that has one); the caller sets ``sup_*``.

    Normalisation: per-image terms are summed and divided by N, the images per part in the
    batch (the largest part count), i.e. Eq. 7/9/10 divided by a constant. The CCC term is not
    per image: summing Eq. 8's per-image ``(1 - CCC)`` over the part's ``m`` supervised images
    gives ``m * (1 - CCC)``, so it enters as ``lam * (m / N) * (1 - CCC over those m)``.
    A part's VA set with fewer than 2 images has no CCC (its term is left out).
    """
    _check_shape("expr_logits", expr_logits, 2)
    _check_shape("va_logits", va_logits, 3)
    student = teacher_expr is not None
    if student != (teacher_va is not None):
        raise ValueError("give both teacher_expr and teacher_va (student) or neither (teacher)")
    if not student:
        lam = 1.0
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must lie in [0, 1], got {lam}")
    parts = part.unique()
    n = max(int((part == p).sum()) for p in parts) if part.numel() else 1
    zero = _zero(expr_logits) + _zero(va_logits)
    sup = zero
    ce_e = torch.zeros(expr_logits.shape[0], device=expr_logits.device, dtype=zero.dtype)
    ce_v = ce_e.clone()
    if sup_expr.any():
        ce_e = ce_e.index_put(
            (sup_expr,), expr_ce_per_sample(expr_logits[sup_expr], expr[sup_expr])
        )
    if sup_va.any():
        ce_v = ce_v.index_put((sup_va,), va_bins_ce_per_sample(va_logits[sup_va], va[sup_va]))
    sup = sup + lam * (ce_e.sum() + ce_v.sum()) / n
    for p in parts:
        rows = (part == p) & sup_va
        m = int(rows.sum())
        if m >= 2:
            sup = sup + lam * (m / n) * va_ccc_term(va_logits[rows], va[rows])
    dist = zero
    if student:
        d_e = distillation_kl(expr_logits, teacher_expr, temperature)  # (B,)
        d_v = distillation_kl(va_logits, teacher_va, temperature)  # (B,)
        one = torch.ones((), dtype=d_e.dtype, device=d_e.device)
        w_e = torch.where(sup_expr, one * (1.0 - lam), one)
        w_v = torch.where(sup_va, one * (1.0 - lam), one)
        dist = ((w_e * d_e).sum() + (w_v * d_v).sum()) / n
    return TSTerms(sup + dist, sup, dist)
