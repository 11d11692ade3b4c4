"""Transformer forecaster: a window cut into patches (tokens), an encoder of self-attention layers over
the C++ attention / layer-norm kernels, and a direct multi-horizon head.

Architecture (PatchTST-style for a univariate window, Nie et al. 2023):

1. The scaled input window (B, input_size) is cut into ``n`` patches of ``patch_len`` values, ``stride``
   apart (the last patch is aligned to the window's end when the stride does not divide evenly);
   ``patch_len=1, stride=1`` gives one token per time step (no patching). A ``patch_len`` longer than
   ``input_size`` is clipped to it (one patch: the whole window), so the defaults work for short windows.
2. Each patch is projected into ``d_model`` (a linear layer) and a positional encoding is added:
   learned (``positional="learned"``, a (n, d_model) parameter) or fixed sinusoidal (``"sinusoidal"``).
   Dropout follows.
3. ``num_layers`` encoder layers, ``torch.nn.TransformerEncoderLayer`` semantics and parameter names:
   multi-head self-attention (``num_heads`` heads of ``d_model / num_heads``; no mask: every patch sees
   the whole window) and a feed-forward block ``linear(d_ff) -> GELU/ReLU -> dropout -> linear(d_model)``,
   each inside a residual with dropout; layer norm before each block (``norm="pre"``, plus one final
   layer norm) or after each residual sum (``norm="post"``).
4. The head flattens the n tokens (n * d_model values) and maps them with one linear layer to
   ``horizon * n_outputs`` values (PatchTST's "flatten" head: a direct multi-horizon forecast).
   With ``linear_skip=True`` (default) a linear map of the scaled window itself (no bias) is added to
   the head's output: a skip path around the encoder, as in DLinear / NLinear, that learns the
   seasonal repetition of the window at once while the encoder learns what it cannot express.

Dropout: ``dropout`` (or ``TrainingConfig.dropout`` when set) on the embedding, the residual branches and
inside the feed-forward block; ``attention_dropout`` on the attention weights, taken from
``TrainingConfig.with_attention_dropout(p)`` when it is > 0, else from the model config. Both apply in
training only. ``TrainingConfig.with_warmup_steps(n)`` ramps the learning rate linearly over the first
n steps (the trainer does it; it is the usual companion of a Transformer).
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import numpy as np

from .._backend import core as _core
from .._config import boolean, cfg_field, config_class, fraction, one_of, optional, positive_int
from ..data.scalers import SCALERS
from ..nn import functional as F
from ..nn import layers
from ..nn._buffers import POOL as _POOL  # reused GELU(z) / GELU'(z) arrays
from ..nn.init import linear_init
from ..nn.tape import Tape, Var
from .base import BaseModel, register

NORMS = ("pre", "post")
POSITIONALS = ("learned", "sinusoidal")
FF_ACTIVATIONS = ("gelu", "relu")


def _alias(name, v):
    if v is not None and (not isinstance(v, str) or not v):
        raise TypeError(f"{name} must be a non-empty str or None, got {v!r}")
    return v


@config_class
class TransformerConfig:
    """Configuration of the Transformer forecaster. The defaults (2 pre-norm layers, d_model 64, 4 heads,
    d_ff 128, patches of 16 values every 8) are sized for hourly data with windows of a few days."""

    input_size: Optional[int] = cfg_field(None, optional(positive_int), "Length of the input window.")
    horizon: Optional[int] = cfg_field(None, optional(positive_int), "Steps forecast at once.")
    d_model: int = cfg_field(64, positive_int, "Width of every token (must be divisible by num_heads).")
    hidden_size: Optional[int] = cfg_field(
        None, optional(positive_int),
        "Alias of d_model for searches shared with the recurrent models (when set, it is the token width).")
    num_heads: int = cfg_field(4, positive_int, "Attention heads per layer.")
    num_layers: int = cfg_field(2, positive_int, "Encoder layers.")
    d_ff: int = cfg_field(128, positive_int, "Hidden width of the feed-forward block.")
    dropout: float = cfg_field(0.1, fraction, "Dropout on the embedding, residual branches and feed-forward block.")
    attention_dropout: float = cfg_field(0.0, fraction, "Dropout on the attention weights (training only).")
    norm: str = cfg_field("pre", one_of(*NORMS), "'pre' (layer norm before each block) or 'post' (after).")
    patch_len: int = cfg_field(16, positive_int, "Values per patch (token); 1 with stride 1: one token per step.")
    stride: int = cfg_field(8, positive_int, "Distance between the starts of consecutive patches.")
    positional: str = cfg_field("learned", one_of(*POSITIONALS), "'learned' or 'sinusoidal' positional encoding.")
    activation: str = cfg_field("gelu", one_of(*FF_ACTIVATIONS), "Activation of the feed-forward block.")
    linear_skip: bool = cfg_field(True, boolean, "Add a linear map of the scaled window to the forecast.")
    scaler: str = cfg_field("standard", one_of(*SCALERS), "Per-window scaler (see data.scalers).")
    alias: Optional[str] = cfg_field(None, _alias, "Column name of the forecast (default: 'Transformer').")

    @property
    def width(self) -> int:
        """The token width in use: ``hidden_size`` when set, else ``d_model``."""
        return self.hidden_size if self.hidden_size is not None else self.d_model

    def _validate(self) -> None:
        name = "hidden_size" if self.hidden_size is not None else "d_model"
        if self.width % self.num_heads:
            raise ValueError(f"{name} ({self.width}) must be divisible by num_heads ({self.num_heads})")


def patch_starts(input_size: int, patch_len: int, stride: int) -> np.ndarray:
    """First index of every patch: 0, stride, 2*stride, ... and, when the stride does not end exactly at
    the window's end, one more patch aligned to the end (so every value is in some patch)."""
    if patch_len > input_size:
        raise ValueError(f"patch_len ({patch_len}) must not exceed input_size ({input_size})")
    starts = list(range(0, input_size - patch_len + 1, stride))
    if starts[-1] + patch_len < input_size:
        starts.append(input_size - patch_len)
    return np.asarray(starts, dtype=np.int64)


