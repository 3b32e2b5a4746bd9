"""Face extraction and the crop cache (paper §3.2.1, DESIGN §7)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from emorec.data import faces
from face_video import face_offset, write_face_video

N_SOURCE = 100          # 2 s at 50 fps -> 20 frames at 10 fps
BLANK = range(40, 60)   # source frames without a face -> sampled frames 8..11


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_face_video(tmp_path_factory.mktemp("video") / "SEW_test.avi", N_SOURCE, BLANK)


@pytest.fixture(scope="module")
def extractor() -> faces.FaceExtractor:
    return faces.FaceExtractor(min_face_size=60, batch_size=8)


@pytest.fixture
def count_detect(monkeypatch):
    """Spy on FaceExtractor.detect: the list collects the batch size of each call."""
    calls = []
    original = faces.FaceExtractor.detect

    def spy(self, frames):
        calls.append(len(frames))
        return original(self, frames)

    monkeypatch.setattr(faces.FaceExtractor, "detect", spy)
    return calls


def test_crops_and_frame_table(video, extractor, tmp_path):
    track = faces.extract_video(video, tmp_path / "v", fps=10, crop_size=(100, 80), extractor=extractor,
                                chunk_size=8, progress=False)
    table = track.frames
    assert list(table["frame"]) == list(range(20))
    assert list(table["source_frame"]) == list(range(0, 100, 5))
    np.testing.assert_allclose(table["time"], np.arange(20) / 10)
    # Frames without a face are recorded, not silently skipped.
    missing = set(table.loc[~table["kept"], "frame"])
    assert missing == set(range(8, 12))
    assert track.keep_rate == pytest.approx(16 / 20)
    assert track.crops.shape == (16, 100, 80, 3) and track.crops.dtype == np.uint8
    assert isinstance(track.crops, np.memmap)
    kept = table[table["kept"]]
    assert list(kept["crop_index"]) == list(range(16))
    assert (table.loc[~table["kept"], "crop_index"] == -1).all()
    assert table.loc[~table["kept"], ["x1", "prob", "nose_x"]].isna().all().all()
    # The box follows the pasted face: its centre stays at the same place in the photo.
    offsets = np.array([face_offset(s) for s in kept["source_frame"]])
    centre = np.c_[(kept["x1"] + kept["x2"]) / 2, (kept["y1"] + kept["y2"]) / 2] - offsets
    assert np.abs(centre - np.median(centre, axis=0)).max() < 8
    assert (kept["prob"] > 0.9).all()
    # Landmarks (eyes, nose, mouth corners) fall inside their box.
    for name in faces.LANDMARKS:
        assert ((kept[f"{name}_x"] > kept["x1"]) & (kept[f"{name}_x"] < kept["x2"])).all()
        assert ((kept[f"{name}_y"] > kept["y1"]) & (kept[f"{name}_y"] < kept["y2"])).all()
    # The stored crop is the cropped, resized frame region.
    reloaded = faces.load_track(tmp_path / "v")
    np.testing.assert_array_equal(reloaded.crops, track.crops)
    assert reloaded.meta["key"]["detector"]["min_face_size"] == 60


def test_batched_detection_equals_per_frame(video, extractor):
    frames = np.stack([f for _, _, f in faces._sampled_frames(video, 10.0, 0)][:6])
    boxes, probs, points = extractor.detect(frames)
    for i in range(len(frames)):
        b, p, pt = extractor.detect(frames[i:i + 1])
        np.testing.assert_allclose(b[0], boxes[i], atol=1e-3)
        np.testing.assert_allclose(pt[0], points[i], atol=1e-3)


def iou(a, b):
    lo, hi = np.maximum(a[:, :2], b[:, :2]), np.minimum(a[:, 2:], b[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = lambda r: np.prod(r[:, 2:] - r[:, :2], axis=1)
    return inter / (area(a) + area(b) - inter)


def test_cascade_reproduces_facenet_pytorch(video):
    """With facenet's resampling the batched cascade returns facenet-pytorch's boxes; OpenCV's
    resampling moves them only slightly."""
    from facenet_pytorch import MTCNN

    frames = np.stack([f for _, _, f in faces._sampled_frames(video, 10.0, 0)][:5])
    reference = MTCNN(min_face_size=60, select_largest=False)
    exact = faces.FaceExtractor(min_face_size=60, resampling="facenet").detect(frames)
    fast = faces.FaceExtractor(min_face_size=60, resampling="opencv").detect(frames)
    for i, frame in enumerate(frames):
        boxes, probs, points = (np.asarray(a, dtype=float) for a in reference.detect(frame, landmarks=True))
        best = int(np.argmax(probs))
        np.testing.assert_allclose(exact[0][i], boxes[best], atol=1e-2)
        np.testing.assert_allclose(exact[1][i], probs[best], atol=1e-5)
        np.testing.assert_allclose(exact[2][i], points[best], atol=1e-2)
    assert iou(fast[0], exact[0]).mean() > 0.9


def test_downscaled_detection_maps_back(video):
    frames = np.stack([f for _, _, f in faces._sampled_frames(video, 10.0, 0)][:6])
    full, _, full_points = faces.FaceExtractor(min_face_size=60, detect_scale=1.0).detect(frames)
    half, _, half_points = faces.FaceExtractor(min_face_size=60, detect_scale=0.5).detect(frames)
    assert iou(full, half).mean() > 0.85  # a mis-mapped box (e.g. left at half scale) scores ~0.25
    assert np.abs(full_points - half_points).max() < 6


def test_cache_reused_then_invalidated(video, extractor, tmp_path, count_detect):
    first = faces.extract_video(video, tmp_path / "v", extractor=extractor, chunk_size=16, progress=False)
    assert count_detect == [8, 8, 4]  # batches of equal-size frames, one detect call each
    count_detect.clear()
    again = faces.extract_video(video, tmp_path / "v", extractor=faces.FaceExtractor(min_face_size=60, batch_size=8),
                                chunk_size=16, progress=False)
    assert count_detect == []
    np.testing.assert_array_equal(again.crops, first.crops)
    # A different detector setting, crop size or sampling rate invalidates the entry.
    other = faces.FaceExtractor(min_face_size=60, thresholds=(0.6, 0.7, 0.8), batch_size=8)
    faces.extract_video(video, tmp_path / "v", extractor=other, chunk_size=16, progress=False)
    assert sum(count_detect) == 20
    count_detect.clear()
    track = faces.extract_video(video, tmp_path / "v", extractor=other, crop_size=(50, 40), progress=False)
    assert sum(count_detect) == 20 and track.crops.shape[1:] == (50, 40, 3)
    assert track.meta["key"]["detector"]["thresholds"] == [0.6, 0.7, 0.8]
    # A changed source video too.
    count_detect.clear()
    write_face_video(tmp_path / "copy.avi", N_SOURCE - 30, BLANK)
    faces.extract_video(tmp_path / "copy.avi", tmp_path / "v", extractor=other, crop_size=(50, 40), progress=False)
    assert sum(count_detect) == 14
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") or p.name.endswith(".partial")]


def test_failure_midway_leaves_no_half_written_entry(video, extractor, tmp_path, monkeypatch):
    good = faces.extract_video(video, tmp_path / "v", extractor=extractor, chunk_size=8, progress=False)
    good_crops = np.array(good.crops)
    original = faces.FaceExtractor.detect
    calls = []

    def failing(self, frames):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        return original(self, frames)

    monkeypatch.setattr(faces.FaceExtractor, "detect", failing)
    changed = faces.FaceExtractor(min_face_size=64, batch_size=8)
    with pytest.raises(RuntimeError):
        faces.extract_video(video, tmp_path / "v", extractor=changed, chunk_size=8, progress=False)
    # The old, complete entry is untouched; only the finished chunk waits for a resume.
    kept = faces.load_track(tmp_path / "v")
    np.testing.assert_array_equal(kept.crops, good_crops)
    assert kept.meta["key"]["detector"]["min_face_size"] == 60
    assert [p.name for p in (tmp_path / "v.partial").glob("chunk_*")] == ["chunk_000000.npz"]
    calls.clear()
    with pytest.raises(RuntimeError):
        faces.extract_video(video, tmp_path / "new", extractor=changed, chunk_size=8, progress=False)
    assert not (tmp_path / "new").exists()
    with pytest.raises(FileNotFoundError, match="new"):
        faces.load_track(tmp_path / "new")


RESUME_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from emorec.data import faces
    original = faces.FaceExtractor.detect
    calls = []
    def detect(self, frames):
        calls.append(1)
        if len(calls) == 3:  # two chunks of 8 frames are on disk: die like a killed job
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, frames)
    faces.FaceExtractor.detect = detect
    faces.extract_video(sys.argv[1], sys.argv[2], extractor=faces.FaceExtractor(min_face_size=60, batch_size=8),
                        chunk_size=8, progress=False)
""")


