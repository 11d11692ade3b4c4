// LSTM layer: forward and backward over a whole sequence, PyTorch / cuDNN weight layout and gate order.
// Dimensions (declared once for this file):
//   B batch, T steps, I input features, H hidden units, G = 4H gates (i, f, g, o),
//   W SIMD lanes (8 float / 4 double), Hp = H rounded up to W, MR / NV register tile (rows, vectors).
// Buffers: x (B,T,I)  w_ih (G,I)  w_hh (G,H)  b_ih, b_hh (G)  h0, c0 (B,H)  y (B,T,H)
//          cache: gates (B,T,G) activated gates, cell (B,T,H) cell states.
//
// Forward (fast):
//   1. gates (B*T,G) = x (B*T,I) @ w_ih^T: ONE GEMM over all steps (nd::gemm); the biases are added in
//      the step epilogue. Small inputs (I < kSmallI; I <= kFuseWideMaxI at small H and large B) skip it: the
//      step kernels take x_t themselves.
//   2. w_hh is packed once per call, gate-interleaved: for each block of W hidden units, a sliver
//      (H, 4, W) holding the i, f, g, o columns of those units side by side, so that one register tile
//      (MR rows x 4 vectors) holds the four pre-activations of W units and the epilogue (sigmoid / tanh,
//      c and h update) runs while they are still in registers.
//   3. Per step: for each unit block (the sliver stays in L1) and each tile of MR batch rows, the tile
//      accumulates h_{t-1} (read straight from y) times the sliver, then the fused epilogue writes the
//      activated gates (over the projection, in place), c_t and h_t; for a whole unit block it computes each
//      gate's activation for the MR rows at once (fwd_epi_rows: interleaved chains, the activations being
//      latency-bound).
//      H >= 256, or H >= 128 with a large batch (kGemmFwdMin*): instead, per step one GEMM h_{t-1} @ w_hh^T
//      (nd::gemm_packed_b, w_hh^T packed once per call) into the gates rows, added onto the projection
//      (I >= kSmallI), then a separate vectorised epilogue pass (biases, I = 1's input term). With 2..15 input
//      features the GEMM takes [x_t, h_{t-1}] (K = I + H) against [w_ih | w_hh]^T instead. At H >= kTilesMinH
//      (and for I = 1 below) that step GEMM runs on this file's own register tiles instead (fwd_rows_tiles: every
//      small input inside it, the epilogue per unit block from a line-padded step scratch; same bits as above).
// Backward (fast):
//   1. Per step (t = T-1 .. 0): dh_t = dy_t + dG_{t+1} @ w_hh, with w_hh packed once (K = G, slivers of
//      NV*W units); the epilogue turns dh_t into the gate gradients dG_t (B,T,G) and carries dc. With
//      I >= kSmallI and dx wanted, the same row panel also computes dx_{t+1} = dG_{t+1} @ w_ih (w_ih packed
//      the same way) while those dG rows are in cache: no separate (B*T, I, 4H) GEMM re-reading all of dG.
//   2. After the loop, over all B*T rows: dW_hh += dG^T [h0, y_{0..T-2}] and dW_ih += dG^T x. At H (I) <=
//      kDwRowsMaxN by register tiles (dw_rows_impl: 6 rows of dW x 2W columns, broadcasts from a packed copy
//      of 24 gate columns of 64 dG rows, vector loads from the y / x rows); above, by large GEMMs written
//      straight into dW (dG^T [h0, y], dG^T x: nd::gemm packs dG as its transposed A operand; kDwDirect);
//      for dW_ih one fused pass with the bias gradients when I is small (bias sums: register passes over
//      16-row blocks of dG, or, with I >= 16 at H <= 64, taken from the dW tiles' packed copies); dx_0 = dG_0 @ w_ih (all of dx = dG @ w_ih by a pass of row dot products when I
//      is small), dh0 = dG_0 @ w_hh. The step kernel prefetches the epilogue's rows (gates, cell, dy, dG)
//      kBwdPfRows batch rows ahead in its loop order.
// Threads: the batch is split into contiguous chunks, one per thread, each running the whole time loop
// (recurrences are independent: no barrier per step). The GEMMs use nd::gemm's own threading.
// Every element is computed by the same sequence of operations whichever chunk / tile it lands in, and
// nd::gemm is bitwise identical for any thread count, so results do not depend on the thread count.
// SIMD: the step kernels are written once with GCC vector extensions and compiled twice, for AVX2+FMA
// (target attribute, picked at run time) and for the baseline; the naive scalar kernels stay beside them.
// Non-linearities: vectorised exp (Cody-Waite reduction + polynomial, inputs clamped so nothing
// overflows); sigmoid(x) = 1 / (1 + exp(-x)); tanh from exp(-2|x|) with an odd Taylor polynomial for
// |x| < 0.1 (no cancellation). The forward uses leaner forms of the same (vsigmoid_f / vtanh_f: the reduction's
// expm1 instead of exp, so tanh needs no small-|x| branch). Finite for any finite input (1e30 included); NaN
// propagates.
#include "lstm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <cstdlib>
#include <memory>
#include <new>
#include <type_traits>
#include <vector>
#if defined(__linux__)
#include <sys/mman.h>  // madvise (the dG workspace's huge pages)
#endif

#include "gemm.h"
#include "gemm_packed.h"

#ifdef ND_OPENMP
#include <omp.h>
#endif

#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wpsabi"  // 32-byte vectors in always-inline helpers of baseline code
#endif

#if defined(ND_X86) && ND_X86 && defined(__x86_64__) && defined(__GNUC__)
#define ND_LSTM_X86 1
#else
#define ND_LSTM_X86 0
#endif

#define ND_AI inline __attribute__((always_inline))

#if ND_LSTM_X86
#include <emmintrin.h>  // _mm_stream_si128 (SSE2: part of the x86-64 baseline)
#endif

