#include "ducklearn/optim/optimizer.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>

#include "ducklearn/error.hpp"
#include "denormals.hpp"
#include "simd/kernels.hpp"

namespace ducklearn {

void OptimizerConfig::validate() const {
  schedule.validate();
  auto check_unit = [](float v, const char* name, bool allow_zero) {
    const bool ok = std::isfinite(v) && (allow_zero ? v >= 0.0f : v > 0.0f) && v < 1.0f;
    DUCKLEARN_CHECK_ARG(ok, std::string(name) + " must be in " + (allow_zero ? "[0, 1)" : "(0, 1)") +
                                ", got " + std::to_string(v));
  };
  check_unit(momentum, "momentum", true);
  DUCKLEARN_CHECK_ARG(!nesterov || momentum > 0.0f,
                      "nesterov=True needs momentum > 0; set momentum (e.g. 0.9)");
  check_unit(beta1, "beta1", true);
  check_unit(beta2, "beta2", true);
  check_unit(rho, "rho", true);
  DUCKLEARN_CHECK_ARG(std::isfinite(eps) && eps > 0.0f,
                      "eps must be a finite number > 0, got " + std::to_string(eps));
  DUCKLEARN_CHECK_ARG(std::isfinite(initial_accumulator) && initial_accumulator >= 0.0f,
                      "initial_accumulator must be >= 0, got " +
                          std::to_string(initial_accumulator));
  DUCKLEARN_CHECK_ARG(std::isfinite(l2) && l2 >= 0.0f,
                      "l2 must be a finite number >= 0, got " + std::to_string(l2));
  DUCKLEARN_CHECK_ARG(std::isfinite(weight_decay) && weight_decay >= 0.0f,
                      "weight_decay must be a finite number >= 0, got " +
                          std::to_string(weight_decay));
  DUCKLEARN_CHECK_ARG(std::isfinite(clip_norm) && clip_norm >= 0.0f,
                      "clip_norm must be >= 0 (0 disables clipping), got " +
                          std::to_string(clip_norm));
  DUCKLEARN_CHECK_ARG(std::isfinite(hypergradient) && hypergradient >= 0.0f,
                      "hypergradient (the learning rate's own step size) must be >= 0 "
                      "(0 disables it), got " + std::to_string(hypergradient));
}

int OptimizerConfig::slots() const { return rule_slots() + (hypergradient > 0.0f ? 1 : 0); }

int OptimizerConfig::rule_slots() const {
  switch (kind) {
    case OptimizerKind::SGD: return momentum > 0.0f ? 1 : 0;
    case OptimizerKind::AdaGrad:
    case OptimizerKind::RMSProp: return 1;
    case OptimizerKind::Adam:
    case OptimizerKind::AdamW: return 2;
  }
  return 0;
}

OptimizerKind optimizer_from_string(const std::string& name) {
  std::string s = name;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "sgd") return OptimizerKind::SGD;
  if (s == "adagrad") return OptimizerKind::AdaGrad;
  if (s == "rmsprop") return OptimizerKind::RMSProp;
  if (s == "adam") return OptimizerKind::Adam;
  if (s == "adamw") return OptimizerKind::AdamW;
  detail::throw_invalid("unknown optimizer '" + name +
                        "'; use one of: sgd, adagrad, rmsprop, adam, adamw");
}

const char* to_string(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::AdaGrad: return "adagrad";
    case OptimizerKind::RMSProp: return "rmsprop";
    case OptimizerKind::Adam: return "adam";
    case OptimizerKind::AdamW: return "adamw";
    default: return "sgd";
  }
}

Optimizer::Optimizer(const OptimizerConfig& config) : config_(config) {
  config_.validate();
  hd_lr_ = config_.schedule.at(0);
}

std::vector<std::string> Optimizer::slot_names() const {
  std::vector<std::string> names;
  switch (config_.kind) {
    case OptimizerKind::SGD:
      if (config_.momentum > 0.0f) names.emplace_back("velocity");
      break;
    case OptimizerKind::AdaGrad: names.emplace_back("sum_sq"); break;
    case OptimizerKind::RMSProp: names.emplace_back("mean_sq"); break;
    default:
      names.emplace_back("m");
      names.emplace_back("v");
  }
  if (config_.hypergradient > 0.0f) names.emplace_back("hd_direction");
  return names;
}

float Optimizer::current_lr() const {
  const float base = config_.hypergradient > 0.0f ? hd_lr_ : config_.schedule.at(t_);
  return base * lr_scale_;
}

void Optimizer::set_lr_scale(float scale) {
  DUCKLEARN_CHECK_ARG(std::isfinite(scale) && scale >= 0.0f,
                      "lr_scale must be a finite number >= 0, got " + std::to_string(scale));
  lr_scale_ = scale;
}

