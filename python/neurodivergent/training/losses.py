"""Training losses: ``LossFunction.MAE``, ``.MSE``, ``.Huber(...)``, ``.Quantile(...)``, ``.Weighted(...)``,
``.NegativeLogLikelihood``.

Every loss object has the same small interface, used by the trainer:

* ``n_outputs``: values the model emits per horizon step (1, or the number of quantile levels);
* ``value_and_grad(pred, target, weight=None, *, out=None) -> (loss, dpred)``: the loss and its gradient
  with respect to ``pred``, both computed by the C++ kernels (``_core.loss_forward / loss_backward`` for
  MAE / MSE / Huber, ``_core.quantile_loss_forward / quantile_loss_backward`` for Quantile);
* ``value(pred, target, weight=None)``: the loss only.

Shapes: ``target`` is ``(B, h)`` (any shape works); ``pred`` is ``(B, h * n_outputs)``, the layout
``(B, h, n_outputs)`` flattened with the output (quantile) index fastest; ``(B, h, n_outputs)`` itself is
accepted too, and ``dpred`` always has ``pred``'s shape. ``weight`` is ``None`` or a non-negative array of
``target``'s shape: a mask / per-point weight. The loss is the **weighted mean** over target points,
``sum_i w_i l_i / sum_i w_i`` (plain mean without weights); a point with weight 0 is excluded entirely (NaN
there is ignored), an all-zero weight gives loss 0 and a zero gradient, and a negative or non-finite weight
raises ValueError. Computation is in float64 inside the kernels; ``dpred`` has ``pred``'s dtype (float32 or
float64; other numeric input becomes float32), and ``target`` / ``weight`` are converted to it.

Pointwise losses (``r = pred - target``):

* MAE ``|r|`` (gradient ``sign(r)``, 0 at ``r == 0``); MSE ``r^2``;
* Huber (PyTorch's ``HuberLoss``) ``0.5 r^2`` if ``|r| < delta`` else ``delta (|r| - delta / 2)``.

Quantile (pinball) loss with levels ``tau_q`` and per-quantile weights ``qw_q`` (``r = target - pred_q``)::

    rho_tau(r) = max(tau r, (tau - 1) r)
    loss = sum_{i,q} w_i qw_q rho_{tau_q}(r_iq) / (sum_i w_i * sum_q qw_q)

a weighted mean over points of a weighted mean over quantiles, so multiplying all quantile weights by a
constant changes nothing, and one level at 0.5 gives exactly ``MAE / 2``. Its gradient w.r.t. ``pred_iq``
is ``qw_q w_i (1[r < 0] - tau_q) / (...)`` and **0 at r == 0** (a valid subgradient for every tau, and the
same convention as MAE's ``sign(0) = 0``).

Weighted: ``LossFunction.Weighted(WeightedConfig().with_base_loss(LossFunction.MAE)
.with_weight_function(lambda timestamp, value: w))``. The weight function is evaluated **once per
training row** by the trainer (``loss.compute_weights(timestamps, values)``: timestamps are the data's
``ds`` values, numpy ``datetime64`` or integers, values the ``y`` values); it is first called once with the
whole arrays (vectorised numpy code then runs at numpy speed: ``datetime64`` / integer timestamps, float64
values) and, if that call raises or returns something that is neither a number nor an array of one weight
per row, it is called once per row with Python scalars: the timestamp as a ``datetime.datetime`` (naive,
microsecond precision) for ``datetime64`` data or an ``int``, the value as a ``float``; so the guide's
``lambda timestamp, value: math.exp(-(now - timestamp).days * 0.01)`` works as written with
``now = datetime.datetime.now()``. The trainer gathers
the resulting per-row weights per batch like the targets and multiplies them into the ``weight`` argument;
the Weighted loss then is its base loss with that weight: ``value_and_grad`` delegates to the base loss.
``to_dict`` stores the function's name (``module:qualname``); ``from_dict`` restores a module-level
function only if its module is already imported (it never imports anything), otherwise (and always for
lambdas and local functions) it restores a placeholder that raises a clear error when called: pass the
function again with ``with_weight_function``.

Losses are immutable, comparable and hashable. ``LossFunction.resolve(x)`` accepts a loss object, the
strings ``"mae"``, ``"mse"``, ``"huber"``, ``"quantile"`` (default configs), the bare factories
``LossFunction.Huber`` / ``LossFunction.Quantile`` and a ``to_dict()`` dict. No regression loss defines
label smoothing (``defines_label_smoothing`` is False): a config asking for it must raise.
"""
from __future__ import annotations

