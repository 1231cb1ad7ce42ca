"""Per-AU model selection of Wang et al. 2020 (TAL, EmotioNet Challenge 2020, §2.4 and Table 1):
one checkpoint and one decision threshold per AU, chosen on the validation set (their
dataset-B), from the predictions every epoch's model made.

Inputs are numpy arrays of one run: ``true`` (N, M) labels 1 / 0 (-1 = not coded, skipped per
AU), ``probs`` (E, N, M) each epoch's AU probabilities on the same N images, epoch e + 1 at
index e. Scores are the challenge's final score per AU, ``(F1_j + accuracy_j) / 2``
(:func:`affectlib.metrics.emotionet_per_au`); an AU's selection never looks at another AU.

The three strategies of Table 1 (without the ensemble, multi-crop and pretraining rows):

- ``baseline``: the epoch whose *average* final score on B is highest, threshold 0.5 for every AU;
- ``chosen``: each AU's own best epoch on B (threshold 0.5);
- ``chosen-threshold``: each AU's own best epoch, then its own threshold on B, from
  :data:`THRESHOLDS`, at that epoch.

A head is only valid with the backbone of its own epoch, so inference needs every distinct epoch
some AU chose (:func:`checkpoints_kept`) and reads each AU from its own (:func:`assemble`). Ties
go to the earliest epoch and to the threshold closest to 0.5 (then the lower one), so a selection
never depends on float noise in the order of candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from affectlib import metrics

STRATEGIES = ("baseline", "chosen", "chosen-threshold")
# decision thresholds tried per AU (the paper does not give its grid)
THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 0.951, 0.05))


def _check(true: np.ndarray, probs: np.ndarray) -> None:
    if true.ndim != 2 or probs.ndim != 3 or probs.shape[1:] != true.shape:
        raise ValueError(
            f"true must be (N, M) and probs (E, N, M) over the same images and AUs; got "
            f"{true.shape} and {probs.shape}"
        )
    if probs.shape[0] == 0:
        raise ValueError("probs holds no epoch")


def epoch_curves(true: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Final score of each AU at each epoch, probabilities above ``threshold`` predicted
    present: (E, M); NaN for an AU without a coded image."""
    true, probs = np.asarray(true), np.asarray(probs)
    _check(true, probs)
    return np.stack([metrics.emotionet_per_au(true, (p > threshold).astype(int)) for p in probs])


def _argmax_first(x: np.ndarray) -> int:
    """Index of the largest finite value, the first on ties; the last index when none is finite
    (nothing to select on: the most trained model)."""
    finite = np.isfinite(x)
    if not finite.any():
        return len(x) - 1
    return int(np.argmax(np.where(finite, x, -np.inf)))


def average_epoch(curves: np.ndarray) -> int:
    """The epoch index (0-based) whose mean final score over the AUs is highest (``baseline``)."""
    curves = np.asarray(curves, dtype=float)
    with np.errstate(invalid="ignore"):
        mean = np.array([np.nanmean(c) if np.isfinite(c).any() else np.nan for c in curves])
    return _argmax_first(mean)


def per_au_epochs(curves: np.ndarray) -> np.ndarray:
    """Each AU's best epoch index (0-based) on its own final score: (M,) int (``chosen``)."""
    curves = np.asarray(curves, dtype=float)
    return np.array([_argmax_first(curves[:, j]) for j in range(curves.shape[1])], dtype=int)


