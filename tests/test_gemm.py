"""GEMM kernel (csrc/gemm*.cpp) through neurodivergent._core.gemm.

c = alpha * op(a) @ op(b) + beta * c, in place, float32 / float64, row-major. Checked against a float64
numpy reference with an elementwise forward-error bound |out - ref| <= rtol * (|ref| + mag) + atol,
where mag = |alpha| * (|op(a)| @ |op(b)|) + |beta * c| (the scale the rounding error is proportional to)
and rtol = 1e-5 * sqrt(K) for float32, 1e-12 * sqrt(K) for float64.
"""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from neurodivergent import _core

DTYPES = [np.float32, np.float64]
TRANS = list(itertools.product([False, True], [False, True]))


@pytest.fixture(autouse=True)
def _restore_state():
    n = _core.get_num_threads()
    try:
        yield
    finally:
        _core.set_num_threads(n)
        _core.gemm_force_isa("auto")


def _isas():
    """ISAs this CPU runs: the auto choice is the best one, and each implies the ones below it."""
    best = _core.gemm_isa()
    order = ["generic", "avx2", "avx512"]
    return order[: order.index(best) + 1]


def make(rng, M, N, K, ta, tb, dtype, c_fill=None):
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
    c = rng.standard_normal((M, N)).astype(dtype) if c_fill is None else np.full((M, N), c_fill, dtype)
    return a, b, c


def reference(a, b, c, ta, tb, alpha, beta):
    A = a.astype(np.float64)
    B = b.astype(np.float64)
    A = A.T if ta else A
    B = B.T if tb else B
    C = c.astype(np.float64)
    old = beta * C if beta != 0 else np.zeros_like(C)
    ref = alpha * (A @ B) + old
    mag = abs(alpha) * (np.abs(A) @ np.abs(B)) + np.abs(old)
    return ref, mag


def assert_gemm_close(out, ref, mag, K, dtype):
    rtol = (1e-5 if dtype == np.float32 else 1e-12) * np.sqrt(K + 1)
    atol = 1e-30
    err = np.abs(out.astype(np.float64) - ref)
    bound = rtol * (np.abs(ref) + mag) + atol
    assert np.all(np.isfinite(out))
    bad = err > bound
    assert not bad.any(), f"{bad.sum()} elements off; worst err {err.max():.3g} vs bound {bound[bad].min():.3g}"


def run_case(rng, M, N, K, ta, tb, dtype, alpha=1.0, beta=0.0, naive=False):
    a, b, c = make(rng, M, N, K, ta, tb, dtype)
    ref, mag = reference(a, b, c, ta, tb, alpha, beta)
    _core.gemm(a, b, c, ta, tb, alpha, beta, naive)
    assert c.dtype == dtype
    assert_gemm_close(c, ref, mag, K, dtype)
    return c


# Tile sizes are 6x16 / 6x8 (AVX2), 6x32 / 6x16 (AVX-512), 4x8 / 4x4 (generic); K blocks 192..256,
# M blocks 72..192, N blocks 1536..3072: shapes below cover 1x1x1, partial tiles in M and N, several K
# blocks (K = 700), several M blocks (M = 300) and several N blocks (N = 3100); (61, 50, 533) is a small
# weight gradient (one A block with a partial sliver, K blocks 184 + 184 + 165 that end inside a group of 8
# rows of the row-wise packing, a partial B sliver).
SHAPES = [
    (1, 1, 1),
    (1, 7, 3),
    (5, 1, 9),
    (6, 16, 8),
    (7, 17, 9),
    (13, 33, 65),
    (32, 256, 64),
    (65, 47, 300),
    (61, 50, 533),
    (130, 3100, 9),
    (300, 517, 700),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,N,K", SHAPES)
@pytest.mark.parametrize("ta,tb", TRANS)
def test_matches_float64_reference(rng, M, N, K, ta, tb, dtype):
    alpha, beta = (1.0, 0.0) if (M + N + K) % 2 else (-0.75, 1.5)
    run_case(rng, M, N, K, ta, tb, dtype, alpha, beta)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (1.0, 1.0), (2.5, -0.5), (-1.0, 0.25), (0.0, 2.0), (0.0, 0.0)])
