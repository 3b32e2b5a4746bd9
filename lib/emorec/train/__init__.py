"""Training, checkpoints, resume and DDP for the models of §4.3-4.5 (DESIGN §6-7).

Model-agnostic: :func:`fit` takes any ``nn.Module`` and torch Datasets whose items are
``(input, target)``: a class index for classification (RAF-DB, §4.3), a vector of
``config.target_names`` values (valence, arousal) for regression (SEWA-DB, §4.4-4.5).
"""

from emorec.train.augment import augment_batch
from emorec.train.batches import class_weights, dataset_labels
from emorec.train.checkpoint import load_checkpoint, load_weights
from emorec.train.config import TrainConfig, TrainResult
from emorec.train.features import precompute_features
from emorec.train.loop import evaluate, fit, predict

__all__ = [
    "TrainConfig",
    "TrainResult",
    "fit",
    "predict",
    "evaluate",
    "class_weights",
    "dataset_labels",
    "augment_batch",
    "load_checkpoint",
    "load_weights",
    "precompute_features",
]
