// Every entry of every SIMD kernel table this CPU can run, against scalar double-precision
// references, at lengths that are not multiples of the vector width. Outputs carry guard
// floats after the end (tail-loop overruns) and inputs are also tried misaligned by one float.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <vector>

#include "test_util.hpp"

namespace {

using namespace dltest;
using ducklearn::simd::StepArgs;

constexpr int64_t kGuard = 19;  // longer than one 16-float vector
constexpr float kSentinel = -7777.0f;
const float kNaN = std::numeric_limits<float>::quiet_NaN();

/** n floats at a chosen misalignment, surrounded by sentinel guards. */
class Buf {
 public:
  Buf(int64_t n, int64_t offset, float fill = 0.0f)
      : n_(n), off_(offset), v_(static_cast<size_t>(n + offset + kGuard), kSentinel) {
    std::fill(data(), data() + n, fill);
  }
  Buf(const std::vector<float>& src, int64_t offset)
      : Buf(static_cast<int64_t>(src.size()), offset) {
    std::copy(src.begin(), src.end(), data());
  }
  float* data() { return v_.data() + off_; }
  const float* data() const { return v_.data() + off_; }
  float operator[](int64_t i) const { return data()[i]; }
  bool guards_intact() const {
    for (int64_t i = 0; i < off_; ++i) {
      if (v_[static_cast<size_t>(i)] != kSentinel) return false;
    }
    for (int64_t i = off_ + n_; i < static_cast<int64_t>(v_.size()); ++i) {
      if (v_[static_cast<size_t>(i)] != kSentinel) return false;
    }
    return true;
  }

 private:
  int64_t n_, off_;
  std::vector<float> v_;
};

class SimdKernels : public ::testing::TestWithParam<Target> {
 protected:
  void SetUp() override { k = table_for(GetParam()); }
  KernelTable k{};
};

TEST_P(SimdKernels, TableIsCompleteAndNamed) {
  EXPECT_STREQ(k.name, ducklearn::simd::target_name(GetParam()));
  EXPECT_NE(k.dot, nullptr);
  EXPECT_NE(k.axpy, nullptr);
  EXPECT_NE(k.lerp, nullptr);
  EXPECT_NE(k.sum_squares, nullptr);
  EXPECT_NE(k.gemv, nullptr);
  EXPECT_NE(k.gemv_t, nullptr);
  EXPECT_NE(k.ger, nullptr);
  EXPECT_NE(k.act_forward, nullptr);
  EXPECT_NE(k.act_backward, nullptr);
  EXPECT_NE(k.sgd_step, nullptr);
  EXPECT_NE(k.adagrad_step, nullptr);
  EXPECT_NE(k.rmsprop_step, nullptr);
  EXPECT_NE(k.adam_step, nullptr);
  EXPECT_NE(k.welford_row, nullptr);
  EXPECT_NE(k.welford_standardize_row, nullptr);
  EXPECT_NE(k.standardize_row, nullptr);
}

// ---------------------------------------------------------------- BLAS-1 ----

TEST_P(SimdKernels, DotIsExactOnSmallIntegers) {
  Rng rng(11);
  for (int64_t n : kSizes) {
    for (int64_t off : {0, 1}) {
      const auto x = rng.ints(n, -4, 4), y = rng.ints(n, -4, 4);
      double ref = 0.0;
      for (int64_t i = 0; i < n; ++i) ref += static_cast<double>(x[i]) * y[i];
      const Buf bx(x, off), by(y, 0);
      EXPECT_EQ(k.dot(bx.data(), by.data(), n), static_cast<float>(ref)) << "n=" << n;
    }
  }
}

TEST_P(SimdKernels, DotMatchesDoubleReference) {
  Rng rng(12);
  for (int64_t n : kSizes) {
    const auto x = rng.vec(n, -1.0f, 1.0f), y = rng.vec(n, -1.0f, 1.0f);
    double ref = 0.0, mag = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      ref += static_cast<double>(x[i]) * y[i];
      mag += std::fabs(static_cast<double>(x[i]) * y[i]);
    }
    // Float summation error grows at worst like n * eps * sum|x y|.
    EXPECT_TRUE(Close(k.dot(x.data(), y.data(), n), ref, 0.0,
                      2.0 * static_cast<double>(n) * FLT_EPSILON * mag))
        << "n=" << n;
  }
}

