// Optimizers over 100 steps against scalar double references of the published update rules,
// clipping, schedules (with warmup), state save/load, and the plateau detector.
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "ducklearn/optim/optimizer.hpp"
#include "ducklearn/optim/plateau.hpp"
#include "ducklearn/optim/schedule.hpp"
#include "test_util.hpp"

namespace {

using namespace dltest;
using ducklearn::Optimizer;
using ducklearn::OptimizerConfig;
using ducklearn::OptimizerKind;
using ducklearn::PlateauDetector;
using ducklearn::Schedule;
using ducklearn::ScheduleKind;

constexpr double kPi = 3.14159265358979323846;

/** Learning rate of step t written from the schedule formulas, in double. */
double lr_ref(const Schedule& s, int64_t t) {
  auto base = [&](int64_t u) -> double {
    switch (s.kind) {
      case ScheduleKind::Step: return s.lr * std::pow(double(s.gamma), double(u / s.step_size));
      case ScheduleKind::Exponential: return s.lr * std::pow(double(s.gamma), double(u));
      case ScheduleKind::InverseScaling: return s.lr / std::pow(1.0 + u, double(s.power));
      case ScheduleKind::Cosine: {
        const double frac = double(std::min(u, s.t_max)) / double(s.t_max);
        return s.min_lr + (s.lr - s.min_lr) * 0.5 * (1.0 + std::cos(kPi * frac));
      }
      default: return s.lr;
    }
  };
  if (t < s.warmup_steps) {
    return base(0) * (s.warmup_start + (1.0 - s.warmup_start) * double(t) / s.warmup_steps);
  }
  return base(t - s.warmup_steps);
}

/**
 * The published rules, one parameter vector, double precision:
 *   SGD with momentum mu (PyTorch / Sutskever et al. 2013): v = mu v + g; p -= lr v;
 *     Nesterov: p -= lr (g + mu v).
 *   AdaGrad (Duchi et al. 2011): s += g^2; p -= lr g / (sqrt(s) + eps).
 *   RMSProp (Hinton 2012): s = rho s + (1 - rho) g^2; p -= lr g / (sqrt(s) + eps).
 *   Adam (Kingma & Ba 2015, Alg. 1): m, v moments; m^ = m / (1 - b1^t), v^ = v / (1 - b2^t);
 *     p -= lr m^ / (sqrt(v^) + eps).
 *   AdamW (Loshchilov & Hutter 2019, PyTorch form): p -= lr wd p, then the Adam step.
 * Coupled L2 adds l2 p to g; clipping scales g by clip / ||g|| when ||g|| > clip.
 */
class ReferenceOptimizer {
 public:
  ReferenceOptimizer(const OptimizerConfig& c, const std::vector<float>& p0)
      : c_(c), p_(p0.begin(), p0.end()), s1_(p0.size(), 0.0), s2_(p0.size(), 0.0) {
    if (c.kind == OptimizerKind::AdaGrad) std::fill(s1_.begin(), s1_.end(), c.initial_accumulator);
  }

  void step(const std::vector<float>& graw) {
    ++t_;
    const double lr = lr_ref(c_.schedule, t_ - 1);
    double clip = 1.0;
    if (c_.clip_norm > 0.0f) {
      double ss = 0.0;
      for (float g : graw) ss += double(g) * g;
      const double norm = std::sqrt(ss);
      if (norm > c_.clip_norm) clip = c_.clip_norm / norm;
    }
    for (size_t i = 0; i < p_.size(); ++i) {
      const double g = graw[i] * clip + c_.l2 * p_[i];
      double upd = 0.0;
      switch (c_.kind) {
        case OptimizerKind::SGD:
          if (c_.momentum > 0.0f) {
            s1_[i] = c_.momentum * s1_[i] + g;
            upd = c_.nesterov ? g + c_.momentum * s1_[i] : s1_[i];
          } else {
            upd = g;
          }
          break;
        case OptimizerKind::AdaGrad:
          s1_[i] += g * g;
          upd = g / (std::sqrt(s1_[i]) + c_.eps);
          break;
        case OptimizerKind::RMSProp:
          s1_[i] = c_.rho * s1_[i] + (1.0 - c_.rho) * g * g;
          upd = g / (std::sqrt(s1_[i]) + c_.eps);
          break;
        default: {
          s1_[i] = c_.beta1 * s1_[i] + (1.0 - c_.beta1) * g;
          s2_[i] = c_.beta2 * s2_[i] + (1.0 - c_.beta2) * g * g;
          const double mhat = s1_[i] / (1.0 - std::pow(double(c_.beta1), double(t_)));
          const double vhat = s2_[i] / (1.0 - std::pow(double(c_.beta2), double(t_)));
          upd = mhat / (std::sqrt(vhat) + c_.eps);
        }
      }
      p_[i] = p_[i] - lr * c_.weight_decay * p_[i] - lr * upd;
    }
  }
  const std::vector<double>& params() const { return p_; }

