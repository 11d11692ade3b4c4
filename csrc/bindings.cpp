// The Python module neurodivergent._core. Every function validates its arguments (bindings_util.h)
// and then runs the kernel with the GIL released. Outputs are passed in by the caller (so that
// workspaces can be reused); parameter gradients accumulate (+=), activation gradients overwrite (=).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "bindings_register.h"
#include "bindings_util.h"
#include "common.h"
#include "gemm.h"
#include "kernels.h"

namespace py = pybind11;
using namespace nd;

namespace {

// ---------------------------------------------------------------- gemm
void py_gemm(py::handle a_, py::handle b_, py::handle c_, bool trans_a, bool trans_b, double alpha,
             double beta, bool naive) {
  py::array A = float_array(a_, "a"), B = float_array(b_, "b"), C = float_array(c_, "c");
  same_dtype(A, "a", B, "b");
  same_dtype(A, "a", C, "c");
  need_ndim(A, "a", 2);
  need_ndim(B, "b", 2);
  need_ndim(C, "c", 2);
  need_writable(C, "c");
  no_overlap(C, "c", A, "a");
  no_overlap(C, "c", B, "b");
  index_t M = trans_a ? A.shape(1) : A.shape(0);
  index_t K = trans_a ? A.shape(0) : A.shape(1);
  index_t Kb = trans_b ? B.shape(1) : B.shape(0);
  index_t N = trans_b ? B.shape(0) : B.shape(1);
  if (K != Kb)
    throw py::value_error("inner dimensions differ: op(a) is " + std::to_string(M) + "x" + std::to_string(K) +
                          " but op(b) is " + std::to_string(Kb) + "x" + std::to_string(N));
  if (C.shape(0) != M || C.shape(1) != N)
    throw py::value_error("c must have shape (" + std::to_string(M) + ", " + std::to_string(N) + "), got " +
                          shape_str(C));
  index_t lda = A.shape(1), ldb = B.shape(1), ldc = C.shape(1);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* a = static_cast<const T*>(A.data());
    const T* b = static_cast<const T*>(B.data());
    T* c = static_cast<T*>(C.mutable_data());
    py::gil_scoped_release nogil;
    if (naive)
      gemm_naive<T>(trans_a, trans_b, M, N, K, T(alpha), a, lda, b, ldb, T(beta), c, ldc);
    else
      gemm<T>(trans_a, trans_b, M, N, K, T(alpha), a, lda, b, ldb, T(beta), c, ldc);
  };
  if (dtype_of(A) == DType::F32) run(float{}); else run(double{});
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "neurodivergent C++ kernels (private; use neurodivergent.nn.functional)";
  m.def("set_num_threads", &nd::set_num_threads, py::arg("n"));
  m.def("get_num_threads", &nd::num_threads);
  m.def("hardware_threads", &nd::hardware_threads);
  m.def("gemm_isa", &nd::gemm_isa);
  m.def("gemm_force_isa", [](const std::string& s) { nd::gemm_force_isa(s.c_str()); }, py::arg("isa"));
  m.def("gemm", &py_gemm, py::arg("a"), py::arg("b"), py::arg("c"), py::arg("trans_a") = false,
        py::arg("trans_b") = false, py::arg("alpha") = 1.0, py::arg("beta") = 0.0, py::arg("naive") = false,
        "c = alpha * op(a) @ op(b) + beta * c, in place (row-major, float32 or float64)");

  // ---------------------------------------------------------------- linear / activations / losses / optim
  void register_kernels(py::module_&);  // defined below
  register_kernels(m);
  // Further ops register from their own binding files (bindings_<op>.cpp; pybind11 stays in bindings*.cpp).
  nd::register_lstm(m);
  nd::register_gru(m);
  nd::register_optim(m);
  nd::register_train(m);
  nd::register_likelihood(m);
  nd::register_attention(m);
}

