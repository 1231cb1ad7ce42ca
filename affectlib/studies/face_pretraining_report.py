"""Tables, figure and computed verdicts of the face-pretraining study (notebook 07, Bulat et al.
2022, supplementary Tables 3 and 1), from the runs of
:func:`affectlib.studies.face_pretraining.run_study`.

Our numbers are means over seeds with a 95% Student-t interval (:func:`affectlib.stats.mean_ci`),
written ``mean [lo, hi]``; the paper's (ResNet-50 on AffectNet) sit beside ours, for the shape of
the result, not for a difference. Comparisons pair runs by seed (:func:`affectlib.stats.mean_ci`
of the per-seed differences) and are judged by :func:`affectlib.stats.verdict`, with RMSE turned
so that higher is better (its negative) before differencing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from affectlib import stats
from affectlib.data.disfa import AU_COLUMNS as DISFA_AU_COLUMNS
from affectlib.files import paper_table
from affectlib.studies.face_pretraining import (
    INITS,
    LOWER_BETTER,
    METRICS,
    NOT_RUN,
    PAPER_ROW,
    SSL,
)

PAPER_TABLE = "bulat_table3_affectnet_pretraining"
PRIMARY = ("accuracy", "valence_ccc", "arousal_ccc")  # the claims are judged on these


def _pct(f: float) -> str:
    return f"{100 * f:g}%"


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% interval over seeds of every metric, per (fraction, init)."""
    return stats.summarize_runs(runs, ["fraction", "init"], METRICS)


def table3(summary: pd.DataFrame, floor: Mapping[float, Mapping[str, float]]) -> pd.DataFrame:
    """Table 3's layout: per label fraction, our rows (``mean [lo, hi]`` over seeds), the
    label-blind floor of that fraction's training subset, and the paper's row for each of ours
    (``paper`` column) and the ImageNet row (not run)."""
    paper = paper_table(PAPER_TABLE)
    out = []
    for f, g in summary.groupby("fraction", sort=False):
        for _, r in g.iterrows():
            row = {"data amount": _pct(f), "init": r["init"], "source": "ours"}
            row.update({m: stats.format_ci(r[m], r[f"{m} lo"], r[f"{m} hi"]) for m in METRICS})
            out.append(row)
        out.append({"data amount": _pct(f), "init": "label-blind floor", "source": "ours",
                    **{m: f"{floor[f][m]:.3f}" for m in METRICS}})  # fmt: skip
        p = paper[paper["data_amount"] == _pct(f)]
        ran = list(dict.fromkeys(summary["init"]))
        for init in [*ran, *(k for k in NOT_RUN if k not in ran)]:
            name = PAPER_ROW.get(init, init)
            hit = p[p["init"] == name]
            if hit.empty:
                continue
            row = {"data amount": _pct(f), "init": f"{init} ({name})", "source": "paper"}
            row.update({m: f"{float(hit.iloc[0][m]):.3f}" for m in METRICS})
            out.append(row)
        for init in (k for k in NOT_RUN if k not in ran):
            out.append({"data amount": _pct(f), "init": init, "source": "ours",
                        **dict.fromkeys(METRICS, "not run")})  # fmt: skip
    return pd.DataFrame(out)


def _oriented(runs: pd.DataFrame, metric: str) -> pd.Series:
    return -runs[metric] if metric in LOWER_BETTER else runs[metric]


