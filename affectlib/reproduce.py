"""Run the study's notebooks headless, in order, with papermill: ``python -m affectlib reproduce``."""

from __future__ import annotations

import ast
import os
import re
import time
from pathlib import Path

from tqdm.auto import tqdm

from . import profiles, results_index

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names the notebook, the cell and the error."""


def find_notebooks(folder: str | Path = NOTEBOOK_DIR, only: list[str] | None = None) -> list[Path]:
    """``NN_*.ipynb`` in ``folder`` in order; ``only`` keeps those whose number (``"01"``) or name is
    listed. An unknown entry in ``only`` is an error, not an empty run."""
    folder = Path(folder)
    books = sorted(p for p in folder.glob("*.ipynb") if re.match(r"\d\d_", p.name))
    if not books:
        raise FileNotFoundError(f"no notebooks NN_*.ipynb in {folder}")
    if not only:
        return books
    chosen = []
    for key in only:
        match = [p for p in books if p.name[:2] == key.zfill(2) or p.stem == key]
        if not match:
            known = ", ".join(p.stem for p in books)
            raise ValueError(f"--only {key}: no such notebook; known: {known}")
        chosen += [p for p in match if p not in chosen]
    return sorted(chosen)


def parse_parameter(text: str) -> tuple[str, object]:
    """``NAME=VALUE`` from the command line: VALUE as a Python literal when it is one (``3``,
    ``True``, ``[0, 1]``), else as a string (``/data/abaw``)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip().isidentifier():
        raise ValueError(f"-p expects NAME=VALUE, got {text!r}")
    try:
        return name.strip(), ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name.strip(), value


def _failed_cell(notebook: Path, index: int) -> str:
    """The first line of the failing cell (each cell starts with a comment naming its job)."""
    import nbformat  # deferred: the notebook stack (nbformat, papermill, nbclient) is heavy

    try:
        cell = nbformat.read(notebook, as_version=4).cells[index]
    except (OSError, IndexError, ValueError):
        return ""
    return cell.source.strip().splitlines()[0] if cell.source.strip() else ""


def notebook_parameters(path: Path) -> set[str]:
    """The names the notebook's parameters cell declares."""
    from papermill.inspection import inspect_notebook  # deferred: heavy (see above)

    return set(inspect_notebook(str(path)))


# the kernels of a headless run: no progress bars (they would be dumped into the cell outputs, line
# by line) and no warning that Jupyter's widget for them is missing
QUIET_KERNEL_ENV = {"TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore:IProgress not found"}
REPO = Path(__file__).resolve().parents[1]


def scrub_paths(path: Path, root: Path | None = None) -> None:
    """Rewrite an executed notebook so that it names files relative to the checkout ``root``:
    ``/abs/checkout/results/x`` becomes ``results/x`` (outputs and papermill's metadata), so the
    committed copies carry no machine's absolute paths (``root`` default: this checkout)."""
    root = root or REPO
    text = path.read_text()
    clean = text.replace(f"{root}/", "").replace(str(root), ".")
    if clean != text:
        path.write_text(clean)


def _kernel_env() -> dict[str, str | None]:
    """Set :data:`QUIET_KERNEL_ENV` (a warning filter is added to any already set) and put this
    checkout first on the kernels' ``PYTHONPATH``, so that they import the same ``affectlib`` as
    the process that runs them (an editable install elsewhere would win otherwise); returns the
    previous values for :func:`_restore_env`."""
    saved = {k: os.environ.get(k) for k in (*QUIET_KERNEL_ENV, "PYTHONPATH")}
    for k, v in QUIET_KERNEL_ENV.items():
        old = os.environ.get(k)
        os.environ[k] = f"{old},{v}" if k == "PYTHONWARNINGS" and old else v
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = f"{REPO}{os.pathsep}{old}" if old else str(REPO)
    return saved


