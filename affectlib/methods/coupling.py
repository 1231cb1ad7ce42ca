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

Registered methods (``python -m affectlib train NAME`` and :func:`run_study`):

- ``nc-mt``: ``L_Exp + L_AU``, no coupling ("NC MT"); trained on one task's data it is the
  single-task baseline ("ST").
- ``c-mt``: Eq. 1 ("C MT"); options ``dm`` / ``sca`` switch the two coupling terms (Table 3),
  ``dm_form`` reads Eq. 3 as printed (``"printed"``: it lowers every AU probability, never
  raises one) or as the Bernoulli cross entropy of each AU (``"bernoulli"``, see
  :func:`affectlib.losses.class_attribute_matching`),
  ``relation`` / ``au_weights`` are the (classes x AUs) matrices of Eq. 2 / Eq. 4 as nested lists
  (None: domain knowledge, Du et al., on the training table's classes and AUs), ``relatedness``
  names their source for the record.
- ``st-nc-mt``: the Student-Teacher baseline of Table 2: single-task teachers' predictions fill
  the labels an image lacks (soft labels, :func:`add_soft_labels`), then ``L_Exp + L_AU`` over
  hard and soft labels alike.
- ``gradnorm`` / ``mgda-ub``: ``L_Exp`` and ``L_AU`` balanced by GradNorm (Chen et al. 2018) or
  MGDA-UB (Sener & Koltun 2018), the baselines of Table 5 (:mod:`affectlib.balancing`). Each
  owns its backward pass through :func:`affectlib.train.register_step`.

The study of notebook 04 (Tables 2, 3, 5) is :func:`run_study` over :class:`Setting`s built by
:func:`affectnet_emotionet` and :func:`affwild2`; :mod:`.coupling_report` turns its runs into
tables, figures and the computed statements.

Label convention: expressions are the 7 basic classes of the paper, ABAW indices 0..6 (Neutral,
Anger, Disgust, Fear, Happiness, Sadness, Surprise); ABAW's "Other" (index 7, AffectNet's Contempt)
is no basic expression and becomes -1 (:func:`basic_expressions`). AUs are 1 / 0 / -1 per column.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from affectlib import balancing, losses, metrics, models, train
from affectlib import relatedness as rel
from affectlib.data import datasets
from affectlib.data.formats import au_columns_of
from affectlib.labels import AU_COLUMNS, AU_MISSING, EXPR_MISSING, N_EXPR, expr_index
from affectlib.methods import Batch, MethodSpec, State, StepContext, register, resolve_options
from affectlib.methods import get as get_method

PAPER = "Kollias, Sharmanska & Zafeiriou 2024, Distribution matching for multi-task learning"
BASIC = tuple(range(expr_index("Other")))  # ABAW indices of the 7 basic expressions (0..6)
N_BASIC = len(BASIC)
POSE_AUS = 51  # EmotioNet's AU51-56 code head pose, not facial action: left out of the study


# --- labels and targets ---------------------------------------------------------------------------
def expr_targets(batch: Batch) -> Tensor:
    """Expression labels (B,) with -1 where ``has_expr`` is False."""
    return torch.where(batch["has_expr"], batch["expr"], EXPR_MISSING)


def au_targets(batch: Batch) -> Tensor:
    """AU labels (B, M) with -1 wherever ``au_mask`` is False (per entry)."""
    mask = batch["au_mask"] if "au_mask" in batch else batch["has_au"][:, None]
    return torch.where(mask, batch["au"], float(AU_MISSING))


