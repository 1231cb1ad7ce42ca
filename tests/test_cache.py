"""Tests for affectlib.data.cache: decoded once, keyed by the files, rebuilt when they change."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from affectlib import profiles
from affectlib.data import generate, study
from affectlib.data.cache import ImageCache, ImageCacheError, fingerprint


def pixels(seed: int, h: int = 8, w: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_png(root: Path, rel: str, arr: np.ndarray) -> None:
    # PNG is lossless: the cache must hold exactly these pixels
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(root / rel)


def table_of(paths: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {"path": paths, "ann_file": ["ann.txt"] * len(paths), "ann_line": range(2, len(paths) + 2)}
    )


@pytest.fixture
def images(tmp_path: Path) -> tuple[Path, pd.DataFrame, dict[str, np.ndarray]]:
    root = tmp_path / "images"
    arrays = {f"v{i % 2}/{i:05d}.png": pixels(i) for i in range(6)}
    for rel, arr in arrays.items():
        write_png(root, rel, arr)
    # table order differs from file-name order: row i must still be the file of row i
    order = ["v1/00005.png", "v0/00000.png", "v1/00003.png", "v0/00002.png", "v0/00004.png"]
    return root, table_of(order), arrays


def build(root: Path, table: pd.DataFrame, cache_dir: Path, **kw) -> ImageCache:
    return ImageCache.build(table, root, cache_dir=cache_dir, progress=False, **kw)


def test_row_i_of_the_cache_is_the_file_of_table_row_i(images, tmp_path):
    root, table, arrays = images
    cache = build(root, table, tmp_path / "c")
    assert cache.images.shape == (5, 3, 8, 8) and cache.images.dtype == np.uint8
    for i, rel in enumerate(table["path"]):
        np.testing.assert_array_equal(cache.images[i], arrays[rel].transpose(2, 0, 1))
    assert cache.paths == tuple(table["path"])


def test_a_second_build_opens_the_cache_without_decoding(images, tmp_path):
    root, table, _ = images
    first = build(root, table, tmp_path / "c")
    second = build(root, table, tmp_path / "c")
    assert first.built and not second.built
    assert second.fingerprint == first.fingerprint and second.file == first.file
    np.testing.assert_array_equal(np.asarray(second.images), np.asarray(first.images))


def test_the_cache_is_read_only(images, tmp_path):
    root, table, _ = images
    cache = build(root, table, tmp_path / "c")
    with pytest.raises(ValueError):
        cache.images[0, 0, 0, 0] = 1


@pytest.mark.parametrize("key", ["content", "stat"])
def test_changing_an_image_file_rebuilds_the_cache(images, tmp_path, key):
    root, table, _ = images
    old = build(root, table, tmp_path / "c", key=key)
    new_pixels = pixels(99)
    write_png(root, table["path"][2], new_pixels)
    os.utime(root / table["path"][2], ns=(1, 2))  # a different mtime even on coarse clocks
    new = build(root, table, tmp_path / "c", key=key)
    assert new.built and new.fingerprint != old.fingerprint
    np.testing.assert_array_equal(new.images[2], new_pixels.transpose(2, 0, 1))


def test_content_key_detects_a_change_that_keeps_size_and_mtime(images, tmp_path):
    root, table, _ = images
    file = root / table["path"][0]
    keep = file.stat()
    fp_content = fingerprint(table, root, key="content")
    fp_stat = fingerprint(table, root, key="stat")
    data = bytearray(file.read_bytes())
    data[-13] ^= 0xFF  # a byte inside the last chunk: same size
    file.write_bytes(bytes(data))
    os.utime(file, ns=(keep.st_atime_ns, keep.st_mtime_ns))
    assert file.stat().st_size == keep.st_size
    assert fingerprint(table, root, key="content") != fp_content
    # the documented limit of the cheap key
    assert fingerprint(table, root, key="stat") == fp_stat


def test_the_fingerprint_follows_row_order_and_size_but_not_labels(images):
    root, table, _ = images
    fp = fingerprint(table, root)
    assert fingerprint(table.iloc[::-1].reset_index(drop=True), root) != fp
    assert fingerprint(table.iloc[:4], root) != fp
    assert fingerprint(table, root, size=4) != fp
    assert fingerprint(table.assign(expr=3), root) == fp


def test_a_missing_image_is_named_with_its_annotation_line(images, tmp_path):
    root, table, _ = images
    (root / table["path"][3]).unlink()
    with pytest.raises(ImageCacheError, match=r"v0/00002\.png.*ann\.txt:5.*not found"):
        build(root, table, tmp_path / "c")


def test_an_undecodable_image_fails_without_leaving_a_cache(images, tmp_path):
    root, table, _ = images
    (root / table["path"][4]).write_bytes(b"not an image at all")
    with pytest.raises(ImageCacheError, match=r"v0/00004\.png.*ann\.txt:6.*cannot decode"):
        build(root, table, tmp_path / "c")
    assert list((tmp_path / "c").iterdir()) == []  # neither a cache nor a temporary file


def test_a_cache_without_a_complete_sidecar_is_rebuilt(images, tmp_path):
    root, table, _ = images
    cache = build(root, table, tmp_path / "c")
    sidecar = cache.file.with_suffix(".json")
    sidecar.unlink()  # as if the build had been killed before the sidecar was written
    assert build(root, table, tmp_path / "c").built
    meta = json.loads(sidecar.read_text())
    meta["shape"][0] += 1  # a sidecar that does not describe the data file
    sidecar.write_text(json.dumps(meta))
    assert build(root, table, tmp_path / "c").built
    with open(cache.file, "r+b") as f:  # a truncated data file
        f.truncate(10)
    again = build(root, table, tmp_path / "c")
    assert again.built and again.file.stat().st_size == 5 * 3 * 8 * 8


def test_images_of_another_size_are_resized_when_a_size_is_given(tmp_path):
    root = tmp_path / "images"
    write_png(root, "a.png", pixels(0, 8, 8))
    write_png(root, "b.png", np.full((16, 12, 3), 200, np.uint8))
    table = table_of(["a.png", "b.png"])
    with pytest.raises(ImageCacheError, match=r"b\.png.*ann\.txt:3.*16x12.*8x8.*size="):
        build(root, table, tmp_path / "c")
    cache = build(root, table, tmp_path / "c", size=8)
    assert cache.images.shape == (2, 3, 8, 8)
    np.testing.assert_array_equal(cache.images[0], pixels(0, 8, 8).transpose(2, 0, 1))
    assert (cache.images[1] == 200).all()  # a constant image stays constant under resizing
    assert build(root, table, tmp_path / "c", size=(4, 6)).image_size == (4, 6)


def test_grey_and_rgba_images_become_rgb(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    Image.fromarray(np.full((4, 4), 77, np.uint8), mode="L").save(root / "grey.png")
    Image.fromarray(np.full((4, 4, 4), 9, np.uint8), mode="RGBA").save(root / "rgba.png")
    cache = build(root, table_of(["grey.png", "rgba.png"]), tmp_path / "c")
    assert (cache.images[0] == 77).all() and (cache.images[1] == 9).all()


def test_threaded_decoding_gives_the_same_array(images, tmp_path):
    root, table, _ = images
    one = build(root, table, tmp_path / "c1", workers=1)
    three = build(root, table, tmp_path / "c3", workers=3)
    np.testing.assert_array_equal(np.asarray(one.images), np.asarray(three.images))


def test_a_cache_pickles_as_a_reference_to_its_file(images, tmp_path):
    root, table, _ = images
    cache = build(root, table, tmp_path / "c")
    blob = pickle.dumps(cache)
    assert len(blob) < cache.images.nbytes  # the pixels are not in the pickle
    back = pickle.loads(blob)
    np.testing.assert_array_equal(np.asarray(back.images), np.asarray(cache.images))
    assert back.paths == cache.paths


def test_a_table_without_rows_or_paths_is_refused(images, tmp_path):
    root, table, _ = images
    with pytest.raises(ValueError, match="no rows"):
        build(root, table.iloc[:0], tmp_path / "c")
    with pytest.raises(ValueError, match="'path'"):
        build(root, table.drop(columns="path"), tmp_path / "c")
    with pytest.raises(ValueError, match="workers"):
        build(root, table, tmp_path / "c", workers=0)


def test_the_embedded_smoke_set_is_cached_row_for_row(tmp_path):
    root = generate.ensure(profiles.get("smoke"), root=tmp_path / "smoke")
    table = study.load_dataset(root, "abaw-mtl").table
    image_root = study.image_root(root, "abaw-mtl")
    cache = build(image_root, table, tmp_path / "c")
    assert len(cache) == len(table)
    for i in (0, len(table) // 2, len(table) - 1):
        with Image.open(image_root / table["path"][i]) as im:
            expected = np.asarray(im.convert("RGB")).transpose(2, 0, 1)
        np.testing.assert_array_equal(cache.images[i], expected)
