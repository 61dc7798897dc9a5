#include "ducklearn/stream/learner.hpp"

#include <cmath>
#include <string>

#include "ducklearn/error.hpp"
#include "ducklearn/kernels/activation.hpp"
#include "denormals.hpp"

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
      task_(o.task_), examples_seen_(o.examples_seen_) {
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
      const auto c = static_cast<int64_t>(y);
      DUCKLEARN_CHECK_ARG(y >= 0.0f && static_cast<float>(c) == y && c < n_outputs(),
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

void Learner::apply_link(float* out, int64_t n) const {
  if (task_ == Task::Binary) {
    activation_forward(Activation::Sigmoid, out, out, n);
  } else if (task_ == Task::MultiClass) {
    softmax_rows(out, out, n, n_outputs());
  }
}

void Learner::decision(const float* X, int64_t n, float* out, Workspace& ws) const {
  const int64_t d = n_inputs(), k = n_outputs();
  if (!scaler_) {
    model_.forward(X, n, out, ws);
    return;
  }
  const int64_t block = Sequential::kInferenceBlock;
  const int64_t rows = n < block ? n : block;
  if (static_cast<int64_t>(ws.input.size()) < rows * d) {
    ws.input.resize(static_cast<size_t>(rows * d));
  }
  for (int64_t start = 0; start < n; start += block) {
    const int64_t m = (n - start) < block ? (n - start) : block;
    scaler_->standardize(X + start * d, m, ws.input.data());
    model_.forward(ws.input.data(), m, out + start * k, ws);
  }
}

void Learner::predict(const float* X, int64_t n, float* out, Workspace& ws) const {
  decision(X, n, out, ws);
  apply_link(out, n);
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
  optimizer_.step(model_.params(), model_.grads(), model_.n_params());
  examples_seen_ += n;
  return loss;
}

double Learner::learn_one(const float* x, float y) {
  detail::FlushDenormals ftz;
  check_label(y);
  const float* in = x;
  if (scaler_) {
    scaler_->update_standardize(x, 1, xbuf_.data());
    in = xbuf_.data();
  }
  return train_rows(in, &y, 1, 1.0f, nullptr);
}

double Learner::learn_batch(const float* X, const float* y, int64_t n, bool update_scaler) {
  detail::FlushDenormals ftz;
  DUCKLEARN_CHECK_ARG(n >= 1, "learn_batch needs at least one row");
  for (int64_t i = 0; i < n; ++i) check_label(y[i]);
  const float* in = X;
  if (scaler_) {
    const int64_t d = n_inputs();
    if (static_cast<int64_t>(xbuf_.size()) < n * d) xbuf_.resize(static_cast<size_t>(n * d));
    if (update_scaler) scaler_->update(X, n);
    scaler_->standardize(X, n, xbuf_.data());
    in = xbuf_.data();
  }
  return train_rows(in, y, n, 1.0f / static_cast<float>(n), nullptr);
}

double Learner::fit_epoch(const float* X, const float* y, int64_t n, int64_t batch_size,
                          uint64_t seed) {
  detail::FlushDenormals ftz;
  DUCKLEARN_CHECK_ARG(n >= 1, "fit_epoch needs at least one row");
  DUCKLEARN_CHECK_ARG(batch_size >= 1, "batch_size must be >= 1, got " +
                                           std::to_string(batch_size));
  for (int64_t i = 0; i < n; ++i) check_label(y[i]);
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
    const float* in = X + i * d;
    if (scaler_) {
      scaler_->update_standardize(in, 1, xbuf_.data());
      in = xbuf_.data();
    }
    // The training forward pass runs on the parameters as they were: its outputs are the
    // test-time prediction.
    float* p = preds + i * k;
    train_rows(in, y + i, 1, 1.0f, p, /*with_loss=*/false);
    apply_link(p, 1);
  }
}

}  // namespace ducklearn
