"""Tables, figures and computed statements of the coupling study (notebook 04, Kollias et al. 2024,
Tables 2, 3 and 5), from the runs of :func:`affectlib.studies.kollias.run_study`.

Our numbers are means over seeds with a 95% Student-t interval (:func:`affectlib.stats.mean_ci`),
in percent like the paper's, written ``mean [lo, hi]``; comparisons of two rows pair their runs by
seed (:func:`affectlib.stats.paired_difference`), in percentage points. The paper's numbers sit
beside ours in columns prefixed ``paper:``; they come from other data sets and networks (AffectNet,
EmotioNet, Aff-Wild2; EmoAffNet, EffNet-B2, TMIF-FEA; Table 5 even from Case Study II's
CUB/SADD/CAD) and are there for the shape of the result, not for a difference.

Every comparison is judged by :func:`affectlib.stats.verdict`: "untestable: at the floor" when
either row sits at a label-blind floor on that task (a collapsed run, or an interval reaching
chance: :func:`affectlib.studies.baselines.kollias_floor`), "better" / "worse" when the paired
interval excludes 0, "no clear difference" when it spans 0. A paper claim
:func:`claims` then "holds" when every case shows the claimed difference, "fails" when some case
shows the opposite, and is "untestable" or shows "no clear difference" otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from affectlib import stats
from affectlib.files import paper_table
from affectlib.labels import EXPRESSIONS
from affectlib.studies import task_relatedness_report
from affectlib.studies.baselines import PRIMARY, kollias_floor
from affectlib.studies.kollias import (
    ARMS,
    BASIC,
    SCORE_NAMES,
    TABLE2_ARMS,
    TABLE3_ARMS,
    TABLE5_ARMS,
)

# how the paper names our settings, metrics and rows
PAPER_PAIR = {"affectnet+emotionet": "AffectNet-EmotioNet", "affwild2": "Aff-Wild2"}
METRIC_LABEL = {
    "expr_acc": "Acc",
    "expr_aa": "AA",
    "expr_f1": "F1",
    "au_f1": "F1 (AU)",
    "au_acc": "Acc (AU)",
    "au_afa": "AFA",
}
TASK_NAME = {"expr": "expressions", "au": "AUs"}


def _short(labels) -> list[str]:
    """Metric labels beside a task's name, which already says "AUs": "F1 (AU)" -> "F1"."""
    return [str(m).removesuffix(" (AU)") for m in labels]


# Table 3's (coupling, relatedness) rows; "affwild2" is the paper's data-base relatedness (DB)
TABLE3_KEYS = {
    ("none", ""): "NC MT",
    ("soft co-annotation", "domain"): "soft co-annotation (DM)",
    ("distribution matching", "domain"): "distr-matching (DM)",
    ("both", "domain"): "C MT (DM)",
    ("soft co-annotation", "affwild2"): "soft co-annotation (DB)",
    ("distribution matching", "affwild2"): "distr-matching (DB)",
    ("both", "affwild2"): "C MT (DB)",
}
# rows of our Table 3 that the paper does not have: (arm) -> the "coupling" cell
EXTRA_ROWS = {
    "distr-matching (DM, gradient to AUs)": "distribution matching, Eq. 3 with gradient to the AUs",
    "soft co-annotation (DM, q as target)": "soft co-annotation, Eq. 6 as -q log p",
}
# Table 5 (Case Study II): NTS-Net's rows stand for ST / NC MT / C MT; Case II couples with
# relatedness inferred from the data set's annotations, i.e. our DB
TABLE5_PAPER_ROWS = {
    "ST": "NTS-ST",
    "NC MT": "NTS-NC MT",
    "C MT (DB)": "NTS-C MT",
    "GradNorm": "GradNorm",
    "MGDA-UB": "MGDA-UB",
}


