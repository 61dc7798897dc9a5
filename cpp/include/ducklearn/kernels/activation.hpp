#pragma once
/** Element-wise activations and row-wise softmax (float32, contiguous). */
#include <cstdint>
#include <string>

#include "ducklearn/export.hpp"

namespace ducklearn {

enum class Activation : int {
  Identity = 0,
  ReLU = 1,
  LeakyReLU = 2,  ///< max(z, alpha z), alpha = 0.01 unless given
  Tanh = 3,
  Sigmoid = 4,
  GELU = 5,       ///< tanh approximation: 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))
};

/** Parses "relu", "leaky_relu", "tanh", "sigmoid", "gelu", "identity"; throws on others. */
DUCKLEARN_EXPORT Activation activation_from_string(const std::string& name);
DUCKLEARN_EXPORT const char* to_string(Activation act);

/** a[i] = act(z[i]) for i < n. z and a may alias. */
DUCKLEARN_EXPORT void activation_forward(Activation act, const float* z, float* a, int64_t n,
                                         float alpha = 0.01f);

/**
 * dz[i] = da[i] * act'(z[i]) for i < n, where a = act(z) was the forward output
 * (sigmoid and tanh read the derivative from a; the others from z). da and dz may alias.
 */
DUCKLEARN_EXPORT void activation_backward(Activation act, const float* z, const float* a,
                                          const float* da, float* dz, int64_t n,
                                          float alpha = 0.01f);

/** p = softmax(z) row by row; z, p: rows × cols, row-major; may alias. */
DUCKLEARN_EXPORT void softmax_rows(const float* z, float* p, int64_t rows, int64_t cols);

/** Numerically stable sigmoid of one value. */
inline float sigmoid(float z) {
  if (z >= 0.0f) {
    const float e = __builtin_expf(-z);
    return 1.0f / (1.0f + e);
  }
  const float e = __builtin_expf(z);
  return e / (1.0f + e);
}

}  // namespace ducklearn
