"""Learning-rate schedules (training/schedulers.py) at their boundaries against the closed forms
(tests/reference/schedulers.py), the warmup, the base-rate precedence, validation at the with_* call,
to_dict / from_dict, and (when PyTorch is installed) torch.optim.lr_scheduler's sequences."""
import json

import pytest

from neurodivergent._config import _decode_nested
from neurodivergent.training.schedulers import (
    CosineWithWarmRestartsSchedule,
    LearningRateScheduler,
    SchedulerType,
)
from tests.reference import schedulers as ref

approx = lambda v: pytest.approx(v, rel=1e-13, abs=1e-300)  # noqa: E731


def test_fixed():
    s = LearningRateScheduler.fixed(0.001)
    assert s.scheduler_type is SchedulerType.Fixed and s.name == "fixed"
    for e in (0, 1, 7.5, 1000):
        assert s.lr_at(e) == 0.001


def test_step_decay_boundaries():
    s = LearningRateScheduler.step_decay().with_initial_lr(0.01).with_step_size(30).with_gamma(0.1)
    for e in (0, 1, 29, 29.999, 30, 31, 59, 60, 61, 90, 12.5):
        assert s.lr_at(e) == approx(ref.step_decay(0.01, 30, 0.1, e)), e
    assert s.lr_at(29) == 0.01 and s.lr_at(30) == approx(0.001) and s.lr_at(60) == approx(1e-4)


def test_exponential_decay_is_continuous():
    s = LearningRateScheduler.exponential_decay().with_initial_lr(0.01).with_decay_rate(0.95).with_decay_steps(10)
    for e in (0, 1, 5, 9, 10, 11, 20, 25.5, 100):
        assert s.lr_at(e) == approx(ref.exponential_decay(0.01, 0.95, 10, e)), e
    assert s.lr_at(0) == 0.01 and s.lr_at(10) == approx(0.0095) and s.lr_at(20) == approx(0.01 * 0.95 ** 2)
    assert s.lr_at(5) == approx(0.01 * 0.95 ** 0.5)  # not a staircase


def test_cosine_annealing_boundaries_and_after_t_max():
    s = LearningRateScheduler.cosine_annealing().with_initial_lr(0.01).with_min_lr(1e-6).with_t_max(100)
    for e in (0, 1, 25, 50, 99, 100, 101, 150, 199, 200, 250, 33.3):
        assert s.lr_at(e) == approx(ref.cosine(0.01, 1e-6, 100, e)), e
    assert s.lr_at(0) == 0.01
    assert s.lr_at(50) == approx((0.01 + 1e-6) / 2)
    assert s.lr_at(100) == approx(1e-6)  # t_max: the minimum
    # documented: after t_max the closed form follows the cosine up again (period 2 t_max), as torch's
    assert s.lr_at(101) > s.lr_at(100) and s.lr_at(150) == approx(s.lr_at(50)) and s.lr_at(200) == approx(0.01)


@pytest.mark.parametrize("t_0,t_mult", [(10, 1), (10, 2), (5, 3), (1, 2), (3, 1)])
def test_warm_restarts_boundaries(t_0, t_mult):
    s = (LearningRateScheduler.cosine_with_warm_restarts().with_initial_lr(0.01).with_t_0(t_0).with_t_mult(t_mult)
         .with_min_lr(1e-5))
    restarts = s.restarts(4)
    want, start, length = [], 0, t_0
    for _ in range(4):
        start += length
        length *= t_mult
        want.append(start)
    assert restarts == tuple(want)
    assert restarts[0] == t_0 and restarts[1] == t_0 * (1 + t_mult)
    assert s.lr_at(0) == 0.01
    for r in restarts:
        assert s.lr_at(r) == 0.01, r  # back at the initial rate at every restart
        if r - 1 not in (0,) + restarts:  # inside a cycle just before its end: below the initial rate
            assert s.lr_at(r - 1) < 0.01
    epochs = sorted({e for r in (0,) + restarts for e in (r - 1, r, r + 1, r + 0.5) if e >= 0}
                    | {t_0 / 2, t_0 * (1 + t_mult) - 0.25})
    for e in epochs:
        assert s.lr_at(e) == approx(ref.sgdr(0.01, t_0, t_mult, 1e-5, e)), e