 private:
  OptimizerConfig c_;
  std::vector<double> p_, s1_, s2_;
  int64_t t_ = 0;
};

struct OptCase {
  const char* name;
  OptimizerConfig config;
};

OptimizerConfig make(OptimizerKind kind, float lr) {
  OptimizerConfig c;
  c.kind = kind;
  c.schedule.lr = lr;
  return c;
}

std::vector<OptCase> optimizer_cases() {
  std::vector<OptCase> v;
  v.push_back({"sgd", make(OptimizerKind::SGD, 0.05f)});
  auto mom = make(OptimizerKind::SGD, 0.02f);
  mom.momentum = 0.9f;
  v.push_back({"sgd_momentum", mom});
  auto nest = mom;
  nest.nesterov = true;
  v.push_back({"sgd_nesterov", nest});
  auto sgd_l2 = make(OptimizerKind::SGD, 0.05f);
  sgd_l2.l2 = 0.1f;
  sgd_l2.schedule.kind = ScheduleKind::InverseScaling;
  v.push_back({"sgd_l2_invscaling", sgd_l2});
  auto ada = make(OptimizerKind::AdaGrad, 0.1f);
  ada.initial_accumulator = 0.1f;
  v.push_back({"adagrad", ada});
  auto rms = make(OptimizerKind::RMSProp, 0.01f);
  rms.rho = 0.9f;
  v.push_back({"rmsprop", rms});
  v.push_back({"adam", make(OptimizerKind::Adam, 0.01f)});
  // A large eps pins where eps enters (outside sqrt(v^), not scaled by the bias correction).
  auto adam_eps = make(OptimizerKind::Adam, 0.01f);
  adam_eps.eps = 0.1f;
  adam_eps.beta1 = 0.8f;
  adam_eps.beta2 = 0.95f;
  v.push_back({"adam_big_eps", adam_eps});
  auto adam_l2 = make(OptimizerKind::Adam, 0.01f);
  adam_l2.l2 = 0.05f;
  v.push_back({"adam_coupled_l2", adam_l2});
  auto adamw = make(OptimizerKind::AdamW, 0.01f);
  adamw.weight_decay = 0.1f;
  adamw.schedule.kind = ScheduleKind::Cosine;
  adamw.schedule.t_max = 80;
  adamw.schedule.warmup_steps = 10;
  v.push_back({"adamw_cosine_warmup", adamw});
  auto clipped = make(OptimizerKind::Adam, 0.01f);
  clipped.clip_norm = 3.0f;
  v.push_back({"adam_clipped", clipped});
  auto sgd_clip = make(OptimizerKind::SGD, 0.05f);
  sgd_clip.momentum = 0.5f;
  sgd_clip.clip_norm = 2.0f;
  sgd_clip.weight_decay = 0.01f;
  sgd_clip.schedule.kind = ScheduleKind::Step;
  sgd_clip.schedule.step_size = 30;
  sgd_clip.schedule.gamma = 0.5f;
  v.push_back({"sgd_clip_decay_step", sgd_clip});
  return v;
}

TEST(Optimizer, HundredStepsMatchThePublishedRules) {
  const int64_t n = 37;
  for (const OptCase& oc : optimizer_cases()) {
    Rng rng(601);
    auto p = rng.vec(n, -1.0f, 1.0f);
    ReferenceOptimizer ref(oc.config, p);
    Optimizer opt(oc.config);
    for (int64_t t = 0; t < 100; ++t) {
      // Gradient norms around 1..6 so that clip_norm (2 or 3) bites on some steps only.
      const float amp = 0.2f + 0.8f * static_cast<float>(t % 7);
      const auto g = rng.vec(n, -amp, amp);
      EXPECT_FLOAT_EQ(opt.current_lr(), static_cast<float>(lr_ref(oc.config.schedule, t)));
      const float used = opt.step(p.data(), g.data(), n);
      ASSERT_FLOAT_EQ(used, static_cast<float>(lr_ref(oc.config.schedule, t))) << oc.name;
      ref.step(g);
    }
    EXPECT_EQ(opt.steps(), 100);
    EXPECT_EQ(opt.size(), n);
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_TRUE(Close(p[i], ref.params()[i], 2e-4, 2e-5)) << oc.name << " parameter " << i;
    }
  }
}

