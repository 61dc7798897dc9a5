#pragma once
/**
 * Per-column running statistics over a stream of rows: count, mean and variance (Welford),
 * min and max. States from several workers merge exactly (Chan, Golub & LeVeque 1979).
 * NaN entries are missing values: they are skipped and counted per column.
 * Accumulators are double so that 10^8 rows still give float-accurate means.
 */
#include <cstdint>
#include <vector>

#include "ducklearn/aligned.hpp"
#include "ducklearn/export.hpp"

namespace ducklearn {

class DUCKLEARN_EXPORT RunningStats {
 public:
  explicit RunningStats(int64_t d);
  // A copy is a new state: it gets its own identity (see `standardize`).
  RunningStats(const RunningStats& o);
  RunningStats& operator=(const RunningStats& o);

  int64_t dim() const { return d_; }

  /** Adds n rows (X: n × d, row-major). */
  void update(const float* X, int64_t n);
  /** Adds the rows of another state with the same dim. */
  void merge(const RunningStats& other);
  void reset();

  /**
   * out = (x - mean) / std for n rows using current statistics (std = 1 while var = 0).
   * The 1/std factors are kept per thread and reused while this state is unchanged, so a
   * one-row call costs a subtract-multiply per column, not a square root and two divisions.
   */
  void standardize(const float* X, int64_t n, float* out) const;
  /** For each row in order: update with it, then standardize it (fused, one pass). */
  void update_standardize(const float* X, int64_t n, float* out);
  /** out = (x - min) / (max - min), 0 where max == min or no data yet. */
  void minmax(const float* X, int64_t n, float* out) const;
  /** For each row in order: update min/max (and moments) with it, then min-max scale it. */
  void update_minmax(const float* X, int64_t n, float* out);

  const double* count() const { return count_.data(); }
  const double* mean() const { return mean_.data(); }
  const double* m2() const { return m2_.data(); }
  const float* min() const { return min_.data(); }
  const float* max() const { return max_.data(); }
  /** Variance with ddof (0: population, 1: sample); NaN where count <= ddof. */
  void variance(double* out, int ddof = 0) const;

  /** Replaces the state (arrays of length dim). */
  void load(const double* count, const double* mean, const double* m2, const float* mn,
            const float* mx);

 private:
  void update_minmax_row(const float* x);
  void touch() { ++version_; }

  // (id_, version_) names the current contents: id_ is unique per object (copies included),
  // version_ grows with every change. Used to key the per-thread cache of 1/std factors.
  uint64_t id_;
  uint64_t version_ = 0;

  int64_t d_;
  AlignedVector<double> count_, mean_, m2_;
  AlignedVector<float> min_, max_;
};

}  // namespace ducklearn
