"""Rebuild a model from its configuration, or from a checkpoint alone.

Every model of :mod:`emorec.models` carries ``config``, the plain dict of its constructor arguments
(with ``kind`` naming the class), and :func:`emorec.train.fit` stores it in ``best.pt`` as
``model_config``. So a checkpoint is enough to predict with (§3.3 models; the ``predict`` path).
"""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from .cnn2d import CNN2D
from .cnn_lstm import CNNLSTM
from .i3d import I3D

KINDS = {"cnn2d": CNN2D, "cnn_lstm": CNNLSTM, "i3d": I3D}


def build_model(config: dict, pretrained: bool = True) -> nn.Module:
    """The model described by ``config`` (``{"kind": "cnn2d" | "cnn_lstm" | "i3d", ...}``).

    With ``pretrained=False`` the pre-trained weights named in the configuration are not loaded
    (used when a checkpoint's own weights are about to replace them, so the published weight
    files need not be present)."""
    config = dict(config)
    kind = config.pop("kind", None)
    if kind not in KINDS:
        raise ValueError(f"model config needs 'kind' in {sorted(KINDS)}, got {kind!r}")
    if not pretrained:
        config["weights"] = None
        config.pop("weights_path", None)
    try:
        return KINDS[kind](**config)
    except TypeError as err:
        raise ValueError(f"model config does not fit {KINDS[kind].__name__}: {err}") from None


def load_model(checkpoint: str | Path, saved: dict | None = None) -> nn.Module:
    """The model saved in ``checkpoint`` (a ``best.pt`` of :func:`emorec.train.fit`), in eval mode.

    ``saved``: the checkpoint's contents when the caller has read them already (read once)."""
    from ..train.checkpoint import load_checkpoint

    if saved is None:
        saved = load_checkpoint(checkpoint)
    config = saved.get("model_config")
    if not isinstance(config, dict):
        raise ValueError(f"checkpoint {checkpoint} holds no model configuration (was it written by "
                         f"emorec.train.fit from an emorec model?)")
    model = build_model(config, pretrained=False)
    try:
        model.load_state_dict(saved["model"])
    except RuntimeError as err:
        raise ValueError(f"checkpoint {checkpoint}: weights do not fit the model they describe: {err}") from None
    return model.eval()
