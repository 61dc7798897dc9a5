#include "ducklearn/stream/state_io.hpp"

#include <string>
#include <vector>

#include "ducklearn/error.hpp"

namespace ducklearn {

void save_config(const OptimizerConfig& c, StateDict& out, const std::string& p) {
  out.set_str(p + "kind", to_string(c.kind));
  out.set_str(p + "schedule.kind", to_string(c.schedule.kind));
  out.set(p + "schedule.lr", c.schedule.lr);
  out.set(p + "schedule.gamma", c.schedule.gamma);
  out.set_int(p + "schedule.step_size", c.schedule.step_size);
  out.set(p + "schedule.power", c.schedule.power);
  out.set_int(p + "schedule.t_max", c.schedule.t_max);
  out.set(p + "schedule.min_lr", c.schedule.min_lr);
  out.set_int(p + "schedule.warmup_steps", c.schedule.warmup_steps);
  out.set(p + "schedule.warmup_start", c.schedule.warmup_start);
  out.set(p + "momentum", c.momentum);
  out.set(p + "nesterov", c.nesterov ? 1.0 : 0.0);
  out.set(p + "beta1", c.beta1);
  out.set(p + "beta2", c.beta2);
  out.set(p + "rho", c.rho);
  out.set(p + "eps", c.eps);
  out.set(p + "initial_accumulator", c.initial_accumulator);
  out.set(p + "l2", c.l2);
  out.set(p + "weight_decay", c.weight_decay);
  out.set(p + "clip_norm", c.clip_norm);
  out.set(p + "hypergradient", c.hypergradient);
}

OptimizerConfig load_optimizer_config(const StateDict& in, const std::string& p) {
  OptimizerConfig c;
  auto f = [&](const char* k) { return static_cast<float>(in.number(p + k)); };
  c.kind = optimizer_from_string(in.str(p + "kind"));
  c.schedule.kind = schedule_from_string(in.str(p + "schedule.kind"));
  c.schedule.lr = f("schedule.lr");
  c.schedule.gamma = f("schedule.gamma");
  c.schedule.step_size = in.integer(p + "schedule.step_size");
  c.schedule.power = f("schedule.power");
  c.schedule.t_max = in.integer(p + "schedule.t_max");
  c.schedule.min_lr = f("schedule.min_lr");
  c.schedule.warmup_steps = in.integer(p + "schedule.warmup_steps");
  c.schedule.warmup_start = f("schedule.warmup_start");
  c.momentum = f("momentum");
  c.nesterov = in.number(p + "nesterov") != 0.0;
  c.beta1 = f("beta1");
  c.beta2 = f("beta2");
  c.rho = f("rho");
  c.eps = f("eps");
  c.initial_accumulator = f("initial_accumulator");
  c.l2 = f("l2");
  c.weight_decay = f("weight_decay");
  c.clip_norm = f("clip_norm");
  c.hypergradient = f("hypergradient");
  c.validate();
  return c;
}

void save_config(const AdaptationConfig& c, StateDict& out, const std::string& p) {
  out.set_int(p + "detector", static_cast<int64_t>(c.detector));
  out.set(p + "adwin_delta", c.adwin_delta);
  out.set_int(p + "adwin_clock", c.adwin_clock);
  out.set_int(p + "ph_min_instances", c.ph_min_instances);
  out.set(p + "ph_delta", c.ph_delta);
  out.set(p + "ph_threshold", c.ph_threshold);
  out.set(p + "ph_alpha", c.ph_alpha);
  out.set(p + "drift_lr_boost", c.drift_lr_boost);
  out.set_int(p + "boost_decay", c.boost_decay);
  out.set(p + "background", c.background ? 1.0 : 0.0);
  out.set_int(p + "recent_window", c.recent_window);
  out.set_int(p + "background_epochs", c.background_epochs);
  out.set(p + "background_lr_scale", c.background_lr_scale);
  out.set_int(p + "background_grace", c.background_grace);
  out.set_int(p + "background_patience", c.background_patience);
  out.set(p + "swap_margin", c.swap_margin);
  out.set(p + "swap_z", c.swap_z);
  out.set(p + "loss_smoothing", c.loss_smoothing);
  out.set(p + "plateau_factor", c.plateau_factor);
  out.set_int(p + "plateau_every", c.plateau_every);
  out.set_int(p + "plateau_patience", c.plateau_patience);
  out.set(p + "plateau_min_delta", c.plateau_min_delta);
  out.set(p + "min_lr_scale", c.min_lr_scale);
  out.set_int(p + "replay_capacity", c.replay_capacity);
  out.set_int(p + "replay_every", c.replay_every);
  out.set_int(p + "replay_batch", c.replay_batch);
  out.set(p + "replay_prioritized", c.replay_prioritized ? 1.0 : 0.0);
  out.set(p + "replay_recent", c.replay_recent ? 1.0 : 0.0);
  out.set(p + "replay_alpha", c.replay_alpha);
  out.set(p + "flush_replay_on_swap", c.flush_replay_on_swap ? 1.0 : 0.0);
  out.set(p + "ewc_lambda", c.ewc_lambda);
  out.set(p + "ewc_decay", c.ewc_decay);
  out.set_int(p + "consolidate_every", c.consolidate_every);
  out.set_int(p + "consolidate_samples", c.consolidate_samples);
  out.set_int(p + "update_batch", c.update_batch);
  out.set(p + "average_decay", c.average_decay);
}

AdaptationConfig load_adaptation_config(const StateDict& in, const std::string& p) {
  AdaptationConfig c;
  auto f = [&](const char* k) { return static_cast<float>(in.number(p + k)); };
  auto i = [&](const char* k) { return in.integer(p + k); };
  auto b = [&](const char* k) { return in.number(p + k) != 0.0; };
  const int64_t det = i("detector");
  DUCKLEARN_CHECK_ARG(det >= 0 && det <= 2, "adaptation state: unknown detector kind");
  c.detector = static_cast<DetectorKind>(det);
  c.adwin_delta = in.number(p + "adwin_delta");
  c.adwin_clock = static_cast<int>(i("adwin_clock"));
  c.ph_min_instances = i("ph_min_instances");
  c.ph_delta = in.number(p + "ph_delta");
  c.ph_threshold = in.number(p + "ph_threshold");
  c.ph_alpha = in.number(p + "ph_alpha");
  c.drift_lr_boost = f("drift_lr_boost");
  c.boost_decay = i("boost_decay");
  c.background = b("background");
  c.recent_window = i("recent_window");
  c.background_epochs = static_cast<int>(i("background_epochs"));
  c.background_lr_scale = f("background_lr_scale");
  c.background_grace = i("background_grace");
  c.background_patience = i("background_patience");
  c.swap_margin = f("swap_margin");
  c.swap_z = f("swap_z");
  c.loss_smoothing = f("loss_smoothing");
  c.plateau_factor = f("plateau_factor");
  c.plateau_every = i("plateau_every");
  c.plateau_patience = i("plateau_patience");
  c.plateau_min_delta = f("plateau_min_delta");
  c.min_lr_scale = f("min_lr_scale");
  c.replay_capacity = i("replay_capacity");
  c.replay_every = i("replay_every");
  c.replay_batch = i("replay_batch");
  c.replay_prioritized = b("replay_prioritized");
  c.replay_recent = b("replay_recent");
  c.replay_alpha = f("replay_alpha");
  c.flush_replay_on_swap = b("flush_replay_on_swap");
  c.ewc_lambda = f("ewc_lambda");
  c.ewc_decay = f("ewc_decay");
  c.consolidate_every = i("consolidate_every");
  c.consolidate_samples = i("consolidate_samples");
  // States saved before micro-batching existed learned one example per step.
  c.update_batch = in.has(p + "update_batch") ? i("update_batch") : 1;
  c.average_decay = in.has(p + "average_decay") ? f("average_decay") : 0.0f;
  c.validate();
  return c;
}

void save_state(const Learner& l, StateDict& out, const std::string& p) {
  const Sequential& m = l.model();
  out.set_int(p + "arch.n_inputs", m.n_inputs());
  out.set(p + "arch.leaky_alpha", m.leaky_alpha());
  out.set_int(p + "arch.n_layers", static_cast<int64_t>(m.layers().size()));
  for (size_t i = 0; i < m.layers().size(); ++i) {
    out.set_int(p + "arch.width." + std::to_string(i), m.layers()[i].out);
    out.set_str(p + "arch.activation." + std::to_string(i), to_string(m.layers()[i].act));
  }
  out.set_str(p + "loss.kind", to_string(l.loss().kind));
  out.set(p + "loss.delta", l.loss().delta);
  out.set(p + "loss.tau", l.loss().tau);
  out.f32[p + "params"].assign(m.params(), m.params() + m.n_params());

  const Optimizer& o = l.optimizer();
  save_config(o.config(), out, p + "optimizer.");
  out.set_int(p + "optimizer.t", o.steps());
  out.set_int(p + "optimizer.n", o.size());
  out.set(p + "optimizer.lr_scale", o.lr_scale());
  out.set(p + "optimizer.hypergradient_lr", o.hypergradient_lr());
  out.f32[p + "optimizer.state"].assign(o.state(), o.state() + o.state_size());

  const RunningStats* s = l.scaler();
  out.set(p + "scaler.present", s != nullptr ? 1.0 : 0.0);
  if (s != nullptr) {
    const auto d = static_cast<size_t>(s->dim());
    out.f64[p + "scaler.count"].assign(s->count(), s->count() + d);
    out.f64[p + "scaler.mean"].assign(s->mean(), s->mean() + d);
    out.f64[p + "scaler.m2"].assign(s->m2(), s->m2() + d);
    out.f32[p + "scaler.min"].assign(s->min(), s->min() + d);
    out.f32[p + "scaler.max"].assign(s->max(), s->max() + d);
  }
  out.set_int(p + "examples_seen", l.examples_seen());
  out.set(p + "ewc.lambda", l.ewc_lambda());
  out.f32[p + "ewc.anchor"].assign(l.ewc_anchor().begin(), l.ewc_anchor().end());
  out.f32[p + "ewc.fisher"].assign(l.ewc_fisher().begin(), l.ewc_fisher().end());
  if (l.averaging() > 0.0f) {
    const Sequential& a = l.served_model();
    out.set(p + "average.decay", l.averaging());
    out.set_int(p + "average.steps", l.average_steps());
    out.f32[p + "average.params"].assign(a.params(), a.params() + a.n_params());
  }
}

Learner load_learner(const StateDict& in, const std::string& p) {
  const int64_t n_layers = in.integer(p + "arch.n_layers");
  DUCKLEARN_CHECK_ARG(n_layers >= 1 && n_layers <= 1024, "learner state: bad layer count");
  // A corrupt state must fail as invalid input, not as an attempt to allocate terabytes:
  // the parameter count has to match the tensor that is actually there.
  const int64_t n_inputs = in.integer(p + "arch.n_inputs");
  const auto& stored = in.tensor(p + "params");
  std::vector<int64_t> widths;
  std::vector<Activation> acts;
  int64_t count = 0, prev = n_inputs;
  DUCKLEARN_CHECK_ARG(n_inputs >= 1 && n_inputs <= (int64_t{1} << 31),
                      "learner state: implausible input width");
  for (int64_t i = 0; i < n_layers; ++i) {
    const int64_t w = in.integer(p + "arch.width." + std::to_string(i));
    DUCKLEARN_CHECK_ARG(w >= 1 && w <= (int64_t{1} << 31), "learner state: implausible width");
    count += (prev + 1) * w;
    DUCKLEARN_CHECK_ARG(count <= static_cast<int64_t>(stored.size()),
                        "learner state: architecture does not match the stored parameters");
    prev = w;
    widths.push_back(w);
    acts.push_back(activation_from_string(in.str(p + "arch.activation." + std::to_string(i))));
  }
  Sequential model(n_inputs, widths, acts, static_cast<float>(in.number(p + "arch.leaky_alpha")));
  const auto& params = in.tensor(p + "params", model.n_params());
  std::copy(params.begin(), params.end(), model.params());
  LossSpec loss;
  loss.kind = loss_from_string(in.str(p + "loss.kind"));
  loss.delta = static_cast<float>(in.number(p + "loss.delta"));
  loss.tau = static_cast<float>(in.number(p + "loss.tau"));
  const bool scaled = in.number(p + "scaler.present") != 0.0;
  Learner l(std::move(model), loss, load_optimizer_config(in, p + "optimizer."), scaled);

  Optimizer& o = l.optimizer();
  const int64_t n = in.integer(p + "optimizer.n");
  DUCKLEARN_CHECK_ARG(n == 0 || n == l.model().n_params(),
                      "learner state: optimizer sized for " + std::to_string(n) +
                          " parameters, model has " + std::to_string(l.model().n_params()));
  const auto& st = in.tensor(p + "optimizer.state", o.config().slots() * n);
  o.load_state(in.integer(p + "optimizer.t"), n, st.data(), static_cast<int64_t>(st.size()));
  o.set_lr_scale(static_cast<float>(in.number(p + "optimizer.lr_scale")));
  o.set_hypergradient_lr(static_cast<float>(in.number(p + "optimizer.hypergradient_lr")));
  if (scaled) {
    const int64_t d = l.n_inputs();
    l.scaler()->load(in.tensor64(p + "scaler.count", d).data(),
                     in.tensor64(p + "scaler.mean", d).data(),
                     in.tensor64(p + "scaler.m2", d).data(), in.tensor(p + "scaler.min", d).data(),
                     in.tensor(p + "scaler.max", d).data());
  }
  l.set_examples_seen(in.integer(p + "examples_seen"));
  const auto& anchor = in.tensor(p + "ewc.anchor");
  const auto& fisher = in.tensor(p + "ewc.fisher", static_cast<int64_t>(anchor.size()));
  l.load_ewc(static_cast<float>(in.number(p + "ewc.lambda")), anchor.data(), fisher.data(),
             static_cast<int64_t>(anchor.size()));
  if (in.has(p + "average.decay")) {  // absent: saved without weight averaging
    const auto& avg = in.tensor(p + "average.params", l.model().n_params());
    l.load_average(static_cast<float>(in.number(p + "average.decay")),
                   in.integer(p + "average.steps"), avg.data(), l.model().n_params());
  }
  return l;
}

}  // namespace ducklearn
