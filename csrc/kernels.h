// Declarations of the CPU kernels besides GEMM (linear, activations, losses, optimizer, reductions).
// Kernels know nothing of Python: they take raw pointers and sizes that the bindings have validated.
// Argument order: outputs, inputs, cache, sizes. Parameter gradients accumulate (+=), activation
// gradients overwrite (=). Every kernel is instantiated for float and double.
//
// Threads: nd::num_threads() with a static, deterministic partition. Reductions are computed over
// fixed-size chunks (independent of the thread count) in double and combined in chunk order, so
// they are bitwise identical for ANY thread count, not only a fixed one.
#pragma once
#include <algorithm>
#include <vector>

#include "common.h"

#ifdef ND_OPENMP
#include <omp.h>
#endif

// Function multi-versioning for elementwise hot loops (baseline x86-64 build, AVX2 clone picked at
// load time). "avx2" does not enable FMA, so both clones round identically (no contraction).
#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(_M_X64)) && \
    defined(__linux__)
#define ND_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define ND_CLONES
#endif

namespace nd {

// ------------------------------------------------------------------ linear
// N rows, I input features, O output features. Weight layout as PyTorch: w (O,I).
// y = x @ w^T + b
template <typename T>
void linear_forward(T* y,         // (N,O) overwritten
                    const T* x,   // (N,I)
                    const T* w,   // (O,I)
                    const T* b,   // (O,) or nullptr
                    index_t N, index_t I, index_t O);

// dx = dy @ w (overwritten, skipped when dx == nullptr); dw += dy^T @ x; db += sum_n dy (skipped when
// db == nullptr; accumulated in double).
template <typename T>
void linear_backward(T* dx,        // (N,I) or nullptr
                     T* dw,        // (O,I)
                     T* db,        // (O,) or nullptr
                     const T* dy,  // (N,O)
                     const T* x,   // (N,I)
                     const T* w,   // (O,I)
                     index_t N, index_t I, index_t O);

// ------------------------------------------------------------------ activations (elementwise, n elements)
enum class Activation { ReLU, GELU, Tanh, Sigmoid };

// y = f(x). y may be exactly x (in place).
template <typename T>
void activation_forward(Activation kind, T* y, const T* x, index_t n);

// dx = dy * f'(.) (overwritten). ReLU/GELU read x, Tanh/Sigmoid read y (the other may be nullptr).
// dx may be exactly dy. relu'(0) = 0.
template <typename T>
void activation_backward(Activation kind, T* dx, const T* dy, const T* x, const T* y, index_t n);

// ------------------------------------------------------------------ losses (elementwise over n, reduced)
enum class Loss { MSE, MAE, Huber };

// loss = sum_i w_i * l(pred_i - target_i) / sum_i w_i   (plain mean when weight == nullptr), in double.
// Returns 0 when sum(w) == 0 (or n == 0). Throws std::invalid_argument when a weight is negative or
// not finite. Huber (delta > 0): 0.5 r^2 if |r| < delta else delta * (|r| - 0.5 delta).
template <typename T>
double loss_forward(Loss kind, const T* pred, const T* target, const T* weight, index_t n, double delta);

// dpred = scale * d(loss)/d(pred) (overwritten). MAE's gradient at r == 0 is 0. Zero when sum(w) == 0.
template <typename T>
void loss_backward(Loss kind, T* dpred, const T* pred, const T* target, const T* weight, index_t n,
                   double delta, double scale);

// ------------------------------------------------------------------ optimizer / reductions
struct AdamHyper {
  double lr, beta1, beta2, eps, weight_decay;
  bool decoupled;  // AdamW: p *= 1 - lr*wd before the update; else g += wd*p
  long long step;  // 1-based
};

// One fused pass: read p, g, m, v; write p, m, v (PyTorch torch.optim.Adam / AdamW, single tensor).
template <typename T>
void adam_step(T* param, T* m, T* v, const T* grad, index_t n, const AdamHyper& h);

// sum_i x_i^2 accumulated in double.
template <typename T>
double sum_squares(const T* x, index_t n);

// x *= s
template <typename T>
void scale_inplace(T* x, index_t n, double s);

// ------------------------------------------------------------------ implementation helpers (.cpp only)
namespace detail {

// Run f(begin, end) over [0, n) split in one contiguous range per thread (static partition), in
// parallel only when n >= min_parallel. For elementwise kernels (result independent of the split).
template <class F>
inline void parallel_ranges(index_t n, index_t min_parallel, F&& f) {
#ifdef ND_OPENMP
  int nt = num_threads();
  if (nt > 1 && n >= min_parallel) {
    index_t per = std::max<index_t>(min_parallel / 2, 1);
    int parts = static_cast<int>(std::min<index_t>(nt, (n + per - 1) / per));
    if (parts > 1) {
#pragma omp parallel num_threads(parts)
      {
        index_t b, e;
        split_range(n, omp_get_num_threads(), omp_get_thread_num(), b, e);
        if (e > b) f(b, e);
      }
      return;
    }
  }
#endif
  if (n > 0) f(index_t(0), n);
}

// Reductions: chunks of a fixed size (independent of the thread count), chunk c -> f(begin, end, c).
constexpr index_t kReduceChunk = index_t(1) << 14;

template <class F>
inline void for_each_chunk(index_t n, index_t min_parallel, F&& f) {
  index_t nchunks = (n + kReduceChunk - 1) / kReduceChunk;
#ifdef ND_OPENMP
  int nt = num_threads();
  if (nt > 1 && n >= min_parallel && nchunks > 1) {
    int parts = static_cast<int>(std::min<index_t>(nt, nchunks));
#pragma omp parallel for schedule(static) num_threads(parts)
    for (index_t c = 0; c < nchunks; ++c) f(c * kReduceChunk, std::min(n, (c + 1) * kReduceChunk), c);
    return;
  }
#endif
  for (index_t c = 0; c < nchunks; ++c) f(c * kReduceChunk, std::min(n, (c + 1) * kReduceChunk), c);
}

}  // namespace detail
}  // namespace nd