// Bindings of csrc/kernels.h. Each validates every argument (ValueError / TypeError naming it), then
// runs the kernel for the arrays' dtype with the GIL released.
namespace {

template <typename F>
void dispatch(DType dt, F&& f) {
  if (dt == DType::F32) f(float{}); else f(double{});
}

template <typename T>
const T* cptr(const py::array& a) { return static_cast<const T*>(a.data()); }
template <typename T>
T* mptr(py::array& a) { return static_cast<T*>(a.mutable_data()); }
template <typename T>
const T* cptr_or_null(const py::object& a) {
  return a.is_none() ? nullptr : static_cast<const T*>(py::reinterpret_borrow<py::array>(a).data());
}

py::array as_arr(const py::object& o) { return py::reinterpret_borrow<py::array>(o); }

// None stays None (returned as a null py::object); anything else must be a valid kernel array.
py::object optional_array(const py::handle& h, const char* name) {
  if (h.is_none()) return py::none();
  return kernel_array(h, name);
}

// ---- linear
void py_linear_forward(py::handle y_, py::handle x_, py::handle w_, py::handle b_) {
  py::array x = kernel_array(x_, "x"), w = kernel_array(w_, "w"), y = kernel_array(y_, "y");
  py::object bo = optional_array(b_, "b");
  same_dtype(x, "x", w, "w");
  same_dtype(x, "x", y, "y");
  need_ndim(x, "x", 2);
  need_ndim(w, "w", 2);
  const index_t N = x.shape(0), I = x.shape(1), O = w.shape(0);
  need_shape(w, "w", {O, I});
  need_shape(y, "y", {N, O});
  need_writable(y, "y");
  no_overlap(y, "y", x, "x");
  no_overlap(y, "y", w, "w");
  if (!bo.is_none()) {
    py::array b = as_arr(bo);
    same_dtype(x, "x", b, "b");
    need_shape(b, "b", {O});
    no_overlap(y, "y", b, "b");
  }
  dispatch(dtype_of(x), [&](auto tag) {
    using T = decltype(tag);
    const T *xp = cptr<T>(x), *wp = cptr<T>(w), *bp = cptr_or_null<T>(bo);
    T* yp = mptr<T>(y);
    py::gil_scoped_release nogil;
    linear_forward<T>(yp, xp, wp, bp, N, I, O);
  });
}

void py_linear_backward(py::handle dx_, py::handle dw_, py::handle db_, py::handle dy_, py::handle x_,
                        py::handle w_) {
  py::array dy = kernel_array(dy_, "dy"), x = kernel_array(x_, "x"), w = kernel_array(w_, "w");
  py::array dw = kernel_array(dw_, "dw");
  py::object dxo = optional_array(dx_, "dx"), dbo = optional_array(db_, "db");
  same_dtype(x, "x", dy, "dy");
  same_dtype(x, "x", w, "w");
  same_dtype(x, "x", dw, "dw");
  need_ndim(x, "x", 2);
  need_ndim(w, "w", 2);
  const index_t N = x.shape(0), I = x.shape(1), O = w.shape(0);
  need_shape(w, "w", {O, I});
  need_shape(dy, "dy", {N, O});
  need_shape(dw, "dw", {O, I});
  need_writable(dw, "dw");
  no_overlap(dw, "dw", dy, "dy");
  no_overlap(dw, "dw", x, "x");
  no_overlap(dw, "dw", w, "w");
  if (!dxo.is_none()) {
    py::array dx = as_arr(dxo);
    same_dtype(x, "x", dx, "dx");
    need_shape(dx, "dx", {N, I});
    need_writable(dx, "dx");
    no_overlap(dx, "dx", dy, "dy");
    no_overlap(dx, "dx", x, "x");
    no_overlap(dx, "dx", w, "w");
    no_overlap(dx, "dx", dw, "dw");
  }
  if (!dbo.is_none()) {
    py::array db = as_arr(dbo);
    same_dtype(x, "x", db, "db");
    need_shape(db, "db", {O});
    need_writable(db, "db");
    no_overlap(db, "db", dy, "dy");
    no_overlap(db, "db", x, "x");
    no_overlap(db, "db", w, "w");
    no_overlap(db, "db", dw, "dw");
    if (!dxo.is_none()) no_overlap(db, "db", as_arr(dxo), "dx");
  }
  dispatch(dtype_of(x), [&](auto tag) {
    using T = decltype(tag);
    py::array dxa = dxo.is_none() ? py::array() : as_arr(dxo), dba = dbo.is_none() ? py::array() : as_arr(dbo);
    T* dxp = dxo.is_none() ? nullptr : mptr<T>(dxa);
    T* dbp = dbo.is_none() ? nullptr : mptr<T>(dba);
    T* dwp = mptr<T>(dw);
    const T *dyp = cptr<T>(dy), *xp = cptr<T>(x), *wp = cptr<T>(w);
    py::gil_scoped_release nogil;
    linear_backward<T>(dxp, dwp, dbp, dyp, xp, wp, N, I, O);
  });
}

// ---- activations
Activation activation_kind(py::handle kind) {
  static const Activation kinds[] = {Activation::ReLU, Activation::GELU, Activation::Tanh, Activation::Sigmoid};
  return kinds[kind_index(kind, "kind", {"relu", "gelu", "tanh", "sigmoid"})];
}

void py_activation_forward(py::handle kind_, py::handle y_, py::handle x_) {
  Activation kind = activation_kind(kind_);
  py::array x = kernel_array(x_, "x"), y = kernel_array(y_, "y");
  same_dtype(x, "x", y, "y");
  same_shape(x, "x", y, "y");
  need_writable(y, "y");
  same_or_disjoint(y, "y", x, "x");
  const index_t n = x.size();
  dispatch(dtype_of(x), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = cptr<T>(x);
    T* yp = mptr<T>(y);
    py::gil_scoped_release nogil;
    activation_forward<T>(kind, yp, xp, n);
  });
}

