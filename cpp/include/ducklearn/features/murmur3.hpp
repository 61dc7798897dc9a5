#pragma once
/** MurmurHash3_x86_32 (Austin Appleby, public domain), bit-exact with the reference. */
#include <cstddef>
#include <cstdint>

#include "ducklearn/export.hpp"

namespace ducklearn {

/** Hashes len bytes at data with the given seed. */
DUCKLEARN_EXPORT uint32_t murmur3_32(const void* data, size_t len, uint32_t seed);

}  // namespace ducklearn
