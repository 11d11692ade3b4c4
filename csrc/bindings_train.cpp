// Bindings of the training-engine kernels (train_kernels.h): quantile (pinball) loss, clip-by-value and
// the fused L1/L2 penalty gradient. Every argument is validated (TypeError / ValueError naming it) before
// the kernel runs with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <vector>

#include "bindings_register.h"
#include "bindings_util.h"
#include "train_kernels.h"

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

std::string num(double v) { return std::string(py::str(py::float_(v))); }

// Quantile levels / weights: 1-D float32 or float64 arrays of length Q, copied to double and checked.
std::vector<double> level_vector(const py::handle& h, const char* name) {
  py::array a = kernel_array(h, name);
  need_ndim(a, name, 1);
  std::vector<double> v(static_cast<size_t>(a.shape(0)));
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = dtype_of(a) == DType::F32 ? static_cast<double>(static_cast<const float*>(a.data())[i])
                                     : static_cast<const double*>(a.data())[i];
  return v;
}

struct QuantileArgs {
  py::array pred, target;
  py::object weight;  // None or array
  std::vector<double> tau, qw;
  index_t N = 0, Q = 0;
};

// pred: target.shape + (Q,); target any shape (N points); weight None or target's shape; quantiles and
// quantile_weights (Q,) with levels in (0, 1) strictly increasing and weights finite > 0.
QuantileArgs quantile_args(py::handle pred_, py::handle target_, py::handle weight_, py::handle quantiles_,
                           py::handle qweights_) {
  QuantileArgs a;
  a.pred = kernel_array(pred_, "pred");
  a.target = kernel_array(target_, "target");
  same_dtype(a.pred, "pred", a.target, "target");
  a.tau = level_vector(quantiles_, "quantiles");
  a.qw = level_vector(qweights_, "quantile_weights");
  a.Q = static_cast<index_t>(a.tau.size());
  if (a.Q < 1) throw py::value_error("quantiles must hold at least one level, got shape (0,)");
  if (a.qw.size() != a.tau.size())
    throw py::value_error("quantile_weights must have shape (" + std::to_string(a.Q) + ",) like quantiles, got (" +
                          std::to_string(a.qw.size()) + ",)");
  for (index_t q = 0; q < a.Q; ++q) {
    double t = a.tau[q], w = a.qw[q];
    if (!(t > 0.0 && t < 1.0))
      throw py::value_error("quantiles[" + std::to_string(q) + "] must be in (0, 1), got " + num(t));
    if (q > 0 && !(t > a.tau[q - 1]))
      throw py::value_error("quantiles must be strictly increasing; quantiles[" + std::to_string(q) + "] = " + num(t) +
                            " follows " + num(a.tau[q - 1]));
    if (!(w > 0.0 && std::isfinite(w)))
      throw py::value_error("quantile_weights[" + std::to_string(q) + "] must be finite and > 0, got " + num(w));
  }
  // pred must be target.shape + (Q,)
  bool ok = a.pred.ndim() == a.target.ndim() + 1 && a.pred.shape(a.pred.ndim() - 1) == a.Q;
  for (py::ssize_t i = 0; ok && i < a.target.ndim(); ++i) ok = a.pred.shape(i) == a.target.shape(i);
  if (!ok) {
    std::string want = shape_str(a.target);
    if (a.target.ndim() == 1) want.pop_back(), want.pop_back();  // "(n,)" -> "(n"
    else want.pop_back();                                         // "(a, b)" -> "(a, b"
    want += (a.target.ndim() == 0 ? "" : ", ") + std::to_string(a.Q) + ")";
    throw py::value_error("pred must have shape target.shape + (Q,) = " + want + " (Q = len(quantiles) = " +
                          std::to_string(a.Q) + "), got " + shape_str(a.pred));
  }
  a.weight = weight_.is_none() ? py::object(py::none()) : py::object(kernel_array(weight_, "weight"));
  if (!a.weight.is_none()) {
    py::array w = py::reinterpret_borrow<py::array>(a.weight);
    same_dtype(a.pred, "pred", w, "weight");
    same_shape(a.target, "target", w, "weight");
  }
  a.N = static_cast<index_t>(a.target.size());
  return a;
}

double py_quantile_loss_forward(py::handle pred_, py::handle target_, py::handle weight_, py::handle quantiles_,
                                py::handle qweights_) {
  QuantileArgs a = quantile_args(pred_, target_, weight_, quantiles_, qweights_);
  double out = 0.0;
  dispatch_dtype(dtype_of(a.pred), [&](auto tag) {
    using T = decltype(tag);
    const T *pp = cp<T>(a.pred), *tp = cp<T>(a.target);
    const T* wp = a.weight.is_none() ? nullptr : cp<T>(py::reinterpret_borrow<py::array>(a.weight));
    const double *tau = a.tau.data(), *qw = a.qw.data();
    const index_t N = a.N, Q = a.Q;
    py::gil_scoped_release nogil;
    out = quantile_loss_forward<T>(pp, tp, wp, tau, qw, N, Q);
  });
  return out;
}