import math
import numbers
import sys
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from .._backend import as_float_array
from .._backend import core as _core
from .._config import _REGISTRY, cfg_field, config_class, positive_float

__all__ = [
    "Loss",
    "LossFunction",
    "HuberConfig",
    "QuantileConfig",
    "WeightedConfig",
    "MAELoss",
    "MSELoss",
    "HuberLoss",
    "QuantileLoss",
    "WeightedLoss",
    "NegativeLogLikelihoodLoss",
]


# ---------------------------------------------------------------- configs
def _levels(name: str, v: Any) -> Tuple[float, ...]:
    if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
        raise TypeError(f"{name} must be a sequence of numbers, got {type(v).__name__} {v!r}")
    out = []
    for i, x in enumerate(v):
        if isinstance(x, bool) or not isinstance(x, numbers.Real):
            raise TypeError(f"{name}[{i}] must be a number, got {type(x).__name__} {x!r}")
        out.append(float(x))
    if not out:
        raise ValueError(f"{name} must not be empty")
    return tuple(out)


def _quantiles(name: str, v: Any) -> Tuple[float, ...]:
    q = _levels(name, v)
    for i, x in enumerate(q):
        if not 0.0 < x < 1.0:
            raise ValueError(f"{name}[{i}] must be in (0, 1), got {x}")
        if i and not x > q[i - 1]:
            what = "unique" if x == q[i - 1] else "strictly increasing"
            raise ValueError(f"{name} must be {what}; {name}[{i}] = {x} follows {q[i - 1]} (got {list(q)})")
    return q


def _qweights(name: str, v: Any) -> Optional[Tuple[float, ...]]:
    if v is None:
        return None
    w = _levels(name, v)
    for i, x in enumerate(w):
        if not (x > 0.0 and math.isfinite(x)):
            raise ValueError(f"{name}[{i}] must be finite and > 0, got {x}")
    return w


@config_class
class HuberConfig:
    """Huber loss (PyTorch's HuberLoss): quadratic below ``delta``, linear above."""

    delta: float = cfg_field(1.0, positive_float, "Threshold between the quadratic and the linear part.")


@config_class
class QuantileConfig:
    """Pinball loss over several quantile levels (one model output per level).

    ``quantiles``: levels in (0, 1), strictly increasing (so unique). ``weights``: one positive weight per
    level, or None for all 1; the loss divides by their sum (see the module docstring)."""

    quantiles: Tuple[float, ...] = cfg_field((0.1, 0.5, 0.9), _quantiles, "Quantile levels in (0, 1), increasing.")
    weights: Optional[Tuple[float, ...]] = cfg_field(None, _qweights, "Per-quantile weights (> 0); None: all 1.")

    def _validate(self) -> None:
        if self.weights is not None and len(self.weights) != len(self.quantiles):
            raise ValueError(f"weights has {len(self.weights)} values but quantiles has {len(self.quantiles)} "
                             f"levels ({list(self.quantiles)}); give one weight per quantile")

    @property
    def resolved_weights(self) -> Tuple[float, ...]:
        return self.weights if self.weights is not None else (1.0,) * len(self.quantiles)


