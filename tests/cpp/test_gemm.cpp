// Dense products of the public API against a naive double reference: every transpose
// combination, shapes below and above the BLAS hand-off (16 Ki multiply-adds), under every
// SIMD target this CPU runs.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "ducklearn/kernels/gemm.hpp"
#include "test_util.hpp"

namespace {

using namespace dltest;
using ducklearn::Activation;

struct Shape {
  int64_t m, n, k;
};

// m n k products from 1 up to ~77k: the ones >= 16384 go to BLAS when the build has one.
const std::vector<Shape> kGemmShapes = {{1, 1, 1},    {3, 5, 7},     {17, 33, 15}, {7, 1, 257},
                                        {1, 100, 31}, {5, 4, 0},     {0, 5, 3},    {64, 16, 16},
                                        {40, 50, 33}, {33, 17, 100}, {100, 3, 257}};

// Naive C = alpha op(A) op(B) + beta C in double; also the magnitude for an error bound.
void gemm_ref(bool ta, bool tb, const Shape& s, double alpha, const std::vector<float>& A,
              const std::vector<float>& B, double beta, const std::vector<float>& C0,
              std::vector<double>& C, std::vector<double>& mag) {
  C.assign(static_cast<size_t>(s.m * s.n), 0.0);
  mag.assign(C.size(), 0.0);
  for (int64_t i = 0; i < s.m; ++i) {
    for (int64_t j = 0; j < s.n; ++j) {
      double acc = 0.0, am = 0.0;
      for (int64_t p = 0; p < s.k; ++p) {
        const double a = ta ? A[p * s.m + i] : A[i * s.k + p];
        const double b = tb ? B[j * s.k + p] : B[p * s.n + j];
        acc += a * b;
        am += std::fabs(a * b);
      }
      const double c0 = beta == 0.0 ? 0.0 : beta * C0[i * s.n + j];
      C[i * s.n + j] = alpha * acc + c0;
      mag[i * s.n + j] = std::fabs(alpha) * am + std::fabs(c0);
    }
  }
}

class Gemm : public ::testing::TestWithParam<Target> {
 protected:
  void SetUp() override {
    guard_ = std::make_unique<ScopedTarget>(GetParam());
    ASSERT_TRUE(guard_->ok());
  }
  std::unique_ptr<ScopedTarget> guard_;
};

TEST_P(Gemm, AllTransposesMatchNaiveReference) {
  Rng rng(101);
  struct AB {
    float alpha, beta;
  };
  for (const Shape& s : kGemmShapes) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        for (AB ab : {AB{1.0f, 0.0f}, AB{-1.5f, 1.0f}, AB{0.5f, -0.75f}}) {
          const auto A = rng.vec(s.m * s.k, -1.0f, 1.0f), B = rng.vec(s.k * s.n, -1.0f, 1.0f);
          auto C0 = rng.vec(s.m * s.n, -1.0f, 1.0f);
          // beta = 0 means C is output only (BLAS convention): stale NaNs must not leak.
          if (ab.beta == 0.0f) {
            std::fill(C0.begin(), C0.end(), std::numeric_limits<float>::quiet_NaN());
          }
          std::vector<float> C = C0;
          ducklearn::gemm(ta, tb, s.m, s.n, s.k, ab.alpha, A.data(), B.data(), ab.beta, C.data());
          std::vector<double> ref, mag;
          gemm_ref(ta, tb, s, ab.alpha, A, B, ab.beta, C0, ref, mag);
          for (size_t i = 0; i < C.size(); ++i) {
            ASSERT_TRUE(Close(C[i], ref[i], 0.0, 2.0 * (s.k + 2) * FLT_EPSILON * mag[i]))
                << "m=" << s.m << " n=" << s.n << " k=" << s.k << " ta=" << ta << " tb=" << tb
                << " alpha=" << ab.alpha << " beta=" << ab.beta << " at " << i;
          }
        }
      }
    }
  }
}

TEST_P(Gemm, IntegerProductsAreExactOnBothSidesOfTheBlasThreshold) {
  Rng rng(102);
  for (const Shape& s : kGemmShapes) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        const auto A = rng.ints(s.m * s.k, -3, 3), B = rng.ints(s.k * s.n, -3, 3);
        const auto C0 = rng.ints(s.m * s.n, -50, 50);
        std::vector<float> C = C0;
        ducklearn::gemm(ta, tb, s.m, s.n, s.k, 2.0f, A.data(), B.data(), -1.0f, C.data());
        std::vector<double> ref, mag;
        gemm_ref(ta, tb, s, 2.0, A, B, -1.0, C0, ref, mag);
        for (size_t i = 0; i < C.size(); ++i) {
          ASSERT_EQ(C[i], static_cast<float>(ref[i]))
              << "m=" << s.m << " n=" << s.n << " k=" << s.k << " ta=" << ta << " tb=" << tb;
        }
      }
    }
  }
}

struct DenseShape {
  int64_t n, in, out;
};

// n=1 always takes the GEMV kernels; n*in*out >= 16384 with n > 1 takes BLAS if present.
const std::vector<DenseShape> kDenseShapes = {{1, 7, 5},    {1, 300, 100}, {3, 5, 7},
                                              {17, 33, 9},  {64, 16, 16},  {100, 31, 17},
                                              {257, 3, 33}, {2, 1, 1}};

