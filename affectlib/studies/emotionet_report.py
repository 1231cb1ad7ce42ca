"""Tables, figures and computed statements of notebook 06 (Wang et al. 2020, TAL EmotioNet:
Tables 1 and 3, Figure 2, and the held-out check no paper reports), from
:func:`affectlib.studies.emotionet.selection_scores`'s rows.

Our numbers are means over seeds with a 95% Student-t interval (:func:`affectlib.stats.mean_ci`),
as fractions like the paper's, written ``mean [lo, hi]``; comparisons pair runs by seed
(:func:`affectlib.stats.paired_difference`). The paper's numbers (``paper:`` columns) are its
networks on the real EmotioNet images; they are there for the shape of the result, never as ours.

Each comparison is judged by :func:`affectlib.stats.verdict`: "untestable: at the floor" when
either side's interval reaches the label-blind floor of the final score
(:func:`affectlib.studies.emotionet.floors`: the best of predicting nothing, everything, or at
random with each AU's prevalence), "A higher" / "B higher" when the paired interval excludes 0,
"no clear difference" when it spans 0; a paper claim is then judged by
:func:`affectlib.stats.claim_verdict`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from affectlib import stats
from affectlib.files import paper_table
from affectlib.studies import au_selection
from affectlib.studies.emotionet import ARMS, BASELINE, RunPredictions
from affectlib.studies.emotionet import floors as emotionet_floors

METRICS = ("f1", "accuracy", "final")
PAPER_GROUP = {"facial": "17AU", "pose": "6AU"}
# our strategy for each row of the paper's Table 1; rows mapped to None are not reproduced
TABLE1_ROWS: dict[str, dict[str, str | None]] = {
    "17AU": {
        "Baseline": "baseline",
        "Ensemble": None,
        "Ensemble-multicrop": None,
        "Ensemble-multicrop-pretrained": None,
        "Ensemble-multicrop-pretrained-chosen": "chosen",
        "Ensemble-multicrop-pretrained-chosen-threshold": "chosen-threshold",
    },
    "6AU": {
        "Baseline": "baseline",
        "Ensemble": None,
        "Ensemble-chosen": "chosen",
        "Ensemble-chosen-threshold": "chosen-threshold",
    },
}
NOT_REPRODUCED = {
    "ensemble": "one multi-view network per group, no ensemble of backbones",
    "multicrop": "no multi-crop inference",
    "pretrained": "no dataset-C pretraining (no noisy automatically annotated set)",
}
TABLE3_PAPER = {
    BASELINE: "baseline (all)",
    "without multi-view loss": "without multi-view loss",
    "without co-regularization loss": "without co-regularization loss",
    "without batch balancing": "without batch balancing",
}


def summarise(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean and interval over seeds of f1, accuracy, final and kept checkpoints per (group, arm,
    strategy, split)."""
    return stats.summarize_runs(scores, ["group", "arm", "strategy", "split"], [*METRICS, "kept"])


def _cell(summary: pd.DataFrame, metric: str, **key) -> tuple[float, float, float]:
    sel = summary
    for k, v in key.items():
        sel = sel[sel[k] == v]
    if sel.empty:
        return (np.nan, np.nan, np.nan)
    r = sel.iloc[0]
    return r[metric], r[f"{metric} lo"], r[f"{metric} hi"]


def _ci(summary: pd.DataFrame, metric: str, **key) -> str:
    return stats.format_ci(*_cell(summary, metric, **key), digits=4)


def paired_gain(
    scores: pd.DataFrame, group: str, arm: str, a: str, b: str, split: str, metric: str = "final"
) -> dict:
    """Strategy ``a`` minus strategy ``b`` of one (group, arm) on ``split``, paired by seed."""
    g = scores[(scores["group"] == group) & (scores["arm"] == arm) & (scores["split"] == split)]
    return stats.paired_difference(g, a, b, metric, method_col="strategy")


def _at_floor(summary: pd.DataFrame, floors: pd.DataFrame, group: str, split: str, keys) -> bool:
    floor = floors[(floors["group"] == group) & (floors["split"] == split)]["floor"].iloc[0]
    return any(
        stats.reaches_floor(_cell(summary, "final", group=group, split=split, **k)[1], floor)
        for k in keys
    )


def _judged(d: dict, at_floor: bool) -> str:
    return stats.verdict(d["diff lo"], d["diff hi"], d["seeds"], at_floor=at_floor)


def _diff(d: dict) -> str:
    return stats.format_ci(d["diff"], d["diff lo"], d["diff hi"], digits=4)


# the label-blind predictors of :func:`affectlib.studies.emotionet.floors`, as rows of Tables 1 and 3
FLOOR_ROWS = {
    "nothing": "predict no AU",
    "everything": "predict every AU",
    "chance": "each AU at random, at its prevalence",
}


