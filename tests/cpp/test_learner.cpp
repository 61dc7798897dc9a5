// Learner: it learns, its prequential pass is predict-then-learn, bad labels are refused
// before anything changes, copies are independent and epochs are reproducible per seed.
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <thread>
#include <vector>

#include "ducklearn/stream/learner.hpp"
#include "test_util.hpp"

namespace {

using namespace dltest;
using ducklearn::Activation;
using ducklearn::Learner;
using ducklearn::LossKind;
using ducklearn::LossSpec;
using ducklearn::OptimizerConfig;
using ducklearn::OptimizerKind;
using ducklearn::Sequential;
using ducklearn::Task;
using ducklearn::Workspace;

struct Data {
  std::vector<float> X, y;
  int64_t n = 0, d = 0;
};

// Linearly separable with margin; columns on very different scales so that the optional
// standardization has something to do.
Data separable_binary(int64_t n, uint64_t seed) {
  const std::vector<double> w = {1.0, -2.0, 0.5, 1.5}, scale = {1.0, 10.0, 0.1, 100.0};
  Rng rng(seed);
  Data D;
  D.d = 4;
  while (D.n < n) {
    std::vector<float> x(4);
    double s = 0.3;
    for (int j = 0; j < 4; ++j) {
      const double u = rng.uniform(-1.0f, 1.0f);
      x[j] = static_cast<float>(u * scale[j]);
      s += w[j] * u;
    }
    if (std::fabs(s) < 0.15) continue;  // margin
    D.X.insert(D.X.end(), x.begin(), x.end());
    D.y.push_back(s > 0 ? 1.0f : 0.0f);
    ++D.n;
  }
  return D;
}

// Three well-separated Gaussian blobs in the plane; labels 0, 1, 2.
Data blobs(int64_t n, uint64_t seed) {
  const float cx[3] = {0.0f, 4.0f, -4.0f}, cy[3] = {4.0f, -3.0f, -3.0f};
  Rng rng(seed);
  Data D;
  D.d = 2;
  D.n = n;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = rng.integer(0, 2);
    D.X.push_back(cx[c] + static_cast<float>(0.7 * rng.normal()));
    D.X.push_back(cy[c] + static_cast<float>(0.7 * rng.normal()));
    D.y.push_back(static_cast<float>(c));
  }
  return D;
}

OptimizerConfig adam(float lr) {
  OptimizerConfig c;
  c.kind = OptimizerKind::Adam;
  c.schedule.lr = lr;
  return c;
}

LossSpec loss_of(LossKind kind) {
  LossSpec s;
  s.kind = kind;
  return s;
}

Learner logistic_learner(int64_t d, bool standardize, uint64_t seed = 1) {
  Sequential m(d, {1}, {Activation::Identity});
  m.init(seed);
  return Learner(std::move(m), loss_of(LossKind::Logistic), adam(0.05f), standardize);
}

Learner softmax_mlp(int64_t d, int64_t classes, bool standardize, uint64_t seed = 2) {
  Sequential m(d, {16, classes}, {Activation::ReLU, Activation::Identity});
  m.init(seed);
  return Learner(std::move(m), loss_of(LossKind::SoftmaxCE), adam(0.01f), standardize);
}

double accuracy(const Learner& L, const Data& D) {
  const int64_t k = L.n_outputs();
  std::vector<float> p(static_cast<size_t>(D.n * k));
  Workspace ws;
  L.predict(D.X.data(), D.n, p.data(), ws);
  int64_t right = 0;
  for (int64_t i = 0; i < D.n; ++i) {
    int64_t guess = 0;
    if (k == 1) {
      guess = p[i] > 0.5f ? 1 : 0;
    } else {
      for (int64_t j = 1; j < k; ++j) guess = p[i * k + j] > p[i * k + guess] ? j : guess;
    }
    right += guess == static_cast<int64_t>(D.y[i]);
  }
  return static_cast<double>(right) / static_cast<double>(D.n);
}

