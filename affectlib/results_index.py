"""``results/README.md``: the index of what the study reproduces, written from ``results/`` itself.

:func:`write_index` reads every ``results/NN_*/`` folder (its ``provenance.json``, tables and
``figures.md``) and writes one page: a status table per paper and table (:data:`PAPER_TABLES`:
regenerated on the embedded data, partly, or not, with the reason), then per notebook the commit
and profile it ran at, a warning when the code it describes changed after that commit, its
headline tables (ours with intervals beside the paper's, as the notebook wrote them), and every
other table and figure with its caption. ``reproduce`` calls it after a run into ``results/``;
``python -m affectlib index`` rewrites it. Nothing in it is typed by hand: a number on the page is
a number in a committed table.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from affectlib.files import atomic_write_text
from affectlib.results import FIGURE_PAGE, read_figure_page

INDEX = "README.md"
STATUSES = ("regenerated", "partly", "not reproduced")


@dataclass(frozen=True)
class PaperTable:
    """One published table: which notebook regenerates it (``notebook`` None: none does), the
    result files that hold it, how much of it runs (:data:`STATUSES`) and why not all."""

    paper: str
    table: str
    notebook: str | None
    files: tuple[str, ...]
    status: str
    note: str = ""


PAPERS = {
    "SS-MFAR": "Gera et al., SS-MFAR (ABAW 2022)",
    "Distribution matching": "Kollias, Sharmanska & Zafeiriou, AAAI 2024",
    "Teacher-student": "Multitask multi-database emotion recognition (ABAW 2021)",
    "TAL EmotioNet": "Wang et al., TAL EmotioNet challenge 2020",
    "Face pretraining": "Bulat et al., ECCV 2022 (supplement)",
}

PAPER_TABLES: tuple[PaperTable, ...] = (
    PaperTable(
        "SS-MFAR",
        "Table 1 (eight methods, s-Aff-Wild2)",
        "03_mfar_ssmfar",
        ("table1_ssmfar.md", "table_paired.md"),
        "regenerated",
        "every row; on the cpu profile the SS-MFAR-50 row trains the compact network (the budget "
        "has no room for a ResNet-50), testing only its 'no pretraining' half",
    ),
    PaperTable(
        "SS-MFAR",
        "Table 2 (challenge test set)",
        None,
        (),
        "not reproduced",
        "the organisers' test labels and other teams' systems",
    ),
    PaperTable(
        "Distribution matching",
        "Table 1 (expression-AU relatedness)",
        "02_task_relatedness",
        ("table_kollias_table1.md", "table_affwild2_beside_paper.md"),
        "regenerated",
        "the empirical column from the embedded annotations, where the truth is known",
    ),
    PaperTable(
        "Distribution matching",
        "Table 2 (single- vs multi-task, two data pairs)",
        "04_coupling_ablations",
        ("table_2_affectnet_emotionet.md", "table_2_affwild2.md"),
        "partly",
        "the paper's networks (EmoAffNet, EffNet-B2, TMIF-FEA) replaced by the profile's; the "
        "pairs on the embedded AffectNet-, EmotioNet- and Aff-Wild2-format sets",
    ),
    PaperTable(
        "Distribution matching",
        "Table 3 (ablation of the coupling terms)",
        "04_coupling_ablations",
        ("table_3_ablation.md", "claims.md"),
        "regenerated",
    ),
    PaperTable(
        "Distribution matching",
        "Table 4 (beyond faces: CelebA and others)",
        None,
        (),
        "not reproduced",
        "data sets of other domains, outside this study of facial affect",
    ),
    PaperTable(
        "Distribution matching",
        "Table 5 (other multi-task balancing methods)",
        "04_coupling_ablations",
        ("table_5_balancing.md",),
        "partly",
        "GradNorm and MGDA-UB run; AdaShare, TR and NTS-Net do not (the notebook's table of "
        "rows not reproduced gives the reason per row)",
    ),
    PaperTable(
        "Teacher-student",
        "Table 1 (teacher CNN)",
        "05_teacher_student",
        ("table1_teacher.md",),
        "regenerated",
    ),
    PaperTable(
        "Teacher-student",
        "Table 2 (student CNN)",
        "05_teacher_student",
        ("table2_student.md", "table_claims.md"),
        "regenerated",
    ),
    PaperTable(
        "Teacher-student",
        "Table 3 (CNN+GRU)",
        "05_teacher_student",
        ("table3_cnn_gru.md", "table_claims_temporal.md"),
        "regenerated",
    ),
    PaperTable(
        "Teacher-student",
        "Table 4 (state of the art)",
        None,
        (),
        "not reproduced",
        "other teams' systems",
    ),
    PaperTable(
        "TAL EmotioNet",
        "Table 1 (steps of the method, per AU group)",
        "06_emotionet_per_au",
        ("table_1_facial.md", "table_1_pose.md"),
        "partly",
        "rows needing one multi-view network per group, multi-crop inference or the dataset-C "
        "pretraining are listed as not reproduced in the table",
    ),
    PaperTable(
        "TAL EmotioNet",
        "Table 2 (challenge results)",
        None,
        (),
        "not reproduced",
        "the challenge's test set and other teams' systems",
    ),
    PaperTable(
        "TAL EmotioNet",
        "Table 3 (ablation)",
        "06_emotionet_per_au",
        ("table_3_ablation.md", "table_selection_bias.md"),
        "regenerated",
        "scored on the 11 of the challenge's 12 AUs the renderer draws",
    ),
    PaperTable(
        "Face pretraining",
        "Table 1 (DISFA AU intensity)",
        "07_face_pretraining",
        ("table_1_disfa.md", "table_verdicts_au.md"),
        "regenerated",
        "on the DISFA-format export of the embedded intensities",
    ),
    PaperTable(
        "Face pretraining",
        "Table 2 (BU-4DFE AU intensity)",
        None,
        (),
        "not reproduced",
        "no BU-4DFE-format set in the embedded data",
    ),
    PaperTable(
        "Face pretraining",
        "Table 3 (AffectNet, 100/10/2% labels)",
        "07_face_pretraining",
        ("table_3_affectnet.md", "table_verdicts.md"),
        "partly",
        "the ImageNet row needs ImageNet weights (a local file on the paper profile)",
    ),
)


# --- reading a results folder ---------------------------------------------------------------------
def _caption(md: Path) -> str:
    """The caption line a table's Markdown file starts with ('' when it has none)."""
    first = md.read_text().split("\n", 1)[0].strip()
    return "" if first.startswith("|") else first


