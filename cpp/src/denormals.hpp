#pragma once
// Internal: flush-to-zero / denormals-are-zero for the duration of a training loop.
//
// Optimizer moments of parameters whose gradient is often exactly 0 (ReLU units) decay
// geometrically into the subnormal range, where x86 arithmetic is ~100x slower. The
// guard restores the caller's MXCSR on exit, so user code never sees the mode change.
#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>

namespace ducklearn::detail {
class FlushDenormals {
 public:
  // Writing MXCSR stalls the pipeline, so nested guards (a learner loop around optimizer
  // steps) only read it.
  FlushDenormals() : saved_(_mm_getcsr()) {
    if ((saved_ & kMask) != kMask) _mm_setcsr(saved_ | kMask);
  }
  ~FlushDenormals() {
    if ((saved_ & kMask) != kMask) _mm_setcsr(saved_);
  }
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  static constexpr unsigned int kMask = 0x8040u;  // FTZ | DAZ
  unsigned int saved_;
};
}  // namespace ducklearn::detail
#else
namespace ducklearn::detail {
struct FlushDenormals {};
}  // namespace ducklearn::detail
#endif
