#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "array.hpp"
#include "ducklearn/optim/optimizer.hpp"
#include "ducklearn/optim/plateau.hpp"
#include "ducklearn/optim/schedule.hpp"

namespace py = pybind11;
using dl_py::FArray;

void bind_optim(py::module_& m) {
  using ducklearn::Optimizer;
  using ducklearn::OptimizerConfig;
  using ducklearn::PlateauDetector;
  using ducklearn::Schedule;

  py::class_<Schedule>(m, "ScheduleConfig", "Learning-rate schedule (see optim/schedule.hpp).")
      .def(py::init<>())
      .def_property(
          "kind", [](const Schedule& s) { return std::string(ducklearn::to_string(s.kind)); },
          [](Schedule& s, const std::string& k) { s.kind = ducklearn::schedule_from_string(k); })
      .def_readwrite("lr", &Schedule::lr)
      .def_readwrite("gamma", &Schedule::gamma)
      .def_readwrite("step_size", &Schedule::step_size)
      .def_readwrite("power", &Schedule::power)
      .def_readwrite("t_max", &Schedule::t_max)
      .def_readwrite("min_lr", &Schedule::min_lr)
      .def_readwrite("warmup_steps", &Schedule::warmup_steps)
      .def_readwrite("warmup_start", &Schedule::warmup_start)
      .def("at", &Schedule::at, py::arg("t"), "Learning rate at step t.")
      .def("validate", &Schedule::validate);

  py::class_<OptimizerConfig>(m, "OptimizerConfig")
      .def(py::init<>())
      .def_property(
          "kind",
          [](const OptimizerConfig& c) { return std::string(ducklearn::to_string(c.kind)); },
          [](OptimizerConfig& c, const std::string& k) {
            c.kind = ducklearn::optimizer_from_string(k);
          })
      .def_readwrite("schedule", &OptimizerConfig::schedule)
      .def_readwrite("momentum", &OptimizerConfig::momentum)
      .def_readwrite("nesterov", &OptimizerConfig::nesterov)
      .def_readwrite("beta1", &OptimizerConfig::beta1)
      .def_readwrite("beta2", &OptimizerConfig::beta2)
      .def_readwrite("rho", &OptimizerConfig::rho)
      .def_readwrite("eps", &OptimizerConfig::eps)
      .def_readwrite("initial_accumulator", &OptimizerConfig::initial_accumulator)
      .def_readwrite("l2", &OptimizerConfig::l2)
      .def_readwrite("weight_decay", &OptimizerConfig::weight_decay)
      .def_readwrite("clip_norm", &OptimizerConfig::clip_norm)
      .def_readwrite("hypergradient", &OptimizerConfig::hypergradient)
      .def_property_readonly("slots", &OptimizerConfig::slots)
      .def("validate", &OptimizerConfig::validate);

  py::class_<Optimizer>(m, "Optimizer",
                        "Element-wise optimizer over a flat float32 parameter array.")
      .def(py::init<const OptimizerConfig&>(), py::arg("config"))
      .def(
          "step",
          [](Optimizer& o, const py::handle& params, const py::handle& grads) {
            float* p = dl_py::inplace_ptr(params, "params");
            const py::ssize_t n = dl_py::size_of(params);
            FArray g = FArray::ensure(grads);
            if (!g) {
              PyErr_Clear();
              throw py::type_error("grads must be an array of numbers");
            }
            if (g.size() != n) {
              throw py::value_error("grads has " + std::to_string(g.size()) +
                                    " values but params has " + std::to_string(n));
            }
            if (n == 0) throw py::value_error("params is empty");
            float lr;
            {
              py::gil_scoped_release nogil;
              lr = o.step(p, g.data(), n);
            }
            return lr;
          },
          py::arg("params"), py::arg("grads"),
          "Updates params in place; returns the learning rate used.")
      .def_property_readonly("steps", &Optimizer::steps)
      .def_property_readonly("current_lr", &Optimizer::current_lr)
      .def_property_readonly("size", &Optimizer::size)
      .def_property_readonly("config", &Optimizer::config)
      .def_property_readonly("slot_names", &Optimizer::slot_names)
      .def_property("lr_scale", &Optimizer::lr_scale, &Optimizer::set_lr_scale,
                    "Multiplier on every rate (adaptation policies move it).")
      .def_property("hypergradient_lr", &Optimizer::hypergradient_lr,
                    &Optimizer::set_hypergradient_lr,
                    "The hypergradient-adapted base rate.")
      .def_property_readonly(
          "state",
          [](py::object self) {
            auto& o = self.cast<Optimizer&>();
            const py::ssize_t slots = o.config().slots();
            return dl_py::view(o.state(), {slots, static_cast<py::ssize_t>(o.size())}, self);
          },
          "View of the state, shape (slots, size).")
      .def(
          "load_state",
          [](Optimizer& o, int64_t t, const py::handle& state) {
            FArray s = FArray::ensure(state);
            if (!s) {
              PyErr_Clear();
              throw py::type_error("state must be an array of numbers");
            }
            const int slots = o.config().slots();
            int64_t n = 0;
            if (s.ndim() == 2) {
              if (s.shape(0) != slots) {
                throw py::value_error("state has " + std::to_string(s.shape(0)) +
                                      " slots but this optimizer has " + std::to_string(slots));
              }
              n = s.shape(1);
            } else {
              throw py::value_error("state must be 2-D (slots, size)");
            }
            o.load_state(t, n, s.data(), s.size());
          },
          py::arg("t"), py::arg("state"))
      .def("set_size",
           [](Optimizer& o, int64_t t, int64_t n) {
             // SGD without momentum has no state array but still remembers its size.
             std::vector<float> empty;
             o.load_state(t, n, empty.data(), 0);
           })
      .def("reset", &Optimizer::reset)
      .def("__copy__", [](const Optimizer& o) { return Optimizer(o); })
      .def("__deepcopy__", [](const Optimizer& o, py::dict) { return Optimizer(o); });

  py::class_<PlateauDetector>(m, "PlateauDetector",
                              "Plateau of an exponentially smoothed loss, with patience.")
      .def(py::init<float, int64_t, float>(), py::arg("smoothing") = 0.3f,
           py::arg("patience") = 5, py::arg("min_delta") = 1e-4f)
      .def("update", &PlateauDetector::update, py::arg("loss"))
      .def_property_readonly("converged", &PlateauDetector::converged)
      .def_property_readonly("smoothed", &PlateauDetector::smoothed)
      .def_property_readonly("best", &PlateauDetector::best)
      .def_property_readonly("since_best", &PlateauDetector::since_best)
      .def_property_readonly("count", &PlateauDetector::count)
      .def("reset", &PlateauDetector::reset);
}
