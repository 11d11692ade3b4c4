#!/usr/bin/env bash
# Developer build: compiles _core into BUILD_DIR (default build/dev) and places the module inside
# python/neurodivergent so that `PYTHONPATH=python pytest` uses the working tree.
# Extra arguments go to cmake, e.g. `tools/dev-build.sh build/fast -DCMAKE_INTERPROCEDURAL_OPTIMIZATION=OFF`
# (skips pybind11's link-time optimisation: a much faster relink while iterating on one kernel).
set -euo pipefail
cd "$(dirname "$0")/.."
bdir=${1:-build/dev}
cmake -S . -B "$bdir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DND_CUDA=OFF \
  -DPython_EXECUTABLE="$(command -v python3)" -Dpybind11_DIR="$(python3 -c 'import pybind11; print(pybind11.get_cmake_dir())')" "${@:2}" >/dev/null
cmake --build "$bdir" -j 2
so=$(ls "$bdir"/_core*.so)
cp "$so" "python/neurodivergent/.tmp_core.so" && mv -f "python/neurodivergent/.tmp_core.so" "python/neurodivergent/$(basename "$so")"
echo "built $(basename "$so")"
