"""Notebook 02's study: how well the relatedness of :mod:`affectlib.relatedness` is recovered.

Where the truth is known (the embedded data set keeps its labels before noise), :func:`recovery`,
:func:`recovery_summary` and :func:`convergence` measure how far an estimate is from it, and
:func:`annotation_noise` how far the annotations are from the true labels; :func:`domain_vs_affwild2`
sets the paper's two sources side by side (Kollias et al. 2024, Table 1).
:mod:`affectlib.studies.task_relatedness_report` words them (``*_sentences``) and draws them
(``plot_*``).

Label convention: as :mod:`affectlib.relatedness`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from affectlib.data.table import au_number
from affectlib.labels import ABAW_AUS, AU_MISSING, EXPR_MISSING, EXPRESSIONS, N_EXPR, expr_index
from affectlib.relatedness import (
    au_columns_in,
    cell_counts,
    check_attributes,
    check_expressions,
    domain_table,
)

# --- recovery of a known truth -------------------------------------------------------------------

# Measured on 30 draws of the cpu profile's embedded data: with at least 25 images on each side of a
# cell the video-bootstrap interval covered the generator's truth in 94% of cells; with 10 or fewer
# on one side, in 33% (a percentile interval of a rate collapses when its events are few).
WELL_SUPPORTED_MIN = 25


def true_label_table(truth: pd.DataFrame) -> pd.DataFrame:
    """The annotation-table form of a table holding the truth: ``true_<col>`` replaces ``<col>``.

    The embedded generator keeps, beside each annotated label, the label before noise and
    missingness (``true_expr``, ``true_AU<n>``; ``truth/affwild2.csv.gz``). Every ``true_``
    column becomes the column it shadows (added when absent); other columns are kept as they are.
    """
    true_cols = [c for c in truth.columns if str(c).startswith("true_")]
    if "true_expr" not in true_cols:
        raise KeyError("truth table has no 'true_expr' column; is it the generator's truth file?")
    out = truth.drop(columns=[c[len("true_") :] for c in true_cols if c[5:] in truth.columns])
    return out.rename(columns={c: c[len("true_") :] for c in true_cols})


def recovery(
    long: pd.DataFrame, truth: pd.DataFrame, *, min_each: int = WELL_SUPPORTED_MIN
) -> pd.DataFrame:
    """An estimate of :func:`empirical` beside a known ``p(AU | expression)``.

    ``truth``: rows = expression names, columns ``AU<n>`` (the generator's
    ``truth/p_au_given_expr.csv``). Adds ``truth``, ``error = p - truth``, ``covered`` (``lo <=
    truth <= hi``, when the estimate has an interval) and ``well_supported``
    (:func:`well_supported`). An expression or AU absent from ``truth`` gets NaN truth and error,
    ``covered = False``; an empty cell (``p`` NaN) is neither covered nor well supported.
    """
    for name in ("expression", "au", "p", "n_expr", "n_both"):
        if name not in long.columns:
            raise KeyError(f"estimate has no column {name!r}; pass the output of empirical()")
    table = truth.rename(index=lambda e: expr_index(e) if isinstance(e, str) else int(e))
    table = table.rename(columns=lambda c: au_number(str(c)))
    rows = table.index.get_indexer(long["expression"])
    cols = table.columns.get_indexer(long["au"])
    values = table.to_numpy(dtype=float)
    known = (rows >= 0) & (cols >= 0)
    true_p = np.full(len(long), np.nan)
    true_p[known] = values[rows[known], cols[known]]
    out = long.copy()
    out["truth"] = true_p
    out["error"] = out["p"] - true_p
    if {"lo", "hi"} <= set(long.columns):
        out["covered"] = (out["lo"] <= true_p) & (true_p <= out["hi"])
    out["well_supported"] = well_supported(long, min_each)
    return out


def well_supported(long: pd.DataFrame, min_each: int = WELL_SUPPORTED_MIN) -> pd.Series:
    """Cells of an estimate with at least ``min_each`` counted images with the AU active and as
    many with it inactive (``n_both`` and ``n_expr - n_both``); their intervals can be trusted."""
    if min_each < 1:
        raise ValueError(f"min_each must be >= 1, got {min_each}")
    return (long["n_both"] >= min_each) & (long["n_expr"] - long["n_both"] >= min_each)


def recovery_summary(estimates: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per estimate (outputs of :func:`recovery`): how well it recovers the truth.

    ``cells`` = cells with an estimate (``n_expr > 0``) and a known truth; ``mae`` = mean
    ``|p - truth|`` over them, ``bias`` = mean ``p - truth``, ``coverage`` = share whose interval
    holds the truth; the ``*_well_supported`` columns restrict each to well-supported cells. NaN
    (not 0) when a set of cells is empty.
    """
    rows = []
    for name, rec in estimates.items():
        cells = rec[(rec["n_expr"] > 0) & rec["truth"].notna()]
        good = cells[cells["well_supported"]]
        row = {"estimate": name, "cells": len(cells), "cells_well_supported": len(good)}
        for suffix, part in (("", cells), ("_well_supported", good)):
            row[f"mae{suffix}"] = _mean(part["error"].abs())
            row[f"bias{suffix}"] = _mean(part["error"])
            covered = part["covered"] if "covered" in part.columns else pd.Series(dtype=float)
            row[f"coverage{suffix}"] = _mean(covered.astype(float))
        rows.append(row)
    return pd.DataFrame(rows)


def annotation_noise(truth: pd.DataFrame, au_columns: Sequence[str] | None = None) -> pd.DataFrame:
    """How the annotated labels of a truth table differ from the true ones, per task.

    Rows: ``expr`` (``disagree`` = share of expression-labelled images whose annotated class is not
    the true one), then each AU: ``missed`` = share of truly active AUs annotated inactive,
    ``false_active`` = share of truly inactive AUs annotated active; ``images`` = labelled images
    the share is over. Unlabelled images (``-1``) are left out. NaN where nothing was counted.
    """
    au_columns = au_columns_in(truth, au_columns)
    missing = [f"true_{c}" for c in ["expr", *au_columns] if f"true_{c}" not in truth.columns]
    if missing:
        raise KeyError(f"truth table lacks columns {missing}")
    expr = truth["expr"].to_numpy()
    labelled = expr != EXPR_MISSING
    rows = [
        {
            "label": "expr",
            "images": int(labelled.sum()),
            "disagree": _mean(pd.Series(expr[labelled] != truth["true_expr"].to_numpy()[labelled])),
        }
    ]
    for col in au_columns:
        ann, true = truth[col].to_numpy(), truth[f"true_{col}"].to_numpy()
        has = ann != AU_MISSING
        on, off = has & (true == 1), has & (true == 0)
        rows.append(
            {
                "label": col,
                "images": int(has.sum()),
                "missed": _mean(pd.Series(ann[on] == 0)),
                "false_active": _mean(pd.Series(ann[off] == 1)),
            }
        )
    return pd.DataFrame(rows, columns=["label", "images", "disagree", "missed", "false_active"])


