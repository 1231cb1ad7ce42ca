import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from affectlib import stats


def test_mean_ci_is_the_student_t_interval_computed_by_hand():
    x = [0.40, 0.44, 0.45]
    m, lo, hi = stats.mean_ci(x)
    half = 4.302652729911275 * np.std(x, ddof=1) / np.sqrt(3)  # t(0.975, df=2)
    assert m == pytest.approx(np.mean(x))
    assert (lo, hi) == pytest.approx((np.mean(x) - half, np.mean(x) + half))
    assert 4.302652729911275 == pytest.approx(sps.t.ppf(0.975, 2))


def test_mean_ci_of_one_value_and_of_nothing():
    assert stats.mean_ci([0.5]) == (0.5, 0.5, 0.5)
    assert all(np.isnan(v) for v in stats.mean_ci([np.nan]))


def test_summarize_runs_groups_in_order_of_appearance():
    runs = pd.DataFrame({"method": ["b", "a", "b", "a"], "f1": [0.2, 0.5, 0.4, 0.7]})
    s = stats.summarize_runs(runs, "method", ["f1"])
    assert s["method"].tolist() == ["b", "a"]
    assert s["f1"].tolist() == pytest.approx([0.3, 0.6])
    assert s["n"].tolist() == [2, 2]
    assert (s["f1 lo"] < s["f1"]).all() and (s["f1 hi"] > s["f1"]).all()


def test_paired_difference_pairs_by_seed_and_gives_a_verdict():
    runs = pd.DataFrame(
        {
            "method": ["a"] * 3 + ["b"] * 3,
            "seed": [0, 1, 2, 2, 1, 0],  # b listed in another order: pairing is by seed
            "f1": [0.50, 0.61, 0.72, 0.70, 0.59, 0.48],
        }
    )
    r = stats.paired_difference(runs, "a", "b", "f1")
    assert r["seeds"] == 3 and r["diff"] == pytest.approx(0.02)
    assert r["verdict"] == "a better"  # the difference is 0.02 on every seed: zero variance
    r2 = stats.paired_difference(runs.assign(f1=[0.5, 0.6, 0.7, 0.71, 0.58, 0.49]), "a", "b", "f1")
    assert r2["verdict"] == "no clear difference"


def test_format_ci():
    assert stats.format_ci(0.41234, 0.4, 0.43) == "0.412 [0.400, 0.430]"
    assert stats.format_ci(np.nan, np.nan, np.nan) == ""


@pytest.mark.parametrize(
    ("lo", "hi", "n", "kw", "word"),
    [
        (0.01, 0.05, 3, {}, "A higher"),
        (-0.05, -0.01, 3, {}, "B higher"),
        (-0.01, 0.05, 3, {}, stats.NO_CLEAR),
        (-0.01, 0.01, 3, {}, stats.NO_CLEAR),  # narrow, but no margin stated: not "equivalent"
        (-0.01, 0.01, 3, {"margin": 0.02}, stats.EQUIVALENT),
        (-0.01, 0.03, 3, {"margin": 0.02}, stats.NO_CLEAR),  # reaches past the margin
        (0.01, 0.05, 3, {"at_floor": True}, stats.UNTESTABLE),  # a side at chance decides nothing
        (0.01, 0.05, 1, {}, stats.TOO_FEW),
        (float("nan"), float("nan"), 3, {}, stats.TOO_FEW),
    ],
)
def test_verdict_on_a_paired_interval(lo, hi, n, kw, word):
    assert stats.verdict(lo, hi, n, **kw) == word


def test_reaches_floor_counts_nan_and_equality_as_reaching():
    assert stats.reaches_floor(0.30, 0.30) and stats.reaches_floor(float("nan"), 0.3)
    assert stats.reaches_floor(0.2, 0.3) and not stats.reaches_floor(0.31, 0.3)


@pytest.mark.parametrize(
    ("claim", "found", "out"),
    [
        ("above", "A higher", "holds"),
        ("above", "B higher", "fails"),
        ("below", "B higher", "holds"),
        ("on par", stats.EQUIVALENT, "holds"),
        ("on par", "A higher", "fails"),
        ("above", stats.EQUIVALENT, "fails"),
        ("above", stats.NO_CLEAR, stats.NO_CLEAR),
        ("on par", stats.NO_CLEAR, stats.NO_CLEAR),
        ("below", stats.UNTESTABLE, stats.UNTESTABLE),
    ],
)
def test_claim_verdict(claim, found, out):
    assert stats.claim_verdict(claim, found) == out


def test_claim_verdict_rejects_an_unknown_claim():
    with pytest.raises(ValueError, match="claim must be"):
        stats.claim_verdict("equal", "A higher")
