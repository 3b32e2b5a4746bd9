"""The annotated video of ``emorec predict --mp4``: face box, values and a valence × arousal panel (ours)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from .. import storage
from ..data import video
from .model import TARGETS


def _draw_panel(img: np.ndarray, history: np.ndarray, value, size: int = 90, margin: int = 6) -> None:
    """A small valence × arousal panel in the top-right corner: unit circle, axes, recent path, marker."""
    h, w = img.shape[:2]
    size = min(size, h - 2 * margin, w - 2 * margin)
    x0, y0 = w - size - margin, margin
    roi = img[y0:y0 + size, x0:x0 + size]
    roi[:] = (0.35 * roi + 0.65 * 255).astype(np.uint8)  # a light translucent background
    c, r = size // 2, size // 2 - 4

    def to_px(v, a):
        return int(round(x0 + c + v * r)), int(round(y0 + c - a * r))

    cv2.circle(img, (x0 + c, y0 + c), r, (90, 90, 90), 1, cv2.LINE_AA)
    cv2.line(img, (x0 + 2, y0 + c), (x0 + size - 2, y0 + c), (150, 150, 150), 1)
    cv2.line(img, (x0 + c, y0 + 2), (x0 + c, y0 + size - 2), (150, 150, 150), 1)
    pts = [to_px(v, a) for v, a in history if np.isfinite(v) and np.isfinite(a)]
    for p, q in zip(pts, pts[1:]):
        cv2.line(img, p, q, (200, 120, 60), 1, cv2.LINE_AA)
    if value is not None:
        cv2.circle(img, to_px(*value), 4, (220, 40, 40), -1, cv2.LINE_AA)
    cv2.putText(img, "V", (x0 + size - 12, y0 + c - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (60, 60, 60), 1)
    cv2.putText(img, "A", (x0 + c + 3, y0 + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (60, 60, 60), 1)


def annotate_frame(rgb: np.ndarray, row, history: np.ndarray) -> np.ndarray:
    """One frame of the annotated video: the face box, the values as text, the valence × arousal panel."""
    img = np.ascontiguousarray(rgb).copy()
    has_value = bool(np.isfinite(row.valence) and np.isfinite(row.arousal))
    if row.face:
        cv2.rectangle(img, (int(round(row.x1)), int(round(row.y1))), (int(round(row.x2)), int(round(row.y2))),
                      (40, 200, 40), 2)
    text = f"V {row.valence:+.2f}  A {row.arousal:+.2f}" if has_value else (
        "no face" if not row.face else "face (no clip)")
    cv2.putText(img, text, (6, img.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 2, cv2.LINE_AA)
    cv2.putText(img, text, (6, img.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (20, 20, 20), 1, cv2.LINE_AA)
    _draw_panel(img, history, (row.valence, row.arousal) if has_value else None)
    return img


def write_annotated_video(video_path, frames: pd.DataFrame, path, fps: float, trail: int = 20,
                          progress: bool = False, shown_as=None) -> Path:
    """The video at the sampling rate with the face box and a live valence/arousal marker, as MP4
    (OpenCV ``mp4v``), written to a temporary name, reopened and its frames counted
    (:func:`emorec.data.video.check_written_video`), then renamed into place. Errors name
    ``shown_as`` (default: ``path``)."""
    path = Path(path)
    rows = {int(r.source_frame): r for r in frames.itertuples(index=False)}
    values = frames[list(TARGETS)].to_numpy(float)
    position = {int(sf): i for i, sf in enumerate(frames["source_frame"])}
    writer, written = None, 0
    with storage.atomic_path(path, ".mp4") as tmp:
        try:
            for index, _, rgb in tqdm(video.iter_frames(video_path, fps), total=len(frames),
                                      desc="annotated video", unit="frame", disable=not progress, leave=False):
                if index not in rows:
                    continue
                if writer is None:
                    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps),
                                             (rgb.shape[1], rgb.shape[0]))
                    if not writer.isOpened():
                        raise ValueError(f"{shown_as or path}: OpenCV cannot open an mp4v writer here")
                i = position[index]
                writer.write(cv2.cvtColor(annotate_frame(rgb, rows[index], values[max(0, i - trail):i + 1]),
                                          cv2.COLOR_RGB2BGR))
                written += 1
        finally:
            if writer is not None:
                writer.release()
        if writer is None:
            raise ValueError(f"{video_path}: no frame to annotate")
        video.check_written_video(tmp, written, shown_as or path)
    return path