def test_resume_after_kill_is_bit_identical(video, tmp_path, count_detect):
    proc = subprocess.run([sys.executable, "-c", RESUME_SCRIPT, str(video), str(tmp_path / "resumed")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert not (tmp_path / "resumed").exists()
    assert len(list((tmp_path / "resumed.partial").glob("chunk_*.npz"))) == 2
    extractor = faces.FaceExtractor(min_face_size=60, batch_size=8)
    resumed = faces.extract_video(video, tmp_path / "resumed", extractor=extractor, chunk_size=8, progress=False)
    assert sum(count_detect) == 20 - 16  # only the missing chunks were detected
    assert not (tmp_path / "resumed.partial").exists()
    count_detect.clear()
    whole = faces.extract_video(video, tmp_path / "whole", extractor=extractor, chunk_size=8, progress=False)
    assert sum(count_detect) == 20
    assert (tmp_path / "resumed" / "crops.npy").read_bytes() == (tmp_path / "whole" / "crops.npy").read_bytes()
    assert (tmp_path / "resumed" / "frames.csv").read_bytes() == (tmp_path / "whole" / "frames.csv").read_bytes()
    np.testing.assert_array_equal(resumed.crops, whole.crops)


def test_video_without_any_face(tmp_path, extractor):
    path = write_face_video(tmp_path / "empty.avi", 40, blank=range(40))
    with pytest.raises(ValueError, match="empty.avi.*no face"):
        faces.extract_video(path, tmp_path / "empty", extractor=extractor, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.avi"]


def test_corrupt_and_missing_video(tmp_path, extractor):
    bad = tmp_path / "broken.avi"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00AVI garbage" * 50)
    with pytest.raises(ValueError, match="broken.avi"):
        faces.extract_video(bad, tmp_path / "broken", extractor=extractor, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.avi"]
    with pytest.raises(FileNotFoundError, match="absent.avi"):
        faces.extract_video(tmp_path / "absent.avi", tmp_path / "absent", extractor=extractor, progress=False)


def test_wrong_settings_rejected(video, tmp_path):
    with pytest.raises(ValueError, match="min_face_size"):
        faces.FaceExtractor(min_face_size=5)
    with pytest.raises(ValueError, match="thresholds"):
        faces.FaceExtractor(thresholds=(0.6, 0.7))
    with pytest.raises(ValueError, match="SEW_test.avi.*100 fps"):
        faces.extract_video(video, tmp_path / "v", fps=100, progress=False)


def test_corpus_entries_are_named_by_stem_and_content_hash(video, extractor, tmp_path):
    tracks = faces.extract_corpus([video], tmp_path / "cache", extractor=extractor, progress=False)
    entry = tmp_path / "cache" / f"SEW_test-{hashlib.sha1(video.read_bytes()).hexdigest()[:12]}"
    assert list(tracks) == ["SEW_test"] and tracks["SEW_test"].path == entry
    assert sorted(p.name for p in entry.iterdir()) == [".emorec.json", "crops.npy", "frames.csv", "meta.json"]
    with pytest.raises(ValueError, match="same file stem"):
        faces.extract_corpus([video, video], tmp_path / "cache", extractor=extractor, progress=False)


def test_mtcnn_stages_on_a_real_photo():
    from facenet_pytorch import MTCNN

    image = skimage.data.astronaut()
    stages = faces.mtcnn_stages(image, faces.FaceExtractor(min_face_size=40, resampling="facenet"))
    # Each stage rejects candidates: P-net proposes many, O-net keeps the one face.
    assert len(stages["pnet"]) > len(stages["rnet"]) >= len(stages["onet"]) == 1
    reference = MTCNN(min_face_size=40, select_largest=False, keep_all=True)
    boxes, probs, points = (np.asarray(a, dtype=float) for a in reference.detect(image, landmarks=True))
    np.testing.assert_allclose(stages["onet"][:, :4], boxes, atol=1e-2)
    np.testing.assert_allclose(stages["onet"][:, 4], probs, atol=1e-5)
    np.testing.assert_allclose(stages["landmarks"], points, atol=1e-2)
    # The astronaut's face is in the upper middle of the 512×512 photo.
    x1, y1, x2, y2 = stages["onet"][0, :4]
    assert 150 < x1 < x2 < 300 and 30 < y1 < y2 < 200


def test_box_outside_the_frame_is_dropped_not_fatal(video, extractor, tmp_path, monkeypatch):
    original = faces.FaceExtractor.detect

    def detect(self, frames):
        boxes, probs, points = original(self, frames)
        boxes[0] = [330.0, 20.0, 400.0, 110.0]  # a face that has just left on the right
        return boxes, probs, points

    monkeypatch.setattr(faces.FaceExtractor, "detect", detect)
    track = faces.extract_video(video, tmp_path / "v", extractor=extractor, chunk_size=8, progress=False)
    dropped = set(track.frames.loc[~track.frames["kept"], "frame"])
    assert dropped == {0, 8, 9, 10, 11, 16}  # first frame of each detect call, plus the blank frames
    assert len(track.crops) == 20 - len(dropped)