def test_alpha_beta(rng, alpha, beta, dtype):
    for ta, tb in TRANS:
        run_case(rng, 23, 41, 37, ta, tb, dtype, alpha, beta)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,N,K", [(0, 5, 3), (4, 0, 3), (4, 5, 0), (0, 0, 0), (0, 3, 0)])
@pytest.mark.parametrize("beta", [0.0, 2.0])
def test_zero_sizes(rng, M, N, K, beta, dtype):
    for ta, tb in TRANS:
        a, b, c = make(rng, M, N, K, ta, tb, dtype)
        want = beta * c if beta != 0 else np.zeros_like(c)
        _core.gemm(a, b, c, ta, tb, 1.0, beta)
        np.testing.assert_array_equal(c, want.astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,N,K", [(7, 17, 9), (64, 256, 64), (300, 517, 70), (5, 5, 0)])
def test_beta_zero_ignores_nan_in_c(rng, M, N, K, dtype):
    for ta, tb in TRANS:
        for naive in (False, True):
            a, b, c = make(rng, M, N, K, ta, tb, dtype, c_fill=np.nan)
            ref, mag = reference(a, b, np.zeros_like(c), ta, tb, 1.0, 0.0)
            _core.gemm(a, b, c, ta, tb, 1.0, 0.0, naive)
            assert_gemm_close(c, ref, mag, K, dtype)


def test_beta_one_accumulates_like_weight_gradient(rng):
    # dW (O, I) += dY^T (O, B) @ X (B, I): trans_a with beta = 1, called twice doubles the increment.
    dy = rng.standard_normal((96, 64)).astype(np.float32)
    x = rng.standard_normal((96, 40)).astype(np.float32)
    dw0 = rng.standard_normal((64, 40)).astype(np.float32)
    dw = dw0.copy()
    _core.gemm(dy, x, dw, trans_a=True, beta=1.0)
    _core.gemm(dy, x, dw, trans_a=True, beta=1.0)
    ref = dw0.astype(np.float64) + 2 * dy.astype(np.float64).T @ x.astype(np.float64)
    np.testing.assert_allclose(dw, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (7, 17, 9), (33, 70, 129), (61, 23, 300)])
def test_fast_matches_naive(rng, M, N, K, dtype):
    for ta, tb in TRANS:
        a, b, c = make(rng, M, N, K, ta, tb, dtype)
        c_fast, c_naive = c.copy(), c.copy()
        _core.gemm(a, b, c_fast, ta, tb, 0.5, -1.25)
        _core.gemm(a, b, c_naive, ta, tb, 0.5, -1.25, naive=True)
        ref, mag = reference(a, b, c, ta, tb, 0.5, -1.25)
        rtol = (1e-5 if dtype == np.float32 else 1e-12) * np.sqrt(K + 1)
        assert np.all(np.abs(c_fast.astype(np.float64) - c_naive) <= 2 * rtol * (np.abs(ref) + mag))


