// GRU layer over a whole sequence: forward and backward side by side, fast and naive (see gru.h for the
// formulas, the cache and the gradient rules).
// Dimensions: B batch, T steps, I input features, H hidden units, G = 3H gates (r, z, n); W SIMD lanes.
//
// Forward, per step t: per tile of 4 batch rows x W hidden units, the three gate columns r, z, n of that
//   unit block are accumulated in 12 registers: h_{t-1} W_hh^T (W_hh packed once per call, "weight
//   stationary"), then x_t W_ih^T (K = I more steps of the same product, W_ih packed likewise; the W_hn h
//   part of n is set aside first). The epilogue adds the biases, applies sigmoid / tanh, blends h_t and
//   stores h_t into y and [r, z, n, hn] into the cache while the sums are hot.
//   The input projection is fused rather than one GEMM over all B*T rows: with the small I of
//   forecasting inputs (1..8) that GEMM ran far below peak (K = I) and sent a (B,T,3H) array through
//   memory and back, which cost more than the whole recurrence at B = 256 (see bench/RESULTS.md).
// Backward (per step, reversed; dh_t = dL/dh_t)
//   dn = dh (1 - z)   dz = dh (h_{t-1} - n)   da_n = dn (1 - n^2)   dhn = da_n r
//   da_r = da_n hn r (1 - r)   da_z = dz z (1 - z)
//   dh_{t-1} = dh z + [da_r, da_z, dhn] @ W_hh (+ dy_{t-1})
//   The per-step GEMM (W_hh packed once) fuses the elementwise part of step t-1 into its epilogue; it runs
//   in row panels x K chunks (see backward_impl) so that the weight sliver chunk and the panel's dG rows
//   stay in L1 (bitwise the same results as one pass over K).
//   Per (b, t) the row [da_r, da_z, dhn, da_n] (4H) is stored; after the loop, products over all B*T rows
//   give dW_hh += [da_r,da_z,dhn]^T h_prev, dW_ih += [da_r,da_z,da_n]^T x, dx, and column sums (in double)
//   the biases. At H (I) <= 64 the dW products are unpacked register tiles (dw_rows) and dx row tiles
//   (dx_rows), all in one pass over sub-chunks of 64 rows that stay in L2; wider ones are GEMMs (which pack
//   the whole buffer as their transposed operand: at a width of 64 that packing cost as much as the product).
// Stores: the float AVX2 forward writes the cache with non-temporal stores (read again only by the backward).
// Threads: the batch rows are split into one contiguous range per thread (independent recurrences, no
// barrier per step); every row goes through the same arithmetic whatever its range, and nd::gemm is
// bitwise thread-count independent, so results are bitwise identical for any thread count.
//
// SIMD: the step kernels are written once over a small "vector traits" type and compiled twice, by
// including this file into itself (as Highway's foreach_target does): once for the portable baseline
// (16-byte GCC vectors: SSE2 / NEON) and, on x86-64, once under `#pragma GCC target("avx2,fma")`. The
// AVX2 pass is picked at run time (__builtin_cpu_supports), see gru_isa().
#ifndef ND_GRU_SIMD_PASS  // ================================================= outer pass
#include "gru.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "gemm.h"

#ifdef ND_OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#define ND_GRU_X86 1
#include <immintrin.h>
#else
#define ND_GRU_X86 0
#endif

namespace nd {
namespace gru_detail {

// Cache layout (see gru.h): the row of (b, t) holds ceil(H/8) blocks of 32 values, [r, z, n, hn] for 8
// units each; unit u, quantity q (0..3) sits at (u / 8) * 32 + q * 8 + u % 8. Padding units hold finite
// values. One tile of the AVX2 float kernel writes one whole block per row (two full cache lines).
constexpr index_t kCacheBlock = 8;
inline index_t cache_width(index_t H) { return 4 * kCacheBlock * ((H + kCacheBlock - 1) / kCacheBlock); }
inline index_t cache_at(index_t u, int q) { return (u / kCacheBlock) * 4 * kCacheBlock + q * kCacheBlock + u % kCacheBlock; }

// Everything the per-thread step loops need (pointers validated by the caller).
template <typename Real>
struct FwdArgs {
  Real* y;            // (B,T,H)
  Real* gates;        // (B,T,CW) out: r, z, n, hn in blocks of 8 units (CW = cache_width(H))
  const Real* x;      // (B,T,I)
  const Real* wp;     // packed W_hh^T (nb, H, 3W)
  const Real* wpi;    // packed W_ih^T (nb, I, 3W)
  const Real* bias;   // packed (nb, 4, W): b_ir + b_hr, b_iz + b_hz, b_in, b_hn
  const Real* h0;     // (B,H) or nullptr
  const Real* zeros;  // (H + W) zeros: h_{-1} when h0 is absent
  index_t T, I, H;
  bool stream;        // cache blocks by non-temporal stores (whole lines, aligned)
};

template <typename Real>
struct BwdArgs {
  Real* dgates;       // (B,T,4H) out: da_r, da_z, dhn, da_n
  Real* dhd;          // (B,H) work: dh_t * z_t (the direct path to dh_{t-1})
  Real* dh0;          // (B,H) out
  const Real* wb;     // packed W_hh (nbb, 3H, 2W)
  const Real* dy;     // (B,T,H) or nullptr
  const Real* dh;     // (B,H) or nullptr
  const Real* h0;     // (B,H) or nullptr
  const Real* y;      // (B,T,H)
  const Real* gates;  // (B,T,CW)
  const Real* zeros;  // (H + W) zeros
  Real* acc;          // (nbb, B, 2W) work: the per-step product's partial sums between K chunks (nkc > 1)
  index_t T, H, B;
  index_t kc;         // K chunk of the per-step product (K = 3H): the sliver chunk in use stays in L1
  index_t panel;      // rows per row panel (a multiple of the tile height)
  index_t pf;         // prefetch distance of the epilogue lines, in row tiles
};

// ------------------------------------------------------------------------------ portable vector traits
namespace generic_isa {
template <typename Real>
struct Traits {
  using T = Real;
  using I = typename std::conditional<sizeof(Real) == 4, std::int32_t, std::int64_t>::type;
  typedef Real V __attribute__((vector_size(16)));
  typedef I IV __attribute__((vector_size(16)));
  static constexpr int W = 16 / sizeof(Real);
  static constexpr int kMant = sizeof(Real) == 4 ? 23 : 52;
  static constexpr I kBias = sizeof(Real) == 4 ? 127 : 1023;

  static inline V zero() { return V{}; }
  static inline V set1(Real x) {
    V v;
    for (int i = 0; i < W; ++i) v[i] = x;
    return v;
  }
  static inline V load(const Real* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
  }
  static inline void store(Real* p, V v) { std::memcpy(p, &v, sizeof(V)); }
  static constexpr bool kStream = false;  // no non-temporal stores here
  static inline void stream(Real* p, V v) { store(p, v); }
  static inline void fence() {}
  static inline V bcast(const Real* p) { return set1(*p); }
  static inline V fma(V a, V b, V c) { return a * b + c; }
  static inline V add(V a, V b) { return a + b; }
  static inline V sub(V a, V b) { return a - b; }
  static inline V mul(V a, V b) { return a * b; }
  static inline V div(V a, V b) { return a / b; }
  // x86 minps / maxps semantics: the second operand when either is NaN.
  static inline V vmax(V a, V b) { return a > b ? a : b; }
  static inline V abs(V a) {
    IV m = (IV)a & ~sign_mask();
    return (V)m;
  }
  static inline V neg(V a) { return (V)((IV)a ^ sign_mask()); }
  static inline V copysign(V mag, V s) { return (V)(((IV)mag & ~sign_mask()) | ((IV)s & sign_mask())); }
  static inline V select_lt(V a, V b, V x, V y) { return a < b ? x : y; }  // a < b ? x : y
  static inline V select_ge0(V a, V x, V y) { return a >= zero() ? x : y; }
  // Round to nearest (|x| < 2^(kMant-1)): the usual add-and-subtract of 1.5 * 2^kMant.
  static inline V round(V x) {
    const V m = set1(sizeof(Real) == 4 ? Real(12582912.0) : Real(6755399441055744.0));
    return (x + m) - m;
  }
  // 2^n for integral n within the normal exponent range.
  static inline V pow2(V n) {
    IV i = __builtin_convertvector(n, IV);
    IV b;
    for (int k = 0; k < W; ++k) b[k] = kBias;
    return (V)((i + b) << kMant);
  }

 private:
  static inline IV sign_mask() {
    IV s;
    for (int k = 0; k < W; ++k) s[k] = I(1) << (8 * sizeof(Real) - 1);
    return s;
  }
};
}  // namespace generic_isa

#if ND_GRU_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2_isa {
template <typename Real>
struct Traits;

template <>
struct Traits<float> {
  using T = float;
  using V = __m256;
  static constexpr int W = 8;
  static inline V zero() { return _mm256_setzero_ps(); }
  static inline V set1(float x) { return _mm256_set1_ps(x); }
  static inline V load(const float* p) { return _mm256_loadu_ps(p); }
  static inline void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  // Non-temporal store (p 32-byte aligned): whole cache lines that are not read again soon.
  static constexpr bool kStream = true;
  static inline void stream(float* p, V v) { _mm256_stream_ps(p, v); }
  static inline void fence() { _mm_sfence(); }
  static inline V bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static inline V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static inline V add(V a, V b) { return _mm256_add_ps(a, b); }
  static inline V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static inline V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static inline V div(V a, V b) { return _mm256_div_ps(a, b); }
  static inline V vmax(V a, V b) { return _mm256_max_ps(a, b); }
  static inline V abs(V a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  static inline V neg(V a) { return _mm256_xor_ps(_mm256_set1_ps(-0.0f), a); }
  static inline V copysign(V mag, V s) {
    const V m = _mm256_set1_ps(-0.0f);
    return _mm256_or_ps(_mm256_andnot_ps(m, mag), _mm256_and_ps(m, s));
  }
  static inline V select_lt(V a, V b, V x, V y) { return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_LT_OQ)); }
  static inline V select_ge0(V a, V x, V y) {
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, _mm256_setzero_ps(), _CMP_GE_OQ));
  }
  static inline V round(V x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static inline V pow2(V n) {
    __m256i i = _mm256_cvtps_epi32(n);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(i, _mm256_set1_epi32(127)), 23));
  }
};