std::vector<float> params_of(const Learner& L) {
  return {L.model().params(), L.model().params() + L.model().n_params()};
}

// ------------------------------------------------------------------ learning ----

TEST(Learner, LearnsALinearlySeparableProblemOneExampleAtATime) {
  const Data train = separable_binary(3000, 801), test = separable_binary(1000, 802);
  for (bool standardize : {true, false}) {
    Learner L = logistic_learner(4, standardize);
    EXPECT_EQ(L.task(), Task::Binary);
    for (int64_t i = 0; i < train.n; ++i) L.learn_one(train.X.data() + i * 4, train.y[i]);
    EXPECT_EQ(L.examples_seen(), train.n);
    EXPECT_GE(accuracy(L, test), 0.97) << "standardize=" << standardize;
  }
}

TEST(Learner, MlpLearnsBlobsWithShuffledEpochs) {
  const Data train = blobs(600, 803), test = blobs(300, 804);
  Learner L = softmax_mlp(2, 3, true);
  EXPECT_EQ(L.task(), Task::MultiClass);
  L.scaler()->update(train.X.data(), train.n);
  double first = 0.0, last = 0.0;
  for (int epoch = 0; epoch < 15; ++epoch) {
    last = L.fit_epoch(train.X.data(), train.y.data(), train.n, 32, 100 + epoch);
    if (epoch == 0) first = last;
  }
  EXPECT_LT(last, 0.5 * first) << "the mean epoch loss falls";
  EXPECT_GE(accuracy(L, test), 0.97);
  EXPECT_EQ(L.examples_seen(), 15 * train.n);
}

TEST(Learner, RegressionFitsALinearTargetWithMiniBatches) {
  Rng rng(805);
  const int64_t n = 256, d = 3;
  std::vector<float> X = rng.vec(n * d, -1.0f, 1.0f), y(n);
  for (int64_t i = 0; i < n; ++i) {
    y[i] = 2.0f * X[i * d] - X[i * d + 1] + 0.5f * X[i * d + 2] + 1.0f;
  }
  Sequential m(d, {1}, {Activation::Identity});
  m.init(3);
  Learner L(std::move(m), loss_of(LossKind::Squared), adam(0.05f), false);
  EXPECT_EQ(L.task(), Task::Regression);
  for (int step = 0; step < 600; ++step) {
    const int64_t start = (step * 32) % n;
    L.learn_batch(X.data() + start * d, y.data() + start, 32);
  }
  std::vector<float> p(n);
  Workspace ws;
  L.predict(X.data(), n, p.data(), ws);
  double mse = 0.0;
  for (int64_t i = 0; i < n; ++i) mse += (p[i] - y[i]) * (p[i] - y[i]) / n;
  EXPECT_LT(mse, 1e-3);
}

// ------------------------------------------------------------- prequential ----

TEST(Learner, PrequentialPredictionsArePredictBeforeUpdate) {
  // Test-then-train: row i is predicted by the model as it was before learning label i.
  // The input scaler never sees labels, so it may (and does) take in x_i first.
  const Data bin = separable_binary(300, 806);
  const Data multi = blobs(300, 807);
  for (bool standardize : {false, true}) {
    for (bool multiclass : {false, true}) {
      const Data& D = multiclass ? multi : bin;
      Learner a =
          multiclass ? softmax_mlp(D.d, 3, standardize) : logistic_learner(D.d, standardize);
      Learner b(a);
      const int64_t k = a.n_outputs();
      std::vector<float> preds(static_cast<size_t>(D.n * k));
      a.prequential(D.X.data(), D.y.data(), D.n, preds.data());

      Workspace ws;
      std::vector<float> p(static_cast<size_t>(k));
      for (int64_t i = 0; i < D.n; ++i) {
        const float* x = D.X.data() + i * D.d;
        if (standardize) b.scaler()->update(x, 1);
        b.predict(x, 1, p.data(), ws);
        for (int64_t j = 0; j < k; ++j) {
          ASSERT_FLOAT_EQ(preds[i * k + j], p[j])
              << "row " << i << " standardize=" << standardize << " multiclass=" << multiclass;
        }
        b.learn_batch(x, D.y.data() + i, 1, /*update_scaler=*/false);
      }
      const auto pa = params_of(a), pb = params_of(b);
      for (size_t i = 0; i < pa.size(); ++i) ASSERT_FLOAT_EQ(pa[i], pb[i]);
      EXPECT_EQ(a.examples_seen(), D.n);
      EXPECT_EQ(a.optimizer().steps(), D.n);
      if (standardize) {
        EXPECT_EQ(a.scaler()->count()[0], static_cast<double>(D.n));
      }
    }
  }
}

