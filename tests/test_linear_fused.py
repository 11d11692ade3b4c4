"""The Transformer's fused linear kernels (csrc/linear.cpp): the residual added in the linear forward's own
pass, the gated backward (dx = (dy W) * gate, written over the gate) and the GELU value + derivative pass.
Each equals the float64 reference, and bitwise the unfused kernels it replaces (linear_forward then
``r + y``; linear_backward's dx times the gate; ff_gelu_forward / ff_gelu_backward), on the AVX2 path and
on the portable one, with shapes that leave partial 6-row / 16-column tiles and K split in two GEMM blocks."""
import numpy as np
import pytest

from neurodivergent import _core

SHAPES = [(1, 1, 1), (7, 5, 3), (13, 64, 17), (50, 64, 192), (37, 300, 40), (20, 512, 33), (6, 16, 16)]


def _bits(a):
    return a.view(np.int64 if a.dtype == np.float64 else np.int32)


@pytest.fixture(params=["auto", "generic"])
def isa(request):
    _core.gemm_force_isa(request.param)
    yield request.param
    _core.gemm_force_isa("auto")


def _data(rng, N, I, O, dtype):
    return (rng.normal(size=(N, I)).astype(dtype), (rng.normal(size=(O, I)) / np.sqrt(I)).astype(dtype),
            rng.normal(size=O).astype(dtype), rng.normal(size=(N, O)).astype(dtype))


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("N, I, O", SHAPES)
def test_linear_residual_forward(isa, dtype, rtol, N, I, O):
    rng = np.random.default_rng(N * 1000 + I)
    x, w, b, r = _data(rng, N, I, O, dtype)
    ref = x.astype(np.float64) @ w.astype(np.float64).T + b + r
    for bias, res in ((b, r), (None, r), (b, None), (None, None)):
        y = np.empty((N, O), dtype)
        _core.linear_residual_forward(y, x, w, bias, res)
        want = x.astype(np.float64) @ w.astype(np.float64).T + (0 if bias is None else b) + (0 if res is None else r)
        np.testing.assert_allclose(y, want, rtol=rtol, atol=rtol * np.abs(ref).max())
        # bitwise the unfused sequence: linear_forward, then residual + y
        y0 = np.empty((N, O), dtype)
        _core.linear_forward(y0, x, w, bias)
        if res is not None:
            y0 = res + y0
        np.testing.assert_array_equal(_bits(y), _bits(y0))


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("N, I, O", SHAPES)
def test_linear_gated_backward(isa, dtype, rtol, N, I, O):
    rng = np.random.default_rng(N * 7 + O)
    x, w, b, dy = _data(rng, N, I, O, dtype)
    gate = rng.normal(size=(N, I)).astype(dtype)
    dw0, db0 = rng.normal(size=(O, I)).astype(dtype), rng.normal(size=O).astype(dtype)
    dx, dw, db = gate.copy(), dw0.copy(), db0.copy()
    _core.linear_gated_backward(dx, dw, db, dy, x, w)
    d64 = dy.astype(np.float64)
    np.testing.assert_allclose(dx, (d64 @ w) * gate, rtol=rtol, atol=rtol * np.abs((d64 @ w) * gate).max())
    np.testing.assert_allclose(dw, dw0 + d64.T @ x, rtol=rtol, atol=rtol * np.abs(d64.T @ x).max())
    np.testing.assert_allclose(db, db0 + d64.sum(0), rtol=rtol, atol=rtol * (1 + np.abs(d64.sum(0)).max()))
    # bitwise linear_backward (dw, db accumulated the same way; dx then times the gate)
    ex, ew, eb = np.empty_like(x), dw0.copy(), db0.copy()
    _core.linear_backward(ex, ew, eb, dy, x, w)
    np.testing.assert_array_equal(_bits(dx), _bits(ex * gate))
    np.testing.assert_array_equal(_bits(dw), _bits(ew))
    np.testing.assert_array_equal(_bits(db), _bits(eb))
    # no bias gradient
    dx2, dw2 = gate.copy(), dw0.copy()
    _core.linear_gated_backward(dx2, dw2, None, dy, x, w)
    np.testing.assert_array_equal(_bits(dx2), _bits(dx))
    np.testing.assert_array_equal(_bits(dw2), _bits(dw))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gelu_forward_grad_matches_the_two_kernels(isa, dtype):
    from neurodivergent.nn import functional as F

    rng = np.random.default_rng(11)
    x = np.concatenate([rng.normal(scale=3.0, size=1003), [0.0, -0.0, 9.0, -9.0, 30.0, -30.0, np.inf, -np.inf]])
    x = x.astype(dtype)
    dy = rng.normal(size=x.shape).astype(dtype)
    y, d = np.empty_like(x), np.empty_like(x)
    _core.ff_gelu_forward_grad(y, d, x)
    np.testing.assert_array_equal(_bits(y), _bits(F.ff_gelu_forward(x)))
    np.testing.assert_array_equal(_bits(dy * d), _bits(F.ff_gelu_backward(dy, x)))


