"""The shared frozen prefix of the CPU profiles: one training budget for every video model (ours).

In the ``smoke`` and ``cpu`` profiles the 2D-CNN-LSTM (§4.4), the i3D-CNN (§4.5) and the
frame-by-frame baseline are trained the same way: the initialisation's 2D stages conv1 … conv(k−1)
are frozen and run once per kept face crop (:func:`shared_prefix`, cached as one float16 array per
video in the artefact store), and each model trains the same part on those maps: the stages from
``trainable_from`` on, its temporal part and the same FC head. For the i3D-CNN the frozen stages are
the 2D network frame by frame (centered inflation with zero outer slices: ``I3D(frame_stages=k)``);
Table 3's options apply to the stages it trains. The ``paper`` profile trains end to end instead.

:func:`linear_probe` measures how much of each label a linear map finds in these shared maps, for
single frames and for clips (mean and standard deviation over the clip's frames).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import metrics
from ..data.clips import CachedClips, ClipIndex, PixelClips, resize_frames
from ..models import BLOCKS, STAGES, count_parameters, load_model
from ..models.backbones import per_frame
from ..train import TrainConfig, fit, predict
from .cache import ArtefactStore, Experiment
from .corpus import SPLITS, TARGETS, Corpus, VideoRecord
from .evaluation import SplitPredictions, spread_clip_predictions, timeline_predictions

TABLE = "prefix"
MODULES = ("emorec.models", "emorec.data.clips", "emorec.experiments.prefix")
#: Where the trainable part may start (the split point of the CPU profiles).
TRAINABLE_FROM = ("conv4", "conv5")


def file_digest(path) -> str:
    """SHA-256 of a checkpoint file: configurations name their starting weights by content (ours)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def frozen_stage_count(trainable_from: str) -> int:
    """Stages before ``trainable_from`` ("conv5": 4 frozen stages)."""
    if trainable_from not in TRAINABLE_FROM:
        raise ValueError(f"trainable_from must be one of {TRAINABLE_FROM}, got {trainable_from!r}")
    return STAGES.index(trainable_from)


def finetune_block(trainable_from: str) -> str:
    """Table 1's name of the first trained block ("conv5" → "Conv_5_1"), what the models' ``finetune_from``
    takes."""
    return BLOCKS[frozen_stage_count(trainable_from)]


def prefix_experiment(corpus: Corpus, checkpoint, input_size, trainable_from: str) -> Experiment:
    """The cache entry of the shared prefix: the checkpoint by content, the corpus, the input size and
    the split point. Every model of a profile that names the same four finds the same entry."""
    config = {"checkpoint": file_digest(checkpoint), "input_size": [int(v) for v in input_size],
              "frozen_stages": frozen_stage_count(trainable_from)}
    return Experiment(TABLE, config, data=corpus.fingerprint, modules=MODULES)


def _encode(prefix: nn.Module, crops: np.ndarray, input_size, batch_size: int = 256) -> np.ndarray:
    out = []
    with torch.no_grad():
        for start in range(0, len(crops), batch_size):
            batch = torch.from_numpy(np.array(crops[start:start + batch_size])).movedim(-1, -3).float() / 255
            out.append(prefix(resize_frames(batch, input_size)).numpy().astype(np.float16))
    return np.concatenate(out)


def shared_prefix(corpus: Corpus, checkpoint, input_size, trainable_from: str,
                  store: ArtefactStore) -> dict[str, np.ndarray]:
    """Per video, the frozen stages' maps of every kept face, float16 [N_kept, C, h, w], memory-mapped:
    computed once per (checkpoint, corpus, input size, split point) and cached (ours)."""
    experiment = prefix_experiment(corpus, checkpoint, input_size, trainable_from)

    def compute(work: Path) -> dict:
        prefix, _ = load_model(checkpoint).eval().split(frozen_stage_count(trainable_from))
        for k, record in enumerate(corpus.videos):
            np.save(work / f"{k:04d}.npy", _encode(prefix, record.track.crops, input_size))
        return {"videos": [r.video for r in corpus.videos],
                "shape": list(np.load(work / "0000.npy", mmap_mode="r").shape[1:])}

    result = store.run(experiment, compute)
    folder = store.folder(experiment)
    return {video: np.load(folder / f"{k:04d}.npy", mmap_mode="r") for k, video in enumerate(result["videos"])}


def clip_index(records: list[VideoRecord], seq_len: int, overlap: float, tolerance: float = 1,
               fusion: str = "mean") -> ClipIndex:
    """The clips of ``records`` (§3.2.2): windows over the kept frames, fused labels."""
    return ClipIndex([r.track.kept_frames for r in records], [r.frame_labels for r in records], seq_len, overlap,
                     tolerance, fusion)


def pixel_clips(records: list[VideoRecord], seq_len: int, overlap: float, input_size, tolerance: float = 1,
                fusion: str = "mean") -> PixelClips:
    """The same clips as :func:`clip_index`, served as pixels at ``input_size`` (end-to-end training)."""
    return PixelClips([r.track for r in records], [r.frame_labels for r in records], seq_len, overlap, input_size,
                      tolerance, fusion)