def test_warm_restarts_cycle_mapping():
    s = LearningRateScheduler.cosine_with_warm_restarts().with_t_0(10).with_t_mult(2)
    assert s.cycle(0) == (0, 10) and s.cycle(9.5) == (9.5, 10)
    assert s.cycle(10) == (0, 20) and s.cycle(29) == (19, 20) and s.cycle(30) == (0, 40)
    assert s.cycle(70) == (0, 80) and s.cycle(35.5) == (5.5, 40)
    one = LearningRateScheduler.cosine_with_warm_restarts().with_t_0(7)
    assert one.cycle(0) == (0, 7) and one.cycle(7) == (0, 7) and one.cycle(7 * 1000 + 3) == (3, 7)
    # the guide's example (no min_lr: 0)
    g = LearningRateScheduler.cosine_with_warm_restarts().with_initial_lr(0.01).with_t_0(10).with_t_mult(2)
    assert g.lr_at(10) == 0.01 and g.lr_at(20) == approx(0.005) and g.lr_at(30) == 0.01


@pytest.mark.parametrize("make", [
    lambda: LearningRateScheduler.fixed(0.01),
    lambda: LearningRateScheduler.step_decay().with_initial_lr(0.01).with_step_size(2),
    lambda: LearningRateScheduler.cosine_annealing().with_initial_lr(0.01).with_t_max(5),
    lambda: LearningRateScheduler.cosine_with_warm_restarts().with_initial_lr(0.01).with_t_0(3),
])
def test_warmup_is_linear_over_steps_in_front(make):
    base = make()
    s = base.with_warmup_steps(4)
    assert s.warmup_steps == 4 and base.warmup_steps == 0  # immutable
    for epoch in (0, 1, 3):
        lr = base.lr_at(epoch)
        assert s.lr_at(epoch, 0) == approx(lr / 4)  # lr / n at step 0
        assert s.lr_at(epoch, 1) == approx(lr * 2 / 4)
        assert s.lr_at(epoch, 3) == approx(lr)  # warmup end (step n - 1): the full rate
        assert s.lr_at(epoch, 4) == lr and s.lr_at(epoch, 10_000) == lr
        assert s.lr_at(epoch) == lr  # step None: no warmup factor
        for step in range(6):
            assert s.lr_at(epoch, step) == approx(ref.warmup(lr, step, 4))
        assert base.lr_at(epoch, 0) == lr  # no warmup configured
    assert s.warmup_factor(1) == 0.5 and s.warmup_factor(None) == 1.0


def test_base_rate_precedence():
    s = LearningRateScheduler.step_decay().with_step_size(1).with_gamma(0.5)
    with pytest.raises(ValueError, match="no initial_lr and no base rate"):
        s.lr_at(0)
    assert s.with_base_lr(0.1).lr_at(1) == approx(0.05)
    assert s.lr_at(1, base_lr=0.2) == approx(0.1)
    explicit = s.with_initial_lr(0.4).with_base_lr(0.1)
    assert explicit.lr_at(1) == approx(0.2) and explicit.lr_at(1, base_lr=0.1) == approx(0.2)
    assert LearningRateScheduler.fixed().with_base_lr(0.003).lr_at(5) == 0.003
    assert s.effective_initial_lr(0.7) == 0.7


def test_lr_at_is_pure():
    s = LearningRateScheduler.cosine_with_warm_restarts().with_initial_lr(0.01).with_t_0(4).with_t_mult(2)
    seq = [s.lr_at(e) for e in range(30)]
    assert [s.lr_at(e) for e in reversed(range(30))][::-1] == seq
    assert [s.lr_at(e) for e in range(30)] == seq


