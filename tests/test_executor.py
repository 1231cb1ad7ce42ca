"""The executor: records in plan order on every backend, finished jobs skipped, interrupted ones
resumed, changed ones rerun from an empty folder, failures named."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from affectlib import executor as ex


# module-level job functions: the pool and submitit pickle them by name
def square(out_dir: Path, x: int, delay: float = 0.0) -> dict:
    """A toy run: counts its calls in its folder, sleeps, returns x squared and its environment."""
    calls = out_dir / "calls.txt"
    n = int(calls.read_text()) + 1 if calls.exists() else 1
    calls.write_text(str(n))
    time.sleep(delay)
    return {"x": x, "y": x * x, "calls": n, "share": os.environ.get(ex.PARALLEL_ENV, "1")}


def resumable(out_dir: Path, steps: int) -> dict:
    """Counts to ``steps``, one step per call up to a crash at step 2 on the first call; the
    progress lives in a checkpoint file, as train.fit keeps its own."""
    ckpt = out_dir / "checkpoint.txt"
    done = int(ckpt.read_text()) if ckpt.exists() else 0
    first_call = not (out_dir / "crashed").exists()
    for step in range(done + 1, steps + 1):
        ckpt.write_text(str(step))
        if first_call and step == 2:
            (out_dir / "crashed").write_text("")
            raise KeyboardInterrupt("killed at step 2")
    return {"resumed_from": done, "steps": steps}


def fails(out_dir: Path, x: int) -> dict:
    if x == 1:
        raise ValueError("bad input x=1")
    return {"x": x}


def _jobs(tmp_path: Path, xs, delay=lambda x: 0.0):
    return [ex.Job(f"x{x}", tmp_path / f"x{x}", square, {"x": x, "delay": delay(x)}) for x in xs]


def _scores(records):
    return [{k: r[k] for k in ("x", "y")} for r in records]


def test_local_runs_in_plan_order_and_stores_each_record(tmp_path):
    records = ex.run_plan(_jobs(tmp_path, [3, 1, 2]), progress=False)
    assert _scores(records) == [{"x": 3, "y": 9}, {"x": 1, "y": 1}, {"x": 2, "y": 4}]
    stored = json.loads((tmp_path / "x3" / ex.JOB_FILE).read_text())
    assert stored["status"] == "finished" and stored["name"] == "x3"
    assert stored["record"]["y"] == 9 and not records[0]["reused"]


def test_a_rerun_skips_finished_jobs_without_calling_them(tmp_path):
    first = ex.run_plan(_jobs(tmp_path, [1, 2]), progress=False)
    again = ex.run_plan(_jobs(tmp_path, [1, 2]), progress=False)
    assert _scores(first) == _scores(again)
    assert all(r["reused"] for r in again)
    assert (tmp_path / "x1" / "calls.txt").read_text() == "1"  # not called a second time


def test_fresh_reruns_every_job(tmp_path):
    ex.run_plan(_jobs(tmp_path, [1]), progress=False)
    again = ex.run_plan(_jobs(tmp_path, [1]), progress=False, fresh=True)
    assert not again[0]["reused"] and again[0]["calls"] == 1  # the folder was emptied first


def test_changed_arguments_rerun_from_an_empty_folder(tmp_path):
    ex.run_plan([ex.Job("a", tmp_path / "a", square, {"x": 2})], progress=False)
    (tmp_path / "a" / "stale.txt").write_text("from the older run")
    out = ex.run_plan([ex.Job("a", tmp_path / "a", square, {"x": 5})], progress=False)
    assert out[0]["y"] == 25 and out[0]["calls"] == 1 and not out[0]["reused"]
    assert not (tmp_path / "a" / "stale.txt").exists()


def test_changed_code_reruns(tmp_path, monkeypatch):
    ex.run_plan(_jobs(tmp_path, [2]), progress=False)
    monkeypatch.setattr(ex, "code_hash", lambda: "another-version")
    out = ex.run_plan(_jobs(tmp_path, [2]), progress=False)
    assert not out[0]["reused"]


def test_an_interrupted_job_resumes_in_its_folder(tmp_path):
    job = ex.Job("r", tmp_path / "r", resumable, {"steps": 4})
    with pytest.raises(KeyboardInterrupt):
        ex.run_plan([job], progress=False)
    assert json.loads((tmp_path / "r" / ex.JOB_FILE).read_text())["status"] == "started"
    out = ex.run_plan([job], progress=False)
    assert out[0]["resumed_from"] == 2 and out[0]["steps"] == 4


def test_tables_and_arrays_in_the_arguments_are_described_by_content():
    a = pd.DataFrame({"x": [1, 2]})
    job = lambda t: ex.Job("j", Path("/tmp/j"), square, {"table": t})  # noqa: E731
    assert ex.spec(job(a)) == ex.spec(job(a.copy()))
    assert ex.spec(job(a)) != ex.spec(job(a.assign(x=[1, 3])))
    d = ex.describe({"w": np.arange(3.0), "p": Path("/x"), "n": np.int64(4)})
    assert d["p"] == "/x" and d["n"] == 4 and d["w"]["shape"] == [3]


def test_a_run_stored_on_a_cpu_with_bf16_hardware_is_not_reused_on_one_without(monkeypatch):
    from affectlib import distributed

    job = ex.Job("j", Path("/tmp/j"), square, {"x": 2})
    monkeypatch.setattr(distributed, "cpu_runs_bf16", lambda: True)
    with_bf16 = ex.spec(job)
    monkeypatch.setattr(distributed, "cpu_runs_bf16", lambda: False)
    assert ex.spec(job) != with_bf16 and ex.spec(job) == ex.spec(job)


def test_a_failing_job_is_named_and_the_others_are_kept(tmp_path):
    jobs = [ex.Job(f"f{x}", tmp_path / f"f{x}", fails, {"x": x}) for x in (0, 1, 2)]
    with pytest.raises(ex.JobFailed, match=r"job f1 .* ValueError: bad input x=1"):
        ex.run_plan(jobs, progress=False)
    assert json.loads((tmp_path / "f2" / ex.JOB_FILE).read_text())["status"] == "finished"


def test_plans_with_repeated_names_or_folders_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unique"):
        ex.run_plan([ex.Job("a", tmp_path / "1", square, {"x": 1})] * 2, progress=False)
    two = [ex.Job(n, tmp_path / "same", square, {"x": 1}) for n in "ab"]
    with pytest.raises(ValueError, match="share an output folder"):
        ex.run_plan(two, progress=False)
    with pytest.raises(ValueError, match="executor must be one of"):
        ex.run_plan([], executor="threads", progress=False)


def test_the_pool_returns_the_local_records_in_plan_order(tmp_path):
    # the first job finishes last: the records still come back in plan order
    local = ex.run_plan(_jobs(tmp_path / "l", [1, 2, 3]), progress=False)
    pool = ex.run_plan(
        _jobs(tmp_path / "p", [1, 2, 3], delay=lambda x: 0.6 if x == 1 else 0.0),
        executor="pool",
        max_parallel=2,
        progress=False,
    )
    assert _scores(pool) == _scores(local)
    assert {r["share"] for r in pool} == {"2"}  # each worker takes half the cores


def test_submitit_local_executor_returns_the_local_records(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    # submitit's job processes import the job function by module name: this file's folder
    here = str(Path(__file__).parent)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    )
    local = ex.run_plan(_jobs(tmp_path / "l", [2, 3]), progress=False)
    out = ex.run_plan(
        _jobs(tmp_path / "s", [2, 3]),
        executor="submitit",
        cluster="local",
        max_parallel=2,
        folder=tmp_path / "logs",
        progress=False,
    )
    assert _scores(out) == _scores(local)
    again = ex.run_plan(
        _jobs(tmp_path / "s", [2, 3]),
        executor="submitit",
        cluster="local",
        max_parallel=2,
        progress=False,
    )
    assert all(r["reused"] for r in again)


def test_a_studys_runs_on_the_pool_equal_the_local_runs(tmp_path):
    # notebook 03's runs (smoke profile, one epoch): the same scores whichever backend ran them;
    # max_parallel sets each run's share of the cores on both (a CPU sum depends on the threads)
    from affectlib import profiles
    from affectlib.studies import ssmfar

    p = profiles.get("smoke", epochs=1)
    rows = [ssmfar.table1_row("mfar"), ssmfar.table1_row("ss-mfar")]
    weights = {"identity": None}
    local = ssmfar.train_rows(rows, [0], p, None, weights, tmp_path / "l", max_parallel=2, log=None)
    pool = ssmfar.train_rows(
        rows, [0], p, None, weights, tmp_path / "p", executor="pool", max_parallel=2, log=None
    )
    cols = ["method", "seed", "epoch", *ssmfar.SCORES, *[f"val_{k}" for k in ssmfar.SCORES]]
    pd.testing.assert_frame_equal(local[cols], pool[cols])
    again = ssmfar.train_rows(rows, [0], p, None, weights, tmp_path / "p", max_parallel=2, log=None)
    assert again["reused"].all()
    pd.testing.assert_frame_equal(again[cols], pool[cols])