def test_bad_input():
    f32 = lambda *s: np.zeros(s, np.float32)  # noqa: E731
    x, w, b, r = f32(4, 3), f32(5, 3), f32(5), f32(4, 5)
    with pytest.raises(ValueError, match="residual must have shape"):
        _core.linear_residual_forward(f32(4, 5), x, w, b, f32(4, 4))
    with pytest.raises(ValueError, match="y must have shape"):
        _core.linear_residual_forward(f32(4, 4), x, w, b, r)
    with pytest.raises(TypeError, match="residual has dtype"):
        _core.linear_residual_forward(f32(4, 5), x, w, b, r.astype(np.float64))
    with pytest.raises(ValueError, match="overlap"):
        _core.linear_residual_forward(r, x, w, b, r)
    with pytest.raises(ValueError, match="dx must have shape"):
        _core.linear_gated_backward(f32(4, 4), f32(5, 3), None, r, x, w)
    with pytest.raises(ValueError, match="dw must have shape"):
        _core.linear_gated_backward(f32(4, 3), f32(3, 5), None, r, x, w)
    with pytest.raises(ValueError, match="overlap"):
        g = f32(4, 3)
        _core.linear_gated_backward(g, f32(5, 3), None, r, g, w)
    with pytest.raises(ValueError, match="d must have the same shape as x"):
        _core.ff_gelu_forward_grad(f32(3), f32(4), f32(3))
    with pytest.raises(ValueError, match="overlap"):
        y = f32(3)
        _core.ff_gelu_forward_grad(y, y, f32(3))


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("N, I, O", [(1, 1, 1), (13, 64, 17), (300, 40, 24), (37, 300, 40), (531, 16, 8)])
def test_linear_gelu_forward_backward(isa, dtype, rtol, N, I, O):
    """y = GELU(z) w^T + b + r and its backward, GELU(z) never stored: equal to the float64 reference and
    bitwise the separate kernels (ff_gelu_forward_grad, linear_residual_forward, linear_gated_backward).
    N = 531 spans three GEMM K blocks of the backward (balanced blocks of 184 rows)."""
    from tests.reference import activations as ref

    rng = np.random.default_rng(N + I + O)
    z, w, b, r = _data(rng, N, I, O, dtype)
    z *= 2.0
    dy = rng.normal(size=(N, O)).astype(dtype)
    g64 = ref.gelu(z.astype(np.float64))
    for res in (r, None):
        y = np.empty((N, O), dtype)
        _core.linear_gelu_forward(y, z, w, b, res)
        want = g64 @ w.astype(np.float64).T + b + (0 if res is None else r)
        np.testing.assert_allclose(y, want, rtol=rtol, atol=rtol * np.abs(want).max())
        g, d = np.empty_like(z), np.empty_like(z)
        _core.ff_gelu_forward_grad(g, d, z)
        y0 = np.empty((N, O), dtype)
        _core.linear_residual_forward(y0, g, w, b, res)
        np.testing.assert_array_equal(_bits(y), _bits(y0))
    dw0, db0 = rng.normal(size=(O, I)).astype(dtype), rng.normal(size=O).astype(dtype)
    dz, dw, db = np.empty_like(z), dw0.copy(), db0.copy()
    _core.linear_gelu_backward(dz, dw, db, dy, z, w)
    d64 = dy.astype(np.float64)
    dz_ref = ref.gelu_backward(d64 @ w.astype(np.float64), z.astype(np.float64))
    np.testing.assert_allclose(dz, dz_ref, rtol=rtol, atol=rtol * np.abs(dz_ref).max())
    np.testing.assert_allclose(dw, dw0 + d64.T @ g64, rtol=rtol, atol=rtol * np.abs(d64.T @ g64).max())
    e, ew, eb = d.copy(), dw0.copy(), db0.copy()
    _core.linear_gated_backward(e, ew, eb, dy, g, w)
    for a, want in ((dz, e), (dw, ew), (db, eb)):
        np.testing.assert_array_equal(_bits(a), _bits(want))
    with pytest.raises(ValueError, match="dz must have shape"):
        _core.linear_gelu_backward(np.empty((N, I + 1), dtype), dw, db, dy, z, w)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("N, I, O", [(1, 1, 1), (13, 64, 17), (37, 300, 40), (531, 16, 8)])
