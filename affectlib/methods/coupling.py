"""Coupling expressions and action units: Kollias, Sharmanska & Zafeiriou, "Distribution Matching
for Multi-Task Learning of Classification Tasks", AAAI 2024, Case Study I.

An expression-only and an AU-only data set (disjoint images) train one multi-task network; the
tasks exchange knowledge through their relatedness (Table 1) by two losses, Eq. 1:

    L_MT = L_Exp + L_AU + L_DM + L_SCA

- ``L_Exp``: cross entropy over the images with an expression label;
- ``L_AU``: binary cross entropy over the AUs each image has a label for (the paper's delta_i:
  per-AU masks, ``au_mask``, since EmotioNet codes AUs one by one); neither is class-weighted;
- ``L_DM`` (Eq. 2-3, :func:`affectlib.losses.distribution_matching`): every image's AU predictions
  matched with the AU distribution its expression predictions imply, ``q = p(expr) @ relation``;
- ``L_SCA`` (Eq. 4-6, :func:`affectlib.losses.soft_coannotation`): the expression predictions of
  every AU-labelled image matched with the soft expression label its AU *labels* imply.

Registered methods (``python -m affectlib train NAME`` and
:func:`affectlib.studies.kollias.run_study`):

- ``nc-mt``: ``L_Exp + L_AU``, no coupling ("NC MT"); trained on one task's data it is the
  single-task baseline ("ST").
- ``c-mt``: Eq. 1 ("C MT"); options ``dm`` / ``sca`` switch the two coupling terms (Table 3),
  ``dm_form`` reads Eq. 3 with the AU predictions as the soft target of the cross entropy the text
  beside it names (``"target"``, the default and our reading: no gradient reaches the AU
  predictions; the expression predictions move towards classes that imply the AUs predicted, and
  off Neutral, which implies none), with the gradient reaching the AU predictions too
  (``"printed"``: it lowers every AU probability, never raises one, and can silence the AU head)
  or as the Bernoulli cross entropy of each AU (``"bernoulli"``); see
  :func:`affectlib.losses.class_attribute_matching`; ``sca_form`` reads Eq. 6 as printed
  (``"printed"``, the default: ``-sum p log q``, linear in the expression predictions, which it
  drives to the class of largest soft label) or with the soft label as the target of the cross
  entropy the text beside it names (``"label"``: ``-sum q log p``, which pulls the predictions
  towards the soft label, a nearly uniform one); see
  :func:`affectlib.losses.class_attribute_coannotation`;
  ``relation`` / ``au_weights`` are the (classes x AUs) matrices of Eq. 2 / Eq. 4 as nested lists
  (None: domain knowledge, Du et al., on the training table's classes and AUs), ``relatedness``
  names their source for the record.
- ``st-nc-mt``: the Student-Teacher baseline of Table 2: single-task teachers' predictions fill
  the labels an image lacks (soft labels, :func:`add_soft_labels`), then ``L_Exp + L_AU`` over
  hard and soft labels alike.
- ``gradnorm`` / ``mgda-ub``: ``L_Exp`` and ``L_AU`` balanced by GradNorm (Chen et al. 2018) or
  MGDA-UB (Sener & Koltun 2018), the baselines of Table 5 (:mod:`affectlib.balancing`). Each
  owns its backward pass (``MethodSpec.step``).

The study of notebook 04 (Tables 2, 3, 5: its data settings, plan and runs) is
:mod:`affectlib.studies.kollias`; :mod:`affectlib.studies.kollias_report` turns its runs into
tables, figures and the computed statements. AUs are 1 / 0 / -1 per column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from affectlib import balancing, losses
from affectlib import relatedness as rel
from affectlib.data.table import au_columns_of, au_number
from affectlib.distributed import unwrap
from affectlib.labels import AU_MISSING, EXPR_MISSING, N_EXPR
from affectlib.methods.base import Batch, MethodSpec, State, StepContext, register

PAPER = "Kollias, Sharmanska & Zafeiriou 2024, Distribution matching for multi-task learning"


# --- labels and targets ---------------------------------------------------------------------------
def expr_targets(batch: Batch) -> Tensor:
    """Expression labels (B,) with -1 where ``has_expr`` is False."""
    return torch.where(batch["has_expr"], batch["expr"], EXPR_MISSING)


def au_targets(batch: Batch) -> Tensor:
    """AU labels (B, M) with -1 wherever ``au_mask`` is False (per entry)."""
    mask = batch["au_mask"] if "au_mask" in batch else batch["has_au"][:, None]
    return torch.where(mask, batch["au"], float(AU_MISSING))


def task_losses(out: Mapping[str, Tensor], batch: Batch) -> dict[str, Tensor]:
    """``L_Exp`` and ``L_AU`` of Eq. 1: plain CE over expression-labelled images, BCE over each
    image's annotated AUs, averaged per image and then over the AU-labelled images
    (:func:`losses.au_bce_per_image`); a task without labels in the batch gives a graph-attached
    0."""
    return {
        "expr": losses.weighted_ce(out["expr"], expr_targets(batch)),
        "au": losses.au_bce_per_image(out["au"], au_targets(batch)),
    }


def _logs(terms: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {f"loss_{k}": v.detach() for k, v in terms.items()}


# --- the coupled objective (Eq. 1-6) --------------------------------------------------------------
def coupling_terms(
    out: Mapping[str, Tensor], batch: Batch, state: State, options: Mapping[str, Any]
) -> dict[str, Tensor]:
    """``L_DM`` (Eq. 3, when ``options["dm"]``) and ``L_SCA`` (Eq. 6, when ``options["sca"]``).

    DM runs over every image of the batch ("all available train samples") and over the AUs that
    at least one class relates to (``state["dm_columns"]``): an AU no class relates to would
    have q = 0 and be pushed off for every image (see :func:`losses.class_attribute_matching`).
    SCA reads AU *labels*, so only AU-labelled entries count; an image without any AU label
    (an expression-only image) adds nothing.
    """
    p_expr = out["expr"].float().softmax(dim=1)  # (B, C)
    terms = {}
    if options["dm"]:
        cols = state["dm_columns"]
        p_au = out["au"].float().sigmoid()[:, cols]  # (B, M')
        terms["dm"] = losses.distribution_matching(
            p_expr, p_au, state["relation"][:, cols], form=options["dm_form"]
        )
    if options["sca"]:
        label_form = options["sca_form"] == "label"  # its log from the logits; printed: none read
        terms["sca"] = losses.soft_coannotation(
            p_expr,
            au_targets(batch),
            state["au_weights"],
            form=options["sca_form"],
            log_probs=out["expr"].float().log_softmax(dim=1) if label_form else None,
        )
    return terms


def coupling_state(train_table: pd.DataFrame, options: Mapping[str, Any]) -> State:
    """The matrices of Eq. 2 and Eq. 4 as tensors, and the AU columns DM matches.

    ``options["relation"]`` / ``["au_weights"]``: (C, M) nested lists; both None: domain
    knowledge (Du et al., Kollias Table 1) on ABAW's expression classes and the training table's
    AU columns, the space of the ``python -m affectlib train`` model. Raises when only one is
    given, when their shapes differ, or when a relatedness other than "domain" has no matrices.
    """
    relation, weights = options["relation"], options["au_weights"]
    if (relation is None) != (weights is None):
        raise ValueError("c-mt: give both 'relation' and 'au_weights', or neither")
    if relation is None:
        if options["relatedness"] != "domain":
            raise ValueError(
                f"c-mt: relatedness {options['relatedness']!r} needs explicit 'relation' and "
                "'au_weights' matrices (only 'domain' has a default)"
            )
        aus = [au_number(c) for c in au_columns_of(train_table)]
        table = rel.domain_table()
        relation = rel.relation_matrix(table, range(N_EXPR), aus)
        weights = rel.weight_matrix(table, range(N_EXPR), aus)
    r = torch.as_tensor(np.asarray(relation, dtype=np.float32))
    w = torch.as_tensor(np.asarray(weights, dtype=np.float32))
    if r.ndim != 2 or r.shape != w.shape:
        raise ValueError(
            f"c-mt: relation {tuple(r.shape)} and au_weights {tuple(w.shape)} must be one "
            "(classes, AUs) shape"
        )
    return {"relation": r, "au_weights": w, "dm_columns": r.amax(dim=0) > 0}


def nc_mt_loss(
    model: nn.Module, batch: Batch, state: State, ctx: StepContext
) -> tuple[Tensor, dict[str, Tensor]]:
    """NC MT: ``L_Exp + L_AU`` on the weak view (Eq. 1 without the coupling terms)."""
    terms = task_losses(model(batch["weak"]), batch)
    return terms["expr"] + terms["au"], _logs(terms)


def c_mt_loss(
    model: nn.Module, batch: Batch, state: State, ctx: StepContext
) -> tuple[Tensor, dict[str, Tensor]]:
    """C MT, Eq. 1: ``L_Exp + L_AU (+ L_DM) (+ L_SCA)`` on the weak view."""
    out = model(batch["weak"])
    terms = {**task_losses(out, batch), **coupling_terms(out, batch, state, ctx.options)}
    return torch.stack(list(terms.values())).sum(), _logs(terms)


# --- the Student-Teacher baseline (Table 2, "S-T NC MT") ------------------------------------------
SOFT_EXPR = "soft_expr_"  # + class index: a teacher's expression probability
SOFT_AU = "soft_"  # + AU column ("soft_AU12"): a teacher's AU probability


def add_soft_labels(
    table: pd.DataFrame,
    expr_prob: np.ndarray | None,
    au_prob: np.ndarray | None,
    au_columns: Sequence[str],
) -> pd.DataFrame:
    """``table`` with teachers' soft labels where a hard label is missing (NaN elsewhere).

    ``expr_prob`` (N, C): the expression teacher's softmax on every row, kept where ``expr`` is
    -1 as columns ``soft_expr_0..C-1``. ``au_prob`` (N, M): the AU teacher's sigmoid on every row,
    kept per entry where the AU column is -1 as columns ``soft_AU<n>`` in ``au_columns`` order
    (the order of the batches' AUs). Either may be None (no teacher for that task).
    """
    n = len(table)
    extra = {}
    if expr_prob is not None:
        expr_prob = np.asarray(expr_prob, dtype=float)
        if expr_prob.ndim != 2 or len(expr_prob) != n:
            raise ValueError(f"expr_prob must be ({n}, C), got {expr_prob.shape}")
        missing = table["expr"].to_numpy() == EXPR_MISSING
        for c in range(expr_prob.shape[1]):
            extra[f"{SOFT_EXPR}{c}"] = np.where(missing, expr_prob[:, c], np.nan)
    if au_prob is not None:
        au_prob = np.asarray(au_prob, dtype=float)
        if au_prob.shape != (n, len(au_columns)):
            raise ValueError(f"au_prob must be ({n}, {len(au_columns)}), got {au_prob.shape}")
        for j, col in enumerate(au_columns):
            missing = table[col].to_numpy() == AU_MISSING
            extra[f"{SOFT_AU}{col}"] = np.where(missing, au_prob[:, j], np.nan)
    return table.assign(**extra)


def soft_label_state(train_table: pd.DataFrame, options: Mapping[str, Any]) -> State:
    """The soft labels of :func:`add_soft_labels` as tensors indexed by table row: ``soft_expr``
    (N, C) and ``soft_au`` (N, M), NaN where the row has its hard label (or no teacher)."""
    e_cols = [c for c in train_table.columns if str(c).startswith(SOFT_EXPR)]
    a_cols = [c for c in train_table.columns if str(c).startswith(SOFT_AU + "AU")]
    if not e_cols and not a_cols:
        raise ValueError(
            "st-nc-mt needs the teachers' soft labels in the training table "
            "(coupling.add_soft_labels); it has none"
        )
    n = len(train_table)
    as_tensor = lambda cols: torch.tensor(  # noqa: E731
        train_table[cols].to_numpy(np.float32) if cols else np.full((n, 0), np.nan, np.float32)
    )
    return {"soft_expr": as_tensor(e_cols), "soft_au": as_tensor(a_cols)}


def student_loss(
    model: nn.Module, batch: Batch, state: State, ctx: StepContext
) -> tuple[Tensor, dict[str, Tensor]]:
    """S-T NC MT: ``L_Exp + L_AU`` where a missing label is the teacher's soft label.

    Expression: CE against the one-hot label or, where there is none, the teacher's distribution
    (``F.cross_entropy`` with probability targets), mean over the rows with either. AUs: BCE
    against the label or, per entry, the teacher's probability (soft targets), averaged per image
    and then over images as ``L_AU`` (:func:`losses.au_bce_per_image`)."""
    out = model(batch["weak"])
    rows = batch["index"].to(state["soft_expr"].device)
    logits = out["expr"].float()
    hard = F.one_hot(batch["expr"].clamp_min(0), logits.shape[1]).float()
    target = hard
    has = batch["has_expr"]
    if state["soft_expr"].shape[1]:
        soft = state["soft_expr"][rows].to(logits.device)  # (B, C)
        has_soft = torch.isfinite(soft).all(dim=1) & ~has
        target = torch.where(has[:, None], hard, torch.nan_to_num(soft))
        has = has | has_soft
    # a batch without any expression target gives a graph-attached 0, as the other losses do
    l_expr = F.cross_entropy(logits[has], target[has]) if has.any() else logits.sum() * 0.0
    au = au_targets(batch)
    if state["soft_au"].shape[1]:
        soft_au = state["soft_au"][rows].to(au.device)  # (B, M)
        au = torch.where((au == AU_MISSING) & torch.isfinite(soft_au), soft_au, au)
    terms = {"expr": l_expr, "au": losses.au_bce_per_image(out["au"], au)}
    return terms["expr"] + terms["au"], _logs(terms)


# --- balancing baselines (Table 5): GradNorm and MGDA-UB own their backward pass ------------------
TASKS = ("expr", "au")


def _labelled(batch: Batch) -> dict[str, bool]:
    return {"expr": bool(batch["has_expr"].any()), "au": bool(au_targets(batch).ne(-1).any())}


def last_shared_weight(model: nn.Module) -> nn.Parameter:
    """GradNorm's W: the weight of the last layer shared by the tasks, i.e. the last parameter
    of ``model.backbone`` with more than one dimension (a conv or linear weight)."""
    inner = unwrap(model)
    weights = [p for p in inner.backbone.parameters() if p.ndim > 1]
    if not weights:
        raise ValueError(f"{type(inner).__name__}.backbone has no weight with ndim > 1")
    return weights[-1]


def gradnorm_state(train_table: pd.DataFrame, options: Mapping[str, Any]) -> State:
    """Task weights ``w`` = 1 (learnable), and no initial losses yet (taken at the first step
    whose batch has both tasks' labels)."""
    return {"task_weights": torch.ones(len(TASKS))}


def gradnorm_step(
    net: nn.Module, method: MethodSpec, batch: Batch, state: State, ctx: StepContext
) -> tuple[Tensor, dict[str, Tensor]]:
    """One GradNorm step (Chen et al. 2018, Algorithm 1) on ``L_Exp`` and ``L_AU``.

    The network's gradient is that of ``sum_t w_t L_t`` with the weights of this step; the
    weights then take their own Adam step on ``L_grad`` (Eq. 6-7,
    :func:`affectlib.balancing.gradnorm_step`, target held constant, W =
    :func:`last_shared_weight`) and are renormalised to sum to the number of tasks. ``L_t(0)``
    are the losses of the first step whose batch has labels for both tasks; on a batch missing
    one task the weights are not updated (the ratio r_t is undefined). Adam's moments live in
    the state, so a resumed run continues them."""
    terms = task_losses(net(batch["weak"]), batch)
    task = torch.stack([terms[t].float() for t in TASKS])  # (T,)
    w = state["task_weights"].requires_grad_(True)
    both = all(_labelled(batch).values())
    if both and "initial_losses" not in state:
        state["initial_losses"] = task.detach().clone()
    if both:
        l_grad = balancing.gradnorm_step(
            w, list(task), state["initial_losses"], last_shared_weight(net), ctx.options["alpha"]
        )
        (w_grad,) = torch.autograd.grad(l_grad, w, retain_graph=True)
    total = (w.detach() * task).sum()
    total.backward()
    if both:
        # the weights' own optimiser: a fresh Adam over w restored from the state each step
        opt = torch.optim.Adam([w], lr=ctx.options["weights_lr"])
        if "weights_optim" in state:
            opt.load_state_dict(state["weights_optim"])
        w.grad = w_grad
        opt.step()
        w.grad = None
        state["weights_optim"] = opt.state_dict()
        balancing.renormalise(w)
    logs = {**_logs(terms), **{f"w_{t}": w.detach()[i] for i, t in enumerate(TASKS)}}
    return total.detach(), logs


def mgda_ub_step(
    net: nn.Module, method: MethodSpec, batch: Batch, state: State, ctx: StepContext
) -> tuple[Tensor, dict[str, Tensor]]:
    """One MGDA-UB step (Sener & Koltun 2018, §3.3) on ``L_Exp`` and ``L_AU``.

    ``g_t = dL_t / dZ`` for the shared representation Z (the model's ``feat``, the input of every
    head), flattened over the batch; ``alpha`` = the min-norm point of their convex hull
    (:func:`affectlib.balancing.mgda_weights`, Frank-Wolfe). As their Algorithm 2, each task's
    own parameters (its head, ``<task>_head``) take the unscaled gradient of its loss, and only the
    shared ones (everything before Z) the combination ``sum_t alpha_t g_t``; the returned loss is
    ``sum_t alpha_t L_t``. A task without labels in the batch has no gradient and is left out
    (alpha 0); with one task left, alpha = 1."""
    inner = unwrap(net)
    out = net(batch["weak"])
    terms = task_losses(out, batch)
    present = [t for t, has in _labelled(batch).items() if has]
    alpha = dict.fromkeys(TASKS, 0.0)
    if present:
        grads = [torch.autograd.grad(terms[t], out["feat"], retain_graph=True)[0] for t in present]
        alpha.update(zip(present, balancing.mgda_weights(grads).tolist(), strict=True))
        for t in present:  # task-specific parameters: their own loss, unscaled
            head = [p for p in getattr(inner, f"{t}_head").parameters() if p.requires_grad]
            terms[t].float().backward(inputs=head, retain_graph=True)
        shared = sum(alpha[t] * g for t, g in zip(present, grads, strict=True))
        out["feat"].backward(shared, inputs=[p for p in inner.backbone.parameters()])
    total = sum(alpha[t] * terms[t].float() for t in TASKS)
    logs = {**_logs(terms), **{f"alpha_{t}": torch.tensor(alpha[t]) for t in TASKS}}
    return total.detach(), logs


# --- registry -------------------------------------------------------------------------------------
NC_MT = register(
    MethodSpec(name="nc-mt", loss=nc_mt_loss, paper=PAPER + ", Eq. 1 without L_DM, L_SCA")
)
C_MT = register(
    MethodSpec(
        name="c-mt",
        loss=c_mt_loss,
        init_state=coupling_state,
        options={
            "dm": True,
            "dm_form": "target",  # Eq. 3, AU predictions the soft target; see the module doc
            "sca": True,
            "sca_form": "printed",  # Eq. 6 as printed; see the module doc
            "relatedness": "domain",
            "relation": None,
            "au_weights": None,
        },
        paper=PAPER + ", Case Study I, Eq. 1-6",
    )
)
ST_NC_MT = register(
    MethodSpec(
        name="st-nc-mt",
        loss=student_loss,
        init_state=soft_label_state,
        paper=PAPER + ", Table 2 (S-T NC MT)",
    )
)
GRADNORM = register(
    MethodSpec(
        name="gradnorm",
        loss=nc_mt_loss,  # what the step minimises, without the weights
        init_state=gradnorm_state,
        # alpha: Chen et al.'s asymmetry (1.5 in their NYUv2 runs); weights_lr: an assumption,
        # the paper gives none (0.025 as in common public implementations)
        options={"alpha": 1.5, "weights_lr": 0.025},
        paper="Chen et al. 2018, GradNorm, Algorithm 1 (Kollias et al. Table 5)",
        step=gradnorm_step,
    )
)
MGDA_UB = register(
    MethodSpec(
        name="mgda-ub",
        loss=nc_mt_loss,  # what the step minimises, without alpha
        paper="Sener & Koltun 2018, MGDA-UB, §3.3 (Kollias et al. Table 5)",
        step=mgda_ub_step,
    )
)
