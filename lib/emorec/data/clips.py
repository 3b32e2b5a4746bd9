"""Clips: fixed-length windows over the kept frames, label fusion, torch Datasets (paper §3.2.2).

The paper splits each video into clips of SL consecutive frames with an overlapping ratio OR, keeps
only the clips whose frames are close enough in time (MTCNN dropped some frames), and gives each clip
one (valence, arousal) label, either the mean or the extremum of its frames' labels.

Decisions the paper leaves open (DESIGN §6):

- windows run over the *kept* frames (positions in the crop array), starting at 0 and every
  ``step = round(SL × (1 − OR))`` positions (halves rounded up, at least 1);
- a window is kept if no gap between two consecutive frames in it, measured in frame numbers at the
  sampling fps, exceeds ``tolerance``: tolerance 1 means no frame may be missing;
- at the end of a video, the last frames that do not fill a whole window are not used (no padding,
  no window shifted back to fit);
- "extremum" fusion takes, per column, the label of largest magnitude with its sign (the first one
  on a tie).
"""

from __future__ import annotations

import math
import os
from itertools import product
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from emorec.data.faces import FaceTrack, load_track

FUSION_MODES = ("mean", "extremum")


def window_step(seq_len: int, overlap: float) -> int:
    """Stride between clip starts: round(SL × (1 − OR)), halves up, at least 1 (§3.2.2)."""
    _check_window_args(seq_len, overlap, 1)
    return max(1, int(math.floor(seq_len * (1.0 - overlap) + 0.5 + 1e-9)))


def _check_window_args(seq_len, overlap, tolerance) -> None:
    if isinstance(seq_len, bool) or not float(seq_len).is_integer() or seq_len < 1:
        raise ValueError(f"sequence length must be an integer >= 1, got {seq_len!r}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlapping ratio must be in [0, 1), got {overlap!r}")
    if tolerance < 1:
        raise ValueError(f"tolerance must be >= 1 frame (1 = no frame missing), got {tolerance!r}")


def make_windows(frame_numbers, seq_len: int, overlap: float, tolerance: float = 1) -> list[np.ndarray]:
    """Clips of ``seq_len`` consecutive kept frames with overlapping ratio ``overlap`` (§3.2.2).

    ``frame_numbers``: increasing frame numbers (at the sampling fps) of the frames that kept a face.
    Returns one int64 array of indices into ``frame_numbers`` per clip. A clip is kept if every gap
    between consecutive frames in it is at most ``tolerance`` frames. Trailing frames that do not
    fill a whole window are dropped.
    """
    _check_window_args(seq_len, overlap, tolerance)
    frames = np.asarray(frame_numbers)
    if frames.ndim != 1:
        raise ValueError(f"frame_numbers must be one-dimensional, got shape {frames.shape}")
    gaps = np.diff(frames)
    if (gaps <= 0).any():
        raise ValueError("frame_numbers must be strictly increasing")
    seq_len, step = int(seq_len), window_step(seq_len, overlap)
    starts = np.arange(0, len(frames) - seq_len + 1, step)
    if len(starts) == 0:
        return []
    # A window [s, s + SL) is valid if its largest internal gap, max(gaps[s : s + SL - 1]), is small.
    too_far = np.r_[0, np.cumsum(gaps > tolerance)]
    ok = too_far[starts + seq_len - 1] == too_far[starts]
    return [np.arange(s, s + seq_len, dtype=np.int64) for s in starts[ok]]


def fuse_labels(labels, mode: str) -> np.ndarray:
    """One label per clip from its frames' labels [T] or [T, C] (§3.2.2): ``"mean"`` or ``"extremum"``
    (per column, the value of largest magnitude, sign kept)."""
    if mode not in FUSION_MODES:
        raise ValueError(f"unknown fusion mode {mode!r}; expected one of {FUSION_MODES}")
    labels = np.asarray(labels, dtype=np.float64)
    if labels.ndim not in (1, 2) or len(labels) == 0:
        raise ValueError(f"labels must be a non-empty [T] or [T, C] array, got shape {labels.shape}")
    if mode == "mean":
        return labels.mean(axis=0)
    pick = np.abs(labels).argmax(axis=0)
    return np.take_along_axis(labels, np.expand_dims(pick, 0), axis=0)[0]


# --------------------------------------------------------------------------------------------------
# Figure 5: clip counts
# --------------------------------------------------------------------------------------------------

def resample_frame_numbers(frame_numbers, source_fps: float, fps: float) -> np.ndarray:
    """Kept frame numbers at ``fps`` from kept frame numbers at ``source_fps`` (integer ratio).

    Up-sampling replicates the detection: frame k kept at 10 fps marks frames 5k … 5k+4 kept at
    50 fps (faces seldom appear or vanish within 0.1 s). Down-sampling keeps frame k at ``fps`` if
    the source frame at the same time was kept.
    """
    frames = np.asarray(frame_numbers, dtype=np.int64)
    ratio = fps / source_fps
    if ratio >= 1:
        if not float(ratio).is_integer():
            raise ValueError(f"cannot resample {source_fps:g} fps to {fps:g} fps: not an integer ratio")
        r = int(ratio)
        return (frames[:, None] * r + np.arange(r)[None, :]).ravel()
    inverse = source_fps / fps
    if not float(inverse).is_integer():
        raise ValueError(f"cannot resample {source_fps:g} fps to {fps:g} fps: not an integer ratio")
    r = int(inverse)
    return frames[frames % r == 0] // r


