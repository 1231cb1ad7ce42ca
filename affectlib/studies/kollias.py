"""Notebook 04's study: coupling expressions and action units (Kollias, Sharmanska & Zafeiriou,
"Distribution Matching for Multi-Task Learning of Classification Tasks", AAAI 2024, Case Study I,
Tables 2, 3 and 5), trained with the methods of :mod:`affectlib.methods.coupling`.

- the data settings: :func:`affectnet_emotionet` (an expression-only and an AU-only set, disjoint
  images) and :func:`affwild2` (one set with both tasks), each a :class:`Setting` with its
  multi-task and single-task data; :func:`relatedness_options`, the ``c-mt`` matrices of one
  relatedness, and :func:`coupling_options`, those of every relatedness on every setting;
- the plan: :data:`ARMS` (each row of the paper's tables as a method and its options) and
  :func:`study_plan` (the runs the three tables need, each once);
- the runs: :func:`run_study` trains every run of the plan for every seed through
  :func:`affectlib.train.fit` and scores it with :func:`study_scores`.

:mod:`affectlib.studies.kollias_report` turns the runs into tables, figures and the computed
statements.

Label convention: expressions are the 7 basic classes of the paper, ABAW indices 0..6 (Neutral,
Anger, Disgust, Fear, Happiness, Sadness, Surprise); ABAW's "Other" (index 7, AffectNet's Contempt)
is no basic expression and becomes -1 (:func:`basic_expressions`). AUs are 1 / 0 / -1 per column.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from affectlib import distributed, metrics, models, pretraining, train
from affectlib import relatedness as rel
from affectlib.data import assembly, datasets
from affectlib.data.table import au_columns_of, au_number
from affectlib.executor import Job, run_plan
from affectlib.labels import AU_COLUMNS, AU_MISSING, EXPR_MISSING, expr_index
from affectlib.methods import get as get_method
from affectlib.methods import resolve_options
from affectlib.methods.coupling import add_soft_labels

# each run's outputs, and where a rerun of notebook 04 finds the runs that finished
RUNS_DIR = Path(__file__).resolve().parents[2] / "build" / "runs" / "04_coupling_ablations"
BASIC = tuple(range(expr_index("Other")))  # ABAW indices of the 7 basic expressions (0..6)
N_BASIC = len(BASIC)
POSE_AUS = 51  # EmotioNet's AU51-56 code head pose, not facial action: left out of the study


# --- data settings ------------------------------------------------------
def basic_expressions(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with ABAW's "Other" (AffectNet's Contempt) turned into -1: the paper's 7 basic
    expressions, ABAW indices 0..6, are the classes; the rows keep their other labels."""
    other = table["expr"].to_numpy() == expr_index("Other")
    return table.assign(expr=np.where(other, EXPR_MISSING, table["expr"].to_numpy()))


def keep_task(table: pd.DataFrame, task: str, au_columns: Sequence[str]) -> pd.DataFrame:
    """The rows labelled for ``task`` ("expr" / "au": at least one of ``au_columns``), with the
    other task's labels turned into -1: a single-task (ST) training table."""
    au = table[list(au_columns)].to_numpy()
    if task == "expr":
        rows = table["expr"].to_numpy() != EXPR_MISSING
        return table[rows].assign(**dict.fromkeys(au_columns, AU_MISSING)).reset_index(drop=True)
    if task == "au":
        rows = (au != AU_MISSING).any(axis=1)
        return table[rows].assign(expr=EXPR_MISSING).reset_index(drop=True)
    raise ValueError(f"task must be 'expr' or 'au', got {task!r}")


def labelled_rows(table: pd.DataFrame, au_columns: Sequence[str]) -> pd.DataFrame:
    """The rows with an expression label or at least one AU label (the others feed no loss)."""
    has_au = (table[list(au_columns)].to_numpy() != AU_MISSING).any(axis=1)
    return table[(table["expr"].to_numpy() != EXPR_MISSING) | has_au].reset_index(drop=True)