namespace nd {
namespace {

// =========================================================================================== naive
template <typename F>
F sig_ref(F x) {
  F e = std::exp(-std::fabs(x));
  F s = F(1) / (F(1) + e);
  return x >= F(0) ? s : e * s;
}

template <typename F>
void forward_naive(F* y, F* gates, F* cell, const F* x, const F* w_ih, const F* w_hh, const F* b_ih,
                   const F* b_hh, const F* h0, const F* c0, index_t B, index_t T, index_t I, index_t H) {
  const index_t G = 4 * H;
  std::vector<F> pre(G);  // (G)
  for (index_t b = 0; b < B; ++b) {
    for (index_t t = 0; t < T; ++t) {
      const F* xt = x + (b * T + t) * I;                                          // (I)
      const F* hp = t > 0 ? y + (b * T + t - 1) * H : (h0 ? h0 + b * H : nullptr);  // (H)
      const F* cp = t > 0 ? cell + (b * T + t - 1) * H : (c0 ? c0 + b * H : nullptr);
      for (index_t g = 0; g < G; ++g) {
        F s = b_ih[g] + b_hh[g];
        for (index_t i = 0; i < I; ++i) s += xt[i] * w_ih[g * I + i];
        if (hp)
          for (index_t k = 0; k < H; ++k) s += hp[k] * w_hh[g * H + k];
        pre[g] = s;
      }
      F* gt = gates + (b * T + t) * G;  // (G)
      F* ct = cell + (b * T + t) * H;   // (H)
      F* ht = y + (b * T + t) * H;      // (H)
      for (index_t j = 0; j < H; ++j) {
        F i_ = sig_ref(pre[j]), f_ = sig_ref(pre[H + j]), g_ = std::tanh(pre[2 * H + j]),
          o_ = sig_ref(pre[3 * H + j]);
        F c = f_ * (cp ? cp[j] : F(0)) + i_ * g_;
        gt[j] = i_;
        gt[H + j] = f_;
        gt[2 * H + j] = g_;
        gt[3 * H + j] = o_;
        ct[j] = c;
        ht[j] = o_ * std::tanh(c);
      }
    }
  }
}

template <typename F>
void backward_naive(F* dx, F* dh0, F* dc0, F* dw_ih, F* dw_hh, F* db_ih, F* db_hh, const F* dy, const F* dh,
                    const F* dc, const F* x, const F* w_ih, const F* w_hh, const F* h0, const F* c0, const F* y,
                    const F* gates, const F* cell, index_t B, index_t T, index_t I, index_t H) {
  const index_t G = 4 * H;
  std::vector<F> dhn(H), dcn(H), dg(G);  // (H) (H) (G)
  for (index_t b = 0; b < B; ++b) {
    for (index_t j = 0; j < H; ++j) {
      dhn[j] = dh ? dh[b * H + j] : F(0);
      dcn[j] = dc ? dc[b * H + j] : F(0);
    }
    for (index_t t = T - 1; t >= 0; --t) {
      const F* gt = gates + (b * T + t) * G;
      const F* ct = cell + (b * T + t) * H;
      const F* cp = t > 0 ? cell + (b * T + t - 1) * H : (c0 ? c0 + b * H : nullptr);
      const F* hp = t > 0 ? y + (b * T + t - 1) * H : (h0 ? h0 + b * H : nullptr);
      const F* xt = x + (b * T + t) * I;
      for (index_t j = 0; j < H; ++j) {
        F i_ = gt[j], f_ = gt[H + j], g_ = gt[2 * H + j], o_ = gt[3 * H + j];
        F tc = std::tanh(ct[j]);
        F dht = dhn[j] + (dy ? dy[(b * T + t) * H + j] : F(0));
        F dct = dcn[j] + dht * o_ * (F(1) - tc * tc);
        dg[j] = dct * g_ * i_ * (F(1) - i_);
        dg[H + j] = dct * (cp ? cp[j] : F(0)) * f_ * (F(1) - f_);
        dg[2 * H + j] = dct * i_ * (F(1) - g_ * g_);
        dg[3 * H + j] = dht * tc * o_ * (F(1) - o_);
        dcn[j] = dct * f_;
      }
      for (index_t k = 0; k < H; ++k) {
        F s = 0;
        for (index_t g = 0; g < G; ++g) s += dg[g] * w_hh[g * H + k];
        dhn[k] = s;
      }
      for (index_t g = 0; g < G; ++g) {
        db_ih[g] += dg[g];
        db_hh[g] += dg[g];
        for (index_t i = 0; i < I; ++i) dw_ih[g * I + i] += dg[g] * xt[i];
        if (hp)
          for (index_t k = 0; k < H; ++k) dw_hh[g * H + k] += dg[g] * hp[k];
      }
      if (dx)
        for (index_t i = 0; i < I; ++i) {
          F s = 0;
          for (index_t g = 0; g < G; ++g) s += dg[g] * w_ih[g * I + i];
          dx[(b * T + t) * I + i] = s;
        }
    }
    for (index_t j = 0; j < H; ++j) {
      dh0[b * H + j] = dhn[j];
      dc0[b * H + j] = dcn[j];
    }
  }
}

// =========================================================================================== vectors
template <typename F>
struct VT;

template <>
struct VT<float> {
  typedef float V __attribute__((vector_size(32)));
  typedef float U __attribute__((vector_size(32), aligned(4), may_alias));
  typedef std::int32_t IV __attribute__((vector_size(32)));
  static constexpr int W = 8;
};

template <>
struct VT<double> {
  typedef double V __attribute__((vector_size(32)));
  typedef double U __attribute__((vector_size(32), aligned(8), may_alias));
  typedef std::int64_t IV __attribute__((vector_size(32)));
  static constexpr int W = 4;
};

template <typename F>
using Vec = typename VT<F>::V;

template <typename F>
ND_AI Vec<F> vset(F a) {
  return Vec<F>{} + a;
}

template <typename F>
ND_AI Vec<F> ld(const F* p) {
  return *reinterpret_cast<const typename VT<F>::U*>(p);
}

template <typename F>
ND_AI void st(F* p, Vec<F> v) {
  *reinterpret_cast<typename VT<F>::U*>(p) = v;
}

// First n lanes (n in [1, W]); the others read as 0 and nothing past p + n is touched.
template <typename F>
ND_AI Vec<F> ldn(const F* p, int n) {
  constexpr int W = VT<F>::W;
  if (n >= W) return ld(p);
  alignas(32) F tmp[W] = {};
  for (int l = 0; l < n; ++l) tmp[l] = p[l];
  return ld(tmp);
}

template <typename F>
ND_AI void stn(F* p, Vec<F> v, int n) {
  constexpr int W = VT<F>::W;
  if (n >= W) {
    st(p, v);
    return;
  }
  alignas(32) F tmp[W];
  st(tmp, v);
  for (int l = 0; l < n; ++l) p[l] = tmp[l];
}

// (exp(r) - 1) / r for |r| <= 0.35: the Taylor series of exp to degree 7 (float) / 13 (double) without its
// constant term, divided by r (Horner; shared by vexp_clamped and vexpm1_red).
ND_AI Vec<float> vexp_series(Vec<float> r) {
  Vec<float> p = r * (1.0f / 5040) + (1.0f / 720);
  p = p * r + (1.0f / 120);
  p = p * r + (1.0f / 24);
  p = p * r + (1.0f / 6);
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  return p;
}
ND_AI Vec<double> vexp_series(Vec<double> r) {
  Vec<double> p = r * (1.0 / 6227020800.0) + (1.0 / 479001600.0);
  p = p * r + (1.0 / 39916800.0);
  p = p * r + (1.0 / 3628800.0);
  p = p * r + (1.0 / 362880.0);
  p = p * r + (1.0 / 40320.0);
  p = p * r + (1.0 / 5040.0);
  p = p * r + (1.0 / 720.0);
  p = p * r + (1.0 / 120.0);
  p = p * r + (1.0 / 24.0);
  p = p * r + (1.0 / 6.0);
  p = p * r + 0.5;
  p = p * r + 1.0;
  return p;
}

// exp(x) for x already clamped to the finite range below (float [-87, 88], double [-708, 709]).
ND_AI Vec<float> vexp_clamped(Vec<float> x) {
  typedef VT<float>::IV IV;
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  Vec<float> t = x * 1.44269504088896341f + magic;
  Vec<float> n = t - magic;
  Vec<float> r = x - n * 0.693359375f;  // Cody-Waite: ln2 = 0.693359375 - 2.12194440e-4
  r = r + n * 2.12194440e-4f;
  // exp(r), |r| <= 0.35: Taylor to degree 7 (truncation < 1e-8)
  Vec<float> p = vexp_series(r) * r + 1.0f;
  IV ni = reinterpret_cast<IV>(t) - 0x4B400000;  // bits of magic: the integer n in the low bits
  Vec<float> scale = reinterpret_cast<Vec<float>>((ni + 127) << 23);
  return p * scale;
}

ND_AI Vec<double> vexp_clamped(Vec<double> x) {
  typedef VT<double>::IV IV;
  const double magic = 6755399441055744.0;  // 1.5 * 2^52
  Vec<double> t = x * 1.4426950408889634074 + magic;
  Vec<double> n = t - magic;
  Vec<double> r = x - n * 6.93147180369123816490e-01;  // fdlibm ln2_hi / ln2_lo
  r = r - n * 1.90821492927058770002e-10;
  // exp(r), |r| <= 0.35: Taylor to degree 13 (truncation < 1e-17)
  Vec<double> p = vexp_series(r) * r + 1.0;
  IV ni = reinterpret_cast<IV>(t) - 0x4338000000000000LL;
  Vec<double> scale = reinterpret_cast<Vec<double>>((ni + 1023) << 52);
  return p * scale;
}

template <typename F>
struct Lim;
template <>
struct Lim<float> {
  static constexpr float lo = -87.0f, hi = 88.0f;
};
template <>
struct Lim<double> {
  static constexpr double lo = -708.0, hi = 709.0;
};

// Clamp keeping NaN (comparisons with NaN are false, so NaN passes through).
template <typename F>
ND_AI Vec<F> clamp(Vec<F> x, F lo, F hi) {
  x = x < lo ? vset(lo) : x;
  x = x > hi ? vset(hi) : x;
  return x;
}

// 1 / (1 + exp(-x)): exp(-x) in [e^-87, e^88] (float), so 1 + e never overflows; sig(-1e30) = 6e-39.
template <typename F>
ND_AI Vec<F> vsigmoid(Vec<F> x) {
  Vec<F> e = vexp_clamped(clamp<F>(-x, Lim<F>::lo, Lim<F>::hi));
  return F(1) / (e + F(1));
}

// tanh(x) = sign(x) (1 - e) / (1 + e), e = exp(-2|x|); odd Taylor series for |x| < 0.1 where 1 - e
// would cancel (series truncation < 1e-17 relative there).
template <typename F>
ND_AI Vec<F> vtanh(Vec<F> x) {
  typedef typename VT<F>::IV IV;
  // sign bit of every lane (not from vset(-0.0): 0 + -0.0 is +0.0)
  const IV sign = IV{} + (typename std::remove_reference<decltype(IV{}[0])>::type(1) << (8 * sizeof(F) - 1));
  Vec<F> a = reinterpret_cast<Vec<F>>(reinterpret_cast<IV>(x) & ~sign);
  Vec<F> e = vexp_clamped(clamp<F>(F(-2) * a, Lim<F>::lo, F(0)));
  Vec<F> big = (F(1) - e) / (F(1) + e);
  Vec<F> a2 = a * a;
  Vec<F> p;
  if (sizeof(F) == 4) {
    p = a2 * F(62.0 / 2835) + F(-17.0 / 315);
    p = p * a2 + F(2.0 / 15);
  } else {
    p = a2 * F(-929569.0 / 638512875) + F(21844.0 / 6081075);
    p = p * a2 + F(-1382.0 / 155925);
    p = p * a2 + F(62.0 / 2835);
    p = p * a2 + F(-17.0 / 315);
    p = p * a2 + F(2.0 / 15);
  }
  p = p * a2 + F(-1.0 / 3);
  p = (p * a2) * a + a;
  Vec<F> r = a < F(0.1) ? p : big;
  return reinterpret_cast<Vec<F>>(reinterpret_cast<IV>(r) | (reinterpret_cast<IV>(x) & sign));
}

// Inputs narrower than this are fused into the forward step kernel and reduced with the bias gradients
// in the backward (a GEMM would pad K or N = I to its register tile).
constexpr index_t kSmallI = 16;
// Bytes of a packed weight sliver's K chunk: kept in L1 while every row tile of the batch chunk runs.
constexpr index_t kSliverBytes = 16 * 1024;
// Bytes of h_{t-1} (one K chunk of a row panel's rows) kept in L1 across the unit blocks of a step.
#ifndef ND_LSTM_PANEL_BYTES
#define ND_LSTM_PANEL_BYTES (12 * 1024)
#endif
constexpr index_t kPanelBytes = ND_LSTM_PANEL_BYTES;

// Forward knobs read from the environment per call (A/B runs in one process: bench/lstm_cpu_time.py
// --variants; tuning on other machines): ND_LSTM_FWD_PANEL_BYTES (kPanelBytes), ND_LSTM_FWD_STEP_GEMM
// (1 / 0: per-step GEMM forward on / off whatever the shape; unset: the rule of kGemmFwdMin*),
// ND_LSTM_FWD_PACKED_B (0: the per-step GEMM packs w_hh at every step, as before pre-packing), ND_LSTM_FWD_STEP_TILES
// (1 / 0: the per-step GEMM by the LSTM's own tiles / by nd::gemm_packed_b and an epilogue pass; unset: kTilesMinH),
// ND_LSTM_FWD_STREAM_MIB (kStreamMiB: from this output size on, the tiles' forward streams its step rows out),
// ND_LSTM_FWD_STEP_CAT (0: 2..15 input features are added in the per-step GEMM path's epilogue, as before the sixth
// pass, and that path keeps to I = 1 or I >= kSmallI at H < kGemmFwdMinH), ND_LSTM_FWD_FUSE_I (the largest input
// fused into the step kernels; default kSmallI - 1, or kFuseWideMaxI by the rule of kFuseWideMaxH); read with
// nd::env_index (common.h).

// =========================================================================================== forward steps
// Packed recurrent weight for the forward: Wf (nb, H, 4, W), nb = Hp / W;
//   Wf[((jb*H + k)*4 + q)*W + l] = w_hh[(q*H + jb*W + l)*H + k]  (0 for units >= H).
// Bias bs (4, Hp) = b_ih + b_hh (0 past H).
// With a small input (I < kSmallI, KX = I) the input projection is fused into the step: the sliver is
// (KX + H, 4, W), its first KX rows holding w_ih^T, and the tile accumulates x_t before h_{t-1}.
// Otherwise (KX = 0) the gates buffer holds the projection from the GEMM and the epilogue adds it.
template <typename F>
struct FwdArgs {
  index_t T, H, Hp, I, KX;
  bool step_gemm;  // per-step GEMM forward (decided on the whole batch: the same for every thread count)
  index_t panel_bytes;     // bytes of h_{t-1} per K chunk of a row panel (kPanelBytes unless tuned)
  const PackedB<F>* wpk;   // w_hh^T packed once for the per-step GEMM (nullptr: gemm packs it every step)
  bool cat;  // per-step GEMM over [x_t, h_{t-1}] (K = KX + H): wpk holds [w_ih | w_hh]^T, no x terms in the epilogue
  const F* x;     // (B,T,I)
  const F* w_hh;  // (G,H)
  const F* wx;    // (KX,G) = w_ih^T when KX > 0
  const F* wg = nullptr;  // per-step GEMM by the LSTM's own tiles: the packed weight (pack_step_w), else nd::gemm
  bool stream = false;    // ... and its step rows copied out by non-temporal stores
};

// Forward activations (cheaper than vsigmoid / vtanh, which the backward keeps): e^x = s (1 + q) with s = 2^n
// and q = expm1(r) from one Cody-Waite reduction, so that 1 + e^-x = s q + (s + 1) and 1 - e^-2|x| = (1 - s) - s q
// need no extra multiply, and tanh needs no small-|x| branch (for |x| < 0.12, n = 0, s = 1 and the expm1
// polynomial has no 1 to cancel against). Clamps are vmaxps / vminps (NaN passes: see vmax_k).
template <typename F>
struct ExpC;
template <>
struct ExpC<float> {
  static constexpr float log2e = 1.44269504088896341f, magic = 12582912.0f;  // 1.5 * 2^23
  static constexpr float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;   // ln2 = hi + lo
  static constexpr std::int32_t one_bits = 0x3F800000;                        // bits of 1.0f
  static constexpr int mant = 23;
};
template <>
struct ExpC<double> {
  static constexpr double log2e = 1.4426950408889634074, magic = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
  static constexpr std::int64_t one_bits = 0x3FF0000000000000LL;
  static constexpr int mant = 52;
};

// expm1(r) for |r| <= 0.35: Taylor to degree 7 (float) / 13 (double), without the constant term.
template <typename F>
ND_AI Vec<F> vexpm1_red(Vec<F> r) {
  return vexp_series(r) * r;
}

// e^(sg*x) = s (1 + q) for sg*x in the clamped finite range (sg = +1 or -1, folded into the constants).
template <typename F, int SG>
ND_AI void vexp_parts(Vec<F> x, Vec<F>& s, Vec<F>& q) {
  typedef ExpC<F> C;
  typedef typename VT<F>::IV IV;
  Vec<F> t = x * F(SG * C::log2e) + C::magic;
  Vec<F> n = t - C::magic;
  Vec<F> r;
  if (SG > 0) {
    r = x - n * C::ln2_hi;
    r = r - n * C::ln2_lo;
  } else {
    Vec<F> u = x + n * C::ln2_hi;  // -r - n*lo
    r = -(n * C::ln2_lo) - u;
  }
  q = vexpm1_red<F>(r);
  // bits of t: those of magic plus n in the low bits; magic's own low mantissa bits are 0, so the shift
  // leaves n << mant
  s = reinterpret_cast<Vec<F>>((reinterpret_cast<IV>(t) << C::mant) + C::one_bits);
}

// max(x, c) / min(x, c) that keep a NaN x (x < c and x > c are false for NaN, so x is returned). GCC emits compare +
// blend when c is a constant; the empty asm hides the constant so that it emits one vmaxps / vminps instead.
template <typename F>
ND_AI Vec<F> vmax_k(Vec<F> x, F c) {
  __asm__("" : "+x"(c));
  const Vec<F> k = vset(c);
  return x < k ? k : x;
}
template <typename F>
ND_AI Vec<F> vmin_k(Vec<F> x, F c) {
  __asm__("" : "+x"(c));
  const Vec<F> k = vset(c);
  return x > k ? k : x;
}

// 1 / (1 + e^-x); x clamped to [-hi, -lo] first, so e^-x is finite and 1 + e^-x never overflows.
template <typename F>
ND_AI Vec<F> vsigmoid_f(Vec<F> x) {
  x = vmin_k<F>(vmax_k<F>(x, -Lim<F>::hi), -Lim<F>::lo);
  Vec<F> s, q;
  vexp_parts<F, -1>(x, s, q);
  return F(1) / (s * q + (s + F(1)));
}

// tanh(x) = sign(x) u / (2 - u), u = 1 - e^(-2|x|) = -expm1(-2|x|) from the reduction's own expm1 (no
// cancellation for small |x|: there n = 0, s = 1 and u = -q exactly).
template <typename F>
ND_AI Vec<F> vtanh_f(Vec<F> x) {
  typedef typename VT<F>::IV IV;
  const IV sign = IV{} + (typename std::remove_reference<decltype(IV{}[0])>::type(1) << (8 * sizeof(F) - 1));
  Vec<F> a = reinterpret_cast<Vec<F>>(reinterpret_cast<IV>(x) & ~sign);
  Vec<F> z = F(-2) * a;
  z = vmax_k<F>(z, Lim<F>::lo);
  Vec<F> s, q;
  vexp_parts<F, 1>(z, s, q);
  Vec<F> u = (F(1) - s) - s * q;
  Vec<F> r = u / (F(2) - u);
  return reinterpret_cast<Vec<F>>(reinterpret_cast<IV>(r) | (reinterpret_cast<IV>(x) & sign));
}

// Bundled forms of vsigmoid_f / vtanh_f over N independent vectors: every statement is written for all N vectors
// before the next one, so that the N dependency chains are interleaved in program order (GCC keeps the order;
// unrolled rows kept them one after another) and the out-of-order window holds all of them at once. Per vector the
// same operations as vsigmoid_f / vtanh_f. Used by the fused forward epilogue over the MR rows of a tile: the
// activations there were latency-bound (bench/RESULTS.md, "LSTM forward seventh pass").
template <typename F>
struct ExpSeries;  // the coefficients of vexp_series, highest degree first
template <>
struct ExpSeries<float> {
  static constexpr int n = 7;
  static constexpr float c[n] = {1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f};
};
template <>
struct ExpSeries<double> {
  static constexpr int n = 13;
  static constexpr double c[n] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
                                  1.0 / 362880.0,     1.0 / 40320.0,     1.0 / 5040.0,     1.0 / 720.0,
                                  1.0 / 120.0,        1.0 / 24.0,        1.0 / 6.0,        0.5,
                                  1.0};
};

#define ND_NLOOP _Pragma("GCC unroll 16") for (int n = 0; n < N; ++n)
template <typename F, int N, int SG>
ND_AI void vexp_parts_n(const Vec<F>* x, Vec<F>* s, Vec<F>* q) {
  typedef ExpC<F> C;
  typedef ExpSeries<F> S;
  typedef typename VT<F>::IV IV;
  Vec<F> t[N], nn[N], r[N], p[N];
  ND_NLOOP t[n] = x[n] * F(SG * C::log2e) + C::magic;
  ND_NLOOP nn[n] = t[n] - C::magic;
  if (SG > 0) {
    ND_NLOOP r[n] = x[n] - nn[n] * C::ln2_hi;
    ND_NLOOP r[n] = r[n] - nn[n] * C::ln2_lo;
  } else {
    ND_NLOOP p[n] = x[n] + nn[n] * C::ln2_hi;  // -r - n*lo
    ND_NLOOP r[n] = -(nn[n] * C::ln2_lo) - p[n];
  }
  ND_NLOOP p[n] = r[n] * S::c[0] + S::c[1];  // vexp_series, Horner
#pragma GCC unroll 16
  for (int k = 2; k < S::n; ++k) ND_NLOOP p[n] = p[n] * r[n] + S::c[k];
  ND_NLOOP q[n] = p[n] * r[n];
  ND_NLOOP s[n] = reinterpret_cast<Vec<F>>((reinterpret_cast<IV>(t[n]) << C::mant) + C::one_bits);
}

// x[n] = vsigmoid_f(x[n]), n < N
template <typename F, int N>
ND_AI void vsigmoid_fn(Vec<F>* x) {
  Vec<F> s[N], q[N];
  ND_NLOOP x[n] = vmin_k<F>(vmax_k<F>(x[n], -Lim<F>::hi), -Lim<F>::lo);
  vexp_parts_n<F, N, -1>(x, s, q);
  ND_NLOOP x[n] = F(1) / (s[n] * q[n] + (s[n] + F(1)));
}

// x[n] = vtanh_f(x[n]), n < N
template <typename F, int N>
ND_AI void vtanh_fn(Vec<F>* x) {
  typedef typename VT<F>::IV IV;
  const IV sign = IV{} + (typename std::remove_reference<decltype(IV{}[0])>::type(1) << (8 * sizeof(F) - 1));
  Vec<F> z[N], s[N], q[N];
  ND_NLOOP z[n] = F(-2) * reinterpret_cast<Vec<F>>(reinterpret_cast<IV>(x[n]) & ~sign);
  ND_NLOOP z[n] = vmax_k<F>(z[n], Lim<F>::lo);
  vexp_parts_n<F, N, 1>(z, s, q);
  ND_NLOOP {
    const Vec<F> u = (F(1) - s[n]) - s[n] * q[n];
    const Vec<F> r = u / (F(2) - u);
    x[n] = reinterpret_cast<Vec<F>>(reinterpret_cast<IV>(r) | (reinterpret_cast<IV>(x[n]) & sign));
  }
}
#undef ND_NLOOP

// The fused forward's epilogue of a whole-vector tile (nu == W: no partial-vector copies, so no library calls in
// this code for the register allocator to work around): the activations of each gate for the MR rows at once
// (vsigmoid_fn / vtanh_fn over the rows), then c_t and h_t. Rows past m repeat row r (computed, not stored).
// pre (MR, 4, W): the tile's pre-activations without the biases.
template <typename F, int MR>
ND_AI void fwd_epi_rows(F* y, F* gates, F* cell, const F* pre, const F* bs, const F* c0, index_t r, int m, index_t t,
                        index_t j0, const FwdArgs<F>& a) {
  using V = Vec<F>;
  constexpr int W = VT<F>::W;
  const index_t T = a.T, H = a.H, Hp = a.Hp, G = 4 * H;
  V gi[MR], gf[MR], gg[MR], go[MR];
  const V bi = ld(bs + j0), bf = ld(bs + Hp + j0), bg = ld(bs + 2 * Hp + j0), bo = ld(bs + 3 * Hp + j0);
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    const F* e = pre + i * 4 * W;
    gi[i] = ld(e) + bi;
    gf[i] = ld(e + W) + bf;
    gg[i] = ld(e + 2 * W) + bg;
    go[i] = ld(e + 3 * W) + bo;
    if (a.KX == 0) {  // projection from the GEMM
      const F* g = gates + ((r + (i < m ? i : 0)) * T + t) * G + j0;
      gi[i] += ld(g);
      gf[i] += ld(g + H);
      gg[i] += ld(g + 2 * H);
      go[i] += ld(g + 3 * H);
    }
  }
  vsigmoid_fn<F, MR>(gi);
  vsigmoid_fn<F, MR>(gf);
  vtanh_fn<F, MR>(gg);
  vsigmoid_fn<F, MR>(go);
  V c[MR], th[MR];
  // not unrolled: f c_{t-1} + i g has two products for GCC to contract, and unrolled copies contracted differently
  // (a row's bits then depended on its position in the tile, i.e. on the thread split)
#pragma GCC unroll 1
  for (int i = 0; i < MR; ++i) {
    const index_t b = r + (i < m ? i : 0), row = b * T + t;
    const V cp = t > 0 ? ld(cell + (row - 1) * H + j0) : (c0 ? ld(c0 + b * H + j0) : V{});
    c[i] = gf[i] * cp + gi[i] * gg[i];
    th[i] = c[i];
  }
  vtanh_fn<F, MR>(th);
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    if (i < m) {
      const index_t row = (r + i) * T + t;
      F* g = gates + row * G + j0;
      st(g, gi[i]);
      st(g + H, gf[i]);
      st(g + 2 * H, gg[i]);
      st(g + 3 * H, go[i]);
      st(cell + row * H + j0, c[i]);
      st(y + row * H + j0, go[i] * th[i]);
    }
  }
}