def task_losses(out: Mapping[str, Tensor], batch: Batch) -> dict[str, Tensor]:
    """``L_Exp`` and ``L_AU`` of Eq. 1: plain CE over expression-labelled images, BCE over the
    labelled AU entries (mean over entries); a task without labels in the batch gives a
    graph-attached 0."""
    return {
        "expr": losses.weighted_ce(out["expr"], expr_targets(batch)),
        "au": losses.au_bce(out["au"], au_targets(batch)),
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
        terms["sca"] = losses.soft_coannotation(p_expr, au_targets(batch), state["au_weights"])
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
        aus = [int(c[2:]) for c in au_columns_of(train_table)]
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
    against the label or, per entry, the teacher's probability (:func:`losses.au_bce` takes soft
    targets), mean over the entries with either."""
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
    terms = {"expr": l_expr, "au": losses.au_bce(out["au"], au)}
    return terms["expr"] + terms["au"], _logs(terms)


# --- balancing baselines (Table 5): GradNorm and MGDA-UB own their backward pass ------------------
TASKS = ("expr", "au")


def _labelled(batch: Batch) -> dict[str, bool]:
    return {"expr": bool(batch["has_expr"].any()), "au": bool(au_targets(batch).ne(-1).any())}


def last_shared_weight(model: nn.Module) -> nn.Parameter:
    """GradNorm's W: the weight of the last layer shared by the tasks, i.e. the last parameter
    of ``model.backbone`` with more than one dimension (a conv or linear weight)."""
    inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
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
    with train.autocast(ctx.device):
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
    (:func:`affectlib.balancing.mgda_weights`, Frank-Wolfe); the network's gradient is that of
    ``sum_t alpha_t L_t``. A task without labels in the batch has no gradient and is left out
    (alpha 0); with one task left, alpha = 1."""
    with train.autocast(ctx.device):
        out = net(batch["weak"])
        terms = task_losses(out, batch)
    present = [t for t, has in _labelled(batch).items() if has]
    alpha = dict.fromkeys(TASKS, 0.0)
    if present:
        grads = [torch.autograd.grad(terms[t], out["feat"], retain_graph=True)[0] for t in present]
        alpha.update(zip(present, balancing.mgda_weights(grads).tolist(), strict=True))
    total = sum(alpha[t] * terms[t].float() for t in TASKS)
    total.backward()
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
            "dm_form": "printed",  # Eq. 3 as printed; "bernoulli": losses.class_attribute_matching
            "sca": True,
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
    )
)
MGDA_UB = register(
    MethodSpec(
        name="mgda-ub",
        loss=nc_mt_loss,  # what the step minimises, without alpha
        paper="Sener & Koltun 2018, MGDA-UB, §3.3 (Kollias et al. Table 5)",
    )
)
train.register_step(GRADNORM.name, gradnorm_step)
train.register_step(MGDA_UB.name, mgda_ub_step)


# --- the study of notebook 04: data settings ------------------------------------------------------
def basic_expressions(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with ABAW's "Other" (AffectNet's Contempt) turned into -1: the paper's 7 basic
    expressions, ABAW indices 0..6, are the classes; the rows keep their other labels."""
    other = table["expr"].to_numpy() == expr_index("Other")
    return table.assign(expr=np.where(other, EXPR_MISSING, table["expr"].to_numpy()))


def keep_task(table: pd.DataFrame, task: str, au_columns: Sequence[str]) -> pd.DataFrame:
    """The rows labelled for ``task`` ("expr" / "au": at least one of ``au_columns``), with the
    other task's labels turned into -1: a single-task (ST) training table."""
    au = table[list(au_columns)].to_numpy()
    if task == "expr":
        rows = table["expr"].to_numpy() != EXPR_MISSING
        return table[rows].assign(**dict.fromkeys(au_columns, AU_MISSING)).reset_index(drop=True)
    if task == "au":
        rows = (au != AU_MISSING).any(axis=1)
        return table[rows].assign(expr=EXPR_MISSING).reset_index(drop=True)
    raise ValueError(f"task must be 'expr' or 'au', got {task!r}")


def labelled_rows(table: pd.DataFrame, au_columns: Sequence[str]) -> pd.DataFrame:
    """The rows with an expression label or at least one AU label (the others feed no loss)."""
    has_au = (table[list(au_columns)].to_numpy() != AU_MISSING).any(axis=1)
    return table[(table["expr"].to_numpy() != EXPR_MISSING) | has_au].reset_index(drop=True)


