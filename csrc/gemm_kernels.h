// Internal to the GEMM (gemm.cpp, gemm_avx2.cpp, gemm_avx512.cpp); not part of the kernel API.
//
// The GEMM is split into three separable pieces so that a new element type (bf16 storage with fp32
// accumulation) or a new target (CUDA) is a new instantiation, not a rewrite:
//   1. packing (load paths): op(A) -> MR-row slivers, op(B) -> NR-column slivers, zero padded, all four
//      transpose cases handled here so the arithmetic never sees a transpose;
//   2. the register-blocked micro-kernel (arithmetic), written once over a small "vector traits" type
//      (zero / load / broadcast / fma / masked load-store) and instantiated per ISA;
//   3. the store path (alpha/beta epilogue, masked for edge tiles), inside the micro-kernel.
// The blocking loops (jc / pc / ic) and the threading live in gemm.cpp and reach the ISA-specific
// pieces through a KernelSet of function pointers (one indirect call per packed block, not per tile).
//
// Packed layouts (T = element type; kc = depth of the K block):
//   Ap: ceil(m/MR) slivers, sliver s at Ap + s*MR*kc, element (i, k) at [k*MR + i]   // (m/MR, kc, MR)
//   Bp: ceil(n/NR) slivers, sliver s at Bp + s*NR*kc, element (k, j) at [k*NR + j]   // (n/NR, kc, NR)
//
// Everything below the declarations has internal linkage (anonymous namespace): this header is compiled
// once with -mavx2, once with -mavx512f and once for the portable baseline, and identical template
// instantiations with external linkage would be merged by the linker, letting an AVX-512 copy run on a
// CPU without AVX-512. For the same reason the ISA files avoid std:: templates.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common.h"

