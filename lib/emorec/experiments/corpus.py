"""The video corpus of §4.1 as the experiments of §4.4-4.5 see it: faces, labels per face, splits.

One call, :func:`prepare_corpus`, goes from a SEWA-DB(-like) folder to everything a model needs:

1. the synthetic SEWA-like corpus is generated on first use (or a real copy is indexed, §4.1);
2. faces are extracted with MTCNN at the chosen frame rate into the crop cache (§3.2.1);
3. the 10 Hz fused labels (mean of the annotators) are replicated onto the kept frames by their
   timestamps (§3.2.1), giving one (valence, arousal) pair per face crop.

The 10 Hz label timeline of each video is kept as well: it is what predictions are scored against
(:mod:`emorec.experiments.evaluation`), whatever the frame rate a model was trained at.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import faces, sewa, video
from ..data.faces import FaceTrack
from ..paths import resolve
from ..reporting import dataset_description
from .cache import data_fingerprint

SPLITS = ("train", "validation", "test")
TARGETS = ("valence", "arousal")


@dataclass
class VideoRecord:
    """One video: its face track, a label per kept face, and its 10 Hz label timeline."""

    video: str
    subject: str
    split: str
    track: FaceTrack
    frame_labels: np.ndarray  # float32 [N_kept, 2] (valence, arousal) per kept crop
    label_times: np.ndarray  # float [L] seconds, the annotation timeline (10 Hz in SEWA)
    labels: np.ndarray  # float [L, 2] fused annotations: the evaluation targets

    @property
    def kept_times(self) -> np.ndarray:
        frames = self.track.frames
        return frames.loc[frames["kept"], "time"].to_numpy(float)


@dataclass
class Corpus:
    """The videos of one corpus at one sampling rate, with where they came from."""

    videos: list[VideoRecord]
    fps: float
    description: str  # "synthetic SEWA-like corpus (profile cpu, seed 0)" or "SEWA-DB at <path>"
    fingerprint: str  # of the source files and the face-extraction settings
    synthetic: bool = False  # generated faces (no real root given)
    profile: str = ""
    seed: int = 0

    def trained_on(self) -> dict:
        """What a checkpoint trained on this corpus records about its data (ours): plain str/bool/int
        only, so that ``torch.load(..., weights_only=True)`` reads it."""
        from ..reporting import git_commit

        return {"data": str(self.description), "synthetic": bool(self.synthetic), "profile": str(self.profile),
                "seed": int(self.seed), "commit": git_commit()}

    def split(self, name: str) -> list[VideoRecord]:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; choose one of {SPLITS}")
        return [v for v in self.videos if v.split == name]

    def summary(self) -> pd.DataFrame:
        """Videos, subjects, kept faces and keep rate per split."""
        rows = []
        for name in SPLITS:
            part = self.split(name)
            rows.append({"split": name, "videos": len(part), "subjects": len({v.subject for v in part}),
                         "kept faces": int(sum(len(v.frame_labels) for v in part)),
                         "keep rate": float(np.mean([v.track.keep_rate for v in part])) if part else np.nan})
        return pd.DataFrame(rows).set_index("split")


def face_cache_root(data_root, profile: str, fps: float, sewa_root=None, track_every: int | None = None) -> Path:
    """Where the crops of a corpus live: beside the synthetic data, or under ``data/real-sewa``
    for a real copy (which is left untouched). Tracked extraction (``track_every``) has a folder of
    its own, so switching it on or off never replaces the other's entries."""
    base = resolve(data_root) / (profile if sewa_root is None else "real-sewa")
    return base / "faces" / (f"{fps:g}fps" + (f"-track{track_every}" if track_every else ""))


