// Dynamic batching (ducklearn::Batcher) for ducklearn.serving: blocking predict() for threads,
// submit()/cancel() with tickets for event loops.
//
// Lock order: no batcher lock is ever held while the GIL is taken (workers call Python
// models, the ticket sink and destructors that may need the GIL only with the batcher
// unlocked). So Python may call the quick batcher methods (submit, cancel, swap, stats)
// with the GIL held; only calls that wait for batches (predict, close) release it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "array.hpp"
#include "ducklearn/serving/batcher.hpp"
#include "ducklearn/stream/predictor.hpp"

namespace py = pybind11;

namespace {

using ducklearn::Batcher;
using ducklearn::BatcherConfig;
using ducklearn::BatchModel;
using ducklearn::BatchResult;
using ducklearn::BatchStatus;
using ducklearn::BatchTicket;
using ducklearn::Predictor;

bool interpreter_gone() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsInitialized() == 0 || Py_IsFinalizing() != 0;
#else
  return Py_IsInitialized() == 0 || _Py_IsFinalizing() != 0;
#endif
}

/**
 * What a thread that must take the GIL does once the interpreter is finalizing: wait for
 * the process to end. Taking the GIL then would end the thread from inside (pthread_exit,
 * unwinding through frames that hold Python references and destructors that must not
 * throw); sleeping is what Python 3.14 does with such threads too.
 */
[[noreturn]] void park_forever() {
  for (;;) std::this_thread::sleep_for(std::chrono::hours(24));
}

/**
 * The GIL for a thread Python did not start (a batcher worker) or one that released it:
 * PyGILState, which needs no undoing if taking it ends the thread, unlike pybind11's
 * gil_scoped_acquire.
 */
class WorkerGil {
 public:
  WorkerGil() {
    if (interpreter_gone()) park_forever();
    state_ = PyGILState_Ensure();
  }
  ~WorkerGil() {
    // Not held any more when Python ended this thread from inside a call that had released
    // the GIL (a model sleeping as the interpreter finalized): unwinding, nothing to give back.
    if (PyGILState_Check()) PyGILState_Release(state_);
  }
  WorkerGil(const WorkerGil&) = delete;
  WorkerGil& operator=(const WorkerGil&) = delete;

 private:
  PyGILState_STATE state_;
};

/**
 * What a Python model raised, with its message read while the GIL was held: the core reads
 * what() on a worker thread, where error_already_set::what() would have to take the GIL.
 */
class PythonError : public std::runtime_error {
 public:
  PythonError(py::error_already_set e, const std::string& message)
      : std::runtime_error(message), error(std::move(e)) {}
  py::error_already_set error;
};

/**
 * A Python object with predict(X) -> (n, n_outputs) as a BatchModel (a custom predictor, a
 * test double). Each batch takes the GIL; a _core.Predictor never does.
 */
class PyModel final : public BatchModel {
 public:
  PyModel(py::object obj, int64_t n_in, int64_t n_out)
      : obj_(std::move(obj)), predict_(obj_.attr("predict")), n_in_(n_in), n_out_(n_out) {}

  ~PyModel() override {
    // The last reference may go on a worker thread, which does not hold the GIL.
    if (interpreter_gone()) {  // nothing left to decrement
      obj_.release();
      predict_.release();
      return;
    }
    WorkerGil gil;
    predict_ = py::object();
    obj_ = py::object();
  }

  int64_t n_inputs() const override { return n_in_; }
  int64_t n_outputs() const override { return n_out_; }

  void predict(const float* x, int64_t n, float* out, ducklearn::Workspace&) const override {
    WorkerGil gil;
    try {
      // A copy, not a view of the worker's buffer: the model may keep what it is given.
      py::array_t<float> X({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(n_in_)});
      std::memcpy(X.mutable_data(), x, static_cast<size_t>(n * n_in_) * sizeof(float));
      py::object r = predict_(X);
      auto a = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(r);
      if (!a) {
        PyErr_Clear();
        throw std::invalid_argument("predict() returned a " +
                                    std::string(py::str(py::type::of(r).attr("__name__"))) +
                                    ", not an array of numbers");
      }
      if (a.ndim() != 2 || a.shape(0) != n || a.shape(1) != n_out_) {
        throw std::invalid_argument("predict() returned shape " + dl_py::shape_str(a) +
                                    ", expected (" + std::to_string(n) + ", " +
                                    std::to_string(n_out_) + ")");
      }
      std::memcpy(out, a.data(), static_cast<size_t>(n * n_out_) * sizeof(float));
    } catch (py::error_already_set& e) {
      const std::string message = std::string(py::str(e.type().attr("__name__"))) + ": " +
                                  std::string(py::str(e.value()));
      throw PythonError(std::move(e), message);
    }
  }

