"""Gaussian process (posterior, marginal likelihood and its gradient), the L-BFGS, acquisition functions."""
import math

import numpy as np
import pytest

from neurodivergent.tuning import (AcquisitionFunction, ExpectedImprovement, GaussianProcess, Kernel,
                                   LowerConfidenceBound, ProbabilityOfImprovement)
from neurodivergent.tuning.gp import lbfgs_minimize


def matern52(a, b, s2, ls):
    """Matérn 5/2 written out point by point (independent of the library's vectorised form)."""
    K = np.empty((len(a), len(b)))
    for i in range(len(a)):
        for j in range(len(b)):
            r = math.sqrt(sum(((a[i, d] - b[j, d]) / ls[d]) ** 2 for d in range(a.shape[1])))
            K[i, j] = s2 * (1 + math.sqrt(5) * r + 5 * r * r / 3) * math.exp(-math.sqrt(5) * r)
    return K


@pytest.mark.parametrize("n, D", [(1, 1), (5, 1), (8, 2), (12, 3)])
def test_posterior_matches_the_closed_form(n, D):
    rng = np.random.default_rng(n * 10 + D)
    X = rng.random((n, D))
    y = np.sin(3 * X).sum(axis=1) * 4 + 7 + rng.normal(0, 0.1, n)
    Xs = rng.random((6, D))
    s2, ls, noise, alpha = 1.7, rng.uniform(0.2, 1.5, D), 0.03, 1e-6
    theta = np.log(np.concatenate([[s2], ls, [noise]]))
    gp = GaussianProcess(alpha=alpha).fit(X, y, optimize=False, theta=theta)
    mu, sd = gp.predict(Xs)
    # closed form on standardised targets, mapped back: prior mean m, kernel scaled by v
    m, v = y.mean(), (y.std() if y.std() > 0 else 1.0) ** 2
    K = v * (matern52(X, X, s2, ls) + (noise + alpha) * np.eye(n))
    Ks = v * matern52(Xs, X, s2, ls)
    mu_ref = m + Ks @ np.linalg.solve(K, y - m)
    var_ref = v * s2 - np.einsum("ij,ji->i", Ks, np.linalg.solve(K, Ks.T))
    np.testing.assert_allclose(mu, mu_ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(sd, np.sqrt(var_ref), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("kernel", [Kernel.Matern52, Kernel.Matern32, Kernel.RBF])
def test_marginal_likelihood_and_gradient(kernel):
    rng = np.random.default_rng(3)
    X, y = rng.random((15, 3)), rng.normal(size=15)
    gp = GaussianProcess(kernel=kernel, alpha=1e-6)
    theta = rng.normal(0, 0.5, 5)
    lml, grad = gp.log_marginal_likelihood(theta, X, y)
    # value: the multivariate normal log density, computed here from scratch
    s2, ls, noise = math.exp(theta[0]), np.exp(theta[1:4]), math.exp(theta[4])
    d = np.sqrt((((X[:, None, :] - X[None, :, :]) / ls) ** 2).sum(-1))
    g = {"matern52": (1 + math.sqrt(5) * d + 5 * d * d / 3) * np.exp(-math.sqrt(5) * d),
         "matern32": (1 + math.sqrt(3) * d) * np.exp(-math.sqrt(3) * d), "rbf": np.exp(-0.5 * d * d)}[kernel]
    K = s2 * g + (noise + 1e-6) * np.eye(15)
    ref = -0.5 * y @ np.linalg.solve(K, y) - 0.5 * np.linalg.slogdet(K)[1] - 7.5 * math.log(2 * math.pi)
    assert lml == pytest.approx(ref, rel=1e-10)
    # gradient: central finite differences
    h = 1e-6
    fd = [(gp.log_marginal_likelihood(theta + h * e, X, y, grad=False)
           - gp.log_marginal_likelihood(theta - h * e, X, y, grad=False)) / (2 * h) for e in np.eye(5)]
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6)


def test_fitting_raises_the_likelihood_and_interpolates():
    rng = np.random.default_rng(0)
    X = rng.random((30, 2))
    f = lambda Z: np.sin(6 * Z[:, 0]) + (Z[:, 1] - 0.5) ** 2 * 3  # noqa: E731
    gp = GaussianProcess()
    start = np.log([1.0, 0.5, 0.5, 1e-4])
    y = f(X)
    yn = (y - y.mean()) / y.std()
    before = gp.log_marginal_likelihood(start, X, yn, grad=False)
    gp.fit(X, y, theta=start, rng=np.random.default_rng(1))
    assert gp.log_marginal_likelihood(gp.theta, X, yn, grad=False) > before + 1.0
    Xt = rng.random((50, 2))
    mu, sd = gp.predict(Xt)
    assert np.sqrt(np.mean((mu - f(Xt)) ** 2)) < 0.1 * y.std()
    _, sd_train = gp.predict(X)
    assert np.all(sd_train < 0.05 * y.std()) and np.mean(sd) > np.mean(sd_train)


def test_gp_rejects_bad_input():
    gp = GaussianProcess()
    with pytest.raises(ValueError, match="finite"):
        gp.fit(np.array([[0.0], [np.nan]]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"\(n, D\)"):
        gp.fit(np.zeros((3, 1)), np.zeros(4))
    with pytest.raises(RuntimeError, match="not fitted"):
        GaussianProcess().predict(np.zeros((1, 1)))
    with pytest.raises(ValueError, match="kernel"):
        GaussianProcess(kernel="linear")


def test_lbfgs_on_rosenbrock_with_and_without_bounds():
    def fg(x):
        a, b = x
        return (1 - a) ** 2 + 100 * (b - a * a) ** 2, np.array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])

    x, f = lbfgs_minimize(fg, np.array([-1.2, 1.0]), maxiter=500, ftol=0.0)
    np.testing.assert_allclose(x, [1.0, 1.0], atol=1e-4)
    # with the box [-2, 0.5] x [-2, 2] the minimum sits on the bound a = 0.5, b = 0.25
    x, f = lbfgs_minimize(fg, np.array([-1.2, 1.0]), np.array([[-2.0, 0.5], [-2.0, 2.0]]), maxiter=500, ftol=0.0)
    np.testing.assert_allclose(x, [0.5, 0.25], atol=1e-4)


