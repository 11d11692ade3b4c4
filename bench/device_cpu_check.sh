#!/usr/bin/env bash
# CPU check on the lent device machine (16 cores, AVX-512 x86-64, Python 3.12, numpy 2.5): the CPU kernels
# have only ever run on this project's AVX2-only VM, so the AVX-512 GEMM path, wide thread counts and a
# newer numpy are exercised only here. Builds _core with debug info, runs the kernel tests under
# faulthandler (a native crash is reported with a C-level backtrace via cuda-gdb, which also debugs
# host-only programs), then the whole suite in parallel. Logs go to $OUT (or bench/out when run by hand).
#   usage (device tool): bash bench/device_cpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench/out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH=python
exec > >(tee "$out/check.log") 2>&1

echo "== machine"; date -u; nproc; python3 --version
grep -m1 'model name' /proc/cpuinfo
grep -m1 -o 'avx512[a-z_]*' /proc/cpuinfo | sort -u | tr '\n' ' '; echo
python3 -c 'import numpy; print("numpy", numpy.__version__)'

echo "== build"
t0=$(date +%s)
cmake -S . -B build/device -G Ninja -DCMAKE_BUILD_TYPE=Release -DND_CUDA=OFF -DCMAKE_CXX_FLAGS=-g \
  -DPython_EXECUTABLE="$(command -v python3)" \
  -Dpybind11_DIR="$(python3 -c 'import pybind11; print(pybind11.get_cmake_dir())')" >"$out/cmake.log" 2>&1 \
  && cmake --build build/device -j 16 >>"$out/cmake.log" 2>&1 || { tail -40 "$out/cmake.log"; exit 1; }
cp build/device/_core*.so python/neurodivergent/
echo "built in $(( $(date +%s) - t0 )) s"
python3 -c 'from neurodivergent import _core; print("gemm isa", _core.gemm_isa(), "threads", _core.get_num_threads())'
echo "-- toolchain / runtime C++ library"
command -v g++; g++ --version | head -1
ldd python/neurodivergent/_core*.so | grep -E 'stdc|gomp|gcc_s' || true
python3 -c 'import neurodivergent._core, re; print(sorted({l.split()[-1] for l in open("/proc/self/maps") if re.search(r"libstdc|libgomp", l)}))'

echo "== minimal LSTM / GRU calls (each ISA, 1 and 16 threads)"
cat >/tmp/minimal.py <<'EOF'
import faulthandler, sys
faulthandler.enable()
import numpy as np
from neurodivergent import _core
import neurodivergent.nn.functional as F
rng = np.random.default_rng(0)
for isa in ("generic", "avx2", "avx512"):
    try:
        _core.gemm_force_isa(isa)
    except Exception as e:
        print(isa, "unavailable:", e); continue
    for nt in (1, 16):
        _core.set_num_threads(nt)
        for dt in (np.float32, np.float64):
            for (B, T, I, H) in [(1, 1, 1, 1), (32, 24, 1, 64), (256, 96, 8, 128), (7, 5, 300, 33)]:
                x = rng.standard_normal((B, T, I)).astype(dt)
                w_ih = (rng.standard_normal((4 * H, I)) * 0.1).astype(dt)
                w_hh = (rng.standard_normal((4 * H, H)) * 0.1).astype(dt)
                b = np.zeros(4 * H, dt)
                o = F.lstm_forward(x, w_ih, w_hh, b, b)
                g = F.lstm_backward(o.cache, np.ones_like(o.y))
                wg = (rng.standard_normal((3 * H, I)) * 0.1).astype(dt)
                wgh = (rng.standard_normal((3 * H, H)) * 0.1).astype(dt)
                bg = np.zeros(3 * H, dt)
                og = F.gru_forward(x, wg, wgh, bg, bg)
                gg = F.gru_backward(og.cache, np.ones_like(og.y))
                assert np.isfinite(g.dw_hh).all() and np.isfinite(gg.dw_hh).all()
        print(isa, nt, "threads ok", flush=True)
_core.gemm_force_isa("auto")
print("minimal ok")
EOF
if ! python3 -X faulthandler /tmp/minimal.py; then
  echo "== CRASH: native backtrace"
  timeout 120 cuda-gdb -batch -ex run -ex bt -ex 'info registers rip' --args python3 /tmp/minimal.py 2>&1 | tail -60
fi

echo "== kernel tests (faulthandler, stop at first failure)"
timeout 200 python3 -X faulthandler -m pytest -x -q -p no:cacheprovider tests/test_gemm.py tests/test_lstm.py \
  tests/test_gru.py tests/test_attention.py tests/test_kernels.py 2>&1 | tail -30

echo "== whole suite (16 workers)"
timeout 240 python3 -m pytest -q -p no:cacheprovider -n 16 >"$out/suite.log" 2>&1; tail -25 "$out/suite.log"
echo "== done $(date -u)"

# Optional (ND_DEVICE_BENCH=1): 1- and 2-thread kernel timings against the PyTorch installed there (not the
# 2.13 this project's bench targets use; a server CPU with AVX-512, where torch's oneDNN uses 512-bit
# kernels and ours are AVX2): a reading of where we stand on such a machine, not the issue's targets.
if [ "${ND_DEVICE_BENCH:-0}" = 1 ]; then
  python3 -c 'import torch; print("torch", torch.__version__)'
  echo "== rnn --quick, 1 and 2 threads"
  timeout 120 python3 bench/rnn.py --cell both --quick --threads 1 2 --no-mem --markdown --budget 0.2 --max-reps 5 \
    >"$out/rnn.md" 2>&1; tail -30 "$out/rnn.md"
  echo "== attention --quick, 1 and 2 threads"
  timeout 60 python3 bench/attention.py --quick --threads 1 2 --no-mem --markdown --budget 0.2 --max-reps 5 \
    >"$out/attention.md" 2>&1; tail -25 "$out/attention.md"
  echo "== bench done $(date -u)"
fi
