#include "ducklearn/features/one_hot.hpp"

#include <string>

#include "ducklearn/error.hpp"

namespace ducklearn {

void one_hot(const int64_t* codes, int64_t n, int64_t n_categories, bool other_bucket,
             float* out) {
  DUCKLEARN_CHECK_ARG(n_categories >= (other_bucket ? 2 : 1),
                      "one_hot needs at least one category");
  const int64_t known = other_bucket ? n_categories - 1 : n_categories;
  for (int64_t i = 0; i < n; ++i) {
    float* row = out + i * n_categories;
    for (int64_t j = 0; j < n_categories; ++j) row[j] = 0.0f;
    int64_t c = codes[i];
    if (c < 0 || c >= known) {
      DUCKLEARN_CHECK_ARG(other_bucket, "category code " + std::to_string(c) + " at row " +
                                            std::to_string(i) + " is outside [0, " +
                                            std::to_string(known) +
                                            "); enable the 'other' bucket or fix the code");
      c = n_categories - 1;
    }
    row[c] = 1.0f;
  }
}

}  // namespace ducklearn
