// Pointwise regression losses with optional non-negative weights (masks): MSE, MAE, Huber.
// (The quantile (pinball) loss, declared in train_kernels.h, is at the end of this file.)
// Dimensions: n elements (any shape flattened).
//   pred (n,)  target (n,)  weight (n,) or none  dpred (n,)
// loss  = sum_i w_i l(r_i) / sum_i w_i,  r = pred - target   (plain mean without weights)
// dpred = scale * w_i l'(r_i) / sum_i w_i
//   mse:   l = r^2                      l' = 2 r
//   mae:   l = |r|                      l' = sign(r), 0 at r == 0
//   huber: l = 0.5 r^2 if |r| < delta   l' = r
//          else delta (|r| - 0.5 delta) l' = delta sign(r)   (PyTorch's HuberLoss)
// Everything is computed in double. An element with weight 0 is excluded entirely (it contributes
// exactly 0 even if pred/target are NaN or inf there), so a weight can be a missing-value mask.
// sum(w) == 0 (or n == 0) gives loss 0 and a zero gradient. A negative or non-finite weight throws.
// Reductions: fixed-size chunks, 8 accumulator lanes per chunk, chunks combined in order: bitwise
// identical results for any thread count.
#include <cfloat>
#include <cmath>
#include <string>
#include <vector>

#include "kernels.h"
#include "train_kernels.h"

// The masked selects below (w == 0 ? 0 : w * l) are only if-converted, hence vectorised, when GCC
// may evaluate the FP operations of both arms: allow it. Results are unchanged (no reassociation, no
// contraction change); only FP exception flags, which nothing here reads, may differ.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

