"""Coupling of expressions and AUs (Kollias et al. 2024) and its baselines: the training wiring.

The losses themselves are checked against worked examples in test_losses.py; here: which terms
each method adds and over which images, the Student-Teacher soft labels, the GradNorm and MGDA-UB
steps against their papers' update rules (one step on a toy model), the study's data settings and
the report's statements. Expected values are computed by hand in numpy.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from affectlib import methods, models, profiles, relatedness, stats, train
from affectlib.data import assembly, datasets, generate
from affectlib.files import paper_table
from affectlib.methods import StepContext
from affectlib.methods import coupling as C
from affectlib.studies import baselines as B
from affectlib.studies import kollias as K
from affectlib.studies import kollias_report as R

torch.manual_seed(0)


# --- fixtures -------------------------------------------------------------------------------------
class Fixed(nn.Module):
    """Returns the same logits for any batch: the losses' inputs are known exactly."""

    def __init__(self, expr: np.ndarray, au: np.ndarray) -> None:
        super().__init__()
        self.expr = nn.Parameter(torch.tensor(expr, dtype=torch.float32))
        self.au = nn.Parameter(torch.tensor(au, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"expr": self.expr, "au": self.au}


class Toy(nn.Module):
    """A two-layer multi-task net with a ``backbone`` (the shared part) and linear heads."""

    def __init__(self, n_expr: int = 3, n_au: int = 2, size: int = 8) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, 5), nn.Tanh())
        self.expr_head = nn.Linear(5, n_expr)
        self.au_head = nn.Linear(5, n_au)
        self.va_head = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.backbone(x.float() / 255)
        return {
            "expr": self.expr_head(z),
            "au": self.au_head(z),
            "va": torch.tanh(self.va_head(z)),
            "feat": z,
        }


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _ctx(**options) -> StepContext:
    return StepContext(1, 0, 1, torch.device("cpu"), options)


# row 0: expression only (an AffectNet image), rows 1-2: AUs only (EmotioNet images), AU 2 of row 2
# not coded
EXPR_LOGITS = np.array([[2.0, 0.5, -1.0], [0.1, 0.3, 0.2], [-0.5, 1.5, 0.0]])
AU_LOGITS = np.array([[1.0, -2.0], [0.5, 0.8], [-1.2, 2.0]])


def _batch() -> dict[str, torch.Tensor]:
    return {
        "weak": torch.zeros(3, 3, 8, 8, dtype=torch.uint8),
        "expr": torch.tensor([0, -1, -1]),
        "has_expr": torch.tensor([True, False, False]),
        "au": torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]),
        "au_mask": torch.tensor([[False, False], [True, True], [True, False]]),
        "has_au": torch.tensor([False, True, False]),
        "index": torch.tensor([0, 1, 2]),
    }


RELATION = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
WEIGHTS = np.array([[1.0, 0.0], [0.0, 0.5], [1.0, 1.0]])


def _hand_terms(sca_form: str = "printed") -> dict[str, float]:
    """CE, BCE, DM and SCA of the batch above, by hand (SCA as printed, -p log q, or with the
    soft label as the target, -q log p)."""
    pe, pa = _softmax(EXPR_LOGITS), _sigmoid(AU_LOGITS)
    ce = -np.log(pe[0, 0])
    y = {(1, 0): 1.0, (1, 1): 0.0, (2, 0): 0.0}
    per = {k: -(t * np.log(pa[k]) + (1 - t) * np.log(1 - pa[k])) for k, t in y.items()}
    # Eq. 1's L_AU: per image over its coded AUs, then over images (row 1: two AUs, row 2: one)
    bce = ((per[(1, 0)] + per[(1, 1)]) / 2 + per[(2, 0)]) / 2
    q = pe @ RELATION  # Eq. 2, every image
    dm = np.mean(-(pa * np.log(q)).sum(axis=1))  # Eq. 3
    sca = []
    for i, annotated in ((1, [0, 1]), (2, [0])):  # Eq. 4-6, AU-labelled images only
        lab = np.array([y[(i, j)] for j in annotated])
        w = WEIGHTS[:, annotated]
        indicator = np.where(w.sum(1) > 0, (w * lab).sum(1) / np.maximum(w.sum(1), 1e-12), 0)
        soft = np.exp(indicator) / np.exp(indicator).sum()
        if sca_form == "label":
            sca.append(-(soft * np.log(pe[i])).sum())
        else:
            sca.append(-(pe[i] * np.log(soft)).sum())
    return {"expr": ce, "au": bce, "dm": dm, "sca": float(np.mean(sca))}


def _coupled(**options):
    opts = {"relatedness": "test", "relation": RELATION.tolist(), "au_weights": WEIGHTS.tolist()}
    opts = methods.resolve_options(C.C_MT, {**opts, **options})
    state = C.coupling_state(pd.DataFrame(), opts)
    return C.c_mt_loss(Fixed(EXPR_LOGITS, AU_LOGITS), _batch(), state, _ctx(**opts))


# --- the coupled objective ------------------------------------------------------------------------
def test_nc_mt_is_cross_entropy_plus_masked_bce_without_coupling_terms():
    loss, logs = C.nc_mt_loss(Fixed(EXPR_LOGITS, AU_LOGITS), _batch(), {}, _ctx())
    hand = _hand_terms()
    assert set(logs) == {"loss_expr", "loss_au"}
    assert float(loss.detach()) == pytest.approx(hand["expr"] + hand["au"], rel=1e-5)


def test_c_mt_adds_distribution_matching_and_soft_coannotation_to_the_task_losses():
    loss, logs = _coupled()
    hand = _hand_terms()
    assert set(logs) == {"loss_expr", "loss_au", "loss_dm", "loss_sca"}
    for k, v in hand.items():
        assert float(logs[f"loss_{k}"]) == pytest.approx(v, rel=1e-5), k
    assert float(loss.detach()) == pytest.approx(sum(hand.values()), rel=1e-5)


@pytest.mark.parametrize(("dm", "sca"), [(True, False), (False, True), (False, False)])
def test_the_ablation_options_switch_each_coupling_term_alone(dm, sca):
    loss, logs = _coupled(dm=dm, sca=sca)
    hand = _hand_terms()
    kept = ["expr", "au"] + ["dm"] * dm + ["sca"] * sca
    assert set(logs) == {f"loss_{k}" for k in kept}
    assert float(loss.detach()) == pytest.approx(sum(hand[k] for k in kept), rel=1e-5)


