r"""Optimizers: fused C++ updates over one flat parameter buffer.

Four optimizers, each with an immutable, validated config (``with_*`` builders; a bad value raises at
the ``with_*`` call, naming the field)::

    Optimizer.Adam(AdamConfig().with_learning_rate(1e-3).with_weight_decay(1e-5).with_amsgrad(False))
    Optimizer.AdamW(AdamWConfig().with_weight_decay(0.01).with_decoupled_weight_decay(True))
    Optimizer.SGD(SGDConfig().with_learning_rate(0.01).with_momentum(0.9).with_nesterov(True))
    Optimizer.RMSprop(RMSpropConfig().with_alpha(0.99).with_eps(1e-8))

Each factory returns an :class:`OptimizerSpec` (immutable: ``.name``, ``.config``, ``.learning_rate``,
``to_dict()`` / ``Optimizer.from_dict``). The bare factory (``Optimizer.AdamW``) is accepted wherever a
spec is expected and means "default config"; :meth:`Optimizer.resolve` normalises both (and the names
``"adam"``, ``"adamw"``, ``"sgd"``, ``"rmsprop"``).

``spec.bind(params)`` binds the spec to a 1-D, C-contiguous, writable float32 or float64 numpy array
(the flat parameter buffer) and returns a :class:`BoundOptimizer`; ``opt.step(grads, lr=None)`` then
updates ``params`` in place in one fused C++ pass (the GIL is released). ``lr`` overrides the config's
rate for that step only (the trainer passes the scheduled rate). Example on plain numpy arrays::

    params = np.zeros(10, np.float32)
    opt = Optimizer.AdamW(AdamWConfig()).bind(params)
    opt.step(grads)                  # grads: same dtype and length as params
    state = opt.state_dict()         # step count and copies of the moment buffers
    opt.load_state_dict(state)       # exact resume: the continuation is bitwise identical

The update rules are exactly those documented for ``torch.optim.Adam`` / ``AdamW`` / ``SGD`` /
``RMSprop`` (maximize=False; each class docstring writes its rule out). Notation: :math:`\theta`
parameters, :math:`g` the gradient passed to ``step``, :math:`\gamma` the learning rate of this step,
:math:`\lambda` weight_decay, :math:`t` the 1-based step count. All state buffers start at zero.

Numerics: the per-step scalars (bias corrections, ``1 - lr * wd``, ...) are computed in double and
rounded once to the buffer's dtype; the elementwise arithmetic runs in that dtype (float32 for the
models). Elementwise kernels are split statically over the kernel threads, so results are bitwise
identical for any thread count (``neurodivergent.set_num_threads``).
"""
from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np

from .._backend import core as _core
from .._config import _REGISTRY, boolean, cfg_field, config_class, fraction, nonneg_float, positive_float

__all__ = [
    "AdamConfig",
    "AdamWConfig",
    "SGDConfig",
    "RMSpropConfig",
    "Optimizer",
    "OptimizerSpec",
    "BoundOptimizer",
]


def _betas(name: str, v: Any) -> Tuple[float, float]:
    if isinstance(v, (str, bytes)) or not hasattr(v, "__len__") or len(v) != 2:
        raise TypeError(f"{name} must be a pair (beta1, beta2), got {type(v).__name__} {v!r}")
    return (fraction(f"{name}[0] (beta1)", v[0]), fraction(f"{name}[1] (beta2)", v[1]))


def _closed_fraction(name: str, v: Any) -> float:
    v = nonneg_float(name, v)
    if v > 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {v}")
    return v


