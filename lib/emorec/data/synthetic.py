"""The embedded corpora: a SEWA-like video corpus and a RAF-like image set, generated from a seed.

SEWA-DB and RAF-DB (§4.1) are licensed and cannot ship with the book, so the default run generates two
stand-ins **in the real datasets' on-disk formats**, and the real readers (:mod:`emorec.data.sewa`,
:mod:`emorec.data.rafdb`) are the code path the default run exercises.

SEWA-like layout (``<root>/``)::

    videos/SEW1101.avi                          Xvid, 50 fps, 320x240 (like SEWA's video-chat recordings)
    annotations/SEW1101_Valence_V_Aligned.csv   10 Hz, "Time,Annotator1,...": one column per annotator
    annotations/SEW1101_Arousal_V_Aligned.csv
    latent/SEW1101.npz                          ours: the ground truth behind the annotations, per frame
    metadata.csv                                ours: video, subject, group, split, duration_s, n_annotators
    splits.csv                                  ours: video, split (train / validation / test, by subject)
    .generated.json                             generation parameters (a change regenerates)

RAF-like layout (``<root>/``), as RAF-DB "basic"::

    Image/aligned/train_00001_aligned.jpg       100x100 aligned faces
    EmoLabel/list_patition_label.txt            "train_00001.jpg 5", labels 1..7
    identities.csv                              ours: image, identity, group (identity-classification stand-in)

Valence drives mouth curvature and brow slant. Arousal shows only weakly in a single frame (eyes a
little wider, brows a little higher) and mostly in the *dynamics*: the tempo of head turning and
tilting, the blink rate and the syllable rate of talking, which a face crop keeps and a single frame
cannot show (version 2 of the generator; version 1 put most of arousal in static cues and in head
translation, which face cropping removes, so temporal models had nothing to add; chapter 4.1). Each
annotator sees the latent signal with a reaction lag of 0.3-1 s, smoothing, gain, bias and noise.
The face leaves the frame or is occluded now and then, so MTCNN (§3.2.1) drops frames.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d

from emorec.data import drawing
from emorec.data.drawing import Expression, Pose
from emorec.config import PROFILES, load as load_config
from emorec.paths import resolve

# Bumped when what a generator draws changes; each corpus has its own, so changing one keeps the other.
GENERATOR_VERSION = {"sewa-like": "2", "raf-like": "1"}
MARKER = ".generated.json"
RAF_EMOTIONS = ["Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral"]
# RAF-DB basic's real class counts (labels 1..7), train and test: the imbalance the RAF-like set copies.
RAF_COUNTS = {"train": [1290, 281, 717, 4772, 1982, 705, 2524], "test": [329, 74, 160, 1185, 478, 162, 680]}
LABEL_RATE = 10.0  # Hz, SEWA's annotation rate (§3.2.1)


@dataclass(frozen=True)
class SewaSize:
    """Size of a SEWA-like corpus: videos per split (one subject per video), duration, format."""

    n_train: int
    n_val: int
    n_test: int
    duration_s: float
    fps: int = 50
    width: int = 320
    height: int = 240
    min_annotators: int = 3
    max_annotators: int = 5


@dataclass(frozen=True)
class RafSize:
    """Size of a RAF-like image set: images per split and number of distinct identities."""

    n_train: int
    n_test: int
    n_identities: int
    image_size: int = 100


def profile_sizes(profile: str) -> tuple[SewaSize, RafSize]:
    """The corpus sizes of ``profile``: the ``corpus`` section of ``params/<profile>.yaml``
    (:func:`emorec.config.load`; the paper's split is 28 / 6 / 14 videos, §4.1; smaller profiles keep
    roughly that ratio)."""
    corpus = load_config(profile).corpus
    return SewaSize(**corpus.sewa), RafSize(**corpus.rafdb)


def _sizes(profile_or_size, kind: int):
    if isinstance(profile_or_size, (SewaSize, RafSize)):
        return profile_or_size
    return profile_sizes(profile_or_size)[kind]


# ----------------------------------------------------------------------------------------------
# Latent emotion signals and annotators
# ----------------------------------------------------------------------------------------------

# Emotion episodes as (valence, arousal) targets on the circumplex, with how often each occurs.
_EPISODES = np.array([
    (0.75, 0.45), (0.55, 0.8), (0.45, -0.45), (-0.65, -0.45),
    (-0.7, 0.7), (-0.5, 0.8), (-0.25, -0.6), (0.2, 0.85),
])
_EPISODE_P = np.array([0.2, 0.12, 0.12, 0.14, 0.12, 0.08, 0.1, 0.12])


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def latent_signals(duration_s: float, rate: float, rng: np.random.Generator) -> tuple:
    """Smooth latent valence and arousal in [-1, 1] sampled at ``rate`` Hz: (time, valence, arousal).

    A subject's bias plus a slow drift plus emotion episodes (rise, hold, decay) drawn from the
    circumplex (ours; the synthetic analogue of SEWA's emotional content, §4.1). Most of the time
    no episode is active, so the distribution is neutral-heavy.
    """
    n = int(round(duration_s * rate))
    t = np.arange(n) / rate
    x = np.zeros((2, n))
    x += rng.normal([[0.05], [0.0]], 0.08, size=(2, 1))
    drift = gaussian_filter1d(rng.normal(size=(2, n)), 3.0 * rate, axis=1, mode="reflect")
    x += 0.12 * drift / (drift.std(axis=1, keepdims=True) + 1e-9)
    c = rng.uniform(0.0, 4.0)
    while c < duration_s:
        rise, hold, decay = rng.uniform(0.5, 2.0), rng.uniform(1.0, 5.0), rng.uniform(1.0, 3.0)
        target = _EPISODES[rng.choice(len(_EPISODES), p=_EPISODE_P)] + rng.normal(0, 0.12, 2)
        env = _smoothstep((t - c) / rise) * (1 - _smoothstep((t - c - rise - hold) / decay))
        x += rng.uniform(0.5, 1.1) * target[:, None] * env[None, :]
        c += rise + hold + decay + rng.exponential(5.0)
    v, a = np.tanh(x)
    return t, v, a


def annotate(latent: np.ndarray, rate: float, label_times: np.ndarray, rng: np.random.Generator) -> tuple:
    """One annotator's trace of a latent signal, sampled at ``label_times``: (trace, lag_s).

    The annotator reacts ``lag_s`` (0.3-1 s) late, smooths, has a gain and a bias, and adds slow and
    fast noise (ours; models the annotation delay that the time-shift of §3.4, Eq. (3), compensates).
    """
    lag = rng.uniform(0.3, 1.0)
    smooth = gaussian_filter1d(latent, rng.uniform(0.15, 0.5) * rate, mode="nearest")
    idx = np.clip(np.round((label_times - lag) * rate).astype(int), 0, len(latent) - 1)
    n = len(label_times)
    slow = gaussian_filter1d(rng.normal(size=n), 1.0 * LABEL_RATE, mode="reflect")
    slow *= 0.06 / (slow.std() + 1e-9)
    trace = rng.uniform(0.7, 1.1) * smooth[idx] + rng.normal(0, 0.04) + slow + rng.normal(0, 0.015, n)
    return np.clip(trace, -1.0, 1.0), lag


# ----------------------------------------------------------------------------------------------
# Frame-level behaviour: expression, pose and visibility from the latent signals
# ----------------------------------------------------------------------------------------------

def _blinks(n: int, fps: float, alpha: np.ndarray, rng) -> np.ndarray:
    """Eye closure per frame (0 open .. 1 closed); blink rate grows with arousal."""
    closure = np.zeros(n)
    shape = np.array([0.3, 0.7, 1.0, 1.0, 0.8, 0.5, 0.2])
    starts = np.flatnonzero(rng.random(n) < (0.1 + 0.7 * alpha) / fps)
    for s in starts:
        seg = closure[s:s + len(shape)]
        closure[s:s + len(shape)] = np.maximum(seg, shape[:len(seg)])
    return closure


def _talking(n: int, fps: float, alpha: np.ndarray, rng) -> np.ndarray:
    """Mouth opening from speech: on/off turns and a syllable oscillation of fixed depth whose rate
    (1.5-4 Hz, below the Nyquist rate of 10 fps sampling) follows arousal."""
    on = np.zeros(n, bool)
    i, talking = 0, rng.random() < 0.5
    while i < n:
        length = int(fps * rng.exponential(3.0 if talking else 2.0)) + 1
        on[i:i + length] = talking
        i, talking = i + length, not talking
    phase = np.cumsum((1.5 + 2.5 * alpha) / fps)
    return on * 0.35 * np.abs(np.sin(np.pi * phase))


def _head_motion(n: int, fps: float, alpha: np.ndarray, rng) -> tuple:
    """Head offsets (dx, dy px, roll rad, yaw): fixed amplitudes, tempo growing with arousal.

    The tempo (0.05-1.05 Hz, linear in arousal) shows as turning (yaw) and tilting (roll) *inside* a
    face crop, where a single frame cannot see it: any one pose is as likely at any arousal."""
    phase = np.cumsum(2 * np.pi * (0.05 + 1.0 * alpha) / fps)
    p = rng.uniform(0, 2 * np.pi, 5)
    wander = gaussian_filter1d(rng.normal(size=(2, n)), 2.0 * fps, axis=1, mode="reflect")
    wander *= 6.0 / (wander.std(axis=1, keepdims=True) + 1e-9)
    dx = 6 * (0.6 * np.sin(phase + p[0]) + 0.4 * np.sin(2.3 * phase + p[1])) + wander[0]
    dy = 4 * np.sin(1.7 * phase + p[2]) + 0.5 * wander[1]
    roll = 0.22 * np.sin(1.3 * phase + p[3])
    yaw = 0.5 * np.sin(0.8 * phase + p[4])
    return dx, dy, roll, yaw


def _dropouts(n: int, fps: float, rng) -> list:
    """Segments (start, end, kind) where the face leaves the frame ("leave") or is covered ("occlude")."""
    duration = n / fps
    count = rng.poisson(duration / 15.0) + int(rng.random() < 0.5)
    segs = []
    for _ in range(count):
        length = rng.uniform(0.8, 2.5)
        start = rng.uniform(0.5, max(0.6, duration - length - 0.5))
        segs.append((int(start * fps), int((start + length) * fps), "leave" if rng.random() < 0.5 else "occlude"))
    return segs


def _ramp(n: int, start: int, end: int, fps: float, edge_s: float) -> np.ndarray:
    """0 outside [start, end), 1 inside, with smooth edges of ``edge_s`` seconds."""
    i = np.arange(n)
    e = max(1.0, edge_s * fps)
    return _smoothstep((i - start) / e) * (1 - _smoothstep((i - end + e) / e))


@dataclass
class _VideoSpec:
    name: str
    subject: str
    group: int
    split: str
    seed: tuple
    size: SewaSize


def _render_video(spec: _VideoSpec, root: str) -> dict:
    """Draw, encode and annotate one video; returns its metadata row."""
    size = spec.size
    rng = np.random.default_rng(np.random.SeedSequence(list(spec.seed)))
    fps = float(size.fps)
    ident = drawing.random_identity(rng, spec.group)
    bg = drawing.random_background(rng, size.height, size.width)
    t, v, a = latent_signals(size.duration_s, fps, rng)
    n = len(t)
    alpha = (a + 1) / 2
    closure = _blinks(n, fps, alpha, rng)
    talk = _talking(n, fps, alpha, rng)
    dx, dy, roll, yaw = _head_motion(n, fps, alpha, rng)
    micro = gaussian_filter1d(rng.normal(size=(3, n)), 0.3 * fps, axis=1)
    micro *= 0.06 / (micro.std(axis=1, keepdims=True) + 1e-9)
    base = (size.width / 2 + rng.uniform(-25, 25), size.height / 2 - 2 + rng.uniform(-8, 8), rng.uniform(52, 64))

    leave_dx = np.zeros(n)
    cover = np.zeros(n)
    segments = _dropouts(n, fps, rng)
    for start, end, kind in segments:
        r = _ramp(n, start, end, fps, 0.4 if kind == "leave" else 0.2)
        if kind == "leave":
            leave_dx += r * (1 if base[0] > size.width / 2 else -1) * (size.width * 0.5 + 2.5 * base[2])
        else:
            cover = np.maximum(cover, r)
    occluder_color = tuple(int(c) for c in rng.integers(20, 235, 3))

    path = Path(root) / "videos" / f"{spec.name}.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"XVID"), fps, (size.width, size.height))
    if not writer.isOpened():
        raise RuntimeError(f"{path}: OpenCV cannot open an Xvid writer on this system")
    visible = np.ones(n)
    for i in range(n):
        frame = bg.copy()
        ex = Expression(
            mouth_curve=0.85 * v[i] + micro[0, i],
            mouth_open=talk[i] + 0.2 * max(a[i], 0.0) * max(v[i], 0.0),
            mouth_width=1.0 + 0.1 * v[i],
            brow_raise=0.15 * a[i] + micro[1, i],
            brow_slant=(0.8 if v[i] < 0 else 0.2) * v[i] + micro[2, i],
            eye_open=(0.84 + 0.08 * a[i]) * (1 - closure[i]),
        )
        pose = Pose(base[0] + dx[i] + leave_dx[i], base[1] + dy[i], base[2], roll[i], yaw[i])
        drawing.draw_face(frame, ident, ex, pose)
        if cover[i] > 0:
            top = int(size.height - cover[i] * (size.height - (pose.cy - 0.7 * pose.size)))
            cv2.rectangle(frame, (int(pose.cx - 1.6 * pose.size), top),
                          (int(pose.cx + 1.6 * pose.size), size.height), occluder_color, -1)
        x0, y0, x1, y1 = drawing.face_box(ident, pose)
        inside = max(0.0, min(x1, size.width) - max(x0, 0)) / (x1 - x0)
        visible[i] = inside * (1 - cover[i])
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()

    label_times = np.arange(int(round(size.duration_s * LABEL_RATE))) / LABEL_RATE
    n_annot = int(rng.integers(size.min_annotators, size.max_annotators + 1))
    lags = {}
    for dim, sig in (("Valence", v), ("Arousal", a)):
        traces = []
        for _ in range(n_annot):
            trace, lag = annotate(sig, fps, label_times, rng)
            traces.append(trace)
            lags.setdefault(dim, []).append(lag)
        _write_aligned_csv(Path(root) / "annotations" / f"{spec.name}_{dim}_V_Aligned.csv", label_times, traces)
    np.savez_compressed(
        Path(root) / "latent" / f"{spec.name}.npz", time=t, valence=v, arousal=a, visible=visible,
        lag_valence=np.array(lags["Valence"]), lag_arousal=np.array(lags["Arousal"]),
    )
    return dict(video=spec.name, subject=spec.subject, group=spec.group + 1, split=spec.split,
                duration_s=size.duration_s, n_frames=n, n_annotators=n_annot,
                dropout_segments=len(segments))


def _write_aligned_csv(path: Path, times: np.ndarray, traces: list):
    """SEWA's raw continuous-annotation layout: comma-separated, header, time then one column per annotator."""
    lines = ["Time," + ",".join(f"Annotator{k + 1}" for k in range(len(traces)))]
    for i, t in enumerate(times):
        lines.append(f"{t:.2f}," + ",".join(f"{tr[i]:.6f}" for tr in traces))
    path.write_text("\n".join(lines) + "\n")


def _video_specs(size: SewaSize, seed: int) -> list:
    """Subjects with their group and split; the split is by subject, groups spread over the splits."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    n = size.n_train + size.n_val + size.n_test
    groups = (np.arange(n) + int(rng.integers(drawing.N_GROUPS))) % drawing.N_GROUPS
    # round-robin over groups keeps every split culturally mixed, like SEWA's
    splits = np.array(["train"] * size.n_train + ["validation"] * size.n_val + ["test"] * size.n_test)
    order = rng.permutation(n)
    specs, per_group = [], {}
    for k in range(n):
        g = int(groups[k])
        per_group[g] = per_group.get(g, 0) + 1
        session, member = 10 + (per_group[g] - 1) // 2, 1 + (per_group[g] - 1) % 2
        name = f"SEW{g + 1}{session:02d}{member}"
        specs.append(_VideoSpec(name, f"S{g + 1}{per_group[g]:03d}", g, str(splits[order[k]]), (seed, 2, k), size))
    return specs


def _worker_count(workers):
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    return max(1, int(workers))


def generate_sewa_like(root, size="cpu", seed: int = 0, workers=None) -> Path:
    """Write a SEWA-like corpus (videos, 10 Hz per-annotator labels, splits) to ``root``, atomically.

    ``size`` is a profile name (``"smoke" | "cpu" | "paper"``) or a :class:`SewaSize`. The corpus is a
    deterministic function of (size, seed): the stand-in for SEWA-DB (§4.1). Returns ``root``.
    """
    size = _sizes(size, 0)
    root = Path(root)
    specs = _video_specs(size, seed)
    with _atomic_dir(root) as tmp:
        for sub in ("videos", "annotations", "latent"):
            (tmp / sub).mkdir()
        rows = _map(_render_video, specs, str(tmp), _worker_count(workers))
        meta = pd.DataFrame(rows)
        meta.to_csv(tmp / "metadata.csv", index=False)
        meta[["video", "split"]].to_csv(tmp / "splits.csv", index=False)
        _write_marker(tmp, {"kind": "sewa-like", "size": asdict(size), "seed": seed})
    return root


def _map(fn, items, root: str, workers: int) -> list:
    if workers <= 1 or len(items) <= 1:
        return [fn(item, root) for item in items]
    # spawn, not fork: the caller may hold torch / OpenMP threads that do not survive a fork
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(fn, items, [root] * len(items)))


# ----------------------------------------------------------------------------------------------
# RAF-like images
# ----------------------------------------------------------------------------------------------

# Expression controls of the seven basic emotions at full intensity (RAF-DB order, labels 1..7).
_RAF_PRESETS = [
    dict(mouth_open=0.9, brow_raise=1.2, eye_open=1.3, mouth_width=0.8),                        # Surprise
    dict(mouth_open=0.45, mouth_width=1.25, brow_raise=0.8, brow_slant=0.9, eye_open=1.25,
         mouth_curve=-0.3),                                                                      # Fear
    dict(nose_wrinkle=1.0, mouth_curve=-0.6, brow_raise=-0.5, brow_slant=-0.4, eye_open=0.6,
         mouth_open=0.1),                                                                        # Disgust
    dict(mouth_curve=1.0, mouth_open=0.35, eye_open=0.7, brow_raise=0.1),                       # Happiness
    dict(mouth_curve=-0.8, brow_slant=1.0, brow_raise=0.1, eye_open=0.55),                      # Sadness
    dict(brow_slant=-1.2, brow_raise=-1.0, eye_open=0.85, mouth_curve=-0.3, mouth_width=0.85),  # Anger
    dict(),                                                                                      # Neutral
]


def raf_expression(label: int, intensity: float, rng: np.random.Generator) -> Expression:
    """Controls for basic emotion ``label`` (0..6, RAF-DB order) at ``intensity`` in [0, 1], plus jitter."""
    neutral = Expression()
    target = Expression(**_RAF_PRESETS[label])
    fields = {}
    for name in asdict(neutral):
        n0, t0 = getattr(neutral, name), getattr(target, name)
        fields[name] = n0 + intensity * (t0 - n0) + rng.normal(0, 0.12)
    fields["eye_open"] = max(0.2, fields["eye_open"])
    fields["mouth_open"] = max(0.0, fields["mouth_open"])
    return Expression(**fields)


def _class_counts(total: int, split: str) -> np.ndarray:
    """RAF-DB's class proportions scaled to ``total`` (largest remainder), at least 2 per class."""
    p = np.array(RAF_COUNTS[split], float)
    p /= p.sum()
    if total < 14:
        raise ValueError(f"a RAF-like split needs at least 14 images (2 per class), got {total}")
    counts = np.maximum(2, np.floor(p * total).astype(int))
    while counts.sum() > total:  # the minimum of 2 borrowed from the largest classes
        counts[np.argmax(np.where(counts > 2, counts - p * total, -np.inf))] -= 1
    while counts.sum() < total:
        counts[np.argmax(p * total - counts)] += 1
    return counts


def _raf_image(ident, label: int, rng, out_size: int) -> np.ndarray:
    canvas = drawing.random_background(rng, 240, 240)
    size = rng.uniform(58, 70)
    pose = Pose(120 + rng.normal(0, 4), 110 + rng.normal(0, 4), size, rng.normal(0, 0.1), rng.uniform(-0.6, 0.6))
    drawing.draw_face(canvas, ident, raf_expression(label, rng.uniform(0.35, 1.0), rng), pose)
    half = 1.25 * size
    cx, cy = pose.cx, pose.cy + 0.1 * size
    crop = canvas[int(cy - half):int(cy + half), int(cx - half):int(cx + half)]
    img = cv2.resize(crop, (out_size, out_size), interpolation=cv2.INTER_AREA).astype(np.float32)
    img = img * rng.uniform(0.75, 1.2) + rng.uniform(-20, 20)  # exposure, as in photos from the web
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (3, 3), 0)
    return np.clip(img, 0, 255).astype(np.uint8)


