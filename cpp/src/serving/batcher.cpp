#include "ducklearn/serving/batcher.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <utility>

#if defined(__GLIBCXX__)
#include <cxxabi.h>
#endif
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#endif

#include "ducklearn/error.hpp"
#include "ducklearn/stream/predictor.hpp"

namespace ducklearn {

namespace detail {

/**
 * How a blocking caller sleeps until its request is answered: on its own word, not on the
 * batcher's lock, so a woken caller goes straight back to its work instead of queueing for
 * the lock the worker is still handing answers out under (on a busy machine every such
 * hand-off is a context switch in the latency of every request of the batch). ring() is the
 * last thing anyone does with a request: its caller returns only once it has rung.
 */
class BatchDoorbell {
 public:
  using Clock = std::chrono::steady_clock;
#if defined(__linux__)
  void ring() {
    word_.store(1, std::memory_order_release);
    // Only the word's address from here on: the caller may already have returned, and a
    // wake-up at a reused address is a spurious wake-up, which every wait tolerates.
    futex(FUTEX_WAKE_PRIVATE, nullptr);
  }
  void wait() {
    while (!rung()) futex(FUTEX_WAIT_PRIVATE, nullptr);
  }
  /** False when `until` passed before the bell rang. */
  bool wait_until(Clock::time_point until) {
    while (!rung()) {
      const auto left = until - Clock::now();
      if (left <= Clock::duration::zero()) return false;
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      const timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
      futex(FUTEX_WAIT_PRIVATE, &ts);
    }
    return true;
  }

 private:
  static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t) &&
                    std::atomic<uint32_t>::is_always_lock_free,
                "the futex word must be a plain 32-bit word");
  bool rung() const { return word_.load(std::memory_order_acquire) != 0; }
  void futex(int op, const timespec* ts) {
    // WAIT sleeps only while the word is still 0; WAKE wakes the one waiter. EINTR, EAGAIN
    // and timeouts just return to the loops above.
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word_), op, op == FUTEX_WAKE_PRIVATE ? 1 : 0,
            ts, nullptr, 0);
  }
  std::atomic<uint32_t> word_{0};
#else
  void ring() {
    std::lock_guard<std::mutex> lk(mu_);
    rung_ = true;
    cv_.notify_one();
  }
  void wait() {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [this] { return rung_; });
  }
  bool wait_until(Clock::time_point until) {
    std::unique_lock<std::mutex> lk(mu_);
    return cv_.wait_until(lk, until, [this] { return rung_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool rung_ = false;
#endif
};

}  // namespace detail

namespace {

using Clock = std::chrono::steady_clock;
using State = detail::BatchRequest::State;

constexpr double kInf = std::numeric_limits<double>::infinity();

class PredictorModel final : public BatchModel {
 public:
  explicit PredictorModel(std::shared_ptr<const Predictor> p) : p_(std::move(p)) {}
  int64_t n_inputs() const override { return p_->n_inputs(); }
  int64_t n_outputs() const override { return p_->n_outputs(); }
  void predict(const float* x, int64_t n, float* out, Workspace& ws) const override {
    p_->predict(x, n, out, ws);
  }

 private:
  std::shared_ptr<const Predictor> p_;
};

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

/** now + s, or no deadline when s does not fit a time_point (infinity, years). */
Clock::time_point after(Clock::time_point now, double s) {
  if (!(s < 1e9)) return Batcher::kNoDeadline;
  return now + std::chrono::duration_cast<Clock::duration>(
                   std::chrono::duration<double>(std::max(s, 0.0)));
}

template <class Pred>
void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lk,
                Clock::time_point until, Pred done) {
  if (until == Batcher::kNoDeadline) {
    cv.wait(lk, done);
  } else {
    cv.wait_until(lk, until, done);
  }
}

// The buckets of the Python server's metrics, so both export the same histograms.
std::vector<double> default_latency_bounds() {
  return {5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2,
          0.1,  0.25, 0.5,    1.0,  kInf};
}

std::vector<double> default_batch_bounds() {
  return {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, kInf};
}

std::vector<double> with_infinity(std::vector<double> b) {
  if (b.empty() || !std::isinf(b.back())) b.push_back(kInf);
  return b;
}

void check_bounds(const std::vector<double>& b, const char* name) {
  for (size_t i = 0; i < b.size(); ++i) {
    DUCKLEARN_CHECK_ARG(!std::isnan(b[i]) && b[i] > 0.0,
                        std::string(name) + " must be positive numbers");
    DUCKLEARN_CHECK_ARG(i == 0 || b[i] > b[i - 1],
                        std::string(name) + " must be strictly increasing");
  }
}

/** Heap order: higher priority first, then earlier arrival. */
bool before(const detail::BatchRequest* a, const detail::BatchRequest* b) {
  return a->priority > b->priority || (a->priority == b->priority && a->seq < b->seq);
}

/** Index of the first non-finite value in p[0, n), or -1. One branch-free pass first. */
int64_t first_non_finite(const float* p, int64_t n) {
  bool ok = true;
  for (int64_t i = 0; i < n; ++i) ok &= std::isfinite(p[i]);
  if (ok) return -1;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(p[i])) return i;
  }
  return -1;
}

}  // namespace

