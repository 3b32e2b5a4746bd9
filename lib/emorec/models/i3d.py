"""The inflated 3D-CNN of §3.3.2 (Figure 8, Table 3).

A 2D backbone (VGG-11/16 ± BN, ResNet50) with its weights is inflated (:func:`emorec.inflation.inflate`),
then global average pooling over time and space and two FC layers give (valence, arousal).

Table 3's options: inflation (copied / centered), initialisation of the non-centre slices (zero /
random; no effect on copied kernels, whose slices are all copies), masking of the centre slice,
temporal dilation per block and the target multiplier. The paper's four dilation blocks are
conv2 … conv5 (ResNet50: conv2_x … conv5_x); conv1 (VGG's first stage, ResNet's stem) keeps
dilation 1. The multiplier is a training-time target scaling: the trainer multiplies targets by
``model.multiplier`` and divides predictions by it before any metric (the network itself does not).
"""
from __future__ import annotations

import torch
from torch import nn

from ..inflation import inflate
from collections import OrderedDict

from .backbones import EmoModule, PooledHead, count_parameters, mlp_head, seeded, split_stages, stage_out_channels
from .cnn2d import CNN2D, _weights_config, pretrained_stages

#: Table 3's two configurations.
PRESETS = {
    "C1": dict(inflation="centered", init="random", mask_center=False, dilation=(1, 1, 1, 1), multiplier=1.0),
    "C2": dict(inflation="copied", init="zero", mask_center=True, dilation=(1, 2, 4, 8), multiplier=100.0),
}
_DEFAULTS = PRESETS["C1"]


def _stage_dilations(dilation) -> tuple:
    """Paper blocks 1–4 → stages conv2–conv5 (conv1 keeps 1); an int applies to all five stages."""
    if isinstance(dilation, int):
        return (dilation,) * 5
    dilation = tuple(int(d) for d in dilation)
    if len(dilation) == 4:
        return (1,) + dilation
    if len(dilation) == 5:
        return dilation
    raise ValueError(f"dilation: give 4 values (the paper's blocks) or 5 (all stages), got {dilation}")


class I3D(EmoModule):
    """i3D-CNN (§3.3.2, Figure 8): clips [N, 3, T, H, W] (RGB in [0, 1]) → [N, 2] (× ``multiplier``).

    ``preset`` ("C1" / "C2", Table 3) fills the inflation options; explicit arguments override it.
    ``mode`` is an alias of ``inflation`` (``I3D(**emorec.paper.I3D_CONFIGS["C2"])`` works).
    ``time_kernel`` is the temporal size of every inflated k×k (k > 1) kernel; 1×1 kernels stay 1×1×1.
    ``frame_stages`` (ours): the first stages inflated centered with zero outer slices, unmasked and
    undilated, i.e. the 2D network frame by frame, whatever the options (the CPU profiles freeze them
    and share their cached output with the 2D models); the options apply to the later stages.
    """

    def __init__(self, backbone: str = "vgg16", width: float = 1.0, weights=None, weights_path=None,
                 preset=None, *, inflation=None, mode=None, init=None, mask_center=None, dilation=None,
                 multiplier=None, time_kernel: int = 3, rescale: bool = True, random_bound: float = 0.05,
                 finetune_from: str = "Full", head_units=(512,), dropout: float = 0.0,
                 normalization=None, frame_stages: int = 0, seed: int = 0):
        super().__init__()
        if preset is not None and preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {tuple(PRESETS)}")
        if mode is not None:  # inflate()'s name for it, as in emorec.paper.I3D_CONFIGS
            if inflation is not None and inflation != mode:
                raise ValueError(f"inflation={inflation!r} and mode={mode!r} disagree")
            inflation = mode
        given = dict(inflation=inflation, init=init, mask_center=mask_center, dilation=dilation,
                     multiplier=multiplier)
        opts = {k: (v if v is not None else PRESETS.get(preset, _DEFAULTS)[k]) for k, v in given.items()}
        dil = opts["dilation"]
        opts["dilation"] = dil if isinstance(dil, int) else list(dil)
        self.multiplier = float(opts["multiplier"])
        self.config = dict(kind="i3d", backbone=backbone, width=width, weights=_weights_config(weights),
                           preset=preset, **opts, time_kernel=time_kernel, rescale=rescale,
                           random_bound=random_bound, finetune_from=finetune_from,
                           head_units=list(head_units), dropout=dropout, normalization=normalization,
                           frame_stages=frame_stages, seed=seed)
        with seeded(seed):
            self.normalize, stages = pretrained_stages(backbone, width, weights, weights_path,
                                                       finetune_from, normalization)
            self.features = _inflate_stages(stages, frame_stages, time_kernel, opts, rescale, random_bound, seed)
            self.pool = nn.AdaptiveAvgPool3d(1)
            self.head = mlp_head(stage_out_channels(self.features), head_units, 2, dropout)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.pool(self.features(self.normalize(clips))), 1))

    def split(self, n_frozen: int) -> tuple[nn.Module, nn.Module]:
        """(normalisation + inflated stages 1 … ``n_frozen``, the rest + pool + head), sharing this
        model's modules: ``suffix(prefix(clips)) == model(clips)`` (ours)."""
        prefix, rest = split_stages(self.normalize, self.features, n_frozen)
        return prefix, PooledHead(rest, self.pool, self.head)