def test_c_mt_passes_the_eq6_reading_to_the_soft_coannotation_term():
    _, printed = _coupled(dm=False)
    _, label = _coupled(dm=False, sca_form="label")
    assert float(printed["loss_sca"]) == pytest.approx(_hand_terms()["sca"], rel=1e-5)
    assert float(label["loss_sca"]) == pytest.approx(_hand_terms("label")["sca"], rel=1e-5)
    assert abs(float(label["loss_sca"]) - float(printed["loss_sca"])) > 1e-3


def test_the_label_reading_still_pulls_a_class_whose_probability_underflowed():
    # a network sure of class 0: p of the other classes is far below 1e-8, where a clamped log
    # passes no gradient; from the logits' log-softmax the q-as-target term raises every class
    # the soft label gives mass to
    logits = torch.tensor([[60.0, 0.0, 0.0]], requires_grad=True)
    batch = {
        k: v[1:2] for k, v in _batch().items()
    }  # AU1 present, AU2 absent: q = softmax(1, 0, .5)
    opts = methods.resolve_options(
        C.C_MT,
        {"relation": RELATION.tolist(), "au_weights": WEIGHTS.tolist(), "dm": False,
         "sca_form": "label"},
    )  # fmt: skip
    state = C.coupling_state(pd.DataFrame(), opts)
    C.coupling_terms({"expr": logits, "au": torch.zeros(1, 2)}, batch, state, opts)[
        "sca"
    ].backward()
    assert (logits.grad[0, 1:] < 0).all()  # descent raises both starved classes
    assert logits.grad[0, 0] > 0


def test_soft_coannotation_reads_au_labels_of_au_labelled_entries_only():
    _, before = _coupled(dm=False)
    batch = _batch()
    batch["au"][0] = torch.tensor([1.0, 1.0])  # masked values of the expression-only image
    batch["au"][2, 1] = 1.0  # the uncoded AU of row 2
    opts = methods.resolve_options(
        C.C_MT, {"relation": RELATION.tolist(), "au_weights": WEIGHTS.tolist(), "dm": False}
    )
    state = C.coupling_state(pd.DataFrame(), opts)
    _, after = C.c_mt_loss(Fixed(EXPR_LOGITS, AU_LOGITS), batch, state, _ctx(**opts))
    assert float(after["loss_sca"]) == pytest.approx(float(before["loss_sca"]), rel=1e-6)


def test_distribution_matching_leaves_out_an_au_no_class_relates_to():
    relation = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 0.0]])  # AU 2 related to nothing
    opts = methods.resolve_options(
        C.C_MT, {"relation": relation.tolist(), "au_weights": relation.tolist(), "sca": False}
    )
    state = C.coupling_state(pd.DataFrame(), opts)
    _, logs = C.c_mt_loss(Fixed(EXPR_LOGITS, AU_LOGITS), _batch(), state, _ctx(**opts))
    pe, pa = _softmax(EXPR_LOGITS), _sigmoid(AU_LOGITS)
    q = pe @ relation[:, :1]
    assert float(logs["loss_dm"]) == pytest.approx(np.mean(-(pa[:, :1] * np.log(q)).sum(1)), 1e-5)


def test_coupling_state_defaults_to_domain_knowledge_on_the_tables_aus():
    table = pd.DataFrame({"expr": [0], "AU6": [1], "AU12": [0], "AU25": [1], "AU4": [0]})
    state = C.coupling_state(table, dict(C.C_MT.options))
    happiness = 4  # ABAW index; Du et al.: 12, 25 prototypical, 6 observational (0.51)
    assert state["relation"].shape == (8, 4)
    assert state["relation"][happiness].tolist() == [1.0, 1.0, 1.0, 0.0]
    assert state["au_weights"][happiness].tolist() == pytest.approx([0.51, 1.0, 1.0, 0.0])
    assert state["relation"][0].sum() == 0  # Neutral relates to no AU


def test_coupling_state_refuses_half_given_matrices_and_a_relatedness_without_matrices():
    with pytest.raises(ValueError, match="both 'relation' and 'au_weights'"):
        C.coupling_state(pd.DataFrame(), {**C.C_MT.options, "relation": RELATION.tolist()})
    with pytest.raises(ValueError, match="'DB' needs explicit"):
        C.coupling_state(pd.DataFrame(), {**C.C_MT.options, "relatedness": "DB"})


# --- Student-Teacher ------------------------------------------------------------------------------
def test_add_soft_labels_keeps_a_teachers_value_only_where_the_label_is_missing():
    table = pd.DataFrame({"expr": [2, -1], "AU1": [1, -1], "AU2": [-1, 0]})
    soft = C.add_soft_labels(
        table,
        np.array([[0.2, 0.8], [0.6, 0.4]]),
        np.array([[0.9, 0.3], [0.7, 0.1]]),
        ["AU1", "AU2"],
    )
    assert np.isnan(soft["soft_expr_0"][0]) and soft["soft_expr_0"][1] == 0.6
    assert np.isnan(soft["soft_AU1"][0]) and soft["soft_AU1"][1] == 0.7
    assert soft["soft_AU2"][0] == 0.3 and np.isnan(soft["soft_AU2"][1])


def test_the_student_learns_hard_labels_where_given_and_teacher_labels_elsewhere():
    table = pd.DataFrame({"expr": [0, -1, -1], "AU1": [-1, 1, 0], "AU2": [-1, 0, -1]})
    teacher_e = np.array([[0.1, 0.1, 0.8], [0.2, 0.5, 0.3], [0.6, 0.2, 0.2]])
    teacher_a = np.array([[0.9, 0.2], [0.5, 0.5], [0.4, 0.7]])
    state = C.soft_label_state(C.add_soft_labels(table, teacher_e, teacher_a, ["AU1", "AU2"]), {})
    loss, logs = C.student_loss(Fixed(EXPR_LOGITS, AU_LOGITS), _batch(), state, _ctx())
    pe, pa = _softmax(EXPR_LOGITS), _sigmoid(AU_LOGITS)
    targets = np.vstack([[1, 0, 0], teacher_e[1], teacher_e[2]])
    ce = np.mean(-(targets * np.log(pe)).sum(1))
    au = np.array([[0.9, 0.2], [1.0, 0.0], [0.0, 0.7]])  # hard where labelled, else the teacher's
    bce = np.mean(-(au * np.log(pa) + (1 - au) * np.log(1 - pa)))
    assert float(logs["loss_expr"]) == pytest.approx(ce, rel=1e-5)
    assert float(logs["loss_au"]) == pytest.approx(bce, rel=1e-5)