template <>
struct Traits<double> {
  using T = double;
  using V = __m256d;
  static constexpr int W = 4;
  static inline V zero() { return _mm256_setzero_pd(); }
  static inline V set1(double x) { return _mm256_set1_pd(x); }
  static inline V load(const double* p) { return _mm256_loadu_pd(p); }
  static inline void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  static constexpr bool kStream = false;  // a tile covers half a cache block: partial lines
  static inline void stream(double* p, V v) { store(p, v); }
  static inline void fence() {}
  static inline V bcast(const double* p) { return _mm256_broadcast_sd(p); }
  static inline V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static inline V add(V a, V b) { return _mm256_add_pd(a, b); }
  static inline V sub(V a, V b) { return _mm256_sub_pd(a, b); }
  static inline V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  static inline V div(V a, V b) { return _mm256_div_pd(a, b); }
  static inline V vmax(V a, V b) { return _mm256_max_pd(a, b); }
  static inline V abs(V a) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), a); }
  static inline V neg(V a) { return _mm256_xor_pd(_mm256_set1_pd(-0.0), a); }
  static inline V copysign(V mag, V s) {
    const V m = _mm256_set1_pd(-0.0);
    return _mm256_or_pd(_mm256_andnot_pd(m, mag), _mm256_and_pd(m, s));
  }
  static inline V select_lt(V a, V b, V x, V y) { return _mm256_blendv_pd(y, x, _mm256_cmp_pd(a, b, _CMP_LT_OQ)); }
  static inline V select_ge0(V a, V x, V y) {
    return _mm256_blendv_pd(y, x, _mm256_cmp_pd(a, _mm256_setzero_pd(), _CMP_GE_OQ));
  }
  static inline V round(V x) { return _mm256_round_pd(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // No packed double -> int64 conversion in AVX2: n + 1.5*2^52 holds n in its low mantissa bits.
  static inline V pow2(V n) {
    const V magic = _mm256_set1_pd(6755399441055744.0);
    __m256i i = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(n, magic)), _mm256_castpd_si256(magic));
    return _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(i, _mm256_set1_epi64x(1023)), 52));
  }
};
}  // namespace avx2_isa
#pragma GCC pop_options
#endif

}  // namespace gru_detail
}  // namespace nd

// The vectorised kernels, once per ISA (the second half of this file).
#define ND_GRU_SIMD_PASS 1
#define ND_GRU_ISA generic_isa
#include "gru.cpp"  // NOLINT(build/include): self-inclusion, see the top of the file
#undef ND_GRU_ISA
#if ND_GRU_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define ND_GRU_ISA avx2_isa
#include "gru.cpp"  // NOLINT(build/include)
#undef ND_GRU_ISA
#pragma GCC pop_options
#endif
#undef ND_GRU_SIMD_PASS

namespace nd {
namespace gru_detail {
namespace {

inline index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

enum class Isa { Generic, Avx2 };

Isa pick_isa() {
  return ND_GRU_X86 && simd_avx2_enabled() ? Isa::Avx2 : Isa::Generic;
}

// Workspace: one grow-only buffer per calling thread, kept between calls (as nd::gemm's packing
// buffers). The backward's (B,T,4H) gradient buffer is the largest piece: allocating it afresh every call
// cost 15% of the backward in page faults (first touch of new pages) at B = 256, T = 168.
struct Workspace {
  void* p = nullptr;
  std::size_t cap = 0;
  ~Workspace() { std::free(p); }
  void* reserve(std::size_t bytes) {
    if (bytes <= cap) return p;
    std::free(p);
    p = nullptr;
    cap = 0;
    constexpr std::size_t kHuge = std::size_t(2) << 20;  // 2 MiB: transparent huge pages where allowed
    const std::size_t align = bytes >= 2 * kHuge ? kHuge : 64;
    bytes = (bytes + align - 1) & ~(align - 1);
    p = std::aligned_alloc(align, bytes);
    if (!p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (align == kHuge) madvise(p, bytes, MADV_HUGEPAGE);
#endif
    cap = bytes;
    return p;
  }
};
thread_local Workspace tls_ws;

// Carves consecutive 64-byte aligned pieces out of a workspace.
struct Carver {
  char* base;
  std::size_t off = 0;
  template <typename U>
  U* take(index_t n) {
    U* r = reinterpret_cast<U*>(base + off);
    off += (sizeof(U) * std::size_t(n) + 63) & ~std::size_t(63);
    return r;
  }
};
template <typename U>
std::size_t bytes_of(index_t n) {
  return (sizeof(U) * std::size_t(n) + 63) & ~std::size_t(63);
}

// Batch rows [0, B) in one contiguous range per thread, in units of 4 rows (the forward tile).
// `work` (FLOPs of the whole call) keeps small problems on the calling thread: below ~2 MFLOP per
// thread a parallel region costs more than it saves, and on a shared machine a descheduled worker
// stalls the join for a scheduler slice. Results do not depend on the thread count.
template <class F>
void parallel_rows(index_t B, double work, F&& f) {
  const index_t units = ceil_div(B, 4);
  int nt = 1;
#ifdef ND_OPENMP
  nt = num_threads();
  if (nt > units) nt = int(units);
  while (nt > 1 && work / nt < 2e6) --nt;
  if (omp_in_parallel()) nt = 1;
#endif
  if (nt <= 1) {
    f(index_t(0), B);
    return;
  }
#ifdef ND_OPENMP
#pragma omp parallel num_threads(nt)
  {
    index_t u0, u1;
    split_range(units, omp_get_num_threads(), omp_get_thread_num(), u0, u1);
    const index_t b0 = u0 * 4, b1 = u1 * 4 < B ? u1 * 4 : B;
    if (b1 > b0) f(b0, b1);
  }
#endif
}

// ------------------------------------------------------------------------------ fast forward / backward
template <typename Real, template <typename> class Api>
void forward_impl(Real* y, Real* gates, const Real* x, const Real* w_ih, const Real* w_hh, const Real* b_ih,
                  const Real* b_hh, const Real* h0, index_t B, index_t T, index_t I, index_t H) {
  using K = Api<Real>;
  const index_t W = K::W, nb = ceil_div(H, W);
  Carver c{static_cast<char*>(tls_ws.reserve(bytes_of<Real>(nb * H * 3 * W) + bytes_of<Real>(nb * I * 3 * W) +
                                               bytes_of<Real>(nb * 4 * W) + bytes_of<Real>(H + W)))};
  Real* wp = c.take<Real>(nb * H * 3 * W);   // (nb, H, 3W)
  Real* wpi = c.take<Real>(nb * I * 3 * W);  // (nb, I, 3W)
  Real* bias = c.take<Real>(nb * 4 * W);     // (nb, 4, W)
  Real* zeros = c.take<Real>(H + W);         // (H + W)
  K::pack_forward(wp, wpi, bias, w_hh, w_ih, b_ih, b_hh, H, I);
  for (index_t i = 0; i < H + W; ++i) zeros[i] = Real(0);
  // The cache is read again only by the backward, after the other layers' work: non-temporal stores skip
  // reading its lines in first (-4..-8% forward at B = 256, H = 64..256 here). Float AVX2 only (a tile then
  // writes whole 64-byte lines), and only on an aligned array; ND_GRU_NT=0 turns them off (A/B runs).
  const bool stream = K::VT::kStream && K::W == kCacheBlock && reinterpret_cast<std::uintptr_t>(gates) % 64 == 0 &&
                      env_index("ND_GRU_NT", 1) != 0;
  FwdArgs<Real> a{y, gates, x, wp, wpi, bias, h0, zeros, T, I, H, stream};
  parallel_rows(B, 2.0 * double(B) * double(T) * double(I + H) * double(3 * H), [&](index_t b0, index_t b1) {
    K::forward_rows(a, b0, b1);
    if (stream) K::VT::fence();
  });
}

// Backward per-step product blocking (see backward_impl). ND_GRU_SLIVER_BYTES / ND_GRU_PANEL_BYTES in the
// environment override them (read per call; for tuning on other machines).
inline index_t env_bytes(const char* name, index_t dflt) {
  const index_t n = env_index(name, dflt);
  return n >= 256 ? n : dflt;
}
inline index_t bwd_sliver_bytes() { return env_bytes("ND_GRU_SLIVER_BYTES", 16 * 1024); }
inline index_t bwd_panel_bytes() { return env_bytes("ND_GRU_PANEL_BYTES", 12 * 1024); }
// Prefetch distance of the backward epilogue lines, in row tiles (1, 2 and 3 measured alike here).
constexpr index_t kBwdPrefetchTiles = 1;
// dx by dx_rows (instead of GEMM) when one (3H, 2W) sliver of W_ih takes at most this many bytes.
constexpr index_t kDxRowsSliverBytes = 16 * 1024;
// dW_hh / dW_ih by dw_rows (instead of GEMM) up to this width (H / I); ND_GRU_DW_ROWS_MAXN overrides.
constexpr index_t kDwRowsMaxN = 64;
// Rows per dw_rows call (the S rows of a sub-chunk, N * 4 bytes each, stay in L1 across the D tiles).
constexpr index_t kDwSubRows = 64;

// Rows of the (B*T) x 4H gradient buffer are processed in fixed chunks (independent of the thread count);
// per-chunk partial sums are combined in chunk order, in double.
inline index_t chunk_rows(index_t N) {
  const index_t c = ceil_div(N, 64);
  return c < 256 ? 256 : c;
}

template <typename Real, template <typename> class Api>
void backward_impl(Real* dx, Real* dh0, Real* dw_ih, Real* dw_hh, Real* db_ih, Real* db_hh, const Real* dy,
                   const Real* dh, const Real* x, const Real* w_ih, const Real* w_hh, const Real* h0,
                   const Real* y, const Real* gates, index_t B, index_t T, index_t I, index_t H) {
  using K = Api<Real>;
  const index_t W = K::W, NR = 2 * W, G = 3 * H, nbb = ceil_div(H, NR), BT = B * T;
  const bool small_i = I <= K::kSmallI;
  // dx of a larger input by dx_rows (no packing of the gradient buffer) while a (3H, 2W) sliver of W_ih
  // fits L1 (H <= 85 in float), else by GEMM.
  const bool dx_by_rows = dx && !small_i && G * NR * index_t(sizeof(Real)) <= kDxRowsSliverBytes;
  const index_t nbi = ceil_div(I, NR);
  const index_t CR = chunk_rows(BT), NC = ceil_div(BT, CR), PW = small_i ? G * I + 4 * H : 4 * H;
  // dW_hh (and dW_ih when I > kSmallI) by dw_rows, in the same pass over the row chunks, while their
  // width N = H (I) is at most kDwRowsMaxN; else by GEMM.
  const index_t dw_max = env_index("ND_GRU_DW_ROWS_MAXN", kDwRowsMaxN);
  const bool dwh_rows = H <= dw_max, dwi_rows = !small_i && I <= dw_max;
  // Blocking of the per-step product dG_t (rows, 3H) @ W_hh (3H, H), as a GEMM's: K chunks of kc rows of
  // the (3H, 2W) weight sliver (16 KiB, kept in L1 while the row tiles of a panel run), and row panels
  // whose K chunk of dG rows (12 KiB) stays in L1 across the unit blocks, as in the LSTM. Partial sums go
  // through `acc` between K chunks; every element sees the same FMAs in the same order (k ascending)
  // whatever the blocking, so results do not change with it.
  const index_t nkc = ceil_div(G * NR * index_t(sizeof(Real)), bwd_sliver_bytes());
  const index_t kc = ceil_div(G, nkc);
  index_t panel = (bwd_panel_bytes() / (kc * index_t(sizeof(Real)))) / K::BMR * K::BMR;
  if (panel < K::BMR) panel = K::BMR;
  Carver c{static_cast<char*>(tls_ws.reserve(bytes_of<Real>(nbb * G * NR) + bytes_of<Real>(BT * 4 * H) +
                                               bytes_of<Real>(B * H) + bytes_of<Real>(H + W) +
                                               bytes_of<Real>(B * G) + bytes_of<Real>(NC * PW) +
                                               bytes_of<Real>(I * G) + bytes_of<Real>(G * H) +
                                               (nkc > 1 ? bytes_of<Real>(nbb * B * NR) : 0) +
                                               (dx_by_rows ? bytes_of<Real>(nbi * G * NR) : 0) +
                                               (dwi_rows ? bytes_of<Real>(G * I) : 0)))};
  Real* wb = c.take<Real>(nbb * G * NR);    // (nbb, 3H, 2W)
  Real* dgates = c.take<Real>(BT * 4 * H);  // (B,T,4H): da_r, da_z, dhn, da_n
  Real* dhd = c.take<Real>(B * H);          // (B,H)
  Real* zeros = c.take<Real>(H + W);        // (H + W)
  Real* d0 = c.take<Real>(B * G);           // (B,3H): [da_r, da_z, dhn] at t = 0
  Real* part = c.take<Real>(NC * PW);       // (NC, PW): per-chunk partial sums
  Real* wihT = c.take<Real>(I * G);         // (I, 3H): W_ih^T (small-I pass)
  Real* dwh = c.take<Real>(G * H);          // (3H, H): this call's dW_hh, added to dw_hh once
  Real* acc = nkc > 1 ? c.take<Real>(nbb * B * NR) : nullptr;  // (nbb, B, 2W)
  Real* wi = dx_by_rows ? c.take<Real>(nbi * G * NR) : nullptr;    // (nbi, 3H, 2W): W_ih slivers for dx_rows
  Real* dwi = dwi_rows ? c.take<Real>(G * I) : nullptr;            // (3H, I): this call's dW_ih (dw_rows)
  K::pack_backward(wb, w_hh, H);
  if (dx_by_rows) K::pack_slivers(wi, w_ih, G, I);
  for (index_t i = 0; i < H + W; ++i) zeros[i] = Real(0);

  // 1. the recurrence, per batch range.
  BwdArgs<Real> a{dgates, dhd, dh0, wb, dy, dh, h0, y, gates, zeros, acc, T, H, B, kc, panel, kBwdPrefetchTiles};
  parallel_rows(B, 2.0 * double(B) * double(T) * double(H) * double(3 * H),
                [&](index_t b0, index_t b1) { K::backward_rows(a, b0, b1); });

  // 2. dW_ih, dx, the bias sums and (dw_rows) dW_hh over all B*T rows, in one pass over fixed row chunks:
  //    with a small input size, small_input_rows (a GEMM with N or M = I <= 16 would run at a fraction of
  //    peak and pack the whole buffer for it); else column sums, dx by dx_rows at H <= 85. Chunk partials
  //    are combined in chunk order in double. dW tiles (dw_rows: BMR rows of dW x all columns) are
  //    accumulated per sub-chunk of kDwSubRows rows, in row order; with threads, each thread owns a range
  //    of dW tiles (and of chunks for the rest), so no sum depends on the thread count.
  if (small_i)
    for (index_t k = 0; k < I; ++k)
      for (index_t j = 0; j < G; ++j) wihT[k * G + j] = w_ih[j * I + k];
  const index_t BM = K::BMR;
  const index_t nth = dwh_rows ? ceil_div(G, BM) : 0;  // dW_hh tiles: rows [j*BM, ..) of D columns [0, 3H)
  const index_t nta = dwi_rows ? ceil_div(2 * H, BM) : 0;  // dW_ih rows [0, 2H): D columns da_r, da_z
  const index_t ntb = dwi_rows ? ceil_div(H, BM) : 0;      // dW_ih rows [2H, 3H): D columns da_n
  const index_t ntiles = nth + nta + ntb;
  if (dwh_rows) std::memset(dwh, 0, sizeof(Real) * G * H);
  if (dwi_rows) std::memset(dwi, 0, sizeof(Real) * G * I);
  auto dw_tile = [&](index_t j, index_t n0, index_t n1) {
    if (j < nth) {
      const index_t q0 = j * BM;
      K::dw_rows(dwh, H, q0, int(G - q0 < BM ? G - q0 : BM), dgates, 4 * H, q0, y, H, n0, n1, T, h0);
      return;
    }
    j -= nth;
    const index_t q0 = j < nta ? j * BM : 2 * H + (j - nta) * BM;
    const index_t qe = j < nta ? 2 * H : G;
    K::dw_rows(dwi, I, q0, int(qe - q0 < BM ? qe - q0 : BM), dgates, 4 * H, j < nta ? q0 : q0 + H, x, I, n0,
               n1, 0, nullptr);
  };
  auto pass = [&](int nt, int tid) {
    index_t c0, c1, j0, j1;
    split_range(NC, nt, tid, c0, c1);
    split_range(ntiles, nt, tid, j0, j1);
    // Sub-chunks of kDwSubRows rows (~64 KiB of the buffer at H = 64): every consumer reads them while
    // they are in L2 (a whole chunk is up to ~700 KiB at B = 256, T = 168).
    for (index_t ch = 0; ch < NC; ++ch) {
      const index_t n0 = ch * CR, n1 = n0 + CR < BT ? n0 + CR : BT;
      const bool mine = ch >= c0 && ch < c1;
      if (!mine && j0 == j1) continue;
      for (index_t r0 = n0; r0 < n1; r0 += kDwSubRows) {
        const index_t r1 = r0 + kDwSubRows < n1 ? r0 + kDwSubRows : n1;
        if (mine) {
          if (small_i)
            K::small_input_rows(part + ch * PW, dx, dgates, x, wihT, r0, r1, I, H, r0 == n0);
          else
            K::column_sum_rows(part + ch * PW, dgates, r0, r1, H, r0 == n0);
          if (dx_by_rows) K::dx_rows(dx, dgates, wi, r0, r1, I, H);
        }
        for (index_t j = j0; j < j1; ++j) dw_tile(j, r0, r1);
      }
    }
  };
  {
    int nt = 1;
#ifdef ND_OPENMP
    nt = num_threads();
    if (nt > NC) nt = int(NC);
    if (BT * H < (index_t(1) << 14) || omp_in_parallel()) nt = 1;
#endif
    if (nt <= 1) {
      pass(1, 0);
    } else {
#ifdef ND_OPENMP
#pragma omp parallel num_threads(nt)
      pass(omp_get_num_threads(), omp_get_thread_num());
#endif
    }
  }
  // Combine: part[ch] = [colsum (4H) | dW_ih^T (I, 3H) when small_i].
  auto combine = [&](index_t off, Real* dst, index_t n, index_t dst_stride, index_t dst_off) {
    for (index_t j = 0; j < n; ++j) {
      double s = 0.0;
      for (index_t ch = 0; ch < NC; ++ch) s += double(part[ch * PW + off + j]);
      Real& d = dst[j * dst_stride + dst_off];
      d = Real(double(d) + s);
    }
  };
  combine(0, db_hh, G, 1, 0);             // [da_r, da_z, dhn]
  combine(0, db_ih, 2 * H, 1, 0);         // [da_r, da_z]
  combine(3 * H, db_ih + 2 * H, H, 1, 0);  // da_n
  if (small_i) {
    for (index_t k = 0; k < I; ++k) combine(4 * H + k * G, dw_ih, G, I, k);
  } else if (dwi_rows) {
    for (index_t i = 0; i < G * I; ++i) dw_ih[i] += dwi[i];
  } else {
    gemm<Real>(true, false, 2 * H, I, BT, Real(1), dgates, 4 * H, x, I, Real(1), dw_ih, I);  // r, z
    gemm<Real>(true, false, H, I, BT, Real(1), dgates + 3 * H, 4 * H, x, I, Real(1), dw_ih + 2 * H * I, I);  // n
  }
  if (!small_i) {
    if (dx && !dx_by_rows) {
      gemm<Real>(false, false, BT, I, 2 * H, Real(1), dgates, 4 * H, w_ih, I, Real(0), dx, I);
      gemm<Real>(false, false, BT, I, H, Real(1), dgates + 3 * H, 4 * H, w_ih + 2 * H * I, I, Real(1), dx, I);
    }
  }

  // 3. dW_hh += sum_{b,t} [da_r, da_z, dhn](b,t)^T h_{t-1}(b): from dw_rows above, or by GEMM.
  if (!dwh_rows) {
    //    Row n = b*T + t of the buffer pairs with row n - 1 of y (= h_{t-1} for t >= 1): one GEMM over rows
    //    1 .. BT-1 once the t = 0 rows (paired with h0, not with the previous sequence's last state) are
    //    set aside and zeroed.
    for (index_t b = 0; b < B; ++b) {
      Real* row = dgates + b * T * 4 * H;
      std::memcpy(d0 + b * G, row, sizeof(Real) * G);
      std::memset(row, 0, sizeof(Real) * G);
    }
    //    Both products go to dwh first, so that dw_hh receives one addition per element (backward twice
    //    then gives exactly twice the gradient).
    if (T > 1)
      gemm<Real>(true, false, G, H, BT - 1, Real(1), dgates + 4 * H, 4 * H, y, H, Real(0), dwh, H);
    else
      std::memset(dwh, 0, sizeof(Real) * G * H);
    if (h0) gemm<Real>(true, false, G, H, B, Real(1), d0, G, h0, H, Real(1), dwh, H);
  }
  for (index_t i = 0; i < G * H; ++i) dw_hh[i] += dwh[i];
}

// ------------------------------------------------------------------------------ naive versions
template <typename Real>
Real sigmoid_scalar(Real v) {
  Real e = std::exp(-std::fabs(v));
  Real s = Real(1) / (Real(1) + e);
  return v >= Real(0) ? s : e * s;
}

}  // namespace
}  // namespace gru_detail

template <typename Real>
void gru_forward_naive(Real* y, Real* gates, const Real* x, const Real* w_ih, const Real* w_hh,
                       const Real* b_ih, const Real* b_hh, const Real* h0, index_t B, index_t T, index_t I,
                       index_t H) {
  const index_t G = 3 * H;
  for (index_t b = 0; b < B; ++b)
    for (index_t t = 0; t < T; ++t) {
      const Real* xt = x + (b * T + t) * I;                                   // (I)
      const Real* hp = t > 0 ? y + (b * T + t - 1) * H : (h0 ? h0 + b * H : nullptr);  // (H) or zeros
      Real* g = gates + (b * T + t) * gru_detail::cache_width(H);             // (CW)
      Real* ht = y + (b * T + t) * H;                                         // (H)
      for (index_t j = 0; j < H; ++j) {
        Real gi[3], gh[3];
        for (int q = 0; q < 3; ++q) {
          const index_t row = q * H + j;
          Real si = b_ih ? b_ih[row] : Real(0), sh = b_hh ? b_hh[row] : Real(0);
          for (index_t k = 0; k < I; ++k) si += w_ih[row * I + k] * xt[k];
          if (hp)
            for (index_t k = 0; k < H; ++k) sh += w_hh[row * H + k] * hp[k];
          gi[q] = si;
          gh[q] = sh;
        }
        const Real r = gru_detail::sigmoid_scalar(gi[0] + gh[0]);
        const Real z = gru_detail::sigmoid_scalar(gi[1] + gh[1]);
        const Real n = std::tanh(gi[2] + r * gh[2]);
        const Real hprev = hp ? hp[j] : Real(0);
        g[gru_detail::cache_at(j, 0)] = r;
        g[gru_detail::cache_at(j, 1)] = z;
        g[gru_detail::cache_at(j, 2)] = n;
        g[gru_detail::cache_at(j, 3)] = gh[2];
        ht[j] = (Real(1) - z) * n + z * hprev;
      }
    }
  (void)G;
}

template <typename Real>
void gru_backward_naive(Real* dx, Real* dh0, Real* dw_ih, Real* dw_hh, Real* db_ih, Real* db_hh,
                        const Real* dy, const Real* dh, const Real* x, const Real* w_ih, const Real* w_hh,
                        const Real* h0, const Real* y, const Real* gates, index_t B, index_t T, index_t I,
                        index_t H) {
  const index_t G = 3 * H;
  Real* cur = dh0;  // (B,H): dL/dh_t, running backwards; ends as dL/dh0
  for (index_t i = 0; i < B * H; ++i) cur[i] = dh ? dh[i] : Real(0);
  Real* nxt = new Real[std::size_t(H)];  // (H)
  Real* dxg = new Real[std::size_t(G)];  // (G): da_r, da_z, da_n
  Real* dhg = new Real[std::size_t(G)];  // (G): da_r, da_z, dhn
  for (index_t t = T - 1; t >= 0; --t)
    for (index_t b = 0; b < B; ++b) {
      const Real* g = gates + (b * T + t) * gru_detail::cache_width(H);
      const Real* hp = t > 0 ? y + (b * T + t - 1) * H : (h0 ? h0 + b * H : nullptr);
      const Real* xt = x + (b * T + t) * I;
      Real* dht = cur + b * H;
      for (index_t j = 0; j < H; ++j) {
        const Real d = dht[j] + (dy ? dy[(b * T + t) * H + j] : Real(0));
        using gru_detail::cache_at;
        const Real r = g[cache_at(j, 0)], z = g[cache_at(j, 1)], n = g[cache_at(j, 2)], hn = g[cache_at(j, 3)];
        const Real hpj = hp ? hp[j] : Real(0);
        const Real dn = d * (Real(1) - z), dz = d * (hpj - n);
        const Real dan = dn * (Real(1) - n * n);
        dxg[j] = dan * hn * r * (Real(1) - r);
        dxg[H + j] = dz * z * (Real(1) - z);
        dxg[2 * H + j] = dan;
        dhg[j] = dxg[j];
        dhg[H + j] = dxg[H + j];
        dhg[2 * H + j] = dan * r;
        nxt[j] = d * z;
      }
      for (index_t q = 0; q < G; ++q) {
        db_ih[q] += dxg[q];
        db_hh[q] += dhg[q];
        for (index_t k = 0; k < I; ++k) dw_ih[q * I + k] += dxg[q] * xt[k];
        if (hp)
          for (index_t k = 0; k < H; ++k) dw_hh[q * H + k] += dhg[q] * hp[k];
      }
      if (dx)
        for (index_t k = 0; k < I; ++k) {
          Real s = 0;
          for (index_t q = 0; q < G; ++q) s += dxg[q] * w_ih[q * I + k];
          dx[(b * T + t) * I + k] = s;
        }
      for (index_t k = 0; k < H; ++k) {
        Real s = nxt[k];
        for (index_t q = 0; q < G; ++q) s += dhg[q] * w_hh[q * H + k];
        dht[k] = s;  // now dL/dh_{t-1} for row b
      }
    }
  delete[] nxt;
  delete[] dxg;
  delete[] dhg;
}

// ------------------------------------------------------------------------------ public entry points
index_t gru_cache_width(index_t H) { return gru_detail::cache_width(H); }

const char* gru_isa() { return gru_detail::pick_isa() == gru_detail::Isa::Avx2 ? "avx2" : "generic"; }

template <typename Real>
void gru_forward(Real* y, Real* gates, const Real* x, const Real* w_ih, const Real* w_hh, const Real* b_ih,
                 const Real* b_hh, const Real* h0, index_t B, index_t T, index_t I, index_t H) {
  ND_CHECK(B >= 0 && T >= 0 && I >= 0 && H >= 0, "gru_forward: negative size");
  if (B == 0 || T == 0 || H == 0) return;
  using namespace gru_detail;
#if ND_GRU_X86
  if (pick_isa() == Isa::Avx2) {
    forward_impl<Real, avx2_isa::Api>(y, gates, x, w_ih, w_hh, b_ih, b_hh, h0, B, T, I, H);
    return;
  }
#endif
  forward_impl<Real, generic_isa::Api>(y, gates, x, w_ih, w_hh, b_ih, b_hh, h0, B, T, I, H);
}

template <typename Real>
void gru_backward(Real* dx, Real* dh0, Real* dw_ih, Real* dw_hh, Real* db_ih, Real* db_hh, const Real* dy,
                  const Real* dh, const Real* x, const Real* w_ih, const Real* w_hh, const Real* h0, const Real* y,
                  const Real* gates, index_t B, index_t T, index_t I, index_t H) {
  ND_CHECK(B >= 0 && T >= 0 && I >= 0 && H >= 0, "gru_backward: negative size");
  if (B == 0 || H == 0) return;
  if (T == 0) {  // no steps: h_final = h0
    for (index_t i = 0; i < B * H; ++i) dh0[i] = dh ? dh[i] : Real(0);
    return;
  }
  using namespace gru_detail;
#if ND_GRU_X86
  if (pick_isa() == Isa::Avx2) {
    backward_impl<Real, avx2_isa::Api>(dx, dh0, dw_ih, dw_hh, db_ih, db_hh, dy, dh, x, w_ih, w_hh, h0, y, gates,
                                       B, T, I, H);
    return;
  }
#endif
  backward_impl<Real, generic_isa::Api>(dx, dh0, dw_ih, dw_hh, db_ih, db_hh, dy, dh, x, w_ih, w_hh, h0, y, gates,
                                        B, T, I, H);
}

#define ND_GRU_INSTANTIATE(R)                                                                                 \
  template void gru_forward<R>(R*, R*, const R*, const R*, const R*, const R*, const R*, const R*, index_t,   \
                               index_t, index_t, index_t);                                                    \
  template void gru_backward<R>(R*, R*, R*, R*, R*, R*, const R*, const R*, const R*, const R*, const R*,     \
                                const R*, const R*, const R*, index_t, index_t, index_t, index_t);            \
  template void gru_forward_naive<R>(R*, R*, const R*, const R*, const R*, const R*, const R*, const R*,      \
                                     index_t, index_t, index_t, index_t);                                     \
  template void gru_backward_naive<R>(R*, R*, R*, R*, R*, R*, const R*, const R*, const R*, const R*,         \
                                      const R*, const R*, const R*, const R*, index_t, index_t, index_t, index_t);
ND_GRU_INSTANTIATE(float)
ND_GRU_INSTANTIATE(double)
#undef ND_GRU_INSTANTIATE

}  // namespace nd

#else  // ================================================= ND_GRU_SIMD_PASS: the vectorised step kernels
// Compiled once per ISA inside namespace nd::gru_detail::ND_GRU_ISA, where Traits<Real> is that ISA's
// vector traits (no std:: templates below: an avx2 instantiation must not be merged with a baseline one).
namespace nd {
namespace gru_detail {
namespace ND_GRU_ISA {
namespace {

// Numerically stable, vectorised exp / sigmoid / tanh (no libm call per element; finite for any finite
// input, +-inf give the limits, NaN propagates).
template <class VT>
struct Math {
  using Real = typename VT::T;
  using V = typename VT::V;
  static constexpr bool kF32 = sizeof(Real) == 4;

  // exp(x) for x <= 0 (inputs below the smallest normal result are clamped there: exp(-87) ~ 1.6e-38 in
  // float, exp(-708) ~ 3e-308 in double). Cephes expf / exp: x = n ln2 + r, |r| <= ln2 / 2.
  static inline __attribute__((always_inline)) V exp_nonpos(V x) {
    x = VT::vmax(VT::set1(kF32 ? Real(-87.0) : Real(-708.0)), x);  // NaN stays NaN
    const V n = VT::round(VT::mul(x, VT::set1(Real(1.44269504088896340736))));
    V r, p;
    if (kF32) {
      r = VT::fma(n, VT::set1(Real(-0.693359375)), x);
      r = VT::fma(n, VT::set1(Real(2.12194440e-4)), r);
      p = VT::set1(Real(1.9875691500E-4));
      p = VT::fma(p, r, VT::set1(Real(1.3981999507E-3)));
      p = VT::fma(p, r, VT::set1(Real(8.3334519073E-3)));
      p = VT::fma(p, r, VT::set1(Real(4.1665795894E-2)));
      p = VT::fma(p, r, VT::set1(Real(1.6666665459E-1)));
      p = VT::fma(p, r, VT::set1(Real(5.0000001201E-1)));
      p = VT::fma(p, VT::mul(r, r), VT::add(r, VT::set1(Real(1))));
    } else {
      r = VT::fma(n, VT::set1(Real(-6.93145751953125E-1)), x);
      r = VT::fma(n, VT::set1(Real(-1.42860682030941723212E-6)), r);
      const V rr = VT::mul(r, r);
      V P = VT::set1(Real(1.26177193074810590878E-4));
      P = VT::fma(P, rr, VT::set1(Real(3.02994407707441961300E-2)));
      P = VT::fma(P, rr, VT::set1(Real(9.99999999999999999910E-1)));
      P = VT::mul(P, r);
      V Q = VT::set1(Real(3.00198505138664455042E-6));
      Q = VT::fma(Q, rr, VT::set1(Real(2.52448340349684104192E-3)));
      Q = VT::fma(Q, rr, VT::set1(Real(2.27265548208155028766E-1)));
      Q = VT::fma(Q, rr, VT::set1(Real(2.00000000000000000009E0)));
      p = VT::div(P, VT::sub(Q, P));
      p = VT::fma(p, VT::set1(Real(2)), VT::set1(Real(1)));
    }
    return VT::mul(p, VT::pow2(n));
  }

  // 1 / (1 + e^-x) through e = exp(-|x|) in (0, 1]: never overflows.
  static inline __attribute__((always_inline)) V sigmoid(V x) {
    const V e = exp_nonpos(VT::neg(VT::abs(x)));
    const V s = VT::div(VT::set1(Real(1)), VT::add(VT::set1(Real(1)), e));
    return VT::select_ge0(x, s, VT::mul(e, s));
  }

  // tanh: Cephes' odd polynomial (float) / rational function (double) for |x| < 0.625, else
  // (1 - e) / (1 + e) with e = exp(-2|x|) (no cancellation there); the sign restored at the end.
  static inline __attribute__((always_inline)) V tanh(V x) {
    const V a = VT::abs(x);
    const V z = VT::mul(a, a);
    V q;
    if (kF32) {
      q = VT::set1(Real(-5.70498872745E-3));
      q = VT::fma(q, z, VT::set1(Real(2.06390887954E-2)));
      q = VT::fma(q, z, VT::set1(Real(-5.37397155531E-2)));
      q = VT::fma(q, z, VT::set1(Real(1.33314422036E-1)));
      q = VT::fma(q, z, VT::set1(Real(-3.33332819422E-1)));
    } else {
      V P = VT::set1(Real(-9.64399179425052238628E-1));
      P = VT::fma(P, z, VT::set1(Real(-9.92877231001918586564E1)));
      P = VT::fma(P, z, VT::set1(Real(-1.61468768441708447952E3)));
      V Q = VT::add(z, VT::set1(Real(1.12811678491632931402E2)));
      Q = VT::fma(Q, z, VT::set1(Real(2.23548839060100448583E3)));
      Q = VT::fma(Q, z, VT::set1(Real(4.84406305325125486048E3)));
      q = VT::div(P, Q);
    }
    const V small = VT::fma(VT::mul(q, z), a, a);
    const V e = exp_nonpos(VT::mul(a, VT::set1(Real(-2))));
    const V large = VT::div(VT::sub(VT::set1(Real(1)), e), VT::add(VT::set1(Real(1)), e));
    return VT::copysign(VT::select_lt(a, VT::set1(Real(0.625)), small, large), x);
  }
};

template <typename Real>
struct Api {
  using VT = Traits<Real>;
  using V = typename VT::V;
  using M = Math<VT>;
  static constexpr int W = VT::W;
  static constexpr int FMR = 4;  // forward tile: 4 rows x (r, z, n) x W units = 12 accumulators
  static constexpr int BMR = 6;  // backward tile: 6 rows x 2W units = 12 accumulators
  static constexpr int kSmallI = 16;  // input sizes up to this: dW_ih, dx, biases in one pass (no GEMM)
  static_assert(FMR == 4 && BMR == 6, "the tile switches below list the row counts");

  // ---------------------------------------------------------------- packing (once per call)
  // wp (nb, H, 3W): block jb holds, for every k, W_hr / W_hz / W_hn of units jb*W .. jb*W + W (zero padded);
  // wpi (nb, I, 3W) the same for W_ir / W_iz / W_in.
  // bias (nb, 4, W): b_ir + b_hr, b_iz + b_hz, b_in, b_hn (zero padded).
  static void pack_forward(Real* wp, Real* wpi, Real* bias, const Real* w_hh, const Real* w_ih, const Real* b_ih,
                           const Real* b_hh, index_t H, index_t I) {
    const index_t nb = (H + W - 1) / W;
    for (index_t jb = 0; jb < nb; ++jb) {
      Real* dst = wp + jb * H * 3 * W;
      for (index_t k = 0; k < H; ++k)
        for (int g = 0; g < 3; ++g)
          for (int u = 0; u < W; ++u) {
            const index_t j = jb * W + u;
            dst[(k * 3 + g) * W + u] = j < H ? w_hh[(g * H + j) * H + k] : Real(0);
          }
      Real* dsti = wpi + jb * I * 3 * W;
      for (index_t k = 0; k < I; ++k)
        for (int g = 0; g < 3; ++g)
          for (int u = 0; u < W; ++u) {
            const index_t j = jb * W + u;
            dsti[(k * 3 + g) * W + u] = j < H ? w_ih[(g * H + j) * I + k] : Real(0);
          }
      Real* bb = bias + jb * 4 * W;
      for (int u = 0; u < W; ++u) {
        const index_t j = jb * W + u;
        const bool in = j < H;
        const Real bi0 = in && b_ih ? b_ih[j] : Real(0), bh0 = in && b_hh ? b_hh[j] : Real(0);
        const Real bi1 = in && b_ih ? b_ih[H + j] : Real(0), bh1 = in && b_hh ? b_hh[H + j] : Real(0);
        bb[u] = bi0 + bh0;
        bb[W + u] = bi1 + bh1;
        bb[2 * W + u] = in && b_ih ? b_ih[2 * H + j] : Real(0);
        bb[3 * W + u] = in && b_hh ? b_hh[2 * H + j] : Real(0);
      }
    }
  }

  // wb (nbb, 3H, 2W): the (3H, H) matrix W_hh in slivers of 2W columns (zero padded).
  static void pack_backward(Real* wb, const Real* w_hh, index_t H) { pack_slivers(wb, w_hh, 3 * H, H); }

  // dst (ceil(N / 2W), K, 2W): the (K, N) matrix src in slivers of 2W columns (zero padded).
  static void pack_slivers(Real* dst, const Real* src, index_t K, index_t N) {
    const index_t NR = 2 * W, nbb = (N + NR - 1) / NR;
    for (index_t ub = 0; ub < nbb; ++ub) {
      Real* d = dst + ub * K * NR;
      for (index_t k = 0; k < K; ++k)
        for (int u = 0; u < NR; ++u) {
          const index_t j = ub * NR + u;
          d[k * NR + u] = j < N ? src[k * N + j] : Real(0);
        }
    }
  }

  // dx rows [n0, n1) = D_x W_ih without packing D (the GEMM packed all B*T rows of it for an N = I of
  // 17 .. ~85, where it ran at ~40 GFLOP/s): tiles of up to BMR rows of the gradient buffer D (BT, 4H),
  // broadcast as in the per-step product, against W_ih in (3H, 2W) slivers wi (packed once per call);
  // k runs over da_r, da_z (columns 0 .. 2H), then da_n (3H .. 4H).
  static void dx_rows(Real* dx, const Real* D, const Real* wi, index_t n0, index_t n1, index_t I, index_t H) {
    for (index_t n = n0; n < n1; n += BMR) {
      switch (n1 - n < BMR ? n1 - n : BMR) {
        case BMR: dx_tile<BMR>(dx, D, wi, n, I, H); break;
        case 5: dx_tile<5>(dx, D, wi, n, I, H); break;
        case 4: dx_tile<4>(dx, D, wi, n, I, H); break;
        case 3: dx_tile<3>(dx, D, wi, n, I, H); break;
        case 2: dx_tile<2>(dx, D, wi, n, I, H); break;
        default: dx_tile<1>(dx, D, wi, n, I, H); break;
      }
    }
  }
  template <int MR>
  static inline void dx_tile(Real* dx, const Real* D, const Real* wi, index_t n, index_t I, index_t H) {
    const index_t NR = 2 * W, G = 3 * H, C = 4 * H, nbi = (I + NR - 1) / NR;
    const Real* A = D + n * C;
    alignas(64) Real sums[MR][2][W];
    for (index_t jb = 0; jb < nbi; ++jb) {
      const Real* w = wi + jb * G * NR;
      bwd_product<MR>(&sums[0][0][0], nullptr, A, C, 2 * H, w);                             // r, z
      bwd_product<MR>(&sums[0][0][0], &sums[0][0][0], A + 3 * H, C, H, w + 2 * H * NR);  // n
#pragma GCC unroll 1
      for (int i = 0; i < MR; ++i)
        for (int v = 0; v < 2; ++v) {
          const index_t j = jb * NR + v * W;
          if (j >= I) break;
          stn(dx + (n + i) * I + j, VT::load(sums[i][v]), I - j < W ? int(I - j) : W);
        }
    }
  }

  // ---------------------------------------------------------------- after the recurrence
  // Over rows [n0, n1) of the gradient buffer D (BT, 4H) = [da_r, da_z, dhn, da_n] (D_x = the columns
  // da_r, da_z, da_n: the gradient of x W_ih^T):
  //   part[0 : 4H]                  = sum_n D[n, :]                       (bias sums)
  //   part[4H + k*3H : 4H + (k+1)*3H] = sum_n x[n, k] D_x[n, :]          (dW_ih^T, k < I)
  //   dx[n, k] = D_x[n, :] . W_ih[:, k] for every row (when dx != nullptr); wT = W_ih^T (I, 3H).
  static void small_input_rows(Real* part, Real* dx, const Real* D, const Real* x, const Real* wT, index_t n0,
                               index_t n1, index_t I, index_t H, bool zero) {
    const index_t G = 3 * H, C = 4 * H;
    Real* cs = part;       // (4H)
    Real* pw = part + C;   // (I, 3H)
    if (zero)  // else: adding rows [n0, n1) to the sums of the rows before them
      for (index_t j = 0; j < C + I * G; ++j) part[j] = Real(0);
    alignas(64) Real dot[kSmallI][W];
    for (index_t n = n0; n < n1; ++n) {
      const Real* d = D + n * C;
      const Real* xn = x + n * I;
      index_t j = 0;
      for (; j + W <= C; j += W) VT::store(cs + j, VT::add(VT::load(cs + j), VT::load(d + j)));
      for (; j < C; ++j) cs[j] += d[j];
      for (index_t k = 0; k < I; ++k) VT::store(dot[k], VT::zero());
      Real dxs[kSmallI] = {};
      // D_x = D[0, 2H) ++ D[3H, 4H) -> columns [0, 2H) ++ [2H, 3H) of W_ih^T
      for (int seg = 0; seg < 2; ++seg) {
        const index_t src = seg == 0 ? 0 : 3 * H, dst = seg == 0 ? 0 : 2 * H, len = seg == 0 ? 2 * H : H;
        index_t q = 0;
        for (; q + W <= len; q += W) {
          const V dv = VT::load(d + src + q);
          for (index_t k = 0; k < I; ++k) {
            Real* p = pw + k * G + dst + q;
            VT::store(p, VT::fma(VT::set1(xn[k]), dv, VT::load(p)));
            if (dx) VT::store(dot[k], VT::fma(dv, VT::load(wT + k * G + dst + q), VT::load(dot[k])));
          }
        }
        for (; q < len; ++q) {
          const Real dv = d[src + q];
          for (index_t k = 0; k < I; ++k) {
            pw[k * G + dst + q] += xn[k] * dv;
            dxs[k] += dv * wT[k * G + dst + q];
          }
        }
      }
      if (dx)
        for (index_t k = 0; k < I; ++k) {
          Real s = dxs[k];
          for (int l = 0; l < W; ++l) s += dot[k][l];
          dx[n * I + k] = s;
        }
    }
  }

  // part[0 : 4H] = sum over rows [n0, n1) of D (BT, 4H).
  static void column_sum_rows(Real* part, const Real* D, index_t n0, index_t n1, index_t H, bool zero) {
    const index_t C = 4 * H;
    if (zero)
      for (index_t j = 0; j < C; ++j) part[j] = Real(0);
    for (index_t n = n0; n < n1; ++n) {
      const Real* d = D + n * C;
      index_t j = 0;
      for (; j + W <= C; j += W) VT::store(part + j, VT::add(VT::load(part + j), VT::load(d + j)));
      for (; j < C; ++j) part[j] += d[j];
    }
  }

  // ---------------------------------------------------------------- parameter gradients without packing
  // out[i*ldo + 0 .. nk) += sum over rows n in [n0, n1) of D[n*ldd + i] * S_n[0 .. nk), i < MR, nk <= 2W:
  // an MR x 2W tile of dW = D^T S read straight from the row-major buffers (broadcasts from the D rows,
  // two vector loads from the S rows; no packing of either). S_n = S + n*lds when T == 0 (dW_ih: x);
  // when T > 0 (dW_hh), S_n = the state before step t = n % T of row b = n / T: y row n - 1 (S = y) for
  // t > 0, else h0 row b (rows ldh0 apart, offset like S), or no contribution when h0 is absent. The sum
  // starts from zero and is added to out once: every element sees the same operations whatever the
  // caller's row chunking or thread split (fixed row ranges).
  template <int MR, bool kFull>
  static inline __attribute__((always_inline)) void dw_run(V (&acc)[MR][2], const Real* d, index_t ldd,
                                                           const Real* s, index_t lds, index_t len, int nk) {
    for (index_t r = 0; r < len; ++r, d += ldd, s += lds) {
      V w0, w1;
      if (kFull) {
        w0 = VT::load(s);
        w1 = VT::load(s + W);
      } else {
        w0 = ldn(s, nk < W ? nk : W);
        w1 = nk > W ? ldn(s + W, nk - W) : VT::zero();
      }
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const V dv = VT::bcast(d + i);
        acc[i][0] = VT::fma(dv, w0, acc[i][0]);
        acc[i][1] = VT::fma(dv, w1, acc[i][1]);
      }
    }
  }
  template <int MR, bool kFull>
  static __attribute__((noinline)) void dw_product(Real* out, index_t ldo, const Real* D, index_t ldd,
                                                   const Real* S, index_t lds, index_t n0, index_t n1,
                                                   index_t T, const Real* h0, index_t ldh0, int nk) {
    V acc[MR][2];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = VT::zero();
    if (T == 0) {
      dw_run<MR, kFull>(acc, D + n0 * ldd, ldd, S + n0 * lds, lds, n1 - n0, nk);
    } else {
      // row segments within one sequence: rows n (t >= 1) pair with y rows n - 1
      for (index_t n = n0; n < n1;) {
        const index_t t = n % T;
        if (t == 0) {
          if (h0) dw_run<MR, kFull>(acc, D + n * ldd, ldd, h0 + (n / T) * ldh0, 0, 1, nk);
          ++n;
          continue;
        }
        const index_t e = n - t + T < n1 ? n - t + T : n1;
        dw_run<MR, kFull>(acc, D + n * ldd, ldd, S + (n - 1) * lds, lds, e - n, nk);
        n = e;
      }
    }
#pragma GCC unroll 8  // static indices: a loop over acc[i] would keep acc in memory
    for (int i = 0; i < MR; ++i) {
      Real* o = out + i * ldo;
      if (kFull) {
        VT::store(o, VT::add(VT::load(o), acc[i][0]));
        VT::store(o + W, VT::add(VT::load(o + W), acc[i][1]));
      } else {
        const int n0v = nk < W ? nk : W;
        stn(o, VT::add(ldn(o, n0v), acc[i][0]), n0v);
        if (nk > W) stn(o + W, VT::add(ldn(o + W, nk - W), acc[i][1]), nk - W);
      }
    }
  }

  // Rows q0 .. q0+m (m <= BMR) of dW (ld N) for all N columns, from D columns dcol .. dcol+m, rows [n0, n1).
  static void dw_rows(Real* dw, index_t N, index_t q0, int m, const Real* D, index_t ldd, index_t dcol,
                      const Real* S, index_t lds, index_t n0, index_t n1, index_t T, const Real* h0) {
    const index_t NR = 2 * W;
    for (index_t k0 = 0; k0 < N; k0 += NR) {
      const int nk = N - k0 < NR ? int(N - k0) : int(NR);
      Real* o = dw + q0 * N + k0;
      const Real* d = D + dcol;
      const Real* sp = S + k0;
      const Real* hp = h0 ? h0 + k0 : nullptr;
      // full (nk == NR) or partial column tile: dw_product's second template argument
      auto run = [&](auto full) {
        constexpr bool kFull = decltype(full)::value;
        switch (m) {
          case BMR: dw_product<BMR, kFull>(o, N, d, ldd, sp, lds, n0, n1, T, hp, N, nk); break;
          case 5: dw_product<5, kFull>(o, N, d, ldd, sp, lds, n0, n1, T, hp, N, nk); break;
          case 4: dw_product<4, kFull>(o, N, d, ldd, sp, lds, n0, n1, T, hp, N, nk); break;
          case 3: dw_product<3, kFull>(o, N, d, ldd, sp, lds, n0, n1, T, hp, N, nk); break;
          case 2: dw_product<2, kFull>(o, N, d, ldd, sp, lds, n0, n1, T, hp, N, nk); break;
          default: dw_product<1, kFull>(o, N, d, ldd, sp, lds, n0, n1, T, hp, N, nk); break;
        }
      };
      if (nk == NR)
        run(std::true_type{});
      else
        run(std::false_type{});
    }
  }

  // ---------------------------------------------------------------- partial vectors (H % W != 0)
  static inline __attribute__((always_inline)) V ldn(const Real* p, int n) {
    if (n == W) return VT::load(p);
    alignas(64) Real tmp[W];
    for (int i = 0; i < W; ++i) tmp[i] = i < n ? p[i] : Real(0);
    return VT::load(tmp);
  }
  static inline __attribute__((always_inline)) void stn(Real* p, V v, int n) {
    if (n == W) {
      VT::store(p, v);
      return;
    }
    alignas(64) Real tmp[W];
    VT::store(tmp, v);
    for (int i = 0; i < n; ++i) p[i] = tmp[i];
  }

  // ---------------------------------------------------------------- forward
  // Prefetch n consecutive values at p (n * sizeof(Real) <= 64): both lines when they straddle a line
  // boundary, as user arrays do (numpy's large arrays start 16 bytes into a page).
  static inline __attribute__((always_inline)) void prefetch_span(const Real* p, int n, int rw) {
    const char* c = reinterpret_cast<const char*>(p);
    if (rw) {
      __builtin_prefetch(c, 1, 3);
      __builtin_prefetch(c + n * sizeof(Real) - 1, 1, 3);
    } else {
      __builtin_prefetch(c, 0, 3);
      __builtin_prefetch(c + n * sizeof(Real) - 1, 0, 3);
    }
  }

  // Software prefetch of the cache lines the epilogue of a tile (rows b .. b+m, step t, units u0 ..)
  // touches: the r, z, n, hn segments of the cache row and the y row. Issued one tile
  // ahead: those rows are T*4H apart, a pattern no hardware prefetcher follows.
  static inline __attribute__((always_inline)) void prefetch_fwd(const FwdArgs<Real>& a, index_t b, index_t m,
                                                                 index_t t, index_t u0) {
    const index_t H = a.H, T = a.T, CW = cache_width(H);
    for (index_t i = 0; i < m; ++i) {
      const index_t row = (b + i) * T + t;
      const Real* g = a.gates + row * CW + cache_at(u0, 0);
      if (!a.stream)
        for (int q = 0; q < 4; ++q) __builtin_prefetch(g + q * kCacheBlock, 1, 3);
      prefetch_span(a.y + row * H + u0, W, 1);
    }
  }

  // Gates and state update of row b (units u0 .. u0+nu) from the recurrent sums ar, az, an.
  // ar, az: x W_i{r,z}^T + h W_h{r,z}^T; anx = x W_in^T; anh = h W_hn^T (biases not yet added).
  static inline __attribute__((always_inline)) void fwd_epilogue(const FwdArgs<Real>& a, index_t b, index_t t,
                                                                 const Real* hprow, index_t u0, int nu, V ar,
                                                                 V az, V anx, V anh, V br, V bz, V bn, V bhn) {
    const index_t H = a.H, row = b * a.T + t;
    Real* g = a.gates + row * cache_width(H) + cache_at(u0, 0);  // block of (b, t) holding unit u0
    const V r = M::sigmoid(VT::add(ar, br));
    const V z = M::sigmoid(VT::add(az, bz));
    const V hn = VT::add(anh, bhn);
    const V n = M::tanh(VT::fma(r, hn, VT::add(anx, bn)));
    const V hprev = ldn(hprow + u0, nu);
    const V h = VT::fma(z, VT::sub(hprev, n), n);  // (1 - z) n + z h_{t-1}
    if (a.stream) {  // one whole block (two cache lines) per row
      VT::stream(g, r);
      VT::stream(g + kCacheBlock, z);
      VT::stream(g + 2 * kCacheBlock, n);
      VT::stream(g + 3 * kCacheBlock, hn);
    } else {
      VT::store(g, r);  // whole vectors: the cache block is padded to 8 units
      VT::store(g + kCacheBlock, z);
      VT::store(g + 2 * kCacheBlock, n);
      VT::store(g + 3 * kCacheBlock, hn);
    }
    stn(a.y + row * H + u0, h, nu);
  }

  // acc[i][0..2] += sum_k A[i*lda + k] * w[k*3W + (0..2)*W] for k < K: the register-blocked product of MR
  // rows of A (broadcast) with a (K, 3W) sliver of packed weights.
  template <int MR>
  static inline __attribute__((always_inline)) void fwd_product(V (&acc)[MR][3], const Real* A, index_t lda,
                                                                index_t K, const Real* __restrict w) {
    for (index_t k = 0; k < K; ++k) {
      const V w0 = VT::load(w), w1 = VT::load(w + W), w2 = VT::load(w + 2 * W);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const V h = VT::bcast(A + i * lda + k);
        acc[i][0] = VT::fma(h, w0, acc[i][0]);
        acc[i][1] = VT::fma(h, w1, acc[i][1]);
        acc[i][2] = VT::fma(h, w2, acc[i][2]);
      }
      w += 3 * W;
    }
  }

  // sums[i] = [x W_ir + h W_hr, x W_iz + h W_hz, x W_in, h W_hn] for MR rows (h: rows of hp, ldh apart,
  // K = H or 0; x: rows of xp, ldx apart). Not inlined: the product loops get all 16 vector registers
  // (12 accumulators, 3 weight vectors, 1 broadcast) instead of sharing them with the epilogue's
  // constants, which had pushed two weight vectors to memory operands (13 loads per 12 FMAs).
  template <int MR>
  static __attribute__((noinline)) void fwd_products(Real (&sums)[MR][4][W], const Real* hp, index_t ldh,
                                                     index_t K, const Real* wblk, const Real* xp, index_t ldx,
                                                     index_t I, const Real* wiblk) {
    V acc[MR][3];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = acc[i][2] = VT::zero();
    fwd_product<MR>(acc, hp, ldh, K, wblk);  // h_{t-1} W_hh^T
    // The n gate keeps its two halves apart (r multiplies only W_hn h + b_hn): set W_hn h aside.
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      VT::store(sums[i][3], acc[i][2]);
      acc[i][2] = VT::zero();
    }
    fwd_product<MR>(acc, xp, ldx, I, wiblk);  // x_t W_ih^T
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      VT::store(sums[i][0], acc[i][0]);
      VT::store(sums[i][1], acc[i][1]);
      VT::store(sums[i][2], acc[i][2]);
    }
  }

  // Rows b0 .. b0+MR of step t, units u0 .. u0+nu. hp: h_{t-1} of row b0, rows ldh apart (ldh = 0: one
  // zero row for all). K = H, or 0 when h_{t-1} is zero. wblk / wiblk: this unit block of wp / wpi.
  // The input projection x_t W_ih^T is computed here too (K = I more steps of the same product): for the
  // small I of forecasting models, a separate GEMM over all B*T rows ran at a fraction of peak (K = I) and
  // sent its (B,T,3H) result through memory and back.
  template <int MR>
  static inline __attribute__((always_inline)) void fwd_tile(const FwdArgs<Real>& a, index_t b0, index_t t,
                                                             const Real* hp, index_t ldh, index_t K,
                                                             const Real* __restrict wblk,
                                                             const Real* __restrict wiblk, index_t u0, int nu,
                                                             V br, V bz, V bn, V bhn) {
    alignas(64) Real sums[MR][4][W];
    fwd_products<MR>(sums, hp, ldh, K, wblk, a.x + (b0 * a.T + t) * a.I, a.T * a.I, a.I, wiblk);
    // The epilogue runs as a loop over rows (not unrolled: code size).
#pragma GCC unroll 1
    for (int i = 0; i < MR; ++i)
      fwd_epilogue(a, b0 + i, t, hp + i * ldh, u0, nu, VT::load(sums[i][0]), VT::load(sums[i][1]),
                   VT::load(sums[i][2]), VT::load(sums[i][3]), br, bz, bn, bhn);
  }

  // One unit block (units u0 .. u0+nu) of step t for rows [b0, b1), in tiles of MR rows; prefetches the
  // epilogue lines of the next tile (the first rows of the next unit block after the last tile).
  template <int MR>
  static void fwd_block(const FwdArgs<Real>& a, index_t b0, index_t b1, index_t t, const Real* hp, index_t ldh,
                        index_t K, const Real* wblk, const Real* wiblk, index_t u0, int nu, V br, V bz, V bn,
                        V bhn) {
    for (index_t b = b0; b < b1; b += MR) {
      const index_t m = b1 - b < MR ? b1 - b : MR;
      if (b + MR < b1)
        prefetch_fwd(a, b + MR, b1 - b - MR < MR ? b1 - b - MR : MR, t, u0);
      else if (u0 + W < a.H)
        prefetch_fwd(a, b0, b1 - b0 < MR ? b1 - b0 : MR, t, u0 + W);
      switch (m) {
        case MR: fwd_tile<MR>(a, b, t, hp + b * ldh, ldh, K, wblk, wiblk, u0, nu, br, bz, bn, bhn); break;
        case 3: fwd_tile<3>(a, b, t, hp + b * ldh, ldh, K, wblk, wiblk, u0, nu, br, bz, bn, bhn); break;
        case 2: fwd_tile<2>(a, b, t, hp + b * ldh, ldh, K, wblk, wiblk, u0, nu, br, bz, bn, bhn); break;
        default: fwd_tile<1>(a, b, t, hp + b * ldh, ldh, K, wblk, wiblk, u0, nu, br, bz, bn, bhn); break;
      }
    }
  }

  // Every step for batch rows [b0, b1).
  static void forward_rows(const FwdArgs<Real>& a, index_t b0, index_t b1) {
    const index_t H = a.H, T = a.T, nb = (H + W - 1) / W;
    for (index_t t = 0; t < T; ++t) {
      const Real* hp;  // h_{t-1} of row 0 (rows ldh apart)
      index_t ldh, K = H;
      if (t > 0) {
        hp = a.y + (t - 1) * H;
        ldh = T * H;
      } else if (a.h0) {
        hp = a.h0;
        ldh = H;
      } else {
        hp = a.zeros;
        ldh = 0;
        K = 0;
      }
      // Row panels: a panel's h_{t-1} rows (~12 KiB) stay in L1 while every unit block's weights stream
      // past them (instead of re-reading all rows of h from L2 per unit block). Same operations per
      // element in the same order: results do not change.
      const index_t rows = K > 0 ? (index_t(12 * 1024) / (K * index_t(sizeof(Real)))) / FMR * FMR : b1 - b0;
      const index_t panel = rows > FMR ? rows : FMR;
      for (index_t p0 = b0; p0 < b1; p0 += panel) {
        const index_t p1 = p0 + panel < b1 ? p0 + panel : b1;
        prefetch_fwd(a, p0, p1 - p0 < FMR ? p1 - p0 : FMR, t, 0);
        for (index_t jb = 0; jb < nb; ++jb) {
          const index_t u0 = jb * W;
          const int nu = H - u0 < W ? int(H - u0) : W;
          const Real* bb = a.bias + jb * 4 * W;
          fwd_block<FMR>(a, p0, p1, t, hp, ldh, K, a.wp + jb * H * 3 * W, a.wpi + jb * a.I * 3 * W, u0, nu,
                         VT::load(bb), VT::load(bb + W), VT::load(bb + 2 * W), VT::load(bb + 3 * W));
        }
      }
    }
  }

