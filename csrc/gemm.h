// General matrix multiply, row-major:  C(M,N) = alpha * op(A)(M,K) * op(B)(K,N) + beta * C
// op(A) = A (M,K) with leading dimension lda, or A^T where A is stored (K,M); likewise for B.
// beta == 0 ignores the old contents of C (NaN in C does not propagate), as BLAS does.
// Blocked and packed; the micro-kernel is chosen at run time (AVX-512, AVX2+FMA, or portable).
// Threads: nd::num_threads(); results are bitwise identical for a fixed thread count.
#pragma once
#include "common.h"

namespace nd {

template <typename T>
void gemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, T alpha, const T* A,
          index_t lda, const T* B, index_t ldb, T beta, T* C, index_t ldc);

// Triple-loop reference kept beside the fast version (tests compare the two; bench prints the ratio).
template <typename T>
void gemm_naive(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, T alpha, const T* A,
                index_t lda, const T* B, index_t ldb, T beta, T* C, index_t ldc);

// "avx512", "avx2" or "generic": the micro-kernel family the dispatcher picked on this CPU.
const char* gemm_isa();

// Force a family for tests/bench ("avx512", "avx2", "generic" or "auto"); throws if unsupported here.
void gemm_force_isa(const char* name);

// Whether the AVX2+FMA paths of the other kernels (LSTM / GRU steps, attention, GELU) may run: the CPU
// (and OS) support AVX2 and FMA, and the GEMM is not forced to "generic" (tests force it to exercise
// every portable path at once). Always false on other architectures.
bool simd_avx2_enabled();

}  // namespace nd
