"""Scoring AUs after every epoch: :func:`affectlib.metrics.per_au_f1` against scikit-learn's
``f1_score`` called column by column (what it did before), side by side on the same arrays.

Notebook 04 scores every run's validation split after each epoch (and its selected epoch on
validation and test), 7 scorings of 12-16 AUs per run and 90 runs; notebooks 03 and 06 do the
same per epoch. Each scoring calls ``per_au_f1`` twice (``au_f1`` and ``afa``). Prints the time of
one ``per_au_f1`` each way, their ratio, and checks that both give the same floats. On the
2-core machine the results were made on: 200 rows x 12 AUs, 16.6 ms against 0.037 ms (a/b 455);
2,000 x 16, 27.6 ms against 0.23 ms (a/b 118).

    python benchmarks/au_scoring_speed.py [--rows 200] [--aus 12] [--repeats 20]

A benchmark, not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import f1_score

from affectlib import metrics


def sklearn_per_au_f1(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """The column-by-column scikit-learn call ``per_au_f1`` replaced."""
    out = np.full(true.shape[1], np.nan)
    for j in range(true.shape[1]):
        keep = true[:, j] != -1
        if keep.any():
            out[j] = f1_score(true[keep, j], pred[keep, j], zero_division=0)
    return out


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200, help="validation rows (notebook 04: 200)")
    ap.add_argument("--aus", type=int, default=12, help="AU columns (Aff-Wild2: 12)")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    true = rng.integers(0, 2, (args.rows, args.aus))
    true[rng.random(true.shape) < 0.2] = -1
    pred = rng.integers(0, 2, (args.rows, args.aus))
    a = best_of(lambda: sklearn_per_au_f1(true, pred), args.repeats)
    b = best_of(lambda: metrics.per_au_f1(true, pred), args.repeats)
    same = np.array_equal(sklearn_per_au_f1(true, pred), metrics.per_au_f1(true, pred), True)
    print(f"{args.rows} rows x {args.aus} AUs, best of {args.repeats}")
    print(f"a  scikit-learn, column by column: {a * 1e3:8.3f} ms")
    print(f"b  per_au_f1 (numpy counts):       {b * 1e3:8.3f} ms")
    print(f"a/b = {a / b:.0f}; same floats: {same}")


if __name__ == "__main__":
    main()
