"""Procedural face drawing for the synthetic corpora (ours; stands in for SEWA-DB / RAF-DB faces, §4.1).

A face is drawn with OpenCV polygons in a face-centred coordinate system whose unit is the head's
half-width; a :class:`Pose` places it in the image (translation, scale, roll, a little yaw). What the
face shows is set by :class:`Expression`, a handful of action-unit-like controls (mouth curvature and
opening, brow raise and slant, eye opening, nose wrinkle). Appearance is an :class:`Identity` drawn
from one of six appearance groups (like SEWA's six cultures). The drawing is detailed enough for
MTCNN (facenet-pytorch) to find the faces with high probability.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

N_GROUPS = 6
_SHIFT = 4  # fixed-point bits for sub-pixel polygon vertices (smooth motion)
_SCALE = 1 << _SHIFT

# Per group: skin RGB range (low, high), hair colours, probabilities of (beard, glasses), head height ratio.
_GROUPS = [
    dict(skin=((225, 185, 160), (250, 215, 195)), hair=[(200, 160, 90), (120, 80, 40), (90, 60, 35)],
         beard=0.25, glasses=0.3, ratio=(1.28, 1.38)),
    dict(skin=((215, 170, 140), (240, 200, 175)), hair=[(80, 50, 30), (50, 35, 25), (140, 90, 50)],
         beard=0.3, glasses=0.25, ratio=(1.25, 1.35)),
    dict(skin=((190, 145, 110), (220, 175, 140)), hair=[(30, 25, 20), (55, 40, 30)],
         beard=0.35, glasses=0.2, ratio=(1.25, 1.35)),
    dict(skin=((165, 120, 90), (200, 150, 115)), hair=[(25, 20, 18), (45, 30, 25)],
         beard=0.3, glasses=0.15, ratio=(1.22, 1.32)),
    dict(skin=((95, 65, 45), (140, 95, 70)), hair=[(20, 15, 15), (35, 25, 20)],
         beard=0.3, glasses=0.15, ratio=(1.2, 1.3)),
    dict(skin=((220, 190, 150), (245, 215, 180)), hair=[(20, 18, 18), (40, 30, 25)],
         beard=0.1, glasses=0.35, ratio=(1.2, 1.3)),
]


@dataclass(frozen=True)
class Identity:
    """Appearance of one synthetic subject: constant over its videos or images."""

    group: int
    skin: tuple
    hair: tuple
    hair_style: int  # 0 short, 1 long, 2 bald-ish, 3 fringe
    iris: tuple
    lips: tuple
    shirt: tuple
    ratio: float  # head height / width
    eye_sep: float
    eye_size: float
    nose_len: float
    mouth_width: float
    brow_thick: float
    beard: bool
    glasses: bool


@dataclass
class Expression:
    """Action-unit-like controls of one face (the synthetic analogue of facial expression)."""

    mouth_curve: float = 0.0   # -1 corners down .. +1 corners up (valence)
    mouth_open: float = 0.0    # 0 closed .. 1 wide open (surprise, talking)
    mouth_width: float = 1.0   # relative width (stretched lips in fear)
    brow_raise: float = 0.0    # -1 lowered .. +1 raised (arousal, surprise)
    brow_slant: float = 0.0    # +1 inner ends up (sadness, fear) .. -1 inner ends down (anger)
    eye_open: float = 0.8      # 0 closed (blink) .. 1.3 wide
    nose_wrinkle: float = 0.0  # 0 .. 1 (disgust)


@dataclass
class Pose:
    """Where the face is drawn: centre (px), half-width (px), roll (radians), yaw (-1..1)."""

    cx: float
    cy: float
    size: float
    roll: float = 0.0
    yaw: float = 0.0


def _rgb(rng, lo, hi):
    return tuple(int(rng.integers(a, b + 1)) for a, b in zip(lo, hi))


def random_identity(rng: np.random.Generator, group: int) -> Identity:
    """Draw one subject's appearance from appearance group ``group`` (0..5) (ours; SEWA's six cultures, §4.1)."""
    g = _GROUPS[group % N_GROUPS]
    hair = g["hair"][int(rng.integers(len(g["hair"])))]
    return Identity(
        group=group % N_GROUPS,
        skin=_rgb(rng, *g["skin"]),
        hair=tuple(int(np.clip(c + rng.integers(-10, 11), 0, 255)) for c in hair),
        hair_style=int(rng.integers(4)),
        iris=_rgb(rng, (40, 30, 20), (110, 120, 110)),
        lips=_rgb(rng, (150, 70, 70), (200, 110, 110)),
        shirt=_rgb(rng, (20, 20, 20), (230, 230, 230)),
        ratio=float(rng.uniform(*g["ratio"])),
        eye_sep=float(rng.uniform(0.36, 0.44)),
        eye_size=float(rng.uniform(0.85, 1.15)),
        nose_len=float(rng.uniform(0.85, 1.15)),
        mouth_width=float(rng.uniform(0.85, 1.15)),
        brow_thick=float(rng.uniform(0.8, 1.3)),
        beard=bool(rng.random() < g["beard"]),
        glasses=bool(rng.random() < g["glasses"]),
    )


def random_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A static room-like background (RGB uint8): a wall gradient and furniture (ours; SEWA is in-the-wild, §4.1)."""
    wall = np.array(_rgb(rng, (90, 90, 90), (230, 230, 220)), np.float32)
    ramp = np.linspace(0.8, 1.1, height, dtype=np.float32)[:, None, None]
    img = np.clip(wall[None, None, :] * ramp * np.ones((1, width, 1), np.float32), 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(2, 5))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(20, width // 2)), int(rng.integers(20, height // 2))
        cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), _rgb(rng, (30, 30, 30), (240, 240, 240)), -1)
    return cv2.GaussianBlur(img, (5, 5), 0)