template <typename F, int MR>
ND_AI void fwd_tile(F* y, F* gates, F* cell, const F* wp, const F* bs, const F* h0, const F* c0, index_t r,
                    int m, index_t t, index_t j0, int nu, index_t k0, index_t k1, F* part,
                    const FwdArgs<F>& a, bool epi_rows) {
  // K chunk [k0, k1) of the (KX + H) sliver rows; part (MR, 4, W): partial sums between chunks.
  using V = Vec<F>;
  constexpr int W = VT<F>::W;
  const index_t T = a.T, H = a.H, Hp = a.Hp, G = 4 * H, KX = a.KX;
  const bool first = k0 == 0, last = k1 == KX + H;
  V acc[MR][4];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) acc[i][q] = first ? V{} : ld(part + (i * 4 + q) * W);
  if (first && t + 1 < T) {
    // The next step's rows are far apart (T*G elements) and cold (written by the input GEMM long
    // before): prefetch them one step ahead, one line per W-element span (spans tile each row).
    for (int i = 0; i < m; ++i) {
      const index_t row = (r + i) * T + t + 1;
      const F* g = gates + row * G + j0;
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) __builtin_prefetch(g + q * H, 1, 2);
      __builtin_prefetch(cell + row * H + j0, 1, 2);
      __builtin_prefetch(y + row * H + j0, 1, 2);
    }
  }
  if (k0 < KX) {
    const F* xp[MR];  // rows of x_t; rows past m repeat row 0
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) xp[i] = a.x + ((r + (i < m ? i : 0)) * T + t) * a.I;
    const index_t ke = k1 < KX ? k1 : KX;
    for (index_t k = k0; k < ke; ++k) {
      const F* w = wp + k * 4 * W;
      const V w0 = ld(w), w1 = ld(w + W), w2 = ld(w + 2 * W), w3 = ld(w + 3 * W);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const F xv = xp[i][k];
        acc[i][0] += xv * w0;
        acc[i][1] += xv * w1;
        acc[i][2] += xv * w2;
        acc[i][3] += xv * w3;
      }
    }
  }
  if ((t > 0 || h0) && k1 > KX) {
    const F* hp[MR];  // rows of h_{t-1}; rows past m repeat row 0 (computed, never stored)
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const index_t b = r + (i < m ? i : 0);
      hp[i] = t > 0 ? y + (b * T + t - 1) * H : h0 + b * H;
    }
    const F* wh = wp + KX * 4 * W;
    const index_t kb = k0 > KX ? k0 - KX : 0, ke = k1 - KX;
    for (index_t k = kb; k < ke; ++k) {
      const F* w = wh + k * 4 * W;
      const V w0 = ld(w), w1 = ld(w + W), w2 = ld(w + 2 * W), w3 = ld(w + 3 * W);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const F h = hp[i][k];
        acc[i][0] += h * w0;
        acc[i][1] += h * w1;
        acc[i][2] += h * w2;
        acc[i][3] += h * w3;
      }
    }
  }
  if (!last) {
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) st(part + (i * 4 + q) * W, acc[i][q]);
    return;
  }
  // The epilogue from an L1 copy of the tile (unrolled over the MR rows with all 4*MR accumulators live, it
  // spilled the exp constants and accumulators around every activation): whole vectors by fwd_epi_rows, a partial
  // unit block one row at a time
  alignas(32) F pre[MR * 4 * W];  // (MR, 4, W)
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) st(pre + (i * 4 + q) * W, acc[i][q]);
  if (nu == W && epi_rows) {
    fwd_epi_rows<F, MR>(y, gates, cell, pre, bs, c0, r, m, t, j0, a);
    return;
  }
#pragma GCC unroll 1
  for (int i = 0; i < m; ++i) {
    {
      const index_t b = r + i, row = b * T + t;
      F* g = gates + row * G + j0;  // (4 gate blocks of H)
      const F* e = pre + i * 4 * W;
      V p0 = ld(e) + ld(bs + j0), p1 = ld(e + W) + ld(bs + Hp + j0);
      V p2 = ld(e + 2 * W) + ld(bs + 2 * Hp + j0), p3 = ld(e + 3 * W) + ld(bs + 3 * Hp + j0);
      if (KX == 0) {  // projection from the GEMM
        p0 += ldn(g, nu);
        p1 += ldn(g + H, nu);
        p2 += ldn(g + 2 * H, nu);
        p3 += ldn(g + 3 * H, nu);
      }
      V vi = vsigmoid_f<F>(p0), vf = vsigmoid_f<F>(p1), vg = vtanh_f<F>(p2), vo = vsigmoid_f<F>(p3);
      V cp = t > 0 ? ldn(cell + (row - 1) * H + j0, nu) : (c0 ? ldn(c0 + b * H + j0, nu) : V{});
      V c = vf * cp + vi * vg;
      V h = vo * vtanh_f<F>(c);
      stn(g, vi, nu);
      stn(g + H, vf, nu);
      stn(g + 2 * H, vg, nu);
      stn(g + 3 * H, vo, nu);
      stn(cell + row * H + j0, c, nu);
      stn(y + row * H + j0, h, nu);
    }
  }
}

template <typename F, int MR>
ND_AI void fwd_rows_impl(F* y, F* gates, F* cell, const F* Wf, const F* bs, const F* h0, const F* c0,
                         index_t b0, index_t b1, const FwdArgs<F>& a) {
  constexpr int W = VT<F>::W;
  const index_t nb = a.Hp / W, KS = a.KX + a.H;
  // K chunks so that the sliver part in use (kc x 4W) stays in L1 (16 KiB) across the row tiles
  const index_t nkc = (KS * 4 * W * index_t(sizeof(F)) + kSliverBytes - 1) / kSliverBytes;
  const index_t kc = (KS + nkc - 1) / nkc;
  std::vector<F> part_buf(nkc > 1 ? static_cast<std::size_t>((b1 - b0 + MR) * 4 * W) : 1);  // (rows, 4, W)
  // Row panels: the panel's h_{t-1} rows (K chunk) stay in L1 while every unit block's sliver streams
  // past them from L2 (instead of re-reading all B rows of h from L2 for every unit block). A panel of
  // kPanelBytes of h per K chunk, a whole number of MR-row tiles.
  const index_t row_bytes = kc * index_t(sizeof(F));
  index_t panel = std::max<index_t>(MR, (a.panel_bytes / row_bytes) / MR * MR);
  // ND_LSTM_FWD_EPI_ROWS=0: the row-at-a-time epilogue for every unit block (A/B runs; see fwd_epi_rows)
  const bool epi_rows = env_index("ND_LSTM_FWD_EPI_ROWS", 1) != 0;
  for (index_t t = 0; t < a.T; ++t)
    for (index_t p0 = b0; p0 < b1; p0 += panel) {
      const index_t p1 = std::min(b1, p0 + panel);
      for (index_t jb = 0; jb < nb; ++jb) {
        const index_t j0 = jb * W;
        const int nu = static_cast<int>(std::min<index_t>(W, a.H - j0));
        const F* wp = Wf + jb * KS * 4 * W;  // (KX+H, 4, W) sliver
        for (index_t k0 = 0; k0 < KS; k0 += kc) {
          const index_t k1 = std::min(KS, k0 + kc);
          for (index_t r = p0; r < p1; r += MR) {
            const int m = static_cast<int>(std::min<index_t>(MR, p1 - r));
            fwd_tile<F, MR>(y, gates, cell, wp, bs, h0, c0, r, m, t, j0, nu, k0, k1,
                            part_buf.data() + (r - b0) * 4 * W, a, epi_rows);
          }
        }
      }
    }
}

// ------------------------------------------------------------- per-step GEMM forward by the LSTM's own tiles
// The step GEMM [x_t,] h_{t-1} (rows, K) @ w^T (K, 4H) by register tiles of this file instead of nd::gemm, with
// the epilogue of each block of W units run right after that block's columns are done, over the chunk's rows
// while their pre-activations are in L1 (not a separate pass over (rows, 4H) pre-activations in the gates rows
// after the whole GEMM). w^T is packed once per call in unit blocks of W units: two slivers (kc, 2W) per
// block, [i | f] and [g | o] columns of those units. Tiles are 6 or 4 rows x 2 vectors (12 or 8 accumulators),
// mixed so that the rows are covered without padding rows where possible (32 = 4 x 6 + 2 x 4: nd::gemm's 6-row
// tiles spend a whole tile on the last 2 of 32 rows, 11% of the step GEMM). The step's pre-activations, c and h
// live in a per-chunk scratch whose rows are one cache line longer than 4H / H floats (rows of the (B, T, .)
// arrays are a multiple of 4 KiB apart, so a tile's rows there all fall into one L1 set); the step's rows are
// copied out whole at the end of the step, and the next step's operand is packed from the scratch's h.
// Chunks of more than kStepRows rows run as several sub-chunks (each the whole sequence), so that the scratch
// stays in L2.
// Bits: K blocks as nd::gemm's (kStepKc, balanced, multiples of 8), each output's products summed in K order
// from 0 per block, a block's sum added to the previous partial (or to the input projection) as nd::gemm's
// store does (acc + C: its alpha = beta = 1 FMA), then step_epi_block as in fwd_rows_gemm_impl: bitwise the
// results of the nd::gemm path with AVX2 (ND_LSTM_FWD_STEP_TILES=0 selects that path).
constexpr index_t kStepKc = 256;  // nd::gemm's K block (AVX2 and generic kernel sets, float and double)

// K block for K = KX + H with the first KX rows from x_t (the [x_t, h_{t-1}] form; else KX = 0): as many blocks
// as H alone needs (up to kStepKc + KX rows in one block: a few input features do not cost a block).
inline index_t step_kcb(index_t K, index_t KX) {
  const index_t nkb = std::max<index_t>(1, (K - KX + kStepKc - 1) / kStepKc);
  return nkb == 1 ? K : ((K + nkb - 1) / nkb + 7) / 8 * 8;
}

// Wg for K = KX + H rows (the first KX from w_ih when the step GEMM takes x_t): K block pc (kc rows) at
// pc * nb * 4W; in it the sliver (jb, s) at ((jb * 2 + s) * kc) * 2W, element (k, v*W + l) = gate 2s + v, unit
// jb*W + l (0 past H).
template <typename F>
void pack_step_w(std::vector<F>& out, const F* w_ih, index_t I, index_t KX, const F* w_hh, index_t H, index_t Hp) {
  constexpr int W = VT<F>::W;
  const index_t K = KX + H, nb = Hp / W, kcb = step_kcb(K, KX);
  out.assign(static_cast<std::size_t>(4 * Hp * K), F(0));
  for (index_t pc = 0; pc < K; pc += kcb) {
    const index_t kc = std::min(kcb, K - pc);
    F* blk = out.data() + pc * nb * 4 * W;
    for (index_t jb = 0; jb < nb; ++jb)
      for (int s = 0; s < 2; ++s) {
        // the sliver's 2W source rows (gates 2s, 2s + 1 of units jb*W + l; none past H), read in step, written
        // contiguously (one row at a time wrote each element to another cache line: ~1 ms at H = 256)
        const F* sx[2 * W];
        const F* sh[2 * W];
        for (int v = 0; v < 2; ++v)
          for (int l = 0; l < W; ++l) {
            const index_t u = (2 * s + v) * H + jb * W + l;
            sx[v * W + l] = jb * W + l < H ? w_ih + u * I : nullptr;
            sh[v * W + l] = jb * W + l < H ? w_hh + u * H : nullptr;
          }
        F* d = blk + ((jb * 2 + s) * kc) * 2 * W;
        for (index_t k = 0; k < kc; ++k, d += 2 * W) {
          const index_t kk = pc + k;
          for (int c = 0; c < 2 * W; ++c)
            if (sh[c]) d[c] = kk < KX ? sx[c][kk] : sh[c][kk - KX];
        }
      }
  }
}

struct StepTile {
  index_t r;  // first row (chunk-relative)
  int mr, m;  // tile rows (6 or 4), rows stored
};

// Tiles covering rows [0, rows): 6-row tiles, then 4-row tiles for what 6 does not divide (6a + 2 = 6(a - 1) + 2 x 4,
// 6a + 4 = 6a + 4); an odd remainder goes into a last tile with fewer rows stored than computed (zero rows).
inline void step_tiles(index_t rows, std::vector<StepTile>& tl) {
  tl.clear();
  index_t n6 = rows / 6, rem = rows % 6;
  if ((rem == 1 || rem == 2) && n6 > 0) {
    --n6;
    rem += 6;  // 7 = 4 + 3, 8 = 4 + 4
  }
  index_t r = 0;
  for (index_t i = 0; i < n6; ++i, r += 6) tl.push_back({r, 6, 6});
  if (rem == 5) {
    tl.push_back({r, 6, 5});
    return;
  }
  while (rem > 0) {
    const int m = static_cast<int>(std::min<index_t>(rem, 4));
    tl.push_back({r, 4, m});
    r += m;
    rem -= m;
  }
}

// acc (MR, 2) = sum over k < kc of Ap (kc, MR) x Bp (kc, 2W).
template <typename F, int MR>
ND_AI void step_mk(Vec<F> (&acc)[MR][2], const F* __restrict Ap, const F* __restrict Bp, index_t kc) {
  constexpr int W = VT<F>::W;
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = Vec<F>{};
  for (index_t k = 0; k < kc; ++k) {
    const Vec<F> b0 = ld(Bp), b1 = ld(Bp + W);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const F av = Ap[i];
      acc[i][0] += av * b0;
      acc[i][1] += av * b1;
    }
    Ap += MR;
    Bp += 2 * W;
  }
}

struct StepCtx {
  index_t b0, rows, K, kcb, nkb;
  bool beta;   // the first K block adds onto the gates rows (the input projection)
  index_t kx;  // x terms left to the epilogue
  index_t lg, lh;  // row strides of the step scratch gs (rows, 4H) and cs / hs (rows, H): padded by one line
};

// One tile of sliver s of unit block j0 (nu units), K block pc (kc rows) into the step scratch gs (rows, lg):
// nd::gemm's store (the sum, added onto the partial in gs or, in the first K block, onto the input projection in
// the gates rows pj (row stride lpj; nullptr: none), prefetched before the K loop as nd::gemm's tiles do: its
// alpha = beta = 1 FMA).
template <typename F, int MR>
ND_AI void step_tile(F* gs, const F* Ap, const F* Bp, index_t kc, bool addc, const F* pj, index_t lpj,
                     const StepTile& tt, int s, index_t j0, int nu, const StepCtx& cx, const FwdArgs<F>& a) {
  const index_t H = a.H, q0 = 2 * s * H + j0;
  if (pj) {
    pj += tt.r * lpj + q0;
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
      if (i < tt.m) {
        __builtin_prefetch(pj + i * lpj);
        __builtin_prefetch(pj + i * lpj + H);
      }
  }
  Vec<F> acc[MR][2];
  step_mk<F, MR>(acc, Ap, Bp, kc);
  F* g0 = gs + tt.r * cx.lg + q0;
  const F* c0 = pj ? pj : g0;  // what the sums are added onto
  const index_t lc = pj ? lpj : cx.lg;
  if (nu == VT<F>::W) {
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
      if (i < tt.m) {
        F* g = g0 + i * cx.lg;
        const F* c = c0 + i * lc;
        st(g, addc ? acc[i][0] + ld(c) : acc[i][0]);
        st(g + H, addc ? acc[i][1] + ld(c + H) : acc[i][1]);
      }
  } else {
    for (int i = 0; i < tt.m; ++i) {
      F* g = g0 + i * cx.lg;
      const F* c = c0 + i * lc;
      stn(g, addc ? acc[i][0] + ldn(c, nu) : acc[i][0], nu);
      stn(g + H, addc ? acc[i][1] + ldn(c + H, nu) : acc[i][1], nu);
    }
  }
}

