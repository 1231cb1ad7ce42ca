"""The two pretraining objectives of SS-MFAR Table 1's starting weights: what one batch costs.

- ``pretrain-identity`` (:data:`IDENTITY`, the MS-Celeb-1M stand-in): the multi-task network with
  an extra linear identity head on its normalised features (:class:`IdentityNet`), plain cross
  entropy over the identities. Not registered: its batches carry ``identity``
  (:class:`affectlib.pretraining.IdentityLoader`), which the loaders of ``train.run`` do not give.
- ``pretrain-affectnet`` (:data:`AFFECTNET`, the AffectNet stand-in): MFAR's losses on the
  AffectNet-format set (expression and VA labels, no AU label, so the AU term is 0), registered:
  ``python -m affectlib train pretrain-affectnet --format affectnet``.

The runs that train them, cache their backbones and the command line are
:mod:`affectlib.pretraining`.
"""

from __future__ import annotations

import dataclasses

import torch.nn.functional as F
from torch import Tensor, nn

from affectlib import models
from affectlib.methods.base import Batch, MethodSpec, State, StepContext, register
from affectlib.methods.mfar import MFAR, PAPER


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
