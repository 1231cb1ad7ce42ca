"""MFAR and the method registry: Eq. 1-3 on tiny tables and batches computed by hand in numpy."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from affectlib import methods
from affectlib.data import assembly
from affectlib.labels import AU_COLUMNS, EXPRESSIONS, N_AU, N_EXPR
from affectlib.methods import METHODS, MethodSpec, StepContext, mfar
from affectlib.models import ModelConfig, build_model
from affectlib.studies import baselines, ssmfar, ssmfar_report

CTX = StepContext(epoch=1, step=0, epochs=1, device=torch.device("cpu"), options=mfar.MFAR.options)


@pytest.fixture(scope="module")
def smoke_batches() -> dict:
    """The smoke profile's training table and two batches of 8 of its images."""
    from affectlib import profiles

    data, _ = assembly.build_data(profiles.get("smoke"), 0, progress=False)
    loader = iter(data.train)
    batches = [{k: v[:8] for k, v in next(loader).items()} for _ in range(2)]
    return {"table": data.train_table, "batches": batches}


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
    ce = -(w * logp[rows, y[rows]]).sum() / len(rows)  # the public code's mean (ce_reduction)
    a, t = out["au"].numpy()[[0, 1, 3]], batch["au"].numpy()[[0, 1, 3]]  # has_au
    sig = 1 / (1 + np.exp(-a))
    bce = -(w_au.numpy() * t * np.log(sig) + (1 - t) * np.log(1 - sig)).mean()
    v, vt = out["va"].numpy()[:3], batch["va"].numpy()[:3]  # has_va
    ccc_loss = 1 - 0.5 * (_ccc(v[:, 0], vt[:, 0]) + _ccc(v[:, 1], vt[:, 1]))
    assert logs["loss_expr"].item() == pytest.approx(ce)
    assert logs["loss_au"].item() == pytest.approx(bce)
    assert logs["loss_va"].item() == pytest.approx(ccc_loss, rel=1e-5)
    assert loss.item() == pytest.approx(ce + bce + ccc_loss, rel=1e-5)  # Eq. 3: weights 1
    # the other reading of Eq. 5: torch's weighted mean, only the weights' ratios count
    ctx = dataclasses.replace(CTX, options={**CTX.options, "ce_reduction": "weighted"})
    _, logs = mfar.mfar_loss(FixedOutputs(out), batch, state, ctx)
    assert logs["loss_expr"].item() == pytest.approx(ce * len(rows) / w.sum())


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
# the SS-MFAR family (other papers' methods, e.g. coupling's, have their own tests and inputs)
SS_MFAR_FAMILY = sorted(n for n, s in METHODS.items() if (s.paper or "").startswith(mfar.PAPER))


