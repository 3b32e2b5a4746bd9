"""2D backbones of §3.1: VGG-11, VGG-11-BN, VGG-16, VGG-16-BN and ResNet50, thinned by a width multiplier.

Every backbone is cut into the five convolution *stages* of the paper's naming, ``conv1`` … ``conv5``
(VGG: the convolutions between two max-poolings, pooling included; ResNet50: the stem — 7×7 conv, BN,
ReLU, max-pool — then ``layer1`` … ``layer4`` = conv2_x … conv5_x of He et al.). Fine-tuning "from
Conv_k_1" freezes stages 1 … k−1 (Table 1's "Convolution Block"). The VGG topologies are built from
their configurations (Simonyan & Zisserman, 2015, Table 1; layer for layer torchvision's, so its
weights load), ResNet50's is torchvision's own; both on the ``meta`` device, so nothing is allocated.
Then every convolution and batch norm is materialised with ``round(channels × width)`` channels and
torchvision's initialisation. torchvision is imported only for ResNet50: its import costs over a
second, most of a short ``emorec predict``.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

BACKBONES = ("vgg11", "vgg11_bn", "vgg16", "vgg16_bn", "resnet50")
#: The paper's names of the block fine-tuning starts from (Table 1), in order.
BLOCKS = ("Full", "Conv_2_1", "Conv_3_1", "Conv_4_1", "Conv_5_1")
#: ``BLOCKS`` plus "Frozen" (ours): the whole convolutional part frozen, e.g. to cache frame features.
FINETUNE_OPTIONS = BLOCKS + ("Frozen",)
STAGES = ("conv1", "conv2", "conv3", "conv4", "conv5")
#: Paper names of the backbones (Table 1).
PAPER_NAMES = {"vgg11": "VGG-11", "vgg11_bn": "VGG-11-BN", "vgg16": "VGG-16", "vgg16_bn": "VGG-16-BN",
               "resnet50": "ResNet50"}
#: Face crops are resized to 100×80 (H×W), the mean face size of SEWA-DB (§3.2).
DEFAULT_INPUT_SIZE = (100, 80)

#: Input normalisations, applied inside the models to RGB in [0, 1]: ``(x · scale − mean) / std``.
NORMALIZATIONS = {
    "imagenet": {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "scale": 1.0},
    # Albanie's vgg_face_dag meta: RGB in 0..255 minus the VGG-Face mean, no division.
    "vggface": {"mean": (129.186, 104.762, 93.594), "std": (1.0, 1.0, 1.0), "scale": 255.0},
    "none": {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0), "scale": 1.0},
}


def check_backbone(backbone: str) -> None:
    """Raise ValueError unless ``backbone`` is one of the five architectures of §3.1."""
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {BACKBONES}")


def scaled_channels(channels: int, width: float) -> int:
    """Channel count of a thinned layer: ``max(1, round(channels · width))`` (our CPU profiles)."""
    return max(1, int(round(channels * width)))


class Normalize(nn.Module):
    """Per-channel input normalisation ``(x · scale − mean) / std`` for RGB in [0, 1] (§3.2, §3.1).

    Works on images [N, C, H, W] and clips [N, C, T, H, W]; the statistics are buffers, so they
    travel inside checkpoints with the weights they belong to.
    """

    shape_agnostic = True  # element-wise: kept as is by emorec.inflation.inflate

    def __init__(self, name: str = "imagenet"):
        super().__init__()
        if name not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {name!r}; choose one of {tuple(NORMALIZATIONS)}")
        stats = NORMALIZATIONS[name]
        self.name = name
        self.register_buffer("mean", torch.tensor(stats["mean"], dtype=torch.float32))
        self.register_buffer("std", torch.tensor(stats["std"], dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(float(stats["scale"])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return (x * self.scale - self.mean.view(shape)) / self.std.view(shape)

    def extra_repr(self) -> str:
        return repr(self.name)


#: VGG configurations A (VGG-11) and D (VGG-16) of Simonyan & Zisserman (2015, Table 1): the output
#: channels of each 3×3 convolution (padding 1, followed by ReLU, or batch norm then ReLU in the
#: ``_bn`` variants), "M" a 2×2 max-pooling that ends a stage.
VGG_CONFIGS = {"vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
               "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")}


def _vgg_stages(backbone: str) -> list[nn.Sequential]:
    """VGG's convolutional part, one Sequential per stage, in torchvision's layer order (meta device)."""
    batch_norm = backbone.endswith("_bn")
    stages, layers, channels = [], [], 3
    with torch.device("meta"):
        for item in VGG_CONFIGS[backbone.removesuffix("_bn")]:
            if item == "M":
                stages.append(nn.Sequential(*layers, nn.MaxPool2d(kernel_size=2, stride=2)))
                layers = []
                continue
            layers.append(nn.Conv2d(channels, item, kernel_size=3, padding=1))
            layers += [nn.BatchNorm2d(item), nn.ReLU(inplace=True)] if batch_norm else [nn.ReLU(inplace=True)]
            channels = item
    return stages


def _resnet50_stages() -> list[nn.Module]:
    """ResNet50's stem and its four layers of bottlenecks, torchvision's topology (meta device)."""
    import torchvision  # here only: see the module's docstring

    with torch.device("meta"):
        tv = torchvision.models.resnet50(weights=None)
    stem = nn.Sequential(OrderedDict(conv=tv.conv1, bn=tv.bn1, relu=tv.relu, pool=tv.maxpool))
    return [stem, tv.layer1, tv.layer2, tv.layer3, tv.layer4]


def _materialize(module: nn.Module, width: float) -> nn.Module:
    """Replace every meta Conv2d / BatchNorm2d by a real, thinned, torchvision-initialised one."""
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d):
            in_ch = 3 if child.in_channels == 3 else scaled_channels(child.in_channels, width)
            conv = nn.Conv2d(in_ch, scaled_channels(child.out_channels, width), child.kernel_size,
                             child.stride, child.padding, child.dilation, bias=child.bias is not None)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
            setattr(module, name, conv)
        elif isinstance(child, nn.BatchNorm2d):
            setattr(module, name, nn.BatchNorm2d(scaled_channels(child.num_features, width)))
        else:
            _materialize(child, width)
    return module


def build_stages(backbone: str, width: float = 1.0) -> nn.Sequential:
    """The convolutional part of a §3.1 backbone as ``Sequential(conv1=…, …, conv5=…)``.

    Topology of torchvision's ``<backbone>(weights=None)`` (VGG built from Simonyan & Zisserman's
    Table 1), channels scaled by ``width``; initialisation as torchvision's (Kaiming normal, fan-out)
    from the global RNG — callers seed it (see :func:`seeded`).
    """
    check_backbone(backbone)
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width}")
    layers = _resnet50_stages() if backbone == "resnet50" else _vgg_stages(backbone)
    stages = nn.Sequential(OrderedDict(zip(STAGES, layers)))
    return _materialize(stages, width)


def stage_out_channels(stages: nn.Module) -> int:
    """Channels leaving the last stage (the last convolution's output channels)."""
    convs = [m for m in stages.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    return convs[-1].out_channels


def freeze_stages(stages: nn.Sequential, finetune_from: str) -> None:
    """Freeze the stages before ``finetune_from`` (§3.1, Table 1's "Convolution Block").

    "Full" trains everything; "Conv_k_1" freezes conv1 … conv(k−1) (``requires_grad=False``);
    "Frozen" freezes all five. Batch norms whose parameters are all frozen stay in eval mode during
    training (see :class:`EmoModule`), so their running statistics do not drift either.
    """
    if finetune_from not in FINETUNE_OPTIONS:
        raise ValueError(f"unknown finetune_from {finetune_from!r}; choose one of {FINETUNE_OPTIONS}")
    n_frozen = len(STAGES) if finetune_from == "Frozen" else BLOCKS.index(finetune_from)
    for i, stage in enumerate(stages.children()):
        for p in stage.parameters():
            p.requires_grad_(i >= n_frozen)


def split_stages(normalize: nn.Module, stages: nn.Sequential, n_frozen: int) -> tuple[nn.Sequential, nn.Sequential]:
    """``(normalize + stages 1 … n, stages n+1 … 5)`` as two Sequentials sharing the model's modules:
    the frozen prefix a run can compute once and cache, and the stages it trains (ours; §3.1's
    "Convolution Block" split, Table 1)."""
    children = list(stages.named_children())
    if isinstance(n_frozen, bool) or not 0 <= int(n_frozen) <= len(children):
        raise ValueError(f"n_frozen must be an integer in 0 … {len(children)}, got {n_frozen!r}")
    n = int(n_frozen)
    return (nn.Sequential(OrderedDict([("normalize", normalize)] + children[:n])),
            nn.Sequential(OrderedDict(children[n:])))


def per_frame(module: nn.Module, clips: torch.Tensor) -> torch.Tensor:
    """A 2D module run on every frame of clips [N, C, T, H, W]: output [N, T, …] (§3.3.1's cascade)."""
    n, c, t, h, w = clips.shape
    out = module(clips.transpose(1, 2).reshape(n * t, c, h, w))
    return out.reshape(n, t, *out.shape[1:])


class PerFrame(nn.Module):
    """A 2D module (e.g. a frozen prefix of stages) on every frame of clips [N, C, T, H, W], keeping the
    clip layout: output [N, C', T, h, w] (ours)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return per_frame(self.module, clips).transpose(1, 2)


class PooledHead(nn.Module):
    """Stages → average pooling → flatten → FC head: the trainable end of a 2D-CNN or an i3D-CNN
    (§3.1, §3.3.2), sharing the model's modules."""

    def __init__(self, stages: nn.Module, pool: nn.Module, head: nn.Module):
        super().__init__()
        self.stages, self.pool, self.head = stages, pool, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.pool(self.stages(x)), 1))


