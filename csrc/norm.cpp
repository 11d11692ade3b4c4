// Layer normalisation and feed-forward GELU kernels (see norm.h). Dimension letters: N rows, C features.
#include "norm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "gemm.h"
#include "gelu_simd.h"
#include "simd_exp.h"

#ifdef ND_OPENMP
#include <omp.h>
#endif

namespace nd {
namespace {

constexpr index_t kRowsPerChunk = 64;
constexpr double kMinWorkPerThread = 2e6;

template <class Fn>
void for_chunks(index_t nchunks, double work, Fn&& f) {
#ifdef ND_OPENMP
  int nt = num_threads();
  if (nt > nchunks) nt = static_cast<int>(nchunks);
  while (nt > 1 && work / nt < kMinWorkPerThread) --nt;
  if (nt > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static) num_threads(nt)
    for (index_t c = 0; c < nchunks; ++c) f(c);
    return;
  }
#endif
  for (index_t c = 0; c < nchunks; ++c) f(c);
}

// The row's statistics and its normalised, affine output (shared by the scalar and the vectorised rows).
template <typename F>
inline __attribute__((always_inline)) void write_row(F* yr, F* mean, F* rstd, const F* xr, const F* w,
                                                     const F* b, index_t C, double mu, double r) {
  *mean = F(mu);
  *rstd = F(r);
  const F fm = F(mu), fr = F(r);
  if (w && b) {
    for (index_t c = 0; c < C; ++c) yr[c] = (xr[c] - fm) * fr * w[c] + b[c];
  } else {
    for (index_t c = 0; c < C; ++c) yr[c] = (xr[c] - fm) * fr * (w ? w[c] : F(1)) + (b ? b[c] : F(0));
  }
}

template <typename F>
void forward_rows(F* y, F* mean, F* rstd, const F* x, const F* w, const F* b, index_t n0, index_t n1, index_t C,
                  double eps) {
  for (index_t n = n0; n < n1; ++n) {
    const F* xr = x + n * C;
    F* yr = y + n * C;
    double s = 0;
    for (index_t c = 0; c < C; ++c) s += xr[c];
    const double mu = s / double(C);
    double ss = 0;
    for (index_t c = 0; c < C; ++c) {
      const double d = double(xr[c]) - mu;
      ss += d * d;
    }
    write_row(yr, mean + n, rstd + n, xr, w, b, C, mu, 1.0 / std::sqrt(ss / double(C) + eps));
  }
}

// dx rows [n0, n1); partial dw / db of these rows into pw / pb (C each, overwritten).
template <typename F>
void backward_rows(F* dx, F* pw, F* pb, const F* dy, const F* x, const F* w, const F* mean, const F* rstd,
                   index_t n0, index_t n1, index_t C) {
  for (index_t c = 0; c < C; ++c) {
    pw[c] = F(0);
    pb[c] = F(0);
  }
  for (index_t n = n0; n < n1; ++n) {
    const F* xr = x + n * C;
    const F* dyr = dy + n * C;
    const F mu = mean[n], r = rstd[n];
    double sg = 0, sgx = 0;
    for (index_t c = 0; c < C; ++c) {
      const F xh = (xr[c] - mu) * r;
      const F g = dyr[c] * (w ? w[c] : F(1));
      sg += g;
      sgx += g * xh;
      pw[c] += dyr[c] * xh;
      pb[c] += dyr[c];
    }
    if (dx) {
      const F mg = F(sg / double(C)), mgx = F(sgx / double(C));
      F* dxr = dx + n * C;
      for (index_t c = 0; c < C; ++c) {
        const F xh = (xr[c] - mu) * r;
        const F g = dyr[c] * (w ? w[c] : F(1));
        dxr[c] = r * (g - mg - xh * mgx);
      }
    }
  }
}

// ------------------------------------------------------------------------------------------ fast rows
// The forward with its two row sums in 8 double lanes (two vectors of 4) instead of one sequential double
// chain of C dependent adds: the sums are reassociated, so mean / rstd can differ from the naive rows in the
// last double bits (the float results rarely: the golden losses did not move). 1.3-1.4x on the forward
// (bench/RESULTS.md); the same treatment of the backward's two sums (with xhat, g and g xhat kept in row
// buffers) was 2x slower than its scalar rows and is not used. naive = true keeps the scalar rows.
typedef double D4 __attribute__((vector_size(32)));
typedef float F4u __attribute__((vector_size(16), aligned(4), may_alias));
typedef double D4u __attribute__((vector_size(32), aligned(8), may_alias));

inline __attribute__((always_inline)) D4 load_d4(const float* p) {
  return __builtin_convertvector(*reinterpret_cast<const F4u*>(p), D4);
}
inline __attribute__((always_inline)) D4 load_d4(const double* p) { return *reinterpret_cast<const D4u*>(p); }
inline __attribute__((always_inline)) double hsum_d4(D4 a) { return (a[0] + a[1]) + (a[2] + a[3]); }

template <typename F>
inline __attribute__((always_inline)) void forward_rows_fast(F* y, F* mean, F* rstd, const F* x, const F* w,
                                                             const F* b, index_t n0, index_t n1, index_t C,
                                                             double eps) {
  for (index_t n = n0; n < n1; ++n) {
    const F* xr = x + n * C;
    F* yr = y + n * C;
    D4 a0{}, a1{};
    index_t c = 0;
    for (; c + 8 <= C; c += 8) {
      a0 += load_d4(xr + c);
      a1 += load_d4(xr + c + 4);
    }
    double s = hsum_d4(a0 + a1);
    for (; c < C; ++c) s += xr[c];
    const double mu = s / double(C);
    const D4 vmu = D4{} + mu;
    a0 = D4{};
    a1 = D4{};
    for (c = 0; c + 8 <= C; c += 8) {
      const D4 d0 = load_d4(xr + c) - vmu, d1 = load_d4(xr + c + 4) - vmu;
      a0 += d0 * d0;
      a1 += d1 * d1;
    }
    double ss = hsum_d4(a0 + a1);
    for (; c < C; ++c) {
      const double d = double(xr[c]) - mu;
      ss += d * d;
    }
    write_row(yr, mean + n, rstd + n, xr, w, b, C, mu, 1.0 / std::sqrt(ss / double(C) + eps));
  }
}

// forward_rows_fast compiled for AVX2 without FMA: the same operations in the same order on 4-double / 8-float
// vectors instead of SSE2 pairs (the portable baseline split the 4-double sums and their float -> double
// conversions into 2-lane halves, ~1.6 ns per element at C = 128); no FMA, so no contraction: bitwise the
// portable rows.
#if defined(ND_X86) && ND_X86 && defined(__x86_64__) && defined(__GNUC__)
template <typename F>
__attribute__((target("avx2"))) void forward_rows_fast_avx2(F* y, F* mean, F* rstd, const F* x, const F* w,
                                                            const F* b, index_t n0, index_t n1, index_t C,
                                                            double eps) {
  forward_rows_fast(y, mean, rstd, x, w, b, n0, n1, C, eps);
}
#define ND_NORM_ROWS_AVX2 1
#else
#define ND_NORM_ROWS_AVX2 0
#endif

// ------------------------------------------------------------------------------------------ GELU
#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
#define ND_AI inline __attribute__((always_inline))
#if defined(ND_X86) && ND_X86 && defined(__x86_64__) && defined(__GNUC__)
#define ND_NORM_X86 1
#else
#define ND_NORM_X86 0
#endif

using namespace gelu_simd;
constexpr double kMinGeluPerThread = 1 << 15;  // elements; under this one thread

template <typename F>
ND_AI void gelu_fwd_scalar(F* y, const F* x, index_t n) {
  const F r2 = F(0.70710678118654752440084436210484903928);
  for (index_t i = 0; i < n; ++i) {
    const F cdf = F(0.5) * std::erfc(-x[i] * r2);
    y[i] = cdf == F(0) ? F(0) : x[i] * cdf;
  }
}
template <typename F>
ND_AI void gelu_bwd_scalar(F* dx, const F* dy, const F* x, index_t n) {
  const F r2 = F(0.70710678118654752440084436210484903928), rs = F(0.39894228040143267793994605993438186848);
  for (index_t i = 0; i < n; ++i) {
    const F xi = x[i];
    const F cdf = F(0.5) * std::erfc(-xi * r2);
    const F pdf = std::exp(F(-0.5) * xi * xi) * rs;
    dx[i] = dy[i] * (cdf + (pdf == F(0) ? F(0) : xi * pdf));
  }
}

// The vector loops (tails through an 8-value buffer); kAvx2: compiled inside target("avx2,fma") wrappers.
template <bool kAvx2>
ND_AI void gelu_fwd_v(float* y, const float* x, index_t n) {
  index_t i = 0;
  for (; i + 8 <= n; i += 8) *reinterpret_cast<U8*>(y + i) = gelu8<kAvx2>(*reinterpret_cast<const U8*>(x + i));
  if (i < n) {
    float xt[8] = {}, yt[8];
    for (index_t j = i; j < n; ++j) xt[j - i] = x[j];
    *reinterpret_cast<U8*>(yt) = gelu8<kAvx2>(*reinterpret_cast<const U8*>(xt));
    for (index_t j = i; j < n; ++j) y[j] = yt[j - i];
  }
}

template <bool kAvx2>
ND_AI V8 gelu_grad_v(V8 xv, V8 dyv) {
  V8 y;
  return dyv * gelu_grad8<kAvx2>(xv, y);
}

template <bool kAvx2>
ND_AI void gelu_bwd_v(float* dx, const float* dy, const float* x, index_t n) {
  index_t i = 0;
  for (; i + 8 <= n; i += 8)
    *reinterpret_cast<U8*>(dx + i) =
        gelu_grad_v<kAvx2>(*reinterpret_cast<const U8*>(x + i), *reinterpret_cast<const U8*>(dy + i));
  float xt[8] = {}, gt[8] = {}, dt[8];
  for (index_t j = i; j < n; ++j) {
    xt[j - i] = x[j];
    gt[j - i] = dy[j];
  }
  if (i < n) {
    *reinterpret_cast<U8*>(dt) =
        gelu_grad_v<kAvx2>(*reinterpret_cast<const U8*>(xt), *reinterpret_cast<const U8*>(gt));
    for (index_t j = i; j < n; ++j) dx[j] = dt[j - i];
  }
}

// y = GELU(x) and d = GELU'(x) from one evaluation of Phi: the same values as gelu_fwd_v and as the factor
// that gelu_grad_v multiplies dy by (so dy * d is bitwise gelu_bwd_v's dx).
template <bool kAvx2>
ND_AI void gelu_fwd_grad8(float* y, float* d, V8 xv) {
  V8 yv;
  *reinterpret_cast<U8*>(d) = gelu_grad8<kAvx2>(xv, yv);
  *reinterpret_cast<U8*>(y) = yv;
}

template <bool kAvx2>
ND_AI void gelu_fwd_grad_v(float* y, float* d, const float* x, index_t n) {
  index_t i = 0;
  for (; i + 8 <= n; i += 8) gelu_fwd_grad8<kAvx2>(y + i, d + i, *reinterpret_cast<const U8*>(x + i));
  if (i < n) {
    float xt[8] = {}, yt[8], dt[8];
    for (index_t j = i; j < n; ++j) xt[j - i] = x[j];
    gelu_fwd_grad8<kAvx2>(yt, dt, *reinterpret_cast<const U8*>(xt));
    for (index_t j = i; j < n; ++j) {
      y[j] = yt[j - i];
      d[j] = dt[j - i];
    }
  }
}

template <typename F>
ND_AI void gelu_fwd_grad_scalar(F* y, F* d, const F* x, index_t n) {
  const F r2 = F(0.70710678118654752440084436210484903928), rs = F(0.39894228040143267793994605993438186848);
  for (index_t i = 0; i < n; ++i) {
    const F xi = x[i];
    const F cdf = F(0.5) * std::erfc(-xi * r2);
    const F pdf = std::exp(F(-0.5) * xi * xi) * rs;
    y[i] = cdf == F(0) ? F(0) : xi * cdf;
    d[i] = cdf + (pdf == F(0) ? F(0) : xi * pdf);
  }
}

void gelu_fwd_generic(float* y, const float* x, index_t n) { gelu_fwd_v<false>(y, x, n); }
void gelu_fwd_grad_generic(float* y, float* d, const float* x, index_t n) { gelu_fwd_grad_v<false>(y, d, x, n); }
void gelu_bwd_generic(float* dx, const float* dy, const float* x, index_t n) { gelu_bwd_v<false>(dx, dy, x, n); }
#if ND_NORM_X86
__attribute__((target("avx2,fma"))) void gelu_fwd_avx2(float* y, const float* x, index_t n) {
  gelu_fwd_v<true>(y, x, n);
}
__attribute__((target("avx2,fma"))) void gelu_fwd_grad_avx2(float* y, float* d, const float* x, index_t n) {
  gelu_fwd_grad_v<true>(y, d, x, n);
}
__attribute__((target("avx2,fma"))) void gelu_bwd_avx2(float* dx, const float* dy, const float* x, index_t n) {
  gelu_bwd_v<true>(dx, dy, x, n);
}
#endif

bool gelu_avx2() { return ND_NORM_X86 && simd_avx2_enabled(); }

template <class Fn>
void for_ranges(index_t n, Fn&& f) {
  constexpr index_t kChunk = 1 << 14;  // fixed chunks: the same arithmetic for any thread count
  const index_t nch = (n + kChunk - 1) / kChunk;
  for_chunks(nch, 40.0 * double(n), [&](index_t c) {
    const index_t b = c * kChunk;
    f(b, std::min(n, b + kChunk));
  });
}

}  // namespace

