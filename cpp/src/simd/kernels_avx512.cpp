// The kernel table built for the avx512 instruction set (flags set in
// cmake/DucklearnCompileOptions.cmake), plus its packed-weight inference GEMM
// (KernelTable::gemm_packed; the layout, shared with the AVX2 kernel, is in kernels.hpp).
#define DUCKLEARN_SIMD_NS avx512
#define DUCKLEARN_SIMD_NAME "avx512"
#define DUCKLEARN_SIMD_PACKED_GEMM 1
#include "simd/kernels_impl.hpp"

// GCC 12 flags its own avx512fintrin.h (_mm512_undefined_ps reads a variable on purpose
// uninitialized) wherever a masked intrinsic is inlined; GCC 13 no longer does.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// As in kernels_impl.hpp, only intrinsics and builtins from here on: an inline function of a
// library header instantiated in this file would be compiled for AVX-512, and the linker may
// keep that copy for the whole program.

namespace ducklearn::simd::avx512 {
namespace {

// Why a kernel of our own: OpenBLAS packs both operands on every sgemm call, which on the
// small-k inference shapes (k = 64..128, m = 256) costs about as much as the arithmetic.
// Weights are packed once (by the caller), activations are read in place.
//
// Register tile: kMR rows × 32 columns = 28 accumulators + the 2 weight vectors of the current
// k step + 1 broadcast, out of 32 zmm registers. One k step is 28 FMAs for 2 vector loads and
// 14 broadcasts: both FMA pipes stay busy with the weights in L1/L2 (~98% of the FMA peak on
// Zen 5; 12 rows measured ~3% slower).
constexpr int kMR = 14;
// Rows per block of the narrow (dot-product) kernel: 8 independent FMA chains.
constexpr int kDotRows = 8;

inline __mmask16 lanes(int64_t w) {
  if (w <= 0) return 0;
  return w >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << w) - 1u);
}

// z = acc (+ bias), then ReLU / leaky ReLU inline, the same operations as bias_act so the two
// paths round alike; tanh, sigmoid and GELU leave z for act_forward over the finished rows.
inline __m512 finish(__m512 acc, const __m512 bias, bool has_bias, int act, __m512 alpha) {
  const __m512 z = has_bias ? _mm512_add_ps(acc, bias) : acc;
  // max(z, 0) returns its second operand for NaN and for -0: +0, as z > 0 ? z : 0 does.
  if (act == kReLU) return _mm512_max_ps(z, _mm512_setzero_ps());
  if (act == kLeaky) {
    const __mmask16 pos = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_GT_OQ);
    return _mm512_mask_blend_ps(pos, _mm512_mul_ps(alpha, z), z);
  }
  return z;
}

// One register tile: MR rows of X (row stride k) times NV column vectors of packed weights,
// PW floats per k step in each panel (32, or 16 for a narrow last panel); with NV > PW / 16
// the tile spans NV * 16 / PW consecutive panels (k * PW floats apart). Every output is the
// FMA chain over p = 0..k-1 from 0 in order, whatever MR and NV: a row's result does not
// depend on how the rows were blocked. kEdge: only the first w columns exist (masked bias
// loads and stores).
template <int MR, int NV, int PW, bool kEdge>
void tile(const float* x, int64_t k, const float* wp, const float* b, float* y, int64_t ldy,
          int64_t w, int act, float alpha) {
  constexpr int kPerPanel = PW / 16;
  const int64_t panel_stride = PW * k;
  __m512 c[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) c[r][v] = _mm512_setzero_ps();
  }
  for (int64_t p = 0; p < k; ++p) {
    const float* wk = wp + PW * p;
    __m512 bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      bv[v] = _mm512_loadu_ps(wk + (v / kPerPanel) * panel_stride + 16 * (v % kPerPanel));
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512 a = _mm512_set1_ps(x[r * k + p]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) c[r][v] = _mm512_fmadd_ps(a, bv[v], c[r][v]);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha);
  const bool has_bias = b != nullptr;
  __m512 bias[NV];
  __mmask16 mask[NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) {
    mask[v] = kEdge ? lanes(w - 16 * v) : static_cast<__mmask16>(0xFFFF);
    if (!has_bias) {
      bias[v] = _mm512_setzero_ps();
    } else if (kEdge) {
      bias[v] = _mm512_maskz_loadu_ps(mask[v], b + 16 * v);
    } else {
      bias[v] = _mm512_loadu_ps(b + 16 * v);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const __m512 out = finish(c[r][v], bias[v], has_bias, act, va);
      if (kEdge) {
        _mm512_mask_storeu_ps(y + r * ldy + 16 * v, mask[v], out);
      } else {
        _mm512_storeu_ps(y + r * ldy + 16 * v, out);
      }
    }
  }
}

