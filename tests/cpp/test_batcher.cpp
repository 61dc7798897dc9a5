// The serving batcher: batching, priorities, deadlines (fail fast, never computed, a caller
// whose request is being computed waits for its batch), cancellation, overload and admission
// control, hot swap under load with every answer labelled by the version that computed it,
// errors, shutdown with and without drain, and many threads against direct prediction.
//
// No assertion depends on timing: tests that need a batch to be "in progress" hold the model
// at a gate, and every wait for a state is a bounded poll that fails loudly if it never comes.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ducklearn/serving/batcher.hpp"
#include "ducklearn/stream/predictor.hpp"
#include "test_util.hpp"

namespace {

using ducklearn::Batcher;
using ducklearn::BatcherConfig;
using ducklearn::BatchModel;
using ducklearn::BatchResult;
using ducklearn::BatchStatus;
using ducklearn::BatchTicket;
using ducklearn::Workspace;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr int64_t D = 3;
constexpr float kThrow = -1000.0f;  // a row starting with this makes the model throw
constexpr float kNaN = -2000.0f;    // ... or return NaN for that row

/** Blocks the model's callers while closed; tells the test when a batch is waiting at it. */
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = true;
  int waiting = 0;

  void close() {
    std::lock_guard<std::mutex> lk(mu);
    open = false;
  }
  void release() {
    std::lock_guard<std::mutex> lk(mu);
    open = true;
    cv.notify_all();
  }
  void pass() {
    std::unique_lock<std::mutex> lk(mu);
    ++waiting;
    cv.notify_all();
    cv.wait(lk, [this] { return open; });
    --waiting;
  }
  /** Waits (bounded) until `n` batches are held at the gate. */
  bool wait_for_waiting(int n) {
    std::unique_lock<std::mutex> lk(mu);
    return cv.wait_for(lk, 10s, [&] { return waiting >= n; });
  }
};

/** What the model saw: the first value of every row, batch by batch. */
struct Log {
  std::mutex mu;
  std::vector<std::vector<float>> batches;
  std::atomic<int> finished{0};  ///< batches whose outputs are fully written

  std::vector<float> ids() {
    std::lock_guard<std::mutex> lk(mu);
    std::vector<float> out;
    for (const auto& b : batches) out.insert(out.end(), b.begin(), b.end());
    return out;
  }
  size_t n_batches() {
    std::lock_guard<std::mutex> lk(mu);
    return batches.size();
  }
};

/**
 * out[i, j] = (j + 1) * sum(x[i, :]) + offset, computed per row: batching cannot change a
 * bit of it. Small integers keep the sums exact. Rows starting with kThrow / kNaN fail.
 */
class TestModel final : public BatchModel {
 public:
  TestModel(float offset, std::shared_ptr<Gate> gate, std::shared_ptr<Log> log, int64_t k = 2)
      : offset_(offset), k_(k), gate_(std::move(gate)), log_(std::move(log)) {}
  int64_t n_inputs() const override { return D; }
  int64_t n_outputs() const override { return k_; }
  void predict(const float* x, int64_t n, float* out, Workspace&) const override {
    if (log_) {
      std::vector<float> ids;
      for (int64_t i = 0; i < n; ++i) ids.push_back(x[i * D]);
      std::lock_guard<std::mutex> lk(log_->mu);
      log_->batches.push_back(std::move(ids));
    }
    if (gate_) gate_->pass();
    for (int64_t i = 0; i < n; ++i) {
      if (x[i * D] == kThrow) throw std::runtime_error("injected failure");
    }
    for (int64_t i = 0; i < n; ++i) {
      float s = 0.0f;
      for (int64_t j = 0; j < D; ++j) s += x[i * D + j];
      for (int64_t j = 0; j < k_; ++j) {
        out[i * k_ + j] = x[i * D] == kNaN ? std::nanf("") : static_cast<float>(j + 1) * s + offset_;
      }
    }
    if (log_) ++log_->finished;
  }
  static float expected(const float* row, int64_t j, float offset) {
    float s = 0.0f;
    for (int64_t c = 0; c < D; ++c) s += row[c];
    return static_cast<float>(j + 1) * s + offset;
  }

