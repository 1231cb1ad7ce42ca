"""Relatedness between a classification task and a set of binary attributes.

Kollias et al., "Distribution Matching for Multi-Task Learning of Classification Tasks" (section
"Task-Relatedness" and Table 1) couple expressions and action units (AUs) through two matrices:

- the relation ``p(y_au^i | y_exp)`` of Eq. 2, 1 when AU ``i`` is related to the expression, else 0;
- the weights ``w_au^i`` of Eq. 4: 1 for a prototypical AU, the fraction of annotators for an
  observational one, 0 otherwise.

Relatedness comes either from domain knowledge (Du, Tao & Martinez 2014, the paper's Table 1,
stored in ``reference/kollias_table1_relatedness.csv``) or empirically from annotations carrying
both labels (the paper's Aff-Wild2 column and, for Case II "beyond faces", ``p(y_att^i | y_cls)``
= images with both / images with the class). The empirical route works for any classes x attributes
problem (:func:`empirical_cooccurrence`); :func:`empirical` is its expression/AU form on the
annotation table.

How far an estimate is from a known truth (the embedded data set's labels before noise) is
notebook 02's study, :mod:`affectlib.studies.task_relatedness`.

Label convention: classes are ABAW expression indices (``labels.EXPRESSIONS``), ``-1`` = no label;
attributes are 1 (active) / 0 (inactive) / ``-1`` (no label).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from affectlib.data.table import au_columns_of, au_number
from affectlib.labels import AU_MISSING, EXPR_MISSING, EXPRESSIONS, N_EXPR, expr_index

REFERENCE_CSV = Path(__file__).parent / "reference" / "kollias_table1_relatedness.csv"
SOURCES = ("domain", "affwild2")
RULES = ("threshold", "lift", "threshold_and_lift")
# the interval rule's rate: the smallest in the paper's Aff-Wild2 column but its two AU7 entries
DEFAULT_THRESHOLD = 0.3
# generic long-form names <- expression/AU names
_TO_GENERIC = {"expression": "class", "au": "attribute", "n_expr": "n_class"}


# --- domain knowledge ----------------------------------------------------------------------------


def domain_table(source: str = "domain") -> pd.DataFrame:
    """Kollias Table 1 rows of one source, expressions as ABAW indices.

    ``source="domain"``: Du et al. 2014, ``kind`` prototypical (weight 1) or observational (weight =
    fraction of annotators). ``source="affwild2"``: the paper's Aff-Wild2 rates, ``kind`` empirical,
    weight = fraction of images with the AU active. Columns: ``expression`` (ABAW index),
    ``expression_name``, ``au``, ``weight``, ``kind``; rows in the paper's order. AUs outside the
    ABAW set (e.g. 9, 17, 20) are kept: the matrices project onto whichever AUs they are asked for.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown relatedness source {source!r}; expected one of {SOURCES}")
    ref = pd.read_csv(REFERENCE_CSV)
    rows = ref[ref["source"] == source].reset_index(drop=True)
    expression = rows["expression"].map(expr_index).astype(int)
    return pd.DataFrame(
        {
            "expression": expression,
            "expression_name": expression.map(lambda i: EXPRESSIONS[i]),
            "au": rows["au"].astype(int),
            "weight": rows["weight"].astype(float),
            "kind": rows["kind"].astype(str),
        }
    )


# --- empirical co-occurrence ---------------------------------------------------------------------


