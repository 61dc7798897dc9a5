#include "ducklearn/nn/sequential.hpp"

#include <cmath>
#include <string>

#include "ducklearn/error.hpp"
#include "ducklearn/kernels/gemm.hpp"
#include "simd/kernels.hpp"
#include "simd/packed_gemm.hpp"

namespace ducklearn {
namespace {

// splitmix64: tiny, seedable, identical on every platform (std distributions are not).
struct SplitMix64 {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float uniform() { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); }
};

}  // namespace

Sequential::Sequential(int64_t n_inputs, const std::vector<int64_t>& widths,
                       const std::vector<Activation>& acts, float leaky_alpha)
    : n_inputs_(n_inputs), alpha_(leaky_alpha) {
  DUCKLEARN_CHECK_ARG(n_inputs >= 1, "n_inputs must be >= 1, got " + std::to_string(n_inputs));
  DUCKLEARN_CHECK_ARG(!widths.empty(), "a model needs at least one layer");
  DUCKLEARN_CHECK_ARG(widths.size() == acts.size(),
                      "widths and activations must have the same length");
  DUCKLEARN_CHECK_ARG(std::isfinite(leaky_alpha) && leaky_alpha >= 0.0f,
                      "leaky_alpha must be >= 0");
  int64_t in = n_inputs, offset = 0;
  for (size_t l = 0; l < widths.size(); ++l) {
    DUCKLEARN_CHECK_ARG(widths[l] >= 1, "layer " + std::to_string(l) +
                                            " width must be >= 1, got " +
                                            std::to_string(widths[l]));
    DenseLayer layer;
    layer.in = in;
    layer.out = widths[l];
    layer.act = acts[l];
    layer.w_offset = offset;
    layer.b_offset = offset + in * widths[l];
    offset = layer.b_offset + widths[l];
    layers_.push_back(layer);
    act_offset_.push_back(act_width_);
    act_width_ += widths[l];
    max_width_ = widths[l] > max_width_ ? widths[l] : max_width_;
    in = widths[l];
  }
  params_.assign(static_cast<size_t>(offset), 0.0f);
  grads_.assign(static_cast<size_t>(offset), 0.0f);
}

Sequential::Sequential(const Sequential& o)
    : n_inputs_(o.n_inputs_), alpha_(o.alpha_), layers_(o.layers_), act_offset_(o.act_offset_),
      act_width_(o.act_width_), max_width_(o.max_width_), params_(o.params_) {}

Sequential& Sequential::operator=(const Sequential& o) {
  if (this != &o) *this = Sequential(o);  // the copy above, moved in
  return *this;
}

void Sequential::ensure_grads() {
  if (grads_.size() != params_.size()) grads_.assign(params_.size(), 0.0f);
}

void Sequential::init(uint64_t seed, Init scheme) {
  SplitMix64 rng{seed};
  for (const auto& layer : layers_) {
    float* W = params_.data() + layer.w_offset;
    const int64_t count = layer.in * layer.out;
    Init s = scheme;
    if (s == Init::Auto) {
      const bool relu_like = layer.act == Activation::ReLU || layer.act == Activation::LeakyReLU ||
                             layer.act == Activation::GELU;
      s = relu_like ? Init::HeUniform : Init::GlorotUniform;
    }
    float bound = 0.0f;
    if (s == Init::GlorotUniform) {
      bound = std::sqrt(6.0f / static_cast<float>(layer.in + layer.out));
    } else if (s == Init::HeUniform) {
      bound = std::sqrt(6.0f / static_cast<float>(layer.in));
    }
    for (int64_t i = 0; i < count; ++i) W[i] = bound * (2.0f * rng.uniform() - 1.0f);
    float* b = params_.data() + layer.b_offset;
    for (int64_t i = 0; i < layer.out; ++i) b[i] = 0.0f;
  }
}

void Sequential::reserve(Workspace& ws, int64_t rows) const {
  // Sizes are checked per buffer, not per row count: one workspace may serve models of
  // different widths (e.g. a thread-local workspace shared by several models).
  const auto acts = static_cast<size_t>(rows * act_width_);
  const auto deltas = static_cast<size_t>(2 * rows * max_width_);
  if (ws.z.size() < acts) ws.z.resize(acts);
  if (ws.a.size() < acts) ws.a.resize(acts);
  if (ws.delta.size() < deltas) ws.delta.resize(deltas);
}

