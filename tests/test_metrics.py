"""Forecast metrics and M4 benchmarks: hand-computed cases, edge-case rules, properties, official M4 scores."""
import csv
import math
import os
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neurodivergent.validation import (
    evaluate,
    mae,
    mape,
    mase,
    mse,
    naive,
    naive2,
    owa,
    quantile_loss,
    rmse,
    scaled_quantile_loss,
    seasonal_indices,
    seasonal_naive,
    seasonality_test,
    smape,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
M4_DIR = os.path.join(ROOT, "..", "shared", "data", "m4")

Y = [1.0, 2.0, 3.0, 4.0]
YH = [2.0, 2.0, 1.0, 5.0]  # errors 1, 0, 2, 1


@pytest.fixture(autouse=True)
def _no_runtime_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        yield


# ------------------------------------------------------------------------------------ hand-computed
def test_point_metrics_hand_computed():
    assert mae(Y, YH) == pytest.approx(1.0)
    assert mse(Y, YH) == pytest.approx(1.5)
    assert rmse(Y, YH) == pytest.approx(math.sqrt(1.5))
    assert mape(Y, YH) == pytest.approx(100 * (1 + 0 + 2 / 3 + 1 / 4) / 4)
    assert smape(Y, YH) == pytest.approx(200 * (1 / 3 + 0 + 2 / 4 + 1 / 9) / 4)
    assert isinstance(mae(Y, YH), float)


def test_axis_gives_per_row_values():
    y = np.array([Y, [2.0, 2.0, 2.0, 2.0]])
    yh = np.array([YH, [2.0, 2.0, 2.0, 4.0]])
    np.testing.assert_allclose(mae(y, yh, axis=1), [1.0, 0.5])
    np.testing.assert_allclose(rmse(y, yh, axis=1), [math.sqrt(1.5), 1.0])
    np.testing.assert_allclose(smape(y, yh, axis=1), [smape(Y, YH), 200 * (2 / 6) / 4])
    # mean over everything == mean of per-series means with equal horizons (M4 averaging)
    assert smape(y, yh) == pytest.approx(smape(y, yh, axis=1).mean())
    with pytest.raises(ValueError, match="axis"):
        mae(y, yh, axis=2)


def test_mase_hand_computed():
    train = [1.0, 3.0, 2.0, 4.0, 3.0]  # |diff| lag 1: 2 1 2 1 -> 1.5 ; lag 2: 1 1 1 -> 1
    assert mase([4.0, 5.0], [3.0, 7.0], train, 1) == pytest.approx(1.0)
    assert mase([4.0, 5.0], [3.0, 7.0], train, 2) == pytest.approx(1.5)


def test_mase_ragged_training_series():
    trains = [np.array([1.0, 2.0, 3.0]), np.array([10.0, 0.0, 10.0, 0.0, 10.0])]  # scales 1 and 10
    y = np.array([[4.0, 4.0], [0.0, 10.0]])
    yh = np.array([[4.0, 6.0], [5.0, 5.0]])  # errors 1 and 5
    np.testing.assert_allclose(mase(y, yh, trains, 1, per_series=True), [1.0, 0.5])
    assert mase(y, yh, trains, 1) == pytest.approx(0.75)


def test_owa_hand_computed():
    assert owa(10.0, 1.0, 20.0, 2.0) == pytest.approx(0.5)
    assert owa(18.383, 2.395, 18.383, 2.395) == pytest.approx(1.0)


def test_quantile_loss_hand_computed():
    y = [1.0, 2.0]
    qp = [[0.0, 2.0], [2.0, 2.0]]
    assert quantile_loss(y, qp, [0.1, 0.9]) == pytest.approx(0.05)
    np.testing.assert_allclose(quantile_loss(y, qp, [0.1, 0.9], per_quantile=True), [0.05, 0.05])
    # a single median is half the MAE, and its scaled version half the MASE
    yh = np.array(YH)
    assert quantile_loss(Y, yh[:, None], [0.5]) == pytest.approx(mae(Y, YH) / 2)
    train = [1.0, 3.0, 2.0, 4.0, 3.0]
    assert scaled_quantile_loss(Y, yh[:, None], [0.5], train, 2) == pytest.approx(mase(Y, YH, train, 2) / 2)


# ------------------------------------------------------------------------------------ zero/constant
def test_mape_zero_rule():
    y, yh = [0.0, 2.0, 4.0], [1.0, 1.0, 5.0]
    assert math.isnan(mape(y, yh))
    assert mape(y, yh, skip_zeros=True) == pytest.approx(100 * (0.5 + 0.25) / 2)
    assert math.isnan(mape([0.0, 0.0], [1.0, 2.0], skip_zeros=True))
    rows = mape([[0.0, 2.0], [1.0, 2.0]], [[1.0, 2.0], [2.0, 2.0]], axis=1)
    assert math.isnan(rows[0]) and rows[1] == pytest.approx(50.0)


def test_smape_both_zero_counts_zero():
    assert smape([0.0, 0.0], [0.0, 0.0]) == 0.0
    assert smape([0.0, 2.0], [0.0, 1.0]) == pytest.approx(200 * (1 / 3) / 2)
    assert smape([0.0], [5.0]) == pytest.approx(200.0)


def test_mase_constant_training_series_and_nan_policy():
    trains = [np.array([5.0, 5.0, 5.0]), np.array([1.0, 2.0, 3.0])]
    y = [[5.0, 5.0], [4.0, 4.0]]
    yh = [[6.0, 6.0], [5.0, 5.0]]
    per = mase(y, yh, trains, 1, per_series=True)
    assert math.isnan(per[0]) and per[1] == pytest.approx(1.0)
    assert math.isnan(mase(y, yh, trains, 1))
    assert mase(y, yh, trains, 1, nan_policy="omit") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="series 0"):
        mase(y, yh, trains, 1, nan_policy="raise")
    assert math.isnan(mase([1.0], [2.0], [3.0, 3.0], 1, nan_policy="omit"))
    with pytest.raises(ValueError, match="nan_policy"):
        mase(y, yh, trains, 1, nan_policy="ignore")


