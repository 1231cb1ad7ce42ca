"""Tests for affectlib.data.augment: weak/strong views of uint8 batches and labels under a flip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from affectlib.data import render as R
from affectlib.data.augment import flip_labels, randaugment, seeded_generator, strong, weak
from affectlib.labels import AU_COLUMNS, EMOTIONET_AUS

EMOTIONET_COLUMNS = [f"AU{a}" for a in EMOTIONET_AUS]


def batch(b: int = 6, h: int = 8, w: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 3, h, w), dtype=torch.uint8, generator=g)


def crops_of(image: torch.Tensor, pad: int) -> dict[tuple[int, int, bool], torch.Tensor]:
    """Every crop (dy, dx, flipped) of the reflection-padded image, computed with F.pad."""
    h, w = image.shape[-2:]
    padded = F.pad(image[None].float(), (pad,) * 4, mode="reflect")[0].to(torch.uint8)
    out = {}
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[:, dy : dy + h, dx : dx + w]
            out[(dy, dx, False)] = crop
            out[(dy, dx, True)] = crop.flip(-1)
    return out


# --- weak -----------------------------------------------------------------------------------------


def test_each_weak_item_is_a_reflection_padded_crop_flipped_as_reported():
    x = batch(b=40)
    view = weak(x, seeded_generator(1), pad_fraction=0.125, crop_p=1)  # pad round(8 / 8) = 1 px
    seen = set()
    for i in range(len(x)):
        matches = [k for k, c in crops_of(x[i], 1).items() if torch.equal(c, view.images[i])]
        assert matches, f"item {i} is no crop of its padded image"
        assert {k[2] for k in matches} == {bool(view.flipped[i])}
        seen |= {k[:2] for k in matches}
    assert seen == {(dy, dx) for dy in range(3) for dx in range(3)}  # every offset occurs


def test_weak_defaults_are_ss_mfars_crop_8_px_at_224_on_half_the_items():
    # row r / column c of every item hold r and c, so the centre pixel tells the crop's offset
    n = 224
    grid = torch.arange(n, dtype=torch.uint8)
    image = torch.stack(
        [grid[:, None].expand(n, n), grid[None, :].expand(n, n), grid[:, None].expand(n, n)]
    )
    x = image[None].repeat(300, 1, 1, 1)
    view = weak(x, seeded_generator(0), flip_p=0)
    dy = view.images[:, 0, n // 2, n // 2].long() - n // 2
    dx = view.images[:, 1, n // 2, n // 2].long() - n // 2
    assert int(dy.abs().max()) == 8 and int(dx.abs().max()) == 8  # RandomCrop(224, padding=8)
    still = ((dy == 0) & (dx == 0)).float().mean().item()
    assert 0.4 < still < 0.6  # RandomApply(p=0.5); a drawn offset of (0, 0) is 1 in 289


def test_weak_without_cropping_is_the_input_or_its_mirror():
    x = batch()
    assert torch.equal(
        weak(x, seeded_generator(0), pad_fraction=0.125, crop_p=0, flip_p=0).images, x
    )
    with pytest.raises(ValueError, match="crop_p"):
        weak(x, seeded_generator(0), crop_p=1.5)


def test_weak_keeps_shape_dtype_and_is_reproducible_from_its_generator():
    x = batch(b=16, h=12, w=10)
    a, b = (weak(x, seeded_generator(3), pad_fraction=0.125) for _ in range(2))
    assert a.images.shape == x.shape and a.images.dtype == torch.uint8
    assert a.flipped.dtype == torch.bool and a.flipped.shape == (16,)
    assert torch.equal(a.images, b.images) and torch.equal(a.flipped, b.flipped)
    assert not torch.equal(a.images, weak(x, seeded_generator(4), pad_fraction=0.125).images)


def test_weak_without_padding_is_the_input_or_its_mirror():
    x = batch()
    assert torch.equal(weak(x, seeded_generator(0), pad_fraction=0, flip_p=0).images, x)
    mirrored = weak(x, seeded_generator(0), pad_fraction=0, flip_p=1)
    assert torch.equal(mirrored.images, x.flip(-1)) and bool(mirrored.flipped.all())


def test_weak_flips_about_half_of_a_large_batch():
    flipped = weak(batch(b=2000, h=4, w=4), seeded_generator(0)).flipped
    assert 0.45 < flipped.float().mean().item() < 0.55


def test_the_frames_of_a_clip_share_one_crop_and_flip():
    frame = batch(b=5)
    clips = frame[:, None].repeat(1, 4, 1, 1, 1)  # (B, T, 3, H, W), every frame the same
    view = weak(clips, seeded_generator(2), pad_fraction=0.125)
    assert view.images.shape == clips.shape and view.flipped.shape == (5,)
    assert torch.equal(view.images, view.images[:, :1].expand_as(view.images))


def test_weak_refuses_float_images_and_wrong_shapes():
    with pytest.raises(TypeError, match="uint8"):
        weak(batch().float(), seeded_generator(0))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        weak(batch()[:, :2], seeded_generator(0))
    with pytest.raises(ValueError, match="pad_fraction"):
        weak(batch(), seeded_generator(0), pad_fraction=1.5)


# --- strong ---------------------------------------------------------------------------------------


def test_every_item_draws_its_own_randaugment_ops():
    same = batch(b=1, h=16, w=16).repeat(32, 1, 1, 1)
    out = randaugment(same, seeded_generator(0))
    distinct = {bytes(o.numpy().tobytes()) for o in out}
    # one RandAugment call on the batch would give 1 distinct output; per item, many
    assert len(distinct) > 10


@pytest.mark.parametrize("grouped", [True, False])
def test_an_items_randaugment_does_not_depend_on_the_other_items(grouped):
    x = batch(b=24, h=16, w=16)
    other = x.clone()
    other[1:] = 255 - other[1:]
    a = randaugment(x, seeded_generator(5), grouped=grouped)
    b = randaugment(other, seeded_generator(5), grouped=grouped)
    assert torch.equal(a[0], b[0])
    assert a.dtype == torch.uint8 and a.shape == x.shape


@pytest.mark.parametrize("grouped", [True, False])
def test_randaugment_is_reproducible_and_leaves_the_global_rng_alone(grouped):
    x = batch(b=8, h=16, w=16)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = randaugment(x, seeded_generator(9), grouped=grouped)
    assert torch.equal(torch.rand(3), expected_next)
    assert torch.equal(a, randaugment(x, seeded_generator(9), grouped=grouped))


def test_strong_is_a_crop_and_flip_followed_by_randaugment():
    x = batch(b=8, h=16, w=16)
    view = strong(x, seeded_generator(4))
    g = seeded_generator(4)
    crop = weak(x, g)  # strong draws its crop first, then RandAugment from the same generator
    assert torch.equal(view.flipped, crop.flipped)
    assert torch.equal(view.images, randaugment(crop.images, g))


def test_randaugment_treats_a_clip_as_one_item():
    frame = batch(b=6, h=16, w=16)
    clips = frame[:, None].repeat(1, 3, 1, 1, 1)
    out = strong(clips, seeded_generator(1)).images
    assert out.shape == clips.shape
    assert torch.equal(out, out[:, :1].expand_as(out))


# --- labels under a flip --------------------------------------------------------------------------


def test_flip_swaps_yaw_and_roll_codes_and_keeps_bilateral_aus():
    rng = np.random.default_rng(0)
    au = rng.integers(-1, 2, (5, len(EMOTIONET_COLUMNS)))
    flipped = np.array([True, False, True, False, True])
    out = flip_labels(au, EMOTIONET_COLUMNS, flipped)
    col = {c: j for j, c in enumerate(EMOTIONET_COLUMNS)}
    expected = au.copy()
    for a, b in (("AU51", "AU52"), ("AU55", "AU56")):
        expected[flipped, col[a]] = au[flipped, col[b]]
        expected[flipped, col[b]] = au[flipped, col[a]]
    np.testing.assert_array_equal(out, expected)
    # pitch codes and every bilateral AU stay where they were
    for c in ("AU53", "AU54", "AU1", "AU12", "AU25"):
        np.testing.assert_array_equal(out[:, col[c]], au[:, col[c]])


def test_flip_labels_works_on_tensors_with_a_time_axis():
    cols = ["AU1", "AU51", "AU52", "AU55", "AU56"]
    au = torch.tensor([[[1, 1, 0, 0, 1]] * 2, [[0, 0, 1, 1, 0]] * 2])  # (B=2, T=2, 5)
    out = flip_labels(au, cols, torch.tensor([True, False]))
    assert out.tolist() == [[[1, 0, 1, 1, 0]] * 2, [[0, 0, 1, 1, 0]] * 2]


def test_flip_labels_leaves_abaw_aus_as_they_are():
    au = np.arange(24).reshape(2, 12)
    assert flip_labels(au, AU_COLUMNS, np.array([True, True])) is au


def test_flip_labels_refuses_half_of_a_pose_pair_and_mismatched_shapes():
    with pytest.raises(ValueError, match="only AU51"):
        flip_labels(np.zeros((1, 2)), ["AU1", "AU51"], np.array([True]))
    with pytest.raises(ValueError, match="3 names"):
        flip_labels(np.zeros((1, 2)), ["AU1", "AU2", "AU4"], np.array([True]))


def test_a_flipped_rendered_face_is_the_face_with_mirrored_pose_and_flipped_labels():
    # the renderer draws AUs bilaterally: mirroring the image is the same as mirroring the pose,
    # so AU intensities stay valid and only the yaw/roll codes change sides
    ident = R.sample_identities(3, np.random.default_rng(0))
    for k in R.ASYMMETRIC_KEYS:
        ident[k] = np.zeros_like(ident[k])
    au = np.zeros((3, len(R.RENDER_AUS)))
    au[:, R.RENDER_AUS.index(12)] = [3, 0, 4]
    au[:, R.RENDER_AUS.index(1)] = [0, 2, 3]
    pose = np.array([[25.0, 0.0, 20.0], [-30.0, 10.0, 0.0], [20.0, -5.0, -25.0]])
    mirrored = pose * [-1, 1, -1]
    faces = R.render(ident, au, pose, R.neutral_nuisance(3), 32)
    faces_m = R.render(ident, au, mirrored, R.neutral_nuisance(3), 32)
    x = torch.from_numpy(faces).permute(0, 3, 1, 2).contiguous()
    view = weak(x, seeded_generator(0), pad_fraction=0, flip_p=1)
    np.testing.assert_array_equal(view.images.permute(0, 2, 3, 1).numpy(), faces_m)
    pose_cols = [f"AU{a}" for a in R.POSE_AUS]
    relabelled = flip_labels(R.pose_aus(pose), pose_cols, view.flipped)
    np.testing.assert_array_equal(relabelled, R.pose_aus(mirrored))
    assert relabelled.tolist() != R.pose_aus(pose).tolist()


def test_seeded_generators_from_the_same_keys_draw_the_same_numbers():
    a, b = seeded_generator(0, 3, 17), seeded_generator(0, 3, 17)
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))
    assert not torch.equal(
        torch.rand(4, generator=seeded_generator(0, 3, 18)),
        torch.rand(4, generator=seeded_generator(0, 3, 17)),
    )
