#pragma once
/**
 * A stack of Dense layers over ONE flat parameter buffer and ONE flat gradient buffer.
 *
 * Layer l owns W_l (out_l × in_l, row-major) at w_offset and b_l (out_l) at b_offset inside
 * params(); grads() has the same layout. The gradient buffer is training scratch: a copy
 * (a snapshot, a kept-back copy of a learner) does not carry it, and the first
 * forward_backward() of a copy allocates it once. Linear models are the one-layer case. Scratch
 * memory lives in a caller-owned Workspace, so one model can serve concurrent callers that
 * each bring their own workspace.
 */
#include <cstdint>
#include <vector>

#include "ducklearn/aligned.hpp"
#include "ducklearn/export.hpp"
#include "ducklearn/kernels/activation.hpp"
#include "ducklearn/kernels/loss.hpp"

namespace ducklearn {

/** One Dense layer's place in the flat buffers. */
struct DenseLayer {
  int64_t in = 0;
  int64_t out = 0;
  Activation act = Activation::Identity;
  int64_t w_offset = 0;  ///< W: out × in
  int64_t b_offset = 0;  ///< b: out
};

enum class Init : int {
  Auto = 0,           ///< He for ReLU-family layers, Glorot otherwise
  Zeros = 1,
  GlorotUniform = 2,  ///< U(-a, a), a = sqrt(6 / (in + out))
  HeUniform = 3,      ///< U(-a, a), a = sqrt(6 / in)
};

/** Scratch for forward/backward passes; grows to the largest need seen, never shrinks. */
struct DUCKLEARN_EXPORT Workspace {
  AlignedVector<float> z;       ///< pre-activations of every layer, rows × sum(out_l)
  AlignedVector<float> a;       ///< activations of every layer, rows × sum(out_l)
  AlignedVector<float> delta;   ///< backward scratch, 2 × rows × max(width)
  AlignedVector<float> input;   ///< transformed inputs (e.g. standardized), owned by callers
};

class DUCKLEARN_EXPORT Sequential {
 public:
  /**
   * n_inputs: input width. widths[l]: output width of layer l. acts[l]: its activation
   * (the last one is usually Identity: losses take raw outputs).
   */
  Sequential(int64_t n_inputs, const std::vector<int64_t>& widths,
             const std::vector<Activation>& acts, float leaky_alpha = 0.01f);
  /** Copies architecture and parameters; not the gradient scratch (see the class note). */
  Sequential(const Sequential& other);
  Sequential& operator=(const Sequential& other);
  Sequential(Sequential&&) noexcept = default;
  Sequential& operator=(Sequential&&) noexcept = default;

  int64_t n_inputs() const { return n_inputs_; }
  int64_t n_outputs() const { return layers_.back().out; }
  int64_t n_params() const { return static_cast<int64_t>(params_.size()); }
  float leaky_alpha() const { return alpha_; }
  const std::vector<DenseLayer>& layers() const { return layers_; }

  float* params() { return params_.data(); }
  const float* params() const { return params_.data(); }
  /** The gradient buffer (n_params() floats); nullptr on a copy that has not trained yet. */
  float* grads() { return grads_.data(); }
  const float* grads() const { return grads_.data(); }
  /** Allocates the gradient buffer (zeros) if this model does not have one yet. */
  void ensure_grads();

  /** Seeded initialization (deterministic across platforms); biases start at 0. */
  void init(uint64_t seed, Init scheme = Init::Auto);

  /** Sizes ws for batches of up to `rows` rows of this model (the only place it allocates). */
  void reserve(Workspace& ws, int64_t rows) const;

  /**
   * Raw outputs (logits / values) for n rows: X n × n_inputs, out n × n_outputs.
   * Runs in blocks of at most kInferenceBlock rows so the workspace stays bounded.
   */
  void forward(const float* X, int64_t n, float* out, Workspace& ws) const;

  /** The same with parameters taken from `params` (same layout), e.g. a snapshot. */
  void forward_with(const float* params, const float* X, int64_t n, float* out,
                    Workspace& ws) const;

  /**
   * Forward + loss + backward over a batch of n rows. Overwrites grads() with
   * grad_scale × dL/dθ (L summed over rows) and returns the summed loss. If out is not
   * nullptr it receives the raw outputs (n × n_outputs). with_loss = false skips computing
   * the loss value (see loss_and_grad) when only the gradient is needed.
   */
  double forward_backward(const float* X, const float* y, int64_t n, const LossSpec& loss,
                          float grad_scale, float* out, Workspace& ws, bool with_loss = true);

  static constexpr int64_t kInferenceBlock = 256;

 private:
  void forward_block(const float* params, const float* X, int64_t n, Workspace& ws) const;

  int64_t n_inputs_;
  float alpha_;
  std::vector<DenseLayer> layers_;
  std::vector<int64_t> act_offset_;  ///< per layer: column offset inside ws.z / ws.a rows
  int64_t act_width_ = 0;            ///< sum of layer widths
  int64_t max_width_ = 0;
  AlignedVector<float> params_;
  AlignedVector<float> grads_;
};

}  // namespace ducklearn