# --- summaries ------------------------------------------------------------------------------------
def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (setting, backbone, arm): ``n`` seeds and, per score, the mean and its 95%
    interval (``<score>``, ``<score> lo``, ``<score> hi``) in percent. Row order as in ``runs``."""
    pct = runs.assign(**{m: runs[m] * 100 for m in SCORE_NAMES})
    return stats.summarize_runs(pct, ["setting", "backbone", "arm"], SCORE_NAMES)


def _cell(summary: pd.DataFrame, setting: str, backbone: str, arm: str, metric: str) -> str:
    row = summary[
        (summary["setting"] == setting)
        & (summary["backbone"] == backbone)
        & (summary["arm"] == arm)
    ]
    if row.empty:
        return ""
    r = row.iloc[0]
    return stats.format_ci(r[metric], r[f"{metric} lo"], r[f"{metric} hi"], digits=1)


def _baseline_cell(baselines: pd.DataFrame, name: str, metric: str) -> str:
    """One label-blind baseline's score in percent, one value and no interval (""; none given)."""
    row = baselines[baselines["baseline"] == name]
    return "" if row.empty else stats.format_ci(100 * row.iloc[0][metric], np.nan, np.nan, digits=1)


def table2(
    summary: pd.DataFrame,
    setting: str,
    backbones: Sequence[str],
    baselines: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Kollias Table 2 for one pair of data sets: a row per setting (ST, NC MT, S-T NC MT,
    C MT (DM), C MT (DB)); ours as ``mean [lo, hi]`` per backbone and metric (the paper's metrics
    of that pair; average accuracy too for AffectNet), then the paper's value for each of its
    networks on that pair (``paper: <metric> (<network>)``). With ``baselines``
    (:func:`affectlib.studies.baselines.kollias_baselines` of the setting), one row per label-blind
    baseline below the settings ("baseline: <name>"), the same value under every backbone."""
    metrics = list(PRIMARY[setting])
    if setting == "affectnet+emotionet":
        metrics.insert(1, "expr_aa")
    names = [] if baselines is None else list(baselines["baseline"])
    out = pd.DataFrame({"setting": list(TABLE2_ARMS) + [f"baseline: {n}" for n in names]})
    for b in backbones:
        for m in metrics:
            out[f"{b}: {METRIC_LABEL[m]}"] = [
                _cell(summary, setting, b, a, m) for a in TABLE2_ARMS
            ] + [_baseline_cell(baselines, n, m) for n in names]
    paper = paper_table("kollias_table2")
    paper = paper[paper["db_pair"] == PAPER_PAIR[setting]]
    for net, rows in paper.groupby("network", sort=False):
        rows = rows.set_index("setting")
        for col, label in (("expr", "metric_expr"), ("au", "metric_au")):
            name = rows[label].iloc[0] + (" (AU)" if col == "au" and setting == "affwild2" else "")
            out[f"paper: {name} ({net})"] = out["setting"].map(rows[col])
    return out


def table3(
    summary: pd.DataFrame, setting: str, backbone: str, baselines: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Kollias Table 3 (ablation): the paper's rows (coupling x relatedness), ours on ``setting``
    with ``backbone`` (``mean [lo, hi]`` of expression F1 and AU F1), the paper's TMIF-FEA values
    on Aff-Wild2 beside (``paper: expr_f1``, ``paper: au_f1``); with ``baselines``, one row per
    label-blind baseline below (coupling "baseline", no paper value)."""
    paper = paper_table("kollias_table3_ablation").fillna({"relatedness": ""})
    arm = [
        TABLE3_KEYS[(c, r)] for c, r in zip(paper["coupling"], paper["relatedness"], strict=True)
    ]
    table = pd.DataFrame(
        {
            "coupling": paper["coupling"],
            "relatedness": paper["relatedness"].map({"": "", "domain": "DM", "affwild2": "DB"}),
            "our row": arm,
            "paper: expr_f1": paper["expr_f1"],
            "paper: au_f1": paper["au_f1"],
        }
    )
    # our rows beyond the paper's (other readings of Eq. 3 and Eq. 6), without a paper value
    extra = [a for a in TABLE3_ARMS if a not in arm]
    table = pd.concat(
        [table, pd.DataFrame({"coupling": [EXTRA_ROWS.get(a, a) for a in extra], "our row": extra})]
    ).fillna({"relatedness": "DM", "paper: expr_f1": np.nan})
    arms = table["our row"]
    table.insert(3, "F1 (expr)", [_cell(summary, setting, backbone, a, "expr_f1") for a in arms])
    table.insert(4, "F1 (AU)", [_cell(summary, setting, backbone, a, "au_f1") for a in arms])
    if baselines is not None:
        names = list(baselines["baseline"])
        rows = pd.DataFrame(
            {
                "coupling": "baseline",
                "relatedness": "",
                "our row": names,
                "F1 (expr)": [_baseline_cell(baselines, n, "expr_f1") for n in names],
                "F1 (AU)": [_baseline_cell(baselines, n, "au_f1") for n in names],
            }
        )
        table = pd.concat([table, rows], ignore_index=True)
    return table.reset_index(drop=True)


def table5(summary: pd.DataFrame, setting: str, backbone: str) -> pd.DataFrame:
    """Kollias Table 5: coupling against the balancing methods (GradNorm, MGDA-UB) and the ST /
    NC MT rows, ours on ``setting`` with ``backbone`` (the pair's metrics, ``mean [lo, hi]``).
    The paper ran this comparison in Case Study II only; its rows (NTS-Net for ST / NC MT / C MT)
    are printed per database as ``paper: <db> classes`` / ``attributes`` (accuracy, %, as printed,
    CAD with its spread)."""
    e, a = PRIMARY[setting]
    out = pd.DataFrame({"setting": list(TABLE5_ARMS)})
    out[METRIC_LABEL[e]] = [_cell(summary, setting, backbone, r, e) for r in TABLE5_ARMS]
    out[METRIC_LABEL[a]] = [_cell(summary, setting, backbone, r, a) for r in TABLE5_ARMS]
    paper = paper_table("kollias_table5_mtl_methods")
    for db, rows in paper.groupby("database", sort=False):
        rows = rows.set_index("method")
        key = out["setting"].map(TABLE5_PAPER_ROWS)
        out[f"paper: {db} classes"] = key.map(rows["classes_acc"].astype(str))
        out[f"paper: {db} attributes"] = key.map(rows["attributes_acc"].astype(str))
    return out


# The rows of the paper's Table 5 this notebook does not train, and why (the reason is a reading of
# the paper's related-work section and of each method's own paper).
TABLE5_NOT_RUN = {
    "AdaShare": "Sun et al. 2020: a per-task policy, learned jointly with the weights through "
    "Gumbel-softmax and a curriculum, over which residual blocks of a deep ResNet each task "
    "executes; not implemented here (the cpu networks have four blocks to choose from)",
    "TR": "Task Routing, Strezoski et al. 2019: fixed task-specific channel masks inside every "
    "conv layer, built for many tasks; not implemented here",
    "NTS-Net": "Yang et al. 2018: the fine-grained part-navigation network the paper used for the "
    "ST / NC MT / C MT rows of Case Study II (birds, shopping items); our rows use this study's "
    "own backbones on faces instead",
}


def table5_not_reproduced() -> pd.DataFrame:
    """The methods of the paper's Table 5 that no run here reproduces, with the reason, and the
    databases where the paper reports each (from the published table)."""
    paper = paper_table("kollias_table5_mtl_methods")
    rows = []
    for method, why in TABLE5_NOT_RUN.items():
        hits = paper[paper["method"].str.startswith(method.split("-")[0])]
        rows.append({"method": method, "in the paper on": ", ".join(hits["database"].unique()),
                     "not reproduced because": why})  # fmt: skip
    return pd.DataFrame(rows)


# --- paired comparisons ---------------------------------------------------------------------------
COMPARISONS = (
    ("NC MT", "ST"),
    ("S-T NC MT", "ST"),
    ("C MT (DM)", "ST"),
    ("C MT (DB)", "ST"),
    ("GradNorm", "ST"),
    ("MGDA-UB", "ST"),
    ("soft co-annotation (DM)", "ST"),
    ("distr-matching (DM)", "ST"),
    ("soft co-annotation (DB)", "ST"),
    ("distr-matching (DB)", "ST"),
    ("C MT (DM)", "NC MT"),
    ("C MT (DB)", "NC MT"),
    ("C MT (DM)", "S-T NC MT"),
    ("C MT (DB)", "S-T NC MT"),
    ("soft co-annotation (DM)", "NC MT"),
    ("distr-matching (DM)", "NC MT"),
    ("soft co-annotation (DB)", "NC MT"),
    ("distr-matching (DB)", "NC MT"),
    ("C MT (DM)", "soft co-annotation (DM)"),
    ("C MT (DM)", "distr-matching (DM)"),
    ("C MT (DB)", "soft co-annotation (DB)"),
    ("C MT (DB)", "distr-matching (DB)"),
    ("distr-matching (DM, gradient to AUs)", "distr-matching (DM)"),
    ("distr-matching (DM, gradient to AUs)", "NC MT"),
    ("soft co-annotation (DM, q as target)", "soft co-annotation (DM)"),
    ("soft co-annotation (DM, q as target)", "NC MT"),
    ("C MT (DM)", "GradNorm"),
    ("C MT (DM)", "MGDA-UB"),
    ("C MT (DB)", "GradNorm"),
    ("C MT (DB)", "MGDA-UB"),
)


def paired(
    runs: pd.DataFrame,
    comparisons: Sequence[tuple[str, str]] = COMPARISONS,
    chance: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """``a - b`` per (setting, backbone, task) on the paper's metric of that setting, paired by
    seed, in percentage points: ``diff``, ``lo``, ``hi`` (95% t interval), ``seeds``
    and ``status`` (:func:`affectlib.stats.verdict`: "untestable: at the floor" when either row is
    at the task's floor, "better" / "worse" when the interval excludes 0, "no clear difference",
    "too few paired seeds"). Only pairs whose two rows were run on that (setting, backbone) appear.

    A row is at the floor when a run of it collapsed or, given ``chance`` (setting ->
    :func:`affectlib.studies.baselines.kollias_baselines`), when its interval over seeds reaches
    the "label-blind chance" score of that metric: both as :func:`affectlib.studies.baselines.kollias_floor` judges them."""
    floor = kollias_floor(runs, chance=chance).set_index(["setting", "backbone", "arm"])
    out = []
    for (setting, backbone), g in runs.groupby(["setting", "backbone"], sort=False):
        have = set(g["arm"])
        for task, metric in zip(("expr", "au"), PRIMARY[setting], strict=True):
            pct = g.assign(**{metric: g[metric] * 100})
            for a, b in comparisons:
                if a not in have or b not in have:
                    continue
                d = stats.paired_difference(pct, a, b, metric, method_col="arm")
                low = any(_low(floor, (setting, backbone, x), task) for x in (a, b))
                found = stats.verdict(d["diff lo"], d["diff hi"], d["seeds"], at_floor=low)
                status = {"A higher": "better", "B higher": "worse"}.get(found, found)
                out.append(
                    {
                        "setting": setting,
                        "backbone": backbone,
                        "task": task,
                        "metric": METRIC_LABEL[metric],
                        "a": a,
                        "b": b,
                        "seeds": d["seeds"],
                        "diff": d["diff"],
                        "lo": d["diff lo"],
                        "hi": d["diff hi"],
                        "status": status,
                    }
                )
    return pd.DataFrame(out)


def _low(floor: pd.DataFrame, row: tuple[str, str, str], task: str) -> bool:
    """Whether :func:`affectlib.studies.baselines.kollias_floor` (indexed by setting, backbone, arm) puts ``row`` at a floor on
    ``task``: a collapsed run, or an interval reaching chance when that was judged."""
    judged = f"{task}_at_chance" in floor
    return bool(
        floor.at[row, f"{task}_floor"] > 0 or (judged and floor.at[row, f"{task}_at_chance"])
    )


def negative_transfer(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per (setting, backbone, task): is a multi-task row worse than ST (negative transfer, the
    paper's definition), and does coupling remove it? Columns ``<row> - ST`` as ``diff [lo, hi]``
    (points) and ``<row>: status`` for NC MT, S-T NC MT and the two coupled rows."""
    rows = ("NC MT", "S-T NC MT", "C MT (DM)", "C MT (DB)")
    vs_st = pairs[(pairs["b"] == "ST") & pairs["a"].isin(rows)]
    out = []
    for (setting, backbone, task), g in vs_st.groupby(["setting", "backbone", "task"], sort=False):
        rec: dict[str, Any] = {
            "setting": setting,
            "backbone": backbone,
            "task": TASK_NAME[task],
            "metric": g["metric"].iloc[0],
        }
        for r in g.itertuples(index=False):
            rec[f"{r.a} - ST"] = _diff_text(r)
            rec[f"{r.a}: status"] = "negative transfer" if r.status == "worse" else r.status
        out.append(rec)
    return pd.DataFrame(out)


def _diff_text(r) -> str:
    return stats.format_ci(r.diff, r.lo, r.hi, digits=1)


# --- the paper's claims, decided from the paired comparisons --------------------------------------
def _oriented(pairs: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """The comparisons ``a - b``, from either orientation of :func:`paired`'s rows."""
    sel = pairs[(pairs["a"] == a) & (pairs["b"] == b)]
    flip = pairs[(pairs["a"] == b) & (pairs["b"] == a)]
    flip = flip.assign(
        a=a,
        b=b,
        diff=-flip["diff"],
        lo=-flip["hi"],
        hi=-flip["lo"],
        status=flip["status"].replace({"better": "worse", "worse": "better"}),
    )
    return pd.concat([sel, flip], ignore_index=True)


def _pts(x: float) -> str:
    return f"{round(x, 1) + 0.0:+.1f}"  # + 0.0: no "-0.0"


def _verdict(pairs: pd.DataFrame, a: str, b: str, task: str | None = None) -> tuple[str, str]:
    """(status, evidence) for the claim "a is better than b" over every (setting, backbone[,
    task]) where both were run."""
    sel = _oriented(pairs, a, b)
    if task is not None:
        sel = sel[sel["task"] == task]
    if sel.empty:
        return "not run", ""
    cases = [
        f"{r.setting}/{r.backbone}/{TASK_NAME[r.task]}: {_pts(r.diff)} [{_pts(r.lo)}, {_pts(r.hi)}]"
        for r in sel.itertuples(index=False)
    ]
    if (sel["seeds"] < 2).all():
        status = "not decided (fewer than 2 seeds: no interval)"
    elif (sel["status"] == "worse").any():
        status = "fails"
    elif (sel["status"] == "better").all():
        status = "holds"
    elif (sel["status"] == stats.UNTESTABLE).any():
        n = int((sel["status"] == stats.UNTESTABLE).sum())
        status = f"{stats.UNTESTABLE} ({n} of {len(sel)} cases)"
    else:
        n = int((sel["status"] == "better").sum())
        status = f"{stats.NO_CLEAR} ({n} of {len(sel)} cases with an interval above 0)"
    return status, "; ".join(cases)


# our other readings of an equation (a row beyond the paper's) against the reading our rows of the
# paper's tables use: (what the reading is, its row, the row it is compared with, what that reads)
READINGS = (
    ("Eq. 3 with the gradient reaching the AU predictions too",
     "distr-matching (DM, gradient to AUs)", "distr-matching (DM)",
     "our reading, the AU predictions a soft target"),
    ("Eq. 6 with the soft label as the target, -q log p",
     "soft co-annotation (DM, q as target)", "soft co-annotation (DM)",
     "Eq. 6 as printed, -p log q"),
)  # fmt: skip


def readings(pairs: pd.DataFrame) -> list[str]:
    """One sentence per reading of :data:`READINGS` that was run: its paired difference from the
    row with the reading our rows of the paper's tables use, per (setting, backbone, task), with
    the verdict of :func:`paired` (``better``: the other reading scores higher). Not a claim of
    the paper's."""
    out = []
    for text, a, b, against in READINGS:
        sel = _oriented(pairs, a, b)
        if sel.empty:
            continue
        cases = "; ".join(
            f"{r.setting}/{r.backbone}/{TASK_NAME[r.task]}: {r.status}, "
            f"{_pts(r.diff)} [{_pts(r.lo)}, {_pts(r.hi)}]"
            for r in sel.itertuples(index=False)
        )
        out.append(f"{text} ({a}) minus {against} ({b}), points: {cases}.")
    return out


def claims(pairs: pd.DataFrame) -> list[str]:
    """One sentence per claim of the paper (Case Study I), with its status on our runs and the
    paired differences (points, 95% interval) it rests on."""
    wanted = [
        ("Without coupling, multi-task training hurts expressions (NC MT below ST: negative "
         "transfer)", "ST", "NC MT", "expr"),
        ("Without coupling, multi-task training helps AUs (NC MT above ST)", "NC MT", "ST", "au"),
        ("Coupling with domain relatedness beats ST on both tasks (negative transfer removed)",
         "C MT (DM)", "ST", None),
        ("Coupling with data-base relatedness beats ST on both tasks", "C MT (DB)", "ST", None),
        ("Coupling (DM) beats multi-task training without coupling on both tasks",
         "C MT (DM)", "NC MT", None),
        ("Coupling (DB) beats multi-task training without coupling on both tasks",
         "C MT (DB)", "NC MT", None),
        ("Coupling (DM) beats the Student-Teacher baseline", "C MT (DM)", "S-T NC MT", None),
        ("The Student-Teacher baseline still shows negative transfer on expressions",
         "ST", "S-T NC MT", "expr"),
        ("Soft co-annotation alone beats no coupling (Table 3, DM)",
         "soft co-annotation (DM)", "NC MT", None),
        ("Distribution matching alone beats no coupling (Table 3, DM)",
         "distr-matching (DM)", "NC MT", None),
        ("Both losses beat soft co-annotation alone (Table 3, DM)",
         "C MT (DM)", "soft co-annotation (DM)", None),
        ("Both losses beat distribution matching alone (Table 3, DM)",
         "C MT (DM)", "distr-matching (DM)", None),
        ("Coupling (DM) beats GradNorm (Table 5)", "C MT (DM)", "GradNorm", None),
        ("Coupling (DM) beats MGDA-UB (Table 5)", "C MT (DM)", "MGDA-UB", None),
    ]  # fmt: skip
    out = []
    for text, a, b, task in wanted:
        status, evidence = _verdict(pairs, a, b, task)
        if status == "not run":
            continue
        shown = status.upper() if status in ("holds", "fails") else status
        out.append(f"{text}: {shown} — {a} minus {b}, points: {evidence}.")
    out.append(_agnostic_sentence(pairs))
    return [s for s in out if s]


def _agnostic_sentence(pairs: pd.DataFrame) -> str:
    """The network-agnostic claim ("similar levels of improvement in all networks"): on every
    setting run with several backbones, C MT (DM) beats NC MT on both tasks with every backbone.
    HOLDS when it does everywhere; FAILS when one backbone gains and another loses on a task;
    else no clear difference. The per-backbone statuses are listed."""
    sel = pairs[(pairs["a"] == "C MT (DM)") & (pairs["b"] == "NC MT")]
    sel = sel[sel.groupby("setting")["backbone"].transform("nunique") > 1]
    if sel.empty:
        return ""
    opposite = sel.groupby(["setting", "task"])["status"].agg(
        lambda s: {"better", "worse"} <= set(s)
    )
    if opposite.any():
        status = "FAILS"
    elif (sel["status"] == "better").all():
        status = "HOLDS"
    elif (sel["status"] == stats.UNTESTABLE).any():
        status = stats.UNTESTABLE
    else:
        status = stats.NO_CLEAR
    detail = "; ".join(
        f"{r.setting}/{r.backbone}/{TASK_NAME[r.task]}: {r.status}"
        for r in sel.itertuples(index=False)
    )
    return (
        "Coupling is network agnostic (C MT (DM) beats NC MT on both tasks with every backbone): "
        f"{status} — {detail}."
    )


# --- figures --------------------------------------------------------------------------------------
def plot_deltas(pairs: pd.DataFrame):
    """Per (setting, backbone): each row's paired difference from ST on the paper's expression
    and AU metrics, in points, with its 95% interval. A row with no finite difference on either
    task draws nothing, and a (setting, backbone) without any such row gets no panel, so no panel
    is empty."""
    import matplotlib.pyplot as plt  # deferred: a heavy import that only the figures need

    vs_st = pairs[(pairs["b"] == "ST") & np.isfinite(pairs["diff"].astype(float))]
    groups = list(vs_st.groupby(["setting", "backbone"], sort=False))
    if not groups:
        fig, ax = plt.subplots(figsize=(6.0, 1.2))
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no finite difference from ST to show", ha="center", va="center")
        return fig
    # each panel as wide as its arms need, so that no panel is squeezed or left half empty
    widths = [len(set(g["a"])) + 1 for _, g in groups]
    fig, axes = plt.subplots(
        1,
        len(groups),
        figsize=(max(6.0, 0.55 * sum(widths) + 1.5), 3.8),
        squeeze=False,
        sharey=False,
        gridspec_kw={"width_ratios": widths},
    )
    for ax, ((setting, backbone), g) in zip(axes[0], groups, strict=True):
        arms = [a for a in ARMS if a in set(g["a"])] + sorted(set(g["a"]) - set(ARMS))
        x = np.arange(len(arms))
        for k, (task, colour) in enumerate((("expr", "C0"), ("au", "C3"))):
            t = g[g["task"] == task].set_index("a").reindex(arms)
            err = np.vstack([t["diff"] - t["lo"], t["hi"] - t["diff"]])
            ax.errorbar(
                x + (k - 0.5) * 0.22,
                t["diff"],
                yerr=np.nan_to_num(err),
                fmt="o",
                ms=4,
                capsize=2,
                color=colour,
                label=f"{TASK_NAME[task]} ({', '.join(_short(t['metric'].dropna().unique()))})",
            )
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(x, arms, rotation=60, ha="right", fontsize=7)
        ax.set_title(f"{setting}, {backbone}", fontsize=9, pad=18)
        ax.grid(axis="y", alpha=0.3)
        # between the title and the axes, where it hides no point
        ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    axes[0][0].set_ylabel("difference from ST, points\n(95% paired interval)")
    fig.tight_layout()
    return fig


def relatedness_long(options: Mapping[str, Mapping[str, Any]], au_columns: Sequence[str]):
    """The matrices the coupled rows used, long form: ``relatedness``, ``expression`` (name),
    ``au``, ``relation`` (Eq. 2, 0/1) and ``weight`` (Eq. 4); pairs with weight 0 left out."""

    out = []
    for name, opt in options.items():
        r, w = np.asarray(opt["relation"]), np.asarray(opt["au_weights"])
        for i, c in enumerate(BASIC):
            for j, col in enumerate(au_columns):
                if w[i, j] > 0 or r[i, j] > 0:
                    out.append(
                        {
                            "relatedness": name,
                            "expression": EXPRESSIONS[c],
                            "au": col,
                            "relation": r[i, j],
                            "weight": w[i, j],
                        }
                    )
    return pd.DataFrame(out)


def plot_relatedness(
    options: Mapping[str, Mapping[str, Any]],
    au_columns: Sequence[str],
    covered: Mapping[str, Sequence[str]] | None = None,
):
    """The weights of Eq. 4 of each relatedness as a heat map (expressions x AUs); every cell
    with a weight is related in Eq. 2 (1). ``covered`` (per relatedness, the AU columns its
    source speaks about): the other AU columns are left blank and marked "n/a"."""
    import matplotlib.pyplot as plt  # deferred: a heavy import that only the figures need

    fig, axes = plt.subplots(
        len(options), 1, figsize=(0.5 * len(au_columns) + 2.4, 3.0 * len(options)), squeeze=False
    )
    for ax, (name, opt) in zip(axes[:, 0], options.items(), strict=True):
        w = pd.DataFrame(
            opt["au_weights"], index=[EXPRESSIONS[c] for c in BASIC], columns=list(au_columns)
        )
        outside = [c for c in au_columns if covered is not None and c not in covered[name]]
        w[outside] = np.nan  # the source has nothing to say about these AUs
        text = w.map(lambda v: f"{v:.2f}" if v > 0 else "")
        title = f"{name}: weights w (Eq. 4); related (Eq. 2) where > 0"
        if outside:
            title += f"; n/a: {', '.join(outside)} (not in the source)"
        task_relatedness_report.plot_matrix(w, title, text=text, label="w", ax=ax)
    fig.tight_layout()
    return fig