 private:
  float offset_;
  int64_t k_;
  std::shared_ptr<Gate> gate_;
  std::shared_ptr<Log> log_;
};

BatcherConfig config(int workers, int64_t max_rows, double wait_us, int64_t capacity = 1000) {
  BatcherConfig c;
  c.workers = workers;
  c.max_batch_rows = max_rows;
  c.max_wait_us = wait_us;
  c.queue_capacity_rows = capacity;
  return c;
}

Clock::time_point in(std::chrono::milliseconds ms) { return Clock::now() + ms; }

std::vector<float> row(float id) { return {id, 1.0f, 2.0f}; }

/** Polls `cond` (bounded: 10 s) so a state that never comes fails instead of hanging. */
template <class F>
bool eventually(F cond) {
  const auto until = Clock::now() + 10s;
  while (!cond()) {
    if (Clock::now() > until) return false;
    std::this_thread::sleep_for(200us);
  }
  return true;
}

/** A caller on its own thread, with its buffers, for tests that need several at once. */
struct Caller {
  std::vector<float> x;
  std::vector<float> out;
  BatchResult result;
  std::atomic<bool> done{false};
  std::thread th;

  Caller(Batcher& b, float id, int priority, Clock::time_point deadline, int64_t rows = 1)
      : out(static_cast<size_t>(rows * b.n_outputs()), -1.0f) {
    for (int64_t i = 0; i < rows; ++i) {
      const auto r = row(id);
      x.insert(x.end(), r.begin(), r.end());
    }
    th = std::thread([this, &b, rows, deadline, priority] {
      result = b.predict(x.data(), rows, out.data(), deadline, priority);
      done = true;
    });
  }
  ~Caller() {
    if (th.joinable()) th.join();
  }
  void join() { th.join(); }
};

/** Collects tickets reported by the sink. */
struct Sink {
  std::mutex mu;
  std::vector<BatchTicket*> reported;
  std::function<void(BatchTicket* const*, int64_t)> fn() {
    return [this](BatchTicket* const* t, int64_t n) {
      std::lock_guard<std::mutex> lk(mu);
      reported.insert(reported.end(), t, t + n);
    };
  }
  bool has(const BatchTicket* t) {
    std::lock_guard<std::mutex> lk(mu);
    return std::find(reported.begin(), reported.end(), t) != reported.end();
  }
};

// ---------------------------------------------------------------------------------------------

TEST(Batcher, ConcurrentCallersAreBatchedAndAnsweredExactly) {
  auto gate = std::make_shared<Gate>();
  auto log = std::make_shared<Log>();
  Batcher b(std::make_shared<TestModel>(0.5f, gate, log), 7, config(1, 32, 0));
  gate->close();
  Caller first(b, 0.0f, 0, Batcher::kNoDeadline);
  ASSERT_TRUE(gate->wait_for_waiting(1));  // the only worker is busy with request 0
  std::vector<std::unique_ptr<Caller>> callers;
  for (int i = 1; i <= 12; ++i) {
    callers.push_back(std::make_unique<Caller>(b, static_cast<float>(i), 0, Batcher::kNoDeadline,
                                               1 + i % 3));
  }
  ASSERT_TRUE(eventually([&] { return b.stats().queued_requests == 12; }));
  gate->release();
  first.join();
  for (auto& c : callers) c->join();
  // The 12 queued requests (24 rows) fit one batch: computed together, answered each.
  ASSERT_EQ(log->n_batches(), 2u);
  for (auto& c : callers) {
    ASSERT_EQ(c->result.status, BatchStatus::Ok);
    EXPECT_EQ(c->result.version, 7u);
    EXPECT_EQ(c->result.batch_rows, 24);
    const int64_t rows = static_cast<int64_t>(c->x.size()) / D;
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        EXPECT_EQ(c->out[static_cast<size_t>(i * 2 + j)],
                  TestModel::expected(&c->x[static_cast<size_t>(i * D)], j, 0.5f));
      }
    }
  }
  const auto s = b.stats();
  EXPECT_EQ(s.requests, 13u);
  EXPECT_EQ(s.batches, 2u);
  EXPECT_EQ(s.rows, 25u);
  EXPECT_EQ(s.latency.count, 13u);
  EXPECT_EQ(s.batch_rows.count, 2u);
  EXPECT_EQ(s.batch_rows.sum, 25.0);
  EXPECT_EQ(s.queued_rows, 0);
  EXPECT_EQ(s.in_flight_rows, 0);
}

