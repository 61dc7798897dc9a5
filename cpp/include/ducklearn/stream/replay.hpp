#pragma once
/**
 * Experience replay: a fixed-capacity reservoir of past examples (features after any
 * extraction, and labels) that training mixes back into updates.
 *
 * Insertion is reservoir sampling (Vitter's Algorithm R): after n insertions each example
 * seen is held with probability capacity / n, so the buffer stays a uniform sample of the
 * whole stream in bounded memory (the guard against forgetting). In FIFO mode it holds the
 * most recent examples instead (extra passes over data from the current concept). Sampling for replay is uniform or, when prioritized,
 * proportional to priority^alpha (Schaul et al. 2016) through a sum tree, O(log capacity).
 */
#include <cstdint>
#include <vector>

#include "ducklearn/aligned.hpp"
#include "ducklearn/export.hpp"

namespace ducklearn {

class DUCKLEARN_EXPORT ReplayBuffer {
 public:
  /**
   * fifo = true keeps the most recent `capacity` examples instead of a uniform sample of the
   * whole stream: extra passes over recent data, for streams whose concept moves on.
   */
  ReplayBuffer(int64_t capacity, int64_t dim, uint64_t seed, bool prioritized = false,
               float alpha = 0.6f, bool fifo = false);

  /** Offers one example; priority (e.g. its loss, >= 0) matters only when prioritized. */
  void add(const float* x, float y, float priority = 1.0f);
  /**
   * Draws k examples with replacement into X (k × dim), y (k) and slots (k, may be nullptr).
   * Needs size() >= 1.
   */
  void sample(int64_t k, float* X, float* y, int64_t* slots);
  /** Updates the priority of a held example (e.g. its loss after being replayed). */
  void set_priority(int64_t slot, float priority);
  /** Empties the buffer (e.g. after a concept change made old examples misleading). */
  void clear();

  int64_t size() const { return size_; }
  int64_t capacity() const { return capacity_; }
  int64_t dim() const { return dim_; }
  int64_t seen() const { return seen_; }
  bool prioritized() const { return prioritized_; }
  bool fifo() const { return fifo_; }
  float alpha() const { return alpha_; }

  /** Raw state for checkpoints: rows (size × dim), labels, priorities, counters, RNG. */
  const float* rows() const { return rows_.data(); }
  const float* labels() const { return labels_.data(); }
  const float* priorities() const { return priority_.data(); }
  uint64_t rng_state() const { return rng_; }
  void load(int64_t size, int64_t seen, uint64_t rng_state, const float* rows,
            const float* labels, const float* priorities);

 private:
  uint64_t next();
  double uniform();
  void tree_set(int64_t slot, double value);

  int64_t capacity_, dim_;
  bool prioritized_;
  float alpha_;
  bool fifo_;
  int64_t size_ = 0, seen_ = 0;
  uint64_t rng_;
  AlignedVector<float> rows_;
  std::vector<float> labels_, priority_;
  int64_t leaves_ = 1;        ///< power of two >= capacity
  std::vector<double> tree_;  ///< sum tree over priority^alpha, root at 1
};

}  // namespace ducklearn
