#include "ducklearn/features/hashing.hpp"

#include <string>

#include "ducklearn/error.hpp"
#include "ducklearn/features/murmur3.hpp"

namespace ducklearn {

void validate_hash_bits(int bits) {
  DUCKLEARN_CHECK_ARG(bits >= 1 && bits <= 31,
                      "hash bits must be in [1, 31] (2 to 2^31 buckets), got " +
                          std::to_string(bits));
}

uint32_t field_seed(std::string_view field, uint32_t seed) {
  return murmur3_32(field.data(), field.size(), seed);
}

HashedFeature hash_token(uint32_t fseed, std::string_view token, int bits) {
  // bits = 32 would let the sign bit pick the bucket too; bits < 1 has no buckets.
  if (bits < 1 || bits > 31) validate_hash_bits(bits);
  const uint32_t h = murmur3_32(token.data(), token.size(), fseed);
  const uint32_t mask = (1u << bits) - 1u;
  return HashedFeature{h & mask, (h >> 31) ? -1.0f : 1.0f};
}

void hash_tokens(uint32_t fseed, const char* bytes, const int64_t* offsets, int64_t n, int bits,
                 uint32_t* index, float* sign) {
  validate_hash_bits(bits);
  const uint32_t mask = (1u << bits) - 1u;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t begin = offsets[i];
    const int64_t len = offsets[i + 1] - begin;
    DUCKLEARN_CHECK_ARG(len >= 0, "token offsets must be non-decreasing (token " +
                                      std::to_string(i) + ")");
    const uint32_t h = murmur3_32(bytes + begin, static_cast<size_t>(len), fseed);
    index[i] = h & mask;
    sign[i] = (h >> 31) ? -1.0f : 1.0f;
  }
}

}  // namespace ducklearn