def empirical_cooccurrence(
    class_labels: np.ndarray,
    attribute_labels: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    classes: Sequence[Hashable] | None = None,
    attributes: Sequence[Hashable] | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    min_support: int = 10,
    class_missing: Hashable = EXPR_MISSING,
) -> pd.DataFrame:
    """``p(att_m | cls_c)`` with a cluster-bootstrap interval, one row per (class, attribute).

    Kollias et al., Case II: ``p(y_att^i | y_cls) = #images with both y_att^i and y_cls / #images
    with y_cls``. Only images carrying both labels count: the class is in ``classes`` and attribute
    ``m`` is not ``-1``. So ``n_class[c, m]`` = images of class c with attribute m labelled,
    ``n_both[c, m]`` = those with attribute m active, ``p = n_both / n_class``.

    Interval: percentile bootstrap (``ci``, ``n_boot`` resamples). With ``groups`` (e.g. videos)
    whole groups are resampled with replacement, since frames of one video are not independent;
    resamples in which a class draws no image are left out of that cell's percentiles. Without
    ``groups`` the images are independent and each cell's (active, inactive, other) counts are
    drawn from the multinomial that a row bootstrap induces, which is that bootstrap's exact
    per-cell distribution.

    ``base_rate[m]`` = active / labelled for attribute m over all counted images (classes pooled).
    ``supported`` = ``n_class >= min_support``. A class without images for an attribute gets
    ``n_class = 0``, ``p = lo = hi = NaN`` and ``supported = False``; it is never dropped.

    Args:
        class_labels: (N,) class of each image; values outside ``classes`` are not counted.
        attribute_labels: (N, M) 1 / 0 / -1 (missing).
        groups: (N,) group id of each image (videos), or None for independent images.
        classes: the classes to report, in order; default the sorted labels but ``class_missing``.
        attributes: names of the M attribute columns; default 0..M-1.
    """
    class_labels = np.asarray(class_labels)
    att = np.asarray(attribute_labels)
    cls_idx, classes = _class_codes(class_labels, classes, class_missing)
    att = check_attributes(att, len(class_labels))
    attributes = list(range(att.shape[1])) if attributes is None else list(attributes)
    if len(attributes) != att.shape[1]:
        raise ValueError(f"{len(attributes)} attribute names for {att.shape[1]} attribute columns")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must lie in (0, 1), got {ci}")

    labelled = att != AU_MISSING  # (N, M)
    # the analysis sample: a counted class and at least one attribute labelled
    keep = (cls_idx >= 0) & labelled.any(axis=1)
    n_classes, n_att = len(classes), att.shape[1]
    cls_idx, labelled, active = cls_idx[keep], labelled[keep], att[keep] == 1

    rng = np.random.default_rng(seed)
    if groups is None:
        n_class, n_both = cell_counts(cls_idx, labelled, active, n_classes)
        boot_class, boot_both = _row_bootstrap(n_class, n_both, int(keep.sum()), n_boot, rng)
    else:
        group_codes = _group_codes(np.asarray(groups), len(class_labels))[keep]
        per_group_class, per_group_both = _group_counts(
            group_codes, cls_idx, labelled, active, n_classes
        )
        n_class, n_both = per_group_class.sum(axis=0), per_group_both.sum(axis=0)
        boot_class, boot_both = _group_bootstrap(per_group_class, per_group_both, n_boot, rng)

    p = np.divide(n_both, n_class, out=np.full(n_class.shape, np.nan), where=n_class > 0)
    lo, hi = _percentiles(boot_class, boot_both, n_class > 0, ci)
    total_labelled, total_active = n_class.sum(axis=0), n_both.sum(axis=0)
    base = np.divide(
        total_active, total_labelled, out=np.full(n_att, np.nan), where=total_labelled > 0
    )
    return pd.DataFrame(
        {
            "class": np.repeat(np.asarray(classes, dtype=object), n_att),
            "attribute": np.tile(np.asarray(attributes, dtype=object), n_classes),
            "n_class": n_class.ravel().astype(np.int64),
            "n_both": n_both.ravel().astype(np.int64),
            "p": p.ravel(),
            "lo": lo.ravel(),
            "hi": hi.ravel(),
            "base_rate": np.tile(base, n_classes),
            "supported": (n_class >= min_support).ravel(),
        }
    ).infer_objects()


