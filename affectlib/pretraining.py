"""The two pretraining sources of SS-MFAR Table 1, trained once per profile and cached.

SS-MFAR starts its ResNet-18 from MS-Celeb-1M face-recognition weights (§2.3, §3.2) and its SSP-*
rows from AffectNet-pretrained ones (§3.4). Neither set is reachable, so the embedded data set
carries a stand-in for each, and both pretrainings are real training runs through
:func:`affectlib.train.fit` of the objectives of :mod:`affectlib.methods.pretrain`:

- ``identity`` (for MS-Celeb-1M): identity classification on ``celeb/`` — embedded subjects who
  appear in no training or validation split (``celeb/identities.txt``, read by
  :func:`affectlib.data.writers.read_identities`). The network is the multi-task network with an
  extra linear identity head on its normalised features
  (:class:`affectlib.methods.pretrain.IdentityNet`); the loss is plain cross entropy over the
  identities (:data:`affectlib.methods.pretrain.IDENTITY`). Its validation split (other images of the
  same identities) gives the identification accuracy recorded with the weights.
- ``affectnet`` (for AffectNet): MFAR's losses on the AffectNet-format set (format "affectnet":
  expression and VA labels, no AU label, so the AU term is 0), the registered method
  ``pretrain-affectnet``, trained by :func:`affectlib.train.run`.

Only the backbone is kept (``backbone.safetensors``, keys without the ``backbone.`` prefix); a run
loads it as a user's weights file, through ``profiles.get(..., weights=path)`` and
:func:`affectlib.models.load_weights` (the heads start fresh). :func:`pretrained_weights` caches
the file under ``<repo>/build/pretrained/<source>-<profile>-<key>/``, the key being a hash of the
source, the training settings and the data (annotation table and the bytes of every image), so a
changed renderer or setting trains anew and anything else reuses the file. A user's own file
(the ``paper`` profile: real MS-Celeb-1M / AffectNet weights) is given by path instead and never
trained here.

Bulat et al. 2022 (notebook 07) adds two sources on the same identity-set images:

- ``swav`` (self-supervised faces, the paper's VGG-Face SwAV): SwAV
  (:data:`affectlib.methods.pretrain.SWAV`) on the identity set's training images with their
  identity labels unused; Adam (``LARS`` under the ``paper`` profile, as the supplement §1.1),
  a linear warm-up over the first epoch (the paper: 10 of 200) then the cosine decay;
- ``cosface`` (supervised face recognition, the paper's ``vggface`` row): CosFace with margin
  0.35 (:data:`affectlib.methods.pretrain.IDENTITY_COSFACE`) on the same images and labels as
  ``identity``.

Both record, besides their own numbers, a label-free probe of the representation:
:func:`knn_identity_accuracy`, leave-one-out 1-nearest-neighbour identification on the identity
set's validation images with the exported trunk's features.

Command line: ``python -m affectlib.pretraining identity|affectnet|swav|cosface [--profile cpu]
[--image-size 32] [--epochs 3]`` prints the path of the (cached) weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_file
from torch import Tensor

from affectlib import distributed, models, profiles, train
from affectlib.data import cache, datasets, generate, study, writers
from affectlib.data.cache import ImageCache
from affectlib.data.table import build_table
from affectlib.files import atomic_write_text, fingerprint_table
from affectlib.labels import AU_COLUMNS, EXPR_MISSING, VA_MISSING
from affectlib.methods.pretrain import (
    AFFECTNET,
    IDENTITY,
    IDENTITY_COSFACE,
    SWAV,
    IdentityNet,
    SwAVNet,
)
from affectlib.train import TrainData

PRETRAIN_VERSION = 2  # 2: the weak view became SS-MFAR's crop (8 px at 224, on half the items)
SOURCES = ("identity", "affectnet", "swav", "cosface")
IDENTITY_SET_SOURCES = ("identity", "swav", "cosface")  # the sources that read celeb/
CACHE_DIR = Path(__file__).resolve().parents[1] / "build" / "pretrained"
WEIGHTS_FILE = "backbone.safetensors"
RECORD_FILE = "pretrain.json"
IDENTITY_IMAGES = "celeb/images"


# --- identity classification (the MS-Celeb-1M stand-in) --------------------------------------------
def identity_table(root: str | Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The identity set under ``root/celeb`` as a standard annotation table without affect labels
    (expression -1, AUs -1, VA -5: no affect loss can use it) and the identity of each row as a
    class index 0..K-1 (the file's identity numbers, ranked)."""
    ids = writers.read_identities(Path(root) / "celeb" / "identities.txt")
    if ids.empty:
        raise ValueError(f"{root}/celeb/identities.txt lists no image")
    n = len(ids)
    table = build_table(
        {
            "path": ids["path"],
            "video": [""] * n,
            "frame": np.full(n, -1),
            "expr": np.full(n, EXPR_MISSING),
            **{c: np.full(n, -1) for c in AU_COLUMNS},
            "valence": np.full(n, VA_MISSING),
            "arousal": np.full(n, VA_MISSING),
            "split": ids["split"],
            "source": ["celeb"] * n,
            "ann_file": ["celeb/identities.txt"] * n,
            "ann_line": np.arange(2, n + 2),
        }
    )
    classes = np.unique(ids["identity"].to_numpy(), return_inverse=True)[1]
    return table, classes.astype(np.int64)


