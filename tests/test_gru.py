"""GRU kernels (csrc/gru.cpp through neurodivergent.nn.functional) against the float64 numpy reference.

1. the reference backward is checked against central finite differences of its forward;
2. the double kernels match the reference to 1e-10, float32 to 1e-5 (|ref - out| <= atol + rtol |ref|,
   atol = rtol * max|ref|), on shapes with B = 1, T = 1, I = 1, H not a multiple of 8, T = 1000;
3. fast == naive, the portable ("generic") step kernels too;
4. parameter gradients accumulate (backward twice doubles them), dx / dh0 are overwritten;
5. h0 = None is zeros, dy = None and need_dx = False paths, accumulation into views of a flat buffer;
6. large inputs (x * 1e3, T = 1000) stay finite; bitwise repeatable, equal across thread counts;
7. hypothesis over shapes and values;
8. bad input raises TypeError / ValueError naming the argument;
9. (optional) torch.nn.GRU with copied weights, when torch is importable;
10. the output arrays the functions keep for reuse are never handed out while something references them.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurodivergent import _core
from neurodivergent.nn import functional as F
from tests.reference import gru as ref

DTYPES = [np.float64, np.float32]
TOL = {np.float64: 1e-10, np.float32: 1e-5}
GRAD_NAMES = ("dx", "dh0", "dw_ih", "dw_hh", "db_ih", "db_hh")
# (B, T, I, H): B = 1, T = 1, I = 1, H = 1 and H not a multiple of 8 (or 4: the double vector width),
# several batch tiles (forward tiles of 4 rows, backward of 6), hidden sizes spanning unit blocks.
# I > 16 takes the GEMM path for dW_ih / dx (smaller inputs: one fused pass over the rows).
# H > 85: the backward's per-step product runs in K chunks (3H x 2W weight sliver > 16 KiB), over several
# row panels at B = 20.
# I > 16 and H <= 85 (float) / 42 (double): dx by row tiles instead of GEMM; both sides of those limits.
# H <= 64 (I <= 64 when I > 16): dW_hh (dW_ih) by unpacked row tiles (dw_rows) instead of GEMM; both sides.
SHAPES = [(1, 1, 1, 1), (1, 1, 3, 5), (2, 3, 1, 8), (1, 6, 2, 3), (3, 7, 8, 13), (5, 4, 6, 17), (7, 5, 3, 24),
          (4, 6, 5, 33), (13, 3, 2, 64), (9, 4, 16, 70), (3, 5, 17, 12), (2, 4, 40, 9), (20, 3, 2, 90),
          (3, 4, 20, 85), (3, 4, 20, 86), (8, 3, 33, 42), (8, 3, 33, 43), (5, 6, 64, 64), (5, 6, 65, 65),
          (4, 5, 65, 20)]


def assert_close(out, refv, rtol, what="value", scale=None):
    out = np.asarray(out, np.float64)
    refv = np.asarray(refv, np.float64)
    assert out.shape == refv.shape, f"{what}: shape {out.shape} != {refv.shape}"
    if scale is None:
        scale = max(1.0, float(np.max(np.abs(refv)))) if refv.size else 1.0
    err = np.abs(out - refv)
    bound = rtol * scale + rtol * np.abs(refv)
    bad = ~(err <= bound)
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, err - bound, -np.inf)), err.shape)
        raise AssertionError(f"{what}: {int(bad.sum())} of {err.size} out of tolerance; worst at {i}: "
                             f"out={out[i]!r} ref={refv[i]!r} err={err[i]:.3e} bound={bound[i]:.3e}")


def make(rng, B, T, I, H, dt=np.float64, h0=True, xscale=1.0):
    """Inputs as torch.nn.GRU initialises them (uniform +-1/sqrt(H)), x ~ N(0, xscale^2)."""
    k = 1.0 / np.sqrt(H)
    x = (rng.standard_normal((B, T, I)) * xscale).astype(dt)
    w_ih = rng.uniform(-k, k, (3 * H, I)).astype(dt)
    w_hh = rng.uniform(-k, k, (3 * H, H)).astype(dt)
    b_ih = rng.uniform(-k, k, 3 * H).astype(dt)
    b_hh = rng.uniform(-k, k, 3 * H).astype(dt)
    h = rng.uniform(-1, 1, (B, H)).astype(dt) if h0 else None
    return x, w_ih, w_hh, b_ih, b_hh, h


def check_against_reference(args, dy, dh, dt, naive=False, need_dx=True):
    x, w_ih, w_hh, b_ih, b_hh, h0 = args
    out = F.gru_forward(*args, naive=naive)
    y_r, h_r, cache_r = ref.forward(*args)
    tol = TOL[dt]
    cached = F.gru_cache_gates(out.cache)
    for q, name in enumerate(("r", "z", "n", "hn")):
        assert_close(cached[:, :, q], cache_r[name], tol, "cache " + name)
    assert out.y.dtype == dt and out.h.dtype == dt
    assert_close(out.y, y_r, tol, "y")
    assert_close(out.h, h_r, tol, "h")
    g = F.gru_backward(out.cache, dy, dh, need_dx=need_dx, naive=naive)
    g_r = ref.backward(cache_r, dy, dh)
    for name, a, b in zip(GRAD_NAMES, g, g_r):
        if name == "dx" and not need_dx:
            assert a is None
            continue
        assert a.dtype == dt, name
        assert_close(a, b, tol, name)
    return out, g


# ===================================================================================== 1. reference vs FD
def central_diff(f, x, h=1e-6):
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + h
        fp = f()
        flat[k] = old - h
        fm = f()
        flat[k] = old
        gflat[k] = (fp - fm) / (2 * h)
    return g


@pytest.mark.parametrize("with_dy,with_dh", [(True, True), (True, False), (False, True)])
def test_reference_backward_matches_finite_differences(with_dy, with_dh, rng):
    B, T, I, H = 2, 4, 3, 5
    x, w_ih, w_hh, b_ih, b_hh, h0 = make(rng, B, T, I, H)
    w_hh *= 3  # larger recurrent weights: make every term of the gradient matter
    gy = rng.standard_normal((B, T, H)) if with_dy else None
    gh = rng.standard_normal((B, H)) if with_dh else None

    def loss():
        y, h, _ = ref.forward(x, w_ih, w_hh, b_ih, b_hh, h0)
        return float((np.sum(gy * y) if with_dy else 0.0) + (np.sum(gh * h) if with_dh else 0.0))

    _, _, cache = ref.forward(x, w_ih, w_hh, b_ih, b_hh, h0)
    grads = ref.backward(cache, gy, gh)
    for name, arr, an in zip(GRAD_NAMES, (x, h0, w_ih, w_hh, b_ih, b_hh), grads):
        assert_close(an, central_diff(loss, arr), 1e-7, name, scale=1e-1)


def test_reference_matches_textbook_single_step():
    # One step, B = 1, H = 1, I = 1 by hand.
    x, wi, wh, bi, bh, h0 = 0.3, np.array([0.1, -0.2, 0.4]), np.array([0.5, 0.6, -0.7]), \
        np.array([0.01, 0.02, 0.03]), np.array([-0.01, 0.05, 0.2]), 0.8
    r = 1 / (1 + np.exp(-(wi[0] * x + bi[0] + wh[0] * h0 + bh[0])))
    z = 1 / (1 + np.exp(-(wi[1] * x + bi[1] + wh[1] * h0 + bh[1])))
    n = np.tanh(wi[2] * x + bi[2] + r * (wh[2] * h0 + bh[2]))
    want = (1 - z) * n + z * h0
    y, h, _ = ref.forward(np.array([[[x]]]), wi[:, None], wh[:, None], bi, bh, np.array([[h0]]))
    assert abs(y[0, 0, 0] - want) < 1e-15 and h[0, 0] == y[0, 0, 0]


# ===================================================================================== 2. kernels vs reference
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dt", DTYPES)
def test_matches_reference(shape, dt, rng):
    B, T, I, H = shape
    args = make(rng, B, T, I, H, dt)
    dy = rng.standard_normal((B, T, H)).astype(dt)
    dh = rng.standard_normal((B, H)).astype(dt)
    check_against_reference(args, dy, dh, dt)


@pytest.mark.parametrize("dt", DTYPES)
def test_long_sequence_large_inputs_stay_finite(dt, rng):
    # T = 1000 with x * 1e3: every gate saturates; nothing overflows, nothing is NaN.
    B, T, I, H = 3, 1000, 2, 11
    args = make(rng, B, T, I, H, dt, xscale=1e3)
    dy = rng.standard_normal((B, T, H)).astype(dt)
    dh = rng.standard_normal((B, H)).astype(dt)
    out, g = check_against_reference(args, dy, dh, dt)
    assert np.all(np.isfinite(out.y)) and np.all(np.abs(out.y) <= 1.0 + 1e-6)
    for a in g:
        assert np.all(np.isfinite(a))


@pytest.mark.parametrize("dt", DTYPES)
def test_long_sequence_ordinary_inputs(dt, rng):
    B, T, I, H = 2, 1000, 3, 20
    args = make(rng, B, T, I, H, dt)
    check_against_reference(args, rng.standard_normal((B, T, H)).astype(dt), None, dt)


@pytest.mark.parametrize("dt", DTYPES)
def test_extreme_weights_and_states_stay_finite(dt, rng):
    B, T, I, H = 2, 5, 3, 9
    x, w_ih, w_hh, b_ih, b_hh, h0 = make(rng, B, T, I, H, dt)
    x[0, 0, 0] = 1e30
    x[1, 2, 1] = -1e30
    w_hh *= 1e4
    out = F.gru_forward(x, w_ih, w_hh, b_ih, b_hh, h0)
    assert np.all(np.isfinite(out.y)) and np.all(np.abs(out.y) <= 1.0)
    g = F.gru_backward(out.cache, np.ones((B, T, H), dt))
    for a in g:
        assert np.all(np.isfinite(a))


def test_sigmoid_tanh_accuracy_across_the_range(rng):
    # One step, H = 1 so that the gates see exactly the chosen pre-activations (w_ih = 1 picks x).
    v = np.concatenate([np.linspace(-100, 100, 2001), np.logspace(-30, 30, 301), -np.logspace(-30, 30, 301),
                        [0.0, -0.0, 0.625, -0.625, 0.6249999, 0.6250001, 88.0, -88.0, 710.0, -710.0]])
    for dt in DTYPES:
        B = v.size
        x = np.zeros((B, 1, 3), dt)
        x[:, 0, 0] = v  # r pre-activation
        x[:, 0, 2] = v  # n pre-activation (h0 = 0: r * hn = r * b_hn = 0)
        w_ih = np.eye(3, dtype=dt)
        z3 = np.zeros(3, dt)
        out = F.gru_forward(x, w_ih, np.zeros((3, 1), dt), z3, z3)
        r = F.gru_cache_gates(out.cache)[:, 0, 0, 0].astype(np.float64)
        n = F.gru_cache_gates(out.cache)[:, 0, 2, 0].astype(np.float64)
        vv = v.astype(dt).astype(np.float64)
        tol = 4 * np.finfo(dt).eps
        np.testing.assert_allclose(r, ref.sigmoid(vv), rtol=tol, atol=np.finfo(dt).tiny * 1e4 if dt == np.float32
                                   else 1e-300)
        np.testing.assert_allclose(n, np.tanh(vv), rtol=tol, atol=0)


# ===================================================================================== 3. fast == naive
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 7, 8, 13), (7, 5, 3, 24), (9, 4, 16, 70), (2, 4, 40, 9),
                                   (20, 3, 2, 90)])
@pytest.mark.parametrize("dt", DTYPES)
def test_fast_equals_naive(shape, dt, rng):
    B, T, I, H = shape
    args = make(rng, B, T, I, H, dt)
    dy = rng.standard_normal((B, T, H)).astype(dt)
    dh = rng.standard_normal((B, H)).astype(dt)
    fast = F.gru_forward(*args)
    slow = F.gru_forward(*args, naive=True)
    tol = TOL[dt]
    assert_close(fast.y, slow.y, tol, "y")
    assert_close(F.gru_cache_gates(fast.cache), F.gru_cache_gates(slow.cache), tol, "gates")
    gf = F.gru_backward(fast.cache, dy, dh)
    gs = F.gru_backward(slow.cache, dy, dh, naive=True)
    for name, a, b in zip(GRAD_NAMES, gf, gs):
        assert_close(a, b, tol, name)
    check_against_reference(args, dy, dh, dt, naive=True)


@pytest.fixture
def generic_isa():
    """Run the portable step kernels (and GEMM) for the duration of a test."""
    _core.gemm_force_isa("generic")
    try:
        yield
    finally:
        _core.gemm_force_isa("auto")


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (5, 4, 6, 17), (13, 3, 2, 64), (2, 4, 40, 9), (20, 3, 2, 90)])
@pytest.mark.parametrize("dt", DTYPES)
def test_portable_kernels_match_reference(shape, dt, rng, generic_isa):
    assert _core.gru_isa() == "generic"
    B, T, I, H = shape
    args = make(rng, B, T, I, H, dt)
    check_against_reference(args, rng.standard_normal((B, T, H)).astype(dt), rng.standard_normal((B, H)).astype(dt),
                            dt)


def test_isa_reported():
    assert _core.gru_isa() in ("avx2", "generic")


# ===================================================================================== 4./5. gradient rules, options
@pytest.mark.parametrize("dt", DTYPES)
def test_backward_twice_doubles_parameter_gradients(dt, rng):
    B, T, I, H = 3, 5, 4, 9
    args = make(rng, B, T, I, H, dt)
    out = F.gru_forward(*args)
    dy = rng.standard_normal((B, T, H)).astype(dt)
    dh = rng.standard_normal((B, H)).astype(dt)
    g1 = F.gru_backward(out.cache, dy, dh)
    acc = {k: np.zeros_like(getattr(g1, k)) for k in ("dw_ih", "dw_hh", "db_ih", "db_hh")}
    ga = F.gru_backward(out.cache, dy, dh, **acc)
    gb = F.gru_backward(out.cache, dy, dh, **acc)
    for k in acc:
        assert getattr(gb, k) is acc[k]
        np.testing.assert_array_equal(acc[k], 2 * getattr(g1, k))  # x + x is exact
    for k in ("dx", "dh0"):
        np.testing.assert_array_equal(getattr(ga, k), getattr(g1, k))
        np.testing.assert_array_equal(getattr(gb, k), getattr(g1, k))


def test_accumulates_into_views_of_a_flat_buffer(rng):
    B, T, I, H = 2, 3, 4, 5
    G = 3 * H
    args = make(rng, B, T, I, H, np.float32)
    out = F.gru_forward(*args)
    dy = rng.standard_normal((B, T, H)).astype(np.float32)
    flat = np.full(G * I + G * H + 2 * G + 3, 0.5, np.float32)
    sizes = [G * I, G * H, G, G]
    offs = np.cumsum([1] + sizes)
    views = [flat[offs[i]:offs[i + 1]] for i in range(4)]
    kw = dict(dw_ih=views[0].reshape(G, I), dw_hh=views[1].reshape(G, H), db_ih=views[2], db_hh=views[3])
    g = F.gru_backward(out.cache, dy, **kw)
    g0 = F.gru_backward(out.cache, dy)
    for k in kw:
        np.testing.assert_allclose(kw[k], 0.5 + getattr(g0, k), rtol=1e-6, atol=1e-6)
        assert getattr(g, k) is kw[k]
    assert flat[0] == 0.5 and np.all(flat[offs[-1]:] == 0.5)  # neighbours untouched


@pytest.mark.parametrize("dt", DTYPES)
def test_h0_none_equals_zeros(dt, rng):
    B, T, I, H = 3, 4, 2, 10
    x, w_ih, w_hh, b_ih, b_hh, _ = make(rng, B, T, I, H, dt)
    a = F.gru_forward(x, w_ih, w_hh, b_ih, b_hh)
    b = F.gru_forward(x, w_ih, w_hh, b_ih, b_hh, np.zeros((B, H), dt))
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.h, b.h)
    dy = rng.standard_normal((B, T, H)).astype(dt)
    ga, gb = F.gru_backward(a.cache, dy), F.gru_backward(b.cache, dy)
    for name, u, v in zip(GRAD_NAMES, ga, gb):
        np.testing.assert_array_equal(u, v, err_msg=name)
    check_against_reference((x, w_ih, w_hh, b_ih, b_hh, None), dy, None, dt)


@pytest.mark.parametrize("dt", DTYPES)
def test_dy_none_and_need_dx_false(dt, rng):
    B, T, I, H = 4, 6, 3, 12
    args = make(rng, B, T, I, H, dt)
    out = F.gru_forward(*args)
    dh = rng.standard_normal((B, H)).astype(dt)
    g_none = F.gru_backward(out.cache, None, dh)
    g_zero = F.gru_backward(out.cache, np.zeros((B, T, H), dt), dh)
    for name, u, v in zip(GRAD_NAMES, g_none, g_zero):
        np.testing.assert_array_equal(u, v, err_msg=name)
    check_against_reference(args, None, dh, dt)
    check_against_reference(args, rng.standard_normal((B, T, H)).astype(dt), dh, dt, need_dx=False)
    g_nodx = F.gru_backward(out.cache, None, dh, need_dx=False)
    assert g_nodx.dx is None
    for name in GRAD_NAMES[1:]:
        np.testing.assert_array_equal(getattr(g_nodx, name), getattr(g_none, name), err_msg=name)
    # No gradient at all: everything zero.
    g0 = F.gru_backward(out.cache, None, None)
    for name, u in zip(GRAD_NAMES, g0):
        assert not np.any(u), name


def test_outputs_and_layout(rng):
    B, T, I, H = 2, 3, 4, 5
    args = make(rng, B, T, I, H, np.float32)
    out = F.gru_forward(*args)
    assert isinstance(out, F.GRUOutput) and isinstance(out.cache, F.GRUCache)
    assert out.y.shape == (B, T, H) and out.h.shape == (B, H) and out.cache.gates.shape == (B, T, 32)
    assert out.y.flags.c_contiguous and out.h.flags.c_contiguous
    np.testing.assert_array_equal(out.h, out.y[:, -1])
    g = F.gru_backward(out.cache, np.ones((B, T, H), np.float32))
    assert isinstance(g, F.GRUGrads) and g._fields == GRAD_NAMES
    for name in ("gru_forward", "gru_backward", "GRUOutput", "GRUGrads", "GRUCache"):
        assert name in F.__all__


def test_non_contiguous_and_list_inputs_are_coerced(rng):
    B, T, I, H = 3, 4, 2, 6
    x, w_ih, w_hh, b_ih, b_hh, h0 = make(rng, B, T, I, H)
    xt = np.asfortranarray(x)
    a = F.gru_forward(xt, w_ih.tolist(), w_hh, b_ih, b_hh, h0[:, ::1])
    b = F.gru_forward(x, w_ih, w_hh, b_ih, b_hh, h0)
    np.testing.assert_array_equal(a.y, b.y)


# ===================================================================================== 6. determinism, threads
# Large enough (> 2 MFLOP per thread) that the recurrence really splits the batch across threads; the
# second shape has the backward's K-chunked step product (H > 85) over several row panels per thread, the
# third computes dx by row tiles (I > 16, H <= 85) in two row chunks; the first and the fourth split the
# dW_hh (and dW_ih) row tiles of dw_rows between threads.
@pytest.mark.parametrize("shape", [(37, 20, 5, 40), (67, 4, 64, 90), (41, 9, 24, 40), (45, 12, 24, 40)])
def test_bitwise_repeatable_and_thread_count_independent(shape, rng, threads):
    B, T, I, H = shape
    args = make(rng, B, T, I, H, np.float32)
    dy = rng.standard_normal((B, T, H)).astype(np.float32)
    dh = rng.standard_normal((B, H)).astype(np.float32)
    results = {}
    for nt in (1, 2, 3):
        threads.set_num_threads(nt)
        runs = []
        for _ in range(2):
            out = F.gru_forward(*args)
            runs.append((out.y,) + tuple(F.gru_backward(out.cache, dy, dh)))
        for u, v in zip(*runs):
            np.testing.assert_array_equal(u, v)  # bitwise repeatable for a fixed thread count
        results[nt] = runs[0]
    for nt in (2, 3):  # the batch split changes nothing: bitwise equal across thread counts
        for u, v in zip(results[1], results[nt]):
            np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("stream", ["1", "0"])
def test_cache_alignment_and_streaming_stores_do_not_change_results(stream, rng, monkeypatch):
    # The float forward writes the cache by non-temporal stores when the array is 64-byte aligned (else,
    # or with ND_GRU_NT=0, by ordinary stores): the same values in every case, and a misaligned cache
    # (a view 4 bytes into a buffer) is accepted.
    monkeypatch.setenv("ND_GRU_NT", stream)
    B, T, I, H = 9, 5, 3, 24
    x, w_ih, w_hh, b_ih, b_hh, h0 = make(rng, B, T, I, H, np.float32)
    CW = _core.gru_cache_width(H)
    outs = []
    for off in (0, 1, 8):  # offsets in floats: aligned, misaligned, 32-byte but not 64-byte aligned
        raw = np.empty(B * T * CW + 32, np.float32)
        base = (-raw.ctypes.data // 4) % 16  # first 64-byte boundary, in floats
        gates = raw[base + off:base + off + B * T * CW].reshape(B, T, CW)
        y = np.empty((B, T, H), np.float32)
        _core.gru_forward(y, gates, x, w_ih, w_hh, b_ih, b_hh, h0, False)
        outs.append((y, gates.copy()))
    for y, g in outs[1:]:
        np.testing.assert_array_equal(y, outs[0][0])
        np.testing.assert_array_equal(g, outs[0][1])
    y_r, _, cache_r = ref.forward(x, w_ih, w_hh, b_ih, b_hh, h0)
    assert_close(outs[0][0], y_r, TOL[np.float32], "y")


@pytest.mark.parametrize("dt", DTYPES)
def test_backward_blocking_does_not_change_results(dt, rng, monkeypatch):
    # The backward's per-step product runs in K chunks over row panels; ND_GRU_SLIVER_BYTES /
    # ND_GRU_PANEL_BYTES (read per call) change that blocking. Every element sees the same FMAs in the same
    # order whatever the blocking: bitwise equal gradients.
    B, T, I, H = 23, 3, 4, 100
    args = make(rng, B, T, I, H, dt)
    dy = rng.standard_normal((B, T, H)).astype(dt)
    dh = rng.standard_normal((B, H)).astype(dt)
    out = F.gru_forward(*args)
    results = []
    for sliver, panel in ((None, None), ("1000000000", "1000000000"), ("4096", "2048"), ("1000000000", "512")):
        for name, v in (("ND_GRU_SLIVER_BYTES", sliver), ("ND_GRU_PANEL_BYTES", panel)):
            if v is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, v)
        results.append(F.gru_backward(out.cache, dy, dh))
    for other in results[1:]:
        for name, u, v in zip(GRAD_NAMES, results[0], other):
            np.testing.assert_array_equal(u, v, err_msg=name)


# ===================================================================================== 7. hypothesis
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(B=st.integers(1, 9), T=st.integers(1, 12), I=st.sampled_from([1, 2, 3, 5, 8, 16, 17, 24]), H=st.integers(1, 40),
       seed=st.integers(0, 2**32 - 1), f32=st.booleans(), with_h0=st.booleans(), with_dy=st.booleans(),
       with_dh=st.booleans(), scale=st.sampled_from([0.1, 1.0, 5.0]))
def test_property_matches_reference(B, T, I, H, seed, f32, with_h0, with_dy, with_dh, scale):
    rng = np.random.default_rng(seed)
    dt = np.float32 if f32 else np.float64
    args = make(rng, B, T, I, H, dt, h0=with_h0, xscale=scale)
    dy = rng.standard_normal((B, T, H)).astype(dt) if with_dy else None
    dh = rng.standard_normal((B, H)).astype(dt) if with_dh else None
    check_against_reference(args, dy, dh, dt)


@settings(max_examples=40, deadline=None)
@given(vals=st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=6, max_size=6))
def test_property_arbitrary_values_stay_finite(vals):
    # Any finite inputs (weights, biases, states, x): finite outputs and gradients.
    B, T, I, H = 2, 3, 2, 3
    rng = np.random.default_rng(0)
    x, w_ih, w_hh, b_ih, b_hh, h0 = (a.astype(np.float64) for a in make(rng, B, T, I, H))
    x *= vals[0]
    w_ih *= vals[1]
    w_hh *= vals[2]
    b_ih += vals[3]
    b_hh += vals[4]
    h0 *= vals[5]
    out = F.gru_forward(x, w_ih, w_hh, b_ih, b_hh, h0)
    assert np.all(np.isfinite(out.y))
    g = F.gru_backward(out.cache, np.ones((B, T, H)), np.ones((B, H)))
    for name, a in zip(GRAD_NAMES, g):
        assert np.all(np.isfinite(a)), name
    y_r, _, _ = ref.forward(x, w_ih, w_hh, b_ih, b_hh, h0)
    assert_close(out.y, y_r, 1e-9, "y", scale=max(1.0, float(np.max(np.abs(h0)))))


# ===================================================================================== 8. bad input
def _good(dt=np.float32):
    rng = np.random.default_rng(1)
    x, w_ih, w_hh, b_ih, b_hh, h0 = make(rng, 2, 3, 4, 5, dt)
    return dict(x=x, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, h0=h0)


def _fwd(**over):
    a = _good()
    a.update(over)
    return F.gru_forward(a["x"], a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"], a["h0"])


def _bwd(**over):
    a = _good()
    out = F.gru_forward(a["x"], a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"], a["h0"])
    kw = dict(dy=np.ones((2, 3, 5), np.float32), dh=None)
    kw.update(over)
    cache = kw.pop("cache", out.cache)
    return F.gru_backward(cache, kw.pop("dy"), kw.pop("dh"), **kw)


F32, F64 = np.float32, np.float64
BAD = [
    ("x float16", lambda: _fwd(x=np.ones((2, 3, 4), np.float16)), TypeError, "x"),
    ("x int", lambda: _fwd(x=np.ones((2, 3, 4), np.int64)), TypeError, "x"),
    ("x complex", lambda: _fwd(x=np.ones((2, 3, 4), np.complex64)), TypeError, "x"),
    ("x 2-D", lambda: _fwd(x=np.ones((2, 4), F32)), ValueError, "x"),
    ("x empty batch", lambda: _fwd(x=np.ones((0, 3, 4), F32), h0=None), ValueError, "batch"),
    ("x no steps", lambda: _fwd(x=np.ones((2, 0, 4), F32)), ValueError, "steps"),
    ("mixed w_ih", lambda: _fwd(w_ih=np.ones((15, 4), F64)), TypeError, "w_ih"),
    ("mixed w_hh", lambda: _fwd(w_hh=np.ones((15, 5), F64)), TypeError, "w_hh"),
    ("mixed b_ih", lambda: _fwd(b_ih=np.ones(15, F64)), TypeError, "b_ih"),
    ("mixed b_hh", lambda: _fwd(b_hh=np.ones(15, F64)), TypeError, "b_hh"),
    ("mixed h0", lambda: _fwd(h0=np.ones((2, 5), F64)), TypeError, "h0"),
    ("int w_hh", lambda: _fwd(w_hh=np.ones((15, 5), np.int32)), TypeError, "w_hh"),
    ("w_ih shape", lambda: _fwd(w_ih=np.ones((15, 3), F32)), ValueError, "w_ih"),
    ("w_ih gates", lambda: _fwd(w_ih=np.ones((20, 4), F32)), ValueError, "w_ih"),
    ("w_hh shape", lambda: _fwd(w_hh=np.ones((20, 5), F32)), ValueError, "w_hh"),
    ("w_hh 1-D", lambda: _fwd(w_hh=np.ones(15, F32)), ValueError, "w_hh"),
    ("w_hh empty", lambda: _fwd(w_hh=np.ones((0, 0), F32)), ValueError, "hidden"),
    ("b_ih shape", lambda: _fwd(b_ih=np.ones(16, F32)), ValueError, "b_ih"),
    ("b_hh shape", lambda: _fwd(b_hh=np.ones((15, 1), F32)), ValueError, "b_hh"),
    ("b_ih None", lambda: _fwd(b_ih=None), TypeError, "b_ih"),
    ("h0 shape", lambda: _fwd(h0=np.ones((3, 5), F32)), ValueError, "h0"),
    ("h0 1-D", lambda: _fwd(h0=np.ones(10, F32)), ValueError, "h0"),
    ("dy shape", lambda: _bwd(dy=np.ones((2, 3, 4), F32)), ValueError, "dy"),
    ("dy 2-D", lambda: _bwd(dy=np.ones((2, 15), F32)), ValueError, "dy"),
    ("dy dtype", lambda: _bwd(dy=np.ones((2, 3, 5), F64)), TypeError, "dy"),
    ("dy int", lambda: _bwd(dy=np.ones((2, 3, 5), np.int64)), TypeError, "dy"),
    ("dh shape", lambda: _bwd(dh=np.ones((2, 4), F32)), ValueError, "dh"),
    ("dh dtype", lambda: _bwd(dh=np.ones((2, 5), F64)), TypeError, "dh"),
    ("cache type", lambda: _bwd(cache=(1, 2, 3)), TypeError, "cache"),
    ("dw_ih shape", lambda: _bwd(dw_ih=np.zeros((15, 5), F32)), ValueError, "dw_ih"),
    ("dw_hh shape", lambda: _bwd(dw_hh=np.zeros((15, 4), F32)), ValueError, "dw_hh"),
    ("db_ih shape", lambda: _bwd(db_ih=np.zeros(14, F32)), ValueError, "db_ih"),
    ("db_hh shape", lambda: _bwd(db_hh=np.zeros((15, 1), F32)), ValueError, "db_hh"),
    ("dw_hh dtype", lambda: _bwd(dw_hh=np.zeros((15, 5), F64)), TypeError, "dw_hh"),
    ("db_hh int", lambda: _bwd(db_hh=np.zeros(15, np.int32)), TypeError, "db_hh"),
    ("dw_ih list", lambda: _bwd(dw_ih=[[0.0] * 4] * 15), TypeError, "dw_ih"),
    ("dw_ih non-contiguous", lambda: _bwd(dw_ih=np.zeros((4, 15), F32).T), ValueError, "dw_ih"),
    ("db_ih read-only", lambda: _bwd(db_ih=np.broadcast_to(np.zeros(1, F32), (15,))), ValueError, "db_ih"),
]


@pytest.mark.parametrize("name,call,exc,word", BAD, ids=[b[0] for b in BAD])
def test_bad_input_raises(name, call, exc, word):
    with pytest.raises(exc) as info:
        call()
    assert word in str(info.value), str(info.value)


def test_read_only_accumulator_rejected():
    ro = np.zeros((15, 5), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="dw_hh"):
        _bwd(dw_hh=ro)


def test_core_rejects_bad_outputs_and_aliasing():
    a = _good()
    B, T, I, H = 2, 3, 4, 5
    x, w_ih, w_hh, b_ih, b_hh, h0 = (a[k] for k in ("x", "w_ih", "w_hh", "b_ih", "b_hh", "h0"))
    y = np.empty((B, T, H), F32)
    CW = _core.gru_cache_width(H)
    assert CW == 32
    gates = np.empty((B, T, CW), F32)
    with pytest.raises(ValueError, match="gates"):
        _core.gru_forward(y, np.empty((B, T, 4 * H), F32), x, w_ih, w_hh, b_ih, b_hh, h0)
    with pytest.raises(ValueError, match="y"):
        _core.gru_forward(np.empty((B, T, H + 1), F32), gates, x, w_ih, w_hh, b_ih, b_hh, h0)
    ro = np.empty((B, T, H), F32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="y"):
        _core.gru_forward(ro, gates, x, w_ih, w_hh, b_ih, b_hh, h0)
    big = np.empty(B * T * CW + B * T * H, F32)
    with pytest.raises(ValueError, match="overlaps"):  # y and gates share memory
        _core.gru_forward(big[:B * T * H].reshape(B, T, H), big[B * T * H - 1:-1].reshape(B, T, CW), x, w_ih,
                          w_hh, b_ih, b_hh, h0)
    with pytest.raises(ValueError, match="overlaps"):  # output over an input
        _core.gru_forward(y, gates, x, w_ih, w_hh, b_ih, b_hh, gates.reshape(-1)[:B * H].reshape(B, H))
    with pytest.raises(TypeError, match="x"):
        _core.gru_forward(y, gates, [1.0], w_ih, w_hh, b_ih, b_hh, h0)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.gru_forward(y, gates, np.asfortranarray(x), w_ih, w_hh, b_ih, b_hh, h0)
    with pytest.raises(TypeError, match="gates"):
        _core.gru_forward(y, np.zeros(gates.shape, F64), x, w_ih, w_hh, b_ih, b_hh, h0)  # not a cast of np.empty's garbage
    out = F.gru_forward(x, w_ih, w_hh, b_ih, b_hh, h0)
    c = out.cache
    G = 3 * H
    grads = dict(dx=np.empty((B, T, I), F32), dh0=np.empty((B, H), F32), dw_ih=np.zeros((G, I), F32),
                 dw_hh=np.zeros((G, H), F32), db_ih=np.zeros(G, F32), db_hh=np.zeros(G, F32))

    def bwd(**over):
        kw = dict(grads)
        kw.update(over)
        _core.gru_backward(kw["dx"], kw["dh0"], kw["dw_ih"], kw["dw_hh"], kw["db_ih"], kw["db_hh"],
                           kw.get("dy"), kw.get("dh"), c.x, c.w_ih, c.w_hh, kw.get("h0", c.h0),
                           kw.get("y", c.y), kw.get("gates", c.gates))

    bwd()  # valid
    with pytest.raises(ValueError, match="gates"):
        bwd(gates=c.gates[:, :, :4 * H].copy())
    with pytest.raises(ValueError, match="y"):
        bwd(y=c.y[:, :2].copy())
    with pytest.raises(ValueError, match="dx"):
        bwd(dx=np.empty((B, T, I + 1), F32))
    with pytest.raises(ValueError, match="dh0"):
        bwd(dh0=np.empty((B, H + 1), F32))
    flat = np.zeros(2 * G, F32)
    with pytest.raises(ValueError, match="overlaps"):  # two parameter gradients in one buffer
        bwd(db_ih=flat[:G], db_hh=flat[G - 1:2 * G - 1])
    with pytest.raises(ValueError, match="overlaps"):  # gradient written over the cache
        bwd(dh0=c.y.reshape(-1)[:B * H].reshape(B, H))
    with pytest.raises(ValueError, match="h0"):
        bwd(h0=np.zeros((B, H + 1), F32))


def test_bad_input_leaves_outputs_untouched():
    out = F.gru_forward(**{k: v for k, v in _good().items()})
    acc = np.full((15, 5), 7.0, np.float32)
    with pytest.raises(ValueError):
        F.gru_backward(out.cache, np.ones((2, 3, 4), np.float32), dw_hh=acc)
    assert np.all(acc == 7.0)


# ===================================================================================== 10. reused output arrays
def _addresses(*arrays):
    return {a.__array_interface__["data"][0] for a in arrays}


@pytest.mark.parametrize("dt", DTYPES)
def test_pooled_arrays_are_reused_only_when_nothing_references_them(dt, rng, pool):
    B, T, I, H = 5, 4, 3, 13  # H % 8 != 0: cache padding
    a1, a2 = make(rng, B, T, I, H, dt), make(rng, B, T, I, H, dt)
    dy = rng.standard_normal((B, T, H)).astype(dt)
    want1, want2 = F.gru_forward(*a1), F.gru_forward(*a2)  # fresh arrays (the pool makes them the first time)
    g1, g2 = F.gru_backward(want1.cache, dy), F.gru_backward(want2.cache, dy)
    want1 = (want1.y.copy(), want1.cache.gates.copy(), g1.dx.copy())
    want2 = (want2.y.copy(), want2.cache.gates.copy(), g2.dx.copy())
    del g1, g2

    held = F.gru_forward(*a1)
    view = held.y[:, 1]  # a view alone keeps the array in use
    gb = F.gru_backward(held.cache, dy)
    seen = _addresses(held.y, gb.dx)  # (the cache itself is free once `held` goes)
    del held
    for _ in range(3):  # while the view and gb live, later calls never write into their arrays
        o = F.gru_forward(*a2)
        g = F.gru_backward(o.cache, dy)
        assert not _addresses(o.y, o.cache.gates, g.dx) & seen
        np.testing.assert_array_equal(view, want1[0][:, 1])
        np.testing.assert_array_equal(gb.dx, want1[2])
        np.testing.assert_array_equal(o.y, want2[0])
        np.testing.assert_array_equal(o.cache.gates, want2[1])
        np.testing.assert_array_equal(g.dx, want2[2])
        del o, g
    del view, gb
    o = F.gru_forward(*a1)
    g = F.gru_backward(o.cache, dy)
    assert _addresses(o.y, o.cache.gates) <= pool_addresses(pool)  # reused, not fresh
    np.testing.assert_array_equal(o.y, want1[0])
    np.testing.assert_array_equal(o.cache.gates, want1[1])
    np.testing.assert_array_equal(g.dx, want1[2])


def pool_addresses(pool):
    out = set()
    for raws in pool.slots.values():
        for raw in raws:
            base = raw.__array_interface__["data"][0]
            out.add(base + (-base % 64))
    return out


@pytest.mark.parametrize("dt", DTYPES)
def test_reused_cache_after_naive_and_fast_calls_matches_reference(dt, rng, pool):
    B, T, I, H = 7, 5, 2, 11  # H % 8 != 0: the naive forward leaves the padding units of the cache alone
    for naive in (False, True, False, True):
        args = make(rng, B, T, I, H, dt, xscale=3.0)
        dy = rng.standard_normal((B, T, H)).astype(dt)
        check_against_reference(args, dy, None, dt, naive=naive)
    assert pool.held > 0


# ===================================================================================== 9. torch (optional)
def test_matches_torch_gru():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    B, T, I, H = 4, 7, 3, 10
    x, w_ih, w_hh, b_ih, b_hh, h0 = make(rng, B, T, I, H, np.float64)
    m = torch.nn.GRU(I, H, batch_first=True).double()
    with torch.no_grad():
        for name, v in (("weight_ih_l0", w_ih), ("weight_hh_l0", w_hh), ("bias_ih_l0", b_ih), ("bias_hh_l0", b_hh)):
            getattr(m, name).copy_(torch.from_numpy(v))
    xt = torch.from_numpy(x).requires_grad_()
    ht = torch.from_numpy(h0).unsqueeze(0).requires_grad_()
    yt, hT = m(xt, ht)
    dy = rng.standard_normal((B, T, H))
    dh = rng.standard_normal((B, H))
    (yt * torch.from_numpy(dy)).sum().add((hT[0] * torch.from_numpy(dh)).sum()).backward()
    out = F.gru_forward(x, w_ih, w_hh, b_ih, b_hh, h0)
    assert_close(out.y, yt.detach().numpy(), 1e-10, "y")
    g = F.gru_backward(out.cache, dy, dh)
    want = (xt.grad, ht.grad[0], m.weight_ih_l0.grad, m.weight_hh_l0.grad, m.bias_ih_l0.grad, m.bias_hh_l0.grad)
    for name, a, b in zip(GRAD_NAMES, g, want):
        assert_close(a, b.numpy(), 1e-10, name)
