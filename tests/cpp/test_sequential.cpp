// Sequential over one flat buffer: layout, seeded init, forward against a long-double
// reference network, and backward against central differences of that reference, for every
// activation and on both sides of the BLAS hand-off.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "ducklearn/nn/sequential.hpp"
#include "test_util.hpp"

namespace {

using namespace dltest;
using ducklearn::Activation;
using ducklearn::Init;
using ducklearn::LossKind;
using ducklearn::LossSpec;
using ducklearn::Sequential;
using ducklearn::Workspace;
using LD = long double;

/** Outputs of the network described by `model` with parameters theta, in long double. */
std::vector<LD> forward_ref(const Sequential& model, const std::vector<LD>& theta,
                            const std::vector<float>& X, int64_t n) {
  std::vector<LD> cur(X.begin(), X.end());
  const LD alpha = model.leaky_alpha();
  for (const auto& L : model.layers()) {
    std::vector<LD> next(static_cast<size_t>(n * L.out));
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t o = 0; o < L.out; ++o) {
        LD z = theta[L.b_offset + o];
        for (int64_t i = 0; i < L.in; ++i) {
          z += theta[L.w_offset + o * L.in + i] * cur[r * L.in + i];
        }
        next[r * L.out + o] = act_value<LD>(static_cast<int>(L.act), z, alpha);
      }
    }
    cur.swap(next);
  }
  return cur;
}

std::vector<float> random_inputs(int64_t n, int64_t d, uint64_t seed) {
  Rng rng(seed);
  return rng.vec(n * d, -1.5f, 1.5f);
}

std::vector<float> random_targets(const LossSpec& loss, int64_t n, int64_t k, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> y(static_cast<size_t>(n));
  for (auto& v : y) {
    v = loss.kind == LossKind::SoftmaxCE ? static_cast<float>(rng.integer(0, k - 1))
                                         : rng.uniform(-1.0f, 1.0f);
  }
  return y;
}

const char* kActNames[] = {"identity", "relu", "leaky_relu", "tanh", "sigmoid", "gelu"};

struct GradCase {
  int64_t n_inputs;
  std::vector<int64_t> widths;
  int64_t rows;
  LossKind loss;
};

// n = 1 runs the GEMV/GER path; n = 80 with 16-wide layers crosses the BLAS threshold in
// forward and backward (80 * 16 * 16 multiply-adds >= 16384).
const std::vector<GradCase> kGradCases = {
    {5, {7, 6, 1}, 1, LossKind::Squared},
    {5, {7, 6, 3}, 4, LossKind::SoftmaxCE},
    {4, {9, 2}, 3, LossKind::Huber},
    {16, {16, 16, 3}, 80, LossKind::SoftmaxCE},
};

TEST(Sequential, GradientsMatchCentralDifferencesForEveryActivation) {
  for (int act = 0; act <= 5; ++act) {
    for (size_t ci = 0; ci < kGradCases.size(); ++ci) {
      const GradCase& gc = kGradCases[ci];
      std::vector<Activation> acts(gc.widths.size(), static_cast<Activation>(act));
      acts.back() = Activation::Identity;  // losses take raw outputs
      Sequential model(gc.n_inputs, gc.widths, acts, 0.1f);
      model.init(1000 + act * 10 + ci);
      Rng rng(300 + ci);
      // Nonzero biases so that every parameter block is exercised away from its init.
      for (const auto& L : model.layers()) {
        for (int64_t o = 0; o < L.out; ++o) {
          model.params()[L.b_offset + o] = rng.uniform(-0.3f, 0.3f);
        }
      }
      LossSpec loss;
      loss.kind = gc.loss;
      loss.delta = 0.5f;
      const int64_t k = model.n_outputs();
      const auto X = random_inputs(gc.rows, gc.n_inputs, 400 + ci);
      const auto y = random_targets(loss, gc.rows, k, 500 + ci);
      const float scale = 1.0f / static_cast<float>(gc.rows);

      Workspace ws;
      std::vector<float> out(static_cast<size_t>(gc.rows * k));
      const double total =
          model.forward_backward(X.data(), y.data(), gc.rows, loss, scale, out.data(), ws);
      const std::vector<float> grads(model.grads(), model.grads() + model.n_params());

      std::vector<LD> theta(model.params(), model.params() + model.n_params());
      const auto ref_out = forward_ref(model, theta, X, gc.rows);
      for (size_t i = 0; i < out.size(); ++i) {
        ASSERT_TRUE(Close(out[i], static_cast<double>(ref_out[i]), 1e-5, 1e-5))
            << kActNames[act] << " case " << ci;
      }
      ASSERT_TRUE(
          Close(total, static_cast<double>(loss_ref(loss, ref_out, y, gc.rows, k)), 1e-5, 1e-6))
          << kActNames[act] << " case " << ci;

      // A few hundred parameters (all of them for the small models).
      std::vector<int64_t> idx(static_cast<size_t>(model.n_params()));
      std::iota(idx.begin(), idx.end(), 0);
      std::shuffle(idx.begin(), idx.end(), rng.gen());
      if (idx.size() > 300) idx.resize(300);
      // h is tiny so that ReLU kinks are essentially never straddled; long double keeps the
      // difference quotient exact to ~1e-11.
      const LD h = 1e-7L;
      std::vector<LD> fd(idx.size());
      LD fd_max = 0.0L;
      for (size_t t = 0; t < idx.size(); ++t) {
        std::vector<LD> up = theta, down = theta;
        up[idx[t]] += h;
        down[idx[t]] -= h;
        const LD lu = loss_ref(loss, forward_ref(model, up, X, gc.rows), y, gc.rows, k);
        const LD ld = loss_ref(loss, forward_ref(model, down, X, gc.rows), y, gc.rows, k);
        fd[t] = scale * (lu - ld) / (2 * h);
        fd_max = std::max(fd_max, std::fabs(fd[t]));
      }
      for (size_t t = 0; t < idx.size(); ++t) {
        ASSERT_TRUE(Close(grads[idx[t]], static_cast<double>(fd[t]), 2e-3,
                          1e-4 * static_cast<double>(fd_max)))
            << kActNames[act] << " case " << ci << " parameter " << idx[t];
      }
    }
  }
}