// One row's unit block of the per-step GEMM forms' epilogue (nu units at gr, gate q at gr + q * H): the
// pre-activations p0..p3 (biases in) plus the kx input terms x[k] * w_ih^T[k] (wx: w_ih^T at this unit block, rows
// 4H apart), activated into gr. The products are rounded on their own: GCC fused some of them into the adds and not
// others depending on where this was inlined (the two per-step GEMM forms then differed in the last bit).
template <typename F>
ND_AI void epi_gates(F* gr, Vec<F> p0, Vec<F> p1, Vec<F> p2, Vec<F> p3, const F* xr, const F* wx, index_t kx,
                     index_t H, int nu) {
  using V = Vec<F>;
  for (index_t k = 0; k < kx; ++k) {
    const F xv = xr[k];
    const F* w = wx + k * 4 * H;
    V m0 = xv * ldn(w, nu), m1 = xv * ldn(w + H, nu), m2 = xv * ldn(w + 2 * H, nu), m3 = xv * ldn(w + 3 * H, nu);
    __asm__("" : "+m"(m0), "+m"(m1), "+m"(m2), "+m"(m3));
    p0 += m0;
    p1 += m1;
    p2 += m2;
    p3 += m3;
  }
  stn(gr, vsigmoid_f<F>(p0), nu);
  stn(gr + H, vsigmoid_f<F>(p1), nu);
  stn(gr + 2 * H, vtanh_f<F>(p2), nu);
  stn(gr + 3 * H, vsigmoid_f<F>(p3), nu);
}

// c_t = f c_{t-1} + i g into co and h_t = o tanh(c_t) into ho from one row's activated gates at gr (cp: c_{t-1},
// nullptr: zeros). Both products rounded on their own (which one GCC fused into the add depended on where this was
// inlined, and on the partial unit block).
template <typename F>
ND_AI void epi_cell(const F* gr, const F* cp, F* co, F* ho, index_t H, int nu) {
  using V = Vec<F>;
  const V vi = ldn(gr, nu), vf = ldn(gr + H, nu), vg = ldn(gr + 2 * H, nu), vo = ldn(gr + 3 * H, nu);
  V fc = vf * (cp ? ldn(cp, nu) : V{}), ig = vi * vg;
  __asm__("" : "+m"(fc), "+m"(ig));
  const V c = fc + ig;
  stn(co, c, nu);
  stn(ho, vo * vtanh_f<F>(c), nu);
}

// The epilogue of unit block j0 (nu units) over rows [0, rows) of step t (batch rows b0 + r): pre-activations from
// g (gates of row r at g + r * lg, gate q at + q * H; has = false: none yet), plus the biases and kx input terms;
// the activated gates back into g, c_t into co (row stride lco) from c_{t-1} in ci (lci; nullptr: zeros), h_t into
// ho (lho). Shared by both per-step GEMM forms (the same arithmetic, so the same bits).
template <typename F>
ND_AI void step_epi_block(F* g, index_t lg, bool has, const F* ci, index_t lci, F* co, index_t lco, F* ho,
                          index_t lho, const F* bs, index_t j0, int nu, index_t b0, index_t rows, index_t t,
                          index_t kx, const FwdArgs<F>& a) {
  using V = Vec<F>;
  const index_t T = a.T, H = a.H, Hp = a.Hp;
  const V b0v = ld(bs + j0), b1v = ld(bs + Hp + j0), b2v = ld(bs + 2 * Hp + j0), b3v = ld(bs + 3 * Hp + j0);
  for (index_t r = 0; r < rows; ++r) {
    F* gr = g + r * lg + j0;
    V p0 = has ? ldn(gr, nu) : V{}, p1 = has ? ldn(gr + H, nu) : V{};
    V p2 = has ? ldn(gr + 2 * H, nu) : V{}, p3 = has ? ldn(gr + 3 * H, nu) : V{};
    epi_gates<F>(gr, p0 + b0v, p1 + b1v, p2 + b2v, p3 + b3v, a.x + ((b0 + r) * T + t) * a.I, a.wx + j0, kx, H, nu);
  }
  // c and h in a second pass over the rows (one pass with all five activations per row was bound by the latency
  // of the row's chain: four activations, then tanh(c) after them; split, each pass has independent rows of
  // shorter chains in flight)
  for (index_t r = 0; r < rows; ++r)
    epi_cell<F>(g + r * lg + j0, ci ? ci + r * lci + j0 : nullptr, co + r * lco + j0, ho + r * lho + j0, H, nu);
}

// The same epilogue for one row b (all unit blocks), each pass over the whole row (the nd::gemm form's pass over
// rows of the (B, T, .) arrays, which are a multiple of 4 KiB apart): the same arithmetic as step_epi_block.
template <typename F>
ND_AI void step_epi_row(F* g, bool has, const F* ci, F* co, F* ho, const F* bs, index_t b, index_t t, index_t kx,
                        const FwdArgs<F>& a) {
  using V = Vec<F>;
  constexpr int W = VT<F>::W;
  const index_t T = a.T, H = a.H, Hp = a.Hp;
  const F* xr = a.x + (b * T + t) * a.I;
  for (index_t j0 = 0; j0 < H; j0 += W) {
    const int nu = static_cast<int>(std::min<index_t>(W, H - j0));
    F* gr = g + j0;
    V p0 = has ? ldn(gr, nu) : V{}, p1 = has ? ldn(gr + H, nu) : V{};
    V p2 = has ? ldn(gr + 2 * H, nu) : V{}, p3 = has ? ldn(gr + 3 * H, nu) : V{};
    epi_gates<F>(gr, p0 + ld(bs + j0), p1 + ld(bs + Hp + j0), p2 + ld(bs + 2 * Hp + j0), p3 + ld(bs + 3 * Hp + j0),
                 xr, a.wx + j0, kx, H, nu);
  }
  for (index_t j0 = 0; j0 < H; j0 += W) {
    const int nu = static_cast<int>(std::min<index_t>(W, H - j0));
    epi_cell<F>(g + j0, ci ? ci + j0 : nullptr, co + j0, ho + j0, H, nu);
  }
}

// d[0, n) = s[0, n); with stream, the 16-byte aligned part by non-temporal stores (x86-64): no read for ownership of
// lines that are only written here and read back much later (by the backward), if ever from cache.
template <typename F>
ND_AI void copy_rows_out(F* d, const F* s, index_t n, bool stream) {
#if ND_LSTM_X86
  if (stream) {
    constexpr index_t k = 16 / sizeof(F);
    index_t i = 0;
    for (; i < n && (reinterpret_cast<std::uintptr_t>(d + i) & 15); ++i) d[i] = s[i];
    for (; i + k <= n; i += k)
      _mm_stream_si128(reinterpret_cast<__m128i*>(d + i), _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i)));
    for (; i < n; ++i) d[i] = s[i];
    return;
  }
#endif
  std::memcpy(d, s, sizeof(F) * n);
}

// Rows [b0, b1) through all T steps (at most kStepRows of them: fwd_rows_tiles), wg: pack_step_w's layout for
// K = KX + H with the step GEMM over [x_t, h_{t-1}] (a.cat), else K = H.
template <typename F>
ND_AI void fwd_rows_tiles_sub(F* y, F* gates, F* cell, const F* bs, const F* h0, const F* c0, index_t b0,
                              index_t b1, const FwdArgs<F>& a, const F* wg) {
  constexpr int W = VT<F>::W;
  constexpr index_t kLine = 64 / sizeof(F);
  const index_t T = a.T, H = a.H, Hp = a.Hp, G = 4 * H, KX = a.KX, rows = b1 - b0, nb = Hp / W;
  const index_t KXg = a.cat ? KX : 0, K = KXg + H, kcb = step_kcb(K, KXg);
  std::vector<StepTile> tl;
  step_tiles(rows, tl);
  index_t prow = 0;  // rows of the packed operand (tiles' padding rows included)
  for (const StepTile& tt : tl) prow += tt.mr;
  const index_t lg = (G + kLine - 1) / kLine * kLine + kLine, lh = (Hp + kLine - 1) / kLine * kLine + kLine;
  // one buffer, line-aligned: packed operand (per tile (K, mr)), gs (rows, lg), cs, hs (rows, lh)
  const index_t n_ap = (prow * K + kLine - 1) / kLine * kLine;
  static thread_local std::vector<F> buf;  // kept between calls by each thread
  buf.assign(static_cast<std::size_t>(n_ap + rows * (lg + 2 * lh) + kLine), F(0));
  F* ap = reinterpret_cast<F*>((reinterpret_cast<std::uintptr_t>(buf.data()) + 63) & ~std::uintptr_t(63));
  F *gs = ap + n_ap, *cs = gs + rows * lg, *hs = cs + rows * lh;
  const StepCtx cx{b0, rows, K, kcb, (K + kcb - 1) / kcb, KX == 0 && !a.cat, a.cat ? 0 : KX, lg, lh};
  for (index_t t = 0; t < T; ++t) {
    const bool hprev = t > 0 || h0;
    if (!hprev && !a.cat) {  // no recurrent term: the epilogue straight into the arrays, then c, h into the scratch
      for (index_t j0 = 0; j0 < H; j0 += W)
        step_epi_block<F>(gates + b0 * T * G, T * G, KX == 0, c0 ? c0 + b0 * H : nullptr, H, cell + b0 * T * H, T * H,
                          y + b0 * T * H, T * H, bs, j0, static_cast<int>(std::min<index_t>(W, H - j0)), b0, rows, 0,
                          KX, a);
      for (index_t r = 0; r < rows; ++r) {
        std::memcpy(cs + r * lh, cell + (b0 + r) * T * H, sizeof(F) * H);
        std::memcpy(hs + r * lh, y + (b0 + r) * T * H, sizeof(F) * H);
      }
      continue;
    }
    {  // pack [x_t,] h_{t-1} per tile: (K, mr), rows past m stay zero
      F* d = ap;
      for (const StepTile& tt : tl) {
        for (int i = 0; i < tt.m; ++i) {
          const index_t rr = tt.r + i, b = b0 + rr;
          const F* xr = a.x + (b * T + t) * a.I;
          for (index_t k = 0; k < KXg; ++k) d[k * tt.mr + i] = xr[k];
          F* dh = d + KXg * tt.mr + i;
          if (hprev) {
            const F* hr = t > 0 ? hs + rr * lh : h0 + b * H;
            for (index_t k = 0; k < H; ++k) dh[k * tt.mr] = hr[k];
          } else {
            for (index_t k = 0; k < H; ++k) dh[k * tt.mr] = F(0);
          }
        }
        d += tt.mr * K;
      }
    }
    for (index_t pc = 0; pc < K; pc += kcb) {
      const index_t kc = std::min(kcb, K - pc);
      const bool last = pc + kc == K, addc = pc > 0 || cx.beta;
      const F* pj = cx.beta && pc == 0 ? gates + (b0 * T + t) * G : nullptr;  // the input projection's rows
      const F* blk = wg + pc * nb * 4 * W;
      for (index_t jb = 0; jb < nb; ++jb) {
        const index_t j0 = jb * W;
        const int nu = static_cast<int>(std::min<index_t>(W, H - j0));
        for (int s = 0; s < 2; ++s) {
          const F* bp = blk + ((jb * 2 + s) * kc) * 2 * W;
          const F* apt = ap;
          for (const StepTile& tt : tl) {
            if (tt.mr == 6)
              step_tile<F, 6>(gs, apt + pc * 6, bp, kc, addc, pj, T * G, tt, s, j0, nu, cx, a);
            else
              step_tile<F, 4>(gs, apt + pc * 4, bp, kc, addc, pj, T * G, tt, s, j0, nu, cx, a);
            apt += tt.mr * K;
          }
        }
        if (last)
          step_epi_block<F>(gs, lg, true, t > 0 ? cs : (c0 ? c0 + b0 * H : nullptr), t > 0 ? lh : H, cs, lh, hs, lh, bs,
                            j0, nu, b0, rows, t, cx.kx, a);
      }
    }
    for (index_t r = 0; r < rows; ++r) {  // the step's rows out, each contiguous
      const index_t row = (b0 + r) * T + t;
      copy_rows_out<F>(gates + row * G, gs + r * lg, G, a.stream && !cx.beta);  // (read above: cached, not streamed)
      copy_rows_out<F>(cell + row * H, cs + r * lh, H, a.stream);
      copy_rows_out<F>(y + row * H, hs + r * lh, H, a.stream);
    }
  }
#if ND_LSTM_X86
  if (a.stream) _mm_sfence();  // the streamed stores ordered before anything after the forward
#endif
}

// The tiles' forward copies the step rows out by non-temporal stores when the call's outputs (gates, cell, y:
// B*T*6H elements) reach this many MiB (the L3 cache of this VM's core complex: larger outputs cannot wait there
// for the backward anyway).
constexpr index_t kStreamMiB = 32;
// Rows per sub-chunk of the tiles' forward (its scratch: rows x (6H + 3 lines) floats, 410 KiB at H = 256).
constexpr index_t kStepRows = 64;

template <typename F>
ND_AI void fwd_rows_tiles(F* y, F* gates, F* cell, const F* bs, const F* h0, const F* c0, index_t b0, index_t b1,
                          const FwdArgs<F>& a, const F* wg) {
  const index_t n = b1 - b0, ns = (n + kStepRows - 1) / kStepRows;
  for (index_t i = 0; i < ns; ++i) {  // balanced sub-chunks
    index_t s0, s1;
    split_range(n, static_cast<int>(ns), static_cast<int>(i), s0, s1);
    fwd_rows_tiles_sub<F>(y, gates, cell, bs, h0, c0, b0 + s0, b0 + s1, a, wg);
  }
}

// Large batch chunks: per step, one nd::gemm of the chunk's h_{t-1} rows (read from y with lda = T*H; the GEMM
// packs them) by w_hh^T into the gates rows (ldc = T*G; beta = 1 over the input projection when KX = 0), then a
// separate vectorised epilogue pass over the rows (biases, the fused small-input terms, activations, c, h).
template <typename F>
ND_AI void fwd_rows_gemm_impl(F* y, F* gates, F* cell, const F* bs, const F* h0, const F* c0, index_t b0, index_t b1,
                              const FwdArgs<F>& a) {
  if (a.wg) {  // the LSTM's own tiles (the default)
    fwd_rows_tiles<F>(y, gates, cell, bs, h0, c0, b0, b1, a, a.wg);
    return;
  }
  const index_t T = a.T, H = a.H, G = 4 * H, KX = a.KX, rows = b1 - b0, KC = KX + H;
  // cat: the step's GEMM operand [x_t, h_{t-1}] (rows, KX + H), copied row by row (the GEMM packs it anyway)
  std::vector<F> xh(a.cat ? static_cast<std::size_t>(rows * KC) : 0);
  for (index_t t = 0; t < T; ++t) {
    const bool hprev = t > 0 || h0;
    if (a.cat) {
      for (index_t b = b0; b < b1; ++b) {
        F* d = xh.data() + (b - b0) * KC;
        std::memcpy(d, a.x + (b * T + t) * a.I, sizeof(F) * KX);
        if (hprev)
          std::memcpy(d + KX, t > 0 ? y + (b * T + t - 1) * H : h0 + b * H, sizeof(F) * H);
        else
          std::fill(d + KX, d + KC, F(0));
      }
      gemm_packed_b<F>(false, rows, F(1), xh.data(), KC, *a.wpk, F(0), gates + (b0 * T + t) * G, T * G);
    } else if (hprev) {
      const F* A = t > 0 ? y + (b0 * T + t - 1) * H : h0 + b0 * H;
      if (a.wpk)  // same blocks and micro-kernels as gemm<F>: the same bits
        gemm_packed_b<F>(false, rows, F(1), A, t > 0 ? T * H : H, *a.wpk, KX == 0 ? F(1) : F(0),
                         gates + (b0 * T + t) * G, T * G);
      else
        gemm<F>(false, true, rows, G, H, F(1), A, t > 0 ? T * H : H, a.w_hh, H, KX == 0 ? F(1) : F(0),
                gates + (b0 * T + t) * G, T * G);
    }
    const bool has = a.cat || hprev || KX == 0;  // the gates rows hold a partial sum
    // row by row (the rows are a multiple of 4 KiB apart: a unit block over all rows would keep reloading them)
    for (index_t b = b0; b < b1; ++b) {
      const index_t row = b * T + t;
      const F* ci = t > 0 ? cell + (row - 1) * H : (c0 ? c0 + b * H : nullptr);
      step_epi_row<F>(gates + row * G, has, ci, cell + row * H, y + row * H, bs, b, t, a.cat ? 0 : KX, a);
    }
  }
}

