#pragma once
/** What this build and this machine provide, and the few global switches. */
#include <string>

#include "ducklearn/export.hpp"

namespace ducklearn {

struct BackendInfo {
  std::string version;      ///< library version (CMake project version)
  std::string simd_target;  ///< kernels in use: "avx512", "avx2" or "generic"
  std::string simd_best;    ///< best target this CPU supports
  std::string blas;         ///< BLAS provider, e.g. "OpenBLAS (scipy-openblas32)"
  std::string blas_core;    ///< BLAS kernel family picked at run time, if the BLAS says
  int blas_threads = 1;     ///< threads BLAS uses for one large product
  int hardware_threads = 1; ///< std::thread::hardware_concurrency()
  bool cuda_compiled = false;
};

DUCKLEARN_EXPORT BackendInfo backend_info();

/** "auto", "generic", "avx2" or "avx512"; returns false if this CPU lacks the target. */
DUCKLEARN_EXPORT bool set_simd_target(const std::string& name);

/** Threads for BLAS products (no-op for a BLAS without a thread switch). */
DUCKLEARN_EXPORT void set_blas_threads(int n);
DUCKLEARN_EXPORT int blas_threads();

}  // namespace ducklearn
