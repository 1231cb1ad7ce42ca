"""CPU training throughput of the cpu profile's network: memory format, runs side by side, bf16.

In one run, training steps per second of the compact network (``models.CompactNet`` with a linear
head, Adam, a batch of ``--batch`` random faces of ``--size`` px: the cpu profile's step without its
data path) for

- (a) one run on every core, images in the default (contiguous, NCHW) memory format;
- (b) the same with channels-last images (NHWC), as ``models.normalise_images`` now returns them;
- (c) ``--runs`` runs side by side in spawned processes, each on cores / runs threads, channels-last:
  what a notebook's executor does with ``profile.parallel_runs``; their summed steps per second;
- (d) (b) under bf16 autocast (``precision="bf16"``, :func:`affectlib.distributed.autocast`);
- (e) (c) under bf16 autocast.

It prints b/a (the memory format), c/b (side by side against one run on every core), d/b (bf16
against float32) and e/d (side by side in bf16). On the 2-core machine the project is measured
on, b/a was 1.20 and c/b 1.07 for the bare step; whole notebook-03 runs gain more side by side
in float32, since their data path and scoring are partly serial: two MFAR runs (4 epochs, cpu
budget) took 34 s side by side against 22 s for one alone, 1.29x. That CPU has AMX: d/b was 1.89
and e/d 1.08 for the bare step, but whole runs in bf16 train faster one at a time on both cores
(five notebook-03 MFAR runs: 63 s one at a time against 83 s two side by side, and 110 s two side
by side in float32), which is what ``Profile.runs_at_once`` picks.

``python benchmarks/cpu_throughput.py [--steps 30] [--batch 64] [--size 48] [--runs 2]``
A benchmark, not a test: the numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

import torch
from torch import nn

from affectlib.distributed import autocast, cpu_runs_bf16
from affectlib.models import CompactNet


def steps_per_s(
    threads: int, channels_last: bool, steps: int, batch: int, size: int, bf16: bool = False
) -> float:
    """Training steps per second of the compact network on ``threads`` torch threads (``bf16``:
    the forward pass under bf16 autocast, the loss in float32)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = nn.Sequential(CompactNet(), nn.Linear(CompactNet.widths[-1], 20))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = torch.randn(batch, 3, size, size), torch.randn(batch, 20)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    precision = "bf16" if bf16 else "fp32"

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(torch.device("cpu"), precision):
            out = net(x)
        nn.functional.mse_loss(out.float(), y).backward()
        opt.step()

    for _ in range(3):  # warm-up: oneDNN primitives are created on first use
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - t0)


def _worker(args: tuple[int, bool, int, int, int, bool]) -> float:
    return steps_per_s(*args)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--runs", type=int, default=2)
    a = ap.parse_args()
    cores = os.cpu_count() or 1
    a_rate = steps_per_s(cores, False, a.steps, a.batch, a.size)
    b_rate = steps_per_s(cores, True, a.steps, a.batch, a.size)
    each = max(1, cores // a.runs)
    d_rate = steps_per_s(cores, True, a.steps, a.batch, a.size, bf16=True)
    with multiprocessing.get_context("spawn").Pool(a.runs) as pool:
        c_rate = sum(pool.map(_worker, [(each, True, a.steps, a.batch, a.size, False)] * a.runs))
        e_rate = sum(pool.map(_worker, [(each, True, a.steps, a.batch, a.size, True)] * a.runs))
    print(f"{cores} cores; batch {a.batch} at {a.size} px, {a.steps} timed steps")
    print(f"(a) one run, {cores} threads, NCHW:          {a_rate:6.2f} steps/s")
    print(f"(b) one run, {cores} threads, channels-last: {b_rate:6.2f} steps/s")
    print(f"(c) {a.runs} runs x {each} thread(s), channels-last: {c_rate:6.2f} steps/s in all")
    print(f"b/a (channels-last): {b_rate / a_rate:.2f}")
    print(f"(d) (b) under bf16 autocast:              {d_rate:6.2f} steps/s")
    print(f"(e) (c) under bf16 autocast:              {e_rate:6.2f} steps/s in all")
    print(f"c/b ({a.runs} runs side by side): {c_rate / b_rate:.2f}")
    print(f"d/b (bf16, CPU bf16 in hardware: {cpu_runs_bf16()}): {d_rate / b_rate:.2f}")
    print(f"e/d ({a.runs} runs side by side in bf16): {e_rate / d_rate:.2f}")


if __name__ == "__main__":
    main()
