"""The two pretraining objectives of SS-MFAR Table 1's starting weights: what one batch costs.

- ``pretrain-identity`` (:data:`IDENTITY`, the MS-Celeb-1M stand-in): the multi-task network with
  an extra linear identity head on its normalised features (:class:`IdentityNet`), plain cross
  entropy over the identities. Not registered: its batches carry ``identity``
  (:class:`affectlib.pretraining.IdentityLoader`), which the loaders of ``train.run`` do not give.
- ``pretrain-affectnet`` (:data:`AFFECTNET`, the AffectNet stand-in): MFAR's losses on the
  AffectNet-format set (expression and VA labels, no AU label, so the AU term is 0), registered:
  ``python -m affectlib train pretrain-affectnet --format affectnet``.

Bulat et al. 2022 (notebook 07) adds two sources, neither registered (their batches are the
identity set's, :class:`affectlib.pretraining.IdentityLoader`):

- ``pretrain-swav`` (:data:`SWAV`): SwAV (Caron et al. 2020) on the identity set's images with
  their labels unused — multi-crop views (:func:`swav_crops`), a projection head and prototypes
  (:class:`SwAVNet`), Sinkhorn-Knopp codes and the swapped prediction
  (:func:`affectlib.losses.swav_loss`, lightly's implementation);
- ``pretrain-identity-cosface`` (:data:`IDENTITY_COSFACE`): the supplement's face-recognition
  recipe, CosFace with margin 0.35 (:func:`affectlib.losses.cosface_loss`) on the identity head.

The runs that train them, cache their backbones and the command line are
:mod:`affectlib.pretraining`.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from affectlib import losses, models
from affectlib.data import augment
from affectlib.methods.base import Batch, MethodSpec, State, StepContext, register
from affectlib.methods.mfar import MFAR, PAPER

BULAT = (
    "Bulat et al., Pre-training strategies and datasets for facial representation learning, "
    "ECCV 2022"
)


class IdentityNet(nn.Module):
    """The multi-task network with a linear identity classifier on its normalised features.

    ``forward`` returns the network's outputs plus ``"identity"`` (B, n_identities) logits; the
    trunk is ``net.backbone``, so :func:`models.param_groups` finds it."""

    def __init__(self, cfg: models.ModelConfig, n_identities: int) -> None:
        super().__init__()
        if n_identities < 2:
            raise ValueError(
                f"identity pretraining needs at least 2 identities, got {n_identities}"
            )
        self.net = models.MultiTaskNet(cfg)
        self.identity_head = nn.Linear(self.net.feat_dim, n_identities)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        out = self.net(x)
        return {**out, "identity": self.identity_head(out["feat"])}


def identity_loss(
    model: nn.Module, batch: Batch, state: State, ctx: StepContext
) -> tuple[Tensor, dict[str, Tensor]]:
    """Cross entropy of the identity logits of the weak view against the identity labels (the
    face-recognition objective of the MS-Celeb-1M pretraining, here a plain softmax classifier)."""
    loss = F.cross_entropy(model(batch["weak"])["identity"].float(), batch["identity"])
    return loss, {"loss_identity": loss.detach()}


# not registered: its batches need ``identity``, which the abaw loaders of train.run do not give
IDENTITY = MethodSpec(
    name="pretrain-identity",
    loss=identity_loss,
    views=("weak",),
    paper=PAPER + ", §3.2 (ResNet-18 pretrained on MS-Celeb-1M; embedded stand-in)",
)
# trainable with ``python -m affectlib train pretrain-affectnet --format affectnet``. Torch's
# weighted mean of the Eq. 1-weighted CE: the paper does not say how its AffectNet weights were
# trained, and under the public code's mean reduction the AffectNet-format set's weights (up to ~64
# for its rarest class) let single images dominate a batch: on the cpu profile (10 epochs) the
# pretraining then ends at expression macro F1 0.016 and VA CCC 0.00 on its validation split,
# against 0.12 and 0.41 with the weighted mean.
AFFECTNET = register(
    dataclasses.replace(
        MFAR,
        options={**MFAR.options, "ce_reduction": "weighted"},
        name="pretrain-affectnet",
        paper=PAPER + ", §3.4 (SSP-MFAR: pretrained on AffectNet; embedded stand-in)",
    )
)


# ---- Bulat et al. 2022: SwAV on unlabelled faces, CosFace face recognition ----------------------
def unwrap(model: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel wrapper (itself otherwise)."""
    return getattr(model, "module", model)


