"""The cascaded 2D-CNN-LSTM of §3.3.1 (Figure 6).

Each frame goes through the 2D backbone's conv stages and is average-pooled to ``pool_size``
(default: global, one vector per frame; any input size); the sequence of frame features feeds a
one-layer LSTM (1,024 units in the paper) whose last hidden state goes through three FC layers
(512 → 128 → 2: valence, arousal).

Dropout, in Keras' sense (the paper's "dropout (20%) and recurrent dropout (20%)"):

* input dropout: one mask per sequence over the feature vector, the same at every time step
  ("locked" dropout);
* recurrent dropout: one mask on h_{t−1} per gate (Keras draws one per gate), the same at every step.
  It is applied as a column mask on ``weight_hh`` (rows of gate g, columns j scaled by m_g[j]) run
  through ``torch.func.functional_call``, so ``nn.LSTM`` keeps its fused (cuDNN) kernel. A weight mask
  is shared by the sequences of a mini-batch, where Keras draws one per sequence: the price of keeping
  the fused kernel.

Initialisation ("random and uniform distribution", §3.3.1): all LSTM weights uniform in
[−``init_bound``, ``init_bound``] (0.05, Keras' ``RandomUniform`` default), biases zero except the
forget gate's input bias, 1 (Keras' ``unit_forget_bias``).

Parts: ``encode_frames`` (the CNN per frame, [N, C, T, H, W] → [N, T, F]), ``temporal`` (an
``nn.Module`` on [N, T, F], sharing its parameters with the model) and ``split(n_frozen)``, the frozen
prefix of stages (run once per frame and cached by the CPU profiles) and the trainable rest.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from .backbones import EmoModule, PerFrame, mlp_head, per_frame, seeded, split_stages, stage_out_channels
from .cnn2d import _weights_config, pretrained_stages


def _bernoulli_mask(shape, p: float, generator=None, device=None) -> torch.Tensor:
    keep = torch.bernoulli(torch.full(shape, 1.0 - p), generator=generator)
    return (keep / (1.0 - p)).to(device)


class LSTMRegressor(nn.Module):
    """LSTM (Keras-style input and recurrent dropout) → FC head, on feature sequences [N, T, F] (§3.3.1)."""

    def __init__(self, input_size: int, hidden_size: int = 1024, dropout: float = 0.2,
                 recurrent_dropout: float = 0.2, head_units=(512, 128), num_outputs: int = 2,
                 init_bound: float = 0.05):
        super().__init__()
        for name, p in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {p}")
        self.dropout, self.recurrent_dropout = dropout, recurrent_dropout
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.head = mlp_head(hidden_size, head_units, num_outputs)
        self.reset_lstm(init_bound)

    def reset_lstm(self, init_bound: float) -> None:
        """Uniform weights in [−bound, bound], zero biases, forget-gate bias 1 (§3.3.1)."""
        h = self.lstm.hidden_size
        with torch.no_grad():
            for w in (self.lstm.weight_ih_l0, self.lstm.weight_hh_l0):
                w.uniform_(-init_bound, init_bound)
            self.lstm.bias_ih_l0.zero_()
            self.lstm.bias_hh_l0.zero_()
            self.lstm.bias_ih_l0[h:2 * h] = 1.0  # PyTorch gate order: input, forget, cell, output

    def sample_masks(self, batch_size: int, generator=None, device=None):
        """Draw (input_mask [N, F], recurrent_mask [4, H]): 0 or 1/(1−p), one draw per sequence/batch."""
        return (_bernoulli_mask((batch_size, self.lstm.input_size), self.dropout, generator, device),
                _bernoulli_mask((4, self.lstm.hidden_size), self.recurrent_dropout, generator, device))

    def forward(self, feats: torch.Tensor, input_mask=None, recurrent_mask=None,
                generator=None) -> torch.Tensor:
        """Predict from features [N, T, F]. In training, masks are drawn (from ``generator`` or the
        global RNG) unless given; in eval mode there is no dropout and masks are ignored."""
        params = {}
        if self.training:
            drawn = self.sample_masks(feats.shape[0], generator, feats.device)
            input_mask = drawn[0] if input_mask is None else input_mask
            recurrent_mask = drawn[1] if recurrent_mask is None else recurrent_mask
            feats = feats * input_mask.to(feats.dtype)[:, None, :]
            h = self.lstm.hidden_size
            columns = recurrent_mask.to(feats.dtype)[:, None, :].expand(4, h, h).reshape(4 * h, h)
            params["weight_hh_l0"] = self.lstm.weight_hh_l0 * columns
        _, (h_n, _) = functional_call(self.lstm, params, (feats,))
        return self.head(h_n[-1])


class FrameEncoder(nn.Module):
    """The per-frame part of a :class:`CNNLSTM` as a module (shared parameters): clips → [N, T, F]."""

    def __init__(self, normalize: nn.Module, features: nn.Module, pool: nn.Module):
        super().__init__()
        self.normalize, self.features, self.pool = normalize, features, pool

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.features(self.normalize(frames))), 1)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return per_frame(self.encode, clips)


class CascadeSuffix(nn.Module):
    """The trainable end of a :class:`CNNLSTM` (shared modules): the stages after the frozen prefix, per
    frame, then pooling and the LSTM with its head. Input: the prefix's maps [N, C, T, h, w]."""

    def __init__(self, stages: nn.Module, pool: nn.Module, temporal: nn.Module):
        super().__init__()
        self.stages, self.pool, self.temporal = stages, pool, temporal

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.stages(frames)), 1)

    def forward(self, maps: torch.Tensor, **masks) -> torch.Tensor:
        return self.temporal(per_frame(self.encode, maps), **masks)