def subsample(table: pd.DataFrame, n: int, seed: int, salt: int = 0) -> pd.DataFrame:
    """``n`` rows drawn without replacement (all rows when ``n`` <= 0 or >= the table's length),
    in table order; the draw depends on ``(seed, salt)`` only."""
    if n <= 0 or n >= len(table):
        return table.reset_index(drop=True)
    rows = np.sort(np.random.default_rng([seed, salt]).choice(len(table), n, replace=False))
    return table.iloc[rows].reset_index(drop=True)


@dataclass(frozen=True)
class Setting:
    """One data configuration of the study.

    parts:      the multi-task training data (every set, every label);
    expr_parts: the single-task expression data; au_parts: the single-task AU data;
    au_columns: the model's AUs, in order; primary: the paper's metrics for this pair of data
                sets, (expression, AU) names of :func:`study_scores`.
    """

    name: str
    parts: tuple[train.DataPart, ...]
    expr_parts: tuple[train.DataPart, ...]
    au_parts: tuple[train.DataPart, ...]
    au_columns: tuple[str, ...]
    primary: tuple[str, str]


def _part(
    part: train.DataPart,
    train_rows: pd.DataFrame,
    val_rows: pd.DataFrame,
    test_rows: pd.DataFrame | None = None,
    name: str = "",
):
    return dataclasses.replace(
        part, name=name or part.name, train=train_rows, validation=val_rows, test=test_rows
    )


def _val_and_test(rows: pd.DataFrame, n_val: int, seed: int, salt: int):
    """``n_val`` validation rows drawn with ``seed`` and the rest of ``rows`` as the held-out test
    rows (the still-image sets have no test split of their own; their images are of distinct
    people, so the two are person-disjoint)."""
    rows = rows.reset_index(drop=True)
    if n_val <= 0 or n_val >= len(rows):
        return rows, rows.iloc[:0]
    picked = np.zeros(len(rows), bool)
    picked[np.random.default_rng([seed, salt]).choice(len(rows), n_val, replace=False)] = True
    return rows[picked].reset_index(drop=True), rows[~picked].reset_index(drop=True)


def affectnet_emotionet(
    root: str | Path, *, n_expr: int, n_au: int, n_val: int, seed: int
) -> Setting:
    """The AffectNet-format expression set and the EmotioNet-format AU set under ``root``, each
    read by its own loader (disjoint images and subjects), as the paper's AffectNet-EmotioNet pair.

    Expressions: the 7 basic classes; AffectNet's Contempt ("Other") and its unlabelled codes
    (None, Uncertain) are left out, as the paper's 7-class AffectNet is. AUs: every AU the
    EmotioNet file codes but the head-pose codes AU51-56. ``n_expr`` / ``n_au`` training and
    ``n_val`` validation images per set are drawn with ``seed`` (0: all) from the set's
    validation file, and its other validation images are the held-out test rows (each run selects
    its epoch on validation and is reported on test). Paper metrics: accuracy (expressions), AFA
    (AUs)."""
    expr = train.load_part(root, "affectnet", "affectnet")
    au = train.load_part(root, "emotionet", "emotionet")
    au_columns = tuple(
        sorted(
            (c for c in au_columns_of(au.train) if int(c[2:]) < POSE_AUS),
            key=lambda c: int(c[2:]),
        )
    )

    def basic(t: pd.DataFrame) -> pd.DataFrame:
        t = basic_expressions(t)
        return t[t["expr"] != EXPR_MISSING]

    expr = _part(
        expr,
        subsample(basic(expr.train), n_expr, seed, 1),
        *_val_and_test(basic(expr.validation), n_val, seed, 2),
    )
    au = _part(
        au,
        subsample(labelled_rows(au.train, au_columns), n_au, seed, 3),
        *_val_and_test(labelled_rows(au.validation, au_columns), n_val, seed, 4),
    )
    return Setting("affectnet+emotionet", (expr, au), (expr,), (au,), au_columns, PRIMARY_AE)