// MR rows × all n columns. Short blocks (the m remainder, batch 1) take several panels per
// tile so that at least 8 accumulators cover the FMA latency.
template <int MR>
void row_block(const float* x, int64_t k, const float* Wp, const float* b, int64_t n, float* y,
               int act, float alpha) {
  const int64_t full = n / kPackPanel;
  const float* wp = Wp;
  int64_t q = 0;
  auto at = [&](int64_t panel) { return b != nullptr ? b + panel * kPackPanel : nullptr; };
  if constexpr (MR == 1) {
    for (; q + 4 <= full; q += 4, wp += 4 * kPackPanel * k) {
      tile<MR, 8, 32, false>(x, k, wp, at(q), y + q * kPackPanel, n, 0, act, alpha);
    }
  }
  if constexpr (MR < 4) {
    for (; q + 2 <= full; q += 2, wp += 2 * kPackPanel * k) {
      tile<MR, 4, 32, false>(x, k, wp, at(q), y + q * kPackPanel, n, 0, act, alpha);
    }
  }
  for (; q < full; ++q, wp += kPackPanel * k) {
    tile<MR, 2, 32, false>(x, k, wp, at(q), y + q * kPackPanel, n, 0, act, alpha);
  }
  const int64_t w = n - full * kPackPanel;
  if (w > 16) {
    tile<MR, 2, 32, true>(x, k, wp, at(q), y + q * kPackPanel, n, w, act, alpha);
  } else if (w > 0) {
    tile<MR, 1, 16, true>(x, k, wp, at(q), y + q * kPackPanel, n, w, act, alpha);
  }
  // The rows are finished and still in L1: the expensive activations run over them now.
  if (act != kIdentity && act != kReLU && act != kLeaky) act_forward(act, alpha, y, y, MR * n);
}

// n < kPackNarrow: each output is a dot product along k (16 lanes, masked tail, then one
// fixed reduction tree), so a panel of 16 columns would mostly multiply zeros.
template <int R>
void dot_block(const float* x, int64_t k, const float* W, const float* b, int64_t n, float* y,
               int act, float alpha) {
  const int64_t kv = k & ~static_cast<int64_t>(15);
  const __mmask16 tail = lanes(k - kv);
  for (int64_t j = 0; j < n; ++j) {
    const float* wj = W + j * k;
    __m512 acc[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
    for (int64_t p = 0; p < kv; p += 16) {
      const __m512 wv = _mm512_loadu_ps(wj + p);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps(x + r * k + p), wv, acc[r]);
      }
    }
    if (tail != 0) {
      const __m512 wv = _mm512_maskz_loadu_ps(tail, wj + kv);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        acc[r] =
            _mm512_mask3_fmadd_ps(_mm512_maskz_loadu_ps(tail, x + r * k + kv), wv, acc[r], tail);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) y[r * n + j] = _mm512_reduce_add_ps(acc[r]);
  }
  // n < kPackNarrow: the bias and activation are one short pass per row.
  for (int r = 0; r < R; ++r) bias_act(act, alpha, b, y + r * n, y + r * n, n);
}

// In-place transpose of 16 rows of 16 floats (unpack pairs, then 2-float, 4-float and 8-float
// blocks).
inline void transpose16(__m512 (&r)[16]) {
  __m512 t[16];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  // r[4i + j] now holds, in each 128-bit lane L, element j of rows 4i..4i+3 for columns
  // 4L..4L+3. Gather lanes: first pairs of row groups, then the two halves.
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    t[j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88);
    t[4 + j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xdd);
    t[8 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
    t[12 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xdd);
  }
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j) {
    r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
    r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xdd);
  }
}

void pack_weights(const float* W, int64_t n, int64_t k, float* Wp) {
  if (n < kPackNarrow) {
    if (n > 0 && k > 0)
      __builtin_memcpy(Wp, W, static_cast<decltype(sizeof(float))>(n * k) * sizeof(float));
    return;
  }
  // 16 columns × 16 k values at a time: load 16 rows of W, transpose, store 16 k rows.
  for (int64_t j0 = 0; j0 < n; j0 += kPackPanel) {
    const int64_t w = n - j0 < kPackPanel ? n - j0 : kPackPanel;
    const int64_t pw = w > 16 ? 32 : 16;
    for (int64_t h = 0; 16 * h < pw; ++h) {
      const int64_t rows = w - 16 * h;  // valid W rows in this half (may be <= 0: zeros)
      for (int64_t p0 = 0; p0 < k; p0 += 16) {
        const int64_t kc = k - p0 < 16 ? k - p0 : 16;
        const __mmask16 mk = lanes(kc);
        __m512 t[16];
#pragma GCC unroll 16
        for (int i = 0; i < 16; ++i) {
          t[i] = i < rows ? _mm512_maskz_loadu_ps(mk, W + (j0 + 16 * h + i) * k + p0)
                          : _mm512_setzero_ps();
        }
        transpose16(t);
        for (int64_t i = 0; i < kc; ++i) _mm512_storeu_ps(Wp + (p0 + i) * pw + 16 * h, t[i]);
      }
    }
    Wp += pw * k;
  }
}

#include "simd/packed_driver.hpp"

}  // namespace
}  // namespace ducklearn::simd::avx512
