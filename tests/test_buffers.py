"""The recurrent kernels' reusable output arrays (nn/_buffers.py): an array is written again only when
nothing references it, results equal fresh arrays, the pool stays bounded, training releases it."""
import numpy as np
import pytest

import neurodivergent.nn.functional as F
from neurodivergent.nn import _buffers
from neurodivergent.nn import functional_gru as fg
from neurodivergent.nn import functional_lstm as fl


def _addresses(*arrays):
    return {a.__array_interface__["data"][0] for a in arrays}


def _cell_args(rng, gates, B, T, I, H, dt):
    """x, w_ih, w_hh, b_ih, b_hh of a recurrent cell with ``gates`` blocks of H (LSTM 4, GRU 3)."""
    s, G = 0.5, gates * H
    return (rng.standard_normal((B, T, I)).astype(dt), (s * rng.standard_normal((G, I))).astype(dt),
            (s * rng.standard_normal((G, H))).astype(dt), (s * rng.standard_normal(G)).astype(dt),
            (s * rng.standard_normal(G)).astype(dt))


def _lstm_args(rng, B, T, I, H, dt):
    return _cell_args(rng, 4, B, T, I, H, dt)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_lstm_arrays_are_reused_only_when_nothing_references_them(dt, pool):
    rng = np.random.default_rng(0)
    B, T, I, H = 5, 4, 3, 13
    a1, a2 = _lstm_args(rng, B, T, I, H, dt), _lstm_args(rng, B, T, I, H, dt)
    dy = rng.standard_normal((B, T, H)).astype(dt)

    def run(args):
        o = F.lstm_forward(*args)
        g = F.lstm_backward(o.cache, dy)
        return o, g

    o1, g1 = run(a1)
    want1 = (o1.y.copy(), o1.cache.gates.copy(), o1.cache.cell.copy(), g1.dx.copy(), g1.dw_hh.copy())
    o2, g2 = run(a2)
    want2 = (o2.y.copy(), o2.cache.gates.copy(), o2.cache.cell.copy(), g2.dx.copy(), g2.dw_hh.copy())
    del o1, g1, o2, g2

    held, gheld = run(a1)
    view = held.cache.cell[:, 2]  # a view alone keeps its array in use
    seen = _addresses(held.y, held.cache.cell, gheld.dx)
    y_held = held.y
    del held
    for _ in range(3):  # while they live, later calls never write into their arrays
        o, g = run(a2)
        assert not _addresses(o.y, o.cache.gates, o.cache.cell, g.dx) & seen
        np.testing.assert_array_equal(view, want1[2][:, 2])
        np.testing.assert_array_equal(y_held, want1[0])
        np.testing.assert_array_equal(gheld.dx, want1[3])
        for got, want in zip((o.y, o.cache.gates, o.cache.cell, g.dx, g.dw_hh), want2):
            np.testing.assert_array_equal(got, want)
        del o, g
    del view, y_held, gheld
    o, g = run(a1)  # everything free again: reused arrays, the same results as fresh ones
    held_addresses = set()
    for raws, offs in zip(pool.slots.values(), pool.offs.values()):
        held_addresses |= {r.__array_interface__["data"][0] + off for r, off in zip(raws, offs)}
    assert _addresses(o.y, o.cache.gates, o.cache.cell, g.dx) <= held_addresses
    for got, want in zip((o.y, o.cache.gates, o.cache.cell, g.dx, g.dw_hh), want1):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("cell,bound", [("lstm", 8000), ("gru", 6000)])
def test_pool_is_bounded_and_released(monkeypatch, cell, bound):
    # B, T, I, H = 3, 4, 2, 16: y 768 B; LSTM gates 3072 B, GRU cache 3072 B (+ 64 B alignment slack each)
    module = fl if cell == "lstm" else fg
    p = _buffers.BufferPool(min_bytes=0, max_bytes=bound)
    monkeypatch.setattr(module, "_POOL", p)
    args = _cell_args(np.random.default_rng(1), 4 if cell == "lstm" else 3, 3, 4, 2, 16, np.float32)
    forward = getattr(F, f"{cell}_forward")
    outs = [forward(*args) for _ in range(4)]  # all held: nothing reusable, the pool stays bounded
    assert 0 < p.held <= bound
    ys = [o.y.copy() for o in outs]
    for o, y in zip(outs, ys):
        np.testing.assert_array_equal(o.y, y)
    del outs
    p.release()
    assert p.held == 0 and not p.slots
    assert "release_buffers" in F.__all__


def test_small_arrays_are_not_pooled():
    p = _buffers.BufferPool(min_bytes=1 << 20, max_bytes=1 << 30)
    a = p.take("t", (10, 10), np.float32)
    assert a.shape == (10, 10) and a.dtype == np.float32 and p.held == 0
    z = p.take("t", (7,), np.float64, zero=True, align=True)
    assert np.all(z == 0) and z.__array_interface__["data"][0] % 64 == 0


def test_training_releases_the_pool():
    from neurodivergent import TrainingConfig, load_dataset
    from neurodivergent.models.lstm import LSTM, LSTMConfig

    data = load_dataset("us_macro_quarterly")
    model = LSTM(LSTMConfig().with_input_size(8).with_horizon(4).with_hidden_size(8))
    _buffers.POOL.take("probe", (1 << 19,), np.float32)  # 2 MiB: pooled, unreferenced
    assert _buffers.POOL.held > 0
    model.fit_with_config(data, TrainingConfig().with_max_steps(2).with_verbose(False))
    assert _buffers.POOL.held == 0