# ---------------------------------------------------------------- configs
@config_class
class AdamConfig:
    r"""Adam (``torch.optim.Adam``), L2 weight decay coupled into the gradient.

    .. math::
        g_t &\leftarrow g_t + \lambda\theta_{t-1} \quad (\lambda \ne 0) \\
        m_t &\leftarrow \beta_1 m_{t-1} + (1-\beta_1) g_t \\
        v_t &\leftarrow \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
        \hat m_t &\leftarrow m_t / (1-\beta_1^t) \\
        v^{max}_t &\leftarrow \max(v^{max}_{t-1}, v_t),\quad \hat v_t \leftarrow v^{max}_t/(1-\beta_2^t)
            \quad \text{(amsgrad)} \\
        \hat v_t &\leftarrow v_t / (1-\beta_2^t) \quad \text{(otherwise)} \\
        \theta_t &\leftarrow \theta_{t-1} - \gamma\,\hat m_t / (\sqrt{\hat v_t} + \epsilon)

    As PyTorch computes it: ``p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``
    (with ``max_v`` in place of ``v`` for AMSGrad). ``betas`` / ``with_betas`` are also provided.
    """

    learning_rate: float = cfg_field(1e-3, positive_float, "Step size gamma (> 0).")
    beta1: float = cfg_field(0.9, fraction, "Decay of the first-moment average, in [0, 1).")
    beta2: float = cfg_field(0.999, fraction, "Decay of the second-moment average, in [0, 1).")
    eps: float = cfg_field(1e-8, positive_float, "Added to the denominator (> 0).")
    weight_decay: float = cfg_field(0.0, nonneg_float, "L2 penalty coupled into the gradient: g += wd * p.")
    amsgrad: bool = cfg_field(False, boolean, "Use the running maximum of v (AMSGrad).")

    @property
    def betas(self) -> Tuple[float, float]:
        return (self.beta1, self.beta2)

    def with_betas(self, betas) -> "AdamConfig":
        """Return a copy with ``(beta1, beta2)`` set (validated now)."""
        b1, b2 = _betas("betas", betas)
        return dataclasses.replace(self, beta1=b1, beta2=b2)


@config_class
class AdamWConfig:
    r"""AdamW (``torch.optim.AdamW``): Adam with decoupled weight decay.

    With ``decoupled_weight_decay=True`` (the default) each step first shrinks the parameters,

    .. math::
        \theta_{t-1} \leftarrow \theta_{t-1}(1 - \gamma\lambda)

    and then applies Adam's update (see :class:`AdamConfig`) to the raw gradient, without the L2 term.
    With ``decoupled_weight_decay=False`` it is exactly Adam with coupled L2 (``g += wd * p``).
    Note the default ``weight_decay`` is 0.01, as in PyTorch. ``beta1`` / ``beta2`` and
    ``with_beta1`` / ``with_beta2`` read and set one element of ``betas``.
    """

    learning_rate: float = cfg_field(1e-3, positive_float, "Step size gamma (> 0).")
    betas: Tuple[float, float] = cfg_field((0.9, 0.999), _betas, "(beta1, beta2), each in [0, 1).")
    eps: float = cfg_field(1e-8, positive_float, "Added to the denominator (> 0).")
    weight_decay: float = cfg_field(0.01, nonneg_float, "Weight decay lambda (>= 0).")
    decoupled_weight_decay: bool = cfg_field(True, boolean, "p *= 1 - lr*wd (True) or g += wd*p (False).")
    amsgrad: bool = cfg_field(False, boolean, "Use the running maximum of v (AMSGrad).")

    @property
    def beta1(self) -> float:
        return self.betas[0]

    @property
    def beta2(self) -> float:
        return self.betas[1]

    def with_beta1(self, beta1) -> "AdamWConfig":
        """Return a copy with ``betas[0]`` set (validated now)."""
        return dataclasses.replace(self, betas=(fraction("beta1", beta1), self.betas[1]))

    def with_beta2(self, beta2) -> "AdamWConfig":
        """Return a copy with ``betas[1]`` set (validated now)."""
        return dataclasses.replace(self, betas=(self.betas[0], fraction("beta2", beta2)))


