#include "simd/packed_gemm.hpp"

#include "blas.hpp"
#include "simd/kernels.hpp"

namespace ducklearn::simd {

int64_t packed_floats(int64_t n, int64_t k) {
  if (n < kPackNarrow) return n * k;
  const int64_t full = n / kPackPanel, rest = n - full * kPackPanel;
  const int64_t last = rest == 0 ? 0 : (rest > kPackPanel / 2 ? kPackPanel : kPackPanel / 2);
  return (full * kPackPanel + last) * k;
}

bool PackedModel::pack(const Sequential& model, const float* params) {
  const auto& t = kernels();
  offset.clear();
  if (t.pack_weights == nullptr || t.gemm_packed == nullptr) {
    data.clear();
    return false;
  }
  const auto& layers = model.layers();
  int64_t total = 0;
  for (const auto& L : layers) {
    offset.push_back(total);
    // Each layer starts on a 64-byte boundary, like the buffer itself.
    total += (packed_floats(L.out, L.in) + 15) & ~static_cast<int64_t>(15);
  }
  if (static_cast<int64_t>(data.size()) < total) data.resize(static_cast<size_t>(total));
  for (size_t l = 0; l < layers.size(); ++l) {
    const auto& L = layers[l];
    t.pack_weights(params + L.w_offset, L.out, L.in, data.data() + offset[l]);
  }
  return true;
}

bool packed_usable() { return kernels().gemm_packed != nullptr; }

void forward_packed(const Sequential& model, const float* params, const PackedModel& packed,
                    const float* X, int64_t n, float* out, Workspace& ws) {
  const auto& t = kernels();
  const auto& layers = model.layers();
  const int64_t block = n < Sequential::kInferenceBlock ? n : Sequential::kInferenceBlock;
  // ws.a and ws.z each hold block × (sum of widths) floats: hidden layers alternate between
  // them (the kernel's output must not alias its input) and the last writes into out.
  model.reserve(ws, block);
  const int64_t d = model.n_inputs(), k_out = model.n_outputs();
  const auto act_code = [](const DenseLayer& L) { return static_cast<int>(L.act); };
  for (int64_t start = 0; start < n; start += block) {
    const int64_t m = (n - start) < block ? (n - start) : block;
    const float* in = X + start * d;
    for (size_t l = 0; l < layers.size(); ++l) {
      const DenseLayer& L = layers[l];
      float* dst = l + 1 == layers.size() ? out + start * k_out
                   : l % 2 == 0           ? ws.a.data()
                                          : ws.z.data();
      t.gemm_packed(in, m, L.in, packed.data.data() + packed.offset[l], params + L.b_offset, L.out,
                    dst, act_code(L), model.leaky_alpha());
      in = dst;
    }
  }
}

bool pack_pays(const Sequential& model, int64_t n) {
  if (n < 2) return false;
  int64_t weights = 0, gemv_weights = 0;
  for (const auto& L : model.layers()) {
    weights += L.in * L.out;
    if (n * L.in * L.out < kBlasMinWork) gemv_weights += L.in * L.out;
  }
  if (weights > kPackPerCallMaxWeights) return false;
  return n >= kPackPerCallMinRows || 2 * gemv_weights >= weights ||
         weights >= kPackPerCallLargeWeights;
}

const PackedModel* pack_for_batch(const Sequential& model, const float* params, int64_t n) {
  if (!packed_usable() || !pack_pays(model, n)) return nullptr;
  // Per thread: predictions run concurrently on many threads (one Workspace each), and the
  // scratch only grows, so steady-state calls do not allocate.
  thread_local PackedModel scratch;
  return scratch.pack(model, params) ? &scratch : nullptr;
}

}  // namespace ducklearn::simd
