// Bindings of the attention and layer-norm kernels (csrc/attention.h, csrc/norm.h):
// _core.attention_forward / attention_backward / attention_dropout_mask / layer_norm_forward /
// layer_norm_backward. Every argument is validated (TypeError / ValueError naming it) before a kernel
// runs with the GIL released: ndarray, float32/float64, one dtype for all, C-contiguous, aligned, exact
// shapes, outputs writable and not overlapping any input or other output.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "attention.h"
#include "bindings_register.h"
#include "bindings_util.h"
#include "linear.h"
#include "norm.h"

namespace nd {
namespace {

namespace py = pybind11;

using Named = std::pair<py::array, const char*>;

bool opt_array(const py::handle& h, const char* name, py::array& out) {
  if (h.is_none()) return false;
  out = kernel_array(h, name);
  return true;
}

void check_outputs(const std::vector<Named>& outs, const std::vector<Named>& ins) {
  for (std::size_t i = 0; i < outs.size(); ++i) {
    need_writable(outs[i].first, outs[i].second);
    for (const auto& in : ins) no_overlap(outs[i].first, outs[i].second, in.first, in.second);
    for (std::size_t j = i + 1; j < outs.size(); ++j)
      no_overlap(outs[j].first, outs[j].second, outs[i].first, outs[i].second);
  }
}

template <typename T>
T* mp(py::array& a, bool has) {
  return has ? static_cast<T*>(a.mutable_data()) : nullptr;
}
template <typename T>
const T* cp(const py::array& a, bool has) {
  return has ? static_cast<const T*>(a.data()) : nullptr;
}

struct AttnDims {
  index_t B, H, T, S, D;
};

AttnDims attn_dims(const py::array& q, const py::array& k, const py::array& v) {
  need_ndim(q, "q", 4);
  need_ndim(k, "k", 4);
  AttnDims d{q.shape(0), q.shape(1), q.shape(2), k.shape(2), q.shape(3)};
  if (d.B < 1 || d.H < 1 || d.T < 1 || d.D < 1)
    throw py::value_error("q must have shape (B, heads, T, d) with every size >= 1, got " + shape_str(q));
  if (k.shape(0) != d.B || k.shape(1) != d.H || k.shape(3) != d.D || d.S < 1)
    throw py::value_error("k must have shape (B, heads, S, d) = (" + std::to_string(d.B) + ", " +
                          std::to_string(d.H) + ", S, " + std::to_string(d.D) + ") with S >= 1 and B, heads, d from q " +
                          shape_str(q) + ", got " + shape_str(k));
  need_shape(v, "v", {d.B, d.H, d.S, d.D});
  return d;
}

// key_padding_mask: None or a C-contiguous (B, S) bool / uint8 array (nonzero = masked key).
bool mask_arg(const py::handle& h, const AttnDims& d, py::array& out) {
  if (h.is_none()) return false;
  if (!py::isinstance<py::array>(h))
    throw py::type_error("key_padding_mask must be a numpy.ndarray or None, got " +
                         std::string(py::str(py::type::of(h).attr("__name__"))));
  py::array a = py::reinterpret_borrow<py::array>(h);
  const char kind = a.dtype().kind();
  if (!((kind == 'b' || kind == 'u') && a.dtype().itemsize() == 1))
    throw py::type_error("key_padding_mask must have dtype bool or uint8, got " + std::string(py::str(a.dtype())));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error("key_padding_mask must be C-contiguous (use numpy.ascontiguousarray)");
  need_shape(a, "key_padding_mask", {d.B, d.S});
  out = a;
  return true;
}

double scale_arg(const py::handle& h, index_t D) {
  if (h.is_none()) return 1.0 / std::sqrt(double(D));
  const double s = float_arg(h, "scale");
  if (!std::isfinite(s)) throw py::value_error("scale must be finite, got " + std::to_string(s));
  return s;
}

double dropout_arg(const py::handle& h) {
  const double p = float_arg(h, "dropout");
  if (!(p >= 0.0 && p < 1.0)) throw py::value_error("dropout must be in [0, 1), got " + std::to_string(p));
  return p;
}

std::uint64_t seed_arg(const py::handle& h) {
  const long long s = int_arg(h, "seed");
  if (s < 0) throw py::value_error("seed must be >= 0, got " + std::to_string(s));
  return static_cast<std::uint64_t>(s);
}

// The options every attention binding takes: the key-padding mask (added to `ins` for the overlap check),
// the scale (None: 1/sqrt(d)), dropout and seed.
struct AttnOptions {
  py::array kpm;  // keeps the mask alive while `mask` points into it
  const std::uint8_t* mask = nullptr;
  double scale = 0.0, dropout = 0.0;
  std::uint64_t seed = 0;
};

AttnOptions attn_options(const py::handle& kpm_, const AttnDims& d, const py::handle& scale_,
                         const py::handle& dropout_, const py::handle& seed_, std::vector<Named>& ins) {
  AttnOptions o;
  if (mask_arg(kpm_, d, o.kpm)) {
    ins.push_back({o.kpm, "key_padding_mask"});
    o.mask = static_cast<const std::uint8_t*>(o.kpm.data());
  }
  o.scale = scale_arg(scale_, d.D);
  o.dropout = dropout_arg(dropout_);
  o.seed = seed_arg(seed_);
  return o;
}

void py_attention_forward(py::handle y_, py::handle lse_, py::handle q_, py::handle k_, py::handle v_,
                          py::handle kpm_, bool causal, py::handle scale_, py::handle dropout_, py::handle seed_,
                          bool naive) {
  py::array q = kernel_array(q_, "q"), k = kernel_array(k_, "k"), v = kernel_array(v_, "v");
  py::array y = kernel_array(y_, "y"), lse = kernel_array(lse_, "lse");
  std::vector<Named> ins = {{q, "q"}, {k, "k"}, {v, "v"}};
  std::vector<Named> outs = {{y, "y"}, {lse, "lse"}};
  for (const auto& a : ins) same_dtype(q, "q", a.first, a.second);
  for (const auto& a : outs) same_dtype(q, "q", a.first, a.second);
  const AttnDims d = attn_dims(q, k, v);
  const AttnOptions o = attn_options(kpm_, d, scale_, dropout_, seed_, ins);
  need_shape(y, "y", {d.B, d.H, d.T, d.D});
  need_shape(lse, "lse", {d.B, d.H, d.T});
  check_outputs(outs, ins);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T *yp = mp<T>(y, true), *lp = mp<T>(lse, true);
    const T *qp = cp<T>(q, true), *kp = cp<T>(k, true), *vp = cp<T>(v, true);
    py::gil_scoped_release nogil;
    attention_forward<T>(yp, lp, qp, kp, vp, o.mask, d.B, d.H, d.T, d.S, d.D, causal, o.scale, o.dropout, o.seed,
                         naive);
  };
  if (dtype_of(q) == DType::F32) run(float{}); else run(double{});
}

void py_attention_backward(py::handle dq_, py::handle dk_, py::handle dv_, py::handle dy_, py::handle q_,
                           py::handle k_, py::handle v_, py::handle y_, py::handle lse_, py::handle kpm_,
                           bool causal, py::handle scale_, py::handle dropout_, py::handle seed_, bool naive) {
  py::array q = kernel_array(q_, "q"), k = kernel_array(k_, "k"), v = kernel_array(v_, "v");
  py::array y = kernel_array(y_, "y"), lse = kernel_array(lse_, "lse"), dy = kernel_array(dy_, "dy");
  py::array dq = kernel_array(dq_, "dq"), dk = kernel_array(dk_, "dk"), dv = kernel_array(dv_, "dv");
  std::vector<Named> ins = {{q, "q"}, {k, "k"}, {v, "v"}, {y, "y"}, {lse, "lse"}, {dy, "dy"}};
  std::vector<Named> outs = {{dq, "dq"}, {dk, "dk"}, {dv, "dv"}};
  for (const auto& a : ins) same_dtype(q, "q", a.first, a.second);
  for (const auto& a : outs) same_dtype(q, "q", a.first, a.second);
  const AttnDims d = attn_dims(q, k, v);
  const AttnOptions o = attn_options(kpm_, d, scale_, dropout_, seed_, ins);
  need_shape(y, "y", {d.B, d.H, d.T, d.D});
  need_shape(dy, "dy", {d.B, d.H, d.T, d.D});
  need_shape(lse, "lse", {d.B, d.H, d.T});
  need_shape(dq, "dq", {d.B, d.H, d.T, d.D});
  need_shape(dk, "dk", {d.B, d.H, d.S, d.D});
  need_shape(dv, "dv", {d.B, d.H, d.S, d.D});
  check_outputs(outs, ins);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T *dqp = mp<T>(dq, true), *dkp = mp<T>(dk, true), *dvp = mp<T>(dv, true);
    const T *dyp = cp<T>(dy, true), *qp = cp<T>(q, true), *kp = cp<T>(k, true), *vp = cp<T>(v, true),
            *yp = cp<T>(y, true), *lp = cp<T>(lse, true);
    py::gil_scoped_release nogil;
    attention_backward<T>(dqp, dkp, dvp, dyp, qp, kp, vp, yp, lp, o.mask, d.B, d.H, d.T, d.S, d.D, causal, o.scale,
                          o.dropout, o.seed, naive);
  };
  if (dtype_of(q) == DType::F32) run(float{}); else run(double{});
}

