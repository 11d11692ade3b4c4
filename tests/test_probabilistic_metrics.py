"""Probabilistic metrics (validation/probabilistic.py) and prediction intervals of quantile-loss point models."""
from __future__ import annotations

import math

import numpy as np
import pytest

from neurodivergent import LossFunction, QuantileConfig, TrainingConfig, load_dataset
from neurodivergent.models.mlp import MLP, MLPConfig
from neurodivergent.validation import probabilistic as P
from neurodivergent.validation.metrics import quantile_loss


def _crps_pairs(y, xs):
    """Brute-force CRPS of an empirical distribution: E|X-y| - 0.5 E|X-X'| over all pairs."""
    xs = np.asarray(xs, float)
    return np.abs(xs - y).mean() - 0.5 * np.abs(xs[:, None] - xs[None, :]).mean()


def _crps_integral(y, xs):
    """CRPS as the integral of (F(z) - 1{z >= y})^2 over z, for the empirical CDF, integrated exactly."""
    pts = np.sort(np.concatenate([xs, [y]]))
    total = 0.0
    for a, b in zip(pts[:-1], pts[1:]):
        mid = 0.5 * (a + b)
        fz = np.mean(np.asarray(xs) <= mid)
        total += (fz - (1.0 if mid >= y else 0.0)) ** 2 * (b - a)
    return total


def test_crps_from_samples_matches_brute_force_and_integral():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(3, 4))
    s = rng.normal(size=(3, 25, 4))
    per = P.crps_from_samples(y, s, per_point=True)
    for i in range(3):
        for j in range(4):
            assert per[i, j] == pytest.approx(_crps_pairs(y[i, j], s[i, :, j]), rel=1e-12)
            assert per[i, j] == pytest.approx(_crps_integral(y[i, j], s[i, :, j]), rel=1e-9)
    assert P.crps_from_samples(y, s) == pytest.approx(per.mean(), rel=1e-12)
    assert P.crps_from_samples(y, s, normalized=True) == pytest.approx(per.mean() / np.abs(y).mean(), rel=1e-12)
    # sample axis inference: (n, h) for y (h,), explicit last axis
    assert P.crps_from_samples(y[0], s[0]) == pytest.approx(per[0].mean(), rel=1e-12)
    assert P.crps_from_samples(y, np.moveaxis(s, 1, -1), sample_axis=-1) == pytest.approx(per.mean(), rel=1e-12)


def test_crps_of_a_point_mass_is_absolute_error_and_gaussian_closed_form():
    y = np.array([1.0, -2.0])
    s = np.repeat(np.array([[0.5, 0.0]]), 7, axis=0).T  # (2, 7): every sample equal
    np.testing.assert_allclose(P.crps_from_samples(y, s, sample_axis=1, per_point=True), [0.5, 2.0])
    # N(0, 1) at y = 0: CRPS = sigma (sqrt(2) - 1) / sqrt(pi) * ... closed form 1/sqrt(pi) * (sqrt(2) - 1)... use
    # the general formula sigma [z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi)] at z = 0.7
    from neurodivergent.nn import functional as F

    z = 0.7
    draws = F.likelihood_sample("gaussian", np.repeat([[0.0, 1.0]], 20000, axis=0), 3)
    phi = math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    Phi = 0.5 * (1 + math.erf(z / math.sqrt(2)))
    want = z * (2 * Phi - 1) + 2 * phi - 1 / math.sqrt(math.pi)
    assert P.crps_from_samples(np.array([z]), draws[:, None], sample_axis=0) == pytest.approx(want, abs=0.01)


def test_crps_from_quantiles_approaches_sample_crps():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(50,))
    s = rng.normal(size=(50, 4000))
    levels = np.linspace(0.01, 0.99, 99)
    q = P.quantiles_from_samples(s, levels, sample_axis=1)
    assert q.shape == (50, 99)
    assert np.all(np.diff(q, axis=-1) >= 0)
    c_q = P.crps_from_quantiles(y, q, levels)
    assert c_q == pytest.approx(2 * quantile_loss(y, q, levels), rel=1e-12)
    assert c_q == pytest.approx(P.crps_from_samples(y, s, sample_axis=1), rel=0.03)


