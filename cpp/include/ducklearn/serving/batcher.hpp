#pragma once
/**
 * Dynamic batching for callers that block: many threads each ask for a few rows, worker
 * threads gather whatever is queued into one contiguous batch, compute it with one model call
 * and write every caller's outputs straight into the caller's buffer.
 *
 * Why in C++: a batcher written in Python needs the interpreter lock to collect, concatenate,
 * split and hand out every batch, so under load it competes with its own callers for that
 * lock and each hand-off is an interpreter-level wake-up. Here a waiting caller costs a
 * condition variable, the queue is a heap of pointers to requests that live on the callers'
 * stacks, and nothing on the request path allocates.
 *
 * Semantics:
 * - Requests are taken highest priority first, equal priorities in arrival order. A batch
 *   holds at most max_batch_rows rows (a larger single request is a batch of its own) and
 *   waits until it is full or its oldest request has waited max_wait_us.
 * - A request whose deadline has passed when a worker takes it is never computed
 *   (Deadline). A caller whose deadline passes while its request is still queued removes it
 *   and returns Deadline; if the request is already being computed the caller waits for that
 *   batch (the worker writes into the caller's buffer) and then returns Deadline.
 * - A full queue refuses at once (Overloaded), and so does admission control: a request is
 *   refused when the work queued ahead of it is expected to take more than admit_share of
 *   its remaining time.
 * - swap() replaces the model and its version atomically; a batch computes with, and
 *   reports, the model it started with.
 * - A model that throws, or returns NaN/inf for a request's rows, fails those requests with
 *   Error and the exception; the caller decides what to answer (e.g. a fallback).
 * - close() stops intake (ShuttingDown); with drain it first answers what was accepted.
 *
 * Besides blocking predict(), submit() queues a caller-owned BatchTicket whose completion is
 * reported to a sink (one call per batch), for callers that cannot block (event loops).
 */
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ducklearn/export.hpp"
#include "ducklearn/nn/sequential.hpp"

namespace ducklearn {

class Predictor;

/**
 * An immutable model a Batcher computes with. Any number of workers call predict() at once,
 * each with its own Workspace, so implementations must not mutate shared state.
 */
class DUCKLEARN_EXPORT BatchModel {
 public:
  virtual ~BatchModel() = default;
  virtual int64_t n_inputs() const = 0;
  virtual int64_t n_outputs() const = 0;
  /** x: n × n_inputs, row-major; out: n × n_outputs. May throw: the batch then fails. */
  virtual void predict(const float* x, int64_t n, float* out, Workspace& ws) const = 0;
};

/** A Predictor snapshot as a BatchModel (shares ownership of the snapshot). */
DUCKLEARN_EXPORT std::shared_ptr<const BatchModel> batch_model(
    std::shared_ptr<const Predictor> predictor);

/** The model returned NaN or infinity for a request's rows. */
class DUCKLEARN_EXPORT NonFiniteOutput : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class BatchStatus : int {
  Ok = 0,            ///< outputs written
  Deadline = 1,      ///< deadline passed: never computed, or computed too late (see computed)
  Overloaded = 2,    ///< refused at once: queue full, or not enough time for the work ahead
  ShuttingDown = 3,  ///< the batcher is closing or closed
  Error = 4,         ///< the model threw or returned non-finite outputs (see error)
};

/** What happened to one request. */
struct BatchResult {
  BatchStatus status = BatchStatus::Ok;
  uint64_t version = 0;            ///< version of the model that computed it (when computed)
  uint64_t batch = 0;              ///< sequence number (from 1) of its batch; 0 if never in one
  int64_t batch_rows = 0;          ///< rows in its batch
  bool computed = false;           ///< the model ran on its rows
  double queue_seconds = 0.0;      ///< from submission until taken into a batch (or removed)
  double compute_seconds = 0.0;    ///< its batch's gather + model call + checks
  int64_t queued_rows = 0;         ///< Overloaded: rows that were queued when it was refused
  double expected_wait_seconds = 0.0;  ///< Overloaded by admission control: estimated wait
  std::exception_ptr error;        ///< Error: what the model threw (or a NonFiniteOutput)
  std::string message;             ///< Error: the exception's message
};

class BatchTicket;

namespace detail {
class BatchDoorbell;  // how a blocking caller sleeps (batcher.cpp)

/** One request in the queue; lives on a blocking caller's stack or inside a BatchTicket. */
struct BatchRequest {
  enum class State : uint8_t { Idle, Queued, InFlight, Done };
  const float* x = nullptr;
  float* out = nullptr;
  int64_t rows = 0;
  std::chrono::steady_clock::time_point deadline{};
  std::chrono::steady_clock::time_point enqueued{};
  int priority = 0;
  uint64_t seq = 0;
  int64_t heap_index = -1;
  BatchRequest* older = nullptr;  ///< arrival-order list, for the oldest request's wait
  BatchRequest* newer = nullptr;
  State state = State::Idle;
  BatchDoorbell* bell = nullptr;  ///< a blocking caller sleeps on it
  BatchTicket* ticket = nullptr;  ///< or a ticket is reported to the sink
  BatchResult result;
};
}  // namespace detail

/**
 * A request queued with Batcher::submit(). The owner keeps it (and the buffers it points
 * to) alive until the sink has reported it or cancel() returned true; the batcher does not
 * touch it after either.
 */
class DUCKLEARN_EXPORT BatchTicket {
 public:
  BatchTicket() = default;
  BatchTicket(const BatchTicket&) = delete;
  BatchTicket& operator=(const BatchTicket&) = delete;
  virtual ~BatchTicket() = default;
  /** The outcome; final once the sink reported the ticket or cancel() returned true. */
  const BatchResult& result() const { return req_.result; }

