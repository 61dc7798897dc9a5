// Large model buffers go back to the system when freed (see aligned.hpp).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <unistd.h>

#include "ducklearn/aligned.hpp"

namespace {

using ducklearn::AlignedVector;

#if defined(__linux__)
int64_t resident_bytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  long size = 0, resident = 0;
  const int got = f ? std::fscanf(f, "%ld %ld", &size, &resident) : 0;
  if (f) std::fclose(f);
  return got == 2 ? static_cast<int64_t>(resident) * sysconf(_SC_PAGESIZE) : -1;
}

TEST(AlignedAllocator, FreedModelBuffersLeaveTheProcess) {
  constexpr size_t kFloats = (size_t{6} << 20) / sizeof(float);  // a 1.5M-parameter buffer
  // A freed block this size would raise glibc's mmap threshold above it, so that the next
  // one came from a heap arena that keeps it once freed: the case this allocator avoids.
  { AlignedVector<float> warm(kFloats, 1.0f); }
  const int64_t before = resident_bytes();
  ASSERT_GT(before, 0);
  {
    AlignedVector<float> v(kFloats, 1.0f);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data()) % 64, 0u);
    EXPECT_GE(resident_bytes() - before, static_cast<int64_t>(kFloats * sizeof(float)) / 2);
  }
  EXPECT_LT(resident_bytes() - before, int64_t{1} << 20);
}
#endif

TEST(AlignedAllocator, SmallAndLargeBuffersAreAlignedAndUsable) {
  for (size_t n : {size_t{1}, size_t{1000}, (size_t{1} << 20) / sizeof(double) + 3}) {
    AlignedVector<double> v(n, 2.0);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data()) % 64, 0u);
    v.resize(2 * n, 3.0);  // reallocation moves between the two kinds of storage
    EXPECT_EQ(v[n - 1], 2.0);
    EXPECT_EQ(v[2 * n - 1], 3.0);
  }
}

}  // namespace
