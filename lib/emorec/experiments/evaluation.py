"""From clip predictions to the paper's scores on the 10 Hz label timeline (§3.4, §4.2).

Decisions the paper leaves open, made once here for every model (DESIGN §6):

- **What is scored.** Every 10 Hz annotation of every video of a split, whatever the model's
  frame rate, sequence length or overlap, so that all configurations of a table are scored on
  the same targets. A clip's prediction is spread over the frames it covers; a frame covered by
  several overlapping clips takes their mean; the label timeline takes the prediction of the
  nearest kept frames by linear interpolation in time (held at the ends). Frames without a face
  are thereby bridged, not scored as missing. A video with no clip at all gets the training-label
  mean (and the coverage column says so).
- **Post-processing** (§3.4): the shift, centring and scaling of :mod:`emorec.postprocess`, fitted
  per dimension on the training and validation predictions only; the shift ``t`` is counted in
  label steps (0.1 s), as the paper's ``t ∈ [−10, 10]``.
- **Scores** (§4.2): CCC and PCC pooled over the concatenated videos of the split (AVEC practice),
  MAE, and MAPE with zero labels skipped; a 95% bootstrap interval of the CCC resamples whole
  test videos.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import metrics
from ..postprocess import PostprocessParams, apply_postprocess, fit_postprocess
from .corpus import TARGETS, VideoRecord


def spread_clip_predictions(n_kept: int, starts, seq_len: int, clip_preds) -> np.ndarray:
    """Per kept frame, the mean prediction of the clips covering it; NaN where none does.

    ``starts``: first crop index of each clip (clips cover ``seq_len`` consecutive kept crops);
    ``clip_preds``: [n_clips, D]. A video too short for any clip (no face run of ``seq_len``) gets NaN
    everywhere, and the timeline's fallback fills it."""
    clip_preds = np.asarray(clip_preds, float)
    clip_preds = clip_preds.reshape(len(starts), clip_preds.shape[-1] if clip_preds.ndim == 2 else -1)
    sums = np.zeros((n_kept, clip_preds.shape[1]))
    counts = np.zeros(n_kept)
    for start, pred in zip(np.asarray(starts, int), clip_preds):
        sums[start:start + seq_len] += pred
        counts[start:start + seq_len] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None]


def to_label_timeline(frame_times, frame_preds, label_times, fallback) -> tuple[np.ndarray, float]:
    """Predictions at the label times by linear interpolation over the frames that have one.

    Returns ``([L, D] predictions, coverage)`` where coverage is the share of label times within
    0.1 s of a predicted frame. ``fallback`` ([D]) fills a video without any prediction."""
    frame_preds = np.asarray(frame_preds, float)
    label_times = np.asarray(label_times, float)
    known = np.isfinite(frame_preds).all(axis=1)
    if not known.any():
        return np.tile(np.asarray(fallback, float), (len(label_times), 1)), 0.0
    times = np.asarray(frame_times, float)[known]
    out = np.stack([np.interp(label_times, times, frame_preds[known, d]) for d in range(frame_preds.shape[1])], 1)
    right = np.clip(np.searchsorted(times, label_times), 1, len(times) - 1) if len(times) > 1 else np.zeros(
        len(label_times), int)
    nearest = np.minimum(np.abs(label_times - times[right]), np.abs(label_times - times[np.maximum(right - 1, 0)]))
    return out, float((nearest <= 0.1 + 1e-9).mean())


