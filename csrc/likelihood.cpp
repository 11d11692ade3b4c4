// Likelihood kernels (see likelihood.h for the parameter maps and conventions).
#include "likelihood.h"

#include <cmath>
#include <limits>
#include <string>

namespace nd {
namespace {

constexpr double kLogSqrt2Pi = 0.91893853320467274178;  // 0.5 * log(2 pi)
constexpr double kLogPi = 1.14472988584940017414;

inline double softplus(double r) { return r > 0.0 ? r + std::log1p(std::exp(-r)) : std::log1p(std::exp(r)); }

// log(softplus(r)), accurate for very negative r (softplus(r) ~ e^r there)
inline double log_softplus(double r) {
  if (r < -30.0) return r - 0.5 * std::exp(r);
  return std::log(softplus(r));
}

inline double sigmoid(double r) {
  if (r >= 0.0) return 1.0 / (1.0 + std::exp(-r));
  double e = std::exp(r);
  return e / (1.0 + e);
}

// sigmoid(r) / softplus(r): d log(softplus(r)) / dr, -> 1 as r -> -inf
inline double dlog_softplus(double r) {
  if (r < -30.0) return 1.0 - 0.5 * std::exp(r);
  return sigmoid(r) / softplus(r);
}

std::string at(index_t i) { return " at index " + std::to_string(i); }

std::string fmt(double v) { return fmt_double(v, 17); }

template <typename T>
inline double get(const T* p, index_t i, double dflt) {
  return p ? static_cast<double>(p[i]) : dflt;
}

// Check a count target: finite, >= 0 and integral.
inline void check_count(double y, index_t i) {
  if (!(std::isfinite(y) && y >= 0.0 && y == std::floor(y)))
    throw std::invalid_argument("NegativeBinomial needs non-negative integer targets (counts), got " + fmt(y) + at(i));
}

// Total weight (N without weights); checks weights are finite and >= 0.
template <typename T>
double total_weight(const T* weight, index_t N) {
  if (!weight) return static_cast<double>(N);
  double W = 0.0;
  for (index_t i = 0; i < N; ++i) {
    double w = static_cast<double>(weight[i]);
    if (!(std::isfinite(w) && w >= 0.0))
      throw std::invalid_argument("weight must be finite and >= 0, got " + fmt(w) + at(i));
    W += w;
  }
  return W;
}

// ------------------------------------------------------------------------------ per-point NLL and gradient
struct Grad3 {
  double g0 = 0.0, g1 = 0.0, g2 = 0.0;
};

inline double gaussian_nll(const double* r, double y, double s) {
  double sp1 = softplus(r[1]);
  double mu = s * r[0], sigma = s * sp1;
  double z = (y - mu) / sigma;
  return std::log(s) + log_softplus(r[1]) + kLogSqrt2Pi + 0.5 * z * z;
}

inline Grad3 gaussian_grad(const double* r, double y, double s) {
  double sp1 = softplus(r[1]);
  double mu = s * r[0], sigma = s * sp1;
  double z = (y - mu) / sigma;
  Grad3 g;
  g.g0 = -z / sp1;
  g.g1 = (1.0 - z * z) * dlog_softplus(r[1]);
  return g;
}

inline double student_nll(const double* r, double y, double s) {
  double sp1 = softplus(r[1]);
  double mu = s * r[0], sigma = s * sp1;
  double nu = 2.0 + softplus(r[2]);
  double z = (y - mu) / sigma;
  double c = std::lgamma(0.5 * (nu + 1.0)) - std::lgamma(0.5 * nu) - 0.5 * (std::log(nu) + kLogPi);
  return -c + std::log(s) + log_softplus(r[1]) + 0.5 * (nu + 1.0) * std::log1p(z * z / nu);
}

inline Grad3 student_grad(const double* r, double y, double s) {
  double sp1 = softplus(r[1]);
  double mu = s * r[0], sigma = s * sp1;
  double nu = 2.0 + softplus(r[2]);
  double z = (y - mu) / sigma;
  double z2 = z * z;
  double q = (nu + 1.0) / (nu + z2);
  Grad3 g;
  g.g0 = -q * z / sp1;
  g.g1 = (1.0 - q * z2) * dlog_softplus(r[1]);
  double dnu = -0.5 * digamma(0.5 * (nu + 1.0)) + 0.5 * digamma(0.5 * nu) + 0.5 / nu + 0.5 * std::log1p(z2 / nu) -
               0.5 * q * z2 / nu;
  g.g2 = dnu * sigmoid(r[2]);
  return g;
}

inline double negbin_nll(const double* r, double y, double s) {
  double mu = s * softplus(r[0]);
  double alpha = softplus(r[1]) / std::sqrt(s);
  double k = 1.0 / alpha;
  double am = alpha * mu;
  double logp = std::lgamma(y + k) - std::lgamma(k) - std::lgamma(y + 1.0) - k * std::log1p(am);
  if (y > 0.0) logp += y * (std::log(am) - std::log1p(am));
  return -logp;
}

inline Grad3 negbin_grad(const double* r, double y, double s) {
  double sp0 = softplus(r[0]);
  double mu = s * sp0;
  double rs = std::sqrt(s);
  double alpha = softplus(r[1]) / rs;
  double k = 1.0 / alpha;
  double am = alpha * mu;
  Grad3 g;
  // dnll/dmu = -(y - mu) / (mu (1 + alpha mu)); dmu/dr0 = s sigmoid(r0) = mu sigmoid(r0) / sp0
  g.g0 = -(y - mu) / (1.0 + am) * dlog_softplus(r[0]);
  // dlogp/dk = psi(y+k) - psi(k) - log1p(mu/k) + (mu - y)/(k + mu); dnll/dalpha = k^2 dlogp/dk
  double dk = (y > 0.0 ? digamma(y + k) - digamma(k) : 0.0) - std::log1p(am) + (mu - y) / (k + mu);
  double dalpha = k * k * dk;
  g.g1 = dalpha * sigmoid(r[1]) / rs;
  return g;
}

template <typename T>
void fetch(const T* raw, index_t i, int P, double* r) {
  for (int p = 0; p < P; ++p) r[p] = static_cast<double>(raw[i * P + p]);
}

// ------------------------------------------------------------------------------ random numbers
// splitmix64: a tiny, well-mixed generator; each point gets its own stream seeded from (seed, index).
struct Stream {
  std::uint64_t state;
  Stream(std::uint64_t seed, index_t i) {
    state = seed ^ (0x9E3779B97F4A7C15ull * (static_cast<std::uint64_t>(i) + 1));
    next();
    state ^= seed * 0xD1B54A32D192ED03ull;
  }
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // uniform in the open interval (0, 1)
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
  double normal() {  // Box-Muller (one of the pair)
    double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.28318530717958647692 * u2);
  }
  // Gamma(shape a, scale 1): Marsaglia & Tsang (2000); a < 1 through Gamma(a + 1) * U^(1/a)
  double gamma(double a) {
    if (a < 1.0) {
      double u = uniform();
      return gamma(a + 1.0) * std::exp(std::log(u) / a);
    }
    double d = a - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
    for (;;) {
      double x, v;
      do {
        x = normal();
        v = 1.0 + c * x;
      } while (v <= 0.0);
      v = v * v * v;
      double u = uniform();
      if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
      if (std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
    }
  }
  // Poisson(lam): multiplication method below 30, Hormann's transformed rejection (PTRS, 1993) above
  double poisson(double lam) {
    if (lam <= 0.0) return 0.0;
    if (lam < 30.0) {
      double L = std::exp(-lam), p = 1.0;
      double k = 0.0;
      for (;;) {
        p *= uniform();
        if (p <= L) return k;
        k += 1.0;
      }
    }
    double slam = std::sqrt(lam), loglam = std::log(lam);
    double b = 0.931 + 2.53 * slam;
    double a = -0.059 + 0.02483 * b;
    double inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
    double vr = 0.9277 - 3.6224 / (b - 2.0);
    for (;;) {
      double U = uniform() - 0.5, V = uniform();
      double us = 0.5 - std::fabs(U);
      double k = std::floor((2.0 * a / us + b) * U + lam + 0.43);
      if (us >= 0.07 && V <= vr) return k;
      if (k < 0.0 || (us < 0.013 && V > us)) continue;
      if (std::log(V) + std::log(inv_alpha) - std::log(a / (us * us) + b) <= -lam + k * loglam - std::lgamma(k + 1.0))
        return k;
    }
  }
};

}  // namespace

double digamma(double x) {
  // x > 0 here (all callers); recurrence up to x >= 10, then the asymptotic series (error < 1e-14)
  double acc = 0.0;
  while (x < 10.0) {
    acc -= 1.0 / x;
    x += 1.0;
  }
  double f = 1.0 / (x * x);
  double t = f * (-1.0 / 12 + f * (1.0 / 120 + f * (-1.0 / 252 + f * (1.0 / 240 + f * (-1.0 / 132)))));
  return acc + std::log(x) - 0.5 / x + t;
}

int likelihood_n_params(LikelihoodKind kind) { return kind == LikelihoodKind::StudentT ? 3 : 2; }

template <typename T>
double likelihood_nll_forward(LikelihoodKind kind, T* nll, const T* raw, const T* y, const T* scale,
                              const T* weight, index_t N) {
  const int P = likelihood_n_params(kind);
  double W = total_weight(weight, N);
  double total = 0.0;
  double r[3];
  for (index_t i = 0; i < N; ++i) {
    double w = get(weight, i, 1.0);
    if (w == 0.0) {
      if (nll) nll[i] = T(0);
      continue;
    }
    double s = get(scale, i, 1.0);
    double yi = static_cast<double>(y[i]);
    if (!(s > 0.0 && std::isfinite(s))) throw std::invalid_argument("scale must be finite and > 0, got " + fmt(s) + at(i));
    fetch(raw, i, P, r);
    double v;
    switch (kind) {
      case LikelihoodKind::Gaussian: v = gaussian_nll(r, yi, s); break;
      case LikelihoodKind::StudentT: v = student_nll(r, yi, s); break;
      default:
        check_count(yi, i);
        v = negbin_nll(r, yi, s);
    }
    if (nll) nll[i] = static_cast<T>(v);
    total += w * v;
  }
  return W > 0.0 ? total / W : 0.0;
}

template <typename T>
void likelihood_nll_backward(LikelihoodKind kind, T* draw, const T* raw, const T* y, const T* scale,
                             const T* weight, index_t N, double grad_scale) {
  const int P = likelihood_n_params(kind);
  double W = total_weight(weight, N);
  double norm = W > 0.0 ? grad_scale / W : 0.0;
  double r[3];
  for (index_t i = 0; i < N; ++i) {
    double w = get(weight, i, 1.0);
    T* d = draw + i * P;
    if (w == 0.0 || norm == 0.0) {
      for (int p = 0; p < P; ++p) d[p] = T(0);
      continue;
    }
    double s = get(scale, i, 1.0);
    double yi = static_cast<double>(y[i]);
    if (!(s > 0.0 && std::isfinite(s))) throw std::invalid_argument("scale must be finite and > 0, got " + fmt(s) + at(i));
    fetch(raw, i, P, r);
    Grad3 g;
    switch (kind) {
      case LikelihoodKind::Gaussian: g = gaussian_grad(r, yi, s); break;
      case LikelihoodKind::StudentT: g = student_grad(r, yi, s); break;
      default:
        check_count(yi, i);
        g = negbin_grad(r, yi, s);
    }
    double f = w * norm;
    d[0] = static_cast<T>(f * g.g0);
    d[1] = static_cast<T>(f * g.g1);
    if (P == 3) d[2] = static_cast<T>(f * g.g2);
  }
}

template <typename T>
void likelihood_params(LikelihoodKind kind, T* params, const T* raw, const T* scale, index_t N) {
  const int P = likelihood_n_params(kind);
  double r[3];
  for (index_t i = 0; i < N; ++i) {
    double s = get(scale, i, 1.0);
    if (!(s > 0.0 && std::isfinite(s))) throw std::invalid_argument("scale must be finite and > 0, got " + fmt(s) + at(i));
    fetch(raw, i, P, r);
    T* o = params + i * P;
    switch (kind) {
      case LikelihoodKind::Gaussian:
        o[0] = static_cast<T>(s * r[0]);
        o[1] = static_cast<T>(s * softplus(r[1]));
        break;
      case LikelihoodKind::StudentT:
        o[0] = static_cast<T>(s * r[0]);
        o[1] = static_cast<T>(s * softplus(r[1]));
        o[2] = static_cast<T>(2.0 + softplus(r[2]));
        break;
      default:
        o[0] = static_cast<T>(s * softplus(r[0]));
        o[1] = static_cast<T>(softplus(r[1]) / std::sqrt(s));
    }
  }
}

template <typename T>
void likelihood_sample(LikelihoodKind kind, T* out, const T* params, index_t N, std::uint64_t seed) {
  const int P = likelihood_n_params(kind);
  for (index_t i = 0; i < N; ++i) {
    const T* p = params + i * P;
    double a = static_cast<double>(p[0]), b = static_cast<double>(p[1]);
    Stream rs(seed, i);
    double v;
    switch (kind) {
      case LikelihoodKind::Gaussian:
        if (!std::isfinite(a) || !(b > 0.0 && std::isfinite(b)))
          throw std::invalid_argument("Gaussian parameters need a finite mu and a finite sigma > 0, got mu = " + fmt(a) +
                                      ", sigma = " + fmt(b) + at(i));
        v = a + b * rs.normal();
        break;
      case LikelihoodKind::StudentT: {
        double nu = static_cast<double>(p[2]);
        if (!std::isfinite(a) || !(b > 0.0 && std::isfinite(b)) || !(nu > 0.0 && std::isfinite(nu)))
          throw std::invalid_argument("StudentT parameters need a finite mu, sigma > 0 and nu > 0, got mu = " + fmt(a) +
                                      ", sigma = " + fmt(b) + ", nu = " + fmt(nu) + at(i));
        double z = rs.normal();
        double chi2 = 2.0 * rs.gamma(0.5 * nu);
        v = a + b * z * std::sqrt(nu / chi2);
        break;
      }
      default: {
        if (!(a >= 0.0 && std::isfinite(a)) || !(b > 0.0 && std::isfinite(b)))
          throw std::invalid_argument("NegativeBinomial parameters need a finite mu >= 0 and alpha > 0, got mu = " +
                                      fmt(a) + ", alpha = " + fmt(b) + at(i));
        // Poisson-Gamma mixture: lambda ~ Gamma(shape 1/alpha, scale alpha mu), y ~ Poisson(lambda)
        double k = 1.0 / b;
        double lam = a == 0.0 ? 0.0 : rs.gamma(k) * (b * a);
        v = rs.poisson(lam);
      }
    }
    out[i] = static_cast<T>(v);
  }
}

#define ND_LIKELIHOOD_INSTANTIATE(T)                                                                          \
  template double likelihood_nll_forward<T>(LikelihoodKind, T*, const T*, const T*, const T*, const T*, index_t); \
  template void likelihood_nll_backward<T>(LikelihoodKind, T*, const T*, const T*, const T*, const T*, index_t,   \
                                           double);                                                           \
  template void likelihood_params<T>(LikelihoodKind, T*, const T*, const T*, index_t);                        \
  template void likelihood_sample<T>(LikelihoodKind, T*, const T*, index_t, std::uint64_t);

ND_LIKELIHOOD_INSTANTIATE(float)
ND_LIKELIHOOD_INSTANTIATE(double)

}  // namespace nd
