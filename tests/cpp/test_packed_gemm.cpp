// The packed-weight inference GEMM (KernelTable::pack_weights / gemm_packed: the AVX2 and
// AVX-512 tables) against a double-precision reference, at shapes that are not multiples of
// its blocks (rows 6 or 14 per tile, 32 columns per panel, 8 or 16 k values per pack step, 4
// columns for the narrow dot-product path), and the inference paths built on it:
// Sequential::forward, Learner and Predictor. Every table this CPU runs that has the kernel
// is tested; none runs where the CPU (or the build) has neither.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "ducklearn/kernels/gemm.hpp"
#include "ducklearn/nn/sequential.hpp"
#include "ducklearn/stream/learner.hpp"
#include "ducklearn/stream/predictor.hpp"
#include "simd/packed_gemm.hpp"
#include "test_util.hpp"

namespace {

using namespace dltest;
using ducklearn::Activation;
using ducklearn::AlignedVector;
using ducklearn::Learner;
using ducklearn::LossKind;
using ducklearn::LossSpec;
using ducklearn::OptimizerConfig;
using ducklearn::Predictor;
using ducklearn::Sequential;
using ducklearn::Workspace;
namespace simd = ducklearn::simd;

/** The targets this CPU runs whose table has the packed kernel. */
std::vector<Target> packed_targets() {
  std::vector<Target> out;
  for (Target t : supported_targets()) {
    if (table_for(t).gemm_packed != nullptr) out.push_back(t);
  }
  return out;
}

class PackedGemm : public ::testing::TestWithParam<Target> {
 protected:
  void SetUp() override {
    t = table_for(GetParam());
    ASSERT_NE(t.gemm_packed, nullptr);
    ASSERT_NE(t.pack_weights, nullptr);
  }
  KernelTable t{};
};
using PackedInference = PackedGemm;

const std::vector<int64_t> kRows = {1, 7, 8, 9, 63, 256, 257};
// The brief's widths plus the edges of the narrow path (n < 4) and of a half panel (16).
const std::vector<int64_t> kCols = {1, 2, 3, 4, 16, 17, 31, 32, 33, 128, 129};
const std::vector<int64_t> kDepths = {1, 3, 64, 65, 128};
constexpr float kAlpha = 0.05f;
const float kNaN = std::numeric_limits<float>::quiet_NaN();

/** Packed copy of W (n × k) with 16 guard floats past the end that must stay NaN. */
AlignedVector<float> packed(const KernelTable& t, const std::vector<float>& W, int64_t n,
                            int64_t k) {
  const int64_t size = simd::packed_floats(n, k);
  AlignedVector<float> Wp(static_cast<size_t>(size + 16), kNaN);
  t.pack_weights(W.data(), n, k, Wp.data());
  for (int64_t i = size; i < size + 16; ++i) {
    EXPECT_TRUE(std::isnan(Wp[static_cast<size_t>(i)])) << "pack wrote past its size";
  }
  return Wp;
}

TEST(PackedGemmTables, TheAvx2AndAvx512TablesHaveIt) {
  // Tables this CPU runs only: each make_table() is itself compiled for its ISA.
  for (Target target : supported_targets()) {
    const KernelTable t = table_for(target);
    const bool want = target != Target::Generic;
    EXPECT_EQ(t.gemm_packed != nullptr, want) << ducklearn::simd::target_name(target);
    EXPECT_EQ(t.pack_weights != nullptr, want) << ducklearn::simd::target_name(target);
  }
}

TEST_P(PackedGemm, PackWritesTheDocumentedLayout) {
  Rng rng(1);
  for (int64_t n : kCols) {
    for (int64_t k : kDepths) {
      const auto W = rng.vec(n * k, -1.0f, 1.0f);
      const auto Wp = packed(t, W, n, k);
      if (n < simd::kPackNarrow) {
        for (int64_t i = 0; i < n * k; ++i) ASSERT_EQ(Wp[i], W[i]) << "narrow: W as is";
        continue;
      }
      int64_t at = 0;
      for (int64_t j0 = 0; j0 < n; j0 += simd::kPackPanel) {
        const int64_t w = std::min(simd::kPackPanel, n - j0);
        const int64_t pw = w > simd::kPackPanel / 2 ? simd::kPackPanel : simd::kPackPanel / 2;
        for (int64_t p = 0; p < k; ++p) {
          for (int64_t j = 0; j < pw; ++j) {
            const float want = j < w ? W[(j0 + j) * k + p] : 0.0f;
            ASSERT_EQ(Wp[at + p * pw + j], want)
                << "n=" << n << " k=" << k << " panel " << j0 << " p=" << p << " j=" << j;
          }
        }
        at += pw * k;
      }
      ASSERT_EQ(at, simd::packed_floats(n, k));
    }
  }
}

TEST_P(PackedGemm, MatchesDoubleReferenceForEveryActivation) {
  Rng rng(2);
  for (int64_t k : kDepths) {
    for (int64_t n : kCols) {
      const auto W = rng.vec(n * k, -1.0f, 1.0f), b = rng.vec(n, -1.0f, 1.0f);
      const auto Wp = packed(t, W, n, k);
      for (int64_t m : kRows) {
        const auto X = rng.vec(m * k, -2.0f, 2.0f);
        for (bool with_bias : {true, false}) {
          const float* bp = with_bias ? b.data() : nullptr;
          // Pre-activations first (identity), checked against the double reference.
          std::vector<float> Z(static_cast<size_t>(m * n + 16), kNaN);
          t.gemm_packed(X.data(), m, k, Wp.data(), bp, n, Z.data(), 0, kAlpha);
          for (int64_t i = 0; i < m; ++i) {
            for (int64_t j = 0; j < n; ++j) {
              double ref = with_bias ? b[j] : 0.0, mag = std::fabs(ref);
              for (int64_t p = 0; p < k; ++p) {
                const double xw = static_cast<double>(X[i * k + p]) * W[j * k + p];
                ref += xw;
                mag += std::fabs(xw);
              }
              ASSERT_TRUE(Close(Z[i * n + j], ref, 0.0, 2.0 * (k + 2) * FLT_EPSILON * mag))
                  << "m=" << m << " n=" << n << " k=" << k << " bias=" << with_bias << " at (" << i
                  << ", " << j << ")";
            }
          }
          for (int64_t i = m * n; i < m * n + 16; ++i) {
            ASSERT_TRUE(std::isnan(Z[i])) << "wrote past m × n (m=" << m << " n=" << n << ")";
          }
          // Then every activation on the same pre-activations.
          for (int act = 1; act <= 5; ++act) {
            std::vector<float> Y(static_cast<size_t>(m * n + 16), kNaN);
            t.gemm_packed(X.data(), m, k, Wp.data(), bp, n, Y.data(), act, kAlpha);
            for (int64_t i = 0; i < m * n; ++i) {
              ASSERT_TRUE(Close(Y[i], act_ref(act, Z[i], kAlpha), 4e-6, 1e-6))
                  << "act=" << act << " m=" << m << " n=" << n << " k=" << k << " at " << i;
              // The cheap activations run inline in the tile epilogue: exactly bias_act's.
              if (act == 1) {
                ASSERT_EQ(Y[i], Z[i] > 0.0f ? Z[i] : 0.0f);
              } else if (act == 2) {
                ASSERT_EQ(Y[i], Z[i] > 0.0f ? Z[i] : kAlpha * Z[i]);
              }
            }
            for (int64_t i = m * n; i < m * n + 16; ++i) ASSERT_TRUE(std::isnan(Y[i]));
          }
        }
      }
    }
  }
}

TEST_P(PackedGemm, IntegerProductsAreExact) {
  Rng rng(3);
  for (int64_t k : kDepths) {
    for (int64_t n : kCols) {
      const auto W = rng.ints(n * k, -3, 3), b = rng.ints(n, -20, 20);
      const auto Wp = packed(t, W, n, k);
      for (int64_t m : {int64_t{1}, int64_t{9}, int64_t{257}}) {
        const auto X = rng.ints(m * k, -3, 3);
        std::vector<float> Y(static_cast<size_t>(m * n));
        t.gemm_packed(X.data(), m, k, Wp.data(), b.data(), n, Y.data(), 0, 0.0f);
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t j = 0; j < n; ++j) {
            double ref = b[j];
            for (int64_t p = 0; p < k; ++p) ref += static_cast<double>(X[i * k + p]) * W[j * k + p];
            ASSERT_EQ(Y[i * n + j], static_cast<float>(ref))
                << "m=" << m << " n=" << n << " k=" << k;
          }
        }
      }
    }
  }
}

