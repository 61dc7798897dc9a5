#pragma once
/** SHA-256 (FIPS 180-4), used to check the per-tensor checksums of model files. */
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "ducklearn/export.hpp"

namespace ducklearn::io {

class DUCKLEARN_EXPORT Sha256 {
 public:
  Sha256();
  /** Adds n bytes at data (n may be 0; data may be nullptr when n is 0). */
  void update(const void* data, size_t n);
  /** The digest; the object must not be updated afterwards. */
  std::array<uint8_t, 32> digest();
  /** Lower-case hex of digest(). */
  std::string hexdigest();

 private:
  void block(const uint8_t* p);
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_{};
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

/** Lower-case hex SHA-256 of n bytes. */
DUCKLEARN_EXPORT std::string sha256_hex(const void* data, size_t n);

}  // namespace ducklearn::io