def _table_body(md: Path) -> str:
    """The Markdown table of a table file, without its caption."""
    text = md.read_text()
    start = text.find("\n|") + 1 if not text.startswith("|") else 0
    return text[start:].strip() + "\n"


def code_changed_since(commit: str, paths: list[str], repo: Path) -> bool | None:
    """Whether ``paths`` differ between ``commit`` and the checkout's HEAD (None: unknown, e.g. no
    git or a commit this clone lacks). A notebook (``.ipynb``) counts as changed when its cells'
    sources differ, not its stored outputs: refreshing those changes no code."""
    sha = commit.removesuffix("+dirty")
    notebooks = [p for p in paths if p.endswith(".ipynb") and not p.startswith(":")]
    rest = [p for p in paths if p not in notebooks]
    try:
        r = subprocess.run(
            ["git", "diff", "--quiet", sha, "HEAD", "--", *rest], cwd=repo, capture_output=True
        )
        changed = {0: False, 1: True}.get(r.returncode)
        if changed is not False:
            return changed
        for path in notebooks:
            old, new = (_cell_sources(repo, f"{rev}:{path}") for rev in (sha, "HEAD"))
            if old != new:
                return True
    except OSError:
        return None
    return False


def _cell_sources(repo: Path, spec: str) -> list[tuple[str, str]] | None:
    """(cell type, source) of each cell of the notebook ``rev:path`` (None: not in that commit)."""
    r = subprocess.run(["git", "show", spec], cwd=repo, capture_output=True, text=True)
    if r.returncode != 0:
        return None
    cells = json.loads(r.stdout).get("cells", [])
    return [(c.get("cell_type", ""), "".join(c.get("source", ""))) for c in cells]


