"""Pre-trained weights for the §3.1 backbones, from local files only (nothing downloads).

* ``"imagenet"``: torchvision's ``IMAGENET1K_V1`` weights, read from torchvision's own cache,
  ``torch.hub.get_dir()/checkpoints/<file>`` (i.e. ``$TORCH_HOME/hub/checkpoints``).
* ``"vggface"``: Albanie's ``vgg_face_dag.pth`` (a converted MatConvNet VGG-Face), mapped onto
  torchvision's VGG-16 (conv1_1 … conv5_3 → ``features`` 0, 2, 5, …, 28; fc6/7/8 → ``classifier``
  0, 3, 6); input RGB in 0..255 minus the VGG-Face mean.
* a path: one of our own checkpoints (``torch.load(weights_only=True)``), e.g. a model fine-tuned on
  RAF-DB (the double transfer of Figure 2).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .backbones import STAGES, check_backbone

IMAGENET_ENUMS = {"vgg11": "VGG11_Weights", "vgg11_bn": "VGG11_BN_Weights", "vgg16": "VGG16_Weights",
                  "vgg16_bn": "VGG16_BN_Weights", "resnet50": "ResNet50_Weights"}
VGGFACE_ENV = "EMOREC_VGGFACE_WEIGHTS"
VGGFACE_FILE = "vgg_face_dag.pth"
VGGFACE_URL = "https://www.robots.ox.ac.uk/~albanie/models/pytorch-mcn/vgg_face_dag.pth"
VGGFACE_CONVS = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
                 "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3")
VGGFACE_FEATURE_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
VGGFACE_CLASSIFIER_INDICES = {"fc6": 0, "fc7": 3, "fc8": 6}
_VGG16_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
_VGGFACE_FC_SHAPES = {"fc6": (4096, 25088), "fc7": (4096, 4096), "fc8": (2622, 4096)}
CHECKPOINT_KEYS = ("model_state_dict", "model_state", "state_dict", "model")


def imagenet_weights_file(backbone: str) -> tuple[Path, str]:
    """Where torchvision caches the ImageNet weights of ``backbone``, and the URL they come from."""
    import torchvision  # here only: its import costs over a second (emorec.models.backbones)

    check_backbone(backbone)
    url = getattr(torchvision.models, IMAGENET_ENUMS[backbone]).IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1], url


def vggface_weights_file(path=None) -> Path:
    """Location of ``vgg_face_dag.pth``: ``path``, else ``$EMOREC_VGGFACE_WEIGHTS``, else the torch
    hub cache ``torch.hub.get_dir()/checkpoints/vgg_face_dag.pth``."""
    if path is None:
        path = os.environ.get(VGGFACE_ENV) or Path(torch.hub.get_dir()) / "checkpoints" / VGGFACE_FILE
    return Path(path)


def _load_file(path: Path, hint: str) -> dict:
    from ..train.checkpoint import read_tensor_file

    if not path.is_file():
        raise FileNotFoundError(f"pre-trained weights not found: {path}. {hint} "
                                "(nothing is downloaded at run time)")
    return read_tensor_file(path, "a PyTorch weights file")


def load_imagenet_state(backbone: str) -> dict:
    """torchvision's ImageNet state dict for ``backbone`` from the local cache (§3.1)."""
    path, url = imagenet_weights_file(backbone)
    return _load_file(path, f"Download {url} and save it as {path} (or set TORCH_HOME).")


def vggface_to_torchvision(state: dict, source: str = VGGFACE_FILE) -> dict:
    """Map Albanie's VGG-Face (``conv1_1`` … ``fc8``) onto torchvision ``vgg16`` keys (§3.1).

    conv1_1 … conv5_3 → ``features.{0,2,5,7,10,12,14,17,19,21,24,26,28}``; fc6/7/8 →
    ``classifier.{0,3,6}``. Shapes are checked; ``source`` names the file in errors.
    """
    out, in_ch = {}, 3
    for name, index, out_ch in zip(VGGFACE_CONVS, VGGFACE_FEATURE_INDICES, _VGG16_CHANNELS):
        _expect(state, f"{name}.weight", (out_ch, in_ch, 3, 3), source)
        _expect(state, f"{name}.bias", (out_ch,), source)
        out[f"features.{index}.weight"] = state[f"{name}.weight"]
        out[f"features.{index}.bias"] = state[f"{name}.bias"]
        in_ch = out_ch
    for name, index in VGGFACE_CLASSIFIER_INDICES.items():
        _expect(state, f"{name}.weight", _VGGFACE_FC_SHAPES[name], source)
        out[f"classifier.{index}.weight"] = state[f"{name}.weight"]
        out[f"classifier.{index}.bias"] = state[f"{name}.bias"]
    return out


def _expect(state: dict, key: str, shape: tuple, source) -> None:
    if key not in state:
        raise ValueError(f"{source}: missing {key!r}; not a vgg_face_dag state dict")
    if tuple(state[key].shape) != shape:
        raise ValueError(f"{source}: {key!r} has shape {tuple(state[key].shape)}, expected {shape}")


def load_vggface_state(path=None) -> dict:
    """VGG-Face weights in torchvision ``vgg16`` keys (see :func:`vggface_to_torchvision`)."""
    file = vggface_weights_file(path)
    state = _load_file(file, f"Download {VGGFACE_URL} and save it as {file}, or pass its path "
                             f"(argument weights_path or environment variable {VGGFACE_ENV}).")
    return vggface_to_torchvision(state, source=file)


