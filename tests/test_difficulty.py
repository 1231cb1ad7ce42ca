"""The measures of how hard the embedded data set is: the linear read-out of the pixels."""

import numpy as np
import pandas as pd
from PIL import Image

from affectlib import labels as L
from affectlib.data import difficulty


def test_linear_readout_finds_a_label_a_feature_carries_and_not_a_random_one():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 8))
    train = np.arange(2000) < 1000
    carried = (x[:, 0] + 0.3 * rng.normal(size=2000) > 0).astype(int)
    unrelated = rng.integers(0, 2, 2000)
    fit, held_out = difficulty.linear_readout(x, carried, train)
    assert held_out > 0.9 and fit > 0.9
    _, chance = difficulty.linear_readout(x, unrelated, train)
    assert 0.4 < chance < 0.6


def test_linear_readout_leaves_out_unannotated_rows_and_a_split_without_both_classes():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 4))
    train = np.arange(600) < 400
    y = (x[:, 1] > 0).astype(int)
    marked = y.copy()
    marked[::7] = -1  # not annotated: these rows must not count
    keep = marked >= 0
    assert difficulty.linear_readout(x, marked, train) == difficulty.linear_readout(
        x[keep], y[keep], train[keep]
    )
    assert all(np.isnan(difficulty.linear_readout(x, np.zeros(600, int), train)))


def test_pixel_probe_reads_an_au_the_images_show_and_misses_one_they_do_not(tmp_path):
    """Faces whose brightness encodes AU1 and nothing else: AU1 is read out, AU2 is not."""
    rng = np.random.default_rng(2)
    n = 160
    au1, au2 = rng.integers(0, 2, n), rng.integers(0, 2, n)
    rows = []
    for i in range(n):
        path = f"v{i % 8}/{i:05d}.jpg"
        file = tmp_path / "affwild2" / "cropped_aligned" / path
        file.parent.mkdir(parents=True, exist_ok=True)
        level = 70 + 100 * au1[i] + rng.integers(-20, 20)
        Image.fromarray(np.full((16, 16, 3), level, np.uint8)).save(file)
        row = {"path": path, "split": "train" if i < 120 else "validation"}
        for c in L.AU_COLUMNS:
            v = au1[i] if c == "AU1" else au2[i]
            row[c] = row[f"true_{c}"] = v
        rows.append(row)
    (tmp_path / "truth").mkdir()
    pd.DataFrame(rows).to_csv(tmp_path / "truth" / "affwild2.csv.gz", index=False)
    out = difficulty.pixel_probe(tmp_path, size=8).set_index("measure")
    assert list(out.index) == list(L.AU_COLUMNS)
    assert out.loc["AU1", "auc_true"] > 0.95 and out.loc["AU1", "auc_annotated"] > 0.95
    assert out.loc["AU2", "auc_true"] < 0.8


def test_guess_f1_against_hand_computed_cases_and_sklearn():
    from sklearn.metrics import f1_score

    # 10 positives among 40 rows, guessing positive at rate 0.25: TP 2.5, predicted 10 -> 2*2.5/20
    assert difficulty.guess_f1(0.25, np.array(10.0), np.array(40.0)) == 0.25
    # calling every row positive is exactly sklearn's F1 of an all-ones prediction
    y = np.array([1, 0, 0, 1, 0, 0, 0, 1])
    assert np.isclose(
        difficulty.guess_f1(1.0, np.array(3.0), np.array(8.0)), f1_score(y, y * 0 + 1)
    )
    # random guessing at a rate converges to the expectation
    rng = np.random.default_rng(0)
    y = (rng.random(200_000) < 0.2).astype(int)
    guess = (rng.random(200_000) < 0.3).astype(int)
    expected = difficulty.guess_f1(0.3, np.array(y.sum(), float), np.array(len(y), float))
    assert abs(f1_score(y, guess) - expected) < 0.005


def _write_probe_set(tmp_path, n_videos=24, frames=12, seed=3):
    """Faces whose AU1 (and valence) is a dark bar high in the image, AU2 (and arousal) is never
    drawn, and the expression (0 or 3) a bar low in the image; videos 0-15 train, the others
    validation."""
    rng = np.random.default_rng(seed)
    rows = []
    for v in range(n_videos):
        for t in range(frames):
            au1, au2, expr = rng.integers(0, 2), rng.integers(0, 2), 3 * rng.integers(0, 2)
            img = rng.integers(90, 160, (24, 24, 3)).astype(np.uint8)
            if au1:
                img[5:8, 4:20] = 20
            if expr:
                img[17:20, 4:20] = 230
            path = f"v{v}/{t + 1:05d}.jpg"
            file = tmp_path / "affwild2" / "cropped_aligned" / path
            file.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(file, quality=95)
            row = {"path": path, "video": f"v{v}", "split": "train" if v < 16 else "validation"}
            row["expr"] = row["true_expr"] = expr
            for c in L.AU_COLUMNS:
                row[c] = row[f"true_{c}"] = au1 if c == "AU1" else au2
            row["valence"] = row["true_valence"] = 0.5 if au1 else -0.5  # readable
            row["arousal"] = row["true_arousal"] = float(rng.uniform(-0.5, 0.5))  # not readable
            rows.append(row)
    (tmp_path / "truth").mkdir()
    pd.DataFrame(rows).to_csv(tmp_path / "truth" / "affwild2.csv.gz", index=False)