def empirical(
    annotations: pd.DataFrame,
    *,
    classes: Iterable[int | str] = range(N_EXPR),
    au_columns: Sequence[str] | None = None,
    expr_column: str = "expr",
    group_column: str | None = "video",
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    min_support: int = 10,
) -> pd.DataFrame:
    """Expression -> AU activation rates of an annotation table (Kollias Table 1, Aff-Wild2 column).

    :func:`empirical_cooccurrence` on the table's ``expr`` column and AU columns, resampling
    ``group_column`` (videos; None treats images as independent). ``classes`` are ABAW indices or
    expression names; ``au_columns`` default to every ``AU<n>`` column in table order.

    Returns one row per (expression, AU): ``expression`` (ABAW index), ``expression_name``, ``au``
    (int), ``n_expr`` (images with the expression and that AU labelled), ``n_both`` (of those, AU
    active), ``p = n_both / n_expr``, ``lo``, ``hi`` (bootstrap interval), ``base_rate`` (the AU's
    rate over all counted images), ``supported`` (``n_expr >= min_support``). An expression without
    images has ``n_expr = 0``, ``p = lo = hi = NaN``, ``supported = False``.
    """
    if expr_column not in annotations.columns:
        raise KeyError(f"annotation table has no expression column {expr_column!r}")
    au_columns = au_columns_in(annotations, au_columns)
    codes = [expr_index(c) if isinstance(c, str) else int(c) for c in classes]
    check_expressions(annotations[expr_column].to_numpy())
    check_attributes(annotations[au_columns].to_numpy(), len(annotations), au_columns)
    groups = None
    if group_column is not None:
        if group_column not in annotations.columns:
            raise KeyError(f"annotation table has no group column {group_column!r}")
        groups = annotations[group_column].to_numpy()
    generic = empirical_cooccurrence(
        annotations[expr_column].to_numpy(),
        annotations[list(au_columns)].to_numpy(),
        groups,
        classes=codes,
        attributes=[au_number(c) for c in au_columns],
        n_boot=n_boot,
        ci=ci,
        seed=seed,
        min_support=min_support,
    )
    long = generic.rename(columns={v: k for k, v in _TO_GENERIC.items()})
    long = long.astype({"expression": int, "au": int})
    long.insert(1, "expression_name", long["expression"].map(lambda i: EXPRESSIONS[i]))
    return long


def base_rates(
    annotations: pd.DataFrame,
    *,
    au_columns: Sequence[str] | None = None,
    expr_column: str | None = "expr",
) -> pd.Series:
    """Fraction of images with each AU active, among images with that AU labelled.

    With ``expr_column`` (default) only images that also carry an expression label (not -1) count,
    the population :func:`empirical` pools into its ``base_rate``; ``expr_column=None`` counts every
    AU-labelled image. Indexed by AU number; NaN for an AU that is never labelled.
    """
    au_columns = au_columns_in(annotations, au_columns)
    att = check_attributes(annotations[au_columns].to_numpy(), len(annotations), au_columns)
    if expr_column is not None:
        if expr_column not in annotations.columns:
            raise KeyError(f"annotation table has no expression column {expr_column!r}")
        att = att[annotations[expr_column].to_numpy() != EXPR_MISSING]
    labelled = (att != AU_MISSING).sum(axis=0)
    active = (att == 1).sum(axis=0)
    rate = np.divide(active, labelled, out=np.full(len(au_columns), np.nan), where=labelled > 0)
    index = pd.Index([au_number(c) for c in au_columns], name="au")
    return pd.Series(rate, index=index, name="base_rate")