def clip_counts(frames_by_split: Mapping[str, Sequence], source_fps: float, fps_values: Sequence[float],
                seq_lens: Sequence[int], overlaps: Sequence[float], tolerance: float = 1) -> pd.DataFrame:
    """Number of clips per split for each (fps, SL, OR): what Figure 5 plots (§3.2.2).

    ``frames_by_split`` maps a split name to the kept-frame-number arrays (at ``source_fps``) of its
    videos. Returns a long table with columns fps, seq_len, overlap, split, clips.
    """
    rows = []
    for fps, seq_len, overlap in product(fps_values, seq_lens, overlaps):
        for split, videos in frames_by_split.items():
            n = sum(len(make_windows(resample_frame_numbers(f, source_fps, fps), seq_len, overlap, tolerance))
                    for f in videos)
            rows.append({"fps": fps, "seq_len": seq_len, "overlap": overlap, "split": split, "clips": n})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# The clip index and its sources
# --------------------------------------------------------------------------------------------------

class ClipIndex:
    """Every clip of a list of videos (§3.2.2): ``index`` [n, 2] (video position, first kept frame),
    ``labels`` [n, 2] fused (valence, arousal), ``seq_len``. Windows come from :func:`make_windows`
    over each video's kept frame numbers, labels from :func:`fuse_labels` over the clip's frames."""

    def __init__(self, frame_numbers: Sequence, frame_labels: Sequence, seq_len: int, overlap: float,
                 tolerance: float = 1, fusion: str = "mean"):
        if fusion not in FUSION_MODES:
            raise ValueError(f"unknown fusion mode {fusion!r}; expected one of {FUSION_MODES}")
        if len(frame_labels) != len(frame_numbers):
            raise ValueError(f"{len(frame_numbers)} videos but {len(frame_labels)} label arrays")
        self.seq_len = int(seq_len)
        index, fused = [], []
        for v, (numbers, labels) in enumerate(zip(frame_numbers, frame_labels)):
            for window in make_windows(numbers, seq_len, overlap, tolerance):
                index.append((v, int(window[0])))
                fused.append(fuse_labels(np.asarray(labels)[window], fusion))
        self.index = np.array(index, dtype=np.int64).reshape(-1, 2)
        self.labels = np.array(fused, dtype=np.float32).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self.index)

    def starts(self, video: int) -> np.ndarray:
        """First kept-frame positions of the clips of video ``video``."""
        return self.index[self.index[:, 0] == video, 1]


class CachedClips(Dataset):
    """Clips of cached per-frame maps (the shared frozen prefix of the CPU profiles): item = (float32
    [C, T, h, w], fused (valence, arousal) [2]) (§3.2.2). ``maps``: per video of the index, an array
    [N_kept, C, h, w] (memory-mapped float16 is fine; one contiguous slice per clip)."""

    def __init__(self, clips: ClipIndex, maps: Sequence[np.ndarray]):
        self.clips, self.maps = clips, list(maps)
        self.index, self.labels, self.seq_len = clips.index, clips.labels, clips.seq_len

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        video, start = self.index[i]
        clip = np.asarray(self.maps[video][start:start + self.seq_len], dtype=np.float32)
        return torch.from_numpy(clip).transpose(0, 1), torch.from_numpy(self.labels[i])


# --------------------------------------------------------------------------------------------------
# Pixel datasets
# --------------------------------------------------------------------------------------------------

class _CropSource:
    """Cache entries opened lazily, once per process: each worker maps each crops.npy once."""

    def __init__(self, tracks: Sequence[FaceTrack]):
        self.dirs = [Path(t.path) for t in tracks]
        # The tracks' maps serve the main process; workers get none and open their own.
        self._crops: dict[int, np.ndarray] = {v: t.crops for v, t in enumerate(tracks)}

    def crops(self, video: int) -> np.ndarray:
        if video not in self._crops:
            self._crops[video] = np.load(self.dirs[video] / "crops.npy", mmap_mode="r")
        return self._crops[video]

    def __getstate__(self):
        # Workers (fork or spawn) open their own maps rather than receiving the parent's.
        return {"dirs": self.dirs, "_crops": {}}


def _as_tracks(tracks) -> list[FaceTrack]:
    return [t if isinstance(t, FaceTrack) else load_track(t) for t in tracks]


def _checked_labels(track: FaceTrack, labels) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.float32)
    if labels.ndim != 2 or labels.shape != (len(track.crops), 2):
        raise ValueError(f"{track.path}: labels must be [N_kept, 2] = [{len(track.crops)}, 2] "
                         f"(valence, arousal per kept frame), got shape {labels.shape}")
    if not np.isfinite(labels).all():
        raise ValueError(f"{track.path}: labels contain NaN or infinite values")
    return labels