def paired(runs: pd.DataFrame, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Self-supervised minus each other initialisation, paired by seed, per fraction and metric
    (RMSE as its negative: a positive difference is always "self-supervised better"), with the
    verdict. ``at_floor``: either side's interval reaches the label-blind floor (accuracy: the
    majority class; CCC / PCC: 0)."""
    out = []
    for f, g in runs.groupby("fraction", sort=False):
        for other in [i for i in INITS if i != SSL]:
            for m in metrics:
                a = g[g["init"] == SSL].set_index("seed")
                b = g[g["init"] == other].set_index("seed")
                seeds = sorted(set(a.index) & set(b.index))
                d = (_oriented(a.loc[seeds], m) - _oriented(b.loc[seeds], m)).to_numpy(float)
                mean, lo, hi = stats.mean_ci(d)
                out.append({"fraction": f, "a": SSL, "b": other, "metric": m, "seeds": len(d),
                            "diff": mean, "diff lo": lo, "diff hi": hi})  # fmt: skip
    return pd.DataFrame(out)


def at_floor(summary: pd.DataFrame, floor: Mapping[float, Mapping[str, float]]) -> pd.DataFrame:
    """Per (fraction, init, metric of :data:`PRIMARY`): whether the interval's lower end reaches
    the label-blind floor (:func:`affectlib.stats.reaches_floor`)."""
    out = []
    for _, r in summary.iterrows():
        for m in PRIMARY:
            out.append({"fraction": r["fraction"], "init": r["init"], "metric": m,
                        "lo": r[f"{m} lo"], "floor": floor[r["fraction"]][m],
                        "at_floor": stats.reaches_floor(r[f"{m} lo"], floor[r["fraction"]][m])})  # fmt: skip
    return pd.DataFrame(out)


def verdicts(pairs: pd.DataFrame, floors_: pd.DataFrame) -> pd.DataFrame:
    """The claim "self-supervised >= the other initialisation" per (fraction, other, metric of
    :data:`PRIMARY`): :func:`affectlib.stats.verdict` on the paired interval (untestable when
    either side is at its floor), then :func:`affectlib.stats.claim_verdict` with "above"."""
    flo = floors_.set_index(["fraction", "init", "metric"])["at_floor"]
    out = []
    for _, r in pairs[pairs["metric"].isin(PRIMARY)].iterrows():
        low = bool(
            flo[(r["fraction"], r["a"], r["metric"])] or flo[(r["fraction"], r["b"], r["metric"])]
        )
        found = stats.verdict(r["diff lo"], r["diff hi"], r["seeds"], at_floor=low)
        out.append({**r.to_dict(), "found": found, "claim": stats.claim_verdict("above", found)})
    return pd.DataFrame(out)


def gap_growth(runs: pd.DataFrame, metrics: Sequence[str] = PRIMARY) -> pd.DataFrame:
    """The second claim, "the gap grows as labels shrink": per other initialisation and metric,
    the per-seed gap (self-supervised minus other) at the smallest fraction minus the gap at
    100%, its mean and interval over seeds, and the verdict (claim "above": a larger gap with
    fewer labels)."""
    fr = sorted(runs["fraction"].unique())
    small, full = fr[0], fr[-1]
    out = []
    for other in [i for i in INITS if i != SSL]:
        for m in metrics:
            gaps = {}
            for f in (small, full):
                g = runs[runs["fraction"] == f]
                a = g[g["init"] == SSL].set_index("seed")
                b = g[g["init"] == other].set_index("seed")
                gaps[f] = _oriented(a, m) - _oriented(b, m)
            d = (gaps[small] - gaps[full]).dropna().to_numpy(float)
            mean, lo, hi = stats.mean_ci(d)
            found = stats.verdict(lo, hi, len(d))
            out.append({"other": other, "metric": m, "from": _pct(full), "to": _pct(small),
                        "seeds": len(d), "growth": mean, "growth lo": lo, "growth hi": hi,
                        "found": found, "claim": stats.claim_verdict("above", found)})  # fmt: skip
    return pd.DataFrame(out)


def paper_pattern() -> pd.DataFrame:
    """What the paper's own Table 3 shows for the same two claims: per fraction and metric of
    :data:`PRIMARY`, the self-supervised row minus the random and the vggface rows."""
    p = paper_table(PAPER_TABLE)
    out = []
    for f, g in p.groupby("data_amount", sort=False):
        ours = g[g["init"] == PAPER_ROW[SSL]].iloc[0]
        for other in [i for i in INITS if i != SSL]:
            theirs = g[g["init"] == PAPER_ROW[other]].iloc[0]
            for m in PRIMARY:
                out.append({"data amount": f, "other": PAPER_ROW[other], "metric": m,
                            "paper diff": float(ours[m]) - float(theirs[m])})  # fmt: skip
    return pd.DataFrame(out)


def claims(verdict_table: pd.DataFrame, growth: pd.DataFrame, floors_: pd.DataFrame) -> list[str]:
    """The computed statements: how many runs' metrics sit at a floor, then each claim with the
    count of cases that hold / fail / decide nothing."""
    n_floor = int(floors_["at_floor"].sum())
    lines = [
        f"Label-blind floors: {n_floor} of {len(floors_)} (fraction, initialisation, metric) "
        "intervals reach the floor of their metric (majority class; CCC 0)."
    ]
    for other, g in verdict_table.groupby("b", sort=False):
        counts = g["claim"].value_counts().to_dict()
        detail = "; ".join(
            f"{_pct(r['fraction'])} {r['metric']}: {r['claim']} "
            f"({r['diff']:+.3f} [{r['diff lo']:+.3f}, {r['diff hi']:+.3f}])"
            for _, r in g.iterrows()
        )
        lines.append(
            f"Claim 'self-supervised >= {other}' (every fraction): "
            f"{', '.join(f'{k} {v}' for k, v in counts.items())} of {len(g)} cases. {detail}"
        )
    for other, g in growth.groupby("other", sort=False):
        detail = "; ".join(
            f"{r['metric']}: {r['claim']} ({r['growth']:+.3f} [{r['growth lo']:+.3f}, "
            f"{r['growth hi']:+.3f}])"
            for _, r in g.iterrows()
        )
        lines.append(
            f"Claim 'the gap over {other} grows from {g['from'].iloc[0]} to {g['to'].iloc[0]} "
            f"of the labels': {detail}"
        )
    return lines


def plot_fractions(summary: pd.DataFrame, floor: Mapping[float, Mapping[str, float]]):
    """Each metric against the label fraction (log axis), one line per initialisation with its
    95% interval, the label-blind floor dotted, the paper's rows dashed and faint."""
    import matplotlib.pyplot as plt  # deferred: plotting is only for the report

    paper = paper_table(PAPER_TABLE)
    paper = paper.assign(fraction=paper["data_amount"].str.rstrip("%").astype(float) / 100)
    fig, axes = plt.subplots(2, 5, figsize=(17, 6.5), constrained_layout=True)
    colours = dict(zip(INITS, ("tab:grey", "tab:blue", "tab:red"), strict=True))
    fr = sorted(summary["fraction"].unique())
    for ax, m in zip(axes.flat, METRICS, strict=False):
        for init, g in summary.groupby("init", sort=False):
            g = g.sort_values("fraction")
            c = colours.get(init, "k")
            ax.plot(g["fraction"], g[m], "o-", color=c, label=f"{init} (ours)")
            ax.fill_between(g["fraction"], g[f"{m} lo"], g[f"{m} hi"], color=c, alpha=0.15)
            p = paper[paper["init"] == PAPER_ROW[init]].sort_values("fraction")
            ax.plot(p["fraction"], p[m], "--", color=c, alpha=0.5, label=f"{init} (paper)")
        ax.plot(fr, [floor[f][m] for f in fr], ":", color="k", label="label-blind floor")
        ax.set_xscale("log")
        ax.set_xticks(fr, [_pct(f) for f in fr])
        ax.set_title(m.replace("_", " ") + (" (lower better)" if m in LOWER_BETTER else ""))
        ax.set_xlabel("training labels")
    axes.flat[-1].axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    axes.flat[-1].legend(handles, labels, loc="center", fontsize=9)
    fig.suptitle("Fine-tuning from each initialisation against the share of training labels")
    return fig