def test_owa_rejects_bad_values():
    with pytest.raises(ValueError, match="mase must be finite"):
        owa(10.0, float("nan"), 20.0, 2.0)
    with pytest.raises(ValueError, match="smape_naive2 is 0"):
        owa(10.0, 1.0, 0.0, 2.0)
    with pytest.raises(ValueError, match=">= 0"):
        owa(-1.0, 1.0, 1.0, 2.0)


# ------------------------------------------------------------------------------------ input checks
def test_shape_and_value_errors():
    with pytest.raises(ValueError, match="y_hat has shape"):
        mae([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"^y has 1 non-finite"):
        mse([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"y_hat has 1 non-finite"):
        smape([1.0, 2.0], [1.0, float("inf")])
    with pytest.raises(ValueError, match="y is empty"):
        mae([], [])
    with pytest.raises(TypeError, match="y must be numeric"):
        mae(["a"], ["b"])
    with pytest.raises(ValueError, match="y_train holds 1 series but y holds 2"):
        mase([[1.0], [2.0]], [[1.0], [2.0]], [1.0, 2.0, 3.0], 1)
    with pytest.raises(ValueError, match="y_train"):
        mase([1.0], [2.0], [1.0, 2.0], 2)  # needs more than m values
    with pytest.raises(ValueError, match=r"y_train\[1\] has 1 non-finite"):
        mase([[1.0], [2.0]], [[1.0], [2.0]], [[1.0, 2.0], [1.0, np.nan]], 1)
    with pytest.raises(ValueError, match="m \\(the seasonal period\\) must be >= 1"):
        mase([1.0], [2.0], [1.0, 2.0], 0)
    with pytest.raises(ValueError, match="q_pred has shape"):
        quantile_loss([1.0, 2.0], [1.0, 2.0], [0.5])
    with pytest.raises(ValueError, match="quantiles must lie strictly between 0 and 1"):
        quantile_loss([1.0], [[1.0]], [1.0])


def test_evaluate():
    train = [1.0, 3.0, 2.0, 4.0, 3.0]
    out = evaluate([4.0, 5.0], [3.0, 7.0], train, 1)
    assert list(out) == ["mae", "mse", "rmse", "smape", "mase"]
    assert out["mase"] == pytest.approx(1.0) and out["mae"] == pytest.approx(1.5)
    assert list(evaluate(Y, YH)) == ["mae", "mse", "rmse", "smape"]
    assert evaluate([0.0, 2.0], [1.0, 1.0], metrics=["mape"], skip_zeros=True) == {"mape": 50.0}
    with pytest.raises(ValueError, match="need y_train"):
        evaluate(Y, YH, metrics=("mase",))
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(Y, YH, metrics=("r2",))
    # OWA of Naive2 against itself is 1
    rng = np.random.default_rng(0)
    trains = [50 + rng.random(n) for n in (30, 41)]
    y = 50 + rng.random((2, 6))
    ref = naive2(trains, 6, 4)
    assert evaluate(y, ref, trains, 4, metrics=("owa",))["owa"] == pytest.approx(1.0)


# ------------------------------------------------------------------------------------ baselines
def test_naive_and_seasonal_naive():
    x = np.arange(1.0, 11.0)
    np.testing.assert_array_equal(naive(x, 3), [10.0, 10.0, 10.0])
    np.testing.assert_array_equal(seasonal_naive(x, 5, 3), [8.0, 9.0, 10.0, 8.0, 9.0])
    out = seasonal_naive([x, x[:4]], 2, 2)
    assert out.shape == (2, 2)
    np.testing.assert_array_equal(out, [[9.0, 10.0], [3.0, 4.0]])
    with pytest.raises(ValueError, match="y_train"):
        seasonal_naive([1.0, 2.0], 3, 4)
    with pytest.raises(ValueError, match="h \\(the horizon\\)"):
        naive(x, 0)


def test_naive2_exact_multiplicative_seasonality():
    s = np.array([0.5, 1.5, 0.8, 1.2])  # mean 1
    x = 10.0 * np.tile(s, 5)  # n = 20: constant trend, exact indices
    assert seasonality_test(x, 4)
    np.testing.assert_allclose(seasonal_indices(x, 4), s)
    np.testing.assert_allclose(naive2(x, 6, 4), 10.0 * np.resize(s, 6))
    # seasonal indices follow the position in the cycle when the length is not a multiple of m
    y = x[:-1]  # next position is 3
    np.testing.assert_allclose(naive2(y, 2, 4), 10.0 * s[[3, 0]])


def test_naive2_falls_back_to_naive():
    rng = np.random.default_rng(1)
    x = 10.0 + np.tile([1.0, 3.0], 5)
    np.testing.assert_array_equal(naive2(x[:5], 3, 2), naive(x[:5], 3))  # n < 3m
    np.testing.assert_array_equal(naive2(x, 3, 1), naive(x, 3))  # m == 1
    xp = np.tile([-1.0, 3.0], 5)
    np.testing.assert_array_equal(naive2(xp, 3, 2), naive(xp, 3))  # non-positive values
    w = 100 + rng.standard_normal(200)  # white noise: not seasonal
    assert not seasonality_test(w, 12)
    np.testing.assert_array_equal(naive2(w, 4, 12), naive(w, 4))
    assert not seasonality_test(np.full(50, 3.0), 4)


# ------------------------------------------------------------------------------------ properties
finite = st.floats(-1e6, 1e6, allow_nan=False)
pairs = st.integers(1, 30).flatmap(
    lambda n: st.tuples(hnp.arrays(np.float64, n, elements=finite), hnp.arrays(np.float64, n, elements=finite))
)


@settings(max_examples=150, deadline=None)
@given(pairs)
def test_smape_symmetric_and_bounded(ab):
    a, b = ab
    s = smape(a, b)
    assert s == pytest.approx(smape(b, a), rel=1e-12, abs=1e-12)
    assert 0.0 <= s <= 200.0 + 1e-9


@settings(max_examples=150, deadline=None)
@given(pairs)
def test_mae_le_rmse(ab):
    a, b = ab
    assert mae(a, b) <= rmse(a, b) * (1 + 1e-12) + 1e-12


# values on a 1/8 grid: no subnormal underflow can turn a non-zero scale into zero after scaling
grid = st.integers(-8000, 8000).map(lambda k: k / 8.0)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 5).flatmap(lambda m: st.tuples(st.just(m), hnp.arrays(np.float64, m + 8, elements=grid))),
    hnp.arrays(np.float64, 6, elements=grid),
    hnp.arrays(np.float64, 6, elements=grid),
    st.floats(1e-3, 1e3),
)
def test_mase_scale_invariant(mtrain, y, yh, c):
    m, train = mtrain
    base = mase(y, yh, train, m)
    scaled = mase(c * y, c * yh, c * train, m)
    if math.isnan(base):
        assert math.isnan(scaled)
    else:
        assert scaled == pytest.approx(base, rel=1e-9, abs=1e-12)