def subsample(table: pd.DataFrame, n: int, seed: int, salt: int = 0) -> pd.DataFrame:
    """``n`` rows drawn without replacement (all rows when ``n`` <= 0 or >= the table's length),
    in table order; the draw depends on ``(seed, salt)`` only."""
    if n <= 0 or n >= len(table):
        return table.reset_index(drop=True)
    rows = np.sort(np.random.default_rng([seed, salt]).choice(len(table), n, replace=False))
    return table.iloc[rows].reset_index(drop=True)


@dataclass(frozen=True)
class Setting:
    """One data configuration of the study.

    parts:      the multi-task training data (every set, every label);
    expr_parts: the single-task expression data; au_parts: the single-task AU data;
    au_columns: the model's AUs, in order; primary: the paper's metrics for this pair of data
                sets, (expression, AU) names of :func:`study_scores`;
    epochs:     the epochs of this setting's runs; None: :attr:`StudyConfig.epochs`.
    """

    name: str
    parts: tuple[assembly.DataPart, ...]
    expr_parts: tuple[assembly.DataPart, ...]
    au_parts: tuple[assembly.DataPart, ...]
    au_columns: tuple[str, ...]
    primary: tuple[str, str]
    epochs: int | None = None


def _part(
    part: assembly.DataPart,
    train_rows: pd.DataFrame,
    val_rows: pd.DataFrame,
    test_rows: pd.DataFrame | None = None,
    name: str = "",
):
    return dataclasses.replace(
        part, name=name or part.name, train=train_rows, validation=val_rows, test=test_rows
    )


def _val_and_test(rows: pd.DataFrame, n_val: int, seed: int, salt: int):
    """``n_val`` validation rows drawn with ``seed`` and the rest of ``rows`` as the held-out test
    rows (the still-image sets have no test split of their own; their images are of distinct
    people, so the two are person-disjoint)."""
    rows = rows.reset_index(drop=True)
    if n_val <= 0 or n_val >= len(rows):
        return rows, rows.iloc[:0]
    picked = np.zeros(len(rows), bool)
    picked[np.random.default_rng([seed, salt]).choice(len(rows), n_val, replace=False)] = True
    return rows[picked].reset_index(drop=True), rows[~picked].reset_index(drop=True)


def affectnet_emotionet(
    root: str | Path, *, n_expr: int, n_au: int, n_val: int, seed: int
) -> Setting:
    """The AffectNet-format expression set and the EmotioNet-format AU set under ``root``, each
    read by its own loader (disjoint images and subjects), as the paper's AffectNet-EmotioNet pair.

    Expressions: the 7 basic classes; AffectNet's Contempt ("Other") and its unlabelled codes
    (None, Uncertain) are left out, as the paper's 7-class AffectNet is. AUs: every AU the
    EmotioNet file codes but the head-pose codes AU51-56. ``n_expr`` / ``n_au`` training and
    ``n_val`` validation images per set are drawn with ``seed`` (0: all) from the set's
    validation file, and its other validation images are the held-out test rows (each run selects
    its epoch on validation and is reported on test). Paper metrics: accuracy (expressions), AFA
    (AUs)."""
    expr = assembly.load_part(root, "affectnet", "affectnet")
    au = assembly.load_part(root, "emotionet", "emotionet")
    au_columns = tuple(
        sorted(
            (c for c in au_columns_of(au.train) if au_number(c) < POSE_AUS),
            key=au_number,
        )
    )

    def basic(t: pd.DataFrame) -> pd.DataFrame:
        t = basic_expressions(t)
        return t[t["expr"] != EXPR_MISSING]

    expr = _part(
        expr,
        subsample(basic(expr.train), n_expr, seed, 1),
        *_val_and_test(basic(expr.validation), n_val, seed, 2),
    )
    au = _part(
        au,
        subsample(labelled_rows(au.train, au_columns), n_au, seed, 3),
        *_val_and_test(labelled_rows(au.validation, au_columns), n_val, seed, 4),
    )
    return Setting("affectnet+emotionet", (expr, au), (expr,), (au,), au_columns, PRIMARY_AE)