void py_activation_backward(py::handle kind_, py::handle dx_, py::handle dy_, py::handle x_, py::handle y_) {
  Activation kind = activation_kind(kind_);
  const bool uses_x = kind == Activation::ReLU || kind == Activation::GELU;
  py::array dx = kernel_array(dx_, "dx"), dy = kernel_array(dy_, "dy");
  py::object xo = optional_array(x_, "x"), yo = optional_array(y_, "y");
  if (uses_x && xo.is_none())
    throw py::value_error("x is required for the " + kind_.cast<std::string>() + " backward (got None)");
  if (!uses_x && yo.is_none())
    throw py::value_error("y is required for the " + kind_.cast<std::string>() + " backward (got None)");
  same_dtype(dy, "dy", dx, "dx");
  same_shape(dy, "dy", dx, "dx");
  need_writable(dx, "dx");
  same_or_disjoint(dx, "dx", dy, "dy");
  for (auto [o, name] : {std::pair<py::object*, const char*>{&xo, "x"}, {&yo, "y"}}) {
    if (o->is_none()) continue;
    py::array a = as_arr(*o);
    same_dtype(dy, "dy", a, name);
    same_shape(dy, "dy", a, name);
    no_overlap(dx, "dx", a, name);
  }
  const index_t n = dy.size();
  dispatch(dtype_of(dy), [&](auto tag) {
    using T = decltype(tag);
    T* dxp = mptr<T>(dx);
    const T *dyp = cptr<T>(dy), *xp = cptr_or_null<T>(xo), *yp = cptr_or_null<T>(yo);
    py::gil_scoped_release nogil;
    activation_backward<T>(kind, dxp, dyp, xp, yp, n);
  });
}

// ---- losses
Loss loss_kind(py::handle kind) {
  static const Loss kinds[] = {Loss::MSE, Loss::MAE, Loss::Huber};
  return kinds[kind_index(kind, "kind", {"mse", "mae", "huber"})];
}

// Validates pred/target/weight (and delta for huber); returns weight (None or array).
py::object loss_inputs(Loss kind, const py::array& pred, const py::array& target, py::handle weight_, double delta) {
  same_dtype(pred, "pred", target, "target");
  same_shape(pred, "pred", target, "target");
  py::object wo = optional_array(weight_, "weight");
  if (!wo.is_none()) {
    py::array w = as_arr(wo);
    same_dtype(pred, "pred", w, "weight");
    same_shape(pred, "pred", w, "weight");
  }
  if (kind == Loss::Huber && !(delta > 0.0 && std::isfinite(delta)))
    throw py::value_error("delta must be finite and > 0 for the huber loss, got " + std::string(py::str(py::float_(delta))));
  return wo;
}

