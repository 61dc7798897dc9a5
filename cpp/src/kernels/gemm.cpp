#include "ducklearn/kernels/gemm.hpp"

#include "blas.hpp"
#include "simd/kernels.hpp"

namespace ducklearn {
#if DUCKLEARN_HAS_BLAS
namespace {

void bias_act_rows(float* Z, float* Y, const float* b, int64_t n, int64_t out, Activation act,
                   float alpha) {
  const auto& k = simd::kernels();
  for (int64_t r = 0; r < n; ++r) {
    k.bias_act(static_cast<int>(act), alpha, b, Z + r * out, Y + r * out, out);
  }
}

}  // namespace
#endif

float dot(const float* x, const float* y, int64_t n) { return simd::kernels().dot(x, y, n); }

void axpy(float a, const float* x, float* y, int64_t n) { simd::kernels().axpy(a, x, y, n); }

void gemv_bias_act(const float* W, const float* x, const float* b, float* z, float* y,
                   int64_t out, int64_t in, Activation act, float alpha) {
  const auto& k = simd::kernels();
  float* zz = z != nullptr ? z : y;
  k.gemv(W, x, b, zz, out, in);
  k.act_forward(static_cast<int>(act), alpha, zz, y, out);
}

void gemm_bias_act(const float* X, int64_t n, int64_t in, const float* W, const float* b,
                   int64_t out, float* Z, float* Y, Activation act, float alpha) {
  float* zz = Z != nullptr ? Z : Y;
#if DUCKLEARN_HAS_BLAS
  if (n > 1 && n * in * out >= kBlasMinWork) {
    DL_CBLAS(sgemm)(blas::kRowMajor, blas::kNoTrans, blas::kTrans, static_cast<int>(n),
                    static_cast<int>(out), static_cast<int>(in), 1.0f, X, static_cast<int>(in),
                    W, static_cast<int>(in), 0.0f, zz, static_cast<int>(out));
    bias_act_rows(zz, Y, b, n, out, act, alpha);
    return;
  }
#endif
  const auto& k = simd::kernels();
  for (int64_t r = 0; r < n; ++r) {
    k.gemv(W, X + r * in, b, zz + r * out, out, in);
    k.act_forward(static_cast<int>(act), alpha, zz + r * out, Y + r * out, out);
  }
}

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
          const float* A, const float* B, float beta, float* C) {
#if DUCKLEARN_HAS_BLAS
  if (m * n * k >= kBlasMinWork) {
    DL_CBLAS(sgemm)(blas::kRowMajor, trans_a ? blas::kTrans : blas::kNoTrans,
                    trans_b ? blas::kTrans : blas::kNoTrans, static_cast<int>(m),
                    static_cast<int>(n), static_cast<int>(k), alpha, A,
                    static_cast<int>(trans_a ? m : k), B, static_cast<int>(trans_b ? k : n),
                    beta, C, static_cast<int>(n));
    return;
  }
#endif
  // Built-in path: C row by row as a sum of scaled rows of op(B) (unit-stride inner loop).
  const auto& kt = simd::kernels();
  for (int64_t i = 0; i < m; ++i) {
    float* c = C + i * n;
    if (beta == 0.0f) {
      for (int64_t j = 0; j < n; ++j) c[j] = 0.0f;
    } else if (beta != 1.0f) {
      for (int64_t j = 0; j < n; ++j) c[j] *= beta;
    }
    for (int64_t p = 0; p < k; ++p) {
      const float a = alpha * (trans_a ? A[p * m + i] : A[i * k + p]);
      if (a == 0.0f) continue;
      if (!trans_b) {
        kt.axpy(a, B + p * n, c, n);
      } else {
        for (int64_t j = 0; j < n; ++j) c[j] += a * B[j * k + p];
      }
    }
  }
}

}  // namespace ducklearn
