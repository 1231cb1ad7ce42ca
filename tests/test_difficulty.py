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
