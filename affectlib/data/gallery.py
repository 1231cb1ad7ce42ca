"""Figures that show what the embedded faces look like (notebook 01): faces per expression, the AU
atlas, pose and occlusion, and frames of one video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .. import labels as L
from . import render as R


def _grid(images: list[np.ndarray], cols: int, pad: int = 2) -> np.ndarray:
    h, w = images[0].shape[:2]
    rows = -(-len(images) // cols)
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, 3), 255, np.uint8)
    for k, im in enumerate(images):
        r, c = divmod(k, cols)
        out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = im
    return out


def _load(root: Path, paths) -> list[np.ndarray]:
    return [np.asarray(Image.open(root / p).convert("RGB")) for p in paths]


def plot_faces_per_expression(
    table: pd.DataFrame, image_root: str | Path, n: int = 8, seed: int = 0
):
    """One row per expression class: ``n`` images labelled with it, drawn at random."""
    import matplotlib.pyplot as plt  # deferred: a heavy import that only the figures need

    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(L.N_EXPR, 1, figsize=(n * 0.9, L.N_EXPR * 1.0))
    for e, ax in enumerate(axes):
        rows = table.index[table["expr"] == e].to_numpy()
        ax.set_axis_off()
        ax.set_title(
            f"{L.EXPRESSIONS[e]} ({len(rows)} image{'s' if len(rows) != 1 else ''})",
            fontsize=8,
            loc="left",
        )
        if len(rows) == 0:
            continue
        pick = rng.choice(rows, size=min(n, len(rows)), replace=False)
        ax.imshow(_grid(_load(Path(image_root), table.loc[pick, "path"]), cols=n))
    fig.tight_layout()
    return fig


def plot_au_atlas(size: int = 64, seed: int = 0, gains: tuple[float, ...] = (1.0,)):
    """Each rendered AU alone at intensities 0 (neutral) .. 5 on one identity, one panel per AU
    gain (``render.render``'s ``au_gain``; 1 = FACS-sized movements)."""
    import matplotlib.pyplot as plt  # deferred: a heavy import that only the figures need

    step = size + R.ATLAS_GAP
    fig, axes = plt.subplots(
        1, len(gains), figsize=(7.5 * len(gains), len(R.RENDER_AUS) * 1.3), squeeze=False
    )
    for ax, gain in zip(axes[0], gains, strict=True):
        ax.imshow(R.au_atlas(size=size, seed=seed, au_gain=gain))
        ax.set_yticks([r * step + size / 2 for r in range(len(R.RENDER_AUS))], R.AU_ATLAS_ROWS)
        ax.set_xticks([c * step + size / 2 for c in range(6)], [str(c) for c in range(6)])
        ax.set_xlabel("intensity (0 = neutral, 5 = FACS E)")
        ax.set_title(f"AU atlas, AU gain {gain:g}" + (" (FACS-sized)" if gain == 1 else ""))
    fig.tight_layout()
    return fig


def plot_pose_and_occlusion(size: int = 64, seed: int = 0):
    """Row 1: one identity under yaw / pitch / roll; row 2: the same face under each occluder,
    illumination and blur/noise; each panel titled with what it varies."""
    import matplotlib.pyplot as plt  # deferred: a heavy import that only the figures need

    ident = R.atlas_identity(seed)
    poses = np.array(
        [
            [-40, 0, 0],
            [-20, 0, 0],
            [0, 0, 0],
            [20, 0, 0],
            [40, 0, 0],
            [0, 25, 0],
            [0, -25, 0],
            [0, 0, 20],
        ],
        float,
    )
    n = len(poses)
    nuis = R.neutral_nuisance(n)
    row1 = R.render(
        R.take(ident, np.zeros(n, int)), np.zeros((n, len(R.RENDER_AUS))), poses, nuis, size
    )
    rng = np.random.default_rng(seed)
    nuis2 = R.neutral_nuisance(n)
    nuis2["occ_kind"][:3] = [R.OCC_BAR, R.OCC_HAND, R.OCC_PATCH]
    nuis2["occ_xy"][:3] = [[-0.2, 0.2], [0.2, 0.35], [0.25, -0.15]]
    nuis2["occ_size"][:3] = 0.25
    nuis2["occ_rgb"][:3] = rng.uniform(0.1, 0.9, (3, 3))
    nuis2["light"][3:5] = [[0.7, -0.2, 0.7], [-0.7, -0.2, 0.7]]
    nuis2["ambient"][3:5] = 0.35
    nuis2["blur"][5] = 0.02
    nuis2["noise"][6] = 0.05
    nuis2["noise_key"][6] = 7
    nuis2["cast"][7] = [1.2, 0.95, 0.7]
    row2 = R.render(
        R.take(ident, np.zeros(n, int)),
        np.zeros((n, len(R.RENDER_AUS))),
        np.zeros((n, 3)),
        nuis2,
        size,
    )
    # what each panel varies, against the frontal, unoccluded studio face
    # signs as render.pose_aus reads them: yaw > 0 turns to the subject's left (image right)
    pose_names = [
        f"yaw {y:+.0f}°"
        if y
        else f"pitch {p:+.0f}° ({'up' if p > 0 else 'down'})"
        if p
        else f"roll {r:+.0f}°"
        if r
        else "frontal"
        for y, p, r in poses
    ]
    nuisance_names = [
        "bar occluder",
        "hand occluder",
        "patch occluder",
        "light from right",
        "light from left",
        "blur",
        "sensor noise",
        "colour cast",
    ]
    fig, axes = plt.subplots(2, n, figsize=(n * 1.05, 2.9))
    for row, (images, names) in enumerate(((row1, pose_names), (row2, nuisance_names))):
        for ax, im, name in zip(axes[row], images, names, strict=True):
            ax.imshow(im)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(name, fontsize=7)
    axes[0][0].set_ylabel("head pose", fontsize=8)
    axes[1][0].set_ylabel("occlusion,\nlight, image", fontsize=8)
    fig.suptitle("One identity, one nuisance at a time (neutral expression)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_video_frames(
    table: pd.DataFrame, image_root: str | Path, video: str | None = None, n: int = 10
):
    """``n`` evenly spaced frames of one video with their expression and active AUs."""
    import matplotlib.pyplot as plt  # deferred: a heavy import that only the figures need

    if video is None:  # the video whose expression label changes most often
        changes = (
            table.sort_values("frame").groupby("video")["expr"].agg(lambda s: (s.diff() != 0).sum())
        )
        video = str(changes.idxmax())
    rows = table[table["video"] == video].sort_values("frame")
    pick = rows.iloc[np.linspace(0, len(rows) - 1, min(n, len(rows))).round().astype(int)]
    ims = _load(Path(image_root), pick["path"])
    aus = [c for c in L.AU_COLUMNS if c in pick.columns]
    fig, axes = plt.subplots(1, len(ims), figsize=(len(ims) * 1.1, 1.9))
    for ax, im, (_, r) in zip(np.atleast_1d(axes), ims, pick.iterrows(), strict=True):
        ax.imshow(im)
        ax.set_axis_off()
        expr = L.EXPRESSIONS[r["expr"]] if r["expr"] >= 0 else "-"
        active = [c[2:] for c in aus if r[c] == 1]
        label = (",".join(active) or "none") if r[aus[0]] != L.AU_MISSING else "-"
        ax.set_title(f"{int(r['frame'])}: {expr}\nAU {label}", fontsize=6)
    fig.suptitle(f"video {video}", fontsize=8)
    return fig
