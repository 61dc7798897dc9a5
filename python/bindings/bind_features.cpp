#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <string_view>

#include "array.hpp"
#include "ducklearn/features/hashing.hpp"
#include "ducklearn/features/murmur3.hpp"
#include "ducklearn/features/one_hot.hpp"
#include "ducklearn/features/running_stats.hpp"

namespace py = pybind11;
using dl_py::as_farray;
using dl_py::FArray;

namespace {

std::string_view bytes_of(const py::handle& obj, std::string& holder, const char* name) {
  if (PyUnicode_Check(obj.ptr())) {
    Py_ssize_t len = 0;
    const char* s = PyUnicode_AsUTF8AndSize(obj.ptr(), &len);
    if (s == nullptr) throw py::error_already_set();
    return {s, static_cast<size_t>(len)};
  }
  if (PyBytes_Check(obj.ptr())) {
    holder = py::cast<std::string>(obj);
    return holder;
  }
  throw py::type_error(std::string(name) + " must be str or bytes, got " +
                       std::string(py::str(py::type::of(obj).attr("__name__"))));
}

FArray rows_of(const ducklearn::RunningStats& s, const py::handle& X_obj) {
  FArray X = as_farray(X_obj, "X", 2);
  if (X.shape(1) != s.dim()) {
    throw py::value_error("X has " + std::to_string(X.shape(1)) + " columns but the statistics " +
                          "track " + std::to_string(s.dim()));
  }
  return X;
}

template <class T>
py::array_t<T> copy_of(const T* p, int64_t n) {
  py::array_t<T> a(n);
  std::copy(p, p + n, a.mutable_data());
  return a;
}

}  // namespace

