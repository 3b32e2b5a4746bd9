"""Tests for emorec.postprocess: Eqs. (1)-(3) of §3.4 and the fitted pipeline."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from emorec import metrics as M
from emorec import postprocess as P


def smooth_signal(n, seed, width=6.0):
    rng = np.random.default_rng(seed)
    x = gaussian_filter1d(rng.normal(size=n), width)
    return x / x.std() * 0.3


def test_eq1_and_eq2_by_hand():
    pred = [0.2, -0.1, 0.5]
    # Eq. (1): (y' - 0.1) / 0.2
    np.testing.assert_allclose(P.scale_normalize(pred, 0.1, 0.2), [0.5, -1.0, 2.0])
    # Eq. (2) as printed: y' - label_mean + pred_mean
    np.testing.assert_allclose(P.mean_filter(pred, label_mean=0.1, pred_mean=0.3), [0.4, 0.1, 0.7])
    # the pipeline's centering puts the predictions' training mean onto the labels' mean
    np.testing.assert_allclose(P.center_to_labels(pred, pred_mean=0.3, label_mean=0.1), [0.0, -0.3, 0.3], atol=1e-15)
    np.testing.assert_allclose(P.rescale_to_labels(pred, 0.2, 0.3, 0.0, 0.6), [0.0, -0.6, 0.6], atol=1e-15)
    with pytest.raises(ValueError, match="label_std"):
        P.scale_normalize(pred, 0.0, 0.0)


def test_time_shift_matches_eq3_and_holds_edges():
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    # y_td(f) = y(f + t); past the end the last value is repeated, not wrapped around
    np.testing.assert_array_equal(P.time_shift(y, 2), [3, 4, 5, 5, 5])
    np.testing.assert_array_equal(P.time_shift(y, -2), [1, 1, 1, 2, 3])
    np.testing.assert_array_equal(P.time_shift(y, 0), y)
    np.testing.assert_array_equal(P.time_shift(y, 9), [5, 5, 5, 5, 5])
    with pytest.raises(ValueError, match="integer"):
        P.time_shift(y, 1.5)


@pytest.mark.parametrize("lag", [-4, 0, 3, 7])
def test_best_time_delay_recovers_known_lag(lag):
    s = smooth_signal(400 + 20, seed=lag + 10)
    pred = s[10:410]
    labels = s[10 - lag : 410 - lag]  # labels(f) = s(f - lag): annotators late by `lag` frames
    t, scores = P.best_time_delay(pred, labels, max_shift=10)
    assert t == -lag
    # away from the held edges the shifted predictions are the labels exactly
    np.testing.assert_array_equal(P.time_shift(pred, t)[10:-10], labels[10:-10])
    assert list(scores.index) == list(range(-10, 11))
    assert scores.idxmax() == -lag


def test_best_time_delay_on_several_sequences_and_errors():
    labels, preds = P.simulate_lagged_predictions(3, 300, lag=5, seed=1)
    t, scores = P.best_time_delay(preds, labels, max_shift=8)
    assert t == -5
    pooled = M.ccc(np.concatenate(labels), np.concatenate([P.time_shift(p, -5) for p in preds]))
    assert scores.loc[-5] == pytest.approx(pooled)
    with pytest.raises(ValueError, match="max_shift"):
        P.best_time_delay(preds[0][:5], labels[0][:5], max_shift=5)
    with pytest.raises(ValueError, match="300 predictions but 299 labels"):
        P.best_time_delay(preds[0], labels[0][:-1])


def test_best_time_delay_ties_prefer_zero():
    flat = np.ones(30)
    # constant predictions: CCC is 0 for every shift, so the tie must resolve to t = 0
    t, scores = P.best_time_delay(flat, np.linspace(0, 1, 30), max_shift=3)
    assert (scores == 0).all()
    assert t == 0


def test_fit_uses_validation_only_for_choices_and_train_only_for_statistics():
    labels, preds = P.simulate_lagged_predictions(4, 400, lag=0, seed=2, bias=0.3)
    # validation sequences lag by 3 frames, the training ones do not: t must come from validation
    val_l, val_p = P.simulate_lagged_predictions(2, 400, lag=3, seed=3, bias=0.3)
    params = P.fit_postprocess(preds, labels, val_p, val_l)
    assert params.shift == -3 and "shift" in params.kept
    assert params.shift_scores.idxmax() == -3
    # statistics come from training data: moving the validation labels does not move the offset
    shifted = P.fit_postprocess(preds, labels, val_p, [v + 0.02 for v in val_l])
    assert shifted.kept == params.kept and shifted.offset == pytest.approx(params.offset, rel=1e-12)
    assert "center" in params.kept
    tr_l = np.concatenate(labels)
    tr_p = np.concatenate([P.time_shift(p, -3) for p in preds])
    assert params.offset == pytest.approx(tr_l.mean() - tr_p.mean(), rel=1e-12)


def test_pipeline_equals_standardise_then_rescale_and_improves_ccc():
    labels, preds = P.simulate_lagged_predictions(6, 500, lag=4, seed=4, gain=0.4, bias=0.15)
    params = P.fit_postprocess(preds[:3], labels[:3], preds[3:5], labels[3:5])
    assert params.kept == ("shift", "center", "scale")
    out = P.apply_postprocess(preds[5], params)
    assert M.ccc(labels[5], out) > M.ccc(labels[5], preds[5]) + 0.1
    # shift, center, scale composed = z-score with the (shifted) training predictions' stats,
    # then the training labels' mean and std
    tr_p = np.concatenate([P.time_shift(p, params.shift) for p in preds[:3]])
    tr_l = np.concatenate(labels[:3])
    expected = P.rescale_to_labels(P.time_shift(preds[5], params.shift), tr_p.mean(), tr_p.std(), tr_l.mean(), tr_l.std())
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)


def test_step_dropped_when_it_does_not_help():
    labels, preds = P.simulate_lagged_predictions(4, 400, lag=0, seed=5, gain=1.0, bias=0.0)
    params = P.fit_postprocess(preds[:2], labels[:2], preds[2:], labels[2:], steps=("shift",))
    assert params.shift == 0 and params.kept == ()
    np.testing.assert_array_equal(P.apply_postprocess(preds[3], params), preds[3])
    with pytest.raises(ValueError, match="unknown post-processing step"):
        P.fit_postprocess(preds, labels, preds, labels, steps=("smooth",))


def test_apply_keeps_structure():
    labels, preds = P.simulate_lagged_predictions(3, 100, lag=2, seed=6)
    params = P.fit_postprocess(preds[:2], labels[:2], preds[2:], labels[2:])
    out = P.apply_postprocess(preds, params)
    assert isinstance(out, list) and [o.size for o in out] == [100, 100, 100]
    assert isinstance(P.apply_postprocess(preds[0], params), np.ndarray)
