// The adaptive-learning core: change detectors (ADWIN, Page-Hinkley), the replay buffer,
// immutable snapshots, EWC, hypergradient descent on the learning rate, and exact StateDict
// round trips of learners and of the AdaptiveLearner. Statistical checks use many seeds and
// bounds derived in the comments next to them, so a broken rule fails by a wide margin while a
// correct one passes with room to spare.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ducklearn/drift/detectors.hpp"
#include "ducklearn/optim/optimizer.hpp"
#include "ducklearn/state.hpp"
#include "ducklearn/stream/adaptive.hpp"
#include "ducklearn/stream/learner.hpp"
#include "ducklearn/stream/predictor.hpp"
#include "ducklearn/stream/replay.hpp"
#include "ducklearn/stream/state_io.hpp"
#include "test_util.hpp"

namespace {

using namespace dltest;
using ducklearn::Activation;
using ducklearn::AdaptationConfig;
using ducklearn::AdaptiveLearner;
using ducklearn::ADWIN;
using ducklearn::DetectorKind;
using ducklearn::Init;
using ducklearn::Learner;
using ducklearn::LossKind;
using ducklearn::LossSpec;
using ducklearn::Optimizer;
using ducklearn::OptimizerConfig;
using ducklearn::OptimizerKind;
using ducklearn::PageHinkley;
using ducklearn::Predictor;
using ducklearn::ReplayBuffer;
using ducklearn::Sequential;
using ducklearn::StateDict;
using ducklearn::Workspace;

// ---------------------------------------------------------------------------------------------
// helpers

double bernoulli(Rng& rng, double p) { return rng.uniform(0.0f, 1.0f) < p ? 1.0 : 0.0; }

LossSpec logistic() {
  LossSpec s;
  s.kind = LossKind::Logistic;
  return s;
}

OptimizerConfig optimizer(OptimizerKind kind, float lr) {
  OptimizerConfig c;
  c.kind = kind;
  c.schedule.lr = lr;
  return c;
}

/** Linear logistic model on d inputs, zero-initialized (as the Python linear estimators). */
Learner linear_learner(int64_t d, const OptimizerConfig& opt, bool standardize = false) {
  Sequential m(d, {1}, {Activation::Identity});
  m.init(0, Init::Zeros);
  return Learner(std::move(m), logistic(), opt, standardize);
}

/** d → hidden (tanh) → 1 logistic model. */
Learner mlp_learner(int64_t d, int64_t hidden, const OptimizerConfig& opt, bool standardize,
                    uint64_t seed) {
  Sequential m(d, {hidden, 1}, {Activation::Tanh, Activation::Identity});
  m.init(seed);
  return Learner(std::move(m), logistic(), opt, standardize);
}

struct Stream {
  std::vector<float> X, y;
  int64_t n = 0, d = 0;
};

/** x ~ U(-1, 1)^d; y = [x0 > 0] before `change`, [x0 < 0] after; labels flipped w.p. noise. */
Stream flip_stream(int64_t n, int64_t d, int64_t change, double noise, uint64_t seed) {
  Rng rng(seed);
  Stream s;
  s.n = n;
  s.d = d;
  s.X = rng.vec(n * d, -1.0f, 1.0f);
  for (int64_t i = 0; i < n; ++i) {
    const float x0 = s.X[static_cast<size_t>(i * d)];
    bool label = i < change ? x0 > 0.0f : x0 < 0.0f;
    if (rng.uniform(0.0f, 1.0f) < noise) label = !label;
    s.y.push_back(label ? 1.0f : 0.0f);
  }
  return s;
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

/** Two StateDicts hold the same keys with bit-identical values. */
::testing::AssertionResult SameState(const StateDict& a, const StateDict& b) {
  auto fail = [](const std::string& what, const std::string& key) {
    return ::testing::AssertionFailure() << what << " differs at '" << key << "'";
  };
  if (a.f32.size() != b.f32.size() || a.f64.size() != b.f64.size() ||
      a.numbers.size() != b.numbers.size() || a.strings.size() != b.strings.size()) {
    return ::testing::AssertionFailure() << "different key sets";
  }
  for (const auto& [k, v] : a.f32) {
    const auto it = b.f32.find(k);
    if (it == b.f32.end() || !same_bits(v, it->second)) return fail("float32 tensor", k);
  }
  for (const auto& [k, v] : a.f64) {
    const auto it = b.f64.find(k);
    if (it == b.f64.end() || !same_bits(v, it->second)) return fail("float64 tensor", k);
  }
  for (const auto& [k, v] : a.numbers) {
    const auto it = b.numbers.find(k);
    if (it == b.numbers.end() || std::memcmp(&v, &it->second, sizeof v) != 0) {
      return fail("number", k);
    }
  }
  for (const auto& [k, v] : a.strings) {
    const auto it = b.strings.find(k);
    if (it == b.strings.end() || it->second != v) return fail("string", k);
  }
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------------------------
// ADWIN

// Delay bounds for a Bernoulli mean shift 0.2 → 0.8 after 1000 values, delta = 0.002, clock 1.
// ADWIN cuts when |mu0 - mu1| > eps = sqrt(2 m v dd) + 2/3 dd m with dd = ln(2 ln(W) / delta)
// ≈ 8.8 and m ≈ 1 / (k - min_window + 1) for k post-change values against a long W0.
//  - Lower bound (deterministic): the gap of two Bernoulli means is at most 1 - 0.2 + noise,
//    < 1, and eps >= 2/3 dd m, so no cut is possible while 5.9 / (k - 4) >= 1, i.e. k < 11.
//  - Typical: with v ≈ 0.18 and the true gap 0.6, eps falls below 0.6 at k ≈ 30.
//  - Upper bound: at k = 60, eps ≈ 0.23 + 0.11 = 0.34, so the observed gap would have to fall
//    0.26 below its mean; its standard deviation over 56 values is 0.4 / sqrt(56) ≈ 0.053, a
//    5-sigma event per seed.
TEST(ADWIN, DetectsAnAbruptShiftWithinTheDerivedDelay) {
  std::vector<int64_t> delays;
  for (uint64_t seed = 0; seed < 60; ++seed) {
    Rng rng(seed);
    ADWIN a(0.002, /*clock=*/1);
    for (int i = 0; i < 1000; ++i) ASSERT_FALSE(a.update(bernoulli(rng, 0.2))) << seed;
    ASSERT_EQ(a.width(), 1000);
    int64_t delay = -1;
    for (int k = 1; k <= 200 && delay < 0; ++k) {
      if (a.update(bernoulli(rng, 0.8))) delay = k;
    }
    ASSERT_GE(delay, 11) << "seed " << seed << ": a cut below the 2/3 dd m floor";
    ASSERT_LE(delay, 60) << "seed " << seed;
    delays.push_back(delay);
  }
  std::sort(delays.begin(), delays.end());
  const int64_t median = delays[delays.size() / 2];
  EXPECT_GE(median, 18);
  EXPECT_LE(median, 42);

  // With the default clock a check runs every 32 values: at most 32 more.
  for (uint64_t seed = 0; seed < 20; ++seed) {
    Rng rng(seed);
    ADWIN a(0.002, 32);
    for (int i = 0; i < 1000; ++i) a.update(bernoulli(rng, 0.2));
    int64_t delay = -1;
    for (int k = 1; k <= 300 && delay < 0; ++k) {
      if (a.update(bernoulli(rng, 0.8))) delay = k;
    }
    EXPECT_GE(delay, 11);
    EXPECT_LE(delay, 60 + 32) << "seed " << seed;
  }
}

// Bifet & Gavaldà (Theorem 3.1): on a stationary stream each check shrinks the window with
// probability at most delta. Here: 200 streams × 4000 values, checked every 8 values → 1e5
// checks, so at most delta × 1e5 = 200 false alarms in expectation; the bound is loose (it
// covers every cut point at once) and the real rate is far lower, as with River's ADWIN. A cut
// test without its 2/3 dd m term alarms dozens of times here.
TEST(ADWIN, RarelyAlarmsOnAStationaryBernoulliStream) {
  int64_t alarms = 0, checks = 0;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    Rng rng(1000 + seed);
    const double p = seed % 2 == 0 ? 0.5 : 0.1;  // the largest variance, and a skewed one
    ADWIN a(0.002, 8);
    for (int i = 0; i < 4000; ++i) a.update(bernoulli(rng, p));
    alarms += a.detections();
    checks += 4000 / 8;
    if (a.detections() == 0) {
      EXPECT_EQ(a.width(), 4000);
    }
  }
  // Far below delta × checks (= 200): a handful at most.
  EXPECT_LE(alarms, 5) << "over " << checks << " checks";
}

// After a change the window keeps (about) the post-change part only: old buckets are dropped
// whole, so the remaining width can differ from the post-change count by the bucket
// granularity, at most 2^6 = 64 values for a window of ~600 with 5 buckets per size.
TEST(ADWIN, WindowShrinksToThePostChangeLength) {
  for (uint64_t seed = 0; seed < 30; ++seed) {
    Rng rng(seed);
    ADWIN a(0.002, 1);
    for (int i = 0; i < 1000; ++i) a.update(bernoulli(rng, 0.2));
    const int64_t post = 600;
    for (int k = 0; k < post; ++k) a.update(bernoulli(rng, 0.8));
    EXPECT_GE(a.detections(), 1);
    EXPECT_GE(a.width(), post - 64) << "seed " << seed;
    EXPECT_LE(a.width(), post + 64) << "seed " << seed;
    EXPECT_NEAR(a.mean(), 0.8, 0.07) << "seed " << seed;
  }
}

/** Checks width/mean/variance and every bucket against the last width() raw values. */
void check_adwin_against(const ADWIN& a, const std::vector<double>& history, int max_buckets) {
  const int64_t w = a.width();
  ASSERT_LE(w, static_cast<int64_t>(history.size()));
  const auto first = history.end() - w;
  double mean = 0.0;
  for (auto it = first; it != history.end(); ++it) mean += *it;
  mean /= static_cast<double>(w);
  double ss = 0.0;
  for (auto it = first; it != history.end(); ++it) ss += (*it - mean) * (*it - mean);
  ASSERT_TRUE(Close(a.mean(), mean, 1e-10, 1e-12));
  ASSERT_TRUE(Close(a.variance(), ss / static_cast<double>(w), 1e-7, 1e-9));

  // Buckets: the highest row holds the oldest values; every bucket of row r summarises 2^r
  // consecutive values (sum and sum of squared deviations), rows hold <= max_buckets each.
  StateDict st;
  a.save_state(st, "a.");
  const int64_t rows = st.integer("a.rows");
  auto pos = first;
  int64_t counted = 0;
  for (int64_t r = rows - 1; r >= 0; --r) {
    const auto& flat = st.tensor64("a.row." + std::to_string(r));
    ASSERT_EQ(flat.size() % 2, 0u);
    ASSERT_LE(static_cast<int>(flat.size() / 2), max_buckets) << "row " << r;
    const int64_t size = int64_t{1} << r;
    for (size_t b = 0; b < flat.size(); b += 2) {
      double s = 0.0;
      for (int64_t j = 0; j < size; ++j) s += pos[j];
      const double mu = s / static_cast<double>(size);
      double v = 0.0;
      for (int64_t j = 0; j < size; ++j) v += (pos[j] - mu) * (pos[j] - mu);
      ASSERT_TRUE(Close(flat[b], s, 1e-12, 1e-9)) << "row " << r;
      ASSERT_TRUE(Close(flat[b + 1], v, 1e-9, 1e-9)) << "row " << r;
      pos += size;
      counted += size;
    }
  }
  ASSERT_EQ(counted, w);
}

TEST(ADWIN, VarianceAndBucketsMatchTheKeptWindow) {
  Rng rng(7);
  ADWIN a(0.002, 1);
  std::vector<double> history;
  // Gaussian segments with shifting means and scales: merges, cuts and drops all happen.
  const double means[] = {0.0, 3.0, 1.0, -2.0, -2.0, 5.0};
  const double scales[] = {1.0, 0.5, 2.0, 1.0, 0.1, 1.0};
  for (int seg = 0; seg < 6; ++seg) {
    for (int i = 0; i < 500; ++i) {
      const double x = means[seg] + scales[seg] * rng.normal();
      history.push_back(x);
      a.update(x);
      if (i % 7 == 0) {
        check_adwin_against(a, history, 5);
        if (::testing::Test::HasFatalFailure()) return;
      }
    }
  }
  EXPECT_GE(a.detections(), 3) << "the drop path was not exercised";
  check_adwin_against(a, history, 5);
}

// An exponential histogram: O(log W) buckets for a window of W values.
TEST(ADWIN, MemoryIsLogarithmicInTheWindow) {
  Rng rng(3);
  ADWIN a(0.002, 32, 5);
  for (int i = 0; i < 100000; ++i) a.update(rng.normal());
  ASSERT_EQ(a.width(), 100000);
  StateDict st;
  a.save_state(st, "a.");
  // Rows hold 5 buckets of 2^r: W <= 5 (2^R - 1) needs R = ceil(log2(W / 5 + 1)) = 15 rows.
  EXPECT_LE(st.integer("a.rows"), 16);
  EXPECT_GE(st.integer("a.rows"), 14);
}

TEST(ADWIN, SaveLoadContinuesIdentically) {
  Rng rng(11);
  ADWIN a(0.01, 4, 3, 7);
  std::vector<double> xs;
  for (int i = 0; i < 3000; ++i) xs.push_back((i / 700) % 2 == 0 ? rng.normal() : 2 + rng.normal());
  for (int i = 0; i < 1234; ++i) a.update(xs[i]);
  StateDict st;
  a.save_state(st, "adwin.");
  ADWIN b;
  b.load_state(st, "adwin.");
  for (int i = 1234; i < 3000; ++i) {
    ASSERT_EQ(a.update(xs[i]), b.update(xs[i])) << i;
    ASSERT_EQ(a.width(), b.width());
    ASSERT_EQ(a.mean(), b.mean());
    ASSERT_EQ(a.variance(), b.variance());
  }
  EXPECT_GE(a.detections(), 1);
  EXPECT_EQ(a.detections(), b.detections());
}

TEST(ADWIN, MalformedStateThrows) {
  Rng rng(2);
  ADWIN a;
  for (int i = 0; i < 300; ++i) a.update(rng.normal());
  StateDict good;
  a.save_state(good, "a.");
  auto expect_throw = [&](const char* what, const std::function<void(StateDict&)>& mutate) {
    StateDict bad = good;
    mutate(bad);
    ADWIN b;
    EXPECT_THROW(b.load_state(bad, "a."), std::invalid_argument) << what;
  };
  expect_throw("odd row length", [](StateDict& s) { s.f64["a.row.0"].push_back(1.0); });
  expect_throw("too many buckets in a row", [](StateDict& s) {
    auto& r = s.f64["a.row.1"];
    for (int i = 0; i < 10; ++i) r.push_back(0.0);
  });
  expect_throw("buckets do not add up", [](StateDict& s) { s.set_int("a.width", 299); });
  expect_throw("implausible row count", [](StateDict& s) { s.set_int("a.rows", 100); });
  expect_throw("missing row", [](StateDict& s) { s.f64.erase("a.row.2"); });
  expect_throw("missing key", [](StateDict& s) { s.numbers.erase("a.total"); });
  expect_throw("bad delta", [](StateDict& s) { s.set("a.delta", 2.0); });
  expect_throw("non-integer clock", [](StateDict& s) { s.set("a.clock", 1.5); });
}

TEST(ADWIN, RejectsBadArguments) {
  EXPECT_THROW(ADWIN(0.0), std::invalid_argument);
  EXPECT_THROW(ADWIN(1.0), std::invalid_argument);
  EXPECT_THROW(ADWIN(0.01, 0), std::invalid_argument);
  EXPECT_THROW(ADWIN(0.01, 1, 1), std::invalid_argument);
  EXPECT_THROW(ADWIN(0.01, 1, 5, 0), std::invalid_argument);
  ADWIN a;
  EXPECT_THROW(a.update(std::nan("")), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// Page-Hinkley

// m_t = sum (x - mean_t - delta). Before the change it drifts down by delta per value, so its
// minimum sits at (or just before) the change point; after it, it rises by about shift - delta
// minus the running mean's creep, and the expected detection point is computed below from the
// noise-free increments. The age estimate n - argmin can only overshoot, by the time since the
// pre-change walk last touched its minimum: for drift -delta and noise sd sigma that exceeds j
// values with probability about exp(-j delta^2 / (2 sigma^2)) = exp(-1.4 j) here (sigma 0.03),
// so 5 values or more is a 1e-3 event per seed.
TEST(PageHinkley, DetectsAnUpwardShiftAndDatesIt) {
  const int n0 = 500;
  const double shift = 0.5, delta = 0.05, threshold = 20.0;
  // Noise-free crossing: values 0 then `shift`, running mean included.
  int64_t expected = 0;
  {
    double mean = 0.0, sum = 0.0, min_sum = 0.0;
    for (int i = 1;; ++i) {
      const double x = i <= n0 ? 0.0 : shift;
      mean += (x - mean) / i;
      sum += x - mean - delta;
      min_sum = std::min(min_sum, sum);
      if (sum - min_sum > threshold) {
        expected = i - n0;
        break;
      }
    }
  }
  ASSERT_GT(expected, 40);
  for (uint64_t seed = 0; seed < 20; ++seed) {
    Rng rng(seed);
    PageHinkley ph(30, delta, threshold, 1.0);
    for (int i = 0; i < n0; ++i) ASSERT_FALSE(ph.update(0.03 * rng.normal())) << seed;
    int64_t k = -1;
    for (int j = 1; j <= 400 && k < 0; ++j) {
      if (ph.update(shift + 0.03 * rng.normal())) k = j;
    }
    // Noise adds a random walk of sd 0.03 sqrt(k) ≈ 0.2 to the sum: within a few values.
    EXPECT_NEAR(static_cast<double>(k), static_cast<double>(expected), 5.0) << "seed " << seed;
    EXPECT_GE(ph.last_change_age(), k) << "seed " << seed;
    EXPECT_LE(ph.last_change_age(), k + 4) << "seed " << seed;
    EXPECT_EQ(ph.count(), 0) << "the detector resets after a detection";
  }
}

TEST(PageHinkley, DatesANoiseFreeShiftExactly) {
  // Values 0 then 0.5: the sum falls by delta per value up to the change, so its minimum is the
  // last pre-change value and the age at detection is exactly the number of values after it.
  for (int n0 : {40, 300}) {
    PageHinkley ph(30, 0.05, 20.0, 1.0);
    for (int i = 0; i < n0; ++i) ASSERT_FALSE(ph.update(0.0));
    int64_t k = -1;
    for (int j = 1; j <= 400 && k < 0; ++j) {
      if (ph.update(0.5)) k = j;
    }
    ASSERT_GT(k, 0);
    EXPECT_EQ(ph.last_change_age(), k) << n0;
  }
}

TEST(PageHinkley, IgnoresADownwardShift) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    Rng rng(seed);
    PageHinkley ph;  // defaults: delta 0.005, threshold 50
    for (int i = 0; i < 500; ++i) ASSERT_FALSE(ph.update(1.0 + 0.1 * rng.normal()));
    for (int i = 0; i < 3000; ++i) ASSERT_FALSE(ph.update(0.5 + 0.1 * rng.normal())) << seed;
    EXPECT_LT(ph.statistic(), 10.0);
  }
  // The same drop mirrored (a rise) is detected: the test above is not vacuous.
  Rng rng(0);
  PageHinkley ph;
  for (int i = 0; i < 500; ++i) ph.update(0.5 + 0.1 * rng.normal());
  bool fired = false;
  for (int i = 0; i < 3000 && !fired; ++i) fired = ph.update(1.0 + 0.1 * rng.normal());
  EXPECT_TRUE(fired);
}

TEST(PageHinkley, SaveLoadContinuesIdentically) {
  Rng rng(4);
  PageHinkley a(20, 0.01, 8.0, 0.999);
  std::vector<double> xs;
  for (int i = 0; i < 4000; ++i) xs.push_back((i / 600) % 2 + 0.3 * rng.normal());
  for (int i = 0; i < 1500; ++i) a.update(xs[i]);
  StateDict st;
  a.save_state(st, "ph.");
  PageHinkley b;
  b.load_state(st, "ph.");
  int fired = 0;
  for (int i = 1500; i < 4000; ++i) {
    const bool da = a.update(xs[i]);
    ASSERT_EQ(da, b.update(xs[i])) << i;
    fired += da;
    ASSERT_EQ(a.statistic(), b.statistic());
    ASSERT_EQ(a.last_change_age(), b.last_change_age());
  }
  EXPECT_GE(fired, 1);
  StateDict bad = st;
  bad.numbers.erase("ph.sum");
  EXPECT_THROW(b.load_state(bad, "ph."), std::invalid_argument);
  bad = st;
  bad.set("ph.alpha", 1.5);
  EXPECT_THROW(b.load_state(bad, "ph."), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// ReplayBuffer

// Chi-square critical values at p = 0.001: df = 99: 148.23, df = 19: 43.82, df = 5: 20.52,
// df = 2: 13.82.
// For inclusion counts each O_i ~ Binomial(S, p) with variance S p (1 - p) < E_i, so the
// statistic sum (O - E)^2 / E is even smaller than chi-square: the bound is conservative.
TEST(ReplayBuffer, ReservoirKeepsEachExampleWithProbabilityCapacityOverSeen) {
  const int64_t capacity = 10, n = 100, runs = 3000;
  std::vector<double> counts(n, 0.0);
  for (int64_t seed = 0; seed < runs; ++seed) {
    ReplayBuffer r(capacity, 1, static_cast<uint64_t>(seed) * 7919 + 1);
    for (int64_t i = 0; i < n; ++i) {
      const float x = static_cast<float>(i);
      r.add(&x, static_cast<float>(i % 2));
    }
    ASSERT_EQ(r.size(), capacity);
    ASSERT_EQ(r.seen(), n);
    std::vector<int64_t> held(r.rows(), r.rows() + capacity);
    std::sort(held.begin(), held.end());
    ASSERT_TRUE(std::adjacent_find(held.begin(), held.end()) == held.end()) << "duplicates";
    for (int64_t j = 0; j < capacity; ++j) {
      const auto i = static_cast<int64_t>(r.rows()[j]);
      ASSERT_EQ(r.labels()[j], static_cast<float>(i % 2)) << "row and label out of step";
      counts[static_cast<size_t>(i)] += 1.0;
    }
  }
  const double expected = static_cast<double>(runs * capacity) / n;  // capacity / seen
  double chi2 = 0.0;
  for (double c : counts) chi2 += (c - expected) * (c - expected) / expected;
  EXPECT_LT(chi2, 148.23);
  // The first and the last examples, where a biased rule would show first.
  const double sd = std::sqrt(expected * (1.0 - 0.1));
  EXPECT_NEAR(counts.front(), expected, 4.5 * sd);
  EXPECT_NEAR(counts.back(), expected, 4.5 * sd);
}

TEST(ReplayBuffer, FifoKeepsExactlyTheNewest) {
  const int64_t capacity = 7, d = 3;
  ReplayBuffer r(capacity, d, 1, false, 0.6f, /*fifo=*/true);
  for (int64_t i = 0; i < 30; ++i) {
    const float x[3] = {static_cast<float>(i), static_cast<float>(-i), 0.5f};
    r.add(x, static_cast<float>(i));
    const int64_t held = std::min<int64_t>(i + 1, capacity);
    ASSERT_EQ(r.size(), held);
    std::vector<float> labels(r.labels(), r.labels() + held);
    std::sort(labels.begin(), labels.end());
    for (int64_t j = 0; j < held; ++j) {
      ASSERT_EQ(labels[j], static_cast<float>(i + 1 - held + j)) << "after " << i;
    }
  }
  for (int64_t j = 0; j < capacity; ++j) {
    EXPECT_EQ(r.rows()[j * d], r.labels()[j]);
    EXPECT_EQ(r.rows()[j * d + 1], -r.labels()[j]);
  }
  // Sampling draws only held examples, every one of them.
  std::vector<float> X(500 * d), y(500);
  std::vector<int64_t> slots(500);
  r.sample(500, X.data(), y.data(), slots.data());
  std::vector<int> hits(capacity, 0);
  for (int s = 0; s < 500; ++s) {
    ASSERT_GE(y[s], 23.0f);
    ASSERT_EQ(X[s * d], y[s]);
    ASSERT_EQ(r.labels()[slots[s]], y[s]);
    ++hits[static_cast<size_t>(slots[s])];
  }
  for (int h : hits) EXPECT_GT(h, 0);
}

double chi_square(const std::vector<double>& observed, const std::vector<double>& expected) {
  double c = 0.0;
  for (size_t i = 0; i < observed.size(); ++i) {
    c += (observed[i] - expected[i]) * (observed[i] - expected[i]) / expected[i];
  }
  return c;
}

TEST(ReplayBuffer, PrioritizedSamplingIsProportionalToPriorityPowAlpha) {
  // Capacity 6 (the sum tree has 8 leaves: two stay empty), all slots filled.
  const int64_t k = 200000;
  for (float alpha : {0.6f, 1.0f, 0.0f}) {
    ReplayBuffer r(6, 1, 99, /*prioritized=*/true, alpha);
    const float pr[6] = {1.0f, 2.0f, 0.5f, 4.0f, 3.0f, 8.0f};
    for (int i = 0; i < 6; ++i) {
      const float x = static_cast<float>(i);
      r.add(&x, 0.0f, pr[i]);
    }
    std::vector<float> X(k), y(k);
    std::vector<int64_t> slots(k);
    r.sample(k, X.data(), y.data(), slots.data());
    std::vector<double> obs(6, 0.0), w(6), expected(6);
    for (int64_t s = 0; s < k; ++s) {
      ASSERT_EQ(X[s], static_cast<float>(slots[s]));
      obs[static_cast<size_t>(slots[s])] += 1.0;
    }
    double total = 0.0;
    for (int i = 0; i < 6; ++i) total += (w[i] = std::pow(pr[i] + 1e-6, alpha));
    for (int i = 0; i < 6; ++i) expected[i] = k * w[i] / total;
    EXPECT_LT(chi_square(obs, expected), 20.52) << "alpha " << alpha;
  }
  // Updated priorities take effect; a partly filled buffer never returns an empty slot.
  ReplayBuffer r(6, 1, 5, true, 1.0f);
  for (int i = 0; i < 4; ++i) {
    const float x = static_cast<float>(i);
    r.add(&x, 0.0f, 1.0f);
  }
  r.set_priority(2, 7.0f);
  r.set_priority(0, 0.0f);  // only the 1e-6 floor: ~1e-7 of the mass
  std::vector<float> X(k), y(k);
  std::vector<int64_t> slots(k);
  r.sample(k, X.data(), y.data(), slots.data());
  std::vector<double> obs(4, 0.0);
  for (int64_t s = 0; s < k; ++s) {
    ASSERT_LT(slots[s], 4);
    obs[static_cast<size_t>(slots[s])] += 1.0;
  }
  EXPECT_LE(obs[0], 2.0);
  std::vector<double> o3 = {obs[1], obs[2], obs[3]}, e3 = {k / 9.0, 7.0 * k / 9.0, k / 9.0};
  EXPECT_LT(chi_square(o3, e3), 13.82);  // df = 2
}

TEST(ReplayBuffer, UniformSamplingAndStateRoundTrip) {
  for (bool prioritized : {false, true}) {
    ReplayBuffer a(50, 2, 17, prioritized, 0.7f);
    Rng rng(8);
    for (int i = 0; i < 120; ++i) {
      const std::vector<float> x = rng.vec(2, -1.0f, 1.0f);
      a.add(x.data(), static_cast<float>(i % 2), rng.uniform(0.0f, 3.0f));
    }
    ReplayBuffer b(50, 2, 12345, prioritized, 0.7f);
    b.load(a.size(), a.seen(), a.rng_state(), a.rows(), a.labels(), a.priorities());
    for (int step = 0; step < 50; ++step) {
      std::vector<float> Xa(16), ya(8), Xb(16), yb(8);
      std::vector<int64_t> sa(8), sb(8);
      a.sample(8, Xa.data(), ya.data(), sa.data());
      b.sample(8, Xb.data(), yb.data(), sb.data());
      ASSERT_EQ(sa, sb);
      ASSERT_TRUE(same_bits(Xa, Xb));
      const std::vector<float> x = rng.vec(2, -1.0f, 1.0f);
      const float p = rng.uniform(0.0f, 3.0f);
      a.add(x.data(), 1.0f, p);
      b.add(x.data(), 1.0f, p);
    }
    EXPECT_EQ(a.seen(), b.seen());
  }
  // Uniform draws: every slot equally likely.
  ReplayBuffer r(20, 1, 3);
  for (int i = 0; i < 20; ++i) {
    const float x = static_cast<float>(i);
    r.add(&x, 0.0f);
  }
  const int64_t k = 100000;
  std::vector<float> X(k), y(k);
  std::vector<int64_t> slots(k);
  r.sample(k, X.data(), y.data(), slots.data());
  std::vector<double> obs(20, 0.0), expected(20, k / 20.0);
  for (int64_t s = 0; s < k; ++s) obs[static_cast<size_t>(slots[s])] += 1.0;
  EXPECT_LT(chi_square(obs, expected), 43.82);  // df = 19
  ReplayBuffer bad(4, 1, 0);
  EXPECT_THROW(bad.load(5, 5, 0, X.data(), y.data(), X.data()), std::invalid_argument);
  EXPECT_THROW(bad.sample(1, X.data(), y.data(), nullptr), std::invalid_argument);
  EXPECT_THROW(ReplayBuffer(0, 1, 0), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// Predictor (snapshots)

struct Trained {
  std::unique_ptr<Learner> learner;
  std::vector<float> X;  ///< 512 × 5 evaluation rows
};

Trained trained_mlp() {
  Trained t;
  t.learner = std::make_unique<Learner>(
      mlp_learner(5, 16, optimizer(OptimizerKind::Adam, 0.01f), /*standardize=*/true, 4));
  Rng rng(21);
  for (int i = 0; i < 300; ++i) {
    std::vector<float> x = rng.vec(5, -3.0f, 3.0f);
    x[4] *= 100.0f;  // something for the scaler to do
    t.learner->learn_one(x.data(), x[0] + x[1] > 0.0f ? 1.0f : 0.0f);
  }
  t.X = rng.vec(512 * 5, -3.0f, 3.0f);
  return t;
}

TEST(Predictor, EqualsTheLearnerAtSnapshotTimeAndIsFrozen) {
  Trained t = trained_mlp();
  Learner& L = *t.learner;
  const int64_t n = 512;
  Workspace ws;
  std::vector<float> want(n), got(n), raw_want(n), raw_got(n);
  L.predict(t.X.data(), n, want.data(), ws);
  L.decision(t.X.data(), n, raw_want.data(), ws);
  const auto snap = L.snapshot();
  ASSERT_EQ(snap->n_inputs(), 5);
  ASSERT_EQ(snap->task(), L.task());
  Workspace ws2;
  snap->predict(t.X.data(), n, got.data(), ws2);
  snap->decision(t.X.data(), n, raw_got.data(), ws2);
  EXPECT_TRUE(same_bits(want, got));
  EXPECT_TRUE(same_bits(raw_want, raw_got));

  // The learner moves on (weights and scaler statistics); the snapshot does not.
  Rng rng(5);
  for (int i = 0; i < 200; ++i) {
    const std::vector<float> x = rng.vec(5, -50.0f, 50.0f);
    L.learn_one(x.data(), x[2] > 0.0f ? 1.0f : 0.0f);
  }
  std::vector<float> later(n), moved(n);
  snap->predict(t.X.data(), n, later.data(), ws2);
  EXPECT_TRUE(same_bits(want, later));
  L.predict(t.X.data(), n, moved.data(), ws);
  EXPECT_FALSE(same_bits(want, moved)) << "the learner did not change: the check is vacuous";
  // A copy of a snapshot predicts the same.
  const Predictor copy(*snap);
  copy.predict(t.X.data(), n, later.data(), ws2);
  EXPECT_TRUE(same_bits(want, later));
}

TEST(Predictor, ConcurrentReadersOfOneSnapshotAgree) {
  Trained t = trained_mlp();
  const int64_t n = 512;
  const std::shared_ptr<const Predictor> snap = t.learner->snapshot();
  // Different block sizes per thread and iteration, so workspaces grow while others read.
  auto rows = [n](int th, int it) -> int64_t { return 1 + (th * 37 + it * 101) % n; };
  // The answer for each block size, computed alone first. (Whether a row's result also
  // ignores the block size depends on the kernel: the packed one guarantees it, the BLAS and
  // gemv paths of the generic target may round differently; that is not what this tests.)
  std::vector<std::vector<float>> want(4 * 40);
  {
    Workspace ws;
    for (int th = 0; th < 4; ++th) {
      for (int it = 0; it < 40; ++it) {
        auto& w = want[static_cast<size_t>(th * 40 + it)];
        w.resize(static_cast<size_t>(rows(th, it)));
        snap->predict(t.X.data(), rows(th, it), w.data(), ws);
      }
    }
  }
  std::atomic<int> mismatches{0};
  std::vector<std::thread> readers;
  for (int th = 0; th < 4; ++th) {
    readers.emplace_back([&, th] {
      Workspace ws;  // one per reader, as the contract says
      std::vector<float> out(n);
      for (int it = 0; it < 40; ++it) {
        const int64_t m = rows(th, it);
        snap->predict(t.X.data(), m, out.data(), ws);
        const auto& w = want[static_cast<size_t>(th * 40 + it)];
        if (std::memcmp(out.data(), w.data(), static_cast<size_t>(m) * sizeof(float)) != 0) {
          ++mismatches;
        }
      }
    });
  }
  // Meanwhile the learner keeps training its own copy.
  Rng rng(9);
  for (int step = 0; step < 2000; ++step) {
    const std::vector<float> x = rng.vec(5, -3.0f, 3.0f);
    t.learner->learn_one(x.data(), x[3] > 0.0f ? 1.0f : 0.0f);
  }
  for (auto& r : readers) r.join();
  EXPECT_EQ(mismatches.load(), 0);
}

// ---------------------------------------------------------------------------------------------
// EWC

/** Per-example gradient of a 1-layer logistic model in double: (sigmoid(w.x + b) - y) [x, 1]. */
std::vector<double> logistic_grad(const Sequential& m, const float* x, float y) {
  const auto& layer = m.layers()[0];
  const float* p = m.params();
  const int64_t d = m.n_inputs();
  double z = p[layer.b_offset];
  for (int64_t j = 0; j < d; ++j) z += static_cast<double>(p[layer.w_offset + j]) * x[j];
  const double e = 1.0 / (1.0 + std::exp(-z)) - y;
  std::vector<double> g(static_cast<size_t>(m.n_params()), 0.0);
  for (int64_t j = 0; j < d; ++j) g[static_cast<size_t>(layer.w_offset + j)] = e * x[j];
  g[static_cast<size_t>(layer.b_offset)] = e;
  return g;
}

std::vector<double> manual_fisher(const Sequential& m, const std::vector<float>& X,
                                  const std::vector<float>& y) {
  const int64_t d = m.n_inputs(), n = static_cast<int64_t>(y.size());
  std::vector<double> f(static_cast<size_t>(m.n_params()), 0.0);
  for (int64_t r = 0; r < n; ++r) {
    const auto g = logistic_grad(m, X.data() + r * d, y[r]);
    for (size_t i = 0; i < g.size(); ++i) f[i] += g[i] * g[i] / static_cast<double>(n);
  }
  return f;
}

Learner ewc_learner() {
  Sequential m(4, {1}, {Activation::Identity});
  m.init(3, Init::GlorotUniform);
  return Learner(std::move(m), logistic(), optimizer(OptimizerKind::SGD, 0.1f), false);
}

TEST(EWC, FisherIsTheMeanSquaredPerExampleGradient) {
  Learner L = ewc_learner();
  Rng rng(5);
  const int64_t n = 25;
  std::vector<float> X = rng.vec(n * 4, -2.0f, 2.0f), y;
  for (int64_t i = 0; i < n; ++i) y.push_back(static_cast<float>(rng.integer(0, 1)));
  const auto f1 = manual_fisher(L.model(), X, y);
  const std::vector<float> theta(L.model().params(), L.model().params() + L.model().n_params());
  L.consolidate(X.data(), y.data(), n, 2.0f, 0.5f);
  ASSERT_EQ(L.ewc_fisher().size(), f1.size());
  for (size_t i = 0; i < f1.size(); ++i) {
    EXPECT_TRUE(Close(L.ewc_fisher()[i], f1[i], 1e-5, 1e-9)) << i;
    EXPECT_EQ(L.ewc_anchor()[i], theta[i]);
  }
  EXPECT_EQ(L.ewc_lambda(), 2.0f);
  // Not E[g]^2: the mean gradient squared is strictly smaller here.
  double mean_g0 = 0.0;
  for (int64_t r = 0; r < n; ++r) {
    mean_g0 += logistic_grad(L.model(), X.data() + r * 4, y[r])[0] / static_cast<double>(n);
  }
  EXPECT_GT(f1[0], 1.5 * mean_g0 * mean_g0);
  // Consolidation takes no optimizer step.
  EXPECT_EQ(L.optimizer().steps(), 0);
  EXPECT_TRUE(same_bits(theta, std::vector<float>(L.model().params(),
                                                   L.model().params() + L.model().n_params())));

  // Online EWC: a second consolidation blends F = decay F_old + F_new, anchored anew.
  for (int64_t i = 0; i < L.model().n_params(); ++i) L.model().params()[i] += 0.25f * (i + 1);
  std::vector<float> X2 = rng.vec(n * 4, -2.0f, 2.0f), y2;
  for (int64_t i = 0; i < n; ++i) y2.push_back(static_cast<float>(rng.integer(0, 1)));
  const auto f2 = manual_fisher(L.model(), X2, y2);
  L.consolidate(X2.data(), y2.data(), n, 3.0f, 0.5f);
  for (size_t i = 0; i < f2.size(); ++i) {
    EXPECT_TRUE(Close(L.ewc_fisher()[i], f2[i] + 0.5 * f1[i], 1e-5, 1e-9)) << i;
    EXPECT_EQ(L.ewc_anchor()[i], L.model().params()[i]);
  }
  EXPECT_EQ(L.ewc_lambda(), 3.0f);
  EXPECT_THROW(L.consolidate(X.data(), y.data(), n, -1.0f, 0.5f), std::invalid_argument);
  EXPECT_THROW(L.consolidate(X.data(), y.data(), n, 1.0f, 1.5f), std::invalid_argument);
  EXPECT_THROW(L.consolidate(X.data(), y.data(), 0, 1.0f, 0.5f), std::invalid_argument);
}

TEST(EWC, AddedGradientIsLambdaFisherTimesDisplacement) {
  const float lr = 0.1f, lambda = 3.0f;
  Learner L = ewc_learner();
  Rng rng(6);
  const int64_t n = 30, np = L.model().n_params();
  std::vector<float> X = rng.vec(n * 4, -2.0f, 2.0f), y;
  for (int64_t i = 0; i < n; ++i) y.push_back(static_cast<float>(rng.integer(0, 1)));
  L.consolidate(X.data(), y.data(), n, lambda, 0.0f);
  const std::vector<float> anchor(L.ewc_anchor().begin(), L.ewc_anchor().end());
  const std::vector<float> fisher(L.ewc_fisher().begin(), L.ewc_fisher().end());
  // Move away from the anchor, so theta - theta* is not zero.
  for (int64_t i = 0; i < np; ++i) L.model().params()[i] += (i % 2 == 0 ? 0.7f : -0.4f);
  Learner plain(L);
  plain.load_ewc(0.0f, nullptr, nullptr, 0);

  const std::vector<float> theta(L.model().params(), L.model().params() + np);
  const float x[4] = {0.5f, -1.0f, 1.5f, 0.25f};
  const auto g = logistic_grad(L.model(), x, 1.0f);
  L.learn_one(x, 1.0f);
  plain.learn_one(x, 1.0f);
  for (int64_t i = 0; i < np; ++i) {
    const double penalty = lambda * fisher[i] * (static_cast<double>(theta[i]) - anchor[i]);
    EXPECT_TRUE(Close(L.model().params()[i], theta[i] - lr * (g[i] + penalty), 1e-5, 1e-6)) << i;
    EXPECT_TRUE(Close(plain.model().params()[i], theta[i] - lr * g[i], 1e-5, 1e-6)) << i;
    // The difference of the two updates is exactly lr × the penalty gradient.
    const double diff =
        (static_cast<double>(plain.model().params()[i]) - L.model().params()[i]) / lr;
    EXPECT_TRUE(Close(diff, penalty, 1e-4, 1e-5)) << i;
    EXPECT_GT(std::fabs(penalty), 1e-3) << "penalty too small to be checked at " << i;
  }

  // Mini-batches: the penalty is added once to the mean gradient.
  const std::vector<float> theta2(L.model().params(), L.model().params() + np);
  std::vector<double> gm(static_cast<size_t>(np), 0.0);
  for (int r = 0; r < 5; ++r) {
    const auto gr = logistic_grad(L.model(), X.data() + r * 4, y[r]);
    for (int64_t i = 0; i < np; ++i) gm[i] += gr[i] / 5.0;
  }
  L.learn_batch(X.data(), y.data(), 5);
  for (int64_t i = 0; i < np; ++i) {
    const double penalty = lambda * fisher[i] * (static_cast<double>(theta2[i]) - anchor[i]);
    EXPECT_TRUE(Close(L.model().params()[i], theta2[i] - lr * (gm[i] + penalty), 1e-5, 1e-6))
        << i;
  }
}

// ---------------------------------------------------------------------------------------------
// Hypergradient descent (Baydin et al. 2018) against a scalar double-precision reference:
// before step t > 0, lr += beta * g_t . u_{t-1} (lr floored at 0), where u is the direction of
// the previous step (SGD: g; Adam: m_hat / (sqrt(v_hat) + eps)); then p -= lr * u_t.

struct Quadratic {  // f(p) = 1/2 sum a_i (p_i - c_i)^2
  std::vector<double> a, c;
  std::vector<double> p0;
};

Quadratic make_quadratic(int64_t n, uint64_t seed) {
  Rng rng(seed);
  Quadratic q;
  for (int64_t i = 0; i < n; ++i) {
    q.a.push_back(rng.uniform(0.5f, 2.0f));
    q.c.push_back(rng.uniform(-1.0f, 1.0f));
    q.p0.push_back(rng.uniform(-1.0f, 1.0f));
  }
  return q;
}

void check_hypergradient(OptimizerKind kind, float lr0, float beta) {
  const int64_t n = 37;  // not a multiple of any vector width
  const Quadratic q = make_quadratic(n, 12);
  OptimizerConfig cfg = optimizer(kind, lr0);
  cfg.hypergradient = beta;
  Optimizer opt(cfg);
  ASSERT_EQ(cfg.slots(), cfg.rule_slots() + 1);
  std::vector<float> p(q.p0.begin(), q.p0.end()), g(n);
  // Reference state.
  std::vector<double> rp = q.p0, m(n, 0.0), v(n, 0.0), u_prev(n, 0.0), rg(n);
  double lr = lr0;
  const double b1 = cfg.beta1, b2 = cfg.beta2, eps = cfg.eps;
  double lr_min = lr0, lr_max = lr0;
  for (int t = 0; t < 50; ++t) {
    for (int64_t i = 0; i < n; ++i) {
      g[i] = static_cast<float>(q.a[i] * (p[i] - q.c[i]));
      rg[i] = q.a[i] * (rp[i] - q.c[i]);
    }
    if (t > 0) {
      double h = 0.0;
      for (int64_t i = 0; i < n; ++i) h += rg[i] * u_prev[i];
      lr = std::max(0.0, lr + beta * h);
    }
    for (int64_t i = 0; i < n; ++i) {
      double u = rg[i];
      if (kind == OptimizerKind::Adam) {
        m[i] = b1 * m[i] + (1 - b1) * rg[i];
        v[i] = b2 * v[i] + (1 - b2) * rg[i] * rg[i];
        const double mh = m[i] / (1 - std::pow(b1, t + 1));
        const double vh = v[i] / (1 - std::pow(b2, t + 1));
        u = mh / (std::sqrt(vh) + eps);
      }
      rp[i] -= lr * u;
      u_prev[i] = u;
    }
    const float used = opt.step(p.data(), g.data(), n);
    ASSERT_TRUE(Close(used, lr, 2e-4, 1e-7)) << "step " << t;
    ASSERT_TRUE(Close(opt.hypergradient_lr(), lr, 2e-4, 1e-7)) << "step " << t;
    for (int64_t i = 0; i < n; ++i) ASSERT_TRUE(Close(p[i], rp[i], 2e-4, 2e-5)) << "step " << t;
    lr_min = std::min(lr_min, lr);
    lr_max = std::max(lr_max, lr);
  }
  // The rate really moved (else the comparison says little about the rule).
  EXPECT_GT(lr_max - lr_min, 0.3 * lr0);
}

TEST(Hypergradient, MatchesTheScalarReferenceForSGD) {
  check_hypergradient(OptimizerKind::SGD, 0.05f, 1e-3f);
}

TEST(Hypergradient, MatchesTheScalarReferenceForAdam) {
  check_hypergradient(OptimizerKind::Adam, 0.02f, 1e-4f);
}

TEST(Hypergradient, OffKeepsTheScheduleAndLrScaleMultipliesTheRate) {
  OptimizerConfig cfg = optimizer(OptimizerKind::SGD, 0.1f);
  Optimizer opt(cfg);
  EXPECT_EQ(cfg.slots(), 0);
  opt.set_lr_scale(0.25f);
  EXPECT_FLOAT_EQ(opt.current_lr(), 0.025f);
  std::vector<float> p = {1.0f, -2.0f, 0.5f}, g = {0.5f, 1.0f, -2.0f};
  for (int t = 0; t < 5; ++t) {
    const std::vector<float> before = p;
    EXPECT_FLOAT_EQ(opt.step(p.data(), g.data(), 3), 0.025f);
    for (int i = 0; i < 3; ++i) EXPECT_FLOAT_EQ(p[i], before[i] - 0.025f * g[i]);
  }
  EXPECT_THROW(opt.set_lr_scale(-1.0f), std::invalid_argument);
  EXPECT_THROW(opt.set_lr_scale(std::nanf("")), std::invalid_argument);
  OptimizerConfig bad = cfg;
  bad.hypergradient = -1e-3f;
  EXPECT_THROW(bad.validate(), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// StateDict round trips

TEST(LearnerState, RoundTripContinuesBitIdentically) {
  OptimizerConfig opt = optimizer(OptimizerKind::Adam, 0.01f);
  opt.hypergradient = 1e-5f;
  opt.clip_norm = 5.0f;
  Learner a = mlp_learner(6, 12, opt, /*standardize=*/true, 3);
  const Stream s = flip_stream(900, 6, 100000, 0.1, 31);
  for (int64_t i = 0; i < 300; ++i) a.learn_one(&s.X[i * 6], s.y[i]);
  a.consolidate(s.X.data(), s.y.data(), 50, 0.5f, 0.9f);
  a.optimizer().set_lr_scale(0.7f);
  for (int64_t i = 300; i < 400; ++i) a.learn_one(&s.X[i * 6], s.y[i]);

  StateDict st;
  save_state(a, st, "l.");
  Learner b = ducklearn::load_learner(st, "l.");
  StateDict st2;
  save_state(b, st2, "l.");
  EXPECT_TRUE(SameState(st, st2));
  EXPECT_EQ(b.examples_seen(), a.examples_seen());
  EXPECT_EQ(b.optimizer().lr_scale(), 0.7f);

  std::vector<float> pa(1), pb(1);
  for (int64_t i = 400; i < 700; ++i) {
    const double la = a.step(&s.X[i * 6], s.y[i], pa.data());
    const double lb = b.step(&s.X[i * 6], s.y[i], pb.data());
    ASSERT_EQ(la, lb) << i;
    ASSERT_EQ(pa[0], pb[0]) << i;
  }
  a.learn_batch(&s.X[700 * 6], &s.y[700], 32);
  b.learn_batch(&s.X[700 * 6], &s.y[700], 32);
  a.fit_epoch(s.X.data(), s.y.data(), 200, 16, 5);
  b.fit_epoch(s.X.data(), s.y.data(), 200, 16, 5);
  StateDict ea, eb;
  save_state(a, ea, "");
  save_state(b, eb, "");
  EXPECT_TRUE(SameState(ea, eb));
}

TEST(LearnerState, RoundTripKeepsTheAverage) {
  Learner a = mlp_learner(6, 12, optimizer(OptimizerKind::Adam, 0.01f), /*standardize=*/true, 4);
  const Stream s = flip_stream(900, 6, 100000, 0.1, 32);
  for (int64_t i = 0; i < 100; ++i) a.learn_one(&s.X[i * 6], s.y[i]);
  a.set_averaging(0.99f);
  for (int64_t i = 100; i < 300; ++i) a.learn_one(&s.X[i * 6], s.y[i]);
  StateDict st;
  save_state(a, st, "l.");
  Learner b = ducklearn::load_learner(st, "l.");
  EXPECT_EQ(b.averaging(), 0.99f);
  EXPECT_EQ(b.average_steps(), a.average_steps());
  StateDict st2;
  save_state(b, st2, "l.");
  EXPECT_TRUE(SameState(st, st2));
  std::vector<float> pa(1), pb(1);
  for (int64_t i = 300; i < 600; ++i) {
    ASSERT_EQ(a.step(&s.X[i * 6], s.y[i], pa.data()), b.step(&s.X[i * 6], s.y[i], pb.data()));
    ASSERT_EQ(pa[0], pb[0]) << i;
  }
  // Without averaging nothing about it is saved, and a load leaves it off.
  Learner c = mlp_learner(6, 12, optimizer(OptimizerKind::Adam, 0.01f), true, 4);
  StateDict plain;
  save_state(c, plain, "l.");
  EXPECT_FALSE(plain.has("l.average.decay"));
  EXPECT_EQ(ducklearn::load_learner(plain, "l.").averaging(), 0.0f);
}

/** Saves `a` (already fed s[0, i)), then continues it, a reloaded copy and a copy-constructed
 *  one on the rest of the stream: all three must agree bit for bit, outputs and final state. */
void continue_identically(AdaptiveLearner& a, const Stream& s, int64_t i,
                          ducklearn::AdaptationStats* final_stats) {
  const int64_t d = s.d, k = a.active().n_outputs();
  StateDict st;
  a.save_state(st);
  const std::unique_ptr<AdaptiveLearner> b = AdaptiveLearner::load_state(st);
  AdaptiveLearner c(a);
  ASSERT_EQ(b->background() != nullptr, a.background() != nullptr);
  StateDict again;
  b->save_state(again);
  ASSERT_TRUE(SameState(st, again));

  const int64_t chunk = 61;
  std::vector<float> pa(chunk * k), pb(chunk * k), pc(chunk * k);
  std::vector<double> la(chunk), lb(chunk), lc(chunk);
  for (; i < s.n; i += chunk) {
    const int64_t m = std::min(chunk, s.n - i);
    a.learn(&s.X[i * d], &s.y[i], m, pa.data(), la.data());
    b->learn(&s.X[i * d], &s.y[i], m, pb.data(), lb.data());
    c.learn(&s.X[i * d], &s.y[i], m, pc.data(), lc.data());
    ASSERT_TRUE(same_bits(pa, pb)) << "predictions differ after reload, from example " << i;
    ASSERT_TRUE(same_bits(la, lb)) << "losses differ after reload, from example " << i;
    ASSERT_TRUE(same_bits(pa, pc)) << "predictions differ in the copy, from example " << i;
    ASSERT_TRUE(same_bits(la, lc));
  }
  StateDict ea, eb, ec;
  a.save_state(ea);
  b->save_state(eb);
  c.save_state(ec);
  EXPECT_TRUE(SameState(ea, eb));
  EXPECT_TRUE(SameState(ea, ec));
  *final_stats = a.stats();
}

/** Runs until a challenger has raced for a few examples, then continue_identically(). */
void check_adaptive_round_trip(const Learner& base, const AdaptationConfig& cfg, const Stream& s,
                               ducklearn::AdaptationStats* final_stats) {
  auto owner = std::make_unique<AdaptiveLearner>(base, cfg, 77);
  const int64_t d = s.d;
  int64_t i = 0;
  while (i < s.n && owner->background() == nullptr) {
    owner->learn(&s.X[i * d], &s.y[i], 1, nullptr, nullptr);
    ++i;
  }
  ASSERT_NE(owner->background(), nullptr) << "no challenger ever started";
  // A few more examples, so the race has a history (ages, smoothed losses, the Welford sums of
  // the paired test) to carry over; step back if the challenger wins meanwhile.
  while (owner->stats().background_age < 6) {
    auto next = std::make_unique<AdaptiveLearner>(*owner);
    next->learn(&s.X[i * d], &s.y[i], 1, nullptr, nullptr);
    if (next->background() == nullptr) break;
    owner = std::move(next);
    ++i;
  }
  ASSERT_GE(owner->stats().background_age, 2);
  ASSERT_NE(owner->stats().race_diff_m2, 0.0);
  if (owner->replay() != nullptr) {
    ASSERT_GT(owner->replay()->size(), 0);
  }
  continue_identically(*owner, s, i, final_stats);
}

TEST(AdaptiveLearner, AveragingRestartsAtEachDetectedChangeAndChallengersAverageToo) {
  AdaptationConfig cfg;
  cfg.detector = DetectorKind::PageHinkley;
  cfg.ph_threshold = 5.0;
  cfg.ph_min_instances = 10;
  cfg.background_grace = 3;
  cfg.swap_z = 0.0f;  // the smoothed loss alone decides: swaps happen, and are replayed
  cfg.background_patience = 300;
  cfg.average_decay = 0.99f;
  const Stream s = flip_stream(3000, 3, 1500, 0.05, 6);
  AdaptiveLearner a(linear_learner(3, optimizer(OptimizerKind::AdaGrad, 0.5f)), cfg, 5);
  EXPECT_EQ(a.active().averaging(), 0.99f);
  int64_t i = 0;
  while (i < s.n && a.stats().drifts == 0) {
    a.learn(&s.X[i * 3], &s.y[i], 1, nullptr, nullptr);
    ++i;
  }
  ASSERT_GE(a.stats().drifts, 1);
  // The average restarted at the detection: it counts only the examples since.
  EXPECT_EQ(a.active().average_steps(), 0);
  ASSERT_NE(a.background(), nullptr);
  EXPECT_EQ(a.background()->averaging(), 0.99f);
  ducklearn::AdaptationStats st;
  check_adaptive_round_trip(linear_learner(3, optimizer(OptimizerKind::AdaGrad, 0.5f)), cfg, s,
                            &st);
  if (HasFatalFailure()) return;
  EXPECT_GE(st.swaps, 1);
}

TEST(AdaptiveState, WithoutChallengersNoBlueprintIsKeptAndTheRoundTripHolds) {
  AdaptationConfig cfg;
  cfg.detector = DetectorKind::PageHinkley;
  cfg.ph_threshold = 5.0;
  cfg.ph_min_instances = 10;
  cfg.background = false;
  cfg.drift_lr_boost = 2.0f;
  cfg.average_decay = 0.99f;
  const Stream s = flip_stream(3000, 3, 1500, 0.05, 9);
  AdaptiveLearner a(mlp_learner(3, 8, optimizer(OptimizerKind::Adam, 0.01f), true, 2), cfg, 4);
  a.learn(s.X.data(), s.y.data(), 1600, nullptr, nullptr);
  ASSERT_GE(a.stats().drifts, 1);
  StateDict st;
  a.save_state(st);
  EXPECT_FALSE(st.has("blueprint.arch.n_layers"));  // nothing would ever read it
  ducklearn::AdaptationStats final_stats;
  continue_identically(a, s, 1600, &final_stats);
}

// Saved with no race on, but with a cut learning rate, and again just after a swap (the
// cooling period that keeps detections from spawning challengers depends on when it was).
TEST(AdaptiveState, RoundTripAfterAPlateauCutAndRightAfterASwap) {
  AdaptationConfig cfg;
  cfg.detector = DetectorKind::PageHinkley;
  cfg.ph_threshold = 5.0;
  cfg.ph_min_instances = 10;
  cfg.background_grace = 3;
  cfg.swap_z = 2.0f;
  cfg.plateau_factor = 0.5f;
  cfg.plateau_every = 50;
  cfg.plateau_patience = 1;
  const Stream s = flip_stream(3000, 3, 1500, 0.1, 6);
  const Learner base = linear_learner(3, optimizer(OptimizerKind::AdaGrad, 0.5f));
  for (int point = 0; point < 2; ++point) {
    AdaptiveLearner a(base, cfg, 5);
    int64_t i = 0;
    auto ready = [&] {
      return point == 0 ? a.stats().lr_scale < 1.0f && a.background() == nullptr
                        : a.stats().swaps >= 1 && a.stats().examples - a.stats().last_swap_at >= 3;
    };
    while (i < s.n && !ready()) {
      a.learn(&s.X[i * 3], &s.y[i], 1, nullptr, nullptr);
      ++i;
    }
    ASSERT_TRUE(ready()) << "save point " << point << " never reached";
    ducklearn::AdaptationStats st;
    continue_identically(a, s, i, &st);
    if (HasFatalFailure()) return;
  }
}

TEST(AdaptiveState, RoundTripWithADWINChallengerAndReservoirReplay) {
  AdaptationConfig cfg;
  cfg.detector = DetectorKind::ADWIN;
  cfg.replay_capacity = 128;
  cfg.replay_every = 2;
  cfg.replay_batch = 4;
  cfg.drift_lr_boost = 2.0f;
  cfg.boost_decay = 300;
  cfg.plateau_factor = 0.5f;
  cfg.plateau_every = 200;
  cfg.plateau_patience = 2;
  cfg.background_epochs = 2;
  const Stream s = flip_stream(4000, 3, 1500, 0.05, 1);
  ducklearn::AdaptationStats st;
  check_adaptive_round_trip(linear_learner(3, optimizer(OptimizerKind::AdaGrad, 0.5f)), cfg, s,
                            &st);
  if (HasFatalFailure()) return;
  // The continuation crossed the interesting paths, so they were compared too.
  EXPECT_GE(st.swaps, 1);
  EXPECT_GT(st.replay_updates, 0);
  EXPECT_GE(st.drifts, 1);
}

TEST(AdaptiveState, RoundTripWithPageHinkleyPrioritizedReplayAndEWC) {
  AdaptationConfig cfg;
  cfg.detector = DetectorKind::PageHinkley;
  cfg.ph_threshold = 5.0;
  cfg.ph_min_instances = 10;
  cfg.background_grace = 3;
  cfg.swap_z = 2.0f;
  cfg.replay_capacity = 64;
  cfg.replay_prioritized = true;
  cfg.replay_every = 3;
  cfg.consolidate_every = 300;
  cfg.consolidate_samples = 32;
  cfg.ewc_lambda = 0.5f;
  OptimizerConfig opt = optimizer(OptimizerKind::Adam, 0.01f);
  opt.hypergradient = 1e-6f;
  const Stream s = flip_stream(3000, 3, 1200, 0.05, 2);
  ducklearn::AdaptationStats st;
  check_adaptive_round_trip(mlp_learner(3, 8, opt, /*standardize=*/true, 5), cfg, s, &st);
  if (HasFatalFailure()) return;
  EXPECT_GE(st.swaps, 1);
  EXPECT_GE(st.consolidations, 1);
}

TEST(AdaptiveState, RoundTripWithFifoReplayKeptOverSwaps) {
  AdaptationConfig cfg;
  cfg.detector = DetectorKind::PageHinkley;
  cfg.ph_threshold = 5.0;
  cfg.ph_min_instances = 10;
  cfg.replay_capacity = 50;
  cfg.replay_recent = true;
  cfg.flush_replay_on_swap = false;
  OptimizerConfig opt = optimizer(OptimizerKind::SGD, 0.2f);
  opt.momentum = 0.5f;
  const Stream s = flip_stream(3000, 3, 1000, 0.05, 3);
  ducklearn::AdaptationStats st;
  check_adaptive_round_trip(linear_learner(3, opt, /*standardize=*/true), cfg, s, &st);
  if (HasFatalFailure()) return;
  EXPECT_GT(st.replay_updates, 0);
}

// Every bad field is refused by validate() and by the constructor, with its name in the message
// (so Python's ValueError names it too), before any part of the learner is built from it.
TEST(AdaptationConfig, BadFieldsThrowNamingTheField) {
  struct Case {
    const char* field;
    std::function<void(AdaptationConfig&)> set;
  };
  const std::vector<Case> cases = {
      {"adwin_delta", [](AdaptationConfig& c) { c.adwin_delta = 1.0; }},
      {"ph_delta", [](AdaptationConfig& c) { c.ph_delta = -0.1; }},
      {"ph_alpha", [](AdaptationConfig& c) { c.ph_alpha = 1.5; }},
      {"ph_threshold", [](AdaptationConfig& c) { c.ph_threshold = 0.0; }},
      {"plateau_patience", [](AdaptationConfig& c) { c.plateau_patience = 0; }},
      {"plateau_min_delta", [](AdaptationConfig& c) { c.plateau_min_delta = -1.0f; }},
      {"replay_alpha", [](AdaptationConfig& c) { c.replay_alpha = -0.5f; }},
      {"background_patience", [](AdaptationConfig& c) { c.background_patience = 10; }},
      {"swap_z", [](AdaptationConfig& c) { c.swap_z = std::nanf(""); }},
      {"consolidate_every", [](AdaptationConfig& c) { c.consolidate_every = 100; }},
      {"update_batch", [](AdaptationConfig& c) { c.update_batch = 0; }},
      {"update_batch", [](AdaptationConfig& c) { c.update_batch = 1 << 20; }},
      {"average_decay", [](AdaptationConfig& c) { c.average_decay = 1.0f; }},
      {"average_decay", [](AdaptationConfig& c) { c.average_decay = -0.1f; }},
      {"average_decay", [](AdaptationConfig& c) { c.average_decay = std::nanf(""); }},
  };
  for (const Case& c : cases) {
    AdaptationConfig cfg;
    cfg.detector = DetectorKind::PageHinkley;
    c.set(cfg);
    for (int via_ctor = 0; via_ctor < 2; ++via_ctor) {
      try {
        if (via_ctor) {
          AdaptiveLearner a(linear_learner(3, optimizer(OptimizerKind::SGD, 0.1f)), cfg, 0);
        } else {
          cfg.validate();
        }
        ADD_FAILURE() << c.field << " accepted";
      } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find(c.field), std::string::npos)
            << c.field << ": " << e.what();
      }
    }
  }
}

/** A saved AdaptiveLearner (trained for n examples) to corrupt. */
StateDict saved_adaptive(DetectorKind detector, int64_t n) {
  AdaptationConfig cfg;
  cfg.detector = detector;
  cfg.replay_capacity = 32;
  cfg.consolidate_every = 200;
  cfg.ewc_lambda = 1.0f;
  AdaptiveLearner a(mlp_learner(3, 4, optimizer(OptimizerKind::Adam, 0.01f), true, 1), cfg, 3);
  const Stream s = flip_stream(n, 3, n / 2, 0.1, 4);
  a.learn(s.X.data(), s.y.data(), n, nullptr, nullptr);
  StateDict st;
  a.save_state(st);
  return st;
}

/** A saved AdaptiveLearner on d inputs, taken while a challenger races. */
StateDict saved_racing(int64_t d) {
  AdaptationConfig cfg;
  cfg.detector = DetectorKind::PageHinkley;
  cfg.ph_threshold = 5.0;
  cfg.ph_min_instances = 10;
  AdaptiveLearner a(linear_learner(d, optimizer(OptimizerKind::AdaGrad, 0.5f)), cfg, 1);
  const Stream s = flip_stream(2000, d, 1000, 0.0, 8);
  for (int64_t i = 0; i < s.n && a.background() == nullptr; ++i) {
    a.learn(&s.X[i * d], &s.y[i], 1, nullptr, nullptr);
  }
  StateDict st;
  if (a.background() != nullptr) a.save_state(st);
  return st;
}

TEST(AdaptiveState, MalformedStateThrowsInvalidArgument) {
  const StateDict ph = saved_adaptive(DetectorKind::PageHinkley, 800);
  const StateDict adwin = saved_adaptive(DetectorKind::ADWIN, 800);
  ASSERT_NO_THROW(AdaptiveLearner::load_state(ph));
  ASSERT_NO_THROW(AdaptiveLearner::load_state(adwin));
  ASSERT_FALSE(ph.f32.at("active.ewc.fisher").empty()) << "no consolidation happened";
  ASSERT_GT(adwin.integer("adwin.rows"), 1);

  struct Case {
    const char* what;
    bool use_adwin;
    std::function<void(StateDict&)> mutate;
  };
  const std::vector<Case> cases = {
      {"missing params", false, [](StateDict& s) { s.f32.erase("active.params"); }},
      {"short params", false, [](StateDict& s) { s.f32["active.params"].pop_back(); }},
      {"format version 2", false, [](StateDict& s) { s.set_int("adaptive.format", 2); }},
      {"format version missing", false, [](StateDict& s) { s.numbers.erase("adaptive.format"); }},
      {"optimizer state size", false,
       [](StateDict& s) { s.f32["active.optimizer.state"].pop_back(); }},
      {"scaler size", false, [](StateDict& s) { s.f64["active.scaler.mean"].pop_back(); }},
      {"EWC fisher size", false, [](StateDict& s) { s.f32["active.ewc.fisher"].pop_back(); }},
      {"EWC anchor vs model", false,
       [](StateDict& s) {
         s.f32["active.ewc.anchor"].push_back(0.0f);
         s.f32["active.ewc.fisher"].push_back(0.0f);
       }},
      {"unknown optimizer", false,
       [](StateDict& s) { s.set_str("active.optimizer.kind", "nadam"); }},
      {"unknown loss", false, [](StateDict& s) { s.set_str("active.loss.kind", "hinge"); }},
      {"unknown activation", false,
       [](StateDict& s) { s.set_str("active.arch.activation.0", "swish"); }},
      {"input width vs params", false, [](StateDict& s) { s.set_int("active.arch.n_inputs", 4); }},
      {"replay size > capacity", false, [](StateDict& s) { s.set_int("replay.size", 33); }},
      {"replay rows size", false, [](StateDict& s) { s.f32["replay.rows"].pop_back(); }},
      {"replay rng not hex", false,
       [](StateDict& s) { s.set_str("replay.rng", "zzzzzzzzzzzzzzzz"); }},
      {"replay rng short", false, [](StateDict& s) { s.set_str("replay.rng", "12"); }},
      {"recent.next out of range", false,
       [](StateDict& s) { s.set_int("recent.next", s.integer("adaptive.config.recent_window")); }},
      {"recent.x size", false, [](StateDict& s) { s.f32["recent.x"].pop_back(); }},
      {"unknown detector", false, [](StateDict& s) { s.set_int("adaptive.config.detector", 7); }},
      {"non-integer window", false,
       [](StateDict& s) { s.set("adaptive.config.recent_window", 1.5); }},
      {"invalid config value", false, [](StateDict& s) { s.set("adaptive.config.swap_z", -1.0); }},
      {"missing detector state", false, [](StateDict& s) { s.numbers.erase("page_hinkley.n"); }},
      {"background flagged but absent", false,
       [](StateDict& s) { s.set("adaptive.has_background", 1.0); }},
      {"ADWIN odd row", true, [](StateDict& s) { s.f64["adwin.row.0"].push_back(0.5); }},
      {"ADWIN overfull row", true,
       [](StateDict& s) {
         auto& r = s.f64["adwin.row.0"];
         while (r.size() < 16) r.push_back(0.0);
       }},
      {"ADWIN width mismatch", true,
       [](StateDict& s) { s.set_int("adwin.width", s.integer("adwin.width") + 1); }},
      {"ADWIN row count", true, [](StateDict& s) { s.set_int("adwin.rows", 65); }},
      {"ADWIN missing row", true, [](StateDict& s) { s.f64.erase("adwin.row.1"); }},
  };
  for (const Case& c : cases) {
    StateDict bad = c.use_adwin ? adwin : ph;
    ASSERT_NO_FATAL_FAILURE(c.mutate(bad));
    EXPECT_THROW(AdaptiveLearner::load_state(bad), std::invalid_argument) << c.what;
  }
  // A challenger whose shape differs from the blueprint's would read (and write) past the
  // rows and outputs sized for the blueprint.
  const StateDict racing3 = saved_racing(3), racing5 = saved_racing(5);
  ASSERT_FALSE(racing3.numbers.empty());
  ASSERT_FALSE(racing5.numbers.empty());
  ASSERT_NO_THROW(AdaptiveLearner::load_state(racing3));
  StateDict mixed = racing3;
  const std::string bg = "background.";
  for (const auto& [key, v] : racing5.f32) {
    if (key.rfind(bg, 0) == 0) mixed.f32[key] = v;
  }
  for (const auto& [key, v] : racing5.f64) {
    if (key.rfind(bg, 0) == 0) mixed.f64[key] = v;
  }
  for (const auto& [key, v] : racing5.numbers) {
    if (key.rfind(bg, 0) == 0) mixed.numbers[key] = v;
  }
  for (const auto& [key, v] : racing5.strings) {
    if (key.rfind(bg, 0) == 0) mixed.strings[key] = v;
  }
  EXPECT_THROW(AdaptiveLearner::load_state(mixed), std::invalid_argument)
      << "challenger with 5 inputs accepted next to a 3-input blueprint";

  // The learner-level loader on its own.
  StateDict lone;
  save_state(mlp_learner(3, 4, optimizer(OptimizerKind::SGD, 0.1f), false, 2), lone, "");
  ASSERT_NO_THROW(ducklearn::load_learner(lone, ""));
  StateDict bad = lone;
  bad.f32.erase("params");
  EXPECT_THROW(ducklearn::load_learner(bad, ""), std::invalid_argument);
  bad = lone;
  bad.set_int("optimizer.n", 7);
  EXPECT_THROW(ducklearn::load_learner(bad, ""), std::invalid_argument);
  bad = lone;
  bad.set_int("arch.n_layers", 0);
  EXPECT_THROW(ducklearn::load_learner(bad, ""), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// Micro-batched test-then-train (update_batch > 1)

std::vector<float> params_of(const Learner& l) {
  return {l.model().params(), l.model().params() + l.model().n_params()};
}

// A block is: the scaler takes in its rows, every row is predicted with the parameters as they
// were, then one step on the mean gradient, i.e. learn_batch without touching the scaler again.
// The parameters must match that reference bit for bit (same rows, same gradient, same step);
// predictions come from the training forward pass, so they match predict() to rounding.
TEST(MicroBatch, StepBatchIsPredictThenOneMeanGradientStep) {
  const Stream s = flip_stream(203, 5, 1000, 0.1, 11);
  const Learner base = mlp_learner(5, 16, optimizer(OptimizerKind::Adam, 0.01f), true, 3);
  Learner a(base), ref(base);
  Workspace ws;
  std::vector<float> pa(8), pr(8);
  std::vector<double> la(8);
  for (int64_t i = 0; i < s.n; i += 8) {
    const int64_t m = std::min<int64_t>(8, s.n - i);  // 203 = 25 × 8 + a block of 3
    a.step_batch(&s.X[i * 5], &s.y[i], m, pa.data(), la.data());
    ref.scaler()->update(&s.X[i * 5], m);
    ref.predict(&s.X[i * 5], m, pr.data(), ws);
    ref.learn_batch(&s.X[i * 5], &s.y[i], m, /*update_scaler=*/false);
    for (int64_t r = 0; r < m; ++r) {
      ASSERT_NEAR(pa[r], pr[r], 1e-5) << "row " << i + r;
      const double p = std::clamp<double>(pr[r], 1e-7, 1.0 - 1e-7);
      const double want = s.y[i + r] > 0.5f ? -std::log(p) : -std::log(1.0 - p);
      ASSERT_NEAR(la[r], want, 1e-4) << "loss of row " << i + r;
    }
    ASSERT_TRUE(same_bits(params_of(a), params_of(ref))) << "parameters differ after row " << i;
  }
  EXPECT_EQ(a.examples_seen(), s.n);
}

// update_batch = 1 is the per-example loop: the same predictions as Learner::step, bit for bit.
TEST(MicroBatch, UpdateBatchOneIsThePerExampleLoop) {
  const Stream s = flip_stream(500, 4, 1000, 0.1, 12);
  const Learner base = mlp_learner(4, 8, optimizer(OptimizerKind::Adam, 0.01f), true, 4);
  AdaptationConfig cfg;
  cfg.detector = DetectorKind::None;
  cfg.background = false;
  cfg.update_batch = 1;
  AdaptiveLearner a(base, cfg, 0);
  Learner ref(base);
  std::vector<float> pa(s.n), pr(s.n);
  a.learn(s.X.data(), s.y.data(), s.n, pa.data(), nullptr);
  for (int64_t i = 0; i < s.n; ++i) ref.step(&s.X[i * 4], s.y[i], &pr[i]);
  EXPECT_TRUE(same_bits(pa, pr));
  EXPECT_TRUE(same_bits(params_of(a.active()), params_of(ref)));
}

// With k = 8 the adaptive learner is that reference block after block, whatever the chunking of
// the calls (a call's last block is shorter), and every prediction is made before its label
// is learned: on a stream of one repeated example, the first block predicts the untrained
// model's output for all 8 rows.
TEST(MicroBatch, AdaptiveBlocksMatchTheBatchReferenceAndPredictBeforeLearning) {
  const Stream s = flip_stream(300, 4, 1000, 0.1, 13);
  const Learner base = mlp_learner(4, 8, optimizer(OptimizerKind::Adam, 0.05f), true, 5);
  AdaptationConfig cfg;
  cfg.detector = DetectorKind::None;
  cfg.background = false;
  cfg.update_batch = 8;
  AdaptiveLearner a(base, cfg, 0);
  Learner ref(base);
  std::vector<float> pa(s.n), pr(s.n);
  std::vector<double> la(s.n), lr(s.n);
  // Calls of 37 rows: blocks 8, 8, 8, 8, 5 per call.
  for (int64_t i = 0; i < s.n; i += 37) {
    const int64_t m = std::min<int64_t>(37, s.n - i);
    a.learn(&s.X[i * 4], &s.y[i], m, &pa[i], &la[i]);
    for (int64_t b = i; b < i + m; b += 8) {
      const int64_t r = std::min<int64_t>(8, i + m - b);
      ref.step_batch(&s.X[b * 4], &s.y[b], r, &pr[b], &lr[b]);
    }
  }
  EXPECT_TRUE(same_bits(pa, pr));
  EXPECT_TRUE(same_bits(la, lr));
  EXPECT_TRUE(same_bits(params_of(a.active()), params_of(ref)));
  EXPECT_EQ(a.stats().examples, s.n);

  AdaptiveLearner fresh(base, cfg, 0);
  std::vector<float> x(8 * 4), y(8, 1.0f), p(8);
  for (int64_t r = 0; r < 8; ++r) std::copy(&s.X[0], &s.X[4], &x[r * 4]);
  fresh.learn(x.data(), y.data(), 8, p.data(), nullptr);
  for (int64_t r = 1; r < 8; ++r) EXPECT_EQ(p[r], p[0]) << "row " << r << " saw an update";
  fresh.learn(x.data(), y.data(), 1, p.data() + 1, nullptr);
  EXPECT_GT(p[1], p[0]) << "the block's step did not move the prediction towards the label";
}

// Drift handling still works in blocks: the detector fires soon after an abrupt flip, a
// challenger takes over, and the learner is accurate on the new concept.
TEST(MicroBatch, DetectsAndRecoversFromAnAbruptFlipWithBlocksOfEight) {
  AdaptationConfig cfg;
  cfg.detector = DetectorKind::PageHinkley;
  cfg.ph_threshold = 5.0;
  cfg.ph_min_instances = 10;
  cfg.background_grace = 3;
  cfg.swap_z = 2.0f;
  cfg.update_batch = 8;
  const Stream s = flip_stream(4000, 3, 2000, 0.0, 14);
  AdaptiveLearner a(linear_learner(3, optimizer(OptimizerKind::AdaGrad, 0.5f)), cfg, 1);
  std::vector<float> p(s.n);
  a.learn(s.X.data(), s.y.data(), 2000, p.data(), nullptr);
  ASSERT_EQ(a.stats().swaps, 0);
  a.learn(&s.X[2000 * 3], &s.y[2000], 2000, &p[2000], nullptr);
  EXPECT_GE(a.stats().drifts, 1);
  EXPECT_GE(a.stats().last_drift_at, 2000);
  EXPECT_LT(a.stats().last_drift_at, 2100) << "detection too late";
  EXPECT_GE(a.stats().swaps, 1);
  int correct = 0;
  for (int64_t i = 3500; i < 4000; ++i) correct += (p[i] > 0.5f) == (s.y[i] > 0.5f);
  EXPECT_GT(correct, 475) << "not recovered on the new concept";
}

// Checkpoints taken mid-race with k = 8 continue bit for bit, in calls that end on partial
// blocks (61 rows), with replay, a rate boost and a plateau cut crossing the blocks.
TEST(MicroBatch, RoundTripMidRaceContinuesIdentically) {
  AdaptationConfig cfg;
  cfg.detector = DetectorKind::ADWIN;
  cfg.replay_capacity = 128;
  cfg.replay_every = 3;
  cfg.replay_batch = 4;
  cfg.drift_lr_boost = 2.0f;
  cfg.boost_decay = 300;
  cfg.plateau_factor = 0.5f;
  cfg.plateau_every = 200;
  cfg.plateau_patience = 2;
  cfg.update_batch = 8;
  const Stream s = flip_stream(4000, 3, 1500, 0.05, 1);
  ducklearn::AdaptationStats st;
  check_adaptive_round_trip(mlp_learner(3, 8, optimizer(OptimizerKind::Adam, 0.02f), true, 6),
                            cfg, s, &st);
  if (HasFatalFailure()) return;
  EXPECT_GE(st.drifts, 1);
  EXPECT_GT(st.replay_updates, 0);
  StateDict saved;
  AdaptiveLearner(linear_learner(3, optimizer(OptimizerKind::SGD, 0.1f)), cfg, 0)
      .save_state(saved);
  EXPECT_EQ(AdaptiveLearner::load_state(saved)->config().update_batch, 8);
  // A state saved before micro-batching existed has no such key: one step per example.
  saved.numbers.erase("adaptive.config.update_batch");
  EXPECT_EQ(AdaptiveLearner::load_state(saved)->config().update_batch, 1);
}

}  // namespace
