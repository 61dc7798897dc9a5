#pragma once
// Shared by the .cu files: CUDA status → typed C++ errors, stream handles, launch shapes.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "ducklearn/error.hpp"

namespace ducklearn::cuda::detail {

/**
 * True for the statuses that mean "no usable GPU here" rather than a bug: the caller gets
 * CudaUnavailable (Python: CudaUnavailableError), the same type a CPU-only build raises.
 */
inline bool means_no_device(cudaError_t err) {
  return err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver ||
         err == cudaErrorSystemDriverMismatch;
}

[[noreturn]] inline void throw_cuda(cudaError_t err, const char* expr, const char* file,
                                    int line) {
  // Clears the per-thread last error so that one failure is not reported again by the next
  // unrelated check; sticky (context-corrupting) errors stay sticky regardless.
  (void)cudaGetLastError();
  std::string msg = std::string(expr) + " failed: " + cudaGetErrorName(err) + " (" +
                    cudaGetErrorString(err) + ")";
  if (means_no_device(err)) {
    throw CudaUnavailable("no usable CUDA device: " + msg + " at " + file + ":" +
                          std::to_string(line));
  }
  throw Error("CUDA error: " + msg, file, line);
}

/** The cudaStream_t behind the integer handle of the public API (0 = default stream). */
inline cudaStream_t as_stream(uintptr_t handle) { return reinterpret_cast<cudaStream_t>(handle); }

/** Threads per block of the element-wise kernels: a multiple of the warp size that keeps
 *  enough blocks resident per SM on every architecture we build for. */
constexpr int kBlock = 256;

/**
 * Blocks for a grid-stride loop over n elements: enough to cover n once, capped so that huge
 * arrays reuse threads instead of launching millions of short-lived blocks (the cap still
 * fills any current GPU many times over).
 */
inline unsigned int grid_for(int64_t n, int block = kBlock, int64_t max_blocks = 8192) {
  int64_t blocks = (n + block - 1) / block;
  if (blocks < 1) blocks = 1;
  if (blocks > max_blocks) blocks = max_blocks;
  return static_cast<unsigned int>(blocks);
}

/** ceil(a / b) for positive sizes. */
inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/** True when [a, a + na) and [b, b + nb) share a byte (sizes in floats). */
inline bool overlaps(const float* a, int64_t na, const float* b, int64_t nb) {
  const auto pa = reinterpret_cast<uintptr_t>(a);
  const auto pb = reinterpret_cast<uintptr_t>(b);
  return pa < pb + static_cast<uintptr_t>(nb) * sizeof(float) &&
         pb < pa + static_cast<uintptr_t>(na) * sizeof(float);
}

}  // namespace ducklearn::cuda::detail

/** Evaluates a CUDA runtime call; any status but cudaSuccess throws (see throw_cuda). */
#define DUCKLEARN_CUDA_CHECK(expr)                                                     \
  do {                                                                                 \
    const cudaError_t dl_cuda_status_ = (expr);                                        \
    if (dl_cuda_status_ != cudaSuccess) {                                              \
      ::ducklearn::cuda::detail::throw_cuda(dl_cuda_status_, #expr, __FILE__, __LINE__); \
    }                                                                                  \
  } while (0)

/** Checks that the kernel launch just issued was accepted (bad config, no device, ...).
 *  Faults inside the kernel surface asynchronously at the caller's next synchronization. */
#define DUCKLEARN_CUDA_CHECK_LAUNCH()                                                   \
  do {                                                                                  \
    const cudaError_t dl_cuda_status_ = cudaGetLastError();                             \
    if (dl_cuda_status_ != cudaSuccess) {                                               \
      ::ducklearn::cuda::detail::throw_cuda(dl_cuda_status_, "kernel launch", __FILE__, \
                                            __LINE__);                                  \
    }                                                                                   \
  } while (0)