def affwild2(root: str | Path, *, n_train: int, n_val: int, seed: int) -> Setting:
    """The Aff-Wild2-format (ABAW MTL) set under ``root``: frames with expressions and the 12
    ABAW AUs, partly missing. Expressions: the 7 basic classes ("Other" frames keep their AUs but
    no expression label). ``n_train`` training and ``n_val`` validation frames with at least one
    label are drawn with ``seed`` (0: all), and as many test frames from the held-out test split
    when the set has one (the embedded set). Single-task data: the same frames, one task's labels
    each. Paper metrics: F1 for both tasks (TMIF-FEA's columns of Table 2, Table 3)."""
    part = train.load_part(root, "abaw-mtl", "affwild2")
    test = None
    if part.test is not None:
        test = subsample(labelled_rows(basic_expressions(part.test), AU_COLUMNS), n_val, seed, 7)
    part = _part(
        part,
        subsample(labelled_rows(basic_expressions(part.train), AU_COLUMNS), n_train, seed, 5),
        subsample(labelled_rows(basic_expressions(part.validation), AU_COLUMNS), n_val, seed, 6),
        test,
    )
    expr_only = _part(part, keep_task(part.train, "expr", AU_COLUMNS), part.validation, test)
    au_only = _part(part, keep_task(part.train, "au", AU_COLUMNS), part.validation, test)
    return Setting("affwild2", (part,), (expr_only,), (au_only,), AU_COLUMNS, PRIMARY_AW)


PRIMARY_AE = ("expr_acc", "au_afa")  # Kollias Table 2, AffectNet-EmotioNet: Acc - AFA
PRIMARY_AW = ("expr_f1", "au_f1")  # Kollias Table 2 (Aff-Wild2) and Table 3: F1 - F1


def relatedness_options(
    source: pd.DataFrame, au_columns: Sequence[str], label: str
) -> dict[str, Any]:
    """``c-mt`` options for one relatedness: the 7 basic classes x ``au_columns`` matrices of Eq. 2
    (:func:`relatedness.relation_matrix`) and Eq. 4 (:func:`relatedness.weight_matrix`) from
    ``source`` — :func:`relatedness.domain_table` or an :func:`relatedness.empirical` estimate
    (rule and threshold: the relatedness module's defaults, as notebook 02) — as nested lists."""
    aus = [int(c[2:]) for c in au_columns]
    return {
        "relatedness": label,
        "relation": rel.relation_matrix(source, BASIC, aus).tolist(),
        "au_weights": rel.weight_matrix(source, BASIC, aus).tolist(),
    }


# --- the study: rows, runs, scores ----------------------------------------------------------------
# each row of the paper's tables: (method, options); "DM" / "DB" name the relatedness (the paper's
# domain knowledge, Du et al. / the data base, the Aff-Wild2-like training annotations)
ARMS: dict[str, tuple[str, dict[str, Any]]] = {
    "ST": ("nc-mt", {}),
    "NC MT": ("nc-mt", {}),
    "S-T NC MT": ("st-nc-mt", {}),
    "C MT (DM)": ("c-mt", {"dm": True, "sca": True, "relatedness": "DM"}),
    "C MT (DB)": ("c-mt", {"dm": True, "sca": True, "relatedness": "DB"}),
    "soft co-annotation (DM)": ("c-mt", {"dm": False, "sca": True, "relatedness": "DM"}),
    "distr-matching (DM)": ("c-mt", {"dm": True, "sca": False, "relatedness": "DM"}),
    "soft co-annotation (DB)": ("c-mt", {"dm": False, "sca": True, "relatedness": "DB"}),
    "distr-matching (DB)": ("c-mt", {"dm": True, "sca": False, "relatedness": "DB"}),
    # the other reading of Eq. 3 (not a row of the paper's; see losses.class_attribute_matching)
    "distr-matching (DM, Bernoulli)": (
        "c-mt",
        {"dm": True, "dm_form": "bernoulli", "sca": False, "relatedness": "DM"},
    ),
    "GradNorm": ("gradnorm", {}),
    "MGDA-UB": ("mgda-ub", {}),
}
TABLE2_ARMS = ("ST", "NC MT", "S-T NC MT", "C MT (DM)", "C MT (DB)")
TABLE3_ARMS = (
    "NC MT",
    "soft co-annotation (DM)",
    "distr-matching (DM)",
    "C MT (DM)",
    "soft co-annotation (DB)",
    "distr-matching (DB)",
    "C MT (DB)",
    "distr-matching (DM, Bernoulli)",
)
TABLE5_ARMS = ("ST", "NC MT", "C MT (DM)", "C MT (DB)", "GradNorm", "MGDA-UB")
SCORE_NAMES = ("expr_acc", "expr_aa", "expr_f1", "au_f1", "au_acc", "au_afa")


