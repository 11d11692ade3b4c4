"""DeepAR (Salinas, Flunkert, Gasthaus & Januschowski, 2020): an autoregressive recurrent network that
forecasts a probability distribution per step and is sampled for sample paths.

**Inputs at step t** (one vector per step, fed to a stack of LSTM layers):

* the lagged target ``y_{t-l} / s`` for every lag ``l``: 1..7 plus, for the seasonal period m of the data's
  frequency (24 for hourly data, 7 for daily, 12 for monthly, ...; ``season_length`` overrides it), the
  lags ``k m - 1, k m, k m + 1`` for k = 1, 2, 3 and, for hourly data, the week ``168 +- 1``
  (``lags`` overrides the whole list). Lags that reach before a series' first value read 0;
* calendar features of ``ds_t`` (``time_features=True``, datetime data): hour of day, day of week, day of
  month, day of year, week of year, month of year (those finer than a season of the frequency are
  left out), each mapped to ``[-0.5, 0.5]``; for integer ``ds`` with a seasonal period m > 1, the position
  in the season ``(ds mod m) / (m - 1) - 0.5``;
* the age ``log10(2 + position of t in its series)``;
* ``log(scale)`` and ``log(1 + |location|)`` of the window, the numeric static columns named in ``static_features``; the exogenous columns named
  in ``exog_features`` (standardised with their training mean and deviation; their future values are
  given to ``predict(data, futr_exog=...)``).

**Scaling.** Each window is scaled by statistics of its context (the ``input_size`` values before the
forecast). ``scaler='standard'`` (the default) uses the context's mean and standard deviation:
``z = (y - mean) / sd``; ``scaler='mean_abs'`` is the paper's ``z = y / mean |y|``. The network sees
scaled lags and ``log(scale)``, ``log(1 + |location|)`` as inputs and emits the likelihood's raw parameters
for ``z`` (forecasts are mapped back). Why the default differs from the paper: on M4 Hourly a third of the
series vary by less than 2% of their level from one day to the next, so after dividing by ``mean |y|``
their whole signal sits within +-0.01 of 1 and the network's small relative errors became large scaled
errors (MASE 2.48, OWA 0.915 with 'mean_abs'; see bench/RESULTS.md). The NegativeBinomial always uses the
paper's count scaling: its mean is multiplied by ``s = mean |y|`` and its shape divided by ``sqrt(s)``, so
counts stay counts. A zero ``mean |y|`` becomes 1; a zero deviation (a constant context) becomes ``mean |y|``.

**Training** (``fit``): negative log-likelihood with teacher forcing over the whole window (context +
horizon, ``input_size + horizon`` steps, every step predicting its own value from the true past). The
loss is ``LossFunction.NegativeLogLikelihood`` (the default 'mae' of TrainingConfig is read as "not set");
the likelihood is ``TrainingConfig.likelihood``. Training runs on the loop every model shares
(training/trainer.py, through :meth:`DeepAR._training_hooks`: this model builds its own windows and
loss, the loop does the rest), so windows, batches, the optimizer, learning-rate schedule, warmup,
clipping (default ``ByNorm(10.0)``), L1/L2, early stopping, validation split, callbacks, the monitor,
the visualizer, checkpoints (``save_checkpoint`` / ``load_checkpoint`` / ``resume_training``, exact in a
new process), fault tolerance and graceful shutdown work as for every model. Augmentation
(``with_data_augmentation``) scales the scaled lag inputs and targets of a window by one random factor
and jitters the lag inputs (refused for the NegativeBinomial, whose targets are raw counts). The
validation loss is the teacher-forced NLL of the horizon steps; metrics of point forecasts (MAE, MAPE,
RMSE, SMAPE) are not computed during training and asking a monitor or early stopping for them raises a
ValueError. Options of other model families (teacher forcing ratio, sequence length, attention dropout,
batch norm, label smoothing) raise a ValueError.

**Prediction**: the network is run over the last ``input_size`` values of each series, then
``TrainingConfig.sample_size`` paths are drawn by ancestral sampling (each step's draw is fed back as the
next steps' lag). :meth:`predict_samples` returns them as ``(series, samples, horizon)``; :meth:`predict`
returns the median (main column), ``-median``, ``-mean``, one column per ``quantile_levels`` level
(``DeepAR-q-0.1``) and, for ``level=[80, 90]``, ``DeepAR-lo-80`` / ``DeepAR-hi-80`` (the 10% and 90%
quantiles of the paths), as NeuralForecast names them. Sampling is repeatable: the seed is the training
config's seed unless ``seed=`` is given (a checkpoint or model file records it with the config, so a loaded
model draws the same paths).
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .._config import cfg_field, config_class, fraction, optional, positive_int
from ..nn import functional as F
from ..nn import layers
from ..nn.init import linear_init, uniform
from ..nn.params import ParameterBuffer
from ..nn.tape import Tape, Var
from ..training.config import TrainingConfig
from ..training.likelihood import Likelihood
from ..training.logs import TrainingLogs
from .base import BaseModel, register

__all__ = ["DeepAR", "DeepARConfig"]


def _alias(name, v):
    if v is not None and (not isinstance(v, str) or not v):
        raise TypeError(f"{name} must be a non-empty str or None, got {v!r}")
    return v


def _lags(name, v):
    if v is None:
        return None
    if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
        raise TypeError(f"{name} must be a sequence of positive ints or None, got {v!r}")
    out = []
    for i, x in enumerate(v):
        if isinstance(x, bool) or not isinstance(x, numbers.Integral) or x < 1:
            raise ValueError(f"{name}[{i}] must be an int >= 1, got {x!r}")
        out.append(int(x))
    if not out:
        raise ValueError(f"{name} must not be empty (lag 1 is the usual minimum)")
    if len(set(out)) != len(out):
        raise ValueError(f"{name} has duplicates: {out}")
    return tuple(sorted(out))


def _names(name, v):
    if v is None:
        return ()
    if isinstance(v, str):
        v = (v,)
    out = tuple(v)
    for i, x in enumerate(out):
        if not isinstance(x, str) or not x:
            raise TypeError(f"{name}[{i}] must be a column name (non-empty str), got {x!r}")
    if len(set(out)) != len(out):
        raise ValueError(f"{name} has duplicates: {list(out)}")
    return out


SCALERS = ("standard", "mean_abs")


def _scaler(name, v):
    if v not in SCALERS:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, SCALERS))}, got {v!r}")
    return v


def _bool(name, v):
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {v!r}")
    return bool(v)


@config_class
class DeepARConfig:
    """Configuration of DeepAR: context and horizon, network size, lags and features (see the module
    docstring). Defaults: one LSTM layer of 40 units (the paper's width; it stacks 2-3 layers, which
    doubles or triples the training time on a CPU), dropout 0.05 on every layer's output, the last one's
    too (before the head). On M4 Hourly that dropout brought the 80% interval's coverage from 68% to 87%
    (the intervals of a model without it were too narrow) at about the same OWA (bench/RESULTS.md)."""

    input_size: Optional[int] = cfg_field(None, optional(positive_int),
                                          "Context length: steps the network is run over before forecasting.")
    horizon: Optional[int] = cfg_field(None, optional(positive_int), "Steps forecast.")
    hidden_size: int = cfg_field(40, positive_int, "Units per LSTM layer.")
    num_layers: int = cfg_field(1, positive_int, "Stacked LSTM layers (the paper uses 2-3; 1 keeps CPU training fast).")
    dropout: float = cfg_field(0.05, fraction, "Dropout on every LSTM layer's output (training only).")
    lags: Optional[Tuple[int, ...]] = cfg_field(None, _lags, "Target lags fed to the network (None: from the frequency).")
    season_length: Optional[int] = cfg_field(None, optional(positive_int),
                                             "Seasonal period for the default lags (None: the data frequency's).")
    time_features: bool = cfg_field(True, _bool, "Calendar features from ds (and the season position for int ds).")
    scaler: str = cfg_field("standard", lambda n, v: _scaler(n, v),
                            "'standard' (context mean and deviation) or 'mean_abs' (the paper's mean |y|); "
                            "NegativeBinomial always uses mean_abs.")
    static_features: Tuple[str, ...] = cfg_field((), _names, "Numeric static columns used as inputs.")
    exog_features: Tuple[str, ...] = cfg_field((), _names, "Exogenous columns used as inputs (future values needed).")
    alias: Optional[str] = cfg_field(None, _alias, "Column name of the forecast (default: the class name).")


# --------------------------------------------------------------------------------------- features
_TIME_FEATURES = ("second_of_minute", "minute_of_hour", "hour_of_day", "day_of_week", "day_of_month",
                  "day_of_year", "week_of_year", "month_of_year")
_BY_UNIT = {
    "s": ("second_of_minute", "minute_of_hour", "hour_of_day", "day_of_week"),
    "min": ("minute_of_hour", "hour_of_day", "day_of_week", "day_of_month"),
    "H": ("hour_of_day", "day_of_week", "day_of_month", "day_of_year"),
    "D": ("day_of_week", "day_of_month", "day_of_year"),
    "W": ("day_of_month", "week_of_year"),
    "M": ("month_of_year",),
    "Q": ("month_of_year",),
    "Y": (),
}


def time_feature_values(name: str, ds: np.ndarray) -> np.ndarray:
    """One calendar feature of datetime64 timestamps, in [-0.5, 0.5] (float64)."""
    ds = np.asarray(ds).astype("datetime64[s]")
    day = ds.astype("datetime64[D]")
    if name == "second_of_minute":
        v, n = (ds - ds.astype("datetime64[m]")).astype(np.int64), 60
    elif name == "minute_of_hour":
        v, n = (ds.astype("datetime64[m]") - ds.astype("datetime64[h]")).astype(np.int64), 60
    elif name == "hour_of_day":
        v, n = (ds.astype("datetime64[h]") - day).astype(np.int64), 24
    elif name == "day_of_week":  # Monday = 0 (1970-01-01 was a Thursday)
        v, n = (day.astype(np.int64) + 3) % 7, 7
    elif name == "day_of_month":
        v, n = (day - day.astype("datetime64[M]")).astype(np.int64), 31
    elif name == "day_of_year":
        v, n = (day - day.astype("datetime64[Y]")).astype(np.int64), 366
    elif name == "week_of_year":
        v, n = (day - day.astype("datetime64[Y]")).astype(np.int64) // 7, 53
    elif name == "month_of_year":
        v, n = (ds.astype("datetime64[M]") - ds.astype("datetime64[Y]")).astype(np.int64), 12
    else:
        raise ValueError(f"unknown time feature {name!r}; valid: {', '.join(_TIME_FEATURES)}")
    return v / (n - 1) - 0.5


def default_lags(unit: Optional[str], n: int, season: int) -> Tuple[int, ...]:
    lags = set(range(1, 8))
    if season > 1:
        for k in (1, 2, 3):
            lags.update((k * season - 1, k * season, k * season + 1))
    if unit == "H" and n == 1:
        lags.update((167, 168, 169))
    return tuple(sorted(x for x in lags if x >= 1))


# --------------------------------------------------------------------------------------- the model
@register
class DeepAR(BaseModel):
    config_class = DeepARConfig
    supports_teacher_forcing = False
    supports_sequence_length = False

    def __init__(self, config: Optional[DeepARConfig] = None):
        super().__init__(config)
        self.likelihood: Likelihood = Likelihood.Gaussian
        self.lags: Tuple[int, ...] = ()
        self.time_feature_names: Tuple[str, ...] = ()
        self.season: int = 1  # season position feature for integer ds (1: none)
        self.exog_stats: Dict[str, Tuple[float, float]] = {}
        self.freq: Optional[str] = None

    @property
    def default_gradient_clipping(self):
        from ..training.regularization import GradientClipping

        return GradientClipping.ByNorm(10.0)

    # ---------------------------------------------------------------- structure (decided at fit)
    @property
    def n_inputs(self) -> int:
        c = self.config
        n_time = len(self.time_feature_names) + (1 if self.season > 1 else 0)
        return len(self.lags) + n_time + 3 + len(c.static_features) + len(c.exog_features)

    def _structure(self) -> Dict[str, Any]:
        d = super()._structure()
        d.update(likelihood=self.likelihood.value, lags=list(self.lags), time_features=list(self.time_feature_names),
                 season=self.season, exog_stats={k: list(v) for k, v in self.exog_stats.items()}, freq=self.freq)
        return d

    def _set_structure(self, d: Dict[str, Any]) -> None:
        super()._set_structure(d)
        self.likelihood = Likelihood.coerce("likelihood", d.get("likelihood", "gaussian"))
        self.lags = tuple(int(x) for x in d.get("lags", ()))
        self.time_feature_names = tuple(d.get("time_features", ()))
        self.season = int(d.get("season", 1))
        self.exog_stats = {k: (float(v[0]), float(v[1])) for k, v in (d.get("exog_stats") or {}).items()}
        self.freq = d.get("freq")

    def _decide_structure(self, data, config: TrainingConfig) -> Dict[str, Any]:
        c = self.config
        freq = data.freq
        unit = None if freq is None else freq.unit
        n = 1 if freq is None else freq.n
        season = c.season_length if c.season_length is not None else (1 if freq is None else freq.seasonality)
        lags = c.lags if c.lags is not None else default_lags(unit, n, season)
        tf: Tuple[str, ...] = ()
        season_feat = 1
        if c.time_features:
            if data.is_datetime and unit in _BY_UNIT:
                tf = _BY_UNIT[unit]
            elif not data.is_datetime and season > 1:
                season_feat = season
        exog_stats = {}
        for name in c.exog_features:
            if name not in data.exog:
                raise ValueError(f"exog_features names {name!r}, which is not an exogenous column of the data "
                                 f"(exogenous columns: {sorted(data.exog) or 'none'})")
            v = np.asarray(data.exog[name], np.float64)
            sd = float(v.std())
            exog_stats[name] = (float(v.mean()), sd if sd > 1e-12 else 1.0)
        for name in c.static_features:
            if name not in data.static:
                raise ValueError(f"static_features names {name!r}, which is not a static column of the data "
                                 f"(static columns: {sorted(data.static) or 'none'})")
            if data.static[name].dtype.kind not in "fiub":
                raise ValueError(f"static column {name!r} is not numeric (dtype {data.static[name].dtype}); "
                                 "encode it as numbers to use it as a DeepAR input")
        return {"n_outputs": 1, "quantiles": None, "batch_norm": False, "likelihood": config.likelihood.value,
                "lags": list(lags), "time_features": list(tf), "season": season_feat,
                "exog_stats": {k: list(v) for k, v in exog_stats.items()}, "freq": None if freq is None else str(freq)}

    # ---------------------------------------------------------------- parameters
    def _parameter_specs(self) -> List[Tuple[str, Tuple[int, ...]]]:
        self._require_sizes()
        c = self.config
        H, G = c.hidden_size, 4 * c.hidden_size
        specs = []
        for l in range(c.num_layers):
            i = self.n_inputs if l == 0 else H
            specs += [(f"rnn.weight_ih_l{l}", (G, i)), (f"rnn.weight_hh_l{l}", (G, H)),
                      (f"rnn.bias_ih_l{l}", (G,)), (f"rnn.bias_hh_l{l}", (G,))]
        specs += [("head.weight", (self.likelihood.n_params, H)), ("head.bias", (self.likelihood.n_params,))]
        return specs

    def _init_parameters(self, rng: np.random.Generator) -> None:
        bound = 1.0 / math.sqrt(self.config.hidden_size)  # torch.nn.LSTM's default
        for name in self.params.names:
            if name.startswith("rnn."):
                uniform(rng, self.params[name], bound)
        # forget-gate bias 1 (a common LSTM initialisation that helps long memories)
        H = self.config.hidden_size
        for l in range(self.config.num_layers):
            self.params[f"rnn.bias_ih_l{l}"][H:2 * H] = 1.0
        linear_init(rng, self.params["head.weight"], self.params["head.bias"])

    # ---------------------------------------------------------------- the network
    def _lstm_layer(self, tape: Optional[Tape], x: Var, l: int, h0=None, c0=None, need_dx=True):
        pb = self.params
        names = [f"rnn.{n}_l{l}" for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        w = [pb[n] for n in names]
        out = F.lstm_forward(x.data, *w, h0=h0, c0=c0)
        y = tape.var(out.y) if tape is not None else Var(out.y, -1)
        if tape is not None:
            grads = [pb.grad_of(n) for n in names]

            def backward(gs):
                r = F.lstm_backward(out.cache, gs[0], None, None, need_dx=need_dx, dw_ih=grads[0], dw_hh=grads[1],
                                    db_ih=grads[2], db_hh=grads[3])
                return [r.dx]

            tape.record_multi([y], [x], backward)
        return y, out.h, out.c

    def _network(self, x: np.ndarray, tape: Optional[Tape], rng, states=None):
        """x (B, T, I) -> raw likelihood outputs Var (B*T, P) and the final (h, c) of every layer."""
        B, T, _ = x.shape
        v = tape.var(x) if tape is not None else Var(x, -1)
        finals = []
        p = self._dropout_rate() if tape is not None else 0.0
        for l in range(self.config.num_layers):
            h0, c0 = states[l] if states is not None else (None, None)
            v, h, c = self._lstm_layer(tape, v, l, h0, c0, need_dx=l > 0)
            finals.append((h, c))
            if p > 0 and rng is not None:  # after every layer, the last one too (before the head)
                dt = v.data.dtype
                keep = (rng.random(v.data.shape, dtype=dt) >= p) * dt.type(1.0 / (1.0 - p))
                dropped = tape.var(v.data * keep)
                tape.record(dropped, (v,), lambda dy, keep=keep: (dy * keep,))
                v = dropped
        flat = layers.reshape(tape, v, (B * T, -1))
        raw = layers.linear(tape, self.params, flat, "head.weight", "head.bias")
        return raw, finals

    # ---------------------------------------------------------------- inputs
    def _row_features(self, data) -> np.ndarray:
        """Per data row: calendar features, season position and age (N, F) float64."""
        cols = []
        ds = data.ds
        for name in self.time_feature_names:
            cols.append(time_feature_values(name, ds))
        if self.season > 1:
            cols.append((ds.astype(np.int64) % self.season) / (self.season - 1) - 0.5)
        pos = np.arange(len(data.y)) - np.repeat(data.offsets[:-1], data.lengths)
        cols.append(np.log10(2.0 + pos))
        return np.stack(cols, axis=1) if cols else np.zeros((len(data.y), 0))

    def _future_features(self, data, h: int, futr_exog=None) -> Tuple[np.ndarray, np.ndarray]:
        """(S, h, F) calendar/season/age features and (S, h, E) standardised exogenous values of the
        steps after each series' end."""
        fds = data.future_ds(h)
        S = data.n_series
        cols = []
        for name in self.time_feature_names:
            cols.append(time_feature_values(name, fds.reshape(-1)).reshape(S, h))
        if self.season > 1:
            cols.append((fds.astype(np.int64) % self.season) / (self.season - 1) - 0.5)
        pos = data.lengths[:, None] + np.arange(h)[None, :]
        cols.append(np.log10(2.0 + pos))
        feats = np.stack(cols, axis=2)
        names = self.config.exog_features
        ex = np.zeros((S, h, len(names)))
        if names:
            if futr_exog is None:
                raise ValueError(f"this DeepAR uses exogenous columns {list(names)}: pass their future values with "
                                 f"predict(data, futr_exog={{name: array of shape ({S}, {h})}})")
            for j, name in enumerate(names):
                if name not in futr_exog:
                    raise ValueError(f"futr_exog has no {name!r} (needed: {list(names)})")
                a = np.asarray(futr_exog[name], np.float64)
                if a.shape != (S, h):
                    raise ValueError(f"futr_exog[{name!r}] must have shape ({S}, {h}) (series, horizon), got {a.shape}")
                if not np.all(np.isfinite(a)):
                    raise ValueError(f"futr_exog[{name!r}] holds NaN or inf")
                m, sd = self.exog_stats[name]
                ex[:, :, j] = (a - m) / sd
        return feats, ex

    def _static_matrix(self, data) -> np.ndarray:
        names = self.config.static_features
        if not names:
            return np.zeros((data.n_series, 0))
        for name in names:
            if name not in data.static:
                raise ValueError(f"the data has no static column {name!r} (this DeepAR uses {list(names)})")
        return np.stack([np.asarray(data.static[n], np.float64) for n in names], axis=1)

    def _exog_rows(self, data) -> np.ndarray:
        names = self.config.exog_features
        if not names:
            return np.zeros((len(data.y), 0))
        cols = []
        for name in names:
            if name not in data.exog:
                raise ValueError(f"the data has no exogenous column {name!r} (this DeepAR uses {list(names)})")
            m, sd = self.exog_stats[name]
            cols.append((np.asarray(data.exog[name], np.float64) - m) / sd)
        return np.stack(cols, axis=1)

    def _lag_values(self, y: np.ndarray, starts: np.ndarray, pos: np.ndarray, loc: np.ndarray,
                    scale: np.ndarray) -> np.ndarray:
        """Scaled y at series positions pos - lag, (y - loc) / scale (B, T, L); 0 before a series' start.
        pos (B, T), starts, loc, scale (B,)."""
        lag = np.asarray(self.lags, np.int64)
        p = pos[:, :, None] - lag[None, None, :]
        ok = p >= 0
        rows = starts[:, None, None] + np.where(ok, p, 0)
        return np.where(ok, (y[rows] - loc[:, None, None]) / scale[:, None, None], 0.0)

    def _context_stats(self, y_ctx: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Location and scale (B,) of context windows (B, C): (0, mean |y|) for 'mean_abs' and counts,
        (mean, standard deviation) for 'standard'. A zero mean |y| becomes 1; a deviation below
        1e-8 * max(1, |mean|) (a constant context) becomes the mean |y| (1 if that is 0)."""
        mabs = np.abs(y_ctx).mean(axis=1)
        mabs = np.where(mabs > 0, mabs, 1.0)
        if self.likelihood.is_count or self.config.scaler == "mean_abs":
            return np.zeros_like(mabs), mabs
        loc = y_ctx.mean(axis=1)
        sd = y_ctx.std(axis=1)
        sd = np.where(sd > 1e-8 * np.maximum(1.0, np.abs(loc)), sd, mabs)
        return loc, sd

    def _window_batch(self, ctx: "_DataContext", s: np.ndarray, t: np.ndarray):
        """Inputs (B, T, I) float32, targets (B, T) and scale (B,) of windows (series s, cutoff t)."""
        C, h = self._require_sizes()
        T = C + h
        starts = ctx.offsets[s]
        pos = (t - C)[:, None] + np.arange(T)[None, :]  # positions in the series
        rows = starts[:, None] + pos
        y = ctx.y[rows]
        loc, scale = self._context_stats(y[:, :C])
        lagv = self._lag_values(ctx.y, starts, pos, loc, scale)
        x = self._assemble(lagv, ctx.feats[rows], loc, scale, ctx.static[s], ctx.exog[rows])
        target = y if self.likelihood.is_count else (y - loc[:, None]) / scale[:, None]
        return x, target, scale

    def _assemble(self, lagv, feats, loc, scale, static, exog) -> np.ndarray:
        B, T = lagv.shape[:2]
        level = np.stack([np.log(scale), np.log1p(np.abs(loc))], axis=1)  # (B, 2)
        parts = [lagv, feats, np.broadcast_to(level[:, None, :], (B, T, 2))]
        if static.shape[1]:
            parts.append(np.broadcast_to(static[:, None, :], (B, T, static.shape[1])))
        if exog.shape[-1]:
            parts.append(exog)
        return np.ascontiguousarray(np.concatenate(parts, axis=2), dtype=self.params.data.dtype)

    def _nll(self, raw: np.ndarray, target: np.ndarray, scale: np.ndarray, weight=None, grad: bool = True):
        """Mean NLL of targets (B, T) under raw outputs (B*T, P), and its gradient."""
        from ..training.losses import LossFunction

        B, T = target.shape
        tgt = np.ascontiguousarray(target.reshape(-1), dtype=raw.dtype)
        sc = np.repeat(scale, T).astype(raw.dtype) if self.likelihood.is_count else None
        w = None if weight is None else np.ascontiguousarray(weight.reshape(-1), dtype=raw.dtype)
        loss = LossFunction.NegativeLogLikelihood
        if grad:
            return loss.likelihood_value_and_grad(self.likelihood, raw, tgt, sc, w)
        return loss.likelihood_value(self.likelihood, raw, tgt, sc, w), None

    # ---------------------------------------------------------------- training
    _UNSUPPORTED = (("label_smoothing", 0.0), ("teacher_forcing_ratio", None), ("sequence_length", None),
                    ("attention_dropout", 0.0), ("batch_norm", False))

    def _check_options(self, config: TrainingConfig) -> None:
        from ..training.losses import NegativeLogLikelihoodLoss

        lf = config.loss_function
        if not (isinstance(lf, str) and lf == "mae") and not isinstance(lf, NegativeLogLikelihoodLoss):
            raise ValueError(f"DeepAR trains by negative log-likelihood: use LossFunction.NegativeLogLikelihood "
                             f"(with_likelihood picks the distribution), got loss_function={lf!r}")
        for name, default in self._UNSUPPORTED:
            v = getattr(config, name, default)
            if v != default and v is not None and not (isinstance(v, tuple) and not v):
                raise ValueError(f"{name}={v!r} is set but DeepAR does not support it; remove with_{name}")
        if config.data_augmentation is not None and config.likelihood.is_count:
            raise ValueError("data_augmentation is set but DeepAR with Likelihood.NegativeBinomial trains on the raw "
                             "counts, which random scaling and jitter would turn into non-counts; remove "
                             "with_data_augmentation or use a continuous likelihood")

    def _check_counts(self, data) -> None:
        y = data.y
        bad = ~((y >= 0) & (y == np.floor(y)))
        if bad.any():
            rows = np.flatnonzero(bad)
            sid = np.searchsorted(data.offsets, rows, side="right") - 1
            names = list(dict.fromkeys(str(data.ids[i]) for i in sid))
            shown = ", ".join(repr(n) for n in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            raise ValueError(f"Likelihood.NegativeBinomial needs non-negative integer targets (counts); "
                             f"{len(rows)} value(s) are not, e.g. {y[rows[0]]!r} in series {shown}")

    def fit_with_config(self, data, config: TrainingConfig) -> TrainingLogs:
        """Train by negative log-likelihood on the shared training loop (see the module docstring). On any
        error the model is left exactly as it was before."""
        if not isinstance(config, TrainingConfig):
            raise TypeError(f"config must be a TrainingConfig, got {type(config).__name__}")
        self._check_training_data(data, config)
        return self._train(data, config, None, None)

    def _train(self, data, config: TrainingConfig, loss, resume) -> TrainingLogs:
        """``fit`` (``resume`` None: the structure is decided from the data) and ``resume_training``
        (the structure of the checkpoint or of the last fit is kept) on training/trainer.py's loop."""
        from ..training.losses import LossFunction
        from ..training.trainer import train

        self._check_options(config)
        if config.likelihood.is_count:
            self._check_counts(data)
        previous = (self.params, self.training_logs, self.training_config, self._structure(), self.buffers,
                    self._train_state, self._saved_training_config)
        try:
            if resume is None:
                self._set_structure(self._decide_structure(data, config))
            elif self.likelihood is not config.likelihood:
                raise ValueError(f"the checkpoint's DeepAR has a {self.likelihood.name} head, the config asks for "
                                 f"Likelihood.{config.likelihood.name}")
            self.params = ParameterBuffer(self._parameter_specs())
            logs = train(self, data.y, data.offsets, config, ds=data.ds, loss=LossFunction.NegativeLogLikelihood,
                         resume=resume, data=data)
        except BaseException:
            (self.params, self.training_logs, self.training_config, structure, self.buffers,
             self._train_state, self._saved_training_config) = previous
            self._set_structure(structure)
            raise
        self.training_logs = logs
        self.training_config = config
        self._saved_training_config = None
        return logs

    def _training_hooks(self, data, config: TrainingConfig) -> "_NLLTraining":
        """DeepAR's batches for the shared loop (training/trainer.py, "Models with a batch of their own")."""
        return _NLLTraining(self, data)

    def _validation_nll(self, ctx: "_DataContext", sampler, batch: int = 512) -> float:
        """Mean NLL of the horizon steps of every validation window (teacher-forced, no dropout)."""
        C, h = self._require_sizes()
        total, count = 0.0, 0
        for a in range(0, sampler.n_windows, batch):
            idx = np.arange(a, min(sampler.n_windows, a + batch))
            s, t = sampler.locate(idx)
            x, target, scale = self._window_batch(ctx, s, t)
            raw, _ = self._network(x, None, None)
            w = np.zeros(target.shape)
            w[:, C:] = 1.0
            v, _ = self._nll(raw.data, target, scale, w, grad=False)
            total += v * len(idx) * h
            count += len(idx) * h
        return total / count

    # ---------------------------------------------------------------- sampling
    def _resolve_sample_args(self, n_samples, seed) -> Tuple[int, int]:
        tc = self.training_config
        # a file whose training config cannot be rebuilt (it names a user callback) still holds its seed
        # and sample size in the saved config dict: sampling stays the one of the run that wrote it
        saved = self._saved_training_config if isinstance(self._saved_training_config, dict) else {}
        if n_samples is None:
            n_samples = tc.sample_size if tc is not None else saved.get("sample_size", 100)
        if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) or n_samples < 1:
            raise ValueError(f"n_samples must be an int >= 1, got {n_samples!r}")
        if seed is None:
            seed = tc.seed if tc is not None else saved.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        return int(n_samples), int(seed)

    def predict_samples(self, data, n_samples: Optional[int] = None, seed: Optional[int] = None,
                        futr_exog: Optional[Mapping[str, Any]] = None) -> np.ndarray:
        """Sample paths (series, samples, horizon) float64 of the ``horizon`` steps after each series' end,
        by ancestral sampling. ``n_samples`` defaults to ``TrainingConfig.sample_size`` of the fit (100),
        ``seed`` to its seed: the same seed gives the same paths."""
        from ..data.frame import TimeSeriesDataFrame

        self._require_fitted()
        if not isinstance(data, TimeSeriesDataFrame):
            raise TypeError(f"data must be a TimeSeriesDataFrame, got {type(data).__name__}")
        C, h = self._require_sizes()
        data.check_length(C, what=f"input_size = {C}")
        if self.likelihood.is_count:
            self._check_counts(data)
        n, seed = self._resolve_sample_args(n_samples, seed)
        ctx = _DataContext(self, data)
        fut_feats, fut_exog = self._future_features(data, h, futr_exog)
        S = data.n_series
        out = np.empty((S, n, h))
        # series in chunks so that (series x samples) rows stay moderate
        chunk = max(1, 16384 // n)
        for a in range(0, S, chunk):
            sl = np.arange(a, min(S, a + chunk))
            out[sl] = self._sample_chunk(ctx, data, sl, n, seed, fut_feats[sl], fut_exog[sl])
        return out

    def _sample_chunk(self, ctx, data, sl, n, seed, fut_feats, fut_exog) -> np.ndarray:
        C, h = self._require_sizes()
        lengths = data.lengths[sl]
        starts = ctx.offsets[sl]
        B = len(sl)
        # condition on the last C steps (teacher-forced)
        pos = (lengths - C)[:, None] + np.arange(C)[None, :]
        rows = starts[:, None] + pos
        y_ctx = ctx.y[rows]
        loc, scale = self._context_stats(y_ctx)
        lagv = self._lag_values(ctx.y, starts, pos, loc, scale)
        x = self._assemble(lagv, ctx.feats[rows], loc, scale, ctx.static[sl], ctx.exog[rows])
        _, finals = self._network(x, None, None)
        states = [(np.repeat(hh, n, axis=0), np.repeat(cc, n, axis=0)) for hh, cc in finals]
        # history of scaled values the lags read: the last max_lag true values, then the samples
        lag = np.asarray(self.lags, np.int64)
        M = int(lag.max())
        hpos = lengths[:, None] + np.arange(-M, 0)[None, :]
        ok = hpos >= 0
        hist_true = np.where(ok, (ctx.y[starts[:, None] + np.where(ok, hpos, 0)] - loc[:, None]) / scale[:, None], 0.0)
        buf = np.zeros((B * n, M + h))
        buf[:, :M] = np.repeat(hist_true, n, axis=0)
        scale_r = np.repeat(scale, n)
        loc_r = np.repeat(loc, n)
        static_r = np.repeat(ctx.static[sl], n, axis=0)
        feats_r = np.repeat(fut_feats, n, axis=0)  # (B*n, h, F)
        exog_r = np.repeat(fut_exog, n, axis=0)
        step_seeds = np.random.default_rng(np.random.SeedSequence([seed, 0xDEE9A2, int(sl[0])])).integers(
            0, 2**62, size=h)
        out = np.empty((B * n, h))
        kind = self.likelihood.kind
        for j in range(h):
            lagv = buf[:, M + j - lag][:, None, :]
            xj = self._assemble(lagv, feats_r[:, j:j + 1], loc_r, scale_r, static_r, exog_r[:, j:j + 1])
            raw, finals = self._network(xj, None, None, states=states)
            states = [(hh, cc) for hh, cc in finals]
            params = F.likelihood_params(kind, raw.data.astype(np.float64),
                                         scale_r if self.likelihood.is_count else None)
            draw = F.likelihood_sample(kind, params, int(step_seeds[j]))
            if self.likelihood.is_count:
                out[:, j] = draw
                buf[:, M + j] = draw / scale_r
            else:
                out[:, j] = loc_r + draw * scale_r
                buf[:, M + j] = draw
        return out.reshape(B, n, h)

    # ---------------------------------------------------------------- forecasts
    def predict(self, data, level: Optional[Sequence[float]] = None, *, n_samples: Optional[int] = None,
                seed: Optional[int] = None, futr_exog: Optional[Mapping[str, Any]] = None):
        """Forecast frame: ``<alias>`` (the median of the sample paths), ``<alias>-median``, ``<alias>-mean``,
        ``<alias>-q-<level>`` for each of ``TrainingConfig.quantile_levels`` and, for every ``level`` (e.g.
        ``[80, 90]``), ``<alias>-lo-80`` / ``<alias>-hi-80``: the central 80% interval of the paths."""
        from ..data.forecast import ForecastFrame
        from ..validation.probabilistic import check_levels, interval_quantiles

        levels = check_levels(level)
        samples = self.predict_samples(data, n_samples=n_samples, seed=seed, futr_exog=futr_exog)
        tc = self.training_config
        qs = tuple(tc.quantile_levels) if tc is not None else (0.1, 0.5, 0.9)
        a = self.alias
        med = np.median(samples, axis=1)
        cols = {a: med, f"{a}-median": med, f"{a}-mean": samples.mean(axis=1)}
        qv = np.quantile(samples, qs, axis=1)  # (Q, S, h), monotone in the level
        for i, q in enumerate(qs):
            cols[f"{a}-q-{q:g}"] = qv[i]
        for lv in levels:
            lo_q, hi_q = interval_quantiles(lv)
            cols[f"{a}-lo-{lv:g}"] = np.quantile(samples, lo_q, axis=1)
            cols[f"{a}-hi-{lv:g}"] = np.quantile(samples, hi_q, axis=1)
        return ForecastFrame.from_arrays(data.ids, data.future_ds(self._require_sizes()[1]), cols)

    def predict_array(self, windows: np.ndarray) -> np.ndarray:
        raise NotImplementedError("DeepAR forecasts from whole series (it needs their lags and timestamps): use "
                                  "predict(data) or predict_samples(data)")

    def predict_outputs(self, windows: np.ndarray) -> np.ndarray:
        return self.predict_array(windows)


class _DataContext:
    """Per-row arrays of one data frame that every batch gathers from."""

    def __init__(self, model: DeepAR, data) -> None:
        self.y = np.asarray(data.y, np.float64)
        self.offsets = np.asarray(data.offsets[:-1], np.int64)
        self.feats = model._row_features(data)
        self.static = model._static_matrix(data)
        self.exog = model._exog_rows(data)


class _NLLTraining:
    """DeepAR's side of the shared training loop: teacher-forced windows (lags, calendar / age features,
    the window scaler) and the negative log-likelihood of the likelihood outputs (training/trainer.py's
    module docstring describes the protocol)."""

    # metrics of point forecasts of the validation windows: DeepAR's validation is the teacher-forced NLL
    _POINT_METRICS = ("MAE", "MAPE", "RMSE", "SMAPE")

    def __init__(self, model: DeepAR, data) -> None:
        self.model = model
        self.ctx = _DataContext(model, data)

    def check(self, wanted) -> None:
        bad = sorted(m.name for m in wanted if m.name in self._POINT_METRICS)
        if bad:
            raise ValueError(f"DeepAR records the training and validation negative log-likelihood, not "
                             f"{', '.join('Metric.' + b for b in bad)} (metrics of point forecasts): early stopping "
                             f"and monitors can watch Metric.TrainingLoss / ValidationLoss / LearningRate / "
                             f"GradientNorm / EpochTime; measure forecasts with neurodivergent.validation")

    def fingerprint(self) -> bytes:
        c = self.ctx
        parts = [np.asarray([*c.feats.shape, *c.static.shape, *c.exog.shape], dtype="<i8").tobytes()]
        parts += [np.ascontiguousarray(a, dtype="<f8").tobytes() for a in (c.feats, c.static, c.exog)]
        return b"".join(parts)

    def train_step(self, sampler, idx: np.ndarray, tape: Tape, rng, augmentation, augmentation_rng):
        m = self.model
        s, t = sampler.locate(idx)
        x, target, scale = m._window_batch(self.ctx, s, t)
        if augmentation is not None:
            # the scaled lag inputs play the part of a window's input, the scaled targets of its target:
            # one random factor per window for both, jitter on the lag inputs only
            B, T, _ = x.shape
            L = len(m.lags)
            lag_in, target = augmentation.apply(np.ascontiguousarray(x[:, :, :L]).reshape(B, T * L), target,
                                                augmentation_rng)
            x[:, :, :L] = lag_in.reshape(B, T, L)
        raw, _ = m._network(x, tape, rng)
        value, draw = m._nll(raw.data, target, scale)
        return raw, value, draw

    def evaluate(self, sampler) -> Dict[str, float]:
        return {"validation_loss": self.model._validation_nll(self.ctx, sampler)}