class _Painter:
    """Maps face coordinates to pixels for one pose and fills polygons on a canvas."""

    def __init__(self, canvas: np.ndarray, pose: Pose):
        self.canvas = canvas
        self.pose = pose
        c, s = np.cos(pose.roll), np.sin(pose.roll)
        self.rot = np.array([[c, -s], [s, c]]) * pose.size

    def to_px(self, pts, depth: float = 0.0) -> np.ndarray:
        pts = np.asarray(pts, np.float64).reshape(-1, 2).copy()
        pts[:, 0] += self.pose.yaw * 0.25 * depth  # nearer features shift more when the head turns
        xy = pts @ self.rot.T + (self.pose.cx, self.pose.cy)
        return np.round(xy * _SCALE).astype(np.int32)

    def fill(self, pts, color, depth: float = 0.0):
        cv2.fillPoly(self.canvas, [self.to_px(pts, depth)], color, cv2.LINE_AA, _SHIFT)

    def line(self, pts, color, width: float, depth: float = 0.0, closed: bool = False):
        thick = max(1, int(round(width * self.pose.size)))
        cv2.polylines(self.canvas, [self.to_px(pts, depth)], closed, color, thick, cv2.LINE_AA, _SHIFT)


@lru_cache(maxsize=256)
def _unit_arc(t0: float, t1: float, n: int) -> np.ndarray:
    t = np.linspace(t0, t1, n)
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _ellipse(cx, cy, a, b, t0=0.0, t1=2 * np.pi, n=28):
    return _unit_arc(float(t0), float(t1), n) * (a, b) + (cx, cy)


def _shade(color, k):
    return tuple(int(np.clip(c * k, 0, 255)) for c in color)


def _draw_body(p: _Painter, ident: Identity):
    h = ident.ratio
    p.fill([[-0.32, h * 0.7], [0.32, h * 0.7], [0.36, h + 0.5], [-0.36, h + 0.5]], _shade(ident.skin, 0.85))
    p.fill(_ellipse(0, h + 1.5, 2.1, 1.0, np.pi, 2 * np.pi), ident.shirt)
    p.fill([[-2.1, h + 1.5], [2.1, h + 1.5], [2.1, h + 4], [-2.1, h + 4]], ident.shirt)


