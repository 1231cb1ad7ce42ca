"""MFAR, SS-MFAR and the variants of SS-MFAR Table 1 (Gera et al. 2022, "SS-MFAR", §2-3.4).

**MFAR** (§2.1, Eq. 1-3, 5-7). One forward pass of the weak view of every image; each task's loss
runs over the images labelled for that task (the batch masks decide):

    L_MFAR = L_VA + L_AU + L_Exp                                                    (Eq. 3)

- ``L_Exp``: cross entropy with the class weights of Eq. 1, ``W[i] = N / n[i]`` (Eq. 5), reduced
  as the public code does, ``sum_i W[y_i] CE_i / n`` over the n labelled images (option
  ``ce_reduction="mean"``; the weights' scale, K = 8 on average, then multiplies the loss), or
  torch's weighted mean ``sum_i W[y_i] CE_i / sum_i W[y_i]`` (``"weighted"``); the text does not
  say which;
- ``L_AU``: binary cross entropy with the positive weights of Eq. 2, ``W[i] = neg[i] / pos[i]``
  (Eq. 6);
- ``L_VA``: ``1 - mean(CCC_valence, CCC_arousal)`` (Eq. 7).

The weights of Eq. 1-2 are counted once, on the training table, and kept in the method state (so
they are saved with the checkpoint) — not hard-coded as in the public code.

**SS-MFAR** (§2.2-2.7, Algorithm 1). The images whose expression is -1 are unlabelled data for the
expression task. Per batch (Algorithm 1, lines 3-8):

1. one forward pass of the weak views of all images and the strong views of the unlabelled ones;
2. the adaptive thresholds ``T[c]`` of Eq. 4 (mean confidence of the correctly classified
   labelled images of class c, times ``beta / (1 + gamma^-epoch)``, so they rise with the
   epoch), computed once per epoch before its first step from the model's eval-mode softmax on
   every labelled training image without augmentation (:func:`epoch_thresholds`, as the public
   code and Ada-CM do; Algorithm 1 writes them per batch, which leaves a rare class without a
   correctly classified sample in most batches); without that pass (a loader that offers none)
   from the batch's labelled weak views. Every threshold is at least 0.8 (``threshold_floor``),
   the authors' public code (``adaptive_threshold_generate``: the Eq. 4 value where it reaches
   0.8, else 0.8; 0.8 also before the first epoch). The text gives Eq. 4 alone, which on a
   model that has not yet learnt the expressions gives thresholds near 1/8: every unlabelled
   image would then count as confident, whatever its pseudo-label, and the confident /
   non-confident split of Algorithm 1 (lines 6-7) would be empty. ``threshold_floor=0`` is the
   text's reading;
3. an unlabelled image is *confident* when its weak-view maximum probability reaches the
   threshold of its predicted class; ``L_CE^u`` is the CE of its strong view against that
   pseudo-label, with the Eq. 1 weight of the pseudo-label (§2.2: "CE is cross entropy loss with
   class-specific re-scaling weights", for both CE terms; the public code uses one weighted
   criterion for both), reduced over all unlabelled images of the batch as ``L_CE^s`` is over the
   labelled ones (``ce_reduction``); ``L_KL^c`` is the symmetric KL of
   Eq. 8 between the weak and strong softmax of the non-confident ones;
4. ``L_Exp = 0.5 L_CE^s + 1.0 L_CE^u + 0.1 L_KL^c`` and ``L = L_Exp + L_AU + L_VA`` (Eq. 9).

**The variants** (§3.4, Table 1), each a ``dataclasses.replace`` of MFAR or SS-MFAR:

- ``mfar-rs`` / ``ss-mfar-rs``: re-sampling instead of re-weighting: plain CE (no Eq. 1 weights)
  and a class-balanced sampler over the expression-labelled images (every expression class equally
  often per epoch) beside every image without an expression label once per epoch
  (``class-balanced+unlabelled``). The text names re-sampling only; re-sampling the labelled
  images alone (``sampler="class-balanced"``) would also take from the AU and VA losses the
  images that lack an expression label (36% of s-Aff-Wild2's), so the row would mix two effects.
  With the unlabelled images beside the balanced stream, an epoch holds as many images as MFAR's
  and every image feeds the AU and VA losses (a majority-class image in some epochs only: its class
  is subsampled per epoch, in shuffled passes over its images);
- ``ss-mfar-nokl``: no consistency term (``consistency`` off: no KL is computed or logged);
- ``ss-mfar-50``: a ResNet-50 backbone from scratch (``backbone`` option; the run's model must be
  a ResNet-50, which the loss checks, since the loop builds the model from the profile);
- ``ssp-mfar``: SS-MFAR started from AffectNet-pretrained weights instead of MS-Celeb-1M ones
  (the loss is SS-MFAR's; the weights are the run's, see
  :data:`affectlib.studies.ssmfar.TABLE1`);
- ``ssp-mfar-sa``: ``unsupervised_on="all"``. §3.4: "unsupervised loss on x_s and x_w of all the
  images were added to respective task losses". Our reading, for want of equations: the
  expression pseudo-label CE and KL run over every image of the batch (labelled or not), and
  each other task gets the same weak-to-strong term with its own loss: BCE of the strong-view AU
  logits against the weak view's AU probabilities (soft targets), and the CCC loss of the
  strong-view VA against the weak-view VA (both targets detached), weighted by lambda_2. The
  expression term keeps SS-MFAR's confidence mask (Eq. 4 thresholds; KL on the rest), since the
  row is SSP-MFAR with the scope widened. The other reading, the pseudo-label CE on every image
  with no mask (and so no KL), is the option ``confidence_mask=False``
  (``--set extra.confidence_mask=false``).

Which weights each row of Table 1 starts from is :data:`affectlib.studies.ssmfar.TABLE1` (the
paper: MS-Celeb-1M for MFAR/SS-MFAR and their ablations, AffectNet for SSP-*, none for
SS-MFAR-50); the pretraining objectives are :mod:`affectlib.methods.pretrain`, their runs
:mod:`affectlib.pretraining`.

Command line. Each method trains with ``python -m affectlib train METHOD``; the starting weights
and the backbone of a Table 1 row are the profile's, e.g. (cpu profile, 32-px training as notebook
03 does, on the existing embedded set)::

    W=$(python -m affectlib.pretraining identity --profile cpu --image-size 32)
    python -m affectlib train ss-mfar --profile cpu --out runs/ss-mfar \\
        --data-root data/embedded/cpu-seed0 --set image_size=32 --set weights=$W
    python -m affectlib train ss-mfar-50 ... --set backbone=resnet50

(``--data-root`` matters with ``--set image_size``: without it the profile's embedded set would
be regenerated at that size.)

Options (a profile's ``extra`` overrides them): ``expr_weights`` (Eq. 1 weights, else plain CE),
``ce_reduction`` ("mean" or "weighted", Eq. 5's reduction and that of the pseudo-label CE),
``au_pos_weight`` (Eq. 2 weights, else plain BCE), ``sampler`` ("random"; "class-balanced" and
"class-balanced+unlabelled" re-sample), ``backbone`` (the backbone the method requires, None:
any); SS-MFAR adds ``lambda_supervised`` / ``lambda_unsupervised`` / ``lambda_consistency``
(Eq. 9), ``consistency``, ``beta`` / ``gamma`` / ``threshold_floor`` (Eq. 4) and
``unsupervised_on`` ("unlabelled" or "all").

Logs per step (averaged per epoch into ``metrics.csv`` as ``train_<name>``): ``loss_expr`` (the
supervised CE), ``loss_au``, ``loss_va``; SS-MFAR adds ``loss_unsup``, ``loss_kl`` (not with
``consistency`` off), ``loss_au_unsup`` / ``loss_va_unsup`` (``unsupervised_on="all"``), and per
expression class ``threshold_<Class>`` (Eq. 4), ``unlabelled_<Class>`` (unlabelled images
pseudo-labelled with the class) and ``confident_<Class>`` (those passing its threshold), so that
the share passing per class and epoch is ``confident / unlabelled``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from affectlib import losses
from affectlib.labels import AU_COLUMNS, AU_MISSING, EXPR_MISSING, EXPRESSIONS, N_EXPR
from affectlib.methods.base import Batch, MethodSpec, State, StepContext, register

PAPER = "Gera et al. 2022, SS-MFAR: Semi-supervised multi-task facial affect recognition"
UNSUPERVISED_SCOPES = ("unlabelled", "all")


def label_weights(train_table: pd.DataFrame, options: Mapping[str, Any]) -> State:
    """Eq. 1 class weights and Eq. 2 AU positive weights, counted on the training table.

    ``train_table`` is an annotation table (``expr`` with -1 = no label, one ``AU<n>`` column per
    ABAW AU with -1 = no label). Returns ``{"expr_weight": (8,) | None, "au_pos_weight": (12,) |
    None}``; an entry is None (unweighted loss) when its option ``expr_weights`` /
    ``au_pos_weight`` is False. Edge cases are those of :func:`losses.expr_class_weights` (absent
    class: 0) and :func:`losses.au_pos_weight` (AU without a positive: 1).
    """
    missing = [c for c in ("expr", *AU_COLUMNS) if c not in train_table.columns]
    if missing:
        raise KeyError(f"training table lacks the columns {missing}")
    if len(train_table) == 0:
        raise ValueError("training table is empty: no label to count the class weights on")
    # copies: pandas may hand out read-only arrays
    expr = torch.tensor(train_table["expr"].to_numpy(np.int64))
    au = torch.tensor(train_table[list(AU_COLUMNS)].to_numpy(np.int64))
    return {
        "expr_weight": losses.expr_class_weights(expr, N_EXPR) if options["expr_weights"] else None,
        "au_pos_weight": losses.au_pos_weight(au) if options["au_pos_weight"] else None,
    }


def expr_targets(batch: Batch) -> Tensor:
    """Expression labels (B,) with -1 where ``has_expr`` is False, as the losses expect."""
    return torch.where(batch["has_expr"], batch["expr"], EXPR_MISSING)


def au_targets(batch: Batch) -> Tensor:
    """AU labels (B, n_au) with -1 where unlabelled: per entry from ``au_mask`` when the batch has
    it, else per image from ``has_au`` (ABAW: an image has all its AU labels or none, so the two
    agree there)."""
    mask = batch["au_mask"] if "au_mask" in batch else batch["has_au"][:, None]
    return torch.where(mask, batch["au"], AU_MISSING)


def supervised_losses(
    out: dict[str, Tensor], batch: Batch, state: State, reduction: str = "mean"
) -> dict[str, Tensor]:
    """The three supervised losses of MFAR on one view's outputs (Eq. 5, 6, 7), each over the
    images labelled for its task; a task without labelled images in the batch gives a
    graph-attached 0. ``reduction``: Eq. 5's (option ``ce_reduction``, :func:`losses.weighted_ce`)."""
    va_rows = batch["has_va"]
    return {
        "expr": losses.weighted_ce(
            out["expr"], expr_targets(batch), state["expr_weight"], reduction
        ),
        "au": losses.au_bce(out["au"], au_targets(batch), state["au_pos_weight"]),
        "va": losses.ccc_loss(out["va"][va_rows], batch["va"][va_rows]),
    }


