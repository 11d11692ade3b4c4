"""LSTM kernels (csrc/lstm.cpp via neurodivergent.nn.functional) against the float64 numpy reference.

1. the reference backward is checked against central finite differences of its forward;
2. the double kernels match the reference to 1e-10, float32 to 1e-5 (|ref - out| <= atol + rtol |ref|),
   on shapes with B=1, T=1, I=1, H not a multiple of 8, with and without h0 / c0, dy / dh / dc;
3. fast == naive; the portable (generic) step kernels == the AVX2 ones;
4. T=1000 and huge inputs stay finite (no overflow / NaN);
5. parameter gradients accumulate (backward twice doubles them), activation gradients overwrite;
6. bitwise repeatable with a fixed thread count, equal across 1 and 2 threads;
7. optional paths: h0/c0 None == zeros, dy=None, need_dx=False, gradient buffers given as views;
8. hypothesis over shapes and values;
9. bad input raises TypeError / ValueError naming the argument;
10. (torch installed only) same numbers as torch.nn.LSTM with copied weights.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neurodivergent.nn.functional as F
from neurodivergent import _core
from tests.reference import lstm as ref

DTYPES = [np.float64, np.float32]
RTOL = {np.float64: 1e-10, np.float32: 1e-5}
# (B, T, I, H): B=1, T=1, I=1, H=1, H not a multiple of 8 (or 4), several tiles and unit blocks.
SHAPES = [(1, 1, 1, 1), (1, 4, 1, 3), (2, 1, 3, 5), (3, 5, 2, 8), (4, 6, 1, 13), (5, 7, 17, 9), (7, 3, 4, 33),
          (9, 4, 20, 20)]


def assert_close(out, ref_, rtol, atol=0.0, what="value"):
    out = np.asarray(out, np.float64)
    ref_ = np.asarray(ref_, np.float64)
    assert out.shape == ref_.shape, f"{what}: shape {out.shape} != {ref_.shape}"
    err = np.abs(out - ref_)
    bound = atol + rtol * np.abs(ref_)
    bad = ~(err <= bound)
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, err - bound, -np.inf)), err.shape)
        raise AssertionError(f"{what}: {int(bad.sum())} of {err.size} out of tolerance; worst at {i}: out={out[i]!r} "
                             f"ref={ref_[i]!r} err={err[i]:.3e} bound={bound[i]:.3e}")


def close_scaled(out, ref_, rtol, what):
    """|out - ref| <= rtol (|ref| + max(1, max|ref|)): relative, with an absolute floor at the array's scale
    (at least 1: inputs are O(1), and an element that is a sum of O(1) terms that cancel, e.g. dh0 at
    H=1, carries the rounding of those terms, not of its own small value)."""
    ref_ = np.asarray(ref_, np.float64)
    scale = float(np.max(np.abs(ref_))) if ref_.size else 0.0
    assert_close(out, ref_, rtol, rtol * max(scale, 1.0), what)


def make(rng, B, T, I, H, dtype=np.float64, scale=0.5, states=True):
    G = 4 * H
    k = 1.0 / np.sqrt(H)
    p = dict(
        x=rng.standard_normal((B, T, I)),
        w_ih=rng.uniform(-k, k, (G, I)) * scale * 2,
        w_hh=rng.uniform(-k, k, (G, H)) * scale * 2,
        b_ih=rng.uniform(-k, k, G),
        b_hh=rng.uniform(-k, k, G),
        h0=rng.standard_normal((B, H)) * 0.5 if states else None,
        c0=rng.standard_normal((B, H)) * 0.5 if states else None,
    )
    return {n: (None if a is None else a.astype(dtype)) for n, a in p.items()}


def assert_close_to_naive(out, g, outn, gn, dtype):
    """The fast kernels' outputs, caches (gates, cell) and gradients against the naive kernel's."""
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    for name in ("y", "h", "c"):
        close_scaled(getattr(out, name), getattr(outn, name), rtol, name)
    close_scaled(out.cache.gates, outn.cache.gates, rtol, "gates")
    close_scaled(out.cache.cell, outn.cache.cell, rtol, "cell")
    for name in g._fields:
        close_scaled(getattr(g, name), getattr(gn, name), rtol * 4, name)


def run(p, dy, dh, dc, naive=False, **kw):
    out = F.lstm_forward(p["x"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], p["h0"], p["c0"], naive=naive)
    g = F.lstm_backward(out.cache, dy, dh, dc, naive=naive, **kw)
    return out, g


def reference(p, dy, dh, dc):
    y, h, c, cache = ref.forward(p["x"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], p["h0"], p["c0"])
    return (y, h, c), ref.backward(cache, dy, dh, dc)


def check_against_reference(p, dy, dh, dc, dtype, naive=False, rtol=None):
    rtol = RTOL[dtype] if rtol is None else rtol
    out, g = run(p, dy, dh, dc, naive=naive)
    (y, h, c), (dx, dh0, dc0, dw_ih, dw_hh, db) = reference(p, dy, dh, dc)
    for name, o, r in (("y", out.y, y), ("h", out.h, h), ("c", out.c, c), ("dx", g.dx, dx), ("dh0", g.dh0, dh0),
                       ("dc0", g.dc0, dc0), ("dw_ih", g.dw_ih, dw_ih), ("dw_hh", g.dw_hh, dw_hh),
                       ("db_ih", g.db_ih, db), ("db_hh", g.db_hh, db)):
        assert o.dtype == dtype, name
        close_scaled(o, r, rtol, name)


# ------------------------------------------------------------------------------ 1. reference vs finite differences
def test_reference_backward_matches_finite_differences(rng):
    B, T, I, H = 2, 3, 2, 3
    p = make(rng, B, T, I, H)
    ry, rh, rc = rng.standard_normal((B, T, H)), rng.standard_normal((B, H)), rng.standard_normal((B, H))

    def loss():
        y, h, c, _ = ref.forward(p["x"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], p["h0"], p["c0"])
        return float((y * ry).sum() + (h * rh).sum() + (c * rc).sum())

    _, _, _, cache = ref.forward(p["x"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], p["h0"], p["c0"])
    dx, dh0, dc0, dw_ih, dw_hh, db = ref.backward(cache, ry, rh, rc)
    for name, g in (("x", dx), ("h0", dh0), ("c0", dc0), ("w_ih", dw_ih), ("w_hh", dw_hh), ("b_ih", db),
                    ("b_hh", db)):
        a = p[name]
        num = np.zeros_like(a)
        for k in range(a.size):
            old = a.flat[k]
            a.flat[k] = old + 1e-6
            fp = loss()
            a.flat[k] = old - 1e-6
            fm = loss()
            a.flat[k] = old
            num.flat[k] = (fp - fm) / 2e-6
        assert_close(g, num, 1e-7, 1e-8, f"d{name}")


# ------------------------------------------------------------------------------ 2. kernels vs reference
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("states", [True, False])
def test_matches_reference(rng, dtype, shape, states):
    B, T, I, H = shape
    p = make(rng, B, T, I, H, dtype, states=states)
    dy = rng.standard_normal((B, T, H)).astype(dtype)
    dh = rng.standard_normal((B, H)).astype(dtype) if states else None
    dc = rng.standard_normal((B, H)).astype(dtype) if states else None
    check_against_reference(p, dy, dh, dc, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_naive_matches_reference(rng, dtype):
    p = make(rng, 3, 4, 2, 6, dtype)
    dy = rng.standard_normal((3, 4, 6)).astype(dtype)
    check_against_reference(p, dy, p["h0"], p["c0"], dtype, naive=True)


# ------------------------------------------------------------------------------ 3. fast == naive, generic == avx2
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (5, 6, 3, 11), (16, 5, 8, 64), (30, 4, 3, 64), (33, 3, 24, 40),
                                   (70, 4, 3, 13), (66, 3, 20, 9)])
def test_fast_matches_naive(rng, dtype, shape):
    B, T, I, H = shape
    p = make(rng, B, T, I, H, dtype)
    dy = rng.standard_normal((B, T, H)).astype(dtype)
    dh = rng.standard_normal((B, H)).astype(dtype)
    out, g = run(p, dy, dh, None)
    outn, gn = run(p, dy, dh, None, naive=True)
    assert_close_to_naive(out, g, outn, gn, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("I", [5, 20])
@pytest.mark.parametrize("states", [True, False])
def test_fast_matches_naive_large_hidden(rng, dtype, I, states):
    # large H: the step kernels' K chunks (partial sums kept between chunks): H = 259 is not a multiple of
    # 8, K = 4H spans five chunks of the backward's sliver, B = 140 makes several row panels; the forward
    # runs the per-step GEMM path (H >= 256; its fused kernel's K chunks: test_forward_knobs), with the
    # small input I = 5 inside its GEMM (K = I + H), or the projection from the input GEMM (I = 20).
    B, T, H = 140, 3, 259
    p = make(rng, B, T, I, H, dtype, states=states)
    dy = rng.standard_normal((B, T, H)).astype(dtype)
    dh = rng.standard_normal((B, H)).astype(dtype) if states else None
    out, g = run(p, dy, dh, None)
    outn, gn = run(p, dy, dh, None, naive=True)
    assert_close_to_naive(out, g, outn, gn, dtype)


# forward knobs read from the environment per call (csrc/lstm.cpp forward_fast): the fused step kernels and
# the per-step GEMM path forced on / off for any shape, both close to the naive kernel (at H = 259 / 272 the
# fused kernel runs its K chunks); other row-panel sizes give the fused kernel's bits (same operations per
# element); the per-step GEMM gives the same bits with w_hh packed once per call or by the GEMM every step;
# the default is one of the paths. ND_LSTM_FWD_STEP_CAT=0 keeps 2..15 input features out of the per-step GEMM
# (I = 3, 5 here: added in its epilogue); with the default the GEMM takes [x_t, h_{t-1}] (K = I + H).
# ND_LSTM_FWD_EPI_ROWS=0: the fused kernel's row-at-a-time epilogue for whole unit blocks too (default: the MR rows
# of a tile at once), also close to naive.
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,states", [((7, 5, 3, 13), True), ((40, 3, 20, 272), False), ((38, 4, 5, 259), True)])
def test_forward_knobs(rng, monkeypatch, dtype, shape, states):
    B, T, I, H = shape
    p = make(rng, B, T, I, H, dtype, states=states)
    args = (p["x"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], p["h0"], p["c0"])
    for k in ("ND_LSTM_FWD_PANEL_BYTES", "ND_LSTM_FWD_STEP_GEMM", "ND_LSTM_FWD_PACKED_B", "ND_LSTM_FWD_STEP_CAT",
              "ND_LSTM_FWD_FUSE_I", "ND_LSTM_FWD_EPI_ROWS"):
        monkeypatch.delenv(k, raising=False)

    def fwd(**env):
        with monkeypatch.context() as m:
            for k, v in env.items():
                m.setenv(k, v)
            o = F.lstm_forward(*args)
        return o.y, o.c, o.cache.gates, o.cache.cell

    fused = fwd(ND_LSTM_FWD_STEP_GEMM="0")
    for panel in ("1", "100000"):
        for a, b in zip(fwd(ND_LSTM_FWD_STEP_GEMM="0", ND_LSTM_FWD_PANEL_BYTES=panel), fused):
            np.testing.assert_array_equal(a, b, err_msg=f"panel {panel}")
    packed = fwd(ND_LSTM_FWD_STEP_GEMM="1", ND_LSTM_FWD_STEP_CAT="0")
    for a, b in zip(fwd(ND_LSTM_FWD_STEP_GEMM="1", ND_LSTM_FWD_PACKED_B="0", ND_LSTM_FWD_STEP_CAT="0"), packed):
        np.testing.assert_array_equal(a, b)
    cat = fwd(ND_LSTM_FWD_STEP_GEMM="1")
    rowwise = fwd(ND_LSTM_FWD_STEP_GEMM="0", ND_LSTM_FWD_EPI_ROWS="0")
    default = fwd()
    assert any(all(np.array_equal(a, b) for a, b in zip(default, path)) for path in (fused, packed, cat))
    outn = F.lstm_forward(*args, naive=True)
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    for path in (fused, packed, cat, rowwise):
        for name, a, b in zip(("y", "c", "gates", "cell"), path, (outn.y, outn.c, outn.cache.gates, outn.cache.cell)):
            close_scaled(a, b, rtol, name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("I", [7, 15, 16])
@pytest.mark.parametrize("states", [True, False])
def test_input_and_weight_gradients_around_the_small_input_threshold(rng, dtype, I, states):
    # I < 16: dx from the row-dot pass and dW_ih from the column pass; I >= 16: dW_ih (and dW_hh) from the
    # unpacked row tiles (I, H <= 64; GEMMs above: test_weight_gradients_by_row_tiles), dx from the step kernel (steps >= 1) and a GEMM (step 0). G = 4H = 20 is not a multiple of the SIMD width; T = 1 without states
    # leaves dW_hh untouched (no previous state).
    for T in (1, 4):
        B, H = 6, 5
        p = make(rng, B, T, I, H, dtype, states=states)
        dy = rng.standard_normal((B, T, H)).astype(dtype)
        check_against_reference(p, dy, None, None, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("I", [16, 37])
def test_dx_from_the_step_kernel(rng, threads, dtype, I):
    # I >= 16: dx_{t+1} = dG_{t+1} @ w_ih is computed in the backward step kernel, in 16-column slivers of
    # w_ih (I = 37: a partial sliver, and a partial vector for float64) for several row panels (B = 30: 6-row
    # tiles and a short tail tile), dx_0 by a GEMM; against the scalar kernel, and the same bits on 1 and 2
    # threads (the batch split does not change any row's arithmetic).
    B, T, H = 30, 5, 24
    p = make(rng, B, T, I, H, dtype)
    dy = rng.standard_normal((B, T, H)).astype(dtype)
    res = []
    for n in (1, 2):
        threads.set_num_threads(n)
        res.append(run(p, dy, None, None)[1])
    _, gn = run(p, dy, None, None, naive=True)
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    for name in gn._fields:
        close_scaled(getattr(res[0], name), getattr(gn, name), rtol, name)
    np.testing.assert_array_equal(res[0].dx, res[1].dx)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("I,H", [(1, 5), (11, 20), (15, 6), (16, 5), (20, 20), (65, 20)])
def test_bias_and_small_input_sums_in_register_passes(rng, monkeypatch, threads, dtype, I, H):
    # db (and dW_ih when I < 16) sum dG over B*T = 299 rows: two row chunks of 256, sub-blocks of 16 rows with
    # a partial one. The register passes hold the bias and up to 11 columns of x (I = 15: a second pass; H = 5 /
    # 6: a partial last vector of gate columns). With I >= 16 and H <= 64 the bias sums come from the dW tiles'
    # packed copies instead (I = 16, 20, 65; G = 20 / 80: partial groups of 24 columns). Against the reference,
    # and the same bits as the row-by-row loop (ND_LSTM_COLSUM_SUB=0), other sub-block sizes and the sums taken
    # apart from the dW pass (ND_LSTM_DW_FOLD_BIAS=0), on 1 and 2 threads.
    B, T = 13, 23
    p = make(rng, B, T, I, H, dtype)
    dy = rng.standard_normal((B, T, H)).astype(dtype)
    keys = ("ND_LSTM_COLSUM_SUB", "ND_LSTM_DW_FOLD_BIAS")
    for k in keys:
        monkeypatch.delenv(k, raising=False)
    check_against_reference(p, dy, None, None, dtype)
    for n in (1, 2):
        threads.set_num_threads(n)
        base = run(p, dy, None, None)[1]
        for k, v in (("ND_LSTM_COLSUM_SUB", "0"), ("ND_LSTM_COLSUM_SUB", "5"), ("ND_LSTM_DW_FOLD_BIAS", "0")):
            monkeypatch.setenv(k, v)
            g = run(p, dy, None, None)[1]
            monkeypatch.delenv(k)
            for name in ("db_ih", "db_hh", "dw_ih"):
                np.testing.assert_array_equal(getattr(g, name), getattr(base, name), err_msg=f"{name} {k}={v} {n}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("I,H,states", [(64, 64, True), (65, 20, False), (20, 65, True), (3, 64, False)])
def test_weight_gradients_by_row_tiles(rng, monkeypatch, threads, dtype, I, H, states):
    # dW_hh at H <= 64 and dW_ih at 16 <= I <= 64 come from unpacked register tiles (6 rows of dW x 2W
    # columns, sub-chunks of 64 rows of dG) instead of nd::gemm; above 64 (I = 65, H = 65) from the GEMMs.
    # B*T = 90 rows: a partial sub-chunk; H = 20 / I = 20: partial column tiles; t = 0 rows pair with h0 or
    # with nothing. Against the reference, the GEMM path (ND_LSTM_DW_ROWS_MAXN=0) close to it, and the same
    # bits on 1 and 2 threads (threads own whole column groups). The tiles read a packed copy of each group of
    # 24 gate columns (G = 256 / 80: a partial group, partial tiles inside it); reading dG in place
    # (ND_LSTM_DW_PACK=0) gives the same bits.
    B, T = 18, 5
    p = make(rng, B, T, I, H, dtype, states=states)
    dy = rng.standard_normal((B, T, H)).astype(dtype)
    monkeypatch.delenv("ND_LSTM_DW_ROWS_MAXN", raising=False)
    monkeypatch.delenv("ND_LSTM_DW_PACK", raising=False)
    check_against_reference(p, dy, None, None, dtype)
    res = []
    for n in (1, 2):
        threads.set_num_threads(n)
        res.append(run(p, dy, None, None)[1])
    for name in ("dw_ih", "dw_hh", "db_ih", "dx", "dh0"):
        np.testing.assert_array_equal(getattr(res[0], name), getattr(res[1], name), err_msg=name)
    monkeypatch.setenv("ND_LSTM_DW_PACK", "0")
    inplace = run(p, dy, None, None)[1]
    for name in ("dw_ih", "dw_hh"):
        np.testing.assert_array_equal(getattr(inplace, name), getattr(res[1], name), err_msg=name)
    monkeypatch.delenv("ND_LSTM_DW_PACK")
    monkeypatch.setenv("ND_LSTM_DW_ROWS_MAXN", "0")
    gg = run(p, dy, None, None)[1]
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    for name in ("dw_ih", "dw_hh"):
        close_scaled(getattr(res[0], name), getattr(gg, name), rtol * 4, name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_generic_step_kernels_match(rng, dtype):
    if _core.lstm_isa() == "generic":
        pytest.skip("the generic kernels are already the default here")
    p = make(rng, 6, 5, 3, 21, dtype)
    dy = rng.standard_normal((6, 5, 21)).astype(dtype)
    out, g = run(p, dy, None, None)
    try:
        _core.gemm_force_isa("generic")
        assert _core.lstm_isa() == "generic"
        outg, gg = run(p, dy, None, None)
    finally:
        _core.gemm_force_isa("auto")
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    close_scaled(outg.y, out.y, rtol, "y")
    for name in g._fields:
        close_scaled(getattr(gg, name), getattr(g, name), rtol * 4, name)


# ------------------------------------------------------------------------------ 4. long sequences, huge inputs
@pytest.mark.parametrize("dtype", DTYPES)
def test_long_sequence_large_inputs(rng, dtype):
    B, T, I, H = 2, 1000, 3, 9
    p = make(rng, B, T, I, H, dtype)
    p["x"] = (p["x"] * 1e3).astype(dtype)
    dy = rng.standard_normal((B, T, H)).astype(dtype)
    out, g = run(p, dy, None, None)
    for a in (out.y, out.h, out.c, *g):
        assert np.all(np.isfinite(a))
    (y, h, c), (dx, dh0, dc0, dw_ih, dw_hh, db) = reference(p, dy, None, None)
    rtol = 1e-9 if dtype == np.float64 else 1e-4  # saturated gates; float sums over 2000 rows
    close_scaled(out.y, y, rtol, "y")
    close_scaled(g.dw_hh, dw_hh, rtol, "dw_hh")
    close_scaled(g.db_ih, db, rtol, "db")
    close_scaled(g.dx, dx, rtol, "dx")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("big", [1e30, -1e30, 1e6, np.finfo(np.float32).max])
def test_extreme_inputs_stay_finite(rng, dtype, big):
    p = make(rng, 3, 4, 2, 10, dtype)
    p["x"][:] = dtype(big)
    p["x"][1, 2, 0] = -dtype(big)
    out, g = run(p, np.ones((3, 4, 10), dtype), np.ones((3, 10), dtype), np.ones((3, 10), dtype))
    for a in (out.y, out.h, out.c, out.cache.gates, out.cache.cell, *g):
        assert np.all(np.isfinite(a))
    assert np.all(np.abs(out.y) <= 1.0)


def test_nan_propagates(rng):
    p = make(rng, 2, 3, 2, 5, np.float32)
    p["x"][0, 1, 0] = np.nan
    out = F.lstm_forward(p["x"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"])
    assert np.isnan(out.y[0, 1:]).all() and np.isfinite(out.y[1]).all() and np.isfinite(out.y[0, 0]).all()


# ------------------------------------------------------------------------------ 5. accumulate / overwrite
@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_twice_doubles_parameter_gradients(rng, dtype):
    p = make(rng, 4, 5, 3, 12, dtype)
    dy = rng.standard_normal((4, 5, 12)).astype(dtype)
    out = F.lstm_forward(p["x"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], p["h0"], p["c0"])
    g1 = F.lstm_backward(out.cache, dy)
    acc = [a.copy() for a in (g1.dw_ih, g1.dw_hh, g1.db_ih, g1.db_hh)]
    g2 = F.lstm_backward(out.cache, dy, dw_ih=g1.dw_ih, dw_hh=g1.dw_hh, db_ih=g1.db_ih, db_hh=g1.db_hh)
    for a, once, name in zip((g2.dw_ih, g2.dw_hh, g2.db_ih, g2.db_hh), acc, ("dw_ih", "dw_hh", "db_ih", "db_hh")):
        # within rounding: dw_hh gets its h0 terms and its other terms in two accumulations per call
        close_scaled(a, 2 * once, 1e-13 if dtype == np.float64 else 1e-6, name)
    for name in ("dx", "dh0", "dc0"):
        np.testing.assert_array_equal(getattr(g2, name), getattr(g1, name))


# ------------------------------------------------------------------------------ 6. threads
@pytest.mark.parametrize("dtype", DTYPES)
def test_threads_repeatable_and_consistent(rng, threads, dtype):
    B, T, I, H = 37, 40, 20, 35  # above the 2 MFLOP-per-thread threshold: 2 threads really split the batch
    p = make(rng, B, T, I, H, dtype)
    dy = rng.standard_normal((B, T, H)).astype(dtype)
    res = {}
    for n in (1, 2):
        threads.set_num_threads(n)
        a = run(p, dy, p["h0"], p["c0"])
        b = run(p, dy, p["h0"], p["c0"])
        for x, y in zip((a[0].y, a[0].c, *a[1]), (b[0].y, b[0].c, *b[1])):
            np.testing.assert_array_equal(x, y)  # bitwise repeatable
        res[n] = a
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    (o1, g1), (o2, g2) = res[1], res[2]
    close_scaled(o2.y, o1.y, rtol, "y")
    for name in g1._fields:
        close_scaled(getattr(g2, name), getattr(g1, name), rtol, name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(130, 3, 6, 128), (130, 3, 40, 48)])
def test_threads_forward_input_paths(rng, threads, dtype, shape):
    # B >= 128 (rules chosen on the whole batch): H = 128 with 2..15 input features runs the per-step GEMM forward
    # over [x_t, h_{t-1}] (K = I + H); H <= 64 with I = 40 fuses the input into the step kernel (no input GEMM).
    # 1 and 2 threads give the same bits, both close to the naive kernel
    B, T, I, H = shape
    p = make(rng, B, T, I, H, dtype, states=True)
    args = (p["x"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], p["h0"], p["c0"])
    outs = []
    for n in (1, 2):
        threads.set_num_threads(n)
        o = F.lstm_forward(*args)
        outs.append((o.y.copy(), o.c.copy(), o.cache.gates.copy(), o.cache.cell.copy()))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
    outn = F.lstm_forward(*args, naive=True)
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    for name, a, b in zip(("y", "c", "gates", "cell"), outs[0], (outn.y, outn.c, outn.cache.gates, outn.cache.cell)):
        close_scaled(a, b, rtol, name)


# ------------------------------------------------------------------------------ 7. optional arguments
@pytest.mark.parametrize("dtype", DTYPES)
def test_threads_large_hidden_bitwise(rng, threads, dtype):
    # large H (K chunks in the backward step kernel) with B >= 128 and I >= 16 (the per-step GEMM forward,
    # chosen on the whole batch): every element's arithmetic is the same whatever the batch split, so 1 and
    # 2 threads give the same bits for the forward and for the backward's dh0 / dc0 / dx
    B, T, I, H = 130, 4, 20, 264
    p = make(rng, B, T, I, H, dtype)
    dy = rng.standard_normal((B, T, H)).astype(dtype)
    res = []
    for n in (1, 2):
        threads.set_num_threads(n)
        res.append(run(p, dy, None, None))
    (o1, g1), (o2, g2) = res
    for name in ("y", "c"):
        np.testing.assert_array_equal(getattr(o1, name), getattr(o2, name))
    np.testing.assert_array_equal(o1.cache.gates, o2.cache.gates)
    for name in ("dh0", "dc0", "dx"):
        np.testing.assert_array_equal(getattr(g1, name), getattr(g2, name))


@pytest.mark.parametrize("dtype", DTYPES)
def test_absent_states_equal_zeros(rng, dtype):
    B, T, I, H = 3, 4, 2, 7
    p = make(rng, B, T, I, H, dtype, states=False)
    dy = rng.standard_normal((B, T, H)).astype(dtype)
    out, g = run(p, dy, None, None)
    z = dict(p, h0=np.zeros((B, H), dtype), c0=np.zeros((B, H), dtype))
    outz, gz = run(z, dy, np.zeros((B, H), dtype), np.zeros((B, H), dtype))
    np.testing.assert_array_equal(out.y, outz.y)
    np.testing.assert_array_equal(out.c, outz.c)
    for name in g._fields:
        np.testing.assert_array_equal(getattr(g, name), getattr(gz, name))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dy_none_and_need_dx_false(rng, dtype):
    B, T, I, H = 3, 5, 4, 6
    p = make(rng, B, T, I, H, dtype)
    dh = rng.standard_normal((B, H)).astype(dtype)
    out, g = run(p, None, dh, None)
    _, gz = run(p, np.zeros((B, T, H), dtype), dh, None)
    for name in g._fields:
        np.testing.assert_array_equal(getattr(g, name), getattr(gz, name))
    _, (dx, *_rest) = reference(p, None, dh, None)
    close_scaled(g.dx, dx, RTOL[dtype], "dx")
    g2 = F.lstm_backward(out.cache, None, dh, need_dx=False)
    assert g2.dx is None
    for name in g._fields[1:]:
        np.testing.assert_array_equal(getattr(g2, name), getattr(g, name))


def test_gradient_buffers_are_views_accumulated_in_place(rng):
    B, T, I, H = 2, 3, 4, 5
    G = 4 * H
    p = make(rng, B, T, I, H, np.float32)
    flat = np.full(G * I + G * H + 2 * G, 0.25, np.float32)
    views, o = [], 0
    for shape in ((G, I), (G, H), (G,), (G,)):
        n = int(np.prod(shape))
        views.append(flat[o:o + n].reshape(shape))
        o += n
    dy = rng.standard_normal((B, T, H)).astype(np.float32)
    out = F.lstm_forward(p["x"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], p["h0"], p["c0"])
    g = F.lstm_backward(out.cache, dy, dw_ih=views[0], dw_hh=views[1], db_ih=views[2], db_hh=views[3])
    fresh = F.lstm_backward(out.cache, dy)
    for v, r, name in zip(views, (g.dw_ih, g.dw_hh, g.db_ih, g.db_hh), ("dw_ih", "dw_hh", "db_ih", "db_hh")):
        assert r is v
        close_scaled(v, np.float32(0.25) + getattr(fresh, name), 1e-6, name)


def test_outputs_do_not_alias_cache(rng):
    p = make(rng, 2, 3, 2, 4, np.float64)
    out = F.lstm_forward(p["x"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"])
    np.testing.assert_array_equal(out.h, out.y[:, -1])
    np.testing.assert_array_equal(out.c, out.cache.cell[:, -1])
    assert not np.shares_memory(out.h, out.y) and not np.shares_memory(out.c, out.cache.cell)



@pytest.mark.parametrize("dtype", DTYPES)
def test_outputs_under_the_pool_minimum_are_reused_when_free(rng, monkeypatch, dtype):
    # y and cell of 128 KiB .. 1 MiB come from the pool (as the front of a pool-minimum buffer), not fresh each call
    from neurodivergent.nn import _buffers
    from neurodivergent.nn import functional_lstm as fl

    pool = _buffers.BufferPool(min_bytes=1 << 20, max_bytes=1 << 30)
    monkeypatch.setattr(fl, "_POOL", pool)
    B, T, I, H = 4, 3, 2, 8
    n = (pool.small_bytes // np.dtype(dtype).itemsize + B * H - 1) // (B * H)  # steps: y just over the threshold
    p1, p2 = make(rng, B, n, I, H, dtype), make(rng, B, n, I, H, dtype)
    args = lambda p: (p["x"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"])  # noqa: E731
    fresh = [F.lstm_forward(*args(p)) for p in (p1, p2)]
    want = [(o.y.copy(), o.cache.gates.copy(), o.cache.cell.copy()) for o in fresh]
    del fresh
    held = F.lstm_forward(*args(p1))
    assert pool.small_bytes <= held.y.nbytes and held.cache.gates.nbytes < pool.min_bytes and pool.held > 0
    addr = {a.__array_interface__["data"][0] for a in (held.y, held.cache.cell)}
    o = F.lstm_forward(*args(p2))  # held is alive: its arrays are not written
    assert not addr & {a.__array_interface__["data"][0] for a in (o.y, o.cache.cell)}
    for got, w in zip((held.y, held.cache.gates, held.cache.cell), want[0]):
        np.testing.assert_array_equal(got, w)
    for got, w in zip((o.y, o.cache.gates, o.cache.cell), want[1]):
        np.testing.assert_array_equal(got, w)
    del held, o
    held_bytes = pool.held
    o = F.lstm_forward(*args(p1))  # free again: pooled memory (nothing new taken), the same results
    starts = {r.__array_interface__["data"][0] + off for raws, offs in zip(pool.slots.values(), pool.offs.values())
              for r, off in zip(raws, offs)}
    assert {a.__array_interface__["data"][0] for a in (o.y, o.cache.cell)} <= starts and pool.held == held_bytes
    for got, w in zip((o.y, o.cache.gates, o.cache.cell), want[0]):
        np.testing.assert_array_equal(got, w)


# ------------------------------------------------------------------------------ 8. hypothesis
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(B=st.integers(1, 6), T=st.integers(1, 6), I=st.integers(1, 20), H=st.integers(1, 20),
       dtype=st.sampled_from(DTYPES), scale=st.sampled_from([0.1, 1.0, 3.0]), states=st.booleans(),
       with_dy=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_hypothesis_matches_reference(B, T, I, H, dtype, scale, states, with_dy, seed):
    rng = np.random.default_rng(seed)
    p = make(rng, B, T, I, H, dtype, scale=scale, states=states)
    p["x"] = (p["x"] * scale).astype(dtype)
    dy = rng.standard_normal((B, T, H)).astype(dtype) if with_dy else None
    dh = rng.standard_normal((B, H)).astype(dtype)
    dc = rng.standard_normal((B, H)).astype(dtype) if states else None
    # float: errors grow with the recurrence when gates are far from saturation at large weights
    check_against_reference(p, dy, dh, dc, dtype, rtol=RTOL[dtype] * (10 if dtype == np.float32 else 1))


# ------------------------------------------------------------------------------ 9. bad input
def _good(rng, dtype=np.float32):
    return make(rng, 2, 3, 4, 5, dtype)


def _fwd(p):
    return F.lstm_forward(p["x"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], p["h0"], p["c0"])


@pytest.mark.parametrize("name,bad", [
    ("x", lambda a: a.astype(np.int64)), ("w_ih", lambda a: a.astype(np.float16)),
    ("w_hh", lambda a: a.astype(np.complex64)), ("b_ih", lambda a: a.astype(bool)),
    ("b_hh", lambda a: a.astype(np.int32)), ("h0", lambda a: a.astype(np.int8)), ("c0", lambda a: a.astype(np.float64)),
    ("w_ih", lambda a: a.astype(np.float64)),
])
def test_forward_bad_dtype(rng, name, bad):
    p = _good(rng)
    p[name] = bad(p[name])
    with pytest.raises(TypeError, match=name):
        _fwd(p)


@pytest.mark.parametrize("name,shape", [
    ("x", (2, 3)), ("x", (2, 3, 4, 1)), ("x", (0, 3, 4)), ("x", (2, 0, 4)), ("x", (2, 3, 5)),
    ("w_ih", (20, 5)), ("w_ih", (19, 4)), ("w_ih", (20,)), ("w_hh", (20, 4)), ("w_hh", (5, 5)), ("w_hh", (0, 0)),
    ("b_ih", (19,)), ("b_ih", (20, 1)), ("b_hh", (21,)), ("h0", (2, 4)), ("h0", (3, 5)), ("h0", (5,)),
    ("c0", (1, 5)), ("c0", (2, 6)),
])
def test_forward_bad_shape(rng, name, shape):
    p = _good(rng)
    p[name] = np.zeros(shape, np.float32)
    with pytest.raises(ValueError, match=name):
        _fwd(p)


def test_forward_noncontiguous_is_copied(rng):
    p = _good(rng, np.float64)
    ref_out = _fwd(p)
    q = dict(p, x=np.asfortranarray(p["x"]), w_hh=p["w_hh"].T.copy().T)
    np.testing.assert_array_equal(_fwd(q).y, ref_out.y)


def test_forward_not_arrays(rng):
    p = _good(rng)
    for name in ("x", "w_ih"):
        q = dict(p)
        q[name] = None
        with pytest.raises(TypeError, match=name):
            _fwd(q)
    q = dict(p, b_ih="abc")
    with pytest.raises(TypeError, match="b_ih"):
        _fwd(q)


@pytest.mark.parametrize("name,val", [
    ("dy", lambda B, T, H: np.zeros((B, T, H + 1), np.float32)), ("dy", lambda B, T, H: np.zeros((B, H), np.float32)),
    ("dh", lambda B, T, H: np.zeros((B, H + 1), np.float32)), ("dc", lambda B, T, H: np.zeros((B + 1, H), np.float32)),
    ("dw_ih", lambda B, T, H: np.zeros((4 * H, 3), np.float32)),
    ("dw_hh", lambda B, T, H: np.zeros((4 * H, H + 1), np.float32)),
    ("db_ih", lambda B, T, H: np.zeros((4 * H + 1,), np.float32)),
    ("db_hh", lambda B, T, H: np.zeros((4 * H, 1), np.float32)),
    ("dw_hh", lambda B, T, H: np.zeros((H, 4 * H), np.float32).T),
    ("db_ih", lambda B, T, H: np.zeros(4 * H, np.float32).view()),
])
def test_backward_bad_shape_or_layout(rng, name, val):
    p = _good(rng)
    out = _fwd(p)
    B, T, _ = p["x"].shape
    H = p["w_hh"].shape[1]
    kw = dict(dy=np.zeros((B, T, H), np.float32))
    a = val(B, T, H)
    if name == "db_ih" and a.ndim == 1 and a.shape == (4 * H,):
        a.flags.writeable = False  # read-only output
    kw[name] = a
    dy = kw.pop("dy")
    with pytest.raises(ValueError, match=name):
        F.lstm_backward(out.cache, dy, **kw)


@pytest.mark.parametrize("name", ["dy", "dh", "dc", "dw_ih", "dw_hh", "db_ih", "db_hh"])
@pytest.mark.parametrize("dt", [np.float64, np.int32])
def test_backward_bad_dtype(rng, name, dt):
    p = _good(rng)
    out = _fwd(p)
    B, T, _ = p["x"].shape
    H = p["w_hh"].shape[1]
    shapes = dict(dy=(B, T, H), dh=(B, H), dc=(B, H), dw_ih=(4 * H, 4), dw_hh=(4 * H, H), db_ih=(4 * H,),
                  db_hh=(4 * H,))
    kw = {name: np.zeros(shapes[name], dt)}
    dy = kw.pop("dy", None)
    with pytest.raises(TypeError, match=name):
        F.lstm_backward(out.cache, dy, **kw)


def test_backward_bad_cache_and_grad_types(rng):
    p = _good(rng)
    out = _fwd(p)
    with pytest.raises(TypeError, match="cache"):
        F.lstm_backward(tuple(out.cache), None)
    with pytest.raises(TypeError, match="dw_hh"):
        F.lstm_backward(out.cache, None, dw_hh=[[0.0] * 5] * 20)


def test_core_rejects_bad_outputs_and_overlap(rng):
    """The binding itself (what a caller bypassing the Python layer hits): outputs checked too."""
    p = _good(rng)
    B, T, I = p["x"].shape
    H = p["w_hh"].shape[1]
    args = [p[n] for n in ("x", "w_ih", "w_hh", "b_ih", "b_hh", "h0", "c0")]
    y, gates, cell = np.empty((B, T, H), np.float32), np.empty((B, T, 4 * H), np.float32), np.empty((B, T, H),
                                                                                                     np.float32)
    ro = np.empty((B, T, H), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="y"):
        _core.lstm_forward(ro, gates, cell, *args)
    with pytest.raises(ValueError, match="cell"):
        _core.lstm_forward(y, gates, np.empty((B, T, H + 1), np.float32), *args)
    with pytest.raises(ValueError, match="gates"):
        _core.lstm_forward(y, gates[:, :, ::2], cell, *args)
    with pytest.raises(ValueError, match="cell"):
        _core.lstm_forward(y, gates, y, *args)  # two outputs overlap
    big = np.empty((B, T, 4 * H + I), np.float32)
    with pytest.raises(ValueError, match="overlaps"):
        x_in_gates = gates.reshape(-1)[: B * T * I].reshape(B, T, I)
        _core.lstm_forward(y, gates, cell, x_in_gates, *args[1:])
    del big
    with pytest.raises(TypeError, match="h0"):
        _core.lstm_forward(y, gates, cell, *args[:5], [[0.0] * H] * B, None)
    with pytest.raises(TypeError, match="gates"):
        _core.lstm_forward(y, gates.astype(np.float64), cell, *args)
    out = _fwd(p)
    c = out.cache
    good = dict(dx=np.empty((B, T, I), np.float32), dh0=np.empty((B, H), np.float32), dc0=np.empty((B, H), np.float32),
                dw_ih=np.zeros((4 * H, I), np.float32), dw_hh=np.zeros((4 * H, H), np.float32),
                db_ih=np.zeros(4 * H, np.float32), db_hh=np.zeros(4 * H, np.float32), dy=None, dh=None, dc=None,
                x=c.x, w_ih=c.w_ih, w_hh=c.w_hh, h0=c.h0, c0=c.c0, y=c.y, gates=c.gates, cell=c.cell)
    _core.lstm_backward(**good)
    with pytest.raises(ValueError, match="db_hh"):
        _core.lstm_backward(**dict(good, db_hh=good["db_ih"]))  # two outputs share memory
    with pytest.raises(ValueError, match="dx"):
        _core.lstm_backward(**dict(good, dx=c.x))  # output overlaps an input
    with pytest.raises(ValueError, match="gates"):
        _core.lstm_backward(**dict(good, gates=c.gates[:, :2]))
    with pytest.raises(ValueError, match="dh0"):
        ro = np.empty((B, H), np.float32)
        ro.flags.writeable = False
        _core.lstm_backward(**dict(good, dh0=ro))


# ------------------------------------------------------------------------------ 10. torch (optional)
def test_matches_torch_lstm(rng):
    torch = pytest.importorskip("torch")
    B, T, I, H = 3, 7, 5, 12
    m = torch.nn.LSTM(I, H, batch_first=True).double()
    w = [getattr(m, n).detach().numpy().copy() for n in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")]
    x, h0, c0 = rng.standard_normal((B, T, I)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    dy, dh, dc = rng.standard_normal((B, T, H)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    xt = torch.tensor(x, requires_grad=True)
    h0t, c0t = torch.tensor(h0[None], requires_grad=True), torch.tensor(c0[None], requires_grad=True)
    yt, (hn, cn) = m(xt, (h0t, c0t))
    ((yt * torch.tensor(dy)).sum() + (hn[0] * torch.tensor(dh)).sum() + (cn[0] * torch.tensor(dc)).sum()).backward()
    out = F.lstm_forward(x, *w, h0, c0)
    g = F.lstm_backward(out.cache, dy, dh, dc)
    for o, r in ((out.y, yt), (out.h, hn[0]), (out.c, cn[0]), (g.dx, xt.grad), (g.dh0, h0t.grad[0]),
                 (g.dc0, c0t.grad[0]), (g.dw_ih, m.weight_ih_l0.grad), (g.dw_hh, m.weight_hh_l0.grad),
                 (g.db_ih, m.bias_ih_l0.grad), (g.db_hh, m.bias_hh_l0.grad)):
        close_scaled(o, r.detach().numpy(), 1e-10, "torch")
