// Fully connected layer, PyTorch layout: y = x @ w^T + b (+ r, an optional residual added in the same pass).
// Dimensions: N rows (batch * steps), I input features, O output features.
//   x (N,I)  w (O,I)  b (O,)  r (N,O)  y (N,O)
//
// Two paths, the same bits:
// - float with the AVX2 GEMM in use ("fused"): op(B) (w^T for y, w for dx = dy w) is packed once per call
//   into 16-column slivers (K, 16); x is read in place (no packing of the large operand), 6 rows x 16
//   columns of accumulators per tile, and the bias (and residual) are added to the tile in registers before
//   its only store. The former separate bias pass (read and write all of y) cost 5-20% of the product at
//   the Transformer's shapes (K = d_model = 64..128; bench/RESULTS.md), the caller's residual add (numpy:
//   read two, write one) as much again. Used while the packed op(B) fits in L2 (kFusedMaxB), else the
//   general path.
//   Other tile epilogues: times a gate (the gated backward's dx) and GELU / GELU' of the tile (the feed-forward
//   block's first linear, linear_forward_gelu: gelu_simd.h, the elementwise kernel's own code).
// - otherwise: nd::gemm, then the bias and the residual in separate vectorised passes.
// Bits: the fused tile repeats the GEMM's arithmetic exactly: the same K blocks (gemm.cpp: balanced blocks
// of at most kc = 256, rounded to 8), within a block fma in k order from zero, blocks summed in order
// (the GEMM's beta = 1 epilogue fma(1, C, acc) is C + acc), then + b, then + r (as y + b and r + y after
// the GEMM). So the fused path, the general path and the old "gemm, bias pass, numpy add" agree bitwise
// wherever the GEMM runs its AVX2 kernels (tests check it).
#include "linear.h"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "gelu_simd.h"
#include "gemm.h"
#include "kernels.h"
#include "norm.h"

#if defined(ND_X86) && ND_X86 && defined(__x86_64__) && defined(__GNUC__)
#define ND_LIN_X86 1
#include <immintrin.h>
#else
#define ND_LIN_X86 0
#endif

namespace nd {

namespace {

// y[n,:] += b for every row. Rows split across threads when large.
template <typename T>
void add_bias_rows(T* y,        // (N,O)
                   const T* b,  // (O,)
                   index_t N, index_t O) {
  detail::parallel_ranges(N, std::max<index_t>(1, (index_t(1) << 16) / std::max<index_t>(O, 1)),
                          [&](index_t n0, index_t n1) {
                            for (index_t n = n0; n < n1; ++n) {
                              T* row = y + n * O;
                              for (index_t o = 0; o < O; ++o) row[o] += b[o];
                            }
                          });
}

// y = r + y elementwise (the residual, added after the bias as the caller's r + y did).
template <typename T>
void add_rows(T* y, const T* r, index_t n) {
  detail::parallel_ranges(n, index_t(1) << 16, [&](index_t a, index_t e) {
    for (index_t i = a; i < e; ++i) y[i] = r[i] + y[i];
  });
}

// db[o] += sum_n dy[n,o], accumulated in double per column; columns split across threads, each
// column summed in row order (deterministic for any thread count).
template <typename T>
void bias_grad(T* db,        // (O,)
               const T* dy,  // (N,O)
               index_t N, index_t O) {
  constexpr index_t kCols = 256;  // column block: the double accumulators stay in L1
  index_t nblocks = (O + kCols - 1) / kCols;
  auto block = [&](index_t ob) {
    index_t o0 = ob * kCols, o1 = std::min(O, o0 + kCols);
    double acc[kCols];
    for (index_t o = o0; o < o1; ++o) acc[o - o0] = 0.0;
    for (index_t n = 0; n < N; ++n) {
      const T* row = dy + n * O;
      for (index_t o = o0; o < o1; ++o) acc[o - o0] += static_cast<double>(row[o]);
    }
    for (index_t o = o0; o < o1; ++o) db[o] = static_cast<T>(static_cast<double>(db[o]) + acc[o - o0]);
  };
#ifdef ND_OPENMP
  int nt = num_threads();
  if (nt > 1 && nblocks > 1 && N * O >= (index_t(1) << 16)) {
    int parts = static_cast<int>(std::min<index_t>(nt, nblocks));
#pragma omp parallel for schedule(static) num_threads(parts)
    for (index_t ob = 0; ob < nblocks; ++ob) block(ob);
    return;
  }
#endif
  for (index_t ob = 0; ob < nblocks; ++ob) block(ob);
}

// ------------------------------------------------------------------------------------------ fused path
#if ND_LIN_X86
#define ND_LIN_AVX2 __attribute__((target("avx2,fma")))
#define ND_LIN_AI inline __attribute__((always_inline, target("avx2,fma")))

constexpr int kMR = 6;                      // rows per tile
constexpr int kNR = 16;                     // columns per tile / sliver (2 x 8 floats)
constexpr index_t kGemmKc = 256;            // the AVX2 GEMM's K block (gemm_avx2.cpp), see the note above
constexpr index_t kFusedMaxB = 64 * 1024;   // packed op(B) floats (256 KiB): stays in the 512 KiB L2

// The GEMM's K block for this K (gemm_impl: n_kb balanced blocks, a multiple of 8 when split).
inline index_t gemm_kblock(index_t K) {
  const index_t n_kb = (K + kGemmKc - 1) / kGemmKc;
  return n_kb == 1 ? K : ((K + n_kb - 1) / n_kb + 7) / 8 * 8;
}

// dst[k * 16 + j] = W[j * ldw + k] for j < 8, k < 8: one 8 x 8 block of the transposed pack in registers
// (unpack / shuffle / 128-bit permute), instead of 64 scalar loads 4 * ldw bytes apart.
ND_LIN_AVX2 void transpose8x8_to_sliver(float* dst, const float* W, index_t ldw) {
  __m256 r0 = _mm256_loadu_ps(W), r1 = _mm256_loadu_ps(W + ldw), r2 = _mm256_loadu_ps(W + 2 * ldw),
         r3 = _mm256_loadu_ps(W + 3 * ldw), r4 = _mm256_loadu_ps(W + 4 * ldw), r5 = _mm256_loadu_ps(W + 5 * ldw),
         r6 = _mm256_loadu_ps(W + 6 * ldw), r7 = _mm256_loadu_ps(W + 7 * ldw);
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
               t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
               t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE),
               s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE),
               s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE),
               s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r0 = _mm256_permute2f128_ps(s0, s4, 0x20);
  r1 = _mm256_permute2f128_ps(s1, s5, 0x20);
  r2 = _mm256_permute2f128_ps(s2, s6, 0x20);
  r3 = _mm256_permute2f128_ps(s3, s7, 0x20);
  r4 = _mm256_permute2f128_ps(s0, s4, 0x31);
  r5 = _mm256_permute2f128_ps(s1, s5, 0x31);
  r6 = _mm256_permute2f128_ps(s2, s6, 0x31);
  r7 = _mm256_permute2f128_ps(s3, s7, 0x31);
  _mm256_storeu_ps(dst + 0 * kNR, r0);
  _mm256_storeu_ps(dst + 1 * kNR, r1);
  _mm256_storeu_ps(dst + 2 * kNR, r2);
  _mm256_storeu_ps(dst + 3 * kNR, r3);
  _mm256_storeu_ps(dst + 4 * kNR, r4);
  _mm256_storeu_ps(dst + 5 * kNR, r5);
  _mm256_storeu_ps(dst + 6 * kNR, r6);
  _mm256_storeu_ps(dst + 7 * kNR, r7);
}

