"""Metrics against worked examples computed by hand and against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from affectlib import metrics

# x = [1, 2, 3], y = [2, 2, 5]: means 2 and 3, var_x = 2/3, var_y = 2, cov = 1
# CCC = 2 * 1 / (2/3 + 2 + 1) = 6/11
X, Y, CCC_XY = [1.0, 2.0, 3.0], [2.0, 2.0, 5.0], 6 / 11


def test_ccc_matches_a_worked_example_with_population_statistics():
    assert metrics.ccc(X, Y) == pytest.approx(CCC_XY)
    assert metrics.ccc(Y, X) == pytest.approx(CCC_XY)


def test_ccc_penalises_a_constant_shift():
    x = np.array([-0.5, 0.0, 0.5, 1.0])
    # shifting by 1 keeps var and cov equal to var_x = 0.3125; CCC = 2v / (2v + 1)
    v = np.mean((x - x.mean()) ** 2)
    assert metrics.ccc(x, x + 1.0) == pytest.approx(2 * v / (2 * v + 1))
    assert metrics.ccc(x, x) == pytest.approx(1.0)


def test_ccc_is_defined_for_constant_input():
    assert metrics.ccc([0.3, 0.3, 0.3], [0.1, 0.5, 0.9]) == 0.0
    assert metrics.ccc([0.3, 0.3], [0.2, 0.2]) == 0.0
    assert metrics.ccc([0.3, 0.3], [0.3, 0.3]) == 1.0


def test_ccc_rejects_unequal_lengths_empty_and_non_finite_input():
    with pytest.raises(ValueError, match="length"):
        metrics.ccc([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="empty"):
        metrics.ccc([], [])
    with pytest.raises(ValueError, match="finite"):
        metrics.ccc([1, np.nan], [1, 2])


def test_pcc_rmse_and_sagr_match_hand_computation():
    # pcc: cov 1 / sqrt(2/3 * 2)
    assert metrics.pcc(X, Y) == pytest.approx(1 / math.sqrt(4 / 3))
    assert metrics.pcc(X, Y) == pytest.approx(np.corrcoef(X, Y)[0, 1])
    assert metrics.pcc([1, 1, 1], Y) == 0.0
    assert metrics.rmse(X, Y) == pytest.approx(math.sqrt((1 + 0 + 4) / 3))
    assert metrics.sagr([-0.5, 0.2, 0.0, 0.4], [-0.1, -0.3, 0.0, 0.9]) == pytest.approx(3 / 4)


def test_expr_f1_is_macro_over_all_classes_on_labelled_samples_only():
    true = np.array([0, 1, 1, 2, -1, -1])
    pred = np.array([0, 1, 2, 2, 5, 5])
    # class 0: F1 1; class 1: P 1, R 1/2 -> 2/3; class 2: P 1/2, R 1 -> 2/3; classes 3..7: 0
    expected = (1 + 2 / 3 + 2 / 3) / 8
    assert metrics.expr_f1(true, pred) == pytest.approx(expected)
    keep = true != -1
    sk = f1_score(true[keep], pred[keep], average="macro", labels=range(8), zero_division=0)
    assert metrics.expr_f1(true, pred) == pytest.approx(sk)


def test_expr_f1_counts_an_absent_class_as_zero():
    assert metrics.expr_f1([0, 1, 0, 1], [0, 1, 0, 1]) == pytest.approx(2 / 8)


def test_expression_scores_are_nan_without_labelled_samples():
    assert math.isnan(metrics.expr_f1([-1, -1], [0, 1]))
    assert math.isnan(metrics.expr_accuracy([-1], [0]))
    assert math.isnan(metrics.average_class_accuracy([-1], [0]))


def test_accuracy_and_average_class_accuracy_agree_with_sklearn():
    true = np.array([0, 0, 0, 1, 2, 2, -1])
    pred = np.array([0, 0, 1, 1, 0, 2, 3])
    keep = true != -1
    assert metrics.expr_accuracy(true, pred) == pytest.approx(4 / 6)
    assert metrics.expr_accuracy(true, pred) == pytest.approx(
        accuracy_score(true[keep], pred[keep])
    )
    # recalls: class 0 2/3, class 1 1, class 2 1/2
    assert metrics.average_class_accuracy(true, pred) == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    assert metrics.average_class_accuracy(true, pred) == pytest.approx(
        balanced_accuracy_score(true[keep], pred[keep])
    )


def test_abaw2021_expr_score_weighs_f1_and_accuracy():
    true, pred = [0, 1, 1, 2], [0, 1, 2, 2]
    f1 = (1 + 2 / 3 + 2 / 3) / 7
    assert metrics.abaw2021_expr_score(true, pred) == pytest.approx(0.67 * f1 + 0.33 * 0.75)


def test_au_f1_all_negative_returns_zero_not_nan():
    f1 = metrics.per_au_f1(np.zeros((4, 2)), np.zeros((4, 2)))
    np.testing.assert_array_equal(f1, [0.0, 0.0])


def test_per_au_f1_skips_unlabelled_entries_per_column():
    true = np.array([[1, 0], [1, -1], [0, 1], [-1, 1]])
    pred = np.array([[1, 1], [0, 1], [0, 1], [1, 0]])
    # AU a on rows 0..2: TP 1, FN 1 -> F1 2/3; AU b on rows 0, 2, 3: TP 1, FP 1, FN 1 -> 1/2
    np.testing.assert_allclose(metrics.per_au_f1(true, pred), [2 / 3, 1 / 2])
    assert metrics.au_f1(true, pred) == pytest.approx((2 / 3 + 1 / 2) / 2)
    unlabelled = metrics.per_au_f1(np.array([[1, -1]]), np.array([[1, 0]]))
    assert unlabelled[0] == 1.0 and math.isnan(unlabelled[1])


def test_per_au_f1_equals_sklearn_column_by_column_with_missing_and_degenerate_columns():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 2, (300, 12))
    pred = rng.integers(0, 2, (300, 12))
    true[rng.random(true.shape) < 0.3] = -1  # missing labels, per column
    true[:, 3], pred[:, 3] = 0, 0  # nothing positive anywhere: zero_division=0
    true[:, 4] = 0  # no positive label, some positive predictions: F1 0
    true[:, 5] = -1  # no labelled entry: NaN
    expected = []
    for j in range(true.shape[1]):
        keep = true[:, j] != -1
        if not keep.any():
            expected.append(np.nan)
            continue
        expected.append(f1_score(true[keep, j], pred[keep, j], zero_division=0))
    got = metrics.per_au_f1(true, pred)
    np.testing.assert_array_equal(got, expected)  # the same floats, not just close
    assert got[3] == 0.0 and got[4] == 0.0 and math.isnan(got[5])


def test_per_au_f1_rejects_an_entry_other_than_0_or_1_by_position():
    with pytest.raises(ValueError, match=r"au_pred\[1, 0\] = 2"):
        metrics.per_au_f1(np.array([[1, 0], [0, 1]]), np.array([[1, 0], [2, 1]]))
    with pytest.raises(ValueError, match=r"au_true\[0, 1\] = 3"):
        metrics.per_au_f1(np.array([[1, 3], [0, 1]]), np.array([[1, 0], [0, 1]]))


def test_afa_is_the_mean_of_au_f1_and_au_accuracy():
    true = np.array([[1, 0], [1, 0], [0, 1], [0, 0]])
    pred = np.array([[1, 0], [0, 0], [0, 1], [1, 1]])
    # AU a: TP 1, FN 1, FP 1 -> F1 1/2, acc 2/4; AU b: TP 1, FP 1 -> F1 2/3, acc 3/4
    f1, acc = (1 / 2 + 2 / 3) / 2, (2 / 4 + 3 / 4) / 2
    assert metrics.afa(true, pred) == pytest.approx((f1 + acc) / 2)
    assert metrics.emotionet_score(true, pred) == metrics.afa(true, pred)


def _abaw_rows():
    expr_true = np.array([0, 1, 2, -1, 1, -1])
    expr_pred = np.array([0, 1, 1, 3, 1, 3])
    au_true = np.array([[1, 0], [0, 1], [1, 1], [1, -1], [0, 0], [-1, -1]])  # row 3: partial
    au_pred = np.array([[1, 0], [0, 0], [1, 1], [0, 0], [1, 0], [0, 0]])
    va_true = np.array([[0.1, 0.2], [0.5, -0.3], [-5, -5], [0.9, 0.4], [-0.2, 0.0], [-5, -5]])
    va_pred = np.array([[0.0, 0.1], [0.4, -0.2], [0.9, 0.9], [0.7, 0.5], [-0.1, 0.2], [0.9, 0.9]])
    return expr_true, expr_pred, au_true, au_pred, va_true, va_pred


def test_p_mtl_scores_each_task_on_its_own_labelled_rows():
    et, ep, at, ap, vt, vp = _abaw_rows()
    scores = metrics.p_mtl(et, ep, at, ap, vt, vp)

    ke = et != -1
    expr = f1_score(et[ke], ep[ke], average="macro", labels=range(8), zero_division=0)
    ka = (at != -1).all(axis=1)
    au = np.mean([f1_score(at[ka, j], ap[ka, j], zero_division=0) for j in range(2)])
    kv = (vt != -5).all(axis=1)

    def ccc_by_hand(x, y):
        cov = np.mean((x - x.mean()) * (y - y.mean()))
        return 2 * cov / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)

    va = (ccc_by_hand(vt[kv, 0], vp[kv, 0]) + ccc_by_hand(vt[kv, 1], vp[kv, 1])) / 2
    assert scores["expr_f1"] == pytest.approx(expr)
    assert scores["au_f1"] == pytest.approx(au)
    assert scores["va"] == pytest.approx(va)
    assert scores["overall"] == pytest.approx(expr + au + va)
    # the unlabelled rows carry predictions that would change every score if they were counted
    assert metrics.ccc(vt[:, 0], vp[:, 0]) != pytest.approx(ccc_by_hand(vt[kv, 0], vp[kv, 0]))


def test_p_mtl_marks_a_task_without_labels_as_nan():
    et, ep, at, ap, vt, vp = _abaw_rows()
    scores = metrics.p_mtl(et, ep, at, ap, np.full_like(vt, -5.0), vp)
    assert math.isnan(scores["va"]) and math.isnan(scores["overall"])
    assert not math.isnan(scores["expr_f1"])


def test_p_mtl_rejects_tasks_of_different_lengths():
    et, ep, at, ap, vt, vp = _abaw_rows()
    with pytest.raises(ValueError, match="rows"):
        metrics.p_mtl(et[:-1], ep[:-1], at, ap, vt, vp)
