"""Tables, comparisons and figures of notebook 05 (the ABAW 2021 teacher-student study) from the
runs of :func:`affectlib.studies.teacher_student.run_study`."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from affectlib import stats  # noqa: E402
from affectlib.files import paper_table  # noqa: E402
from affectlib.labels import EXPRESSIONS, VA_MISSING  # noqa: E402
from affectlib.studies.teacher_student import ARMS, PAPER_ROWS, TEMPORAL_ARMS  # noqa: E402

METRICS = {"expr_score": "expr_score", "valence": "valence_ccc", "arousal": "arousal_ccc"}
# the paper's claims: (A, B, metric, what the paper says of A - B)
CLAIMS = (
    (
        "teacher {1,2,3}",
        "teacher {1,2}",
        "expr_score",
        "above",
        "Table 1: adding task 3 raises EXPR",
    ),
    (
        "teacher {1,2,3}",
        "teacher {1,2}",
        "valence",
        "above",
        "Table 1: adding task 3 raises valence",
    ),
    (
        "student, no sharing",
        "teacher {1,2,3}",
        "expr_score",
        "on par",
        "Tables 1-2: no-sharing student EXPR equals the teacher's (0.513)",
    ),
    (
        "student, no sharing",
        "teacher {1,2,3}",
        "valence",
        "above",
        "Tables 1-2: student above teacher on valence",
    ),
    (
        "student, with sharing",
        "teacher {1,2,3}",
        "expr_score",
        "above",
        "Tables 1-2: student above teacher on EXPR",
    ),
    (
        "student, with sharing",
        "student, no sharing",
        "expr_score",
        "above",
        "Table 2: sharing raises EXPR",
    ),
    (
        "student, with sharing",
        "student, no sharing",
        "arousal",
        "above",
        "Table 2: sharing raises arousal",
    ),
)


TEMPORAL_PAPER_ROWS = {
    "CNN student, same frames": ("2 student CNN", "With sharing"),
    "GRU teacher": ("3 CNN+GRU", "Teacher model"),
    "GRU student": ("3 CNN+GRU", "Student model"),
}
# Table 3's claims (§3.2): the GRU student above the GRU teacher "in all cases" (EXPR printed
# equal, 0.555: on par), CNN + GRU above the CNN "by a large margin"
TEMPORAL_CLAIMS = (
    (
        "GRU student",
        "GRU teacher",
        "expr_score",
        "on par",
        "Table 3: GRU student EXPR equals the teacher's (0.555)",
    ),
    (
        "GRU student",
        "GRU teacher",
        "valence",
        "above",
        "Table 3: GRU student above teacher on valence",
    ),
    (
        "GRU student",
        "GRU teacher",
        "arousal",
        "above",
        "Table 3: GRU student above teacher on arousal",
    ),
    (
        "GRU student",
        "CNN student, same frames",
        "expr_score",
        "above",
        "Tables 2-3: CNN+GRU above CNN on EXPR",
    ),
    (
        "GRU student",
        "CNN student, same frames",
        "valence",
        "above",
        "Tables 2-3: CNN+GRU above CNN on valence",
    ),
    (
        "GRU student",
        "CNN student, same frames",
        "arousal",
        "above",
        "Tables 2-3: CNN+GRU above CNN on arousal",
    ),
)


# the paper's own baseline row (the ABAW 2021 organisers' baseline, Table 1), shown, never trained
PAPER_BASELINE = ("1 teacher CNN", "Baseline")


def results_table(runs: pd.DataFrame, floors: Mapping[str, float], table: str) -> pd.DataFrame:
    """One row per arm of ``table`` ("1", "2" or "3"; "3" reads the temporal runs): each metric
    as mean [95% CI] over seeds with the paper's value beside it; then the baselines as rows, one
    value each and no interval: the training set's majority class and the class prior drawn at
    random (:func:`affectlib.studies.teacher_student.floors`), each with a constant VA guess (CCC
    0), and in Table 1 the paper's own baseline row, its ``paper:`` values only (not run)."""
    paper = paper_table("teacher_student_tables")
    out = []
    rows = TEMPORAL_PAPER_ROWS if table == "3" else PAPER_ROWS
    for arm in TEMPORAL_ARMS if table == "3" else ARMS:
        t, row = rows[arm]
        if table != "3" and not t.startswith(table):
            continue
        g = runs[runs["arm"] == arm]
        p = paper[(paper["table"] == t) & (paper["method"] == row)].iloc[0]
        rec = {"row": arm, "seeds": len(g)}
        for m, col in METRICS.items():
            rec[f"ours: {m}"] = stats.format_ci(*stats.mean_ci(g[m]))
            rec[f"paper: {m}"] = float(p[col])
        out.append(rec)
    for name, key in (
        ("baseline: majority class, constant VA", "expr_majority"),
        ("baseline: class prior at random, constant VA", "expr_prior"),
    ):
        rec = {"row": name, "seeds": np.nan}
        for m in METRICS:
            value = floors[key] if m == "expr_score" else floors["va_floor"]
            rec[f"ours: {m}"] = stats.format_ci(value, np.nan, np.nan)
            rec[f"paper: {m}"] = np.nan
        out.append(rec)
    if table == "1":
        t, row = PAPER_BASELINE
        p = paper[(paper["table"] == t) & (paper["method"] == row)]
        if len(p):
            rec = {"row": "ABAW baseline (paper's; not run)", "seeds": np.nan}
            for m, col in METRICS.items():
                rec[f"ours: {m}"] = ""
                rec[f"paper: {m}"] = float(p.iloc[0][col])
            out.append(rec)
    return pd.DataFrame(out)