@config_class
class SGDConfig:
    r"""Stochastic gradient descent (``torch.optim.SGD``), momentum :math:`\mu`, dampening :math:`\tau`.

    .. math::
        g_t &\leftarrow g_t + \lambda\theta_{t-1} \quad (\lambda \ne 0) \\
        b_t &\leftarrow g_t \ \text{if } t = 1 \text{, else } \mu b_{t-1} + (1-\tau) g_t
            \quad (\mu \ne 0) \\
        g_t &\leftarrow g_t + \mu b_t \ \text{(nesterov)}, \text{ else } g_t \leftarrow b_t
            \quad (\mu \ne 0) \\
        \theta_t &\leftarrow \theta_{t-1} - \gamma g_t

    The momentum buffer is initialised to the first (decayed) gradient, not ``(1 - dampening) * g``,
    as in PyTorch. ``nesterov=True`` requires ``momentum > 0`` and ``dampening == 0``; since the
    builders may be called in any order, that combination is checked when the spec is made
    (``Optimizer.SGD(config)`` raises ValueError naming ``nesterov``), not at each ``with_*`` call.
    ``momentum`` is restricted to [0, 1) and ``dampening`` to [0, 1].
    """

    learning_rate: float = cfg_field(1e-3, positive_float, "Step size gamma (> 0).")
    momentum: float = cfg_field(0.0, fraction, "Momentum factor mu, in [0, 1) (0: no momentum buffer).")
    dampening: float = cfg_field(0.0, _closed_fraction, "Dampening tau of the momentum, in [0, 1].")
    nesterov: bool = cfg_field(False, boolean, "Nesterov momentum (needs momentum > 0, dampening == 0).")
    weight_decay: float = cfg_field(0.0, nonneg_float, "L2 penalty coupled into the gradient: g += wd * p.")

    def check_nesterov(self) -> None:
        """Raise ValueError when ``nesterov`` is set without momentum > 0 and dampening == 0."""
        if self.nesterov and not (self.momentum > 0.0 and self.dampening == 0.0):
            raise ValueError(
                f"nesterov=True requires momentum > 0 and dampening == 0, got momentum={self.momentum}, "
                f"dampening={self.dampening} (set with_momentum(...) / with_dampening(0.0), or nesterov=False)")


@config_class
class RMSpropConfig:
    r"""RMSprop (``torch.optim.RMSprop``), smoothing :math:`\alpha`, momentum :math:`\mu`.

    .. math::
        g_t &\leftarrow g_t + \lambda\theta_{t-1} \quad (\lambda \ne 0) \\
        v_t &\leftarrow \alpha v_{t-1} + (1-\alpha) g_t^2, \qquad \tilde v_t \leftarrow v_t \\
        g^{ave}_t &\leftarrow \alpha g^{ave}_{t-1} + (1-\alpha) g_t,
            \quad \tilde v_t \leftarrow \tilde v_t - (g^{ave}_t)^2 \quad \text{(centered)} \\
        b_t &\leftarrow \mu b_{t-1} + g_t / (\sqrt{\tilde v_t} + \epsilon),
            \quad \theta_t \leftarrow \theta_{t-1} - \gamma b_t \quad (\mu > 0) \\
        \theta_t &\leftarrow \theta_{t-1} - \gamma g_t / (\sqrt{\tilde v_t} + \epsilon) \quad \text{(otherwise)}

    :math:`\tilde v_t` of the centered variant is non-negative in exact arithmetic; a value that
    rounding makes slightly negative is clamped to 0 (PyTorch would produce NaN there). The default
    learning rate is 0.01, as in PyTorch.
    """

    learning_rate: float = cfg_field(1e-2, positive_float, "Step size gamma (> 0).")
    alpha: float = cfg_field(0.99, fraction, "Smoothing constant of the squared-gradient average, in [0, 1).")
    eps: float = cfg_field(1e-8, positive_float, "Added to the denominator (> 0).")
    momentum: float = cfg_field(0.0, fraction, "Momentum factor mu, in [0, 1) (0: no momentum buffer).")
    centered: bool = cfg_field(False, boolean, "Normalise by the estimated variance instead of the raw second moment.")
    weight_decay: float = cfg_field(0.0, nonneg_float, "L2 penalty coupled into the gradient: g += wd * p.")


