// Device count and the fused dense layer Y = act(X W^T + b) (see ducklearn/cuda.hpp).
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <string>

#include "cuda_utils.cuh"
#include "ducklearn/cuda.hpp"
#include "ducklearn/error.hpp"

namespace ducklearn::cuda {
namespace {

// ---------------------------------------------------------------------------------------------
// Activations: the CPU formulas of cpp/src/simd/kernels_impl.hpp (Cephes exp, the same tanh
// split), so the device and the host agree to an ulp or two instead of to expf's error.
// ---------------------------------------------------------------------------------------------

constexpr int kIdentity = 0, kReLU = 1, kLeaky = 2, kTanh = 3, kSigmoid = 4, kGELU = 5;
constexpr float kGeluC = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluA = 0.044715f;

__device__ __forceinline__ float fast_exp(float x) {
  // Compare-and-select, not fminf/fmaxf: those return the bound for a NaN input, while the
  // CPU (and every caller) expects NaN to propagate.
  x = x > 88.3762626647949f ? 88.3762626647949f : x;
  x = x < -87.3365447504f ? -87.3365447504f : x;
  // rintf is the CPU's (t + 1.5 * 2^23) - 1.5 * 2^23 round-to-nearest-even; __fmul_rn keeps
  // the product from being fused into a neighbouring add, as on the host.
  const float fx = rintf(__fmul_rn(x, 1.44269504088896341f));
  float r = x - fx * 0.693359375f;
  r = r - fx * -2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  const int n = static_cast<int>(fx);
  return y * __int_as_float((n + 127) << 23);
}

// Odd polynomial near 0 (where 1 - 2 / (e^2z + 1) cancels), exp form elsewhere.
__device__ __forceinline__ float fast_tanh(float z) {
  const float az = fabsf(z);
  if (az < 0.625f) {
    const float z2 = z * z;
    float p = -5.70498872745e-3f;
    p = p * z2 + 2.06390887954e-2f;
    p = p * z2 - 5.37397155531e-2f;
    p = p * z2 + 1.33314422036e-1f;
    p = p * z2 - 3.33332819422e-1f;
    return z + z * z2 * p;
  }
  const float big = 1.0f - 2.0f / (fast_exp(2.0f * az) + 1.0f);
  return z < 0.0f ? -big : big;
}

template <int Act>
__device__ __forceinline__ float activate(float z, float alpha) {
  if constexpr (Act == kReLU) {
    return z > 0.0f ? z : 0.0f;
  } else if constexpr (Act == kLeaky) {
    return z > 0.0f ? z : alpha * z;
  } else if constexpr (Act == kTanh) {
    return fast_tanh(z);
  } else if constexpr (Act == kSigmoid) {
    return 1.0f / (1.0f + fast_exp(-z));
  } else if constexpr (Act == kGELU) {
    return 0.5f * z * (1.0f + fast_tanh(kGeluC * (z + kGeluA * z * z * z)));
  } else {
    return z;
  }
}

// ---------------------------------------------------------------------------------------------
// Tiled SGEMM with a fused epilogue.
//
// Each block owns a 64 × 64 tile of Y and walks K in slices of 16. Both operands are
// K-contiguous (X row-major n × in, W row-major out × in), so a slice of each is loaded with
// 16 consecutive threads reading 16 consecutive floats of one row (coalesced), and stored
// transposed ([k][row]) so that the inner product reads rows of shared memory. The 256
// threads form a 16 × 16 grid; thread (ty, tx) accumulates the 4 × 4 outputs
// (ty + 16 i, tx + 16 j): with that strided ownership a warp's shared reads are two words
// broadcast to 16 threads each (X) and 16 consecutive words (W), both conflict-free, and its
// global stores are 64-byte runs.
// ---------------------------------------------------------------------------------------------

constexpr int kTile = 64;             // rows (of X) and columns (of Y) per block
constexpr int kSlice = 16;            // K per shared-memory stage
constexpr int kGroups = 16;           // threads along each tile dimension
constexpr int kReg = kTile / kGroups;  // outputs per thread along each dimension (4)
constexpr int kThreads = kGroups * kGroups;
// Row stride 66: a warp's transposed store hits word 66 k + row for k < 16 and two
// consecutive rows, i.e. banks 2 k + {0, 1}: all 32 distinct, so the store is conflict-free.
constexpr int kPad = 2;

static_assert(kSlice == kGroups, "each thread loads one K column: tx indexes the slice");
static_assert(kReg * kGroups == kTile, "tile must split evenly into register blocks");

template <int Act>
__global__ void __launch_bounds__(kThreads)
dense_fused_kernel(const float* __restrict__ X, const float* __restrict__ W,
                   const float* __restrict__ b, float* __restrict__ Y, int64_t n, int64_t in,
                   int64_t out, float alpha) {
  __shared__ float Xs[kSlice][kTile + kPad];
  __shared__ float Ws[kSlice][kTile + kPad];

  const int tx = static_cast<int>(threadIdx.x) % kGroups;
  const int ty = static_cast<int>(threadIdx.x) / kGroups;
  const int64_t tiles_m = (n + kTile - 1) / kTile;
  const int64_t tiles_n = (out + kTile - 1) / kTile;

  // Tile-stride loops: any n and out run with a grid clamped to the hardware limits.
  for (int64_t tm = blockIdx.x; tm < tiles_m; tm += gridDim.x) {
    for (int64_t tn = blockIdx.y; tn < tiles_n; tn += gridDim.y) {
      const int64_t m0 = tm * kTile;
      const int64_t n0 = tn * kTile;

      // Rows this thread loads: ty + 16 r of the X tile and of the W tile (W's rows are Y's
      // columns). Rows past the edge load zeros, which add nothing to the products.
      const float* xrow[kReg];
      const float* wrow[kReg];
      bool xok[kReg], wok[kReg];
#pragma unroll
      for (int r = 0; r < kReg; ++r) {
        const int64_t gx = m0 + ty + kGroups * r;
        const int64_t gw = n0 + ty + kGroups * r;
        xok[r] = gx < n;
        wok[r] = gw < out;
        xrow[r] = X + (xok[r] ? gx : 0) * in;
        wrow[r] = W + (wok[r] ? gw : 0) * in;
      }

      float acc[kReg][kReg];
#pragma unroll
      for (int i = 0; i < kReg; ++i) {
#pragma unroll
        for (int j = 0; j < kReg; ++j) acc[i][j] = 0.0f;
      }

      for (int64_t k0 = 0; k0 < in; k0 += kSlice) {
        const int64_t gk = k0 + tx;
        const bool kok = gk < in;
#pragma unroll
        for (int r = 0; r < kReg; ++r) {
          Xs[tx][ty + kGroups * r] = (xok[r] && kok) ? __ldg(xrow[r] + gk) : 0.0f;
          Ws[tx][ty + kGroups * r] = (wok[r] && kok) ? __ldg(wrow[r] + gk) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < kSlice; ++kk) {
          float xa[kReg], wb[kReg];
#pragma unroll
          for (int i = 0; i < kReg; ++i) xa[i] = Xs[kk][ty + kGroups * i];
#pragma unroll
          for (int j = 0; j < kReg; ++j) wb[j] = Ws[kk][tx + kGroups * j];
#pragma unroll
          for (int i = 0; i < kReg; ++i) {
#pragma unroll
            for (int j = 0; j < kReg; ++j) acc[i][j] = fmaf(xa[i], wb[j], acc[i][j]);
          }
        }
        // The next slice overwrites Xs/Ws; every thread must be done reading this one.
        __syncthreads();
      }

      // Epilogue: bias and activation while the sums are still in registers.
#pragma unroll
      for (int j = 0; j < kReg; ++j) {
        const int64_t col = n0 + tx + kGroups * j;
        if (col >= out) continue;
        const float bias = b != nullptr ? __ldg(b + col) : 0.0f;
#pragma unroll
        for (int i = 0; i < kReg; ++i) {
          const int64_t row = m0 + ty + kGroups * i;
          if (row < n) Y[row * out + col] = activate<Act>(acc[i][j] + bias, alpha);
        }
      }
    }
  }
}

template <int Act>
void launch_dense(const float* X, int64_t n, int64_t in, const float* W, const float* b,
                  int64_t out, float* Y, float alpha, cudaStream_t stream) {
  const int64_t tiles_m = detail::ceil_div(n, kTile);
  const int64_t tiles_n = detail::ceil_div(out, kTile);
  // Rows go on grid.x (limit 2^31 - 1) because batches are the long dimension; grid.y is
  // limited to 65535 and the kernel strides over any columns beyond it.
  const dim3 grid(static_cast<unsigned int>(tiles_m < INT_MAX ? tiles_m : INT_MAX),
                  static_cast<unsigned int>(tiles_n < 65535 ? tiles_n : 65535));
  dense_fused_kernel<Act><<<grid, kThreads, 0, stream>>>(X, W, b, Y, n, in, out, alpha);
  DUCKLEARN_CUDA_CHECK_LAUNCH();
}

}  // namespace

int device_count() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err == cudaSuccess) return count;
  if (detail::means_no_device(err)) {
    // No driver or no GPU is an answer ("zero devices"), not a failure.
    (void)cudaGetLastError();
    return 0;
  }
  DUCKLEARN_CUDA_CHECK(err);
  return 0;
}

