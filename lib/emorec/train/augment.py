"""Low-level data augmentation of §4.3: random rotation, horizontal flip, brightness."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment_batch(x: torch.Tensor, generator: torch.Generator, rotation_deg: float = 10.0,
                  flip_p: float = 0.5, brightness: float = 0.2) -> torch.Tensor:
    """Rotate, flip and brighten each sample of ``x`` at random (§4.3, "rotation, flipping, highlight").

    ``x`` is ``[N, ..., H, W]`` (images ``[N, C, H, W]`` or clips with any frame layout): one
    transform is drawn per sample and applied to all its channels and frames, so a clip stays
    temporally coherent. Angles are uniform in ``±rotation_deg`` about the image centre (in pixel
    space, so non-square images are not sheared), flips have probability ``flip_p``, brightness
    is a gain uniform in ``[1 - brightness, 1 + brightness]`` (as torchvision's ``adjust_brightness``;
    on zero-centred inputs it acts as a contrast change). Parameters are drawn from the CPU
    ``generator`` so the result does not depend on the device.
    """
    if x.ndim < 3:
        raise ValueError(f"augmentation needs inputs shaped [N, ..., H, W], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"augmentation needs floating-point inputs, got {x.dtype}")
    n, (h, w) = x.shape[0], x.shape[-2:]
    angle = (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * math.radians(rotation_deg)
    flip = torch.rand(n, generator=generator, dtype=torch.float64) < flip_p
    gain = 1 + (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * brightness

    cos, sin = angle.cos(), angle.sin()
    sx = torch.where(flip, -1.0, 1.0).to(torch.float64)
    # affine_grid maps output to input in coordinates normalised by (W/2, H/2): the pixel-space
    # rotation R becomes D^-1 R D with D = diag(W/2, H/2); the flip acts on output x first.
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = cos * sx
    theta[:, 0, 1] = -sin * h / w
    theta[:, 1, 0] = sin * w / h * sx
    theta[:, 1, 1] = cos
    flat = x.reshape(n, -1, h, w)
    grid = F.affine_grid(theta.to(device=x.device, dtype=x.dtype), list(flat.shape), align_corners=False)
    out = F.grid_sample(flat, grid, mode="bilinear", padding_mode="border", align_corners=False)
    out = out * gain.to(device=x.device, dtype=x.dtype).view(n, 1, 1, 1)
    return out.reshape(x.shape)
