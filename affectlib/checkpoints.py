"""The checkpoint of a training run (:func:`affectlib.train.fit`): written atomically, read with
``weights_only``, and refused when it was written under another configuration."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from affectlib.files import atomic_write_bytes

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_VERSION = 2  # 2: the selected epoch ("best") is kept


class ConfigMismatch(ValueError):
    """``checkpoint.pt`` in the output folder was written by a run with another configuration."""


def atomic_torch_save(obj: Any, path: Path) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())  # temporary file, fsync, os.replace


def to_cpu(x: Any) -> Any:
    if isinstance(x, Tensor):
        return x.detach().cpu()
    if isinstance(x, dict):
        return {k: to_cpu(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return type(x)(to_cpu(v) for v in x)
    return x


def to_device(state: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, Tensor) else v for k, v in state.items()}


def json_normal(record: Mapping[str, Any]) -> dict[str, Any]:
    # the JSON round trip turns tuples into lists and keys into strings, as config.json holds them
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


def load_checkpoint(path: str | Path, record: Mapping[str, Any]) -> dict[str, Any]:
    """Read the checkpoint at ``path`` (``weights_only``) after checking it was written under
    ``record``; :class:`ConfigMismatch` names each differing key otherwise."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("version") != CHECKPOINT_VERSION:
        found = ckpt.get("version") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ConfigMismatch(f"{path}: checkpoint format {found!r}, expected {CHECKPOINT_VERSION}")
    differences = _diff(ckpt["config"], json_normal(record))
    if differences:
        raise ConfigMismatch(
            f"{path} was written under another configuration; resume refused. Differences: "
            + "; ".join(differences)
            + ". Use another output folder, or delete the checkpoint to start over."
        )
    return ckpt