def check_backbone(model: nn.Module, options: Mapping[str, Any]) -> None:
    """Raise when the method requires a backbone (option ``backbone``) the model does not have.

    The loop builds the model from the profile, so a method that needs another backbone
    (``ss-mfar-50``) can only check it; models without a ``cfg`` (test doubles) pass."""
    want = options.get("backbone")
    net = getattr(model, "module", model)  # DistributedDataParallel wraps the network
    have = getattr(getattr(net, "cfg", None), "backbone", None)
    if want and have and have != want:
        raise ValueError(
            f"this method trains a {want} but the model is a {have}: set the profile's backbone "
            f"(python -m affectlib train ... --set backbone={want})"
        )


def mfar_loss(
    model: nn.Module, batch: Batch, state: State, ctx: StepContext
) -> tuple[Tensor, dict[str, Tensor]]:
    """MFAR, Eq. 3: ``L_VA + L_AU + L_Exp`` on the weak view (Figure 1)."""
    check_backbone(model, ctx.options)
    terms = supervised_losses(model(batch["weak"]), batch, state, ctx.options["ce_reduction"])
    total = terms["expr"] + terms["au"] + terms["va"]
    return total, {f"loss_{k}": v.detach() for k, v in terms.items()}


def _class_logs(thresholds: Tensor, pseudo: Tensor, confident: Tensor) -> dict[str, Tensor]:
    """Per expression class: the Eq. 4 threshold, the unlabelled images pseudo-labelled with it
    and those of them passing it (counts, so that epoch sums give the share passing)."""
    n = torch.bincount(pseudo, minlength=N_EXPR).float()
    passed = torch.bincount(pseudo[confident], minlength=N_EXPR).float()
    logs = {}
    for c, name in enumerate(EXPRESSIONS):
        logs[f"threshold_{name}"] = thresholds[c].detach().float()
        logs[f"unlabelled_{name}"] = n[c]
        logs[f"confident_{name}"] = passed[c]
    return logs


