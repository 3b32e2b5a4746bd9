"""MTCNN's three networks and the box arithmetic of its cascade (Zhang et al., 2016; paper §3.2.1).

MTCNN finds faces in three stages: P-net, a small fully convolutional net, scores every 12×12 cell
of an image pyramid and regresses a box for it; R-net rejects most of those proposals on 24×24
crops and refines the rest; O-net gives the final score, box and five landmarks on 48×48 crops.
Between the stages, boxes are regressed, made square and thinned out by greedy non-maximum
suppression (NMS). :mod:`emorec.data.faces` runs the cascade batched; this module holds its parts.

The trained weights are those of facenet-pytorch (``pnet.pt``, ``rnet.pt``, ``onet.pt``), read from
the files inside its installed wheel (located through the package's metadata, so neither
facenet-pytorch nor torchvision is imported: together they take about 1.4 s to import, most of the
cost of a short ``emorec predict``). The nets' layer names match those files; their outputs equal
facenet-pytorch's nets', and the helpers equal the ones its ``detect_face`` uses (``tests/test_mtcnn.py``).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

WEIGHTS_DISTRIBUTION = "facenet-pytorch"
P_NET_CELL, P_NET_STRIDE = 12, 2  # P-net sees 12×12 windows, every 2 pixels of a pyramid level
NMS_MEASURES = ("union", "min")
_NMS_BLOCK = 512  # rows of the overlap matrix computed at once: memory O(512 · N), not O(N²)


def _flatten_transposed(x: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] → [N, W·H·C]: the dense layers' weights expect features in (x, y, channel)
    order, the layout of the original (Caffe) model they were converted from."""
    return x.permute(0, 3, 2, 1).reshape(len(x), -1)


class PNet(nn.Module):
    """MTCNN's proposal network (Zhang et al., 2016, Fig. 2): fully convolutional, so one pass over a
    pyramid level gives, for each 12×12 cell, box regression [N, 4, h, w] and face probability
    (softmax over not-face/face) [N, 2, h, w]."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)  # face classification
        self.conv4_2 = nn.Conv2d(32, 4, 1)  # bounding-box regression

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 2, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    """MTCNN's refinement network (Zhang et al., 2016, Fig. 2) on 24×24 crops [N, 3, 24, 24]: box
    regression [N, 4] and face probability [N, 2]."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)  # face classification
        self.dense5_2 = nn.Linear(128, 4)  # bounding-box regression

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = self.prelu4(self.dense4(_flatten_transposed(self.prelu3(self.conv3(x)))))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    """MTCNN's output network (Zhang et al., 2016, Fig. 2) on 48×48 crops [N, 3, 48, 48]: box
    regression [N, 4], the five landmarks [N, 10] (x1…x5, y1…y5, relative to the crop) and face
    probability [N, 2]."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)  # face classification
        self.dense6_2 = nn.Linear(256, 4)  # bounding-box regression
        self.dense6_3 = nn.Linear(256, 10)  # facial landmarks

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu5(self.dense5(_flatten_transposed(self.prelu4(self.conv4(x)))))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


def weights_file(net: str):
    """The trained weights of ``net`` ("pnet", "rnet" or "onet") inside the installed facenet-pytorch
    wheel (ours; FileNotFoundError naming the file when the package or the file is missing)."""
    try:
        path = distribution(WEIGHTS_DISTRIBUTION).locate_file(f"facenet_pytorch/data/{net}.pt")
    except PackageNotFoundError:
        raise FileNotFoundError(f"MTCNN's weights come from the {WEIGHTS_DISTRIBUTION} package, which is not "
                                f"installed (pip install {WEIGHTS_DISTRIBUTION} --no-deps)") from None
    if not path.is_file():
        raise FileNotFoundError(f"{path}: MTCNN's {net} weights are missing from the {WEIGHTS_DISTRIBUTION} install")
    return path


class MTCNNNets(nn.Module):
    """P-, R- and O-net with facenet-pytorch's trained weights, in eval mode on ``device`` (§3.2.1)."""

    def __init__(self, device: str | torch.device = "cpu"):
        super().__init__()
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        for name in ("pnet", "rnet", "onet"):
            getattr(self, name).load_state_dict(torch.load(weights_file(name), map_location="cpu", weights_only=True))
        self.to(device).eval()


# --------------------------------------------------------------------------------------------------
# Box arithmetic of the cascade
# --------------------------------------------------------------------------------------------------

