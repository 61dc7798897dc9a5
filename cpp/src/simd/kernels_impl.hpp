// Kernel bodies compiled once per instruction set. Include only from kernels_<isa>.cpp after
// defining DUCKLEARN_SIMD_NS. Everything here lives in that namespace and calls only
// builtins: an inline function shared between ISA translation units could be merged by the
// linker into one copy built for the wrong ISA.
//
// The loops are written for the auto-vectorizer (restrict pointers, `omp simd` reductions
// with -fopenmp-simd, branch-free selects); exp is a Cephes-style polynomial so that
// activations vectorize without libmvec.
#ifndef DUCKLEARN_SIMD_NS
#error "define DUCKLEARN_SIMD_NS before including kernels_impl.hpp"
#endif

#include <cstdint>

#include "simd/kernels.hpp"

#define DL_RESTRICT __restrict__

namespace ducklearn::simd::DUCKLEARN_SIMD_NS {
namespace {

// Activation codes mirror ducklearn::Activation.
constexpr int kIdentity = 0, kReLU = 1, kLeaky = 2, kTanh = 3, kSigmoid = 4, kGELU = 5;

inline float bits_to_float(int32_t i) {
  float f;
  __builtin_memcpy(&f, &i, sizeof f);
  return f;
}

// exp(x) with ~1 ulp error over the float range (Cephes expf); clamps instead of
// overflowing so that sigmoid/tanh saturate cleanly.
inline float fast_exp(float x) {
  x = x > 88.3762626647949f ? 88.3762626647949f : x;
  x = x < -87.3365447504f ? -87.3365447504f : x;
  const float t = x * 1.44269504088896341f;
  const float fx = (t + 12582912.0f) - 12582912.0f;  // round to nearest integer
  float r = x - fx * 0.693359375f;
  r = r - fx * -2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  const int32_t n = static_cast<int32_t>(fx);
  return y * bits_to_float((n + 127) << 23);
}

inline float fast_sigmoid(float z) { return 1.0f / (1.0f + fast_exp(-z)); }

// tanh: odd polynomial near 0 (where 1 - 2/(e^2z + 1) cancels), exp form elsewhere.
inline float fast_tanh(float z) {
  const float az = z < 0.0f ? -z : z;
  const float z2 = z * z;
  float p = -5.70498872745e-3f;
  p = p * z2 + 2.06390887954e-2f;
  p = p * z2 - 5.37397155531e-2f;
  p = p * z2 + 1.33314422036e-1f;
  p = p * z2 - 3.33332819422e-1f;
  const float small = z + z * z2 * p;
  const float e = fast_exp(2.0f * az);
  float big = 1.0f - 2.0f / (e + 1.0f);
  big = z < 0.0f ? -big : big;
  return az < 0.625f ? small : big;
}

constexpr float kGeluC = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluA = 0.044715f;

float dot(const float* DL_RESTRICT x, const float* DL_RESTRICT y, int64_t n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += x[i] * y[i];
  return s;
}

void axpy(float a, const float* DL_RESTRICT x, float* DL_RESTRICT y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void lerp(float w, const float* DL_RESTRICT x, float* DL_RESTRICT y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += w * (x[i] - y[i]);
}

double sum_squares(const float* DL_RESTRICT x, int64_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
  return s;
}

// Four rows at a time so that each load of x feeds four FMAs.
void gemv(const float* DL_RESTRICT W, const float* DL_RESTRICT x, const float* DL_RESTRICT b,
          float* DL_RESTRICT z, int64_t out, int64_t in) {
  int64_t o = 0;
  for (; o + 4 <= out; o += 4) {
    const float* w0 = W + o * in;
    const float* w1 = w0 + in;
    const float* w2 = w1 + in;
    const float* w3 = w2 + in;
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (int64_t i = 0; i < in; ++i) {
      const float xi = x[i];
      s0 += w0[i] * xi;
      s1 += w1[i] * xi;
      s2 += w2[i] * xi;
      s3 += w3[i] * xi;
    }
    z[o] = s0 + (b ? b[o] : 0.0f);
    z[o + 1] = s1 + (b ? b[o + 1] : 0.0f);
    z[o + 2] = s2 + (b ? b[o + 2] : 0.0f);
    z[o + 3] = s3 + (b ? b[o + 3] : 0.0f);
  }
  for (; o < out; ++o) z[o] = dot(W + o * in, x, in) + (b ? b[o] : 0.0f);
}

void gemv_t(const float* DL_RESTRICT W, const float* DL_RESTRICT d, float* DL_RESTRICT y,
            int64_t out, int64_t in) {
#pragma omp simd
  for (int64_t i = 0; i < in; ++i) y[i] = 0.0f;
  for (int64_t o = 0; o < out; ++o) {
    const float dv = d[o];
    const float* DL_RESTRICT w = W + o * in;
#pragma omp simd
    for (int64_t i = 0; i < in; ++i) y[i] += dv * w[i];
  }
}

void ger(const float* DL_RESTRICT d, const float* DL_RESTRICT x, float* DL_RESTRICT G,
         int64_t out, int64_t in, bool accumulate) {
  for (int64_t o = 0; o < out; ++o) {
    const float dv = d[o];
    float* DL_RESTRICT g = G + o * in;
    if (accumulate) {
#pragma omp simd
      for (int64_t i = 0; i < in; ++i) g[i] += dv * x[i];
    } else {
#pragma omp simd
      for (int64_t i = 0; i < in; ++i) g[i] = dv * x[i];
    }
  }
}

// z and a may alias (in-place activation), so neither is restrict.
void act_forward(int act, float alpha, const float* z, float* a, int64_t n) {
  switch (act) {
    case kReLU:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) a[i] = z[i] > 0.0f ? z[i] : 0.0f;
      break;
    case kLeaky:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) a[i] = z[i] > 0.0f ? z[i] : alpha * z[i];
      break;
    case kTanh:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) a[i] = fast_tanh(z[i]);
      break;
    case kSigmoid:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) a[i] = fast_sigmoid(z[i]);
      break;
    case kGELU:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        const float v = z[i];
        a[i] = 0.5f * v * (1.0f + fast_tanh(kGeluC * (v + kGeluA * v * v * v)));
      }
      break;
    default:
      if (a != z) {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) a[i] = z[i];
      }
  }
}