def _floor_rows(floors: pd.DataFrame, group: str, key: str, label: str | None) -> list[dict]:
    """One row per :data:`FLOOR_ROWS` predictor: its mean F1, accuracy and final score on B and
    on test (``floors``: :func:`affectlib.studies.emotionet.floor_table`), one value each and no
    interval; ``key`` (and ``label`` when given) name the row in the table's first columns."""
    f = floors[floors["group"] == group].set_index("split")
    rows = []
    for name, words in FLOOR_ROWS.items():
        rec = (
            {key: f"label-blind: {words}"} if label is None else {key: "label-blind", label: words}
        )
        for split in ("B", "test"):
            if split not in f.index:
                continue
            values = {"f1": f"{name}_f1", "accuracy": f"{name}_accuracy", "final": name}
            for m, col in values.items():
                rec[f"{split}: {m}"] = stats.format_ci(f.at[split, col], np.nan, np.nan, digits=4)
        rows.append(rec)
    return rows


# --- Table 1 ----------------------------------------------------------------------------------------
def table1(
    scores: pd.DataFrame, floors: pd.DataFrame, group: str, arm: str = BASELINE
) -> pd.DataFrame:
    """The paper's Table 1 rows for ``group`` ("facial" -> 17AU, "pose" -> 6AU): ours on B (as the
    paper) and on the held-out test split, mean [95% interval] over seeds, beside the paper's;
    each reproduced row's gain over the reproduced row above it (``compared with``; paired by
    seed, with its verdict) beside the paper's gain of the same step (its row minus the paper's
    row above it: +0.0102 for choosing checkpoints on 17 AUs); rows we do not reproduce say
    why. Below, the label-blind predictors (:func:`_floor_rows`) on the same splits."""
    summary = summarise(scores)
    paper = paper_table("tal_emotionet_table1")
    paper = paper[paper["group"] == PAPER_GROUP[group]].set_index("strategy")
    rows, previous = [], None
    for name, strategy in TABLE1_ROWS[PAPER_GROUP[group]].items():
        p = paper.loc[name]
        rec = {"paper row": name}
        if strategy is None:
            rec["ours"] = "not reproduced: " + NOT_REPRODUCED[name.lower().split("-")[-1]]
        else:
            rec["ours"] = f"multi-view network, {strategy}"
            for split in ("B", "test"):
                for m in METRICS:
                    rec[f"{split}: {m}"] = _ci(
                        summary, m, group=group, arm=arm, strategy=strategy, split=split
                    )
        for m in METRICS:
            rec[f"paper: {m}"] = float(p["final_score" if m == "final" else m])
        if strategy is not None and previous is not None:
            prev_strategy = previous
            rec["compared with"] = prev_strategy
            for split in ("B", "test"):
                d = paired_gain(scores, group, arm, strategy, prev_strategy, split)
                rec[f"{split}: gain"] = _diff(d)
                low = _at_floor(
                    summary,
                    floors,
                    group,
                    split,
                    [{"arm": arm, "strategy": s} for s in (strategy, prev_strategy)],
                )
                rec[f"{split}: verdict"] = _judged(d, low)
            # the paper's gain of the same step: this row over the paper's row above it
            above = paper.iloc[list(paper.index).index(name) - 1]
            rec["paper: gain"] = float(p["final_score"]) - float(above["final_score"])
        if strategy is not None:
            previous = strategy
        rows.append(rec)
    return pd.DataFrame(rows + _floor_rows(floors, group, "paper row", "ours"))


# --- Table 3 ----------------------------------------------------------------------------------------
def table3(scores: pd.DataFrame, floors: pd.DataFrame, group: str = "facial") -> pd.DataFrame:
    """The paper's Table 3: each arm's baseline strategy (its best average epoch on B) on B (as
    the paper) and on the held-out test split, mean [95% interval], beside the paper's; each
    ablation minus the full method, paired by seed, with its verdict on each split; below, the
    label-blind predictors (:func:`_floor_rows`) on the same AUs and splits."""
    summary = summarise(scores)
    paper = paper_table("tal_emotionet_table3_ablation").set_index("variant")
    base = scores[(scores["group"] == group) & (scores["strategy"] == "baseline")]
    rows = []
    for arm in ARMS:
        if arm not in set(base["arm"]):
            continue
        rec = {"variant": arm}
        for split in ("B", "test"):
            for m in METRICS:
                rec[f"{split}: {m}"] = _ci(
                    summary, m, group=group, arm=arm, strategy="baseline", split=split
                )
        p = paper.loc[TABLE3_PAPER[arm]]
        rec.update({"paper: f1": p["f1"], "paper: accuracy": p["accuracy"]})
        rec["paper: final"] = p["final_score"]
        if arm != BASELINE:
            rec["paper: minus baseline"] = (
                p["final_score"] - paper.loc["baseline (all)"]["final_score"]
            )
            for split in ("B", "test"):
                g = base[base["split"] == split]
                d = stats.paired_difference(g, arm, BASELINE, "final", method_col="arm")
                low = _at_floor(
                    summary,
                    floors,
                    group,
                    split,
                    [{"arm": a, "strategy": "baseline"} for a in (arm, BASELINE)],
                )
                rec[f"{split}: minus baseline"] = _diff(d)
                rec[f"{split}: verdict"] = _judged(d, low)
                rec[f"{split}: paper's claim (below the baseline)"] = stats.claim_verdict(
                    "below", _judged(d, low)
                )
        rows.append(rec)
    return pd.DataFrame(rows + (_floor_rows(floors, group, "variant", None) if rows else []))


