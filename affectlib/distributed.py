"""Process set-up of a training run: ranks under torchrun, the device, the torch runtime, the seeds
and the random generators' states, and the forward pass's precision context."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn


# --- processes and devices ------------------------------------------------------------------------
@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def dist_from_env() -> Dist:
    """Rank, world size and local rank from torchrun's environment (one process without it)."""
    env = os.environ
    return Dist(
        int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0))
    )


def init_distributed(d: Dist, device_name: str) -> bool:
    """Join the process group under torchrun; True when this call created it."""
    if d.world == 1 or dist.is_initialized():
        return False
    dist.init_process_group(backend="nccl" if device_name.startswith("cuda") else "gloo")
    return True


def resolve_device(name: str, d: Dist) -> torch.device:
    """``name`` as a device; "cuda" becomes this process's GPU (its local rank)."""
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} requested but CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {name!r}")
    return device


def configure_runtime(device: torch.device, deterministic: bool) -> None:
    if device.type == "cpu":
        # the processes of one machine share its cores: torchrun's processes of one run, and the
        # runs an executor's pool runs side by side (affectlib.executor.PARALLEL_ENV)
        local = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        local *= int(os.environ.get("AFFECTLIB_PARALLEL_RUNS", 1))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    else:
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
        if deterministic:
            # read when cuBLAS creates its first handle: deterministic GEMM workspaces
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators (initialisation, dropout)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --- RNG states (one per process in the checkpoint) -----------------------------------------------
def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        # numpy's key array as a tensor, so that the checkpoint loads with weights_only=True
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    name, key, *rest = state["numpy"]
    np.random.set_state((name, key.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def gather(obj: Any, d: Dist) -> list[Any]:
    """``obj`` of every process, by rank (collective: every process must call it)."""
    if d.world == 1:
        return [obj]
    out: list[Any] = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


# --- precision -----------------------------------------------------------------------------------
def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The network itself: ``model.module`` when ``model`` is a DistributedDataParallel wrapper."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


PRECISIONS = ("auto", "bf16", "fp32")  # a profile's precision (resolve_precision)


def cpu_runs_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (Intel AMX or AVX-512 BF16): there
    bf16 autocast trains the cpu profile's network ~1.9x faster than float32
    (``benchmarks/cpu_throughput.py``); elsewhere bf16 is emulated and slower than float32."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # torch.cpu, private
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def resolve_precision(device: torch.device, precision: str = "auto") -> str:
    """``"bf16"`` or ``"fp32"``: what ``precision`` ("auto", "bf16" or "fp32") means on
    ``device``. "auto": bf16 on CUDA and on a CPU that runs bf16 in hardware
    (:func:`cpu_runs_bf16`), float32 elsewhere."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    if device.type == "cuda" or (device.type == "cpu" and cpu_runs_bf16()):
        return "bf16"
    return "fp32"


def autocast(device: torch.device, precision: str = "auto"):
    """The forward pass's precision context: bf16 autocast where ``precision`` resolves to bf16
    (:func:`resolve_precision`), nothing otherwise. The weights, their gradients and the
    optimiser stay float32."""
    # bf16 keeps float32's exponent range: no loss scaling is needed
    if resolve_precision(device, precision) == "bf16" and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def outputs_to_f32(out: Any) -> Any:
    """A network's floating outputs (a tensor, or a dict / tuple / list of them) as float32;
    others as they are. The shared representation ``feat`` stays the tensor the heads read, so
    that a method can differentiate the task losses with respect to it (MGDA-UB's
    ``dL_t / dZ``): a float32 copy would not be in the graph."""
    if isinstance(out, Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, Mapping):
        return {k: v if k == "feat" else outputs_to_f32(v) for k, v in out.items()}
    if isinstance(out, tuple | list):
        return type(out)(outputs_to_f32(v) for v in out)
    return out


@contextmanager
def forward_precision(model: nn.Module, device: torch.device, precision: str = "auto"):
    """While open, every call of ``model`` (also through a DistributedDataParallel or compiled
    wrapper) runs its forward pass under :func:`autocast` and returns float32 outputs
    (:func:`outputs_to_f32`), so that the losses, softmaxes and thresholds computed from them
    stay float32 and outside autocast. Nothing changes where ``precision`` resolves to float32.
    Whatever ``forward`` the model had is back on exit, also on an error."""
    if resolve_precision(device, precision) != "bf16":
        yield model
        return
    before = vars(model).get("forward")  # an instance forward of its own (rare): kept
    original = model.forward

    def forward(*args: Any, **kwargs: Any) -> Any:
        with autocast(device, "bf16"):
            out = original(*args, **kwargs)
        return outputs_to_f32(out)

    model.forward = forward  # an instance attribute: the state dict and hooks are untouched
    try:
        yield model
    finally:
        if before is None:
            del model.forward
        else:
            model.forward = before
