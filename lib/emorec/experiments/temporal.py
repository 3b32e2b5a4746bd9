"""Table 2 (§4.4): the VGG-16-LSTM on clips, and the frame-by-frame baseline the paper lacks.

Two ways to train the cascade, chosen by the configuration's ``backbone`` entry:

- ``"frozen"`` (the CPU profiles): the 2D backbone that §4.3 fine-tuned on expressions (Table 1's
  checkpoint, or a stand-in) is frozen; its per-frame features are computed once per corpus and
  cached, and only the LSTM and its three FC layers are trained on feature sequences. The
  frame-by-frame baseline gets the *same* features and the same FC head without the LSTM, and a
  clip's prediction is the mean of its frames' predictions: the two differ only in temporal
  modelling.
- ``"finetune"`` (the ``paper`` profile): the whole :class:`~emorec.models.CNNLSTM` is trained on
  pixel clips, starting from the checkpoint (§4.4).

Either way the result row comes from :func:`emorec.experiments.evaluation.evaluate_splits`, and the
trained cascade is saved as a complete ``CNNLSTM`` checkpoint (``model.pt``) that
:func:`emorec.models.load_model` and ``emorec predict`` read.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..data.clips import fuse_labels, make_windows, resize_frames
from ..models import CNNLSTM, load_model
from ..models.backbones import mlp_head
from ..models.cnn_lstm import LSTMRegressor
from ..train import TrainConfig, fit, predict
from ..train import checkpoint as ckpt
from .cache import ArtefactStore, Experiment
from .corpus import SPLITS, Corpus, VideoRecord
from .evaluation import evaluate_splits, spread_clip_predictions, timeline_predictions
from .i3d import I3DClips

MODULES = ("emorec.models", "emorec.train", "emorec.data.clips", "emorec.postprocess", "emorec.metrics",
           "emorec.experiments.evaluation", "emorec.experiments.temporal")


def file_digest(path) -> str:
    """SHA-256 of a checkpoint file: configurations name their starting weights by content."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------------
# Frozen per-frame features (CPU profiles)
# --------------------------------------------------------------------------------------------------

class FrameEncoder2D(nn.Module):
    """Frames [N, 3, H, W] in [0, 1] → features [N, F]: a checkpoint's normalisation and conv stages,
    then average pooling to ``pool`` cells."""

    def __init__(self, checkpoint, pool=(1, 1)):
        super().__init__()
        model = load_model(checkpoint)
        self.normalize, self.features = model.normalize, model.features
        self.pool = nn.AdaptiveAvgPool2d(tuple(pool))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.features(self.normalize(frames))), 1)


def _encode_track(encoder: nn.Module, crops: np.ndarray, input_size, batch_size: int = 128) -> np.ndarray:
    out = []
    with torch.no_grad():
        for start in range(0, len(crops), batch_size):
            batch = torch.from_numpy(np.array(crops[start:start + batch_size])).movedim(-1, -3).float() / 255
            out.append(encoder(resize_frames(batch, input_size)).numpy())
    return np.concatenate(out).astype(np.float32)


def frame_features(corpus: Corpus, checkpoint, input_size, pool, store: ArtefactStore) -> dict[str, np.ndarray]:
    """Per kept face of every video, the frozen backbone's features (cached as an artefact)."""
    config = {"checkpoint": file_digest(checkpoint), "input_size": list(input_size), "pool": list(pool)}
    experiment = Experiment("features", config, data=corpus.fingerprint, modules=("emorec.models",))

    def compute(work: Path) -> dict:
        encoder = FrameEncoder2D(checkpoint, pool).eval()
        arrays = {r.video: _encode_track(encoder, r.track.crops, input_size) for r in corpus.videos}
        np.savez(work / "features.npz", **arrays)
        return {"videos": len(arrays), "dim": int(next(iter(arrays.values())).shape[1])}

    store.run(experiment, compute)
    with np.load(store.folder(experiment) / "features.npz") as saved:
        return {name: saved[name] for name in saved.files}