class _UnrestoredWeightFunction:
    """Placeholder for a weight function that ``to_dict`` could only store by name."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError(
            f"the weight function {self.name!r} of this Weighted loss was restored from a dict, which holds "
            "only its name (functions are not serialised; lambdas and local functions cannot be looked up, "
            "and a module-level function only when its module is imported): pass it again with "
            "WeightedConfig.with_weight_function(...)")

    def __repr__(self) -> str:
        return f"<unrestored weight function {self.name}>"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, _UnrestoredWeightFunction) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("unrestored", self.name))


def _function_name(f: Callable) -> str:
    if isinstance(f, _UnrestoredWeightFunction):
        return f.name
    mod = getattr(f, "__module__", None) or "?"
    qual = getattr(f, "__qualname__", None) or getattr(f, "__name__", None) or type(f).__name__
    return f"{mod}:{qual}"


def _lookup_function(name: str) -> Callable:
    """A module-level function named ``module:qualname`` whose module is already imported, else a placeholder."""
    mod, _, qual = name.partition(":")
    obj: Any = sys.modules.get(mod)
    if obj is not None and qual and "<" not in qual:
        for part in qual.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None and callable(obj):
            return obj
    return _UnrestoredWeightFunction(name)


def _base_loss(name: str, v: Any) -> "Loss":
    if isinstance(v, dict):
        v = LossFunction.from_dict(v)
    loss = LossFunction.resolve(v, name=name)
    if isinstance(loss, (WeightedLoss, NegativeLogLikelihoodLoss)):
        raise ValueError(f"{name} must be a pointwise or quantile loss (MAE, MSE, Huber, Quantile), got {loss!r}")
    return loss


def _weight_fn(name: str, v: Any) -> Optional[Callable]:
    if v is None:
        return None
    if isinstance(v, str):
        return _lookup_function(v)
    if not callable(v):
        raise TypeError(f"{name} must be a function (timestamp, value) -> weight, got {type(v).__name__} {v!r}")
    return v


@config_class
class WeightedConfig:
    """A base loss weighted per training row by ``weight_function(timestamp, value) -> weight >= 0``.

    See the module docstring for how and when the function is called and what ``to_dict`` stores."""

    base_loss: Any = cfg_field(None, lambda n, v: None if v is None else _base_loss(n, v),
                               "The loss being weighted (default LossFunction.MAE).")
    weight_function: Optional[Callable] = cfg_field(None, _weight_fn,
                                                    "(timestamp, value) -> non-negative weight, per training row.")


def _weighted_to_dict(self: WeightedConfig) -> Dict[str, Any]:
    return {"base_loss": None if self.base_loss is None else self.base_loss.to_dict(),
            "weight_function": None if self.weight_function is None else _function_name(self.weight_function)}


WeightedConfig.to_dict = _weighted_to_dict  # type: ignore[assignment]


# ---------------------------------------------------------------- loss objects
def _prepare(pred: Any, target: Any, weight: Any, n_outputs: int,
             output_axis: bool = False) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Arrays in one float dtype; pred reshaped to target.shape + (n_outputs,) when n_outputs > 1 or
    output_axis (the quantile kernel's layout), else to target.shape."""
    p = as_float_array(pred, "pred")
    t = as_float_array(target, "target", dtype=p.dtype)
    w = None if weight is None else as_float_array(weight, "weight", dtype=p.dtype)
    if w is not None and w.shape != t.shape:
        raise ValueError(f"weight must have target's shape {t.shape}, got {w.shape}")
    q = n_outputs
    if q == 1 and not output_axis:
        if p.shape != t.shape and p.shape != t.shape + (1,):
            raise ValueError(f"pred must have target's shape {t.shape}, got {p.shape}")
        return p.reshape(t.shape), t, w
    want = t.shape + (q,)
    flat = t.shape[:-1] + (t.shape[-1] * q,) if t.ndim else (q,)
    if p.shape != want and p.shape != flat:
        raise ValueError(f"pred must have shape {flat} (horizon * {q} quantiles, quantile index fastest) or "
                         f"{want} for target of shape {t.shape}, got {p.shape}")
    return p.reshape(want), t, w


