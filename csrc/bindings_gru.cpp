// Python bindings of the GRU kernels (csrc/gru.h): _core.gru_forward / _core.gru_backward / _core.gru_isa.
// Every argument is validated (TypeError / ValueError naming it) before the kernel runs with the GIL
// released. Dimensions: B batch, T steps, I input, H hidden, G = 3H (gates r, z, n).
#include <string>
#include <vector>

#include "bindings_register.h"
#include "bindings_util.h"
#include "gru.h"

namespace nd {
namespace {

struct Named {
  py::array a;
  const char* name;
};

py::object optional_array(const py::handle& h, const char* name) {
  if (h.is_none()) return py::none();
  return kernel_array(h, name);
}

py::array as_arr(const py::object& o) { return py::reinterpret_borrow<py::array>(o); }

// Every output writable, disjoint from every other output and from every input.
void check_outputs(const std::vector<Named>& outs, const std::vector<Named>& ins) {
  for (std::size_t i = 0; i < outs.size(); ++i) {
    need_writable(outs[i].a, outs[i].name);
    for (std::size_t j = i + 1; j < outs.size(); ++j) no_overlap(outs[i].a, outs[i].name, outs[j].a, outs[j].name);
    for (const Named& in : ins) no_overlap(outs[i].a, outs[i].name, in.a, in.name);
  }
}

void need_positive(index_t v, const char* what) {
  if (v < 1) throw py::value_error(std::string(what) + " must be at least 1, got " + std::to_string(v));
}

template <typename T>
const T* cptr(const py::array& a) {
  return static_cast<const T*>(a.data());
}
template <typename T>
const T* cptr(const py::object& o) {
  return o.is_none() ? nullptr : static_cast<const T*>(as_arr(o).data());
}
template <typename T>
T* mptr(const py::object& o) {
  return o.is_none() ? nullptr : static_cast<T*>(as_arr(o).mutable_data());
}

// x (B,T,I), w_ih (G,I), w_hh (G,H) define the sizes; returns {B, T, I, H}.
std::vector<index_t> gru_sizes(const py::array& x, const py::array& w_ih, const py::array& w_hh) {
  need_ndim(x, "x", 3);
  need_ndim(w_hh, "w_hh", 2);
  const index_t B = x.shape(0), T = x.shape(1), I = x.shape(2), H = w_hh.shape(1);
  need_positive(B, "the batch size (x.shape[0])");
  need_positive(T, "the number of steps (x.shape[1])");
  need_positive(I, "the input size (x.shape[2])");
  need_positive(H, "the hidden size (w_hh.shape[1])");
  need_shape(w_hh, "w_hh", {3 * H, H});
  need_shape(w_ih, "w_ih", {3 * H, I});
  return {B, T, I, H};
}

void py_gru_forward(py::handle y_, py::handle gates_, py::handle x_, py::handle w_ih_, py::handle w_hh_,
                    py::handle b_ih_, py::handle b_hh_, py::handle h0_, bool naive) {
  py::array x = kernel_array(x_, "x"), w_ih = kernel_array(w_ih_, "w_ih"), w_hh = kernel_array(w_hh_, "w_hh");
  py::object b_ih = optional_array(b_ih_, "b_ih"), b_hh = optional_array(b_hh_, "b_hh"),
             h0 = optional_array(h0_, "h0");
  py::array y = kernel_array(y_, "y"), gates = kernel_array(gates_, "gates");
  same_dtype(x, "x", w_ih, "w_ih");
  same_dtype(x, "x", w_hh, "w_hh");
  std::vector<Named> ins{{x, "x"}, {w_ih, "w_ih"}, {w_hh, "w_hh"}};
  for (auto& [o, n] : {std::pair<py::object, const char*>{b_ih, "b_ih"}, {b_hh, "b_hh"}, {h0, "h0"}})
    if (!o.is_none()) {
      same_dtype(x, "x", as_arr(o), n);
      ins.push_back({as_arr(o), n});
    }
  same_dtype(x, "x", y, "y");
  same_dtype(x, "x", gates, "gates");
  auto s = gru_sizes(x, w_ih, w_hh);
  const index_t B = s[0], T = s[1], I = s[2], H = s[3];
  if (!b_ih.is_none()) need_shape(as_arr(b_ih), "b_ih", {3 * H});
  if (!b_hh.is_none()) need_shape(as_arr(b_hh), "b_hh", {3 * H});
  if (!h0.is_none()) need_shape(as_arr(h0), "h0", {B, H});
  need_shape(y, "y", {B, T, H});
  need_shape(gates, "gates", {B, T, gru_cache_width(H)});
  check_outputs({{y, "y"}, {gates, "gates"}}, ins);
  auto run = [&](auto tag) {
    using T_ = decltype(tag);
    T_* yp = static_cast<T_*>(y.mutable_data());
    T_* gp = static_cast<T_*>(gates.mutable_data());
    const T_ *xp = cptr<T_>(x), *wip = cptr<T_>(w_ih), *whp = cptr<T_>(w_hh);
    const T_ *bip = cptr<T_>(b_ih), *bhp = cptr<T_>(b_hh), *h0p = cptr<T_>(h0);
    py::gil_scoped_release nogil;
    if (naive)
      gru_forward_naive<T_>(yp, gp, xp, wip, whp, bip, bhp, h0p, B, T, I, H);
    else
      gru_forward<T_>(yp, gp, xp, wip, whp, bip, bhp, h0p, B, T, I, H);
  };
  if (dtype_of(x) == DType::F32) run(float{}); else run(double{});
}

void py_gru_backward(py::handle dx_, py::handle dh0_, py::handle dw_ih_, py::handle dw_hh_, py::handle db_ih_,
                     py::handle db_hh_, py::handle dy_, py::handle dh_, py::handle x_, py::handle w_ih_,
                     py::handle w_hh_, py::handle h0_, py::handle y_, py::handle gates_, bool naive) {
  py::array x = kernel_array(x_, "x"), w_ih = kernel_array(w_ih_, "w_ih"), w_hh = kernel_array(w_hh_, "w_hh");
  py::array y = kernel_array(y_, "y"), gates = kernel_array(gates_, "gates");
  py::object h0 = optional_array(h0_, "h0"), dy = optional_array(dy_, "dy"), dh = optional_array(dh_, "dh");
  py::object dx = optional_array(dx_, "dx");
  py::array dh0 = kernel_array(dh0_, "dh0"), dw_ih = kernel_array(dw_ih_, "dw_ih"),
            dw_hh = kernel_array(dw_hh_, "dw_hh"), db_ih = kernel_array(db_ih_, "db_ih"),
            db_hh = kernel_array(db_hh_, "db_hh");
  std::vector<Named> ins{{x, "x"}, {w_ih, "w_ih"}, {w_hh, "w_hh"}, {y, "y"}, {gates, "gates"}};
  for (auto& [o, n] : {std::pair<py::object, const char*>{h0, "h0"}, {dy, "dy"}, {dh, "dh"}})
    if (!o.is_none()) ins.push_back({as_arr(o), n});
  std::vector<Named> outs{{dh0, "dh0"}, {dw_ih, "dw_ih"}, {dw_hh, "dw_hh"}, {db_ih, "db_ih"}, {db_hh, "db_hh"}};
  if (!dx.is_none()) outs.push_back({as_arr(dx), "dx"});
  for (const Named& a : ins) same_dtype(x, "x", a.a, a.name);
  for (const Named& a : outs) same_dtype(x, "x", a.a, a.name);
  auto s = gru_sizes(x, w_ih, w_hh);
  const index_t B = s[0], T = s[1], I = s[2], H = s[3];
  if (!h0.is_none()) need_shape(as_arr(h0), "h0", {B, H});
  if (!dy.is_none()) need_shape(as_arr(dy), "dy", {B, T, H});
  if (!dh.is_none()) need_shape(as_arr(dh), "dh", {B, H});
  need_shape(y, "y", {B, T, H});
  need_shape(gates, "gates", {B, T, gru_cache_width(H)});
  if (!dx.is_none()) need_shape(as_arr(dx), "dx", {B, T, I});
  need_shape(dh0, "dh0", {B, H});
  need_shape(dw_ih, "dw_ih", {3 * H, I});
  need_shape(dw_hh, "dw_hh", {3 * H, H});
  need_shape(db_ih, "db_ih", {3 * H});
  need_shape(db_hh, "db_hh", {3 * H});
  check_outputs(outs, ins);
  auto run = [&](auto tag) {
    using T_ = decltype(tag);
    T_* dxp = mptr<T_>(dx);
    T_* dh0p = static_cast<T_*>(dh0.mutable_data());
    T_* dwip = static_cast<T_*>(dw_ih.mutable_data());
    T_* dwhp = static_cast<T_*>(dw_hh.mutable_data());
    T_* dbip = static_cast<T_*>(db_ih.mutable_data());
    T_* dbhp = static_cast<T_*>(db_hh.mutable_data());
    const T_ *dyp = cptr<T_>(dy), *dhp = cptr<T_>(dh), *xp = cptr<T_>(x), *wip = cptr<T_>(w_ih),
             *whp = cptr<T_>(w_hh), *h0p = cptr<T_>(h0), *yp = cptr<T_>(y), *gp = cptr<T_>(gates);
    py::gil_scoped_release nogil;
    if (naive)
      gru_backward_naive<T_>(dxp, dh0p, dwip, dwhp, dbip, dbhp, dyp, dhp, xp, wip, whp, h0p, yp, gp, B, T, I, H);
    else
      gru_backward<T_>(dxp, dh0p, dwip, dwhp, dbip, dbhp, dyp, dhp, xp, wip, whp, h0p, yp, gp, B, T, I, H);
  };
  if (dtype_of(x) == DType::F32) run(float{}); else run(double{});
}

}  // namespace

void register_gru(pybind11::module_& m) {
  m.def("gru_forward", &py_gru_forward, py::arg("y"), py::arg("gates"), py::arg("x"), py::arg("w_ih"),
        py::arg("w_hh"), py::arg("b_ih").none(true), py::arg("b_hh").none(true), py::arg("h0").none(true),
        py::arg("naive") = false,
        "GRU over a sequence: y (B,T,H) and the cache gates (B,T,gru_cache_width(H)) written");
  m.def("gru_backward", &py_gru_backward, py::arg("dx").none(true), py::arg("dh0"), py::arg("dw_ih"),
        py::arg("dw_hh"), py::arg("db_ih"), py::arg("db_hh"), py::arg("dy").none(true), py::arg("dh").none(true),
        py::arg("x"), py::arg("w_ih"), py::arg("w_hh"), py::arg("h0").none(true), py::arg("y"), py::arg("gates"),
        py::arg("naive") = false,
        "GRU backward: dx, dh0 overwritten; dw_ih, dw_hh, db_ih, db_hh accumulated (+=)");
  m.def("gru_cache_width", [](long long H) {
    if (H < 1) throw py::value_error("H must be at least 1");
    return nd::gru_cache_width(index_t(H));
  }, py::arg("H"), "width of a row of the GRU cache: 32 * ceil(H / 8)");
  m.def("gru_isa", &nd::gru_isa, "'avx2' or 'generic': the GRU step kernels in use");
}

}  // namespace nd
