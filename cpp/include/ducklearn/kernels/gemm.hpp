#pragma once
/**
 * Dense products with fused bias and activation, float32 row-major.
 *
 * Large products go to BLAS (sgemm); batch 1 and tiny shapes use the built-in SIMD
 * kernels, where BLAS call overhead would dominate.
 */
#include <cstdint>

#include "ducklearn/export.hpp"
#include "ducklearn/kernels/activation.hpp"

namespace ducklearn {

/** Returns sum_i x[i] y[i]. */
DUCKLEARN_EXPORT float dot(const float* x, const float* y, int64_t n);

/** y += a x. */
DUCKLEARN_EXPORT void axpy(float a, const float* x, float* y, int64_t n);

/**
 * y = act(W x + b) for one example.
 * W: out × in (row-major), x: in, b: out or nullptr, y: out.
 * If z is not nullptr it receives the pre-activation W x + b.
 */
DUCKLEARN_EXPORT void gemv_bias_act(const float* W, const float* x, const float* b, float* z,
                                    float* y, int64_t out, int64_t in, Activation act,
                                    float alpha = 0.01f);

/**
 * Y = act(X W^T + b) for a batch.
 * X: n × in, W: out × in, b: out or nullptr, Y: n × out (all row-major).
 * If Z is not nullptr it receives the pre-activations (n × out); Z may equal Y only when
 * act is Identity.
 */
DUCKLEARN_EXPORT void gemm_bias_act(const float* X, int64_t n, int64_t in, const float* W,
                                    const float* b, int64_t out, float* Z, float* Y,
                                    Activation act, float alpha = 0.01f);

/**
 * General C = alpha op(A) op(B) + beta C, row-major; op(A): m × k, op(B): k × n.
 * A is m × k (or k × m when trans_a), B is k × n (or n × k when trans_b).
 */
DUCKLEARN_EXPORT void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                           float alpha, const float* A, const float* B, float beta, float* C);

}  // namespace ducklearn
