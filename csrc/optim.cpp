// Fused optimizer update and the reductions that go with it (gradient norm, scaling).
// Dimensions: n parameters (one flat buffer).
//   param (n,)  grad (n,)  m (n,)  v (n,)   x (n,)
// Adam / AdamW exactly as torch.optim.Adam / AdamW (single-tensor, non-amsgrad, non-maximize):
//   g = grad (+ wd * p if weight_decay != 0 and not decoupled)
//   p = p * (1 - lr * wd)                         (decoupled only)
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p = p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// Scalars are formed in double (as PyTorch does in Python) and rounded to T once; the elementwise
// arithmetic runs in T. One pass: reads p, g, m, v and writes p, m, v (28 bytes per float parameter).
#include <cfloat>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "kernels.h"

namespace nd {

namespace {

constexpr index_t kParStream = index_t(1) << 16;  // memory-bound loops
constexpr index_t kParReduce = index_t(1) << 16;
constexpr int kLanes = 8;

enum class Decay { None, Coupled, Decoupled };

template <typename T>
struct AdamScalars {
  T b1, b2, c1, c2, step_size, bc2_sqrt, eps, wd, decay;
};

template <Decay D, typename T>
ND_CLONES void adam_range(T* param, T* m, T* v, const T* grad, index_t n, AdamScalars<T> s) {
  for (index_t i = 0; i < n; ++i) {
    T p = param[i];
    T g = grad[i];
    if constexpr (D == Decay::Coupled) g = g + s.wd * p;
    if constexpr (D == Decay::Decoupled) p = p * s.decay;
    T mi = s.b1 * m[i] + s.c1 * g;
    T vi = s.b2 * v[i] + s.c2 * (g * g);
    T den = std::sqrt(vi) / s.bc2_sqrt + s.eps;
    m[i] = mi;
    v[i] = vi;
    param[i] = p - s.step_size * (mi / den);
  }
}

template <typename T>
ND_CLONES double sum_squares_range(const T* x, index_t n) {
  double a[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  index_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      double xi = static_cast<double>(x[i + j]);
      a[j] += xi * xi;
    }
  for (; i < n; ++i) {
    double xi = static_cast<double>(x[i]);
    a[0] += xi * xi;
  }
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

template <typename T>
ND_CLONES void scale_range(T* x, index_t n, T s) {
  for (index_t i = 0; i < n; ++i) x[i] *= s;
}

std::string fmt(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

}  // namespace

template <typename T>
void adam_step(T* param, T* m, T* v, const T* grad, index_t n, const AdamHyper& h) {
  ND_CHECK(n >= 0, "adam_step: negative size");
  ND_CHECK(h.lr >= 0.0 && h.lr <= DBL_MAX, "lr must be finite and >= 0, got " + fmt(h.lr));
  ND_CHECK(h.beta1 >= 0.0 && h.beta1 < 1.0, "beta1 must be in [0, 1), got " + fmt(h.beta1));
  ND_CHECK(h.beta2 >= 0.0 && h.beta2 < 1.0, "beta2 must be in [0, 1), got " + fmt(h.beta2));
  ND_CHECK(h.eps > 0.0 && h.eps <= DBL_MAX, "eps must be finite and > 0, got " + fmt(h.eps));
  ND_CHECK(h.weight_decay >= 0.0 && h.weight_decay <= DBL_MAX,
           "weight_decay must be finite and >= 0, got " + fmt(h.weight_decay));
  ND_CHECK(h.step >= 1, "step must be >= 1 (1-based step count), got " + std::to_string(h.step));
  const double t = static_cast<double>(h.step);
  const double bc1 = 1.0 - std::pow(h.beta1, t);
  const double bc2 = 1.0 - std::pow(h.beta2, t);
  AdamScalars<T> s;
  s.b1 = static_cast<T>(h.beta1);
  s.b2 = static_cast<T>(h.beta2);
  s.c1 = static_cast<T>(1.0 - h.beta1);
  s.c2 = static_cast<T>(1.0 - h.beta2);
  s.step_size = static_cast<T>(h.lr / bc1);
  s.bc2_sqrt = static_cast<T>(std::sqrt(bc2));
  s.eps = static_cast<T>(h.eps);
  s.wd = static_cast<T>(h.weight_decay);
  s.decay = static_cast<T>(1.0 - h.lr * h.weight_decay);
  const Decay d = h.weight_decay == 0.0 ? Decay::None : (h.decoupled ? Decay::Decoupled : Decay::Coupled);
  detail::parallel_ranges(n, kParStream, [&](index_t b, index_t e) {
    switch (d) {
      case Decay::None: adam_range<Decay::None>(param + b, m + b, v + b, grad + b, e - b, s); break;
      case Decay::Coupled: adam_range<Decay::Coupled>(param + b, m + b, v + b, grad + b, e - b, s); break;
      case Decay::Decoupled: adam_range<Decay::Decoupled>(param + b, m + b, v + b, grad + b, e - b, s); break;
    }
  });
}

template <typename T>
double sum_squares(const T* x, index_t n) {
  ND_CHECK(n >= 0, "sum_squares: negative size");
  index_t nchunks = (n + detail::kReduceChunk - 1) / detail::kReduceChunk;
  std::vector<double> part(static_cast<size_t>(nchunks));
  detail::for_each_chunk(n, kParReduce,
                         [&](index_t b, index_t e, index_t c) { part[c] = sum_squares_range(x + b, e - b); });
  double s = 0.0;
  for (index_t c = 0; c < nchunks; ++c) s += part[c];
  return s;
}

template <typename T>
void scale_inplace(T* x, index_t n, double s) {
  ND_CHECK(n >= 0, "scale_inplace: negative size");
  const T sT = static_cast<T>(s);
  detail::parallel_ranges(n, kParStream, [&](index_t b, index_t e) { scale_range(x + b, e - b, sT); });
}

template void adam_step<float>(float*, float*, float*, const float*, index_t, const AdamHyper&);
template void adam_step<double>(double*, double*, double*, const double*, index_t, const AdamHyper&);
template double sum_squares<float>(const float*, index_t);
template double sum_squares<double>(const double*, index_t);
template void scale_inplace<float>(float*, index_t, double);
template void scale_inplace<double>(double*, index_t, double);

}  // namespace nd