void ff_gelu_forward(float* y, const float* x, index_t n) {
  auto fn = gelu_fwd_generic;
#if ND_NORM_X86
  if (gelu_avx2()) fn = gelu_fwd_avx2;
#endif
  for_ranges(n, [&](index_t b, index_t e) { fn(y + b, x + b, e - b); });
}
void ff_gelu_forward(double* y, const double* x, index_t n) {
  for_ranges(n, [&](index_t b, index_t e) { gelu_fwd_scalar(y + b, x + b, e - b); });
}
void ff_gelu_forward_grad(float* y, float* d, const float* x, index_t n) {
  auto fn = gelu_fwd_grad_generic;
#if ND_NORM_X86
  if (gelu_avx2()) fn = gelu_fwd_grad_avx2;
#endif
  for_ranges(n, [&](index_t b, index_t e) { fn(y + b, d + b, x + b, e - b); });
}
void ff_gelu_forward_grad(double* y, double* d, const double* x, index_t n) {
  for_ranges(n, [&](index_t b, index_t e) { gelu_fwd_grad_scalar(y + b, d + b, x + b, e - b); });
}
void ff_gelu_backward(float* dx, const float* dy, const float* x, index_t n) {
  auto fn = gelu_bwd_generic;
#if ND_NORM_X86
  if (gelu_avx2()) fn = gelu_bwd_avx2;
#endif
  for_ranges(n, [&](index_t b, index_t e) { fn(dx + b, dy + b, x + b, e - b); });
}
void ff_gelu_backward(double* dx, const double* dy, const double* x, index_t n) {
  for_ranges(n, [&](index_t b, index_t e) { gelu_bwd_scalar(dx + b, dy + b, x + b, e - b); });
}

