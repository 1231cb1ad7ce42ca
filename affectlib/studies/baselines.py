"""The label-blind baselines shown as rows of the study tables of notebooks 03 and 04: what a
predictor that never looks at the face scores on the same rows as the methods.

- notebook 03 (SS-MFAR Table 1): :func:`with_baselines` appends the rows of
  :func:`affectlib.data.difficulty.baseline_scores` (with :func:`with_probe`, the read-out probe's)
  and the paper's own baseline row;
  :func:`au_every_on`, each AU's F1 when it is called on for every face (a line on the per-AU
  figure);
- notebook 04 (Kollias Tables 2 and 3): :func:`kollias_baselines` scores chance, the majority class
  with no AU and with every AU on, by the study's own metrics; :func:`kollias_floor` finds the
  rows that did not leave the floor (a collapsed run, or an interval reaching chance), whose
  comparisons are untestable, and :func:`kollias_floor_sentence` counts them;
  :func:`kollias_collapse_sentences` names the class of every row whose runs all predict one.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from affectlib import metrics, stats
from affectlib.labels import AU_COLUMNS, AU_MISSING, EXPR_MISSING, EXPRESSIONS
from affectlib.studies.kollias import (
    ARMS,
    BASIC,
    N_BASIC,
    PRIMARY_AE,
    PRIMARY_AW,
    SCORE_NAMES,
    Setting,
    study_scores,
)
from affectlib.studies.ssmfar import PAPER_BASELINE, SCORES, paper_table1


def with_baselines(table: pd.DataFrame, baselines: pd.DataFrame | None) -> pd.DataFrame:
    """:func:`affectlib.studies.ssmfar_report.table1` with the baselines as rows below the methods
    (``method`` = "baseline"): the label-blind ``baselines``
    (:func:`affectlib.data.difficulty.baseline_scores`; None on real data) scored on our split, one
    value each and no interval, then the paper's own baseline row (the ABAW challenge baseline,
    overall 0.30 in SS-MFAR Table 1), which we do not train: its ``paper:`` values only."""
    paper = paper_table1().set_index("row")
    rows = []
    for b in [] if baselines is None else baselines.to_dict("records"):
        r = {"method": "baseline", "row": b["baseline"], "n": np.nan}
        for m in SCORES:
            r |= {m: b[m], f"{m} lo": np.nan, f"{m} hi": np.nan}
            r |= {f"paper: {m}": np.nan, f"delta: {m}": np.nan}
        rows.append(r)
    if PAPER_BASELINE in paper.index:
        r = {"method": "baseline", "row": "ABAW baseline (paper's; not run)", "n": np.nan}
        for m in SCORES:
            published = pd.to_numeric(paper.loc[PAPER_BASELINE].get(m), errors="coerce")
            r |= {m: np.nan, f"{m} lo": np.nan, f"{m} hi": np.nan}
            r |= {f"paper: {m}": published, f"delta: {m}": np.nan}
        rows.append(r)
    return pd.concat([table, pd.DataFrame(rows, columns=table.columns)], ignore_index=True)


PROBE_ROW = "HOG read-out probe (notebook 01)"


def with_probe(baselines: pd.DataFrame | None, probe: pd.DataFrame) -> pd.DataFrame | None:
    """``baselines`` (:func:`affectlib.data.difficulty.baseline_scores`) with the read-out probe's
    row (:data:`PROBE_ROW`): the ``probe`` scores of
    :func:`affectlib.data.difficulty.readout_probe` on the same split for ``expr_f1``, ``au_f1`` and
    ``va``. Its ``overall`` is left empty: the probe fits each task on its own, so it has no joint
    score (as in notebook 01's learnability table). None (real data) stays None."""
    if baselines is None:
        return None
    score = probe.set_index("measure")["probe"]
    row = {"baseline": PROBE_ROW} | {m: float(score.get(m, np.nan)) for m in SCORES}
    row["overall"] = np.nan
    return pd.concat([baselines, pd.DataFrame([row])], ignore_index=True)


def au_every_on(truth: pd.DataFrame, split: str) -> dict[str, float]:
    """Each AU's F1 on ``split`` of the embedded truth table
    (:func:`affectlib.data.difficulty.load_truth`) when it is called on for every face: 2 P / (N + P)
    over its labelled rows, the highest F1 a label-blind guess of that AU reaches."""
    au = truth.loc[truth["split"] == split, list(AU_COLUMNS)].to_numpy()
    f1 = metrics.per_au_f1(au, np.ones_like(au))  # unlabelled (-1) entries skipped per AU
    return dict(zip(AU_COLUMNS, map(float, f1), strict=True))


KOLLIAS_BASELINES = (
    "label-blind chance",
    "majority class, no AU",
    "majority class, every AU",
)


def kollias_baselines(setting: Setting, draws: int = 20) -> pd.DataFrame:
    """Label-blind predictors scored by :func:`affectlib.studies.kollias.study_scores` on the rows
    the runs are reported on (every part's held-out test rows; the validation rows when no part has
    test rows, as :func:`affectlib.data.assembly.build_multi_data` reports then), fitted on the
    setting's multi-task training rows: one row per :data:`KOLLIAS_BASELINES`, the scores as
    fractions.

    ``label-blind chance``: each image's class drawn from the training class prior and each AU
    drawn present at its training base rate, the mean of ``draws`` seeded draws; ``majority
    class, no AU``: the most frequent training class and no AU present (AU F1 0); ``majority
    class, every AU``: the same class and every AU present (AU F1 then equals the F1 of
    predicting each AU everywhere)."""
    cols = list(setting.au_columns)
    train = pd.concat([p.train for p in setting.parts], ignore_index=True)
    tests = [p.test for p in setting.parts if p.test is not None and len(p.test)]
    test = pd.concat(tests or [p.validation for p in setting.parts], ignore_index=True)
    e = train["expr"].fillna(EXPR_MISSING).to_numpy(dtype=int)
    prior = np.bincount(e[e != EXPR_MISSING], minlength=N_BASIC).astype(float)
    prior /= max(prior.sum(), 1.0)
    a = np.array(train.reindex(columns=cols), dtype=float)  # a copy: missing labels -> NaN
    a[a == AU_MISSING] = np.nan
    rate = np.nan_to_num(np.nanmean(a, axis=0)) if np.isfinite(a).any() else np.zeros(len(cols))
    # a part without a task's columns (an expression-only set's AUs) is unlabelled there
    truth = {
        "expr_true": test["expr"].fillna(EXPR_MISSING).to_numpy(dtype=int),
        "au_true": test.reindex(columns=cols).fillna(AU_MISSING).to_numpy(dtype=int),
    }
    n = len(test)

    def scored(expr: np.ndarray, au: np.ndarray) -> dict[str, float]:
        return study_scores(truth | {"expr_prob": np.eye(N_BASIC)[expr], "au_prob": au})

    majority = np.full(n, int(prior.argmax()))
    rng = np.random.default_rng(0)
    drawn = [
        scored(
            rng.choice(N_BASIC, n, p=prior) if prior.sum() else majority,
            (rng.random((n, len(cols))) < rate).astype(float),
        )
        for _ in range(draws)
    ]
    rows = {
        KOLLIAS_BASELINES[0]: pd.DataFrame(drawn).mean().to_dict(),
        KOLLIAS_BASELINES[1]: scored(majority, np.zeros((n, len(cols)))),
        KOLLIAS_BASELINES[2]: scored(majority, np.ones((n, len(cols)))),
    }
    return pd.DataFrame([{"baseline": k} | {m: v[m] for m in SCORE_NAMES} for k, v in rows.items()])


# --- the floors of notebook 04 --------------------------------------------------------------------
# the paper's metrics (expression, AU) per data setting of notebook 04
PRIMARY = {"affectnet+emotionet": PRIMARY_AE, "affwild2": PRIMARY_AW}


# a run giving one expression to at least this share of the images predicts a constant
CONSTANT_SHARE = 0.99


def kollias_floor(
    runs: pd.DataFrame,
    n_classes: int = N_BASIC,
    tol: float = 0.005,
    chance: Mapping[str, pd.DataFrame] | None = None,
    share: float = CONSTANT_SHARE,
) -> pd.DataFrame:
    """Rows that did not leave the floor of a label-blind predictor, per (setting, backbone, arm).

    ``expr_floor``: runs whose expression average accuracy (mean per-class recall) is within
    ``tol`` of 1 / ``n_classes``, what any constant prediction gets on a split with every class,
    or (where ``runs`` has ``expr_top_share``) that give one class to at least ``share`` of the
    images, a constant prediction on any split (on a split missing some classes its average
    accuracy is 1 / the classes present); ``au_floor``: runs with AU F1 0, i.e. no AU predicted
    present on any image (or none right); ``runs``: runs of the row.
    Given ``chance`` (setting -> :func:`affectlib.studies.baselines.kollias_baselines`),
    ``expr_at_chance`` / ``au_at_chance``: whether the row's 95% interval over seeds on the
    setting's metric of that task (:data:`PRIMARY`) reaches the "label-blind chance" score
    (:func:`affectlib.stats.reaches_floor`), as notebook 03 judges its rows. A comparison with a
    row at either floor compares nothing learnt.

    Where ``runs`` has :data:`affectlib.studies.kollias.COLLAPSE_NAMES` (the diagnosis, not a
    floor): ``top_class``, the expression the row's runs most often predict most (its name), and
    ``top_share``, the mean over runs of the share of images each run gives its most predicted
    class (1: every run predicts one class for every image)."""
    constant = (runs["expr_aa"] - 1.0 / n_classes).abs() <= tol
    if "expr_top_share" in runs:
        constant |= runs["expr_top_share"] >= share
    r = runs.assign(expr_floor=constant, au_floor=runs["au_f1"] <= 0.0)
    g = r.groupby(["setting", "backbone", "arm"], sort=False)
    out = g.agg(
        runs=("seed", "size"), expr_floor=("expr_floor", "sum"), au_floor=("au_floor", "sum")
    ).reset_index()
    if "expr_top" in runs and "expr_top_share" in runs:
        out["top_class"] = [_modal_class(grp["expr_top"]) for _, grp in g]
        out["top_share"] = g["expr_top_share"].mean().to_numpy()
    if chance is None:
        return out
    for i, task in enumerate(("expr", "au")):
        out[f"{task}_at_chance"] = [
            stats.reaches_floor(
                100 * stats.mean_ci(grp[PRIMARY[key[0]][i]])[1],
                _chance_level(chance, key[0], PRIMARY[key[0]][i]),
            )
            for key, grp in g
        ]
    return out


def _modal_class(top: pd.Series) -> str:
    """The expression (ABAW name) most runs predict most; ties: the lower index; "" for none."""
    modes = top.dropna().astype(int).mode()  # sorted: a tie gives the lower index first
    return "" if modes.empty else EXPRESSIONS[int(modes.iloc[0])]


def _chance_level(chance: Mapping[str, pd.DataFrame], setting: str, metric: str) -> float:
    """The "label-blind chance" score of ``metric`` on ``setting`` in percent (-inf when the
    setting has no baselines, so no interval reaches it)."""
    if setting not in chance:
        return -np.inf
    row = chance[setting].set_index("baseline").loc[KOLLIAS_BASELINES[0]]
    return 100 * float(row[metric])


def kollias_floor_sentence(floor: pd.DataFrame, share: float = CONSTANT_SHARE) -> str:
    """Sentences counting the runs of :func:`kollias_floor` (called with ``share``) at either floor
    and, when it judged them, the rows whose interval reaches label-blind chance."""
    n, e, a = int(floor["runs"].sum()), int(floor["expr_floor"].sum()), int(floor["au_floor"].sum())
    if e == 0 and a == 0:
        text = f"All {n} runs left both floors (no constant expression, some AU predicted)."
    else:
        text = (
            f"Of {n} runs, {e} are at the expression floor (average accuracy at 1/{N_BASIC}, what a "
            f"constant prediction gets, or one class for at least {share:.0%} of the images) and "
            f"{a} predict no AU present on any image of the reported split (AU F1 0): those runs "
            "learnt nothing, and every comparison with them is untestable."
        )
    if "expr_at_chance" not in floor:
        return text
    rows, ec, ac = len(floor), int(floor["expr_at_chance"].sum()), int(floor["au_at_chance"].sum())
    return text + (
        f" Of {rows} rows, {ec} have an expression interval and {ac} an AU interval that reaches "
        "label-blind chance (the baseline row of Tables 2 and 3) on the paper's metric: their "
        "comparisons on that task are untestable too."
    )


_BASIC_NAMES = [EXPRESSIONS[c] for c in BASIC]  # the 7 basic expressions' names, by index


def kollias_collapse_sentences(
    floor: pd.DataFrame, related: Mapping[str, pd.DataFrame]
) -> list[str]:
    """One sentence per row of :func:`kollias_floor` whose every run sits at the expression floor:
    the class its runs predict (``top_class``, ``top_share``) and, for a row whose distribution
    matching (Eq. 3) couples with a relatedness, how many AUs that relatedness relates to each
    basic class (``related``: setting -> :func:`affectlib.studies.kollias_report.relatedness_long`
    on that setting's AUs; pairs with relation 1), since that term moves expression mass towards the
    classes related to many predicted AUs (notebook 04, section 4). Empty when no row collapsed."""
    out = []
    whole = floor[(floor["expr_floor"] == floor["runs"]) & (floor["runs"] > 0)]
    for _, r in whole.iterrows():
        top = r.get("top_class", "")
        text = (
            f"{r['arm']} ({r['setting']}, {r['backbone']}): all {r['runs']} runs predict one class"
        )
        if top:
            text += f", {top} for {r['top_share']:.0%} of the images on average"
        options = ARMS.get(r["arm"], ("", {}))[1]
        source = options.get("relatedness")
        if (
            options.get("dm")
            and source is not None
            and top in _BASIC_NAMES
            and r["setting"] in related
        ):
            pairs = related[r["setting"]]
            pairs = pairs[(pairs["relatedness"] == source) & (pairs["relation"] > 0)]
            n = pairs.groupby("expression")["au"].nunique().reindex(_BASIC_NAMES, fill_value=0)
            more, tied = int((n > n[top]).sum()), int((n == n[top]).sum()) - 1
            place = (
                (f"{more} classes are" if more > 1 else "1 class is") + " related to more"
                if more
                else ("as many as any class" if tied else "the most of any class")
            )
            others = n.drop(top).sort_values(ascending=False, kind="stable")
            text += (
                f"; the {source} relatedness relates {top} to {n[top]} AUs, {place} ("
                + ", ".join(f"{c} {k}" for c, k in others.items())
                + "), and the distribution-matching term moves expression mass towards the "
                "classes related to many predicted AUs (section 4)"
            )
        out.append(text + ".")
    return out