# ------------------------------------------------------------------ acquisition functions
def _normal_expectation(fn, mu, sigma, n=200001):
    """E[fn(Y)], Y ~ N(mu, sigma^2), by the trapezoidal rule over mu +- 12 sigma."""
    y = np.linspace(mu - 12 * sigma, mu + 12 * sigma, n)
    w = np.exp(-0.5 * ((y - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    v = fn(y) * w
    return float(np.sum((v[1:] + v[:-1]) * np.diff(y)) / 2)


@pytest.mark.parametrize("mu, sigma, best, xi", [(0.0, 1.0, 0.5, 0.0), (1.2, 0.3, 0.9, 0.01),
                                                 (-2.0, 2.5, -1.0, 0.1), (3.0, 0.2, 0.0, 0.0)])
def test_expected_and_probability_of_improvement_against_their_definitions(mu, sigma, best, xi):
    ei = ExpectedImprovement(xi=xi)(np.array([mu]), np.array([sigma]), best)[0]
    ref = _normal_expectation(lambda y: np.maximum(best - xi - y, 0.0), mu, sigma)
    assert ei == pytest.approx(ref, rel=1e-6, abs=1e-12)
    pi = ProbabilityOfImprovement(xi=xi)(np.array([mu]), np.array([sigma]), best)[0]
    t = np.linspace(mu - 12 * sigma, best - xi, 200001)  # P(Y < best - xi): the density integrated up to it
    dens = np.exp(-0.5 * ((t - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    ref = float(np.sum((dens[1:] + dens[:-1]) * np.diff(t)) / 2) if best - xi > mu - 12 * sigma else 0.0
    assert pi == pytest.approx(ref, abs=1e-9)
    # closed forms with math.erf
    z = (best - mu - xi) / sigma
    cdf, pdf = 0.5 * (1 + math.erf(z / math.sqrt(2))), math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    assert ei == pytest.approx((best - mu - xi) * cdf + sigma * pdf, rel=1e-12, abs=1e-15)
    assert pi == pytest.approx(cdf, rel=1e-12)


def test_acquisition_limits_and_lcb():
    mu, sd = np.array([0.0, 1.0, -1.0]), np.array([0.0, 0.0, 1.0])
    ei = ExpectedImprovement(xi=0.0)(mu, sd, 0.5)
    assert ei[0] == 0.5 and ei[1] == 0.0  # no uncertainty: the plain improvement
    assert ProbabilityOfImprovement(xi=0.0)(mu, sd, 0.5)[:2].tolist() == [1.0, 0.0]
    lcb = LowerConfidenceBound(kappa=2.0)
    np.testing.assert_array_equal(lcb.bound(mu, sd), mu - 2.0 * sd)
    np.testing.assert_array_equal(lcb(mu, sd), -(mu - 2.0 * sd))
    # larger uncertainty is worth more to all three at the same mean
    for a in (ExpectedImprovement(), ProbabilityOfImprovement(), LowerConfidenceBound()):
        v = a(np.array([1.0, 1.0]), np.array([0.1, 1.0]), 0.0)
        assert v[1] > v[0]


def test_acquisition_coercion():
    assert isinstance(AcquisitionFunction.coerce(AcquisitionFunction.ExpectedImprovement), ExpectedImprovement)
    assert AcquisitionFunction.coerce("lcb").kappa == 1.96
    assert AcquisitionFunction.coerce(AcquisitionFunction.LowerConfidenceBound(kappa=3)).kappa == 3.0
    with pytest.raises(ValueError, match="acquisition_function"):
        AcquisitionFunction.coerce("ucb")
    with pytest.raises(ValueError, match="xi"):
        ExpectedImprovement(xi=-1)
