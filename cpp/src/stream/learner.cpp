#include "ducklearn/stream/learner.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "ducklearn/error.hpp"
#include "ducklearn/kernels/activation.hpp"
#include "denormals.hpp"
#include "simd/kernels.hpp"

namespace ducklearn {
namespace {

Task task_for(const LossSpec& loss, int64_t k) {
  switch (loss.kind) {
    case LossKind::Logistic:
      DUCKLEARN_CHECK_ARG(k == 1, "logistic loss needs a model with 1 output, got " +
                                      std::to_string(k));
      return Task::Binary;
    case LossKind::SoftmaxCE:
      DUCKLEARN_CHECK_ARG(k >= 2, "softmax loss needs a model with >= 2 outputs (one per "
                                  "class), got " + std::to_string(k));
      return Task::MultiClass;
    default:
      DUCKLEARN_CHECK_ARG(k == 1, "regression losses need a model with 1 output, got " +
                                      std::to_string(k));
      return Task::Regression;
  }
}

// splitmix64 step for the epoch shuffle.
inline uint64_t mix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

Learner::Learner(Sequential model, const LossSpec& loss, const OptimizerConfig& optimizer,
                 bool standardize)
    : model_(std::move(model)), loss_(loss), optimizer_(optimizer),
      task_(task_for(loss, model_.n_outputs())) {
  validate(loss_);
  if (standardize) scaler_ = std::make_unique<RunningStats>(model_.n_inputs());
  model_.reserve(ws_, 1);
  xbuf_.resize(static_cast<size_t>(model_.n_inputs()));
}

Learner::Learner(const Learner& o)
    : model_(o.model_), loss_(o.loss_), optimizer_(o.optimizer_),
      scaler_(o.scaler_ ? std::make_unique<RunningStats>(*o.scaler_) : nullptr),
      task_(o.task_), examples_seen_(o.examples_seen_), ewc_lambda_(o.ewc_lambda_),
      ewc_anchor_(o.ewc_anchor_), ewc_fisher_(o.ewc_fisher_), avg_decay_(o.avg_decay_),
      avg_steps_(o.avg_steps_), avg_(o.avg_ ? std::make_unique<Sequential>(*o.avg_) : nullptr) {
  model_.reserve(ws_, 1);
  xbuf_.resize(static_cast<size_t>(model_.n_inputs()));
}

void Learner::check_label(float y) const {
  switch (task_) {
    case Task::Binary:
      DUCKLEARN_CHECK_ARG(y == 0.0f || y == 1.0f,
                          "binary labels must be 0 or 1, got " + std::to_string(y));
      break;
    case Task::MultiClass: {
      // Compared as a float: converting NaN or a huge value to int64 is undefined.
      DUCKLEARN_CHECK_ARG(y >= 0.0f && y < static_cast<float>(n_outputs()) && std::floor(y) == y,
                          "class index must be an integer in [0, " +
                              std::to_string(n_outputs()) + "), got " + std::to_string(y));
      break;
    }
    case Task::Regression:
      DUCKLEARN_CHECK_ARG(std::isfinite(y), "regression targets must be finite, got " +
                                                std::to_string(y));
      break;
  }
}

void Learner::decision(const float* X, int64_t n, float* out, Workspace& ws) const {
  infer(served_model(), scaler_.get(), task_, X, n, out, ws, false);
}

void Learner::predict(const float* X, int64_t n, float* out, Workspace& ws) const {
  infer(served_model(), scaler_.get(), task_, X, n, out, ws, true);
}

std::shared_ptr<const Predictor> Learner::snapshot() const {
  return std::make_shared<const Predictor>(
      served_model(), scaler_ ? std::make_unique<RunningStats>(*scaler_) : nullptr, task_);
}

double Learner::train_rows(const float* X, const float* y, int64_t n, float grad_scale,
                           float* out, bool with_loss) {
  model_.reserve(ws_, n);
  const double loss = model_.forward_backward(X, y, n, loss_, grad_scale, out, ws_, with_loss);
  // A non-finite loss or output means the weights already overflow or are about to: refuse
  // the step rather than let NaN spread silently through every later prediction.
  bool finite = std::isfinite(loss);
  if (out != nullptr) {
    for (int64_t i = 0; i < n * n_outputs(); ++i) finite &= std::isfinite(out[i]);
  }
  DUCKLEARN_CHECK_MSG(finite,
                      "training diverged (non-finite loss or output); the update was not "
                      "applied. Lower the learning rate, enable input standardization "
                      "(scale=True) or clip gradients (clip_norm)");
  if (ewc_lambda_ > 0.0f) {
    // Gradient of (lambda / 2) sum_i F_i (theta_i - theta*_i)^2, added once per step.
    float* g = model_.grads();
    const float* p = model_.params();
    const float* a = ewc_anchor_.data();
    const float* f = ewc_fisher_.data();
    const float lam = ewc_lambda_;
    for (int64_t i = 0; i < model_.n_params(); ++i) g[i] += lam * f[i] * (p[i] - a[i]);
  }
  optimizer_.step(model_.params(), model_.grads(), model_.n_params());
  examples_seen_ += n;
  if (avg_) update_average(n);
  return loss;
}

void Learner::check_rows(const float* y, int64_t n, const char* what) const {
  DUCKLEARN_CHECK_ARG(n >= 1, std::string(what) + " needs at least one row");
  for (int64_t i = 0; i < n; ++i) check_label(y[i]);
}

const float* Learner::scale_one(const float* x) {
  if (!scaler_) return x;
  scaler_->update_standardize(x, 1, xbuf_.data());
  return xbuf_.data();
}

const float* Learner::scale_rows(const float* X, int64_t n, bool update_scaler) {
  if (!scaler_) return X;
  const auto need = static_cast<size_t>(n * n_inputs());
  if (xbuf_.size() < need) xbuf_.resize(need);
  if (update_scaler) scaler_->update(X, n);
  scaler_->standardize(X, n, xbuf_.data());
  return xbuf_.data();
}

double Learner::learn_one(const float* x, float y) {
  detail::FlushDenormals ftz;
  check_label(y);
  return train_rows(scale_one(x), &y, 1, 1.0f, nullptr);
}

double Learner::learn_batch(const float* X, const float* y, int64_t n, bool update_scaler) {
  detail::FlushDenormals ftz;
  check_rows(y, n, "learn_batch");
  return train_rows(scale_rows(X, n, update_scaler), y, n, 1.0f / static_cast<float>(n),
                    nullptr);
}

double Learner::fit_epoch(const float* X, const float* y, int64_t n, int64_t batch_size,
                          uint64_t seed) {
  detail::FlushDenormals ftz;
  check_rows(y, n, "fit_epoch");
  DUCKLEARN_CHECK_ARG(batch_size >= 1, "batch_size must be >= 1, got " +
                                           std::to_string(batch_size));
  const int64_t d = n_inputs();
  const int64_t bs = batch_size < n ? batch_size : n;
  if (static_cast<int64_t>(perm_.size()) != n) perm_.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) perm_[i] = i;
  uint64_t s = seed;
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(mix(s) % static_cast<uint64_t>(i + 1));
    const int64_t t = perm_[i];
    perm_[i] = perm_[j];
    perm_[j] = t;
  }
  // Gather rows into contiguous batch buffers (xbuf_ also holds the standardized copy).
  if (static_cast<int64_t>(gather_.size()) < bs * d) gather_.resize(static_cast<size_t>(bs * d));
  if (static_cast<int64_t>(xbuf_.size()) < bs * d) xbuf_.resize(static_cast<size_t>(bs * d));
  if (static_cast<int64_t>(ybuf_.size()) < bs) ybuf_.resize(static_cast<size_t>(bs));
  double total = 0.0;
  for (int64_t start = 0; start < n; start += bs) {
    const int64_t m = (n - start) < bs ? (n - start) : bs;
    for (int64_t r = 0; r < m; ++r) {
      const int64_t src = perm_[start + r];
      const float* row = X + src * d;
      for (int64_t j = 0; j < d; ++j) gather_[r * d + j] = row[j];
      ybuf_[r] = y[src];
    }
    const float* in = gather_.data();
    if (scaler_) {
      scaler_->standardize(gather_.data(), m, xbuf_.data());
      in = xbuf_.data();
    }
    total += train_rows(in, ybuf_.data(), m, 1.0f / static_cast<float>(m), nullptr);
  }
  return total / static_cast<double>(n);
}

