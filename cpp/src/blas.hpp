#pragma once
// Internal: the few CBLAS entry points the core calls, declared here so that the same code
// links against scipy-openblas32 (symbols prefixed scipy_) or a system CBLAS.
#include "ducklearn/config.hpp"

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
