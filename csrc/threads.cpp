#include <atomic>
#include <cstdlib>
#include <thread>

#include "common.h"
#ifdef ND_OPENMP
#include <omp.h>
#endif

namespace nd {
namespace {
int initial_threads() {
  if (const char* s = std::getenv("ND_NUM_THREADS")) {
    char* end = nullptr;
    long v = std::strtol(s, &end, 10);
    if (end != s && v > 0 && v <= 1024) return static_cast<int>(v);
  }
  return hardware_threads();
}
std::atomic<int> g_threads{0};
}  // namespace

int hardware_threads() {
#ifdef ND_OPENMP
  int n = omp_get_num_procs();
#else
  int n = static_cast<int>(std::thread::hardware_concurrency());
#endif
  return n > 0 ? n : 1;
}

int num_threads() {
  int n = g_threads.load(std::memory_order_relaxed);
  if (n == 0) {
    n = initial_threads();
    g_threads.store(n, std::memory_order_relaxed);
  }
  return n;
}

void set_num_threads(int n) {
  ND_CHECK(n >= 1 && n <= 1024, "num_threads must be between 1 and 1024, got " + std::to_string(n));
  g_threads.store(n, std::memory_order_relaxed);
}

}  // namespace nd