template <typename F>
void layer_norm_forward(F* y, F* mean, F* rstd, const F* x, const F* w, const F* b, index_t N, index_t C,
                        double eps, bool naive) {
  if (N == 0) return;
  if (naive) {
    forward_rows(y, mean, rstd, x, w, b, 0, N, C, eps);
    return;
  }
  const index_t nch = (N + kRowsPerChunk - 1) / kRowsPerChunk;
  const bool avx2 = simd_avx2_enabled();
  for_chunks(nch, 8.0 * double(N) * double(C), [&](index_t ch) {
    const index_t n0 = ch * kRowsPerChunk, n1 = std::min(N, n0 + kRowsPerChunk);
#if ND_NORM_ROWS_AVX2
    if (avx2) {
      forward_rows_fast_avx2(y, mean, rstd, x, w, b, n0, n1, C, eps);
      return;
    }
#endif
    forward_rows_fast(y, mean, rstd, x, w, b, n0, n1, C, eps);
  });
}

template <typename F>
void layer_norm_backward(F* dx, F* dw, F* db, const F* dy, const F* x, const F* w, const F* mean, const F* rstd,
                         index_t N, index_t C, bool naive) {
  if (N == 0) return;
  const index_t nch = naive ? 1 : (N + kRowsPerChunk - 1) / kRowsPerChunk;
  const index_t rows = naive ? N : kRowsPerChunk;
  std::vector<F> part(std::size_t(nch) * 2 * C);
  for_chunks(nch, 12.0 * double(N) * double(C), [&](index_t ch) {
    const index_t n0 = ch * rows, n1 = std::min(N, n0 + rows);
    backward_rows(dx, part.data() + ch * 2 * C, part.data() + ch * 2 * C + C, dy, x, w, mean, rstd, n0, n1, C);
  });
  for (index_t ch = 0; ch < nch; ++ch) {
    const F* pw = part.data() + ch * 2 * C;
    const F* pb = pw + C;
    if (dw)
      for (index_t c = 0; c < C; ++c) dw[c] += pw[c];
    if (db)
      for (index_t c = 0; c < C; ++c) db[c] += pb[c];
  }
}

#define ND_NORM_INSTANTIATE(F)                                                                              \
  template void layer_norm_forward<F>(F*, F*, F*, const F*, const F*, const F*, index_t, index_t, double,   \
                                      bool);                                                                \
  template void layer_norm_backward<F>(F*, F*, F*, const F*, const F*, const F*, const F*, const F*, index_t, \
                                       index_t, bool);
ND_NORM_INSTANTIATE(float)
ND_NORM_INSTANTIATE(double)

}  // namespace nd
