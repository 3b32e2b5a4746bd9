"""Tests for emorec.metrics against independent references (scipy, Lin's formula written here)."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from emorec import metrics as M


def lin_ccc(x, y, ddof=0):
    """Lin (1989) written independently: sample moments with np.var / np.cov."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    sxy = np.cov(x, y, ddof=ddof)[0, 1]
    return 2 * sxy / (np.var(x, ddof=ddof) + np.var(y, ddof=ddof) + (x.mean() - y.mean()) ** 2)


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    y = np.sin(np.linspace(0, 6, 300)) * 0.4 + rng.normal(0, 0.05, 300)
    p = 0.7 * y + 0.1 + rng.normal(0, 0.1, 300)
    return y, p


def test_ccc_known_values_biased_and_unbiased():
    # by hand: means 1 and 2/3; biased cov 1/3, variances 2/3 and 2/9, squared mean gap 1/9
    assert M.ccc([0, 1, 2], [0, 1, 1]) == pytest.approx(2 / 3, abs=1e-15)
    # unbiased: cov 1/2, variances 1 and 1/3, gap 1/9 -> 1 / (13/9)
    assert M.ccc([0, 1, 2], [0, 1, 1], ddof=1) == pytest.approx(9 / 13, abs=1e-15)


def test_ccc_matches_lin_formula(pair):
    y, p = pair
    assert M.ccc(y, p) == pytest.approx(lin_ccc(y, p), rel=1e-12)
    assert M.ccc(y, p, ddof=1) == pytest.approx(lin_ccc(y, p, ddof=1), rel=1e-12)


def test_ccc_equals_eq7_rho_form(pair):
    y, p = pair
    rho = stats.pearsonr(y, p)[0]
    eq7 = 2 * rho * y.std() * p.std() / (y.var() + p.var() + (y.mean() - p.mean()) ** 2)
    assert M.ccc(y, p) == pytest.approx(eq7, rel=1e-12)


def test_pcc_matches_scipy(pair):
    y, p = pair
    assert M.pcc(y, p) == pytest.approx(stats.pearsonr(y, p)[0], rel=1e-12)


def test_mae_and_mape_by_hand():
    y = [0.5, -0.25, 1.0]
    p = [0.25, -0.5, 1.5]
    assert M.mae(y, p) == pytest.approx((0.25 + 0.25 + 0.5) / 3)
    # |y| in the denominator: 0.25/0.5, 0.25/0.25, 0.5/1 -> (0.5 + 1 + 0.5) / 3 * 100
    assert M.mape(y, p) == pytest.approx(200 / 3)


def test_shift_and_scale_lower_ccc_not_pcc(pair):
    y, p = pair
    base_pcc, base_ccc = M.pcc(y, p), M.ccc(y, p)
    for q in (p + 0.5, 3.0 * p, 0.2 * p - 0.3):
        assert M.pcc(y, q) == pytest.approx(base_pcc, rel=1e-10)
    assert M.ccc(y, p + 0.5) < base_ccc
    assert M.ccc(y, 3.0 * p) < base_ccc
    assert M.ccc(y, y) == pytest.approx(1.0)
    assert M.ccc(y, y + 0.3) < 1.0 and M.pcc(y, y + 0.3) == pytest.approx(1.0)


def test_ccc_symmetric_and_bounded(pair):
    y, p = pair
    assert M.ccc(y, p) == pytest.approx(M.ccc(p, y))
    # |CCC| <= |PCC|: the CCC denominator is at least 2 s_y s_y' (AM-GM)
    for q in (p, -p, 2 * p + 1):
        assert abs(M.ccc(y, q)) <= abs(M.pcc(y, q))
    assert M.ccc(y, -p) < 0