TEST_P(PackedGemm, ARowsResultDoesNotDependOnItsBatch) {
  Rng rng(4);
  for (int64_t n : {int64_t{1}, int64_t{3}, int64_t{33}, int64_t{129}}) {
    const int64_t k = 65, m = 257;
    const auto W = rng.vec(n * k, -1.0f, 1.0f), b = rng.vec(n, -1.0f, 1.0f);
    const auto X = rng.vec(m * k, -2.0f, 2.0f);
    const auto Wp = packed(t, W, n, k);
    for (int act = 0; act <= 5; ++act) {
      std::vector<float> all(static_cast<size_t>(m * n));
      t.gemm_packed(X.data(), m, k, Wp.data(), b.data(), n, all.data(), act, kAlpha);
      // Every sub-batch [start, start + rows) lands in different tiles (full or remainder).
      for (int64_t rows : {int64_t{1}, int64_t{2}, int64_t{5}, int64_t{6}, int64_t{7},
                           int64_t{13}, int64_t{14}, int64_t{15}, int64_t{100}}) {
        for (int64_t start : {int64_t{0}, int64_t{3}, int64_t{150}}) {
          std::vector<float> part(static_cast<size_t>(rows * n));
          t.gemm_packed(X.data() + start * k, rows, k, Wp.data(), b.data(), n, part.data(), act,
                        kAlpha);
          ASSERT_EQ(std::memcmp(part.data(), all.data() + start * n, part.size() * sizeof(float)),
                    0)
              << "n=" << n << " act=" << act << " rows=" << rows << " start=" << start;
        }
      }
    }
  }
}

