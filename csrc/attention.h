// Multi-head scaled dot-product attention, forward and backward (fused, flash-attention style).
// Dimensions: B batch, H heads, T query steps, S key steps, D head width.
//   q (B,H,T,D)  k, v (B,H,S,D)  y (B,H,T,D)  lse (B,H,T)  key_padding_mask (B,S) (nonzero = masked key)
//   s_ij = scale * q_i . k_j            (scale: usually 1/sqrt(D))
//   masked (s_ij = -inf) where causal and j > i (top-left aligned, as PyTorch's is_causal), or where
//   key_padding_mask[b, j] != 0
//   p_ij = softmax_j(s_ij)              a masked key gets exactly zero weight
//   y_i  = sum_j p_ij * m_ij / (1 - dropout) * v_j     m_ij in {0, 1}: dropout keep mask (training)
// A fully masked row (every key masked) has no softmax: its weights are all zero, y_i = 0, lse_i = -inf,
// and no gradient flows through it (PyTorch returns NaN there).
// Dropout: m_ij = 1 when the 32 high bits of mix(mix(seed) + n) are >= floor(dropout * 2^32), where n =
// ((b*H + h)*T + i)*S + j and mix(z) is splitmix64's step (z += 0x9E3779B97F4A7C15, then its finaliser);
// a pure function of (seed, n), so the backward regenerates it
// instead of storing a (B,H,T,S) mask, and any thread count gives the same mask.
// Cache: the forward stores only lse (the log-sum-exp of each scaled, masked score row); the backward
// recomputes the scores block by block from q, k and lse (no (T,S) matrix is ever stored whole).
// Blocks: for each (b, h), query rows are processed in blocks of kBlockQ; one block of scores
// (kBlockQ, S) lives in a per-thread workspace. With causal masking a block only visits the keys
// j < i1 (the masked blocks are skipped, not computed).
// Gradients: dq, dk, dv are activation gradients: overwritten (=).
// Threads: nd::num_threads() over the B*H (batch, head) pairs; every pair is computed by the same
// arithmetic whatever the split, so results are bitwise identical for any thread count.
#pragma once
#include <cstdint>

#include "common.h"

namespace nd {

template <typename F>
void attention_forward(F* y,                     // (B,H,T,D) out
                       F* lse,                   // (B,H,T) cache out
                       const F* q,               // (B,H,T,D)
                       const F* k,               // (B,H,S,D)
                       const F* v,               // (B,H,S,D)
                       const std::uint8_t* kpm,  // (B,S) or nullptr
                       index_t B, index_t H, index_t T, index_t S, index_t D, bool causal, double scale,
                       double dropout, std::uint64_t seed, bool naive);

template <typename F>
void attention_backward(F* dq,                    // (B,H,T,D) out
                        F* dk,                    // (B,H,S,D) out
                        F* dv,                    // (B,H,S,D) out
                        const F* dy,              // (B,H,T,D)
                        const F* q,               // (B,H,T,D)
                        const F* k,               // (B,H,S,D)
                        const F* v,               // (B,H,S,D)
                        const F* y,               // (B,H,T,D) forward output
                        const F* lse,             // (B,H,T) cache
                        const std::uint8_t* kpm,  // (B,S) or nullptr
                        index_t B, index_t H, index_t T, index_t S, index_t D, bool causal, double scale,
                        double dropout, std::uint64_t seed, bool naive);

// The dropout keep mask of one call, (B,H,T,S) as 0/1 bytes (tests and documentation only).
void attention_dropout_mask(std::uint8_t* keep, index_t B, index_t H, index_t T, index_t S, double dropout,
                            std::uint64_t seed);

}  // namespace nd
