"""Tests of the parametric face renderer (affectlib.data.render)."""

from __future__ import annotations

import numpy as np
import pytest

from affectlib.data import render as R

SIZE = 48
N_AU = len(R.RENDER_AUS)


def _faces(identity: dict, au: np.ndarray, pose: np.ndarray | None = None, **kw) -> np.ndarray:
    """Render every AU row for one identity row, frontal and clean unless told otherwise."""
    n = len(au)
    pose = np.zeros((n, 3)) if pose is None else pose
    ident = R.take(identity, np.zeros(n, int))
    return R.render(ident, au, pose, R.neutral_nuisance(n), SIZE, **kw).astype(np.int64)


def _one_au(au: int, intensity: float) -> np.ndarray:
    row = np.zeros(N_AU)
    row[R.RENDER_AUS.index(au)] = intensity
    return row


def _random_inputs(n: int, seed: int, difficulty: float = 1.5):
    rng = np.random.default_rng(seed)
    ids = R.sample_identities(n, rng)
    nuis = R.sample_nuisance(n, rng, difficulty=difficulty)
    au = np.where(rng.random((n, N_AU)) < 0.4, rng.uniform(0, 5, (n, N_AU)), 0.0)
    pose = np.clip(rng.normal(0, [25, 15, 12], (n, 3)), -60, 60)
    return ids, au, pose, nuis


def _row_mass(diff: np.ndarray) -> np.ndarray:
    """Absolute difference summed per image row, (H,)."""
    return np.abs(diff).sum(axis=(1, 2)).astype(float)


def _canonical_rows() -> np.ndarray:
    """Canonical face height v of each pixel row for a frontal, centred face."""
    return ((np.arange(SIZE) + 0.5) / SIZE * 2 - 1) / R._FACE_SCALE


# --- shapes, determinism, batching ------------------------------------------------------------
def test_render_returns_uint8_rgb_images_of_the_requested_size():
    ids, au, pose, nuis = _random_inputs(3, seed=0)
    for size in (32, 48):
        img = R.render(ids, au, pose, nuis, size)
        assert img.shape == (3, size, size, 3)
        assert img.dtype == np.uint8


def test_render_of_zero_faces_is_an_empty_batch():
    ids, au, pose, nuis = _random_inputs(0, seed=0)
    assert R.render(ids, au, pose, nuis, SIZE).shape == (0, SIZE, SIZE, 3)


def test_render_gives_the_same_bytes_for_the_same_inputs_and_seed():
    ids, au, pose, nuis = _random_inputs(20, seed=1, difficulty=2.0)
    a = R.render(ids, au, pose, nuis, SIZE, seed=7)
    b = R.render(ids, au, pose, nuis, SIZE, seed=7)
    assert a.tobytes() == b.tobytes()


def test_seed_changes_the_sensor_noise_and_nothing_else():
    ids, au, pose, nuis = _random_inputs(8, seed=2)
    nuis["noise"][:] = 0.02
    a = R.render(ids, au, pose, nuis, SIZE, seed=0)
    b = R.render(ids, au, pose, nuis, SIZE, seed=1)
    assert not np.array_equal(a, b)
    nuis["noise"][:] = 0.0
    a = R.render(ids, au, pose, nuis, SIZE, seed=0)
    b = R.render(ids, au, pose, nuis, SIZE, seed=1)
    assert np.array_equal(a, b)


def test_a_face_renders_the_same_alone_as_in_a_batch_of_any_chunk_size():
    ids, au, pose, nuis = _random_inputs(12, seed=3, difficulty=2.0)
    batch = R.render(ids, au, pose, nuis, SIZE, seed=5, chunk=5)
    for i in range(12):
        sl = slice(i, i + 1)
        alone = R.render(R.take(ids, sl), au[sl], pose[sl], R.take(nuis, sl), SIZE, seed=5)
        assert np.array_equal(batch[i], alone[0]), f"face {i} depends on its batch"


def test_feature_windows_leave_the_image_unchanged(monkeypatch):
    ids, au, pose, nuis = _random_inputs(24, seed=4)
    au[:8] = 5.0  # every feature at its largest
    pose[:8] = [[60, 25, 25], [-60, -25, -25], [45, -25, 25], [-45, 25, -25]] * 2
    windowed = R.render(ids, au, pose, nuis, SIZE)
    monkeypatch.setattr(R, "_USE_WINDOWS", False)
    full = R.render(ids, au, pose, nuis, SIZE)
    assert np.array_equal(windowed, full)