class IdentityLoader(datasets.BatchLoader):
    """A :class:`~affectlib.data.datasets.BatchLoader` whose batches also carry ``identity``
    (int64 (B,), the class index of each image)."""

    def __init__(self, table, images, sampler, batch_size, identity: np.ndarray, **kw) -> None:
        super().__init__(table, images, sampler, batch_size, **kw)
        if len(identity) != len(table):
            raise ValueError(f"{len(identity)} identities for a table of {len(table)} rows")
        self.identity = np.asarray(identity, dtype=np.int64)

    def batch(self, items: np.ndarray) -> dict[str, Tensor]:
        out = super().batch(items)
        out["identity"] = torch.from_numpy(self.identity[out["index"].numpy()])
        return out


def identity_data(profile, root: str | Path, seed: int, progress: bool = False):
    """Training and validation loaders of the identity set at ``profile.image_size``."""
    table, identity = identity_table(root)
    image_root = Path(root) / IDENTITY_IMAGES
    parts = {}
    for split in ("train", "validation"):
        keep = (table["split"] == split).to_numpy()
        if not keep.any():
            raise ValueError(f"{root}/celeb/identities.txt has no {split!r} image")
        part = table[keep].reset_index(drop=True)
        cache = ImageCache.build(part, image_root, size=profile.image_size, progress=progress)
        parts[split] = (part, cache, identity[keep])
    (train, train_cache, train_id), (val, val_cache, val_id) = parts["train"], parts["validation"]
    if len(train) < profile.batch_size:
        raise ValueError(
            f"identity set: {len(train)} training images, fewer than one batch of "
            f"{profile.batch_size}"
        )
    return TrainData(
        train=IdentityLoader(
            train,
            train_cache,
            datasets.RandomSampler(len(train), seed),
            profile.batch_size,
            train_id,
            drop_last=True,
        ),
        val=IdentityLoader(
            val, val_cache, datasets.SequentialSampler(len(val)), profile.batch_size, val_id
        ),
        train_table=train,
        source={"root": str(root), "format": "identities", "labels": fingerprint_table(table)},
    )


