// The Python module neurodivergent._core. Every function validates its arguments (bindings_util.h)
// and then runs the kernel with the GIL released. Outputs are passed in by the caller (so that
// workspaces can be reused); parameter gradients accumulate (+=), activation gradients overwrite (=).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "bindings_util.h"
#include "common.h"
#include "gemm.h"

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
}
