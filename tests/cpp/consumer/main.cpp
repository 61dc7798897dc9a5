// Embeds ducklearn without Python: a Learner (MLP + logistic loss + Adam + online input
// standardization) learns a generated, linearly separable stream, then is scored on
// held-out rows. Exits 1 when the accuracy is below kMinAccuracy.
//
//   consumer [MODEL.safetensors REFERENCE.safetensors]...
//
// With arguments it also loads each model file saved from Python and checks its predictions
// against the reference Python wrote (tests/cpp/consumer/make_reference.py): bit-identical
// one row at a time (same kernels), within float rounding for whole batches (the BLAS may
// differ). Exits 1 on any mismatch.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "ducklearn/ducklearn.hpp"
#include "ducklearn/io/model_file.hpp"

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

// Loads a model file written by Python and compares its predictions with the reference.
int check_model_file(const std::string& model_path, const std::string& reference_path) {
  namespace io = ducklearn::io;
  const io::LoadedModel m = io::load_model(model_path);
  const io::SafetensorsFile ref = io::SafetensorsFile::read(reference_path);
  const std::string target = ref.metadata().at("simd_target", "reference metadata").as_string();
  const bool same_kernels = ducklearn::set_simd_target(target);
  const auto& xi = ref.tensor("X");
  const int64_t n = xi.shape.at(0), d = xi.shape.at(1), k = m.learner->n_outputs();
  if (d != m.learner->n_inputs()) {
    std::fprintf(stderr, "%s: reference has %lld columns, model expects %lld\n",
                 model_path.c_str(), static_cast<long long>(d),
                 static_cast<long long>(m.learner->n_inputs()));
    return 1;
  }
  const std::vector<float> X = ref.floats("X");
  const std::vector<float> want_row = ref.floats("row"), want_batch = ref.floats("batch");
  std::vector<float> row(static_cast<size_t>(n * k)), batch(static_cast<size_t>(n * k));
  ducklearn::Workspace ws;
  for (int64_t i = 0; i < n; ++i) m.learner->predict(X.data() + i * d, 1, row.data() + i * k, ws);
  m.learner->predict(X.data(), n, batch.data(), ws);
  int64_t row_diff = 0;
  double batch_err = 0.0;
  for (size_t i = 0; i < row.size(); ++i) {
    row_diff += std::memcmp(&row[i], &want_row[i], sizeof(float)) != 0;
    const double scale = std::fabs(want_batch[i]) > 1.0 ? std::fabs(want_batch[i]) : 1.0;
    batch_err = std::fmax(batch_err, std::fabs(batch[i] - want_batch[i]) / scale);
  }
  // Keep learning from the loaded state, one example at a time as Python did: the optimizer
  // moments, adapted rates, EWC anchor and scaler must all have come along for the next
  // predictions to match.
  const std::vector<float> learn_X = ref.floats("learn_X"), learn_y = ref.floats("learn_y");
  for (size_t i = 0; i < learn_y.size(); ++i) {
    m.learner->learn_one(learn_X.data() + i * static_cast<size_t>(d), learn_y[i]);
  }
  const std::vector<float> want_after = ref.floats("after");
  std::vector<float> after(static_cast<size_t>(n * k));
  for (int64_t i = 0; i < n; ++i) {
    m.learner->predict(X.data() + i * d, 1, after.data() + i * k, ws);
  }
  int64_t after_diff = 0;
  double after_err = 0.0;
  for (size_t i = 0; i < after.size(); ++i) {
    after_diff += std::memcmp(&after[i], &want_after[i], sizeof(float)) != 0;
    after_err = std::fmax(after_err, std::fabs(after[i] - want_after[i]));
  }
  ducklearn::set_simd_target("auto");
  // Row predictions and single-example updates run our own kernels: with the same SIMD
  // target they must match to the bit. Batches go through whatever BLAS this build links,
  // so they get float rounding (and without the same kernels, so does everything).
  const bool ok = same_kernels ? (row_diff == 0 && after_diff == 0 && batch_err <= 1e-5)
                               : (batch_err <= 1e-5 && after_err <= 1e-4);
  std::printf("%s %s (%s, %s): %lld rows, bit-identical rows: %s, after %zu more examples "
              "learned in C++: %s, max batch rel. error %.2e\n",
              ok ? "OK  " : "FAIL", model_path.c_str(), m.model_type.c_str(), m.task.c_str(),
              static_cast<long long>(n),
              same_kernels ? (row_diff == 0 ? "yes" : "NO") : "n/a (kernels unavailable)",
              learn_y.size(),
              same_kernels ? (after_diff == 0 ? "bit-identical" : "DIFFERENT") : "close",
              batch_err);
  return ok ? 0 : 1;
}

int main(int argc, char** argv) {
  try {
    int rc = run();
    if ((argc - 1) % 2 != 0) {
      std::fprintf(stderr, "usage: consumer [MODEL.safetensors REFERENCE.safetensors]...\n");
      return 2;
    }
    for (int i = 1; i + 1 < argc; i += 2) {
      if (check_model_file(argv[i], argv[i + 1]) != 0) rc = 1;
    }
    return rc;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "consumer failed: %s\n", e.what());
    return 2;
  }
}