TEST(Optimizer, ClippingBoundsTheGlobalNorm) {
  auto c = make(OptimizerKind::SGD, 1.0f);
  c.clip_norm = 1.0f;
  Optimizer opt(c);
  std::vector<float> p = {0.0f, 0.0f};
  const std::vector<float> big = {6.0f, 8.0f};  // norm 10
  opt.step(p.data(), big.data(), 2);
  EXPECT_FLOAT_EQ(p[0], -0.6f);
  EXPECT_FLOAT_EQ(p[1], -0.8f);
  const std::vector<float> small = {0.3f, 0.4f};  // norm 0.5: untouched
  opt.step(p.data(), small.data(), 2);
  EXPECT_FLOAT_EQ(p[0], -0.9f);
  EXPECT_FLOAT_EQ(p[1], -1.2f);
}

TEST(Optimizer, SizeIsFixedByTheFirstStep) {
  for (OptimizerKind kind : {OptimizerKind::SGD, OptimizerKind::Adam}) {
    Optimizer opt(make(kind, 0.1f));
    std::vector<float> p(8, 1.0f), g(8, 0.5f);
    EXPECT_EQ(opt.size(), 0);
    opt.step(p.data(), g.data(), 8);
    EXPECT_EQ(opt.size(), 8);
    const auto before = p;
    EXPECT_THROW(opt.step(p.data(), g.data(), 7), std::invalid_argument);
    EXPECT_THROW(opt.step(p.data(), g.data(), 0), std::invalid_argument);
    EXPECT_EQ(p, before) << "a refused step changes nothing";
    EXPECT_EQ(opt.steps(), 1);
    opt.reset();
    EXPECT_EQ(opt.size(), 0);
    EXPECT_EQ(opt.steps(), 0);
    EXPECT_NO_THROW(opt.step(p.data(), g.data(), 7));
  }
}

TEST(Optimizer, StateSaveLoadRoundTrip) {
  for (const OptCase& oc : optimizer_cases()) {
    const int64_t n = 19;
    Rng rng(602);
    auto p = rng.vec(n, -1.0f, 1.0f);
    Optimizer a(oc.config);
    std::vector<std::vector<float>> grads;
    for (int i = 0; i < 20; ++i) grads.push_back(rng.vec(n, -2.0f, 2.0f));
    for (int i = 0; i < 10; ++i) a.step(p.data(), grads[i].data(), n);
    EXPECT_EQ(a.state_size(), a.config().slots() * n) << oc.name;
    EXPECT_EQ(static_cast<int>(a.slot_names().size()), a.config().slots()) << oc.name;

    Optimizer b(oc.config);
    b.load_state(a.steps(), a.size(), a.state(), a.state_size());
    EXPECT_EQ(b.steps(), 10);
    EXPECT_EQ(b.current_lr(), a.current_lr());
    auto q = p;
    for (int i = 10; i < 20; ++i) {
      a.step(p.data(), grads[i].data(), n);
      b.step(q.data(), grads[i].data(), n);
    }
    EXPECT_EQ(p, q) << oc.name << ": a restored optimizer continues bit for bit";
    EXPECT_THROW(b.load_state(3, n, a.state(), a.state_size() + 1), std::invalid_argument);
    EXPECT_THROW(b.load_state(-1, n, a.state(), a.state_size()), std::invalid_argument);
  }
}

TEST(Optimizer, SlotsAndNamesPerKind) {
  auto sgd = make(OptimizerKind::SGD, 0.1f);
  EXPECT_EQ(sgd.slots(), 0);
  EXPECT_TRUE(Optimizer(sgd).slot_names().empty());
  sgd.momentum = 0.9f;
  EXPECT_EQ(Optimizer(sgd).slot_names(), std::vector<std::string>{"velocity"});
  EXPECT_EQ(Optimizer(make(OptimizerKind::AdaGrad, 0.1f)).slot_names(),
            std::vector<std::string>{"sum_sq"});
  EXPECT_EQ(Optimizer(make(OptimizerKind::RMSProp, 0.1f)).slot_names(),
            std::vector<std::string>{"mean_sq"});
  EXPECT_EQ(Optimizer(make(OptimizerKind::AdamW, 0.1f)).slot_names(),
            (std::vector<std::string>{"m", "v"}));
}

