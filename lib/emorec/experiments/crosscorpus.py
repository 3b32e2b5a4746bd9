"""Cross-corpus evaluation (ours; §6 names Aff-Wild as the next test): the temporal models chosen on
the validation videos of chapters 4.4-4.5, scored on AFEW-VA and Aff-Wild2 with the metrics of §4.2.

Nothing is re-trained or re-fitted on the new corpus: faces are extracted with the same MTCNN settings
at the model's frame rate (§3.2.1), clips of the model's length run over every run of face frames
(§3.2.2, :func:`emorec.predict.track_predictions`), the predictions go onto the corpus' own label
timeline and the post-processing recorded with each checkpoint (fitted on SEWA training and validation
videos, §3.4) is applied as it is. Scores are those of the SEWA test set: CCC, PCC, MAE and MAPE pooled
over the videos (with a 95% bootstrap interval over videos), and the CCC of each video.

The layouts (DESIGN §5.2):

- **AFEW-VA**: ``<NNN>/<NNN>.json`` beside the clip's frames ``<NNN>/<frame>.png``: a folder of frames,
  read at a stated frame rate (the clips come from films, 25 fps); values in -10..10, divided by 10.
- **Aff-Wild2** (ABAW VA): ``VA_Estimation_Challenge/<Set>/<video>.txt`` with one ``valence,arousal``
  row per frame of the video, -5 where the frame has no valid annotation (those rows are excluded),
  and the videos ``<video>.mp4|avi`` anywhere below the root. Files of videos with two annotated
  subjects (``<video>_left.txt``, ``_right.txt``) are skipped: the face extraction keeps one face per
  frame and cannot tell which subject it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import metrics, predict
from ..data import afewva, affwild2, faces, video
from ..paths import resolve
from ..reporting import dataset_description
from .corpus import TARGETS
from .evaluation import SplitPredictions, bootstrap_ccc, score, to_label_timeline

#: AFEW-VA's clips are cut from films at 25 frames per second.
AFEWVA_FRAME_RATE = 25.0
AFFWILD2_SET = "Validation_Set"  # the ABAW test labels are not public
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov")


@dataclass
class Sequence:
    """One annotated video of a corpus: its source (a video file, or a folder of frames read at
    ``frame_rate``) and its valid annotations on their own time line."""

    name: str
    source: Path
    frame_rate: float | None  # the stated rate of a folder of frames; None: the video's own
    label_times: np.ndarray  # seconds
    labels: np.ndarray  # [L, 2] valence, arousal in [-1, 1]


@dataclass
class CrossCorpus:
    """The sequences of one corpus, what was left out and why, and the words of a provenance line."""

    name: str
    root: Path
    sequences: list[Sequence]
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def description(self) -> str:
        return dataset_description(self.name, self.root)


def _root(root, name: str) -> Path:
    path = resolve(root)
    if not path.is_dir():
        raise FileNotFoundError(f"{name} root {path} does not exist (chapter 04_1_datasets lists the layout)")
    return path


def read_afewva(root, frame_rate: float = AFEWVA_FRAME_RATE) -> CrossCorpus:
    """Every clip of an AFEW-VA copy (``<NNN>/<NNN>.json`` + frames), annotations of frames that have
    an image, at ``frame_rate`` frames per second."""
    root = _root(root, "AFEW-VA")
    files = sorted(root.glob("*/*.json"))
    if not files:
        raise ValueError(f"{root}: no AFEW-VA clip (<NNN>/<NNN>.json) found")
    sequences = []
    for path in files:
        labels = afewva.read_clip(path)
        position = {video.frame_number(f): i for i, f in enumerate(video.frame_files(path.parent))}
        have = labels["frame"].isin(list(position))
        if not have.any():
            raise ValueError(f"{path}: none of its annotated frames has an image in {path.parent}")
        times = np.array([position[f] for f in labels.loc[have, "frame"]]) / frame_rate
        sequences.append(Sequence(path.parent.name, path.parent, float(frame_rate), times,
                                  labels.loc[have, list(TARGETS)].to_numpy(float)))
    return CrossCorpus("AFEW-VA", root, sequences)


def read_affwild2(root, split: str = AFFWILD2_SET) -> CrossCorpus:
    """The annotated videos of one Aff-Wild2 set: per-frame labels at the video's rate, -5 rows
    excluded; the label count must match the video's length (:func:`emorec.data.video.check_label_coverage`)."""
    root = _root(root, "Aff-Wild2")
    folder = root / "VA_Estimation_Challenge" / split
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise ValueError(f"{folder}: no Aff-Wild2 VA annotation file (<video>.txt) found")
    videos = {p.stem: p for p in sorted(root.rglob("*")) if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()}
    sequences, skipped = [], {}
    for path in files:
        if path.stem.endswith(("_left", "_right")):
            skipped[path.stem] = "two annotated subjects in one video (one face per frame is extracted)"
            continue
        if path.stem not in videos:
            raise FileNotFoundError(f"{path}: no video {path.stem}{{{','.join(VIDEO_SUFFIXES)}}} below {root}")
        labels = affwild2.read_va(path)
        info = video.video_info(videos[path.stem])
        video.check_label_coverage(info.duration_s, labels["frame"] / info.fps, videos[path.stem], path)
        valid = labels[labels["valid"]]
        if valid.empty:
            skipped[path.stem] = "no valid annotation (every row is -5)"
            continue
        sequences.append(Sequence(path.stem, videos[path.stem], None, valid["frame"].to_numpy(float) / info.fps,
                                  valid[list(TARGETS)].to_numpy(float)))
    return CrossCorpus("Aff-Wild2", root, sequences, skipped)