def _out_array(out: Optional[np.ndarray], like: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    if out is None:
        return np.empty(shape, like.dtype)
    if not isinstance(out, np.ndarray) or out.dtype != like.dtype or out.shape != shape \
            or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous {like.dtype} array of shape {shape}")
    return out


class Loss:
    """Base class of the training losses (see the module docstring)."""

    name: str = ""
    n_outputs: int = 1
    quantiles: Optional[Tuple[float, ...]] = None
    defines_label_smoothing: bool = False
    config: Any = None

    def value_and_grad(self, pred: Any, target: Any, weight: Any = None, *,
                       out: Optional[np.ndarray] = None) -> Tuple[float, np.ndarray]:
        """``(loss, dpred)``; ``dpred`` has ``pred``'s shape (written into ``out`` when given)."""
        raise NotImplementedError

    def value(self, pred: Any, target: Any, weight: Any = None) -> float:
        raise NotImplementedError

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Loss":
        return LossFunction.from_dict(d)

    def _key(self) -> Any:
        return (self.name,)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Loss) and type(other) is type(self) and other._key() == self._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _set(self, **kw: Any) -> None:
        for k, v in kw.items():
            object.__setattr__(self, k, v)


class _Pointwise(Loss):
    kind = ""

    def _delta(self) -> float:
        return 1.0

    def value(self, pred: Any, target: Any, weight: Any = None) -> float:
        p, t, w = _prepare(pred, target, weight, 1)
        return float(_core.loss_forward(self.kind, p, t, w, self._delta()))

    def value_and_grad(self, pred: Any, target: Any, weight: Any = None, *,
                       out: Optional[np.ndarray] = None) -> Tuple[float, np.ndarray]:
        p0 = as_float_array(pred, "pred")
        p, t, w = _prepare(p0, target, weight, 1)
        d = _out_array(out, p, p0.shape)
        value = float(_core.loss_forward(self.kind, p, t, w, self._delta()))
        _core.loss_backward(self.kind, d.reshape(p.shape), p, t, w, self._delta(), 1.0)
        return value, d


class MAELoss(_Pointwise):
    """Mean absolute error ``|pred - target|`` (``LossFunction.MAE``)."""

    name = kind = "mae"

    def __repr__(self) -> str:
        return "LossFunction.MAE"


class MSELoss(_Pointwise):
    """Mean squared error ``(pred - target)^2`` (``LossFunction.MSE``)."""

    name = kind = "mse"

    def __repr__(self) -> str:
        return "LossFunction.MSE"


class HuberLoss(_Pointwise):
    """Huber loss (``LossFunction.Huber(HuberConfig().with_delta(d))``)."""

    name = kind = "huber"

    def __init__(self, config: Optional[HuberConfig] = None) -> None:
        config = HuberConfig() if config is None else config
        if not isinstance(config, HuberConfig):
            raise TypeError(f"LossFunction.Huber needs a HuberConfig, got {type(config).__name__}")
        self._set(config=config)

    @property
    def delta(self) -> float:
        return self.config.delta

    def _delta(self) -> float:
        return self.config.delta

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "delta": self.config.delta}

    def _key(self) -> Any:
        return (self.name, self.config.delta)

    def __repr__(self) -> str:
        return f"LossFunction.Huber(HuberConfig(delta={self.config.delta!r}))"


