"""Windows, label fusion, clip counts and the clip datasets (paper §3.2.2, DESIGN §6)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from emorec.data import clips, faces
from face_video import write_face_video

# Kept frames of a video at 10 fps: frame 4 is missing (gap 2), frames 10 and 11 too (gap 3).
FRAMES = np.array([0, 1, 2, 3, 5, 6, 7, 8, 9, 12, 13, 14])


def as_lists(windows):
    return [w.tolist() for w in windows]


def test_make_windows_hand_worked():
    # SL 4, OR 0.5 -> step 2: starts at positions 0, 2, 4, 6, 8.
    #   0: frames 0 1 2 3     gaps 1 1 1
    #   2: frames 2 3 5 6     gaps 1 2 1
    #   4: frames 5 6 7 8     gaps 1 1 1
    #   6: frames 7 8 9 12    gaps 1 1 3
    #   8: frames 9 12 13 14  gaps 3 1 1
    assert as_lists(clips.make_windows(FRAMES, 4, 0.5, 1)) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert as_lists(clips.make_windows(FRAMES, 4, 0.5, 2)) == [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7]]
    assert len(clips.make_windows(FRAMES, 4, 0.5, 3)) == 5
    # The indices point into frame_numbers, so the frames of a window are FRAMES[w].
    assert FRAMES[clips.make_windows(FRAMES, 4, 0.5, 2)[1]].tolist() == [2, 3, 5, 6]


def test_make_windows_end_of_video_and_edge_cases():
    # 13 frames, SL 4, step 2: the last window starts at 8 and frame 12 is left over (no padding).
    windows = clips.make_windows(np.arange(13), 4, 0.5, 1)
    assert [w[0] for w in windows] == [0, 2, 4, 6, 8] and windows[-1][-1] == 11
    assert clips.make_windows(np.arange(3), 4, 0.5, 1) == []
    assert as_lists(clips.make_windows(np.arange(4), 4, 0.0, 1)) == [[0, 1, 2, 3]]
    assert as_lists(clips.make_windows([7, 9, 11], 1, 0.0, 1)) == [[0], [1], [2]]
    # Without overlap windows tile the video; with OR 0.75 they start every SL/4 frames.
    assert [w[0] for w in clips.make_windows(np.arange(16), 4, 0.75, 1)] == list(range(13))


@pytest.mark.parametrize("seq_len, overlap, step", [
    (16, 0.2, 13), (16, 0.5, 8), (16, 0.8, 3), (32, 0.2, 26), (32, 0.5, 16), (32, 0.8, 6),
    (64, 0.2, 51), (64, 0.5, 32), (64, 0.8, 13), (5, 0.5, 3), (10, 0.0, 10), (1, 0.9, 1),
])
def test_step_formula(seq_len, overlap, step):
    assert clips.window_step(seq_len, overlap) == step
    starts = [w[0] for w in clips.make_windows(np.arange(200), seq_len, overlap, 1)]
    assert np.all(np.diff(starts) == step)


@pytest.mark.parametrize("kwargs, message", [
    (dict(seq_len=0, overlap=0.5, tolerance=1), "sequence length"),
    (dict(seq_len=2.5, overlap=0.5, tolerance=1), "sequence length"),
    (dict(seq_len=4, overlap=1.0, tolerance=1), "overlapping ratio"),
    (dict(seq_len=4, overlap=-0.1, tolerance=1), "overlapping ratio"),
    (dict(seq_len=4, overlap=0.5, tolerance=0), "tolerance"),
])
def test_wrong_window_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        clips.make_windows(FRAMES, **kwargs)


def test_frame_numbers_must_increase():
    with pytest.raises(ValueError, match="increasing"):
        clips.make_windows([0, 2, 2, 3], 2, 0.0, 1)


def test_fuse_labels():
    labels = np.array([[0.2, -0.1], [-0.7, 0.3], [0.5, 0.6], [0.0, -0.2]])
    np.testing.assert_allclose(clips.fuse_labels(labels, "mean"), [0.0, 0.15], atol=1e-12)
    # Extremum: largest magnitude per column, sign kept (valence -0.7, arousal 0.6).
    np.testing.assert_allclose(clips.fuse_labels(labels, "extremum"), [-0.7, 0.6])
    np.testing.assert_allclose(clips.fuse_labels(-labels, "extremum"), [0.7, -0.6])
    assert clips.fuse_labels([0.1, -0.4, 0.3], "extremum") == pytest.approx(-0.4)
    with pytest.raises(ValueError, match="fusion mode"):
        clips.fuse_labels(labels, "median")


def test_resample_and_clip_counts():
    np.testing.assert_array_equal(clips.resample_frame_numbers([0, 1, 3], 10, 50),
                                  list(range(10)) + list(range(15, 20)))
    np.testing.assert_array_equal(clips.resample_frame_numbers([0, 5, 6, 10, 12], 50, 10), [0, 1, 2])
    with pytest.raises(ValueError, match="integer ratio"):
        clips.resample_frame_numbers([0, 1], 10, 25)
    frames = {"train": [FRAMES, np.arange(20)], "test": [FRAMES]}
    table = clips.clip_counts(frames, 10, [10, 50], [4], [0.5], tolerance=1)
    counts = table.set_index(["fps", "split"])["clips"].to_dict()
    assert counts[(10, "train")] == 2 + 9 and counts[(10, "test")] == 2
    # At 50 fps the same kept frames give 5x as many frames: count by hand for FRAMES.
    up = clips.resample_frame_numbers(FRAMES, 10, 50)
    assert counts[(50, "test")] == len(clips.make_windows(up, 4, 0.5, 1)) == 26
    assert list(table.columns) == ["fps", "seq_len", "overlap", "split", "clips"]


@pytest.fixture(scope="module")
def track(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    video = write_face_video(root / "SEW_clip.avi", 100, blank=range(40, 50))  # sampled frames 8, 9 dropped
    return faces.extract_video(video, root / "cache", extractor=faces.FaceExtractor(min_face_size=60),
                               progress=False)


def frame_labels(track):
    n = len(track.crops)
    return np.c_[np.linspace(-0.9, 0.6, n), np.cos(np.arange(n))].astype(np.float32)


def test_clip_dataset_items(track, monkeypatch):
    assert track.kept_frames.tolist() == list(range(8)) + list(range(10, 20))
    labels = frame_labels(track)
    loads = []
    original_load = np.load
    monkeypatch.setattr(np, "load", lambda *a, **k: loads.append(a) or original_load(*a, **k))
    ds = clips.ClipDataset([track.path], [labels], seq_len=4, overlap=0.5, tolerance=1, fusion="extremum")
    # Windows over kept positions 0..17 with step 2; the one spanning the gap (frames 6 7 10 11) is dropped.
    assert ds.index[:, 1].tolist() == [0, 2, 4, 8, 10, 12, 14]
    for i in range(len(ds)):
        clip, label = ds[i]
        start = ds.index[i, 1]
        assert clip.shape == (4, 3, 100, 80) and clip.dtype == torch.float32
        assert 0.0 <= clip.min() and clip.max() <= 1.0
        expected = torch.from_numpy(np.array(track.crops[start:start + 4])).permute(0, 3, 1, 2) / 255.0
        torch.testing.assert_close(clip, expected)
        assert label.shape == (2,) and label.dtype == torch.float32
        np.testing.assert_allclose(label, clips.fuse_labels(labels[start:start + 4], "extremum"), rtol=1e-6)
    # All items come from one memory map, opened once (not one file per frame).
    assert len([a for a in loads if str(a[0]).endswith("crops.npy")]) == 1
    mean_ds = clips.ClipDataset([track], [labels], seq_len=4, overlap=0.5, fusion="mean")
    np.testing.assert_allclose(mean_ds[1][1], labels[2:6].mean(axis=0), rtol=1e-6)


def test_clip_dataset_in_workers(track):
    ds = clips.ClipDataset([track], [frame_labels(track)], seq_len=4, overlap=0.5)
    ds[0]
    copy = pickle.loads(pickle.dumps(ds))
    assert copy.source._crops == {}  # a worker opens its own map
    loader = DataLoader(ds, batch_size=3, num_workers=2)
    batches = list(loader)
    clips_all = torch.cat([b[0] for b in batches])
    assert clips_all.shape == (len(ds), 4, 3, 100, 80)
    torch.testing.assert_close(clips_all[5], ds[5][0])


def test_frame_dataset_and_label_checks(track):
    labels = frame_labels(track)
    ds = clips.FrameDataset([track], [labels])
    assert len(ds) == len(track.crops) == 18
    frame, label = ds[17]
    assert frame.shape == (3, 100, 80) and frame.dtype == torch.float32
    torch.testing.assert_close(frame, torch.from_numpy(np.array(track.crops[17])).permute(2, 0, 1) / 255.0)
    np.testing.assert_allclose(label, labels[17])
    with pytest.raises(ValueError, match="cache.*N_kept, 2"):
        clips.ClipDataset([track], [labels[:-1]], seq_len=4, overlap=0.5)
    bad = labels.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clips.FrameDataset([track], [bad])
    with pytest.raises(ValueError, match="fusion mode"):
        clips.ClipDataset([track], [labels], seq_len=4, overlap=0.5, fusion="max")
