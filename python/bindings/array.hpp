#pragma once
// Buffer checks shared by every bind_<area>.cpp. Read-only inputs may be converted to
// C-contiguous float32; arrays updated in place must already be C-contiguous, float32 and
// writeable, and are never silently copied. Messages name the argument and the fix.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <string>

namespace dl_py {

namespace py = pybind11;
using FArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using DArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

inline std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    s += std::to_string(a.shape(i));
    if (i + 1 < a.ndim() || a.ndim() == 1) s += a.ndim() == 1 ? "," : ", ";
  }
  return s + ")";
}

/** Converts obj to a C-contiguous float32 array with the given ndim (read-only use). */
inline FArray as_farray(const py::handle& obj, const char* name, int ndim) {
  if (!py::isinstance<py::array>(obj) && !py::isinstance<py::sequence>(obj) &&
      !PyFloat_Check(obj.ptr()) && !PyLong_Check(obj.ptr())) {
    throw py::type_error(std::string(name) + " must be an array of numbers, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  if (py::isinstance<py::array>(obj)) {
    const char kind = py::cast<py::array>(obj).dtype().kind();
    if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b') {
      throw py::type_error(std::string(name) + " must have a numeric dtype, got dtype " +
                           std::string(py::str(py::cast<py::array>(obj).dtype())));
    }
  }
  FArray a = FArray::ensure(obj);
  if (!a) {
    PyErr_Clear();
    throw py::type_error(std::string(name) + " could not be converted to a float32 array");
  }
  if (a.ndim() != ndim) {
    throw py::value_error(std::string(name) + " must be " + std::to_string(ndim) +
                          "-D, got shape " + shape_str(a));
  }
  return a;
}

/**
 * Throws ValueError naming the first NaN/inf entry of a rows × cols matrix. Done in C++ so
 * that fast paths can skip numpy's checks; costs one pass, far less than the work after it.
 */
inline void check_finite(const float* data, py::ssize_t rows, py::ssize_t cols,
                         const char* name) {
  const py::ssize_t n = rows * cols;
  bool ok = true;
  for (py::ssize_t i = 0; i < n; ++i) ok &= std::isfinite(data[i]);
  if (ok) return;
  for (py::ssize_t i = 0; i < n; ++i) {
    if (!std::isfinite(data[i])) {
      const char* what = std::isnan(data[i]) ? "NaN" : "infinity";
      throw py::value_error(std::string("Input ") + name + " contains " + what + " at row " +
                            std::to_string(i / cols) + ", column " + std::to_string(i % cols) +
                            " (NaN and inf are not accepted); impute or drop those values");
    }
  }
}

/** Pointer into an array that will be written in place: no conversion, no copy. */
inline float* inplace_ptr(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(std::string(name) + " must be a numpy array updated in place; try " +
                         "np.ascontiguousarray(" + name + ", dtype=np.float32)");
  }
  auto a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().is(py::dtype::of<float>())) {
    throw py::type_error(std::string(name) + " must be float32 to be updated in place, got " +
                         std::string(py::str(a.dtype())) + "; try np.ascontiguousarray(" +
                         name + ", dtype=np.float32)");
  }
  if (!(a.flags() & py::array::c_style)) {
    throw py::value_error(std::string(name) + " must be C-contiguous to be updated in " +
                          "place; try np.ascontiguousarray(" + name + ", dtype=np.float32)");
  }
  if (!a.writeable()) {
    throw py::value_error(std::string(name) + " is read-only; pass a writeable array " +
                          "(e.g. " + name + ".copy())");
  }
  return static_cast<float*>(a.mutable_data());
}

/** Read-only pointer to a float32 C-contiguous array without copying (for in-place peers). */
inline const float* exact_ptr(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(std::string(name) + " must be a numpy float32 array");
  }
  auto a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().is(py::dtype::of<float>()) || !(a.flags() & py::array::c_style)) {
    throw py::type_error(std::string(name) + " must be C-contiguous float32; try " +
                         "np.ascontiguousarray(" + name + ", dtype=np.float32)");
  }
  return static_cast<const float*>(a.data());
}

inline py::ssize_t size_of(const py::handle& obj) {
  return py::reinterpret_borrow<py::array>(obj).size();
}

/** A numpy view of n floats owned by `owner` (kept alive by the view). */
inline py::array_t<float> view(float* data, std::initializer_list<py::ssize_t> shape,
                               py::handle owner) {
  return py::array_t<float>(std::vector<py::ssize_t>(shape), data, owner);
}

}  // namespace dl_py