TEST(Batcher, ABatchWaitsToFillOnlyUpToMaxRows) {
  auto log = std::make_shared<Log>();
  // A long wait: batches are cut by size. 4 callers of 3 rows and max 6 rows: 2 per batch.
  Batcher b(std::make_shared<TestModel>(0.0f, nullptr, log), 1, config(1, 6, 2e6));
  std::vector<std::unique_ptr<Caller>> callers;
  for (int i = 0; i < 4; ++i) {
    callers.push_back(std::make_unique<Caller>(b, static_cast<float>(i), 0,
                                               Batcher::kNoDeadline, 3));
  }
  for (auto& c : callers) c->join();
  for (auto& c : callers) {
    EXPECT_EQ(c->result.status, BatchStatus::Ok);
    EXPECT_EQ(c->result.batch_rows, 6);
  }
  EXPECT_EQ(log->n_batches(), 2u);
}

TEST(Batcher, HigherPriorityFirstThenArrivalOrder) {
  auto gate = std::make_shared<Gate>();
  auto log = std::make_shared<Log>();
  Batcher b(std::make_shared<TestModel>(0.0f, gate, log), 1, config(1, 1, 0));
  gate->close();
  Caller blocker(b, 0.0f, 0, Batcher::kNoDeadline);
  ASSERT_TRUE(gate->wait_for_waiting(1));
  const std::vector<std::pair<float, int>> order = {{1, 0}, {2, 0}, {3, 5}, {4, 0},
                                                    {5, 9}, {6, 5}, {7, -3}};
  std::vector<std::unique_ptr<Caller>> callers;
  for (const auto& [id, prio] : order) {
    callers.push_back(std::make_unique<Caller>(b, id, prio, Batcher::kNoDeadline));
    const int64_t want = static_cast<int64_t>(callers.size());
    ASSERT_TRUE(eventually([&] { return b.stats().queued_requests == want; }));
  }
  gate->release();
  blocker.join();
  for (auto& c : callers) c->join();
  EXPECT_EQ(log->ids(), (std::vector<float>{0, 5, 3, 6, 1, 2, 4, 7}));
}