void act_backward(int act, float alpha, const float* z, const float* a, const float* da,
                  float* dz, int64_t n) {
  switch (act) {
    case kReLU:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) dz[i] = z[i] > 0.0f ? da[i] : 0.0f;
      break;
    case kLeaky:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) dz[i] = z[i] > 0.0f ? da[i] : alpha * da[i];
      break;
    case kTanh:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) dz[i] = da[i] * (1.0f - a[i] * a[i]);
      break;
    case kSigmoid:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) dz[i] = da[i] * a[i] * (1.0f - a[i]);
      break;
    case kGELU:
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        const float v = z[i];
        const float t = fast_tanh(kGeluC * (v + kGeluA * v * v * v));
        const float dt = kGeluC * (1.0f + 3.0f * kGeluA * v * v);
        dz[i] = da[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * dt);
      }
      break;
    default:
      if (dz != da) {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) dz[i] = da[i];
      }
  }
}

void bias_act(int act, float alpha, const float* DL_RESTRICT b, float* z, float* a,
              int64_t n) {
  if (b != nullptr) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) z[i] += b[i];
  }
  // The common cheap activations fuse into the same pass; the others reuse act_forward.
  if (act == kReLU) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) a[i] = z[i] > 0.0f ? z[i] : 0.0f;
  } else if (act == kIdentity) {
    if (a != z) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) a[i] = z[i];
    }
  } else {
    act_forward(act, alpha, z, a, n);
  }
}

// The optimizer steps fold clipping (grad_scale), coupled L2 and decoupled decay into one
// pass over (params, grads, state): memory traffic, not arithmetic, bounds these loops.

void sgd_step(float* DL_RESTRICT p, const float* DL_RESTRICT g, float* DL_RESTRICT vel,
              int64_t n, const StepArgs& a) {
  const float lr = a.lr, gs = a.grad_scale, l2 = a.l2, mu = a.momentum;
  const float keep = 1.0f - a.lr * a.decoupled_wd;
  if (vel == nullptr) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const float gi = g[i] * gs + l2 * p[i];
      p[i] = p[i] * keep - lr * gi;
    }
  } else if (a.nesterov) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const float gi = g[i] * gs + l2 * p[i];
      const float v = mu * vel[i] + gi;
      vel[i] = v;
      p[i] = p[i] * keep - lr * (gi + mu * v);
    }
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const float gi = g[i] * gs + l2 * p[i];
      const float v = mu * vel[i] + gi;
      vel[i] = v;
      p[i] = p[i] * keep - lr * v;
    }
  }
}

void adagrad_step(float* DL_RESTRICT p, const float* DL_RESTRICT g, float* DL_RESTRICT acc,
                  int64_t n, const StepArgs& a) {
  const float lr = a.lr, gs = a.grad_scale, l2 = a.l2, eps = a.eps;
  const float keep = 1.0f - a.lr * a.decoupled_wd;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i] * gs + l2 * p[i];
    const float s = acc[i] + gi * gi;
    acc[i] = s;
    p[i] = p[i] * keep - lr * gi / (__builtin_sqrtf(s) + eps);
  }
}

void rmsprop_step(float* DL_RESTRICT p, const float* DL_RESTRICT g, float* DL_RESTRICT sq,
                  int64_t n, const StepArgs& a) {
  const float lr = a.lr, gs = a.grad_scale, l2 = a.l2, eps = a.eps, rho = a.rho;
  const float keep = 1.0f - a.lr * a.decoupled_wd;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i] * gs + l2 * p[i];
    const float s = rho * sq[i] + (1.0f - rho) * gi * gi;
    sq[i] = s;
    p[i] = p[i] * keep - lr * gi / (__builtin_sqrtf(s) + eps);
  }
}

