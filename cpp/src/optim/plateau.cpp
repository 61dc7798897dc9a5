#include "ducklearn/optim/plateau.hpp"

#include <cmath>
#include <string>

#include "ducklearn/error.hpp"

namespace ducklearn {

PlateauDetector::PlateauDetector(float smoothing, int64_t patience, float min_delta)
    : smoothing_(smoothing), patience_(patience), min_delta_(min_delta) {
  DUCKLEARN_CHECK_ARG(std::isfinite(smoothing) && smoothing > 0.0f && smoothing <= 1.0f,
                      "smoothing must be in (0, 1], got " + std::to_string(smoothing));
  DUCKLEARN_CHECK_ARG(patience >= 1, "patience must be >= 1, got " + std::to_string(patience));
  DUCKLEARN_CHECK_ARG(std::isfinite(min_delta) && min_delta >= 0.0f,
                      "min_delta must be >= 0, got " + std::to_string(min_delta));
}

bool PlateauDetector::update(double loss) {
  DUCKLEARN_CHECK_ARG(std::isfinite(loss), "loss must be finite, got " + std::to_string(loss));
  if (count_ == 0) {
    smoothed_ = loss;
    best_ = loss;
    since_best_ = 0;
  } else {
    smoothed_ = smoothing_ * loss + (1.0 - smoothing_) * smoothed_;
    // Relative improvement test: scale-free, so the same min_delta fits any loss unit.
    const double threshold = best_ - std::abs(best_) * min_delta_;
    if (smoothed_ < threshold) {
      best_ = smoothed_;
      since_best_ = 0;
    } else {
      ++since_best_;
    }
  }
  ++count_;
  return converged();
}

void PlateauDetector::reset() {
  smoothed_ = best_ = 0.0;
  since_best_ = count_ = 0;
}

void PlateauDetector::save_state(StateDict& out, const std::string& p) const {
  out.set(p + "smoothing", smoothing_);
  out.set_int(p + "patience", patience_);
  out.set(p + "min_delta", min_delta_);
  out.set(p + "smoothed", smoothed_);
  out.set(p + "best", best_);
  out.set_int(p + "since_best", since_best_);
  out.set_int(p + "count", count_);
}

void PlateauDetector::load_state(const StateDict& in, const std::string& p) {
  *this = PlateauDetector(static_cast<float>(in.number(p + "smoothing")),
                          in.integer(p + "patience"), static_cast<float>(in.number(p + "min_delta")));
  smoothed_ = in.number(p + "smoothed");
  best_ = in.number(p + "best");
  since_best_ = in.integer(p + "since_best");
  count_ = in.integer(p + "count");
}

}  // namespace ducklearn
