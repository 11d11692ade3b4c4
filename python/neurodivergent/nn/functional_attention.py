"""Attention and layer-norm kernels as numpy functions (see neurodivergent.nn.functional).

Multi-head scaled dot-product attention over q (B, heads, T, d), k, v (B, heads, S, d)::

    s_ij = scale * q_i . k_j                       scale = 1/sqrt(d) by default
    masked (weight exactly 0) where causal and j > i, or where key_padding_mask[b, j] is True
    p_ij = softmax_j(s_ij);   y_i = sum_j p_ij * m_ij / (1 - dropout) * v_j

``m_ij`` is the attention-dropout keep mask (training): a pure function of ``seed`` and the element's
position, so one seed always drops the same weights and the backward regenerates the mask instead of
storing it (:func:`attention_dropout_mask` returns it). A row whose keys are all masked has no softmax:
its weights are all zero, its output is zero and no gradient flows through it (PyTorch gives NaN there).
The kernel is fused per (batch, head): the forward makes one pass over the keys per tile of query rows with
an online softmax (one small block of scores at a time, a running max and sum per row) and only the
log-sum-exp of each row is kept for the backward (the scores are recomputed there, one block of query
rows at a time), so memory stays O(B * heads * T * d). :func:`attention_packed_forward` is the same kernel
for self-attention on a packed (B, T, 3 * heads * d) input projection, with the heads merged on output.

Layer normalisation over the last dimension, ``torch.nn.LayerNorm`` semantics (biased variance).

Gradient conventions (as every kernel): parameter gradients accumulate (``+=``) into the arrays you pass
(fresh zeros otherwise), activation gradients are returned fresh.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import numpy as np

from .._backend import core as _core
from .functional_lstm import _coerce as _coerce_array
from .functional_lstm import _grad_buffer

__all__ = [
    "AttentionCache", "AttentionOutput", "AttentionGrads", "attention_forward", "attention_backward",
    "attention_dropout_mask", "PackedAttentionCache", "PackedAttentionOutput", "attention_packed_forward",
    "attention_packed_backward", "ff_gelu_forward", "ff_gelu_backward", "LayerNormCache", "LayerNormOutput",
    "LayerNormGrads", "layer_norm_forward", "layer_norm_backward",
]


def _coerce(x, name: str, dtype=None, first: str = "q") -> np.ndarray:
    if x is None:
        raise TypeError(f"{name} must be an array, got None")
    return _coerce_array(x, name, dtype, first)


# ----------------------------------------------------------------------------------- attention
class AttentionCache(NamedTuple):
    """What ``attention_backward`` needs: the inputs, the output, each row's log-sum-exp (B,H,T) (-inf
    for a fully masked row) and the options of the forward call."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    y: np.ndarray
    lse: np.ndarray
    key_padding_mask: Optional[np.ndarray]
    causal: bool
    scale: float
    dropout: float
    seed: int


class AttentionOutput(NamedTuple):
    y: np.ndarray  # (B, heads, T, d)
    cache: AttentionCache


class AttentionGrads(NamedTuple):
    dq: np.ndarray
    dk: np.ndarray
    dv: np.ndarray


def _seed(seed, dropout: float) -> int:
    if seed is None:
        # no seed: a fresh one (recorded in the cache, so the backward uses the same mask)
        return int(np.random.default_rng().integers(0, 2**63 - 1)) if dropout > 0 else 0
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    if not 0 <= int(seed) < 2**63:
        raise ValueError(f"seed must be in [0, 2**63), got {seed}")
    return int(seed)


def _options(dropout, scale, seed) -> Tuple[float, Optional[float], int]:
    """Checked (dropout, scale, seed) of an attention call (scale None: 1/sqrt(d) in the kernel)."""
    if isinstance(dropout, (bool, np.bool_)) or not isinstance(dropout, (int, float, np.floating, np.integer)):
        raise TypeError(f"dropout must be a real number, got {type(dropout).__name__}")
    dropout = float(dropout)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    return dropout, (None if scale is None else float(scale)), _seed(seed, dropout)


