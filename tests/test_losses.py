"""Training losses (training/losses.py) and the quantile (pinball) kernel.

1. the float64 quantile reference is proven by central finite differences (weights, quantile weights);
2. the C++ quantile kernel matches it (float64 ~1e-12, float32 ~1e-5) on several shapes, B = 1 and h = 1
   and Q = 1 included, with and without weights, any thread count bitwise;
3. every LossFunction's value_and_grad against the float64 references and finite differences of the loss
   object itself (weights / masks, quantile weights), in the trainer's (B, h * Q) layout;
4. identities: Quantile with one level at 0.5 is MAE / 2; Weighted with a constant weight function is its
   base loss; scaling quantile weights changes nothing;
5. configs validate at the with_* call; resolve / to_dict / from_dict; NegativeLogLikelihood refuses;
6. the quantile kernel's bindings reject bad input with TypeError / ValueError naming the argument.
"""
import datetime
import math
import re

import numpy as np
import pytest

from neurodivergent import _core
from neurodivergent.training.losses import (
    HuberConfig,
    HuberLoss,
    Loss,
    LossFunction,
    QuantileConfig,
    QuantileLoss,
    WeightedConfig,
    WeightedLoss,
)
from tests.reference import losses as ref_loss
from tests.reference import quantile as ref_q

TOL = {np.float64: 1e-12, np.float32: 1e-5}


def assert_close(out, ref, rtol, atol=0.0, what="value"):
    out = np.asarray(out, np.float64)
    ref = np.asarray(ref, np.float64)
    assert out.shape == ref.shape, f"{what}: shape {out.shape} != {ref.shape}"
    err = np.abs(out - ref)
    bad = ~(err <= atol + rtol * np.abs(ref))
    assert not bad.any(), f"{what}: {int(bad.sum())} of {err.size} out of tolerance, max err {err.max():.3e}"


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


def away_from_kinks(rng, shape, target, Q):
    """pred with |target - pred| >= 0.05 everywhere (the pinball loss is smooth there)."""
    off = rng.uniform(0.05, 1.0, shape + (Q,)) * rng.choice([-1.0, 1.0], shape + (Q,))
    return target[..., None] - off


TAUS = [(0.5,), (0.1, 0.5, 0.9), (0.05, 0.25, 0.5, 0.75, 0.95)]


# ======================================================================== 1. the reference by finite differences
@pytest.mark.parametrize("taus", TAUS)
@pytest.mark.parametrize("weighted", [False, True])
def test_quantile_reference_backward_matches_finite_differences(taus, weighted, rng):
    Q = len(taus)
    target = rng.normal(size=(3, 4))
    pred = away_from_kinks(rng, (3, 4), target, Q)
    weight = rng.uniform(0.0, 2.0, (3, 4)) if weighted else None
    if weighted:
        weight[0, 1] = 0.0
    qw = rng.uniform(0.5, 3.0, Q)
    f = lambda: ref_q.forward(pred, target, weight, taus, qw)  # noqa: E731
    an = ref_q.backward(pred, target, weight, taus, qw)
    assert_close(an, central_diff(f, pred), rtol=1e-6, atol=1e-9, what="dpred")
    assert_close(ref_q.backward(pred, target, weight, taus, qw, scale=2.5), 2.5 * an, rtol=1e-15)


# ======================================================================== 2. kernel vs reference
SHAPES = [(1, 1), (1, 5), (4, 1), (8, 12), (33, 7), (300, 24)]


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("taus", TAUS)
@pytest.mark.parametrize("weighted", [False, True])
def test_quantile_kernel_matches_reference(dt, shape, taus, weighted, rng):
    Q = len(taus)
    target = rng.normal(size=shape).astype(dt)
    pred = rng.normal(size=shape + (Q,)).astype(dt)
    pred.reshape(-1)[::7] = np.repeat(target.reshape(-1), Q)[::7]  # some r == 0 exactly
    weight = rng.uniform(0, 3, shape).astype(dt) if weighted else None
    if weighted:
        weight.reshape(-1)[::3] = 0
    tau = np.array(taus)
    qw = rng.uniform(0.5, 2.0, Q)
    out = _core.quantile_loss_forward(pred, target, weight, tau, qw)
    assert_close(out, ref_q.forward(pred, target, weight, tau, qw), rtol=1e-12, atol=1e-300, what="loss")
    d = np.full_like(pred, np.nan)
    _core.quantile_loss_backward(d, pred, target, weight, tau, qw, 0.5)
    assert_close(d, ref_q.backward(pred, target, weight, tau, qw, 0.5), rtol=TOL[dt], atol=1e-300, what="dpred")


def test_quantile_kernel_gradient_is_zero_at_r_zero():
    target = np.array([[1.0, -2.0]])
    pred = np.repeat(target[..., None], 3, axis=-1)
    tau, qw = np.array([0.1, 0.5, 0.9]), np.ones(3)
    assert _core.quantile_loss_forward(pred, target, None, tau, qw) == 0.0
    d = np.full_like(pred, 7.0)
    _core.quantile_loss_backward(d, pred, target, None, tau, qw, 1.0)
    assert np.all(d == 0.0)


def test_quantile_kernel_weights_zero_sum_and_nan_exclusion(rng):
    target = rng.normal(size=(4, 3))
    pred = rng.normal(size=(4, 3, 2))
    tau, qw = np.array([0.2, 0.8]), np.array([1.0, 3.0])
    w = np.ones((4, 3))
    w[1] = 0.0
    bad = pred.copy()
    bad[1] = np.nan
    tbad = target.copy()
    tbad[1, 0] = np.inf
    keep = w != 0
    want = ref_q.forward(pred[keep], target[keep], None, tau, qw)
    assert _core.quantile_loss_forward(bad, tbad, w, tau, qw) == pytest.approx(want, rel=1e-13)
    d = np.empty_like(pred)
    _core.quantile_loss_backward(d, bad, tbad, w, tau, qw, 1.0)
    assert np.all(d[1] == 0.0)
    assert_close(d[keep], ref_q.backward(pred[keep], target[keep], None, tau, qw), rtol=1e-12, atol=1e-300)
    z = np.zeros((4, 3))
    assert _core.quantile_loss_forward(pred, target, z, tau, qw) == 0.0
    _core.quantile_loss_backward(d, pred, target, z, tau, qw, 1.0)
    assert np.all(d == 0.0)
    e = np.zeros((0, 3))
    assert _core.quantile_loss_forward(np.zeros((0, 3, 2)), e, None, tau, qw) == 0.0


def test_quantile_kernel_nan_propagates(rng):
    target = rng.normal(size=(2, 3))
    pred = rng.normal(size=(2, 3, 2))
    pred[0, 1, 1] = np.nan
    tau, qw = np.array([0.2, 0.8]), np.ones(2)
    assert math.isnan(_core.quantile_loss_forward(pred, target, None, tau, qw))
    d = np.empty_like(pred)
    _core.quantile_loss_backward(d, pred, target, None, tau, qw, 1.0)
    assert math.isnan(d[0, 1, 1]) and np.isfinite(np.delete(d.reshape(-1), 3)).all()


def test_quantile_kernel_backward_overwrites(rng):
    target = rng.normal(size=(3, 2))
    pred = rng.normal(size=(3, 2, 3))
    tau, qw = np.array([0.1, 0.5, 0.9]), np.ones(3)
    d = np.empty_like(pred)
    _core.quantile_loss_backward(d, pred, target, None, tau, qw, 1.0)
    first = d.copy()
    _core.quantile_loss_backward(d, pred, target, None, tau, qw, 1.0)
    assert np.array_equal(d, first)


@pytest.mark.parametrize("weighted", [False, True])
def test_quantile_kernel_bitwise_for_any_thread_count(weighted, rng, threads):
    shape = (600, 96)  # 57600 points: several reduction chunks, parallel paths taken
    target = rng.normal(size=shape).astype(np.float32)
    pred = rng.normal(size=shape + (3,)).astype(np.float32)
    w = rng.uniform(0, 1, shape).astype(np.float32) if weighted else None
    tau, qw = np.array([0.1, 0.5, 0.9]), np.array([1.0, 2.0, 1.0])
    res = []
    for n in (1, 2, 3):
        threads.set_num_threads(n)
        d = np.empty_like(pred)
        _core.quantile_loss_backward(d, pred, target, w, tau, qw, 1.0)
        res.append((_core.quantile_loss_forward(pred, target, w, tau, qw), d))
    for v, d in res[1:]:
        assert v == res[0][0]
        assert np.array_equal(d, res[0][1])
    assert res[0][0] == pytest.approx(ref_q.forward(pred, target, w, tau, qw), rel=1e-12)


# ======================================================================== 3. the loss objects
def _fd_check(loss, pred, target, weight, rtol=1e-6, atol=1e-9):
    value, d = loss.value_and_grad(pred, target, weight)
    assert d.shape == pred.shape and d.dtype == pred.dtype
    assert value == loss.value(pred, target, weight)
    num = central_diff(lambda: loss.value(pred, target, weight), pred)
    assert_close(d, num, rtol=rtol, atol=atol, what=f"{loss!r} gradient")
    return value, d


@pytest.mark.parametrize("loss,kind,delta", [(LossFunction.MAE, "mae", 1.0), (LossFunction.MSE, "mse", 1.0),
                                              (LossFunction.Huber(HuberConfig().with_delta(0.7)), "huber", 0.7)])
@pytest.mark.parametrize("weighted", [False, True])
def test_pointwise_losses_against_reference_and_finite_differences(loss, kind, delta, weighted, rng):
    target = rng.normal(size=(5, 6))
    r = rng.uniform(0.05, 2.0, (5, 6)) * rng.choice([-1.0, 1.0], (5, 6))
    if kind == "huber":  # keep away from the |r| == delta seam too
        r = np.where(np.abs(np.abs(r) - delta) < 0.05, r * 1.2, r)
    pred = target + r
    weight = None
    if weighted:
        weight = rng.uniform(0, 2, (5, 6))
        weight[2] = 0.0  # a masked row
    value, d = _fd_check(loss, pred, target, weight)
    assert value == pytest.approx(ref_loss.forward(kind, pred, target, weight, delta), rel=1e-13)
    assert_close(d, ref_loss.backward(kind, pred, target, weight, delta), rtol=1e-12, atol=1e-300)
    assert loss.n_outputs == 1 and loss.name == kind and not loss.defines_label_smoothing


@pytest.mark.parametrize("taus", TAUS)
@pytest.mark.parametrize("weighted", [False, True])
def test_quantile_loss_object_trainer_layout(taus, weighted, rng):
    Q = len(taus)
    qw = [float(x) for x in rng.uniform(0.5, 3.0, Q)]
    loss = LossFunction.Quantile(QuantileConfig().with_quantiles(list(taus)).with_weights(qw))
    assert loss.n_outputs == Q and loss.quantiles == tuple(taus)
    B, h = 4, 5
    target = rng.normal(size=(B, h))
    pred3 = away_from_kinks(rng, (B, h), target, Q)
    pred = pred3.reshape(B, h * Q)  # the model head's layout: quantile index fastest
    weight = rng.uniform(0, 2, (B, h)) if weighted else None
    value, d = _fd_check(loss, pred, target, weight)
    assert value == pytest.approx(ref_q.forward(pred3, target, weight, taus, qw), rel=1e-13)
    assert_close(d.reshape(B, h, Q), ref_q.backward(pred3, target, weight, taus, qw), rtol=1e-12, atol=1e-300)
    v3, d3 = loss.value_and_grad(pred3, target, weight)  # (B, h, Q) works too
    assert v3 == value and d3.shape == pred3.shape and np.array_equal(d3.reshape(B, h * Q), d)


def test_value_and_grad_float32_and_out_buffer(rng):
    loss = LossFunction.Quantile(QuantileConfig().with_quantiles([0.1, 0.9]))
    target = rng.normal(size=(3, 4)).astype(np.float32)
    pred = rng.normal(size=(3, 8)).astype(np.float32)
    out = np.empty_like(pred)
    value, d = loss.value_and_grad(pred, target, out=out)
    assert d is out and d.dtype == np.float32
    assert value == pytest.approx(ref_q.forward(pred.reshape(3, 4, 2), target, None, (0.1, 0.9)), rel=1e-12)
    v2, d2 = LossFunction.MAE.value_and_grad(pred[:, :4].copy(), target.astype(np.float64))
    assert d2.dtype == np.float32  # target converted to pred's dtype
    with pytest.raises(ValueError, match="out"):
        loss.value_and_grad(pred, target, out=np.empty((3, 8), np.float64))


def test_loss_object_shape_errors(rng):
    loss = LossFunction.Quantile(QuantileConfig().with_quantiles([0.1, 0.9]))
    with pytest.raises(ValueError, match=r"pred must have shape \(3, 8\)"):
        loss.value_and_grad(np.zeros((3, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="weight must have target's shape"):
        LossFunction.MAE.value_and_grad(np.zeros((3, 4)), np.zeros((3, 4)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="pred must have target's shape"):
        LossFunction.MSE.value(np.zeros((3, 5)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"weight\.flat\[1\]"):
        LossFunction.MAE.value(np.zeros(3), np.zeros(3), np.array([1.0, -1.0, 1.0]))


# ======================================================================== 4. identities
def test_quantile_median_is_half_mae(rng):
    target = rng.normal(size=(6, 7))
    pred = rng.normal(size=(6, 7))
    pred[0, :3] = target[0, :3]  # r == 0: both gradients are 0 there
    w = rng.uniform(0, 2, (6, 7))
    med = LossFunction.Quantile(QuantileConfig().with_quantiles([0.5]))
    for weight in (None, w):
        vq, dq = med.value_and_grad(pred, target, weight)
        vm, dm = LossFunction.MAE.value_and_grad(pred, target, weight)
        assert vq == pytest.approx(vm / 2, rel=1e-14)
        assert_close(dq, dm / 2, rtol=1e-14, atol=1e-300)
    assert np.all(med.value_and_grad(pred, target)[1][0, :3] == 0.0)


def test_quantile_weights_scale_invariant(rng):
    target = rng.normal(size=(4, 3))
    pred = rng.normal(size=(4, 9))
    a = LossFunction.Quantile(QuantileConfig().with_quantiles([0.1, 0.5, 0.9]).with_weights([1.0, 2.0, 1.0]))
    b = LossFunction.Quantile(QuantileConfig().with_quantiles([0.1, 0.5, 0.9]).with_weights([3.0, 6.0, 3.0]))
    va, da = a.value_and_grad(pred, target)
    vb, db = b.value_and_grad(pred, target)
    assert va == pytest.approx(vb, rel=1e-14)
    assert_close(da, db, rtol=1e-14)
    c = LossFunction.Quantile(QuantileConfig().with_quantiles([0.1, 0.5, 0.9]))
    assert c.weights == (1.0, 1.0, 1.0)


def _const(timestamp, value):
    return 2.5


def _recent(timestamp, value):
    """Module-level weight function (restorable by name)."""
    days_ago = (np.datetime64("2020-03-01") - timestamp) / np.timedelta64(1, "D")  # divide first: float days
    return np.exp(-0.01 * days_ago)


@pytest.mark.parametrize("base", [LossFunction.MAE, LossFunction.MSE, LossFunction.Huber(HuberConfig().with_delta(0.5)),
                                  LossFunction.Quantile(QuantileConfig().with_quantiles([0.2, 0.8]))])
def test_weighted_with_constant_function_equals_base(base, rng):
    loss = LossFunction.Weighted(WeightedConfig().with_base_loss(base).with_weight_function(_const))
    assert loss.n_outputs == base.n_outputs and loss.quantiles == base.quantiles
    ts = np.arange("2020-01-01", "2020-01-13", dtype="datetime64[D]")
    ys = rng.normal(size=12)
    rows = loss.compute_weights(ts, ys)
    assert rows.dtype == np.float64 and np.all(rows == 2.5)
    target = rng.normal(size=(3, 4))
    pred = rng.normal(size=(3, 4 * base.n_outputs))
    w = rows.reshape(3, 4)  # the trainer gathers per-row weights like the targets
    vw, dw = loss.value_and_grad(pred, target, w)
    vb, db = base.value_and_grad(pred, target)
    assert vw == pytest.approx(vb, rel=1e-14)
    assert_close(dw, db, rtol=1e-13)
    mask = np.ones((3, 4))
    mask[0] = 0
    vm, _ = loss.value_and_grad(pred, target, w * mask)
    assert vm == pytest.approx(base.value(pred, target, mask), rel=1e-14)


def test_weighted_compute_weights_vectorised_and_per_element(rng):
    ts = np.arange("2020-01-01", "2020-03-01", dtype="datetime64[D]")
    ys = rng.normal(size=ts.size)
    vec = LossFunction.Weighted(WeightedConfig().with_weight_function(_recent))
    w = vec.compute_weights(ts, ys)
    calls = []

    def scalar_only(timestamp, value):  # .days fails on arrays: called per element with Python scalars
        calls.append((type(timestamp), type(value)))
        return math.exp(-(datetime.datetime(2020, 3, 1) - timestamp).days * 0.01)  # the guide's example

    per = LossFunction.Weighted(WeightedConfig().with_weight_function(scalar_only)).compute_weights(ts, ys)
    assert_close(per, w, rtol=1e-15)
    assert calls[0] == (np.ndarray, np.ndarray) and len(calls) == ts.size + 1  # the array call raised first
    assert calls[-1] == (datetime.datetime, float)
    assert w[-1] == pytest.approx(math.exp(-0.01)) and np.all(np.diff(w) > 0)
    ints = LossFunction.Weighted(WeightedConfig().with_weight_function(
        lambda t, v: 1.0 if v > 0 else 0.5)).compute_weights(np.arange(4), np.array([1.0, -1.0, 2.0, 0.0]))
    assert ints.tolist() == [1.0, 0.5, 1.0, 0.5]
    seen = []
    LossFunction.Weighted(WeightedConfig().with_weight_function(lambda t, v: seen.append((t, v)) or 1.0 if v > 0
                                                                else 1.0)).compute_weights(np.arange(5, 7), np.ones(2))
    assert seen == [(5, 1.0), (6, 1.0)] and type(seen[0][0]) is int


def test_weighted_bad_weights_raise():
    loss = LossFunction.Weighted(WeightedConfig().with_weight_function(lambda t, v: -v))
    with pytest.raises(ValueError, match=r"finite weights >= 0.*timestamp 1"):
        loss.compute_weights(np.arange(3), np.array([-1.0, 2.0, 3.0]))
    with pytest.raises(TypeError, match="must return a number"):
        LossFunction.Weighted(WeightedConfig().with_weight_function(lambda t, v: "x" if v > 0 else 1)
                              ).compute_weights(np.arange(2), np.ones(2))
    with pytest.raises(ValueError, match="needs a weight function"):
        LossFunction.Weighted(WeightedConfig())
    with pytest.raises(TypeError, match="weight_function must be a function"):
        WeightedConfig().with_weight_function(3)
    with pytest.raises(ValueError, match="base_loss must be a pointwise or quantile loss"):
        WeightedConfig().with_base_loss(LossFunction.NegativeLogLikelihood)


# ======================================================================== 5. configs, resolve, dicts
@pytest.mark.parametrize("q,match", [
    ([0.0, 0.5], r"quantiles\[0\] must be in \(0, 1\)"),
    ([0.5, 1.0], r"quantiles\[1\] must be in \(0, 1\)"),
    ([0.5, 0.1], "quantiles must be strictly increasing"),
    ([0.5, 0.5], "quantiles must be unique"),
    ([], "quantiles must not be empty"),
])
def test_quantile_config_rejects_bad_quantiles(q, match):
    with pytest.raises(ValueError, match=match):
        QuantileConfig().with_quantiles(q)


def test_quantile_config_rejects_bad_weights():
    with pytest.raises(ValueError, match=r"weights\[1\] must be finite and > 0"):
        QuantileConfig().with_weights([1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="weights has 2 values but quantiles has 3"):
        QuantileConfig().with_weights([1.0, 2.0])
    with pytest.raises(TypeError, match=r"quantiles\[1\] must be a number"):
        QuantileConfig().with_quantiles([0.1, "a"])
    with pytest.raises(TypeError, match="quantiles must be a sequence"):
        QuantileConfig().with_quantiles(0.5)
    with pytest.raises(ValueError, match="delta must be > 0"):
        HuberConfig().with_delta(0.0)
    cfg = QuantileConfig().with_quantiles([0.1, 0.5, 0.9]).with_weights([1.0, 2.0, 1.0])  # the guide's
    assert cfg.quantiles == (0.1, 0.5, 0.9) and cfg.weights == (1.0, 2.0, 1.0)


def test_resolve_and_dict_round_trip():
    assert LossFunction.resolve("MAE") is LossFunction.MAE
    assert LossFunction.resolve("mse") is LossFunction.MSE
    assert LossFunction.resolve("huber") == LossFunction.Huber(HuberConfig())
    assert LossFunction.resolve("quantile").quantiles == (0.1, 0.5, 0.9)
    assert LossFunction.resolve(LossFunction.Huber).delta == 1.0
    assert LossFunction.resolve(LossFunction.Quantile).n_outputs == 3
    with pytest.raises(ValueError, match="loss_function must be one of"):
        LossFunction.resolve("rmse")
    with pytest.raises(TypeError, match="loss_function must be a LossFunction"):
        LossFunction.resolve(3)
    losses = [LossFunction.MAE, LossFunction.MSE, LossFunction.Huber(HuberConfig().with_delta(0.3)),
              LossFunction.Quantile(QuantileConfig().with_quantiles([0.2, 0.5]).with_weights([1.0, 2.0])),
              LossFunction.NegativeLogLikelihood,
              LossFunction.Weighted(WeightedConfig().with_base_loss(LossFunction.MSE).with_weight_function(_recent))]
    import json

    for loss in losses:
        d = json.loads(json.dumps(loss.to_dict()))
        back = LossFunction.from_dict(d)
        assert back == loss and hash(back) == hash(loss)
        assert LossFunction.resolve(d) == loss
        # nested as other configs nest it (the _config registry decodes "__type__")
        from neurodivergent._config import _decode_nested

        assert _decode_nested({"__type__": type(loss).__name__, **d}) == loss
    with pytest.raises(ValueError, match="unknown loss name"):
        LossFunction.from_dict({"name": "nope"})


def test_weighted_lambda_to_dict_restores_a_clear_placeholder():
    loss = LossFunction.Weighted(WeightedConfig().with_weight_function(lambda t, v: 1.0))
    d = loss.to_dict()
    assert d["weight_function"].endswith("<lambda>") and d["base_loss"] == {"name": "mae"}
    back = LossFunction.from_dict(d)
    assert back.base_loss is LossFunction.MAE
    with pytest.raises(ValueError, match="pass it again with WeightedConfig.with_weight_function"):
        back.compute_weights(np.arange(2), np.ones(2))


def test_losses_are_immutable_and_nll_refuses():
    with pytest.raises(AttributeError):
        LossFunction.MAE.name = "x"
    with pytest.raises(TypeError):
        LossFunction()
    nll = LossFunction.NegativeLogLikelihood
    with pytest.raises(ValueError, match="needs a model with a likelihood head"):
        nll.value_and_grad(np.zeros((2, 2)), np.zeros((2, 2)))
    for loss in (LossFunction.MAE, LossFunction.MSE, LossFunction.Huber(), LossFunction.Quantile(), nll):
        assert isinstance(loss, Loss) and loss.defines_label_smoothing is False
    assert isinstance(LossFunction.Huber(), HuberLoss) and isinstance(LossFunction.Quantile(), QuantileLoss)
    assert LossFunction.Quantile().column_suffixes() == ("-q-0.1", "-q-0.5", "-q-0.9")
    assert isinstance(LossFunction.Weighted(WeightedConfig().with_weight_function(_const)), WeightedLoss)


# ======================================================================== 6. kernel argument validation
def _qargs():
    return dict(pred=np.zeros((2, 3, 2)), target=np.zeros((2, 3)), weight=None,
                quantiles=np.array([0.1, 0.9]), quantile_weights=np.ones(2))


@pytest.mark.parametrize("change,exc,match", [
    (dict(pred=[[0.0]]), TypeError, "pred must be a numpy.ndarray"),
    (dict(pred=np.zeros((2, 3, 2), np.int64)), TypeError, "pred must have dtype float32 or float64"),
    (dict(target=np.zeros((2, 3), np.float32)), TypeError, "target has dtype float32"),
    (dict(pred=np.zeros((2, 3, 3))), ValueError, r"pred must have shape target.shape \+ \(Q,\) = \(2, 3, 2\)"),
    (dict(pred=np.zeros((2, 6))), ValueError, "pred must have shape"),
    (dict(target=np.zeros((3, 2))[:, :1]), ValueError, "target must be C-contiguous"),
    (dict(weight=np.ones((2, 2))), ValueError, "weight must have the same shape as target"),
    (dict(weight=np.ones((2, 3), np.float32)), TypeError, "weight has dtype float32"),
    (dict(weight=-np.ones((2, 3))), ValueError, r"weight must be finite and non-negative; weight.flat\[0\]"),
    (dict(weight=np.full((2, 3), np.nan)), ValueError, "weight must be finite and non-negative"),
    (dict(quantiles=np.array([0.1, 1.0])), ValueError, r"quantiles\[1\] must be in \(0, 1\)"),
    (dict(quantiles=np.array([0.9, 0.1])), ValueError, "quantiles must be strictly increasing"),
    (dict(quantiles=np.array([0.5, 0.5])), ValueError, "quantiles must be strictly increasing"),
    (dict(quantiles=np.array([np.nan, 0.5])), ValueError, r"quantiles\[0\] must be in \(0, 1\)"),
    (dict(quantiles=np.zeros(0), quantile_weights=np.zeros(0)), ValueError, "at least one level"),
    (dict(quantiles=np.array([[0.1, 0.9]])), ValueError, "quantiles must be 1-D"),
    (dict(quantiles=[0.1, 0.9]), TypeError, "quantiles must be a numpy.ndarray"),
    (dict(quantile_weights=np.ones(3)), ValueError, r"quantile_weights must have shape \(2,\)"),
    (dict(quantile_weights=np.array([1.0, 0.0])), ValueError, r"quantile_weights\[1\] must be finite and > 0"),
    (dict(quantile_weights=np.array([1.0, np.inf])), ValueError, r"quantile_weights\[1\] must be finite and > 0"),
])
def test_quantile_kernel_rejects_bad_input(change, exc, match):
    a = {**_qargs(), **change}
    with pytest.raises(exc, match=match):
        _core.quantile_loss_forward(a["pred"], a["target"], a["weight"], a["quantiles"], a["quantile_weights"])
    d = np.zeros(np.shape(a["pred"])) if isinstance(a["pred"], np.ndarray) else np.zeros((2, 3, 2))
    with pytest.raises(exc, match=match):
        _core.quantile_loss_backward(d, a["pred"], a["target"], a["weight"], a["quantiles"], a["quantile_weights"], 1.0)


def test_quantile_backward_rejects_bad_output():
    a = _qargs()
    args = (a["pred"], a["target"], None, a["quantiles"], a["quantile_weights"])
    with pytest.raises(ValueError, match="dpred must have the same shape as pred"):
        _core.quantile_loss_backward(np.zeros((2, 3)), *args, 1.0)
    ro = np.zeros((2, 3, 2))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="dpred is read-only"):
        _core.quantile_loss_backward(ro, *args, 1.0)
    with pytest.raises(ValueError, match="dpred overlaps pred"):
        _core.quantile_loss_backward(a["pred"], *args, 1.0)
    with pytest.raises(ValueError, match="scale must be finite"):
        _core.quantile_loss_backward(np.zeros((2, 3, 2)), *args, float("inf"))
    with pytest.raises(TypeError, match="scale must be a real number"):
        _core.quantile_loss_backward(np.zeros((2, 3, 2)), *args, "1")
    with pytest.raises(TypeError, match="dpred has dtype float32"):
        _core.quantile_loss_backward(np.zeros((2, 3, 2), np.float32), *args, 1.0)
    assert re.search("pinball", _core.quantile_loss_forward.__doc__)
