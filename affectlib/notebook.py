"""What every notebook's set-up cell does: resolve the profile, find (or generate) the data, open
the results writer.

    from affectlib import notebook

    run = notebook.setup(profile, seed, data_root)          # run.profile, run.root
    out = notebook.writer("03_mfar_ssmfar", run, seeds=seeds, data=table, out_dir=out_dir)
    ...
    notebook.finish(out, settings={...}, timings={"training": wall})

``setup`` honours ``make test``'s environment (``$AFFECTLIB_PROFILE``, see
:func:`affectlib.profiles.resolve_profile_name`); ``writer`` writes under ``$AFFECTLIB_RESULTS``
when it is set (:func:`affectlib.profiles.results_root`) and fingerprints the data the notebook
reads the same way everywhere (:func:`affectlib.results.fingerprint_table` over the rows of every
table it is given, in order).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from affectlib import profiles
from affectlib.data import generate
from affectlib.results import ResultsWriter, fingerprint_table

EMBEDDED = "embedded default"  # the data root recorded for the embedded data set


@dataclass(frozen=True)
class Setup:
    """A notebook's resolved profile and data: ``root`` is ``data_root`` when one was given, else
    the folder of the profile's embedded data set (generated on first use, cached after)."""

    profile: profiles.Profile
    root: str
    data_root: str

    @property
    def embedded(self) -> bool:
        """True when the notebook reads the embedded data set (no ``data_root`` given)."""
        return not self.data_root


def setup(profile: str, seed: int = 0, data_root: str = "", precision: str = "") -> Setup:
    """The profile named ``profile`` (``$AFFECTLIB_PROFILE`` wins under ``make test``), with
    ``precision`` ("auto", "bf16" or "fp32"; empty: the profile's), and the data root:
    ``data_root``, or the embedded data set of that profile and ``seed``."""
    overrides = {"precision": precision} if precision else {}
    cfg = profiles.get(profiles.resolve_profile_name(profile), **overrides)
    root = data_root or str(generate.ensure(cfg, seed))
    return Setup(cfg, root, data_root)


def runner(executor: str, max_parallel: int, profile: profiles.Profile) -> dict[str, object]:
    """A training notebook's ``executor`` and ``max_parallel`` parameters as
    :func:`affectlib.executor.run_plan` takes them: ``max_parallel`` 0 is the profile's number
    (:attr:`affectlib.profiles.Profile.runs_at_once`); an empty ``executor`` is "pool" when more
    than one run goes at once, else "local". Given values win."""
    n = int(max_parallel) or profile.runs_at_once
    if n < 1:
        raise ValueError(f"max_parallel must be >= 1 (0: the profile's), got {max_parallel}")
    return {"executor": executor or ("pool" if n > 1 else "local"), "max_parallel": n}


def writer(
    stem: str,
    run: Setup,
    *,
    seeds: Iterable[int],
    data: pd.DataFrame | Iterable[pd.DataFrame],
    out_dir: str,
    profile: profiles.Profile | None = None,
    settings: Mapping[str, Any] | None = None,
) -> ResultsWriter:
    """The results writer of notebook ``stem`` under ``out_dir`` (``results/<stem>/``).

    Its provenance records ``profile`` (default: the set-up's; give the one the runs use when the
    notebook changes it), ``seeds``, the fingerprint of ``data`` (one annotation table, or several
    read in turn), the data root, and ``settings``: the notebook's resolved settings, the values
    its runs actually use."""
    tables = [data] if isinstance(data, pd.DataFrame) else list(data)
    out = ResultsWriter(
        profiles.results_root(out_dir),
        stem,
        profile=profile if profile is not None else run.profile,
        seeds=seeds,
        data_fingerprint=fingerprint_table(pd.concat(tables) if len(tables) > 1 else tables[0]),
        data_root=run.data_root or EMBEDDED,
    )
    out.write_provenance(settings=dict(settings or {}), timings={})
    return out


PROVENANCE_KEYS = (
    "notebook",
    "commit",
    "profile",
    "seeds",
    "data_fingerprint",
    "data_root",
    "device",
    "versions",
    "settings",
    "timings",
    "started",
    "wall_time_s",
    "artifacts",
)


def finish(
    out: ResultsWriter,
    *,
    settings: Mapping[str, Any] | None = None,
    timings: Mapping[str, float] | None = None,
) -> None:
    """A notebook's last call: its provenance in the one schema of every notebook
    (:data:`PROVENANCE_KEYS`): ``settings``, the resolved settings its runs used (merged with any
    the writer already holds), and ``timings``, seconds per stage, rounded; then one line saying
    what was written where."""
    merged = {**out.meta.get("settings", {}), **dict(settings or {})}
    out.write_provenance(
        settings=merged,
        timings={k: round(float(v), 1) for k, v in (timings or {}).items()},
    )
    print(f"wrote {len(out.artifacts)} files to {out.name}/ under the results folder")