def _mask(key_padding_mask, B: int, S: int) -> Optional[np.ndarray]:
    if key_padding_mask is None:
        return None
    m = np.asarray(key_padding_mask)
    if m.dtype != np.bool_:
        if m.dtype.kind not in "iu":
            raise TypeError(f"key_padding_mask must be a bool array (True = masked key), got dtype {m.dtype}")
        if m.size and not np.isin(m, (0, 1)).all():
            raise ValueError("key_padding_mask of integers must hold only 0 and 1 (1 = masked key)")
        m = m.astype(np.bool_)
    if m.shape != (B, S):
        raise ValueError(f"key_padding_mask must have shape (B, S) = {(B, S)}, got {m.shape}")
    return np.ascontiguousarray(m)


def attention_forward(q, k, v, causal: bool = False, key_padding_mask=None, dropout: float = 0.0,
                      seed: Optional[int] = None, scale: Optional[float] = None, *,
                      naive: bool = False) -> AttentionOutput:
    """Scaled dot-product attention: q (B, heads, T, d), k and v (B, heads, S, d) -> out.y (B, heads, T, d).

    ``causal``: query i sees keys j <= i (top-left aligned, as PyTorch's ``is_causal``).
    ``key_padding_mask``: (B, S) bool, True = that key is padding and gets weight exactly 0.
    ``dropout`` in [0, 1): attention dropout on the weights, inverted (kept weights scaled by
    1/(1-dropout)); ``seed`` fixes its mask (None: a fresh random seed, kept in ``out.cache``).
    ``scale``: None for 1/sqrt(d). ``naive=True`` runs the plain reference loops kept beside the kernel.
    """
    q = _coerce(q, "q")
    k = _coerce(k, "k", q.dtype)
    v = _coerce(v, "v", q.dtype)
    if q.ndim != 4:
        raise ValueError(f"q must be 4-D (B, heads, T, d), got shape {q.shape}")
    if k.ndim != 4:
        raise ValueError(f"k must be 4-D (B, heads, S, d), got shape {k.shape}")
    dropout, scale, seed = _options(dropout, scale, seed)
    B, H, T, D = q.shape
    mask = _mask(key_padding_mask, B, k.shape[2])
    y = np.empty((B, H, T, D), q.dtype)
    lse = np.empty((B, H, T), q.dtype)
    _core.attention_forward(y, lse, q, k, v, mask, bool(causal), scale, dropout, seed, bool(naive))
    used_scale = scale if scale is not None else 1.0 / float(np.sqrt(D))
    return AttentionOutput(y, AttentionCache(q, k, v, y, lse, mask, bool(causal), used_scale, dropout, seed))


def attention_backward(cache: AttentionCache, dy, *, naive: bool = False) -> AttentionGrads:
    """Backward of ``attention_forward``: dy (B, heads, T, d) -> dq (B, heads, T, d), dk, dv (B, heads, S, d)."""
    if not isinstance(cache, AttentionCache):
        raise TypeError(f"cache must be the AttentionCache of attention_forward's output, got {type(cache).__name__}")
    q = cache.q
    dy = _coerce(dy, "dy", q.dtype)
    if dy.shape != q.shape:
        raise ValueError(f"dy must have the shape of the output {q.shape}, got {dy.shape}")
    dq = np.empty_like(q)
    dk = np.empty_like(cache.k)
    dv = np.empty_like(cache.v)
    _core.attention_backward(dq, dk, dv, dy, q, cache.k, cache.v, cache.y, cache.lse, cache.key_padding_mask,
                             cache.causal, cache.scale, cache.dropout, cache.seed, bool(naive))
    return AttentionGrads(dq, dk, dv)


class PackedAttentionCache(NamedTuple):
    """What ``attention_packed_backward`` needs: the packed projection, the output, each row's
    log-sum-exp (B, heads, T) and the options of the forward call."""

    qkv: np.ndarray
    y: np.ndarray
    lse: np.ndarray
    key_padding_mask: Optional[np.ndarray]
    heads: int
    causal: bool
    scale: float
    dropout: float
    seed: int


