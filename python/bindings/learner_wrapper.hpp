#pragma once
// Python-side holders shared by bind_stream.cpp and bind_adaptive.cpp, plus the conversion
// between ducklearn::StateDict and (dict of numpy arrays, dict of scalars).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <mutex>
#include <string>
#include <vector>

#include "ducklearn/state.hpp"
#include "ducklearn/stream/learner.hpp"

namespace ducklearn_py {

namespace py = pybind11;

/** A Learner behind a mutex: every call releases the GIL before taking the mutex. */
struct PyLearner {
  explicit PyLearner(ducklearn::Learner l) : learner(std::move(l)), row(learner.n_inputs()) {}
  PyLearner(const PyLearner& o) : learner(o.learner), row(o.learner.n_inputs()) {}
  PyLearner& operator=(const PyLearner&) = delete;
  ~PyLearner() { clear_key_cache(); }  // runs with the GIL held (Python deallocation)

  void clear_key_cache() {
    for (PyObject* k : cached_keys) Py_DECREF(k);
    cached_keys.clear();
    cached_cols.clear();
    Py_XDECREF(cached_index);
    cached_index = nullptr;
  }

  ducklearn::Learner learner;
  std::mutex mu;
  ducklearn::Workspace ws;
  std::vector<float> row;  ///< one example decoded from a dict
  // Records of a stream usually repeat the same key objects in the same order: remembering
  // (key pointer -> column) by position skips the index lookup for every such key.
  std::vector<PyObject*> cached_keys;  ///< owned references
  std::vector<long> cached_cols;
  PyObject* cached_index = nullptr;    ///< the index dict the cache belongs to (owned)
};

/** (tensors: {name: float32/float64 array}, meta: {name: float | str}) */
inline py::tuple state_to_python(const ducklearn::StateDict& s) {
  py::dict tensors, meta;
  for (const auto& [k, v] : s.f32) {
    py::array_t<float> a(static_cast<py::ssize_t>(v.size()));
    std::copy(v.begin(), v.end(), a.mutable_data());
    tensors[py::str(k)] = a;
  }
  for (const auto& [k, v] : s.f64) {
    py::array_t<double> a(static_cast<py::ssize_t>(v.size()));
    std::copy(v.begin(), v.end(), a.mutable_data());
    tensors[py::str(k)] = a;
  }
  for (const auto& [k, v] : s.numbers) meta[py::str(k)] = v;
  for (const auto& [k, v] : s.strings) meta[py::str(k)] = v;
  return py::make_tuple(tensors, meta);
}

inline ducklearn::StateDict state_from_python(const py::dict& tensors, const py::dict& meta) {
  ducklearn::StateDict s;
  for (const auto& item : tensors) {
    const auto key = py::cast<std::string>(item.first);
    auto arr = py::reinterpret_borrow<py::array>(item.second);
    if (!py::isinstance<py::array>(item.second) || arr.ndim() != 1) {
      throw py::type_error("state tensor '" + key + "' must be a 1-D numpy array");
    }
    if (arr.dtype().is(py::dtype::of<double>())) {
      auto a = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(arr);
      s.f64[key].assign(a.data(), a.data() + a.size());
    } else if (arr.dtype().is(py::dtype::of<float>())) {
      auto a = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(arr);
      s.f32[key].assign(a.data(), a.data() + a.size());
    } else {
      throw py::type_error("state tensor '" + key + "' must be float32 or float64, got " +
                           std::string(py::str(arr.dtype())));
    }
  }
  for (const auto& item : meta) {
    const auto key = py::cast<std::string>(item.first);
    if (py::isinstance<py::str>(item.second)) {
      s.strings[key] = py::cast<std::string>(item.second);
    } else if (PyFloat_Check(item.second.ptr()) || PyLong_Check(item.second.ptr())) {
      s.numbers[key] = py::cast<double>(item.second);
    } else {
      throw py::type_error("state value '" + key + "' must be a number or a string");
    }
  }
  return s;
}

}  // namespace ducklearn_py
