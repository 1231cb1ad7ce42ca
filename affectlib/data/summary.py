"""Descriptive tables and figures of an annotation table (notebook 01, the data audit).

Every function takes the standard annotation table (ABAW markers kept: expression -1, AU -1, VA -5)
and returns a DataFrame or a matplotlib figure; nothing here changes the data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import labels as L
from ..files import paper_table
from .table import au_columns_of, au_number

TASKS = ("expr", "au", "va")


def au_columns(table: pd.DataFrame) -> list[str]:
    return list(au_columns_of(table))


def task_valid(table: pd.DataFrame) -> pd.DataFrame:
    """Boolean columns ``expr``, ``au``, ``va``: does the row carry that task's label?

    An AU label counts as present when every AU column is present (the co-missingness rule makes
    'some but not all' a rejected row, so it cannot reach here from a validated file)."""
    aus = au_columns(table)
    return pd.DataFrame(
        {
            "expr": table["expr"].to_numpy() != L.EXPR_MISSING,
            "au": (table[aus].to_numpy() != L.AU_MISSING).all(axis=1)
            if aus
            else np.zeros(len(table), bool),
            "va": (table["valence"].to_numpy() != L.VA_MISSING)
            & (table["arousal"].to_numpy() != L.VA_MISSING),
        },
        index=table.index,
    )


def _paper_counts() -> dict[str, float]:
    ref = paper_table("ssmfar_dataset_stats").set_index("quantity")["value"]
    return {
        "images": float(ref["train images"]),
        "va": float(ref["train images with invalid valence-arousal (-5)"]),
        "au": float(ref["train images with invalid action units (-1)"]),
        "expr": float(ref["train images with invalid expression (-1)"]),
    }


def task_counts(table: pd.DataFrame, split: str = "train") -> pd.DataFrame:
    """Valid / invalid images per task in ``split`` beside SS-MFAR §3.1's s-Aff-Wild2 training counts.

    Sizes differ, so the comparison is by rate: ``invalid rate`` (ours) against ``paper: invalid rate``.
    """
    part = table[table["split"] == split]
    valid = task_valid(part)
    paper = _paper_counts()
    rows = []
    for task in TASKS:
        n_invalid = int((~valid[task]).sum())
        rate = n_invalid / len(part) if len(part) else np.nan
        paper_rate = paper[task] / paper["images"]
        rows.append(
            {
                "task": task,
                "images": len(part),
                "valid": len(part) - n_invalid,
                "invalid": n_invalid,
                "invalid rate": rate,
                "paper: images": int(paper["images"]),
                "paper: invalid": int(paper[task]),
                "paper: invalid rate": paper_rate,
                "delta: invalid rate": rate - paper_rate,
            }
        )
    return pd.DataFrame(rows)


def comissingness(table: pd.DataFrame, errors=()) -> pd.DataFrame:
    """The two co-missingness rules of SS-MFAR §3.1, as counts of rows that break them.

    1. valence invalid <=> arousal invalid; 2. one AU invalid => all AUs invalid. The loaders reject
    a row that breaks either rule, so the breaches are counted among the rejected rows (``errors``,
    by their reasons) as well as in the accepted ``table`` (which a hand-made table may not honour)."""
    v = table["valence"].to_numpy() == L.VA_MISSING
    a = table["arousal"].to_numpy() == L.VA_MISSING
    aus = table[au_columns(table)].to_numpy() == L.AU_MISSING
    partial = aus.any(axis=1) & ~aus.all(axis=1) if aus.size else np.zeros(len(table), bool)
    va_rejected = sum("both or neither" in e.reason for e in errors)
    au_rejected = sum("all or none" in e.reason for e in errors)
    rows = []
    for rule, in_table, rejected in (
        ("valence invalid iff arousal invalid", int((v != a).sum()), va_rejected),
        ("one AU invalid => all AUs invalid", int(partial.sum()), au_rejected),
    ):
        rows.append(
            {
                "rule": rule,
                "rows checked": len(table) + len(errors),
                "breaches among rejected rows": rejected,
                "breaches among accepted rows": in_table,
                "holds": rejected + in_table == 0,
            }
        )
    return pd.DataFrame(rows)


def label_patterns(table: pd.DataFrame) -> pd.DataFrame:
    """How many images carry each combination of task labels (co-missingness across tasks)."""
    valid = task_valid(table)
    key = valid.apply(
        lambda r: "+".join(t for t in TASKS if r[t]) or "none", axis=1, result_type="reduce"
    )
    out = key.groupby([table["split"], key]).size().rename("images").reset_index()
    out.columns = ["split", "labelled tasks", "images"]
    out["share"] = out["images"] / out.groupby("split")["images"].transform("sum")
    return out.sort_values(["split", "images"], ascending=[True, False], ignore_index=True)


def expr_distribution(table: pd.DataFrame) -> pd.DataFrame:
    """Images per expression class and split, with the share among labelled images."""
    lab = table[table["expr"] != L.EXPR_MISSING]
    counts = pd.crosstab(lab["expr"], lab["split"]).reindex(range(L.N_EXPR), fill_value=0)
    out = pd.DataFrame({"expression": list(L.EXPRESSIONS)})
    for s in counts.columns:
        out[f"{s} images"] = counts[s].to_numpy()
        out[f"{s} share"] = counts[s].to_numpy() / max(counts[s].sum(), 1)
    return out


def au_base_rates(table: pd.DataFrame) -> pd.DataFrame:
    """Per AU and split: labelled images and the share of them where the AU is active."""
    rows = []
    for s, part in table.groupby("split", sort=True):
        for c in au_columns(part):
            x = part[c].to_numpy()
            n = int((x != L.AU_MISSING).sum())
            rows.append(
                {
                    "AU": c,
                    "split": s,
                    "labelled": n,
                    "active": int((x == 1).sum()),
                    "base rate": (x == 1).sum() / n if n else np.nan,
                }
            )
    return pd.DataFrame(rows)


def by_au_number(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its AU-named rows (index ``AU1``, ``AU10``, ...) in numeric AU order, AU1,
    AU2, AU4, ..., AU10, instead of the alphabetical order a pivot sorts them in."""
    return frame.loc[sorted(frame.index, key=au_number)]


