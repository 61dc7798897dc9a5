// The kernel table built for the avx512 instruction set (flags set in
// cmake/DucklearnCompileOptions.cmake).
#define DUCKLEARN_SIMD_NS avx512
#define DUCKLEARN_SIMD_NAME "avx512"
#include "simd/kernels_impl.hpp"
