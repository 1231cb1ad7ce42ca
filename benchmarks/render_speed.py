"""Throughput of the face renderer (affectlib.data.render) at 48 and 64 px.

Renders N random faces (random identities, AUs, poses and default nuisance) per size, best of
``--repeats`` runs, and prints faces per second of wall time and of process CPU time (numpy runs on
one thread, so CPU time is what an otherwise idle core would take). It also prints, measured in the
same run, the speed-up of the feature windows (each feature evaluated only where it can be) over
evaluating every feature on the whole frame, and the time the cpu-profile data set would take.

    python benchmarks/render_speed.py --n 3000
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from affectlib.data import render as R


def _inputs(n: int, seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    ids = R.sample_identities(n, rng)
    nuis = R.sample_nuisance(n, rng)
    au = np.where(rng.random((n, len(R.RENDER_AUS))) < 0.3, rng.uniform(0, 5, (n, 16)), 0.0)
    pose = np.clip(rng.normal(0, [20, 12, 10], (n, 3)), -60, 60)
    return ids, au, pose, nuis


def _time(inputs: tuple, size: int, repeats: int) -> tuple[float, float]:
    """Best wall and CPU seconds over ``repeats`` renders."""
    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        R.render(*inputs, size)
        best_wall = min(best_wall, time.perf_counter() - w0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return best_wall, best_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000, help="faces per size")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[48, 64])
    ap.add_argument("--profile-faces", type=int, default=15000, help="cpu-profile data set size")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    inputs = _inputs(args.n, args.seed)
    R.render(*(R.take(x, slice(0, 64)) if isinstance(x, dict) else x[:64] for x in inputs), 48)
    print(f"renderer throughput, {args.n} faces per size, best of {args.repeats}")
    for size in args.sizes:
        wall, cpu = _time(inputs, size, args.repeats)
        R._USE_WINDOWS = False
        try:
            full_wall, full_cpu = _time(inputs, size, 1)
        finally:
            R._USE_WINDOWS = True
        eta = args.profile_faces * cpu / args.n
        print(
            f"{size:3d} px: {args.n / wall:7.0f} faces/s wall, {args.n / cpu:7.0f} faces/s per "
            f"CPU-second; windows vs whole frame x{full_cpu / cpu:.2f}; "
            f"{args.profile_faces} faces in {eta:.0f} s"
        )


if __name__ == "__main__":
    main()