def count_parameters(module: nn.Module) -> dict:
    """Total and trainable parameter counts (§3.1 fine-tuning, §4.5's "three times greater")."""
    params = list(module.parameters())
    return {"total": sum(p.numel() for p in params),
            "trainable": sum(p.numel() for p in params if p.requires_grad)}


def mlp_head(in_features: int, units, out_features: int, dropout: float = 0.0) -> nn.Sequential:
    """Fully connected head: Linear → ReLU (→ Dropout) per hidden size in ``units``, then a linear output.

    §3.1: ``units=(512, 128)``, 7 outputs (RAF-DB classes); regression heads end with 2 outputs
    (valence, arousal).
    """
    layers, size = [], in_features
    for n in units:
        layers += [nn.Linear(size, n), nn.ReLU(inplace=True)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        size = n
    layers.append(nn.Linear(size, out_features))
    return nn.Sequential(*layers)


class seeded:
    """Context manager: run model construction from ``torch.manual_seed(seed)`` without touching the
    caller's global RNG state (randomness only from explicit seeds)."""

    def __init__(self, seed: int):
        self.seed = int(seed)
        self._ctx = None

    def __enter__(self):
        self._ctx = torch.random.fork_rng(devices=[])
        self._ctx.__enter__()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


class EmoModule(nn.Module):
    """Base of the models: carries ``config`` (a plain dict that rebuilds the model) and keeps frozen
    batch norms in eval mode.

    A BatchNorm whose affine parameters are all frozen is not being fine-tuned, so it also keeps its
    running statistics: ``train()`` puts it back in eval mode (§3.1's frozen blocks).
    """

    config: dict

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            for m in self.modules():
                params = list(m.parameters(recurse=False))
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and params and \
                        not any(p.requires_grad for p in params):
                    m.eval()
        return self
