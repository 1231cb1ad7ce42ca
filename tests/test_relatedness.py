import numpy as np
import pandas as pd
import pytest

from affectlib import profiles
from affectlib import relatedness as rel
from affectlib.data.embedded import generate_story
from affectlib.labels import ABAW_AUS, AU_COLUMNS, EXPRESSIONS, N_EXPR
from affectlib.studies import task_relatedness as study
from affectlib.studies import task_relatedness_report as report

HAPPINESS, SADNESS, FEAR = (EXPRESSIONS.index(n) for n in ("Happiness", "Sadness", "Fear"))


def small_table() -> pd.DataFrame:
    """Eight images, two AUs; the expected counts are written out in the tests by hand."""
    return pd.DataFrame(
        {
            "path": [f"{i}.jpg" for i in range(8)],
            "video": ["v1", "v1", "v1", "v2", "v2", "v2", "v3", "v3"],
            "frame": [0, 1, 2, 0, 1, 2, 0, 1],
            "expr": [HAPPINESS, HAPPINESS, HAPPINESS, HAPPINESS, SADNESS, -1, SADNESS, SADNESS],
            "AU1": [1, 1, 0, -1, 1, 1, 0, -1],
            "AU2": [0, -1, 1, 1, 0, 1, 0, -1],
            "valence": 0.0,
            "arousal": 0.0,
            "split": "train",
            "source": "hand",
        }
    )


def cell(long: pd.DataFrame, expression: int, au: int) -> pd.Series:
    rows = long[(long["expression"] == expression) & (long["au"] == au)]
    assert len(rows) == 1
    return rows.iloc[0]


