"""Layer norm kernels (csrc/norm.cpp via neurodivergent.nn.functional) against the float64 reference.

Reference vs finite differences; double to 1e-10 and float to 1e-5; C=1, N=1, C not a multiple of 8,
3-D input; weight / bias absent; parameter gradients accumulate; threads; hypothesis; bad input; torch.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neurodivergent.nn.functional as F
from neurodivergent import _core
from tests.reference import layer_norm as ref
from tests.test_attention import close_scaled

DTYPES = [np.float64, np.float32]
RTOL = {np.float64: 1e-10, np.float32: 1e-5}


def test_reference_backward_matches_finite_differences(rng):
    x = rng.standard_normal((4, 6)) * 2 + 1
    w, b = rng.standard_normal(6), rng.standard_normal(6)
    dy = rng.standard_normal(x.shape)
    _, cache = ref.forward(x, w, b)
    grads = ref.backward(cache, dy)
    args = [x, w, b]
    for a, g in enumerate(grads):
        fd = np.empty_like(args[a])
        for idx in np.ndindex(args[a].shape):
            old = args[a][idx]
            args[a][idx] = old + 1e-6
            lp = float((ref.forward(*args)[0] * dy).sum())
            args[a][idx] = old - 1e-6
            lm = float((ref.forward(*args)[0] * dy).sum())
            args[a][idx] = old
            fd[idx] = (lp - lm) / 2e-6
        np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (3, 1), (7, 13), (130, 64), (300, 33), (2, 5, 17)])
@pytest.mark.parametrize("naive", [False, True])
def test_matches_reference(rng, dtype, shape, naive):
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    C = shape[-1]
    w, b = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    out = F.layer_norm_forward(x, w, b, naive=naive)
    g = F.layer_norm_backward(out.cache, dy, naive=naive)
    y_ref, cache = ref.forward(x, w, b)
    g_ref = ref.backward(cache, dy)
    assert out.y.shape == shape and out.y.dtype == dtype
    close_scaled(out.y, y_ref, RTOL[dtype], "y")
    for name, a, r in zip(("dx", "dweight", "dbias"), g, g_ref):
        close_scaled(a, r, RTOL[dtype] * (10 if name != "dx" else 1), name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_no_affine_and_custom_eps(rng, dtype):
    x = rng.standard_normal((9, 10)).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    out = F.layer_norm_forward(x, eps=0.5)
    y_ref, cache = ref.forward(x, eps=0.5)
    close_scaled(out.y, y_ref, RTOL[dtype], "y")
    g = F.layer_norm_backward(out.cache, dy)
    assert g.dweight is None and g.dbias is None
    close_scaled(g.dx, ref.backward(cache, dy)[0], RTOL[dtype], "dx")


def test_parameter_gradients_accumulate(rng):
    x = rng.standard_normal((20, 8))
    w, b = rng.standard_normal(8), rng.standard_normal(8)
    dy = rng.standard_normal(x.shape)
    out = F.layer_norm_forward(x, w, b)
    dw, db = np.zeros(8), np.zeros(8)
    g1 = F.layer_norm_backward(out.cache, dy, dweight=dw, dbias=db)
    assert g1.dweight is dw and g1.dbias is db
    once = dw.copy(), db.copy()
    g2 = F.layer_norm_backward(out.cache, dy, dweight=dw, dbias=db)
    np.testing.assert_allclose(dw, 2 * once[0], rtol=1e-14)
    np.testing.assert_allclose(db, 2 * once[1], rtol=1e-14)
    np.testing.assert_array_equal(g1.dx, g2.dx)  # activation gradients overwrite
    assert F.layer_norm_backward(out.cache, dy, need_dx=False).dx is None


def test_constant_rows_stay_finite():
    x = np.full((3, 16), 7.0, np.float32)
    out = F.layer_norm_forward(x, np.ones(16, np.float32), np.zeros(16, np.float32))
    assert np.all(out.y == 0)
    g = F.layer_norm_backward(out.cache, np.ones_like(x))
    assert all(np.all(np.isfinite(a)) for a in g)


@pytest.mark.parametrize("dtype", DTYPES)
def test_threads_repeatable_and_consistent(rng, threads, dtype):
    x = rng.standard_normal((20000, 64)).astype(dtype)  # above the 2 MFLOP-per-thread threshold
    w, b = rng.standard_normal(64).astype(dtype), rng.standard_normal(64).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    res = []
    for n in (1, 2, 2):
        threads.set_num_threads(n)
        out = F.layer_norm_forward(x, w, b)
        res.append((out.y, *F.layer_norm_backward(out.cache, dy)))
    for a, b_, c in zip(*res):
        np.testing.assert_array_equal(a, b_)  # fixed row chunks: bitwise equal for any thread count
        np.testing.assert_array_equal(b_, c)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(N=st.integers(1, 200), C=st.integers(1, 70), dtype=st.sampled_from(DTYPES),
       scale=st.sampled_from([1e-2, 1.0, 1e3]), seed=st.integers(0, 2**31 - 1))
def test_hypothesis_matches_reference(N, C, dtype, scale, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((N, C)) * scale + scale).astype(dtype)
    w, b = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)
    dy = rng.standard_normal((N, C)).astype(dtype)
    out = F.layer_norm_forward(x, w, b)
    y_ref, cache = ref.forward(x, w, b)
    rtol = RTOL[dtype] * (1 if dtype == np.float64 else 10)
    close_scaled(out.y, y_ref, rtol, "y")
    for name, a, r in zip(("dx", "dweight", "dbias"), F.layer_norm_backward(out.cache, dy), ref.backward(cache, dy)):
        close_scaled(a, r, rtol * 10, name)


def test_bad_input(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    with pytest.raises(TypeError, match="weight has dtype float64 but x has dtype float32"):
        F.layer_norm_forward(x, np.ones(4))
    with pytest.raises(ValueError, match=r"weight must have shape \(4,\)"):
        F.layer_norm_forward(x, np.ones(5, np.float32))
    with pytest.raises(TypeError, match="x must have dtype"):
        F.layer_norm_forward(x.astype(np.int64))
    with pytest.raises(ValueError, match="eps must be"):
        F.layer_norm_forward(x, eps=0.0)
    out = F.layer_norm_forward(x)
    with pytest.raises(ValueError, match="dy must have the shape"):
        F.layer_norm_backward(out.cache, x[:2])
    with pytest.raises(ValueError, match=r"dweight must have shape \(4,\)"):
        F.layer_norm_backward(out.cache, x, dweight=np.zeros(3, np.float32))
    y, m, r = np.empty_like(x), np.empty(3, np.float32), np.empty(3, np.float32)
    with pytest.raises(ValueError, match="y overlaps x"):
        _core.layer_norm_forward(x, m, r, x, None, None)


def test_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 7, 12))
    w, b = rng.standard_normal(12), rng.standard_normal(12)
    dy = rng.standard_normal(x.shape)
    out = F.layer_norm_forward(x, w, b)
    g = F.layer_norm_backward(out.cache, dy)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.layer_norm(tx, (12,), tw, tb, 1e-5)
    ty.backward(torch.tensor(dy))
    close_scaled(out.y, ty.detach().numpy(), 1e-10, "y")
    for a, t in zip(g, (tx, tw, tb)):
        close_scaled(a, t.grad.numpy(), 1e-10, "grad")
