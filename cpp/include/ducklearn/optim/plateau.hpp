#pragma once
/** Convergence detection: a plateau of an exponentially smoothed loss, with patience. */
#include <cstdint>

#include <string>

#include "ducklearn/export.hpp"
#include "ducklearn/state.hpp"

namespace ducklearn {

class DUCKLEARN_EXPORT PlateauDetector {
 public:
  /**
   * smoothing: weight of the newest loss in the moving average, in (0, 1] (1 = no smoothing).
   * patience: updates without improvement before converged() turns true (>= 1).
   * min_delta: an improvement counts only if smoothed < best * (1 - min_delta) (relative).
   */
  PlateauDetector(float smoothing = 0.3f, int64_t patience = 5, float min_delta = 1e-4f);

  /** Feeds one loss; returns converged(). Non-finite losses throw std::invalid_argument. */
  bool update(double loss);
  bool converged() const { return since_best_ >= patience_; }
  double smoothed() const { return smoothed_; }
  double best() const { return best_; }
  int64_t since_best() const { return since_best_; }
  int64_t count() const { return count_; }
  void reset();

  void save_state(StateDict& out, const std::string& prefix) const;
  void load_state(const StateDict& in, const std::string& prefix);

 private:
  float smoothing_;
  int64_t patience_;
  float min_delta_;
  double smoothed_ = 0.0;
  double best_ = 0.0;
  int64_t since_best_ = 0;
  int64_t count_ = 0;
};

}  // namespace ducklearn