// The per-step GEMM forward (with w_hh^T packed once per call, gemm_pack_b) runs for H >= kGemmFwdMinH at any
// batch and input size, and for H >= kGemmFwdMinH2 with a batch of at least kGemmFwdMinRows (since the sixth pass
// for any input size: 2..15 features go into the step GEMM, kCatMinI). Measured against the fused kernels (bench/RESULTS.md, "LSTM
// forward fifth pass", one process, calls alternated): H = 256 2-14% faster at B = 32..256 and I = 1, 8, 256
// (B = 128, I = 256: 20%); H = 128, B = 256: 6-13% faster with I = 1 or 128, 8-10% slower with I = 8 (eight
// fused x terms in the separate epilogue), 9% slower at B = 32; H = 64 5% slower.
constexpr index_t kGemmFwdMinH = 256;
constexpr index_t kGemmFwdMinH2 = 128;
constexpr index_t kGemmFwdMinRows = 128;
// From this many small-input features (I < kSmallI) on, at H < kGemmFwdMinH, the per-step GEMM path takes x_t into
// its GEMM (K = I + H, [x_t, h_{t-1}] copied side by side per step) instead of adding I terms per gate in the
// epilogue, and the H >= kGemmFwdMinH2 rule above applies to those inputs too. Measured (bench/RESULTS.md, "LSTM
// forward sixth pass"): B = 256, I = 8, H = 128 6-9% faster than the fused kernels; at H = 256 (K = 264: one more
// GEMM K block) 4-11% slower than the 8 terms in the epilogue at B = 32, so not there with nd::gemm. The LSTM's own
// tiles (the default) take any small input (I >= 1) into their step GEMM, at any H (step_kcb: no extra K block).
constexpr index_t kCatMinI = 2;
// The per-step GEMM runs on the LSTM's own tiles (fwd_rows_tiles) at H >= kTilesMinH, and below with I = 1 (which
// the nd::gemm form adds in its epilogue); nd::gemm_packed_b elsewhere. Measured (bench/RESULTS.md, "LSTM forward
// seventh pass"), tiles / nd::gemm form in one build: H = 256, I = 1, B = 32 / 256: 0.93 / 0.87; B = 256, H = 128:
// I = 8 1.03, I = 128 0.99 (I = 1: 0.96 of the previous build).
constexpr index_t kTilesMinH = 256;
// At H <= kFuseWideMaxH with a batch of at least kGemmFwdMinRows, inputs of up to kFuseWideMaxI features (a second
// layer's) are fused into the step kernel as well (its sliver K = I + H) instead of the input GEMM whose (B,T,4H)
// projection the epilogue reads back cold: B = 256, I = H = 64 3-8% faster (B = 32: no gain).
constexpr index_t kFuseWideMaxH = 64;
constexpr index_t kFuseWideMaxI = 64;

// =========================================================================================== backward steps
// The backward's register tile (MR rows x NV vectors) shared by bwd_tile and bwd_dx_tile: its partial sums
// between K chunks live in part (MR, NV, W); tile_madd adds rows ap[i][k0..k1) times the packed sliver wp
// (k, NV*W) into acc.
template <typename F, int MR, int NV>
ND_AI void tile_load(Vec<F> (&acc)[MR][NV], bool first, const F* part) {
  constexpr int W = VT<F>::W;
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = first ? Vec<F>{} : ld(part + (i * NV + v) * W);
}
template <typename F, int MR, int NV>
ND_AI void tile_store(F* part, const Vec<F> (&acc)[MR][NV]) {
  constexpr int W = VT<F>::W;
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) st(part + (i * NV + v) * W, acc[i][v]);
}
template <typename F, int MR, int NV>
ND_AI void tile_madd(Vec<F> (&acc)[MR][NV], const F* const* ap, const F* wp, index_t k0, index_t k1) {
  constexpr int W = VT<F>::W;
  for (index_t k = k0; k < k1; ++k) {
    Vec<F> w[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) w[v] = ld(wp + k * NV * W + v * W);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const F d = ap[i][k];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] += d * w[v];
    }
  }
}

// Packed recurrent weight for the backward: Wb (nbb, G, NV*W), nbb = ceil(H / (NV*W));
//   Wb[(jb*G + k)*NV*W + u] = w_hh[k*H + jb*NV*W + u]  (0 for units >= H).
template <typename F, int MR, int NV>
ND_AI void bwd_tile(F* dG, F* dcs, const F* wb, const F* dy, const F* dh, const F* gates, const F* cell,
                    const F* c0, index_t r, int m, index_t t, index_t j0, index_t T, index_t H, index_t k0,
                    index_t k1, F* part, index_t pfd, bool pf_l1, index_t pfr, index_t b0, index_t b1) {
  // K chunk [k0, k1) of G; part (MR, NV, W): partial sums between chunks. pfd: prefetch distance in steps,
  // pf_l1: prefetch into L1 (else L2); pfr > 0: instead, the rows pfr batch rows later in the loop's order
  // (row r + pfr of step t; past b1, wrapped to the earlier step).
  using V = Vec<F>;
  constexpr int W = VT<F>::W;
  const index_t G = 4 * H;
  const bool first = k0 == 0, last = k1 == G;
  V acc[MR][NV];
  tile_load<F, MR, NV>(acc, first, part);
  if (first && (pfr > 0 || t >= pfd)) {
    // prefetch the rows of step t - pfd (read pfd iterations later in the time loop), as in fwd_tile
    for (int i = 0; i < m; ++i) {
      index_t rr = r + i, tp = t - pfd;
      if (pfr > 0) {
        rr += pfr;
        tp = t;
        while (rr >= b1) rr -= b1 - b0, --tp;
        if (tp < 0) continue;
      }
      const index_t row = rr * T + tp;
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        const index_t j = j0 + v * W;
        if (j < H) {
          const F* g = gates + row * G + j;
          const F* cp = cell + (row - (tp > 0 ? 1 : 0)) * H + j;
          auto fetch = [&](auto loc) {  // locality: a compile-time constant for __builtin_prefetch
            constexpr int L = decltype(loc)::value;
#pragma GCC unroll 4
            for (int q = 0; q < 4; ++q) {
              __builtin_prefetch(g + q * H, 0, L);
              __builtin_prefetch(dG + row * G + q * H + j, 1, L);
            }
            __builtin_prefetch(cp, 0, L);
            if (dy) __builtin_prefetch(dy + row * H + j, 0, L);
          };
          if (pf_l1)
            fetch(std::integral_constant<int, 3>{});
          else
            fetch(std::integral_constant<int, 2>{});
        }
      }
    }
  }
  if (t == T - 1) {
    if (dh && last) {
      for (int i = 0; i < m; ++i)
        for (int v = 0; v < NV; ++v) {
          const index_t j = j0 + v * W;
          if (j < H) acc[i][v] = ldn(dh + (r + i) * H + j, static_cast<int>(std::min<index_t>(W, H - j)));
        }
    }
  } else {
    const F* ap[MR];  // dG rows of step t+1; rows past m repeat row 0
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) ap[i] = dG + ((r + (i < m ? i : 0)) * T + t + 1) * G;
    tile_madd<F, MR, NV>(acc, ap, wb, k0, k1);
  }
  if (!last) {
    tile_store<F, MR, NV>(part, acc);
    return;
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    if (i < m) {
      const index_t b = r + i, row = b * T + t;
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        const index_t j = j0 + v * W;
        if (j < H) {
          const int nu = static_cast<int>(std::min<index_t>(W, H - j));
          const F* g = gates + row * G + j;
          V gi = ldn(g, nu), gf = ldn(g + H, nu), gg = ldn(g + 2 * H, nu), go = ldn(g + 3 * H, nu);
          V ct = ldn(cell + row * H + j, nu);
          V cp = t > 0 ? ldn(cell + (row - 1) * H + j, nu) : (c0 ? ldn(c0 + b * H + j, nu) : V{});
          V dht = dy ? acc[i][v] + ldn(dy + row * H + j, nu) : acc[i][v];
          V tc = vtanh<F>(ct);
          V dct = ldn(dcs + b * H + j, nu) + dht * go * (F(1) - tc * tc);
          F* d = dG + row * G + j;
          stn(d, dct * gg * gi * (F(1) - gi), nu);
          stn(d + H, dct * cp * gf * (F(1) - gf), nu);
          stn(d + 2 * H, dct * gi * (F(1) - gg * gg), nu);
          stn(d + 3 * H, dht * tc * go * (F(1) - go), nu);
          stn(dcs + b * H + j, dct * gf, nu);
        }
      }
    }
  }
}

// dx_{t1} = dG_{t1} @ w_ih for the rows [r, r+m) of one step t1 and the input columns [q0, q0 + NV*W): K chunk
// [k0, k1) of G, partial sums in part (MR, NV, W) between chunks (as bwd_tile). wx: the (G, NV*W) sliver of
// w_ih's columns (0 past I).
template <typename F, int MR, int NV>
ND_AI void bwd_dx_tile(F* dx, const F* dG, const F* wx, index_t r, int m, index_t t1, index_t q0, index_t T,
                       index_t G, index_t I, index_t k0, index_t k1, F* part) {
  using V = Vec<F>;
  constexpr int W = VT<F>::W;
  const bool first = k0 == 0, last = k1 == G;
  V acc[MR][NV];
  tile_load<F, MR, NV>(acc, first, part);
  const F* ap[MR];  // dG rows of step t1; rows past m repeat row 0
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) ap[i] = dG + ((r + (i < m ? i : 0)) * T + t1) * G;
  tile_madd<F, MR, NV>(acc, ap, wx, k0, k1);
  if (!last) {
    tile_store<F, MR, NV>(part, acc);
    return;
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
    if (i < m) {
      F* d = dx + ((r + i) * T + t1) * I;
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        const index_t q = q0 + v * W;
        if (q < I) stn(d + q, acc[i][v], static_cast<int>(std::min<index_t>(W, I - q)));
      }
    }
}

// Prefetch of the backward epilogue's rows (gates, cell, dy, dG of one step): this many steps ahead, into L2
// (kBwdPfL1 = 0) or L1.
constexpr index_t kBwdPfDist = 1;
constexpr index_t kBwdPfL1 = 0;
// > 0: prefetch this many batch rows ahead in the loop's order instead (row r + kBwdPfRows of the same step,
// wrapping to the previous step): at B = 256 one step's rows (~770 KiB at H = 64) do not fit L2.
constexpr index_t kBwdPfRows = 16;

// The reverse recurrence over the batch rows [b0, b1). With dx (Wx: w_ih packed as Wb, (nbx, G, NV*W)),
// step t also computes dx_{t+1} = dG_{t+1} @ w_ih for the panel's rows while they are in cache (the rows of
// dx_0 are left to the caller).
template <typename F, int MR, int NV>
ND_AI void bwd_rows_impl(F* dG, F* dcs, const F* Wb, const F* dy, const F* dh, const F* gates, const F* cell,
                         const F* c0, index_t b0, index_t b1, index_t T, index_t H, F* dx, const F* Wx,
                         index_t I) {
  constexpr int W = VT<F>::W;
  const index_t NU = NV * W, nbb = (H + NU - 1) / NU, G = 4 * H;
  const index_t nkc = (G * NU * index_t(sizeof(F)) + kSliverBytes - 1) / kSliverBytes;
  const index_t kc = (G + nkc - 1) / nkc;
  std::vector<F> part_buf(nkc > 1 ? static_cast<std::size_t>((b1 - b0 + MR) * NU) : 1);  // (rows, NV, W)
  // Row panels, as in the forward: a panel's dG_{t+1} rows (one K chunk) stay in L1 across unit blocks.
  // ND_LSTM_BWD_PANEL_BYTES overrides kPanelBytes per call (bitwise neutral: same operations per element).
  const index_t pb = env_index("ND_LSTM_BWD_PANEL_BYTES", kPanelBytes);
  const index_t panel = std::max<index_t>(MR, (pb / (kc * index_t(sizeof(F)))) / MR * MR);
  // prefetch distance (steps) and level of the epilogue's rows; ND_LSTM_BWD_PF_DIST / _L1 override per call
  // (bitwise neutral: prefetches only)
  const index_t pfd = std::max<index_t>(1, env_index("ND_LSTM_BWD_PF_DIST", kBwdPfDist));
  const bool pf_l1 = env_index("ND_LSTM_BWD_PF_L1", kBwdPfL1) != 0;
  const index_t pfr = env_index("ND_LSTM_BWD_PF_ROWS", kBwdPfRows);
  for (index_t t = T - 1; t >= 0; --t)
    for (index_t p0 = b0; p0 < b1; p0 += panel) {
      const index_t p1 = std::min(b1, p0 + panel);
      for (index_t jb = 0; jb < nbb; ++jb) {
        const F* wb = Wb + jb * G * NU;  // (G, NV*W) sliver
        // at t = T-1 nothing is accumulated (dh_{T-1} = dh): one pass
        for (index_t k0 = 0; k0 < G; k0 += (t == T - 1 ? G : kc)) {
          const index_t k1 = t == T - 1 ? G : std::min(G, k0 + kc);
          for (index_t r = p0; r < p1; r += MR) {
            const int m = static_cast<int>(std::min<index_t>(MR, p1 - r));
            bwd_tile<F, MR, NV>(dG, dcs, wb, dy, dh, gates, cell, c0, r, m, t, jb * NU, T, H, k0, k1,
                                part_buf.data() + (r - b0) * NU, pfd, pf_l1, pfr, b0, b1);
          }
        }
      }
      if (dx && t + 1 < T)
        for (index_t jx = 0; jx * NU < I; ++jx) {
          const F* wx = Wx + jx * G * NU;
          for (index_t k0 = 0; k0 < G; k0 += kc) {
            const index_t k1 = std::min(G, k0 + kc);
            for (index_t r = p0; r < p1; r += MR) {
              const int m = static_cast<int>(std::min<index_t>(MR, p1 - r));
              bwd_dx_tile<F, MR, NV>(dx, dG, wx, r, m, t + 1, jx * NU, T, G, I, k0, k1,
                                     part_buf.data() + (r - b0) * NU);
            }
          }
        }
    }
}

// db_ih += sum_n dG, db_hh += sum_n dG and, when I < kSmallI, dw_ih += dG^T x, for the gate columns [g0, g1):
// one pass walking dG (N = B*T rows) row by row over the range (one contiguous stream; the earlier version
// made one strided pass per 8-vector column block, which was latency-bound). Each column is summed in row
// order (row chunks of kRowChunk summed separately, then added in order), whatever the split into ranges.
// The partial and total sums live in ws (2 (Is+1) ceil((g1-g0)/W) W elements).
constexpr index_t kRowChunk = 256;
// Rows per register pass of colsum (0 via ND_LSTM_COLSUM_SUB: the read-modify-write loop over part per row).
// The row-by-row loop did one load and one store of part per (row, vector, column of x): 9 of each per dG
// vector at I = 8, store-bound (~1.3 ms of an 11 ms layer backward at B=32 T=168 I=8 H=64). A pass keeps the
// sums of one vector of dG columns for up to kColsumQ columns (bias, x_0 ..) in registers over kColsumSubRows
// rows (16 dG lines 1 KiB apart: they stay in L1 for the next vector) and stores them once. Same additions in
// the same order per element: bitwise the same.
constexpr index_t kColsumSubRows = 16;
constexpr int kColsumQ = 12;

