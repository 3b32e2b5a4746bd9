"""Plotting helpers shared by the chapters and ``emorec predict`` (matplotlib only; no computation lives here)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from emorec.paper import CIRCUMPLEX_OCTANTS, CIRCUMPLEX_WORDS, circumplex_coordinates

__all__ = ["circumplex", "plot_timeseries", "plot_trajectory"]

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


# --------------------------------------------------------------------------------------------------
# Valence and arousal of one video over time (the predict path, §6)
# --------------------------------------------------------------------------------------------------

def _no_face_spans(frames: pd.DataFrame) -> list[tuple[float, float]]:
    """(start, end) times of the runs of sampled frames without a value."""
    t = frames["time"].to_numpy(float)
    missing = frames["valence"].isna().to_numpy()
    half = 0.5 * (np.median(np.diff(t)) if len(t) > 1 else 0.1)
    spans, start = [], None
    for i, m in enumerate(missing):
        if m and start is None:
            start = t[i] - half
        if not m and start is not None:
            spans.append((start, t[i - 1] + half))
            start = None
    if start is not None:
        spans.append((start, t[-1] + half))
    return spans


def plot_timeseries(frames: pd.DataFrame, axes=None, label: str = "prediction", color: str = "tab:red",
                    shade: bool = True):
    """Valence (top) and arousal (bottom) against time, gaps where no face was found (shaded grey).

    ``axes``: two matplotlib axes to draw on (a new figure otherwise); returns the figure."""
    if axes is None:
        import matplotlib.pyplot as plt  # only for a new figure: predict draws on its own, without pyplot

        fig, axes = plt.subplots(2, 1, figsize=(9, 4.6), sharex=True)
    fig = axes[0].figure
    for ax, name in zip(axes, ("valence", "arousal")):
        ax.plot(frames["time"], frames[name], color=color, lw=1.3, label=label)
        if shade:
            for a, b in _no_face_spans(frames):
                ax.axvspan(a, b, color="0.85", lw=0, zorder=0)
        ax.set_ylabel(name)
        ax.set_ylim(-1.05, 1.05)
        ax.axhline(0, color="0.6", lw=0.6)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time (s)")
    return fig


def plot_trajectory(frames: pd.DataFrame, ax=None, cmap: str = "viridis", colorbar: bool = True):
    """The (valence, arousal) path over the circumplex of Figure 1, coloured by time; returns the figure."""
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    if ax is None:
        import matplotlib.pyplot as plt  # only for a new figure: predict draws on its own, without pyplot

        _, ax = plt.subplots(figsize=(6.2, 5.6))
    circumplex(ax, octants=False)
    ok = frames["valence"].notna().to_numpy()
    t = frames["time"].to_numpy(float)
    points = frames[["valence", "arousal"]].to_numpy(float)
    norm = Normalize(t.min(), t.max() if t.max() > t.min() else t.min() + 1)
    # consecutive frames that both have a value are joined; a gap (no face) breaks the line
    pairs = np.flatnonzero(ok[:-1] & ok[1:])
    segments = np.stack([points[pairs], points[pairs + 1]], axis=1) if len(pairs) else np.zeros((0, 2, 2))
    lines = LineCollection(segments, cmap=cmap, norm=norm, lw=1.6, zorder=5)
    lines.set_array(t[pairs] if len(pairs) else np.zeros(0))
    ax.add_collection(lines)
    dots = ax.scatter(points[ok, 0], points[ok, 1], c=t[ok], cmap=cmap, norm=norm, s=9, zorder=6)
    if colorbar:
        ax.figure.colorbar(dots, ax=ax, fraction=0.046, pad=0.04, label="time (s)")
    return ax.figure