TEST_P(PackedGemm, EveryTableComputesTheSameOutputs) {
  // The wide path is the same FMA chain per output in every table, and the narrow one the
  // same 16-lane sums in the same reduction tree: the tables agree to the last bit (up to
  // the sign of a zero), so a snapshot predicts the same on any x86 machine.
  Rng rng(6);
  for (Target other : packed_targets()) {
    const KernelTable o = table_for(other);
    for (int64_t n : {int64_t{1}, int64_t{3}, int64_t{16}, int64_t{17}, int64_t{33}, int64_t{129}}) {
      for (int64_t k : {int64_t{5}, int64_t{64}, int64_t{65}}) {
        const int64_t m = 37;
        const auto W = rng.vec(n * k, -1.0f, 1.0f), b = rng.vec(n, -1.0f, 1.0f);
        const auto X = rng.vec(m * k, -2.0f, 2.0f);
        const auto Wp = packed(t, W, n, k), Wo = packed(o, W, n, k);
        for (size_t i = 0; i < static_cast<size_t>(simd::packed_floats(n, k)); ++i) {
          ASSERT_EQ(Wp[i], Wo[i]) << "the packed layout is shared";
        }
        for (int act : {0, 1, 2}) {
          std::vector<float> y(static_cast<size_t>(m * n)), z(y.size());
          t.gemm_packed(X.data(), m, k, Wp.data(), b.data(), n, y.data(), act, kAlpha);
          o.gemm_packed(X.data(), m, k, Wo.data(), b.data(), n, z.data(), act, kAlpha);
          for (size_t i = 0; i < y.size(); ++i) {
            ASSERT_EQ(y[i], z[i]) << simd::target_name(other) << " n=" << n << " k=" << k
                                  << " act=" << act << " at " << i;
          }
        }
      }
    }
  }
}

