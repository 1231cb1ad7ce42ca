"""Loaders of the two extra sets of the ABAW 2021 teacher-student study: ExpW (expressions of
still images) and AFEW-VA (per-frame valence / arousal of video clips), validated totally as the
loaders of :mod:`affectlib.data.formats` are: every row is accepted or rejected with file, line and
field (``accepted + rejected == rows_read``); ``strict=True`` raises
:class:`~affectlib.data.parsing.AnnotationError` at the first rejected row; input that cannot be
read as the format at all raises :class:`~affectlib.data.parsing.UnusableInputError`. Both return a
:class:`~affectlib.data.parsing.LoadResult` holding the standard annotation table (no AU columns).

**ExpW** (Zhang et al., "From facial expression recognition to interpersonal relation
prediction", IJCV 2018): ``label/label.lst``, no header, one face per line, fields separated by
whitespace: ``image_name face_id top left right bottom confidence label``. ``image_name`` is a
file of ``image/origin/`` (a bare name, no folder); ``face_id`` an integer >= 0 (several faces of
one image have distinct ids); the box integers with ``0 <= top < bottom`` and ``0 <= left <
right``; ``confidence`` a finite number; ``label`` 0..6 = angry, disgust, fear, happy, sad,
surprise, neutral (:data:`EXPW_TO_ABAW`). Rejected: a wrong field count, a non-integer, a bad
box, a label outside 0..6, the same (image, face) twice. ``path`` is the image name; the loader
does not crop: an image of the real ExpW holds the whole scene, so crop each face box into its
own file (as the published pipelines do) and list the crops, or use the embedded export, whose
images are the face crops (box = whole image). Split: ``split`` (default "train": ExpW has no
official split).

**AFEW-VA** (Kossaifi et al., "AFEW-VA database for valence and arousal estimation in-the-wild",
IVC 2017): one folder per clip, ``NNN/NNN.json`` and its frames ``NNN/FFFFF.png``. The JSON holds
``{"video_id": "NNN", "actor": ..., "frames": {"FFFFF": {"valence": v, "arousal": a,
"landmarks": [[x, y], ... 68 points]}, ...}}``; valence and arousal are integers in [-10, 10]
(stored / 10 in [-1, 1]). A frame is one row: its line is the line of the file on which its key
``"FFFFF"`` is written. Rejected: a valence / arousal that is not an integer in [-10, 10], a
frame key that is not digits, landmarks that are not 68 pairs of finite numbers. Unusable: a
missing folder, a folder without clip JSON files, a file that is not JSON or has no ``frames``
object (each named). ``video`` is the clip id, ``frame`` the key + 1 (the table counts from 1),
``path`` ``NNN/FFFFF.png``. Split: ``split`` (default "train").
"""

from __future__ import annotations

import json
import math
import re
from functools import partial
from pathlib import Path

from affectlib.data.parsing import (
    Claim,
    LoadResult,
    Options,
    Reject,
    Row,
    RowError,
    UnusableInputError,
    expect_fields,
    parse_float,
    parse_int,
    read_lines,
    require_file,
)
from affectlib.labels import EXPR_MISSING, expr_index

__all__ = ["AFEW_VA_RANGE", "EXPW_CODES", "EXPW_TO_ABAW", "load_afew_va", "load_expw"]

EXPW_CODES: dict[int, str] = {
    0: "Anger",
    1: "Disgust",
    2: "Fear",
    3: "Happiness",
    4: "Sadness",
    5: "Surprise",
    6: "Neutral",
}
EXPW_TO_ABAW: dict[int, int] = {c: expr_index(n) for c, n in EXPW_CODES.items()}
ABAW_TO_EXPW: dict[int, int] = {v: k for k, v in EXPW_TO_ABAW.items()}
AFEW_VA_RANGE = 10  # AFEW-VA codes valence and arousal as integers in [-10, 10]
_N_LANDMARKS = 68
_SPLITS = ("train", "validation", "test")
_NO_AUS: tuple[int, ...] = ()


def _check_split(split: str) -> None:
    if split not in _SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(_SPLITS)}")


def _options(images: str | Path | None, strict: bool) -> Options:
    root = None
    if images is not None:
        root = Path(images)
        if not root.is_dir():
            raise UnusableInputError(f"{root}: image root is not a folder")
    return Options(strict=strict, images=root)


# --- ExpW -------------------------------------------------------------------------------------------
def _expw_row(line: str, claim: Claim, *, split: str) -> Row:
    fields = line.split()
    expect_fields(fields or [""], 8)
    name = fields[0]
    if "/" in name or "\\" in name:
        raise Reject("image_name", f"expected a bare file name of image/origin, found {name!r}")
    face = parse_int(fields[1], "face_id")
    if face < 0:
        raise Reject("face_id", f"face id {face} < 0")
    claim(f"{name}#{face}")
    top, left, right, bottom = (
        parse_int(t, n)
        for t, n in zip(fields[2:6], ("top", "left", "right", "bottom"), strict=True)
    )
    if min(top, left) < 0:
        raise Reject("top" if top < 0 else "left", f"negative box coordinate ({top}, {left})")
    if not top < bottom:
        raise Reject("bottom", f"box bottom {bottom} not below top {top}")
    if not left < right:
        raise Reject("right", f"box right {right} not right of left {left}")
    parse_float(fields[6], "confidence")
    code = parse_int(fields[7], "label")
    if code not in EXPW_CODES:
        raise Reject("label", f"expression code {code} outside 0..{max(EXPW_CODES)}")
    return Row(name, "", -1, EXPW_TO_ABAW[code], _NO_AUS, -5.0, -5.0, split)


