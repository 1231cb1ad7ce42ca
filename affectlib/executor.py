"""One executor for every notebook's plan of runs: ``local``, ``pool`` or ``submitit``.

A study turns its plan (methods x seeds x settings) into :class:`Job` s, each a call of a
module-level function that trains one run (or one group of runs that share teachers) into its own
folder and returns a JSON-able record of what the notebook reports. :func:`run_plan` executes the
jobs on one of three backends and returns the records in plan order, whatever order they finished
in, so a study's tables do not depend on the backend:

- ``local``: one after another, in this process (the default; what a notebook did before);
- ``pool``: up to ``max_parallel`` runs at once in worker processes of this machine
  (:class:`concurrent.futures.ProcessPoolExecutor`, spawned). The cores are shared: each worker's
  torch uses ``cores // max_parallel`` threads. With GPUs each worker is pinned to one
  (``CUDA_VISIBLE_DEVICES``), worker ``i`` to GPU ``i mod n``, so runs share the GPUs;
- ``submitit``: each job a Slurm job through submitit (``submitit.AutoExecutor``; on a machine
  without Slurm it falls back to submitit's local executor, subprocesses on this machine).
  ``cluster`` "local" / "debug" forces submitit's local / in-process executors (the tests).

Finished runs are skipped, interrupted runs resumed. Each job keeps ``job.json`` in its folder:
the job's *spec* (the function, its arguments, fingerprinted where they are tables or arrays, a
hash of the package's code, the run's CPU threads and whether the CPU computes bf16 in hardware,
which a precision of "auto" resolves against), the status ("started" / "finished") and the record. A rerun:

- spec equal and finished: the stored record is returned, nothing runs (``reused``: True);
- spec equal and started: the function is called again in the same folder; a function that
  checkpoints (:func:`affectlib.train.fit` does, unless the study turned checkpoints off)
  continues where the interrupted run stopped;
- no ``job.json`` or another spec (other arguments or other code): the folder is emptied first,
  so nothing of an older run is mistaken for this one's.

``fresh=True`` empties every job's folder first (wall times of fresh runs). Only the code of
``affectlib`` is hashed: a change to it reruns every job, a change to a notebook's text does not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from affectlib.progress import bars_on

from .files import atomic_write_text, fingerprint_table

BACKENDS = ("local", "pool", "submitit")
JOB_FILE = "job.json"
PACKAGE = Path(__file__).resolve().parent
# a worker's share of the machine's cores: read by distributed.configure_runtime
PARALLEL_ENV = "AFFECTLIB_PARALLEL_RUNS"


@dataclass(frozen=True)
class Job:
    """One call of ``fn(out_dir=out_dir, **kwargs)``, which returns a JSON-able record.

    ``fn`` must be a module-level function (the ``pool`` and ``submitit`` backends pickle it by
    name); ``name`` is unique within a plan (e.g. ``"mfar/seed0"``) and names the job in progress
    and errors; ``out_dir`` is the job's own folder."""

    name: str
    out_dir: Path
    fn: Callable[..., dict[str, Any]]
    kwargs: Mapping[str, Any] = field(default_factory=dict)


class JobFailed(RuntimeError):
    """A job raised; the message names the job and its folder, the cause is chained."""


