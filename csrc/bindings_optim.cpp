// Bindings of csrc/optim.h: adam_step_ex (Adam/AdamW with AMSGrad), sgd_step, rmsprop_step, copy_into.
// Every argument is validated (TypeError / ValueError naming it), then the kernel runs for the arrays'
// dtype (float32 or float64) with the GIL released. All state arrays are updated in place.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "bindings_register.h"
#include "bindings_util.h"
#include "optim.h"

namespace nd {
namespace {

namespace py = pybind11;

template <typename F>
void dispatch(DType dt, F&& f) {
  if (dt == DType::F32) f(float{}); else f(double{});
}

template <typename T>
T* mptr_or_null(py::object& o) {
  return o.is_none() ? nullptr : static_cast<T*>(py::reinterpret_borrow<py::array>(o).mutable_data());
}

bool bool_arg(const py::handle& h, const char* name) {
  if (!py::isinstance<py::bool_>(h))
    throw py::type_error(std::string(name) + " must be True or False, got " +
                         std::string(py::str(py::type::of(h).attr("__name__"))));
  return h.cast<bool>();
}

[[noreturn]] void bad(const char* name, double v, const char* want) {
  throw py::value_error(std::string(name) + " must be " + want + ", got " + std::string(py::str(py::float_(v))));
}

double finite_nonneg(const py::handle& h, const char* name) {
  double v = float_arg(h, name);
  if (!(v >= 0.0 && std::isfinite(v))) bad(name, v, "finite and >= 0");
  return v;
}

// The parameter vector and its state arrays: param is a writable 1-D float array; grad (read-only
// allowed) and every state array (writable, or None where optional) match its dtype and length and
// no two of them overlap in memory.
struct Arrays {
  py::array param, grad;
  std::vector<std::pair<py::object, const char*>> state;  // may hold None

  Arrays(py::handle p, py::handle g) : param(kernel_array(p, "param")), grad(kernel_array(g, "grad")) {
    need_ndim(param, "param", 1);
    need_writable(param, "param");
    same_dtype(param, "param", grad, "grad");
    same_shape(param, "param", grad, "grad");
    no_overlap(param, "param", grad, "grad");
  }