void Learner::prequential(const float* X, const float* y, int64_t n, float* preds) {
  detail::FlushDenormals ftz;
  for (int64_t i = 0; i < n; ++i) check_label(y[i]);
  const int64_t d = n_inputs(), k = n_outputs();
  for (int64_t i = 0; i < n; ++i) {
    predict_then_learn(scale_one(X + i * d), y[i], preds + i * k, /*with_loss=*/false);
  }
}

double Learner::step(const float* x, float y, float* pred) {
  check_label(y);
  return predict_then_learn(scale_one(x), y, pred, /*with_loss=*/true);
}

double Learner::predict_then_learn(const float* in, float y, float* pred, bool with_loss) {
  double loss = 0.0;
  if (avg_) {  // the test needs its own forward pass, with the averaged weights
    avg_->forward(in, 1, pred, ws_);
    if (with_loss) loss = loss_and_grad(loss_, pred, &y, 1, n_outputs(), nullptr);
    train_rows(in, &y, 1, 1.0f, train_out(1), /*with_loss=*/false);
  } else {
    // The training forward pass runs on the parameters as they were: its outputs are the
    // test-time prediction.
    loss = train_rows(in, &y, 1, 1.0f, pred, with_loss);
  }
  apply_link(task_, pred, 1, n_outputs());
  return loss;
}

