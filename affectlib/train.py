"""The one training loop: :func:`fit` trains any method of :mod:`affectlib.methods`; :func:`run`
sets it up from a profile.

``run(method, profile, out)`` builds the data (the embedded set by default), the model and the
training configuration and calls :func:`fit`, which writes into ``out``:

- ``config.json``          the resolved configuration (also printed), compared on resume;
- ``checkpoint.pt``        model, optimiser, method state, loader position, the RNG states, epoch
                           and step, the per-epoch metrics so far — written atomically (temporary
                           file + ``os.replace``) every ``checkpoint_every`` steps and per epoch;
- ``metrics.csv`` / ``.md`` one row per epoch: mean training losses and validation scores;
- ``metrics.json``         the scores of the selected epoch (``TrainData.score``; by default
                           ``expr_f1``, ``au_f1``, ``va``, ``overall``, SS-MFAR Eq. 10) on the
                           validation split, and with a ``test_`` prefix on the test split when
                           the data has one, and the epoch and step they were measured at;
- ``predictions_val.npz``  validation labels (ABAW markers kept) and predictions: expression and
                           AU probabilities, VA — for confusion matrices, per-AU F1, VA scatter;
- ``predictions_test.npz`` the same on the test split, when the data has one;
- ``provenance.json``      commit, device, package versions, wall time, throughput.

Model selection. The epoch whose validation ``TrainData.select`` score is highest is the run's
result (the papers' practice: the best epoch on validation); its weights are kept, and when the
data has a held-out ``test`` split that model is scored on it once, at the end: the validation
score of a selected epoch is optimistic (it was chosen on that split), the test score is not.
``select`` None: the last epoch.

Determinism and resume. One seed fixes the initialisation (the global generators, seeded before
the model is built), the data order (the sampler draws from ``(seed, epoch)``) and the
augmentation (a generator drawn afresh from ``(seed, rank, step)`` at every step). On CPU the loop
turns on ``torch.use_deterministic_algorithms``, so two runs with one seed write identical
metrics. Rerunning a command whose process was killed at any moment continues from
``checkpoint.pt``: weights, Adam moments, method state, the loader's position inside the epoch,
the python / numpy / torch generator states (dropout) and the partial epoch sums are restored, so
the run ends with exactly the metrics of an uninterrupted one. A checkpoint written under another
configuration is refused, with the differing keys named.

Devices. CPU: torch uses every core (shared among the processes of a multi-process run). CUDA:
channels-last images and weights, pinned host memory and non-blocking copies, augmentation on the
GPU. Precision (``TrainConfig.precision``, "auto"): the network's forward pass under bf16 autocast
on CUDA and on a CPU that runs bf16 in hardware, float32 elsewhere; the weights and the optimiser
stay float32, and the losses read float32 outputs outside autocast
(:func:`affectlib.distributed.forward_precision`). Under ``torchrun`` (``WORLD_SIZE`` > 1) the
same entry point trains with DistributedDataParallel (NCCL on CUDA, gloo on CPU): each process takes its share of every epoch's
permutation and ``batch_size / world_size`` images per step; rank 0 validates and writes.

A non-finite loss stops the run with :class:`NonFiniteLoss` naming the step and the loss terms,
before that step is applied; the last good checkpoint stays as it was.

Data. :func:`run` builds its loaders with :func:`affectlib.data.assembly.build_data`;
:func:`affectlib.data.assembly.build_multi_data` trains on the rows of several data sets at once.
Process set-up (ranks, device, runtime, seeds, generator states) is :mod:`affectlib.distributed`,
the checkpoint format :mod:`affectlib.checkpoints`, the configuration, optimiser and learning-rate
schedule :mod:`affectlib.train_config`, the predictions and their files
:mod:`affectlib.predictions`.

Methods that own their backward pass. The loop's step is forward + ``method.loss`` + one
``loss.backward()``. A method that needs more (per-task gradients, as MGDA-UB; task weights with
their own optimiser, as GradNorm) carries its own ``MethodSpec.step``
(:data:`affectlib.methods.StepFn`); the loop then calls it instead of its forward/loss/backward
stages, and keeps the rest: the non-finite check, the learning rates, the optimiser step, logging.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm.auto import tqdm

from affectlib import checkpoints, methods, metrics, models
from affectlib.data import augment as augment_module
from affectlib.data.assembly import TrainData, build_data
from affectlib.distributed import (
    Dist,
    configure_runtime,
    dist_from_env,
    forward_precision,
    gather,
    init_distributed,
    resolve_device,
    rng_state,
    seed_everything,
    set_rng_state,
)
from affectlib.files import atomic_write_text
from affectlib.methods.base import MethodSpec, StepContext
from affectlib.predictions import predict, write_epoch_predictions, write_npz
from affectlib.progress import bars_on
from affectlib.results import ResultsWriter
from affectlib.train_config import (
    TRAIN_EXTRA,
    FitResult,
    TrainConfig,
    build_optimizer,
    lr_schedule,
)

SCORES = ("expr_f1", "au_f1", "va", "overall")  # SS-MFAR Eq. 10


class NonFiniteLoss(RuntimeError):
    """The loss of ``step`` (1-based, over the run) was NaN or infinite; ``terms`` holds every
    logged loss term at that step. With ``TrainConfig.log_every`` > 1 the check runs once per
    window of steps: ``first`` is the window's first step, ``terms`` its sums, and the steps of
    the window were applied (no checkpoint is written before a window passes the check)."""

    def __init__(self, step: int, terms: Mapping[str, float], first: int | None = None) -> None:
        shown = ", ".join(f"{k}={v:.6g}" for k, v in terms.items())
        if first is None:
            where, applied = f"at step {step}", "the step was not applied"
        else:
            where = f"at step {step}" if first == step else f"within steps {first}-{step}"
            where += " (read once per window, log_every)"
            applied = "the window's steps were applied"
        super().__init__(
            f"non-finite loss {where} ({shown}); {applied} and the last good checkpoint is kept"
        )
        self.step = step
        self.first = step if first is None else first
        self.terms = dict(terms)


# --- the loop ---------------------------------------------------------------------------------------
def _batch_to(batch: Mapping[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    if device.type == "cpu":
        return dict(batch)
    # a copy from pinned memory is asynchronous: it overlaps with the previous step's kernels
    return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}


def _add_views(
    batch: dict[str, Tensor], method: MethodSpec, augment, seed: int, rank: int, step: int
) -> dict[str, Tensor]:
    """``batch[name]`` for each view of the method, and ``batch[name + "_flipped"]`` (B,).

    The generator is drawn from (seed, rank, step): a resumed run redraws the same views without
    any generator state in the checkpoint."""
    gen = augment_module.seeded_generator(seed, rank, step)
    for name in method.views:  # a fixed order, so the draws are reproducible
        view = getattr(augment, name)(batch["image"], gen)
        images = view.images
        if images.device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        batch[name], batch[f"{name}_flipped"] = images, view.flipped
    return batch


def _on_device(loss: Tensor, logs: Mapping[str, Any]) -> dict[str, Tensor]:
    """The loss and the logged terms as detached float32 scalars on the loss's device (no
    synchronisation with the host)."""
    terms = {"loss": loss, **logs}
    return {
        k: torch.as_tensor(v, dtype=torch.float32, device=loss.device).detach().reshape(())
        for k, v in terms.items()
    }


def _to_host(values: Mapping[str, Tensor]) -> dict[str, float]:
    """Device scalars as floats, with one device synchronisation."""
    return dict(zip(values, torch.stack(list(values.values())).tolist(), strict=True))


def prepare_batch(
    batch: Mapping[str, Tensor],
    method: MethodSpec,
    augment,
    device: torch.device,
    seed: int,
    rank: int,
    step: int,
) -> dict[str, Tensor]:
    """The loop's data stage for one loader batch: to ``device`` (on CUDA from pinned memory,
    asynchronously), then the augmented views ``method`` reads (``augment.weak`` /
    ``augment.strong``), drawn from ``(seed, rank, step)``."""
    return _add_views(_batch_to(batch, device), method, augment, seed, rank, step)


def train_step(
    net: nn.Module,
    method: MethodSpec,
    batch: dict[str, Tensor],
    state: dict[str, Any],
    ctx: StepContext,
    optimizer: torch.optim.Optimizer,
    lrs,
    on_host: bool = True,
) -> dict[str, float] | dict[str, Tensor]:
    """One optimiser step of the loop on a batch from :func:`prepare_batch`: the gradients
    zeroed; forward and ``method.loss`` (the network's forward at the run's precision:
    :func:`affectlib.distributed.forward_precision`, set by :func:`fit`), then one
    backward, or the method's own ``step`` (``MethodSpec.step``); :class:`NonFiniteLoss` (step
    ``ctx.step + 1``) before anything is applied when the loss or a logged term is not finite;
    each parameter group's learning rate from ``lrs``; ``optimizer.step()``. Returns the loss
    and the logged terms as floats; ``on_host`` False: as device scalars, unchecked, without
    waiting for the device (the caller checks them later, see ``TrainConfig.log_every``)."""
    optimizer.zero_grad(set_to_none=True)
    if method.step is None:
        # forward and loss
        loss, logs = method.loss(net, batch, state, ctx)
    else:
        # forward, loss and backward, owned by the method (MethodSpec.step)
        loss, logs = method.step(net, method, batch, state, ctx)
    values = _on_device(loss, logs)
    if on_host:
        values = _to_host(values)
        if not all(math.isfinite(v) for v in values.values()):
            raise NonFiniteLoss(ctx.step + 1, values)
    # backward
    if method.step is None:
        loss.backward()
    # step
    for group, lr in zip(optimizer.param_groups, lrs, strict=True):
        group["lr"] = float(lr)
    optimizer.step()
    return values


def _log(sums: dict[str, float], values: Mapping[str, float], n: int, bar) -> None:
    """Add the summed terms of ``n`` steps to the epoch's ``sums``; the mean loss on the bar."""
    for k, v in values.items():
        sums[k] = sums.get(k, 0.0) + v
    sums["n"] = sums.get("n", 0.0) + n
    bar.set_postfix(loss=f"{values['loss'] / n:.4f}", refresh=False)


