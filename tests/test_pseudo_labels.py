import numpy as np
import pandas as pd
import pytest

from affectlib.studies import pseudo_labels as P


def _thr(method, seed, last_counts, epochs=2):
    rows = []
    for epoch in range(1, epochs + 1):
        for cls, n in last_counts.items():
            n = n if epoch == epochs else 99.0  # earlier epochs must not count
            rows.append(
                {
                    "method": method,
                    "seed": seed,
                    "epoch": epoch,
                    "class": cls,
                    "confident_per_step": n,
                }
            )
    return rows


def test_concentration_reads_the_last_epoch_and_finds_the_piled_class():
    thr = pd.DataFrame(
        _thr("ss-mfar", 0, {"Disgust": 4.0, "Fear": 1.0})
        + _thr("ss-mfar", 1, {"Disgust": 0.0, "Fear": 0.0})
        + _thr("ss-mfar", 2, {"Disgust": 9.0, "Fear": 1.0})
        + _thr("ss-mfar-rs", 0, {"Disgust": 1.0, "Fear": 1.0})
    )
    runs = pd.DataFrame(
        {
            "method": ["ss-mfar"] * 3 + ["ss-mfar-rs"] + ["ss-mfar"],
            "seed": [0, 1, 2, 0, 0],
            "split": ["test"] * 4 + ["validation"],
            "expr_f1": [0.2, 0.3, 0.1, 0.25, 0.9],
        }
    )
    c = P.concentration(thr, runs)
    assert c["top_class"].tolist() == ["Disgust", "", "Disgust", "Disgust"]
    np.testing.assert_allclose(c["top_share"], [0.8, np.nan, 0.9, 0.5])
    np.testing.assert_allclose(c["confident_per_step"], [5, 0, 10, 2])
    assert c["expr_f1"].tolist() == [0.2, 0.3, 0.1, 0.25]  # the test split's
    text = P.concentration_sentences(c)
    assert text[0].startswith("ss-mfar: of 3 runs, 1 had no confident pseudo-label")
    assert (
        "and 2 put at least 80% of them into one class (Disgust 2); Spearman rho -1.00" in text[0]
    )
    assert text[1] == (
        "ss-mfar-rs: of 1 runs, 0 had no confident pseudo-label at the last epoch and 0 put at "
        "least 80% of them into one class"
    )  # one run: no correlation
    # pooled: ranks of (5, 0, 10, 2) and (0.2, 0.3, 0.1, 0.25) by hand, d = (3-2, 1-4, 4-1, 2-3)
    rho = 1 - 6 * (1 + 9 + 9 + 1) / (4 * (16 - 1))
    assert f"Spearman rho {rho:+.2f}" in text[2] and "pooled over all 4 runs" in text[2]


def test_the_scores_come_from_the_split_asked_for():
    thr = pd.DataFrame(_thr("ss-mfar", 0, {"Disgust": 1.0}))
    runs = pd.DataFrame(
        {"method": "ss-mfar", "seed": 0, "split": ["test", "validation"], "expr_f1": [0.2, 0.7]}
    )
    assert P.concentration(thr, runs, split="validation")["expr_f1"].tolist() == [0.7]


def test_no_semi_supervised_run_gives_an_empty_table_and_no_sentence():
    c = P.concentration(
        pd.DataFrame(), pd.DataFrame(columns=["method", "seed", "split", "expr_f1"])
    )
    assert c.empty and P.concentration_sentences(c) == []


@pytest.mark.parametrize("share", [0.79, 0.8])
def test_a_run_piles_from_the_stated_share(share):
    c = pd.DataFrame(
        [
            {
                "method": "m",
                "seed": 0,
                "top_class": "Fear",
                "top_share": share,
                "confident_per_step": 1.0,
                "expr_f1": 0.1,
            }
        ]
    )
    assert f"and {int(share >= 0.8)} put at least 80%" in P.concentration_sentences(c)[0]
