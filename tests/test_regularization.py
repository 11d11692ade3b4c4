"""Gradient clipping and L1 / L2 penalties (training/regularization.py, csrc/train_kernels.cpp) against the
float64 numpy references (tests/reference/regularization.py), the documented order of application, and the
bindings' argument validation."""
import json
import math

import numpy as np
import pytest

from neurodivergent import _core
from neurodivergent._config import _decode_nested
from neurodivergent.training.regularization import (
    ClipByNorm,
    ClipByValue,
    GradientClipping,
    add_penalties,
    apply_clipping,
    global_norm,
    normalize_clipping,
    penalty_value,
    regularize_and_clip,
)
from tests.reference import regularization as ref

TOL = {np.float64: 1e-12, np.float32: 1e-6}
SIZES = [1, 7, 1000, 70_001]  # 70_001: several reduction chunks and the parallel path


def assert_close(out, want, rtol, atol=0.0):
    out, want = np.asarray(out, np.float64), np.asarray(want, np.float64)
    assert out.shape == want.shape
    err = np.abs(out - want)
    assert np.all(err <= atol + rtol * np.abs(want)), f"max err {err.max():.3e}"


# ---------------------------------------------------------------- the reference's penalty gradient
def test_reference_penalty_grad_matches_finite_differences(rng):
    p = rng.normal(size=20)
    p[np.abs(p) < 0.05] = 0.3  # away from the |p| kink
    l1, l2 = 0.03, 0.7
    h = 1e-6
    num = np.array([(ref.penalty(p + h * e, l1, l2) - ref.penalty(p - h * e, l1, l2)) / (2 * h)
                    for e in np.eye(p.size)])
    assert_close(ref.penalty_grad(p, l1, l2), num, rtol=1e-7, atol=1e-10)
    assert penalty_value(p, l1, l2) == pytest.approx(ref.penalty(p, l1, l2), rel=1e-13)


# ---------------------------------------------------------------- kernels against the references
@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("l1,l2", [(0.0, 0.0), (1e-3, 0.0), (0.0, 1e-2), (1e-3, 1e-2)])
def test_add_penalties_matches_reference(dt, n, l1, l2, rng):
    g = rng.normal(size=n).astype(dt)
    p = rng.normal(size=n).astype(dt)
    p[::5] = 0  # sign(0) = 0
    want = g.astype(np.float64) + ref.penalty_grad(p, l1, l2)
    add_penalties(g, p, l1, l2)
    assert_close(g, want, rtol=TOL[dt], atol=1e-300)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("n", SIZES)
def test_clip_by_value_matches_reference(dt, n, rng):
    g = (3 * rng.normal(size=n)).astype(dt)
    want = ref.clip_value(g, -1.5, 0.5)
    info = apply_clipping(g, GradientClipping.ByValue(-1.5, 0.5))
    assert np.array_equal(g, want.astype(dt))
    assert info["norm_after"] == pytest.approx(np.linalg.norm(want), rel=1e-6)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("max_norm", [0.1, 1.0, 1e6])
def test_clip_by_norm_matches_reference(dt, n, max_norm, rng):
    g = rng.normal(size=n).astype(dt)
    before = float(np.linalg.norm(g.astype(np.float64)))
    want = ref.clip_norm(g, max_norm)
    info = apply_clipping(g, GradientClipping.ByNorm(max_norm))
    assert_close(g, want, rtol=TOL[dt] * 4, atol=1e-300)
    assert info["norm_before"] == pytest.approx(before, rel=1e-12)
    assert info["norm_after"] == pytest.approx(min(before, np.linalg.norm(want)), rel=1e-6)
    if before > max_norm:
        assert info["norm_after"] == pytest.approx(max_norm, rel=1e-5)
        assert info["clip_coef"] == pytest.approx(max_norm / (before + 1e-6), rel=1e-12)
    else:
        assert info["clip_coef"] == 1.0 and info["norm_after"] == info["norm_before"]


def test_global_norm_over_the_flat_buffer(rng):
    g = rng.normal(size=(40, 25)).astype(np.float32)
    assert global_norm(g) == pytest.approx(float(np.linalg.norm(g.astype(np.float64))), rel=1e-12)