# ---------------------------------------------------------------- bound optimizers
def _check_params(params: Any) -> np.ndarray:
    if not isinstance(params, np.ndarray):
        hint = " (for a ParameterBuffer pass its .data)" if isinstance(getattr(params, "data", None), np.ndarray) else ""
        raise TypeError(f"params must be a numpy.ndarray{hint}, got {type(params).__name__}")
    if params.dtype not in (np.float32, np.float64) or not params.dtype.isnative:
        raise TypeError(f"params must have dtype float32 or float64, got {params.dtype}")
    if params.ndim != 1:
        raise ValueError(f"params must be 1-D (the flat parameter buffer), got shape {params.shape}")
    if not params.flags.c_contiguous:
        raise ValueError("params must be C-contiguous (use numpy.ascontiguousarray and bind that array)")
    if not params.flags.writeable:
        raise ValueError("params is read-only; the optimizer updates it in place")
    if not params.flags.aligned:
        raise ValueError("params is not aligned to its element size; bind an aligned copy")
    return params


class BoundOptimizer:
    """An optimizer bound to one flat parameter array (made by :meth:`OptimizerSpec.bind`).

    ``step(grads, lr=None)`` updates ``params`` in place; ``step_count`` counts completed steps (a step
    that raises does not count and changes nothing). ``state_dict()`` returns ``{"step_count": int}``
    plus a copy of each state buffer (float arrays of the parameters' length and dtype);
    ``load_state_dict`` checks the keys, lengths and dtypes before copying anything in.
    """

    _buffers: Tuple[str, ...] = ()

    def __init__(self, spec: "OptimizerSpec", params: Any) -> None:
        self._spec = spec
        self._params = _check_params(params)
        self._step = 0
        self._state: Dict[str, np.ndarray] = {k: np.zeros_like(self._params) for k in self._buffer_names()}
        self._lr = float(spec.config.learning_rate)

    # -- to be provided by subclasses
    def _buffer_names(self) -> Tuple[str, ...]:
        raise NotImplementedError

    def _update(self, grads: Any, lr: Any, t: int) -> None:
        raise NotImplementedError

    # -- public API
    @property
    def spec(self) -> "OptimizerSpec":
        return self._spec

    @property
    def name(self) -> str:
        return self._spec.name

    @property
    def config(self) -> Any:
        return self._spec.config

    @property
    def learning_rate(self) -> float:
        """The config's learning rate (the rate used when ``step`` gets no ``lr``)."""
        return self._lr

    @property
    def params(self) -> np.ndarray:
        return self._params

    @property
    def step_count(self) -> int:
        return self._step

    def step(self, grads: np.ndarray, lr: Optional[float] = None) -> None:
        """One update of ``params`` in place from ``grads`` (same dtype and length, C-contiguous).

        ``lr`` (finite, >= 0) replaces the config's learning rate for this step only."""
        t = self._step + 1
        self._update(grads, self._lr if lr is None else lr, t)
        self._step = t

    def reset(self) -> None:
        """Zero the state buffers and the step count (as if freshly bound)."""
        for a in self._state.values():
            a.fill(0)
        self._step = 0

    def state_dict(self) -> Dict[str, Union[np.ndarray, int]]:
        d: Dict[str, Union[np.ndarray, int]] = {"step_count": self._step}
        for k, a in self._state.items():
            d[k] = a.copy()
        return d

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a dict (from state_dict()), got {type(state).__name__}")
        want = {"step_count", *self._state}
        missing = sorted(want - set(state))
        extra = sorted(set(state) - want)
        what = f"{self.name} ({self._describe()})"
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {missing}")
            if extra:
                parts.append(f"unexpected {extra}")
            raise ValueError(f"state_dict does not fit {what}: {'; '.join(parts)}; expected keys {sorted(want)} "
                             "(was it saved by a different optimizer or options?)")
        sc = state["step_count"]
        if isinstance(sc, np.ndarray) and sc.shape == () and sc.dtype.kind in "iu":
            sc = sc.item()
        if isinstance(sc, bool) or not isinstance(sc, numbers.Integral) or sc < 0:
            raise ValueError(f"state_dict['step_count'] must be an int >= 0, got {sc!r}")
        n = self._params.shape[0]
        arrays = {}
        for k in self._state:
            a = state[k]
            if not isinstance(a, np.ndarray):
                raise TypeError(f"state_dict[{k!r}] must be a numpy.ndarray, got {type(a).__name__}")
            if a.dtype.kind != "f":
                raise TypeError(f"state_dict[{k!r}] must be a float array, got dtype {a.dtype}")
            if a.shape != (n,):
                raise ValueError(f"state_dict[{k!r}] has shape {a.shape} but the bound parameters have {n} elements; "
                                 "refusing to load state saved for a different model")
            arrays[k] = a
        for k, a in arrays.items():
            np.copyto(self._state[k], a, casting="unsafe")
        self._step = int(sc)

    def _describe(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config.to_dict().items())

    def __repr__(self) -> str:
        return (f"<BoundOptimizer {self.name} on {self._params.shape[0]} {self._params.dtype} params, "
                f"step {self._step}>")