namespace nd {

namespace {

constexpr index_t kParReduce = index_t(1) << 16;
constexpr index_t kParElem = index_t(1) << 16;
constexpr int kLanes = 8;

// sign(r) with sign(0) = 0 and NaN kept; branch-free (selects) so the loops vectorise.
inline double sign0(double r) {
  double s = static_cast<double>(r > 0.0) - static_cast<double>(r < 0.0);
  return r != r ? r : s;
}

template <Loss K>
inline double lval(double r, double d) {
  if constexpr (K == Loss::MSE) {
    return r * r;
  } else if constexpr (K == Loss::MAE) {
    return std::fabs(r);
  } else {
    // c = min(|r|, d): c (|r| - c/2) is 0.5 r^2 inside (same rounding) and d (|r| - d/2) outside,
    // without a data-dependent branch. NaN propagates (min(NaN, d) is NaN here).
    double a = std::fabs(r);
    double c = d < a ? d : a;
    return c * (a - 0.5 * c);
  }
}

template <Loss K>
inline double lgrad(double r, double d) {
  if constexpr (K == Loss::MSE) {
    return 2.0 * r;
  } else if constexpr (K == Loss::MAE) {
    return sign0(r);
  } else {
    double lo = r < -d ? -d : r;  // clamp(r, -d, d); NaN stays NaN
    return d < lo ? d : lo;
  }
}

inline int bad_weight(double w) { return static_cast<int>(!((w >= 0.0) & (w <= DBL_MAX))); }

inline std::string fmt(double v) { return fmt_double(v); }

// acc[j] += buf[i + j] over 8 lanes (tail into lane 0): a fixed order, and a shape GCC vectorises.
inline void lane_add(double* acc, const double* buf, index_t m) {
  index_t i = 0;
  for (; i + kLanes <= m; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += buf[i + j];
  for (; i < m; ++i) acc[0] += buf[i];
}

// Tile of elementwise results kept in L1 between the (vectorised) map and the lane reduction.
constexpr index_t kTile = 256;

inline double combine(const double* a) {
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

// Error path only: throws naming the first negative / non-finite weight. Returns when there is none
// (a chunk's sum overflowed to inf with finite weights: not an input error).
template <typename T>
void throw_bad_weight(const T* weight, index_t n) {
  for (index_t i = 0; i < n; ++i) {
    double w = static_cast<double>(weight[i]);
    if (bad_weight(w))
      throw std::invalid_argument("weight must be finite and non-negative; weight.flat[" + std::to_string(i) +
                                  "] = " + fmt(w));
  }
}

// sum_i w_i (validating every weight).
template <typename T>
double weight_sum(const T* weight, index_t n) {
  index_t nchunks = (n + detail::kReduceChunk - 1) / detail::kReduceChunk;
  std::vector<double> part(static_cast<size_t>(nchunks));
  std::vector<char> bad(static_cast<size_t>(nchunks));
  detail::for_each_chunk(n, kParReduce, [&](index_t b, index_t e, index_t c) {
    // NaN / inf weights make the sum non-finite; negatives are counted. The error path locates them.
    double aw[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0}, an[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
    double tw[kTile], tn[kTile];
    for (index_t t = b; t < e; t += kTile) {
      const index_t m = std::min(kTile, e - t);
      for (index_t k = 0; k < m; ++k) {
        double w = static_cast<double>(weight[t + k]);
        tw[k] = w;
        tn[k] = w < 0.0 ? 1.0 : 0.0;
      }
      lane_add(aw, tw, m);
      lane_add(an, tn, m);
    }
    part[c] = combine(aw);
    bad[c] = static_cast<char>(combine(an) != 0.0 || !(std::fabs(part[c]) <= DBL_MAX));
  });
  double s = 0.0;
  for (index_t c = 0; c < nchunks; ++c) {
    if (bad[c]) throw_bad_weight(weight, n);
    s += part[c];
  }
  return s;
}

template <Loss K, typename T>
double loss_forward_k(const T* pred, const T* target, const T* weight, index_t n, double d) {
  if (n == 0) return 0.0;
  index_t nchunks = (n + detail::kReduceChunk - 1) / detail::kReduceChunk;
  std::vector<double> part_l(static_cast<size_t>(nchunks)), part_w(static_cast<size_t>(nchunks));
  std::vector<char> bad(static_cast<size_t>(nchunks));
  detail::for_each_chunk(n, kParReduce, [&](index_t b, index_t e, index_t c) {
    double al[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (!weight) {
      index_t i = b;
      for (; i + kLanes <= e; i += kLanes)
        for (int j = 0; j < kLanes; ++j)
          al[j] += lval<K>(static_cast<double>(pred[i + j]) - static_cast<double>(target[i + j]), d);
      for (; i < e; ++i) al[0] += lval<K>(static_cast<double>(pred[i]) - static_cast<double>(target[i]), d);
      part_l[c] = combine(al);
      part_w[c] = 0.0;
      bad[c] = 0;
      return;
    }
    // Weight validation rides along: a NaN / inf weight makes the sum non-finite, negatives are
    // counted; the error path then locates the first bad one (throw_bad_weight).
    double aw[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0}, an[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
    double tl[kTile], tw[kTile], tn[kTile];
    for (index_t t = b; t < e; t += kTile) {
      const index_t m = std::min(kTile, e - t);
      for (index_t k = 0; k < m; ++k) {
        double w = static_cast<double>(weight[t + k]);
        double l = lval<K>(static_cast<double>(pred[t + k]) - static_cast<double>(target[t + k]), d);
        double wl = w * l;
        tl[k] = w == 0.0 ? 0.0 : wl;  // excluded entirely, even where l is NaN / inf
        tw[k] = w;
        tn[k] = w < 0.0 ? 1.0 : 0.0;
      }
      lane_add(al, tl, m);
      lane_add(aw, tw, m);
      lane_add(an, tn, m);
    }
    part_l[c] = combine(al);
    part_w[c] = combine(aw);
    bad[c] = static_cast<char>(combine(an) != 0.0 || !(std::fabs(part_w[c]) <= DBL_MAX));
  });
  double sl = 0.0, sw = 0.0;
  for (index_t c = 0; c < nchunks; ++c) {
    if (bad[c]) throw_bad_weight(weight, n);
    sl += part_l[c];
    sw += part_w[c];
  }
  if (!weight) return sl / static_cast<double>(n);
  return sw == 0.0 ? 0.0 : sl / sw;
}

template <Loss K, typename T>
void loss_backward_k(T* dpred, const T* pred, const T* target, const T* weight, index_t n, double d,
                     double scale) {
  if (n == 0) return;
  double denom = weight ? weight_sum(weight, n) : static_cast<double>(n);
  if (denom == 0.0) {
    for (index_t i = 0; i < n; ++i) dpred[i] = T(0);
    return;
  }
  const double coef = scale / denom;  // unweighted: denom = n >= 1
  detail::parallel_ranges(n, kParElem, [&](index_t b, index_t e) {
    if (weight) {
      for (index_t i = b; i < e; ++i) {
        double w = static_cast<double>(weight[i]);
        double g = lgrad<K>(static_cast<double>(pred[i]) - static_cast<double>(target[i]), d);
        // w / denom <= 1: no overflow even when denom is subnormal (where scale / denom would be inf)
        double v = (w / denom) * (scale * g);
        dpred[i] = static_cast<T>(w == 0.0 ? 0.0 : v);
      }
    } else {
      for (index_t i = b; i < e; ++i)
        dpred[i] = static_cast<T>(coef * lgrad<K>(static_cast<double>(pred[i]) - static_cast<double>(target[i]), d));
    }
  });
}

}  // namespace

template <typename T>
double loss_forward(Loss kind, const T* pred, const T* target, const T* weight, index_t n, double delta) {
  ND_CHECK(n >= 0, "loss_forward: negative size");
  switch (kind) {
    case Loss::MSE: return loss_forward_k<Loss::MSE>(pred, target, weight, n, delta);
    case Loss::MAE: return loss_forward_k<Loss::MAE>(pred, target, weight, n, delta);
    case Loss::Huber:
      ND_CHECK(delta > 0.0 && delta <= DBL_MAX, "delta must be finite and > 0, got " + fmt(delta));
      return loss_forward_k<Loss::Huber>(pred, target, weight, n, delta);
  }
  return 0.0;
}

template <typename T>
void loss_backward(Loss kind, T* dpred, const T* pred, const T* target, const T* weight, index_t n, double delta,
                   double scale) {
  ND_CHECK(n >= 0, "loss_backward: negative size");
  switch (kind) {
    case Loss::MSE: loss_backward_k<Loss::MSE>(dpred, pred, target, weight, n, delta, scale); break;
    case Loss::MAE: loss_backward_k<Loss::MAE>(dpred, pred, target, weight, n, delta, scale); break;
    case Loss::Huber:
      ND_CHECK(delta > 0.0 && delta <= DBL_MAX, "delta must be finite and > 0, got " + fmt(delta));
      loss_backward_k<Loss::Huber>(dpred, pred, target, weight, n, delta, scale);
      break;
  }
}

template double loss_forward<float>(Loss, const float*, const float*, const float*, index_t, double);
template double loss_forward<double>(Loss, const double*, const double*, const double*, index_t, double);
template void loss_backward<float>(Loss, float*, const float*, const float*, const float*, index_t, double, double);
template void loss_backward<double>(Loss, double*, const double*, const double*, const double*, index_t, double,
                                    double);

// ------------------------------------------------------------------ quantile (pinball) loss
// Formulas, normalisation and the gradient at r == 0: see train_kernels.h. N target points, Q levels.
//   pred (N,Q)  target (N,)  weight (N,) or nullptr  tau (Q,)  qw (Q,)  dpred (N,Q)
namespace {

// rho_tau(r) = r (tau - [r < 0]); NaN propagates, +-inf gives +inf.
inline double pinball(double r, double tau) { return r * (tau - static_cast<double>(r < 0.0)); }

// d rho_tau(target - pred) / d pred = [r < 0] - tau for r != 0, 0 at r == 0, NaN kept.
inline double pinball_dpred(double r, double tau) {
  double pos = static_cast<double>(r > 0.0), neg = static_cast<double>(r < 0.0);
  double g = neg - tau * (pos + neg);
  return r != r ? r : g;
}

// Validates Q, tau and qw; returns sum_q qw_q.
double quantile_weight_sum(const double* tau, const double* qw, index_t Q) {
  ND_CHECK(Q >= 1, "quantile loss: need at least one quantile level, got " + std::to_string(Q));
  double s = 0.0;
  for (index_t q = 0; q < Q; ++q) {
    ND_CHECK(tau[q] > 0.0 && tau[q] < 1.0,
             "quantiles[" + std::to_string(q) + "] must be in (0, 1), got " + fmt(tau[q]));
    ND_CHECK(qw[q] > 0.0 && qw[q] <= DBL_MAX,
             "quantile_weights[" + std::to_string(q) + "] must be finite and > 0, got " + fmt(qw[q]));
    s += qw[q];
  }
  ND_CHECK(s <= DBL_MAX, "the sum of quantile_weights overflows");
  return s;
}

inline index_t par_threshold(index_t base, index_t Q) { return std::max<index_t>(base / Q, 1); }

}  // namespace

template <typename T>
double quantile_loss_forward(const T* pred, const T* target, const T* weight, const double* tau, const double* qw,
                             index_t N, index_t Q) {
  ND_CHECK(N >= 0, "quantile_loss_forward: negative size");
  const double sq = quantile_weight_sum(tau, qw, Q);
  if (N == 0) return 0.0;
  index_t nchunks = (N + detail::kReduceChunk - 1) / detail::kReduceChunk;
  std::vector<double> part_l(static_cast<size_t>(nchunks)), part_w(static_cast<size_t>(nchunks));
  std::vector<char> bad(static_cast<size_t>(nchunks));
  detail::for_each_chunk(N, par_threshold(kParReduce, Q), [&](index_t b, index_t e, index_t c) {
    double sl = 0.0, sw = 0.0, nneg = 0.0;
    for (index_t i = b; i < e; ++i) {
      const double y = static_cast<double>(target[i]);
      const T* p = pred + i * Q;
      double row = 0.0;
      for (index_t q = 0; q < Q; ++q) row += qw[q] * pinball(y - static_cast<double>(p[q]), tau[q]);
      if (weight) {
        const double w = static_cast<double>(weight[i]);
        sl += w == 0.0 ? 0.0 : w * row;  // excluded entirely, even where row is NaN / inf
        sw += w;
        nneg += w < 0.0 ? 1.0 : 0.0;
      } else {
        sl += row;
      }
    }
    part_l[c] = sl;
    part_w[c] = sw;
    bad[c] = static_cast<char>(weight && (nneg != 0.0 || !(std::fabs(sw) <= DBL_MAX)));
  });
  double sl = 0.0, sw = 0.0;
  for (index_t c = 0; c < nchunks; ++c) {
    if (bad[c]) throw_bad_weight(weight, N);
    sl += part_l[c];
    sw += part_w[c];
  }
  if (!weight) sw = static_cast<double>(N);
  return sw == 0.0 ? 0.0 : (sl / sw) / sq;
}

template <typename T>
void quantile_loss_backward(T* dpred, const T* pred, const T* target, const T* weight, const double* tau,
                            const double* qw, index_t N, index_t Q, double scale) {
  ND_CHECK(N >= 0, "quantile_loss_backward: negative size");
  const double sq = quantile_weight_sum(tau, qw, Q);
  if (N == 0) return;
  const double denom = weight ? weight_sum(weight, N) : static_cast<double>(N);
  if (denom == 0.0) {
    for (index_t i = 0; i < N * Q; ++i) dpred[i] = T(0);
    return;
  }
  // Per-quantile gradients for r > 0 and r < 0: (scale * qw_q / sum(qw)) * g (qw_q / sq <= 1: no overflow);
  // the same operations, in the same order, as pinball_dpred, precomputed once per quantile.
  std::vector<double> gv(static_cast<size_t>(2 * Q));
  for (index_t q = 0; q < Q; ++q) {
    const double f = (qw[q] / sq) * scale;
    gv[2 * q] = f * pinball_dpred(1.0, tau[q]);       // r > 0: -tau
    gv[2 * q + 1] = f * pinball_dpred(-1.0, tau[q]);  // r < 0: 1 - tau
  }
  const double* g = gv.data();
  detail::parallel_ranges(N, par_threshold(kParElem, Q), [&](index_t b, index_t e) {
    for (index_t i = b; i < e; ++i) {
      const double w = weight ? static_cast<double>(weight[i]) : 1.0;
      const double a = w / denom;  // <= 1
      const double y = static_cast<double>(target[i]);
      const T* p = pred + i * Q;
      T* d = dpred + i * Q;
      for (index_t q = 0; q < Q; ++q) {
        const double r = y - static_cast<double>(p[q]);
        // r == 0 -> 0; NaN -> NaN (r != r)
        const double gq = r > 0.0 ? g[2 * q] : (r < 0.0 ? g[2 * q + 1] : (r != r ? r : 0.0));
        const double v = a * gq;
        d[q] = static_cast<T>(w == 0.0 ? 0.0 : v);
      }
    }
  });
}

template double quantile_loss_forward<float>(const float*, const float*, const float*, const double*, const double*,
                                             index_t, index_t);
template double quantile_loss_forward<double>(const double*, const double*, const double*, const double*,
                                              const double*, index_t, index_t);
template void quantile_loss_backward<float>(float*, const float*, const float*, const float*, const double*,
                                            const double*, index_t, index_t, double);
template void quantile_loss_backward<double>(double*, const double*, const double*, const double*, const double*,
                                             const double*, index_t, index_t, double);

}  // namespace nd