TEST(Batcher, DeadlinesFailFastAndExpiredRequestsAreNeverComputed) {
  auto gate = std::make_shared<Gate>();
  auto log = std::make_shared<Log>();
  Sink sink;
  BatcherConfig c = config(1, 1, 0);
  c.on_tickets = sink.fn();
  Batcher b(std::make_shared<TestModel>(0.0f, gate, log), 1, c);
  gate->close();
  Caller blocker(b, 1.0f, 0, Batcher::kNoDeadline);
  ASSERT_TRUE(gate->wait_for_waiting(1));

  // A blocking caller whose deadline passes in the queue: it removes its request and returns.
  std::vector<float> x = row(2.0f), out(2, -1.0f);
  BatchResult r = b.predict(x.data(), 1, out.data(), in(30ms), 0);
  EXPECT_EQ(r.status, BatchStatus::Deadline);
  EXPECT_FALSE(r.computed);
  EXPECT_EQ(out[0], -1.0f);
  EXPECT_EQ(b.stats().queued_rows, 0);

  // No time at all: refused at submission.
  r = b.predict(x.data(), 1, out.data(), Clock::now(), 0);
  EXPECT_EQ(r.status, BatchStatus::Deadline);

  // A ticket nobody cancels, expired by the time the worker takes it: never computed.
  BatchTicket t;
  std::vector<float> tx = row(3.0f), tout(2, -1.0f);
  ASSERT_TRUE(b.submit(t, tx.data(), 1, tout.data(), in(20ms), 0));
  std::this_thread::sleep_for(40ms);  // only to let it expire; nothing asserts on time
  gate->release();
  blocker.join();
  ASSERT_TRUE(eventually([&] { return sink.has(&t); }));
  EXPECT_EQ(t.result().status, BatchStatus::Deadline);
  EXPECT_FALSE(t.result().computed);

  std::vector<float> x5 = row(5.0f);
  r = b.predict(x5.data(), 1, out.data(), in(5000ms), 0);
  EXPECT_EQ(r.status, BatchStatus::Ok);
  EXPECT_EQ(log->ids(), (std::vector<float>{1.0f, 5.0f}));  // 2 and 3 never reached the model
  EXPECT_EQ(b.stats().deadline_misses, 3u);
}

TEST(Batcher, CancelWithdrawsAQueuedTicketWithoutReportingIt) {
  auto gate = std::make_shared<Gate>();
  auto log = std::make_shared<Log>();
  Sink sink;
  BatcherConfig c = config(1, 4, 0);
  c.on_tickets = sink.fn();
  Batcher b(std::make_shared<TestModel>(0.0f, gate, log), 1, c);
  gate->close();
  Caller blocker(b, 1.0f, 0, Batcher::kNoDeadline);
  ASSERT_TRUE(gate->wait_for_waiting(1));
  BatchTicket kept, withdrawn;
  std::vector<float> x1 = row(2.0f), x2 = row(3.0f), o1(2), o2(2);
  ASSERT_TRUE(b.submit(kept, x1.data(), 1, o1.data(), Batcher::kNoDeadline, 0));
  ASSERT_TRUE(b.submit(withdrawn, x2.data(), 1, o2.data(), Batcher::kNoDeadline, 0));
  EXPECT_EQ(b.stats().queued_rows, 2);
  EXPECT_TRUE(b.cancel(withdrawn));
  EXPECT_FALSE(b.cancel(withdrawn));  // once
  EXPECT_EQ(withdrawn.result().status, BatchStatus::Deadline);
  EXPECT_EQ(b.stats().queued_rows, 1);
  EXPECT_THROW(b.submit(withdrawn, x2.data(), 1, o2.data(), Batcher::kNoDeadline, 0),
               std::invalid_argument);  // a ticket is used once
  gate->release();
  blocker.join();
  ASSERT_TRUE(eventually([&] { return sink.has(&kept); }));
  EXPECT_EQ(kept.result().status, BatchStatus::Ok);
  EXPECT_EQ(o1[0], TestModel::expected(x1.data(), 0, 0.0f));
  EXPECT_FALSE(b.cancel(kept));  // already answered
  EXPECT_FALSE(sink.has(&withdrawn));
  EXPECT_EQ(log->ids(), (std::vector<float>{1.0f, 2.0f}));
}

