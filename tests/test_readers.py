"""Readers of the real datasets' label formats (§4.1), on hand-written fixture files and broken copies."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emorec.data import afewva, affwild2, rafdb, sewa

FIX = Path(__file__).parent / "fixtures"
AVEC19 = FIX / "avec" / "labels" / "Devel_DE_01.csv"      # header, ';', quoted names, CRLF, trailing blanks
AVEC18 = FIX / "avec" / "labels" / "Train_HU_03.csv"      # no header, UTF-8 BOM
SEWA_V = FIX / "sewa" / "SEW1101" / "SEW1101_Valence_V_Aligned.csv"  # BOM + CRLF
SEWA_A = FIX / "sewa" / "SEW1101" / "SEW1101_Arousal_V_Aligned.csv"  # quoted header, trailing blanks
AFEW = FIX / "afewva" / "001" / "001.json"
AW_TRAIN = FIX / "affwild2" / "VA_Estimation_Challenge" / "Train_Set" / "12-24-1920x1080_left.txt"
AW_VAL = FIX / "affwild2" / "VA_Estimation_Challenge" / "Validation_Set" / "video2.txt"


def _copy(tmp_path, src, text_edit, name=None):
    """A broken copy of a fixture: its text passed through ``text_edit``."""
    dst = tmp_path / (name or src.name)
    dst.write_bytes(text_edit(src.read_bytes().decode("utf-8-sig")).encode("utf-8"))
    return dst


# --- AVEC -------------------------------------------------------------------------------------

def test_avec_2019_with_header_quotes_crlf():
    df = sewa.read_avec_labels(AVEC19)
    assert list(df.columns) == ["name", "time", "arousal", "valence", "liking"]
    assert len(df) == 8 and (df["name"] == "Devel_DE_01").all()
    np.testing.assert_allclose(df["time"], np.arange(8) / 10)
    assert df.loc[4, "arousal"] == pytest.approx(-0.045439)
    assert df.loc[2, "valence"] == pytest.approx(0.039756)


def test_avec_2018_without_header_with_bom():
    df = sewa.read_avec_labels(AVEC18)
    assert len(df) == 6 and df.loc[0, "name"] == "Train_HU_03"
    assert df.loc[0, "arousal"] == pytest.approx(0.1) and df.loc[5, "valence"] == pytest.approx(0.12)


@pytest.mark.parametrize("edit, problem", [
    (lambda t: t.replace("0.039756", "nan"), "not a finite number"),
    (lambda t: t.replace("0.039756", "abc"), "not a number"),
    (lambda t: t.replace("0.039756", "1.5"), "outside"),
    (lambda t: t.replace(";valence", ";mood"), "missing column"),
    (lambda t: "\n".join(line for line in t.splitlines() if ";0.300000;" not in line), "time gap"),
    (lambda t: t.replace(";0.500000;", ";0.200000;"), "not increasing"),
    (lambda t: "\n\n", "empty"),
    (lambda t: t.replace("'Devel_DE_01';0.100000;", "'Devel_DE_01';0.100000;0.1;"), "fields"),
])
def test_avec_broken_files_name_file_and_problem(tmp_path, edit, problem):
    bad = _copy(tmp_path, AVEC19, edit)
    with pytest.raises(ValueError, match=problem) as err:
        sewa.read_avec_labels(bad)
    assert str(bad) in str(err.value)


def test_missing_label_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.csv"):
        sewa.read_avec_labels(tmp_path / "nothing.csv")
    with pytest.raises(FileNotFoundError, match="nothing.csv"):
        sewa.read_annotations(tmp_path / "nothing.csv")


# --- SEWA raw annotations ---------------------------------------------------------------------

def test_sewa_raw_annotations_fused_is_annotator_mean():
    df = sewa.read_annotations(SEWA_V)
    assert list(df.columns) == ["time", "Annotator1", "Annotator2", "Annotator3", "fused"]
    assert len(df) == 10
    np.testing.assert_allclose(df["fused"], df[["Annotator1", "Annotator2", "Annotator3"]].mean(axis=1))
    assert df.loc[2, "fused"] == pytest.approx((0.0305 + 0.0012 + 0.0101) / 3)


def test_sewa_quoted_header_and_pair_reader():
    aro = sewa.read_annotations(SEWA_A)
    assert list(aro.columns)[:2] == ["time", "Annotator1"]
    labels = sewa.read_sewa_labels(SEWA_V, SEWA_A)
    assert list(labels.columns) == ["time", "valence", "arousal"]
    np.testing.assert_allclose(labels["arousal"], aro["fused"])


def test_sewa_several_files_merge_on_time(tmp_path):
    one = _copy(tmp_path, SEWA_V, lambda t: t, "a_Valence_V_Aligned.csv")
    df = sewa.read_annotations([SEWA_V, one])
    assert df.shape[1] == 1 + 6 + 1  # time, 3 + 3 annotators (clashing names prefixed), fused
    shorter = _copy(tmp_path, SEWA_V, lambda t: "\n".join(t.splitlines()[:-2]), "b.csv")
    with pytest.raises(ValueError, match="same time axis"):
        sewa.read_annotations([SEWA_V, shorter])


@pytest.mark.parametrize("edit, problem", [
    (lambda t: t.replace("0.030500", ""), "not a number"),
    (lambda t: t.replace("0.030500", "NaN"), "not a finite number"),
    (lambda t: t.replace("0.030500", "-1.2"), "outside"),
    (lambda t: t.replace("0.40,", "0.45,").replace("0.50,", "0.40,"), "not increasing"),
    (lambda t: "\n".join(line for line in t.splitlines() if not line.startswith(("0.40", "0.50"))), "time gap"),
    (lambda t: "\n".join(line.split(",")[0] for line in t.splitlines()), "column"),
    (lambda t: t.splitlines()[0] + "\n", "no data rows"),
    (lambda t: "", "empty"),
])
def test_sewa_broken_annotation_files(tmp_path, edit, problem):
    bad = _copy(tmp_path, SEWA_V, edit)
    with pytest.raises(ValueError, match=problem) as err:
        sewa.read_annotations(bad)
    assert str(bad) in str(err.value)


def test_load_sewa_on_a_real_style_layout(tmp_path):
    """A real copy: per-session folders, raw labels, no metadata; splits from a user's split file."""
    from emorec.data.video import write_video
    for video in ("SEW1101", "SEW2203"):
        folder = tmp_path / video
        folder.mkdir()
        write_video(folder / f"{video}.avi", np.zeros((5, 48, 64, 3), np.uint8), 50)
        for src in (SEWA_V, SEWA_A):
            (folder / src.name.replace("SEW1101", video)).write_bytes(src.read_bytes())
    write_video(tmp_path / "SEW9999.avi", np.zeros((5, 48, 64, 3), np.uint8), 50)  # no labels: skipped
    split = tmp_path / "my_split.csv"
    split.write_text("video,split\nSEW1101,train\nSEW2203,test\n")
    df = sewa.load_sewa(tmp_path, split_file=split, require_splits=False)  # no validation video here
    assert list(df["video"]) == ["SEW1101", "SEW2203"]
    assert list(df["split"]) == ["train", "test"] and list(df["group"]) == [1, 2]
    assert (df["label_format"] == "sewa").all() and (df["condition"] == "V").all()
    labels = sewa.read_video_labels(df.iloc[1])
    assert len(labels) == 10
    split.write_text("video,split\nSEW1101,training\n")
    with pytest.raises(ValueError, match="my_split.csv"):
        sewa.load_sewa(tmp_path, split_file=split)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        sewa.load_sewa(tmp_path / "nowhere")


