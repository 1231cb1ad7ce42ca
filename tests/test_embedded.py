"""The embedded label story and its files in the real formats."""

import filecmp
import json

import numpy as np
import pandas as pd
import pytest

from affectlib import labels as L
from affectlib import profiles
from affectlib.data import embedded, formats, study
from affectlib.data.generate import ensure, generate


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("embedded")
    generate(out, profiles.get("smoke"), seed=0)
    return out


@pytest.fixture(scope="module")
def cpu_story():
    return embedded.generate_story(profiles.get("cpu"), seed=0)


def test_same_seed_writes_the_same_bytes(smoke_dir, tmp_path):
    generate(tmp_path, profiles.get("smoke"), seed=0)
    files = sorted(p.relative_to(smoke_dir) for p in smoke_dir.rglob("*") if p.is_file())
    assert files
    for rel in files:
        assert filecmp.cmp(smoke_dir / rel, tmp_path / rel, shallow=False), rel


def test_another_seed_gives_other_labels():
    a = embedded.generate_story(profiles.get("smoke"), seed=0).affwild
    b = embedded.generate_story(profiles.get("smoke"), seed=1).affwild
    assert not np.array_equal(a["true_expr"], b["true_expr"])


def test_every_generated_file_is_accepted_by_its_real_format_loader(smoke_dir):
    for fmt in study.DEFAULT_ANNOTATIONS:
        r = study.load_dataset(smoke_dir, fmt)
        assert r.rejected == 0, (fmt, r.errors[:3])
        assert r.accepted == r.rows_read > 0


def test_missing_labels_match_the_ss_mfar_training_rates(cpu_story):
    tr = cpu_story.affwild[cpu_story.affwild["split"] == "train"]
    n = len(tr)
    counts = {
        "expr": int((tr["expr"] == -1).sum()),
        "au": int((tr["AU1"] == -1).sum()),
        "va": int((tr["valence"] == -5).sum()),
    }
    for task, paper in {"va": 38465, "au": 39066, "expr": 51737}.items():
        assert counts[task] == round(paper / 142383 * n), task


def test_both_co_missingness_rules_hold(cpu_story):
    aw = cpu_story.affwild
    assert ((aw["valence"] == -5) == (aw["arousal"] == -5)).all()
    au = aw[list(L.AU_COLUMNS)].to_numpy() == -1
    assert (au.all(axis=1) == au.any(axis=1)).all()


def test_missingness_comes_both_as_whole_videos_and_as_runs_of_frames(cpu_story):
    tr = cpu_story.affwild[cpu_story.affwild["split"] == "train"]
    share = (tr["expr"] == -1).groupby(tr["video"]).mean()
    assert (share == 1).any() and ((share > 0) & (share < 1)).any()


def test_validation_subjects_never_appear_in_training(cpu_story):
    aw = cpu_story.affwild
    assert not set(aw.loc[aw.split == "train", "subject"]) & set(
        aw.loc[aw.split == "validation", "subject"]
    )
    ids = [
        set(t["identity"]) for t in (aw, cpu_story.affectnet, cpu_story.emotionet, cpu_story.rafdb)
    ]
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            assert not ids[i] & ids[j]


def test_truth_table_uses_kollias_affwild2_column_and_du_for_aus_outside_affwild2():
    p = embedded.p_au_truth()
    assert p.loc["Happiness", "AU12"] == pytest.approx(0.82)
    assert p.loc["Disgust", "AU10"] == pytest.approx(0.85)
    assert p.loc["Surprise", "AU5"] == pytest.approx(0.5)  # Aff-Wild2 column lists AU5 for surprise
    assert p.loc["Disgust", "AU9"] == pytest.approx(0.9)  # Du et al. prototypical, not in Aff-Wild2
    assert p.loc["Sadness", "AU17"] == pytest.approx(0.67)  # Du et al. observational fraction
    assert p.loc["Happiness", "AU4"] == pytest.approx(embedded.BASE_RATE)
    assert (p.loc["Neutral"] == embedded.NEUTRAL_RATE).all()


def test_true_au_rates_follow_the_truth_table(cpu_story):
    aw = cpu_story.affwild
    p = embedded.p_au_truth()
    for expr in ("Happiness", "Neutral"):
        rows = aw[aw["true_expr"] == L.expr_index(expr)]
        for au in ("AU12", "AU25"):
            observed = rows[f"true_{au}"].mean()
            assert abs(observed - p.loc[expr, au]) < 0.12, (expr, au, observed)


