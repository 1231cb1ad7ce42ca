"""A model's predictions over a loader (:func:`predict`), and how the loop stores them: ``.npz``
files of the labels (ABAW markers kept) and the predicted probabilities and values."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from affectlib.distributed import autocast
from affectlib.files import atomic_write_bytes
from affectlib.labels import AU_MISSING, EXPR_MISSING, VA_MISSING


def _au_mask(batch: Mapping[str, Tensor]) -> Tensor:
    """Per-entry AU mask (B, n_au): ``au_mask`` when the batch has it, else ``has_au`` broadcast."""
    if "au_mask" in batch:
        return batch["au_mask"]
    return batch["has_au"][:, None].expand_as(batch["au"])


@torch.no_grad()
def predict(
    model: nn.Module, loader, device: torch.device, precision: str = "auto"
) -> dict[str, np.ndarray]:
    """Run ``model`` in eval mode over ``loader`` under
    :func:`affectlib.distributed.autocast` (``precision``: "auto", "bf16" or "fp32"); labels come
    back with the ABAW markers.

    Returns ``index`` (N,) table rows, ``expr_true`` (N,) with -1, ``au_true`` (N, n_au) with -1,
    ``va_true`` (N, 2) with -5, ``expr_prob`` (N, n_expr) softmax, ``au_prob`` (N, n_au) sigmoid,
    ``va_pred`` (N, 2).
    """
    was_training = model.training
    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    for batch in loader:
        images = batch["image"].to(device, non_blocking=True)
        if device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            out = model(images)
        rows = {
            "index": batch["index"],
            "expr_true": torch.where(batch["has_expr"], batch["expr"], EXPR_MISSING),
            "au_true": torch.where(_au_mask(batch), batch["au"].long(), AU_MISSING),
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


def write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """``arrays`` as one ``.npz`` file at ``path``, written atomically."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def write_epoch_predictions(
    out: Path,
    epoch: int,
    pred: Mapping[str, np.ndarray],
    test,
    model: nn.Module,
    device,
    precision: str = "auto",
) -> None:
    """``TrainConfig.epoch_predictions``: this epoch's validation predictions and, when there is a
    test loader, the test predictions of the same model, as ``epochs/{val,test}_NNN.npz``."""
    splits = {"val": pred}
    if test is not None:
        splits["test"] = predict(model, test, device, precision)
    for split, p in splits.items():
        write_npz(out / "epochs" / f"{split}_{epoch:03d}.npz", p)
