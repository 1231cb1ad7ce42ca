"""The embedded instrument's visibility setting (notebook 01 §9): can the study see at all?

The embedded faces have two visibility knobs, profile fields recorded in every manifest and
provenance record: ``au_gain`` (how far each AU moves the face; 1 = FACS-sized movements) and
``nuisance`` (pose, light, occlusion, blur, noise). They are set with the baseline method and the
read-out probe only, never by comparing methods: :func:`learnability` measures, at the profile's
setting and at the ``hard`` variant (:data:`affectlib.profiles.HARD`), per AU and per task, the
HOG read-out probe (:func:`affectlib.data.difficulty.readout_probe`), MFAR trained from scratch
with notebook 03's budget, and the same network with the same budget trained on MFAR's AU loss
alone (:data:`AU_READOUT`, a read-out of what the network can see), all on the held-out test split,
beside chance and the noise ceiling.

:func:`readme_section` renders that table as the README's learnability section and
:func:`update_readme` writes it between the README's markers, so every number there comes from
a committed table (``results/01_data_audit/table_learnability.csv``).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from affectlib import checkpoints, methods, metrics, profiles, train
from affectlib.data import difficulty, generate
from affectlib.labels import AU_COLUMNS
from affectlib.methods import mfar as mfar_method
from affectlib.studies import ssmfar

SETTINGS: dict[str, dict] = {"chosen": {}, "hard": dict(profiles.HARD)}
TASKS = ("expr_f1", "au_f1", "va", "overall")
AU_MEASURES = (*(f"F1 {c}" for c in AU_COLUMNS), "au_f1")  # what the AU read-out is scored on
BEGIN, END = "<!-- learnability:begin -->", "<!-- learnability:end -->"
RUNS_DIR = ssmfar.BUILD / "runs" / "01_instrument"


def scores_per_au(pred: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Scores of :func:`affectlib.train.predict`'s output: ``expr_f1``, ``au_f1``, ``va``,
    ``overall`` (SS-MFAR Eq. 10) and ``F1 AU<n>`` per AU (on at sigmoid > 0.5)."""
    s = metrics.score(pred)
    per_au = metrics.per_au_f1(pred["au_true"], (pred["au_prob"] > 0.5).astype(int))
    return {
        **{k: float(s[k]) for k in TASKS},
        **{f"F1 {c}": float(v) for c, v in zip(AU_COLUMNS, per_au, strict=True)},
    }


def _au_readout_loss(model, batch, state, ctx):
    """MFAR's AU term alone (SS-MFAR Eq. 6 with Eq. 2's positive weights), on the weak view."""
    term = mfar_method.supervised_losses(model(batch["weak"]), batch, state)["au"]
    return term, {"loss_au": term.detach()}


# the instrument's AU read-out: MFAR's network, budget and AU loss, without the expression and VA
# terms; not a method of any paper, so no table of the study trains it
AU_READOUT = methods.register(
    methods.MethodSpec(
        name="au-readout",
        loss=_au_readout_loss,
        init_state=mfar_method.label_weights,
        options={**mfar_method.MFAR.options, "expr_weights": False},
        paper="affectlib instrument read-out: MFAR's AU loss (Gera et al. 2022, Eq. 6, Eq. 2) alone",
    )
)


def au_readout(profile, out_dir: str | Path, seed: int, data_root: str | Path) -> dict[str, float]:
    """Train :data:`AU_READOUT` as :func:`affectlib.train.run` trains a method, but selecting its
    epoch on validation mean AU F1 (the only task it learns), and return its test scores
    (:func:`scores_per_au`)."""
    shutil.rmtree(out_dir, ignore_errors=True)
    fit = train.run(
        AU_READOUT.name, profile, out_dir, seed, data_root=data_root, select="au_f1", progress=False
    )
    (Path(out_dir) / checkpoints.CHECKPOINT).unlink(missing_ok=True)
    return scores_per_au(fit.test_predictions)


