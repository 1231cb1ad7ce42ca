"""CPU training throughput of the cpu profile's network: memory format and runs side by side.

In one run, training steps per second of the compact network (``models.CompactNet`` with a linear
head, Adam, a batch of ``--batch`` random faces of ``--size`` px: the cpu profile's step without its
data path) for

- (a) one run on every core, images in the default (contiguous, NCHW) memory format;
- (b) the same with channels-last images (NHWC), as ``models.normalise_images`` now returns them;
- (c) ``--runs`` runs side by side in spawned processes, each on cores / runs threads, channels-last:
  what a notebook's executor does with ``profile.parallel_runs``; their summed steps per second.

It prints b/a (the memory format) and c/b (side by side against one run on every core). On the
2-core machine the project is measured on, b/a was 1.20 and c/b 1.07 for the bare step; whole
notebook-03 runs gain more side by side, since their data path and scoring are partly serial:
two MFAR runs (4 epochs, cpu budget) took 34 s side by side against 22 s for one alone, 1.29x.

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

from affectlib.models import CompactNet


def steps_per_s(threads: int, channels_last: bool, steps: int, batch: int, size: int) -> float:
    """Training steps per second of the compact network on ``threads`` torch threads."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = nn.Sequential(CompactNet(), nn.Linear(CompactNet.widths[-1], 20))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = torch.randn(batch, 3, size, size), torch.randn(batch, 20)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        nn.functional.mse_loss(net(x), y).backward()
        opt.step()

    for _ in range(3):  # warm-up: oneDNN primitives are created on first use
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - t0)


def _worker(args: tuple[int, bool, int, int, int]) -> float:
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
    with multiprocessing.get_context("spawn").Pool(a.runs) as pool:
        rates = pool.map(_worker, [(each, True, a.steps, a.batch, a.size)] * a.runs)
    c_rate = sum(rates)
    print(f"{cores} cores; batch {a.batch} at {a.size} px, {a.steps} timed steps")
    print(f"(a) one run, {cores} threads, NCHW:          {a_rate:6.2f} steps/s")
    print(f"(b) one run, {cores} threads, channels-last: {b_rate:6.2f} steps/s")
    print(f"(c) {a.runs} runs x {each} thread(s), channels-last: {c_rate:6.2f} steps/s in all")
    print(f"b/a (channels-last): {b_rate / a_rate:.2f}")
    print(f"c/b ({a.runs} runs side by side): {c_rate / b_rate:.2f}")


if __name__ == "__main__":
    main()
