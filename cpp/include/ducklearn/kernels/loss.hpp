#pragma once
/**
 * Losses on raw model outputs (logits for classification) with their gradients.
 *
 * Every loss takes predictions P (n × k, row-major) and targets y (n values: a 0/1 label for
 * Logistic, a class index for SoftmaxCE, the target value otherwise), writes dL/dP into
 * grad (n × k) scaled by `scale` (e.g. 1/n for a mean), and returns the summed loss.
 */
#include <cstdint>
#include <string>

#include "ducklearn/export.hpp"

namespace ducklearn {

enum class LossKind : int {
  Logistic = 0,   ///< binary cross-entropy on a logit, y in {0, 1}; k == 1
  SoftmaxCE = 1,  ///< cross-entropy of softmax(logits), y a class index in [0, k)
  Squared = 2,    ///< 0.5 (p - y)^2
  Huber = 3,      ///< 0.5 r^2 if |r| <= delta else delta (|r| - 0.5 delta)
  Pinball = 4,    ///< quantile loss: max(tau r, (tau - 1) r) with r = y - p
};

struct LossSpec {
  LossKind kind = LossKind::Squared;
  float delta = 1.0f;  ///< Huber threshold
  float tau = 0.5f;    ///< Pinball quantile in (0, 1)
};

/** Parses "logistic"/"log", "softmax"/"cross_entropy", "squared", "huber", "pinball"/"quantile". */
DUCKLEARN_EXPORT LossKind loss_from_string(const std::string& name);
DUCKLEARN_EXPORT const char* to_string(LossKind kind);

/** Validates spec parameters (delta > 0, 0 < tau < 1); throws std::invalid_argument. */
DUCKLEARN_EXPORT void validate(const LossSpec& spec);

/**
 * Summed loss over n rows; grad (may be nullptr) receives scale * dL/dP. with_loss = false
 * skips the logarithms where the gradient does not need them (the result is then not the
 * loss for every kind; use it when only the gradient matters).
 */
DUCKLEARN_EXPORT double loss_and_grad(const LossSpec& spec, const float* P, const float* y,
                                      int64_t n, int64_t k, float* grad, float scale = 1.0f,
                                      bool with_loss = true);

}  // namespace ducklearn