TEST_P(PackedGemm, CloseToTheBlasPath) {
  ScopedTarget packed_target(GetParam());
  ASSERT_TRUE(packed_target.ok());
  // The shapes of the 64-128-128-1 benchmark MLP; inputs of unit scale as after standardizing.
  Rng rng(5);
  struct Shape {
    int64_t m, k, n;
  };
  double worst = 0.0;
  for (const Shape s :
       {Shape{256, 64, 128}, Shape{256, 128, 128}, Shape{256, 128, 1}, Shape{100, 33, 17}}) {
    const auto X = rng.vec(s.m * s.k, -2.0f, 2.0f);
    const auto W = rng.vec(s.n * s.k, -0.3f, 0.3f), b = rng.vec(s.n, -0.1f, 0.1f);
    const auto Wp = packed(t, W, s.n, s.k);
    std::vector<float> Y(static_cast<size_t>(s.m * s.n)), ref(Y.size());
    t.gemm_packed(X.data(), s.m, s.k, Wp.data(), b.data(), s.n, Y.data(), 1, 0.0f);
    ducklearn::gemm_bias_act(X.data(), s.m, s.k, W.data(), b.data(), s.n, nullptr, ref.data(),
                             Activation::ReLU);
    for (size_t i = 0; i < Y.size(); ++i) {
      const double err = std::fabs(static_cast<double>(Y[i]) - ref[i]);
      worst = std::max(worst, err / (1.0 + std::fabs(ref[i])));
      ASSERT_TRUE(Close(Y[i], ref[i], 1e-5, 1e-5)) << "m=" << s.m << " k=" << s.k << " n=" << s.n;
    }
  }
  RecordProperty("max_relative_difference_vs_blas", std::to_string(worst));
}

// ---- the inference paths ----

Learner mlp(int64_t d, int64_t hidden, bool standardize) {
  Sequential m(d, {hidden, hidden, 1}, {Activation::ReLU, Activation::Tanh, Activation::Identity});
  m.init(7);
  LossSpec loss;
  loss.kind = LossKind::Logistic;
  OptimizerConfig opt;
  opt.schedule.lr = 0.01f;
  return Learner(std::move(m), loss, opt, standardize);
}

void train(Learner& L, int64_t d, int64_t n, uint64_t seed) {
  Rng rng(seed);
  for (int64_t i = 0; i < n; ++i) {
    std::vector<float> x = rng.vec(d, -3.0f, 3.0f);
    x[0] *= 50.0f;  // something for the scaler to do
    L.learn_one(x.data(), x[1] + x[2] > 0.0f ? 1.0f : 0.0f);
  }
}

TEST_P(PackedInference, PredictorEqualsTheLearnerWithinTolerance) {
  ScopedTarget packed_target(GetParam());
  ASSERT_TRUE(packed_target.ok());
  const int64_t d = 64;
  for (bool standardize : {false, true}) {
    Learner L = mlp(d, 128, standardize);
    train(L, d, 400, 11);
    const auto snap = L.snapshot();
    Rng rng(12);
    const auto X = rng.vec(1000 * d, -3.0f, 3.0f);
    Workspace ws_l, ws_p;
    for (int64_t n : {int64_t{1}, int64_t{2}, int64_t{9}, int64_t{10}, int64_t{33}, int64_t{256},
                      int64_t{257}, int64_t{1000}}) {
      std::vector<float> want(static_cast<size_t>(n)), got(want.size());
      L.predict(X.data(), n, want.data(), ws_l);
      snap->predict(X.data(), n, got.data(), ws_p);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_TRUE(Close(got[i], want[i], 1e-5, 1e-6)) << "n=" << n << " row " << i;
      }
      if (simd::pack_for_batch(L.model(), L.model().params(), n) != nullptr) {
        // Both packed: the same kernel on the same weights.
        ASSERT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0) << n;
      }
    }
  }
}

TEST_P(PackedInference, SnapshotRowsDoNotDependOnTheBatch) {
  ScopedTarget packed_target(GetParam());
  ASSERT_TRUE(packed_target.ok());
  const int64_t d = 20, n = 600;
  Learner L = mlp(d, 40, true);
  train(L, d, 300, 13);
  const auto snap = L.snapshot();
  Rng rng(14);
  const auto X = rng.vec(n * d, -3.0f, 3.0f);
  Workspace ws;
  std::vector<float> all(static_cast<size_t>(n));
  snap->predict(X.data(), n, all.data(), ws);
  for (int64_t rows : {int64_t{1}, int64_t{2}, int64_t{9}, int64_t{10}, int64_t{255}, int64_t{256},
                       int64_t{300}}) {
    for (int64_t start : {int64_t{0}, int64_t{7}, int64_t{299}}) {
      std::vector<float> part(static_cast<size_t>(rows));
      snap->predict(X.data() + start * d, rows, part.data(), ws);
      ASSERT_EQ(std::memcmp(part.data(), all.data() + start, part.size() * sizeof(float)), 0)
          << "rows=" << rows << " start=" << start;
    }
  }
  // A copy shares the packed weights and predicts the same.
  const Predictor copy(*snap);
  std::vector<float> again(static_cast<size_t>(n));
  copy.predict(X.data(), n, again.data(), ws);
  EXPECT_EQ(std::memcmp(again.data(), all.data(), all.size() * sizeof(float)), 0);
}