def _to_tensor(crops: np.ndarray, as_uint8: bool = False) -> torch.Tensor:
    """uint8 [..., H, W, 3] -> float32 [..., 3, H, W] in [0, 1] (§3.2: pixel values scaled to [0, 1]),
    or uint8 [..., 3, H, W] unscaled when ``as_uint8``."""
    # Reorder while copying out of the read-only map (small uint8 copy), so that the float
    # conversion runs over contiguous memory.
    chw = torch.from_numpy(np.ascontiguousarray(np.moveaxis(crops, -1, -3)))
    return chw if as_uint8 else chw.float().div_(255.0)


def resize_frames(frames: torch.Tensor, size) -> torch.Tensor:
    """Images [..., 3, H, W] in [0, 1] resized to ``size`` (H, W): bilinear with antialiasing, clamped
    back to [0, 1] (the filter can overshoot); unchanged when already at that size. The CPU profiles
    feed the models smaller faces than the 100×80 crops (§3.2)."""
    size = tuple(int(v) for v in size)
    if tuple(frames.shape[-2:]) == size:
        return frames
    flat = frames.reshape(-1, *frames.shape[-3:])
    out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False, antialias=True).clamp_(0.0, 1.0)
    return out.reshape(*frames.shape[:-3], *out.shape[-3:])


def to_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 clips or frames (as served with ``as_uint8=True``) -> float32 in [0, 1], e.g. on the GPU
    after the transfer, where the conversion costs nothing (§3.2)."""
    return batch.float().div_(255.0)


class ClipDataset(Dataset):
    """Clips from the crop cache (§3.2.2): item = (clip float32 [T, 3, H, W] in [0, 1],
    fused (valence, arousal) float32 [2]).

    ``tracks``: cache directories (or FaceTracks) of the videos; ``labels``: per video, float
    [N_kept, 2] (valence, arousal) aligned with the kept frames. Windows come from
    :func:`make_windows`; crops are read from the memory-mapped ``crops.npy`` (one contiguous slice
    per clip, no per-frame file opens). ``index`` lists (video, first crop index) per clip.
    ``as_uint8=True`` serves uint8 [T, 3, H, W] clips instead (4× less memory through the loader;
    convert batches with :func:`to_float`). Per-frame labels come from the 10 Hz annotations with
    ``emorec.data.video.replicate_labels`` at the kept frames' times.
    """

    def __init__(self, tracks, labels, seq_len: int, overlap: float, tolerance: float = 1,
                 fusion: str = "mean", as_uint8: bool = False):
        if fusion not in FUSION_MODES:
            raise ValueError(f"unknown fusion mode {fusion!r}; expected one of {FUSION_MODES}")
        tracks = _as_tracks(tracks)
        if len(labels) != len(tracks):
            raise ValueError(f"{len(tracks)} videos but {len(labels)} label arrays")
        self.seq_len, self.as_uint8 = int(seq_len), bool(as_uint8)
        self.source = _CropSource(tracks)
        checked = [_checked_labels(track, lab) for track, lab in zip(tracks, labels)]
        self.clips = ClipIndex([t.kept_frames for t in tracks], checked, seq_len, overlap, tolerance, fusion)
        self.index, self.labels = self.clips.index, self.clips.labels

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        video, start = self.index[i]
        clip = self.source.crops(int(video))[start:start + self.seq_len]
        return _to_tensor(clip, self.as_uint8), torch.from_numpy(self.labels[i])


class PixelClips(ClipDataset):
    """:class:`ClipDataset` clips resized to a model's ``input_size`` (h, w), channels first as the
    models take clips: item = (float32 [3, T, h, w] in [0, 1], fused (valence, arousal)) (§3.2, §3.3)."""

    def __init__(self, tracks, labels, seq_len: int, overlap: float, input_size, tolerance: float = 1,
                 fusion: str = "mean"):
        super().__init__(tracks, labels, seq_len, overlap, tolerance, fusion)
        self.input_size = tuple(int(v) for v in input_size)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        clip, label = super().__getitem__(i)
        return resize_frames(clip, self.input_size).transpose(0, 1).contiguous(), label


class FrameDataset(Dataset):
    """Single kept frames for the frame-by-frame baseline: item = (frame float32 [3, H, W] in [0, 1],
    (valence, arousal) float32 [2]); same inputs and ``as_uint8`` as :class:`ClipDataset` (§3.2, §4.3)."""

    def __init__(self, tracks, labels, as_uint8: bool = False):
        self.as_uint8 = bool(as_uint8)
        tracks = _as_tracks(tracks)
        if len(labels) != len(tracks):
            raise ValueError(f"{len(tracks)} videos but {len(labels)} label arrays")
        self.source = _CropSource(tracks)
        checked = [_checked_labels(t, lab) for t, lab in zip(tracks, labels)]
        self.index = np.concatenate([np.c_[np.full(len(lab), v), np.arange(len(lab))]
                                     for v, lab in enumerate(checked)]).astype(np.int64)
        self.labels = np.concatenate(checked).astype(np.float32)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        video, row = self.index[i]
        return _to_tensor(self.source.crops(int(video))[row], self.as_uint8), torch.from_numpy(self.labels[i])
