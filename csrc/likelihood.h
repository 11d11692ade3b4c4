// Likelihoods of probabilistic forecasters (DeepAR): negative log-likelihood forward / backward with
// respect to the network's raw (unconstrained) outputs, the map raw -> distribution parameters, and
// samplers. Templated on the storage type (float / double); all arithmetic is in double.
//
// Dimension letters: N points (batch x steps, flattened), P parameters per point (2 or 3).
//
// raw (N,P) -> parameters, with s the per-point scale (1 when none is given), softplus(r) = log(1 + e^r):
//   Gaussian           mu = s r0,             sigma = s softplus(r1)                      params (mu, sigma)
//   StudentT           mu = s r0,             sigma = s softplus(r1),  nu = 2 + softplus(r2)   (mu, sigma, nu)
//   NegativeBinomial   mu = s softplus(r0),   alpha = softplus(r1) / sqrt(s)              params (mu, alpha)
// (the NegativeBinomial scaling is the DeepAR paper's: the mean scales with s, the shape with 1/sqrt(s)).
//
// The loss is the weighted mean  sum_i w_i nll_i / sum_i w_i  (plain mean without weights); a point with
// weight 0 is left out entirely; all-zero weights give 0 and a zero gradient. NegativeBinomial targets
// must be non-negative integers (checked on every point with a non-zero weight).
#pragma once
#include <cstdint>

#include "common.h"

namespace nd {

enum class LikelihoodKind : int { Gaussian = 0, StudentT = 1, NegativeBinomial = 2 };

int likelihood_n_params(LikelihoodKind kind);

// nll (N,) optional per-point NLL output (nullptr: not written); raw (N,P); y (N,); scale (N,) or nullptr;
// weight (N,) or nullptr. Returns the weighted mean. Throws std::invalid_argument on a bad target.
template <typename T>
double likelihood_nll_forward(LikelihoodKind kind, T* nll, const T* raw, const T* y, const T* scale,
                              const T* weight, index_t N);

// draw (N,P) = grad_scale * d(weighted mean NLL) / d(raw)  (overwritten; 0 where the weight is 0).
template <typename T>
void likelihood_nll_backward(LikelihoodKind kind, T* draw, const T* raw, const T* y, const T* scale,
                             const T* weight, index_t N, double grad_scale);

// params (N,P) distribution parameters (see above) from raw (N,P) and scale (N,) or nullptr.
template <typename T>
void likelihood_params(LikelihoodKind kind, T* params, const T* raw, const T* scale, index_t N);

// out (N,) one draw per point from the distribution with params (N,P). Point i uses its own random stream
// derived from (seed, i): the result does not depend on threads or on how a batch is split into calls
// with the same seed and index. Throws std::invalid_argument on invalid parameters.
template <typename T>
void likelihood_sample(LikelihoodKind kind, T* out, const T* params, index_t N, std::uint64_t seed);

// Special functions used by the kernels (exposed for the tests).
double digamma(double x);

}  // namespace nd