// Packed self-attention: qkv (B,T,3*d) (q, k, v blocks of d = heads * dh per row), y (B,T,d), lse (B,heads,T).
struct PackedDims {
  index_t B, H, T, D;
};

PackedDims packed_dims(const py::array& qkv, py::handle heads_) {
  need_ndim(qkv, "qkv", 3);
  const long long H = int_arg(heads_, "heads");
  if (H < 1) throw py::value_error("heads must be >= 1, got " + std::to_string(H));
  const index_t B = qkv.shape(0), T = qkv.shape(1), C = qkv.shape(2);
  if (B < 1 || T < 1 || C < 1 || C % (3 * H) != 0)
    throw py::value_error("qkv must have shape (B, T, 3 * heads * d) with B, T, d >= 1 and heads = " +
                          std::to_string(H) + ", got " + shape_str(qkv));
  return PackedDims{B, index_t(H), T, C / (3 * H)};
}

void py_attention_packed_forward(py::handle y_, py::handle lse_, py::handle qkv_, py::handle kpm_, py::handle heads_,
                                 bool causal, py::handle scale_, py::handle dropout_, py::handle seed_) {
  py::array qkv = kernel_array(qkv_, "qkv");
  py::array y = kernel_array(y_, "y"), lse = kernel_array(lse_, "lse");
  std::vector<Named> ins = {{qkv, "qkv"}};
  std::vector<Named> outs = {{y, "y"}, {lse, "lse"}};
  for (const auto& a : outs) same_dtype(qkv, "qkv", a.first, a.second);
  const PackedDims d = packed_dims(qkv, heads_);
  const AttnOptions o = attn_options(kpm_, AttnDims{d.B, d.H, d.T, d.T, d.D}, scale_, dropout_, seed_, ins);
  need_shape(y, "y", {d.B, d.T, d.H * d.D});
  need_shape(lse, "lse", {d.B, d.H, d.T});
  check_outputs(outs, ins);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T *yp = mp<T>(y, true), *lp = mp<T>(lse, true);
    const T* xp = cp<T>(qkv, true);
    py::gil_scoped_release nogil;
    attention_packed_forward<T>(yp, lp, xp, o.mask, d.B, d.H, d.T, d.D, causal, o.scale, o.dropout, o.seed);
  };
  if (dtype_of(qkv) == DType::F32) run(float{}); else run(double{});
}