@dataclass
class SplitPredictions:
    """Predictions of one split on the label timeline: one [L, 2] array per video, and the labels."""

    videos: list[str]
    preds: list[np.ndarray]
    labels: list[np.ndarray]
    coverage: float

    def dim(self, d: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return [p[:, d] for p in self.preds], [y[:, d] for y in self.labels]


def timeline_predictions(records: list[VideoRecord], frame_preds: list[np.ndarray], fallback) -> SplitPredictions:
    """Per-kept-frame predictions of each video → predictions on its label timeline."""
    preds, covs = [], []
    for record, fp in zip(records, frame_preds):
        p, c = to_label_timeline(record.kept_times, fp, record.label_times, fallback)
        preds.append(p)
        covs.append(c)
    return SplitPredictions([r.video for r in records], preds, [r.labels for r in records],
                            float(np.mean(covs)) if covs else float("nan"))


def score(split: SplitPredictions) -> dict[str, float]:
    """CCC, PCC (pooled over the split's videos), MAE and MAPE per target (Eqs. (4)-(7))."""
    out = {}
    for d, name in enumerate(TARGETS):
        p, y = split.dim(d)
        p, y = np.concatenate(p), np.concatenate(y)
        out[f"{name}_CCC"] = metrics.ccc(y, p)
        out[f"{name}_PCC"] = metrics.pcc(y, p)
        out[f"{name}_MAE"] = metrics.mae(y, p)
        out[f"{name}_MAPE"] = metrics.mape(y, p, on_zero="skip")
    return out


def bootstrap_ccc(split: SplitPredictions, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Percentile bootstrap interval of the pooled CCC, resampling whole videos with replacement (§4.2, ours)."""
    if not (isinstance(n_boot, (int, np.integer)) and n_boot >= 1):  # 0 would give a NaN interval
        raise ValueError(f"n_boot must be an integer >= 1, got {n_boot!r}")
    rng = np.random.default_rng(seed)
    n = len(split.videos)
    out = {}
    for d, name in enumerate(TARGETS):
        p, y = split.dim(d)
        values = []
        for _ in range(n_boot):
            pick = rng.integers(0, n, n)
            yy, pp = np.concatenate([y[i] for i in pick]), np.concatenate([p[i] for i in pick])
            if yy.std() > 0:
                values.append(metrics.ccc(yy, pp))
        lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2]) if values else (np.nan, np.nan)
        out[f"{name}_CCC_lo"], out[f"{name}_CCC_hi"] = float(lo), float(hi)
    return out


def fit_and_apply_postprocessing(train: SplitPredictions, validation: SplitPredictions,
                                 test: SplitPredictions, max_shift: int = 10) -> tuple[SplitPredictions, dict]:
    """§3.4 fitted on train/validation per target, applied to test; returns (test after, params)."""
    params: dict[str, PostprocessParams] = {}
    columns = []
    for d, name in enumerate(TARGETS):
        params[name] = fit_postprocess(*train.dim(d), *validation.dim(d), max_shift=max_shift)
        columns.append(apply_postprocess(test.dim(d)[0], params[name]))
    preds = [np.stack([columns[d][i] for d in range(len(TARGETS))], 1) for i in range(len(test.videos))]
    return SplitPredictions(test.videos, preds, test.labels, test.coverage), params


def save_predictions(path, raw: SplitPredictions, processed: SplitPredictions) -> None:
    """Test predictions on the label timeline, before and after post-processing, with the labels,
    one entry per video (``<video>/raw``, ``<video>/post``, ``<video>/labels``) in an ``.npz``."""
    arrays = {}
    for i, video in enumerate(raw.videos):
        arrays.update({f"{video}/raw": raw.preds[i], f"{video}/post": processed.preds[i],
                       f"{video}/labels": raw.labels[i]})
    np.savez(path, **arrays)


def load_predictions(path) -> dict[str, dict[str, np.ndarray]]:
    """What :func:`save_predictions` wrote: ``{video: {"raw", "post", "labels"}}``."""
    out: dict[str, dict[str, np.ndarray]] = {}
    with np.load(path) as saved:
        for key in saved.files:
            video, kind = key.split("/")
            out.setdefault(video, {})[kind] = saved[key]
    return out


def evaluate_splits(splits: dict[str, SplitPredictions], max_shift: int = 10, n_boot: int = 1000,
                    seed: int = 0, save_to=None) -> dict:
    """The result row of one model: test scores before and after post-processing, validation CCC
    (for choosing configurations), bootstrap intervals, the post-processing chosen. With
    ``save_to`` (an ``.npz`` path) the test predictions are kept too (:func:`save_predictions`)."""
    test_pp, params = fit_and_apply_postprocessing(splits["train"], splits["validation"], splits["test"],
                                                   max_shift)
    if save_to is not None:
        save_predictions(save_to, splits["test"], test_pp)
    row = {f"raw_{k}": v for k, v in score(splits["test"]).items()}
    row.update(score(test_pp))
    row.update(bootstrap_ccc(test_pp, n_boot, seed))
    val = score(splits["validation"])
    row.update({f"val_{name}_CCC": val[f"{name}_CCC"] for name in TARGETS})
    for name, p in params.items():
        row[f"val_pp_{name}_CCC"] = max(p.val_ccc.values())  # validation CCC after the kept steps
        row[f"{name}_postprocess"] = {"shift": p.shift, "kept": list(p.kept), "offset": p.offset,
                                      "pivot": p.pivot, "factor": p.factor}
    row["coverage"] = splits["test"].coverage
    return row


def best_per_label(rows, group_keys=("init", "fps"), by: str = "val_pp") -> list[dict]:
    """Per group and per label, the row with the best VALIDATION CCC (§4.4: the best configuration per
    label; Tables 4-6): ``by="val_pp"`` ranks on the validation CCC after the post-processing chosen on
    validation (the scale of the reported test scores), ``"val"`` on the raw one. The test set plays
    no part in the choice; a tie keeps the earlier row; rows whose ``status`` is not "ok" are skipped.
    Returns ``[{**group, "label": label, "row": row}]``."""
    if by not in ("val_pp", "val"):
        raise ValueError(f"by must be 'val_pp' or 'val', got {by!r}")
    best: dict[tuple, dict] = {}
    for row in rows:
        if row.get("status", "ok") != "ok":
            continue
        for label in TARGETS:
            key = tuple(row[k] for k in group_keys) + (label,)
            if key not in best or row[f"{by}_{label}_CCC"] > best[key][f"{by}_{label}_CCC"]:
                best[key] = row
    return [{**dict(zip(group_keys, key[:-1])), "label": key[-1], "row": row} for key, row in best.items()]


def seed_spread(values) -> dict[str, float]:
    """Mean, min, max and standard deviation of one score over seeds (ours: the spread beside the
    bootstrap interval over videos)."""
    values = np.asarray(values, float)
    return {"mean": float(values.mean()), "min": float(values.min()), "max": float(values.max()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0, "n": int(len(values))}


def seed_columns(runs: list[dict], label: str, prefix: str = "") -> dict:
    """Table columns of one label's test CCC over the seeds of a configuration (``runs``: one result row
    per seed): "mean ± standard deviation" and "min–max (number of seeds)", two text columns so that
    the tables that carry them fit the page (ours)."""
    spread = seed_spread([r[f"{label}_CCC"] for r in runs])
    return {f"{prefix}CCC over seeds": f"{spread['mean']:.3f} ± {spread['std']:.3f}",
            f"{prefix}seed range": f"{spread['min']:.3f}–{spread['max']:.3f} ({spread['n']})"}


def claim_word(holds_per_seed) -> str:
    """"holds" if a claim holds for every seed, "does not hold" if for none, "mixed" otherwise (ours)."""
    flags = [bool(v) for v in holds_per_seed]
    if not flags:
        raise ValueError("no seed to judge the claim on")
    return "holds" if all(flags) else "does not hold" if not any(flags) else "mixed"


def best_model_per_label(chosen: dict[str, dict]) -> dict[str, str]:
    """Per label, the model whose chosen row has the highest post-processed **validation** CCC.

    ``chosen``: model name → {label → result row} (e.g. the best 2D-CNN-LSTM of §4.4 and the best
    i3D-CNN of §4.5, as their chapters record them). As everywhere in the book (§4.4: the best
    configuration per label), the test set plays no part in the choice; a tie goes to the first model."""
    labels = [label for label in TARGETS if all(label in rows for rows in chosen.values())]
    return {label: max(chosen, key=lambda name: chosen[name][label][f"val_pp_{label}_CCC"]) for label in labels}


#: The complete checkpoint each temporal model's run leaves in its artefact folder.
CHECKPOINT_FILES = {"2D-CNN-LSTM": "model.pt", "i3D-CNN": "best.pt"}


def chosen_checkpoints(chosen: dict[str, dict]) -> tuple[dict[str, str], dict[str, Path]]:
    """Per label, the temporal model chosen on validation (:func:`best_model_per_label`) and the
    checkpoint of its row (``row["folder"]`` as the chapters record it), for ``emorec predict`` and
    the cross-corpus evaluation (ours)."""
    names = best_model_per_label(chosen)
    return names, {label: Path(chosen[name][label]["folder"]) / CHECKPOINT_FILES[name] for label, name in names.items()}


#: ``--model`` choices of ``emorec predict``: summary name and chapter of each temporal model.
BOOK_MODELS = {"cnn_lstm": ("2D-CNN-LSTM", "04_4_cnn_lstm"), "i3d": ("i3D-CNN", "04_5_i3d")}


def book_checkpoints(artefact_root, profile: str, model: str = "best") -> dict[str, Path]:
    """Per label, the checkpoint of the latest book build of ``profile`` that ``emorec predict`` uses
    with no ``--checkpoint`` (ours): ``model="best"`` takes, per label, the temporal model chosen on
    validation (:func:`chosen_checkpoints`, as chapters 5 and 6 choose it); ``"cnn_lstm"`` or
    ``"i3d"`` the best configuration per label of that chapter (§4.4, §4.5). Read from the chapters'
    summaries; FileNotFoundError saying to build the book when a summary or a checkpoint is missing,
    or what is not run yet when a summary is incomplete (:func:`emorec.experiments.cache.write_summary`)."""
    from ..paths import resolve
    from ..reporting import display_path
    from .cache import NotRunYet, read_summary

    if model not in ("best", *BOOK_MODELS):
        raise ValueError(f"unknown model {model!r}; choose best, {', '.join(BOOK_MODELS)} or a checkpoint path")
    build = "make book" + ("" if profile == "cpu" else f" PROFILE={profile}")
    chosen = {}
    for name, (title, chapter) in BOOK_MODELS.items():
        if model in ("best", name):
            try:
                chosen[title] = read_summary(artefact_root, profile, name, chapter)["best"]
            except FileNotFoundError:
                raise FileNotFoundError(f"no book build of profile {profile!r} under "
                                        f"{display_path(resolve(artefact_root))} (chapter "
                                        f"{chapter}'s summary is missing): run `{build}` first, or give "
                                        f"--checkpoint") from None
            except NotRunYet as err:  # the chapter ran before `emorec run` had made all it reads
                raise FileNotFoundError(f"{err}; or give --checkpoint") from None
    _, checkpoints = chosen_checkpoints(chosen)
    for label, path in checkpoints.items():
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the {label} checkpoint of the book's summary is missing; "
                                    f"run `{build}` again")
    return checkpoints
