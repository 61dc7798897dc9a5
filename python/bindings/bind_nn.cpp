#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "array.hpp"
#include "ducklearn/nn/sequential.hpp"

namespace py = pybind11;
using dl_py::as_farray;
using dl_py::FArray;

namespace ducklearn_py {

ducklearn::Init init_from_string(const std::string& name) {
  if (name == "auto") return ducklearn::Init::Auto;
  if (name == "zeros") return ducklearn::Init::Zeros;
  if (name == "glorot_uniform") return ducklearn::Init::GlorotUniform;
  if (name == "he_uniform") return ducklearn::Init::HeUniform;
  throw py::value_error("unknown init '" + name +
                        "'; use one of: auto, zeros, glorot_uniform, he_uniform");
}

std::vector<ducklearn::Activation> activations_from(const std::vector<std::string>& names) {
  std::vector<ducklearn::Activation> acts;
  for (const auto& n : names) acts.push_back(ducklearn::activation_from_string(n));
  return acts;
}

py::list layer_dicts(const ducklearn::Sequential& s) {
  py::list out;
  for (const auto& L : s.layers()) {
    py::dict d;
    d["in"] = L.in;
    d["out"] = L.out;
    d["activation"] = ducklearn::to_string(L.act);
    d["w_offset"] = L.w_offset;
    d["b_offset"] = L.b_offset;
    out.append(d);
  }
  return out;
}

FArray check_rows(const py::handle& X_obj, int64_t width, const char* name) {
  FArray X = as_farray(X_obj, name, 2);
  if (X.shape(1) != width) {
    throw py::value_error(std::string(name) + " has " + std::to_string(X.shape(1)) +
                          " features but the model expects " + std::to_string(width));
  }
  dl_py::check_finite(X.data(), X.shape(0), X.shape(1), name);
  return X;
}

}  // namespace ducklearn_py

void bind_nn(py::module_& m) {
  using ducklearn::Sequential;
  using namespace ducklearn_py;
  py::class_<Sequential>(m, "Sequential",
                         "Dense layers over one flat parameter buffer and one gradient buffer.")
      .def(py::init([](int64_t n_inputs, const std::vector<int64_t>& widths,
                       const std::vector<std::string>& acts, float leaky_alpha, uint64_t seed,
                       const std::string& init) {
             auto s = std::make_unique<Sequential>(n_inputs, widths, activations_from(acts),
                                                   leaky_alpha);
             s->init(seed, init_from_string(init));
             return s;
           }),
           py::arg("n_inputs"), py::arg("widths"), py::arg("activations"),
           py::arg("leaky_alpha") = 0.01f, py::arg("seed") = 0, py::arg("init") = "auto")
      .def_property_readonly("n_inputs", &Sequential::n_inputs)
      .def_property_readonly("n_outputs", &Sequential::n_outputs)
      .def_property_readonly("n_params", &Sequential::n_params)
      .def_property_readonly("layers", &layer_dicts)
      .def_property_readonly(
          "params",
          [](py::object self) {
            auto& s = self.cast<Sequential&>();
            return dl_py::view(s.params(), {s.n_params()}, self);
          },
          "Writeable float32 view of the flat parameter buffer.")
      .def_property_readonly(
          "grads",
          [](py::object self) {
            auto& s = self.cast<Sequential&>();
            s.ensure_grads();
            return dl_py::view(s.grads(), {s.n_params()}, self);
          },
          "Writeable float32 view of the flat gradient buffer.")
      .def(
          "forward",
          [](const Sequential& s, const py::handle& X_obj) {
            FArray X = check_rows(X_obj, s.n_inputs(), "X");
            FArray out({X.shape(0), static_cast<py::ssize_t>(s.n_outputs())});
            py::gil_scoped_release nogil;
            ducklearn::Workspace ws;
            s.forward(X.data(), X.shape(0), out.mutable_data(), ws);
            return out;
          },
          py::arg("X"), "Raw outputs (n × n_outputs).")
      .def(
          "forward_backward",
          [](Sequential& s, const py::handle& X_obj, const py::handle& y_obj,
             const std::string& loss, float delta, float tau, float grad_scale) {
            ducklearn::LossSpec spec;
            spec.kind = ducklearn::loss_from_string(loss);
            spec.delta = delta;
            spec.tau = tau;
            ducklearn::validate(spec);
            FArray X = check_rows(X_obj, s.n_inputs(), "X");
            FArray y = as_farray(y_obj, "y", 1);
            if (y.shape(0) != X.shape(0)) throw py::value_error("X and y differ in length");
            if (X.shape(0) < 1) throw py::value_error("X must have at least one row");
            double total;
            {
              py::gil_scoped_release nogil;
              ducklearn::Workspace ws;
              total = s.forward_backward(X.data(), y.data(), X.shape(0), spec, grad_scale,
                                         nullptr, ws);
            }
            return total;
          },
          py::arg("X"), py::arg("y"), py::arg("loss") = "squared", py::arg("delta") = 1.0f,
          py::arg("tau") = 0.5f, py::arg("grad_scale") = 1.0f,
          "Summed loss; grads receives grad_scale * dL/dparams.")
      .def("__copy__", [](const Sequential& s) { return Sequential(s); })
      .def("__deepcopy__", [](const Sequential& s, py::dict) { return Sequential(s); });
}
