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