# Shapes big enough to be split over threads, along N (M <= N) and along M (M > N).
THREAD_SHAPES = [(300, 517, 700, False, False), (256, 1024, 256, False, True), (1000, 40, 300, True, False),
                 (40, 1000, 300, True, True), (130, 3100, 20, False, False)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,N,K,ta,tb", THREAD_SHAPES)
def test_thread_count_does_not_change_bits(rng, M, N, K, ta, tb, dtype):
    a, b, c0 = make(rng, M, N, K, ta, tb, dtype)
    outs = []
    for n in (1, 2, 3, 4):
        _core.set_num_threads(n)
        c = c0.copy()
        _core.gemm(a, b, c, ta, tb, 1.5, 0.5)
        outs.append(c)
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])
    ref, mag = reference(a, b, c0, ta, tb, 1.5, 0.5)
    assert_gemm_close(outs[0], ref, mag, K, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_repeated_calls_bitwise_identical(rng, dtype):
    for M, N, K, ta, tb in THREAD_SHAPES[:2] + [(7, 9, 5, True, True), (32, 256, 64, False, False)]:
        a, b, c0 = make(rng, M, N, K, ta, tb, dtype)
        first = c0.copy()
        _core.gemm(a, b, first, ta, tb, 1.0, 0.3)
        for _ in range(3):
            again = c0.copy()
            _core.gemm(a, b, again, ta, tb, 1.0, 0.3)
            np.testing.assert_array_equal(again, first)


def test_workspace_reuse_after_larger_and_smaller_calls(rng):
    # Thread-local packing buffers grow and are reused; interleave sizes and dtypes.
    for M, N, K in [(300, 517, 700), (3, 4, 5), (130, 3100, 9), (1, 1, 1), (64, 64, 600)]:
        for dtype in DTYPES:
            run_case(rng, M, N, K, False, True, dtype, 1.0, 0.0)


@settings(max_examples=80, deadline=None)
@given(
    M=st.integers(0, 40),
    N=st.integers(0, 70),
    K=st.integers(0, 40),
    ta=st.booleans(),
    tb=st.booleans(),
    f64=st.booleans(),
    alpha=st.sampled_from([1.0, -2.0, 0.5, 0.0]),
    beta=st.sampled_from([0.0, 1.0, -0.5]),
    threads=st.sampled_from([1, 2]),
)
def test_hypothesis_shapes(M, N, K, ta, tb, f64, alpha, beta, threads):
    _core.set_num_threads(threads)
    rng = np.random.default_rng(M * 10007 + N * 101 + K)
    dtype = np.float64 if f64 else np.float32
    run_case(rng, M, N, K, ta, tb, dtype, alpha, beta)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_supported_isa_is_correct_and_they_agree(rng, dtype):
    isas = _isas()
    assert "generic" in isas
    for M, N, K in [(1, 1, 1), (7, 17, 9), (50, 70, 300), (130, 3100, 9)]:
        for ta, tb in TRANS:
            a, b, c0 = make(rng, M, N, K, ta, tb, dtype)
            ref, mag = reference(a, b, c0, ta, tb, 0.75, 0.5)
            outs = {}
            for isa in isas:
                _core.gemm_force_isa(isa)
                assert _core.gemm_isa() == isa
                c = c0.copy()
                _core.gemm(a, b, c, ta, tb, 0.75, 0.5)
                assert_gemm_close(c, ref, mag, K, dtype)
                outs[isa] = c
            rtol = (1e-5 if dtype == np.float32 else 1e-12) * np.sqrt(K + 1)
            for isa, o in outs.items():
                assert np.all(np.abs(o.astype(np.float64) - outs["generic"]) <= 2 * rtol * (np.abs(ref) + mag)), isa
    _core.gemm_force_isa("auto")
    assert _core.gemm_isa() == isas[-1]


def test_force_isa_rejects_unsupported_and_unknown():
    isas = _isas()
    for isa in ["generic", "avx2", "avx512"]:
        if isa in isas:
            _core.gemm_force_isa(isa)
            assert _core.gemm_isa() == isa
        else:
            before = _core.gemm_isa()
            with pytest.raises(ValueError):
                _core.gemm_force_isa(isa)
            assert _core.gemm_isa() == before
    for bad in ["", "sse9", "AVX2 "]:
        with pytest.raises(ValueError):
            _core.gemm_force_isa(bad)
    _core.gemm_force_isa("auto")
    assert _core.gemm_isa() == isas[-1]


def test_avx2_cpu_runs_avx2_or_better():
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    if " avx2" in flags and " fma" in flags:
        assert _core.gemm_isa() in ("avx2", "avx512")
        _core.gemm_force_isa("avx2")
        _core.gemm_force_isa("generic")


# ------------------------------------------------------------------------------------------ bad input
def _ok(M=3, N=4, K=5, dtype=np.float32):
    return np.ones((M, K), dtype), np.ones((K, N), dtype), np.zeros((M, N), dtype)


def _bad_cases():
    a, b, c = _ok()
    sq = np.ones((4, 4), np.float32)
    big = np.zeros((10, 10), np.float32)
    ro = c.copy()
    ro.setflags(write=False)
    return [
        ("list a", lambda: _core.gemm(a.tolist(), b, c)),
        ("int arrays", lambda: _core.gemm(a.astype(np.int32), b.astype(np.int32), c.astype(np.int32))),
        ("int64 c", lambda: _core.gemm(a, b, c.astype(np.int64))),
        ("float16", lambda: _core.gemm(a.astype(np.float16), b.astype(np.float16), c.astype(np.float16))),
        ("mixed dtypes", lambda: _core.gemm(a, b.astype(np.float64), c)),
        ("mixed c dtype", lambda: _core.gemm(a, b, c.astype(np.float64))),
        ("complex", lambda: _core.gemm(a.astype(np.complex64), b.astype(np.complex64), c.astype(np.complex64))),
        ("non-contiguous a", lambda: _core.gemm(np.ones((3, 10), np.float32)[:, ::2], b, c)),
        ("fortran b", lambda: _core.gemm(a, np.asfortranarray(np.ones((5, 4), np.float32)), c)),
        ("non-contiguous c", lambda: _core.gemm(a, b, np.zeros((3, 8), np.float32)[:, ::2])),
        ("1-D a", lambda: _core.gemm(np.ones(5, np.float32), b, c)),
        ("3-D b", lambda: _core.gemm(a, np.ones((1, 5, 4), np.float32), c)),
        ("0-D c", lambda: _core.gemm(a, b, np.float32(0))),
        ("inner mismatch", lambda: _core.gemm(a, np.ones((6, 4), np.float32), c)),
        ("inner mismatch trans_b", lambda: _core.gemm(a, b, c, trans_b=True)),
        ("inner mismatch trans_a", lambda: _core.gemm(a, b, c, trans_a=True)),
        ("wrong c shape", lambda: _core.gemm(a, b, np.zeros((4, 3), np.float32))),
        ("wrong c rows", lambda: _core.gemm(a, b, np.zeros((2, 4), np.float32))),
        ("read-only c", lambda: _core.gemm(a, b, ro)),
        ("c is a", lambda: _core.gemm(sq, np.ones((4, 4), np.float32), sq)),
        ("c is b", lambda: _core.gemm(np.ones((4, 4), np.float32), sq, sq)),
        ("c overlaps a", lambda: _core.gemm(big[0:5], np.ones((10, 10), np.float32), big[4:9])),
        ("c is a view into a", lambda: _core.gemm(big, np.ones((10, 2), np.float32), big.reshape(-1)[:20].reshape(10, 2))),
        ("None c", lambda: _core.gemm(a, b, None)),
    ]


@pytest.mark.parametrize("name,call", _bad_cases(), ids=[n for n, _ in _bad_cases()])
def test_bad_input_raises(name, call):
    with pytest.raises((TypeError, ValueError)):
        call()


def test_bad_input_leaves_c_untouched_and_module_usable(rng):
    a, b, c = _ok()
    c[:] = 7
    with pytest.raises(ValueError):
        _core.gemm(a, np.ones((6, 4), np.float32), c)
    assert np.all(c == 7)
    run_case(rng, 7, 9, 5, False, False, np.float32)


def test_set_num_threads_rejects_bad_values():
    for bad in (0, -1, 100000):
        with pytest.raises(ValueError):
            _core.set_num_threads(bad)