def test_coverage_width_msis():
    y = np.array([[1.0, 2.0, 3.0, 4.0]])
    lo = np.array([[0.0, 2.5, 2.0, 4.0]])
    hi = np.array([[2.0, 3.0, 3.5, 5.0]])
    assert P.coverage(y, lo, hi) == 0.75
    assert P.interval_width(lo, hi) == pytest.approx(np.mean([2.0, 0.5, 1.5, 1.0]))
    train = [np.array([0.0, 1.0, 3.0, 6.0])]  # lag-1 MAE = (1 + 2 + 3) / 3 = 2
    assert P.interval_width(lo, hi, train, 1) == pytest.approx(1.25 / 2)
    # one miss below by 0.5 at a = 0.05: penalty 2 / 0.05 * 0.5 = 20
    want = (np.mean([2.0, 0.5 + 20.0, 1.5, 1.0])) / 2
    assert P.msis(y, lo, hi, train, 1, level=95) == pytest.approx(want)
    with pytest.raises(ValueError, match="lo must be <= hi"):
        P.coverage(y, hi, lo)
    with pytest.raises(ValueError, match="hi has shape"):
        P.coverage(y, lo, hi[:, :2])


def test_levels_and_interval_quantiles():
    assert P.check_levels(None) == ()
    assert P.check_levels(80) == (80.0,)
    assert P.check_levels([90, 80, 80]) == (80.0, 90.0)
    assert P.interval_quantiles(80) == pytest.approx((0.1, 0.9))
    with pytest.raises(ValueError, match="in \\(0, 100\\)"):
        P.check_levels([0.8, 100])
    with pytest.raises(TypeError):
        P.check_levels(["80"])


def test_intervals_from_quantiles_exact_interpolated_and_refused():
    qs = (0.05, 0.1, 0.5, 0.9, 0.95)
    q = np.array([[[1.0, 2.0, 5.0, 8.0, 9.0]]])
    out = P.intervals_from_quantiles(q, qs, [80, 85, 90])
    np.testing.assert_allclose(out[80.0][0], [[2.0]])
    np.testing.assert_allclose(out[80.0][1], [[8.0]])
    np.testing.assert_allclose(out[85.0][0], [[1.5]])  # 0.075 halfway between 0.05 and 0.1
    np.testing.assert_allclose(out[85.0][1], [[8.5]])
    np.testing.assert_allclose(out[90.0][0], [[1.0]])
    with pytest.raises(ValueError, match="outside the trained levels"):
        P.intervals_from_quantiles(q, qs, [95])


def test_quantile_point_model_predicts_intervals():
    data = load_dataset("air_passengers")
    train, test = data.split_last(12)
    model = MLP(MLPConfig().with_input_size(24).with_horizon(12).with_hidden_size(32))
    loss = LossFunction.Quantile(QuantileConfig().with_quantiles([0.05, 0.1, 0.5, 0.9, 0.95]))
    tc = TrainingConfig().with_max_epochs(30).with_batch_size(16).with_seed(0).with_verbose(False).with_loss_function(loss)
    model.fit_with_config(train, tc)
    fc = model.predict(train, level=[80, 90])
    assert fc.columns == ["unique_id", "ds", "MLP", "MLP-q-0.05", "MLP-q-0.1", "MLP-q-0.5", "MLP-q-0.9", "MLP-q-0.95",
                          "MLP-lo-80", "MLP-hi-80", "MLP-lo-90", "MLP-hi-90"]
    np.testing.assert_array_equal(fc.values("MLP-lo-80"), fc.values("MLP-q-0.1"))
    np.testing.assert_array_equal(fc.values("MLP-hi-90"), fc.values("MLP-q-0.95"))
    assert np.all(fc.values("MLP-lo-90") <= fc.values("MLP-lo-80"))
    assert np.all(fc.values("MLP-hi-80") <= fc.values("MLP-hi-90"))
    # without level: no interval columns
    assert "MLP-lo-80" not in model.predict(train).columns
    with pytest.raises(ValueError, match="outside the trained levels"):
        model.predict(train, level=[98])
    point = MLP(MLPConfig().with_input_size(24).with_horizon(12).with_hidden_size(8))
    point.fit_with_config(train, tc.with_loss_function("mae").with_max_epochs(1))
    with pytest.raises(ValueError, match="trained for point forecasts"):
        point.predict(train, level=[80])
