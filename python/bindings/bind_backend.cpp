#include <pybind11/pybind11.h>

#include "ducklearn/backend.hpp"

namespace py = pybind11;

void bind_backend(py::module_& m) {
  m.def("backend_info", [] {
    const auto info = ducklearn::backend_info();
    py::dict d;
    d["version"] = info.version;
    d["simd_target"] = info.simd_target;
    d["simd_best"] = info.simd_best;
    d["blas"] = info.blas;
    d["blas_core"] = info.blas_core;
    d["blas_threads"] = info.blas_threads;
    d["hardware_threads"] = info.hardware_threads;
    d["cuda_compiled"] = info.cuda_compiled;
    return d;
  });
  m.def("set_simd_target", &ducklearn::set_simd_target, py::arg("name"),
        "Selects 'auto', 'generic', 'avx2' or 'avx512' kernels; False if unsupported.");
  m.def("set_blas_threads", &ducklearn::set_blas_threads, py::arg("n"));
  m.def("blas_threads", &ducklearn::blas_threads);
}