class PackedAttentionOutput(NamedTuple):
    y: np.ndarray  # (B, T, heads * d), heads merged
    cache: PackedAttentionCache


def attention_packed_forward(qkv, heads: int, causal: bool = False, key_padding_mask=None, dropout: float = 0.0,
                             seed: Optional[int] = None, scale: Optional[float] = None) -> PackedAttentionOutput:
    """Self-attention on a packed input projection, without splitting or merging the heads in numpy.

    ``qkv`` (B, T, 3 * heads * d) is ``x @ in_proj_weight.T + in_proj_bias`` as in
    ``torch.nn.MultiheadAttention``: each row holds q, then k, then v, each ``heads`` blocks of ``d``.
    Returns out.y (B, T, heads * d) with the heads merged (head h in columns ``h*d:(h+1)*d``). The kernel
    reads q, k and v in place with strides and writes y directly, and it is the same arithmetic as
    :func:`attention_forward` on the split arrays (B, heads, T, d): y, the cache's lse and the dropout mask
    are bitwise identical to it (the mask is indexed by (b, head, i, j) as there). Options as there."""
    qkv = _coerce(qkv, "qkv", first="qkv")
    if qkv.ndim != 3:
        raise ValueError(f"qkv must be 3-D (B, T, 3 * heads * d), got shape {qkv.shape}")
    if isinstance(heads, (bool, np.bool_)) or not isinstance(heads, (int, np.integer)):
        raise TypeError(f"heads must be an int, got {type(heads).__name__}")
    heads = int(heads)
    if heads < 1 or qkv.shape[2] % (3 * heads) or qkv.shape[2] == 0:
        raise ValueError(f"qkv's last dimension must be 3 * heads * d with d >= 1 (heads={heads}), "
                         f"got shape {qkv.shape}")
    dropout, scale, seed = _options(dropout, scale, seed)
    B, T, C = qkv.shape
    d = C // (3 * heads)
    mask = _mask(key_padding_mask, B, T)
    y = np.empty((B, T, heads * d), qkv.dtype)
    lse = np.empty((B, heads, T), qkv.dtype)
    _core.attention_packed_forward(y, lse, qkv, mask, heads, bool(causal), scale, dropout, seed)
    used_scale = scale if scale is not None else 1.0 / float(np.sqrt(d))
    return PackedAttentionOutput(y, PackedAttentionCache(qkv, y, lse, mask, heads, bool(causal), used_scale, dropout,
                                                         seed))


def attention_packed_backward(cache: PackedAttentionCache, dy) -> np.ndarray:
    """Backward of ``attention_packed_forward``: dy (B, T, heads * d) -> dqkv (B, T, 3 * heads * d) (fresh),
    bitwise equal to :func:`attention_backward`'s dq, dk, dv packed the same way."""
    if not isinstance(cache, PackedAttentionCache):
        raise TypeError("cache must be the PackedAttentionCache of attention_packed_forward's output, got "
                        f"{type(cache).__name__}")
    qkv = cache.qkv
    dy = _coerce(dy, "dy", qkv.dtype, "qkv")
    if dy.shape != cache.y.shape:
        raise ValueError(f"dy must have the shape of the output {cache.y.shape}, got {dy.shape}")
    dqkv = np.empty_like(qkv)
    _core.attention_packed_backward(dqkv, dy, qkv, cache.y, cache.lse, cache.key_padding_mask, cache.heads,
                                    cache.causal, cache.scale, cache.dropout, cache.seed)
    return dqkv


def attention_dropout_mask(shape, dropout: float, seed: int) -> np.ndarray:
    """The keep mask (B, heads, T, S) bool that ``attention_forward`` with this ``dropout`` and ``seed``
    applies (True = weight kept)."""
    B, H, T, S = (int(s) for s in shape)
    return _core.attention_dropout_mask(B, H, T, S, float(dropout), _seed(seed, float(dropout))).astype(bool)