def convergence(
    annotations: pd.DataFrame,
    truth: pd.DataFrame,
    fractions: Sequence[float],
    repeats: int,
    *,
    group_column: str = "video",
    seed: int = 0,
    min_each: int = WELL_SUPPORTED_MIN,
) -> pd.DataFrame:
    """Error of the empirical rates against ``truth`` as whole videos are subsampled.

    For each fraction f, ``repeats`` draws of ``round(f * V)`` of the V videos (at least one; once
    when all videos are drawn), without replacement: frames of a video are not independent, so a
    user with less data has fewer videos, not fewer frames of each. One row per draw: ``fraction``,
    ``repeat``, ``videos``, ``images`` (images counted by :func:`empirical`: an expression and an AU
    label), ``cells`` (cells with an estimate), ``cells_well_supported``, ``mae`` (mean ``|p -
    truth|`` over estimated cells) and ``mae_well_supported``.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if not all(0.0 < f <= 1.0 for f in fractions):
        raise ValueError(f"fractions must lie in (0, 1], got {list(fractions)}")
    videos = pd.unique(annotations[group_column])
    rng = np.random.default_rng(seed)
    rows = []
    for fraction in fractions:
        k = max(1, int(round(fraction * len(videos))))
        for repeat in range(repeats if k < len(videos) else 1):
            chosen = rng.choice(videos, size=k, replace=False)
            part = annotations[annotations[group_column].isin(chosen)]
            rec = recovery(_point_estimate(part), truth, min_each=min_each)
            cells = rec[rec["n_expr"] > 0]
            summary = recovery_summary({"draw": rec}).iloc[0]
            rows.append(
                {
                    "fraction": float(fraction),
                    "repeat": repeat,
                    "videos": k,
                    "images": _counted_images(part),
                    "cells": len(cells),
                    "cells_well_supported": int(cells["well_supported"].sum()),
                    "mae": summary["mae"],
                    "mae_well_supported": summary["mae_well_supported"],
                }
            )
    return pd.DataFrame(rows)


def domain_vs_affwild2(annotated_aus: Sequence[int] = ABAW_AUS) -> pd.DataFrame:
    """Where the paper's Aff-Wild2 column differs from the domain table, pair by pair.

    One row per (expression, AU) listed by either source of Kollias Table 1: ``domain`` (the kind,
    prototypical / observational, or ``""``), ``domain_weight``, ``affwild2_rate`` (the paper's
    number, NaN when not listed), ``au_annotated`` (the AU is among ``annotated_aus``, Aff-Wild2's
    12) and ``status``: ``both``, ``affwild2 only``, ``domain only``, or ``domain only (not
    annotated)`` when Aff-Wild2 could not have listed it.
    """
    dom = domain_table("domain").rename(columns={"kind": "domain", "weight": "domain_weight"})
    aw2 = domain_table("affwild2")[["expression", "au", "weight"]]
    pairs = dom.drop(columns="expression_name").merge(
        aw2.rename(columns={"weight": "affwild2_rate"}), on=["expression", "au"], how="outer"
    )
    pairs["domain"] = pairs["domain"].fillna("")
    pairs["au_annotated"] = pairs["au"].isin(list(annotated_aus))
    in_dom, in_aw2 = pairs["domain"] != "", pairs["affwild2_rate"].notna()
    pairs["status"] = np.select(
        [in_dom & in_aw2, in_aw2, pairs["au_annotated"]],
        ["both", "affwild2 only", "domain only"],
        "domain only (not annotated)",
    )
    pairs.insert(1, "expression_name", pairs["expression"].map(lambda i: EXPRESSIONS[i]))
    # expressions in the paper's order, AUs ascending within each
    order = {code: i for i, code in enumerate(dom["expression"].unique())}
    pairs = pairs.assign(_order=pairs["expression"].map(order)).sort_values(["_order", "au"])
    pairs = pairs.drop(columns="_order")
    return pairs.reset_index(drop=True)


def _mean(values: pd.Series) -> float:
    """Mean of a series, NaN (without a warning) when it is empty."""
    values = pd.Series(values, dtype=float).dropna()
    return float(values.mean()) if len(values) else float("nan")


def _point_estimate(annotations: pd.DataFrame) -> pd.DataFrame:
    """:func:`empirical`'s counts and rates for all ABAW expressions, without an interval."""
    aus = au_columns_in(annotations, None)
    att = check_attributes(annotations[aus].to_numpy(), len(annotations), aus)
    cls = annotations["expr"].to_numpy()
    check_expressions(cls)
    keep = (cls != EXPR_MISSING) & (att != AU_MISSING).any(axis=1)
    labelled, active = att[keep] != AU_MISSING, att[keep] == 1
    n_expr, n_both = cell_counts(cls[keep], labelled, active, N_EXPR)
    p = np.divide(n_both, n_expr, out=np.full(n_expr.shape, np.nan), where=n_expr > 0)
    return pd.DataFrame(
        {
            "expression": np.repeat(np.arange(N_EXPR), len(aus)),
            "au": np.tile([au_number(c) for c in aus], N_EXPR),
            "n_expr": n_expr.ravel().astype(np.int64),
            "n_both": n_both.ravel().astype(np.int64),
            "p": p.ravel(),
        }
    )


def _counted_images(annotations: pd.DataFrame) -> int:
    """Images :func:`empirical` counts: an expression label and at least one AU label."""
    aus = au_columns_in(annotations, None)
    has_au = (annotations[aus].to_numpy() != AU_MISSING).any(axis=1)
    return int(((annotations["expr"].to_numpy() != EXPR_MISSING) & has_au).sum())
