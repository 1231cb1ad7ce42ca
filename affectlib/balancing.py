"""Multi-task loss balancing: GradNorm and MGDA-UB, the baselines of Kollias et al. Table 5.

Both are written here from their papers, as small functions tested against the papers' update rules.
Two packages were weighed: ``torchjd``'s ``MGDAWeighting`` solves the same min-norm problem (the tests
check our weights against it) but starts from uniform weights instead of the best pair and never stops
at a vertex solution (one task's gradient dominating, common with two tasks): it runs its whole
iteration budget there. ``gradnorm-pytorch`` runs its own backward pass over the summed loss and pulls
in ``accelerate`` and ``huggingface_hub``, where the training loop needs a step that owns its backward.

- MGDA-UB (Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018):
  task weights ``alpha`` on the simplex minimising ``|| sum_t alpha_t g_t ||^2`` where ``g_t`` is the
  gradient of task t's loss with respect to the shared representation Z (the upper bound of §3.3);
  solved with the Frank-Wolfe algorithm of their Algorithm 2, whose line search between two points is
  the closed form of their Algorithm 1.
- GradNorm (Chen et al., "GradNorm: Gradient Normalization for Adaptive Loss Balancing", ICML 2018):
  learnable weights ``w_t``; with ``G_t = || grad_W (w_t L_t) ||`` at the last shared layer ``W``,
  ``r_t = (L_t / L_t(0)) / mean_s (L_s / L_s(0))``, the weights minimise
  ``L_grad = sum_t | G_t - mean(G) * r_t ** alpha |`` (Eq. 6-7; the target is a constant), then are
  renormalised to sum to the number of tasks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def min_norm_2(v1: Tensor, v2: Tensor) -> tuple[float, float]:
    """Sener & Koltun Algorithm 1: ``gamma`` minimising ``|| gamma v1 + (1 - gamma) v2 ||^2`` over
    [0, 1], and the minimum. ``gamma = clip(((v2 - v1) . v2) / ||v1 - v2||^2, 0, 1)``; 0.5 when the
    two vectors are equal."""
    d = v1 - v2
    dd = float(d @ d)
    if dd <= 1e-20:
        gamma = 0.5
    else:
        gamma = min(max(float((v2 - v1) @ v2) / dd, 0.0), 1.0)
    w = gamma * v1 + (1 - gamma) * v2
    return gamma, float(w @ w)


def mgda_weights(grads: Sequence[Tensor], iters: int = 1000, tol: float = 1e-9) -> Tensor:
    """MGDA-UB task weights (on the simplex) for per-task gradients ``grads`` (each flattened to (D,)).

    Frank-Wolfe (Sener & Koltun Algorithm 2): start from the best pair, then repeatedly move towards
    the task whose gradient has the smallest inner product with the current combination, with the
    exact line search of :func:`min_norm_2`. Returns (T,) weights summing to 1."""
    g = torch.stack([x.detach().reshape(-1).double() for x in grads])  # (T, D)
    T = g.shape[0]
    if T == 1:
        return torch.ones(1, dtype=torch.float64)
    M = g @ g.T  # (T, T) Gram matrix
    # initialise with the best pair (their Algorithm 2 starts from the 2-task solution)
    best = (float("inf"), 0, 1, 0.5)
    for i in range(T):
        for j in range(i + 1, T):
            gamma, val = min_norm_2(g[i], g[j])
            if val < best[0]:
                best = (val, i, j, gamma)
    alpha = torch.zeros(T, dtype=torch.float64)
    alpha[best[1]], alpha[best[2]] = best[3], 1 - best[3]
    for _ in range(iters):
        t = int(torch.argmin(M @ alpha))
        # line search between the current point (vector g^T alpha) and vertex t
        v1 = alpha @ M @ alpha  # |a|^2
        v12 = (M @ alpha)[t]  # a . g_t
        v2 = M[t, t]  # |g_t|^2
        denom = v1 + v2 - 2 * v12
        if denom <= 1e-20:
            break
        gamma = float(torch.clamp((v2 - v12) / denom, 0, 1))  # weight on the current point
        new = gamma * alpha
        new[t] += 1 - gamma
        if torch.sum(torch.abs(new - alpha)) < tol:
            alpha = new
            break
        alpha = new
    return alpha


def gradnorm_step(
    weights: Tensor,
    losses: Sequence[Tensor],
    initial_losses: Tensor,
    shared: Tensor,
    alpha: float = 1.5,
) -> Tensor:
    """The GradNorm loss ``L_grad`` for the current step (Chen et al. Eq. 6-7).

    ``weights`` (T,) requires grad; ``losses`` the T task losses (graphs reaching ``shared``, the last
    shared layer's weight); ``initial_losses`` (T,) the losses at the first step. The target
    ``mean(G) * r ** alpha`` is treated as a constant, as the paper prescribes. Back-propagate the
    result into ``weights`` only, step their optimiser, then call :func:`renormalise`."""
    G = torch.stack(
        [
            torch.linalg.vector_norm(
                torch.autograd.grad(w * L, shared, retain_graph=True, create_graph=True)[0]
            )
            for w, L in zip(weights, losses, strict=True)
        ]
    )
    with torch.no_grad():
        ratio = torch.stack([L.detach() for L in losses]) / initial_losses
        r = ratio / ratio.mean()
        target = G.mean() * r**alpha
    return torch.sum(torch.abs(G - target))


def renormalise(weights: Tensor) -> None:
    """In place: ``w <- T * w / sum(w)`` (GradNorm §3.2), keeping the weights positive."""
    with torch.no_grad():
        weights.clamp_(min=1e-4)
        weights.mul_(len(weights) / weights.sum())