def test_readout_probe_finds_what_the_images_show_and_not_what_they_do_not(tmp_path):
    _write_probe_set(tmp_path)
    out = difficulty.readout_probe(tmp_path, size=24, cell=4, n_boot=200).set_index("measure")
    assert list(out.index) == [*L.AU_COLUMNS, "au_f1", "expr_f1", "va"]
    au1, au2 = out.loc["AU1"], out.loc["AU2"]
    assert au1["probe"] > 0.95 and au1["auc_true"] > 0.95 and au1["learnable"]
    assert au1["beats_all_pos"] and au1["lo"] <= au1["probe"] - au1["chance"] <= au1["hi"]
    assert au2["auc_lo"] < 0.5 < au2["auc_hi"] and not au2["learnable"]
    # expression: classes 0 and 3 are read, the 6 absent classes score 0 -> macro F1 ~ 2/8
    expr = out.loc["expr_f1"]
    assert 0.24 < expr["probe"] <= 0.25 and expr["learnable"]
    # valence is read (CCC near 1), arousal is not (near 0): their mean lies between
    va = out.loc["va"]
    assert 0.35 < va["probe"] < 0.55 and va["lo"] <= va["probe"] <= va["hi"] and va["learnable"]
    # the truth equals the annotation here, so the ceiling is perfect and AU1 is near it
    assert au1["ceiling"] == 1.0 and au1["saturated"] and not au2["saturated"]


def test_readout_probe_leaves_out_unannotated_rows(tmp_path):
    """Validation rows marked unannotated (-1) score as if they were not there; unannotated training
    rows are left out of the fit (both copies share them, so standardisation and fit agree)."""
    _write_probe_set(tmp_path / "full")
    truth = pd.read_csv(tmp_path / "full" / "truth" / "affwild2.csv.gz")
    every5 = np.arange(len(truth)) % 5 == 0
    truth.loc[every5 & (truth["split"] == "train"), list(L.AU_COLUMNS)] = -1
    val_drop = (np.arange(len(truth)) % 3 == 0) & (truth["split"] == "validation").to_numpy()
    marked = truth.copy()
    marked.loc[val_drop, list(L.AU_COLUMNS)] = -1
    marked.to_csv(tmp_path / "full" / "truth" / "affwild2.csv.gz", index=False)
    a = difficulty.readout_probe(tmp_path / "full", size=24, cell=4, n_boot=0)
    sub = tmp_path / "sub"
    (sub / "truth").mkdir(parents=True)
    (sub / "affwild2").symlink_to(tmp_path / "full" / "affwild2")
    truth[~val_drop].to_csv(sub / "truth" / "affwild2.csv.gz", index=False)
    b = difficulty.readout_probe(sub, size=24, cell=4, n_boot=0)
    au = a["measure"].isin(L.AU_COLUMNS)
    cols = ["probe", "chance", "all_pos", "auc_true"]
    pd.testing.assert_frame_equal(a.loc[au, cols], b.loc[au, cols])


def test_group_ccc_equals_the_ccc_of_the_rows_repeated_by_their_group_weight():
    from affectlib import metrics

    rng = np.random.default_rng(4)
    y, p = rng.normal(size=50), rng.normal(size=50)
    p = 0.6 * y + 0.5 * p + 0.2
    group = rng.integers(0, 5, 50)
    w = np.array([2, 0, 1, 1, 3])
    m = difficulty._ccc_moments(y, p, group, 5)
    reps = w[group]
    expected = metrics.ccc(np.repeat(y, reps), np.repeat(p, reps))
    got = difficulty.group_ccc(m, np.stack([w, np.ones(5)]))
    assert np.isclose(got[0], expected) and np.isclose(got[1], metrics.ccc(y, p))