TEST(Batcher, ACallerWhoseRequestIsBeingComputedReturnsOnlyAfterItsBatch) {
  auto gate = std::make_shared<Gate>();
  auto log = std::make_shared<Log>();
  Batcher b(std::make_shared<TestModel>(0.0f, gate, log), 3, config(1, 1, 0));
  gate->close();
  Caller c(b, 4.0f, 0, in(20ms));
  ASSERT_TRUE(gate->wait_for_waiting(1));  // taken before its deadline, now held mid-batch
  std::this_thread::sleep_for(60ms);       // its deadline passes while it is computed
  EXPECT_FALSE(c.done.load());  // it must not return: the worker writes into its buffer
  gate->release();
  c.join();
  EXPECT_EQ(log->finished.load(), 1);
  EXPECT_EQ(c.result.status, BatchStatus::Deadline);  // answered, but late
  EXPECT_TRUE(c.result.computed);
  EXPECT_EQ(c.result.version, 3u);
  EXPECT_EQ(c.out[0], TestModel::expected(c.x.data(), 0, 0.0f));
}

TEST(Batcher, AFullQueueAndWorkThatCannotMeetTheDeadlineAreRefusedAtOnce) {
  auto gate = std::make_shared<Gate>();
  Batcher b(std::make_shared<TestModel>(0.0f, gate, nullptr), 1, config(1, 1, 0, 4));
  gate->close();
  Caller blocker(b, 0.0f, 0, Batcher::kNoDeadline);
  ASSERT_TRUE(gate->wait_for_waiting(1));
  std::vector<std::unique_ptr<Caller>> queued;
  for (int i = 1; i <= 4; ++i) {
    queued.push_back(std::make_unique<Caller>(b, static_cast<float>(i), 0, Batcher::kNoDeadline));
  }
  ASSERT_TRUE(eventually([&] { return b.stats().queued_rows == 4; }));
  std::vector<float> x = row(9.0f), out(2);
  BatchResult r = b.predict(x.data(), 1, out.data(), Batcher::kNoDeadline, 100);
  EXPECT_EQ(r.status, BatchStatus::Overloaded);
  EXPECT_EQ(r.queued_rows, 4);
  EXPECT_EQ(r.expected_wait_seconds, 0.0);
  EXPECT_THROW(b.predict(x.data(), 5, out.data(), Batcher::kNoDeadline, 0),
               std::invalid_argument);  // more rows than the queue can ever hold
  gate->release();
  blocker.join();
  for (auto& q : queued) q->join();
  for (auto& q : queued) EXPECT_EQ(q->result.status, BatchStatus::Ok);
  EXPECT_EQ(b.stats().rejected, 1u);
}

TEST(Batcher, AdmissionControlRefusesWhatWouldOnlyTimeOut) {
  auto gate = std::make_shared<Gate>();
  Batcher b(std::make_shared<TestModel>(0.0f, gate, nullptr), 1, config(1, 1, 0, 100));
  b.set_service_seconds(0.05);  // as if a batch took 50 ms
  gate->close();
  Caller blocker(b, 0.0f, 0, Batcher::kNoDeadline);
  ASSERT_TRUE(gate->wait_for_waiting(1));
  Caller q1(b, 1.0f, 0, Batcher::kNoDeadline), q2(b, 2.0f, 0, Batcher::kNoDeadline);
  ASSERT_TRUE(eventually([&] { return b.stats().queued_rows == 2; }));
  std::vector<float> x = row(8.0f), out(2);
  // The batch in flight, the 2 queued and its own: 4 x 50 ms > 0.75 x 80 ms.
  BatchResult r = b.predict(x.data(), 1, out.data(), in(80ms), 0);
  EXPECT_EQ(r.status, BatchStatus::Overloaded);
  EXPECT_NEAR(r.expected_wait_seconds, 0.2, 1e-9);
  Caller accepted(b, 9.0f, 0, in(20000ms));  // plenty of time: queued
  ASSERT_TRUE(eventually([&] { return b.stats().queued_rows == 3; }));
  gate->release();
  blocker.join();
  q1.join();
  q2.join();
  accepted.join();
  EXPECT_EQ(accepted.result.status, BatchStatus::Ok);
}

