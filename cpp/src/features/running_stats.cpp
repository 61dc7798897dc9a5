#include "ducklearn/features/running_stats.hpp"

#include <atomic>
#include <cmath>
#include <limits>
#include <string>

#include "ducklearn/error.hpp"
#include "simd/kernels.hpp"

namespace ducklearn {

namespace {
uint64_t new_id() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

RunningStats::RunningStats(int64_t d) : id_(new_id()), d_(d) {
  DUCKLEARN_CHECK_ARG(d >= 1, "RunningStats needs d >= 1 columns, got " + std::to_string(d));
  reset();
}

RunningStats::RunningStats(const RunningStats& o)
    : id_(new_id()),
      d_(o.d_),
      count_(o.count_),
      mean_(o.mean_),
      m2_(o.m2_),
      min_(o.min_),
      max_(o.max_) {}

RunningStats& RunningStats::operator=(const RunningStats& o) {
  if (this != &o) {
    d_ = o.d_;
    count_ = o.count_;
    mean_ = o.mean_;
    m2_ = o.m2_;
    min_ = o.min_;
    max_ = o.max_;
    touch();
  }
  return *this;
}

void RunningStats::reset() {
  touch();
  const auto n = static_cast<size_t>(d_);
  count_.assign(n, 0.0);
  mean_.assign(n, 0.0);
  m2_.assign(n, 0.0);
  min_.assign(n, std::numeric_limits<float>::infinity());
  max_.assign(n, -std::numeric_limits<float>::infinity());
}

void RunningStats::update_minmax_row(const float* x) {
  // NaN compares false both ways, so missing values leave min/max untouched.
  for (int64_t j = 0; j < d_; ++j) {
    if (x[j] < min_[j]) min_[j] = x[j];
    if (x[j] > max_[j]) max_[j] = x[j];
  }
}

void RunningStats::update(const float* X, int64_t n) {
  touch();
  const auto& k = simd::kernels();
  for (int64_t r = 0; r < n; ++r) {
    const float* x = X + r * d_;
    k.welford_row(count_.data(), mean_.data(), m2_.data(), x, d_);
    update_minmax_row(x);
  }
}

void RunningStats::merge(const RunningStats& o) {
  DUCKLEARN_CHECK_ARG(o.d_ == d_, "cannot merge statistics of " + std::to_string(o.d_) +
                                      " columns into " + std::to_string(d_));
  touch();
  for (int64_t j = 0; j < d_; ++j) {
    const double na = count_[j], nb = o.count_[j];
    const double n = na + nb;
    if (nb == 0.0) continue;
    const double delta = o.mean_[j] - mean_[j];
    mean_[j] = na == 0.0 ? o.mean_[j] : mean_[j] + delta * (nb / n);
    m2_[j] = m2_[j] + o.m2_[j] + delta * delta * (na * nb / n);
    count_[j] = n;
    if (o.min_[j] < min_[j]) min_[j] = o.min_[j];
    if (o.max_[j] > max_[j]) max_[j] = o.max_[j];
  }
}

void RunningStats::standardize(const float* X, int64_t n, float* out) const {
  // Scale factors computed once per state, not once per value or per call: the per-row work
  // is then a subtract-multiply. Same formula as standardize_row, so the results are
  // identical. The cache is per thread because snapshots standardize from many threads.
  struct Scales {
    uint64_t id = 0, version = 0;
    AlignedVector<double> inv;
  };
  thread_local Scales cache;
  if (cache.id != id_ || cache.version != version_ ||
      static_cast<int64_t>(cache.inv.size()) != d_) {
    cache.inv.resize(static_cast<size_t>(d_));
    for (int64_t j = 0; j < d_; ++j) {
      const double c = count_[j];
      const double var = c > 0.0 ? m2_[j] / c : 0.0;
      cache.inv[j] = var > 0.0 ? 1.0 / std::sqrt(var) : 1.0;
    }
    cache.id = id_;
    cache.version = version_;
  }
  const auto& k = simd::kernels();
  for (int64_t r = 0; r < n; ++r) {
    k.shift_scale_row(mean_.data(), cache.inv.data(), X + r * d_, out + r * d_, d_);
  }
}

void RunningStats::update_standardize(const float* X, int64_t n, float* out) {
  touch();
  const auto& k = simd::kernels();
  for (int64_t r = 0; r < n; ++r) {
    const float* x = X + r * d_;
    k.welford_standardize_row(count_.data(), mean_.data(), m2_.data(), x, out + r * d_, d_);
    update_minmax_row(x);
  }
}

void RunningStats::minmax(const float* X, int64_t n, float* out) const {
  for (int64_t r = 0; r < n; ++r) {
    const float* x = X + r * d_;
    float* o = out + r * d_;
    for (int64_t j = 0; j < d_; ++j) {
      const float range = max_[j] - min_[j];
      o[j] = (range > 0.0f && std::isfinite(range)) ? (x[j] - min_[j]) / range : 0.0f;
    }
  }
}

void RunningStats::update_minmax(const float* X, int64_t n, float* out) {
  touch();
  const auto& k = simd::kernels();
  for (int64_t r = 0; r < n; ++r) {
    const float* x = X + r * d_;
    k.welford_row(count_.data(), mean_.data(), m2_.data(), x, d_);
    update_minmax_row(x);
    minmax(x, 1, out + r * d_);
  }
}

void RunningStats::variance(double* out, int ddof) const {
  for (int64_t j = 0; j < d_; ++j) {
    out[j] = count_[j] > ddof ? m2_[j] / (count_[j] - ddof)
                              : std::numeric_limits<double>::quiet_NaN();
  }
}

void RunningStats::load(const double* count, const double* mean, const double* m2,
                        const float* mn, const float* mx) {
  for (int64_t j = 0; j < d_; ++j) {
    DUCKLEARN_CHECK_ARG(count[j] >= 0.0 && std::isfinite(mean[j]) && m2[j] >= 0.0,
                        "invalid running-stats state at column " + std::to_string(j));
  }
  touch();
  count_.assign(count, count + d_);
  mean_.assign(mean, mean + d_);
  m2_.assign(m2, m2 + d_);
  min_.assign(mn, mn + d_);
  max_.assign(mx, mx + d_);
}

}  // namespace ducklearn
