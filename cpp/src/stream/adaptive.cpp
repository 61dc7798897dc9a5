#include "ducklearn/stream/adaptive.hpp"

#include <cmath>
#include <string>

#include "ducklearn/error.hpp"
#include "ducklearn/stream/state_io.hpp"
#include "denormals.hpp"

namespace ducklearn {

void AdaptationConfig::validate() const {
  auto check = [](bool ok, const std::string& msg) { DUCKLEARN_CHECK_ARG(ok, msg); };
  check(std::isfinite(adwin_delta) && adwin_delta > 0.0 && adwin_delta < 1.0,
        "adwin_delta must be in (0, 1)");
  check(adwin_clock >= 1, "adwin_clock must be >= 1");
  check(ph_min_instances >= 1, "ph_min_instances must be >= 1");
  check(std::isfinite(ph_threshold) && ph_threshold > 0.0, "ph_threshold must be > 0");
  check(std::isfinite(ph_delta) && ph_delta >= 0.0, "ph_delta must be >= 0");
  check(std::isfinite(ph_alpha) && ph_alpha > 0.0 && ph_alpha <= 1.0,
        "ph_alpha (forgetting factor) must be in (0, 1]");
  check(std::isfinite(drift_lr_boost) && drift_lr_boost >= 1.0f, "drift_lr_boost must be >= 1");
  check(boost_decay >= 1, "boost_decay must be >= 1");
  check(recent_window >= 1, "recent_window must be >= 1");
  check(background_epochs >= 0, "background_epochs must be >= 0");
  check(std::isfinite(background_lr_scale) && background_lr_scale > 0.0f,
        "background_lr_scale must be > 0");
  check(background_grace >= 1, "background_grace must be >= 1");
  check(background_patience >= background_grace,
        "background_patience must be >= background_grace");
  check(std::isfinite(swap_margin) && swap_margin >= 0.0f && swap_margin < 1.0f,
        "swap_margin must be in [0, 1)");
  check(std::isfinite(swap_z) && swap_z >= 0.0f, "swap_z must be >= 0");
  check(std::isfinite(loss_smoothing) && loss_smoothing > 0.0f && loss_smoothing <= 1.0f,
        "loss_smoothing must be in (0, 1]");
  check(std::isfinite(plateau_factor) && plateau_factor > 0.0f && plateau_factor <= 1.0f,
        "plateau_factor must be in (0, 1] (1 disables reduce-on-plateau)");
  check(plateau_every >= 1 && plateau_patience >= 1, "plateau_every and plateau_patience >= 1");
  check(std::isfinite(plateau_min_delta) && plateau_min_delta >= 0.0f,
        "plateau_min_delta must be >= 0");
  check(std::isfinite(min_lr_scale) && min_lr_scale > 0.0f, "min_lr_scale must be > 0");
  check(replay_capacity >= 0, "replay_capacity must be >= 0 (0 disables replay)");
  check(replay_every >= 1 && replay_batch >= 1, "replay_every and replay_batch must be >= 1");
  check(std::isfinite(replay_alpha) && replay_alpha >= 0.0f, "replay_alpha must be >= 0");
  check(std::isfinite(ewc_lambda) && ewc_lambda >= 0.0f, "ewc_lambda must be >= 0");
  check(std::isfinite(ewc_decay) && ewc_decay >= 0.0f && ewc_decay <= 1.0f,
        "ewc_decay must be in [0, 1]");
  check(consolidate_every >= 0, "consolidate_every must be >= 0");
  check(consolidate_samples >= 1, "consolidate_samples must be >= 1");
  check(consolidate_every == 0 || replay_capacity > 0,
        "consolidate_every needs a replay buffer (replay_capacity > 0) to draw examples from");
  // The upper bound keeps a corrupt checkpoint from asking for huge block buffers.
  check(update_batch >= 1 && update_batch <= 65536,
        "update_batch must be in [1, 65536] (1 = one optimizer step per example)");
  check(std::isfinite(average_decay) && average_decay >= 0.0f && average_decay < 1.0f,
        "average_decay must be in [0, 1) (0 turns weight averaging off)");
}

namespace {
// Validates before any member is built from the config, so errors name the config field.
const AdaptationConfig& validated(const AdaptationConfig& c) {
  c.validate();
  return c;
}
}  // namespace

AdaptiveLearner::AdaptiveLearner(Learner base, const AdaptationConfig& config, uint64_t seed)
    : config_(validated(config)),
      plateau_(1.0f, config.plateau_patience, config.plateau_min_delta), seed_(seed) {
  if (config_.background) blueprint_ = std::make_shared<const Learner>(base);
  active_ = std::make_unique<Learner>(std::move(base));
  if (config_.average_decay > 0.0f) active_->set_averaging(config_.average_decay);
  const int64_t d = active_->n_inputs(), k = active_->n_outputs();
  if (config_.detector == DetectorKind::ADWIN) {
    adwin_ = std::make_unique<ADWIN>(config_.adwin_delta, config_.adwin_clock);
  } else if (config_.detector == DetectorKind::PageHinkley) {
    ph_ = std::make_unique<PageHinkley>(config_.ph_min_instances, config_.ph_delta,
                                        config_.ph_threshold, config_.ph_alpha);
  }
  if (config_.replay_capacity > 0) {
    replay_ = std::make_unique<ReplayBuffer>(config_.replay_capacity, d, seed ^ 0x5eedull,
                                             config_.replay_prioritized, config_.replay_alpha,
                                             config_.replay_recent);
  }
  recent_x_.assign(static_cast<size_t>(config_.recent_window * d), 0.0f);
  recent_y_.assign(static_cast<size_t>(config_.recent_window), 0.0f);
  recent_loss_.assign(static_cast<size_t>(config_.recent_window), 0.0f);
  const int64_t block = config_.update_batch;
  pred_.assign(static_cast<size_t>(block * k), 0.0f);
  bg_pred_.assign(static_cast<size_t>(block * k), 0.0f);
  loss_buf_.assign(static_cast<size_t>(block), 0.0);
  bg_loss_.assign(static_cast<size_t>(block), 0.0);
  if (block > 1) active_->reserve(block);
  const int64_t rows = config_.recent_window > config_.replay_batch ? config_.recent_window
                                                                    : config_.replay_batch;
  const int64_t rows2 = rows > config_.consolidate_samples ? rows : config_.consolidate_samples;
  batch_x_.assign(static_cast<size_t>(rows2 * d), 0.0f);
  batch_y_.assign(static_cast<size_t>(rows2), 0.0f);
  stats_.lr_scale = active_->optimizer().lr_scale();
}

AdaptiveLearner::AdaptiveLearner(const AdaptiveLearner& o)
    : config_(o.config_),
      active_(std::make_unique<Learner>(*o.active_)),
      background_(o.background_ ? std::make_unique<Learner>(*o.background_) : nullptr),
      blueprint_(o.blueprint_),
      adwin_(o.adwin_ ? std::make_unique<ADWIN>(*o.adwin_) : nullptr),
      ph_(o.ph_ ? std::make_unique<PageHinkley>(*o.ph_) : nullptr),
      replay_(o.replay_ ? std::make_unique<ReplayBuffer>(*o.replay_) : nullptr),
      plateau_(o.plateau_), stats_(o.stats_), plateau_scale_(o.plateau_scale_),
      plateau_sum_(o.plateau_sum_), plateau_count_(o.plateau_count_), seed_(o.seed_),
      recent_x_(o.recent_x_), recent_y_(o.recent_y_), recent_loss_(o.recent_loss_),
      recent_next_(o.recent_next_),
      recent_size_(o.recent_size_), pred_(o.pred_), bg_pred_(o.bg_pred_),
      loss_buf_(o.loss_buf_), bg_loss_(o.bg_loss_), batch_x_(o.batch_x_), batch_y_(o.batch_y_) {
  // Copied learners size their scratch for one row; blocks would otherwise regrow it.
  if (config_.update_batch > 1) {
    active_->reserve(config_.update_batch);
    if (background_) background_->reserve(config_.update_batch);
  }
}


bool AdaptiveLearner::detect(double loss) {
  if (adwin_) {
    const double before = adwin_->mean();
    // ADWIN is two-sided; only a rise of the loss is a change worth adapting to (a falling
    // loss is the model learning).
    if (adwin_->update(loss) && adwin_->mean() > before) {
      on_change();
      return true;
    }
    return false;
  }
  if (ph_ && ph_->update(loss)) {
    on_change();
    return true;
  }
  return false;
}

int64_t AdaptiveLearner::estimate_change_age() const {
  // Most likely change point among the recent losses: the split maximising the standardized
  // difference of means (the CUSUM / binary-segmentation estimator), with the later part
  // worse. Detectors only say *that* the loss rose; this says *since when*.
  const int64_t r = recent_size_, w = config_.recent_window;
  if (r < 2) return r;
  double total = 0.0;
  for (int64_t j = 0; j < r; ++j) total += recent_loss_[static_cast<size_t>(j)];
  double tail = 0.0, best = 0.0;
  int64_t best_k = 0;
  for (int64_t k = 1; k < r; ++k) {  // k = examples after the split, newest first
    const int64_t slot = ((recent_next_ - k) % w + w) % w;
    tail += recent_loss_[static_cast<size_t>(slot)];
    const double mean_after = tail / static_cast<double>(k);
    const double mean_before = (total - tail) / static_cast<double>(r - k);
    const double gap = mean_after - mean_before;
    const double score =
        gap * std::sqrt(static_cast<double>(k) * static_cast<double>(r - k) / static_cast<double>(r));
    if (gap > 0.0 && score > best) {
      best = score;
      best_k = k;
    }
  }
  return best_k;
}

void AdaptiveLearner::apply_lr_scale() {
  float boost = 1.0f;
  if (config_.drift_lr_boost > 1.0f && stats_.last_drift_at >= 0) {
    const double since = static_cast<double>(stats_.examples - stats_.last_drift_at);
    const double left = 1.0 - since / static_cast<double>(config_.boost_decay);
    if (left > 0.0) boost = 1.0f + (config_.drift_lr_boost - 1.0f) * static_cast<float>(left);
  }
  const float scale = plateau_scale_ * boost;
  active_->optimizer().set_lr_scale(scale);
  stats_.lr_scale = scale;
}

void AdaptiveLearner::record_recent(const float* x, float y, double loss) {
  const int64_t d = active_->n_inputs();
  std::copy(x, x + d, recent_x_.begin() + recent_next_ * d);
  recent_y_[static_cast<size_t>(recent_next_)] = y;
  recent_loss_[static_cast<size_t>(recent_next_)] = static_cast<float>(loss);
  recent_next_ = (recent_next_ + 1) % config_.recent_window;
  if (recent_size_ < config_.recent_window) ++recent_size_;
}

void AdaptiveLearner::on_change() {
  ++stats_.drifts;
  stats_.last_drift_at = stats_.examples;
  plateau_scale_ = 1.0f;  // whatever the rate had been cut to, a new concept needs steps
  plateau_.reset();
  plateau_sum_ = 0.0;
  plateau_count_ = 0;
  // An average over the old concept would hold the model back on the new one.
  active_->restart_average();
  // A challenger already racing is learning the new concept: restarting it would throw that
  // away. Right after a swap the new model is still young and the detector re-baselines;
  // challengers spawned then would race it on noise.
  const bool racing = background_ != nullptr;
  const bool cooling = stats_.last_swap_at >= 0 &&
                       stats_.examples - stats_.last_swap_at < config_.recent_window;
  if (config_.background && !racing && !cooling) start_background(estimate_change_age());
}

void AdaptiveLearner::start_background(int64_t change_age) {
  background_ = std::make_unique<Learner>(*blueprint_);
  if (active_->scaler() != nullptr) *background_->scaler() = *active_->scaler();
  background_->optimizer().set_lr_scale(config_.background_lr_scale);
  if (config_.update_batch > 1) background_->reserve(config_.update_batch);
  ++stats_.backgrounds_started;
  stats_.background_age = 0;
  stats_.race_diff_mean = 0.0;
  stats_.race_diff_m2 = 0.0;

  // Warm start on the examples after the estimated change point, oldest first. A handful of
  // examples would only be memorised (adaptive optimizers take near full-size first steps on
  // every coordinate, noise features included), so below kMinWarm the challenger starts
  // fresh and learns from the stream alone.
  constexpr int64_t kMinWarm = 16;
  int64_t m = change_age < recent_size_ ? change_age : recent_size_;
  if (m < kMinWarm) m = 0;
  const int64_t d = active_->n_inputs();
  for (int epoch = 0; epoch < config_.background_epochs && m > 0; ++epoch) {
    for (int64_t j = 0; j < m; ++j) {
      const int64_t slot =
          ((recent_next_ - m + j) % config_.recent_window + config_.recent_window) %
          config_.recent_window;
      // n = 1 mini-batch: a per-example step that leaves the scaler as it is.
      background_->learn_batch(recent_x_.data() + slot * d, recent_y_.data() + slot, 1, false);
    }
  }
  if (config_.average_decay > 0.0f) {
    background_->set_averaging(config_.average_decay);
    background_->restart_average();  // young: its average warms up from the warm start
  }
}

void AdaptiveLearner::maybe_swap() {
  // Paired test on the race so far: both models scored the same examples, so the spread of
  // the differences, not of the losses, decides whether the challenger is really better.
  const double n = static_cast<double>(stats_.background_age);
  const double var = n > 1.0 ? stats_.race_diff_m2 / (n - 1.0) : 0.0;
  const double mean = stats_.race_diff_mean;
  const bool significant =
      mean > 0.0 && (var <= 0.0 || mean * std::sqrt(n) >= config_.swap_z * std::sqrt(var));
  if (stats_.background_age >= config_.background_grace && significant &&
      stats_.background_loss_ewma <
          stats_.active_loss_since_challenge * (1.0 - static_cast<double>(config_.swap_margin))) {
    active_ = std::move(background_);
    ++stats_.swaps;
    stats_.last_swap_at = stats_.examples;
    stats_.loss_ewma = stats_.background_loss_ewma;
    if (adwin_) adwin_->reset();
    if (ph_) ph_->reset();
    if (replay_ && config_.flush_replay_on_swap) replay_->clear();
    apply_lr_scale();
    return;
  }
  if (stats_.background_age >= config_.background_patience) {
    background_.reset();
    ++stats_.backgrounds_dropped;
  }
}

void AdaptiveLearner::replay_step() {
  const int64_t b = config_.replay_batch;
  replay_->sample(b, batch_x_.data(), batch_y_.data(), nullptr);
  active_->learn_batch(batch_x_.data(), batch_y_.data(), b, false);
  ++stats_.replay_updates;
}

void AdaptiveLearner::consolidate(int64_t samples) {
  DUCKLEARN_CHECK_ARG(replay_ != nullptr,
                      "consolidation draws from the replay buffer; set replay_capacity > 0");
  DUCKLEARN_CHECK_ARG(replay_->size() >= 1, "the replay buffer is empty: nothing to consolidate");
  DUCKLEARN_CHECK_ARG(samples >= 1, "samples must be >= 1");
  const int64_t d = active_->n_inputs();
  const int64_t m = samples < replay_->size() ? samples : replay_->size();
  if (static_cast<int64_t>(batch_y_.size()) < m) {
    batch_x_.resize(static_cast<size_t>(m * d));
    batch_y_.resize(static_cast<size_t>(m));
  }
  replay_->sample(m, batch_x_.data(), batch_y_.data(), nullptr);
  const float lambda = config_.ewc_lambda > 0.0f ? config_.ewc_lambda : 1.0f;
  active_->consolidate(batch_x_.data(), batch_y_.data(), m, lambda, config_.ewc_decay);
  ++stats_.consolidations;
}

void AdaptiveLearner::account(const float* x, float y, double loss, bool raced,
                              double bg_loss) {
  const double a = config_.loss_smoothing;
  stats_.loss_ewma = stats_.examples == 0 ? loss : (1.0 - a) * stats_.loss_ewma + a * loss;
  if (raced) {
    // Both models are scored on the same examples; the weight starts at 1/age (a plain
    // mean, so the first losses do not dominate) and settles at loss_smoothing.
    ++stats_.background_age;
    const double w = 1.0 / static_cast<double>(stats_.background_age);
    const double b = w > a ? w : a;
    stats_.background_loss_ewma = (1.0 - b) * stats_.background_loss_ewma + b * bg_loss;
    stats_.active_loss_since_challenge =
        (1.0 - b) * stats_.active_loss_since_challenge + b * loss;
    const double diff = loss - bg_loss;
    const double delta = diff - stats_.race_diff_mean;
    stats_.race_diff_mean += delta * w;
    stats_.race_diff_m2 += delta * (diff - stats_.race_diff_mean);
  }
  ++stats_.examples;

  record_recent(x, y, loss);
  if (replay_) {
    replay_->add(x, y, static_cast<float>(loss));
    if (stats_.examples % config_.replay_every == 0) replay_step();
  }
  if (config_.plateau_factor < 1.0f) {
    plateau_sum_ += loss;
    if (++plateau_count_ == config_.plateau_every) {
      if (plateau_.update(plateau_sum_ / static_cast<double>(plateau_count_))) {
        const float next = plateau_scale_ * config_.plateau_factor;
        plateau_scale_ = next > config_.min_lr_scale ? next : config_.min_lr_scale;
        ++stats_.lr_reductions;
        plateau_.reset();
      }
      plateau_sum_ = 0.0;
      plateau_count_ = 0;
    }
  }
  detect(loss);
  if (background_) maybe_swap();
  if (config_.consolidate_every > 0 && stats_.examples % config_.consolidate_every == 0 &&
      replay_->size() > 0) {
    consolidate(config_.consolidate_samples);
  }
  apply_lr_scale();
}

void AdaptiveLearner::learn(const float* X, const float* y, int64_t n, float* preds,
                            double* losses) {
  for (int64_t i = 0; i < n; ++i) active_->check_label(y[i]);
  detail::FlushDenormals ftz;
  if (config_.update_batch > 1) {
    learn_blocks(X, y, n, preds, losses);
    return;
  }
  const int64_t d = active_->n_inputs(), k = active_->n_outputs();
  for (int64_t i = 0; i < n; ++i) {
    const float* x = X + i * d;
    float* p = preds != nullptr ? preds + i * k : pred_.data();

    // The challenger sees the example first: both predict before either learns it.
    const bool raced = background_ != nullptr;
    double bg_loss = 0.0;
    if (raced) bg_loss = background_->step(x, y[i], bg_pred_.data());
    const double loss = active_->step(x, y[i], p);
    if (losses != nullptr) losses[i] = loss;
    account(x, y[i], loss, raced, bg_loss);
  }
}

void AdaptiveLearner::learn_blocks(const float* X, const float* y, int64_t n, float* preds,
                                   double* losses) {
  const int64_t d = active_->n_inputs(), k = active_->n_outputs();
  const int64_t block = config_.update_batch;
  for (int64_t s = 0; s < n; s += block) {
    const int64_t m = n - s < block ? n - s : block;
    const float* xb = X + s * d;
    const float* yb = y + s;
    float* pb = preds != nullptr ? preds + s * k : pred_.data();
    double* lb = losses != nullptr ? losses + s : loss_buf_.data();

    // Both models predict the whole block before either learns from it.
    Learner* raced = background_.get();
    if (raced != nullptr) raced->step_batch(xb, yb, m, bg_pred_.data(), bg_loss_.data());
    active_->step_batch(xb, yb, m, pb, lb);

    // The per-example policies run on the block's rows in order. A swap inside the block
    // ends the race for the rows after it (the new active model has learned them all).
    // Addresses are compared only while the raced model is alive: once it is swapped in
    // or dropped, `racing` goes false before a new challenger can be spawned.
    bool racing = raced != nullptr;
    Learner* spawned = nullptr;
    int64_t spawned_at = 0;
    for (int64_t r = 0; r < m; ++r) {
      account(xb + r * d, yb[r], lb[r], racing, racing ? bg_loss_[static_cast<size_t>(r)] : 0.0);
      if (racing && background_.get() != raced) racing = false;
      if (!racing && spawned == nullptr && background_ != nullptr) {
        spawned = background_.get();
        spawned_at = r;
      }
    }
    // A challenger spawned at row r was warm-started on rows up to r; it learns the rest of
    // the block too, as the active model has. Its scaler, copied from the active one,
    // already counts them.
    if (spawned != nullptr && background_.get() == spawned && spawned_at + 1 < m) {
      const int64_t from = spawned_at + 1;
      spawned->learn_batch(xb + from * d, yb + from, m - from, false);
    }
  }
}

namespace {

void save_stats(const AdaptationStats& s, StateDict& out, const std::string& p) {
  out.set_int(p + "examples", s.examples);
  out.set_int(p + "drifts", s.drifts);
  out.set_int(p + "last_drift_at", s.last_drift_at);
  out.set_int(p + "backgrounds_started", s.backgrounds_started);
  out.set_int(p + "swaps", s.swaps);
  out.set_int(p + "last_swap_at", s.last_swap_at);
  out.set_int(p + "backgrounds_dropped", s.backgrounds_dropped);
  out.set_int(p + "replay_updates", s.replay_updates);
  out.set_int(p + "consolidations", s.consolidations);
  out.set_int(p + "lr_reductions", s.lr_reductions);
  out.set(p + "loss_ewma", s.loss_ewma);
  out.set(p + "background_loss_ewma", s.background_loss_ewma);
  out.set(p + "active_loss_since_challenge", s.active_loss_since_challenge);
  out.set_int(p + "background_age", s.background_age);
  out.set(p + "race_diff_mean", s.race_diff_mean);
  out.set(p + "race_diff_m2", s.race_diff_m2);
  out.set(p + "lr_scale", s.lr_scale);
}

AdaptationStats load_stats(const StateDict& in, const std::string& p) {
  AdaptationStats s;
  s.examples = in.integer(p + "examples");
  s.drifts = in.integer(p + "drifts");
  s.last_drift_at = in.integer(p + "last_drift_at");
  s.backgrounds_started = in.integer(p + "backgrounds_started");
  s.swaps = in.integer(p + "swaps");
  s.last_swap_at = in.integer(p + "last_swap_at");
  s.backgrounds_dropped = in.integer(p + "backgrounds_dropped");
  s.replay_updates = in.integer(p + "replay_updates");
  s.consolidations = in.integer(p + "consolidations");
  s.lr_reductions = in.integer(p + "lr_reductions");
  s.loss_ewma = in.number(p + "loss_ewma");
  s.background_loss_ewma = in.number(p + "background_loss_ewma");
  s.active_loss_since_challenge = in.number(p + "active_loss_since_challenge");
  s.background_age = in.integer(p + "background_age");
  s.race_diff_mean = in.number(p + "race_diff_mean");
  s.race_diff_m2 = in.number(p + "race_diff_m2");
  s.lr_scale = static_cast<float>(in.number(p + "lr_scale"));
  return s;
}

}  // namespace

void AdaptiveLearner::save_state(StateDict& out) const {
  out.set_int("adaptive.format", 1);
  save_config(config_, out, "adaptive.config.");
  out.set_u64("adaptive.seed", seed_);
  if (blueprint_) ducklearn::save_state(*blueprint_, out, "blueprint.");
  ducklearn::save_state(*active_, out, "active.");
  out.set("adaptive.has_background", background_ ? 1.0 : 0.0);
  if (background_) ducklearn::save_state(*background_, out, "background.");
  if (adwin_) adwin_->save_state(out, "adwin.");
  if (ph_) ph_->save_state(out, "page_hinkley.");
  if (replay_) {
    const auto n = static_cast<size_t>(replay_->size());
    const auto d = static_cast<size_t>(replay_->dim());
    out.f32["replay.rows"].assign(replay_->rows(), replay_->rows() + n * d);
    out.f32["replay.labels"].assign(replay_->labels(), replay_->labels() + n);
    out.f32["replay.priorities"].assign(replay_->priorities(), replay_->priorities() + n);
    out.set_int("replay.size", replay_->size());
    out.set_int("replay.seen", replay_->seen());
    out.set_u64("replay.rng", replay_->rng_state());
  }
  plateau_.save_state(out, "plateau.");
  save_stats(stats_, out, "stats.");
  out.set("adaptive.plateau_scale", plateau_scale_);
  out.set("adaptive.plateau_sum", plateau_sum_);
  out.set_int("adaptive.plateau_count", plateau_count_);
  out.f32["recent.x"].assign(recent_x_.begin(), recent_x_.end());
  out.f32["recent.y"].assign(recent_y_.begin(), recent_y_.end());
  out.f32["recent.loss"].assign(recent_loss_.begin(), recent_loss_.end());
  out.set_int("recent.next", recent_next_);
  out.set_int("recent.size", recent_size_);
}

std::unique_ptr<AdaptiveLearner> AdaptiveLearner::load_state(const StateDict& in) {
  DUCKLEARN_CHECK_ARG(in.integer("adaptive.format") == 1,
                      "adaptive learner state has an unknown format version");
  const AdaptationConfig config = load_adaptation_config(in, "adaptive.config.");
  // Buffer sizes come from the file: check them against the tensors before allocating.
  DUCKLEARN_CHECK_ARG(static_cast<int64_t>(in.tensor("recent.y").size()) == config.recent_window,
                      "adaptive learner state: recent_window does not match its buffer");
  DUCKLEARN_CHECK_ARG(config.replay_capacity <= (int64_t{1} << 32),
                      "adaptive learner state: implausible replay capacity");
  // Saved without challengers there is no blueprint: the active model stands in as the base.
  Learner base = load_learner(in, in.has("blueprint.arch.n_layers") ? "blueprint." : "active.");
  const int64_t n_in = base.n_inputs(), n_out = base.n_outputs();
  auto out = std::make_unique<AdaptiveLearner>(std::move(base), config, in.u64("adaptive.seed"));
  out->active_ = std::make_unique<Learner>(load_learner(in, "active."));
  if (config.update_batch > 1) out->active_->reserve(config.update_batch);
  DUCKLEARN_CHECK_ARG(out->active_->n_inputs() == n_in && out->active_->n_outputs() == n_out,
                      "adaptive learner state: active model does not match its blueprint");
  if (in.number("adaptive.has_background") != 0.0) {
    out->background_ = std::make_unique<Learner>(load_learner(in, "background."));
    // It learns from the same rows into the same output buffer as the active model.
    DUCKLEARN_CHECK_ARG(out->background_->n_inputs() == n_in &&
                            out->background_->n_outputs() == n_out,
                        "adaptive learner state: background model does not match its blueprint");
    if (config.update_batch > 1) out->background_->reserve(config.update_batch);
  }
  if (out->adwin_) out->adwin_->load_state(in, "adwin.");
  if (out->ph_) out->ph_->load_state(in, "page_hinkley.");
  if (out->replay_) {
    const int64_t n = in.integer("replay.size");
    const int64_t d = out->replay_->dim();
    DUCKLEARN_CHECK_ARG(n >= 0 && n <= out->replay_->capacity(), "replay state: bad size");
    out->replay_->load(n, in.integer("replay.seen"), in.u64("replay.rng"),
                       in.tensor("replay.rows", n * d).data(),
                       in.tensor("replay.labels", n).data(),
                       in.tensor("replay.priorities", n).data());
  }
  out->plateau_.load_state(in, "plateau.");
  out->stats_ = load_stats(in, "stats.");
  out->plateau_scale_ = static_cast<float>(in.number("adaptive.plateau_scale"));
  out->plateau_sum_ = in.number("adaptive.plateau_sum");
  out->plateau_count_ = in.integer("adaptive.plateau_count");
  const int64_t d = out->active_->n_inputs();
  const auto& rx = in.tensor("recent.x", config.recent_window * d);
  const auto& ry = in.tensor("recent.y", config.recent_window);
  out->recent_x_.assign(rx.begin(), rx.end());
  out->recent_y_.assign(ry.begin(), ry.end());
  const auto& rl = in.tensor("recent.loss", config.recent_window);
  out->recent_loss_.assign(rl.begin(), rl.end());
  out->recent_next_ = in.integer("recent.next");
  out->recent_size_ = in.integer("recent.size");
  DUCKLEARN_CHECK_ARG(out->recent_next_ >= 0 && out->recent_next_ < config.recent_window &&
                          out->recent_size_ >= 0 && out->recent_size_ <= config.recent_window,
                      "adaptive learner state: bad recent-window counters");
  return out;
}

}  // namespace ducklearn