double py_loss_forward(py::handle kind_, py::handle pred_, py::handle target_, py::handle weight_, py::handle delta_) {
  Loss kind = loss_kind(kind_);
  double delta = float_arg(delta_, "delta");
  py::array pred = kernel_array(pred_, "pred"), target = kernel_array(target_, "target");
  py::object wo = loss_inputs(kind, pred, target, weight_, delta);
  const index_t n = pred.size();
  double out = 0.0;
  dispatch(dtype_of(pred), [&](auto tag) {
    using T = decltype(tag);
    const T *pp = cptr<T>(pred), *tp = cptr<T>(target), *wp = cptr_or_null<T>(wo);
    py::gil_scoped_release nogil;
    out = loss_forward<T>(kind, pp, tp, wp, n, delta);
  });
  return out;
}

void py_loss_backward(py::handle kind_, py::handle dpred_, py::handle pred_, py::handle target_, py::handle weight_,
                      py::handle delta_, py::handle scale_) {
  Loss kind = loss_kind(kind_);
  double delta = float_arg(delta_, "delta");
  double scale = float_arg(scale_, "scale");
  if (!std::isfinite(scale)) throw py::value_error("scale must be finite, got " + std::string(py::str(py::float_(scale))));
  py::array dpred = kernel_array(dpred_, "dpred");
  py::array pred = kernel_array(pred_, "pred"), target = kernel_array(target_, "target");
  py::object wo = loss_inputs(kind, pred, target, weight_, delta);
  same_dtype(pred, "pred", dpred, "dpred");
  same_shape(pred, "pred", dpred, "dpred");
  need_writable(dpred, "dpred");
  no_overlap(dpred, "dpred", pred, "pred");
  no_overlap(dpred, "dpred", target, "target");
  if (!wo.is_none()) no_overlap(dpred, "dpred", as_arr(wo), "weight");
  const index_t n = pred.size();
  dispatch(dtype_of(pred), [&](auto tag) {
    using T = decltype(tag);
    T* dp = mptr<T>(dpred);
    const T *pp = cptr<T>(pred), *tp = cptr<T>(target), *wp = cptr_or_null<T>(wo);
    py::gil_scoped_release nogil;
    loss_backward<T>(kind, dp, pp, tp, wp, n, delta, scale);
  });
}

// ---- optimizer / reductions
void py_adam_step(py::handle param_, py::handle grad_, py::handle m_, py::handle v_, py::handle step_,
                  py::handle lr_, py::handle beta1_, py::handle beta2_, py::handle eps_, py::handle wd_,
                  bool decoupled) {
  py::array p = kernel_array(param_, "param"), g = kernel_array(grad_, "grad");
  py::array m = kernel_array(m_, "m"), v = kernel_array(v_, "v");
  AdamHyper h;
  h.step = int_arg(step_, "step");
  h.lr = float_arg(lr_, "lr");
  h.beta1 = float_arg(beta1_, "beta1");
  h.beta2 = float_arg(beta2_, "beta2");
  h.eps = float_arg(eps_, "eps");
  h.weight_decay = float_arg(wd_, "weight_decay");
  h.decoupled = decoupled;
  if (h.step < 1) throw py::value_error("step must be >= 1 (1-based step count), got " + std::to_string(h.step));
  auto bad = [](const char* name, double v, const char* want) {
    throw py::value_error(std::string(name) + " must be " + want + ", got " + std::string(py::str(py::float_(v))));
  };
  if (!(h.lr >= 0.0 && std::isfinite(h.lr))) bad("lr", h.lr, "finite and >= 0");
  if (!(h.beta1 >= 0.0 && h.beta1 < 1.0)) bad("beta1", h.beta1, "in [0, 1)");
  if (!(h.beta2 >= 0.0 && h.beta2 < 1.0)) bad("beta2", h.beta2, "in [0, 1)");
  if (!(h.eps > 0.0 && std::isfinite(h.eps))) bad("eps", h.eps, "finite and > 0");
  if (!(h.weight_decay >= 0.0 && std::isfinite(h.weight_decay))) bad("weight_decay", h.weight_decay, "finite and >= 0");
  need_ndim(p, "param", 1);
  same_dtype(p, "param", g, "grad");
  same_dtype(p, "param", m, "m");
  same_dtype(p, "param", v, "v");
  need_shape(g, "grad", {p.shape(0)});
  need_shape(m, "m", {p.shape(0)});
  need_shape(v, "v", {p.shape(0)});
  need_writable(p, "param");
  need_writable(m, "m");
  need_writable(v, "v");
  no_overlap(p, "param", g, "grad");
  no_overlap(p, "param", m, "m");
  no_overlap(p, "param", v, "v");
  no_overlap(m, "m", g, "grad");
  no_overlap(m, "m", v, "v");
  no_overlap(v, "v", g, "grad");
  const index_t n = p.shape(0);
  dispatch(dtype_of(p), [&](auto tag) {
    using T = decltype(tag);
    T *pp = mptr<T>(p), *mp = mptr<T>(m), *vp = mptr<T>(v);
    const T* gp = cptr<T>(g);
    py::gil_scoped_release nogil;
    adam_step<T>(pp, mp, vp, gp, n, h);
  });
}