def ss_mfar_loss(
    model: nn.Module, batch: Batch, state: State, ctx: StepContext
) -> tuple[Tensor, dict[str, Tensor]]:
    """SS-MFAR, Eq. 9: ``L_Exp + L_AU + L_VA`` with the semi-supervised expression loss
    ``L_Exp = l1 L_CE^s + l2 L_CE^u + l3 L_KL^c`` (Algorithm 1; module docstring).

    Unlabelled images are those with ``has_expr`` False, or every image with
    ``unsupervised_on="all"`` (SSP-MFAR-SA, which also adds the AU and VA weak-to-strong terms).
    Weak and strong views go through one forward call (DDP sees one graph). A batch without
    unlabelled images adds graph-attached zeros."""
    opts = ctx.options
    check_backbone(model, opts)
    if opts["unsupervised_on"] not in UNSUPERVISED_SCOPES:
        raise ValueError(
            f"unsupervised_on must be one of {UNSUPERVISED_SCOPES}, got {opts['unsupervised_on']!r}"
        )
    everyone = opts["unsupervised_on"] == "all"
    weak, has_expr = batch["weak"], batch["has_expr"]
    unl = torch.ones_like(has_expr) if everyone else ~has_expr
    idx = unl.nonzero().squeeze(1)
    b = weak.shape[0]
    out = model(torch.cat([weak, batch["strong"][idx]]))
    w_out = {k: v[:b] for k, v in out.items()}
    s_out = {k: v[b:] for k, v in out.items()}

    # supervised terms on the labelled weak views (Eq. 5-7)
    terms = supervised_losses(w_out, batch, state, opts["ce_reduction"])
    # Eq. 4 thresholds: once per epoch over the labelled training images (set by
    # epoch_thresholds); without that pass, from the labelled weak views of this batch
    w_prob = w_out["expr"].float().softmax(dim=1)  # (B, C)
    if "thresholds" in state:
        thresholds = state["thresholds"].to(w_prob.device, w_prob.dtype)
    else:
        thresholds = losses.adaptive_thresholds(
            w_prob[has_expr],
            batch["expr"][has_expr],
            ctx.epoch,
            beta=opts["beta"],
            gamma=opts["gamma"],
            floor=opts["threshold_floor"],
        )
    if not opts["confidence_mask"]:  # every pseudo-label counts: no threshold, so no KL either
        thresholds = torch.zeros_like(thresholds)
    # confident unlabelled images: CE of the strong view on the weak pseudo-label (Algorithm 1, 6-7)
    u_prob = w_prob[idx]  # (U, C)
    # §2.2: the pseudo-label CE takes the Eq. 1 class weights too (none for the -RS rows)
    terms["unsup"], confident = losses.pseudo_label_ce(
        s_out["expr"], u_prob, thresholds, state["expr_weight"], opts["ce_reduction"]
    )
    expr = opts["lambda_supervised"] * terms["expr"] + opts["lambda_unsupervised"] * terms["unsup"]
    if opts["consistency"]:  # Eq. 8 on the non-confident ones; SS-MFAR-NOKL leaves it out
        s_prob = s_out["expr"].float().softmax(dim=1)
        terms["kl"] = losses.symmetric_kl(u_prob[~confident], s_prob[~confident])
        expr = expr + opts["lambda_consistency"] * terms["kl"]
    total = expr + terms["au"] + terms["va"]
    if everyone:  # SA: each other task's own loss, strong view against the detached weak view
        terms["au_unsup"] = losses.au_bce(s_out["au"], w_out["au"][idx].detach().sigmoid())
        terms["va_unsup"] = losses.ccc_loss(s_out["va"], w_out["va"][idx].detach())
        total = total + opts["lambda_unsupervised"] * (terms["au_unsup"] + terms["va_unsup"])
    logs = {f"loss_{k}": v.detach() for k, v in terms.items()}
    logs.update(_class_logs(thresholds, u_prob.argmax(dim=1), confident))
    return total, logs


