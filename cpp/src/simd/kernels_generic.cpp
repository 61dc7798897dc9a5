// The kernel table built for the generic instruction set (flags set in
// cmake/DucklearnCompileOptions.cmake).
#define DUCKLEARN_SIMD_NS generic
#define DUCKLEARN_SIMD_NAME "generic"
#include "simd/kernels_impl.hpp"