def _label_predictions(checkpoint, corpus: CrossCorpus, label: str, cache_root: Path, overlap: float) -> list:
    """One label's post-processed predictions on each sequence's label timeline, with their coverage."""
    predictor = predict.load_predictor(checkpoint)
    trained = predictor.trained
    seq_len, fps, tolerance = int(trained["seq_len"]), float(trained["fps"]), float(trained.get("tolerance", 1))
    d = TARGETS.index(label)
    out = []
    for seq in corpus.sequences:
        track = faces.extract_video(seq.source, faces.entry_dir(cache_root / f"{fps:g}fps", seq.source), fps=fps,
                                    progress=False, frame_rate=seq.frame_rate)
        values, _, _ = predict.track_predictions(predictor, track, seq_len, overlap, tolerance)
        kept_times = track.frames.loc[track.frames["kept"], "time"].to_numpy(float)
        on_labels, coverage = to_label_timeline(kept_times, values, seq.label_times, fallback=[0.0, 0.0])
        series = on_labels[:, d]
        if predictor.postprocess is not None:
            series = predict.postprocess_timeline(seq.label_times, series, predictor.postprocess[label])
        out.append((series, coverage))
    return out


def evaluate_cross_corpus(corpus: CrossCorpus, checkpoints: dict[str, str | Path], cache_root, overlap: float = 0.5,
                          n_boot: int = 1000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score one model per label (``{"valence": ckpt, "arousal": ckpt}``) on a corpus read by
    :func:`read_afewva` or :func:`read_affwild2` (§4.2's metrics, as on the SEWA test set).

    Returns ``(pooled, per_video)``: per label, CCC (95% bootstrap interval over videos), PCC, MAE and
    MAPE over the concatenated videos, the mean of the per-video CCCs and the share of label times with
    a face frame within 0.1 s; and per video and label, its CCC. Face crops are cached under
    ``cache_root``."""
    if set(checkpoints) != set(TARGETS):
        raise ValueError(f"checkpoints must name a model for each of {TARGETS}, got {sorted(checkpoints)}")
    if not corpus.sequences:
        raise ValueError(f"{corpus.root}: no {corpus.name} sequence to evaluate")
    cache_root = resolve(cache_root)
    per_label = {label: _label_predictions(checkpoints[label], corpus, label, cache_root, overlap)
                 for label in TARGETS}
    preds = [np.stack([per_label[t][k][0] for t in TARGETS], axis=1) for k in range(len(corpus.sequences))]
    split = SplitPredictions([s.name for s in corpus.sequences], preds, [s.labels for s in corpus.sequences],
                             float(np.mean([c for t in TARGETS for _, c in per_label[t]])))
    pooled, ci = score(split), bootstrap_ccc(split, n_boot, seed)
    per_video = pd.DataFrame([{"corpus": corpus.name, "video": seq.name, "label": label, "labels": len(seq.labels),
                               "CCC": metrics.ccc(seq.labels[:, d], p[:, d])}
                              for seq, p in zip(corpus.sequences, preds) for d, label in enumerate(TARGETS)])
    rows = [{"corpus": corpus.name, "label": label, "videos": len(preds), "CCC": pooled[f"{label}_CCC"],
             "CCC 95% CI": f"[{ci[f'{label}_CCC_lo']:.3f}, {ci[f'{label}_CCC_hi']:.3f}]",
             "PCC": pooled[f"{label}_PCC"], "MAE": pooled[f"{label}_MAE"], "MAPE (%)": pooled[f"{label}_MAPE"],
             "mean per-video CCC": per_video.loc[per_video["label"] == label, "CCC"].mean(),
             "label coverage": float(np.mean([c for _, c in per_label[label]]))} for label in TARGETS]
    return pd.DataFrame(rows), per_video


def cache_root_for(data_root, corpus: CrossCorpus) -> Path:
    """Where the face crops of a cross-corpus copy go: ``data/cross-<corpus>/faces`` (the copy itself
    is left untouched)."""
    return resolve(data_root) / f"cross-{corpus.name.lower()}" / "faces"


__all__ = ["AFEWVA_FRAME_RATE", "AFFWILD2_SET", "CrossCorpus", "Sequence", "cache_root_for", "evaluate_cross_corpus",
           "read_afewva", "read_affwild2"]
