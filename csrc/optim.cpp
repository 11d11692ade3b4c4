// Fused optimizer updates and the reductions that go with them (gradient norm, scaling).
// Dimensions: n parameters (one flat buffer).
//   param (n,)  grad (n,)  m (n,)  v (n,)  max_v (n,)  buf (n,)  square_avg (n,)  grad_avg (n,)  x (n,)
// Adam / AdamW exactly as torch.optim.Adam / AdamW (single-tensor, non-maximize):
//   g = grad (+ wd * p if weight_decay != 0 and not decoupled)
//   p = p * (1 - lr * wd)                         (decoupled only)
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   amsgrad: max_v = max(max_v, v), and max_v replaces v below
//   p = p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// SGD and RMSprop: see optim.h. Scalars are formed in double (as PyTorch does in Python) and rounded
// to T once; the elementwise arithmetic runs in T. One pass each: Adam reads p, g, m, v and writes
// p, m, v (28 bytes per float parameter; 36 with amsgrad); SGD with momentum 20; RMSprop 20 to 36.
#include <cfloat>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include <algorithm>
#include <cstring>

#include "kernels.h"
#include "optim.h"

namespace nd {

namespace {

constexpr index_t kParStream = index_t(1) << 16;  // memory-bound loops
constexpr index_t kStreamChunk = index_t(1) << 15;  // elements per dynamically scheduled block

// Elementwise optimizer updates: [0, n) in blocks of kStreamChunk handed out dynamically to the kernel
// threads. Each element's result does not depend on which thread computes it, so the output is
// bitwise identical for any thread count and schedule; dynamic blocks keep a shared, busy machine
// from stalling the whole step behind one preempted thread (a static split waits for the slowest).
template <class F>
inline void stream_blocks(index_t n, F&& f, index_t chunk = kStreamChunk) {
#ifdef ND_OPENMP
  const int nt = num_threads();
  const index_t nblocks = (n + chunk - 1) / chunk;
  if (nt > 1 && n >= kParStream && nblocks > 1) {
    const int parts = static_cast<int>(std::min<index_t>(nt, nblocks));
#pragma omp parallel for schedule(dynamic, 1) num_threads(parts)
    for (index_t c = 0; c < nblocks; ++c) f(c * chunk, std::min(n, (c + 1) * chunk));
    return;
  }
#endif
  if (n > 0) f(index_t(0), n);
}
constexpr index_t kParReduce = index_t(1) << 16;
constexpr int kLanes = 8;

enum class Decay { None, Coupled, Decoupled };

template <typename T>
struct AdamScalars {
  T b1, b2, c1, c2, step_size, bc2_sqrt, eps, wd, decay;
};

template <Decay D, bool Ams, typename T>
ND_CLONES void adam_range(T* param, T* m, T* v, T* max_v, const T* grad, index_t n, AdamScalars<T> s) {
  for (index_t i = 0; i < n; ++i) {
    T p = param[i];
    T g = grad[i];
    if constexpr (D == Decay::Coupled) g = g + s.wd * p;
    if constexpr (D == Decay::Decoupled) p = p * s.decay;
    T mi = s.b1 * m[i] + s.c1 * g;
    T vi = s.b2 * v[i] + s.c2 * (g * g);
    m[i] = mi;
    v[i] = vi;
    if constexpr (Ams) {
      T mx = max_v[i];
      mx = !(vi <= mx) ? vi : mx;  // torch.maximum, NaN in v propagates
      max_v[i] = mx;
      vi = mx;
    }
    T den = std::sqrt(vi) / s.bc2_sqrt + s.eps;
    param[i] = p - s.step_size * (mi / den);
  }
}

// SGD. Mom: momentum != 0; First: the buffer is set to d; Nest: nesterov.
template <bool Wd, bool Mom, bool First, bool Nest, typename T>
ND_CLONES void sgd_range(T* param, T* buf, const T* grad, index_t n, T lr, T mu, T damp1, T wd) {
  for (index_t i = 0; i < n; ++i) {
    T p = param[i];
    T d = grad[i];
    if constexpr (Wd) d = d + wd * p;
    if constexpr (Mom) {
      T b;
      if constexpr (First) b = d; else b = mu * buf[i] + damp1 * d;
      buf[i] = b;
      if constexpr (Nest) d = d + mu * b; else d = b;
    }
    param[i] = p - lr * d;
  }
}

template <typename T>
struct RmsScalars {
  T lr, alpha, c, eps, wd, mu;
};

template <bool Wd, bool Centered, bool Mom, typename T>
ND_CLONES void rmsprop_range(T* param, T* sq, T* ga, T* buf, const T* grad, index_t n, RmsScalars<T> s) {
  for (index_t i = 0; i < n; ++i) {
    T p = param[i];
    T g = grad[i];
    if constexpr (Wd) g = g + s.wd * p;
    T si = s.alpha * sq[i] + s.c * (g * g);
    sq[i] = si;
    if constexpr (Centered) {
      T a = s.alpha * ga[i] + s.c * g;
      ga[i] = a;
      si = si - a * a;
      si = si > T(0) ? si : T(0);  // mathematically >= 0; rounding could make it slightly negative
    }
    T den = std::sqrt(si) + s.eps;
    if constexpr (Mom) {
      T b = s.mu * buf[i] + g / den;
      buf[i] = b;
      param[i] = p - s.lr * b;
    } else {
      param[i] = p - s.lr * (g / den);
    }
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

std::string fmt(double v) { return fmt_double(v); }

}  // namespace

template <typename T>
void adam_step_ex(T* param, T* m, T* v, T* max_v, const T* grad, index_t n, const AdamHyper& h) {
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
  auto run = [&](auto dtag, auto atag) {
    constexpr Decay D = decltype(dtag)::value;
    constexpr bool A = decltype(atag)::value;
    stream_blocks(n, [&](index_t b, index_t e) {
      adam_range<D, A>(param + b, m + b, v + b, A ? max_v + b : nullptr, grad + b, e - b, s);
    });
  };
  auto with_decay = [&](auto atag) {
    switch (d) {
      case Decay::None: run(std::integral_constant<Decay, Decay::None>{}, atag); break;
      case Decay::Coupled: run(std::integral_constant<Decay, Decay::Coupled>{}, atag); break;
      case Decay::Decoupled: run(std::integral_constant<Decay, Decay::Decoupled>{}, atag); break;
    }
  };
  if (max_v) with_decay(std::true_type{}); else with_decay(std::false_type{});
}

template <typename T>
void adam_step(T* param, T* m, T* v, const T* grad, index_t n, const AdamHyper& h) {
  adam_step_ex<T>(param, m, v, nullptr, grad, n, h);
}

template <typename T>
void sgd_step(T* param, T* buf, const T* grad, index_t n, const SgdHyper& h) {
  ND_CHECK(n >= 0, "sgd_step: negative size");
  ND_CHECK(h.lr >= 0.0 && h.lr <= DBL_MAX, "lr must be finite and >= 0, got " + fmt(h.lr));
  ND_CHECK(h.momentum >= 0.0 && h.momentum <= DBL_MAX, "momentum must be finite and >= 0, got " + fmt(h.momentum));
  ND_CHECK(h.dampening >= 0.0 && h.dampening <= 1.0, "dampening must be in [0, 1], got " + fmt(h.dampening));
  ND_CHECK(h.weight_decay >= 0.0 && h.weight_decay <= DBL_MAX,
           "weight_decay must be finite and >= 0, got " + fmt(h.weight_decay));
  ND_CHECK(!h.nesterov || (h.momentum > 0.0 && h.dampening == 0.0),
           "nesterov requires momentum > 0 and dampening == 0");
  const bool mom = h.momentum != 0.0;
  ND_CHECK(!mom || buf != nullptr, "sgd_step: momentum != 0 needs a momentum buffer");
  const T lr = static_cast<T>(h.lr), mu = static_cast<T>(h.momentum), damp1 = static_cast<T>(1.0 - h.dampening),
          wd = static_cast<T>(h.weight_decay);
  const bool w = h.weight_decay != 0.0;
  auto go = [&](auto W, auto M, auto F, auto N) {
    stream_blocks(n, [&](index_t b, index_t e) {
      sgd_range<decltype(W)::value, decltype(M)::value, decltype(F)::value, decltype(N)::value>(
          param + b, decltype(M)::value ? buf + b : nullptr, grad + b, e - b, lr, mu, damp1, wd);
    });
  };
  using TT = std::true_type;
  using FF = std::false_type;
  auto by_wd = [&](auto M, auto F, auto N) { if (w) go(TT{}, M, F, N); else go(FF{}, M, F, N); };
  if (!mom) {
    by_wd(FF{}, FF{}, FF{});
  } else {
    auto by_nest = [&](auto F) { if (h.nesterov) by_wd(TT{}, F, TT{}); else by_wd(TT{}, F, FF{}); };
    if (h.first) by_nest(TT{}); else by_nest(FF{});
  }
}

template <typename T>
void rmsprop_step(T* param, T* square_avg, T* grad_avg, T* buf, const T* grad, index_t n, const RmspropHyper& h) {
  ND_CHECK(n >= 0, "rmsprop_step: negative size");
  ND_CHECK(h.lr >= 0.0 && h.lr <= DBL_MAX, "lr must be finite and >= 0, got " + fmt(h.lr));
  ND_CHECK(h.alpha >= 0.0 && h.alpha < 1.0, "alpha must be in [0, 1), got " + fmt(h.alpha));
  ND_CHECK(h.eps > 0.0 && h.eps <= DBL_MAX, "eps must be finite and > 0, got " + fmt(h.eps));
  ND_CHECK(h.weight_decay >= 0.0 && h.weight_decay <= DBL_MAX,
           "weight_decay must be finite and >= 0, got " + fmt(h.weight_decay));
  ND_CHECK(h.momentum >= 0.0 && h.momentum <= DBL_MAX, "momentum must be finite and >= 0, got " + fmt(h.momentum));
  const bool mom = h.momentum > 0.0;
  ND_CHECK(!mom || buf != nullptr, "rmsprop_step: momentum > 0 needs a momentum buffer");
  RmsScalars<T> s;
  s.lr = static_cast<T>(h.lr);
  s.alpha = static_cast<T>(h.alpha);
  s.c = static_cast<T>(1.0 - h.alpha);
  s.eps = static_cast<T>(h.eps);
  s.wd = static_cast<T>(h.weight_decay);
  s.mu = static_cast<T>(h.momentum);
  const bool w = h.weight_decay != 0.0, cen = grad_avg != nullptr;
  auto go = [&](auto W, auto C, auto M) {
    constexpr bool Cv = decltype(C)::value, Mv = decltype(M)::value;
    stream_blocks(n, [&](index_t b, index_t e) {
      rmsprop_range<decltype(W)::value, Cv, Mv>(param + b, square_avg + b, Cv ? grad_avg + b : nullptr,
                                                Mv ? buf + b : nullptr, grad + b, e - b, s);
    });
  };
  using TT = std::true_type;
  using FF = std::false_type;
  auto by_m = [&](auto W, auto C) { if (mom) go(W, C, TT{}); else go(W, C, FF{}); };
  auto by_c = [&](auto W) { if (cen) by_m(W, TT{}); else by_m(W, FF{}); };
  if (w) by_c(TT{}); else by_c(FF{});
}

void parallel_copy(void* dst, const void* src, index_t nbytes) {
  ND_CHECK(nbytes >= 0, "parallel_copy: negative size");
  char* d = static_cast<char*>(dst);
  const char* s = static_cast<const char*>(src);
  stream_blocks(nbytes, [&](index_t b, index_t e) {
    std::memcpy(d + b, s + b, static_cast<size_t>(e - b));
  }, index_t(1) << 20);
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
template void adam_step_ex<float>(float*, float*, float*, float*, const float*, index_t, const AdamHyper&);
template void adam_step_ex<double>(double*, double*, double*, double*, const double*, index_t, const AdamHyper&);
template void sgd_step<float>(float*, float*, const float*, index_t, const SgdHyper&);
template void sgd_step<double>(double*, double*, const double*, index_t, const SgdHyper&);
template void rmsprop_step<float>(float*, float*, float*, float*, const float*, index_t, const RmspropHyper&);
template void rmsprop_step<double>(double*, double*, double*, double*, const double*, index_t, const RmspropHyper&);
template double sum_squares<float>(const float*, index_t);
template double sum_squares<double>(const double*, index_t);
template void scale_inplace<float>(float*, index_t, double);
template void scale_inplace<double>(double*, index_t, double);

}  // namespace nd
