"""Backbones and task heads of the multi-task affect network (SS-MFAR, Gera et al. 2022, §3.2).

The network maps a batch of RGB images to expression logits, AU logits, valence-arousal and the
shared feature vector. Images enter as they leave the image cache — uint8 in [0, 255] or float in
[0, 1], shape (B, 3, H, W), RGB channel order — and the model applies the ImageNet normalisation
itself, so batches never carry a normalisation convention with them.

Architecture (§3.2 and the paper's public code): ResNet trunk -> global average pool -> dropout ->
L2 normalisation -> three heads:

- expression: linear -> ReLU -> linear to ``n_expr`` logits;
- AUs: linear to ``n_au`` logits, one binary classifier per AU;
- valence-arousal: linear -> ReLU -> linear -> tanh. The paper's "fully connected layer with ReLU"
  cannot output a negative valence, so a final linear layer and tanh follow; tanh keeps VA in
  [-1, 1], the range of the labels.

Weights are never downloaded: ``ModelConfig.weights`` names a local file (safetensors or a torch
state dict) read by :func:`load_weights`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn
from torchvision.models import resnet18, resnet50, shufflenet_v2_x0_5
from torchvision.models.resnet import ResNet

from affectlib.labels import N_AU, N_EXPR

# ImageNet statistics: the torchvision ResNets and face checkpoints converted from them expect these
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# keys of a profile's ``extra`` that set the model (ModelConfig.from_profile)
MODEL_EXTRA = ("stem_stride", "dropout", "head_hidden", "feature_scale")
# the stem stride of ``small_input`` models unless ``extra`` names one: stride 1 costs 3-4x the
# time of stride 2 on CPU (ModelConfig.stem_stride)
DEFAULT_STEM_STRIDE = 2


@dataclass
class ModelConfig:
    """Configuration of :class:`MultiTaskNet`.

    backbone:    a key of :data:`BACKBONES` ("resnet18", "resnet50", "compact", "shufflenet_v2_x0_5").
    n_expr:      expression classes (8 in ABAW: the 6 basic, Neutral, Other).
    n_au:        binary action units (12 in ABAW).
    dropout:     dropout on the pooled features, before L2 normalisation (§3.2).
    small_input: replace the 7x7 stride-2 stem and its max-pool (overall stride 4) by one 3x3
                 conv of stride ``stem_stride`` without pool (CIFAR style), so 32-64 px faces
                 keep a spatial final map (32 px: 1x1 with the standard stem, 4x4 with stride 1,
                 2x2 with stride 2).
    weights:     optional local checkpoint loaded by :func:`build_model`; heads may be absent.
    head_hidden: width of the hidden layer of the expression and VA heads (16 in the paper's
                 public code).
    stem_stride: stride of the small-input stem; 1 is CIFAR's. It sets the cost: ResNet-18
                 training on 2 CPU threads ran at ~58 / 200 / 325 img/s at 32 px for stride
                 1 / stride 2 / the standard stem.
    feature_scale: the L2-normalised features are multiplied by this before the heads. 1 is the
                 paper's (§3.2), which suits a pretrained backbone; from scratch, unit-norm
                 features of D = 512 have components ~1/sqrt(D), the heads' logits and the
                 gradients reaching the backbone are that small, and learning crawls (a ResNet-18
                 probe on clean faces: mean AU F1 0.00 after 3 epochs at scale 1, 0.30 at scale
                 16, 0.33 without normalisation). The direction stays normalised at any scale.
    """

    backbone: str = "resnet18"
    n_expr: int = N_EXPR
    n_au: int = N_AU
    dropout: float = 0.5
    small_input: bool = False
    weights: str | None = None
    head_hidden: int = 16
    stem_stride: int = 1
    feature_scale: float = 1.0

    @classmethod
    def from_profile(cls, profile, **overrides: Any) -> ModelConfig:
        """The model of ``profile`` (:mod:`affectlib.profiles`): its ``backbone``,
        ``small_input`` and ``weights``, the stem stride :data:`DEFAULT_STEM_STRIDE`, and the
        :data:`MODEL_EXTRA` keys of its ``extra`` (``stem_stride``, ``dropout``, ``head_hidden``,
        ``feature_scale``); then ``overrides`` (e.g. ``weights=None``: from scratch)."""
        extra = {k: v for k, v in profile.extra.items() if k in MODEL_EXTRA}
        fields = {
            "backbone": profile.backbone,
            "small_input": profile.small_input,
            "weights": profile.weights,
            "stem_stride": DEFAULT_STEM_STRIDE,
            **extra,
        }
        return cls(**{**fields, **overrides})


# --- backbone registry ----------------------------------------------------------------------------
# A builder returns a module mapping normalised images (B, 3, H, W) to pooled features (B, D),
# and D.
BackboneBuilder = Callable[[ModelConfig], tuple[nn.Module, int]]
BACKBONES: dict[str, BackboneBuilder] = {}


def register_backbone(name: str) -> Callable[[BackboneBuilder], BackboneBuilder]:
    """Decorator adding a builder to :data:`BACKBONES` under ``name``; warns if it replaces one."""

    def add(builder: BackboneBuilder) -> BackboneBuilder:
        if name in BACKBONES:
            warnings.warn(f"backbone {name!r} is already registered; replacing it", stacklevel=2)
        BACKBONES[name] = builder
        return builder

    return add


def _resnet_trunk(net: ResNet, cfg: ModelConfig) -> tuple[nn.Module, int]:
    """Strip the classifier of a torchvision ResNet; optionally swap in the small-input stem."""
    if cfg.small_input:
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=cfg.stem_stride, padding=1, bias=False)
        net.maxpool = nn.Identity()
    dim = net.fc.in_features
    net.fc = nn.Identity()  # forward now ends at the flattened average pool: (B, D)
    return net, dim


@register_backbone("resnet18")
def _build_resnet18(cfg: ModelConfig) -> tuple[nn.Module, int]:
    return _resnet_trunk(resnet18(weights=None), cfg)


@register_backbone("resnet50")
def _build_resnet50(cfg: ModelConfig) -> tuple[nn.Module, int]:
    return _resnet_trunk(resnet50(weights=None), cfg)


class CompactNet(nn.Module):
    """A compact plain CNN for the cpu profile's 32-64 px faces: a 3x3 stride-2 stem, then four
    stages of two 3x3 conv-BN-ReLU layers (32, 64, 128, 256 channels), each stage but the first
    halving the map by a 2x2 max-pool, and a global average pool. At 48 px: 24 -> 12 -> 6 -> 3
    px maps, ~1.2 M parameters, ~35 M multiply-adds per image (ResNet-18: ~85 M), trained at
    ~490 img/s on 2 CPU cores against ResNet-18's ~260 (VGG-style: Simonyan & Zisserman 2015).
    ``small_input`` and ``stem_stride`` do not apply."""

    widths = (32, 64, 128, 256)

    def __init__(self) -> None:
        super().__init__()

        def conv(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
            return [
                nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]

        layers: list[nn.Module] = conv(3, self.widths[0], stride=2)
        cin = self.widths[0]
        for k, w in enumerate(self.widths):
            if k:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            layers += conv(cin, w) + conv(w, w)
            cin = w
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.body(x)).flatten(1)


@register_backbone("compact")
def _build_compact(cfg: ModelConfig) -> tuple[nn.Module, int]:
    return CompactNet(), CompactNet.widths[-1]


@register_backbone("shufflenet_v2_x0_5")
def _build_shufflenet(cfg: ModelConfig) -> tuple[nn.Module, int]:
    """ShuffleNet V2 0.5x (Ma et al. 2018): a different architecture (channel shuffle, depthwise
    convolutions) at a fraction of ResNet-18's cost. ``small_input``: the stem conv takes
    ``stem_stride`` and the max-pool goes, as for the ResNets."""
    net = shufflenet_v2_x0_5(weights=None)
    if cfg.small_input:
        net.conv1[0].stride = (cfg.stem_stride, cfg.stem_stride)
        net.maxpool = nn.Identity()
    dim = net.fc.in_features
    net.fc = nn.Identity()  # forward ends at the global average pool: (B, 1024)
    return net, dim


# --- the network ----------------------------------------------------------------------------------
def _check_config(cfg: ModelConfig) -> None:
    if cfg.backbone not in BACKBONES:
        raise ValueError(
            f"unknown backbone {cfg.backbone!r}; registered: {', '.join(sorted(BACKBONES))}"
        )
    for name in ("n_expr", "n_au", "head_hidden", "stem_stride"):
        if int(getattr(cfg, name)) < 1:
            raise ValueError(f"ModelConfig.{name} must be >= 1, got {getattr(cfg, name)}")
    if not 0.0 <= cfg.dropout < 1.0:
        raise ValueError(f"ModelConfig.dropout must lie in [0, 1), got {cfg.dropout}")


def normalise_images(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """uint8 [0, 255] or float [0, 1] RGB images (B, 3, H, W) -> ImageNet-normalised float.

    Float input is trusted to lie in [0, 1]: checking the range would cost a device sync per batch.
    The result is channels-last in memory: on CPU (oneDNN) as on CUDA the convolutions run ~1.2x
    faster on it (``benchmarks/cpu_throughput.py``); the values are the same.
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0)
    elif not x.is_floating_point():
        raise TypeError(f"images must be uint8 or floating point, got {x.dtype}")
    x = (x - mean.to(x.dtype)) / std.to(x.dtype)
    return x.contiguous(memory_format=torch.channels_last)


