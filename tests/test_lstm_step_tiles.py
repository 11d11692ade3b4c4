"""The LSTM forward's per-step GEMM by the LSTM's own register tiles (csrc/lstm.cpp fwd_rows_tiles, the default
where the per-step GEMM path runs at H >= 256, and with I = 1 at H = 128, B >= 128) against the same path with
nd::gemm (ND_LSTM_FWD_STEP_TILES=0) and against the naive kernel.

1. bitwise equal to the nd::gemm form on the shapes where both compute the same sums (the small inputs in the
   epilogue: ND_LSTM_FWD_STEP_CAT=0): odd batch remainders of the 6 / 4-row tiles, a partial unit block (H not a
   multiple of 8 / 4), several K blocks (H = 520), several row sub-chunks (B > 64), the streamed copy-out;
2. with the small inputs inside the tiles' step GEMM (the default; K = I + H in one block) close to the naive
   kernel, and the same bits for 1 and 2 threads.
"""
import numpy as np
import pytest

import neurodivergent.nn.functional as F

KNOBS = ("ND_LSTM_FWD_STEP_GEMM", "ND_LSTM_FWD_STEP_TILES", "ND_LSTM_FWD_STEP_CAT", "ND_LSTM_FWD_STREAM_MIB",
         "ND_LSTM_FWD_PACKED_B")


def make(rng, B, T, I, H, dtype, states):
    k = 1.0 / np.sqrt(H)
    a = dict(x=rng.standard_normal((B, T, I)), w_ih=rng.uniform(-k, k, (4 * H, I)),
             w_hh=rng.uniform(-k, k, (4 * H, H)), b_ih=rng.uniform(-k, k, 4 * H), b_hh=rng.uniform(-k, k, 4 * H),
             h0=rng.standard_normal((B, H)) * 0.5 if states else None,
             c0=rng.standard_normal((B, H)) * 0.5 if states else None)
    return [None if v is None else v.astype(dtype) for v in a.values()]


def forward(monkeypatch, args, naive=False, **env):
    with monkeypatch.context() as m:
        for k in KNOBS:
            m.delenv(k, raising=False)
        for k, v in env.items():
            m.setenv(k, v)
        o = F.lstm_forward(*args, naive=naive)
    return o.y, o.c, o.cache.gates, o.cache.cell


def close_scaled(a, b, rtol, what):
    b = np.asarray(b, np.float64)
    err = np.abs(np.asarray(a, np.float64) - b)
    bound = rtol * (np.abs(b) + max(1.0, float(np.max(np.abs(b)))))
    assert (err <= bound).all(), f"{what}: max err {err.max():.3e}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,T,I,H,states", [
    (1, 3, 1, 256, False), (2, 3, 5, 256, True), (5, 2, 20, 256, False), (13, 3, 1, 259, True),
    (7, 2, 3, 520, True), (140, 2, 1, 130, False), (33, 2, 20, 264, True)])
def test_tiles_match_the_gemm_form(rng, monkeypatch, dtype, B, T, I, H, states):
    args = make(rng, B, T, I, H, dtype, states)
    env = dict(ND_LSTM_FWD_STEP_GEMM="1", ND_LSTM_FWD_STEP_CAT="0")
    gemm_form = forward(monkeypatch, args, ND_LSTM_FWD_STEP_TILES="0", **env)
    tiles = forward(monkeypatch, args, ND_LSTM_FWD_STEP_TILES="1", **env)
    streamed = forward(monkeypatch, args, ND_LSTM_FWD_STEP_TILES="1", ND_LSTM_FWD_STREAM_MIB="0", **env)
    for name, a, b, c in zip(("y", "c", "gates", "cell"), tiles, gemm_form, streamed):
        np.testing.assert_array_equal(a, b, err_msg=name)
        np.testing.assert_array_equal(c, b, err_msg=f"{name} (streamed)")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,T,I,H,states", [(31, 3, 8, 256, True), (130, 2, 1, 128, False), (9, 2, 15, 264, True)])
def test_inputs_in_the_tiles_step_gemm(rng, monkeypatch, threads, dtype, B, T, I, H, states):
    args = make(rng, B, T, I, H, dtype, states)
    threads.set_num_threads(1)
    one = forward(monkeypatch, args)
    threads.set_num_threads(2)
    two = forward(monkeypatch, args)
    naive = forward(monkeypatch, args, naive=True)
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    for name, a, b, n in zip(("y", "c", "gates", "cell"), one, two, naive):
        np.testing.assert_array_equal(a, b, err_msg=name)
        close_scaled(a, n, rtol, name)
