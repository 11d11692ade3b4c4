// Linear layer with the residual add fused (the Transformer's out_proj and second feed-forward linear).
// linear_forward / linear_backward themselves are declared in kernels.h; see linear.cpp for both paths.
#pragma once
#include "common.h"

namespace nd {

// y = x @ w^T + b + r, rounded as ((x w^T) + b) + r, i.e. bitwise what linear_forward followed by the
// elementwise add r + y gives. b and r may be nullptr (then it is linear_forward).
template <typename T>
void linear_forward_residual(T* y,        // (N,O) overwritten
                             const T* x,  // (N,I)
                             const T* w,  // (O,I)
                             const T* b,  // (O,) or nullptr
                             const T* r,  // (N,O) or nullptr
                             index_t N, index_t I, index_t O);

// Backward of y = linear(x) followed by an elementwise gate (the feed-forward block's linear2(GELU(z)) with
// gate = GELU'(z)): dw += dy^T @ x, db += sum_n dy, then dx = (dy @ w) * gate written over the gate, in one
// pass (bitwise: linear_backward's dx times the gate). dw / db are computed before dx overwrites the gate.
template <typename T>
void linear_backward_gated(T* dx,        // (N,I) in: gate, out: (dy @ w) * gate
                           T* dw,        // (O,I) +=
                           T* db,        // (O,) += or nullptr
                           const T* dy,  // (N,O)
                           const T* x,   // (N,I)
                           const T* w,   // (O,I)
                           index_t N, index_t I, index_t O);

// The feed-forward block's second linear on GELU of its input: y = GELU(z) @ w^T + b + r (b, r may be
// nullptr), and its backward dz = (dy @ w) * GELU'(z) (overwritten), dw += dy^T GELU(z), db += sum_n dy.
// On the fused path GELU(z) / GELU'(z) are evaluated a few rows (forward) or one GEMM K block (backward) at
// a time into small buffers and never stored whole; bitwise ff_gelu_forward + linear_forward_residual and
// ff_gelu_forward_grad + linear_backward_gated.
template <typename T>
void linear_gelu_forward(T* y,        // (N,O) overwritten
                         const T* z,  // (N,I)
                         const T* w,  // (O,I)
                         const T* b,  // (O,) or nullptr
                         const T* r,  // (N,O) or nullptr
                         index_t N, index_t I, index_t O);
// linear_gelu_forward that also writes GELU(z) into g and GELU'(z) into d (both (N,I), not nullptr): for
// training, where the backward is then linear_backward_gated(d, dw, db, dy, g, w) (d overwritten with dz),
// bitwise linear_gelu_backward without evaluating GELU again. y is bitwise linear_gelu_forward's.
template <typename T>
void linear_gelu_forward_keep(T* y,        // (N,O) overwritten
                              T* g,        // (N,I) out: GELU(z)
                              T* d,        // (N,I) out: GELU'(z)
                              const T* z,  // (N,I)
                              const T* w,  // (O,I)
                              const T* b,  // (O,) or nullptr
                              const T* r,  // (N,O) or nullptr
                              index_t N, index_t I, index_t O);
// The feed-forward block's first linear with its activation: g = GELU(x @ w^T + b) and, when d is not nullptr,
// d = GELU'(x @ w^T + b) (both (N,O)); the pre-activation is never stored (float fused path: GELU in the tile
// epilogue, on the tile in registers). Bitwise linear_forward followed by ff_gelu_forward (or
// ff_gelu_forward_grad), so the tape's (g, d) pair is the one linear_gelu_forward_keep would have written.
template <typename T>
void linear_forward_gelu(T* g,        // (N,O) out: GELU(z)
                         T* d,        // (N,O) out: GELU'(z), or nullptr
                         const T* x,  // (N,I)
                         const T* w,  // (O,I)
                         const T* b,  // (O,) or nullptr
                         index_t N, index_t I, index_t O);
template <typename T>
void linear_gelu_backward(T* dz,        // (N,I) overwritten
                          T* dw,        // (O,I) +=
                          T* db,        // (O,) += or nullptr
                          const T* dy,  // (N,O)
                          const T* z,   // (N,I)
                          const T* w,   // (O,I)
                          index_t N, index_t I, index_t O);

}  // namespace nd