void dense_forward(const float* X, int64_t n, int64_t in, const float* W, const float* b,
                   int64_t out, float* Y, Activation act, float alpha, uintptr_t stream) {
  DUCKLEARN_CHECK_ARG(n >= 1, "dense_forward: n (rows of X) must be >= 1, got " +
                                  std::to_string(n));
  DUCKLEARN_CHECK_ARG(in >= 1, "dense_forward: in (columns of X and W) must be >= 1, got " +
                                   std::to_string(in));
  DUCKLEARN_CHECK_ARG(out >= 1, "dense_forward: out (rows of W, columns of Y) must be >= 1, got " +
                                    std::to_string(out));
  DUCKLEARN_CHECK_ARG(X != nullptr, "dense_forward: X is a null pointer; pass device memory");
  DUCKLEARN_CHECK_ARG(W != nullptr, "dense_forward: W is a null pointer; pass device memory");
  DUCKLEARN_CHECK_ARG(Y != nullptr, "dense_forward: Y is a null pointer; pass device memory");
  // Blocks write Y while other blocks still read X, W and b: any overlap is a data race.
  DUCKLEARN_CHECK_ARG(!detail::overlaps(Y, n * out, X, n * in),
                      "dense_forward: Y overlaps X; write the output to a separate buffer");
  DUCKLEARN_CHECK_ARG(!detail::overlaps(Y, n * out, W, out * in),
                      "dense_forward: Y overlaps W; write the output to a separate buffer");
  DUCKLEARN_CHECK_ARG(b == nullptr || !detail::overlaps(Y, n * out, b, out),
                      "dense_forward: Y overlaps b; write the output to a separate buffer");

  const cudaStream_t s = detail::as_stream(stream);
  switch (act) {
    case Activation::Identity: launch_dense<kIdentity>(X, n, in, W, b, out, Y, alpha, s); break;
    case Activation::ReLU: launch_dense<kReLU>(X, n, in, W, b, out, Y, alpha, s); break;
    case Activation::LeakyReLU: launch_dense<kLeaky>(X, n, in, W, b, out, Y, alpha, s); break;
    case Activation::Tanh: launch_dense<kTanh>(X, n, in, W, b, out, Y, alpha, s); break;
    case Activation::Sigmoid: launch_dense<kSigmoid>(X, n, in, W, b, out, Y, alpha, s); break;
    case Activation::GELU: launch_dense<kGELU>(X, n, in, W, b, out, Y, alpha, s); break;
    default:
      ::ducklearn::detail::throw_invalid("dense_forward: unknown activation code " +
                            std::to_string(static_cast<int>(act)));
  }
}

}  // namespace ducklearn::cuda
