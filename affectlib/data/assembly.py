"""The data of a training run: loaders over one data set's splits (:func:`build_data`) or over the
rows of several data sets at once (:func:`build_multi_data`), as the :class:`TrainData` that
:func:`affectlib.train.fit` trains and validates on.

Several data sets in one run. :func:`build_multi_data` trains on the rows of several annotation
tables at once (e.g. an expression-only and an AU-only set, Kollias et al. 2024): one combined
table, batches mixing the sets, the masks (per-AU ``au_mask`` included) deciding which loss each
image feeds; validation runs each task on its own set's validation rows.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch.distributed as dist

from affectlib.data import augment as augment_module
from affectlib.data import datasets, generate, study
from affectlib.data.cache import ImageCache
from affectlib.data.table import concat_tables
from affectlib.distributed import Dist, dist_from_env
from affectlib.files import fingerprint_table
from affectlib.labels import AU_MISSING


@dataclass
class TrainData:
    """What :func:`affectlib.train.fit` trains and validates on.

    train: loader of training batches (the batch dict of the data contract) with ``__len__``,
        ``set_epoch(epoch)``, ``state_dict()`` / ``load_state_dict()`` (epoch and position: a
        restored loader yields exactly the remaining batches of its epoch), e.g.
        :class:`affectlib.data.datasets.BatchLoader`.
    val:   loader of validation batches, fixed order, no augmentation.
    train_table: the training split's annotation table (methods count their class weights on it).
    augment: provides ``weak(images, generator)`` / ``strong(images, generator)`` returning a view
        with ``.images`` and ``.flipped`` (default :mod:`affectlib.data.augment`).
    source: where the data came from (root folder, format, fingerprints), for provenance.
    score: scores of the validation predictions (:func:`affectlib.train.predict`'s dict) ->
        ``{name: float}``; None: :func:`affectlib.metrics.score` (P_MTL, SS-MFAR Eq. 10). Every
        name becomes a column of the per-epoch metrics and a key of the final ``metrics.json``.
    test: loader of the held-out test batches (fixed order), scored once with the selected
        epoch's model; None: no test split.
    select: the ``score`` name whose highest validation value selects the epoch; None: the last.
    train_eval: loader of every training image in a fixed order without augmentation, for
        methods that look at the model's predictions on the training set before each epoch
        (``MethodSpec.on_train_predictions``: SS-MFAR's Eq. 4 thresholds); None: no such pass.
    """

    train: Any
    val: Any
    train_table: pd.DataFrame
    augment: Any = augment_module
    source: dict[str, Any] = dataclasses.field(default_factory=dict)
    score: Callable[[Mapping[str, np.ndarray]], dict[str, float]] | None = None
    test: Any = None
    select: str | None = None
    train_eval: Any = None


SAMPLERS = ("random", "class-balanced", "class-balanced+unlabelled")


def _sampler(kind: str, train: pd.DataFrame, seed: int, d: Dist):
    if kind == "random":
        return datasets.RandomSampler(len(train), seed, d.rank, d.world)
    if kind in ("class-balanced", "class-balanced+unlabelled"):
        return datasets.ClassBalancedSampler(
            train["expr"].to_numpy(), seed, kind.endswith("+unlabelled"), d.rank, d.world
        )
    raise ValueError(f"unknown sampler {kind!r}; known: {', '.join(SAMPLERS)}")


SPLITS = ("train", "validation", "test")


def _load_splits(root: str | Path, format: str) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The ``format`` table under ``root`` (:func:`affectlib.data.study.load_dataset`) and its
    ``train`` and ``validation`` rows, and its ``test`` rows when it has any (the embedded set's
    held-out split). Rejected rows are reported with a warning (pointing at the caller's caller)
    and left out; raises when the training or validation split has no row."""
    loaded = study.load_dataset(root, format)
    if loaded.errors:
        warnings.warn(
            f"{root} ({format}): {loaded.rejected} of {loaded.rows_read} rows rejected and left "
            f"out, e.g. {loaded.errors[0]}; `python -m affectlib audit` lists them all",
            stacklevel=3,
        )
    table = loaded.table
    parts = {s: table[table["split"] == s].reset_index(drop=True) for s in SPLITS}
    if parts["test"].empty:
        del parts["test"]
    for s, part in parts.items():
        if part.empty:
            found = ", ".join(sorted(table["split"].unique())) or "none"
            raise ValueError(f"{root} ({format}) has no {s!r} rows; splits found: {found}")
    return table, parts


def build_data(
    profile,
    seed: int,
    *,
    sampler: str = "random",
    data_root: str | Path | None = None,
    format: str = "abaw-mtl",
    data_seed: int = 0,
    progress: bool = True,
) -> tuple[TrainData, dict[str, Any]]:
    """Training and validation loaders of a data set, and a record of what was loaded (format,
    sampler, row counts, label and image fingerprints: what a resumed run must find again).

    ``data_root`` None: the embedded set of ``profile`` and ``data_seed``
    (:func:`affectlib.data.generate.ensure`). The annotation files of ``format`` are read with
    :func:`affectlib.data.study.load_dataset` (rejected rows are reported, not used); the
    ``split`` column decides train / validation. Images are decoded once into the uint8 cache at
    ``profile.image_size``. Under torchrun each process loads ``batch_size / world_size`` images
    per step from its share of the permutation; rank 0 prepares the data first.
    """
    d = dist_from_env()
    if profile.batch_size % d.world:
        raise ValueError(f"batch_size {profile.batch_size} is not divisible by {d.world} processes")
    if d.world > 1 and not d.main:
        dist.barrier()  # rank 0 generates and caches first; the others then open its files
    root = Path(data_root) if data_root else generate.ensure(profile, data_seed)
    table, parts = _load_splits(root, format)
    images = study.image_root(root, format)
    show = progress and d.main
    caches = {
        s: ImageCache.build(part, images, size=profile.image_size, progress=show)
        for s, part in parts.items()
    }
    if d.world > 1 and d.main:
        dist.barrier()
    train, val = parts["train"], parts["validation"]
    per_process = profile.batch_size // d.world
    record = {
        "format": format,
        "data_seed": data_seed if data_root is None else None,
        "sampler": sampler,
        "train_rows": len(train),
        "val_rows": len(val),
        "test_rows": len(parts.get("test", ())),
        "labels": fingerprint_table(table),
        "images": {s: c.fingerprint[:16] for s, c in caches.items()},
    }
    data = TrainData(
        train=datasets.BatchLoader(
            train, caches["train"], _sampler(sampler, train, seed, d), per_process, drop_last=True
        ),
        val=datasets.BatchLoader(
            val, caches["validation"], datasets.SequentialSampler(len(val)), profile.batch_size
        ),
        train_table=train,
        source={"root": str(root), **record},
        select="overall",
        train_eval=datasets.BatchLoader(
            train, caches["train"], datasets.SequentialSampler(len(train)), profile.batch_size
        ),
        test=None
        if "test" not in parts
        else datasets.BatchLoader(
            parts["test"],
            caches["test"],
            datasets.SequentialSampler(len(parts["test"])),
            profile.batch_size,
        ),
    )
    return data, record


@dataclass(frozen=True)
class DataPart:
    """One data set's share of a multi-data-set run.

    name:       a label for records ("affectnet", "emotionet", ...).
    train:      its training rows, a standard annotation table (DESIGN.md); the labels it lacks
                are markers (an AffectNet table's AU columns are -1), which the masks then hide.
    validation: its validation rows (same convention).
    images:     the folder its ``path`` column is relative to.
    test:       its held-out test rows (same convention), or None.
    """

    name: str
    train: pd.DataFrame
    validation: pd.DataFrame
    images: Path
    test: pd.DataFrame | None = None


def load_part(data_root: str | Path, format: str, name: str | None = None) -> DataPart:
    """The training, validation and (when the files have one) test rows of the ``format`` files
    under ``data_root`` (:func:`affectlib.data.study.load_dataset`, default locations); rejected
    rows are reported with a warning and left out. Raises when the training or validation split
    has no row."""
    _, split = _load_splits(data_root, format)
    images = study.image_root(data_root, format)
    return DataPart(
        name or format, split["train"], split["validation"], Path(images), split.get("test")
    )


def combine_parts(parts: Sequence[DataPart], split: str) -> tuple[pd.DataFrame, Path]:
    """The ``split`` ("train" / "validation" / "test") rows of every part in one standard table,
    and the folder its paths are relative to: the parts' common image folder, each ``path``
    prefixed with its part's folder below it. AU columns are the union (missing ones -1,
    :func:`affectlib.data.table.concat_tables`); a part without rows of ``split`` adds none."""
    if not parts:
        raise ValueError("combine_parts needs at least one DataPart")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    folders = [p.images.resolve() for p in parts]
    common = Path(os.path.commonpath(folders))
    tables = []
    for part, folder in zip(parts, folders, strict=True):
        rows = {"train": part.train, "validation": part.validation, "test": part.test}[split]
        if rows is None:
            continue
        prefix = folder.relative_to(common).as_posix()
        tables.append(
            rows.assign(path=[f"{prefix}/{q}" if prefix != "." else q for q in rows["path"]])
        )
    tables = [t for t in tables if len(t)] or tables[:1]
    if not tables:  # no part has rows of this split
        return parts[0].train.iloc[:0], common
    return concat_tables(tables), common


def build_multi_data(
    parts: Sequence[DataPart],
    *,
    image_size: int,
    batch_size: int,
    seed: int,
    au_columns: Sequence[str] | None = None,
    sampler: str = "random",
    score: Callable[[Mapping[str, np.ndarray]], dict[str, float]] | None = None,
    select: str | None = None,
    progress: bool = True,
) -> tuple[TrainData, dict[str, Any]]:
    """Loaders over the rows of several data sets at once, and a record of what was loaded.

    Training: the parts' training rows in one table (:func:`combine_parts`); ``sampler`` draws
    from all of them, so a batch mixes the sets in proportion to their sizes, and the batch masks
    (``has_expr``, per-AU ``au_mask``) decide which loss each image feeds — an AffectNet-format
    image feeds the expression loss only, an EmotioNet-format image each AU it codes.
    Validation: the parts' validation rows in one table, in order; each task is then scored on the
    rows labelled for it, i.e. on its own set's validation split. Test: the parts' test rows the
    same way, when any part has them (scored once, with the epoch ``select`` chose on validation;
    see :class:`TrainData`).

    ``au_columns``: the AU columns of the batches, in the model's order (default: the union of
    the parts', by AU number); one that no part has is unlabelled (-1) everywhere. Images are
    decoded once into the uint8 cache at ``image_size``. ``score``: see :class:`TrainData`.
    Under torchrun each process takes ``batch_size / world_size`` images per step; rank 0 builds
    the caches first.
    """
    d = dist_from_env()
    if batch_size % d.world:
        raise ValueError(f"batch_size {batch_size} is not divisible by {d.world} processes")
    tables = {s: combine_parts(parts, s) for s in SPLITS}
    if tables["test"][0].empty:
        del tables["test"]
    for s, (table, _) in tables.items():
        if table.empty:
            raise ValueError(f"no part has {s!r} rows: {[p.name for p in parts]}")
    columns = tuple(au_columns) if au_columns is not None else None
    if columns is not None:
        # an AU that no part codes is unlabelled everywhere, as concat_tables fills a missing one
        tables = {
            s: (t.assign(**{c: AU_MISSING for c in columns if c not in t.columns}), r)
            for s, (t, r) in tables.items()
        }
    if d.world > 1 and not d.main:
        dist.barrier()  # rank 0 decodes the images first; the others then open its caches
    caches = {
        s: ImageCache.build(table, root, size=image_size, progress=progress and d.main)
        for s, (table, root) in tables.items()
    }
    if d.world > 1 and d.main:
        dist.barrier()
    train, val = tables["train"][0], tables["validation"][0]
    record = {
        "parts": {
            p.name: {
                "train_rows": len(p.train),
                "val_rows": len(p.validation),
                "test_rows": len(p.test) if p.test is not None else 0,
                "labels": fingerprint_table(
                    pd.concat([t for t in (p.train, p.validation, p.test) if t is not None])
                ),
            }
            for p in parts
        },
        "au_columns": list(columns) if columns is not None else None,
        "image_size": image_size,
        "sampler": sampler,
        "images": {s: c.fingerprint[:16] for s, c in caches.items()},
    }
    data = TrainData(
        train=datasets.BatchLoader(
            train,
            caches["train"],
            _sampler(sampler, train, seed, d),
            batch_size // d.world,
            au_columns=columns,
            drop_last=True,
        ),
        val=datasets.BatchLoader(
            val,
            caches["validation"],
            datasets.SequentialSampler(len(val)),
            batch_size,
            au_columns=columns,
        ),
        train_table=train,
        source={"root": str(tables["train"][1]), "labels": fingerprint_table(train), **record},
        score=score,
        select=select,
        test=None
        if "test" not in tables
        else datasets.BatchLoader(
            tables["test"][0],
            caches["test"],
            datasets.SequentialSampler(len(tables["test"][0])),
            batch_size,
            au_columns=columns,
        ),
    )
    return data, record