def cached_clip_sets(corpus: Corpus, maps: dict[str, np.ndarray], seq_len: int, overlap: float,
                     eval_overlap: float | None = None, tolerance: float = 1,
                     fusion: str = "mean") -> dict[str, CachedClips]:
    """``"fit"``: the training clips (OR ``overlap``); per split, the clips it is predicted on (OR
    ``eval_overlap``, default ``overlap``; the validation set of early stopping is the latter)."""
    eval_overlap = overlap if eval_overlap is None else eval_overlap
    sets = {}
    for split in SPLITS:
        records = corpus.split(split)
        sets[split] = CachedClips(clip_index(records, seq_len, eval_overlap, tolerance, fusion),
                                  [maps[r.video] for r in records])
    records = corpus.split("train")
    sets["fit"] = sets["train"] if eval_overlap == overlap else CachedClips(
        clip_index(records, seq_len, overlap, tolerance, fusion), [maps[r.video] for r in records])
    for name, dataset in sets.items():
        if len(dataset) == 0:
            raise ValueError(f"no clip of {seq_len} frames (tolerance {tolerance}) in the {name} split of "
                             f"{corpus.description}")
    return sets


class ClipMean(nn.Module):
    """A frame model on every frame of a clip's maps [N, C, T, h, w]; the clip's prediction is the
    mean of its frames' (the frame-by-frame baseline, ours)."""

    def __init__(self, frame_model: nn.Module):
        super().__init__()
        self.frame_model = frame_model

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return per_frame(self.frame_model, maps).mean(dim=1)


def split_predictions(records: list[VideoRecord], dataset, clip_preds: np.ndarray, fallback) -> SplitPredictions:
    """Clip predictions of one split → per kept frame (mean of the covering clips) → the 10 Hz label
    timeline (chapter 4.4's scoring rule)."""
    frame_preds = [spread_clip_predictions(len(r.frame_labels), dataset.index[dataset.index[:, 0] == v, 1],
                                           dataset.seq_len, clip_preds[dataset.index[:, 0] == v])
                   for v, r in enumerate(records)]
    return timeline_predictions(records, frame_preds, fallback)


def train_suffix(trainee: nn.Module, sets: dict, settings: TrainConfig, corpus: Corpus,
                 work: Path) -> tuple[dict, dict]:
    """Train the trainable part on the cached clips with early stopping on validation CCC, predict
    every split. Returns (per-split predictions on the label timeline, the run's budget: trainable
    parameters, frames seen in training, training seconds, epochs)."""
    start = time.perf_counter()
    result = fit(trainee, sets["fit"], sets["validation"], settings, work)
    seconds = time.perf_counter() - start
    fallback = np.concatenate([r.frame_labels for r in corpus.split("train")]).mean(axis=0)
    preds = {s: split_predictions(corpus.split(s), sets[s], predict(trainee, sets[s], settings), fallback)
             for s in SPLITS}
    budget = {"trainable_params": int(count_parameters(trainee)["trainable"]),
              "frames_seen": int(len(sets["fit"]) * sets["fit"].seq_len * len(result.history)),
              "train_seconds": round(seconds, 1), "epochs_run": len(result.history),
              "best_epoch": result.best_epoch}
    return preds, budget


# --------------------------------------------------------------------------------------------------
# Linear probe of the shared maps
# --------------------------------------------------------------------------------------------------

def ridge_fit(x: np.ndarray, y: np.ndarray, alpha: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closed-form ridge regression on z-scored inputs: (weights [F, D], input mean, input std) (ours)."""
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mean) / std
    w = np.linalg.solve(z.T @ z + alpha * len(z) * np.eye(z.shape[1]), z.T @ (y - y.mean(axis=0)))
    return np.vstack([w, y.mean(axis=0)[None]]), mean, std


def ridge_predict(model, x: np.ndarray) -> np.ndarray:
    w, mean, std = model
    return ((x - mean) / std) @ w[:-1] + w[-1]


def _probe_inputs(records, maps, clips: ClipIndex | None):
    if clips is None:  # single frames
        x = np.concatenate([np.asarray(maps[r.video], np.float32).reshape(len(r.frame_labels), -1) for r in records])
        return x, np.concatenate([r.frame_labels for r in records])
    x = []
    for v, start in clips.index:
        frames = np.asarray(maps[records[v].video][start:start + clips.seq_len], np.float32).reshape(clips.seq_len, -1)
        x.append(np.concatenate([frames.mean(axis=0), frames.std(axis=0)]))
    return np.array(x), clips.labels


def linear_probe(corpus: Corpus, maps: dict[str, np.ndarray], seq_len: int, overlap: float,
                 fusion: str = "mean", alpha: float = 1.0) -> list[dict]:
    """How much of each label a linear map finds in the shared maps (ours): ridge regression fitted on
    the training faces, CCC on validation and test, for single frames (each frame's maps → its label)
    and for clips (mean and standard deviation of the maps over the clip's frames → the fused clip
    label). Motion shows only in the second."""
    rows = []
    for kind in ("single frames", "clips (mean + std over frames)"):
        data = {}
        for split in SPLITS:
            records = corpus.split(split)
            clips = None if kind == "single frames" else clip_index(records, seq_len, overlap, fusion=fusion)
            data[split] = _probe_inputs(records, maps, clips)
        model = ridge_fit(*data["train"], alpha=alpha)
        for split in ("validation", "test"):
            x, y = data[split]
            p = ridge_predict(model, x)
            rows.append({"input": kind, "split": split, "samples": len(y),
                         **{f"{label} CCC": metrics.ccc(y[:, d], p[:, d]) for d, label in enumerate(TARGETS)}})
    return rows


__all__ = ["TRAINABLE_FROM", "ClipMean", "cached_clip_sets", "clip_index", "file_digest", "finetune_block",
           "frozen_stage_count", "linear_probe", "pixel_clips", "prefix_experiment", "ridge_fit", "ridge_predict",
           "shared_prefix", "split_predictions", "train_suffix"]
