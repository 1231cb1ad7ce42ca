"""Tests for affectlib.data.formats: every loader on hand-written files in the real layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from affectlib.data.formats import FORMATS, load, merge_tasks
from affectlib.data.parsing import AnnotationError, LoadResult, UnusableInputError
from affectlib.data.table import (
    au_columns_of,
    au_number,
    build_table,
    concat_tables,
    empty_table,
    table_columns,
)
from affectlib.labels import AU_COLUMNS, EMOTIONET_AUS

MTL_HEADER = "image,valence,arousal,expression,aus"
MTL_HEADER_NAMED = "image,valence,arousal,expression," + ",".join(AU_COLUMNS)
AUS_ON = "0,1,0,0,0,0,1,0,0,0,1,0"  # AU2, AU12, AU25 present
AUS_NONE = ",".join(["-1"] * 12)
EXPR_HEADER = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
AU_HEADER = ",".join(AU_COLUMNS)
AFFECTNET_HEADER = (
    "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,"
    "expression,valence,arousal"
)
LANDMARKS = ";".join(f"{x:.2f}" for x in np.linspace(10, 200, 136))


def mtl_line(
    path: str = "v1/00003.jpg",
    v: str = "0.5",
    a: str = "-0.25",
    expr: str = "3",
    aus: str = AUS_ON,
) -> str:
    return f"{path},{v},{a},{expr},{aus}"


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_bytes(content.encode("utf-8"))
    else:
        path.write_bytes(content)
    return path


def assert_totals(result: LoadResult) -> None:
    assert result.accepted + result.rejected == result.rows_read
    assert result.rejected == len(result.errors)


def mtl_file(tmp_path: Path, bad_line: str, name: str = "training_set_annotations.txt") -> Path:
    """Header, a good row (line 2), ``bad_line`` (line 3), a good row (line 4)."""
    lines = [MTL_HEADER, mtl_line("v1/00002.jpg"), bad_line, mtl_line("v1/00004.jpg")]
    return write(tmp_path / name, "\n".join(lines) + "\n")


# --- abaw-mtl -------------------------------------------------------------------------------------


def test_mtl_row_becomes_one_table_row_with_labels_as_written(tmp_path):
    lines = [MTL_HEADER, mtl_line("vid_7/00012.jpg", "0.5", "-0.25", "3", AUS_ON)]
    lines.append(mtl_line("vid_7/00013.jpg", "-5", "-5.0", "-1", AUS_NONE))
    file = write(tmp_path / "training_set_annotations.txt", "\n".join(lines) + "\n")
    result = load(file, "abaw-mtl")
    t = result.table
    assert list(t.columns) == table_columns(AU_COLUMNS)
    assert t["path"].tolist() == ["vid_7/00012.jpg", "vid_7/00013.jpg"]
    assert t["video"].tolist() == ["vid_7", "vid_7"]
    assert t["frame"].tolist() == [12, 13]
    assert t["expr"].tolist() == [3, -1]
    on = {c: int(t.loc[0, c]) for c in AU_COLUMNS if t.loc[0, c] == 1}
    assert on == {"AU2": 1, "AU12": 1, "AU25": 1}
    assert (t.loc[1, list(AU_COLUMNS)] == -1).all()
    assert t["valence"].tolist() == [0.5, -5.0]
    assert t["arousal"].tolist() == [-0.25, -5.0]
    assert set(t["split"]) == {"train"}
    assert set(t["source"]) == {"abaw-mtl"}
    assert t["ann_line"].tolist() == [2, 3]
    assert t["ann_file"].tolist() == [str(file)] * 2
    assert (result.rows_read, result.accepted, result.rejected) == (2, 2, 0)


def test_mtl_header_naming_the_12_aus_reads_like_the_challenge_header(tmp_path):
    body = "\n".join([mtl_line("v1/00001.jpg"), mtl_line("v1/00002.jpg", expr="-1")]) + "\n"
    short = load(write(tmp_path / "a" / "train.txt", MTL_HEADER + "\n" + body), "abaw-mtl")
    named = load(write(tmp_path / "b" / "train.txt", MTL_HEADER_NAMED + "\n" + body), "abaw-mtl")
    cols = [c for c in short.table.columns if c != "ann_file"]
    pd.testing.assert_frame_equal(short.table[cols], named.table[cols])
    assert named.accepted == 2


@pytest.mark.parametrize(
    "variant",
    ["crlf", "trailing_spaces", "final_empty_line", "bom", "all_at_once"],
)
def test_mtl_accepts_crlf_trailing_spaces_final_empty_line_and_bom(tmp_path, variant):
    lines = [MTL_HEADER, mtl_line("v1/00001.jpg"), mtl_line("v1/00002.jpg", v="-5", a="-5")]
    plain = load(write(tmp_path / "plain" / "train.txt", "\n".join(lines) + "\n"), "abaw-mtl")
    raw = "\n".join(lines) + "\n"
    if variant in ("trailing_spaces", "all_at_once"):
        raw = "\n".join(line + "   " for line in lines) + "\n"
    if variant in ("final_empty_line", "all_at_once"):
        raw += "\n"
    if variant in ("crlf", "all_at_once"):
        raw = raw.replace("\n", "\r\n")
    data = raw.encode("utf-8")
    if variant in ("bom", "all_at_once"):
        data = b"\xef\xbb\xbf" + data
    result = load(write(tmp_path / variant / "train.txt", data), "abaw-mtl")
    cols = [c for c in plain.table.columns if c != "ann_file"]
    pd.testing.assert_frame_equal(result.table[cols], plain.table[cols])
    assert (result.rows_read, result.rejected) == (2, 0)


REJECTIONS = [
    ("wrong field count", mtl_line(aus="0,1"), "fields", "expected 16 fields, found 6"),
    ("empty line", "", "fields", "empty line"),
    ("non-number", mtl_line(v="abc"), "valence", "not a number"),
    ("valence above 1", mtl_line(v="1.5"), "valence", "outside [-1, 1]"),
    ("arousal below -1", mtl_line(a="-1.01"), "arousal", "outside [-1, 1]"),
    ("arousal marker alone", mtl_line(a="-5"), "arousal", "both or neither"),
    ("valence marker alone", mtl_line(v="-5.0"), "valence", "both or neither"),
    ("expression 8", mtl_line(expr="8"), "expression", "outside -1..7"),
    ("expression -2", mtl_line(expr="-2"), "expression", "outside -1..7"),
    ("expression not integer", mtl_line(expr="2.5"), "expression", "not an integer"),
    ("AU value 2", mtl_line(aus="2" + AUS_ON[1:]), "AU1", "not in 0, 1, -1"),
    ("some AUs -1", mtl_line(aus="0,-1" + AUS_ON[3:]), "AU2", "all or none"),
    ("absolute path", mtl_line(path="/data/v1/00003.jpg"), "image", "absolute"),
    ("windows path", mtl_line(path="v1\\00003.jpg"), "image", "backslash"),
    ("escaping path", mtl_line(path="../v1/00003.jpg"), "image", "escapes"),
    ("NaN", mtl_line(v="nan"), "valence", "not a finite number"),
    ("inf", mtl_line(a="inf"), "arousal", "not a finite number"),
    ("duplicate image", mtl_line(path="v1/00002.jpg"), "image", "first on line 2"),
    ("frame not a number", mtl_line(path="v1/frame.jpg"), "image", "not a frame number"),
    ("no video folder", mtl_line(path="00003.jpg"), "image", "no video folder"),
]


@pytest.mark.parametrize(
    ("bad_line", "field", "reason"),
    [case[1:] for case in REJECTIONS],
    ids=[case[0] for case in REJECTIONS],
)
def test_mtl_rejects_a_bad_row_naming_its_line_and_field(tmp_path, bad_line, field, reason):
    file = mtl_file(tmp_path, bad_line)
    result = load(file, "abaw-mtl")
    assert (result.rows_read, result.accepted, result.rejected) == (3, 2, 1)
    assert_totals(result)
    (error,) = result.errors
    assert (error.file, error.line, error.field) == (str(file), 3, field)
    assert reason in error.reason
    assert str(error) == f"{file}:3: {field}: {error.reason}"
    assert result.table["path"].tolist() == ["v1/00002.jpg", "v1/00004.jpg"]


def test_strict_mode_raises_on_the_first_bad_row(tmp_path):
    lines = [MTL_HEADER, mtl_line("v1/00001.jpg"), mtl_line("v1/00002.jpg", expr="9")]
    lines.append(mtl_line("v1/00003.jpg", v="7"))
    file = write(tmp_path / "train.txt", "\n".join(lines) + "\n")
    with pytest.raises(AnnotationError) as info:
        load(file, "abaw-mtl", strict=True)
    assert (info.value.error.line, info.value.error.field) == (3, "expression")
    assert isinstance(info.value, ValueError)
    lenient = load(file, "abaw-mtl")
    assert [e.line for e in lenient.errors] == [3, 4]


def test_blank_line_inside_the_file_is_a_rejected_row_but_trailing_ones_are_not_rows(tmp_path):
    text = "\n".join([MTL_HEADER, mtl_line("v1/00001.jpg"), "", mtl_line("v1/00002.jpg")])
    result = load(write(tmp_path / "train.txt", text + "\n\n \n"), "abaw-mtl")
    assert (result.rows_read, result.accepted, result.rejected) == (3, 2, 1)
    assert result.errors[0].line == 3


def test_header_only_file_reads_zero_rows_into_an_empty_table(tmp_path):
    result = load(write(tmp_path / "train.txt", MTL_HEADER + "\n"), "abaw-mtl")
    assert (result.rows_read, result.accepted, result.rejected) == (0, 0, 0)
    assert result.table.dtypes.equals(empty_table().dtypes)


@pytest.mark.parametrize(
    ("content", "field", "reason"),
    [
        (b"", "file", "empty file"),
        (b"\n \n\r\n", "file", "empty file"),
        (b"image,valence,arousal\nv1/00001.jpg,0,0\n", "header", "expected"),
        (mtl_line("v1/00001.jpg").encode() + b"\n", "header", "expected"),
        (b"image,valence\n\xff\xfe\n", "file", "not UTF-8"),
    ],
    ids=["empty", "only blank lines", "wrong header", "no header", "not utf-8"],
)
def test_empty_file_and_wrong_header_are_unusable_naming_line_1(tmp_path, content, field, reason):
    file = write(tmp_path / "train.txt", content)
    with pytest.raises(UnusableInputError) as info:
        load(file, "abaw-mtl")
    (error,) = info.value.errors
    assert (error.file, error.line, error.field) == (str(file), 1, field)
    assert reason in error.reason
    assert str(file) in str(info.value)


def test_missing_file_and_directory_are_unusable_with_a_clear_message(tmp_path):
    with pytest.raises(UnusableInputError, match="no such file"):
        load(tmp_path / "absent_train.txt", "abaw-mtl")
    (tmp_path / "train_dir").mkdir()
    with pytest.raises(UnusableInputError, match="is a directory"):
        load(tmp_path / "train_dir", "abaw-mtl")


def test_split_is_inferred_from_the_file_name_else_unspecified_never_train(tmp_path):
    body = MTL_HEADER + "\n" + mtl_line("v1/00001.jpg") + "\n"
    valid = load(write(tmp_path / "validation_set_annotations.txt", body), "abaw-mtl")
    assert valid.table["split"].tolist() == ["validation"]
    unnamed = write(tmp_path / "annotations.txt", body)
    assert load(unnamed, "abaw-mtl").table["split"].tolist() == ["unspecified"]
    both = load(write(tmp_path / "train_test.txt", body), "abaw-mtl")
    assert both.table["split"].tolist() == ["unspecified"]
    assert load(unnamed, "abaw-mtl", split="test").table["split"].tolist() == ["test"]


def test_unknown_format_or_split_name_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="unknown annotation format"):
        load(tmp_path / "x.txt", "abaw")
    with pytest.raises(ValueError, match="unknown split"):
        load(tmp_path / "x.txt", "abaw-mtl", split="val")


# --- abaw per-task folders -----------------------------------------------------------------------


def task_folder(root: Path, split_dir: str, files: dict[str, list[str]], header: str) -> Path:
    folder = root / split_dir
    for name, rows in files.items():
        write(folder / f"{name}.txt", "\n".join([header, *rows]) + "\n")
    return folder


def test_expr_folder_numbers_frames_by_line_and_keeps_left_right_video_names(tmp_path):
    files = {"video1": ["0", "-1", "7"], "12-24_left": ["4"], "12-24_right": ["5", "6"]}
    folder = task_folder(tmp_path, "Train_Set", files, EXPR_HEADER)
    result = load(folder, "abaw-expr")
    t = result.table.set_index("path")
    assert sorted(t.index) == [
        "12-24_left/00001.jpg",
        "12-24_right/00001.jpg",
        "12-24_right/00002.jpg",
        "video1/00001.jpg",
        "video1/00002.jpg",
        "video1/00003.jpg",
    ]
    assert t.loc["video1/00003.jpg", "expr"] == 7
    assert t.loc["video1/00003.jpg", "frame"] == 3
    assert t.loc["video1/00003.jpg", "ann_line"] == 4
    assert t.loc["12-24_right/00002.jpg", "video"] == "12-24_right"
    assert t.loc["12-24_right/00002.jpg", "expr"] == 6
    assert (t[list(AU_COLUMNS)] == -1).all().all()
    assert (t[["valence", "arousal"]] == -5.0).all().all()
    assert set(t["split"]) == {"train"}
    assert len(result.files) == 3
    assert (result.rows_read, result.accepted) == (6, 6)


def test_task_rejections_keep_the_frame_numbering_of_the_following_lines(tmp_path):
    folder = task_folder(tmp_path, "Train_Set", {"v": ["1", "9", "", "2"]}, EXPR_HEADER)
    result = load(folder, "abaw-expr")
    assert [(e.line, e.field) for e in result.errors] == [(3, "expression"), (4, "fields")]
    assert result.table["frame"].tolist() == [1, 4]
    assert result.table["expr"].tolist() == [1, 2]
    assert_totals(result)


def test_au_folder_reads_12_aus_and_rejects_a_partly_missing_row(tmp_path):
    rows = [AUS_ON, AUS_NONE, "1,-1" + AUS_ON[3:], "1,0"]
    result = load(task_folder(tmp_path, "Train_Set", {"v": rows}, AU_HEADER), "abaw-au")
    assert [(e.line, e.field) for e in result.errors] == [(4, "AU2"), (5, "fields")]
    t = result.table
    assert t["frame"].tolist() == [1, 2]
    assert t.loc[0, list(AU_COLUMNS)].tolist() == [int(x) for x in AUS_ON.split(",")]
    assert t["expr"].tolist() == [-1, -1]
    assert_totals(result)


def test_va_folder_infers_validation_from_its_name_and_checks_ranges(tmp_path):
    rows = ["0.25,-0.5", "-5,-5", "0.3,-5", "1.2,0"]
    folder = task_folder(tmp_path, "Validation_Set", {"v": rows}, "valence,arousal")
    result = load(folder, "abaw-va")
    assert result.table["valence"].tolist() == [0.25, -5.0]
    assert set(result.table["split"]) == {"validation"}
    assert [(e.line, e.field) for e in result.errors] == [(4, "arousal"), (5, "valence")]


def test_single_task_file_is_accepted_and_takes_the_split_of_its_folder(tmp_path):
    folder = task_folder(tmp_path, "Validation_Set", {"v9": ["3", "4"]}, EXPR_HEADER)
    result = load(folder / "v9.txt", "abaw-expr")
    assert result.table["path"].tolist() == ["v9/00001.jpg", "v9/00002.jpg"]
    assert set(result.table["split"]) == {"validation"}


def test_task_folder_without_txt_or_with_a_bad_header_is_unusable(tmp_path):
    (tmp_path / "Train_Set").mkdir()
    with pytest.raises(UnusableInputError, match="no .txt"):
        load(tmp_path / "Train_Set", "abaw-va")
    folder = task_folder(tmp_path, "T2_Train_Set", {"a": ["0.1,0.1"]}, "valence,arousal")
    write(folder / "b.txt", "arousal,valence\n0.1,0.1\n")
    write(folder / "c.txt", "")
    with pytest.raises(UnusableInputError) as info:
        load(folder, "abaw-va")
    assert [(Path(e.file).name, e.line, e.field) for e in info.value.errors] == [
        ("b.txt", 1, "header"),
        ("c.txt", 1, "file"),
    ]


def test_task_folder_without_a_split_in_its_name_gives_unspecified_rows(tmp_path):
    folder = task_folder(tmp_path, "annotations", {"v": ["1"]}, EXPR_HEADER)
    assert load(folder, "abaw-expr").table["split"].tolist() == ["unspecified"]
    assert load(folder, "abaw-expr", split="train").table["split"].tolist() == ["train"]


def test_merge_tasks_gives_absent_tasks_their_markers(tmp_path):
    expr = load(
        task_folder(tmp_path / "e", "Train_Set", {"v": ["1", "2", "3"]}, EXPR_HEADER), "abaw-expr"
    )
    au = load(
        task_folder(tmp_path / "a", "Train_Set", {"v": [AUS_ON, AUS_NONE]}, AU_HEADER), "abaw-au"
    )
    va_rows = ["-5,-5", "0.1,0.2", "0.3,0.4", "-5,-5"]  # VA labels frames 2 and 3 only
    va = load(
        task_folder(tmp_path / "v", "Train_Set", {"v": va_rows}, "valence,arousal"), "abaw-va"
    )
    table = merge_tasks(expr, au, va)
    assert list(table.columns) == table_columns(AU_COLUMNS)
    merged = table.set_index("frame")
    assert merged.index.tolist() == [1, 2, 3, 4]
    assert merged["expr"].tolist() == [1, 2, 3, -1]
    assert merged.loc[1, list(AU_COLUMNS)].tolist() == [int(x) for x in AUS_ON.split(",")]
    assert (merged.loc[[2, 3, 4], list(AU_COLUMNS)] == -1).all().all()
    assert merged["valence"].tolist() == [-5.0, 0.1, 0.3, -5.0]
    assert merged["arousal"].tolist() == [-5.0, 0.2, 0.4, -5.0]
    assert merged.loc[4, "source"] == "abaw-va"
    assert merged.loc[1, "source"] == "abaw-expr+abaw-au+abaw-va"
    assert merged["ann_line"].tolist() == [2, 3, 4, 5]
    assert merged.loc[3, "ann_file"].count(";") == 1  # expr and va files


def test_merge_tasks_keeps_a_frame_once_per_split_when_task_partitions_differ(tmp_path):
    expr = load(task_folder(tmp_path / "e", "Train_Set", {"v": ["1"]}, EXPR_HEADER), "abaw-expr")
    va = load(
        task_folder(tmp_path / "v", "Validation_Set", {"v": ["0.5,0.5"]}, "valence,arousal"),
        "abaw-va",
    )
    merged = merge_tasks(expr, None, va).sort_values("split")
    assert merged["split"].tolist() == ["train", "validation"]
    assert merged["expr"].tolist() == [1, -1]
    assert merged["valence"].tolist() == [-5.0, 0.5]


def test_merge_tasks_refuses_no_input_or_a_table_of_the_wrong_task(tmp_path):
    expr = load(task_folder(tmp_path, "Train_Set", {"v": ["1"]}, EXPR_HEADER), "abaw-expr")
    with pytest.raises(ValueError, match="at least one"):
        merge_tasks(None, None, None)
    with pytest.raises(ValueError, match="abaw-au argument"):
        merge_tasks(None, expr, None)


# --- affectnet -------------------------------------------------------------------------------------


def affectnet_line(path: str, expr: str, v: str, a: str, box="10,12,100,100", lm=LANDMARKS) -> str:
    return f"{path},{box},{lm},{expr},{v},{a}"


def test_affectnet_maps_codes_to_abaw_and_its_va_marker_to_minus_5(tmp_path):
    rows = [
        affectnet_line("689/a.jpg", "0", "0.1", "0.2"),  # Neutral
        affectnet_line("689/b.jpg", "1", "0.8", "0.3"),  # Happy -> Happiness (4)
        affectnet_line("7/c.jpg", "7", "-0.4", "0.5"),  # Contempt -> Other (7)
        affectnet_line("7/d.png", "10", "-2", "-2"),  # Non-Face -> no label
    ]
    file = write(tmp_path / "training.csv", "\n".join([AFFECTNET_HEADER, *rows]) + "\n")
    result = load(file, "affectnet")
    t = result.table
    assert list(t.columns) == table_columns(AU_COLUMNS)
    assert t["expr"].tolist() == [0, 4, 7, -1]
    assert t["valence"].tolist() == [0.1, 0.8, -0.4, -5.0]
    assert t["arousal"].tolist() == [0.2, 0.3, 0.5, -5.0]
    assert (t[list(AU_COLUMNS)] == -1).all().all()
    assert t["video"].tolist() == [""] * 4
    assert t["frame"].tolist() == [-1] * 4
    assert set(t["split"]) == {"train"}
    val = write(tmp_path / "validation.csv", "\n".join([AFFECTNET_HEADER, rows[0]]) + "\n")
    assert load(val, "affectnet").table["split"].tolist() == ["validation"]


@pytest.mark.parametrize(
    ("row", "field", "reason"),
    [
        (
            affectnet_line("1/x.jpg", "1", "0", "0", lm=LANDMARKS.rsplit(";", 1)[0]),
            "facial_landmarks",
            "found 135",
        ),
        (
            affectnet_line("1/x.jpg", "1", "0", "0", lm=LANDMARKS.replace("10.00", "ten")),
            "facial_landmarks",
            "not a number",
        ),
        (affectnet_line("1/x.jpg", "1", "0", "0", box="a,12,100,100"), "face_x", "not a number"),
        (affectnet_line("1/x.jpg", "11", "0", "0"), "expression", "outside 0..10"),
        (affectnet_line("1/x.jpg", "1", "1.2", "0"), "valence", "outside [-1, 1]"),
        (affectnet_line("1/x.jpg", "1", "-2", "0.3"), "valence", "both or neither"),
        (affectnet_line("1/x.jpg", "1", "-5", "-5"), "valence", "outside [-1, 1]"),
        (affectnet_line("/abs/x.jpg", "1", "0", "0"), "subDirectory_filePath", "absolute"),
    ],
    ids=[
        "135 landmarks",
        "landmark text",
        "box text",
        "code 11",
        "valence 1.2",
        "valence marker alone",
        "abaw marker",
        "absolute",
    ],
)
def test_affectnet_rejects_bad_rows_by_line(tmp_path, row, field, reason):
    rows = [affectnet_line("1/ok.jpg", "2", "0", "0"), row]
    result = load(
        write(tmp_path / "training.csv", "\n".join([AFFECTNET_HEADER, *rows])), "affectnet"
    )
    (error,) = result.errors
    assert (error.line, error.field) == (3, field)
    assert reason in error.reason
    assert_totals(result)


# --- rafdb ----------------------------------------------------------------------------------------


def test_rafdb_maps_labels_and_names_the_aligned_image_with_split_from_prefix(tmp_path):
    text = "train_00001.jpg 5\ntest_0001.jpg 1\ntrain_00002.jpg  7  \n"
    result = load(write(tmp_path / "EmoLabel" / "list_patition_label.txt", text), "rafdb")
    t = result.table
    assert t["path"].tolist() == [
        "train_00001_aligned.jpg",
        "test_0001_aligned.jpg",
        "train_00002_aligned.jpg",
    ]
    # RAF-DB 5 Sadness, 1 Surprise, 7 Neutral -> ABAW 5, 6, 0
    assert t["expr"].tolist() == [5, 6, 0]
    assert t["split"].tolist() == ["train", "test", "train"]
    assert t["ann_line"].tolist() == [1, 2, 3]
    assert (t[list(AU_COLUMNS)] == -1).all().all()
    assert (t["valence"] == -5.0).all()


def test_rafdb_rejects_codes_names_and_field_counts_by_line(tmp_path):
    lines = [
        "train_00001.jpg 0",
        "train_00002.jpg 8",
        "train_00003.jpg 1 2",
        "img_00004.jpg 1",
        "train_00001.jpg 2",
        "train_00005 3",
        "train_00006.jpg 4",
    ]
    result = load(write(tmp_path / "list_patition_label.txt", "\n".join(lines)), "rafdb")
    assert [(e.line, e.field) for e in result.errors] == [
        (1, "label"),
        (2, "label"),
        (3, "fields"),
        (4, "name"),
        (5, "image"),
        (6, "name"),
    ]
    assert "first on line 1" in result.errors[4].reason
    assert result.table["path"].tolist() == ["train_00006_aligned.jpg"]
    assert_totals(result)


def test_rafdb_explicit_split_applies_to_every_row(tmp_path):
    file = write(tmp_path / "list_patition_label.txt", "train_1.jpg 1\nother_2.jpg 2\n")
    assert load(file, "rafdb", split="test").table["split"].tolist() == ["test", "test"]


# --- emotionet ------------------------------------------------------------------------------------


def emotionet_challenge_line(url: str, coded: dict[int, int], second: str = "") -> str:
    """A dataFile_*.txt row: URL, URL_orig, AU1..AU60 with ``coded`` values, 999 elsewhere."""
    values = [str(coded.get(au, 999)) for au in range(1, 61)]
    return "\t".join([url, second or url.replace("https://", "http://orig."), *values])


def test_emotionet_challenge_layout_keeps_the_emotionet_aus_and_maps_999(tmp_path):
    coded = {au: i % 2 for i, au in enumerate(EMOTIONET_AUS)}
    coded[4] = 999
    rows = [
        emotionet_challenge_line("https://cdn.example.org/a/N_0000000001_00001.jpg", coded),
        emotionet_challenge_line("https://cdn.example.org/b/N%200002.jpg?x=1", {1: 1}),
    ]
    file = write(tmp_path / "dataFile_1001.txt", "\n".join(rows) + "\n")
    assert set(load(file, "emotionet").table["split"]) == {"unspecified"}
    result = load(file, "emotionet", split="train")
    t = result.table
    assert list(t.columns) == table_columns([f"AU{n}" for n in EMOTIONET_AUS])
    assert t["path"].tolist() == ["N_0000000001_00001.jpg", "N 0002.jpg"]
    expected = {f"AU{au}": (-1 if v == 999 else v) for au, v in coded.items()}
    assert {c: int(t.loc[0, c]) for c in expected} == expected
    assert t.loc[1, "AU1"] == 1 and t.loc[1, "AU2"] == -1
    assert t["expr"].tolist() == [-1, -1]
    assert (t["valence"] == -5.0).all()


def test_emotionet_header_layout_keeps_named_emotionet_aus_and_a_relative_second_field(tmp_path):
    lines = [
        "URL\tlocal\tAU12\tAU1\tAU3",
        "https://x.org/img/1.jpg\timages/0001.jpg\t1\t0\t999",
        "https://x.org/img/2.jpg\t\t999\t1\t0",
        "https://x.org/img/3.jpg\t\t2\t1\t0",
    ]
    result = load(write(tmp_path / "emotionet_valid.txt", "\n".join(lines)), "emotionet")
    t = result.table
    assert list(t.columns) == table_columns(["AU1", "AU12"])  # labels.EMOTIONET_AUS order
    assert t["path"].tolist() == ["images/0001.jpg", "2.jpg"]
    assert t["AU1"].tolist() == [0, 1]
    assert t["AU12"].tolist() == [1, -1]
    assert set(t["split"]) == {"validation"}
    assert [(e.line, e.field) for e in result.errors] == [(4, "AU12")]


def test_emotionet_25_field_layout_follows_labels_emotionet_aus(tmp_path):
    values = ["999"] * len(EMOTIONET_AUS)
    values[EMOTIONET_AUS.index(7)] = "1"
    row = "\t".join(["https://x.org/p.jpg", "", *values])
    t = load(write(tmp_path / "train.txt", row + "\n"), "emotionet").table
    assert t.loc[0, "AU7"] == 1
    assert (t.drop(columns="AU7").filter(regex=r"^AU").to_numpy() == -1).all()


def test_emotionet_unknown_layout_is_unusable_and_bad_urls_are_rejected(tmp_path):
    with pytest.raises(UnusableInputError) as info:
        load(write(tmp_path / "a_train.txt", "u\tv\t1\t0\n"), "emotionet")
    assert info.value.errors[0].field == "header"
    rows = [
        emotionet_challenge_line("https://x.org/dir/", {1: 1}, second="https://y.org/"),
        emotionet_challenge_line("not a url", {1: 1}, second="also not"),
        emotionet_challenge_line("https://x.org/ok.jpg", {1: 3}),
    ]
    result = load(write(tmp_path / "b_train.txt", "\n".join(rows)), "emotionet")
    assert [(e.line, e.field) for e in result.errors] == [(1, "url"), (2, "url"), (3, "AU1")]
    assert_totals(result)


# --- image check ------------------------------------------------------------------------------------


def test_images_check_rejects_missing_and_undecodable_images_by_line(tmp_path):
    root = tmp_path / "cropped_aligned"
    (root / "v1").mkdir(parents=True)
    Image.new("RGB", (8, 8), (200, 10, 10)).save(root / "v1" / "00001.jpg")
    (root / "v1" / "00003.jpg").write_bytes(b"this is not a JPEG")
    lines = [MTL_HEADER] + [mtl_line(f"v1/0000{i}.jpg") for i in (1, 2, 3)]
    file = write(tmp_path / "train.txt", "\n".join(lines) + "\n")
    result = load(file, "abaw-mtl", images=root)
    assert result.table["path"].tolist() == ["v1/00001.jpg"]
    assert [(e.line, e.field) for e in result.errors] == [(3, "image"), (4, "image")]
    assert "not found" in result.errors[0].reason
    assert "cannot decode" in result.errors[1].reason
    assert_totals(result)
    assert load(file, "abaw-mtl").accepted == 3  # without images= nothing is opened
    with pytest.raises(UnusableInputError, match="image root"):
        load(file, "abaw-mtl", images=tmp_path / "absent")


# --- the table ----------------------------------------------------------------------------------------


def test_tables_from_every_loader_concatenate_with_stable_dtypes(tmp_path):
    mtl = load(mtl_file(tmp_path, mtl_line()), "abaw-mtl").table
    affectnet = load(
        write(
            tmp_path / "training.csv",
            AFFECTNET_HEADER + "\n" + affectnet_line("1/a.jpg", "1", "0", "0"),
        ),
        "affectnet",
    ).table
    rafdb = load(write(tmp_path / "list_patition_label.txt", "train_1.jpg 1\n"), "rafdb").table
    stacked = pd.concat([mtl, affectnet, rafdb, empty_table()], ignore_index=True)
    assert stacked.dtypes.equals(mtl.dtypes)
    assert stacked.dtypes.equals(empty_table().dtypes)
    assert stacked["AU1"].dtype == np.int64
    assert len(stacked) == 3 + 1 + 1


def test_concat_tables_unions_au_columns_filling_minus_1(tmp_path):
    mtl = load(mtl_file(tmp_path, mtl_line()), "abaw-mtl").table
    row = "\t".join(["https://x.org/p.jpg", "", "1", "0"])
    emo = load(write(tmp_path / "train.txt", f"URL\tX\tAU5\tAU1\n{row}\n"), "emotionet").table
    both = concat_tables([mtl, emo])
    aus = [c for c in both.columns if c.startswith("AU")]
    assert aus == sorted({*AU_COLUMNS, "AU5"}, key=lambda c: int(c[2:]))
    assert both["AU5"].tolist() == [-1, -1, -1, 1]
    assert both["AU2"].tolist()[-1] == -1
    assert (both[aus].dtypes == np.int64).all()


def test_build_table_names_missing_columns_and_rejects_bad_au_names():
    data = {c: [] for c in table_columns()}
    del data["split"]
    with pytest.raises(ValueError, match="missing \\['split'\\]"):
        build_table(data)
    with pytest.raises(ValueError, match="'AU'"):
        table_columns(["AU"])


def test_every_format_name_is_loadable_and_a_missing_path_is_unusable(tmp_path):
    for name in FORMATS:
        with pytest.raises(UnusableInputError):
            load(tmp_path / "missing_train", name)


def test_au_number_is_the_one_parser_of_au_column_names():
    assert au_number("AU12") == 12 and au_number("AU1") == 1
    for bad in ("AU0", "AU", "au12", "AU12a", "valence"):
        with pytest.raises(ValueError, match="not named AU<n>"):
            au_number(bad)
    table = pd.DataFrame(columns=["path", "AU2", "AU10", "AUx", "valence"])
    assert au_columns_of(table) == ("AU2", "AU10")
