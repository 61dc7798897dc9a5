#pragma once
#include <cstdint>

#include "ducklearn/export.hpp"

namespace ducklearn {

/**
 * One-hot encoding: out (n × n_categories, row-major) gets 1 at codes[i] and 0 elsewhere.
 * With other_bucket, a code outside [0, n_categories - 1) goes to the last column (the
 * "other" bucket); without it such a code throws std::invalid_argument naming the row.
 */
DUCKLEARN_EXPORT void one_hot(const int64_t* codes, int64_t n, int64_t n_categories,
                              bool other_bucket, float* out);

}  // namespace ducklearn