def study_plan(
    table2: Mapping[str, Sequence[str]], table3: tuple[str, str], table5: tuple[str, str]
) -> pd.DataFrame:
    """The runs the three tables need, each (setting, backbone, arm) once: ``table2`` maps a
    setting to its backbones (Table 2 rows on each), ``table3`` / ``table5`` are the (setting,
    backbone) of the ablation and of the balancing comparison. Rows shared by several tables
    (ST, NC MT, C MT) are trained once. Columns: setting, backbone, arm; grouped by (setting,
    backbone) in order of appearance, arms in :data:`ARMS` order."""
    wanted = [(s, b, a) for s, bs in table2.items() for b in bs for a in TABLE2_ARMS]
    wanted += [(*table3, a) for a in TABLE3_ARMS] + [(*table5, a) for a in TABLE5_ARMS]
    plan = pd.DataFrame(wanted, columns=["setting", "backbone", "arm"]).drop_duplicates()
    groups = list(dict.fromkeys(zip(plan["setting"], plan["backbone"], strict=True)))
    order = {a: i for i, a in enumerate(ARMS)}
    plan = plan.assign(
        group=[groups.index(g) for g in zip(plan["setting"], plan["backbone"], strict=True)],
        rank=plan["arm"].map(order),
    )
    return (
        plan.sort_values(["group", "rank"]).drop(columns=["group", "rank"]).reset_index(drop=True)
    )


