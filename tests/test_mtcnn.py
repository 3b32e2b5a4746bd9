"""Our MTCNN nets and box helpers (emorec.data.mtcnn) against the independent references they
replace on the predict path: facenet-pytorch's nets and detect_face helpers, torchvision's NMS."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emorec.data import mtcnn

facenet = pytest.importorskip("facenet_pytorch")
from facenet_pytorch.models.utils import detect_face as reference  # noqa: E402
from torchvision.ops import batched_nms as torchvision_batched_nms  # noqa: E402


@pytest.fixture(scope="module")
def nets():
    return mtcnn.MTCNNNets()


@pytest.fixture(scope="module")
def facenet_nets():
    return facenet.MTCNN(device=torch.device("cpu")).eval()


@pytest.mark.parametrize("name, size", [("pnet", (2, 3, 61, 83)), ("rnet", (7, 3, 24, 24)), ("onet", (5, 3, 48, 48))])
def test_nets_equal_facenets(nets, facenet_nets, name, size):
    ours, theirs = getattr(nets, name), getattr(facenet_nets, name)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    x = torch.randn(size, generator=torch.Generator().manual_seed(3)) * 1.5
    with torch.no_grad():
        for a, b in zip(ours(x), theirs(x), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def _random_boxes(n: int, seed: int, groups: int = 3, span: float = 100.0):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 2, generator=g) * span
    boxes = torch.cat([low, low + 5 + torch.rand(n, 2, generator=g) * span / 2], dim=1)
    scores = torch.rand(n, generator=g)
    return boxes, scores, torch.randint(0, groups, (n,), generator=g)


@pytest.mark.parametrize("n, seed", [(0, 0), (1, 1), (2, 2), (60, 3), (400, 4), (1500, 5)])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_keeps_torchvisions_indices(n, seed, threshold):
    boxes, scores, groups = _random_boxes(n, seed)
    ours = mtcnn.batched_nms(boxes, scores, groups, threshold)
    assert ours.dtype == torch.long
    assert ours.tolist() == torchvision_batched_nms(boxes, scores, groups, threshold).tolist()


def test_nms_ties_and_duplicates():
    """Equal scores (P-net's probabilities saturate at 1.0) and identical boxes: the same survivors."""
    boxes, _, groups = _random_boxes(300, 7, groups=2, span=40)
    boxes = torch.cat([boxes, boxes[:50]])  # exact duplicates
    scores = torch.cat([torch.full((150,), 1.0), torch.full((150,), 0.5), torch.full((50,), 1.0)])
    groups = torch.cat([groups, groups[:50]])
    for threshold in (0.2, 0.5, 0.7):
        ours = mtcnn.batched_nms(boxes, scores, groups, threshold)
        theirs = torchvision_batched_nms(boxes, scores, groups, threshold)
        assert sorted(ours.tolist()) == sorted(theirs.tolist())
        assert torch.equal(scores[ours], scores[theirs])  # both in decreasing order of score


@pytest.mark.parametrize("n, seed", [(0, 0), (1, 1), (80, 2), (700, 3)])
def test_min_overlap_nms_keeps_facenets_indices(n, seed):
    """O-net's NMS: intersection over the smaller box, inclusive pixels (facenet's numpy NMS)."""
    boxes, scores, groups = _random_boxes(n, seed)
    ours = mtcnn.batched_nms(boxes, scores, groups, 0.7, measure="min")
    theirs = reference.batched_nms_numpy(boxes, scores, groups, 0.7, "Min")
    assert ours.tolist() == theirs.tolist()


def test_nms_is_independent_of_the_batch_and_bounded_in_memory(monkeypatch):
    """Many boxes in one frame (more than one block of overlap rows) give the single-frame result."""
    monkeypatch.setattr(mtcnn, "_NMS_BLOCK", 16)
    boxes, scores, _ = _random_boxes(200, 9, span=60)
    alone = mtcnn.batched_nms(boxes, scores, torch.zeros(200, dtype=torch.long), 0.5)
    assert alone.tolist() == torchvision_batched_nms(boxes, scores, torch.zeros(200, dtype=torch.long), 0.5).tolist()


def test_unknown_overlap_measure():
    with pytest.raises(ValueError, match="measure must be one of"):
        mtcnn.box_overlap(torch.zeros(1, 4), torch.zeros(1, 4), "max")


def test_helpers_equal_facenets():
    g = torch.Generator().manual_seed(11)
    reg, prob = torch.randn(3, 4, 17, 23, generator=g), torch.rand(3, 17, 23, generator=g)
    for ours, theirs in zip(mtcnn.cell_boxes(reg, prob, 0.15, 0.6), reference.generateBoundingBox(reg, prob, 0.15, 0.6)):
        assert torch.equal(ours, theirs)
    boxes = torch.cat([torch.rand(40, 2, generator=g) * 300 - 20, torch.rand(40, 2, generator=g) * 300 + 200,
                       torch.rand(40, 1, generator=g)], dim=1)
    shifts = torch.randn(40, 4, generator=g) * 0.1
    assert torch.equal(mtcnn.regress(boxes, shifts), reference.bbreg(boxes.clone(), shifts))
    assert torch.equal(mtcnn.square(boxes), reference.rerec(boxes.clone()))
    for ours, theirs in zip(mtcnn.crop_corners(boxes, 320, 240), reference.pad(boxes, 320, 240)):
        np.testing.assert_array_equal(ours, theirs)
    images = torch.rand(2, 3, 61, 47, generator=g) * 255
    assert torch.equal(mtcnn.resize_area(images, (30, 21)), reference.imresample(images, (30, 21)))


def test_nets_follow_their_device():
    """Every tensor of the nets sits on the device asked for (CUDA paths checked on CPU with meta)."""
    nets = mtcnn.MTCNNNets(device="meta")
    assert {p.device.type for p in nets.parameters()} == {"meta"}
    outputs = [*nets.pnet(torch.zeros(1, 3, 30, 30, device="meta")), *nets.rnet(torch.zeros(2, 3, 24, 24, device="meta")),
               *nets.onet(torch.zeros(2, 3, 48, 48, device="meta"))]
    assert {o.device.type for o in outputs} == {"meta"}