def test_the_student_refuses_a_table_without_soft_labels():
    with pytest.raises(ValueError, match="add_soft_labels"):
        C.soft_label_state(pd.DataFrame({"expr": [0]}), {})


# --- GradNorm and MGDA-UB own their step ----------------------------------------------------------
def _toy_batch(n: int = 6) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        "weak": torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8),
        "expr": torch.tensor([0, 1, 2, -1, -1, -1][:n]),
        "has_expr": torch.tensor([True, True, True, False, False, False][:n]),
        "au": torch.tensor([[0.0, 0.0]] * 3 + [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])[:n],
        "au_mask": torch.tensor([[False, False]] * 3 + [[True, True]] * 3)[:n],
        "has_au": torch.tensor([False] * 3 + [True] * 3)[:n],
    }


def _grads(model: nn.Module) -> list[torch.Tensor]:
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in model.parameters()]


def test_mgda_ub_weights_the_tasks_by_the_min_norm_point_of_their_representation_gradients():
    torch.manual_seed(0)
    model, batch = Toy(), _toy_batch()
    ctx = _ctx(**C.MGDA_UB.options)
    loss, logs = C.mgda_ub_step(model, C.MGDA_UB, batch, {}, ctx)
    got = _grads(model)
    # by hand: g_t = dL_t/dZ; two tasks: gamma = clip((g2 - g1).g2 / |g1 - g2|^2, 0, 1)
    model.zero_grad()
    out = model(batch["weak"])
    terms = C.task_losses(out, batch)
    g1, g2 = (torch.autograd.grad(terms[t], out["feat"], retain_graph=True)[0].flatten()
              for t in ("expr", "au"))  # fmt: skip
    gamma = float(torch.clamp((g2 - g1) @ g2 / ((g1 - g2) @ (g1 - g2)), 0, 1))
    assert float(logs["alpha_expr"]) == pytest.approx(gamma, abs=1e-6)
    assert float(logs["alpha_au"]) == pytest.approx(1 - gamma, abs=1e-6)
    # Sener & Koltun Alg. 2: the shared layers take the alpha-combination, each head its own loss
    (gamma * terms["expr"] + (1 - gamma) * terms["au"]).backward(
        inputs=list(model.backbone.parameters()), retain_graph=True
    )
    terms["expr"].backward(inputs=list(model.expr_head.parameters()), retain_graph=True)
    terms["au"].backward(inputs=list(model.au_head.parameters()))
    for a, b in zip(got, _grads(model), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert 0 < gamma < 1  # so the heads' gradients differ from the alpha-scaled ones
    head = model.expr_head.weight.grad
    assert not torch.allclose(head * gamma, head)
    expected = gamma * terms["expr"] + (1 - gamma) * terms["au"]
    assert float(loss) == pytest.approx(float(expected.detach()))


def test_mgda_ub_gives_all_weight_to_the_only_task_a_batch_has_labels_for():
    batch = {k: v[3:] for k, v in _toy_batch().items()}  # AU-labelled images only
    _, logs = C.mgda_ub_step(Toy(), C.MGDA_UB, batch, {}, _ctx())
    assert (float(logs["alpha_expr"]), float(logs["alpha_au"])) == (0.0, 1.0)


def test_gradnorm_steps_the_network_on_the_weighted_sum_and_the_weights_by_adam_on_l_grad():
    torch.manual_seed(0)
    model, batch = Toy(), _toy_batch()
    options = dict(C.GRADNORM.options)
    state = C.gradnorm_state(pd.DataFrame(), options)
    state["task_weights"] = torch.tensor([0.8, 1.2])
    state["initial_losses"] = torch.tensor([1.5, 0.9])
    _, logs = C.gradnorm_step(model, C.GRADNORM, batch, state, _ctx(**options))
    got = _grads(model)
    # by hand (Chen et al. Eq. 6-7): G_t = w_t |dL_t/dW|, r_t = (L_t/L_t(0)) / mean, target
    # mean(G) r_t^alpha held constant, dL_grad/dw_t = sign(G_t - target_t) |dL_t/dW|
    model.zero_grad()
    terms = C.task_losses(model(batch["weak"]), batch)
    w0 = np.array([0.8, 1.2])
    shared = C.last_shared_weight(model)
    norms = np.array([
        float(torch.linalg.vector_norm(torch.autograd.grad(terms[t], shared, retain_graph=True)[0]))
        for t in ("expr", "au")
    ])  # fmt: skip
    G = w0 * norms
    ratio = np.array([float(terms[t].detach()) for t in ("expr", "au")]) / np.array([1.5, 0.9])
    target = G.mean() * (ratio / ratio.mean()) ** options["alpha"]
    grad = np.sign(G - target) * norms
    # Adam's first step moves each weight by lr * g / (|g| + eps); then w <- T w / sum(w)
    w1 = w0 - options["weights_lr"] * grad / (np.abs(grad) + 1e-8)
    w1 = 2 * w1 / w1.sum()
    assert [float(logs["w_expr"]), float(logs["w_au"])] == pytest.approx(w1.tolist(), rel=1e-5)
    assert state["task_weights"].detach().numpy() == pytest.approx(w1, rel=1e-5)
    (0.8 * terms["expr"] + 1.2 * terms["au"]).backward()  # the network: this step's weights
    for a, b in zip(got, _grads(model), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_gradnorm_takes_the_initial_losses_at_its_first_step_with_both_tasks():
    state = C.gradnorm_state(pd.DataFrame(), {})
    au_only = {k: v[3:] for k, v in _toy_batch().items()}
    C.gradnorm_step(Toy(), C.GRADNORM, au_only, state, _ctx(**C.GRADNORM.options))
    assert "initial_losses" not in state and state["task_weights"].tolist() == [1.0, 1.0]
    C.gradnorm_step(Toy(), C.GRADNORM, _toy_batch(), state, _ctx(**C.GRADNORM.options))
    assert state["initial_losses"].shape == (2,) and state["task_weights"].tolist() != [1.0, 1.0]


def _toy_data(n: int = 12) -> assembly.TrainData:
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "expr": np.where(np.arange(n) % 2 == 0, rng.integers(0, 3, n), -1),
            "AU1": np.where(np.arange(n) % 2 == 1, rng.integers(0, 2, n), -1),
            "AU2": np.where(np.arange(n) % 2 == 1, rng.integers(0, 2, n), -1),
            "valence": -5.0,
            "arousal": -5.0,
        }
    )
    images = rng.integers(0, 256, (n, 3, 8, 8), dtype=np.uint8)
    return assembly.TrainData(
        train=datasets.BatchLoader(table, images, datasets.RandomSampler(n, 0), 4, drop_last=True),
        val=datasets.BatchLoader(table, images, datasets.SequentialSampler(n), 4),
        train_table=table,
        score=K.study_scores,
    )


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize(("method", "logged"), [("gradnorm", "w_"), ("mgda-ub", "alpha_")])
def test_the_training_loop_hands_the_step_to_gradnorm_and_mgda(tmp_path, method, logged, precision):
    # bf16: MGDA-UB differentiates the losses with respect to the representation the heads read
    spec = methods.get(method)
    assert spec.step in (C.gradnorm_step, C.mgda_ub_step)
    torch.manual_seed(0)
    cfg = train.TrainConfig(epochs=2, progress=False, checkpoints=False, precision=precision)
    result = train.fit(Toy(), spec, _toy_data(), cfg, tmp_path / method)
    h = result.history
    weights = h[f"train_{logged}expr"] + h[f"train_{logged}au"]
    assert weights.to_numpy() == pytest.approx([2.0 if method == "gradnorm" else 1.0] * 2)
    assert (
        set(K.SCORE_NAMES) <= set(result.metrics)
        and not (tmp_path / method / "checkpoint.pt").exists()
    )
    if method == "gradnorm":  # the weights moved away from 1 inside the loop
        assert abs(h["train_w_expr"].iloc[-1] - 1.0) > 1e-3


