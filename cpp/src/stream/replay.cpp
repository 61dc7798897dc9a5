#include "ducklearn/stream/replay.hpp"

#include <cmath>
#include <string>

#include "ducklearn/error.hpp"

namespace ducklearn {

ReplayBuffer::ReplayBuffer(int64_t capacity, int64_t dim, uint64_t seed, bool prioritized,
                           float alpha, bool fifo)
    : capacity_(capacity), dim_(dim), prioritized_(prioritized), alpha_(alpha), fifo_(fifo),
      rng_(seed) {
  DUCKLEARN_CHECK_ARG(capacity >= 1, "replay capacity must be >= 1, got " +
                                         std::to_string(capacity));
  DUCKLEARN_CHECK_ARG(dim >= 1, "replay dim must be >= 1");
  DUCKLEARN_CHECK_ARG(std::isfinite(alpha) && alpha >= 0.0f,
                      "replay alpha (priority exponent) must be >= 0");
  rows_.assign(static_cast<size_t>(capacity * dim), 0.0f);
  labels_.assign(static_cast<size_t>(capacity), 0.0f);
  priority_.assign(static_cast<size_t>(capacity), 0.0f);
  while (leaves_ < capacity) leaves_ *= 2;
  if (prioritized_) tree_.assign(static_cast<size_t>(2 * leaves_), 0.0);
}

uint64_t ReplayBuffer::next() {  // splitmix64: one word of state, easy to checkpoint
  uint64_t z = (rng_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double ReplayBuffer::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

void ReplayBuffer::tree_set(int64_t slot, double value) {
  int64_t i = slot + leaves_;
  const double delta = value - tree_[static_cast<size_t>(i)];
  for (; i >= 1; i /= 2) tree_[static_cast<size_t>(i)] += delta;
}

void ReplayBuffer::add(const float* x, float y, float priority) {
  DUCKLEARN_CHECK_ARG(std::isfinite(priority) && priority >= 0.0f,
                      "replay priority must be a finite number >= 0");
  ++seen_;
  int64_t slot;
  if (size_ < capacity_) {
    slot = size_++;
  } else if (fifo_) {
    slot = (seen_ - 1) % capacity_;  // overwrite the oldest
  } else {
    const auto j = static_cast<int64_t>(next() % static_cast<uint64_t>(seen_));
    if (j >= capacity_) return;  // Algorithm R: keep with probability capacity / seen
    slot = j;
  }
  std::copy(x, x + dim_, rows_.begin() + slot * dim_);
  labels_[static_cast<size_t>(slot)] = y;
  set_priority(slot, priority);
}

void ReplayBuffer::set_priority(int64_t slot, float priority) {
  DUCKLEARN_CHECK_ARG(slot >= 0 && slot < size_, "replay slot out of range");
  priority_[static_cast<size_t>(slot)] = priority;
  // A small floor keeps every held example reachable.
  if (prioritized_) tree_set(slot, std::pow(static_cast<double>(priority) + 1e-6, alpha_));
}

void ReplayBuffer::sample(int64_t k, float* X, float* y, int64_t* slots) {
  DUCKLEARN_CHECK_ARG(size_ >= 1, "cannot sample from an empty replay buffer");
  for (int64_t s = 0; s < k; ++s) {
    int64_t slot;
    if (prioritized_ && tree_[1] > 0.0) {
      double u = uniform() * tree_[1];
      int64_t i = 1;
      while (i < leaves_) {
        const double left = tree_[static_cast<size_t>(2 * i)];
        if (u < left) {
          i = 2 * i;
        } else {
          u -= left;
          i = 2 * i + 1;
        }
      }
      slot = i - leaves_;
      if (slot >= size_) slot = size_ - 1;  // rounding at the right edge
    } else {
      slot = static_cast<int64_t>(next() % static_cast<uint64_t>(size_));
    }
    std::copy(rows_.begin() + slot * dim_, rows_.begin() + (slot + 1) * dim_, X + s * dim_);
    y[s] = labels_[static_cast<size_t>(slot)];
    if (slots != nullptr) slots[s] = slot;
  }
}

void ReplayBuffer::clear() {
  size_ = 0;
  seen_ = 0;
  if (prioritized_) tree_.assign(tree_.size(), 0.0);
}

void ReplayBuffer::load(int64_t size, int64_t seen, uint64_t rng_state, const float* rows,
                        const float* labels, const float* priorities) {
  DUCKLEARN_CHECK_ARG(size >= 0 && size <= capacity_ && seen >= size,
                      "replay state: size must be in [0, capacity] and seen >= size");
  clear();
  size_ = size;
  seen_ = seen;
  rng_ = rng_state;
  std::copy(rows, rows + size * dim_, rows_.begin());
  std::copy(labels, labels + size, labels_.begin());
  for (int64_t i = 0; i < size; ++i) set_priority(i, priorities[i]);
}

}  // namespace ducklearn
