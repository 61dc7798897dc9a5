// Snapshots (Predictor), drift detectors, the replay buffer and the adaptive learner.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <mutex>
#include <string>

#include "array.hpp"
#include "ducklearn/drift/detectors.hpp"
#include "ducklearn/stream/adaptive.hpp"
#include "ducklearn/stream/predictor.hpp"
#include "ducklearn/stream/replay.hpp"
#include "ducklearn/stream/state_io.hpp"
#include "learner_wrapper.hpp"

namespace py = pybind11;
using dl_py::as_farray;
using dl_py::FArray;

namespace ducklearn_py {
FArray check_rows(const py::handle& X_obj, int64_t width, const char* name);
py::list layer_dicts(const ducklearn::Sequential& s);
}  // namespace ducklearn_py

namespace {

using ducklearn::AdaptationConfig;
using ducklearn::AdaptiveLearner;
using ducklearn::DetectorKind;
using ducklearn::Predictor;

const char* task_name(ducklearn::Task t) {
  switch (t) {
    case ducklearn::Task::Binary: return "binary";
    case ducklearn::Task::MultiClass: return "multiclass";
    default: return "regression";
  }
}

// One scratch workspace per thread: snapshots are shared by every serving thread.
ducklearn::Workspace& thread_workspace() {
  thread_local ducklearn::Workspace ws;
  return ws;
}

struct PyAdaptive {
  explicit PyAdaptive(std::unique_ptr<AdaptiveLearner> a) : learner(std::move(a)) {}
  std::unique_ptr<AdaptiveLearner> learner;
  std::mutex mu;
};

FArray labels_for(const py::handle& y_obj, py::ssize_t n) {
  FArray y = as_farray(y_obj, "y", 1);
  if (y.shape(0) != n) {
    throw py::value_error("y has " + std::to_string(y.shape(0)) + " entries but X has " +
                          std::to_string(n) + " rows");
  }
  return y;
}

py::dict stats_dict(const ducklearn::AdaptationStats& s) {
  py::dict d;
  d["examples"] = s.examples;
  d["drifts"] = s.drifts;
  d["last_drift_at"] = s.last_drift_at;
  d["backgrounds_started"] = s.backgrounds_started;
  d["swaps"] = s.swaps;
  d["last_swap_at"] = s.last_swap_at;
  d["backgrounds_dropped"] = s.backgrounds_dropped;
  d["replay_updates"] = s.replay_updates;
  d["consolidations"] = s.consolidations;
  d["lr_reductions"] = s.lr_reductions;
  d["loss_ewma"] = s.loss_ewma;
  d["background_loss_ewma"] = s.background_loss_ewma;
  d["background_age"] = s.background_age;
  d["lr_scale"] = s.lr_scale;
  return d;
}

}  // namespace

