// Every loss against an independent long-double reference: the value, and the gradient
// against central differences of that reference (inputs kept away from the kinks).
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "ducklearn/kernels/activation.hpp"
#include "ducklearn/kernels/loss.hpp"
#include "test_util.hpp"

namespace {

using namespace dltest;
using ducklearn::LossKind;
using ducklearn::LossSpec;
using LD = long double;

struct Case {
  LossSpec spec;
  int64_t k;
  const char* name;
};

LossSpec spec_of(LossKind kind, float delta = 1.0f, float tau = 0.5f) {
  LossSpec s;
  s.kind = kind;
  s.delta = delta;
  s.tau = tau;
  return s;
}

const std::vector<Case> kCases = {
    {spec_of(LossKind::Logistic), 1, "logistic"},
    {spec_of(LossKind::SoftmaxCE), 2, "softmax2"},
    {spec_of(LossKind::SoftmaxCE), 3, "softmax3"},
    {spec_of(LossKind::SoftmaxCE), 7, "softmax7"},
    {spec_of(LossKind::Squared), 1, "squared"},
    {spec_of(LossKind::Squared), 3, "squared_k3"},
    {spec_of(LossKind::Huber, 0.7f), 1, "huber"},
    {spec_of(LossKind::Huber, 1.5f), 3, "huber_k3"},
    {spec_of(LossKind::Pinball, 1.0f, 0.1f), 1, "pinball_0.1"},
    {spec_of(LossKind::Pinball, 1.0f, 0.9f), 3, "pinball_0.9_k3"},
};

// Predictions and targets for one case; regression residuals avoid the kinks by > 1e-2.
void make_data(const Case& c, int64_t n, Rng& rng, std::vector<float>& P, std::vector<float>& y) {
  P = rng.vec(n * c.k, -3.0f, 3.0f);
  y.assign(static_cast<size_t>(n), 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    switch (c.spec.kind) {
      case LossKind::Logistic: y[i] = static_cast<float>(rng.integer(0, 1)); break;
      case LossKind::SoftmaxCE: y[i] = static_cast<float>(rng.integer(0, c.k - 1)); break;
      default: {
        y[i] = rng.uniform(-3.0f, 3.0f);
        for (int64_t j = 0; j < c.k; ++j) {
          float& p = P[i * c.k + j];
          for (;;) {
            const float r = std::fabs(p - y[i]);
            const bool near_kink = c.spec.kind == LossKind::Huber
                                       ? std::fabs(r - c.spec.delta) < 1e-2f
                                   : c.spec.kind == LossKind::Pinball ? r < 1e-2f
                                                                      : false;
            if (!near_kink) break;
            p = rng.uniform(-3.0f, 3.0f);
          }
        }
      }
    }
  }
}

TEST(Loss, ValueAndGradientMatchFiniteDifferencesOfReference) {
  Rng rng(201);
  for (const Case& c : kCases) {
    for (int64_t n : {1, 5, 17}) {
      std::vector<float> P, y;
      make_data(c, n, rng, P, y);
      const float scale = 1.0f / static_cast<float>(n);
      std::vector<float> grad(P.size(), std::numeric_limits<float>::quiet_NaN());
      const double loss =
          ducklearn::loss_and_grad(c.spec, P.data(), y.data(), n, c.k, grad.data(), scale);
      std::vector<LD> Pd(P.begin(), P.end());
      const LD ref = loss_ref(c.spec, Pd, y, n, c.k);
      // Softmax subtracts the max logit in float, so the value is float-accurate, not exact.
      EXPECT_TRUE(Close(loss, static_cast<double>(ref), 1e-7, 1e-12)) << c.name << " n=" << n;
      EXPECT_EQ(ducklearn::loss_and_grad(c.spec, P.data(), y.data(), n, c.k, nullptr, scale), loss)
          << c.name << ": the gradient is optional";
      const LD h = 1e-4L;
      for (size_t i = 0; i < P.size(); ++i) {
        std::vector<LD> up = Pd, down = Pd;
        up[i] += h;
        down[i] -= h;
        const LD fd =
            (loss_ref(c.spec, up, y, n, c.k) - loss_ref(c.spec, down, y, n, c.k)) / (2 * h);
        ASSERT_TRUE(Close(grad[i], static_cast<double>(scale * fd), 1e-5, 1e-7))
            << c.name << " n=" << n << " element " << i;
      }
    }
  }
}

TEST(Loss, LogisticIsStableForHugeLogits) {
  const LossSpec s = spec_of(LossKind::Logistic);
  for (float z : {100.0f, -100.0f, 1e4f, -1e4f, 1e30f, -1e30f}) {
    for (float y : {0.0f, 1.0f}) {
      float g = 0.0f;
      const double loss = ducklearn::loss_and_grad(s, &z, &y, 1, 1, &g);
      // softplus(z) - y z: ~0 when the sign agrees with the label, ~|z| when it does not.
      const double want = (z > 0.0f ? z : 0.0) - y * static_cast<double>(z);
      ASSERT_TRUE(std::isfinite(loss)) << "z=" << z << " y=" << y;
      EXPECT_TRUE(Close(loss, want, 1e-12, 1e-30)) << "z=" << z << " y=" << y;
      EXPECT_TRUE(Close(g, (z > 0.0f ? 1.0 : 0.0) - y, 0.0, 1e-30)) << "z=" << z << " y=" << y;
    }
  }
}

TEST(Loss, SoftmaxIsStableForHugeLogits) {
  const LossSpec s = spec_of(LossKind::SoftmaxCE);
  const std::vector<float> P = {1e4f, -1e4f, 0.0f, 1e4f - 1.0f};
  std::vector<float> g(4);
  const float y = 3.0f;
  const double loss = ducklearn::loss_and_grad(s, P.data(), &y, 1, 4, g.data());
  EXPECT_TRUE(Close(loss, std::log1p(std::exp(-1.0)) + 1.0, 1e-9, 0.0));
  double sum = 0.0;
  for (float v : g) {
    ASSERT_TRUE(std::isfinite(v));
    sum += v;
  }
  EXPECT_NEAR(sum, 0.0, 1e-6) << "softmax gradients sum to zero over the classes";
}

TEST(Loss, SoftmaxRejectsClassIndicesOutsideTheOutputs) {
  const LossSpec s = spec_of(LossKind::SoftmaxCE);
  const std::vector<float> P = {0.1f, 0.2f, 0.3f};
  for (float bad : {3.0f, -1.0f, 1.5f, std::numeric_limits<float>::quiet_NaN()}) {
    EXPECT_THROW(ducklearn::loss_and_grad(s, P.data(), &bad, 1, 3, nullptr), std::invalid_argument)
        << "label " << bad;
  }
}

TEST(Loss, PinballSubgradientIsZeroAtTheKink) {
  const LossSpec s = spec_of(LossKind::Pinball, 1.0f, 0.3f);
  const float p = 2.0f, y = 2.0f;
  float g = 1.0f;
  EXPECT_EQ(ducklearn::loss_and_grad(s, &p, &y, 1, 1, &g), 0.0);
  EXPECT_EQ(g, 0.0f);
}

TEST(Loss, HuberIsLinearBeyondDelta) {
  const LossSpec s = spec_of(LossKind::Huber, 2.0f);
  const float p = 10.0f, y = 0.0f;
  float g = 0.0f;
  EXPECT_DOUBLE_EQ(ducklearn::loss_and_grad(s, &p, &y, 1, 1, &g), 2.0 * (10.0 - 1.0));
  EXPECT_EQ(g, 2.0f);
}

TEST(Loss, ValidateRejectsBadParameters) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_NO_THROW(ducklearn::validate(LossSpec{}));
  for (float delta : {0.0f, -1.0f, nan, std::numeric_limits<float>::infinity()}) {
    EXPECT_THROW(ducklearn::validate(spec_of(LossKind::Huber, delta)), std::invalid_argument);
  }
  for (float tau : {0.0f, 1.0f, -0.5f, nan}) {
    EXPECT_THROW(ducklearn::validate(spec_of(LossKind::Pinball, 1.0f, tau)), std::invalid_argument);
  }
}

TEST(Softmax, RowsAreNormalizedAndMayAlias) {
  Rng rng(202);
  const int64_t rows = 5, cols = 7;
  auto z = rng.vec(rows * cols, -30.0f, 30.0f);
  z[3] = 100.0f;  // exp(100) overflows float: the max must be subtracted first
  std::vector<float> p(z.size());
  ducklearn::softmax_rows(z.data(), p.data(), rows, cols);
  for (int64_t r = 0; r < rows; ++r) {
    LD sum = 0.0L, sum_p = 0.0L;
    for (int64_t j = 0; j < cols; ++j) sum += std::exp(static_cast<LD>(z[r * cols + j]));
    for (int64_t j = 0; j < cols; ++j) {
      const LD ref = std::exp(static_cast<LD>(z[r * cols + j])) / sum;
      ASSERT_TRUE(Close(p[r * cols + j], static_cast<double>(ref), 1e-5, 1e-12));
      sum_p += p[r * cols + j];
    }
    EXPECT_NEAR(static_cast<double>(sum_p), 1.0, 1e-6);
  }
  auto inplace = z;
  ducklearn::softmax_rows(inplace.data(), inplace.data(), rows, cols);
  EXPECT_EQ(inplace, p);
}

}  // namespace
