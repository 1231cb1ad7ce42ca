"""The one training loop: ``fit`` trains any method of :mod:`affectlib.methods`; ``run`` sets it up.

``run(method, profile, out)`` builds the data (the embedded set by default), the model and the
training configuration from a profile and calls :func:`fit`, which writes into ``out``:

- ``config.json``         the resolved configuration (also printed), compared on resume;
- ``checkpoint.pt``       model, optimiser, method state, loader position, every RNG state, epoch
                          and step, the per-epoch metrics so far — written atomically (temporary
                          file + ``os.replace``) every ``checkpoint_every`` steps and per epoch;
- ``metrics.csv`` / ``.md`` one row per epoch: mean training losses and validation scores;
- ``metrics.json``        the final validation ``expr_f1``, ``au_f1``, ``va``, ``overall``
                          (SS-MFAR Eq. 10) with the epoch and step they were measured at;
- ``predictions_val.npz`` validation labels (ABAW markers kept) and predictions: expression and
                          AU probabilities, VA — for confusion matrices, per-AU F1, VA scatter;
- ``provenance.json``     commit, device, package versions, wall time, throughput.

Determinism and resume. One seed fixes the initialisation (torch's global generator, seeded
before the model is built), the data order (the loader's sampler) and the augmentation (a
dedicated generator). On CPU the loop turns on ``torch.use_deterministic_algorithms``, so two runs
with one seed write identical metrics. Rerunning a command whose process was killed at any moment
continues from ``checkpoint.pt``: weights, Adam moments, method state, the loader's position inside
the epoch, the python / numpy / torch / augmentation generator states and the partial epoch sums
are restored, so the run ends with exactly the metrics of an uninterrupted one. A checkpoint from
another configuration is refused with the differing keys named.

Devices. CPU: torch uses every core (shared among the processes of a multi-process run). CUDA:
bf16 autocast, channels-last images and weights, pinned host memory with non-blocking copies.
Under ``torchrun`` (``WORLD_SIZE`` > 1) the same entry point trains with DistributedDataParallel
(NCCL on CUDA, gloo on CPU); each process reads its share of every epoch's permutation, rank 0
validates and writes.

A non-finite loss stops the run with :class:`NonFiniteLoss` naming the step and the loss terms,
before the step is applied; the last good checkpoint stays as it was.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import random
import time
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm.auto import tqdm

from affectlib import metrics, models
from affectlib.labels import AU_MISSING, EXPR_MISSING, VA_MISSING
from affectlib.methods import MethodSpec, StepContext
from affectlib.results import ResultsWriter, atomic_write_bytes, atomic_write_text

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_VERSION = 1
SCORES = ("expr_f1", "au_f1", "va", "overall")  # SS-MFAR Eq. 10


class NonFiniteLoss(RuntimeError):
    """The loss of ``step`` (1-based, over the run) was NaN or infinite; ``terms`` holds the value of
    every logged loss term at that step."""

    def __init__(self, step: int, terms: Mapping[str, float]) -> None:
        shown = ", ".join(f"{k}={v:.6g}" for k, v in terms.items())
        super().__init__(
            f"non-finite loss at step {step} ({shown}); the step was not applied and the last "
            "good checkpoint is kept"
        )
        self.step = step
        self.terms = dict(terms)


class ConfigMismatch(ValueError):
    """``checkpoint.pt`` in the output folder was written by a run with another configuration."""


# --- configuration --------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`fit`; :meth:`from_profile` reads them from a profile.

    epochs, lr_backbone, lr_heads: Adam with 1e-3 for the backbone and 1e-2 for the heads, a
        constant rate (SS-MFAR §3.2).
    seed:             the augmentation generator's seed (data order and initialisation are fixed
                      by the caller from the same seed, see :func:`run`).
    device:           "cpu", "cuda" or "cuda:N" (under torchrun each process takes its local rank).
    checkpoint_every: optimiser steps between checkpoints; one is also written after each epoch.
    deterministic:    deterministic algorithms (always on CPU; on CUDA at some cost of speed).
    progress:         progress bars and the printed configuration (rank 0 only).
    """

    epochs: int
    lr_backbone: float = 1e-3
    lr_heads: float = 1e-2
    seed: int = 0
    device: str = "cpu"
    checkpoint_every: int = 200
    deterministic: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        if not (self.lr_backbone > 0 and self.lr_heads > 0):
            raise ValueError(f"learning rates must be > 0, got {self.lr_backbone}, {self.lr_heads}")

    @classmethod
    def from_profile(cls, profile, seed: int, **overrides: Any) -> TrainConfig:
        fields = {
            "epochs": profile.epochs,
            "lr_backbone": profile.lr_backbone,
            "lr_heads": profile.lr_heads,
            "seed": seed,
            "device": profile.device,
            "checkpoint_every": profile.checkpoint_every,
            "deterministic": profile.device == "cpu",
        }
        return cls(**{**fields, **overrides})