TEST(Sequential, GradientsAreOverwrittenNotAccumulated) {
  Sequential model(3, {4, 2}, {Activation::Tanh, Activation::Identity});
  model.init(7);
  const auto X = random_inputs(5, 3, 8);
  const std::vector<float> y = {0.0f, 1.0f, 1.0f, 0.0f, 1.0f};
  LossSpec loss;
  loss.kind = LossKind::SoftmaxCE;
  Workspace ws;
  for (int64_t n : {1, 5}) {
    model.forward_backward(X.data(), y.data(), n, loss, 1.0f, nullptr, ws);
    const std::vector<float> first(model.grads(), model.grads() + model.n_params());
    model.forward_backward(X.data(), y.data(), n, loss, 1.0f, nullptr, ws);
    EXPECT_EQ(std::vector<float>(model.grads(), model.grads() + model.n_params()), first);
    model.forward_backward(X.data(), y.data(), n, loss, 0.5f, nullptr, ws);
    for (int64_t i = 0; i < model.n_params(); ++i) {
      ASSERT_FLOAT_EQ(model.grads()[i], 0.5f * first[i]);
    }
  }
}

TEST(Sequential, CopiesCarryParametersButNotGradientScratch) {
  Sequential model(3, {4, 2}, {Activation::Tanh, Activation::Identity});
  model.init(7);
  const auto X = random_inputs(5, 3, 9);
  const std::vector<float> y = {0.0f, 1.0f, 1.0f, 0.0f, 1.0f};
  LossSpec loss;
  loss.kind = LossKind::SoftmaxCE;
  Workspace ws;
  model.forward_backward(X.data(), y.data(), 5, loss, 1.0f, nullptr, ws);
  const std::vector<float> g(model.grads(), model.grads() + model.n_params());
  Sequential copy(model);
  EXPECT_EQ(copy.grads(), nullptr);  // a snapshot or kept-back copy holds no scratch
  EXPECT_EQ(std::vector<float>(copy.params(), copy.params() + copy.n_params()),
            std::vector<float>(model.params(), model.params() + model.n_params()));
  Sequential assigned(2, {1}, {Activation::Identity});
  assigned = model;
  EXPECT_EQ(assigned.grads(), nullptr);
  EXPECT_EQ(assigned.n_params(), model.n_params());
  // The first training pass of a copy allocates it and computes the same gradient.
  copy.forward_backward(X.data(), y.data(), 5, loss, 1.0f, nullptr, ws);
  ASSERT_NE(copy.grads(), nullptr);
  EXPECT_EQ(std::vector<float>(copy.grads(), copy.grads() + copy.n_params()), g);
}

TEST(Sequential, LayoutIsOneContiguousBuffer) {
  Sequential model(5, {7, 3, 2}, {Activation::ReLU, Activation::GELU, Activation::Identity});
  ASSERT_EQ(model.layers().size(), 3u);
  int64_t offset = 0, in = 5;
  for (const auto& L : model.layers()) {
    EXPECT_EQ(L.in, in);
    EXPECT_EQ(L.w_offset, offset);
    EXPECT_EQ(L.b_offset, offset + L.in * L.out);
    offset = L.b_offset + L.out;
    in = L.out;
  }
  EXPECT_EQ(model.n_params(), offset);
  EXPECT_EQ(model.n_params(), 5 * 7 + 7 + 7 * 3 + 3 + 3 * 2 + 2);
  EXPECT_EQ(model.n_inputs(), 5);
  EXPECT_EQ(model.n_outputs(), 2);
  EXPECT_EQ(model.layers()[1].act, Activation::GELU);
}