TEST(Optimizer, ConfigValidationNamesTheField) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  struct Bad {
    const char* field;
    OptimizerConfig c;
  };
  std::vector<Bad> bad;
  // A valid config of `kind` with one field broken by `breaks`.
  const auto add = [&bad](const char* field, OptimizerKind kind, auto breaks) {
    auto c = make(kind, 0.1f);
    breaks(c);
    bad.push_back({field, c});
  };
  add("momentum", OptimizerKind::SGD, [](OptimizerConfig& c) { c.momentum = 1.0f; });
  add("nesterov", OptimizerKind::SGD, [](OptimizerConfig& c) { c.nesterov = true; });
  add("beta1", OptimizerKind::Adam, [](OptimizerConfig& c) { c.beta1 = 1.0f; });
  add("beta2", OptimizerKind::Adam, [](OptimizerConfig& c) { c.beta2 = -0.1f; });
  add("rho", OptimizerKind::RMSProp, [nan](OptimizerConfig& c) { c.rho = nan; });
  add("eps", OptimizerKind::Adam, [](OptimizerConfig& c) { c.eps = 0.0f; });
  add("initial_accumulator", OptimizerKind::AdaGrad,
      [](OptimizerConfig& c) { c.initial_accumulator = -1.0f; });
  add("l2", OptimizerKind::SGD, [](OptimizerConfig& c) { c.l2 = -0.1f; });
  add("weight_decay", OptimizerKind::AdamW, [nan](OptimizerConfig& c) { c.weight_decay = nan; });
  add("clip_norm", OptimizerKind::SGD, [](OptimizerConfig& c) { c.clip_norm = -1.0f; });
  add("lr", OptimizerKind::SGD, [](OptimizerConfig& c) { c.schedule.lr = 0.0f; });
  for (const Bad& b : bad) {
    try {
      Optimizer opt(b.c);
      ADD_FAILURE() << b.field << ": expected std::invalid_argument";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(b.field), std::string::npos) << e.what();
    }
  }
}

// ------------------------------------------------------------- schedules ----

TEST(Schedule, EveryKindFollowsItsFormula) {
  std::vector<Schedule> cases;
  Schedule s;
  s.lr = 0.1f;
  cases.push_back(s);  // constant
  s.kind = ScheduleKind::Step;
  s.gamma = 0.5f;
  s.step_size = 7;
  cases.push_back(s);
  s.kind = ScheduleKind::Exponential;
  s.gamma = 0.97f;
  cases.push_back(s);
  s.kind = ScheduleKind::InverseScaling;
  s.power = 0.25f;
  cases.push_back(s);
  s.kind = ScheduleKind::Cosine;
  s.t_max = 50;
  s.min_lr = 0.01f;
  cases.push_back(s);
  const size_t plain = cases.size();
  for (size_t i = 0; i < plain; ++i) {
    Schedule w = cases[i];
    w.warmup_steps = 12;
    w.warmup_start = 0.1f;
    cases.push_back(w);
  }
  for (const Schedule& c : cases) {
    EXPECT_NO_THROW(c.validate());
    for (int64_t t = 0; t < 120; ++t) {
      ASSERT_TRUE(Close(c.at(t), lr_ref(c, t), 1e-6, 1e-9))
          << ducklearn::to_string(c.kind) << " warmup=" << c.warmup_steps << " t=" << t;
    }
  }
}

TEST(Schedule, WarmupRampsLinearlyIntoTheDecay) {
  Schedule s;
  s.kind = ScheduleKind::Exponential;
  s.lr = 0.2f;
  s.gamma = 0.9f;
  s.warmup_steps = 4;
  s.warmup_start = 0.0f;
  EXPECT_FLOAT_EQ(s.at(0), 0.0f);
  EXPECT_FLOAT_EQ(s.at(1), 0.05f);
  EXPECT_FLOAT_EQ(s.at(2), 0.1f);
  EXPECT_FLOAT_EQ(s.at(3), 0.15f);
  EXPECT_FLOAT_EQ(s.at(4), 0.2f) << "the decay starts where the warmup ends";
  EXPECT_FLOAT_EQ(s.at(5), 0.18f);
  EXPECT_FLOAT_EQ(s.at(-3), s.at(0)) << "negative steps clamp to 0";
}

TEST(Schedule, CosineHoldsMinLrAfterTMax) {
  Schedule s;
  s.kind = ScheduleKind::Cosine;
  s.lr = 1.0f;
  s.min_lr = 0.1f;
  s.t_max = 10;
  EXPECT_FLOAT_EQ(s.at(0), 1.0f);
  EXPECT_FLOAT_EQ(s.at(5), 0.55f);
  EXPECT_FLOAT_EQ(s.at(10), 0.1f);
  EXPECT_FLOAT_EQ(s.at(1000), 0.1f);
}