class QuantileLoss(Loss):
    """Pinball loss over ``config.quantiles`` (``LossFunction.Quantile(QuantileConfig()...)``)."""

    name = "quantile"

    def __init__(self, config: Optional[QuantileConfig] = None) -> None:
        config = QuantileConfig() if config is None else config
        if not isinstance(config, QuantileConfig):
            raise TypeError(f"LossFunction.Quantile needs a QuantileConfig, got {type(config).__name__}")
        self._set(config=config, quantiles=config.quantiles, n_outputs=len(config.quantiles),
                  weights=config.resolved_weights,
                  _tau=np.asarray(config.quantiles, np.float64), _qw=np.asarray(config.resolved_weights, np.float64))

    def value(self, pred: Any, target: Any, weight: Any = None) -> float:
        p, t, w = _prepare(pred, target, weight, self.n_outputs, True)
        return float(_core.quantile_loss_forward(p, t, w, self._tau, self._qw))

    def value_and_grad(self, pred: Any, target: Any, weight: Any = None, *,
                       out: Optional[np.ndarray] = None) -> Tuple[float, np.ndarray]:
        p0 = as_float_array(pred, "pred")
        p, t, w = _prepare(p0, target, weight, self.n_outputs, True)
        d = _out_array(out, p, p0.shape)
        value = float(_core.quantile_loss_forward(p, t, w, self._tau, self._qw))
        _core.quantile_loss_backward(d.reshape(p.shape), p, t, w, self._tau, self._qw, 1.0)
        return value, d

    def column_suffixes(self) -> Tuple[str, ...]:
        """Forecast column suffixes, one per level: ``-q-0.1``, ``-q-0.5``, ``-q-0.9``."""
        return tuple(f"-q-{q:g}" for q in self.quantiles)

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "quantiles": list(self.config.quantiles),
                "weights": None if self.config.weights is None else list(self.config.weights)}

    def _key(self) -> Any:
        return (self.name, self.config.quantiles, self.config.resolved_weights)

    def __repr__(self) -> str:
        return (f"LossFunction.Quantile(QuantileConfig(quantiles={list(self.config.quantiles)}, "
                f"weights={None if self.config.weights is None else list(self.config.weights)}))")


class WeightedLoss(Loss):
    """A base loss with per-row weights from a function of (timestamp, value); see the module docstring."""

    name = "weighted"

    def __init__(self, config: Optional[WeightedConfig] = None) -> None:
        config = WeightedConfig() if config is None else config
        if not isinstance(config, WeightedConfig):
            raise TypeError(f"LossFunction.Weighted needs a WeightedConfig, got {type(config).__name__}")
        if config.weight_function is None:
            raise ValueError("LossFunction.Weighted needs a weight function: "
                             "WeightedConfig().with_weight_function(lambda timestamp, value: ...)")
        base = config.base_loss if config.base_loss is not None else LossFunction.MAE
        self._set(config=config, base_loss=base, weight_function=config.weight_function,
                  n_outputs=base.n_outputs, quantiles=base.quantiles)

    def value(self, pred: Any, target: Any, weight: Any = None) -> float:
        return self.base_loss.value(pred, target, weight)

    def value_and_grad(self, pred: Any, target: Any, weight: Any = None, *,
                       out: Optional[np.ndarray] = None) -> Tuple[float, np.ndarray]:
        """The base loss with ``weight`` (the trainer passes the per-row weights, times any mask)."""
        return self.base_loss.value_and_grad(pred, target, weight, out=out)

    def compute_weights(self, timestamps: Any, values: Any) -> np.ndarray:
        """float64 weights, one per row: ``weight_function(timestamp, value)``, vectorised when it can be."""
        ts = np.asarray(timestamps)
        vs = np.asarray(values, dtype=np.float64)
        if ts.ndim != 1 or vs.ndim != 1 or ts.shape != vs.shape:
            raise ValueError(f"timestamps and values must be 1-D of one length, got {ts.shape} and {vs.shape}")
        n = vs.shape[0]
        fn = self.weight_function
        if isinstance(fn, _UnrestoredWeightFunction):
            fn()  # raises the explanation
        w: Optional[np.ndarray] = None
        try:
            r = fn(ts, vs)
        except Exception:  # not vectorisable: per element below
            r = None
        if r is not None:
            a = np.asarray(r)
            if a.dtype.kind in "fiu" and (a.ndim == 0 or a.shape == (n,)):
                w = np.broadcast_to(a.astype(np.float64), (n,)).copy()
        if w is None:
            # per row, with Python scalars: datetime.datetime (microseconds) for datetime64 ds, int, float
            py_ts = ts.astype("datetime64[us]").tolist() if ts.dtype.kind == "M" else ts.tolist()
            py_vs = vs.tolist()
            w = np.empty(n, np.float64)
            for i in range(n):
                v = fn(py_ts[i], py_vs[i])
                if isinstance(v, bool) or not isinstance(v, (numbers.Real, np.floating, np.integer)):
                    raise TypeError(f"the weight function must return a number, got {type(v).__name__} {v!r} "
                                    f"for timestamp {ts[i]}, value {vs[i]}")
                w[i] = float(v)
        bad = np.flatnonzero(~(np.isfinite(w) & (w >= 0)))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"the weight function must return finite weights >= 0; got {w[i]} for timestamp "
                             f"{ts[i]}, value {vs[i]} ({bad.size} bad weight(s) in {n} rows)")
        return w

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "base_loss": self.base_loss.to_dict(),
                "weight_function": _function_name(self.weight_function)}

    def _key(self) -> Any:
        return (self.name, self.base_loss._key(), self.weight_function)

    def __repr__(self) -> str:
        return (f"LossFunction.Weighted(WeightedConfig(base_loss={self.base_loss!r}, "
                f"weight_function={_function_name(self.weight_function)}))")


