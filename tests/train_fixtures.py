"""Tiny models and datasets for the emorec.train tests; also a script run as a child process.

    python tests/train_fixtures.py fit RUN_DIR EPOCHS DELAY   # one regression fit (killed by a test)
    torchrun --nproc_per_node=2 tests/train_fixtures.py ddp OUT_DIR
"""

from __future__ import annotations

import faulthandler
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from emorec.train import TrainConfig, fit


class NoisyRegression(Dataset):
    """(x, [valence, arousal]) with x jittered on each read by NumPy *and* Python RNGs.

    The jitter makes the result depend on dataset-side RNG state, so repeatability and resume
    tests also cover the NumPy/`random` seeding and restoring. ``delay`` slows reads down so a
    test can kill a run between two checkpoints.
    """

    def __init__(self, n: int = 64, seed: int = 0, noise: float = 0.05, delay: float = 0.0, sign: float = 1.0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 6, generator=g)
        w = torch.randn(6, 2, generator=torch.Generator().manual_seed(1234))
        self.y = sign * torch.tanh(self.x @ w * 0.4)
        self.noise, self.delay = noise, delay

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        if self.delay:
            time.sleep(self.delay)
        jitter = np.random.normal(0.0, self.noise, size=6).astype(np.float32) + self.noise * random.random()
        return self.x[i] + torch.from_numpy(jitter), self.y[i]


class TinyRegressor(nn.Module):
    def __init__(self, dropout: float = 0.2, width: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, width), nn.Tanh(), nn.Dropout(dropout), nn.Linear(width, 2))
        self.config = {"name": "tiny", "width": width, "dropout": dropout}

    def forward(self, x):
        return self.net(x)


class TinyImages(Dataset):
    """Class-imbalanced 1x8x8 images whose class is the position of a bright square."""

    def __init__(self, counts=(12, 6, 2), seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.labels = [c for c, k in enumerate(counts) for _ in range(k)]
        self.x = 0.1 * torch.rand(len(self.labels), 1, 8, 8, generator=g)
        for i, c in enumerate(self.labels):
            self.x[i, 0, 1 + 2 * c: 3 + 2 * c, 2:6] += 1.0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.x[i], self.labels[i]


class TinyConvNet(nn.Module):
    def __init__(self, n_classes: int = 3):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, n_classes))

    def forward(self, x):
        return self.net(x)


def regression_config(**overrides) -> TrainConfig:
    base = dict(task="regression", lr=5e-3, batch_size=8, epochs=3, patience=None, seed=7,
                restore_best=False, verbose=False, progress=False)
    return TrainConfig(**{**base, **overrides})


def fit_child(run_dir: str, epochs: int, delay: float) -> None:
    torch.manual_seed(0)
    model = TinyRegressor()
    fit(model, NoisyRegression(64, seed=0, delay=delay), NoisyRegression(24, seed=1, delay=delay),
        regression_config(epochs=epochs), run_dir)


def ddp_config(**overrides) -> TrainConfig:
    # No dropout: each process would draw its own masks, and the 1-process run others.
    return regression_config(batch_size=8, **overrides)


def ddp_datasets():
    return NoisyRegression(64, seed=0, noise=0.0), NoisyRegression(31, seed=1, noise=0.0)


def ddp_child(out_dir: str) -> None:
    """Under torchrun: a 2-epoch run, and a 1-epoch run resumed to 2 epochs; saves each rank's weights."""
    import torch.distributed as dist

    out, rank = Path(out_dir), int(os.environ["RANK"])
    train, val = ddp_datasets()
    torch.manual_seed(0)
    model = TinyRegressor(dropout=0.0)
    fit(model, train, val, ddp_config(epochs=2), out / "full")
    torch.save(model.state_dict(), out / f"full_rank{rank}.pt")

    torch.manual_seed(0)
    fit(TinyRegressor(dropout=0.0), train, val, ddp_config(epochs=1), out / "resumed")
    torch.manual_seed(99)  # a different init: resuming must load everything from the checkpoint
    model = TinyRegressor(dropout=0.0)
    fit(model, train, val, ddp_config(epochs=2), out / "resumed")
    torch.save(model.state_dict(), out / f"resumed_rank{rank}.pt")
    assert dist.is_initialized() and dist.get_backend() == "gloo"  # one group, reused by every fit


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "fit":
        fit_child(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    elif mode == "ddp":
        faulthandler.dump_traceback_later(100, exit=True)  # a hung collective fails the test with stacks
        ddp_child(sys.argv[2])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