# ---------------------------------------------------------------- order of application
@pytest.mark.parametrize("clips", [
    (GradientClipping.ByNorm(1.0), GradientClipping.ByValue(-0.2, 0.3)),
    (GradientClipping.ByValue(-0.2, 0.3), GradientClipping.ByNorm(1.0)),
    [GradientClipping.ByNorm(1.0), GradientClipping.ByValue(-0.2, 0.3)],
])
def test_order_penalties_then_value_then_norm(clips, rng):
    g = rng.normal(size=500)
    p = rng.normal(size=500)
    want = ref.regularize_and_clip(g, p, 1e-2, 0.5, lo_hi=(-0.2, 0.3), max_norm=1.0)
    out = g.copy()
    info = regularize_and_clip(out, p, 1e-2, 0.5, clips)
    assert_close(out, want, rtol=1e-12, atol=1e-300)
    pen = g + ref.penalty_grad(p, 1e-2, 0.5)
    assert info["norm_before"] == pytest.approx(np.linalg.norm(pen), rel=1e-12)  # after penalties, before clips
    # any other order gives another result here
    other = ref.clip_value(ref.clip_norm(pen, 1.0), -0.2, 0.3)
    assert not np.allclose(out, other)
    before_pen = ref.clip_norm(ref.clip_value(g, -0.2, 0.3), 1.0) + ref.penalty_grad(p, 1e-2, 0.5)
    assert not np.allclose(out, before_pen)
    assert normalize_clipping(clips) == (GradientClipping.ByValue(-0.2, 0.3), GradientClipping.ByNorm(1.0))


def test_no_clipping_and_no_penalty_are_no_ops(rng):
    g = rng.normal(size=50).astype(np.float32)
    p = rng.normal(size=50).astype(np.float32)
    keep = g.copy()
    info = regularize_and_clip(g, p, 0.0, 0.0, None)
    assert np.array_equal(g, keep) and info["norm_before"] == info["norm_after"]
    assert normalize_clipping(None) == () and normalize_clipping(()) == ()


def test_nan_is_kept_and_nonfinite_norm_not_scaled():
    g = np.array([np.nan, 5.0, -5.0], np.float32)
    apply_clipping(g, GradientClipping.ByValue(-1, 1))
    assert math.isnan(g[0]) and g[1] == 1 and g[2] == -1
    h = np.array([np.inf, 1.0])
    info = apply_clipping(h, GradientClipping.ByNorm(1.0))
    assert math.isinf(info["norm_before"]) and h[1] == 1.0  # reported, left for the divergence check


# ---------------------------------------------------------------- the configs
def test_clipping_configs_validate_and_round_trip():
    assert GradientClipping.ByNorm(1.0).max_norm == 1.0 and GradientClipping.ByNorm(1.0).kind == "norm"
    v = GradientClipping.ByValue(-1.0, 1.0)
    assert (v.lo, v.hi, v.kind) == (-1.0, 1.0, "value")
    assert repr(v) == "GradientClipping.ByValue(-1.0, 1.0)" and repr(ClipByNorm(max_norm=0.5)) == \
        "GradientClipping.ByNorm(0.5)"
    with pytest.raises(ValueError, match="max_norm must be > 0"):
        GradientClipping.ByNorm(0.0)
    with pytest.raises(ValueError, match="max_norm must be > 0"):
        ClipByNorm().with_max_norm(-1)
    with pytest.raises(ValueError, match="needs lo < hi"):
        GradientClipping.ByValue(1.0, 1.0)
    with pytest.raises(ValueError, match="needs lo < hi"):
        ClipByValue().with_lo(2.0)
    with pytest.raises(ValueError, match="hi must be finite"):
        GradientClipping.ByValue(0.0, float("inf"))
    with pytest.raises(TypeError, match="namespace"):
        GradientClipping()
    for c in (GradientClipping.ByNorm(2.5), GradientClipping.ByValue(-0.5, 2.0)):
        d = json.loads(json.dumps(c.to_dict()))
        assert GradientClipping.from_dict(d) == c
        assert _decode_nested({"__type__": type(c).__name__, **d}) == c
        assert GradientClipping.from_dict({"__type__": type(c).__name__, **d}) == c
    with pytest.raises(ValueError, match="at most one ByNorm and one ByValue"):
        normalize_clipping((GradientClipping.ByNorm(1.0), GradientClipping.ByNorm(2.0)))
    with pytest.raises(TypeError, match="gradient_clipping must be"):
        normalize_clipping(1.0)
    with pytest.raises(TypeError, match="entries must be"):
        normalize_clipping((GradientClipping.ByNorm(1.0), "x"))