class NegativeLogLikelihoodLoss(Loss):
    """Negative log-likelihood of a probabilistic model's predicted distribution (``LossFunction.NegativeLogLikelihood``).

    It needs a likelihood head (DeepAR with ``TrainingConfig.likelihood`` = Likelihood.Gaussian / StudentT /
    NegativeBinomial); a point forecaster cannot be trained with it. The model calls
    :meth:`likelihood_value_and_grad` with its raw outputs per point (N, P); the value is the weighted mean
    NLL and the gradient is with respect to the raw outputs (C++ kernels, see
    :mod:`neurodivergent.nn.functional_likelihood`)."""

    name = "negative_log_likelihood"

    def _refuse(self) -> None:
        raise ValueError("LossFunction.NegativeLogLikelihood needs a model with a likelihood head (e.g. DeepAR "
                         "with Likelihood.Gaussian); point forecasters train with MAE, MSE, Huber or Quantile")

    def value(self, pred: Any, target: Any, weight: Any = None) -> float:
        self._refuse()
        return 0.0

    def value_and_grad(self, pred: Any, target: Any, weight: Any = None, *,
                       out: Optional[np.ndarray] = None) -> Tuple[float, np.ndarray]:
        self._refuse()
        raise AssertionError  # unreachable

    @staticmethod
    def likelihood_value(likelihood: Any, raw: Any, target: Any, scale: Any = None, weight: Any = None) -> float:
        """Weighted mean NLL of ``target`` (N,) under raw outputs ``raw`` (N, P) of ``likelihood``."""
        from ..nn.functional_likelihood import nll_forward

        return nll_forward(likelihood, raw, target, scale, weight)

    @staticmethod
    def likelihood_value_and_grad(likelihood: Any, raw: Any, target: Any, scale: Any = None,
                                  weight: Any = None) -> Tuple[float, np.ndarray]:
        """``(mean NLL, d/d raw)``; the gradient has ``raw``'s shape and dtype."""
        from ..nn.functional_likelihood import nll_value_and_grad

        return nll_value_and_grad(likelihood, raw, target, scale, weight)

    def __repr__(self) -> str:
        return "LossFunction.NegativeLogLikelihood"


