// Kernels of the training engine besides the optimizers: the quantile (pinball) loss (losses.cpp),
// clip-by-value and the fused L1/L2 penalty gradient over the flat gradient buffer (train_kernels.cpp).
// Conventions as kernels.h: outputs first, raw pointers validated by the bindings (bindings_train.cpp),
// float and double instantiations, reductions in double over fixed chunks (bitwise identical for any
// thread count), elementwise loops split statically over threads.
#pragma once
#include "common.h"

namespace nd {

// ------------------------------------------------------------------ quantile (pinball) loss
// Dimensions: N = number of target points (B*h, flattened), Q = number of quantile levels.
//   pred (N,Q) (quantile index fastest)  target (N,)  weight (N,) or nullptr
//   tau (Q,) levels in (0,1)              qw (Q,) positive finite per-quantile weights
//
//   r_iq = target_i - pred_iq,   rho_tau(r) = max(tau r, (tau - 1) r) = r (tau - [r < 0])
//   loss = sum_{i,q} w_i qw_q rho_{tau_q}(r_iq) / (sum_i w_i * sum_q qw_q)
// i.e. a weighted mean over target points (weights w, 1 when absent) of a weighted mean over quantiles
// (weights qw): scaling all w, or all qw, by a constant leaves the loss unchanged. With Q = 1 and
// tau = 0.5 the loss is exactly MAE / 2.
//   d loss / d pred_iq = w_i qw_q g_q(r_iq) / (sum_i w_i * sum_q qw_q),
//   g(r) = -tau if r > 0,  1 - tau if r < 0,  0 if r == 0
// At r == 0 the pinball loss has the subdifferential [-tau, 1 - tau] (w.r.t. pred); we take 0, which
// lies in it for every tau and matches the MAE kernel's sign(0) = 0 (so Q = 1, tau = 0.5 gives exactly
// half the MAE gradient). NaN in pred/target propagates to the loss and to its gradient entries.
// Weights (points) as the other losses: a point with w == 0 is excluded entirely (contributes exactly 0,
// even where pred/target are NaN / inf); sum(w) == 0 or N == 0 gives loss 0 and a zero gradient; a
// negative or non-finite w throws std::invalid_argument. Invalid tau / qw or Q < 1 throw too.
template <typename T>
double quantile_loss_forward(const T* pred, const T* target, const T* weight, const double* tau,
                             const double* qw, index_t N, index_t Q);

// dpred = scale * d(loss)/d(pred) (overwritten), (N,Q).
template <typename T>
void quantile_loss_backward(T* dpred, const T* pred, const T* target, const T* weight, const double* tau,
                            const double* qw, index_t N, index_t Q, double scale);

// ------------------------------------------------------------------ gradient clipping / penalties (n elements)
// x_i = min(max(x_i, lo), hi) in place (lo <= hi). NaN stays NaN (as torch.clamp), so a diverged gradient
// is not hidden.
template <typename T>
void clip_by_value(T* x, index_t n, double lo, double hi);

// grad_i += l1 * sign(p_i) + l2 * p_i   (sign(0) = 0), computed in double, rounded once to T.
// The gradient of the penalty  l1 * sum|p| + 0.5 * l2 * sum p^2.
template <typename T>
void add_penalty_grad(T* grad, const T* param, index_t n, double l1, double l2);

}  // namespace nd
