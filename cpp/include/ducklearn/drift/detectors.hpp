#pragma once
/**
 * Change detectors on a stream of numbers (typically per-example losses or 0/1 errors).
 * update() is O(1) amortized (ADWIN: O(log W) memory and per-check work) and never
 * allocates after the first few thousand values.
 */
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ducklearn/export.hpp"
#include "ducklearn/state.hpp"

namespace ducklearn {

/**
 * Page-Hinkley test for an increase of the mean (Page 1954; Hinkley 1971), as used for
 * concept drift by Gama et al. (2013): m_t = alpha m_{t-1} + (x_t - mean_t - delta);
 * drift when m_t - min_t > threshold after min_instances values.
 */
class DUCKLEARN_EXPORT PageHinkley {
 public:
  PageHinkley(int64_t min_instances = 30, double delta = 0.005, double threshold = 50.0,
              double alpha = 1.0 - 1e-4);
  /** Feeds one value; returns true when a drift is detected (the detector then resets). */
  bool update(double x);
  void reset();
  int64_t count() const { return n_; }
  double mean() const { return mean_; }
  double statistic() const { return sum_ - min_sum_; }
  /** At the last detection: values since the cumulative sum's minimum, i.e. how long ago
   *  the change most likely started. */
  int64_t last_change_age() const { return last_change_age_; }

  void save_state(StateDict& out, const std::string& prefix) const;
  void load_state(const StateDict& in, const std::string& prefix);

 private:
  int64_t min_instances_;
  double delta_, threshold_, alpha_;
  int64_t n_ = 0, n_at_min_ = 0, last_change_age_ = 0;
  double mean_ = 0.0, sum_ = 0.0, min_sum_ = 0.0;
};

/**
 * ADWIN (Bifet & Gavaldà 2007): an adaptive window over an exponential histogram of buckets
 * that drops its older part whenever the means of the two parts differ by more than the
 * Hoeffding/Bernstein-style bound for confidence delta. After a drift, width() is the length
 * of the recent part that still agrees, and mean() its mean.
 */
class DUCKLEARN_EXPORT ADWIN {
 public:
  /** delta: confidence (smaller = fewer false alarms, slower detection); clock: check every
   *  `clock` values; max_buckets: buckets per row of the histogram; min_window: shortest
   *  sub-window considered. */
  explicit ADWIN(double delta = 0.002, int clock = 32, int max_buckets = 5, int min_window = 5);
  bool update(double x);
  void reset();
  int64_t width() const { return width_; }
  double mean() const { return width_ > 0 ? total_ / static_cast<double>(width_) : 0.0; }
  double variance() const { return width_ > 0 ? var_ / static_cast<double>(width_) : 0.0; }
  int64_t detections() const { return detections_; }

  void save_state(StateDict& out, const std::string& prefix) const;
  void load_state(const StateDict& in, const std::string& prefix);

 private:
  struct Bucket {
    double total;
    double var;  // sum of squared deviations inside the bucket
  };
  void insert(double x);
  void compress();
  bool check_cut();
  void drop_oldest();
  static double bucket_size(size_t row) { return static_cast<double>(int64_t{1} << row); }

  double delta_;
  int clock_, max_buckets_, min_window_;
  // rows_[i]: buckets of 2^i values, oldest first.
  std::vector<std::vector<Bucket>> rows_;
  int64_t width_ = 0;
  double total_ = 0.0, var_ = 0.0;
  int64_t ticks_ = 0;
  int64_t detections_ = 0;
};

}  // namespace ducklearn
