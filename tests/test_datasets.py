"""Tests for affectlib.data.datasets: the batch dict, its masks, samplers, clips and resumption."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch

from affectlib import profiles
from affectlib.data import generate, study
from affectlib.data.cache import ImageCache
from affectlib.data.datasets import (
    AffectDataset,
    BatchLoader,
    ClassBalancedSampler,
    InverseFrequencySampler,
    RandomSampler,
    SequentialSampler,
    TaskLabels,
    video_clips,
)
from affectlib.labels import AU_COLUMNS

COLS = ("AU1", "AU2", "AU4")


def tiny_table(
    expr: list[int],
    aus: list[tuple[int, ...]],
    va: list[tuple[float, float]],
    video: list[str] | None = None,
    frame: list[int] | None = None,
) -> pd.DataFrame:
    n = len(expr)
    data = {
        "path": [f"img{i}.jpg" for i in range(n)],
        "video": video if video is not None else ["v"] * n,
        "frame": frame if frame is not None else list(range(1, n + 1)),
        "expr": expr,
        **{c: [a[j] for a in aus] for j, c in enumerate(COLS)},
        "valence": [v for v, _ in va],
        "arousal": [a for _, a in va],
        "ann_file": ["ann.txt"] * n,
        "ann_line": list(range(2, n + 2)),
    }
    return pd.DataFrame(data)


def row_images(n: int, size: int = 4) -> np.ndarray:
    # image i is filled with the value i: a batch's image tells which row it came from
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 3, size, size))


@pytest.fixture
def table() -> pd.DataFrame:
    return tiny_table(
        expr=[0, -1, 4, 4, 7, -1],
        aus=[(1, 0, 1), (-1, -1, -1), (0, 0, 0), (1, -1, 0), (-1, -1, -1), (0, 1, 1)],
        va=[(0.5, -0.25), (-5, -5), (1.0, -1.0), (-5, -5), (0.0, 0.1), (-0.3, 0.9)],
    )


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[pd.DataFrame, ImageCache]:
    tmp = tmp_path_factory.mktemp("smoke")
    root = generate.ensure(profiles.get("smoke"), root=tmp / "data")
    table = study.load_dataset(root, "abaw-mtl").table
    cache = ImageCache.build(
        table, study.image_root(root, "abaw-mtl"), cache_dir=tmp / "cache", progress=False
    )
    return table, cache


def order_of(loader: BatchLoader, epochs: int) -> list[list[int]]:
    return [b["index"].tolist() for _ in range(epochs) for b in loader]


# --- masks and labels -----------------------------------------------------------------------------


def test_masks_match_the_markers(table):
    labels = TaskLabels.from_table(table)
    np.testing.assert_array_equal(labels.has_expr, [True, False, True, True, True, False])
    # ABAW rule: the AU task counts only when every AU column is labelled
    np.testing.assert_array_equal(labels.has_au, [True, False, True, False, False, True])
    np.testing.assert_array_equal(labels.au_mask[3], [True, False, True])
    np.testing.assert_array_equal(labels.has_va, [True, False, True, False, True, True])


def test_masked_labels_are_zero_and_expr_keeps_its_marker(table):
    b = BatchLoader(table, row_images(6), SequentialSampler(6), 6).batch(np.arange(6))
    assert b["expr"].tolist() == [0, -1, 4, 4, 7, -1]
    assert b["au"][1].tolist() == [0, 0, 0] and b["au"][3].tolist() == [1, 0, 0]
    assert b["va"][1].tolist() == [0, 0] and b["va"][3].tolist() == [0, 0]
    np.testing.assert_allclose(b["va"][0].numpy(), [0.5, -0.25])


def test_the_batch_has_the_dtypes_and_shapes_of_the_data_contract(table):
    b = BatchLoader(table, row_images(6), SequentialSampler(6), 4).batch(np.array([5, 0, 2]))
    expected = {
        "image": (torch.uint8, (3, 3, 4, 4)),
        "expr": (torch.int64, (3,)),
        "au": (torch.float32, (3, 3)),
        "au_mask": (torch.bool, (3, 3)),
        "va": (torch.float32, (3, 2)),
        "has_expr": (torch.bool, (3,)),
        "has_au": (torch.bool, (3,)),
        "has_va": (torch.bool, (3,)),
        "index": (torch.int64, (3,)),
    }
    assert {k: (v.dtype, tuple(v.shape)) for k, v in b.items()} == expected


def test_masks_of_the_smoke_set_follow_its_markers(smoke):
    table, cache = smoke
    loader = BatchLoader(table, cache, SequentialSampler(len(table)), 64)
    batches = list(loader)
    cat = {k: torch.cat([b[k] for b in batches]).numpy() for k in batches[0]}
    au = table[list(AU_COLUMNS)].to_numpy()
    np.testing.assert_array_equal(cat["has_expr"], table["expr"].to_numpy() != -1)
    np.testing.assert_array_equal(cat["has_au"], (au != -1).all(axis=1))
    np.testing.assert_array_equal(cat["has_va"], table["valence"].to_numpy() != -5)
    assert 0 < cat["has_expr"].sum() < len(table)  # the smoke set has both kinds of rows


def test_au_columns_can_be_chosen_and_an_absent_one_is_named(table):
    labels = TaskLabels.from_table(table, au_columns=["AU4", "AU1"])
    np.testing.assert_array_equal(labels.au[0], [1, 1])
    np.testing.assert_array_equal(labels.has_au, [True, False, True, True, False, True])
    with pytest.raises(ValueError, match="AU12"):
        TaskLabels.from_table(table, au_columns=["AU1", "AU12"])


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("expr", 8, "'expr' at ann.txt:4"),
        ("AU2", 2, "'AU2' at ann.txt:4"),
        ("valence", 1.5, "'valence' at ann.txt:4"),
        ("arousal", float("nan"), "'arousal' at ann.txt:4"),
        ("arousal", -5.0, "'arousal' at ann.txt:4.*iff valence"),
    ],
)
def test_a_bad_label_is_named_with_its_annotation_line(table, column, value, message):
    bad = table.copy()
    bad[column] = bad[column].astype(float) if isinstance(value, float) else bad[column]
    bad.loc[2, column] = value
    with pytest.raises(ValueError, match=message):
        TaskLabels.from_table(bad)


# --- alignment ------------------------------------------------------------------------------------


def test_the_image_of_each_batch_item_is_the_image_of_its_row(table):
    loader = BatchLoader(table, row_images(6), RandomSampler(6, seed=3), 4)
    for b in loader:
        # image value == row number, and the labels are the same row's
        assert b["image"][:, 0, 0, 0].tolist() == b["index"].tolist()
        assert b["expr"].tolist() == table["expr"].to_numpy()[b["index"].numpy()].tolist()


def test_smoke_batches_carry_the_cached_image_of_their_row(smoke):
    table, cache = smoke
    loader = BatchLoader(table, cache, RandomSampler(len(table), seed=1), 32)
    b = next(iter(loader))
    idx = b["index"].numpy()
    np.testing.assert_array_equal(b["image"].numpy(), cache.images[idx])
    np.testing.assert_array_equal(b["expr"].numpy(), table["expr"].to_numpy()[idx])


def test_a_cache_of_another_table_is_refused(smoke):
    table, cache = smoke
    shuffled = table.iloc[::-1].reset_index(drop=True)
    with pytest.raises(ValueError, match="row 0 is .* in the cache and .* in the table"):
        BatchLoader(shuffled, cache, SequentialSampler(len(table)), 8)
    with pytest.raises(ValueError, match="images for a table"):
        BatchLoader(table.iloc[:5], row_images(6), SequentialSampler(5), 8)


def test_the_map_style_dataset_collates_to_the_same_batch(table):
    images = row_images(6)
    dataset = AffectDataset(table, images)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, sampler=[5, 1, 2, 0])
    got = next(iter(loader))
    want = BatchLoader(table, images, SequentialSampler(6), 4).batch(np.array([5, 1, 2, 0]))
    assert got.keys() == want.keys()
    for k in want:
        assert torch.equal(got[k], want[k]), k


# --- samplers -------------------------------------------------------------------------------------


def test_a_random_epoch_visits_every_row_once_and_depends_on_seed_and_epoch():
    s = RandomSampler(50, seed=7)
    a, b = s.indices(0), s.indices(1)
    assert sorted(a.tolist()) == list(range(50)) and sorted(b.tolist()) == list(range(50))
    assert a.tolist() != b.tolist()
    np.testing.assert_array_equal(a, RandomSampler(50, seed=7).indices(0))
    assert a.tolist() != RandomSampler(50, seed=8).indices(0).tolist()


def test_ranks_partition_the_epoch_into_equal_shares():
    world = 3
    shards = [RandomSampler(10, seed=1, rank=r, world_size=world).indices(4) for r in range(world)]
    assert [len(s) for s in shards] == [4, 4, 4]
    order = RandomSampler(10, seed=1).indices(4)
    padded = np.concatenate([order, order[:2]])  # 12 = 4 per rank, padded from the start
    np.testing.assert_array_equal(np.stack(shards, 1).reshape(-1), padded)
    with pytest.raises(ValueError, match="rank"):
        RandomSampler(10, rank=3, world_size=3)


def test_class_balanced_epochs_hold_every_class_equally_often():
    expr = np.array([0] * 12 + [4] * 3 + [7] * 1 + [-1] * 5)
    s = ClassBalancedSampler(expr, seed=0)
    epoch = s.indices(0)
    assert len(epoch) == 15 and len(s) == 15  # 16 labelled rows // 3 classes = 5 each
    assert Counter(expr[epoch].tolist()) == {0: 5, 4: 5, 7: 5}
    # the 3 rows of class 4 appear once each before any repeats: 5 draws = one pass + 2
    assert Counter(Counter(epoch[expr[epoch] == 4].tolist()).values()) == {2: 2, 1: 1}


def test_class_balanced_can_add_every_unlabelled_row_once():
    expr = np.array([0] * 6 + [4] * 2 + [-1] * 3)
    epoch = ClassBalancedSampler(expr, seed=2, include_unlabelled=True).indices(0)
    unlabelled = sorted(i for i in epoch.tolist() if expr[i] == -1)
    assert unlabelled == [8, 9, 10] and len(epoch) == 4 + 4 + 3


def test_inverse_frequency_probabilities_follow_eq_1_weights():
    expr = np.array([0, 0, 0, 4, -1, -1])
    p = InverseFrequencySampler(expr).probabilities
    # W[c] = N / n[c]: rows of class 0 weigh 1/3 each, the class-4 row 1; normalised: 1/6 and 1/2
    np.testing.assert_allclose(p.to_numpy(), [1 / 6, 1 / 6, 1 / 6, 1 / 2])
    assert p.index.tolist() == [0, 1, 2, 3]
    p = InverseFrequencySampler(expr, include_unlabelled=True).probabilities
    # unlabelled rows keep their share of the table (2/6); labelled ones share the rest
    np.testing.assert_allclose(p.to_numpy(), [1 / 9, 1 / 9, 1 / 9, 1 / 3, 1 / 6, 1 / 6])
    p = InverseFrequencySampler(expr, power=0.0).probabilities
    np.testing.assert_allclose(p.to_numpy(), [0.25] * 4)


def test_inverse_frequency_draws_balance_the_classes():
    expr = np.array([0] * 90 + [3] * 9 + [6] * 1)
    s = InverseFrequencySampler(expr, seed=0, num_samples=30000)
    counts = np.bincount(expr[s.indices(0)], minlength=8)[[0, 3, 6]]
    np.testing.assert_allclose(counts / 30000, [1 / 3] * 3, atol=0.02)
    assert s.indices(1).tolist() != s.indices(0).tolist()


def test_samplers_refuse_expressions_without_labels_or_with_bad_codes():
    with pytest.raises(ValueError, match="no row has an expression"):
        ClassBalancedSampler(np.array([-1, -1]))
    with pytest.raises(ValueError, match="outside"):
        InverseFrequencySampler(np.array([0, 9]))


# --- resumption -----------------------------------------------------------------------------------


def test_a_resumed_loader_continues_with_exactly_the_same_batches(table):
    images = row_images(6)

    def loader() -> BatchLoader:
        return BatchLoader(table, images, RandomSampler(6, seed=5), 4)

    straight = order_of(loader(), epochs=3)  # 2 batches per epoch
    first = loader()
    seen = []
    for i, b in enumerate(first):  # stop inside epoch 0, after its first batch
        seen.append(b["index"].tolist())
        state = first.state_dict()
        if i == 0:
            break
    assert state["epoch"] == 0 and state["position"] == 1
    resumed = loader()
    resumed.load_state_dict(state)
    for _ in range(resumed.epoch, 3):
        seen += [b["index"].tolist() for b in resumed]
    assert seen == straight


def test_after_an_epoch_the_state_points_at_the_next_one(table):
    loader = BatchLoader(table, row_images(6), RandomSampler(6, seed=5), 4)
    list(loader)
    assert loader.state_dict()["epoch"] == 1 and loader.state_dict()["position"] == 0
    loader.set_epoch(0)
    assert order_of(loader, 1) == order_of(
        BatchLoader(table, row_images(6), RandomSampler(6, seed=5), 4), 1
    )


def test_a_state_of_another_batch_size_is_refused(table):
    state = BatchLoader(table, row_images(6), RandomSampler(6), 4).state_dict()
    with pytest.raises(ValueError, match="batch_size=4"):
        BatchLoader(table, row_images(6), RandomSampler(6), 3).load_state_dict(state)


def test_drop_last_drops_the_short_batch(table):
    keep = BatchLoader(table, row_images(6), SequentialSampler(6), 4)
    drop = BatchLoader(table, row_images(6), SequentialSampler(6), 4, drop_last=True)
    assert [len(b["index"]) for b in keep] == [4, 2] and len(keep) == 2
    assert [len(b["index"]) for b in drop] == [4] and len(drop) == 1


# --- sequence mode --------------------------------------------------------------------------------


def clip_table() -> pd.DataFrame:
    video = ["a"] * 5 + ["b"] * 4 + [""] * 2 + ["c"] * 5
    frame = [3, 1, 2, 5, 4] + [1, 2, 3, 4] + [-1, -1] + [1, 2, 4, 5, 6]  # c lacks frame 3
    n = len(video)
    return tiny_table([0] * n, [(0, 0, 0)] * n, [(0.0, 0.0)] * n, video=video, frame=frame)


def test_clips_stay_inside_one_video_in_frame_order():
    table = clip_table()
    clips = video_clips(table, length=3, stride=1)
    video, frame = table["video"].to_numpy(), table["frame"].to_numpy()
    for clip in clips:
        assert len(set(video[clip])) == 1 and video[clip][0] != ""
        assert (np.diff(frame[clip]) == 1).all()
    got = sorted((video[c][0], tuple(frame[c])) for c in clips)
    want = [
        ("a", (1, 2, 3)),
        ("a", (2, 3, 4)),
        ("a", (3, 4, 5)),
        ("b", (1, 2, 3)),
        ("b", (2, 3, 4)),
        ("c", (4, 5, 6)),
    ]
    assert got == want


def test_clips_may_span_gaps_when_allowed_and_stride_spaces_them():
    table = clip_table()
    frame = table["frame"].to_numpy()
    clips = video_clips(table, length=2, allow_gaps=True)  # stride = length: no overlap
    c_clips = [tuple(frame[c]) for c in clips if table["video"][c[0]] == "c"]
    assert c_clips == [(1, 2), (4, 5)]
    with pytest.raises(ValueError, match="no clip of 6 frames"):
        video_clips(table, length=6)


def test_a_clip_batch_has_a_time_axis_and_each_frame_its_row(table):
    table = clip_table()
    clips = video_clips(table, length=3, stride=1)
    loader = BatchLoader(
        table, row_images(len(table)), RandomSampler(len(clips), seed=0), 4, clips=clips
    )
    b = next(iter(loader))
    assert b["image"].shape == (4, 3, 3, 4, 4) and b["va"].shape == (4, 3, 2)
    assert b["au"].shape == (4, 3, 3) and b["has_expr"].shape == (4, 3)
    assert b["image"][:, :, 0, 0, 0].tolist() == b["index"].tolist()
    assert sorted(map(tuple, b["index"].tolist())) == sorted(
        map(tuple, clips[RandomSampler(len(clips), seed=0).indices(0)[:4]].tolist())
    )


def test_smoke_clips_never_cross_videos(smoke):
    table, _ = smoke
    clips = video_clips(table, length=8, stride=4)
    video = table["video"].to_numpy()
    assert len(clips) > 0
    assert all(len(set(video[c])) == 1 for c in clips)
