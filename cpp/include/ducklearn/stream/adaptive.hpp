#pragma once
/**
 * The adaptive online learner: test-then-train on a Learner, plus the policies that keep it
 * accurate on a stream that changes and that must not forget.
 *
 * - Micro-batches: with update_batch = k > 1, learn() takes rows in blocks of k (the last
 *   block of a call may be shorter; nothing is carried across calls). The scaler takes in a
 *   block's rows, one forward pass predicts them all with the current model, and one
 *   optimizer step on the block's mean gradient follows: a row's prediction may come from a
 *   model that has not yet learned the up to k - 1 rows before it in its block. Everything
 *   else still runs per example, in order, on the pre-update losses: detector, smoothed
 *   losses, race statistics, plateau checks, replay (replay_every counts examples), EWC
 *   consolidation and the rate boost; the step of a block uses the rate in force when the
 *   block starts, and the EWC penalty enters each step once. A racing challenger is
 *   block-updated on the same rows; one spawned by a detection inside a block learns the
 *   block's remaining rows in one step right after its warm start. k = 1 is the exact
 *   per-example loop.
 * - Change detection on the per-example loss (ADWIN or Page-Hinkley). On a detection the
 *   learning rate is boosted (decaying back), and a background model, warm-started on the
 *   most recent examples (those after the estimated change point), races the active one
 *   head to head on every new example; it replaces the active model once its smoothed loss
 *   is lower after a grace period, and is dropped if it never wins. Detections during a race,
 *   or within recent_window examples after a swap, do not spawn another challenger.
 * - Reduce-on-plateau: the smoothed loss is checked every plateau_every examples and the rate
 *   is cut by plateau_factor after plateau_patience checks without improvement.
 * - Experience replay: every example is offered to a reservoir buffer; every replay_every
 *   examples one mini-batch of replay_batch stored examples is learned too.
 * - Elastic weight consolidation: consolidate() (on demand, or every consolidate_every
 *   examples) anchors the weights with the Fisher information of a replay sample.
 * - Weight averaging (average_decay > 0): the models predict with an exponential moving
 *   average of their weights, restarted on every detected change so that the average does
 *   not hold the old concept back.
 *
 * Everything runs in C++ with no allocation per example; the whole state is reachable for
 * checkpoints (active and background learners, detector, buffers, counters).
 */
#include <cstdint>
#include <memory>
#include <vector>

#include "ducklearn/aligned.hpp"
#include "ducklearn/drift/detectors.hpp"
#include "ducklearn/export.hpp"
#include "ducklearn/optim/plateau.hpp"
#include "ducklearn/stream/learner.hpp"
#include "ducklearn/stream/replay.hpp"

namespace ducklearn {

enum class DetectorKind : int { None = 0, ADWIN = 1, PageHinkley = 2 };

struct DUCKLEARN_EXPORT AdaptationConfig {
  DetectorKind detector = DetectorKind::ADWIN;
  double adwin_delta = 0.002;
  int adwin_clock = 8;
  int64_t ph_min_instances = 30;
  double ph_delta = 0.005;
  double ph_threshold = 50.0;
  double ph_alpha = 1.0 - 1e-4;

  float drift_lr_boost = 1.0f;       ///< lr multiplier right after a change (1 = none)
  int64_t boost_decay = 500;         ///< examples over which the boost fades back to 1
  bool background = true;            ///< race a fresh model after a change
  int64_t recent_window = 256;       ///< recent examples kept to warm-start it
  int background_epochs = 1;         ///< passes over the post-change examples (>= 16 of them)
  float background_lr_scale = 1.0f;  ///< its rate relative to the configured one
  int64_t background_grace = 50;     ///< head-to-head examples before it may take over
  int64_t background_patience = 5000;  ///< examples after which a losing challenger is dropped
  float swap_margin = 0.0f;          ///< relative loss advantage needed to take over
  /// The challenger must also be better with this significance: the paired per-example loss
  /// differences since the race began must have mean / standard error >= swap_z.
  float swap_z = 3.0f;
  float loss_smoothing = 0.02f;      ///< EWMA weight of the newest loss

  float plateau_factor = 1.0f;       ///< < 1 enables reduce-on-plateau
  int64_t plateau_every = 1000;
  int64_t plateau_patience = 5;
  float plateau_min_delta = 1e-3f;
  float min_lr_scale = 1e-3f;

  int64_t replay_capacity = 0;       ///< 0 disables replay
  int64_t replay_every = 1;
  int64_t replay_batch = 8;
  bool replay_prioritized = false;
  bool replay_recent = false;        ///< FIFO of recent examples instead of a reservoir
  float replay_alpha = 0.6f;
  bool flush_replay_on_swap = true;  ///< old-concept examples would pull a new model back