TEST(Batcher, HotSwapUnderLoadLabelsEveryAnswerWithTheVersionThatComputedIt) {
  Batcher b(std::make_shared<TestModel>(1000.0f, nullptr, nullptr), 1, config(2, 8, 100));
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0}, answered{0};
  std::vector<std::vector<int>> seen(4);
  std::vector<std::thread> load;
  for (int k = 0; k < 4; ++k) {
    load.emplace_back([&, k] {
      dltest::Rng rng(static_cast<uint64_t>(k));
      std::vector<float> x(2 * D), out(4);
      while (!stop.load()) {
        const int64_t rows = rng.integer(1, 2);
        for (auto& v : x) v = static_cast<float>(rng.integer(-9, 9));
        const BatchResult r = b.predict(x.data(), rows, out.data(), in(10000ms), 0);
        if (r.status != BatchStatus::Ok) {
          ++bad;
          continue;
        }
        // Version v is TestModel(offset 1000 v): its answers carry its offset.
        const float offset = 1000.0f * static_cast<float>(r.version);
        for (int64_t i = 0; i < rows; ++i) {
          for (int64_t j = 0; j < 2; ++j) {
            if (out[static_cast<size_t>(i * 2 + j)] !=
                TestModel::expected(&x[static_cast<size_t>(i * D)], j, offset)) {
              ++bad;
            }
          }
        }
        seen[static_cast<size_t>(k)].push_back(static_cast<int>(r.version));
        ++answered;
      }
    });
  }
  for (uint64_t v = 2; v <= 30; ++v) {
    const int before = answered.load();
    ASSERT_TRUE(eventually([&] { return answered.load() >= before + 20; }));
    b.swap(std::make_shared<TestModel>(1000.0f * static_cast<float>(v), nullptr, nullptr), v);
  }
  stop = true;
  for (auto& t : load) t.join();
  EXPECT_EQ(bad.load(), 0);
  std::vector<int> versions;
  for (const auto& s : seen) {
    versions.insert(versions.end(), s.begin(), s.end());
    // One caller's answers never go back to an older version.
    EXPECT_TRUE(std::is_sorted(s.begin(), s.end()));
  }
  std::sort(versions.begin(), versions.end());
  versions.erase(std::unique(versions.begin(), versions.end()), versions.end());
  EXPECT_GE(versions.size(), 20u);
  EXPECT_EQ(b.stats().swaps, 29u);
  EXPECT_EQ(b.version(), 30u);
  // Another contract is refused.
  EXPECT_THROW(b.swap(std::make_shared<TestModel>(0.0f, nullptr, nullptr, 3), 99),
               std::invalid_argument);
}

TEST(Batcher, ModelFailuresAndNonFiniteOutputsAreErrorsOfTheirRequests) {
  Batcher b(std::make_shared<TestModel>(0.0f, nullptr, nullptr), 5, config(1, 4, 0));
  std::vector<float> x = row(kThrow), out(2);
  BatchResult r = b.predict(x.data(), 1, out.data(), Batcher::kNoDeadline, 0);
  ASSERT_EQ(r.status, BatchStatus::Error);
  EXPECT_EQ(r.message, "injected failure");
  EXPECT_EQ(r.version, 5u);
  EXPECT_GT(r.batch, 0u);
  EXPECT_THROW(std::rethrow_exception(r.error), std::runtime_error);
  x = row(kNaN);
  r = b.predict(x.data(), 1, out.data(), Batcher::kNoDeadline, 0);
  ASSERT_EQ(r.status, BatchStatus::Error);
  EXPECT_THROW(std::rethrow_exception(r.error), ducklearn::NonFiniteOutput);
  EXPECT_NE(r.message.find("non-finite"), std::string::npos);
  x = row(1.0f);
  r = b.predict(x.data(), 1, out.data(), Batcher::kNoDeadline, 0);
  EXPECT_EQ(r.status, BatchStatus::Ok);  // the batcher goes on
  EXPECT_EQ(b.stats().errors, 2u);
}