TEST_P(SimdKernels, AxpyUpdatesExactlyTheFirstNElements) {
  Rng rng(13);
  for (int64_t n : kSizes) {
    for (int64_t off : {0, 1}) {
      const auto x = rng.ints(n, -8, 8), y0 = rng.ints(n, -8, 8);
      const Buf bx(x, off);
      Buf by(y0, off);
      k.axpy(3.0f, bx.data(), by.data(), n);
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(by[i], y0[i] + 3.0f * x[i]) << "n=" << n;
      EXPECT_TRUE(by.guards_intact()) << "n=" << n;

      const auto xr = rng.vec(n, -1.0f, 1.0f);
      Buf br(y0, off);
      k.axpy(-0.37f, xr.data(), br.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_TRUE(Close(br[i], y0[i] - 0.37 * xr[i], 1e-6, 1e-6)) << "n=" << n << " i=" << i;
      }
    }
  }
}

TEST_P(SimdKernels, LerpMovesTheGivenShareTowardsX) {
  Rng rng(19);
  for (int64_t n : kSizes) {
    for (int64_t off : {0, 1}) {
      const auto x = rng.ints(n, -8, 8), y0 = rng.ints(n, -8, 8);
      const Buf bx(x, off);
      Buf by(y0, off);
      k.lerp(0.25f, bx.data(), by.data(), n);  // exact on small integers and quarters
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(by[i], y0[i] + 0.25f * (x[i] - y0[i])) << n;
      EXPECT_TRUE(by.guards_intact()) << "n=" << n;
      Buf bz(y0, off);
      k.lerp(1.0f, bx.data(), bz.data(), n);
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(bz[i], x[i]) << "n=" << n;
    }
  }
}

TEST_P(SimdKernels, SumSquaresAccumulatesInDouble) {
  Rng rng(14);
  for (int64_t n : kSizes) {
    auto x = rng.vec(n, -3.0f, 3.0f);
    double ref = 0.0;
    for (float v : x) ref += static_cast<double>(v) * v;
    EXPECT_TRUE(Close(k.sum_squares(x.data(), n), ref, 1e-13, 0.0)) << "n=" << n;
  }
  // 2^24 + 1 is not a float sum: a float accumulator would lose the last unit.
  std::vector<float> big(257, 1.0f);
  big[0] = 4096.0f;  // 4096^2 = 2^24
  EXPECT_EQ(k.sum_squares(big.data(), 257), 16777216.0 + 256.0);
}

// ---------------------------------------------------------------- BLAS-2 ----

const std::vector<int64_t> kRows = {0, 1, 3, 4, 5, 7, 8, 9, 17, 33};

TEST_P(SimdKernels, GemvIsExactOnSmallIntegers) {
  Rng rng(21);
  for (int64_t out : kRows) {
    for (int64_t in : kSizes) {
      const auto W = rng.ints(out * in, -3, 3), x = rng.ints(in, -3, 3), b = rng.ints(out, -9, 9);
      for (bool with_bias : {true, false}) {
        Buf z(out, 1, kNaN);
        k.gemv(W.data(), x.data(), with_bias ? b.data() : nullptr, z.data(), out, in);
        for (int64_t o = 0; o < out; ++o) {
          double ref = with_bias ? b[o] : 0.0;
          for (int64_t i = 0; i < in; ++i) ref += static_cast<double>(W[o * in + i]) * x[i];
          ASSERT_EQ(z[o], static_cast<float>(ref)) << "out=" << out << " in=" << in << " o=" << o;
        }
        EXPECT_TRUE(z.guards_intact()) << "out=" << out << " in=" << in;
      }
    }
  }
}