# modules that only read results (the index itself): changing them changes no notebook's results
READS_RESULTS_ONLY = ("affectlib/results_index.py",)
_STUDY_IMPORT = re.compile(r"from affectlib\.studies(?:\.(\w+))? import \(?([\w ,\n]+)")


def _study_refs(text: str, known: set[str]) -> set[str]:
    """The study modules (of ``known``) that ``text`` imports from ``affectlib.studies``."""
    out = set()
    for module, names in _STUDY_IMPORT.findall(text):
        if module:
            out.add(module)
        else:
            out |= {n.split()[0] for n in names.replace("\n", " ").split(",") if n.strip()}
    return out & known


def studies_used(name: str, repo: Path) -> set[str] | None:
    """The ``affectlib/studies`` modules notebook ``name`` runs: those its cells import, and those
    these import in turn. None when the notebook is not in ``repo``."""
    studies = repo / "affectlib" / "studies"
    notebook = repo / "notebooks" / f"{name}.ipynb"
    if not notebook.exists():
        return None
    known = {p.stem for p in studies.glob("*.py") if p.stem != "__init__"}
    cells = json.loads(notebook.read_text()).get("cells", [])
    todo = _study_refs("".join("".join(c.get("source", "")) for c in cells), known)
    used: set[str] = set()
    while todo:
        module = todo.pop()
        used.add(module)
        todo |= _study_refs((studies / f"{module}.py").read_text(), known) - used
    return used


def code_paths(name: str, repo: Path) -> list[str]:
    """The git pathspecs of the code notebook ``name``'s results depend on: the package and the
    notebook, less the other notebooks' study modules (:func:`studies_used`) and the modules that
    only read results (:data:`READS_RESULTS_ONLY`)."""
    paths = ["affectlib", f"notebooks/{name}.ipynb"]
    paths += [f":(exclude){p}" for p in READS_RESULTS_ONLY]
    used = studies_used(name, repo)
    if used is not None:
        others = {p.stem for p in (repo / "affectlib" / "studies").glob("*.py")} - used
        paths += [f":(exclude)affectlib/studies/{m}.py" for m in sorted(others - {"__init__"})]
    return paths


def _notebook_section(folder: Path, repo: Path) -> list[str]:
    name = folder.name
    prov_file = folder / "provenance.json"
    prov = json.loads(prov_file.read_text()) if prov_file.exists() else {}
    commit = str(prov.get("commit", "unknown"))
    profile = prov.get("profile") or {}
    profile_name = profile.get("name", "?") if isinstance(profile, dict) else str(profile)
    wall = prov.get("wall_time_s")
    lines = [f"## {name}", ""]
    ran = (
        f"Ran at commit `{commit[:12]}{'+dirty' if commit.endswith('+dirty') else ''}` on the "
        f"`{profile_name}` profile, {prov.get('started', 'start unknown')}"
        + (f", {float(wall):.0f} s" if wall is not None else "")
        + f", {prov.get('device', 'device unknown')}. "
        f"Executed notebook: [{name}.ipynb]({name}/{name}.ipynb)."
    )
    lines += [ran, ""]
    if commit.endswith("+dirty"):
        lines += ["**Warning:** the run's checkout had uncommitted changes.", ""]
    changed = code_changed_since(commit, code_paths(name, repo), repo)
    if changed:
        lines += [
            "**Warning:** the code this notebook runs (the package, its study modules or the notebook) changed after that commit; these "
            "results may not be what the current code gives (rerun: `python -m affectlib "
            f"reproduce --only {name[:2]}`).",
            "",
        ]
    headline = [t for t in PAPER_TABLES if t.notebook == name]
    shown: set[str] = set()
    for t in headline:
        for f in t.files:
            md = folder / f
            if not md.exists() or f in shown:
                continue
            shown.add(f)
            if "\n|" not in "\n" + md.read_text():  # prose (a notebook's computed claims)
                lines += [f"**{t.paper}: claims** ([{f}]({name}/{f})):", "", md.read_text(), ""]
                continue
            lines += [f"**{t.paper}, {t.table}** ([{f}]({name}/{f})): {_caption(md)}", ""]
            lines += [_table_body(md), ""]
    others = sorted(p for p in folder.glob("*.md") if p.name not in shown | {FIGURE_PAGE})
    if others:
        lines += ["Other tables:", ""]
        lines += [f"- [{p.name}]({name}/{p.name}): {_caption(p) or '(no caption)'}" for p in others]
        lines.append("")
    page = folder / FIGURE_PAGE
    captions = read_figure_page(page) if page.exists() else {}
    figures = sorted({*captions, *(p.name for p in folder.glob("*.png"))})
    if figures:
        lines += [f"Figures ([all on one page]({name}/{FIGURE_PAGE})):" if captions else "Figures:"]
        lines.append("")
        lines += [f"- [{f}]({name}/{f}): {captions.get(f) or '(no caption)'}" for f in figures]
        lines.append("")
    return lines