TEST_P(PackedInference, ForwardMatchesThePathWithoutTheKernel) {
  for (int64_t hidden : {int64_t{5}, int64_t{48}, int64_t{130}}) {
    Sequential m(37, {hidden, hidden, 3},
                 {Activation::LeakyReLU, Activation::GELU, Activation::Sigmoid});
    m.init(21);
    Rng rng(22);
    const int64_t n = 700;  // several blocks of 256 rows
    const auto X = rng.vec(n * 37, -2.0f, 2.0f);
    std::vector<float> packed_out(static_cast<size_t>(n * 3)), plain(packed_out.size());
    Workspace ws;
    {
      ScopedTarget packed_target(GetParam());
      ASSERT_TRUE(packed_target.ok());
      ASSERT_NE(simd::pack_for_batch(m, m.params(), n), nullptr);
      m.forward(X.data(), n, packed_out.data(), ws);
    }
    {
      ScopedTarget generic(Target::Generic);  // no packed GEMM: BLAS / gemv
      ASSERT_TRUE(generic.ok());
      ASSERT_EQ(simd::pack_for_batch(m, m.params(), n), nullptr);
      m.forward(X.data(), n, plain.data(), ws);
    }
    for (size_t i = 0; i < plain.size(); ++i) {
      ASSERT_TRUE(Close(packed_out[i], plain[i], 1e-5, 1e-6)) << "hidden=" << hidden << " at " << i;
    }
  }
}

TEST_P(PackedInference, PerCallPackingFollowsTheThresholds) {
  ScopedTarget packed_target(GetParam());
  ASSERT_TRUE(packed_target.ok());
  Sequential big(64, {128, 128, 1}, {Activation::ReLU, Activation::ReLU, Activation::Identity});
  Sequential small(8, {16, 1}, {Activation::ReLU, Activation::Identity});
  EXPECT_EQ(simd::pack_for_batch(big, big.params(), 1), nullptr);
  EXPECT_EQ(simd::pack_for_batch(big, big.params(), simd::kPackPerCallMinRows - 1), nullptr);
  EXPECT_NE(simd::pack_for_batch(big, big.params(), simd::kPackPerCallMinRows), nullptr);
  EXPECT_EQ(simd::pack_for_batch(small, small.params(), 1), nullptr);
  EXPECT_NE(simd::pack_for_batch(small, small.params(), 2), nullptr);
  // Mid-sized layers where OpenBLAS's small-m kernels win below kPackPerCallMinRows rows.
  Sequential mid(96, {96, 96, 1}, {Activation::ReLU, Activation::ReLU, Activation::Identity});
  EXPECT_EQ(simd::pack_for_batch(mid, mid.params(), 2), nullptr);
  // Large weights: BLAS repacks them on every call too.
  Sequential large(64, {512, 512, 1}, {Activation::ReLU, Activation::ReLU, Activation::Identity});
  EXPECT_NE(simd::pack_for_batch(large, large.params(), 2), nullptr);
  // Beyond the caches: the repack would cost more than it saves.
  Sequential huge(2048, {1024, 1}, {Activation::ReLU, Activation::Identity});
  EXPECT_EQ(simd::pack_for_batch(huge, huge.params(), 256), nullptr);
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(PackedGemm);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(PackedInference);
INSTANTIATE_TEST_SUITE_P(Tables, PackedGemm, ::testing::ValuesIn(packed_targets()),
                         target_param_name);
INSTANTIATE_TEST_SUITE_P(Tables, PackedInference, ::testing::ValuesIn(packed_targets()),
                         target_param_name);

}  // namespace