void py_attention_packed_backward(py::handle dqkv_, py::handle dy_, py::handle qkv_, py::handle y_, py::handle lse_,
                                  py::handle kpm_, py::handle heads_, bool causal, py::handle scale_,
                                  py::handle dropout_, py::handle seed_) {
  py::array qkv = kernel_array(qkv_, "qkv"), y = kernel_array(y_, "y"), lse = kernel_array(lse_, "lse");
  py::array dy = kernel_array(dy_, "dy"), dqkv = kernel_array(dqkv_, "dqkv");
  std::vector<Named> ins = {{qkv, "qkv"}, {y, "y"}, {lse, "lse"}, {dy, "dy"}};
  std::vector<Named> outs = {{dqkv, "dqkv"}};
  for (const auto& a : ins) same_dtype(qkv, "qkv", a.first, a.second);
  for (const auto& a : outs) same_dtype(qkv, "qkv", a.first, a.second);
  const PackedDims d = packed_dims(qkv, heads_);
  const AttnOptions o = attn_options(kpm_, AttnDims{d.B, d.H, d.T, d.T, d.D}, scale_, dropout_, seed_, ins);
  need_shape(y, "y", {d.B, d.T, d.H * d.D});
  need_shape(dy, "dy", {d.B, d.T, d.H * d.D});
  need_shape(lse, "lse", {d.B, d.H, d.T});
  need_shape(dqkv, "dqkv", {d.B, d.T, 3 * d.H * d.D});
  check_outputs(outs, ins);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T* gp = mp<T>(dqkv, true);
    const T *dyp = cp<T>(dy, true), *xp = cp<T>(qkv, true), *yp = cp<T>(y, true), *lp = cp<T>(lse, true);
    py::gil_scoped_release nogil;
    attention_packed_backward<T>(gp, dyp, xp, yp, lp, o.mask, d.B, d.H, d.T, d.D, causal, o.scale, o.dropout, o.seed);
  };
  if (dtype_of(qkv) == DType::F32) run(float{}); else run(double{});
}