TEST(Batcher, InABatchOnlyTheRequestWithNonFiniteOutputsFails) {
  auto gate = std::make_shared<Gate>();
  Batcher b(std::make_shared<TestModel>(0.0f, gate, nullptr), 1, config(1, 8, 0));
  gate->close();
  Caller blocker(b, 0.0f, 0, Batcher::kNoDeadline);
  ASSERT_TRUE(gate->wait_for_waiting(1));
  Caller good(b, 1.0f, 0, Batcher::kNoDeadline), nan(b, kNaN, 0, Batcher::kNoDeadline);
  ASSERT_TRUE(eventually([&] { return b.stats().queued_rows == 2; }));
  gate->release();
  blocker.join();
  good.join();
  nan.join();
  EXPECT_EQ(good.result.status, BatchStatus::Ok);
  EXPECT_EQ(nan.result.status, BatchStatus::Error);
  EXPECT_EQ(good.result.batch, nan.result.batch);  // one batch
}

TEST(Batcher, CloseWithDrainAnswersEverythingAcceptedThenRefuses) {
  auto gate = std::make_shared<Gate>();
  auto log = std::make_shared<Log>();
  Batcher b(std::make_shared<TestModel>(0.0f, gate, log), 1, config(1, 1, 0));
  gate->close();
  std::vector<std::unique_ptr<Caller>> callers;
  for (int i = 0; i < 4; ++i) {
    callers.push_back(std::make_unique<Caller>(b, static_cast<float>(i), 0, Batcher::kNoDeadline));
  }
  ASSERT_TRUE(gate->wait_for_waiting(1));
  ASSERT_TRUE(eventually([&] { return b.stats().queued_rows == 3; }));
  std::atomic<bool> closed{false};
  std::thread closer([&] {
    closed = b.close(true, 30.0);
  });
  ASSERT_TRUE(eventually([&] { return b.closed(); }));
  std::vector<float> x = row(9.0f), out(2);
  EXPECT_EQ(b.predict(x.data(), 1, out.data(), Batcher::kNoDeadline, 0).status,
            BatchStatus::ShuttingDown);
  gate->release();
  closer.join();
  EXPECT_TRUE(closed.load());
  for (auto& c : callers) {
    c->join();
    EXPECT_EQ(c->result.status, BatchStatus::Ok);
  }
  EXPECT_EQ(log->n_batches(), 4u);
  EXPECT_EQ(b.stats().shut_down, 1u);
}

TEST(Batcher, CloseWithoutDrainRefusesTheQueueButFinishesTheBatchInFlight) {
  auto gate = std::make_shared<Gate>();
  Sink sink;
  BatcherConfig c = config(1, 1, 0);
  c.on_tickets = sink.fn();
  Batcher b(std::make_shared<TestModel>(0.0f, gate, nullptr), 1, c);
  gate->close();
  Caller computing(b, 0.0f, 0, Batcher::kNoDeadline);
  ASSERT_TRUE(gate->wait_for_waiting(1));
  Caller queued(b, 1.0f, 0, Batcher::kNoDeadline);
  BatchTicket t;
  std::vector<float> tx = row(2.0f), tout(2);
  ASSERT_TRUE(b.submit(t, tx.data(), 1, tout.data(), Batcher::kNoDeadline, 0));
  ASSERT_TRUE(eventually([&] { return b.stats().queued_rows == 2; }));
  // The batch in flight is held: close gives up on it after the timeout ...
  EXPECT_FALSE(b.close(false, 0.05));
  queued.join();
  EXPECT_EQ(queued.result.status, BatchStatus::ShuttingDown);
  ASSERT_TRUE(sink.has(&t));
  EXPECT_EQ(t.result().status, BatchStatus::ShuttingDown);
  EXPECT_FALSE(computing.done.load());
  gate->release();
  computing.join();
  EXPECT_EQ(computing.result.status, BatchStatus::Ok);  // ... but it still completes
  EXPECT_TRUE(b.close(false));
}