float* Learner::train_out(int64_t rows) {
  const auto need = static_cast<size_t>(rows * n_outputs());
  if (train_out_.size() < need) train_out_.resize(need);
  return train_out_.data();
}

void Learner::step_batch(const float* X, const float* y, int64_t n, float* preds,
                         double* losses) {
  detail::FlushDenormals ftz;
  check_rows(y, n, "step_batch");
  const int64_t k = n_outputs();
  // The training forward pass runs on the parameters as they were, so its raw outputs are
  // the test-time predictions (unless they come from the average); each row's loss is taken
  // from them before the link.
  const float* in = scale_rows(X, n, /*update_scaler=*/true);
  if (avg_) avg_->forward(in, n, preds, ws_);
  train_rows(in, y, n, 1.0f / static_cast<float>(n), avg_ ? train_out(n) : preds,
             /*with_loss=*/false);
  for (int64_t i = 0; i < n; ++i) {
    losses[i] = loss_and_grad(loss_, preds + i * k, y + i, 1, k, nullptr);
  }
  apply_link(task_, preds, n, k);
}

void Learner::reserve(int64_t rows) {
  model_.reserve(ws_, rows);
  const auto need = static_cast<size_t>(rows * n_inputs());
  if (xbuf_.size() < need) xbuf_.resize(need);
  if (avg_) train_out(rows);
}

void Learner::set_averaging(float decay) {
  DUCKLEARN_CHECK_ARG(std::isfinite(decay) && decay >= 0.0f && decay < 1.0f,
                      "averaging decay must be in [0, 1) (0 turns it off), got " +
                          std::to_string(decay));
  avg_decay_ = decay;
  if (decay == 0.0f) {
    avg_.reset();
    avg_steps_ = 0;
    return;
  }
  avg_ = std::make_unique<Sequential>(model_);
  avg_steps_ = examples_seen_;
  train_out(1);  // per-example steps allocate nothing afterwards
}

void Learner::restart_average() {
  if (!avg_) return;
  std::copy(model_.params(), model_.params() + model_.n_params(), avg_->params());
  avg_steps_ = 0;
}

