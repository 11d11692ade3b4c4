"""neurodivergent.nn.functional: allocation, dtype handling and agreement with the references."""
import numpy as np
import pytest

from neurodivergent.nn import functional as F
from tests.reference import activations as ref_act
from tests.reference import linear as ref_linear
from tests.reference import losses as ref_loss
from tests.reference import optim as ref_optim

DTYPES = [np.float64, np.float32]
TOL = {np.float64: 1e-10, np.float32: 1e-5}


def close(out, ref, dt, scale=1.0):
    np.testing.assert_allclose(np.asarray(out, np.float64), ref, rtol=TOL[dt], atol=TOL[dt] * scale)


def test_all_names_exist():
    for name in F.__all__:
        assert hasattr(F, name), name
    for name in ["gemm", "linear_forward", "linear_backward", "relu", "gelu_backward", "huber_loss_backward",
                 "adam_step", "sum_squares", "LinearGrads"]:
        assert name in F.__all__


@pytest.mark.parametrize("dt", DTYPES)
def test_gemm(dt, rng):
    a = rng.standard_normal((5, 7)).astype(dt)
    b = rng.standard_normal((4, 7)).astype(dt)
    c = F.gemm(a, b, trans_b=True)
    assert c.dtype == dt and c.shape == (5, 4)
    close(c, a.astype(np.float64) @ b.astype(np.float64).T, dt, 10)
    c2 = np.ones((5, 4), dt)
    out = F.gemm(a, b, trans_b=True, alpha=2.0, beta=1.0, c=c2)
    assert out is c2
    close(c2, 2 * (a.astype(np.float64) @ b.astype(np.float64).T) + 1, dt, 10)
    close(F.gemm(a.T, b, trans_a=True, trans_b=True, beta=3.0), a.astype(np.float64) @ b.astype(np.float64).T, dt, 10)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1), (6, 5, 3), (300, 257, 129)])
def test_linear(shape, dt, rng):
    N, I, O = shape
    x = rng.standard_normal((N, I)).astype(dt)
    w = rng.standard_normal((O, I)).astype(dt) / np.sqrt(I).astype(dt)
    b = rng.standard_normal(O).astype(dt)
    dy = rng.standard_normal((N, O)).astype(dt)
    y = F.linear_forward(x, w, b)
    assert y.dtype == dt and y.shape == (N, O)
    close(y, ref_linear.forward(x, w, b), dt, 10)
    close(F.linear_forward(x, w), ref_linear.forward(x, w), dt, 10)
    g = F.linear_backward(dy, x, w)
    assert isinstance(g, F.LinearGrads)
    rdx, rdw, rdb = ref_linear.backward(dy, x, w)
    close(g.dx, rdx, dt, 10)
    close(g.dw, rdw, dt, 30)
    close(g.db, rdb, dt, 30)
    # accumulate into given buffers; dx overwritten
    g2 = F.linear_backward(dy, x, w, dw=g.dw, db=g.db)
    assert g2.dw is g.dw and g2.db is g.db
    close(g2.dw, 2 * rdw, dt, 60)
    close(g2.db, 2 * rdb, dt, 60)
    close(g2.dx, rdx, dt, 10)
    g3 = F.linear_backward(dy, x, w, need_dx=False, has_bias=False)
    assert g3.dx is None and g3.db is None
    close(g3.dw, rdw, dt, 30)


def test_linear_non_contiguous_inputs_are_copied(rng):
    x = rng.standard_normal((8, 6))[:, ::2]  # (8, 3), non-contiguous
    w = np.asfortranarray(rng.standard_normal((4, 3)))
    np.testing.assert_allclose(F.linear_forward(x, w), x @ w.T, rtol=1e-12)
    g = F.linear_backward(np.ones((8, 4))[::1], x, w)
    np.testing.assert_allclose(g.dw, np.ones((8, 4)).T @ x, rtol=1e-12)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("kind", list(ref_act.KINDS))
def test_activations(kind, dt, rng):
    x = (3 * rng.standard_normal((4, 5, 6))).astype(dt)
    dy = rng.standard_normal(x.shape).astype(dt)
    y = getattr(F, kind)(x)
    assert y.dtype == dt and y.shape == x.shape
    np.testing.assert_array_equal(y, F.activation_forward(kind, x))
    close(y, ref_act.forward(kind, x), dt, 0.1)
    if kind in ("relu", "gelu"):
        dx = getattr(F, kind + "_backward")(dy, x)
    else:
        dx = getattr(F, kind + "_backward")(dy, y)
    np.testing.assert_array_equal(dx, F.activation_backward(kind, dy, x, y))
    close(dx, ref_act.backward(kind, dy, x, y), dt, 1.0)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("kind", list(ref_loss.KINDS))