  py::object add(py::handle h, const char* name, bool optional) {
    if (h.is_none()) {
      if (!optional) throw py::type_error(std::string(name) + " must be a numpy.ndarray, got None");
      state.emplace_back(py::none(), name);
      return py::none();
    }
    py::array a = kernel_array(h, name);
    same_dtype(param, "param", a, name);
    same_shape(param, "param", a, name);
    need_writable(a, name);
    no_overlap(a, name, param, "param");
    no_overlap(a, name, grad, "grad");
    for (auto& [o, on] : state)
      if (!o.is_none()) no_overlap(a, name, py::reinterpret_borrow<py::array>(o), on);
    state.emplace_back(a, name);
    return std::move(a);
  }
};

void py_adam_step_ex(py::handle param_, py::handle grad_, py::handle m_, py::handle v_, py::handle max_v_,
                     py::handle step_, py::handle lr_, py::handle beta1_, py::handle beta2_, py::handle eps_,
                     py::handle wd_, py::handle decoupled_) {
  Arrays a(param_, grad_);
  py::object m = a.add(m_, "m", false), v = a.add(v_, "v", false), mx = a.add(max_v_, "max_v", true);
  AdamHyper h;
  h.step = int_arg(step_, "step");
  if (h.step < 1) throw py::value_error("step must be >= 1 (1-based step count), got " + std::to_string(h.step));
  h.lr = finite_nonneg(lr_, "lr");
  h.beta1 = float_arg(beta1_, "beta1");
  h.beta2 = float_arg(beta2_, "beta2");
  h.eps = float_arg(eps_, "eps");
  h.weight_decay = finite_nonneg(wd_, "weight_decay");
  h.decoupled = bool_arg(decoupled_, "decoupled");
  if (!(h.beta1 >= 0.0 && h.beta1 < 1.0)) bad("beta1", h.beta1, "in [0, 1)");
  if (!(h.beta2 >= 0.0 && h.beta2 < 1.0)) bad("beta2", h.beta2, "in [0, 1)");
  if (!(h.eps > 0.0 && std::isfinite(h.eps))) bad("eps", h.eps, "finite and > 0");
  const index_t n = a.param.shape(0);
  dispatch(dtype_of(a.param), [&](auto tag) {
    using T = decltype(tag);
    T* pp = static_cast<T*>(a.param.mutable_data());
    const T* gp = static_cast<const T*>(a.grad.data());
    T *mp = mptr_or_null<T>(m), *vp = mptr_or_null<T>(v), *xp = mptr_or_null<T>(mx);
    py::gil_scoped_release nogil;
    adam_step_ex<T>(pp, mp, vp, xp, gp, n, h);
  });
}

void py_sgd_step(py::handle param_, py::handle grad_, py::handle buf_, py::handle lr_, py::handle momentum_,
                 py::handle dampening_, py::handle wd_, py::handle nesterov_, py::handle first_) {
  Arrays a(param_, grad_);
  SgdHyper h;
  h.lr = finite_nonneg(lr_, "lr");
  h.momentum = finite_nonneg(momentum_, "momentum");
  h.dampening = float_arg(dampening_, "dampening");
  if (!(h.dampening >= 0.0 && h.dampening <= 1.0)) bad("dampening", h.dampening, "in [0, 1]");
  h.weight_decay = finite_nonneg(wd_, "weight_decay");
  h.nesterov = bool_arg(nesterov_, "nesterov");
  h.first = bool_arg(first_, "first");
  if (h.nesterov && !(h.momentum > 0.0 && h.dampening == 0.0))
    throw py::value_error("nesterov=True requires momentum > 0 and dampening == 0, got momentum=" +
                          std::string(py::str(py::float_(h.momentum))) +
                          ", dampening=" + std::string(py::str(py::float_(h.dampening))));
  const bool mom = h.momentum != 0.0;
  py::object b = a.add(buf_, "momentum_buffer", true);
  if (mom && b.is_none()) throw py::value_error("momentum_buffer is required when momentum != 0");
  if (!mom && !b.is_none()) throw py::value_error("momentum_buffer must be None when momentum == 0");
  const index_t n = a.param.shape(0);
  dispatch(dtype_of(a.param), [&](auto tag) {
    using T = decltype(tag);
    T* pp = static_cast<T*>(a.param.mutable_data());
    const T* gp = static_cast<const T*>(a.grad.data());
    T* bp = mptr_or_null<T>(b);
    py::gil_scoped_release nogil;
    sgd_step<T>(pp, bp, gp, n, h);
  });
}

void py_rmsprop_step(py::handle param_, py::handle grad_, py::handle sq_, py::handle ga_, py::handle buf_,
                     py::handle lr_, py::handle alpha_, py::handle eps_, py::handle wd_, py::handle momentum_) {
  Arrays a(param_, grad_);
  py::object sq = a.add(sq_, "square_avg", false), ga = a.add(ga_, "grad_avg", true);
  py::object b = a.add(buf_, "momentum_buffer", true);
  RmspropHyper h;
  h.lr = finite_nonneg(lr_, "lr");
  h.alpha = float_arg(alpha_, "alpha");
  if (!(h.alpha >= 0.0 && h.alpha < 1.0)) bad("alpha", h.alpha, "in [0, 1)");
  h.eps = float_arg(eps_, "eps");
  if (!(h.eps > 0.0 && std::isfinite(h.eps))) bad("eps", h.eps, "finite and > 0");
  h.weight_decay = finite_nonneg(wd_, "weight_decay");
  h.momentum = finite_nonneg(momentum_, "momentum");
  const bool mom = h.momentum > 0.0;
  if (mom && b.is_none()) throw py::value_error("momentum_buffer is required when momentum > 0");
  if (!mom && !b.is_none()) throw py::value_error("momentum_buffer must be None when momentum == 0");
  const index_t n = a.param.shape(0);
  dispatch(dtype_of(a.param), [&](auto tag) {
    using T = decltype(tag);
    T* pp = static_cast<T*>(a.param.mutable_data());
    const T* gp = static_cast<const T*>(a.grad.data());
    T *sp = mptr_or_null<T>(sq), *gap = mptr_or_null<T>(ga), *bp = mptr_or_null<T>(b);
    py::gil_scoped_release nogil;
    rmsprop_step<T>(pp, sp, gap, bp, gp, n, h);
  });
}

void py_copy_into(py::handle dst_, py::handle src_) {
  py::array d = kernel_array(dst_, "dst"), s = kernel_array(src_, "src");
  same_dtype(d, "dst", s, "src");
  same_shape(d, "dst", s, "src");
  need_writable(d, "dst");
  no_overlap(d, "dst", s, "src");
  void* dp = d.mutable_data();
  const void* sp = s.data();
  const index_t nb = static_cast<index_t>(d.nbytes());
  py::gil_scoped_release nogil;
  parallel_copy(dp, sp, nb);
}

}  // namespace

void register_optim(pybind11::module_& m) {
  m.def("adam_step_ex", &py_adam_step_ex, py::arg("param"), py::arg("grad"), py::arg("m"), py::arg("v"),
        py::arg("max_v").none(true), py::arg("step"), py::arg("lr"), py::arg("beta1"), py::arg("beta2"),
        py::arg("eps"), py::arg("weight_decay"), py::arg("decoupled"),
        "one fused Adam / AdamW step in place on 1-D param, m, v and, for AMSGrad, max_v (None: no AMSGrad); "
        "torch.optim.Adam / AdamW's formula");
  m.def("sgd_step", &py_sgd_step, py::arg("param"), py::arg("grad"), py::arg("momentum_buffer").none(true),
        py::arg("lr"), py::arg("momentum"), py::arg("dampening"), py::arg("weight_decay"), py::arg("nesterov"),
        py::arg("first"),
        "one fused SGD step in place (torch.optim.SGD); momentum_buffer None iff momentum == 0; first=True "
        "initialises the buffer to the gradient (torch's first step)");
  m.def("rmsprop_step", &py_rmsprop_step, py::arg("param"), py::arg("grad"), py::arg("square_avg"),
        py::arg("grad_avg").none(true), py::arg("momentum_buffer").none(true), py::arg("lr"), py::arg("alpha"),
        py::arg("eps"), py::arg("weight_decay"), py::arg("momentum"),
        "one fused RMSprop step in place (torch.optim.RMSprop); grad_avg given iff centered; momentum_buffer "
        "given iff momentum > 0");
  m.def("copy_into", &py_copy_into, py::arg("dst"), py::arg("src"),
        "dst[...] = src with a parallel memcpy over the kernel threads (the bandwidth ceiling of bench/optim.py)");
}

}  // namespace nd