def base_rate_matrix(rates: pd.DataFrame) -> pd.DataFrame:
    """:func:`au_base_rates` as AUs (rows, numeric order) x splits (columns) of base rates."""
    return by_au_number(rates.pivot(index="AU", columns="split", values="base rate"))


def missing_per_video(table: pd.DataFrame) -> pd.DataFrame:
    """Per video: frames and the share of frames without each task's label."""
    valid = task_valid(table)
    g = (~valid).groupby(table["video"])
    out = g.mean().add_prefix("missing ")
    out.insert(0, "frames", g.size())
    out.insert(0, "split", table.groupby("video")["split"].first())
    return out.reset_index()


# each video's share of frames missing a task's label, in bins a reader can name
MISSING_BINS = ("none", "1-25%", "26-50%", "51-75%", "76-99%", "all")


def missing_bins(per_video: pd.DataFrame) -> pd.DataFrame:
    """Per task and bin of :data:`MISSING_BINS`: how many videos of :func:`missing_per_video` miss
    that share of their frames' labels (``none`` = every frame labelled, ``all`` = no frame is),
    in long form: ``task``, ``missing``, ``videos``."""
    rows = []
    for c in [c for c in per_video.columns if c.startswith("missing ")]:
        share = per_video[c].to_numpy(float)
        # the bins' edges in whole percent, with 0 and 1 kept apart from the partly missing
        pct = np.ceil(np.round(share * 100, 6))
        bins = np.select(
            [share == 0, share == 1, pct <= 25, pct <= 50, pct <= 75],
            [0, 5, 1, 2, 3],
            default=4,
        )
        counts = np.bincount(bins, minlength=len(MISSING_BINS))
        rows += [
            {"task": c.removeprefix("missing "), "missing": b, "videos": int(k)}
            for b, k in zip(MISSING_BINS, counts, strict=True)
        ]
    return pd.DataFrame(rows, columns=["task", "missing", "videos"])


def rejected_rows(errors) -> pd.DataFrame:
    """The rejected rows as a table: file, line, field, reason (empty table when none)."""
    return pd.DataFrame(
        [{"file": e.file, "line": e.line, "field": e.field, "reason": e.reason} for e in errors],
        columns=["file", "line", "field", "reason"],
    )


# --- figures -------------------------------------------------------------------------------------
def plot_expr_distribution(dist: pd.DataFrame):
    import matplotlib.pyplot as plt  # deferred: a heavy import that only the figures need

    shares = [c for c in dist.columns if c.endswith("share")]
    fig, ax = plt.subplots(figsize=(7, 3))
    x = np.arange(len(dist))
    w = 0.8 / max(len(shares), 1)
    for i, c in enumerate(shares):
        ax.bar(x + i * w, dist[c], width=w, label=c.replace(" share", ""))
    ax.set_xticks(x + w * (len(shares) - 1) / 2, dist["expression"], rotation=30)
    ax.set_ylabel("share of labelled images")
    ax.legend()
    ax.set_title("Expression classes")
    return fig


def plot_au_base_rates(rates: pd.DataFrame):
    """Base rate of each AU per split, AUs in numeric order."""
    import matplotlib.pyplot as plt  # deferred: a heavy import that only the figures need

    piv = base_rate_matrix(rates)
    fig, ax = plt.subplots(figsize=(7, 3))
    piv.plot.bar(ax=ax, rot=0)
    ax.set_ylabel("share active")
    ax.set_title("AU base rates among labelled images")
    ax.legend(title="split", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    return fig


def plot_va_histogram(table: pd.DataFrame, bins: int = 40):
    import matplotlib.pyplot as plt  # deferred: a heavy import that only the figures need

    ok = task_valid(table)["va"].to_numpy()
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    h = ax.hist2d(
        table.loc[ok, "valence"], table.loc[ok, "arousal"], bins=bins, range=[[-1, 1], [-1, 1]]
    )
    fig.colorbar(h[3], ax=ax, label="images")
    ax.set_xlabel("valence")
    ax.set_ylabel("arousal")
    ax.set_title(f"Valence-arousal ({ok.sum()} labelled images)")
    return fig


def plot_missing_per_video(per_video: pd.DataFrame):
    """Videos counted by the share of their frames missing each task's label (:func:`missing_bins`):
    the bars at ``none`` and ``all`` are the videos labelled throughout and not at all."""
    import matplotlib.pyplot as plt  # deferred: a heavy import that only the figures need
    import seaborn as sns  # deferred, as above

    bins = missing_bins(per_video)
    fig, ax = plt.subplots(figsize=(7, 3))
    sns.barplot(bins, x="missing", y="videos", hue="task", order=MISSING_BINS, ax=ax)
    ax.set_xlabel("share of the video's frames without the task's label")
    ax.set_ylabel("videos")
    ax.set_title(f"Missing labels per video ({len(per_video)} videos)")
    ax.legend(title="task", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    return fig
