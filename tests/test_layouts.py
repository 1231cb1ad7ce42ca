"""Layout detection (``--format auto``) and the readers of the alternative layouts, on the embedded
smoke set exported in each layout (affectlib.data.export_layouts) and on hand-written files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from affectlib import profiles
from affectlib.data import generate, layout_readers, layouts, study
from affectlib.data.export_layouts import EXPORTED, affectnet_folder_name, export_layouts
from affectlib.data.parsing import AnnotationError, UnusableInputError
from affectlib.labels import AU_COLUMNS, VA_MISSING

LABELS = ["expr", *AU_COLUMNS, "valence", "arousal", "split"]


@pytest.fixture(scope="module")
def embedded() -> Path:
    return generate.ensure(profiles.get("smoke"), 0)


@pytest.fixture(scope="module")
def exported(embedded, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("layouts")
    report = export_layouts(embedded, out)
    return out, report


def load(folder: Path, format: str = "auto"):
    found = layouts.resolve(folder, format)
    return found, layout_readers.load_found(found, check_images=True)


def by_key(table: pd.DataFrame, key) -> pd.DataFrame:
    keyed = table.assign(key=[key(p) for p in table["path"]])
    return keyed.set_index("key")[LABELS].sort_index()


@pytest.mark.parametrize("layout", EXPORTED)
def test_each_exported_layout_is_detected_and_read_without_a_rejected_row(exported, layout):
    out, report = exported
    found, result = load(out / layout)
    assert found.layout.name == layout
    assert result.rejected == 0 and result.accepted == result.rows_read > 0
    assert result.accepted == report[layout]["written"] or layout == "affwild2-tasks-2020"
    assert found.describe(result).startswith(f"found {found.layout.dataset} in layout {layout}")


@pytest.mark.parametrize(
    ("folder", "layout"),
    [
        ("rafdb", "rafdb-original"),
        ("affectnet", "affectnet-original"),
        ("emotionet", "emotionet-files"),
    ],
)
def test_the_generators_own_layouts_are_detected(embedded, folder, layout):
    found, result = load(embedded / folder)
    assert found.layout.name == layout
    assert result.rejected == 0 and result.accepted > 0


def test_rafdb_tables_are_equal_in_its_three_layouts(embedded, exported):
    out, _ = exported
    name = lambda p: p.rsplit("/", 1)[-1]  # noqa: E731 (the image's file name keys every layout)
    original = by_key(load(embedded / "rafdb")[1].table, name)
    for layout in ("rafdb-csv", "rafdb-folders"):
        pd.testing.assert_frame_equal(by_key(load(out / layout)[1].table, name), original)


def test_affectnet_folders_equal_the_original_minus_va_and_the_unclassed_rows(embedded, exported):
    out, report = exported
    original = load(embedded / "affectnet")[1].table
    classed = original[original["expr"] >= 0].copy()
    classed["valence"] = classed["arousal"] = VA_MISSING  # the mirror has no VA: never invented
    folders = load(out / "affectnet-folders")[1].table
    assert (folders["valence"] == VA_MISSING).all() and (folders["arousal"] == VA_MISSING).all()
    name = lambda p: p.rsplit("/", 1)[-1]  # noqa: E731
    expected = by_key(classed.assign(path=classed["path"].map(affectnet_folder_name)), name)
    pd.testing.assert_frame_equal(by_key(folders, name), expected)
    assert report["affectnet-folders"]["not written"] == int((original["expr"] < 0).sum())
    found = layouts.resolve(out / "affectnet-folders")
    assert any("no valence/arousal" in n for n in found.notes)


def test_affwild2_tables_are_equal_under_every_editions_folder_names(embedded, exported):
    out, _ = exported
    key = lambda p: p  # noqa: E731 (VIDEO/FRAME.jpg in every Aff-Wild2 layout)
    tasks = load(embedded / "affwild2", "affwild2-tasks")[1].table
    tasks_2020 = load(out / "affwild2-tasks-2020")[1].table
    pd.testing.assert_frame_equal(by_key(tasks_2020, key), by_key(tasks, key))
    assert set(tasks_2020["source"]) == set(tasks["source"])
    mtl = load(embedded / "affwild2", "affwild2-mtl")[1].table
    mtl_challenge = load(out / "affwild2-mtl")[1].table
    pd.testing.assert_frame_equal(by_key(mtl_challenge, key), by_key(mtl, key))


def test_an_unknown_folder_is_refused_with_the_list_of_known_layouts(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(layouts.LayoutError) as e:
        layouts.resolve(tmp_path)
    message = str(e.value)
    assert "no known data set layout" in message and "photos" in message
    for layout in layouts.LAYOUTS:
        assert layout.name in message


def test_a_folder_with_two_layouts_names_both_and_asks_for_one(embedded):
    with pytest.raises(layouts.LayoutError, match="several layouts") as e:
        layouts.resolve(embedded / "affwild2")
    assert "affwild2-tasks" in str(e.value) and "affwild2-mtl" in str(e.value)


def test_a_named_layout_that_does_not_match_says_what_it_expected(embedded):
    with pytest.raises(layouts.LayoutError, match="list_patition_label"):
        layouts.resolve(embedded / "affectnet", "rafdb-original")


# --- malformed input in the new layouts -----------------------------------------------------------


def _jpeg(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)


def test_rafdb_csv_rejects_bad_rows_naming_file_and_line(tmp_path):
    for name, code in (("train_00001_aligned.jpg", 5), ("train_00003_aligned.jpg", 1)):
        _jpeg(tmp_path / "DATASET" / "train" / str(code) / name)
    csv = tmp_path / "train_labels.csv"
    csv.write_text(
        "image,label\n"
        "train_00001_aligned.jpg,5\n"
        "train_00002_aligned.jpg,0\n"
        "train_00003_aligned.jpg,1,extra\n"
        "sub/train_00004_aligned.jpg,2\n"
        "train_00001_aligned.jpg,5\n"
    )
    found, result = load(tmp_path)
    assert found.layout.name == "rafdb-csv"
    errors = {(e.line, e.field): e.reason for e in result.errors}
    assert set(errors) == {(3, "label"), (4, "fields"), (5, "image"), (6, "image")}
    assert "1..7" in errors[(3, "label")] and "0..6" in errors[(3, "label")]
    assert "first on line 2" in errors[(6, "image")]
    assert all(e.file == str(csv) for e in result.errors)
    assert result.accepted + result.rejected == result.rows_read == 5
    assert result.table["path"].tolist() == ["train/5/train_00001_aligned.jpg"]
    with pytest.raises(AnnotationError, match=":3: label"):
        layout_readers.load_found(found, strict=True)


def test_rafdb_csv_with_a_wrong_header_is_unusable(tmp_path):
    (tmp_path / "test_labels.csv").write_text("name,emotion\ntest_0001_aligned.jpg,3\n")
    found = layouts.resolve(tmp_path)
    with pytest.raises(UnusableInputError, match="header"):
        layout_readers.load_found(found)


def test_class_folders_reject_non_images_unknown_classes_and_loose_files(tmp_path):
    _jpeg(tmp_path / "train" / "happy" / "a.jpg")
    _jpeg(tmp_path / "val" / "contempt" / "b.jpg")
    _jpeg(tmp_path / "train" / "bored" / "c.jpg")
    (tmp_path / "train" / "happy" / "notes.txt").write_text("x")
    _jpeg(tmp_path / "train" / "loose.jpg")
    (tmp_path / "README.md").write_text("mirror")
    found, result = load(tmp_path)
    assert found.layout.name == "affectnet-folders"
    assert any("README.md" in n for n in found.notes)
    errors = {Path(e.file).name: (e.field, e.reason) for e in result.errors}
    assert errors["notes.txt"][0] == "file" and "not an image" in errors["notes.txt"][1]
    assert errors["c.jpg"][0] == "class" and "'bored'" in errors["c.jpg"][1]
    assert errors["loose.jpg"][0] == "file"
    t = result.table.sort_values("path")
    assert t["path"].tolist() == ["train/happy/a.jpg", "val/contempt/b.jpg"]
    assert t["expr"].tolist() == [4, 7]  # Happiness, Contempt -> Other
    assert t["split"].tolist() == ["train", "validation"]
    assert result.accepted + result.rejected == result.rows_read == 5


def test_rafdb_folders_are_told_from_affectnet_folders_by_their_codes(tmp_path):
    _jpeg(tmp_path / "rafdb" / "train" / "1" / "train_00001_aligned.jpg")
    _jpeg(tmp_path / "rafdb" / "test" / "7" / "test_0001_aligned.jpg")
    _jpeg(tmp_path / "affectnet" / "train" / "0" / "x.jpg")
    _jpeg(tmp_path / "affectnet" / "val" / "7" / "y.jpg")
    raf = load(tmp_path / "rafdb")[1].table.sort_values("path")
    assert raf["expr"].tolist() == [0, 6]  # 7 Neutral, 1 Surprise (RAF-DB codes)
    found, aff = load(tmp_path / "affectnet")
    assert found.layout.name == "affectnet-folders"
    assert aff.table.sort_values("path")["expr"].tolist() == [0, 7]  # Neutral, Contempt -> Other


def test_abaw_2020_expression_files_with_seven_classes_are_read(tmp_path):
    folder = tmp_path / "annotations" / "EXPR_Set" / "Training_Set"
    folder.mkdir(parents=True)
    header = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise"
    (folder / "v1.txt").write_text(f"{header}\n0\n6\n7\n-1\n")
    found, result = layouts.resolve(tmp_path), None
    assert found.layout.name == "affwild2-tasks-2020"
    result = layout_readers.load_found(found)
    assert [(e.line, e.field) for e in result.errors] == [(4, "expression")]
    assert "outside -1..6" in result.errors[0].reason
    t = result.table.sort_values("frame")
    assert t["frame"].tolist() == [1, 2, 4] and t["expr"].tolist() == [0, 6, -1]
    assert result.accepted + result.rejected == result.rows_read
    assert any("abaw-au" in n for n in found.notes)  # the tasks not annotated are named


# --- the command line and the notebooks' loader ---------------------------------------------------


def test_audit_format_auto_prints_what_it_found_and_unknown_folders_exit_2(exported, tmp_path):
    out, _ = exported
    run = [sys.executable, "-m", "affectlib", "audit"]
    r = subprocess.run(
        [*run, str(out / "rafdb-csv"), "--format", "auto"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert "found RAF-DB in layout rafdb-csv" in r.stdout and "train_labels.csv" in r.stdout
    r = subprocess.run(
        [*run, str(out / "affectnet-folders"), "--format", "auto", "--json"],
        capture_output=True,
        text=True,
    )
    summary = json.loads(r.stdout)
    assert summary["layout"] == "affectnet-folders" and summary["valid"]["va"] == 0
    r = subprocess.run([*run, str(tmp_path), "--format", "auto"], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "rafdb-original" in r.stderr and "affwild2-tasks-2020" in r.stderr


def test_study_load_dataset_with_format_auto_reads_the_detected_layout(exported, capsys):
    out, _ = exported
    result = study.load_dataset(out / "affwild2-mtl", "auto")
    assert "found Aff-Wild2 in layout affwild2-mtl" in capsys.readouterr().out
    assert set(result.table["split"]) == {"train", "validation", "test"}
    assert (
        study.image_root(out / "affwild2-mtl", "auto") == out / "affwild2-mtl" / "cropped_aligned"
    )


def test_a_named_folder_layout_overrides_the_detection_rule(tmp_path):
    _jpeg(tmp_path / "codes" / "train" / "1" / "a.jpg")  # 1..7 only: RAF-DB by default
    _jpeg(tmp_path / "codes" / "val" / "7" / "b.jpg")
    assert layouts.resolve(tmp_path / "codes").layout.name == "rafdb-folders"
    found, result = load(tmp_path / "codes", "affectnet-folders")
    assert found.layout.name == "affectnet-folders"
    assert result.table.sort_values("path")["expr"].tolist() == [
        4,
        7,
    ]  # AffectNet 1 Happy, 7 Contempt
    _jpeg(tmp_path / "names" / "train" / "Surprise" / "c.jpg")  # named: AffectNet's by default
    _jpeg(tmp_path / "names" / "test" / "neutral" / "d.jpg")
    assert layouts.resolve(tmp_path / "names").layout.name == "affectnet-folders"
    found, result = load(tmp_path / "names", "rafdb-folders")
    assert result.table.sort_values("path")["expr"].tolist() == [0, 6]  # Neutral, Surprise


def test_the_abaw_5_expression_folder_name_is_read_like_the_abaw_3_one(embedded, tmp_path):
    source = embedded / "affwild2" / "annotations"
    target = tmp_path / "annotations"
    for name in ("AU_Detection_Challenge", "VA_Estimation_Challenge"):
        shutil.copytree(source / name, target / name)
    shutil.copytree(source / "EXPR_Classification_Challenge", target / "EXPR_Recognition_Challenge")
    (tmp_path / "cropped_aligned").symlink_to(embedded / "affwild2" / "cropped_aligned")
    found, result = load(tmp_path)
    assert found.layout.name == "affwild2-tasks"
    assert any("EXPR_Recognition_Challenge" in str(p.path) for p in found.parts)
    original = load(embedded / "affwild2", "affwild2-tasks")[1].table
    pd.testing.assert_frame_equal(by_key(result.table, str), by_key(original, str))