def comparisons(runs: pd.DataFrame, floors: Mapping[str, float], claims=CLAIMS) -> pd.DataFrame:
    """The paper's ``claims`` as paired differences by seed with :func:`stats.verdict`: untestable
    when either side's interval reaches its floor (EXPR: the label-blind floor; VA: CCC 0)."""
    rows = []
    for a, b, m, claim, text in claims:
        d = stats.paired_difference(runs, a, b, m, method_col="arm")
        floor = floors["expr_floor"] if m == "expr_score" else floors["va_floor"]
        at_floor = any(
            stats.reaches_floor(stats.mean_ci(runs.loc[runs["arm"] == x, m])[1], floor)
            for x in (a, b)
        )
        found = stats.verdict(
            d["diff lo"],
            d["diff hi"],
            d["seeds"],
            at_floor=at_floor,
            margin=0.01 if claim == "on par" else None,
        )
        rows.append(
            {
                "claim": text,
                "A": a,
                "B": b,
                "metric": m,
                "A - B": stats.format_ci(d["diff"], d["diff lo"], d["diff hi"]),
                "seeds": d["seeds"],
                "found": found,
                "paper claim": stats.claim_verdict(claim, found),
            }
        )
    return pd.DataFrame(rows)


def plot_learning_curves(history: pd.DataFrame, floors: Mapping[str, float] | None = None):
    """Per arm: the training loss of each part per epoch (mean over seeds) and the validation
    EXPR score and VA mean CCC; with ``floors`` (:func:`affectlib.studies.teacher_student.floors`
    on the validation split), the label-blind EXPR floor and CCC 0 as dashed lines."""
    arms = list(dict.fromkeys(history["arm"]))
    fig, axes = plt.subplots(
        2, len(arms), figsize=(3.6 * len(arms), 5.6), squeeze=False, sharey="row"
    )
    for j, arm in enumerate(arms):
        h = history[history["arm"] == arm].groupby("epoch").mean(numeric_only=True)
        ax = axes[0, j]
        for p, name in ((1, "Mixed EXPR"), (2, "Mixed VA"), (3, "Affect EXPR_VA")):
            col = f"train_part{p}"
            if col in h and h[col].notna().any():
                ax.plot(h.index, h[col], marker="o", label=f"part {p}: {name}")
        ax.set_title(arm, fontsize=9)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("epoch")
        if j == 0:
            ax.set_ylabel("training loss (per part)")
        ax.legend(fontsize=7)
        ax = axes[1, j]
        ax.plot(h.index, h["expr_score"], marker="o", label="EXPR score")
        ax.plot(h.index, h["va"], marker="s", label="VA mean CCC")
        if floors is not None:
            ax.axhline(
                floors["expr_floor"],
                color="tab:blue",
                ls="--",
                lw=0.8,
                label="EXPR label-blind floor",
            )
            ax.axhline(
                floors["va_floor"], color="tab:orange", ls="--", lw=0.8, label="VA floor (CCC 0)"
            )
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("epoch")
        if j == 0:
            ax.set_ylabel("validation")
        ax.legend(fontsize=7)
    fig.suptitle("Per-part training losses and validation scores (mean over seeds)", fontsize=10)
    fig.tight_layout()
    return fig


