"""Frame-level 2D-CNNs of §3.1 (Figure 2): a backbone's five stages plus the paper's FC head.

Classification (RAF-DB, 7 emotions): FC 512 → FC 128 → 7. Regression (SEWA, valence and arousal):
the same head ending in 2 outputs. Inputs are RGB in [0, 1], 100×80 by default (§3.2) but any size
works: the last feature map is average-pooled to ``pool_size`` before the head (default (1, 1),
global average pooling; the paper flattens the last map, which ``pool_size=(3, 2)`` reproduces for
VGG at 100×80, where conv5's map is exactly 3×2).
"""
from __future__ import annotations

import torch
from torch import nn

from .backbones import (EmoModule, Normalize, PooledHead, build_stages, check_backbone, freeze_stages,
                        mlp_head, seeded, split_stages, stage_out_channels)
from .weights import load_pretrained

TASKS = {"classification": 7, "regression": 2}


def pretrained_stages(backbone: str, width: float = 1.0, weights=None, weights_path=None,
                      finetune_from: str = "Full", normalization=None) -> tuple[Normalize, nn.Sequential]:
    """Build a backbone's stages, load its weights, freeze the early stages (§3.1, Figure 2).

    Returns ``(normalize, stages)``: the input normalisation that goes with the weights (ImageNet
    statistics, VGG-Face's 0..255 mean subtraction, or the one stored in our checkpoint; override with
    ``normalization``) and ``Sequential(conv1, …, conv5)``. Call inside :class:`seeded`.
    """
    check_backbone(backbone)
    stages = build_stages(backbone, width)
    normalize = Normalize("imagenet")
    kind = load_pretrained(normalize, stages, backbone, width, weights, weights_path)
    if normalization is not None:
        normalize = Normalize(normalization)
    elif kind in ("imagenet", "vggface"):
        normalize = Normalize(kind)
    freeze_stages(stages, finetune_from)
    return normalize, stages


def _weights_config(weights):
    return None if weights is None else str(weights)


class CNN2D(EmoModule):
    """A 2D-CNN for single frames (§3.1): ``normalize`` → ``features`` (conv1 … conv5) → pool → ``head``.

    Input [N, 3, H, W] RGB in [0, 1]; output [N, 7] logits (classification) or [N, 2]
    (valence, arousal). ``finetune_from``: "Full", "Conv_2_1" … "Conv_5_1" (Table 1) or "Frozen".
    ``config`` holds the constructor arguments.
    """

    def __init__(self, backbone: str = "vgg16", task: str = "classification", num_outputs=None,
                 width: float = 1.0, weights=None, weights_path=None, finetune_from: str = "Full",
                 head_units=(512, 128), pool_size=(1, 1), dropout: float = 0.0, normalization=None,
                 seed: int = 0):
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task must be one of {tuple(TASKS)}, got {task!r}")
        num_outputs = TASKS[task] if num_outputs is None else int(num_outputs)
        self.config = dict(kind="cnn2d", backbone=backbone, task=task, num_outputs=num_outputs,
                           width=width, weights=_weights_config(weights), finetune_from=finetune_from,
                           head_units=list(head_units), pool_size=list(pool_size), dropout=dropout,
                           normalization=normalization, seed=seed)
        with seeded(seed):
            self.normalize, self.features = pretrained_stages(backbone, width, weights, weights_path,
                                                              finetune_from, normalization)
            self.pool = nn.AdaptiveAvgPool2d(tuple(pool_size))
            n_in = stage_out_channels(self.features) * pool_size[0] * pool_size[1]
            self.head = mlp_head(n_in, head_units, num_outputs, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.pool(self.features(self.normalize(x))), 1))

    def split(self, n_frozen: int) -> tuple[nn.Module, nn.Module]:
        """(normalisation + stages 1 … ``n_frozen``, the rest + pool + head): ``suffix(prefix(x)) ==
        model(x)``, both sharing this model's modules (ours)."""
        prefix, rest = split_stages(self.normalize, self.features, n_frozen)
        return prefix, PooledHead(rest, self.pool, self.head)