# --- the study's data and scores ------------------------------------------------------------------
def test_basic_expressions_turn_other_into_no_label_and_keep_the_rest():
    t = pd.DataFrame({"expr": [7, 0, 6, -1], "AU1": [1, 0, -1, 1]})
    got = K.basic_expressions(t)
    assert got["expr"].tolist() == [-1, 0, 6, -1] and got["AU1"].tolist() == [1, 0, -1, 1]


def test_keep_task_masks_the_other_task_and_drops_rows_without_the_kept_one():
    t = pd.DataFrame({"expr": [1, -1, 2], "AU1": [1, 0, -1], "AU2": [-1, 1, -1]})
    expr = K.keep_task(t, "expr", ["AU1", "AU2"])
    au = K.keep_task(t, "au", ["AU1", "AU2"])
    assert expr["expr"].tolist() == [1, 2] and (expr[["AU1", "AU2"]] == -1).all().all()
    assert au["expr"].tolist() == [-1, -1] and au["AU1"].tolist() == [1, 0]


def test_subsample_draws_a_fixed_subset_in_table_order():
    t = pd.DataFrame({"x": range(20)})
    a, b = K.subsample(t, 5, 0, 1), K.subsample(t, 5, 0, 1)
    assert a["x"].tolist() == b["x"].tolist() == sorted(a["x"]) and len(a) == 5
    assert K.subsample(t, 0, 0)["x"].tolist() == list(range(20))


def test_study_scores_match_sklearn_on_labelled_rows():
    from sklearn.metrics import accuracy_score, f1_score

    pred = {
        "expr_true": np.array([0, 1, 2, 1, -1]),
        "expr_prob": np.eye(3)[[0, 2, 2, 1, 0]],
        "au_true": np.array([[1, 0], [0, -1], [1, 1], [-1, -1], [0, 0]]),
        "au_prob": np.array([[0.9, 0.2], [0.7, 0.9], [0.4, 0.6], [0.9, 0.9], [0.1, 0.8]]),
    }
    s = K.study_scores(pred)
    assert s["expr_acc"] == pytest.approx(3 / 4)
    assert s["expr_aa"] == pytest.approx(np.mean([1, 0.5, 1]))
    assert s["expr_f1"] == pytest.approx(f1_score([0, 1, 2, 1], [0, 2, 2, 1], average="macro"))
    f1 = [f1_score([1, 0, 1, 0], [1, 1, 0, 0]), f1_score([0, 1, 0], [0, 1, 1])]
    acc = [accuracy_score([1, 0, 1, 0], [1, 1, 0, 0]), accuracy_score([0, 1, 0], [0, 1, 1])]
    assert s["au_f1"] == pytest.approx(np.mean(f1))
    assert s["au_afa"] == pytest.approx(0.5 * (np.mean(f1) + np.mean(acc)))
    # the collapse diagnosis: predictions 0, 2, 2, 1 on the labelled rows (the -1 row left out)
    assert s["expr_top"] == 2 and s["expr_top_share"] == pytest.approx(2 / 4)
    none = K.study_scores({**pred, "expr_true": np.full(5, -1)})
    assert np.isnan(none["expr_top"]) and np.isnan(none["expr_top_share"])


def test_the_plan_trains_each_shared_row_once():
    plan = K.study_plan(
        {"a": ["r18", "sn"], "b": ["r18"]}, table3=("b", "r18"), table5=("a", "r18")
    )
    assert not plan.duplicated().any()
    assert plan[(plan.setting == "a") & (plan.backbone == "r18")]["arm"].tolist() == [
        "ST", "NC MT", "S-T NC MT", "C MT (DM)", "C MT (DB)", "GradNorm", "MGDA-UB",
    ]  # fmt: skip
    assert len(plan[plan.setting == "b"]) == 11 and len(plan[plan.backbone == "sn"]) == 5


