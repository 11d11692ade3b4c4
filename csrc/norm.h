// Layer normalisation over the last dimension, torch.nn.LayerNorm semantics.
// Dimensions: N rows, C features.
//   x (N,C)  weight, bias (C)  y (N,C)  mean, rstd (N)
//   mean_n = sum_c x_nc / C;  var_n = sum_c (x_nc - mean_n)^2 / C (biased);  rstd_n = 1 / sqrt(var_n + eps)
//   y_nc = (x_nc - mean_n) * rstd_n * weight_c + bias_c
// Cache: mean and rstd (the backward recomputes xhat from x). Statistics are accumulated in double.
// Backward: dx_nc = rstd_n * (g_nc - mean_c(g_n.) - xhat_nc * mean_c(g_n. xhat_n.)),  g = dy * weight;
// dweight += sum_n dy * xhat,  dbias += sum_n dy  (parameter gradients accumulate, dx is overwritten).
// Threads: rows are split into fixed chunks of kRowsPerChunk (independent of the thread count) whose
// partial dweight / dbias are summed in chunk order, so results are bitwise identical for any thread
// count.
#pragma once
#include "common.h"

namespace nd {

template <typename F>
void layer_norm_forward(F* y,          // (N,C) out
                        F* mean,       // (N) cache out
                        F* rstd,       // (N) cache out
                        const F* x,    // (N,C)
                        const F* w,    // (C) or nullptr (ones)
                        const F* b,    // (C) or nullptr (zeros)
                        index_t N, index_t C, double eps, bool naive);

template <typename F>
void layer_norm_backward(F* dx,          // (N,C) out or nullptr
                         F* dw,          // (C) += or nullptr
                         F* db,          // (C) += or nullptr
                         const F* dy,    // (N,C)
                         const F* x,     // (N,C)
                         const F* w,     // (C) or nullptr (ones)
                         const F* mean,  // (N)
                         const F* rstd,  // (N)
                         index_t N, index_t C, bool naive);

// GELU of the Transformer's feed-forward block, exact erf form y = x Phi(x), Phi(x) = 0.5 erfc(-x / sqrt 2)
// (torch.nn.GELU()), and its backward dx = dy (Phi(x) + x phi(x)) (overwritten). float: 8 lanes at a time,
// Phi(-|x|) = exp(-x^2 / 2) H(|x|) with H a per-interval polynomial (no division) and phi sharing the exp;
// within 4 ulps of the exact value over the whole range, tails included (see norm.cpp); double: std::erfc /
// std::exp (what tests compare with finite differences).
// -inf gives 0 (not NaN), +inf gives +inf. Fixed chunks over threads: bitwise identical for any count.
void ff_gelu_forward(float* y, const float* x, index_t n);
void ff_gelu_forward(double* y, const double* x, index_t n);
void ff_gelu_backward(float* dx, const float* dy, const float* x, index_t n);
// y = GELU(x) and d = GELU'(x) = Phi(x) + x phi(x) from one evaluation (the feed-forward backward, which
// recomputes GELU(z) for dW and needs GELU'(z) for dz): bitwise ff_gelu_forward's y, and dy * d is bitwise
// ff_gelu_backward's dx.
void ff_gelu_forward_grad(float* y, float* d, const float* x, index_t n);
void ff_gelu_forward_grad(double* y, double* d, const double* x, index_t n);
void ff_gelu_backward(double* dx, const double* dy, const double* x, index_t n);

}  // namespace nd