py::array py_attention_dropout_mask(py::handle B_, py::handle H_, py::handle T_, py::handle S_, py::handle dropout_,
                                    py::handle seed_) {
  const long long B = int_arg(B_, "B"), H = int_arg(H_, "H"), T = int_arg(T_, "T"), S = int_arg(S_, "S");
  if (B < 0 || H < 0 || T < 0 || S < 0) throw py::value_error("B, H, T, S must be >= 0");
  const double p = dropout_arg(dropout_);
  const std::uint64_t seed = seed_arg(seed_);
  py::array_t<std::uint8_t> keep({B, H, T, S});
  std::uint8_t* kp = keep.mutable_data();
  {
    py::gil_scoped_release nogil;
    attention_dropout_mask(kp, B, H, T, S, p, seed);
  }
  return keep;
}

// ---------------------------------------------------------------------------------------- layer norm
void py_layer_norm_forward(py::handle y_, py::handle mean_, py::handle rstd_, py::handle x_, py::handle w_,
                           py::handle b_, py::handle eps_, bool naive) {
  py::array x = kernel_array(x_, "x"), y = kernel_array(y_, "y");
  py::array mean = kernel_array(mean_, "mean"), rstd = kernel_array(rstd_, "rstd");
  py::array w, b;
  const bool has_w = opt_array(w_, "weight", w), has_b = opt_array(b_, "bias", b);
  std::vector<Named> ins = {{x, "x"}};
  if (has_w) ins.push_back({w, "weight"});
  if (has_b) ins.push_back({b, "bias"});
  std::vector<Named> outs = {{y, "y"}, {mean, "mean"}, {rstd, "rstd"}};
  for (const auto& a : ins) same_dtype(x, "x", a.first, a.second);
  for (const auto& a : outs) same_dtype(x, "x", a.first, a.second);
  need_ndim(x, "x", 2);
  const index_t N = x.shape(0), C = x.shape(1);
  if (C < 1) throw py::value_error("x must have shape (N, C) with C >= 1, got " + shape_str(x));
  if (has_w) need_shape(w, "weight", {C});
  if (has_b) need_shape(b, "bias", {C});
  need_shape(y, "y", {N, C});
  need_shape(mean, "mean", {N});
  need_shape(rstd, "rstd", {N});
  check_outputs(outs, ins);
  const double eps = float_arg(eps_, "eps");
  if (!(eps > 0.0) || !std::isfinite(eps)) throw py::value_error("eps must be a finite number > 0, got " + std::to_string(eps));
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T *yp = mp<T>(y, true), *mp_ = mp<T>(mean, true), *rp = mp<T>(rstd, true);
    const T *xp = cp<T>(x, true), *wp = cp<T>(w, has_w), *bp = cp<T>(b, has_b);
    py::gil_scoped_release nogil;
    layer_norm_forward<T>(yp, mp_, rp, xp, wp, bp, N, C, eps, naive);
  };
  if (dtype_of(x) == DType::F32) run(float{}); else run(double{});
}

void py_layer_norm_backward(py::handle dx_, py::handle dw_, py::handle db_, py::handle dy_, py::handle x_,
                            py::handle w_, py::handle mean_, py::handle rstd_, bool naive) {
  py::array x = kernel_array(x_, "x"), dy = kernel_array(dy_, "dy");
  py::array mean = kernel_array(mean_, "mean"), rstd = kernel_array(rstd_, "rstd");
  py::array dx, dw, db, w;
  const bool has_dx = opt_array(dx_, "dx", dx), has_dw = opt_array(dw_, "dweight", dw),
             has_db = opt_array(db_, "dbias", db), has_w = opt_array(w_, "weight", w);
  std::vector<Named> ins = {{x, "x"}, {dy, "dy"}, {mean, "mean"}, {rstd, "rstd"}};
  if (has_w) ins.push_back({w, "weight"});
  std::vector<Named> outs;
  if (has_dx) outs.push_back({dx, "dx"});
  if (has_dw) outs.push_back({dw, "dweight"});
  if (has_db) outs.push_back({db, "dbias"});
  for (const auto& a : ins) same_dtype(x, "x", a.first, a.second);
  for (const auto& a : outs) same_dtype(x, "x", a.first, a.second);
  need_ndim(x, "x", 2);
  const index_t N = x.shape(0), C = x.shape(1);
  if (C < 1) throw py::value_error("x must have shape (N, C) with C >= 1, got " + shape_str(x));
  need_shape(dy, "dy", {N, C});
  need_shape(mean, "mean", {N});
  need_shape(rstd, "rstd", {N});
  if (has_w) need_shape(w, "weight", {C});
  if (has_dx) need_shape(dx, "dx", {N, C});
  if (has_dw) need_shape(dw, "dweight", {C});
  if (has_db) need_shape(db, "dbias", {C});
  check_outputs(outs, ins);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T *dxp = mp<T>(dx, has_dx), *dwp = mp<T>(dw, has_dw), *dbp = mp<T>(db, has_db);
    const T *dyp = cp<T>(dy, true), *xp = cp<T>(x, true), *wp = cp<T>(w, has_w), *mp_ = cp<T>(mean, true),
            *rp = cp<T>(rstd, true);
    py::gil_scoped_release nogil;
    layer_norm_backward<T>(dxp, dwp, dbp, dyp, xp, wp, mp_, rp, N, C, naive);
  };
  if (dtype_of(x) == DType::F32) run(float{}); else run(double{});
}

// ---------------------------------------------------------------------------------------- GELU (feed-forward)
void py_ff_gelu_forward(py::handle y_, py::handle x_) {
  py::array x = kernel_array(x_, "x"), y = kernel_array(y_, "y");
  same_dtype(x, "x", y, "y");
  same_shape(x, "x", y, "y");
  check_outputs({{y, "y"}}, {{x, "x"}});
  const index_t n = x.size();
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T* yp = mp<T>(y, true);
    const T* xp = cp<T>(x, true);
    py::gil_scoped_release nogil;
    ff_gelu_forward(yp, xp, n);
  };
  if (dtype_of(x) == DType::F32) run(float{}); else run(double{});
}

void py_ff_gelu_backward(py::handle dx_, py::handle dy_, py::handle x_) {
  py::array x = kernel_array(x_, "x"), dy = kernel_array(dy_, "dy"), dx = kernel_array(dx_, "dx");
  same_dtype(x, "x", dy, "dy");
  same_dtype(x, "x", dx, "dx");
  same_shape(x, "x", dy, "dy");
  same_shape(x, "x", dx, "dx");
  check_outputs({{dx, "dx"}}, {{x, "x"}, {dy, "dy"}});
  const index_t n = x.size();
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T* dxp = mp<T>(dx, true);
    const T *dyp = cp<T>(dy, true), *xp = cp<T>(x, true);
    py::gil_scoped_release nogil;
    ff_gelu_backward(dxp, dyp, xp, n);
  };
  if (dtype_of(x) == DType::F32) run(float{}); else run(double{});
}

// ---------------------------------------------------------------------------------------- linear + residual
// gelu: y = GELU(z) w^T + b + r; keep (gelu only): g_, d_ receive GELU(z), GELU'(z) (both or neither).
void linear_residual_impl(py::handle y_, py::handle x_, py::handle w_, py::handle b_, py::handle r_, bool gelu,
                          py::handle g_ = py::none(), py::handle d_ = py::none()) {
  const char* xn = gelu ? "z" : "x";
  py::array x = kernel_array(x_, xn), w = kernel_array(w_, "w"), y = kernel_array(y_, "y"), b, r, g, d;
  const bool hb = opt_array(b_, "b", b), hr = opt_array(r_, "residual", r);
  const bool hg = opt_array(g_, "g", g), hd = opt_array(d_, "d", d);
  if (hg != hd) throw py::value_error("g and d must be given together (GELU(z) and GELU'(z)) or both None");
  same_dtype(x, xn, w, "w");
  same_dtype(x, xn, y, "y");
  need_ndim(x, xn, 2);
  need_ndim(w, "w", 2);
  const index_t N = x.shape(0), I = x.shape(1), O = w.shape(0);
  need_shape(w, "w", {O, I});
  need_shape(y, "y", {N, O});
  std::vector<Named> ins{{x, xn}, {w, "w"}};
  if (hb) {
    same_dtype(x, xn, b, "b");
    need_shape(b, "b", {O});
    ins.push_back({b, "b"});
  }
  if (hr) {
    same_dtype(x, xn, r, "residual");
    need_shape(r, "residual", {N, O});
    ins.push_back({r, "residual"});
  }
  std::vector<Named> outs{{y, "y"}};
  if (hg) {
    same_dtype(x, xn, g, "g");
    same_dtype(x, xn, d, "d");
    need_shape(g, "g", {N, I});
    need_shape(d, "d", {N, I});
    outs.push_back({g, "g"});
    outs.push_back({d, "d"});
  }
  check_outputs(outs, ins);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T* yp = mp<T>(y, true);
    T *gp = mp<T>(g, hg), *dp = mp<T>(d, hd);
    const T *xp = cp<T>(x, true), *wp = cp<T>(w, true), *bp = cp<T>(b, hb), *rp = cp<T>(r, hr);
    py::gil_scoped_release nogil;
    if (gelu && hg)
      linear_gelu_forward_keep<T>(yp, gp, dp, xp, wp, bp, rp, N, I, O);
    else if (gelu)
      linear_gelu_forward<T>(yp, xp, wp, bp, rp, N, I, O);
    else
      linear_forward_residual<T>(yp, xp, wp, bp, rp, N, I, O);
  };
  if (dtype_of(x) == DType::F32) run(float{}); else run(double{});
}
void py_linear_residual_forward(py::handle y_, py::handle x_, py::handle w_, py::handle b_, py::handle r_) {
  linear_residual_impl(y_, x_, w_, b_, r_, false);
}
void py_linear_gelu_forward(py::handle y_, py::handle z_, py::handle w_, py::handle b_, py::handle r_, py::handle g_,
                            py::handle d_) {
  linear_residual_impl(y_, z_, w_, b_, r_, true, g_, d_);
}

// g = GELU(x w^T + b), d = GELU'(x w^T + b) (d optional): the feed-forward block's first linear with its activation.
void py_linear_forward_gelu(py::handle g_, py::handle d_, py::handle x_, py::handle w_, py::handle b_) {
  py::array x = kernel_array(x_, "x"), w = kernel_array(w_, "w"), g = kernel_array(g_, "g"), b, d;
  const bool hb = opt_array(b_, "b", b), hd = opt_array(d_, "d", d);
  same_dtype(x, "x", w, "w");
  same_dtype(x, "x", g, "g");
  need_ndim(x, "x", 2);
  need_ndim(w, "w", 2);
  const index_t N = x.shape(0), I = x.shape(1), O = w.shape(0);
  need_shape(w, "w", {O, I});
  need_shape(g, "g", {N, O});
  std::vector<Named> ins{{x, "x"}, {w, "w"}};
  if (hb) {
    same_dtype(x, "x", b, "b");
    need_shape(b, "b", {O});
    ins.push_back({b, "b"});
  }
  std::vector<Named> outs{{g, "g"}};
  if (hd) {
    same_dtype(x, "x", d, "d");
    need_shape(d, "d", {N, O});
    outs.push_back({d, "d"});
  }
  check_outputs(outs, ins);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T *gp = mp<T>(g, true), *dp = mp<T>(d, hd);
    const T *xp = cp<T>(x, true), *wp = cp<T>(w, true), *bp = cp<T>(b, hb);
    py::gil_scoped_release nogil;
    linear_forward_gelu<T>(gp, dp, xp, wp, bp, N, I, O);
  };
  if (dtype_of(x) == DType::F32) run(float{}); else run(double{});
}

void py_ff_gelu_forward_grad(py::handle y_, py::handle d_, py::handle x_) {
  py::array x = kernel_array(x_, "x"), y = kernel_array(y_, "y"), d = kernel_array(d_, "d");
  same_dtype(x, "x", y, "y");
  same_dtype(x, "x", d, "d");
  same_shape(x, "x", y, "y");
  same_shape(x, "x", d, "d");
  check_outputs({{y, "y"}, {d, "d"}}, {{x, "x"}});
  const index_t n = x.size();
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T *yp = mp<T>(y, true), *dp = mp<T>(d, true);
    const T* xp = cp<T>(x, true);
    py::gil_scoped_release nogil;
    ff_gelu_forward_grad(yp, dp, xp, n);
  };
  if (dtype_of(x) == DType::F32) run(float{}); else run(double{});
}

