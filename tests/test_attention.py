"""Attention kernels (csrc/attention.cpp via neurodivergent.nn.functional) against the float64 reference.

1. the reference backward is checked against central finite differences of its forward (masks, causal,
   dropout with a fixed mask);
2. the double kernel matches the reference to 1e-10, float32 to 1e-5 (|ref - out| <= atol + rtol |ref|
   with an absolute floor at the array's scale), on B=1, T=1, heads=1, d=1 and d not a multiple of 8,
   S != T, several query blocks (T > 64), causal, key padding and dropout; the naive loops too;
3. masks: a masked key gets exactly zero weight (its v and k do not change y; its dk, dv are exactly 0);
   a fully masked row gives y = 0, lse = -inf and zero gradients;
4. dropout: a fixed seed repeats bitwise, the keep rate is 1 - p, seed None draws one kept in the cache;
5. bitwise repeatable with a fixed thread count, equal across 1 and 2 threads;
6. hypothesis over shapes, masks and options;
7. bad input raises TypeError / ValueError naming the argument;
8. (torch installed only) same numbers as torch.nn.functional.scaled_dot_product_attention.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neurodivergent.nn.functional as F
from neurodivergent import _core
from tests.reference import attention as ref

DTYPES = [np.float64, np.float32]
RTOL = {np.float64: 1e-10, np.float32: 1e-5}
# (B, H, T, S, D)
SHAPES = [(1, 1, 1, 1, 1), (1, 1, 1, 5, 3), (2, 1, 4, 1, 2), (1, 2, 7, 7, 5), (3, 4, 24, 24, 16),
          (2, 3, 70, 70, 9), (2, 2, 65, 130, 17), (1, 1, 150, 40, 8),
          (1, 1, 340, 700, 5)]  # the forward's key chunks are 336 long: 3 chunks (2 for causal rows >= 336)


def close_scaled(out, ref_, rtol, what):
    out = np.asarray(out, np.float64)
    ref_ = np.asarray(ref_, np.float64)
    assert out.shape == ref_.shape, f"{what}: shape {out.shape} != {ref_.shape}"
    scale = max(float(np.max(np.abs(ref_))) if ref_.size else 0.0, 1.0)
    err = np.abs(out - ref_)
    bound = rtol * (np.abs(ref_) + scale)
    bad = ~(err <= bound)
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, err - bound, -np.inf)), err.shape)
        raise AssertionError(f"{what}: {int(bad.sum())} of {err.size} out of tolerance; worst at {i}: "
                             f"out={out[i]!r} ref={ref_[i]!r} err={err[i]:.3e}")


def make(rng, B, H, T, S, D, dtype=np.float64, mask_frac=0.0):
    q = rng.standard_normal((B, H, T, D)).astype(dtype)
    k = rng.standard_normal((B, H, S, D)).astype(dtype)
    v = rng.standard_normal((B, H, S, D)).astype(dtype)
    kpm = (rng.random((B, S)) < mask_frac) if mask_frac > 0 else None
    return q, k, v, kpm


def check(rng, shape, dtype, causal=False, mask_frac=0.0, dropout=0.0, naive=False, rtol=None):
    q, k, v, kpm = make(rng, *shape, dtype=dtype, mask_frac=mask_frac)
    dy = rng.standard_normal(q.shape).astype(dtype)
    out = F.attention_forward(q, k, v, causal=causal, key_padding_mask=kpm, dropout=dropout, seed=11, naive=naive)
    g = F.attention_backward(out.cache, dy, naive=naive)
    y_ref, cache = ref.forward(q, k, v, causal, kpm, dropout, 11)
    g_ref = ref.backward(cache, dy)
    rtol = RTOL[dtype] if rtol is None else rtol
    assert out.y.dtype == dtype and g.dq.dtype == dtype
    close_scaled(out.y, y_ref, rtol, "y")
    for name, a, b in zip(("dq", "dk", "dv"), g, g_ref):
        close_scaled(a, b, rtol, name)
    return out, g


# ------------------------------------------------------------------------------ 1. reference vs FD
@pytest.mark.parametrize("causal,mask_frac,dropout", [(False, 0.0, 0.0), (True, 0.0, 0.0), (False, 0.3, 0.0),
                                                      (True, 0.3, 0.4)])
def test_reference_backward_matches_finite_differences(rng, causal, mask_frac, dropout):
    B, H, T, S, D = 2, 2, 4, 5, 3
    q, k, v, kpm = make(rng, B, H, T, S, D, mask_frac=mask_frac)
    if kpm is not None:
        kpm[0] = True  # batch 0: every key masked (fully masked rows in the check too)
        kpm[1, 0] = False
    dy = rng.standard_normal((B, H, T, D))

    def loss(q_, k_, v_):
        return float((ref.forward(q_, k_, v_, causal, kpm, dropout, 3)[0] * dy).sum())

    _, cache = ref.forward(q, k, v, causal, kpm, dropout, 3)
    grads = ref.backward(cache, dy)
    args = [q, k, v]
    eps = 1e-6
    for a, g in zip(range(3), grads):
        fd = np.empty_like(args[a])
        for idx in np.ndindex(args[a].shape):
            old = args[a][idx]
            args[a][idx] = old + eps
            lp = loss(*args)
            args[a][idx] = old - eps
            lm = loss(*args)
            args[a][idx] = old
            fd[idx] = (lp - lm) / (2 * eps)
        np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-8)


# ------------------------------------------------------------------------------ 2. kernels vs reference
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("causal", [False, True])
def test_matches_reference(rng, dtype, shape, causal):
    check(rng, shape, dtype, causal=causal)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 3, 4, 2), (2, 3, 70, 70, 9), (2, 2, 65, 130, 17), (1, 2, 340, 700, 6)])
@pytest.mark.parametrize("causal", [False, True])
def test_masks_and_dropout_match_reference(rng, dtype, shape, causal):
    check(rng, shape, dtype, causal=causal, mask_frac=0.3, dropout=0.25)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("causal", [False, True])
def test_naive_matches_reference(rng, dtype, causal):
    check(rng, (2, 3, 70, 33, 5), dtype, causal=causal, mask_frac=0.2, dropout=0.1, naive=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_matches_naive(rng, dtype):
    q, k, v, kpm = make(rng, 3, 2, 100, 100, 12, dtype, mask_frac=0.1)
    dy = rng.standard_normal(q.shape).astype(dtype)
    a = F.attention_forward(q, k, v, True, kpm, 0.2, 5)
    b = F.attention_forward(q, k, v, True, kpm, 0.2, 5, naive=True)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    close_scaled(a.y, b.y, rtol, "y")
    for name, x, y in zip(("dq", "dk", "dv"), F.attention_backward(a.cache, dy),
                          F.attention_backward(b.cache, dy, naive=True)):
        close_scaled(x, y, rtol, name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_generic_kernels_match_reference(rng, dtype):
    """The portable build of the per-(batch, head) kernel (what a CPU without AVX2 runs) also matches."""
    try:
        _core.gemm_force_isa("generic")
        check(rng, (2, 2, 70, 37, 5), dtype, causal=True, mask_frac=0.2, dropout=0.2)
        check(rng, (2, 2, 9, 20, 16), dtype)
    finally:
        _core.gemm_force_isa("auto")


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_scores_stay_finite(rng, dtype):
    q, k, v, _ = make(rng, 2, 2, 30, 30, 8, dtype)
    out = F.attention_forward(q * 100, k * 100, v)  # scores ~ 1e4: softmax saturates, no overflow
    g = F.attention_backward(out.cache, np.ones_like(q))
    assert all(np.all(np.isfinite(a)) for a in (out.y, *g))
    close_scaled(out.y, ref.forward(q * 100, k * 100, v)[0], RTOL[dtype] * 10, "y")


def test_custom_scale(rng):
    q, k, v, _ = make(rng, 2, 2, 6, 7, 4)
    dy = rng.standard_normal(q.shape)
    out = F.attention_forward(q, k, v, scale=0.3)
    y_ref, cache = ref.forward(q, k, v, scale=0.3)
    close_scaled(out.y, y_ref, 1e-10, "y")
    for a, b in zip(F.attention_backward(out.cache, dy), ref.backward(cache, dy)):
        close_scaled(a, b, 1e-10, "grad")


# ------------------------------------------------------------------------------ 3. masks
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("causal", [False, True])
def test_masked_key_gets_exactly_zero_weight(rng, dtype, causal):
    B, H, T, S, D = 2, 2, 9, 9, 5
    q, k, v, _ = make(rng, B, H, T, S, D, dtype)
    kpm = np.zeros((B, S), bool)
    kpm[0, [1, 4]] = True
    kpm[1, 8] = True
    dy = rng.standard_normal(q.shape).astype(dtype)
    out = F.attention_forward(q, k, v, causal=causal, key_padding_mask=kpm)
    k2, v2 = k.copy(), v.copy()
    for b, j in zip(*np.nonzero(kpm)):
        k2[b, :, j] = 1e3  # huge keys and values on masked positions change nothing
        v2[b, :, j] = -1e6
    if causal:
        k2[:, :, -1] += 50.0  # the last key is masked (causally) for every query but the last
        v2[:, :, -1] += 1e5
    out2 = F.attention_forward(q, k2, v2, causal=causal, key_padding_mask=kpm)
    rows = slice(None) if not causal else slice(0, T - 1)
    np.testing.assert_array_equal(out.y[:, :, rows], out2.y[:, :, rows])
    g = F.attention_backward(out.cache, dy)
    for b, j in zip(*np.nonzero(kpm)):
        assert np.all(g.dk[b, :, j] == 0) and np.all(g.dv[b, :, j] == 0)


@pytest.mark.parametrize("T,S,mask_frac", [(7, 7, 0.0), (24, 24, 0.3), (13, 300, 0.5), (13, 700, 0.5)])
def test_float_lse_matches_float64_logsumexp(rng, T, S, mask_frac):
    """The float kernel's row log-sum-exp (vector log2, four rows at a time, a tail row, masked rows and
    fully masked rows between them) against the float64 log-sum-exp of the same float32 scores."""
    B, H, D = 3, 2, 8
    q, k, v, kpm = make(rng, B, H, T, S, D, np.float32, mask_frac)
    if kpm is not None:
        kpm[1] = True  # a batch of fully masked rows (lse -inf) among the others
    out = F.attention_forward(q, k, v, key_padding_mask=kpm)
    s = np.einsum("bhtd,bhsd->bhts", q.astype(np.float64), k.astype(np.float64)) / np.sqrt(D)
    if kpm is not None:
        s = np.where(kpm[:, None, None, :], -np.inf, s)
    m = np.max(s, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        want = (m + np.log(np.sum(np.exp(s - m), axis=-1, keepdims=True)))[..., 0]
    want[np.isneginf(m[..., 0])] = -np.inf  # every key masked
    lse = out.cache.lse.astype(np.float64)
    assert np.array_equal(np.isneginf(lse), np.isneginf(want))
    fin = np.isfinite(want)
    assert np.all(np.abs(lse[fin] - want[fin]) <= 2e-6 * np.maximum(np.abs(want[fin]), 1.0))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("naive", [False, True])
def test_fully_masked_row(rng, dtype, naive):
    B, H, T, S, D = 2, 3, 5, 4, 3
    q, k, v, _ = make(rng, B, H, T, S, D, dtype)
    kpm = np.zeros((B, S), bool)
    kpm[1] = True  # every key of batch 1 masked
    dy = rng.standard_normal(q.shape).astype(dtype)
    out = F.attention_forward(q, k, v, key_padding_mask=kpm, naive=naive)
    assert np.all(out.y[1] == 0) and np.all(np.isneginf(out.cache.lse[1]))
    assert np.all(np.isfinite(out.y[0])) and np.all(out.y[0] != 0)
    g = F.attention_backward(out.cache, dy, naive=naive)
    for a in g:
        assert np.all(a[1] == 0) and np.all(np.isfinite(a))
    # batch 0 is unaffected by batch 1's mask
    alone = F.attention_forward(q[:1], k[:1], v[:1], naive=naive)
    close_scaled(out.y[:1], alone.y, RTOL[dtype], "y")


def test_integer_mask_accepted_and_checked(rng):
    q, k, v, _ = make(rng, 2, 1, 3, 4, 2)
    m = np.array([[0, 1, 0, 0], [1, 0, 0, 1]], np.int64)
    a = F.attention_forward(q, k, v, key_padding_mask=m)
    b = F.attention_forward(q, k, v, key_padding_mask=m.astype(bool))
    np.testing.assert_array_equal(a.y, b.y)
    with pytest.raises(ValueError, match="only 0 and 1"):
        F.attention_forward(q, k, v, key_padding_mask=m * 2)
    with pytest.raises(TypeError, match="key_padding_mask"):
        F.attention_forward(q, k, v, key_padding_mask=m.astype(np.float32))
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(B, S\)"):
        F.attention_forward(q, k, v, key_padding_mask=m[:, :3])


# ------------------------------------------------------------------------------ 4. dropout
def test_dropout_repeatable_with_seed_and_keep_rate(rng):
    q, k, v, _ = make(rng, 4, 2, 64, 64, 8, np.float32)
    a = F.attention_forward(q, k, v, dropout=0.3, seed=42)
    b = F.attention_forward(q, k, v, dropout=0.3, seed=42)
    c = F.attention_forward(q, k, v, dropout=0.3, seed=43)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.y, c.y)
    for p in (0.1, 0.3, 0.5, 0.9):
        keep = F.attention_dropout_mask((8, 4, 64, 64), p, 7)
        n = keep.size
        rate = keep.mean()
        assert abs(rate - (1 - p)) < 4 * np.sqrt(p * (1 - p) / n), (p, rate)
        np.testing.assert_array_equal(keep, ref.dropout_keep((8, 4, 64, 64), p, 7))
    assert F.attention_dropout_mask((2, 2, 3, 3), 0.0, 1).all()
    # the mask F reports is the one the forward applies: with v = identity rows, y is the kept weights
    B, H, T, S = 2, 2, 6, 6
    qq = rng.standard_normal((B, H, T, S))
    kk = rng.standard_normal((B, H, S, S))
    vv = np.broadcast_to(np.eye(S), (B, H, S, S)).copy()
    y = F.attention_forward(qq, kk, vv, dropout=0.5, seed=9).y  # y[..., i, j] = weight of key j
    keep = F.attention_dropout_mask((B, H, T, S), 0.5, 9)
    assert np.all((y != 0) == keep)
    p = F.attention_forward(qq, kk, vv).y
    np.testing.assert_allclose(y, p * keep / 0.5, rtol=1e-12)


def test_dropout_seed_none_draws_one_and_backward_uses_it(rng):
    q, k, v, _ = make(rng, 2, 2, 8, 8, 4)
    a = F.attention_forward(q, k, v, dropout=0.5)
    b = F.attention_forward(q, k, v, dropout=0.5)
    assert a.cache.seed != b.cache.seed
    dy = rng.standard_normal(q.shape)
    g = F.attention_backward(a.cache, dy)
    _, cache = ref.forward(q, k, v, dropout=0.5, seed=a.cache.seed)
    for x, y in zip(g, ref.backward(cache, dy)):
        close_scaled(x, y, 1e-10, "grad")


# ------------------------------------------------------------------------------ 5. threads
@pytest.mark.parametrize("dtype", DTYPES)
def test_threads_repeatable_and_consistent(rng, threads, dtype):
    q, k, v, kpm = make(rng, 8, 4, 48, 48, 16, dtype, mask_frac=0.1)  # above the 2 MFLOP-per-thread threshold
    dy = rng.standard_normal(q.shape).astype(dtype)
    res = {}
    for n in (1, 2):
        threads.set_num_threads(n)
        runs = []
        for _ in range(2):
            out = F.attention_forward(q, k, v, True, kpm, 0.1, 3)
            runs.append((out.y, *F.attention_backward(out.cache, dy)))
        for x, y in zip(*runs):
            np.testing.assert_array_equal(x, y)
        res[n] = runs[0]
    for x, y in zip(res[1], res[2]):
        np.testing.assert_array_equal(x, y)  # per-(batch, head) work: the split never changes the bits


# ------------------------------------------------------------------------------ 6. hypothesis
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(B=st.integers(1, 3), H=st.integers(1, 3), T=st.integers(1, 80), S=st.integers(1, 80), D=st.integers(1, 20),
       dtype=st.sampled_from(DTYPES), causal=st.booleans(), mask_frac=st.sampled_from([0.0, 0.3, 0.9]),
       dropout=st.sampled_from([0.0, 0.2]), seed=st.integers(0, 2**31 - 1))
def test_hypothesis_matches_reference(B, H, T, S, D, dtype, causal, mask_frac, dropout, seed):
    check(np.random.default_rng(seed), (B, H, T, S, D), dtype, causal, mask_frac, dropout)


# ------------------------------------------------------------------------------ 7. bad input
def test_bad_input(rng):
    q, k, v, _ = make(rng, 2, 2, 3, 4, 5, np.float32)
    with pytest.raises(TypeError, match="k has dtype float64 but q has dtype float32"):
        F.attention_forward(q, k.astype(np.float64), v)
    with pytest.raises(TypeError, match="q must have dtype float32 or float64"):
        F.attention_forward(q.astype(np.int32), k, v)
    with pytest.raises(ValueError, match="q must be 4-D"):
        F.attention_forward(q[0], k, v)
    with pytest.raises(ValueError, match="k must have shape"):
        F.attention_forward(q, k[:, :, :, :4], v)
    with pytest.raises(ValueError, match="v must have shape"):
        F.attention_forward(q, k, v[:, :, :3])
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        F.attention_forward(q, k, v, dropout=1.0)
    with pytest.raises(TypeError, match="seed must be an int"):
        F.attention_forward(q, k, v, dropout=0.1, seed=1.5)
    with pytest.raises(ValueError, match="seed must be in"):
        F.attention_forward(q, k, v, dropout=0.1, seed=-1)
    out = F.attention_forward(q, k, v)
    with pytest.raises(ValueError, match="dy must have the shape"):
        F.attention_backward(out.cache, q[:, :, :2])
    with pytest.raises(TypeError, match="cache must be the AttentionCache"):
        F.attention_backward((q, k, v), q)
    # non-contiguous inputs are copied
    qt = np.asfortranarray(q)
    np.testing.assert_array_equal(F.attention_forward(qt, k, v).y, out.y)


def test_core_rejects_bad_outputs_and_overlap(rng):
    q, k, v, _ = make(rng, 1, 2, 3, 3, 4)
    y, lse = np.empty_like(q), np.empty(q.shape[:3])
    with pytest.raises(ValueError, match="y overlaps q"):
        _core.attention_forward(q, lse, q, k, v, None)
    with pytest.raises(ValueError, match="lse must have shape"):
        _core.attention_forward(y, np.empty((1, 2, 4)), q, k, v, None)
    ro = np.empty_like(q)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="y is read-only"):
        _core.attention_forward(ro, lse, q, k, v, None)
    with pytest.raises(TypeError, match="y must be a numpy.ndarray"):
        _core.attention_forward([1.0], lse, q, k, v, None)
    with pytest.raises(ValueError, match="scale must be finite"):
        _core.attention_forward(y, lse, q, k, v, None, False, float("nan"))
    _core.attention_forward(y, lse, q, k, v, None)
    dq, dk, dv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    with pytest.raises(ValueError, match="dk overlaps dq"):
        _core.attention_backward(dq, dq, dv, q, q, k, v, y, lse, None)
    with pytest.raises(ValueError, match="dy must have shape"):
        _core.attention_backward(dq, dk, dv, q[:, :, :2].copy(), q, k, v, y, lse, None)


# ------------------------------------------------------------------------------ 8. torch
@pytest.mark.parametrize("causal", [False, True])
def test_matches_torch_sdpa(rng, causal):
    torch = pytest.importorskip("torch")
    q, k, v, _ = make(rng, 2, 4, 24, 24, 16, np.float64)
    kpm = np.zeros((2, 24), bool)
    kpm[1, 20:] = True
    dy = rng.standard_normal(q.shape)
    out = F.attention_forward(q, k, v, causal=causal, key_padding_mask=None if causal else kpm)
    g = F.attention_backward(out.cache, dy)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    mask = None if causal else torch.tensor(~kpm)[:, None, None, :]
    ty = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=mask, is_causal=causal)
    ty.backward(torch.tensor(dy))
    close_scaled(out.y, ty.detach().numpy(), 1e-10, "y")
    for a, t in zip(g, (tq, tk, tv)):
        close_scaled(a, t.grad.numpy(), 1e-10, "grad")


# ------------------------------------------------------------------------------ 9. packed self-attention
def split(qkv, H):
    """(B, T, 3 * H * d) -> q, k, v (B, H, T, d) contiguous, as torch.nn.MultiheadAttention splits in_proj."""
    B, T, C = qkv.shape
    r = qkv.reshape(B, T, 3, H, C // (3 * H)).transpose(2, 0, 3, 1, 4)
    return [np.ascontiguousarray(a) for a in r]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,H,T,D,causal,mask_frac,dropout", [
    (1, 1, 1, 1, False, 0.0, 0.0), (2, 3, 7, 5, True, 0.0, 0.0), (2, 4, 70, 16, False, 0.3, 0.2),
    (1, 2, 130, 9, True, 0.2, 0.1), (3, 2, 24, 32, False, 0.0, 0.0),
    (1, 2, 150, 8, True, 0.1, 0.0),  # past kInPlaceMaxS keys, D a vector multiple: contiguous copies
    (1, 2, 350, 8, False, 0.1, 0.0)])  # and 2 key chunks (336 + 14)
def test_packed_is_bitwise_the_split_kernel(rng, dtype, B, H, T, D, causal, mask_frac, dropout):
    """The packed kernel (q, k, v read in place from the projection, heads merged on output) gives the
    bits of attention_forward / attention_backward on the split heads, masks and dropout included; the
    split kernel itself is checked against the float64 reference above."""
    qkv = rng.standard_normal((B, T, 3 * H * D)).astype(dtype)
    kpm = (rng.random((B, T)) < mask_frac) if mask_frac > 0 else None
    dy = rng.standard_normal((B, T, H * D)).astype(dtype)
    out = F.attention_packed_forward(qkv, H, causal=causal, key_padding_mask=kpm, dropout=dropout, seed=7)
    q, k, v = split(qkv, H)
    ref_out = F.attention_forward(q, k, v, causal=causal, key_padding_mask=kpm, dropout=dropout, seed=7)
    np.testing.assert_array_equal(out.y, ref_out.y.transpose(0, 2, 1, 3).reshape(B, T, H * D))
    np.testing.assert_array_equal(out.cache.lse, ref_out.cache.lse)
    dqkv = F.attention_packed_backward(out.cache, dy)
    g = F.attention_backward(ref_out.cache, np.ascontiguousarray(dy.reshape(B, T, H, D).transpose(0, 2, 1, 3)))
    packed = np.stack(g).transpose(1, 3, 0, 2, 4).reshape(B, T, 3 * H * D)
    np.testing.assert_array_equal(dqkv, packed)
    assert dqkv.dtype == dtype and out.y.dtype == dtype


def test_packed_bad_input(rng):
    qkv = rng.standard_normal((2, 5, 24)).astype(np.float32)
    with pytest.raises(ValueError, match="qkv must be 3-D"):
        F.attention_packed_forward(qkv[0], 2)
    with pytest.raises(ValueError, match=r"qkv's last dimension must be 3 \* heads \* d"):
        F.attention_packed_forward(qkv, 5)
    with pytest.raises(TypeError, match="heads must be an int"):
        F.attention_packed_forward(qkv, 2.0)
    with pytest.raises(ValueError, match="key_padding_mask must have shape"):
        F.attention_packed_forward(qkv, 2, key_padding_mask=np.zeros((2, 4), bool))
    out = F.attention_packed_forward(qkv, 2)
    assert out.y.shape == (2, 5, 8) and out.cache.lse.shape == (2, 2, 5)
    with pytest.raises(ValueError, match="dy must have the shape"):
        F.attention_packed_backward(out.cache, np.zeros((2, 5, 4), np.float32))
    with pytest.raises(TypeError, match="dy has dtype float64 but qkv has dtype float32"):
        F.attention_packed_backward(out.cache, np.zeros((2, 5, 8)))
    with pytest.raises(TypeError, match="cache must be the PackedAttentionCache"):
        F.attention_packed_backward(F.attention_forward(*split(qkv, 2)).cache, out.y)
    y, lse = np.empty_like(out.y), np.empty_like(out.cache.lse)
    with pytest.raises(ValueError, match="y must have shape"):
        _core.attention_packed_forward(np.empty((2, 5, 9), np.float32), lse, qkv, None, 2)
    with pytest.raises(ValueError, match="heads must be >= 1"):
        _core.attention_packed_forward(y, lse, qkv, None, 0)
    with pytest.raises(ValueError, match="dqkv overlaps qkv"):
        _core.attention_packed_backward(qkv, out.y, qkv, out.y, out.cache.lse, None, 2)