# --- the report -----------------------------------------------------------------------------------
def _runs(shift: dict[str, float]) -> pd.DataFrame:
    """Three seeds of ST / NC MT / C MT (DM) on one setting; ``shift`` moves an arm's scores."""
    rows = []
    for seed, noise in enumerate([0.0, 0.01, -0.01]):
        for arm in ("ST", "NC MT", "C MT (DM)"):
            base = 0.5 + shift.get(arm, 0.0) + noise
            rows.append({"setting": "affwild2", "backbone": "r18", "arm": arm, "seed": seed,
                         **dict.fromkeys(K.SCORE_NAMES, base)})  # fmt: skip
    return pd.DataFrame(rows)


def test_paired_differences_are_in_points_and_pair_runs_by_seed():
    pairs = R.paired(_runs({"NC MT": -0.05}))
    row = pairs[(pairs.a == "NC MT") & (pairs.b == "ST") & (pairs.task == "expr")].iloc[0]
    # the seed noise is shared, so the paired difference is exactly -5 points with no spread
    assert row["diff"] == pytest.approx(-5.0) and row["lo"] == pytest.approx(-5.0)
    assert row["status"] == "worse"


def test_claims_say_holds_fails_or_no_clear_difference_from_the_intervals():
    held = R.claims(R.paired(_runs({"NC MT": -0.05, "C MT (DM)": 0.05})))
    assert any(s.startswith("Without coupling, multi-task training hurts expressions") and
               ": HOLDS" in s for s in held)  # fmt: skip
    assert any(s.startswith("Coupling (DM) beats multi-task") and ": HOLDS" in s for s in held)
    opposite = R.claims(R.paired(_runs({"NC MT": 0.05})))
    assert any(s.startswith("Without coupling, multi-task training hurts") and
               "FAILS" in s for s in opposite)  # fmt: skip
    noisy = _runs({})
    noise = np.repeat([[0.02], [-0.03], [0.0]], len(K.SCORE_NAMES), axis=1)  # seeds 0, 1, 2
    noisy.loc[noisy.arm == "NC MT", list(K.SCORE_NAMES)] += noise
    assert any("no clear difference" in s for s in R.claims(R.paired(noisy)))


def test_a_comparison_with_a_run_at_the_floor_is_untestable():
    runs = _runs({"NC MT": -0.05, "C MT (DM)": 0.05})
    # one NC MT run predicts a single expression: average accuracy 1/7
    runs.loc[(runs.arm == "NC MT") & (runs.seed == 1), "expr_aa"] = 1 / 7
    pairs = R.paired(runs)
    expr = pairs[(pairs.a == "C MT (DM)") & (pairs.b == "NC MT") & (pairs.task == "expr")]
    au = pairs[(pairs.a == "C MT (DM)") & (pairs.b == "NC MT") & (pairs.task == "au")]
    assert expr["status"].tolist() == [stats.UNTESTABLE] and au["status"].tolist() == ["better"]
    assert any(s.startswith("Coupling (DM) beats multi-task") and stats.UNTESTABLE in s
               for s in R.claims(pairs))  # fmt: skip


def test_a_row_whose_interval_reaches_label_blind_chance_is_at_the_floor():
    runs = _runs({"NC MT": -0.05})
    base = {"baseline": list(B.KOLLIAS_BASELINES)} | {m: [0.30, 0.0, 0.2] for m in K.SCORE_NAMES}
    chance = {"affwild2": pd.DataFrame(base)}
    chance["affwild2"].loc[0, "au_f1"] = 0.44  # label-blind chance of AU F1: 44%
    # by hand: NC MT's AU F1 is 45 -+ t(0.975, 2) * 1 / sqrt(3) = [42.52, 47.48], which reaches 44;
    # ST and C MT (DM) sit at [47.52, 52.48], above it; every expression interval is above 30
    f = B.kollias_floor(runs, chance=chance).set_index("arm")
    assert f["au_at_chance"].to_dict() == {"ST": False, "NC MT": True, "C MT (DM)": False}
    assert not f["expr_at_chance"].any() and f["au_floor"].sum() == 0
    assert "Of 3 rows, 0 have an expression interval and 1 an AU interval that reaches" in (
        B.kollias_floor_sentence(f.reset_index())
    )

    def status(pairs, task):
        pick = (pairs.a == "NC MT") & (pairs.b == "ST") & (pairs.task == task)
        return pairs.loc[pick, "status"].tolist()

    judged = R.paired(runs, chance=chance)
    assert status(judged, "au") == [stats.UNTESTABLE] and status(judged, "expr") == ["worse"]
    assert status(R.paired(runs), "au") == ["worse"]  # no chance given: collapse only
    elsewhere = B.kollias_floor(runs, chance={"affectnet+emotionet": chance["affwild2"]})
    assert not elsewhere["au_at_chance"].any()  # a setting without baselines: nothing judged


def test_table3_follows_the_papers_rows_and_marks_its_numbers():
    runs = _runs({})
    t = R.table3(R.summarise(runs), "affwild2", "r18")
    assert t["our row"].tolist()[0] == "NC MT" and len(t) == 9  # the paper's 7 + our 2 readings
    assert t["F1 (expr)"].iloc[0] == "50.0 [47.5, 52.5]" and t["F1 (expr)"].iloc[1] == ""
    assert t["paper: expr_f1"].tolist()[0] == 33.7
    # Eq. 3 with its gradient to the AUs too, Eq. 6 as -q log p: ours only, no paper value
    ours = t.iloc[-2:]
    assert ours["our row"].tolist() == [
        "distr-matching (DM, gradient to AUs)",
        "soft co-annotation (DM, q as target)",
    ]
    assert ours["coupling"].tolist()[1] == "soft co-annotation, Eq. 6 as -q log p"
    assert ours["relatedness"].tolist() == [K.ARMS[a][1]["relatedness"] for a in ours["our row"]]
    assert ours["paper: expr_f1"].isna().all() and ours["paper: au_f1"].isna().all()