// dgate (in: the gate, out: (dy @ w) * gate), dw, db += as linear_backward.
void gated_backward_impl(py::handle dx_, py::handle dw_, py::handle db_, py::handle dy_, py::handle x_,
                         py::handle w_, bool gelu) {
  const char *xn = gelu ? "z" : "x", *dxn = gelu ? "dz" : "dx";
  py::array dx = kernel_array(dx_, dxn), dw = kernel_array(dw_, "dw"), dy = kernel_array(dy_, "dy"),
            x = kernel_array(x_, xn), w = kernel_array(w_, "w"), db;
  const bool hb = opt_array(db_, "db", db);
  for (const Named& a : std::vector<Named>{{dx, dxn}, {dw, "dw"}, {dy, "dy"}, {w, "w"}}) same_dtype(x, xn, a.first, a.second);
  need_ndim(x, xn, 2);
  need_ndim(w, "w", 2);
  const index_t N = x.shape(0), I = x.shape(1), O = w.shape(0);
  need_shape(w, "w", {O, I});
  need_shape(dx, dxn, {N, I});
  need_shape(dw, "dw", {O, I});
  need_shape(dy, "dy", {N, O});
  std::vector<Named> outs{{dx, dxn}, {dw, "dw"}};
  if (hb) {
    same_dtype(x, xn, db, "db");
    need_shape(db, "db", {O});
    outs.push_back({db, "db"});
  }
  check_outputs(outs, {{x, xn}, {w, "w"}, {dy, "dy"}});
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T *dxp = mp<T>(dx, true), *dwp = mp<T>(dw, true), *dbp = mp<T>(db, hb);
    const T *dyp = cp<T>(dy, true), *xp = cp<T>(x, true), *wp = cp<T>(w, true);
    py::gil_scoped_release nogil;
    if (gelu)
      linear_gelu_backward<T>(dxp, dwp, dbp, dyp, xp, wp, N, I, O);
    else
      linear_backward_gated<T>(dxp, dwp, dbp, dyp, xp, wp, N, I, O);
  };
  if (dtype_of(x) == DType::F32) run(float{}); else run(double{});
}
void py_linear_gated_backward(py::handle dx_, py::handle dw_, py::handle db_, py::handle dy_, py::handle x_,
                              py::handle w_) {
  gated_backward_impl(dx_, dw_, db_, dy_, x_, w_, false);
}
void py_linear_gelu_backward(py::handle dz_, py::handle dw_, py::handle db_, py::handle dy_, py::handle z_,
                             py::handle w_) {
  gated_backward_impl(dz_, dw_, db_, dy_, z_, w_, true);
}

}  // namespace