// part rows [e0, e0 + ne) (e = 0: the bias sums, e = q + 1: x column q) += over rows [s0, s1) of dG's columns
// [g0, g0 + nv*W); kBias: e0 == 0. NQ >= ne accumulators (the extra ones repeat x column 0, discarded).
template <typename F, int NQ, bool kBias>
ND_AI void colsum_pass(F* part, index_t stride, const F* dG, const F* x, index_t G, index_t I, index_t g0, int nv,
                       int last, index_t s0, index_t s1, index_t e0, int ne) {
  using V = Vec<F>;
  constexpr int W = VT<F>::W;
  index_t col[NQ];
#pragma GCC unroll 16
  for (int j = 0; j < NQ; ++j) col[j] = j < ne ? e0 + j - 1 : 0;
  for (int v = 0; v < nv; ++v) {
    V acc[NQ];
#pragma GCC unroll 16
    for (int j = 0; j < NQ; ++j) acc[j] = ld(part + (e0 + (j < ne ? j : 0)) * stride + v * W);
    const F* d = dG + s0 * G + g0 + v * W;
    const F* xr = x + s0 * I;
    if (v + 1 < nv) {
      for (index_t n = s0; n < s1; ++n, d += G, xr += I) {
        const V dv = ld(d);
#pragma GCC unroll 16
        for (int j = 0; j < NQ; ++j) {
          if (kBias && j == 0)
            acc[0] = acc[0] + dv;
          else
            acc[j] = acc[j] + xr[col[j]] * dv;
        }
      }
    } else {
      for (index_t n = s0; n < s1; ++n, d += G, xr += I) {
        const V dv = ldn(d, last);
#pragma GCC unroll 16
        for (int j = 0; j < NQ; ++j) {
          if (kBias && j == 0)
            acc[0] = acc[0] + dv;
          else
            acc[j] = acc[j] + xr[col[j]] * dv;
        }
      }
    }
#pragma GCC unroll 16
    for (int j = 0; j < NQ; ++j)
      if (j < ne) st(part + (e0 + j) * stride + v * W, acc[j]);
  }
}

template <typename F, bool kBias>
ND_AI void colsum_pass_n(F* part, index_t stride, const F* dG, const F* x, index_t G, index_t I, index_t g0,
                         int nv, int last, index_t s0, index_t s1, index_t e0, int ne) {
  if (ne <= 1)
    colsum_pass<F, 1, kBias>(part, stride, dG, x, G, I, g0, nv, last, s0, s1, e0, ne);
  else if (ne <= 2)
    colsum_pass<F, 2, kBias>(part, stride, dG, x, G, I, g0, nv, last, s0, s1, e0, ne);
  else if (ne <= 3)
    colsum_pass<F, 3, kBias>(part, stride, dG, x, G, I, g0, nv, last, s0, s1, e0, ne);
  else if (ne <= 5)
    colsum_pass<F, 5, kBias>(part, stride, dG, x, G, I, g0, nv, last, s0, s1, e0, ne);
  else if (ne <= 9)
    colsum_pass<F, 9, kBias>(part, stride, dG, x, G, I, g0, nv, last, s0, s1, e0, ne);
  else
    colsum_pass<F, kColsumQ, kBias>(part, stride, dG, x, G, I, g0, nv, last, s0, s1, e0, ne);
}

template <typename F>
ND_AI void colsum_impl(F* db_ih, F* db_hh, F* dw_ih, const F* dG, const F* x, index_t N, index_t G, index_t I,
                       index_t g0, index_t g1, F* ws) {
  using V = Vec<F>;
  constexpr int W = VT<F>::W;
  const index_t Is = dw_ih ? I : 0;
  const int nv = static_cast<int>((g1 - g0 + W - 1) / W);
  const int last = static_cast<int>(g1 - g0 - (nv - 1) * W);
  const index_t stride = index_t(nv) * W;  // one (q) row of part / tot
  F* part = ws;                            // (Is+1, nv*W)
  F* tot = ws + (Is + 1) * stride;         // (Is+1, nv*W)
  for (index_t e = 0; e < (Is + 1) * stride; ++e) tot[e] = F(0);
  const index_t sub = env_index("ND_LSTM_COLSUM_SUB", kColsumSubRows);
  for (index_t n0 = 0; n0 < N; n0 += kRowChunk) {
    const index_t n1 = std::min(N, n0 + kRowChunk);
    for (index_t e = 0; e < (Is + 1) * stride; ++e) part[e] = F(0);
    if (sub > 0) {
      for (index_t s0 = n0; s0 < n1; s0 += sub) {
        const index_t s1 = std::min(n1, s0 + sub);
        for (index_t e0 = 0; e0 < Is + 1; e0 += kColsumQ) {
          const int ne = static_cast<int>(std::min<index_t>(kColsumQ, Is + 1 - e0));
          if (e0 == 0)
            colsum_pass_n<F, true>(part, stride, dG, x, G, I, g0, nv, last, s0, s1, e0, ne);
          else
            colsum_pass_n<F, false>(part, stride, dG, x, G, I, g0, nv, last, s0, s1, e0, ne);
        }
      }
    } else
    for (index_t n = n0; n < n1; ++n) {
      const F* d = dG + n * G + g0;
      const F* xr = x + n * I;
      for (int v = 0; v < nv; ++v) {
        const V dv = v + 1 < nv ? ld(d + v * W) : ldn(d + v * W, last);
        F* p = part + v * W;
        st(p, ld(p) + dv);
        for (index_t q = 0; q < Is; ++q) {
          const F xv = xr[q];
          F* pq = p + (q + 1) * stride;
          st(pq, ld(pq) + xv * dv);
        }
      }
    }
    for (index_t e = 0; e < (Is + 1) * stride; e += W) st(tot + e, ld(tot + e) + ld(part + e));
  }
  for (int v = 0; v < nv; ++v) {
    const int cnt = v + 1 < nv ? W : last;
    for (int l = 0; l < cnt; ++l) {
      const F b = tot[v * W + l];
      db_ih[g0 + v * W + l] += b;
      db_hh[g0 + v * W + l] += b;
    }
    for (index_t q = 0; q < Is; ++q)
      for (int l = 0; l < cnt; ++l) dw_ih[(g0 + v * W + l) * I + q] += tot[(q + 1) * stride + v * W + l];
  }
}

// dx[n, q] = sum_g dG[n, g] wt[q, g] for rows n in [n0, n1), I < kSmallI: columns q in groups of 4 (one
// pass over the row per group, 4 independent accumulators); each sum in W lanes (lane l takes g = l mod W,
// in order), then the lanes added in order: the same operations for every row.
template <typename F>
ND_AI void rowdot_impl(F* dx, const F* dG, const F* wt, index_t n0, index_t n1, index_t G, index_t I) {
  using V = Vec<F>;
  constexpr int W = VT<F>::W;
  const index_t gv = G / W * W;
  for (index_t n = n0; n < n1; ++n) {
    const F* d = dG + n * G;
    for (index_t q0 = 0; q0 < I; q0 += 4) {
      const int nq = static_cast<int>(std::min<index_t>(4, I - q0));
      const F* w[4];
      for (int j = 0; j < 4; ++j) w[j] = wt + (q0 + (j < nq ? j : 0)) * G;  // extra columns repeat q0
      V acc[4] = {V{}, V{}, V{}, V{}};
      for (index_t g = 0; g < gv; g += W) {
        const V dv = ld(d + g);
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) acc[j] += dv * ld(w[j] + g);
      }
      for (int j = 0; j < nq; ++j) {
        alignas(32) F buf[W];
        st(buf, acc[j]);
        F s = 0;
        for (int l = 0; l < W; ++l) s += buf[l];
        for (index_t g = gv; g < G; ++g) s += d[g] * w[j][g];
        dx[n * I + q0 + j] = s;
      }
    }
  }
}

// dW without packing (dW_hh at H <= kDwRowsMaxN, dW_ih at kSmallI <= I <= kDwRowsMaxN): out[i*ldo + 0 .. nk)
// += sum over rows n in [n0, n1) of D[n*G + i] * S_n[0 .. nk) for i < MR, nk <= 2W, i.e. an MR x 2W tile of
// dW = D^T S read straight from the row-major buffers (MR broadcasts from each dG row, two vector loads from
// the S row; neither operand packed). S_n = x row n (T == 0: dW_ih); for dW_hh (T > 0) S_n is the state
// before step t = n % T of batch row b = n / T: y row n - 1 for t > 0, h0 row b for t = 0 (nothing when h0
// is absent). The tile's sum starts from zero per call and is added to out once: with fixed row ranges
// (sub-chunks of kDwSubRows rows from row 0) every element sees the same operations whatever the thread
// split (threads own ranges of tiles).
template <typename F, int MR, bool kFull>
ND_AI void dw_run(Vec<F> (&acc)[MR][2], const F* d, index_t ldd, const F* s, index_t lds, index_t len, int nk) {
  constexpr int W = VT<F>::W;
  for (index_t r = 0; r < len; ++r, d += ldd, s += lds) {
    Vec<F> w0, w1;
    if (kFull) {
      w0 = ld(s);
      w1 = ld(s + W);
    } else {
      w0 = ldn(s, nk < W ? nk : W);
      w1 = nk > W ? ldn(s + W, nk - W) : Vec<F>{};
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const F dv = d[i];
      acc[i][0] += dv * w0;
      acc[i][1] += dv * w1;
    }
  }
}

// D: the dG block's row n0 (row stride ldd: G for dG itself, kDwPackCols for a packed copy of its columns).
template <typename F, int MR, bool kFull>
ND_AI void dw_product(F* out, index_t ldo, const F* D, index_t ldd, const F* S, index_t lds, index_t n0,
                      index_t n1, index_t T, const F* h0, int nk) {
  constexpr int W = VT<F>::W;
  Vec<F> acc[MR][2];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = Vec<F>{};
  if (T == 0) {
    dw_run<F, MR, kFull>(acc, D, ldd, S + n0 * lds, lds, n1 - n0, nk);
  } else {
    // segments within one sequence: rows n (t >= 1) pair with y rows n - 1
    for (index_t n = n0; n < n1;) {
      const index_t t = n % T;
      if (t == 0) {
        if (h0) dw_run<F, MR, kFull>(acc, D + (n - n0) * ldd, ldd, h0 + (n / T) * lds, 0, 1, nk);
        ++n;
        continue;
      }
      const index_t e = std::min(n1, n - t + T);
      dw_run<F, MR, kFull>(acc, D + (n - n0) * ldd, ldd, S + (n - 1) * lds, lds, e - n, nk);
      n = e;
    }
  }
#pragma GCC unroll 8  // static indices: a loop over acc[i] would keep acc in memory
  for (int i = 0; i < MR; ++i) {
    F* o = out + i * ldo;
    if (kFull) {
      st(o, ld(o) + acc[i][0]);
      st(o + W, ld(o + W) + acc[i][1]);
    } else {
      const int nv0 = nk < W ? nk : W;
      stn(o, ldn(o, nv0) + acc[i][0], nv0);
      if (nk > W) stn(o + W, ldn(o + W, nk - W) + acc[i][1], nk - W);
    }
  }
}

constexpr int kDwMR = 6;  // dW tile rows (6 x 2 accumulators)
// dW by dw_rows_impl instead of nd::gemm up to this width (H for dW_hh, I for dW_ih); ND_LSTM_DW_ROWS_MAXN
// overrides per call (0: the GEMMs).
constexpr index_t kDwRowsMaxN = 64;
// Rows of dG per dw_rows call (one sub-chunk, read by every tile while it is in L2).
constexpr index_t kDwSubRows = 64;
// Gate columns of dG copied per sub-chunk into a contiguous (rows, kDwPackCols) block before its dW tiles run
// (ND_LSTM_DW_PACK=0: the tiles read dG in place, as before). In place, a tile's 6 columns of 64 dG rows are
// 64 lines 1 KiB apart (G = 256 floats at H = 64), all in 4 of L1's 64 sets (32 lines of room): every one of
// the 4 column tiles of a tile row re-read them from L2. Packed (6 KiB at 64 rows) they stay in L1 for all the
// tiles of the group (4 tile rows x 4 column tiles at H = 64), and the dG line is read from L2/L3 once. The
// per-element operations are the same (same sub-chunks, same row order): bitwise neutral.
constexpr index_t kDwPackCols = 4 * kDwMR;
// Above kDwRowsMaxN: dW by GEMMs written straight into dW (G, H) (1), or computed transposed and added (0).
constexpr index_t kDwDirect = 1;

// One column tile of rows [q0, q0 + m) of dW: the switch over m (no lambda here: a lambda's body is a
// separate function without the caller's target attribute, and would compile to baseline code).
template <typename F, bool kFull>
ND_AI void dw_col_tile(F* o, index_t N, const F* d, index_t ldd, const F* sp, index_t n0, index_t n1,
                       index_t T, const F* hp, int m, int nk) {
  switch (m) {
    case 6: dw_product<F, 6, kFull>(o, N, d, ldd, sp, N, n0, n1, T, hp, nk); break;
    case 5: dw_product<F, 5, kFull>(o, N, d, ldd, sp, N, n0, n1, T, hp, nk); break;
    case 4: dw_product<F, 4, kFull>(o, N, d, ldd, sp, N, n0, n1, T, hp, nk); break;
    case 3: dw_product<F, 3, kFull>(o, N, d, ldd, sp, N, n0, n1, T, hp, nk); break;
    case 2: dw_product<F, 2, kFull>(o, N, d, ldd, sp, N, n0, n1, T, hp, nk); break;
    default: dw_product<F, 1, kFull>(o, N, d, ldd, sp, N, n0, n1, T, hp, nk); break;
  }
}

// Rows [q0, q0 + m) (m <= kDwMR) of dW (G, N), all N columns, from the rows [n0, n1) of S (N columns, row
// stride N) and of the dG block D (D: gate column q0 of row n0; row stride ldd).
template <typename F>
ND_AI void dw_rows_impl(F* dw, index_t N, index_t q0, int m, const F* D, index_t ldd, const F* S, index_t n0,
                        index_t n1, index_t T, const F* h0) {
  constexpr int W = VT<F>::W;
  const index_t NR = 2 * W;
  for (index_t k0 = 0; k0 < N; k0 += NR) {
    const int nk = static_cast<int>(std::min<index_t>(NR, N - k0));
    F* o = dw + q0 * N + k0;
    const F* hp = h0 ? h0 + k0 : nullptr;
    if (nk == NR)
      dw_col_tile<F, true>(o, N, D, ldd, S + k0, n0, n1, T, hp, m, nk);
    else
      dw_col_tile<F, false>(o, N, D, ldd, S + k0, n0, n1, T, hp, m, nk);
  }
}

// ------------------------------------------------------------------------- ISA instances
// Register tiles: forward MR rows x 4 gate vectors; backward MRB rows x NVB vectors of units.
constexpr int kMR = 3;
constexpr int kMRB = 4;   // backward rows per tile for small batch chunks (8 accumulators, no padding rows)
constexpr int kMRB6 = 6;  // ... and for chunks of >= kRowsMR6 rows (12 accumulators hide the FMA latency)
constexpr index_t kRowsMR6 = 24;  // ND_LSTM_BWD_MR6_ROWS overrides per call (A/Bs; bitwise neutral)
constexpr int kNVB = 2;

template <typename F>
struct StepKernels {
  void (*fwd)(F*, F*, F*, const F*, const F*, const F*, const F*, index_t, index_t, const FwdArgs<F>&);
  void (*bwd)(F*, F*, const F*, const F*, const F*, const F*, const F*, const F*, index_t, index_t, index_t,
              index_t, F*, const F*, index_t);
  void (*colsum)(F*, F*, F*, const F*, const F*, index_t, index_t, index_t, index_t, index_t, F*);
  void (*rowdot)(F*, const F*, const F*, index_t, index_t, index_t, index_t);
};