def feature_statistics(corpus: Corpus, features: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each feature over the training faces (training split only)."""
    train = np.concatenate([features[r.video] for r in corpus.split("train")])
    return train.mean(axis=0), train.std(axis=0) + 1e-6


def standardized(features: dict[str, np.ndarray], mean: np.ndarray, std: np.ndarray) -> dict[str, np.ndarray]:
    """Features z-scored with the training statistics: the LSTM and the baseline's head learn on
    these (raw post-ReLU features sit far from zero, which slows the LSTM down; chapter 4.4)."""
    return {video: ((f - mean) / std).astype(np.float32) for video, f in features.items()}


def fold_standardization(weight: torch.Tensor, bias: torch.Tensor, mean: np.ndarray, std: np.ndarray) -> None:
    """Fold ``x → (x − mean) / std`` into the first layer that reads ``x`` (in place):
    ``W (x − m) / s + b = (W / s) x + (b − (W / s) m)``, so the saved model takes raw features."""
    with torch.no_grad():
        # the statistics come from numpy (CPU); the weights may sit on a GPU after fit()
        scaled = weight / torch.as_tensor(std, dtype=weight.dtype, device=weight.device)
        bias -= scaled @ torch.as_tensor(mean, dtype=weight.dtype, device=weight.device)
        weight.copy_(scaled)


class FeatureClips(Dataset):
    """Clips of cached features: item = ([T, F] features, fused (valence, arousal)) (§3.2.2)."""

    def __init__(self, records: list[VideoRecord], features: dict[str, np.ndarray], seq_len: int,
                 overlap: float, tolerance: float = 1, fusion: str = "mean"):
        self.seq_len, self.records = int(seq_len), records
        self.features = [torch.from_numpy(features[r.video]) for r in records]
        index, labels = [], []
        for v, record in enumerate(records):
            for window in make_windows(record.track.kept_frames, seq_len, overlap, tolerance):
                index.append((v, int(window[0])))
                labels.append(fuse_labels(record.frame_labels[window], fusion))
        self.index = np.array(index, dtype=np.int64).reshape(-1, 2)
        self.labels = torch.tensor(np.array(labels, dtype=np.float32).reshape(-1, 2))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i):
        video, start = self.index[i]
        return self.features[video][start:start + self.seq_len], self.labels[i]


class FeatureFrames(Dataset):
    """Single frames of cached features: item = ([F], (valence, arousal)) (the baseline's training set)."""

    def __init__(self, records: list[VideoRecord], features: dict[str, np.ndarray]):
        self.x = torch.from_numpy(np.concatenate([features[r.video] for r in records]))
        self.y = torch.from_numpy(np.concatenate([r.frame_labels for r in records]))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


class FrameHead(nn.Module):
    """The baseline's regressor on one frame's features: the FC layers of the cascade, no LSTM."""

    def __init__(self, n_features: int, head_units=(512, 128)):
        super().__init__()
        self.head = mlp_head(n_features, head_units, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


# --------------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------------

def train_config(config: dict) -> TrainConfig:
    """The trainer's settings of one configuration (MSE loss as §4.4 chose, Adam, early stopping)."""
    return TrainConfig(task="regression", lr=config["lr"], batch_size=config["batch_size"],
                       epochs=config["epochs"], patience=config.get("patience", 3), seed=config["seed"],
                       loss=config.get("loss", "mse"), multiplier=config.get("multiplier", 1.0), verbose=False)


def _split_predictions(corpus: Corpus, clip_sets: dict, clip_preds: dict, seq_len: int) -> dict:
    fallback = np.concatenate([r.frame_labels for r in corpus.split("train")]).mean(axis=0)
    out = {}
    for split in SPLITS:
        records, dataset, preds = corpus.split(split), clip_sets[split], clip_preds[split]
        frame_preds = []
        for v, record in enumerate(records):
            mine = dataset.index[:, 0] == v
            frame_preds.append(spread_clip_predictions(len(record.frame_labels), dataset.index[mine, 1],
                                                       seq_len, preds[mine]))
        out[split] = timeline_predictions(records, frame_preds, fallback)
    return out


def _clip_sets(corpus: Corpus, features: dict, config: dict) -> dict:
    return {split: FeatureClips(corpus.split(split), features, config["seq_len"], config["overlap"],
                                config.get("tolerance", 1), config["fusion"]) for split in SPLITS}


def _save_cascade(work: Path, checkpoint, config: dict, lstm: LSTMRegressor, n_features: int,
                  trained_on: dict) -> None:
    """The frozen backbone and the trained LSTM as one CNNLSTM checkpoint (what ``predict`` loads)."""
    backbone = load_model(checkpoint).config
    model = CNNLSTM(backbone=backbone["backbone"], width=backbone["width"], weights=str(checkpoint),
                    finetune_from="Frozen", hidden_size=config["hidden_size"], dropout=config["dropout"],
                    recurrent_dropout=config["recurrent_dropout"], head_units=config["head_units"],
                    pool_size=config["pool"], seed=config["seed"])
    if model.feature_size != n_features:
        raise ValueError(f"feature size {n_features} does not match the cascade's {model.feature_size}")
    model.temporal.load_state_dict(lstm.state_dict())
    save_cascade(model, config["input_size"], work / "model.pt", trained_on)


def save_cascade(model: CNNLSTM, input_size, path: Path, trained_on: dict | None = None) -> None:
    """A complete cascade checkpoint: every weight, the model's configuration, its input size and,
    when given, the data it was trained on (:meth:`Corpus.trained_on`): what
    :func:`emorec.models.load_model` and ``emorec predict`` need (ours)."""
    model.config["weights"] = None  # the checkpoint holds every weight: rebuilding needs no other file
    saved = {"format": ckpt.FORMAT, "model": model.state_dict(), "model_config": ckpt.plain(model.config),
             "input_size": [int(v) for v in input_size]}
    if trained_on is not None:
        saved["trained_on"] = dict(trained_on)
    ckpt.save(saved, path)


def run_cnn_lstm(config: dict, corpus: Corpus, checkpoint, store: ArtefactStore) -> dict:
    """One row of Table 2: train the cascade on clips of frozen features, score it (§4.4)."""
    if config.get("backbone", "frozen") != "frozen":
        return run_cnn_lstm_finetune(config, corpus, checkpoint, store)
    features = frame_features(corpus, checkpoint, config["input_size"], config["pool"], store)
    experiment = Experiment("table2", {**config, "checkpoint": file_digest(checkpoint)},
                            data=corpus.fingerprint, modules=MODULES)

    def run(work: Path) -> dict:
        mean, std = feature_statistics(corpus, features)
        sets = _clip_sets(corpus, standardized(features, mean, std), config)
        n_features = len(mean)
        torch.manual_seed(config["seed"])
        lstm = LSTMRegressor(n_features, config["hidden_size"], config["dropout"], config["recurrent_dropout"],
                             config["head_units"])
        settings = train_config(config)
        result = fit(lstm, sets["train"], sets["validation"], settings, work / "train")
        preds = {split: predict(lstm, sets[split], settings) for split in SPLITS}
        fold_standardization(lstm.lstm.weight_ih_l0, lstm.lstm.bias_ih_l0, mean, std)
        _save_cascade(work, checkpoint, config, lstm, n_features, corpus.trained_on())
        row = evaluate_splits(_split_predictions(corpus, sets, preds, config["seq_len"]), seed=config["seed"],
                              save_to=work / "predictions.npz")
        return {**row, "clips": {s: len(sets[s]) for s in SPLITS}, "best_epoch": result.best_epoch}

    return {**store.run(experiment, run), "folder": str(store.folder(experiment))}


def run_frame_baseline(config: dict, corpus: Corpus, checkpoint, store: ArtefactStore) -> dict:
    """The frame-by-frame baseline: the cascade's FC head on single frames' features; a clip's
    prediction is the mean of its frames' (ours; the paper has no such row)."""
    features = frame_features(corpus, checkpoint, config["input_size"], config["pool"], store)
    experiment = Experiment("frame_baseline", {**config, "checkpoint": file_digest(checkpoint)},
                            data=corpus.fingerprint, modules=MODULES)

    def run(work: Path) -> dict:
        torch.manual_seed(config["seed"])
        mean, std = feature_statistics(corpus, features)
        scaled = standardized(features, mean, std)
        frames = {split: FeatureFrames(corpus.split(split), scaled) for split in SPLITS}
        head = FrameHead(frames["train"].x.shape[1], config["head_units"])
        settings = train_config(config)
        result = fit(head, frames["train"], frames["validation"], settings, work / "train")
        sets = _clip_sets(corpus, scaled, config)
        preds = {}
        for split in SPLITS:
            per_frame = predict(head, frames[split], settings)
            offsets = np.cumsum([0] + [len(r.frame_labels) for r in corpus.split(split)])
            preds[split] = np.array([per_frame[offsets[v] + s: offsets[v] + s + config["seq_len"]].mean(axis=0)
                                     for v, s in sets[split].index]).reshape(-1, 2)
        row = evaluate_splits(_split_predictions(corpus, sets, preds, config["seq_len"]), seed=config["seed"],
                              save_to=work / "predictions.npz")
        return {**row, "clips": {s: len(sets[s]) for s in SPLITS}, "best_epoch": result.best_epoch}

    return {**store.run(experiment, run), "folder": str(store.folder(experiment))}


def run_cnn_lstm_finetune(config: dict, corpus: Corpus, checkpoint, store: ArtefactStore) -> dict:
    """One row of Table 2 trained end to end on pixel clips from the checkpoint (the paper's setting)."""
    experiment = Experiment("table2", {**config, "checkpoint": file_digest(checkpoint)},
                            data=corpus.fingerprint, modules=MODULES)

    def run(work: Path) -> dict:
        backbone = load_model(checkpoint).config
        model = CNNLSTM(backbone=backbone["backbone"], width=backbone["width"], weights=str(checkpoint),
                        finetune_from=config.get("finetune_from", "Full"), hidden_size=config["hidden_size"],
                        dropout=config["dropout"], recurrent_dropout=config["recurrent_dropout"],
                        head_units=config["head_units"], pool_size=config["pool"], seed=config["seed"])
        # The same pixel clips as the i3D's: [3, T, h, w] at the model's input size.
        sets = {split: I3DClips(corpus.split(split), config["seq_len"], config["overlap"], config["input_size"],
                                config.get("tolerance", 1), config["fusion"]) for split in SPLITS}
        settings = train_config(config)
        result = fit(model, sets["train"], sets["validation"], settings, work / "train")
        preds = {split: predict(model, sets[split], settings) for split in SPLITS}
        save_cascade(model, config["input_size"], work / "model.pt", corpus.trained_on())
        row = evaluate_splits(_split_predictions(corpus, sets, preds, config["seq_len"]), seed=config["seed"],
                              save_to=work / "predictions.npz")
        return {**row, "clips": {s: len(sets[s]) for s in SPLITS}, "best_epoch": result.best_epoch}

    return {**store.run(experiment, run), "folder": str(store.folder(experiment))}


# --------------------------------------------------------------------------------------------------
# The grid of Table 2 and the choice of the best configuration per label
# --------------------------------------------------------------------------------------------------

def table2_grid(base: dict, inits, fps_values, seq_lens, overlaps, fusions) -> list[dict]:
    """Every (initialisation, fps, SL, OR, FM) configuration of Table 2 on top of ``base`` settings."""
    return [{**base, "init": init, "fps": fps, "seq_len": sl, "overlap": ov, "fusion": fm}
            for init, fps, sl, ov, fm in itertools.product(inits, fps_values, seq_lens, overlaps, fusions)]


def table2_configurations(section, seed: int) -> list[dict]:
    """Table 2's grid of a profile from its typed ``04_4_cnn_lstm`` section (:class:`emorec.config.Table2`)."""
    return table2_grid(section.base(seed), section.inits, section.fps_values, section.seq_lens, section.overlaps,
                       section.fusions)


def best_per_label(rows: list[dict], group_keys=("init", "fps")) -> list[dict]:
    """Per group and per label, the row with the best post-processed VALIDATION CCC (§4.4: the best
    configuration per label; the test set plays no part in the choice)."""
    best = {}
    for row in rows:
        for label in ("valence", "arousal"):
            key = tuple(row[k] for k in group_keys) + (label,)
            if key not in best or row[f"val_pp_{label}_CCC"] > best[key][f"val_pp_{label}_CCC"]:
                best[key] = row
    return [{**{k: v for k, v in zip(group_keys, key[:-1])}, "label": key[-1], "row": row}
            for key, row in best.items()]


def cascade_checkpoint(row_folder: Path) -> Path:
    """The complete CNN-LSTM checkpoint written by a Table 2 run."""
    return Path(row_folder) / "model.pt"


__all__ = ["FeatureClips", "FeatureFrames", "FrameEncoder2D", "FrameHead", "best_per_label", "cascade_checkpoint",
           "frame_features", "run_cnn_lstm", "run_cnn_lstm_finetune", "run_frame_baseline",
           "table2_configurations", "table2_grid"]