TEST_P(SimdKernels, GemvMatchesDoubleReference) {
  Rng rng(22);
  for (int64_t out : kRows) {
    for (int64_t in : kSizes) {
      const auto W = rng.vec(out * in, -1.0f, 1.0f), x = rng.vec(in, -1.0f, 1.0f);
      const auto b = rng.vec(out, -1.0f, 1.0f);
      std::vector<float> z(static_cast<size_t>(out));
      k.gemv(W.data(), x.data(), b.data(), z.data(), out, in);
      for (int64_t o = 0; o < out; ++o) {
        double ref = b[o], mag = std::fabs(b[o]);
        for (int64_t i = 0; i < in; ++i) {
          ref += static_cast<double>(W[o * in + i]) * x[i];
          mag += std::fabs(static_cast<double>(W[o * in + i]) * x[i]);
        }
        ASSERT_TRUE(Close(z[o], ref, 0.0, 2.0 * (in + 1) * FLT_EPSILON * mag))
            << "out=" << out << " in=" << in << " o=" << o;
      }
    }
  }
}

TEST_P(SimdKernels, GemvTransposedOverwritesAndIsExact) {
  Rng rng(23);
  for (int64_t out : kRows) {
    for (int64_t in : kSizes) {
      const auto W = rng.ints(out * in, -3, 3), d = rng.ints(out, -3, 3);
      Buf y(in, 1, kNaN);  // stale NaNs must be overwritten, not accumulated into
      k.gemv_t(W.data(), d.data(), y.data(), out, in);
      for (int64_t i = 0; i < in; ++i) {
        double ref = 0.0;
        for (int64_t o = 0; o < out; ++o) ref += static_cast<double>(W[o * in + i]) * d[o];
        ASSERT_EQ(y[i], static_cast<float>(ref)) << "out=" << out << " in=" << in << " i=" << i;
      }
      EXPECT_TRUE(y.guards_intact()) << "out=" << out << " in=" << in;
    }
  }
}

TEST_P(SimdKernels, GerOverwritesOrAccumulates) {
  Rng rng(24);
  for (int64_t out : kRows) {
    for (int64_t in : kSizes) {
      const auto d = rng.ints(out, -5, 5), x = rng.ints(in, -5, 5);
      const auto G0 = rng.ints(out * in, -20, 20);
      Buf fresh(out * in, 1, kNaN);
      k.ger(d.data(), x.data(), fresh.data(), out, in, false);
      Buf acc(G0, 1);
      k.ger(d.data(), x.data(), acc.data(), out, in, true);
      for (int64_t o = 0; o < out; ++o) {
        for (int64_t i = 0; i < in; ++i) {
          const float outer = d[o] * x[i];
          ASSERT_EQ(fresh[o * in + i], outer) << "out=" << out << " in=" << in;
          ASSERT_EQ(acc[o * in + i], G0[o * in + i] + outer) << "out=" << out << " in=" << in;
        }
      }
      EXPECT_TRUE(fresh.guards_intact());
      EXPECT_TRUE(acc.guards_intact());
    }
  }
}

// ----------------------------------------------------------- activations ----

const char* kActNames[] = {"identity", "relu", "leaky_relu", "tanh", "sigmoid", "gelu"};

// Inputs: a random spread, the saturation range, and values near the branch points of the
// kernels (0, the tanh polynomial/exp switch at 0.625, the exp clamps near +-88).
std::vector<float> activation_inputs(int64_t n_random, uint64_t seed) {
  std::vector<float> z = {0.0f,  -0.0f,  1e-30f,  -1e-30f, 1e-20f,   -1e-12f,  1e-7f, -1e-4f,
                          0.3f,  -0.3f,  0.6249f, 0.6251f, -0.6249f, -0.6251f, 1.0f,  -1.0f,
                          5.0f,  -5.0f,  9.0f,    -9.0f,   20.0f,    -20.0f,   44.0f, -44.0f,
                          88.0f, -88.0f, 89.0f,   -89.0f,  100.0f,   -100.0f,  1e4f,  -1e4f};
  Rng rng(seed);
  for (int64_t i = 0; i < n_random; ++i) z.push_back(rng.uniform(-12.0f, 12.0f));
  return z;
}

// Tolerances for the polynomial exp/tanh kernels: about twice the largest error measured
// over 2e6 random inputs (tanh 1.4e-7 and sigmoid 1.2e-7 relative; gelu 4.3e-7 absolute,
// where 1 + tanh cancels for negative inputs).
struct ActTol {
  double rtol, atol;
};
ActTol act_tol(int act) {
  switch (act) {
    case 3: return {3e-7, 1e-30};  // tanh
    case 4: return {3e-7, 1e-30};  // sigmoid
    case 5: return {3e-7, 1e-6};   // gelu
    default: return {0.0, 0.0};    // identity, relu, leaky: exact
  }
}

