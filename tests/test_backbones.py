"""2D backbones of §3.1: topology, width, freezing, heads, and weights from local files only."""
import os
from collections import OrderedDict

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from emorec.models import (BACKBONES, BLOCKS, CNN2D, NORMALIZATIONS, STAGES, backbones, build_stages,
                           count_parameters, imagenet_weights_file, vggface_to_torchvision)
from emorec.models.backbones import seeded
from emorec.models.weights import VGGFACE_CONVS, VGGFACE_ENV, VGGFACE_FEATURE_INDICES, VGGFACE_URL

from fake_weights import fake_vggface


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("backbone", BACKBONES)
def test_heads_and_any_input_size(backbone):
    cls = CNN2D(backbone, task="classification", width=0.125).eval()
    reg = CNN2D(backbone, task="regression", width=0.125).eval()
    for size in [(100, 80), (45, 37)]:
        x = torch.rand(2, 3, *size)
        assert cls(x).shape == (2, 7)
        assert reg(x).shape == (2, 2)
    linears = [m for m in cls.head if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [512, 128, 7]


@pytest.mark.parametrize("backbone", BACKBONES)
def test_full_width_is_torchvision_topology(backbone):
    with torch.device("meta"):
        tv = getattr(torchvision.models, backbone)(weights=None)
        ours = build_stages(backbone, 1.0)
    tv_convs = [tuple(m.weight.shape) for m in tv.modules() if isinstance(m, nn.Conv2d)]
    our_convs = [tuple(m.weight.shape) for m in ours.modules() if isinstance(m, nn.Conv2d)]
    assert our_convs == tv_convs
    head = tv.fc if backbone == "resnet50" else tv.classifier
    assert count_parameters(ours)["total"] == count_parameters(tv)["total"] - count_parameters(head)["total"]


def _torchvision_derived_stages(backbone: str, width: float) -> nn.Sequential:
    """The stages as emorec built them before VGG had its own configuration list: torchvision's VGG
    on the meta device, cut at its max-poolings, then materialised."""
    with torch.device("meta"):
        features = getattr(torchvision.models, backbone)(weights=None).features
    stages, current = [], []
    for layer in features:
        current.append(layer)
        if isinstance(layer, nn.MaxPool2d):
            stages.append(nn.Sequential(*current))
            current = []
    return backbones._materialize(nn.Sequential(OrderedDict(zip(STAGES, stages))), width)


@pytest.mark.parametrize("backbone", ["vgg11", "vgg11_bn", "vgg16", "vgg16_bn"])
@pytest.mark.parametrize("width", [1.0, 0.125])
def test_vgg_stages_equal_the_torchvision_derived_build(backbone, width):
    """Same keys, shapes and (same seed) values as the build from torchvision's VGG: every existing
    checkpoint and result stays bit-identical."""
    with seeded(5):
        ours = build_stages(backbone, width)
    with seeded(5):
        theirs = _torchvision_derived_stages(backbone, width)
    assert repr(ours) == repr(theirs)
    mine, reference = ours.state_dict(), theirs.state_dict()
    assert list(mine) == list(reference)
    for key in mine:
        assert torch.equal(mine[key], reference[key]), key


def test_stages_follow_the_paper_blocks():
    vgg = build_stages("vgg16", 0.125)
    assert [n for n, _ in vgg.named_children()] == list(STAGES)
    assert [sum(isinstance(m, nn.Conv2d) for m in s.modules()) for s in vgg] == [2, 2, 3, 3, 3]
    assert all(isinstance(list(s)[-1], nn.MaxPool2d) for s in vgg)
    res = build_stages("resnet50", 0.125)
    assert [len(s) for s in res][1:] == [3, 4, 6, 3]  # conv2_x … conv5_x bottlenecks


def test_width_scales_channels():
    convs = [m for m in build_stages("vgg11", 0.25).modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 64, 64, 128, 128, 128, 128]
    assert convs[0].in_channels == 3


@pytest.mark.parametrize("backbone", ["vgg16_bn", "resnet50"])
def test_freezing_from_each_block(backbone):
    stage_sizes = [count_parameters(s)["total"] for s in build_stages(backbone, 0.125)]
    for k, block in enumerate(BLOCKS):
        model = CNN2D(backbone, width=0.125, finetune_from=block)
        counts = count_parameters(model)
        assert counts["total"] - counts["trainable"] == sum(stage_sizes[:k])
        frozen = [p.requires_grad for s in list(model.features)[:k] for p in s.parameters()]
        assert not any(frozen)


def test_frozen_batchnorm_stays_in_eval_mode():
    model = CNN2D("vgg16_bn", width=0.125, finetune_from="Conv_3_1").train()
    frozen_bn = [m for m in model.features.conv2.modules() if isinstance(m, nn.BatchNorm2d)][0]
    live_bn = [m for m in model.features.conv3.modules() if isinstance(m, nn.BatchNorm2d)][0]
    before = frozen_bn.running_mean.clone(), live_bn.running_mean.clone()
    model(torch.rand(4, 3, 32, 32))
    assert not frozen_bn.training and live_bn.training
    assert torch.equal(frozen_bn.running_mean, before[0])
    assert not torch.equal(live_bn.running_mean, before[1])


def test_construction_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a, b, c = (CNN2D("vgg11", width=0.125, seed=s) for s in (0, 0, 1))
    assert torch.equal(torch.rand(3), expected)
    assert torch.equal(a.features.conv1[0].weight, b.features.conv1[0].weight)
    assert not torch.equal(a.features.conv1[0].weight, c.features.conv1[0].weight)


def test_bad_arguments():
    with pytest.raises(ValueError, match="backbone"):
        CNN2D("alexnet")
    with pytest.raises(ValueError, match="finetune_from"):
        CNN2D("vgg11", width=0.125, finetune_from="Conv_6_1")
    with pytest.raises(ValueError, match="task"):
        CNN2D("vgg11", width=0.125, task="ranking")


# --- ImageNet weights from a fake torchvision cache ------------------------------------------------

def _random_state(model: nn.Module, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, v in model.state_dict().items():
        if k.endswith("running_var"):
            state[k] = torch.rand(v.shape, generator=g) + 0.5
        elif v.is_floating_point():
            state[k] = torch.randn(v.shape, generator=g) * 0.05
        else:
            state[k] = v.clone()
    return state


def test_imagenet_resnet50_from_local_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    tv = torchvision.models.resnet50(weights=None)
    state = _random_state(tv, 0)
    path, url = imagenet_weights_file("resnet50")
    assert path == tmp_path / "hub" / "checkpoints" / "resnet50-0676ba61.pth"
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    tv.load_state_dict(state)
    tv.eval()
    model = CNN2D("resnet50", weights="imagenet", task="regression").eval()
    x = torch.rand(2, 3, 64, 48)
    stats = NORMALIZATIONS["imagenet"]
    xn = (x - torch.tensor(stats["mean"]).view(1, 3, 1, 1)) / torch.tensor(stats["std"]).view(1, 3, 1, 1)
    trunk = nn.Sequential(*list(tv.children())[:-2])
    with torch.no_grad():
        assert rel_err(model.features(model.normalize(x)), trunk(xn)) < 1e-5


def test_imagenet_vgg11_bn_features(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    features = make_layers(cfgs["A"], batch_norm=True)  # torchvision's vgg11_bn features
    with torch.device("meta"):
        classifier = torchvision.models.vgg11_bn(weights=None).classifier
    state = {f"features.{k}": v for k, v in _random_state(features, 1).items()}
    # the classifier (25088×4096) is stored as a stride-0 tensor: the right shape in a tiny file
    for k, v in classifier.state_dict().items():
        state[f"classifier.{k}"] = torch.randn(1).expand(v.shape)
    path, _ = imagenet_weights_file("vgg11_bn")
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    features.load_state_dict({k[len("features."):]: v for k, v in state.items() if k.startswith("features.")})
    model = CNN2D("vgg11_bn", weights="imagenet").eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert rel_err(model.features(model.normalize(x)), features.eval()(model.normalize(x))) < 1e-5


def test_imagenet_missing_file_says_what_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        CNN2D("vgg16", weights="imagenet")
    msg = str(err.value)
    assert "vgg16-397923af.pth" in msg and "https://download.pytorch.org/models/" in msg
    assert str(tmp_path) in msg


def test_pretrained_weights_need_full_width():
    with pytest.raises(ValueError, match="width"):
        CNN2D("vgg16", width=0.5, weights="imagenet")
    with pytest.raises(ValueError, match="width"):
        CNN2D("vgg16", width=0.5, weights="vggface")


# --- VGG-Face (Albanie's vgg_face_dag.pth) ---------------------------------------------------------

def _fake_vggface(seed=0) -> dict:
    return fake_vggface(seed)


def test_vggface_mapping_indices():
    state = _fake_vggface()
    mapped = vggface_to_torchvision(state)
    assert VGGFACE_FEATURE_INDICES == (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
    assert torch.equal(mapped["features.28.weight"], state["conv5_3.weight"])
    assert torch.equal(mapped["features.5.bias"], state["conv2_1.bias"])
    assert mapped["classifier.6.weight"].shape == (2622, 4096)
    with torch.device("meta"):
        tv = torchvision.models.vgg16(weights=None, num_classes=2622)  # VGG-Face's 2,622 identities
    tv_shapes = {k: v.shape for k, v in tv.state_dict().items()}
    assert {k: v.shape for k, v in mapped.items()} == tv_shapes


def test_vggface_vgg16_equals_torchvision_reference(tmp_path):
    path = tmp_path / "vgg_face_dag.pth"
    torch.save(_fake_vggface(), path)
    model = CNN2D("vgg16", weights="vggface", weights_path=path).eval()
    features = make_layers(cfgs["D"])  # torchvision's vgg16 features
    features.load_state_dict({k[len("features."):]: v for k, v in
                              vggface_to_torchvision(_fake_vggface()).items() if k.startswith("features.")})
    x = torch.rand(2, 3, 100, 80)
    # VGG-Face input: RGB in 0..255 minus the mean, no scaling by a std
    ref_in = x * 255 - torch.tensor([129.186, 104.762, 93.594]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert rel_err(model.features(model.normalize(x)), features.eval()(ref_in)) < 1e-5


def test_vggface_into_vgg16_bn_via_env(tmp_path, monkeypatch):
    path = tmp_path / "weights" / "vgg_face_dag.pth"
    path.parent.mkdir()
    state = _fake_vggface(3)
    torch.save(state, path)
    monkeypatch.setenv(VGGFACE_ENV, str(path))
    model = CNN2D("vgg16_bn", weights="vggface")
    convs = [m for m in model.features.modules() if isinstance(m, nn.Conv2d)]
    for conv, name in zip(convs, VGGFACE_CONVS):
        assert torch.equal(conv.weight, state[f"{name}.weight"])
    bn = [m for m in model.features.modules() if isinstance(m, nn.BatchNorm2d)][0]
    assert torch.equal(bn.weight, torch.ones_like(bn.weight))  # BN added to VGG-Face: fresh


def test_vggface_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv(VGGFACE_ENV, raising=False)
    with pytest.raises(FileNotFoundError) as err:
        CNN2D("vgg16", weights="vggface")
    assert VGGFACE_URL in str(err.value) and VGGFACE_ENV in str(err.value)
    with pytest.raises(ValueError, match="vgg16"):
        CNN2D("resnet50", weights="vggface")
    bad = _fake_vggface()
    bad["conv3_2.weight"] = bad["conv3_2.weight"][:, :128]
    path = tmp_path / "broken.pth"
    torch.save(bad, path)
    with pytest.raises(ValueError, match="broken.pth.*conv3_2"):
        CNN2D("vgg16", weights="vggface", weights_path=path)


# --- our own checkpoints (the double transfer of Figure 2) ----------------------------------------

def test_checkpoint_transfer_keeps_features_and_normalisation(tmp_path):
    src = CNN2D("vgg11", task="classification", width=0.25, normalization="vggface", seed=5)
    path = tmp_path / "rafdb.pt"
    torch.save({"model": src.state_dict(), "epoch": 3}, path)
    dst = CNN2D("vgg11", task="regression", width=0.25, weights=str(path), seed=6)
    for a, b in zip(src.features.parameters(), dst.features.parameters()):
        assert torch.equal(a, b)
    assert dst.normalize.scale.item() == 255.0
    assert dst.head[-1].out_features == 2
    with pytest.raises(ValueError, match="rafdb.pt"):
        CNN2D("vgg11", width=0.5, weights=str(path))
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        CNN2D("vgg11", width=0.25, weights=str(tmp_path / "nope.pt"))
    raw = tmp_path / "raw.pt"
    torch.save({"a.weight": torch.zeros(1)}, raw)
    with pytest.raises(ValueError, match="raw.pt"):
        CNN2D("vgg11", width=0.25, weights=str(raw))
