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