def affwild2(
    root: str | Path, *, n_train: int, n_val: int, seed: int, epochs: int | None = None
) -> Setting:
    """The Aff-Wild2-format (ABAW MTL) set under ``root``: frames with expressions and the 12
    ABAW AUs, partly missing. Expressions: the 7 basic classes ("Other" frames keep their AUs but
    no expression label). ``n_train`` training and ``n_val`` validation frames with at least one
    label are drawn with ``seed`` (0: all), and as many test frames from the held-out test split
    when the set has one (the embedded set). Single-task data: the same frames, one task's labels
    each. Paper metrics: F1 for both tasks (TMIF-FEA's columns of Table 2, Table 3). ``epochs``:
    its runs' epochs (None or 0: the study's)."""
    part = assembly.load_part(root, "abaw-mtl", "affwild2")
    test = None
    if part.test is not None:
        test = subsample(labelled_rows(basic_expressions(part.test), AU_COLUMNS), n_val, seed, 7)
    part = _part(
        part,
        subsample(labelled_rows(basic_expressions(part.train), AU_COLUMNS), n_train, seed, 5),
        subsample(labelled_rows(basic_expressions(part.validation), AU_COLUMNS), n_val, seed, 6),
        test,
    )
    expr_only = _part(part, keep_task(part.train, "expr", AU_COLUMNS), part.validation, test)
    au_only = _part(part, keep_task(part.train, "au", AU_COLUMNS), part.validation, test)
    return Setting(
        "affwild2", (part,), (expr_only,), (au_only,), AU_COLUMNS, PRIMARY_AW, epochs or None
    )


PRIMARY_AE = ("expr_acc", "au_afa")  # Kollias Table 2, AffectNet-EmotioNet: Acc - AFA
PRIMARY_AW = ("expr_f1", "au_f1")  # Kollias Table 2 (Aff-Wild2) and Table 3: F1 - F1


def relatedness_options(
    source: pd.DataFrame, au_columns: Sequence[str], label: str
) -> dict[str, Any]:
    """``c-mt`` options for one relatedness: the 7 basic classes x ``au_columns`` matrices of Eq. 2
    (:func:`relatedness.relation_matrix`) and Eq. 4 (:func:`relatedness.weight_matrix`) from
    ``source`` — :func:`relatedness.domain_table` or an :func:`relatedness.empirical` estimate
    (rule and threshold: the relatedness module's defaults, as notebook 02) — as nested lists."""
    aus = [au_number(c) for c in au_columns]
    return {
        "relatedness": label,
        "relation": rel.relation_matrix(source, BASIC, aus).tolist(),
        "au_weights": rel.weight_matrix(source, BASIC, aus).tolist(),
    }


def coupling_options(
    settings: Mapping[str, Setting], sources: Mapping[str, pd.DataFrame]
) -> dict[str, dict[str, dict[str, Any]]]:
    """:func:`relatedness_options` of every relatedness ``sources`` names ("DM", "DB") on every
    setting's own AUs: ``{setting: {label: options}}``, what :func:`run_study` couples with."""
    return {
        name: {k: relatedness_options(v, s.au_columns, k) for k, v in sources.items()}
        for name, s in settings.items()
    }