TEST(Sequential, ForwardMatchesReferenceAcrossInferenceBlocks) {
  Sequential model(6, {10, 4}, {Activation::Sigmoid, Activation::Identity});
  model.init(11);
  // 600 rows = two full 256-row blocks and a partial one.
  const int64_t n = 600;
  const auto X = random_inputs(n, 6, 12);
  std::vector<float> out(static_cast<size_t>(n * 4)), one(4);
  Workspace ws;
  model.forward(X.data(), n, out.data(), ws);
  std::vector<LD> theta(model.params(), model.params() + model.n_params());
  const auto ref = forward_ref(model, theta, X, n);
  for (size_t i = 0; i < out.size(); ++i) {
    ASSERT_TRUE(Close(out[i], static_cast<double>(ref[i]), 1e-5, 1e-6)) << "at " << i;
  }
  for (int64_t r : {0, 255, 256, 511, 512, 599}) {
    model.forward(X.data() + r * 6, 1, one.data(), ws);
    for (int64_t j = 0; j < 4; ++j) ASSERT_TRUE(Close(one[j], out[r * 4 + j], 1e-6, 1e-6));
  }
}

TEST(Sequential, ForwardWithUsesTheGivenParameters) {
  Sequential model(3, {5, 2}, {Activation::LeakyReLU, Activation::Identity}, 0.2f);
  model.init(21);
  Sequential other = model;
  other.init(22);
  const auto X = random_inputs(9, 3, 23);
  std::vector<float> a(18), b(18);
  Workspace ws;
  model.forward_with(other.params(), X.data(), 9, a.data(), ws);
  other.forward(X.data(), 9, b.data(), ws);
  EXPECT_EQ(a, b);
}

TEST(Sequential, OneWorkspaceServesModelsOfDifferentWidths) {
  Sequential wide(4, {64, 3}, {Activation::ReLU, Activation::Identity});
  Sequential narrow(4, {2, 2, 3}, {Activation::Tanh, Activation::Tanh, Activation::Identity});
  wide.init(31);
  narrow.init(32);
  const auto X = random_inputs(40, 4, 33);
  std::vector<float> w1(120), n1(120), w2(120), n2(120);
  Workspace own_w, own_n, shared;
  wide.forward(X.data(), 40, w1.data(), own_w);
  narrow.forward(X.data(), 40, n1.data(), own_n);
  narrow.forward(X.data(), 3, n2.data(), shared);  // small first, then grows
  wide.forward(X.data(), 40, w2.data(), shared);
  narrow.forward(X.data(), 40, n2.data(), shared);
  EXPECT_EQ(w1, w2);
  EXPECT_EQ(n1, n2);
}

TEST(Sequential, InitIsSeededAndScaledPerLayer) {
  const std::vector<int64_t> widths = {30, 20, 1};
  const std::vector<Activation> acts = {Activation::ReLU, Activation::Tanh, Activation::Identity};
  Sequential a(10, widths, acts), b(10, widths, acts), c(10, widths, acts);
  a.init(5);
  b.init(5);
  c.init(6);
  EXPECT_TRUE(std::equal(a.params(), a.params() + a.n_params(), b.params()));
  EXPECT_FALSE(std::equal(a.params(), a.params() + a.n_params(), c.params()));
  for (const auto& L : a.layers()) {
    // Auto: He for ReLU-family layers, Glorot otherwise.
    const double bound =
        L.act == Activation::ReLU ? std::sqrt(6.0 / L.in) : std::sqrt(6.0 / (L.in + L.out));
    double wmax = 0.0, sum = 0.0;
    for (int64_t i = 0; i < L.in * L.out; ++i) {
      const double w = a.params()[L.w_offset + i];
      ASSERT_LE(std::fabs(w), bound);
      wmax = std::max(wmax, std::fabs(w));
      sum += w;
    }
    if (L.in * L.out >= 200) {
      EXPECT_GT(wmax, 0.9 * bound) << "uniform over the full range";
      EXPECT_LT(std::fabs(sum / (L.in * L.out)), 0.1 * bound) << "centred on zero";
    }
    for (int64_t o = 0; o < L.out; ++o) EXPECT_EQ(a.params()[L.b_offset + o], 0.0f);
  }
  a.init(5, Init::Zeros);
  EXPECT_TRUE(
      std::all_of(a.params(), a.params() + a.n_params(), [](float v) { return v == 0.0f; }));
  b.init(5, Init::HeUniform);
  const auto& L1 = b.layers()[1];
  double wmax = 0.0;
  for (int64_t i = 0; i < L1.in * L1.out; ++i) {
    wmax = std::max(wmax, std::fabs(double(b.params()[L1.w_offset + i])));
  }
  EXPECT_GT(wmax, std::sqrt(6.0 / (L1.in + L1.out))) << "He on a tanh layer is wider than Glorot";
}

TEST(Sequential, ConstructorRejectsBadShapes) {
  const std::vector<Activation> one = {Activation::Identity};
  EXPECT_THROW(Sequential(0, {1}, one), std::invalid_argument);
  EXPECT_THROW(Sequential(3, {}, {}), std::invalid_argument);
  EXPECT_THROW(Sequential(3, {2, 1}, one), std::invalid_argument);
  EXPECT_THROW(Sequential(3, {0}, one), std::invalid_argument);
  EXPECT_THROW(Sequential(3, {1}, one, -0.1f), std::invalid_argument);
}

}  // namespace