// ------------------------------------------------------------------ labels ----

struct Snapshot {
  std::vector<float> params;
  int64_t steps, seen;
  double scaler_count;
  bool operator==(const Snapshot& o) const {
    return params == o.params && steps == o.steps && seen == o.seen &&
           scaler_count == o.scaler_count;
  }
};

Snapshot snap(const Learner& L) {
  return {params_of(L), L.optimizer().steps(), L.examples_seen(),
          L.scaler() ? L.scaler()->count()[0] : -1.0};
}

TEST(Learner, LabelsOutsideTheTaskThrowAndChangeNothing) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  struct Case {
    Learner learner;
    std::vector<float> bad;
    float good;
  };
  std::vector<Case> cases;
  cases.push_back({logistic_learner(2, true), {2.0f, -1.0f, 0.5f, nan}, 1.0f});
  cases.push_back({softmax_mlp(2, 3, true), {3.0f, -1.0f, 1.5f, nan, 1e10f}, 2.0f});
  {
    Sequential m(2, {1}, {Activation::Identity});
    m.init(4);
    cases.push_back({Learner(std::move(m), loss_of(LossKind::Huber), adam(0.1f), true),
                     {nan, inf, -inf},
                     3.5f});
  }
  const std::vector<float> X = {0.5f, -1.0f, 1.0f, 2.0f, -0.5f, 0.25f};
  for (Case& c : cases) {
    Learner& L = c.learner;
    L.learn_one(X.data(), c.good);  // some state to protect
    const Snapshot before = snap(L);
    for (float bad : c.bad) {
      EXPECT_THROW(L.check_label(bad), std::invalid_argument) << bad;
      EXPECT_THROW(L.learn_one(X.data(), bad), std::invalid_argument) << bad;
      const std::vector<float> y = {c.good, bad, c.good};  // the bad one in the middle
      EXPECT_THROW(L.learn_batch(X.data(), y.data(), 3), std::invalid_argument) << bad;
      EXPECT_THROW(L.fit_epoch(X.data(), y.data(), 3, 2, 1), std::invalid_argument) << bad;
      std::vector<float> preds(3 * static_cast<size_t>(L.n_outputs()));
      EXPECT_THROW(L.prequential(X.data(), y.data(), 3, preds.data()), std::invalid_argument);
      EXPECT_TRUE(snap(L) == before) << "label " << bad << " changed the learner";
    }
    EXPECT_NO_THROW(L.learn_one(X.data(), c.good));
  }
}

