"""Bulat et al. 2022 (notebook 07): SwAV, CosFace and the VA loss against hand computations; the
SwAV method's pieces; the loop's Adam betas, warm-up and LARS."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affectlib import losses, models, train
from affectlib.methods import pretrain
from affectlib.methods.base import StepContext


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _sinkhorn_numpy(scores, eps, iters):
    # Caron et al. 2020, Algorithm 1 (the authors' distributed_sinkhorn), written out by hand
    q = np.exp(scores / eps).T  # (K, B)
    q = q / q.sum()
    k, b = q.shape
    for _ in range(iters):
        q = q / q.sum(axis=1, keepdims=True) / k
        q = q / q.sum(axis=0, keepdims=True) / b
    return (q * b).T  # (B, K), rows sum to 1


SCORES = np.array([[0.9, 0.1, -0.3], [0.2, 0.8, 0.1], [-0.5, 0.3, 0.7], [0.4, 0.4, 0.0]])


def test_sinkhorn_codes_match_the_hand_iteration_and_sum_to_one_per_sample():
    q = losses.sinkhorn_codes(torch.tensor(SCORES), epsilon=0.5, iterations=3).numpy()
    want = _sinkhorn_numpy(SCORES, 0.5, 3)
    np.testing.assert_allclose(q, want, rtol=1e-5)
    np.testing.assert_allclose(q.sum(axis=1), np.ones(4), rtol=1e-5)
    # equipartition: after the last column step every prototype holds B/K of the mass (approx.)
    assert np.abs(q.sum(axis=0) - 4 / 3).max() < 0.2


def test_swav_loss_is_the_swapped_prediction_averaged_over_crops():
    rng = np.random.default_rng(0)
    g = [rng.normal(size=(4, 3)) for _ in range(2)]
    s = [rng.normal(size=(4, 3))]
    t, eps = 0.1, 0.05
    # by hand: for each global crop i, codes q_i; predicted from every other crop v
    total = 0.0
    for i in range(2):
        q = _sinkhorn_numpy(g[i], eps, 3)
        others = [g[v] for v in range(2) if v != i] + s
        sub = sum(-np.mean(np.sum(q * np.log(_softmax(z / t)), axis=1)) for z in others)
        total += sub / (3 - 1)
    want = total / 2
    got = losses.swav_loss([torch.tensor(x) for x in g], [torch.tensor(x) for x in s], t, eps)
    assert got.shape == ()
    assert got.item() == pytest.approx(want, rel=1e-5)


def test_swav_loss_rejects_crops_of_different_shapes():
    with pytest.raises(ValueError, match="every crop"):
        losses.swav_loss([torch.zeros(4, 3)], [torch.zeros(5, 3)])


def test_cosface_loss_subtracts_the_margin_from_the_true_class_cosine():
    feat = np.array([[1.0, 0.0], [0.6, 0.8], [-1.0, 1.0]])
    w = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = np.array([0, 1, 2])
    cos = (feat / np.linalg.norm(feat, axis=1, keepdims=True)) @ (
        w / np.linalg.norm(w, axis=1, keepdims=True)
    ).T
    logits = 30.0 * (cos - 0.35 * np.eye(3)[y])
    want = -np.mean(np.log(_softmax(logits)[np.arange(3), y]))
    got = losses.cosface_loss(torch.tensor(feat), torch.tensor(w), torch.tensor(y), 0.35, 30.0)
    assert got.item() == pytest.approx(want, rel=1e-6)
    with pytest.raises(ValueError, match="class index"):
        losses.cosface_loss(torch.tensor(feat), torch.tensor(w), torch.tensor([0, -1, 2]))


def test_rmse_ccc_loss_is_the_mean_rmse_plus_one_minus_the_mean_ccc():
    p = np.array([[0.1, 0.5], [0.4, -0.2], [-0.3, 0.0], [0.8, 0.3]])
    t = np.array([[0.0, 0.4], [0.5, -0.1], [-0.2, 0.2], [0.6, 0.1]])

    def ccc(a, b):
        return (
            2
            * np.mean((a - a.mean()) * (b - b.mean()))
            / (a.var() + b.var() + (a.mean() - b.mean()) ** 2)
        )

    rmse = np.mean([np.sqrt(np.mean((p[:, d] - t[:, d]) ** 2)) for d in range(2)])
    want = rmse + 1 - np.mean([ccc(p[:, d], t[:, d]) for d in range(2)])
    got = losses.rmse_ccc_loss(torch.tensor(p), torch.tensor(t))
    assert got.item() == pytest.approx(want, abs=1e-6)


def test_swav_crops_are_seeded_sized_and_in_range():
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    a = pretrain.swav_crops(images, torch.Generator().manual_seed(1), 2, 6, 32, 16)
    b = pretrain.swav_crops(images, torch.Generator().manual_seed(1), 2, 6, 32, 16)
    assert [x.shape for x in a[0]] == [(3, 3, 32, 32)] * 2
    assert [x.shape for x in a[1]] == [(3, 3, 16, 16)] * 6
    for x, y in zip(a[0] + a[1], b[0] + b[1], strict=True):
        assert torch.equal(x, y)
        assert x.min() >= 0 and x.max() <= 1
    assert not torch.equal(a[0][0], a[0][1])  # two views differ


def test_the_swav_step_is_finite_and_leaves_the_prototypes_still_in_the_first_epoch():
    cfg = models.ModelConfig(backbone="compact")
    torch.manual_seed(0)
    net = pretrain.SwAVNet(cfg, n_prototypes=5, proj_dim=8, hidden=16)
    batch = {"image": torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)}
    opts = dict(pretrain.SWAV.options)
    for epoch, frozen in ((1, True), (2, False)):
        net.zero_grad()
        ctx = StepContext(epoch, 0, 2, torch.device("cpu"), opts)
        loss, logs = pretrain.SWAV.loss(net, batch, {}, ctx)
        loss.backward()
        assert torch.isfinite(loss)
        assert (net.prototypes.weight.grad is None) == frozen
        # renormalised to the unit sphere before the step
        norms = net.prototypes.weight.detach().norm(dim=1)
        torch.testing.assert_close(norms, torch.ones(5))


def test_warmup_then_cosine_schedule_and_defaults_left_out_of_the_record():
    cfg = train.TrainConfig(
        epochs=1, lr_backbone=1.0, lr_heads=2.0, schedule="cosine", warmup_steps=2
    )
    lr = train.lr_schedule(cfg, 6)
    np.testing.assert_allclose(lr[:2, 0], [0.5, 1.0])
    np.testing.assert_allclose(lr[2:, 0], (1 + np.cos(np.pi * np.arange(4) / 4)) / 2)
    np.testing.assert_allclose(lr[:, 1], 2 * lr[:, 0])
    plain = train.TrainConfig(epochs=1).record()
    assert not {"betas", "warmup_steps", "optimizer"} & set(plain)
    assert train.TrainConfig(epochs=1, betas=(0.5, 0.99)).record()["betas"] == [0.5, 0.99]


def test_the_loop_builds_adam_with_its_betas_and_lars():
    net = models.build_model(models.ModelConfig(backbone="compact"))
    adam = train.build_optimizer(net, train.TrainConfig(epochs=1, betas=(0.5, 0.99)))
    assert adam.param_groups[0]["betas"] == (0.5, 0.99)
    lars = train.build_optimizer(net, train.TrainConfig(epochs=1, optimizer="lars"))
    out = net(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))
    out["va"].sum().backward()
    lars.step()
    assert type(lars).__name__ == "LARS"
    with pytest.raises(ValueError, match="optimizer"):
        train.TrainConfig(epochs=1, optimizer="sgd")