def load_expw(
    path: str | Path,
    *,
    split: str = "train",
    images: str | Path | None = None,
    strict: bool = False,
) -> LoadResult:
    """Read an ExpW ``label.lst`` (layout and rules: module docstring). ``images=ROOT`` also
    checks that each accepted row's image ``ROOT/image_name`` exists and decodes."""
    _check_split(split)
    options = _options(images, strict)
    file = require_file(Path(path), "expw")
    lines = read_lines(file)
    collector = options.collector("expw", ())
    collector.add_lines(str(file), lines, 1, partial(_expw_row, split=split))
    return collector.result()


# --- AFEW-VA ----------------------------------------------------------------------------------------
_FRAME_KEY = re.compile(r'"(\d+)"\s*:')


def _afew_value(x: object, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise Reject(name, f"not a number: {x!r}")
    if not math.isfinite(x) or x != int(x):
        raise Reject(name, f"not an integer: {x!r}")
    if not -AFEW_VA_RANGE <= x <= AFEW_VA_RANGE:
        raise Reject(name, f"{x:g} outside [-{AFEW_VA_RANGE}, {AFEW_VA_RANGE}]")
    return float(x) / AFEW_VA_RANGE


def _afew_row(line: str, claim: Claim, *, clip: str, key: str, frame: object, split: str) -> Row:
    del line  # a frame is a JSON object, located by the line of its key
    if not (key.isascii() and key.isdigit()):
        raise Reject("frame", f"frame key {key!r} is not a frame number")
    if not isinstance(frame, dict):
        raise Reject("frame", f"frame {key} is not an object: {type(frame).__name__}")
    for name in ("valence", "arousal", "landmarks"):
        if name not in frame:
            raise Reject(name, f"frame {key} has no {name!r}")
    valence = _afew_value(frame["valence"], "valence")
    arousal = _afew_value(frame["arousal"], "arousal")
    marks = frame["landmarks"]
    if not isinstance(marks, list) or len(marks) != _N_LANDMARKS:
        n = len(marks) if isinstance(marks, list) else type(marks).__name__
        raise Reject("landmarks", f"expected {_N_LANDMARKS} points, found {n}")
    for point in marks:
        ok = isinstance(point, list) and len(point) == 2
        ok = ok and all(
            isinstance(c, int | float) and not isinstance(c, bool) and math.isfinite(c)
            for c in point
        )
        if not ok:
            raise Reject("landmarks", f"a point is not two finite numbers: {point!r}")
    path = f"{clip}/{key}.png"
    claim(path)
    return Row(path, clip, int(key) + 1, EXPR_MISSING, _NO_AUS, valence, arousal, split)


def _clip_files(root: Path) -> list[Path]:
    if not root.exists():
        raise UnusableInputError(f"{root}: no such folder")
    if root.is_file():
        return [root]
    files = sorted(d / f"{d.name}.json" for d in root.iterdir() if (d / f"{d.name}.json").is_file())
    if not files:
        raise UnusableInputError(f"{root}: no clip folder NNN/ holding NNN.json")
    return files


def load_afew_va(
    path: str | Path,
    *,
    split: str = "train",
    images: str | Path | None = None,
    strict: bool = False,
) -> LoadResult:
    """Read AFEW-VA's per-clip JSON files under the folder ``path`` (or one JSON file): layout and
    rules in the module docstring. ``images=ROOT`` also checks each accepted frame's image."""
    _check_split(split)
    options = _options(images, strict)
    collector = options.collector("afew-va", ())
    problems: list[RowError] = []
    files = _clip_files(Path(path))
    for file in files:
        try:
            text = "\n".join(read_lines(file))
            doc = json.loads(text)
        except UnusableInputError as e:
            problems.extend(e.errors or [RowError(str(file), 1, "file", str(e))])
            continue
        except json.JSONDecodeError as e:
            problems.append(RowError(str(file), e.lineno, "file", f"not JSON: {e.msg}"))
            continue
        frames = doc.get("frames") if isinstance(doc, dict) else None
        if not isinstance(frames, dict):
            problems.append(RowError(str(file), 1, "frames", "no 'frames' object"))
            continue
        # the line of each frame's key, in file order (JSON keys of one object are unique here:
        # json.loads keeps the last of duplicates, so a repeated key is caught by the count)
        key_lines = [
            (m.group(1), text.count("\n", 0, m.start()) + 1) for m in _FRAME_KEY.finditer(text)
        ]
        key_lines = [(k, n) for k, n in key_lines if k in frames]
        clip = str(doc.get("video_id") or file.parent.name)
        collector.files.append(str(file))
        seen: set[str] = set()
        for key, line_no in key_lines:
            if key in seen:
                collector.add(str(file), line_no, "", partial(_duplicate_key, key=key))
                continue
            seen.add(key)
            parse = partial(_afew_row, clip=clip, key=key, frame=frames[key], split=split)
            collector.add(str(file), line_no, "", parse)
        for key in frames:
            if key not in seen:  # a key the line search missed (not digits): rejected on line 1
                parse = partial(_afew_row, clip=clip, key=key, frame=frames[key], split=split)
                collector.add(str(file), 1, "", parse)
    if problems:
        listing = "\n".join(str(p) for p in problems)
        raise UnusableInputError(
            f"{len(problems)} of {len(files)} files cannot be read as afew-va:\n{listing}",
            problems,
        )
    return collector.result()


def _duplicate_key(line: str, claim: Claim, *, key: str) -> Row:
    raise Reject("frame", f"frame key {key!r} written twice (JSON keeps the last)")
