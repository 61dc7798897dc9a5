#include <atomic>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <mutex>

#include "simd/kernels.hpp"

namespace ducklearn::simd {
namespace {

bool cpu_has(Target t) {
#if DUCKLEARN_X86_SIMD
  __builtin_cpu_init();
  switch (t) {
    // __builtin_cpu_supports also checks that the OS saves the wider registers (XGETBV).
    case Target::AVX512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("fma");
    case Target::AVX2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    default: return true;
  }
#else
  return t == Target::Generic;
#endif
}

struct Tables {
  KernelTable generic_t = generic::make_table();
#if DUCKLEARN_X86_SIMD
  // make_table() is compiled for its own ISA too, and GCC stores the function pointers with
  // vector moves of that ISA (512-bit ones in the AVX-512 table): build a table only on a CPU
  // that runs it. The stand-in is never handed out (table_for sees supported targets only).
  KernelTable avx2_t = cpu_has(Target::AVX2) ? avx2::make_table() : generic_t;
  KernelTable avx512_t = cpu_has(Target::AVX512) ? avx512::make_table() : generic_t;
#endif
};

const Tables& tables() {
  static const Tables t;
  return t;
}

const KernelTable* table_for(Target t) {
  switch (t) {
#if DUCKLEARN_X86_SIMD
    case Target::AVX512: return &tables().avx512_t;
    case Target::AVX2: return &tables().avx2_t;
#endif
    default: return &tables().generic_t;
  }
}

// DUCKLEARN_SIMD=generic|avx2|avx512 caps the target (never above what the CPU has).
Target initial_target() {
  Target best = best_supported_target();
  const char* env = std::getenv("DUCKLEARN_SIMD");
  if (env == nullptr || *env == '\0') return best;
  Target want = best;
  for (Target t : {Target::Generic, Target::AVX2, Target::AVX512}) {
    if (std::strcmp(env, target_name(t)) == 0) want = t;
  }
  return static_cast<int>(want) < static_cast<int>(best) ? want : best;
}

std::atomic<const KernelTable*> g_active{nullptr};
std::atomic<int> g_target{-1};
std::once_flag g_once;

void init_once() {
  std::call_once(g_once, [] {
    const Target t = initial_target();
    g_target.store(static_cast<int>(t));
    g_active.store(table_for(t));
  });
}

}  // namespace

Target best_supported_target() {
  if (cpu_has(Target::AVX512)) return Target::AVX512;
  if (cpu_has(Target::AVX2)) return Target::AVX2;
  return Target::Generic;
}

const KernelTable& kernels() {
  const KernelTable* t = g_active.load(std::memory_order_acquire);
  if (t == nullptr) {
    init_once();
    t = g_active.load(std::memory_order_acquire);
  }
  return *t;
}

Target active_target() {
  init_once();
  return static_cast<Target>(g_target.load());
}

bool set_target(Target t) {
  init_once();
  if (!cpu_has(t)) return false;
  g_target.store(static_cast<int>(t));
  g_active.store(table_for(t), std::memory_order_release);
  return true;
}

const char* target_name(Target t) {
  switch (t) {
    case Target::AVX512: return "avx512";
    case Target::AVX2: return "avx2";
    default: return "generic";
  }
}

}  // namespace ducklearn::simd
