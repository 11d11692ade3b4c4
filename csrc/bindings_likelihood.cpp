// Bindings of the likelihood kernels (likelihood.h): NLL forward / backward, raw -> parameters, samplers.
// Every argument is validated (TypeError / ValueError naming it) before the kernel runs with the GIL
// released; a bad target or parameter found by the kernel raises ValueError naming its index.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "bindings_register.h"
#include "bindings_util.h"
#include "likelihood.h"

namespace nd {
namespace {

namespace py = pybind11;

template <typename F>
void dispatch_dtype(DType dt, F&& f) {
  if (dt == DType::F32) f(float{}); else f(double{});
}

template <typename T>
const T* cp(const py::array& a) { return static_cast<const T*>(a.data()); }
template <typename T>
T* mp(py::array& a) { return static_cast<T*>(a.mutable_data()); }

LikelihoodKind kind_of(const py::handle& h) {
  return static_cast<LikelihoodKind>(kind_index(h, "likelihood", {"gaussian", "student_t", "negative_binomial"}));
}

// raw (N, P) with P from the kind
py::array raw_array(const py::handle& h, const char* name, LikelihoodKind kind) {
  py::array a = kernel_array(h, name);
  need_ndim(a, name, 2);
  need_shape(a, name, {-1, likelihood_n_params(kind)});
  return a;
}

// optional (N,) array of raw's dtype
bool opt_vec(const py::handle& h, const char* name, const py::array& raw, py::array& out) {
  if (h.is_none()) return false;
  out = kernel_array(h, name);
  same_dtype(raw, "raw", out, name);
  need_shape(out, name, {raw.shape(0)});
  return true;
}

struct Args {
  LikelihoodKind kind;
  py::array raw, y, scale, weight;
  bool has_scale = false, has_weight = false;
  index_t N = 0;
};

Args nll_args(py::handle kind_, py::handle raw_, py::handle y_, py::handle scale_, py::handle weight_) {
  Args a;
  a.kind = kind_of(kind_);
  a.raw = raw_array(raw_, "raw", a.kind);
  a.y = kernel_array(y_, "y");
  same_dtype(a.raw, "raw", a.y, "y");
  need_shape(a.y, "y", {a.raw.shape(0)});
  a.has_scale = opt_vec(scale_, "scale", a.raw, a.scale);
  a.has_weight = opt_vec(weight_, "weight", a.raw, a.weight);
  a.N = static_cast<index_t>(a.raw.shape(0));
  return a;
}

template <typename T>
const T* opt_ptr(const py::array& a, bool has) { return has ? cp<T>(a) : nullptr; }

double py_nll_forward(py::handle kind_, py::handle nll_, py::handle raw_, py::handle y_, py::handle scale_,
                      py::handle weight_) {
  Args a = nll_args(kind_, raw_, y_, scale_, weight_);
  py::array nll;
  bool has_nll = !nll_.is_none();
  if (has_nll) {
    nll = kernel_array(nll_, "nll");
    same_dtype(a.raw, "raw", nll, "nll");
    need_shape(nll, "nll", {a.raw.shape(0)});
    need_writable(nll, "nll");
    no_overlap(nll, "nll", a.raw, "raw");
    no_overlap(nll, "nll", a.y, "y");
    if (a.has_scale) no_overlap(nll, "nll", a.scale, "scale");
    if (a.has_weight) no_overlap(nll, "nll", a.weight, "weight");
  }
  double out = 0.0;
  dispatch_dtype(dtype_of(a.raw), [&](auto tag) {
    using T = decltype(tag);
    T* np_ = has_nll ? mp<T>(nll) : nullptr;
    const T *rp = cp<T>(a.raw), *yp = cp<T>(a.y);
    const T *sp = opt_ptr<T>(a.scale, a.has_scale), *wp = opt_ptr<T>(a.weight, a.has_weight);
    py::gil_scoped_release nogil;
    out = likelihood_nll_forward<T>(a.kind, np_, rp, yp, sp, wp, a.N);
  });
  return out;
}

void py_nll_backward(py::handle kind_, py::handle draw_, py::handle raw_, py::handle y_, py::handle scale_,
                     py::handle weight_, py::handle grad_scale_) {
  double gs = float_arg(grad_scale_, "grad_scale");
  if (!std::isfinite(gs)) throw py::value_error("grad_scale must be finite");
  Args a = nll_args(kind_, raw_, y_, scale_, weight_);
  py::array draw = kernel_array(draw_, "draw");
  same_dtype(a.raw, "raw", draw, "draw");
  same_shape(a.raw, "raw", draw, "draw");
  need_writable(draw, "draw");
  no_overlap(draw, "draw", a.raw, "raw");
  no_overlap(draw, "draw", a.y, "y");
  if (a.has_scale) no_overlap(draw, "draw", a.scale, "scale");
  if (a.has_weight) no_overlap(draw, "draw", a.weight, "weight");
  dispatch_dtype(dtype_of(a.raw), [&](auto tag) {
    using T = decltype(tag);
    T* dp = mp<T>(draw);
    const T *rp = cp<T>(a.raw), *yp = cp<T>(a.y);
    const T *sp = opt_ptr<T>(a.scale, a.has_scale), *wp = opt_ptr<T>(a.weight, a.has_weight);
    py::gil_scoped_release nogil;
    likelihood_nll_backward<T>(a.kind, dp, rp, yp, sp, wp, a.N, gs);
  });
}

void py_params(py::handle kind_, py::handle params_, py::handle raw_, py::handle scale_) {
  LikelihoodKind kind = kind_of(kind_);
  py::array raw = raw_array(raw_, "raw", kind);
  py::array scale;
  bool has_scale = opt_vec(scale_, "scale", raw, scale);
  py::array params = kernel_array(params_, "params");
  same_dtype(raw, "raw", params, "params");
  same_shape(raw, "raw", params, "params");
  need_writable(params, "params");
  no_overlap(params, "params", raw, "raw");
  if (has_scale) no_overlap(params, "params", scale, "scale");
  const index_t N = static_cast<index_t>(raw.shape(0));
  dispatch_dtype(dtype_of(raw), [&](auto tag) {
    using T = decltype(tag);
    T* pp = mp<T>(params);
    const T *rp = cp<T>(raw), *sp = opt_ptr<T>(scale, has_scale);
    py::gil_scoped_release nogil;
    likelihood_params<T>(kind, pp, rp, sp, N);
  });
}

void py_sample(py::handle kind_, py::handle out_, py::handle params_, py::handle seed_) {
  LikelihoodKind kind = kind_of(kind_);
  py::array params = kernel_array(params_, "params");
  need_ndim(params, "params", 2);
  need_shape(params, "params", {-1, likelihood_n_params(kind)});
  long long seed = int_arg(seed_, "seed");
  if (seed < 0) throw py::value_error("seed must be >= 0, got " + std::to_string(seed));
  py::array out = kernel_array(out_, "out");
  same_dtype(params, "params", out, "out");
  need_shape(out, "out", {params.shape(0)});
  need_writable(out, "out");
  no_overlap(out, "out", params, "params");
  const index_t N = static_cast<index_t>(params.shape(0));
  dispatch_dtype(dtype_of(params), [&](auto tag) {
    using T = decltype(tag);
    T* op = mp<T>(out);
    const T* pp = cp<T>(params);
    py::gil_scoped_release nogil;
    likelihood_sample<T>(kind, op, pp, N, static_cast<std::uint64_t>(seed));
  });
}

}  // namespace

void register_likelihood(pybind11::module_& m) {
  m.def("likelihood_n_params", [](py::handle kind) { return likelihood_n_params(kind_of(kind)); }, py::arg("kind"),
        "parameters per point: 2 (gaussian, negative_binomial) or 3 (student_t)");
  m.def("likelihood_nll_forward", &py_nll_forward, py::arg("kind"), py::arg("nll").none(true), py::arg("raw"),
        py::arg("y"), py::arg("scale").none(true), py::arg("weight").none(true),
        "weighted mean negative log-likelihood of y (N,) under the distribution of raw (N, P) network outputs "
        "(see csrc/likelihood.h); nll (N,) receives the per-point values when given");
  m.def("likelihood_nll_backward", &py_nll_backward, py::arg("kind"), py::arg("draw"), py::arg("raw"), py::arg("y"),
        py::arg("scale").none(true), py::arg("weight").none(true), py::arg("grad_scale") = 1.0,
        "draw (N, P) = grad_scale * d(mean NLL)/d(raw) (overwritten)");
  m.def("likelihood_params", &py_params, py::arg("kind"), py::arg("params"), py::arg("raw"),
        py::arg("scale").none(true), "params (N, P): distribution parameters from raw outputs and scale");
  m.def("likelihood_sample", &py_sample, py::arg("kind"), py::arg("out"), py::arg("params"), py::arg("seed"),
        "out (N,): one draw per point from params (N, P); point i uses the random stream (seed, i)");
  m.def("digamma", [](double x) {
    if (!(x > 0.0)) throw py::value_error("digamma needs x > 0");
    return digamma(x);
  }, py::arg("x"), "the digamma function for x > 0 (used by the likelihood gradients)");
}

}  // namespace nd
