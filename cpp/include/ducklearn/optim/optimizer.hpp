#pragma once
/**
 * Optimizers as element-wise kernels over (params, grads, state).
 *
 * One Optimizer serves any model: it updates a flat float32 parameter array in place from a
 * gradient array of the same length. Its state (momentum, moments, accumulators) is one flat
 * buffer of slots × n floats, sized on the first step and fixed afterwards, so steps never
 * allocate.
 */
#include <cstdint>
#include <string>
#include <vector>

#include "ducklearn/aligned.hpp"
#include "ducklearn/export.hpp"
#include "ducklearn/optim/schedule.hpp"

namespace ducklearn {

enum class OptimizerKind : int { SGD = 0, AdaGrad = 1, RMSProp = 2, Adam = 3, AdamW = 4 };

struct DUCKLEARN_EXPORT OptimizerConfig {
  OptimizerKind kind = OptimizerKind::SGD;
  Schedule schedule;           ///< learning rate per step
  float momentum = 0.0f;       ///< SGD (PyTorch convention, no dampening)
  bool nesterov = false;       ///< SGD; needs momentum > 0
  float beta1 = 0.9f;          ///< Adam, AdamW
  float beta2 = 0.999f;        ///< Adam, AdamW
  float rho = 0.99f;           ///< RMSProp smoothing of squared gradients
  float eps = 1e-8f;
  float initial_accumulator = 0.0f;  ///< AdaGrad
  float l2 = 0.0f;             ///< coupled L2 penalty: g += l2 * p
  float weight_decay = 0.0f;   ///< decoupled decay: p -= lr * weight_decay * p (AdamW: 0.01)
  float clip_norm = 0.0f;      ///< > 0: scale g so that ||g||_2 <= clip_norm
  /**
   * > 0: hypergradient descent on the learning rate (Baydin et al. 2018): before step t,
   * lr += hypergradient * (g_t · u_{t-1}), u_{t-1} being the previous step's direction
   * (the update divided by its rate). The schedule then only sets the starting rate.
   */
  float hypergradient = 0.0f;

  /** Throws std::invalid_argument naming the bad field and the valid range. */
  void validate() const;
  /** Number of state floats per parameter (one more with hypergradient > 0). */
  int slots() const;
  /** Slots used by the update rule itself (without the hypergradient slot). */
  int rule_slots() const;
};

DUCKLEARN_EXPORT OptimizerKind optimizer_from_string(const std::string& name);
DUCKLEARN_EXPORT const char* to_string(OptimizerKind kind);

class DUCKLEARN_EXPORT Optimizer {
 public:
  explicit Optimizer(const OptimizerConfig& config);

  /**
   * One update of params (n floats, in place) from grads (n floats). The first call fixes
   * n; later calls with another n throw std::invalid_argument. Returns the learning rate
   * used.
   */
  float step(float* params, const float* grads, int64_t n);

  /** Step counter t (number of steps taken). */
  int64_t steps() const { return t_; }
  /** Learning rate the next step will use (before its hypergradient adjustment). */
  float current_lr() const;

  /**
   * A multiplier on every rate (1 by default): the lever for adaptation policies such as
   * reduce-on-plateau or a boost after a detected change. Must be >= 0.
   */
  float lr_scale() const { return lr_scale_; }
  void set_lr_scale(float scale);
  /** The hypergradient-adapted base rate (meaningful with config.hypergradient > 0). */
  float hypergradient_lr() const { return hd_lr_; }
  void set_hypergradient_lr(float lr);
  /** Parameter count the state was sized for (0 before the first step). */
  int64_t size() const { return n_; }
  const OptimizerConfig& config() const { return config_; }

  /** Flat state: slots × size floats (slot-major: all of slot 0, then slot 1). */
  float* state() { return state_.data(); }
  const float* state() const { return state_.data(); }
  int64_t state_size() const { return static_cast<int64_t>(state_.size()); }
  /** Names of the state slots in order, e.g. {"m", "v"} for Adam. */
  std::vector<std::string> slot_names() const;

  /** Restores a saved state (t and slots × n floats). */
  void load_state(int64_t t, int64_t n, const float* state, int64_t state_size);
  /** Forgets all state (the next step sizes it again). */
  void reset();

 private:
  OptimizerConfig config_;
  AlignedVector<float> state_;
  int64_t n_ = 0;
  int64_t t_ = 0;
  float lr_scale_ = 1.0f;
  float hd_lr_ = 0.0f;  ///< set from the schedule at construction
};

}  // namespace ducklearn