def identity_cosface_loss(
    model: nn.Module, batch: Batch, state: State, ctx: StepContext
) -> tuple[Tensor, dict[str, Tensor]]:
    """CosFace (Wang et al. 2018 Eq. 4, :func:`affectlib.losses.cosface_loss`) of the weak view's
    normalised features against the identity head's weights: the supervised face-recognition
    pretraining of Bulat et al. supplement §1.2 (margin 0.35)."""
    out = model(batch["weak"])
    head = unwrap(model).identity_head
    loss = losses.cosface_loss(
        out["feat"], head.weight, batch["identity"], ctx.options["margin"], ctx.options["scale"]
    )
    return loss, {"loss_identity": loss.detach()}


# not registered either (identity batches); the options are CosFace's margin and scale
IDENTITY_COSFACE = dataclasses.replace(
    IDENTITY,
    name="pretrain-identity-cosface",
    loss=identity_cosface_loss,
    options={"margin": 0.35, "scale": 30.0},
    paper=BULAT + ", supplement §1.2 (face recognition, CosFace margin 0.35; embedded stand-in)",
)


class SwAVNet(nn.Module):
    """The multi-task network's trunk with SwAV's projection head and prototypes (Caron et al.
    2020 §4: a 2-layer MLP to a unit-norm ``proj_dim`` code, then K prototypes, no bias).

    ``forward(x)`` returns the multi-task heads' outputs on the trunk's normalised features (so
    the loop's validation pass works) and ``"proj"`` (B, proj_dim) unit-norm projections; the
    prototype scores are ``proj @ prototypes.weight.T`` (the loss computes them, so it can hold
    the prototypes still in the first epoch). The trunk is ``net.backbone``: the exported weights
    are the same keys as every other pretraining's."""

    def __init__(
        self, cfg: models.ModelConfig, n_prototypes: int, proj_dim: int = 64, hidden: int = 256
    ) -> None:
        super().__init__()
        if n_prototypes < 2:
            raise ValueError(f"SwAV needs at least 2 prototypes, got {n_prototypes}")
        self.net = models.MultiTaskNet(cfg)
        d = self.net.feat_dim
        self.projector = nn.Sequential(
            nn.Linear(d, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, proj_dim),
        )  # fmt: skip
        self.prototypes = nn.Linear(proj_dim, n_prototypes, bias=False)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        net = self.net
        pooled = net.backbone(models.normalise_images(x, net.mean, net.std))  # (B, D)
        feat = F.normalize(pooled, dim=1) * net.cfg.feature_scale
        proj = F.normalize(self.projector(pooled), dim=1)  # (B, proj_dim)
        return {**net.heads(feat), "feat": feat, "proj": proj}