void bind_adaptive(py::module_& m) {
  using ducklearn_py::PyLearner;

  py::class_<Predictor, std::shared_ptr<Predictor>>(
      m, "Predictor",
      "An immutable model snapshot; predict() is safe from any number of threads at once.")
      .def_property_readonly("n_inputs", &Predictor::n_inputs)
      .def_property_readonly("n_outputs", &Predictor::n_outputs)
      .def_property_readonly("task", [](const Predictor& p) { return task_name(p.task()); })
      .def_property_readonly("layers",
                             [](const Predictor& p) { return ducklearn_py::layer_dicts(p.model()); })
      .def_property_readonly("params",
                             [](const Predictor& p) {
                               const auto& mdl = p.model();
                               py::array_t<float> a(mdl.n_params());
                               std::copy(mdl.params(), mdl.params() + mdl.n_params(),
                                         a.mutable_data());
                               return a;
                             })
      .def(
          "predict",
          [](const Predictor& p, const py::handle& X_obj) {
            FArray X = ducklearn_py::check_rows(X_obj, p.n_inputs(), "X");
            FArray out({X.shape(0), static_cast<py::ssize_t>(p.n_outputs())});
            py::gil_scoped_release nogil;
            p.predict(X.data(), X.shape(0), out.mutable_data(), thread_workspace());
            return out;
          },
          py::arg("X"))
      .def(
          "decision",
          [](const Predictor& p, const py::handle& X_obj) {
            FArray X = ducklearn_py::check_rows(X_obj, p.n_inputs(), "X");
            FArray out({X.shape(0), static_cast<py::ssize_t>(p.n_outputs())});
            py::gil_scoped_release nogil;
            p.decision(X.data(), X.shape(0), out.mutable_data(), thread_workspace());
            return out;
          },
          py::arg("X"));

  py::class_<ducklearn::PageHinkley>(m, "PageHinkley", "Page-Hinkley test for a rising mean.")
      .def(py::init<int64_t, double, double, double>(), py::arg("min_instances") = 30,
           py::arg("delta") = 0.005, py::arg("threshold") = 50.0, py::arg("alpha") = 1.0 - 1e-4)
      .def("update", &ducklearn::PageHinkley::update, py::arg("x"))
      .def("reset", &ducklearn::PageHinkley::reset)
      .def_property_readonly("count", &ducklearn::PageHinkley::count)
      .def_property_readonly("mean", &ducklearn::PageHinkley::mean)
      .def_property_readonly("statistic", &ducklearn::PageHinkley::statistic)
      .def_property_readonly("last_change_age", &ducklearn::PageHinkley::last_change_age);

  py::class_<ducklearn::ADWIN>(m, "ADWIN", "ADaptive WINdowing change detector.")
      .def(py::init<double, int, int, int>(), py::arg("delta") = 0.002, py::arg("clock") = 32,
           py::arg("max_buckets") = 5, py::arg("min_window") = 5)
      .def("update", &ducklearn::ADWIN::update, py::arg("x"))
      .def("reset", &ducklearn::ADWIN::reset)
      .def_property_readonly("width", &ducklearn::ADWIN::width)
      .def_property_readonly("mean", &ducklearn::ADWIN::mean)
      .def_property_readonly("variance", &ducklearn::ADWIN::variance)
      .def_property_readonly("detections", &ducklearn::ADWIN::detections);

  py::class_<ducklearn::ReplayBuffer>(m, "ReplayBuffer",
                                      "Reservoir of past examples, optionally prioritized.")
      .def(py::init<int64_t, int64_t, uint64_t, bool, float, bool>(), py::arg("capacity"),
           py::arg("dim"), py::arg("seed") = 0, py::arg("prioritized") = false,
           py::arg("alpha") = 0.6f, py::arg("fifo") = false)
      .def(
          "add",
          [](ducklearn::ReplayBuffer& r, const py::handle& x_obj, float y, float priority) {
            FArray x = as_farray(x_obj, "x", 1);
            if (x.shape(0) != r.dim()) throw py::value_error("x must have dim entries");
            r.add(x.data(), y, priority);
          },
          py::arg("x"), py::arg("y"), py::arg("priority") = 1.0f)
      .def(
          "sample",
          [](ducklearn::ReplayBuffer& r, int64_t k) {
            if (k < 1) throw py::value_error("k must be >= 1");
            FArray X({static_cast<py::ssize_t>(k), static_cast<py::ssize_t>(r.dim())});
            FArray y({static_cast<py::ssize_t>(k)});
            py::array_t<int64_t> slots(k);
            r.sample(k, X.mutable_data(), y.mutable_data(), slots.mutable_data());
            return py::make_tuple(X, y, slots);
          },
          py::arg("k"))
      .def("set_priority", &ducklearn::ReplayBuffer::set_priority)
      .def("clear", &ducklearn::ReplayBuffer::clear)
      .def_property_readonly("size", &ducklearn::ReplayBuffer::size)
      .def_property_readonly("capacity", &ducklearn::ReplayBuffer::capacity)
      .def_property_readonly("seen", &ducklearn::ReplayBuffer::seen);

  py::class_<AdaptationConfig>(m, "AdaptationConfig")
      .def(py::init<>())
      .def_property(
          "detector",
          [](const AdaptationConfig& c) {
            return c.detector == DetectorKind::ADWIN
                       ? "adwin"
                       : (c.detector == DetectorKind::PageHinkley ? "page_hinkley" : "none");
          },
          [](AdaptationConfig& c, const std::string& name) {
            if (name == "adwin") c.detector = DetectorKind::ADWIN;
            else if (name == "page_hinkley") c.detector = DetectorKind::PageHinkley;
            else if (name == "none") c.detector = DetectorKind::None;
            else throw py::value_error("unknown detector '" + name +
                                       "'; use 'adwin', 'page_hinkley' or 'none'");
          })
      .def_readwrite("adwin_delta", &AdaptationConfig::adwin_delta)
      .def_readwrite("adwin_clock", &AdaptationConfig::adwin_clock)
      .def_readwrite("ph_min_instances", &AdaptationConfig::ph_min_instances)
      .def_readwrite("ph_delta", &AdaptationConfig::ph_delta)
      .def_readwrite("ph_threshold", &AdaptationConfig::ph_threshold)
      .def_readwrite("ph_alpha", &AdaptationConfig::ph_alpha)
      .def_readwrite("drift_lr_boost", &AdaptationConfig::drift_lr_boost)
      .def_readwrite("boost_decay", &AdaptationConfig::boost_decay)
      .def_readwrite("background", &AdaptationConfig::background)
      .def_readwrite("recent_window", &AdaptationConfig::recent_window)
      .def_readwrite("background_epochs", &AdaptationConfig::background_epochs)
      .def_readwrite("background_lr_scale", &AdaptationConfig::background_lr_scale)
      .def_readwrite("background_grace", &AdaptationConfig::background_grace)
      .def_readwrite("background_patience", &AdaptationConfig::background_patience)
      .def_readwrite("swap_margin", &AdaptationConfig::swap_margin)
      .def_readwrite("swap_z", &AdaptationConfig::swap_z)
      .def_readwrite("loss_smoothing", &AdaptationConfig::loss_smoothing)
      .def_readwrite("plateau_factor", &AdaptationConfig::plateau_factor)
      .def_readwrite("plateau_every", &AdaptationConfig::plateau_every)
      .def_readwrite("plateau_patience", &AdaptationConfig::plateau_patience)
      .def_readwrite("plateau_min_delta", &AdaptationConfig::plateau_min_delta)
      .def_readwrite("min_lr_scale", &AdaptationConfig::min_lr_scale)
      .def_readwrite("replay_capacity", &AdaptationConfig::replay_capacity)
      .def_readwrite("replay_every", &AdaptationConfig::replay_every)
      .def_readwrite("replay_batch", &AdaptationConfig::replay_batch)
      .def_readwrite("replay_prioritized", &AdaptationConfig::replay_prioritized)
      .def_readwrite("replay_recent", &AdaptationConfig::replay_recent)
      .def_readwrite("replay_alpha", &AdaptationConfig::replay_alpha)
      .def_readwrite("flush_replay_on_swap", &AdaptationConfig::flush_replay_on_swap)
      .def_readwrite("ewc_lambda", &AdaptationConfig::ewc_lambda)
      .def_readwrite("ewc_decay", &AdaptationConfig::ewc_decay)
      .def_readwrite("consolidate_every", &AdaptationConfig::consolidate_every)
      .def_readwrite("consolidate_samples", &AdaptationConfig::consolidate_samples)
      .def_readwrite("update_batch", &AdaptationConfig::update_batch)
      .def_readwrite("average_decay", &AdaptationConfig::average_decay)
      .def("validate", &AdaptationConfig::validate);

  py::class_<PyAdaptive>(m, "AdaptiveLearner",
                         "Per-example test-then-train with drift adaptation, replay and EWC.")
      .def(py::init([](PyLearner& base, const AdaptationConfig& config, uint64_t seed) {
             std::lock_guard<std::mutex> lock(base.mu);
             return std::make_unique<PyAdaptive>(
                 std::make_unique<AdaptiveLearner>(base.learner, config, seed));
           }),
           py::arg("base"), py::arg("config"), py::arg("seed") = 0)
      .def_property_readonly("n_inputs",
                             [](PyAdaptive& s) { return s.learner->active().n_inputs(); })
      .def_property_readonly("n_outputs",
                             [](PyAdaptive& s) { return s.learner->active().n_outputs(); })
      .def_property_readonly("task",
                             [](PyAdaptive& s) { return task_name(s.learner->active().task()); })
      .def(
          "learn",
          [](PyAdaptive& s, const py::handle& X_obj, const py::handle& y_obj) {
            FArray X = ducklearn_py::check_rows(X_obj, s.learner->active().n_inputs(), "X");
            FArray y = labels_for(y_obj, X.shape(0));
            FArray preds({X.shape(0), static_cast<py::ssize_t>(s.learner->active().n_outputs())});
            py::array_t<double> losses(X.shape(0));
            {
              py::gil_scoped_release nogil;
              std::lock_guard<std::mutex> lock(s.mu);
              s.learner->learn(X.data(), y.data(), X.shape(0), preds.mutable_data(),
                               losses.mutable_data());
            }
            return py::make_tuple(preds, losses);
          },
          py::arg("X"), py::arg("y"),
          "Test-then-train over the rows: (predictions before each update, losses).")
      .def("copy",
           [](PyAdaptive& s) {
             py::gil_scoped_release nogil;
             std::lock_guard<std::mutex> lock(s.mu);
             return std::make_unique<PyAdaptive>(std::make_unique<AdaptiveLearner>(*s.learner));
           },
           "An independent deep copy (the whole state), e.g. a last-known-good restore point.")
      .def("snapshot",
           [](PyAdaptive& s) {
             py::gil_scoped_release nogil;
             std::lock_guard<std::mutex> lock(s.mu);
             return std::const_pointer_cast<Predictor>(s.learner->snapshot());
           })
      .def_property_readonly("stats",
                             [](PyAdaptive& s) {
                               std::lock_guard<std::mutex> lock(s.mu);
                               return stats_dict(s.learner->stats());
                             })
      .def_property_readonly("has_background",
                             [](PyAdaptive& s) { return s.learner->background() != nullptr; })
      .def_property_readonly("replay_size",
                             [](PyAdaptive& s) {
                               return s.learner->replay() ? s.learner->replay()->size() : 0;
                             })
      .def(
          "consolidate",
          [](PyAdaptive& s, int64_t samples) {
            py::gil_scoped_release nogil;
            std::lock_guard<std::mutex> lock(s.mu);
            s.learner->consolidate(samples);
          },
          py::arg("samples") = 256)
      .def("active_state_dict",
           [](PyAdaptive& s) {
             ducklearn::StateDict st;
             {
               std::lock_guard<std::mutex> lock(s.mu);
               ducklearn::save_state(s.learner->active(), st, "");
             }
             return ducklearn_py::state_to_python(st);
           })
      .def("state_dict",
           [](PyAdaptive& s) {
             ducklearn::StateDict st;
             {
               std::lock_guard<std::mutex> lock(s.mu);
               s.learner->save_state(st);
             }
             return ducklearn_py::state_to_python(st);
           })
      .def_static(
          "from_state_dict",
          [](const py::dict& tensors, const py::dict& meta) {
            const auto st = ducklearn_py::state_from_python(tensors, meta);
            return std::make_unique<PyAdaptive>(AdaptiveLearner::load_state(st));
          },
          py::arg("tensors"), py::arg("meta"));
}
