// Shared helpers for the C++ kernels: argument checks, index type, thread count.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace nd {

using index_t = std::int64_t;

// A number for an error message, as printf's %.<precision>g writes it. The core formats with snprintf /
// std::to_string only, never iostreams: a module built by a GCC 13 toolchain and run against another
// libstdc++ crashed inside std::ostringstream (seen on the device machine, bench/RESULTS.md "CPU check on
// an AVX-512 machine"), and tests/test_kernels.py keeps <sstream> / <iostream> out of csrc/.
inline std::string fmt_double(double v, int precision = 6) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.*g", precision, v);
  return buf;
}

// ND_CHECK(cond, msg): throws std::invalid_argument (ValueError in Python) when cond is false.
#define ND_CHECK(cond, msg)                                   \
  do {                                                        \
    if (!(cond)) throw std::invalid_argument(std::string(msg)); \
  } while (0)

// Threads used by every parallel kernel. Set from Python with neurodivergent.set_num_threads()
// or the ND_NUM_THREADS environment variable; defaults to all cores. Kept per process (not per
// OpenMP thread) so that kernels called from any Python thread use the same count.
int num_threads();
void set_num_threads(int n);
int hardware_threads();

// Split [0, n) into `parts` contiguous chunks; chunk p is [begin, end). Deterministic, so a fixed
// thread count gives bitwise repeatable results.
inline void split_range(index_t n, int parts, int p, index_t& begin, index_t& end) {
  index_t q = n / parts, r = n % parts;
  begin = p * q + (p < r ? p : r);
  end = begin + q + (p < r ? 1 : 0);
}

// An integer tuning switch from the environment, read per call (the kernels' A/B knobs, e.g. ND_LSTM_FWD_*,
// ND_GRU_*; bench/*_cpu_time.py --variants): dflt when unset or empty.
inline index_t env_index(const char* name, index_t dflt) {
  const char* v = std::getenv(name);
  if (!v || !*v) return dflt;
  return index_t(std::atoll(v));
}

}  // namespace nd
