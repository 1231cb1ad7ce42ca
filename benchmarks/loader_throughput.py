"""Throughput of the input pipeline on the embedded data: image cache, batch loader, weak/strong views.

Measures, on one profile's Aff-Wild2-like table (default: cpu, 7,200 frames at 48 px):

- the fingerprint of the table's files with each key (stat, content);
- building the image cache cold (a fresh cache folder) and opening it warm;
- batches/s and images/s of :class:`BatchLoader` alone, with a weak view, with weak + strong views
  (strong item by item and grouped), and of the map-style dataset through a ``DataLoader`` with the
  default collate (the per-item path the loader replaces);

and prints each with its ratio to the loader alone (best of ``--repeats`` passes). ``python benchmarks/loader_throughput.py
[--profile cpu] [--data-root DIR] [--batch-size 128]``. A benchmark, not a test: numbers depend on
the machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterable

import torch

from affectlib import profiles
from affectlib.data import augment, generate, study
from affectlib.data.cache import ImageCache, fingerprint
from affectlib.data.datasets import AffectDataset, BatchLoader, RandomSampler


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def epoch_rate(batches: Iterable[dict], work: Callable[[dict], None]) -> tuple[float, float]:
    """(batches/s, images/s) of one pass over ``batches`` with ``work`` applied to each."""
    n_batches = n_images = 0
    start = time.perf_counter()
    for b in batches:
        work(b)
        n_batches += 1
        n_images += len(b["index"])
    dt = time.perf_counter() - start
    return n_batches / dt, n_images / dt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", default="", help="embedded data folder (default: ensure())")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=2, help="passes per case; the best counts")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    profile = profiles.get(args.profile)
    root = generate.ensure(profile, args.seed, root=args.data_root or None)
    table = study.load_dataset(root, "abaw-mtl").table
    images = study.image_root(root, "abaw-mtl")
    bs = args.batch_size
    print(f"{len(table)} images of the {args.profile} profile under {images}, batch {bs}")
    print(f"torch threads: {torch.get_num_threads()}")

    # cache: fingerprint, cold build, warm open
    for key in ("stat", "content"):
        dt = timed(lambda key=key: fingerprint(table, images, key=key))
        print(f"fingerprint ({key:7s}): {dt:.3f} s")
    with tempfile.TemporaryDirectory() as tmp:
        cold = timed(lambda: ImageCache.build(table, images, cache_dir=tmp, progress=False))
        cache = ImageCache.build(table, images, cache_dir=tmp, progress=False)
        warm = timed(lambda: ImageCache.build(table, images, cache_dir=tmp, progress=False))
        for w in (1, 2):
            with tempfile.TemporaryDirectory() as tmp_w:
                dt = timed(
                    lambda w=w, tmp_w=tmp_w: ImageCache.build(
                        table, images, cache_dir=tmp_w, workers=w, progress=False
                    )
                )
                print(f"cache build, {w} thread(s): {dt:.2f} s ({len(table) / dt:.0f} img/s)")
        print(
            f"cache build cold: {cold:.2f} s, warm open: {warm:.3f} s (cold/warm {cold / warm:.0f}x)"
        )

        loader = BatchLoader(table, cache, RandomSampler(len(table), seed=0), bs)
        gen = augment.seeded_generator(0)
        cases: list[tuple[str, Iterable[dict], Callable[[dict], None]]] = [
            ("loader alone", loader, lambda b: None),
            ("loader + weak", loader, lambda b: augment.weak(b["image"], gen)),
            (
                "loader + weak + strong (grouped)",
                loader,
                lambda b: (augment.weak(b["image"], gen), augment.strong(b["image"], gen)),
            ),
            (
                "loader + weak + strong (item by item)",
                loader,
                lambda b: (
                    augment.weak(b["image"], gen),
                    augment.strong(b["image"], gen, grouped=False),
                ),
            ),
            (
                "Dataset + DataLoader (per item, default collate)",
                torch.utils.data.DataLoader(
                    AffectDataset(table, cache), batch_size=bs, shuffle=True
                ),
                lambda b: None,
            ),
        ]
        base = None
        print(f"{'pipeline':50s} {'batches/s':>10s} {'images/s':>10s} {'vs loader':>10s}")
        for name, batches, work in cases:
            # the best of a few passes: other processes on a shared machine only ever slow a pass
            rate_b, rate_i = max(epoch_rate(batches, work) for _ in range(args.repeats))
            base = base or rate_i
            print(f"{name:50s} {rate_b:10.1f} {rate_i:10.0f} {rate_i / base:10.3f}")


if __name__ == "__main__":
    main()