# --- the study: rows, runs, scores ----------------------------------------------------------------
# each row of the paper's tables: (method, options); "DM" / "DB" name the relatedness (the paper's
# domain knowledge, Du et al. / the data base, the Aff-Wild2-like training annotations)
ARMS: dict[str, tuple[str, dict[str, Any]]] = {
    "ST": ("nc-mt", {}),
    "NC MT": ("nc-mt", {}),
    "S-T NC MT": ("st-nc-mt", {}),
    "C MT (DM)": ("c-mt", {"dm": True, "sca": True, "relatedness": "DM"}),
    "C MT (DB)": ("c-mt", {"dm": True, "sca": True, "relatedness": "DB"}),
    "soft co-annotation (DM)": ("c-mt", {"dm": False, "sca": True, "relatedness": "DM"}),
    "distr-matching (DM)": ("c-mt", {"dm": True, "sca": False, "relatedness": "DM"}),
    "soft co-annotation (DB)": ("c-mt", {"dm": False, "sca": True, "relatedness": "DB"}),
    "distr-matching (DB)": ("c-mt", {"dm": True, "sca": False, "relatedness": "DB"}),
    # Eq. 3 with its gradient reaching the AU predictions too (not a row of the paper's): the
    # rows above read it as distillation, the AU predictions a soft target without gradient
    # (c-mt's dm_form "target"); see losses.class_attribute_matching
    "distr-matching (DM, gradient to AUs)": (
        "c-mt",
        {"dm": True, "dm_form": "printed", "sca": False, "relatedness": "DM"},
    ),
    # Eq. 6 with the soft label q as the target, -sum q log p (not a row of the paper's): the
    # rows above take it as printed, -sum p log q (c-mt's sca_form "printed"); see
    # losses.class_attribute_coannotation
    "soft co-annotation (DM, q as target)": (
        "c-mt",
        {"dm": False, "sca": True, "sca_form": "label", "relatedness": "DM"},
    ),
    "GradNorm": ("gradnorm", {}),
    "MGDA-UB": ("mgda-ub", {}),
}
TABLE2_ARMS = ("ST", "NC MT", "S-T NC MT", "C MT (DM)", "C MT (DB)")
TABLE3_ARMS = (
    "NC MT",
    "soft co-annotation (DM)",
    "distr-matching (DM)",
    "C MT (DM)",
    "soft co-annotation (DB)",
    "distr-matching (DB)",
    "C MT (DB)",
    "distr-matching (DM, gradient to AUs)",
    "soft co-annotation (DM, q as target)",
)
TABLE5_ARMS = ("ST", "NC MT", "C MT (DM)", "C MT (DB)", "GradNorm", "MGDA-UB")
SCORE_NAMES = ("expr_acc", "expr_aa", "expr_f1", "au_f1", "au_acc", "au_afa")
COLLAPSE_NAMES = ("expr_top", "expr_top_share")  # which class a run predicts most, how often


def study_plan(
    table2: Mapping[str, Sequence[str]], table3: tuple[str, str], table5: tuple[str, str]
) -> pd.DataFrame:
    """The runs the three tables need, each (setting, backbone, arm) once: ``table2`` maps a
    setting to its backbones (Table 2 rows on each), ``table3`` / ``table5`` are the (setting,
    backbone) of the ablation and of the balancing comparison. Rows shared by several tables
    (ST, NC MT, C MT) are trained once. Columns: setting, backbone, arm; grouped by (setting,
    backbone) in order of appearance, arms in :data:`ARMS` order."""
    wanted = [(s, b, a) for s, bs in table2.items() for b in bs for a in TABLE2_ARMS]
    wanted += [(*table3, a) for a in TABLE3_ARMS] + [(*table5, a) for a in TABLE5_ARMS]
    plan = pd.DataFrame(wanted, columns=["setting", "backbone", "arm"]).drop_duplicates()
    groups = list(dict.fromkeys(zip(plan["setting"], plan["backbone"], strict=True)))
    order = {a: i for i, a in enumerate(ARMS)}
    plan = plan.assign(
        group=[groups.index(g) for g in zip(plan["setting"], plan["backbone"], strict=True)],
        rank=plan["arm"].map(order),
    )
    return (
        plan.sort_values(["group", "rank"]).drop(columns=["group", "rank"]).reset_index(drop=True)
    )


