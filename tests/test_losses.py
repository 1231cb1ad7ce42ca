"""Losses against worked examples computed by hand in numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from affectlib import losses
from affectlib.labels import EXPRESSIONS, expr_index

torch.manual_seed(0)


def _t(x, dtype=torch.float64, grad=False):
    return torch.tensor(x, dtype=dtype, requires_grad=grad)


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# --- Eq. 1-2: class weights -----------------------------------------------------------------------
def test_expr_class_weights_follow_eq1_and_ignore_missing_labels():
    w = losses.expr_class_weights(torch.tensor([0, 0, 1, 2, 2, 2, -1]), n_classes=4)
    # N = 6 valid labels, counts (2, 1, 3, 0): W = (3, 6, 2) and 0 for the absent class
    torch.testing.assert_close(w, torch.tensor([3.0, 6.0, 2.0, 0.0]))


def test_expr_class_weights_reject_labels_outside_the_class_range():
    with pytest.raises(ValueError, match=r"found \[8.0\]"):
        losses.expr_class_weights(torch.tensor([0, 8, -1]), n_classes=8)


def test_au_pos_weight_follows_eq2_over_rows_without_missing_labels():
    au = torch.tensor([[1, 0], [0, 0], [1, 1], [0, 0], [-1, 1], [1, -1]])
    # complete rows 0..3: AU a 2 pos / 2 neg -> 1; AU b 1 pos / 3 neg -> 3
    torch.testing.assert_close(losses.au_pos_weight(au), torch.tensor([1.0, 3.0]))
    # counting labelled entries instead adds row 5 to AU a and row 4 to AU b
    torch.testing.assert_close(
        losses.au_pos_weight(au, per_entry=True), torch.tensor([2 / 3, 3 / 2])
    )


def test_au_pos_weight_is_finite_for_an_au_without_positive_or_negative():
    au = torch.tensor([[0, 1, 1], [0, 1, 0], [0, 1, 0]])
    # no positive -> 1.0 (plain BCE); no negative -> 0 / 3 = 0 (Eq. 2); otherwise 2 / 1
    torch.testing.assert_close(losses.au_pos_weight(au), torch.tensor([1.0, 0.0, 2.0]))
    all_missing = losses.au_pos_weight(torch.full((2, 3), -1))
    torch.testing.assert_close(all_missing, torch.ones(3))


# --- Eq. 5-7: supervised losses -------------------------------------------------------------------
def test_weighted_ce_is_the_weighted_mean_over_labelled_rows():
    logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [1.0, 1.0, 1.0], [3.0, -2.0, 0.0]])
    target = np.array([0, 2, -1, 1])
    weight = np.array([1.0, 4.0, 0.5])
    logp = np.log(_softmax(logits))
    rows = [0, 1, 3]
    w = weight[target[rows]]
    expected = -(w * logp[rows, target[rows]]).sum() / w.sum()
    got = losses.weighted_ce(_t(logits), torch.tensor(target), _t(weight))
    assert got.item() == pytest.approx(expected)
    unweighted = -logp[rows, target[rows]].mean()
    assert losses.weighted_ce(_t(logits), torch.tensor(target)).item() == pytest.approx(unweighted)


def test_weighted_ce_without_labelled_rows_is_a_differentiable_zero():
    logits = _t(np.zeros((3, 4)), grad=True)
    loss = losses.weighted_ce(logits, torch.tensor([-1, -1, -1]), torch.ones(4))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros(3, 4, dtype=torch.float64))


def test_au_bce_applies_pos_weight_and_skips_missing_entries():
    logits = np.array([[0.5, -1.0], [2.0, 0.0], [-0.3, 1.5]])
    target = np.array([[1, 0], [0, -1], [1, 1]])
    pos_weight = np.array([3.0, 0.5])
    s = 1 / (1 + np.exp(-logits))
    elem = -(pos_weight * target * np.log(s) + (1 - target) * np.log(1 - s))
    expected = elem[target != -1].mean()
    got = losses.au_bce(_t(logits), _t(target), _t(pos_weight))
    assert got.item() == pytest.approx(expected)


def test_au_bce_equals_torch_bce_when_every_entry_is_labelled():
    logits, target = torch.randn(5, 3), torch.randint(0, 2, (5, 3)).float()
    pw = torch.tensor([1.0, 2.0, 0.5])
    ref = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, pos_weight=pw)
    torch.testing.assert_close(losses.au_bce(logits, target, pw), ref)


def test_ccc_loss_is_one_minus_the_mean_ccc_of_valence_and_arousal():
    # column 0: x = [1, 2, 3], y = [2, 2, 5] has CCC 6/11 (see test_metrics); column 1: identical
    pred = _t([[1.0, 0.1], [2.0, 0.4], [3.0, -0.2]])
    target = _t([[2.0, 0.1], [2.0, 0.4], [5.0, -0.2]])
    assert losses.ccc_loss(pred, target).item() == pytest.approx(1 - (6 / 11 + 1) / 2)


def test_ccc_loss_is_defined_and_differentiable_for_constant_input():
    pred = _t([[0.2, 0.5], [0.2, 0.5], [0.2, 0.5]], grad=True)
    target = _t([[0.1, 0.5], [0.4, 0.5], [-0.3, 0.5]])
    loss = losses.ccc_loss(pred, target)  # column 0: constant pred -> CCC 0; column 1: same -> 1
    loss.backward()
    assert loss.item() == pytest.approx(0.5)
    assert torch.isfinite(pred.grad).all()


def test_ccc_loss_rejects_the_missing_va_marker_and_accepts_an_empty_batch():
    with pytest.raises(ValueError, match="-5"):
        losses.ccc_loss(torch.zeros(2, 2), torch.tensor([[0.1, 0.2], [-5.0, -5.0]]))
    empty = torch.zeros(0, 2, requires_grad=True)
    assert losses.ccc_loss(empty, torch.zeros(0, 2)).item() == 0.0


# --- Eq. 4, 8, 9: semi-supervised expression losses -----------------------------------------------
PROBS = np.array(
    [
        [0.7, 0.2, 0.1],  # label 0, correct, p = 0.7
        [0.9, 0.05, 0.05],  # label 0, correct, p = 0.9
        [0.6, 0.3, 0.1],  # label 1, wrong
        [0.1, 0.5, 0.4],  # label 1, correct, p = 0.5
        [0.2, 0.2, 0.6],  # label -1, ignored although "correct" for nothing
        [0.5, 0.1, 0.4],  # label 2, wrong
    ]
)
LABELS = np.array([0, 0, 1, 1, -1, 2])


def test_adaptive_thresholds_follow_eq4_on_correctly_classified_labelled_samples():
    t = losses.adaptive_thresholds(_t(PROBS), torch.tensor(LABELS), epoch=3)
    scale = 0.95 / (1 + math.e**-3)
    # class 2 has no correct sample: it takes the mean confidence of all correct ones
    expected = scale * np.array([0.8, 0.5, (0.7 + 0.9 + 0.5) / 3])
    np.testing.assert_allclose(t.numpy(), expected)


def test_adaptive_thresholds_without_any_correct_sample_equal_the_scale_factor():
    t = losses.adaptive_thresholds(_t(PROBS[[2, 5]]), torch.tensor([1, 2]), epoch=1, beta=0.9)
    np.testing.assert_allclose(t.numpy(), np.full(3, 0.9 / (1 + math.e**-1)))
    floored = losses.adaptive_thresholds(_t(PROBS), torch.tensor(LABELS), epoch=1, floor=0.8)
    assert (floored.numpy() == 0.8).all()  # every scaled mean lies below 0.8 at epoch 1


def test_symmetric_kl_matches_the_formula_and_is_symmetric():
    p, q = PROBS[:3], PROBS[3:6]
    per_row = (p * np.log(p / q) + q * np.log(q / p)).sum(axis=1)
    assert losses.symmetric_kl(_t(p), _t(q)).item() == pytest.approx(per_row.mean())
    assert losses.symmetric_kl(_t(q), _t(p)).item() == pytest.approx(per_row.mean())
    assert losses.symmetric_kl(_t(p), _t(p)).item() == pytest.approx(0.0)


def test_symmetric_kl_is_finite_when_a_probability_is_zero():
    p = _t([[1.0, 0.0]], grad=True)
    q = _t([[0.5, 0.5]], grad=True)
    eps = 1e-8
    # clamped: (1 - .5) log(1 / .5) + (eps - .5) log(eps / .5)
    expected = 0.5 * math.log(2) + (eps - 0.5) * math.log(eps / 0.5)
    loss = losses.symmetric_kl(p, q)
    loss.backward()
    assert loss.item() == pytest.approx(expected)
    assert torch.isfinite(p.grad).all() and torch.isfinite(q.grad).all()


def test_pseudo_label_ce_uses_confident_weak_predictions_and_averages_over_all_samples():
    weak = PROBS[:4]  # pseudo-labels 0, 0, 0, 1 with confidence 0.7, 0.9, 0.6, 0.5
    thresholds = np.array([0.65, 0.55, 0.1])  # confident: rows 0, 1 (class 0); row 3 is 0.5 < 0.55
    strong = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.5, 0.5, 0.5], [0.0, 0.0, 3.0]])
    logp = np.log(_softmax(strong))
    expected = -(logp[0, 0] + logp[1, 0]) / 4
    weak_t = _t(weak, grad=True)
    strong_t = _t(strong, grad=True)
    loss, mask = losses.pseudo_label_ce(strong_t, weak_t, _t(thresholds))
    assert loss.item() == pytest.approx(expected)
    assert mask.tolist() == [True, True, False, False]
    loss.backward()
    assert weak_t.grad is None and strong_t.grad[2:].abs().sum() == 0  # weak views are targets
    at_threshold, _ = losses.pseudo_label_ce(_t(strong), _t(weak), _t([0.7, 0.9, 0.9]))
    assert at_threshold.item() == pytest.approx(expected)  # p = T counts as confident
    above, _ = losses.pseudo_label_ce(_t(strong), _t(weak), _t([0.71, 0.9, 0.9]))
    assert above.item() == pytest.approx(-logp[1, 0] / 4)


def test_pseudo_label_ce_scales_each_sample_by_the_class_weight_of_its_pseudo_label():
    # SS-MFAR §2.2: both CE terms take the Eq. 1 weights
    weak = np.array([[0.8, 0.1, 0.1], [0.1, 0.9, 0.0], [0.2, 0.2, 0.6]])  # labels 0, 1, 2
    strong = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.5, 0.5, 0.5]])
    w = np.array([0.5, 3.0, 10.0])
    logp = np.log(_softmax(strong))
    thr = _t([0.5, 0.5, 0.7])  # rows 0 and 1 pass, row 2 (0.6 < 0.7) does not
    expected = -(0.5 * logp[0, 0] + 3.0 * logp[1, 1]) / 3  # the public code: mean over all 3
    loss, mask = losses.pseudo_label_ce(_t(strong), _t(weak), thr, _t(w))
    assert loss.item() == pytest.approx(expected) and mask.tolist() == [True, True, False]
    weighted, _ = losses.pseudo_label_ce(_t(strong), _t(weak), thr, _t(w), "weighted")
    assert weighted.item() == pytest.approx(expected * 3 / (0.5 + 3.0 + 10.0))
    plain, _ = losses.pseudo_label_ce(_t(strong), _t(weak), thr)
    assert plain.item() == pytest.approx(-(logp[0, 0] + logp[1, 1]) / 3)
    with pytest.raises(ValueError, match="reduction"):
        losses.pseudo_label_ce(_t(strong), _t(weak), thr, _t(w), "sum")


def test_weighted_ce_mean_reduction_is_the_public_codes_and_equals_torch_none_then_mean():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.1, 0.3, 0.2], [0.0, 0.0, 3.0], [1.0, 1.0, 1.0]])
    target = torch.tensor([0, 1, 2, -1])
    w = torch.tensor([0.5, 3.0, 10.0])
    by_torch = F.cross_entropy(logits[:3], target[:3], weight=w, reduction="none").mean()
    assert losses.weighted_ce(logits, target, w, "mean").item() == pytest.approx(by_torch.item())
    by_torch = F.cross_entropy(logits[:3], target[:3], weight=w)  # torch's weighted mean
    assert losses.weighted_ce(logits, target, w, "weighted").item() == pytest.approx(
        by_torch.item()
    )


def test_lambdas_weigh_supervised_unsupervised_and_consistency_terms_of_eq9():
    assert losses.LAMBDAS == (0.5, 1.0, 0.1)
    assert losses.LAMBDAS.supervised == 0.5
    assert losses.LAMBDAS.unsupervised == 1.0
    assert losses.LAMBDAS.consistency == 0.1


def test_kollias_au_bce_averages_each_image_over_its_annotated_aus_then_over_images():
    # image 0 annotated for AU 0 only, image 1 for all three, image 2 for none
    logits = np.array([[0.5, 9.0, -9.0], [-1.0, 2.0, 0.3], [4.0, 4.0, 4.0]])
    target = np.array([[1, -1, -1], [0, 1, 1], [-1, -1, -1]])
    sig = 1 / (1 + np.exp(-logits))
    bce = -(np.clip(target, 0, 1) * np.log(sig) + (1 - np.clip(target, 0, 1)) * np.log(1 - sig))
    expected = (bce[0, 0] + bce[1].mean()) / 2  # per image, then over the 2 annotated images
    got = losses.au_bce_per_image(_t(logits), torch.tensor(target))
    assert got.item() == pytest.approx(expected)
    pooled = losses.au_bce(_t(logits), torch.tensor(target))  # SS-MFAR's: over the 4 entries
    assert pooled.item() == pytest.approx((bce[0, 0] + bce[1].sum()) / 4)
    full = np.array([[1, 0, 1], [0, 1, 1]])  # every AU annotated: the two agree
    assert losses.au_bce_per_image(_t(logits[:2]), torch.tensor(full)).item() == pytest.approx(
        losses.au_bce(_t(logits[:2]), torch.tensor(full)).item()
    )
    nothing = losses.au_bce_per_image(_t(logits, grad=True), torch.full((3, 3), -1))
    assert nothing.item() == 0.0 and nothing.requires_grad


# --- Kollias et al. 2024: distribution matching and soft co-annotation ----------------------------
def test_distribution_matching_follows_eq2_and_eq3():
    expr = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    au = np.array([[0.9, 0.2], [0.4, 0.6]])
    relation = np.array([[1, 0], [1, 1], [0, 1]])
    q = np.array([[0.8, 0.5], [0.2, 0.9]])  # q_i = sum of the probabilities of related classes
    expected = -(au * np.log(q)).sum(axis=1).mean()
    got = losses.distribution_matching(_t(expr), _t(au), relation)  # arrays are accepted
    assert got.item() == pytest.approx(expected)


def test_printed_eq3_only_lowers_au_probabilities_and_the_bernoulli_reading_follows_q():
    expr = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    au = np.array([[0.9, 0.2], [0.4, 0.6]])
    relation = np.array([[1, 0], [1, 1], [0, 1]])
    q = np.array([[0.8, 0.5], [0.2, 0.9]])
    expected = -(au * np.log(q) + (1 - au) * np.log(1 - q)).sum(axis=1).mean()
    p_au = _t(au, grad=True)
    got = losses.distribution_matching(_t(expr), p_au, relation, form="bernoulli")
    assert got.item() == pytest.approx(expected)
    got.backward()  # d/dp = log((1 - q) / q) / B: down where q < 1/2, up where q > 1/2
    np.testing.assert_allclose(p_au.grad.numpy(), np.log((1 - q) / q) / 2)
    p_au = _t(au, grad=True)
    losses.distribution_matching(_t(expr), p_au, relation).backward()  # as printed
    np.testing.assert_allclose(p_au.grad.numpy(), -np.log(q) / 2)
    assert (p_au.grad >= 0).all()  # gradient descent lowers every AU, even at q = 0.9
    with pytest.raises(ValueError, match="form"):
        losses.distribution_matching(_t(expr), _t(au), relation, form="kl")


def test_the_soft_target_reading_of_eq3_trains_the_expressions_only():
    expr = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    au = np.array([[0.9, 0.2], [0.4, 0.6]])
    relation = np.array([[1, 0], [1, 1], [0, 1]])
    q = expr @ relation  # [[0.8, 0.5], [0.2, 0.9]]
    p_expr, p_au = _t(expr, grad=True), _t(au, grad=True)
    got = losses.distribution_matching(p_expr, p_au, relation, form="target")
    assert got.item() == pytest.approx(-(au * np.log(q)).sum(axis=1).mean())  # the printed value
    got.backward()
    assert p_au.grad is None or not p_au.grad.any()  # the AU predictions are the target
    # d/d expr[b, c] = -sum_i au[b, i] relation[c, i] / q[b, i] / B: mass moves to classes
    # implying the AUs predicted
    np.testing.assert_allclose(p_expr.grad.numpy(), -(au / q) @ relation.T / 2, rtol=1e-6)


def test_distribution_matching_reproduces_the_papers_au2_example():
    # AU2 is prototypical for surprise and observational for fear: q(AU2) = p(surprise) + p(fear)
    relation = torch.zeros(len(EXPRESSIONS), 1, dtype=torch.float64)
    relation[expr_index("surprise"), 0] = relation[expr_index("fear"), 0] = 1.0
    expr = torch.full((1, len(EXPRESSIONS)), 0.05, dtype=torch.float64)
    expr[0, expr_index("surprise")], expr[0, expr_index("fear")] = 0.4, 0.3
    loss = losses.distribution_matching(expr, _t([[0.6]]), relation)
    assert loss.item() == pytest.approx(-0.6 * math.log(0.7))


def test_distribution_matching_is_finite_where_q_is_zero_at_a_related_au():
    # all mass on class 0, which relates to no AU: q = 0 although AU 0 is related to class 1
    expr = _t([[1.0, 0.0]], grad=True)
    au = _t([[0.5, 0.0]], grad=True)
    relation = _t([[0, 0], [1, 1]])
    loss = losses.distribution_matching(expr, au, relation)
    loss.backward()
    assert loss.item() == pytest.approx(-0.5 * math.log(1e-8))
    assert torch.isfinite(expr.grad).all() and torch.isfinite(au.grad).all()
    assert au.grad[0, 0] > 0  # the penalty pushes an unsupported AU prediction down


def _happy_weights():
    # happiness: AU12, AU25 prototypical, AU6 observational 0.51 (DM Table 1)
    # columns: AU6, AU12, AU25
    w = np.zeros((3, 3))  # classes: Neutral (no AUs), Happiness, a class with AU25 only
    w[1] = [0.51, 1.0, 1.0]
    w[2] = [0.0, 0.0, 1.0]
    return w


def test_soft_coannotation_follows_eq4_to_eq6_and_scores_neutral_zero():
    w = _happy_weights()
    labels = np.array([[1, 1, 0], [0, 0, 1]])
    expr = np.array([[0.2, 0.7, 0.1], [0.3, 0.3, 0.4]])
    indicator = np.array(
        [
            [0.0, (1 * 0.51 + 1 * 1.0 + 0) / 2.51, 0.0],  # the paper's I(happy) example
            [0.0, 1.0 / 2.51, 1.0],
        ]
    )
    q = _softmax(indicator)
    expected = -(expr * np.log(q)).sum(axis=1).mean()
    got = losses.soft_coannotation(_t(expr), _t(labels), _t(w))
    assert got.item() == pytest.approx(expected)


def test_soft_coannotation_with_the_soft_label_as_target_is_minus_q_log_p():
    # the same worked example as Eq. 4-6 above, read as -sum_c q log p (the text's "cross
    # entropy with the soft targets", q the target), computed by hand in numpy
    w = _happy_weights()
    labels = np.array([[1, 1, 0], [0, 0, 1]])
    expr = np.array([[0.2, 0.7, 0.1], [0.3, 0.3, 0.4]])
    indicator = np.array([[0.0, 1.51 / 2.51, 0.0], [0.0, 1.0 / 2.51, 1.0]])
    q = _softmax(indicator)
    expected = -(q * np.log(expr)).sum(axis=1).mean()
    got = losses.soft_coannotation(_t(expr), _t(labels), _t(w), form="label")
    assert got.item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="form must be one of"):
        losses.soft_coannotation(_t(expr), _t(labels), _t(w), form="target")
    # its log given (e.g. the logits' log-softmax): that log is read, not the probabilities'
    other = np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]])
    log_p = _t(np.log(other))
    given = losses.soft_coannotation(_t(expr), _t(labels), _t(w), form="label", log_probs=log_p)
    assert given.item() == pytest.approx(-(q * np.log(other)).sum(axis=1).mean())
    assert given.item() != pytest.approx(expected)
    # the printed form reads none
    with pytest.raises(ValueError, match="form='label' only"):
        losses.soft_coannotation(_t(expr), _t(labels), _t(w), log_probs=log_p)
    with pytest.raises(ValueError, match=r"shape of class_probs \(2, 3\), got \(2, 2\)"):
        losses.soft_coannotation(_t(expr), _t(labels), _t(w), form="label", log_probs=log_p[:, :2])


def test_printed_soft_coannotation_takes_all_mass_to_the_top_soft_class_the_other_reading_to_q():
    # minimise each reading over the expression logits of one AU-labelled image: as printed the
    # loss is linear in p, so its minimum is all mass on the class of largest q; with q as the
    # target the minimum is p = q (the cross entropy H(q, p) is least at p = q)
    w = _t(_happy_weights())
    labels = _t([[1, 1, 0]])
    q = _softmax(np.array([[0.0, 1.51 / 2.51, 0.0]]))[0]
    found = {}
    for form in ("printed", "label"):
        logits = torch.zeros(1, 3, requires_grad=True)
        opt = torch.optim.SGD([logits], lr=2.0)
        for _ in range(3000):
            opt.zero_grad()
            losses.soft_coannotation(logits.softmax(dim=1), labels, w, form=form).backward()
            opt.step()
        found[form] = logits.softmax(dim=1).detach().numpy()[0]
    assert found["printed"][1] > 0.99  # Happiness, the class of largest q (q = 0.42 only)
    np.testing.assert_allclose(found["label"], q, atol=1e-3)


def test_soft_coannotation_ignores_images_without_au_labels():
    w = _t(_happy_weights())
    expr = _t([[0.2, 0.7, 0.1], [0.6, 0.2, 0.2]])
    labelled = losses.soft_coannotation(expr[:1], _t([[1, 1, 0]]), w)
    mixed = losses.soft_coannotation(expr, _t([[1, 1, 0], [-1, -1, -1]]), w)
    assert mixed.item() == pytest.approx(labelled.item())
    probs = _t([[0.2, 0.7, 0.1]], grad=True)
    none = losses.soft_coannotation(probs, _t([[-1, -1, -1]]), w)
    none.backward()
    assert none.item() == 0.0 and torch.equal(probs.grad, torch.zeros_like(probs))


def test_soft_coannotation_uses_only_the_annotated_aus_of_a_partial_row():
    w = _t(_happy_weights())
    expr = _t([[0.2, 0.7, 0.1]])
    # AU6 not annotated: I(happy) = (1 * AU12 + 1 * AU25) / 2 = 1 / 2, I(class 2) = AU25 = 0
    q = _softmax(np.array([[0.0, 0.5, 0.0]]))
    expected = -(np.array([0.2, 0.7, 0.1]) * np.log(q[0])).sum()
    got = losses.soft_coannotation(expr, _t([[-1, 1, 0]]), w)
    assert got.item() == pytest.approx(expected)


def test_soft_coannotation_passes_gradient_only_to_expression_probabilities():
    expr_logits = torch.randn(4, 3, requires_grad=True)
    au_logits = torch.randn(4, 3, requires_grad=True)
    au_labels = (torch.sigmoid(au_logits) > 0.5).float().requires_grad_()
    weights = torch.tensor(_happy_weights(), dtype=torch.float32, requires_grad=True)
    loss = losses.soft_coannotation(expr_logits.softmax(dim=1), au_labels, weights)
    loss.backward()
    assert expr_logits.grad is not None and expr_logits.grad.abs().sum() > 0
    assert au_labels.grad is None and weights.grad is None and au_logits.grad is None


def test_generic_class_attribute_forms_give_identical_numbers():
    expr = torch.randn(5, 4).softmax(dim=1)
    au = torch.rand(5, 3)
    relation = torch.randint(0, 2, (4, 3)).float()
    labels = torch.randint(-1, 2, (5, 3)).float()
    weights = torch.rand(4, 3)
    assert torch.equal(
        losses.distribution_matching(expr, au, relation),
        losses.class_attribute_matching(expr, au, relation),
    )
    assert torch.equal(
        losses.soft_coannotation(expr, labels, weights),
        losses.class_attribute_coannotation(expr, labels, weights),
    )


def test_coupling_losses_reject_logits_and_mismatched_relations():
    with pytest.raises(ValueError, match="probabilities"):
        losses.distribution_matching(torch.randn(2, 3) * 5, torch.rand(2, 2), torch.ones(3, 2))
    with pytest.raises(ValueError, match=r"\(3, 2\)"):
        losses.distribution_matching(torch.full((2, 3), 1 / 3), torch.rand(2, 2), torch.ones(2, 3))
    with pytest.raises(ValueError, match="attr_labels"):
        losses.soft_coannotation(
            torch.full((1, 3), 1 / 3), torch.tensor([[2.0, 0, 0]]), torch.ones(3, 3)
        )
