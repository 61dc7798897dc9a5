// Embeds ducklearn without Python: a Learner (MLP + logistic loss + Adam + online input
// standardization) learns a generated, linearly separable stream, then is scored on
// held-out rows. Exits 1 when the accuracy is below kMinAccuracy.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <vector>

#include "ducklearn/ducklearn.hpp"

namespace {

constexpr double kMinAccuracy = 0.95;
constexpr int64_t kDim = 5;

// splitmix64: a deterministic stream on every platform (std distributions are not).
struct Rng {
  uint64_t s;
  double uniform() {  // [-1, 1)
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return static_cast<double>(z >> 11) * 0x1.0p-52 - 1.0;
  }
};

// y = [w . x + 0.5 > 0] with a margin; columns on different scales.
void make_data(int64_t n, uint64_t seed, std::vector<float>& X, std::vector<float>& y) {
  const double w[kDim] = {1.5, -2.0, 0.7, 0.0, 1.0};
  const double scale[kDim] = {1.0, 5.0, 0.2, 3.0, 50.0};
  Rng rng{seed};
  X.clear();
  y.clear();
  while (static_cast<int64_t>(y.size()) < n) {
    double u[kDim], s = 0.5;
    for (int j = 0; j < kDim; ++j) {
      u[j] = rng.uniform();
      s += w[j] * u[j];
    }
    if (std::fabs(s) < 0.1) continue;
    for (int j = 0; j < kDim; ++j) X.push_back(static_cast<float>(u[j] * scale[j]));
    y.push_back(s > 0 ? 1.0f : 0.0f);
  }
}

int run() {
  const ducklearn::BackendInfo info = ducklearn::backend_info();
  std::printf("ducklearn %s | simd %s | blas %s\n", info.version.c_str(), info.simd_target.c_str(),
              info.blas.c_str());

  ducklearn::Sequential model(kDim, {8, 1},
                              {ducklearn::Activation::ReLU, ducklearn::Activation::Identity});
  model.init(/*seed=*/7);
  ducklearn::LossSpec loss;
  loss.kind = ducklearn::LossKind::Logistic;
  ducklearn::OptimizerConfig opt;
  opt.kind = ducklearn::OptimizerKind::Adam;
  opt.schedule.lr = 0.02f;
  ducklearn::Learner learner(std::move(model), loss, opt, /*standardize=*/true);

  std::vector<float> X, y, Xt, yt;
  make_data(4000, 1, X, y);
  make_data(2000, 2, Xt, yt);

  // Streaming: one example at a time, as events arrive.
  std::vector<float> preds(y.size());
  learner.prequential(X.data(), y.data(), static_cast<int64_t>(y.size()), preds.data());
  // Then a few shuffled mini-batch epochs over the same rows.
  for (uint64_t epoch = 0; epoch < 3; ++epoch) {
    learner.fit_epoch(X.data(), y.data(), static_cast<int64_t>(y.size()), 64, 100 + epoch);
  }

  std::vector<float> p(yt.size());
  ducklearn::Workspace ws;
  learner.predict(Xt.data(), static_cast<int64_t>(yt.size()), p.data(), ws);
  int64_t right = 0;
  for (size_t i = 0; i < yt.size(); ++i) right += (p[i] > 0.5f) == (yt[i] == 1.0f);
  const double acc = static_cast<double>(right) / static_cast<double>(yt.size());
  std::printf("examples seen: %lld, held-out accuracy: %.4f (threshold %.2f)\n",
              static_cast<long long>(learner.examples_seen()), acc, kMinAccuracy);
  return acc >= kMinAccuracy ? 0 : 1;
}

}  // namespace

int main() {
  try {
    return run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "consumer failed: %s\n", e.what());
    return 2;
  }
}