void register_attention(pybind11::module_& m) {
  namespace py = pybind11;
  m.def("attention_forward", &py_attention_forward, py::arg("y"), py::arg("lse"), py::arg("q"), py::arg("k"),
        py::arg("v"), py::arg("key_padding_mask").none(true), py::arg("causal") = false,
        py::arg("scale").none(true) = py::none(), py::arg("dropout") = 0.0, py::arg("seed") = 0,
        py::arg("naive") = false,
        "Scaled dot-product attention over q (B,H,T,d), k, v (B,H,S,d): writes y (B,H,T,d) and lse (B,H,T); "
        "key_padding_mask (B,S) bool/uint8 (True = masked key) or None; scale None = 1/sqrt(d)");
  m.def("attention_backward", &py_attention_backward, py::arg("dq"), py::arg("dk"), py::arg("dv"), py::arg("dy"),
        py::arg("q"), py::arg("k"), py::arg("v"), py::arg("y"), py::arg("lse"),
        py::arg("key_padding_mask").none(true), py::arg("causal") = false, py::arg("scale").none(true) = py::none(),
        py::arg("dropout") = 0.0, py::arg("seed") = 0, py::arg("naive") = false,
        "Backward of attention_forward (same masks, scale, dropout and seed): dq, dk, dv overwritten");
  m.def("attention_packed_forward", &py_attention_packed_forward, py::arg("y"), py::arg("lse"), py::arg("qkv"),
        py::arg("key_padding_mask").none(true), py::arg("heads"), py::arg("causal") = false,
        py::arg("scale").none(true) = py::none(), py::arg("dropout") = 0.0, py::arg("seed") = 0,
        "Self-attention on the packed projection qkv (B,T,3*d) (d = heads * dh): writes y (B,T,d) with the heads "
        "merged and lse (B,heads,T); bitwise equal to attention_forward on the split heads");
  m.def("attention_packed_backward", &py_attention_packed_backward, py::arg("dqkv"), py::arg("dy"), py::arg("qkv"),
        py::arg("y"), py::arg("lse"), py::arg("key_padding_mask").none(true), py::arg("heads"),
        py::arg("causal") = false, py::arg("scale").none(true) = py::none(), py::arg("dropout") = 0.0,
        py::arg("seed") = 0, "Backward of attention_packed_forward: dqkv (B,T,3*d) overwritten");
  m.def("attention_dropout_mask", &py_attention_dropout_mask, py::arg("B"), py::arg("H"), py::arg("T"),
        py::arg("S"), py::arg("dropout"), py::arg("seed"),
        "The attention dropout keep mask (B,H,T,S) uint8 of a call with this dropout and seed");
  m.def("ff_gelu_forward", &py_ff_gelu_forward, py::arg("y"), py::arg("x"),
        "GELU (exact erf form) of the Transformer's feed-forward block, vectorised for float32: y = x Phi(x)");
  m.def("ff_gelu_backward", &py_ff_gelu_backward, py::arg("dx"), py::arg("dy"), py::arg("x"),
        "Backward of ff_gelu_forward: dx = dy (Phi(x) + x phi(x)) (overwritten)");
  m.def("linear_residual_forward", &py_linear_residual_forward, py::arg("y"), py::arg("x"), py::arg("w"),
        py::arg("b").none(true), py::arg("residual").none(true),
        "y = x @ w.T + b + residual in one pass (b, residual may be None); bitwise linear_forward then residual + y");
  m.def("linear_gated_backward", &py_linear_gated_backward, py::arg("dx"), py::arg("dw"), py::arg("db").none(true),
        py::arg("dy"), py::arg("x"), py::arg("w"),
        "Backward of linear(x) whose input gradient is gated: dw, db += as linear_backward; dx holds the gate and "
        "is overwritten with (dy @ w) * gate");
  m.def("linear_gelu_forward", &py_linear_gelu_forward, py::arg("y"), py::arg("z"), py::arg("w"),
        py::arg("b").none(true), py::arg("residual").none(true), py::arg("g").none(true) = py::none(),
        py::arg("d").none(true) = py::none(),
        "y = GELU(z) @ w.T + b + residual (bitwise ff_gelu_forward then linear_residual_forward); GELU(z) is "
        "never stored unless g and d (both (N, I)) are given: then they receive GELU(z) and GELU'(z), and "
        "linear_gated_backward(d, dw, db, dy, g, w) is the backward (bitwise linear_gelu_backward)");
  m.def("linear_forward_gelu", &py_linear_forward_gelu, py::arg("g"), py::arg("d").none(true), py::arg("x"),
        py::arg("w"), py::arg("b").none(true),
        "g = GELU(x @ w.T + b) and, when d (N, O) is given, d = GELU'(x @ w.T + b): the feed-forward block's first "
        "linear with its activation in one pass (the pre-activation is never stored); bitwise linear_forward then "
        "ff_gelu_forward (or ff_gelu_forward_grad)");
  m.def("linear_gelu_backward", &py_linear_gelu_backward, py::arg("dz"), py::arg("dw"), py::arg("db").none(true),
        py::arg("dy"), py::arg("z"), py::arg("w"),
        "Backward of linear_gelu_forward: dz = (dy @ w) * GELU'(z) overwritten, dw += dy^T GELU(z), db += sum dy");
  m.def("ff_gelu_forward_grad", &py_ff_gelu_forward_grad, py::arg("y"), py::arg("d"), py::arg("x"),
        "y = GELU(x) and d = GELU'(x) in one pass (bitwise ff_gelu_forward's y; dy * d is ff_gelu_backward's dx)");
  m.def("layer_norm_forward", &py_layer_norm_forward, py::arg("y"), py::arg("mean"), py::arg("rstd"), py::arg("x"),
        py::arg("weight").none(true), py::arg("bias").none(true), py::arg("eps") = 1e-5, py::arg("naive") = false,
        "Layer norm over the last dim of x (N,C): writes y (N,C), mean and rstd (N)");
  m.def("layer_norm_backward", &py_layer_norm_backward, py::arg("dx").none(true), py::arg("dweight").none(true),
        py::arg("dbias").none(true), py::arg("dy"), py::arg("x"), py::arg("weight").none(true), py::arg("mean"),
        py::arg("rstd"), py::arg("naive") = false,
        "Layer norm backward: dx (N,C) overwritten; dweight, dbias (C) accumulated (+=); None skips one");
}

}  // namespace nd
