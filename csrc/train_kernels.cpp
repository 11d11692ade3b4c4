// Elementwise kernels of the training engine over the flat gradient buffer (declared in train_kernels.h):
// clip-by-value and the fused L1/L2 penalty gradient. Dimensions: n elements.
//   x / grad (n,) updated in place   param (n,)
// Both are streaming (memory-bound) loops split statically over threads; the result of each element
// does not depend on the split.
#include <cmath>

#include "kernels.h"
#include "train_kernels.h"

namespace nd {

namespace {

constexpr index_t kParStream = index_t(1) << 16;

template <typename T>
ND_CLONES void clip_range(T* x, index_t n, T lo, T hi) {
  for (index_t i = 0; i < n; ++i) {
    T v = x[i];
    v = v < lo ? lo : v;  // NaN compares false: kept
    x[i] = v > hi ? hi : v;
  }
}

template <typename T>
ND_CLONES void penalty_range(T* g, const T* p, index_t n, double l1, double l2) {
  for (index_t i = 0; i < n; ++i) {
    double pi = static_cast<double>(p[i]);
    double s = static_cast<double>(pi > 0.0) - static_cast<double>(pi < 0.0);  // sign, 0 at 0
    g[i] = static_cast<T>(static_cast<double>(g[i]) + (l1 * s + l2 * pi));
  }
}

template <typename T>
ND_CLONES void l2_range(T* g, const T* p, index_t n, double l2) {
  for (index_t i = 0; i < n; ++i) g[i] = static_cast<T>(static_cast<double>(g[i]) + l2 * static_cast<double>(p[i]));
}

}  // namespace

template <typename T>
void clip_by_value(T* x, index_t n, double lo, double hi) {
  ND_CHECK(n >= 0, "clip_by_value: negative size");
  ND_CHECK(lo <= hi, "clip_by_value: lo must be <= hi");
  const T loT = static_cast<T>(lo), hiT = static_cast<T>(hi);
  detail::parallel_ranges(n, kParStream, [&](index_t b, index_t e) { clip_range(x + b, e - b, loT, hiT); });
}

template <typename T>
void add_penalty_grad(T* grad, const T* param, index_t n, double l1, double l2) {
  ND_CHECK(n >= 0, "add_penalty_grad: negative size");
  ND_CHECK(l1 >= 0.0 && std::isfinite(l1), "add_penalty_grad: l1 must be finite and >= 0");
  ND_CHECK(l2 >= 0.0 && std::isfinite(l2), "add_penalty_grad: l2 must be finite and >= 0");
  if (l1 == 0.0 && l2 == 0.0) return;
  detail::parallel_ranges(n, kParStream, [&](index_t b, index_t e) {
    // l1 == 0: the plain weight-decay loop (no sign). NaN params propagate into the gradient either way.
    if (l1 == 0.0)
      l2_range(grad + b, param + b, e - b, l2);
    else
      penalty_range(grad + b, param + b, e - b, l1, l2);
  });
}

template void clip_by_value<float>(float*, index_t, double, double);
template void clip_by_value<double>(double*, index_t, double, double);
template void add_penalty_grad<float>(float*, const float*, index_t, double, double);
template void add_penalty_grad<double>(double*, const double*, index_t, double, double);

}  // namespace nd
