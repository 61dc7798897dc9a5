#include "ducklearn/error.hpp"

namespace ducklearn {

Error::Error(const std::string& msg, const char* file, int line)
    : std::runtime_error(msg + " (" + file + ":" + std::to_string(line) + ")") {}

namespace detail {
void throw_invalid(const std::string& msg) { throw std::invalid_argument(msg); }
void throw_error(const std::string& msg, const char* file, int line) {
  throw Error(msg, file, line);
}
}  // namespace detail

}  // namespace ducklearn