def test_load_sewa_on_avec_layout(tmp_path):
    from emorec.data.video import write_video
    (tmp_path / "labels").mkdir()
    (tmp_path / "video").mkdir()
    for src in (AVEC19, AVEC18):
        (tmp_path / "labels" / src.name).write_bytes(src.read_bytes())
        write_video(tmp_path / "video" / f"{src.stem}.avi", np.zeros((3, 48, 64, 3), np.uint8), 50)
    df = sewa.load_sewa(tmp_path, require_splits=False)  # one Train subject: no validation to carve
    assert dict(zip(df["video"], df["split"])) == {"Devel_DE_01": "test", "Train_HU_03": "train"}
    labels = sewa.read_video_labels(df.set_index("video").loc["Devel_DE_01"])
    assert list(labels.columns) == ["time", "valence", "arousal"] and len(labels) == 8


# --- labels that do not line up with their video are refused -----------------------------------

def _shift_avec_times(text: str, by: float) -> str:
    return re.sub(r"^('[^']*';)([-\d.]+)", lambda m: f"{m[1]}{float(m[2]) + by:.6f}", text, flags=re.M)


def _shift_sewa_times(text: str, by: float) -> str:
    return re.sub(r"^([-\d.]+),", lambda m: f"{float(m[1]) + by:.4f},", text, flags=re.M)


def test_negative_times_are_refused_with_the_line(tmp_path):
    bad = _copy(tmp_path, AVEC19, lambda t: _shift_avec_times(t, -0.4))  # labels 0.4 s early
    with pytest.raises(ValueError, match=r"line 2: time -0.4 s is negative") as err:
        sewa.read_avec_labels(bad)
    assert str(bad) in str(err.value)
    bad = _copy(tmp_path, SEWA_V, lambda t: _shift_sewa_times(t, -0.2))
    with pytest.raises(ValueError, match=r"line 2: time -0.2 s is negative") as err:
        sewa.read_annotations(bad)
    assert str(bad) in str(err.value)