@pytest.mark.parametrize("fn", [M.mae, M.mape, M.pcc, M.ccc])
def test_input_errors(fn):
    with pytest.raises(ValueError, match="length"):
        fn([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="empty"):
        fn([], [])
    with pytest.raises(ValueError, match="NaN"):
        fn([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="one-dimensional"):
        fn(np.ones((2, 2)), np.ones((2, 2)))


def test_zero_variance_policy():
    assert math.isnan(M.pcc([1.0, 1.0, 1.0], [0.0, 1.0, 2.0]))
    # constant prediction against varying labels: covariance 0, so CCC is exactly 0
    assert M.ccc([0.0, 1.0, 2.0], [1.0, 1.0, 1.0]) == 0.0
    assert math.isnan(M.ccc([0.5, 0.5], [0.5, 0.5]))
    with pytest.raises(ValueError, match="ddof"):
        M.ccc([1.0], [2.0], ddof=1)


def test_mape_zero_label_policies():
    y = [0.0, 0.5, -1.0]
    p = [0.1, 0.25, -1.0]
    assert M.mape(y, p) == math.inf
    with pytest.raises(ValueError, match="label\\(s\\) equal 0"):
        M.mape(y, p, on_zero="raise")
    assert M.mape(y, p, on_zero="skip") == pytest.approx(100 * (0.5 + 0) / 2)
    # exact prediction at a zero label counts as 0 % and stays in the average
    assert M.mape([0.0, 0.5], [0.0, 0.25]) == pytest.approx(100 * 0.5 / 2)
    with pytest.raises(ValueError, match="every label"):
        M.mape([0.0, 0.0], [1.0, 1.0], on_zero="skip")
    with pytest.raises(ValueError, match="on_zero"):
        M.mape(y, p, on_zero="ignore")


def test_pooled_vs_per_sequence():
    rng = np.random.default_rng(1)
    ys = [rng.normal(size=50), rng.normal(size=80) + 1.0]
    ps = [y + rng.normal(0, 0.5, y.size) for y in ys]
    assert M.ccc_pooled(ys, ps) == pytest.approx(lin_ccc(np.concatenate(ys), np.concatenate(ps)))
    assert M.ccc_per_sequence_mean(ys, ps) == pytest.approx(np.mean([lin_ccc(y, p) for y, p in zip(ys, ps)]))
    # pooling rewards getting each sequence's mean right, so the two differ here
    assert M.ccc_pooled(ys, ps) != pytest.approx(M.ccc_per_sequence_mean(ys, ps))
    with pytest.raises(ValueError, match="sequence 1"):
        M.ccc_pooled(ys, [ps[0], ps[1][:-1]])
    with pytest.raises(ValueError, match="2 label sequences but 1"):
        M.ccc_pooled(ys, ps[:1])
    with pytest.raises(ValueError, match="list of sequences"):
        M.ccc_pooled(np.ones(3), np.ones(3))


def test_ccc_loss_equals_one_minus_ccc(pair):
    y, p = pair
    loss = M.ccc_loss(torch.tensor(p), torch.tensor(y))
    assert loss.item() == pytest.approx(1 - M.ccc(y, p), rel=1e-12)
    two = M.ccc_loss(torch.tensor(np.stack([p, -p], 1)), torch.tensor(np.stack([y, y], 1)))
    assert two.item() == pytest.approx(1 - (M.ccc(y, p) + M.ccc(y, -p)) / 2, rel=1e-12)


def test_ccc_loss_gradient_matches_finite_differences():
    gen = torch.Generator().manual_seed(0)
    pred = torch.randn(12, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    target = torch.randn(12, 2, dtype=torch.float64, generator=gen)
    assert torch.autograd.gradcheck(lambda x: M.ccc_loss(x, target), (pred,))
    flat = torch.randn(9, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: M.ccc_loss(x, target[:9, 0]), (flat,))


def test_ccc_loss_shape_errors():
    with pytest.raises(ValueError, match="shape"):
        M.ccc_loss(torch.zeros(4), torch.zeros(5))
    with pytest.raises(ValueError, match="\\[N\\] or \\[N, D\\]"):
        M.ccc_loss(torch.zeros(2, 2, 2), torch.zeros(2, 2, 2))


def test_evaluate_keys_and_values(pair):
    y, p = pair
    out = M.evaluate(y, p)
    assert set(out) == {"MAE", "MAPE", "PCC", "CCC"}
    assert out["CCC"] == M.ccc(y, p) and out["PCC"] == M.pcc(y, p)