class CNNLSTM(EmoModule):
    """2D-CNN-LSTM of §3.3.1 (Figure 6): clips [N, 3, T, H, W] (RGB in [0, 1]) → [N, 2].

    ``normalize`` → ``features`` (the 2D backbone's stages, per frame) → ``pool`` → ``temporal``
    (:class:`LSTMRegressor`). Weights and freezing as :class:`~emorec.models.cnn2d.CNN2D`.
    """

    def __init__(self, backbone: str = "vgg16", width: float = 1.0, weights=None, weights_path=None,
                 finetune_from: str = "Full", hidden_size: int = 1024, dropout: float = 0.2,
                 recurrent_dropout: float = 0.2, head_units=(512, 128), pool_size=(1, 1),
                 init_bound: float = 0.05, normalization=None, seed: int = 0):
        super().__init__()
        self.config = dict(kind="cnn_lstm", backbone=backbone, width=width,
                           weights=_weights_config(weights), finetune_from=finetune_from,
                           hidden_size=hidden_size, dropout=dropout, recurrent_dropout=recurrent_dropout,
                           head_units=list(head_units), pool_size=list(pool_size), init_bound=init_bound,
                           normalization=normalization, seed=seed)
        with seeded(seed):
            self.normalize, self.features = pretrained_stages(backbone, width, weights, weights_path,
                                                              finetune_from, normalization)
            self.pool = nn.AdaptiveAvgPool2d(tuple(pool_size))
            n_feat = stage_out_channels(self.features) * pool_size[0] * pool_size[1]
            self.temporal = LSTMRegressor(n_feat, hidden_size, dropout, recurrent_dropout, head_units,
                                          2, init_bound)

    @property
    def feature_size(self) -> int:
        return self.temporal.lstm.input_size

    def feature_extractor(self) -> FrameEncoder:
        """The frame encoder as a module sharing this model's parameters (for feature caching)."""
        return FrameEncoder(self.normalize, self.features, self.pool)

    def encode_frames(self, clips: torch.Tensor) -> torch.Tensor:
        """Per-frame CNN features: [N, C, T, H, W] → [N, T, F] (cacheable when the CNN is frozen)."""
        return self.feature_extractor()(clips)


    def split(self, n_frozen: int) -> tuple[nn.Module, nn.Module]:
        """(normalisation + stages 1 … ``n_frozen`` per frame, the rest + pool + LSTM + head), sharing
        this model's modules: ``suffix(prefix(clips)) == model(clips)`` (ours)."""
        prefix, rest = split_stages(self.normalize, self.features, n_frozen)
        return PerFrame(prefix), CascadeSuffix(rest, self.pool, self.temporal)

    def forward_features(self, feats: torch.Tensor, **masks) -> torch.Tensor:
        """The temporal part alone, on features [N, T, F] from :meth:`encode_frames`."""
        return self.temporal(feats, **masks)

    def forward(self, clips: torch.Tensor, **masks) -> torch.Tensor:
        return self.temporal(self.encode_frames(clips), **masks)
