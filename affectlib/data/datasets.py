"""Batches of the data contract from an annotation table and its image cache; samplers; video clips.

A batch (DESIGN.md, "data contract") is a dict of tensors, B items:

- ``image`` uint8 (B, 3, H, W), RGB, straight from the cache (the model normalises);
- ``expr`` int64 (B,), ABAW index 0..7, the marker -1 kept where there is no label (a loss that
  forgets the mask then fails loudly on index -1 instead of learning from a guess);
- ``au`` float32 (B, n_au), 1/0, 0 where the AU is not labelled; ``au_mask`` bool (B, n_au), per AU;
- ``va`` float32 (B, 2) = (valence, arousal), 0 where not labelled;
- ``has_expr``, ``has_au``, ``has_va`` bool (B,): the task masks. ``has_au`` is True only when every
  AU column of the batch is labelled (ABAW's all-or-none rule; the ABAW loaders guarantee all-or-none,
  so there it equals "any"); tables coded AU by AU (EmotioNet) are read through ``au_mask``;
  ``has_va`` needs both valence and arousal;
- ``index`` int64 (B,): the item's row in the table, to join predictions back.

Methods read the masks, never the markers. In sequence mode (``clips``) every tensor gains a time
axis after B: ``image`` (B, T, 3, H, W), ``expr`` (B, T), ``au`` (B, T, n_au), ...

Speed: :class:`BatchLoader` gathers a whole batch by fancy indexing the cache's memmap and label
arrays built once, with no per-item ``__getitem__`` and no collate. :class:`AffectDataset` is the
map-style ``torch.utils.data.Dataset`` of the same items for code that wants a ``DataLoader``.

Samplers give one epoch's item order as a numpy array, deterministic in (seed, epoch) through
``np.random.default_rng([seed, epoch])``; every rank of a distributed run draws the same order and
keeps every ``world_size``-th item from ``rank`` on, after padding the order (by repeating its start)
to a multiple of ``world_size`` so that ranks take equal numbers of steps.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from affectlib.labels import AU_MISSING, EXPR_MISSING, N_EXPR, VA_MISSING

from .cache import ImageCache
from .table import au_columns_of

__all__ = [
    "AffectDataset",
    "BatchLoader",
    "ClassBalancedSampler",
    "InverseFrequencySampler",
    "ItemSampler",
    "RandomSampler",
    "SequentialSampler",
    "TaskLabels",
    "make_batch",
    "video_clips",
]


def _where(table: pd.DataFrame, row: int) -> str:
    if "ann_file" in table.columns and "ann_line" in table.columns:
        return f"{table['ann_file'].iat[row]}:{table['ann_line'].iat[row]}"
    return f"table row {row}"


def _first_bad(table: pd.DataFrame, bad: np.ndarray, column: str, what: str) -> None:
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"column {column!r} at {_where(table, row)} (row {row}) holds "
            f"{table[column].iat[row]!r}; expected {what} ({int(bad.sum())} such rows)"
        )


# --- labels ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskLabels:
    """The table's labels as arrays built once, in the batch's conventions (module docstring).

    ``expr`` (N,) int64 with -1 kept; ``au`` (N, n_au) float32 with 0 where not labelled;
    ``au_mask`` (N, n_au) bool; ``va`` (N, 2) float32 with 0 where not labelled; ``has_expr``,
    ``has_au``, ``has_va`` (N,) bool; ``au_columns`` the AU columns, in the order of ``au``."""

    expr: np.ndarray
    au: np.ndarray
    au_mask: np.ndarray
    va: np.ndarray
    has_expr: np.ndarray
    has_au: np.ndarray
    has_va: np.ndarray
    au_columns: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.expr)

    @classmethod
    def from_table(cls, table: pd.DataFrame, au_columns: Sequence[str] | None = None) -> TaskLabels:
        """Arrays of ``table``'s labels; ``au_columns`` picks AU columns (default: all, table order).

        Checks every value: expr in -1..7, AUs in {-1, 0, 1}, VA in [-1, 1] or -5, valence and
        arousal labelled together; a bad value raises ``ValueError`` naming column and line."""
        cols = tuple(au_columns_of(table) if au_columns is None else au_columns)
        missing = [c for c in ("expr", "valence", "arousal", *cols) if c not in table.columns]
        if missing:
            raise ValueError(f"the annotation table lacks column(s) {missing}")
        expr = table["expr"].to_numpy(np.int64)
        _first_bad(table, (expr < EXPR_MISSING) | (expr >= N_EXPR), "expr", f"-1..{N_EXPR - 1}")
        au_raw = table[list(cols)].to_numpy(np.int64).reshape(len(table), len(cols))
        for j, c in enumerate(cols):
            bad = ~np.isin(au_raw[:, j], (AU_MISSING, 0, 1))
            _first_bad(table, bad, c, "1, 0 or -1 (no label)")
        va_raw = table[["valence", "arousal"]].to_numpy(np.float64)
        for j, c in enumerate(("valence", "arousal")):
            v = va_raw[:, j]
            bad = ~((v == VA_MISSING) | ((v >= -1.0) & (v <= 1.0)))  # NaN fails both
            _first_bad(table, bad, c, f"a value in [-1, 1] or {VA_MISSING} (no label)")
        va_marked = va_raw == VA_MISSING
        _first_bad(
            table, va_marked[:, 0] != va_marked[:, 1], "arousal", "a label iff valence has one"
        )
        au_mask = au_raw != AU_MISSING
        has_va = ~va_marked[:, 0]
        return cls(
            expr=expr,
            au=np.where(au_mask, au_raw, 0).astype(np.float32),
            au_mask=au_mask,
            va=np.where(va_marked, 0.0, va_raw).astype(np.float32),
            has_expr=expr != EXPR_MISSING,
            # with no AU columns no AU is labelled: has_au is False, not vacuously True
            has_au=au_mask.all(axis=1) & (len(cols) > 0),
            has_va=has_va,
            au_columns=cols,
        )


def make_batch(images: np.ndarray, labels: TaskLabels, rows: np.ndarray) -> dict[str, Tensor]:
    """The batch dict of ``rows`` (shape (B,) or (B, T) for clips), gathered by fancy indexing.

    ``images``: (N, 3, H, W) uint8 (an :class:`ImageCache`'s memmap or an array)."""
    rows = np.asarray(rows, dtype=np.int64)
    flat = rows.reshape(-1)
    img = np.ascontiguousarray(images[flat]).reshape(*rows.shape, *images.shape[1:])
    return {
        "image": torch.from_numpy(img),
        "expr": torch.from_numpy(labels.expr[rows]),
        "au": torch.from_numpy(labels.au[rows]),
        "au_mask": torch.from_numpy(labels.au_mask[rows]),
        "va": torch.from_numpy(labels.va[rows]),
        "has_expr": torch.from_numpy(labels.has_expr[rows]),
        "has_au": torch.from_numpy(labels.has_au[rows]),
        "has_va": torch.from_numpy(labels.has_va[rows]),
        "index": torch.from_numpy(rows.copy()),
    }


# --- sequence mode ---------------------------------------------------------------------------------


def video_clips(
    table: pd.DataFrame, length: int, stride: int | None = None, allow_gaps: bool = False
) -> np.ndarray:
    """Row indices of clips of ``length`` consecutive frames of one video: int64 (n_clips, T).

    Within each video the rows are ordered by ``frame``; a clip starts every ``stride`` frames
    (default ``length``: clips do not overlap) and never crosses videos. With ``allow_gaps=False`` a
    clip also never spans a gap in the frame numbers (frames absent from the table), so its frames
    are truly consecutive. A run shorter than ``length`` gives no clip. Rows of still images
    (``video == ""``) are not part of any clip. Raises ``ValueError`` when no clip fits."""
    if length < 1:
        raise ValueError(f"clip length must be >= 1, got {length}")
    stride = length if stride is None else stride
    if stride < 1:
        raise ValueError(f"clip stride must be >= 1, got {stride}")
    for c in ("video", "frame"):
        if c not in table.columns:
            raise ValueError(f"the annotation table lacks column {c!r}")
    video = table["video"].to_numpy(str)
    frame = table["frame"].to_numpy(np.int64)
    rows = np.flatnonzero(video != "")
    order = rows[np.lexsort((frame[rows], video[rows]))]  # by video, then frame
    v, f = video[order], frame[order]
    dup = (v[1:] == v[:-1]) & (f[1:] == f[:-1])
    if dup.any():
        k = int(np.flatnonzero(dup)[0])
        raise ValueError(f"video {v[k]!r} has frame {f[k]} twice ({_where(table, order[k + 1])})")
    # a new run starts at each video change and, unless gaps are allowed, at each jump in frame
    brk = v[1:] != v[:-1]
    if not allow_gaps:
        brk |= f[1:] != f[:-1] + 1
    bounds = np.concatenate([[0], np.flatnonzero(brk) + 1, [len(order)]])
    clips = [
        order[s : s + length]
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
        for s in range(lo, hi - length + 1, stride)
    ]
    if not clips:
        raise ValueError(
            f"no clip of {length} frames fits: every video run is shorter "
            f"({'gaps allowed' if allow_gaps else 'gaps in frame numbers break runs'})"
        )
    return np.stack(clips).astype(np.int64)


# --- samplers --------------------------------------------------------------------------------------


class ItemSampler(torch.utils.data.Sampler[int]):
    """An epoch's order of items, deterministic in (seed, epoch), partitioned across ranks.

    Subclasses implement ``_order(rng)``: the global order of one epoch. ``indices(epoch)`` is this
    rank's share; iterating yields ``indices(self.epoch)`` (``set_epoch`` as in
    ``torch.utils.data.DistributedSampler``)."""

    def __init__(self, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world={world_size}")
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.epoch = 0

    def _order(self, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def _global_len(self) -> int:
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def indices(self, epoch: int) -> np.ndarray:
        """This rank's items of ``epoch``, int64."""
        order = np.asarray(self._order(np.random.default_rng([self.seed, int(epoch)])), np.int64)
        if self.world_size == 1:
            return order
        total = len(self) * self.world_size
        if total > len(order):
            order = np.resize(order, total)  # np.resize repeats from the start
        return order[self.rank : total : self.world_size]

    def __len__(self) -> int:
        return -(-self._global_len() // self.world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices(self.epoch).tolist())


class SequentialSampler(ItemSampler):
    """Items 0..n-1 in order (evaluation)."""

    def __init__(self, n: int, rank: int = 0, world_size: int = 1) -> None:
        super().__init__(0, rank, world_size)
        self.n = int(n)

    def _global_len(self) -> int:
        return self.n

    def _order(self, rng: np.random.Generator) -> np.ndarray:
        return np.arange(self.n)


class RandomSampler(ItemSampler):
    """A fresh permutation of items 0..n-1 each epoch."""

    def __init__(self, n: int, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        super().__init__(seed, rank, world_size)
        if n < 1:
            raise ValueError(f"RandomSampler needs at least one item, got n={n}")
        self.n = int(n)

    def _global_len(self) -> int:
        return self.n

    def _order(self, rng: np.random.Generator) -> np.ndarray:
        return rng.permutation(self.n)


def _classes(expr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labelled rows, their class, unlabelled rows); checks the codes."""
    expr = np.asarray(expr, dtype=np.int64)
    if expr.ndim != 1:
        raise ValueError(f"expr must be one-dimensional, got shape {expr.shape}")
    bad = (expr < EXPR_MISSING) | (expr >= N_EXPR)
    if bad.any():
        raise ValueError(f"expr holds codes outside -1..{N_EXPR - 1}: {sorted(set(expr[bad]))}")
    labelled = np.flatnonzero(expr != EXPR_MISSING)
    if len(labelled) == 0:
        raise ValueError("no row has an expression label: there is no class to balance")
    return labelled, expr[labelled], np.flatnonzero(expr == EXPR_MISSING)


class ClassBalancedSampler(ItemSampler):
    """Every present expression class in equal numbers each epoch (stratified, low variance).

    With K classes present among the L labelled rows, an epoch holds ``m = L // K`` rows of each
    class (at least 1): a class's rows are taken in shuffled passes, reshuffled after each pass, so a
    minority row repeats only after all its class-mates were taken and a majority class is
    subsampled. ``include_unlabelled``: every row with expr -1 also enters once per epoch (their
    natural share; the semi-supervised methods learn from them). The epoch is shuffled as a whole.
    """

    def __init__(
        self,
        expr: np.ndarray,
        seed: int = 0,
        include_unlabelled: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(seed, rank, world_size)
        labelled, cls, self._unlabelled = _classes(expr)
        self._members = [labelled[cls == c] for c in np.unique(cls)]
        self.per_class = max(1, len(labelled) // len(self._members))
        self.include_unlabelled = include_unlabelled

    def _global_len(self) -> int:
        extra = len(self._unlabelled) if self.include_unlabelled else 0
        return self.per_class * len(self._members) + extra

    def _order(self, rng: np.random.Generator) -> np.ndarray:
        m = self.per_class
        parts = []
        for rows in self._members:
            passes = -(-m // len(rows))
            parts.append(np.concatenate([rng.permutation(rows) for _ in range(passes)])[:m])
        if self.include_unlabelled:
            parts.append(self._unlabelled)
        return rng.permutation(np.concatenate(parts))


class InverseFrequencySampler(ItemSampler):
    """Rows drawn independently, with replacement, with probability ∝ 1 / n[class]^power.

    SS-MFAR (Gera et al. 2022, §4, "MFAR-RS"/"SS-MFAR-RS") re-samples instead of re-weighting by
    Eq. 1, W[i] = N / n[i]: sampling labelled row r with probability ∝ W[expr_r] (``power=1``) makes
    every class equally likely per draw (the same law as :class:`ClassBalancedSampler`, but i.i.d.:
    class counts vary from epoch to epoch). ``power=0.5`` is square-root sampling, 0 the natural
    frequencies. ``include_unlabelled``: rows with expr -1 are drawn too, with total probability
    equal to their share of the table. ``num_samples``: draws per epoch (default: the rows in
    scope)."""

    def __init__(
        self,
        expr: np.ndarray,
        seed: int = 0,
        power: float = 1.0,
        include_unlabelled: bool = False,
        num_samples: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(seed, rank, world_size)
        if not np.isfinite(power) or power < 0:
            raise ValueError(f"power must be finite and >= 0, got {power}")
        labelled, cls, unlabelled = _classes(expr)
        counts = np.bincount(cls, minlength=N_EXPR)
        w = counts[cls].astype(np.float64) ** -power
        p_labelled = w / w.sum()
        if include_unlabelled and len(unlabelled):
            share = len(unlabelled) / (len(unlabelled) + len(labelled))
            self._rows = np.concatenate([labelled, unlabelled])
            p_unl = np.full(len(unlabelled), share / len(unlabelled))
            self._p = np.concatenate([p_labelled * (1 - share), p_unl])
        else:
            self._rows, self._p = labelled, p_labelled
        self.num_samples = len(self._rows) if num_samples is None else int(num_samples)
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")

    @property
    def probabilities(self) -> pd.Series:
        """Draw probability of each row in scope, indexed by row."""
        return pd.Series(self._p, index=self._rows).sort_index()

    def _global_len(self) -> int:
        return self.num_samples

    def _order(self, rng: np.random.Generator) -> np.ndarray:
        return rng.choice(self._rows, size=self.num_samples, replace=True, p=self._p)


# --- loaders ---------------------------------------------------------------------------------------


def _check_alignment(table: pd.DataFrame, images: ImageCache | np.ndarray) -> np.ndarray:
    """The image array of ``images``, after checking that its row i is the image of table row i."""
    if isinstance(images, ImageCache):
        paths = table["path"].tolist()
        if list(images.paths) != paths:
            n = min(len(paths), len(images.paths))
            k = next((i for i in range(n) if paths[i] != images.paths[i]), n)
            raise ValueError(
                f"the image cache does not belong to this table: row {k} is "
                f"{images.paths[k] if k < len(images.paths) else '<none>'!r} in the cache and "
                f"{paths[k] if k < len(paths) else '<none>'!r} in the table; rebuild the cache "
                "from the table you batch"
            )
        arr = images.images
    else:
        arr = images
    if arr.ndim != 4 or arr.shape[1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, 3, H, W), got {arr.dtype} {arr.shape}")
    if len(arr) != len(table):
        raise ValueError(f"{len(arr)} images for a table of {len(table)} rows")
    return arr


def _check_clips(clips: np.ndarray | None, n_rows: int) -> np.ndarray | None:
    if clips is None:
        return None
    clips = np.asarray(clips, dtype=np.int64)
    if clips.ndim != 2 or clips.size == 0:
        raise ValueError(f"clips must be a non-empty (n_clips, T) array, got shape {clips.shape}")
    if clips.min() < 0 or clips.max() >= n_rows:
        raise ValueError(f"clip rows must lie in 0..{n_rows - 1}")
    return clips


class AffectDataset(torch.utils.data.Dataset):
    """Map-style dataset of the same items as :class:`BatchLoader`: item ``i`` is table row ``i``
    (or clip ``i`` with ``clips``), a dict of the batch's tensors without the batch axis; the
    ``DataLoader``'s default collate stacks them into the batch dict. Per-item access is slow next
    to :class:`BatchLoader`; it is here for code written against ``torch.utils.data``."""

    def __init__(
        self,
        table: pd.DataFrame,
        images: ImageCache | np.ndarray,
        au_columns: Sequence[str] | None = None,
        clips: np.ndarray | None = None,
    ) -> None:
        self.images = images  # the cache itself, which pickles as a file reference
        _check_alignment(table, images)
        self.labels = TaskLabels.from_table(table, au_columns)
        self.clips = _check_clips(clips, len(table))

    def __len__(self) -> int:
        return len(self.clips) if self.clips is not None else len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} out of range for {len(self)} items")
        rows = self.clips[i] if self.clips is not None else np.int64(i % len(self))
        arr = self.images.images if isinstance(self.images, ImageCache) else self.images
        batch = make_batch(arr, self.labels, np.asarray(rows)[None])
        return {k: v[0] for k, v in batch.items()}


class BatchLoader:
    """Whole batches gathered from the image cache in the order of a sampler, resumable.

    Iterating yields the batches of the current epoch from the current position; the position
    advances before each batch is handed out, so a checkpoint written while a batch is processed
    resumes with the next one. When an epoch is exhausted the loader moves to the next epoch, so
    the training loop is::

        loader.load_state_dict(ckpt["loader"])           # on resume; a fresh loader starts at 0
        for epoch in range(loader.epoch, epochs):
            for batch in loader: ...                      # checkpoint: loader.state_dict()

    ``clips`` (from :func:`video_clips`): items are clips and the batch has a time axis; the
    sampler then runs over clip numbers. ``drop_last`` drops a last, smaller batch. One iteration
    at a time: a second concurrent iterator would share the position.
    """

    def __init__(
        self,
        table: pd.DataFrame,
        images: ImageCache | np.ndarray,
        sampler: ItemSampler,
        batch_size: int,
        *,
        au_columns: Sequence[str] | None = None,
        clips: np.ndarray | None = None,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.images = _check_alignment(table, images)
        self.labels = TaskLabels.from_table(table, au_columns)
        self.clips = _check_clips(clips, len(table))
        self.n_items = len(self.clips) if self.clips is not None else len(table)
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.drop_last = drop_last
        self.epoch = 0
        self.position = 0  # batches of the current epoch already handed out

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its first batch."""
        self.epoch, self.position = int(epoch), 0

    def state_dict(self) -> dict[str, int]:
        return {
            "epoch": self.epoch,
            "position": self.position,
            "batch_size": self.batch_size,
            "n_items": self.n_items,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue where ``state`` was taken; the batch size and item count must match (else the
        batches would not be the same ones)."""
        for k in ("batch_size", "n_items"):
            if k in state and int(state[k]) != getattr(self, k):
                raise ValueError(
                    f"loader state has {k}={state[k]}, this loader {getattr(self, k)}: the "
                    "resumed batches would differ"
                )
        if not 0 <= int(state["position"]) <= len(self):
            raise ValueError(f"loader state position {state['position']} outside 0..{len(self)}")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])

    def batch(self, items: np.ndarray) -> dict[str, Tensor]:
        """The batch dict of ``items`` (rows, or clip numbers with ``clips``)."""
        items = np.asarray(items, dtype=np.int64)
        if items.size and (items.min() < 0 or items.max() >= self.n_items):
            raise IndexError(f"items must lie in 0..{self.n_items - 1}")
        rows = self.clips[items] if self.clips is not None else items
        return make_batch(self.images, self.labels, rows)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        order = self.sampler.indices(self.epoch)
        if len(order) and (order.min() < 0 or order.max() >= self.n_items):
            raise ValueError(f"the sampler yields items outside 0..{self.n_items - 1}")
        n_batches = len(self)
        while self.position < n_batches:
            lo = self.position * self.batch_size
            self.position += 1
            yield self.batch(order[lo : lo + self.batch_size])
        self.epoch, self.position = self.epoch + 1, 0
