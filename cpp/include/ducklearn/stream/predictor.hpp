#pragma once
/**
 * An immutable inference model: a copy of a learner's parameters and input statistics,
 * frozen at one moment. Learners publish these as snapshots; any number of threads may call
 * predict() at once, each with its own Workspace, while the learner keeps training its own
 * copy. Nothing here can change after construction, so a reader never sees a half-updated
 * model.
 */
#include <cstdint>
#include <memory>

#include "ducklearn/export.hpp"
#include "ducklearn/features/running_stats.hpp"
#include "ducklearn/nn/sequential.hpp"

namespace ducklearn {

/** What the outputs mean, derived from the loss. */
enum class Task : int { Binary = 0, MultiClass = 1, Regression = 2 };

/**
 * Shared inference path of learners and predictors: optional standardization, forward pass
 * in blocks, then the output link (sigmoid / softmax) unless `link` is false.
 * X: n × model.n_inputs(); out: n × model.n_outputs().
 */
DUCKLEARN_EXPORT void infer(const Sequential& model, const RunningStats* scaler, Task task,
                            const float* X, int64_t n, float* out, Workspace& ws, bool link);

/** Applies the output link of `task` in place to n rows of k outputs. */
DUCKLEARN_EXPORT void apply_link(Task task, float* out, int64_t n, int64_t k);

class DUCKLEARN_EXPORT Predictor {
 public:
  /** Takes ownership of a model and (optionally) its input statistics. */
  Predictor(Sequential model, std::unique_ptr<RunningStats> scaler, Task task);
  Predictor(const Predictor& other);
  Predictor& operator=(const Predictor&) = delete;

  int64_t n_inputs() const { return model_.n_inputs(); }
  int64_t n_outputs() const { return model_.n_outputs(); }
  Task task() const { return task_; }
  const Sequential& model() const { return model_; }
  const RunningStats* scaler() const { return scaler_.get(); }

  /** Probabilities or values (see Learner::predict); thread-safe with one ws per caller. */
  void predict(const float* X, int64_t n, float* out, Workspace& ws) const;
  /** Raw outputs (logits / values). */
  void decision(const float* X, int64_t n, float* out, Workspace& ws) const;

 private:
  struct Packed;  // defined in predictor.cpp (internal kernel layout)

  const Sequential model_;
  const std::unique_ptr<const RunningStats> scaler_;
  const Task task_;
  /// model_'s weights packed once for the SIMD inference GEMM; null where the CPU has no
  /// such kernel. Immutable, so copies share it.
  const std::shared_ptr<const Packed> packed_;
};

}  // namespace ducklearn