# ------------------------------------------------------------------------------------ official M4
def _read_m4(name):
    with open(os.path.join(M4_DIR, name), newline="") as f:
        rows = csv.reader(f)
        next(rows)  # header V1, V2, ...
        ids, values = [], []
        for row in rows:
            ids.append(row[0])
            values.append(np.array([float(v) for v in row[1:] if v.strip()]))
    return ids, values


@pytest.fixture(scope="module")
def m4_hourly():
    if not os.path.isdir(M4_DIR):
        pytest.skip(f"M4 data not found at {os.path.normpath(M4_DIR)} (shared/ is beside the repository in CI)")
    train_ids, train = _read_m4("m4_hourly_train.csv")
    test_ids, test = _read_m4("m4_hourly_test.csv")
    assert train_ids == test_ids and len(train_ids) == 414
    y = np.stack(test)
    assert y.shape == (414, 48)
    return train, y


def test_m4_hourly_official_scores(m4_hourly):
    train, y = m4_hourly
    h, m = 48, 24
    sn = seasonal_naive(train, h, m)
    n2 = naive2(train, h, m)
    smape_sn, mase_sn = smape(y, sn), mase(y, sn, train, m)
    smape_n2, mase_n2 = smape(y, n2), mase(y, n2, train, m)
    # official values, Evaluation and Ranks (M4-methods): Hourly
    assert smape_sn == pytest.approx(13.912, abs=6e-4)
    assert mase_sn == pytest.approx(1.193, abs=6e-4)
    assert smape_n2 == pytest.approx(18.383, abs=6e-4)
    assert mase_n2 == pytest.approx(2.395, abs=6e-4)
    assert owa(smape_sn, mase_sn, smape_n2, mase_n2) == pytest.approx(0.6275, abs=1e-4)
    nv = naive(train, h)
    assert smape(y, nv) == pytest.approx(43.003, abs=6e-4)
    assert mase(y, nv, train, m) == pytest.approx(11.608, abs=6e-4)
    assert evaluate(y, sn, train, m, metrics=("owa",))["owa"] == pytest.approx(0.6275, abs=1e-4)
