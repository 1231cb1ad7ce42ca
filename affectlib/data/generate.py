"""Write the embedded default data set to disk, in the real data sets' folder layouts.

``python -m affectlib generate --out DIR [--profile cpu] [--seed 0]`` writes::

    DIR/manifest.json                      profile, seed, counts, generator version
    DIR/affwild2/annotations/MTL/{training,validation}_set_annotations.txt        (ABAW MTL files)
    DIR/affwild2/annotations/{EXPR_Classification,AU_Detection,VA_Estimation}_Challenge/
        {Train,Validation}_Set/VIDEO.txt                                        (ABAW per-task files)
    DIR/affectnet/{training,validation}.csv                                     (AffectNet)
    DIR/emotionet/{training,validation}_annotations.txt                         (EmotioNet)
    DIR/rafdb/EmoLabel/list_patition_label.txt                                  (RAF-DB basic)
    DIR/celeb/identities.txt, DIR/celeb/images/ID/NNN.jpg   identity set for face-recognition
                                           pretraining (stands in for MS-Celeb-1M)
    DIR/truth/p_au_given_expr.csv          the generator's ground-truth p(AU | expression)
    DIR/truth/{affwild2,affectnet,emotionet,rafdb}.csv.gz   labels before noise and missingness,
                                           and the render parameters of every image

Notebooks call :func:`ensure` to get the embedded data for a profile, generated once and reused while
the manifest matches: the profile's data fields, the seed, and a hash of the generator's code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from .. import labels as L
from .. import profiles
from ..files import atomic_write_text
from . import render as R
from . import writers
from .embedded import Story, generate_story
from .render import RENDER_AUS

GENERATOR_VERSION = 8
JPEG_QUALITY = (
    60,
    95,
)  # each image is saved at a quality drawn from this range: JPEG artefacts vary
IMAGE_FOLDERS = {  # where each data set's images go, as in the real releases
    "affwild2": "affwild2/cropped_aligned",
    "affectnet": "affectnet/Manually_Annotated_Images",
    "emotionet": "emotionet",
    "rafdb": "rafdb/Image/aligned",
    "celeb": "celeb/images",
}
DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "data" / "embedded"
# the profile fields the data set depends on (training settings do not change the data)
DATA_FIELDS = (
    "n_train_subjects",
    "n_val_subjects",
    "n_test_subjects",
    "videos_per_subject",
    "frames_per_video",
    "n_affectnet",
    "n_emotionet",
    "n_rafdb",
    "n_pretrain_subjects",
    "pretrain_images_per_subject",
    "image_size",
    "label_noise",
    "au_gain",
    "nuisance",
    "stills_nuisance",
)


# the code that decides what the data set holds: a change to any of these files regenerates it,
# so a folder written by other code is never reused
GENERATOR_SOURCES = ("data/embedded.py", "data/render.py", "data/generate.py", "data/writers.py",
                     "labels.py")  # fmt: skip


def generator_code_hash() -> str:
    """SHA-256 (first 16 hex digits) of the ``GENERATOR_SOURCES`` files, recorded in the manifest."""
    package = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for name in GENERATOR_SOURCES:
        h.update(name.encode() + b"\0" + (package / name).read_bytes())
    return h.hexdigest()[:16]


def data_settings(profile, seed: int) -> dict:
    p = dataclasses.asdict(profile)
    return {
        "generator_version": GENERATOR_VERSION,
        "generator_code": generator_code_hash(),
        "seed": int(seed),
        **{k: p[k] for k in DATA_FIELDS},
    }


def _render_params(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    au = df[[f"I_AU{a}" for a in RENDER_AUS]].to_numpy(float)
    return np.clip(au, 0, 5), df[["yaw", "pitch", "roll"]].to_numpy(float)


# The nuisance of the Aff-Wild2-like frames is the profile's ``nuisance`` (render.sample_nuisance's
# difficulty: 0 clean, 1 the default ranges); cropped_aligned holds only the frames where a face was
# detected and aligned, so the worst occlusion and blur are filtered out: 0.8 (every profile's
# default) keeps occlusion in 12% of the videos, blur up to 0.7 px and sensor noise up to 2.4% at
# 48 px. The still-image sets (AffectNet, EmotioNet, RAF-DB, identities), not filtered that way,
# get the profile's ``stills_nuisance`` times as much (1.25 unless a profile says otherwise).
STILLS_NUISANCE = 1.25


@dataclass
class RenderPlan:
    """Everything one data set's images are rendered from: row i of each array is image i."""

    files: list[Path]
    identity: dict
    au: np.ndarray
    pose: np.ndarray
    nuisance: dict
    quality: np.ndarray