def to_matrix(long: pd.DataFrame, value: str = "p") -> pd.DataFrame:
    """One column of a long relatedness frame as a classes x attributes table.

    Rows are expression names (``expression_name``) or, for the generic form, ``class`` values;
    columns are AU numbers (``au``) or ``attribute`` values; both keep their order in ``long``.
    """
    if value not in long.columns:
        raise KeyError(f"long frame has no column {value!r}; columns: {list(long.columns)}")
    row = "expression_name" if "expression_name" in long.columns else "class"
    col = "au" if "au" in long.columns else "attribute"
    for name in (row, col):
        if name not in long.columns:
            raise KeyError(f"long frame has no column {name!r}")
    matrix = long.pivot(index=row, columns=col, values=value)
    return matrix.loc[long[row].unique(), long[col].unique()]


# --- matrices of Eq. 2 and Eq. 4 -----------------------------------------------------------------


def relation_matrix(
    table: pd.DataFrame,
    classes: Sequence[Hashable],
    attributes: Sequence[Hashable],
    *,
    rule: str = "threshold_and_lift",
    threshold: float = DEFAULT_THRESHOLD,
) -> np.ndarray:
    """``p(y_au^i | y_exp)`` of Kollias Eq. 2 as a (C, M) float matrix of 0/1.

    A published table (a ``kind`` column, e.g. :func:`domain_table`): every listed pair is related,
    i.e. prototypical and observational AUs give 1 (the paper's Eq. 2), as does each AU of the
    paper's Aff-Wild2 column. An estimate (a ``p`` column, from :func:`empirical` or
    :func:`empirical_cooccurrence`) uses ``rule`` on supported cells only:

    - ``"threshold"``: ``p >= threshold`` (the AU is active in that share of the class's images);
    - ``"lift"``: ``lo > base_rate`` (the class raises the AU's rate beyond its pooled rate,
      one-sided at level ``(1 - ci) / 2``), which keeps out AUs that are merely common everywhere;
    - ``"threshold_and_lift"`` (default): both.

    Classes or attributes absent from the table (Neutral, Other) give zero rows/columns; pairs whose
    class or attribute is not asked for are left out (the matrix projects onto ``attributes``).
    """
    return (_weights(table, classes, attributes, rule, threshold) > 0).astype(float)


def weight_matrix(
    table: pd.DataFrame,
    classes: Sequence[Hashable],
    attributes: Sequence[Hashable],
    *,
    rule: str = "threshold_and_lift",
    threshold: float = DEFAULT_THRESHOLD,
) -> np.ndarray:
    """``w_au^i`` of Kollias Eq. 4 as a (C, M) float matrix.

    Published table: its ``weight`` (1 prototypical, the annotator fraction observational, the
    paper's rate for its Aff-Wild2 column). Estimate: ``p`` where :func:`relation_matrix` is 1 under
    the same ``rule``/``threshold``. 0 elsewhere, including unlisted classes and attributes.
    """
    return _weights(table, classes, attributes, rule, threshold)


def _weights(
    table: pd.DataFrame,
    classes: Sequence[Hashable],
    attributes: Sequence[Hashable],
    rule: str,
    threshold: float,
) -> np.ndarray:
    generic = table.rename(columns=_TO_GENERIC)
    for name in ("class", "attribute"):
        if name not in generic.columns:
            raise KeyError("relatedness table needs an expression/class and an au/attribute column")
    if generic.duplicated(["class", "attribute"]).any():
        raise ValueError("relatedness table lists a (class, attribute) pair more than once")
    if "kind" in generic.columns:
        value = generic["weight"].to_numpy(dtype=float)
    elif "p" in generic.columns:
        value = np.where(_empirical_related(generic, rule, threshold), generic["p"], 0.0)
    else:
        raise KeyError("relatedness table needs a 'kind' and 'weight' column or a 'p' column")
    if "expression" in table.columns:
        classes = [expr_index(c) if isinstance(c, str) else c for c in classes]
    rows = pd.Index(list(classes)).get_indexer(generic["class"])
    cols = pd.Index(list(attributes)).get_indexer(generic["attribute"])
    keep = (rows >= 0) & (cols >= 0)
    out = np.zeros((len(classes), len(attributes)))
    out[rows[keep], cols[keep]] = value[keep]
    return out


