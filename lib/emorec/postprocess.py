"""Post-processing of valence/arousal predictions (paper §3.4, Eqs. (1)-(3)).

The paper names three steps (scale normalisation, mean filtering, time delay) and writes one
equation for each, but leaves open which are applied, in which order, and how they are chosen.
This module implements each equation *literally* and, separately, the pipeline the book uses.

Literal equations (what the paper prints):

* :func:`scale_normalize`, Eq. (1): ``(y' - mean(l_tr)) / std(l_tr)``. Read literally this turns
  predictions into z-scores *of the label distribution*, which changes their unit; as a CCC-raising
  step it only makes sense with the predictions' own statistics (below).
* :func:`mean_filter`, Eq. (2): ``y' - mean(l_tr) + mean(y'_tr)``. Read literally it moves the
  predictions *away* from the label mean by the training bias; the stated aim ("centering
  predictions around mean values") needs the two means swapped (below).
* :func:`time_shift`, Eq. (3): ``y_td(f) = y'(f + t)``, with the ends *held* (the edge value is
  repeated, never wrapped around).

The pipeline (:func:`fit_postprocess` / :func:`apply_postprocess`), in this order, each step kept
only if it raises the pooled validation CCC:

1. **shift** (Eq. (3)): ``t`` in ``[-max_shift, max_shift]`` maximising validation CCC. Annotators
   react late, so labels lag the face: a lag of ``L`` frames is undone by ``t = -L``. Applied per
   sequence (video).
2. **center** (Eq. (2), means swapped, common AVEC practice): ``y + (mean(l_tr) - mean(y'_tr))``.
3. **scale** (Eq. (1) as used in AVEC practice): standardise with the training predictions' own
   statistics and rescale to the training labels' spread, ``m + (y - m) * std(l_tr) / std(y'_tr)``
   with ``m`` the training-prediction mean after the earlier steps. After step 2 this is exactly
   "z-score the predictions, then give them the training labels' mean and std".

Statistics come from the training partition only, choices (``t``, keep or drop) from the
validation partition only; the test partition is never seen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from emorec.metrics import ccc

__all__ = [
    "scale_normalize",
    "mean_filter",
    "time_shift",
    "center_to_labels",
    "rescale_to_labels",
    "best_time_delay",
    "PostprocessParams",
    "fit_postprocess",
    "apply_postprocess",
    "simulate_lagged_predictions",
]

STEPS = ("shift", "center", "scale")


def _as_vector(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN/inf values")
    return arr


def _as_sequences(values, name: str) -> list[np.ndarray]:
    """One 1-D array, or a list of them (one per video), as a list of float64 vectors."""
    if isinstance(values, (list, tuple)) and len(values) > 0 and np.ndim(values[0]) == 1:
        return [_as_vector(v, f"{name}[{i}]") for i, v in enumerate(values)]
    return [_as_vector(values, name)]


def _check_std(std: float, name: str) -> None:
    if not np.isfinite(std) or std <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {std!r}")


def scale_normalize(pred, label_mean: float, label_std: float) -> np.ndarray:
    """Scale normalisation exactly as Eq. (1) of §3.4: ``(y' - mean(l_tr)) / std(l_tr)``.

    Literal form; the pipeline uses :func:`rescale_to_labels` instead (see the module docstring).
    """
    _check_std(label_std, "label_std")
    return (_as_vector(pred, "pred") - label_mean) / label_std


def mean_filter(pred, label_mean: float, pred_mean: float) -> np.ndarray:
    """Mean filtering exactly as Eq. (2) of §3.4: ``y' - mean(l_tr) + mean(y'_tr)``.

    Literal form; the pipeline uses :func:`center_to_labels`, the same formula with the two
    means swapped, which moves the predictions' training mean onto the labels' mean.
    """
    return _as_vector(pred, "pred") - label_mean + pred_mean


def center_to_labels(pred, pred_mean: float, label_mean: float) -> np.ndarray:
    """Centering used by the pipeline (Eq. (2) of §3.4 with the means swapped): ``y' - mean(y'_tr) + mean(l_tr)``."""
    return mean_filter(pred, label_mean=pred_mean, pred_mean=label_mean)


def rescale_to_labels(pred, pred_mean: float, pred_std: float, label_mean: float, label_std: float) -> np.ndarray:
    """Scale normalisation used by the pipeline (Eq. (1) of §3.4, AVEC practice).

    ``(y' - mean(y'_tr)) / std(y'_tr) * std(l_tr) + mean(l_tr)``: z-score the predictions with
    their own training statistics, then give them the training labels' mean and spread.
    """
    _check_std(pred_std, "pred_std")
    _check_std(label_std, "label_std")
    return (_as_vector(pred, "pred") - pred_mean) / pred_std * label_std + label_mean


def time_shift(pred, t: int) -> np.ndarray:
    """Time delay of Eq. (3), §3.4: ``y_td(f) = y'(f + t)`` with the ends held.

    Positive ``t`` reads later predictions (moves the curve left); frames that would fall outside
    the sequence take the first or last value (edge hold), never values wrapped from the other end.
    """
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
        raise ValueError(f"t must be an integer number of frames, got {t!r}")
    arr = _as_vector(pred, "pred")
    idx = np.clip(np.arange(arr.size) + int(t), 0, arr.size - 1)
    return arr[idx]


def _pooled_score(preds: list[np.ndarray], labels: list[np.ndarray], metric: Callable) -> float:
    return float(metric(np.concatenate(labels), np.concatenate(preds)))


def _paired(preds, labels, what: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    ps, ls = _as_sequences(preds, f"{what} predictions"), _as_sequences(labels, f"{what} labels")
    if len(ps) != len(ls):
        raise ValueError(f"{what}: {len(ps)} prediction sequences but {len(ls)} label sequences")
    for i, (p, l) in enumerate(zip(ps, ls)):
        if p.size != l.size:
            raise ValueError(f"{what} sequence {i}: {p.size} predictions but {l.size} labels")
    return ps, ls


def best_time_delay(pred, labels, max_shift: int = 10, metric: Callable = ccc) -> tuple[int, pd.Series]:
    """Search the ``t`` of Eq. (3), §3.4, in ``[-max_shift, max_shift]`` (the paper: ``[-10, 10]``).

    ``pred`` / ``labels`` are one sequence or lists of sequences (videos): each sequence is shifted
    on its own (edges held) and ``metric(labels, shifted)`` is computed on the concatenation.
    Returns ``(t, scores)`` with ``scores`` a Series indexed by ``t``. Ties go to the smallest
    ``|t|``, then to the negative ``t``. Call it on validation predictions only.
    """
    if isinstance(max_shift, bool) or not isinstance(max_shift, (int, np.integer)) or max_shift < 0:
        raise ValueError(f"max_shift must be a non-negative integer, got {max_shift!r}")
    ps, ls = _paired(pred, labels, "delay search")
    shortest = min(p.size for p in ps)
    if max_shift >= shortest:
        raise ValueError(f"max_shift={max_shift} is not shorter than the shortest sequence ({shortest} frames)")
    shifts = np.arange(-max_shift, max_shift + 1)
    scores = pd.Series(
        [_pooled_score([time_shift(p, int(t)) for p in ps], ls, metric) for t in shifts],
        index=pd.Index(shifts, name="t"),
        name=getattr(metric, "__name__", "score"),
    )
    if scores.isna().all():
        raise ValueError("the metric is undefined (NaN) for every shift")
    best = max(scores.dropna().index, key=lambda t: (scores[t], -abs(t), -t))
    return int(best), scores


@dataclass(frozen=True)
class PostprocessParams:
    """Parameters of the §3.4 pipeline, as chosen by :func:`fit_postprocess`.

    ``shift`` is Eq. (3)'s ``t`` (0 when the step is not kept), ``offset`` is added by the
    centering step (0 when not kept), ``pivot`` and ``factor`` define the scaling
    ``pivot + (y - pivot) * factor`` (factor 1 when not kept). ``kept`` lists the kept steps;
    ``val_ccc`` holds the pooled validation CCC before any step (``"raw"``) and after trying each
    step; ``shift_scores`` is the validation CCC for every ``t``.
    """

    shift: int = 0
    offset: float = 0.0
    pivot: float = 0.0
    factor: float = 1.0
    kept: tuple[str, ...] = ()
    val_ccc: dict[str, float] = field(default_factory=dict, compare=False)
    shift_scores: pd.Series | None = field(default=None, compare=False, repr=False)


def _apply(seqs: list[np.ndarray], shift: int, offset: float, pivot: float, factor: float) -> list[np.ndarray]:
    return [pivot + (time_shift(s, shift) + offset - pivot) * factor for s in seqs]


def apply_postprocess(pred, params: PostprocessParams):
    """Apply the §3.4 pipeline (Eq. (3) shift, Eq. (2) centering, Eq. (1) scaling) with fitted ``params``.

    Returns the same structure as ``pred``: one array, or a list of arrays (one per sequence).
    """
    single = not (isinstance(pred, (list, tuple)) and len(pred) > 0 and np.ndim(pred[0]) == 1)
    out = _apply(_as_sequences(pred, "pred"), params.shift, params.offset, params.pivot, params.factor)
    return out[0] if single else out


def fit_postprocess(
    train_preds,
    train_labels,
    val_preds,
    val_labels,
    max_shift: int = 10,
    steps: Sequence[str] = STEPS,
) -> PostprocessParams:
    """Choose the §3.4 post-processing (Eqs. (1)-(3)) on training and validation data only.

    Steps run in the order shift → center → scale (see the module docstring); ``steps`` may drop
    some. Means and standard deviations come from the training partition (after the steps already
    kept); ``t`` and every keep/drop decision come from the pooled validation CCC, a step being
    kept only if it raises it. Inputs are one sequence or lists of sequences (videos).
    """
    unknown = set(steps) - set(STEPS)
    if unknown:
        raise ValueError(f"unknown post-processing step(s) {sorted(unknown)}; choose from {STEPS}")
    tr_p, tr_l = _paired(train_preds, train_labels, "train")
    va_p, va_l = _paired(val_preds, val_labels, "validation")
    label_mean = float(np.concatenate(tr_l).mean())
    label_std = float(np.concatenate(tr_l).std())
    _check_std(label_std, "the training labels' standard deviation")

    cur = dict(shift=0, offset=0.0, pivot=0.0, factor=1.0)
    best = _pooled_score(va_p, va_l, ccc)
    val_ccc, kept, scores = {"raw": best}, [], None
    for step in STEPS:
        if step not in steps:
            continue
        trial = dict(cur)
        if step == "shift":
            trial["shift"], scores = best_time_delay(va_p, va_l, max_shift=max_shift)
        else:
            train_now = np.concatenate(_apply(tr_p, **cur))
            if step == "center":
                trial["offset"] = cur["offset"] + label_mean - float(train_now.mean())
            else:
                std = float(train_now.std())
                _check_std(std, "the training predictions' standard deviation")
                trial["pivot"], trial["factor"] = float(train_now.mean()), label_std / std
        score = _pooled_score(_apply(va_p, **trial), va_l, ccc)
        val_ccc[step] = score
        if score > best:
            cur, best = trial, score
            kept.append(step)
    return PostprocessParams(**cur, kept=tuple(kept), val_ccc=val_ccc, shift_scores=scores)


def simulate_lagged_predictions(
    n_sequences: int,
    n_frames: int,
    lag: int,
    seed: int,
    gain: float = 0.5,
    bias: float = 0.1,
    noise: float = 0.05,
    smooth: float = 8.0,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Label/prediction sequences with a known annotator lag, to demonstrate §3.4 (ours, not the paper's).

    A smooth latent signal ``s`` (Gaussian-filtered noise, width ``smooth`` frames, bounded by
    ``tanh``) drives both: labels are ``s`` delayed by ``lag`` frames (the annotators' reaction
    time) plus a little noise; predictions follow ``s`` without delay but shrunk towards the mean
    (``gain``), offset (``bias``) and noisy, as regression models trained on neutral-heavy labels
    tend to be. Returns ``(labels, predictions)``, two lists of ``n_sequences`` arrays.
    """
    from scipy.ndimage import gaussian_filter1d  # only the simulation needs scipy
    if n_sequences < 1 or n_frames <= abs(lag) + 1:
        raise ValueError(f"need n_sequences >= 1 and n_frames > |lag| + 1, got {n_sequences}, {n_frames}, lag {lag}")
    rng = np.random.default_rng(seed)
    labels, preds = [], []
    for _ in range(n_sequences):
        raw = gaussian_filter1d(rng.normal(size=n_frames + 2 * abs(lag)), smooth, mode="reflect")
        s = np.tanh(raw / raw.std() * 0.4 + rng.normal(0, 0.1))
        # labels(f) = s(f - lag): built on the extended signal so both have n_frames valid values
        start = abs(lag)
        truth = s[start : start + n_frames]
        delayed = s[start - lag : start - lag + n_frames]
        labels.append(np.clip(delayed + rng.normal(0, noise / 2, n_frames), -1, 1))
        preds.append(gain * truth + bias + rng.normal(0, noise, n_frames))
    return labels, preds


# --------------------------------------------------------------------------------------------------
# The pipeline on a frame timeline with gaps (the predict path, §6)
# --------------------------------------------------------------------------------------------------

LABEL_STEP_S = 0.1  # the shift t counts 10 Hz label steps (§3.4, SEWA's rate)


def as_params(p) -> PostprocessParams:
    """``p`` as :class:`PostprocessParams`, from itself or a dict as :func:`params_as_dict` writes (ours)."""
    if isinstance(p, PostprocessParams):
        return p
    if isinstance(p, Mapping):
        return PostprocessParams(shift=int(p.get("shift", 0)), offset=float(p.get("offset", 0.0)),
                                 pivot=float(p.get("pivot", 0.0)), factor=float(p.get("factor", 1.0)),
                                 kept=tuple(p.get("kept", ())))
    raise ValueError(f"post-processing parameters must be PostprocessParams or a dict, got {type(p).__name__}")


def params_as_dict(p) -> dict:
    """The §3.4 parameters as a plain dict (for settings.json, result.json; ours)."""
    p = as_params(p)
    return {"shift": p.shift, "offset": p.offset, "pivot": p.pivot, "factor": p.factor, "kept": list(p.kept)}


def postprocess_timeline(times, values, params) -> np.ndarray:
    """The §3.4 pipeline on one series with gaps: Eq. (3)'s shift ``y(τ) = y'(τ + t·0.1 s)`` by
    interpolation over the frames that have a value (ends held), then ``pivot + (y + offset −
    pivot) × factor`` (Eqs. (2), (1)). NaN frames stay NaN."""
    params = as_params(params)
    times, values = np.asarray(times, float), np.asarray(values, float)
    out = values.copy()
    ok = np.isfinite(values)
    if params.shift and ok.sum() > 1:
        out[ok] = np.interp(times[ok] + params.shift * LABEL_STEP_S, times[ok], values[ok])
    return params.pivot + (out + params.offset - params.pivot) * params.factor

