#pragma once
// Shared helpers for the GoogleTest suite: seeded data, the SIMD targets this CPU can run,
// and double-precision reference functions the core is checked against.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "ducklearn/kernels/loss.hpp"
#include "simd/kernels.hpp"

namespace dltest {

using ducklearn::simd::KernelTable;
using ducklearn::simd::Target;

/** Lengths around and between the 8- and 16-float vector widths, plus 0 and 1. */
inline const std::vector<int64_t> kSizes = {0, 1, 3, 7, 15, 17, 31, 33, 100, 257};

/** Every target up to the best one this CPU supports (only generic off x86). */
inline std::vector<Target> supported_targets() {
  std::vector<Target> out{Target::Generic};
#if DUCKLEARN_X86_SIMD
  const int best = static_cast<int>(ducklearn::simd::best_supported_target());
  if (best >= static_cast<int>(Target::AVX2)) out.push_back(Target::AVX2);
  if (best >= static_cast<int>(Target::AVX512)) out.push_back(Target::AVX512);
#endif
  return out;
}

inline KernelTable table_for(Target t) {
  switch (t) {
#if DUCKLEARN_X86_SIMD
    case Target::AVX512: return ducklearn::simd::avx512::make_table();
    case Target::AVX2: return ducklearn::simd::avx2::make_table();
#endif
    default: return ducklearn::simd::generic::make_table();
  }
}

/** Test-name suffix for value-parameterized suites over targets. */
inline std::string target_param_name(const ::testing::TestParamInfo<Target>& info) {
  return ducklearn::simd::target_name(info.param);
}

/** Forces the dispatched target for one scope (public API tests) and restores it. */
class ScopedTarget {
 public:
  explicit ScopedTarget(Target t) : saved_(ducklearn::simd::active_target()) {
    ok_ = ducklearn::simd::set_target(t);
  }
  ~ScopedTarget() { ducklearn::simd::set_target(saved_); }
  ScopedTarget(const ScopedTarget&) = delete;
  ScopedTarget& operator=(const ScopedTarget&) = delete;
  bool ok() const { return ok_; }

 private:
  Target saved_;
  bool ok_ = false;
};

class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  float uniform(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(gen_); }
  double normal() { return std::normal_distribution<double>(0.0, 1.0)(gen_); }
  int64_t integer(int64_t lo, int64_t hi) {  // inclusive
    return std::uniform_int_distribution<int64_t>(lo, hi)(gen_);
  }
  std::vector<float> vec(int64_t n, float lo, float hi) {
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = uniform(lo, hi);
    return v;
  }
  /** Small integers: sums and products of these are exact in float in any order. */
  std::vector<float> ints(int64_t n, int lo, int hi) {
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = static_cast<float>(integer(lo, hi));
    return v;
  }
  std::mt19937_64& gen() { return gen_; }

 private:
  std::mt19937_64 gen_;
};

/** |got - want| <= atol + rtol |want|, with a message that shows both. */
inline ::testing::AssertionResult Close(double got, double want, double rtol, double atol) {
  const double err = std::fabs(got - want);
  if (err <= atol + rtol * std::fabs(want)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "got " << got << ", want " << want << " (error " << err
                                       << " > " << atol + rtol * std::fabs(want) << ")";
}

// ---- references of the activations (codes in ducklearn::Activation order) ----
// act_value<T> / act_deriv<T> in any precision; act_ref / act_grad_ref in double.

constexpr long double kGeluC = 0.797884560802865355879892119868763737L;  // sqrt(2 / pi)
constexpr long double kGeluA = 0.044715L;

template <class T>
T act_value(int act, T z, T alpha) {
  const T c = static_cast<T>(kGeluC), a = static_cast<T>(kGeluA);
  switch (act) {
    case 1: return z > 0 ? z : T(0);
    case 2: return z > 0 ? z : alpha * z;
    case 3: return std::tanh(z);
    case 4: return T(1) / (T(1) + std::exp(-z));
    case 5: return T(0.5) * z * (T(1) + std::tanh(c * (z + a * z * z * z)));
    default: return z;
  }
}
inline double act_ref(int act, double z, double alpha) { return act_value<double>(act, z, alpha); }

template <class T>
T act_deriv(int act, T z, T alpha) {
  const T c = static_cast<T>(kGeluC), a = static_cast<T>(kGeluA);
  switch (act) {
    case 1: return z > 0 ? T(1) : T(0);
    case 2: return z > 0 ? T(1) : alpha;
    case 3: {
      const T t = std::tanh(z);
      return T(1) - t * t;
    }
    case 4: {
      const T s = T(1) / (T(1) + std::exp(-z));
      return s * (T(1) - s);
    }
    case 5: {
      const T t = std::tanh(c * (z + a * z * z * z));
      return T(0.5) * (T(1) + t) + T(0.5) * z * (T(1) - t * t) * c * (T(1) + T(3) * a * z * z);
    }
    default: return T(1);
  }
}
inline double act_grad_ref(int act, double z, double alpha) {
  return act_deriv<double>(act, z, alpha);
}

// Summed loss of n rows of k outputs, written from the textbook definitions.
template <class T>
T loss_ref(const ducklearn::LossSpec& s, const std::vector<T>& P, const std::vector<float>& y,
           int64_t n, int64_t k) {
  T total = T(0);
  for (int64_t i = 0; i < n; ++i) {
    switch (s.kind) {
      case ducklearn::LossKind::Logistic: {
        const T p = T(1) / (T(1) + std::exp(-P[i]));
        total += -(y[i] * std::log(p) + (T(1) - y[i]) * std::log(T(1) - p));
        break;
      }
      case ducklearn::LossKind::SoftmaxCE: {
        T sum = T(0);
        for (int64_t j = 0; j < k; ++j) sum += std::exp(P[i * k + j]);
        total += -std::log(std::exp(P[i * k + static_cast<int64_t>(y[i])]) / sum);
        break;
      }
      default:
        for (int64_t j = 0; j < k; ++j) {
          const T r = P[i * k + j] - y[i];  // prediction minus target
          if (s.kind == ducklearn::LossKind::Squared) {
            total += T(0.5) * r * r;
          } else if (s.kind == ducklearn::LossKind::Huber) {
            const T d = s.delta;
            total += std::fabs(r) <= d ? T(0.5) * r * r : d * (std::fabs(r) - T(0.5) * d);
          } else {  // pinball on u = y - p
            const T u = -r;
            total += u >= T(0) ? s.tau * u : (s.tau - T(1)) * u;
          }
        }
    }
  }
  return total;
}

}  // namespace dltest
