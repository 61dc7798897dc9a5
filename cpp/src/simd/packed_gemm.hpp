#pragma once
// Internal: inference of a Sequential through the packed-weight GEMM kernel
// (KernelTable::pack_weights / gemm_packed; layout in simd/kernels.hpp).
//
// Two users: Predictor packs its frozen weights once when it is built; Learner::predict and
// Sequential::forward pack into a thread-local scratch per call, only for batches large enough
// that packing (~1 µs per 25k weights) costs less than the BLAS repacking it replaces.
// Training (forward_backward) never comes here: it needs the pre-activations and runs BLAS.
#include <cstdint>
#include <vector>

#include "ducklearn/aligned.hpp"
#include "ducklearn/nn/sequential.hpp"

namespace ducklearn::simd {

/**
 * When Sequential::forward / Learner::predict pack per call. Measured on Zen 5, 1 thread,
 * OpenBLAS 0.3.34 SkylakeX kernels; packing costs ~0.06 ns per weight while the weights are
 * cache-resident, the kernel ~0.008 ns per multiply-add. Batch 1 never packs (the gemv path
 * is faster than packing alone). From 2 rows, packing pays:
 * - from kPackPerCallMinRows rows for every model measured (64-128-128-1 MLP: 3.2 µs vs
 *   8.3 µs for BLAS at 10 rows, 51 vs 65 µs at 256). Below, OpenBLAS's small-m kernels
 *   usually win on mid-sized layers (same model, 2 rows: 0.9 µs vs 1.4 µs + 0.6 µs);
 * - where at least half of the weights would run the per-row gemv path (layers with
 *   rows × weights < kBlasMinWork, blas.hpp: gemm.cpp's BLAS hand-off): 48-48-48-1, 4 rows: 1.55 µs
 *   vs 0.4 µs;
 * - from kPackPerCallLargeWeights weights: OpenBLAS repacks such matrices on every call too
 *   (64-384-384-1, 2 rows: 39 µs vs 11 + 4 µs; 64-1024-1024-1: 296 vs 152 µs);
 * and never above kPackPerCallMaxWeights, where the repack is a trip to memory (2048 × 2048:
 * 0.8 ms, more than the kernel saves over BLAS at 256 rows).
 */
constexpr int64_t kPackPerCallMinRows = 10;
constexpr int64_t kPackPerCallLargeWeights = int64_t{1} << 17;
constexpr int64_t kPackPerCallMaxWeights = int64_t{1} << 21;

/** Whether a batch of n rows through `model` pays for packing its weights (see above). */
bool pack_pays(const Sequential& model, int64_t n);

/** Floats KernelTable::pack_weights writes for an n × k weight matrix. */
int64_t packed_floats(int64_t n, int64_t k);

/** Every layer of one Sequential packed for gemm_packed; layer l starts at offset[l]. */
struct PackedModel {
  AlignedVector<float> data;
  std::vector<int64_t> offset;

  /**
   * Packs the weights in `params` (model's layout) with the active table's pack_weights.
   * Returns false, leaving this empty, when the active table has no packed kernel.
   */
  bool pack(const Sequential& model, const float* params);
  bool empty() const { return offset.empty(); }
};

/**
 * Raw outputs for n rows with the packed kernel, in blocks of Sequential::kInferenceBlock
 * rows: X n × model.n_inputs(), out n × model.n_outputs(); biases come from `params`, which
 * `packed` was packed from. The active table must have gemm_packed (usable() says so).
 */
void forward_packed(const Sequential& model, const float* params, const PackedModel& packed,
                    const float* X, int64_t n, float* out, Workspace& ws);

/** Whether the active table has the packed kernel (DUCKLEARN_SIMD may switch it off). */
bool packed_usable();

/**
 * Per-call packing: the weights in `params` packed into this thread's scratch when a batch of
 * n rows pays for it and the kernel exists; nullptr otherwise. Valid until the next call on
 * this thread.
 */
const PackedModel* pack_for_batch(const Sequential& model, const float* params, int64_t n);

}  // namespace ducklearn::simd
