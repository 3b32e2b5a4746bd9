"""2D → 3D weight inflation (§3.3.2, Figure 7, Table 3): initialisation, masking and dilation.

:func:`inflate` turns a 2D network into a 3D one that takes clips ``[N, C, T, H, W]`` and keeps the
clip length T everywhere (stride 1 in time, temporal padding ``d·(k−1)/2``):

* ``Conv2d`` (k×k) → ``Conv3d`` (t×k×k); a 1×1 convolution stays pointwise (1×1×1): the paper's
  "n×n kernels are made n×n×n" with n = 1 (ResNet50's bottleneck and downsample convolutions), which
  also keeps the centered network exactly the 2D one.
* ``mode="copied"``: the 2D kernel in every one of the t slices, divided by t (``rescale=True``, as
  I3D does) so that a clip of one repeated frame gives the 2D activations.
* ``mode="centered"``: the 2D kernel in the centre slice; the others zero (``init="zero"``: the 3D net
  is then the 2D net frame by frame) or uniform in [−``random_bound``, ``random_bound``]
  (``init="random"``; 0.05 is the Keras ``RandomUniform`` default). ``init`` has no effect on copied
  kernels, where no slice is left to initialise.
* ``mask_center=True``: the centre slice becomes a frozen buffer and only the other slices train
  (:class:`MaskedConv3d`), so no optimiser, weight decay included, can move it.
* ``dilation``: temporal dilation, an int, or one value per top-level child of the module (the
  paper's per-block schedule 1, 2, 4, 8), or ``{qualified-name prefix: d}``.
* ``BatchNorm2d`` → ``BatchNorm3d`` (same statistics and affine parameters), pooling → 3D pooling
  with kernel and stride 1 in time, ``AdaptiveAvgPool2d((h, w))`` → ``AdaptiveAvgPool3d((None, h, w))``.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from torch import nn

MODES = ("copied", "centered")
INITS = ("zero", "random")
_ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh,
                nn.Identity, nn.Dropout)


class MaskedConv3d(nn.Conv3d):
    """Conv3d whose centre time slice is frozen (§3.3.2 "Masking").

    The kernel is stored as a buffer ``centre`` (the centre slice, zeros elsewhere) plus a trainable
    ``remainder`` (zeros at the centre); ``weight`` is the effective kernel
    ``remainder · offcentre_mask + centre``. The centre receives no gradient and is not a parameter,
    so Adam, momentum or weight decay cannot change it: it stays bit-identical.
    """

    def __init__(self, *args, **kwargs):
        # nn.Conv3d.__init__ registers a plain `weight` parameter; while it runs the `weight` property
        # below raises AttributeError, so attribute access falls back to that parameter.
        super().__init__(*args, **kwargs)
        weight = self._parameters.pop("weight").detach()
        mask = torch.ones(1, 1, self.kernel_size[0], 1, 1, dtype=weight.dtype, device=weight.device)
        mask[:, :, self.kernel_size[0] // 2] = 0
        self.register_buffer("offcentre_mask", mask)
        self.register_buffer("centre", weight * (1 - mask))
        self.remainder = nn.Parameter(weight * mask)

    @property
    def weight(self) -> torch.Tensor:
        if "remainder" not in self._parameters:
            raise AttributeError("weight")
        return self.remainder * self.offcentre_mask + self.centre

    def set_kernel(self, kernel: torch.Tensor) -> None:
        """Split ``kernel`` into the frozen centre slice and the trainable remainder."""
        with torch.no_grad():
            self.centre.copy_(kernel * (1 - self.offcentre_mask))
            self.remainder.copy_(kernel * self.offcentre_mask)


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def inflate_kernel(weight2d: torch.Tensor, time_kernel: int, mode: str, init: str,
                   rescale: bool = True, random_bound: float = 0.05, generator=None) -> torch.Tensor:
    """A 2D kernel [O, I, h, w] made 3D [O, I, t, h, w] by copy or centering (§3.3.2, Figure 7)."""
    o, i, h, w = weight2d.shape
    if mode == "copied":
        kernel = weight2d.unsqueeze(2).repeat(1, 1, time_kernel, 1, 1)
        return kernel / time_kernel if rescale else kernel
    kernel = torch.zeros(o, i, time_kernel, h, w, dtype=weight2d.dtype)
    if init == "random" and time_kernel > 1 and weight2d.device.type != "meta":
        kernel.uniform_(-random_bound, random_bound, generator=generator)
    kernel = kernel.to(weight2d.device)
    kernel[:, :, time_kernel // 2] = weight2d
    return kernel


def inflate_conv(conv: nn.Conv2d, time_kernel: int = 3, mode: str = "copied", init: str = "zero",
                 mask_center: bool = False, dilation: int = 1, rescale: bool = True,
                 random_bound: float = 0.05, generator=None) -> nn.Conv3d:
    """One Conv2d → Conv3d, T preserved (stride 1, padding d·(t−1)/2 in time) (§3.3.2)."""
    if isinstance(conv.padding, str):
        raise ValueError(f"inflate: string padding {conv.padding!r} is not supported")
    pointwise = tuple(conv.kernel_size) == (1, 1)
    t = 1 if pointwise else time_kernel
    d = 1 if t == 1 else dilation
    cls = MaskedConv3d if mask_center and t > 1 else nn.Conv3d
    conv3d = cls(conv.in_channels, conv.out_channels, (t,) + _pair(conv.kernel_size),
                 stride=(1,) + _pair(conv.stride), padding=(d * (t - 1) // 2,) + _pair(conv.padding),
                 dilation=(d,) + _pair(conv.dilation), groups=conv.groups, bias=conv.bias is not None,
                 padding_mode=conv.padding_mode, device=conv.weight.device, dtype=conv.weight.dtype)
    kernel = inflate_kernel(conv.weight.detach(), t, mode, init, rescale, random_bound, generator)
    with torch.no_grad():
        if isinstance(conv3d, MaskedConv3d):
            conv3d.set_kernel(kernel)
        else:
            conv3d.weight.copy_(kernel)
        if conv.bias is not None:
            conv3d.bias.copy_(conv.bias)
    for p in conv3d.parameters():
        p.requires_grad_(conv.weight.requires_grad)
    return conv3d


def inflate_batchnorm(bn: nn.BatchNorm2d) -> nn.BatchNorm3d:
    """BatchNorm2d → BatchNorm3d with the same running statistics and affine parameters."""
    bn3d = nn.BatchNorm3d(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats,
                          device=_device(bn), dtype=None)
    bn3d.load_state_dict(bn.state_dict())
    for p3, p2 in zip(bn3d.parameters(), bn.parameters()):
        p3.requires_grad_(p2.requires_grad)
    bn3d.train(bn.training)
    return bn3d


def _device(module: nn.Module):
    tensors = list(module.parameters()) + list(module.buffers())
    return tensors[0].device if tensors else None


def inflate_pool(pool: nn.Module) -> nn.Module:
    """2D pooling → 3D pooling acting on each frame (kernel 1 and stride 1 in time)."""
    if isinstance(pool, nn.MaxPool2d):
        return nn.MaxPool3d((1,) + _pair(pool.kernel_size), (1,) + _pair(pool.stride),
                            (0,) + _pair(pool.padding), (1,) + _pair(pool.dilation),
                            pool.return_indices, pool.ceil_mode)
    if isinstance(pool, nn.AvgPool2d):
        return nn.AvgPool3d((1,) + _pair(pool.kernel_size), (1,) + _pair(pool.stride),
                            (0,) + _pair(pool.padding), pool.ceil_mode, pool.count_include_pad,
                            pool.divisor_override)
    size = (None,) + _pair(pool.output_size)
    if isinstance(pool, nn.AdaptiveAvgPool2d):
        return nn.AdaptiveAvgPool3d(size)
    return nn.AdaptiveMaxPool3d(size, pool.return_indices)


def _dilation_resolver(module: nn.Module, dilation):
    """Map a qualified module name to its temporal dilation."""
    if isinstance(dilation, int):
        if dilation < 1:
            raise ValueError(f"dilation must be >= 1, got {dilation}")
        return lambda name: dilation
    if isinstance(dilation, Mapping):
        table = dict(dilation)
    elif isinstance(dilation, Sequence):
        names = [n for n, _ in module.named_children()]
        if len(dilation) != len(names):
            raise ValueError(f"a dilation schedule needs one value per top-level block {names}, "
                             f"got {list(dilation)}")
        table = dict(zip(names, dilation))
    else:
        raise ValueError(f"dilation must be an int, a sequence or a mapping, got {dilation!r}")
    if any(int(v) < 1 for v in table.values()):
        raise ValueError(f"dilations must be >= 1, got {table}")

    def resolve(name: str) -> int:
        hits = [k for k in table if name == k or name.startswith(k + ".")]
        return int(table[max(hits, key=len)]) if hits else 1
    return resolve


def inflate(module: nn.Module, time_kernel: int = 3, mode: str = "copied", init: str = "zero",
            mask_center: bool = False, dilation=1, *, rescale: bool = True,
            random_bound: float = 0.05, seed: int = 0) -> nn.Module:
    """Inflate a 2D network into a 3D one (§3.3.2, Figure 7; Table 3's options).

    Returns a new module (``module`` is untouched) taking ``[N, C, T, H, W]`` and keeping T. See the
    module docstring for the meaning of each option; ``seed`` drives ``init="random"``. Layers that
    cannot be inflated (Linear, Flatten, unknown layers holding parameters) raise ValueError: inflate
    the convolutional part, not the head.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if time_kernel < 1 or time_kernel % 2 == 0:
        raise ValueError(f"time_kernel must be odd (centre slice, symmetric padding), got {time_kernel}")
    resolve = _dilation_resolver(module, dilation)
    generator = torch.Generator().manual_seed(seed)
    opts = dict(time_kernel=time_kernel, mode=mode, init=init, mask_center=mask_center,
                rescale=rescale, random_bound=random_bound, generator=generator)
    return _convert(copy.deepcopy(module), "", resolve, opts)


def _convert(module: nn.Module, name: str, resolve, opts: dict) -> nn.Module:
    if isinstance(module, nn.Conv2d):
        return inflate_conv(module, dilation=resolve(name), **opts)
    if isinstance(module, nn.BatchNorm2d):
        return inflate_batchnorm(module)
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return inflate_pool(module)
    if isinstance(module, _ELEMENTWISE) or getattr(module, "shape_agnostic", False):
        return module
    children = list(module.named_children())
    if not children or module._parameters:
        raise ValueError(f"inflate: cannot inflate {name or 'module'} ({type(module).__name__}); "
                         "inflate the convolutional part only")
    for child_name, child in children:
        setattr(module, child_name, _convert(child, f"{name}.{child_name}".lstrip("."), resolve, opts))
    return module


def temporal_radius(module: nn.Module) -> int:
    """Frames a zero-padded clip edge reaches into: the sum of d·(t−1)/2 over the Conv3d layers.

    Exact for chains (VGG) and for ResNets (the shortcut path only holds 1×1×1 convolutions). On a
    clip of one repeated frame, copied inflation gives the 2D result on frames
    ``radius … T−1−radius``; nearer the edges the zero padding shows.
    """
    return sum(m.dilation[0] * (m.kernel_size[0] - 1) // 2
               for m in module.modules() if isinstance(m, nn.Conv3d))
