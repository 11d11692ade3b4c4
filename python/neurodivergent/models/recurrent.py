"""Recurrent forecasters (LSTM, GRU) over the C++ sequence kernels.

Direct multi-horizon (default, like NeuralForecast's recurrent models): the scaled input window is
read one value per step by a stack of ``num_layers`` recurrent layers (dropout between layers in
training). With ``decoder_input="sequence"`` (default) every hidden state of the last layer is used: a
context adapter (a linear map across time, window length -> horizon, shared by all hidden units) turns
the (T, H) states into one context vector per horizon step, and an MLP decoder (``decoder_layers``
hidden layers of ``decoder_hidden_size``, ReLU) shared by all steps maps each context to that step's
output(s). With ``decoder_input="last"`` only the final hidden state goes through the MLP decoder, to
``horizon`` outputs at once. The sequence decoder gives every horizon step a direct path to every
encoder state; on M4 Hourly it is what lets the default LSTM beat seasonal naive (bench/RESULTS.md).

Sequence-to-sequence (``mode="seq2seq"``): the encoder's final states start a recurrent decoder of
the same cell that unrolls ``horizon`` steps; its input at each step is the previous value — the true
one with probability ``TrainingConfig.teacher_forcing_ratio`` during training (teacher forcing), else
the model's own previous forecast (treated as a constant: no gradient flows through the fed-back
value) — and a linear layer maps each decoder state to that step's output(s).

``TrainingConfig.with_sequence_length(n)`` limits the encoder to the last ``n`` steps of the input
window (default: all of it). Gradient clipping by global norm 1.0 is on by default for these models, as
the guide recommends (``with_gradient_clipping(None)`` turns it off).
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import numpy as np

from .._config import cfg_field, fraction, nonneg_int, one_of, optional, positive_int
from ..data.scalers import SCALERS
from ..nn import functional as F
from ..nn import layers
from ..nn.init import linear_init, uniform
from ..nn.tape import Tape, Var
from .base import BaseModel

MODES = ("direct", "seq2seq")
DECODER_INPUTS = ("sequence", "last")


def _alias(name, v):
    if v is not None and (not isinstance(v, str) or not v):
        raise TypeError(f"{name} must be a non-empty str or None, got {v!r}")
    return v


# Fields shared by LSTMConfig and GRUConfig (each is its own config_class so that the two stay distinct).
def recurrent_fields():
    return dict(
        input_size=cfg_field(None, optional(positive_int), "Length of the input window."),
        horizon=cfg_field(None, optional(positive_int), "Steps forecast at once."),
        hidden_size=cfg_field(128, positive_int, "Units per recurrent layer."),
        num_layers=cfg_field(1, positive_int, "Stacked recurrent layers."),
        dropout=cfg_field(0.0, fraction, "Dropout between recurrent layers (training only)."),
        decoder_hidden_size=cfg_field(128, positive_int, "Units per hidden layer of the MLP decoder."),
        decoder_layers=cfg_field(1, nonneg_int, "Hidden layers of the MLP decoder (0: one linear layer)."),
        mode=cfg_field("direct", one_of(*MODES), "'direct' (MLP decoder) or 'seq2seq' (recurrent decoder)."),
        decoder_input=cfg_field("sequence", one_of(*DECODER_INPUTS),
                                "Direct mode: 'sequence' maps every encoder state to the horizon (context "
                                "adapter + per-step MLP) or 'last' feeds only the final state to the MLP."),
        scaler=cfg_field("standard", one_of(*SCALERS), "Per-window scaler (see data.scalers)."),
        alias=cfg_field(None, _alias, "Column name of the forecast (default: the class name)."),
    )


def make_config(name: str, module: str):
    """A config class for one recurrent cell, with the fields above (LSTMConfig, GRUConfig)."""
    from .._config import config_class

    fields = recurrent_fields()
    ns = {"__annotations__": {k: object for k in fields}, "__module__": module,
          "__doc__": f"Configuration of the {name[:-6]} forecaster: window length, horizon, layers, decoder, mode."}
    ns.update(fields)
    return config_class(type(name, (), ns))


class RecurrentModel(BaseModel):
    cell: str = ""  # "lstm" or "gru"
    gates: int = 4

    _default_clipping = None  # built once (the trainer asks every step)

    @property
    def default_gradient_clipping(self):
        if RecurrentModel._default_clipping is None:
            from ..training.regularization import GradientClipping

            RecurrentModel._default_clipping = GradientClipping.ByNorm(1.0)
        return RecurrentModel._default_clipping

    # ---------------------------------------------------------------- training options from TrainingConfig
    def _training_option(self, name: str):
        """A TrainingConfig option: of the run in progress during fit, else of the last fit (so that
        predict after fit or load uses the same sequence_length)."""
        cfg = getattr(self, "_test_config", None) or self._fit_config or self.training_config
        return getattr(cfg, name, None) if cfg is not None else None

    def _supports(self, feature: str) -> bool:
        if feature == "teacher_forcing":  # only a recurrent decoder is fed previous values
            return self.config.mode == "seq2seq"
        return super()._supports(feature)

    @property
    def _sequence_length(self) -> Optional[int]:
        return self._training_option("sequence_length")

    @property
    def _teacher_forcing_ratio(self) -> float:
        return float(self._training_option("teacher_forcing_ratio") or 0.0)

    # ---------------------------------------------------------------- parameters
    def _uses_context(self) -> bool:
        return self.config.mode == "direct" and self.config.decoder_input == "sequence"

    def _decoder_dims(self) -> List[Tuple[int, int]]:
        c = self.config
        if c.mode == "seq2seq":
            return [(c.hidden_size, self.n_outputs)]
        out = self.n_outputs if self._uses_context() else self.output_size
        dims = [c.hidden_size] + [c.decoder_hidden_size] * c.decoder_layers + [out]
        return list(zip(dims[:-1], dims[1:]))

    def _rnn_specs(self, prefix: str, n_layers: int) -> List[Tuple[str, Tuple[int, ...]]]:
        H, G = self.config.hidden_size, self.gates * self.config.hidden_size
        specs = []
        for l in range(n_layers):
            i = 1 if l == 0 else H
            specs += [(f"{prefix}.weight_ih_l{l}", (G, i)), (f"{prefix}.weight_hh_l{l}", (G, H)),
                      (f"{prefix}.bias_ih_l{l}", (G,)), (f"{prefix}.bias_hh_l{l}", (G,))]
        return specs

    def _parameter_specs(self):
        self._require_sizes()
        c = self.config
        specs = self._rnn_specs("encoder", c.num_layers)
        if c.mode == "seq2seq":
            specs += self._rnn_specs("decoder_rnn", c.num_layers)
        if self._uses_context():
            input_size, horizon = self._require_sizes()
            specs += [("context.weight", (horizon, input_size)), ("context.bias", (horizon,))]
        for i, (a, b) in enumerate(self._decoder_dims()):
            specs += [(f"decoder.{i}.weight", (b, a)), (f"decoder.{i}.bias", (b,))]
        return specs

    def _init_parameters(self, rng: np.random.Generator) -> None:
        bound = 1.0 / math.sqrt(self.config.hidden_size)  # torch.nn.LSTM / GRU default
        for name in self.params.names:
            if name.startswith(("encoder.", "decoder_rnn.")):
                uniform(rng, self.params[name], bound)
        if self._uses_context():
            linear_init(rng, self.params["context.weight"], self.params["context.bias"])
        for i in range(len(self._decoder_dims())):
            linear_init(rng, self.params[f"decoder.{i}.weight"], self.params[f"decoder.{i}.bias"])

    # ---------------------------------------------------------------- the recurrent layer as a tape op
    def _rnn_layer(self, tape: Optional[Tape], x: Var, prefix: str, l: int,
                   h0: Optional[Var] = None, c0: Optional[Var] = None, need_dx: bool = True):
        """One layer over x (B, T, I) starting from optional state Vars. Returns Vars (y, h, c)
        ((y, h, None) for a GRU); gradients reaching any of them flow back to x, h0, c0 and the weights."""
        pb = self.params
        names = [f"{prefix}.{n}_l{l}" for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        w = [pb[n] for n in names]
        lstm = self.cell == "lstm"
        if lstm:
            out = F.lstm_forward(x.data, *w, h0=None if h0 is None else h0.data,
                                 c0=None if c0 is None else c0.data)
        else:
            out = F.gru_forward(x.data, *w, h0=None if h0 is None else h0.data)
        mk = (lambda a: tape.var(a)) if tape is not None else (lambda a: Var(a, -1))
        y, h, c = mk(out.y), mk(out.h), (mk(out.c) if lstm else None)
        if tape is not None:
            grads = [pb.grad_of(n) for n in names]
            inputs = [x] + [v for v in (h0, c0) if v is not None]
            has_h0, has_c0 = h0 is not None, c0 is not None

            def backward(gs):
                kw = dict(need_dx=need_dx, dw_ih=grads[0], dw_hh=grads[1], db_ih=grads[2], db_hh=grads[3])
                if lstm:
                    r = F.lstm_backward(out.cache, gs[0], gs[1], gs[2], **kw)
                    res = [r.dx] + ([r.dh0] if has_h0 else []) + ([r.dc0] if has_c0 else [])
                else:
                    r = F.gru_backward(out.cache, gs[0], gs[1], **kw)
                    res = [r.dx] + ([r.dh0] if has_h0 else [])
                return res

            tape.record_multi([y, h] + ([c] if lstm else []), inputs, backward)
        return y, h, c

    def _stack(self, tape, x: Var, prefix: str, rng, states=None):
        """All layers of one stack; returns the last layer's y and every layer's (h, c)."""
        c = self.config
        finals = []
        y = x
        for l in range(c.num_layers):
            h0, c0 = states[l] if states is not None else (None, None)
            y, h, cc = self._rnn_layer(tape, y, prefix, l, h0, c0, need_dx=l > 0)
            finals.append((h, cc))
            if l < c.num_layers - 1:
                y = layers.dropout(tape, y, self._dropout_rate(), rng)
        return y, finals

    # ---------------------------------------------------------------- forward
    def _sequence(self, x: np.ndarray, tape) -> Var:
        seq_len = getattr(self, "_sequence_length", None) or x.shape[1]
        seq = np.ascontiguousarray(x[:, -min(seq_len, x.shape[1]):, None])  # (B, T, 1)
        return tape.var(seq) if tape is not None else Var(seq, -1)

    def _forward(self, x: np.ndarray, tape: Optional[Tape], rng: Optional[np.random.Generator],
                 y: Optional[np.ndarray] = None) -> Var:
        if self.config.mode == "seq2seq":
            return self._forward_seq2seq(x, tape, rng, y)
        ys, finals = self._stack(tape, self._sequence(x, tape), "encoder", rng)
        h = self._context(tape, ys) if self._uses_context() else finals[-1][0]
        n = len(self._decoder_dims())
        for i in range(n):
            h = layers.linear(tape, self.params, h, f"decoder.{i}.weight", f"decoder.{i}.bias")
            if i < n - 1:
                h = layers.activation(tape, "relu", h)
        if self._uses_context():  # (B * horizon, n_outputs) -> (B, horizon * n_outputs)
            h = layers.reshape(tape, h, (x.shape[0], self._require_sizes()[1] * self.n_outputs))
        return h

    def _context(self, tape, ys: Var) -> Var:
        """Context adapter (as in NeuralForecast's recurrent models): the encoder states (B, T, H) are
        mapped across time by a linear layer (T -> horizon, shared by all hidden units) to one context
        vector per horizon step, returned as (B * horizon, H) rows for the per-step MLP decoder. With a
        sequence_length shorter than the window, the adapter's weights for the last T positions are used."""
        B, T, H = ys.data.shape
        horizon = self._require_sizes()[1]
        yt = layers.swap_last_axes(tape, ys)  # (B, H, T)
        flat = layers.reshape(tape, yt, (B * H, T))
        window = self.params["context.weight"].shape[1]
        if T < window:  # zero states for the cut-off positions: their adapter columns get no gradient
            flat = self._pad_left(tape, flat, window)
        ctx = layers.linear(tape, self.params, flat, "context.weight", "context.bias")
        ctx = layers.swap_last_axes(tape, layers.reshape(tape, ctx, (B, H, horizon)))  # (B, horizon, H)
        return layers.reshape(tape, ctx, (B * horizon, H))

    @staticmethod
    def _pad_left(tape, x: Var, width: int) -> Var:
        """x (N, T) -> (N, width) with zeros in the first width - T columns."""
        T = x.data.shape[1]
        out_data = np.zeros((x.data.shape[0], width), dtype=x.data.dtype)
        out_data[:, width - T:] = x.data
        out = tape.var(out_data) if tape is not None else Var(out_data, -1)
        if tape is not None:
            tape.record(out, (x,), lambda g: (np.ascontiguousarray(g[:, width - T:]),))
        return out

    def _decoder_inputs(self, x: np.ndarray, finals, y: Optional[np.ndarray], ratio: float,
                        rng) -> np.ndarray:
        """Decoder input per step (B, horizon): the previous value; teacher-forced with probability
        ``ratio`` when targets are given, else the model's own previous forecast (found by a
        forward-only step-by-step pass, so no gradient flows through it)."""
        B, horizon = x.shape[0], self._require_sizes()[1]
        inputs = np.empty((B, horizon), dtype=x.dtype)
        inputs[:, 0] = x[:, -1]
        if y is not None and ratio >= 1.0:
            inputs[:, 1:] = y[:, :-1]
            return inputs
        use_true = (rng.random((B, horizon)) < ratio) if (y is not None and ratio > 0 and rng is not None) else None
        states = [(h.data, None if c is None else c.data) for h, c in finals]
        from ..training.trainer import point_column

        mid = point_column(self)  # the point-forecast column of a quantile head, the only column otherwise
        for t in range(horizon):
            v = Var(np.ascontiguousarray(inputs[:, t:t + 1, None]), -1)
            new = []
            for l in range(self.config.num_layers):
                h0 = Var(states[l][0], -1)
                c0 = Var(states[l][1], -1) if states[l][1] is not None else None
                v, hh, cc = self._rnn_layer(None, v, "decoder_rnn", l, h0, c0)
                new.append((hh.data, None if cc is None else cc.data))
            states = new
            if t + 1 < horizon:
                out = layers.linear(None, self.params, Var(np.ascontiguousarray(v.data[:, 0, :]), -1),
                                    "decoder.0.weight", "decoder.0.bias").data
                inputs[:, t + 1] = out[:, mid]
                if use_true is not None:
                    inputs[:, t + 1] = np.where(use_true[:, t + 1], y[:, t], inputs[:, t + 1])
        return inputs

    def _forward_seq2seq(self, x, tape, rng, y):
        c = self.config
        B, horizon = x.shape[0], self._require_sizes()[1]
        _, finals = self._stack(tape, self._sequence(x, tape), "encoder", rng)
        ratio = getattr(self, "_teacher_forcing_ratio", 0.0) if tape is not None else 0.0
        dec_in = self._decoder_inputs(x, finals, y if tape is not None else None, ratio, rng)
        seq = np.ascontiguousarray(dec_in[:, :, None])
        v = tape.var(seq) if tape is not None else Var(seq, -1)
        dec_y, _ = self._stack(tape, v, "decoder_rnn", rng, states=finals)
        flat = layers.reshape(tape, dec_y, (B * horizon, c.hidden_size))
        out = layers.linear(tape, self.params, flat, "decoder.0.weight", "decoder.0.bias")
        return layers.reshape(tape, out, (B, horizon * self.n_outputs))
