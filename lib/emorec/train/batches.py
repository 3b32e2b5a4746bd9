"""Datasets and batches as the training loop sees them: ``(input, target)`` pairs."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import Dataset, Subset


def split_batch(batch) -> tuple[torch.Tensor, torch.Tensor]:
    """A collated item must be ``(input, target)``; extra fields (ids, times) are ignored."""
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    raise ValueError("dataset items must be (input, target) tuples; got "
                     f"{type(batch).__name__} of length {len(batch) if hasattr(batch, '__len__') else '?'}")


def to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if channels_last and x.ndim in (4, 5):
        x = x.contiguous(memory_format=torch.channels_last if x.ndim == 4 else torch.channels_last_3d)
    return x


def model_to_channels_last(model: torch.nn.Module) -> None:
    """channels_last for 4-D and channels_last_3d for 5-D weights (2-D and inflated convs)."""
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 4:
                p.data = p.data.contiguous(memory_format=torch.channels_last)
            elif p.ndim == 5:
                p.data = p.data.contiguous(memory_format=torch.channels_last_3d)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: NumPy and ``random`` follow the worker's torch seed.

    The DataLoader seeds each worker's torch RNG from its own generator; deriving the other two
    from it makes dataset-side randomness repeatable and different across workers and epochs.
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def dataset_labels(dataset: Dataset) -> np.ndarray:
    """Integer class labels of a classification dataset.

    Uses a ``targets`` or ``labels`` attribute when the dataset has one (no decoding of images),
    looks through ``Subset``, and otherwise reads every item's target.
    """
    if isinstance(dataset, Subset):
        return dataset_labels(dataset.dataset)[np.asarray(dataset.indices)]
    for name in ("targets", "labels"):
        values = getattr(dataset, name, None)
        if values is not None and not callable(values):
            arr = np.asarray(values)
            if arr.ndim == 1 and len(arr) == len(dataset):
                return arr.astype(np.int64)
    return np.asarray([int(split_batch(dataset[i])[1]) for i in range(len(dataset))], dtype=np.int64)


def class_weights(labels, num_classes: int | None = None) -> torch.Tensor:
    """Inverse-frequency class weights of §4.3: ``w_c = N / (C * n_c)``.

    Every class then carries the same total weight ``N / C`` in the loss ("classes with few
    samples can affect the weights of the model to the same extent as classes with many more
    samples"). A class absent from ``labels`` gets weight 0 (it has no sample to weigh).
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ValueError("labels must be non-negative integers")
    n_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    if labels.max() >= n_classes:
        raise ValueError(f"label {int(labels.max())} is out of range for {n_classes} classes")
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    weights = np.zeros(n_classes)
    present = counts > 0
    weights[present] = labels.size / (n_classes * counts[present])
    return torch.tensor(weights, dtype=torch.float32)