// op(B)(K, N) -> slivers (ceil(N/16), K, 16), zero-padded columns. trans: op(B)(k, j) = W[j*ldw + k]
// (the forward's w^T, w (N, K)); else op(B)(k, j) = W[k*ldw + j] (dx = dy w, w (K, N)). The transposed pack
// of whole slivers goes by 8 x 8 register transposes (a pure copy: the same values); only the last K % 8
// columns and a partial last sliver are scalar.
ND_LIN_AVX2 void pack_b(float* Bp, const float* W, index_t ldw, bool trans, index_t K, index_t N) {
  for (index_t j0 = 0; j0 < N; j0 += kNR) {
    const index_t nr = std::min<index_t>(kNR, N - j0);
    float* dst = Bp + j0 * K;  // (K, 16)
    if (trans && nr == kNR) {
      const index_t k8 = K / 8 * 8;
      for (index_t k = 0; k < k8; k += 8) {
        transpose8x8_to_sliver(dst + k * kNR, W + j0 * ldw + k, ldw);
        transpose8x8_to_sliver(dst + k * kNR + 8, W + (j0 + 8) * ldw + k, ldw);
      }
      for (index_t k = k8; k < K; ++k)
        for (index_t j = 0; j < kNR; ++j) dst[k * kNR + j] = W[(j0 + j) * ldw + k];
    } else if (trans) {
      for (index_t k = 0; k < K; ++k) {
        for (index_t j = 0; j < nr; ++j) dst[k * kNR + j] = W[(j0 + j) * ldw + k];
        for (index_t j = nr; j < kNR; ++j) dst[k * kNR + j] = 0.0f;
      }
    } else {
      for (index_t k = 0; k < K; ++k) {
        std::memcpy(dst + k * kNR, W + k * ldw + j0, sizeof(float) * nr);
        for (index_t j = nr; j < kNR; ++j) dst[k * kNR + j] = 0.0f;
      }
    }
  }
}