TEST_P(SimdKernels, ActivationForwardMatchesReference) {
  for (int act = 0; act <= 5; ++act) {
    for (float alpha : {0.01f, 0.2f}) {
      for (int64_t n : kSizes) {
        auto z = activation_inputs(n, 31 + n);
        z.resize(static_cast<size_t>(n));  // the specials first, random values after
        const int64_t m = static_cast<int64_t>(z.size());
        Buf a(m, 1, kNaN);
        k.act_forward(act, alpha, z.data(), a.data(), m);
        const ActTol tol = act_tol(act);
        for (int64_t i = 0; i < m; ++i) {
          const double ref = act_ref(act, z[i], alpha);
          if (act == 2) {
            // leaky: the same single float multiply as the reference definition
            ASSERT_EQ(a[i], z[i] > 0.0f ? z[i] : alpha * z[i]) << "z=" << z[i];
          } else {
            ASSERT_TRUE(Close(a[i], ref, tol.rtol, tol.atol))
                << kActNames[act] << " z=" << z[i] << " n=" << n;
          }
        }
        EXPECT_TRUE(a.guards_intact()) << kActNames[act] << " n=" << n;
      }
    }
  }
}

TEST_P(SimdKernels, ActivationForwardInPlaceEqualsOutOfPlace) {
  const auto z = activation_inputs(257, 32);
  const int64_t n = static_cast<int64_t>(z.size());
  for (int act = 0; act <= 5; ++act) {
    std::vector<float> out(z.size()), inplace = z;
    k.act_forward(act, 0.05f, z.data(), out.data(), n);
    k.act_forward(act, 0.05f, inplace.data(), inplace.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(inplace[i], out[i]) << kActNames[act];
  }
}

TEST_P(SimdKernels, ActivationExtremesSaturateCleanly) {
  const std::vector<float> z = {100.0f, -100.0f, 1e4f, -1e4f, 1e30f, -1e30f, 0.0f};
  const int64_t n = static_cast<int64_t>(z.size());
  std::vector<float> a(z.size());
  k.act_forward(4, 0.01f, z.data(), a.data(), n);  // sigmoid
  EXPECT_EQ(a[0], 1.0f);
  EXPECT_GE(a[1], 0.0f);
  EXPECT_LT(a[1], 1e-30f);
  EXPECT_EQ(a[4], 1.0f);
  EXPECT_GE(a[5], 0.0f);
  EXPECT_LT(a[5], 1e-30f);
  EXPECT_EQ(a[6], 0.5f);
  k.act_forward(3, 0.01f, z.data(), a.data(), n);  // tanh
  EXPECT_EQ(a[0], 1.0f);
  EXPECT_EQ(a[1], -1.0f);
  EXPECT_EQ(a[4], 1.0f);
  EXPECT_EQ(a[5], -1.0f);
  EXPECT_EQ(a[6], 0.0f);
  k.act_forward(5, 0.01f, z.data(), a.data(), n);  // gelu
  EXPECT_FLOAT_EQ(a[0], 100.0f);
  EXPECT_EQ(a[1], 0.0f);
  EXPECT_FLOAT_EQ(a[2], 1e4f);
  EXPECT_EQ(a[3], 0.0f);
  EXPECT_EQ(a[6], 0.0f);
  for (int act = 0; act <= 5; ++act) {
    k.act_forward(act, 0.01f, z.data(), a.data(), n);
    const std::vector<float> da(z.size(), 1.0f);
    std::vector<float> dz(z.size());
    k.act_backward(act, 0.01f, z.data(), a.data(), da.data(), dz.data(), n);
    for (int64_t i = 0; i < 4; ++i) {  // +-100 and +-1e4
      ASSERT_TRUE(std::isfinite(a[i])) << kActNames[act] << " z=" << z[i];
      ASSERT_TRUE(std::isfinite(dz[i])) << kActNames[act] << " z=" << z[i];
      ASSERT_TRUE(Close(dz[i], act_grad_ref(act, z[i], 0.01), 1e-6, 1e-6))
          << kActNames[act] << " z=" << z[i];
    }
  }
}

TEST_P(SimdKernels, TanhIsRelativelyAccurateNearZero) {
  // 1 - 2 / (e^{2z} + 1) cancels catastrophically here; the kernel must not use it.
  std::vector<float> z;
  for (double v = 1e-30; v < 0.7; v *= 1.7) {
    z.push_back(static_cast<float>(v));
    z.push_back(static_cast<float>(-v));
  }
  const int64_t n = static_cast<int64_t>(z.size());
  std::vector<float> a(z.size());
  k.act_forward(3, 0.01f, z.data(), a.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_TRUE(Close(a[i], std::tanh(static_cast<double>(z[i])), 4.0 * FLT_EPSILON, 0.0))
        << "z=" << z[i];
  }
}

TEST_P(SimdKernels, ActivationBackwardMatchesReference) {
  Rng rng(33);
  for (int act = 0; act <= 5; ++act) {
    for (int64_t n : kSizes) {
      auto z = activation_inputs(n, 34 + n);
      z.resize(static_cast<size_t>(n));
      const int64_t m = n;
      std::vector<float> a(z.size());
      k.act_forward(act, 0.1f, z.data(), a.data(), m);
      const auto da = rng.vec(m, -2.0f, 2.0f);
      Buf dz(m, 1, kNaN);
      k.act_backward(act, 0.1f, z.data(), a.data(), da.data(), dz.data(), m);
      std::vector<float> inplace = da;  // the layer backward pass runs with da == dz
      k.act_backward(act, 0.1f, z.data(), a.data(), inplace.data(), inplace.data(), m);
      for (int64_t i = 0; i < m; ++i) {
        const double ref = da[i] * act_grad_ref(act, z[i], 0.1f);
        ASSERT_TRUE(Close(dz[i], ref, 1e-5, 1e-6 * std::fabs(da[i])))
            << kActNames[act] << " z=" << z[i];
        ASSERT_EQ(inplace[i], dz[i]) << kActNames[act] << " z=" << z[i];
      }
      EXPECT_TRUE(dz.guards_intact());
    }
  }
}

TEST_P(SimdKernels, ReluFamilyDerivativeAtZeroTakesTheNegativeSide) {
  const float z = 0.0f, a = 0.0f, da = 2.0f;
  float dz = kNaN;
  k.act_backward(1, 0.01f, &z, &a, &da, &dz, 1);
  EXPECT_EQ(dz, 0.0f);
  k.act_backward(2, 0.25f, &z, &a, &da, &dz, 1);
  EXPECT_EQ(dz, 0.5f);
}

// ------------------------------------------------------------ optimizers ----

// Scalar double references of one element-wise step with every StepArgs knob.
double decayed(double p, const StepArgs& s) { return p * (1.0 - double(s.lr) * s.decoupled_wd); }
double eff_grad(double g, double p, const StepArgs& s) { return g * s.grad_scale + s.l2 * p; }

StepArgs busy_args() {
  StepArgs a;
  a.lr = 0.05f;
  a.grad_scale = 0.7f;
  a.l2 = 0.01f;
  a.decoupled_wd = 0.02f;
  a.momentum = 0.9f;
  a.beta1 = 0.85f;
  a.beta2 = 0.99f;
  a.rho = 0.9f;
  a.eps = 1e-6f;
  return a;
}

TEST_P(SimdKernels, OptimizerStepsMatchScalarReference) {
  Rng rng(41);
  enum Kind { kPlain, kMomentum, kNesterov, kAdaGrad, kRMSProp, kAdam };
  for (int kind = kPlain; kind <= kAdam; ++kind) {
    for (int64_t n : kSizes) {
      StepArgs a = busy_args();
      a.nesterov = kind == kNesterov;
      auto p = rng.vec(n, -1.0f, 1.0f);
      std::vector<float> s1(static_cast<size_t>(n), 0.0f), s2(static_cast<size_t>(n), 0.0f);
      if (kind == kAdaGrad) std::fill(s1.begin(), s1.end(), 0.1f);
      std::vector<double> rp(p.begin(), p.end()), r1(s1.begin(), s1.end()), r2(n, 0.0);
      for (int t = 1; t <= 3; ++t) {
        const auto g = rng.vec(n, -1.0f, 1.0f);
        if (kind == kAdam) {
          a.bc1_inv = static_cast<float>(1.0 / (1.0 - std::pow(double(a.beta1), t)));
          a.bc2_inv_sqrt = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(double(a.beta2), t)));
        }
        switch (kind) {
          case kPlain: k.sgd_step(p.data(), g.data(), nullptr, n, a); break;
          case kMomentum:
          case kNesterov: k.sgd_step(p.data(), g.data(), s1.data(), n, a); break;
          case kAdaGrad: k.adagrad_step(p.data(), g.data(), s1.data(), n, a); break;
          case kRMSProp: k.rmsprop_step(p.data(), g.data(), s1.data(), n, a); break;
          default: k.adam_step(p.data(), g.data(), s1.data(), s2.data(), n, a); break;
        }
        for (int64_t i = 0; i < n; ++i) {
          const double gi = eff_grad(g[i], rp[i], a);
          double upd = 0.0;
          switch (kind) {
            case kPlain: upd = gi; break;
            case kMomentum:
              r1[i] = a.momentum * r1[i] + gi;
              upd = r1[i];
              break;
            case kNesterov:
              r1[i] = a.momentum * r1[i] + gi;
              upd = gi + a.momentum * r1[i];
              break;
            case kAdaGrad:
              r1[i] += gi * gi;
              upd = gi / (std::sqrt(r1[i]) + a.eps);
              break;
            case kRMSProp:
              r1[i] = a.rho * r1[i] + (1.0 - a.rho) * gi * gi;
              upd = gi / (std::sqrt(r1[i]) + a.eps);
              break;
            default: {
              r1[i] = a.beta1 * r1[i] + (1.0 - a.beta1) * gi;
              r2[i] = a.beta2 * r2[i] + (1.0 - a.beta2) * gi * gi;
              const double mhat = r1[i] / (1.0 - std::pow(double(a.beta1), t));
              const double vhat = r2[i] / (1.0 - std::pow(double(a.beta2), t));
              upd = mhat / (std::sqrt(vhat) + a.eps);
            }
          }
          rp[i] = decayed(rp[i], a) - a.lr * upd;
        }
      }
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_TRUE(Close(p[i], rp[i], 1e-5, 1e-6)) << "kind=" << kind << " n=" << n << " i=" << i;
        if (kind != kPlain) {
          ASSERT_TRUE(Close(s1[i], r1[i], 1e-5, 1e-7)) << "kind=" << kind;
        }
        if (kind == kAdam) {
          ASSERT_TRUE(Close(s2[i], r2[i], 1e-5, 1e-9)) << "n=" << n;
        }
      }
    }
  }
}

