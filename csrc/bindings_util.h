// Argument validation for the Python bindings (included by bindings.cpp only).
// Every array that reaches a kernel has been checked here: ndarray, float32/float64, C-contiguous,
// expected rank and shape, writable when it is an output, not overlapping the inputs it must not alias.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "common.h"

namespace nd {
namespace py = pybind11;

enum class DType { F32, F64 };

inline std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  if (a.ndim() == 1) s += ",";
  return s + ")";
}

// The object must be a float32 or float64, C-contiguous numpy array.
inline py::array float_array(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy.ndarray, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  py::array a = py::reinterpret_borrow<py::array>(obj);
  py::dtype dt = a.dtype();
  if (!(dt.is(py::dtype::of<float>()) || dt.is(py::dtype::of<double>())) &&
      !(dt.kind() == 'f' && (dt.itemsize() == 4 || dt.itemsize() == 8) && dt.byteorder() != '>'))
    throw py::type_error(std::string(name) + " must have dtype float32 or float64, got " +
                         std::string(py::str(dt)));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous (use numpy.ascontiguousarray)");
  return a;
}

inline DType dtype_of(const py::array& a) {
  return a.dtype().itemsize() == 4 ? DType::F32 : DType::F64;
}

inline const char* dtype_name(DType d) { return d == DType::F32 ? "float32" : "float64"; }

inline void same_dtype(const py::array& a, const char* an, const py::array& b, const char* bn) {
  if (dtype_of(a) != dtype_of(b))
    throw py::type_error(std::string(bn) + " has dtype " + dtype_name(dtype_of(b)) + " but " + an +
                         " has dtype " + dtype_name(dtype_of(a)) + "; all arrays must share one dtype");
}

inline void need_ndim(const py::array& a, const char* name, py::ssize_t nd) {
  if (a.ndim() != nd)
    throw py::value_error(std::string(name) + " must be " + std::to_string(nd) + "-D, got shape " +
                          shape_str(a));
}

// Expect an exact shape; -1 leaves a dimension free.
inline void need_shape(const py::array& a, const char* name, std::initializer_list<py::ssize_t> dims) {
  bool ok = a.ndim() == static_cast<py::ssize_t>(dims.size());
  py::ssize_t i = 0;
  for (auto d : dims) {
    if (ok && d >= 0 && a.shape(i) != d) ok = false;
    ++i;
  }
  if (ok) return;
  std::string want = "(";
  i = 0;
  for (auto d : dims) want += (i++ ? ", " : "") + (d >= 0 ? std::to_string(d) : std::string("*"));
  if (dims.size() == 1) want += ",";
  throw py::value_error(std::string(name) + " must have shape " + want + "), got " + shape_str(a));
}

inline void need_writable(const py::array& a, const char* name) {
  if (!a.writeable()) throw py::value_error(std::string(name) + " is read-only; an output must be writable");
}

inline std::pair<std::uintptr_t, std::uintptr_t> byte_range(const py::array& a) {
  auto p = reinterpret_cast<std::uintptr_t>(a.data());
  return {p, p + static_cast<std::uintptr_t>(a.nbytes())};
}

inline void no_overlap(const py::array& out, const char* on, const py::array& in, const char* in_name) {
  if (out.nbytes() == 0 || in.nbytes() == 0) return;
  auto [a0, a1] = byte_range(out);
  auto [b0, b1] = byte_range(in);
  if (a0 < b1 && b0 < a1)
    throw py::value_error(std::string(on) + " overlaps " + in_name + " in memory; pass a separate output array");
}

inline bool is_none(const py::handle& h) { return h.is_none(); }

// ---------------------------------------------------------------- helpers added with the linear /
// activation / loss / optimizer bindings

// float_array plus element alignment (an unaligned numpy view, e.g. from frombuffer at an odd
// offset, would break the vectorised loops' assumptions).
inline py::array kernel_array(const py::handle& obj, const char* name) {
  py::array a = float_array(obj, name);
  if (reinterpret_cast<std::uintptr_t>(a.data()) % static_cast<std::uintptr_t>(a.itemsize()) != 0)
    throw py::value_error(std::string(name) + " is not aligned to its element size; pass a copy (numpy.array(" +
                          name + "))");
  return a;
}

// b must have exactly a's shape.
inline void same_shape(const py::array& ref, const char* refn, const py::array& b, const char* bn) {
  bool ok = ref.ndim() == b.ndim();
  for (py::ssize_t i = 0; ok && i < ref.ndim(); ++i) ok = ref.shape(i) == b.shape(i);
  if (!ok)
    throw py::value_error(std::string(bn) + " must have the same shape as " + refn + " " + shape_str(ref) +
                          ", got " + shape_str(b));
}

// out may be exactly in (same buffer: in-place elementwise op) but must not partially overlap it.
inline void same_or_disjoint(const py::array& out, const char* on, const py::array& in, const char* in_name) {
  if (out.data() == in.data() && out.nbytes() == in.nbytes()) return;
  no_overlap(out, on, in, in_name);
}

// kind must be a str from `valid`; returns its index. ValueError lists the valid ones.
inline std::size_t kind_index(const py::handle& kind, const char* name, std::initializer_list<const char*> valid) {
  if (!py::isinstance<py::str>(kind))
    throw py::type_error(std::string(name) + " must be a str, got " +
                         std::string(py::str(py::type::of(kind).attr("__name__"))));
  std::string k = kind.cast<std::string>();
  std::size_t i = 0;
  std::string list;
  for (const char* v : valid) {
    if (k == v) return i;
    list += (i ? ", " : "");
    list += "'" + std::string(v) + "'";
    ++i;
  }
  throw py::value_error("unknown " + std::string(name) + " '" + k + "'; valid: " + list);
}

// A Python int or numpy integer (not bool) -> long long, with a message naming the argument.
inline long long int_arg(const py::handle& h, const char* name) {
  if (py::isinstance<py::bool_>(h) || !PyIndex_Check(h.ptr()))
    throw py::type_error(std::string(name) + " must be an int, got " +
                         std::string(py::str(py::type::of(h).attr("__name__"))));
  int overflow = 0;
  py::object idx = py::reinterpret_steal<py::object>(PyNumber_Index(h.ptr()));
  if (!idx) throw py::error_already_set();
  long long v = PyLong_AsLongLongAndOverflow(idx.ptr(), &overflow);
  if (overflow) throw py::value_error(std::string(name) + " is out of range");
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  return v;
}

// A real number (int/float/numpy scalar, not bool) -> double, with a message naming the argument.
inline double float_arg(const py::handle& h, const char* name) {
  if (py::isinstance<py::bool_>(h) || py::isinstance<py::str>(h) || !PyNumber_Check(h.ptr()))
    throw py::type_error(std::string(name) + " must be a real number, got " +
                         std::string(py::str(py::type::of(h).attr("__name__"))));
  double v = PyFloat_AsDouble(h.ptr());
  if (v == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    throw py::type_error(std::string(name) + " must be a real number, got " +
                         std::string(py::str(py::type::of(h).attr("__name__"))));
  }
  return v;
}

}  // namespace nd