@torch.no_grad()
def identity_accuracy(model: IdentityNet, loader: IdentityLoader) -> float:
    """Share of the loader's images whose identity is the arg-max of the identity logits."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    hits = total = 0
    for batch in loader:
        pred = model(batch["image"].to(device))["identity"].argmax(dim=1).cpu()
        hits += int((pred == batch["identity"]).sum())
        total += len(pred)
    model.train(was)
    return hits / total if total else float("nan")


# --- the two pretraining runs --------------------------------------------------------------------
def train_identity(
    profile, root: str | Path, out_dir: str | Path, seed: int = 0, progress: bool = False
) -> dict:
    """Identity classification on the identity set through :func:`train.fit`; returns the final
    metrics with the validation identification accuracy."""
    data = identity_data(profile, root, seed, progress=progress)
    n_ids = int(max(data.train.identity.max(), data.val.identity.max())) + 1
    cfg = train.TrainConfig.from_profile(profile, seed, progress=progress)
    model_cfg = models.ModelConfig.from_profile(profile, weights=None)  # from scratch
    distributed.seed_everything(seed)
    model = IdentityNet(model_cfg, n_ids)
    record = {
        "method": IDENTITY.name,
        "options": {},
        "seed": seed,
        "image_size": profile.image_size,
        "batch_size": profile.batch_size,
        "model": dataclasses.asdict(model_cfg),
        "identities": n_ids,
        "train": cfg.record(),
        "data": {k: v for k, v in data.source.items() if k != "root"},
    }
    train.fit(model, IDENTITY, data, cfg, out_dir, record)
    return {
        "identities": n_ids,
        "train_images": len(data.train_table),
        "val_identity_accuracy": identity_accuracy(model, data.val),
    }


def train_affectnet(
    profile, root: str | Path, out_dir: str | Path, seed: int = 0, progress: bool = False
) -> dict:
    """MFAR's expression and VA losses on the AffectNet-format set through :func:`train.run`;
    returns its final validation scores (expression macro F1, VA CCC)."""
    result = train.run(
        AFFECTNET.name,
        profile.replace(weights=None),
        out_dir,
        seed,
        data_root=root,
        format="affectnet",
        progress=progress,
    )
    config = json.loads((Path(out_dir) / "config.json").read_text())
    return {
        "train_images": int(config["data"]["train_rows"]),
        "val_expr_f1": float(result.metrics["expr_f1"]),
        "val_va": float(result.metrics["va"]),
    }


@torch.no_grad()
def knn_identity_accuracy(model: torch.nn.Module, loader: IdentityLoader) -> float:
    """Leave-one-out 1-nearest-neighbour identification (cosine similarity of the model's ``feat``
    output) over the loader's images: how well the trunk's features separate people whom no
    training step saw labelled in that split. NaN with fewer than 2 images."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    feats, ids = [], []
    for batch in loader:
        feats.append(model(batch["image"].to(device))["feat"].float().cpu())
        ids.append(batch["identity"])
    model.train(was)
    f = torch.nn.functional.normalize(torch.cat(feats), dim=1)
    y = torch.cat(ids)
    if len(y) < 2:
        return float("nan")
    sim = f @ f.T
    sim.fill_diagonal_(-math.inf)
    return float((y[sim.argmax(dim=1)] == y).float().mean())


def knn_probe(weights: str | Path | None, profile, root: str | Path) -> float:
    """:func:`knn_identity_accuracy` of a trunk on the identity set's validation images: the
    ``weights`` file loaded into the profile's network, or (None) the network as initialised with
    seed 0 — the probe's floor for a representation that learnt nothing."""
    data = identity_data(profile, root, seed=0)
    distributed.seed_everything(0)
    model = models.build_model(models.ModelConfig.from_profile(profile, weights=weights))
    return knn_identity_accuracy(model, data.val)


def train_cosface(
    profile, root: str | Path, out_dir: str | Path, seed: int = 0, progress: bool = False
) -> dict:
    """CosFace (margin 0.35) identity classification on the identity set through
    :func:`train.fit` (Bulat et al. supplement §1.2); returns the final metrics with the
    validation identification accuracies (cosine to the class weights, and 1-NN)."""
    data = identity_data(profile, root, seed, progress=progress)
    n_ids = int(max(data.train.identity.max(), data.val.identity.max())) + 1
    cfg = train.TrainConfig.from_profile(profile, seed, progress=progress)
    model_cfg = models.ModelConfig.from_profile(profile, weights=None)  # from scratch
    distributed.seed_everything(seed)
    model = IdentityNet(model_cfg, n_ids)
    record = {
        "method": IDENTITY_COSFACE.name,
        "options": dict(IDENTITY_COSFACE.options),
        "seed": seed,
        "image_size": profile.image_size,
        "batch_size": profile.batch_size,
        "model": dataclasses.asdict(model_cfg),
        "identities": n_ids,
        "train": cfg.record(),
        "data": {k: v for k, v in data.source.items() if k != "root"},
    }
    train.fit(model, IDENTITY_COSFACE, data, cfg, out_dir, record)
    # CosFace classifies by the cosine to each identity's weight vector (no bias)
    head = model.identity_head
    with torch.no_grad():
        head.bias.zero_()
        head.weight.copy_(torch.nn.functional.normalize(head.weight, dim=1))
    return {
        "identities": n_ids,
        "train_images": len(data.train_table),
        "val_identity_accuracy": identity_accuracy(model, data.val),
        "val_knn_identity_accuracy": knn_identity_accuracy(model, data.val),
    }