TEST(Learner, ConstructorChecksTheLossAgainstTheOutputs) {
  auto make = [](int64_t outputs, LossKind kind) {
    Sequential m(3, {outputs}, {Activation::Identity});
    return Learner(std::move(m), loss_of(kind), adam(0.1f), false);
  };
  EXPECT_THROW(make(2, LossKind::Logistic), std::invalid_argument);
  EXPECT_THROW(make(1, LossKind::SoftmaxCE), std::invalid_argument);
  EXPECT_THROW(make(2, LossKind::Squared), std::invalid_argument);
  EXPECT_NO_THROW(make(2, LossKind::SoftmaxCE));
  LossSpec huber = loss_of(LossKind::Huber);
  huber.delta = 0.0f;
  EXPECT_THROW(Learner(Sequential(3, {1}, {Activation::Identity}), huber, adam(0.1f), false),
               std::invalid_argument);
  OptimizerConfig bad = adam(0.1f);
  bad.beta1 = 1.0f;
  EXPECT_THROW(
      Learner(Sequential(3, {1}, {Activation::Identity}), loss_of(LossKind::Squared), bad, false),
      std::invalid_argument);
}

// ---------------------------------------------------------- copies, epochs ----

TEST(Learner, CopiesAreIndependent) {
  const Data D = separable_binary(200, 808);
  Learner a = logistic_learner(4, true);
  for (int64_t i = 0; i < 50; ++i) a.learn_one(D.X.data() + i * 4, D.y[i]);
  Learner b(a);
  EXPECT_EQ(params_of(b), params_of(a));
  EXPECT_EQ(b.optimizer().steps(), a.optimizer().steps());
  EXPECT_EQ(b.examples_seen(), 50);
  ASSERT_NE(b.scaler(), a.scaler());
  const Snapshot a0 = snap(a);
  std::vector<float> pa0(D.n), pa1(D.n), pb(D.n);
  Workspace ws;
  a.predict(D.X.data(), D.n, pa0.data(), ws);

  for (int64_t i = 50; i < 200; ++i) b.learn_one(D.X.data() + i * 4, D.y[i]);
  EXPECT_TRUE(snap(a) == a0) << "training the copy leaves the original alone";
  a.predict(D.X.data(), D.n, pa1.data(), ws);
  EXPECT_EQ(pa0, pa1);
  b.predict(D.X.data(), D.n, pb.data(), ws);
  EXPECT_NE(pb, pa0);

  const Snapshot b0 = snap(b);
  a.learn_batch(D.X.data(), D.y.data(), 100);
  EXPECT_TRUE(snap(b) == b0) << "and the other way round";
}

// ------------------------------------------------------------------ averaging ----

// The reference: a <- a + (1 - beta) (theta - a) once per example, beta = min(decay,
// (1 + t) / (10 + t)).
void reference_average(std::vector<double>& ref, const Learner& L, int64_t& t, int64_t rows,
                       double decay) {
  double keep = 1.0;
  for (int64_t i = 0; i < rows; ++i, ++t) {
    keep *= std::min(decay, (1.0 + static_cast<double>(t)) / (10.0 + static_cast<double>(t)));
  }
  const float* p = L.model().params();
  for (size_t i = 0; i < ref.size(); ++i) ref[i] += (1.0 - keep) * (p[i] - ref[i]);
}