  float ewc_lambda = 0.0f;           ///< > 0 with consolidate_every or consolidate() calls
  float ewc_decay = 0.9f;
  int64_t consolidate_every = 0;     ///< 0 = only when consolidate() is called
  int64_t consolidate_samples = 256;

  /// Rows per optimizer step (1 = one step per example); see the micro-batch note above.
  int64_t update_batch = 1;

  /// Weight averaging of the active model (and of challengers), see Learner::set_averaging;
  /// 0 = off. Predictions, losses seen by the detector and snapshots come from the average;
  /// a detected change restarts it from the current weights.
  float average_decay = 0.0f;

  /** Throws std::invalid_argument naming the bad field. */
  void validate() const;
};

struct AdaptationStats {
  int64_t examples = 0;
  int64_t drifts = 0;
  int64_t last_drift_at = -1;      ///< example index of the last detection
  int64_t backgrounds_started = 0;
  int64_t swaps = 0;
  int64_t last_swap_at = -1;
  int64_t backgrounds_dropped = 0;
  int64_t replay_updates = 0;
  int64_t consolidations = 0;
  int64_t lr_reductions = 0;
  double loss_ewma = 0.0;          ///< active model's smoothed prequential loss
  double background_loss_ewma = 0.0;
  double active_loss_since_challenge = 0.0;  ///< active's smoothed loss over the race
  int64_t background_age = 0;
  double race_diff_mean = 0.0;     ///< mean of (active loss - challenger loss) over the race
  double race_diff_m2 = 0.0;       ///< its sum of squared deviations (Welford)
  float lr_scale = 1.0f;
};

class DUCKLEARN_EXPORT AdaptiveLearner {
 public:
  /** `base` is the starting model; its untrained copy is the template of challengers. */
  AdaptiveLearner(Learner base, const AdaptationConfig& config, uint64_t seed);
  AdaptiveLearner(const AdaptiveLearner& other);
  AdaptiveLearner& operator=(const AdaptiveLearner&) = delete;

  /**
   * Test-then-train over n examples in order. preds (n × n_outputs, nullable) receives what
   * the active model predicted before learning each example; losses (n, nullable) their
   * losses. Labels are all checked before anything changes.
   */
  void learn(const float* X, const float* y, int64_t n, float* preds, double* losses);

  /** EWC consolidation on up to `samples` examples drawn from the replay buffer. */
  void consolidate(int64_t samples);

  Learner& active() { return *active_; }
  const Learner& active() const { return *active_; }
  const Learner* background() const { return background_.get(); }
  Learner* background() { return background_.get(); }
  ReplayBuffer* replay() { return replay_.get(); }
  const ReplayBuffer* replay() const { return replay_.get(); }
  const AdaptationStats& stats() const { return stats_; }
  const AdaptationConfig& config() const { return config_; }
  std::shared_ptr<const Predictor> snapshot() const { return active_->snapshot(); }

  /** The complete state (learners, detector, buffers, counters) for a checkpoint. */
  void save_state(StateDict& out) const;
  /** Rebuilds a learner saved with save_state; it continues exactly where it stopped. */
  static std::unique_ptr<AdaptiveLearner> load_state(const StateDict& in);

 private:
  void on_change();
  int64_t estimate_change_age() const;
  void start_background(int64_t recent);
  void maybe_swap();
  void apply_lr_scale();
  void record_recent(const float* x, float y, double loss);
  void replay_step();
  bool detect(double loss);
  /** Everything after the update for one example: counters, race, replay, plateau, drift. */
  void account(const float* x, float y, double loss, bool raced, double bg_loss);
  void learn_blocks(const float* X, const float* y, int64_t n, float* preds, double* losses);

  AdaptationConfig config_;
  std::unique_ptr<Learner> active_;
  std::unique_ptr<Learner> background_;
  /// The challengers' start (the model as given); immutable, so copies share it. Null
  /// without challengers (background = false): nothing would ever read it.
  std::shared_ptr<const Learner> blueprint_;
  std::unique_ptr<ADWIN> adwin_;
  std::unique_ptr<PageHinkley> ph_;
  std::unique_ptr<ReplayBuffer> replay_;
  PlateauDetector plateau_;
  AdaptationStats stats_;
  float plateau_scale_ = 1.0f;
  double plateau_sum_ = 0.0;
  int64_t plateau_count_ = 0;
  uint64_t seed_;

  // Ring of the most recent examples (rows, labels and losses), to locate a change and to
  // warm-start challengers.
  AlignedVector<float> recent_x_;
  AlignedVector<float> recent_y_;
  AlignedVector<float> recent_loss_;
  int64_t recent_next_ = 0, recent_size_ = 0;

  AlignedVector<float> pred_, bg_pred_;  ///< one block's outputs (update_batch rows)
  std::vector<double> loss_buf_, bg_loss_;  ///< one block's losses
  AlignedVector<float> batch_x_, batch_y_;  ///< replay / warm-start scratch
};

}  // namespace ducklearn
