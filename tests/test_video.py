"""Video decoding, resampling by timestamps and label replication (§3.2.1)."""

import dataclasses

import numpy as np
import pytest

import real_media
from emorec.data import video


def _frames(n, h=48, w=64):
    """Frames whose brightness encodes their index (i * 4), so decoding order can be checked."""
    return np.stack([np.full((h, w, 3), (i * 4) % 256, np.uint8) for i in range(n)])


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    video.write_video(path, _frames(50), fps=50)
    return path


def test_info_and_full_decode(clip):
    info = video.video_info(clip)
    assert (info.fps, info.n_frames, info.width, info.height) == (50.0, 50, 64, 48)
    assert info.duration_s == pytest.approx(1.0)
    frames, idx, times = video.read_video(clip)
    assert frames.shape == (50, 48, 64, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(idx, np.arange(50))
    np.testing.assert_allclose(times, np.arange(50) / 50)
    # Xvid is lossy: brightness within a few levels of the encoded index
    np.testing.assert_allclose(frames.mean(axis=(1, 2, 3)), (np.arange(50) * 4) % 256, atol=4)


def test_resample_50_to_10_fps_by_timestamps(clip):
    frames, idx, times = video.read_video(clip, fps=10)
    np.testing.assert_array_equal(idx, [0, 5, 10, 15, 20, 25, 30, 35, 40, 45])
    np.testing.assert_allclose(times, np.arange(10) / 10)
    np.testing.assert_allclose(frames.mean(axis=(1, 2, 3)), idx * 4, atol=4)


def test_resample_indices_non_integer_ratio_and_refusals():
    # 30 -> 10 fps keeps every third frame; 25 -> 10 fps picks the frame nearest each 0.1 s tick
    np.testing.assert_array_equal(video.resample_indices(9, 30, 10), [0, 3, 6])
    np.testing.assert_array_equal(video.resample_indices(10, 25, 10), [0, 3, 5, 8])
    np.testing.assert_array_equal(video.resample_indices(4, 50, None), [0, 1, 2, 3])
    with pytest.raises(ValueError, match="up to"):
        video.resample_indices(10, 10, 50)


@pytest.mark.parametrize("content, problem", [
    (b"", "empty"),
    (b"this is a text file, not a video\n", "cannot open"),
])
def test_not_a_video(tmp_path, content, problem):
    bad = tmp_path / "bad.avi"
    bad.write_bytes(content)
    with pytest.raises(ValueError, match=problem) as err:
        video.read_video(bad)
    assert "bad.avi" in str(err.value)


def test_truncated_video_is_refused(tmp_path):
    path = tmp_path / "long.avi"
    video.write_video(path, np.random.default_rng(0).integers(0, 255, (60, 48, 64, 3), dtype=np.uint8), 50)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated") as err:
        video.read_video(cut)
    assert "cut.avi" in str(err.value)


def test_missing_video(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.avi"):
        video.video_info(tmp_path / "absent.avi")


def test_replicate_labels_nearest_previous_by_timestamps():
    label_times = np.arange(20) / 10  # 10 Hz, 2 s
    labels = np.stack([np.arange(20.0), -np.arange(20.0)], axis=1)
    frame_times = np.arange(100) / 50  # 50 fps
    out = video.replicate_labels(frame_times, label_times, labels)
    assert out.shape == (100, 2)
    np.testing.assert_array_equal(out[:, 0], np.repeat(np.arange(20.0), 5))  # each label to 5 frames
    # by timestamps, not by counts: kept frames with gaps still get the label of their own time
    kept = np.array([0, 7, 8, 33, 99]) / 50
    np.testing.assert_array_equal(video.replicate_labels(kept, label_times, labels[:, 0]), [0, 1, 1, 6, 19])
    # at 10 fps frame k gets label k exactly, despite float rounding of k / 10
    np.testing.assert_array_equal(video.replicate_labels(np.arange(20) * 0.1, label_times, labels[:, 0]),
                                  np.arange(20.0))


def test_replicate_labels_refuses_frames_far_outside_labels():
    label_times = np.arange(20) / 10
    with pytest.raises(ValueError, match=r"lab\.csv vs vid\.avi"):
        video.replicate_labels([0.0, 3.0], label_times, np.zeros(20), video_path="vid.avi", label_path="lab.csv")
    with pytest.raises(ValueError, match="not strictly increasing"):
        video.replicate_labels([0.0], label_times[::-1], np.zeros(20))


def test_check_label_coverage():
    times = np.arange(100) / 10  # labels cover 0-10 s
    video.check_label_coverage(10.0, times, "v.avi", "l.csv")
    video.check_label_coverage(10.3, times, "v.avi", "l.csv")  # within the 0.5 s tolerance
    with pytest.raises(ValueError, match=r"l\.csv vs v\.avi.*end at") as err:
        video.check_label_coverage(12.0, times, "v.avi", "l.csv")  # labels end well before the video
    assert "v.avi" in str(err.value)
    with pytest.raises(ValueError, match="run to"):
        video.check_label_coverage(8.0, times, "v.avi", "l.csv")  # labels run well past the video
    with pytest.raises(ValueError, match="start at"):
        video.check_label_coverage(11.0, times + 1.0, "v.avi", "l.csv")


# --------------------------------------------------------------------------------------------------
# Real files: a header's frame count is an estimate; cut files are still refused; FFmpeg stays quiet
# --------------------------------------------------------------------------------------------------

def _count_frames(path, fps=None) -> int:
    return sum(1 for _ in video.iter_frames(path, fps))


@pytest.mark.parametrize("name, announced, decoded", [
    ("no_face.mp4", 98, 95),  # an edit list: the header announces 3 frames it does not hold
    ("single_face.mp4", 72, 72),
    ("carphone_pristine.mp4", 120, 120),
    ("face_noface.mov", 169, 169),  # HEVC
])
def test_real_videos_are_valid_and_ffmpeg_is_silent(name, announced, decoded, capfd):
    path = real_media.path(name)
    assert video.video_info(path).n_frames == announced
    assert _count_frames(path) == decoded
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_no_face_mp4_resampled_keeps_its_last_frames():
    path = real_media.path("no_face.mp4")
    info = video.video_info(path)
    _, idx, times = video.read_video(path, fps=10)
    np.testing.assert_array_equal(idx, video.resample_indices(95, info.fps, 10))
    assert times[-1] == pytest.approx(idx[-1] / info.fps)


@pytest.fixture(scope="module")
def wolfgang_bytes():
    return real_media.path("WolfgangLanger_Pexels.mp4").read_bytes()


@pytest.mark.parametrize("kept", [0.6, 0.99])
def test_cut_faststart_mp4_is_truncated(tmp_path, wolfgang_bytes, kept, capfd):
    # moov at the start: the cut copy opens, and announces all 472 frames
    cut = tmp_path / f"cut{kept}.mp4"
    cut.write_bytes(wolfgang_bytes[: int(len(wolfgang_bytes) * kept)])
    assert video.video_info(cut).n_frames == 472
    with pytest.raises(ValueError, match=r"truncated or corrupt video: decoding stopped after .*partial file") as err:
        _count_frames(cut, fps=10)
    assert str(cut) in str(err.value) and "\n" not in str(err.value)
    assert capfd.readouterr() == ("", "")


def test_cut_mp4_without_its_index_cannot_be_opened(tmp_path, capfd):
    # moov at the end (most phone and camera files): a cut copy has no index at all
    data = real_media.path("single_face.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cannot open it as a video \(FFmpeg: moov atom not found\)") as err:
        video.video_info(cut)
    assert str(cut) in str(err.value)
    assert capfd.readouterr() == ("", "")


def test_header_count_is_not_a_cap(clip, monkeypatch):
    # a header announcing fewer frames than the stream holds: every frame is still decoded
    real_open = video._open

    def underestimating_open(path):
        cap, info, log = real_open(path)
        return cap, dataclasses.replace(info, n_frames=20), log

    monkeypatch.setattr(video, "_open", underestimating_open)
    assert _count_frames(clip) == 50
    assert _count_frames(clip, fps=10) == 10
