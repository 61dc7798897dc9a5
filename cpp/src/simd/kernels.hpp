#pragma once
// Internal: the table of SIMD kernels chosen at run time (see dispatch.cpp).
//
// Every entry is compiled from kernels_impl.hpp once per instruction set. Callers go through
// ducklearn::simd::kernels(), which returns the table for the best target this CPU supports
// (or the one forced by DUCKLEARN_SIMD=generic|avx2|avx512 / set_target()).
#include <cstdint>

namespace ducklearn::simd {

enum class Target : int { Generic = 0, AVX2 = 1, AVX512 = 2 };

/** Hyperparameters of one element-wise optimizer step (already resolved for step t). */
struct StepArgs {
  float lr = 0.01f;
  float grad_scale = 1.0f;    ///< multiplies every gradient (gradient-norm clipping)
  float l2 = 0.0f;            ///< coupled L2: g += l2 * p
  float decoupled_wd = 0.0f;  ///< decoupled decay: p -= lr * decoupled_wd * p
  float momentum = 0.0f;      ///< SGD
  bool nesterov = false;      ///< SGD
  float beta1 = 0.9f;         ///< Adam
  float beta2 = 0.999f;       ///< Adam
  float rho = 0.99f;          ///< RMSProp
  float eps = 1e-8f;
  float bc1_inv = 1.0f;       ///< Adam: 1 / (1 - beta1^t)
  float bc2_inv_sqrt = 1.0f;  ///< Adam: 1 / sqrt(1 - beta2^t)
};

struct KernelTable {
  const char* name;
  float (*dot)(const float* x, const float* y, int64_t n);
  void (*axpy)(float a, const float* x, float* y, int64_t n);
  /// y += w (x - y): moves y a share w of the way towards x (moving averages).
  void (*lerp)(float w, const float* x, float* y, int64_t n);
  double (*sum_squares)(const float* x, int64_t n);
  /// z[o] = b[o] + sum_i W[o, i] x[i]; W: out × in row-major; b may be nullptr.
  void (*gemv)(const float* W, const float* x, const float* b, float* z, int64_t out, int64_t in);
  /// y[i] = sum_o W[o, i] d[o]; W: out × in row-major.
  void (*gemv_t)(const float* W, const float* d, float* y, int64_t out, int64_t in);
  /// G[o, i] = d[o] x[i] (or += when accumulate); G: out × in row-major.
  void (*ger)(const float* d, const float* x, float* G, int64_t out, int64_t in,
              bool accumulate);
  /// a = act(z), act as ducklearn::Activation.
  void (*act_forward)(int act, float alpha, const float* z, float* a, int64_t n);
  /// z += b (b may be nullptr), then a = act(z): the GEMM epilogue in one pass.
  void (*bias_act)(int act, float alpha, const float* b, float* z, float* a, int64_t n);
  /// dz = da * act'(z) (sigmoid/tanh read a).
  void (*act_backward)(int act, float alpha, const float* z, const float* a, const float* da,
                       float* dz, int64_t n);
  void (*sgd_step)(float* p, const float* g, float* velocity, int64_t n, const StepArgs& a);
  void (*adagrad_step)(float* p, const float* g, float* accum, int64_t n, const StepArgs& a);
  void (*rmsprop_step)(float* p, const float* g, float* sq, int64_t n, const StepArgs& a);
  void (*adam_step)(float* p, const float* g, float* m, float* v, int64_t n, const StepArgs& a);
  /// Welford update of per-column (count, mean, m2) with one row x (NaN entries skipped).
  void (*welford_row)(double* count, double* mean, double* m2, const float* x, int64_t d);
  /// The update above fused with out = (x - mean) / std using the updated statistics.
  void (*welford_standardize_row)(double* count, double* mean, double* m2, const float* x,
                                  float* out, int64_t d);
  /// out = (x - mean) / std from the current statistics (std = 1 while variance is 0).
  void (*standardize_row)(const double* count, const double* mean, const double* m2,
                          const float* x, float* out, int64_t d);
  /// out = (x - mean) * inv for one row, with mean and inv (1 / std) precomputed per column.
  void (*shift_scale_row)(const double* mean, const double* inv, const float* x, float* out,
                          int64_t d);

  // Inference GEMM on pre-packed weights (see packed_gemm.hpp). nullptr where the ISA has no
  // such kernel: callers then keep the BLAS / gemv path. Every table that has one reads the
  // layout below, so weights packed once serve any of them.
  //
  // Layout of W (n × k, row-major) packed: if n < kPackNarrow, W itself (n rows of k floats);
  // otherwise ceil(n / kPackPanel) column panels, panel q holding columns
  // [q kPackPanel, q kPackPanel + w) as k rows of w floats (W[q kPackPanel + j, p] at p w + j),
  // w = kPackPanel except a last panel of at most kPackPanel / 2 columns, which is
  // kPackPanel / 2 wide; columns past n are zero.

  /// Packs W (n × k row-major) into packed_floats(n, k) floats at Wp (64-byte aligned).
  void (*pack_weights)(const float* W, int64_t n, int64_t k, float* Wp);
  /// Y = act(X Wᵀ + b): X m × k row-major, Wp from pack_weights, b n floats or nullptr,
  /// Y m × n row-major (never aliasing X). Each output is the FMA chain over p = 0..k-1 in
  /// order (n ≥ kPackNarrow) or a fixed 16-lane tree (n < kPackNarrow), plus b, then act:
  /// a row's result never depends on m or on the other rows.
  void (*gemm_packed)(const float* X, int64_t m, int64_t k, const float* Wp, const float* b,
                      int64_t n, float* Y, int act, float alpha);
};

/** Columns per packed weight panel: two 16-float vectors. */
constexpr int64_t kPackPanel = 32;
/** Layers narrower than this keep W's rows and run as dot products (see KernelTable). */
constexpr int64_t kPackNarrow = 4;

/** The active table (thread-safe; chosen once on first use). */
const KernelTable& kernels();
Target active_target();
Target best_supported_target();
/** Forces a target (tests, benchmarks); returns false if the CPU lacks it. */
bool set_target(Target t);
const char* target_name(Target t);

namespace generic { KernelTable make_table(); }
namespace avx2 { KernelTable make_table(); }
namespace avx512 { KernelTable make_table(); }

}  // namespace ducklearn::simd
