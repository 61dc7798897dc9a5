#include "ducklearn/stream/predictor.hpp"

#include "ducklearn/kernels/activation.hpp"

namespace ducklearn {

void apply_link(Task task, float* out, int64_t n, int64_t k) {
  if (task == Task::Binary) {
    activation_forward(Activation::Sigmoid, out, out, n * k);
  } else if (task == Task::MultiClass) {
    softmax_rows(out, out, n, k);
  }
}

void infer(const Sequential& model, const RunningStats* scaler, Task task, const float* X,
           int64_t n, float* out, Workspace& ws, bool link) {
  const int64_t d = model.n_inputs(), k = model.n_outputs();
  if (scaler == nullptr) {
    model.forward(X, n, out, ws);
  } else {
    // Standardize block by block so the scratch stays bounded for any n.
    const int64_t block = Sequential::kInferenceBlock;
    const int64_t rows = n < block ? n : block;
    if (static_cast<int64_t>(ws.input.size()) < rows * d) {
      ws.input.resize(static_cast<size_t>(rows * d));
    }
    for (int64_t start = 0; start < n; start += block) {
      const int64_t m = (n - start) < block ? (n - start) : block;
      scaler->standardize(X + start * d, m, ws.input.data());
      model.forward(ws.input.data(), m, out + start * k, ws);
    }
  }
  if (link) apply_link(task, out, n, k);
}

Predictor::Predictor(Sequential model, std::unique_ptr<RunningStats> scaler, Task task)
    : model_(std::move(model)), scaler_(std::move(scaler)), task_(task) {}

Predictor::Predictor(const Predictor& o)
    : model_(o.model_),
      scaler_(o.scaler_ ? std::make_unique<RunningStats>(*o.scaler_) : nullptr),
      task_(o.task_) {}

void Predictor::predict(const float* X, int64_t n, float* out, Workspace& ws) const {
  infer(model_, scaler_.get(), task_, X, n, out, ws, true);
}

void Predictor::decision(const float* X, int64_t n, float* out, Workspace& ws) const {
  infer(model_, scaler_.get(), task_, X, n, out, ws, false);
}

}  // namespace ducklearn
