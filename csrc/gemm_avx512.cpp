// GEMM micro-kernels for AVX-512 (F, DQ, BW, VL + FMA; compiled with those flags on x86-64 only and
// chosen at run time by gemm.cpp only when __builtin_cpu_supports reports all of them). Same structure
// as the AVX2 file with 16-wide (float) / 8-wide (double) vectors and opmask edge stores:
// float 6x32 tile (12 zmm accumulators), double 6x16. The op(B)^T packing reuses 256-bit 8x8 / 4x4
// transposes (AVX-512F implies AVX2). This file cannot be exercised on the AVX2-only dev machine: the
// micro-kernel, packing and loops are the shared templates of gemm_kernels.h (tested through the AVX2
// and generic instantiations); only the traits below are specific to it.
#include "gemm_kernels.h"

#if defined(__x86_64__) && defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__AVX512VL__) && \
    defined(__FMA__)
#include <immintrin.h>

namespace nd {
namespace gemm_detail {
namespace {

struct Avx512F32 {
  using T = float;
  using V = __m512;
  using Mask = __mmask16;
  static constexpr int W = 16;
  static constexpr bool kMasked = true;
  static inline V zero() { return _mm512_setzero_ps(); }
  static inline V set1(T x) { return _mm512_set1_ps(x); }
  static inline V load(const T* p) { return _mm512_loadu_ps(p); }
  static inline V bcast(const T* p) { return _mm512_set1_ps(*p); }  // vbroadcastss zmm, m32
  static inline V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static inline V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static inline void store(T* p, V v) { _mm512_storeu_ps(p, v); }
  static inline Mask mask(int n) {  // lanes [0, n) set; n may be <= 0 or >= 16
    return n <= 0 ? Mask(0) : n >= 16 ? Mask(0xFFFF) : Mask((1u << n) - 1u);
  }
  static inline V maskload(const T* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static inline void maskstore(T* p, Mask m, V v) { _mm512_mask_storeu_ps(p, m, v); }
};

struct Avx512F64 {
  using T = double;
  using V = __m512d;
  using Mask = __mmask8;
  static constexpr int W = 8;
  static constexpr bool kMasked = true;
  static inline V zero() { return _mm512_setzero_pd(); }
  static inline V set1(T x) { return _mm512_set1_pd(x); }
  static inline V load(const T* p) { return _mm512_loadu_pd(p); }
  static inline V bcast(const T* p) { return _mm512_set1_pd(*p); }
  static inline V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static inline V mul(V a, V b) { return _mm512_mul_pd(a, b); }
  static inline void store(T* p, V v) { _mm512_storeu_pd(p, v); }
  static inline Mask mask(int n) {
    return n <= 0 ? Mask(0) : n >= 8 ? Mask(0xFF) : Mask((1u << n) - 1u);
  }
  static inline V maskload(const T* p, Mask m) { return _mm512_maskz_loadu_pd(m, p); }
  static inline void maskstore(T* p, Mask m, V v) { _mm512_mask_storeu_pd(p, m, v); }
};

// 8x8 float transpose: dst[k*ds + j] = src[j*ls + k] for j, k < 8 (packing op(B) = B^T).
struct Avx512TransF32 {
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
struct Avx512TransF64 {
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

using UkF32 = MicroKernel<Avx512F32, 6, 2>;  // 6 x 32
using UkF64 = MicroKernel<Avx512F64, 6, 2>;  // 6 x 16

// B sliver kc x nr = 192 x 32 floats = 24 KiB (half of a 48 KiB L1d; Ice Lake / Sapphire Rapids / Zen 4);
// A block mc x kc = 192 x 192 floats = 144 KiB in L2 (>= 1 MiB on these parts).
constexpr IsaKernels kAvx512 = {
    "avx512",
    make_kernel_set<UkF32, Avx512TransF32>(/*mc=*/192, /*kc=*/192, /*nc=*/3072),
    make_kernel_set<UkF64, Avx512TransF64>(/*mc=*/96, /*kc=*/192, /*nc=*/1536),
};

}  // namespace

const IsaKernels* avx512_kernels() { return &kAvx512; }

}  // namespace gemm_detail
}  // namespace nd

#else  // not compiled for AVX-512: no kernels, the dispatcher never picks it

namespace nd {
namespace gemm_detail {
const IsaKernels* avx512_kernels() { return nullptr; }
}  // namespace gemm_detail
}  // namespace nd

#endif
