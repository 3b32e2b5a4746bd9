"""Fake published weights in the real files' key layouts and shapes, for tests (never downloaded).

``vgg_face_dag.pth`` (Albanie's VGG-Face: ``conv1_1`` … ``conv5_3``, ``fc6/7/8``) and torchvision's
ImageNet files (``features.*``, ``classifier.*``) hold random convolutions; the fully connected layers,
which every model of the book drops (§3.1), are stride-0 views so that the files stay small.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torchvision

from emorec.models import imagenet_weights_file
from emorec.models.weights import VGGFACE_CONVS

_VGG16_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
_VGGFACE_FC = {"fc6": (4096, 25088), "fc7": (4096, 4096), "fc8": (2622, 4096)}


def _tiny_file_tensor(shape, g) -> torch.Tensor:
    return torch.randn(1, generator=g).expand(*shape)  # stride 0: one stored number


def fake_vggface(seed: int = 0) -> dict:
    """A state dict in vgg_face_dag's format: conv1_1 … conv5_3 random (He scale); fc6/7/8 stride-0."""
    g = torch.Generator().manual_seed(seed)
    state, cin = {}, 3
    for name, cout in zip(VGGFACE_CONVS, _VGG16_CHANNELS):
        state[f"{name}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * (2 / (9 * cin)) ** 0.5
        state[f"{name}.bias"] = torch.randn(cout, generator=g) * 0.1
        cin = cout
    for name, (o, i) in _VGGFACE_FC.items():
        state[f"{name}.weight"] = _tiny_file_tensor((o, i), g)
        state[f"{name}.bias"] = _tiny_file_tensor((o,), g)
    return state


def fake_imagenet(backbone: str, seed: int = 0) -> dict:
    """torchvision's ImageNet state dict layout for ``backbone``: random convolutions and batch norms,
    stride-0 fully connected layers."""
    g = torch.Generator().manual_seed(seed)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in getattr(torchvision.models, backbone)(weights=None).state_dict().items()}
    state = {}
    for key, shape in shapes.items():
        if key.startswith(("classifier.", "fc.")):
            state[key] = _tiny_file_tensor(shape, g)
        elif key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            state[key] = torch.ones(shape)
        else:
            state[key] = torch.randn(*shape, generator=g) * 0.05
    return state


def install_fake_weights(torch_home: Path, imagenet=("vgg11",), vggface: bool = True) -> dict[str, Path]:
    """Write fake weight files where the book looks for them under ``torch_home`` (set ``TORCH_HOME``
    to it): torchvision's ``hub/checkpoints/<file>`` and ``vgg_face_dag.pth`` beside them."""
    folder = Path(torch_home) / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for backbone in imagenet:
        name = imagenet_weights_file(backbone)[0].name  # the name only: TORCH_HOME may not be set yet
        torch.save(fake_imagenet(backbone), folder / name)
        written[backbone] = folder / name
    if vggface:
        torch.save(fake_vggface(), folder / "vgg_face_dag.pth")
        written["vggface"] = folder / "vgg_face_dag.pth"
    return written