 private:
  py::object obj_;
  py::object predict_;
  int64_t n_in_, n_out_;
};

std::shared_ptr<const BatchModel> model_of(const py::object& predictor) {
  if (py::isinstance<Predictor>(predictor)) {
    return ducklearn::batch_model(predictor.cast<std::shared_ptr<Predictor>>());
  }
  if (!py::hasattr(predictor, "predict") || !py::hasattr(predictor, "n_inputs") ||
      !py::hasattr(predictor, "n_outputs")) {
    throw py::type_error("predictor must be a ducklearn._core.Predictor or have predict(X), "
                         "n_inputs and n_outputs; got " +
                         std::string(py::str(py::type::of(predictor).attr("__name__"))));
  }
  return std::make_shared<PyModel>(predictor, predictor.attr("n_inputs").cast<int64_t>(),
                                   predictor.attr("n_outputs").cast<int64_t>());
}

/** The Python exception for a failed batch (GIL held). */
py::object exception_object(const BatchResult& r) {
  try {
    std::rethrow_exception(r.error);
  } catch (const PythonError& e) {
    return e.error.value();
  } catch (const py::error_already_set& e) {
    return e.value();
  } catch (const ducklearn::NonFiniteOutput& e) {
    return py::reinterpret_borrow<py::object>(PyExc_FloatingPointError)(e.what());
  } catch (const std::invalid_argument& e) {
    return py::reinterpret_borrow<py::object>(PyExc_ValueError)(e.what());
  } catch (const std::exception& e) {
    return py::reinterpret_borrow<py::object>(PyExc_RuntimeError)(e.what());
  } catch (...) {
    return py::reinterpret_borrow<py::object>(PyExc_RuntimeError)(r.message);
  }
}

/** (out or None, status, version, info) for Python (GIL held); info documented on predict. */
py::tuple outcome(const BatchResult& r, const py::object& out) {
  const int status = static_cast<int>(r.status);
  switch (r.status) {
    case BatchStatus::Ok:
      return py::make_tuple(out, status, r.version, py::none());
    case BatchStatus::Deadline: {
      py::dict info;
      info["computed"] = r.computed;
      info["queue_seconds"] = r.queue_seconds;
      info["compute_seconds"] = r.compute_seconds;
      info["batch"] = r.batch;
      return py::make_tuple(py::none(), status, r.version, info);
    }
    case BatchStatus::Overloaded: {
      py::dict info;
      info["queued_rows"] = r.queued_rows;
      info["expected_wait_seconds"] = r.expected_wait_seconds;
      return py::make_tuple(py::none(), status, r.version, info);
    }
    case BatchStatus::Error: {
      py::dict info;
      info["error"] = exception_object(r);
      info["message"] = r.message;
      info["batch"] = r.batch;
      return py::make_tuple(py::none(), status, r.version, info);
    }
    default:
      return py::make_tuple(py::none(), status, r.version, py::none());
  }
}

Batcher::Clock::time_point deadline_of(const py::object& timeout_s) {
  if (timeout_s.is_none()) return Batcher::kNoDeadline;
  const double t = timeout_s.cast<double>();
  if (t != t) throw py::value_error("timeout_s must be a number of seconds or None, got NaN");
  const auto now = Batcher::Clock::now();
  if (!(t < 1e9)) return Batcher::kNoDeadline;
  if (t <= 0.0) return now;
  return now + std::chrono::duration_cast<Batcher::Clock::duration>(
                   std::chrono::duration<double>(t));
}

/** Any Python integer, clamped to the batcher's int (a priority beyond it ranks the same). */
int priority_of(const py::handle& priority) {
  int overflow = 0;
  const long long p = PyLong_AsLongLongAndOverflow(priority.ptr(), &overflow);
  if (p == -1 && PyErr_Occurred()) throw py::error_already_set();
  if (overflow != 0) return overflow > 0 ? std::numeric_limits<int>::max()
                                         : std::numeric_limits<int>::min();
  return static_cast<int>(std::clamp<long long>(p, std::numeric_limits<int>::min(),
                                                std::numeric_limits<int>::max()));
}