# --- what a job is ----------------------------------------------------------------------------------
def code_hash() -> str:
    """SHA-256 (first 16 hex digits) of every ``affectlib/**/*.py`` file, names and bytes."""
    h = hashlib.sha256()
    for p in sorted(PACKAGE.rglob("*.py")):
        h.update(str(p.relative_to(PACKAGE)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def describe(value: Any) -> Any:
    """``value`` as JSON: dataclasses and mappings recursively, tables and arrays by content
    fingerprint (``{"table": sha}``, ``{"array": sha, "shape": [...]}``), paths as strings; any
    other object by its type and ``repr``. Equal descriptions mean equal inputs for a job."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {"__class__": type(value).__qualname__, **describe(fields)}
    if isinstance(value, Mapping):
        return {str(k): describe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [describe(v) for v in value]
    if isinstance(value, pd.DataFrame):
        return {"table": fingerprint_table(value), "columns": [str(c) for c in value.columns]}
    if isinstance(value, pd.Series):
        return describe(value.to_frame())
    if isinstance(value, np.ndarray) or type(value).__module__.startswith("torch"):
        array = np.ascontiguousarray(np.asarray(value.cpu() if hasattr(value, "cpu") else value))
        return {
            "array": hashlib.sha256(array.tobytes()).hexdigest()[:16],
            "shape": list(array.shape),
        }
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return {"__class__": type(value).__qualname__, "repr": repr(value)}


def cpu_threads(max_parallel: int) -> int:
    """The torch threads of one run when ``max_parallel`` runs share this machine's cores."""
    return max(1, (os.cpu_count() or 1) // max_parallel)


def spec(job: Job, code: str | None = None, max_parallel: int = 1) -> dict[str, Any]:
    """What makes two jobs the same run: the function, its arguments, the package's code, the
    run's CPU threads (a CPU run's sums, hence its last digits, depend on them) and whether the CPU
    computes bf16 in hardware (what a profile's precision "auto" resolves to on it)."""
    from affectlib.distributed import cpu_runs_bf16  # deferred: torch, which the plans need not

    return json.loads(
        json.dumps(
            {
                "fn": f"{job.fn.__module__}.{job.fn.__qualname__}",
                "kwargs": describe(dict(job.kwargs)),
                "code": code or code_hash(),
                "threads": cpu_threads(max_parallel),
                "cpu_bf16": cpu_runs_bf16(),
            },
            sort_keys=True,
            default=str,
        )
    )


def _read_job(out_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out_dir / JOB_FILE).read_text())
    except (OSError, ValueError):
        return None


def _write_job(job: Job, job_spec: dict, status: str, record: dict | None = None) -> None:
    entry = {"name": job.name, "status": status, "spec": job_spec, "record": record}
    out_dir = Path(job.out_dir)
    atomic_write_text(out_dir / JOB_FILE, json.dumps(entry, indent=2, default=str) + "\n")


def prepare(job: Job, job_spec: dict, fresh: bool = False) -> dict[str, Any] | None:
    """The stored record when ``job`` finished before under ``job_spec``; else None, with the
    folder emptied unless it holds an interrupted run of the same spec (resumed)."""
    out = Path(job.out_dir)
    stored = None if fresh else _read_job(out)
    if stored is not None and stored.get("spec") == job_spec:
        if stored.get("status") == "finished":
            return {**stored["record"], "reused": True}
        return None  # interrupted: the function resumes from its checkpoint
    shutil.rmtree(out, ignore_errors=True)
    return None


def execute(job: Job, job_spec: dict) -> dict[str, Any]:
    """Run one job in this process: mark it started, call it, store its record as finished."""
    out = Path(job.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_job(job, job_spec, "started")
    t0 = time.perf_counter()
    record = dict(job.fn(out_dir=out, **job.kwargs))
    record.setdefault("job_wall_s", round(time.perf_counter() - t0, 2))
    record = json.loads(json.dumps(record, default=str))
    _write_job(job, job_spec, "finished", record)
    return {**record, "reused": False}


# --- sharing the machine ---------------------------------------------------------------------------
@contextlib.contextmanager
def _cpu_share(max_parallel: int):
    """Each run's torch takes ``cores // max_parallel`` threads while this is active, on every
    backend: a CPU run's floating-point sums depend on its thread count, so a plan run one at a
    time with ``max_parallel`` N gives exactly the numbers of the pool's N runs at once."""
    previous = os.environ.get(PARALLEL_ENV)
    os.environ[PARALLEL_ENV] = str(max_parallel)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(PARALLEL_ENV, None)
        else:
            os.environ[PARALLEL_ENV] = previous


# --- the pool's workers -----------------------------------------------------------------------------
def _init_worker(counter, max_parallel: int, gpus: int) -> None:
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    os.environ[PARALLEL_ENV] = str(max_parallel)
    if gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(index % gpus)


def _gpu_count() -> int:
    import torch  # deferred: the executor itself needs no torch; only the pool asks for GPUs

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


# --- the plan -----------------------------------------------------------------------------------
def run_plan(
    jobs: Sequence[Job],
    *,
    executor: str = "local",
    max_parallel: int = 1,
    fresh: bool = False,
    folder: str | Path | None = None,
    cluster: str | None = None,
    slurm: Mapping[str, Any] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Run ``jobs`` on ``executor`` and return their records in plan order (module docstring).

    ``max_parallel``: concurrent runs of ``pool`` / ``submitit`` (``local`` runs one at a time);
    ``folder``: submitit's logs (default ``<first job's parent>/submitit``); ``cluster``: submitit's
    cluster (None: Slurm when present, else local); ``slurm``: submitit parameters (e.g.
    ``{"timeout_min": 60, "gpus_per_node": 1, "slurm_partition": "gpu"}``); ``log``: called with one
    line per finished job. A failing job raises :class:`JobFailed` after the others finished."""
    if executor not in BACKENDS:
        raise ValueError(f"executor must be one of {BACKENDS}, got {executor!r}")
    if max_parallel < 1:
        raise ValueError(f"max_parallel must be >= 1, got {max_parallel}")
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"job names must be unique within a plan; repeated: {dup}")
    dirs = [str(Path(j.out_dir).resolve()) for j in jobs]
    if len(set(dirs)) != len(dirs):
        raise ValueError("two jobs of the plan share an output folder")
    code = code_hash()
    specs = [spec(j, code, max_parallel) for j in jobs]
    records: list[dict[str, Any] | None] = [
        prepare(j, s, fresh) for j, s in zip(jobs, specs, strict=True)
    ]
    todo = [i for i, r in enumerate(records) if r is None]
    bar = tqdm(total=len(jobs), desc="runs", unit="run", disable=not bars_on(progress))
    bar.update(len(jobs) - len(todo))

    def done(i: int, record: dict[str, Any]) -> None:
        records[i] = record
        bar.update()
        if log is not None:
            log(f"{jobs[i].name}: finished ({record.get('job_wall_s', 0):.1f} s)")

    failures: list[tuple[int, BaseException]] = []
    try:
        if executor == "local" or not todo:
            with _cpu_share(max_parallel):
                for i in todo:
                    try:
                        done(i, execute(jobs[i], specs[i]))
                    except Exception as e:  # noqa: BLE001 - reported with the job's name below
                        failures.append((i, e))
        elif executor == "pool":
            failures = _run_pool(jobs, specs, todo, max_parallel, done)
        else:
            failures = _run_submitit(jobs, specs, todo, max_parallel, done, folder, cluster, slurm)
    finally:
        bar.close()
    if failures:
        i, error = failures[0]
        others = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise JobFailed(
            f"job {jobs[i].name} in {jobs[i].out_dir} failed{others}: "
            f"{type(error).__name__}: {error}"
        ) from error
    return [r for r in records if r is not None]


def _run_pool(jobs, specs, todo, max_parallel, done) -> list[tuple[int, BaseException]]:
    ctx = multiprocessing.get_context("spawn")
    counter = ctx.Value("i", 0)
    workers = min(max_parallel, len(todo))
    failures = []
    with ProcessPoolExecutor(
        workers,
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(counter, max_parallel, _gpu_count()),
    ) as pool:
        pending = {pool.submit(execute, jobs[i], specs[i]): i for i in todo}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                i = pending.pop(f)
                try:
                    done(i, f.result())
                except Exception as e:  # noqa: BLE001 - reported with the job's name
                    failures.append((i, e))
    return failures


def _run_submitit(
    jobs, specs, todo, max_parallel, done, folder, cluster, slurm
) -> list[tuple[int, BaseException]]:
    import submitit  # deferred: only this backend needs it

    folder = Path(folder) if folder else Path(jobs[todo[0]].out_dir).parent / "submitit"
    ex = submitit.AutoExecutor(folder=folder, cluster=cluster)
    params = {"timeout_min": 24 * 60, **(slurm or {})}
    ex.update_parameters(**params)
    # at most max_parallel jobs in flight (submitit's local executor would start them all at once);
    # local jobs share this machine's cores like the pool's workers
    queue, running, failures = list(todo), [], []
    with _cpu_share(max_parallel if ex.cluster != "slurm" else 1):
        while queue or running:
            while queue and len(running) < max_parallel:
                i = queue.pop(0)
                running.append((i, ex.submit(execute, jobs[i], specs[i])))
            finished = [(i, h) for i, h in running if h.done()]
            if not finished:
                time.sleep(0.2)
                continue
            for i, handle in finished:
                running.remove((i, handle))
                try:
                    done(i, handle.result())
                except Exception as e:  # noqa: BLE001 - reported with the job's name
                    failures.append((i, e))
    return failures
