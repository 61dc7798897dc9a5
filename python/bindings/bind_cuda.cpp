// CUDA entry points on raw device pointers (the Python layer takes them from CuPy arrays via
// __cuda_array_interface__). In a CPU-only build every call raises CudaUnavailableError.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "ducklearn/cuda.hpp"

namespace py = pybind11;

void bind_cuda(py::module_& m) {
  namespace dc = ducklearn::cuda;
  m.def("compiled", &dc::compiled, "True when the core was built with DUCKLEARN_ENABLE_CUDA=ON.");
  m.def("device_count", &dc::device_count,
        "Visible CUDA devices (0 without a driver or GPU); raises in a CPU-only build.");
  m.def(
      "dense_forward",
      [](uintptr_t X, int64_t n, int64_t in, uintptr_t W, uintptr_t b, int64_t out, uintptr_t Y,
         const std::string& act, float alpha, uintptr_t stream) {
        const auto a = ducklearn::activation_from_string(act);
        py::gil_scoped_release nogil;
        dc::dense_forward(reinterpret_cast<const float*>(X), n, in,
                          reinterpret_cast<const float*>(W), reinterpret_cast<const float*>(b),
                          out, reinterpret_cast<float*>(Y), a, alpha, stream);
      },
      py::arg("X"), py::arg("n"), py::arg("in_features"), py::arg("W"), py::arg("b"),
      py::arg("out_features"), py::arg("Y"), py::arg("activation"), py::arg("alpha"),
      py::arg("stream"),
      "Y = act(X W^T + b) on device pointers (b may be 0), queued on stream; see "
      "ducklearn.cuda.dense_forward for the array-level API.");
  m.def(
      "optimizer_step",
      [](const ducklearn::OptimizerConfig& cfg, int64_t t, uintptr_t p, uintptr_t g,
         uintptr_t state, int64_t n, uintptr_t stream) {
        py::gil_scoped_release nogil;
        dc::optimizer_step(cfg, t, reinterpret_cast<float*>(p), reinterpret_cast<const float*>(g),
                           reinterpret_cast<float*>(state), n, stream);
      },
      py::arg("config"), py::arg("t"), py::arg("params"), py::arg("grads"), py::arg("state"),
      py::arg("n"), py::arg("stream"),
      "Optimizer step t on device pointers (state: config.slots x n floats, 0 when none), "
      "queued on stream; see ducklearn.cuda.DeviceOptimizer.");
}