def _inflate_stages(stages: nn.Sequential, frame_stages: int, time_kernel: int, opts: dict, rescale: bool,
                    random_bound: float, seed: int) -> nn.Sequential:
    """Stages 1 … ``frame_stages`` centered-zero (frame by frame), the others with Table 3's options."""
    children = list(stages.named_children())
    if isinstance(frame_stages, bool) or not 0 <= int(frame_stages) <= len(children):
        raise ValueError(f"frame_stages must be an integer in 0 … {len(children)}, got {frame_stages!r}")
    k = int(frame_stages)
    dilations = dict(zip([name for name, _ in children], _stage_dilations(opts["dilation"])))
    parts = []
    if k > 0:
        parts += inflate(nn.Sequential(OrderedDict(children[:k])), time_kernel, "centered", "zero", False, 1,
                         rescale=rescale, random_bound=random_bound, seed=seed).named_children()
    if k < len(children):
        parts += inflate(nn.Sequential(OrderedDict(children[k:])), time_kernel, opts["inflation"], opts["init"],
                         opts["mask_center"], {name: dilations[name] for name, _ in children[k:]},
                         rescale=rescale, random_bound=random_bound, seed=seed).named_children()
    return nn.Sequential(OrderedDict(parts))


def _conv_params(module: nn.Module) -> int:
    return sum(p.numel() for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))
               for p in m.parameters())


def parameter_counts(backbone: str, width: float = 1.0, time_kernel: int = 3, head_units=(512,)) -> dict:
    """Parameters of a 2D regression CNN and of its i3D-CNN (§4.5: "three times greater").

    Built on the ``meta`` device (no memory, no initialisation). Returns the totals, the convolution
    parameters alone (weights + biases), and their ratios.
    """
    with torch.device("meta"):
        cnn = CNN2D(backbone, task="regression", width=width, head_units=head_units)
        i3d = I3D(backbone, width=width, time_kernel=time_kernel, head_units=head_units,
                  inflation="copied")
    n2, n3 = count_parameters(cnn)["total"], count_parameters(i3d)["total"]
    c2, c3 = _conv_params(cnn.features), _conv_params(i3d.features)
    return {"backbone": backbone, "width": width, "params_2d": n2, "params_3d": n3, "ratio": n3 / n2,
            "conv_params_2d": c2, "conv_params_3d": c3, "conv_ratio": c3 / c2}
