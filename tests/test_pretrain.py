"""The two pretraining sources and their cache, and the notebook-03 helpers around Table 1."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as sps

from affectlib import models, pretraining, profiles, stats
from affectlib.data import generate, study, writers
from affectlib.labels import AU_COLUMNS
from affectlib.methods import mfar, pretrain
from affectlib.studies import ssmfar
from affectlib.studies import ssmfar_report as report


@pytest.fixture(scope="module")
def smoke_root() -> Path:
    return generate.ensure(profiles.get("smoke"))


@pytest.fixture
def celeb_root(smoke_root, tmp_path) -> Path:
    """A data root holding a copy of the smoke identity set only (its images may be changed)."""
    shutil.copytree(smoke_root / "celeb", tmp_path / "root" / "celeb")
    return tmp_path / "root"


def fake_trainer(calls: list):
    """Stands in for a pretraining run: records the call and writes a checkpoint whose backbone
    holds one tensor."""

    def train(profile, root, out_dir, seed=0, progress=False):
        calls.append(Path(root))
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        state = {"net.backbone.conv1.weight": torch.full((2, 2), float(len(calls)))}
        torch.save({"model": state}, Path(out_dir) / "checkpoint.pt")
        return {"fake": True}

    return train


# --- the identity set ------------------------------------------------------------------------------
def test_identity_table_has_no_affect_labels_and_ranks_identities(smoke_root):
    table, identity = pretraining.identity_table(smoke_root)
    ids = writers.read_identities(smoke_root / "celeb" / "identities.txt")
    assert len(table) == len(ids) == len(identity)
    assert (table["expr"] == -1).all() and (table[list(AU_COLUMNS)] == -1).all().all()
    assert (table["valence"] == -5).all() and (table["arousal"] == -5).all()
    # class index = rank of the file's identity number
    ranks = pd.Series(ids["identity"]).rank(method="dense").astype(int).to_numpy() - 1
    np.testing.assert_array_equal(identity, ranks)
    assert set(table["split"]) == {"train", "validation"}


def test_identity_net_adds_an_identity_head_on_the_features():
    net = pretrain.IdentityNet(models.ModelConfig(), n_identities=5)
    out = net(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    assert out["identity"].shape == (2, 5) and out["expr"].shape == (2, 8)
    assert [g["name"] for g in models.param_groups(net)] == ["backbone", "heads"]
    with pytest.raises(ValueError, match="at least 2 identities"):
        pretrain.IdentityNet(models.ModelConfig(), n_identities=1)


def test_identity_pretraining_trains_through_fit_and_exports_a_loadable_backbone(
    smoke_root, tmp_path
):
    p = profiles.get("smoke")
    metrics = pretraining.train_identity(p, smoke_root, tmp_path / "run", seed=0)
    ids = writers.read_identities(smoke_root / "celeb" / "identities.txt")
    assert metrics["identities"] == ids["identity"].nunique()
    assert metrics["train_images"] == int((ids["split"] == "train").sum())
    assert 0.0 <= metrics["val_identity_accuracy"] <= 1.0
    history = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert np.isfinite(history["train_loss_identity"]).all()
    dest = pretraining.export_backbone(
        tmp_path / "run" / "checkpoint.pt", tmp_path / "b.safetensors"
    )
    trained = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["model"]
    model = models.MultiTaskNet(models.ModelConfig())
    with pytest.warns(UserWarning, match="missing"):
        report_ = models.load_weights(model, dest, strict=False)
    assert report_.missing and all("head" in k for k in report_.missing)
    torch.testing.assert_close(
        model.backbone.conv1.weight, trained["net.backbone.conv1.weight"], rtol=0, atol=0
    )


def test_export_backbone_refuses_a_checkpoint_without_backbone_weights(tmp_path):
    torch.save({"model": {"expr_head.0.weight": torch.zeros(2)}}, tmp_path / "c.pt")
    with pytest.raises(ValueError, match="no backbone weights"):
        pretraining.export_backbone(tmp_path / "c.pt", tmp_path / "b.safetensors")


# --- the cache -------------------------------------------------------------------------------------
def test_pretrained_weights_are_reused_while_settings_and_images_are_unchanged(
    celeb_root, tmp_path, monkeypatch
):
    calls: list = []
    monkeypatch.setitem(pretraining.TRAINERS, "identity", fake_trainer(calls))
    p = profiles.get("smoke")
    first = pretraining.pretrained_weights("identity", p, celeb_root, cache_dir=tmp_path / "cache")
    again = pretraining.pretrained_weights("identity", p, celeb_root, cache_dir=tmp_path / "cache")
    assert first == again and len(calls) == 1
    assert pretraining.read_record(first)["metrics"] == {"fake": True}
    assert not (first.parent / "run" / "checkpoint.pt").exists()  # only the backbone is kept


def test_pretrained_weights_are_retrained_when_a_setting_or_an_image_changes(
    celeb_root, tmp_path, monkeypatch
):
    calls: list = []
    monkeypatch.setitem(pretraining.TRAINERS, "identity", fake_trainer(calls))
    cache = tmp_path / "cache"
    p = profiles.get("smoke")
    a = pretraining.pretrained_weights("identity", p, celeb_root, cache_dir=cache)
    b = pretraining.pretrained_weights("identity", p.replace(epochs=2), celeb_root, cache_dir=cache)
    image = next((celeb_root / "celeb" / "images").rglob("*.jpg"))
    image.write_bytes(image.read_bytes() + b"\0")  # same labels, other bytes: a re-render
    c = pretraining.pretrained_weights("identity", p, celeb_root, cache_dir=cache)
    assert len(calls) == 3 and len({a, b, c}) == 3
    assert a.parent.name.startswith("identity-smoke-")


def test_pretrained_weights_name_an_unknown_source(celeb_root):
    with pytest.raises(ValueError, match="'celeb'.*identity, affectnet"):
        pretraining.pretrained_weights("celeb", profiles.get("smoke"), celeb_root)


# --- notebook 03: budget, data, weights -------------------------------------------------------------
def test_budget_takes_the_profile_default_and_nonzero_overrides():
    cpu = ssmfar.budget(profiles.get("cpu"))
    assert cpu == ssmfar.BUDGETS["cpu"]
    assert ssmfar.budget(profiles.get("cpu"), epochs=5, image_size=0).epochs == 5
    paper = ssmfar.budget(profiles.get("paper"))
    assert (paper.image_size, paper.epochs, paper.frame_stride) == (224, 50, 1)  # the profile's
    with pytest.raises(KeyError, match="batch"):
        ssmfar.budget(profiles.get("cpu"), batch=3)
    # the cpu budget's own five paired seeds; the smoke budget has none: the profile's one seed
    assert cpu.seeds == (0, 1, 2, 3, 4)
    assert ssmfar.budget(profiles.get("smoke")).seeds == ()


def test_frame_subset_keeps_every_kth_training_frame_and_the_whole_validation(smoke_root, tmp_path):
    assert ssmfar.frame_subset(smoke_root, 1) == smoke_root
    sub_root = ssmfar.frame_subset(smoke_root, 3, tmp_path / "sub")
    full = study.load_dataset(smoke_root, "abaw-mtl").table
    sub = study.load_dataset(sub_root, "abaw-mtl").table
    train = full[full["split"] == "train"]
    assert set(sub.loc[sub["split"] == "train", "path"]) == set(
        train.loc[train["frame"] % 3 == 1, "path"]
    )
    assert (sub["split"] == "validation").sum() == (full["split"] == "validation").sum()
    first = sub["path"].iloc[0]
    assert (study.image_root(sub_root, "abaw-mtl") / first).is_file()


def test_start_weights_prefer_a_given_file_and_need_one_on_real_data(tmp_path):
    given = tmp_path / "w.safetensors"
    given.write_bytes(b"x")
    p = profiles.get("smoke")
    out = ssmfar.start_weights(["identity", "none"], p, None, {"identity": str(given)})
    assert out == {"identity": given, "none": None}
    with pytest.raises(ValueError, match="affectnet_weights"):
        ssmfar.start_weights(["affectnet"], p, None, {"affectnet": ""})
    with pytest.raises(FileNotFoundError, match="nothere"):
        ssmfar.start_weights(["identity"], p, None, {"identity": str(tmp_path / "nothere")})


def test_run_profile_sets_each_rows_backbone_and_weights(tmp_path):
    w = {"identity": tmp_path / "i.safetensors", "affectnet": tmp_path / "a.st", "none": None}
    p = profiles.get("smoke")
    assert ssmfar.run_profile(ssmfar.table1_row("ss-mfar"), p, w).weights == str(w["identity"])
    assert ssmfar.run_profile(ssmfar.table1_row("ssp-mfar-sa"), p, w).weights == str(w["affectnet"])
    r50 = ssmfar.run_profile(ssmfar.table1_row("ss-mfar-50"), p, w)
    assert (r50.backbone, r50.weights) == ("resnet50", None)


# --- notebook 03: summaries ------------------------------------------------------------------------
def _runs() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for method, base in (("mfar", 0.5), ("ss-mfar", 0.6), ("ss-mfar-nokl", 0.6)):
        for seed in (0, 1, 2):
            s = {k: base + 0.01 * seed + rng.normal(0, 0.001) for k in ssmfar.SCORES}
            rows.append(
                {"method": method, "row": ssmfar.table1_row(method).paper_row, "seed": seed, **s}
            )
    return pd.DataFrame(rows)


def test_table1_gives_mean_interval_and_the_papers_number_beside_it():
    runs = _runs()
    t1 = report.table1(runs)
    assert list(t1["method"]) == ["mfar", "ss-mfar", "ss-mfar-nokl"]
    x = runs.loc[runs["method"] == "ss-mfar", "overall"].to_numpy()
    half = sps.t.ppf(0.975, 2) * x.std(ddof=1) / np.sqrt(3)
    r = t1.set_index("method").loc["ss-mfar"]
    assert r["overall"] == pytest.approx(x.mean())
    assert (r["overall lo"], r["overall hi"]) == pytest.approx((x.mean() - half, x.mean() + half))
    assert r["paper: overall"] == pytest.approx(1.119)  # reference/ssmfar_table1.csv
    assert r["paper: expr_f1"] == pytest.approx(0.235)
    assert r["delta: overall"] == pytest.approx(x.mean() - 1.119)


def test_paired_differences_pair_by_seed_and_carry_the_papers_difference():
    runs = _runs()
    pairs = report.paired(runs)
    assert {(a, b) for a, b in zip(pairs["a"], pairs["b"], strict=True)} == {
        ("ss-mfar", "mfar"),
        ("ss-mfar-nokl", "ss-mfar"),
    }
    r = pairs[(pairs["a"] == "ss-mfar") & (pairs["metric"] == "overall")].iloc[0]
    d = (runs[runs["method"] == "ss-mfar"]["overall"].to_numpy()) - (
        runs[runs["method"] == "mfar"]["overall"].to_numpy()
    )
    assert r["diff"] == pytest.approx(d.mean()) and r["seeds"] == 3
    assert r["paper: diff"] == pytest.approx(1.119 - 1.043)


def _judged(paper: float, lo: float, hi: float, claim: str = "", seeds: int = 3, **kw) -> dict:
    """A row of report.paired, its verdict decided by stats.verdict as paired decides it."""
    claim = claim or ("above" if paper > 0 else "below")
    margin = report.EQUIVALENCE_MARGIN["overall"] if claim == "on par" else None
    found = stats.verdict(lo, hi, seeds, margin=margin, **kw)
    return {
        "A": "SS-MFAR",
        "B": "MFAR",
        "metric": "overall",
        "paper: diff": paper,
        "paper: claim": claim,
        "seeds": seeds,
        "diff": (lo + hi) / 2,
        "diff lo": lo,
        "diff hi": hi,
        "verdict": found,
        "paper's claim on our data": stats.claim_verdict(claim, found),
    }


@pytest.mark.parametrize(
    ("paper", "lo", "hi", "words"),
    [
        (0.076, 0.01, 0.03, "the claim holds"),
        (0.076, -0.03, -0.01, "the ordering is reversed"),
        (-0.103, -0.05, 0.02, "no clear difference"),
        (-0.103, -0.05, -0.02, "the claim holds"),
    ],
)
def test_ordering_sentence_says_whether_the_papers_ordering_holds(paper, lo, hi, words):
    sentence = report.ordering_sentence(_judged(paper, lo, hi))
    assert words in sentence and "SS-MFAR vs MFAR (overall)" in sentence
    assert ("above" in sentence) == (paper > 0)


def test_a_difference_between_rows_at_the_floor_is_untestable():
    sentence = report.ordering_sentence(_judged(0.076, 0.01, 0.03, at_floor=True))
    assert "untestable: at the floor" in sentence and "holds" not in sentence


@pytest.mark.parametrize(
    ("lo", "hi", "words"),
    [
        (-0.02, 0.01, "the claim holds"),  # inside the stated margin of 0.05
        (-0.08, 0.01, "equivalence within 0.05 not shown"),  # spans 0, wider than the margin
        (0.01, 0.02, "the claim fails"),  # separated
    ],
)
def test_an_on_par_claim_holds_only_inside_the_stated_margin(lo, hi, words):
    sentence = report.ordering_sentence(_judged(-0.011, lo, hi, claim="on par"))
    assert words in sentence and "on par" in sentence


def test_paired_marks_the_pairs_the_paper_calls_on_par():
    runs = _runs()
    runs = pd.concat([runs, runs[runs["method"] == "ss-mfar-nokl"].assign(method="ssp-mfar")])
    claims = report.paired(runs).groupby("a")["paper: claim"].first().to_dict()
    assert claims == {"ss-mfar": "above", "ss-mfar-nokl": "below", "ssp-mfar": "on par"}


def test_ordering_sentence_with_one_seed_does_not_judge():
    assert "cannot judge" in report.ordering_sentence(_judged(0.1, 0.2, 0.2, seeds=1))


def test_paired_calls_a_pair_untestable_when_a_rows_interval_reaches_chance():
    runs = _runs()  # mfar ~0.5, ss-mfar ~0.6 on every score
    chance = {k: 0.55 for k in ssmfar.SCORES}
    pairs = report.paired(runs, chance=chance)
    r = pairs[(pairs["a"] == "ss-mfar") & (pairs["metric"] == "overall")].iloc[0]
    assert r["verdict"] == stats.UNTESTABLE  # mfar's interval lies below 0.55
    clear = report.paired(runs, chance={k: 0.1 for k in ssmfar.SCORES})
    r = clear[(clear["a"] == "ss-mfar") & (clear["metric"] == "overall")].iloc[0]
    assert r["verdict"] == "A higher" and r["paper's claim on our data"] == "holds"
    assert r["detectable"] == pytest.approx((r["diff hi"] - r["diff lo"]) / 2)


def test_thresholds_table_gives_the_share_of_pseudo_labelled_images_passing():
    hist = pd.DataFrame(
        [
            {"method": "ss-mfar", "seed": 0, "epoch": e}
            | {f"train_threshold_{c}": 0.5 for c in mfar.EXPRESSIONS}
            | {f"train_unlabelled_{c}": 4.0 for c in mfar.EXPRESSIONS}
            | {f"train_confident_{c}": float(e) for c in mfar.EXPRESSIONS}
            for e in (1, 2)
        ]
        + [{"method": "mfar", "seed": 0, "epoch": 1}]
    )
    thr = report.thresholds(hist)
    assert set(thr["method"]) == {"ss-mfar"} and len(thr) == 2 * 8
    assert thr.groupby("epoch")["share"].mean().to_dict() == {1: 0.25, 2: 0.5}


def test_train_rows_trains_each_row_and_seed_fresh_and_keeps_its_outputs(tmp_path):
    p = profiles.get("smoke", epochs=1)
    rows = [ssmfar.table1_row("mfar")]
    runs = ssmfar.train_rows(rows, [0], p, None, {"identity": None}, tmp_path, log=None)
    assert runs[["method", "row", "seed"]].to_dict("records") == [
        {"method": "mfar", "row": "MFAR", "seed": 0}
    ]
    run = Path(runs["dir"].iloc[0])
    assert run == tmp_path / "mfar" / "seed0" and not (run / "checkpoint.pt").exists()
    assert np.isfinite(runs[list(ssmfar.SCORES)].to_numpy()).all()
    hist = report.histories(runs)
    assert list(hist["epoch"]) == [1] and hist["overall"].iloc[0] == runs["val_overall"].iloc[0]
    assert runs["split"].iloc[0] == "test" and runs["epoch"].iloc[0] == 1
    assert runs["overall"].iloc[0] != runs["val_overall"].iloc[0]  # another split's frames
    pred = report.predictions(runs)[("mfar", 0)]
    assert pred["expr_prob"].shape[1] == 8 and len(pred["va_pred"]) == len(pred["va_true"])


def test_each_embedded_pretraining_has_its_own_epochs_and_an_override_of_zero_keeps_them():
    cpu = ssmfar.budget(profiles.get("cpu"))
    assert ssmfar.pretraining_epochs(cpu) == {"identity": 10, "affectnet": 24}
    same = ssmfar.budget(profiles.get("smoke"))  # no own AffectNet budget: the identity one's
    assert ssmfar.pretraining_epochs(same) == {"identity": 1, "affectnet": 1}
    assert ssmfar.pretraining_epochs(
        ssmfar.budget(profiles.get("cpu"), affectnet_pretrain_epochs=0)
    ) == {
        "identity": 10,
        "affectnet": 24,
    }
