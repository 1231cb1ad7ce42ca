"""Teacher-student (ABAW 2021): losses against numpy hand computations, the model, the method,
the ExpW / AFEW-VA loaders and the three-part batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affectlib import losses


def _t(x, dtype=torch.float64):
    return torch.tensor(x, dtype=dtype)


def _log_softmax(z, axis=-1):
    z = np.asarray(z, float)
    m = z.max(axis=axis, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=axis, keepdims=True))


def _ccc(x, y):
    mx, my = x.mean(), y.mean()
    return 2 * ((x - mx) * (y - my)).mean() / (x.var() + y.var() + (mx - my) ** 2)


# --- VA bins (Deng et al. 2020: 20 bins over [-1, 1]) ---------------------------------------------
def test_va_bins_are_twenty_equal_bins_over_minus_one_to_one():
    edges = losses.va_bin_edges()
    assert len(edges) == 21 and float(edges[0]) == -1.0 and float(edges[-1]) == 1.0
    np.testing.assert_allclose(losses.va_bin_centres().numpy(), -0.95 + 0.1 * np.arange(20))


def test_va_to_bins_puts_edges_in_the_upper_bin_and_one_in_the_last():
    idx = losses.va_to_bins(_t([-1.0, -0.95, -0.9, 0.0, 0.04, 0.99, 1.0]))
    assert idx.tolist() == [0, 0, 1, 10, 10, 19, 19]


def test_va_to_bins_rejects_the_missing_marker():
    with pytest.raises(ValueError, match="select labelled rows"):
        losses.va_to_bins(_t([0.2, -5.0]))


def test_va_expectation_is_the_softmax_mean_of_the_bin_centres():
    z = np.random.default_rng(0).normal(size=(3, 2, 20))
    p = np.exp(_log_softmax(z))
    want = (p * (-0.95 + 0.1 * np.arange(20))).sum(-1)
    np.testing.assert_allclose(losses.va_expectation(_t(z)).numpy(), want, rtol=1e-12)


# --- Eq. 1, 2 -----------------------------------------------------------------------------------------
def test_expr_ce_per_sample_matches_eq1_by_hand():
    z = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    want = [-_log_softmax(z)[0, 0], -_log_softmax(z)[1, 2]]
    got = losses.expr_ce_per_sample(_t(z), torch.tensor([0, 2]))
    np.testing.assert_allclose(got.numpy(), want)
    np.testing.assert_allclose(want[1], np.log(3))


def test_va_bins_ce_sums_the_valence_and_arousal_cross_entropies():
    z = np.random.default_rng(1).normal(size=(2, 2, 4))
    va = np.array([[-0.8, 0.1], [0.6, 1.0]])  # 4 bins of width 0.5: bins (0, 2), (3, 3)
    ls = _log_softmax(z)
    want = [-(ls[0, 0, 0] + ls[0, 1, 2]), -(ls[1, 0, 3] + ls[1, 1, 3])]
    np.testing.assert_allclose(losses.va_bins_ce_per_sample(_t(z), _t(va)).numpy(), want)


def test_va_ccc_term_sums_one_minus_ccc_over_valence_and_arousal():
    rng = np.random.default_rng(2)
    z, va = rng.normal(size=(5, 2, 20)), rng.uniform(-1, 1, (5, 2))
    pred = (np.exp(_log_softmax(z)) * (-0.95 + 0.1 * np.arange(20))).sum(-1)
    want = (1 - _ccc(pred[:, 0], va[:, 0])) + (1 - _ccc(pred[:, 1], va[:, 1]))
    np.testing.assert_allclose(float(losses.va_ccc_term(_t(z), _t(va))), want, rtol=1e-10)


# --- Eq. 4-6 ------------------------------------------------------------------------------------------
def test_distillation_kl_at_temperature_matches_the_definition():
    rng = np.random.default_rng(3)
    s, t, T = rng.normal(size=(2, 2, 5)), rng.normal(size=(2, 2, 5)), 1.5
    lt, ls = _log_softmax(t / T), _log_softmax(s / T)
    want = (np.exp(lt) * (lt - ls)).sum(-1).sum(-1)  # valence KL + arousal KL (Eq. 5)
    np.testing.assert_allclose(losses.distillation_kl(_t(s), _t(t), T).numpy(), want)


def test_distillation_kl_is_zero_for_identical_outputs_and_sends_no_gradient_to_the_teacher():
    s = torch.randn(3, 7, dtype=torch.float64, requires_grad=True)
    t = s.detach().clone().requires_grad_(True)
    kl = losses.distillation_kl(s, t, 2.0)
    torch.testing.assert_close(kl, torch.zeros(3, dtype=torch.float64))
    kl.sum().backward()
    assert t.grad is None


# --- Eq. 7-10 -----------------------------------------------------------------------------------------
def _batch(seed=4, n=2, bins=4):
    rng = np.random.default_rng(seed)
    b = 3 * n
    return {
        "ze": rng.normal(size=(b, 3)),
        "zv": rng.normal(size=(b, 2, bins)),
        "te": rng.normal(size=(b, 3)),
        "tv": rng.normal(size=(b, 2, bins)),
        "expr": np.array([0, 2, 1, 0, 1, 2]),
        "va": rng.uniform(-0.9, 0.9, (b, 2)),
        "part": np.array([1, 1, 2, 2, 3, 3]),
    }


def _hand(d, sup_e, sup_v, lam, T, student):
    """Eq. 7 / 8-10 written out image by image, divided by N = 2."""
    n, bins = 2, d["zv"].shape[2]
    centres = -1 + (np.arange(bins) + 0.5) * 2 / bins
    total = 0.0
    lse, lsv = _log_softmax(d["ze"]), _log_softmax(d["zv"])
    pred = (np.exp(lsv) * centres).sum(-1)
    lam = lam if student else 1.0
    for i in range(len(d["part"])):
        ce_e = -lse[i, d["expr"][i]]
        k = np.clip(np.floor((d["va"][i] + 1) / 2 * bins).astype(int), 0, bins - 1)
        ce_v = -(lsv[i, 0, k[0]] + lsv[i, 1, k[1]])
        kl_e = kl_v = 0.0
        if student:
            lt, ls = _log_softmax(d["te"][i] / T), _log_softmax(d["ze"][i] / T)
            kl_e = (np.exp(lt) * (lt - ls)).sum()
            lt, ls = _log_softmax(d["tv"][i] / T), _log_softmax(d["zv"][i] / T)
            kl_v = (np.exp(lt) * (lt - ls)).sum()
        total += (lam * ce_e + (1 - lam) * kl_e) if sup_e[i] else kl_e
        total += (lam * ce_v + (1 - lam) * kl_v) if sup_v[i] else kl_v
    total /= n
    for p in (1, 2, 3):
        rows = (d["part"] == p) & sup_v
        if rows.sum() >= 2:
            c = sum(1 - _ccc(pred[rows, j], d["va"][rows, j]) for j in (0, 1))
            total += lam * rows.sum() / n * c
    return total


def _call(d, sup_e, sup_v, student, lam=0.6, T=1.5):
    kw = {}
    if student:
        kw = {"teacher_expr": _t(d["te"]), "teacher_va": _t(d["tv"])}
    return losses.teacher_student_loss(
        _t(d["ze"]),
        _t(d["zv"]),
        torch.tensor(d["expr"]),
        _t(d["va"]),
        torch.tensor(sup_e),
        torch.tensor(sup_v),
        torch.tensor(d["part"]),
        lam=lam,
        temperature=T,
        **kw,
    )


NO_SHARING = (
    np.array([1, 1, 0, 0, 1, 1], bool),  # expressions: parts 1 and 3
    np.array([0, 0, 1, 1, 1, 1], bool),  # VA: parts 2 and 3
)
WITH_SHARING = (
    np.array([1, 1, 1, 0, 1, 1], bool),  # the first part 2 image also has an expression
    np.array([1, 0, 1, 1, 1, 1], bool),  # the first part 1 image also has VA
)


def test_teacher_loss_is_eq7_by_hand():
    d = _batch()
    got = _call(d, *NO_SHARING, student=False)
    np.testing.assert_allclose(float(got.total), _hand(d, *NO_SHARING, 0.6, 1.5, False))
    assert float(got.distillation) == 0.0


@pytest.mark.parametrize("sup", [NO_SHARING, WITH_SHARING], ids=["eq9", "eq10"])
def test_student_loss_is_eq9_and_eq10_by_hand(sup):
    d = _batch()
    got = _call(d, *sup, student=True)
    np.testing.assert_allclose(float(got.total), _hand(d, *sup, 0.6, 1.5, True), rtol=1e-10)
    np.testing.assert_allclose(float(got.supervision + got.distillation), float(got.total))


def test_sharing_changes_the_student_loss_only_through_the_shared_labels():
    d = _batch()
    a = float(_call(d, *NO_SHARING, student=True).total)
    b = float(_call(d, *WITH_SHARING, student=True).total)
    assert a != b


def test_student_with_lambda_one_and_no_unsupervised_task_is_the_teacher_loss():
    d = _batch()
    every = np.ones(6, bool)
    t = float(_call(d, every, every, student=False).total)
    s = float(_call(d, every, every, student=True, lam=1.0).total)
    np.testing.assert_allclose(s, t)


def test_teacher_student_loss_backpropagates_to_both_outputs():
    d = _batch()
    ze = _t(d["ze"]).requires_grad_(True)
    zv = _t(d["zv"]).requires_grad_(True)
    out = losses.teacher_student_loss(
        ze,
        zv,
        torch.tensor(d["expr"]),
        _t(d["va"]),
        torch.tensor(NO_SHARING[0]),
        torch.tensor(NO_SHARING[1]),
        torch.tensor(d["part"]),
        teacher_expr=_t(d["te"]),
        teacher_va=_t(d["tv"]),
    )
    out.total.backward()
    assert ze.grad.abs().sum() > 0 and zv.grad.abs().sum() > 0