def _empirical_related(long: pd.DataFrame, rule: str, threshold: float) -> np.ndarray:
    """The rule of :func:`relation_matrix` on an estimate: a boolean per row."""
    if rule not in RULES:
        raise ValueError(f"unknown relation rule {rule!r}; expected one of {RULES}")
    supported = long["supported"].to_numpy(dtype=bool)
    # NaN compares False, so an unsupported or empty cell is never related
    above = long["p"].to_numpy(dtype=float) >= threshold
    lifted = long["lo"].to_numpy(dtype=float) > long["base_rate"].to_numpy(dtype=float)
    chosen = {"threshold": above, "lift": lifted, "threshold_and_lift": above & lifted}[rule]
    return supported & chosen


def paper_threshold() -> float:
    """The rate from which the paper's own reading relates an AU to an expression: the smallest
    rate printed in its Aff-Wild2 column (Kollias Table 1: "the weights denote percentage of
    images that the AU was activated"; 0.13, AU7 for sadness). The paper states no rule; observed
    frequency from this rate on (``rule="threshold"``) is the one threshold rule that keeps every
    pair it prints, AU7 at 0.13 and 0.2 included, which the interval rule (rate >= 0.3 and an
    interval above the AU's base rate) cannot produce."""
    return float(domain_table("affwild2")["weight"].min())


# --- the paper's layout --------------------------------------------------------------------------


def paper_layout(
    domain: pd.DataFrame,
    empirical_long: pd.DataFrame,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    rule: str = "threshold_and_lift",
) -> pd.DataFrame:
    """Kollias Table 1 in the paper's layout, one row per expression of ``domain``.

    Columns ``Proto. AUs`` ("12, 25"), ``Observational AUs (w)`` ("6 (0.51)") and ``Empirical AUs
    (w)`` ("12 (0.82), 25 (0.7)"). The empirical column lists the related AUs of ``empirical_long``:
    every row of a published table (``domain_table("affwild2")``, in the paper's order) or, for an
    estimate, the AUs :func:`relation_matrix` relates under ``rule``/``threshold``, highest rate
    first. Weights are rounded to 2 decimals and printed without trailing zeros, as the paper does.
    """
    est = empirical_long
    if "kind" not in est.columns:
        est = est[_empirical_related(est.rename(columns=_TO_GENERIC), rule, threshold)]
        est = est.sort_values(["expression", "p"], ascending=[True, False], kind="stable")
        est = est.assign(weight=est["p"])
    rows = {}
    for code in domain["expression"].unique():
        dom = domain[domain["expression"] == code]
        emp = est[est["expression"] == code]
        rows[EXPRESSIONS[code]] = {
            "Proto. AUs": ", ".join(str(a) for a in dom.loc[dom["kind"] == "prototypical", "au"]),
            "Observational AUs (w)": _listed(dom[dom["kind"] == "observational"]),
            "Empirical AUs (w)": _listed(emp),
        }
    layout = pd.DataFrame.from_dict(rows, orient="index")
    layout.index.name = "Expression"
    return layout


