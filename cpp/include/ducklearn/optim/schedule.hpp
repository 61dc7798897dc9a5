#pragma once
/** Learning-rate schedules: lr as a function of the optimizer step t = 0, 1, 2, ... */
#include <cstdint>
#include <string>

#include "ducklearn/export.hpp"

namespace ducklearn {

enum class ScheduleKind : int {
  Constant = 0,        ///< lr
  Step = 1,            ///< lr * gamma^floor(t / step_size)
  Exponential = 2,     ///< lr * gamma^t
  InverseScaling = 3,  ///< lr / (1 + t)^power
  Cosine = 4,          ///< min_lr + (lr - min_lr) (1 + cos(pi min(t, t_max) / t_max)) / 2
};

/**
 * A schedule plus optional linear warmup. With warmup_steps = W > 0, step t < W uses
 * at_base(0) * (warmup_start + (1 - warmup_start) t / W) and step t >= W uses at_base(t - W),
 * so the decay starts where the warmup ends.
 */
struct DUCKLEARN_EXPORT Schedule {
  ScheduleKind kind = ScheduleKind::Constant;
  float lr = 0.01f;
  float gamma = 0.1f;
  int64_t step_size = 1000;
  float power = 0.5f;
  int64_t t_max = 1000;
  float min_lr = 0.0f;
  int64_t warmup_steps = 0;
  float warmup_start = 0.0f;  ///< warmup starts at this fraction of the base rate

  /** Learning rate for step t (t >= 0). */
  float at(int64_t t) const;
  /** Throws std::invalid_argument naming the bad field. */
  void validate() const;
};

DUCKLEARN_EXPORT ScheduleKind schedule_from_string(const std::string& name);
DUCKLEARN_EXPORT const char* to_string(ScheduleKind kind);

}  // namespace ducklearn