ND_LIN_AI __m256i lane_mask(index_t n) {  // lanes [0, n) set
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Epilogues of a tile: what happens to A @ sliver (+ bias) before the only store.
enum Epi : int {
  kEpAdd = 0,       // + R when R is given (the residual)
  kEpMul = 1,       // * R (the gate of the gated backward); no bias
  kEpGelu = 2,      // Y = GELU(.)  (the feed-forward block's first linear with its activation)
  kEpGeluGrad = 3,  // Y = GELU(.), D = GELU'(.)  (the same for training: the backward's gate)
};

// Y(0:MR, 0:n) = A(0:MR, 0:K) @ sliver (K, 16) [+ bias], then the epilogue EP; A rows lda apart, read in
// place. R may be Y itself (each element is read before the same tile stores it). D (kEpGeluGrad): ldy apart.
template <int MR, int EP>
ND_LIN_AI void tile(index_t K, index_t kcb, const float* A, index_t lda, const float* Bs, const float* bias,
                    const float* R, index_t ldr, float* Y, index_t ldy, index_t n, float* D = nullptr) {
  __m256 tot[MR][2];
  for (index_t k0 = 0; k0 < K; k0 += kcb) {
    const index_t k1 = std::min(K, k0 + kcb);
    __m256 acc[MR][2];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (index_t k = k0; k < k1; ++k) {
      const __m256 b0 = _mm256_loadu_ps(Bs + k * kNR), b1 = _mm256_loadu_ps(Bs + k * kNR + 8);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const __m256 a = _mm256_broadcast_ss(A + r * lda + k);
        acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
      }
    }
    if (k0 == 0) {
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        tot[r][0] = acc[r][0];
        tot[r][1] = acc[r][1];
      }
    } else {
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        tot[r][0] = _mm256_add_ps(tot[r][0], acc[r][0]);
        tot[r][1] = _mm256_add_ps(tot[r][1], acc[r][1]);
      }
    }
  }
  if (bias) {
    const __m256 c0 = _mm256_loadu_ps(bias), c1 = _mm256_loadu_ps(bias + 8);  // padded to 16
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      tot[r][0] = _mm256_add_ps(tot[r][0], c0);
      tot[r][1] = _mm256_add_ps(tot[r][1], c1);
    }
  }
  if (EP == kEpGelu || EP == kEpGeluGrad) {
    // GELU of the tile in registers (gelu_simd.h: the elementwise kernel's own code, so the same bits), one
    // row at a time (its two vectors): the tile's 12 accumulators are dead by now, the GELU temporaries fit.
    const __m256i m0 = lane_mask(n), m1 = lane_mask(n - 8);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 2
      for (int c = 0; c < 2; ++c) {
        __m256 g, d;
        if (EP == kEpGeluGrad) {
          gelu_simd::V8 gv;
          d = reinterpret_cast<__m256>(gelu_simd::gelu_grad8<true>(reinterpret_cast<gelu_simd::V8>(tot[r][c]), gv));
          g = reinterpret_cast<__m256>(gv);
        } else {
          g = reinterpret_cast<__m256>(gelu_simd::gelu8<true>(reinterpret_cast<gelu_simd::V8>(tot[r][c])));
        }
        if (n == kNR) {
          _mm256_storeu_ps(Y + r * ldy + 8 * c, g);
          if (EP == kEpGeluGrad) _mm256_storeu_ps(D + r * ldy + 8 * c, d);
        } else {
          _mm256_maskstore_ps(Y + r * ldy + 8 * c, c ? m1 : m0, g);
          if (EP == kEpGeluGrad) _mm256_maskstore_ps(D + r * ldy + 8 * c, c ? m1 : m0, d);
        }
      }
    }
    return;
  }
  constexpr bool MUL = EP == kEpMul;
  if (n == kNR) {
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      if (MUL) {
        tot[r][0] = _mm256_mul_ps(tot[r][0], _mm256_loadu_ps(R + r * ldr));
        tot[r][1] = _mm256_mul_ps(tot[r][1], _mm256_loadu_ps(R + r * ldr + 8));
      } else if (R) {
        tot[r][0] = _mm256_add_ps(_mm256_loadu_ps(R + r * ldr), tot[r][0]);
        tot[r][1] = _mm256_add_ps(_mm256_loadu_ps(R + r * ldr + 8), tot[r][1]);
      }
      _mm256_storeu_ps(Y + r * ldy, tot[r][0]);
      _mm256_storeu_ps(Y + r * ldy + 8, tot[r][1]);
    }
  } else {
    const __m256i m0 = lane_mask(n), m1 = lane_mask(n - 8);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      if (MUL) {
        tot[r][0] = _mm256_mul_ps(tot[r][0], _mm256_maskload_ps(R + r * ldr, m0));
        tot[r][1] = _mm256_mul_ps(tot[r][1], _mm256_maskload_ps(R + r * ldr + 8, m1));
      } else if (R) {
        tot[r][0] = _mm256_add_ps(_mm256_maskload_ps(R + r * ldr, m0), tot[r][0]);
        tot[r][1] = _mm256_add_ps(_mm256_maskload_ps(R + r * ldr + 8, m1), tot[r][1]);
      }
      _mm256_maskstore_ps(Y + r * ldy, m0, tot[r][0]);
      _mm256_maskstore_ps(Y + r * ldy + 8, m1, tot[r][1]);
    }
  }
}