def compare_with_paper(empirical_long: pd.DataFrame) -> pd.DataFrame:
    """Our rate beside the paper's Aff-Wild2 rate, for each (expression, AU) the paper lists.

    Columns: ``expression_name``, ``au``, ``paper_affwild2_p`` (Kollias Table 1, the paper's
    number), ``ours_p``, ``ours_lo``, ``ours_hi``, ``ours_n_expr``, ``ours_supported`` (the
    estimate's support flag, False without one), ``has_estimate``, ``delta_ours_minus_paper`` and
    ``paper_in_our_interval``. Pairs absent from ``empirical_long`` (an AU the data do not
    annotate) or without a rate get NaN for ours and ``has_estimate`` False: count them apart, not
    as misses.
    """
    paper = domain_table("affwild2")[["expression", "expression_name", "au", "weight"]]
    ours = empirical_long.assign(
        supported=empirical_long.get("supported", pd.Series(True, index=empirical_long.index))
    )[["expression", "au", "p", "lo", "hi", "n_expr", "supported"]].rename(
        columns={
            "p": "ours_p",
            "lo": "ours_lo",
            "hi": "ours_hi",
            "n_expr": "ours_n_expr",
            "supported": "ours_supported",
        }
    )
    table = paper.rename(columns={"weight": "paper_affwild2_p"}).merge(
        ours, on=["expression", "au"], how="left", validate="one_to_one"
    )
    table["ours_supported"] = table["ours_supported"].fillna(False).astype(bool)
    table["has_estimate"] = table["ours_p"].notna()
    table["delta_ours_minus_paper"] = table["ours_p"] - table["paper_affwild2_p"]
    table["paper_in_our_interval"] = table["paper_affwild2_p"].between(
        table["ours_lo"], table["ours_hi"]
    )
    return table.drop(columns="expression")


def _listed(rows: pd.DataFrame) -> str:
    return ", ".join(
        f"{a} ({round(w, 2):g})" for a, w in zip(rows["au"], rows["weight"], strict=True)
    )


# --- counting and resampling ---------------------------------------------------------------------