# --- the page -------------------------------------------------------------------------------------
def render_index(results: Path, repo: Path) -> str:
    """The text of ``results/README.md`` for the results folder ``results`` of checkout ``repo``."""
    folders = sorted(p for p in results.iterdir() if p.is_dir() and p.name[:2].isdigit())
    present = {p.name for p in folders}
    lines = [
        "# What the study reproduces",
        "",
        "Written by `python -m affectlib reproduce` (or `python -m affectlib index`) from the "
        "folders below; do not edit by hand. Every number of ours was measured on the embedded "
        "data set (rendered faces; see notebook 01), never on the papers' data: columns marked "
        "`paper:` are the papers' published numbers, shown beside ours.",
        "",
        "| paper | table | status | notebook | note |",
        "|---|---|---|---|---|",
    ]
    for t in PAPER_TABLES:
        where = t.notebook or ""
        if t.notebook and t.notebook not in present:
            where, status = f"{t.notebook} (no results yet)", "not yet run"
        else:
            status = t.status
        lines.append(f"| {t.paper} | {t.table} | {status} | {where} | {t.note} |")
    lines += ["", "Papers: " + "; ".join(f"{k}: {v}" for k, v in PAPERS.items()) + ".", ""]
    for folder in folders:
        lines += _notebook_section(folder, repo)
    return "\n".join(lines).rstrip() + "\n"


STATUS_START, STATUS_END = "<!-- status:start -->", "<!-- status:end -->"


def write_index(results: str | Path, repo: str | Path | None = None) -> Path:
    """Write ``results/README.md`` (see :func:`render_index`) and, when the checkout's README has
    the status markers, its short status table per paper (:func:`status_table`); returns the
    index's path."""
    results = Path(results)
    repo = Path(repo) if repo else results.resolve().parent
    readme = repo / "README.md"
    if readme.exists():
        text = readme.read_text()
        if STATUS_START in text and STATUS_END in text:
            head, rest = text.split(STATUS_START, 1)
            _, tail = rest.split(STATUS_END, 1)
            new = f"{head}{STATUS_START}\n{status_table()}{STATUS_END}{tail}"
            if new != text:
                atomic_write_text(readme, new)
    return atomic_write_text(results / INDEX, render_index(results, repo))


def status_table() -> str:
    """The project README's short status table: one row per paper (:func:`summary_rows`)."""
    lines = ["| paper | status | tables |", "|---|---|---|"]
    lines += [f"| {p} | {s} | {t} |" for p, s, t in summary_rows()]
    return "\n".join(lines) + "\n"


def summary_rows() -> list[tuple[str, str, str]]:
    """(paper, status, tables) per paper, for the project README's short status table: a paper is
    'reproduced' when every table of it that a notebook runs is regenerated, else 'partial'."""
    out = []
    for paper in PAPERS:
        tables = [t for t in PAPER_TABLES if t.paper == paper]
        run = [t for t in tables if t.notebook]
        full = all(t.status == "regenerated" for t in tables)
        status = "reproduced" if full else "partial" if run else "not yet"
        names = ", ".join(f"{t.table.split(' (')[0]} ({t.status})" for t in tables)
        out.append((paper, status, names))
    return out