def test_expressions_persist_over_frames(cpu_story):
    aw = cpu_story.affwild.sort_values(["video", "frame"])
    same = (aw["true_expr"].to_numpy()[1:] == aw["true_expr"].to_numpy()[:-1]).mean()
    assert same > 0.9


def test_annotation_noise_keeps_most_labels_and_changes_some(cpu_story):
    aw = cpu_story.affwild
    lab = aw[aw["expr"] >= 0]
    agree = (lab["expr"] == lab["true_expr"]).mean()
    assert 0.8 < agree < 0.99


def test_per_task_files_merge_to_the_mtl_table(smoke_dir):
    mtl = study.load_dataset(smoke_dir, "abaw-mtl").table
    assert (mtl["split"] == "test").any()  # the held-out split is in the MTL files only
    mtl = mtl[mtl["split"] != "test"]
    parts = [study.load_dataset(smoke_dir, f"abaw-{t}") for t in ("expr", "au", "va")]
    merged = formats.merge_tasks(*parts)
    cols = ["path", "split", "expr", *L.AU_COLUMNS, "valence", "arousal"]
    a = mtl[cols].sort_values(["split", "path"], ignore_index=True)
    b = merged[cols].sort_values(["split", "path"], ignore_index=True)
    # a video with no file for any task is only in the MTL file, and then has no label at all
    only_mtl = ~a["path"].isin(b["path"])
    none = (a["expr"] == -1) & (a["AU1"] == -1) & (a["valence"] == -5)
    assert (none[only_mtl]).all()
    pd.testing.assert_frame_equal(a[~only_mtl].reset_index(drop=True), b, check_dtype=False)


def test_ensure_reuses_an_up_to_date_folder_and_regenerates_a_stale_one(tmp_path):
    p = profiles.get("smoke")
    root = ensure(p, 0, tmp_path / "d")
    stamp = (root / "manifest.json").stat().st_mtime_ns
    assert ensure(p, 0, root) == root
    assert (root / "manifest.json").stat().st_mtime_ns == stamp
    ensure(p.replace(frames_per_video=12), 0, root)
    assert (root / "manifest.json").stat().st_mtime_ns != stamp


def test_ensure_regenerates_when_the_generator_code_changes(tmp_path, monkeypatch):
    from affectlib.data import generate as G

    p = profiles.get("smoke")
    root = ensure(p, 0, tmp_path / "d")
    stamp = (root / "manifest.json").stat().st_mtime_ns
    assert json.loads((root / "manifest.json").read_text())["generator_code"] == (
        G.generator_code_hash()
    )
    monkeypatch.setattr(G, "generator_code_hash", lambda: "edited-renderer")
    ensure(p, 0, root)
    assert (root / "manifest.json").stat().st_mtime_ns != stamp