double py_sum_squares(py::handle x_) {
  py::array x = kernel_array(x_, "x");
  const index_t n = x.size();
  double out = 0.0;
  dispatch(dtype_of(x), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = cptr<T>(x);
    py::gil_scoped_release nogil;
    out = sum_squares<T>(xp, n);
  });
  return out;
}

void py_scale_inplace(py::handle x_, py::handle s_) {
  py::array x = kernel_array(x_, "x");
  double s = float_arg(s_, "s");
  need_writable(x, "x");
  const index_t n = x.size();
  dispatch(dtype_of(x), [&](auto tag) {
    using T = decltype(tag);
    T* xp = mptr<T>(x);
    py::gil_scoped_release nogil;
    scale_inplace<T>(xp, n, s);
  });
}

}  // namespace

void register_kernels(py::module_& m) {
  m.def("linear_forward", &py_linear_forward, py::arg("y"), py::arg("x"), py::arg("w"), py::arg("b").none(true),
        "y (N,O) = x (N,I) @ w (O,I)^T + b (O,) [b may be None]; y overwritten");
  m.def("linear_backward", &py_linear_backward, py::arg("dx").none(true), py::arg("dw"), py::arg("db").none(true),
        py::arg("dy"), py::arg("x"), py::arg("w"),
        "dx (N,I) = dy @ w (overwritten; None skips); dw (O,I) += dy^T @ x; db (O,) += sum_n dy (None skips)");
  m.def("activation_forward", &py_activation_forward, py::arg("kind"), py::arg("y"), py::arg("x"),
        "y = f(x) for kind in relu, gelu (exact erf), tanh, sigmoid; y may be x itself (in place)");
  m.def("activation_backward", &py_activation_backward, py::arg("kind"), py::arg("dx"), py::arg("dy"),
        py::arg("x").none(true), py::arg("y").none(true),
        "dx = dy * f'(.) (overwritten); relu/gelu read x, tanh/sigmoid read y; dx may be dy itself");
  m.def("loss_forward", &py_loss_forward, py::arg("kind"), py::arg("pred"), py::arg("target"),
        py::arg("weight").none(true), py::arg("delta") = 1.0,
        "sum(w * l(pred - target)) / sum(w) (plain mean without weight) for kind in mse, mae, huber");
  m.def("loss_backward", &py_loss_backward, py::arg("kind"), py::arg("dpred"), py::arg("pred"), py::arg("target"),
        py::arg("weight").none(true), py::arg("delta") = 1.0, py::arg("scale") = 1.0,
        "dpred = scale * d(loss)/d(pred) (overwritten)");
  m.def("adam_step", &py_adam_step, py::arg("param"), py::arg("grad"), py::arg("m"), py::arg("v"), py::arg("step"),
        py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
        py::arg("decoupled"), "one fused Adam / AdamW step in place on 1-D param, m, v (PyTorch's formula)");
  m.def("sum_squares", &py_sum_squares, py::arg("x"), "sum of x**2 accumulated in double");
  m.def("scale_inplace", &py_scale_inplace, py::arg("x"), py::arg("s"), "x *= s in place");
}
