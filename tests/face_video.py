"""Small real-face test videos for the face-extraction and clip tests.

scikit-image's astronaut photo (a real face that ships with the package) is pasted into moving
320×240 frames and written as an Xvid AVI at 50 fps, like SEWA's chat videos. Frames in
``blank`` (source frame numbers) show no face, so MTCNN must drop them.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import skimage.data

FACE_H, FACE_W = 200, 170


def astronaut_face() -> np.ndarray:
    """Head and shoulders of the astronaut, RGB uint8 [200, 170, 3] (the face is ~100 px tall)."""
    return cv2.resize(skimage.data.astronaut()[10:280, 110:340], (FACE_W, FACE_H), interpolation=cv2.INTER_AREA)


def face_offset(i: int) -> tuple[int, int]:
    """Top-left corner (x, y) of the pasted photo in source frame ``i``: a slow head sway."""
    return int(round(70 + 50 * np.sin(i / 25))), int(round(20 + 12 * np.cos(i / 30)))


def face_frames(n_frames: int = 150, blank: range = range(0)):
    """The frames of the test video, RGB uint8 [240, 320, 3], one by one."""
    face = astronaut_face()
    for i in range(n_frames):
        frame = np.full((240, 320, 3), 96, np.uint8)
        frame[:, :, 2] = 120 + (i % 7)  # a faintly changing background
        if i not in blank:
            x, y = face_offset(i)
            frame[y:y + FACE_H, x:x + FACE_W] = face
        yield frame


def write_face_video(path: Path, n_frames: int = 150, blank: range = range(0), fps: float = 50.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"XVID"), fps, (320, 240))
    assert writer.isOpened(), "OpenCV cannot write Xvid here"
    for frame in face_frames(n_frames, blank):
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_face_frames(folder: Path, n_frames: int = 150, blank: range = range(0)) -> Path:
    """The same frames as a folder of PNG images ``00000.png`` ... (AFEW-VA's layout)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(face_frames(n_frames, blank)):
        cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder
