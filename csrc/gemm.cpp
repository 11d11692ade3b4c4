// General matrix multiply, row-major: C(M,N) = alpha * op(A)(M,K) * op(B)(K,N) + beta * C.
// Dimension letters: M rows of C / op(A), N columns of C / op(B), K the inner dimension.
//
// GotoBLAS / BLIS structure (see gemm_kernels.h for the packed layouts and the micro-kernels):
//   for jc in N step NC:                       B panel  op(B)(pc:pc+kc, jc:jc+nc)  -> L3
//     for pc in K step KC:                     K block: beta applies to the first one only
//       pack B panel (unless fused, below)
//       for ic in M step MC:                   A block  op(A)(ic:ic+mc, pc:pc+kc)  -> L2
//         pack A block
//         for jr in nc step NR:                B sliver (kc x NR) -> L1
//           for ir in mc step MR:              micro-kernel: MR x NR accumulators in registers
// When the whole M range is a single A block (the common case for the models: M = batch = 32..256),
// the B panel is not packed up front: each NR sliver is packed right before use and stays in L1
// ("fused" macro-kernel), which saves a pass over a panel that is used only once per K block.
// Operands whose packed sliver is strided in memory (op(A) = A^T, op(B) = B: the weight gradients'
// dW = dY^T X over B*T rows) are packed in groups of whole rows read contiguously (gemm_kernels.h), and
// while one block is computed the source rows of the block packed next are prefetched (Prefetch): a
// tall-K product streams both operands from memory once, and without this each packing pass waited on it.
//
// Threads: the (M, N) iteration space is split into a few contiguous chunks per thread (handed out
// dynamically), in whole MR / NR tiles, along N when M <= N (each chunk then packs all of op(A), the
// smaller operand) else along M.
// K is never split and the K blocking does not depend on the thread count, so every element of C is
// computed by the same sequence of operations whatever the number of threads: results are bitwise
// identical for any thread count. Problems under kMinFlopsPerThread per thread run on one thread.
//
// Buffers: packed A / B live in thread-local, 4 KiB-aligned buffers that only grow, so steady-state
// calls do not allocate.
#include "gemm.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include "gemm_kernels.h"
#include "gemm_packed.h"

#ifdef ND_OPENMP
#include <omp.h>
#endif

namespace nd {
namespace gemm_detail {
namespace {

// ------------------------------------------------------------------------------------------ portable kernel
// GCC/Clang vector extensions: 16-byte vectors map to SSE2 on x86-64 and NEON on aarch64. a*b+c is
// contracted to an FMA where the target has one (aarch64), and stays mul+add on the x86-64 baseline.
template <typename TT>
struct GenericVec {
  using T = TT;
  typedef T V __attribute__((vector_size(16)));
  static constexpr int W = 16 / sizeof(T);
  static constexpr bool kMasked = false;
  static inline V zero() { return V{}; }
  static inline V set1(T x) {
    V v;
    for (int i = 0; i < W; ++i) v[i] = x;
    return v;
  }
  static inline V load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
  }
  static inline V bcast(const T* p) { return set1(*p); }
  static inline V fma(V a, V b, V c) { return a * b + c; }
  static inline V mul(V a, V b) { return a * b; }
  static inline void store(T* p, V v) { std::memcpy(p, &v, sizeof(V)); }
};

using GenericUkF32 = MicroKernel<GenericVec<float>, 4, 2>;   // 4 x 8
using GenericUkF64 = MicroKernel<GenericVec<double>, 4, 2>;  // 4 x 4

constexpr IsaKernels kGeneric = {
    "generic",
    make_kernel_set<GenericUkF32, NoTransposer>(/*mc=*/128, /*kc=*/256, /*nc=*/2048),
    make_kernel_set<GenericUkF64, NoTransposer>(/*mc=*/64, /*kc=*/256, /*nc=*/1024),
};

// ------------------------------------------------------------------------------------------ dispatch
enum Isa : int { kIsaAuto = -1, kIsaGeneric = 0, kIsaAvx2 = 1, kIsaAvx512 = 2 };

#if defined(ND_X86) && ND_X86 && defined(__x86_64__)
#define ND_GEMM_X86 1
#else
#define ND_GEMM_X86 0
#endif

const IsaKernels* kernels_of(int isa) {
#if ND_GEMM_X86
  if (isa == kIsaAvx512) return avx512_kernels();
  if (isa == kIsaAvx2) return avx2_kernels();
#endif
  return isa == kIsaGeneric ? &kGeneric : nullptr;
}

bool cpu_supports(int isa) {
  if (isa == kIsaGeneric) return true;
#if ND_GEMM_X86
  __builtin_cpu_init();
  // __builtin_cpu_supports also checks that the OS saves the YMM / ZMM state (XCR0).
  if (isa == kIsaAvx2)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && avx2_kernels() != nullptr;
  if (isa == kIsaAvx512)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("fma") && avx512_kernels() != nullptr;
#endif
  return false;
}

int best_isa() {
  static const int best = cpu_supports(kIsaAvx512) ? kIsaAvx512
                          : cpu_supports(kIsaAvx2) ? kIsaAvx2
                                                   : kIsaGeneric;
  return best;
}

std::atomic<int> g_forced{kIsaAuto};

const IsaKernels& current_kernels() {
  int f = g_forced.load(std::memory_order_relaxed);
  return *kernels_of(f == kIsaAuto ? best_isa() : f);
}

// ------------------------------------------------------------------------------------------ workspace
struct Workspace {
  void* a = nullptr;
  std::size_t a_bytes = 0;
  void* b = nullptr;
  std::size_t b_bytes = 0;
  ~Workspace() {
    std::free(a);
    std::free(b);
  }
  // Grow-only 4 KiB-aligned buffer; nullptr if the allocation fails.
  static void* reserve(void*& p, std::size_t& cap, std::size_t need) {
    if (need <= cap) return p;
    std::free(p);
    p = nullptr;
    cap = 0;
    need = (need + 4095) & ~std::size_t(4095);
    void* q = std::aligned_alloc(4096, need);
    if (q) {
      p = q;
      cap = need;
    }
    return q;
  }
};
thread_local Workspace tls_ws;

inline index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }
inline index_t round_up(index_t a, index_t b) { return ceil_div(a, b) * b; }

// Under this many FLOPs per thread, extra threads cost more (fork/join, duplicated packing) than
// they save. ~2 MFLOP is ~30 us at 64 GFLOP/s; an OpenMP fork/join with a warm pool is a few us.
constexpr double kMinFlopsPerThread = 2.0e6;
// Work chunks per thread when threaded (each chunk re-packs the operand that is not split).
constexpr index_t kChunksPerThread = 3;
constexpr index_t kMinChunk = 384;

// C(i0:i1, j0:j1) for the full K range, on the calling thread. kcb: K block (same for every thread).
template <typename T>
bool gemm_range(const KernelSet<T>& ks, bool ta, bool tb, index_t i0, index_t i1, index_t j0, index_t j1,
                index_t K, index_t kcb, T alpha, const T* A, index_t lda, const T* B, index_t ldb, T beta,
                T* C, index_t ldc) {
  const index_t MR = ks.mr, NR = ks.nr;
  const index_t m_all = i1 - i0, n_all = j1 - j0;
  // Balanced M blocks (multiples of MR); one block => fused B packing, N not blocked.
  const index_t n_mb = ceil_div(m_all, ks.mc);
  const index_t mcb = round_up(ceil_div(m_all, n_mb), MR);
  const bool fused = n_mb == 1;
  const index_t ncb = fused ? n_all : round_up(ceil_div(n_all, ceil_div(n_all, ks.nc)), NR);

  Workspace& ws = tls_ws;
  T* Ap = static_cast<T*>(Workspace::reserve(ws.a, ws.a_bytes, sizeof(T) * mcb * kcb));
  T* Bp = static_cast<T*>(
      Workspace::reserve(ws.b, ws.b_bytes, sizeof(T) * (fused ? NR : round_up(ncb, NR)) * kcb));
  if (!Ap || !Bp) return false;

  // Source rows of the blocks packed next (see Prefetch in gemm_kernels.h). op(X) block (outer o0..o0+no,
  // inner q0..q0+nq) of X stored with leading dimension ld, transposed (tr) or not: A's (i, k) and B's (k, j).
  auto region = [](const T* X, index_t ld, bool tr, index_t o0, index_t no, index_t q0, index_t nq) {
    Prefetch::Region g;
    g.base = reinterpret_cast<const char*>(tr ? X + q0 * ld + o0 : X + o0 * ld + q0);
    g.rows = tr ? nq : no;
    g.stride = ld * index_t(sizeof(T));
    g.bytes = (tr ? no : nq) * index_t(sizeof(T));
    return g;
  };
  auto region_a = [&](index_t i, index_t m, index_t k, index_t kc) { return region(A, lda, ta, i, m, k, kc); };
  auto region_b = [&](index_t k, index_t kc, index_t j, index_t n) { return region(B, ldb, tb, k, kc, j, n); };
  for (index_t jc = j0; jc < j1; jc += ncb) {
    const index_t nc = j1 - jc < ncb ? j1 - jc : ncb;
    for (index_t pc = 0; pc < K; pc += kcb) {
      const index_t kc = K - pc < kcb ? K - pc : kcb;
      const T be = pc == 0 ? beta : T(1);
      if (!fused) ks.pack_b(tb, B, ldb, pc, kc, jc, nc, Bp);
      for (index_t ic = i0; ic < i1; ic += mcb) {
        const index_t mc = i1 - ic < mcb ? i1 - ic : mcb;
        ks.pack_a(ta, A, lda, ic, mc, pc, kc, Ap);
        T* c = C + ic * ldc + jc;
        Prefetch pf;
        bool use_pf = true;
        if (ic + mcb < i1) {  // next: the next A block over the same B panel
          const index_t in = ic + mcb;
          pf.r[0] = region_a(in, i1 - in < mcb ? i1 - in : mcb, pc, kc);
        } else if (pc + kcb < K) {  // next: the next K block (B panel, first A block)
          const index_t pn = pc + kcb, kn = K - pn < kcb ? K - pn : kcb;
          pf.r[0] = region_b(pn, kn, jc, nc);
          pf.r[1] = region_a(i0, i1 - i0 < mcb ? i1 - i0 : mcb, pn, kn);
        } else if (jc + ncb < j1) {  // next: the next N panel, first K block
          const index_t jn = jc + ncb, kn = K < kcb ? K : kcb;
          pf.r[0] = region_b(0, kn, jn, j1 - jn < ncb ? j1 - jn : ncb);
          pf.r[1] = region_a(i0, i1 - i0 < mcb ? i1 - i0 : mcb, 0, kn);
        } else {
          use_pf = false;
        }
        if (use_pf) {
          const index_t lines = pf.r[0].rows * (pf.r[0].bytes / 64 + 2) + pf.r[1].rows * (pf.r[1].bytes / 64 + 2);
          const index_t tiles = ceil_div(mc, MR) * ceil_div(nc, NR);
          pf.per_tile = ceil_div(lines, tiles);
        }
        if (fused)
          ks.macro_packb(tb, B, ldb, pc, jc, mc, nc, kc, Ap, Bp, alpha, be, c, ldc, use_pf ? &pf : nullptr);
        else
          ks.macro(mc, nc, kc, Ap, Bp, alpha, be, c, ldc, use_pf ? &pf : nullptr);
      }
    }
  }
  return true;
}

template <typename T>
void scale_c(index_t M, index_t N, T beta, T* C, index_t ldc) {
  for (index_t i = 0; i < M; ++i) {
    T* c = C + i * ldc;
    if (beta == T(0))
      for (index_t j = 0; j < N; ++j) c[j] = T(0);
    else if (beta != T(1))
      for (index_t j = 0; j < N; ++j) c[j] *= beta;
  }
}

template <typename T>
void gemm_impl(const KernelSet<T>& ks, bool ta, bool tb, index_t M, index_t N, index_t K, T alpha,
               const T* A, index_t lda, const T* B, index_t ldb, T beta, T* C, index_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == T(0)) {  // C = beta * C (BLAS semantics: A and B are not read)
    scale_c(M, N, beta, C, ldc);
    return;
  }
  // K blocks: balanced, a multiple of 8 (SIMD transposes in the packing), independent of threads.
  const index_t n_kb = ceil_div(K, ks.kc);
  const index_t kcb = n_kb == 1 ? K : round_up(ceil_div(K, n_kb), 8);

