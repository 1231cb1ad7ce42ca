"""Named presets of every setting the study uses: ``smoke`` (CI, seconds), ``cpu`` (the embedded default
data at full size, minutes on 2 cores), ``gpu`` (the embedded data at the papers' network settings,
one GPU) and ``paper`` (the papers' settings, GPU, real data).

A notebook's ``parameters`` cell names a profile; any field can be overridden::

    cfg = profiles.get("cpu", epochs=3)

``make test`` runs the stored notebooks under nbval, which cannot inject parameters; it sets the
environment variable ``AFFECTLIB_PROFILE=smoke`` (and ``AFFECTLIB_RESULTS`` to a scratch folder), which
:func:`resolve_profile_name` and :func:`results_root` honour. Nothing else reads the environment.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

PROFILE_ENV = "AFFECTLIB_PROFILE"
RESULTS_ENV = "AFFECTLIB_RESULTS"


@dataclass(frozen=True)
class Profile:
    name: str
    # data: the embedded default data set (ignored when real data are given)
    n_train_subjects: int = 80  # subjects of the Aff-Wild2-like training split
    n_val_subjects: int = 40  # subjects of its validation split, disjoint from training (20 left
    # per-AU scores hanging on the few videos where an AU occurs)
    n_test_subjects: int = 40  # subjects of its held-out test split: runs select on validation
    # and report this one
    videos_per_subject: int = 1
    frames_per_video: int = 72  # many short videos: identity variety matters more than length
    n_affectnet: int = 3000  # images of the AffectNet-format expression + VA set
    n_emotionet: int = 3000  # images of the EmotioNet-format AU-only set
    n_rafdb: int = 1000  # images of the RAF-DB-format expression set
    n_pretrain_subjects: int = 40  # identities for the identity pretraining (not in any split)
    pretrain_images_per_subject: int = 40  # images of each of those identities
    image_size: int = 48  # pixels of the rendered faces (the papers use 112-224)
    label_noise: float = (
        1.0  # scale of the annotation noise of the embedded set (1 = documented rates)
    )
    # the two visibility knobs of the embedded faces (instrument settings, chosen with MFAR and the
    # read-out probe only; see the README): au_gain scales every AU's effect on the face (1 =
    # FACS-sized movements, the `hard` variant), nuisance the pose/light/occlusion/blur/noise of
    # the Aff-Wild2-like frames (render.sample_nuisance's difficulty); stills_nuisance: the
    # still-image sets' (AffectNet, EmotioNet, RAF-DB, identities) as a multiple of nuisance
    au_gain: float = 1.0
    nuisance: float = 0.8
    stills_nuisance: float = 1.25
    # model
    backbone: str = "resnet18"
    small_input: bool = False  # CIFAR-style stem (3x slower on CPU; see models.ModelConfig)
    weights: str | None = None  # path of a local weights file (never downloaded)
    # optim
    epochs: int = 3
    batch_size: int = 128
    lr_backbone: float = 1e-3  # SS-MFAR §3.2 (Adam: 1e-3 for the base network)
    lr_heads: float = 1e-2  # SS-MFAR §3.2 (1e-2 for the classification layers)
    lr_schedule: str = "constant"  # SS-MFAR gives none; "cosine" decays to 0 over the run
    seeds: tuple[int, ...] = (0, 1, 2)
    # run
    device: str = "cpu"
    # the forward pass's precision: "auto" = bf16 autocast on CUDA and on a CPU that runs bf16 in
    # hardware (AMX / AVX-512 BF16: the cpu profile's network then trains ~1.9x faster), float32
    # elsewhere; "fp32" or "bf16" force one (distributed.resolve_precision). Runs record the value
    # used, so results obtained on CPUs with and without bf16 are told apart
    precision: str = "auto"
    compile: bool = False  # torch.compile the network for training (TrainConfig.compile)
    num_workers: int = 0
    # runs a notebook's executor trains side by side when its parameters name none (executor "",
    # max_parallel 0; Profile.runs_at_once); 0 = by precision, the cpu profile's: in float32 two
    # small runs on one core each train ~1.3x faster than one on both, in bf16 one on both is
    # faster (five MFAR runs of notebook 03: 63 s one at a time, 83 s two side by side;
    # benchmarks/cpu_throughput.py); 1 elsewhere
    parallel_runs: int = 1
    checkpoint_every: int = 200  # steps between checkpoints (and one per epoch)
    # method and model settings; feature_scale: see models.ModelConfig (1 = the paper's, for
    # pretrained backbones; 16 lets a backbone trained from scratch learn within the cpu budget)
    extra: dict = field(default_factory=lambda: {"feature_scale": 16.0})

    def replace(self, **overrides) -> Profile:
        return _apply(self, overrides)

    @property
    def runs_at_once(self) -> int:
        """Runs a notebook trains side by side by default: ``parallel_runs``; for 0, one where the
        forward pass resolves to bf16 (or the device is not a CPU), else two."""
        if self.parallel_runs:
            return self.parallel_runs
        import torch  # deferred: data generation and the audit read profiles without torch

        from affectlib.distributed import resolve_precision  # deferred with torch

        device = torch.device(self.device)
        if device.type != "cpu" or resolve_precision(device, self.precision) == "bf16":
            return 1
        return 2


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        n_train_subjects=4,
        n_val_subjects=2,
        n_test_subjects=2,
        videos_per_subject=1,
        frames_per_video=24,
        n_affectnet=96,
        n_emotionet=96,
        n_rafdb=48,
        n_pretrain_subjects=4,
        pretrain_images_per_subject=10,
        image_size=32,
        au_gain=2.0,  # the cpu profile's faces
        epochs=1,
        batch_size=32,
        seeds=(0,),
        checkpoint_every=10,
    ),
    # the cpu miniature: a compact network at 48 px on faces whose AUs move twice as far as FACS
    # sizes them (au_gain 2: chosen with MFAR and the read-out probe, README "How learnable")
    # cosine learning rate: at a constant rate MFAR's validation score swung by +-0.15 from epoch to
    # epoch and one seed in three ended far below the others; decayed, it rises steadily (README)
    "cpu": Profile(
        name="cpu",
        backbone="compact",
        au_gain=2.0,
        batch_size=64,
        lr_schedule="cosine",
        parallel_runs=0,  # two side by side in float32, one in bf16 (runs_at_once)
    ),
    # the embedded data at the papers' network settings on one GPU (not yet measured on a GPU):
    # ResNet-18 at 112 px, batch 256, more subjects and longer videos, tens of epochs; the cpu
    # profile's visibility knobs, so that both profiles measure the same faces
    "gpu": Profile(
        name="gpu",
        n_train_subjects=240,
        n_val_subjects=60,
        n_test_subjects=60,
        frames_per_video=120,
        n_affectnet=20000,
        n_emotionet=20000,
        n_rafdb=5000,
        n_pretrain_subjects=400,
        pretrain_images_per_subject=40,
        image_size=112,
        au_gain=2.0,
        backbone="resnet18",
        epochs=30,
        batch_size=256,
        device="cuda",
        num_workers=8,
        checkpoint_every=1000,
        # the losses read from the GPU once per 50 steps, not every step (TrainConfig.log_every)
        extra={"feature_scale": 16.0, "log_every": 50},
    ),
    # the papers' settings for real data on a GPU; each setting's source beside it (SS-MFAR: Gera
    # et al. 2022; their public code: github.com/1980x/ABAW2022DMACS, main_ssl_with_reweights.py)
    "paper": Profile(
        name="paper",
        image_size=224,  # SS-MFAR §3.2: cropped-aligned images resized to 224x224
        small_input=False,  # the standard ImageNet stem of a ResNet-18 at 224 px (SS-MFAR §3.2)
        epochs=50,  # SS-MFAR gives no epoch count; the public code trains 50 (--epochs default)
        batch_size=256,  # SS-MFAR §3.2
        seeds=(0, 1, 2),  # ours: three paired seeds for intervals (the paper reports one run)
        device="cuda",
        num_workers=8,  # runtime choices, not results: loader processes, checkpoint interval
        checkpoint_every=1000,
        # the normalised features unscaled, as SS-MFAR §3.2; the losses read from the GPU once
        # per 50 steps, not every step (TrainConfig.log_every: a runtime choice, same model)
        extra={"feature_scale": 1.0, "log_every": 50},
    ),
}


# today's FACS-sized faces (data v8): reachable from any profile as ``p.replace(**HARD)`` or
# ``--set au_gain=1``, so the realism claim stays testable
HARD: dict[str, float] = {"au_gain": 1.0, "nuisance": 0.8}


def _apply(p: Profile, overrides: dict) -> Profile:
    names = {f.name for f in dataclasses.fields(Profile)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise KeyError(
            f"unknown profile field(s) {', '.join(unknown)}; known fields: {', '.join(sorted(names))}"
        )
    if "seeds" in overrides:
        overrides = {**overrides, "seeds": tuple(int(s) for s in overrides["seeds"])}
    if overrides.get("parallel_runs", 0) < 0:
        raise ValueError(
            f"parallel_runs must be >= 0 (0: by precision), got {overrides['parallel_runs']}"
        )
    if "precision" in overrides:
        from affectlib.distributed import PRECISIONS  # deferred: torch, only when overridden

        if overrides["precision"] not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {PRECISIONS}, got {overrides['precision']!r}"
            )
    # `extra` overrides are entries: they join the profile's own (`--set extra.log_every=4` keeps
    # its feature_scale); always a fresh dict, so changing one profile's never changes the preset's
    overrides = {**overrides, "extra": {**p.extra, **dict(overrides.get("extra") or {})}}
    return dataclasses.replace(p, **overrides)


def get(name: str, **overrides) -> Profile:
    """The profile called ``name`` with ``overrides`` applied (unknown fields are an error)."""
    if name not in PROFILES:
        raise KeyError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
    return _apply(PROFILES[name], overrides)


def resolve_profile_name(name: str) -> str:
    """The profile a notebook runs: ``$AFFECTLIB_PROFILE`` when set (``make test``), else ``name``."""
    return os.environ.get(PROFILE_ENV) or name


def results_root(out_dir: str) -> str:
    """Where a notebook writes: ``$AFFECTLIB_RESULTS`` when set (``make test``), else ``out_dir``."""
    return os.environ.get(RESULTS_ENV) or out_dir


def parse_override(text: str) -> tuple[str, object]:
    """Parse ``key=value`` from the command line into a typed profile override."""
    if "=" not in text:
        raise ValueError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    fields = {f.name: f for f in dataclasses.fields(Profile)}
    if key not in fields:
        raise KeyError(f"unknown profile field {key!r}; known: {', '.join(sorted(fields))}")
    default = getattr(PROFILES["cpu"], key)
    raw = raw.strip()
    if isinstance(default, bool):
        if raw.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"{key} expects true/false, got {raw!r}")
        return key, raw.lower() in ("true", "1")
    if isinstance(default, int):
        return key, int(raw)
    if isinstance(default, float):
        return key, float(raw)
    if isinstance(default, tuple):
        return key, tuple(int(s) for s in raw.split(",") if s)
    if default is None and raw.lower() in ("", "none"):
        return key, None
    return key, raw
