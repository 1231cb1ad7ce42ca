"""The embedded ExpW-format and AFEW-VA-format sets of the teacher-student study (notebook 05),
rendered from the embedded generator's story and written in those data sets' layouts.

``ensure(profile, seed)`` returns a folder holding::

    manifest.json                         settings, counts, code hashes (the reuse check)
    ExpW/label/label.lst                  image_name face_id top left right bottom confidence label
    ExpW/image/origin/expw_NNNNNN.jpg     one face crop per image (the box is the whole image)
    AFEW-VA/NNN/NNN.json                  per-frame valence / arousal in [-10, 10] and 68 landmarks
    AFEW-VA/NNN/FFFFF.png                 the clip's frames

Where the people and labels come from. :func:`affectlib.data.embedded.generate_story` is drawn a
second time, with the seed ``seed + SEED_OFFSET`` (so its identities are fresh draws, none of the
Aff-Wild2-like, AffectNet-like or identity sets' people) and a profile sized for these two sets:
its Aff-Wild2-like videos become the AFEW-VA clips (``n_clips`` clips of ``frames_per_clip``
frames; the frames whose valence and arousal were annotated, their values rounded to AFEW-VA's
integer grid of tenths), its RAF-DB-like still images (7 basic expressions, RAF-DB's class
prior, the story's annotation noise) become the ExpW images (``n_expw``). Faces are rendered with
:func:`affectlib.data.generate.render_plan` and :func:`affectlib.data.render.render` at the
profile's AU gain and nuisance: the clips as aligned frames (the Aff-Wild2 nuisance), the ExpW
stills with the still-image nuisance. Landmarks are a fixed template scaled to the image (as the
AffectNet-format export's; no method reads them). Both sets are training data only (the paper
trains on them and reports on Aff-Wild2's validation set).

The folder is written once and reused while its manifest matches: the profile's data fields, the
seed, the three sizes, this module's code and the generator's code hash
(:func:`affectlib.data.generate.generator_code_hash`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from affectlib.data import generate
from affectlib.data import render as R
from affectlib.data.embedded import generate_story
from affectlib.data.formats_expw_afew import ABAW_TO_EXPW, AFEW_VA_RANGE
from affectlib.files import atomic_write_text
from affectlib.labels import VA_MISSING

SEED_OFFSET = 7919  # the second story's seed is seed + this: fresh identities and labels
VERSION = 1
EXPW_LABELS = "ExpW/label/label.lst"
EXPW_IMAGES = "ExpW/image/origin"
AFEW_VA = "AFEW-VA"
MANIFEST = "manifest.json"


def _code_hash() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def settings(profile, seed: int, n_expw: int, n_clips: int, frames_per_clip: int) -> dict:
    """What the folder depends on (compared with its manifest)."""
    return {
        "version": VERSION,
        "code": _code_hash(),
        **generate.data_settings(profile, seed),
        "n_expw": int(n_expw),
        "n_clips": int(n_clips),
        "frames_per_clip": int(frames_per_clip),
    }


def default_root(profile, seed: int, n_expw: int, n_clips: int, frames_per_clip: int) -> Path:
    """``data/embedded/<profile root>-expw-afewva-<hash of the sizes>``, beside the main set."""
    main = generate.default_root(profile, seed)
    key = f"{n_expw}-{n_clips}-{frames_per_clip}"
    return main.parent / f"{main.name}-expw-afewva-{hashlib.sha256(key.encode()).hexdigest()[:6]}"


def _landmarks(size: int) -> list[list[float]]:
    # a fixed 68-point template (jaw, brows, nose, eyes, mouth rings) scaled to the image
    t = np.linspace(0, 1, 68)
    x = 0.5 + 0.35 * np.cos(2 * np.pi * t)
    y = 0.55 + 0.35 * np.sin(2 * np.pi * t)
    return [
        [round(float(a) * size, 1), round(float(b) * size, 1)] for a, b in zip(x, y, strict=True)
    ]


def _render(plan, rows: np.ndarray, size: int, seed: int, au_gain: float) -> np.ndarray:
    return R.render(
        R.take(plan.identity, rows),
        plan.au[rows],
        plan.pose[rows],
        R.take(plan.nuisance, rows),
        size,
        seed=seed,
        au_gain=au_gain,
    )


def write(
    out: str | Path, profile, seed: int, n_expw: int, n_clips: int, frames_per_clip: int
) -> dict:
    """Write both sets under ``out`` (cleared first when it holds an earlier version); returns
    the manifest."""
    out = Path(out)
    if out.exists():
        if any(out.iterdir()) and not (out / MANIFEST).exists():
            raise FileExistsError(f"{out} is not empty and holds no ExpW / AFEW-VA export")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    alt_seed = int(seed) + SEED_OFFSET
    small = dataclasses.replace(
        profile,
        n_train_subjects=n_clips,
        n_val_subjects=0,
        n_test_subjects=0,
        videos_per_subject=1,
        frames_per_video=frames_per_clip,
        n_rafdb=n_expw,
        n_affectnet=1,
        n_emotionet=1,
        n_pretrain_subjects=1,
        pretrain_images_per_subject=1,
    )
    story = generate_story(small, alt_seed)
    plans = generate.render_plan(story, out, alt_seed, profile.nuisance, profile.stills_nuisance)
    size = profile.image_size

    # ---- ExpW: the still images with a basic expression
    ex = story.rafdb.reset_index(drop=True)
    (out / EXPW_IMAGES).mkdir(parents=True)
    lines = []
    rows = np.arange(len(ex))
    faces = []
    for lo in tqdm(range(0, len(rows), 512), desc="render ExpW", unit="chunk", leave=False):
        faces.append(_render(plans["rafdb"], rows[lo : lo + 512], size, alt_seed, profile.au_gain))
    faces = np.concatenate(faces) if faces else np.zeros((0, size, size, 3), np.uint8)
    quality = plans["rafdb"].quality
    for i, (face, expr) in enumerate(zip(faces, ex["expr"].to_numpy(), strict=True)):
        name = f"expw_{i:06d}.jpg"
        buf = io.BytesIO()
        Image.fromarray(face).save(buf, format="JPEG", quality=int(quality[i]))
        (out / EXPW_IMAGES / name).write_bytes(buf.getvalue())
        lines.append(f"{name} 0 0 0 {size} {size} 99.9 {ABAW_TO_EXPW[int(expr)]}")
    atomic_write_text(out / EXPW_LABELS, "\n".join(lines) + "\n")

    # ---- AFEW-VA: the clips' frames whose valence and arousal were annotated
    aw = story.affwild.reset_index(drop=True)
    labelled = aw["valence"].to_numpy() != VA_MISSING
    landmarks = _landmarks(size)
    n_frames, clips = 0, 0
    videos = list(dict.fromkeys(aw["video"]))
    for k, video in enumerate(tqdm(videos, desc="render AFEW-VA", unit="clip", leave=False)):
        rows = np.flatnonzero((aw["video"].to_numpy() == video) & labelled)
        if not len(rows):
            continue
        clip = f"{k + 1:03d}"
        folder = out / AFEW_VA / clip
        folder.mkdir(parents=True)
        frames = {}
        for row, face in zip(
            rows, _render(plans["affwild2"], rows, size, alt_seed, profile.au_gain), strict=True
        ):
            key = f"{int(aw['frame'].iat[row]) - 1:05d}"
            Image.fromarray(face).save(folder / f"{key}.png")
            frames[key] = {
                "arousal": int(round(float(aw["arousal"].iat[row]) * AFEW_VA_RANGE)),
                "landmarks": landmarks,
                "valence": int(round(float(aw["valence"].iat[row]) * AFEW_VA_RANGE)),
            }
        # one frame per line, so that a frame's line number points at it
        body = ",\n".join(f'    "{key}": {json.dumps(v)}' for key, v in frames.items())
        text = (
            f'{{\n  "actor": "subject_{k + 1:03d}",\n  "frames": {{\n{body}\n  }},\n'
            f'  "video_id": "{clip}"\n}}\n'
        )
        atomic_write_text(folder / f"{clip}.json", text)
        n_frames += len(rows)
        clips += 1
    manifest = {
        **settings(profile, seed, n_expw, n_clips, frames_per_clip),
        "counts": {"expw": len(ex), "afew_va_clips": clips, "afew_va_frames": n_frames},
    }
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


def ensure(
    profile,
    seed: int = 0,
    *,
    n_expw: int,
    n_clips: int,
    frames_per_clip: int,
    root: str | Path | None = None,
) -> Path:
    """The folder of the two sets for these settings, written unless an up-to-date one exists."""
    root = Path(root) if root else default_root(profile, seed, n_expw, n_clips, frames_per_clip)
    want = settings(profile, seed, n_expw, n_clips, frames_per_clip)
    manifest = root / MANIFEST
    if manifest.exists():
        have = json.loads(manifest.read_text())
        if all(have.get(k) == v for k, v in want.items()):
            return root
    write(root, profile, seed, n_expw, n_clips, frames_per_clip)
    return root
