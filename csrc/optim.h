// Optimizer kernels beyond adam_step (declared in kernels.h): Adam/AdamW with AMSGrad, SGD, RMSprop,
// and a parallel copy used as the memory-bandwidth ceiling by bench/optim.py.
// Every kernel is one fused pass over the flat parameter buffer (n elements), elementwise, so the
// static thread partition gives results that are bitwise identical for any thread count.
// Scalars are formed in double and rounded to T once; the elementwise arithmetic runs in T.
// Update rules: exactly torch.optim.Adam / AdamW / SGD / RMSprop (maximize=False, single tensor);
// see python/neurodivergent/training/optimizers.py for the written-out formulas.
#pragma once
#include "kernels.h"

namespace nd {

// Adam / AdamW; max_v == nullptr: plain Adam (same as adam_step), else AMSGrad:
//   max_v = max(max_v, v);  denom = sqrt(max_v) / sqrt(1 - b2^t) + eps.
// Bytes per step and parameter: read p, g, m, v (+max_v), write p, m, v (+max_v).
template <typename T>
void adam_step_ex(T* param, T* m, T* v, T* max_v, const T* grad, index_t n, const AdamHyper& h);

struct SgdHyper {
  double lr, momentum, dampening, weight_decay;
  bool nesterov;
  bool first;  // first step with momentum: the buffer is initialised to the (decayed) gradient
};

// torch.optim.SGD:
//   d = g (+ wd * p)
//   momentum != 0:  b = d on the first step, else b = momentum * b + (1 - dampening) * d
//                   d = d + momentum * b (nesterov) or d = b
//   p = p - lr * d
// buf may be nullptr only when momentum == 0.
template <typename T>
void sgd_step(T* param, T* buf, const T* grad, index_t n, const SgdHyper& h);

struct RmspropHyper {
  double lr, alpha, eps, weight_decay, momentum;
};

// torch.optim.RMSprop:
//   g = g (+ wd * p);  sq = alpha * sq + (1 - alpha) * g^2
//   centered (grad_avg != nullptr): ga = alpha * ga + (1 - alpha) * g;  s = sq - ga^2 (clamped at 0)
//   else s = sq
//   den = sqrt(s) + eps
//   momentum > 0 (buf != nullptr): b = momentum * b + g / den;  p = p - lr * b
//   else p = p - lr * g / den
template <typename T>
void rmsprop_step(T* param, T* square_avg, T* grad_avg, T* buf, const T* grad, index_t n,
                  const RmspropHyper& h);

// dst = src (n bytes), split over the kernel threads like the optimizer kernels.
void parallel_copy(void* dst, const void* src, index_t nbytes);

}  // namespace nd