def render_plan(
    story: Story,
    out: Path,
    seed: int,
    nuisance: float = 0.8,
    stills_nuisance: float = STILLS_NUISANCE,
) -> dict[str, RenderPlan]:
    """What :func:`render_images` renders, per data set, so that any image can be re-rendered.
    The still-image sets get ``stills_nuisance * nuisance``.

    A subject keeps its identity in every frame; a video keeps its illumination, background and
    occluder (drawn once per video) while the sensor noise is fresh in every frame."""
    rng = np.random.default_rng([seed, 31337])
    identities = R.sample_identities(story.n_identities, rng)
    aw = story.affwild
    videos, vid_idx = np.unique(aw["video"].to_numpy(str), return_inverse=True)
    # Aff-Wild2's frames are cropped_aligned: the aligner's tight, centred crop (see sample_nuisance)
    aw_nuis = R.take(
        R.sample_nuisance(len(videos), rng, difficulty=nuisance, aligned=True), vid_idx
    )
    aw_nuis["noise_key"] = rng.integers(0, 2**32, len(aw), dtype=np.uint32)
    plans = {}
    for name, df, paths in (
        ("affwild2", aw, aw["path"]),
        ("affectnet", story.affectnet, story.affectnet["path"]),
        ("emotionet", story.emotionet, "images/" + story.emotionet["path"]),
        ("rafdb", story.rafdb, story.rafdb["name"].str.replace(".jpg", "_aligned.jpg")),
        ("celeb", story.celeb, story.celeb["path"]),
    ):
        nuis = (
            aw_nuis
            if name == "affwild2"
            else R.sample_nuisance(len(df), rng, difficulty=stills_nuisance * nuisance)
        )
        au, pose = _render_params(df)
        ident = R.take(identities, df["identity"].to_numpy())
        if name == "affwild2":  # aligned frame by frame: the face stays centred when it turns
            nuis = R.align_to_pose(ident, pose, nuis)
        plans[name] = RenderPlan(
            files=[out / IMAGE_FOLDERS[name] / p for p in paths],
            identity=ident,
            au=au,
            pose=pose,
            nuisance=nuis,
            quality=rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1, len(df)),
        )
    return plans


def render_images(
    story: Story,
    out: Path,
    size: int,
    seed: int,
    chunk: int = 1024,
    *,
    au_gain: float = 1.0,
    nuisance: float = 0.8,
    stills_nuisance: float = STILLS_NUISANCE,
) -> None:
    """Render every image of ``story`` as JPEG into the real folder layouts under ``out``, with
    the AU gain and nuisance levels of :func:`render_plan` / ``render.render``."""
    for name, plan in render_plan(story, out, seed, nuisance, stills_nuisance).items():
        for d in {f.parent for f in plan.files}:
            d.mkdir(parents=True, exist_ok=True)
        with tqdm(total=len(plan.files), desc=f"render {name}", unit="face", leave=False) as bar:
            for lo in range(0, len(plan.files), chunk):
                sl = slice(lo, lo + chunk)
                faces = R.render(
                    R.take(plan.identity, sl),
                    plan.au[sl],
                    plan.pose[sl],
                    R.take(plan.nuisance, sl),
                    size,
                    seed=seed,
                    au_gain=au_gain,
                )
                for k, face in enumerate(faces):
                    buf = io.BytesIO()
                    Image.fromarray(face).save(
                        buf, format="JPEG", quality=int(plan.quality[lo + k])
                    )
                    plan.files[lo + k].write_bytes(buf.getvalue())
                bar.update(len(faces))


MARKER = ".affectlib-embedded"
_PARTS = ("affwild2", "affectnet", "emotionet", "rafdb", "celeb", "truth", "manifest.json")