std::shared_ptr<const BatchModel> batch_model(std::shared_ptr<const Predictor> predictor) {
  DUCKLEARN_CHECK_ARG(predictor != nullptr, "predictor must not be null");
  return std::make_shared<PredictorModel>(std::move(predictor));
}

void BatcherConfig::validate() const {
  DUCKLEARN_CHECK_ARG(max_batch_rows >= 1, "max_batch_rows must be >= 1");
  DUCKLEARN_CHECK_ARG(std::isfinite(max_wait_us) && max_wait_us >= 0.0 && max_wait_us <= 1e7,
                      "max_wait_us must be in [0, 1e7] microseconds");
  DUCKLEARN_CHECK_ARG(queue_capacity_rows >= 1, "queue_capacity_rows must be >= 1");
  DUCKLEARN_CHECK_ARG(workers >= 1 && workers <= 256, "workers must be in [1, 256]");
  DUCKLEARN_CHECK_ARG(std::isfinite(admit_share) && admit_share >= 0.0,
                      "admit_share must be a finite number >= 0 (0 turns admission off)");
  DUCKLEARN_CHECK_ARG(std::isfinite(service_seconds) && service_seconds >= 0.0,
                      "service_seconds must be a finite number >= 0");
  check_bounds(latency_bounds, "latency_bounds");
  check_bounds(batch_bounds, "batch_bounds");
}

void Batcher::Histogram::observe(double v) {
  // First bound >= v: counts[i] holds bounds[i-1] < v <= bounds[i]; NaN lands in the last.
  size_t i = static_cast<size_t>(std::lower_bound(bounds.begin(), bounds.end(), v) -
                                 bounds.begin());
  if (i >= counts.size()) i = counts.size() - 1;
  ++counts[i];
  sum += v;
  ++count;
}

HistogramSnapshot Batcher::Histogram::snapshot() const {
  HistogramSnapshot s;
  s.bounds = bounds;
  s.counts = counts;
  s.sum = sum;
  s.count = count;
  return s;
}

Batcher::Batcher(std::shared_ptr<const Predictor> predictor, uint64_t version,
                 BatcherConfig config)
    : Batcher(batch_model(std::move(predictor)), version, std::move(config)) {}