/** X must already be what the batcher reads: float32, C-contiguous, n × n_inputs. */
py::array checked_rows(const py::handle& X_obj, const Batcher& b) {
  // A literal, not a std::string: this runs on every request and only errors need the text.
  static constexpr const char* fix = "; try np.ascontiguousarray(X, dtype=np.float32)";
  if (!py::isinstance<py::array>(X_obj)) {
    throw py::type_error("X must be a numpy array, got " +
                         std::string(py::str(py::type::of(X_obj).attr("__name__"))) + fix);
  }
  auto a = py::reinterpret_borrow<py::array>(X_obj);
  if (!a.dtype().is(py::dtype::of<float>())) {
    throw py::type_error("X must be float32, got dtype " + std::string(py::str(a.dtype())) + fix);
  }
  if (!(a.flags() & py::array::c_style)) {
    throw py::value_error(std::string("X must be C-contiguous") + fix);
  }
  if (a.ndim() != 2 || a.shape(1) != b.n_inputs()) {
    throw py::value_error("X must have shape (n, " + std::to_string(b.n_inputs()) + "), got " +
                          dl_py::shape_str(a));
  }
  if (a.shape(0) < 1 || a.shape(0) > b.config().queue_capacity_rows) {
    throw py::value_error("X must have between 1 and queue_capacity_rows (" +
                          std::to_string(b.config().queue_capacity_rows) + ") rows, got " +
                          std::to_string(a.shape(0)));
  }
  return a;
}

py::tuple histogram(const ducklearn::HistogramSnapshot& h) {
  py::list counts;
  for (uint64_t c : h.counts) counts.append(c);
  return py::make_tuple(py::tuple(py::cast(h.bounds)), counts, h.sum, h.count);
}

/** A ticket from Python: holds its arrays, event loop and token until answered. */
struct PyTicket : BatchTicket {
  py::object X, out, loop, token;
  py::object self;  ///< keeps the ticket alive while the batcher may touch it
};

/**
 * The Python callback that answers tickets on their event loops. Shared by the binding
 * object and its Batcher's sink, so the sink never points into a freed binding object.
 */
struct Resolver {
  py::object fn;
  explicit Resolver(py::object f) : fn(std::move(f)) {}
  ~Resolver() {
    // The last reference may go on any thread (with the Batcher's configuration).
    if (interpreter_gone()) {
      fn.release();
      return;
    }
    WorkerGil gil;
    fn = py::object();
  }
};

struct PyBatcher {
  std::unique_ptr<Batcher> core;
  std::shared_ptr<Resolver> resolver;  ///< null: submit() is not available

  ~PyBatcher() {
    if (!core) return;
    if (interpreter_gone()) {
      // Freed while the interpreter finalizes: a worker may be parked waiting for a GIL that
      // never comes back (park_forever), and closing would wait for it. The process is
      // ending; leave the batcher to it.
      core.release();
      return;
    }
    if (core->on_worker_thread()) {
      // The last reference went with a ticket its own worker was reporting (an endpoint
      // dropped without close() while a closed event loop let go of its requests): a worker
      // cannot wait for itself, so another thread closes and destroys the batcher.
      std::thread([c = std::move(core)]() mutable { c.reset(); }).detach();
      return;
    }
    // Closing waits for running batches, and a Python model's batch needs the GIL.
    py::gil_scoped_release nogil;
    core.reset();
  }
};

/**
 * The ticket sink: one call_soon_threadsafe per event loop per batch (each writes to the
 * loop's self-pipe), carrying [(token, outcome), ...] to the resolver.
 */
void resolve_tickets(const Resolver& resolver, BatchTicket* const* tickets, int64_t n) {
  WorkerGil gil;
  std::vector<std::pair<py::object, py::list>> by_loop;
  std::vector<py::object> selves;
  selves.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    auto* t = static_cast<PyTicket*>(tickets[i]);
    selves.push_back(std::move(t->self));  // the batcher is done with it
    try {
      py::tuple item = py::make_tuple(t->token, outcome(t->result(), t->out));
      auto it = by_loop.begin();
      while (it != by_loop.end() && !it->first.is(t->loop)) ++it;
      if (it == by_loop.end()) {
        by_loop.emplace_back(t->loop, py::list());
        it = by_loop.end() - 1;
      }
      it->second.append(item);
    } catch (py::error_already_set& e) {  // out of memory, say: report it, go on
      e.discard_as_unraisable("ducklearn.Batcher answering a ticket");
    }
  }
  for (auto& [loop, items] : by_loop) {
    try {
      loop.attr("call_soon_threadsafe")(resolver.fn, items);
    } catch (py::error_already_set&) {
      // That loop is closed: its callers are gone.
    }
  }
}

}  // namespace

