// The kernel table built for the avx2 instruction set (flags set in
// cmake/DucklearnCompileOptions.cmake).
#define DUCKLEARN_SIMD_NS avx2
#define DUCKLEARN_SIMD_NAME "avx2"
#include "simd/kernels_impl.hpp"
