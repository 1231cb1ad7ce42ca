"""Losses of DM: Kollias, Sharmanska, Zafeiriou, "Distribution matching for multi-task learning of
classification tasks", AAAI 2024 (Case Study I, Eq. 2-6; Case Study II for the generic
class/attribute forms)."""

from __future__ import annotations

import torch
from torch import Tensor

from affectlib.losses._common import (
    EPS,
    _check_labels,
    _check_probs,
    _check_shape,
    _zero,
)

# --- coupling of classes and attributes (DM, Kollias et al. 2024) ---------------------------------
DM_FORMS = ("printed", "bernoulli", "target")
SCA_FORMS = ("printed", "label")


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
    at least). ``form="target"`` keeps the printed sum and takes its first argument, the attribute
    predictions p, as the soft target of a distillation-style cross entropy ``H(p, q)`` (our
    reading; the paper's prose can also be read with q as the target): p is detached, so only the
    class predictions learn, and the attribute head is left to its labels. Its gradient on
    ``class_probs[b, c]`` is ``-sum_i p[b, i] relation[c, i] / q[b, i] / B``: zero for a class
    without related attributes (Neutral) and negative for every other, most for classes related to
    many predicted attributes; since p is never exactly 0, through a softmax it always moves mass
    off unrelated classes towards classes related to many attributes, and nothing lowers q where p
    is low.

    ``class_probs`` (B, C) softmax scores, ``attr_probs`` (B, M) sigmoid scores, ``relation`` (C, M)
    in [0, 1] (a tensor or array, e.g. from ``relatedness.relation_matrix``): 0/1 relatedness (Case
    I: 1 for prototypical and observational AUs) or empirical conditional frequencies (Case II). The
    relation is used as given, without normalisation: since the class probabilities sum to 1, q
    already lies in [0, 1] and is a probability of activation. A class without related attributes
    (Neutral, Other) adds no mass to any q. Where q = 0 the log is taken of ``eps``: a large finite
    penalty that pushes that attribute's prediction towards 0, which is the paper's intent; an
    attribute related to no class at all is therefore always pushed off — leave such columns out
    of ``relation`` and ``attr_probs``. Gradients flow to both predictions (to the class predictions
    only with ``form="target"``). Empty batch: 0, graph-attached.
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
    target = attr_probs.detach() if form == "target" else attr_probs
    per_entry = target * q.clamp_min(eps).log()
    if form == "bernoulli":
        per_entry = per_entry + (1 - attr_probs) * (1 - q).clamp_min(eps).log()
    return -per_entry.sum(dim=1).mean()


def class_attribute_coannotation(
    class_probs: Tensor,
    attr_labels: Tensor,
    attr_weights: Tensor,
    eps: float = EPS,
    form: str = "printed",
    log_probs: Tensor | None = None,
) -> Tensor:
    """Soft co-annotation of classes from attribute labels, DM Eq. 4-6 / Case II.

    Indicator ``I[b, c] = sum_i w[c, i] y[b, i] / sum_i w[c, i]`` (Eq. 4), soft label
    ``q[b] = softmax(I[b])`` (Eq. 5), loss ``mean_b sum_c -class_probs[b, c] log q[b, c]`` (Eq. 6
    as printed, and the Case II loss, ``form="printed"``).

    Each I lies in [0, 1], so q is flat: with C classes every q lies in [1 / (e + C - 1),
    e / (e + C - 1)] (7 classes: 0.058 to 0.312). The printed loss is linear in ``class_probs``
    with slope ``-log q[b, c]``: its minimum puts all of an image's mass on the class of largest q
    (a hard label of that class, however small its lead), and where q is uniform (no related
    attribute present) it is constant, without gradient. ``form="label"`` takes the soft label as
    the target of "the cross entropy with the soft targets" (the text beside Eq. 6),
    ``-sum_c q[b, c] log class_probs[b, c]``, whose minimum is ``class_probs[b] = q[b]``: a nearly
    uniform prediction tilted towards the related classes, so on an image it acts mostly against
    confident predictions. Its log is ``log_probs`` when given (e.g. the log-softmax of the
    logits: exact where a probability underflows), else the log of ``class_probs`` clamped at
    ``eps``, which passes no gradient to a class below ``eps``; the printed form reads no log of
    ``class_probs`` and refuses ``log_probs``.

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
    if form not in SCA_FORMS:
        raise ValueError(f"form must be one of {SCA_FORMS}, got {form!r}")
    labels = attr_labels.detach()
    _check_labels("attr_labels", labels, 2)
    w = attr_weights.detach()
    if w.numel() and w.min() < 0:
        raise ValueError("attr_weights must be >= 0")
    annotated = (labels != -1).to(class_probs.dtype)  # (B, M)
    y = labels.to(class_probs.dtype).clamp_min(0) * annotated
    num, den = y @ w.T, annotated @ w.T  # (B, C)
    indicator = torch.where(den > 0, num / den.clamp_min(EPS), torch.zeros_like(den))
    log_q = torch.log_softmax(indicator, dim=1)
    if log_probs is not None:
        if form != "label":
            raise ValueError(f"log_probs is read by form='label' only, not by form={form!r}")
        if log_probs.shape != class_probs.shape:
            raise ValueError(
                f"log_probs must have the shape of class_probs {tuple(class_probs.shape)}, "
                f"got {tuple(log_probs.shape)}"
            )
    if form == "label":
        log_p = class_probs.clamp_min(eps).log() if log_probs is None else log_probs
        per_image = -(log_q.exp() * log_p).sum(dim=1)  # (B,)
    else:
        per_image = -(class_probs * log_q).sum(dim=1)  # (B,)
    has = annotated.amax(dim=1) if annotated.numel() else annotated.sum(dim=1)
    return (per_image * has).sum() / has.sum().clamp_min(1)


def distribution_matching(
    expr_probs: Tensor, au_probs: Tensor, relation: Tensor, form: str = "printed"
) -> Tensor:
    """DM loss of Kollias et al. 2024, Case Study I, Eq. 2-3: expressions x AUs.

    ``expr_probs`` (B, C), ``au_probs`` (B, M), ``relation`` (C, M) 0/1 (``p(y_au^i | y_exp)``); see
    :func:`class_attribute_matching` for the formula, the three ``form`` readings and edge cases.
    """
    return class_attribute_matching(expr_probs, au_probs, relation, form=form)


def soft_coannotation(
    expr_probs: Tensor,
    au_labels: Tensor,
    au_weights: Tensor,
    form: str = "printed",
    log_probs: Tensor | None = None,
) -> Tensor:
    """SCA loss of Kollias et al. 2024, Case Study I, Eq. 4-6: expressions from AU labels.

    ``expr_probs`` (B, C), ``au_labels`` (B, M) 1 / 0 / -1, ``au_weights`` (C, M), ``log_probs``
    (B, C) or None; see :func:`class_attribute_coannotation` for the formula, the two ``form``
    readings and edge cases.
    """
    return class_attribute_coannotation(
        expr_probs, au_labels, au_weights, form=form, log_probs=log_probs
    )