def not_run_rows() -> pd.DataFrame:
    """The initialisations of the paper's Table 3 that are not run here, and why."""
    return pd.DataFrame([{"init": k, "why": v} for k, v in NOT_RUN.items()])


def floors_table(floor: Mapping[float, Mapping[str, float]]) -> pd.DataFrame:
    """The label-blind floors per fraction, one column per metric."""
    return pd.DataFrame([{"fraction": f, **{m: floor[f][m] for m in METRICS}} for f in floor])


def at_floor_share(floors_: pd.DataFrame) -> float:
    """Share of (fraction, init, metric) intervals at their floor."""
    return float(np.mean(floors_["at_floor"])) if len(floors_) else float("nan")


def pretraining_table(weights: Mapping[str, str | None], read_record) -> pd.DataFrame:
    """One row per initialisation: its pretraining source, epochs, training images, recorded wall
    time (s) and its own validation numbers, from the cache's record (``read_record``:
    :func:`affectlib.pretraining.read_record`); random and a user's file have none."""
    out = []
    for init, path in weights.items():
        rec = read_record(path) if path else {}
        m = rec.get("metrics", {})
        out.append({
            "init": init,
            "source": rec.get("settings", {}).get("source", "none" if path is None else "file"),
            "epochs": rec.get("settings", {}).get("epochs"),
            "train images": m.get("train_images"),
            "pretraining wall s": rec.get("wall_time_s"),
            "labels used": init != SSL and path is not None,
        })  # fmt: skip
    return pd.DataFrame(out)