// Kingma & Ba (2015), Algorithm 1, with bias corrections precomputed per step:
// p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
void adam_step(float* DL_RESTRICT p, const float* DL_RESTRICT g, float* DL_RESTRICT m,
               float* DL_RESTRICT v, int64_t n, const StepArgs& a) {
  const float lr = a.lr, gs = a.grad_scale, l2 = a.l2, eps = a.eps;
  const float b1 = a.beta1, b2 = a.beta2, c1 = a.bc1_inv, c2 = a.bc2_inv_sqrt;
  const float keep = 1.0f - a.lr * a.decoupled_wd;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i] * gs + l2 * p[i];
    const float mi = b1 * m[i] + (1.0f - b1) * gi;
    const float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * keep - lr * (mi * c1) / (__builtin_sqrtf(vi) * c2 + eps);
  }
}

// NaN entries are missing values: they neither count nor move the statistics. Skips are
// selects, never multiplications by 0: 0 * (NaN - mu) would still be NaN.
void welford_row(double* DL_RESTRICT count, double* DL_RESTRICT mean, double* DL_RESTRICT m2,
                 const float* DL_RESTRICT x, int64_t d) {
#pragma omp simd
  for (int64_t j = 0; j < d; ++j) {
    const double xv = x[j];
    const bool ok = xv == xv;
    const double c = count[j] + (ok ? 1.0 : 0.0);
    const double delta = ok ? xv - mean[j] : 0.0;
    const double mu = mean[j] + (ok ? delta / c : 0.0);
    m2[j] += ok ? delta * (xv - mu) : 0.0;
    mean[j] = mu;
    count[j] = c;
  }
}

inline float scaled(double xv, double c, double mu, double m2) {
  const double var = c > 0.0 ? m2 / c : 0.0;
  const double inv = var > 0.0 ? 1.0 / __builtin_sqrt(var) : 1.0;
  return static_cast<float>((xv - mu) * inv);
}

void welford_standardize_row(double* DL_RESTRICT count, double* DL_RESTRICT mean,
                             double* DL_RESTRICT m2, const float* DL_RESTRICT x,
                             float* DL_RESTRICT out, int64_t d) {
#pragma omp simd
  for (int64_t j = 0; j < d; ++j) {
    const double xv = x[j];
    const bool ok = xv == xv;
    const double c = count[j] + (ok ? 1.0 : 0.0);
    const double delta = ok ? xv - mean[j] : 0.0;
    const double mu = mean[j] + (ok ? delta / c : 0.0);
    const double s = m2[j] + (ok ? delta * (xv - mu) : 0.0);
    mean[j] = mu;
    count[j] = c;
    m2[j] = s;
    out[j] = scaled(xv, c, mu, s);
  }
}

void standardize_row(const double* DL_RESTRICT count, const double* DL_RESTRICT mean,
                     const double* DL_RESTRICT m2, const float* DL_RESTRICT x,
                     float* DL_RESTRICT out, int64_t d) {
#pragma omp simd
  for (int64_t j = 0; j < d; ++j) out[j] = scaled(x[j], count[j], mean[j], m2[j]);
}

void shift_scale_row(const double* DL_RESTRICT mean, const double* DL_RESTRICT inv,
                     const float* DL_RESTRICT x, float* DL_RESTRICT out, int64_t d) {
#pragma omp simd
  for (int64_t j = 0; j < d; ++j) {
    out[j] = static_cast<float>((static_cast<double>(x[j]) - mean[j]) * inv[j]);
  }
}

#if DUCKLEARN_SIMD_PACKED_GEMM
// The packed inference GEMM (see KernelTable::gemm_packed) is written with intrinsics, so the
// ISA's own translation unit defines these after including this header, in this same unnamed
// namespace (internal linkage, like everything above).
void pack_weights(const float* W, int64_t n, int64_t k, float* Wp);
void gemm_packed(const float* X, int64_t m, int64_t k, const float* Wp, const float* b,
                 int64_t n, float* Y, int act, float alpha);
#endif

}  // namespace

KernelTable make_table() {
  KernelTable t{};
  t.name = DUCKLEARN_SIMD_NAME;
  t.dot = dot;
  t.axpy = axpy;
  t.lerp = lerp;
  t.sum_squares = sum_squares;
  t.gemv = gemv;
  t.gemv_t = gemv_t;
  t.ger = ger;
  t.act_forward = act_forward;
  t.bias_act = bias_act;
  t.act_backward = act_backward;
  t.sgd_step = sgd_step;
  t.adagrad_step = adagrad_step;
  t.rmsprop_step = rmsprop_step;
  t.adam_step = adam_step;
  t.welford_row = welford_row;
  t.welford_standardize_row = welford_standardize_row;
  t.standardize_row = standardize_row;
  t.shift_scale_row = shift_scale_row;
#if DUCKLEARN_SIMD_PACKED_GEMM
  // Elsewhere both stay nullptr (t{}): callers keep the BLAS / gemv path.
  t.pack_weights = pack_weights;
  t.gemm_packed = gemm_packed;
#endif
  return t;
}

}  // namespace ducklearn::simd::DUCKLEARN_SIMD_NS

#undef DL_RESTRICT
