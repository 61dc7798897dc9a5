// The Learner: every training loop (per-example, mini-batch, epochs, prequential) runs in C++
// with the GIL released. A per-learner mutex makes concurrent Python threads safe; the GIL is
// always released before the mutex is taken, so the two locks never wait on each other.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <mutex>
#include <string>

#include "array.hpp"
#include "learner_wrapper.hpp"
#include "ducklearn/stream/learner.hpp"
#include "ducklearn/stream/state_io.hpp"

namespace py = pybind11;
using dl_py::as_farray;
using dl_py::FArray;

namespace ducklearn_py {
ducklearn::Init init_from_string(const std::string& name);
std::vector<ducklearn::Activation> activations_from(const std::vector<std::string>& names);
py::list layer_dicts(const ducklearn::Sequential& s);
FArray check_rows(const py::handle& X_obj, int64_t width, const char* name);
}  // namespace ducklearn_py

namespace {

using ducklearn::Learner;
using ducklearn_py::PyLearner;

FArray labels(const py::handle& y_obj, py::ssize_t n) {
  FArray y = as_farray(y_obj, "y", 1);
  if (y.shape(0) != n) {
    throw py::value_error("y has " + std::to_string(y.shape(0)) + " entries but X has " +
                          std::to_string(n) + " rows");
  }
  return y;
}

std::string repr(PyObject* o) {
  PyObject* r = PyObject_Repr(o);
  if (r == nullptr) {
    PyErr_Clear();
    return "?";
  }
  std::string s = PyUnicode_AsUTF8(r);
  Py_DECREF(r);
  return s;
}

// Decodes {name: number} through index {name: column} into row (zeros where absent).
// Runs with the GIL held and the learner locked.
void decode_dict(PyLearner& self, const py::dict& x, const py::dict& index) {
  std::fill(self.row.begin(), self.row.end(), 0.0f);
  if (self.cached_index != index.ptr()) {
    self.clear_key_cache();
    self.cached_index = index.ptr();
    Py_INCREF(self.cached_index);
  }
  PyObject *key, *value;
  Py_ssize_t pos = 0;
  size_t i = 0;
  const auto d = static_cast<long>(self.row.size());
  while (PyDict_Next(x.ptr(), &pos, &key, &value)) {
    long j;
    if (i < self.cached_keys.size() && self.cached_keys[i] == key) {
      j = self.cached_cols[i];
    } else {
      PyObject* col = PyDict_GetItemWithError(index.ptr(), key);
      if (col == nullptr) {
        if (PyErr_Occurred()) throw py::error_already_set();
        throw py::value_error("unknown feature " + repr(key) +
                              "; the model was fitted on the features in feature_names_in_");
      }
      j = PyLong_AsLong(col);
      if (j < 0 || j >= d) {
        if (PyErr_Occurred()) throw py::error_already_set();
        throw py::value_error("feature index out of range for " + repr(key));
      }
      Py_INCREF(key);
      if (i < self.cached_keys.size()) {
        Py_DECREF(self.cached_keys[i]);
        self.cached_keys[i] = key;
        self.cached_cols[i] = j;
      } else if (self.cached_keys.size() < static_cast<size_t>(4 * d)) {
        self.cached_keys.push_back(key);
        self.cached_cols.push_back(j);
      } else {
        Py_DECREF(key);
      }
    }
    ++i;
    const double v = PyFloat_AsDouble(value);
    if (v == -1.0 && PyErr_Occurred()) {
      PyErr_Clear();
      throw py::type_error("feature " + repr(key) + " must be a number, got " + repr(value));
    }
    if (!std::isfinite(v)) {
      throw py::value_error("feature " + repr(key) + " is " + repr(value) +
                            "; NaN and infinity are not valid inputs (impute them first)");
    }
    self.row[j] = static_cast<float>(v);
  }
}

}  // namespace