# --- Table 1: AU intensity (DISFA) ----------------------------------------------------------------
TABLE1 = "bulat_table1_disfa_au_intensity"
ICC_COLUMNS = ("icc", *(f"icc_{c}" for c in DISFA_AU_COLUMNS))


def table1(au_runs: pd.DataFrame, fraction: float) -> pd.DataFrame:
    """Table 1's layout: per initialisation, mean [95% interval] over seeds of the test ICC(3,1)
    of each AU and their mean (``avg``), beside the paper's rows (``source = paper``: every method
    of its table, on DISFA)."""
    s = stats.summarize_runs(au_runs, "init", ICC_COLUMNS)
    out = []
    for _, r in s.iterrows():
        row = {"method": r["init"], "data amount": _pct(fraction), "source": "ours"}
        for c in ICC_COLUMNS:
            name = "avg" if c == "icc" else c.removeprefix("icc_")
            row[name] = stats.format_ci(r[c], r[f"{c} lo"], r[f"{c} hi"])
        out.append(row)
    paper = paper_table(TABLE1)
    for _, p in paper.iterrows():
        row = {"method": p["method"], "data amount": p["data_amount"], "source": "paper"}
        for c in ICC_COLUMNS:
            name = "avg" if c == "icc" else c.removeprefix("icc_")
            row[name] = f"{float(p[name]):.3f}"
        out.append(row)
    return pd.DataFrame(out)


def au_verdicts(au_runs: pd.DataFrame) -> pd.DataFrame:
    """Self-supervised minus each other initialisation on the mean test ICC, paired by seed;
    untestable when either side's interval reaches 0 (the ICC of a label-blind constant)."""
    out = []
    a = au_runs[au_runs["init"] == SSL].set_index("seed")["icc"]
    lo_a = stats.mean_ci(a)[1]
    for other in [i for i in dict.fromkeys(au_runs["init"]) if i != SSL]:
        b = au_runs[au_runs["init"] == other].set_index("seed")["icc"]
        seeds = sorted(set(a.index) & set(b.index))
        mean, lo, hi = stats.mean_ci((a.loc[seeds] - b.loc[seeds]).to_numpy(float))
        floor = stats.reaches_floor(lo_a, 0.0) or stats.reaches_floor(stats.mean_ci(b)[1], 0.0)
        found = stats.verdict(lo, hi, len(seeds), at_floor=floor)
        out.append({"a": SSL, "b": other, "metric": "mean ICC(3,1)", "seeds": len(seeds),
                    "diff": mean, "diff lo": lo, "diff hi": hi, "found": found,
                    "claim": stats.claim_verdict("above", found)})  # fmt: skip
    return pd.DataFrame(out)


def au_claim_lines(au_claims: pd.DataFrame) -> list[str]:
    """One sentence per row of :func:`au_verdicts`."""
    return [
        f"Claim 'self-supervised >= {r['b']}' on AU intensity (mean ICC(3,1)): {r['claim']} "
        f"({r['diff']:+.3f} [{r['diff lo']:+.3f}, {r['diff hi']:+.3f}])"
        for _, r in au_claims.iterrows()
    ]