def test_the_eq6_reading_row_trains_sca_alone_with_q_as_target_and_is_reported_against_printed():
    method, options = K.ARMS["soft co-annotation (DM, q as target)"]
    printed = K.ARMS["soft co-annotation (DM)"][1]
    assert method == "c-mt" and options == printed | {"sca_form": "label"}
    runs = pd.concat(
        [
            _runs({}).assign(arm=lambda d: d.arm.replace({"ST": "soft co-annotation (DM)"})),
            _runs({"C MT (DM)": 0.05})
            .query("arm == 'C MT (DM)'")
            .assign(arm="soft co-annotation (DM, q as target)"),
        ],
        ignore_index=True,
    )
    said = R.readings(R.paired(runs))
    # C MT (DM) of _runs is 0.5 as is the printed row; the q-as-target row sits 5 points above
    assert said == [
        "Eq. 6 with the soft label as the target, -q log p (soft co-annotation (DM, q as target)) "
        "minus Eq. 6 as printed, -p log q (soft co-annotation (DM)), points: affwild2/r18/"
        "expressions: better, +5.0 [+5.0, +5.0]; affwild2/r18/AUs: better, +5.0 [+5.0, +5.0]."
    ]


def test_table2_puts_each_paper_network_beside_our_backbones():
    t = R.table2(R.summarise(_runs({})), "affwild2", ["r18"])
    assert list(t.columns) == [
        "setting", "r18: F1", "r18: F1 (AU)", "paper: F1 (TMIF-FEA)", "paper: F1 (AU) (TMIF-FEA)",
    ]  # fmt: skip
    assert t.set_index("setting").loc["C MT (DB)", "paper: F1 (TMIF-FEA)"] == 39.9


def _baseline_setting(train, test):
    part = assembly.DataPart(
        "aw", pd.DataFrame(train), pd.DataFrame(test), Path("."), pd.DataFrame(test)
    )
    return K.Setting("affwild2", (part,), (part,), (part,), ("AU1", "AU2"), K.PRIMARY_AW)


def test_baseline_scores_are_the_label_blind_predictors_scored_by_hand():
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    train = {"expr": [0, 0, 1, -1], "AU1": [1, 0, -1, 1], "AU2": [0, 0, 0, 1]}
    test = {"expr": [0, 1, 1, -1], "AU1": [1, 1, 0, -1], "AU2": [0, 1, 0, 0]}
    b = B.kollias_baselines(_baseline_setting(train, test)).set_index("baseline")
    assert list(b.index) == list(B.KOLLIAS_BASELINES)
    t, p = [0, 1, 1], [0, 0, 0]  # the labelled test expressions; the training majority is 0
    f1 = f1_score(t, p, labels=range(7), average="macro", zero_division=0)
    np.testing.assert_allclose(b.loc["majority class, no AU", "expr_f1"], f1)
    np.testing.assert_allclose(b.loc["majority class, no AU", "expr_acc"], accuracy_score(t, p))
    np.testing.assert_allclose(
        b.loc["majority class, no AU", "expr_aa"], balanced_accuracy_score(t, p)
    )
    # every AU on: AU1 over [1, 1, 0], AU2 over [0, 1, 0, 0]
    every = [f1_score([1, 1, 0], [1] * 3), f1_score([0, 1, 0, 0], [1] * 4)]
    np.testing.assert_allclose(b.loc["majority class, every AU", "au_f1"], np.mean(every))
    np.testing.assert_allclose(b.loc["majority class, every AU", "au_acc"], (2 / 3 + 1 / 4) / 2)
    assert b.loc["majority class, no AU", "au_f1"] == 0.0
    np.testing.assert_allclose(b.loc["majority class, no AU", "au_acc"], (1 / 3 + 3 / 4) / 2)
    # a training set of one class with every AU always on: chance draws the same predictions
    fixed = B.kollias_baselines(
        _baseline_setting({"expr": [0, 0], "AU1": [1, 1], "AU2": [1, 1]}, test)
    ).set_index("baseline")
    pd.testing.assert_series_equal(
        fixed.loc["label-blind chance"], fixed.loc["majority class, every AU"], check_names=False
    )


def test_baseline_scores_fall_back_to_validation_without_test_rows():
    train = {"expr": [0, 0, 1], "AU1": [1, 0, 1], "AU2": [0, 0, 1]}
    val = pd.DataFrame({"expr": [1, 1, 0], "AU1": [0, 1, 1], "AU2": [1, 0, 0]})
    part = assembly.DataPart("aw", pd.DataFrame(train), val, Path("."))
    no_test = K.Setting("s", (part,), (part,), (part,), ("AU1", "AU2"), K.PRIMARY_AW)
    pd.testing.assert_frame_equal(
        B.kollias_baselines(no_test), B.kollias_baselines(_baseline_setting(train, val))
    )


def test_tables_2_and_3_put_the_baselines_below_our_rows_in_percent():
    baselines = pd.DataFrame(
        [
            {"baseline": n} | dict.fromkeys(K.SCORE_NAMES, 0.1 * (i + 1))
            for i, n in enumerate(B.KOLLIAS_BASELINES)
        ]
    )
    t2 = R.table2(R.summarise(_runs({})), "affwild2", ["r18"], baselines)
    assert t2["setting"].tolist()[-3:] == [f"baseline: {n}" for n in B.KOLLIAS_BASELINES]
    assert t2["r18: F1"].tolist()[-3:] == ["10.0", "20.0", "30.0"]
    assert pd.isna(t2["paper: F1 (TMIF-FEA)"].iloc[-1])
    t3 = R.table3(R.summarise(_runs({})), "affwild2", "r18", baselines)
    assert len(t3) == 9 + 3 and t3["coupling"].tolist()[-3:] == ["baseline"] * 3
    assert t3["F1 (AU)"].tolist()[-3:] == ["10.0", "20.0", "30.0"]


def test_every_arm_names_a_registered_method():
    assert {m for m, _ in K.ARMS.values()} <= set(methods.METHODS)
    assert dataclasses.is_dataclass(K.StudyConfig)


def test_the_figures_draw_one_panel_per_data_and_backbone_and_one_per_relatedness():
    import matplotlib

    matplotlib.use("Agg")
    runs = pd.concat([_runs({}), _runs({}).assign(backbone="sn")], ignore_index=True)
    assert len(R.plot_deltas(R.paired(runs)).axes) == 2
    options = {"A": {"relation": RELATION, "au_weights": WEIGHTS}}
    options = {k: {"relation": np.pad(v["relation"], ((0, 4), (0, 0))).tolist(),
                   "au_weights": np.pad(v["au_weights"], ((0, 4), (0, 0))).tolist()}
               for k, v in options.items()}  # fmt: skip
    fig = R.plot_relatedness(options, ["AU1", "AU2"], covered={"A": ["AU1"]})
    assert "n/a: AU2" in fig.axes[0].get_title()


