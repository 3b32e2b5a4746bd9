"""The checkpoint a prediction runs: the model and what its checkpoint records (§3.3 models, §6; ours)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch

TARGETS = ("valence", "arousal")
CROP_SIZE = (100, 80)  # §3.2.1: faces cropped to 100×80 (the corpus cache's size; models resize)


@dataclass
class Predictor:
    """A loaded checkpoint ready to predict: the model and the settings it was trained with."""

    checkpoint: Path
    model: torch.nn.Module
    kind: str  # "cnn_lstm" | "i3d" | "cnn2d"
    input_size: tuple[int, int]
    trained: dict = field(default_factory=dict)  # seq_len, fps, overlap, tolerance as recorded
    postprocess: dict | None = None  # per target, the §3.4 parameters recorded beside the checkpoint
    trained_on: dict | None = None  # the data it was trained on, as the checkpoint records it

    @property
    def multiplier(self) -> float:
        return float(getattr(self.model, "multiplier", 1.0))

    def training_data(self) -> str:
        """The data the model was trained on, in words (ours): "not recorded" for a checkpoint
        without the entry (older, or a user's)."""
        t = self.trained_on
        if not t:
            return "not recorded"
        faces_kind = "synthetic faces only" if t.get("synthetic") else "real faces"
        return f"{t.get('data', '?')} ({faces_kind}; commit {t.get('commit', 'unknown')})"

    def synthetic_warning(self) -> str | None:
        """The one-line warning for a model trained on synthetic faces only, else None (ours)."""
        if not (self.trained_on or {}).get("synthetic"):
            return None
        return (f"warning: {self.kind} {self.checkpoint} was trained on synthetic faces only; its output on "
                f"real faces is not a measurement of their emotion")


def _read_json(path: Path) -> dict | None:
    """A JSON object written beside a checkpoint, None when there is none; ValueError naming a
    malformed one (it would otherwise silently change the settings used)."""
    if not path.exists():
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: malformed JSON beside the checkpoint ({err})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object beside the checkpoint, found {type(obj).__name__}")
    return obj


def _trained_settings(path: Path, config) -> dict:
    """``seq_len, fps, overlap, tolerance`` of a ``config.json``'s ``config``; ValueError naming the file
    for a missing mapping or a value of the wrong kind."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ValueError(f"{path}: 'config' must be a mapping, found {type(config).__name__}")
    kinds = {"seq_len": (int,), "fps": (int, float), "overlap": (int, float), "tolerance": (int, float)}
    trained = {}
    for key, types in kinds.items():
        value = config.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, types) or not math.isfinite(value):
            raise ValueError(f"{path}: 'config.{key}' is {value!r}, not a number of the kind it needs")
        trained[key] = value
    return trained


def load_predictor(checkpoint) -> Predictor:
    """Load a checkpoint of the book for prediction (§3.3 models; the settings of §3.2 it was trained with).

    Raises FileNotFoundError for a missing file and ValueError, naming the file, for a file that is
    not one of our checkpoints, is corrupt, holds a model that does not predict valence and arousal
    (e.g. Table 1's expression classifiers), or has a malformed ``config.json`` / ``result.json``
    beside it."""
    from ..models import load_model
    from ..train.checkpoint import load_checkpoint

    checkpoint = Path(checkpoint)
    saved = load_checkpoint(checkpoint)
    model = load_model(checkpoint, saved)
    kind = model.config.get("kind")
    if kind == "cnn2d" and model.config.get("task") != "regression":
        raise ValueError(f"checkpoint {checkpoint} is a {model.config.get('num_outputs')}-class expression "
                         f"classifier (Table 1), not a valence/arousal model")
    folder = checkpoint.parent
    config_path = folder / "config.json"
    config = (_read_json(config_path) or {}).get("config")
    trained = _trained_settings(config_path, config)
    size = saved.get("input_size") or (config or {}).get("input_size") or CROP_SIZE
    result = _read_json(folder / "result.json") or {}
    recorded = {t: result.get(f"{t}_postprocess") for t in TARGETS}
    postprocess = recorded if all(isinstance(v, dict) for v in recorded.values()) else None
    trained_on = saved.get("trained_on")
    return Predictor(checkpoint, model, kind, (int(size[0]), int(size[1])), trained, postprocess,
                     dict(trained_on) if isinstance(trained_on, dict) else None)



def per_label_checkpoints(checkpoint) -> dict[str, Path]:
    """``{label: checkpoint}`` for one checkpoint, or a mapping that names one for each label (ours)."""
    if isinstance(checkpoint, Mapping):
        if set(checkpoint) != set(TARGETS):
            raise ValueError(f"checkpoints must name a model for each of {TARGETS}, got {sorted(checkpoint)}")
        return {t: Path(checkpoint[t]) for t in TARGETS}
    return {t: Path(checkpoint) for t in TARGETS}


def load_predictors(checkpoint, predictor: Predictor | None = None) -> dict[str, Predictor]:
    """Per label, its loaded model (ours): each distinct checkpoint loaded once; ``predictor``
    (already loaded) serves both labels."""
    if predictor is not None:
        return {t: predictor for t in TARGETS}
    paths = per_label_checkpoints(checkpoint)
    loaded = {path: load_predictor(path) for path in dict.fromkeys(paths.values())}
    return {t: loaded[paths[t]] for t in TARGETS}