TEST_P(Gemm, GemmBiasActMatchesReferenceForEveryActivation) {
  Rng rng(103);
  for (const DenseShape& s : kDenseShapes) {
    for (int act = 0; act <= 5; ++act) {
      for (bool with_bias : {true, false}) {
        const auto X = rng.vec(s.n * s.in, -1.0f, 1.0f), W = rng.vec(s.out * s.in, -1.0f, 1.0f);
        const auto b = rng.vec(s.out, -1.0f, 1.0f);
        std::vector<float> Z(static_cast<size_t>(s.n * s.out)), Y(Z.size()), Y2(Z.size());
        const float* bp = with_bias ? b.data() : nullptr;
        ducklearn::gemm_bias_act(X.data(), s.n, s.in, W.data(), bp, s.out, Z.data(), Y.data(),
                                 static_cast<Activation>(act), 0.05f);
        ducklearn::gemm_bias_act(X.data(), s.n, s.in, W.data(), bp, s.out, nullptr, Y2.data(),
                                 static_cast<Activation>(act), 0.05f);
        for (int64_t r = 0; r < s.n; ++r) {
          for (int64_t o = 0; o < s.out; ++o) {
            double z = with_bias ? b[o] : 0.0, mag = std::fabs(z);
            for (int64_t i = 0; i < s.in; ++i) {
              z += static_cast<double>(X[r * s.in + i]) * W[o * s.in + i];
              mag += std::fabs(static_cast<double>(X[r * s.in + i]) * W[o * s.in + i]);
            }
            const size_t at = static_cast<size_t>(r * s.out + o);
            ASSERT_TRUE(Close(Z[at], z, 0.0, 2.0 * (s.in + 2) * FLT_EPSILON * mag))
                << "n=" << s.n << " in=" << s.in << " out=" << s.out << " act=" << act;
            // The activation is checked on the float pre-activation it was applied to.
            ASSERT_TRUE(Close(Y[at], act_ref(act, Z[at], 0.05f), 4e-6, 1e-6))
                << "n=" << s.n << " in=" << s.in << " out=" << s.out << " act=" << act;
            ASSERT_EQ(Y2[at], Y[at]) << "Z = nullptr gives the same outputs";
          }
        }
      }
    }
  }
}

TEST_P(Gemm, GemmBiasActIdentityMayWriteZIntoY) {
  Rng rng(104);
  for (const DenseShape& s : kDenseShapes) {
    const auto X = rng.vec(s.n * s.in, -1.0f, 1.0f), W = rng.vec(s.out * s.in, -1.0f, 1.0f);
    const auto b = rng.vec(s.out, -1.0f, 1.0f);
    std::vector<float> Z(static_cast<size_t>(s.n * s.out)), Y(Z.size()), same(Z.size());
    ducklearn::gemm_bias_act(X.data(), s.n, s.in, W.data(), b.data(), s.out, Z.data(), Y.data(),
                             Activation::Identity);
    ducklearn::gemm_bias_act(X.data(), s.n, s.in, W.data(), b.data(), s.out, same.data(),
                             same.data(), Activation::Identity);
    EXPECT_EQ(same, Y);
    EXPECT_EQ(Z, Y);
  }
}

TEST_P(Gemm, GemvBiasActEqualsOneRowOfGemm) {
  Rng rng(105);
  for (int64_t out : {1, 3, 8, 17}) {
    for (int64_t in : kSizes) {
      for (int act = 0; act <= 5; ++act) {
        const auto W = rng.vec(out * in, -1.0f, 1.0f), x = rng.vec(in, -1.0f, 1.0f);
        const auto b = rng.vec(out, -1.0f, 1.0f);
        std::vector<float> z(static_cast<size_t>(out)), y(z.size()), yz(z.size());
        ducklearn::gemv_bias_act(W.data(), x.data(), b.data(), z.data(), y.data(), out, in,
                                 static_cast<Activation>(act), 0.05f);
        ducklearn::gemv_bias_act(W.data(), x.data(), b.data(), nullptr, yz.data(), out, in,
                                 static_cast<Activation>(act), 0.05f);
        for (int64_t o = 0; o < out; ++o) {
          double ref = b[o], mag = std::fabs(b[o]);
          for (int64_t i = 0; i < in; ++i) {
            ref += static_cast<double>(W[o * in + i]) * x[i];
            mag += std::fabs(static_cast<double>(W[o * in + i]) * x[i]);
          }
          ASSERT_TRUE(Close(z[o], ref, 0.0, 2.0 * (in + 2) * FLT_EPSILON * mag));
          ASSERT_TRUE(Close(y[o], act_ref(act, z[o], 0.05f), 4e-6, 1e-6)) << "act=" << act;
          ASSERT_EQ(yz[o], y[o]);
        }
      }
    }
  }
}

TEST_P(Gemm, DotAndAxpyGoThroughTheActiveTable) {
  Rng rng(106);
  for (int64_t n : kSizes) {
    const auto x = rng.ints(n, -9, 9), y0 = rng.ints(n, -9, 9);
    double ref = 0.0;
    for (int64_t i = 0; i < n; ++i) ref += static_cast<double>(x[i]) * y0[i];
    EXPECT_EQ(ducklearn::dot(x.data(), y0.data(), n), static_cast<float>(ref));
    auto y = y0;
    ducklearn::axpy(-2.0f, x.data(), y.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y[i], y0[i] - 2.0f * x[i]);
  }
}

INSTANTIATE_TEST_SUITE_P(AllTargets, Gemm, ::testing::ValuesIn(supported_targets()),
                         target_param_name);

}  // namespace