namespace nd {
namespace gemm_detail {

// The source rows of the operand block packed next (the next A block, or the next K block's B panel and
// first A block), brought towards L2 a few cache lines after each micro-tile of the current block, so
// that the next packing pass reads from cache instead of waiting on memory (a tall-K weight gradient
// streams both operands from memory exactly once). Only prefetch instructions: results are unchanged.
// Data only (filled by gemm.cpp, advanced by prefetch_tick in the macro-kernels).
struct Prefetch {
  struct Region {
    const char* base = nullptr;
    index_t rows = 0, stride = 0, bytes = 0;  // rows of `bytes` bytes, `stride` bytes apart
  };
  Region r[2];
  int cur = 0;
  index_t row = 0;
  const char* p = nullptr;  // next line of the current row (nullptr: row not started)
  index_t per_tile = 0;     // lines issued after each micro-tile
};

template <typename T>
struct KernelSet {
  int mr, nr;          // micro-tile (rows of op(A), columns of op(B))
  index_t mc, kc, nc;  // cache blocks: A block mc x kc in L2, B sliver kc x nr in L1, B panel kc x nc
  // Pack op(A)(i0:i0+m, k0:k0+kc) into Ap (ceil(m/mr) slivers, zero padded rows).
  void (*pack_a)(bool trans, const T* A, index_t lda, index_t i0, index_t m, index_t k0, index_t kc, T* Ap);
  // Pack op(B)(k0:k0+kc, j0:j0+n) into Bp (ceil(n/nr) slivers, zero padded columns).
  void (*pack_b)(bool trans, const T* B, index_t ldb, index_t k0, index_t kc, index_t j0, index_t n, T* Bp);
  // C(0:m, 0:n) = alpha * Ap * Bp + beta * C  (beta == 0: C is not read). Ap, Bp packed as above.
  void (*macro)(index_t m, index_t n, index_t kc, const T* Ap, const T* Bp, T alpha, T beta, T* C,
                index_t ldc, Prefetch* pf);
  // Same, but op(B)(k0:k0+kc, j0:j0+n) is packed one NR sliver at a time into Bbuf (kc*nr elements)
  // right before the slivers of A run over it, so the packed sliver never leaves L1. Used when the
  // whole M range is one A block (each B sliver is used exactly once per K block).
  void (*macro_packb)(bool trans_b, const T* B, index_t ldb, index_t k0, index_t j0, index_t m, index_t n,
                      index_t kc, const T* Ap, T* Bbuf, T alpha, T beta, T* C, index_t ldc, Prefetch* pf);
};

struct IsaKernels {
  const char* name;
  KernelSet<float> f32;
  KernelSet<double> f64;
};

// Defined in gemm_avx2.cpp / gemm_avx512.cpp (x86-64 builds only); nullptr if that file was compiled
// without the ISA (should not happen with the project's CMakeLists).
const IsaKernels* avx2_kernels();
const IsaKernels* avx512_kernels();

namespace {  // internal linkage: see the note at the top

inline index_t min_i(index_t a, index_t b) { return a < b ? a : b; }

// ------------------------------------------------------------------------------------------ prefetch
inline void prefetch_tick(Prefetch& pf) {
  for (index_t q = 0; q < pf.per_tile; ++q) {
    while (pf.cur < 2 && pf.row >= pf.r[pf.cur].rows) {
      ++pf.cur;
      pf.row = 0;
      pf.p = nullptr;
    }
    if (pf.cur >= 2) return;
    const Prefetch::Region& g = pf.r[pf.cur];
    const char* start = g.base + pf.row * g.stride;
    if (!pf.p) pf.p = reinterpret_cast<const char*>(reinterpret_cast<std::uintptr_t>(start) & ~std::uintptr_t(63));
    __builtin_prefetch(pf.p, 0, 2);
    pf.p += 64;
    if (pf.p >= start + g.bytes) {
      pf.p = nullptr;
      ++pf.row;
    }
  }
}

// ------------------------------------------------------------------------------------------ packing
// Packs columns 0..n of kc rows (src, leading dimension ld) into W-wide slivers (kc, W) laid one after the other
// (the last one zero-padded): the layout of a transposed A block (W = MR) and of a B panel (W = NR). Groups of
// kG rows are read whole (contiguous, prefetch-friendly even when rows are far apart, as in a tall-K weight
// gradient) and scattered into the slivers, kG * W elements written contiguously per sliver. Copies only: the
// packed values (and so the results) are the same as with any other packing order.
template <typename T, int W>
void pack_row_groups(const T* src0, index_t ld, index_t kc, index_t n, T* dst0) {
  constexpr index_t kG = 8;
  const index_t nfull = n / W * W;
  for (index_t kb = 0; kb < kc; kb += kG) {
    const index_t kn = min_i(kG, kc - kb);
    const T* src = src0 + kb * ld;
    for (index_t js = 0; js < nfull; js += W) {
      T* dst = dst0 + js * kc + kb * W;
      for (index_t k = 0; k < kn; ++k) std::memcpy(dst + k * W, src + k * ld + js, sizeof(T) * W);
    }
    if (nfull < n) {
      const int nr = static_cast<int>(n - nfull);
      T* dst = dst0 + nfull * kc + kb * W;
      for (index_t k = 0; k < kn; ++k) {
        for (int j = 0; j < nr; ++j) dst[k * W + j] = src[k * ld + nfull + j];
        for (int j = nr; j < W; ++j) dst[k * W + j] = T(0);
      }
    }
  }
}

// op(A) = A (trans = false): row i of op(A) is contiguous in k.  op(A) = A^T: column i is strided.
template <typename T, int MR>
void pack_a_tmpl(bool trans, const T* A, index_t lda, index_t i0, index_t m, index_t k0, index_t kc, T* Ap) {
  if (trans) {
    // op(A)(i, k) = A[k*lda + i]: row k of A holds element k of every sliver (see pack_row_groups).
    pack_row_groups<T, MR>(A + k0 * lda + i0, lda, kc, m, Ap);
    return;
  }
  // op(A)(i, k) = A[i*lda + k]: interleave MR rows (MR contiguous read streams).
  for (index_t is = 0; is < m; is += MR) {
    const int mr = static_cast<int>(min_i(MR, m - is));
    T* dst = Ap + is * kc;  // (kc, MR)
    const T* src = A + (i0 + is) * lda + k0;
    if (mr == MR) {
      const T* r[MR];
      for (int i = 0; i < MR; ++i) r[i] = src + i * lda;
      for (index_t k = 0; k < kc; ++k) {
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) dst[k * MR + i] = r[i][k];
      }
    } else {
      for (index_t k = 0; k < kc; ++k) {
        for (int i = 0; i < mr; ++i) dst[k * MR + i] = src[i * lda + k];
        for (int i = mr; i < MR; ++i) dst[k * MR + i] = T(0);
      }
    }
  }
}

// op(B) = B (trans = false): each k row of a sliver is NR contiguous elements of B.
// op(B) = B^T: op(B)(k, j) = B[j*ldb + k], column j of op(B) is row j of B (contiguous in k).
// The transposed case is the one the linear layer's forward pass hits (Y = X W^T); ISA files may
// replace it with a SIMD transpose (Transposer::block), see pack_b_tmpl's TR parameter.
struct NoTransposer {
  static constexpr int kBlock = 0;
  template <typename T>
  static void block(const T*, index_t, T*, int) {}
};

template <typename T, int NR, class TR = NoTransposer>
void pack_b_tmpl(bool trans, const T* B, index_t ldb, index_t k0, index_t kc, index_t j0, index_t n, T* Bp) {
  if (!trans && n > NR) {
    // Several slivers: row k of the panel holds row k of every sliver (see pack_row_groups), instead of one
    // sliver at a time, which reads one NR-wide piece (one cache line for float) of each of kc rows ldb apart.
    pack_row_groups<T, NR>(B + k0 * ldb + j0, ldb, kc, n, Bp);
    return;
  }
  for (index_t js = 0; js < n; js += NR) {
    const int nr = static_cast<int>(min_i(NR, n - js));
    T* dst = Bp + js * kc;  // (kc, NR)
    if (!trans) {
      const T* src = B + k0 * ldb + (j0 + js);
      if (nr == NR) {
        for (index_t k = 0; k < kc; ++k) std::memcpy(dst + k * NR, src + k * ldb, sizeof(T) * NR);
      } else {
        for (index_t k = 0; k < kc; ++k) {
          for (int j = 0; j < nr; ++j) dst[k * NR + j] = src[k * ldb + j];
          for (int j = nr; j < NR; ++j) dst[k * NR + j] = T(0);
        }
      }
    } else {
      const T* src = B + (j0 + js) * ldb + k0;
      index_t k = 0;
      if constexpr (TR::kBlock > 0) {
        if (nr == NR) {
          // SIMD transpose of kBlock x kBlock tiles: NR/kBlock tiles side by side per k step.
          constexpr int W = TR::kBlock;
          static_assert(NR % W == 0, "NR must be a multiple of the transpose block");
          for (; k + W <= kc; k += W)
            for (int jb = 0; jb < NR; jb += W) TR::block(src + jb * ldb + k, ldb, dst + k * NR + jb, NR);
        }
      }
      if (nr == NR) {
        const T* r[NR];
        for (int j = 0; j < NR; ++j) r[j] = src + j * ldb;
        for (; k < kc; ++k) {
#pragma GCC unroll 32
          for (int j = 0; j < NR; ++j) dst[k * NR + j] = r[j][k];
        }
      } else {
        for (; k < kc; ++k) {
          for (int j = 0; j < nr; ++j) dst[k * NR + j] = src[j * ldb + k];
          for (int j = nr; j < NR; ++j) dst[k * NR + j] = T(0);
        }
      }
    }
  }
}

// ------------------------------------------------------------------------------------------ micro-kernel
// VT (vector traits) provides: T, V (register type), W (lanes), kMasked, zero(), set1(x), load(p),
// bcast(p), fma(a, b, c) = a*b + c, mul(a, b), store(p, v) and, when kMasked, Mask, mask(n) (first n
// lanes), maskload(p, m) (masked-off lanes read as 0, no fault), maskstore(p, m, v).
//
// C(0:m, 0:n) = alpha * sum_k Ap(:, k) Bp(k, :) + beta * C, with MR x (NV*W) accumulators in registers.
// Every C element goes through the same arithmetic whether its tile is full or partial, and the sum
// over k runs in one fixed order, so the result does not depend on how tiles are given to threads.
template <class VT, int MR_, int NV>
struct MicroKernel {
  using T = typename VT::T;
  using V = typename VT::V;
  static constexpr int MR = MR_;
  static constexpr int NR = NV * VT::W;