def cell_counts(
    cls_idx: np.ndarray, labelled: np.ndarray, active: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """(C, M) counts of labelled and of active images per class."""
    n_class = np.stack([np.bincount(cls_idx, w, n_classes) for w in labelled.T], axis=1)
    n_both = np.stack([np.bincount(cls_idx, w, n_classes) for w in active.T], axis=1)
    return n_class, n_both


def _group_counts(
    group_codes: np.ndarray,
    cls_idx: np.ndarray,
    labelled: np.ndarray,
    active: np.ndarray,
    n_classes: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(G, C, M) counts per group, over the groups present in the analysis sample."""
    _, group_codes = np.unique(group_codes, return_inverse=True)
    n_groups = int(group_codes.max()) + 1 if len(group_codes) else 0
    key = group_codes * n_classes + cls_idx
    n_class, n_both = cell_counts(key, labelled, active, n_groups * n_classes)
    shape = (n_groups, n_classes, labelled.shape[1])
    return n_class.reshape(shape), n_both.reshape(shape)


def _group_bootstrap(
    per_group_class: np.ndarray, per_group_both: np.ndarray, n_boot: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(B, C, M) totals after resampling groups with replacement.

    Each resample is a vector of how often each group is drawn; totals are then one matrix product,
    done in chunks of resamples so memory stays near 16 MB whatever the number of groups.
    """
    n_groups, n_classes, n_att = per_group_class.shape
    if n_groups == 0:
        empty = np.zeros((n_boot, n_classes, n_att))
        return empty, empty
    counts = np.concatenate(
        [per_group_class.reshape(n_groups, -1), per_group_both.reshape(n_groups, -1)], axis=1
    )  # (G, 2 C M)
    chunk = max(1, 2_000_000 // n_groups)
    totals = []
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        draws = rng.integers(0, n_groups, size=(b, n_groups))
        offsets = (np.arange(b) * n_groups)[:, None]
        times = np.bincount((draws + offsets).ravel(), minlength=b * n_groups)
        totals.append(times.reshape(b, n_groups).astype(float) @ counts)
    total = np.concatenate(totals, axis=0)
    cells = n_classes * n_att
    shape = (n_boot, n_classes, n_att)
    return total[:, :cells].reshape(shape), total[:, cells:].reshape(shape)


def _row_bootstrap(
    n_class: np.ndarray, n_both: np.ndarray, n_rows: int, n_boot: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(B, C, M) totals of an independent-row bootstrap, drawn per cell.

    Resampling ``n_rows`` rows puts (active, labelled-inactive, other) counts of a cell in a
    multinomial; it is drawn as two binomials, active then inactive among the rest.
    """
    if n_rows == 0:
        empty = np.zeros((n_boot,) + n_class.shape)
        return empty, empty
    p_active = n_both / n_rows
    inactive = n_class - n_both
    rest = n_rows - n_both
    p_inactive = np.divide(inactive, rest, out=np.zeros(n_class.shape), where=rest > 0)
    both = rng.binomial(n_rows, p_active, size=(n_boot,) + n_class.shape)
    other = rng.binomial(n_rows - both, p_inactive)
    return (both + other).astype(float), both.astype(float)


def _percentiles(
    boot_class: np.ndarray, boot_both: np.ndarray, defined: np.ndarray, ci: float
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval per cell; NaN where the cell has no image."""
    lo = np.full(defined.shape, np.nan)
    hi = np.full(defined.shape, np.nan)
    if not defined.any():
        return lo, hi
    cls, both = boot_class[:, defined], boot_both[:, defined]  # (B, cells)
    rate = np.divide(both, cls, out=np.full(cls.shape, np.nan), where=cls > 0)
    q = np.nanquantile(rate, [(1.0 - ci) / 2.0, (1.0 + ci) / 2.0], axis=0)
    lo[defined], hi[defined] = q[0], q[1]
    return lo, hi


# --- validation ----------------------------------------------------------------------------------


def _class_codes(
    class_labels: np.ndarray, classes: Sequence[Hashable] | None, missing: Hashable
) -> tuple[np.ndarray, list]:
    """Index of each image's class in ``classes``, -1 for any other label."""
    if class_labels.ndim != 1:
        raise ValueError(f"class_labels must be 1-D, got shape {class_labels.shape}")
    if classes is None:
        present = pd.unique(class_labels)
        classes = sorted(c for c in present if not pd.isna(c) and c != missing)
    classes = list(classes)
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes contain duplicates: {classes}")
    return pd.Index(classes).get_indexer(class_labels), classes


def check_attributes(
    att: np.ndarray, n_rows: int, names: Sequence[Hashable] | None = None
) -> np.ndarray:
    if att.ndim != 2 or att.shape[0] != n_rows:
        raise ValueError(f"attribute_labels must have shape ({n_rows}, M), got {att.shape}")
    bad = ~np.isin(att, (1, 0, AU_MISSING))
    if bad.any():
        column = int(np.argwhere(bad)[0, 1])
        name = f"column {column}" if names is None else repr(names[column])
        values = sorted(set(np.asarray(att[:, column][bad[:, column]]).tolist()))[:5]
        raise ValueError(f"attribute {name} holds values other than 1, 0, {AU_MISSING}: {values}")
    return att.astype(np.int64)


def check_expressions(expr: np.ndarray) -> None:
    bad = ~np.isin(expr, (EXPR_MISSING, *range(N_EXPR)))
    if bad.any():
        values = sorted(set(expr[bad].tolist()))[:5]
        raise ValueError(f"expression labels outside -1..{N_EXPR - 1}: {values}")


def _group_codes(groups: np.ndarray, n_rows: int) -> np.ndarray:
    if groups.shape != (n_rows,):
        raise ValueError(f"groups must have shape ({n_rows},), got {groups.shape}")
    codes, _ = pd.factorize(groups)
    if (codes < 0).any():
        raise ValueError("groups contain missing values; every image needs a group id")
    return codes


def au_columns_in(annotations: pd.DataFrame, au_columns: Sequence[str] | None) -> list[str]:
    if au_columns is None:
        au_columns = list(au_columns_of(annotations))
        if not au_columns:
            raise KeyError("annotation table has no AU<n> columns")
    missing = [c for c in au_columns if c not in annotations.columns]
    if missing:
        raise KeyError(f"annotation table lacks AU columns {missing}")
    return list(au_columns)
