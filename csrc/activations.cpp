// Elementwise activations: ReLU, GELU (exact erf form, PyTorch's default), tanh, sigmoid.
// Dimensions: n elements (any shape flattened).
//   x (n,)  y (n,)  dy (n,)  dx (n,)
// Numerics: GELU is the feed-forward block's kernel (norm.cpp: ff_gelu_*): double uses 0.5*erfc(-x/sqrt2)
// for the normal CDF (no cancellation for x << 0), float a vectorised piecewise polynomial for |x| < 3 and
// exp(-x^2/2) times a piecewise polynomial beyond (csrc/gelu_simd.h; within 4 ulps over the whole range,
// tails included; AVX2 when available), one implementation
// for every model; sigmoid uses
// exp(-|x|) so nothing overflows; +-inf and +-1e30 give finite (or the limit) values, never NaN. NaN in
// gives NaN out (ReLU included), so divergence stays visible.
// In-place use (y == x, dx == dy) is safe: every element is read before it is written and the
// pointers are not declared __restrict__.
#include <cmath>

#include "kernels.h"
#include "norm.h"

namespace nd {

namespace {

// Elements per thread below which threading does not pay: memory-bound loops need many more.
constexpr index_t kParCheap = index_t(1) << 17;  // relu
constexpr index_t kParMath = index_t(1) << 13;   // erfc / exp / tanh per element

template <typename T>
ND_CLONES void relu_fwd(T* y, const T* x, index_t n) {
  for (index_t i = 0; i < n; ++i) y[i] = x[i] < T(0) ? T(0) : x[i];
}

template <typename T>
ND_CLONES void relu_bwd(T* dx, const T* dy, const T* x, index_t n) {
  for (index_t i = 0; i < n; ++i) dx[i] = x[i] > T(0) ? dy[i] : T(0);
}

template <typename T>
void tanh_fwd(T* y, const T* x, index_t n) {
  for (index_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
}

template <typename T>
ND_CLONES void tanh_bwd(T* dx, const T* dy, const T* y, index_t n) {
  for (index_t i = 0; i < n; ++i) dx[i] = dy[i] * (T(1) - y[i] * y[i]);
}

template <typename T>
void sigmoid_fwd(T* y, const T* x, index_t n) {
  for (index_t i = 0; i < n; ++i) {
    T xi = x[i];
    T e = std::exp(-std::fabs(xi));  // in (0, 1]: never overflows
    T s = T(1) / (T(1) + e);
    y[i] = xi >= T(0) ? s : e * s;
  }
}

template <typename T>
ND_CLONES void sigmoid_bwd(T* dx, const T* dy, const T* y, index_t n) {
  for (index_t i = 0; i < n; ++i) dx[i] = dy[i] * (y[i] * (T(1) - y[i]));
}

}  // namespace

template <typename T>
void activation_forward(Activation kind, T* y, const T* x, index_t n) {
  ND_CHECK(n >= 0, "activation_forward: negative size");
  switch (kind) {
    case Activation::ReLU:
      detail::parallel_ranges(n, kParCheap, [&](index_t b, index_t e) { relu_fwd(y + b, x + b, e - b); });
      break;
    case Activation::GELU:
      ff_gelu_forward(y, x, n);  // threaded inside
      break;
    case Activation::Tanh:
      detail::parallel_ranges(n, kParMath, [&](index_t b, index_t e) { tanh_fwd(y + b, x + b, e - b); });
      break;
    case Activation::Sigmoid:
      detail::parallel_ranges(n, kParMath, [&](index_t b, index_t e) { sigmoid_fwd(y + b, x + b, e - b); });
      break;
  }
}

template <typename T>
void activation_backward(Activation kind, T* dx, const T* dy, const T* x, const T* y, index_t n) {
  ND_CHECK(n >= 0, "activation_backward: negative size");
  switch (kind) {
    case Activation::ReLU:
      ND_CHECK(x != nullptr || n == 0, "activation_backward: relu needs x");
      detail::parallel_ranges(n, kParCheap,
                              [&](index_t b, index_t e) { relu_bwd(dx + b, dy + b, x + b, e - b); });
      break;
    case Activation::GELU:
      ND_CHECK(x != nullptr || n == 0, "activation_backward: gelu needs x");
      ff_gelu_backward(dx, dy, x, n);
      break;
    case Activation::Tanh:
      ND_CHECK(y != nullptr || n == 0, "activation_backward: tanh needs y");
      detail::parallel_ranges(n, kParCheap,
                              [&](index_t b, index_t e) { tanh_bwd(dx + b, dy + b, y + b, e - b); });
      break;
    case Activation::Sigmoid:
      ND_CHECK(y != nullptr || n == 0, "activation_backward: sigmoid needs y");
      detail::parallel_ranges(n, kParCheap,
                              [&](index_t b, index_t e) { sigmoid_bwd(dx + b, dy + b, y + b, e - b); });
      break;
  }
}

template void activation_forward<float>(Activation, float*, const float*, index_t);
template void activation_forward<double>(Activation, double*, const double*, index_t);
template void activation_backward<float>(Activation, float*, const float*, const float*, const float*, index_t);
template void activation_backward<double>(Activation, double*, const double*, const double*, const double*,
                                          index_t);

}  // namespace nd