# --- what no paper reports: the selections on the held-out split ------------------------------------
def selection_bias(
    scores: pd.DataFrame, floors: pd.DataFrame, groups: Sequence[str], arm: str = BASELINE
) -> pd.DataFrame:
    """For each group and per-AU strategy: its gain over the baseline on B (where it was chosen)
    and on the held-out test split, paired by seed, and the difference of the two gains (the part
    of the gain on B that is selection bias: the choice fitted B's noise), each with its
    interval and verdict."""
    summary = summarise(scores)
    rows = []
    for group in groups:
        for strategy in ("chosen", "chosen-threshold"):
            rec = {"group": group, "strategy": strategy}
            gains = {}
            for split in ("B", "test"):
                d = paired_gain(scores, group, arm, strategy, "baseline", split)
                gains[split] = d
                low = _at_floor(
                    summary,
                    floors,
                    group,
                    split,
                    [{"arm": arm, "strategy": s} for s in (strategy, "baseline")],
                )
                rec[f"gain on {split}"] = _diff(d)
                rec[f"{split}: verdict"] = _judged(d, low)
            g = scores[(scores["group"] == group) & (scores["arm"] == arm)]
            piv = g.pivot_table(index="seed", columns=["strategy", "split"], values="final")
            bias = (piv[(strategy, "B")] - piv[("baseline", "B")]) - (
                piv[(strategy, "test")] - piv[("baseline", "test")]
            )
            m, lo, hi = stats.mean_ci(bias.to_numpy())
            rec["gain on B minus gain on test"] = stats.format_ci(m, lo, hi, digits=4)
            rec["selection bias: verdict"] = stats.verdict(lo, hi, int(bias.notna().sum()))
            rec["bias"], rec["bias lo"], rec["bias hi"] = m, lo, hi
            rec["gain B"], rec["gain test"] = gains["B"]["diff"], gains["test"]["diff"]
            rows.append(rec)
    return pd.DataFrame(rows)


def floors_beside(scores: pd.DataFrame, floors: pd.DataFrame, arm: str = BASELINE) -> pd.DataFrame:
    """The label-blind floors of each group and split beside our baseline and best strategy."""
    summary = summarise(scores)
    rows = []
    for r in floors.itertuples(index=False):
        rec = {"group": r.group, "split": r.split, "AUs": r.aus}
        rec.update({f"predict {k}": getattr(r, k) for k in ("nothing", "everything")})
        rec["chance (prevalence)"] = r.chance
        for s in au_selection.STRATEGIES:
            rec[f"ours: {s}"] = _ci(
                summary, "final", group=r.group, arm=arm, strategy=s, split=r.split
            )
        rows.append(rec)
    return pd.DataFrame(rows)


# --- Figure 2 -------------------------------------------------------------------------------------
PAPER_FIG2_AUS = ("AU1", "AU3", "AU5", "AU9", "AU15")  # the AUs of the paper's Figure 2


