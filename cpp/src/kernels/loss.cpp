#include "ducklearn/kernels/loss.hpp"

#include <cmath>
#include <string>

#include "ducklearn/error.hpp"
#include "ducklearn/kernels/activation.hpp"

namespace ducklearn {

LossKind loss_from_string(const std::string& name) {
  if (name == "logistic" || name == "log" || name == "log_loss") return LossKind::Logistic;
  if (name == "softmax" || name == "cross_entropy") return LossKind::SoftmaxCE;
  if (name == "squared" || name == "squared_error") return LossKind::Squared;
  if (name == "huber") return LossKind::Huber;
  if (name == "pinball" || name == "quantile") return LossKind::Pinball;
  detail::throw_invalid("unknown loss '" + name +
                        "'; use one of: logistic, softmax, squared, huber, pinball");
}

const char* to_string(LossKind kind) {
  switch (kind) {
    case LossKind::Logistic: return "logistic";
    case LossKind::SoftmaxCE: return "softmax";
    case LossKind::Huber: return "huber";
    case LossKind::Pinball: return "pinball";
    default: return "squared";
  }
}

void validate(const LossSpec& spec) {
  DUCKLEARN_CHECK_ARG(std::isfinite(spec.delta) && spec.delta > 0.0f,
                      "huber delta must be > 0, got " + std::to_string(spec.delta));
  DUCKLEARN_CHECK_ARG(std::isfinite(spec.tau) && spec.tau > 0.0f && spec.tau < 1.0f,
                      "pinball tau (quantile) must be in (0, 1), got " +
                          std::to_string(spec.tau));
}

double loss_and_grad(const LossSpec& spec, const float* P, const float* y, int64_t n,
                     int64_t k, float* grad, float scale, bool with_loss) {
  double total = 0.0;
  switch (spec.kind) {
    case LossKind::Logistic:
      // Only column 0 is read and written: with k > 1 the other grad entries would be left
      // uninitialized.
      DUCKLEARN_CHECK_ARG(k == 1, "logistic loss needs 1 output column (a logit), got " +
                                      std::to_string(k) + "; use 'softmax' for " +
                                      "multi-class outputs");
      for (int64_t i = 0; i < n; ++i) {
        const double z = P[i * k];
        const double t = y[i];
        // softplus(z) - t z, written to avoid overflow for large |z|.
        if (with_loss) {
          total += (z > 0.0 ? z : 0.0) - t * z + std::log1p(std::exp(-std::fabs(z)));
        }
        if (grad != nullptr) grad[i * k] = scale * (sigmoid(static_cast<float>(z)) - y[i]);
      }
      break;
    case LossKind::SoftmaxCE:
      for (int64_t i = 0; i < n; ++i) {
        const float* z = P + i * k;
        // Check the float before converting: NaN or a huge value cast to int64 is undefined.
        DUCKLEARN_CHECK_ARG(y[i] >= 0.0f && y[i] < static_cast<float>(k) &&
                                std::floor(y[i]) == y[i],
                            "class index " + std::to_string(y[i]) + " outside [0, " +
                                std::to_string(k) + ")");
        const auto c = static_cast<int64_t>(y[i]);
        float mx = z[0];
        for (int64_t j = 1; j < k; ++j) mx = z[j] > mx ? z[j] : mx;
        double sum = 0.0;
        for (int64_t j = 0; j < k; ++j) sum += std::exp(static_cast<double>(z[j] - mx));
        total += std::log(sum) + mx - z[c];
        if (grad != nullptr) {
          float* g = grad + i * k;
          const double inv = 1.0 / sum;
          for (int64_t j = 0; j < k; ++j) {
            const double p = std::exp(static_cast<double>(z[j] - mx)) * inv;
            g[j] = scale * static_cast<float>(p - (j == c ? 1.0 : 0.0));
          }
        }
      }
      break;
    case LossKind::Squared:
      for (int64_t i = 0; i < n * k; ++i) {
        const double r = static_cast<double>(P[i]) - y[i / k];
        total += 0.5 * r * r;
        if (grad != nullptr) grad[i] = scale * static_cast<float>(r);
      }
      break;
    case LossKind::Huber: {
      const double d = spec.delta;
      for (int64_t i = 0; i < n * k; ++i) {
        const double r = static_cast<double>(P[i]) - y[i / k];
        const double a = std::fabs(r);
        total += a <= d ? 0.5 * r * r : d * (a - 0.5 * d);
        if (grad != nullptr) {
          grad[i] = scale * static_cast<float>(a <= d ? r : (r > 0.0 ? d : -d));
        }
      }
      break;
    }
    case LossKind::Pinball: {
      const double tau = spec.tau;
      for (int64_t i = 0; i < n * k; ++i) {
        const double r = static_cast<double>(y[i / k]) - P[i];
        total += r >= 0.0 ? tau * r : (tau - 1.0) * r;
        // Subgradient 0 at r == 0 (inside [-tau, 1 - tau]).
        if (grad != nullptr) {
          grad[i] = scale * static_cast<float>(r > 0.0 ? -tau : (r < 0.0 ? 1.0 - tau : 0.0));
        }
      }
      break;
    }
  }
  return total;
}

}  // namespace ducklearn