class _Window:
    """``TrainConfig.log_every`` > 1: the logged terms of the steps since the last read, summed
    on the device; :meth:`drain` reads them (one synchronisation), checks and logs them."""

    def __init__(self) -> None:
        self.terms: dict[str, Tensor] = {}
        self.steps = 0

    def add(self, values: Mapping[str, Tensor]) -> None:
        for k, v in values.items():
            self.terms[k] = self.terms[k] + v if k in self.terms else v
        self.steps += 1

    def drain(self, sums: dict[str, float], step: int, bar) -> None:
        """Raises :class:`NonFiniteLoss` for the window ending at ``step`` when a term is not
        finite; otherwise adds the window to ``sums`` and empties it."""
        if not self.steps:
            return
        values = _to_host(self.terms)
        if not all(math.isfinite(v) for v in values.values()):
            raise NonFiniteLoss(step, values, first=step - self.steps + 1)
        _log(sums, values, self.steps, bar)
        self.terms, self.steps = {}, 0


def _epoch_means(sums: Mapping[str, float], d: Dist, device: torch.device) -> dict[str, float]:
    """Per-epoch means of the logged terms, pooled over the processes."""
    names = sorted(k for k in sums if k != "n")
    totals = [sums.get("n", 0.0), *(sums[k] for k in names)]
    if d.world > 1:
        t = torch.tensor(totals, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        totals = t.tolist()
    n, *totals = totals
    return {
        f"train_{k}": (v / n if n else float("nan")) for k, v in zip(names, totals, strict=True)
    }


def _write_outputs(
    out: Path,
    writer: ResultsWriter,
    history: list[dict[str, Any]],
    preds: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    final: Mapping[str, Any] | None = None,
) -> None:
    writer.table(pd.DataFrame(history), "metrics", caption="Per-epoch training and validation")
    for split, pred in (preds or {}).items():
        write_npz(out / f"predictions_{split}.npz", pred)
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
    """Train ``model`` with ``method`` on ``data`` under ``cfg``, writing into ``out_dir``.

    Continues from ``out_dir/checkpoint.pt`` when there is one (a finished run only rewrites its
    outputs). ``record`` is the resolved configuration: saved as ``config.json`` and in the
    checkpoint, and compared on resume (default: ``cfg``, the method and its default options); the
    method's options are ``record["options"]``. The caller seeds the initialisation
    (:func:`affectlib.distributed.seed_everything`) before building ``model``. Deterministic
    algorithms are switched on for the duration of the call only. On return ``model`` holds the
    selected epoch's weights (``TrainData.select``), not necessarily the last epoch's.
    """
    out = Path(out_dir)
    d = dist_from_env()
    created_group = init_distributed(d, cfg.device)
    device = resolve_device(cfg.device, d)
    previous = torch.are_deterministic_algorithms_enabled()
    configure_runtime(device, cfg.deterministic)
    if record is None:
        record = {"method": method.name, "options": dict(method.options), "train": cfg.record()}
    record = checkpoints.json_normal({**record, "world_size": d.world, "select": data.select})
    try:
        # the network's forward at cfg.precision, its outputs float32 for every loss
        with forward_precision(model, device, cfg.precision):
            return _fit(model, method, data, cfg, out, record, d, device)
    finally:
        torch.use_deterministic_algorithms(previous)
        if created_group:
            dist.destroy_process_group()


def _fit(
    model: nn.Module,
    method: MethodSpec,
    data: TrainData,
    cfg: TrainConfig,
    out: Path,
    record: dict[str, Any],
    d: Dist,
    device: torch.device,
) -> FitResult:
    t_start = time.perf_counter()
    options = dict(record.get("options", method.options))
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg)
    precision = cfg.resolved_precision
    steps_per_epoch = len(data.train)
    if steps_per_epoch == 0:
        raise ValueError("the training loader yields no batch (fewer images than one batch?)")
    schedule = lr_schedule(cfg, cfg.epochs * steps_per_epoch)
    ckpt_path = out / checkpoints.CHECKPOINT

    # state: from the checkpoint, or fresh; best: the selected epoch so far (epoch, value, weights)
    epochs_done, step, history, loader_state, sums = 0, 0, [], None, {}
    best: dict[str, Any] = {"epoch": 0, "value": -math.inf, "model": None}
    if ckpt_path.exists():
        ckpt = checkpoints.load_checkpoint(ckpt_path, record)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        state = checkpoints.to_device(ckpt["method_state"], device)
        epochs_done, step, history = ckpt["epochs_done"], ckpt["step"], ckpt["history"]
        loader_state = ckpt["loader"]
        best = ckpt["best"]
        mine = ckpt["per_process"][d.rank]
        set_rng_state(mine["rng"])
        sums = dict(mine["sums"])
    else:
        state = checkpoints.to_device(method.init_state(data.train_table, options), device)
    resumed_at = step
    writer = None
    if d.main:
        writer = ResultsWriter(
            out.parent,
            out.name,
            profile=record,
            seeds=[cfg.seed],
            data_fingerprint=data.source.get("labels"),
            data_root=data.source.get("root"),
        )
        atomic_write_text(out / "config.json", json.dumps(record, indent=2) + "\n")
        if cfg.progress:
            where = f"resuming at step {step}" if step else "from scratch"
            commit = writer.meta["commit"]
            print(f"train {method.name} -> {out} ({where}, commit {commit}): {json.dumps(record)}")
    net = model
    if d.world > 1:
        ids = [device.index] if device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if cfg.compile:
        net = torch.compile(net)  # the training steps only; validation runs `model` itself

    def checkpoint(loader_position: dict | None) -> None:
        if not cfg.checkpoints:
            return
        per_process = gather({"rng": rng_state(), "sums": dict(sums)}, d)  # collective
        if d.main:
            checkpoints.atomic_torch_save(
                {
                    "version": checkpoints.CHECKPOINT_VERSION,
                    "config": record,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "method_state": checkpoints.to_cpu(state),
                    "epochs_done": epochs_done,
                    "step": step,
                    "loader": loader_position,
                    "history": history,
                    "best": best,
                    "per_process": checkpoints.to_cpu(per_process),
                },
                ckpt_path,
            )

    pred, images_seen, t_train = None, 0, 0.0
    score_fn = data.score or metrics.score
    for epoch in range(epochs_done, cfg.epochs):
        if loader_state is not None:  # resuming inside this epoch: its start hook already ran
            data.train.load_state_dict(loader_state)
            loader_state = None
        else:
            data.train.set_epoch(epoch)
            sums = {}
            ctx = StepContext(epoch + 1, step, cfg.epochs, device, options)
            if method.on_epoch_start is not None:
                method.on_epoch_start(state, ctx)
            if method.on_train_predictions is not None and data.train_eval is not None:
                # the model as it enters the epoch, eval mode, unaugmented training images
                method.on_train_predictions(
                    state, ctx, predict(model, data.train_eval, device, precision)
                )
        net.train()
        bar = tqdm(
            data.train,
            total=steps_per_epoch,
            initial=step - epoch * steps_per_epoch,
            desc=f"{method.name} epoch {epoch + 1}/{cfg.epochs}",
            unit="batch",
            disable=not bars_on(cfg.progress and d.main),
            leave=False,
        )
        t0 = time.perf_counter()
        window = _Window()  # log_every > 1: the terms of the steps not yet read
        for batch in bar:
            # data: to the device, then the method's augmented views
            batch = prepare_batch(batch, method, data.augment, device, cfg.seed, d.rank, step)
            # forward, loss, backward, step
            ctx = StepContext(epoch + 1, step, cfg.epochs, device, options)
            on_host = cfg.log_every == 1
            values = train_step(net, method, batch, state, ctx, optimizer, schedule[step], on_host)
            step += 1
            # log: every step, or on the device and checked every log_every steps
            if on_host:
                _log(sums, values, 1, bar)
            else:
                window.add(values)
                if step % cfg.log_every == 0:
                    window.drain(sums, step, bar)
            images_seen += int(batch["image"].shape[0])
            # the epoch's last step is saved by the end-of-epoch checkpoint just below
            if step % cfg.checkpoint_every == 0 and step < (epoch + 1) * steps_per_epoch:
                window.drain(sums, step, bar)  # no checkpoint of unchecked steps
                checkpoint(data.train.state_dict())
        window.drain(sums, step, bar)
        bar.close()
        t_train += time.perf_counter() - t0

        # end of epoch: hook, mean losses over the processes, validation, checkpoint, CSV
        if method.on_epoch_end is not None:
            ctx = StepContext(epoch + 1, step, cfg.epochs, device, options)
            method.on_epoch_end(state, ctx)
        means = _epoch_means(sums, d, device)
        epochs_done = epoch + 1
        if d.main:
            pred = predict(model, data.val, device, precision)
            scores = score_fn(pred)
            if data.select is not None and data.select not in scores:
                raise ValueError(f"select {data.select!r} is none of the scores {sorted(scores)}")
            history.append({"epoch": epochs_done, "step": step, **means, **scores})
            if cfg.epoch_predictions:
                write_epoch_predictions(out, epochs_done, pred, data.test, model, device, precision)
            value = history[-1][data.select] if data.select else epochs_done
            value = value if math.isfinite(value) else -math.inf
            # a NaN score never beats a finite one; ties keep the earlier epoch, except that with
            # no finite score at all the last epoch is kept
            if (
                best["model"] is None
                or value > best["value"]
                or value == best["value"] == -math.inf
            ):
                weights = {
                    k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
                }
                best = {"epoch": epochs_done, "value": value, "model": weights}
        checkpoint(None)
        if d.main:
            _write_outputs(out, writer, history)
        if d.world > 1:
            dist.barrier()  # the others wait while rank 0 validates

    if not d.main:
        return FitResult({}, pd.DataFrame(), {}, out, resumed_at)
    # the selected epoch's model: its validation predictions, then the test split, once
    model.load_state_dict(best["model"])
    pred = predict(model, data.val, device, precision)
    chosen = history[best["epoch"] - 1]
    final = {k: chosen[k] for k in score_fn(pred)}
    preds = {"val": pred}
    test_pred: dict[str, np.ndarray] = {}
    if data.test is not None:
        test_pred = predict(model, data.test, device, precision)
        final.update({f"test_{k}": v for k, v in score_fn(test_pred).items()})
        preds["test"] = test_pred
    final.update(
        epoch=chosen["epoch"],
        step=chosen["step"],
        last_epoch=history[-1]["epoch"],
        last_step=history[-1]["step"],
        selected_on=data.select or "last epoch",
        method=method.name,
    )
    _write_outputs(out, writer, history, preds, final)
    writer.write_provenance(
        resumed_at_step=resumed_at,
        train_images_per_s=round(images_seen * d.world / t_train, 1) if t_train else None,
        fit_wall_time_s=round(time.perf_counter() - t_start, 2),
    )
    return FitResult(final, pd.DataFrame(history), pred, out, resumed_at, test_pred)