TEST(Learner, AveragingIsTheWarmedUpMovingAverageOfTheWeights) {
  const Data D = separable_binary(400, 811);
  Learner a = logistic_learner(4, /*standardize=*/false);
  a.set_averaging(0.9f);
  EXPECT_EQ(a.average_steps(), 0);  // nothing learned yet: a fresh warm-up
  const auto p0 = params_of(a);
  std::vector<double> ref(p0.begin(), p0.end());
  int64_t t = 0;
  std::vector<float> pred(1), want(1);
  Workspace ws;
  for (int64_t i = 0; i < 300; ++i) {
    const float* x = D.X.data() + i * 4;
    // The test half of a step predicts with the average (before it moves).
    a.predict(x, 1, want.data(), ws);
    const double loss = a.step(x, D.y[i], pred.data());
    ASSERT_EQ(pred[0], want[0]) << i;
    const double p = std::min(std::max(static_cast<double>(want[0]), 1e-7), 1.0 - 1e-7);
    const double expect = D.y[i] > 0.5f ? -std::log(p) : -std::log(1.0 - p);
    ASSERT_NEAR(loss, expect, 1e-3 * std::max(1.0, expect)) << i;
    reference_average(ref, a, t, 1, 0.9);
  }
  a.learn_batch(D.X.data() + 300 * 4, D.y.data() + 300, 7);  // one step, seven examples
  reference_average(ref, a, t, 7, 0.9);
  EXPECT_EQ(a.average_steps(), t);
  const float* avg = a.served_model().params();
  for (size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(avg[i], ref[i], 1e-5) << i;
  // It really is a different model from the raw weights, and predict() serves it.
  EXPECT_NE(params_of(a), std::vector<float>(avg, avg + ref.size()));
  std::vector<float> served(D.n), raw(D.n), snap(D.n);
  a.predict(D.X.data(), D.n, served.data(), ws);
  ducklearn::infer(a.served_model(), nullptr, Task::Binary, D.X.data(), D.n, raw.data(), ws, true);
  EXPECT_EQ(served, raw);
  a.snapshot()->predict(D.X.data(), D.n, snap.data(), ws);
  EXPECT_EQ(served, snap);

  // Copies carry their own average.
  Learner b(a);
  for (int64_t i = 0; i < 50; ++i) b.learn_one(D.X.data() + i * 4, D.y[i]);
  EXPECT_EQ(std::vector<float>(a.served_model().params(), a.served_model().params() + 5),
            std::vector<float>(avg, avg + 5));
  EXPECT_NE(b.average_steps(), a.average_steps());

  // A restart copies the weights and warms up again; decay 0 turns averaging off.
  a.restart_average();
  EXPECT_EQ(a.average_steps(), 0);
  EXPECT_EQ(params_of(a), std::vector<float>(a.served_model().params(),
                                             a.served_model().params() + ref.size()));
  a.set_averaging(0.0f);
  EXPECT_EQ(&a.served_model(), &a.model());
  for (const float bad : {1.0f, -0.5f, std::numeric_limits<float>::quiet_NaN()}) {
    EXPECT_THROW(a.set_averaging(bad), std::invalid_argument);
  }
  // A trained model starts averaging at the full decay.
  Learner c = logistic_learner(4, false);
  for (int64_t i = 0; i < 30; ++i) c.learn_one(D.X.data() + i * 4, D.y[i]);
  c.set_averaging(0.5f);
  EXPECT_EQ(c.average_steps(), 30);
}

TEST(Learner, AveragedWeightsPredictBetterOnNoisyLabelsWithALargeRate) {
  // 25 % of the training labels flipped, plain SGD at a rate that keeps the weights jumping:
  // the average sits nearer the best separator than the last iterate does.
  Data D = separable_binary(6000, 812);
  const Data test = separable_binary(4000, 813);
  Rng rng(814);
  for (auto& y : D.y) {
    if (rng.uniform(0.0f, 1.0f) < 0.25f) y = 1.0f - y;
  }
  OptimizerConfig sgd;
  sgd.kind = OptimizerKind::SGD;
  sgd.schedule.lr = 0.5f;
  Sequential m(4, {1}, {Activation::Identity});
  m.init(5);
  Learner plain(std::move(m), loss_of(LossKind::Logistic), sgd, /*standardize=*/true);
  Learner averaged(plain);
  averaged.set_averaging(0.995f);
  std::vector<float> p(static_cast<size_t>(D.n));
  plain.prequential(D.X.data(), D.y.data(), D.n, p.data());
  averaged.prequential(D.X.data(), D.y.data(), D.n, p.data());
  EXPECT_EQ(params_of(plain), params_of(averaged)) << "averaging never changes the training";
  const double acc_plain = accuracy(plain, test), acc_avg = accuracy(averaged, test);
  EXPECT_GT(acc_avg, acc_plain + 0.02) << acc_plain << " vs " << acc_avg;
}

TEST(Learner, FitEpochIsDeterministicForASeed) {
  const Data D = blobs(257, 809);  // not a multiple of the batch size
  Learner base = softmax_mlp(2, 3, true);
  base.scaler()->update(D.X.data(), D.n);
  Learner a(base), b(base), c(base);
  double la = 0.0, lb = 0.0;
  for (int e = 0; e < 3; ++e) {
    la = a.fit_epoch(D.X.data(), D.y.data(), D.n, 16, 77 + e);
    lb = b.fit_epoch(D.X.data(), D.y.data(), D.n, 16, 77 + e);
    c.fit_epoch(D.X.data(), D.y.data(), D.n, 16, 1000 + e);
  }
  EXPECT_EQ(la, lb);
  EXPECT_EQ(params_of(a), params_of(b));
  EXPECT_NE(params_of(a), params_of(c)) << "another seed shuffles differently";
  EXPECT_EQ(a.scaler()->count()[0], static_cast<double>(D.n)) << "epochs leave the scaler alone";
  EXPECT_EQ(a.optimizer().steps(), 3 * ((D.n + 15) / 16));
  EXPECT_THROW(a.fit_epoch(D.X.data(), D.y.data(), D.n, 0, 1), std::invalid_argument);
  EXPECT_THROW(a.fit_epoch(D.X.data(), D.y.data(), 0, 16, 1), std::invalid_argument);
}

// -------------------------------------------------------------- prediction ----

TEST(Learner, PredictAppliesTheLinkToDecision) {
  const Data D = blobs(300, 810);  // > one 256-row inference block
  Learner L = softmax_mlp(2, 3, true);
  L.prequential(D.X.data(), D.y.data(), 100, std::vector<float>(300).data());
  std::vector<float> z(D.n * 3), p(D.n * 3), row(3);
  Workspace ws;
  L.decision(D.X.data(), D.n, z.data(), ws);
  L.predict(D.X.data(), D.n, p.data(), ws);
  for (int64_t i = 0; i < D.n; ++i) {
    double sum = 0.0, zsum = 0.0;
    for (int j = 0; j < 3; ++j) zsum += std::exp(static_cast<double>(z[i * 3 + j]));
    for (int j = 0; j < 3; ++j) {
      ASSERT_NEAR(p[i * 3 + j], std::exp(static_cast<double>(z[i * 3 + j])) / zsum, 1e-6);
      sum += p[i * 3 + j];
    }
    ASSERT_NEAR(sum, 1.0, 1e-6);
    L.decision(D.X.data() + i * 2, 1, row.data(), ws);
    for (int j = 0; j < 3; ++j) ASSERT_FLOAT_EQ(row[j], z[i * 3 + j]) << "row " << i;
  }
  Learner B = logistic_learner(4, false);
  const Data E = separable_binary(20, 811);
  std::vector<float> zb(20), pb(20);
  B.decision(E.X.data(), 20, zb.data(), ws);
  B.predict(E.X.data(), 20, pb.data(), ws);
  for (int i = 0; i < 20; ++i) ASSERT_NEAR(pb[i], 1.0 / (1.0 + std::exp(-double(zb[i]))), 1e-6);
}

TEST(Learner, ConcurrentPredictionsWithOwnWorkspacesAgree) {
  const Data D = blobs(1000, 812);
  Learner L = softmax_mlp(2, 3, true);
  L.prequential(D.X.data(), D.y.data(), 200, std::vector<float>(600).data());
  std::vector<float> ref(D.n * 3);
  Workspace ws;
  L.predict(D.X.data(), D.n, ref.data(), ws);
  std::vector<std::vector<float>> outs(4, std::vector<float>(ref.size()));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Workspace own;
      for (int rep = 0; rep < 5; ++rep) L.predict(D.X.data(), D.n, outs[t].data(), own);
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& o : outs) EXPECT_EQ(o, ref);
}

}  // namespace