// ------------------------------------------------------------- statistics ----

// Rows with a large offset (naive sum-of-squares would cancel) and ~15% NaN (missing) cells.
std::vector<float> stats_rows(int64_t rows, int64_t d, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> X(static_cast<size_t>(rows * d));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < d; ++j) {
      X[r * d + j] = rng.uniform(0.0f, 1.0f) < 0.15f
                         ? kNaN
                         : static_cast<float>(1000.0 + (1.0 + j % 5) * rng.normal());
    }
  }
  return X;
}

struct ColumnStats {
  double count = 0.0, mean = 0.0, m2 = 0.0;
};

// Two-pass statistics of column j over rows [0, upto), NaN cells skipped.
ColumnStats two_pass(const std::vector<float>& X, int64_t d, int64_t j, int64_t upto) {
  ColumnStats s;
  double sum = 0.0;
  for (int64_t r = 0; r < upto; ++r) {
    const float v = X[r * d + j];
    if (std::isnan(v)) continue;
    s.count += 1.0;
    sum += v;
  }
  if (s.count == 0.0) return s;
  s.mean = sum / s.count;
  for (int64_t r = 0; r < upto; ++r) {
    const float v = X[r * d + j];
    if (!std::isnan(v)) s.m2 += (v - s.mean) * (v - s.mean);
  }
  return s;
}