def test_linear_gelu_forward_keeps_gelu_and_its_derivative(isa, dtype, N, I, O):
    """With g and d given (training), linear_gelu_forward also writes GELU(z) and GELU'(z): y bitwise as
    without them, g and d bitwise ff_gelu_forward_grad's, so the tape's backward (linear_gated_backward on
    d and g) is bitwise linear_gelu_backward."""
    rng = np.random.default_rng(7 * N + I + O)
    z, w, b, r = _data(rng, N, I, O, dtype)
    z *= 2.0
    for res in (r, None):
        y0, y = np.empty((N, O), dtype), np.empty((N, O), dtype)
        g, d = np.full_like(z, np.nan), np.full_like(z, np.nan)
        _core.linear_gelu_forward(y0, z, w, b, res)
        _core.linear_gelu_forward(y, z, w, b, res, g, d)
        np.testing.assert_array_equal(_bits(y), _bits(y0))
        g0, d0 = np.empty_like(z), np.empty_like(z)
        _core.ff_gelu_forward_grad(g0, d0, z)
        np.testing.assert_array_equal(_bits(g), _bits(g0))
        np.testing.assert_array_equal(_bits(d), _bits(d0))
    dy = rng.normal(size=(N, O)).astype(dtype)
    dw0, db0 = rng.normal(size=(O, I)).astype(dtype), rng.normal(size=O).astype(dtype)
    dz, dw, db = np.empty_like(z), dw0.copy(), db0.copy()
    _core.linear_gelu_backward(dz, dw, db, dy, z, w)
    ew, eb = dw0.copy(), db0.copy()
    _core.linear_gated_backward(d, ew, eb, dy, g, w)
    for a, want in ((dz, d), (dw, ew), (db, eb)):
        np.testing.assert_array_equal(_bits(a), _bits(want))