void Sequential::forward_block(const float* p, const float* X, int64_t n, Workspace& ws) const {
  const float* in = X;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const DenseLayer& L = layers_[l];
    float* Z = ws.z.data() + n * act_offset_[l];
    float* A = ws.a.data() + n * act_offset_[l];
    if (n == 1) {
      gemv_bias_act(p + L.w_offset, in, p + L.b_offset, Z, A, L.out, L.in, L.act, alpha_);
    } else {
      gemm_bias_act(in, n, L.in, p + L.w_offset, p + L.b_offset, L.out, Z, A, L.act, alpha_);
    }
    in = A;
  }
}

void Sequential::forward_with(const float* p, const float* X, int64_t n, float* out,
                              Workspace& ws) const {
  // Large enough batches repack the weights for the packed SIMD kernel (cheaper than the
  // operand packing OpenBLAS repeats on every call); see simd/packed_gemm.hpp.
  if (const simd::PackedModel* packed = simd::pack_for_batch(*this, p, n)) {
    simd::forward_packed(*this, p, *packed, X, n, out, ws);
    return;
  }
  const int64_t block = n < kInferenceBlock ? n : kInferenceBlock;
  reserve(ws, block);
  const int64_t k = n_outputs();
  const float* A_last = nullptr;
  for (int64_t start = 0; start < n; start += block) {
    const int64_t m = (n - start) < block ? (n - start) : block;
    forward_block(p, X + start * n_inputs_, m, ws);
    A_last = ws.a.data() + m * act_offset_.back();
    for (int64_t i = 0; i < m * k; ++i) out[start * k + i] = A_last[i];
  }
}

void Sequential::forward(const float* X, int64_t n, float* out, Workspace& ws) const {
  forward_with(params_.data(), X, n, out, ws);
}

double Sequential::forward_backward(const float* X, const float* y, int64_t n,
                                    const LossSpec& loss, float grad_scale, float* out,
                                    Workspace& ws, bool with_loss) {
  reserve(ws, n);
  ensure_grads();
  const float* p = params_.data();
  float* g = grads_.data();
  const auto& k = simd::kernels();
  forward_block(p, X, n, ws);

  const size_t last = layers_.size() - 1;
  const int64_t kout = n_outputs();
  const float* A_last = ws.a.data() + n * act_offset_[last];
  if (out != nullptr) {
    for (int64_t i = 0; i < n * kout; ++i) out[i] = A_last[i];
  }
  float* cur = ws.delta.data();
  float* nxt = ws.delta.data() + n * max_width_;
  const double total = loss_and_grad(loss, A_last, y, n, kout, cur, grad_scale, with_loss);

  for (size_t li = layers_.size(); li-- > 0;) {
    const DenseLayer& L = layers_[li];
    const float* Z = ws.z.data() + n * act_offset_[li];
    const float* A = ws.a.data() + n * act_offset_[li];
    k.act_backward(static_cast<int>(L.act), alpha_, Z, A, cur, cur, n * L.out);
    const float* input = li == 0 ? X : ws.a.data() + n * act_offset_[li - 1];
    float* gW = g + L.w_offset;
    float* gb = g + L.b_offset;
    if (n == 1) {
      k.ger(cur, input, gW, L.out, L.in, false);
      for (int64_t o = 0; o < L.out; ++o) gb[o] = cur[o];
      if (li > 0) k.gemv_t(p + L.w_offset, cur, nxt, L.out, L.in);
    } else {
      // gW = dZ^T · input (out × in); gb = column sums of dZ; dInput = dZ · W (n × in).
      gemm(true, false, L.out, L.in, n, 1.0f, cur, input, 0.0f, gW);
      for (int64_t o = 0; o < L.out; ++o) gb[o] = 0.0f;
      for (int64_t r = 0; r < n; ++r) k.axpy(1.0f, cur + r * L.out, gb, L.out);
      if (li > 0) gemm(false, false, n, L.in, L.out, 1.0f, cur, p + L.w_offset, 0.0f, nxt);
    }
    float* t = cur;
    cur = nxt;
    nxt = t;
  }
  return total;
}

}  // namespace ducklearn
