#pragma once
/**
 * Signed feature hashing of (field, token) pairs into 2^bits buckets (the hashing trick).
 *
 * h = murmur3_32(token, seed = murmur3_32(field, seed)); the bucket is the low `bits` bits
 * of h and the sign is + when bit 31 is clear, - otherwise. Hashing the field into the seed
 * (as Vowpal Wabbit does with namespaces) keeps equal tokens of different fields apart without
 * building a concatenated string. Signs make collisions cancel in expectation instead of
 * adding up (Weinberger et al. 2009). bits must be in [1, 31] so bucket and sign bits differ.
 */
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ducklearn/export.hpp"

namespace ducklearn {

struct HashedFeature {
  uint32_t index;
  float sign;  ///< +1 or -1
};

/** Seed derived from a field name (hash it once per field, reuse for every token). */
DUCKLEARN_EXPORT uint32_t field_seed(std::string_view field, uint32_t seed = 0);

/** Bucket and sign of one token under a field seed. */
DUCKLEARN_EXPORT HashedFeature hash_token(uint32_t field_seed, std::string_view token,
                                          int bits);

/**
 * Hashes n tokens stored back to back in `bytes`, token i spanning
 * [offsets[i], offsets[i + 1]) (offsets has n + 1 entries, like Arrow string arrays).
 * Writes index[i] and sign[i].
 */
DUCKLEARN_EXPORT void hash_tokens(uint32_t field_seed, const char* bytes, const int64_t* offsets,
                                  int64_t n, int bits, uint32_t* index, float* sign);

/** Checks 1 <= bits <= 31; throws std::invalid_argument otherwise. */
DUCKLEARN_EXPORT void validate_hash_bits(int bits);

}  // namespace ducklearn
