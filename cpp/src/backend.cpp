#include "ducklearn/backend.hpp"

#include <thread>

#include "ducklearn/config.hpp"
#include "simd/kernels.hpp"

#if DUCKLEARN_HAS_BLAS
#if defined(DUCKLEARN_BLAS_PREFIX_SCIPY)
extern "C" {
void scipy_openblas_set_num_threads(int);
int scipy_openblas_get_num_threads(void);
char* scipy_openblas_get_corename(void);
}
#define DL_SET_THREADS scipy_openblas_set_num_threads
#define DL_GET_THREADS scipy_openblas_get_num_threads
#define DL_CORENAME scipy_openblas_get_corename
#else
// A system BLAS may or may not be OpenBLAS: weak references resolve to null otherwise.
extern "C" {
__attribute__((weak)) void openblas_set_num_threads(int);
__attribute__((weak)) int openblas_get_num_threads(void);
__attribute__((weak)) char* openblas_get_corename(void);
}
#define DL_SET_THREADS openblas_set_num_threads
#define DL_GET_THREADS openblas_get_num_threads
#define DL_CORENAME openblas_get_corename
#endif
#endif

namespace ducklearn {

BackendInfo backend_info() {
  BackendInfo info;
  info.version = DUCKLEARN_VERSION;
  info.simd_target = simd::target_name(simd::active_target());
  info.simd_best = simd::target_name(simd::best_supported_target());
  info.blas = DUCKLEARN_BLAS_NAME;
#if DUCKLEARN_HAS_BLAS
  if (&DL_CORENAME != nullptr) {
    const char* core = DL_CORENAME();
    if (core != nullptr) info.blas_core = core;
  }
#endif
  info.blas_threads = blas_threads();
  const unsigned hw = std::thread::hardware_concurrency();
  info.hardware_threads = hw == 0 ? 1 : static_cast<int>(hw);
  info.cuda_compiled = DUCKLEARN_HAS_CUDA != 0;
  return info;
}

bool set_simd_target(const std::string& name) {
  if (name == "auto") return simd::set_target(simd::best_supported_target());
  if (name == "generic") return simd::set_target(simd::Target::Generic);
  if (name == "avx2") return simd::set_target(simd::Target::AVX2);
  if (name == "avx512") return simd::set_target(simd::Target::AVX512);
  return false;
}

void set_blas_threads(int n) {
#if DUCKLEARN_HAS_BLAS
  if (n >= 1 && &DL_SET_THREADS != nullptr) DL_SET_THREADS(n);
#else
  (void)n;
#endif
}

int blas_threads() {
#if DUCKLEARN_HAS_BLAS
  if (&DL_GET_THREADS != nullptr) return DL_GET_THREADS();
#endif
  return 1;
}

}  // namespace ducklearn