def train_swav(
    profile, root: str | Path, out_dir: str | Path, seed: int = 0, progress: bool = False
) -> dict:
    """SwAV on the identity set's training images, labels unused, through :func:`train.fit`
    (Bulat et al. supplement §1.1): one learning rate for the trunk and the heads
    (``profile.lr_backbone``), a linear warm-up over the first epoch then the profile's schedule,
    Adam (LARS under the ``paper`` profile, at the profile's ``lr_backbone``: the supplement's
    4.8 for batch 4096 must be given there); the last epoch is kept. Returns the final loss and
    the label-free probe :func:`knn_identity_accuracy` on the validation images."""
    data = identity_data(profile, root, seed, progress=progress)
    options = {**SWAV.options, "crop_seed": int(seed)}
    cfg = train.TrainConfig.from_profile(
        profile,
        seed,
        progress=progress,
        lr_heads=profile.lr_backbone,
        warmup_steps=len(data.train),
        optimizer="lars" if profile.name == "paper" else "adam",
    )
    model_cfg = models.ModelConfig.from_profile(profile, weights=None)  # from scratch
    distributed.seed_everything(seed)
    model = SwAVNet(model_cfg, options["n_prototypes"], options["proj_dim"])
    record = {
        "method": SWAV.name,
        "options": options,
        "seed": seed,
        "image_size": profile.image_size,
        "batch_size": profile.batch_size,
        "model": dataclasses.asdict(model_cfg),
        "train": cfg.record(),
        "data": {k: v for k, v in data.source.items() if k != "root"},
        "labels_used": False,
    }
    result = train.fit(model, SWAV, data, cfg, out_dir, record)
    return {
        "train_images": len(data.train_table),
        "final_loss_swav": float(result.history["train_loss_swav"].iloc[-1]),
        "val_knn_identity_accuracy": knn_identity_accuracy(model, data.val),
    }


TRAINERS = {
    "identity": train_identity,
    "affectnet": train_affectnet,
    "swav": train_swav,
    "cosface": train_cosface,
}
OBJECTIVES = {"affectnet": AFFECTNET, "swav": SWAV, "cosface": IDENTITY_COSFACE}


def _affectnet_table(root: str | Path, split: str | None = None) -> pd.DataFrame:
    table = study.load_dataset(root, "affectnet").table
    return table if split is None else table[table["split"] == split]


