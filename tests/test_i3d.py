"""i3D-CNN (§3.3.2, Table 3): presets, per-block dilation, transfer from a 2D checkpoint, parameter counts."""
import pytest
import torch
from torch import nn

from emorec.inflation import MaskedConv3d
from emorec.models import CNN2D, I3D, PRESETS, count_parameters, parameter_counts


def conv_dilations(i3d):
    return {name: sorted({m.dilation[0] for m in stage.modules()
                          if isinstance(m, nn.Conv3d) and m.kernel_size[0] > 1})
            for name, stage in i3d.features.named_children()}


def test_presets_follow_table3():
    c1 = I3D("vgg16", width=0.125, preset="C1")
    c2 = I3D("vgg16", width=0.125, preset="C2")
    assert (c1.config["inflation"], c1.config["init"], c1.config["mask_center"], c1.multiplier) == \
        ("centered", "random", False, 1.0)
    assert (c2.config["inflation"], c2.config["mask_center"], c2.multiplier) == ("copied", True, 100.0)
    assert conv_dilations(c1) == {f"conv{i}": [1] for i in range(1, 6)}
    assert conv_dilations(c2) == {"conv1": [1], "conv2": [1], "conv3": [2], "conv4": [4], "conv5": [8]}
    assert not any(isinstance(m, MaskedConv3d) for m in c1.modules())
    assert all(isinstance(m, MaskedConv3d) for m in c2.modules() if isinstance(m, nn.Conv3d))
    override = I3D("vgg16", width=0.125, preset="C2", multiplier=10.0, mask_center=False)
    assert override.multiplier == 10.0 and override.config["dilation"] == [1, 2, 4, 8]
    assert not any(isinstance(m, MaskedConv3d) for m in override.modules())


def test_resnet50_c2_forward_and_head():
    model = I3D("resnet50", width=0.125, preset="C2").eval()
    assert conv_dilations(model)["conv5"] == [8]
    assert [m.out_features for m in model.head if isinstance(m, nn.Linear)] == [512, 2]
    with torch.no_grad():
        clips = torch.rand(2, 3, 6, 40, 32)
        assert model(clips).shape == (2, 2)
        assert model.features(model.normalize(clips)).shape[2] == 6


def test_inflated_from_a_2d_checkpoint(tmp_path):
    cnn = CNN2D("vgg11_bn", task="classification", width=0.25, seed=3)
    path = tmp_path / "rafdb.pt"
    torch.save(cnn.state_dict(), path)
    i3d = I3D("vgg11_bn", width=0.25, weights=str(path), inflation="centered", init="zero",
              finetune_from="Conv_3_1")
    conv2d = [m for m in cnn.features.modules() if isinstance(m, nn.Conv2d)]
    conv3d = [m for m in i3d.features.modules() if isinstance(m, nn.Conv3d)]
    assert all(torch.equal(c3.weight[:, :, 1], c2.weight) for c2, c3 in zip(conv2d, conv3d))
    assert not conv3d[1].weight.requires_grad and conv3d[2].weight.requires_grad
    i3d.train()
    bn = [m for m in i3d.features.conv1.modules() if isinstance(m, nn.BatchNorm3d)][0]
    assert not bn.training  # frozen BN in eval mode after inflation too


def test_parameter_counts_against_an_independent_count():
    counts = parameter_counts("vgg16")
    # independent: the 13 VGG-16 conv layers, 3×3 → 3×3×3 (weights ×3, biases unchanged)
    chans = [3, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    w2d = sum(9 * a * b for a, b in zip(chans[:-1], chans[1:]))
    bias = sum(chans[1:])
    assert counts["conv_params_2d"] == w2d + bias
    assert counts["conv_params_3d"] == 3 * w2d + bias
    head = 512 * 512 + 512 + 512 * 2 + 2
    assert counts["params_3d"] - counts["conv_params_3d"] == head
    res = parameter_counts("resnet50")
    assert 1.9 < res["conv_ratio"] < 2.0  # 1×1 convolutions stay 1×1×1
    assert count_parameters(I3D("vgg11", width=0.125))["total"] == parameter_counts("vgg11", 0.125)["params_3d"]


def test_bad_options():
    with pytest.raises(ValueError, match="preset"):
        I3D("vgg11", width=0.125, preset="C3")
    with pytest.raises(ValueError, match="dilation"):
        I3D("vgg11", width=0.125, dilation=(1, 2))
    with pytest.raises(ValueError, match="mode"):
        I3D("vgg11", width=0.125, inflation="stretched")
    assert set(PRESETS) == {"C1", "C2"}
    with pytest.raises(ValueError, match="disagree"):
        I3D("vgg11", width=0.125, inflation="copied", mode="centered")


def test_paper_table3_keywords_build_the_same_model():
    from emorec import paper
    a = I3D("vgg11", width=0.125, **paper.I3D_CONFIGS["C2"])
    b = I3D("vgg11", width=0.125, preset="C2")
    assert a.config["inflation"] == "copied" and a.multiplier == b.multiplier
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
