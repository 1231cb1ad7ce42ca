"""Label spaces of the data sets the study uses, their invalid markers, and mappings between them.

Every loader converts its data set's codes to the ABAW space below, which is also the space of the
standard annotation table (see ``affectlib.data.formats``):

- expressions 0..7: Neutral, Anger, Disgust, Fear, Happiness, Sadness, Surprise, Other; ``-1`` = no label;
- action units: one column ``AU<n>`` per AU, 1 / 0, ``-1`` = no label;
- valence, arousal: floats in [-1, 1], ``-5`` = no label.
"""

from __future__ import annotations

# --- ABAW (Aff-Wild2, ABAW3/4 multi-task learning challenge) ---------------------------------
EXPRESSIONS: tuple[str, ...] = (
    "Neutral",
    "Anger",
    "Disgust",
    "Fear",
    "Happiness",
    "Sadness",
    "Surprise",
    "Other",
)
N_EXPR = len(EXPRESSIONS)
ABAW_AUS: tuple[int, ...] = (1, 2, 4, 6, 7, 10, 12, 15, 23, 24, 25, 26)
AU_COLUMNS: tuple[str, ...] = tuple(f"AU{a}" for a in ABAW_AUS)
N_AU = len(ABAW_AUS)

EXPR_MISSING = -1
AU_MISSING = -1
VA_MISSING = -5.0

# the six basic expressions, by their ABAW index (Neutral and Other excluded)
BASIC_EXPRESSIONS: tuple[str, ...] = (
    "Anger",
    "Disgust",
    "Fear",
    "Happiness",
    "Sadness",
    "Surprise",
)

# --- EmotioNet (EmotioNet challenge 2017-2020): the 25 AUs it annotates -------------------------
EMOTIONET_AUS: tuple[int, ...] = (
    1, 2, 4, 5, 6, 9, 12, 17, 20, 25, 26, 43,  # the 12 AUs of the 2017-2018 challenges
    7, 10, 15, 18, 23, 24, 28, 51, 52, 53, 54, 55, 56,  # 13 more, head pose (51-56) included
)  # fmt: skip
# EmotioNet's annotation files mark an AU present (1), absent (0) or not coded (999)
EMOTIONET_NOT_CODED = 999

# --- AffectNet (Mollahosseini et al. 2017) ------------------------------------------------------
AFFECTNET_CODES: dict[int, str] = {
    0: "Neutral",
    1: "Happy",
    2: "Sad",
    3: "Surprise",
    4: "Fear",
    5: "Disgust",
    6: "Anger",
    7: "Contempt",
    8: "None",
    9: "Uncertain",
    10: "Non-Face",
}
AFFECTNET_VA_MISSING = -2.0  # AffectNet writes -2 where valence/arousal was not annotated

# --- RAF-DB basic (Li et al. 2017) --------------------------------------------------------------
RAFDB_CODES: dict[int, str] = {
    1: "Surprise",
    2: "Fear",
    3: "Disgust",
    4: "Happiness",
    5: "Sadness",
    6: "Anger",
    7: "Neutral",
}

# --- mappings to ABAW indices --------------------------------------------------------------------
_ABAW_INDEX = {name: i for i, name in enumerate(EXPRESSIONS)}

# AffectNet -> ABAW. Contempt has no ABAW class of its own; ABAW's "Other" collects expressions outside
# the basic six, so Contempt maps to Other. None/Uncertain/Non-Face carry no expression: -1.
AFFECTNET_TO_ABAW: dict[int, int] = {
    0: _ABAW_INDEX["Neutral"],
    1: _ABAW_INDEX["Happiness"],
    2: _ABAW_INDEX["Sadness"],
    3: _ABAW_INDEX["Surprise"],
    4: _ABAW_INDEX["Fear"],
    5: _ABAW_INDEX["Disgust"],
    6: _ABAW_INDEX["Anger"],
    7: _ABAW_INDEX["Other"],
    8: EXPR_MISSING,
    9: EXPR_MISSING,
    10: EXPR_MISSING,
}
ABAW_TO_AFFECTNET: dict[int, int] = {
    v: k for k, v in AFFECTNET_TO_ABAW.items() if v != EXPR_MISSING and k != 7
}
ABAW_TO_AFFECTNET[_ABAW_INDEX["Other"]] = 7

RAFDB_TO_ABAW: dict[int, int] = {code: _ABAW_INDEX[name] for code, name in RAFDB_CODES.items()}
ABAW_TO_RAFDB: dict[int, int] = {v: k for k, v in RAFDB_TO_ABAW.items()}


def expr_index(name: str) -> int:
    """ABAW index of an expression name (case-insensitive; 'happy'/'sad'/'angry' accepted)."""
    aliases = {"happy": "happiness", "sad": "sadness", "angry": "anger", "surprised": "surprise"}
    key = aliases.get(name.strip().lower(), name.strip().lower())
    for i, n in enumerate(EXPRESSIONS):
        if n.lower() == key:
            return i
    raise KeyError(f"unknown expression name {name!r}; known: {', '.join(EXPRESSIONS)}")


def au_column(au: int) -> str:
    """Column name of an AU in the annotation table: 12 -> 'AU12'."""
    return f"AU{int(au)}"
