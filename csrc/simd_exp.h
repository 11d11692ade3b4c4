// exp on 8 floats at once for the elementwise kernels (attention's softmax, the feed-forward GELU).
// Internal to csrc/; portable GCC vector code (SSE2 pairs by default, one ymm register inside functions
// compiled with target("avx2,fma")).
#pragma once
#include <cstdint>

namespace nd {

typedef float F8 __attribute__((vector_size(32)));

// exp(r) * 2^n for the reduced argument r (|r| <= ln2 / 2) and the integer-valued n of a Cody-Waite reduction
// (n >= -126): degree-6 polynomial, then the power of two built in the exponent bits. Shared by exp8_nonpos and
// exp8_neg_half_sq.
inline __attribute__((always_inline)) F8 exp8_reduced(F8 r, F8 n) {
  typedef std::int32_t I8 __attribute__((vector_size(32)));
  F8 p = F8{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const I8 e = (__builtin_convertvector(n, I8) + 127) << 23;
  const F8 res = p * reinterpret_cast<F8>(e);
  return res;
}

// exp(x) for x <= ~0: Cody-Waite reduction by ln 2 and a degree-6 polynomial, selects instead of branches;
// x < -87 gives exactly 0 and the exponent is clamped at -126 (no denormals); relative error ~1e-7.
inline __attribute__((always_inline)) F8 exp8_nonpos(F8 x) {
  const F8 lo = F8{} - 126.0f, big = F8{} + 12582912.0f;
  F8 t = x * 1.44269504088896341f;
  t = t < lo ? lo : t;
  const F8 n = (t + big) - big;
  F8 r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  const F8 res = exp8_reduced(r, n);
  return x < -87.0f ? F8{} : res;
}

// exp8_nonpos on one float: the same operations in the same order, so a scalar tail gets the bits a vector
// lane would.
inline __attribute__((always_inline)) float exp1_nonpos(float x) {
  float t = x * 1.44269504088896341f;
  t = t < -126.0f ? -126.0f : t;
  const float n = (t + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const std::uint32_t bits = static_cast<std::uint32_t>(static_cast<std::int32_t>(n) + 127) << 23;
  float s;
  __builtin_memcpy(&s, &bits, sizeof s);
  return x < -87.0f ? 0.0f : p * s;
}

// 2^t for t <= 0 (the attention forward's scores, already scaled by log2 e): n = round(t) (the 1.5 * 2^23
// trick), f = t - n in [-1/2, 1/2] exactly, 2^f by a degree-6 polynomial fitted here for relative error
// (max 8e-8 evaluated in float), times 2^n built in the exponent bits; t < -126 gives exactly 0 (the one
// select also covers -inf, whose n is meaningless). No ln 2 reduction and no clamp: ~25% fewer operations
// than exp8_nonpos.
inline __attribute__((always_inline)) F8 exp2_8_nonpos(F8 t) {
  typedef std::int32_t I8 __attribute__((vector_size(32)));
  const F8 big = F8{} + 12582912.0f;
  const F8 n = (t + big) - big;
  const F8 f = t - n;
  F8 p = F8{} + 1.5353360614e-4f;
  p = p * f + 1.3398874867e-3f;
  p = p * f + 9.6184373665e-3f;
  p = p * f + 5.5503324697e-2f;
  p = p * f + 2.4022647913e-1f;
  p = p * f + 6.9314720286e-1f;
  p = p * f + 1.0f;
  const I8 e = (__builtin_convertvector(n, I8) + 127) << 23;
  const F8 res = p * reinterpret_cast<F8>(e);
  return t < -126.0f ? F8{} : res;
}

// exp(-u^2 / 2) for 0 <= u <= 13.5 (callers clamp; 0 once u^2 / 2 > 87), the Gaussian factor of the float GELU.
// u^2 / 2 is carried as hi + lo: u is split into uh (its top 12 significant bits, so uh^2 is exact) and
// ul = u - uh, hi = uh^2 / 2, lo = ul (u + uh) / 2; the Cody-Waite reduction subtracts n ln 2 from -hi
// (exact) and then lo, so the rounding of u^2 (relative 6e-8, i.e. up to 5e-6 absolute in the exponent at
// u = 13) never reaches the result; then exp8_nonpos's polynomial. Relative error ~1e-7 over the range.
inline __attribute__((always_inline)) F8 exp8_neg_half_sq(F8 u) {
  typedef std::int32_t I8 __attribute__((vector_size(32)));
  const F8 uh = reinterpret_cast<F8>(reinterpret_cast<I8>(u) & static_cast<std::int32_t>(0xFFFFF000u));
  const F8 ul = u - uh;
  const F8 hi = uh * uh * 0.5f;
  const F8 lo = ul * (u + uh) * 0.5f;
  const F8 x = F8{} - hi;
  const F8 lo126 = F8{} - 126.0f, big = F8{} + 12582912.0f;
  F8 t = (hi + lo) * -1.44269504088896341f;
  t = t < lo126 ? lo126 : t;
  const F8 n = (t + big) - big;
  F8 r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  r = r - lo;
  const F8 res = exp8_reduced(r, n);
  return hi + lo > 87.0f ? F8{} : res;
}

}  // namespace nd
