// nd::gemm with op(B) packed once and reused over many calls (e.g. a recurrent weight multiplied at every
// time step). The packed layout is the one of the GEMM kernels picked at packing time (see gemm.cpp):
// the concatenation, in the GEMM's own loop order (N panels, then K blocks), of what nd::gemm packs for
// each (N panel, K block). gemm_packed_b runs the same blocks and micro-kernels in the same order, so its
// results are bitwise identical to nd::gemm(trans_a, trans_b, M, N, K, ...) with the unpacked B.
#pragma once
#include <vector>

#include "common.h"

namespace nd {

template <typename T>
struct PackedB {
  std::vector<T> data;
  index_t K = 0, N = 0;
  const void* isa = nullptr;  // the GEMM kernel family the layout belongs to
};

// out = op(B) (K,N) packed (B stored (K,N) with leading dimension ldb, or (N,K) when trans_b).
template <typename T>
void gemm_pack_b(bool trans_b, index_t K, index_t N, const T* B, index_t ldb, PackedB<T>& out);

// C(M,N) = alpha * op(A)(M,K) * op(B) + beta * C, op(B) from gemm_pack_b (K, N taken from it). Runs on the
// calling thread (callers split M themselves); throws std::logic_error if the GEMM kernel family changed
// since packing (nd::gemm_force_isa).
template <typename T>
void gemm_packed_b(bool trans_a, index_t M, T alpha, const T* A, index_t lda, const PackedB<T>& Bp, T beta, T* C,
                   index_t ldc);

}  // namespace nd
