"""What the corpora look like: split tables, label distributions, frames, annotator traces, class
balance and MTCNN keep rates, for the datasets chapter (§4.1). Works on the synthetic corpora and on
real copies indexed by :func:`emorec.data.sewa.load_sewa` / :func:`emorec.data.rafdb.read_labels`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from emorec.data import rafdb, sewa, video

# The paper's protocol on SEWA-DB (§4.1): 28 train, 6 validation, official devel (14) as test.
PAPER_SPLIT_VIDEOS = {"train": 28, "validation": 6, "test": 14}
SPLIT_ORDER = ["train", "validation", "test"]


def corpus_labels(corpus: pd.DataFrame) -> pd.DataFrame:
    """All gold-standard (fused) labels of a corpus index: columns ``video, split, time, valence, arousal``."""
    parts = []
    for _, row in corpus.iterrows():
        df = sewa.read_video_labels(row)
        parts.append(df.assign(video=row["video"], split=row["split"]))
    return pd.concat(parts, ignore_index=True)[["video", "split", "time", "valence", "arousal"]]


def split_summary(corpus: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Videos, subjects, groups, minutes and label statistics per split, beside the paper's counts (§4.1)."""
    rows = []
    for split in [s for s in SPLIT_ORDER if s in set(corpus["split"])] + \
            sorted(set(corpus["split"]) - set(SPLIT_ORDER)):
        c = corpus[corpus["split"] == split]
        lab = labels[labels["split"] == split]
        rows.append({
            "split": split, "videos": len(c), "paper videos": PAPER_SPLIT_VIDEOS.get(split),
            "subjects": c["subject"].nunique(), "groups": c["group"].nunique(),
            "minutes": round(len(lab) * 0.1 / 60, 1),
            "valence mean": round(lab["valence"].mean(), 3), "valence std": round(lab["valence"].std(), 3),
            "arousal mean": round(lab["arousal"].mean(), 3), "arousal std": round(lab["arousal"].std(), 3),
        })
    return pd.DataFrame(rows).set_index("split")


def annotation_traces(row) -> pd.DataFrame:
    """One video's annotators, their fusion and (synthetic corpus only) the latent truth, at 10 Hz.

    Columns ``time``, ``<dim>:<annotator>``, ``<dim>:fused``, ``<dim>:latent`` for dim in valence, arousal.
    AVEC's label files hold only the fused gold standard: then ``time`` and ``<dim>:fused`` alone.
    """
    if row["label_format"] == "avec":
        labels = sewa.read_video_labels(row)
        return pd.DataFrame({"time": labels["time"], "valence:fused": labels["valence"],
                             "arousal:fused": labels["arousal"]})
    out = None
    for dim in ("valence", "arousal"):
        ann = sewa.read_annotations(row[f"{dim}_path"])
        ann = ann.rename(columns={c: f"{dim}:{c}" for c in ann.columns if c != "time"})
        out = ann if out is None else out.merge(ann, on="time")
    if isinstance(row.get("latent_path"), str):
        lat = np.load(row["latent_path"])
        for dim in ("valence", "arousal"):
            out[f"{dim}:latent"] = np.interp(out["time"], lat["time"], lat[dim])
    return out


def lag_estimate(trace: np.ndarray, latent: np.ndarray, rate: float = 10.0, max_lag_s: float = 2.0) -> float:
    """The delay (s) maximising the correlation of ``trace`` with the earlier ``latent`` (§3.4's delay)."""
    best, best_k = -np.inf, 0
    for k in range(int(max_lag_s * rate) + 1):
        a, b = trace[k:], latent[: len(latent) - k]
        if len(a) < 10 or a.std() == 0 or b.std() == 0:
            continue
        r = np.corrcoef(a, b)[0, 1]
        if r > best:
            best, best_k = r, k
    return best_k / rate


def sample_frames(corpus: pd.DataFrame, per_group: int = 1, at_fraction: float = 0.5) -> list:
    """``(video, group, time_s, rgb)`` for ``per_group`` videos of each group, a frame at ``at_fraction``
    of the video, moved to the nearest instant where the face is fully visible when the latent says so."""
    out = []
    for group, rows in corpus.sort_values("video").groupby("group"):
        for _, row in rows.head(per_group).iterrows():
            info = video.video_info(row["video_path"])
            target = int(at_fraction * info.n_frames)
            # A row of only text columns (AVEC's) turns None into NaN: test for a path, not for truth.
            if isinstance(row.get("latent_path"), str):
                visible = np.load(row["latent_path"])["visible"]
                ok = np.flatnonzero(visible > 0.99)
                if ok.size:
                    target = int(ok[np.argmin(np.abs(ok - target))])
            for i, t, rgb in video.iter_frames(row["video_path"]):
                if i == target:
                    out.append((row["video"], group, t, rgb))
                    break
    return out


def raf_class_table(labels: pd.DataFrame) -> pd.DataFrame:
    """Images per class and split beside RAF-DB's real counts and shares (§4.1)."""
    from emorec.data.synthetic import RAF_COUNTS
    rows = []
    for k, emotion in enumerate(rafdb.EMOTIONS):
        row = {"emotion": emotion}
        for split in ("train", "test"):
            ours = int(((labels["split"] == split) & (labels["label"] == k)).sum())
            row[f"{split} (ours)"] = ours
            row[f"{split} share (ours)"] = round(ours / max(1, (labels["split"] == split).sum()), 3)
            row[f"{split} (RAF-DB)"] = RAF_COUNTS[split][k]
            row[f"{split} share (RAF-DB)"] = round(RAF_COUNTS[split][k] / sum(RAF_COUNTS[split]), 3)
        rows.append(row)
    return pd.DataFrame(rows).set_index("emotion")


def keep_rates(corpus: pd.DataFrame, fps: float, extractor=None, max_videos: int | None = None) -> pd.DataFrame:
    """Share of sampled frames in which MTCNN finds a face, per video (§3.2.1).

    Frames are sampled at ``fps`` with :func:`emorec.data.video.iter_frames` and passed to
    ``emorec.data.faces.FaceExtractor.detect``. When the synthetic latent file is there, the keep rate
    is also split by whether the face was fully visible or mostly hidden (out of frame / occluded).
    """
    from emorec.data.faces import FaceExtractor
    extractor = extractor or FaceExtractor()
    rows = []
    for _, row in corpus.sort_values("video").head(max_videos).iterrows():
        idx, frames = [], []
        for i, _, rgb in video.iter_frames(row["video_path"], fps):
            idx.append(i)
            frames.append(rgb)
        kept = np.concatenate([~np.isnan(extractor.detect(np.stack(frames[s:s + 64]))[1])
                               for s in range(0, len(frames), 64)])
        rec = {"video": row["video"], "split": row["split"], "group": row["group"],
               "sampled": len(kept), "keep rate": kept.mean()}
        if isinstance(row.get("latent_path"), str):
            visible = np.load(row["latent_path"])["visible"][np.array(idx)]
            rec["keep | visible"] = kept[visible > 0.99].mean() if (visible > 0.99).any() else np.nan
            rec["keep | hidden"] = kept[visible < 0.3].mean() if (visible < 0.3).any() else np.nan
            rec["hidden share"] = float((visible < 0.3).mean())
        rows.append(rec)
    return pd.DataFrame(rows)
