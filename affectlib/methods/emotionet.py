"""TAL's EmotioNet 2020 method (Wang et al., "Rethinking the Model Chosen Problem in Multi-Task
Learning", EmotioNet Challenge 2020): multi-view co-regularised AU recognition with batch
balancing, trained on AU labels only.

**The network** is :class:`affectlib.models.MultiViewAUNet`: two backbones see the same image,
each with one linear classifier per AU, and the output is the mean of the two views'
probabilities (§2.2). The study builds it (:mod:`affectlib.studies.emotionet`); the loss reads its
``au_views`` logits and its classifiers' weights.

**The loss** (§2.2: "four losses"; the paper gives no weights, so each counts once):

``L = BCE_1 + BCE_2 + lambda_mv L_mv + lambda_cr L_cr``

- ``BCE_i``: the recognition loss of view i, binary cross entropy over the labelled AU entries
  (:func:`affectlib.losses.masked_au_bce`); with batch balancing (§2.3, alpha = 0.2) only the
  entries :func:`affectlib.losses.batch_balance_mask` keeps enter it, one draw per batch shared
  by both views;
- ``L_mv``: the cosine similarity of the two views' classifier weights ``[w, b]``
  (:func:`affectlib.losses.multiview_weight_similarity`): ``mv_form="printed"`` minimises the
  mean cosine as the paper prints it, ``"absolute"`` its absolute value (the text's
  "orthogonalize");
- ``L_cr``: the Jensen-Shannon divergence of the views' Bernoulli predictions
  (:func:`affectlib.losses.coregularisation_jsd`), over every AU entry of the batch.

**The ablations of Table 3** are ``dataclasses.replace`` of the full method: ``tal-mvcr-nomv``
(no L_mv), ``tal-mvcr-nocr`` (no L_cr), ``tal-mvcr-nobb`` (no batch balancing: every labelled
entry enters the BCE).

Options: ``lambda_mv``, ``lambda_cr`` (0 switches a term off: it is then neither computed nor
logged), ``balance`` and ``alpha`` (§2.3), ``mv_form``, ``au_columns`` (the model's AU columns in
order; needed only to swap the head-pose codes AU51/52 and AU55/56 of a horizontally flipped
image, :func:`affectlib.data.augment.flip_labels`). Logs per step: ``loss_bce_view1``,
``loss_bce_view2``, ``loss_mv``, ``loss_cr``, ``mv_cosine`` (the signed mean cosine, whatever the
form) and ``kept_negatives`` (the share of labelled negatives the balancing keeps).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor, nn

from affectlib import losses
from affectlib.data.augment import FLIP_SWAPS, flip_labels
from affectlib.methods.base import Batch, MethodSpec, State, StepContext, register
from affectlib.methods.mfar import au_targets

PAPER = (
    "Wang et al. 2020, Rethinking the Model Chosen Problem in Multi-Task Learning "
    "(TAL, EmotioNet Challenge 2020)"
)
MV_FORMS = ("printed", "absolute")


def _targets(batch: Batch, options: dict[str, Any]) -> Tensor:
    """AU labels (B, n_au) with -1 where unlabelled; pose codes swapped on flipped images."""
    target = au_targets(batch)
    columns = options.get("au_columns")
    if columns and any(a in columns or b in columns for a, b in FLIP_SWAPS):
        target = flip_labels(target, list(columns), batch["weak_flipped"])
    return target


def tal_loss(
    model: nn.Module, batch: Batch, state: State, ctx: StepContext
) -> tuple[Tensor, dict[str, Tensor]]:
    """Wang et al. 2020 §2.2-2.3 on the weak view: both views' BCE (batch-balanced), L_mv, L_cr."""
    opts = ctx.options
    if opts["mv_form"] not in MV_FORMS:
        raise ValueError(f"mv_form must be one of {MV_FORMS}, got {opts['mv_form']!r}")
    net = getattr(model, "module", model)  # DistributedDataParallel wraps the network
    if not hasattr(net, "classifiers"):
        raise TypeError(f"{type(net).__name__} is no multi-view network (models.MultiViewAUNet)")
    out = model(batch["weak"])
    views = out["au_views"].float()  # (B, V, n_au)
    target = _targets(batch, opts)  # (B, n_au)
    labelled = target != -1
    if opts["balance"]:
        mask = losses.batch_balance_mask(target, opts["alpha"])
    else:
        mask = labelled
    terms = {
        f"bce_view{i + 1}": losses.masked_au_bce(views[:, i], target, mask)
        for i in range(views.shape[1])
    }
    total = sum(terms.values())
    (w1, b1), (w2, b2) = net.classifiers()[:2]
    logs: dict[str, Tensor] = {}
    if opts["lambda_mv"]:
        absolute = opts["mv_form"] == "absolute"
        terms["mv"] = losses.multiview_weight_similarity(w1, b1, w2, b2, absolute=absolute)
        total = total + opts["lambda_mv"] * terms["mv"]
    if opts["lambda_cr"]:
        probs = views.sigmoid()
        terms["cr"] = losses.coregularisation_jsd(probs[:, 0], probs[:, 1])
        total = total + opts["lambda_cr"] * terms["cr"]
    with torch.no_grad():
        logs["mv_cosine"] = losses.multiview_weight_similarity(w1, b1, w2, b2).detach()
        negatives = (target == 0).sum().clamp_min(1)
        logs["kept_negatives"] = ((target == 0) & mask).sum().float() / negatives
    logs.update({f"loss_{k}": v.detach() for k, v in terms.items()})
    return total, logs


TAL_MVCR = register(
    MethodSpec(
        name="tal-mvcr",
        loss=tal_loss,
        views=("weak",),
        options={
            "lambda_mv": 1.0,  # §2.2: four losses, no weights given
            "lambda_cr": 1.0,
            "balance": True,
            "alpha": 0.2,  # §2.3
            "mv_form": "printed",
            "au_columns": None,
        },
        paper=PAPER + ", §2.2-2.3 (the multi-view baseline)",
    )
)


def _ablation(name: str, what: str, **options: Any) -> MethodSpec:
    return register(
        dataclasses.replace(
            TAL_MVCR,
            name=name,
            options={**TAL_MVCR.options, **options},
            paper=PAPER + f", Table 3 ({what})",
        )
    )


TAL_NO_MV = _ablation("tal-mvcr-nomv", "w/o L_mv", lambda_mv=0.0)
TAL_NO_CR = _ablation("tal-mvcr-nocr", "w/o L_cr", lambda_cr=0.0)
TAL_NO_BB = _ablation("tal-mvcr-nobb", "w/o batch balancing", balance=False)