def export_backbone(checkpoint: str | Path, dest: str | Path) -> Path:
    """The backbone weights of a training checkpoint as a backbone-only safetensors file (keys
    ``X``), which :func:`models.load_weights` loads: those of the epoch the run selected on
    validation (``best``) when the checkpoint has it, else its ``model`` state (keys
    ``...backbone.X``)."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state = (ckpt.get("best") or {}).get("model") or ckpt["model"]
    backbone = {}
    for k, v in state.items():
        head, sep, rest = k.partition("backbone.")
        if sep and head in ("", "net."):
            backbone[rest] = v.contiguous()
    if not backbone:
        raise ValueError(f"{checkpoint}: no backbone weights among {len(state)} keys")
    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.tmp")
    save_file(backbone, str(tmp))
    tmp.replace(dest)
    return dest


# --- the cache ------------------------------------------------------------------------------------
def data_fingerprint(source: str, root: str | Path, image_size: int) -> dict[str, str]:
    """What a pretraining reads: the fingerprint of its annotation table and of the bytes of every
    image it decodes (at ``image_size``), so a re-rendered data set gives another key."""
    if source in IDENTITY_SET_SOURCES:
        table = identity_table(root)[0]
        images = Path(root) / IDENTITY_IMAGES
    elif source == "affectnet":
        table = _affectnet_table(root)
        images = study.image_root(root, "affectnet")
    else:
        raise ValueError(f"unknown pretraining source {source!r}; known: {', '.join(SOURCES)}")
    return {
        "labels": fingerprint_table(table),
        "images": cache.fingerprint(table, images, image_size),
    }


def settings(source: str, profile, seed: int = 0) -> dict[str, Any]:
    """The settings a pretraining depends on (besides its data and the code)."""
    keys = ("image_size", "backbone", "small_input", "epochs", "batch_size", "lr_backbone",
            "lr_schedule")  # fmt: skip
    return {
        "version": PRETRAIN_VERSION,
        "source": source,
        "profile": profile.name,
        "seed": int(seed),
        **{k: getattr(profile, k) for k in (*keys, "lr_heads", "extra")},
        # the loss's options (MFAR's for the AffectNet-format source): a changed option retrains
        "options": dict(OBJECTIVES[source].options) if source in OBJECTIVES else {},
        # the forward pass's precision as resolved on this machine: bf16 weights are not reused
        # for a float32 study, nor the other way round
        "precision": distributed.resolve_precision(torch.device(profile.device), profile.precision),
    }


def cache_key(settings: dict[str, Any], data: dict[str, str]) -> str:
    """sha256 (hex) of a pretraining's :func:`settings` and :func:`data_fingerprint`."""
    record = {"settings": settings, "data": data}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def pretrained_weights(
    source: str,
    profile,
    root: str | Path,
    *,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> Path:
    """The backbone weights of ``source`` (one of :data:`SOURCES`) pretrained under
    ``profile`` (its image size, epochs, batch size, learning rates, backbone) on the embedded set
    at ``root``: read from the cache when a run with the same key finished, else trained now.

    The folder ``cache_dir/<source>-<profile>-<key[:16]>`` holds ``backbone.safetensors`` and
    ``pretrain.json`` (settings, data fingerprint, final metrics, wall time), the latter written
    last: a folder without it is an interrupted run, which resumes from its checkpoint."""
    if source not in SOURCES:
        raise ValueError(f"unknown pretraining source {source!r}; known: {', '.join(SOURCES)}")
    wanted, data = (
        settings(source, profile, seed),
        data_fingerprint(source, root, profile.image_size),
    )
    key = cache_key(wanted, data)
    folder = Path(cache_dir or CACHE_DIR) / f"{source}-{profile.name}-{key[:16]}"
    weights, record = folder / WEIGHTS_FILE, folder / RECORD_FILE
    if weights.exists() and record.exists():
        return weights
    t0 = time.perf_counter()
    run_dir = folder / "run"
    try:
        metrics = TRAINERS[source](profile, root, run_dir, seed, progress=progress)
    except Exception:
        # a checkpoint of another configuration would be refused forever: start that folder over
        shutil.rmtree(folder, ignore_errors=True)
        raise
    export_backbone(run_dir / "checkpoint.pt", weights)  # the selected epoch's (see export)
    # the backbone is what later runs need; the optimiser state (2/3 of the file) is not
    (run_dir / "checkpoint.pt").unlink()
    atomic_write_text(
        record,
        json.dumps(
            {
                "key": key,
                "settings": wanted,
                "data": data,
                "metrics": metrics,
                "wall_time_s": round(time.perf_counter() - t0, 2),
            },
            indent=2,
            default=str,
        )
        + "\n",
    )
    return weights


def read_record(weights: str | Path) -> dict[str, Any]:
    """The ``pretrain.json`` beside a cached weights file; empty for a user's own file."""
    path = Path(weights).with_name(RECORD_FILE)
    return json.loads(path.read_text()) if path.exists() else {}


# --- command line ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m affectlib.pretraining",
        description="Pretrain a backbone on an embedded stand-in set (cached); prints its path.",
    )
    ap.add_argument("source", choices=SOURCES)
    ap.add_argument("--profile", default="cpu", help="smoke | cpu (default: cpu)")
    ap.add_argument("--image-size", type=int, default=0, help="0: the profile's")
    ap.add_argument("--epochs", type=int, default=0, help="0: the profile's")
    ap.add_argument("--seed", type=int, default=0, help="seed of the data set and the run")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    base = profiles.get(args.profile)
    root = generate.ensure(base, args.seed)  # the data set at the profile's own image size
    over = {"image_size": args.image_size, "epochs": args.epochs}
    profile = base.replace(**{k: v for k, v in over.items() if v})
    print(pretrained_weights(args.source, profile, root, seed=args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
