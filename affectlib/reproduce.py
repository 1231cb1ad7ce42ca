"""Run the study's notebooks headless, in order, with papermill: ``python -m affectlib reproduce``."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from tqdm.auto import tqdm

from . import profiles

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


def run_notebook(path: Path, out: Path, parameters: dict, kernel: str | None = None) -> Path:
    """Execute one notebook with papermill; the executed copy goes to ``out/<stem>/<stem>.ipynb``."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    target = out / path.stem / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
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
        raise NotebookFailed(
            f"{path.name} failed in cell {e.cell_index} (execution count {e.exec_count}): "
            f"{e.ename}: {e.evalue}\n  executed copy with the traceback: {target}"
        ) from None
    return target


def reproduce(
    profile: str = "cpu",
    only: list[str] | None = None,
    out: str | Path = "results",
    notebooks: str | Path = NOTEBOOK_DIR,
) -> list[Path]:
    """Run every notebook (or those in ``only``) on ``profile``, writing under ``out``."""
    profiles.get(profile)  # an unknown profile fails here, before any notebook runs
    out = Path(out).resolve()
    books = find_notebooks(notebooks, only)
    # the environment overrides are for nbval only; a reproduce run must not inherit them
    for var in (profiles.PROFILE_ENV, profiles.RESULTS_ENV):
        os.environ.pop(var, None)
    done = []
    bar = tqdm(books, desc=f"reproduce ({profile})", unit="notebook")
    for nb in bar:
        bar.set_postfix_str(nb.stem)
        t0 = time.perf_counter()
        done.append(run_notebook(nb, out, {"profile": profile, "out_dir": str(out)}))
        tqdm.write(f"{nb.stem}: {time.perf_counter() - t0:.1f} s")
    return done


def refresh_stored(paths: list[Path], timeout: int = 600) -> None:
    """Execute the stored notebooks in place on the smoke profile, so that the outputs nbval compares
    (cells marked ``# NBVAL_CHECK_OUTPUT``) are those of the smoke run. Results go to a scratch folder."""
    import nbformat
    from nbclient import NotebookClient

    scratch = Path(__file__).resolve().parent.parent / "build" / "test-results"
    saved = {v: os.environ.get(v) for v in (profiles.PROFILE_ENV, profiles.RESULTS_ENV)}
    os.environ[profiles.PROFILE_ENV] = "smoke"
    os.environ[profiles.RESULTS_ENV] = str(scratch)
    try:
        for path in tqdm(paths, desc="refresh stored notebooks (smoke)", unit="notebook"):
            nb = nbformat.read(path, as_version=4)
            NotebookClient(
                nb, timeout=timeout, resources={"metadata": {"path": str(path.parent)}}
            ).execute()
            for cell in nb.cells:  # keep the stored copy free of run-specific metadata
                cell.metadata.pop("execution", None)
            nbformat.write(nb, path)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