def generate_raf_like(root, size="cpu", seed: int = 0) -> Path:
    """Write a RAF-like image set (RAF-DB basic layout and label file, RAF-DB's class imbalance) to ``root``.

    ``size`` is a profile name or a :class:`RafSize`; deterministic in (size, seed). The stand-in for
    RAF-DB, used to fine-tune the 2D CNNs (§3.1, §4.3). Returns ``root``.
    """
    size = _sizes(size, 1)
    root = Path(root)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 3]))
    identities = [drawing.random_identity(rng, k % drawing.N_GROUPS) for k in range(size.n_identities)]
    with _atomic_dir(root) as tmp:
        (tmp / "Image" / "aligned").mkdir(parents=True)
        (tmp / "EmoLabel").mkdir()
        lines, id_rows = [], []
        for split, total in (("train", size.n_train), ("test", size.n_test)):
            labels = np.repeat(np.arange(7), _class_counts(total, split))
            labels = labels[rng.permutation(len(labels))]
            for k, label in enumerate(labels, start=1):
                who = int(rng.integers(size.n_identities))
                stem = f"{split}_{k:05d}" if split == "train" else f"{split}_{k:04d}"  # RAF-DB's own numbering
                img = _raf_image(identities[who], int(label), rng, size.image_size)
                cv2.imwrite(str(tmp / "Image" / "aligned" / f"{stem}_aligned.jpg"),
                            cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
                lines.append(f"{stem}.jpg {int(label) + 1}")
                id_rows.append((f"{stem}.jpg", who, identities[who].group + 1))
        (tmp / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
        pd.DataFrame(id_rows, columns=["image", "identity", "group"]).to_csv(tmp / "identities.csv", index=False)
        _write_marker(tmp, {"kind": "raf-like", "size": asdict(size), "seed": seed})
    return root


# ----------------------------------------------------------------------------------------------
# Atomic generation and the on-first-use entry point
# ----------------------------------------------------------------------------------------------

class _atomic_dir:
    """Build a directory under a temporary name next to ``target`` and rename it into place on success."""

    def __init__(self, target: Path):
        self.target = Path(target)

    def __enter__(self) -> Path:
        # Only a corpus generated here is ever replaced: a folder of the user's at that path is refused.
        if self.target.exists() and not (self.target / MARKER).is_file() and any(self.target.iterdir()):
            raise ValueError(f"{self.target}: exists and is not a corpus generated by emorec (no {MARKER}); "
                             f"choose another data root")
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.tmp-", dir=self.target.parent))
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        old = None
        if self.target.exists():
            old = self.target.with_name(f".{self.target.name}.old-{os.getpid()}")
            os.replace(self.target, old)
        os.replace(self.tmp, self.target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return False


def _write_marker(folder: Path, params: dict):
    params = dict(params, version=GENERATOR_VERSION[params["kind"]])
    (folder / MARKER).write_text(json.dumps(params, sort_keys=True, indent=1))


def _marker_matches(folder: Path, params: dict) -> bool:
    try:
        found = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return found == json.loads(json.dumps(dict(params, version=GENERATOR_VERSION[params["kind"]]), sort_keys=True))


def ensure_corpora(data_root="data", profile: str = "cpu", seed: int = 0, workers=None) -> dict:
    """Generate the SEWA-like and RAF-like corpora into ``<data_root>/<profile>/`` on first use.

    A relative ``data_root`` is taken from the repository root (:mod:`emorec.paths`).
    Reuses what is there when its marker file records the same generator version, size and seed;
    regenerates (atomically) otherwise. Returns ``{"sewa": Path, "rafdb": Path}`` (§4.1, ours).
    """
    sewa_size = _sizes(profile, 0)
    sewa = resolve(data_root) / profile / "sewa"  # relative roots are relative to the repository root
    if not _marker_matches(sewa, {"kind": "sewa-like", "size": asdict(sewa_size), "seed": seed}):
        generate_sewa_like(sewa, sewa_size, seed, workers)
    return {"sewa": sewa, "rafdb": ensure_raf_like(data_root, profile, seed)}


def ensure_raf_like(data_root="data", profile: str = "cpu", seed: int = 0) -> Path:
    """The RAF-like set alone, as :func:`ensure_corpora` makes it: on a real RAF-DB copy, its synthetic
    identities are what the VGG-Face stand-in pre-trains on (§3.1, ours)."""
    raf_size = _sizes(profile, 1)
    path = resolve(data_root) / profile / "rafdb"
    if not _marker_matches(path, {"kind": "raf-like", "size": asdict(raf_size), "seed": seed}):
        generate_raf_like(path, raf_size, seed)
    return path


def main(argv=None):
    """Command line: ``python -m emorec.data.synthetic --profile cpu --root data``."""
    parser = argparse.ArgumentParser(description="Generate the synthetic SEWA-like and RAF-like corpora.")
    parser.add_argument("--profile", default="cpu", choices=PROFILES)
    parser.add_argument("--root", default="data", help="data root; corpora go to <root>/<profile>/")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: min(2, CPUs))")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    paths = ensure_corpora(args.root, args.profile, args.seed, args.workers)
    print(f"sewa-like: {paths['sewa']}\nraf-like: {paths['rafdb']}\n"
          f"ready in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
