"""Performance metrics for continuous emotion recognition (paper §4.2, Eqs. (4)-(7)).

All NumPy metrics take array-likes of labels ``y_true`` and predictions ``y_pred`` and compute
in float64. Input rules, shared by every function here:

* both inputs must be one-dimensional (after squeezing a trailing axis of size 1), non-empty,
  of the same length and free of NaN / inf; anything else raises :class:`ValueError`;
* correlation-type metrics of a *constant* input are mathematically undefined where the formula
  divides by zero. :func:`pcc` then returns ``nan`` (the variance of one side is 0), :func:`ccc`
  returns ``nan`` only when *both* sides are constant and equal (0/0); a constant prediction
  against varying labels has CCC exactly 0, the limit of Eq. (7) written with the covariance;
* :func:`mape` has an explicit policy for labels equal to 0 (see its docstring).

CCC is computed with biased (1/N) moments by default, as in AVEC's evaluation scripts and in
Lin's original estimator; ``ddof=1`` switches to unbiased moments. For several sequences (videos)
the AVEC convention pools them (:func:`ccc_pooled`); the per-sequence mean is also available.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "mae",
    "mape",
    "pcc",
    "ccc",
    "ccc_pooled",
    "ccc_per_sequence_mean",
    "ccc_loss",
    "evaluate",
]

_ZERO_POLICIES = ("inf", "raise", "skip")


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert a (labels, predictions) pair to float64 vectors."""
    a = _vector(y_true, "y_true")
    b = _vector(y_pred, "y_pred")
    if a.shape != b.shape:
        raise ValueError(f"y_true and y_pred differ in length: {a.size} vs {b.size}")
    return a, b


def _vector(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name} holds {int(bad.sum())} NaN/inf value(s), first at index {int(np.argmax(bad))}")
    return arr


def _check_ddof(ddof: int, n: int) -> None:
    if ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 (biased) or 1 (unbiased), got {ddof!r}")
    if n - ddof <= 0:
        raise ValueError(f"need more than {ddof} sample(s) for ddof={ddof}, got {n}")


def mae(y_true, y_pred) -> float:
    """Mean absolute error, Eq. (4) of §4.2: ``mean(|y' - y|)``."""
    a, b = _pair(y_true, y_pred)
    return float(np.mean(np.abs(b - a)))


def mape(y_true, y_pred, on_zero: str = "inf") -> float:
    """Mean absolute percentage error in percent, Eq. (5) of §4.2 with ``|y|`` in the denominator.

    ``100 * mean(|y'_i - y_i| / |y_i|)``. The paper prints ``y_i`` without the absolute value; a
    signed denominator would let negative labels cancel positive ones, so ``|y_i|`` is used.

    Labels equal to 0 make a term undefined; ``on_zero`` decides, never silently:

    * ``"inf"`` (default): the mathematical value. A zero label with a non-zero error gives
      ``inf`` for the whole metric; a zero label predicted exactly contributes 0 % (no error).
    * ``"raise"``: :class:`ValueError` if any label is 0.
    * ``"skip"``: average only over the non-zero labels (``ValueError`` if none is left).

    Valence/arousal labels cluster near 0, so even the finite values explode: the metrics chapter
    shows why the paper's 2-9 % cannot be read as "small error".
    """
    if on_zero not in _ZERO_POLICIES:
        raise ValueError(f"on_zero must be one of {_ZERO_POLICIES}, got {on_zero!r}")
    a, b = _pair(y_true, y_pred)
    err = np.abs(b - a)
    zero = a == 0
    if not zero.any():
        return float(100.0 * np.mean(err / np.abs(a)))
    where = f"{int(zero.sum())} label(s) equal 0 (first at index {int(np.argmax(zero))})"
    if on_zero == "raise":
        raise ValueError(f"MAPE undefined: {where}")
    if on_zero == "skip":
        if zero.all():
            raise ValueError("MAPE undefined: every label equals 0, nothing left after skipping them")
        return float(100.0 * np.mean(err[~zero] / np.abs(a[~zero])))
    if (err[zero] > 0).any():
        return float("inf")
    # Every zero label is predicted exactly: those terms are 0 % error and still count in n.
    return float(100.0 * np.sum(err[~zero] / np.abs(a[~zero])) / a.size)


def pcc(y_true, y_pred) -> float:
    """Pearson correlation coefficient, Eq. (6) of §4.2.

    Returns ``nan`` when either input is constant (a zero sum of squares in the denominator).
    """
    a, b = _pair(y_true, y_pred)
    da, db = a - a.mean(), b - b.mean()
    denom = np.sqrt(np.sum(da * da) * np.sum(db * db))
    if denom == 0:
        return float("nan")
    return float(np.clip(np.sum(da * db) / denom, -1.0, 1.0))


