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
// Blocks: forward, for each (b, h), tiles of query rows and chunks of keys with an online softmax (one
// (rows, chunk) block of scores in a per-thread workspace, running max / sum per row); backward, blocks
// of query rows against all keys (one (rows, S) block of scores). With causal masking only the keys
// j <= i of a block are visited (the masked chunks are skipped, not computed).
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

// Self-attention on the input projection's packed output, heads split and merged by strides (no copies):
// qkv (B,T,3,H,D) as torch.nn.MultiheadAttention's in_proj gives it (q, k, v blocks of H*D per row),
// y (B,T,H,D), lse (B,H,T). Same arithmetic, dropout mask and lse as attention_forward on the split
// arrays (B,H,T,D): results are bitwise identical to it. dqkv (B,T,3,H,D) is overwritten.
template <typename F>
void attention_packed_forward(F* y,                     // (B,T,H*D) out
                              F* lse,                   // (B,H,T) cache out
                              const F* qkv,             // (B,T,3*H*D)
                              const std::uint8_t* kpm,  // (B,T) or nullptr
                              index_t B, index_t H, index_t T, index_t D, bool causal, double scale,
                              double dropout, std::uint64_t seed);

template <typename F>
void attention_packed_backward(F* dqkv,                  // (B,T,3*H*D) out
                               const F* dy,              // (B,T,H*D)
                               const F* qkv,             // (B,T,3*H*D)
                               const F* y,               // (B,T,H*D) forward output
                               const F* lse,             // (B,H,T) cache
                               const std::uint8_t* kpm,  // (B,T) or nullptr
                               index_t B, index_t H, index_t T, index_t D, bool causal, double scale,
                               double dropout, std::uint64_t seed);

// The dropout keep mask of one call, (B,H,T,S) as 0/1 bytes (tests and documentation only).
void attention_dropout_mask(std::uint8_t* keep, index_t B, index_t H, index_t T, index_t S, double dropout,
                            std::uint64_t seed);

}  // namespace nd
