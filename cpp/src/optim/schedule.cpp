#include "ducklearn/optim/schedule.hpp"

#include <cmath>
#include <string>

#include "ducklearn/error.hpp"

namespace ducklearn {
namespace {

float base_at(const Schedule& s, int64_t t) {
  switch (s.kind) {
    case ScheduleKind::Step:
      return s.lr * static_cast<float>(std::pow(static_cast<double>(s.gamma),
                                                static_cast<double>(t / s.step_size)));
    case ScheduleKind::Exponential:
      return s.lr * static_cast<float>(std::pow(static_cast<double>(s.gamma),
                                                static_cast<double>(t)));
    case ScheduleKind::InverseScaling:
      return s.lr / static_cast<float>(std::pow(1.0 + static_cast<double>(t),
                                                static_cast<double>(s.power)));
    case ScheduleKind::Cosine: {
      const double frac = static_cast<double>(t < s.t_max ? t : s.t_max) /
                          static_cast<double>(s.t_max);
      const double c = 0.5 * (1.0 + std::cos(M_PI * frac));
      return static_cast<float>(s.min_lr + (s.lr - s.min_lr) * c);
    }
    case ScheduleKind::Constant:
    default:
      return s.lr;
  }
}

}  // namespace

float Schedule::at(int64_t t) const {
  if (t < 0) t = 0;
  if (warmup_steps > 0 && t < warmup_steps) {
    const double frac = static_cast<double>(t) / static_cast<double>(warmup_steps);
    return static_cast<float>(base_at(*this, 0) *
                              (warmup_start + (1.0 - warmup_start) * frac));
  }
  return base_at(*this, t - warmup_steps);
}

void Schedule::validate() const {
  auto finite_pos = [](float v) { return std::isfinite(v) && v > 0.0f; };
  DUCKLEARN_CHECK_ARG(finite_pos(lr), "lr must be a finite number > 0, got " +
                                          std::to_string(lr));
  switch (kind) {
    case ScheduleKind::Step:
      DUCKLEARN_CHECK_ARG(step_size >= 1, "step_size must be >= 1, got " +
                                              std::to_string(step_size));
      DUCKLEARN_CHECK_ARG(finite_pos(gamma) && gamma <= 1.0f,
                          "gamma must be in (0, 1], got " + std::to_string(gamma));
      break;
    case ScheduleKind::Exponential:
      DUCKLEARN_CHECK_ARG(finite_pos(gamma) && gamma <= 1.0f,
                          "gamma must be in (0, 1], got " + std::to_string(gamma));
      break;
    case ScheduleKind::InverseScaling:
      DUCKLEARN_CHECK_ARG(std::isfinite(power) && power >= 0.0f,
                          "power must be a finite number >= 0, got " + std::to_string(power));
      break;
    case ScheduleKind::Cosine:
      DUCKLEARN_CHECK_ARG(t_max >= 1, "t_max must be >= 1, got " + std::to_string(t_max));
      DUCKLEARN_CHECK_ARG(std::isfinite(min_lr) && min_lr >= 0.0f && min_lr <= lr,
                          "min_lr must be in [0, lr], got " + std::to_string(min_lr));
      break;
    default:
      break;
  }
  DUCKLEARN_CHECK_ARG(warmup_steps >= 0, "warmup_steps must be >= 0, got " +
                                             std::to_string(warmup_steps));
  DUCKLEARN_CHECK_ARG(std::isfinite(warmup_start) && warmup_start >= 0.0f &&
                          warmup_start <= 1.0f,
                      "warmup_start must be in [0, 1], got " + std::to_string(warmup_start));
}

ScheduleKind schedule_from_string(const std::string& name) {
  if (name == "constant") return ScheduleKind::Constant;
  if (name == "step") return ScheduleKind::Step;
  if (name == "exponential") return ScheduleKind::Exponential;
  if (name == "inverse_scaling" || name == "invscaling") return ScheduleKind::InverseScaling;
  if (name == "cosine") return ScheduleKind::Cosine;
  detail::throw_invalid("unknown schedule '" + name +
                        "'; use one of: constant, step, exponential, inverse_scaling, cosine");
}

const char* to_string(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::Step: return "step";
    case ScheduleKind::Exponential: return "exponential";
    case ScheduleKind::InverseScaling: return "inverse_scaling";
    case ScheduleKind::Cosine: return "cosine";
    default: return "constant";
  }
}

}  // namespace ducklearn