void bind_stream(py::module_& m) {
  using namespace ducklearn_py;
  py::class_<PyLearner>(m, "Learner",
                        "Model + loss + optimizer + optional online standardization.")
      .def(py::init([](int64_t n_inputs, const std::vector<int64_t>& widths,
                       const std::vector<std::string>& acts, const std::string& loss,
                       const ducklearn::OptimizerConfig& opt, bool standardize, uint64_t seed,
                       const std::string& init, float leaky_alpha, float delta, float tau) {
             ducklearn::Sequential model(n_inputs, widths, activations_from(acts), leaky_alpha);
             model.init(seed, init_from_string(init));
             ducklearn::LossSpec spec;
             spec.kind = ducklearn::loss_from_string(loss);
             spec.delta = delta;
             spec.tau = tau;
             return std::make_unique<PyLearner>(Learner(std::move(model), spec, opt, standardize));
           }),
           py::arg("n_inputs"), py::arg("widths"), py::arg("activations"), py::arg("loss"),
           py::arg("optimizer"), py::arg("standardize") = false, py::arg("seed") = 0,
           py::arg("init") = "auto", py::arg("leaky_alpha") = 0.01f, py::arg("delta") = 1.0f,
           py::arg("tau") = 0.5f)
      .def_property_readonly("n_inputs", [](const PyLearner& s) { return s.learner.n_inputs(); })
      .def_property_readonly("n_outputs", [](const PyLearner& s) { return s.learner.n_outputs(); })
      .def_property_readonly("n_params", [](const PyLearner& s) { return s.learner.model().n_params(); })
      .def_property_readonly("layers", [](const PyLearner& s) { return layer_dicts(s.learner.model()); })
      .def_property_readonly("standardize", [](const PyLearner& s) { return s.learner.scaler() != nullptr; })
      .def_property_readonly("task", [](const PyLearner& s) {
        switch (s.learner.task()) {
          case ducklearn::Task::Binary: return "binary";
          case ducklearn::Task::MultiClass: return "multiclass";
          default: return "regression";
        }
      })
      .def_property("examples_seen",
                    [](const PyLearner& s) { return s.learner.examples_seen(); },
                    [](PyLearner& s, int64_t n) { s.learner.set_examples_seen(n); })
      .def_property_readonly(
          "params",
          [](py::object self) {
            auto& s = self.cast<PyLearner&>();
            auto& model = s.learner.model();
            return dl_py::view(model.params(), {model.n_params()}, self);
          },
          "Writeable float32 view of the flat parameter buffer (zero-copy).")
      .def(
          "predict",
          [](PyLearner& s, const py::handle& X_obj) {
            FArray X = check_rows(X_obj, s.learner.n_inputs(), "X");
            FArray out({X.shape(0), static_cast<py::ssize_t>(s.learner.n_outputs())});
            py::gil_scoped_release nogil;
            std::lock_guard<std::mutex> lock(s.mu);
            s.learner.predict(X.data(), X.shape(0), out.mutable_data(), s.ws);
            return out;
          },
          py::arg("X"), "Probabilities (classification) or values (regression), n × k.")
      .def(
          "decision",
          [](PyLearner& s, const py::handle& X_obj) {
            FArray X = check_rows(X_obj, s.learner.n_inputs(), "X");
            FArray out({X.shape(0), static_cast<py::ssize_t>(s.learner.n_outputs())});
            py::gil_scoped_release nogil;
            std::lock_guard<std::mutex> lock(s.mu);
            s.learner.decision(X.data(), X.shape(0), out.mutable_data(), s.ws);
            return out;
          },
          py::arg("X"), "Raw outputs (logits or values), n × k.")
      .def(
          "learn_one",
          [](PyLearner& s, const py::handle& x_obj, float y) {
            FArray x = as_farray(x_obj, "x", 1);
            if (x.shape(0) != s.learner.n_inputs()) {
              throw py::value_error("x has " + std::to_string(x.shape(0)) +
                                    " features but the model expects " +
                                    std::to_string(s.learner.n_inputs()));
            }
            dl_py::check_finite(x.data(), 1, x.shape(0), "x");
            std::lock_guard<std::mutex> lock(s.mu);
            return s.learner.learn_one(x.data(), y);
          },
          py::arg("x"), py::arg("y"))
      .def(
          "learn_batch",
          [](PyLearner& s, const py::handle& X_obj, const py::handle& y_obj, bool update_scaler) {
            FArray X = check_rows(X_obj, s.learner.n_inputs(), "X");
            FArray y = labels(y_obj, X.shape(0));
            if (X.shape(0) == 0) throw py::value_error("X has no rows");
            py::gil_scoped_release nogil;
            std::lock_guard<std::mutex> lock(s.mu);
            return s.learner.learn_batch(X.data(), y.data(), X.shape(0), update_scaler);
          },
          py::arg("X"), py::arg("y"), py::arg("update_scaler") = true,
          "One step on the mean gradient of the batch; returns the summed loss.")
      .def(
          "update_scaler",
          [](PyLearner& s, const py::handle& X_obj) {
            FArray X = check_rows(X_obj, s.learner.n_inputs(), "X");
            py::gil_scoped_release nogil;
            std::lock_guard<std::mutex> lock(s.mu);
            if (s.learner.scaler() != nullptr) s.learner.scaler()->update(X.data(), X.shape(0));
          },
          py::arg("X"))
      .def(
          "fit_epoch",
          [](PyLearner& s, const py::handle& X_obj, const py::handle& y_obj, int64_t batch_size,
             uint64_t seed) {
            FArray X = check_rows(X_obj, s.learner.n_inputs(), "X");
            FArray y = labels(y_obj, X.shape(0));
            if (X.shape(0) == 0) throw py::value_error("X has no rows");
            py::gil_scoped_release nogil;
            std::lock_guard<std::mutex> lock(s.mu);
            return s.learner.fit_epoch(X.data(), y.data(), X.shape(0), batch_size, seed);
          },
          py::arg("X"), py::arg("y"), py::arg("batch_size"), py::arg("seed"),
          "One epoch of shuffled mini-batches; returns the mean loss.")
      .def(
          "prequential",
          [](PyLearner& s, const py::handle& X_obj, const py::handle& y_obj) {
            FArray X = check_rows(X_obj, s.learner.n_inputs(), "X");
            FArray y = labels(y_obj, X.shape(0));
            FArray preds({X.shape(0), static_cast<py::ssize_t>(s.learner.n_outputs())});
            {
              py::gil_scoped_release nogil;
              std::lock_guard<std::mutex> lock(s.mu);
              s.learner.prequential(X.data(), y.data(), X.shape(0), preds.mutable_data());
            }
            return preds;
          },
          py::arg("X"), py::arg("y"),
          "Test-then-train over the rows in order; returns the prediction made for each row "
          "before the model learned it (n × k).")
      .def(
          "learn_dict",
          [](PyLearner& s, const py::dict& x, float y, const py::dict& index) {
            std::lock_guard<std::mutex> lock(s.mu);
            decode_dict(s, x, index);
            return s.learner.learn_one(s.row.data(), y);
          },
          py::arg("x"), py::arg("y"), py::arg("index"))
      .def(
          "predict_dict",
          [](PyLearner& s, const py::dict& x, const py::dict& index) {
            FArray out({static_cast<py::ssize_t>(s.learner.n_outputs())});
            std::lock_guard<std::mutex> lock(s.mu);
            decode_dict(s, x, index);
            s.learner.predict(s.row.data(), 1, out.mutable_data(), s.ws);
            return out;
          },
          py::arg("x"), py::arg("index"))
      .def(
          "predict_dict_first",
          [](PyLearner& s, const py::dict& x, const py::dict& index) {
            // The per-record fast path: a Python float, no array allocated.
            float out[1];
            std::lock_guard<std::mutex> lock(s.mu);
            if (s.learner.n_outputs() != 1) throw py::value_error("model has several outputs");
            decode_dict(s, x, index);
            s.learner.predict(s.row.data(), 1, out, s.ws);
            return static_cast<double>(out[0]);
          },
          py::arg("x"), py::arg("index"),
          "P(y = 1) (binary) or the value (regression) for one dict record, as a float.")
      .def(
          "predict_dict_class",
          [](PyLearner& s, const py::dict& x, const py::dict& index, const py::list& classes) {
            // predict_one of a binary classifier in one call: classes[P(y = 1) > 0.5].
            float out[1];
            {
              std::lock_guard<std::mutex> lock(s.mu);
              if (s.learner.n_outputs() != 1) throw py::value_error("model has several outputs");
              decode_dict(s, x, index);
              s.learner.predict(s.row.data(), 1, out, s.ws);
            }
            if (classes.size() != 2) throw py::value_error("classes must hold the two labels");
            return classes[out[0] > 0.5f ? 1 : 0];
          },
          py::arg("x"), py::arg("index"), py::arg("classes"),
          "The predicted label of a binary classifier for one dict record.")
      .def(
          "predict_proba",
          [](PyLearner& s, const py::handle& X_obj) {
            // Class probabilities with both columns for binary models, filled in C++.
            FArray X = check_rows(X_obj, s.learner.n_inputs(), "X");
            const int64_t k = s.learner.n_outputs();
            const py::ssize_t cols = k == 1 ? 2 : k;
            FArray out({X.shape(0), cols});
            {
              py::gil_scoped_release nogil;
              std::lock_guard<std::mutex> lock(s.mu);
              float* o = out.mutable_data();
              s.learner.predict(X.data(), X.shape(0), o, s.ws);
              if (k == 1) {
                // Spread p into (1 - p, p) in place, back to front.
                for (py::ssize_t r = X.shape(0); r-- > 0;) {
                  const float p = o[r];
                  o[2 * r + 1] = p;
                  o[2 * r] = 1.0f - p;
                }
              }
            }
            return out;
          },
          py::arg("X"))
      .def(
          "optimizer_state",
          [](PyLearner& s) {
            std::lock_guard<std::mutex> lock(s.mu);
            const auto& o = s.learner.optimizer();
            const py::ssize_t slots = o.config().slots();
            FArray st({slots, static_cast<py::ssize_t>(o.size())});
            std::copy(o.state(), o.state() + o.state_size(), st.mutable_data());
            return py::make_tuple(o.steps(), o.size(), st, o.slot_names());
          },
          "(steps, size, state (slots × size), slot names)")
      .def(
          "load_optimizer_state",
          [](PyLearner& s, int64_t t, int64_t n, const py::handle& state) {
            FArray st = FArray::ensure(state);
            if (!st) {
              PyErr_Clear();
              throw py::type_error("state must be an array of numbers");
            }
            std::lock_guard<std::mutex> lock(s.mu);
            if (n != 0 && n != s.learner.model().n_params()) {
              throw py::value_error("optimizer state is for " + std::to_string(n) +
                                    " parameters but the model has " +
                                    std::to_string(s.learner.model().n_params()));
            }
            s.learner.optimizer().load_state(t, n, st.data(), st.size());
          },
          py::arg("t"), py::arg("n"), py::arg("state"))
      .def(
          "scaler_state",
          [](PyLearner& s) -> py::object {
            std::lock_guard<std::mutex> lock(s.mu);
            const auto* sc = s.learner.scaler();
            if (sc == nullptr) return py::none();
            const auto d = sc->dim();
            auto cp = [d](const auto* p) {
              using T = std::remove_cv_t<std::remove_pointer_t<decltype(p)>>;
              py::array_t<T> a(d);
              std::copy(p, p + d, a.mutable_data());
              return a;
            };
            py::dict out;
            out["count"] = cp(sc->count());
            out["mean"] = cp(sc->mean());
            out["m2"] = cp(sc->m2());
            out["min"] = cp(sc->min());
            out["max"] = cp(sc->max());
            return out;
          })
      .def(
          "load_scaler_state",
          [](PyLearner& s, const dl_py::DArray& count, const dl_py::DArray& mean,
             const dl_py::DArray& m2, const FArray& mn, const FArray& mx) {
            std::lock_guard<std::mutex> lock(s.mu);
            auto* sc = s.learner.scaler();
            if (sc == nullptr) throw py::value_error("this learner has no scaler");
            for (const py::ssize_t size : {count.size(), mean.size(), m2.size(), mn.size(), mx.size()}) {
              if (size != sc->dim()) {
                throw py::value_error("every scaler array must have " +
                                      std::to_string(sc->dim()) + " entries");
              }
            }
            sc->load(count.data(), mean.data(), m2.data(), mn.data(), mx.data());
          },
          py::arg("count"), py::arg("mean"), py::arg("m2"), py::arg("min"), py::arg("max"))
      .def("copy", [](PyLearner& s) {
        std::lock_guard<std::mutex> lock(s.mu);
        return std::make_unique<PyLearner>(s);
      })
      .def(
          "snapshot",
          [](PyLearner& s) {
            py::gil_scoped_release nogil;
            std::lock_guard<std::mutex> lock(s.mu);
            return std::const_pointer_cast<ducklearn::Predictor>(s.learner.snapshot());
          },
          "An immutable copy of the current model and input statistics (a Predictor).")
      .def_property(
          "lr_scale", [](PyLearner& s) { return s.learner.optimizer().lr_scale(); },
          [](PyLearner& s, float v) {
            std::lock_guard<std::mutex> lock(s.mu);
            s.learner.optimizer().set_lr_scale(v);
          })
      .def_property(
          "hypergradient_lr", [](PyLearner& s) { return s.learner.optimizer().hypergradient_lr(); },
          [](PyLearner& s, float v) {
            std::lock_guard<std::mutex> lock(s.mu);
            s.learner.optimizer().set_hypergradient_lr(v);
          })
      .def(
          "ewc_state",
          [](PyLearner& s) {
            std::lock_guard<std::mutex> lock(s.mu);
            const auto& a = s.learner.ewc_anchor();
            const auto& f = s.learner.ewc_fisher();
            py::array_t<float> anchor(static_cast<py::ssize_t>(a.size()));
            py::array_t<float> fisher(static_cast<py::ssize_t>(f.size()));
            std::copy(a.begin(), a.end(), anchor.mutable_data());
            std::copy(f.begin(), f.end(), fisher.mutable_data());
            return py::make_tuple(s.learner.ewc_lambda(), anchor, fisher);
          },
          "(lambda, anchor, fisher) of elastic weight consolidation (empty when unused).")
      .def(
          "load_ewc",
          [](PyLearner& s, float lambda, const FArray& anchor, const FArray& fisher) {
            if (anchor.size() != fisher.size()) {
              throw py::value_error("anchor and fisher must have the same length");
            }
            std::lock_guard<std::mutex> lock(s.mu);
            s.learner.load_ewc(lambda, anchor.data(), fisher.data(), anchor.size());
          },
          py::arg("lam"), py::arg("anchor"), py::arg("fisher"))
      .def(
          "set_averaging",
          [](PyLearner& s, float decay) {
            std::lock_guard<std::mutex> lock(s.mu);
            s.learner.set_averaging(decay);
          },
          py::arg("decay"),
          "Predict with an exponential moving average of the weights (decay in [0, 1); 0 "
          "turns it off); it starts at the current weights.")
      .def(
          "average_state",
          [](PyLearner& s) -> py::object {
            std::lock_guard<std::mutex> lock(s.mu);
            if (s.learner.averaging() == 0.0f) return py::none();
            const auto& m = s.learner.served_model();
            py::array_t<float> params(static_cast<py::ssize_t>(m.n_params()));
            std::copy(m.params(), m.params() + m.n_params(), params.mutable_data());
            return py::make_tuple(s.learner.averaging(), s.learner.average_steps(), params);
          },
          "(decay, steps, averaged params) of weight averaging, or None when it is off.")
      .def(
          "load_average",
          [](PyLearner& s, float decay, int64_t steps, const FArray& params) {
            std::lock_guard<std::mutex> lock(s.mu);
            s.learner.load_average(decay, steps, params.data(), params.size());
          },
          py::arg("decay"), py::arg("steps"), py::arg("params"))
      .def(
          "consolidate",
          [](PyLearner& s, const py::handle& X_obj, const py::handle& y_obj, float lambda,
             float decay) {
            FArray X = check_rows(X_obj, s.learner.n_inputs(), "X");
            FArray y = labels(y_obj, X.shape(0));
            py::gil_scoped_release nogil;
            std::lock_guard<std::mutex> lock(s.mu);
            s.learner.consolidate(X.data(), y.data(), X.shape(0), lambda, decay);
          },
          py::arg("X"), py::arg("y"), py::arg("lam"), py::arg("decay") = 0.0f,
          "Elastic weight consolidation on (X, y): anchor the weights, weight them by the "
          "empirical Fisher information.")
      .def(
          "state_dict",
          [](PyLearner& s) {
            ducklearn::StateDict st;
            {
              std::lock_guard<std::mutex> lock(s.mu);
              ducklearn::save_state(s.learner, st, "");
            }
            return ducklearn_py::state_to_python(st);
          },
          "(tensors, meta): the complete state; from_state_dict rebuilds it exactly.")
      .def_static(
          "from_state_dict",
          [](const py::dict& tensors, const py::dict& meta) {
            const auto st = ducklearn_py::state_from_python(tensors, meta);
            return std::make_unique<PyLearner>(ducklearn::load_learner(st, ""));
          },
          py::arg("tensors"), py::arg("meta"));
}