def test_linear_gelu_forward_keep_bad_input():
    f32 = lambda *s: np.zeros(s, np.float32)  # noqa: E731
    z, w, y = f32(4, 3), f32(5, 3), f32(4, 5)
    with pytest.raises(ValueError, match="g and d must be given together"):
        _core.linear_gelu_forward(y, z, w, None, None, f32(4, 3), None)
    with pytest.raises(ValueError, match="g must have shape"):
        _core.linear_gelu_forward(y, z, w, None, None, f32(4, 4), f32(4, 3))
    with pytest.raises(TypeError, match="d has dtype"):
        _core.linear_gelu_forward(y, z, w, None, None, f32(4, 3), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="overlap"):
        g = f32(4, 3)
        _core.linear_gelu_forward(y, z, w, None, None, g, g)
    with pytest.raises(ValueError, match="overlap"):
        _core.linear_gelu_forward(y, z, w, None, None, z, f32(4, 3))


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("N, I, O", [(1, 1, 1), (13, 64, 17), (37, 300, 40), (50, 24, 96), (7, 16, 60)])
def test_linear_forward_gelu(isa, dtype, rtol, N, I, O):
    """The feed-forward block's first linear with GELU in its tile epilogue: g = GELU(x w^T + b) (and
    d = GELU'(.)) equal the float64 reference and bitwise linear_forward followed by ff_gelu_forward /
    ff_gelu_forward_grad (pre-activations up to ~6 in size: both the core and the tail form of Phi, also
    within one vector)."""
    from tests.reference import activations as ref

    rng = np.random.default_rng(3 * N + I + O)
    x, w, b, _ = _data(rng, N, I, O, dtype)
    x *= 2.0
    z = np.empty((N, O), dtype)
    for bias in (b, None):
        _core.linear_forward(z, x, w, bias)
        z64 = x.astype(np.float64) @ w.astype(np.float64).T + (0 if bias is None else b)
        g, d, g1 = np.full_like(z, np.nan), np.full_like(z, np.nan), np.full_like(z, np.nan)
        _core.linear_forward_gelu(g, d, x, w, bias)
        _core.linear_forward_gelu(g1, None, x, w, bias)
        want = ref.gelu(z64)
        np.testing.assert_allclose(g, want, rtol=rtol, atol=rtol * np.abs(want).max())
        dwant = ref.gelu_backward(np.ones_like(z64), z64)
        np.testing.assert_allclose(d, dwant, rtol=rtol, atol=rtol * np.abs(dwant).max())
        g0, d0 = np.empty_like(z), np.empty_like(z)
        _core.ff_gelu_forward_grad(g0, d0, z)
        for a, e in ((g, g0), (d, d0), (g1, g0), (g1, _core_gelu(z))):
            np.testing.assert_array_equal(_bits(a), _bits(e))


def _core_gelu(z):
    y = np.empty_like(z)
    _core.ff_gelu_forward(y, z)
    return y


def test_linear_forward_gelu_bad_input():
    f32 = lambda *s: np.zeros(s, np.float32)  # noqa: E731
    x, w = f32(4, 3), f32(5, 3)
    with pytest.raises(ValueError, match="g must have shape"):
        _core.linear_forward_gelu(f32(4, 4), None, x, w, None)
    with pytest.raises(ValueError, match="d must have shape"):
        _core.linear_forward_gelu(f32(4, 5), f32(5, 4), x, w, None)
    with pytest.raises(ValueError, match="b must have shape"):
        _core.linear_forward_gelu(f32(4, 5), None, x, w, f32(4))
    with pytest.raises(TypeError, match="d has dtype"):
        _core.linear_forward_gelu(f32(4, 5), np.zeros((4, 5)), x, w, None)
    with pytest.raises(ValueError, match="overlap"):
        g = f32(4, 5)
        _core.linear_forward_gelu(g, g, x, w, None)


def test_float_gelu_value_does_not_depend_on_its_vector_neighbours():
    """Phi has a core form (|x| < 3) and a tail form, the tail evaluated only for vectors that need it and
    blended per lane: a value's GELU / GELU' bits are the same alone, among core values and among tail values
    (so the linear epilogue's 8-column groups and the elementwise kernel's 8-value groups agree)."""
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.uniform(-3.2, 3.2, 4000), [2.9999998, -2.9999998, 3.0, -3.0, np.nan, 0.0]])
    x = x.astype(np.float32)
    y, d = np.empty_like(x), np.empty_like(x)
    _core.ff_gelu_forward_grad(y, d, x)
    for fill in (0.5, 7.0):  # every other lane a core / a tail value
        xm = np.full(2 * x.size, fill, np.float32)
        xm[::2] = x
        ym, dm = np.empty_like(xm), np.empty_like(xm)
        _core.ff_gelu_forward_grad(ym, dm, xm)
        np.testing.assert_array_equal(_bits(ym[::2]), _bits(y))
        np.testing.assert_array_equal(_bits(dm[::2]), _bits(d))
