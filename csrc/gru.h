// GRU layer over a whole sequence (PyTorch / cuDNN conventions), forward and backward.
// Dimensions: B batch, T steps, I input features, H hidden units, G = 3H gates in the order r, z, n.
//   r_t = sigma(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
//   z_t = sigma(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
//   n_t = tanh (W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
//   h_t = (1 - z_t) * n_t + z_t * h_{t-1}
// Weights as torch.nn.GRU: w_ih (G,I) rows [W_ir; W_iz; W_in], w_hh (G,H), b_ih (G), b_hh (G).
//
// Cache filled by forward and read (never modified) by backward: y (every h_t) and `gates` (B,T,CW),
// CW = gru_cache_width(H) = 32 * ceil(H / 8): per (b, t) the values r, z, n and hn = W_hn h_{t-1} + b_hn
// (the recurrent part of n, which sits inside r * (...)) in blocks of 8 units, [r(8) z(8) n(8) hn(8)]:
// unit u, quantity q at (u / 8) * 32 + q * 8 + u % 8 (so that a SIMD tile writes whole cache lines).
// Padding units (u >= H) hold finite values.
//
// Gradient rule: parameter gradients accumulate (+=), activation gradients (dx, dh0) are overwritten.
// Threads: nd::num_threads(); the batch is split across threads (independent recurrences, no barrier
// per step), the large GEMMs use nd::gemm. Results are bitwise identical for any thread count.
#pragma once
#include "common.h"

namespace nd {

// y (B,T,H) and gates (B,T,4H) are written. b_ih / b_hh / h0 may be nullptr (zeros).
template <typename Real>
void gru_forward(Real* y,            // (B,T,H)   h_t for every step (y[:, T-1] is the final state)
                 Real* gates,        // (B,T,CW)  cache: r, z, n, hn
                 const Real* x,      // (B,T,I)
                 const Real* w_ih,   // (G,I)
                 const Real* w_hh,   // (G,H)
                 const Real* b_ih,   // (G) or nullptr
                 const Real* b_hh,   // (G) or nullptr
                 const Real* h0,     // (B,H) or nullptr
                 index_t B, index_t T, index_t I, index_t H);

// dx (B,T,I) = dL/dx (skipped when dx == nullptr), dh0 (B,H) = dL/dh0 (overwritten);
// dw_ih (G,I), dw_hh (G,H), db_ih (G), db_hh (G) += parameter gradients.
// dy (B,T,H): gradient w.r.t. every y_t, or nullptr (none); dh (B,H): gradient w.r.t. the final state
// h_{T-1}, added to dy[:, T-1], or nullptr. x, w_ih, w_hh, h0 as given to forward; y, gates from forward.
template <typename Real>
void gru_backward(Real* dx,            // (B,T,I) or nullptr
                  Real* dh0,           // (B,H)
                  Real* dw_ih,         // (G,I)   +=
                  Real* dw_hh,         // (G,H)   +=
                  Real* db_ih,         // (G)     +=
                  Real* db_hh,         // (G)     +=
                  const Real* dy,      // (B,T,H) or nullptr
                  const Real* dh,      // (B,H) or nullptr
                  const Real* x,       // (B,T,I)
                  const Real* w_ih,    // (G,I)
                  const Real* w_hh,    // (G,H)
                  const Real* h0,      // (B,H) or nullptr
                  const Real* y,       // (B,T,H)  cache
                  const Real* gates,   // (B,T,CW) cache
                  index_t B, index_t T, index_t I, index_t H);

// Naive versions (plain loops, libm sigmoid/tanh, per-step outer products for the weight gradients):
// same signatures and results within rounding. Kept for tests and the benchmark's ratio.
template <typename Real>
void gru_forward_naive(Real* y, Real* gates, const Real* x, const Real* w_ih, const Real* w_hh,
                       const Real* b_ih, const Real* b_hh, const Real* h0, index_t B, index_t T, index_t I,
                       index_t H);
template <typename Real>
void gru_backward_naive(Real* dx, Real* dh0, Real* dw_ih, Real* dw_hh, Real* db_ih, Real* db_hh,
                        const Real* dy, const Real* dh, const Real* x, const Real* w_ih, const Real* w_hh,
                        const Real* h0, const Real* y, const Real* gates, index_t B, index_t T, index_t I,
                        index_t H);

// CW, the width of a cache row (see above).
index_t gru_cache_width(index_t H);

// "avx2" or "generic": the step kernels the next call will use (follows nd::gemm_isa(): "generic" when
// the GEMM is forced to the portable kernels, else AVX2+FMA when the CPU has it).
const char* gru_isa();

}  // namespace nd
