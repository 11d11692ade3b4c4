"""Optimizers (training/optimizers.py, csrc/optim.cpp): every optimizer and option against the float64
reference of its documented formula (tests/reference/optimizers.py), state round trips, validation."""
import itertools
import json
import pickle

import numpy as np
import pytest

from neurodivergent import _core
from neurodivergent._config import _decode_nested
from neurodivergent.training.optimizers import (AdamConfig, AdamWConfig, BoundOptimizer, Optimizer, OptimizerSpec,
                                                RMSpropConfig, SGDConfig)
from tests.reference import optimizers as R


def _cases():
    out = []
    for wd, ams in itertools.product([0.0, 0.1], [False, True]):
        cfg = AdamConfig().with_learning_rate(1e-2).with_weight_decay(wd).with_amsgrad(ams)
        out.append((f"adam-wd{wd}-ams{ams}", Optimizer.Adam(cfg),
                    lambda n, wd=wd, ams=ams: R.Adam(n, weight_decay=wd, amsgrad=ams)))
    cfg = AdamConfig().with_betas((0.5, 0.9)).with_eps(1e-6).with_learning_rate(3e-3)
    out.append(("adam-betas-eps", Optimizer.Adam(cfg), lambda n: R.Adam(n, beta1=0.5, beta2=0.9, eps=1e-6)))
    for dec, ams, wd in itertools.product([True, False], [False, True], [0.0, 0.05]):
        cfg = (AdamWConfig().with_learning_rate(1e-2).with_decoupled_weight_decay(dec).with_amsgrad(ams)
               .with_weight_decay(wd))
        out.append((f"adamw-dec{dec}-ams{ams}-wd{wd}", Optimizer.AdamW(cfg),
                    lambda n, dec=dec, ams=ams, wd=wd: R.Adam(n, weight_decay=wd, amsgrad=ams, decoupled=dec)))
    cfg = AdamWConfig().with_beta1(0.8).with_beta2(0.95).with_learning_rate(1e-2)
    out.append(("adamw-betas", Optimizer.AdamW(cfg),
                lambda n: R.Adam(n, beta1=0.8, beta2=0.95, weight_decay=0.01, decoupled=True)))
    for mom, damp, nest, wd in itertools.product([0.0, 0.9], [0.0, 0.3], [False, True], [0.0, 1e-2]):
        if nest and (mom == 0 or damp != 0):
            continue
        cfg = (SGDConfig().with_learning_rate(1e-2).with_momentum(mom).with_dampening(damp).with_nesterov(nest)
               .with_weight_decay(wd))
        out.append((f"sgd-mom{mom}-damp{damp}-nest{nest}-wd{wd}", Optimizer.SGD(cfg),
                    lambda n, mom=mom, damp=damp, nest=nest, wd=wd: R.SGD(n, momentum=mom, dampening=damp,
                                                                           nesterov=nest, weight_decay=wd)))
    for cen, mom, wd in itertools.product([False, True], [0.0, 0.9], [0.0, 1e-2]):
        cfg = RMSpropConfig().with_learning_rate(1e-3).with_centered(cen).with_momentum(mom).with_weight_decay(wd)
        out.append((f"rmsprop-cen{cen}-mom{mom}-wd{wd}", Optimizer.RMSprop(cfg),
                    lambda n, cen=cen, mom=mom, wd=wd: R.RMSprop(n, centered=cen, momentum=mom, weight_decay=wd)))
    cfg = RMSpropConfig().with_alpha(0.9).with_eps(1e-4).with_learning_rate(1e-3)
    out.append(("rmsprop-alpha-eps", Optimizer.RMSprop(cfg), lambda n: R.RMSprop(n, alpha=0.9, eps=1e-4)))
    return out


CASES = _cases()
IDS = [c[0] for c in CASES]


def _grad(rng, n, t, dt):
    return (rng.standard_normal(n) * (0.5 + t % 3)).astype(dt)


def _lr(spec, t):
    """None (the config's rate) on even steps, an override on odd steps."""
    return None if t % 2 == 0 else spec.learning_rate * (0.5 + 0.01 * t)


@pytest.mark.parametrize("dt,tol", [(np.float32, 1e-5), (np.float64, 1e-12)], ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_documented_formula_over_200_steps(case, dt, tol):
    name, spec, make_ref = case
    n = 257  # odd: exercises the vector loops' tails
    rng = np.random.default_rng(7)
    p0 = rng.standard_normal(n).astype(dt)
    p = p0.copy()
    opt = spec.bind(p)
    ref = make_ref(n)
    rp = p0.astype(np.float64)
    for t in range(200):
        g = _grad(rng, n, t, dt)
        lr = _lr(spec, t)
        opt.step(g, lr=lr)
        rp = ref.step(rp, g, spec.learning_rate if lr is None else lr)
    assert opt.step_count == 200
    assert np.all(np.isfinite(p))
    err = np.max(np.abs(p - rp)) / np.max(np.abs(rp))
    assert err < tol, f"{name}: relative error {err:.3g}"
    assert np.max(np.abs(rp - p0)) > 100 * tol  # the parameters did move


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_state_dict_round_trip_is_bitwise(case):
    name, spec, _ = case
    n = 101
    rng = np.random.default_rng(3)
    grads = [_grad(rng, n, t, np.float32) for t in range(40)]
    p = rng.standard_normal(n).astype(np.float32)
    opt = spec.bind(p)
    for g in grads[:20]:
        opt.step(g)
    saved_p, state = p.copy(), opt.state_dict()
    assert state["step_count"] == 20
    for t, g in enumerate(grads[20:]):
        opt.step(g, lr=_lr(spec, t))
    # state_dict holds copies: stepping on did not change it
    q = saved_p.copy()
    opt2 = spec.bind(q)
    opt2.load_state_dict(state)
    assert opt2.step_count == 20
    for t, g in enumerate(grads[20:]):
        opt2.step(g, lr=_lr(spec, t))
    assert np.array_equal(p, q)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1.keys() == s2.keys()
    for k in s1:
        assert np.array_equal(s1[k], s2[k]), k


def test_state_keys():
    p = np.zeros(4, np.float32)
    assert set(Optimizer.Adam().bind(p).state_dict()) == {"step_count", "m", "v"}
    assert set(Optimizer.AdamW(AdamWConfig().with_amsgrad(True)).bind(p).state_dict()) == {"step_count", "m", "v",
                                                                                            "max_v"}
    assert set(Optimizer.SGD().bind(p).state_dict()) == {"step_count"}
    assert set(Optimizer.SGD(SGDConfig().with_momentum(0.9)).bind(p).state_dict()) == {"step_count",
                                                                                        "momentum_buffer"}
    cfg = RMSpropConfig().with_centered(True).with_momentum(0.5)
    assert set(Optimizer.RMSprop(cfg).bind(p).state_dict()) == {"step_count", "square_avg", "grad_avg",
                                                                "momentum_buffer"}
    st = Optimizer.Adam().bind(p).state_dict()
    assert st["m"].dtype == np.float32 and st["m"].shape == (4,)


def test_load_state_dict_refuses_mismatches_and_changes_nothing():
    p = np.zeros(10, np.float32)
    opt = Optimizer.Adam().bind(p)
    opt.step(np.ones(10, np.float32))
    before = opt.state_dict()
    other = Optimizer.Adam().bind(np.zeros(12, np.float32))
    with pytest.raises(ValueError, match=r"state_dict\['m'\] has shape \(12,\).*10 elements"):
        opt.load_state_dict(other.state_dict())
    with pytest.raises(ValueError, match=r"missing \['m', 'v'\]; unexpected \['momentum_buffer'\]"):
        opt.load_state_dict(Optimizer.SGD(SGDConfig().with_momentum(0.9)).bind(np.zeros(10, np.float32)).state_dict())
    with pytest.raises(ValueError, match=r"unexpected \['max_v'\]"):
        opt.load_state_dict(Optimizer.Adam(AdamConfig().with_amsgrad(True)).bind(p.copy()).state_dict())
    bad = dict(before, step_count=-1)
    with pytest.raises(ValueError, match="step_count"):
        opt.load_state_dict(bad)
    with pytest.raises(TypeError, match=r"state_dict\['v'\] must be a numpy.ndarray"):
        opt.load_state_dict(dict(before, v=[0.0] * 10))
    with pytest.raises(TypeError, match="must be a float array"):
        opt.load_state_dict(dict(before, v=np.zeros(10, np.int64)))
    with pytest.raises(TypeError, match="must be a dict"):
        opt.load_state_dict([1, 2])
    after = opt.state_dict()
    assert after["step_count"] == 1
    for k in ("m", "v"):
        assert np.array_equal(after[k], before[k])
    # a numpy integer / 0-d array step count (as a checkpoint reader may return) is accepted
    opt.load_state_dict(dict(before, step_count=np.array(1, np.int64)))
    assert opt.step_count == 1


@pytest.mark.parametrize("make,field,value,exc", [
    (lambda: AdamConfig().with_learning_rate(0.0), "learning_rate", None, ValueError),
    (lambda: AdamConfig().with_learning_rate(float("nan")), "learning_rate", None, ValueError),
    (lambda: AdamConfig().with_beta1(1.0), "beta1", None, ValueError),
    (lambda: AdamConfig().with_beta2(-0.1), "beta2", None, ValueError),
    (lambda: AdamConfig().with_betas((0.9,)), "betas", None, TypeError),
    (lambda: AdamConfig().with_eps(0.0), "eps", None, ValueError),
    (lambda: AdamConfig().with_weight_decay(-1e-5), "weight_decay", None, ValueError),
    (lambda: AdamConfig().with_amsgrad(1), "amsgrad", None, TypeError),
    (lambda: AdamWConfig().with_betas((0.9, 1.5)), "betas", None, ValueError),
    (lambda: AdamWConfig().with_beta1(1.0), "beta1", None, ValueError),
    (lambda: AdamWConfig().with_beta2("0.9"), "beta2", None, TypeError),
    (lambda: AdamWConfig().with_weight_decay(float("inf")), "weight_decay", None, ValueError),
    (lambda: AdamWConfig().with_decoupled_weight_decay("yes"), "decoupled_weight_decay", None, TypeError),
    (lambda: AdamWConfig().with_eps(-1.0), "eps", None, ValueError),
    (lambda: SGDConfig().with_learning_rate(-0.1), "learning_rate", None, ValueError),
    (lambda: SGDConfig().with_momentum(1.0), "momentum", None, ValueError),
    (lambda: SGDConfig().with_dampening(1.5), "dampening", None, ValueError),
    (lambda: SGDConfig().with_nesterov(None), "nesterov", None, TypeError),
    (lambda: SGDConfig().with_weight_decay(-1.0), "weight_decay", None, ValueError),
    (lambda: RMSpropConfig().with_alpha(1.0), "alpha", None, ValueError),
    (lambda: RMSpropConfig().with_eps(0.0), "eps", None, ValueError),
    (lambda: RMSpropConfig().with_momentum(-0.5), "momentum", None, ValueError),
    (lambda: RMSpropConfig().with_centered(0), "centered", None, TypeError),
    (lambda: RMSpropConfig().with_weight_decay(True), "weight_decay", None, TypeError),
    (lambda: RMSpropConfig().with_learning_rate("0.01"), "learning_rate", None, TypeError),
])
def test_invalid_config_raises_at_with_call_naming_field(make, field, value, exc):
    with pytest.raises(exc, match=field):
        make()


def test_nesterov_needs_momentum_and_no_dampening_checked_at_spec_time():
    cfg = SGDConfig().with_nesterov(True)  # builders may come in any order...
    with pytest.raises(ValueError, match="nesterov=True requires momentum > 0 and dampening == 0"):
        Optimizer.SGD(cfg)  # ...the combination is checked when the spec is made
    with pytest.raises(ValueError, match="nesterov"):
        Optimizer.SGD(cfg.with_momentum(0.9).with_dampening(0.1))
    spec = Optimizer.SGD(cfg.with_momentum(0.9))
    assert spec.config.nesterov and spec.config.momentum == 0.9
    with pytest.raises(ValueError, match="nesterov"):
        Optimizer.from_dict({"name": "SGD", "config": dict(spec.config.to_dict(), momentum=0.0)})
    with pytest.raises(ValueError, match="nesterov"):
        _core.sgd_step(np.zeros(3), np.zeros(3), None, 0.1, 0.0, 0.0, 0.0, True, True)


def test_defaults_follow_torch():
    assert AdamConfig().learning_rate == 1e-3 and AdamConfig().betas == (0.9, 0.999)
    assert AdamConfig().eps == 1e-8 and AdamConfig().weight_decay == 0.0 and not AdamConfig().amsgrad
    w = AdamWConfig()
    assert w.weight_decay == 0.01 and w.decoupled_weight_decay and w.betas == (0.9, 0.999)
    assert (w.beta1, w.beta2) == (0.9, 0.999)
    assert RMSpropConfig().learning_rate == 0.01 and RMSpropConfig().alpha == 0.99
    assert SGDConfig().learning_rate == 1e-3 and SGDConfig().momentum == 0.0


@pytest.mark.parametrize("params,exc,msg", [
    ([0.0, 1.0], TypeError, "params must be a numpy.ndarray"),
    (np.zeros(3, np.int32), TypeError, "params must have dtype float32 or float64"),
    (np.zeros(3, np.float16), TypeError, "params must have dtype float32 or float64"),
    (np.zeros((2, 3), np.float32), ValueError, "params must be 1-D"),
    (np.zeros(6, np.float32)[::2], ValueError, "params must be C-contiguous"),
])
def test_bind_rejects_bad_params(params, exc, msg):
    with pytest.raises(exc, match=msg):
        Optimizer.Adam().bind(params)


def test_bind_rejects_read_only_params():
    p = np.zeros(3, np.float32)
    p.setflags(write=False)
    with pytest.raises(ValueError, match="params is read-only"):
        Optimizer.SGD().bind(p)


@pytest.mark.parametrize("name", ["Adam", "AdamW", "SGD", "RMSprop"])
def test_step_rejects_bad_grads_and_does_not_count_them(name):
    f32 = np.float32
    p = np.ones(6, f32)
    spec = getattr(Optimizer, name)()
    if name == "SGD":
        spec = Optimizer.SGD(SGDConfig().with_momentum(0.5))
    opt = spec.bind(p)
    bad = [
        (np.ones(6, np.float64), TypeError, "grad has dtype float64 but param has dtype float32"),
        (np.ones(5, f32), ValueError, r"grad must have the same shape as param \(6,\)"),
        (np.ones(12, f32)[::2], ValueError, "grad must be C-contiguous"),
        ([1.0] * 6, TypeError, "grad must be a numpy.ndarray"),
        (p, ValueError, "overlaps"),
    ]
    for g, exc, msg in bad:
        with pytest.raises(exc, match=msg):
            opt.step(g)
    for lr, exc in [(-1.0, ValueError), (float("nan"), ValueError), (float("inf"), ValueError), ("0.1", TypeError),
                    (True, TypeError)]:
        with pytest.raises(exc, match="lr"):
            opt.step(np.ones(6, f32), lr=lr)
    assert opt.step_count == 0
    assert np.array_equal(p, np.ones(6, f32))
    assert all(np.all(v == 0) for k, v in opt.state_dict().items() if k != "step_count")
    ro = np.ones(6, f32)
    ro.setflags(write=False)
    opt.step(ro)  # a read-only gradient is fine: it is only read
    assert opt.step_count == 1
    opt.step(np.ones(6, f32), lr=0.0)  # lr 0 is allowed per step (a schedule may reach it)


def test_lr_override_is_per_step_only():
    p, q = np.ones(5), np.ones(5)
    a = Optimizer.SGD(SGDConfig().with_learning_rate(0.1)).bind(p)
    b = Optimizer.SGD(SGDConfig().with_learning_rate(0.1)).bind(q)
    g = np.full(5, 2.0)
    a.step(g, lr=0.5)
    b.step(g)
    assert np.allclose(p, 1 - 0.5 * 2) and np.allclose(q, 1 - 0.1 * 2)
    a.step(g)
    assert np.allclose(p, 0.0 - 0.1 * 2)
    assert a.learning_rate == 0.1


def test_bitwise_identical_for_any_thread_count(threads):
    n = 300_001  # large enough to run in parallel
    rng = np.random.default_rng(5)
    grads = [rng.standard_normal(n).astype(np.float32) for _ in range(3)]
    specs = [Optimizer.AdamW(AdamWConfig().with_amsgrad(True)),
             Optimizer.SGD(SGDConfig().with_momentum(0.9).with_nesterov(True).with_weight_decay(1e-3)),
             Optimizer.RMSprop(RMSpropConfig().with_centered(True).with_momentum(0.9))]
    for spec in specs:
        out = []
        for nt in (1, 2, 3):
            threads.set_num_threads(nt)
            p = np.linspace(-1, 1, n, dtype=np.float32)
            opt = spec.bind(p)
            for g in grads:
                opt.step(g)
            out.append(p)
        assert np.array_equal(out[0], out[1]) and np.array_equal(out[0], out[2]), spec.name


def test_adam_step_ex_without_amsgrad_is_adam_step():
    rng = np.random.default_rng(0)
    n = 1000
    p1 = rng.standard_normal(n).astype(np.float32)
    p2, m1, v1 = p1.copy(), np.zeros(n, np.float32), np.zeros(n, np.float32)
    m2, v2 = m1.copy(), v1.copy()
    for t in range(1, 6):
        g = rng.standard_normal(n).astype(np.float32)
        _core.adam_step(p1, g, m1, v1, t, 1e-2, 0.9, 0.999, 1e-8, 0.1, True)
        _core.adam_step_ex(p2, g, m2, v2, None, t, 1e-2, 0.9, 0.999, 1e-8, 0.1, True)
    assert np.array_equal(p1, p2) and np.array_equal(m1, m2) and np.array_equal(v1, v2)


def test_kernel_bindings_validate_state_arrays():
    z = np.zeros
    with pytest.raises(ValueError, match="max_v must have the same shape as param"):
        _core.adam_step_ex(z(3), z(3), z(3), z(3), z(4), 1, 0.1, 0.9, 0.99, 1e-8, 0.0, False)
    m = z(3)
    with pytest.raises(ValueError, match="v overlaps m"):
        _core.adam_step_ex(z(3), z(3), m, m, None, 1, 0.1, 0.9, 0.99, 1e-8, 0.0, False)
    with pytest.raises(TypeError, match="decoupled must be True or False"):
        _core.adam_step_ex(z(3), z(3), z(3), z(3), None, 1, 0.1, 0.9, 0.99, 1e-8, 0.0, 1)
    with pytest.raises(ValueError, match="momentum_buffer is required"):
        _core.sgd_step(z(3), z(3), None, 0.1, 0.9, 0.0, 0.0, False, True)
    with pytest.raises(ValueError, match="momentum_buffer must be None"):
        _core.sgd_step(z(3), z(3), z(3), 0.1, 0.0, 0.0, 0.0, False, True)
    with pytest.raises(ValueError, match="alpha must be in"):
        _core.rmsprop_step(z(3), z(3), z(3), None, None, 0.1, 1.0, 1e-8, 0.0, 0.0)
    ro = z(3)
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="square_avg is read-only"):
        _core.rmsprop_step(z(3), z(3), ro, None, None, 0.1, 0.9, 1e-8, 0.0, 0.0)
    src = np.arange(100000, dtype=np.float32)
    dst = np.empty_like(src)
    _core.copy_into(dst, src)
    assert np.array_equal(dst, src)
    with pytest.raises(ValueError, match="src must have the same shape as dst"):
        _core.copy_into(z(3), z(4))


def test_amsgrad_propagates_nan_like_torch_maximum():
    p = np.zeros(2, np.float32)
    opt = Optimizer.Adam(AdamConfig().with_amsgrad(True)).bind(p)
    opt.step(np.array([np.nan, 1.0], np.float32))
    st = opt.state_dict()
    assert np.isnan(st["max_v"][0]) and np.isnan(p[0]) and np.isfinite(p[1])


def test_spec_api_resolve_and_serialisation():
    assert Optimizer.names() == ("Adam", "AdamW", "SGD", "RMSprop")
    spec = Optimizer.AdamW(AdamWConfig().with_weight_decay(0.02).with_beta2(0.98))
    assert isinstance(spec, OptimizerSpec) and spec.name == "AdamW" and spec.learning_rate == 1e-3
    with pytest.raises(dataclass_frozen_error()):
        spec.name = "SGD"
    d = spec.to_dict()
    assert Optimizer.from_dict(json.loads(json.dumps(d))) == spec
    assert Optimizer.from_dict(d).config.betas == (0.9, 0.98)
    assert _decode_nested({"__type__": "OptimizerSpec", **d}) == spec  # nested inside another config
    assert Optimizer.from_dict({"name": "AdamW", "config": spec.config}) == spec  # config already decoded
    with pytest.raises(TypeError, match="'config' must be a dict"):
        Optimizer.from_dict({"name": "AdamW", "config": 3})
    assert Optimizer.resolve(spec) is spec
    assert Optimizer.resolve(Optimizer.AdamW) == Optimizer.AdamW(AdamWConfig())
    assert Optimizer.resolve("rmsprop") == Optimizer.RMSprop()
    assert Optimizer.resolve(None) == Optimizer.Adam()
    assert repr(Optimizer.SGD) == "Optimizer.SGD"
    assert pickle.loads(pickle.dumps(Optimizer.SGD)) is Optimizer.SGD
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert spec.with_learning_rate(0.5).learning_rate == 0.5 and spec.learning_rate == 1e-3
    with pytest.raises(TypeError, match=r"pass Optimizer.Adam\(AdamConfig"):
        Optimizer.resolve(AdamConfig())
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        Optimizer.resolve("lbfgs")
    with pytest.raises(TypeError, match="optimizer must be"):
        Optimizer.resolve(3)
    with pytest.raises(TypeError, match="Optimizer.SGD needs a SGDConfig, got AdamConfig"):
        Optimizer.SGD(AdamConfig())
    with pytest.raises(ValueError, match="unknown optimizer"):
        Optimizer.from_dict({"name": "Nadam", "config": {}})
    with pytest.raises(ValueError, match="unknown AdamConfig fields: foo"):
        Optimizer.from_dict({"name": "Adam", "config": {"foo": 1}})
    opt = spec.bind(np.zeros(3, np.float32))
    assert isinstance(opt, BoundOptimizer) and opt.spec is spec and opt.name == "AdamW"
    assert "AdamW on 3 float32 params" in repr(opt)
    assert AdamConfig().with_betas([0.8, 0.9]).beta1 == 0.8


def dataclass_frozen_error():
    import dataclasses
    return dataclasses.FrozenInstanceError


def test_torch_optim_on_the_same_gradients():
    torch = pytest.importorskip("torch")
    n, steps = 64, 60

    def torch_opt(spec, t):
        c = spec.config
        if spec.name == "Adam" or (spec.name == "AdamW" and not c.decoupled_weight_decay):
            return torch.optim.Adam([t], lr=c.learning_rate, betas=c.betas, eps=c.eps,
                                    weight_decay=c.weight_decay, amsgrad=c.amsgrad, foreach=False)
        if spec.name == "AdamW":
            return torch.optim.AdamW([t], lr=c.learning_rate, betas=c.betas, eps=c.eps,
                                     weight_decay=c.weight_decay, amsgrad=c.amsgrad, foreach=False)
        if spec.name == "SGD":
            return torch.optim.SGD([t], lr=c.learning_rate, momentum=c.momentum, dampening=c.dampening,
                                   weight_decay=c.weight_decay, nesterov=c.nesterov, foreach=False)
        return torch.optim.RMSprop([t], lr=c.learning_rate, alpha=c.alpha, eps=c.eps, weight_decay=c.weight_decay,
                                   momentum=c.momentum, centered=c.centered, foreach=False)

    for name, spec, _ in CASES:
        rng = np.random.default_rng(11)
        p = rng.standard_normal(n)
        t = torch.tensor(p.copy(), dtype=torch.float64, requires_grad=True)
        topt = torch_opt(spec, t)
        opt = spec.bind(p)
        for k in range(steps):
            g = _grad(rng, n, k, np.float64)
            lr = _lr(spec, k)
            opt.step(g, lr=lr)
            for group in topt.param_groups:
                group["lr"] = spec.learning_rate if lr is None else lr
            t.grad = torch.tensor(g)
            topt.step()
        tp = t.detach().numpy()
        assert np.max(np.abs(p - tp)) <= 1e-12 * np.max(np.abs(tp)), name
