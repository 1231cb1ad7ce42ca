"""The teacher and the student of the ABAW 2021 teacher-student paper (Vu, Beurton-Aimar &
Marchand, "Multitask multi-database emotion recognition", §2.2, Eq. 1-10), for the two-output
network :class:`affectlib.models.VABinsNet` and the three-part batches of
:mod:`affectlib.data.three_parts`.

- ``ts-teacher`` (Eq. 7): ground truth only, each image supervised by its own part's task(s)
  (part 1 expressions, part 2 VA, part 3 both); trained on parts {1, 2} or {1, 2, 3} (Table 1) —
  the data decide which.
- ``ts-gru-teacher`` / ``ts-gru-student``: the same on sequences of frozen CNN features (§2.4,
  Table 3; :class:`affectlib.models.SequenceVABins`), without image views.
- ``ts-student`` (Eq. 8-10): ``lambda * supervision + (1 - lambda) * distillation`` where a task
  is supervised, distillation alone where it is not, from the frozen teacher's outputs at
  temperature T. ``sharing`` False: Eq. 9 (a part 1 / part 2 image is supervised by its part's
  task only); True: Eq. 10 (also by its shared annotation, when the Aff-Wild2-like frame has both).

The training table must hold ``part`` (1, 2, 3) and, for the student, the teacher's logits in
columns ``teacher_expr_<c>`` (7) and ``teacher_va_<d>_<k>`` (2 x n_bins) (:func:`add_teacher`);
``init_state`` turns them into tensors that the loss indexes with ``batch["index"]``. The teacher's
outputs are computed once, in eval mode, on the un-augmented training images (the teacher is
frozen, so they differ from an on-the-fly pass only by the augmentation of the student's view).
Losses: :func:`affectlib.losses.teacher_student_loss`. Logged: the supervision and distillation
terms and each part's share of the total (``part1`` ...), for per-part learning curves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from affectlib import losses
from affectlib.labels import EXPR_MISSING, VA_MISSING
from affectlib.methods.base import Batch, MethodSpec, State, StepContext, register

PAPER = "Vu, Beurton-Aimar & Marchand, ABAW 2021, §2.2, Eq. 1-10"
N_BASIC = 7


def teacher_columns(n_bins: int) -> tuple[list[str], list[str]]:
    """Names of the teacher-logit columns: expressions, then valence and arousal bins."""
    expr = [f"teacher_expr_{c}" for c in range(N_BASIC)]
    va = [f"teacher_va_{d}_{k}" for d in range(2) for k in range(n_bins)]
    return expr, va


def add_teacher(
    table: pd.DataFrame, expr_logits: np.ndarray, va_logits: np.ndarray
) -> pd.DataFrame:
    """``table`` with the teacher's logits (N, 7) and (N, 2, n_bins) as columns (row order kept)."""
    if len(expr_logits) != len(table) or len(va_logits) != len(table):
        raise ValueError(f"{len(expr_logits)} teacher outputs for a table of {len(table)} rows")
    ce, cv = teacher_columns(va_logits.shape[2])
    cols = dict(zip(ce, np.asarray(expr_logits, np.float32).T, strict=True))
    cols.update(zip(cv, np.asarray(va_logits, np.float32).reshape(len(table), -1).T, strict=True))
    return table.assign(**cols)


@torch.no_grad()
def outputs(model: nn.Module, loader, device: torch.device) -> dict[str, np.ndarray]:
    """The model's raw outputs in eval mode over ``loader``: ``expr`` logits (N, 7), ``va_bins``
    logits (N, 2, n_bins), ``va`` (N, 2), ``index`` (N,)."""
    was = model.training
    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    for batch in loader:
        out = model(batch["image"].to(device))
        for k in ("expr", "va_bins", "va"):
            parts.setdefault(k, []).append(out[k].float().cpu().numpy())
        parts.setdefault("index", []).append(batch["index"].numpy())
    model.train(was)
    return {k: np.concatenate(v) for k, v in parts.items()}


