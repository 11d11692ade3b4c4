// Fully connected layer, PyTorch layout: y = x @ w^T + b.
// Dimensions: N rows (batch * steps), I input features, O output features.
//   x (N,I)  w (O,I)  b (O,)  y (N,O)
// One GEMM per product; the bias is a separate vectorised pass so that any GEMM (naive or packed) works.
#include <vector>

#include "gemm.h"
#include "kernels.h"

namespace nd {

namespace {

// y[n,:] += b for every row. Rows split across threads when large.
template <typename T>
void add_bias_rows(T* y,        // (N,O)
                   const T* b,  // (O,)
                   index_t N, index_t O) {
  detail::parallel_ranges(N, std::max<index_t>(1, (index_t(1) << 16) / std::max<index_t>(O, 1)),
                          [&](index_t n0, index_t n1) {
                            for (index_t n = n0; n < n1; ++n) {
                              T* row = y + n * O;
                              for (index_t o = 0; o < O; ++o) row[o] += b[o];
                            }
                          });
}

// db[o] += sum_n dy[n,o], accumulated in double per column; columns split across threads, each
// column summed in row order (deterministic for any thread count).
template <typename T>
void bias_grad(T* db,        // (O,)
               const T* dy,  // (N,O)
               index_t N, index_t O) {
  constexpr index_t kCols = 256;  // column block: the double accumulators stay in L1
  index_t nblocks = (O + kCols - 1) / kCols;
  auto block = [&](index_t ob) {
    index_t o0 = ob * kCols, o1 = std::min(O, o0 + kCols);
    double acc[kCols];
    for (index_t o = o0; o < o1; ++o) acc[o - o0] = 0.0;
    for (index_t n = 0; n < N; ++n) {
      const T* row = dy + n * O;
      for (index_t o = o0; o < o1; ++o) acc[o - o0] += static_cast<double>(row[o]);
    }
    for (index_t o = o0; o < o1; ++o) db[o] = static_cast<T>(static_cast<double>(db[o]) + acc[o - o0]);
  };
#ifdef ND_OPENMP
  int nt = num_threads();
  if (nt > 1 && nblocks > 1 && N * O >= (index_t(1) << 16)) {
    int parts = static_cast<int>(std::min<index_t>(nt, nblocks));
#pragma omp parallel for schedule(static) num_threads(parts)
    for (index_t ob = 0; ob < nblocks; ++ob) block(ob);
    return;
  }
#endif
  for (index_t ob = 0; ob < nblocks; ++ob) block(ob);
}

}  // namespace

template <typename T>
void linear_forward(T* y,         // (N,O)
                    const T* x,   // (N,I)
                    const T* w,   // (O,I)
                    const T* b,   // (O,) or nullptr
                    index_t N, index_t I, index_t O) {
  ND_CHECK(N >= 0 && I >= 0 && O >= 0, "linear_forward: negative size");
  if (N == 0 || O == 0) return;
  if (I == 0) {
    for (index_t k = 0; k < N * O; ++k) y[k] = T(0);
  } else {
    // y (N,O) = x (N,I) @ w^T (I,O)
    gemm<T>(false, true, N, O, I, T(1), x, I, w, I, T(0), y, O);
  }
  if (b) add_bias_rows(y, b, N, O);
}

template <typename T>
void linear_backward(T* dx,        // (N,I) or nullptr
                     T* dw,        // (O,I)
                     T* db,        // (O,) or nullptr
                     const T* dy,  // (N,O)
                     const T* x,   // (N,I)
                     const T* w,   // (O,I)
                     index_t N, index_t I, index_t O) {
  ND_CHECK(N >= 0 && I >= 0 && O >= 0, "linear_backward: negative size");
  if (dx && N > 0 && I > 0) {
    if (O == 0) {
      for (index_t k = 0; k < N * I; ++k) dx[k] = T(0);
    } else {
      // dx (N,I) = dy (N,O) @ w (O,I)
      gemm<T>(false, false, N, I, O, T(1), dy, O, w, I, T(0), dx, I);
    }
  }
  if (N > 0 && O > 0 && I > 0) {
    // dw (O,I) += dy^T (O,N) @ x (N,I); dy is stored (N,O), so op(A) = A^T with lda = O
    gemm<T>(true, false, O, I, N, T(1), dy, O, x, I, T(1), dw, I);
  }
  if (db && N > 0 && O > 0) bias_grad(db, dy, N, O);
}

template void linear_forward<float>(float*, const float*, const float*, const float*, index_t, index_t, index_t);
template void linear_forward<double>(double*, const double*, const double*, const double*, index_t, index_t, index_t);
template void linear_backward<float>(float*, float*, float*, const float*, const float*, const float*, index_t,
                                     index_t, index_t);
template void linear_backward<double>(double*, double*, double*, const double*, const double*, const double*,
                                      index_t, index_t, index_t);

}  // namespace nd
