// The only PYBIND11_MODULE: registers errors, then each area's bindings.
#include <pybind11/pybind11.h>

#include "ducklearn/config.hpp"
#include "ducklearn/error.hpp"

namespace py = pybind11;

void bind_backend(py::module_& m);
void bind_kernels(py::module_& m);
void bind_nn(py::module_& m);
void bind_optim(py::module_& m);
void bind_features(py::module_& m);
void bind_feature_plan(py::module_& m);
void bind_stream(py::module_& m);
void bind_adaptive(py::module_& m);
void bind_serving(py::module_& m);
void bind_cuda(py::module_& m);

PYBIND11_MODULE(_core, m) {
  m.doc() = "ducklearn native core (C++ kernels, layers, optimizers, feature kernels)";
  m.attr("__version__") = DUCKLEARN_VERSION_INFO;
  m.attr("HAS_CUDA") = static_cast<bool>(DUCKLEARN_HAS_CUDA);
  m.attr("HAS_BLAS") = static_cast<bool>(DUCKLEARN_HAS_BLAS);

  py::register_exception<ducklearn::Error>(m, "DucklearnError", PyExc_RuntimeError);
  py::register_exception<ducklearn::CudaUnavailable>(m, "CudaUnavailableError",
                                                     PyExc_RuntimeError);

  bind_backend(m);
  auto kernels = m.def_submodule("kernels", "Element-wise and dense kernels");
  bind_kernels(kernels);
  bind_nn(m);
  bind_optim(m);
  auto features = m.def_submodule("features", "Feature kernels: hashing, statistics, one-hot");
  bind_features(features);
  bind_feature_plan(features);
  bind_stream(m);
  bind_adaptive(m);
  bind_serving(m);
  auto cuda = m.def_submodule("cuda", "CUDA entry points on device pointers");
  bind_cuda(cuda);
}
