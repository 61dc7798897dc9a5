#include "ducklearn/kernels/activation.hpp"

#include <string>

#include "ducklearn/error.hpp"
#include "simd/kernels.hpp"

namespace ducklearn {

Activation activation_from_string(const std::string& name) {
  if (name == "identity" || name == "linear") return Activation::Identity;
  if (name == "relu") return Activation::ReLU;
  if (name == "leaky_relu") return Activation::LeakyReLU;
  if (name == "tanh") return Activation::Tanh;
  if (name == "sigmoid" || name == "logistic") return Activation::Sigmoid;
  if (name == "gelu") return Activation::GELU;
  detail::throw_invalid("unknown activation '" + name +
                        "'; use one of: identity, relu, leaky_relu, tanh, sigmoid, gelu");
}

const char* to_string(Activation act) {
  switch (act) {
    case Activation::ReLU: return "relu";
    case Activation::LeakyReLU: return "leaky_relu";
    case Activation::Tanh: return "tanh";
    case Activation::Sigmoid: return "sigmoid";
    case Activation::GELU: return "gelu";
    default: return "identity";
  }
}

void activation_forward(Activation act, const float* z, float* a, int64_t n, float alpha) {
  simd::kernels().act_forward(static_cast<int>(act), alpha, z, a, n);
}

void activation_backward(Activation act, const float* z, const float* a, const float* da,
                         float* dz, int64_t n, float alpha) {
  simd::kernels().act_backward(static_cast<int>(act), alpha, z, a, da, dz, n);
}

void softmax_rows(const float* z, float* p, int64_t rows, int64_t cols) {
  if (cols <= 0) return;
  for (int64_t r = 0; r < rows; ++r) {
    const float* zr = z + r * cols;
    float* pr = p + r * cols;
    float mx = zr[0];
    for (int64_t j = 1; j < cols; ++j) mx = zr[j] > mx ? zr[j] : mx;
    double sum = 0.0;
    for (int64_t j = 0; j < cols; ++j) {
      const float e = __builtin_expf(zr[j] - mx);
      pr[j] = e;
      sum += e;
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t j = 0; j < cols; ++j) pr[j] *= inv;
  }
}

}  // namespace ducklearn