template <typename F>
void fwd_rows_generic(F* y, F* gates, F* cell, const F* Wf, const F* bs, const F* h0, const F* c0, index_t b0,
                      index_t b1, const FwdArgs<F>& a) {
  if (a.step_gemm)
    fwd_rows_gemm_impl<F>(y, gates, cell, bs, h0, c0, b0, b1, a);
  else
    fwd_rows_impl<F, kMR>(y, gates, cell, Wf, bs, h0, c0, b0, b1, a);
}
template <typename F>
void bwd_rows_generic(F* dG, F* dcs, const F* Wb, const F* dy, const F* dh, const F* gates, const F* cell,
                      const F* c0, index_t b0, index_t b1, index_t T, index_t H, F* dx, const F* Wx, index_t I) {
  if (b1 - b0 >= env_index("ND_LSTM_BWD_MR6_ROWS", kRowsMR6))
    bwd_rows_impl<F, kMRB6, kNVB>(dG, dcs, Wb, dy, dh, gates, cell, c0, b0, b1, T, H, dx, Wx, I);
  else
    bwd_rows_impl<F, kMRB, kNVB>(dG, dcs, Wb, dy, dh, gates, cell, c0, b0, b1, T, H, dx, Wx, I);
}

template <typename F>
void colsum_generic(F* db_ih, F* db_hh, F* dw_ih, const F* dG, const F* x, index_t N, index_t G, index_t I,
                    index_t g0, index_t g1, F* ws) {
  colsum_impl<F>(db_ih, db_hh, dw_ih, dG, x, N, G, I, g0, g1, ws);
}
template <typename F>
void rowdot_generic(F* dx, const F* dG, const F* wt, index_t n0, index_t n1, index_t G, index_t I) {
  rowdot_impl<F>(dx, dG, wt, n0, n1, G, I);
}

#if ND_LSTM_X86
template <typename F>
__attribute__((target("avx2,fma"))) void rowdot_avx2(F* dx, const F* dG, const F* wt, index_t n0, index_t n1,
                                                      index_t G, index_t I) {
  rowdot_impl<F>(dx, dG, wt, n0, n1, G, I);
}
template <typename F>
__attribute__((target("avx2,fma"))) void fwd_rows_avx2(F* y, F* gates, F* cell, const F* Wf, const F* bs,
                                                        const F* h0, const F* c0, index_t b0, index_t b1,
                                                        const FwdArgs<F>& a) {
  if (a.step_gemm)
    fwd_rows_gemm_impl<F>(y, gates, cell, bs, h0, c0, b0, b1, a);
  else
    fwd_rows_impl<F, kMR>(y, gates, cell, Wf, bs, h0, c0, b0, b1, a);
}
template <typename F>
__attribute__((target("avx2,fma"))) void bwd_rows_avx2(F* dG, F* dcs, const F* Wb, const F* dy, const F* dh,
                                                        const F* gates, const F* cell, const F* c0, index_t b0,
                                                        index_t b1, index_t T, index_t H, F* dx, const F* Wx,
                                                        index_t I) {
  if (b1 - b0 >= env_index("ND_LSTM_BWD_MR6_ROWS", kRowsMR6))
    bwd_rows_impl<F, kMRB6, kNVB>(dG, dcs, Wb, dy, dh, gates, cell, c0, b0, b1, T, H, dx, Wx, I);
  else
    bwd_rows_impl<F, kMRB, kNVB>(dG, dcs, Wb, dy, dh, gates, cell, c0, b0, b1, T, H, dx, Wx, I);
}
template <typename F>
__attribute__((target("avx2,fma"))) void colsum_avx2(F* db_ih, F* db_hh, F* dw_ih, const F* dG, const F* x,
                                                      index_t N, index_t G, index_t I, index_t g0, index_t g1,
                                                      F* ws) {
  colsum_impl<F>(db_ih, db_hh, dw_ih, dG, x, N, G, I, g0, g1, ws);
}
#endif

bool use_avx2() { return ND_LSTM_X86 && simd_avx2_enabled(); }

// The backward's dW row tiles (dw_rows_impl), dispatched on their own (not in StepKernels).
template <typename F>
using DwRowsFn = void (*)(F*, index_t, index_t, int, const F*, index_t, const F*, index_t, index_t, index_t,
                          const F*);
template <typename F>
void dw_rows_generic(F* dw, index_t N, index_t q0, int m, const F* D, index_t ldd, const F* S, index_t n0,
                     index_t n1, index_t T, const F* h0) {
  dw_rows_impl<F>(dw, N, q0, m, D, ldd, S, n0, n1, T, h0);
}
#if ND_LSTM_X86
template <typename F>
__attribute__((target("avx2,fma"))) void dw_rows_avx2(F* dw, index_t N, index_t q0, int m, const F* D,
                                                        index_t ldd, const F* S, index_t n0, index_t n1,
                                                        index_t T, const F* h0) {
  dw_rows_impl<F>(dw, N, q0, m, D, ldd, S, n0, n1, T, h0);
}
#endif
template <typename F>
DwRowsFn<F> dw_rows_kernel() {
#if ND_LSTM_X86
  if (use_avx2()) return &dw_rows_avx2<F>;
#endif
  return &dw_rows_generic<F>;
}

template <typename F>
StepKernels<F> step_kernels() {
#if ND_LSTM_X86
  if (use_avx2())
    return {&fwd_rows_avx2<F>, &bwd_rows_avx2<F>, &colsum_avx2<F>, &rowdot_avx2<F>};
#endif
  return {&fwd_rows_generic<F>, &bwd_rows_generic<F>, &colsum_generic<F>, &rowdot_generic<F>};
}

// f(b0, b1) over contiguous batch chunks, one per thread (deterministic split).
// Below this many FLOPs per thread a parallel region costs more than it saves (and on a shared machine a
// descheduled worker stalls the join for a whole time slice): run on the calling thread.
constexpr double kMinWorkPerThread = 2e6;

inline int threads_for(double work, index_t units) {
  int nt = num_threads();
  if (nt > units) nt = static_cast<int>(units);
  while (nt > 1 && work / nt < kMinWorkPerThread) --nt;
  return nt;
}

template <class Fn>
void for_batch_chunks(index_t B, double work, Fn&& f) {
#ifdef ND_OPENMP
  int nt = threads_for(work, B);
  if (nt > 1 && !omp_in_parallel()) {
#pragma omp parallel num_threads(nt)
    {
      index_t b0, b1;
      split_range(B, omp_get_num_threads(), omp_get_thread_num(), b0, b1);
      if (b1 > b0) f(b0, b1);
    }
    return;
  }
#endif
  f(index_t(0), B);
}

template <class Fn>
void for_blocks(index_t nblocks, double work, Fn&& f) {
#ifdef ND_OPENMP
  int nt = threads_for(work, nblocks);
  if (nt > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static) num_threads(nt)
    for (index_t i = 0; i < nblocks; ++i) f(i);
    return;
  }
#endif
  for (index_t i = 0; i < nblocks; ++i) f(i);
}

// Grow-only, 64-byte aligned buffer per calling thread (the backward's dG): repeated training steps of one
// shape reuse it instead of mapping (and page-faulting) a fresh B*T*4H buffer every call. It keeps the
// largest size used by that thread until the thread exits. From 2 MiB up it is 2 MiB aligned and asks for
// transparent huge pages (this VM: THP "madvise" only; numpy's own large arrays ask for them too): the
// step kernel touches one dG row per batch row and step, T*4H elements apart.
struct Workspace {
  void* p = nullptr;
  std::size_t cap = 0;
  ~Workspace() { std::free(p); }
  void* reserve(std::size_t need) {
    if (need <= cap) return p;
    std::free(p);
    p = nullptr;
    cap = 0;
    constexpr std::size_t kHuge = std::size_t(2) << 20;
    if (need >= kHuge) {
      need = (need + kHuge - 1) & ~(kHuge - 1);
      p = std::aligned_alloc(kHuge, need);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
      if (p) madvise(p, need, MADV_HUGEPAGE);
#endif
    } else {
      need = (need + 4095) & ~std::size_t(4095);
      p = std::aligned_alloc(64, need);
    }
    if (!p) throw std::bad_alloc();
    cap = need;
    return p;
  }
};
thread_local Workspace tls_dg;

// =========================================================================================== fast drivers
template <typename F>
void forward_fast(F* y, F* gates, F* cell, const F* x, const F* w_ih, const F* w_hh, const F* b_ih,
                  const F* b_hh, const F* h0, const F* c0, index_t B, index_t T, index_t I, index_t H) {
  constexpr int W = VT<F>::W;
  const index_t G = 4 * H, Hp = (H + W - 1) / W * W, nb = Hp / W;
  // inputs of up to fuse_i features go into the step kernels instead of the input GEMM (ND_LSTM_FWD_FUSE_I: A/B)
  const index_t fuse_i = env_index("ND_LSTM_FWD_FUSE_I", H <= kFuseWideMaxH && B >= kGemmFwdMinRows ? kFuseWideMaxI
                                                                                                   : kSmallI - 1);
  const index_t KX = I <= fuse_i ? I : 0, KS = KX + H;
  // 1. input projection for all steps: gates (B*T,G) = x (B*T,I) @ w_ih^T (one GEMM), unless I is small:
  //    then it is fused into the step kernel (a GEMM with K = I would only stream gates through memory)
  if (KX == 0) gemm<F>(false, true, B * T, G, I, F(1), x, I, w_ih, I, F(0), gates, G);
  const index_t sg = env_index("ND_LSTM_FWD_STEP_GEMM", -1);
  const bool packed_ok = env_index("ND_LSTM_FWD_PACKED_B", 1) != 0;
  // more than one small-input feature: in the per-step GEMM (K = KX + H) rather than the epilogue
  const bool cat_ok = KX >= kCatMinI && H < kGemmFwdMinH && packed_ok && env_index("ND_LSTM_FWD_STEP_CAT", 1) != 0;
  const bool step_gemm =
      sg < 0 ? H >= kGemmFwdMinH || (H >= kGemmFwdMinH2 && B >= kGemmFwdMinRows && (KX <= 1 || cat_ok)) : sg > 0;
  // 2. pack [w_ih^T (fused part);] w_hh^T in gate-interleaved slivers (not for the per-step GEMM: ~1 ms at H = 256),
  //    and the summed biases
  std::vector<F> Wf(step_gemm ? 0 : static_cast<std::size_t>(nb * KS * 4 * W), F(0));  // (nb, KX+H, 4, W)
  std::vector<F> bs(static_cast<std::size_t>(4 * Hp), F(0));                             // (4, Hp)
  for (index_t jb = 0; jb < nb && !step_gemm; ++jb)
    for (index_t q = 0; q < 4; ++q)
      for (index_t l = 0; l < W && jb * W + l < H; ++l) {
        F* dst = Wf.data() + (jb * KS * 4 + q) * W + l;
        const F* sx = w_ih + (q * H + jb * W + l) * I;  // row of w_ih (I)
        for (index_t k = 0; k < KX; ++k) dst[k * 4 * W] = sx[k];
        const F* src = w_hh + (q * H + jb * W + l) * H;  // row of w_hh (H)
        for (index_t k = 0; k < H; ++k) dst[(KX + k) * 4 * W] = src[k];
      }
  for (index_t q = 0; q < 4; ++q)
    for (index_t j = 0; j < H; ++j) bs[q * Hp + j] = b_ih[q * H + j] + b_hh[q * H + j];
  // 3. the recurrence, batch split across threads
  const StepKernels<F> ks = step_kernels<F>();
  std::vector<F> wx(static_cast<std::size_t>(KX * G));  // (KX,G) = w_ih^T for the per-step GEMM forward
  for (index_t g = 0; g < G; ++g)
    for (index_t k = 0; k < KX; ++k) wx[k * G + g] = w_ih[g * I + k];
  // the per-step GEMM's B operand (w_hh^T, or [w_ih | w_hh]^T with cat) packed once per call instead of once per step
  PackedB<F> wpk;
  const bool packed = step_gemm && packed_ok;
  const index_t tiles_knob = env_index("ND_LSTM_FWD_STEP_TILES", -1);  // 1 / 0: on / off; unset: kTilesMinH
  const bool tiles = packed && (tiles_knob < 0 ? H >= kTilesMinH || KX == 1 : tiles_knob != 0);
  // with the LSTM's own tiles any small input goes into the step GEMM (its K block takes them: step_kcb)
  const bool cat = packed && (cat_ok || (tiles && KX >= 1 && env_index("ND_LSTM_FWD_STEP_CAT", 1) != 0));
  if (cat && !tiles) {
    std::vector<F> wc(static_cast<std::size_t>(G * KS));  // (G, KX + H) = [w_ih | w_hh]
    for (index_t g = 0; g < G; ++g) {
      std::memcpy(wc.data() + g * KS, w_ih + g * I, sizeof(F) * KX);
      std::memcpy(wc.data() + g * KS + KX, w_hh + g * H, sizeof(F) * H);
    }
    gemm_pack_b<F>(true, KS, G, wc.data(), KS, wpk);
  } else if (packed && !tiles) {
    gemm_pack_b<F>(true, H, G, w_hh, H, wpk);
  }
  // or, for the LSTM's own tiles (ND_LSTM_FWD_STEP_TILES=0: nd::gemm_packed_b, the same bits), in their layout
  static thread_local std::vector<F> wg;  // kept between calls (no fresh pages to fault in: ~0.3 ms at H = 256)
  if (tiles) pack_step_w<F>(wg, w_ih, I, cat ? KX : 0, w_hh, H, Hp);
  const index_t panel_bytes = env_index("ND_LSTM_FWD_PANEL_BYTES", kPanelBytes);
  // outputs beyond what the L3 cache could keep for the backward (kStreamMiB; ND_LSTM_FWD_STREAM_MIB) are streamed
  const double out_mib = double(B) * double(T) * double(6 * H) * double(sizeof(F)) / (1024.0 * 1024.0);
  const bool stream = tiles && out_mib >= double(env_index("ND_LSTM_FWD_STREAM_MIB", kStreamMiB));
  const FwdArgs<F> a{T,   H, Hp,   I,         KX, step_gemm, panel_bytes, packed && !tiles ? &wpk : nullptr,
                     cat, x, w_hh, wx.data(), tiles ? wg.data() : nullptr, stream};
  const F *wf = Wf.data(), *bsp = bs.data();
  const double work = 2.0 * double(B) * double(T) * double(KX + H) * double(4 * H);
  for_batch_chunks(B, work, [&](index_t b0, index_t b1) { ks.fwd(y, gates, cell, wf, bsp, h0, c0, b0, b1, a); });
}

// d (R,C) += s^T, s (C,R): in blocks of 16 rows of d, whose columns of s (one 64-byte piece of each of the
// C rows of s) are first copied into a (C, 16) buffer. The plain double loop read s with a stride of R
// elements (4 KiB at R = 4H = 1024: every read a miss, all in the same L1 set); perf put it at ~75% of
// backward_fast's own time at B=32 T=24 H=256. One addition per element either way: bitwise the same.
template <typename F>
void add_transposed(F* d, const F* s, index_t R, index_t C) {
  constexpr index_t RB = 16;
  std::vector<F> buf(static_cast<std::size_t>(C * RB));
  for (index_t r0 = 0; r0 < R; r0 += RB) {
    const index_t nr = std::min(RB, R - r0);
    for (index_t c = 0; c < C; ++c)
      for (index_t r = 0; r < nr; ++r) buf[c * RB + r] = s[c * R + r0 + r];
    for (index_t r = 0; r < nr; ++r)
      for (index_t c = 0; c < C; ++c) d[(r0 + r) * C + c] += buf[c * RB + r];
  }
}

