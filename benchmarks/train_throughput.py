"""Training throughput: the cached pipeline against the model alone and a per-item PIL pipeline.

In one run, on one profile's Aff-Wild2-like training split (default: cpu, 5,760 faces of 48 px),
images per second of

- (a) the whole pipeline: image cache -> ``BatchLoader`` batch -> weak and strong views on the
  uint8 batch -> one SS-MFAR step (the loop's own stages, ``train.prepare_batch`` and
  ``train.train_step``);
- (b) the same step on a batch and views already in memory (the model alone);
- (c) the pipeline of the public implementations: every JPEG decoded per item with PIL, the
  torchvision transforms per item (crop with reflection padding, flip, RandAugment for the
  strong view, ``ToTensor``), a ``DataLoader`` with worker processes, then the same step;

and prints a/b (goal >= 0.9: the data path costs little next to the model) and a/c (goal >= 2),
and the peak resident memory of the process and of the loader workers.

The step is SS-MFAR's (Gera et al. 2022, Eq. 9): one forward pass of the weak and strong views
together; Eq. 1-3 losses on the weak view; Eq. 4 thresholds from the labelled weak predictions;
pseudo-label CE on confident and symmetric KL on non-confident unlabelled images. The registered
``ss-mfar`` method is used when there is one.

``python benchmarks/train_throughput.py [--profile cpu] [--steps 6] [--set small_input=false] [--compile]``
(``--compile`` adds (d), (b) with ``torch.compile``, and the ratio d/b).
A benchmark, not a test: the numbers depend on the machine and on what else runs on it; each rate
is the best of ``--repeats`` timed passes of ``--steps`` steps after ``--warmup`` steps.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torchvision import transforms as T

from affectlib import checkpoints, distributed, losses, methods, models, profiles, train
from affectlib.cli_train import parse_set
from affectlib.data import augment, datasets, generate, study
from affectlib.data.cache import ImageCache
from affectlib.labels import AU_COLUMNS, EXPR_MISSING, VA_MISSING
from affectlib.methods import MethodSpec, StepContext, mfar


# --- the step -------------------------------------------------------------------------------------
def ssmfar_loss(model, batch, state, ctx):
    """SS-MFAR, Eq. 9, for timing: both views in one forward pass."""
    b = batch["weak"].shape[0]
    out = model(torch.cat([batch["weak"], batch["strong"]]))
    weak = {k: v[:b] for k, v in out.items()}
    strong_logits = out["expr"][b:]
    sup = mfar.supervised_losses(weak, batch, state)
    p_weak = weak["expr"].float().softmax(dim=1)
    thresholds = losses.adaptive_thresholds(p_weak, mfar.expr_targets(batch), ctx.epoch)
    unl = ~batch["has_expr"]
    l_u, confident = losses.pseudo_label_ce(strong_logits[unl], p_weak[unl].detach(), thresholds)
    non = ~confident
    l_kl = losses.symmetric_kl(p_weak[unl][non], strong_logits[unl][non].float().softmax(dim=1))
    lam = losses.LAMBDAS
    l_exp = lam.supervised * sup["expr"] + lam.unsupervised * l_u + lam.consistency * l_kl
    return l_exp + sup["au"] + sup["va"], {}


def step_method() -> MethodSpec:
    if "ss-mfar" in methods.METHODS:
        return methods.METHODS["ss-mfar"]
    return MethodSpec(
        "ss-mfar (benchmark)", ssmfar_loss, ("weak", "strong"), mfar.label_weights, options={}
    )


class Stepper:
    """One optimiser step of ``spec`` on a batch that already holds its views, as the training
    loop takes it (``train.train_step``)."""

    def __init__(
        self, model, spec: MethodSpec, state: dict, device: torch.device, net=None
    ) -> None:
        # net: what the step runs (e.g. torch.compile(model)); the optimiser holds model's weights
        self.model, self.spec, self.state, self.device = model, spec, state, device
        self.net = net if net is not None else model
        self.opt = torch.optim.Adam(models.param_groups(model))
        self.lrs = [group["lr"] for group in self.opt.param_groups]
        self.ctx = StepContext(1, 0, 1, device, {**mfar.MFAR.options, **spec.options})

    def __call__(self, batch: dict) -> None:
        train.train_step(self.net, self.spec, batch, self.state, self.ctx, self.opt, self.lrs)
        if self.device.type == "cuda":
            torch.cuda.synchronize()


def rate(batches: Callable[[], Iterator[dict]], work: Callable[[dict], None], args) -> float:
    """Images per second of ``work`` over ``args.steps`` batches after ``args.warmup``; the best
    of ``args.repeats`` passes (other load on a shared machine only ever slows a pass)."""
    best = 0.0
    for _ in range(args.repeats):
        it = batches()
        for _ in range(args.warmup):
            work(next(it))
        n, start = 0, time.perf_counter()
        for _ in range(args.steps):
            batch = next(it)
            work(batch)
            n += len(batch["expr"])
        best = max(best, n / (time.perf_counter() - start))
        del it  # stops a DataLoader's workers
    return best


# --- (c): the per-item pipeline of the public implementations ---------------------------------------
class PerItemDataset(torch.utils.data.Dataset):
    """Decodes its JPEG with PIL and applies torchvision transforms item by item, as the public
    SS-MFAR code does (there without the BGR/RGB mix-up and with the masks built here)."""

    def __init__(self, table: pd.DataFrame, image_root, size: int) -> None:
        self.paths = [str(image_root / p) for p in table["path"]]
        # writable copies: the default collate wraps them in tensors
        self.expr = np.array(table["expr"], dtype=np.int64)
        self.au = np.array(table[list(AU_COLUMNS)], dtype=np.float32)
        self.va = np.array(table[["valence", "arousal"]], dtype=np.float32)
        crop = [
            T.Resize((size, size)),
            T.RandomCrop(size, padding=round(size / 8), padding_mode="reflect"),
            T.RandomHorizontalFlip(),
        ]
        self.weak = T.Compose([*crop, T.ToTensor()])
        self.strong = T.Compose([*crop, T.RandAugment(2, 9), T.ToTensor()])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict:
        img = Image.open(self.paths[i]).convert("RGB")
        has_va = bool(self.va[i, 0] != VA_MISSING)
        return {
            "weak": self.weak(img),
            "strong": self.strong(img),
            "expr": self.expr[i],
            "au": np.clip(self.au[i], 0, 1),
            "au_mask": self.au[i] != -1,
            "va": self.va[i] if has_va else np.zeros(2, np.float32),
            "has_expr": self.expr[i] != EXPR_MISSING,
            "has_au": bool((self.au[i] != -1).all()),
            "has_va": has_va,
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--device", default="", help="default: the profile's")
    ap.add_argument("--steps", type=int, default=6, help="timed steps per pass")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps before each pass")
    ap.add_argument("--repeats", type=int, default=2, help="passes per pipeline; the best counts")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="(c)'s workers")
    ap.add_argument(
        "--compile",
        action="store_true",
        help="also (d): (b) with torch.compile (the profile field `compile`), and d/b",
    )
    args = ap.parse_args(argv)

    profile = profiles.get(args.profile, **parse_set(args.overrides))
    device = distributed.resolve_device(args.device or profile.device, distributed.Dist())
    distributed.configure_runtime(device, deterministic=False)
    root = generate.ensure(profile, 0)
    table = study.load_dataset(root, "abaw-mtl").table
    table = table[table["split"] == "train"].reset_index(drop=True)
    image_root = study.image_root(root, "abaw-mtl")
    t0 = time.perf_counter()
    cache = ImageCache.build(table, image_root, size=profile.image_size, progress=False)
    t_cache = time.perf_counter() - t0

    spec = step_method()
    model_cfg = models.ModelConfig.from_profile(profile)
    torch.manual_seed(0)
    model = models.build_model(model_cfg).to(device).train()
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    options = {**mfar.MFAR.options, **spec.options}
    state = checkpoints.to_device(spec.init_state(table, options), device)
    step = Stepper(model, spec, state, device)
    bs = profile.batch_size
    print(
        f"{len(table)} training faces of {profile.image_size} px ({args.profile}), batch {bs}, "
        f"{profile.backbone} small_input={profile.small_input} stem_stride={model_cfg.stem_stride}"
        f", {device} ({torch.get_num_threads()} threads, "
        f"{distributed.resolve_precision(device, profile.precision)}); step: {spec.name}; "
        f"cache opened/built in {t_cache:.2f} s"
    )

    # (a) the whole pipeline, as the training loop runs it
    loader = datasets.BatchLoader(
        table, cache, datasets.RandomSampler(len(table), 0), bs, drop_last=True
    )
    counter = iter(range(10**9))

    def whole(batch: dict) -> None:
        step(train.prepare_batch(batch, spec, augment, device, 0, 0, next(counter)))

    def loader_batches() -> Iterator[dict]:
        loader.set_epoch(0)
        return iter(loader)

    # (b) the model alone: one batch and its views, prepared once
    fixed = train.prepare_batch(loader.batch(np.arange(bs)), spec, augment, device, 0, 0, 0)

    def repeat() -> Iterator[dict]:
        while True:
            yield fixed

    # (c) per-item decoding and transforms in DataLoader workers
    per_item = torch.utils.data.DataLoader(
        PerItemDataset(table, image_root, profile.image_size),
        batch_size=bs,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(0),
    )

    def public(batch: dict) -> None:
        step({k: v.to(device, non_blocking=True) for k, v in batch.items()})

    # the forward pass at the profile's precision, as the training loop runs it
    with distributed.forward_precision(model, device, profile.precision):
        b = rate(repeat, step, args)
        a = rate(loader_batches, whole, args)
        c = rate(lambda: iter(per_item), public, args)
        d = None
        if args.compile:
            t0 = time.perf_counter()
            compiled = Stepper(model, spec, state, device, net=torch.compile(model))
            compiled(fixed)  # the compilation itself, reported apart from the rate
            t_compile = time.perf_counter() - t0
            d = rate(repeat, compiled, args)
    main_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"(a) cache -> batch -> weak + strong views -> step: {a:8.1f} img/s")
    print(f"(b) the step on tensors in memory (model only):   {b:8.1f} img/s")
    print(f"(c) PIL per item + torchvision + {args.workers} workers -> step: {c:8.1f} img/s")
    print(f"a/b = {a / b:.3f} (goal >= 0.9)   a/c = {a / c:.3f} (goal >= 2)")
    if d is not None:
        print(
            f"(d) (b) with torch.compile: {d:8.1f} img/s; d/b = {d / b:.3f} (compiled {t_compile:.0f} s)"
        )
    print(
        f"peak resident memory: process {main_mb:.0f} MiB, largest loader worker {workers_mb:.0f} MiB"
    )
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