def ccc(y_true, y_pred, ddof: int = 0) -> float:
    """Lin's concordance correlation coefficient, Eq. (7) of §4.2.

    ``2 s_xy / (s_x^2 + s_y^2 + (mean_x - mean_y)^2)``, which equals Eq. (7)'s
    ``2 rho s_y s_y'`` form because ``rho s_y s_y' = s_xy``. Moments are biased (1/N) with
    ``ddof=0`` (default, AVEC and Lin 1989) or unbiased with ``ddof=1``; the squared mean
    difference is never corrected. Returns ``nan`` only if both inputs are constant and equal.
    """
    a, b = _pair(y_true, y_pred)
    _check_ddof(ddof, a.size)
    n = a.size - ddof
    da, db = a - a.mean(), b - b.mean()
    cov = np.sum(da * db) / n
    denom = np.sum(da * da) / n + np.sum(db * db) / n + (a.mean() - b.mean()) ** 2
    if denom == 0:
        return float("nan")
    return float(2.0 * cov / denom)


def _sequences(seqs, name: str) -> list[np.ndarray]:
    if isinstance(seqs, np.ndarray) or not isinstance(seqs, Sequence) or len(seqs) == 0:
        raise ValueError(f"{name} must be a non-empty list of sequences")
    return [_vector(s, f"{name}[{i}]") for i, s in enumerate(seqs)]


def _sequence_pairs(list_true, list_pred) -> list[tuple[np.ndarray, np.ndarray]]:
    ts = _sequences(list_true, "list_of_true")
    ps = _sequences(list_pred, "list_of_pred")
    if len(ts) != len(ps):
        raise ValueError(f"got {len(ts)} label sequences but {len(ps)} prediction sequences")
    for i, (t, p) in enumerate(zip(ts, ps)):
        if t.size != p.size:
            raise ValueError(f"sequence {i}: labels and predictions differ in length ({t.size} vs {p.size})")
    return list(zip(ts, ps))


def ccc_pooled(list_of_true, list_of_pred, ddof: int = 0) -> float:
    """CCC of the concatenated sequences (AVEC convention), Eq. (7) of §4.2 over a partition."""
    pairs = _sequence_pairs(list_of_true, list_of_pred)
    return ccc(np.concatenate([t for t, _ in pairs]), np.concatenate([p for _, p in pairs]), ddof=ddof)


def ccc_per_sequence_mean(list_of_true, list_of_pred, ddof: int = 0) -> float:
    """Mean over sequences of each sequence's CCC, Eq. (7) of §4.2 per video.

    A sequence whose CCC is undefined (constant and equal labels and predictions) makes the
    mean ``nan``; it is not dropped silently.
    """
    pairs = _sequence_pairs(list_of_true, list_of_pred)
    return float(np.mean([ccc(t, p, ddof=ddof) for t, p in pairs]))


def ccc_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - CCC`` as a differentiable training loss (Eq. (7) of §4.2, biased moments).

    ``pred`` and ``target`` are tensors of the same shape, ``[N]`` or ``[N, D]``. For ``[N, D]``
    (e.g. D = 2 for valence and arousal) the CCC is computed per column over the N samples and
    the D values are averaged, so the loss is ``1 - mean_d CCC_d``. No epsilon is added: a
    column where both inputs are constant and equal gives ``nan`` rather than a made-up value.
    """
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise ValueError("ccc_loss expects torch tensors for pred and target")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if pred.ndim not in (1, 2) or pred.shape[0] == 0:
        raise ValueError(f"expected a non-empty [N] or [N, D] tensor, got shape {tuple(pred.shape)}")
    p = pred if pred.ndim == 2 else pred.unsqueeze(1)
    t = target.to(p.dtype) if target.ndim == 2 else target.to(p.dtype).unsqueeze(1)
    pm, tm = p.mean(dim=0), t.mean(dim=0)
    dp, dt = p - pm, t - tm
    cov = (dp * dt).mean(dim=0)
    denom = (dp * dp).mean(dim=0) + (dt * dt).mean(dim=0) + (pm - tm) ** 2
    return 1.0 - (2.0 * cov / denom).mean()


def evaluate(y_true, y_pred, on_zero: str = "inf") -> dict[str, float]:
    """The four metrics of §4.2 at once: ``{"MAE", "MAPE", "PCC", "CCC"}`` (Eqs. (4)-(7)).

    MAPE in percent with the ``on_zero`` policy of :func:`mape`; CCC biased (``ddof=0``).
    """
    return {
        "MAE": mae(y_true, y_pred),
        "MAPE": mape(y_true, y_pred, on_zero=on_zero),
        "PCC": pcc(y_true, y_pred),
        "CCC": ccc(y_true, y_pred),
    }
