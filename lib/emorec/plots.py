"""Plotting helpers shared by the chapters (matplotlib only; no computation lives here)."""

from __future__ import annotations

import numpy as np

from emorec.paper import CIRCUMPLEX_OCTANTS, CIRCUMPLEX_WORDS, circumplex_coordinates

__all__ = ["circumplex"]

QUADRANTS = {
    (1, 1): "positive valence\nhigh arousal",
    (-1, 1): "negative valence\nhigh arousal",
    (-1, -1): "negative valence\nlow arousal",
    (1, -1): "positive valence\nlow arousal",
}


def circumplex(ax, words: dict[str, float] | None = None, octants: bool = True, points=None):
    """Draw Figure 1 of §1: the valence (x) × arousal (y) plane with the circumplex of affect.

    A unit circle, the two axes, a label per quadrant, the emotion ``words`` (default
    :data:`emorec.paper.CIRCUMPLEX_WORDS`, Russell 1980's angles) as dots on the circle, and,
    with ``octants``, Russell's eight affect categories in grey inside it. ``points`` (optional,
    an ``[N, 2]`` array of (valence, arousal)) are scattered on top, e.g. a video's labels.
    Returns ``ax``.
    """
    theta = np.linspace(0, 2 * np.pi, 361)
    ax.plot(np.cos(theta), np.sin(theta), color="0.3", lw=1.2)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.axvline(0, color="0.5", lw=0.8)
    for (sx, sy), text in QUADRANTS.items():
        ax.text(sx * 1.28, sy * 1.3, text, ha="right" if sx > 0 else "left", va="center",
                fontsize=8, color="0.35", style="italic")
    if octants:
        inner = circumplex_coordinates(CIRCUMPLEX_OCTANTS, radius=0.55)
        for row in inner.itertuples():
            ax.text(row.valence, row.arousal, row.word.upper(), ha="center", va="center", fontsize=7,
                    color="0.5", bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    coords = circumplex_coordinates(CIRCUMPLEX_WORDS if words is None else words).sort_values("angle_deg")
    ax.scatter(coords.valence, coords.arousal, s=18, color="tab:blue", zorder=3)
    previous = -360.0
    for row in coords.itertuples():
        # words closer than 8 degrees to the previous one get their label pushed outwards
        radius = 1.2 if row.angle_deg - previous < 8 else 1.07
        previous = row.angle_deg if radius == 1.07 else -360.0
        c, s = np.cos(np.deg2rad(row.angle_deg)), np.sin(np.deg2rad(row.angle_deg))
        ax.text(radius * c, radius * s, row.word, fontsize=8.5, zorder=4, va="center",
                ha="left" if c >= 0 else "right")
    if points is not None:
        pts = np.asarray(points, dtype=np.float64)
        ax.scatter(pts[:, 0], pts[:, 1], s=6, alpha=0.4, color="tab:orange", zorder=2)
    ax.set_xlim(-1.35, 1.35)
    ax.set_ylim(-1.35, 1.35)
    ax.set_aspect("equal")
    ax.set_xticks([-1, -0.5, 0, 0.5, 1])
    ax.set_yticks([-1, -0.5, 0, 0.5, 1])
    ax.set_xlabel("valence (unpleasant → pleasant)")
    ax.set_ylabel("arousal (calm → activated)")
    return ax
