# Warnings for our own targets (not propagated to consumers).
add_library(ducklearn_warnings INTERFACE)
if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  target_compile_options(ducklearn_warnings INTERFACE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wno-unused-parameter>)
endif()

# Runtime SIMD dispatch: the same kernel source (cpp/src/simd/kernels_impl.hpp) is compiled
# once per instruction set in its own translation unit and namespace; dispatch.cpp picks one
# table at run time from CPUID. Nothing else in the library is built with ISA flags, so the
# module runs on any x86-64 (no -march=native ever ships).
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$"
   AND CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  set(DUCKLEARN_X86_SIMD ON)
else()
  set(DUCKLEARN_X86_SIMD OFF)
endif()

function(ducklearn_add_simd_sources target)
  set(_dir "${PROJECT_SOURCE_DIR}/cpp/src/simd")
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    # `omp simd` pragmas without the OpenMP runtime let float reductions vectorize;
    # -fno-math-errno lets sqrt vectorize (the kernels never read errno).
    set_source_files_properties("${_dir}/kernels_generic.cpp" PROPERTIES
      COMPILE_OPTIONS "-fopenmp-simd;-fno-math-errno")
  endif()
  if(NOT DUCKLEARN_X86_SIMD)
    return()
  endif()
  target_sources(${target} PRIVATE "${_dir}/kernels_avx2.cpp" "${_dir}/kernels_avx512.cpp")
  set_source_files_properties("${_dir}/kernels_avx2.cpp" PROPERTIES
    COMPILE_OPTIONS "-fopenmp-simd;-fno-math-errno;-mavx2;-mfma;-mf16c")
  # 512-bit vectors are worth it for these streaming kernels (no heavy FP frequency drop on
  # current server parts); -mprefer-vector-width makes GCC actually use zmm registers.
  set_source_files_properties("${_dir}/kernels_avx512.cpp" PROPERTIES
    COMPILE_OPTIONS "-fopenmp-simd;-fno-math-errno;-mavx512f;-mavx512bw;-mavx512dq;-mavx512vl;-mavx2;-mfma;-mf16c;-mprefer-vector-width=512")
  target_compile_definitions(${target} PRIVATE DUCKLEARN_X86_SIMD=1)
endfunction()
