#pragma once
/**
 * Errors raised by the core.
 *
 * Bad arguments throw std::invalid_argument (Python: ValueError) with a message that names
 * the argument and the fix. Internal failures throw ducklearn::Error with file:line.
 */
#include <stdexcept>
#include <string>

#include "ducklearn/export.hpp"

namespace ducklearn {

/** A failure inside the library (not the caller's fault), tagged with file:line. */
class DUCKLEARN_EXPORT Error : public std::runtime_error {
 public:
  Error(const std::string& msg, const char* file, int line);
};

/** The operation needs a CUDA build and/or device. */
class DUCKLEARN_EXPORT CudaUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
[[noreturn]] DUCKLEARN_EXPORT void throw_invalid(const std::string& msg);
[[noreturn]] DUCKLEARN_EXPORT void throw_error(const std::string& msg, const char* file, int line);
}  // namespace detail

}  // namespace ducklearn

/** Argument check: throws std::invalid_argument(msg) when cond is false. */
#define DUCKLEARN_CHECK_ARG(cond, msg)                      \
  do {                                                      \
    if (!(cond)) ::ducklearn::detail::throw_invalid(msg);   \
  } while (0)

/** Invariant check: throws ducklearn::Error("msg (file:line)") when cond is false. */
#define DUCKLEARN_CHECK_MSG(cond, msg)                                    \
  do {                                                                    \
    if (!(cond)) ::ducklearn::detail::throw_error(msg, __FILE__, __LINE__); \
  } while (0)
