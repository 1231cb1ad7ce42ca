import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from torchjd.aggregation import MGDAWeighting

from affectlib import balancing


def test_min_norm_2_matches_a_grid_search():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.normal(size=5), rng.normal(size=5)
        gamma, val = balancing.min_norm_2(torch.tensor(a), torch.tensor(b))
        grid = np.linspace(0, 1, 20001)
        norms = ((grid[:, None] * a + (1 - grid[:, None]) * b) ** 2).sum(axis=1)
        assert val == pytest.approx(min(norms), abs=1e-6)
        assert gamma == pytest.approx(grid[int(np.argmin(norms))], abs=1e-3)


def test_two_orthogonal_unit_gradients_get_equal_weights():
    w = balancing.mgda_weights([torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])])
    assert w.tolist() == pytest.approx([0.5, 0.5])


def test_a_zero_gradient_takes_all_the_weight():
    w = balancing.mgda_weights([torch.tensor([1.0, 2.0]), torch.zeros(2), torch.tensor([0.0, 3.0])])
    assert w.tolist() == pytest.approx([0.0, 1.0, 0.0], abs=1e-6)


@pytest.mark.parametrize("T", [3, 5])
def test_mgda_weights_reach_the_min_norm_point_of_a_generic_solver(T):
    rng = np.random.default_rng(T)
    g = rng.normal(size=(T, 8)) + 0.5
    w = balancing.mgda_weights([torch.tensor(x) for x in g]).numpy()
    assert w.min() >= -1e-9 and w.sum() == pytest.approx(1.0)

    def f(a):
        return float(((a @ g) ** 2).sum())

    ref = minimize(
        f,
        np.full(T, 1 / T),
        bounds=[(0, 1)] * T,
        constraints=[{"type": "eq", "fun": lambda a: a.sum() - 1}],
        method="SLSQP",
        options={"ftol": 1e-12, "maxiter": 500},
    )
    assert f(w) == pytest.approx(ref.fun, rel=1e-4)  # Frank-Wolfe converges as O(1/k)


def test_gradnorm_loss_and_its_gradient_follow_chen_et_al_eq_6_7():
    # shared weight W (scalar in a 1-element tensor); task losses L_t = c_t * W^2
    W = torch.tensor([2.0], requires_grad=True)
    c = torch.tensor([1.0, 3.0])
    weights = torch.tensor([1.0, 0.5], requires_grad=True)
    losses = [c[0] * W.sum() ** 2, c[1] * W.sum() ** 2]
    initial = torch.tensor([8.0, 6.0])  # L_t(0)
    lg = balancing.gradnorm_step(weights, losses, initial, W, alpha=1.5)
    # by hand: dL_t/dW = 2 c_t W = (4, 12); G_t = w_t * |dL_t/dW| = (4, 6)
    G = np.array([4.0, 6.0])
    ratio = np.array([4.0 / 8.0, 12.0 / 6.0])
    r = ratio / ratio.mean()
    target = G.mean() * r**1.5
    assert lg.item() == pytest.approx(np.abs(G - target).sum(), rel=1e-6)
    (grad,) = torch.autograd.grad(lg, weights)
    expected = np.sign(G - target) * np.array([4.0, 12.0])  # target is a constant
    assert grad.tolist() == pytest.approx(expected.tolist(), rel=1e-6)


def test_renormalise_keeps_the_sum_at_the_number_of_tasks():
    w = torch.tensor([0.2, 1.0, 3.0])
    balancing.renormalise(w)
    assert w.sum().item() == pytest.approx(3.0)
    assert (w > 0).all()


@pytest.mark.parametrize("T", [2, 3, 4])
def test_mgda_weights_agree_with_torchjds_frank_wolfe(T):
    rng = np.random.default_rng(10 + T)
    g = rng.normal(size=(T, 16)) + 0.3
    ours = balancing.mgda_weights([torch.tensor(x) for x in g]).numpy()
    gram = torch.tensor(g @ g.T)
    ref = MGDAWeighting(epsilon=1e-12, max_iters=20000)(gram).numpy()

    def f(a):
        return float(((a @ g) ** 2).sum())

    assert f(ours) == pytest.approx(f(ref), rel=1e-5)
    assert ours == pytest.approx(ref, abs=1e-3)