  // ---------------------------------------------------------------- backward
  // Elementwise part of step s for row b, units u .. u+nu, given dh = dL/dh_s: writes the dgates row
  // [da_r, da_z, dhn, da_n] and dhd = dh z.
  static inline __attribute__((always_inline)) void elem_bwd(const BwdArgs<Real>& a, index_t b, index_t s,
                                                             index_t u, int nu, V dh) {
    const index_t H = a.H, T = a.T, row = b * T + s;
    const Real* g = a.gates + row * cache_width(H) + cache_at(u, 0);  // whole vectors: padded blocks
    const V r = VT::load(g), z = VT::load(g + kCacheBlock), n = VT::load(g + 2 * kCacheBlock),
            hn = VT::load(g + 3 * kCacheBlock);
    const Real* hp = s > 0 ? a.y + (row - 1) * H + u : (a.h0 ? a.h0 + b * H + u : a.zeros);
    const V hprev = ldn(hp, nu);
    const V one = VT::set1(Real(1));
    const V dhz = VT::mul(dh, z);
    const V dn = VT::sub(dh, dhz);                            // dh (1 - z)
    const V dz = VT::mul(dh, VT::sub(hprev, n));              // dh (h_{s-1} - n)
    const V dan = VT::mul(dn, VT::sub(one, VT::mul(n, n)));  // dn (1 - n^2)
    const V dar = VT::mul(VT::mul(dan, hn), VT::sub(r, VT::mul(r, r)));
    const V daz = VT::mul(dz, VT::sub(z, VT::mul(z, z)));
    Real* d = a.dgates + row * 4 * H + u;
    stn(d, dar, nu);
    stn(d + H, daz, nu);
    stn(d + 2 * H, VT::mul(dan, r), nu);
    stn(d + 3 * H, dan, nu);
    stn(a.dhd + b * H + u, dhz, nu);
  }

  // Software prefetch of the lines the epilogue of a backward tile (rows b .. b+m, units u .. u+2W) touches
  // for step s = t-1: the cache row (r, z, n, hn), h_{s-1} in y, dy, and the dgates row it writes.
  static inline __attribute__((always_inline)) void prefetch_bwd(const BwdArgs<Real>& a, index_t b, index_t m,
                                                                 index_t s, index_t u) {
    const index_t H = a.H, T = a.T, CW = cache_width(H);
    constexpr int kStep = 64 / sizeof(Real);
    for (index_t i = 0; i < m; ++i) {
      const index_t row = (b + i) * T + s;
      const Real* g = a.gates + row * CW + cache_at(u, 0);
      const Real* d = a.dgates + row * 4 * H + u;
      for (int q = 0; q < 8 * W; q += kStep) __builtin_prefetch(g + q, 0, 3);  // 2W units: 8W values
      for (int q = 0; q < 4; ++q) __builtin_prefetch(d + q * H, 1, 3);
      if (s > 0) prefetch_span(a.y + (row - 1) * H + u, 2 * W, 0);
      if (a.dy) prefetch_span(a.dy + row * H + u, 2 * W, 0);
    }
  }

  // out[i] = in[i] + A[i*lda + 0 .. K) @ (K, 2W) sliver w, for MR rows (in == nullptr: zeros); in / out
  // hold MR rows of 2W values, contiguous. Not inlined (registers, see fwd_products).
  template <int MR>
  static __attribute__((noinline)) void bwd_product(Real* out, const Real* in, const Real* A,
                                                    index_t lda, index_t K, const Real* __restrict w) {
    V acc[MR][2];
    if (in) {
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        acc[i][0] = VT::load(in + i * 2 * W);
        acc[i][1] = VT::load(in + i * 2 * W + W);
      }
    } else {
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = VT::zero();
    }
    for (index_t k = 0; k < K; ++k) {
      const V w0 = VT::load(w), w1 = VT::load(w + W);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const V d = VT::bcast(A + i * lda + k);
        acc[i][0] = VT::fma(d, w0, acc[i][0]);
        acc[i][1] = VT::fma(d, w1, acc[i][1]);
      }
      w += 2 * W;
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      VT::store(out + i * 2 * W, acc[i][0]);
      VT::store(out + i * 2 * W + W, acc[i][1]);
    }
  }

  // Rows b0 .. b0+MR, units ub*2W .. +2W, K chunk [k0, k1) of the product dgates(b, t)[0:3H] @ W_hh (wblk:
  // this unit block's sliver). Before the last chunk the partial sums go to a.acc; after it,
  // dh_{t-1} = sum + dhd (+ dy) feeds the elementwise part of step t-1, or, at t = 0, is dh0.
  template <int MR>
  static inline __attribute__((always_inline)) void bwd_tile(const BwdArgs<Real>& a, index_t b0, index_t t,
                                                             index_t ub, const Real* __restrict wblk, index_t k0,
                                                             index_t k1) {
    const index_t H = a.H, T = a.T, NR = 2 * W;
    Real* part = a.acc ? a.acc + (ub * a.B + b0) * NR : nullptr;  // (MR, 2W) when K is chunked
    const Real* in = k0 > 0 ? part : nullptr;
    const Real* A = a.dgates + (b0 * T + t) * 4 * H + k0;
    if (k1 < 3 * H) {
      bwd_product<MR>(part, in, A, T * 4 * H, k1 - k0, wblk + k0 * NR);
      return;
    }
    alignas(64) Real sums[MR][2][W];
    bwd_product<MR>(&sums[0][0][0], in, A, T * 4 * H, k1 - k0, wblk + k0 * NR);
    // Epilogue as a loop (not unrolled: code size).
#pragma GCC unroll 1
    for (int i = 0; i < MR; ++i) {
      const index_t b = b0 + i;
#pragma GCC unroll 1
      for (int v = 0; v < 2; ++v) {
        const index_t u = ub * 2 * W + v * W;
        if (u >= H) break;
        const int nu = H - u < W ? int(H - u) : W;
        V dh = VT::add(VT::load(sums[i][v]), ldn(a.dhd + b * H + u, nu));
        if (t == 0) {
          stn(a.dh0 + b * H + u, dh, nu);
        } else {
          if (a.dy) dh = VT::add(dh, ldn(a.dy + (b * T + t - 1) * H + u, nu));
          elem_bwd(a, b, t - 1, u, nu, dh);
        }
      }
    }
  }

  template <int MR>
  static inline __attribute__((always_inline)) void bwd_tile_any(const BwdArgs<Real>& a, index_t b, index_t m,
                                                                 index_t t, index_t ub, const Real* wblk,
                                                                 index_t k0, index_t k1) {
    switch (m) {
      case MR: bwd_tile<MR>(a, b, t, ub, wblk, k0, k1); break;
      case 5: bwd_tile<5>(a, b, t, ub, wblk, k0, k1); break;
      case 4: bwd_tile<4>(a, b, t, ub, wblk, k0, k1); break;
      case 3: bwd_tile<3>(a, b, t, ub, wblk, k0, k1); break;
      case 2: bwd_tile<2>(a, b, t, ub, wblk, k0, k1); break;
      default: bwd_tile<1>(a, b, t, ub, wblk, k0, k1); break;
    }
  }

  static void backward_rows(const BwdArgs<Real>& a, index_t b0, index_t b1) {
    const index_t H = a.H, T = a.T, G = 3 * H, NR = 2 * W, nbb = (H + NR - 1) / NR;
    // Step T-1: dh = dh_final + dy[:, T-1].
    for (index_t b = b0; b < b1; ++b)
      for (index_t u = 0; u < H; u += W) {
        const int nu = H - u < W ? int(H - u) : W;
        V d = a.dh ? ldn(a.dh + b * H + u, nu) : VT::zero();
        if (a.dy) d = VT::add(d, ldn(a.dy + (b * T + T - 1) * H + u, nu));
        elem_bwd(a, b, T - 1, u, nu, d);
      }
    // Per step: row panels; per panel, K chunks; per chunk, the unit blocks (weight sliver chunks) each
    // over the panel's row tiles. The epilogue (last chunk) of a tile prefetches the next tile's lines.
    const index_t kc = a.acc ? a.kc : G, panel = a.panel, pf = a.pf;
    for (index_t t = T - 1; t >= 0; --t)
      for (index_t p0 = b0; p0 < b1; p0 += panel) {
        const index_t p1 = p0 + panel < b1 ? p0 + panel : b1;
        for (index_t k0 = 0; k0 < G; k0 += kc) {
          const index_t k1 = k0 + kc < G ? k0 + kc : G;
          const bool last = k1 == G;
          // Tiles of the last chunk in order j = ub * ntile + (b - p0) / BMR; tile j prefetches the
          // epilogue lines of tile j + pf (the first pf tiles up front).
          const index_t ntile = (p1 - p0 + BMR - 1) / BMR, nt_all = ntile * nbb;
          auto pf_tile = [&](index_t j) {
            if (j >= nt_all) return;
            const index_t bj = p0 + (j % ntile) * BMR;
            prefetch_bwd(a, bj, p1 - bj < BMR ? p1 - bj : BMR, t - 1, (j / ntile) * NR);
          };
          if (last && t > 0)
            for (index_t j = 0; j < pf; ++j) pf_tile(j);
          for (index_t ub = 0; ub < nbb; ++ub) {
            const Real* wblk = a.wb + ub * G * NR;
            for (index_t b = p0; b < p1; b += BMR) {
              if (last && t > 0) pf_tile(ub * ntile + (b - p0) / BMR + pf);
              bwd_tile_any<BMR>(a, b, p1 - b < BMR ? p1 - b : BMR, t, ub, wblk, k0, k1);
            }
          }
        }
      }
  }
};

}  // namespace
}  // namespace ND_GRU_ISA
}  // namespace gru_detail
}  // namespace nd
#endif  // ND_GRU_SIMD_PASS
