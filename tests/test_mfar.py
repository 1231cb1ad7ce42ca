"""MFAR and the method registry: Eq. 1-3 on tiny tables and batches computed by hand in numpy."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from affectlib import methods
from affectlib.labels import AU_COLUMNS, N_AU, N_EXPR
from affectlib.methods import METHODS, MethodSpec, StepContext, mfar
from affectlib.models import ModelConfig, build_model

CTX = StepContext(epoch=1, step=0, epochs=1, device=torch.device("cpu"), options={})


def _table(expr: list[int], au: list[list[int]]) -> pd.DataFrame:
    df = pd.DataFrame(np.asarray(au), columns=list(AU_COLUMNS))
    df.insert(0, "expr", expr)
    return df


class FixedOutputs(nn.Module):
    """Returns the same outputs whatever the images: the loss is then a function of labels only."""

    def __init__(self, out: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.out = out

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.out


def _batch(b: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "image": torch.randint(0, 256, (b, 3, 32, 32), dtype=torch.uint8, generator=g),
        "weak": torch.randint(0, 256, (b, 3, 32, 32), dtype=torch.uint8, generator=g),
        "expr": torch.tensor([3, -1, 0, 7][:b]),
        "au": torch.randint(0, 2, (b, N_AU), generator=g).float(),
        "au_mask": torch.tensor([True, True, False, True][:b])[:, None].expand(b, N_AU).clone(),
        "va": torch.rand(b, 2, generator=g) * 2 - 1,
        "has_expr": torch.tensor([True, False, True, True][:b]),
        "has_au": torch.tensor([True, True, False, True][:b]),
        "has_va": torch.tensor([True, True, True, False][:b]),
        "index": torch.arange(b),
    }


def _ccc(x: np.ndarray, y: np.ndarray) -> float:
    mx, my = x.mean(), y.mean()
    return 2 * np.mean((x - mx) * (y - my)) / (x.var() + y.var() + (mx - my) ** 2)


# --- Eq. 1-2: weights counted on the training table ------------------------------------------------
def test_label_weights_follow_eq1_and_eq2_on_the_training_table():
    au = np.zeros((5, N_AU), dtype=int)
    au[0, 0] = au[1, 0] = 1  # AU1: 2 positives, 2 negatives among the complete rows 0..3
    au[0, 1] = 1  # AU2: 1 positive, 3 negatives
    au[4] = -1  # row 4 has no AU label: left out of Eq. 2
    state = mfar.label_weights(_table([0, 0, 4, -1, 4], au), METHODS["mfar"].options)
    # Eq. 1: N = 4 labelled, n = (2 Neutral, 2 Happiness): W = 2 each, 0 for absent classes
    want_expr = np.zeros(N_EXPR)
    want_expr[[0, 4]] = 4 / 2
    np.testing.assert_allclose(state["expr_weight"].numpy(), want_expr)
    # Eq. 2: negatives / positives, 1.0 for an AU without a positive
    want_au = np.ones(N_AU)
    want_au[:2] = [2 / 2, 3 / 1]
    np.testing.assert_allclose(state["au_pos_weight"].numpy(), want_au)


def test_label_weights_are_none_when_their_options_are_off():
    options = {**METHODS["mfar"].options, "expr_weights": False, "au_pos_weight": False}
    state = mfar.label_weights(_table([0, 1], [[0] * N_AU, [1] * N_AU]), options)
    assert state == {"expr_weight": None, "au_pos_weight": None}


def test_label_weights_name_the_missing_columns():
    with pytest.raises(KeyError, match="AU1"):
        mfar.label_weights(pd.DataFrame({"expr": [0]}), METHODS["mfar"].options)


# --- Eq. 3: the loss and its masks ------------------------------------------------------------------
def test_mfar_loss_is_the_sum_of_the_three_masked_task_losses_by_hand():
    g = torch.Generator().manual_seed(1)
    out = {
        "expr": torch.randn(4, N_EXPR, generator=g, dtype=torch.float64),
        "au": torch.randn(4, N_AU, generator=g, dtype=torch.float64),
        "va": torch.rand(4, 2, generator=g, dtype=torch.float64) * 2 - 1,
    }
    batch = _batch()
    w_expr = torch.linspace(0.5, 4.0, N_EXPR, dtype=torch.float64)
    w_au = torch.linspace(1.0, 3.0, N_AU, dtype=torch.float64)
    state = {"expr_weight": w_expr, "au_pos_weight": w_au}
    loss, logs = mfar.mfar_loss(FixedOutputs(out), batch, state, CTX)

    z, y = out["expr"].numpy(), batch["expr"].numpy()
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    rows = [0, 2, 3]  # has_expr
    w = w_expr.numpy()[y[rows]]
    ce = -(w * logp[rows, y[rows]]).sum() / w.sum()
    a, t = out["au"].numpy()[[0, 1, 3]], batch["au"].numpy()[[0, 1, 3]]  # has_au
    sig = 1 / (1 + np.exp(-a))
    bce = -(w_au.numpy() * t * np.log(sig) + (1 - t) * np.log(1 - sig)).mean()
    v, vt = out["va"].numpy()[:3], batch["va"].numpy()[:3]  # has_va
    ccc_loss = 1 - 0.5 * (_ccc(v[:, 0], vt[:, 0]) + _ccc(v[:, 1], vt[:, 1]))
    assert logs["loss_expr"].item() == pytest.approx(ce)
    assert logs["loss_au"].item() == pytest.approx(bce)
    assert logs["loss_va"].item() == pytest.approx(ccc_loss, rel=1e-5)
    assert loss.item() == pytest.approx(ce + bce + ccc_loss, rel=1e-5)  # Eq. 3: weights 1


def test_mfar_loss_ignores_the_label_values_of_masked_samples():
    model = build_model(ModelConfig()).eval()
    state = {"expr_weight": None, "au_pos_weight": None}
    batch = _batch()
    changed = {k: v.clone() for k, v in batch.items()}
    changed["expr"][1] = 5  # has_expr False
    changed["au"][2] = 1 - changed["au"][2]  # has_au False
    changed["va"][3] = -changed["va"][3]  # has_va False
    with torch.no_grad():
        a, _ = mfar.mfar_loss(model, batch, state, CTX)
        b, _ = mfar.mfar_loss(model, changed, state, CTX)
        changed["expr"][0] = 1  # a labelled sample does count
        c, _ = mfar.mfar_loss(model, changed, state, CTX)
    assert a.item() == b.item() and c.item() != a.item()


def test_au_targets_fall_back_to_has_au_without_a_per_entry_mask():
    batch = _batch()
    per_image = {k: v for k, v in batch.items() if k != "au_mask"}
    torch.testing.assert_close(mfar.au_targets(per_image), mfar.au_targets(batch))
    assert (mfar.au_targets(batch)[2] == -1).all() and (mfar.au_targets(batch)[0] >= 0).all()


# --- the registry -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_registered_method_takes_a_finite_differentiable_step(name):
    spec = METHODS[name]
    torch.manual_seed(0)
    model = build_model(ModelConfig())
    table = _table([0, 3, -1, 7], [[1] * N_AU, [0] * N_AU, [-1] * N_AU, [1, 0] * (N_AU // 2)])
    state = spec.init_state(table, spec.options)
    batch = _batch()
    for view in spec.views:
        batch[view] = batch["image"]
    loss, logs = spec.loss(model, batch, state, CTX)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert all(torch.isfinite(torch.as_tensor(v)) for v in logs.values())
    assert all(p.grad is not None for p in model.expr_head.parameters())


def test_a_variant_is_a_replaced_spec_and_a_duplicate_name_warns(monkeypatch):
    monkeypatch.setattr(methods, "METHODS", dict(METHODS))
    variant = dataclasses.replace(
        mfar.MFAR, name="mfar-rs", options={**mfar.MFAR.options, "sampler": "class-balanced"}
    )
    methods.register(variant)
    assert methods.get("mfar-rs").options["sampler"] == "class-balanced"
    with pytest.warns(UserWarning, match="mfar-rs"):
        methods.register(variant)


def test_get_and_options_name_what_is_unknown():
    with pytest.raises(KeyError, match="'nosuch'.*mfar"):
        methods.get("nosuch")
    with pytest.raises(KeyError, match="expr_weight\\b.*known: au_pos_weight"):
        methods.resolve_options(METHODS["mfar"], {"expr_weight": False})
    assert (
        methods.resolve_options(METHODS["mfar"], {"expr_weights": False})["expr_weights"] is False
    )


def test_register_rejects_an_unknown_view():
    with pytest.raises(ValueError, match="medium"):
        methods.register(MethodSpec("x", loss=mfar.mfar_loss, views=("medium",)))