def test_the_image_of_row_i_was_rendered_from_row_is_parameters(smoke_dir):
    from PIL import Image

    from affectlib.data import render as R
    from affectlib.data.generate import render_plan

    p = profiles.get("smoke")
    plans = render_plan(embedded.generate_story(p, 0), smoke_dir, 0)
    for name, plan in plans.items():
        rows = [0, len(plan.files) // 2, len(plan.files) - 1]
        again = R.render(
            R.take(plan.identity, rows),
            plan.au[rows],
            plan.pose[rows],
            R.take(plan.nuisance, rows),
            p.image_size,
            seed=0,
            au_gain=p.au_gain,
        ).astype(float)
        for k, i in enumerate(rows):
            on_disk = np.asarray(Image.open(plan.files[i]).convert("RGB"), float)
            own = np.abs(on_disk - again[k]).mean()
            other = np.abs(on_disk - again[(k + 1) % len(rows)]).mean()
            assert own < 16 and own < other / 2, (name, i, own, other)


def test_stills_nuisance_scales_the_still_sets_only_and_a_variant_gets_its_own_folder(smoke_dir):
    from affectlib.data.generate import default_root, render_plan

    p = profiles.get("smoke")
    story = embedded.generate_story(p, 0)
    calm = render_plan(story, smoke_dir, 0, nuisance=0.8, stills_nuisance=0.5)
    rough = render_plan(story, smoke_dir, 0, nuisance=0.8, stills_nuisance=1.5)
    # same draws, scaled: blur and sensor noise bounds are 0.018 and 0.03 times the difficulty
    for name in ("affectnet", "emotionet", "rafdb", "celeb"):
        assert rough[name].nuisance["blur"].max() > calm[name].nuisance["blur"].max(), name
        assert rough[name].nuisance["noise"].max() <= 0.03 * 1.5 * 0.8 + 1e-12
        assert calm[name].nuisance["noise"].max() <= 0.03 * 0.5 * 0.8 + 1e-12
    for key, value in calm["affwild2"].nuisance.items():  # the video frames do not change
        np.testing.assert_array_equal(value, rough["affwild2"].nuisance[key], err_msg=key)
    assert default_root(p, 0) != default_root(p.replace(stills_nuisance=1.0), 0)
    assert default_root(p, 0).name == "smoke-seed0"


def test_images_sit_in_the_real_layouts_and_loaders_find_every_one(smoke_dir):
    for fmt in ("abaw-mtl", "affectnet", "emotionet", "rafdb"):
        r = study.load_dataset(smoke_dir, fmt, check_images=True)
        assert r.rejected == 0, (fmt, r.errors[:3])
    assert (smoke_dir / "affwild2" / "cropped_aligned").is_dir()
    assert list((smoke_dir / "rafdb" / "Image" / "aligned").glob("train_*_aligned.jpg"))


def test_generate_refuses_a_foreign_non_empty_folder(tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="not empty"):
        generate(tmp_path, profiles.get("smoke"), 0, images=False)
    assert (tmp_path / "thesis.tex").read_text() == "precious"


def test_regenerating_removes_files_of_the_earlier_version(tmp_path):
    p = profiles.get("smoke")
    generate(tmp_path, p, 0, images=False)
    stale = tmp_path / "affwild2" / "annotations" / "EXPR_Classification_Challenge" / "Train_Set"
    (stale / "999-old.txt").write_text("Neutral\n")
    generate(tmp_path, p, 0, images=False)
    assert not (stale / "999-old.txt").exists()


def test_identity_list_round_trips_and_a_malformed_line_is_named(smoke_dir, tmp_path):
    from affectlib.data.writers import read_identities

    ids = read_identities(smoke_dir / "celeb" / "identities.txt")
    p = profiles.get("smoke")
    assert len(ids) == p.n_pretrain_subjects * p.pretrain_images_per_subject
    assert ids["identity"].nunique() == p.n_pretrain_subjects
    assert (smoke_dir / "celeb" / "images" / ids["path"].iloc[0]).exists()
    bad = tmp_path / "identities.txt"
    bad.write_text("path identity split\na/1.jpg 0 train\nb/2.jpg x train\n")
    with pytest.raises(ValueError, match=r"identities.txt:3:"):
        read_identities(bad)


def test_audit_counts_a_co_missingness_breach_among_the_rejected_rows(tmp_path):
    from affectlib.data import summary

    f = tmp_path / "training_set_annotations.txt"
    aus = ",".join(["0"] * 12)
    partial = ",".join(["-1"] + ["0"] * 11)
    f.write_text(
        "image,valence,arousal,expression,aus\n"
        f"v/00001.jpg,0.1,0.2,1,{aus}\n"
        f"v/00002.jpg,0.1,-5,1,{aus}\n"
        f"v/00003.jpg,0.1,0.2,1,{partial}\n"
    )
    r = formats.load(f, "abaw-mtl")
    rules = summary.comissingness(r.table, r.errors).set_index("rule")
    assert rules["breaches among rejected rows"].tolist() == [1, 1]
    assert not rules["holds"].any()


def test_pressed_and_parted_lips_never_co_occur_and_keep_their_rates(cpu_story):
    """FACS: AU24 (lips pressed) and AU25 (lips parted) are not scored together; AU25 is drawn at
    p / (1 - p(AU24)) so that it keeps its calibrated rate."""
    t = cpu_story.affwild
    assert not ((t["true_AU24"] == 1) & (t["true_AU25"] == 1)).any()
    e = cpu_story.emotionet
    assert not ((e["true_AU24"] == 1) & (e["true_AU25"] == 1)).any()
    # still images: AffectNet-format faces render no AU25 where AU24 is on
    a = cpu_story.affectnet
    assert not ((a["I_AU24"] > 0) & (a["I_AU25"] > 0)).any()


def test_exclusive_rates_keep_every_au_at_its_calibrated_rate():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.6, (3, len(embedded.RENDER_AUS)))
    n = 200_000
    for e in range(3):
        state = rng.random((n, p.shape[1])) < embedded._exclusive_rates(p)[e]
        state = embedded._exclusive(state)
        assert np.allclose(state.mean(0), p[e], atol=0.006)
        i, j = embedded.RENDER_AUS.index(24), embedded.RENDER_AUS.index(25)
        assert not (state[:, i] & state[:, j]).any()
