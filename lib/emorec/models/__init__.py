"""Models of §3.1 and §3.3: 2D backbones with the paper's heads, the 2D-CNN-LSTM and the i3D-CNN.

All models take RGB in [0, 1] (images [N, 3, H, W] or clips [N, 3, T, H, W]), normalise it as their
weights expect, and carry ``config``, a plain dict of their constructor arguments.
"""
from .backbones import (BACKBONES, BLOCKS, DEFAULT_INPUT_SIZE, FINETUNE_OPTIONS, NORMALIZATIONS, PAPER_NAMES,
                        STAGES, EmoModule, Normalize, build_stages, count_parameters, freeze_stages,
                        scaled_channels)
from .cnn2d import CNN2D, pretrained_stages
from .cnn_lstm import CNNLSTM, LSTMRegressor
from .factory import KINDS, build_model, load_model
from .i3d import PRESETS, I3D, parameter_counts
from .weights import imagenet_weights_file, load_pretrained, vggface_to_torchvision, vggface_weights_file

__all__ = ["BACKBONES", "BLOCKS", "DEFAULT_INPUT_SIZE", "FINETUNE_OPTIONS", "NORMALIZATIONS", "PAPER_NAMES",
           "STAGES", "EmoModule", "Normalize", "build_stages", "count_parameters", "freeze_stages",
           "scaled_channels", "CNN2D", "pretrained_stages", "CNNLSTM", "LSTMRegressor", "PRESETS", "I3D",
           "parameter_counts", "KINDS", "build_model", "load_model", "imagenet_weights_file", "load_pretrained", "vggface_to_torchvision",
           "vggface_weights_file"]