def test_python_argument_validation(rng):
    g = rng.normal(size=4)
    with pytest.raises(ValueError, match="l1 must be >= 0"):
        add_penalties(g, g.copy(), -1.0, 0.0)
    with pytest.raises(ValueError, match="l2 must be finite"):
        add_penalties(g, g.copy(), 0.0, float("nan"))
    with pytest.raises(ValueError, match="params must have grad's size"):
        add_penalties(g, np.zeros(3), 0.1, 0.1)
    with pytest.raises(TypeError, match="params has dtype float32"):
        add_penalties(g, np.zeros(4, np.float32), 0.1, 0.1)
    with pytest.raises(TypeError, match="grad must be a numpy.ndarray"):
        apply_clipping([1.0], GradientClipping.ByNorm(1.0))
    with pytest.raises(ValueError, match="grad must be C-contiguous"):
        apply_clipping(np.zeros((4, 4))[:, 0], GradientClipping.ByNorm(1.0))
    ro = np.zeros(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        apply_clipping(ro, GradientClipping.ByNorm(1.0))


# ---------------------------------------------------------------- kernel bindings
@pytest.mark.parametrize("call,exc,match", [
    (lambda: _core.clip_by_value([1.0], -1, 1), TypeError, "x must be a numpy.ndarray"),
    (lambda: _core.clip_by_value(np.zeros(3, np.int32), -1, 1), TypeError, "x must have dtype float32 or float64"),
    (lambda: _core.clip_by_value(np.zeros(3), 1, -1), ValueError, "lo must be <= hi"),
    (lambda: _core.clip_by_value(np.zeros(3), float("nan"), 1), ValueError, "lo must not be NaN"),
    (lambda: _core.clip_by_value(np.zeros(3), 0, float("nan")), ValueError, "hi must not be NaN"),
    (lambda: _core.clip_by_value(np.zeros(3), "a", 1), TypeError, "lo must be a real number"),
    (lambda: _core.clip_by_value(np.zeros((3, 3))[:, 0], -1, 1), ValueError, "x must be C-contiguous"),
    (lambda: _core.add_penalty_grad(np.zeros(3), np.zeros(4), 0.1, 0.1), ValueError, r"param must have shape \(3,\)"),
    (lambda: _core.add_penalty_grad(np.zeros((3, 1)), np.zeros((3, 1)), 0.1, 0.1), ValueError, "grad must be 1-D"),
    (lambda: _core.add_penalty_grad(np.zeros(3), np.zeros(3, np.float32), 0.1, 0.1), TypeError,
     "param has dtype float32"),
    (lambda: _core.add_penalty_grad(np.zeros(3), np.zeros(3), -0.1, 0.1), ValueError, "l1 must be finite and >= 0"),
    (lambda: _core.add_penalty_grad(np.zeros(3), np.zeros(3), 0.1, float("inf")), ValueError,
     "l2 must be finite and >= 0"),
    (lambda: _core.add_penalty_grad(np.zeros(3), np.zeros(3), True, 0.1), TypeError, "l1 must be a real number"),
])
def test_kernel_bindings_reject_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_kernel_bindings_reject_read_only_and_aliasing():
    ro = np.zeros(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="x is read-only"):
        _core.clip_by_value(ro, -1, 1)
    with pytest.raises(ValueError, match="grad is read-only"):
        _core.add_penalty_grad(ro, np.zeros(3), 0.1, 0.1)
    buf = np.zeros(6)
    with pytest.raises(ValueError, match="grad overlaps param"):
        _core.add_penalty_grad(buf[:4], buf[2:], 0.1, 0.1)


def test_kernels_independent_of_thread_count(rng, threads):
    g0 = rng.normal(size=200_001).astype(np.float32)
    p = rng.normal(size=200_001).astype(np.float32)
    outs = []
    for n in (1, 2, 3):
        threads.set_num_threads(n)
        g = g0.copy()
        info = regularize_and_clip(g, p, 1e-3, 1e-2, (GradientClipping.ByValue(-1, 1), GradientClipping.ByNorm(5.0)))
        outs.append((g, info))
    for g, info in outs[1:]:
        assert np.array_equal(g, outs[0][0]) and info == outs[0][1]