def _draw_hair_back(p: _Painter, ident: Identity):
    h = ident.ratio
    if ident.hair_style == 1:
        p.fill(np.concatenate([_ellipse(0, -0.1, 1.22, h * 1.08, np.pi, 2 * np.pi),
                               [[1.25, h * 0.9], [-1.25, h * 0.9]]]), ident.hair)
    elif ident.hair_style != 2:
        p.fill(_ellipse(0, -0.12, 1.1, h * 1.02, np.pi * 0.95, np.pi * 2.05), ident.hair)


def _draw_head(p: _Painter, ident: Identity):
    h = ident.ratio
    skin = ident.skin
    for sx in (-1, 1):  # ears
        p.fill(_ellipse(sx * 0.98, -0.02, 0.16, 0.28), _shade(skin, 0.9))
    p.fill(_ellipse(0, 0, 1.0, h, n=40), _shade(skin, 0.88))
    p.fill(_ellipse(0.0, -0.05, 0.9, h * 0.95, n=40), skin, depth=0.3)
    if ident.beard:  # a chin beard that leaves the mouth visible, blended with the skin
        beard = tuple(int(0.45 * c + 0.55 * s) for c, s in zip(ident.hair, skin))
        p.fill(np.concatenate([_ellipse(0, 0, 0.97, h * 0.98, 0.15 * np.pi, 0.85 * np.pi),
                               _ellipse(0, 0.92, 0.42, 0.22, np.pi, 2 * np.pi)[::-1]]), beard, depth=0.5)
    # hairline / fringe over the forehead
    if ident.hair_style == 3:
        p.fill(np.concatenate([_ellipse(0, 0, 1.02, h * 1.02, np.pi, 2 * np.pi),
                               [[0.9, -0.7], [0.2, -0.82], [-0.5, -0.76], [-0.95, -0.6]]]), ident.hair)
    else:  # style 2 is a close crop: a thinner cap
        top = -0.75 if ident.hair_style == 2 else -0.55
        p.fill(np.concatenate([_ellipse(0, 0, 1.03, h * 1.03, np.pi * 1.02, np.pi * 1.98),
                               _ellipse(0, top, 0.85, 0.3, np.pi * 1.98, np.pi * 1.02)]), ident.hair)


def _draw_eyes(p: _Painter, ident: Identity, ex: Expression):
    es, sz = ident.eye_sep, ident.eye_size
    opening = float(np.clip(ex.eye_open, 0.0, 1.4))
    for sx in (-1, 1):
        cx, cy = sx * es, -0.12
        a = 0.17 * sz
        b = 0.095 * sz * opening
        p.fill(_ellipse(cx, cy + 0.01, a * 1.25, 0.08 * sz + 0.03), _shade(ident.skin, 0.72), depth=0.6)
        if b < 0.015:  # closed: a lash line
            p.line(_ellipse(cx, cy, a, 0.03, 0, np.pi, 10), (50, 35, 30), 0.03, depth=0.7)
            continue
        p.fill(_ellipse(cx, cy, a, b), (245, 245, 240), depth=0.7)
        r = min(0.075 * sz, b * 1.05)
        p.fill(_ellipse(cx + p.pose.yaw * 0.04, cy, 0.075 * sz, r), ident.iris, depth=0.75)
        p.fill(_ellipse(cx + p.pose.yaw * 0.04, cy, 0.035 * sz, min(0.035 * sz, b)), (15, 10, 10), depth=0.75)
        p.line(_ellipse(cx, cy, a, b, np.pi, 2 * np.pi, 14), (40, 30, 25), 0.028, depth=0.7)
    if ident.glasses:
        for sx in (-1, 1):
            p.line(_ellipse(sx * es, -0.1, 0.26 * sz, 0.18 * sz, n=24), (70, 60, 55), 0.018, depth=0.9, closed=True)
        p.line([[-es + 0.26 * sz, -0.12], [es - 0.26 * sz, -0.12]], (70, 60, 55), 0.018, depth=0.9)


def _draw_brows(p: _Painter, ident: Identity, ex: Expression):
    es = ident.eye_sep
    base = -0.36 - 0.1 * float(np.clip(ex.brow_raise, -1.5, 1.5))
    slant = 0.09 * float(np.clip(ex.brow_slant, -1.5, 1.5))
    color = tuple(min(int(c * 0.7), m) for c, m in zip(ident.hair, (90, 70, 55)))  # brows darker than hair
    for sx in (-1, 1):
        inner = [sx * (es - 0.2), base - slant]
        mid = [sx * es, base - 0.05]
        outer = [sx * (es + 0.22), base + 0.02]
        p.line([inner, mid, outer], color, 0.06 * ident.brow_thick, depth=0.7)