double scaled_ref(float x, const ColumnStats& s) {
  const double var = s.count > 0.0 ? s.m2 / s.count : 0.0;
  return (x - s.mean) / (var > 0.0 ? std::sqrt(var) : 1.0);
}

TEST_P(SimdKernels, WelfordRowSkipsNaNAndMatchesTwoPass) {
  const int64_t rows = 40;
  for (int64_t d : kSizes) {
    const auto X = stats_rows(rows, d, 51 + d);
    std::vector<double> count(d, 0.0), mean(d, 0.0), m2(d, 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      k.welford_row(count.data(), mean.data(), m2.data(), X.data() + r * d, d);
    }
    for (int64_t j = 0; j < d; ++j) {
      const ColumnStats ref = two_pass(X, d, j, rows);
      ASSERT_EQ(count[j], ref.count) << "d=" << d << " j=" << j;
      ASSERT_TRUE(Close(mean[j], ref.mean, 1e-13, 0.0)) << "d=" << d << " j=" << j;
      ASSERT_TRUE(Close(m2[j], ref.m2, 1e-9, 0.0)) << "d=" << d << " j=" << j;
    }
  }
}

TEST_P(SimdKernels, WelfordStandardizeRowUsesTheUpdatedStatistics) {
  const int64_t rows = 30;
  for (int64_t d : kSizes) {
    const auto X = stats_rows(rows, d, 61 + d);
    std::vector<double> count(d, 0.0), mean(d, 0.0), m2(d, 0.0);
    Buf out(d, 1, 0.0f);
    for (int64_t r = 0; r < rows; ++r) {
      k.welford_standardize_row(count.data(), mean.data(), m2.data(), X.data() + r * d, out.data(),
                                d);
      for (int64_t j = 0; j < d; ++j) {
        const float x = X[r * d + j];
        const ColumnStats ref = two_pass(X, d, j, r + 1);
        ASSERT_EQ(count[j], ref.count);
        if (std::isnan(x)) {
          ASSERT_TRUE(std::isnan(out[j])) << "a missing value stays missing";
        } else {
          ASSERT_TRUE(Close(out[j], scaled_ref(x, ref), 1e-6, 1e-6))
              << "d=" << d << " r=" << r << " j=" << j;
        }
      }
      ASSERT_TRUE(out.guards_intact());
    }
  }
}