  int nt = 1;
#ifdef ND_OPENMP
  if (!omp_in_parallel()) {
    const double flops = 2.0 * double(M) * double(N) * double(K);
    const double by_work = flops / kMinFlopsPerThread;
    nt = num_threads();
    if (by_work < nt) nt = by_work < 1 ? 1 : int(by_work);
  }
#endif
  const index_t mu = ceil_div(M, ks.mr), nu = ceil_div(N, ks.nr);
  bool split_n = M <= N;
  if (split_n && nu < nt && mu > nu) split_n = false;
  if (!split_n && mu < nt && nu > mu) split_n = true;
  const index_t units = split_n ? nu : mu;
  if (units < nt) nt = int(units);

  bool ok = true;
  if (nt <= 1) {
    ok = gemm_range(ks, ta, tb, 0, M, 0, N, K, kcb, alpha, A, lda, B, ldb, beta, C, ldc);
  } else {
#ifdef ND_OPENMP
    // Chunks handed out dynamically (a few per thread): a thread that loses its core to another
    // process takes fewer chunks. Which thread computes a tile never changes its bits.
    const double flops = 2.0 * double(M) * double(N) * double(K);
    index_t chunks = index_t(nt) * kChunksPerThread;
    const index_t by_work = index_t(flops / kMinFlopsPerThread);
    if (chunks > by_work) chunks = by_work > nt ? by_work : nt;
    // Each chunk re-packs the whole unsplit operand (M*K or K*N elements for 2*M*K*width FLOPs):
    // keep chunks at least kMinChunk rows / columns wide so that this stays a few percent.
    const index_t by_size = units / ceil_div(kMinChunk, split_n ? ks.nr : ks.mr);
    if (chunks > by_size) chunks = by_size > nt ? by_size : nt;
    if (chunks > units) chunks = units;
    std::atomic<bool> all_ok{true};
#pragma omp parallel num_threads(nt)
    {
#pragma omp for schedule(dynamic, 1)
      for (index_t ch = 0; ch < chunks; ++ch) {
        index_t ub, ue;
        split_range(units, int(chunks), int(ch), ub, ue);
        bool r = true;
        if (split_n)
          r = gemm_range(ks, ta, tb, 0, M, ub * ks.nr, ue * ks.nr < N ? ue * ks.nr : N, K, kcb, alpha, A, lda,
                         B, ldb, beta, C, ldc);
        else
          r = gemm_range(ks, ta, tb, ub * ks.mr, ue * ks.mr < M ? ue * ks.mr : M, 0, N, K, kcb, alpha, A, lda,
                         B, ldb, beta, C, ldc);
        if (!r) all_ok.store(false);
      }
    }
    ok = all_ok.load();
#endif
  }
  if (!ok) throw std::bad_alloc();
}

