"""Losses of the studied papers, each a small pure function of tensors citing paper and equation.

Papers:
- SS-MFAR: Gera et al., "SS-MFAR: Semi-supervised multi-task facial affect recognition",
  2022 (Eq. 1-9).
- DM: Kollias, Sharmanska, Zafeiriou, "Distribution matching for multi-task learning of
  classification tasks", AAAI 2024 (Case Study I, Eq. 2-6; Case Study II for the generic
  class/attribute forms).
- teacher-student: Vu, Beurton-Aimar, Marchand, "Multitask multi-database emotion recognition",
  ABAW 2021 (Eq. 1-10), with Deng, Chen, Shi (FG 2020) for the VA bins and the temperature.

Label conventions follow the batch contract: expression -1 and AU -1 mean "no label";
valence-arousal rows without a label are selected out by the caller (a -5 reaching
:func:`ccc_loss` is an error). A loss over an empty selection returns a zero that is still attached
to the graph, so a batch without labels for a task adds nothing and ``backward()`` still works.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from affectlib.labels import N_EXPR, VA_MISSING

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


def _ccc_columns(x: Tensor, y: Tensor) -> Tensor:
    """CCC per column with population statistics; 1.0 where both columns are the same constant."""
    mx, my = x.mean(dim=0), y.mean(dim=0)
    vx = (x - mx).pow(2).mean(dim=0)
    vy = (y - my).pow(2).mean(dim=0)
    cov = ((x - mx) * (y - my)).mean(dim=0)
    denom = vx + vy + (mx - my).pow(2)
    # denom = 0 iff x and y are the same constant: perfect agreement
    return torch.where(denom > 0, 2 * cov / denom.clamp_min(EPS), torch.ones_like(denom))


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


# --- coupling of classes and attributes (DM, Kollias et al. 2024) ---------------------------------
DM_FORMS = ("printed", "bernoulli")


def class_attribute_matching(
    class_probs: Tensor,
    attr_probs: Tensor,
    relation: Tensor,
    eps: float = EPS,
    form: str = "printed",
) -> Tensor:
    """Distribution matching of attribute predictions with a class mixture, DM Eq. 2-3 / Case II.

    ``q[b, i] = sum_c class_probs[b, c] * relation[c, i]`` (Eq. 2), ``relation[c, i] = p(a_i | c)``;
    loss ``mean_b sum_i -attr_probs[b, i] * log q[b, i]`` (Eq. 3 as printed, ``form="printed"``).

    The printed loss is linear in ``attr_probs`` with slope ``-log q >= 0``: it lowers every
    attribute's probability, least where q is near 1, and never raises one. ``form="bernoulli"``
    reads "cross entropy with the soft targets" (the text beside Eq. 3) as the cross entropy of the
    two Bernoulli distributions of each attribute, ``-[p log q + (1 - p) log(1 - q)]``, whose slope
    ``log((1 - q) / q)`` raises p where q > 1/2 and lowers it where q < 1/2 (both logs of ``eps``
    at least).

    ``class_probs`` (B, C) softmax scores, ``attr_probs`` (B, M) sigmoid scores, ``relation`` (C, M)
    in [0, 1] (a tensor or array, e.g. from ``relatedness.relation_matrix``): 0/1 relatedness (Case
    I: 1 for prototypical and observational AUs) or empirical conditional frequencies (Case II). The
    relation is used as given, without normalisation: since the class probabilities sum to 1, q
    already lies in [0, 1] and is a probability of activation. A class without related attributes
    (Neutral, Other) adds no mass to any q. Where q = 0 the log is taken of ``eps``: a large finite
    penalty that pushes that attribute's prediction towards 0, which is the paper's intent; an
    attribute related to no class at all is therefore always pushed off — leave such columns out of
    ``relation`` and ``attr_probs``. Gradients flow to both predictions. Empty batch: 0,
    graph-attached.
    """
    relation = torch.as_tensor(relation, dtype=class_probs.dtype, device=class_probs.device)
    _check_shape("class_probs", class_probs, 2)
    _check_shape("attr_probs", attr_probs, 2)
    _check_shape("relation", relation, 2)
    if relation.shape != (class_probs.shape[1], attr_probs.shape[1]):
        raise ValueError(
            f"relation must have shape (classes, attributes) = "
            f"({class_probs.shape[1]}, {attr_probs.shape[1]}), got {tuple(relation.shape)}"
        )
    if attr_probs.shape[0] != class_probs.shape[0]:
        raise ValueError("class_probs and attr_probs must have the same batch size")
    _check_probs("class_probs", class_probs)
    _check_probs("attr_probs", attr_probs)
    _check_probs("relation", relation)
    if form not in DM_FORMS:
        raise ValueError(f"form must be one of {DM_FORMS}, got {form!r}")
    if class_probs.shape[0] == 0:
        return _zero(class_probs) + _zero(attr_probs)
    q = class_probs @ relation  # (B, M)
    per_entry = attr_probs * q.clamp_min(eps).log()
    if form == "bernoulli":
        per_entry = per_entry + (1 - attr_probs) * (1 - q).clamp_min(eps).log()
    return -per_entry.sum(dim=1).mean()


def class_attribute_coannotation(
    class_probs: Tensor, attr_labels: Tensor, attr_weights: Tensor
) -> Tensor:
    """Soft co-annotation of classes from attribute labels, DM Eq. 4-6 / Case II.

    Indicator ``I[b, c] = sum_i w[c, i] y[b, i] / sum_i w[c, i]`` (Eq. 4), soft label
    ``q[b] = softmax(I[b])`` (Eq. 5), loss ``mean_b sum_c -class_probs[b, c] log q[b, c]`` (Eq. 6).

    ``class_probs`` (B, C) softmax scores; ``attr_labels`` (B, M) 1 / 0, -1 = not annotated;
    ``attr_weights`` (C, M) >= 0 (Case I: 1 prototypical, annotator fraction observational, 0 else).
    Sums over i run over the annotated attributes of each image (all of them when a row is
    complete); a class without related annotated attributes (Neutral) has I = 0. The mean runs over
    images with at least one annotated attribute; others contribute nothing; a batch without any
    gives 0, graph-attached. Labels and weights are data: no gradient reaches them (nor any AU
    prediction a caller derived them from); only ``class_probs`` is trained.
    """
    attr_weights = torch.as_tensor(attr_weights, dtype=class_probs.dtype, device=class_probs.device)
    attr_labels = torch.as_tensor(attr_labels, device=class_probs.device)
    _check_shape("class_probs", class_probs, 2)
    _check_shape("attr_labels", attr_labels, 2)
    _check_shape("attr_weights", attr_weights, 2)
    if attr_weights.shape != (class_probs.shape[1], attr_labels.shape[1]):
        raise ValueError(
            f"attr_weights must have shape (classes, attributes) = "
            f"({class_probs.shape[1]}, {attr_labels.shape[1]}), got {tuple(attr_weights.shape)}"
        )
    if attr_labels.shape[0] != class_probs.shape[0]:
        raise ValueError("class_probs and attr_labels must have the same batch size")
    _check_probs("class_probs", class_probs)
    labels = attr_labels.detach()
    _check_labels("attr_labels", labels, 2)
    w = attr_weights.detach()
    if w.numel() and w.min() < 0:
        raise ValueError("attr_weights must be >= 0")
    annotated = (labels != -1).to(class_probs.dtype)  # (B, M)
    y = labels.to(class_probs.dtype).clamp_min(0) * annotated
    num, den = y @ w.T, annotated @ w.T  # (B, C)
    indicator = torch.where(den > 0, num / den.clamp_min(EPS), torch.zeros_like(den))
    per_image = -(class_probs * torch.log_softmax(indicator, dim=1)).sum(dim=1)  # (B,)
    has = annotated.amax(dim=1) if annotated.numel() else annotated.sum(dim=1)
    return (per_image * has).sum() / has.sum().clamp_min(1)


def distribution_matching(
    expr_probs: Tensor, au_probs: Tensor, relation: Tensor, form: str = "printed"
) -> Tensor:
    """DM loss of Kollias et al. 2024, Case Study I, Eq. 2-3: expressions x AUs.

    ``expr_probs`` (B, C), ``au_probs`` (B, M), ``relation`` (C, M) 0/1 (``p(y_au^i | y_exp)``); see
    :func:`class_attribute_matching` for the formula, the two ``form`` readings and edge cases.
    """
    return class_attribute_matching(expr_probs, au_probs, relation, form=form)


def soft_coannotation(expr_probs: Tensor, au_labels: Tensor, au_weights: Tensor) -> Tensor:
    """SCA loss of Kollias et al. 2024, Case Study I, Eq. 4-6: expressions from AU labels.

    ``expr_probs`` (B, C), ``au_labels`` (B, M) 1 / 0 / -1, ``au_weights`` (C, M); see
    :func:`class_attribute_coannotation` for the formula and edge cases.
    """
    return class_attribute_coannotation(expr_probs, au_labels, au_weights)


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