@pytest.mark.parametrize("call,exc,match", [
    (lambda: LearningRateScheduler.fixed(0.0), ValueError, "initial_lr must be > 0"),
    (lambda: LearningRateScheduler.fixed(-1e-3), ValueError, "initial_lr must be > 0"),
    (lambda: LearningRateScheduler.step_decay().with_step_size(0), ValueError, "step_size must be >= 1"),
    (lambda: LearningRateScheduler.step_decay().with_step_size(2.5), TypeError, "step_size must be an int"),
    (lambda: LearningRateScheduler.step_decay().with_gamma(0.0), ValueError, "gamma must be > 0"),
    (lambda: LearningRateScheduler.step_decay().with_gamma(1.5), ValueError, r"gamma must be in \(0, 1\]"),
    (lambda: LearningRateScheduler.step_decay().with_initial_lr(float("nan")), ValueError, "initial_lr must be finite"),
    (lambda: LearningRateScheduler.exponential_decay().with_decay_rate(-0.5), ValueError, "decay_rate must be > 0"),
    (lambda: LearningRateScheduler.exponential_decay().with_decay_steps(0), ValueError, "decay_steps must be >= 1"),
    (lambda: LearningRateScheduler.cosine_annealing().with_t_max(0), ValueError, "t_max must be >= 1"),
    (lambda: LearningRateScheduler.cosine_annealing().with_min_lr(-1e-6), ValueError, "min_lr must be >= 0"),
    (lambda: LearningRateScheduler.cosine_annealing().with_initial_lr(1e-3).with_min_lr(1e-2), ValueError,
     r"min_lr \(0.01\) must be <= initial_lr"),
    (lambda: LearningRateScheduler.cosine_with_warm_restarts().with_t_0(0), ValueError, "t_0 must be >= 1"),
    (lambda: LearningRateScheduler.cosine_with_warm_restarts().with_t_mult(0), ValueError, "t_mult must be >= 1"),
    (lambda: LearningRateScheduler.cosine_with_warm_restarts().with_t_mult(1.5), TypeError, "t_mult must be an int"),
    (lambda: LearningRateScheduler.cosine_with_warm_restarts().with_warmup_steps(-1), ValueError,
     "warmup_steps must be >= 0"),
    (lambda: LearningRateScheduler.fixed().with_base_lr(0), ValueError, "base_lr must be > 0"),
    (lambda: LearningRateScheduler.fixed(0.1).lr_at(-1), ValueError, "epoch must be finite and >= 0"),
    (lambda: LearningRateScheduler.fixed(0.1).lr_at("3"), TypeError, "epoch must be a number"),
    (lambda: LearningRateScheduler.fixed(0.1).lr_at(0, -1), ValueError, "step must be >= 0"),
    (lambda: LearningRateScheduler.fixed(0.1).lr_at(0, 1.5), TypeError, "step must be an int"),
    (lambda: LearningRateScheduler(), TypeError, "namespace"),
])
def test_invalid_values_raise_naming_the_field(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_dict_round_trip():
    scheds = [
        LearningRateScheduler.fixed(0.001),
        LearningRateScheduler.fixed(),
        LearningRateScheduler.step_decay().with_initial_lr(0.01).with_step_size(30).with_gamma(0.1),
        LearningRateScheduler.exponential_decay().with_initial_lr(0.01).with_decay_rate(0.95).with_decay_steps(10),
        LearningRateScheduler.cosine_annealing().with_initial_lr(0.01).with_min_lr(1e-6).with_t_max(100)
        .with_warmup_steps(50),
        LearningRateScheduler.cosine_with_warm_restarts().with_initial_lr(0.01).with_t_0(10).with_t_mult(2)
        .with_base_lr(0.1),
    ]
    for s in scheds:
        d = json.loads(json.dumps(s.to_dict()))
        assert d["type"] == s.name
        back = LearningRateScheduler.from_dict(d)
        assert back == s and type(back) is type(s)
        assert _decode_nested({"__type__": type(s).__name__, **d}) == s  # nested in TrainingConfig's dict
        assert LearningRateScheduler.from_dict({"__type__": type(s).__name__, **{k: v for k, v in d.items()
                                                                              if k != "type"}}) == s
    with pytest.raises(ValueError, match="unknown schedule type"):
        LearningRateScheduler.from_dict({"type": "linear"})
    with pytest.raises(ValueError, match="got a dict of type"):
        CosineWithWarmRestartsSchedule.from_dict({"type": "fixed"})
    assert LearningRateScheduler.is_schedule(scheds[0]) and not LearningRateScheduler.is_schedule(0.1)


# ======================================================================== PyTorch's sequences
def _torch_lrs(make_sched, lr0, n, epochs=None):
    torch = pytest.importorskip("torch")
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr0)
    sch = make_sched(torch, opt)
    out = [opt.param_groups[0]["lr"]]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(1, n):
            opt.step()
            if epochs is None:
                sch.step()
            else:
                sch.step(epochs[i])
            out.append(opt.param_groups[0]["lr"])
    return out