# ----------------------------------------------------------------------------------- GELU
def ff_gelu_forward(x) -> np.ndarray:
    """GELU of the Transformer's feed-forward block, exact erf form (``torch.nn.GELU()``): x * Phi(x).
    float32 runs 8 values at a time (Phi(-|x|) a piecewise degree-6 polynomial for |x| < 3, exp(-x^2/2) times
    a piecewise degree-7 polynomial beyond, no division; within 4 ulps of the float64 value), float64 uses the
    C library's erfc. -inf gives 0, +inf gives +inf."""
    x = _coerce(x, "x", first="x")
    y = np.empty_like(x)
    _core.ff_gelu_forward(y, x)
    return y


def ff_gelu_backward(dy, x) -> np.ndarray:
    """Backward of ``ff_gelu_forward`` at x: dx = dy * (Phi(x) + x * phi(x)) (fresh); argument order as
    ``gelu_backward``."""
    x = _coerce(x, "x", first="x")
    dy = _coerce(dy, "dy", x.dtype, "x")
    if dy.shape != x.shape:
        raise ValueError(f"dy must have the shape of x {x.shape}, got {dy.shape}")
    dx = np.empty_like(x)
    _core.ff_gelu_backward(dx, dy, x)
    return dx


# ----------------------------------------------------------------------------------- layer norm
class LayerNormCache(NamedTuple):
    x: np.ndarray  # (N, C) (the input reshaped to 2-D)
    weight: Optional[np.ndarray]
    mean: np.ndarray  # (N,)
    rstd: np.ndarray  # (N,)
    shape: tuple  # the input's original shape


class LayerNormOutput(NamedTuple):
    y: np.ndarray
    cache: LayerNormCache


class LayerNormGrads(NamedTuple):
    dx: np.ndarray
    dweight: Optional[np.ndarray]
    dbias: Optional[np.ndarray]


def layer_norm_forward(x, weight=None, bias=None, eps: float = 1e-5, *, naive: bool = False) -> LayerNormOutput:
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last dimension of x (any rank >= 1);
    weight, bias (C,) or None (ones / zeros)."""
    x = _coerce(x, "x", first="x")
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"x must have at least one dimension with size >= 1 last, got shape {x.shape}")
    w = None if weight is None else _coerce(weight, "weight", x.dtype, "x")
    b = None if bias is None else _coerce(bias, "bias", x.dtype, "x")
    C = x.shape[-1]
    x2 = x.reshape(-1, C)
    y = np.empty_like(x2)
    mean = np.empty(x2.shape[0], x.dtype)
    rstd = np.empty(x2.shape[0], x.dtype)
    _core.layer_norm_forward(y, mean, rstd, x2, w, b, float(eps), bool(naive))
    return LayerNormOutput(y.reshape(x.shape), LayerNormCache(x2, w, mean, rstd, x.shape))


def layer_norm_backward(cache: LayerNormCache, dy, *, dweight=None, dbias=None, need_dx: bool = True,
                        naive: bool = False) -> LayerNormGrads:
    """Backward of ``layer_norm_forward``: dx (fresh; None when ``need_dx`` is false), dweight and dbias
    accumulated (``+=``) into the arrays given or into fresh zeros (None when the forward had no weight)."""
    if not isinstance(cache, LayerNormCache):
        raise TypeError(f"cache must be the LayerNormCache of layer_norm_forward's output, got {type(cache).__name__}")
    x2 = cache.x
    dy = _coerce(dy, "dy", x2.dtype, "x")
    if dy.shape != tuple(cache.shape):
        raise ValueError(f"dy must have the shape of the output {tuple(cache.shape)}, got {dy.shape}")
    C = x2.shape[1]
    has_w = cache.weight is not None
    dw = _grad_buffer(dweight, "dweight", (C,), x2.dtype) if (has_w or dweight is not None) else None
    db = _grad_buffer(dbias, "dbias", (C,), x2.dtype) if (has_w or dbias is not None) else None
    dx = np.empty_like(x2) if need_dx else None
    _core.layer_norm_backward(dx, dw, db, dy.reshape(-1, C), x2, cache.weight, cache.mean, cache.rstd, bool(naive))
    return LayerNormGrads(None if dx is None else dx.reshape(cache.shape), dw, db)
