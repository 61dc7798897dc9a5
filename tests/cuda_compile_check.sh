#!/usr/bin/env bash
# Proves the CUDA part compiles and links, on any machine with nvcc (no GPU needed):
# configure the C++ core with DUCKLEARN_ENABLE_CUDA=ON in a temporary directory (device-code
# warnings are errors), build and install it, then build and run a tiny host program that
# links every device entry point through find_package(ducklearn), so a missing definition or
# runtime library fails here rather than in a user's link.
#
# Exits 0 with "skipped: no nvcc" when no CUDA compiler is found (set CUDACXX to pick one).
# Extra arguments go to the configure step, e.g. -DCMAKE_CUDA_ARCHITECTURES=90.
#
#   tests/cuda_compile_check.sh
#   CUDACXX=/usr/local/cuda-13.0/bin/nvcc tests/cuda_compile_check.sh -DDUCKLEARN_BLAS=none
set -euo pipefail

nvcc="${CUDACXX:-$(command -v nvcc || true)}"
if [ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ]; then nvcc=/usr/local/cuda/bin/nvcc; fi
if [ -z "$nvcc" ]; then
  echo "cuda_compile_check: skipped: no nvcc (put it on PATH or set CUDACXX)"
  exit 0
fi

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cmake="${CMAKE:-cmake}"
jobs="$(nproc 2>/dev/null || echo 2)"
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi

work="$(mktemp -d "${TMPDIR:-/tmp}/ducklearn-cuda-check.XXXXXX")"
trap 'rm -rf "$work"' EXIT
trap 'echo "cuda_compile_check: FAILED (see the output above)" >&2' ERR

echo "== cuda_compile_check: $("$nvcc" --version | tail -n 1)"
"$cmake" -S "$repo" -B "$work/build" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER="$nvcc" \
  -DCMAKE_CUDA_FLAGS="-Werror=all-warnings" \
  -DDUCKLEARN_ENABLE_CUDA=ON -DDUCKLEARN_BUILD_PYTHON=OFF -DDUCKLEARN_BUILD_TESTS=OFF \
  -DDUCKLEARN_INSTALL=ON -DCMAKE_INSTALL_PREFIX="$work/prefix" "$@"
"$cmake" --build "$work/build" -j "$jobs"
"$cmake" --install "$work/build" --component sdk

mkdir -p "$work/host"
cat >"$work/host/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.21)
project(ducklearn_cuda_host LANGUAGES CXX)
find_package(ducklearn CONFIG REQUIRED)
if(NOT ducklearn_HAS_CUDA)
  message(FATAL_ERROR "the installed ducklearn package says it was built without CUDA")
endif()
add_executable(host main.cpp)
target_link_libraries(host PRIVATE ducklearn::core)
EOF
cat >"$work/host/main.cpp" <<'EOF'
// Calls every device entry point so that the linker must resolve them all; without a GPU
// the calls report "no device" instead of crashing.
#include <cstdio>
#include <exception>

#include "ducklearn/cuda.hpp"
#include "ducklearn/error.hpp"

int main() {
  namespace dc = ducklearn::cuda;
  if (!dc::compiled()) {
    std::fprintf(stderr, "ducklearn::cuda::compiled() is false in a CUDA build\n");
    return 1;
  }
  const int devices = dc::device_count();
  std::printf("device_count() = %d\n", devices);
  if (devices > 0) return 0;  // a real device: the Python GPU tests exercise the kernels
  int refused = 0;
  float host[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  try {
    dc::dense_forward(host, 1, 1, host + 1, nullptr, 1, host + 2, ducklearn::Activation::ReLU,
                      0.01f, 0);
  } catch (const ducklearn::CudaUnavailable& e) {
    std::printf("dense_forward without a device: %s\n", e.what());
    ++refused;
  }
  try {
    ducklearn::OptimizerConfig config;
    dc::optimizer_step(config, 0, host, host + 1, nullptr, 1, 0);
  } catch (const ducklearn::CudaUnavailable& e) {
    std::printf("optimizer_step without a device: %s\n", e.what());
    ++refused;
  }
  return refused == 2 ? 0 : 1;
}
EOF
"$cmake" -S "$work/host" -B "$work/host-build" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$work/prefix"
"$cmake" --build "$work/host-build" -j "$jobs"
"$work/host-build/host"
echo "== cuda_compile_check: OK"