// Software prefetch of the next row panel's output / residual / left-operand lines pays off once the operands
// no longer sit in L2 (thread CPU time, same build, prefetch on / off: the out_proj shape (M, 128, 128) with
// its residual 0.73-0.75x at M = 6144 and 24576, in_proj 0.94-0.97x, the second feed-forward linear 0.80-0.98x;
// within the noise or up to ~10% slower at M = 768, where everything is cached): on from 2 MiB of operands.
inline bool prefetch_ok(index_t M, index_t K, index_t N) {
  return double(M) * double(K + N) * sizeof(float) >= double(2 << 20);
}

// Rows [i0, i1) of Y (N_, ldy) = A @ op(B) [+ bias] [+ R] (EP: the tile epilogue), all slivers. pf: prefetch
// the next row panel (see prefetch_ok).
template <int EP>
ND_LIN_AVX2 void fused_rows(index_t i0, index_t i1, index_t K, index_t N, const float* A, index_t lda,
                            const float* Bp, const float* bias, const float* R, index_t ldr, float* Y,
                            index_t ldy, bool pf, float* D = nullptr) {
  const index_t kcb = gemm_kblock(K);
  const index_t ns = (N + kNR - 1) / kNR;
  const index_t acols = ((K + ns - 1) / ns + 15) / 16 * 16;  // columns of the next panel's A per sliver
  for (index_t i = i0; i < i1; i += kMR) {
    const int mr = static_cast<int>(std::min<index_t>(kMR, i1 - i));
    const float* a = A + i * lda;
    const float* r = R ? R + i * ldr : nullptr;
    float* y = Y + i * ldy;
    float* dr = D ? D + i * ldy : nullptr;
    const int mnext = static_cast<int>(std::min<index_t>(kMR, std::max<index_t>(0, i1 - i - kMR)));
    for (index_t j0 = 0; j0 < N; j0 += kNR) {
      const index_t n = std::min<index_t>(kNR, N - j0);
      const float* bs = Bp + j0 * K;
      const float* bj = bias ? bias + j0 : nullptr;
      const float* rj = r ? r + j0 : nullptr;
      float* dd = dr ? dr + j0 : nullptr;
      if (pf) {
        // The next row panel's lines of this sliver (output, residual / gate, GELU' output) and a share of
        // its left operand, one panel (ns tiles) ahead: at small K a tile's ~100-500 ns of FMAs could not
        // hide the misses of its 6 output rows (write-allocate) and 6 residual rows when they come from DRAM.
        const index_t c0 = (j0 / kNR) * acols, c1 = std::min(K, c0 + acols);
        for (int rr = 0; rr < mnext; ++rr) {
          const index_t row = i + kMR + rr;
          __builtin_prefetch(Y + row * ldy + j0, 1);
          __builtin_prefetch(Y + row * ldy + j0 + n - 1, 1);
          if (R) {
            __builtin_prefetch(R + row * ldr + j0);
            __builtin_prefetch(R + row * ldr + j0 + n - 1);
          }
          if (D) {
            __builtin_prefetch(D + row * ldy + j0, 1);
            __builtin_prefetch(D + row * ldy + j0 + n - 1, 1);
          }
          for (index_t c = c0; c < c1; c += 16) __builtin_prefetch(A + row * lda + c);
        }
      }
      switch (mr) {
        case 6: tile<6, EP>(K, kcb, a, lda, bs, bj, rj, ldr, y + j0, ldy, n, dd); break;
        case 5: tile<5, EP>(K, kcb, a, lda, bs, bj, rj, ldr, y + j0, ldy, n, dd); break;
        case 4: tile<4, EP>(K, kcb, a, lda, bs, bj, rj, ldr, y + j0, ldy, n, dd); break;
        case 3: tile<3, EP>(K, kcb, a, lda, bs, bj, rj, ldr, y + j0, ldy, n, dd); break;
        case 2: tile<2, EP>(K, kcb, a, lda, bs, bj, rj, ldr, y + j0, ldy, n, dd); break;
        default: tile<1, EP>(K, kcb, a, lda, bs, bj, rj, ldr, y + j0, ldy, n, dd); break;
      }
    }
  }
}

thread_local std::vector<float> tls_bp;    // packed op(B), grow-only
thread_local std::vector<float> tls_bias;  // bias padded to whole slivers