void Optimizer::set_hypergradient_lr(float lr) {
  DUCKLEARN_CHECK_ARG(std::isfinite(lr) && lr >= 0.0f,
                      "hypergradient_lr must be a finite number >= 0, got " + std::to_string(lr));
  hd_lr_ = lr;
}

void Optimizer::reset() {
  state_.clear();
  state_.shrink_to_fit();
  n_ = 0;
  t_ = 0;
  hd_lr_ = config_.schedule.at(0);
}

void Optimizer::load_state(int64_t t, int64_t n, const float* state, int64_t state_size) {
  DUCKLEARN_CHECK_ARG(t >= 0 && n >= 0, "optimizer state: step and size must be >= 0");
  DUCKLEARN_CHECK_ARG(state_size == config_.slots() * n,
                      "optimizer state has " + std::to_string(state_size) +
                          " floats but this optimizer needs " +
                          std::to_string(config_.slots() * n) + " for " + std::to_string(n) +
                          " parameters");
  state_.assign(state, state + state_size);
  n_ = n;
  t_ = t;
}

float Optimizer::step(float* params, const float* grads, int64_t n) {
  detail::FlushDenormals ftz;
  DUCKLEARN_CHECK_ARG(n > 0, "step needs at least one parameter");
  if (n_ == 0 && state_.empty()) {
    const int slots = config_.slots();
    state_.assign(static_cast<size_t>(slots) * static_cast<size_t>(n), 0.0f);
    if (config_.kind == OptimizerKind::AdaGrad) {
      std::fill(state_.begin(), state_.begin() + n, config_.initial_accumulator);
    }
    n_ = n;
  }
  DUCKLEARN_CHECK_ARG(n == n_, "this optimizer was sized for " + std::to_string(n_) +
                                   " parameters but got " + std::to_string(n) +
                                   "; use one optimizer per parameter array (or reset())");
  const auto& k = simd::kernels();
  simd::StepArgs a;
  const bool hd = config_.hypergradient > 0.0f;
  float* hd_dir = hd ? state_.data() + static_cast<size_t>(config_.rule_slots()) * n : nullptr;
  if (hd && t_ > 0) {
    // d(loss_t)/d(lr) = -g_t · u_{t-1}: a gradient step on the rate itself.
    const float h = k.dot(grads, hd_dir, n);
    hd_lr_ += config_.hypergradient * h;
    // A negative rate would ascend; a zero one would never move again (its direction would
    // be undefined), so the rate bottoms out at a millionth of where it started.
    const float floor = 1e-6f * config_.schedule.at(0);
    if (!(hd_lr_ > floor)) hd_lr_ = floor;
  }
  a.lr = current_lr();
  a.l2 = config_.l2;
  a.decoupled_wd = config_.weight_decay;
  a.momentum = config_.momentum;
  a.nesterov = config_.nesterov;
  a.beta1 = config_.beta1;
  a.beta2 = config_.beta2;
  a.rho = config_.rho;
  a.eps = config_.eps;
  if (config_.clip_norm > 0.0f) {
    const double norm = std::sqrt(k.sum_squares(grads, n));
    if (norm > config_.clip_norm) a.grad_scale = static_cast<float>(config_.clip_norm / norm);
  }
  // The direction of this step is (p_before - p_after) / lr: keep p_before in the slot.
  if (hd) std::copy(params, params + n, hd_dir);
  float* s = state_.data();
  switch (config_.kind) {
    case OptimizerKind::SGD:
      k.sgd_step(params, grads, config_.momentum > 0.0f ? s : nullptr, n, a);
      break;
    case OptimizerKind::AdaGrad: k.adagrad_step(params, grads, s, n, a); break;
    case OptimizerKind::RMSProp: k.rmsprop_step(params, grads, s, n, a); break;
    case OptimizerKind::Adam:
    case OptimizerKind::AdamW: {
      const double t1 = static_cast<double>(t_ + 1);
      a.bc1_inv = static_cast<float>(1.0 / (1.0 - std::pow(static_cast<double>(a.beta1), t1)));
      a.bc2_inv_sqrt =
          static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(static_cast<double>(a.beta2), t1)));
      k.adam_step(params, grads, s, s + n, n, a);
      break;
    }
  }
  if (hd) {
    if (a.lr > 0.0f) {
      const float inv = 1.0f / a.lr;
      for (int64_t i = 0; i < n; ++i) hd_dir[i] = (hd_dir[i] - params[i]) * inv;
    } else {
      std::fill(hd_dir, hd_dir + n, 0.0f);
    }
  }
  ++t_;
  return a.lr;
}

}  // namespace ducklearn