@dataclass
class TrainData:
    """What :func:`fit` trains and validates on.

    train: loader of training batches (the batch dict of the data contract) with ``__len__``,
        ``set_epoch(epoch)`` and ``state_dict()`` / ``load_state_dict()`` (epoch and position, so
        a restored loader yields exactly the remaining batches of its epoch).
    val:   loader of validation batches, fixed order, no augmentation.
    train_table: the training split's annotation table (methods count their class weights on it).
    augment: object with ``weak(images, generator)`` and ``strong(images, generator)`` on uint8
        image batches.
    """

    train: Any
    val: Any
    train_table: pd.DataFrame
    augment: Any


@dataclass
class FitResult:
    """metrics: final validation scores; history: one row per epoch; predictions: validation
    labels and predictions (see :func:`predict`); ``resumed_at``: the step a resumed run started
    from (0 for a fresh run). On ranks other than 0 of a multi-process run only ``out_dir`` and
    ``resumed_at`` are set."""

    metrics: dict[str, float]
    history: pd.DataFrame
    predictions: dict[str, np.ndarray]
    out_dir: Path
    resumed_at: int = 0


# --- distributed and device set-up ----------------------------------------------------------------
@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def dist_from_env() -> Dist:
    """Rank, world size and local rank from torchrun's environment (one process without it)."""
    env = os.environ
    return Dist(
        int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0))
    )


def _init_distributed(d: Dist, device: torch.device) -> bool:
    """Join the process group when running under torchrun; True when this call created it."""
    if d.world == 1 or dist.is_initialized():
        return False
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return True


def resolve_device(name: str, d: Dist) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} requested but CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {name!r}")
    return device


