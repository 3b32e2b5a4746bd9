"""Table 2 machinery: the clip index and its cached-map source, clip → frame → label-timeline
predictions, and configurations chosen on validation only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from emorec.data.clips import CachedClips, ClipIndex, fuse_labels, make_windows
from emorec.data.faces import FaceTrack
from emorec.experiments.corpus import VideoRecord
from emorec.experiments.evaluation import (best_model_per_label, best_per_label, claim_word, seed_spread,
                                           spread_clip_predictions, to_label_timeline)
from emorec.experiments.prefix import clip_index


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


@pytest.mark.parametrize("seq_len, overlap, fusion", [(4, 0.5, "extremum"), (3, 0.0, "mean"), (5, 0.8, "mean")])
def test_the_clip_index_follows_make_windows_and_fuse_labels(seq_len, overlap, fusion):
    record = _record(missing=(7, 8))
    index = clip_index([record], seq_len, overlap, tolerance=1, fusion=fusion)
    windows = make_windows(record.track.kept_frames, seq_len, overlap, 1)
    assert len(index) == len(windows) > 0
    np.testing.assert_array_equal(index.index, [(0, w[0]) for w in windows])
    np.testing.assert_array_equal(index.starts(0), [w[0] for w in windows])
    for i, window in enumerate(windows):
        np.testing.assert_allclose(index.labels[i], fuse_labels(record.frame_labels[window], fusion), rtol=1e-6)
    # the gap at frames 7-8 (tolerance 1) removes the windows that straddle it
    assert all(not (w[0] < 7 <= w[-1]) for w in (record.track.kept_frames[w] for w in windows))


def test_cached_clips_serve_the_maps_of_each_window_in_clip_layout():
    record = _record()
    maps = np.arange(19 * 2 * 3 * 1, dtype=np.float16).reshape(19, 2, 3, 1)  # [N_kept, C, h, w]
    clips = CachedClips(clip_index([record], 4, 0.5, fusion="extremum"), [maps])
    windows = make_windows(record.track.kept_frames, 4, 0.5, 1)
    for i, window in enumerate(windows):
        x, y = clips[i]
        assert x.shape == (2, 4, 3, 1) and x.dtype == torch.float32  # [C, T, h, w], as the models take clips
        np.testing.assert_array_equal(x.numpy(), maps[window].astype(np.float32).transpose(1, 0, 2, 3))
        np.testing.assert_allclose(y.numpy(), fuse_labels(record.frame_labels[window], "extremum"), rtol=1e-6)
    with pytest.raises(ValueError, match="2 label arrays"):
        ClipIndex([record.track.kept_frames], [record.frame_labels] * 2, 4, 0.5)


def test_seed_spread_and_the_word_for_a_claim():
    spread = seed_spread([0.5, 0.7, 0.6])
    assert spread["mean"] == pytest.approx(0.6) and (spread["min"], spread["max"]) == (0.5, 0.7)
    assert spread["std"] == pytest.approx(0.1) and spread["n"] == 3
    assert seed_spread([0.4])["std"] == 0.0
    assert claim_word([True, True, True]) == "holds"
    assert claim_word([True, False, True]) == "mixed"
    assert claim_word([False]) == "does not hold"
    with pytest.raises(ValueError):
        claim_word([])


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


def test_in_a_read_only_chapter_the_seeds_not_run_yet_are_left_out_and_a_missing_first_run_says_so():
    from emorec.experiments import NotRunYet
    from emorec.experiments.temporal import with_seeds

    def stored(seeds):
        def run(config, corpus, checkpoint, store):
            if config["seed"] not in seeds:
                raise NotRunYet("not run yet — `emorec run table2 --profile paper`")
            return {"seed": config["seed"]}
        return run

    assert with_seeds(stored({0, 2}), {"seed": 0}, None, None, None, 3) == [{"seed": 0}, {"seed": 2}]
    assert with_seeds(stored({0, 1, 2}), {"seed": 0}, None, None, None, 3, {"seed": 0, "first": 1})[0]["first"]
    with pytest.raises(NotRunYet, match="emorec run table2"):  # the baseline's own seed 0
        with_seeds(stored({1}), {"seed": 0}, None, None, None, 2)


def test_the_baseline_takes_the_windows_of_the_chosen_raf_cascade_at_the_first_frame_rate():
    from emorec.experiments.temporal import baseline_cascades, baseline_config

    chosen = [{"init": i, "fps": f, "label": label, "row": {"init": i, "fps": f, "seq_len": 8, "overlap": 0.5,
                                                          "fusion": "mean", "valence_CCC": 0.4}}
              for i in ("VGG-Face", "RAF-DB") for f in (10, 50) for label in ("valence", "arousal")]
    picks = baseline_cascades(chosen, ["VGG-Face", "RAF-DB"], [10, 50])
    assert [(c["init"], c["fps"], c["label"]) for c in picks] == [("RAF-DB", 10, "valence"), ("RAF-DB", 10, "arousal")]
    config = baseline_config({"lr": 1e-3, "seed": 0, "seq_len": 99}, picks[0]["row"])
    assert config == {"lr": 1e-3, "seed": 0, "init": "RAF-DB", "fps": 10, "seq_len": 8, "overlap": 0.5, "fusion": "mean"}