# --- action units -----------------------------------------------------------------------------
UPPER_AUS = (1, 2, 4, 5, 7)
MIDDLE_AUS = (6, 9)
LOWER_AUS = (10, 12, 15, 17, 20, 23, 24, 25, 26)


@pytest.mark.parametrize("au", R.RENDER_AUS)
def test_each_au_at_intensity_5_changes_the_face_where_facs_says(au):
    ident = R.atlas_identity(0)
    img = _faces(ident, np.stack([np.zeros(N_AU), _one_au(au, 5)]))
    mass = _row_mass(img[1] - img[0])
    assert mass.sum() > 255 * 1.5, f"AU{au} barely changes the image"
    v = _canonical_rows()
    eye, nose, mouth = ident["eye_y"][0], ident["nose_v"][0], ident["mouth_v"][0]
    if au in UPPER_AUS:  # brows and lids: above the lower eyelid
        share = mass[v < eye + 0.06].sum() / mass.sum()
    elif au in LOWER_AUS:  # mouth, lips, chin, jaw: below the nose tip
        share = mass[v > nose - 0.02].sum() / mass.sum()
    else:  # cheeks and crow's feet (AU6), nose and lowered brows (AU9): brows to mouth
        share = mass[(v > eye - 0.25) & (v < mouth)].sum() / mass.sum()
    assert share > 0.75, f"AU{au}: only {share:.2f} of the change is in its region"


@pytest.mark.parametrize("au", R.RENDER_AUS)
def test_au_change_grows_with_intensity_and_shows_at_intensity_1(au):
    ident = R.atlas_identity(1)
    img = _faces(ident, np.stack([_one_au(au, k) for k in (0, 1, 3, 5)]))
    mass = [np.abs(img[k] - img[0]).sum() for k in (1, 2, 3)]
    assert mass[0] < mass[1] < mass[2]
    # intensity 1 (FACS trace) is subtle but visible side by side: some pixel moves >= 5 levels
    assert np.abs(img[1] - img[0]).max() >= 5