def swav_crops(
    images: Tensor,
    generator: torch.Generator,
    n_global: int,
    n_small: int,
    global_size: int,
    small_size: int,
    global_scale: tuple[float, float] = (0.35, 1.0),
    small_scale: tuple[float, float] = (0.1, 0.35),
) -> tuple[list[Tensor], list[Tensor]]:
    """SwAV's multi-crop (Caron et al. 2020 §3.2) of a uint8 batch (B, 3, H, W): ``n_global``
    crops at ``global_size`` px and ``n_small`` at ``small_size`` px, float in [0, 1].

    Each crop of each image draws its own area fraction (``*_scale``), aspect ratio (3/4..4/3),
    position and horizontal flip, resampled bilinearly in one ``grid_sample`` per crop, then a
    brightness and contrast jitter (x0.6..1.4) and grey scale with probability 0.2 (SwAV's
    colour distortion, without hue). Every draw comes from ``generator``. Bulat et al. §1.1: 2
    crops at 224 px and 6 at 96 px of 256 px faces; ``global_scale`` / ``small_scale`` are
    SwAV's (0.14-1, 0.05-0.14) widened for 48 px faces, where a 5% crop is a few pixels."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
    x = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
    b = x.shape[0]

    def one(size: int, scale: tuple[float, float]) -> Tensor:
        u = torch.rand(b, 7, generator=generator).to(x.device)
        area = scale[0] + (scale[1] - scale[0]) * u[:, 0]
        ratio = torch.exp((u[:, 1] - 0.5) * 2 * math.log(4 / 3))
        sx = (area * ratio).sqrt().clamp(max=1.0)  # half-widths in [-1, 1] coordinates
        sy = (area / ratio).sqrt().clamp(max=1.0)
        tx = (2 * u[:, 2] - 1) * (1 - sx)
        ty = (2 * u[:, 3] - 1) * (1 - sy)
        flip = torch.where(u[:, 4] < 0.5, -1.0, 1.0)
        theta = torch.zeros(b, 2, 3, device=x.device)
        theta[:, 0, 0], theta[:, 0, 2] = sx * flip, tx
        theta[:, 1, 1], theta[:, 1, 2] = sy, ty
        grid = F.affine_grid(theta, [b, 3, size, size], align_corners=False)
        crop = F.grid_sample(
            x, grid, mode="bilinear", padding_mode="reflection", align_corners=False
        )
        bright = (0.6 + 0.8 * u[:, 5]).view(b, 1, 1, 1)
        contrast = (0.6 + 0.8 * torch.rand(b, generator=generator).to(x.device)).view(b, 1, 1, 1)
        mean = crop.mean(dim=(1, 2, 3), keepdim=True)
        crop = ((crop - mean) * contrast + mean) * bright
        grey = (u[:, 6] < 0.2).view(b, 1, 1, 1)
        crop = torch.where(grey, crop.mean(dim=1, keepdim=True).expand_as(crop), crop)
        return crop.clamp_(0.0, 1.0)

    return (
        [one(global_size, global_scale) for _ in range(n_global)],
        [one(small_size, small_scale) for _ in range(n_small)],
    )


def swav_loss(
    model: nn.Module, batch: Batch, state: State, ctx: StepContext
) -> tuple[Tensor, dict[str, Tensor]]:
    """SwAV on one batch of unlabelled faces (Caron et al. 2020; Bulat et al. supplement §1.1):
    the prototypes renormalised to the unit sphere, the multi-crop views (:func:`swav_crops`),
    one forward per resolution, the prototype scores, and the swapped prediction with
    Sinkhorn-Knopp codes (:func:`affectlib.losses.swav_loss`). The prototypes are held still
    (no gradient) during the first ``freeze_prototypes_epochs`` epochs (SwAV's practice); no
    queue (SwAV adds one below batch 256; our batches are small but the set is too). No label
    is read."""
    o = ctx.options
    net = unwrap(model)
    with torch.no_grad():
        w = net.prototypes.weight
        w.copy_(F.normalize(w, dim=1))
    gen = augment.seeded_generator(int(o["crop_seed"]), ctx.step)
    size = int(batch["image"].shape[-1])
    small = max(8, round(size * o["small_fraction"]))
    big, little = swav_crops(batch["image"], gen, o["n_global"], o["n_small"], size, small)
    w = net.prototypes.weight
    if ctx.epoch <= o["freeze_prototypes_epochs"]:
        w = w.detach()
    scores_big = (model(torch.cat(big))["proj"] @ w.T).chunk(len(big))  # each (B, K)
    scores_little = (model(torch.cat(little))["proj"] @ w.T).chunk(len(little)) if little else ()
    loss = losses.swav_loss(
        list(scores_big), list(scores_little), o["temperature"], o["epsilon"], o["iterations"]
    )
    return loss, {"loss_swav": loss.detach()}


# not registered: its batches are unlabelled identity-set images (see affectlib.pretraining)
SWAV = MethodSpec(
    name="pretrain-swav",
    loss=swav_loss,
    views=(),
    options={
        "n_prototypes": 32,  # Bulat et al.: 3000 for batch 4096; here ~half a cpu batch
        "proj_dim": 64,
        "temperature": 0.1,  # Bulat et al. §1.1
        "epsilon": 0.05,  # Bulat et al. §1.1 (Sinkhorn regularisation)
        "iterations": 3,  # SwAV's Sinkhorn iterations
        "n_global": 2,  # Bulat et al. §1.1: 2 views at 224 px ...
        "n_small": 6,  # ... and 6 at 96 px
        "small_fraction": 0.5,  # small crop side / image side (96 / 224 = 0.43 in the paper)
        "freeze_prototypes_epochs": 1,
        "crop_seed": 0,
    },
    paper=BULAT + ", supplement §1.1 (SwAV, Caron et al. 2020)",
)


# ---- Bulat et al. 2022: fine-tuning for expression and valence-arousal (Table 3) ---------------
class LinearAffectNet(nn.Module):
    """A trunk with one linear layer predicting the expression classes and valence-arousal
    together (Bulat et al. supplement §4.1: "The task specific head h(.) is a linear layer that
    regresses the valence and arousal values and also predicts the basic emotion classes").

    ``forward`` returns ``"expr"`` (B, n_expr) logits, ``"va"`` (B, 2) (linear, not squashed),
    ``"feat"`` (the trunk's normalised features) and ``"au"`` (B, n_au) zeros (no AU head; the
    loop's validation pass reads the key). The trunk is ``net.backbone`` of a
    :class:`~affectlib.models.MultiTaskNet` built by :func:`models.build_model` (so its
    ``weights`` file loads as any run's); that network's own heads are unused."""

    def __init__(self, cfg: models.ModelConfig) -> None:
        super().__init__()
        self.net = models.build_model(cfg)
        self.n_expr, self.n_au = cfg.n_expr, cfg.n_au
        self.head = nn.Linear(self.net.feat_dim, cfg.n_expr + 2)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        feat = self.net.features(x)  # (B, D)
        out = self.head(feat)  # (B, n_expr + 2)
        au = feat.new_zeros(feat.shape[0], self.n_au)
        return {"expr": out[:, : self.n_expr], "va": out[:, self.n_expr :], "au": au, "feat": feat}


def affect_finetune_loss(
    model: nn.Module, batch: Batch, state: State, ctx: StepContext
) -> tuple[Tensor, dict[str, Tensor]]:
    """Bulat et al. supplement §4.1: cross entropy of the expression classes plus the RMSE and
    CCC losses of valence and arousal (:func:`affectlib.losses.rmse_ccc_loss`), each over the
    rows labelled for it, equally weighted (the paper gives no weights)."""
    out = model(batch["weak"])
    has_e, has_v = batch["has_expr"], batch["has_va"]
    ce = (
        F.cross_entropy(out["expr"][has_e].float(), batch["expr"][has_e])
        if bool(has_e.any())
        else out["expr"].sum() * 0.0
    )
    va = losses.rmse_ccc_loss(out["va"][has_v].float(), batch["va"][has_v])
    return ce + va, {"loss_expr": ce.detach(), "loss_va": va.detach()}


FINETUNE_AFFECT = register(
    MethodSpec(
        name="finetune-affect",
        loss=affect_finetune_loss,
        views=("weak",),
        paper=BULAT + ", supplement §4.1 (AffectNet fine-tuning, Table 3)",
    )
)


def au_intensity_finetune_loss(
    model: nn.Module, batch: Batch, state: State, ctx: StepContext
) -> tuple[Tensor, dict[str, Tensor]]:
    """AU intensity regression on the weak view (Bulat et al. supplement Table 1, DISFA): the
    network's linear AU head as ``5 sigmoid(z)`` against the 0-5 intensities
    (:func:`affectlib.losses.au_intensity_loss`); the batch carries ``intensity``
    (:class:`affectlib.data.disfa.IntensityLoader`). Every DISFA AU is bilateral: a flip keeps
    the labels."""
    loss = losses.au_intensity_loss(model(batch["weak"])["au"], batch["intensity"])
    return loss, {"loss_intensity": loss.detach()}


# not registered: its batches need ``intensity`` (the DISFA-format loader's)
FINETUNE_AU_INTENSITY = MethodSpec(
    name="finetune-au-intensity",
    loss=au_intensity_finetune_loss,
    views=("weak",),
    paper=BULAT + ", supplement §1.2 and Table 1 (AU intensity, DISFA)",
)