def plot_figure2(run: RunPredictions, all_runs: Mapping[int, RunPredictions] | None = None):
    """Figure 2 regenerated from one run: the final score on B over epochs of the paper's AUs
    (those we have) and of the average, each line's best epoch starred, with the label-blind floor
    of the average (:func:`affectlib.studies.emotionet.floors` of B: the best of predicting no AU,
    every AU, or each at its prevalence) dotted; right: every AU's best epoch in every run of
    ``all_runs`` (seed -> run) beside the average's. Legends sit below the panels."""
    curves = au_selection.epoch_curves(run.true_b, run.probs_b)  # (E, M)
    epochs = np.arange(1, curves.shape[0] + 1)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    ax = axes[0]
    mean = np.nanmean(curves, axis=1)
    lines = [("average", mean, "black", 2.5)]
    shown = [c for c in PAPER_FIG2_AUS if c in run.columns]
    cmap = plt.get_cmap("tab10")
    lines += [(c, curves[:, run.columns.index(c)], cmap(i), 1.3) for i, c in enumerate(shown)]
    floor = emotionet_floors(run.true_b)["floor"]
    ax.axhline(floor, color="black", ls=":", lw=1.2, label="label-blind floor of the average")
    for name, y, color, lw in lines:
        ax.plot(epochs, y, color=color, lw=lw, label=name)
        best = au_selection._argmax_first(y)
        ax.plot(epochs[best], y[best], marker="*", color=color, mec="black", ms=14, zorder=5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("final score on dataset-B, (F1 + accuracy) / 2")
    missing = [c for c in PAPER_FIG2_AUS if c not in run.columns]
    ax.set_title(
        "per-AU final score on B over epochs (star: each line's best)"
        + (f"\n{', '.join(missing)}: not rendered" if missing else "")
    )
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)
    ax = axes[1]
    runs = all_runs or {0: run}
    for k, (seed, r) in enumerate(sorted(runs.items())):
        c = au_selection.epoch_curves(r.true_b, r.probs_b)
        best = au_selection.per_au_epochs(c) + 1
        y = np.arange(len(r.columns)) + (k - (len(runs) - 1) / 2) * 0.2
        ax.scatter(best, y, s=18, label=f"seed {seed}: each AU's best")
        ax.axvline(au_selection.average_epoch(c) + 1, color=f"C{k}", ls="--", lw=1)
    ax.set_yticks(np.arange(len(run.columns)), run.columns, fontsize=7)
    ax.set_xlabel("epoch chosen on B (dashed: the average's best)")
    ax.set_xlim(0.5, curves.shape[0] + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("each AU's best epoch, every seed")
    # below the axis label, where it hides no point
    ax.legend(
        fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=len(runs), frameon=False
    )
    fig.tight_layout()
    return fig


def plot_bias(bias: pd.DataFrame):
    """Gain of each per-AU strategy over the baseline on B and on the held-out split (mean and
    95% interval over seeds, paired)."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    labels = [f"{r.group}: {r.strategy}" for r in bias.itertuples(index=False)]
    y = np.arange(len(bias))
    for k, split in enumerate(("B", "test")):
        vals = bias[f"gain on {split}"].str.extract(r"([-\d.]+) \[([-\d.]+), ([-\d.]+)\]")
        m, lo, hi = (vals[i].astype(float).to_numpy() for i in range(3))
        off = (k - 0.5) * 0.25
        ax.errorbar(m, y + off, xerr=[m - lo, hi - m], fmt="o", capsize=3, label=f"on {split}")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(y, labels)
    ax.set_xlabel("final score minus the baseline's (paired by seed)")
    ax.set_title("per-AU selection: gain where it was chosen (B) and on held-out images")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --- statements ---------------------------------------------------------------------------------
def claims(t1: Mapping[str, pd.DataFrame], t3: pd.DataFrame, bias: pd.DataFrame) -> list[str]:
    """One sentence per paper claim, with our paired differences and their verdicts."""
    out = []
    for group, t in t1.items():
        for rec in t[t["B: verdict"].notna()].to_dict("records") if "B: verdict" in t else []:
            strategy = rec["ours"].split(", ")[-1]
            out.append(
                f"{group}: {strategy} over {rec['compared with']} (paper, {rec['paper row']}: "
                f"{rec['paper: gain']:+.4f}): on B {rec['B: gain']}, "
                f"{stats.claim_verdict('above', rec['B: verdict'])}; on the held-out split "
                f"{rec['test: gain']}, {stats.claim_verdict('above', rec['test: verdict'])}."
            )
    claim = "paper's claim (below the baseline)"
    ablations = t3[t3["variant"].isin(ARMS) & (t3["variant"] != BASELINE)] if len(t3) else t3
    for r in ablations.to_dict("records"):
        out.append(
            f"Table 3, {r['variant']} below the full method (paper "
            f"{r['paper: minus baseline']:+.4f}): on B {r['B: minus baseline']}, "
            f"{r['B: ' + claim]}; on the held-out split "
            f"{r['test: minus baseline']}, {r['test: ' + claim]}."
        )
    for r in bias.to_dict("records"):
        share = r["bias"] / r["gain B"] if r["gain B"] else np.nan
        shown = f" ({share:.0%} of the gain on B)" if np.isfinite(share) and r["gain B"] > 0 else ""
        out.append(
            f"Selection bias, {r['group']} / {r['strategy']}: gain on B {r['gain on B']}, on the "
            f"held-out split {r['gain on test']}; the difference, {r['gain on B minus gain on test']}"
            f"{shown}, is {_bias_word(r['selection bias: verdict'])}."
        )
    return out


def _bias_word(found: str) -> str:
    return {
        "A higher": "selection bias: B overstates the gain",
        "B higher": "negative: the held-out gain exceeds B's",
        stats.NO_CLEAR: "not separable from 0 with these seeds",
    }.get(found, found)