void py_quantile_loss_backward(py::handle dpred_, py::handle pred_, py::handle target_, py::handle weight_,
                               py::handle quantiles_, py::handle qweights_, py::handle scale_) {
  double scale = float_arg(scale_, "scale");
  if (!std::isfinite(scale)) throw py::value_error("scale must be finite, got " + num(scale));
  QuantileArgs a = quantile_args(pred_, target_, weight_, quantiles_, qweights_);
  py::array dpred = kernel_array(dpred_, "dpred");
  same_dtype(a.pred, "pred", dpred, "dpred");
  same_shape(a.pred, "pred", dpred, "dpred");
  need_writable(dpred, "dpred");
  no_overlap(dpred, "dpred", a.pred, "pred");
  no_overlap(dpred, "dpred", a.target, "target");
  if (!a.weight.is_none()) no_overlap(dpred, "dpred", py::reinterpret_borrow<py::array>(a.weight), "weight");
  dispatch_dtype(dtype_of(a.pred), [&](auto tag) {
    using T = decltype(tag);
    T* dp = mp<T>(dpred);
    const T *pp = cp<T>(a.pred), *tp = cp<T>(a.target);
    const T* wp = a.weight.is_none() ? nullptr : cp<T>(py::reinterpret_borrow<py::array>(a.weight));
    const double *tau = a.tau.data(), *qw = a.qw.data();
    const index_t N = a.N, Q = a.Q;
    py::gil_scoped_release nogil;
    quantile_loss_backward<T>(dp, pp, tp, wp, tau, qw, N, Q, scale);
  });
}

void py_clip_by_value(py::handle x_, py::handle lo_, py::handle hi_) {
  py::array x = kernel_array(x_, "x");
  double lo = float_arg(lo_, "lo"), hi = float_arg(hi_, "hi");
  if (std::isnan(lo)) throw py::value_error("lo must not be NaN");
  if (std::isnan(hi)) throw py::value_error("hi must not be NaN");
  if (!(lo <= hi)) throw py::value_error("lo must be <= hi, got lo = " + num(lo) + ", hi = " + num(hi));
  need_writable(x, "x");
  const index_t n = static_cast<index_t>(x.size());
  dispatch_dtype(dtype_of(x), [&](auto tag) {
    using T = decltype(tag);
    T* xp = mp<T>(x);
    py::gil_scoped_release nogil;
    clip_by_value<T>(xp, n, lo, hi);
  });
}

void py_add_penalty_grad(py::handle grad_, py::handle param_, py::handle l1_, py::handle l2_) {
  py::array g = kernel_array(grad_, "grad"), p = kernel_array(param_, "param");
  double l1 = float_arg(l1_, "l1"), l2 = float_arg(l2_, "l2");
  if (!(l1 >= 0.0 && std::isfinite(l1))) throw py::value_error("l1 must be finite and >= 0, got " + num(l1));
  if (!(l2 >= 0.0 && std::isfinite(l2))) throw py::value_error("l2 must be finite and >= 0, got " + num(l2));
  need_ndim(g, "grad", 1);
  same_dtype(g, "grad", p, "param");
  need_shape(p, "param", {g.shape(0)});
  need_writable(g, "grad");
  no_overlap(g, "grad", p, "param");
  const index_t n = static_cast<index_t>(g.shape(0));
  dispatch_dtype(dtype_of(g), [&](auto tag) {
    using T = decltype(tag);
    T* gp = mp<T>(g);
    const T* pp = cp<T>(p);
    py::gil_scoped_release nogil;
    add_penalty_grad<T>(gp, pp, n, l1, l2);
  });
}

}  // namespace

void register_train(pybind11::module_& m) {
  m.def("quantile_loss_forward", &py_quantile_loss_forward, py::arg("pred"), py::arg("target"),
        py::arg("weight").none(true), py::arg("quantiles"), py::arg("quantile_weights"),
        "pinball loss: sum(w_i qw_q rho_tau_q(target_i - pred_iq)) / (sum(w) sum(qw)); pred has shape "
        "target.shape + (Q,), weight None or target's shape, quantiles / quantile_weights (Q,)");
  m.def("quantile_loss_backward", &py_quantile_loss_backward, py::arg("dpred"), py::arg("pred"), py::arg("target"),
        py::arg("weight").none(true), py::arg("quantiles"), py::arg("quantile_weights"), py::arg("scale") = 1.0,
        "dpred = scale * d(pinball loss)/d(pred) (overwritten); 0 where target == pred");
  m.def("clip_by_value", &py_clip_by_value, py::arg("x"), py::arg("lo"), py::arg("hi"),
        "x = clip(x, lo, hi) in place (NaN kept)");
  m.def("add_penalty_grad", &py_add_penalty_grad, py::arg("grad"), py::arg("param"), py::arg("l1"), py::arg("l2"),
        "grad += l1 * sign(param) + l2 * param in place (1-D grad and param of one dtype)");
}

}  // namespace nd
