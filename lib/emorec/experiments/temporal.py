"""Table 2 (§4.4): the VGG-16-LSTM on clips, and the frame-by-frame baseline the paper lacks.

Two ways to train the cascade, chosen by the configuration's ``backbone`` entry:

- ``"shared_prefix"`` (the CPU profiles): the initialisation's 2D stages before ``trainable_from``
  are frozen and computed once per face (:func:`emorec.experiments.prefix.shared_prefix`, shared with
  the i3D-CNN of §4.5); the cascade trains the stages from ``trainable_from`` on, per frame, the LSTM
  and its three FC layers. The frame-by-frame baseline trains the *same* stages and the same FC head
  on the same clips without the LSTM, a clip's prediction being the mean of its frames': the two
  differ only in temporal modelling.
- ``"finetune"`` (the ``paper`` profile): the whole :class:`~emorec.models.CNNLSTM` is trained on
  pixel clips, starting from the checkpoint (§4.4).

Either way the result row comes from :func:`emorec.experiments.evaluation.evaluate_splits`, and the
trained cascade is saved as a complete ``CNNLSTM`` checkpoint (``model.pt``) that
:func:`emorec.models.load_model` and ``emorec predict`` read.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from ..models import CNN2D, CNNLSTM, load_model
from ..train import TrainConfig, fit, predict
from ..train import checkpoint as ckpt
from .cache import ArtefactStore, Experiment, if_stored
from .corpus import SPLITS, Corpus
from .evaluation import best_per_label, evaluate_splits
from .prefix import (ClipMean, cached_clip_sets, file_digest, finetune_block, frozen_stage_count, pixel_clips,
                     shared_prefix, split_predictions, train_suffix)

MODULES = ("emorec.models", "emorec.train", "emorec.data.clips", "emorec.postprocess", "emorec.metrics",
           "emorec.experiments.evaluation", "emorec.experiments.prefix", "emorec.experiments.temporal")
SHARED = "shared_prefix"


# --------------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------------

def train_config(config: dict) -> TrainConfig:
    """The trainer's settings of one configuration (MSE loss as §4.4 chose, Adam, early stopping)."""
    return TrainConfig(task="regression", lr=config["lr"], batch_size=config["batch_size"],
                       epochs=config["epochs"], patience=config.get("patience", 3), seed=config["seed"],
                       loss=config.get("loss", "mse"), multiplier=config.get("multiplier", 1.0), verbose=False)


def prefix_settings(config: dict) -> tuple[list, str]:
    """(input size, trainable_from) of a configuration: with the checkpoint and the corpus, the key of
    its shared prefix (the same for the cascade and the baseline of one configuration)."""
    return list(config["input_size"]), config["trainable_from"]


def _cached_sets(config: dict, corpus: Corpus, checkpoint, store: ArtefactStore) -> dict:
    maps = shared_prefix(corpus, checkpoint, *prefix_settings(config), store)
    return cached_clip_sets(corpus, maps, config["seq_len"], config["overlap"], tolerance=config.get("tolerance", 1),
                            fusion=config["fusion"])


def build_cascade(config: dict, checkpoint) -> CNNLSTM:
    """The 2D-CNN-LSTM of a configuration, from the checkpoint's backbone (§3.3.1): stages before
    ``trainable_from`` frozen (CPU profiles) or ``finetune_from`` (default: all trained)."""
    backbone = load_model(checkpoint).config
    block = (finetune_block(config["trainable_from"]) if config.get("backbone") == SHARED
             else config.get("finetune_from", "Full"))
    return CNNLSTM(backbone=backbone["backbone"], width=backbone["width"], weights=str(checkpoint),
                   finetune_from=block, hidden_size=config["hidden_size"], dropout=config["dropout"],
                   recurrent_dropout=config["recurrent_dropout"], head_units=config["head_units"],
                   pool_size=config["pool"], seed=config["seed"])


def build_frame_model(config: dict, checkpoint) -> CNN2D:
    """The frame-by-frame baseline's 2D regression CNN: the checkpoint's backbone, the cascade's pooling
    and FC head (without the LSTM), the same stages trained (ours)."""
    backbone = load_model(checkpoint).config
    return CNN2D(backbone["backbone"], task="regression", width=backbone["width"], weights=str(checkpoint),
                 finetune_from=finetune_block(config["trainable_from"]), head_units=config["head_units"],
                 pool_size=config["pool"], seed=config["seed"])


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


def _experiment(table: str, config: dict, corpus: Corpus, checkpoint) -> Experiment:
    return Experiment(table, {**config, "checkpoint": file_digest(checkpoint)}, data=corpus.fingerprint,
                      modules=MODULES)


def _scored(corpus: Corpus, sets: dict, preds: dict, budget: dict, config: dict, work: Path) -> dict:
    row = evaluate_splits(preds, seed=config["seed"], save_to=work / "predictions.npz")
    return {**row, **budget, "clips": {s: len(sets[s]) for s in SPLITS}}


