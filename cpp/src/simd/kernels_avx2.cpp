// The kernel table built for the avx2 instruction set (flags set in
// cmake/DucklearnCompileOptions.cmake), plus its packed-weight inference GEMM
// (KernelTable::gemm_packed; the layout, shared with the AVX-512 kernel, is in kernels.hpp).
#define DUCKLEARN_SIMD_NS avx2
#define DUCKLEARN_SIMD_NAME "avx2"
#define DUCKLEARN_SIMD_PACKED_GEMM 1
#include "simd/kernels_impl.hpp"

#include <immintrin.h>

// As in kernels_impl.hpp, only intrinsics and builtins from here on: an inline function of a
// library header instantiated in this file would be compiled for AVX2, and the linker may
// keep that copy for the whole program.

namespace ducklearn::simd::avx2 {
namespace {

// Register tile: kMR rows × 16 columns (half a 32-column panel) = 12 accumulators + 2 weight
// vectors + 1 broadcast, out of 16 ymm registers (the BLIS Haswell shape). One k step is 12
// FMAs for 2 vector loads and 6 broadcasts. One or two rows take whole panels instead, so
// that at least 8 accumulators cover the FMA latency.
constexpr int kMR = 6;
// Rows per block of the narrow (dot-product) kernel.
constexpr int kDotRows = 4;

// All-ones lanes below w (maskload / maskstore take the sign bit).
inline __m256i lanes(int64_t w) {
  alignas(32) static constexpr int32_t kTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                     0,  0,  0,  0,  0,  0,  0,  0};
  const int64_t c = w <= 0 ? 0 : (w >= 8 ? 8 : w);
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kTable + 8 - c));
}

// z = acc (+ bias), then ReLU / leaky ReLU inline, the same operations as bias_act so the two
// paths round alike; tanh, sigmoid and GELU leave z for act_forward over the finished rows.
inline __m256 finish(__m256 acc, const __m256 bias, bool has_bias, int act, __m256 alpha) {
  const __m256 z = has_bias ? _mm256_add_ps(acc, bias) : acc;
  // max(z, 0) returns its second operand for NaN and for -0: +0, as z > 0 ? z : 0 does.
  if (act == kReLU) return _mm256_max_ps(z, _mm256_setzero_ps());
  if (act == kLeaky) {
    const __m256 pos = _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_GT_OQ);
    return _mm256_blendv_ps(_mm256_mul_ps(alpha, z), z, pos);
  }
  return z;
}

// One register tile: MR rows of X (row stride k) times NV column vectors of 8, VP of them
// side by side in each panel (PW floats per k step; the tile starts at wp, inside a panel),
// spanning NV / VP consecutive panels (PW * k floats apart). Every output is the FMA chain
// over p = 0..k-1 from 0 in order, whatever MR, NV and VP: a row's result does not depend on
// how the rows were blocked. kEdge: only the first w columns exist (masked bias and stores).
template <int MR, int NV, int VP, int PW, bool kEdge>
void tile(const float* x, int64_t k, const float* wp, const float* b, float* y, int64_t ldy,
          int64_t w, int act, float alpha) {
  static_assert(NV % VP == 0 && 8 * VP <= PW, "a tile covers whole vectors of its panels");
  const int64_t panel_stride = PW * k;
  __m256 c[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) c[r][v] = _mm256_setzero_ps();
  }
  for (int64_t p = 0; p < k; ++p) {
    const float* wk = wp + PW * p;
    __m256 bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      bv[v] = _mm256_loadu_ps(wk + (v / VP) * panel_stride + 8 * (v % VP));
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m256 a = _mm256_broadcast_ss(x + r * k + p);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) c[r][v] = _mm256_fmadd_ps(a, bv[v], c[r][v]);
    }
  }
  const __m256 va = _mm256_set1_ps(alpha);
  const bool has_bias = b != nullptr;
  __m256 bias[NV];
  __m256i mask[NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) {
    // Bias and outputs of a multi-panel tile are contiguous: panel q's columns follow q - 1's.
    if (kEdge) mask[v] = lanes(w - 8 * v);
    if (!has_bias) {
      bias[v] = _mm256_setzero_ps();
    } else if (kEdge) {
      bias[v] = _mm256_maskload_ps(b + 8 * v, mask[v]);
    } else {
      bias[v] = _mm256_loadu_ps(b + 8 * v);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const __m256 out = finish(c[r][v], bias[v], has_bias, act, va);
      if (kEdge) {
        _mm256_maskstore_ps(y + r * ldy + 8 * v, mask[v], out);
      } else {
        _mm256_storeu_ps(y + r * ldy + 8 * v, out);
      }
    }
  }
}

// MR rows × all n columns.
template <int MR>
void row_block(const float* x, int64_t k, const float* Wp, const float* b, int64_t n, float* y,
               int act, float alpha) {
  const int64_t full = n / kPackPanel;
  const float* wp = Wp;
  int64_t q = 0;
  auto at = [&](int64_t col) { return b != nullptr ? b + col : nullptr; };
  if constexpr (MR == 1) {  // two panels per tile: 8 accumulators
    for (; q + 2 <= full; q += 2, wp += 2 * kPackPanel * k) {
      tile<MR, 8, 4, 32, false>(x, k, wp, at(q * kPackPanel), y + q * kPackPanel, n, 0, act,
                                alpha);
    }
  }
  for (; q < full; ++q, wp += kPackPanel * k) {
    const int64_t col = q * kPackPanel;
    if constexpr (MR <= 2) {
      tile<MR, 4, 4, 32, false>(x, k, wp, at(col), y + col, n, 0, act, alpha);
    } else {
      tile<MR, 2, 2, 32, false>(x, k, wp, at(col), y + col, n, 0, act, alpha);
      tile<MR, 2, 2, 32, false>(x, k, wp + 16, at(col + 16), y + col + 16, n, 0, act, alpha);
    }
  }
  const int64_t col = full * kPackPanel, w = n - col;
  if (w > 16) {  // a full-width last panel, partly used
    tile<MR, 2, 2, 32, false>(x, k, wp, at(col), y + col, n, 0, act, alpha);
    tile<MR, 2, 2, 32, true>(x, k, wp + 16, at(col + 16), y + col + 16, n, w - 16, act, alpha);
  } else if (w > 0) {  // a half-width last panel
    tile<MR, 2, 2, 16, true>(x, k, wp, at(col), y + col, n, w, act, alpha);
  }
  // The rows are finished and still in L1: the expensive activations run over them now.
  if (act != kIdentity && act != kReLU && act != kLeaky) act_forward(act, alpha, y, y, MR * n);
}