def learnability(
    profile,
    seed: int = 0,
    settings: Mapping[str, Mapping] | None = None,
    runs_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Per visibility setting (default: the profile's, ``chosen``, and the ``hard`` variant) and
    measure (``F1 AU<n>`` per ABAW AU, ``au_f1``, ``expr_f1``, ``va``, ``overall``): the read-out
    probe's test score (``probe``, with the 95% interval over test videos of probe - chance,
    ``probe-chance lo`` / ``hi``), MFAR's test score (``mfar``: notebook 03's budget, from scratch,
    epoch selected on validation, seed ``seed``), the AU read-out's (``au readout``, per AU and
    ``au_f1`` only: :func:`au_readout` with the same budget and seed), ``chance`` and
    ``ceiling``. ``overall`` has no probe (the probe does not score it jointly) and its chance
    and ceiling are those of P_MTL."""
    settings = SETTINGS if settings is None else settings
    plan = ssmfar.budget(profile)
    runs_dir = Path(runs_dir) if runs_dir else RUNS_DIR / profile.name
    rows = []
    for name, over in settings.items():
        p = profile.replace(**over)
        root = generate.ensure(p, seed)
        probe = difficulty.readout_probe(root, split="test", size=plan.image_size, seed=seed)
        # the probe names an AU's row "AU1"; the noise ceiling and chance tables "F1 AU1"
        probe = probe.assign(
            measure=[f"F1 {m}" if m in AU_COLUMNS else m for m in probe["measure"]]
        ).set_index("measure")
        truth = difficulty.load_truth(root)
        bounds = difficulty.noise_ceiling(truth, "test").merge(
            difficulty.chance_scores(truth, "test", seed=seed)
        )
        bounds = bounds.set_index("measure")
        sub = ssmfar.frame_subset(root, plan.frame_stride, val_stride=plan.val_stride)
        out = runs_dir / name
        shutil.rmtree(out, ignore_errors=True)
        run_p = p.replace(image_size=plan.image_size, epochs=plan.epochs)
        fit = train.run("mfar", run_p, out, seed, data_root=sub, progress=False)
        (out / checkpoints.CHECKPOINT).unlink(missing_ok=True)
        mfar = scores_per_au(fit.test_predictions)
        readout = au_readout(run_p, runs_dir / f"{name}-au-readout", seed, sub)
        for measure in [f"F1 {c}" for c in AU_COLUMNS] + list(TASKS):
            has = measure in probe.index
            rows.append(
                {
                    "setting": name,
                    "au_gain": p.au_gain,
                    "nuisance": p.nuisance,
                    "measure": measure,
                    "probe": probe.at[measure, "probe"] if has else np.nan,
                    "probe-chance lo": probe.at[measure, "lo"] if has else np.nan,
                    "probe-chance hi": probe.at[measure, "hi"] if has else np.nan,
                    "mfar": mfar[measure],
                    "mfar epoch": int(fit.metrics["epoch"]),
                    "au readout": readout[measure] if measure in AU_MEASURES else np.nan,
                    "chance": bounds.at[measure, "chance"],
                    "ceiling": bounds.at[measure, "ceiling"],
                }
            )
    return pd.DataFrame(rows)


def readme_section(table: pd.DataFrame, source: str) -> str:
    """The README's learnability section from :func:`learnability`'s table (read from
    ``source``, named in the text): per AU and task, probe, MFAR and the AU read-out at each
    setting beside chance, then one sentence per setting."""
    settings = list(dict.fromkeys(table["setting"]))
    readout = "au readout" in table  # tables written before the read-out have no such column
    t = table.set_index(["setting", "measure"])
    measures = list(dict.fromkeys(table["measure"]))
    head = ["measure", "chance"]
    for s in settings:
        g = t.loc[s].iloc[0]
        tag = f"{s} (gain {g['au_gain']:g}, nuisance {g['nuisance']:g})"
        head += [f"probe, {tag}", f"MFAR, {tag}"] + ([f"AU read-out, {tag}"] if readout else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def num(x: float) -> str:
        return "" if not np.isfinite(x) else f"{x:.2f}"

    for m in measures:
        cells = [m.replace("F1 ", ""), num(t.loc[(settings[0], m), "chance"])]
        for s in settings:
            cells += [num(t.loc[(s, m), "probe"]), num(t.loc[(s, m), "mfar"])]
            cells += [num(t.loc[(s, m), "au readout"])] if readout else []
        lines.append("| " + " | ".join(cells) + " |")
    words = []
    for s in settings:
        g = t.loc[s]
        aus = [m for m in measures if m.startswith("F1 ")]
        above = int((g.loc[aus, "mfar"] > g.loc[aus, "chance"]).sum())
        words.append(
            f"- **{s}** (AU gain {g.iloc[0]['au_gain']:g}): MFAR overall "
            f"{g.at['overall', 'mfar']:.2f} against chance {g.at['overall', 'chance']:.2f} "
            f"(ceiling {g.at['overall', 'ceiling']:.2f}); expression F1 "
            f"{g.at['expr_f1', 'mfar']:.2f} (chance {g.at['expr_f1', 'chance']:.2f}), mean AU F1 "
            f"{g.at['au_f1', 'mfar']:.2f} (chance {g.at['au_f1', 'chance']:.2f}), VA CCC "
            f"{g.at['va', 'mfar']:.2f}; MFAR beats chance on {above} of {len(aus)} AUs; the "
            f"HOG probe reads mean AU F1 {g.at['au_f1', 'probe']:.2f}"
            + (
                f", the same network trained on MFAR's AU loss alone {g.at['au_f1', 'au readout']:.2f}"
                f" (above chance on {int((g.loc[aus, 'au readout'] > g.loc[aus, 'chance']).sum())}"
                f" of {len(aus)} AUs)."
                if readout
                else "."
            )
        )
    return "\n".join(
        [
            BEGIN,
            f"Generated from `{source}` by `make reproduce` (notebook 01, §9); do not edit by hand.",
            "Test split of the cpu profile, data seed 0: the HOG read-out probe, MFAR (compact "
            "network, notebook 03's budget, from scratch, one seed) and the AU read-out (the same "
            "network and budget trained on MFAR's AU loss alone) at each visibility setting.",
            "",
            *lines,
            "",
            *words,
            END,
        ]
    )


def update_readme(results: str | Path, readme: str | Path) -> bool:
    """Write :func:`readme_section` of ``results/01_data_audit/table_learnability.csv`` between
    the markers of ``readme``; False (nothing written) when the table or the markers are absent."""
    table_path = Path(results) / "01_data_audit" / "table_learnability.csv"
    readme = Path(readme)
    text = readme.read_text()
    if not table_path.exists() or BEGIN not in text or END not in text:
        return False
    source = f"{Path(results).name}/01_data_audit/table_learnability.csv"
    section = readme_section(pd.read_csv(table_path), source)
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    readme.write_text(pattern.sub(lambda _: section, text, count=1))
    return True
