// compiled() for every build; in a CPU-only build also the other device entry points, which
// explain how to get them (a CUDA build defines those in cuda/*.cu). python/ducklearn/cuda.py
// repeats the message so it can raise before touching CuPy; a test keeps the two equal.
#include "ducklearn/config.hpp"
#include "ducklearn/cuda.hpp"
#include "ducklearn/error.hpp"

namespace ducklearn::cuda {

bool compiled() { return DUCKLEARN_HAS_CUDA != 0; }

#if !DUCKLEARN_HAS_CUDA
namespace {
[[noreturn]] void unavailable() {
  throw CudaUnavailable(
      "ducklearn was built without CUDA; rebuild with -DDUCKLEARN_ENABLE_CUDA=ON "
      "(pip install . -Ccmake.define.DUCKLEARN_ENABLE_CUDA=ON) on a machine with nvcc");
}
}  // namespace

int device_count() { unavailable(); }
void dense_forward(const float*, int64_t, int64_t, const float*, const float*, int64_t, float*,
                   Activation, float, uintptr_t) {
  unavailable();
}
void optimizer_step(const OptimizerConfig&, int64_t, float*, const float*, float*, int64_t,
                    uintptr_t) {
  unavailable();
}
#endif

}  // namespace ducklearn::cuda
