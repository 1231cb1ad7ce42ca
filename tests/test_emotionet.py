"""TAL EmotioNet 2020 (Wang et al.): its losses, metric, network, method and per-AU selection,
each against a hand computation (numpy, scikit-learn)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score

from affectlib import losses, metrics, models
from affectlib.methods import StepContext, get
from affectlib.studies import au_selection as S
from affectlib.studies import emotionet as E


def _t(x, dtype=torch.float64, grad=False):
    return torch.tensor(x, dtype=dtype, requires_grad=grad)


# --- L_mv: cosine similarity of the two views' classifiers [w, b] -----------------------------------
def test_multiview_loss_is_the_mean_cosine_of_weights_with_bias_appended():
    w1, b1 = np.array([[1.0, 0.0], [1.0, 2.0]]), np.array([0.0, 1.0])
    w2, b2 = np.array([[0.0, 1.0], [-1.0, -2.0]]), np.array([0.0, -1.0])
    # AU 1: [1, 0, 0] . [0, 1, 0] = 0; AU 2: [1, 2, 1] and its negative: cosine -1
    got = losses.multiview_weight_similarity(_t(w1), _t(b1), _t(w2), _t(b2))
    assert got.item() == pytest.approx((0.0 - 1.0) / 2)
    absolute = losses.multiview_weight_similarity(_t(w1), _t(b1), _t(w2), _t(b2), absolute=True)
    assert absolute.item() == pytest.approx(0.5)


def test_multiview_loss_matches_numpy_on_random_classifiers():
    rng = np.random.default_rng(0)
    w1, w2, b1, b2 = (
        rng.normal(size=(5, 7)),
        rng.normal(size=(5, 7)),
        rng.normal(size=5),
        rng.normal(size=5),
    )
    a, b = np.c_[w1, b1], np.c_[w2, b2]
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    got = losses.multiview_weight_similarity(_t(w1), _t(b1), _t(w2), _t(b2))
    assert got.item() == pytest.approx(cos.mean())


def test_multiview_loss_rejects_views_of_different_width():
    with pytest.raises(ValueError, match="must match"):
        losses.multiview_weight_similarity(
            torch.zeros(3, 4), torch.zeros(3), torch.zeros(3, 5), torch.zeros(3)
        )


# --- L_cr: Jensen-Shannon divergence of the views' Bernoulli predictions ---------------------------
def _h(p):
    p = np.asarray(p, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.nan_to_num(p * np.log(p)) - np.nan_to_num((1 - p) * np.log(1 - p))


def test_coregularisation_is_the_bernoulli_jensen_shannon_divergence():
    p1 = np.array([[0.9, 0.2], [0.5, 1.0]])
    p2 = np.array([[0.1, 0.2], [0.5, 0.0]])
    js = _h((p1 + p2) / 2) - (_h(p1) + _h(p2)) / 2
    # identical predictions: 0; opposite certain ones: log 2
    assert js[0, 1] == pytest.approx(0) and js[1, 1] == pytest.approx(np.log(2))
    got = losses.coregularisation_jsd(_t(p1), _t(p2))
    assert got.item() == pytest.approx(js.mean())
    mask = torch.tensor([[True, False], [False, True]])
    assert losses.coregularisation_jsd(_t(p1), _t(p2), mask).item() == pytest.approx(
        (js[0, 0] + js[1, 1]) / 2
    )


def test_coregularisation_passes_gradients_to_both_views_and_rejects_logits():
    p1, p2 = _t([[0.7, 0.4]], grad=True), _t([[0.3, 0.4]], grad=True)
    losses.coregularisation_jsd(p1, p2).backward()
    assert p1.grad[0, 0] != 0 and p2.grad[0, 0] != 0 and p1.grad[0, 1] == 0
    with pytest.raises(ValueError, match="probabilities"):
        losses.coregularisation_jsd(_t([[2.0]]), _t([[0.5]]))


# --- batch balancing (§2.3) -------------------------------------------------------------------------
def test_batch_balancing_keeps_18_of_90_negatives_beside_10_positives_as_the_paper_says():
    target = torch.zeros(100, 3, dtype=torch.long)
    target[:10, 0] = 1  # 0.2 * 90 = 18 > 10: 18 negatives kept
    target[:30, 1] = 1  # 0.2 * 70 = 14 <= 30: every negative kept
    target[:5, 2] = -1  # 95 negatives, 0 positives: 0.2 * 95 = 19 kept; unlabelled never
    mask = losses.batch_balance_mask(target, 0.2, torch.Generator().manual_seed(0))
    assert mask[:10, 0].all() and int(mask[10:, 0].sum()) == 18
    assert mask[:, 1].all()
    assert not mask[:5, 2].any() and int(mask[5:, 2].sum()) == 19


def test_batch_balancing_draws_the_kept_negatives_at_random():
    target = torch.zeros(50, 1, dtype=torch.long)
    target[0, 0] = 1
    a = losses.batch_balance_mask(target, 0.2, torch.Generator().manual_seed(1))
    b = losses.batch_balance_mask(target, 0.2, torch.Generator().manual_seed(2))
    assert int(a.sum()) == int(b.sum()) == 1 + 10 and not torch.equal(a, b)


def test_masked_bce_averages_over_kept_labelled_entries():
    logits = np.array([[0.0, 2.0], [-1.0, 1.0]])
    target = np.array([[1, 0], [-1, 1]])
    mask = np.array([[True, False], [True, True]])
    # kept and labelled: (0, 0) target 1 and (1, 1) target 1
    bce = lambda z, y: (
        -(y * np.log(1 / (1 + np.exp(-z))) + (1 - y) * np.log(1 - 1 / (1 + np.exp(-z))))
    )  # noqa: E731
    want = (bce(0.0, 1) + bce(1.0, 1)) / 2
    got = losses.masked_au_bce(_t(logits), torch.tensor(target), torch.tensor(mask))
    assert got.item() == pytest.approx(want)


# --- the metric: final score per AU (§3) ------------------------------------------------------------
def test_emotionet_per_au_is_half_f1_plus_accuracy_as_scikit_learn_computes():
    rng = np.random.default_rng(3)
    t, p = rng.integers(0, 2, (40, 3)), rng.integers(0, 2, (40, 3))
    t[:5, 1] = -1
    got = metrics.emotionet_per_au(t, p)
    for j in range(3):
        keep = t[:, j] != -1
        want = 0.5 * (f1_score(t[keep, j], p[keep, j]) + accuracy_score(t[keep, j], p[keep, j]))
        assert got[j] == pytest.approx(want)
    assert got.mean() == pytest.approx(metrics.emotionet_score(t, p))


# --- the network and the method ---------------------------------------------------------------------
def _net(n_au=4):
    cfg = models.ModelConfig(n_au=n_au, feature_scale=16.0, small_input=True, stem_stride=2)
    views = [dataclasses.replace(cfg, backbone=b) for b in ("compact", "shufflenet_v2_x0_5")]
    torch.manual_seed(0)
    return models.MultiViewAUNet(views)


def test_multiview_net_outputs_the_mean_of_the_views_probabilities():
    net = _net().eval()
    out = net(torch.randint(0, 255, (3, 3, 32, 32), dtype=torch.uint8))
    assert out["au_views"].shape == (3, 2, 4)
    mean = out["au_views"].sigmoid().mean(dim=1)
    torch.testing.assert_close(out["au"].sigmoid(), mean, atol=1e-6, rtol=1e-5)
    # views of different widths share one classifier width (the L_mv needs it)
    (w1, _), (w2, _) = net.classifiers()
    assert w1.shape == w2.shape == (4, 256)


@pytest.mark.parametrize("name", ["tal-mvcr", "tal-mvcr-nomv", "tal-mvcr-nocr", "tal-mvcr-nobb"])
def test_tal_methods_give_a_finite_loss_that_reaches_both_views(name):
    spec = get(name)
    net = _net(n_au=3)
    au = torch.tensor([[1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 0, 0]], dtype=torch.float32)
    batch = {
        "weak": torch.randint(0, 255, (4, 3, 32, 32), dtype=torch.uint8),
        "weak_flipped": torch.zeros(4, dtype=torch.bool),
        "au": au,
        "au_mask": torch.ones(4, 3, dtype=torch.bool),
        "has_au": torch.ones(4, dtype=torch.bool),
    }
    ctx = StepContext(1, 0, 1, torch.device("cpu"), spec.options)
    loss, logs = spec.loss(net, batch, {}, ctx)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(v.au_head.weight.grad is not None for v in net.views)
    assert ("loss_mv" in logs) == (spec.options["lambda_mv"] > 0)
    assert ("loss_cr" in logs) == (spec.options["lambda_cr"] > 0)


def test_full_loss_adds_the_four_terms_with_unit_weights():
    spec = get("tal-mvcr")
    options = {**spec.options, "balance": False}
    net = _net(n_au=2).eval()  # eval: no dropout, so two forward passes agree
    batch = {
        "weak": torch.randint(0, 255, (3, 3, 32, 32), dtype=torch.uint8),
        "weak_flipped": torch.zeros(3, dtype=torch.bool),
        "au": torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]),
        "au_mask": torch.ones(3, 2, dtype=torch.bool),
        "has_au": torch.ones(3, dtype=torch.bool),
    }
    loss, logs = spec.loss(net, batch, {}, StepContext(1, 0, 1, torch.device("cpu"), options))
    parts = ("loss_bce_view1", "loss_bce_view2", "loss_mv", "loss_cr")
    assert loss.item() == pytest.approx(sum(logs[k].item() for k in parts), rel=1e-5)


def test_pose_labels_swap_on_flipped_images():
    spec = get("tal-mvcr")
    cols = ["AU51", "AU52", "AU55", "AU56"]
    batch = {
        "au": torch.tensor([[1.0, 0.0, 0.0, 1.0]]),
        "au_mask": torch.ones(1, 4, dtype=torch.bool),
        "has_au": torch.ones(1, dtype=torch.bool),
        "weak_flipped": torch.tensor([True]),
    }
    from affectlib.methods.emotionet import _targets

    got = _targets(batch, {**spec.options, "au_columns": cols})
    torch.testing.assert_close(got, torch.tensor([[0.0, 1.0, 1.0, 0.0]]))


# --- per-AU selection (§2.4) ------------------------------------------------------------------------
def _toy():
    # 2 AUs, 3 epochs, 4 images. AU1 is right at epoch 1 only, AU2 at epoch 3 only.
    true = np.array([[1, 0], [0, 1], [0, 0], [1, 1]])
    right = true * 0.9 + 0.05
    wrong = 1 - right
    probs = np.stack(
        [
            np.c_[right[:, 0], wrong[:, 1]],
            np.c_[wrong[:, 0], wrong[:, 1]],
            np.c_[wrong[:, 0], right[:, 1]],
        ]
    )
    return true, probs


def test_per_au_epochs_pick_each_aus_own_best_and_the_baseline_the_best_average():
    true, probs = _toy()
    curves = S.epoch_curves(true, probs)
    # a perfect AU scores (1 + 1) / 2 = 1; a fully wrong one (0 + 0) / 2 = 0
    np.testing.assert_allclose(curves, [[1, 0], [0, 0], [0, 1]])
    assert S.average_epoch(curves) == 0  # epochs 1 and 3 tie at 0.5: the earlier
    np.testing.assert_array_equal(S.per_au_epochs(curves), [0, 2])
    sel = S.select(true, probs)
    assert sel.kept() == [1, 3]
    scores = S.strategy_scores(sel, true, probs)
    assert scores["baseline"]["final"] == pytest.approx(0.5)
    assert scores["chosen"]["final"] == pytest.approx(1.0)


def test_assemble_reads_each_au_from_its_own_epoch():
    probs = np.arange(2 * 3 * 2).reshape(2, 3, 2).astype(float)
    got = S.assemble(probs, np.array([1, 0]))
    np.testing.assert_array_equal(got, np.c_[probs[1, :, 0], probs[0, :, 1]])


def test_per_au_threshold_maximises_the_final_score_and_prefers_0_5_on_ties():
    true = np.array([[1, 0], [1, 0], [0, 0], [0, 1]])
    prob = np.array([[0.3, 0.1], [0.35, 0.1], [0.2, 0.1], [0.1, 0.9]])
    th = S.per_au_thresholds(true, prob)
    # AU a: any threshold in [0.2, 0.3) separates perfectly -> the one closest to 0.5: 0.25;
    # AU b: every threshold in [0.1, 0.9) is perfect -> 0.5 itself
    np.testing.assert_allclose(th, [0.25, 0.5])


def test_floors_match_hand_computed_label_blind_scores():
    true = np.array([[1, 0], [0, 0], [0, 0], [0, 1]])  # prevalences 0.25, 0.25
    f = E.floors(true)
    assert f["nothing"] == pytest.approx(0.5 * 0.75)
    assert f["everything"] == pytest.approx(0.5 * (0.5 / 1.25 + 0.25))
    assert f["chance"] == pytest.approx(0.5 * (0.25 + 0.0625 + 0.5625))
    pred = np.zeros_like(true)
    assert f["nothing"] == pytest.approx(metrics.emotionet_score(true, pred))
    # each predictor's F1 and accuracy, against scikit-learn on the predictions themselves
    from sklearn.metrics import accuracy_score, f1_score

    for name, guess in (("nothing", np.zeros_like(true)), ("everything", np.ones_like(true))):
        f1 = np.mean([f1_score(true[:, j], guess[:, j], zero_division=0) for j in range(2)])
        acc = np.mean([accuracy_score(true[:, j], guess[:, j]) for j in range(2)])
        assert f[f"{name}_f1"] == pytest.approx(f1) and f[f"{name}_accuracy"] == pytest.approx(acc)
        assert f[name] == pytest.approx(0.5 * (f1 + acc))
    assert f["chance_f1"] == pytest.approx(0.25) and f["chance_accuracy"] == pytest.approx(0.625)


# --- the report: gains paired by seed ---------------------------------------------------------------
def _scores():
    from affectlib.studies.emotionet import BASELINE

    rows = []
    gains = {"baseline": 0.0, "chosen": 0.05, "chosen-threshold": 0.06}
    for seed, base in zip((0, 1, 2), (0.70, 0.72, 0.71), strict=True):
        for strategy, g in gains.items():
            for split, shrink in (("B", 1.0), ("test", 0.2)):
                final = base + g * shrink + 0.001 * seed * (strategy == "chosen")
                rows.append(
                    {
                        "group": "facial",
                        "arm": BASELINE,
                        "seed": seed,
                        "strategy": strategy,
                        "split": split,
                        "f1": final,
                        "accuracy": final,
                        "final": final,
                        "kept": 1,
                    }
                )
    import pandas as pd

    blind = {"nothing": 0.375, "everything": 0.325, "chance": 0.4, "floor": 0.4}
    blind |= {"nothing_f1": 0.0, "everything_f1": 0.5, "chance_f1": 0.25}
    blind |= {"nothing_accuracy": 0.75, "everything_accuracy": 0.15, "chance_accuracy": 0.55}
    floors = pd.DataFrame(
        [{"group": "facial", "split": s, "aus": 2, **blind} for s in ("B", "test")]
    )
    return pd.DataFrame(rows), floors


def test_selection_bias_is_the_gain_on_b_minus_the_gain_on_test_paired_by_seed():
    from affectlib.studies import emotionet_report as R

    scores, floors = _scores()
    bias = R.selection_bias(scores, floors, ["facial"]).set_index("strategy")
    # chosen: gain on B 0.05 + 0.001 * seed, on test 0.01 + 0.001 * seed -> bias 0.04 exactly
    assert bias.loc["chosen", "bias"] == pytest.approx(0.04)
    assert bias.loc["chosen", "gain B"] == pytest.approx(0.051)
    assert bias.loc["chosen-threshold", "bias"] == pytest.approx(0.048)
    t1 = R.table1(scores, floors, "facial").set_index("paper row")
    row = t1.loc["Ensemble-multicrop-pretrained-chosen"]
    assert row["compared with"] == "baseline" and row["B: verdict"] == "A higher"
    assert row["paper: gain"] == pytest.approx(0.8361 - 0.8259)
    assert t1.loc["Ensemble", "ours"].startswith("not reproduced")
    # below the paper's rows, the label-blind predictors on each split, one value each
    blind = R.table1(scores, floors, "facial").iloc[-3:]
    assert blind["paper row"].tolist() == ["label-blind"] * 3
    assert blind["ours"].tolist() == list(R.FLOOR_ROWS.values())
    assert blind["B: final"].tolist() == ["0.3750", "0.3250", "0.4000"]
    assert blind["test: f1"].tolist() == ["0.0000", "0.5000", "0.2500"]
    t3 = R.table3(scores, floors)  # the full method's row, then the label-blind rows
    assert t3["variant"].tolist()[1:] == [f"label-blind: {w}" for w in R.FLOOR_ROWS.values()]
    said = R.claims({"facial": R.table1(scores, floors, "facial")}, t3, bias.reset_index())
    assert len(said) == 2 + len(bias)  # the label-blind rows make no claim


def test_figure_2_draws_the_label_blind_floor_of_the_average_and_legends_below_the_panels():
    import matplotlib.pyplot as plt

    from affectlib.studies import emotionet_report as R

    true = np.array([[1, 0], [0, 0], [0, 0], [0, 1]])  # prevalences 0.25: floor 0.45 (chance)
    probs = np.stack([np.full((4, 2), 0.2), np.where(true == 1, 0.9, 0.1)])  # epoch 2 is perfect
    run = E.RunPredictions(("AU1", "AU5"), true, probs, true, probs, 1.0)
    fig = R.plot_figure2(run, {0: run})
    left = fig.axes[0]
    dotted = [ln for ln in left.lines if ln.get_linestyle() == ":"]
    assert len(dotted) == 1 and dotted[0].get_ydata()[0] == pytest.approx(E.floors(true)["floor"])
    assert dotted[0].get_label() == "label-blind floor of the average"
    fig.canvas.draw()
    for ax in fig.axes:  # each legend hangs below its axis, clear of every point
        box, legend = ax.get_window_extent(), ax.get_legend().get_window_extent()
        assert legend.y1 < box.y0
    plt.close(fig)


# --- train.fit keeps every epoch's predictions when asked ------------------------------------------
def test_fit_writes_every_epochs_predictions_on_validation_and_test(tmp_path):
    import pandas as pd

    from affectlib import train
    from affectlib.data import assembly, datasets

    n = 8
    table = pd.DataFrame(
        {
            "expr": -1,
            "AU1": [1, 0, 1, 0, 1, 0, 0, 0],
            "AU2": [0, 0, 1, 1, 0, 1, 0, 0],
            "valence": -5.0,
            "arousal": -5.0,
        }
    )
    images = np.random.default_rng(0).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    loader = lambda s: datasets.BatchLoader(table, images, s, 4)  # noqa: E731
    data = assembly.TrainData(
        train=datasets.BatchLoader(table, images, datasets.RandomSampler(n, 0), 4, drop_last=True),
        val=loader(datasets.SequentialSampler(n)),
        test=loader(datasets.SequentialSampler(n)),
        train_table=table,
        score=E.b_scores,
        select="final",
    )
    cfg = train.TrainConfig(epochs=2, progress=False, checkpoints=False, epoch_predictions=True)
    train.fit(_net(n_au=2), get("tal-mvcr"), data, cfg, tmp_path / "run")
    run = E.read_epochs(tmp_path / "run", 2, ("AU1", "AU2"))
    assert run.probs_b.shape == run.probs_test.shape == (2, n, 2)
    np.testing.assert_array_equal(run.true_b, table[["AU1", "AU2"]].to_numpy())
    # validation and test are the same images here: one model per epoch predicts both alike
    np.testing.assert_allclose(run.probs_b, run.probs_test)
    assert not np.allclose(run.probs_b[0], run.probs_b[1])