Batcher::Batcher(std::shared_ptr<const BatchModel> model, uint64_t version, BatcherConfig config)
    : config_(std::move(config)) {
  DUCKLEARN_CHECK_ARG(model != nullptr, "model must not be null");
  config_.validate();
  n_inputs_ = model->n_inputs();
  n_outputs_ = model->n_outputs();
  DUCKLEARN_CHECK_ARG(n_inputs_ >= 1 && n_outputs_ >= 1,
                      "the model must take and give at least one value per row");
  max_wait_ = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double, std::micro>(config_.max_wait_us));
  model_ = std::move(model);
  version_ = version;
  service_seconds_ = config_.service_seconds;
  latency_.bounds = with_infinity(config_.latency_bounds.empty() ? default_latency_bounds()
                                                                 : config_.latency_bounds);
  latency_.counts.assign(latency_.bounds.size(), 0);
  batch_hist_.bounds = with_infinity(config_.batch_bounds.empty() ? default_batch_bounds()
                                                                  : config_.batch_bounds);
  batch_hist_.counts.assign(batch_hist_.bounds.size(), 0);
  // Every queued request has at least one row, so this many slots never reallocate unless
  // the capacity is huge (then the heap grows rarely, on the way to its high-water mark).
  heap_.reserve(static_cast<size_t>(std::min<int64_t>(config_.queue_capacity_rows, 4096)));
  threads_.reserve(static_cast<size_t>(config_.workers));
  worker_ids_.reserve(static_cast<size_t>(config_.workers));
  try {
    for (int i = 0; i < config_.workers; ++i) {
      {
        std::lock_guard<std::mutex> lk(mu_);
        ++live_workers_;
      }
      threads_.emplace_back([this] { worker_main(); });
      worker_ids_.push_back(threads_.back().get_id());
    }
  } catch (...) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      live_workers_ = static_cast<int>(threads_.size());
    }
    close(false);
    throw;
  }
}

Batcher::~Batcher() {
  close(false);
  std::lock_guard<std::mutex> j(join_mu_);
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

// -- the queue: an indexed binary heap (removal by position for cancellations) plus an
//    arrival-order list (the oldest request bounds how long a batch may wait to fill) --------

void Batcher::sift_up(int64_t i) {
  Request* r = heap_[static_cast<size_t>(i)];
  while (i > 0) {
    const int64_t parent = (i - 1) / 2;
    Request* p = heap_[static_cast<size_t>(parent)];
    if (!before(r, p)) break;
    heap_[static_cast<size_t>(i)] = p;
    p->heap_index = i;
    i = parent;
  }
  heap_[static_cast<size_t>(i)] = r;
  r->heap_index = i;
}

void Batcher::sift_down(int64_t i) {
  const int64_t n = static_cast<int64_t>(heap_.size());
  Request* r = heap_[static_cast<size_t>(i)];
  for (;;) {
    int64_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n &&
        before(heap_[static_cast<size_t>(child + 1)], heap_[static_cast<size_t>(child)])) {
      ++child;
    }
    Request* c = heap_[static_cast<size_t>(child)];
    if (!before(c, r)) break;
    heap_[static_cast<size_t>(i)] = c;
    c->heap_index = i;
    i = child;
  }
  heap_[static_cast<size_t>(i)] = r;
  r->heap_index = i;
}

void Batcher::heap_push(Request* r) {
  heap_.push_back(r);
  sift_up(static_cast<int64_t>(heap_.size()) - 1);
  r->older = newest_;
  r->newer = nullptr;
  if (newest_ != nullptr) newest_->newer = r;
  newest_ = r;
  if (oldest_ == nullptr) oldest_ = r;
}

void Batcher::heap_remove(Request* r) {
  const int64_t i = r->heap_index;
  Request* last = heap_.back();
  heap_.pop_back();
  if (last != r) {
    heap_[static_cast<size_t>(i)] = last;
    last->heap_index = i;
    sift_down(i);
    sift_up(last->heap_index);
  }
  r->heap_index = -1;
}

void Batcher::unlink(Request* r) {
  if (r->older != nullptr) r->older->newer = r->newer;
  else oldest_ = r->newer;
  if (r->newer != nullptr) r->newer->older = r->older;
  else newest_ = r->older;
  r->older = r->newer = nullptr;
}