@pytest.mark.parametrize("name", SS_MFAR_FAMILY)
def test_every_registered_method_takes_a_finite_differentiable_step(name):
    spec = METHODS[name]
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone=spec.options.get("backbone") or "resnet18"))
    table = _table([0, 3, -1, 7], [[1] * N_AU, [0] * N_AU, [-1] * N_AU, [1, 0] * (N_AU // 2)])
    state = spec.init_state(table, spec.options)
    batch = _batch()
    for view in spec.views:
        batch[view] = batch["image"]
    loss, logs = spec.loss(model, batch, state, dataclasses.replace(CTX, options=spec.options))
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert all(torch.isfinite(torch.as_tensor(v)) for v in logs.values())
    assert all(p.grad is not None for p in model.expr_head.parameters())


def test_a_variant_is_a_replaced_spec_and_a_duplicate_name_warns(monkeypatch):
    monkeypatch.setattr(methods.base, "METHODS", dict(METHODS))
    variant = dataclasses.replace(
        mfar.MFAR, name="mfar-variant", options={**mfar.MFAR.options, "sampler": "class-balanced"}
    )
    methods.register(variant)
    assert methods.get("mfar-variant").options["sampler"] == "class-balanced"
    with pytest.warns(UserWarning, match="mfar-variant"):
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


# --- SS-MFAR (Eq. 4-9) on a hand-made batch ----------------------------------------------------------
class Replay(nn.Module):
    """Returns stored outputs for a batch of their number of rows (weak views first, then the
    strong views of the unlabelled images), so every loss term can be computed by hand."""

    def __init__(self, out: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.out = out

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        assert x.shape[0] == len(self.out["expr"]), (x.shape, len(self.out["expr"]))
        return self.out


def _ss_batch() -> dict[str, torch.Tensor]:
    """Four images: 0 and 2 labelled (classes 3 and 5), 1 and 3 without an expression label."""
    batch = _batch()
    batch["expr"] = torch.tensor([3, -1, 5, -1])
    batch["has_expr"] = torch.tensor([True, False, True, False])
    batch["strong"] = batch["weak"].flip(-1)
    return batch


def _ss_outputs(n_strong: int, seed: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    weak = torch.zeros(4, N_EXPR, dtype=torch.float64)
    weak[0, 3] = 2.0  # labelled class 3, classified correctly
    weak[2, 5] = 3.0  # labelled class 5, classified correctly, more confidently
    weak[1, 3] = 4.0  # unlabelled, confident pseudo-label 3
    weak[3, 6] = 0.5  # unlabelled, not confident
    strong = torch.randn(n_strong, N_EXPR, generator=g, dtype=torch.float64)
    n = 4 + n_strong
    return {
        "expr": torch.cat([weak, strong]),
        "au": torch.randn(n, N_AU, generator=g, dtype=torch.float64),
        "va": torch.rand(n, 2, generator=g, dtype=torch.float64) * 2 - 1,
    }


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _bce(logits: np.ndarray, target: np.ndarray, pos_weight: np.ndarray | None = None) -> float:
    pw = np.ones(logits.shape[1]) if pos_weight is None else pos_weight
    sig = 1 / (1 + np.exp(-logits))
    return float(-(pw * target * np.log(sig) + (1 - target) * np.log(1 - sig)).mean())


def _ss_by_hand(out, batch, state, epoch: int, everyone: bool) -> dict[str, float]:
    """Every term of Eq. 9 in numpy; the unlabelled set is rows 1, 3 or, for SA, all four."""
    z = {k: v.numpy() for k, v in out.items()}
    w_expr, w_au = state["expr_weight"].numpy(), state["au_pos_weight"].numpy()
    y = batch["expr"].numpy()
    p = _softmax(z["expr"][:4])
    lab = [0, 2]
    wy = w_expr[y[lab]]
    ce_s = -(wy * np.log(p[lab, y[lab]])).sum() / len(lab)  # ce_reduction "mean"
    # Eq. 4: per class, mean confidence of its correctly classified labelled images, else the
    # mean over all correct ones; times beta / (1 + e^-epoch); at least 0.8
    correct = {c: p[i, c] for i, c in zip(lab, y[lab], strict=True) if p[i].argmax() == c}
    fallback = np.mean(list(correct.values()))
    mean = np.array([correct.get(c, fallback) for c in range(N_EXPR)])
    thr = np.maximum(0.95 / (1 + np.e ** (-epoch)) * mean, 0.8)  # the public code's floor
    unl = [0, 1, 2, 3] if everyone else [1, 3]
    pu = p[unl]
    pseudo, conf = pu.argmax(axis=1), pu.max(axis=1)
    mask = conf >= thr[pseudo]
    ps = _softmax(z["expr"][4:])
    # §2.2: the pseudo-label CE takes the Eq. 1 class weight of each pseudo-label
    l_u = (mask * w_expr[pseudo] * -np.log(ps[np.arange(len(unl)), pseudo])).sum() / len(unl)
    rest = ~mask
    kl = ((pu[rest] - ps[rest]) * (np.log(pu[rest]) - np.log(ps[rest]))).sum(axis=1).mean()
    au_rows = [0, 1, 3]
    au = _bce(z["au"][au_rows], batch["au"].numpy()[au_rows], w_au)
    v, vt = z["va"][:3], batch["va"].numpy()[:3]
    va = 1 - 0.5 * (_ccc(v[:, 0], vt[:, 0]) + _ccc(v[:, 1], vt[:, 1]))
    terms = {"ce_s": ce_s, "l_u": l_u, "kl": kl, "au": au, "va": va, "mask": mask, "thr": thr}
    if everyone:
        terms["au_u"] = _bce(z["au"][4:], 1 / (1 + np.exp(-z["au"][:4])))
        sv, wv = z["va"][4:], z["va"][:4]
        terms["va_u"] = 1 - 0.5 * (_ccc(sv[:, 0], wv[:, 0]) + _ccc(sv[:, 1], wv[:, 1]))
    return terms


def _ss_state() -> dict[str, torch.Tensor]:
    return {
        "expr_weight": torch.linspace(0.5, 4.0, N_EXPR, dtype=torch.float64),
        "au_pos_weight": torch.linspace(1.0, 3.0, N_AU, dtype=torch.float64),
    }


def _ctx(name: str, epoch: int = 1) -> StepContext:
    return StepContext(epoch, 0, 3, torch.device("cpu"), METHODS[name].options)


def test_ss_mfar_loss_is_eq9_by_hand_with_one_confident_and_one_rejected_image():
    batch, state, out = _ss_batch(), _ss_state(), _ss_outputs(2)
    loss, logs = METHODS["ss-mfar"].loss(Replay(out), batch, state, _ctx("ss-mfar"))
    t = _ss_by_hand(out, batch, state, epoch=1, everyone=False)
    assert t["mask"].tolist() == [True, False]  # both branches of Algorithm 1, line 6
    want = 0.5 * t["ce_s"] + 1.0 * t["l_u"] + 0.1 * t["kl"] + t["au"] + t["va"]
    assert loss.item() == pytest.approx(want, rel=1e-6)
    assert logs["loss_unsup"].item() == pytest.approx(t["l_u"])
    assert logs["loss_kl"].item() == pytest.approx(t["kl"])
    np.testing.assert_allclose(
        [logs[f"threshold_{e}"].item() for e in EXPRESSIONS], t["thr"], rtol=1e-6
    )
    fear, surprise = EXPRESSIONS[3], EXPRESSIONS[6]  # the pseudo-labels of images 1 and 3
    assert logs[f"unlabelled_{fear}"].item() == 1 and logs[f"unlabelled_{surprise}"].item() == 1
    assert logs[f"confident_{fear}"].item() == 1 and logs[f"confident_{surprise}"].item() == 0


def test_ss_mfar_nokl_has_no_kl_term_in_its_loss_or_its_logs():
    batch, state, out = _ss_batch(), _ss_state(), _ss_outputs(2)
    loss, logs = METHODS["ss-mfar-nokl"].loss(Replay(out), batch, state, _ctx("ss-mfar-nokl"))
    t = _ss_by_hand(out, batch, state, epoch=1, everyone=False)
    assert t["kl"] > 0  # the dropped term would have counted
    assert "loss_kl" not in logs
    assert loss.item() == pytest.approx(0.5 * t["ce_s"] + t["l_u"] + t["au"] + t["va"], rel=1e-6)


def test_ss_mfar_thresholds_rise_with_the_epoch_by_the_eq4_factor():
    batch, state, out = _ss_batch(), _ss_state(), _ss_outputs(2)
    thr = []
    eq4_alone = {**METHODS["ss-mfar"].options, "threshold_floor": 0.0}  # below the 0.8 floor
    for epoch in (1, 2, 3, 6):
        ctx = StepContext(epoch, 0, 3, torch.device("cpu"), eq4_alone)
        _, logs = METHODS["ss-mfar"].loss(Replay(out), batch, state, ctx)
        thr.append(np.array([logs[f"threshold_{e}"].item() for e in EXPRESSIONS]))
    factor = [0.95 / (1 + np.e ** (-e)) for e in (1, 2, 3, 6)]
    for k in range(1, 4):
        assert (thr[k] > thr[k - 1]).all()
        np.testing.assert_allclose(thr[k] / thr[0], factor[k] / factor[0], rtol=1e-6)


def test_ssp_mfar_sa_adds_the_unsupervised_loss_of_every_task_for_all_images():
    batch, state, out = _ss_batch(), _ss_state(), _ss_outputs(4)
    spec = METHODS["ssp-mfar-sa"]
    loss, logs = spec.loss(Replay(out), batch, state, _ctx("ssp-mfar-sa"))  # 4 weak + 4 strong
    t = _ss_by_hand(out, batch, state, epoch=1, everyone=True)
    want = 0.5 * t["ce_s"] + t["l_u"] + 0.1 * t["kl"] + t["au"] + t["va"] + t["au_u"] + t["va_u"]
    assert loss.item() == pytest.approx(want, rel=1e-6)
    assert logs["loss_au_unsup"].item() == pytest.approx(t["au_u"])
    assert logs["loss_va_unsup"].item() == pytest.approx(t["va_u"], rel=1e-6)
    assert sum(logs[f"unlabelled_{e}"].item() for e in EXPRESSIONS) == 4  # labelled ones too
    # SS-MFAR and SSP-MFAR feed only the two unlabelled strong views (a Replay of 6 rows)
    for name in ("ss-mfar", "ssp-mfar"):
        METHODS[name].loss(Replay(_ss_outputs(2)), batch, state, _ctx(name))


def test_ssp_mfar_sa_without_the_confidence_mask_takes_every_pseudo_label_and_no_kl():
    batch, state, out = _ss_batch(), _ss_state(), _ss_outputs(4)
    ctx = StepContext(
        1, 0, 3, torch.device("cpu"), {**METHODS["ssp-mfar-sa"].options, "confidence_mask": False}
    )
    loss, logs = METHODS["ssp-mfar-sa"].loss(Replay(out), batch, state, ctx)
    t = _ss_by_hand(out, batch, state, epoch=1, everyone=True)
    assert not t["mask"].all()  # with the mask some pseudo-labels would be dropped
    z = out["expr"].numpy()
    p, ps = _softmax(z[:4]), _softmax(z[4:])
    pseudo, w = p.argmax(axis=1), state["expr_weight"].numpy()
    l_u = (w[pseudo] * -np.log(ps[np.arange(4), pseudo])).sum() / 4  # all four, weighted
    assert logs["loss_unsup"].item() == pytest.approx(l_u, rel=1e-6)
    assert logs["loss_kl"].item() == 0
    want = 0.5 * t["ce_s"] + l_u + t["au"] + t["va"] + t["au_u"] + t["va_u"]
    assert loss.item() == pytest.approx(want, rel=1e-6)


def test_ss_mfar_on_a_fully_labelled_batch_adds_zero_unsupervised_terms():
    batch, state = _ss_batch(), _ss_state()
    batch["expr"], batch["has_expr"] = torch.tensor([3, 1, 5, 0]), torch.ones(4, dtype=torch.bool)
    out = _ss_outputs(0)
    loss, logs = METHODS["ss-mfar"].loss(Replay(out), batch, state, _ctx("ss-mfar"))
    assert logs["loss_unsup"].item() == 0 and logs["loss_kl"].item() == 0
    mfar_like = 0.5 * logs["loss_expr"] + logs["loss_au"] + logs["loss_va"]
    assert torch.isfinite(loss) and loss.item() == pytest.approx(mfar_like.item())


def test_ss_mfar_names_a_wrong_unsupervised_scope():
    ctx = StepContext(1, 0, 1, torch.device("cpu"), {**METHODS["ss-mfar"].options})
    ctx.options["unsupervised_on"] = "labelled"
    with pytest.raises(ValueError, match="unsupervised_on.*'labelled'"):
        METHODS["ss-mfar"].loss(Replay(_ss_outputs(2)), _ss_batch(), _ss_state(), ctx)


def test_ss_mfar_50_refuses_a_model_that_is_not_a_resnet50():
    model = build_model(ModelConfig(backbone="resnet18"))
    batch = _ss_batch()
    with pytest.raises(ValueError, match="resnet50.*--set backbone=resnet50"):
        METHODS["ss-mfar-50"].loss(model, batch, _ss_state(), _ctx("ss-mfar-50"))


# --- the variants and the rows of Table 1 -----------------------------------------------------------
def test_rs_variants_drop_the_eq1_weights_and_keep_the_au_weights():
    table = _table([0, 0, 4, -1], [[1] * N_AU, [0] * N_AU, [0] * N_AU, [1] * N_AU])
    for name in ("mfar-rs", "ss-mfar-rs"):
        state = METHODS[name].init_state(table, METHODS[name].options)
        assert state["expr_weight"] is None and state["au_pos_weight"] is not None


@pytest.mark.parametrize("name", ["mfar-rs", "ss-mfar-rs"])
def test_rs_variants_sample_the_expression_classes_evenly_and_keep_every_unlabelled_image(name):
    from affectlib import profiles

    sampler = METHODS[name].options["sampler"]
    data, _ = assembly.build_data(profiles.get("smoke"), 0, sampler=sampler, progress=False)
    expr = data.train_table["expr"].to_numpy()
    drawn = expr[data.train.sampler.indices(0)]
    counts = np.bincount(drawn[drawn >= 0], minlength=N_EXPR)
    present = np.bincount(expr[expr >= 0], minlength=N_EXPR) > 0
    assert len(set(counts[present])) == 1 and (counts[~present] == 0).all()
    # the images without an expression label still feed the AU and VA losses, once per epoch
    rows, unlabelled = data.train.sampler.indices(0), np.flatnonzero(expr == -1)
    assert len(unlabelled) and np.array_equal(np.sort(rows[np.isin(rows, unlabelled)]), unlabelled)
    # the natural frequencies are far from even, so the check can fail
    natural = np.bincount(expr[expr >= 0], minlength=N_EXPR)[present]
    assert natural.max() > 2 * natural.min()


def test_table1_rows_are_the_papers_rows_and_registered_methods():
    from affectlib.files import paper_table

    paper_rows = set(paper_table("ssmfar_table1")["method"])
    assert [r.paper_row for r in ssmfar.TABLE1] == [
        r for r in paper_table("ssmfar_table1")["method"] if r != "Baseline"
    ]
    for row in ssmfar.TABLE1:
        assert row.paper_row in paper_rows and row.method in METHODS
        assert row.init in ssmfar.INIT_SOURCES
        assert (METHODS[row.method].options.get("backbone") or "resnet18") == row.backbone
    assert ssmfar.table1_row("ss-mfar-50").init == "none"
    with pytest.raises(KeyError, match="pretrain-affectnet.*rows: mfar"):
        ssmfar.table1_row("pretrain-affectnet")


def test_ss_mfar_nokl_trains_through_the_loop_and_its_metrics_lack_the_kl_column(tmp_path):
    from affectlib import profiles, train

    p = profiles.get("smoke", epochs=1, batch_size=48)
    train.run("ss-mfar-nokl", p, tmp_path / "nokl", 0, progress=False)
    history = pd.read_csv(tmp_path / "nokl" / "metrics.csv")
    assert "train_loss_unsup" in history and "train_loss_kl" not in history
    assert "train_threshold_Neutral" in history and np.isfinite(history["train_loss"]).all()


def test_train_run_selects_the_epoch_on_the_score_it_is_given(tmp_path):
    import json

    from affectlib import profiles, train
    from affectlib.studies import instrument  # registers "au-readout"

    assert instrument.AU_READOUT.name == "au-readout"
    p = profiles.get("smoke", epochs=2, batch_size=48)
    fit = train.run("au-readout", p, tmp_path / "au", 0, select="au_f1", progress=False)
    history = pd.read_csv(tmp_path / "au" / "metrics.csv")
    best = history.loc[history["au_f1"].idxmax()]
    assert fit.metrics["epoch"] == best["epoch"] and fit.metrics["au_f1"] == best["au_f1"]
    assert json.loads((tmp_path / "au" / "config.json").read_text())["select"] == "au_f1"
    with pytest.raises(ValueError, match="select 'kappa' is none of the scores"):
        train.run("mfar", p, tmp_path / "bad", 0, select="kappa", progress=False)


@pytest.mark.parametrize("row", ssmfar.TABLE1, ids=[r.method for r in ssmfar.TABLE1])
def test_every_table1_method_takes_two_finite_steps_on_smoke_batches(smoke_batches, row):
    from affectlib.data import augment

    spec = METHODS[row.method]
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone=row.backbone, feature_scale=16.0))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    before = [p.detach().clone() for p in model.backbone.parameters()][:3]
    state = spec.init_state(smoke_batches["table"], spec.options)
    for step, batch in enumerate(smoke_batches["batches"]):
        batch = dict(batch)
        gen = augment.seeded_generator(0, 0, step)
        for view in spec.views:
            batch[view] = getattr(augment, view)(batch["image"], gen).images
        ctx = StepContext(1, step, 1, torch.device("cpu"), spec.options)
        loss, logs = spec.loss(model, batch, state, ctx)
        assert torch.isfinite(loss) and all(torch.isfinite(v) for v in logs.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = list(model.backbone.parameters())[:3]
    assert any((a != b.detach()).any() for a, b in zip(before, after, strict=True))


def test_against_chance_places_each_row_by_its_interval():
    table = pd.DataFrame(
        {
            "row": ["A", "B", "C"],
            "overall": [0.50, 0.30, 0.10],
            "overall lo": [0.41, 0.20, 0.05],
            "overall hi": [0.60, 0.45, 0.19],
        }
    )
    out = ssmfar_report.against_chance(table, {"overall": 0.40})
    assert "above chance" in out[0] and "at chance" in out[1] and "below chance" in out[2]
    assert out[-1].startswith("1 of 3 rows score clearly above chance on overall;")
    everyone = ssmfar_report.against_chance(table.iloc[:1], {"overall": 0.40})
    assert everyone[-1] == "1 of 1 rows score clearly above chance on overall."


def test_epoch_thresholds_give_a_rare_class_its_own_threshold():
    # 40 labelled images: class 0 right at confidence 0.5; the rare class 4 (Fear) right twice at
    # 0.9; 4 unlabelled rows (-1) at 0.99 that must not count
    n_expr = len(mfar.EXPRESSIONS)
    labels = np.array([0] * 38 + [4, 4] + [-1] * 4)
    probs = np.full((44, n_expr), 0.5 / (n_expr - 1))
    probs[:38, 0] = 0.5
    probs[38:40] = 0.1 / (n_expr - 1)
    probs[38:40, 4] = 0.9
    probs[40:] = 0.01 / (n_expr - 1)
    probs[40:, 2] = 0.99
    state = {}
    eq4_alone = {**mfar.SS_MFAR.options, "threshold_floor": 0.0}  # the text's reading
    ctx = StepContext(2, 0, 4, torch.device("cpu"), eq4_alone)
    mfar.epoch_thresholds(state, ctx, {"expr_true": labels, "expr_prob": probs})
    scale = 0.95 / (1 + np.e**-2)  # Eq. 4 at epoch 2, beta 0.95
    t = state["thresholds"].numpy()
    assert t[4] == pytest.approx(0.9 * scale) and t[0] == pytest.approx(0.5 * scale)
    # a class with no correct labelled image takes the mean over all correct ones (losses docstring)
    assert t[2] == pytest.approx((38 * 0.5 + 2 * 0.9) / 40 * scale)


def test_ss_mfar_thresholds_never_fall_below_the_public_codes_floor_of_0_8():
    # before epoch 1 the head is untrained: every labelled image near 1/8, two classes right.
    # Eq. 4 alone would give ~0.125 * 0.95 / (1 + e^-1) = 0.087, letting every unlabelled image
    # through; SS-MFAR's default (the public code) keeps 0.8. At epoch 6 a class right at 0.99
    # passes the floor with its own Eq. 4 value.
    n_expr = len(mfar.EXPRESSIONS)
    labels = np.array([0, 1, 2, 3])
    probs = np.full((4, n_expr), 0.12)
    probs[0, 0] = probs[1, 1] = 0.16
    probs[2:, 5] = 0.16  # wrong for classes 2 and 3
    state = {}
    ctx = StepContext(1, 0, 4, torch.device("cpu"), mfar.SS_MFAR.options)
    mfar.epoch_thresholds(state, ctx, {"expr_true": labels, "expr_prob": probs})
    np.testing.assert_allclose(state["thresholds"].numpy(), 0.8)
    assert mfar.SS_MFAR_RS.options["threshold_floor"] == 0.8  # every SS variant inherits it
    probs = np.full((2, n_expr), 0.01 / (n_expr - 1))
    probs[:, 4] = 0.99
    ctx = StepContext(6, 0, 4, torch.device("cpu"), mfar.SS_MFAR.options)
    mfar.epoch_thresholds(state, ctx, {"expr_true": np.array([4, 4]), "expr_prob": probs})
    t = state["thresholds"].numpy()
    assert t[4] == pytest.approx(0.99 * 0.95 / (1 + np.e**-6)) and t[4] > 0.9
    # a class with no correct image takes the mean over all correct ones (losses docstring)
    np.testing.assert_allclose(np.delete(t, 4), t[4], rtol=1e-6)


def test_ss_mfar_uses_the_epoch_thresholds_in_every_step_when_they_are_set(smoke_batches):
    from affectlib.data import augment

    spec = METHODS["ss-mfar"]
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="resnet18", feature_scale=16.0))
    state = spec.init_state(smoke_batches["table"], spec.options)
    state["thresholds"] = torch.full((len(mfar.EXPRESSIONS),), 0.321)
    batch = dict(smoke_batches["batches"][0])
    gen = augment.seeded_generator(0, 0, 0)
    for view in spec.views:
        batch[view] = getattr(augment, view)(batch["image"], gen).images
    ctx = StepContext(1, 0, 1, torch.device("cpu"), spec.options)
    _, logs = spec.loss(model, batch, state, ctx)
    assert all(float(logs[f"threshold_{c}"]) == pytest.approx(0.321) for c in mfar.EXPRESSIONS)


# --- figures ------------------------------------------------------------------------------------


def test_per_au_matrix_lists_aus_in_numeric_order_and_means_over_seeds():
    rows = [
        {"method": m, "seed": s, "AU": a, "F1": f}
        for m, f in (("ss-mfar", 0.2), ("mfar", 0.4))
        for s in (0, 1)
        for a in ("AU10", "AU2", "AU1")
    ]
    rows[0]["F1"] = 0.4  # ss-mfar, seed 0, AU10
    m = ssmfar_report.per_au_matrix(pd.DataFrame(rows))
    assert list(m.index) == ["AU1", "AU2", "AU10"]
    assert list(m.columns) == ["mfar", "ss-mfar"]  # Table 1's order
    assert m.loc["AU10", "ss-mfar"] == pytest.approx(0.3)


def test_confusion_figure_shows_each_seed_so_a_collapse_is_not_averaged_away():
    import matplotlib

    matplotlib.use("Agg")
    t = np.repeat(np.arange(N_EXPR), 4)
    good = np.eye(N_EXPR)[t]
    collapsed = np.eye(N_EXPR)[np.zeros_like(t)]  # every image predicted Neutral
    preds = {
        ("mfar", 0): {"expr_true": t, "expr_prob": good},
        ("mfar", 1): {"expr_true": t, "expr_prob": collapsed},
    }
    fig = ssmfar_report.plot_confusion(preds, ["mfar"])
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["mfar, seed 0", "mfar, seed 1"]
    first_column = [t.get_text() for t in panels[1].texts[::N_EXPR]]
    assert first_column == ["100"] * N_EXPR  # the collapsed seed: every row in column 0
    assert [t.get_text() for t in panels[0].get_xticklabels()] == list(EXPRESSIONS)


def test_table1_carries_the_baselines_below_the_methods_and_the_papers_baseline_row():
    runs = pd.DataFrame(
        [
            {"method": "mfar", "row": "MFAR", "seed": s, **dict(zip(ssmfar.SCORES, v, strict=True))}
            for s, v in enumerate([(0.2, 0.3, 0.4, 0.9), (0.3, 0.4, 0.5, 1.2)])
        ]
    )
    t1 = ssmfar_report.table1(runs)
    base = pd.DataFrame(
        [{"baseline": "chance", "expr_f1": 0.1, "au_f1": 0.2, "va": 0.0, "overall": 0.3}]
    )
    out = baselines.with_baselines(t1, base)
    assert list(out.columns) == list(t1.columns)
    assert list(out["row"]) == ["MFAR", "chance", "ABAW baseline (paper's; not run)"]
    chance, paper = out.iloc[1], out.iloc[2]
    assert chance["method"] == "baseline" and chance["overall"] == 0.3
    assert np.isnan(chance["overall lo"]) and np.isnan(chance["paper: overall"])
    # SS-MFAR Table 1's baseline row: overall 0.30, no per-task numbers; ours not run
    assert paper["paper: overall"] == 0.30 and np.isnan(paper["paper: expr_f1"])
    assert np.isnan(paper["overall"])
    view = ssmfar_report.formatted(out)
    assert view.loc[1, "overall"] == "0.300" and view.loc[2, "overall"] == ""
    # on real data no label-blind rows: the paper's baseline row alone
    assert list(baselines.with_baselines(t1, None)["row"])[1:] == [paper["row"]]


def test_with_probe_adds_the_read_out_probes_task_scores_and_no_overall():
    base = pd.DataFrame(
        [{"baseline": "chance", "expr_f1": 0.1, "au_f1": 0.2, "va": 0.0, "overall": 0.3}]
    )
    probe = pd.DataFrame(  # readout_probe's rows: per AU, then the tasks
        {"measure": ["AU1", "expr_f1", "au_f1", "va"], "probe": [0.7, 0.41, 0.54, 0.34]}
    )
    out = baselines.with_probe(base, probe)
    assert out["baseline"].tolist() == ["chance", baselines.PROBE_ROW]
    row = out.iloc[1]
    assert (row["expr_f1"], row["au_f1"], row["va"]) == (0.41, 0.54, 0.34)
    assert np.isnan(row["overall"])  # fitted task by task: no joint score
    assert baselines.with_probe(None, probe) is None  # real data: no baselines


def test_au_every_on_is_two_p_over_n_plus_p_per_au_on_the_split():
    from sklearn.metrics import f1_score

    cols = {c: [0, 0, 0, 0, 1] for c in AU_COLUMNS}
    cols["AU1"], cols["AU2"] = [1, 1, 0, -1, 0], [0, 1, 0, 0, 0]
    truth = pd.DataFrame({"split": ["test"] * 4 + ["train"], **cols})
    f1 = baselines.au_every_on(truth, "test")
    assert f1["AU1"] == pytest.approx(f1_score([1, 1, 0], [1, 1, 1]))  # 2*2 / (3 + 2) = 0.8
    assert f1["AU2"] == pytest.approx(2 * 1 / (4 + 1)) and f1["AU4"] == 0.0


def test_table1_figure_draws_the_noise_ceiling_everywhere_and_every_au_on_on_the_au_panel():
    import matplotlib.pyplot as plt

    runs = pd.DataFrame(
        [
            {"method": "mfar", "row": "MFAR", "seed": s, **dict(zip(ssmfar.SCORES, v, strict=True))}
            for s, v in enumerate([(0.2, 0.3, 0.4, 0.9), (0.3, 0.4, 0.5, 1.2)])
        ]
    )
    base = pd.DataFrame(
        [
            {"baseline": "majority, every AU", "expr_f1": 0.05, "au_f1": 0.31, "va": 0.0,
             "overall": 0.36},
            {"baseline": "noise ceiling", "expr_f1": 0.9, "au_f1": 0.88, "va": 0.95,
             "overall": 2.7},
        ]
    )  # fmt: skip
    probe = {"baseline": baselines.PROBE_ROW, "expr_f1": 0.41, "au_f1": 0.54, "va": 0.34}
    base = pd.concat([base, pd.DataFrame([probe | {"overall": np.nan}])], ignore_index=True)
    fig = ssmfar_report.plot_table1(ssmfar_report.table1(runs), {"au_f1": 0.18}, base)
    drawn = {
        m: sorted(round(ln.get_xdata()[0], 2) for ln in ax.lines if ln.get_linestyle() != "None")
        for m, ax in zip(ssmfar.SCORES, fig.axes, strict=False)
    }
    # every panel: the line at 0 and the ceiling; each task's panel the probe; the AU panel also
    # chance and every AU on; the overall panel no probe (it has no joint score)
    assert drawn["expr_f1"] == [0.0, 0.41, 0.9] and drawn["overall"] == [0.0, 2.7]
    assert drawn["au_f1"] == [0.0, 0.18, 0.31, 0.54, 0.88]
    legend = {t.get_text() for t in fig.legends[0].get_texts()}
    assert legend >= {"noise ceiling", "every AU on", "HOG read-out probe"}
    plt.close(fig)
    per_au = pd.DataFrame([{"method": "mfar", "row": "MFAR", "seed": 0, "AU": "AU1", "F1": 0.5}])
    fig = ssmfar_report.plot_au_f1(per_au, every_on={"AU1": 0.8})
    assert [c.get_label() for c in fig.axes[0].collections] == ["every AU on"]
    plt.close(fig)


def test_both_control_arms_are_described_and_neither_counts_as_a_papers_claim():
    # three seeds: MFAR scores 1.0, 1.1, 1.2 overall; the quarter arm 0.4 lower, the half arm
    # 0.1 lower give or take 0.05 (a spread, so the paired interval is finite); SS-MFAR above MFAR
    rows = []
    for s in range(3):
        for method, row, shift in (
            ("mfar", "MFAR", 0.0),
            ("mfar-q25", "MFAR, 25% of expression labels", -0.4),
            ("mfar-q50", "MFAR, 50% of expression labels", -0.1 + 0.05 * (s - 1)),
            ("ss-mfar", "SS-MFAR", 0.2 + 0.01 * s),
        ):
            rows.append(
                {"method": method, "row": row, "seed": s, "expr_f1": 0.3 + shift / 3,
                 "au_f1": 0.3, "va": 0.3, "overall": 1.0 + 0.1 * s + shift}
            )  # fmt: skip
    runs = pd.DataFrame(rows)
    pairs = ssmfar_report.paired(runs, (("ss-mfar", "mfar"),) + ssmfar.CONTROLS, ["overall"])
    assert len(pairs) == 3
    said = ssmfar_report.control_sentences(pairs)
    assert said[0].startswith(
        "positive control, overall: with all labels minus with 25% of them +0.400"
    )
    assert said[0].endswith("detected.")
    assert said[1].startswith(
        "positive control, overall: with all labels minus with 50% of them +0.100"
    )
    assert said[1].endswith("not detected (no clear difference).")  # 0.1 +- 4.3 * 0.05 / sqrt 3
    assert said[2].startswith("smallest difference in overall these seeds could tell from 0")
    # the paper's claims only: SS-MFAR above MFAR, not the two control arms
    assert ssmfar_report.verdict_counts(pairs, "overall") == "1 claims on overall: 1 holds."


def test_the_control_arms_train_in_one_plan_each_on_its_own_labels(tmp_path, monkeypatch):
    # both arms go to the executor as one plan (so two workers are never left with one run each
    # at the end of an arm), each job on the data root with its own share of the labels
    from types import SimpleNamespace

    from affectlib import profiles

    plans = []

    def fake_plan(jobs, **kwargs):
        plans.append(jobs)
        return [
            {**{k: 0.0 for k in ssmfar.SCORES}, "method": j.kwargs["method"],
             "row": j.kwargs["row"], "seed": j.kwargs["seed"], "split": "test", "epoch": 1,
             "wall_s": 0.0, "reused": False, "dir": str(j.out_dir)}
            for j in jobs
        ]  # fmt: skip

    monkeypatch.setattr(ssmfar, "run_plan", fake_plan)
    monkeypatch.setattr(ssmfar, "frame_subset", lambda root, k, **kw: f"{root}-{kw['expr_share']}")
    budget = SimpleNamespace(frame_stride=4, val_stride=2)
    runs = ssmfar.positive_control(
        [0, 1], profiles.get("smoke"), "root", {"identity": None}, budget, runs_dir=tmp_path,
        log=None,
    )  # fmt: skip
    assert len(plans) == 1 and len(plans[0]) == 2 * len(ssmfar.CONTROL_SHARES)
    for j in plans[0]:
        label = j.out_dir.parent.name
        assert j.kwargs["method"] == "mfar"
        assert j.kwargs["data_root"] == f"root-{ssmfar.CONTROL_SHARES[label]}"
        assert j.out_dir == tmp_path / label / f"seed{j.kwargs['seed']}"
    assert list(runs["method"]) == ["mfar-q25", "mfar-q25", "mfar-q50", "mfar-q50"]
    assert list(runs["row"].unique()) == [
        "MFAR, 25% of expression labels",
        "MFAR, 50% of expression labels",
    ]
