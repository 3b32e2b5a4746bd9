"""2D → 3D inflation (§3.3.2): frame-by-frame and boring-clip equivalences, masking, dilation."""
import pytest
import torch
from torch import nn

from emorec.inflation import MaskedConv3d, inflate, temporal_radius
from emorec.models import Normalize, build_stages


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def randomized_stages(backbone, width=0.125, seed=0):
    """Stages with non-trivial BN statistics and affine parameters, in eval mode."""
    torch.manual_seed(seed)
    stages = build_stages(backbone, width)
    g = torch.Generator().manual_seed(seed)
    for m in stages.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return nn.Sequential(Normalize("imagenet"), *stages).eval()


def per_frame(net2d, clip):
    """Apply a 2D network to each frame of [N, C, T, H, W]; stack as [N, C', T, H', W']."""
    n, c, t, h, w = clip.shape
    out = net2d(clip.transpose(1, 2).reshape(n * t, c, h, w))  # frame i of clip j is row j·T + i
    return out.reshape(n, t, *out.shape[1:]).transpose(1, 2)


@pytest.mark.parametrize("backbone", ["vgg16_bn", "resnet50"])
def test_centered_zero_equals_2d_frame_by_frame(backbone):
    net2d = randomized_stages(backbone)
    net3d = inflate(net2d, mode="centered", init="zero").eval()
    clip = torch.rand(2, 3, 5, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out3d, ref = net3d(clip), per_frame(net2d, clip)
    assert out3d.shape == ref.shape  # T preserved
    assert rel_err(out3d, ref) <= 1e-4


@pytest.mark.parametrize("backbone,radius", [("vgg16_bn", 13), ("resnet50", 17)])
def test_copied_equals_2d_on_a_boring_clip_interior(backbone, radius):
    net2d = randomized_stages(backbone)
    net3d = inflate(net2d, mode="copied").eval()
    assert temporal_radius(net3d) == radius  # VGG-16: 13 3×3 convs; ResNet50: stem + 16 bottlenecks
    frame = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    t = 2 * radius + 3
    clip = frame.unsqueeze(2).expand(-1, -1, t, -1, -1).contiguous()
    with torch.no_grad():
        out3d, ref = net3d(clip), net2d(frame)
    interior = range(radius, t - radius)
    assert max(rel_err(out3d[:, :, i], ref) for i in interior) <= 1e-4
    # the frames the zero padding reaches do differ: the interior check is not vacuous
    assert rel_err(out3d[:, :, 0], ref) > 1e-2


def test_kernels_copied_centered_random():
    conv = nn.Conv2d(4, 6, 3, padding=1)
    w = conv.weight.detach()
    copied = inflate(nn.Sequential(conv), mode="copied")[0].weight
    assert all(torch.allclose(copied[:, :, i], w / 3) for i in range(3))
    plain = inflate(nn.Sequential(conv), mode="copied", rescale=False)[0].weight
    assert torch.equal(plain[:, :, 0], w)
    zero = inflate(nn.Sequential(conv), mode="centered", init="zero", time_kernel=5)[0].weight
    assert torch.equal(zero[:, :, 2], w) and not zero[:, :, [0, 1, 3, 4]].any()
    rnd = inflate(nn.Sequential(conv), mode="centered", init="random", random_bound=0.01, seed=3)[0].weight
    again = inflate(nn.Sequential(conv), mode="centered", init="random", random_bound=0.01, seed=3)[0].weight
    assert torch.equal(rnd, again) and torch.equal(rnd[:, :, 1], w)
    off = rnd[:, :, [0, 2]]
    assert off.abs().max() <= 0.01 and off.abs().min() > 0
    assert torch.equal(conv.weight.detach(), w)  # the 2D module is untouched


def test_layer_mapping():
    net = inflate(randomized_stages("resnet50"), mode="copied")
    convs = [m for m in net.modules() if isinstance(m, nn.Conv3d)]
    assert all(c.stride[0] == 1 for c in convs)
    assert {c.kernel_size[0] for c in convs if c.kernel_size[1:] == (1, 1)} == {1}  # 1×1 → 1×1×1
    stem = net[1].conv
    assert stem.kernel_size == (3, 7, 7) and stem.padding == (1, 3, 3) and stem.stride == (1, 2, 2)
    pool = net[1].pool
    assert isinstance(pool, nn.MaxPool3d) and pool.kernel_size == (1, 3, 3) and pool.stride == (1, 2, 2)
    bn2d = randomized_stages("resnet50")[1].bn
    bn3d = net[1].bn
    assert isinstance(bn3d, nn.BatchNorm3d)
    for key in ("weight", "bias", "running_mean", "running_var"):
        assert torch.equal(getattr(bn3d, key), getattr(bn2d, key))
    pooled = inflate(nn.Sequential(nn.AdaptiveAvgPool2d((2, 1))))
    assert pooled(torch.rand(1, 2, 7, 5, 4)).shape == (1, 2, 7, 2, 1)


def test_dilation_schedule_keeps_length():
    net2d = randomized_stages("vgg11")
    net3d = inflate(net2d, dilation=[1, 1, 2, 4, 8, 8]).eval()  # Normalize + conv1 … conv5
    dil = [[m.dilation[0] for m in stage.modules() if isinstance(m, nn.Conv3d)] for stage in list(net3d)[1:]]
    assert dil == [[1], [2], [4, 4], [8, 8], [8, 8]]
    conv = [m for m in net3d.modules() if isinstance(m, nn.Conv3d)][-1]
    assert conv.padding[0] == 8
    with torch.no_grad():
        assert net3d(torch.rand(1, 3, 6, 32, 32)).shape[2] == 6
    mapped = inflate(net2d, dilation={"3": 4, "3.2": 2})
    assert [m.dilation[0] for m in mapped[3].modules() if isinstance(m, nn.Conv3d)] == [4, 2]


def test_masked_centre_is_bit_identical_after_adamw():
    torch.manual_seed(0)
    net2d = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))
    net3d = inflate(net2d, mode="copied", mask_center=True)
    convs = [m for m in net3d if isinstance(m, nn.Conv3d)]
    assert all(isinstance(c, MaskedConv3d) for c in convs)
    centres = [c.weight[:, :, 1].clone() for c in convs]
    others = [c.weight[:, :, [0, 2]].clone() for c in convs]
    assert all(torch.equal(c, conv2d.weight / 3) for c, conv2d in zip(centres, (net2d[0], net2d[2])))
    opt = torch.optim.AdamW(net3d.parameters(), lr=1e-2, weight_decay=0.1)
    x = torch.rand(2, 3, 4, 8, 8)
    for _ in range(5):
        opt.zero_grad()
        net3d(x).pow(2).mean().backward()
        opt.step()
    for conv, centre, other in zip(convs, centres, others):
        assert torch.equal(conv.weight[:, :, 1], centre)
        assert (conv.weight[:, :, [0, 2]] - other).abs().min() > 0
    # the effective kernel is what runs, and what a state dict restores
    again = inflate(net2d, mode="copied", mask_center=True)
    again.load_state_dict(net3d.state_dict())
    assert torch.equal(again[0].weight, convs[0].weight)
    ref = nn.functional.conv3d(x, convs[0].weight, convs[0].bias, padding=1)
    assert torch.equal(net3d[0](x), ref)


def test_frozen_2d_stays_frozen():
    conv = nn.Conv2d(3, 4, 3)
    conv.requires_grad_(False)
    out = inflate(nn.Sequential(conv, nn.BatchNorm2d(4).requires_grad_(False)), mask_center=True)
    assert not any(p.requires_grad for p in out.parameters())


def test_errors():
    net = nn.Sequential(nn.Conv2d(3, 4, 3))
    with pytest.raises(ValueError, match="odd"):
        inflate(net, time_kernel=2)
    with pytest.raises(ValueError, match="mode"):
        inflate(net, mode="stretched")
    with pytest.raises(ValueError, match="init"):
        inflate(net, init="ones")
    with pytest.raises(ValueError, match="one value per"):
        inflate(net, dilation=[1, 2])
    with pytest.raises(ValueError, match="cannot inflate 1 .Flatten"):
        inflate(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 2)))