void bind_serving(py::module_& m) {
  m.def(
      "all_finite",
      [](const py::handle& X_obj) {
        if (!py::isinstance<py::array>(X_obj)) throw py::type_error("X must be a numpy array");
        auto a = py::reinterpret_borrow<py::array>(X_obj);
        if (!a.dtype().is(py::dtype::of<float>()) || !(a.flags() & py::array::c_style)) {
          throw py::type_error("X must be C-contiguous float32; try "
                               "np.ascontiguousarray(X, dtype=np.float32)");
        }
        const float* p = static_cast<const float*>(a.data());
        const py::ssize_t n = a.size();
        bool ok = true;
        for (py::ssize_t i = 0; i < n; ++i) ok &= std::isfinite(p[i]);
        return ok;
      },
      py::arg("X"),
      "Whether every entry of a C-contiguous float32 array is finite: one pass, no "
      "temporaries (a request's validation, on the caller's thread with the GIL held).");

  py::class_<PyTicket>(
      m, "BatchTicket", "A request queued by Batcher.submit (opaque; pass it to cancel()).");

  py::class_<PyBatcher> cls(
      m, "Batcher",
      "Dynamic batching in C++: worker threads gather queued rows into batches, compute each "
      "with one model call (GIL released for a _core.Predictor) and answer every caller.");
  cls.attr("OK") = static_cast<int>(BatchStatus::Ok);
  cls.attr("DEADLINE") = static_cast<int>(BatchStatus::Deadline);
  cls.attr("OVERLOADED") = static_cast<int>(BatchStatus::Overloaded);
  cls.attr("SHUTTING_DOWN") = static_cast<int>(BatchStatus::ShuttingDown);
  cls.attr("ERROR") = static_cast<int>(BatchStatus::Error);
  cls.def(py::init([](const py::object& predictor, uint64_t version, int64_t max_batch_rows,
                      double max_wait_us, int64_t queue_capacity_rows, int workers,
                      double admit_share, double service_seconds,
                      std::vector<double> latency_buckets, std::vector<double> batch_buckets,
                      const py::object& resolver) {
             auto b = std::make_unique<PyBatcher>();
             BatcherConfig c;
             c.max_batch_rows = max_batch_rows;
             c.max_wait_us = max_wait_us;
             c.queue_capacity_rows = queue_capacity_rows;
             c.workers = workers;
             c.admit_share = admit_share;
             c.service_seconds = service_seconds;
             c.latency_bounds = std::move(latency_buckets);
             c.batch_bounds = std::move(batch_buckets);
             if (!resolver.is_none()) {
               auto r = std::make_shared<Resolver>(resolver);
               b->resolver = r;
               c.on_tickets = [r](BatchTicket* const* t, int64_t n) { resolve_tickets(*r, t, n); };
             }
             auto model = model_of(predictor);
             b->core = std::make_unique<Batcher>(std::move(model), version, std::move(c));
             return b;
           }),
           py::arg("predictor"), py::arg("version"), py::arg("max_batch_rows") = 64,
           py::arg("max_wait_us") = 200.0, py::arg("queue_capacity_rows") = 10000,
           py::arg("workers") = 2, py::kw_only(), py::arg("admit_share") = 0.75,
           py::arg("service_seconds") = 0.0,
           py::arg("latency_buckets") = std::vector<double>{},
           py::arg("batch_buckets") = std::vector<double>{}, py::arg("resolver") = py::none(),
           "predictor: a _core.Predictor (computed without the GIL) or any object with "
           "predict(X), n_inputs and n_outputs. resolver(items) is called on each event loop "
           "with [(token, outcome), ...] for tickets from submit().")
      .def_property_readonly("n_inputs", [](const PyBatcher& b) { return b.core->n_inputs(); })
      .def_property_readonly("n_outputs", [](const PyBatcher& b) { return b.core->n_outputs(); })
      .def_property_readonly("version", [](const PyBatcher& b) { return b.core->version(); })
      .def_property_readonly("closed", [](const PyBatcher& b) { return b.core->closed(); })
      .def(
          "predict",
          [](PyBatcher& b, const py::handle& X_obj, const py::object& timeout_s,
             const py::handle& priority) {
            py::array X = checked_rows(X_obj, *b.core);
            const int prio = priority_of(priority);
            const auto deadline = deadline_of(timeout_s);
            const py::ssize_t n = X.shape(0);
            py::array_t<float> out({n, static_cast<py::ssize_t>(b.core->n_outputs())});
            const float* x = static_cast<const float*>(X.data());
            float* o = out.mutable_data();
            BatchResult r;
            // The whole wait without the GIL: queue, batch, hand-back. Not a
            // gil_scoped_release: a daemon thread still waiting here when the interpreter
            // finalizes must not take the GIL back (see park_forever).
            PyThreadState* ts = PyEval_SaveThread();
            try {
              r = b.core->predict(x, n, o, deadline, prio);
            } catch (...) {
              PyEval_RestoreThread(ts);
              throw;
            }
            if (interpreter_gone()) park_forever();
            PyEval_RestoreThread(ts);
            return outcome(r, out);
          },
          py::arg("X"), py::arg("timeout_s") = py::none(), py::arg("priority") = py::int_(0),
          "Blocks until X (float32, C-contiguous, n × n_inputs) is answered. Returns (out, "
          "status, version, info): out (n × n_outputs) when status is OK, else None; info "
          "is None (OK, SHUTTING_DOWN) or a dict: DEADLINE {computed, queue_seconds, "
          "compute_seconds, batch}, OVERLOADED {queued_rows, expected_wait_seconds} "
          "(expected_wait_seconds > 0: refused by admission control), ERROR {error (the "
          "exception), message, batch}.")
      .def(
          "submit",
          [](PyBatcher& b, const py::handle& X_obj, const py::object& timeout_s,
             const py::handle& priority, const py::object& loop,
             const py::object& token) -> py::tuple {
            if (!b.resolver) {
              throw py::value_error("submit() needs a Batcher built with a resolver");
            }
            py::array X = checked_rows(X_obj, *b.core);
            const int prio = priority_of(priority);
            const auto deadline = deadline_of(timeout_s);
            const py::ssize_t n = X.shape(0);
            py::array_t<float> out({n, static_cast<py::ssize_t>(b.core->n_outputs())});
            auto* t = new PyTicket();
            py::object handle = py::cast(t, py::return_value_policy::take_ownership);
            t->X = X;
            t->out = out;
            t->loop = loop;
            t->token = token;
            t->self = handle;  // before submitting: a worker may answer it at once
            if (b.core->submit(*t, static_cast<const float*>(X.data()), n, out.mutable_data(),
                               deadline, prio)) {
              return py::make_tuple(handle, py::none());
            }
            t->self = py::object();
            return py::make_tuple(py::none(), outcome(t->result(), py::none()));
          },
          py::arg("X"), py::arg("timeout_s"), py::arg("priority"), py::arg("loop"),
          py::arg("token"),
          "Queues X without blocking: (ticket, None), and later resolver(items) runs on `loop` "
          "(call_soon_threadsafe) with (token, outcome) for it; or (None, outcome) when "
          "refused at once. token is any object the resolver needs back.")
      .def(
          "cancel",
          [](PyBatcher& b, PyTicket& t) {
            if (!b.core->cancel(t)) return false;
            py::object self = std::move(t.self);  // never reported: released here
            return true;
          },
          py::arg("ticket"),
          "Withdraws a ticket still queued (True; it is never computed nor reported).")
      .def(
          "swap",
          [](PyBatcher& b, const py::object& predictor, uint64_t version) {
            b.core->swap(model_of(predictor), version);
          },
          py::arg("predictor"), py::arg("version"),
          "Later batches compute with `predictor`, labelled `version`; running ones finish "
          "with theirs.")
      .def(
          "set_service_seconds",
          [](PyBatcher& b, double s) { b.core->set_service_seconds(s); }, py::arg("seconds"),
          "Replaces admission control's estimate of one batch's service time.")
      .def(
          "stats",
          [](const PyBatcher& b) {
            const ducklearn::BatcherStats s = b.core->stats();
            py::dict d;
            d["requests"] = s.requests;
            d["batches"] = s.batches;
            d["rows"] = s.rows;
            d["rejected"] = s.rejected;
            d["deadline_misses"] = s.deadline_misses;
            d["errors"] = s.errors;
            d["shut_down"] = s.shut_down;
            d["swaps"] = s.swaps;
            d["version"] = s.version;
            d["queued_rows"] = s.queued_rows;
            d["queued_requests"] = s.queued_requests;
            d["in_flight_rows"] = s.in_flight_rows;
            d["service_seconds"] = s.service_seconds;
            d["latency"] = histogram(s.latency);
            d["batch_size"] = histogram(s.batch_rows);
            return d;
          },
          "Counters, queue state and histograms ((bounds, counts, sum, count), counts "
          "non-cumulative) since construction.")
      .def(
          "close",
          [](PyBatcher& b, bool drain, const py::object& timeout_s) {
            const double t = timeout_s.is_none() ? std::numeric_limits<double>::infinity()
                                                 : timeout_s.cast<double>();
            py::gil_scoped_release nogil;
            return b.core->close(drain, t);
          },
          py::arg("drain") = true, py::arg("timeout_s") = py::none(),
          "Stops intake; with drain, answers what was accepted first (up to timeout_s). True "
          "once every worker has stopped.");
}