def sinusoidal_encoding(n: int, d: int) -> np.ndarray:
    """The fixed encoding of Vaswani et al.: PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(...)."""
    pos = np.arange(n)[:, None]
    i = np.arange(d)[None, :]
    angle = pos / np.power(10000.0, (2 * (i // 2)) / d)
    return np.where(i % 2 == 0, np.sin(angle), np.cos(angle))


# ---------------------------------------------------------------------------------------------- tape ops
def _wrap(tape: Optional[Tape], a: np.ndarray) -> Var:
    return tape.var(a) if tape is not None else Var(a, -1)


def _add(tape: Optional[Tape], a: Var, b: Var) -> Var:
    out = _wrap(tape, a.data + b.data)
    if tape is not None:
        tape.record(out, (a, b), lambda g: (g, g))
    return out


def _layer_norm(tape: Optional[Tape], pb, x: Var, prefix: str) -> Var:
    w, b = pb[f"{prefix}.weight"], pb[f"{prefix}.bias"]
    out = F.layer_norm_forward(x.data, w, b)
    y = _wrap(tape, out.y)
    if tape is not None:
        dw, db = pb.grad_of(f"{prefix}.weight"), pb.grad_of(f"{prefix}.bias")
        held = [out.cache]  # released once the backward has run
        tape.record(y, (x,), lambda g: (F.layer_norm_backward(held.pop(), g, dweight=dw, dbias=db).dx,))
    return y


def _gelu(tape: Optional[Tape], x: Var) -> Var:
    """GELU (exact erf form, as torch.nn.GELU()) with the vectorised kernel of the feed-forward block."""
    out = _wrap(tape, F.ff_gelu_forward(x.data))
    if tape is not None:
        held = [x.data]
        tape.record(out, (x,), lambda g: (F.ff_gelu_backward(g, held.pop()),))  # x released after use
    return out


def _linear_residual(tape: Optional[Tape], pb, x: Var, w: str, b: str, res: Var) -> Var:
    """res + linear(x) in one kernel pass (the bias and the residual added to each output tile before its
    only store): bitwise ``_add(tape, res, layers.linear(tape, pb, x, w, b))``, without the (N, O) sum pass."""
    W, bias = pb[w], pb[b]
    xd = x.data
    y = np.empty((xd.shape[0], W.shape[0]), dtype=xd.dtype)
    _core.linear_residual_forward(y, xd, W, bias, res.data)
    out = _wrap(tape, y)
    if tape is not None:
        dW, dB = pb.grad_of(w), pb.grad_of(b)

        def backward(dy):
            dx = np.empty_like(xd)
            _core.linear_backward(dx, dW, dB, dy, xd, W)
            return (dx, dy)

        tape.record(out, (x, res), backward)
    return out


def _feed_forward_gelu(tape: Optional[Tape], pb, x: Var, prefix: str, res: Optional[Var] = None) -> Var:
    """linear2(GELU(linear1(x))) (+ ``res``, the residual) with no dropout inside: one tape entry for the block.

    The first linear writes GELU(z) (and, for training, GELU'(z)) from its tile epilogue, so the pre-activation
    z (B*n, d_ff) is never stored and GELU has no pass of its own; the second linear reads GELU(z) with the
    bias and the residual added in its tiles. The tape keeps x, GELU(z) and GELU'(z) (torch's layer keeps x, z
    and GELU(z)); the backward is the gated linear backward of the second linear (dW2 from GELU(z), dz = (dy W2)
    GELU'(z) written over GELU'(z)) and then the first linear's backward. Bitwise linear1, GELU, linear2 and the
    residual add as separate ops (tests/test_transformer.py): the same arithmetic in the same order. GELU(z) and
    GELU'(z) come from the kernels' buffer pool (nn/_buffers.py, ``small=True``) and go back to it once the
    backward lets them go: fresh ones each step cost a page fault per 4 KiB on first touch, ~2 ms of a ~19 ms
    forward + backward at B=32, T=24, d_model=128 on the reference VM (bench/RESULTS.md)."""
    W1, b1 = pb[f"{prefix}.linear1.weight"], pb[f"{prefix}.linear1.bias"]
    W2, b2 = pb[f"{prefix}.linear2.weight"], pb[f"{prefix}.linear2.bias"]
    xd = x.data
    shape = (xd.shape[0], W1.shape[0])
    g = _POOL.take("transformer.gelu", shape, xd.dtype, small=True)
    y = np.empty((xd.shape[0], W2.shape[0]), dtype=xd.dtype)
    r = None if res is None else res.data
    if tape is None:
        _core.linear_forward_gelu(g, None, xd, W1, b1)
        _core.linear_residual_forward(y, g, W2, b2, r)
        return _wrap(tape, y)
    d = _POOL.take("transformer.gelu_grad", shape, xd.dtype, small=True)
    _core.linear_forward_gelu(g, d, xd, W1, b1)
    _core.linear_residual_forward(y, g, W2, b2, r)
    out = _wrap(tape, y)
    held = [(g, d)]
    del g, d
    dW1, dB1 = pb.grad_of(f"{prefix}.linear1.weight"), pb.grad_of(f"{prefix}.linear1.bias")
    dW2, dB2 = pb.grad_of(f"{prefix}.linear2.weight"), pb.grad_of(f"{prefix}.linear2.bias")

    def backward(dy):
        gb, dz = held.pop()  # run once; GELU(z) is released after the second linear's backward
        _core.linear_gated_backward(dz, dW2, dB2, dy, gb, W2)
        del gb
        dx = np.empty_like(xd)
        _core.linear_backward(dx, dW1, dB1, dz, xd, W1)
        return (dx,) if res is None else (dx, dy)

    tape.record(out, (x,) if res is None else (x, res), backward)
    return out


def _self_attention(tape: Optional[Tape], pb, x: Var, prefix: str, B: int, n: int, H: int, p: float,
                    rng: Optional[np.random.Generator], residual: Optional[Var] = None) -> Var:
    """torch.nn.MultiheadAttention(d, H, batch_first=True) over x (B*n, d) with q = k = v = x (plus
    ``residual`` when given, added by the output projection's kernel).

    The attention kernel reads q, k and v straight from the input projection (B, n, 3d) and writes the
    heads merged (B, n, d), so no head split / merge copies exist in either direction; the tape keeps the
    projection, the output and the row log-sum-exp, and lets go of them once the backward has run."""
    d = x.data.shape[1]
    qkv = layers.linear(tape, pb, x, f"{prefix}.in_proj_weight", f"{prefix}.in_proj_bias")
    train = tape is not None and rng is not None and p > 0
    seed = int(rng.integers(0, 2**63 - 1)) if train else 0
    out = F.attention_packed_forward(qkv.data.reshape(B, n, 3 * d), H, dropout=p if train else 0.0, seed=seed)
    att = _wrap(tape, out.y.reshape(B * n, d))
    if tape is not None:
        held = [out.cache]

        def backward(g):
            cache = held.pop()  # run once; the cache (projection, output, lse) is released after it
            return (F.attention_packed_backward(cache, g.reshape(B, n, d)).reshape(B * n, 3 * d),)

        tape.record(att, (qkv,), backward)
    del out
    if residual is not None:  # residual + out_proj(att) in the projection's pass
        return _linear_residual(tape, pb, att, f"{prefix}.out_proj.weight", f"{prefix}.out_proj.bias", residual)
    return layers.linear(tape, pb, att, f"{prefix}.out_proj.weight", f"{prefix}.out_proj.bias")


@register
class Transformer(BaseModel):
    """Transformer encoder over patches of the scaled input window with a direct multi-horizon head (see
    the module docstring). Encoder parameters use ``torch.nn.TransformerEncoderLayer``'s names
    (``encoder.layers.0.self_attn.in_proj_weight``, ``...linear1.weight``, ``...norm1.weight`` ...) so that
    weights can be exchanged with PyTorch. No gradient clipping by default."""

    config_class = TransformerConfig
    default_gradient_clipping = None
    supports_attention_dropout = True

    # ---------------------------------------------------------------- sizes
    @property
    def patch_len(self) -> int:
        """The patch length in use: ``config.patch_len`` clipped to ``input_size``."""
        return min(self.config.patch_len, self._require_sizes()[0])

    def _patches(self) -> np.ndarray:
        inp, _ = self._require_sizes()
        return patch_starts(inp, self.patch_len, self.config.stride)

    @property
    def num_patches(self) -> int:
        return len(self._patches())

    def _attention_dropout(self) -> float:
        fc = self._fit_config
        if fc is not None and fc.attention_dropout > 0:
            return fc.attention_dropout
        return self.config.attention_dropout

    # ---------------------------------------------------------------- parameters
    def _parameter_specs(self) -> List[Tuple[str, Tuple[int, ...]]]:
        c = self.config
        n = self.num_patches
        d, f = c.width, c.d_ff
        specs = [("embedding.weight", (d, self.patch_len)), ("embedding.bias", (d,))]
        if c.positional == "learned":
            specs.append(("positional", (n, d)))
        for l in range(c.num_layers):
            p = f"encoder.layers.{l}"
            specs += [(f"{p}.self_attn.in_proj_weight", (3 * d, d)), (f"{p}.self_attn.in_proj_bias", (3 * d,)),
                      (f"{p}.self_attn.out_proj.weight", (d, d)), (f"{p}.self_attn.out_proj.bias", (d,)),
                      (f"{p}.linear1.weight", (f, d)), (f"{p}.linear1.bias", (f,)),
                      (f"{p}.linear2.weight", (d, f)), (f"{p}.linear2.bias", (d,)),
                      (f"{p}.norm1.weight", (d,)), (f"{p}.norm1.bias", (d,)),
                      (f"{p}.norm2.weight", (d,)), (f"{p}.norm2.bias", (d,))]
        if c.norm == "pre":
            specs += [("encoder.norm.weight", (d,)), ("encoder.norm.bias", (d,))]
        specs += [("head.weight", (self.output_size, n * d)), ("head.bias", (self.output_size,))]
        if c.linear_skip:
            specs.append(("skip.weight", (self.output_size, self._require_sizes()[0])))
        return specs

    def _init_parameters(self, rng: np.random.Generator) -> None:
        pb = self.params
        for name in pb.names:
            if name.endswith("in_proj_weight"):  # torch.nn.MultiheadAttention: xavier uniform, zero biases
                fan_in, fan_out = pb[name].shape[1], pb[name].shape[0] // 3
                bound = math.sqrt(6.0 / (fan_in + fan_out))
                pb[name][...] = rng.uniform(-bound, bound, size=pb[name].shape)
            elif name.endswith(("in_proj_bias", "out_proj.bias")):
                pb[name][...] = 0.0
            elif name.endswith("out_proj.weight") or name.endswith(("linear1.weight", "linear2.weight")) \
                    or name in ("embedding.weight", "head.weight"):
                bias = name[:-len("weight")] + "bias"
                linear_init(rng, pb[name], pb[bias] if not name.endswith("out_proj.weight") else None)
            elif ".norm" in name or name.startswith("encoder.norm"):
                pb[name][...] = 1.0 if name.endswith("weight") else 0.0
            elif name == "positional":  # PatchTST: U(-0.02, 0.02)
                pb[name][...] = rng.uniform(-0.02, 0.02, size=pb[name].shape)
            elif name == "skip.weight":
                linear_init(rng, pb[name], None)

    # ---------------------------------------------------------------- forward
    def _embed(self, x: np.ndarray, tape: Optional[Tape], rng) -> Var:
        c = self.config
        B = x.shape[0]
        starts = self._patches()
        n = len(starts)
        P = self.patch_len
        idx = starts[:, None] + np.arange(P)[None, :]
        patches = np.ascontiguousarray(x[:, idx].reshape(B * n, P))
        h = layers.linear(tape, self.params, _wrap(tape, patches), "embedding.weight", "embedding.bias")
        if c.positional == "learned":
            pos = self.params["positional"]
            out = _wrap(tape, (h.data.reshape(B, n, -1) + pos).reshape(B * n, -1))
            if tape is not None:
                gpos = self.params.grad_of("positional")

                def backward(g):
                    gpos[...] += g.reshape(B, n, -1).sum(axis=0, dtype=np.float64).astype(gpos.dtype)
                    return (g,)

                tape.record(out, (h,), backward)
        else:
            pe = sinusoidal_encoding(n, c.width).astype(h.data.dtype)
            out = _wrap(tape, (h.data.reshape(B, n, -1) + pe).reshape(B * n, -1))
            if tape is not None:
                tape.record(out, (h,), lambda g: (g,))
        return layers.dropout(tape, out, self._dropout_rate(), rng)

    def _encoder_layer(self, tape, h: Var, l: int, B: int, n: int, rng) -> Var:
        c = self.config
        pb = self.params
        p = f"encoder.layers.{l}"
        drop = self._dropout_rate()
        adrop = self._attention_dropout()

        # Without dropout on the residual branches (inference, or drop = 0) the residual adds are done by the
        # output projection's and the second feed-forward linear's kernels (bitwise the same sums).
        fuse = tape is None or rng is None or drop <= 0

        def attn(v, res=None):
            if fuse and res is not None:
                return _self_attention(tape, pb, v, f"{p}.self_attn", B, n, c.num_heads, adrop, rng, residual=res)
            a = _self_attention(tape, pb, v, f"{p}.self_attn", B, n, c.num_heads, adrop, rng)
            a = layers.dropout(tape, a, drop, rng)
            return a if res is None else _add(tape, res, a)

        def ff(v, res=None):
            if c.activation == "gelu" and fuse:  # no dropout inside the block
                return _feed_forward_gelu(tape, pb, v, p, res)
            z = layers.linear(tape, pb, v, f"{p}.linear1.weight", f"{p}.linear1.bias")
            z = _gelu(tape, z) if c.activation == "gelu" else layers.activation(tape, c.activation, z)
            z = layers.dropout(tape, z, drop, rng)
            if fuse and res is not None:
                return _linear_residual(tape, pb, z, f"{p}.linear2.weight", f"{p}.linear2.bias", res)
            z = layers.linear(tape, pb, z, f"{p}.linear2.weight", f"{p}.linear2.bias")
            z = layers.dropout(tape, z, drop, rng)
            return z if res is None else _add(tape, res, z)

        if c.norm == "pre":
            h = attn(_layer_norm(tape, pb, h, f"{p}.norm1"), h)
            return ff(_layer_norm(tape, pb, h, f"{p}.norm2"), h)
        h = _layer_norm(tape, pb, attn(h, h), f"{p}.norm1")
        return _layer_norm(tape, pb, ff(h, h), f"{p}.norm2")

    def _forward(self, x: np.ndarray, tape: Optional[Tape], rng: Optional[np.random.Generator]) -> Var:
        c = self.config
        B = x.shape[0]
        n = self.num_patches
        h = self._embed(x, tape, rng)
        for l in range(c.num_layers):
            h = self._encoder_layer(tape, h, l, B, n, rng)
        if c.norm == "pre":
            h = _layer_norm(tape, self.params, h, "encoder.norm")
        flat = layers.reshape(tape, h, (B, n * c.width))
        out = layers.linear(tape, self.params, flat, "head.weight", "head.bias")
        if c.linear_skip:
            skip = layers.linear(tape, self.params, _wrap(tape, np.ascontiguousarray(x)), "skip.weight", None)
            out = _add(tape, out, skip)
        return out


__all__ = ["Transformer", "TransformerConfig", "patch_starts", "sinusoidal_encoding"]