// op(B) (from W as in pack_b) packed into tls_bp -> bpk; the bias (or nullptr) padded with zeros to whole
// slivers into tls_bias -> bpad (nullptr without a bias).
void pack_operands(const float* W, bool trans, const float* bias, index_t K, index_t N, const float*& bpk,
                   const float*& bpad) {
  const index_t np = (N + kNR - 1) / kNR * kNR;
  std::vector<float>& bp = tls_bp;
  if (bp.size() < std::size_t(K * np)) bp.resize(std::size_t(K * np));
  pack_b(bp.data(), W, trans ? K : N, trans, K, N);
  bpad = nullptr;
  if (bias) {
    std::vector<float>& bb = tls_bias;
    if (bb.size() < std::size_t(np)) bb.resize(std::size_t(np));
    std::memcpy(bb.data(), bias, sizeof(float) * N);
    for (index_t j = N; j < np; ++j) bb[j] = 0.0f;
    bpad = bb.data();
  }
  bpk = bp.data();
}

bool fused_ok(index_t K, index_t N) {
  const index_t np = (N + kNR - 1) / kNR * kNR;
  return K > 0 && N > 0 && K * np <= kFusedMaxB && simd_avx2_enabled() && std::strcmp(gemm_isa(), "avx2") == 0;
}

thread_local std::vector<float> tls_gelu;  // GELU of a few rows of the input (gelu_a), or of a row block

constexpr index_t kGeluRows = 12;  // rows of GELU(A) computed at a time into an L1 buffer (gelu_a)

// Y (M, N) = A (M, K) @ op(B) [+ bias] [+ R] (mul: times R); op(B) from W as in pack_b. gelu_a: the left
// operand is GELU(A), evaluated kGeluRows rows at a time into a per-thread buffer right before its tiles
// run (GELU(A) is never stored). Caller checked fused_ok.
// keep_g / keep_d (gelu_a only, both or neither): GELU(A) and GELU'(A) are written there (M, K) instead of
// the per-thread buffer, and the tiles read GELU(A) from keep_g.
void fused_product(float* Y, const float* A, const float* W, bool trans, const float* bias, const float* R,
                   bool mul, bool gelu_a, index_t M, index_t K, index_t N, float* keep_g = nullptr,
                   float* keep_d = nullptr) {
  const index_t np = (N + kNR - 1) / kNR * kNR;
  const float *bpk, *bpad;
  pack_operands(W, trans, bias, K, N, bpk, bpad);
  const bool pf = prefetch_ok(M, K, N);
  // threads take whole 6-row tiles; ~2 MFLOP per thread at least
  const index_t tiles = (M + kMR - 1) / kMR;
  const index_t min_par = std::max<index_t>(2, index_t(4.0e6 / (2.0 * kMR * double(K) * double(np))) + 1);
  detail::parallel_ranges(tiles, min_par, [&](index_t t0, index_t t1) {
    const index_t i0 = t0 * kMR, i1 = std::min(M, t1 * kMR);
    if (gelu_a && keep_g) {
      for (index_t i = i0; i < i1; i += kGeluRows) {
        const index_t m = std::min(kGeluRows, i1 - i);
        ff_gelu_forward_grad(keep_g + i * K, keep_d + i * K, A + i * K, m * K);
        fused_rows<kEpAdd>(0, m, K, N, keep_g + i * K, K, bpk, bpad, R ? R + i * N : nullptr, N, Y + i * N, N, pf);
      }
    } else if (gelu_a) {
      std::vector<float>& g = tls_gelu;
      if (g.size() < std::size_t(kGeluRows * K)) g.resize(std::size_t(kGeluRows * K));
      for (index_t i = i0; i < i1; i += kGeluRows) {
        const index_t m = std::min(kGeluRows, i1 - i);
        ff_gelu_forward(g.data(), A + i * K, m * K);
        fused_rows<kEpAdd>(0, m, K, N, g.data(), K, bpk, bpad, R ? R + i * N : nullptr, N, Y + i * N, N, pf);
      }
    } else if (mul) {
      fused_rows<kEpMul>(i0, i1, K, N, A, K, bpk, nullptr, R, N, Y, N, pf);
    } else {
      fused_rows<kEpAdd>(i0, i1, K, N, A, K, bpk, bpad, R, N, Y, N, pf);
    }
  });
}

// G (M, N) = GELU(A (M, K) @ W^T + bias) and, when Dg is given, Dg = GELU'(.) (W (N, K)): the feed-forward
// block's first linear with its activation in the tile epilogue (the pre-activation is never stored).
// Caller checked fused_ok(K, N).
void fused_product_gelu_out(float* G, float* Dg, const float* A, const float* W, const float* bias, index_t M,
                            index_t K, index_t N) {
  const index_t np = (N + kNR - 1) / kNR * kNR;
  const float *bpk, *bpad;
  pack_operands(W, /*trans=*/true, bias, K, N, bpk, bpad);
  const bool pf = prefetch_ok(M, K, N);
  const index_t tiles = (M + kMR - 1) / kMR;
  const index_t min_par = std::max<index_t>(2, index_t(4.0e6 / (2.0 * kMR * double(K) * double(np))) + 1);
  detail::parallel_ranges(tiles, min_par, [&](index_t t0, index_t t1) {
    const index_t i0 = t0 * kMR, i1 = std::min(M, t1 * kMR);
    if (Dg)
      fused_rows<kEpGeluGrad>(i0, i1, K, N, A, K, bpk, bpad, nullptr, N, G, N, pf, Dg);
    else
      fused_rows<kEpGelu>(i0, i1, K, N, A, K, bpk, bpad, nullptr, N, G, N, pf);
  });
}
#endif  // ND_LIN_X86