def _restore_env(saved: dict[str, str | None]) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def run_notebook(path: Path, out: Path, parameters: dict, kernel: str | None = None) -> Path:
    """Execute one notebook with papermill; the executed copy goes to ``out/<stem>/<stem>.ipynb``.

    The kernel runs in the notebook's folder, without progress bars; ``out_dir`` is passed
    relative to that folder, and the executed copy names files relative to the checkout."""
    import papermill as pm  # deferred: heavy, only a run needs it
    from papermill.exceptions import PapermillExecutionError

    target = out / path.stem / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if "out_dir" in parameters:
        parameters = {**parameters, "out_dir": os.path.relpath(parameters["out_dir"], path.parent)}
    saved = _kernel_env()
    try:
        pm.execute_notebook(
            str(path),
            str(target),
            parameters=parameters,
            kernel_name=kernel,
            progress_bar=False,
            cwd=str(path.parent),
        )
    except PapermillExecutionError as e:
        # e.cell_index counts the cells of the executed copy, which holds the injected parameters
        first = _failed_cell(target, e.cell_index)
        raise NotebookFailed(
            f"{path.name} failed in cell {e.cell_index} of the executed copy "
            f"(execution count {e.exec_count}{'; ' + repr(first) if first else ''}): "
            f"{e.ename}: {e.evalue}\n  executed copy with the traceback: {target}"
        ) from None
    finally:
        _restore_env(saved)
        if target.exists():
            scrub_paths(target)
    return target


def reproduce(
    profile: str = "cpu",
    only: list[str] | None = None,
    out: str | Path = "results",
    notebooks: str | Path = NOTEBOOK_DIR,
    parameters: dict | None = None,
) -> list[Path]:
    """Run every notebook (or those in ``only``) on ``profile``, writing under ``out``.

    ``parameters`` go to each notebook that declares them (``data_root``, ``format``, ...); a name
    that no selected notebook declares is an error, not a silent no-op."""
    profiles.get(profile)  # an unknown profile fails here, before any notebook runs
    out = Path(out).resolve()
    books = find_notebooks(notebooks, only)
    parameters = dict(parameters or {})
    declared = {nb: notebook_parameters(nb) for nb in books}
    unknown = set(parameters) - set().union(*declared.values())
    if unknown:
        raise ValueError(f"no selected notebook has the parameter(s) {', '.join(sorted(unknown))}")
    # the environment overrides are for nbval only: the kernels of a reproduce run must not inherit
    # them (they are restored afterwards, so the calling process is left as it was)
    saved = {
        v: os.environ.pop(v)
        for v in (profiles.PROFILE_ENV, profiles.RESULTS_ENV)
        if v in os.environ
    }
    done = []
    try:
        bar = tqdm(books, desc=f"reproduce ({profile})", unit="notebook")
        for nb in bar:
            bar.set_postfix_str(nb.stem)
            t0 = time.perf_counter()
            given = {k: v for k, v in parameters.items() if k in declared[nb]}
            done.append(run_notebook(nb, out, {**given, "profile": profile, "out_dir": str(out)}))
            tqdm.write(f"{nb.stem}: {time.perf_counter() - t0:.1f} s")
    finally:
        os.environ.update(saved)
    # the README's learnability section is generated from the committed results, never typed
    repo = Path(__file__).resolve().parents[1]
    first = any(nb.stem.startswith("01") for nb in books)
    if profile == "cpu" and out == (repo / "results").resolve() and first:
        from affectlib.studies import instrument  # deferred: torch, for this one case only

        if instrument.update_readme(out, repo / "README.md"):
            tqdm.write("README.md: learnability section regenerated from results/01_data_audit")
    # the index of what is reproduced, from every results folder there (results/README.md)
    index = results_index.write_index(out, repo)
    tqdm.write(f"{index}: the index of the results rewritten")
    return done


def refresh_stored(paths: list[Path], timeout: int = 600) -> None:
    """Execute the stored notebooks in place on the smoke profile, so that the outputs nbval compares
    (cells marked ``# NBVAL_CHECK_OUTPUT``) are those of the smoke run. Results go to a scratch folder."""
    import nbformat  # deferred: the notebook stack (nbformat, papermill, nbclient) is heavy
    from nbclient import NotebookClient  # deferred: heavy, only a refresh needs it

    scratch = Path(__file__).resolve().parent.parent / "build" / "test-results"
    saved = {v: os.environ.get(v) for v in (profiles.PROFILE_ENV, profiles.RESULTS_ENV)}
    os.environ[profiles.PROFILE_ENV] = "smoke"
    os.environ[profiles.RESULTS_ENV] = str(scratch)
    quiet = _kernel_env()
    try:
        for path in tqdm(paths, desc="refresh stored notebooks (smoke)", unit="notebook"):
            nb = nbformat.read(path, as_version=4)
            NotebookClient(
                nb, timeout=timeout, resources={"metadata": {"path": str(path.parent)}}
            ).execute()
            for cell in nb.cells:  # keep the stored copy free of run-specific metadata
                cell.metadata.pop("execution", None)
            nbformat.write(nb, path)
            scrub_paths(path)
    finally:
        _restore_env(quiet)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