void Learner::load_average(float decay, int64_t steps, const float* params, int64_t n) {
  DUCKLEARN_CHECK_ARG(decay > 0.0f, "a saved average needs a decay in (0, 1)");
  DUCKLEARN_CHECK_ARG(steps >= 0, "a saved average needs a step count >= 0");
  DUCKLEARN_CHECK_ARG(n == model_.n_params(),
                      "averaged weights have " + std::to_string(n) + " values but the model "
                      "has " + std::to_string(model_.n_params()) + " parameters");
  set_averaging(decay);
  std::copy(params, params + n, avg_->params());
  avg_steps_ = steps;
}

void Learner::update_average(int64_t rows) {
  // One decay factor per example: a step on a block of k examples moves the average as far
  // as k single-example steps would, so the horizon is counted in examples.
  const double decay = avg_decay_;
  double keep = 1.0;
  for (int64_t i = 0; i < rows; ++i, ++avg_steps_) {
    const double t = static_cast<double>(avg_steps_);
    keep *= std::min(decay, (1.0 + t) / (10.0 + t));
  }
  simd::kernels().lerp(static_cast<float>(1.0 - keep), model_.params(), avg_->params(),
                       model_.n_params());
}

void Learner::consolidate(const float* X, const float* y, int64_t n, float lambda,
                          float decay) {
  DUCKLEARN_CHECK_ARG(std::isfinite(lambda) && lambda >= 0.0f,
                      "EWC lambda must be a finite number >= 0, got " + std::to_string(lambda));
  DUCKLEARN_CHECK_ARG(std::isfinite(decay) && decay >= 0.0f && decay <= 1.0f,
                      "EWC decay must be in [0, 1], got " + std::to_string(decay));
  DUCKLEARN_CHECK_ARG(n >= 1, "consolidate needs at least one example");
  for (int64_t i = 0; i < n; ++i) check_label(y[i]);
  detail::FlushDenormals ftz;
  const int64_t np = model_.n_params(), d = n_inputs();
  AlignedVector<float> fisher(static_cast<size_t>(np), 0.0f);
  // Per-example gradients (batch size 1): the empirical Fisher needs E[g^2], not E[g]^2.
  // The model's gradient buffer is scratch here; no optimizer step is taken.
  for (int64_t r = 0; r < n; ++r) {
    const float* in = X + r * d;
    if (scaler_) {
      scaler_->standardize(in, 1, xbuf_.data());
      in = xbuf_.data();
    }
    model_.forward_backward(in, y + r, 1, loss_, 1.0f, nullptr, ws_, false);
    const float* g = model_.grads();
    for (int64_t i = 0; i < np; ++i) fisher[i] += g[i] * g[i];
  }
  const float inv = 1.0f / static_cast<float>(n);
  const bool blend = ewc_fisher_.size() == fisher.size();
  for (int64_t i = 0; i < np; ++i) {
    fisher[i] = fisher[i] * inv + (blend ? decay * ewc_fisher_[i] : 0.0f);
  }
  ewc_fisher_ = std::move(fisher);
  ewc_anchor_.assign(model_.params(), model_.params() + np);
  ewc_lambda_ = lambda;
}

void Learner::load_ewc(float lambda, const float* anchor, const float* fisher, int64_t n) {
  DUCKLEARN_CHECK_ARG(std::isfinite(lambda) && lambda >= 0.0f, "EWC lambda must be >= 0");
  if (n == 0) {
    ewc_lambda_ = 0.0f;
    ewc_anchor_.clear();
    ewc_fisher_.clear();
    return;
  }
  DUCKLEARN_CHECK_ARG(n == model_.n_params(),
                      "EWC state has " + std::to_string(n) + " values but the model has " +
                          std::to_string(model_.n_params()) + " parameters");
  ewc_anchor_.assign(anchor, anchor + n);
  ewc_fisher_.assign(fisher, fisher + n);
  ewc_lambda_ = lambda;
}

}  // namespace ducklearn