template <typename T>
bool try_fused(T*, const T*, const T*, bool, const T*, const T*, bool, index_t, index_t, index_t) {
  return false;
}
#if ND_LIN_X86
template <>
bool try_fused<float>(float* Y, const float* A, const float* W, bool trans, const float* bias, const float* R,
                      bool mul, index_t M, index_t K, index_t N) {
  if (!fused_ok(K, N)) return false;
  fused_product(Y, A, W, trans, bias, R, mul, false, M, K, N);
  return true;
}
#endif

// Backward in one pass over dy (float, fused path): row blocks of the dW GEMM's own K block (gemm_kblock(N)
// rows); per block, while the block of dy is in L2: dx rows = dy_blk w (* gate), dw += dy_blk^T x_blk (one
// GEMM call per block with beta = 1: the big call's K blocks are exactly these, each added to C in turn, so
// the same bits), db's double column sums continued in row order (bias_grad's order). dy was read from
// memory three times (the dx GEMM, the dW GEMM, bias_grad); now once.
// gelu_x: the layer's input is GELU(x) (x = z, the pre-activation): per block GELU(z) and GELU'(z) are
// computed into two block buffers (ff_gelu_forward_grad), dw uses GELU(z_blk), dx = (dy_blk w) * GELU'(z_blk)
// is dz: neither GELU(z) nor GELU'(z) exists as a full (N, I) array.
template <typename T>
bool try_fused_backward(T*, T*, T*, const T*, const T*, const T*, bool, bool, index_t, index_t, index_t) {
  return false;
}
#if ND_LIN_X86
template <>
bool try_fused_backward<float>(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                               bool gated, bool gelu_x, index_t N, index_t I, index_t O) {
  if (N <= 0 || I <= 0 || O <= 0 || !fused_ok(O, I)) return false;
  const index_t ip = (I + kNR - 1) / kNR * kNR;
  std::vector<float>& bp = tls_bp;
  if (dx) {
    if (bp.size() < std::size_t(O * ip)) bp.resize(std::size_t(O * ip));
    pack_b(bp.data(), w, I, /*trans=*/false, O, I);
  }
  const float* bpk = bp.data();
  const bool pf = prefetch_ok(N, O, I);
  std::vector<double> acc(db ? std::size_t(O) : 0, 0.0);
  const index_t kcb = gemm_kblock(N);
  const index_t min_par = std::max<index_t>(2, index_t(4.0e6 / (2.0 * kMR * double(O) * double(ip))) + 1);
  float *gb = nullptr, *gdb = nullptr;  // (kcb, I) GELU(z_blk), GELU'(z_blk)
  if (gelu_x) {
    std::vector<float>& g = tls_gelu;
    if (g.size() < std::size_t(2 * kcb * I)) g.resize(std::size_t(2 * kcb * I));
    gb = g.data();
    gdb = gb + kcb * I;
  }
  for (index_t n0 = 0; n0 < N; n0 += kcb) {
    const index_t nb = std::min(kcb, N - n0);
    const float* dyb = dy + n0 * O;
    const float* xb = x + n0 * I;
    if (gelu_x) {
      ff_gelu_forward_grad(gb, gdb, xb, nb * I);
      xb = gb;
    }
    if (dx) {
      float* dxb = dx + n0 * I;
      const float* gate = gelu_x ? gdb : dxb;
      const index_t tiles = (nb + kMR - 1) / kMR;
      detail::parallel_ranges(tiles, min_par, [&](index_t t0, index_t t1) {
        const index_t r0 = t0 * kMR, r1 = std::min(nb, t1 * kMR);
        if (gated || gelu_x)
          fused_rows<kEpMul>(r0, r1, O, I, dyb, O, bpk, nullptr, gate, I, dxb, I, pf);
        else
          fused_rows<kEpAdd>(r0, r1, O, I, dyb, O, bpk, nullptr, nullptr, I, dxb, I, pf);
      });
    }
    gemm<float>(true, false, O, I, nb, 1.0f, dyb, O, xb, I, 1.0f, dw, I);
    if (db) {
      double* a = acc.data();
      for (index_t n = 0; n < nb; ++n) {
        const float* row = dyb + n * O;
        for (index_t o = 0; o < O; ++o) a[o] += static_cast<double>(row[o]);
      }
    }
  }
  if (db)
    for (index_t o = 0; o < O; ++o) db[o] = static_cast<float>(static_cast<double>(db[o]) + acc[std::size_t(o)]);
  return true;
}
#endif

}  // namespace