  static inline __attribute__((always_inline)) void run(index_t kc, const T* __restrict Ap,
                                                        const T* __restrict Bp, T alpha, T beta,
                                                        T* __restrict C, index_t ldc, int m, int n) {
    // Prefetch the C tile now so that the epilogue's loads/stores (read-for-ownership even when
    // beta == 0) hit L1 instead of paying one memory latency per row at the end: C rows are ldc apart
    // and, in large problems, C does not stay cached between K blocks.
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      if (i < m) {
        __builtin_prefetch(C + i * ldc, 1, 3);
        __builtin_prefetch(C + i * ldc + (n - 1), 1, 3);
      }
    }
    V acc[MR][NV];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = VT::zero();

    for (index_t k = 0; k < kc; ++k) {
      V b[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) b[v] = VT::load(Bp + v * VT::W);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const V a = VT::bcast(Ap + i);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[i][v] = VT::fma(a, b[v], acc[i][v]);
      }
      Ap += MR;
      Bp += NR;
    }
    store(acc, alpha, beta, C, ldc, m, n);
  }

  // Epilogue: r = alpha*acc (+ beta*C via one fma). Full-width rows use plain vector loads/stores;
  // partial tiles use masked ones (or a scalar loop on ISAs without masks), same arithmetic.
  static inline __attribute__((always_inline)) void store(V (&acc)[MR][NV], T alpha, T beta, T* C,
                                                          index_t ldc, int m, int n) {
    const V va = VT::set1(alpha);
    const V vb = VT::set1(beta);
    const bool use_beta = beta != T(0);
    if (n == NR) {
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        if (i < m) {
          T* c = C + i * ldc;
#pragma GCC unroll 4
          for (int v = 0; v < NV; ++v) {
            V r = VT::mul(va, acc[i][v]);
            if (use_beta) r = VT::fma(vb, VT::load(c + v * VT::W), r);
            VT::store(c + v * VT::W, r);
          }
        }
      }
    } else {
      store_partial(acc, va, vb, use_beta, C, ldc, m, n);
    }
  }

  template <class VV = VT>
  static inline __attribute__((always_inline)) typename std::enable_if<VV::kMasked>::type store_partial(
      V (&acc)[MR][NV], V va, V vb, bool use_beta, T* C, index_t ldc, int m, int n) {
    typename VT::Mask mk[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) mk[v] = VT::mask(n - v * VT::W);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      if (i < m) {
        T* c = C + i * ldc;
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) {
          if (n > v * VT::W) {
            V r = VT::mul(va, acc[i][v]);
            if (use_beta) r = VT::fma(vb, VT::maskload(c + v * VT::W, mk[v]), r);
            VT::maskstore(c + v * VT::W, mk[v], r);
          }
        }
      }
    }
  }

  template <class VV = VT>
  static inline __attribute__((always_inline)) typename std::enable_if<!VV::kMasked>::type store_partial(
      V (&acc)[MR][NV], V va, V vb, bool use_beta, T* C, index_t ldc, int m, int n) {
    alignas(64) T tmp[NR];
    alignas(64) T old[NR];
    for (int i = 0; i < m; ++i) {
      T* c = C + i * ldc;
      for (int j = 0; j < NR; ++j) old[j] = j < n && use_beta ? c[j] : T(0);
      for (int v = 0; v < NV; ++v) {
        V r = VT::mul(va, acc[i][v]);
        if (use_beta) r = VT::fma(vb, VT::load(old + v * VT::W), r);
        VT::store(tmp + v * VT::W, r);
      }
      for (int j = 0; j < n; ++j) c[j] = tmp[j];
    }
  }
};

