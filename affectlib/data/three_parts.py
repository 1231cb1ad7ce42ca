"""The training data of the ABAW 2021 teacher-student study (Vu et al., §2.1-2.2): three parts,
each labelled for some tasks, and batches holding N images of each part.

- **Mixed EXPR** (part 1): the Aff-Wild2-like frames with an expression label (the ``abaw-expr``
  per-task files) and the ExpW-format images;
- **Mixed VA** (part 2): the Aff-Wild2-like frames with valence / arousal (``abaw-va`` files) and
  the AFEW-VA-format frames;
- **Affect EXPR_VA** (part 3): the AffectNet-format images with both an expression and VA.

Expressions are the 7 basic classes of ABAW 2021 (Neutral + the six; ABAW indices 0..6).
ABAW's eighth class "Other" (AffectNet's Contempt) is no basic expression: such a label becomes
"no label" (-1) (:func:`basic_only`), so an "Other" frame is in no expression part and scored for
no expression, while its VA (if any) is kept. An Aff-Wild2-like frame carries both labels where
both per-task files label it (:func:`affwild2_tasks` joins them with
:func:`affectlib.data.formats.merge_tasks`): those shared annotations are what Eq. 10 uses; which
labels a method reads is the method's choice (``part`` says where each row came from).

:class:`PartSampler` orders an epoch as ``steps`` blocks of N rows of part 1, N of part 2, N of
part 3 (each part's rows in fresh shuffled passes), so consecutive batches of ``n_parts * N`` rows
hold exactly N of each; :func:`build_part_data` builds the :class:`~affectlib.data.assembly.TrainData`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from affectlib.data import datasets, formats, study
from affectlib.data.assembly import DataPart, TrainData, combine_parts
from affectlib.data.cache import ImageCache
from affectlib.data.formats_expw_afew import load_afew_va, load_expw
from affectlib.data.parsing import LoadResult
from affectlib.files import fingerprint_table
from affectlib.labels import EXPR_MISSING, VA_MISSING, expr_index

PARTS = {1: "Mixed EXPR", 2: "Mixed VA", 3: "Affect EXPR_VA"}
OTHER = expr_index("Other")
N_BASIC = OTHER  # ABAW indices 0..6 are the 7 basic expressions


def basic_only(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with ABAW's "Other" (index 7) turned into -1 (no label)."""
    e = table["expr"].to_numpy()
    return table.assign(expr=np.where(e == OTHER, EXPR_MISSING, e))


def _strip_aus(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=[c for c in table.columns if c.startswith("AU")])


def _checked(result: LoadResult, what: str) -> pd.DataFrame:
    """The accepted rows; a rejected row stops the study (nothing is dropped silently)."""
    if result.errors:
        raise ValueError(
            f"{what}: {result.rejected} of {result.rows_read} rows rejected, first: "
            f"{result.errors[0]}; `python -m affectlib audit` lists them"
        )
    return result.table


