"""Likelihood kernels (csrc/likelihood.cpp): NLL and gradients vs float64 references (themselves proven
by finite differences, extreme values included), weights / scale, argument errors, samplers' moments and
repeatability, the Likelihood enum and the TrainingConfig fields."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodivergent import TrainingConfig
from neurodivergent.nn import functional as F
from neurodivergent.nn import functional_likelihood as FL
from neurodivergent.training.likelihood import Likelihood
from neurodivergent.training.losses import LossFunction
from tests.reference import likelihood as R

KINDS = ("gaussian", "student_t", "negative_binomial")


def _case(kind, n, rng, *, counts_max=50):
    p = R.N_PARAMS[kind]
    raw = rng.normal(0, 1.0, size=(n, p))
    if kind == "negative_binomial":
        y = rng.integers(0, counts_max, size=n).astype(np.float64)
    else:
        y = rng.normal(0, 2.0, size=n)
    return raw, y


# ------------------------------------------------------------------ the reference itself
@pytest.mark.parametrize("kind", KINDS)
def test_reference_gradient_matches_finite_differences(kind):
    rng = np.random.default_rng(1)
    raw, y = _case(kind, 40, rng)
    scale = rng.uniform(0.5, 3.0, size=40)
    np.testing.assert_allclose(R.grad_points(kind, raw, y, scale), R.finite_difference(kind, raw, y, scale),
                               rtol=1e-6, atol=1e-7)


def test_reference_extremes_finite_differences():
    # sigma near zero (raw sigma very negative), nu near 2, large counts
    g_raw = np.array([[0.3, -12.0], [-1.0, -8.0], [0.0, 15.0]])
    g_y = np.array([0.3 + 2e-6, -1.0 - 1e-4, 3.0])
    np.testing.assert_allclose(R.grad_points("gaussian", g_raw, g_y), R.finite_difference("gaussian", g_raw, g_y, eps=1e-8),
                               rtol=2e-5, atol=1e-6)
    t_raw = np.array([[0.1, 0.2, -12.0], [1.0, -3.0, -20.0], [0.0, 0.5, 8.0], [0.0, -10.0, -5.0]])
    t_y = np.array([5.0, 1.2, -0.4, 1e-5])
    np.testing.assert_allclose(R.grad_points("student_t", t_raw, t_y),
                               R.finite_difference("student_t", t_raw, t_y, eps=1e-7), rtol=1e-5, atol=1e-6)
    nb_raw = np.array([[12.0, -2.0], [9.0, 0.5], [3.0, -5.0], [-3.0, 1.0]])
    nb_y = np.array([150000.0, 9000.0, 40.0, 0.0])
    scale = np.array([10.0, 1.0, 2.0, 1.0])
    np.testing.assert_allclose(R.grad_points("negative_binomial", nb_raw, nb_y, scale),
                               R.finite_difference("negative_binomial", nb_raw, nb_y, scale, eps=1e-7),
                               rtol=1e-5, atol=1e-6)


def test_reference_gaussian_against_closed_form():
    mu, sigma, y = 1.5, 0.7, 0.2
    raw = np.array([[mu, math.log(math.expm1(sigma))]])
    want = 0.5 * math.log(2 * math.pi) + math.log(sigma) + 0.5 * ((y - mu) / sigma) ** 2
    assert R.nll("gaussian", raw, [y]) == pytest.approx(want, rel=1e-12)


def test_reference_digamma():
    # psi(1) = -gamma, psi(1/2) = -gamma - 2 ln 2, psi(x+1) = psi(x) + 1/x
    eg = 0.57721566490153286
    np.testing.assert_allclose(R.digamma([1.0, 0.5]), [-eg, -eg - 2 * math.log(2)], rtol=1e-13)
    x = np.array([0.1, 2.5, 7.0, 123.4])
    np.testing.assert_allclose(R.digamma(x + 1), R.digamma(x) + 1 / x, rtol=1e-12)
    for v in (0.3, 1.0, 5.5, 40.0):
        assert F.digamma(v) == pytest.approx(float(R.digamma([v])[0]), rel=1e-13)


# ------------------------------------------------------------------ kernel vs reference
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [1, 7, 300])
@pytest.mark.parametrize("with_scale,with_weight", [(False, False), (True, False), (True, True)])
def test_kernel_matches_reference_float64(kind, n, with_scale, with_weight):
    rng = np.random.default_rng(n)
    raw, y = _case(kind, n, rng)
    scale = rng.uniform(0.2, 5.0, size=n) if with_scale else None
    weight = rng.choice([0.0, 0.5, 1.0, 2.0], size=n) if with_weight else None
    if weight is not None:
        weight[0] = 1.0
    v, pts = F.nll_forward(kind, raw, y, scale, weight, per_point=True)
    assert v == pytest.approx(R.nll(kind, raw, y, scale, weight), rel=1e-12, abs=1e-12)
    ref_pts = R.nll_points(kind, raw, y, scale)
    keep = np.ones(n, bool) if weight is None else weight > 0
    np.testing.assert_allclose(pts[keep], ref_pts[keep], rtol=1e-12, atol=1e-12)
    d = F.nll_backward(kind, raw, y, scale, weight, grad_scale=0.5)
    np.testing.assert_allclose(d, R.grad(kind, raw, y, scale, weight, 0.5), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(F.likelihood_params(kind, raw, scale), R.params(kind, raw, scale), rtol=1e-13)


@pytest.mark.parametrize("kind", KINDS)
def test_kernel_float32_close_to_float64(kind):
    rng = np.random.default_rng(3)
    raw, y = _case(kind, 200, rng)
    v64, d64 = F.nll_value_and_grad(kind, raw, y)
    v32, d32 = F.nll_value_and_grad(kind, raw.astype(np.float32), y.astype(np.float32))
    assert d32.dtype == np.float32
    assert v32 == pytest.approx(v64, rel=1e-5)
    np.testing.assert_allclose(d32, d64, rtol=1e-4, atol=1e-7)


def test_kernel_extremes_match_reference():
    cases = {
        "gaussian": (np.array([[0.3, -12.0], [-1.0, -25.0], [0.0, 40.0], [2.0, -40.0]]),
                     np.array([0.3 + 2e-6, -1.0 - 1e-11, 3.0, 2.0])),
        "student_t": (np.array([[0.1, 0.2, -12.0], [1.0, -3.0, -30.0], [0.0, 0.5, 30.0], [0.0, -10.0, -5.0]]),
                      np.array([5.0, 1.2, -0.4, 1e-5])),
        "negative_binomial": (np.array([[12.0, -2.0], [14.0, 0.5], [3.0, -5.0], [-30.0, 1.0], [8.0, -15.0]]),
                              np.array([150000.0, 1.2e6, 40.0, 0.0, 3000.0])),
    }
    for kind, (raw, y) in cases.items():
        v, pts = F.nll_forward(kind, raw, y, per_point=True)
        assert np.all(np.isfinite(pts)), kind
        np.testing.assert_allclose(pts, R.nll_points(kind, raw, y), rtol=1e-10, atol=1e-10, err_msg=kind)
        d = F.nll_backward(kind, raw, y)
        assert np.all(np.isfinite(d)), kind
        np.testing.assert_allclose(d, R.grad(kind, raw, y), rtol=1e-9, atol=1e-12, err_msg=kind)


@settings(max_examples=30, deadline=None)
@given(kind=st.sampled_from(KINDS), n=st.integers(1, 20), seed=st.integers(0, 10_000),
       spread=st.floats(0.1, 6.0))
def test_kernel_matches_reference_hypothesis(kind, n, seed, spread):
    rng = np.random.default_rng(seed)
    raw = rng.normal(0, spread, size=(n, R.N_PARAMS[kind]))
    y = rng.integers(0, 1000, size=n).astype(float) if kind == "negative_binomial" else rng.normal(0, spread, size=n)
    scale = rng.uniform(0.1, 10.0, size=n)
    assert F.nll_forward(kind, raw, y, scale) == pytest.approx(R.nll(kind, raw, y, scale), rel=1e-10, abs=1e-10)
    np.testing.assert_allclose(F.nll_backward(kind, raw, y, scale), R.grad(kind, raw, y, scale),
                               rtol=1e-8, atol=1e-12)


def test_scale_shifts_gaussian_nll_by_log_scale_and_keeps_gradient():
    # y ~ N(s mu, s sigma): nll(y; s) = nll(y / s; 1) + log s, gradients w.r.t. raw are equal
    rng = np.random.default_rng(4)
    raw, y = _case("gaussian", 50, rng)
    s = rng.uniform(0.5, 20, size=50)
    _, a = F.nll_forward("gaussian", raw, y * s, s, per_point=True)
    _, b = F.nll_forward("gaussian", raw, y, None, per_point=True)
    np.testing.assert_allclose(a, b + np.log(s), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(F.nll_backward("gaussian", raw, y * s, s), F.nll_backward("gaussian", raw, y),
                               rtol=1e-9, atol=1e-14)


def test_weights_mask_points_and_zero_weights_give_zero():
    rng = np.random.default_rng(5)
    raw, y = _case("gaussian", 10, rng)
    y_nan = y.copy()
    y_nan[3] = np.nan
    w = np.ones(10)
    w[3] = 0.0
    v = F.nll_forward("gaussian", raw, y_nan, None, w)
    assert v == pytest.approx(R.nll("gaussian", np.delete(raw, 3, 0), np.delete(y, 3)), rel=1e-12)
    d = F.nll_backward("gaussian", raw, y_nan, None, w)
    assert np.all(d[3] == 0) and np.all(np.isfinite(d))
    assert F.nll_forward("gaussian", raw, y, None, np.zeros(10)) == 0.0
    assert np.all(F.nll_backward("gaussian", raw, y, None, np.zeros(10)) == 0)


def test_backward_overwrites():
    rng = np.random.default_rng(6)
    raw, y = _case("student_t", 5, rng)
    d1 = F.nll_backward("student_t", raw, y)
    d2 = F.nll_backward("student_t", raw, y)
    np.testing.assert_array_equal(d1, d2)


# ------------------------------------------------------------------ errors
def test_negative_binomial_rejects_bad_counts():
    raw = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"non-negative integer.*-1.*index 1"):
        F.nll_forward("negative_binomial", raw, [1.0, -1.0, 2.0])
    with pytest.raises(ValueError, match=r"non-negative integer.*2\.5.*index 2"):
        F.nll_backward("negative_binomial", raw, [1.0, 0.0, 2.5])
    # a masked-out point is not checked
    assert np.isfinite(F.nll_forward("negative_binomial", raw, [1.0, -1.0, 2.0], weight=[1.0, 0.0, 1.0]))


def test_argument_errors_name_the_argument():
    raw = np.zeros((4, 2))
    with pytest.raises(ValueError, match="raw must have shape \\(N, 3\\)"):
        F.nll_forward("student_t", raw, np.zeros(4))
    with pytest.raises(ValueError, match="y must hold N = 4"):
        F.nll_forward("gaussian", raw, np.zeros(5))
    with pytest.raises(ValueError, match="likelihood must be one of"):
        F.nll_forward("poisson", raw, np.zeros(4))
    with pytest.raises(ValueError, match="weight must be finite and >= 0"):
        F.nll_forward("gaussian", raw, np.zeros(4), weight=[1.0, -1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="scale must be finite and > 0"):
        F.nll_forward("gaussian", raw, np.zeros(4), scale=[1.0, 0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="sigma > 0"):
        F.likelihood_sample("gaussian", np.array([[0.0, -1.0]]), 1)
    with pytest.raises(ValueError, match="nu > 0"):
        F.likelihood_sample("student_t", np.array([[0.0, 1.0, 0.0]]), 1)
    with pytest.raises(ValueError, match="alpha > 0"):
        F.likelihood_sample("negative_binomial", np.array([[1.0, 0.0]]), 1)
    with pytest.raises(TypeError, match="seed must be an int"):
        F.likelihood_sample("gaussian", np.array([[0.0, 1.0]]), 1.5)
    from neurodivergent._backend import core

    with pytest.raises(ValueError, match="draw must have the same shape as raw"):
        core.likelihood_nll_backward("gaussian", np.zeros((3, 2)), raw, np.zeros(4), None, None, 1.0)
    with pytest.raises(TypeError, match="y has dtype float32"):
        core.likelihood_nll_forward("gaussian", None, raw, np.zeros(4, np.float32), None, None)
    with pytest.raises(ValueError, match="overlaps"):
        core.likelihood_params("gaussian", raw, raw, None)


# ------------------------------------------------------------------ samplers
def _draw(kind, params, n, seed):
    p = np.repeat(np.asarray(params, np.float64)[None, :], n, axis=0)
    return F.likelihood_sample(kind, p, seed)


@pytest.mark.parametrize("mu,sigma", [(0.0, 1.0), (-3.0, 0.01), (1e4, 250.0)])
def test_gaussian_sampler_moments(mu, sigma):
    x = _draw("gaussian", [mu, sigma], 200_000, 11)
    se = sigma / math.sqrt(len(x))
    assert abs(x.mean() - mu) < 5 * se
    assert x.std() == pytest.approx(sigma, rel=0.01)
    assert abs(((x - mu) ** 3).mean() / sigma ** 3) < 0.03  # symmetric


@pytest.mark.parametrize("nu", [2.5, 5.0, 30.0])
def test_student_t_sampler_moments(nu):
    mu, sigma = 2.0, 1.5
    x = _draw("student_t", [mu, sigma, nu], 200_000, 12)
    # median and quartiles are robust even for heavy tails; variance sigma^2 nu / (nu - 2) checked for nu > 4
    assert np.median(x) == pytest.approx(mu, abs=0.02)
    if nu > 4:
        assert x.var() == pytest.approx(sigma ** 2 * nu / (nu - 2), rel=0.05)
    # P(|T| < 1) for unit t with nu dof, by numerical integration of the density
    t = np.linspace(-1, 1, 20001)
    c = math.exp(math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2)) / math.sqrt(nu * math.pi)
    trap = getattr(np, "trapezoid", None) or np.trapz
    p_in = trap(c * (1 + t * t / nu) ** (-(nu + 1) / 2), t)
    assert np.mean(np.abs((x - mu) / sigma) < 1) == pytest.approx(p_in, abs=0.005)


@pytest.mark.parametrize("mu,alpha", [(3.0, 0.5), (0.2, 2.0), (40.0, 0.05), (5000.0, 0.01), (1e6, 0.001)])
def test_negative_binomial_sampler_moments(mu, alpha):
    x = _draw("negative_binomial", [mu, alpha], 200_000, 13)
    assert np.all(x >= 0) and np.all(x == np.floor(x))
    var = mu + alpha * mu * mu
    assert abs(x.mean() - mu) < 5 * math.sqrt(var / len(x))
    assert x.var() == pytest.approx(var, rel=0.05)


def test_negative_binomial_sampler_pmf_small_counts():
    mu, alpha = 2.0, 0.5
    x = _draw("negative_binomial", [mu, alpha], 200_000, 14)
    k = 1 / alpha
    for y in range(5):
        logp = (math.lgamma(y + k) - math.lgamma(k) - math.lgamma(y + 1) + k * math.log(k / (k + mu))
                + y * math.log(mu / (k + mu)))
        assert np.mean(x == y) == pytest.approx(math.exp(logp), abs=0.004)


@pytest.mark.parametrize("kind", KINDS)
def test_sampling_is_repeatable_and_seed_dependent(kind):
    params = {"gaussian": [1.0, 2.0], "student_t": [1.0, 2.0, 4.0], "negative_binomial": [50.0, 0.2]}[kind]
    a = _draw(kind, params, 1000, 7)
    b = _draw(kind, params, 1000, 7)
    c = _draw(kind, params, 1000, 8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # point i depends on (seed, i) only: a prefix call gives the same draws
    np.testing.assert_array_equal(_draw(kind, params, 10, 7), a[:10])
    # float32 parameters sample the same streams
    p32 = np.repeat(np.asarray(params, np.float32)[None, :], 1000, axis=0)
    assert F.likelihood_sample(kind, p32, 7).dtype == np.float32


def test_sampling_is_thread_independent():
    import neurodivergent as nd

    p = np.repeat(np.array([[0.0, 1.0, 3.0]]), 5000, axis=0)
    old = nd.get_num_threads()
    try:
        nd.set_num_threads(1)
        a = F.likelihood_sample("student_t", p, 3)
        nd.set_num_threads(2)
        b = F.likelihood_sample("student_t", p, 3)
    finally:
        nd.set_num_threads(old)
    np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ enum, config, loss
def test_likelihood_enum_and_config_fields():
    assert Likelihood.coerce("x", "StudentT") is Likelihood.StudentT
    assert Likelihood.coerce("x", "negative-binomial") is Likelihood.NegativeBinomial
    assert [m.n_params for m in Likelihood] == [2, 3, 2]
    with pytest.raises(ValueError, match="Likelihood.Gaussian"):
        Likelihood.coerce("likelihood", "poisson")
    cfg = (TrainingConfig()
           .with_loss_function(LossFunction.NegativeLogLikelihood)
           .with_sample_size(100)
           .with_likelihood(Likelihood.Gaussian)
           .with_quantile_levels([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]))
    assert cfg.sample_size == 100 and cfg.likelihood is Likelihood.Gaussian
    assert cfg.quantile_levels == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    assert TrainingConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="quantile_levels"):
        TrainingConfig().with_quantile_levels([0.5, 0.1])
    with pytest.raises(ValueError, match="quantile_levels"):
        TrainingConfig().with_quantile_levels([0.0, 0.5])
    with pytest.raises(ValueError, match="sample_size"):
        TrainingConfig().with_sample_size(0)
    with pytest.raises(ValueError, match="likelihood"):
        TrainingConfig().with_likelihood("poisson")


def test_nll_loss_object():
    loss = LossFunction.NegativeLogLikelihood
    rng = np.random.default_rng(8)
    raw, y = _case("student_t", 12, rng)
    v, d = loss.likelihood_value_and_grad(Likelihood.StudentT, raw, y)
    assert v == pytest.approx(R.nll("student_t", raw, y), rel=1e-12)
    np.testing.assert_allclose(d, R.grad("student_t", raw, y), rtol=1e-10, atol=1e-14)
    with pytest.raises(ValueError, match="likelihood head"):
        loss.value_and_grad(np.zeros((2, 3)), np.zeros((2, 3)))