def per_au_thresholds(
    true: np.ndarray, prob: np.ndarray, grid: tuple[float, ...] = THRESHOLDS
) -> np.ndarray:
    """Each AU's threshold from ``grid`` maximising its final score on (``true``, ``prob``), both
    (N, M); ties go to the threshold closest to 0.5, then the lower. An AU without a coded image
    keeps 0.5. Returns (M,) floats."""
    true, prob = np.asarray(true), np.asarray(prob)
    if true.shape != prob.shape or true.ndim != 2:
        raise ValueError(f"true and prob must be (N, M) alike, got {true.shape} and {prob.shape}")
    order = sorted(grid, key=lambda t: (abs(t - 0.5), t))  # preference on ties
    scores = np.stack([metrics.emotionet_per_au(true, (prob > t).astype(int)) for t in order])
    out = np.full(true.shape[1], 0.5)
    for j in range(true.shape[1]):
        if np.isfinite(scores[:, j]).any():
            out[j] = order[_argmax_first(scores[:, j])]
    return out


def assemble(probs: np.ndarray, epochs: np.ndarray) -> np.ndarray:
    """Probabilities (N, M) with AU j read from epoch index ``epochs[j]`` of ``probs`` (E, N, M)."""
    probs, epochs = np.asarray(probs), np.asarray(epochs, dtype=int)
    if epochs.shape != (probs.shape[2],):
        raise ValueError(f"one epoch per AU expected: {probs.shape[2]}, got {epochs.shape}")
    if epochs.min() < 0 or epochs.max() >= probs.shape[0]:
        raise ValueError(f"epoch indices must lie in [0, {probs.shape[0] - 1}], got {epochs}")
    return probs[epochs, :, np.arange(probs.shape[2])].T


def checkpoints_kept(epochs: np.ndarray) -> list[int]:
    """The distinct epochs (1-based, ascending) whose models inference needs: each AU's head is
    only valid with the backbone of its own epoch."""
    return sorted({int(e) + 1 for e in np.asarray(epochs).ravel()})


@dataclass(frozen=True)
class Selection:
    """What one run's selection on B chose: ``average`` the baseline's epoch index, ``epochs``
    (M,) each AU's epoch index, ``thresholds`` (M,) each AU's threshold at its epoch."""

    average: int
    epochs: np.ndarray
    thresholds: np.ndarray

    def kept(self) -> list[int]:
        """The distinct checkpoints (1-based epochs) per-AU inference needs."""
        return checkpoints_kept(self.epochs)


def select(true_b: np.ndarray, probs_b: np.ndarray, grid: tuple[float, ...] = THRESHOLDS):
    """The three strategies' choices on dataset-B: ``true_b`` (N, M), ``probs_b`` (E, N, M)."""
    curves = epoch_curves(true_b, probs_b)
    epochs = per_au_epochs(curves)
    return Selection(
        average_epoch(curves), epochs, per_au_thresholds(true_b, assemble(probs_b, epochs), grid)
    )


def predictions(selection: Selection, probs: np.ndarray, strategy: str) -> np.ndarray:
    """0/1 predictions (N, M) of ``strategy`` on any split's per-epoch ``probs`` (E, N, M): the
    choices were made on B; applied to the held-out split they measure what they are worth."""
    if strategy == "baseline":
        return (np.asarray(probs)[selection.average] > 0.5).astype(int)
    chosen = assemble(probs, selection.epochs)
    if strategy == "chosen":
        return (chosen > 0.5).astype(int)
    if strategy == "chosen-threshold":
        return (chosen > selection.thresholds[None, :]).astype(int)
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")


def strategy_scores(
    selection: Selection, true: np.ndarray, probs: np.ndarray
) -> dict[str, dict[str, float]]:
    """Mean F1, mean accuracy and final score over the AUs of each strategy on (``true``,
    ``probs``): ``{strategy: {"f1", "accuracy", "final"}}``."""
    _check(np.asarray(true), np.asarray(probs))
    out = {}
    for s in STRATEGIES:
        pred = predictions(selection, probs, s)
        f1, acc = metrics.per_au_f1(true, pred), metrics.per_au_accuracy(true, pred)
        out[s] = {
            "f1": float(np.nanmean(f1)),
            "accuracy": float(np.nanmean(acc)),
            "final": float(metrics.emotionet_score(true, pred)),
        }
    return out
