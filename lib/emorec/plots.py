"""Plotting helpers shared by the chapters and ``emorec predict`` (matplotlib only; no computation lives here).

``emorec predict``'s two figures are drawn by :func:`predict_figures`, inline or in a
:class:`FigureWorker`: a process forked before the command imports torch, which imports matplotlib
on the second core meanwhile (≈ 0.3 s) and draws when the tables are ready. It lives here, outside
:mod:`emorec.predict`, whose import pulls in torch."""

from __future__ import annotations

import multiprocessing
import signal
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from emorec.paper import CIRCUMPLEX_OCTANTS, CIRCUMPLEX_WORDS, circumplex_coordinates

__all__ = ["FigureWorker", "circumplex", "plot_timeseries", "plot_trajectory", "predict_figures", "training_caption"]

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


# --------------------------------------------------------------------------------------------------
# The figures of ``emorec predict`` (§6)
# --------------------------------------------------------------------------------------------------

FIGURES = ("timeseries", "circumplex")


def training_caption(settings: dict) -> str:
    """What each label's model was trained on, for the figures' titles (one line per model; ours)."""
    models = settings["models"]
    if len({m["checkpoint"] for m in models.values()}) == 1:
        m = next(iter(models.values()))
        return f"{m['model']} trained on: {m['training_data']}"
    return "\n".join(f"{label}: {m['model']} trained on: {m['training_data']}" for label, m in models.items())


def chosen_series(frames: pd.DataFrame, settings: dict) -> tuple[pd.DataFrame, list[tuple[int | None, pd.DataFrame]]]:
    """(the chosen face track's frame table, [(track id, its table)] for every series): one series,
    or with ``all_faces`` one per track, the chosen one being the largest consistent track (ours)."""
    if "track" not in frames.columns:
        return frames, [((settings.get("track") or {}).get("track"), frames)]
    tracks = [(int(t), table.drop(columns="track")) for t, table in frames.groupby("track", sort=True)]
    chosen = (settings.get("track") or {}).get("track", tracks[0][0])
    return next(table for t, table in tracks if t == chosen), tracks


def figure_names(frames: pd.DataFrame) -> tuple[str, ...]:
    """The figures a prediction gets: no circumplex path without a single value."""
    return FIGURES if frames["valence"].notna().any() else FIGURES[:1]


def predict_figures(frames: pd.DataFrame, settings: dict, paths: dict[str, Path]) -> None:
    """Write ``paths["timeseries"]`` (valence and arousal against time, one line per face track) and,
    when ``paths`` names it, ``paths["circumplex"]`` (the chosen track's path on Figure 1's plane)."""
    from matplotlib.figure import Figure  # no pyplot: leaves an interactive session's backend alone

    name = Path(settings["video"]).name
    trained = training_caption(settings)
    main, tracks = chosen_series(frames, settings)
    fig = Figure(figsize=(9, 4.6 + 0.2 * trained.count("\n")))
    axes = fig.subplots(2, 1, sharex=True)
    for k, (track, table) in enumerate(tracks):  # one line per face track (all faces), else one
        plot_timeseries(table, axes, label=f"track {track}", color=f"C{k}" if len(tracks) > 1 else "tab:red",
                        shade=len(tracks) == 1)
    if len(tracks) > 1:
        axes[0].legend(fontsize=7, ncol=min(len(tracks), 6), loc="upper right")
    heading = ("valence and arousal (grey: no face)" if len(tracks) == 1 else "valence and arousal per face track"
               ) if "circumplex" in paths else "no face found in any sampled frame"
    title = f"{name}: {heading}\n{trained}"
    fig.axes[0].set_title(title, fontsize=9)
    _margins(fig, left=0.8, right=0.15, bottom=0.6, top=0.36 + 0.165 * title.count("\n"), hspace=0.13)
    fig.savefig(paths["timeseries"], dpi=120)
    if "circumplex" in paths:
        fig = Figure(figsize=(6.6, 5.8 + 0.2 * trained.count("\n")))
        plot_trajectory(main, fig.subplots())
        which = f" (track {settings['track']['track']})" if len(tracks) > 1 else ""
        title = f"{name}: trajectory on the circumplex{which}\n{trained}"
        fig.axes[0].set_title(title, fontsize=8)
        _margins(fig, left=0.75, right=0.75, bottom=0.6, top=0.34 + 0.14 * title.count("\n"))
        fig.savefig(paths["circumplex"], dpi=120)


def _margins(fig, left: float, right: float, bottom: float, top: float, hspace: float | None = None) -> None:
    """Margins in inches, as ``tight_layout`` chose them for these figures (it measures every text
    first: a third of the drawing time); ``top`` grows with the title's lines."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        hspace=hspace)


class FigureWorker:
    """:func:`predict_figures` in a process forked now, which imports matplotlib at once (ours).

    Start it before importing torch and before any thread; call it like :func:`predict_figures`,
    once. An ``OSError`` or ``ValueError`` raised while drawing is raised again by the call, any
    other error as a RuntimeError. Use it as a context manager, so that the process ends with the
    command. Where it cannot fork (no ``fork`` start method, or threads already running, which a
    fork would leave broken in the child) the call draws inline."""

    def __init__(self):
        self._conn = self._process = None
        if "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1:
            return
        context = multiprocessing.get_context("fork")  # a spawned worker would import everything again
        self._conn, child_end = context.Pipe()
        sys.stdout.flush(), sys.stderr.flush()  # else the child would write what is buffered once more
        self._process = context.Process(target=_serve, args=(child_end, self._conn), daemon=True,
                                        name="emorec-figures")
        self._process.start()
        child_end.close()

    def __call__(self, frames: pd.DataFrame, settings: dict, paths: dict[str, Path]) -> None:
        if self._process is None:
            return predict_figures(frames, settings, paths)
        try:
            self._conn.send((frames, settings, paths))
            failure = self._conn.recv()
        except (EOFError, OSError):
            raise RuntimeError(f"the figure worker (pid {self._process.pid}) ended without drawing") from None
        if failure is not None:
            raise failure

    def close(self) -> None:
        """End the worker (it exits when its end of the pipe closes)."""
        if self._process is not None:
            self._conn.close()
            self._process.join(timeout=5)
            if self._process.is_alive():
                self._process.terminate()
            self._process = None

    def __enter__(self) -> FigureWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _serve(conn, parent_end) -> None:
    """The worker: import matplotlib, wait for one job, draw it, answer None or the error."""
    parent_end.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the command's to handle: it closes the pipe
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    import matplotlib.backends.backend_agg  # noqa: F401  (what savefig needs, imported while waiting)
    import matplotlib.figure  # noqa: F401

    try:
        job = conn.recv()
    except EOFError:  # the command ended (or failed) before it had figures to draw
        return
    try:
        predict_figures(*job)
        answer = None
    except (OSError, ValueError) as err:  # the command raises it as its own
        answer = err
    except Exception as err:  # noqa: BLE001 (a bug: its type and message reach the command)
        answer = RuntimeError(f"drawing the figures: {type(err).__name__}: {err}")
    conn.send(answer)