TEST(Batcher, ManyThreadsGetExactlyWhatDirectPredictionGives) {
  // A real snapshot: a 3-64-64-2 MLP.
  ducklearn::Sequential net(D, {64, 64, 2},
                            {ducklearn::Activation::ReLU, ducklearn::Activation::Tanh,
                             ducklearn::Activation::Identity});
  net.init(3);
  auto snap = std::make_shared<const ducklearn::Predictor>(std::move(net), nullptr,
                                                           ducklearn::Task::Regression);
  Batcher b(snap, 1, config(3, 16, 50));
  // The same rows through the row-wise model must match to the bit (gather and scatter
  // exact); through the MLP, to rounding (a different batch size may take another kernel).
  Batcher exact(std::make_shared<TestModel>(0.0f, nullptr, nullptr), 1, config(2, 16, 50));
  constexpr int kThreads = 8, kRequests = 400;
  std::atomic<int> mismatches{0}, exact_mismatches{0}, failures{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < kThreads; ++k) {
    threads.emplace_back([&, k] {
      dltest::Rng rng(100 + static_cast<uint64_t>(k));
      Workspace ws;
      std::vector<float> x(4 * D), out(8), want(8);
      for (int i = 0; i < kRequests; ++i) {
        const int64_t rows = rng.integer(1, 4);
        for (auto& v : x) v = static_cast<float>(rng.integer(-5, 5));
        BatchResult r = b.predict(x.data(), rows, out.data(), in(30000ms), k % 3);
        if (r.status != BatchStatus::Ok) {
          ++failures;
          continue;
        }
        snap->predict(x.data(), rows, want.data(), ws);
        for (int64_t j = 0; j < rows * 2; ++j) {
          if (!dltest::Close(out[static_cast<size_t>(j)], want[static_cast<size_t>(j)], 1e-5,
                             1e-6)) {
            ++mismatches;
          }
        }
        r = exact.predict(x.data(), rows, out.data(), in(30000ms), 0);
        if (r.status != BatchStatus::Ok) {
          ++failures;
          continue;
        }
        for (int64_t i = 0; i < rows; ++i) {
          for (int64_t j = 0; j < 2; ++j) {
            if (out[static_cast<size_t>(i * 2 + j)] !=
                TestModel::expected(&x[static_cast<size_t>(i * D)], j, 0.0f)) {
              ++exact_mismatches;
            }
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(exact_mismatches.load(), 0);
  const auto s = b.stats();
  EXPECT_EQ(s.requests, static_cast<uint64_t>(kThreads * kRequests));
  EXPECT_EQ(s.batch_rows.sum, static_cast<double>(s.rows));
  EXPECT_LE(s.batches, s.requests);
}

TEST(Batcher, SettingsAreValidated) {
  auto model = std::make_shared<TestModel>(0.0f, nullptr, nullptr);
  EXPECT_THROW(Batcher(model, 1, config(0, 8, 0)), std::invalid_argument);
  EXPECT_THROW(Batcher(model, 1, config(1, 0, 0)), std::invalid_argument);
  EXPECT_THROW(Batcher(model, 1, config(1, 8, -1)), std::invalid_argument);
  EXPECT_THROW(Batcher(model, 1, config(1, 8, 0, 0)), std::invalid_argument);
  BatcherConfig c = config(1, 8, 0);
  c.latency_bounds = {1.0, 0.5};
  EXPECT_THROW(Batcher(model, 1, c), std::invalid_argument);
  EXPECT_THROW(Batcher(std::shared_ptr<const BatchModel>(), 1, config(1, 8, 0)),
               std::invalid_argument);
  Batcher b(model, 1, config(1, 8, 0));
  BatchTicket t;
  std::vector<float> x = row(1.0f), out(2);
  EXPECT_THROW(b.submit(t, x.data(), 1, out.data(), Batcher::kNoDeadline, 0),
               std::invalid_argument);  // no sink to report it to
}

}  // namespace
