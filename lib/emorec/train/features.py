"""Feature caching for frozen backbones (CPU profiles; DESIGN §4 "frozen backbones with cached features")."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm import tqdm

from emorec.train.batches import split_batch
from emorec.train.distributed import resolve_device


def precompute_features(extractor: torch.nn.Module, dataset: Dataset, batch_size: int = 32,
                        device: str = "auto", progress: bool = False) -> TensorDataset:
    """Run a frozen ``extractor`` once over ``dataset``; return ``(features, targets)`` as a TensorDataset.

    When a backbone is frozen (the "convolution block" from which §4.3 starts fine-tuning lies
    above it), its output never changes during training, so the trainable head can be fitted on
    the cached features with :func:`emorec.train.fit` at a fraction of the cost. The extractor
    runs in eval mode without gradients; targets are kept as given. Random augmentation cannot
    be combined with a cache (each epoch would need new features).
    """
    if len(dataset) == 0:
        raise ValueError("dataset is empty")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dev = resolve_device(device)
    was_training = extractor.training
    extractor.to(dev).eval()
    feats, targets = [], []
    try:
        with torch.no_grad():
            for batch in tqdm(DataLoader(dataset, batch_size=batch_size), desc="features", disable=not progress):
                x, y = split_batch(batch)
                feats.append(extractor(x.to(dev)).float().cpu())
                targets.append(y)
    finally:
        extractor.train(was_training)
    return TensorDataset(torch.cat(feats), torch.cat(targets))
