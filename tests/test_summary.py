"""affectlib.data.summary: the audit's tables and figures."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from affectlib.data import summary  # noqa: E402


def test_base_rates_list_aus_in_numeric_order_not_alphabetical():
    aus = ["AU1", "AU10", "AU12", "AU2", "AU25", "AU4"]
    rates = pd.DataFrame(
        [{"AU": a, "split": s, "base rate": 0.1} for s in ("train", "test") for a in aus]
    )
    assert list(summary.base_rate_matrix(rates).index) == [
        "AU1", "AU2", "AU4", "AU10", "AU12", "AU25",
    ]  # fmt: skip
    fig = summary.plot_au_base_rates(rates)
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks == ["AU1", "AU2", "AU4", "AU10", "AU12", "AU25"]
    plt.close(fig)


def test_missing_bins_keep_fully_labelled_and_never_labelled_videos_apart():
    per_video = pd.DataFrame(
        {
            "video": list("abcdefg"),
            "missing expr": [0.0, 0.01, 0.25, 0.26, 0.75, 0.99, 1.0],
            "missing va": [0.0] * 7,
        }
    )
    bins = summary.missing_bins(per_video).set_index(["task", "missing"])["videos"]
    assert bins["expr"].to_dict() == {
        "none": 1, "1-25%": 2, "26-50%": 1, "51-75%": 1, "76-99%": 1, "all": 1,
    }  # fmt: skip
    assert bins["va"].to_dict() == dict.fromkeys(summary.MISSING_BINS, 0) | {"none": 7}
    assert bins.groupby("task").sum().eq(len(per_video)).all()


def test_missing_per_video_figure_has_one_bar_group_per_bin():
    per_video = pd.DataFrame(
        {"video": ["a", "b"], "missing expr": [0.0, 1.0], "missing au": [0.5, 0.5]}
    )
    fig = summary.plot_missing_per_video(per_video)
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks == list(summary.MISSING_BINS)
    plt.close(fig)
