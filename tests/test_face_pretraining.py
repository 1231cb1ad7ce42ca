"""Bulat et al. 2022 (notebook 07): SwAV, CosFace and the VA loss against hand computations; the
SwAV method's pieces; the loop's Adam betas, warm-up and LARS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from affectlib import losses, metrics, models, pretraining, profiles, train
from affectlib.data import disfa, generate
from affectlib.data.parsing import AnnotationError
from affectlib.methods import pretrain
from affectlib.methods.base import StepContext
from affectlib.studies import face_pretraining as fp
from affectlib.studies import face_pretraining_report as report


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


# --- the study: label subsets, budgets, scores, floors, verdicts ----------------------------------
def _table(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "path": [f"{i:04d}.jpg" for i in range(n)],
            "expr": rng.integers(-1, 8, n),
            "valence": rng.uniform(-1, 1, n),
            "arousal": rng.uniform(-1, 1, n),
        }
    )


def test_label_subsets_are_drawn_once_nested_and_blind_to_the_labels():
    t = _table(500)
    s = fp.label_subsets(t, (1.0, 0.1, 0.02), seed=3)
    sizes = s.groupby("fraction").size().to_dict()
    assert sizes == {1.0: 500, 0.1: 50, 0.02: 10}
    small = set(s.loc[s["fraction"] == 0.02, "row"])
    assert small <= set(s.loc[s["fraction"] == 0.1, "row"])
    relabelled = t.assign(expr=t["expr"][::-1].to_numpy())
    pd.testing.assert_frame_equal(s, fp.label_subsets(relabelled, (1.0, 0.1, 0.02), seed=3))
    assert not s.equals(fp.label_subsets(t, (1.0, 0.1, 0.02), seed=4))
    assert len(fp.subset(t, s, 0.1)) == 50


def test_budget_gives_small_subsets_a_smaller_batch_and_more_epochs():
    cfg = fp.StudyConfig(image_size=48, batch_size=32, epochs=4, min_steps=200, lr_backbone=1e-3,
                         lr_heads=1e-2)  # fmt: skip
    assert fp.budget(2500, cfg) == (32, 4)  # 78 steps per epoch: 4 epochs reach 200 steps
    assert fp.budget(250, cfg) == (32, 29)  # 7 steps per epoch
    assert fp.budget(50, cfg) == (16, 67)  # fewer than 3 batches: 50 // 3 = 16, 3 steps per epoch


def test_affect_scores_match_a_hand_computation_and_skip_unlabelled_rows():
    pred = {
        "expr_true": np.array([0, 1, -1, 2]),
        "expr_prob": np.array([[0.9, 0.1, 0], [0.2, 0.7, 0.1], [1, 0, 0], [0.5, 0.4, 0.1]]),
        "va_true": np.array([[0.5, -0.2], [-0.3, 0.4], [-5, -5], [0.1, 0.0]]),
        "va_pred": np.array([[0.4, -0.1], [-0.1, 0.1], [0.9, 0.9], [-0.2, 0.3]]),
    }
    s = fp.affect_scores(pred)
    assert s["accuracy"] == pytest.approx(2 / 3)
    t, p = np.array([0.5, -0.3, 0.1]), np.array([0.4, -0.1, -0.2])
    assert s["valence_rmse"] == pytest.approx(np.sqrt(np.mean((t - p) ** 2)))
    assert s["valence_sagr"] == pytest.approx(2 / 3)
    assert s["valence_pcc"] == pytest.approx(np.corrcoef(t, p)[0, 1])
    want_ccc = 2 * np.cov(t, p, bias=True)[0, 1] / (t.var() + p.var() + (t.mean() - p.mean()) ** 2)
    assert s["valence_ccc"] == pytest.approx(want_ccc)
    assert s["select"] == pytest.approx((2 / 3 + (s["valence_ccc"] + s["arousal_ccc"]) / 2) / 2)


def test_floors_are_the_majority_class_and_the_training_mean():
    train_rows = pd.DataFrame({"expr": [1, 1, 2, -1], "valence": [0.2, 0.4, -5, 0.0],
                               "arousal": [0.1, 0.1, 0.1, -5]})  # fmt: skip
    test_rows = pd.DataFrame({"expr": [1, 2, 2, -1], "valence": [0.5, -0.5, 0.1, -5],
                              "arousal": [0.3, -0.1, -5, 0.2]})  # fmt: skip
    f = fp.floors(train_rows, test_rows)
    assert f["accuracy"] == pytest.approx(1 / 3)
    v_mean = 0.2  # (0.2 + 0.4 + 0.0) / 3
    v = np.array([0.5, -0.5, 0.1])
    assert f["valence_rmse"] == pytest.approx(np.sqrt(np.mean((v - v_mean) ** 2)))
    assert f["valence_sagr"] == pytest.approx(2 / 3)
    assert f["arousal_ccc"] == 0.0


def _runs(gap_full: float, gap_small: float) -> pd.DataFrame:
    rows = []
    for f, gap in ((1.0, gap_full), (0.02, gap_small)):
        for seed, noise in enumerate((0.0, 0.01, -0.01)):
            for init, base in (("random", 0.5), ("face recognition", 0.5), (fp.SSL, 0.5 + gap)):
                m = {k: base + noise for k in fp.METRICS}
                m["valence_rmse"] = m["arousal_rmse"] = 0.5 - (base - 0.5) + noise
                rows.append({"fraction": f, "init": init, "seed": seed, **m})
    return pd.DataFrame(rows)


def test_verdicts_hold_when_self_supervised_is_above_and_its_gap_grows():
    runs = _runs(0.02, 0.10)
    summary = report.summarise(runs)
    floor = {f: dict.fromkeys(fp.METRICS, 0.0) for f in (1.0, 0.02)}
    pairs = report.paired(runs)
    # RMSE is negated: the self-supervised rows have the lower RMSE, so the difference is positive
    rmse = pairs[pairs["metric"] == "valence_rmse"]
    assert (rmse["diff"] > 0).all()
    v = report.verdicts(pairs, report.at_floor(summary, floor))
    assert set(v["claim"]) == {"holds"}
    g = report.gap_growth(runs)
    assert set(g["claim"]) == {"holds"}
    np.testing.assert_allclose(g["growth"], 0.08)
    # at the floor: untestable
    high = {f: dict.fromkeys(fp.METRICS, 0.9) for f in (1.0, 0.02)}
    v = report.verdicts(pairs, report.at_floor(summary, high))
    assert set(v["claim"]) == {"untestable: at the floor"}


# --- ICC(3,1) and the DISFA-format loader ---------------------------------------------------------
def test_icc_3_1_matches_a_hand_anova_and_pingouin():
    t = np.array([0.0, 1, 2, 3, 5, 4, 0, 2])
    p = np.array([0.5, 1, 1.5, 3.5, 4, 4.5, 0.2, 2.4])
    # the two-way ANOVA by hand: rows = targets, columns = the two raters
    y = np.stack([t, p], 1)
    n, k, g = 8, 2, y.mean()
    msr = k * ((y.mean(1) - g) ** 2).sum() / (n - 1)
    sse = ((y - g) ** 2).sum() - k * ((y.mean(1) - g) ** 2).sum() - n * ((y.mean(0) - g) ** 2).sum()
    mse = sse / ((n - 1) * (k - 1))
    want = (msr - mse) / (msr + (k - 1) * mse)
    assert metrics.icc_3_1(t, p) == pytest.approx(want)
    pg = pytest.importorskip("pingouin")
    long = pd.DataFrame({"target": np.tile(np.arange(n), 2), "rater": np.repeat(["t", "p"], n),
                         "score": np.concatenate([t, p])})  # fmt: skip
    icc = pg.intraclass_corr(long, targets="target", raters="rater", ratings="score")
    # ICC(3,1): "ICC3" in pingouin < 0.6, "ICC(C,1)" (consistency, single rater) since
    icc = icc.set_index("Type")["ICC"]
    assert metrics.icc_3_1(t, p) == pytest.approx(icc.get("ICC(C,1)", icc.get("ICC3")))
    # consistency: a constant offset does not change it; undefined cases are NaN
    assert metrics.icc_3_1(t, t + 1.0) == pytest.approx(1.0)
    assert np.isnan(metrics.icc_3_1([1.0, 1.0], [2.0, 2.0]))
    np.testing.assert_allclose(
        metrics.per_au_icc(np.stack([t, -np.ones(8)], 1), np.stack([p, p], 1)),
        [want, np.nan],
    )


def _write_disfa(folder, lines_by_au):
    labels = folder / disfa.LABELS / "SN001"
    labels.mkdir(parents=True)
    for n in disfa.DISFA_AUS:
        (labels / f"SN001_au{n}.txt").write_text(lines_by_au.get(n, "1,0\n2,3\n3,5\n"))
    (folder / "splits.csv").write_text("subject,split\nSN001,train\n")


def test_disfa_loader_reads_the_real_layout_and_rejects_bad_lines_with_their_line(tmp_path):
    _write_disfa(tmp_path, {4: "1,0\n2,x\n3,1\n", 9: "1,0\n2,1\n3,7\n4,1\n"})
    r = disfa.load(tmp_path)
    assert r.rows_read == 4 and r.accepted + r.rejected == r.rows_read
    assert list(r.table["frame"]) == [1]
    assert list(r.table["path"]) == ["SN001/00001.jpg"]
    assert r.table["split"].iloc[0] == "train"
    bad = {(Path(e.file).name, e.line, e.field) for e in r.errors}
    assert ("SN001_au4.txt", 2, "intensity") in bad  # "x"
    assert ("SN001_au9.txt", 3, "intensity") in bad  # 7 > 5
    assert ("SN001_au9.txt", 4, "frame") in bad  # frame 4 only in the AU9 file
    with pytest.raises(AnnotationError, match=r"SN001_au4.txt:2: intensity"):
        disfa.load(tmp_path, strict=True)


def test_disfa_loader_keeps_intensities_and_occurrence_at_two(tmp_path):
    _write_disfa(tmp_path, {})
    r = disfa.load(tmp_path)
    assert r.errors == [] and r.accepted == 3
    np.testing.assert_array_equal(r.intensity[:, 0], [0, 3, 5])
    np.testing.assert_array_equal(r.table["AU1"], [0, 1, 1])
    assert tuple(c for c in r.table.columns if c.startswith("AU")) == disfa.AU_COLUMNS


def test_a_subject_missing_an_au_file_is_rejected_frame_by_frame(tmp_path):
    _write_disfa(tmp_path, {})
    (tmp_path / disfa.LABELS / "SN001" / "SN001_au26.txt").unlink()
    r = disfa.load(tmp_path)
    assert r.accepted == 0 and r.rejected == r.rows_read == 3
    assert all("SN001_au26.txt" in e.reason for e in r.errors)


def test_au_intensity_loss_is_the_squared_error_of_five_sigmoids():
    z = np.array([[0.0, 2.0], [-1.0, 0.5]])
    y = np.array([[2.0, 5.0], [0.0, 3.0]])
    want = np.mean((5 / (1 + np.exp(-z)) - y) ** 2)
    assert losses.au_intensity_loss(torch.tensor(z), torch.tensor(y)).item() == pytest.approx(want)


# --- the two pretraining sources, end to end on the smoke identity set ----------------------------
@pytest.mark.parametrize("source", ["swav", "cosface"])
def test_swav_and_cosface_pretrain_through_fit_and_export_a_loadable_trunk(source, tmp_path):
    root = generate.ensure(profiles.get("smoke"))
    p = profiles.get("smoke", backbone="compact")
    path = pretraining.pretrained_weights(source, p, root, cache_dir=tmp_path)
    record = pretraining.read_record(path)
    assert record["settings"]["source"] == source
    assert 0.0 <= record["metrics"]["val_knn_identity_accuracy"] <= 1.0
    model = models.MultiTaskNet(models.ModelConfig(backbone="compact"))
    with pytest.warns(UserWarning, match="missing"):
        loaded = models.load_weights(model, path, strict=False)
    assert loaded.loaded and all("head" in k for k in loaded.missing)
    # the SwAV settings are the supplement's
    if source == "swav":
        opts = record["settings"]["options"]
        assert (opts["temperature"], opts["epsilon"], opts["n_global"], opts["n_small"]) == (
            0.1, 0.05, 2, 6)  # fmt: skip
        assert pretraining.read_record(path) == record  # cached: a second call reuses the file
        assert pretraining.pretrained_weights(source, p, root, cache_dir=tmp_path) == path