 private:
  friend class Batcher;
  detail::BatchRequest req_;
};

/** Fixed-bucket histogram contents: counts[i] values <= bounds[i] (and > bounds[i-1]). */
struct HistogramSnapshot {
  std::vector<double> bounds;     ///< ascending; the last is +infinity
  std::vector<uint64_t> counts;   ///< non-cumulative, one per bound
  double sum = 0.0;
  uint64_t count = 0;
};

/** Counters since construction and the current queue state. */
struct BatcherStats {
  uint64_t requests = 0;         ///< accepted into the queue
  uint64_t batches = 0;          ///< model calls
  uint64_t rows = 0;             ///< rows answered Ok
  uint64_t rejected = 0;         ///< Overloaded
  uint64_t deadline_misses = 0;  ///< Deadline, whatever the cause
  uint64_t errors = 0;           ///< requests answered Error
  uint64_t shut_down = 0;        ///< ShuttingDown
  uint64_t swaps = 0;
  uint64_t version = 0;          ///< current model version
  int64_t queued_rows = 0;
  int64_t queued_requests = 0;
  int64_t in_flight_rows = 0;    ///< rows in batches being computed
  double service_seconds = 0.0;  ///< admission control's estimate of one batch's service time
  HistogramSnapshot latency;     ///< seconds from submission to answer, Ok requests
  HistogramSnapshot batch_rows;  ///< rows per model call
};

/** Batcher settings; validate() names the first bad one. */
struct DUCKLEARN_EXPORT BatcherConfig {
  int64_t max_batch_rows = 64;
  double max_wait_us = 200.0;          ///< how long the oldest request may wait for a full batch
  int64_t queue_capacity_rows = 10000;
  int workers = 2;                     ///< compute threads; each owns its batch buffers
  double admit_share = 0.75;           ///< 0 turns admission control off
  double service_seconds = 0.0;        ///< initial service-time estimate (e.g. from a warm-up)
  std::vector<double> latency_bounds;  ///< seconds; empty: 50 µs ... 1 s
  std::vector<double> batch_bounds;    ///< rows; empty: 1, 2, 4, ..., 1024
  /**
   * Receives finished tickets (submit()), a batch at a time, from a worker or from close(),
   * with no batcher lock held. Needed only for submit(). It must not throw, nor destroy the
   * Batcher (see Batcher::on_worker_thread()).
   */
  std::function<void(BatchTicket* const* tickets, int64_t n)> on_tickets;

  void validate() const;
};

class DUCKLEARN_EXPORT Batcher {
 public:
  using Clock = std::chrono::steady_clock;
  /** A deadline that never passes. */
  static constexpr Clock::time_point kNoDeadline = Clock::time_point::max();

  /** Starts config.workers threads computing with `model` labelled `version`. */
  Batcher(std::shared_ptr<const BatchModel> model, uint64_t version, BatcherConfig config);
  Batcher(std::shared_ptr<const Predictor> predictor, uint64_t version, BatcherConfig config);
  /** close(false), then waits for the workers (a batch being computed finishes first). */
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  int64_t n_inputs() const { return n_inputs_; }
  int64_t n_outputs() const { return n_outputs_; }
  const BatcherConfig& config() const { return config_; }