def test_a_rounded_zero_time_is_not_negative(tmp_path):
    ok = _copy(tmp_path, AVEC19, lambda t: t.replace("'Devel_DE_01';0.000000;", "'Devel_DE_01';-0.000100;"))
    assert sewa.read_avec_labels(ok)["time"].iloc[0] == pytest.approx(-1e-4)


def test_avec_name_of_another_recording_is_refused_with_the_line(tmp_path):
    pasted = _copy(tmp_path, AVEC19, lambda t: t.replace("'Devel_DE_01';0.300000", "'Devel_DE_02';0.300000"))
    with pytest.raises(ValueError, match=r"line 5: name 'Devel_DE_02' is another recording than the "
                                         r"file's \('Devel_DE_01'\)") as err:
        sewa.read_avec_labels(pasted)
    assert str(pasted) in str(err.value)
    renamed = _copy(tmp_path, AVEC18, lambda t: t, name="Train_HU_04.csv")  # no header: line 1 is data
    with pytest.raises(ValueError, match=r"Train_HU_04.csv: line 1: name 'Train_HU_03'"):
        sewa.read_avec_labels(renamed)


@pytest.mark.parametrize("make, problem", [
    (lambda p: p.write_bytes("time,Annotator1\n0.0,0.5\n0.1,0.4\n".encode("utf-16")), "not UTF-8"),
    (lambda p: p.write_bytes("time,Annotatør\n0.0,0.5\n0.1,0.4\n".encode("latin-1")), "not UTF-8"),
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: p.write_text("time,Annotator1\n0.0,inf\n0.1,0.4\n"), "not a finite number"),
    (lambda p: p.write_text("time,Annotator1\nnan,0.5\n0.1,0.4\n"), "not a finite number"),
])
def test_hostile_annotation_files(tmp_path, make, problem):
    bad = tmp_path / "SEW1101_Valence_V_Aligned.csv"
    make(bad)
    with pytest.raises(ValueError, match=problem) as err:
        sewa.read_annotations(bad)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def _corpus_with_metadata(tmp_path, metadata: str) -> Path:
    from emorec.data.video import write_video
    folder = tmp_path / "SEW1101"
    folder.mkdir()
    write_video(folder / "SEW1101.avi", np.zeros((5, 48, 64, 3), np.uint8), 50)
    for src in (SEWA_V, SEWA_A):
        (folder / src.name).write_bytes(src.read_bytes())
    (tmp_path / "metadata.csv").write_text(metadata)
    return tmp_path


def test_metadata_supplies_subject_and_group(tmp_path):
    root = _corpus_with_metadata(tmp_path, "video,subject,group,split\nSEW1101,S07,3,train\n")
    row = sewa.load_sewa(root, require_splits=False).iloc[0]  # one video, no split file: metadata only
    assert (row["subject"], row["group"]) == ("S07", 3)


@pytest.mark.parametrize("metadata, problem", [
    ("video,subject,split\nSEW1101,S07,train\n", r"missing column\(s\) \['group'\]"),
    ("name,subject,group\nSEW1101,S07,3\n", r"missing column\(s\) \['video'\]"),
    ("video,subject\nSEW1101,S07\n", r"missing column\(s\) \['group'\]"),
    ("video,subject,group\nSEW1101,S07,three\n", r"line 2, column 'group': 'three' is not a number"),
    ("video,subject,group\nSEW1101,S07,1.5\n", r"line 2, column 'group': '1.5' is not an integer"),
    ("video,subject,group\nSEW1101,S07,1\nSEW1101,S08,2\n", r"line 3: video 'SEW1101' listed twice"),
    ("video,subject,group\nSEW1101,S07\n", r"line 2 has 2 fields, expected 3"),
    ("", "empty file"),
])
def test_broken_metadata_is_named(tmp_path, metadata, problem):
    root = _corpus_with_metadata(tmp_path, metadata)
    with pytest.raises(ValueError, match=problem) as err:
        sewa.load_sewa(root)
    assert str(root / "metadata.csv") in str(err.value)


# --- RAF-DB -----------------------------------------------------------------------------------

def test_rafdb_labels_crlf_and_trailing_blank():
    df = rafdb.read_labels(FIX / "rafdb")
    assert list(df.columns) == ["image", "split", "label", "emotion", "path"]
    assert len(df) == 11 and (df["split"] == "train").sum() == 8
    first = df.iloc[0]
    assert (first["image"], first["label"], first["emotion"]) == ("train_00001.jpg", 4, "Sadness")
    assert df.set_index("image").loc["test_0003.jpg", "emotion"] == "Surprise"
    assert first["path"].endswith(str(Path("Image") / "aligned" / "train_00001_aligned.jpg"))