def _init_state(table: pd.DataFrame, options: Mapping[str, Any]) -> State:
    if "part" not in table.columns:
        raise ValueError("the training table has no 'part' column (data.three_parts.combine)")
    part = np.array(table["part"], dtype=np.int64)
    has_e = table["expr"].to_numpy() != EXPR_MISSING
    has_v = table["valence"].to_numpy() != VA_MISSING
    shared = bool(options["sharing"])
    state: State = {
        "part": torch.from_numpy(part),
        # Eq. 7 / 9: each part's own task; Eq. 10: also the shared annotation
        "sup_expr": torch.from_numpy(has_e & ((part != 2) | shared)),
        "sup_va": torch.from_numpy(has_v & ((part != 1) | shared)),
    }
    if options["student"]:
        ce, cv = teacher_columns(int(options["n_bins"]))
        missing = [c for c in ce + cv if c not in table.columns]
        if missing:
            raise ValueError(f"the student needs the teacher's logits; missing {missing[:3]}...")
        state["teacher_expr"] = torch.from_numpy(table[ce].to_numpy(np.float32))
        va = table[cv].to_numpy(np.float32).reshape(len(table), 2, -1)
        state["teacher_va"] = torch.from_numpy(va)
    return state


def _loss(model: nn.Module, batch: Batch, state: State, ctx: StepContext) -> tuple[Tensor, dict]:
    # images: the augmented view; the temporal stage's feature sequences: as they come
    out = model(batch["weak"] if "weak" in batch else batch["image"])
    idx = batch["index"]
    part, sup_e, sup_v = state["part"][idx], state["sup_expr"][idx], state["sup_va"][idx]
    student = ctx.options["student"]
    t_e = state["teacher_expr"][idx] if student else None
    t_v = state["teacher_va"][idx] if student else None
    args = (batch["expr"].clamp_min(0), batch["va"], sup_e, sup_v, part)
    lam, temp = float(ctx.options["lam"]), float(ctx.options["temperature"])
    terms = losses.teacher_student_loss(
        out["expr"], out["va_bins"], *args, t_e, t_v, lam=lam, temperature=temp
    )
    logs = {"supervision": terms.supervision.detach(), "distillation": terms.distillation.detach()}
    with torch.no_grad():  # each part's share of the total, for the per-part learning curves
        for p in (1, 2, 3):
            rows = part == p
            if rows.any():
                sub = losses.teacher_student_loss(
                    out["expr"][rows],
                    out["va_bins"][rows],
                    *(a[rows] for a in args),
                    None if t_e is None else t_e[rows],
                    None if t_v is None else t_v[rows],
                    lam=lam,
                    temperature=temp,
                )
                logs[f"part{p}"] = sub.total.detach()
    return terms.total, logs


TEACHER = register(
    MethodSpec(
        name="ts-teacher",
        loss=_loss,
        views=("weak",),
        init_state=_init_state,
        options={
            "student": False,
            "sharing": False,
            "lam": 1.0,
            "temperature": losses.TS_TEMPERATURE,
            "n_bins": losses.VA_BINS,
        },
        paper=PAPER + " (teacher, Eq. 7)",
    )
)
STUDENT = register(
    MethodSpec(
        name="ts-student",
        loss=_loss,
        views=("weak",),
        init_state=_init_state,
        options={
            "student": True,
            "sharing": False,
            "lam": losses.TS_LAMBDA,
            "temperature": losses.TS_TEMPERATURE,
            "n_bins": losses.VA_BINS,
        },
        paper=PAPER + " (student, Eq. 8-10)",
    )
)
# the temporal stage (§2.4, Table 3): the same losses on frozen CNN features in sequences, which
# carry no image view to augment
GRU_TEACHER = register(
    replace(TEACHER, name="ts-gru-teacher", views=(), paper=PAPER + " (§2.4, GRU teacher, Eq. 7)")
)
GRU_STUDENT = register(
    replace(STUDENT, name="ts-gru-student", views=(), paper=PAPER + " (§2.4, GRU student, Eq. 10)")
)