def _labels_for(row: pd.Series, track: FaceTrack) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = sewa.read_video_labels(row)
    label_path = row["label_path"] or row["valence_path"]
    duration = track.frames["time"].max() + 1.0 / track.meta["sampling_fps"]
    video.check_label_coverage(duration, labels["time"], row["video_path"], label_path)
    values = labels[list(TARGETS)].to_numpy(float)
    kept = track.frames.loc[track.frames["kept"], "time"].to_numpy(float)
    per_face = video.replicate_labels(kept, labels["time"].to_numpy(float), values,
                                      video_path=row["video_path"], label_path=label_path)
    return per_face.astype(np.float32), labels["time"].to_numpy(float), values


def sewa_index(data_root="data", profile: str = "cpu", seed: int = 0, sewa_root=None, split_file=None) -> pd.DataFrame:
    """The video index (:func:`emorec.data.sewa.load_sewa`) of the corpus in use (§4.1): the real copy at
    ``sewa_root`` when given, else the synthetic corpus of ``profile`` (generated on first use). Every
    video must be in a train/validation/test split. ``attrs`` holds ``root`` and ``description`` (the
    words of the provenance lines: ``"SEWA-DB at <root>"`` or the synthetic corpus)."""
    if sewa_root is None:
        from ..data import synthetic  # here only: it imports scipy.ndimage (0.3 s), which predict does not need

        root = synthetic.ensure_corpora(data_root, profile, seed)["sewa"]
        description = f"synthetic SEWA-like corpus (profile {profile}, seed {seed})"
    else:
        root = resolve(sewa_root)
        if not root.is_dir():
            raise FileNotFoundError(f"sewa_root {root} does not exist: point it at a SEWA-DB copy "
                                    f"(see chapter 04_1_datasets for the expected layout)")
        description = dataset_description("SEWA-DB", root)
    index = sewa.load_sewa(root, split_file=resolve(split_file) if split_file else None)
    unassigned = sorted(index.loc[~index["split"].isin(SPLITS), "video"])
    if unassigned:
        raise ValueError(f"{root}: videos {unassigned[:5]} have no train/validation/test split; give a "
                         f"split file (CSV video,split) as sewa_split_file")
    index.attrs.update(root=str(root), description=description)
    return index


def prepare_corpus(data_root="data", profile: str = "cpu", seed: int = 0, fps: float = 10,
                   sewa_root=None, split_file=None, crop_size=(100, 80), progress: bool = False,
                   track_every: int | None = None) -> Corpus:
    """Index, extract faces from and label a SEWA-DB(-like) corpus (§3.2.1, §4.1).

    Without ``sewa_root`` the synthetic corpus of ``profile`` is generated on first use under
    ``data_root``; with it, a real SEWA-DB (raw or AVEC layout) copy is read, and ``split_file``
    (CSV ``video,split``) gives the paper's train/validation/test protocol. Face crops are cached
    (a second call costs seconds). ``track_every`` = k: the full MTCNN cascade on every k-th sampled
    frame and the face tracked in between (:class:`emorec.data.faces.FaceTracker`); None or 0, the
    paper's detection in every frame."""
    index = sewa_index(data_root, profile, seed, sewa_root, split_file)
    root = Path(index.attrs["root"])
    description = index.attrs["description"]
    tracks = faces.extract_corpus(index["video_path"], face_cache_root(data_root, profile, fps, sewa_root, track_every),
                                  fps=fps, crop_size=tuple(crop_size), progress=progress,
                                  extractor=faces.FaceExtractor(track_every=track_every or None))
    records = []
    for _, row in index.iterrows():
        track = tracks[Path(row["video_path"]).stem]
        frame_labels, label_times, labels = _labels_for(row, track)
        records.append(VideoRecord(row["video"], str(row["subject"]), row["split"], track, frame_labels,
                                   label_times, labels))
    # Label files by content; videos through the face cache keys (which hold each video's SHA-1
    # and the detector settings), so new videos, labels or detector settings give a new fingerprint.
    faces_key = repr(sorted((r.video, r.track.meta["key"]) for r in records))
    fingerprint = hashlib.sha256((data_fingerprint(root, "**/*.csv") + faces_key).encode()).hexdigest()
    return Corpus(records, float(fps), description, fingerprint, synthetic=sewa_root is None, profile=profile,
                  seed=int(seed))