def _close_seq(ours, theirs, rtol=1e-9, atol=1e-15):
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert abs(a - b) <= atol + rtol * abs(b), f"epoch {i}: ours {a!r} torch {b!r}"


def test_matches_torch_step_lr():
    s = LearningRateScheduler.step_decay().with_initial_lr(0.01).with_step_size(7).with_gamma(0.3)
    theirs = _torch_lrs(lambda t, o: t.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.3), 0.01, 50)
    _close_seq([s.lr_at(e) for e in range(50)], theirs)


def test_matches_torch_exponential_lr():
    s = LearningRateScheduler.exponential_decay().with_initial_lr(0.01).with_decay_rate(0.9).with_decay_steps(1)
    theirs = _torch_lrs(lambda t, o: t.optim.lr_scheduler.ExponentialLR(o, gamma=0.9), 0.01, 60)
    _close_seq([s.lr_at(e) for e in range(60)], theirs)


@pytest.mark.parametrize("min_lr", [0.0, 1e-4])
def test_matches_torch_cosine_annealing_lr(min_lr):
    s = LearningRateScheduler.cosine_annealing().with_initial_lr(0.01).with_min_lr(min_lr).with_t_max(20)
    theirs = _torch_lrs(lambda t, o: t.optim.lr_scheduler.CosineAnnealingLR(o, T_max=20, eta_min=min_lr), 0.01, 70)
    # torch's step() uses a recursive form of the same closed form (rounding differences only); 70 epochs
    # cover t_max, the rise after it and a second descent
    _close_seq([s.lr_at(e) for e in range(70)], theirs, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("t_0,t_mult", [(5, 1), (3, 2), (2, 3), (1, 2)])
def test_matches_torch_cosine_warm_restarts(t_0, t_mult):
    s = (LearningRateScheduler.cosine_with_warm_restarts().with_initial_lr(0.01).with_t_0(t_0).with_t_mult(t_mult)
         .with_min_lr(1e-5))
    make = lambda t, o: t.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=t_0, T_mult=t_mult,  # noqa: E731
                                                                         eta_min=1e-5)
    theirs = _torch_lrs(make, 0.01, 60)
    _close_seq([s.lr_at(e) for e in range(60)], theirs)
    # fractional epochs through torch's step(epoch) (away from exact restarts, where its log() may round)
    epochs = [0.0] + [k * 0.37 + 0.05 for k in range(1, 80)]
    restarts = set(s.restarts(8))
    epochs = [e for e in epochs if all(abs(e - r) > 1e-6 for r in restarts)]
    theirs = _torch_lrs(make, 0.01, len(epochs), epochs)
    _close_seq([s.lr_at(e) for e in epochs], theirs)
