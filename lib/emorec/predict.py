"""Valence and arousal of any video with a trained model: the ``emorec predict`` path (§6, ours).

The paper stops at test scores (§4-5); its conclusion (§6) talks of live applications. This module
runs a checkpoint of the book (a 2D-CNN-LSTM of §3.3.1, an i3D-CNN of §3.3.2, or a frame-by-frame
2D regressor) on a new video with the preprocessing of §3.2 and the post-processing of §3.4:

1. frames are sampled at ``fps`` and MTCNN finds and crops the face (§3.2.1,
   :func:`emorec.data.faces.extract_video`); frames without a face are kept in the table, marked;
2. clips of ``seq_len`` consecutive face frames with overlapping ratio ``overlap`` (§3.2.2) go
   through the model. Clips run over each *face segment* (a run of face frames with no gap larger
   than ``tolerance``) from its first frame, and the last clip of a segment is aligned to its end,
   so every face frame of a segment at least ``seq_len`` long is covered (ours: training drops the
   tail instead, :func:`emorec.data.clips.make_windows`);
3. a frame's value is the mean of the clips covering it
   (:func:`emorec.experiments.evaluation.spread_clip_predictions`); frames without a face, or in a
   face segment too short for one clip, stay NaN: marked, never invented;
4. optionally the post-processing of §3.4 (time shift, centring, scaling) fitted on the training
   and validation videos of the run that produced the checkpoint (its ``result.json``), with the
   shift applied in seconds on the frame timeline.

A checkpoint carries its model's configuration (:func:`emorec.models.load_model`); the sequence
length, frame rate and input size the model was trained with are read from the checkpoint
(``input_size``) and from its artefact folder's ``config.json`` when present. The book's video
models also record the data they were trained on (``trained_on``: the corpus, whether its faces
were synthetic, profile, seed, commit), which every output repeats (ours). With one checkpoint per
label (the book's best model per label), faces are extracted once and each label's values come from
its own model.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import cv2
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from . import storage
from .data import faces, video
from .data.clips import make_windows, resize_frames, window_step
from .experiments.evaluation import spread_clip_predictions
from .postprocess import PostprocessParams

TARGETS = ("valence", "arousal")
DEFAULT_FPS = 10.0
DEFAULT_OVERLAP = 0.5
LABEL_STEP_S = 0.1  # the post-processing shift t counts 10 Hz label steps (§3.4, SEWA's rate)
CROP_SIZE = (100, 80)  # §3.2.1: faces cropped to 100×80 (the corpus cache's size; models resize)
OUTPUT_FILES = {"csv": "predictions.csv", "clips": "clips.csv", "timeseries": "timeseries.png",
                "circumplex": "circumplex.png", "video": "annotated.mp4", "settings": "settings.json"}
FRAME_COLUMNS = ["time", "frame", "source_frame", "face", "x1", "y1", "x2", "y2", "face_prob", "valence",
                 "arousal", "valence_raw", "arousal_raw", "n_clips", "clip", "clip_valence", "clip_arousal"]


# --------------------------------------------------------------------------------------------------
# The model and what its checkpoint records
# --------------------------------------------------------------------------------------------------

@dataclass
class Predictor:
    """A loaded checkpoint ready to predict: the model and the settings it was trained with."""

    checkpoint: Path
    model: torch.nn.Module
    kind: str  # "cnn_lstm" | "i3d" | "cnn2d"
    input_size: tuple[int, int]
    trained: dict = field(default_factory=dict)  # seq_len, fps, overlap, tolerance as recorded
    postprocess: dict | None = None  # per target, the §3.4 parameters recorded beside the checkpoint
    trained_on: dict | None = None  # the data it was trained on, as the checkpoint records it

    @property
    def multiplier(self) -> float:
        return float(getattr(self.model, "multiplier", 1.0))

    def training_data(self) -> str:
        """The data the model was trained on, in words (ours): "not recorded" for a checkpoint
        without the entry (older, or a user's)."""
        t = self.trained_on
        if not t:
            return "not recorded"
        faces_kind = "synthetic faces only" if t.get("synthetic") else "real faces"
        return f"{t.get('data', '?')} ({faces_kind}; commit {t.get('commit', 'unknown')})"

    def synthetic_warning(self) -> str | None:
        """The one-line warning for a model trained on synthetic faces only, else None (ours)."""
        if not (self.trained_on or {}).get("synthetic"):
            return None
        return (f"warning: {self.kind} {self.checkpoint} was trained on synthetic faces only; its output on "
                f"real faces is not a measurement of their emotion")


def _read_json(path: Path) -> dict | None:
    """A JSON object written beside a checkpoint, None when there is none; ValueError naming a
    malformed one (it would otherwise silently change the settings used)."""
    if not path.exists():
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: malformed JSON beside the checkpoint ({err})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object beside the checkpoint, found {type(obj).__name__}")
    return obj


def _trained_settings(path: Path, config) -> dict:
    """``seq_len, fps, overlap, tolerance`` of a ``config.json``'s ``config``; ValueError naming the file
    for a missing mapping or a value of the wrong kind."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ValueError(f"{path}: 'config' must be a mapping, found {type(config).__name__}")
    kinds = {"seq_len": (int,), "fps": (int, float), "overlap": (int, float), "tolerance": (int, float)}
    trained = {}
    for key, types in kinds.items():
        value = config.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, types) or not math.isfinite(value):
            raise ValueError(f"{path}: 'config.{key}' is {value!r}, not a number of the kind it needs")
        trained[key] = value
    return trained


def load_predictor(checkpoint) -> Predictor:
    """Load a checkpoint of the book for prediction (§3.3 models; the settings of §3.2 it was trained with).

    Raises FileNotFoundError for a missing file and ValueError, naming the file, for a file that is
    not one of our checkpoints, is corrupt, holds a model that does not predict valence and arousal
    (e.g. Table 1's expression classifiers), or has a malformed ``config.json`` / ``result.json``
    beside it."""
    from .models import load_model
    from .train.checkpoint import load_checkpoint

    checkpoint = Path(checkpoint)
    saved = load_checkpoint(checkpoint)
    model = load_model(checkpoint)
    kind = model.config.get("kind")
    if kind == "cnn2d" and model.config.get("task") != "regression":
        raise ValueError(f"checkpoint {checkpoint} is a {model.config.get('num_outputs')}-class expression "
                         f"classifier (Table 1), not a valence/arousal model")
    folder = checkpoint.parent
    config_path = folder / "config.json"
    config = (_read_json(config_path) or {}).get("config")
    trained = _trained_settings(config_path, config)
    size = saved.get("input_size") or (config or {}).get("input_size") or CROP_SIZE
    result = _read_json(folder / "result.json") or {}
    recorded = {t: result.get(f"{t}_postprocess") for t in TARGETS}
    postprocess = recorded if all(isinstance(v, dict) for v in recorded.values()) else None
    trained_on = saved.get("trained_on")
    return Predictor(checkpoint, model, kind, (int(size[0]), int(size[1])), trained, postprocess,
                     dict(trained_on) if isinstance(trained_on, dict) else None)


# --------------------------------------------------------------------------------------------------
# Clips over the face frames
# --------------------------------------------------------------------------------------------------

def prediction_windows(frame_numbers, seq_len: int, overlap: float, tolerance: float = 1) -> np.ndarray:
    """First kept-frame position of each clip used for prediction (§3.2.2 windows, per face segment).

    Windows of ``seq_len`` kept frames start every ``round(SL × (1 − OR))`` positions from the first
    frame of each face segment (kept frames whose gaps are at most ``tolerance``); a segment whose
    tail is not reached gets one more window aligned to its end. Segments shorter than ``seq_len``
    get none."""
    frames = np.asarray(frame_numbers, dtype=np.int64)
    window_step(seq_len, overlap)  # ValueError for impossible values
    if len(frames) == 0:
        return np.zeros(0, np.int64)
    breaks = np.flatnonzero(np.diff(frames) > tolerance) + 1
    starts = []
    for a, b in zip(np.r_[0, breaks], np.r_[breaks, len(frames)]):
        if b - a < seq_len:
            continue
        # make_windows on the segment alone: the same windowing rule as training, from the segment start
        local = [w[0] for w in make_windows(frames[a:b], seq_len, overlap, tolerance)]
        if local[-1] + seq_len < b - a:
            local.append(b - a - seq_len)
        starts.extend(a + s for s in local)
    return np.asarray(starts, dtype=np.int64)


def _to_input(crops: np.ndarray, input_size) -> torch.Tensor:
    """uint8 [N, H, W, 3] crops → float [N, 3, h, w] in [0, 1] at the model's input size (as in training)."""
    frames = torch.from_numpy(np.array(crops)).movedim(-1, -3).float() / 255
    return resize_frames(frames, input_size)


def clip_predictions(predictor: Predictor, crops: np.ndarray, starts, seq_len: int, batch_size: int = 64,
                     progress: bool = False) -> np.ndarray:
    """Model output (valence, arousal) per clip [n_clips, 2]; clip j covers crops[starts[j]:+seq_len].

    CNN-LSTM (§3.3.1): each face goes through the 2D network once and the LSTM runs on the clips'
    feature sequences. i3D (§3.3.2): clips [B, 3, T, H, W], outputs divided by the target
    multiplier. 2D regressor: the mean of the clip's frame predictions (the frame-by-frame baseline).
    """
    starts = np.asarray(starts, dtype=np.int64)
    model, size = predictor.model, predictor.input_size
    if len(starts) == 0:
        return np.zeros((0, 2), np.float32)
    bar = tqdm(total=len(crops) if predictor.kind != "i3d" else len(starts), desc="model",
               unit="frame" if predictor.kind != "i3d" else "clip", disable=not progress, leave=False)
    with torch.no_grad():
        if predictor.kind == "i3d":
            out = []
            for b in range(0, len(starts), max(1, batch_size // seq_len)):
                batch = starts[b:b + max(1, batch_size // seq_len)]
                clips = torch.stack([_to_input(crops[s:s + seq_len], size).transpose(0, 1) for s in batch])
                out.append(model(clips) / predictor.multiplier)
                bar.update(len(batch))
            bar.close()
            return torch.cat(out).numpy()
        per_frame = []
        for b in range(0, len(crops), batch_size):
            x = _to_input(crops[b:b + batch_size], size)
            if predictor.kind == "cnn_lstm":
                per_frame.append(torch.flatten(model.pool(model.features(model.normalize(x))), 1))
            else:
                per_frame.append(model(x))
            bar.update(len(x))
        bar.close()
        per_frame = torch.cat(per_frame)
        index = torch.from_numpy(starts[:, None] + np.arange(seq_len)[None, :])
        if predictor.kind == "cnn_lstm":
            return torch.cat([model.temporal(per_frame[index[b:b + 256]])
                              for b in range(0, len(index), 256)]).numpy()
        return per_frame[index].mean(dim=1).numpy()


def nearest_clip(n_kept: int, starts, seq_len: int) -> np.ndarray:
    """Per kept frame, the covering clip whose centre is nearest (the earlier on a tie); -1 if none."""
    best, dist = np.full(n_kept, -1, np.int64), np.full(n_kept, np.inf)
    for j, s in enumerate(np.asarray(starts, dtype=np.int64)):
        pos = np.arange(s, s + seq_len)
        d = np.abs(pos - (s + (seq_len - 1) / 2))
        closer = d < dist[pos]
        best[pos[closer]], dist[pos[closer]] = j, d[closer]
    return best


def track_predictions(predictor: Predictor, track: faces.FaceTrack, seq_len: int, overlap: float,
                      tolerance: float = 1, progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per kept face of a crop-cache track: (values [N_kept, 2] NaN where no clip covers it, clip
    starts, clip predictions [n_clips, 2]) — §3.2.2 windows, clip predictions spread over frames."""
    starts = prediction_windows(track.kept_frames, seq_len, overlap, tolerance)
    clips = clip_predictions(predictor, track.crops, starts, seq_len, progress=progress)
    values = spread_clip_predictions(len(track.crops), starts, seq_len, clips)
    return values, starts, clips


# --------------------------------------------------------------------------------------------------
# Post-processing on the frame timeline (§3.4)
# --------------------------------------------------------------------------------------------------

def _as_params(p) -> PostprocessParams:
    if isinstance(p, PostprocessParams):
        return p
    if isinstance(p, Mapping):
        return PostprocessParams(shift=int(p.get("shift", 0)), offset=float(p.get("offset", 0.0)),
                                 pivot=float(p.get("pivot", 0.0)), factor=float(p.get("factor", 1.0)),
                                 kept=tuple(p.get("kept", ())))
    raise ValueError(f"post-processing parameters must be PostprocessParams or a dict, got {type(p).__name__}")


def _params_dict(p) -> dict:
    p = _as_params(p)
    return {"shift": p.shift, "offset": p.offset, "pivot": p.pivot, "factor": p.factor, "kept": list(p.kept)}


def postprocess_timeline(times, values, params) -> np.ndarray:
    """The §3.4 pipeline on one series with gaps: Eq. (3)'s shift ``y(τ) = y'(τ + t·0.1 s)`` by
    interpolation over the frames that have a value (ends held), then ``pivot + (y + offset −
    pivot) × factor`` (Eqs. (2), (1)). NaN frames stay NaN."""
    params = _as_params(params)
    times, values = np.asarray(times, float), np.asarray(values, float)
    out = values.copy()
    ok = np.isfinite(values)
    if params.shift and ok.sum() > 1:
        out[ok] = np.interp(times[ok] + params.shift * LABEL_STEP_S, times[ok], values[ok])
    return params.pivot + (out + params.offset - params.pivot) * params.factor


# --------------------------------------------------------------------------------------------------
# One video
# --------------------------------------------------------------------------------------------------

@dataclass
class VideoPrediction:
    """What :func:`run_predict` returns: the frame table, the clip table and the settings used."""

    frames: pd.DataFrame
    clips: pd.DataFrame
    settings: dict
    timings: dict


def _resolve_settings(predictor: Predictor, fps, seq_len, overlap, tolerance) -> dict:
    trained = predictor.trained
    fps = fps if fps is not None else trained.get("fps", DEFAULT_FPS)
    if seq_len is None:
        seq_len = trained.get("seq_len", 1 if predictor.kind == "cnn2d" else None)
    if seq_len is None:
        raise ValueError(f"checkpoint {predictor.checkpoint} does not record its sequence length (no "
                         f"config.json beside it): give one (--seq-len)")
    overlap = DEFAULT_OVERLAP if overlap is None else overlap
    tolerance = trained.get("tolerance", 1) if tolerance is None else tolerance
    window_step(int(seq_len), float(overlap))  # ValueError for impossible values
    return {"fps": float(fps), "seq_len": int(seq_len), "overlap": float(overlap), "tolerance": float(tolerance)}


def _postprocess_choice(predictor: Predictor, postprocess) -> dict | None:
    if postprocess is None or postprocess == "none":
        return None
    if postprocess == "auto":
        return predictor.postprocess
    if isinstance(postprocess, Mapping) and set(TARGETS) <= set(postprocess):
        return {t: postprocess[t] for t in TARGETS}
    raise ValueError(f"postprocess must be None, 'none', 'auto' or a dict with {TARGETS}, got {postprocess!r}")


def frame_table(track: faces.FaceTrack, values: np.ndarray, starts, clips: np.ndarray, seq_len: int,
                postprocess: dict | None) -> pd.DataFrame:
    """One row per sampled frame: time, face found and box, per-frame valence/arousal (NaN without a
    face), the raw values, how many clips cover the frame and the nearest clip's own values."""
    table = track.frames
    kept = table["kept"].to_numpy(bool)
    out = pd.DataFrame({"time": table["time"].to_numpy(float), "frame": table["frame"].to_numpy(),
                        "source_frame": table["source_frame"].to_numpy(), "face": kept})
    for col in faces.BOX_COLUMNS:
        out[col] = table[col].to_numpy(float)
    out["face_prob"] = table["prob"].to_numpy(float)
    full = np.full((len(table), 2), np.nan)
    full[kept] = values
    counts = np.zeros(len(table), np.int64)
    cover = np.zeros(len(track.crops), np.int64)
    for s in np.asarray(starts, np.int64):
        cover[s:s + seq_len] += 1
    counts[kept] = cover
    nearest = np.full(len(table), -1, np.int64)
    nearest[kept] = nearest_clip(len(track.crops), starts, seq_len)
    times = out["time"].to_numpy()
    for d, name in enumerate(TARGETS):
        out[f"{name}_raw"] = full[:, d]
        out[name] = full[:, d] if postprocess is None else postprocess_timeline(times, full[:, d], postprocess[name])
    out["n_clips"], out["clip"] = counts, nearest
    for d, name in enumerate(TARGETS):
        out[f"clip_{name}"] = np.where(nearest >= 0, clips[np.maximum(nearest, 0), d] if len(clips) else np.nan,
                                       np.nan)
    return out[FRAME_COLUMNS]


def clip_table(track: faces.FaceTrack, starts, clips: np.ndarray, seq_len: int) -> pd.DataFrame:
    """One row per clip: its first and last face frame (frame numbers and times) and the model's values."""
    kept = track.frames[track.frames["kept"]]
    starts = np.asarray(starts, np.int64)
    first, last = kept.iloc[starts] if len(starts) else kept.iloc[:0], kept.iloc[starts + seq_len - 1] if len(
        starts) else kept.iloc[:0]
    return pd.DataFrame({"clip": np.arange(len(starts)), "start_frame": first["frame"].to_numpy(),
                         "end_frame": last["frame"].to_numpy(), "start_time": first["time"].to_numpy(float),
                         "end_time": last["time"].to_numpy(float), "valence": clips[:, 0] if len(clips) else [],
                         "arousal": clips[:, 1] if len(clips) else []})


def per_label_checkpoints(checkpoint) -> dict[str, Path]:
    """``{label: checkpoint}`` for one checkpoint, or a mapping that names one for each label (ours)."""
    if isinstance(checkpoint, Mapping):
        if set(checkpoint) != set(TARGETS):
            raise ValueError(f"checkpoints must name a model for each of {TARGETS}, got {sorted(checkpoint)}")
        return {t: Path(checkpoint[t]) for t in TARGETS}
    return {t: Path(checkpoint) for t in TARGETS}


def load_predictors(checkpoint, predictor: Predictor | None = None) -> dict[str, Predictor]:
    """Per label, its loaded model (ours): each distinct checkpoint loaded once; ``predictor``
    (already loaded) serves both labels."""
    if predictor is not None:
        return {t: predictor for t in TARGETS}
    paths = per_label_checkpoints(checkpoint)
    loaded = {path: load_predictor(path) for path in dict.fromkeys(paths.values())}
    return {t: loaded[paths[t]] for t in TARGETS}


def _no_face_table(video_path: Path, fps: float) -> pd.DataFrame:
    """The frame table of a video in which no face was found: every sampled frame, all values NaN."""
    sampled = [(index, t) for index, t, _ in video.iter_frames(video_path, fps)]
    n = len(sampled)
    table = pd.DataFrame({"time": np.arange(n) / fps, "frame": np.arange(n),
                          "source_frame": [index for index, _ in sampled], "face": np.zeros(n, bool)})
    for column in FRAME_COLUMNS[4:]:
        table[column] = np.full(n, -1 if column == "clip" else 0 if column == "n_clips" else np.nan)
    return table[FRAME_COLUMNS]


def _extract_faces(video_path: Path, cache: Path, fps: float, extractor, progress: bool,
                   allow_no_face: bool) -> tuple[faces.FaceTrack | None, pd.DataFrame | None]:
    """(the face track, None), or (None, an all-NaN frame table) for a video in which no face is
    found when ``allow_no_face``; without it, ValueError in one line naming the video."""
    try:
        return faces.extract_video(video_path, cache, fps=fps, crop_size=CROP_SIZE, extractor=extractor,
                                   progress=progress), None
    except faces.NoFaceError:
        pass
    table = _no_face_table(video_path, fps)
    if not allow_no_face:
        raise ValueError(f"{video_path}: no face found in any of {len(table)} sampled frames")
    return None, table


def _model_run(predictor: Predictor, track: faces.FaceTrack, settings: dict, postprocess,
               video_path: Path, progress: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One model over a face track: its frame table and clip table."""
    values, starts, clips = track_predictions(predictor, track, settings["seq_len"], settings["overlap"],
                                              settings["tolerance"], progress)
    if len(starts) == 0:
        raise ValueError(f"{video_path}: no face segment is as long as one clip ({settings['seq_len']} "
                         f"frames at {settings['fps']:g} fps); give a shorter --seq-len")
    return (frame_table(track, values, starts, clips, settings["seq_len"], postprocess),
            clip_table(track, starts, clips, settings["seq_len"]))


def _model_settings(predictor: Predictor, settings: dict, chosen) -> dict:
    """What settings.json says of one label's model: file, kind, windows, training data."""
    return {"checkpoint": str(predictor.checkpoint), "model": predictor.kind, "seq_len": settings["seq_len"],
            "overlap": settings["overlap"], "tolerance": settings["tolerance"],
            "trained_fps": predictor.trained.get("fps"), "input_size": list(predictor.input_size),
            "trained_on": predictor.trained_on, "training_data": predictor.training_data(),
            "postprocess_applied": chosen is not None}


def run_predict(video_path, checkpoint, fps: float | None = None, seq_len: int | None = None,
                overlap: float | None = None, tolerance: float | None = None, cache_dir=None, postprocess=None,
                extractor: faces.FaceExtractor | None = None, progress: bool = False,
                predictor: Predictor | None = None, allow_no_face: bool = False,
                predictors: Mapping[str, Predictor] | None = None) -> VideoPrediction:
    """Predict valence and arousal for every sampled frame of a video (§3.2 preprocessing, §3.3
    models, §3.4 post-processing); see :func:`predict_video` for the arguments. Also returns the
    clip table, the settings and the time spent in face extraction (decoding and MTCNN) and the model.

    ``checkpoint`` may be ``{"valence": ..., "arousal": ...}`` (the book's best model per label,
    §4.4): faces are extracted once, at ``fps`` or else the valence model's rate, and each label's
    columns come from its own model (the other columns from the valence model's). ``allow_no_face``:
    a video without any face gives an all-NaN table instead of a ValueError (ours). ``predictor`` /
    ``predictors``: models already loaded (one for both labels / one per label)."""
    video_path = Path(video_path)
    info = video.video_info(video_path)  # missing or unreadable video: fail before any work
    predictors = dict(predictors) if predictors is not None else load_predictors(checkpoint, predictor)
    settings = _resolve_settings(predictors[TARGETS[0]], fps, seq_len, overlap, tolerance)
    settings["fps"] = min(settings["fps"], info.fps)  # a video slower than the sampling rate: all its frames
    own = {t: _resolve_settings(p, settings["fps"], seq_len, overlap, tolerance) for t, p in predictors.items()}
    chosen = {t: _postprocess_choice(p, postprocess) for t, p in predictors.items()}
    t0 = time.perf_counter()
    with storage.scratch_folder("emorec-faces-") as scratch:
        cache = faces.entry_dir(scratch if cache_dir is None else cache_dir, video_path)
        track, empty = _extract_faces(video_path, cache, settings["fps"], extractor, progress, allow_no_face)
        t1 = time.perf_counter()
        runs = {}
        for t in TARGETS:
            if track is None:
                runs[t] = (empty, _empty_clip_table())
            elif predictors[t].checkpoint not in {predictors[u].checkpoint for u in runs}:
                runs[t] = _model_run(predictors[t], track, own[t], chosen[t], video_path, progress)
            else:  # the same model as an earlier label's
                runs[t] = next(runs[u] for u in runs if predictors[u].checkpoint == predictors[t].checkpoint)
        t2 = time.perf_counter()
    frames, clip_rows = _merge_labels(runs, predictors)
    single = len({p.checkpoint for p in predictors.values()}) == 1
    main = predictors[TARGETS[0]]
    settings.update(video=str(video_path),
                    checkpoint=str(main.checkpoint) if single else {t: str(p.checkpoint) for t, p in predictors.items()},
                    model=main.kind if single else {t: p.kind for t, p in predictors.items()},
                    input_size=list(main.input_size), duration_s=info.duration_s, video_fps=info.fps,
                    video_width=info.width, video_height=info.height,
                    postprocess=None if all(c is None for c in chosen.values()) else {
                        t: None if chosen[t] is None else _params_dict(chosen[t][t]) for t in TARGETS},
                    models={t: _model_settings(p, own[t], chosen[t]) for t, p in predictors.items()},
                    faces_found=float(frames["face"].mean()) if len(frames) else 0.0,
                    frames_with_value=float(frames["valence"].notna().mean()) if len(frames) else 0.0)
    timings = {"faces": t1 - t0, "model": t2 - t1}
    return VideoPrediction(frames, clip_rows, settings, timings)


def _empty_clip_table() -> pd.DataFrame:
    """The clip table of a video without any clip (no face)."""
    return pd.DataFrame({c: [] for c in ("clip", "start_frame", "end_frame", "start_time", "end_time",
                                         "valence", "arousal")})


def _merge_labels(runs: dict, predictors: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each label's columns from its own model's run; the other frame columns from the valence model's.
    With two models, the clip table holds both models' clips, a ``labels`` column saying for which."""
    first, second = TARGETS
    frames = runs[first][0].copy()
    for column in (second, f"{second}_raw", f"clip_{second}"):
        frames[column] = runs[second][0][column].to_numpy()
    if predictors[first].checkpoint == predictors[second].checkpoint:
        return frames, runs[first][1]
    clips = [runs[t][1].assign(labels=t) for t in TARGETS]
    return frames, pd.concat(clips, ignore_index=True)


def predict_video(video_path, checkpoint, fps: float | None = DEFAULT_FPS, seq_len: int | None = None,
                  overlap: float = DEFAULT_OVERLAP, cache_dir=None, postprocess=None,
                  **kwargs) -> pd.DataFrame:
    """Per-frame valence and arousal of a video with one of the book's checkpoints (§3.2-3.4, §6).

    ``fps``: sampling rate (None: the rate the model was trained at, else 10). ``seq_len``: frames
    per clip (None: the one recorded in the checkpoint's artefact folder). ``overlap``: overlapping
    ratio of consecutive clips. ``cache_dir``: a folder under which the face crops are cached, in
    the entry ``<cache_dir>/<stem>-<hash>/`` (:func:`emorec.data.faces.entry_dir`; None: a temporary
    folder). ``postprocess``: None (raw model output), ``"auto"`` (the §3.4 parameters recorded
    beside the checkpoint, if any) or ``{"valence": params, "arousal": params}``.

    Returns one row per sampled frame with the columns of :data:`FRAME_COLUMNS`: ``time`` (s),
    ``face`` (a face was found), its box, ``valence``/``arousal`` (NaN where there is no face or no
    clip covers the frame), the values before post-processing, ``n_clips`` covering the frame and the
    nearest clip's own values. Errors in the input (missing or unreadable video, no face, a file
    that is not one of our checkpoints) raise FileNotFoundError or ValueError naming the file.
    """
    return run_predict(video_path, checkpoint, fps=fps, seq_len=seq_len, overlap=overlap, cache_dir=cache_dir,
                       postprocess=postprocess, **kwargs).frames


# --------------------------------------------------------------------------------------------------
# Figures and the annotated video
# --------------------------------------------------------------------------------------------------

def _no_face_spans(frames: pd.DataFrame) -> list[tuple[float, float]]:
    """(start, end) times of the runs of sampled frames without a value."""
    t = frames["time"].to_numpy(float)
    missing = frames["valence"].isna().to_numpy()
    half = 0.5 * (np.median(np.diff(t)) if len(t) > 1 else 0.1)
    spans, start = [], None
    for i, m in enumerate(missing):
        if m and start is None:
            start = t[i] - half
        if not m and start is not None:
            spans.append((start, t[i - 1] + half))
            start = None
    if start is not None:
        spans.append((start, t[-1] + half))
    return spans


def plot_timeseries(frames: pd.DataFrame, axes=None, label: str = "prediction", color: str = "tab:red",
                    shade: bool = True):
    """Valence (top) and arousal (bottom) against time, gaps where no face was found (shaded grey).

    ``axes``: two matplotlib axes to draw on (a new figure otherwise); returns the figure."""
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(2, 1, figsize=(9, 4.6), sharex=True)
    fig = axes[0].figure
    for ax, name in zip(axes, TARGETS):
        ax.plot(frames["time"], frames[name], color=color, lw=1.3, label=label)
        if shade:
            for a, b in _no_face_spans(frames):
                ax.axvspan(a, b, color="0.85", lw=0, zorder=0)
        ax.set_ylabel(name)
        ax.set_ylim(-1.05, 1.05)
        ax.axhline(0, color="0.6", lw=0.6)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time (s)")
    return fig


def plot_trajectory(frames: pd.DataFrame, ax=None, cmap: str = "viridis", colorbar: bool = True):
    """The (valence, arousal) path over the circumplex of Figure 1, coloured by time; returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    from .plots import circumplex

    if ax is None:
        _, ax = plt.subplots(figsize=(6.2, 5.6))
    circumplex(ax, octants=False)
    ok = frames["valence"].notna().to_numpy()
    t = frames["time"].to_numpy(float)
    points = frames[["valence", "arousal"]].to_numpy(float)
    norm = plt.Normalize(t.min(), t.max() if t.max() > t.min() else t.min() + 1)
    # consecutive frames that both have a value are joined; a gap (no face) breaks the line
    pairs = np.flatnonzero(ok[:-1] & ok[1:])
    segments = np.stack([points[pairs], points[pairs + 1]], axis=1) if len(pairs) else np.zeros((0, 2, 2))
    lines = LineCollection(segments, cmap=cmap, norm=norm, lw=1.6, zorder=5)
    lines.set_array(t[pairs] if len(pairs) else np.zeros(0))
    ax.add_collection(lines)
    dots = ax.scatter(points[ok, 0], points[ok, 1], c=t[ok], cmap=cmap, norm=norm, s=9, zorder=6)
    if colorbar:
        ax.figure.colorbar(dots, ax=ax, fraction=0.046, pad=0.04, label="time (s)")
    return ax.figure


def _draw_panel(img: np.ndarray, history: np.ndarray, value, size: int = 90, margin: int = 6) -> None:
    """A small valence × arousal panel in the top-right corner: unit circle, axes, recent path, marker."""
    h, w = img.shape[:2]
    size = min(size, h - 2 * margin, w - 2 * margin)
    x0, y0 = w - size - margin, margin
    roi = img[y0:y0 + size, x0:x0 + size]
    roi[:] = (0.35 * roi + 0.65 * 255).astype(np.uint8)  # a light translucent background
    c, r = size // 2, size // 2 - 4

    def to_px(v, a):
        return int(round(x0 + c + v * r)), int(round(y0 + c - a * r))

    cv2.circle(img, (x0 + c, y0 + c), r, (90, 90, 90), 1, cv2.LINE_AA)
    cv2.line(img, (x0 + 2, y0 + c), (x0 + size - 2, y0 + c), (150, 150, 150), 1)
    cv2.line(img, (x0 + c, y0 + 2), (x0 + c, y0 + size - 2), (150, 150, 150), 1)
    pts = [to_px(v, a) for v, a in history if np.isfinite(v) and np.isfinite(a)]
    for p, q in zip(pts, pts[1:]):
        cv2.line(img, p, q, (200, 120, 60), 1, cv2.LINE_AA)
    if value is not None:
        cv2.circle(img, to_px(*value), 4, (220, 40, 40), -1, cv2.LINE_AA)
    cv2.putText(img, "V", (x0 + size - 12, y0 + c - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (60, 60, 60), 1)
    cv2.putText(img, "A", (x0 + c + 3, y0 + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (60, 60, 60), 1)


def annotate_frame(rgb: np.ndarray, row, history: np.ndarray) -> np.ndarray:
    """One frame of the annotated video: the face box, the values as text, the valence × arousal panel."""
    img = np.ascontiguousarray(rgb).copy()
    has_value = bool(np.isfinite(row.valence) and np.isfinite(row.arousal))
    if row.face:
        cv2.rectangle(img, (int(round(row.x1)), int(round(row.y1))), (int(round(row.x2)), int(round(row.y2))),
                      (40, 200, 40), 2)
    text = f"V {row.valence:+.2f}  A {row.arousal:+.2f}" if has_value else (
        "no face" if not row.face else "face (no clip)")
    cv2.putText(img, text, (6, img.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 2, cv2.LINE_AA)
    cv2.putText(img, text, (6, img.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (20, 20, 20), 1, cv2.LINE_AA)
    _draw_panel(img, history, (row.valence, row.arousal) if has_value else None)
    return img


def write_annotated_video(video_path, frames: pd.DataFrame, path, fps: float, trail: int = 20,
                          progress: bool = False, shown_as=None) -> Path:
    """The video at the sampling rate with the face box and a live valence/arousal marker, as MP4
    (OpenCV ``mp4v``), written to a temporary name, reopened and its frames counted
    (:func:`emorec.data.video.check_written_video`), then renamed into place. Errors name
    ``shown_as`` (default: ``path``)."""
    path = Path(path)
    rows = {int(r.source_frame): r for r in frames.itertuples(index=False)}
    values = frames[list(TARGETS)].to_numpy(float)
    position = {int(sf): i for i, sf in enumerate(frames["source_frame"])}
    writer, written = None, 0
    with storage.atomic_path(path, ".mp4") as tmp:
        try:
            for index, _, rgb in tqdm(video.iter_frames(video_path, fps), total=len(frames),
                                      desc="annotated video", unit="frame", disable=not progress, leave=False):
                if index not in rows:
                    continue
                if writer is None:
                    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps),
                                             (rgb.shape[1], rgb.shape[0]))
                    if not writer.isOpened():
                        raise ValueError(f"{shown_as or path}: OpenCV cannot open an mp4v writer here")
                i = position[index]
                writer.write(cv2.cvtColor(annotate_frame(rgb, rows[index], values[max(0, i - trail):i + 1]),
                                          cv2.COLOR_RGB2BGR))
                written += 1
        finally:
            if writer is not None:
                writer.release()
        if writer is None:
            raise ValueError(f"{video_path}: no frame to annotate")
        video.check_written_video(tmp, written, shown_as or path)
    return path


# --------------------------------------------------------------------------------------------------
# Everything into one folder
# --------------------------------------------------------------------------------------------------

OUTPUT_KIND = "predict output folder"
WRITER = "emorec.predict"
_output_name = storage.allowing(OUTPUT_FILES.values())


def check_output_folder(out_dir, need_bytes: int = 0) -> None:
    """Refuse an ``out_dir`` that ``emorec predict`` may not replace (ours): a file or link, a path
    under a file, an unwritable place, a disk without ``need_bytes`` free, or a folder holding
    anything but a previous run's outputs (so never a user's files, nor the input video or checkpoint)."""
    out_dir = Path(out_dir)
    storage.check_replaceable(out_dir, OUTPUT_KIND, _output_name, "another --out")
    storage.preflight(out_dir, need_bytes, "--out", swapped=True)


def _output_bytes(n_frames: int, annotated_video: bool, width: int, height: int) -> int:
    """A generous estimate of what the outputs take: the tables, two figures and the MP4 at 1/50 of
    the raw frames (OpenCV's mp4v writes about 1/180 on the face test videos, 1/10 on pure noise)."""
    return n_frames * 400 + 4_000_000 + (n_frames * width * height * 3 // 50 if annotated_video else 0)


def save_prediction(result: VideoPrediction, out_dir, annotated_video: bool = False,
                    progress: bool = False) -> dict[str, Path]:
    """Write the CSVs, the two figures, the settings and (optionally) the annotated MP4 into ``out_dir``.

    Everything is written into a marked staging folder ``.<out>.predict-*`` beside ``out_dir`` and
    swapped in with renames, holding a lock on ``out_dir``: ``out_dir`` then holds exactly this run's
    files, and a failure leaves the previous ones untouched. ``out_dir`` must be absent, empty or an
    earlier output of ours (:func:`check_output_folder`); stale staging folders of a killed run are
    removed first (ours)."""
    from matplotlib.figure import Figure  # no pyplot: leaves an interactive session's backend alone

    out_dir = Path(out_dir)
    settings = result.settings
    check_output_folder(out_dir, _output_bytes(len(result.frames), annotated_video, settings["video_width"],
                                               settings["video_height"]))
    with storage.locked(out_dir, f"{out_dir}: waiting for another emorec process writing into it"):
        storage.remove_stale(out_dir, OUTPUT_KIND, _output_name)
        stage = storage.staging_dir(out_dir, "predict", OUTPUT_KIND, WRITER)
        try:
            has_values = bool(result.frames["valence"].notna().any())
            figures = ("timeseries", "circumplex") if has_values else ("timeseries",)  # no path without values
            written = {key: stage / OUTPUT_FILES[key] for key in ("csv", "clips", *figures, "settings")}
            result.frames.to_csv(written["csv"], index=False, float_format="%.6g")
            result.clips.to_csv(written["clips"], index=False, float_format="%.6g")
            name = Path(result.settings["video"]).name
            trained = training_caption(result.settings)
            fig = Figure(figsize=(9, 4.6 + 0.2 * trained.count("\n")))
            plot_timeseries(result.frames, fig.subplots(2, 1, sharex=True))
            heading = "valence and arousal (grey: no face)" if has_values else "no face found in any sampled frame"
            fig.axes[0].set_title(f"{name}: {heading}\n{trained}", fontsize=9)
            fig.tight_layout()
            fig.savefig(written["timeseries"], dpi=120)
            if has_values:
                fig = Figure(figsize=(6.6, 5.8 + 0.2 * trained.count("\n")))
                plot_trajectory(result.frames, fig.subplots())
                fig.axes[0].set_title(f"{name}: trajectory on the circumplex\n{trained}", fontsize=8)
                fig.tight_layout()
                fig.savefig(written["circumplex"], dpi=120)
            written["settings"].write_text(json.dumps({**result.settings, "timings_s": result.timings}, indent=1))
            if annotated_video:
                written["video"] = write_annotated_video(result.settings["video"], result.frames,
                                                         stage / OUTPUT_FILES["video"], result.settings["fps"],
                                                         progress=progress, shown_as=out_dir / OUTPUT_FILES["video"])
            storage.swap_in(stage, out_dir, OUTPUT_KIND, _output_name, "another --out")
        finally:
            if stage.exists():
                shutil.rmtree(stage)  # made above, in this call
    return {key: out_dir / path.name for key, path in written.items()}


def training_caption(settings: dict) -> str:
    """What each label's model was trained on, for the figures' titles (one line per model; ours)."""
    models = settings["models"]
    if len({m["checkpoint"] for m in models.values()}) == 1:
        m = next(iter(models.values()))
        return f"{m['model']} trained on: {m['training_data']}"
    return "\n".join(f"{label}: {m['model']} trained on: {m['training_data']}" for label, m in models.items())


def predict_to_folder(video_path, checkpoint, out_dir, annotated_video: bool = False, progress: bool = False,
                      **kwargs) -> tuple[VideoPrediction, dict[str, Path]]:
    """:func:`run_predict` then :func:`save_prediction`: what ``emorec predict`` does (§6, ours).

    ``checkpoint``: one checkpoint, or ``{label: checkpoint}`` (:func:`run_predict`); the folder is
    written once either way. ``out_dir`` and the crop cache (``cache_dir``) are checked before any
    work: an ``out_dir`` that is not ours, or a cache inside ``out_dir`` (which each run replaces),
    is refused."""
    info = video.video_info(video_path)  # missing or unreadable video: fail before any work
    predictor = kwargs.pop("predictor", None)
    predictors = kwargs.pop("predictors", None) or load_predictors(checkpoint, predictor)
    rate = _resolve_settings(predictors[TARGETS[0]], kwargs.get("fps"), kwargs.get("seq_len"), kwargs.get("overlap"),
                             kwargs.get("tolerance"))["fps"]
    n_frames = len(video.resample_indices(info.n_frames, info.fps, min(rate, info.fps)))
    check_output_folder(out_dir, _output_bytes(n_frames, annotated_video, info.width, info.height))
    cache_dir = kwargs.get("cache_dir")
    if cache_dir is not None and storage.inside(cache_dir, out_dir):
        raise ValueError(f"{cache_dir}: the crop cache lies inside --out {out_dir}, which each run "
                         f"replaces; choose a cache folder outside it")
    if cache_dir is not None:
        storage.preflight(cache_dir, 0, "--cache")  # its free space: before extraction, if not reused
    result = run_predict(video_path, checkpoint, progress=progress, predictors=predictors, **kwargs)
    return result, save_prediction(result, out_dir, annotated_video, progress)


# --------------------------------------------------------------------------------------------------
# A checkpoint on a corpus split: the paper's scores through the predict path
# --------------------------------------------------------------------------------------------------

def evaluate_checkpoint(checkpoint, corpus, split: str = "test", seq_len: int | None = None,
                        overlap: float | None = None, max_shift: int = 10, n_boot: int = 1000, seed: int = 0,
                        progress: bool = False) -> pd.DataFrame:
    """Score a checkpoint on a split of a prepared corpus (:func:`emorec.experiments.corpus.prepare_corpus`)
    with the paper's metrics (Eqs. (4)-(7), §4.2), before and after the post-processing of §3.4 fitted
    on the training and validation videos only.

    Predictions come from this module's path (clips over every face segment, spread over frames) and
    are scored on each video's 10 Hz label timeline as in :mod:`emorec.experiments.evaluation`.
    Returns one row per (label, stage) with CCC and its 95% bootstrap interval over videos, PCC, MAE
    and MAPE."""
    from .experiments.corpus import SPLITS
    from .experiments.evaluation import bootstrap_ccc, fit_and_apply_postprocessing, score, timeline_predictions

    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    predictor = load_predictor(checkpoint)
    settings = _resolve_settings(predictor, corpus.fps, seq_len, overlap, None)
    fallback = np.concatenate([r.frame_labels for r in corpus.split("train")]).mean(axis=0)
    splits = {}
    for name in SPLITS:
        records = corpus.split(name)
        preds = [track_predictions(predictor, r.track, settings["seq_len"], settings["overlap"],
                                   settings["tolerance"])[0]
                 for r in tqdm(records, desc=f"predict {name}", unit="video", disable=not progress)]
        splits[name] = timeline_predictions(records, preds, fallback)
    processed, _ = fit_and_apply_postprocessing(splits["train"], splits["validation"], splits[split], max_shift)
    rows = []
    for stage, part in (("raw", splits[split]), ("post-processed", processed)):
        scores, ci = score(part), bootstrap_ccc(part, n_boot, seed)
        for name in TARGETS:
            rows.append({"label": name, "stage": stage, "CCC": scores[f"{name}_CCC"],
                         "CCC_lo": ci[f"{name}_CCC_lo"], "CCC_hi": ci[f"{name}_CCC_hi"],
                         "PCC": scores[f"{name}_PCC"], "MAE": scores[f"{name}_MAE"],
                         "MAPE": scores[f"{name}_MAPE"]})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# Helpers for the conclusion chapter: one model per label, still images as clips
# --------------------------------------------------------------------------------------------------

def predict_per_label(video_path, checkpoints: Mapping[str, str | os.PathLike], cache_dir=None,
                      **kwargs) -> pd.DataFrame:
    """Per-frame values with one checkpoint per label (the paper reports the best configuration per
    label, §4.4): ``checkpoints = {"valence": ..., "arousal": ...}``. Faces are extracted once; each
    label's columns come from its own model, the other columns from the valence model
    (:func:`run_predict` with a mapping)."""
    if not isinstance(checkpoints, Mapping):
        raise ValueError(f"checkpoints must be a mapping naming a model for each of {TARGETS}")
    return run_predict(video_path, checkpoints, cache_dir=cache_dir, **kwargs).frames


def write_still_clip(image: np.ndarray, path, seconds: float, fps: float = 50.0,
                     size: tuple[int, int] = (240, 320)) -> Path:
    """A still image as a video (Xvid AVI, SEWA's 320×240 and 50 fps by default): the image is
    cropped to the frame's aspect ratio around its centre and resized, then repeated."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 RGB [H, W, 3], got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    target = size[1] / size[0]
    ch, cw = (h, int(round(h * target))) if w / h > target else (int(round(w / target)), w)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    frame = cv2.resize(image[y0:y0 + ch, x0:x0 + cw], (size[1], size[0]), interpolation=cv2.INTER_AREA)
    n = max(1, int(round(seconds * fps)))
    video.write_video(path, np.repeat(frame[None], n, axis=0), fps)
    return Path(path)