@dataclass(frozen=True)
class AffWild2Tasks:
    """The Aff-Wild2-like frames: ``train`` / ``validation`` (per-task files joined, both labels
    where present), ``test`` (the held-out split of the MTL file, when present), AU columns
    dropped and "Other" turned into -1; ``images`` the frames' folder."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame | None
    images: Path

    def shared_videos(self) -> int:
        """Training videos with at least one frame labelled for both EXPR and VA."""
        t = self.train
        both = (t["expr"] != EXPR_MISSING) & (t["valence"] != VA_MISSING)
        return int(t.loc[both, "video"].nunique())


def affwild2_tasks(root: str | Path) -> AffWild2Tasks:
    """Read the ``abaw-expr`` and ``abaw-va`` per-task files under ``root`` and join them per
    frame and split; the test rows from the embedded set's ``abaw-mtl`` test file when it exists
    (None otherwise). A rejected row stops the study, naming its file and line."""
    expr = study.load_dataset(root, "abaw-expr")
    va = study.load_dataset(root, "abaw-va")
    _checked(expr, "abaw-expr")
    _checked(va, "abaw-va")
    merged = basic_only(_strip_aus(formats.merge_tasks(expr, None, va)))
    test = None
    # the embedded set's held-out split (real ABAW releases publish no test labels)
    test_files = [Path(root) / f for f in study.OPTIONAL_ANNOTATIONS["abaw-mtl"]]
    for file in (f for f in test_files if f.exists()):
        t = _checked(formats.load(file, "abaw-mtl", split="test"), "abaw-mtl test")
        test = basic_only(_strip_aus(t)).reset_index(drop=True)
    return AffWild2Tasks(
        merged[merged["split"] == "train"].reset_index(drop=True),
        merged[merged["split"] == "validation"].reset_index(drop=True),
        test,
        study.image_root(root, "abaw-expr"),
    )


def _labelled(table: pd.DataFrame, task: str) -> pd.DataFrame:
    col = "expr" if task == "expr" else "valence"
    marker = EXPR_MISSING if task == "expr" else VA_MISSING
    return table[table[col] != marker].reset_index(drop=True)


def training_parts(
    affwild2: AffWild2Tasks, affectnet_root: str | Path, extra_root: str | Path
) -> dict[int, list[DataPart]]:
    """The three parts of §2.1 as lists of :class:`DataPart` (training rows only; validation
    and test are Aff-Wild2's): part 1 the Aff-Wild2 frames with an expression and the ExpW
    images, part 2 the Aff-Wild2 frames with VA and the AFEW-VA frames, part 3 the AffectNet
    training images with both a basic expression and VA (the paper's "annotation for both")."""
    empty = affwild2.train.iloc[:0]
    expw = load_expw(Path(extra_root) / "ExpW/label/label.lst")
    afew = load_afew_va(Path(extra_root) / "AFEW-VA")
    an = study.load_dataset(affectnet_root, "affectnet")
    an_table = basic_only(_strip_aus(_checked(an, "affectnet")))
    an_train = an_table[
        (an_table["split"] == "train")
        & (an_table["expr"] != EXPR_MISSING)
        & (an_table["valence"] != VA_MISSING)
    ].reset_index(drop=True)

    def part(name: str, rows: pd.DataFrame, images: Path) -> DataPart:
        return DataPart(name, rows.reset_index(drop=True), empty, Path(images))

    extra = Path(extra_root)
    return {
        1: [
            part("affwild2-expr", _labelled(affwild2.train, "expr"), affwild2.images),
            part("expw", _checked(expw, "expw"), extra / "ExpW/image/origin"),
        ],
        2: [
            part("affwild2-va", _labelled(affwild2.train, "va"), affwild2.images),
            part("afew-va", _checked(afew, "afew-va"), extra / "AFEW-VA"),
        ],
        3: [part("affectnet", an_train, study.image_root(affectnet_root, "affectnet"))],
    }


class PartSampler(datasets.ItemSampler):
    """``steps`` blocks per epoch, each N rows of every part in ``part`` order (module docstring).

    ``part`` (n,) the part id of every row; each part's rows are taken in shuffled passes
    (reshuffled after each pass, fresh each epoch), so a small part repeats only after all its
    rows were used."""

    def __init__(self, part: np.ndarray, per_part: int, steps: int, seed: int = 0) -> None:
        super().__init__(seed)
        part = np.asarray(part)
        if per_part < 1 or steps < 1:
            raise ValueError(f"per_part and steps must be >= 1, got {per_part}, {steps}")
        self.ids = sorted(set(part.tolist()))
        if not self.ids:
            raise ValueError("PartSampler needs at least one row")
        self.rows = [np.flatnonzero(part == p) for p in self.ids]
        self.per_part, self.steps = int(per_part), int(steps)

    def _global_len(self) -> int:
        return self.steps * self.per_part * len(self.ids)

    def _order(self, rng: np.random.Generator) -> np.ndarray:
        need = self.steps * self.per_part
        drawn = []
        for rows in self.rows:
            passes = -(-need // len(rows))
            drawn.append(np.concatenate([rng.permutation(rows) for _ in range(passes)])[:need])
        # (steps, parts, N) -> one block of N per part per step
        return (
            np.stack(drawn)
            .reshape(len(self.rows), self.steps, self.per_part)
            .transpose(1, 0, 2)
            .reshape(-1)
        )


def combine(parts: Mapping[int, Sequence[DataPart]]) -> tuple[pd.DataFrame, Path]:
    """One training table of the parts (paths relative to their common folder) with a ``part``
    column (1, 2, 3) and ``set`` (the data set each row came from)."""
    flat = [p for k in sorted(parts) for p in parts[k]]
    table, root = combine_parts(flat, "train")
    ids = np.concatenate([[k] * len(p.train) for k in sorted(parts) for p in parts[k]])
    names = np.concatenate([[p.name] * len(p.train) for k in sorted(parts) for p in parts[k]])
    return table.assign(part=ids.astype(np.int64), set=names), root


def build_part_data(
    train: pd.DataFrame,
    train_root: Path,
    evaluation: Mapping[str, tuple[pd.DataFrame, Path]],
    *,
    image_size: int,
    per_part: int,
    steps: int,
    seed: int,
    score: Callable[[Mapping[str, np.ndarray]], dict[str, float]],
    select: str,
    progress: bool = False,
) -> tuple[TrainData, dict[str, Any]]:
    """Loaders of a three-part run: training batches of ``per_part`` rows of each part of
    ``train`` (its ``part`` column), ``steps`` batches an epoch (:class:`PartSampler`), and the
    ``validation`` / ``test`` tables of ``evaluation`` (name -> (table, image folder)) in order.
    Images are decoded once into the uint8 cache at ``image_size``."""
    n_parts = int(train["part"].nunique())
    cache = ImageCache.build(train, train_root, size=image_size, progress=progress)
    loaders = {}
    for name, (table, root) in evaluation.items():
        c = ImageCache.build(table, root, size=image_size, progress=progress)
        loaders[name] = datasets.BatchLoader(
            table, c, datasets.SequentialSampler(len(table)), 256, au_columns=()
        )
    record = {
        "parts": {
            int(k): {s: int(n) for s, n in g["set"].value_counts().sort_index().items()}
            for k, g in train.groupby("part")
        },
        "per_part": per_part,
        "steps": steps,
        "image_size": image_size,
        "labels": fingerprint_table(train.drop(columns=["part", "set"])),
        "evaluation": {k: len(t) for k, (t, _) in evaluation.items()},
    }
    data = TrainData(
        train=datasets.BatchLoader(
            train,
            cache,
            PartSampler(train["part"].to_numpy(), per_part, steps, seed),
            per_part * n_parts,
            au_columns=(),
            drop_last=True,
        ),
        val=loaders["validation"],
        train_table=train,
        source={"root": str(train_root), **record},
        score=score,
        select=select,
        test=loaders.get("test"),
    )
    return data, record


# --- the temporal stage (§2.4): sequences of per-frame features ------------------------------------
class FeatureClipLoader:
    """Batches of feature sequences for the temporal stage, in the training loop's loader protocol
    (``__len__``, ``set_epoch``, ``state_dict`` / ``load_state_dict``, iteration).

    ``features`` (N, D) float32, row i the frozen CNN's features of table row i; ``clips``
    (n_clips, T) table rows (:func:`affectlib.data.datasets.video_clips`); ``sampler`` orders clip
    numbers (a :class:`PartSampler` over the clips' parts for training, sequential for
    evaluation). A batch: ``image`` (B, T, D) the features, and every label of the data contract
    for the B*T frames flattened in clip order (``expr`` (B*T,), ``va`` (B*T, 2), the masks,
    ``index`` the frames' table rows), as :class:`affectlib.models.SequenceVABins` flattens its
    outputs. The last, smaller batch is kept unless ``drop_last``."""

    def __init__(
        self,
        table: pd.DataFrame,
        features: np.ndarray,
        clips: np.ndarray,
        sampler: datasets.ItemSampler,
        batch_size: int,
        *,
        drop_last: bool = False,
    ) -> None:
        if len(features) != len(table):
            raise ValueError(f"{len(features)} feature rows for a table of {len(table)} rows")
        clips = np.asarray(clips, np.int64)
        if clips.ndim != 2 or (clips.size and (clips.min() < 0 or clips.max() >= len(table))):
            raise ValueError("clips must be (n_clips, T) rows of the table")
        self.features = np.ascontiguousarray(features, np.float32)
        self.labels = datasets.TaskLabels.from_table(table, ())
        self.clips, self.sampler, self.batch_size = clips, sampler, int(batch_size)
        self.drop_last = drop_last
        self.epoch, self.position = 0, 0

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.position = int(epoch), 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])

    def __iter__(self):
        order = self.sampler.indices(self.epoch)
        while self.position < len(self):
            lo = self.position * self.batch_size
            self.position += 1
            rows = self.clips[order[lo : lo + self.batch_size]]  # (B, T)
            batch = datasets.make_batch(
                self.features[:, None, None, :], self.labels, rows.reshape(-1)
            )
            batch["image"] = torch.from_numpy(self.features[rows])  # (B, T, D)
            yield batch
        self.epoch, self.position = self.epoch + 1, 0


def part_clips(
    table: pd.DataFrame, length: int, *, stride: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Clips of ``length`` frames within one video of each part of ``table`` (its ``part``
    column; each part's rows taken on their own, so a video of two parts gives clips to both),
    and the part of each clip. Frame gaps are allowed (the AFEW-VA-format clips hold only their
    annotated frames); a video shorter than ``length`` gives none."""
    clips, parts = [], []
    for p in sorted(set(table["part"])):
        rows = np.flatnonzero(table["part"].to_numpy() == p)
        sub = table.iloc[rows]
        try:
            c = datasets.video_clips(sub, length, stride, allow_gaps=True)
        except ValueError:
            continue  # no clip fits in this part
        clips.append(rows[c])
        parts.append(np.full(len(c), p))
    if not clips:
        raise ValueError(f"no clip of {length} frames fits in any part")
    return np.concatenate(clips), np.concatenate(parts)


__all__ = [
    "PARTS",
    "AffWild2Tasks",
    "PartSampler",
    "affwild2_tasks",
    "basic_only",
    "FeatureClipLoader",
    "build_part_data",
    "combine",
    "part_clips",
    "training_parts",
]
