// The float GELU's vector core (Phi, GELU, GELU' on 8 floats), shared by the elementwise kernels (norm.cpp) and
// the linear kernels' epilogues (linear.cpp), so that both compute the same bits from the same source.
// Portable GCC vector code: SSE2 pairs by default, one ymm register inside functions compiled with
// target("avx2,fma") (every caller that wants the AVX2 bits must be compiled that way).
#pragma once
#include <cstdint>

#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
#include "simd_exp.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define ND_GELU_X86 1
#include <immintrin.h>
#else
#define ND_GELU_X86 0
#endif

namespace nd {
namespace gelu_simd {

#define ND_GELU_AI inline __attribute__((always_inline))

typedef float V8 __attribute__((vector_size(32)));
typedef float U8 __attribute__((vector_size(32), aligned(4), may_alias));
typedef std::int32_t I8 __attribute__((vector_size(32)));

ND_GELU_AI V8 splat(float a) { return V8{} + a; }

// The tail form (any u; used for |x| >= 3). With u = |x|: Phi(-u) = e * H(u), H(u) = 0.5 erfc(u / sqrt 2)
// exp(u^2 / 2) (smooth, 0.5 at 0, ~1 / (u sqrt(2 pi)) for large u), and Phi(u) = 1 - Phi(-u). H is a degree-7
// polynomial in u - c_k on 8 intervals of u with edges 0, 0.5, 1, 2, 3, 5, 7, 11, 15 (index k from the exponent
// and first mantissa bit of u + 1, so no compare chain), its coefficients picked per lane by a permute; fitted
// here (relative minimax, Lawson iterations against mpmath): max relative error of H 1.7e-7 evaluated in float,
// e to ~1e-7 (exp8_neg_half_sq keeps x^2 exact), so Phi(-u) (the negative tail, down to ~1e-38) keeps its
// relative accuracy. u is clamped to 13.5 (e is 0 beyond). No division, no erfc chain: the form before it
// (t = 1 / (1 + a/2), a degree-9 Horner chain and a second exp for GELU') was latency-bound at 1.9 / 3.1 ns per
// value (bench/RESULTS.md).
const V8 kHCen = {0.25f, 0.75f, 1.5f, 2.5f, 4.0f, 6.0f, 9.0f, 12.25f};
const V8 kH[8] = {
    {4.140321016e-01f, 3.002324700e-01f, 2.057806700e-01f, 1.413313299e-01f, 9.441064298e-02f, 6.477931142e-02f,
     4.379878566e-02f, 3.235389665e-02f},
    {-2.954342663e-01f, -1.737679392e-01f, -9.027127922e-02f, -4.561395198e-02f, -2.129971609e-02f,
     -1.026639435e-02f, -4.753180314e-03f, -2.607052447e-03f},
    {1.700868160e-01f, 8.495326340e-02f, 3.518697992e-02f, 1.364823896e-02f, 4.605952185e-03f, 1.590477536e-03f,
     5.100927083e-04f, 2.087524044e-04f},
    {-8.430416882e-02f, -3.668432683e-02f, -1.249698177e-02f, -3.831129521e-03f, -9.587231907e-04f,
     -2.411842579e-04f, -5.414873885e-05f, -1.661197894e-05f},
    {3.724955022e-02f, 1.435918454e-02f, 4.108192865e-03f, 1.017341390e-03f, 1.924462849e-04f, 3.582381396e-05f,
     5.674403837e-06f, 1.313764528e-06f},
    {-1.499811560e-02f, -5.182799883e-03f, -1.266031060e-03f, -2.573886595e-04f, -3.749742609e-05f,
     -5.223379958e-06f, -5.901351301e-07f, -1.032924004e-07f},
    {5.664020777e-03f, 1.766383997e-03f, 3.822215658e-04f, 6.399278936e-05f, 7.586925221e-06f, 7.780006399e-07f,
     6.618274284e-08f, 8.227827308e-09f},
    {-1.959987916e-03f, -5.578432465e-04f, -1.047702972e-04f, -1.482529115e-05f, -1.385037990e-06f,
     -1.091587905e-07f, -6.725322077e-09f, -6.391119856e-10f}};

ND_GELU_AI V8 pick(V8 tab, I8 k) { return __builtin_shuffle(tab, k); }  // tab[k & 7] per lane (vpermps)

// sum_i tab[i] s^i by Horner (tab[0] the constant term), each lane's coefficients picked by its interval k.
template <int N>
ND_GELU_AI V8 horner_pick(const V8 (&tab)[N], I8 k, V8 s) {
  V8 h = pick(tab[N - 1], k);
#pragma GCC unroll 8
  for (int i = N - 2; i >= 0; --i) h = h * s + pick(tab[i], k);
  return h;
}

// Phi(-u) for u = |x| >= 3 (and the general form, valid for any u): see the comment above kH.
ND_GELU_AI V8 normal_cdf_neg_tail(V8 ua, V8& e) {
  const V8 u = ua > splat(13.5f) ? splat(13.5f) : ua;  // NaN stays NaN
  e = exp8_neg_half_sq(u);
  const I8 k = (reinterpret_cast<I8>(u + splat(1.0f)) >> 22) - 254;  // 0..7
  const V8 s = u - pick(kHCen, k);
  return e * horner_pick(kH, k, s);  // Phi(-u)
}

// The core, |x| < 3: Phi(-u) and exp(-u^2 / 2) directly as degree-6 polynomials in u - c_k on 8 intervals of
// width 3/8 (k = floor(8 u / 3), clamped to 7; centres c_k = 3/16 + 3k/8), no exp: fitted here (relative
// minimax, Lawson-weighted least squares against scipy's erfc / exp in float64, on each interval widened by
// 0.003): max relative error evaluated in float (FMA Horner) 1.19e-7 for Phi(-u), 1.02e-7 for exp(-u^2/2).
// Standard-normal-like inputs (the feed-forward block's pre-activations) have every lane of a vector here
// almost always; ~25 vector operations instead of ~60.
const V8 kCoreCen = {0.1875f, 0.5625f, 0.9375f, 1.3125f, 1.6875f, 2.0625f, 2.4375f, 2.8125f};
const V8 kCP[7] = {
    {4.256343246e-01f, 2.868877053e-01f, 1.742507070e-01f, 9.467574209e-02f, 4.575362429e-02f, 1.958007924e-02f,
     7.394607179e-03f, 2.457901137e-03f},
    {-3.919909000e-01f, -3.405675888e-01f, -2.570739090e-01f, -1.685931832e-01f, -9.606150538e-02f,
     -4.755388945e-02f, -2.045267262e-02f, -7.642604876e-03f},
    {3.674916178e-02f, 9.578463435e-02f, 1.205033809e-01f, 1.106392592e-01f, 8.105188608e-02f, 4.903995618e-02f,
     2.492670529e-02f, 1.074741967e-02f},
    {6.303384155e-02f, 3.880147263e-02f, 5.189124960e-03f, -2.030494809e-02f, -2.958112396e-02f,
     -2.578950115e-02f, -1.684446074e-02f, -8.802103810e-03f},
    {-9.080638178e-03f, -2.142002247e-02f, -2.129855007e-02f, -1.177590340e-02f, -1.028809464e-03f,
     5.123688839e-03f, 6.109258160e-03f, 4.397259094e-03f},
    {-9.049990214e-03f, -3.400854534e-03f, 3.171795513e-03f, 6.088732276e-03f, 4.766925238e-03f,
     1.765123801e-03f, -4.349915835e-04f, -1.143694855e-03f},
    {1.508555841e-03f, 3.150607692e-03f, 2.305314178e-03f, 2.112583461e-04f, -1.203635125e-03f,
     -1.271283021e-03f, -6.186901592e-04f, -4.105195330e-05f}};
const V8 kCE[7] = {
    {9.825754762e-01f, 8.536763787e-01f, 6.443887353e-01f, 4.226004481e-01f, 2.407904714e-01f, 1.191999316e-01f,
     5.126725137e-02f, 1.915717125e-02f},
    {-1.842328757e-01f, -4.801929295e-01f, -6.041144133e-01f, -5.546631217e-01f, -4.063339531e-01f,
     -2.458498627e-01f, -1.249639243e-01f, -5.387954041e-02f},
    {-4.740158319e-01f, -2.917838693e-01f, -3.901571780e-02f, 1.526973695e-01f, 2.224489301e-01f,
     1.939326674e-01f, 1.266661733e-01f, 6.618956476e-02f},
    {9.103286266e-02f, 2.147657424e-01f, 2.135600001e-01f, 1.180848703e-01f, 1.032132842e-02f,
     -5.137664825e-02f, -6.126193702e-02f, -4.409392178e-02f},
    {1.142296866e-01f, 4.273987934e-02f, -4.029912502e-02f, -7.691467553e-02f, -5.995893478e-02f,
     -2.198902145e-02f, 5.662946030e-03f, 1.445267722e-02f},
    {-2.226117440e-02f, -4.731866717e-02f, -3.494193777e-02f, -3.553403774e-03f, 1.793761179e-02f,
     1.922830753e-02f, 9.509735741e-03f, 7.493396988e-04f},
    {-1.810919680e-02f, -2.588118194e-03f, 1.211078372e-02f, 1.341021620e-02f, 4.782897420e-03f,
     -2.985466039e-03f, -4.744977225e-03f, -2.681635320e-03f}};

// Whether any lane of the mask is set (one vmovmskps), for callers compiled with target("avx2"). The portable
// build (kAvx2 false below) takes "yes": it always evaluates the tail form and blends, the same values per lane.
#if ND_GELU_X86
inline __attribute__((target("avx2"))) bool any_lane_avx2(I8 m) {
  return _mm256_movemask_ps(reinterpret_cast<__m256>(m)) != 0;
}
#endif
template <bool kAvx2>
ND_GELU_AI bool any_lane(I8 m) {
#if ND_GELU_X86
  if constexpr (kAvx2) return any_lane_avx2(m);
#endif
  return true;
}

// Phi(x) = 0.5 erfc(-x / sqrt 2) on 8 floats, and e = exp(-x^2 / 2) (shared with GELU' = Phi + x e / sqrt(2 pi)).
// Per lane: the core polynomials for |x| < 3, the tail form (exp8_neg_half_sq times H) otherwise; the tail form
// is only evaluated when some lane needs it, and each lane's value depends on that lane alone (a blend), so
// every grouping of the same values into vectors gives the same bits. Phi(u) = 1 - Phi(-u).
template <bool kAvx2>
ND_GELU_AI V8 normal_cdf_v(V8 x, V8& e) {
  const V8 ua = reinterpret_cast<V8>(reinterpret_cast<I8>(x) & 0x7FFFFFFF);
  const V8 uc = ua < splat(2.9999998f) ? ua : splat(2.9999998f);  // (minps; NaN -> 2.9999998) tail lanes: see below
  const I8 k = __builtin_convertvector(uc * splat(2.6666667f), I8);  // 0..7 (7.9999995 at most)
  const V8 s = uc - pick(kCoreCen, k);
  V8 q = horner_pick(kCP, k, s);  // two independent chains: the scheduler interleaves them
  e = horner_pick(kCE, k, s);
  const I8 tail = ~(ua < splat(3.0f));  // also NaN
  if (any_lane<kAvx2>(tail)) {
    V8 et;
    const V8 qt = normal_cdf_neg_tail(ua, et);
    q = tail ? qt : q;
    e = tail ? et : e;
  }
  return x > V8{} ? splat(1.0f) - q : q;  // q = Phi(-|x|)
}

// GELU(x) = x Phi(x) (exactly 0 where Phi rounds to 0: -inf * 0), and GELU'(x) = Phi(x) + x phi(x), from one
// evaluation of Phi (the forward's y and the backward's factor: dy * d is bitwise gelu_bwd's dx).
template <bool kAvx2>
ND_GELU_AI V8 gelu8(V8 xv) {
  V8 e;
  const V8 c = normal_cdf_v<kAvx2>(xv, e);
  return c == V8{} ? V8{} : xv * c;
}
template <bool kAvx2>
ND_GELU_AI V8 gelu_grad8(V8 xv, V8& y) {
  V8 e;
  const V8 c = normal_cdf_v<kAvx2>(xv, e);
  const V8 pdf = e * splat(0.39894228040143267794f);
  y = c == V8{} ? V8{} : xv * c;
  return c + (pdf == V8{} ? V8{} : xv * pdf);
}

#undef ND_GELU_AI
}  // namespace gelu_simd
}  // namespace nd