def soft_label_examples(table: pd.DataFrame, n: int = 3, seed: int = 0) -> pd.DataFrame:
    """``n`` training images of each data set of each part (drawn with ``seed``) with their ground truth and the
    teacher's soft labels (softmax at temperature 1): expression probabilities, predicted VA."""
    rng = np.random.default_rng(seed)
    picks = []
    for name in dict.fromkeys(table["set"]):  # every data set of every part, in part order
        rows = np.flatnonzero(table["set"].to_numpy() == name)
        picks += list(rng.choice(rows, min(n, len(rows)), replace=False))
    sub = table.iloc[picks].reset_index(drop=True)
    logits = sub[[f"teacher_expr_{c}" for c in range(7)]].to_numpy()
    prob = np.exp(logits - logits.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    va = sub[[c for c in sub.columns if c.startswith("teacher_va_")]].to_numpy()
    va = va.reshape(len(sub), 2, -1)
    k = va.shape[2]
    centres = -1 + (np.arange(k) + 0.5) * 2 / k
    pv = np.exp(va - va.max(2, keepdims=True))
    pv /= pv.sum(2, keepdims=True)
    pred = (pv * centres).sum(2)
    return sub.assign(
        teacher_expr=[EXPRESSIONS[i] for i in prob.argmax(1)],
        teacher_p=prob.max(1),
        teacher_valence=pred[:, 0],
        teacher_arousal=pred[:, 1],
        probs=list(prob),
    )


def plot_soft_labels(examples: pd.DataFrame, images: np.ndarray):
    """Each example image with its ground truth (expression, VA; "-" where the part has none)
    and the teacher's expression distribution and VA."""
    n = len(examples)
    fig, axes = plt.subplots(2, n, figsize=(1.9 * n, 4.2), squeeze=False)
    for i, r in examples.iterrows():
        ax = axes[0, i]
        ax.imshow(images[i].transpose(1, 2, 0))
        ax.axis("off")
        gt_e = EXPRESSIONS[int(r["expr"])] if r["expr"] >= 0 else "-"
        gt_v = f"{r['valence']:.2f},{r['arousal']:.2f}" if r["valence"] != VA_MISSING else "-"
        ax.set_title(
            f"part {int(r['part'])}: {r['set']}\nGT: {gt_e}\nVA {gt_v}\nT: {r['teacher_valence']:.2f},{r['teacher_arousal']:.2f}",
            fontsize=7,
        )
        ax = axes[1, i]
        ax.bar(range(7), r["probs"], color="tab:blue")
        if r["expr"] >= 0:
            ax.bar([int(r["expr"])], [r["probs"][int(r["expr"])]], color="tab:orange")
        ax.set_xticks(range(7), [e[:3] for e in EXPRESSIONS[:7]], rotation=90, fontsize=6)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=6)
    fig.suptitle(
        "Teacher {1,2,3} soft labels (bars; orange: the ground-truth class; T: its valence, "
        "arousal) vs the ground truth (GT, VA)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig
