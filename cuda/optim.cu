// One optimizer step on device memory with the update rules of cpp/src/simd/kernels_impl.hpp
// and the per-step scalars of cpp/src/optim/optimizer.cpp (see ducklearn/cuda.hpp).
//
// CMake compiles this file with -fmad=false -ftz=true so that every element rounds exactly as
// in the portable (generic) CPU kernels: no FMA contraction, denormals flushed as under
// FlushDenormals. These loops are bound by memory traffic, so the unfused arithmetic is free.
//
// Clipping by global norm never waits for the host: the sum of squares is reduced into a
// stream-ordered scratch double, and the update kernel turns it into the scale itself.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>

#include "cuda_utils.cuh"
#include "ducklearn/cuda.hpp"
#include "ducklearn/error.hpp"

namespace ducklearn::cuda {
namespace {

/** Hyperparameters of one step, already resolved for step t on the host. */
struct DevStep {
  float lr;
  float l2;
  float keep;          ///< 1 - lr * weight_decay (decoupled decay)
  float momentum;
  float beta1;
  float beta2;
  float rho;
  float eps;
  float bc1_inv;       ///< Adam: 1 / (1 - beta1^(t+1))
  float bc2_inv_sqrt;  ///< Adam: 1 / sqrt(1 - beta2^(t+1))
  float clip_norm;
  const double* sumsq;  ///< sum of squared grads when clipping, else nullptr
};

/** The clipping factor of optimizer.cpp: clip / ||g|| when ||g|| > clip, else 1. */
__device__ __forceinline__ float grad_scale(const DevStep& a) {
  if (a.sumsq == nullptr) return 1.0f;
  const double norm = sqrt(*a.sumsq);
  const double clip = static_cast<double>(a.clip_norm);
  return norm > clip ? static_cast<float>(clip / norm) : 1.0f;
}

// Grid-stride loops with 64-bit indices: one launch covers any n.
#define DL_FOR_EACH(i, n)                                                                    \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

__global__ void sum_squares_kernel(const float* __restrict__ g, int64_t n,
                                   double* __restrict__ total) {
  // Double accumulation as on the CPU (sum_squares returns double): float partial sums
  // would lose the small gradients of a large model.
  double s = 0.0;
  DL_FOR_EACH(i, n) {
    const double v = g[i];
    s += v * v;
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(0xffffffffu, s, off);
  __shared__ double warp_sums[detail::kBlock / 32];
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int warp = static_cast<int>(threadIdx.x) >> 5;
  if (lane == 0) warp_sums[warp] = s;
  __syncthreads();
  if (warp == 0) {
    s = lane < static_cast<int>(blockDim.x >> 5) ? warp_sums[lane] : 0.0;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(0xffffffffu, s, off);
    // One atomic per block (double atomicAdd: sm_60+, below every architecture we build).
    if (lane == 0) atomicAdd(total, s);
  }
}

// The loop bodies below are the CPU kernels' expressions, operation for operation.

__global__ void sgd_kernel(float* __restrict__ p, const float* __restrict__ g, int64_t n,
                           DevStep a) {
  const float gs = grad_scale(a);
  DL_FOR_EACH(i, n) {
    const float gi = g[i] * gs + a.l2 * p[i];
    p[i] = p[i] * a.keep - a.lr * gi;
  }
}

template <bool Nesterov>
__global__ void sgd_momentum_kernel(float* __restrict__ p, const float* __restrict__ g,
                                    float* __restrict__ vel, int64_t n, DevStep a) {
  const float gs = grad_scale(a);
  const float mu = a.momentum;
  DL_FOR_EACH(i, n) {
    const float gi = g[i] * gs + a.l2 * p[i];
    const float v = mu * vel[i] + gi;
    vel[i] = v;
    if constexpr (Nesterov) {
      p[i] = p[i] * a.keep - a.lr * (gi + mu * v);
    } else {
      p[i] = p[i] * a.keep - a.lr * v;
    }
  }
}

__global__ void adagrad_kernel(float* __restrict__ p, const float* __restrict__ g,
                               float* __restrict__ acc, int64_t n, DevStep a) {
  const float gs = grad_scale(a);
  DL_FOR_EACH(i, n) {
    const float gi = g[i] * gs + a.l2 * p[i];
    const float s = acc[i] + gi * gi;
    acc[i] = s;
    p[i] = p[i] * a.keep - a.lr * gi / (sqrtf(s) + a.eps);
  }
}

__global__ void rmsprop_kernel(float* __restrict__ p, const float* __restrict__ g,
                               float* __restrict__ sq, int64_t n, DevStep a) {
  const float gs = grad_scale(a);
  const float rho = a.rho;
  DL_FOR_EACH(i, n) {
    const float gi = g[i] * gs + a.l2 * p[i];
    const float s = rho * sq[i] + (1.0f - rho) * gi * gi;
    sq[i] = s;
    p[i] = p[i] * a.keep - a.lr * gi / (sqrtf(s) + a.eps);
  }
}

// Kingma & Ba (2015), Algorithm 1, bias corrections precomputed on the host for step t.
__global__ void adam_kernel(float* __restrict__ p, const float* __restrict__ g,
                            float* __restrict__ m, float* __restrict__ v, int64_t n,
                            DevStep a) {
  const float gs = grad_scale(a);
  const float b1 = a.beta1, b2 = a.beta2, c1 = a.bc1_inv, c2 = a.bc2_inv_sqrt;
  DL_FOR_EACH(i, n) {
    const float gi = g[i] * gs + a.l2 * p[i];
    const float mi = b1 * m[i] + (1.0f - b1) * gi;
    const float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * a.keep - a.lr * (mi * c1) / (sqrtf(vi) * c2 + a.eps);
  }
}

#undef DL_FOR_EACH

/** Stream-ordered scratch for the norm; freed on the same stream even if a launch throws. */
class ScratchDouble {
 public:
  explicit ScratchDouble(cudaStream_t s) : stream_(s) {
    DUCKLEARN_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&ptr_), sizeof(double), s));
  }
  ~ScratchDouble() {
    // A destructor cannot throw; a failed free at worst leaks 8 bytes of pool memory.
    if (ptr_ != nullptr) (void)cudaFreeAsync(ptr_, stream_);
  }
  ScratchDouble(const ScratchDouble&) = delete;
  ScratchDouble& operator=(const ScratchDouble&) = delete;
  double* get() const { return ptr_; }

 private:
  double* ptr_ = nullptr;
  cudaStream_t stream_;
};

}  // namespace

void optimizer_step(const OptimizerConfig& config, int64_t t, float* params,
                    const float* grads, float* state, int64_t n, uintptr_t stream) {
  config.validate();
  DUCKLEARN_CHECK_ARG(t >= 0, "optimizer_step: step t must be >= 0, got " + std::to_string(t));
  DUCKLEARN_CHECK_ARG(n >= 1, "optimizer_step: n (parameter count) must be >= 1, got " +
                                  std::to_string(n));
  DUCKLEARN_CHECK_ARG(params != nullptr,
                      "optimizer_step: params is a null pointer; pass device memory");
  DUCKLEARN_CHECK_ARG(grads != nullptr,
                      "optimizer_step: grads is a null pointer; pass device memory");
  // The rate's own gradient step needs a dot product and the previous direction on the host
  // side of every step; on the device the rate stays what the schedule says.
  DUCKLEARN_CHECK_ARG(config.hypergradient == 0.0f,
                      "optimizer_step: hypergradient learning rates are CPU-only; set "
                      "hypergradient=0 for device optimizers");
  const int slots = config.slots();
  DUCKLEARN_CHECK_ARG(slots == 0 || state != nullptr,
                      std::string("optimizer_step: ") + to_string(config.kind) + " needs " +
                          std::to_string(slots) + " x n floats of state; state is a null " +
                          "pointer");
  // Each element is read and written by one thread; buffers that overlap would race (and
  // the CPU kernels take them as restrict pointers too).
  DUCKLEARN_CHECK_ARG(!detail::overlaps(params, n, grads, n),
                      "optimizer_step: params and grads overlap; pass separate buffers");
  DUCKLEARN_CHECK_ARG(slots == 0 || (!detail::overlaps(state, slots * n, params, n) &&
                                     !detail::overlaps(state, slots * n, grads, n)),
                      "optimizer_step: state overlaps params or grads; pass separate buffers");

  DevStep a{};
  a.lr = config.schedule.at(t);
  a.l2 = config.l2;
  a.keep = 1.0f - a.lr * config.weight_decay;
  a.momentum = config.momentum;
  a.beta1 = config.beta1;
  a.beta2 = config.beta2;
  a.rho = config.rho;
  a.eps = config.eps;
  a.bc1_inv = 1.0f;
  a.bc2_inv_sqrt = 1.0f;
  a.clip_norm = config.clip_norm;
  a.sumsq = nullptr;
  if (config.kind == OptimizerKind::Adam || config.kind == OptimizerKind::AdamW) {
    const double t1 = static_cast<double>(t + 1);
    a.bc1_inv = static_cast<float>(1.0 / (1.0 - std::pow(static_cast<double>(a.beta1), t1)));
    a.bc2_inv_sqrt =
        static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(static_cast<double>(a.beta2), t1)));
  }

  const cudaStream_t s = detail::as_stream(stream);
  const unsigned int blocks = detail::grid_for(n);
  constexpr int threads = detail::kBlock;

  std::unique_ptr<ScratchDouble> scratch;
  if (config.clip_norm > 0.0f) {
    scratch = std::make_unique<ScratchDouble>(s);
    DUCKLEARN_CUDA_CHECK(cudaMemsetAsync(scratch->get(), 0, sizeof(double), s));
    // Fewer blocks than the update: each block ends in one atomic on the same address.
    sum_squares_kernel<<<detail::grid_for(n, threads, 1024), threads, 0, s>>>(
        grads, n, scratch->get());
    DUCKLEARN_CUDA_CHECK_LAUNCH();
    a.sumsq = scratch->get();
  }

  float* s0 = state;
  float* s1 = slots == 2 ? state + n : nullptr;
  switch (config.kind) {
    case OptimizerKind::SGD:
      if (slots == 0) {
        sgd_kernel<<<blocks, threads, 0, s>>>(params, grads, n, a);
      } else if (config.nesterov) {
        sgd_momentum_kernel<true><<<blocks, threads, 0, s>>>(params, grads, s0, n, a);
      } else {
        sgd_momentum_kernel<false><<<blocks, threads, 0, s>>>(params, grads, s0, n, a);
      }
      break;
    case OptimizerKind::AdaGrad:
      adagrad_kernel<<<blocks, threads, 0, s>>>(params, grads, s0, n, a);
      break;
    case OptimizerKind::RMSProp:
      rmsprop_kernel<<<blocks, threads, 0, s>>>(params, grads, s0, n, a);
      break;
    case OptimizerKind::Adam:
    case OptimizerKind::AdamW:
      adam_kernel<<<blocks, threads, 0, s>>>(params, grads, s0, s1, n, a);
      break;
    default:
      ::ducklearn::detail::throw_invalid("optimizer_step: unknown optimizer kind " +
                                         std::to_string(static_cast<int>(config.kind)));
  }
  DUCKLEARN_CUDA_CHECK_LAUNCH();
}

}  // namespace ducklearn::cuda