// ------------------------------------------------------------------------------------------ macro-kernels
// jr (NR slivers of B, outer: the B sliver stays in L1) x ir (MR slivers of A, inner: A block in L2).
// PF: advance the prefetch stream after each micro-tile (a separate instantiation, so that the loop
// without prefetching stays as it was).
template <class UK, bool PF>
inline void macro_loop(index_t m, index_t n, index_t kc, const typename UK::T* Ap, const typename UK::T* Bp,
                       typename UK::T alpha, typename UK::T beta, typename UK::T* C, index_t ldc, Prefetch* pf) {
  constexpr int MR = UK::MR, NR = UK::NR;
  for (index_t jr = 0; jr < n; jr += NR) {
    const int nr = static_cast<int>(min_i(NR, n - jr));
    const typename UK::T* b = Bp + jr * kc;
    for (index_t ir = 0; ir < m; ir += MR) {
      const int mr = static_cast<int>(min_i(MR, m - ir));
      UK::run(kc, Ap + ir * kc, b, alpha, beta, C + ir * ldc + jr, ldc, mr, nr);
      if constexpr (PF) prefetch_tick(*pf);
    }
  }
}

template <class UK>
void macro_tmpl(index_t m, index_t n, index_t kc, const typename UK::T* Ap, const typename UK::T* Bp,
                typename UK::T alpha, typename UK::T beta, typename UK::T* C, index_t ldc, Prefetch* pf) {
  if (pf)
    macro_loop<UK, true>(m, n, kc, Ap, Bp, alpha, beta, C, ldc, pf);
  else
    macro_loop<UK, false>(m, n, kc, Ap, Bp, alpha, beta, C, ldc, nullptr);
}