def test_hog_of_images_equals_hog_of_the_same_images_as_files(tmp_path):
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (3, 30, 30, 3), dtype=np.uint8)
    files = []
    for i, im in enumerate(images):
        files.append(tmp_path / f"{i}.png")  # lossless, so both paths see the same pixels
        Image.fromarray(im).save(files[-1])
    a = difficulty.hog_of_images(images, size=24, cell=4)
    assert a.shape == (3, 5 * 5 * 4 * 9) and a.dtype == np.float32
    np.testing.assert_array_equal(a, difficulty.hog_features(files, size=24, cell=4))


def test_subtract_video_median_removes_each_videos_median_by_hand():
    x = np.array([[1.0, 10.0], [3.0, 0.0], [2.0, 5.0], [7.0, 7.0], [9.0, 1.0]], np.float32)
    video = np.array(["b", "a", "b", "b", "a"])
    # video b: rows 0, 2, 3 -> medians (2, 7); video a: rows 1, 4 -> medians (6, 0.5)
    expected = np.array([[-1, 3], [-3, -0.5], [0, -2], [5, 0], [3, 0.5]], np.float32)
    got = difficulty.subtract_video_median(x, video)
    np.testing.assert_array_equal(got, expected)
    assert got is not x and x[0, 0] == 1.0  # the input is left as it was


def test_readout_probe_with_person_norm_still_reads_what_changes_within_videos(tmp_path):
    """AU1 changes frame by frame inside each video, so the per-video median takes nothing of it
    away; the scores differ from the plain read-out's, as the features do."""
    _write_probe_set(tmp_path)
    plain = difficulty.readout_probe(tmp_path, size=24, cell=4, n_boot=0).set_index("measure")
    norm = difficulty.readout_probe(tmp_path, size=24, cell=4, n_boot=0, person_norm=True)
    norm = norm.set_index("measure")
    assert norm.loc["AU1", "auc_true"] > 0.95 and norm.loc["AU1", "probe"] > 0.9
    assert norm.loc["AU2", "auc_true"] < 0.75
    assert not np.isclose(norm.loc["AU2", "auc_true"], plain.loc["AU2", "auc_true"])


def _truth_table() -> pd.DataFrame:
    """6 training rows (expression 3 the most frequent), 4 test rows, every label set."""
    expr = [3, 3, 3, 1, 2, 3, 3, 1, 3, 0]
    split = ["train"] * 6 + ["test"] * 4
    au_test = np.array([[1, 0], [0, 0], [1, 1], [0, 0]])  # AU1, AU2 on the test rows
    rows = []
    for i, (e, s) in enumerate(zip(expr, split, strict=True)):
        row = {"expr": e, "true_expr": e, "split": s, "valence": 0.1 * i, "arousal": -0.1 * i}
        row |= {"true_valence": row["valence"], "true_arousal": row["arousal"]}
        for k, c in enumerate(L.AU_COLUMNS):
            v = int(au_test[i - 6, min(k, 1)]) if s == "test" else i % 2
            row[c] = row[f"true_{c}"] = v
        rows.append(row)
    return pd.DataFrame(rows)


def test_baselines_score_the_majority_class_and_the_all_or_no_au_guesses_by_hand():
    from sklearn.metrics import f1_score

    out = difficulty.baseline_scores(_truth_table(), "test").set_index("baseline")
    assert list(out.index) == ["chance", "majority, no AU", "majority, every AU", "noise ceiling"]
    # test expressions 3, 1, 3, 0 against 3 everywhere: F1 of class 3 = 2*2 / (2*2 + 2) = 2/3,
    # every other of the 8 classes 0
    expected = f1_score([3, 1, 3, 0], [3] * 4, average="macro", labels=range(8), zero_division=0)
    assert expected == (2 / 3) / 8
    assert out.loc["majority, no AU", "expr_f1"] == out.loc["majority, every AU", "expr_f1"]
    assert np.isclose(out.loc["majority, no AU", "expr_f1"], expected)
    # no AU: F1 0; every AU on: AU1 has 2 positives in 4 rows (2*2 / (4+2) = 2/3), the other 11
    # columns follow AU2 (1 positive: 2*1 / (4+1) = 2/5)
    assert out.loc["majority, no AU", "au_f1"] == 0
    assert np.isclose(out.loc["majority, every AU", "au_f1"], (2 / 3 + 11 * 2 / 5) / 12)
    # a constant VA has CCC ~0; the ceiling is the truth itself: AU F1 and CCC 1, expression F1
    # 1 for each of the 3 classes present in the test rows, 0 for the 5 absent (ABAW divides by 8)
    assert abs(out.loc["majority, no AU", "va"]) < 1e-2
    assert np.isclose(out.loc["noise ceiling", "overall"], 3 / 8 + 1 + 1)
    sums = out[["expr_f1", "au_f1", "va"]].sum(axis=1)
    assert np.allclose(sums, out["overall"])
