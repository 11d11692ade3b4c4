// Scaled dot-product attention kernels (see attention.h for the definitions and the cache).
// Dimension letters: B batch, H heads, T query steps, S key steps, D head width; BQ query rows per block;
// W SIMD width (8 floats / 4 doubles), Sp, Dp: S, D rounded up to W.
//
// Fast path, per (b, h) pair: K^T (D, Sp) (and for the backward V^T, and zero-padded copies of K, Q, dY
// when D is not a multiple of W or the operands are strided, see Shape) are laid out once in a per-thread
// workspace; then
//   forward   per tile of kTileQ query rows, per chunk of kChunkS keys (online softmax, one pass):
//             S = scale * Q_tile K^T_chunk (masked -> -inf); m_new = max(m, rowmax S);
//             O, l *= exp(m - m_new) when the max grew; P = exp(S - m_new); l += rowsum P;
//             P *= keep (dropout); O += P V_chunk.   At the end y = O / (l (1 - p)), lse = m + log l
//             (float: in base 2, S scaled by log2 e, P = 2^(S - m_new), lse = (m + log2 l) ln 2; see SoftmaxBase)
//   backward  per block of kBlockQ query rows [i0, i1):
//             P = exp(scale * Q_blk K^T - lse)    recomputed (no stored scores)
//             Pd = P * keep / (1 - p)             (Pd = P without dropout)
//             dV += Pd^T dY_blk;  dPd = dY_blk V^T
//             dS = Pd * dPd - P * Dl_i            Dl_i = dY_i . Y_i  (= sum_j P_ij dP_ij)
//             dQ_blk = scale * dS K;  dK += scale * dS^T Q_blk
// The products are small (D <= a few hundred, the operands stay in L1/L2), so they use an unpacked
// register-tiled kernel (6 rows x 2 vectors of accumulators, B rows read in place) instead of the packed
// GEMM, whose packing costs as much as the arithmetic at these sizes. Everything for one pair is written
// once with GCC vector extensions and compiled twice, for AVX2+FMA (target attribute, picked at run time
// as the GEMM's ISA) and for the baseline. The softmax's exp is a vectorisable polynomial for float
// (relative error ~1e-7) and std::exp for double (the float64 path is what tests compare with finite
// differences). The naive path keeps plain loops over (b, h, i, j) beside it (tests compare the two).
#include "attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "gemm.h"
#include "simd_exp.h"

#ifdef ND_OPENMP
#include <omp.h>
#endif

#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wpsabi"  // 32-byte vectors in always-inline helpers of baseline code
#endif

#if defined(ND_X86) && ND_X86 && defined(__x86_64__) && defined(__GNUC__)
#define ND_ATTN_X86 1
#else
#define ND_ATTN_X86 0
#endif

#define ND_AI inline __attribute__((always_inline))

