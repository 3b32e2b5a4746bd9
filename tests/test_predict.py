"""The predict path: windows over face segments, the models' clip predictions, gaps kept as gaps,
post-processing on the frame timeline, and the settings a checkpoint carries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from emorec import predict
from emorec.data import video
from emorec.experiments import checkpoint_eval
from emorec.predict import inference
from emorec.data.faces import FaceTrack
from emorec.experiments.corpus import Corpus, VideoRecord
from emorec.data.clips import resize_frames
from emorec.experiments.temporal import save_cascade
from emorec.models import CNN2D, CNNLSTM, I3D
from emorec.postprocess import PostprocessParams, apply_postprocess
from emorec.train import checkpoint as ckpt

SMALL = dict(backbone="vgg11", width=0.125, seed=1)
SIZE = (32, 32)


def save_model(model, path: Path, input_size=SIZE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(model, CNNLSTM):
        save_cascade(model, input_size, path)
    else:
        ckpt.save({"format": ckpt.FORMAT, "model": model.state_dict(), "model_config": ckpt.plain(model.config)},
                  path)
    return path


def fake_track(kept: np.ndarray, seed: int = 0, size=(40, 36)) -> FaceTrack:
    """A crop-cache track in memory: one row per sampled frame at 10 fps, random crops where kept."""
    rng = np.random.default_rng(seed)
    kept = np.asarray(kept, bool)
    n = len(kept)
    frames = pd.DataFrame({"frame": np.arange(n), "source_frame": 5 * np.arange(n), "time": np.arange(n) / 10,
                           "kept": kept, "crop_index": np.where(kept, np.cumsum(kept) - 1, -1)})
    for col, value in zip(("x1", "y1", "x2", "y2", "prob"), (10.0, 12.0, 90.0, 110.0, 0.99)):
        frames[col] = np.where(kept, value, np.nan)
    crops = rng.integers(0, 256, (int(kept.sum()), *size, 3), dtype=np.uint8)
    return FaceTrack(path=Path("memory"), crops=crops, frames=frames, meta={"sampling_fps": 10.0})


def brute_force_coverage(frame_numbers, seq_len, starts):
    """Independent check: each window is seq_len consecutive kept frames with no gap > 1."""
    frames = np.asarray(frame_numbers)
    for s in starts:
        assert s + seq_len <= len(frames)
        assert np.all(np.diff(frames[s:s + seq_len]) == 1)


# --------------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------------

def test_windows_cover_every_face_frame_of_long_segments_and_none_of_short_ones():
    # segments (frame numbers): 0-20 (21 frames), 25-27 (3, too short), 40-55 (16, exactly one clip)
    frames = np.r_[np.arange(0, 21), np.arange(25, 28), np.arange(40, 56)]
    starts = predict.prediction_windows(frames, seq_len=8, overlap=0.5)
    brute_force_coverage(frames, 8, starts)
    covered = np.zeros(len(frames), bool)
    for s in starts:
        covered[s:s + 8] = True
    assert covered[:21].all() and not covered[21:24].any() and covered[24:].all()
    # first segment: starts 0, 4, 8, 12 from the rule, then one aligned to its end (13)
    assert list(starts[starts < 21]) == [0, 4, 8, 12, 13]
    assert list(starts[starts >= 21]) == [24, 28, 32]


def test_windows_of_a_video_shorter_than_a_clip_are_empty():
    assert len(predict.prediction_windows(np.arange(5), seq_len=8, overlap=0.5)) == 0
    with pytest.raises(ValueError, match="overlapping ratio"):
        predict.prediction_windows(np.arange(20), seq_len=8, overlap=1.0)


# --------------------------------------------------------------------------------------------------
# Clip predictions equal the models' own forward passes
# --------------------------------------------------------------------------------------------------

def _clips(track: FaceTrack, starts, seq_len) -> torch.Tensor:
    frames = torch.from_numpy(np.array(track.crops)).movedim(-1, -3).float() / 255
    frames = resize_frames(frames, SIZE)
    return torch.stack([frames[s:s + seq_len].transpose(0, 1) for s in starts])  # [N, 3, T, H, W]


@pytest.mark.parametrize("kind", ["cnn_lstm", "i3d", "cnn2d"])
def test_clip_predictions_match_the_model_on_whole_clips(tmp_path, kind):
    model = {"cnn_lstm": lambda: CNNLSTM(**SMALL, hidden_size=8, head_units=(8, 4)),
             "i3d": lambda: I3D(**SMALL, preset="C2"),
             "cnn2d": lambda: CNN2D(task="regression", **SMALL)}[kind]().eval()
    path = save_model(model, tmp_path / "m.pt")
    if kind != "cnn_lstm":  # the input size comes from the artefact folder's config.json
        (tmp_path / "config.json").write_text(json.dumps({"config": {"input_size": list(SIZE), "seq_len": 4}}))
    predictor = predict.load_predictor(path)
    assert predictor.kind == kind and predictor.input_size == SIZE
    track = fake_track(np.ones(11, bool))
    starts = predict.prediction_windows(track.kept_frames, 4, 0.5)
    got = predict.clip_predictions(predictor, track.crops, starts, 4, batch_size=5)
    clips = _clips(track, starts, 4)
    with torch.no_grad():
        if kind == "cnn2d":  # the frame-by-frame baseline: mean of the frames' predictions
            n, c, t, h, w = clips.shape
            expected = model(clips.transpose(1, 2).reshape(n * t, c, h, w)).reshape(n, t, 2).mean(1)
        else:
            expected = model(clips) / getattr(model, "multiplier", 1.0)
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=1e-5)


def test_classifiers_are_refused(tmp_path):
    path = save_model(CNN2D(task="classification", **SMALL), tmp_path / "best.pt")
    with pytest.raises(ValueError, match="classifier"):
        predict.load_predictor(path)


# --------------------------------------------------------------------------------------------------
# Frames without a face stay empty; clip values; post-processing
# --------------------------------------------------------------------------------------------------

def test_frame_table_marks_frames_without_a_face(tmp_path):
    predictor = predict.load_predictor(save_model(CNNLSTM(**SMALL, hidden_size=8, head_units=(8, 4)),
                                                  tmp_path / "m.pt"))
    kept = np.ones(30, bool)
    kept[10:13] = False  # a gap
    kept[25:] = False  # the face leaves
    track = fake_track(kept)
    values, starts, clips = predict.track_predictions(predictor, track, seq_len=5, overlap=0.4)
    table = predict.frame_table(track, values, starts, clips, 5, None)
    assert list(table.columns) == predict.FRAME_COLUMNS and len(table) == 30
    assert table.loc[~kept, ["valence", "arousal", "clip_valence"]].isna().all().all()
    assert (table.loc[~kept, "n_clips"] == 0).all() and (table.loc[~kept, "clip"] == -1).all()
    assert table.loc[kept, ["valence", "arousal"]].notna().all().all()
    # a frame's value is the mean of the clips covering it
    for i in np.flatnonzero(kept):
        pos = int(track.frames.loc[i, "crop_index"])
        covering = [j for j, s in enumerate(starts) if s <= pos < s + 5]
        assert table.loc[i, "n_clips"] == len(covering)
        np.testing.assert_allclose(table.loc[i, ["valence", "arousal"]].to_numpy(float),
                                   clips[covering].mean(axis=0), rtol=1e-6)
        assert table.loc[i, "clip"] in covering
    np.testing.assert_array_equal(table["valence"], table["valence_raw"])


def test_timeline_postprocessing_equals_the_library_pipeline_on_a_full_10hz_series():
    rng = np.random.default_rng(3)
    times = np.arange(60) / 10
    values = np.sin(times) + 0.1 * rng.standard_normal(60)
    for params in (PostprocessParams(shift=-4, offset=0.2, pivot=0.1, factor=1.7),
                   PostprocessParams(shift=3, offset=-0.1, pivot=0.0, factor=0.5)):
        np.testing.assert_allclose(predict.postprocess_timeline(times, values, params),
                                   apply_postprocess(values, params), rtol=1e-12)
    gappy = values.copy()
    gappy[20:25] = np.nan
    out = predict.postprocess_timeline(times, gappy, {"shift": 2, "offset": 0.0, "pivot": 0.0, "factor": 2.0})
    assert np.isnan(out[20:25]).all() and np.isfinite(np.delete(out, range(20, 25))).all()


def test_settings_and_postprocessing_come_from_the_artefact_folder(tmp_path):
    path = save_model(CNNLSTM(**SMALL, hidden_size=8, head_units=(8, 4)), tmp_path / "run" / "model.pt", (40, 32))
    (tmp_path / "run" / "config.json").write_text(json.dumps(
        {"table": "table2", "config": {"seq_len": 16, "fps": 10, "overlap": 0.8, "input_size": [48, 40]}}))
    pp = {"shift": -3, "offset": 0.1, "pivot": 0.0, "factor": 1.2, "kept": ["shift", "center", "scale"]}
    (tmp_path / "run" / "result.json").write_text(json.dumps({"valence_postprocess": pp, "arousal_postprocess": pp}))
    predictor = predict.load_predictor(path)
    assert predictor.input_size == (40, 32)  # the checkpoint's own record wins over config.json
    assert predictor.trained == {"seq_len": 16, "fps": 10, "overlap": 0.8}
    assert predictor.postprocess["valence"]["shift"] == -3
    settings = inference._resolve_settings(predictor, None, None, None, None)
    assert settings == {"fps": 10.0, "seq_len": 16, "overlap": predict.DEFAULT_OVERLAP, "tolerance": 1.0}


# --------------------------------------------------------------------------------------------------
# evaluate: the paper's scores through the predict path
# --------------------------------------------------------------------------------------------------

def test_evaluate_checkpoint_scores_each_split_on_its_label_timeline(tmp_path):
    path = save_model(CNNLSTM(**SMALL, hidden_size=8, head_units=(8, 4)), tmp_path / "m.pt")
    rng = np.random.default_rng(0)
    records = []
    for i, split in enumerate(["train", "train", "validation", "test", "test"]):
        kept = np.ones(40, bool)
        kept[15:18] = False
        track = fake_track(kept, seed=i)
        label_times = np.arange(40) / 10
        labels = np.stack([np.sin(label_times + i), np.cos(label_times * 2 + i)], 1) * 0.5
        labels += 0.05 * rng.standard_normal(labels.shape)
        records.append(VideoRecord(f"v{i}", f"s{i}", split, track, labels[kept].astype(np.float32), label_times,
                                   labels))
    corpus = Corpus(records, 10.0, "in-memory test corpus", "fp")
    table = checkpoint_eval.evaluate_checkpoint(path, corpus, "test", seq_len=8, n_boot=50, max_shift=3)
    assert list(table["label"]) == ["valence", "arousal"] * 2
    assert list(table["stage"]) == ["raw", "raw", "post-processed", "post-processed"]
    assert np.isfinite(table[["CCC", "PCC", "MAE"]].to_numpy()).all()
    # the raw MAE, recomputed from the per-frame values interpolated onto the label times
    errors = []
    for r in corpus.split("test"):
        values, _, _ = predict.track_predictions(predict.load_predictor(path), r.track, 8, 0.5)
        interp = np.interp(r.label_times, r.kept_times, values[:, 0])
        errors.append(np.abs(interp - r.labels[:, 0]))
    assert table.loc[0, "MAE"] == pytest.approx(np.concatenate(errors).mean(), rel=1e-6)
    with pytest.raises(ValueError, match="split"):
        checkpoint_eval.evaluate_checkpoint(path, corpus, "devel", seq_len=8)


def test_still_clip_is_the_image_cropped_to_the_frame_and_repeated(tmp_path):
    from emorec.data.video import read_video

    image = np.zeros((300, 600, 3), np.uint8)
    image[:, 150:450] = 200  # the centre 4:3 part (300 x 400 after cropping the sides) is mostly bright
    path = video.write_still_clip(image, tmp_path / "still.avi", seconds=0.2, fps=50)
    frames, _, _ = read_video(path)
    assert frames.shape == (10, 240, 320, 3)
    assert np.abs(frames.astype(int) - frames[0].astype(int)).max() <= 8  # every frame the same (codec noise)
    assert frames[0][:, 60:260].mean() > 150 and frames[0][:, :20].mean() < 60
    with pytest.raises(ValueError, match="valence"):
        predict.predict_per_label(path, {"valence": "a.pt"})