def _vgg_layers(state: dict) -> tuple[list, list]:
    """Indices of the conv and BN layers in a torchvision VGG ``features.*`` state dict, in order."""
    indices = sorted({int(k.split(".")[1]) for k in state if k.startswith("features.")})
    convs = [i for i in indices if state[f"features.{i}.weight"].dim() == 4]
    bns = [i for i in indices if f"features.{i}.running_mean" in state]
    return convs, bns


def torchvision_to_stages(state: dict, stages: nn.Sequential, backbone: str) -> dict:
    """Rename a torchvision state dict to our stage layout (``conv1`` … ``conv5``), features only.

    VGG: the n-th convolution (and n-th BN) of the source goes to the n-th of ours, so VGG-16 weights
    (VGG-Face) also fill VGG-16-BN, whose BN layers then keep their fresh initialisation (the paper's
    "BN layers added to the original architectures", §4.3). ResNet50: ``conv1``/``bn1`` → the stem,
    ``layer1`` … ``layer4`` → conv2 … conv5. The classifier is dropped (§3.1 replaces it).
    """
    if backbone == "resnet50":
        rename = {"conv1.": "conv1.conv.", "bn1.": "conv1.bn."}
        rename.update({f"layer{i}.": f"conv{i + 1}." for i in range(1, 5)})
        return {new + k[len(old):]: v for k, v in state.items()
                for old, new in rename.items() if k.startswith(old)}
    ours = [n for n, m in stages.named_modules() if isinstance(m, nn.Conv2d)]
    our_bns = [n for n, m in stages.named_modules() if isinstance(m, nn.BatchNorm2d)]
    convs, bns = _vgg_layers(state)
    out = {}
    for src, dst in list(zip(convs, ours)) + list(zip(bns, our_bns)):
        for k, v in state.items():
            if k.startswith(f"features.{src}."):
                out[f"{dst}.{k.split('.', 2)[2]}"] = v
    return out


def _unwrap_checkpoint(obj, path: Path) -> dict:
    if isinstance(obj, dict):
        for key in CHECKPOINT_KEYS:
            if isinstance(obj.get(key), dict):
                return obj[key]
        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    raise ValueError(f"{path}: not a checkpoint of ours (no state dict under {CHECKPOINT_KEYS})")


def _load_into(module: nn.Module, state: dict, source, allowed_missing=()) -> None:
    own = module.state_dict()
    for k, v in state.items():
        if k not in own:
            raise ValueError(f"{source}: unexpected key {k!r} for this backbone")
        if own[k].shape != v.shape:
            raise ValueError(f"{source}: {k!r} has shape {tuple(v.shape)}, the model expects "
                             f"{tuple(own[k].shape)} (other backbone or width?)")
    missing = [k for k in own if k not in state and not k.startswith(tuple(allowed_missing))]
    if missing:
        raise ValueError(f"{source}: missing {len(missing)} weights, e.g. {missing[:3]}")
    module.load_state_dict(state, strict=False)


def load_pretrained(normalize: nn.Module, stages: nn.Sequential, backbone: str, width: float,
                    weights, weights_path=None) -> str:
    """Fill ``stages`` (and ``normalize``) with pre-trained weights; return the input normalisation.

    ``weights``: None (random init, ImageNet statistics), "imagenet", "vggface" (VGG-16 / VGG-16-BN
    only) or the path of one of our checkpoints (its ``features.*`` and ``normalize.*`` entries are
    used; heads are not, since each transfer step of §3.1 puts a new head). Published weights exist
    for full width only: ``width != 1`` with them raises ValueError.
    """
    if weights is None:
        return "imagenet"
    if weights in ("imagenet", "vggface") and width != 1.0:
        raise ValueError(f"weights={weights!r} exist for width 1 only, got width={width}")
    if weights == "imagenet":
        file, _ = imagenet_weights_file(backbone)
        state = load_imagenet_state(backbone)
    elif weights == "vggface":
        if backbone not in ("vgg16", "vgg16_bn"):
            raise ValueError(f"VGG-Face weights (vgg_face_dag.pth) fit vgg16 / vgg16_bn, not {backbone!r}")
        file = vggface_weights_file(weights_path)
        state = load_vggface_state(weights_path)
    else:
        return _load_checkpoint(normalize, stages, Path(weights))
    mapped = torchvision_to_stages(state, stages, backbone)
    # VGG-Face has no BN: VGG-16-BN keeps its freshly initialised BN layers.
    allowed = _bn_keys(stages) if weights == "vggface" and backbone.endswith("_bn") else ()
    _load_into(stages, mapped, file, allowed_missing=allowed)
    return weights


def _bn_keys(stages: nn.Sequential) -> tuple:
    return tuple(f"{n}." for n, m in stages.named_modules() if isinstance(m, nn.BatchNorm2d))


def _load_checkpoint(normalize: nn.Module, stages: nn.Sequential, path: Path) -> str:
    from ..train.checkpoint import read_tensor_file

    state = _unwrap_checkpoint(read_tensor_file(path), path)
    feats = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    if not feats or not all(k.split(".")[0] in STAGES for k in feats):
        raise ValueError(f"{path}: no 2D backbone weights (features.conv1 … conv5) in this checkpoint")
    _load_into(stages, feats, path)
    norm = {k[len("normalize."):]: v for k, v in state.items() if k.startswith("normalize.")}
    if norm:
        normalize.load_state_dict(norm)
        normalize.name = f"from {path.name}"
    return "checkpoint"