def random_table(seed: int, n: int = 600, n_videos: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    aus = rng.integers(-1, 2, size=(n, len(AU_COLUMNS)))
    return pd.DataFrame(
        {
            "video": rng.integers(0, n_videos, n).astype(str),
            "expr": rng.integers(-1, N_EXPR, n),
            **{c: aus[:, i] for i, c in enumerate(AU_COLUMNS)},
        }
    )


# --- empirical ----------------------------------------------------------------------------------


def test_empirical_counts_match_a_hand_made_table():
    long = rel.empirical(small_table(), classes=[HAPPINESS, SADNESS], n_boot=50, min_support=1)
    # happiness, AU1: images 0, 1, 2 labelled (1, 1, 0); image 3 has no AU1 label
    assert cell(long, HAPPINESS, 1)[["n_expr", "n_both"]].tolist() == [3, 2]
    assert cell(long, HAPPINESS, 1)["p"] == pytest.approx(2 / 3)
    # happiness, AU2: images 0, 2, 3 labelled (0, 1, 1)
    assert cell(long, HAPPINESS, 2)["p"] == pytest.approx(2 / 3)
    # sadness, AU1: images 4, 6 labelled (1, 0); image 7 has no AU label at all
    assert cell(long, SADNESS, 1)[["n_expr", "n_both"]].tolist() == [2, 1]
    assert cell(long, SADNESS, 2)[["n_expr", "n_both", "p"]].tolist() == [2, 0, 0.0]
    assert long["expression_name"].tolist() == ["Happiness"] * 2 + ["Sadness"] * 2


def test_empirical_excludes_images_lacking_either_label():
    table = small_table()
    # image 5 has both AUs active but no expression; image 3 lacks AU1
    long = rel.empirical(table, classes=[HAPPINESS, SADNESS], n_boot=20)
    relabelled = table.assign(expr=table["expr"].replace(-1, HAPPINESS))
    counted = rel.empirical(relabelled, classes=[HAPPINESS, SADNESS], n_boot=20)
    assert cell(long, HAPPINESS, 1)["n_expr"] == 3
    assert cell(counted, HAPPINESS, 1)["n_expr"] == 4  # once labelled, image 5 counts


def test_empirical_base_rate_pools_the_counted_images():
    long = rel.empirical(small_table(), classes=[HAPPINESS, SADNESS], n_boot=20)
    # AU1 over counted images 0, 1, 2, 4, 6: 3 active of 5; AU2 over 0, 2, 3, 4, 6: 2 of 5
    assert cell(long, SADNESS, 1)["base_rate"] == pytest.approx(3 / 5)
    assert cell(long, HAPPINESS, 2)["base_rate"] == pytest.approx(2 / 5)


def test_an_expression_without_images_is_reported_unsupported_with_nan_rate():
    long = rel.empirical(small_table(), n_boot=20, min_support=3)
    assert len(long) == N_EXPR * 2  # every requested expression is present
    fear = cell(long, FEAR, 1)
    assert fear["n_expr"] == 0 and fear["n_both"] == 0
    assert np.isnan(fear["p"]) and np.isnan(fear["lo"]) and np.isnan(fear["hi"])
    assert not fear["supported"]
    assert cell(long, HAPPINESS, 1)["supported"]  # 3 images
    assert not cell(long, SADNESS, 1)["supported"]  # 2 images < min_support


def test_empirical_accepts_expression_names():
    by_name = rel.empirical(small_table(), classes=["Happiness", "sad"], n_boot=20)
    by_index = rel.empirical(small_table(), classes=[HAPPINESS, SADNESS], n_boot=20)
    pd.testing.assert_frame_equal(by_name, by_index)


def test_bootstrap_resamples_videos_not_frames():
    # ten videos of 30 identical frames; AU1 active throughout four of them
    video = np.repeat(np.arange(10), 30)
    table = pd.DataFrame({"video": video, "expr": HAPPINESS, "AU1": (video < 4).astype(int)})
    grouped = cell(rel.empirical(table, classes=[HAPPINESS], n_boot=2000), HAPPINESS, 1)
    frames = cell(
        rel.empirical(table, classes=[HAPPINESS], group_column=None, n_boot=2000), HAPPINESS, 1
    )
    assert grouped["p"] == pytest.approx(0.4) and frames["p"] == pytest.approx(0.4)
    # with equal videos a resampled rate is k/10, so the grouped bounds are multiples of 0.1
    np.testing.assert_allclose(
        [grouped["lo"] * 10, grouped["hi"] * 10],
        np.round([grouped["lo"] * 10, grouped["hi"] * 10]),
        atol=1e-9,
    )
    # the video bootstrap sees 10 units (se ~ 0.155); treating 300 frames as independent, ~0.028
    assert grouped["hi"] - grouped["lo"] > 3 * (frames["hi"] - frames["lo"])
    assert grouped["lo"] < 0.4 < grouped["hi"]


def test_row_bootstrap_matches_the_binomial_spread():
    rng = np.random.default_rng(3)
    att = (rng.random((400, 1)) < 0.3).astype(int)
    out = rel.empirical_cooccurrence(np.zeros(400, int), att, None, n_boot=4000, seed=1)
    p = out["p"].iloc[0]
    half_width = 1.96 * np.sqrt(p * (1 - p) / 400)  # normal approximation, by hand
    assert out["lo"].iloc[0] == pytest.approx(p - half_width, abs=0.01)
    assert out["hi"].iloc[0] == pytest.approx(p + half_width, abs=0.01)


def simulate(rng: np.random.Generator, n_videos: int, frames: int, icc: float):
    """Videos of one class each (alternating 0/1); a video's AU rate is Beta with the class mean.

    For Beta(mean * phi, (1 - mean) * phi) frames, the intra-video correlation is 1 / (phi + 1).
    """
    means = np.array([0.4, 0.7])
    phi = 1.0 / icc - 1.0
    cls = np.arange(n_videos) % 2
    p_video = rng.beta(means[cls] * phi, (1.0 - means[cls]) * phi)
    att = (rng.random((n_videos, frames)) < p_video[:, None]).astype(int)
    return np.repeat(cls, frames), att.reshape(-1, 1), np.repeat(np.arange(n_videos), frames), means


def test_video_bootstrap_intervals_cover_the_truth_at_about_the_nominal_rate():
    rng = np.random.default_rng(0)
    hits_video, hits_frames = [], []
    for rep in range(200):
        cls, att, video, truth = simulate(rng, n_videos=120, frames=10, icc=0.3)
        for groups, hits in ((video, hits_video), (None, hits_frames)):
            out = rel.empirical_cooccurrence(cls, att, groups, n_boot=500, seed=rep)
            hits.extend((out["lo"] <= truth) & (truth <= out["hi"]))
    # 400 intervals: the binomial s.e. of the coverage is ~0.011; percentile intervals on 60
    # videos per class run slightly short, hence the wider lower side
    assert 0.91 <= np.mean(hits_video) <= 0.98
    # frames of a video are correlated (design effect 1 + 9 * 0.3 = 3.7): row resampling undercovers
    assert np.mean(hits_frames) < 0.85


def test_bootstrap_is_reproducible_from_its_seed():
    table = random_table(0)
    first = rel.empirical(table, n_boot=100, seed=5)
    pd.testing.assert_frame_equal(first, rel.empirical(table, n_boot=100, seed=5))
    assert not np.allclose(first["lo"], rel.empirical(table, n_boot=100, seed=6)["lo"])


def test_classes_by_attributes_core_equals_the_expression_au_form():
    table = random_table(1)
    long = rel.empirical(table, n_boot=200, seed=2)
    core = rel.empirical_cooccurrence(
        table["expr"].to_numpy(),
        table[list(AU_COLUMNS)].to_numpy(),
        table["video"].to_numpy(),
        classes=range(N_EXPR),
        attributes=list(ABAW_AUS),
        n_boot=200,
        seed=2,
    )
    assert core["class"].tolist() == long["expression"].tolist()
    assert core["attribute"].tolist() == long["au"].tolist()
    for ours, theirs in (
        ("n_class", "n_expr"),
        ("n_both", "n_both"),
        ("p", "p"),
        ("lo", "lo"),
        ("hi", "hi"),
        ("base_rate", "base_rate"),
        ("supported", "supported"),
    ):
        np.testing.assert_array_equal(core[ours].to_numpy(), long[theirs].to_numpy())


def test_cooccurrence_works_for_a_non_face_problem():
    # shoe types x attributes (the paper's Case II): string classes, no groups
    shoe = np.array(["boot", "boot", "boot", "sandal", "sandal", "pump", "unknown"])
    attrs = np.array(
        # open, high heel
        [[0, 0], [0, 1], [-1, 1], [1, 0], [1, -1], [0, 1], [1, 1]]
    )
    out = rel.empirical_cooccurrence(
        shoe,
        attrs,
        classes=["boot", "sandal", "pump"],
        attributes=["open", "heel"],
        n_boot=50,
        min_support=2,
    )
    p = rel.to_matrix(out)
    # boot: open 0 of 2, heel 2 of 3; sandal: open 2 of 2, heel 0 of 1; pump: 0 of 1, 1 of 1
    expected = np.array([[0.0, 2 / 3], [1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(p.to_numpy(), expected)
    assert p.index.tolist() == ["boot", "sandal", "pump"]
    related = rel.relation_matrix(
        out, ["boot", "sandal", "pump"], ["open", "heel"], rule="threshold", threshold=0.5
    )
    # pump is below min_support for both attributes: nothing related however high its rate
    np.testing.assert_array_equal(related, [[0, 1], [1, 0], [0, 0]])


def test_base_rates_match_a_hand_count():
    rates = rel.base_rates(small_table())
    np.testing.assert_allclose(rates.loc[[1, 2]].to_numpy(), [3 / 5, 2 / 5])
    every_image = rel.base_rates(small_table(), expr_column=None)
    # image 5 (no expression, both AUs active) now counts
    np.testing.assert_allclose(every_image.loc[[1, 2]].to_numpy(), [4 / 6, 3 / 6])


def test_to_matrix_lays_out_expressions_by_aus():
    long = rel.empirical(small_table(), classes=[HAPPINESS, SADNESS], n_boot=20)
    counts = rel.to_matrix(long, value="n_expr")
    assert counts.index.tolist() == ["Happiness", "Sadness"]
    assert counts.columns.tolist() == [1, 2]
    np.testing.assert_array_equal(counts.to_numpy(), [[3, 3], [2, 2]])
    with pytest.raises(KeyError, match="no column 'q'"):
        rel.to_matrix(long, value="q")


# --- domain knowledge and the matrices of Eq. 2 / Eq. 4 -----------------------------------------


def test_domain_table_maps_the_six_basic_expressions_to_abaw_indices():
    domain = rel.domain_table()
    assert sorted(domain["expression"].unique()) == [1, 2, 3, 4, 5, 6]
    assert set(domain["kind"]) == {"prototypical", "observational"}
    assert set(rel.domain_table("affwild2")["kind"]) == {"empirical"}
    with pytest.raises(ValueError, match="unknown relatedness source"):
        rel.domain_table("emotionet")


def test_domain_matrices_match_the_csv_for_happiness_and_sadness():
    domain = rel.domain_table()
    aus = [1, 4, 6, 11, 12, 15, 17, 25]
    weights = rel.weight_matrix(domain, range(N_EXPR), aus)
    relation = rel.relation_matrix(domain, range(N_EXPR), aus)
    # CSV: happiness 12, 25 prototypical, 6 observational (0.51)
    np.testing.assert_allclose(weights[HAPPINESS], [0, 0, 0.51, 0, 1, 0, 0, 1])
    # CSV: sadness 4, 15 prototypical; 1 (0.6), 6 (0.5), 11 (0.26), 17 (0.67) observational
    np.testing.assert_allclose(weights[SADNESS], [0.6, 1, 0.5, 0.26, 0, 1, 0.67, 0])
    np.testing.assert_array_equal(relation[HAPPINESS], [0, 0, 1, 0, 1, 0, 0, 1])
    np.testing.assert_array_equal(relation[SADNESS], [1, 1, 1, 1, 0, 1, 1, 0])
    # Neutral and Other have no related AUs
    assert not relation[[0, 7]].any() and not weights[[0, 7]].any()


def test_domain_matrix_projects_onto_the_abaw_aus():
    relation = rel.relation_matrix(rel.domain_table(), range(N_EXPR), ABAW_AUS)
    assert relation.shape == (N_EXPR, len(ABAW_AUS))
    # the paper's example for Eq. 2: AU2 is related to surprise and fear only
    au2 = relation[:, ABAW_AUS.index(2)]
    np.testing.assert_array_equal(
        np.flatnonzero(au2), [EXPRESSIONS.index("Fear"), EXPRESSIONS.index("Surprise")]
    )


def estimate(p, lo, base, supported) -> pd.DataFrame:
    """A hand-made long estimate: one expression (Happiness), AUs 1..len(p)."""
    n = len(p)
    return pd.DataFrame(
        {
            "expression": HAPPINESS,
            "au": range(1, n + 1),
            "p": p,
            "lo": lo,
            "base_rate": base,
            "supported": supported,
        }
    )


def test_empirical_relation_rules_select_as_documented():
    # AU1 frequent and lifted; AU2 frequent but common everywhere; AU3 rare but lifted;
    # AU4 frequent and lifted but unsupported; AU5 empty
    long = estimate(
        p=[0.8, 0.5, 0.2, 0.9, np.nan],
        lo=[0.7, 0.4, 0.15, 0.6, np.nan],
        base=[0.3, 0.5, 0.05, 0.2, 0.3],
        supported=[True, True, True, False, False],
    )
    aus = [1, 2, 3, 4, 5]
    rows = {
        rule: rel.relation_matrix(long, [HAPPINESS], aus, rule=rule, threshold=0.3)[0]
        for rule in rel.RULES
    }
    np.testing.assert_array_equal(rows["threshold"], [1, 1, 0, 0, 0])
    np.testing.assert_array_equal(rows["lift"], [1, 0, 1, 0, 0])
    np.testing.assert_array_equal(rows["threshold_and_lift"], [1, 0, 0, 0, 0])
    weights = rel.weight_matrix(long, [HAPPINESS], aus, rule="threshold", threshold=0.3)[0]
    np.testing.assert_allclose(weights, [0.8, 0.5, 0, 0, 0])
    with pytest.raises(ValueError, match="unknown relation rule"):
        rel.relation_matrix(long, [HAPPINESS], aus, rule="majority")


# --- the paper's layout -------------------------------------------------------------------------


def test_paper_layout_regenerates_table_1_from_the_reference_csv():
    layout = rel.paper_layout(rel.domain_table(), rel.domain_table("affwild2"))
    assert layout.index.tolist() == ["Happiness", "Sadness", "Fear", "Anger", "Surprise", "Disgust"]
    # strings as printed in the paper's Table 1
    assert layout.loc["Happiness"].tolist() == [
        "12, 25",
        "6 (0.51)",
        "12 (0.82), 25 (0.7), 6 (0.57), 7 (0.83), 10 (0.63)",
    ]
    assert layout.loc["Sadness"].tolist() == [
        "4, 15",
        "1 (0.6), 6 (0.5), 11 (0.26), 17 (0.67)",
        "4 (0.53), 15 (0.42), 1 (0.31), 7 (0.13)",
    ]


def test_paper_layout_lists_related_estimated_aus_highest_rate_first():
    long = estimate(
        p=[0.456, 0.81, 0.2], lo=[0.4, 0.7, 0.1], base=[0.1, 0.1, 0.1], supported=[True] * 3
    )
    layout = rel.paper_layout(rel.domain_table(), long, 0.3)
    assert layout.loc["Happiness", "Empirical AUs (w)"] == "2 (0.81), 1 (0.46)"
    assert layout.loc["Sadness", "Empirical AUs (w)"] == ""


def test_the_papers_reading_relates_its_own_au7_rates_that_the_interval_rule_drops():
    # the paper's Aff-Wild2 column, read as an estimate with tight intervals around its rates
    paper = rel.domain_table("affwild2")
    long = paper.drop(columns="kind").assign(
        p=paper["weight"], lo=paper["weight"] - 0.01, hi=paper["weight"] + 0.01,
        base_rate=0.2, supported=True,
    )  # fmt: skip
    assert rel.paper_threshold() == pytest.approx(0.13)  # AU7 for sadness
    ours = rel.paper_layout(rel.domain_table(), long, rel.paper_threshold(), rule="threshold")
    printed = rel.paper_layout(rel.domain_table(), paper)
    for expression in printed.index:  # every pair the paper prints, highest rate first
        want = sorted(printed.loc[expression, "Empirical AUs (w)"].split(", "))
        assert sorted(ours.loc[expression, "Empirical AUs (w)"].split(", ")) == want
    interval = rel.paper_layout(rel.domain_table(), long, rule="threshold_and_lift")
    assert "7 (0.13)" not in interval.loc["Sadness", "Empirical AUs (w)"]
    assert "7 (0.2)" not in interval.loc["Surprise", "Empirical AUs (w)"]


def test_compare_with_paper_puts_the_papers_rate_beside_ours():
    paper = rel.domain_table("affwild2")
    ours = paper.rename(columns={"weight": "p"}).assign(
        p=lambda d: d["p"] + 0.05, lo=lambda d: d["p"] - 0.1, hi=lambda d: d["p"] + 0.1, n_expr=50
    )
    ours = ours[~((ours["expression"] == HAPPINESS) & (ours["au"] == 12))]
    table = rel.compare_with_paper(ours)
    assert len(table) == len(paper)
    assert {"paper_affwild2_p", "ours_p", "delta_ours_minus_paper"} <= set(table.columns)
    happy12 = table[(table["expression_name"] == "Happiness") & (table["au"] == 12)].iloc[0]
    assert happy12["paper_affwild2_p"] == pytest.approx(0.82) and np.isnan(happy12["ours_p"])
    assert not happy12["has_estimate"] and not happy12["ours_supported"]
    assert table["has_estimate"].sum() == len(paper) - 1
    rest = table.dropna(subset=["ours_p"])
    assert rest["ours_supported"].all()  # no support flag given: every estimate counts
    np.testing.assert_allclose(rest["delta_ours_minus_paper"], 0.05)
    assert rest["paper_in_our_interval"].all()


# --- bad input ----------------------------------------------------------------------------------


def test_bad_input_is_named_in_the_error():
    table = small_table()
    with pytest.raises(ValueError, match="'AU2' holds values other than 1, 0, -1: \\[2\\]"):
        rel.empirical(table.assign(AU2=table["AU2"].replace(-1, 2)))
    with pytest.raises(ValueError, match="expression labels outside -1..7: \\[9\\]"):
        rel.empirical(table.assign(expr=table["expr"].replace(-1, 9)))
    with pytest.raises(KeyError, match="no expression column 'emotion'"):
        rel.empirical(table, expr_column="emotion")
    with pytest.raises(KeyError, match="lacks AU columns \\['AU99'\\]"):
        rel.empirical(table, au_columns=["AU1", "AU99"])
    with pytest.raises(ValueError, match="groups must have shape"):
        rel.empirical_cooccurrence(np.zeros(3), np.zeros((3, 1)), np.zeros(2))
    with pytest.raises(ValueError, match="ci must lie in"):
        rel.empirical(table, ci=95)


# --- recovery of a known truth ------------------------------------------------------------------


def hand_estimate() -> pd.DataFrame:
    """Happiness x AU1, AU2, AU4 as empirical() would report them."""
    return pd.DataFrame(
        {
            "expression": HAPPINESS,
            "expression_name": "Happiness",
            "au": [1, 2, 4],
            "n_expr": [100, 100, 0],
            "n_both": [30, 90, 0],
            "p": [0.3, 0.9, np.nan],
            "lo": [0.2, 0.85, np.nan],
            "hi": [0.4, 0.95, np.nan],
        }
    )


def test_recovery_adds_error_coverage_and_support_by_hand():
    truth = pd.DataFrame({"AU1": [0.35], "AU2": [0.8]}, index=["Happiness"])
    rec = study.recovery(hand_estimate(), truth, min_each=20)
    np.testing.assert_allclose(rec["truth"], [0.35, 0.8, np.nan])
    np.testing.assert_allclose(rec["error"], [-0.05, 0.1, np.nan])
    # 0.35 lies in [0.2, 0.4]; 0.8 is below [0.85, 0.95]; AU4 has no truth and no estimate
    assert rec["covered"].tolist() == [True, False, False]
    # AU1: 30 active, 70 inactive; AU2: only 10 inactive
    assert rec["well_supported"].tolist() == [True, False, False]


def test_well_supported_needs_images_on_both_sides():
    long = pd.DataFrame({"n_expr": [50, 50, 50, 10], "n_both": [25, 24, 26, 5]})
    assert study.well_supported(long, 25).tolist() == [True, False, False, False]
    with pytest.raises(ValueError, match="min_each must be >= 1"):
        study.well_supported(long, 0)


def test_recovery_summary_averages_by_hand_and_is_nan_without_cells():
    truth = pd.DataFrame({"AU1": [0.35], "AU2": [0.8]}, index=["Happiness"])
    rec = study.recovery(hand_estimate(), truth, min_each=20)
    row = study.recovery_summary({"hand": rec}).iloc[0]
    assert (row["cells"], row["cells_well_supported"]) == (2, 1)
    assert row["mae"] == pytest.approx((0.05 + 0.1) / 2)
    assert row["bias"] == pytest.approx((-0.05 + 0.1) / 2)
    assert row["coverage"] == pytest.approx(0.5)
    assert row["mae_well_supported"] == pytest.approx(0.05)
    assert row["coverage_well_supported"] == 1.0
    none = study.recovery_summary({"hand": study.recovery(hand_estimate(), truth, min_each=95)})
    assert none["cells_well_supported"].iloc[0] == 0
    assert np.isnan(none["mae_well_supported"].iloc[0])
    assert np.isnan(none["coverage_well_supported"].iloc[0])


def test_true_label_table_puts_the_truth_in_the_label_columns():
    truth = pd.DataFrame(
        {
            "video": ["a", "a"],
            "expr": [-1, 2],
            "AU1": [1, -1],
            "true_expr": [4, 3],
            "true_AU1": [0, 1],
        }
    )
    true = study.true_label_table(truth)
    assert true.columns.tolist() == ["video", "expr", "AU1"]
    assert true["expr"].tolist() == [4, 3] and true["AU1"].tolist() == [0, 1]
    with pytest.raises(KeyError, match="no 'true_expr' column"):
        study.true_label_table(truth.drop(columns="true_expr"))


def test_annotation_noise_counts_by_hand():
    truth = pd.DataFrame(
        {
            "expr": [HAPPINESS, HAPPINESS, SADNESS, -1],
            "true_expr": [HAPPINESS, SADNESS, SADNESS, SADNESS],
            "AU1": [1, 0, 0, -1],
            "true_AU1": [1, 1, 1, 0],
            "AU2": [1, 0, 0, -1],
            "true_AU2": [0, 0, 0, 1],
        }
    )
    noise = study.annotation_noise(truth).set_index("label")
    # expression: one of three labelled images disagrees; the unlabelled one is not counted
    assert noise.loc["expr", "images"] == 3 and noise.loc["expr", "disagree"] == pytest.approx(
        1 / 3
    )
    # AU1: three labelled, all truly active, two annotated inactive; none truly inactive
    assert noise.loc["AU1", "missed"] == pytest.approx(2 / 3)
    assert np.isnan(noise.loc["AU1", "false_active"])
    # AU2: three truly inactive, one annotated active
    assert noise.loc["AU2", "false_active"] == pytest.approx(1 / 3)
    assert np.isnan(noise.loc["AU2", "missed"])


def video_table(n_videos: int = 10, frames: int = 20) -> pd.DataFrame:
    """Videos of one expression each; AU1 is active in the first half of every video."""
    video = np.repeat(np.arange(n_videos), frames)
    return pd.DataFrame(
        {
            "video": video,
            "expr": np.where(video % 2 == 0, HAPPINESS, SADNESS),
            "AU1": (np.tile(np.arange(frames), n_videos) < frames // 2).astype(int),
        }
    )


def test_convergence_draws_whole_videos():
    truth = pd.DataFrame({"AU1": [0.4, 0.5]}, index=["Happiness", "Sadness"])
    curve = study.convergence(video_table(), truth, [0.2, 0.5, 1.0], repeats=3, seed=1)
    # all videos are drawn once only; 20 frames per video are counted together
    assert curve.groupby("fraction").size().tolist() == [3, 3, 1]
    assert curve["videos"].tolist() == [2] * 3 + [5] * 3 + [10]
    np.testing.assert_array_equal(curve["images"], curve["videos"] * 20)
    # every video has AU1 in half its frames: the estimate is 0.5 whatever is drawn
    full = curve[curve["fraction"] == 1.0].iloc[0]
    assert full["mae"] == pytest.approx((0.1 + 0.0) / 2)
    assert full["cells"] == 2 and full["cells_well_supported"] == 2
    with pytest.raises(ValueError, match="fractions must lie in"):
        study.convergence(video_table(), truth, [0.0, 1.0], repeats=2)
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        study.convergence(video_table(), truth, [1.0], repeats=0)


def test_convergence_error_shrinks_with_more_videos():
    rng = np.random.default_rng(0)
    video = np.repeat(np.arange(200), 10)
    table = pd.DataFrame(
        {"video": video, "expr": HAPPINESS, "AU1": (rng.random(2000) < 0.3).astype(int)}
    )
    truth = pd.DataFrame({"AU1": [0.3]}, index=["Happiness"])
    curve = study.convergence(table, truth, [0.05, 1.0], repeats=20, seed=0)
    small, full = curve.groupby("fraction")["mae"].mean()
    # binomial s.e. with 100 and 2000 images: ~0.046 and ~0.010
    assert small > 2 * full


def test_domain_vs_affwild2_marks_what_each_source_lists():
    pairs = study.domain_vs_affwild2().set_index(["expression_name", "au"])
    assert pairs.loc[("Happiness", 12), "status"] == "both"
    assert pairs.loc[("Happiness", 7), "status"] == "affwild2 only"
    assert pairs.loc[("Sadness", 6), "status"] == "domain only"
    assert pairs.loc[("Disgust", 9), "status"] == "domain only (not annotated)"
    # AU7: the domain table relates it to Anger only, Aff-Wild2 to all six expressions
    au7 = pairs.xs(7, level="au")
    assert au7["affwild2_rate"].notna().sum() == 6
    assert au7.index[au7["domain"] != ""].tolist() == ["Anger"]
    assert len(pairs) == 41  # 32 domain + 28 Aff-Wild2 rows, 19 pairs in both


def test_domain_sentences_name_au7_and_the_unannotated_au5():
    text = " ".join(report.domain_sentences(study.domain_vs_affwild2()))
    assert "AU7: Aff-Wild2 lists it for 6 of 6 expressions, the domain table for 1" in text
    assert "lists AU5 for Surprise (0.5), although AU5 is not among" in text
    assert "AU5, AU9, AU11, AU17, AU20 of the domain table are not among" in text


def test_sentences_report_the_summary_numbers():
    summary = pd.DataFrame(
        [
            {"estimate": "a", "cells": 4, "cells_well_supported": 2, "mae": 0.05, "bias": -0.01,
             "coverage": 0.5, "mae_well_supported": 0.04, "bias_well_supported": 0.0,
             "coverage_well_supported": 0.75},
            {"estimate": "b", "cells": 0, "cells_well_supported": 0, "mae": np.nan,
             "bias": np.nan, "coverage": np.nan, "mae_well_supported": np.nan,
             "bias_well_supported": np.nan, "coverage_well_supported": np.nan},
        ]
    )  # fmt: skip
    first, second = report.recovery_sentences(summary)
    assert "mean |error| 0.050" in first and "hold the truth in 75%" in first
    assert second == "b: no cell could be estimated."


def test_true_labels_recover_the_generators_truth_on_the_cpu_profile():
    # what notebook 02 claims: from the true labels of the training split, the well-supported
    # cells' intervals hold the truth at about their nominal rate; from the annotated labels the
    # noise pulls the rates off and coverage drops well below it
    story = generate_story(profiles.get("cpu"))
    train = story.affwild[story.affwild["split"] == "train"]
    summary = study.recovery_summary(
        {
            name: study.recovery(rel.empirical(t, au_columns=list(AU_COLUMNS), seed=0), story.p_au)
            for name, t in (("annotated", train), ("true", study.true_label_table(train)))
        }
    ).set_index("estimate")
    true, annotated = summary.loc["true"], summary.loc["annotated"]
    assert true["cells"] == N_EXPR * len(ABAW_AUS)
    assert true["cells_well_supported"] >= 40
    assert true["coverage_well_supported"] >= 0.85
    assert true["mae_well_supported"] < 0.06
    assert annotated["coverage_well_supported"] < true["coverage_well_supported"] - 0.15
    assert annotated["mae_well_supported"] > true["mae_well_supported"]


# --- figures ------------------------------------------------------------------------------------


def test_figures_draw_one_panel_per_estimate():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    truth = pd.DataFrame({"AU1": [0.35], "AU2": [0.8], "AU4": [0.1]}, index=["Happiness"])
    rec = study.recovery(hand_estimate(), truth, min_each=20)
    estimates = {"a": rec, "b": rec}
    figures = [
        (report.plot_estimate(rec, "estimate"), 1),
        (report.plot_recovery(estimates, truth), 3),
        (report.plot_estimate_vs_truth(estimates), 2),
        (report.plot_domain_vs_affwild2(study.domain_vs_affwild2()), 1),
    ]
    curve = study.convergence(video_table(), truth, [0.5, 1.0], 2).assign(label="x")
    figures.append((report.plot_convergence(curve, n_cells=2), 2))
    for fig, panels in figures:
        # colour bars are axes too: count the panels that hold an image or a line
        panels_drawn = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
        drawn = [ax for ax in panels_drawn if ax.images or ax.lines or ax.collections]
        assert len(drawn) == panels
        plt.close(fig)


def test_recovery_inputs_name_what_is_missing():
    truth = pd.DataFrame({"AU1": [0.35]}, index=["Happiness"])
    with pytest.raises(KeyError, match="estimate has no column 'n_both'"):
        study.recovery(hand_estimate().drop(columns="n_both"), truth)
    with pytest.raises(KeyError, match="truth table lacks columns \\['true_AU2'\\]"):
        study.annotation_noise(
            pd.DataFrame({"expr": [1], "true_expr": [1], "AU1": [0], "true_AU1": [0], "AU2": [1]})
        )


def test_heat_map_text_is_dark_on_light_cells_white_on_dark_ones_and_grey_where_dimmed():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.colors as mc

    m = pd.DataFrame([[0.0, 1.0], [0.0, 1.0]], index=["a", "b"], columns=["AU1", "AU2"])
    text = m.map(lambda v: f"{v:.2f}")
    dim = pd.DataFrame([[False, False], [True, True]], index=m.index, columns=m.columns)
    fig = report.plot_matrix(m, "t", text=text, dim=dim)
    colour = {(int(t.get_position()[1]), int(t.get_position()[0])): t for t in fig.axes[0].texts}
    grey = [sum(mc.to_rgb(colour[c].get_color())) / 3 for c in sorted(colour)]
    assert grey[0] < 0.3 and grey[1] == 1.0  # light cell (0): dark text; dark cell (1): white
    assert 0.3 < grey[2] < 0.5 and 0.7 < grey[3] < 1.0  # dimmed: grey, still against the cell
    assert colour[(1, 0)].get_style() == "italic" and colour[(0, 0)].get_style() == "normal"
    assert all(t.get_fontsize() >= 8 for t in colour.values())