bool Batcher::admit(Request& r, const float* x, int64_t rows, float* out,
                    Clock::time_point deadline, int priority, bool& wake) {
  const auto now = Clock::now();
  BatchResult& res = r.result;
  if (closing_) {
    res.status = BatchStatus::ShuttingDown;
    ++shut_down_;
  } else if (deadline <= now) {
    res.status = BatchStatus::Deadline;
    ++deadline_misses_;
  } else if (queued_rows_ + rows > config_.queue_capacity_rows) {
    res.status = BatchStatus::Overloaded;
    res.queued_rows = queued_rows_;
    ++rejected_;
  } else {
    const int64_t b = config_.max_batch_rows;
    // The batch being computed, the batches queued ahead and this request's own would use up
    // (most of) its time: refuse it now, while the caller can still go elsewhere, rather than
    // queue it to fail at its deadline. Only when something is ahead: an idle batcher
    // always tries.
    const double wait = static_cast<double>((queued_rows_ + rows + b - 1) / b +
                                            (in_flight_rows_ > 0 ? 1 : 0)) *
                        service_seconds_;
    if (config_.admit_share > 0.0 && deadline != kNoDeadline &&
        (queued_rows_ > 0 || in_flight_rows_ > 0) &&
        wait > config_.admit_share * seconds(deadline - now)) {
      res.status = BatchStatus::Overloaded;
      res.queued_rows = queued_rows_;
      res.expected_wait_seconds = wait;
      ++rejected_;
    } else {
      r.x = x;
      r.out = out;
      r.rows = rows;
      r.deadline = deadline;
      r.enqueued = now;
      r.priority = priority;
      r.seq = ++seq_;
      r.state = State::Queued;
      heap_push(&r);
      queued_rows_ += rows;
      ++requests_;
      // Wake a worker only when it has something new to do: the first request (workers
      // sleep on an empty queue) or a full batch (the one waiting for it to fill stops
      // waiting). A wake-up per request would cost a thread switch each, for nothing.
      wake = heap_.size() == 1 || queued_rows_ >= b;
      return true;
    }
  }
  r.state = State::Done;
  return false;
}

void Batcher::finish_unqueued(Request* r, BatchStatus status, Clock::time_point now,
                              std::vector<BatchTicket*>* tickets) {
  heap_remove(r);
  unlink(r);
  queued_rows_ -= r->rows;
  r->result.status = status;
  r->result.queue_seconds = seconds(now - r->enqueued);
  if (status == BatchStatus::Deadline) ++deadline_misses_;
  if (status == BatchStatus::ShuttingDown) ++shut_down_;
  r->state = State::Done;
  if (closing_) idle_cv_.notify_all();
  if (r->bell != nullptr) r->bell->ring();  // last: r may be gone right after
  else if (tickets != nullptr) tickets->push_back(r->ticket);
}

BatchResult Batcher::predict(const float* x, int64_t rows, float* out,
                             Clock::time_point deadline, int priority) {
  DUCKLEARN_CHECK_ARG(rows >= 1 && rows <= config_.queue_capacity_rows,
                      "rows must be in [1, queue_capacity_rows] (" +
                          std::to_string(config_.queue_capacity_rows) + "), got " +
                          std::to_string(rows) + "; split the request");
  DUCKLEARN_CHECK_ARG(x != nullptr && out != nullptr, "x and out must not be null");
  detail::BatchDoorbell bell;
  Request r;
  r.bell = &bell;
  bool wake = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!admit(r, x, rows, out, deadline, priority, wake)) return std::move(r.result);
  }
  // After unlocking: a worker woken while the lock is held would only block on it again.
  if (wake) work_cv_.notify_one();
  if (deadline == kNoDeadline || !bell.wait_until(deadline)) {
    if (deadline != kNoDeadline) {
      std::lock_guard<std::mutex> lk(mu_);
      if (r.state == State::Queued) {  // still waiting for a worker: withdraw it
        finish_unqueued(&r, BatchStatus::Deadline, Clock::now(), nullptr);
        return std::move(r.result);
      }
    }
    // Being computed (or just answered): the worker writes into `out` and rings last, so
    // this frame must wait for the bell, deadline or not.
    bell.wait();
  }
  return std::move(r.result);
}