def run_cnn_lstm(config: dict, corpus: Corpus, checkpoint, store: ArtefactStore) -> dict:
    """One row of Table 2: the cascade's trainable part on the shared prefix's clips, scored (§4.4)."""
    if config.get("backbone", SHARED) != SHARED:
        return run_cnn_lstm_finetune(config, corpus, checkpoint, store)
    sets = _cached_sets(config, corpus, checkpoint, store)
    experiment = _experiment("table2", config, corpus, checkpoint)

    def run(work: Path) -> dict:
        model = build_cascade(config, checkpoint)
        _, trainee = model.split(frozen_stage_count(config["trainable_from"]))
        preds, budget = train_suffix(trainee, sets, train_config(config), corpus, work / "train")
        save_cascade(model, config["input_size"], work / "model.pt", corpus.trained_on())
        return _scored(corpus, sets, preds, budget, config, work)

    return {**store.run(experiment, run), "folder": str(store.folder(experiment))}


def run_frame_baseline(config: dict, corpus: Corpus, checkpoint, store: ArtefactStore) -> dict:
    """The frame-by-frame baseline: the cascade's trained stages and FC head on each frame of the same
    clips, a clip's prediction the mean of its frames' (ours; the paper has no such row)."""
    sets = _cached_sets(config, corpus, checkpoint, store)
    experiment = _experiment("frame_baseline", config, corpus, checkpoint)

    def run(work: Path) -> dict:
        _, frame_part = build_frame_model(config, checkpoint).split(frozen_stage_count(config["trainable_from"]))
        preds, budget = train_suffix(ClipMean(frame_part), sets, train_config(config), corpus, work / "train")
        return _scored(corpus, sets, preds, budget, config, work)

    return {**store.run(experiment, run), "folder": str(store.folder(experiment))}


def run_cnn_lstm_finetune(config: dict, corpus: Corpus, checkpoint, store: ArtefactStore) -> dict:
    """One row of Table 2 trained end to end on pixel clips from the checkpoint (the paper's setting)."""
    experiment = _experiment("table2", config, corpus, checkpoint)

    def run(work: Path) -> dict:
        model = build_cascade(config, checkpoint)
        sets = {split: pixel_clips(corpus.split(split), config["seq_len"], config["overlap"], config["input_size"],
                                   config.get("tolerance", 1), config["fusion"]) for split in SPLITS}
        settings = train_config(config)
        result = fit(model, sets["train"], sets["validation"], settings, work / "train")
        fallback = np.concatenate([r.frame_labels for r in corpus.split("train")]).mean(axis=0)
        preds = {s: split_predictions(corpus.split(s), sets[s], predict(model, sets[s], settings), fallback)
                 for s in SPLITS}
        save_cascade(model, config["input_size"], work / "model.pt", corpus.trained_on())
        row = evaluate_splits(preds, seed=config["seed"], save_to=work / "predictions.npz")
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


def with_seeds(run, config: dict, corpus: Corpus, checkpoint, store: ArtefactStore, n_seeds: int,
               first: dict | None = None) -> list[dict]:
    """A configuration's result rows for seeds ``config["seed"]`` … + ``n_seeds`` − 1 (``run``:
    :func:`run_cnn_lstm` or :func:`run_frame_baseline`; ``first``: the row of the first seed, if run
    already). Each seed is its own cached experiment (ours: the spread over seeds); while
    :func:`~emorec.experiments.cache.read_only` is active, the extra seeds not in the store are left out
    (``emorec run`` trains them)."""
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, int) or n_seeds < 1:
        raise ValueError(f"n_seeds must be an integer >= 1, got {n_seeds!r}")
    seed = int(config["seed"])
    rows = [first if first is not None else run(config, corpus, checkpoint, store)]
    more = (if_stored(run, {**config, "seed": seed + k}, corpus, checkpoint, store) for k in range(1, n_seeds))
    return rows + [row for row in more if row is not None]


#: What the frame-by-frame baseline takes from the cascade it is compared with.
BASELINE_KEYS = ("init", "fps", "seq_len", "overlap", "fusion")


def baseline_cascades(chosen: list[dict], inits, fps_values) -> list[dict]:
    """The picks of :func:`~emorec.experiments.evaluation.best_per_label` the frame-by-frame baseline
    is trained beside: the cascade chosen per label for the last initialisation (RAF-DB) at the first
    frame rate (ours; chapter 4.4 and ``emorec run`` both read this)."""
    return [c for c in chosen if c["init"] == inits[-1] and c["fps"] == fps_values[0]]


def baseline_config(base: dict, cascade: dict) -> dict:
    """The baseline's configuration beside a chosen cascade's row: ``base`` settings with the cascade's
    initialisation, frame rate and windows, so both train and score on the same clips (ours)."""
    return {**base, **{k: cascade[k] for k in BASELINE_KEYS}}


def cascade_checkpoint(row_folder: Path) -> Path:
    """The complete CNN-LSTM checkpoint written by a Table 2 run."""
    return Path(row_folder) / "model.pt"


__all__ = ["BASELINE_KEYS", "baseline_cascades", "baseline_config", "best_per_label", "build_cascade",
           "build_frame_model", "cascade_checkpoint",
           "prefix_settings", "run_cnn_lstm", "run_cnn_lstm_finetune", "run_frame_baseline",
           "table2_configurations", "table2_grid", "with_seeds"]