// The sum of 16 lanes held as lo (0-7) and hi (8-15), in the order _mm512_reduce_add_ps
// adds them (halves, then quarters, then pairs), so the narrow path rounds as AVX-512's does.
inline float reduce16(__m256 lo, __m256 hi) {
  const __m256 s8 = _mm256_add_ps(hi, lo);
  const __m128 s4 = _mm_add_ps(_mm256_extractf128_ps(s8, 1), _mm256_castps256_ps128(s8));
  const __m128 s2 = _mm_add_ps(s4, _mm_shuffle_ps(s4, s4, _MM_SHUFFLE(1, 0, 3, 2)));
  const __m128 s1 = _mm_add_ps(s2, _mm_shuffle_ps(s2, s2, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtss_f32(s1);
}

// n < kPackNarrow: each output is a dot product along k (16 lanes in two vectors, masked
// tail, then one fixed reduction tree), so a panel of 16 columns would mostly multiply zeros.
template <int R>
void dot_block(const float* x, int64_t k, const float* W, const float* b, int64_t n, float* y,
               int act, float alpha) {
  const int64_t kv = k & ~static_cast<int64_t>(15);
  const int64_t rest = k - kv;
  const __m256i tail_lo = lanes(rest), tail_hi = lanes(rest - 8);
  for (int64_t j = 0; j < n; ++j) {
    const float* wj = W + j * k;
    __m256 lo[R], hi[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) lo[r] = hi[r] = _mm256_setzero_ps();
    for (int64_t p = 0; p < kv; p += 16) {
      const __m256 w0 = _mm256_loadu_ps(wj + p), w1 = _mm256_loadu_ps(wj + p + 8);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        lo[r] = _mm256_fmadd_ps(_mm256_loadu_ps(x + r * k + p), w0, lo[r]);
        hi[r] = _mm256_fmadd_ps(_mm256_loadu_ps(x + r * k + p + 8), w1, hi[r]);
      }
    }
    if (rest != 0) {
      const __m256 w0 = _mm256_maskload_ps(wj + kv, tail_lo);
      const __m256 w1 = _mm256_maskload_ps(wj + kv + 8, tail_hi);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        lo[r] = _mm256_fmadd_ps(_mm256_maskload_ps(x + r * k + kv, tail_lo), w0, lo[r]);
        hi[r] = _mm256_fmadd_ps(_mm256_maskload_ps(x + r * k + kv + 8, tail_hi), w1, hi[r]);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) y[r * n + j] = reduce16(lo[r], hi[r]);
  }
  // n < kPackNarrow: the bias and activation are one short pass per row.
  for (int r = 0; r < R; ++r) bias_act(act, alpha, b, y + r * n, y + r * n, n);
}

// In-place transpose of 8 rows of 8 floats.
inline void transpose8(__m256 (&r)[8]) {
  __m256 t[8], s[8];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
#pragma GCC unroll 2
  for (int i = 0; i < 2; ++i) {
    s[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    s[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    s[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    s[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(s[i], s[4 + i], 0x20);
    r[4 + i] = _mm256_permute2f128_ps(s[i], s[4 + i], 0x31);
  }
}

void pack_weights(const float* W, int64_t n, int64_t k, float* Wp) {
  if (n < kPackNarrow) {
    if (n > 0 && k > 0)
      __builtin_memcpy(Wp, W, static_cast<decltype(sizeof(float))>(n * k) * sizeof(float));
    return;
  }
  // 8 columns × 8 k values at a time: load 8 rows of W, transpose, store 8 k rows.
  for (int64_t j0 = 0; j0 < n; j0 += kPackPanel) {
    const int64_t w = n - j0 < kPackPanel ? n - j0 : kPackPanel;
    const int64_t pw = w > kPackPanel / 2 ? kPackPanel : kPackPanel / 2;
    for (int64_t g = 0; 8 * g < pw; ++g) {
      const int64_t rows = w - 8 * g;  // valid W rows in this group (may be <= 0: zeros)
      for (int64_t p0 = 0; p0 < k; p0 += 8) {
        const int64_t kc = k - p0 < 8 ? k - p0 : 8;
        const __m256i mk = lanes(kc);
        __m256 t[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) {
          t[i] = i < rows ? _mm256_maskload_ps(W + (j0 + 8 * g + i) * k + p0, mk)
                          : _mm256_setzero_ps();
        }
        transpose8(t);
        for (int64_t i = 0; i < kc; ++i) _mm256_storeu_ps(Wp + (p0 + i) * pw + 8 * g, t[i]);
      }
    }
    Wp += pw * k;
  }
}

#include "simd/packed_driver.hpp"

}  // namespace
}  // namespace ducklearn::simd::avx2