def test_at_floor_counts_constant_expression_and_silent_au_runs():
    runs = pd.DataFrame(
        {
            "setting": ["s"] * 3,
            "backbone": ["b"] * 3,
            "arm": ["ST", "ST", "NC MT"],
            "seed": [0, 1, 0],
            "expr_aa": [1 / 7, 0.30, 1 / 7 + 0.001],
            "au_f1": [0.0, 0.2, 0.1],
        }
    )
    f = B.kollias_floor(runs).set_index("arm")
    assert (
        f.loc["ST", "runs"] == 2 and f.loc["ST", "expr_floor"] == 1 and f.loc["ST", "au_floor"] == 1
    )
    assert f.loc["NC MT", "expr_floor"] == 1 and f.loc["NC MT", "au_floor"] == 0
    assert B.kollias_floor_sentence(f.reset_index()).startswith(
        "Of 3 runs, 2 are at the expression floor"
    )
    learnt = B.kollias_floor(runs.iloc[[1]])
    assert B.kollias_floor_sentence(learnt).startswith("All 1 runs left both floors")


def test_a_constant_expression_run_is_at_the_floor_on_a_split_missing_classes():
    # a test split with 4 of the 7 classes: predicting one class everywhere scores AA 1/4, not
    # 1/7; its top share (one class for every image) still puts it at the floor
    runs = pd.DataFrame(
        {"setting": "s", "backbone": "b", "arm": ["ST", "ST", "NC MT"], "seed": [0, 1, 0],
         "expr_aa": [0.25, 0.40, 1 / 7], "expr_top": [4, 0, 0],
         "expr_top_share": [1.0, 0.6, 0.989], "au_f1": 0.2}
    )  # fmt: skip
    f = B.kollias_floor(runs).set_index("arm")
    assert f.loc["ST", "expr_floor"] == 1  # seed 0 by its share; seed 1 learnt
    assert f.loc["NC MT", "expr_floor"] == 1  # by its average accuracy (share just under 0.99)
    assert B.kollias_floor(runs, share=0.5).loc[0, "expr_floor"] == 2
    without = B.kollias_floor(runs.drop(columns=["expr_top", "expr_top_share"]))
    assert without.set_index("arm").loc["ST", "expr_floor"] == 0  # AA alone misses it


def test_the_still_image_test_rows_are_the_validation_images_not_drawn_for_validation():
    rows = pd.DataFrame({"path": [f"{i}.jpg" for i in range(20)]}, index=range(100, 140, 2))
    val, test = K._val_and_test(rows, 7, seed=0, salt=2)
    assert len(val) == 7 and len(test) == 13
    assert not set(val["path"]) & set(test["path"])
    assert set(val["path"]) | set(test["path"]) == set(rows["path"])
    again, _ = K._val_and_test(rows, 7, seed=0, salt=2)
    assert again.equals(val)
    everything, none = K._val_and_test(rows, 0, seed=0, salt=2)
    assert len(everything) == 20 and none.empty


def test_a_study_run_starts_from_its_backbones_weights_and_others_from_scratch(
    tmp_path, monkeypatch
):
    root = generate.ensure(profiles.get("smoke"))
    setting = K.affwild2(root, n_train=16, n_val=8, seed=0)
    torch.manual_seed(0)
    donor = models.build_model(models.ModelConfig(backbone="compact", n_expr=K.N_BASIC))
    state = {k: v.clone() for k, v in donor.backbone.state_dict().items()}
    save_file(state, tmp_path / "backbone.safetensors")
    cfg = K.StudyConfig(
        image_size=32,
        batch_size=8,
        epochs=1,
        lr_backbone=1e-3,
        lr_heads=1e-3,
        weights={"compact": str(tmp_path / "backbone.safetensors")},
    )
    monkeypatch.setattr(K.train, "fit", lambda *args: None)  # the model as the run starts it
    started, _ = K._fit_one(setting, setting.parts, "compact", "nc-mt", {}, 3, cfg, tmp_path / "a")
    for k, v in started.backbone.state_dict().items():
        torch.testing.assert_close(v, state[k], msg=k)
    scratch = dataclasses.replace(cfg, weights={})
    fresh, _ = K._fit_one(
        setting, setting.parts, "compact", "nc-mt", {}, 3, scratch, tmp_path / "b"
    )
    k, v = next(iter(fresh.backbone.named_parameters()))
    assert not torch.equal(v.detach(), state[k])


def test_the_study_couples_each_setting_with_its_own_matrices_or_refuses_before_training(
    tmp_path, monkeypatch
):
    root = generate.ensure(profiles.get("smoke"))
    settings = {
        "affwild2": K.affwild2(root, n_train=16, n_val=8, seed=0),
        "affectnet+emotionet": K.affectnet_emotionet(root, n_expr=16, n_au=16, n_val=8, seed=0),
    }
    dm = relatedness.domain_table()
    options = K.coupling_options(settings, {"DM": dm})
    for name, setting in settings.items():  # 12 ABAW AUs and 16 EmotioNet AUs: one matrix each
        aus = [K.au_number(c) for c in setting.au_columns]
        assert (
            options[name]["DM"]["relation"]
            == relatedness.relation_matrix(dm, K.BASIC, aus).tolist()
        )
        assert (
            options[name]["DM"]["au_weights"]
            == relatedness.weight_matrix(dm, K.BASIC, aus).tolist()
        )
    assert len(options["affwild2"]["DM"]["relation"][0]) == 12
    assert len(options["affectnet+emotionet"]["DM"]["relation"][0]) == 16
    cfg = K.StudyConfig(image_size=32, batch_size=8, epochs=1, lr_backbone=1e-3, lr_heads=1e-3)
    seen = []
    monkeypatch.setattr(K, "run_plan", lambda jobs, **kw: seen.extend(jobs) or [])
    plan = pd.DataFrame({"setting": "affwild2", "backbone": "compact", "arm": ["C MT (DB)"]})
    with pytest.raises(KeyError, match=r"'C MT \(DB\)' couples with relatedness 'DB'.*'affwild2'"):
        K.run_study(settings, plan, options, cfg, [0], runs_dir=tmp_path)
    assert seen == []
    plan = pd.DataFrame(
        {"setting": list(settings), "backbone": "compact", "arm": ["C MT (DM)", "C MT (DM)"]}
    )
    K.run_study(settings, plan, options, cfg, [0, 1], runs_dir=tmp_path)
    got = {(j.kwargs["setting"].name, j.kwargs["seed"]): j.kwargs["relatedness"] for j in seen}
    assert got == {(n, seed): options[n] for n in settings for seed in (0, 1)}