@pytest.mark.parametrize("edit, problem", [
    (lambda t: t.replace("train_00003.jpg 4", "train_00003.jpg 8"), "not in 1..7"),
    (lambda t: t.replace("train_00003.jpg 4", "train_00003.jpg"), "expected"),
    (lambda t: t.replace("train_00003.jpg", "val_00003.jpg"), "train_ or test_"),
    (lambda t: t.replace("train_00003.jpg", "train_00002.jpg"), "twice"),
    (lambda t: "", "empty"),
])
def test_rafdb_broken_label_file(tmp_path, edit, problem):
    (tmp_path / "EmoLabel").mkdir()
    src = FIX / "rafdb" / "EmoLabel" / "list_patition_label.txt"
    bad = _copy(tmp_path / "EmoLabel", src, edit)
    with pytest.raises(ValueError, match=problem) as err:
        rafdb.read_labels(tmp_path)
    assert str(bad) in str(err.value)


def test_rafdb_missing_images_and_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_00001_aligned.jpg"):
        rafdb.read_labels(FIX / "rafdb", check_images=True)
    with pytest.raises(FileNotFoundError, match="list_patition_label.txt"):
        rafdb.read_labels(tmp_path)


# --- AFEW-VA ----------------------------------------------------------------------------------

def test_afewva_clip_values_divided_by_ten():
    df = afewva.read_clip(AFEW)
    assert list(df.columns) == ["frame", "valence", "arousal"]
    assert list(df["frame"]) == list(range(8))
    np.testing.assert_allclose(df["valence"], [-0.2, -0.2, -0.3, -0.3, -0.4, -0.4, -0.5, -0.5])
    assert df["arousal"].iloc[-1] == pytest.approx(0.7)


@pytest.mark.parametrize("edit, problem", [
    (lambda t: t.replace('"valence": -4', '"valence": 12', 1), "outside"),
    (lambda t: t.replace('"valence": -4', '"valence": "high"', 1), "not a number"),
    (lambda t: t.replace('"valence": -4', '"valence": NaN', 1), "not a finite number"),
    (lambda t: t.replace('"valence": -4', '"mood": -4', 1), "missing 'valence'"),
    (lambda t: t.replace('"00003"', '"00013"'), "not consecutive"),
    (lambda t: t[: len(t) // 2], "not a valid JSON"),
    (lambda t: t.replace('"frames"', '"images"'), "no 'frames'"),
])
def test_afewva_broken_clip(tmp_path, edit, problem):
    bad = _copy(tmp_path, AFEW, edit)
    with pytest.raises(ValueError, match=problem) as err:
        afewva.read_clip(bad)
    assert str(bad) in str(err.value)


# --- Aff-Wild2 --------------------------------------------------------------------------------

def test_affwild2_invalid_frames_marked():
    df = affwild2.read_va(AW_TRAIN)
    assert list(df.columns) == ["frame", "valence", "arousal", "valid"]
    assert list(df["valid"]) == [True, True, False, False, True, True, True, True]
    assert df["valence"].isna().sum() == 2 and df.loc[7, "valence"] == pytest.approx(-0.05)
    val = affwild2.read_va(AW_VAL)  # BOM, header, 5 rows, first one invalid
    assert list(val["frame"]) == [0, 1, 2, 3, 4] and list(val["valid"]) == [False] + [True] * 4


@pytest.mark.parametrize("edit, problem", [
    (lambda t: t.replace("0.1186", "1.186"), "outside"),
    (lambda t: t.replace("0.1186", "x"), "not a number"),
    (lambda t: t.replace("valence,arousal", "v,a"), "expected columns"),
    (lambda t: t.replace("0.1186,0.2392", "0.1186"), "fields"),
    (lambda t: "valence,arousal\n", "no data rows"),
])
def test_affwild2_broken_file(tmp_path, edit, problem):
    bad = _copy(tmp_path, AW_TRAIN, edit)
    with pytest.raises(ValueError, match=problem) as err:
        affwild2.read_va(bad)
    assert str(bad) in str(err.value)


def test_readers_return_dataframes_in_unit_range():
    for df in (sewa.read_avec_labels(AVEC19), afewva.read_clip(AFEW), affwild2.read_va(AW_TRAIN)):
        assert isinstance(df, pd.DataFrame)
        values = df[["valence", "arousal"]].to_numpy(float)
        assert np.nanmax(np.abs(values)) <= 1.0