def test_losses(kind, dt, rng):
    pred = rng.standard_normal((7, 3)).astype(dt)
    target = rng.standard_normal((7, 3)).astype(dt)
    weight = rng.uniform(0, 1, (7, 3)).astype(dt)
    kw = {"delta": 0.4} if kind == "huber" else {}
    for w in (None, weight):
        v = getattr(F, f"{kind}_loss")(pred, target, w, **kw)
        assert isinstance(v, float)
        assert v == pytest.approx(ref_loss.forward(kind, pred, target, w, **kw), rel=1e-12)
        d = getattr(F, f"{kind}_loss_backward")(pred, target, w, scale=3.0, **kw)
        assert d.dtype == dt
        close(d, ref_loss.backward(kind, pred, target, w, scale=3.0, **kw), dt, 1e-3)
        assert v == F.loss_forward(kind, pred, target, w, **kw)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_in_place_any_shape(dt, decoupled, rng):
    p = rng.standard_normal((3, 4)).astype(dt)
    m, v = np.zeros_like(p), np.zeros_like(p)
    rp, rm, rv = p.astype(np.float64), np.zeros(p.shape), np.zeros(p.shape)
    for step in range(1, 21):
        g = rng.standard_normal(p.shape).astype(dt)
        assert F.adam_step(p, g, m, v, step, lr=1e-2, weight_decay=0.1, decoupled=decoupled) is None
        rp, rm, rv = ref_optim.adam_step(rp, g, rm, rv, step, 1e-2, 0.9, 0.999, 1e-8, 0.1, decoupled)
    close(p, rp, dt, 1e-2)
    close(m, rm, dt, 1e-2)
    close(v, rv, dt, 1e-2)


def test_sum_squares_and_scale(rng):
    x = rng.standard_normal((10, 3))
    assert F.sum_squares(x) == pytest.approx(float(np.sum(x * x)), rel=1e-14)
    assert F.sum_squares(x.T) == pytest.approx(float(np.sum(x * x)), rel=1e-14)  # copied, not rejected
    y = x.copy()
    F.scale_inplace(y, 0.5)
    np.testing.assert_array_equal(y, x * 0.5)


# ------------------------------------------------------------------------- errors
def f64(*s):
    return np.ones(s)


def f32(*s):
    return np.ones(s, np.float32)


@pytest.mark.parametrize(
    "call,exc,needle",
    [
        (lambda: F.linear_forward(f64(2, 3), f32(4, 3)), TypeError, "w has dtype float32 but x has dtype float64"),
        (lambda: F.linear_forward(f64(2, 3), f64(4, 3), f32(4)), TypeError, "b has dtype"),
        (lambda: F.linear_forward(np.ones((2, 3), np.int64), f64(4, 3)), TypeError, "x must have dtype"),
        (lambda: F.linear_forward(f64(2, 3).astype(np.float16), f64(4, 3)), TypeError, "x must have dtype"),
        (lambda: F.linear_forward(f64(3), f64(4, 3)), ValueError, "x must be 2-D"),
        (lambda: F.linear_forward(f64(2, 3), f64(4, 2)), ValueError, "w must have shape"),
        (lambda: F.linear_backward(f64(2, 4), f64(2, 3), f64(4, 3), dw=f32(4, 3)), TypeError, "dw has dtype"),
        (lambda: F.linear_backward(f64(2, 4), f64(2, 3), f64(4, 3), dw=f64(4, 6)[:, ::2]), ValueError, "dw must be C-contiguous"),
        (lambda: F.linear_backward(f64(2, 5), f64(2, 3), f64(4, 3)), ValueError, "dy must have shape"),
        (lambda: F.relu(np.arange(3)), TypeError, "x must have dtype"),
        (lambda: F.activation_forward("swish", f64(3)), ValueError, "unknown activation kind 'swish'"),
        (lambda: F.activation_forward(None, f64(3)), TypeError, "kind must be a str"),
        (lambda: F.tanh_backward(f64(3), f32(3)), TypeError, "y has dtype"),
        (lambda: F.gelu_backward(f64(3), f64(4)), ValueError, "x must have the same shape as dy"),
        (lambda: F.mse_loss(f64(3), f32(3)), TypeError, "target has dtype"),
        (lambda: F.mae_loss(f64(3), f64(3), -f64(3)), ValueError, "weight must be finite and non-negative"),
        (lambda: F.huber_loss(f64(3), f64(3), delta=-1.0), ValueError, "delta must be"),
        (lambda: F.loss_forward("quantile", f64(3), f64(3)), ValueError, "unknown loss kind 'quantile'"),
        (lambda: F.adam_step(f64(3), f64(3), f64(3), f64(3), 0), ValueError, "step must be >= 1"),
        (lambda: F.adam_step(f64(3), f64(3), f64(3), f64(3), 1, lr=-1), ValueError, "lr must be"),
        (lambda: F.adam_step([1.0, 2.0], f64(2), f64(2), f64(2), 1), TypeError, "param must be a numpy.ndarray"),
        (lambda: F.adam_step(f64(4, 2)[:, 0], f64(4), f64(4), f64(4), 1), ValueError, "param must be C-contiguous"),
        (lambda: F.adam_step(f64(3), f64(3), f32(3), f64(3), 1), TypeError, "m has dtype"),
        (lambda: F.adam_step(f64(3), f64(4), f64(3), f64(3), 1), ValueError, "grad must have the same shape as param"),
        (lambda: F.adam_step(np.ones(3, np.int32), f64(3), f64(3), f64(3), 1), TypeError, "param must have dtype"),
        (lambda: F.sum_squares(np.ones(3, np.complex128)), TypeError, "x must have dtype"),
    ],
)
def test_errors_name_the_argument(call, exc, needle):
    with pytest.raises(exc, match=None) as info:
        call()
    assert needle in str(info.value), str(info.value)


def test_lists_of_floats_are_accepted():
    y = F.relu([-1.0, 2.0])
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, [0.0, 2.0])


def test_read_only_param_rejected_without_side_effects():
    p = f64(3)
    p.flags.writeable = False
    m, v = np.zeros(3), np.zeros(3)
    with pytest.raises(ValueError, match="param is read-only"):
        F.adam_step(p, f64(3), m, v, 1)
    assert np.all(m == 0) and np.all(v == 0)
