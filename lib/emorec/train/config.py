"""Training configuration and result records (paper §4.3-4.5)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

TASKS = ("classification", "regression")
LOSSES = {"classification": ("cross_entropy",), "regression": ("mse", "ccc")}

# Fields that may change between a run and its resumption without changing what is computed
# (``epochs`` may grow to extend a finished run).
RUNTIME_FIELDS = frozenset({"epochs", "progress", "verbose", "device"})


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (§4.3 for RAF-DB, §4.4-4.5 for SEWA-DB).

    ``batch_size`` is the *global* batch: under ``torchrun`` each of the W processes takes
    ``batch_size / W`` samples per step and DDP averages their gradients, so a run's result does
    not depend on how many processes share it.
    """

    task: str = "regression"
    lr: float = 1e-5  # §4.3: fixed learning rate 1e-5, Adam
    weight_decay: float = 0.0
    batch_size: int = 16  # §4.3: 16 for RAF-DB; §4.5: 8 for i3D
    epochs: int = 10
    patience: int | None = 5  # epochs without improvement of the validation metric; None: never stop
    min_delta: float = 0.0
    loss: str = "auto"  # regression: "mse" (§4.4) | "ccc"; classification: "cross_entropy"
    multiplier: float = 1.0  # §3.3.2: targets x m in training, predictions / m before any metric
    class_weighting: bool = True  # §4.3: inverse class frequency (classification only)
    num_classes: int | None = None  # None: largest training label + 1
    augment: bool = False  # §4.3: rotation, horizontal flip, brightness
    rotation_deg: float = 10.0
    flip_p: float = 0.5
    brightness: float = 0.2  # gain drawn in [1 - b, 1 + b]
    drop_last: bool = False  # drop a last, smaller training batch (BatchNorm and the CCC loss need >= 2)
    num_workers: int = 0
    seed: int = 0
    device: str = "auto"  # "auto": CUDA when available
    amp: bool = True  # bf16 autocast, CUDA only
    channels_last: bool = True  # CUDA only
    grad_clip: float | None = None  # max global gradient norm
    restore_best: bool = True  # leave the best epoch's weights in the model when fit returns
    target_names: tuple[str, ...] = ("valence", "arousal")  # regression output columns, in order
    progress: bool | None = None  # tqdm bars; None: only when stderr is a terminal
    verbose: bool = True  # one line per epoch

    def __post_init__(self) -> None:
        self.target_names = tuple(self.target_names)
        _check(self.task in TASKS, f"task must be one of {TASKS}, got {self.task!r}")
        allowed = LOSSES[self.task]
        _check(self.loss == "auto" or self.loss in allowed,
               f"loss {self.loss!r} is not available for task {self.task!r}; choose 'auto' or one of {allowed}")
        _check(self.lr > 0 and math.isfinite(self.lr), f"lr must be positive, got {self.lr}")
        _check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _check(_is_int(self.batch_size) and self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _check(_is_int(self.epochs) and self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _check(self.patience is None or (_is_int(self.patience) and self.patience >= 1),
               f"patience must be None or >= 1, got {self.patience}")
        _check(self.min_delta >= 0, f"min_delta must be >= 0, got {self.min_delta}")
        _check(self.multiplier > 0 and math.isfinite(self.multiplier),
               f"multiplier must be positive, got {self.multiplier}")
        _check(self.task == "regression" or self.multiplier == 1.0,
               "multiplier applies to regression targets only; leave it at 1.0 for classification")
        _check(self.num_classes is None or (_is_int(self.num_classes) and self.num_classes >= 2),
               f"num_classes must be None or >= 2, got {self.num_classes}")
        _check(0 <= self.flip_p <= 1, f"flip_p must lie in [0, 1], got {self.flip_p}")
        _check(0 <= self.brightness < 1, f"brightness must lie in [0, 1), got {self.brightness}")
        _check(self.rotation_deg >= 0, f"rotation_deg must be >= 0, got {self.rotation_deg}")
        _check(_is_int(self.num_workers) and self.num_workers >= 0, f"num_workers must be >= 0, got {self.num_workers}")
        _check(self.grad_clip is None or self.grad_clip > 0, f"grad_clip must be None or > 0, got {self.grad_clip}")
        _check(len(self.target_names) >= 1, "target_names must name at least one regression output")

    @property
    def loss_name(self) -> str:
        """The loss actually used: ``"auto"`` is MSE for regression (§4.4), cross-entropy otherwise."""
        if self.loss != "auto":
            return self.loss
        return "mse" if self.task == "regression" else "cross_entropy"

    @property
    def metric_name(self) -> str:
        """Validation metric for early stopping: mean CCC of the targets (§4.2), or accuracy (§4.3)."""
        return "CCC_mean" if self.task == "regression" else "accuracy"

    def to_dict(self) -> dict:
        """Plain types only, so checkpoints load with ``torch.load(..., weights_only=True)``."""
        d = dataclasses.asdict(self)
        d["target_names"] = list(self.target_names)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s): {sorted(unknown)}")
        return cls(**d)


@dataclass
class TrainResult:
    """What :func:`emorec.train.fit` returns: per-epoch history and where the weights are."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0  # 1-based; 0 when no epoch ran
    best_metric: float = float("nan")
    metric_name: str = ""
    stopped_early: bool = False
    best_path: Path | None = None
    checkpoint_path: Path | None = None


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)