def resize_area(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Images [N, C, H, W] resized to ``size`` (h, w) by area averaging (the pyramid and the crops)."""
    return F.interpolate(images, size=size, mode="area")


def cell_boxes(reg: torch.Tensor, prob: torch.Tensor, scale: float,
               threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """P-net's cells with face probability ``prob`` [N, h, w] ≥ ``threshold`` as boxes in the frame.

    Cell (x, y) of a level scaled by ``scale`` covers pixels 2x+1 … 2x+12 of it (1-based), mapped
    back by ``1/scale`` and floored. Returns [K, 9] (x1, y1, x2, y2, probability, the four
    regressions of ``reg`` [N, 4, h, w]) and the frame index of each [K]."""
    where = (prob >= threshold).nonzero()
    image, cell = where[:, 0], where[:, 1:].to(reg.dtype).flip(1)  # (x, y)
    regression = reg.permute(0, 2, 3, 1)[image, where[:, 1], where[:, 2]]
    low = ((P_NET_STRIDE * cell + 1) / scale).floor()
    high = ((P_NET_STRIDE * cell + P_NET_CELL) / scale).floor()
    score = prob[image, where[:, 1], where[:, 2]]
    return torch.cat([low, high, score[:, None], regression], dim=1), image


def regress(boxes: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    """Boxes [K, ≥4] moved by the nets' regression [K, 4], in units of the box's side in pixels
    (inclusive: x2 − x1 + 1); columns after the fourth are kept. Returns a new tensor."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    moved = torch.stack([boxes[:, 0] + reg[:, 0] * w, boxes[:, 1] + reg[:, 1] * h,
                         boxes[:, 2] + reg[:, 2] * w, boxes[:, 3] + reg[:, 3] * h], dim=1)
    return torch.cat([moved, boxes[:, 4:]], dim=1)


def square(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes [K, ≥4] made square around their centre with their longer side (the next net's input
    is square). Returns a new tensor; columns after the fourth are kept."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = torch.max(w, h)
    x1 = boxes[:, 0] + w * 0.5 - side * 0.5
    y1 = boxes[:, 1] + h * 0.5 - side * 0.5
    return torch.cat([torch.stack([x1, y1, x1 + side, y1 + side], dim=1), boxes[:, 4:]], dim=1)


def crop_corners(boxes: torch.Tensor, width: int, height: int) -> tuple[np.ndarray, ...]:
    """The pixels a box covers, for cutting it out: (y1, y2, x1, x2), 1-based and inclusive, the
    coordinates truncated towards zero and clipped to the ``width`` × ``height`` frame (int arrays)."""
    corners = boxes[:, :4].trunc().int().cpu().numpy()
    x1, y1 = np.maximum(corners[:, 0], 1), np.maximum(corners[:, 1], 1)
    x2, y2 = np.minimum(corners[:, 2], width), np.minimum(corners[:, 3], height)
    return y1, y2, x1, x2


def box_overlap(a: torch.Tensor, b: torch.Tensor, measure: str = "union") -> torch.Tensor:
    """Overlap of every box of ``a`` [M, 4] with every box of ``b`` [N, 4] (x1, y1, x2, y2): [M, N].

    ``"union"``: intersection over union, boxes in continuous coordinates (area (x2 − x1)(y2 − y1)),
    as P- and R-net's NMS. ``"min"``: intersection over the smaller box, in inclusive pixel
    coordinates (area (x2 − x1 + 1)(y2 − y1 + 1)), as O-net's NMS in MTCNN's reference code."""
    if measure not in NMS_MEASURES:
        raise ValueError(f"measure must be one of {NMS_MEASURES}, got {measure!r}")
    one = 1.0 if measure == "min" else 0.0
    area_a = (a[:, 2] - a[:, 0] + one) * (a[:, 3] - a[:, 1] + one)
    area_b = (b[:, 2] - b[:, 0] + one) * (b[:, 3] - b[:, 1] + one)
    w = (torch.min(a[:, None, 2], b[None, :, 2]) - torch.max(a[:, None, 0], b[None, :, 0]) + one).clamp(min=0)
    h = (torch.min(a[:, None, 3], b[None, :, 3]) - torch.max(a[:, None, 1], b[None, :, 1]) + one).clamp(min=0)
    inter = w * h
    if measure == "min":
        return inter / torch.min(area_a[:, None], area_b[None, :])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def _greedy_keep(boxes: torch.Tensor, threshold: float, measure: str) -> np.ndarray:
    """Greedy NMS of ``boxes`` [N, 4] sorted by decreasing score: which are kept (bool [N]).

    A box is kept unless a kept box before it overlaps it by more than ``threshold``. The overlaps
    are computed on the boxes' device a block of rows at a time; the scan runs on the CPU."""
    n = len(boxes)
    keep = np.ones(n, dtype=bool)
    for start in range(0, n, _NMS_BLOCK):
        stop = min(start + _NMS_BLOCK, n)
        if not keep[start:stop].any():
            continue
        over = (box_overlap(boxes[start:stop], boxes[start:], measure) > threshold).cpu().numpy()
        for row in range(stop - start):
            if keep[start + row]:
                keep[start + row + 1:] &= ~over[row, row + 1:]
    return keep


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float,
                measure: str = "union") -> torch.Tensor:
    """Greedy non-maximum suppression within each group (here: each frame of a batch), MTCNN's step
    between its stages (Zhang et al., 2016, §2.1).

    In decreasing order of ``scores`` [N] (ties: in index order), a box of ``boxes`` [N, 4] is kept
    unless a kept box of its group overlaps it by more than ``threshold`` (:func:`box_overlap`,
    ``measure``). Returns the indices of the kept boxes in decreasing order of score (int64, on the
    boxes' device). Each group is suppressed on its own, so a frame's result does not depend on the
    other frames of its batch."""
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True)[1]
    grouped = groups[order].cpu().numpy()
    keep = np.zeros(len(order), dtype=bool)
    for group in np.unique(grouped):
        members = np.flatnonzero(grouped == group)
        keep[members] = _greedy_keep(boxes[order[torch.from_numpy(members).to(order.device)]], threshold, measure)
    return order[torch.from_numpy(keep).to(order.device)]
