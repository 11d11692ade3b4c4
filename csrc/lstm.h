// LSTM layer kernels (one layer over a whole sequence), PyTorch / cuDNN conventions.
// Dimensions: B batch, T steps, I input features, H hidden units, G = 4H gates (order i, f, g, o).
//   x (B,T,I)  w_ih (G,I)  w_hh (G,H)  b_ih (G)  b_hh (G)  h0, c0 (B,H)  y (B,T,H)
//   i = sig(.), f = sig(.), g = tanh(.), o = sig(.) of  x_t w_ih^T + b_ih + h_{t-1} w_hh^T + b_hh
//   c_t = f * c_{t-1} + i * g;   h_t = o * tanh(c_t);   y[:, t] = h_t
// Cache filled by the forward, consumed by the backward (with x, the weights, h0, c0 and y):
//   gates (B,T,G): the activated gates i, f, g, o of every step
//   cell  (B,T,H): c_t of every step
// The backward recomputes tanh(c_t) from the cache (one vectorised tanh per element and step) instead
// of storing a third (B,T,H) array.
// Gradients: parameter gradients accumulate (+=), activation gradients (dx, dh0, dc0) overwrite (=).
// Threads: nd::num_threads(); the batch is split (independent recurrences, no barrier per step); every
// element goes through the same arithmetic whatever the split, so results are bitwise identical for
// any thread count.
#pragma once
#include "common.h"

namespace nd {

// naive = true runs the scalar reference loops kept beside the fast kernels (tests compare the two).
template <typename F>
void lstm_forward(F* y,           // (B,T,H) out
                  F* gates,       // (B,T,G) cache out
                  F* cell,        // (B,T,H) cache out
                  const F* x,     // (B,T,I)
                  const F* w_ih,  // (G,I)
                  const F* w_hh,  // (G,H)
                  const F* b_ih,  // (G)
                  const F* b_hh,  // (G)
                  const F* h0,    // (B,H) or nullptr (zeros)
                  const F* c0,    // (B,H) or nullptr (zeros)
                  index_t B, index_t T, index_t I, index_t H, bool naive);

// dy, dh, dc may be nullptr (no gradient there). dx may be nullptr (not computed).
template <typename F>
void lstm_backward(F* dx,           // (B,T,I) out or nullptr
                   F* dh0,          // (B,H) out
                   F* dc0,          // (B,H) out
                   F* dw_ih,        // (G,I) +=
                   F* dw_hh,        // (G,H) +=
                   F* db_ih,        // (G) +=
                   F* db_hh,        // (G) +=
                   const F* dy,     // (B,T,H) or nullptr
                   const F* dh,     // (B,H) gradient w.r.t. the final h, or nullptr
                   const F* dc,     // (B,H) gradient w.r.t. the final c, or nullptr
                   const F* x,      // (B,T,I)
                   const F* w_ih,   // (G,I)
                   const F* w_hh,   // (G,H)
                   const F* h0,     // (B,H) or nullptr
                   const F* c0,     // (B,H) or nullptr
                   const F* y,      // (B,T,H) cache
                   const F* gates,  // (B,T,G) cache
                   const F* cell,   // (B,T,H) cache
                   index_t B, index_t T, index_t I, index_t H, bool naive);

// "avx2" or "generic": the step kernels the dispatcher picked on this CPU.
const char* lstm_isa();

}  // namespace nd
