#include "ducklearn/drift/detectors.hpp"

#include <cmath>
#include <string>

#include "ducklearn/error.hpp"

namespace ducklearn {

PageHinkley::PageHinkley(int64_t min_instances, double delta, double threshold, double alpha)
    : min_instances_(min_instances), delta_(delta), threshold_(threshold), alpha_(alpha) {
  DUCKLEARN_CHECK_ARG(min_instances >= 1, "min_instances must be >= 1");
  DUCKLEARN_CHECK_ARG(std::isfinite(delta) && delta >= 0.0, "delta must be >= 0");
  DUCKLEARN_CHECK_ARG(std::isfinite(threshold) && threshold > 0.0, "threshold must be > 0");
  DUCKLEARN_CHECK_ARG(std::isfinite(alpha) && alpha > 0.0 && alpha <= 1.0,
                      "alpha (forgetting factor) must be in (0, 1]");
}

void PageHinkley::reset() {
  n_ = n_at_min_ = 0;
  mean_ = sum_ = min_sum_ = 0.0;
}

bool PageHinkley::update(double x) {
  DUCKLEARN_CHECK_ARG(std::isfinite(x), "PageHinkley.update needs a finite value");
  ++n_;
  mean_ += (x - mean_) / static_cast<double>(n_);
  sum_ = alpha_ * sum_ + (x - mean_ - delta_);
  if (sum_ < min_sum_) {
    min_sum_ = sum_;
    n_at_min_ = n_;
  }
  if (n_ >= min_instances_ && sum_ - min_sum_ > threshold_) {
    last_change_age_ = n_ - n_at_min_;
    reset();
    return true;
  }
  return false;
}

ADWIN::ADWIN(double delta, int clock, int max_buckets, int min_window)
    : delta_(delta), clock_(clock), max_buckets_(max_buckets), min_window_(min_window) {
  DUCKLEARN_CHECK_ARG(std::isfinite(delta) && delta > 0.0 && delta < 1.0,
                      "delta must be in (0, 1), got " + std::to_string(delta));
  DUCKLEARN_CHECK_ARG(clock >= 1, "clock must be >= 1");
  DUCKLEARN_CHECK_ARG(max_buckets >= 2, "max_buckets must be >= 2");
  DUCKLEARN_CHECK_ARG(min_window >= 1, "min_window must be >= 1");
}

void ADWIN::reset() {
  rows_.clear();
  width_ = 0;
  total_ = var_ = 0.0;
  ticks_ = 0;
}

void ADWIN::insert(double x) {
  // Incremental variance of the whole window (West 1979), then a new size-1 bucket.
  if (width_ > 0) {
    const double mean = total_ / static_cast<double>(width_);
    var_ += static_cast<double>(width_) * (x - mean) * (x - mean) /
            static_cast<double>(width_ + 1);
  }
  ++width_;
  total_ += x;
  if (rows_.empty()) rows_.emplace_back();
  rows_[0].push_back(Bucket{x, 0.0});
  compress();
}

void ADWIN::compress() {
  for (size_t r = 0; r < rows_.size(); ++r) {
    if (static_cast<int>(rows_[r].size()) <= max_buckets_) break;
    // Merge the two oldest buckets of row r into one of row r + 1.
    const Bucket a = rows_[r][0], b = rows_[r][1];
    const double n = bucket_size(r);
    const double ma = a.total / n, mb = b.total / n;
    const Bucket merged{a.total + b.total, a.var + b.var + n * n * (ma - mb) * (ma - mb) / (2 * n)};
    rows_[r].erase(rows_[r].begin(), rows_[r].begin() + 2);
    if (r + 1 == rows_.size()) rows_.emplace_back();
    rows_[r + 1].push_back(merged);
  }
}

void ADWIN::drop_oldest() {
  // The oldest bucket lives in the highest non-empty row, at its front. Removing it uses the
  // two-group decomposition V = V_b + V_rest + n_b n_rest / n (mean_b - mean_rest)^2.
  for (size_t r = rows_.size(); r-- > 0;) {
    if (rows_[r].empty()) continue;
    const Bucket b = rows_[r].front();
    rows_[r].erase(rows_[r].begin());
    const double n_b = bucket_size(r);
    const double n = static_cast<double>(width_);
    const double n_rest = n - n_b;
    const double mean_b = b.total / n_b;
    const double mean_rest = n_rest > 0.0 ? (total_ - b.total) / n_rest : 0.0;
    var_ -= b.var + n_b * n_rest / n * (mean_b - mean_rest) * (mean_b - mean_rest);
    if (var_ < 0.0 || n_rest <= 0.0) var_ = 0.0;  // rounding can leave a tiny negative
    width_ -= static_cast<int64_t>(n_b);
    total_ -= b.total;
    while (!rows_.empty() && rows_.back().empty()) rows_.pop_back();
    return;
  }
}

bool ADWIN::check_cut() {
  // Walk split points from the oldest bucket forward: W0 = older part, W1 = the rest.
  bool changed = false;
  bool again = true;
  while (again && width_ > 2 * min_window_) {
    again = false;
    double n0 = 0.0, s0 = 0.0;
    const double n = static_cast<double>(width_);
    const double v = var_ / n;
    const double dd = std::log(2.0 * std::log(n) / delta_);
    for (size_t r = rows_.size(); r-- > 0 && !again;) {
      for (size_t i = 0; i < rows_[r].size(); ++i) {
        n0 += bucket_size(r);
        s0 += rows_[r][i].total;
        const double n1 = n - n0;
        if (n0 < min_window_ || n1 < min_window_) continue;
        if (n1 <= 0) break;
        const double u0 = s0 / n0, u1 = (total_ - s0) / n1;
        const double m = 1.0 / (n0 - min_window_ + 1) + 1.0 / (n1 - min_window_ + 1);
        const double eps = std::sqrt(2.0 * m * v * dd) + 2.0 / 3.0 * dd * m;
        if (std::fabs(u0 - u1) > eps) {
          drop_oldest();
          changed = again = true;
          break;
        }
      }
    }
  }
  return changed;
}

bool ADWIN::update(double x) {
  DUCKLEARN_CHECK_ARG(std::isfinite(x), "ADWIN.update needs a finite value");
  insert(x);
  if (++ticks_ % clock_ != 0) return false;
  const bool changed = check_cut();
  if (changed) ++detections_;
  return changed;
}

void PageHinkley::save_state(StateDict& out, const std::string& p) const {
  out.set(p + "min_instances", static_cast<double>(min_instances_));
  out.set(p + "delta", delta_);
  out.set(p + "threshold", threshold_);
  out.set(p + "alpha", alpha_);
  out.set_int(p + "n", n_);
  out.set_int(p + "n_at_min", n_at_min_);
  out.set_int(p + "last_change_age", last_change_age_);
  out.set(p + "mean", mean_);
  out.set(p + "sum", sum_);
  out.set(p + "min_sum", min_sum_);
}

void PageHinkley::load_state(const StateDict& in, const std::string& p) {
  *this = PageHinkley(in.integer(p + "min_instances"), in.number(p + "delta"),
                      in.number(p + "threshold"), in.number(p + "alpha"));
  n_ = in.integer(p + "n");
  n_at_min_ = in.integer(p + "n_at_min");
  last_change_age_ = in.integer(p + "last_change_age");
  mean_ = in.number(p + "mean");
  sum_ = in.number(p + "sum");
  min_sum_ = in.number(p + "min_sum");
}

void ADWIN::save_state(StateDict& out, const std::string& p) const {
  out.set(p + "delta", delta_);
  out.set_int(p + "clock", clock_);
  out.set_int(p + "max_buckets", max_buckets_);
  out.set_int(p + "min_window", min_window_);
  out.set_int(p + "width", width_);
  out.set(p + "total", total_);
  out.set(p + "var", var_);
  out.set_int(p + "ticks", ticks_);
  out.set_int(p + "detections", detections_);
  out.set_int(p + "rows", static_cast<int64_t>(rows_.size()));
  for (size_t r = 0; r < rows_.size(); ++r) {
    std::vector<double> flat;
    for (const auto& b : rows_[r]) {
      flat.push_back(b.total);
      flat.push_back(b.var);
    }
    out.f64[p + "row." + std::to_string(r)] = std::move(flat);
  }
}

void ADWIN::load_state(const StateDict& in, const std::string& p) {
  *this = ADWIN(in.number(p + "delta"), static_cast<int>(in.integer(p + "clock")),
                static_cast<int>(in.integer(p + "max_buckets")),
                static_cast<int>(in.integer(p + "min_window")));
  const int64_t rows = in.integer(p + "rows");
  DUCKLEARN_CHECK_ARG(rows >= 0 && rows <= 64, "ADWIN state: implausible row count");
  int64_t width = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const auto& flat = in.tensor64(p + "row." + std::to_string(r));
    DUCKLEARN_CHECK_ARG(flat.size() % 2 == 0 &&
                            static_cast<int>(flat.size() / 2) <= max_buckets_ + 1,
                        "ADWIN state: malformed bucket row " + std::to_string(r));
    rows_.emplace_back();
    for (size_t i = 0; i < flat.size(); i += 2) rows_.back().push_back(Bucket{flat[i], flat[i + 1]});
    width += static_cast<int64_t>(flat.size() / 2) << r;
  }
  width_ = in.integer(p + "width");
  DUCKLEARN_CHECK_ARG(width == width_, "ADWIN state: buckets do not add up to the width");
  total_ = in.number(p + "total");
  var_ = in.number(p + "var");
  ticks_ = in.integer(p + "ticks");
  detections_ = in.integer(p + "detections");
}

}  // namespace ducklearn
