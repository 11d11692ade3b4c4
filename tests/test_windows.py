import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodivergent.data.scalers import SCALERS, scale, unscale, window_stats
from neurodivergent.data.windows import WindowSampler
from neurodivergent.training.trainer import make_samplers, validation_steps


def panel(lengths, seed=0):
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return rng.normal(size=offsets[-1]), offsets


def all_windows_naive(values, offsets, inp, h, end=None, start=None):
    out = []
    for s in range(len(offsets) - 1):
        y = values[offsets[s]:offsets[s + 1]]
        e = len(y) if end is None else end[s]
        st_ = inp if start is None else max(inp, start[s])
        for t in range(st_, e - h + 1):
            out.append((y[t - inp:t], y[t:t + h]))
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=6), st.integers(1, 8), st.integers(1, 6))
def test_sampler_enumerates_exactly_the_valid_windows(lengths, inp, h):
    values, offsets = panel(lengths)
    s = WindowSampler.for_series(values, offsets, inp, h)
    expect = all_windows_naive(values, offsets, inp, h)
    assert s.n_windows == len(expect)
    if expect:
        x, y = s.gather(np.arange(s.n_windows))
        np.testing.assert_array_equal(x, np.stack([e[0] for e in expect]))
        np.testing.assert_array_equal(y, np.stack([e[1] for e in expect]))


def test_locate_and_out_of_range():
    values, offsets = panel([10, 3, 12])
    s = WindowSampler.for_series(values, offsets, 4, 2)
    # series 0: t in [4, 8] (5 windows), series 1: none, series 2: t in [4, 10] (7)
    assert s.n_windows == 12
    si, t = s.locate(np.array([0, 4, 5, 11]))
    assert si.tolist() == [0, 0, 2, 2] and t.tolist() == [4, 8, 4, 10]
    with pytest.raises(IndexError):
        s.locate(np.array([12]))


def test_validation_split_by_time_has_no_overlap_of_targets():
    lengths = np.array([100, 60])
    values, offsets = panel(lengths)
    tr, va = make_samplers(values, offsets, 12, 6, 0.2)
    val = validation_steps(lengths, 6, 0.2)
    assert val.tolist() == [20, 12]
    si, t = tr.locate(np.arange(tr.n_windows))
    assert np.all(t + 6 <= lengths[si] - val[si])  # training targets end before validation part
    si, t = va.locate(np.arange(va.n_windows))
    assert np.all(t >= lengths[si] - val[si]) and np.all(t + 6 <= lengths[si])
    assert va.n_windows == (20 - 6 + 1) + (12 - 6 + 1)


def test_epoch_order_is_a_seeded_permutation():
    values, offsets = panel([30, 30])
    s = WindowSampler.for_series(values, offsets, 5, 5)
    a = s.epoch_order(np.random.default_rng(3))
    b = s.epoch_order(np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert sorted(a.tolist()) == list(range(s.n_windows))


@pytest.mark.parametrize("kind", SCALERS)
def test_scalers_use_input_statistics_and_invert(kind):
    rng = np.random.default_rng(1)
    x = rng.normal(5, 3, size=(7, 20))
    y = rng.normal(5, 3, size=(7, 4))
    loc, sc = window_stats(x, kind)
    z = scale(y, loc, sc, dtype=np.float64)
    np.testing.assert_allclose(unscale(z, loc, sc), y, rtol=1e-12)
    if kind == "standard":
        np.testing.assert_allclose(loc[:, 0], x.mean(1)); np.testing.assert_allclose(sc[:, 0], x.std(1))
    if kind == "robust":
        np.testing.assert_allclose(loc[:, 0], np.median(x, 1))
    if kind == "minmax":
        zx = scale(x, loc, sc, dtype=np.float64)
        np.testing.assert_allclose(zx.min(1), 0, atol=1e-12); np.testing.assert_allclose(zx.max(1), 1)


@pytest.mark.parametrize("kind", SCALERS)
def test_constant_windows_do_not_divide_by_zero(kind):
    x = np.full((2, 10), 7.0)
    loc, sc = window_stats(x, kind)
    assert np.all(sc == 1.0)
    assert np.all(np.isfinite(scale(np.full((2, 3), 9.0), loc, sc)))


def test_unknown_scaler():
    with pytest.raises(ValueError, match="unknown scaler 'z'"):
        window_stats(np.ones((1, 3)), "z")
