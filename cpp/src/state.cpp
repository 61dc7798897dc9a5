#include "ducklearn/state.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "ducklearn/error.hpp"

namespace ducklearn {
namespace {
[[noreturn]] void missing(const std::string& key, const char* what) {
  detail::throw_invalid("state is missing " + std::string(what) + " '" + key + "'");
}
}  // namespace

void StateDict::set_u64(const std::string& key, uint64_t value) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(value));
  strings[key] = buf;
}

bool StateDict::has(const std::string& key) const {
  return numbers.count(key) || strings.count(key) || f32.count(key) || f64.count(key);
}

double StateDict::number(const std::string& key) const {
  const auto it = numbers.find(key);
  if (it == numbers.end()) missing(key, "number");
  return it->second;
}

int64_t StateDict::integer(const std::string& key) const {
  const double v = number(key);
  DUCKLEARN_CHECK_ARG(std::isfinite(v) && std::floor(v) == v && std::fabs(v) < 9.007e15,
                      "state value '" + key + "' must be an integer");
  return static_cast<int64_t>(v);
}

uint64_t StateDict::u64(const std::string& key) const {
  const std::string& s = str(key);
  DUCKLEARN_CHECK_ARG(s.size() == 16 && s.find_first_not_of("0123456789abcdef") == std::string::npos,
                      "state value '" + key + "' must be 16 hex digits");
  return std::strtoull(s.c_str(), nullptr, 16);
}

const std::string& StateDict::str(const std::string& key) const {
  const auto it = strings.find(key);
  if (it == strings.end()) missing(key, "string");
  return it->second;
}

const std::vector<float>& StateDict::tensor(const std::string& key, int64_t expected) const {
  const auto it = f32.find(key);
  if (it == f32.end()) missing(key, "float32 tensor");
  DUCKLEARN_CHECK_ARG(expected < 0 || static_cast<int64_t>(it->second.size()) == expected,
                      "state tensor '" + key + "' has " + std::to_string(it->second.size()) +
                          " values, expected " + std::to_string(expected));
  return it->second;
}

const std::vector<double>& StateDict::tensor64(const std::string& key, int64_t expected) const {
  const auto it = f64.find(key);
  if (it == f64.end()) missing(key, "float64 tensor");
  DUCKLEARN_CHECK_ARG(expected < 0 || static_cast<int64_t>(it->second.size()) == expected,
                      "state tensor '" + key + "' has " + std::to_string(it->second.size()) +
                          " values, expected " + std::to_string(expected));
  return it->second;
}

}  // namespace ducklearn