TEST(Schedule, ValidationRejectsBadFields) {
  auto expect_bad = [](Schedule s, const char* field) {
    try {
      s.validate();
      ADD_FAILURE() << field << ": expected std::invalid_argument";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  Schedule s;
  s.lr = -1.0f;
  expect_bad(s, "lr");
  s = Schedule{};
  s.kind = ScheduleKind::Step;
  s.step_size = 0;
  expect_bad(s, "step_size");
  s = Schedule{};
  s.kind = ScheduleKind::Exponential;
  s.gamma = 1.5f;
  expect_bad(s, "gamma");
  s = Schedule{};
  s.kind = ScheduleKind::InverseScaling;
  s.power = -1.0f;
  expect_bad(s, "power");
  s = Schedule{};
  s.kind = ScheduleKind::Cosine;
  s.t_max = 0;
  expect_bad(s, "t_max");
  s = Schedule{};
  s.kind = ScheduleKind::Cosine;
  s.min_lr = 1.0f;  // above lr = 0.01
  expect_bad(s, "min_lr");
  s = Schedule{};
  s.warmup_steps = -1;
  expect_bad(s, "warmup_steps");
  s = Schedule{};
  s.warmup_start = 1.5f;
  expect_bad(s, "warmup_start");
}

// --------------------------------------------------------------- plateau ----

TEST(Plateau, SmoothsWithAnExponentialAverage) {
  PlateauDetector p(0.25f, 3, 0.0f);
  p.update(4.0);
  EXPECT_DOUBLE_EQ(p.smoothed(), 4.0) << "the first loss seeds the average";
  p.update(0.0);
  EXPECT_DOUBLE_EQ(p.smoothed(), 3.0);
  p.update(8.0);
  EXPECT_DOUBLE_EQ(p.smoothed(), 0.25 * 8.0 + 0.75 * 3.0);
  EXPECT_EQ(p.count(), 3);
  EXPECT_DOUBLE_EQ(p.best(), 3.0);
  EXPECT_EQ(p.since_best(), 1);
}

TEST(Plateau, ConvergesAfterPatienceUpdatesWithoutImprovement) {
  PlateauDetector p(1.0f, 4, 0.01f);
  EXPECT_FALSE(p.update(1.0));
  EXPECT_FALSE(p.update(0.5));    // improvement
  EXPECT_FALSE(p.update(0.499));  // < 1% better: not an improvement
  EXPECT_FALSE(p.update(0.6));
  EXPECT_FALSE(p.update(0.5));
  EXPECT_EQ(p.since_best(), 3);
  EXPECT_TRUE(p.update(0.5));
  EXPECT_TRUE(p.converged());
  EXPECT_FALSE(p.update(0.1)) << "a real improvement resets the count";
  EXPECT_EQ(p.since_best(), 0);
  EXPECT_DOUBLE_EQ(p.best(), 0.1);
}

TEST(Plateau, SteadilyFallingLossNeverConverges) {
  PlateauDetector p(0.3f, 3, 1e-3f);
  double loss = 10.0;
  for (int i = 0; i < 500; ++i) {
    ASSERT_FALSE(p.update(loss)) << "step " << i;
    loss *= 0.98;
  }
}

TEST(Plateau, ALossStuckAtZeroConverges) {
  PlateauDetector p(0.5f, 2, 1e-4f);
  p.update(0.0);
  p.update(0.0);
  EXPECT_TRUE(p.update(0.0));
}

TEST(Plateau, ResetAndValidation) {
  PlateauDetector p(1.0f, 1, 0.0f);
  p.update(1.0);
  EXPECT_TRUE(p.update(2.0));
  p.reset();
  EXPECT_EQ(p.count(), 0);
  EXPECT_FALSE(p.converged());
  EXPECT_FALSE(p.update(5.0));
  EXPECT_THROW(p.update(std::numeric_limits<double>::quiet_NaN()), std::invalid_argument);
  EXPECT_THROW(p.update(std::numeric_limits<double>::infinity()), std::invalid_argument);
  EXPECT_EQ(p.count(), 1) << "a refused loss is not counted";
  EXPECT_THROW(PlateauDetector(0.0f, 1, 0.0f), std::invalid_argument);
  EXPECT_THROW(PlateauDetector(1.5f, 1, 0.0f), std::invalid_argument);
  EXPECT_THROW(PlateauDetector(0.5f, 0, 0.0f), std::invalid_argument);
  EXPECT_THROW(PlateauDetector(0.5f, 1, -0.1f), std::invalid_argument);
}

}  // namespace
