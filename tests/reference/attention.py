"""float64 numpy reference of csrc/attention.cpp (multi-head scaled dot-product attention).

Shapes: q (B,H,T,D), k / v (B,H,S,D), key_padding_mask (B,S) bool (True = masked key), y (B,H,T,D).
Written from the definitions (full score matrix, explicit softmax), independent of the kernel's blocking.
The dropout keep mask is the kernel's counter-based hash, rebuilt here with numpy uint64 arithmetic.
"""
import numpy as np

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix64(z):
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def dropout_keep(shape, p, seed):
    """Keep mask (B,H,T,S) bool: the high 32 bits of mix(mix(seed) + n) >= floor(p * 2^32), n the
    row-major index."""
    B, H, T, S = shape
    if p <= 0:
        return np.ones(shape, bool)
    base = _mix64(np.uint64(seed))
    n = np.arange(B * H * T * S, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = _mix64(base + n)
    thr = np.uint64(min(int(np.floor(p * 2.0**32)), 2**32 - 1))
    return ((h >> np.uint64(32)) >= thr).reshape(shape)


def masked(B, H, T, S, causal, key_padding_mask):
    """(B,1,T,S) bool: True where the weight is forced to zero."""
    m = np.zeros((B, 1, T, S), bool)
    if causal:
        m |= np.triu(np.ones((T, S), bool), k=1)[None, None]
    if key_padding_mask is not None:
        m |= np.asarray(key_padding_mask, bool)[:, None, None, :]
    return m


def forward(q, k, v, causal=False, key_padding_mask=None, dropout=0.0, seed=0, scale=None):
    """Returns (y, cache); cache = (q, k, v, p (B,H,T,S) softmax weights before dropout, keep, args)."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    B, H, T, D = q.shape
    S = k.shape[2]
    scale = 1.0 / np.sqrt(D) if scale is None else scale
    s = scale * np.einsum("bhtd,bhsd->bhts", q, k)
    m = np.broadcast_to(masked(B, H, T, S, causal, key_padding_mask), s.shape)
    s = np.where(m, -np.inf, s)
    mx = s.max(axis=-1, keepdims=True)
    full = np.isneginf(mx)  # every key masked: zero weights
    e = np.where(m, 0.0, np.exp(s - np.where(full, 0.0, mx)))
    tot = e.sum(axis=-1, keepdims=True)
    p = np.where(full, 0.0, e / np.where(full, 1.0, tot))
    keep = dropout_keep((B, H, T, S), dropout, seed)
    w = p * keep / (1.0 - dropout)
    y = np.einsum("bhts,bhsd->bhtd", w, v)
    return y, (q, k, v, p, keep, dropout, scale)


def backward(cache, dy):
    """Returns (dq, dk, dv)."""
    q, k, v, p, keep, dropout, scale = cache
    dy = np.asarray(dy, np.float64)
    w = p * keep / (1.0 - dropout)
    dv = np.einsum("bhts,bhtd->bhsd", w, dy)
    dw = np.einsum("bhtd,bhsd->bhts", dy, v)
    dp = dw * keep / (1.0 - dropout)
    ds = p * (dp - (p * dp).sum(axis=-1, keepdims=True))
    dq = scale * np.einsum("bhts,bhsd->bhtd", ds, k)
    dk = scale * np.einsum("bhts,bhtd->bhsd", ds, q)
    return dq, dk, dv