template <typename F>
void backward_fast(F* dx, F* dh0, F* dc0, F* dw_ih, F* dw_hh, F* db_ih, F* db_hh, const F* dy, const F* dh,
                   const F* dc, const F* x, const F* w_ih, const F* w_hh, const F* h0, const F* c0, const F* y,
                   const F* gates, const F* cell, index_t B, index_t T, index_t I, index_t H) {
  constexpr int W = VT<F>::W;
  const index_t G = 4 * H, N = B * T, NU = kNVB * W, nbb = (H + NU - 1) / NU;
  // 1. pack w_hh (G,H) into slivers of NU units over the full K = G
  std::vector<F> Wb(static_cast<std::size_t>(nbb * G * NU), F(0));  // (nbb, G, NU)
  for (index_t jb = 0; jb < nbb; ++jb)
    for (index_t k = 0; k < G; ++k) {
      F* dst = Wb.data() + (jb * G + k) * NU;
      for (index_t u = 0; u < NU && jb * NU + u < H; ++u) dst[u] = w_hh[k * H + jb * NU + u];
    }
  F* dGp = static_cast<F*>(tls_dg.reserve(sizeof(F) * N * G));  // (B,T,G) pre-activation gate gradients
  const bool small_i = I < kSmallI;
  // dx with a large input: in the step kernel (dx_{t+1} from dG_{t+1} while those rows are in cache)
  const bool fuse_dx = dx && !small_i;
  const index_t nbx = fuse_dx ? (I + NU - 1) / NU : 0;
  std::vector<F> Wx(static_cast<std::size_t>(nbx * G * NU), F(0));  // (nbx, G, NU): w_ih's columns
  for (index_t jx = 0; jx < nbx; ++jx)
    for (index_t k = 0; k < G; ++k) {
      F* dst = Wx.data() + (jx * G + k) * NU;
      for (index_t u = 0; u < NU && jx * NU + u < I; ++u) dst[u] = w_ih[k * I + jx * NU + u];
    }
  // 2. the reverse recurrence; dc0 carries dL/dc across steps
  const StepKernels<F> ks = step_kernels<F>();
  const F* wb = Wb.data();
  const F* wxp = Wx.data();
  F* dxf = fuse_dx ? dx : nullptr;
  const double step_work = 2.0 * double(N) * double(G) * double(H + (fuse_dx ? I : 0));
  for_batch_chunks(B, step_work, [&](index_t b0, index_t b1) {
    for (index_t b = b0; b < b1; ++b)
      for (index_t j = 0; j < H; ++j) dc0[b * H + j] = dc ? dc[b * H + j] : F(0);
    ks.bwd(dGp, dc0, wb, dy, dh, gates, cell, c0, b0, b1, T, H, dxf, wxp, I);
  });
  // 3. dh0 (B,H) = dG[:,0] (B,G; row stride T*G) @ w_hh (G,H)
  gemm<F>(false, false, B, H, G, F(1), dGp, T * G, w_hh, H, F(0), dh0, H);
  // 4. dW_hh (G,H) += sum_{b,t} dG[b,t]^T h_{t-1}[b], computed transposed as tw (H,G) = sum h^T dG (the GEMM
  //    then packs the (B*T,H) states as its transposed operand instead of the 4x larger dG: packing a
  //    transposed operand is the slow part) and added at the end; first the t = 0 terms with h0 (B rows,
  //    stride T*G)
  //    At H <= kDwRowsMaxN (and for dW_ih at I <= kDwRowsMaxN): by unpacked row tiles instead, step 8.
  const index_t dw_max = env_index("ND_LSTM_DW_ROWS_MAXN", kDwRowsMaxN);
  const bool dwh_rows = H <= dw_max, dwi_rows = !small_i && I <= dw_max;
  // direct: the GEMMs write dW (G, H) / (G, I) themselves (dG^T [h0, y], dG^T x; nd::gemm packs dG as its
  // transposed A operand) and accumulate into it (beta = 1): no (H, G) product and no transposed add
  const bool dw_direct = env_index("ND_LSTM_DW_DIRECT", kDwDirect) != 0;
  std::vector<F> tw(static_cast<std::size_t>(dwh_rows || dw_direct ? 0 : H * G));  // (H,G)
  if (h0 && !dwh_rows) {
    if (dw_direct)
      gemm<F>(true, false, G, H, B, F(1), dGp, T * G, h0, H, F(1), dw_hh, H);
    else
      gemm<F>(true, false, H, G, B, F(1), h0, H, dGp, T * G, F(0), tw.data(), G);
  }
  // 5. biases (+ dW_ih when I is small: a GEMM would pad I to its 16-column tile). Without the small-I dW_ih and
  //    with the packed dW tiles of step 8, the bias sums are taken there from the packed copies instead (fold_b:
  //    same sums in the same order, so the same bits; ND_LSTM_DW_FOLD_BIAS=0: here)
  const index_t dw_sub = std::max<index_t>(1, env_index("ND_LSTM_DW_SUB_ROWS", kDwSubRows));
  const bool fold_b = !small_i && (dwh_rows || dwi_rows) && env_index("ND_LSTM_DW_PACK", 1) != 0 &&
                      kRowChunk % dw_sub == 0 && env_index("ND_LSTM_DW_FOLD_BIAS", 1) != 0;
  if (!fold_b) {
    F* dwi = small_i ? dw_ih : nullptr;
    // column ranges of whole vectors, one per thread (the per-column sums do not depend on the split)
    const index_t nvt = (G + W - 1) / W;
    const double work = 2.0 * double(N) * double(G) * double(I + 1);
    const int nt = threads_for(work, nvt);
    const index_t Is1 = small_i ? I + 1 : 1;
    for_blocks(nt, work, [&](index_t c) {
      index_t v0, v1;
      split_range(nvt, nt, static_cast<int>(c), v0, v1);
      if (v1 <= v0) return;
      std::vector<F> ws(static_cast<std::size_t>(2 * Is1 * (v1 - v0) * W));  // partial and total sums
      ks.colsum(db_ih, db_hh, dwi, dGp, x, N, G, I, v0 * W, std::min(G, v1 * W), ws.data());
    });
  }
  if (!small_i && !dwi_rows && dw_direct) {
    gemm<F>(true, false, G, I, N, F(1), dGp, G, x, I, F(1), dw_ih, I);
  } else if (!small_i && !dwi_rows) {  // dW_ih (G,I) += dG^T x, as (I,G) = x^T dG for the same reason
    std::vector<F> ti(static_cast<std::size_t>(I * G));
    gemm<F>(true, false, I, G, N, F(1), x, I, dGp, G, F(0), ti.data(), G);
    add_transposed(dw_ih, ti.data(), G, I);
  }
  // 6. dx (N,I) = dG (N,G) @ w_ih (G,I); when I is small, one pass of row dot products (a GEMM with N = I
  //    would pad I to its 16-column tile and pack all of dG for it)
  if (dx && small_i) {
    std::vector<F> wt(static_cast<std::size_t>(I * G));  // (I,G) = w_ih^T
    for (index_t g = 0; g < G; ++g)
      for (index_t q = 0; q < I; ++q) wt[q * G + g] = w_ih[g * I + q];
    const index_t nrb = (N + kRowChunk - 1) / kRowChunk;
    const F* wtp = wt.data();
    for_blocks(nrb, 2.0 * double(N) * double(G) * double(I), [&](index_t rb) {
      ks.rowdot(dx, dGp, wtp, rb * kRowChunk, std::min(N, (rb + 1) * kRowChunk), G, I);
    });
  } else if (fuse_dx) {  // the rows of step 0: dx[:,0] (B,I; row stride T*I) = dG[:,0] @ w_ih
    gemm<F>(false, false, B, I, G, F(1), dGp, T * G, w_ih, I, F(0), dx, T * I);
  } else if (dx) {
    gemm<F>(false, false, N, I, G, F(1), dGp, G, w_ih, I, F(0), dx, I);
  }
  // 8. (before 7, which zeroes rows of dG) dW_hh at H <= kDwRowsMaxN, dW_ih at kSmallI <= I <= kDwRowsMaxN:
  //    unpacked kDwMR x 2W register tiles (dw_rows_impl) over sub-chunks of kDwSubRows rows of dG (64 KiB at
  //    H = 64, in L2 while every tile reads it); the nd::gemm path packs all of dG for an N of 64 or less.
  //    Threads own ranges of tiles; each call's dW is summed in a buffer and added once.
  if (dwh_rows || dwi_rows) {
    const index_t ntile = (G + kDwMR - 1) / kDwMR;
    const index_t nth = dwh_rows ? ntile : 0, ntiles = nth + (dwi_rows ? ntile : 0);
    std::vector<F> dwh(static_cast<std::size_t>(dwh_rows ? G * H : 0), F(0));  // (G,H)
    std::vector<F> dwi(static_cast<std::size_t>(dwi_rows ? G * I : 0), F(0));  // (G,I)
    const DwRowsFn<F> dwk = dw_rows_kernel<F>();
    const double work = 2.0 * double(N) * double(G) * double((dwh_rows ? H : 0) + (dwi_rows ? I : 0));
    const int nt = threads_for(work, ntiles);
    F *dwhp = dwh.data(), *dwip = dwi.data();
    const index_t sub = dw_sub;
    // with both products, tiles alternate dW_hh / dW_ih over the same dG columns (read from L1 the second time)
    const bool alt = dwh_rows && dwi_rows && env_index("ND_LSTM_DW_ALT", 1) != 0;
    if (env_index("ND_LSTM_DW_PACK", 1) != 0) {
      // groups of kDwPackCols gate columns, one packed (sub, kDwPackCols) copy per group and sub-chunk, used by
      // both products; threads own ranges of groups
      constexpr index_t PC = kDwPackCols;
      const bool pf_next = env_index("ND_LSTM_DW_PACK_PF", 1) != 0;
      const index_t ngrp = (G + PC - 1) / PC;
      const int ntg = threads_for(work, ngrp);
      for_blocks(ntg, work, [&](index_t c) {
        index_t j0, j1;
        split_range(ngrp, ntg, static_cast<int>(c), j0, j1);
        if (j1 <= j0) return;
        std::vector<F> pk(static_cast<std::size_t>(std::min(sub, N) * PC));
        F* pkp = pk.data();
        // bias sums of the groups' columns (fold_b), as colsum_impl: per chunk of kRowChunk rows from zero in row
        // order (bpart), then added to the total in chunk order (btot)
        const std::size_t nbs = fold_b ? static_cast<std::size_t>((j1 - j0) * PC) : 0;
        std::vector<F> bpart(nbs), btot(nbs, F(0));
        for (index_t r0 = 0; r0 < N; r0 += sub) {
          const index_t r1 = std::min(N, r0 + sub);
          if (fold_b && r0 % kRowChunk == 0) std::fill(bpart.begin(), bpart.end(), F(0));
          for (index_t j = j0; j < j1; ++j) {
            const index_t g0 = j * PC, qw = std::min(PC, G - g0);
            F* bp = fold_b ? bpart.data() + (j - j0) * PC : nullptr;
            for (index_t n = r0; n < r1; ++n) {
              const F* src = dGp + n * G + g0;
              F* dst = pkp + (n - r0) * PC;
              if (bp) {
                for (index_t k = 0; k < qw; ++k) {
                  dst[k] = src[k];
                  bp[k] = bp[k] + src[k];
                }
              } else {
                for (index_t k = 0; k < qw; ++k) dst[k] = src[k];
              }
              if (pf_next) {  // the next group's columns of this row (or the next sub-chunk's first group)
                const F* nx = j + 1 < j1 ? src + PC : dGp + (n + (r1 - r0)) * G + j0 * PC;
                if (j + 1 < j1 || n + (r1 - r0) < N) {
                  __builtin_prefetch(nx, 0, 3);
                  __builtin_prefetch(nx + 64 / sizeof(F), 0, 3);
                  __builtin_prefetch(nx + PC - 1, 0, 3);
                }
              }
            }
            for (index_t q = 0; q < qw; q += kDwMR) {
              const int m = static_cast<int>(std::min<index_t>(kDwMR, qw - q));
              if (dwh_rows) dwk(dwhp, H, g0 + q, m, pkp + q, PC, y, r0, r1, T, h0);
              if (dwi_rows) dwk(dwip, I, g0 + q, m, pkp + q, PC, x, r0, r1, 0, nullptr);
            }
          }
          if (fold_b && (r1 % kRowChunk == 0 || r1 == N))
            for (std::size_t e = 0; e < nbs; ++e) btot[e] = btot[e] + bpart[e];
        }
        if (fold_b)
          for (index_t j = j0; j < j1; ++j)
            for (index_t k = 0; k < PC && j * PC + k < G; ++k) {
              const F b = btot[(j - j0) * PC + k];
              db_ih[j * PC + k] += b;
              db_hh[j * PC + k] += b;
            }
      });
    } else
    for_blocks(nt, work, [&](index_t c) {
      index_t j0, j1;
      split_range(ntiles, nt, static_cast<int>(c), j0, j1);
      for (index_t r0 = 0; r0 < N; r0 += sub) {
        const index_t r1 = std::min(N, r0 + sub);
        for (index_t j = j0; j < j1; ++j) {
          const bool hh = alt ? j % 2 == 0 : j < nth;
          const index_t q0 = (alt ? j / 2 : hh ? j : j - nth) * kDwMR;
          const int m = static_cast<int>(std::min<index_t>(kDwMR, G - q0));
          if (hh)
            dwk(dwhp, H, q0, m, dGp + r0 * G + q0, G, y, r0, r1, T, h0);
          else
            dwk(dwip, I, q0, m, dGp + r0 * G + q0, G, x, r0, r1, 0, nullptr);
        }
      }
    });
    for (std::size_t e = 0; e < dwh.size(); ++e) dw_hh[e] += dwh[e];
    for (std::size_t e = 0; e < dwi.size(); ++e) dw_ih[e] += dwi[e];
  }
  // 7. dW_hh, t >= 1 terms, as ONE GEMM without copying the previous states: with the rows of dG shifted
  //    by one, row (b,t) of dG meets row (b,t-1) of y for t >= 1, and (b,0) meets (b-1,T-1); those
  //    rows of dG are used up (steps 3-6), so they are zeroed and add exact zeros.
  if (T > 1 && !dwh_rows) {
    for (index_t b = 1; b < B; ++b) std::memset(dGp + b * T * G, 0, sizeof(F) * G);
    if (dw_direct)
      gemm<F>(true, false, G, H, N - 1, F(1), dGp + G, G, y, H, F(1), dw_hh, H);
    else
      gemm<F>(true, false, H, G, N - 1, F(1), y, H, dGp + G, G, h0 ? F(1) : F(0), tw.data(), G);
  }
  if (!dwh_rows && !dw_direct && (T > 1 || h0)) add_transposed(dw_hh, tw.data(), G, H);
}

}  // namespace

// =========================================================================================== public
template <typename F>
void lstm_forward(F* y, F* gates, F* cell, const F* x, const F* w_ih, const F* w_hh, const F* b_ih,
                  const F* b_hh, const F* h0, const F* c0, index_t B, index_t T, index_t I, index_t H, bool naive) {
  ND_CHECK(B >= 1 && T >= 1 && I >= 1 && H >= 1, "lstm_forward: sizes must be >= 1");
  if (naive)
    forward_naive(y, gates, cell, x, w_ih, w_hh, b_ih, b_hh, h0, c0, B, T, I, H);
  else
    forward_fast(y, gates, cell, x, w_ih, w_hh, b_ih, b_hh, h0, c0, B, T, I, H);
}

template <typename F>
void lstm_backward(F* dx, F* dh0, F* dc0, F* dw_ih, F* dw_hh, F* db_ih, F* db_hh, const F* dy, const F* dh,
                   const F* dc, const F* x, const F* w_ih, const F* w_hh, const F* h0, const F* c0, const F* y,
                   const F* gates, const F* cell, index_t B, index_t T, index_t I, index_t H, bool naive) {
  ND_CHECK(B >= 1 && T >= 1 && I >= 1 && H >= 1, "lstm_backward: sizes must be >= 1");
  if (naive)
    backward_naive(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dy, dh, dc, x, w_ih, w_hh, h0, c0, y, gates, cell, B,
                   T, I, H);
  else
    backward_fast(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dy, dh, dc, x, w_ih, w_hh, h0, c0, y, gates, cell, B,
                  T, I, H);
}

const char* lstm_isa() { return use_avx2() ? "avx2" : "generic"; }

#define ND_LSTM_INST(F)                                                                                       \
  template void lstm_forward<F>(F*, F*, F*, const F*, const F*, const F*, const F*, const F*, const F*,      \
                                const F*, index_t, index_t, index_t, index_t, bool);                         \
  template void lstm_backward<F>(F*, F*, F*, F*, F*, F*, F*, const F*, const F*, const F*, const F*, const F*, \
                                 const F*, const F*, const F*, const F*, const F*, const F*, index_t, index_t, \
                                 index_t, index_t, bool);
ND_LSTM_INST(float)
ND_LSTM_INST(double)
#undef ND_LSTM_INST

}  // namespace nd