# ---------------------------------------------------------------- the namespace the guide uses
class LossFunction:
    """``LossFunction.MAE``, ``LossFunction.MSE``, ``LossFunction.Huber(HuberConfig()...)``,
    ``LossFunction.Quantile(QuantileConfig()...)``, ``LossFunction.Weighted(WeightedConfig()...)``,
    ``LossFunction.NegativeLogLikelihood``; ``resolve`` and ``from_dict``."""

    MAE: MAELoss
    MSE: MSELoss
    NegativeLogLikelihood: NegativeLogLikelihoodLoss

    def __init__(self) -> None:
        raise TypeError("LossFunction is a namespace: use LossFunction.MAE, LossFunction.Huber(...), ...")

    @staticmethod
    def Huber(config: Optional[HuberConfig] = None) -> HuberLoss:  # noqa: N802 (the guide's name)
        return HuberLoss(config)

    @staticmethod
    def Quantile(config: Optional[QuantileConfig] = None) -> QuantileLoss:  # noqa: N802
        return QuantileLoss(config)

    @staticmethod
    def Weighted(config: WeightedConfig) -> WeightedLoss:  # noqa: N802
        return WeightedLoss(config)

    @staticmethod
    def resolve(x: Any, name: str = "loss_function") -> Loss:
        """A loss object from a loss, a name ('mae', 'mse', 'huber', 'quantile'), a bare factory or a dict."""
        if isinstance(x, Loss):
            return x
        if isinstance(x, str):
            key = x.lower()
            if key in _BY_NAME:
                return _BY_NAME[key]()
            raise ValueError(f"{name} must be one of 'mae', 'mse', 'huber', 'quantile' or a LossFunction, got {x!r}")
        if x is LossFunction.Huber:
            return HuberLoss()
        if x is LossFunction.Quantile:
            return QuantileLoss()
        if x is LossFunction.Weighted:
            raise ValueError(f"{name}: LossFunction.Weighted needs a WeightedConfig with a weight function")
        if isinstance(x, dict):
            return LossFunction.from_dict(x)
        raise TypeError(f"{name} must be a LossFunction (e.g. LossFunction.MAE) or one of 'mae', 'mse', "
                        f"'huber', 'quantile', got {type(x).__name__} {x!r}")

    @staticmethod
    def from_dict(d: Dict[str, Any]) -> Loss:
        """Inverse of ``loss.to_dict()`` (also accepts the ``__type__`` key nested configs carry)."""
        if not isinstance(d, dict):
            raise TypeError(f"LossFunction.from_dict needs a dict, got {type(d).__name__}")
        d = {k: v for k, v in d.items() if k != "__type__"}
        kind = d.pop("name", None)
        if kind in ("mae", "mse", "negative_log_likelihood"):
            if d:
                raise ValueError(f"unknown fields for the {kind} loss: {', '.join(sorted(d))}")
            return _BY_NAME[kind]()
        if kind == "huber":
            return HuberLoss(HuberConfig.from_dict(d))
        if kind == "quantile":
            return QuantileLoss(QuantileConfig.from_dict(d))
        if kind == "weighted":
            return WeightedLoss(WeightedConfig.from_dict(d))
        raise ValueError(f"unknown loss name {kind!r} in dict; valid: mae, mse, huber, quantile, weighted, "
                         "negative_log_likelihood")


LossFunction.MAE = MAELoss()
LossFunction.MSE = MSELoss()
LossFunction.NegativeLogLikelihood = NegativeLogLikelihoodLoss()

_BY_NAME: Dict[str, Callable[[], Loss]] = {
    "mae": lambda: LossFunction.MAE,
    "mse": lambda: LossFunction.MSE,
    "huber": HuberLoss,
    "quantile": QuantileLoss,
    "negative_log_likelihood": lambda: LossFunction.NegativeLogLikelihood,
}

# Nested in other configs (TrainingConfig.loss_function, WeightedConfig.base_loss), a loss is encoded as
# {"__type__": <class name>, **loss.to_dict()}; registering the classes lets _config decode it.
for _cls in (MAELoss, MSELoss, HuberLoss, QuantileLoss, WeightedLoss, NegativeLogLikelihoodLoss):
    _REGISTRY[_cls.__name__] = _cls
del _cls