def _configure_runtime(device: torch.device, deterministic: bool) -> None:
    if device.type == "cpu":
        # processes of one machine share its cores
        local = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    else:
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
        if deterministic:
            # cuBLAS reads this when its first handle is created: deterministic GEMM workspaces
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators (initialisation, dropout)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --- RNG states (checkpointed per process) ---------------------------------------------------------
def _rng_state(gen: torch.Generator) -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        # numpy's key array as a tensor: the checkpoint then loads with weights_only=True
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "torch": torch.get_rng_state(),
        "augment": gen.get_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any], gen: torch.Generator) -> None:
    random.setstate(state["python"])
    name, key, *rest = state["numpy"]
    np.random.set_state((name, key.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    gen.set_state(state["augment"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def _gather(obj: Any, d: Dist) -> list[Any]:
    """``obj`` of every process, by rank (collective: every process must call it)."""
    if d.world == 1:
        return [obj]
    out: list[Any] = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


# --- checkpoints ------------------------------------------------------------------------------------
def _atomic_torch_save(obj: Any, path: Path) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _to_cpu(x: Any) -> Any:
    if isinstance(x, Tensor):
        return x.detach().cpu()
    if isinstance(x, dict):
        return {k: _to_cpu(v) for k, v in x.items()}
    return x


def _to_device(state: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, Tensor) else v for k, v in state.items()}


def _json_normal(record: Mapping[str, Any]) -> dict[str, Any]:
    # the JSON round trip makes tuples lists and keys strings, as config.json holds them
    return json.loads(json.dumps(record, sort_keys=True, default=str))


def _diff(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k, "<absent>"), b.get(k, "<absent>")
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: checkpoint {va!r}, now {vb!r}")
    return out


def load_checkpoint(path: Path, record: Mapping[str, Any]) -> dict[str, Any]:
    """Read ``path`` (weights_only) and check it was written under ``record``; raise
    :class:`ConfigMismatch` naming each differing key otherwise."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise ConfigMismatch(
            f"{path}: checkpoint format {ckpt.get('version')!r}, expected {CHECKPOINT_VERSION}"
        )
    differences = _diff(ckpt["config"], _json_normal(record))
    if differences:
        raise ConfigMismatch(
            f"{path} was written by another configuration; resume refused. Differences: "
            + "; ".join(differences)
            + ". Use another --out folder, or delete the checkpoint to start over."
        )
    return ckpt


# --- validation -----------------------------------------------------------------------------------
@torch.no_grad()
def predict(model: nn.Module, loader, device: torch.device) -> dict[str, np.ndarray]:
    """Run ``model`` (eval mode) over ``loader``; labels back in the ABAW markers.

    Returns ``index`` (N,) table rows, ``expr_true`` (N,) with -1, ``au_true`` (N, n_au) with -1,
    ``va_true`` (N, 2) with -5, ``expr_prob`` (N, n_expr) softmax, ``au_prob`` (N, n_au) sigmoid,
    ``va_pred`` (N, 2).
    """
    was_training = model.training
    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    amp = _autocast(device)
    for batch in loader:
        images = batch["image"].to(device, non_blocking=True)
        if device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        with amp:
            out = model(images)
        has_au = batch["has_au"] if batch["has_au"].ndim == 2 else batch["has_au"][:, None]
        rows = {
            "index": batch["index"],
            "expr_true": torch.where(batch["has_expr"], batch["expr"], EXPR_MISSING),
            "au_true": torch.where(has_au, batch["au"], AU_MISSING).long(),
            "va_true": torch.where(batch["has_va"][:, None], batch["va"], VA_MISSING),
            "expr_prob": out["expr"].float().softmax(dim=1),
            "au_prob": out["au"].float().sigmoid(),
            "va_pred": out["va"].float(),
        }
        for k, v in rows.items():
            parts.setdefault(k, []).append(v.cpu().numpy())
    model.train(was_training)
    if not parts:
        raise ValueError("the validation loader yielded no batch")
    return {k: np.concatenate(v) for k, v in parts.items()}


def score(pred: Mapping[str, np.ndarray]) -> dict[str, float]:
    """P_MTL of SS-MFAR Eq. 10 from :func:`predict`'s output: expression = argmax, AU = sigmoid >
    0.5, VA as predicted; each task over its labelled rows (:func:`metrics.p_mtl`)."""
    return metrics.p_mtl(
        pred["expr_true"],
        pred["expr_prob"].argmax(axis=1),
        pred["au_true"],
        (pred["au_prob"] > 0.5).astype(int),
        pred["va_true"],
        pred["va_pred"],
    )


# --- the loop ---------------------------------------------------------------------------------------
def _autocast(device: torch.device):
    # bf16 keeps float32's exponent range: no loss scaling needed
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def lr_schedule(cfg: TrainConfig, total_steps: int) -> np.ndarray:
    """Learning rate of each parameter group at each step, (total_steps, 2): backbone, heads.

    Constant, as SS-MFAR §3.2 states no schedule; computed up front so a schedule is one line."""
    return np.tile([cfg.lr_backbone, cfg.lr_heads], (total_steps, 1))


def _to_device_batch(batch: Mapping[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    if device.type == "cpu":
        return dict(batch)
    # pinned host memory lets the copy overlap with compute
    return {
        k: (v if v.is_pinned() else v.pin_memory()).to(device, non_blocking=True)
        for k, v in batch.items()
    }


def _views(
    batch: dict[str, Tensor], method: MethodSpec, augment, gen: torch.Generator
) -> dict[str, Tensor]:
    for name in method.views:  # order fixed by the method: the generator's draws are reproducible
        view = getattr(augment, name)(batch["image"], gen)
        if view.device.type == "cuda":
            view = view.contiguous(memory_format=torch.channels_last)
        batch[name] = view
    return batch


def _write_outputs(
    out: Path,
    writer: ResultsWriter,
    history: list[dict[str, float]],
    pred: Mapping[str, np.ndarray] | None,
    final: Mapping[str, Any] | None,
) -> None:
    writer.table(pd.DataFrame(history), "metrics", caption="Per-epoch training and validation")
    if pred is not None:
        buf = io.BytesIO()
        np.savez(buf, **pred)
        atomic_write_bytes(out / "predictions_val.npz", buf.getvalue())
    if final is not None:
        atomic_write_text(out / "metrics.json", json.dumps(final, indent=2) + "\n")


def fit(
    model: nn.Module,
    method: MethodSpec,
    data: TrainData,
    cfg: TrainConfig,
    out_dir: str | Path,
    record: Mapping[str, Any] | None = None,
) -> FitResult:
    """Train ``model`` with ``method`` on ``data`` under ``cfg``; write into ``out_dir``.

    Resumes from ``out_dir/checkpoint.pt`` when it exists. ``record`` is the resolved
    configuration saved in ``config.json`` and in the checkpoint, and compared on resume (default:
    ``cfg`` and the method's name). Options of the method come from ``record["options"]`` (its
    defaults when absent). Returns the final validation scores, the per-epoch history and the
    validation predictions.
    """
    out = Path(out_dir)
    d = dist_from_env()
    device = resolve_device(cfg.device, d)
    created_group = _init_distributed(d, device)
    previous_determinism = torch.are_deterministic_algorithms_enabled()
    _configure_runtime(device, cfg.deterministic)
    record = _json_normal(
        record
        if record is not None
        else {"method": method.name, "train": dataclasses.asdict(cfg), "world_size": d.world}
    )
    options = dict(record.get("options", method.options))
    try:
        return _fit(model, method, data, cfg, out, record, options, d, device)
    finally:
        torch.use_deterministic_algorithms(previous_determinism)
        if created_group:
            dist.destroy_process_group()


def _fit(
    model: nn.Module,
    method: MethodSpec,
    data: TrainData,
    cfg: TrainConfig,
    out: Path,
    record: dict[str, Any],
    options: dict[str, Any],
    d: Dist,
    device: torch.device,
) -> FitResult:
    t_start = time.perf_counter()
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(models.param_groups(model, cfg.lr_backbone, cfg.lr_heads))
    gen = torch.Generator(device=device).manual_seed(cfg.seed * 1_000_003 + d.rank)
    steps_per_epoch = len(data.train)
    if steps_per_epoch == 0:
        raise ValueError("the training loader yields no batch: fewer images than one batch?")
    schedule = lr_schedule(cfg, cfg.epochs * steps_per_epoch)
    writer = ResultsWriter(out.parent, out.name, profile=record, seeds=[cfg.seed]) if d.main else None

    # --- state: fresh or from the checkpoint ---
    ckpt_path = out / CHECKPOINT
    epochs_done, step, history = 0, 0, []
    loader_state, sums = None, {}
    if ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path, record)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        state = _to_device(ckpt["method_state"], device)
        epochs_done, step, history = ckpt["epochs_done"], ckpt["step"], ckpt["history"]
        loader_state = ckpt["loader"]
        if len(ckpt["per_process"]) != d.world:
            raise ConfigMismatch(f"{ckpt_path}: written by {len(ckpt['per_process'])} processes")
        mine = ckpt["per_process"][d.rank]
        _set_rng_state(mine["rng"], gen)
        sums = mine["sums"]
    else:
        state = _to_device(method.init_state(data.train_table, options), device)
    resumed_at = step
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json", json.dumps(record, indent=2) + "\n")
        if cfg.progress:
            where = f"resuming at step {step}" if step else "starting"
            print(f"train {method.name} -> {out} ({where}): {json.dumps(record)}")
    net = model
    if d.world > 1:
        ids = [device.index] if device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def checkpoint(loader_pos: dict | None) -> None:
        per_process = _gather({"rng": _rng_state(gen), "sums": dict(sums)}, d)  # collective
        if not d.main:
            return
        _atomic_torch_save(
            {
                "version": CHECKPOINT_VERSION,
                "config": record,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "method_state": _to_cpu(state),
                "epochs_done": epochs_done,
                "step": step,
                "loader": loader_pos,
                "history": history,
                "per_process": _to_cpu(per_process),
            },
            ckpt_path,
        )

    pred = None
    images_seen, t_train = 0, 0.0
    for epoch in range(epochs_done, cfg.epochs):
        ctx = StepContext(epoch + 1, step, cfg.epochs, device, options)
        if loader_state is not None:  # resuming inside this epoch
            data.train.load_state_dict(loader_state)
            loader_state = None
        else:
            data.train.set_epoch(epoch)
            sums = {}
        if method.on_epoch_start is not None:
            method.on_epoch_start(state, ctx)
        net.train()
        done_before = step - epoch * steps_per_epoch
        bar = tqdm(
            data.train,
            total=steps_per_epoch,
            initial=done_before,
            desc=f"{method.name} epoch {epoch + 1}/{cfg.epochs}",
            unit="batch",
            disable=not (cfg.progress and d.main),
            leave=False,
        )
        t0 = time.perf_counter()
        for batch in bar:
            # data: to the device, augmented views
            batch = _views(_to_device_batch(batch, device), method, data.augment, gen)
            ctx = StepContext(epoch + 1, step, cfg.epochs, device, options)
            # forward + loss
            with _autocast(device):
                loss, logs = method.loss(net, batch, state, ctx)
            values = dict(zip(["loss", *logs], torch.stack([loss.detach(), *logs.values()])
                          .float().tolist(), strict=True))  # one device sync per step
            if not all(math.isfinite(v) for v in values.values()):
                raise NonFiniteLoss(step + 1, values)
            # backward
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # step
            for group, lr in zip(optimizer.param_groups, schedule[step], strict=True):
                group["lr"] = float(lr)
            optimizer.step()
            step += 1
            # log
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            sums["n"] = sums.get("n", 0.0) + 1
            images_seen += int(batch["image"].shape[0])
            bar.set_postfix(loss=f"{values['loss']:.4f}", refresh=False)
            if step % cfg.checkpoint_every == 0:
                checkpoint(data.train.state_dict())
        bar.close()
        t_train += time.perf_counter() - t0

        # end of epoch: hook, mean losses over every process, validation, checkpoint
        if method.on_epoch_end is not None:
            method.on_epoch_end(state, StepContext(epoch + 1, step, cfg.epochs, device, options))
        epoch_means = _reduce_means(sums, d, device)
        epochs_done = epoch + 1
        if d.main:
            pred = predict(model, data.val, device)
            history.append({"epoch": epochs_done, "step": step, **epoch_means, **score(pred)})
        checkpoint(None)
        if d.main:
            _write_outputs(out, writer, history, None, None)
        if d.world > 1:
            dist.barrier()

    if not d.main:
        return FitResult({}, pd.DataFrame(), {}, out, resumed_at)
    if pred is None:  # the checkpoint was already complete: the outputs are rebuilt from it
        pred = predict(model, data.val, device)
    final = {k: history[-1][k] for k in SCORES}
    final.update(epoch=history[-1]["epoch"], step=history[-1]["step"], method=method.name)
    _write_outputs(out, writer, history, pred, final)
    writer.write_provenance(
        resumed_at_step=resumed_at,
        train_images_per_s=round(images_seen * d.world / t_train, 1) if t_train else None,
        fit_wall_time_s=round(time.perf_counter() - t_start, 2),
    )
    return FitResult(final, pd.DataFrame(history), pred, out, resumed_at)


def _reduce_means(sums: Mapping[str, float], d: Dist, device: torch.device) -> dict[str, float]:
    """Per-epoch means of the logged terms, pooled over the processes."""
    names = sorted(k for k in sums if k != "n")
    if d.world > 1:
        t = torch.tensor([sums.get("n", 0.0), *(sums[k] for k in names)], dtype=torch.float64)
        t = t.to(device if device.type == "cuda" else "cpu")
        dist.all_reduce(t)
        n, *totals = t.tolist()
    else:
        n, totals = sums.get("n", 0.0), [sums[k] for k in names]
    return {f"train_{k}": (v / n if n else float("nan")) for k, v in zip(names, totals, strict=True)}
