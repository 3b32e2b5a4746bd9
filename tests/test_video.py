"""Video decoding, resampling by timestamps and label replication (§3.2.1)."""

import numpy as np
import pytest

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
