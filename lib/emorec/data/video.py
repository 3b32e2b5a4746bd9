"""Video decoding, frame-rate resampling and annotation replication (§3.2.1).

SEWA-DB videos are recorded at 50 fps and annotated every 0.1 s (10 Hz). The paper extracts frames at
10 or 50 fps and, at 50 fps, "replicates annotations for non-labeled frames" (§3.2.1). Here:

* :func:`iter_frames` decodes a video with OpenCV and yields ``(frame_index, time_s, rgb)``, optionally
  resampled to a lower frame rate **by timestamps**: for each target time ``k / fps`` the source frame
  nearest in time is kept. ``frame_index`` is always the index in the source video and
  ``time_s = frame_index / source_fps``; the frame number at the target rate is ``round(time_s * fps)``.
* :func:`replicate_labels` maps labels onto frames by timestamps, not counts: each frame takes the
  **nearest previous label** (a zero-order hold). A label at time t describes the interval
  [t, t + 0.1 s), so at 50 fps each 10 Hz label is given to the five frames t, t + 0.02, ..., t + 0.08 s,
  which is the paper's replication; at 10 fps frame k gets label k exactly.
* :func:`check_label_coverage` refuses annotations whose length does not match the video's beyond a
  tolerance (default 0.5 s), naming both files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emorec import storage

# A decoder may report one or two frames more than it delivers (index rounding in some containers);
# losing more than this is a truncated file.
_MISSING_FRAMES_ALLOWED = 2
LABEL_TOLERANCE_S = 0.5


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video: frame rate, frame count, size, duration."""

    path: str
    fps: float
    n_frames: int
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps


def _open(path) -> tuple:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: video file not found")
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not a video file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file, not a video")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise ValueError(f"{path}: OpenCV cannot open it as a video (not a video, or corrupt)")
    info = VideoInfo(str(path), float(cap.get(cv2.CAP_PROP_FPS)), int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
                     int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    if not (info.fps > 0 and info.n_frames > 0 and info.width > 0 and info.height > 0):
        cap.release()
        raise ValueError(f"{path}: not a readable video (fps={info.fps}, frames={info.n_frames}, "
                         f"size={info.width}x{info.height})")
    return cap, info


def video_info(path) -> VideoInfo:
    """Frame rate, frame count and size of a video from its container (§3.2.1: SEWA is 50 fps).

    Raises FileNotFoundError for a missing file and ValueError for a file OpenCV cannot read as video.
    Truncation is only detected by decoding (:func:`iter_frames`, :func:`read_video`).
    """
    cap, info = _open(path)
    cap.release()
    return info


def resample_indices(n_frames: int, source_fps: float, fps: float | None) -> np.ndarray:
    """Source frame indices kept when resampling ``source_fps`` to ``fps`` by timestamps (§3.2.1).

    For each target time ``k / fps`` inside the video the source frame nearest in time is kept
    (50 -> 10 fps keeps frames 0, 5, 10, ...). ``fps=None`` keeps every frame. Up-sampling is refused.
    """
    if fps is None or abs(fps - source_fps) < 1e-9:
        return np.arange(n_frames)
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if fps > source_fps + 1e-9:
        raise ValueError(f"cannot resample {source_fps:g} fps up to {fps:g} fps; choose fps <= {source_fps:g}")
    duration = n_frames / source_fps
    k = np.arange(int(np.floor(duration * fps - 1e-9)) + 1)
    idx = np.floor(k / fps * source_fps + 0.5 + 1e-9).astype(int)  # nearest, ties to the later frame
    return np.unique(idx[idx < n_frames])


def iter_frames(path, fps: float | None = None):
    """Decode a video and yield ``(frame_index, time_s, rgb_uint8[H, W, 3])`` (§3.2.1).

    With ``fps`` the video is resampled by timestamps (see :func:`resample_indices`); skipped frames
    are grabbed, not converted. ``frame_index`` indexes the source video, ``time_s`` its timestamp.
    Raises ValueError naming the file when it is not a video or ends before its header says (truncated).
    """
    cap, info = _open(path)
    keep = resample_indices(info.n_frames, info.fps, fps)
    keep_set = np.zeros(info.n_frames, bool)
    keep_set[keep] = True
    decoded = 0
    try:
        for i in range(info.n_frames):
            if not cap.grab():
                break
            decoded += 1
            if keep_set[i]:
                ok, bgr = cap.retrieve()
                if not ok or bgr is None:
                    raise ValueError(f"{path}: frame {i} cannot be decoded (corrupt video)")
                yield i, i / info.fps, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()
    if decoded < info.n_frames - _MISSING_FRAMES_ALLOWED:
        raise ValueError(f"{path}: truncated or corrupt video: decoded {decoded} of the {info.n_frames} "
                         f"frames its header announces")


def read_video(path, fps: float | None = None) -> tuple:
    """Decode a whole video: ``(frames uint8[N, H, W, 3] RGB, frame_indices int[N], times_s float[N])``.

    Same resampling and errors as :func:`iter_frames` (§3.2.1).
    """
    frames, indices, times = [], [], []
    for i, t, rgb in iter_frames(path, fps):
        frames.append(rgb)
        indices.append(i)
        times.append(t)
    if not frames:
        raise ValueError(f"{path}: no frame could be decoded")
    return np.stack(frames), np.asarray(indices), np.asarray(times)


def _label_period(label_times: np.ndarray) -> float:
    return float(np.median(np.diff(label_times))) if len(label_times) > 1 else 0.1


def check_label_coverage(video_duration_s: float, label_times, video_path=None, label_path=None,
                         tolerance_s: float = LABEL_TOLERANCE_S) -> None:
    """Refuse annotations whose time span does not match the video's (§3.2.1, ours).

    The labels must cover the video: the last label (plus one label period) may end at most
    ``tolerance_s`` before the video ends or after it; the first label must start within
    ``tolerance_s`` of 0. Otherwise ValueError naming both files.
    """
    label_times = np.asarray(label_times, float)
    names = f"{label_path or 'labels'} vs {video_path or 'video'}"
    if label_times.size == 0:
        raise ValueError(f"{names}: no labels")
    end = label_times[-1] + _label_period(label_times)
    if label_times[0] > tolerance_s:
        raise ValueError(f"{names}: labels start at {label_times[0]:.2f} s, more than {tolerance_s} s "
                         f"after the video starts")
    if end < video_duration_s - tolerance_s:
        raise ValueError(f"{names}: labels end at {end:.2f} s but the video lasts {video_duration_s:.2f} s "
                         f"(tolerance {tolerance_s} s)")
    if end > video_duration_s + tolerance_s:
        raise ValueError(f"{names}: labels run to {end:.2f} s but the video lasts only "
                         f"{video_duration_s:.2f} s (tolerance {tolerance_s} s)")


def replicate_labels(frame_times, label_times, labels, tolerance_s: float = LABEL_TOLERANCE_S,
                     video_path=None, label_path=None) -> np.ndarray:
    """Labels for each frame time: the nearest previous label (zero-order hold), by timestamps (§3.2.1).

    ``labels`` is ``[n_labels]`` or ``[n_labels, n_dims]``; returns one row per frame time. A frame
    earlier than the first label by at most ``tolerance_s`` takes the first label; a frame later than
    the last label's interval (last time + one period) by more than ``tolerance_s`` is refused with a
    ValueError naming the files, as is a label time axis that is not strictly increasing.
    """
    frame_times = np.asarray(frame_times, float)
    label_times = np.asarray(label_times, float)
    labels = np.asarray(labels)
    names = f"{label_path or 'labels'} vs {video_path or 'video'}"
    if label_times.ndim != 1 or len(label_times) == 0 or len(labels) != len(label_times):
        raise ValueError(f"{names}: need one label per label time, got {len(labels)} labels "
                         f"for {len(label_times)} times")
    if np.any(np.diff(label_times) <= 0):
        raise ValueError(f"{names}: label times are not strictly increasing")
    if frame_times.size == 0:
        return labels[:0]
    end = label_times[-1] + _label_period(label_times)
    if frame_times.min() < label_times[0] - tolerance_s or frame_times.max() > end + tolerance_s:
        raise ValueError(f"{names}: frames span {frame_times.min():.2f}-{frame_times.max():.2f} s but labels "
                         f"cover {label_times[0]:.2f}-{end:.2f} s (tolerance {tolerance_s} s)")
    # 1e-6 s of slack: a frame at 0.3 s computed as 15 / 50 must get the label stamped 0.30
    idx = np.searchsorted(label_times, frame_times + 1e-6, side="right") - 1
    return labels[np.clip(idx, 0, len(labels) - 1)]


def write_video(path, frames, fps: float, fourcc: str = "XVID") -> None:
    """Encode RGB frames ``uint8[N, H, W, 3]`` to ``path`` atomically (temp file, then rename); the
    written file is reopened and its frames counted first (:func:`check_written_video`).

    Used to write the synthetic corpus (SEWA's videos are Xvid AVI, §4.1) and test fixtures.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{path}: frames must be uint8 [N, H, W, 3], got {frames.dtype} {frames.shape}")
    with storage.atomic_path(path, path.suffix) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*fourcc), float(fps),
                                 (frames.shape[2], frames.shape[1]))
        if not writer.isOpened():
            raise ValueError(f"{path}: OpenCV cannot open a {fourcc} writer")
        try:
            for f in frames:
                writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
        check_written_video(tmp, len(frames), path)


def decoded_frame_count(path) -> int:
    """How many frames OpenCV decodes from ``path`` (0 if it cannot open it) (ours)."""
    cap = cv2.VideoCapture(str(path))
    try:
        n = 0
        while cap.isOpened() and cap.grab():
            n += 1
        return n
    finally:
        cap.release()


def check_written_video(written, expected: int, shown_as=None) -> None:
    """Refuse a video that was just written unless it reopens with ``expected`` frames (ours): a full
    disk or a failing encoder leaves a file with no index or fewer frames, which must not be reported
    as done. ValueError naming ``shown_as`` (default: the file)."""
    n = decoded_frame_count(written)
    if n != expected:
        raise ValueError(f"{shown_as or written}: the written video decodes to {n} of its {expected} frames "
                         f"(disk full, or the encoder failed); not kept")
