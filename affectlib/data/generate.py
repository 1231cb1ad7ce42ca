"""Write the embedded default data set to disk, in the real data sets' folder layouts.

``python -m affectlib generate --out DIR [--profile cpu] [--seed 0]`` writes::

    DIR/manifest.json                      profile, seed, counts, generator version
    DIR/affwild2/annotations/MTL/{training,validation}_set_annotations.txt        (ABAW MTL files)
    DIR/affwild2/annotations/{EXPR_Classification,AU_Detection,VA_Estimation}_Challenge/
        {Train,Validation}_Set/VIDEO.txt                                        (ABAW per-task files)
    DIR/affectnet/{training,validation}.csv                                     (AffectNet)
    DIR/emotionet/{training,validation}_annotations.txt                         (EmotioNet)
    DIR/rafdb/EmoLabel/list_patition_label.txt                                  (RAF-DB basic)
    DIR/truth/p_au_given_expr.csv          the generator's ground-truth p(AU | expression)
    DIR/truth/{affwild2,affectnet,emotionet,rafdb}.csv.gz   labels before noise and missingness,
                                           and the render parameters of every image

Notebooks call :func:`ensure` to get the embedded data for a profile, generated once and reused while
the manifest matches.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from .. import labels as L
from ..results import atomic_write_text
from . import writers
from .embedded import generate_story

GENERATOR_VERSION = 1
DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "data" / "embedded"
# the profile fields the data set depends on (training settings do not change the data)
DATA_FIELDS = (
    "n_train_subjects",
    "n_val_subjects",
    "videos_per_subject",
    "frames_per_video",
    "n_affectnet",
    "n_emotionet",
    "n_rafdb",
    "n_pretrain_subjects",
    "image_size",
    "label_noise",
)


def data_settings(profile, seed: int) -> dict:
    p = dataclasses.asdict(profile)
    return {
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        **{k: p[k] for k in DATA_FIELDS},
    }


def generate(out: str | Path, profile, seed: int = 0) -> dict:
    """Write the embedded data set for ``profile`` and ``seed`` under ``out``; returns the manifest."""
    out = Path(out)
    story = generate_story(profile, seed)
    aw = story.affwild
    ann = out / "affwild2" / "annotations"
    for split in ("train", "validation"):
        part = aw[aw["split"] == split]
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
    truth = out / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    atomic_write_text(truth / "p_au_given_expr.csv", story.p_au.to_csv(index_label="expression"))
    for name, df in (
        ("affwild2", aw),
        ("affectnet", an),
        ("emotionet", story.emotionet),
        ("rafdb", story.rafdb),
    ):
        df.to_csv(truth / f"{name}.csv.gz", index=False)
    manifest = {
        **data_settings(profile, seed),
        "profile": profile.name,
        "counts": {
            "affwild2_train": int((aw["split"] == "train").sum()),
            "affwild2_validation": int((aw["split"] == "validation").sum()),
            "affwild2_videos": int(aw["video"].nunique()),
            "affwild2_subjects": int(aw["subject"].nunique()),
            "affectnet": len(an),
            "emotionet": len(story.emotionet),
            "rafdb": len(story.rafdb),
        },
        "abaw_aus": list(L.ABAW_AUS),
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return manifest


def default_root(profile, seed: int = 0) -> Path:
    return DEFAULT_ROOT / f"{profile.name}-seed{seed}"


def ensure(profile, seed: int = 0, root: str | Path | None = None) -> Path:
    """The embedded data set's folder for ``profile``/``seed``, generated unless an up-to-date one is
    there (its manifest records the settings it was made with)."""
    root = Path(root) if root else default_root(profile, seed)
    manifest = root / "manifest.json"
    want = data_settings(profile, seed)
    if manifest.exists():
        have = json.loads(manifest.read_text())
        if all(have.get(k) == v for k, v in want.items()):
            return root
    generate(root, profile, seed)
    return root