bool Batcher::submit(BatchTicket& ticket, const float* x, int64_t rows, float* out,
                     Clock::time_point deadline, int priority) {
  DUCKLEARN_CHECK_ARG(static_cast<bool>(config_.on_tickets),
                      "submit() needs BatcherConfig::on_tickets to report answers");
  DUCKLEARN_CHECK_ARG(rows >= 1 && rows <= config_.queue_capacity_rows,
                      "rows must be in [1, queue_capacity_rows] (" +
                          std::to_string(config_.queue_capacity_rows) + "), got " +
                          std::to_string(rows) + "; split the request");
  DUCKLEARN_CHECK_ARG(x != nullptr && out != nullptr, "x and out must not be null");
  Request& r = ticket.req_;
  DUCKLEARN_CHECK_ARG(r.state == State::Idle, "a ticket can be submitted only once");
  r.bell = nullptr;
  r.ticket = &ticket;
  bool wake = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!admit(r, x, rows, out, deadline, priority, wake)) return false;
  }
  if (wake) work_cv_.notify_one();
  return true;
}

bool Batcher::cancel(BatchTicket& ticket) {
  std::lock_guard<std::mutex> lk(mu_);
  Request& r = ticket.req_;
  if (r.state != State::Queued) return false;
  finish_unqueued(&r, BatchStatus::Deadline, Clock::now(), nullptr);
  return true;
}

void Batcher::swap(std::shared_ptr<const Predictor> predictor, uint64_t version) {
  swap(batch_model(std::move(predictor)), version);
}

void Batcher::swap(std::shared_ptr<const BatchModel> model, uint64_t version) {
  DUCKLEARN_CHECK_ARG(model != nullptr, "model must not be null");
  DUCKLEARN_CHECK_ARG(model->n_inputs() == n_inputs_ && model->n_outputs() == n_outputs_,
                      "the new model takes " + std::to_string(model->n_inputs()) +
                          " inputs and gives " + std::to_string(model->n_outputs()) +
                          " outputs, the served one " + std::to_string(n_inputs_) + " and " +
                          std::to_string(n_outputs_) + ": serve it with a new Batcher");
  {
    std::lock_guard<std::mutex> lk(mu_);
    std::swap(model_, model);
    version_ = version;
    ++swaps_;
  }
  // The old model is released here, outside the lock: its destructor may need other locks
  // (a model owned by an interpreter takes the interpreter's).
}

uint64_t Batcher::version() const {
  std::lock_guard<std::mutex> lk(mu_);
  return version_;
}

void Batcher::set_service_seconds(double s) {
  DUCKLEARN_CHECK_ARG(std::isfinite(s) && s >= 0.0, "service seconds must be finite and >= 0");
  std::lock_guard<std::mutex> lk(mu_);
  service_seconds_ = s;
}

bool Batcher::closed() const {
  std::lock_guard<std::mutex> lk(mu_);
  return closing_;
}

BatcherStats Batcher::stats() const {
  BatcherStats s;
  std::lock_guard<std::mutex> lk(mu_);
  s.requests = requests_;
  s.batches = batches_;
  s.rows = rows_;
  s.rejected = rejected_;
  s.deadline_misses = deadline_misses_;
  s.errors = errors_;
  s.shut_down = shut_down_;
  s.swaps = swaps_;
  s.version = version_;
  s.queued_rows = queued_rows_;
  s.queued_requests = static_cast<int64_t>(heap_.size());
  s.in_flight_rows = in_flight_rows_;
  s.service_seconds = service_seconds_;
  s.latency = latency_.snapshot();
  s.batch_rows = batch_hist_.snapshot();
  return s;
}

bool Batcher::on_worker_thread() const {
  // worker_ids_ is fixed once the constructor returns (threads_ changes as they are joined).
  return std::find(worker_ids_.begin(), worker_ids_.end(), std::this_thread::get_id()) !=
         worker_ids_.end();
}

void Batcher::report(std::vector<BatchTicket*>& tickets) {
  try {
    config_.on_tickets(tickets.data(), static_cast<int64_t>(tickets.size()));
#if defined(__GLIBCXX__)
  } catch (abi::__forced_unwind&) {
    throw;  // thread cancellation must propagate (see worker_main)
#endif
  } catch (...) {
    // The sink must not throw (it is documented noexcept); a worker must not die of it.
  }
  tickets.clear();
}