void bind_features(py::module_& m) {
  using ducklearn::RunningStats;

  m.def(
      "murmur3_32",
      [](const py::handle& data, uint32_t seed) {
        std::string holder;
        auto v = bytes_of(data, holder, "data");
        return ducklearn::murmur3_32(v.data(), v.size(), seed);
      },
      py::arg("data"), py::arg("seed") = 0,
      "MurmurHash3_x86_32 of bytes (str is hashed as UTF-8).");

  m.def(
      "field_seed",
      [](const py::handle& field, uint32_t seed) {
        std::string holder;
        return ducklearn::field_seed(bytes_of(field, holder, "field"), seed);
      },
      py::arg("field"), py::arg("seed") = 0);

  m.def(
      "hash_tokens",
      [](const py::handle& field, const py::sequence& tokens, int bits, uint32_t seed) {
        ducklearn::validate_hash_bits(bits);
        std::string holder;
        const uint32_t fseed = ducklearn::field_seed(bytes_of(field, holder, "field"), seed);
        const auto n = static_cast<py::ssize_t>(py::len(tokens));
        py::array_t<uint32_t> index(n);
        py::array_t<float> sign(n);
        auto* ip = index.mutable_data();
        auto* sp = sign.mutable_data();
        for (py::ssize_t i = 0; i < n; ++i) {
          std::string th;
          auto tok = bytes_of(tokens[i], th, "tokens[i]");
          const auto h = ducklearn::hash_token(fseed, tok, bits);
          ip[i] = h.index;
          sp[i] = h.sign;
        }
        return py::make_tuple(index, sign);
      },
      py::arg("field"), py::arg("tokens"), py::arg("bits"), py::arg("seed") = 0,
      "Signed hashing of (field, token) pairs: (bucket indices uint32, signs float32).");

  m.def(
      "one_hot",
      [](const py::handle& codes_obj, int64_t n_categories, bool other_bucket) {
        if (py::isinstance<py::array>(codes_obj)) {
          const char kind = py::cast<py::array>(codes_obj).dtype().kind();
          if (kind != 'i' && kind != 'u') {
            throw py::type_error("codes must be integers (category indices), got dtype " +
                                 std::string(py::str(py::cast<py::array>(codes_obj).dtype())));
          }
        }
        if (n_categories < 1) {
          throw py::value_error("one_hot needs at least one category; n_categories = " +
                                std::to_string(n_categories));
        }
        auto codes = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(
            codes_obj);
        if (!codes || codes.ndim() != 1) {
          PyErr_Clear();
          throw py::value_error("codes must be a 1-D array of integers");
        }
        FArray out({codes.shape(0), static_cast<py::ssize_t>(n_categories)});
        ducklearn::one_hot(codes.data(), codes.shape(0), n_categories, other_bucket,
                           out.mutable_data());
        return out;
      },
      py::arg("codes"), py::arg("n_categories"), py::arg("other_bucket") = false);

  py::class_<RunningStats>(m, "RunningStats",
                           "Per-column count/mean/variance (Welford, mergeable) and min/max.")
      .def(py::init<int64_t>(), py::arg("d"))
      .def_property_readonly("dim", &RunningStats::dim)
      .def(
          "update",
          [](RunningStats& s, const py::handle& X) {
            FArray a = rows_of(s, X);
            py::gil_scoped_release nogil;
            s.update(a.data(), a.shape(0));
          },
          py::arg("X"))
      .def("merge", &RunningStats::merge, py::arg("other"))
      .def("reset", &RunningStats::reset)
      .def(
          "standardize",
          [](const RunningStats& s, const py::handle& X) {
            FArray a = rows_of(s, X);
            FArray out({a.shape(0), a.shape(1)});
            py::gil_scoped_release nogil;
            s.standardize(a.data(), a.shape(0), out.mutable_data());
            return out;
          },
          py::arg("X"))
      .def(
          "update_standardize",
          [](RunningStats& s, const py::handle& X) {
            FArray a = rows_of(s, X);
            FArray out({a.shape(0), a.shape(1)});
            py::gil_scoped_release nogil;
            s.update_standardize(a.data(), a.shape(0), out.mutable_data());
            return out;
          },
          py::arg("X"))
      .def(
          "minmax",
          [](const RunningStats& s, const py::handle& X) {
            FArray a = rows_of(s, X);
            FArray out({a.shape(0), a.shape(1)});
            py::gil_scoped_release nogil;
            s.minmax(a.data(), a.shape(0), out.mutable_data());
            return out;
          },
          py::arg("X"))
      .def(
          "update_minmax",
          [](RunningStats& s, const py::handle& X) {
            FArray a = rows_of(s, X);
            FArray out({a.shape(0), a.shape(1)});
            py::gil_scoped_release nogil;
            s.update_minmax(a.data(), a.shape(0), out.mutable_data());
            return out;
          },
          py::arg("X"))
      .def_property_readonly("count", [](const RunningStats& s) { return copy_of(s.count(), s.dim()); })
      .def_property_readonly("mean", [](const RunningStats& s) { return copy_of(s.mean(), s.dim()); })
      .def_property_readonly("m2", [](const RunningStats& s) { return copy_of(s.m2(), s.dim()); })
      .def_property_readonly("min", [](const RunningStats& s) { return copy_of(s.min(), s.dim()); })
      .def_property_readonly("max", [](const RunningStats& s) { return copy_of(s.max(), s.dim()); })
      .def(
          "variance",
          [](const RunningStats& s, int ddof) {
            py::array_t<double> out(s.dim());
            s.variance(out.mutable_data(), ddof);
            return out;
          },
          py::arg("ddof") = 0)
      .def(
          "load",
          [](RunningStats& s, const dl_py::DArray& count, const dl_py::DArray& mean,
             const dl_py::DArray& m2, const FArray& mn, const FArray& mx) {
            for (const py::ssize_t size : {count.size(), mean.size(), m2.size(), mn.size(), mx.size()}) {
              if (size != s.dim()) {
                throw py::value_error("every state array must have " + std::to_string(s.dim()) +
                                      " entries");
              }
            }
            s.load(count.data(), mean.data(), m2.data(), mn.data(), mx.data());
          },
          py::arg("count"), py::arg("mean"), py::arg("m2"), py::arg("min"), py::arg("max"))
      .def("__copy__", [](const RunningStats& s) { return RunningStats(s); })
      .def("__deepcopy__", [](const RunningStats& s, py::dict) { return RunningStats(s); });
}
