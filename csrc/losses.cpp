// Pointwise regression losses with optional non-negative weights (masks): MSE, MAE, Huber.
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
#include <sstream>
#include <string>
#include <vector>

#include "kernels.h"

namespace nd {

namespace {

constexpr index_t kParReduce = index_t(1) << 16;
constexpr index_t kParElem = index_t(1) << 16;
constexpr int kLanes = 8;

inline double sign0(double r) { return r > 0.0 ? 1.0 : (r < 0.0 ? -1.0 : r * 0.0); }  // NaN stays NaN

template <Loss K>
inline double lval(double r, double d) {
  if constexpr (K == Loss::MSE) {
    return r * r;
  } else if constexpr (K == Loss::MAE) {
    return std::fabs(r);
  } else {
    double a = std::fabs(r);
    return a < d ? 0.5 * r * r : d * (a - 0.5 * d);
  }
}

template <Loss K>
inline double lgrad(double r, double d) {
  if constexpr (K == Loss::MSE) {
    return 2.0 * r;
  } else if constexpr (K == Loss::MAE) {
    return sign0(r);
  } else {
    return std::fabs(r) < d ? r : d * sign0(r);
  }
}

inline bool bad_weight(double w) { return !(w >= 0.0 && w <= DBL_MAX); }

inline std::string fmt(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

inline double combine(const double* a) {
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

// Throws naming the first bad weight (error path only).
template <typename T>
[[noreturn]] void throw_bad_weight(const T* weight, index_t n) {
  for (index_t i = 0; i < n; ++i) {
    double w = static_cast<double>(weight[i]);
    if (bad_weight(w))
      throw std::invalid_argument("weight must be finite and non-negative; weight.flat[" + std::to_string(i) +
                                  "] = " + fmt(w));
  }
  throw std::invalid_argument("weight must be finite and non-negative");
}

// sum_i w_i (validating every weight).
template <typename T>
double weight_sum(const T* weight, index_t n) {
  index_t nchunks = (n + detail::kReduceChunk - 1) / detail::kReduceChunk;
  std::vector<double> part(static_cast<size_t>(nchunks));
  std::vector<char> bad(static_cast<size_t>(nchunks));
  detail::for_each_chunk(n, kParReduce, [&](index_t b, index_t e, index_t c) {
    double a[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
    int nb = 0;
    index_t i = b;
    for (; i + kLanes <= e; i += kLanes)
      for (int j = 0; j < kLanes; ++j) {
        double w = static_cast<double>(weight[i + j]);
        nb |= bad_weight(w);
        a[j] += w;
      }
    for (; i < e; ++i) {
      double w = static_cast<double>(weight[i]);
      nb |= bad_weight(w);
      a[0] += w;
    }
    part[c] = combine(a);
    bad[c] = static_cast<char>(nb);
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
    double aw[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
    int nb = 0;
    auto one = [&](index_t i, int j) {
      double w = static_cast<double>(weight[i]);
      nb |= bad_weight(w);
      double l = lval<K>(static_cast<double>(pred[i]) - static_cast<double>(target[i]), d);
      al[j] += w == 0.0 ? 0.0 : w * l;
      aw[j] += w;
    };
    index_t i = b;
    for (; i + kLanes <= e; i += kLanes)
      for (int j = 0; j < kLanes; ++j) one(i + j, j);
    for (; i < e; ++i) one(i, 0);
    part_l[c] = combine(al);
    part_w[c] = combine(aw);
    bad[c] = static_cast<char>(nb);
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
        dpred[i] = static_cast<T>(w == 0.0 ? 0.0 : (w / denom) * (scale * g));
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

}  // namespace nd