bool Batcher::close(bool drain, double timeout_seconds) {
  const auto until = after(Clock::now(), timeout_seconds);
  std::vector<BatchTicket*> tickets;
  bool stopped = false;
  {
    std::unique_lock<std::mutex> lk(mu_);
    closing_ = true;
    work_cv_.notify_all();  // a worker waiting for its batch to fill takes it now
    if (drain) {
      wait_until(idle_cv_, lk, until, [this] { return heap_.empty() && in_flight_rows_ == 0; });
    }
    const auto now = Clock::now();
    while (!heap_.empty()) finish_unqueued(heap_.front(), BatchStatus::ShuttingDown, now, &tickets);
    stopping_ = true;
    work_cv_.notify_all();
    wait_until(idle_cv_, lk, until, [this] { return live_workers_ == 0; });
    stopped = live_workers_ == 0;
  }
  if (!tickets.empty()) report(tickets);
  if (stopped) {
    std::lock_guard<std::mutex> j(join_mu_);
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  return stopped;
}

void Batcher::worker_main() {
  const int64_t cap = config_.max_batch_rows;
  // Sized once: a batch of several requests never exceeds max_batch_rows (a larger single
  // request is computed in place, in its caller's buffers).
  std::vector<float> xbuf(static_cast<size_t>(cap * n_inputs_));
  std::vector<float> obuf(static_cast<size_t>(cap * n_outputs_));
  std::vector<Request*> batch;
  batch.reserve(static_cast<size_t>(cap));
  std::vector<BatchTicket*> tickets;
  tickets.reserve(static_cast<size_t>(cap));
  std::vector<detail::BatchDoorbell*> bells;
  bells.reserve(static_cast<size_t>(cap));
  Workspace ws;
  // Counted out however the thread ends: a model may end it from inside (thread
  // cancellation), and close() waits for the count to reach zero.
  struct Leaving {
    Batcher* b;
    ~Leaving() {
      std::lock_guard<std::mutex> g(b->mu_);
      --b->live_workers_;
      b->idle_cv_.notify_all();
    }
  } leaving{this};

  std::unique_lock<std::mutex> lk(mu_);  // released before `leaving` takes it again
  for (;;) {
    while (heap_.empty() && !stopping_) work_cv_.wait(lk);
    if (heap_.empty()) break;  // stopping, and nothing left to answer
    if (max_wait_.count() > 0 && !closing_ && queued_rows_ < cap) {
      // Let the batch fill until it is full or its oldest request has waited max_wait.
      while (oldest_ != nullptr && !closing_ && queued_rows_ < cap) {
        const auto until = oldest_->enqueued + max_wait_;
        if (Clock::now() >= until) break;
        work_cv_.wait_until(lk, until);
      }
      if (heap_.empty()) continue;  // every waiting caller gave up
    }

    const auto taken = Clock::now();
    int64_t rows = 0;
    batch.clear();
    while (!heap_.empty()) {
      Request* r = heap_.front();
      if (r->deadline <= taken) {  // expired in the queue: never computed
        finish_unqueued(r, BatchStatus::Deadline, taken, &tickets);
        continue;
      }
      if (rows > 0 && rows + r->rows > cap) break;
      heap_remove(r);
      unlink(r);
      queued_rows_ -= r->rows;
      r->state = State::InFlight;
      r->result.queue_seconds = seconds(taken - r->enqueued);
      batch.push_back(r);
      rows += r->rows;
    }
    const bool rest = !heap_.empty();  // for an idle worker, woken once the lock is free
    if (batch.empty()) {
      if (!tickets.empty()) {
        lk.unlock();
        report(tickets);
        lk.lock();
      }
      continue;
    }
    in_flight_rows_ += rows;
    const uint64_t id = ++batch_seq_;
    std::shared_ptr<const BatchModel> model = model_;  // the version this batch computes with
    const uint64_t version = version_;
    const bool backlog = rest;
    lk.unlock();
    if (rest) work_cv_.notify_one();
    if (!tickets.empty()) report(tickets);

    // Compute without the lock. The requests are this worker's until it marks them Done:
    // their callers wait (even past their deadlines), so their buffers stay valid.
    const int64_t din = n_inputs_, dout = n_outputs_;
    const bool single = batch.size() == 1;
    const float* in = single ? batch[0]->x : xbuf.data();
    float* out = single ? batch[0]->out : obuf.data();
    if (!single) {
      float* dst = xbuf.data();
      for (Request* r : batch) {
        std::memcpy(dst, r->x, static_cast<size_t>(r->rows * din) * sizeof(float));
        dst += r->rows * din;
      }
    }
    std::exception_ptr error;
    std::string message;
    try {
      model->predict(in, rows, out, ws);
#if defined(__GLIBCXX__)
    } catch (abi::__forced_unwind&) {
      // The thread is being cancelled (e.g. a model that needs an interpreter which is
      // finalizing ends the calling thread): not a model error, and it must propagate.
      throw;
#endif
    } catch (const std::exception& e) {
      error = std::current_exception();
      message = e.what();
    } catch (...) {
      error = std::current_exception();
      message = "unknown exception";
    }
    int64_t offset = 0;
    for (Request* r : batch) {
      BatchResult& res = r->result;
      if (error) {
        res.status = BatchStatus::Error;
        res.error = error;
        res.message = message;
        continue;
      }
      const float* o = out + offset * dout;
      offset += r->rows;
      const int64_t bad = first_non_finite(o, r->rows * dout);
      if (bad >= 0) {
        // A diverged model: serving NaN would be a silent wrong answer.
        res.status = BatchStatus::Error;
        res.message = "the model returned a non-finite output (row " +
                      std::to_string(bad / dout) + ", output " + std::to_string(bad % dout) +
                      " of this request)";
        res.error = std::make_exception_ptr(NonFiniteOutput(res.message));
        continue;
      }
      if (!single) std::memcpy(r->out, o, static_cast<size_t>(r->rows * dout) * sizeof(float));
      res.status = BatchStatus::Ok;
    }
    const auto done = Clock::now();
    const double spent = seconds(done - taken);

    lk.lock();
    for (Request* r : batch) {
      BatchResult& res = r->result;
      res.version = version;
      res.batch = id;
      res.batch_rows = rows;
      res.computed = true;
      res.compute_seconds = spent;
      if (res.status == BatchStatus::Ok && done > r->deadline) {
        res.status = BatchStatus::Deadline;  // answered, but after its deadline
        ++deadline_misses_;
      } else if (res.status == BatchStatus::Ok) {
        rows_ += static_cast<uint64_t>(r->rows);
        latency_.observe(seconds(done - r->enqueued));
      } else {
        ++errors_;
      }
      r->state = State::Done;
      if (r->bell != nullptr) bells.push_back(r->bell);
      else tickets.push_back(r->ticket);
    }
    ++batches_;
    batch_hist_.observe(static_cast<double>(rows));
    in_flight_rows_ -= rows;
    // Admission control's service time: when this batch followed the last one straight
    // from the queue, the time between their ends (what a queued batch really waits per
    // batch ahead, with several workers and whatever else competes for the cores); else its
    // own time.
    double sample = spent;
    if (last_backlog_ && done > last_end_) sample = std::min(sample, seconds(done - last_end_));
    service_seconds_ =
        service_seconds_ == 0.0 ? sample : service_seconds_ + 0.2 * (sample - service_seconds_);
    if (done > last_end_) last_end_ = done;
    last_backlog_ = backlog;
    if (closing_) idle_cv_.notify_all();
    lk.unlock();
    // The callers are woken outside the lock (they do not need it to return); each bell is
    // the last use of its request.
    for (detail::BatchDoorbell* bell : bells) bell->ring();
    bells.clear();
    // References dropped outside the lock: a model's or a Python exception's destructor may
    // take the interpreter's lock.
    model.reset();
    error = nullptr;
    if (!tickets.empty()) report(tickets);
    lk.lock();
  }
}

}  // namespace ducklearn
