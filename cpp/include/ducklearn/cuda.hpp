#pragma once
/**
 * Device entry points (CUDA). Pointers are device pointers; `stream` is a cudaStream_t passed
 * as an integer (0 = the default stream). A build without CUDA keeps these functions and
 * throws ducklearn::CudaUnavailable from every one of them except compiled().
 */
#include <cstdint>

#include "ducklearn/export.hpp"
#include "ducklearn/kernels/activation.hpp"
#include "ducklearn/optim/optimizer.hpp"

namespace ducklearn::cuda {

/** True when the library was built with DUCKLEARN_ENABLE_CUDA=ON. */
DUCKLEARN_EXPORT bool compiled();

/** Number of visible CUDA devices (throws CudaUnavailable in a CPU-only build). */
DUCKLEARN_EXPORT int device_count();

/**
 * Y = act(X W^T + b) on the device, one fused kernel (tiled GEMM with the bias and
 * activation applied in the epilogue).
 * X: n × in, W: out × in, b: out or nullptr, Y: n × out; all row-major float32.
 */
DUCKLEARN_EXPORT void dense_forward(const float* X, int64_t n, int64_t in, const float* W,
                                    const float* b, int64_t out, float* Y, Activation act,
                                    float alpha, uintptr_t stream);

/**
 * One optimizer step on the device with the same update rules as ducklearn::Optimizer:
 * step t (0-based) of config, params and grads of n floats, state of config.slots() × n
 * floats (slot-major, zero-initialized by the caller before the first step; AdaGrad's
 * slot starts at initial_accumulator). Clipping by global norm is computed on the device.
 */
DUCKLEARN_EXPORT void optimizer_step(const OptimizerConfig& config, int64_t t, float* params,
                                     const float* grads, float* state, int64_t n,
                                     uintptr_t stream);

}  // namespace ducklearn::cuda