def study_scores(pred: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Validation scores of :func:`affectlib.train.predict`'s output, each task over its labelled
    rows (expression = argmax over the model's classes, AU = sigmoid > 0.5):

    ``expr_acc`` accuracy (AffectNet's metric), ``expr_aa`` mean per-class recall (RAF-DB's),
    ``expr_f1`` macro F1 over the model's classes (Aff-Wild2's; a class absent from labels and
    predictions scores 0), ``au_f1`` mean per-AU F1, ``au_acc`` mean per-AU accuracy,
    ``au_afa`` their mean (EmotioNet's AFA), ``f1_mean`` the mean of ``expr_f1`` and ``au_f1``
    over the tasks with labelled rows (what each run selects its epoch on). NaN for a task without
    labelled rows."""
    n_classes = pred["expr_prob"].shape[1]
    et, ep = pred["expr_true"], pred["expr_prob"].argmax(axis=1)
    at, ap = pred["au_true"], (pred["au_prob"] > 0.5).astype(int)
    acc = metrics.per_au_accuracy(at, ap)
    scores = {
        "expr_acc": metrics.expr_accuracy(et, ep),
        "expr_aa": metrics.average_class_accuracy(et, ep),
        "expr_f1": metrics.expr_f1(et, ep, n_classes),
        "au_f1": metrics.au_f1(at, ap),
        "au_acc": float(np.nanmean(acc)) if np.isfinite(acc).any() else float("nan"),
        "au_afa": metrics.afa(at, ap),
    }
    f1 = [v for v in (scores["expr_f1"], scores["au_f1"]) if np.isfinite(v)]
    return {**scores, "f1_mean": float(np.mean(f1)) if f1 else float("nan")}


@dataclass(frozen=True)
class StudyConfig:
    """Training settings shared by every run of the study.

    image_size: training pixels (the cache resizes the data set's images); batch_size, epochs,
    lr_backbone, lr_heads, schedule: Adam and its learning-rate schedule as
    :class:`affectlib.train.TrainConfig`; device; model: overrides of
    :class:`affectlib.models.ModelConfig` (``small_input``, ``feature_scale``, ``dropout``, ...);
    weights: the starting weights of each backbone (backbone name -> file; a backbone not named
    starts from scratch), loaded into every run of that backbone (the heads start fresh).
    """

    image_size: int
    batch_size: int
    epochs: int
    lr_backbone: float
    lr_heads: float
    device: str = "cpu"
    model: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    schedule: str = "constant"
    weights: Mapping[str, str] = dataclasses.field(default_factory=dict)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def _fit_one(
    setting: Setting,
    parts: Sequence[train.DataPart],
    backbone: str,
    method: str,
    overrides: Mapping[str, Any],
    seed: int,
    cfg: StudyConfig,
    out: Path,
    teachers: Mapping[str, nn.Module] | None = None,
) -> tuple[nn.Module, train.FitResult]:
    """One run: the data of ``parts``, a fresh model seeded by ``seed``, :func:`train.fit`."""
    spec = get_method(method)
    options = resolve_options(spec, overrides)
    data, data_record = train.build_multi_data(
        parts,
        image_size=cfg.image_size,
        batch_size=cfg.batch_size,
        seed=seed,
        au_columns=setting.au_columns,
        score=study_scores,
        select="f1_mean",
        progress=False,
    )
    if teachers:
        data = dataclasses.replace(data, train_table=teacher_labels(data, teachers, setting, cfg))
    model_cfg = models.ModelConfig(
        backbone=backbone,
        n_expr=N_BASIC,
        n_au=len(setting.au_columns),
        **{**cfg.model, "weights": cfg.weights.get(backbone)},
    )
    train.seed_everything(seed)  # the initialisation
    model = models.build_model(model_cfg)
    tcfg = train.TrainConfig(
        epochs=cfg.epochs,
        lr_backbone=cfg.lr_backbone,
        lr_heads=cfg.lr_heads,
        seed=seed,
        device=cfg.device,
        deterministic=cfg.device == "cpu",
        progress=False,
        checkpoints=False,
        schedule=cfg.schedule,
    )
    record = {
        "method": spec.name,
        "options": options,
        "seed": seed,
        "setting": setting.name,
        "model": dataclasses.asdict(model_cfg),
        "train": tcfg.record(),
        "data": data_record,
    }
    return model, train.fit(model, spec, data, tcfg, out, record)


def teacher_labels(
    data: train.TrainData, teachers: Mapping[str, nn.Module], setting: Setting, cfg: StudyConfig
) -> pd.DataFrame:
    """The training table with the single-task teachers' soft labels (:func:`add_soft_labels`):
    the expression teacher's softmax where a row has no expression label, the AU teacher's
    sigmoid where an AU is not labelled, predicted in eval mode on the training images."""
    table = data.train_table
    loader = datasets.BatchLoader(
        table,
        data.train.images,
        datasets.SequentialSampler(len(table)),
        cfg.batch_size,
        au_columns=setting.au_columns,
    )
    device = torch.device(cfg.device)
    expr = train.predict(teachers["expr"], loader, device)["expr_prob"]
    au = train.predict(teachers["au"], loader, device)["au_prob"]
    return add_soft_labels(table, expr, au, setting.au_columns)


def run_study(
    settings: Mapping[str, Setting],
    plan: pd.DataFrame,
    relatedness: Mapping[str, pd.DataFrame],
    cfg: StudyConfig,
    seeds: Sequence[int],
    runs_dir: str | Path | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Train every run of ``plan`` (:func:`study_plan`) for every seed; one row per (setting,
    backbone, arm, seed) with the :func:`study_scores` on the test split (on validation when the
    data has none) of the epoch selected on validation (``f1_mean``), ``wall_s`` and
    ``train_images`` (images seen in training).

    ``relatedness`` maps "DM" / "DB" to the table the ``c-mt`` rows couple with
    (:func:`relatedness_options`). "ST" is two single-task runs, the setting's ``expr_parts`` and
    ``au_parts``: its expression scores come from the first, its AU scores from the second; they
    are also the teachers of "S-T NC MT" for the same seed and backbone. Every arm of a (setting,
    backbone) uses the same seeds, so comparisons pair by seed. ``runs_dir``: where each run's
    configuration, per-epoch metrics and predictions go (None: a temporary folder, removed).
    """
    from tqdm.auto import tqdm

    unknown = sorted(set(plan["arm"]) - set(ARMS))
    if unknown:
        raise KeyError(f"unknown arms {unknown}; known: {', '.join(ARMS)}")
    missing = sorted(set(plan["setting"]) - set(settings))
    if missing:
        raise KeyError(f"plan names settings {missing} that were not built")
    scratch = tempfile.TemporaryDirectory(prefix="coupling-runs-") if runs_dir is None else None
    root = Path(scratch.name if scratch else runs_dir)
    rows = []
    bar = tqdm(
        total=len(plan) * len(seeds), desc="coupling study", unit="run", disable=not progress
    )
    try:
        for (name, backbone), group in plan.groupby(["setting", "backbone"], sort=False):
            setting, arms = settings[name], list(group["arm"])
            options = {
                k: relatedness_options(v, setting.au_columns, k) for k, v in relatedness.items()
            }
            for seed in seeds:
                where = root / _slug(name) / _slug(backbone)
                rows += _run_group(setting, backbone, arms, options, seed, cfg, where, bar)
    finally:
        bar.close()
        if scratch is not None:
            scratch.cleanup()
    return pd.DataFrame(rows)


def _reported(final: Mapping[str, Any]) -> dict[str, Any]:
    """A run's reported scores: on the test split when it had one (``test_`` keys of
    :func:`train.fit`'s metrics), else on validation."""
    tested = any(k.startswith("test_") for k in final)
    return {k[5:]: v for k, v in final.items() if k.startswith("test_")} if tested else dict(final)


def _run_group(
    setting: Setting,
    backbone: str,
    arms: Sequence[str],
    relatedness: Mapping[str, Mapping[str, Any]],
    seed: int,
    cfg: StudyConfig,
    where: Path,
    bar,
) -> list[dict[str, Any]]:
    """The arms of one (setting, backbone) for one seed; the ST runs first (teachers)."""
    rows, teachers = [], {}
    key = {"setting": setting.name, "backbone": backbone, "seed": seed}
    if "ST" in arms or "S-T NC MT" in arms:
        scores, wall, images = {}, 0.0, 0
        for task, parts in (("expr", setting.expr_parts), ("au", setting.au_parts)):
            t0 = time.perf_counter()
            out = where / f"st-{task}" / f"seed{seed}"
            teachers[task], result = _fit_one(setting, parts, backbone, "nc-mt", {}, seed, cfg, out)
            wall += time.perf_counter() - t0
            images += int(result.metrics["last_step"]) * cfg.batch_size
            scores.update(
                {k: v for k, v in _reported(result.metrics).items() if k.startswith(task + "_")}
            )
        if "ST" in arms:
            rows.append({**key, "arm": "ST", **scores, "wall_s": wall, "train_images": images})
            bar.update()
    for arm in arms:
        if arm == "ST":
            continue
        method, overrides = ARMS[arm]
        if "relatedness" in overrides:
            overrides = {**overrides, **relatedness[overrides["relatedness"]]}
        t0 = time.perf_counter()
        _, result = _fit_one(
            setting,
            setting.parts,
            backbone,
            method,
            overrides,
            seed,
            cfg,
            where / _slug(arm) / f"seed{seed}",
            teachers if method == "st-nc-mt" else None,
        )
        scores = {k: _reported(result.metrics)[k] for k in SCORE_NAMES}
        wall = time.perf_counter() - t0
        images = int(result.metrics["last_step"]) * cfg.batch_size
        rows.append({**key, "arm": arm, **scores, "wall_s": wall, "train_images": images})
        bar.update()
    return rows
