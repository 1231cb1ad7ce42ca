"""Notebook 02's report: the conclusions of :mod:`affectlib.studies.task_relatedness` worded from
its numbers (``*_sentences``) and its figures (``plot_*``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from affectlib.relatedness import (
    to_matrix,
)
from affectlib.studies.task_relatedness import (
    WELL_SUPPORTED_MIN,
    _mean,
)

# --- conclusions, computed -----------------------------------------------------------------------


def recovery_sentences(summary: pd.DataFrame, min_each: int = WELL_SUPPORTED_MIN) -> list[str]:
    """One sentence per row of :func:`recovery_summary`, numbers filled in from it."""
    out = []
    for row in summary.itertuples(index=False):
        if row.cells == 0:
            out.append(f"{row.estimate}: no cell could be estimated.")
            continue
        text = (
            f"{row.estimate}: {row.cells} cells estimated, mean |error| {row.mae:.3f}, "
            f"mean signed error {row.bias:+.3f}; "
        )
        if row.cells_well_supported == 0:
            text += f"no cell has {min_each} images on each side, so no interval is trusted."
        else:
            text += (
                f"of the {row.cells_well_supported} well-supported cells, the intervals hold the "
                f"truth in {row.coverage_well_supported:.0%} (mean |error| "
                f"{row.mae_well_supported:.3f})."
            )
        out.append(text)
    return out


def bias_sentence(rec: pd.DataFrame, name: str, low: float = 0.1, high: float = 0.5) -> str:
    """Mean signed error of an estimate (:func:`recovery`) on rare cells (truth below ``low``) and
    on frequent ones (truth at least ``high``), where label noise pushes in opposite directions."""
    cells = rec[rec["n_expr"] > 0]
    rare = cells.loc[cells["truth"] < low, "error"]
    frequent = cells.loc[cells["truth"] >= high, "error"]
    return (
        f"{name}: mean signed error {_mean(rare):+.3f} on the {len(rare)} cells with truth below "
        f"{low:g}, {_mean(frequent):+.3f} on the {len(frequent)} cells with truth {high:g} or more."
    )


def noise_sentence(noise: pd.DataFrame) -> str:
    """The measured annotation noise of :func:`annotation_noise`, as one sentence."""
    expr = noise[noise["label"] == "expr"].iloc[0]
    aus = noise[noise["label"] != "expr"]
    return (
        f"Annotation noise measured against the truth: {expr['disagree']:.1%} of expression labels "
        f"name another class; annotators missed {_mean(aus['missed']):.1%} of true AU activations "
        f"and marked {_mean(aus['false_active']):.1%} of inactive AUs active (means over AUs)."
    )


def domain_sentences(pairs: pd.DataFrame) -> list[str]:
    """How the paper's Aff-Wild2 column differs from the domain table (:func:`domain_vs_affwild2`).

    One sentence per AU that Aff-Wild2 adds to some expression, one naming the domain AUs Aff-Wild2
    does not annotate, one listing annotated AUs the domain table relates but Aff-Wild2 does not.
    """
    n_expr = pairs["expression"].nunique()
    in_aw2 = pairs["affwild2_rate"].notna()
    in_dom = pairs["domain"] != ""
    out = []
    for au, added in pairs[pairs["status"] == "affwild2 only"].groupby("au"):
        of_au = pairs["au"] == au
        out.append(
            f"AU{au}: Aff-Wild2 lists it for {int((of_au & in_aw2).sum())} of {n_expr} "
            "expressions, "
            f"the domain table for {int((of_au & in_dom).sum())} "
            f"(added by Aff-Wild2: {', '.join(added['expression_name'])})."
        )
    absent = pairs[pairs["status"] == "domain only (not annotated)"]
    if len(absent):
        aus = ", ".join(f"AU{a}" for a in sorted(absent["au"].unique()))
        out.append(
            f"{aus} of the domain table are not among Aff-Wild2's annotated AUs, so its column "
            "cannot list them."
        )
    unannotated = pairs[pairs["affwild2_rate"].notna() & ~pairs["au_annotated"]]
    for row in unannotated.itertuples(index=False):
        out.append(
            f"The paper's Aff-Wild2 column lists AU{row.au} for {row.expression_name} "
            f"({row.affwild2_rate:g}), although AU{row.au} is not among Aff-Wild2's annotated AUs."
        )
    dropped = pairs[pairs["status"] == "domain only"]
    if len(dropped):
        listed = "; ".join(
            f"{e}: {', '.join(f'AU{a}' for a in g['au'])}"
            for e, g in dropped.groupby("expression_name", sort=False)
        )
        out.append(
            "Annotated in Aff-Wild2, related by the domain table, absent from its column: "
            f"{listed}."
        )
    return out


def convergence_sentences(curve: pd.DataFrame) -> list[str]:
    """One sentence per ``label`` of a :func:`convergence` curve: the mean error at its smallest and
    largest size, and how much it fell over the last doubling of images (a small fall means the
    error has levelled off: more data of that kind will not bring the estimate closer)."""
    out = []
    for name, part in curve.groupby("label", sort=False):
        agg = part.groupby("fraction").agg(images=("images", "mean"), mae=("mae", "mean"))
        first, last = agg.iloc[0], agg.iloc[-1]
        half = agg.iloc[int(np.argmin(np.abs(agg["images"].to_numpy() - last["images"] / 2)))]
        text = (
            f"{name}: mean |error| {first['mae']:.3f} with {first['images']:.0f} images, "
            f"{last['mae']:.3f} with {last['images']:.0f}"
        )
        if half["images"] < last["images"] and half["mae"] > 0:
            change = last["mae"] / half["mae"] - 1
            text += (
                f"; from {half['images']:.0f} to {last['images']:.0f} images it "
                f"{'fell' if change <= 0 else 'rose'} by {abs(change):.0%}"
            )
        out.append(text + ".")
    return out


# --- figures -------------------------------------------------------------------------------------


def plot_matrix(
    matrix: pd.DataFrame,
    title: str,
    *,
    text: pd.DataFrame | None = None,
    cmap: str = "YlGnBu",
    vmin: float = 0.0,
    vmax: float = 1.0,
    label: str = "",
    dim: pd.DataFrame | None = None,
    ax=None,
):
    """A classes x attributes heat map; ``text`` (same shape) is written in the cells, dark on a
    light cell and white on a dark one (seaborn's choice by the cell's luminance), grey and italic
    where ``dim`` is True; NaN cells stay blank. Returns the figure."""
    import matplotlib.pyplot as plt  # deferred: a heavy import that only the figures need
    import seaborn as sns  # deferred, as above

    if ax is None:
        # cells large enough for their text at 8 pt (an estimate and its interval: two lines)
        lines = [str(s).split("\n") for s in text.to_numpy().ravel()] if text is not None else []
        chars = max((len(x) for ls in lines for x in ls), default=0)
        rows = max((len(ls) for ls in lines), default=1)
        cell_w, cell_h = max(0.5, 0.075 * chars + 0.2), 0.2 + 0.2 * rows
        fig, ax = plt.subplots(
            figsize=(cell_w * matrix.shape[1] + 2.4, cell_h * matrix.shape[0] + 1.2)
        )
    fig = ax.figure
    values = matrix.astype(float)
    words = np.full(values.shape, "", dtype=object) if text is None else text.fillna("")
    sns.heatmap(
        values,
        mask=values.isna(),
        annot=np.asarray(words, dtype=str),
        fmt="",
        annot_kws={"fontsize": 8},
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        linewidths=0.5,
        linecolor="white",
        cbar_kws={"label": label, "fraction": 0.04},
        ax=ax,
    )
    ax.set_xticks(
        np.arange(matrix.shape[1]) + 0.5, [str(c) for c in matrix.columns], fontsize=8, rotation=0
    )
    ax.set_yticks(
        np.arange(matrix.shape[0]) + 0.5, [str(r) for r in matrix.index], fontsize=8, rotation=0
    )
    ax.set(xlabel="", ylabel="")
    ax.set_title(title, fontsize=9)
    if dim is not None:
        faint = dim.to_numpy(dtype=bool)
        for t in ax.texts:
            x, y = t.get_position()
            if faint[int(y), int(x)]:
                # still legible against the cell, but set apart from the supported ones
                light_cell = t.get_color() != "w"
                t.set(color="0.35" if light_cell else "0.85", style="italic")
    return fig


def plot_estimate(long: pd.DataFrame, title: str, ax=None):
    """:func:`empirical`'s rates as a heat map, each cell with ``p`` and its interval; cells that
    are not well supported (:func:`recovery`, else ``supported``) are grey and italic."""
    p, lo, hi = (to_matrix(long, v).rename(columns=lambda a: f"AU{a}") for v in ("p", "lo", "hi"))
    text = pd.DataFrame(
        np.vectorize(_interval_text)(p.to_numpy(), lo.to_numpy(), hi.to_numpy()),
        index=p.index,
        columns=p.columns,
    )
    trusted = "well_supported" if "well_supported" in long.columns else "supported"
    dim = ~to_matrix(long, trusted).astype(bool)
    return plot_matrix(p, title, text=text, dim=dim, label="p(AU | expression)", ax=ax)


def plot_recovery(estimates: dict[str, pd.DataFrame], truth: pd.DataFrame):
    """The truth beside the error of each estimate (outputs of :func:`recovery`).

    Error cells read ``p - truth``; ``*`` marks an interval that misses the truth; cells that are
    not well supported are grey and italic.
    """
    import matplotlib.pyplot as plt  # deferred: a heavy import that only the figures need

    first = next(iter(estimates.values()))
    shown = truth.reindex(
        index=first["expression_name"].unique(), columns=[f"AU{a}" for a in first["au"].unique()]
    )
    n = len(estimates) + 1
    n_cols = min(n, 2)
    n_rows = -(-n // n_cols)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(7.0 * n_cols, (0.42 * len(shown) + 1.6) * n_rows), squeeze=False
    )
    axes = axes.ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    plot_matrix(
        shown, "generator's truth", text=shown.map(lambda v: f"{v:.2f}"), ax=axes[0], label="p"
    )
    limit = max(
        0.05, max(float(np.nanmax(np.abs(r["error"]), initial=0)) for r in estimates.values())
    )
    for ax, (name, rec) in zip(axes[1:n], estimates.items(), strict=True):
        err = to_matrix(rec, "error").rename(columns=lambda a: f"AU{a}")
        missed = ~to_matrix(rec, "covered").astype(bool)
        text = pd.DataFrame(
            np.vectorize(_error_text)(err.to_numpy(), missed.to_numpy()),
            index=err.index,
            columns=err.columns,
        )
        dim = ~to_matrix(rec, "well_supported").astype(bool)
        plot_matrix(
            err,
            f"error: {name}",
            text=text,
            dim=dim,
            cmap="RdBu_r",
            vmin=-limit,
            vmax=limit,
            label="p - truth",
            ax=ax,
        )
    fig.tight_layout()
    return fig


def plot_estimate_vs_truth(estimates: dict[str, pd.DataFrame]):
    """Estimated rate against the truth with its interval, one panel per estimate; filled markers
    are well-supported cells, hollow ones the rest."""
    import matplotlib.pyplot as plt  # deferred: a heavy import that only the figures need

    fig, axes = plt.subplots(1, len(estimates), figsize=(3.6 * len(estimates), 3.6), sharey=True)
    for ax, (name, rec) in zip(np.atleast_1d(axes), estimates.items(), strict=True):
        rec = rec[rec["n_expr"] > 0]
        for good, face in ((True, "C0"), (False, "none")):
            part = rec[rec["well_supported"] == good]
            yerr = np.vstack([part["p"] - part["lo"], part["hi"] - part["p"]])
            ax.errorbar(
                part["truth"],
                part["p"],
                yerr=yerr,
                fmt="o",
                ms=3.5,
                mfc=face,
                mec="C0",
                ecolor="C0",
                elinewidth=0.6,
                alpha=0.8 if good else 0.45,
                label="well supported" if good else "less support",
            )
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        ax.set_xlim(0, 1), ax.set_ylim(0, 1)
        ax.set_xlabel("truth p(AU | expression)")
        ax.set_title(name, fontsize=9)
    np.atleast_1d(axes)[0].set_ylabel("estimate (95% interval)")
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def plot_domain_vs_affwild2(pairs: pd.DataFrame):
    """Kollias Table 1's two sources pair by pair (:func:`domain_vs_affwild2`): colour = status;
    text = the domain kind (P prototypical, O observational) and the Aff-Wild2 rate."""
    import matplotlib.pyplot as plt  # deferred: a heavy import that only the figures need
    from matplotlib.colors import ListedColormap  # deferred, as above

    statuses = ["both", "affwild2 only", "domain only", "domain only (not annotated)"]
    colours = ["#4c9a6a", "#d98c2b", "#5b7fbf", "#b9c3d6"]
    code = pairs.assign(code=pairs["status"].map(statuses.index))
    values = code.pivot(index="expression_name", columns="au", values="code")
    values = values.loc[pairs["expression_name"].unique()]
    kind = {"prototypical": "P", "observational": "O", "": ""}
    code["text"] = [
        " ".join(s for s in (kind[k], "" if np.isnan(r) else f"{r:.2f}") if s)
        for k, r in zip(code["domain"], code["affwild2_rate"], strict=True)
    ]
    text = code.pivot(index="expression_name", columns="au", values="text").loc[values.index]
    fig, ax = plt.subplots(figsize=(0.8 * values.shape[1] + 2.0, 0.45 * values.shape[0] + 1.4))
    ax.imshow(
        np.ma.masked_invalid(values.to_numpy(dtype=float)),
        cmap=ListedColormap(colours),
        vmin=-0.5,
        vmax=len(statuses) - 0.5,
        aspect="auto",
    )
    for (i, j), s in np.ndenumerate(text.fillna("").to_numpy()):
        ax.text(j, i, s, ha="center", va="center", fontsize=8)
    ax.set_xticks(range(values.shape[1]), [f"AU{a}" for a in values.columns], fontsize=8)
    ax.set_yticks(range(values.shape[0]), values.index, fontsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours]
    ax.legend(
        handles, statuses, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=4
    )
    ax.set_title(
        "Kollias Table 1: domain knowledge (P/O) vs the paper's Aff-Wild2 rates", fontsize=9
    )
    return fig


def plot_convergence(curve: pd.DataFrame, n_cells: int):
    """Mean |error| against counted images (mean and s.d. over repeats, log axis), and the share of
    the ``n_cells`` cells that are well supported; one line per ``label`` of ``curve``."""
    import matplotlib.pyplot as plt  # deferred: a heavy import that only the figures need

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, (name, part) in enumerate(curve.groupby("label", sort=False)):
        agg = part.groupby("fraction").agg(
            images=("images", "mean"),
            mae=("mae", "mean"),
            sd=("mae", "std"),
            good=("cells_well_supported", "mean"),
        )
        style = {"color": f"C{i}", "marker": "o", "ms": 3.5, "label": name}
        left.errorbar(agg["images"], agg["mae"], yerr=agg["sd"].fillna(0), capsize=2, **style)
        right.plot(agg["images"], agg["good"] / n_cells, **style)
    left.set_ylabel("mean |p - truth| over estimated cells")
    right.set_ylabel("share of cells well supported")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("labelled images (expression and AUs)")
        ax.grid(alpha=0.3)
    left.set_ylim(bottom=0)
    right.set_ylim(0, 1.02)
    left.legend(fontsize=7)
    fig.suptitle("Convergence of the empirical table as videos are added", fontsize=10)
    fig.tight_layout()
    return fig


def _interval_text(p: float, lo: float, hi: float) -> str:
    return "" if np.isnan(p) else f"{p:.2f}\n[{lo:.2f},{hi:.2f}]"


def _error_text(error: float, missed: bool) -> str:
    return "" if np.isnan(error) else f"{error:+.2f}" + ("*" if missed else "")