class _AdamBound(BoundOptimizer):
    def _buffer_names(self):
        return ("m", "v", "max_v") if self.config.amsgrad else ("m", "v")

    def __init__(self, spec, params):
        super().__init__(spec, params)
        c = spec.config
        self._b1, self._b2 = c.beta1, c.beta2
        self._eps, self._wd = c.eps, c.weight_decay
        self._decoupled = bool(getattr(c, "decoupled_weight_decay", False))
        self._m, self._v = self._state["m"], self._state["v"]
        self._max_v = self._state.get("max_v")

    def _update(self, grads, lr, t):
        _core.adam_step_ex(self._params, grads, self._m, self._v, self._max_v, t, lr, self._b1, self._b2,
                           self._eps, self._wd, self._decoupled)


class _SGDBound(BoundOptimizer):
    def _buffer_names(self):
        return ("momentum_buffer",) if self.config.momentum != 0.0 else ()

    def __init__(self, spec, params):
        super().__init__(spec, params)
        c = spec.config
        self._buf = self._state.get("momentum_buffer")
        self._args = (c.momentum, c.dampening, c.weight_decay, c.nesterov)

    def _update(self, grads, lr, t):
        mu, damp, wd, nest = self._args
        _core.sgd_step(self._params, grads, self._buf, lr, mu, damp, wd, nest, t == 1)


class _RMSpropBound(BoundOptimizer):
    def _buffer_names(self):
        c = self.config
        return ("square_avg",) + (("grad_avg",) if c.centered else ()) + (("momentum_buffer",) if c.momentum > 0 else ())

    def __init__(self, spec, params):
        super().__init__(spec, params)
        c = spec.config
        self._sq = self._state["square_avg"]
        self._ga = self._state.get("grad_avg")
        self._buf = self._state.get("momentum_buffer")
        self._args = (c.alpha, c.eps, c.weight_decay, c.momentum)

    def _update(self, grads, lr, t):
        a, eps, wd, mu = self._args
        _core.rmsprop_step(self._params, grads, self._sq, self._ga, self._buf, lr, a, eps, wd, mu)


