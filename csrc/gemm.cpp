// TEMPORARY: correct naive GEMM so the module builds; replaced by the blocked, packed SIMD version.
#include "gemm.h"

namespace nd {

template <typename T>
void gemm_naive(bool ta, bool tb, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda,
                const T* B, index_t ldb, T beta, T* C, index_t ldc) {
  for (index_t i = 0; i < M; ++i)
    for (index_t j = 0; j < N; ++j) {
      T acc = 0;
      for (index_t k = 0; k < K; ++k)
        acc += (ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
      T old = beta == T(0) ? T(0) : beta * C[i * ldc + j];
      C[i * ldc + j] = alpha * acc + old;
    }
}

template <typename T>
void gemm(bool ta, bool tb, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda,
          const T* B, index_t ldb, T beta, T* C, index_t ldc) {
  gemm_naive<T>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

const char* gemm_isa() { return "generic"; }
void gemm_force_isa(const char*) {}

template void gemm<float>(bool, bool, index_t, index_t, index_t, float, const float*, index_t, const float*, index_t, float, float*, index_t);
template void gemm<double>(bool, bool, index_t, index_t, index_t, double, const double*, index_t, const double*, index_t, double, double*, index_t);
template void gemm_naive<float>(bool, bool, index_t, index_t, index_t, float, const float*, index_t, const float*, index_t, float, float*, index_t);
template void gemm_naive<double>(bool, bool, index_t, index_t, index_t, double, const double*, index_t, const double*, index_t, double, double*, index_t);

}  // namespace nd