class MultiTaskNet(nn.Module):
    """Shared ResNet trunk with expression, AU and valence-arousal heads (SS-MFAR §3.2).

    ``forward(x)`` returns ``{"expr": (B, n_expr) logits, "au": (B, n_au) logits,
    "va": (B, 2) in [-1, 1], "feat": (B, D) unit-norm features}``.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        _check_config(cfg)
        self.cfg = cfg
        self.backbone, self.feat_dim = BACKBONES[cfg.backbone](cfg)
        self.dropout = nn.Dropout(cfg.dropout)
        h = cfg.head_hidden
        self.expr_head = nn.Sequential(
            nn.Linear(self.feat_dim, h), nn.ReLU(inplace=True), nn.Linear(h, cfg.n_expr)
        )
        self.au_head = nn.Linear(self.feat_dim, cfg.n_au)
        self.va_head = nn.Sequential(
            nn.Linear(self.feat_dim, h), nn.ReLU(inplace=True), nn.Linear(h, 2), nn.Tanh()
        )
        # not persistent: checkpoints hold learnt weights only, and the constants cannot go stale
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def features(self, x: Tensor) -> Tensor:
        """Images (B, 3, H, W) -> unit-norm features (B, D): pool -> dropout -> L2 normalise."""
        pooled = self.backbone(normalise_images(x, self.mean, self.std))  # (B, D)
        return F.normalize(self.dropout(pooled), dim=1) * self.cfg.feature_scale

    def heads(self, feat: Tensor) -> dict[str, Tensor]:
        """Unit-norm features (B, D) -> expression logits, AU logits, VA in [-1, 1]."""
        return {"expr": self.expr_head(feat), "au": self.au_head(feat), "va": self.va_head(feat)}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        feat = self.features(x)
        return {**self.heads(feat), "feat": feat}


class TemporalGRU(nn.Module):
    """Per-frame CNN features -> GRU -> per-frame task outputs, for clips (B, T, 3, H, W).

    The frame encoder is a :class:`MultiTaskNet` whose feature path (not its heads) is reused; the
    GRU state feeds new linear heads. Returns ``{"expr": (B, T, n_expr), "au": (B, T, n_au),
    "va": (B, T, 2) in [-1, 1], "feat": (B, T, H')}`` with H' = hidden (x2 if bidirectional).
    """

    def __init__(
        self,
        encoder: MultiTaskNet,
        hidden: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.gru = nn.GRU(
            encoder.feat_dim, hidden, num_layers, batch_first=True, bidirectional=bidirectional
        )
        out = hidden * (2 if bidirectional else 1)
        self.expr_head = nn.Linear(out, encoder.cfg.n_expr)
        self.au_head = nn.Linear(out, encoder.cfg.n_au)
        self.va_head = nn.Sequential(nn.Linear(out, 2), nn.Tanh())

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if x.ndim != 5:
            raise ValueError(f"clips must have shape (B, T, 3, H, W), got {tuple(x.shape)}")
        b, t = x.shape[:2]
        feat = self.encoder.features(x.flatten(0, 1)).view(b, t, -1)  # (B, T, D)
        seq, _ = self.gru(feat)  # (B, T, H')
        return {
            "expr": self.expr_head(seq),
            "au": self.au_head(seq),
            "va": self.va_head(seq),
            "feat": seq,
        }


def build_model(cfg: ModelConfig) -> MultiTaskNet:
    """Build a :class:`MultiTaskNet`; load ``cfg.weights`` if set (heads may be missing from it)."""
    model = MultiTaskNet(cfg)
    if cfg.weights is not None:
        load_weights(model, cfg.weights, strict=False, fresh_heads=True)
    return model


def param_groups(model: nn.Module, lr_backbone: float = 1e-3, lr_heads: float = 1e-2) -> list[dict]:
    """Two optimiser groups: every submodule named ``backbone`` at ``lr_backbone``, the rest (heads,
    GRU) at ``lr_heads`` — Adam with 1e-3 for the base network, 1e-2 for the classifiers (§3.2)."""
    by_id: dict[int, nn.Parameter] = {}  # a backbone nested in a backbone counts once
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] == "backbone":
            by_id.update((id(p), p) for p in module.parameters())
    if not by_id:
        raise ValueError(f"{type(model).__name__} has no submodule named 'backbone'")
    backbone = list(by_id.values())
    heads = [p for p in model.parameters() if id(p) not in by_id]
    return [
        {"params": backbone, "lr": lr_backbone, "name": "backbone"},
        {"params": heads, "lr": lr_heads, "name": "heads"},
    ]


# --- weights from local files ---------------------------------------------------------------------
class LoadReport(NamedTuple):
    """Keys of a :func:`load_weights` call: loaded, missing from the file, unused from the file."""

    loaded: list[str]
    missing: list[str]
    unexpected: list[str]


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    if path.suffix == ".safetensors":
        state = load_file(str(path), device="cpu")
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    # training checkpoints wrap the weights next to optimiser state and metadata
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise TypeError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    state = dict(state)
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def _list(keys: list[str], limit: int = 12) -> str:
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_weights(
    module: nn.Module, path: str | Path, *, strict: bool = True, fresh_heads: bool = False
) -> LoadReport:
    """Load a local checkpoint into ``module`` (a :class:`MultiTaskNet`, a backbone, any module).

    Formats: ``*.safetensors`` via ``safetensors.torch.load_file``; anything else via
    ``torch.load(path, weights_only=True)`` — a state dict, or a dict holding one under
    "state_dict" or "model". A "module." prefix (DataParallel) is stripped. A backbone-only
    checkpoint (keys without the "backbone." prefix) loads into ``module.backbone`` when ``module``
    has one.

    Errors name the keys: shape mismatches always raise; missing or unexpected keys raise when
    ``strict``, otherwise they are skipped with a warning that lists them (e.g. heads absent from a
    backbone checkpoint). ``fresh_heads``: the heads are meant to start fresh (a backbone-only
    file into a whole model, as the model builders load one), so missing keys outside
    ``backbone.`` go unannounced; a missing backbone key or an unexpected key still warns. A file
    that matches no key at all always raises. Nothing is downloaded.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    state = _read_state_dict(path)
    own = module.state_dict()
    if not own.keys() & state.keys() and hasattr(module, "backbone"):
        prefixed = {f"backbone.{k}": v for k, v in state.items()}
        if own.keys() & prefixed.keys():
            state = prefixed
    missing = sorted(own.keys() - state.keys())
    unexpected = sorted(state.keys() - own.keys())
    common = sorted(own.keys() & state.keys())
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in common
        if state[k].shape != own[k].shape
    ]
    if mismatched:
        raise ValueError(f"{path}: shape mismatch for {len(mismatched)} keys: {_list(mismatched)}")
    if not common:
        raise ValueError(
            f"{path}: no key matches {type(module).__name__}; file keys: {_list(sorted(state))}"
        )
    if strict and (missing or unexpected):
        raise ValueError(
            f"{path}: missing keys [{_list(missing)}]; unexpected keys [{_list(unexpected)}] "
            "(pass strict=False to load the matching keys only)"
        )
    module.load_state_dict({k: state[k] for k in common}, strict=False)
    announced = [k for k in missing if k.startswith("backbone.")] if fresh_heads else missing
    if announced or unexpected:
        warnings.warn(
            f"{path}: loaded {len(common)} keys; missing [{_list(missing)}]; "
            f"unexpected [{_list(unexpected)}]",
            stacklevel=2,
        )
    return LoadReport(common, missing, unexpected)


# ---- TAL EmotioNet 2020 ----
class AUView(nn.Module):
    """One view of :class:`MultiViewAUNet` (Wang et al. 2020 §2.2): a backbone of
    :data:`BACKBONES`, the feature path of :class:`MultiTaskNet` (pool -> dropout -> L2 normalise
    -> ``feature_scale``), an optional linear projection to ``width`` features, and one linear
    classifier per AU (``au_head``: weights (n_au, width), biases (n_au,)), ``p_ij = sigmoid(w_ij^T
    f_i + b_ij)``. The projection exists only when the backbone's width differs from ``width``:
    the multi-view loss compares the two views' classifier weights, which needs one width (the
    paper's two views are one architecture, so it has none)."""

    def __init__(self, cfg: ModelConfig, width: int | None = None) -> None:
        super().__init__()
        _check_config(cfg)
        self.cfg = cfg
        self.backbone, dim = BACKBONES[cfg.backbone](cfg)
        self.dropout = nn.Dropout(cfg.dropout)
        self.width = width or dim
        self.project = nn.Linear(dim, self.width) if self.width != dim else nn.Identity()
        self.au_head = nn.Linear(self.width, cfg.n_au)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """Images (B, 3, H, W) -> AU logits (B, n_au)."""
        pooled = self.backbone(normalise_images(x, self.mean, self.std))  # (B, D)
        feat = F.normalize(self.dropout(pooled), dim=1) * self.cfg.feature_scale
        return self.au_head(self.project(feat))


class MultiViewAUNet(nn.Module):
    """Two (or more) :class:`AUView` s on the same image, Wang et al. 2020 §2.2: the output
    probability of each AU is the mean of the views' probabilities, ``p = (p_1 + p_2) / 2``.

    ``forward(x)`` returns ``{"au_views": (B, V, n_au) logits of each view, "au": (B, n_au) the
    logit of the mean probability (so that ``sigmoid(out["au"]) = p``), "expr": (B, 1) zeros,
    "va": (B, 2) zeros}``: there is no expression or VA head; the constant outputs keep
    :func:`affectlib.train.predict`'s contract. ``cfgs``: one :class:`ModelConfig` per view (its
    ``backbone``, ``n_au``, ``weights``, ...; one ``n_au`` for all); the views share the width of
    the first view's backbone (:class:`AUView`). Each view's ``weights`` load into its backbone.
    """

    def __init__(self, cfgs: list[ModelConfig]) -> None:
        super().__init__()
        if len(cfgs) < 2:
            raise ValueError(f"a multi-view network needs at least 2 views, got {len(cfgs)}")
        if len({c.n_au for c in cfgs}) != 1:
            raise ValueError(f"the views disagree on n_au: {[c.n_au for c in cfgs]}")
        first = AUView(cfgs[0])
        self.views = nn.ModuleList([first, *(AUView(c, width=first.width) for c in cfgs[1:])])
        for view, c in zip(self.views, cfgs, strict=True):
            if c.weights is not None:
                load_weights(view.backbone, c.weights, strict=False)

    def classifiers(self) -> list[tuple[Tensor, Tensor]]:
        """``(weights (n_au, width), biases (n_au,))`` of each view's AU classifiers."""
        return [(v.au_head.weight, v.au_head.bias) for v in self.views]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        logits = torch.stack([v(x) for v in self.views], dim=1)  # (B, V, n_au)
        p = logits.float().sigmoid().mean(dim=1).clamp(1e-7, 1 - 1e-7)  # (B, n_au)
        b = x.shape[0]
        return {
            "au_views": logits,
            "au": torch.log(p) - torch.log1p(-p),
            "expr": logits.new_zeros(b, 1),
            "va": logits.new_zeros(b, 2),
        }


# --- teacher-student (ABAW 2021): expression logits and valence / arousal bins ---------------------
class VABinsNet(MultiTaskNet):
    """The two-output network of the ABAW 2021 teacher-student paper (Vu et al., §2.1: "our model
    has only two outputs, EXPR and VA"): the :class:`MultiTaskNet` trunk and expression head, and
    a VA head with ``n_bins`` logits for each of valence and arousal (Deng et al. 2020's
    classification of discretised VA; 20 bins in both groups' code).

    ``forward(x)`` returns ``{"expr": (B, n_expr) logits, "va_bins": (B, 2, n_bins) logits,
    "va": (B, 2)`` the expectation of the bin centres over [-1, 1] (Eq. 2's read-out), ``"au":
    (B, 0)`` (no AU output, so that :func:`affectlib.train.predict` runs unchanged), ``"feat"}``.
    ``cfg.n_au`` is ignored."""

    def __init__(self, cfg: ModelConfig, n_bins: int = 20) -> None:
        super().__init__(cfg)
        if n_bins < 2:
            raise ValueError(f"n_bins must be >= 2, got {n_bins}")
        self.n_bins = n_bins
        h = cfg.head_hidden
        del self.au_head
        self.va_head = nn.Sequential(
            nn.Linear(self.feat_dim, h), nn.ReLU(inplace=True), nn.Linear(h, 2 * n_bins)
        )
        edges = torch.linspace(-1.0, 1.0, n_bins + 1)
        self.register_buffer("centres", (edges[1:] + edges[:-1]) / 2, persistent=False)

    def heads(self, feat: Tensor) -> dict[str, Tensor]:
        bins = self.va_head(feat).view(-1, 2, self.n_bins)  # (B, 2, n_bins)
        va = (bins.float().softmax(dim=-1) * self.centres).sum(dim=-1)  # (B, 2)
        empty = feat.new_zeros(feat.shape[0], 0)
        return {"expr": self.expr_head(feat), "va_bins": bins, "va": va, "au": empty}


def build_va_bins_model(cfg: ModelConfig, n_bins: int = 20) -> VABinsNet:
    """Build a :class:`VABinsNet`; load ``cfg.weights`` if set (its heads may be absent)."""
    model = VABinsNet(cfg, n_bins)
    if cfg.weights is not None:
        load_weights(model, cfg.weights, strict=False, fresh_heads=True)
    return model


class SequenceVABins(nn.Module):
    """The temporal stage of the ABAW 2021 teacher-student paper (Vu et al., §2.4): per-frame
    features of a frozen CNN, in sequences, through a bidirectional GRU with the two outputs of
    :class:`VABinsNet` on every frame.

    ``forward(x)``: features (B, T, D) -> per-frame outputs flattened to B*T rows (the batch's
    labels are flattened the same way, so the losses and :func:`affectlib.train.predict` see
    frames): ``{"expr": (B*T, n_expr), "va_bins": (B*T, 2, n_bins), "va": (B*T, 2), "au": (B*T, 0),
    "feat": (B*T, 2*hidden)}``. The GRU is the submodule called ``backbone`` (its learning-rate
    group in :func:`param_groups`)."""

    def __init__(self, in_dim: int, hidden: int = 128, n_expr: int = 7, n_bins: int = 20) -> None:
        super().__init__()
        self.n_bins = n_bins
        self.backbone = nn.GRU(in_dim, hidden, batch_first=True, bidirectional=True)
        self.expr_head = nn.Linear(2 * hidden, n_expr)
        self.va_head = nn.Linear(2 * hidden, 2 * n_bins)
        edges = torch.linspace(-1.0, 1.0, n_bins + 1)
        self.register_buffer("centres", (edges[1:] + edges[:-1]) / 2, persistent=False)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if x.ndim != 3:
            raise ValueError(f"sequences must have shape (B, T, D), got {tuple(x.shape)}")
        seq, _ = self.backbone(x.float())  # (B, T, 2H)
        flat = seq.reshape(-1, seq.shape[-1])  # (B*T, 2H)
        bins = self.va_head(flat).view(-1, 2, self.n_bins)
        va = (bins.float().softmax(dim=-1) * self.centres).sum(dim=-1)
        empty = flat.new_zeros(flat.shape[0], 0)
        return {"expr": self.expr_head(flat), "va_bins": bins, "va": va, "au": empty, "feat": flat}
