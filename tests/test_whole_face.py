"""Only whole faces (§3.2.1): a frame whose face box crosses the frame border by more than the margin
is dropped in the keep decision; the margin is part of the crop-cache key."""

from __future__ import annotations

import numpy as np
import pytest

from emorec.data import faces
from face_video import write_face_video


def test_whole_face_measures_the_crossing_against_the_box_side():
    w, h = 320, 240
    boxes = np.array([[10, 10, 110, 130],      # inside
                      [-8, 10, 92, 130],       # 8 % of the width outside on the left: whole
                      [240, 10, 340, 130],     # 20 % outside on the right: cut
                      [10, -11, 110, 109],     # 9 % of the height above: whole
                      [10, 180, 110, 300],     # 50 % below: cut
                      [-5, -5, 315, 245],      # a little over every side, within 10 % each axis
                      [319, 10, 419, 130],     # 1 px inside: nothing to crop
                      [np.nan] * 4])           # no face
    assert faces.whole_face(boxes, w, h).tolist() == [True, True, False, True, False, True, False, False]
    assert faces.whole_face(boxes, w, h, margin=0.25).tolist() == [True, True, True, True, False, True, False, False]
    assert faces.whole_face(boxes, w, h, margin=None).tolist() == [True, True, True, True, True, True, False, False]
    assert faces.WHOLE_FACE_MARGIN == 0.1


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_face_video(tmp_path_factory.mktemp("whole") / "SEW_edge.avi", 50)


def _cut_first_face(monkeypatch):
    """Every detect call reports, for its first frame, a face a quarter outside the frame's left edge."""
    original = faces.FaceExtractor.detect

    def detect(self, frames):
        boxes, probs, points = original(self, frames)
        boxes[0] = [-25.0, 40.0, 75.0, 160.0]
        return boxes, probs, points

    monkeypatch.setattr(faces.FaceExtractor, "detect", detect)


def test_a_face_cut_by_the_border_is_dropped_and_the_margin_is_in_the_cache_key(video, tmp_path, monkeypatch):
    _cut_first_face(monkeypatch)
    strict = faces.FaceExtractor(min_face_size=60, batch_size=5)
    track = faces.extract_video(video, tmp_path / "v", extractor=strict, chunk_size=5, progress=False)
    assert not track.frames["kept"].iloc[[0, 5]].any()  # first frame of each detect call: cut face dropped
    assert track.frames["kept"].sum() == 8 and len(track.crops) == 8
    assert track.meta["key"]["detector"]["border_margin"] == 0.1
    loose = faces.FaceExtractor(min_face_size=60, batch_size=5, border_margin=0.3)
    again = faces.extract_video(video, tmp_path / "v", extractor=loose, chunk_size=5, progress=False)
    assert again.frames["kept"].all() and len(again.crops) == 10  # re-extracted under the new margin
    assert again.meta["key"]["detector"]["border_margin"] == 0.3


def test_margin_must_be_a_share_of_the_box():
    with pytest.raises(ValueError, match="border_margin"):
        faces.FaceExtractor(border_margin=0.7)
    with pytest.raises(ValueError, match="border_margin"):
        faces.FaceExtractor(border_margin=-0.1)
