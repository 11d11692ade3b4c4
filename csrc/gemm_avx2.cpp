// GEMM micro-kernels for AVX2 + FMA (compiled with -mavx2 -mfma on x86-64 only; chosen at run time by
// gemm.cpp when __builtin_cpu_supports says so). float: 6x16 tile (12 ymm accumulators, 2 B loads and
// 6 broadcasts per k); double: 6x8 tile. Packing and the loop structure come from gemm_kernels.h.
#include "gemm_kernels.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

namespace nd {
namespace gemm_detail {
namespace {

struct Avx2F32 {
  using T = float;
  using V = __m256;
  using Mask = __m256i;
  static constexpr int W = 8;
  static constexpr bool kMasked = true;
  static inline V zero() { return _mm256_setzero_ps(); }
  static inline V set1(T x) { return _mm256_set1_ps(x); }
  static inline V load(const T* p) { return _mm256_loadu_ps(p); }
  static inline V bcast(const T* p) { return _mm256_broadcast_ss(p); }
  static inline V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static inline V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static inline void store(T* p, V v) { _mm256_storeu_ps(p, v); }
  static inline Mask mask(int n) {  // lanes [0, n) set
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static inline V maskload(const T* p, Mask m) { return _mm256_maskload_ps(p, m); }
  static inline void maskstore(T* p, Mask m, V v) { _mm256_maskstore_ps(p, m, v); }
};

struct Avx2F64 {
  using T = double;
  using V = __m256d;
  using Mask = __m256i;
  static constexpr int W = 4;
  static constexpr bool kMasked = true;
  static inline V zero() { return _mm256_setzero_pd(); }
  static inline V set1(T x) { return _mm256_set1_pd(x); }
  static inline V load(const T* p) { return _mm256_loadu_pd(p); }
  static inline V bcast(const T* p) { return _mm256_broadcast_sd(p); }
  static inline V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static inline V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  static inline void store(T* p, V v) { _mm256_storeu_pd(p, v); }
  static inline Mask mask(int n) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
  }
  static inline V maskload(const T* p, Mask m) { return _mm256_maskload_pd(p, m); }
  static inline void maskstore(T* p, Mask m, V v) { _mm256_maskstore_pd(p, m, v); }
};

// 8x8 float transpose: dst[k*ds + j] = src[j*ls + k] for j, k < 8 (packing op(B) = B^T).
struct Avx2TransF32 {
  static constexpr int kBlock = 8;
  static inline void block(const float* src, index_t ls, float* dst, int ds) {
    __m256 r0 = _mm256_loadu_ps(src + 0 * ls), r1 = _mm256_loadu_ps(src + 1 * ls);
    __m256 r2 = _mm256_loadu_ps(src + 2 * ls), r3 = _mm256_loadu_ps(src + 3 * ls);
    __m256 r4 = _mm256_loadu_ps(src + 4 * ls), r5 = _mm256_loadu_ps(src + 5 * ls);
    __m256 r6 = _mm256_loadu_ps(src + 6 * ls), r7 = _mm256_loadu_ps(src + 7 * ls);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst + 0 * ds, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + 1 * ds, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * ds, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * ds, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * ds, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * ds, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * ds, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * ds, _mm256_permute2f128_ps(u3, u7, 0x31));
  }
};

// 4x4 double transpose.
struct Avx2TransF64 {
  static constexpr int kBlock = 4;
  static inline void block(const double* src, index_t ls, double* dst, int ds) {
    __m256d r0 = _mm256_loadu_pd(src + 0 * ls), r1 = _mm256_loadu_pd(src + 1 * ls);
    __m256d r2 = _mm256_loadu_pd(src + 2 * ls), r3 = _mm256_loadu_pd(src + 3 * ls);
    __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
    __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
    _mm256_storeu_pd(dst + 0 * ds, _mm256_permute2f128_pd(t0, t2, 0x20));
    _mm256_storeu_pd(dst + 1 * ds, _mm256_permute2f128_pd(t1, t3, 0x20));
    _mm256_storeu_pd(dst + 2 * ds, _mm256_permute2f128_pd(t0, t2, 0x31));
    _mm256_storeu_pd(dst + 3 * ds, _mm256_permute2f128_pd(t1, t3, 0x31));
  }
};

using UkF32 = MicroKernel<Avx2F32, 6, 2>;  // 6 x 16
using UkF64 = MicroKernel<Avx2F64, 6, 2>;  // 6 x 8

// Blocks for a 32 KiB L1d / 512 KiB L2 core (Zen 3), also sound on Haswell..Skylake client parts:
// B sliver kc x nr = 256 x 16 floats = 16 KiB in L1; A block mc x kc = 120 x 256 floats = 120 KiB
// (a quarter of L2, leaving room for C and for the B panel's lines in flight).
constexpr IsaKernels kAvx2 = {
    "avx2",
    make_kernel_set<UkF32, Avx2TransF32>(/*mc=*/120, /*kc=*/256, /*nc=*/3072),
    make_kernel_set<UkF64, Avx2TransF64>(/*mc=*/72, /*kc=*/256, /*nc=*/1536),
};

}  // namespace

const IsaKernels* avx2_kernels() { return &kAvx2; }

}  // namespace gemm_detail
}  // namespace nd

#else  // not compiled for AVX2 (non-x86 or missing flags): no kernels, the dispatcher never picks it

namespace nd {
namespace gemm_detail {
const IsaKernels* avx2_kernels() { return nullptr; }
}  // namespace gemm_detail
}  // namespace nd

#endif
