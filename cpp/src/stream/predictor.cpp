#include "ducklearn/stream/predictor.hpp"

#include "ducklearn/kernels/activation.hpp"
#include "simd/packed_gemm.hpp"

namespace ducklearn {

struct Predictor::Packed {
  simd::PackedModel weights;
};

namespace {

// The packed kernel when `packed` is given, else Sequential::forward (which may still pack
// per call for a large batch).
void forward_rows(const Sequential& model, const simd::PackedModel* packed, const float* X,
                  int64_t n, float* out, Workspace& ws) {
  if (packed != nullptr) {
    simd::forward_packed(model, model.params(), *packed, X, n, out, ws);
  } else {
    model.forward(X, n, out, ws);
  }
}

void infer_with(const Sequential& model, const simd::PackedModel* packed,
                const RunningStats* scaler, Task task, const float* X, int64_t n, float* out,
                Workspace& ws, bool link) {
  const int64_t d = model.n_inputs(), k = model.n_outputs();
  if (scaler == nullptr) {
    forward_rows(model, packed, X, n, out, ws);
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
      forward_rows(model, packed, ws.input.data(), m, out + start * k, ws);
    }
  }
  if (link) apply_link(task, out, n, k);
}

// Packed weights stay valid across tables (they share the layout), but the kernel may be
// switched off after the snapshot was built (DUCKLEARN_SIMD, set_target).
const simd::PackedModel* if_usable(const simd::PackedModel* packed) {
  return packed != nullptr && simd::packed_usable() ? packed : nullptr;
}

}  // namespace

void apply_link(Task task, float* out, int64_t n, int64_t k) {
  if (task == Task::Binary) {
    activation_forward(Activation::Sigmoid, out, out, n * k);
  } else if (task == Task::MultiClass) {
    softmax_rows(out, out, n, k);
  }
}

void infer(const Sequential& model, const RunningStats* scaler, Task task, const float* X,
           int64_t n, float* out, Workspace& ws, bool link) {
  // Packed once per call (not per block) when the batch pays for it.
  infer_with(model, simd::pack_for_batch(model, model.params(), n), scaler, task, X, n, out, ws,
             link);
}

Predictor::Predictor(Sequential model, std::unique_ptr<RunningStats> scaler, Task task)
    : model_(std::move(model)),
      scaler_(std::move(scaler)),
      task_(task),
      packed_([this]() -> std::shared_ptr<const Packed> {
        auto packed = std::make_shared<Packed>();
        if (!packed->weights.pack(model_, model_.params())) return nullptr;
        return packed;
      }()) {}

Predictor::Predictor(const Predictor& o)
    : model_(o.model_),
      scaler_(o.scaler_ ? std::make_unique<RunningStats>(*o.scaler_) : nullptr),
      task_(o.task_),
      packed_(o.packed_) {}

// A snapshot runs the packed kernel at every batch size, batch 1 included (0.6 vs 1.3 µs
// for a 64-128-128-1 MLP): each row's result is then the same whatever batch it arrives in.
void Predictor::predict(const float* X, int64_t n, float* out, Workspace& ws) const {
  infer_with(model_, if_usable(packed_ ? &packed_->weights : nullptr), scaler_.get(), task_, X, n,
             out, ws, true);
}

void Predictor::decision(const float* X, int64_t n, float* out, Workspace& ws) const {
  infer_with(model_, if_usable(packed_ ? &packed_->weights : nullptr), scaler_.get(), task_, X, n,
             out, ws, false);
}

}  // namespace ducklearn