def study_scores(pred: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Validation scores of :func:`affectlib.train.predict`'s output, each task over its labelled
    rows (expression = argmax over the model's classes, AU = sigmoid > 0.5):

    ``expr_acc`` accuracy (AffectNet's metric), ``expr_aa`` mean per-class recall (RAF-DB's),
    ``expr_f1`` macro F1 over the model's classes (Aff-Wild2's; a class absent from labels and
    predictions scores 0), ``au_f1`` mean per-AU F1, ``au_acc`` mean per-AU accuracy,
    ``au_afa`` their mean (EmotioNet's AFA), ``f1_mean`` the mean of ``expr_f1`` and ``au_f1``
    over the tasks with labelled rows (what each run selects its epoch on). NaN for a task without
    labelled rows.

    Not a paper's metric, a diagnosis of collapse: ``expr_top`` the class the model predicts most
    often over the expression-labelled rows (its index, as a float), ``expr_top_share`` the share
    of those rows it is predicted for (1: one class for every image)."""
    n_classes = pred["expr_prob"].shape[1]
    et, ep = pred["expr_true"], pred["expr_prob"].argmax(axis=1)
    counts = np.bincount(ep[et != EXPR_MISSING], minlength=n_classes)
    at, ap = pred["au_true"], (pred["au_prob"] > 0.5).astype(int)
    acc = metrics.per_au_accuracy(at, ap)
    scores = {
        "expr_acc": metrics.expr_accuracy(et, ep),
        "expr_aa": metrics.average_class_accuracy(et, ep),
        "expr_f1": metrics.expr_f1(et, ep, n_classes),
        "au_f1": metrics.au_f1(at, ap),
        "au_acc": float(np.nanmean(acc)) if np.isfinite(acc).any() else float("nan"),
        "au_afa": metrics.afa(at, ap),
    }
    f1 = [v for v in (scores["expr_f1"], scores["au_f1"]) if np.isfinite(v)]
    top = {
        "expr_top": float(counts.argmax()) if counts.sum() else float("nan"),
        "expr_top_share": float(counts.max() / counts.sum()) if counts.sum() else float("nan"),
    }
    return {**scores, "f1_mean": float(np.mean(f1)) if f1 else float("nan"), **top}


@dataclass(frozen=True)
class StudyConfig:
    """Training settings shared by every run of the study.

    image_size: training pixels (the cache resizes the data set's images); batch_size, epochs,
    lr_backbone, lr_heads, schedule, device, precision: as :class:`affectlib.train.TrainConfig`
    (a :class:`Setting` with its own ``epochs`` trains those instead); model: the network of
    every run (:meth:`affectlib.models.ModelConfig.from_profile`: ``small_input``,
    ``feature_scale``, ``dropout``, ...), whose backbone, expression classes and AUs each run
    sets; weights: the starting weights of each backbone (backbone name -> file; a backbone not
    named starts from scratch), loaded into every run of that backbone (the heads start fresh).
    """

    image_size: int
    batch_size: int
    epochs: int
    lr_backbone: float
    lr_heads: float
    device: str = "cpu"
    model: models.ModelConfig = dataclasses.field(default_factory=models.ModelConfig)
    schedule: str = "constant"
    weights: Mapping[str, str] = dataclasses.field(default_factory=dict)
    precision: str = "auto"

    @classmethod
    def from_profile(cls, profile, *, weights=None, **training: Any) -> StudyConfig:
        """The study's settings on ``profile`` (its device, precision, learning-rate schedule and
        model settings) with ``training``'s image_size, batch_size, epochs, lr_backbone and
        lr_heads; ``weights`` hold backbones only: every run's heads start fresh."""
        model = models.ModelConfig.from_profile(profile, weights=None)
        return cls(device=profile.device, precision=profile.precision, model=model,
                   schedule=profile.lr_schedule, weights=dict(weights or {}), **training)  # fmt: skip


INITS = ("identity", "none")


def start_weights(
    init: str, backbones: Sequence[str], profile, root: str | Path, *, epochs: int, seed: int = 0
) -> dict[str, str]:
    """:attr:`StudyConfig.weights` for ``init``: "identity", the embedded identity pretraining
    (:func:`affectlib.pretraining.pretrained_weights`, cached) of each backbone under ``profile``
    for ``epochs`` on the embedded set at ``root`` (the paper's networks start from face or
    ImageNet weights); "none", every run from scratch (an empty mapping)."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if init == "none":
        return {}
    return {
        b: str(
            pretraining.pretrained_weights(
                "identity", profile.replace(backbone=b, epochs=epochs), root, seed=seed
            )
        )
        for b in dict.fromkeys(backbones)
    }


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def _fit_one(
    setting: Setting,
    parts: Sequence[assembly.DataPart],
    backbone: str,
    method: str,
    overrides: Mapping[str, Any],
    seed: int,
    cfg: StudyConfig,
    out: Path,
    teachers: Mapping[str, nn.Module] | None = None,
) -> tuple[nn.Module, train.FitResult]:
    """One run: the data of ``parts``, a fresh model seeded by ``seed``, :func:`train.fit`."""
    spec = get_method(method)
    options = resolve_options(spec, overrides)
    data, data_record = assembly.build_multi_data(
        parts,
        image_size=cfg.image_size,
        batch_size=cfg.batch_size,
        seed=seed,
        au_columns=setting.au_columns,
        score=study_scores,
        select="f1_mean",
        progress=False,
    )
    if teachers:
        data = dataclasses.replace(data, train_table=teacher_labels(data, teachers, setting, cfg))
    model_cfg = dataclasses.replace(
        cfg.model,
        backbone=backbone,
        n_expr=N_BASIC,
        n_au=len(setting.au_columns),
        weights=cfg.weights.get(backbone),
    )
    distributed.seed_everything(seed)  # the initialisation
    model = models.build_model(model_cfg)  # a backbone-only file: the heads start fresh
    tcfg = train.TrainConfig.for_study(
        epochs=cfg.epochs if setting.epochs is None else setting.epochs,
        lr_backbone=cfg.lr_backbone,
        lr_heads=cfg.lr_heads,
        seed=seed,
        device=cfg.device,
        precision=cfg.precision,
        schedule=cfg.schedule,
    )
    record = {
        "method": spec.name,
        "options": options,
        "seed": seed,
        "setting": setting.name,
        "model": dataclasses.asdict(model_cfg),
        "train": tcfg.record(),
        "data": data_record,
    }
    return model, train.fit(model, spec, data, tcfg, out, record)


def teacher_labels(
    data: assembly.TrainData, teachers: Mapping[str, nn.Module], setting: Setting, cfg: StudyConfig
) -> pd.DataFrame:
    """The training table with the single-task teachers' soft labels
    (:func:`affectlib.methods.coupling.add_soft_labels`): the expression teacher's softmax where a
    row has no expression label, the AU teacher's sigmoid where an AU is not labelled, predicted in
    eval mode on the training images."""
    table = data.train_table
    loader = datasets.BatchLoader(
        table,
        data.train.images,
        datasets.SequentialSampler(len(table)),
        cfg.batch_size,
        au_columns=setting.au_columns,
    )
    device = torch.device(cfg.device)
    expr = train.predict(teachers["expr"], loader, device, cfg.precision)["expr_prob"]
    au = train.predict(teachers["au"], loader, device, cfg.precision)["au_prob"]
    return add_soft_labels(table, expr, au, setting.au_columns)


def run_study(
    settings: Mapping[str, Setting],
    plan: pd.DataFrame,
    relatedness: Mapping[str, Mapping[str, Mapping[str, Any]]],
    cfg: StudyConfig,
    seeds: Sequence[int],
    runs_dir: str | Path | None = None,
    progress: bool = True,
    *,
    executor: str = "local",
    max_parallel: int = 1,
    fresh: bool = False,
) -> pd.DataFrame:
    """Train every run of ``plan`` (:func:`study_plan`) for every seed; one row per (setting,
    backbone, arm, seed) with the :func:`study_scores` on the test split (on validation when the
    data has none) of the epoch selected on validation (``f1_mean``), ``wall_s`` and
    ``train_images`` (images seen in training).

    ``relatedness``: per setting, the ``c-mt`` options of each relatedness ("DM", "DB") its
    coupled rows name (:func:`coupling_options`); a plan without coupled rows may pass ``{}``.
    "ST" is two single-task runs, the setting's ``expr_parts`` and ``au_parts``: its expression
    scores come from the first, its AU scores from the second; they are also the teachers of
    "S-T NC MT" for the same seed and backbone. Every arm of a (setting, backbone) uses the same
    seeds, so comparisons pair by seed.

    The arms of one (setting, backbone, seed) are one job of :func:`affectlib.executor.run_plan`
    (the S-T row needs that group's ST teachers), run on ``executor`` ("local", "pool" with
    ``max_parallel`` groups at once, "submitit"). ``runs_dir``: where each run's configuration,
    per-epoch metrics and predictions go, and where a rerun finds the groups that finished under
    the same inputs and code (reused unless ``fresh``); None: a temporary folder, removed."""
    unknown = sorted(set(plan["arm"]) - set(ARMS))
    if unknown:
        raise KeyError(f"unknown arms {unknown}; known: {', '.join(ARMS)}")
    missing = sorted(set(plan["setting"]) - set(settings))
    if missing:
        raise KeyError(f"plan names settings {missing} that were not built")
    for name, arm in plan[["setting", "arm"]].drop_duplicates().itertuples(index=False):
        label = ARMS[arm][1].get("relatedness")
        if label is not None and label not in relatedness.get(name, {}):
            raise KeyError(
                f"arm {arm!r} couples with relatedness {label!r}, which has no options for "
                f"setting {name!r}; built: {sorted(relatedness.get(name, {}))}"
            )
    scratch = tempfile.TemporaryDirectory(prefix="coupling-runs-") if runs_dir is None else None
    root = Path(scratch.name if scratch else runs_dir)
    jobs = []
    for (name, backbone), group in plan.groupby(["setting", "backbone"], sort=False):
        setting, arms = settings[name], list(group["arm"])
        options = relatedness.get(name, {})
        for seed in seeds:
            kwargs = dict(setting=setting, backbone=backbone, arms=arms, relatedness=options)
            jobs.append(
                Job(
                    f"{name}/{backbone}/seed{seed}",
                    root / _slug(name) / _slug(backbone) / f"seed{seed}",
                    run_group,
                    {**kwargs, "seed": int(seed), "cfg": cfg},
                )
            )
    try:
        records = run_plan(
            jobs, executor=executor, max_parallel=max_parallel, fresh=fresh, progress=progress
        )
    finally:
        if scratch is not None:
            scratch.cleanup()
    return pd.DataFrame([row for r in records for row in r["rows"]])


def _reported(final: Mapping[str, Any]) -> dict[str, Any]:
    """A run's reported scores: on the test split when it had one (``test_`` keys of
    :func:`train.fit`'s metrics), else on validation."""
    tested = any(k.startswith("test_") for k in final)
    return {k[5:]: v for k, v in final.items() if k.startswith("test_")} if tested else dict(final)


def run_group(
    out_dir: Path,
    *,
    setting: Setting,
    backbone: str,
    arms: Sequence[str],
    relatedness: Mapping[str, Mapping[str, Any]],
    seed: int,
    cfg: StudyConfig,
) -> dict[str, list[dict[str, Any]]]:
    """The arms of one (setting, backbone) for one seed, each run in its folder under
    ``out_dir``, the ST runs first (teachers): ``{"rows": [one record per arm]}``. An
    :mod:`affectlib.executor` job of :func:`run_study`."""
    where = Path(out_dir)
    rows, teachers = [], {}
    key = {"setting": setting.name, "backbone": backbone, "seed": seed}
    if "ST" in arms or "S-T NC MT" in arms:
        scores, wall, images = {}, 0.0, 0
        for task, parts in (("expr", setting.expr_parts), ("au", setting.au_parts)):
            t0 = time.perf_counter()
            out = where / f"st-{task}"
            teachers[task], result = _fit_one(setting, parts, backbone, "nc-mt", {}, seed, cfg, out)
            wall += time.perf_counter() - t0
            images += int(result.metrics["last_step"]) * cfg.batch_size
            scores.update(
                {k: v for k, v in _reported(result.metrics).items() if k.startswith(task + "_")}
            )
        if "ST" in arms:
            rows.append({**key, "arm": "ST", **scores, "wall_s": wall, "train_images": images})
    for arm in arms:
        if arm == "ST":
            continue
        method, overrides = ARMS[arm]
        if "relatedness" in overrides:
            overrides = {**overrides, **relatedness[overrides["relatedness"]]}
        t0 = time.perf_counter()
        _, result = _fit_one(
            setting,
            setting.parts,
            backbone,
            method,
            overrides,
            seed,
            cfg,
            where / _slug(arm),
            teachers if method == "st-nc-mt" else None,
        )
        scores = {k: _reported(result.metrics)[k] for k in SCORE_NAMES + COLLAPSE_NAMES}
        wall = time.perf_counter() - t0
        images = int(result.metrics["last_step"]) * cfg.batch_size
        rows.append({**key, "arm": arm, **scores, "wall_s": wall, "train_images": images})
    return {"rows": rows}
