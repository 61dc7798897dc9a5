#!/usr/bin/env bash
# Proves the installed C++ SDK works for a host project: for each BLAS mode, configure the
# core standalone (no Python), install it into a temporary prefix, move that prefix (the
# package must be relocatable), then configure, build and run tests/cpp/consumer against it
# through CMAKE_PREFIX_PATH. When a Python with ducklearn installed is available
# ($DUCKLEARN_PYTHON, default python3), it first writes model files and reference
# predictions (consumer/make_reference.py) that the consumer must reproduce in C++;
# DUCKLEARN_REQUIRE_MODEL_FILES=1 makes a missing Python an error instead of a skip.
#
#   tests/cpp/run_consumer.sh               # BLAS modes "auto" (system BLAS if found) and "none"
#   tests/cpp/run_consumer.sh system        # only the given modes
#   CMAKE=/usr/bin/cmake tests/cpp/run_consumer.sh
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cmake="${CMAKE:-cmake}"
jobs="$(nproc 2>/dev/null || echo 2)"
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi

modes=("$@")
if [ ${#modes[@]} -eq 0 ]; then modes=(auto none); fi

work="$(mktemp -d "${TMPDIR:-/tmp}/ducklearn-consumer.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Model files saved from Python, checked in C++ by every consumer build below.
python="${DUCKLEARN_PYTHON:-python3}"
model_args=()
if "$python" -c "import ducklearn.modelfile, safetensors" >/dev/null 2>&1; then
  "$python" "$repo/tests/cpp/consumer/make_reference.py" "$work/model-files"
  for ref in "$work"/model-files/*.reference.safetensors; do
    model_args+=("${ref%.reference.safetensors}.safetensors" "$ref")
  done
elif [ "${DUCKLEARN_REQUIRE_MODEL_FILES:-0}" = "1" ]; then
  echo "error: DUCKLEARN_REQUIRE_MODEL_FILES=1 but '$python' cannot import ducklearn" >&2
  exit 1
else
  echo "== consumer: no Python with ducklearn ($python); skipping the model-file check"
fi

for blas in "${modes[@]}"; do
  echo "== consumer: DUCKLEARN_BLAS=${blas}"
  dir="$work/$blas"
  "$cmake" -S "$repo" -B "$dir/sdk-build" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=Release \
    -DDUCKLEARN_BUILD_PYTHON=OFF -DDUCKLEARN_BUILD_TESTS=OFF -DDUCKLEARN_INSTALL=ON \
    -DDUCKLEARN_BLAS="$blas" -DCMAKE_INSTALL_PREFIX="$dir/staging"
  "$cmake" --build "$dir/sdk-build" -j "$jobs"
  "$cmake" --install "$dir/sdk-build" --component sdk

  # Nothing in the package may point back at the build tree or the install path it was
  # configured with.
  mv "$dir/staging" "$dir/prefix"
  if grep -rIl -e "$dir/staging" -e "$dir/sdk-build" -e "$repo" "$dir/prefix"; then
    echo "error: the installed package above refers to build or source paths" >&2
    exit 1
  fi

  "$cmake" -S "$repo/tests/cpp/consumer" -B "$dir/consumer-build" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$dir/prefix"
  "$cmake" --build "$dir/consumer-build" -j "$jobs"
  "$dir/consumer-build/consumer" "${model_args[@]}"
done
echo "== consumer: OK (${modes[*]})"
