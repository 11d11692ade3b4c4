// Bindings of the LSTM kernels (csrc/lstm.h): _core.lstm_forward / _core.lstm_backward / _core.lstm_isa.
// Every argument is validated (TypeError / ValueError naming it) before the kernel runs with the GIL
// released: ndarray, float32/float64, one dtype for all, C-contiguous, aligned, exact shapes, outputs
// writable and not overlapping any input or other output.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <utility>
#include <vector>

#include "bindings_register.h"
#include "bindings_util.h"
#include "lstm.h"

namespace nd {
namespace {

namespace py = pybind11;

using Named = std::pair<py::array, const char*>;

// Optional array: None -> empty list entry (returns false); else a validated kernel array.
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

// Sizes from x (B,T,I) and w_hh (G,H); checks the weights and biases.
struct Dims {
  index_t B, T, I, H, G;
};

Dims lstm_dims(const py::array& x, const py::array& w_ih, const py::array& w_hh) {
  need_ndim(x, "x", 3);
  need_ndim(w_hh, "w_hh", 2);
  Dims d;
  d.B = x.shape(0);
  d.T = x.shape(1);
  d.I = x.shape(2);
  d.H = w_hh.shape(1);
  d.G = 4 * d.H;
  if (d.H < 1) throw py::value_error("w_hh must have shape (4*H, H) with H >= 1, got " + shape_str(w_hh));
  need_shape(w_hh, "w_hh", {d.G, d.H});
  need_ndim(w_ih, "w_ih", 2);
  if (w_ih.shape(0) != d.G || w_ih.shape(1) != d.I)
    throw py::value_error("w_ih must have shape (4*H, I) = (" + std::to_string(d.G) + ", " + std::to_string(d.I) +
                          ") with I from x " + shape_str(x) + " and H from w_hh " + shape_str(w_hh) + ", got " +
                          shape_str(w_ih));
  if (d.B < 1 || d.T < 1 || d.I < 1)
    throw py::value_error("x must have shape (B, T, I) with B, T, I >= 1, got " + shape_str(x));
  return d;
}

template <typename T>
const T* cp(const py::array& a, bool has) {
  return has ? static_cast<const T*>(a.data()) : nullptr;
}
template <typename T>
T* mp(py::array& a, bool has) {
  return has ? static_cast<T*>(a.mutable_data()) : nullptr;
}

void py_lstm_forward(py::handle y_, py::handle gates_, py::handle cell_, py::handle x_, py::handle w_ih_,
                     py::handle w_hh_, py::handle b_ih_, py::handle b_hh_, py::handle h0_, py::handle c0_,
                     bool naive) {
  py::array x = kernel_array(x_, "x"), w_ih = kernel_array(w_ih_, "w_ih"), w_hh = kernel_array(w_hh_, "w_hh");
  py::array b_ih = kernel_array(b_ih_, "b_ih"), b_hh = kernel_array(b_hh_, "b_hh");
  py::array y = kernel_array(y_, "y"), gates = kernel_array(gates_, "gates"), cell = kernel_array(cell_, "cell");
  py::array h0, c0;
  const bool has_h0 = opt_array(h0_, "h0", h0), has_c0 = opt_array(c0_, "c0", c0);
  std::vector<Named> ins = {{x, "x"}, {w_ih, "w_ih"}, {w_hh, "w_hh"}, {b_ih, "b_ih"}, {b_hh, "b_hh"}};
  if (has_h0) ins.push_back({h0, "h0"});
  if (has_c0) ins.push_back({c0, "c0"});
  std::vector<Named> outs = {{y, "y"}, {gates, "gates"}, {cell, "cell"}};
  for (const auto& a : ins) same_dtype(x, "x", a.first, a.second);
  for (const auto& a : outs) same_dtype(x, "x", a.first, a.second);
  const Dims d = lstm_dims(x, w_ih, w_hh);
  need_shape(b_ih, "b_ih", {d.G});
  need_shape(b_hh, "b_hh", {d.G});
  if (has_h0) need_shape(h0, "h0", {d.B, d.H});
  if (has_c0) need_shape(c0, "c0", {d.B, d.H});
  need_shape(y, "y", {d.B, d.T, d.H});
  need_shape(gates, "gates", {d.B, d.T, d.G});
  need_shape(cell, "cell", {d.B, d.T, d.H});
  check_outputs(outs, ins);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T *yp = mp<T>(y, true), *gp = mp<T>(gates, true), *cp_ = mp<T>(cell, true);
    const T *xp = cp<T>(x, true), *wi = cp<T>(w_ih, true), *wh = cp<T>(w_hh, true), *bi = cp<T>(b_ih, true),
            *bh = cp<T>(b_hh, true), *h0p = cp<T>(h0, has_h0), *c0p = cp<T>(c0, has_c0);
    py::gil_scoped_release nogil;
    lstm_forward<T>(yp, gp, cp_, xp, wi, wh, bi, bh, h0p, c0p, d.B, d.T, d.I, d.H, naive);
  };
  if (dtype_of(x) == DType::F32) run(float{}); else run(double{});
}

void py_lstm_backward(py::handle dx_, py::handle dh0_, py::handle dc0_, py::handle dw_ih_, py::handle dw_hh_,
                      py::handle db_ih_, py::handle db_hh_, py::handle dy_, py::handle dh_, py::handle dc_,
                      py::handle x_, py::handle w_ih_, py::handle w_hh_, py::handle h0_, py::handle c0_,
                      py::handle y_, py::handle gates_, py::handle cell_, bool naive) {
  py::array x = kernel_array(x_, "x"), w_ih = kernel_array(w_ih_, "w_ih"), w_hh = kernel_array(w_hh_, "w_hh");
  py::array y = kernel_array(y_, "y"), gates = kernel_array(gates_, "gates"), cell = kernel_array(cell_, "cell");
  py::array dh0 = kernel_array(dh0_, "dh0"), dc0 = kernel_array(dc0_, "dc0");
  py::array dw_ih = kernel_array(dw_ih_, "dw_ih"), dw_hh = kernel_array(dw_hh_, "dw_hh");
  py::array db_ih = kernel_array(db_ih_, "db_ih"), db_hh = kernel_array(db_hh_, "db_hh");
  py::array dx, dy, dh, dc, h0, c0;
  const bool has_dx = opt_array(dx_, "dx", dx), has_dy = opt_array(dy_, "dy", dy), has_dh = opt_array(dh_, "dh", dh),
             has_dc = opt_array(dc_, "dc", dc), has_h0 = opt_array(h0_, "h0", h0), has_c0 = opt_array(c0_, "c0", c0);
  std::vector<Named> ins = {{x, "x"}, {w_ih, "w_ih"}, {w_hh, "w_hh"}, {y, "y"}, {gates, "gates"}, {cell, "cell"}};
  if (has_dy) ins.push_back({dy, "dy"});
  if (has_dh) ins.push_back({dh, "dh"});
  if (has_dc) ins.push_back({dc, "dc"});
  if (has_h0) ins.push_back({h0, "h0"});
  if (has_c0) ins.push_back({c0, "c0"});
  std::vector<Named> outs = {{dh0, "dh0"}, {dc0, "dc0"}, {dw_ih, "dw_ih"}, {dw_hh, "dw_hh"}, {db_ih, "db_ih"},
                             {db_hh, "db_hh"}};
  if (has_dx) outs.push_back({dx, "dx"});
  for (const auto& a : ins) same_dtype(x, "x", a.first, a.second);
  for (const auto& a : outs) same_dtype(x, "x", a.first, a.second);
  const Dims d = lstm_dims(x, w_ih, w_hh);
  need_shape(y, "y", {d.B, d.T, d.H});
  need_shape(gates, "gates", {d.B, d.T, d.G});
  need_shape(cell, "cell", {d.B, d.T, d.H});
  if (has_dy) need_shape(dy, "dy", {d.B, d.T, d.H});
  if (has_dh) need_shape(dh, "dh", {d.B, d.H});
  if (has_dc) need_shape(dc, "dc", {d.B, d.H});
  if (has_h0) need_shape(h0, "h0", {d.B, d.H});
  if (has_c0) need_shape(c0, "c0", {d.B, d.H});
  if (has_dx) need_shape(dx, "dx", {d.B, d.T, d.I});
  need_shape(dh0, "dh0", {d.B, d.H});
  need_shape(dc0, "dc0", {d.B, d.H});
  need_shape(dw_ih, "dw_ih", {d.G, d.I});
  need_shape(dw_hh, "dw_hh", {d.G, d.H});
  need_shape(db_ih, "db_ih", {d.G});
  need_shape(db_hh, "db_hh", {d.G});
  check_outputs(outs, ins);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T *dxp = mp<T>(dx, has_dx), *dh0p = mp<T>(dh0, true), *dc0p = mp<T>(dc0, true), *dwi = mp<T>(dw_ih, true),
      *dwh = mp<T>(dw_hh, true), *dbi = mp<T>(db_ih, true), *dbh = mp<T>(db_hh, true);
    const T *dyp = cp<T>(dy, has_dy), *dhp = cp<T>(dh, has_dh), *dcp = cp<T>(dc, has_dc), *xp = cp<T>(x, true),
            *wi = cp<T>(w_ih, true), *wh = cp<T>(w_hh, true), *h0p = cp<T>(h0, has_h0), *c0p = cp<T>(c0, has_c0),
            *yp = cp<T>(y, true), *gp = cp<T>(gates, true), *clp = cp<T>(cell, true);
    py::gil_scoped_release nogil;
    lstm_backward<T>(dxp, dh0p, dc0p, dwi, dwh, dbi, dbh, dyp, dhp, dcp, xp, wi, wh, h0p, c0p, yp, gp, clp, d.B, d.T,
                     d.I, d.H, naive);
  };
  if (dtype_of(x) == DType::F32) run(float{}); else run(double{});
}

}  // namespace

void register_lstm(pybind11::module_& m) {
  namespace py = pybind11;
  m.def("lstm_forward", &py_lstm_forward, py::arg("y"), py::arg("gates"), py::arg("cell"), py::arg("x"),
        py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"), py::arg("b_hh"), py::arg("h0").none(true),
        py::arg("c0").none(true), py::arg("naive") = false,
        "LSTM layer forward over x (B,T,I): writes y (B,T,H), gates (B,T,4H) (activated i,f,g,o) and cell "
        "(B,T,H); h0/c0 (B,H) or None (zeros)");
  m.def("lstm_backward", &py_lstm_backward, py::arg("dx").none(true), py::arg("dh0"), py::arg("dc0"),
        py::arg("dw_ih"), py::arg("dw_hh"), py::arg("db_ih"), py::arg("db_hh"), py::arg("dy").none(true),
        py::arg("dh").none(true), py::arg("dc").none(true), py::arg("x"), py::arg("w_ih"), py::arg("w_hh"),
        py::arg("h0").none(true), py::arg("c0").none(true), py::arg("y"), py::arg("gates"), py::arg("cell"),
        py::arg("naive") = false,
        "LSTM layer backward: dx (B,T,I) (None skips), dh0, dc0 (B,H) overwritten; dw_ih, dw_hh, db_ih, db_hh "
        "accumulated (+=); dy (B,T,H), dh, dc (B,H) may be None");
  m.def("lstm_isa", &nd::lstm_isa, "'avx2' or 'generic': the LSTM step kernels used on this CPU");
}

}  // namespace nd
