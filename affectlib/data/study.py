"""Find and load a data set's annotation files by format, under a data root.

The embedded data set (``affectlib.data.generate``) uses the real releases' folder layouts, so the same
default locations serve it and a real copy laid out as distributed; any other layout is given
explicitly with ``annotations``. ``format="auto"`` (or a layout name of
:mod:`affectlib.data.layouts`) detects the data set and its layout under ``data_root`` instead,
prints what it found, and reads it with :func:`affectlib.data.layout_readers.load_found`.
"""

from __future__ import annotations

from pathlib import Path

from . import formats, layout_readers, layouts
from .parsing import LoadResult

_AW = "affwild2/annotations"
DEFAULT_ANNOTATIONS: dict[str, tuple[str, ...]] = {
    "abaw-mtl": (
        f"{_AW}/MTL/training_set_annotations.txt",
        f"{_AW}/MTL/validation_set_annotations.txt",
    ),
    "abaw-expr": (
        f"{_AW}/EXPR_Classification_Challenge/Train_Set",
        f"{_AW}/EXPR_Classification_Challenge/Validation_Set",
    ),
    "abaw-au": (
        f"{_AW}/AU_Detection_Challenge/Train_Set",
        f"{_AW}/AU_Detection_Challenge/Validation_Set",
    ),
    "abaw-va": (
        f"{_AW}/VA_Estimation_Challenge/Train_Set",
        f"{_AW}/VA_Estimation_Challenge/Validation_Set",
    ),
    "affectnet": ("affectnet/training.csv", "affectnet/validation.csv"),
    "rafdb": ("rafdb/EmoLabel/list_patition_label.txt",),
    "emotionet": (
        "emotionet/training_annotations.txt",
        "emotionet/validation_annotations.txt",
    ),
}
# read as well when present: the embedded set's held-out test split (real ABAW releases do not
# publish test labels, so a real copy has no such file)
OPTIONAL_ANNOTATIONS: dict[str, tuple[str, ...]] = {
    "abaw-mtl": (f"{_AW}/MTL/test_set_annotations.txt",),
}
DEFAULT_IMAGES: dict[str, str] = {
    "abaw-mtl": "affwild2/cropped_aligned",
    "abaw-expr": "affwild2/cropped_aligned",
    "abaw-au": "affwild2/cropped_aligned",
    "abaw-va": "affwild2/cropped_aligned",
    "affectnet": "affectnet/Manually_Annotated_Images",
    "rafdb": "rafdb/Image/aligned",
    "emotionet": "emotionet",
}


def annotation_paths(data_root: str | Path, format: str, annotations: str = "") -> list[Path]:
    """The annotation files/folders to read: ``annotations`` (comma-separated, relative to
    ``data_root`` unless absolute) or the format's default locations, with those of
    ``OPTIONAL_ANNOTATIONS`` that exist."""
    if format not in DEFAULT_ANNOTATIONS:
        raise KeyError(f"unknown format {format!r}; known: {', '.join(DEFAULT_ANNOTATIONS)}")
    names = [a.strip() for a in annotations.split(",") if a.strip()]
    if names:
        return [Path(data_root) / n for n in names]
    optional = [Path(data_root) / n for n in OPTIONAL_ANNOTATIONS.get(format, ())]
    return [Path(data_root) / n for n in DEFAULT_ANNOTATIONS[format]] + [
        p for p in optional if p.exists()
    ]


def image_root(data_root: str | Path, format: str, images: str = "") -> Path:
    if layouts.is_layout(format) and not images:
        return layouts.resolve(data_root, format).images
    return Path(data_root) / (images or DEFAULT_IMAGES[format])


def load_dataset(
    data_root: str | Path,
    format: str,
    annotations: str = "",
    images: str = "",
    check_images: bool = False,
) -> LoadResult:
    """Load every annotation file of a data set into one :class:`affectlib.data.parsing.LoadResult`.

    Rows read, accepted and rejected are summed over the files; errors keep their own file and line.
    ``format`` ``auto`` or a layout name: the layout found under ``data_root`` (printed), whose
    own files are read (``annotations`` and ``images`` must then be empty).
    """
    if layouts.is_layout(format):
        if annotations or images:
            raise ValueError(
                f"format {format!r} finds its own files: leave annotations/images empty"
            )
        found = layouts.resolve(data_root, format)
        result = layout_readers.load_found(found, check_images=check_images)
        print(found.describe(result))
        return result
    results = [
        formats.load(
            p, format, images=image_root(data_root, format, images) if check_images else None
        )
        for p in annotation_paths(data_root, format, annotations)
    ]
    return LoadResult.combine(results, format)
