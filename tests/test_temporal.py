"""Table 2 machinery: feature standardisation folded exactly, clip → frame → label-timeline
predictions, and configurations chosen on validation only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from emorec.data.clips import fuse_labels, make_windows
from emorec.data.faces import FaceTrack
from emorec.experiments.corpus import VideoRecord
from emorec.experiments.evaluation import best_model_per_label, spread_clip_predictions, to_label_timeline
from emorec.experiments.temporal import (FeatureClips, FrameHead, best_per_label, fold_standardization,
                                         standardized)
from emorec.models.cnn_lstm import LSTMRegressor


def test_folded_standardisation_gives_the_same_lstm_outputs_on_raw_features():
    rng = np.random.default_rng(0)
    raw = rng.normal(3.0, 2.0, size=(4, 7, 5)).astype(np.float32)
    mean, std = raw.reshape(-1, 5).mean(0), raw.reshape(-1, 5).std(0)
    torch.manual_seed(0)
    model = LSTMRegressor(5, 8, head_units=(6,)).eval()
    with torch.no_grad():
        expected = model(torch.from_numpy((raw - mean) / std))
        fold_standardization(model.lstm.weight_ih_l0, model.lstm.bias_ih_l0, mean, std)
        torch.testing.assert_close(model(torch.from_numpy(raw)), expected, rtol=1e-5, atol=1e-5)


def test_folding_keeps_the_weights_device():
    """Issue 11: after fit() the weights may sit on a GPU while the statistics are numpy (CPU) arrays.
    The meta device stands in for CUDA here: mixing it with CPU tensors fails as CUDA does."""
    weight, bias = torch.zeros(3, 4, device="meta"), torch.zeros(3, device="meta")
    fold_standardization(weight, bias, np.zeros(4, np.float32), np.ones(4, np.float32))
    assert weight.device.type == bias.device.type == "meta"


def test_folded_standardisation_in_the_baseline_head():
    rng = np.random.default_rng(1)
    raw = rng.normal(1.0, 4.0, size=(10, 6)).astype(np.float32)
    mean, std = raw.mean(0), raw.std(0)
    head = FrameHead(6, (8,)).eval()
    first = head.head[0]
    with torch.no_grad():
        expected = head(torch.from_numpy((raw - mean) / std))
        fold_standardization(first.weight, first.bias, mean, std)
        torch.testing.assert_close(head(torch.from_numpy(raw)), expected, rtol=1e-5, atol=1e-5)
    scaled = standardized({"v": raw}, mean, std)["v"]
    np.testing.assert_allclose(scaled.mean(0), 0, atol=1e-5)


def test_clip_predictions_spread_as_the_mean_of_covering_clips():
    # kept crops 0..5; clips of 3 starting at 0 and 2 (overlap on crop 2); crop 5 uncovered
    out = spread_clip_predictions(6, [0, 2], 3, [[1.0, 0.0], [3.0, 2.0]])
    np.testing.assert_allclose(out[:5], [[1, 0], [1, 0], [2, 1], [3, 2], [3, 2]])
    assert np.isnan(out[5]).all()


def test_a_video_without_any_clip_gets_no_prediction_rather_than_an_error():
    # a video whose longest face run is shorter than SL yields zero clips: shape [0, 2] predictions
    out = spread_clip_predictions(4, np.zeros(0, int), 16, np.zeros((0, 2)))
    assert out.shape == (4, 2) and np.isnan(out).all()


def test_label_timeline_interpolates_over_missing_faces_and_holds_the_ends():
    frame_times = np.array([0.0, 0.1, 0.4, 0.5])
    preds = np.array([[0.0], [1.0], [np.nan], [4.0]])
    out, coverage = to_label_timeline(frame_times, preds, np.arange(7) / 10, fallback=[9.0])
    np.testing.assert_allclose(out[:, 0], [0, 1, 1.75, 2.5, 3.25, 4, 4])  # 0.1-0.5 bridged; 0.6 held
    assert coverage == pytest.approx(6 / 7)  # only 0.3 s lies more than 0.1 s from a predicted frame
    empty, zero = to_label_timeline(frame_times, np.full((4, 1), np.nan), [0.0, 0.1], fallback=[0.25])
    np.testing.assert_allclose(empty[:, 0], 0.25)
    assert zero == 0.0


def _record(n=20, missing=(7,)):
    frames = pd.DataFrame({"frame": np.arange(n), "time": np.arange(n) / 10,
                           "kept": ~np.isin(np.arange(n), missing)})
    kept = int(frames["kept"].sum())
    track = FaceTrack(path=None, crops=np.zeros((kept, 2, 2, 3), np.uint8), frames=frames, meta={})
    labels = np.stack([np.linspace(-1, 1, kept), np.sin(np.arange(kept))], 1).astype(np.float32)
    return VideoRecord("v", "s", "train", track, labels, np.arange(n) / 10, np.zeros((n, 2)))


def test_feature_clips_follow_make_windows_and_fuse_labels():
    record = _record()
    feats = {"v": np.arange(19 * 3, dtype=np.float32).reshape(19, 3)}
    clips = FeatureClips([record], feats, seq_len=4, overlap=0.5, tolerance=1, fusion="extremum")
    windows = make_windows(record.track.kept_frames, 4, 0.5, 1)
    assert len(clips) == len(windows) > 0
    for i, window in enumerate(windows):
        x, y = clips[i]
        np.testing.assert_array_equal(x.numpy(), feats["v"][window])
        np.testing.assert_allclose(y.numpy(), fuse_labels(record.frame_labels[window], "extremum"))
    # the gap at frame 7 (tolerance 1) removes the windows that straddle it
    assert all(not (w[0] < 7 <= w[-1]) for w in (record.track.kept_frames[w] for w in windows))


def test_best_configuration_per_label_is_chosen_on_validation_not_test():
    rows = [{"init": "RAF-DB", "fps": 10, "name": "a", "val_pp_valence_CCC": 0.6, "valence_CCC": 0.1,
             "val_pp_arousal_CCC": 0.2, "arousal_CCC": 0.9},
            {"init": "RAF-DB", "fps": 10, "name": "b", "val_pp_valence_CCC": 0.5, "valence_CCC": 0.8,
             "val_pp_arousal_CCC": 0.3, "arousal_CCC": 0.1}]
    chosen = {c["label"]: c["row"]["name"] for c in best_per_label(rows)}
    assert chosen == {"valence": "a", "arousal": "b"}


def test_resize_keeps_pixel_range_and_leading_dimensions():
    from emorec.data.clips import resize_frames

    clips = torch.zeros(2, 5, 3, 100, 80)
    clips[..., ::2, :] = 1.0  # stripes make the antialiasing filter overshoot without the clamp
    out = resize_frames(clips, (48, 40))
    assert out.shape == (2, 5, 3, 48, 40)
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert resize_frames(clips, (100, 80)) is clips


def test_the_best_model_per_label_is_chosen_on_validation_even_when_test_disagrees():
    def row(label, val, test):
        return {f"val_pp_{label}_CCC": val, f"{label}_CCC": test}

    chosen = {"cascade": {"valence": row("valence", 0.6, 0.9), "arousal": row("arousal", 0.2, 0.8)},
              "i3d": {"valence": row("valence", 0.5, 0.1), "arousal": row("arousal", 0.4, 0.1)}}
    assert best_model_per_label(chosen) == {"valence": "cascade", "arousal": "i3d"}
