import numpy as np
import pytest

from neurodivergent.nn import ParameterBuffer, Tape
from neurodivergent.nn import layers


def test_parameter_buffer_views_share_the_flat_buffer():
    pb = ParameterBuffer([("w", (3, 2)), ("b", (3,))])
    assert pb.size == 9 and pb.data.shape == (9,)
    pb["w"][...] = 1.0
    pb.grad_of("b")[...] = 2.0
    assert pb.data[:6].tolist() == [1.0] * 6 and pb.grad[6:].tolist() == [2.0] * 3
    pb.zero_grad()
    assert not pb.grad.any()


def test_parameter_buffer_state_dict_checks():
    pb = ParameterBuffer([("w", (2, 2))])
    with pytest.raises(ValueError, match="shape"):
        pb.load_state_dict({"w": np.zeros((3, 2))})
    with pytest.raises(ValueError, match="missing"):
        pb.load_state_dict({})
    with pytest.raises(ValueError, match="NaN"):
        pb.load_state_dict({"w": np.full((2, 2), np.nan)})
    with pytest.raises(ValueError, match="duplicate"):
        ParameterBuffer([("a", (1,)), ("a", (2,))])


def test_two_layer_network_gradient_matches_finite_differences():
    """The tape + linear/activation ops give the exact gradient of a small network (float64)."""
    rng = np.random.default_rng(0)
    pb = ParameterBuffer([("w1", (5, 4)), ("b1", (5,)), ("w2", (3, 5)), ("b2", (3,))], dtype=np.float64)
    pb.data[...] = rng.normal(size=pb.size)
    x = rng.normal(size=(6, 4))
    target = rng.normal(size=(6, 3))

    def loss_and_grad():
        tape = Tape()
        h = layers.linear(tape, pb, tape.var(x), "w1", "b1")
        h = layers.activation(tape, "tanh", h)
        y = layers.linear(tape, pb, h, "w2", "b2")
        r = y.data - target
        pb.zero_grad()
        tape.backward(y, r)  # d(0.5*sum r^2)/dy
        return 0.5 * float((r ** 2).sum()), pb.grad.copy()

    _, g = loss_and_grad()
    eps = 1e-6
    fd = np.empty_like(g)
    for i in range(pb.size):
        old = pb.data[i]
        pb.data[i] = old + eps; lp, _ = loss_and_grad()
        pb.data[i] = old - eps; lm, _ = loss_and_grad()
        pb.data[i] = old
        fd[i] = (lp - lm) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)


def test_gradients_of_a_reused_var_add_up():
    tape = Tape()
    a = tape.var(np.array([1.0, 2.0]))
    b = tape.var(a.data * 2)
    tape.record(b, (a,), lambda g: (2 * g,))
    c = tape.var(a.data + b.data)
    tape.record(c, (a, b), lambda g: (g, g))
    grads = tape.backward(c, np.ones(2))
    np.testing.assert_array_equal(grads[a.id], [3.0, 3.0])  # dc/da = 1 + 2


def test_backward_frees_each_step_as_it_runs_and_leaves_the_tape_empty_on_error():
    import weakref

    class Saved:  # stands for the activations a backward closure keeps
        pass

    tape = Tape()
    x = tape.var(np.ones(3))
    alive_when_called = []
    refs = []
    prev = x
    for k in range(4):
        saved = Saved()
        refs.append(weakref.ref(saved))
        out = tape.var(prev.data * 2.0)

        def fn(g, saved=saved, k=k):
            # when step k runs, the steps after it (already run) must have been released
            alive_when_called.append([r() is not None for r in refs[k + 1:]])
            return (g * 2.0,)

        tape.record(out, [prev], fn)
        prev = out
    del saved, fn
    grads = tape.backward(prev, np.ones(3))
    assert np.array_equal(grads[x.id], np.full(3, 16.0))
    assert alive_when_called == [[]] + [[False] * n for n in range(1, 4)]
    assert all(r() is None for r in refs) and len(tape) == 0

    y = tape.var(np.ones(2))
    z = tape.var(np.ones(2))
    tape.record(z, [y], lambda g: (g,))

    def boom(g):
        raise RuntimeError("backward failed")

    w = tape.var(np.ones(2))
    tape.record(w, [z], boom)
    with pytest.raises(RuntimeError, match="backward failed"):
        tape.backward(w, np.ones(2))
    assert len(tape) == 0  # no half-replayed entries left for the next step