TEST_P(SimdKernels, StandardizeRowUsesUnitScaleForConstantColumns) {
  for (int64_t d : kSizes) {
    Rng rng(71 + d);
    std::vector<double> count(d), mean(d), m2(d);
    for (int64_t j = 0; j < d; ++j) {
      count[j] = static_cast<double>(j % 4);  // 0 (no data) .. 3
      mean[j] = rng.uniform(-5.0f, 5.0f);
      m2[j] = j % 3 == 0 ? 0.0 : rng.uniform(0.1f, 9.0f);  // zero variance every third
    }
    const auto x = rng.vec(d, -10.0f, 10.0f);
    Buf out(d, 1, kNaN);
    k.standardize_row(count.data(), mean.data(), m2.data(), x.data(), out.data(), d);
    for (int64_t j = 0; j < d; ++j) {
      const double var = count[j] > 0.0 ? m2[j] / count[j] : 0.0;
      const double ref = (x[j] - mean[j]) / (var > 0.0 ? std::sqrt(var) : 1.0);
      ASSERT_TRUE(Close(out[j], ref, 1e-6, 1e-6)) << "d=" << d << " j=" << j;
    }
    EXPECT_TRUE(out.guards_intact());
  }
}

INSTANTIATE_TEST_SUITE_P(AllTargets, SimdKernels, ::testing::ValuesIn(supported_targets()),
                         target_param_name);

// ----------------------------------------------------------- dispatching ----

TEST(SimdDispatch, EveryTargetUpToTheBestCanBeForcedAndRestored) {
  using namespace ducklearn::simd;
  const Target before = active_target();
  for (Target t : supported_targets()) {
    ASSERT_TRUE(set_target(t));
    EXPECT_EQ(active_target(), t);
    EXPECT_STREQ(kernels().name, target_name(t));
  }
  ASSERT_TRUE(set_target(before));
  EXPECT_EQ(active_target(), before);
}

TEST(SimdDispatch, TargetsAboveTheCpuAreRefused) {
  using namespace ducklearn::simd;
  const Target best = best_supported_target();
  const Target before = active_target();
  if (best == Target::AVX512) GTEST_SKIP() << "this CPU runs every target";
  EXPECT_FALSE(set_target(Target::AVX512));
  EXPECT_EQ(active_target(), before);
}

}  // namespace
