#pragma once
/**
 * A learner: model + loss + optimizer + optional online standardization of inputs.
 *
 * It owns the per-example (test-then-train) and mini-batch training loops, so that a whole
 * stream runs in C++ with no allocation per example: every buffer is sized when the learner
 * is built or when a larger batch first arrives.
 */
#include <cstdint>
#include <memory>
#include <vector>

#include "ducklearn/aligned.hpp"
#include "ducklearn/export.hpp"
#include "ducklearn/features/running_stats.hpp"
#include "ducklearn/kernels/loss.hpp"
#include "ducklearn/nn/sequential.hpp"
#include "ducklearn/optim/optimizer.hpp"
#include "ducklearn/stream/predictor.hpp"

namespace ducklearn {

class DUCKLEARN_EXPORT Learner {
 public:
  /**
   * Logistic loss needs 1 output (binary), softmax needs >= 2 (one per class); regression
   * losses need 1. With standardize, inputs pass through per-column running standardization
   * (Welford) that learns from every training row before the model sees it.
   */
  Learner(Sequential model, const LossSpec& loss, const OptimizerConfig& optimizer,
          bool standardize);
  Learner(const Learner& other);
  Learner& operator=(const Learner&) = delete;

  Task task() const { return task_; }
  int64_t n_inputs() const { return model_.n_inputs(); }
  int64_t n_outputs() const { return model_.n_outputs(); }
  const LossSpec& loss() const { return loss_; }

  /**
   * Predictions for n rows (X: n × n_inputs): P(y = 1) for binary (n × 1), class
   * probabilities for multi-class (n × k), values for regression (n × 1).
   * Const and thread-safe when each caller brings its own Workspace.
   */
  void predict(const float* X, int64_t n, float* out, Workspace& ws) const;
  /** Raw model outputs (logits / values), same shapes as predict. */
  void decision(const float* X, int64_t n, float* out, Workspace& ws) const;

  /** One per-example update; returns the example's loss before the update. */
  double learn_one(const float* x, float y);
  /**
   * One mini-batch step on the mean gradient of n rows; returns the summed loss.
   * update_scaler = false trains on rows already counted in the statistics (epochs).
   */
  double learn_batch(const float* X, const float* y, int64_t n, bool update_scaler = true);
  /**
   * One epoch of shuffled mini-batches (seeded Fisher-Yates); returns the mean loss.
   * The scaler is not updated here: call scaler()->update(X, n) once before the epochs.
   */
  double fit_epoch(const float* X, const float* y, int64_t n, int64_t batch_size,
                   uint64_t seed);
  /**
   * Prequential (test-then-train) pass: for each row in order, predict (into preds, n ×
   * n_outputs as in predict()) and then learn from it. The input scaler, which never sees
   * labels, takes in x before the prediction, so one forward pass serves both the test and
   * the training step; the model itself predicts before it learns the label.
   */
  void prequential(const float* X, const float* y, int64_t n, float* preds);

  /** Checks one label against the task; throws std::invalid_argument naming the problem. */
  void check_label(float y) const;

  /**
   * One test-then-train step on a single example: writes the prediction made before the
   * update into pred (n_outputs values, as predict()) and returns the example's loss. The
   * scaler takes in x first, as in prequential().
   */
  double step(const float* x, float y, float* pred);

  /**
   * Test-then-train on a block of n rows (X: n × n_inputs) with ONE optimizer step: the
   * scaler takes in all n rows first (it never sees labels), one forward pass with the
   * current parameters predicts every row (preds: n × n_outputs as predict(); losses: n
   * values, each row's loss before the step), then the parameters take one step on the
   * block's mean gradient, as learn_batch(update_scaler = false) would. Not the same as n
   * calls of step(): later rows are predicted without having learned the earlier ones.
   */
  void step_batch(const float* X, const float* y, int64_t n, float* preds, double* losses);

  /** Sizes the scratch buffers for batches of up to `rows` rows, so none is allocated later. */
  void reserve(int64_t rows);

  /** An immutable copy of the current model and input statistics (a snapshot). */
  std::shared_ptr<const Predictor> snapshot() const;