template <typename T>
void linear_forward_residual(T* y,         // (N,O)
                             const T* x,   // (N,I)
                             const T* w,   // (O,I)
                             const T* b,   // (O,) or nullptr
                             const T* r,   // (N,O) or nullptr
                             index_t N, index_t I, index_t O) {
  ND_CHECK(N >= 0 && I >= 0 && O >= 0, "linear_forward: negative size");
  if (N == 0 || O == 0) return;
  if (I > 0 && try_fused<T>(y, x, w, /*trans=*/true, b, r, false, N, I, O)) return;
  if (I == 0) {
    for (index_t k = 0; k < N * O; ++k) y[k] = T(0);
  } else {
    // y (N,O) = x (N,I) @ w^T (I,O)
    gemm<T>(false, true, N, O, I, T(1), x, I, w, I, T(0), y, O);
  }
  if (b) add_bias_rows(y, b, N, O);
  if (r) add_rows(y, r, N * O);
}

template <typename T>
void linear_forward(T* y, const T* x, const T* w, const T* b, index_t N, index_t I, index_t O) {
  linear_forward_residual<T>(y, x, w, b, nullptr, N, I, O);
}

template <typename T>
void linear_backward(T* dx,        // (N,I) or nullptr
                     T* dw,        // (O,I)
                     T* db,        // (O,) or nullptr
                     const T* dy,  // (N,O)
                     const T* x,   // (N,I)
                     const T* w,   // (O,I)
                     index_t N, index_t I, index_t O) {
  ND_CHECK(N >= 0 && I >= 0 && O >= 0, "linear_backward: negative size");
  // One pass over dy when dy is the wider operand (in_proj, linear1: O = 3 d, 4 d > I = d), where it saves the
  // most re-reading; at O <= I the two variants were within the noise of a same-build A/B (bench/RESULTS.md),
  // so those keep the three passes.
  if (O > I && try_fused_backward<T>(dx, dw, db, dy, x, w, false, false, N, I, O)) return;
  if (dx && N > 0 && I > 0) {
    if (O == 0) {
      for (index_t k = 0; k < N * I; ++k) dx[k] = T(0);
    } else if (!try_fused<T>(dx, dy, w, /*trans=*/false, nullptr, nullptr, false, N, O, I)) {
      // dx (N,I) = dy (N,O) @ w (O,I)
      gemm<T>(false, false, N, I, O, T(1), dy, O, w, I, T(0), dx, I);
    }
  }
  if (N > 0 && O > 0 && I > 0) {
    // dw (O,I) += dy^T (O,N) @ x (N,I); dy is stored (N,O), so op(A) = A^T with lda = O
    gemm<T>(true, false, O, I, N, T(1), dy, O, x, I, T(1), dw, I);
  }
  if (db && N > 0 && O > 0) bias_grad(db, dy, N, O);
}

template <typename T>
void linear_backward_gated(T* dx,        // (N,I) in: the gate; out: (dy @ w) * gate
                           T* dw,        // (O,I)
                           T* db,        // (O,) or nullptr
                           const T* dy,  // (N,O)
                           const T* x,   // (N,I)
                           const T* w,   // (O,I)
                           index_t N, index_t I, index_t O) {
  ND_CHECK(N >= 0 && I >= 0 && O >= 0, "linear_backward_gated: negative size");
  if (N == 0 || I == 0) return;
  if (O == 0) {
    for (index_t k = 0; k < N * I; ++k) dx[k] = T(0) * dx[k];
    return;
  }
  if (try_fused_backward<T>(dx, dw, db, dy, x, w, true, false, N, I, O)) return;
  // dw, db first: the gate's buffer is overwritten by dx below (x is not; the caller may pass either order)
  gemm<T>(true, false, O, I, N, T(1), dy, O, x, I, T(1), dw, I);
  if (db) bias_grad(db, dy, N, O);
  if (try_fused<T>(dx, dy, w, /*trans=*/false, nullptr, dx, true, N, O, I)) return;
  std::vector<T> t(std::size_t(N) * std::size_t(I));
  gemm<T>(false, false, N, I, O, T(1), dy, O, w, I, T(0), t.data(), I);
  detail::parallel_ranges(N * I, index_t(1) << 16, [&](index_t a, index_t e) {
    for (index_t i = a; i < e; ++i) dx[i] = t[std::size_t(i)] * dx[i];
  });
}

template <typename T>
void linear_gelu_forward(T* y, const T* z, const T* w, const T* b, const T* r, index_t N, index_t I, index_t O) {
  ND_CHECK(N >= 0 && I >= 0 && O >= 0, "linear_gelu_forward: negative size");
  if (N == 0 || O == 0) return;
#if ND_LIN_X86
  if constexpr (std::is_same<T, float>::value) {
    if (I > 0 && fused_ok(I, O)) {
      fused_product(y, z, w, /*trans=*/true, b, r, false, /*gelu_a=*/true, N, I, O);
      return;
    }
  }
#endif
  std::vector<T> g(std::size_t(N) * std::size_t(I));
  if (I > 0) ff_gelu_forward(g.data(), z, N * I);
  linear_forward_residual<T>(y, g.data(), w, b, r, N, I, O);
}

