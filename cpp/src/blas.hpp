#pragma once
// Internal: the few CBLAS entry points the core calls, declared here so that the same code
// links against scipy-openblas32 (symbols prefixed scipy_) or a system CBLAS.
#include <cstdint>

#include "ducklearn/config.hpp"

namespace ducklearn {
// Below this many multiply-adds per call, BLAS setup costs more than it saves: smaller
// products run the per-row gemv kernel (gemm.cpp; simd::pack_pays weighs the same split).
constexpr int64_t kBlasMinWork = 16 * 1024;
}  // namespace ducklearn

#if DUCKLEARN_HAS_BLAS
#if defined(DUCKLEARN_BLAS_PREFIX_SCIPY)
#define DL_CBLAS(name) scipy_cblas_##name
#else
#define DL_CBLAS(name) cblas_##name
#endif

namespace ducklearn::blas {
// CBLAS enum values (they are ints in the C ABI).
constexpr int kRowMajor = 101;
constexpr int kNoTrans = 111;
constexpr int kTrans = 112;
}  // namespace ducklearn::blas

extern "C" {
void DL_CBLAS(sgemm)(int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                     const float* a, int lda, const float* b, int ldb, float beta, float* c,
                     int ldc);
}
#endif