def test_au26_lowers_the_chin_and_au12_raises_the_lip_corners():
    ident = R.atlas_identity(2)
    img = _faces(ident, np.stack([np.zeros(N_AU), _one_au(26, 5), _one_au(12, 5)]))
    mass26 = _row_mass(img[1] - img[0])
    v = _canonical_rows()
    assert mass26[v > ident["chin_v"][0] - 0.05].sum() > 0  # the jaw outline itself moved
    # a smile shifts lip-corner darkness upwards: the change above the lip line outweighs the one
    # below it in the corner columns
    mouth_row = int(np.argmin(np.abs(v - ident["mouth_v"][0])))
    diff = np.abs(img[2] - img[0]).sum(-1)
    cols = np.r_[: SIZE // 2 - 3, SIZE // 2 + 3 : SIZE]
    assert (
        diff[mouth_row - 4 : mouth_row, cols].sum()
        > diff[mouth_row + 1 : mouth_row + 5, cols].sum()
    )


def _aligned_change(au: int, intensity: float, seed: int) -> np.ndarray:
    """Per-pixel change (max over RGB) of AU ``au`` at ``intensity`` in the aligned 48-px crop."""
    ident = R.atlas_identity(seed)
    au_rows = np.stack([np.zeros(N_AU), _one_au(au, intensity)])
    img = R.render(
        R.take(ident, np.zeros(2, int)), au_rows, np.zeros((2, 3)),
        R.neutral_nuisance(2, aligned=True), SIZE,
    ).astype(np.int64)  # fmt: skip
    return np.abs(img[1] - img[0]).max(-1)


@pytest.mark.parametrize("au", R.RENDER_AUS)
def test_each_au_at_intensity_5_changes_many_pixels_of_the_aligned_48px_face(au):
    # FACS E is the largest the face allows: in the crop the probe trains on, every AU changes at
    # least 25 pixels by 16 levels or more (median over identities); the gains before the
    # calibration gave 16-24 for AU5, 7, 17, 20, 23, 24, 25 in this crop
    changed = np.median([(_aligned_change(au, 5, s) >= 16).sum() for s in range(3)])
    assert changed >= 25, f"AU{au}: only {changed} pixels change"


@pytest.mark.parametrize("au", R.RENDER_AUS)
def test_intensity_1_stays_subtle_next_to_intensity_5(au):
    # displacements are linear in the intensity, so trace (A) carries well under half the change
    # of maximum (E); anti-aliasing keeps the ratio near a fifth
    for s in range(2):
        ratio = _aligned_change(au, 1, s).sum() / _aligned_change(au, 5, s).sum()
        assert 0.05 < ratio < 0.45, f"AU{au}: intensity 1 makes {ratio:.2f} of intensity 5's change"


# --- symmetry and pose ------------------------------------------------------------------------
def _symmetric(identity: dict) -> dict:
    out = {k: v.copy() for k, v in identity.items()}
    for k in R.ASYMMETRIC_KEYS:
        out[k][:] = 0
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frontal_symmetric_face_is_mirror_symmetric_for_every_au(seed):
    ident = _symmetric(R.sample_identities(1, np.random.default_rng(seed)))
    ident["glasses"][:] = 1.0  # glasses and beard must stay symmetric too
    ident["beard"][:] = 0.6
    au = np.vstack([np.zeros(N_AU), np.eye(N_AU) * 5, np.full(N_AU, 3.0)])
    img = _faces(ident, au)
    mirror = img[:, :, ::-1]
    assert np.abs(img - mirror).max() <= 1


def test_flipping_a_symmetric_face_equals_negating_yaw_and_roll():
    ident = R.atlas_identity(3)
    pose = np.array([[25.0, 10.0, 12.0], [-40.0, -15.0, 5.0]])
    au = np.stack([_one_au(12, 4), _one_au(2, 5)])
    img = _faces(ident, au, pose)
    flipped_pose = _faces(ident, au, pose * [-1, 1, -1])
    assert np.abs(img[:, :, ::-1] - flipped_pose).max() <= 1


def _feature_centroid(ident: dict, au: int, pose: list[float]) -> np.ndarray:
    """(row, col) centroid of the change one AU makes under a pose."""
    p = np.array([pose, pose], float)
    img = _faces(ident, np.stack([np.zeros(N_AU), _one_au(au, 5)]), p)
    d = np.abs(img[1] - img[0]).sum(-1).astype(float)
    rows, cols = np.indices(d.shape)
    return np.array([(rows * d).sum(), (cols * d).sum()]) / d.sum()


def test_yaw_moves_the_nose_horizontally_in_the_documented_direction():
    ident = R.atlas_identity(0)
    centre = _feature_centroid(ident, 9, [0, 0, 0])
    left = _feature_centroid(ident, 9, [30, 0, 0])  # subject's left = image right
    right = _feature_centroid(ident, 9, [-30, 0, 0])
    assert left[1] > centre[1] + 2 and right[1] < centre[1] - 2
    assert abs(left[0] - centre[0]) < 1.5  # yaw is a horizontal motion


def test_pitch_up_moves_features_up_and_roll_tilts_the_brows_right():
    ident = R.atlas_identity(0)
    centre = _feature_centroid(ident, 9, [0, 0, 0])
    up = _feature_centroid(ident, 9, [0, 20, 0])
    assert up[0] < centre[0] - 1.5
    brows = _feature_centroid(ident, 1, [0, 0, 0])
    tilted = _feature_centroid(ident, 1, [0, 0, 20])  # clockwise: above the centre moves right
    assert tilted[1] > brows[1] + 1.5


def test_pose_aus_follow_the_documented_sign_convention():
    pose = np.array(
        [[20, 0, 0], [-20, 0, 0], [0, 20, 0], [0, -20, 0], [0, 0, 20], [0, 0, -20], [15, -15, 0]]
    )
    expected = np.vstack([np.eye(6, dtype=int), np.zeros((1, 6), int)])  # 15 is not beyond 15
    assert np.array_equal(R.pose_aus(pose, threshold_deg=15.0), expected)


def test_pose_aus_swap_left_and_right_codes_under_a_horizontal_flip():
    pose = np.random.default_rng(0).uniform(-40, 40, (50, 3))
    flipped = R.pose_aus(pose * [-1, 1, -1])
    assert np.array_equal(flipped, R.pose_aus(pose)[:, [1, 0, 2, 3, 5, 4]])


# --- identities, nuisance, atlas --------------------------------------------------------------
def test_different_identities_give_different_images():
    ids = R.sample_identities(4, np.random.default_rng(0))
    img = R.render(ids, np.zeros((4, N_AU)), np.zeros((4, 3)), R.neutral_nuisance(4), SIZE)
    img = img.astype(np.int64)
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.abs(img[i] - img[j]).mean() > 5, f"identities {i} and {j} look alike"


def test_sampled_parameters_have_one_row_per_face_and_the_documented_keys():
    rng = np.random.default_rng(0)
    ids = R.sample_identities(5, rng)
    nuis = R.sample_nuisance(5, rng)
    assert set(ids) == set(R.IDENTITY_KEYS) and set(nuis) == set(R.NUISANCE_KEYS)
    assert all(len(v) == 5 for v in (*ids.values(), *nuis.values()))
    assert set(R.neutral_nuisance(5)) == set(R.NUISANCE_KEYS)


def test_occlusion_rate_follows_difficulty_and_difficulty_zero_is_clean():
    rng = np.random.default_rng(0)
    rate = (R.sample_nuisance(4000, rng)["occ_kind"] != R.OCC_NONE).mean()
    assert 0.13 < rate < 0.17
    clean = R.sample_nuisance(500, rng, difficulty=0.0)
    assert (clean["occ_kind"] == R.OCC_NONE).all()
    assert (clean["blur"] == 0).all() and (clean["noise"] == 0).all()


def test_aligned_crops_frame_the_face_tighter_and_jitter_less_than_loose_crops():
    rng = np.random.default_rng(0)
    loose = R.sample_nuisance(4000, rng)
    aligned = R.sample_nuisance(4000, rng, aligned=True)
    assert np.median(aligned["scale"]) == pytest.approx(R.ALIGNED_SCALE, rel=0.01)
    assert np.median(loose["scale"]) == pytest.approx(1.0, rel=0.01)
    assert np.log(aligned["scale"]).std() < 0.6 * np.log(loose["scale"]).std()
    assert aligned["shift"].std(0).max() < 0.5 * loose["shift"].std(0).min()
    assert aligned["shift"][:, 1].mean() == pytest.approx(R.ALIGNED_SHIFT_Y, abs=0.002)
    # the rest of the nuisance is drawn as for loose crops: occlusion still happens
    assert 0.12 < (aligned["occ_kind"] != R.OCC_NONE).mean() < 0.18


def test_aligned_face_sits_where_five_point_alignment_templates_put_it():
    # ArcFace's 112-px template: eyes at 46% of the height, mouth corners at 82%
    for seed in range(3):
        ident = R.atlas_identity(seed)
        faces = {}
        for aligned in (False, True):
            nuis = R.neutral_nuisance(1, aligned=aligned)
            faces[aligned] = R.render(ident, np.zeros((1, N_AU)), np.zeros((1, 3)), nuis, SIZE)[0]
        img = faces[True].astype(np.int64)
        redness = (img[:, :, 0] - img[:, :, 1])[:, SIZE // 2 - 4 : SIZE // 2 + 4].mean(1)
        mouth_row = SIZE // 2 + int(np.argmax(redness[SIZE // 2 :]))
        assert 0.74 * SIZE <= mouth_row <= 0.84 * SIZE
        sclera_row = int(np.argmax(img.sum(-1)[: SIZE * 2 // 3, SIZE // 4 : SIZE // 2].max(1)))
        assert 0.40 * SIZE <= sclera_row <= 0.50 * SIZE
        # the face fills more of the crop than in a loose (detector) crop
        fill = {k: (np.abs(f.astype(int) - f[0, 0]).sum(-1) > 6).mean() for k, f in faces.items()}
        assert fill[True] > fill[False] + 0.1


def test_take_selects_the_same_rows_of_every_array():
    ids = R.sample_identities(4, np.random.default_rng(0))
    sub = R.take(ids, np.array([2, 2, 0]))
    assert np.array_equal(sub["skin"], ids["skin"][[2, 2, 0]])
    assert all(len(v) == 3 for v in sub.values())


def test_au_atlas_lays_out_one_row_per_au_and_one_column_per_intensity():
    size, step = 24, 24 + R.ATLAS_GAP
    grid = R.au_atlas(size=size)
    assert grid.shape == (N_AU * step - R.ATLAS_GAP, 6 * step - R.ATLAS_GAP, 3)
    assert len(R.AU_ATLAS_ROWS) == N_AU and R.AU_ATLAS_ROWS[0] == "AU1"
    cell = lambda r, c: grid[r * step : r * step + size, c * step : c * step + size]  # noqa: E731
    for r in range(N_AU):
        assert np.array_equal(cell(r, 0), cell(0, 0))  # column 0 is the neutral face
        assert not np.array_equal(cell(r, 5), cell(r, 0))


# --- input checks -----------------------------------------------------------------------------
def test_render_rejects_bad_inputs_with_a_message_naming_the_problem():
    ids, au, pose, nuis = _random_inputs(2, seed=0)
    with pytest.raises(ValueError, match="au must have shape"):
        R.render(ids, au[:, :5], pose, nuis)
    with pytest.raises(ValueError, match=r"within \[0, 5\]"):
        R.render(ids, au + 6, pose, nuis)
    with pytest.raises(ValueError, match="pose must have shape"):
        R.render(ids, au, pose[:1], nuis)
    with pytest.raises(ValueError, match="pose angles"):
        R.render(ids, au, pose * np.nan, nuis)
    with pytest.raises(KeyError, match="skin"):
        R.render({k: v for k, v in ids.items() if k != "skin"}, au, pose, nuis)
    with pytest.raises(ValueError, match="'blur'.*1 rows"):
        R.render(ids, au, pose, {**nuis, "blur": nuis["blur"][:1]})
    with pytest.raises(ValueError, match="size"):
        R.render(ids, au, pose, nuis, size=4)


def test_pose_aus_rejects_a_pose_without_three_angles():
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        R.pose_aus(np.zeros((4, 2)))


def _anchor_pixel(ident: dict, pose: np.ndarray, nuis: dict, size: int = 96) -> np.ndarray:
    """(row, col) of the pixel showing the canonical landmark centre (u = 0, between eyes and mouth),
    found through the renderer's own inverse map."""
    f = R._frames(ident, pose, nuis, size)
    v0 = 0.5 * (ident["eye_y"] + ident["mouth_v"])[:, None, None]
    d = np.hypot(f["u"], f["v"] - v0)
    return np.array([np.unravel_index(np.argmin(x), x.shape) for x in d])


def test_aligned_frames_keep_the_landmark_centre_where_the_frontal_face_has_it():
    ident = R.take(R.atlas_identity(1), np.zeros(4, int))
    pose = np.array([[0.0, 0, 0], [25, 0, 0], [-30, 12, 0], [20, -10, 3]])
    nuis = R.neutral_nuisance(4, aligned=True)
    frontal = _anchor_pixel(ident, np.zeros((4, 3)), nuis)
    loose = _anchor_pixel(ident, pose, nuis)
    aligned = _anchor_pixel(ident, pose, R.align_to_pose(ident, pose, nuis))
    # without the aligner a 25-30 degree turn moves the face by many pixels of a 96-px crop ...
    assert np.abs(loose[1:] - frontal[1:]).max() >= 8
    # ... with it, the landmark centre stays within a pixel of the frontal face's
    assert np.abs(aligned - frontal).max() <= 1
    # a frontal face is left where it was, and only the shift changes
    same = R.align_to_pose(ident, np.zeros((4, 3)), nuis)
    assert np.allclose(same["shift"], nuis["shift"])
    assert all(np.array_equal(same[k], nuis[k]) for k in nuis if k != "shift")


def test_au_gain_one_is_the_facs_sized_face_and_two_moves_it_further():
    ident = R.atlas_identity(0)
    n = 3
    au = np.zeros((n, N_AU))
    au[1:, R.RENDER_AUS.index(12)] = 3.0  # neutral, then AU12 at intensity C twice
    args = (R.take(ident, np.zeros(n, int)), au, np.zeros((n, 3)), R.neutral_nuisance(n), 48)
    plain = R.render(*args).astype(float)
    g1 = R.render(*args, au_gain=1.0).astype(float)
    g2 = R.render(*args, au_gain=2.0).astype(float)
    assert np.array_equal(plain, g1)
    assert np.array_equal(g2[0], g1[0])  # the neutral face does not depend on the gain
    moved1, moved2 = np.abs(g1[1] - g1[0]).sum(), np.abs(g2[1] - g2[0]).sum()
    assert moved2 > 1.5 * moved1 > 0


def test_au_gain_keeps_every_size_positive_and_rejects_a_gain_out_of_range():
    ids, au, pose, nuis = _random_inputs(16, seed=5)
    au[:, :] = 5.0  # every AU at its maximum: the strongest shrinking of lips and mouth
    g = R._gained_geometry({k: v for k, v in ids.items()}, au, 3.0)
    assert all(np.all(g[k] > 0) for k in R._GAIN_SIZE)
    with pytest.raises(ValueError, match="au_gain must lie in"):
        R.render(ids, au, pose, nuis, 32, au_gain=3.5)