  /**
   * Computes `rows` rows in a batch with other callers' and blocks until they are answered.
   * x: rows × n_inputs, row-major; out: rows × n_outputs, written when the status is Ok
   * (or Deadline with computed). 1 <= rows <= queue_capacity_rows, else invalid_argument.
   * Thread-safe; allocates nothing.
   */
  BatchResult predict(const float* x, int64_t rows, float* out, Clock::time_point deadline,
                      int priority);

  /**
   * Queues `ticket` for x (rows × n_inputs) into out (rows × n_outputs) and returns true;
   * the sink reports it once answered. Returns false, with ticket.result() saying why, when
   * it is refused at once (it is then never reported). Needs config.on_tickets.
   */
  bool submit(BatchTicket& ticket, const float* x, int64_t rows, float* out,
              Clock::time_point deadline, int priority);

  /**
   * Withdraws a ticket that is still queued: true, and its result is Deadline (never
   * computed), with no sink report. False when it is being computed or already answered.
   */
  bool cancel(BatchTicket& ticket);

  /** Computes later batches with `model` labelled `version`; same input and output width. */
  void swap(std::shared_ptr<const BatchModel> model, uint64_t version);
  void swap(std::shared_ptr<const Predictor> predictor, uint64_t version);
  uint64_t version() const;

  /** Replaces admission control's service-time estimate (seconds per batch). */
  void set_service_seconds(double seconds);

  BatcherStats stats() const;

  /**
   * Whether the calling thread is one of this batcher's workers (e.g. inside the ticket
   * sink): such a thread must not destroy the batcher, which waits for its workers.
   */
  bool on_worker_thread() const;

  /**
   * Stops intake (later requests get ShuttingDown). With `drain`, first waits up to
   * `timeout_seconds` for queued and in-flight requests to be answered; requests still queued
   * then get ShuttingDown. Returns true when every worker has stopped (they are joined), false
   * when a batch was still running at the timeout (the destructor waits for it).
   */
  bool close(bool drain, double timeout_seconds = std::numeric_limits<double>::infinity());
  bool closed() const;

 private:
  using Request = detail::BatchRequest;

  struct Histogram {
    std::vector<double> bounds;
    std::vector<uint64_t> counts;
    double sum = 0.0;
    uint64_t count = 0;
    void observe(double v);
    HistogramSnapshot snapshot() const;
  };

  /**
   * Admits r (queued; `wake`: a worker should be notified once mu_ is released) or fills
   * r.result with the refusal; mu_ held.
   */
  bool admit(Request& r, const float* x, int64_t rows, float* out, Clock::time_point deadline,
             int priority, bool& wake);
  void heap_push(Request* r);
  void heap_remove(Request* r);
  void sift_up(int64_t i);
  void sift_down(int64_t i);
  void unlink(Request* r);
  /** Removes a queued request, answering it `status`; mu_ held. Returns it for the sink. */
  void finish_unqueued(Request* r, BatchStatus status, Clock::time_point now,
                       std::vector<BatchTicket*>* tickets);
  void worker_main();
  void report(std::vector<BatchTicket*>& tickets);

  BatcherConfig config_;
  int64_t n_inputs_ = 0;
  int64_t n_outputs_ = 0;
  Clock::duration max_wait_{};

  mutable std::mutex mu_;
  std::condition_variable work_cv_;  ///< workers: work arrived, a batch filled, closing
  std::condition_variable idle_cv_;  ///< close(): a batch finished, a worker stopped
  std::vector<Request*> heap_;       ///< highest priority, then oldest, first
  Request* oldest_ = nullptr;        ///< arrival-order list of queued requests
  Request* newest_ = nullptr;
  int64_t queued_rows_ = 0;
  int64_t in_flight_rows_ = 0;
  uint64_t seq_ = 0;
  uint64_t batch_seq_ = 0;
  std::shared_ptr<const BatchModel> model_;
  uint64_t version_ = 0;
  bool closing_ = false;   ///< no intake, no waiting for batches to fill
  bool stopping_ = false;  ///< workers exit once the queue is empty
  int live_workers_ = 0;
  double service_seconds_ = 0.0;
  Clock::time_point last_end_{};
  bool last_backlog_ = false;

  uint64_t requests_ = 0, batches_ = 0, rows_ = 0, rejected_ = 0, deadline_misses_ = 0,
           errors_ = 0, shut_down_ = 0, swaps_ = 0;
  Histogram latency_;
  Histogram batch_hist_;

  std::mutex join_mu_;  ///< one close() joins the workers
  std::vector<std::thread> threads_;
  std::vector<std::thread::id> worker_ids_;
};

}  // namespace ducklearn