  /**
   * Elastic weight consolidation (Kirkpatrick et al. 2017), online form (Schwarz et al.
   * 2018): every later update adds lambda * F_i * (theta_i - theta*_i) to the gradient, where
   * theta* is the parameter vector at consolidation and F the diagonal empirical Fisher
   * information mean(g_i^2) over the n given examples, blended as F = decay * F_old + F_new.
   * Call it at a task boundary (or periodically) with data representative of what must not
   * be forgotten, e.g. a replay sample. lambda = 0 turns the penalty off.
   */
  void consolidate(const float* X, const float* y, int64_t n, float lambda, float decay);
  float ewc_lambda() const { return ewc_lambda_; }
  const AlignedVector<float>& ewc_anchor() const { return ewc_anchor_; }
  const AlignedVector<float>& ewc_fisher() const { return ewc_fisher_; }
  /** Restores a saved consolidation (both arrays n_params long, or empty to clear). */
  void load_ewc(float lambda, const float* anchor, const float* fisher, int64_t n);

  /**
   * Weight averaging (Polyak & Juditsky 1992, in its exponential form): after every step the
   * averaged weights move towards the trained ones, a <- a + (1 - beta) (theta - a), with
   * beta = min(decay, (1 + t) / (10 + t)) applied once per example learned, t counting the
   * examples since the average started. A fresh average therefore follows the weights
   * closely and settles to covering about the last 1 / (1 - decay) examples; on a noisy
   * stream its predictions carry less of SGD's step-to-step noise. While it is on, predict(),
   * decision(), snapshot() and the test half of step(), step_batch() and prequential() use
   * the averaged weights; training updates the raw ones (model()).
   *
   * set_averaging(decay) starts the average at the current weights with t = examples_seen(),
   * so a trained model is averaged at the full decay at once; decay = 0 turns it off.
   */
  void set_averaging(float decay);
  /** Restarts the average from the current weights with t = 0 (e.g. after a change). */
  void restart_average();
  float averaging() const { return avg_decay_; }
  int64_t average_steps() const { return avg_steps_; }
  /** The averaged model while averaging is on, else model(): what predictions use. */
  const Sequential& served_model() const { return avg_ ? *avg_ : model_; }
  /** Restores a saved average: n == n_params values and its step count (decay > 0). */
  void load_average(float decay, int64_t steps, const float* params, int64_t n);

  Sequential& model() { return model_; }
  const Sequential& model() const { return model_; }
  Optimizer& optimizer() { return optimizer_; }
  const Optimizer& optimizer() const { return optimizer_; }
  /** nullptr unless built with standardize. */
  RunningStats* scaler() { return scaler_.get(); }
  const RunningStats* scaler() const { return scaler_.get(); }
  /** Examples learned from (per-example and batch paths together). */
  int64_t examples_seen() const { return examples_seen_; }
  void set_examples_seen(int64_t n) { examples_seen_ = n; }

 private:
  double train_rows(const float* X, const float* y, int64_t n, float grad_scale, float* out,
                    bool with_loss = true);
  /** Throws unless n >= 1 ("<what> needs at least one row") and every label suits the task. */
  void check_rows(const float* y, int64_t n, const char* what) const;
  /**
   * The row(s) the model trains on: X itself without a scaler; with one, the standardized
   * copy in xbuf_. scale_one takes one row in first (fused update_standardize); scale_rows
   * takes all n rows in first (when update_scaler), then standardizes them with the result.
   */
  const float* scale_one(const float* x);
  const float* scale_rows(const float* X, int64_t n, bool update_scaler);

  Sequential model_;
  LossSpec loss_;
  Optimizer optimizer_;
  std::unique_ptr<RunningStats> scaler_;
  Task task_;
  int64_t examples_seen_ = 0;
  Workspace ws_;
  AlignedVector<float> xbuf_;   ///< standardized / gathered rows for training
  AlignedVector<float> gather_; ///< rows of one shuffled mini-batch
  AlignedVector<float> ybuf_;   ///< labels of one shuffled mini-batch
  std::vector<int64_t> perm_;   ///< epoch permutation
  /** Moves the average towards the weights after a step on `rows` examples. */
  void update_average(int64_t rows);
  /**
   * Test, then train, on one row already scaled: pred gets the prediction (from the average
   * when averaging, else from the training forward pass itself); returns its loss when
   * with_loss (else 0).
   */
  double predict_then_learn(const float* in, float y, float* pred, bool with_loss);
  /** The raw-output scratch for training `rows` rows while predictions come from avg_. */
  float* train_out(int64_t rows);

  float ewc_lambda_ = 0.0f;
  AlignedVector<float> ewc_anchor_, ewc_fisher_;
  float avg_decay_ = 0.0f;
  int64_t avg_steps_ = 0;
  std::unique_ptr<Sequential> avg_;  ///< averaged weights (same architecture), or null
  AlignedVector<float> train_out_;   ///< raw training outputs while predictions come from avg_
};

}  // namespace ducklearn