// Panel sizes of a pre-packed op(B) (K,N): the N panels and K blocks nd::gemm uses on one thread when M
// spans more than one A block (gemm_impl / gemm_range).
template <typename T>
void packed_blocks(const KernelSet<T>& ks, index_t K, index_t N, index_t& kcb, index_t& ncb) {
  const index_t n_kb = ceil_div(K, ks.kc);
  kcb = n_kb == 1 ? K : round_up(ceil_div(K, n_kb), 8);
  ncb = round_up(ceil_div(N, ceil_div(N, ks.nc)), ks.nr);
}

template <typename T>
const KernelSet<T>& kernel_set(const IsaKernels& k);
template <>
const KernelSet<float>& kernel_set<float>(const IsaKernels& k) {
  return k.f32;
}
template <>
const KernelSet<double>& kernel_set<double>(const IsaKernels& k) {
  return k.f64;
}

}  // namespace
}  // namespace gemm_detail

// ------------------------------------------------------------------------------------------ public API
template <typename T>
void gemm(bool ta, bool tb, index_t M, index_t N, index_t K, T alpha, const T* A, index_t lda, const T* B,
          index_t ldb, T beta, T* C, index_t ldc) {
  using namespace gemm_detail;
  gemm_impl<T>(kernel_set<T>(current_kernels()), ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

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
void gemm_pack_b(bool tb, index_t K, index_t N, const T* B, index_t ldb, PackedB<T>& out) {
  using namespace gemm_detail;
  const IsaKernels& isa = current_kernels();
  const KernelSet<T>& ks = kernel_set<T>(isa);
  out.K = K;
  out.N = N;
  out.isa = &isa;
  if (K <= 0 || N <= 0) {
    out.data.clear();
    return;
  }
  index_t kcb, ncb;
  packed_blocks(ks, K, N, kcb, ncb);
  out.data.assign(static_cast<std::size_t>(round_up(N, ks.nr) * K), T(0));
  T* p = out.data.data();
  for (index_t jc = 0; jc < N; jc += ncb) {
    const index_t nc = N - jc < ncb ? N - jc : ncb;
    for (index_t pc = 0; pc < K; pc += kcb) {
      const index_t kc = K - pc < kcb ? K - pc : kcb;
      ks.pack_b(tb, B, ldb, pc, kc, jc, nc, p);
      p += round_up(nc, ks.nr) * kc;
    }
  }
}

template <typename T>
void gemm_packed_b(bool ta, index_t M, T alpha, const T* A, index_t lda, const PackedB<T>& Bp, T beta, T* C,
                   index_t ldc) {
  using namespace gemm_detail;
  const IsaKernels& isa = current_kernels();
  if (Bp.isa != &isa) throw std::logic_error("gemm_packed_b: B was packed for another GEMM kernel family");
  const KernelSet<T>& ks = kernel_set<T>(isa);
  const index_t K = Bp.K, N = Bp.N;
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == T(0)) {
    scale_c(M, N, beta, C, ldc);
    return;
  }
  index_t kcb, ncb;
  packed_blocks(ks, K, N, kcb, ncb);
  const index_t n_mb = ceil_div(M, ks.mc);
  const index_t mcb = round_up(ceil_div(M, n_mb), ks.mr);
  Workspace& ws = tls_ws;
  T* Ap = static_cast<T*>(Workspace::reserve(ws.a, ws.a_bytes, sizeof(T) * mcb * kcb));
  if (!Ap) throw std::bad_alloc();
  const T* p = Bp.data.data();
  for (index_t jc = 0; jc < N; jc += ncb) {
    const index_t nc = N - jc < ncb ? N - jc : ncb;
    for (index_t pc = 0; pc < K; pc += kcb) {
      const index_t kc = K - pc < kcb ? K - pc : kcb;
      const T be = pc == 0 ? beta : T(1);
      for (index_t ic = 0; ic < M; ic += mcb) {
        const index_t mc = M - ic < mcb ? M - ic : mcb;
        ks.pack_a(ta, A, lda, ic, mc, pc, kc, Ap);
        ks.macro(mc, nc, kc, Ap, p, alpha, be, C + ic * ldc + jc, ldc, nullptr);
      }
      p += round_up(nc, ks.nr) * kc;
    }
  }
}

template void gemm_pack_b<float>(bool, index_t, index_t, const float*, index_t, PackedB<float>&);
template void gemm_pack_b<double>(bool, index_t, index_t, const double*, index_t, PackedB<double>&);
template void gemm_packed_b<float>(bool, index_t, float, const float*, index_t, const PackedB<float>&, float, float*,
                                   index_t);
template void gemm_packed_b<double>(bool, index_t, double, const double*, index_t, const PackedB<double>&, double,
                                    double*, index_t);

const char* gemm_isa() { return gemm_detail::current_kernels().name; }

bool simd_avx2_enabled() {
#if ND_GEMM_X86
  static const bool cpu = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return cpu && std::strcmp(gemm_isa(), "generic") != 0;
#else
  return false;
#endif
}

void gemm_force_isa(const char* name) {
  using namespace gemm_detail;
  const std::string s = name ? name : "";
  int isa;
  if (s == "auto")
    isa = kIsaAuto;
  else if (s == "generic")
    isa = kIsaGeneric;
  else if (s == "avx2")
    isa = kIsaAvx2;
  else if (s == "avx512")
    isa = kIsaAvx512;
  else
    throw std::invalid_argument("gemm_force_isa: unknown ISA '" + s +
                                "' (expected 'auto', 'generic', 'avx2' or 'avx512')");
  if (isa != kIsaAuto && !cpu_supports(isa))
    throw std::invalid_argument("gemm_force_isa: this CPU (or this build) does not support '" + s + "'");
  g_forced.store(isa, std::memory_order_relaxed);
}

template void gemm<float>(bool, bool, index_t, index_t, index_t, float, const float*, index_t, const float*,
                          index_t, float, float*, index_t);
template void gemm<double>(bool, bool, index_t, index_t, index_t, double, const double*, index_t,
                           const double*, index_t, double, double*, index_t);
template void gemm_naive<float>(bool, bool, index_t, index_t, index_t, float, const float*, index_t,
                                const float*, index_t, float, float*, index_t);
template void gemm_naive<double>(bool, bool, index_t, index_t, index_t, double, const double*, index_t,
                                 const double*, index_t, double, double*, index_t);

}  // namespace nd