# ---------------------------------------------------------------- specs and factories
_KINDS: Dict[str, Tuple[type, type]] = {
    "Adam": (AdamConfig, _AdamBound),
    "AdamW": (AdamWConfig, _AdamBound),
    "SGD": (SGDConfig, _SGDBound),
    "RMSprop": (RMSpropConfig, _RMSpropBound),
}


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer choice and its config (immutable). ``bind(params)`` makes a :class:`BoundOptimizer`."""

    name: str
    config: Any

    def __post_init__(self) -> None:
        if self.name not in _KINDS:
            raise ValueError(f"unknown optimizer {self.name!r}; valid: {', '.join(_KINDS)}")
        cls = _KINDS[self.name][0]
        if not isinstance(self.config, cls):
            raise TypeError(f"Optimizer.{self.name} needs a {cls.__name__}, got {type(self.config).__name__}")
        if isinstance(self.config, SGDConfig):
            self.config.check_nesterov()

    @property
    def learning_rate(self) -> float:
        return self.config.learning_rate

    def with_learning_rate(self, lr: float) -> "OptimizerSpec":
        """The same optimizer with its config's learning rate replaced (validated now)."""
        return OptimizerSpec(self.name, self.config.with_learning_rate(lr))

    def bind(self, params: np.ndarray) -> BoundOptimizer:
        """Bind to a 1-D, C-contiguous, writable float32/float64 array, updated in place by ``step``."""
        return _KINDS[self.name][1](self, params)

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "config": {"__type__": type(self.config).__name__, **self.config.to_dict()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "OptimizerSpec":
        if not isinstance(d, Mapping):
            raise TypeError(f"OptimizerSpec.from_dict needs a dict, got {type(d).__name__}")
        d = {k: v for k, v in d.items() if k != "__type__"}
        if set(d) != {"name", "config"}:
            raise ValueError(f"an optimizer dict has the keys 'name' and 'config', got {sorted(d)}")
        name = d["name"]
        if name not in _KINDS:
            raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(_KINDS)}")
        cfg_cls = _KINDS[name][0]
        if isinstance(d["config"], cfg_cls):  # already decoded by an enclosing config's from_dict
            return cls(name, d["config"])
        if not isinstance(d["config"], Mapping):
            raise TypeError(f"an optimizer dict's 'config' must be a dict, got {type(d['config']).__name__}")
        c = dict(d["config"])
        t = c.pop("__type__", cfg_cls.__name__)
        if t != cfg_cls.__name__:
            raise ValueError(f"optimizer {name} needs a {cfg_cls.__name__}, got a {t}")
        return cls(name, cfg_cls.from_dict(c))

    def __repr__(self) -> str:
        return f"Optimizer.{self.name}({self.config!r})"


_REGISTRY["OptimizerSpec"] = OptimizerSpec  # so that configs holding a spec round-trip through to_dict


class _Factory:
    """``Optimizer.<Name>``: call with a config (or nothing, for the defaults) to get an OptimizerSpec."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.config_class = _KINDS[name][0]
        self.__doc__ = f"Optimizer.{name}({self.config_class.__name__}()) -> OptimizerSpec.\n\n" + (
            self.config_class.__doc__ or "")

    def __call__(self, config: Any = None) -> OptimizerSpec:
        return OptimizerSpec(self.name, self.config_class() if config is None else config)

    def __repr__(self) -> str:
        return f"Optimizer.{self.name}"

    def __reduce__(self):
        return (getattr, (Optimizer, self.name))


class Optimizer:
    """Namespace of the optimizer factories: ``Optimizer.Adam``, ``.AdamW``, ``.SGD``, ``.RMSprop``."""

    Adam = _Factory("Adam")
    AdamW = _Factory("AdamW")
    SGD = _Factory("SGD")
    RMSprop = _Factory("RMSprop")

    def __init__(self) -> None:
        raise TypeError("Optimizer is a namespace: use Optimizer.Adam(AdamConfig()) etc.")

    @staticmethod
    def names() -> Tuple[str, ...]:
        return tuple(_KINDS)

    @staticmethod
    def resolve(x: Any) -> OptimizerSpec:
        """OptimizerSpec -> itself; a bare factory (``Optimizer.AdamW``) -> its default spec; a name
        (case-insensitive: "adam", "adamw", "sgd", "rmsprop") -> its default spec; None -> default Adam."""
        if isinstance(x, OptimizerSpec):
            return x
        if isinstance(x, _Factory):
            return x()
        if x is None:
            return Optimizer.Adam()
        if isinstance(x, str):
            for n in _KINDS:
                if n.lower() == x.lower():
                    return getattr(Optimizer, n)()
            raise ValueError(f"unknown optimizer {x!r}; valid: {', '.join(_KINDS)}")
        for n, (cfg_cls, _) in _KINDS.items():
            if type(x) is cfg_cls:
                raise TypeError(f"pass Optimizer.{n}({cfg_cls.__name__}(...)), not the bare config")
        raise TypeError("optimizer must be an OptimizerSpec (e.g. Optimizer.AdamW(AdamWConfig())), a factory "
                        f"such as Optimizer.AdamW, or one of {', '.join(_KINDS)}; got {type(x).__name__}")

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> OptimizerSpec:
        return OptimizerSpec.from_dict(d)