template <typename T>
void linear_gelu_forward_keep(T* y, T* g, T* d, const T* z, const T* w, const T* b, const T* r, index_t N, index_t I,
                              index_t O) {
  ND_CHECK(N >= 0 && I >= 0 && O >= 0, "linear_gelu_forward: negative size");
  ND_CHECK(g != nullptr && d != nullptr, "linear_gelu_forward_keep: g and d are required");
  if (N == 0) return;
#if ND_LIN_X86
  if constexpr (std::is_same<T, float>::value) {
    if (I > 0 && O > 0 && fused_ok(I, O)) {
      fused_product(y, z, w, /*trans=*/true, b, r, false, /*gelu_a=*/true, N, I, O, g, d);
      return;
    }
  }
#endif
  if (I > 0) ff_gelu_forward_grad(g, d, z, N * I);
  if (O > 0) linear_forward_residual<T>(y, g, w, b, r, N, I, O);
}

template <typename T>
void linear_forward_gelu(T* g, T* d, const T* x, const T* w, const T* b, index_t N, index_t I, index_t O) {
  ND_CHECK(N >= 0 && I >= 0 && O >= 0, "linear_forward_gelu: negative size");
  if (N == 0 || O == 0) return;
#if ND_LIN_X86
  if constexpr (std::is_same<T, float>::value) {
    if (I > 0 && fused_ok(I, O)) {
      fused_product_gelu_out(g, d, x, w, b, N, I, O);
      return;
    }
  }
#endif
  linear_forward_residual<T>(g, x, w, b, nullptr, N, I, O);  // z into g, then GELU in place
  if (d)
    ff_gelu_forward_grad(g, d, g, N * O);
  else
    ff_gelu_forward(g, g, N * O);
}

template <typename T>
void linear_gelu_backward(T* dz, T* dw, T* db, const T* dy, const T* z, const T* w, index_t N, index_t I,
                          index_t O) {
  ND_CHECK(N >= 0 && I >= 0 && O >= 0, "linear_gelu_backward: negative size");
  if (N == 0 || I == 0) return;
  if (try_fused_backward<T>(dz, dw, db, dy, z, w, false, true, N, I, O)) return;
  std::vector<T> g(std::size_t(N) * std::size_t(I));
  ff_gelu_forward_grad(g.data(), dz, z, N * I);  // dz holds GELU'(z): the gate
  linear_backward_gated<T>(dz, dw, db, dy, g.data(), w, N, I, O);
}

template void linear_forward<float>(float*, const float*, const float*, const float*, index_t, index_t, index_t);
template void linear_forward<double>(double*, const double*, const double*, const double*, index_t, index_t, index_t);
template void linear_forward_residual<float>(float*, const float*, const float*, const float*, const float*,
                                             index_t, index_t, index_t);
template void linear_forward_residual<double>(double*, const double*, const double*, const double*,
                                              const double*, index_t, index_t, index_t);
template void linear_backward<float>(float*, float*, float*, const float*, const float*, const float*, index_t,
                                     index_t, index_t);
template void linear_backward_gated<float>(float*, float*, float*, const float*, const float*, const float*,
                                           index_t, index_t, index_t);
template void linear_backward_gated<double>(double*, double*, double*, const double*, const double*,
                                            const double*, index_t, index_t, index_t);
template void linear_gelu_forward<float>(float*, const float*, const float*, const float*, const float*, index_t,
                                         index_t, index_t);
template void linear_gelu_forward<double>(double*, const double*, const double*, const double*, const double*,
                                          index_t, index_t, index_t);
template void linear_gelu_forward_keep<float>(float*, float*, float*, const float*, const float*, const float*,
                                              const float*, index_t, index_t, index_t);
template void linear_gelu_forward_keep<double>(double*, double*, double*, const double*, const double*, const double*,
                                               const double*, index_t, index_t, index_t);
template void linear_forward_gelu<float>(float*, float*, const float*, const float*, const float*, index_t, index_t,
                                         index_t);
template void linear_forward_gelu<double>(double*, double*, const double*, const double*, const double*, index_t,
                                          index_t, index_t);
template void linear_gelu_backward<float>(float*, float*, float*, const float*, const float*, const float*,
                                          index_t, index_t, index_t);
template void linear_gelu_backward<double>(double*, double*, double*, const double*, const double*,
                                           const double*, index_t, index_t, index_t);
template void linear_backward<double>(double*, double*, double*, const double*, const double*, const double*,
                                      index_t, index_t, index_t);

}  // namespace nd