def _prepare(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        if not ((out / MARKER).exists() or (out / "manifest.json").exists()):
            raise FileExistsError(
                f"{out} is not empty and holds no embedded data set; choose an empty folder"
            )
        for part in _PARTS:
            p = out / part
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by python -m affectlib generate\n")


def generate(out: str | Path, profile, seed: int = 0, images: bool = True) -> dict:
    """Write the embedded data set for ``profile`` and ``seed`` under ``out``; returns the manifest.

    ``images=False`` writes the annotations and the truth only (the label story). A folder that
    already holds an embedded data set (or an interrupted one) is cleared first, so no file of an
    earlier version survives; any other non-empty folder is refused."""
    out = Path(out)
    _prepare(out)
    story = generate_story(profile, seed)
    aw = story.affwild
    ann = out / "affwild2" / "annotations"
    for split in ("train", "validation", "test"):
        part = aw[aw["split"] == split]
        if split == "test":  # the held-out split: MTL file only (the per-task folders are ABAW's)
            if len(part):
                writers.write_abaw_mtl(part, ann / "MTL" / writers.MTL_FILES[split])
            continue
        writers.write_abaw_mtl(part, ann / "MTL" / writers.MTL_FILES[split])
        writers.write_abaw_tasks(part, ann, split)
    an = story.affectnet
    for split, name in (("train", "training.csv"), ("validation", "validation.csv")):
        writers.write_affectnet(
            an[an["split"] == split], out / "affectnet" / name, profile.image_size
        )
    em = story.emotionet
    for split, name in (("train", "training"), ("validation", "validation")):
        writers.write_emotionet(
            em[em["split"] == split], out / "emotionet" / f"{name}_annotations.txt"
        )
    writers.write_rafdb(story.rafdb, out / "rafdb" / "EmoLabel" / "list_patition_label.txt")
    writers.write_identities(story.celeb, out / "celeb" / "identities.txt")
    truth = out / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    atomic_write_text(truth / "p_au_given_expr.csv", story.p_au.to_csv(index_label="expression"))
    for name, df in (
        ("affwild2", aw),
        ("affectnet", an),
        ("emotionet", story.emotionet),
        ("rafdb", story.rafdb),
        ("celeb", story.celeb),
    ):
        # mtime 0: the same seed gives the same bytes, the gzip header included
        df.to_csv(truth / f"{name}.csv.gz", index=False, compression={"method": "gzip", "mtime": 0})
    if images:
        render_images(
            story,
            out,
            profile.image_size,
            seed,
            au_gain=profile.au_gain,
            nuisance=profile.nuisance,
            stills_nuisance=profile.stills_nuisance,
        )
    manifest = {
        **data_settings(profile, seed),
        "images": bool(images),
        "profile": profile.name,
        "counts": {
            "affwild2_train": int((aw["split"] == "train").sum()),
            "affwild2_validation": int((aw["split"] == "validation").sum()),
            "affwild2_test": int((aw["split"] == "test").sum()),
            "affwild2_videos": int(aw["video"].nunique()),
            "affwild2_subjects": int(aw["subject"].nunique()),
            "affectnet": len(an),
            "emotionet": len(story.emotionet),
            "rafdb": len(story.rafdb),
            "celeb": len(story.celeb),
            "celeb_identities": int(story.celeb["label"].nunique()),
        },
        "abaw_aus": list(L.ABAW_AUS),
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return manifest


def default_root(profile, seed: int = 0) -> Path:
    """``data/embedded/<profile>-seed<k>``, with a short hash of the data settings appended when
    they differ from the named profile's (e.g. the ``hard`` variant, ``au_gain=1``), so that a
    variant never overwrites the default set."""
    name = f"{profile.name}-seed{seed}"
    preset = profiles.PROFILES.get(profile.name)
    if preset is None or data_settings(preset, seed) != data_settings(profile, seed):
        p = dataclasses.asdict(profile)
        key = json.dumps({k: p[k] for k in DATA_FIELDS}, sort_keys=True)
        name += "-" + hashlib.sha256(key.encode()).hexdigest()[:8]
    return DEFAULT_ROOT / name


def ensure(profile, seed: int = 0, root: str | Path | None = None) -> Path:
    """The embedded data set's folder for ``profile``/``seed``, generated unless an up-to-date one is
    there (its manifest records the settings it was made with)."""
    root = Path(root) if root else default_root(profile, seed)
    manifest = root / "manifest.json"
    want = data_settings(profile, seed)
    if manifest.exists():
        have = json.loads(manifest.read_text())
        if have.get("images") and all(have.get(k) == v for k, v in want.items()):
            return root
    generate(root, profile, seed)
    return root