namespace nd {
namespace {

constexpr index_t kBlockQ = 60;  // query rows per score block (backward; a multiple of the GEMM's 6-row tile)
constexpr double kMinWorkPerThread = 2e6;  // FLOPs; under this a parallel region costs more than it saves

// ------------------------------------------------------------------------------------------ dropout hash
ND_AI std::uint64_t mix64(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

inline std::uint32_t drop_threshold(double p) {
  double t = std::floor(p * 4294967296.0);
  if (t < 0) t = 0;
  if (t > 4294967295.0) t = 4294967295.0;
  return static_cast<std::uint32_t>(t);
}

ND_AI bool keep_at(std::uint64_t base, std::uint64_t n, std::uint32_t thr) {
  return static_cast<std::uint32_t>(mix64(base + n) >> 32) >= thr;
}

// ------------------------------------------------------------------------------------------ exp
// exp(x) for x <= 0 (softmax arguments): float is simd_exp.h's exp1_nonpos, the scalar twin of the vector
// exp8_nonpos (tails and the naive rows get the same bits as the vector lanes).
ND_AI float exp_neg(float x) { return exp1_nonpos(x); }
ND_AI double exp_neg(double x) { return std::exp(x); }

// out[j] = exp(s[j] - c) for j < n (in place allowed). float: W lanes at a time with exp_neg_v (a plain
// loop over the scalar version does not vectorise: its clamps become branches); double: std::exp.
template <typename F>
ND_AI void exp_shift(F* out, const F* s, index_t n, F c) {
  for (index_t j = 0; j < n; ++j) out[j] = exp_neg(F(s[j] - c));
}

// max and sum with 8 independent lanes (vectorisable without reassociation flags).
template <typename F>
ND_AI F row_max(const F* s, index_t n) {
  constexpr int L = 8;
  const F ninf = -std::numeric_limits<F>::infinity();
  F acc[L];
  for (int l = 0; l < L; ++l) acc[l] = ninf;
  index_t j = 0;
  for (; j + L <= n; j += L)
    for (int l = 0; l < L; ++l) acc[l] = s[j + l] > acc[l] ? s[j + l] : acc[l];
  F m = ninf;
  for (int l = 0; l < L; ++l) m = acc[l] > m ? acc[l] : m;
  for (; j < n; ++j) m = s[j] > m ? s[j] : m;
  return m;
}

template <typename F>
ND_AI F row_sum(const F* s, index_t n) {
  constexpr int L = 8;
  F acc[L] = {};
  index_t j = 0;
  for (; j + L <= n; j += L)
    for (int l = 0; l < L; ++l) acc[l] += s[j + l];
  F t = 0;
  for (int l = 0; l < L; ++l) t += acc[l];
  for (; j < n; ++j) t += s[j];
  return t;
}

template <typename F>
ND_AI F row_dot(const F* a, const F* b, index_t n) {
  constexpr int L = 8;
  F acc[L] = {};
  index_t j = 0;
  for (; j + L <= n; j += L)
    for (int l = 0; l < L; ++l) acc[l] += a[j + l] * b[j + l];
  F t = 0;
  for (int l = 0; l < L; ++l) t += acc[l];
  for (; j < n; ++j) t += a[j] * b[j];
  return t;
}

// Key-padding mask applied to a score row: s[j] = -inf where kpm[j] != 0 (j < n).
template <typename F>
ND_AI void mask_row(F* s, const std::uint8_t* kpm, index_t n) {
  const F ninf = -std::numeric_limits<F>::infinity();
  for (index_t j = 0; j < n; ++j) s[j] = kpm[j] ? ninf : s[j];
}

// ------------------------------------------------------------------------------------------ vectors
template <typename F>
struct VT;
template <>
struct VT<float> {
  typedef float V __attribute__((vector_size(32)));
  typedef float U __attribute__((vector_size(32), aligned(4), may_alias));
  static constexpr int W = 8;
};
template <>
struct VT<double> {
  typedef double V __attribute__((vector_size(32)));
  typedef double U __attribute__((vector_size(32), aligned(8), may_alias));
  static constexpr int W = 4;
};
template <typename F>
using Vec = typename VT<F>::V;
template <typename F>
ND_AI Vec<F> vset(F a) {
  return Vec<F>{} + a;
}
template <typename F>
ND_AI Vec<F> ld(const F* p) {
  return *reinterpret_cast<const typename VT<F>::U*>(p);
}
template <typename F>
ND_AI void st(F* p, Vec<F> v) {
  *reinterpret_cast<typename VT<F>::U*>(p) = v;
}
inline index_t round_up(index_t a, index_t b) { return (a + b - 1) / b * b; }

// exp_neg on W floats at once: exp8_nonpos (simd_exp.h), the same arithmetic as the scalar exp_neg.
ND_AI Vec<float> exp_neg_v(Vec<float> x) { return exp8_nonpos(x); }

ND_AI void exp_shift(float* out, const float* s, index_t n, float c) {
  constexpr int W = VT<float>::W;
  const Vec<float> vc = vset(c);
  index_t j = 0;
  // four independent exp chains per iteration (see exp_shift_sum)
  for (; j + 4 * W <= n; j += 4 * W) {
    const Vec<float> e0 = exp_neg_v(ld(s + j) - vc), e1 = exp_neg_v(ld(s + j + W) - vc);
    const Vec<float> e2 = exp_neg_v(ld(s + j + 2 * W) - vc), e3 = exp_neg_v(ld(s + j + 3 * W) - vc);
    st(out + j, e0);
    st(out + j + W, e1);
    st(out + j + 2 * W, e2);
    st(out + j + 3 * W, e3);
  }
  for (; j + W <= n; j += W) st(out + j, exp_neg_v(ld(s + j) - vc));
  for (; j < n; ++j) out[j] = exp_neg(float(s[j] - c));
}

// ------------------------------------------------------------------------------------------ small GEMM
// C (m, n) = alpha * op(A) (m, K) * B (K, n)  [+ C when ACC], unpacked operands (they are a few KiB and
// stay in L1/L2): B rows are read directly (row stride ldb, n a multiple of the vector width W, padded
// columns of B are zero), op(A)(r, k) = A[r*lda + k] or, transposed, A[k*lda + r]. Register tile MR
// rows x NV vectors: 6 x 2 (12 accumulators, 2 B vectors and a broadcast in the 16 AVX registers: 12
// independent FMA chains cover the FMA latency, 8 (4 x 2) did not quite), 4 x 2 for a tail of <= 4 rows;
// rows past m repeat the last row (computed, never stored).
template <typename F, bool TA, bool ACC, int NV, int MR>
ND_AI void sg_tile(const index_t* rows, index_t mr, index_t i0, index_t j0, index_t K, Vec<F> va, const F* A,
                   index_t lda, const F* B, index_t ldb, F* C, index_t ldc) {
  constexpr int W = VT<F>::W;
  Vec<F> acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = Vec<F>{};
  // two k steps per loop iteration: the loop's counter / pointer / branch instructions (4 per step) are a
  // sixth of the tile's instructions at one step per iteration (same FMA order: bitwise the same results)
#pragma GCC unroll 2
  for (index_t k = 0; k < K; ++k) {
    const F* bp = B + k * ldb + j0;
    Vec<F> b[NV];
    for (int v = 0; v < NV; ++v) b[v] = ld(bp + v * W);
    for (int r = 0; r < MR; ++r) {
      // a scalar operand: GCC broadcasts it with one vbroadcastss from memory (vset, `Vec{} + a`, costs an
      // add and a register broadcast: two more floating-point uops per broadcast)
      const F a = TA ? A[k * lda + rows[r]] : A[rows[r] * lda + k];
      for (int v = 0; v < NV; ++v) acc[r][v] += a * b[v];
    }
  }
  for (int r = 0; r < MR; ++r) {
    if (r >= mr) break;
    F* cp = C + (i0 + r) * ldc + j0;
    for (int v = 0; v < NV; ++v) st(cp + v * W, ACC ? ld(cp + v * W) + va * acc[r][v] : va * acc[r][v]);
  }
}

template <typename F, bool TA, bool ACC, int MR>
ND_AI void sg_rows(index_t i0, index_t mr, index_t n, index_t K, Vec<F> va, const F* A, index_t lda, const F* B,
                   index_t ldb, F* C, index_t ldc) {
  constexpr int W = VT<F>::W;
  index_t rows[MR];
  for (int r = 0; r < MR; ++r) rows[r] = i0 + std::min<index_t>(r, mr - 1);
  index_t j0 = 0;
  for (; j0 + 2 * W <= n; j0 += 2 * W) sg_tile<F, TA, ACC, 2, MR>(rows, mr, i0, j0, K, va, A, lda, B, ldb, C, ldc);
  if (j0 < n) sg_tile<F, TA, ACC, 1, MR>(rows, mr, i0, j0, K, va, A, lda, B, ldb, C, ldc);
}

template <typename F, bool TA, bool ACC>
ND_AI void sgemm(index_t m, index_t n, index_t K, F alpha, const F* A, index_t lda, const F* B, index_t ldb, F* C,
                 index_t ldc) {
  const Vec<F> va = vset(alpha);
  index_t i0 = 0;
  for (; i0 + 6 <= m; i0 += 6) sg_rows<F, TA, ACC, 6>(i0, 6, n, K, va, A, lda, B, ldb, C, ldc);
  if (m - i0 == 5) sg_rows<F, TA, ACC, 6>(i0, 5, n, K, va, A, lda, B, ldb, C, ldc);
  else if (m > i0) sg_rows<F, TA, ACC, 4>(i0, m - i0, n, K, va, A, lda, B, ldb, C, ldc);
}

// ------------------------------------------------------------------------------------------ workspace
template <typename F>
F* workspace(std::size_t n, int which) {
  thread_local std::vector<F> buf[11];
  if (buf[which].size() < n) buf[which].resize(n);
  return buf[which].data();
}

// dst (rows, ldd) <- src (rows, cols) (row stride lds), columns past cols zero (a padded copy).
template <typename F>
ND_AI void pad_copy(F* dst, index_t ldd, const F* src, index_t lds, index_t rows, index_t cols) {
  for (index_t r = 0; r < rows; ++r) {
    for (index_t c = 0; c < cols; ++c) dst[r * ldd + c] = src[r * lds + c];
    for (index_t c = cols; c < ldd; ++c) dst[r * ldd + c] = F(0);
  }
}

// dst (cols, ldd) <- src (rows, cols)^T (src row stride lds), columns past rows zero.
template <typename F>
ND_AI void pad_transpose(F* dst, index_t ldd, const F* src, index_t lds, index_t rows, index_t cols) {
  for (index_t c = 0; c < cols; ++c) {
    for (index_t r = 0; r < rows; ++r) dst[c * ldd + r] = src[r * lds + c];
    for (index_t r = rows; r < ldd; ++r) dst[c * ldd + r] = F(0);
  }
}

// Float: the same, 8 x 8 blocks transposed in registers (unpack / shuffle / 128-bit lane swaps as
// two-operand vector shuffles); rows past `rows` read as zeros (the padding), columns past the last full
// block of 8 by the scalar loop. Exactly the same values as the scalar version (copies only).
ND_AI void pad_transpose(float* dst, index_t ldd, const float* src, index_t lds, index_t rows, index_t cols) {
  typedef float V8 __attribute__((vector_size(32)));
  typedef float U8 __attribute__((vector_size(32), aligned(4), may_alias));
  typedef std::int32_t M __attribute__((vector_size(32)));
  const index_t c8 = cols / 8 * 8;
  for (index_t c0 = 0; c0 < c8; c0 += 8) {
    for (index_t r0 = 0; r0 < ldd; r0 += 8) {  // ldd is a multiple of 8 (rows rounded up)
      V8 x[8];
      for (int i = 0; i < 8; ++i)
        x[i] = r0 + i < rows ? *reinterpret_cast<const U8*>(src + (r0 + i) * lds + c0) : V8{};
      V8 t[8], u[8];
      for (int i = 0; i < 8; i += 2) {
        t[i] = __builtin_shuffle(x[i], x[i + 1], M{0, 8, 1, 9, 4, 12, 5, 13});
        t[i + 1] = __builtin_shuffle(x[i], x[i + 1], M{2, 10, 3, 11, 6, 14, 7, 15});
      }
      for (int h = 0; h < 8; h += 4)
        for (int i = 0; i < 2; ++i) {
          u[h + 2 * i] = __builtin_shuffle(t[h + i], t[h + i + 2], M{0, 1, 8, 9, 4, 5, 12, 13});
          u[h + 2 * i + 1] = __builtin_shuffle(t[h + i], t[h + i + 2], M{2, 3, 10, 11, 6, 7, 14, 15});
        }
      for (int i = 0; i < 4; ++i) {
        *reinterpret_cast<U8*>(dst + (c0 + i) * ldd + r0) = __builtin_shuffle(u[i], u[i + 4], M{0, 1, 2, 3, 8, 9, 10, 11});
        *reinterpret_cast<U8*>(dst + (c0 + i + 4) * ldd + r0) =
            __builtin_shuffle(u[i], u[i + 4], M{4, 5, 6, 7, 12, 13, 14, 15});
      }
    }
  }
  for (index_t c = c8; c < cols; ++c) {
    for (index_t r = 0; r < rows; ++r) dst[c * ldd + r] = src[r * lds + c];
    for (index_t r = rows; r < ldd; ++r) dst[c * ldd + r] = 0.0f;
  }
}

template <typename F>
ND_AI void unpad_copy(F* dst, index_t ldd, const F* src, index_t lds, index_t rows, index_t cols) {
  for (index_t r = 0; r < rows; ++r)
    for (index_t c = 0; c < cols; ++c) dst[r * ldd + c] = src[r * lds + c];
}

// ------------------------------------------------------------------------------------------ threading
template <class Fn>
void for_pairs(index_t pairs, double work_per_pair, Fn&& f) {
#ifdef ND_OPENMP
  int nt = num_threads();
  if (nt > pairs) nt = static_cast<int>(pairs);
  const double work = work_per_pair * double(pairs);
  while (nt > 1 && work / nt < kMinWorkPerThread) --nt;
  if (nt > 1 && !omp_in_parallel()) {
#pragma omp parallel num_threads(nt)
    {
      index_t p0, p1;
      split_range(pairs, omp_get_num_threads(), omp_get_thread_num(), p0, p1);
      for (index_t p = p0; p < p1; ++p) f(p);
    }
    return;
  }
#endif
  for (index_t p = 0; p < pairs; ++p) f(p);
}

// Layout of the operands. Split (packed == false): q, y, dq, dy (B,H,T,D), k, v, dk, dv (B,H,S,D),
// contiguous. Packed (self-attention, T == S): q, k, v point into one (B,T,3,H,D) array (the input
// projection's output; k = q + H*D, v = q + 2*H*D), dq, dk, dv likewise into its gradient, and y, dy are
// (B,T,H,D) (heads merged). Row i of pair (b, h) of an operand is at base + i * rs.
struct Shape {
  index_t B, H, T, S, D;
  bool causal;
  double scale, dropout;
  std::uint64_t seed;
  bool packed = false;
  index_t in_base(index_t pair, index_t n) const {  // q, k, v (n = T or S)
    return packed ? (pair / H) * n * 3 * H * D + (pair % H) * D : pair * n * D;
  }
  index_t out_base(index_t pair) const { return packed ? (pair / H) * T * H * D + (pair % H) * D : pair * T * D; }
  index_t in_rs() const { return packed ? 3 * H * D : D; }
  index_t out_rs() const { return packed ? H * D : D; }
};

// ------------------------------------------------------------------------------------------ fast path
// Horizontal sum / max of a vector by halving shuffles (log2 W steps, not W dependent scalar steps).
ND_AI float hsum(Vec<float> a) {
  typedef std::int32_t M __attribute__((vector_size(32)));
  a += __builtin_shuffle(a, M{4, 5, 6, 7, 0, 1, 2, 3});
  a += __builtin_shuffle(a, M{2, 3, 0, 1, 6, 7, 4, 5});
  a += __builtin_shuffle(a, M{1, 0, 3, 2, 5, 4, 7, 6});
  return a[0];
}
ND_AI double hsum(Vec<double> a) {
  typedef std::int64_t M __attribute__((vector_size(32)));
  a += __builtin_shuffle(a, M{2, 3, 0, 1});
  a += __builtin_shuffle(a, M{1, 0, 3, 2});
  return a[0];
}
ND_AI Vec<float> vmax(Vec<float> a, Vec<float> b) { return b > a ? b : a; }
ND_AI Vec<double> vmax(Vec<double> a, Vec<double> b) { return b > a ? b : a; }
ND_AI float hmax(Vec<float> a) {
  typedef std::int32_t M __attribute__((vector_size(32)));
  a = vmax(a, __builtin_shuffle(a, M{4, 5, 6, 7, 0, 1, 2, 3}));
  a = vmax(a, __builtin_shuffle(a, M{2, 3, 0, 1, 6, 7, 4, 5}));
  a = vmax(a, __builtin_shuffle(a, M{1, 0, 3, 2, 5, 4, 7, 6}));
  return a[0];
}
ND_AI double hmax(Vec<double> a) {
  typedef std::int64_t M __attribute__((vector_size(32)));
  a = vmax(a, __builtin_shuffle(a, M{2, 3, 0, 1}));
  a = vmax(a, __builtin_shuffle(a, M{1, 0, 3, 2}));
  return a[0];
}

// Forward, fused online softmax (one pass over the keys per tile of query rows): for each tile of kTileQ
// query rows and each chunk of kChunkS keys, the (rows, chunk) scores live in an L1 buffer; per row the
// running max m and sum l are updated (O, l rescaled by exp(m_old - m_new) when the max grows), the chunk's
// weights p = exp(s - m) are accumulated into l (before dropout) and O += p V_chunk; at the end
// y = O * (1 / (1 - dropout)) / l and lse = m + log l.
// The forward's softmax runs in base 2 for float: the scores are scaled by scale * log2 e in the product, so
// p = 2^(s - m) (exp2_8_nonpos, no multiply by log2 e, no ln 2 reduction) and lse = (m + log2 l) ln 2 in
// natural units as before (the backward recomputes exp(scale q.k - lse)). Double stays in base e (std::exp),
// the path the tests hold to 1e-10 and to finite differences.
template <typename F>
struct SoftmaxBase {  // double: natural exp
  static constexpr double kScoreScale = 1.0;
  static F exp(F x) { return std::exp(x); }
  static F lse(F m, F l) { return m + std::log(l); }
};
template <>
struct SoftmaxBase<float> {  // float: base 2
  static constexpr double kScoreScale = 1.4426950408889634074;  // log2 e
  static float exp(float x) { return std::exp2(x); }
  static float lse(float m, float l) {
    return float((double(m) + std::log2(double(l))) * 0.69314718055994530942);
  }
};

// lse of rows [0, m) of a tile: out[r] = SoftmaxBase<F>::lse(mx[r], l[r]) where l[r] > 0 (rows with l = 0 are
// left to the caller). Float: four rows at a time in double with a vector log2 (below) instead of a libm
// call per row (~55 instructions each, 7% of the forward at T = 24).
template <typename F>
ND_AI void lse_rows(F* out, const F* mx, const F* l, index_t m) {
  for (index_t r = 0; r < m; ++r)
    if (l[r] != F(0)) out[r] = SoftmaxBase<F>::lse(mx[r], l[r]);
}
// log2 x for finite x > 0 (normal), 4 doubles: x = 2^e f with f in [sqrt(1/2), sqrt(2)), ln f = 2 atanh(z),
// z = (f - 1) / (f + 1), |z| < 0.172, by its series to z^23 (truncation < 1e-19 relative), so within a
// few 1e-16 of the libm log2: the float lse rounded from it is the libm-based one's except when that value
// lies within ~1e-15 of a float rounding boundary.
ND_AI Vec<double> log2_4(Vec<double> x) {
  typedef std::int64_t I4 __attribute__((vector_size(32)));
  const I4 bits = reinterpret_cast<I4>(x);
  I4 e = ((bits >> 52) & 0x7ff) - 1023;
  Vec<double> f = reinterpret_cast<Vec<double>>((bits & 0x000fffffffffffffLL) | 0x3ff0000000000000LL);  // [1, 2)
  const I4 big = f > 1.4142135623730950488;
  f = big ? f * 0.5 : f;
  e = e - big;  // big is -1 where true
  const Vec<double> z = (f - 1.0) / (f + 1.0), z2 = z * z;
  Vec<double> p = vset(1.0 / 23);
  p = p * z2 + 1.0 / 21;
  p = p * z2 + 1.0 / 19;
  p = p * z2 + 1.0 / 17;
  p = p * z2 + 1.0 / 15;
  p = p * z2 + 1.0 / 13;
  p = p * z2 + 1.0 / 11;
  p = p * z2 + 1.0 / 9;
  p = p * z2 + 1.0 / 7;
  p = p * z2 + 1.0 / 5;
  p = p * z2 + 1.0 / 3;
  p = p * z2 + 1.0;
  const Vec<double> lnf = 2.0 * z * p;
  return __builtin_convertvector(e, Vec<double>) + lnf * 1.44269504088896340736;
}
template <>
ND_AI void lse_rows<float>(float* out, const float* mx, const float* l, index_t m) {
  index_t r = 0;
  for (; r + 4 <= m; r += 4) {
    const Vec<double> lv{double(l[r]), double(l[r + 1]), double(l[r + 2]), double(l[r + 3])};
    const Vec<double> mv{double(mx[r]), double(mx[r + 1]), double(mx[r + 2]), double(mx[r + 3])};
    const Vec<double> lg = log2_4(lv > 0.0 ? lv : vset(1.0));
    const Vec<double> v = (mv + lg) * 0.69314718055994530942;
    for (int t = 0; t < 4; ++t)
      if (l[r + t] != 0.0f) out[r + t] = float(v[t]);
  }
  for (; r < m; ++r)
    if (l[r] != 0.0f) out[r] = SoftmaxBase<float>::lse(mx[r], l[r]);
}

template <typename F>
ND_AI F exp_shift_sum(F* s, index_t n, F c) {
  F t = 0;
  for (index_t j = 0; j < n; ++j) {
    s[j] = exp_neg(F(s[j] - c));
    t += s[j];
  }
  return t;
}
ND_AI float exp_shift_sum(float* s, index_t n, float c) {  // n a multiple of W; base 2: s[j] = 2^(s[j] - c)
  constexpr int W = VT<float>::W;
  const Vec<float> vc = vset(c);
  Vec<float> a0{}, a1{};
  index_t j = 0;
  // Four exps per iteration: each is a chain of ~14 dependent operations (~50 cycles), and with two per
  // iteration the out-of-order window held too few chains to keep the FP pipes busy (the exp took ~8 cycles
  // per vector, 17% of the forward at T = 336). The sums keep their order: a0 gets vectors 0, 2, 4, ...,
  // a1 vectors 1, 3, 5, ... as in the two-per-iteration loop below (bitwise the same l).
  for (; j + 4 * W <= n; j += 4 * W) {
    const Vec<float> e0 = exp2_8_nonpos(ld(s + j) - vc), e1 = exp2_8_nonpos(ld(s + j + W) - vc);
    const Vec<float> e2 = exp2_8_nonpos(ld(s + j + 2 * W) - vc), e3 = exp2_8_nonpos(ld(s + j + 3 * W) - vc);
    st(s + j, e0);
    st(s + j + W, e1);
    st(s + j + 2 * W, e2);
    st(s + j + 3 * W, e3);
    a0 += e0;
    a1 += e1;
    a0 += e2;
    a1 += e3;
  }
  for (; j + 2 * W <= n; j += 2 * W) {
    const Vec<float> e0 = exp2_8_nonpos(ld(s + j) - vc), e1 = exp2_8_nonpos(ld(s + j + W) - vc);
    st(s + j, e0);
    st(s + j + W, e1);
    a0 += e0;
    a1 += e1;
  }
  for (; j < n; j += W) {
    const Vec<float> e0 = exp2_8_nonpos(ld(s + j) - vc);
    st(s + j, e0);
    a0 += e0;
  }
  return hsum(a0 + a1);
}

// max of n values (n a multiple of W), vector lanes.
template <typename F>
ND_AI F vec_max(const F* s, index_t n) {
  constexpr int W = VT<F>::W;
  Vec<F> a = vset(-std::numeric_limits<F>::infinity()), b = a;
  index_t j = 0;
  for (; j + 2 * W <= n; j += 2 * W) {
    const Vec<F> x0 = ld(s + j), x1 = ld(s + j + W);
    a = x0 > a ? x0 : a;
    b = x1 > b ? x1 : b;
  }
  for (; j < n; j += W) {
    const Vec<F> x0 = ld(s + j);
    a = x0 > a ? x0 : a;
  }
  return hmax(b > a ? b : a);
}

// Operands read in place from the packed (B,T,3,H,D) layout only up to this many keys. Its rows are 3 H D
// floats apart (1536 B at H D = 128, 768 B at 64): in a 32 KiB 8-way L1 (64 sets of 64 B lines, indexed by
// address bits 6-11) such rows fall into only 8 (16) sets, so 8-16 x 8 lines hold at most 64-128 rows of
// one operand; longer operands that are swept once per block of query rows (V in the forward, K, Q, dY and
// the dK, dV accumulators in the backward) then miss L1 on every sweep (callgrind's cache model: the
// forward's V loads at T = 336 missed 64% of the time). Past the limit they are copied to contiguous
// padded buffers (the same values, so the same results).
constexpr index_t kInPlaceMaxS = 48;

constexpr index_t kTileQ = 24;   // query rows per tile (forward; a multiple of the GEMM's 6-row tile)
// Keys per chunk (forward). Up to 336 keys a row is one chunk: no running-max rescaling of O and l, and one
// row maximum, one horizontal sum and one branch per row instead of one per 128 keys. The (24, 336) float
// score block is 32 KiB (L1-sized; K^T and V then stream from L2 per tile); measured against chunks of 128 at
// T = 336 (harness, split forward, B = 4, min of 7 alternated runs): d_head 16 -7%, d_head 32 -3%; chunks of
// 256 (336 = 256 + 80) fell in between.
constexpr index_t kChunkS = 336;
constexpr index_t kPrefetchMaxS = 128;  // next-pair prefetch only for sequences up to this long (prefetch_pair)

// Short sequences (up to kPrefetchMaxS): the next pair's q, k and v rows are requested from memory while this
// pair computes (a pair's work is a few microseconds; with B*H*T*D large the operands come from L3 / DRAM and
// the stream of small, strided row blocks is not picked up early enough by the hardware prefetcher).
template <typename F>
ND_AI void prefetch_pair(const Shape& sh, index_t pair, const F* q, const F* k, const F* v) {
  const index_t ri = sh.in_rs(), bytes = sh.D * index_t(sizeof(F));
  const F* ops[3] = {q + sh.in_base(pair, sh.T), k + sh.in_base(pair, sh.S), v + sh.in_base(pair, sh.S)};
  const index_t rows[3] = {sh.T, sh.S, sh.S};
  for (int o = 0; o < 3; ++o)
    for (index_t r = 0; r < rows[o]; ++r) {
      const char* p = reinterpret_cast<const char*>(ops[o] + r * ri);
      for (index_t b = 0; b < bytes; b += 64) __builtin_prefetch(p + b);
    }
}

template <typename F>
ND_AI void prefetch_out(const Shape& sh, index_t pair, const F* y, const F* dy) {  // y, dy rows (backward)
  const index_t ro = sh.out_rs(), bytes = sh.D * index_t(sizeof(F));
  const F* ops[2] = {y + sh.out_base(pair), dy + sh.out_base(pair)};
  for (int o = 0; o < 2; ++o)
    for (index_t r = 0; r < sh.T; ++r) {
      const char* p = reinterpret_cast<const char*>(ops[o] + r * ro);
      for (index_t b = 0; b < bytes; b += 64) __builtin_prefetch(p + b);
    }
}

template <typename F>
ND_AI void forward_pair_impl(const Shape& sh, index_t pair, F* y, F* lse, const F* q, const F* k, const F* v,
                             const std::uint8_t* kpm) {
  constexpr int W = VT<F>::W;
  const index_t T = sh.T, S = sh.S, D = sh.D;
  const index_t Sp = round_up(S, W), Dp = round_up(D, W);
  const index_t b = pair / sh.H;
  const index_t ri = sh.in_rs(), ro = sh.out_rs();  // row strides of q, k, v and of y
  const F* qp = q + sh.in_base(pair, T);
  F* yp = y + sh.out_base(pair);
  F* lp = lse + pair * T;
  const std::uint8_t* mrow = kpm ? kpm + b * S : nullptr;
  const bool drop = sh.dropout > 0;
  const std::uint32_t thr = drop_threshold(sh.dropout);
  const std::uint64_t base = mix64(sh.seed);
  const F inv_keep = drop ? F(1.0 / (1.0 - sh.dropout)) : F(1);
  const F ninf = -std::numeric_limits<F>::infinity();
  const F scale = F(sh.scale * SoftmaxBase<F>::kScoreScale);  // float: scores in log2 units
  if (S <= kPrefetchMaxS && T <= kPrefetchMaxS && pair + 1 < sh.B * sh.H) prefetch_pair(sh, pair + 1, q, k, v);
  F* Kt = workspace<F>(std::size_t(D) * Sp, 0);  // (D, Sp) keys transposed, zero padded
  pad_transpose(Kt, Sp, k + sh.in_base(pair, S), ri, S, D);
  const F* Vp = v + sh.in_base(pair, S);  // (S, Dp) rows ldv apart: read in place unless D needs padding
  index_t ldv = ri;
  if (Dp != D || (sh.packed && S > kInPlaceMaxS)) {
    F* w = workspace<F>(std::size_t(S) * Dp, 1);
    pad_copy(w, Dp, Vp, ri, S, D);
    Vp = w;
    ldv = Dp;
  }
  F* Sb = workspace<F>(std::size_t(kTileQ) * kChunkS, 2);  // (TQ, chunk) scores / weights
  F* O = workspace<F>(std::size_t(kTileQ) * Dp, 3);        // (TQ, Dp) output accumulator
  F mx[kTileQ], l[kTileQ], ls[kTileQ];
  for (index_t i0 = 0; i0 < T; i0 += kTileQ) {
    const index_t m = std::min(kTileQ, T - i0);
    const index_t nkeys = sh.causal ? std::min(S, i0 + m) : S;
    for (index_t r = 0; r < m; ++r) {
      mx[r] = ninf;
      l[r] = F(0);
    }
    // O is not cleared: the first chunk's P V overwrites it (every row of it, masked rows with zeros)
    for (index_t j0 = 0; j0 < nkeys; j0 += kChunkS) {
      const index_t nc = std::min(kChunkS, nkeys - j0), ncp = round_up(nc, W);
      sgemm<F, false, false>(m, ncp, D, scale, qp + i0 * ri, ri, Kt + j0, Sp, Sb, ncp);
      for (index_t r = 0; r < m; ++r) {
        const index_t i = i0 + r;
        F* row = Sb + r * ncp;
        // keys c < nv of this chunk are not causally masked (nv may be <= 0)
        const index_t nv = sh.causal ? std::max<index_t>(0, std::min(nc, i + 1 - j0)) : nc;
        if (mrow) mask_row(row, mrow + j0, nv);
        for (index_t c = nv; c < ncp; ++c) row[c] = ninf;
        const F cm = nv > 0 ? vec_max(row, ncp) : ninf;
        if (cm == ninf) {  // nothing visible in this chunk: zero weights, running state unchanged
          for (index_t c = 0; c < ncp; ++c) row[c] = F(0);
          continue;
        }
        if (cm > mx[r]) {
          if (mx[r] != ninf) {
            const F a = SoftmaxBase<F>::exp(mx[r] - cm);
            l[r] *= a;
            F* o = O + r * Dp;
            for (index_t d = 0; d < Dp; ++d) o[d] *= a;
          }
          mx[r] = cm;
        }
        l[r] += exp_shift_sum(row, ncp, mx[r]);
        if (drop) {
          const std::uint64_t n0 = std::uint64_t((pair * T + i) * S + j0);
          for (index_t c = 0; c < nv; ++c) row[c] = keep_at(base, n0 + c, thr) ? row[c] : F(0);
        }
      }
      if (j0 == 0)
        sgemm<F, false, false>(m, Dp, nc, F(1), Sb, ncp, Vp, ldv, O, Dp);
      else
        sgemm<F, false, true>(m, Dp, nc, F(1), Sb, ncp, Vp + j0 * ldv, ldv, O, Dp);
    }
    lse_rows(ls, mx, l, m);
    for (index_t r = 0; r < m; ++r) {
      const index_t i = i0 + r;
      F* yi = yp + i * ro;
      if (l[r] == F(0)) {  // every key masked: zero output, no softmax
        for (index_t d = 0; d < D; ++d) yi[d] = F(0);
        lp[i] = ninf;
        continue;
      }
      const F s = inv_keep / l[r];
      const F* o = O + r * Dp;
      index_t d = 0;
      const Vec<F> vs = vset(s);
      for (; d + W <= D; d += W) st(yi + d, ld(o + d) * vs);
      for (; d < D; ++d) yi[d] = o[d] * s;
      lp[i] = ls[r];
    }
  }
}

template <typename F>
ND_AI void backward_pair_impl(const Shape& sh, index_t pair, F* dq, F* dk, F* dv, const F* dy, const F* q,
                              const F* k, const F* v, const F* y, const F* lse, const std::uint8_t* kpm) {
  constexpr int W = VT<F>::W;
  const index_t T = sh.T, S = sh.S, D = sh.D;
  const index_t Sp = round_up(S, W), Dp = round_up(D, W);
  const index_t ri = sh.in_rs(), ro = sh.out_rs();  // row strides of q, k, v, dq, dk, dv and of y, dy
  // operands used in place, rows strided (else padded copies; see kInPlaceMaxS)
  const bool direct = Dp == D && !(sh.packed && S > kInPlaceMaxS);
  const index_t b = pair / sh.H;
  const F* qp = q + sh.in_base(pair, T);
  const F* kp = k + sh.in_base(pair, S);
  const F* yp = y + sh.out_base(pair);
  const F* dyp = dy + sh.out_base(pair);
  const F* lp = lse + pair * T;
  F* dqp = dq + sh.in_base(pair, T);
  F* dkp = dk + sh.in_base(pair, S);
  F* dvp = dv + sh.in_base(pair, S);
  const std::uint8_t* mrow = kpm ? kpm + b * S : nullptr;
  const bool drop = sh.dropout > 0;
  const std::uint32_t thr = drop_threshold(sh.dropout);
  const std::uint64_t base = mix64(sh.seed);
  const F inv_keep = drop ? F(1.0 / (1.0 - sh.dropout)) : F(1);
  const F ninf = -std::numeric_limits<F>::infinity();
  const index_t bq = std::min(kBlockQ, T);
  if (S <= kPrefetchMaxS && T <= kPrefetchMaxS && pair + 1 < sh.B * sh.H) {  // see prefetch_pair
    prefetch_pair(sh, pair + 1, q, k, v);
    prefetch_out(sh, pair + 1, y, dy);
  }
  F* Kt = workspace<F>(std::size_t(D) * Sp, 0);  // (D, Sp)
  pad_transpose(Kt, Sp, kp, ri, S, D);
  F* Vt = workspace<F>(std::size_t(D) * Sp, 1);  // (D, Sp)
  pad_transpose(Vt, Sp, v + sh.in_base(pair, S), ri, S, D);
  const F *Kp = kp, *Qp = qp, *dYp = dyp;    // (S, Dp), (T, Dp), (T, Dp), rows ldi / ldi / ldo apart
  F *dKa = dkp, *dVa = dvp, *dQb = nullptr;  // (S, Dp) accumulators (rows ldi apart), (BQ, Dp) block
  index_t ldi = ri, ldo = ro;
  if (!direct) {
    ldi = ldo = Dp;
    F* w = workspace<F>(std::size_t(S) * Dp, 2);
    pad_copy(w, Dp, kp, ri, S, D);
    Kp = w;
    w = workspace<F>(std::size_t(T) * Dp, 3);
    pad_copy(w, Dp, qp, ri, T, D);
    Qp = w;
    w = workspace<F>(std::size_t(T) * Dp, 4);
    pad_copy(w, Dp, dyp, ro, T, D);
    dYp = w;
    dKa = workspace<F>(std::size_t(S) * Dp, 5);
    dVa = workspace<F>(std::size_t(S) * Dp, 6);
    dQb = workspace<F>(std::size_t(bq) * Dp, 7);
  }
  for (index_t j = 0; j < S; ++j)
    for (index_t d = 0; d < Dp; ++d) {
      dKa[j * ldi + d] = F(0);
      dVa[j * ldi + d] = F(0);
    }
  F* P = workspace<F>(std::size_t(bq) * Sp, 8);
  F* dP = workspace<F>(std::size_t(bq) * Sp, 9);
  F* Pd = drop ? workspace<F>(std::size_t(bq) * Sp, 10) : P;
  for (index_t i0 = 0; i0 < T; i0 += kBlockQ) {
    const index_t i1 = std::min(T, i0 + kBlockQ), m = i1 - i0;
    const index_t nc = sh.causal ? std::min(S, i1) : S;
    const index_t ncp = round_up(nc, W);
    sgemm<F, false, false>(m, ncp, D, F(sh.scale), qp + i0 * ri, ri, Kt, Sp, P, ncp);
    for (index_t r = 0; r < m; ++r) {
      const index_t i = i0 + r;
      F* row = P + r * ncp;
      const index_t nv = sh.causal ? std::min(nc, i + 1) : nc;
      if (lp[i] == ninf) {
        for (index_t j = 0; j < nc; ++j) row[j] = F(0);
        if (drop)
          for (index_t j = 0; j < nc; ++j) Pd[r * ncp + j] = F(0);
        continue;
      }
      if (mrow) mask_row(row, mrow, nv);
      exp_shift(row, row, nv, lp[i]);
      for (index_t j = nv; j < nc; ++j) row[j] = F(0);
      if (drop) {
        F* prow = Pd + r * ncp;
        const std::uint64_t n0 = std::uint64_t((pair * T + i) * S);
        for (index_t j = 0; j < nv; ++j) prow[j] = keep_at(base, n0 + j, thr) ? row[j] * inv_keep : F(0);
        for (index_t j = nv; j < nc; ++j) prow[j] = F(0);
      }
    }
    // dV[0:nc] += Pd^T dY_blk
    sgemm<F, true, true>(nc, Dp, m, F(1), Pd, ncp, dYp + i0 * ldo, ldo, dVa, ldi);
    // dPd = dY_blk V^T
    sgemm<F, false, false>(m, ncp, D, F(1), dyp + i0 * ro, ro, Vt, Sp, dP, ncp);
    for (index_t r = 0; r < m; ++r) {
      const index_t i = i0 + r;
      const F dl = row_dot(dyp + i * ro, yp + i * ro, D);
      const F* prow = P + r * ncp;
      const F* pdrow = Pd + r * ncp;
      F* drow = dP + r * ncp;
      for (index_t j = 0; j < nc; ++j) drow[j] = pdrow[j] * drow[j] - prow[j] * dl;
    }
    // dQ_blk = scale dS K
    if (!direct) {
      sgemm<F, false, false>(m, Dp, nc, F(sh.scale), dP, ncp, Kp, Dp, dQb, Dp);
      unpad_copy(dqp + i0 * ri, ri, dQb, Dp, m, D);
    } else {
      sgemm<F, false, false>(m, Dp, nc, F(sh.scale), dP, ncp, Kp, ri, dqp + i0 * ri, ri);
    }
    // dK[0:nc] += scale dS^T Q_blk
    sgemm<F, true, true>(nc, Dp, m, F(sh.scale), dP, ncp, Qp + i0 * ldi, ldi, dKa, ldi);
  }
  if (!direct) {
    unpad_copy(dkp, ri, dKa, Dp, S, D);
    unpad_copy(dvp, ri, dVa, Dp, S, D);
  }
}

template <typename F>
void forward_pair_generic(const Shape& sh, index_t pair, F* y, F* lse, const F* q, const F* k, const F* v,
                          const std::uint8_t* kpm) {
  forward_pair_impl<F>(sh, pair, y, lse, q, k, v, kpm);
}
template <typename F>
void backward_pair_generic(const Shape& sh, index_t pair, F* dq, F* dk, F* dv, const F* dy, const F* q, const F* k,
                           const F* v, const F* y, const F* lse, const std::uint8_t* kpm) {
  backward_pair_impl<F>(sh, pair, dq, dk, dv, dy, q, k, v, y, lse, kpm);
}
#if ND_ATTN_X86
template <typename F>
__attribute__((target("avx2,fma"))) void forward_pair_avx2(const Shape& sh, index_t pair, F* y, F* lse, const F* q,
                                                            const F* k, const F* v, const std::uint8_t* kpm) {
  forward_pair_impl<F>(sh, pair, y, lse, q, k, v, kpm);
}
template <typename F>
__attribute__((target("avx2,fma"))) void backward_pair_avx2(const Shape& sh, index_t pair, F* dq, F* dk, F* dv,
                                                             const F* dy, const F* q, const F* k, const F* v,
                                                             const F* y, const F* lse, const std::uint8_t* kpm) {
  backward_pair_impl<F>(sh, pair, dq, dk, dv, dy, q, k, v, y, lse, kpm);
}
#endif

bool use_avx2() { return ND_ATTN_X86 && simd_avx2_enabled(); }

// ------------------------------------------------------------------------------------------ naive path
template <typename F>
bool masked(const Shape& sh, const std::uint8_t* kpm, index_t b, index_t i, index_t j) {
  return (sh.causal && j > i) || (kpm && kpm[b * sh.S + j]);
}

template <typename F>
void forward_naive(const Shape& sh, F* y, F* lse, const F* q, const F* k, const F* v, const std::uint8_t* kpm) {
  const index_t T = sh.T, S = sh.S, D = sh.D;
  const std::uint32_t thr = drop_threshold(sh.dropout);
  const std::uint64_t base = mix64(sh.seed);
  std::vector<F> p(S);
  for (index_t pair = 0; pair < sh.B * sh.H; ++pair) {
    const index_t b = pair / sh.H;
    for (index_t i = 0; i < T; ++i) {
      F mx = -std::numeric_limits<F>::infinity();
      for (index_t j = 0; j < S; ++j) {
        F s = 0;
        for (index_t d = 0; d < D; ++d) s += q[(pair * T + i) * D + d] * k[(pair * S + j) * D + d];
        p[j] = F(sh.scale) * s;
        if (!masked<F>(sh, kpm, b, i, j) && p[j] > mx) mx = p[j];
      }
      F* yi = y + (pair * T + i) * D;
      for (index_t d = 0; d < D; ++d) yi[d] = 0;
      if (mx == -std::numeric_limits<F>::infinity()) {
        lse[pair * T + i] = mx;
        continue;
      }
      F sum = 0;
      for (index_t j = 0; j < S; ++j) {
        p[j] = masked<F>(sh, kpm, b, i, j) ? F(0) : std::exp(p[j] - mx);
        sum += p[j];
      }
      lse[pair * T + i] = mx + std::log(sum);
      for (index_t j = 0; j < S; ++j) {
        F w = p[j] / sum;
        if (sh.dropout > 0)
          w = keep_at(base, std::uint64_t((pair * T + i) * S + j), thr) ? w / F(1.0 - sh.dropout) : F(0);
        for (index_t d = 0; d < D; ++d) yi[d] += w * v[(pair * S + j) * D + d];
      }
    }
  }
}

template <typename F>
void backward_naive(const Shape& sh, F* dq, F* dk, F* dv, const F* dy, const F* q, const F* k, const F* v,
                    const F* y, const F* lse, const std::uint8_t* kpm) {
  const index_t T = sh.T, S = sh.S, D = sh.D;
  const std::uint32_t thr = drop_threshold(sh.dropout);
  const std::uint64_t base = mix64(sh.seed);
  std::fill(dq, dq + sh.B * sh.H * T * D, F(0));
  std::fill(dk, dk + sh.B * sh.H * S * D, F(0));
  std::fill(dv, dv + sh.B * sh.H * S * D, F(0));
  for (index_t pair = 0; pair < sh.B * sh.H; ++pair) {
    const index_t b = pair / sh.H;
    for (index_t i = 0; i < T; ++i) {
      const F l = lse[pair * T + i];
      if (l == -std::numeric_limits<F>::infinity()) continue;
      const F* dyi = dy + (pair * T + i) * D;
      F dl = 0;
      for (index_t d = 0; d < D; ++d) dl += dyi[d] * y[(pair * T + i) * D + d];
      for (index_t j = 0; j < S; ++j) {
        if (masked<F>(sh, kpm, b, i, j)) continue;
        F s = 0;
        for (index_t d = 0; d < D; ++d) s += q[(pair * T + i) * D + d] * k[(pair * S + j) * D + d];
        const F p = std::exp(F(sh.scale) * s - l);
        F keep = F(1);
        if (sh.dropout > 0)
          keep = keep_at(base, std::uint64_t((pair * T + i) * S + j), thr) ? F(1) / F(1.0 - sh.dropout) : F(0);
        F dp = 0;  // dL/dp_ij = keep * dy_i . v_j
        for (index_t d = 0; d < D; ++d) {
          dv[(pair * S + j) * D + d] += p * keep * dyi[d];
          dp += dyi[d] * v[(pair * S + j) * D + d];
        }
        const F ds = p * (keep * dp - dl) * F(sh.scale);
        for (index_t d = 0; d < D; ++d) {
          dq[(pair * T + i) * D + d] += ds * k[(pair * S + j) * D + d];
          dk[(pair * S + j) * D + d] += ds * q[(pair * T + i) * D + d];
        }
      }
    }
  }
}

}  // namespace

template <typename F>
void attention_forward(F* y, F* lse, const F* q, const F* k, const F* v, const std::uint8_t* kpm, index_t B,
                       index_t H, index_t T, index_t S, index_t D, bool causal, double scale, double dropout,
                       std::uint64_t seed, bool naive) {
  const Shape sh{B, H, T, S, D, causal, scale, dropout, seed};
  if (B * H * T == 0) return;
  if (naive) {
    forward_naive(sh, y, lse, q, k, v, kpm);
    return;
  }
  const double work = 4.0 * double(T) * double(S) * double(D) * (causal ? 0.5 : 1.0);
  auto fn = forward_pair_generic<F>;
#if ND_ATTN_X86
  if (use_avx2()) fn = forward_pair_avx2<F>;
#endif
  for_pairs(B * H, work, [&](index_t p) { fn(sh, p, y, lse, q, k, v, kpm); });
}

template <typename F>
void attention_backward(F* dq, F* dk, F* dv, const F* dy, const F* q, const F* k, const F* v, const F* y,
                        const F* lse, const std::uint8_t* kpm, index_t B, index_t H, index_t T, index_t S,
                        index_t D, bool causal, double scale, double dropout, std::uint64_t seed, bool naive) {
  const Shape sh{B, H, T, S, D, causal, scale, dropout, seed};
  if (B * H == 0) return;
  if (naive) {
    backward_naive(sh, dq, dk, dv, dy, q, k, v, y, lse, kpm);
    return;
  }
  const double work = 10.0 * double(T) * double(S) * double(D) * (causal ? 0.5 : 1.0);
  auto fn = backward_pair_generic<F>;
#if ND_ATTN_X86
  if (use_avx2()) fn = backward_pair_avx2<F>;
#endif
  for_pairs(B * H, work, [&](index_t p) { fn(sh, p, dq, dk, dv, dy, q, k, v, y, lse, kpm); });
}

template <typename F>
void attention_packed_forward(F* y, F* lse, const F* qkv, const std::uint8_t* kpm, index_t B, index_t H, index_t T,
                              index_t D, bool causal, double scale, double dropout, std::uint64_t seed) {
  Shape sh{B, H, T, T, D, causal, scale, dropout, seed};
  sh.packed = true;
  if (B * H * T == 0) return;
  const double work = 4.0 * double(T) * double(T) * double(D) * (causal ? 0.5 : 1.0);
  auto fn = forward_pair_generic<F>;
#if ND_ATTN_X86
  if (use_avx2()) fn = forward_pair_avx2<F>;
#endif
  const F* k = qkv + H * D;
  const F* v = qkv + 2 * H * D;
  for_pairs(B * H, work, [&](index_t p) { fn(sh, p, y, lse, qkv, k, v, kpm); });
}

template <typename F>
void attention_packed_backward(F* dqkv, const F* dy, const F* qkv, const F* y, const F* lse, const std::uint8_t* kpm,
                               index_t B, index_t H, index_t T, index_t D, bool causal, double scale, double dropout,
                               std::uint64_t seed) {
  Shape sh{B, H, T, T, D, causal, scale, dropout, seed};
  sh.packed = true;
  if (B * H * T == 0) return;
  const double work = 10.0 * double(T) * double(T) * double(D) * (causal ? 0.5 : 1.0);
  auto fn = backward_pair_generic<F>;
#if ND_ATTN_X86
  if (use_avx2()) fn = backward_pair_avx2<F>;
#endif
  const index_t d = H * D;
  for_pairs(B * H, work, [&](index_t p) {
    fn(sh, p, dqkv, dqkv + d, dqkv + 2 * d, dy, qkv, qkv + d, qkv + 2 * d, y, lse, kpm);
  });
}

void attention_dropout_mask(std::uint8_t* keep, index_t B, index_t H, index_t T, index_t S, double dropout,
                            std::uint64_t seed) {
  const std::uint32_t thr = drop_threshold(dropout);
  const std::uint64_t base = mix64(seed);
  const index_t n = B * H * T * S;
  for (index_t i = 0; i < n; ++i) keep[i] = dropout > 0 ? (keep_at(base, std::uint64_t(i), thr) ? 1 : 0) : 1;
}

#define ND_ATTENTION_INSTANTIATE(F)                                                                          \
  template void attention_forward<F>(F*, F*, const F*, const F*, const F*, const std::uint8_t*, index_t,     \
                                     index_t, index_t, index_t, index_t, bool, double, double, std::uint64_t, \
                                     bool);                                                                  \
  template void attention_backward<F>(F*, F*, F*, const F*, const F*, const F*, const F*, const F*, const F*, \
                                      const std::uint8_t*, index_t, index_t, index_t, index_t, index_t, bool, \
                                      double, double, std::uint64_t, bool);                                  \
  template void attention_packed_forward<F>(F*, F*, const F*, const std::uint8_t*, index_t, index_t, index_t,   \
                                            index_t, bool, double, double, std::uint64_t);                      \
  template void attention_packed_backward<F>(F*, const F*, const F*, const F*, const F*, const std::uint8_t*,    \
                                             index_t, index_t, index_t, index_t, bool, double, double,           \
                                             std::uint64_t);
ND_ATTENTION_INSTANTIATE(float)
ND_ATTENTION_INSTANTIATE(double)

}  // namespace nd
