#pragma once
/**
 * StateDict: the complete state of a core object as named float arrays plus JSON-able
 * scalars and strings. Checkpoints and model files are built from it (the tensors go to
 * safetensors, the rest to the JSON manifest), so the core stays free of file formats and of
 * Python. Loading validates every key, size and value, naming what is wrong.
 */
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ducklearn/export.hpp"

namespace ducklearn {

struct DUCKLEARN_EXPORT StateDict {
  std::map<std::string, std::vector<float>> f32;   ///< float32 tensors
  std::map<std::string, std::vector<double>> f64;  ///< float64 tensors (running statistics)
  std::map<std::string, double> numbers;           ///< scalars; integers exact below 2^53
  std::map<std::string, std::string> strings;

  void set(const std::string& key, double value) { numbers[key] = value; }
  void set_int(const std::string& key, int64_t value) {
    numbers[key] = static_cast<double>(value);
  }
  /** 64-bit words (RNG states) as hex: doubles cannot hold them exactly. */
  void set_u64(const std::string& key, uint64_t value);
  void set_str(const std::string& key, const std::string& value) { strings[key] = value; }

  bool has(const std::string& key) const;
  double number(const std::string& key) const;
  int64_t integer(const std::string& key) const;  ///< checks it is integral
  uint64_t u64(const std::string& key) const;
  const std::string& str(const std::string& key) const;
  /** A float32 tensor; expected_size >= 0 checks its length. */
  const std::vector<float>& tensor(const std::string& key, int64_t expected_size = -1) const;
  const std::vector<double>& tensor64(const std::string& key, int64_t expected_size = -1) const;
};

}  // namespace ducklearn
