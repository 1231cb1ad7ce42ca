"""MFAR: multi-task facial affect recognition (Gera et al. 2022, "SS-MFAR", §2.1, Eq. 1-3, 5-7).

One forward pass of the weak view of every image; each task's loss runs over the images labelled
for that task (the batch masks decide):

    L_MFAR = L_VA + L_AU + L_Exp                                                    (Eq. 3)

- ``L_Exp``: cross entropy with the class weights of Eq. 1, ``W[i] = N / n[i]`` (Eq. 5);
- ``L_AU``: binary cross entropy with the positive weights of Eq. 2, ``W[i] = neg[i] / pos[i]``
  (Eq. 6);
- ``L_VA``: ``1 - mean(CCC_valence, CCC_arousal)`` (Eq. 7).

The weights of Eq. 1-2 are counted once, on the training table, and kept in the method state (so
they are saved with the checkpoint) — not hard-coded as in the public code. The lambdas (0.5, 1,
0.1) of Eq. 9 weigh the three parts of SS-MFAR's expression loss; Eq. 3 has none, so MFAR adds its
three losses with weight 1.

Options (a profile's ``extra`` overrides them): ``expr_weights`` (Eq. 1 weights, else plain CE),
``au_pos_weight`` (Eq. 2 weights, else plain BCE), ``sampler`` ("random"; "class-balanced" and
"class-balanced+unlabelled" re-sample instead, as the paper's MFAR-RS / SS-MFAR-RS do, §3.4).

A variant is a few lines beside ``mfar``: ``register(dataclasses.replace(MFAR, name=...,
options={**MFAR.options, ...}))``, or a new ``loss`` that reuses :func:`supervised_losses`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from affectlib import losses
from affectlib.labels import AU_COLUMNS, AU_MISSING, EXPR_MISSING, N_EXPR
from affectlib.methods import Batch, MethodSpec, State, StepContext, register

PAPER = "Gera et al. 2022, SS-MFAR: Semi-supervised multi-task facial affect recognition"


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


def supervised_losses(out: dict[str, Tensor], batch: Batch, state: State) -> dict[str, Tensor]:
    """The three supervised losses of MFAR on one view's outputs (Eq. 5, 6, 7), each over the
    images labelled for its task; a task without labelled images in the batch gives a
    graph-attached 0."""
    va_rows = batch["has_va"]
    return {
        "expr": losses.weighted_ce(out["expr"], expr_targets(batch), state["expr_weight"]),
        "au": losses.au_bce(out["au"], au_targets(batch), state["au_pos_weight"]),
        "va": losses.ccc_loss(out["va"][va_rows], batch["va"][va_rows]),
    }


def mfar_loss(
    model: nn.Module, batch: Batch, state: State, ctx: StepContext
) -> tuple[Tensor, dict[str, Tensor]]:
    """MFAR, Eq. 3: ``L_VA + L_AU + L_Exp`` on the weak view (Figure 1)."""
    terms = supervised_losses(model(batch["weak"]), batch, state)
    total = terms["expr"] + terms["au"] + terms["va"]
    return total, {f"loss_{k}": v.detach() for k, v in terms.items()}


MFAR = register(
    MethodSpec(
        name="mfar",
        loss=mfar_loss,
        views=("weak",),
        init_state=label_weights,
        options={"expr_weights": True, "au_pos_weight": True, "sampler": "random"},
        paper=PAPER + ", §2.1, Eq. 1-3",
    )
)
