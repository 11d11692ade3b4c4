// Layer normalisation kernels (see norm.h). Dimension letters: N rows, C features.
#include "norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

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
    const double r = 1.0 / std::sqrt(ss / double(C) + eps);
    mean[n] = F(mu);
    rstd[n] = F(r);
    const F fm = F(mu), fr = F(r);
    if (w && b) {
      for (index_t c = 0; c < C; ++c) yr[c] = (xr[c] - fm) * fr * w[c] + b[c];
    } else {
      for (index_t c = 0; c < C; ++c) yr[c] = (xr[c] - fm) * fr * (w ? w[c] : F(1)) + (b ? b[c] : F(0));
    }
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

}  // namespace

template <typename F>
void layer_norm_forward(F* y, F* mean, F* rstd, const F* x, const F* w, const F* b, index_t N, index_t C,
                        double eps, bool naive) {
  if (N == 0) return;
  if (naive) {
    forward_rows(y, mean, rstd, x, w, b, 0, N, C, eps);
    return;
  }
  const index_t nch = (N + kRowsPerChunk - 1) / kRowsPerChunk;
  for_chunks(nch, 8.0 * double(N) * double(C), [&](index_t ch) {
    const index_t n0 = ch * kRowsPerChunk, n1 = std::min(N, n0 + kRowsPerChunk);
    forward_rows(y, mean, rstd, x, w, b, n0, n1, C, eps);
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