template <class UK, void (*PackB)(bool, const typename UK::T*, index_t, index_t, index_t, index_t, index_t,
                                  typename UK::T*), bool PF>
inline void macro_packb_loop(bool trans_b, const typename UK::T* B, index_t ldb, index_t k0, index_t j0, index_t m,
                             index_t n, index_t kc, const typename UK::T* Ap, typename UK::T* Bbuf,
                             typename UK::T alpha, typename UK::T beta, typename UK::T* C, index_t ldc, Prefetch* pf) {
  constexpr int MR = UK::MR, NR = UK::NR;
  for (index_t jr = 0; jr < n; jr += NR) {
    const index_t nr = min_i(NR, n - jr);
    PackB(trans_b, B, ldb, k0, kc, j0 + jr, nr, Bbuf);
    for (index_t ir = 0; ir < m; ir += MR) {
      const int mr = static_cast<int>(min_i(MR, m - ir));
      UK::run(kc, Ap + ir * kc, Bbuf, alpha, beta, C + ir * ldc + jr, ldc, mr, static_cast<int>(nr));
      if constexpr (PF) prefetch_tick(*pf);
    }
  }
}

template <class UK, void (*PackB)(bool, const typename UK::T*, index_t, index_t, index_t, index_t, index_t,
                                  typename UK::T*)>
void macro_packb_tmpl(bool trans_b, const typename UK::T* B, index_t ldb, index_t k0, index_t j0, index_t m,
                      index_t n, index_t kc, const typename UK::T* Ap, typename UK::T* Bbuf,
                      typename UK::T alpha, typename UK::T beta, typename UK::T* C, index_t ldc, Prefetch* pf) {
  if (pf)
    macro_packb_loop<UK, PackB, true>(trans_b, B, ldb, k0, j0, m, n, kc, Ap, Bbuf, alpha, beta, C, ldc, pf);
  else
    macro_packb_loop<UK, PackB, false>(trans_b, B, ldb, k0, j0, m, n, kc, Ap, Bbuf, alpha, beta, C, ldc, nullptr);
}

// Builds the KernelSet of one ISA from its micro-kernel, block sizes and B transposer. constexpr, so
// the per-ISA tables are constant-initialised: no code compiled with -mavx512f runs at load time.
template <class UK, class TR>
constexpr KernelSet<typename UK::T> make_kernel_set(index_t mc, index_t kc, index_t nc) {
  using T = typename UK::T;
  KernelSet<T> ks{};
  ks.mr = UK::MR;
  ks.nr = UK::NR;
  ks.mc = mc;
  ks.kc = kc;
  ks.nc = nc;
  ks.pack_a = &pack_a_tmpl<T, UK::MR>;
  ks.pack_b = &pack_b_tmpl<T, UK::NR, TR>;
  ks.macro = &macro_tmpl<UK>;
  ks.macro_packb = &macro_packb_tmpl<UK, &pack_b_tmpl<T, UK::NR, TR>>;
  return ks;
}

}  // namespace
}  // namespace gemm_detail
}  // namespace nd