# --- set-up from a profile --------------------------------------------------------------------------
def split_extra(spec: MethodSpec, extra: Mapping[str, Any]) -> tuple[dict, dict, dict]:
    """A profile's ``extra`` as (model overrides, loop overrides, method options)."""
    model_over = {k: v for k, v in extra.items() if k in models.MODEL_EXTRA}
    train_over = {k: v for k, v in extra.items() if k in TRAIN_EXTRA}
    rest = {k: v for k, v in extra.items() if k not in models.MODEL_EXTRA + TRAIN_EXTRA}
    try:
        options = methods.resolve_options(spec, rest)
    except KeyError as e:
        known = ", ".join(models.MODEL_EXTRA + TRAIN_EXTRA)
        raise KeyError(f"{e.args[0]}; model and loop settings: {known}") from None
    return model_over, train_over, options


def run(
    method: str,
    profile,
    out_dir: str | Path,
    seed: int = 0,
    *,
    data_root: str | Path | None = None,
    format: str = "abaw-mtl",
    data_seed: int = 0,
    select: str | None = None,
    progress: bool = True,
) -> FitResult:
    """Train the registered ``method`` under ``profile`` with ``seed``; outputs in ``out_dir``.

    The model is ``profile.backbone`` (``small_input``, local ``weights``); ``profile.extra`` may
    set ``stem_stride`` / ``dropout`` / ``head_hidden`` (model), ``deterministic`` (loop) and the
    method's options. ``select``: the validation score the epoch is selected on (default: the
    data's, ``build_data``'s "overall"; e.g. "au_f1" for a method that learns AUs only). Rerunning
    the same call after an interruption resumes (see :func:`fit`).
    """
    spec = methods.get(method)
    _, train_over, options = split_extra(spec, profile.extra)
    cfg = TrainConfig.from_profile(profile, seed, progress=progress, **train_over)
    d = dist_from_env()
    created_group = init_distributed(d, cfg.device)
    try:
        data, data_record = build_data(
            profile,
            seed,
            sampler=options.get("sampler", "random"),
            data_root=data_root,
            format=format,
            data_seed=data_seed,
            progress=progress,
        )
        if select is not None:
            data = dataclasses.replace(data, select=select)
        model_cfg = models.ModelConfig.from_profile(profile)
        seed_everything(seed)  # the initialisation
        model = models.build_model(model_cfg)
        record = {
            "method": spec.name,
            "options": options,
            "seed": seed,
            "profile": profile.name,
            "image_size": profile.image_size,
            "batch_size": profile.batch_size,
            "model": dataclasses.asdict(model_cfg),
            "train": cfg.record(),
            "data": data_record,
        }
        return fit(model, spec, data, cfg, out_dir, record)
    finally:
        if created_group:
            dist.destroy_process_group()