def test_a_setting_with_its_own_epochs_trains_them_and_others_the_studys(tmp_path, monkeypatch):
    root = generate.ensure(profiles.get("smoke"))
    cfg = K.StudyConfig(image_size=32, batch_size=8, epochs=5, lr_backbone=1e-3, lr_heads=1e-3)
    epochs = []
    monkeypatch.setattr(
        K.train, "fit", lambda model, spec, data, tcfg, *a: epochs.append(tcfg.epochs)
    )
    for own in (2, None, 0):
        setting = K.affwild2(root, n_train=16, n_val=8, seed=0, epochs=own)
        K._fit_one(setting, setting.parts, "compact", "nc-mt", {}, 0, cfg, tmp_path / str(own))
    assert epochs == [2, 5, 5]


def test_start_weights_pretrain_each_backbone_once_or_none(monkeypatch, tmp_path):
    calls = []

    def fake(source, profile, root, seed=0):
        calls.append((source, profile.backbone, profile.epochs, profile.image_size, seed))
        return tmp_path / f"{profile.backbone}.safetensors"

    monkeypatch.setattr(K.pretraining, "pretrained_weights", fake)
    p = profiles.get("smoke").replace(image_size=24)
    got = K.start_weights("identity", ["compact", "compact", "resnet18"], p, tmp_path, epochs=3)
    assert got == {b: str(tmp_path / f"{b}.safetensors") for b in ("compact", "resnet18")}
    assert calls == [("identity", "compact", 3, 24, 0), ("identity", "resnet18", 3, 24, 0)]
    assert K.start_weights("none", ["compact"], p, tmp_path, epochs=3) == {}
    with pytest.raises(ValueError, match="init"):
        K.start_weights("imagenet", ["compact"], p, tmp_path, epochs=3)


def test_every_method_of_the_papers_table5_is_run_or_listed_as_not_reproduced():
    paper = set(paper_table("kollias_table5_mtl_methods")["method"])
    run = set(R.TABLE5_PAPER_ROWS.values())
    listed = set(R.table5_not_reproduced()["method"])
    # the NTS-Net rows are run with our backbones in place of NTS-Net: listed as NTS-Net
    for method in paper - run:
        assert method in listed or method.split("-")[0] in listed, method
    assert listed == {"AdaShare", "TR", "NTS-Net"}


def test_a_data_and_backbone_with_no_finite_difference_gets_no_empty_panel():
    import matplotlib

    matplotlib.use("Agg")
    runs = pd.concat([_runs({}), _runs({}).assign(backbone="sn")], ignore_index=True)
    pairs = R.paired(runs)
    pairs.loc[pairs["backbone"] == "sn", "diff"] = np.nan  # e.g. one seed: nothing to pair
    fig = R.plot_deltas(pairs)
    assert len(fig.axes) == 1 and "sn" not in fig.axes[0].get_title()
    assert all(len(ax.get_xticks()) > 0 for ax in fig.axes)
    # the task names its metric once: "AUs (F1)", not "AUs (F1 (AU))"
    assert fig.axes[0].get_legend_handles_labels()[1] == ["expressions (F1)", "AUs (F1)"]


def test_a_collapsed_row_is_named_with_its_class_and_its_relatedness_counts():
    # C MT (DB) predicts Happiness (ABAW index 4) for every image in both runs; NC MT learnt
    runs = pd.DataFrame(
        {
            "setting": ["s"] * 4,
            "backbone": ["b"] * 4,
            "arm": ["C MT (DB)", "C MT (DB)", "NC MT", "NC MT"],
            "seed": [0, 1, 0, 1],
            "expr_aa": [1 / 7, 1 / 7, 0.3, 0.25],
            "au_f1": [0.1, 0.2, 0.1, 0.2],
            "expr_top": [4.0, 4.0, 0.0, 4.0],
            "expr_top_share": [1.0, 0.98, 0.5, 0.6],
        }
    )
    f = B.kollias_floor(runs)
    assert f.set_index("arm").loc["NC MT", "top_class"] == "Neutral"  # tie 0 / 4: the lower index
    assert f.set_index("arm").loc["NC MT", "top_share"] == pytest.approx(0.55)
    related = pd.DataFrame(
        {
            "relatedness": ["DB"] * 4 + ["DM"],
            "expression": ["Happiness", "Happiness", "Happiness", "Fear", "Anger"],
            "au": ["AU6", "AU12", "AU25", "AU1", "AU4"],
            "relation": [1.0] * 5,
            "weight": [0.5] * 5,
        }
    )
    (said,) = B.kollias_collapse_sentences(f, {"s": related})
    assert said.startswith("C MT (DB) (s, b): all 2 runs predict one class, Happiness for 99% of")
    assert "the DB relatedness relates Happiness to 3 AUs, the most of any class (Fear 1, " in said
    assert "Anger 0" in said  # the DM pair is not counted under DB
    assert B.kollias_collapse_sentences(f[f["arm"] == "NC MT"], {"s": related}) == []
    assert "relatedness" not in B.kollias_collapse_sentences(f, {"elsewhere": related})[0]
    # a class that another class outranks is not called the most related
    fear = pd.DataFrame(
        {"relatedness": "DB", "expression": "Fear", "au": ["AU2", "AU4", "AU5"], "relation": 1.0,
         "weight": 0.5}
    )  # fmt: skip
    (said,) = B.kollias_collapse_sentences(f, {"s": pd.concat([related, fear])})
    assert "relates Happiness to 3 AUs, 1 class is related to more (Fear 4, " in said