def epoch_thresholds(state: State, ctx: StepContext, pred: Mapping[str, Any]) -> None:
    """SS-MFAR Eq. 4 once per epoch: the per-class thresholds from the model's eval-mode softmax
    on every labelled training image without augmentation, as the authors' public code and
    Ada-CM compute them, kept in ``state["thresholds"]`` (so in the checkpoint) and used by every
    step of the epoch. Over a whole training set a rare class (Fear, Disgust: ~3% of the labels)
    has its own correctly classified images and keeps its own threshold, where a batch of ~40
    labelled images seldom has one and falls back to the all-class mean."""
    opts = ctx.options
    labels = torch.as_tensor(np.asarray(pred["expr_true"]), dtype=torch.long)
    probs = torch.as_tensor(np.asarray(pred["expr_prob"]), dtype=torch.float32)
    state["thresholds"] = losses.adaptive_thresholds(
        probs,
        labels,
        ctx.epoch,
        beta=opts["beta"],
        gamma=opts["gamma"],
        floor=opts["threshold_floor"],
    )


MFAR = register(
    MethodSpec(
        name="mfar",
        loss=mfar_loss,
        views=("weak",),
        init_state=label_weights,
        options={
            "expr_weights": True,
            "ce_reduction": "mean",  # Eq. 5 as the public code reduces it (module docstring)
            "au_pos_weight": True,
            "sampler": "random",
            "backbone": None,
        },
        paper=PAPER + ", §2.1, Eq. 1-3",
    )
)
MFAR_RS = register(
    dataclasses.replace(
        MFAR,
        name="mfar-rs",
        options={**MFAR.options, "expr_weights": False, "sampler": "class-balanced+unlabelled"},
        paper=PAPER + ", §3.4 (MFAR-RS)",
    )
)
SS_MFAR = register(
    MethodSpec(
        name="ss-mfar",
        loss=ss_mfar_loss,
        views=("weak", "strong"),
        init_state=label_weights,
        on_train_predictions=epoch_thresholds,
        options={
            **MFAR.options,
            "lambda_supervised": losses.LAMBDAS.supervised,
            "lambda_unsupervised": losses.LAMBDAS.unsupervised,
            "lambda_consistency": losses.LAMBDAS.consistency,
            "consistency": True,
            "beta": 0.95,  # Eq. 4, from Ada-CM
            "gamma": math.e,
            "threshold_floor": 0.8,  # the public code's lower bound (module docstring)
            "unsupervised_on": "unlabelled",
            "confidence_mask": True,  # Eq. 4's thresholds pick the pseudo-labels (module docstring)
        },
        paper=PAPER + ", §2.2-2.7, Eq. 4-9, Algorithm 1",
    )
)


def _ss_variant(name: str, **options: Any) -> MethodSpec:
    return register(
        dataclasses.replace(
            SS_MFAR,
            name=name,
            options={**SS_MFAR.options, **options},
            paper=PAPER + f", §3.4 ({name.upper()})",
        )
    )


SS_MFAR_RS = _ss_variant("ss-mfar-rs", expr_weights=False, sampler="class-balanced+unlabelled")
SS_MFAR_NOKL = _ss_variant("ss-mfar-nokl", consistency=False)
SS_MFAR_50 = _ss_variant("ss-mfar-50", backbone="resnet50")
SSP_MFAR = _ss_variant("ssp-mfar")
SSP_MFAR_SA = _ss_variant("ssp-mfar-sa", unsupervised_on="all")