def _draw_nose(p: _Painter, ident: Identity, ex: Expression):
    L = 0.32 * ident.nose_len
    dark = _shade(ident.skin, 0.62)
    p.line([[0.07, -0.05], [0.1, L - 0.03], [0.05, L + 0.05]], _shade(ident.skin, 0.75), 0.025, depth=1.0)
    p.fill(_ellipse(0, L, 0.14, 0.07, 0, np.pi, 12), _shade(ident.skin, 0.8), depth=1.0)
    p.fill(_ellipse(0, L + 0.08, 0.12, 0.035), _shade(ident.skin, 0.8), depth=0.95)
    for sx in (-1, 1):
        p.fill(_ellipse(sx * 0.065, L + 0.03, 0.04, 0.022), dark, depth=1.0)
    if ex.nose_wrinkle > 0.1:
        for sx in (-1, 1):
            p.line([[sx * 0.08, -0.02], [sx * 0.16, 0.06]], dark, 0.02 * (1 + ex.nose_wrinkle), depth=0.9)


def _draw_mouth(p: _Painter, ident: Identity, ex: Expression):
    w = 0.33 * ident.mouth_width * float(np.clip(ex.mouth_width, 0.6, 1.5))
    y0 = 0.32 * ident.nose_len + 0.32
    curve = 0.13 * float(np.clip(ex.mouth_curve, -1.2, 1.2))
    opening = 0.16 * float(np.clip(ex.mouth_open, 0.0, 1.2))
    x = np.linspace(-w, w, 15)
    bend = curve * (1 - (x / w) ** 2)  # corners stay put, the middle bends: smile when curve > 0
    upper = np.stack([x, y0 + bend - curve - opening * 0.3 * (1 - (x / w) ** 2)], 1)
    lower = np.stack([x, y0 + bend - curve + opening * (1 - (x / w) ** 2)], 1)
    lip = ident.lips
    body = np.sqrt(1 - (x / w) ** 2)  # lips are thickest in the middle
    up_edge = upper - np.stack([np.zeros_like(x), 0.012 + 0.05 * body], 1)
    low_edge = lower + np.stack([np.zeros_like(x), 0.015 + 0.065 * body], 1)
    p.fill(np.concatenate([up_edge, upper[::-1]]), _shade(lip, 0.85), depth=0.9)
    p.fill(np.concatenate([lower, low_edge[::-1]]), lip, depth=0.9)
    if opening > 0.01:
        p.fill(np.concatenate([upper, lower[::-1]]), (70, 20, 25), depth=0.9)
        teeth = np.stack([x * 0.8, upper[:, 1] + 0.025], 1)
        p.line(teeth, (235, 235, 230), 0.035, depth=0.9)
    p.line(upper, _shade(lip, 0.5), 0.025, depth=0.9)


def draw_face(canvas: np.ndarray, ident: Identity, ex: Expression, pose: Pose) -> np.ndarray:
    """Draw a whole person (shoulders, head, features) onto ``canvas`` (RGB uint8, modified in place).

    The synthetic analogue of a face in a SEWA-DB frame or a RAF-DB image (§4.1).
    """
    p = _Painter(canvas, pose)
    _draw_hair_back(p, ident)
    _draw_body(p, ident)
    _draw_head(p, ident)
    _draw_brows(p, ident, ex)
    _draw_eyes(p, ident, ex)
    _draw_nose(p, ident, ex)
    _draw_mouth(p, ident, ex)
    return canvas


def face_box(ident: Identity, pose: Pose) -> tuple:
    """Axis-aligned box (x0, y0, x1, y1) in pixels around the head (ignoring roll), for cropping."""
    hw, hh = pose.size * 1.05, pose.size * ident.ratio * 1.05
    return (pose.cx - hw, pose.cy - hh, pose.cx + hw, pose.cy + hh)
