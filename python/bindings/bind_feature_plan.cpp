// Bindings of the compiled FeaturePlan. Records (dicts) and object columns are walked with
// the CPython API into the plan's columnar cells; no Python code runs per record except the
// timestamp converter for values that are not plain numbers (datetime, ISO strings...).
// Strings are not copied: the plan reads the UTF-8 buffers that CPython caches inside each
// str object, which stay alive because the caller's records/columns outlive the call.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "ducklearn/features/plan.hpp"

namespace py = pybind11;
using ducklearn::CellBatch;
using ducklearn::FeaturePlan;
using ducklearn::FieldKind;
using ducklearn::FieldSpec;

namespace {

// Parser-level reason codes, beyond the plan's IssueCode (kept in sync with validation.py).
constexpr int kIssueNotMapping = 10;
constexpr int kIssueUnknownField = 11;

enum UnknownPolicy { kUnknownError = 0, kUnknownIgnore = 1, kUnknownRecord = 2 };

/** The columnar cells of one batch, owned here; CellBatch points into them. */
struct Cells {
  CellBatch batch;
  std::vector<std::vector<uint8_t>> status;
  std::vector<std::vector<double>> values;
  std::vector<std::vector<std::string_view>> strings;
  std::vector<std::vector<int64_t>> offsets;
  std::vector<uint8_t> row_rejected;
  py::list keepalive;  // dicts converted from other mappings, strings from converters
  // (row, field or -1, code, detail): wrong types name the Python type, unknown fields the key
  std::vector<std::tuple<int64_t, int32_t, int, std::string>> pre_issues;
  std::vector<std::pair<int64_t, std::string>> unknown;  // policy "record"
};

std::string type_name(PyObject* v) { return Py_TYPE(v)->tp_name; }

class PyPlan {
 public:
  PyPlan(const py::list& fields, const py::list& crosses, uint32_t seed,
         py::object convert_timestamp)
      : plan_(make_fields(fields), make_crosses(crosses), seed),
        convert_ts_(std::move(convert_timestamp)) {
    for (const auto& f : plan_.fields()) {
      keys_.append(py::reinterpret_steal<py::object>(
          PyUnicode_InternFromString(f.name.c_str())));
    }
    key_set_ = py::reinterpret_steal<py::object>(PyFrozenSet_New(keys_.ptr()));
    if (!key_set_) throw py::error_already_set();
    py::module_ np = py::module_::import("numpy");
    np_bool_ = np.attr("bool_");
    np_datetime_ = np.attr("datetime64");
    np_timedelta_ = np.attr("timedelta64");
  }

  const FeaturePlan& plan() const { return plan_; }
  FeaturePlan& plan() { return plan_; }

  std::unique_ptr<Cells> parse_records(const py::handle& records, int policy, double ref_time) {
    py::object seq = py::reinterpret_steal<py::object>(
        PySequence_Fast(records.ptr(), "records must be a list or tuple of dicts"));
    if (!seq) throw py::error_already_set();
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq.ptr());
    PyObject** items = PySequence_Fast_ITEMS(seq.ptr());
    if (!std::isfinite(ref_time)) throw py::value_error("now must be a finite Unix time");
    auto cp = std::make_unique<Cells>();
    Cells& c = *cp;
    init_cells(c, n);
    c.batch.reference_time = ref_time;
    const auto nf = static_cast<int32_t>(plan_.n_fields());
    PyObject* const* keys = &PyList_GET_ITEM(keys_.ptr(), 0);
    for (Py_ssize_t r = 0; r < n; ++r) {
      PyObject* rec = items[r];
      if (!PyDict_Check(rec)) {
        if (PyMapping_Check(rec) && !PySequence_Check(rec) && !PyUnicode_Check(rec)) {
          py::object d = py::reinterpret_steal<py::object>(PyDict_New());
          if (PyDict_Update(d.ptr(), rec) != 0) throw py::error_already_set();
          c.keepalive.append(d);
          rec = d.ptr();
        } else {
          c.row_rejected[r] = 2;  // nothing to check: its fields are not "missing"
          c.pre_issues.emplace_back(r, -1, kIssueNotMapping, type_name(rec));
          for (int32_t i = 0; i < nf; ++i) c.status[i][r] = ducklearn::kMissing;
          continue;
        }
      }
      Py_ssize_t found = 0;
      for (int32_t i = 0; i < nf; ++i) {
        PyObject* v = PyDict_GetItemWithError(rec, keys[i]);
        if (v == nullptr) {
          if (PyErr_Occurred()) throw py::error_already_set();
          c.status[i][r] = ducklearn::kMissing;
          continue;
        }
        ++found;
        parse_cell(c, i, r, v);
      }
      if (policy != kUnknownIgnore && PyDict_GET_SIZE(rec) > found) {
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (PyDict_Next(rec, &pos, &key, &value)) {
          const int in = PySet_Contains(key_set_.ptr(), key);
          if (in < 0) {
            PyErr_Clear();  // unhashable key: cannot be a field name
          } else if (in == 1) {
            continue;
          }
          std::string shown = py::repr(key);
          if (policy == kUnknownError) {
            if (c.row_rejected[r] == 0) c.row_rejected[r] = 1;
            c.pre_issues.emplace_back(r, -1, kIssueUnknownField, shown);
          } else {
            c.unknown.emplace_back(r, shown);
          }
        }
      }
    }
    finish_cells(c, n);
    return cp;
  }

  std::unique_ptr<Cells> parse_columns(const py::list& columns, int64_t n,
                                       const py::handle& rejected, double ref_time) {
    const auto nf = static_cast<int32_t>(plan_.n_fields());
    if (static_cast<int32_t>(columns.size()) != nf) {
      throw py::value_error("expected " + std::to_string(nf) + " columns, got " +
                            std::to_string(columns.size()));
    }
    if (!std::isfinite(ref_time)) throw py::value_error("now must be a finite Unix time");
    auto cp = std::make_unique<Cells>();
    Cells& c = *cp;
    init_cells(c, n);
    c.batch.reference_time = ref_time;
    if (!rejected.is_none()) {
      auto rej = rejected.cast<py::array_t<uint8_t, py::array::c_style | py::array::forcecast>>();
      if (rej.size() != n) throw py::value_error("rejected must have one flag per row");
      std::memcpy(c.row_rejected.data(), rej.data(), static_cast<size_t>(n));
    }
    for (int32_t i = 0; i < nf; ++i) {
      py::tuple col = columns[static_cast<size_t>(i)].cast<py::tuple>();
      const std::string form = col[0].cast<std::string>();
      if (form == "values") {
        // Numbers already vectorized by the caller: float64 values + uint8 status.
        auto vals = col[1].cast<py::array_t<double, py::array::c_style | py::array::forcecast>>();
        auto st = col[2].cast<py::array_t<uint8_t, py::array::c_style | py::array::forcecast>>();
        if (vals.size() != n || st.size() != n) {
          throw py::value_error("column of field '" + plan_.fields()[i].name +
                                "' does not have " + std::to_string(n) + " entries");
        }
        std::memcpy(c.values[i].data(), vals.data(), static_cast<size_t>(n) * sizeof(double));
        std::memcpy(c.status[i].data(), st.data(), static_cast<size_t>(n));
      } else if (form == "objects") {
        py::object seq = py::reinterpret_steal<py::object>(
            PySequence_Fast(col[1].ptr(), "an object column must be a sequence"));
        if (!seq) throw py::error_already_set();
        if (PySequence_Fast_GET_SIZE(seq.ptr()) != n) {
          throw py::value_error("column of field '" + plan_.fields()[i].name +
                                "' does not have " + std::to_string(n) + " entries");
        }
        c.keepalive.append(seq);
        PyObject** items = PySequence_Fast_ITEMS(seq.ptr());
        for (int64_t r = 0; r < n; ++r) parse_cell(c, i, r, items[r]);
      } else if (form == "missing") {
        for (int64_t r = 0; r < n; ++r) c.status[i][r] = ducklearn::kMissing;
      } else {
        throw py::value_error("unknown column form '" + form + "'");
      }
    }
    finish_cells(c, n);
    return cp;
  }

 private:
  static std::vector<FieldSpec> make_fields(const py::list& fields) {
    std::vector<FieldSpec> out;
    for (const auto& h : fields) {
      const py::dict d = h.cast<py::dict>();
      FieldSpec f;
      f.name = d["name"].cast<std::string>();
      const std::string kind = d["kind"].cast<std::string>();
      if (kind == "numeric") f.kind = FieldKind::Numeric;
      else if (kind == "boolean") f.kind = FieldKind::Boolean;
      else if (kind == "categorical") f.kind = FieldKind::Categorical;
      else if (kind == "tokens") f.kind = FieldKind::Tokens;
      else if (kind == "text") f.kind = FieldKind::Text;
      else if (kind == "timestamp") f.kind = FieldKind::Timestamp;
      else throw py::value_error("field '" + f.name + "': unknown kind '" + kind + "'");
      auto get = [&](const char* k, auto dflt) {
        using T = decltype(dflt);
        return d.contains(k) && !d[k].is_none() ? d[k].cast<T>() : dflt;
      };
      f.required = get("required", false);
      f.missing_indicator = get("missing_indicator", false);
      f.impute = get("impute", 0.0);
      f.log1p = get("log1p", false);
      if (d.contains("clip") && !d["clip"].is_none()) {
        auto p = d["clip"].cast<std::pair<double, double>>();
        f.has_clip = true;
        f.clip_lo = p.first;
        f.clip_hi = p.second;
      }
      if (d.contains("valid_range") && !d["valid_range"].is_none()) {
        auto p = d["valid_range"].cast<std::pair<double, double>>();
        f.has_range = true;
        f.range_lo = p.first;
        f.range_hi = p.second;
      }
      f.bin_edges = get("bin_edges", std::vector<double>{});
      f.vocabulary = get("vocabulary", std::vector<std::string>{});
      f.other_bucket = get("other_bucket", true);
      f.hash_bits = get("hash_bits", 0);
      f.ngram_max = get("ngram_max", 1);
      const std::string w = get("weighting", std::string("count"));
      if (w == "count") f.weighting = ducklearn::TokenWeight::Count;
      else if (w == "binary") f.weighting = ducklearn::TokenWeight::Binary;
      else if (w == "log") f.weighting = ducklearn::TokenWeight::Log;
      else throw py::value_error("field '" + f.name + "': unknown weighting '" + w + "'");
      f.l2_normalize = get("l2_normalize", false);
      f.signed_hash = get("signed_hash", true);
      f.hour_of_day = get("hour_of_day", true);
      f.day_of_week = get("day_of_week", true);
      f.age = get("age", true);
      f.age_unit = get("age_unit", 86400.0);
      out.push_back(std::move(f));
    }
    return out;
  }

  static std::vector<ducklearn::CrossSpec> make_crosses(const py::list& crosses) {
    std::vector<ducklearn::CrossSpec> out;
    for (const auto& h : crosses) {
      const py::dict d = h.cast<py::dict>();
      ducklearn::CrossSpec x;
      x.a = d["a"].cast<int32_t>();
      x.b = d["b"].cast<int32_t>();
      x.hash_bits = d.contains("hash_bits") ? d["hash_bits"].cast<int>() : 0;
      out.push_back(x);
    }
    return out;
  }

  void init_cells(Cells& c, int64_t n) {
    const auto nf = static_cast<size_t>(plan_.n_fields());
    c.batch.n = n;
    c.status.assign(nf, std::vector<uint8_t>(static_cast<size_t>(n), ducklearn::kMissing));
    c.values.resize(nf);
    c.strings.resize(nf);
    c.offsets.resize(nf);
    for (size_t i = 0; i < nf; ++i) {
      switch (plan_.fields()[i].kind) {
        case FieldKind::Numeric:
        case FieldKind::Boolean:
        case FieldKind::Timestamp:
          c.values[i].assign(static_cast<size_t>(n), 0.0);
          break;
        case FieldKind::Categorical:
        case FieldKind::Text:
          c.strings[i].assign(static_cast<size_t>(n), std::string_view());
          break;
        case FieldKind::Tokens:
          c.offsets[i].assign(static_cast<size_t>(n) + 1, 0);
          break;
      }
    }
    c.row_rejected.assign(static_cast<size_t>(n), 0);
  }

  void finish_cells(Cells& c, int64_t n) {
    const auto nf = static_cast<size_t>(plan_.n_fields());
    c.batch.columns.resize(nf);
    for (size_t i = 0; i < nf; ++i) {
      auto& col = c.batch.columns[i];
      col.status = c.status[i].data();
      col.values = c.values[i].empty() ? nullptr : c.values[i].data();
      col.strings = c.strings[i].empty() ? nullptr : c.strings[i].data();
      if (plan_.fields()[i].kind == FieldKind::Tokens) {
        // Offsets were written as per-row token counts at r + 1; prefix-sum them.
        auto& off = c.offsets[i];
        for (int64_t r = 0; r < n; ++r) off[r + 1] += off[r];
        col.offsets = off.data();
      }
    }
    c.batch.row_rejected = c.row_rejected.data();
  }

  static bool utf8_of(PyObject* v, std::string_view& out) {
    Py_ssize_t len = 0;
    const char* s = PyUnicode_AsUTF8AndSize(v, &len);
    if (s == nullptr) {  // lone surrogates cannot be UTF-8: a bad value, not a crash
      PyErr_Clear();
      return false;
    }
    out = std::string_view(s, static_cast<size_t>(len));
    return true;
  }

  void wrong(Cells& c, int32_t i, int64_t r, PyObject* v) {
    c.status[i][r] = ducklearn::kWrongType;
    if (c.row_rejected[r] == 0) c.row_rejected[r] = 1;
    c.pre_issues.emplace_back(r, i, ducklearn::kIssueWrongType, type_name(v));
  }

  bool is_number(PyObject* v) const {
    if (PyBool_Check(v) || PyUnicode_Check(v) || PyBytes_Check(v)) return false;
    if (PyFloat_Check(v) || PyLong_Check(v)) return true;
    for (const auto& t : {np_bool_, np_datetime_, np_timedelta_}) {
      // numpy implements float() for these scalars, but they are not numbers of a field.
      if (PyObject_TypeCheck(v, reinterpret_cast<PyTypeObject*>(t.ptr()))) return false;
    }
    PyNumberMethods* nm = Py_TYPE(v)->tp_as_number;
    // numpy integer/float scalars, Decimal, Fraction: anything that converts with float().
    return nm != nullptr && (nm->nb_float != nullptr || nm->nb_index != nullptr) &&
           !PySequence_Check(v);
  }

  /** float(v) into out; false when v refuses (a wrong type). Integers beyond double range
   *  become infinity, which validation then reports as not finite. */
  static bool as_double(PyObject* v, double& out) {
    if (PyFloat_CheckExact(v)) {
      out = PyFloat_AS_DOUBLE(v);
      return true;
    }
    if (PyLong_Check(v)) {
      out = PyLong_AsDouble(v);
      if (out == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        out = _PyLong_Sign(v) < 0 ? -std::numeric_limits<double>::infinity()
                                  : std::numeric_limits<double>::infinity();
      }
      return true;
    }
    py::object f = py::reinterpret_steal<py::object>(PyNumber_Float(v));
    if (!f) {
      PyErr_Clear();
      return false;
    }
    out = PyFloat_AS_DOUBLE(f.ptr());
    return true;
  }

  void parse_cell(Cells& c, int32_t i, int64_t r, PyObject* v) {
    if (v == Py_None) {
      c.status[i][r] = ducklearn::kMissing;
      return;
    }
    const FieldSpec& f = plan_.fields()[static_cast<size_t>(i)];
    switch (f.kind) {
      case FieldKind::Numeric:
        if (!is_number(v) || !as_double(v, c.values[i][r])) return wrong(c, i, r, v);
        break;
      case FieldKind::Boolean:
        if (PyBool_Check(v)) {
          c.values[i][r] = v == Py_True ? 1.0 : 0.0;
        } else if (Py_TYPE(v) == reinterpret_cast<PyTypeObject*>(np_bool_.ptr())) {
          c.values[i][r] = PyObject_IsTrue(v) ? 1.0 : 0.0;
        } else {
          return wrong(c, i, r, v);
        }
        break;
      case FieldKind::Categorical:
      case FieldKind::Text: {
        std::string_view s;
        if (!PyUnicode_Check(v) || !utf8_of(v, s)) return wrong(c, i, r, v);
        c.strings[i][r] = s;
        break;
      }
      case FieldKind::Tokens: {
        if (!PyList_Check(v) && !PyTuple_Check(v)) return wrong(c, i, r, v);
        const Py_ssize_t m = PySequence_Fast_GET_SIZE(v);
        PyObject** toks = PySequence_Fast_ITEMS(v);
        const size_t start = c.strings[i].size();
        for (Py_ssize_t k = 0; k < m; ++k) {
          std::string_view s;
          if (!PyUnicode_Check(toks[k]) || !utf8_of(toks[k], s)) {
            c.strings[i].resize(start);
            return wrong(c, i, r, toks[k]);
          }
          c.strings[i].push_back(s);
        }
        c.offsets[i][r + 1] = m;
        break;
      }
      case FieldKind::Timestamp:
        if (is_number(v)) {
          if (!as_double(v, c.values[i][r])) return wrong(c, i, r, v);
        } else {
          // datetime, numpy/pandas timestamps, ISO 8601 strings: the converter decides,
          // and anything it cannot read is a wrong type, not a crash.
          PyObject* out = PyObject_CallOneArg(convert_ts_.ptr(), v);
          if (out == nullptr) {
            PyErr_Clear();
            return wrong(c, i, r, v);
          }
          if (out == Py_None) {
            Py_DECREF(out);
            c.status[i][r] = ducklearn::kMissing;
            return;
          }
          const bool ok = as_double(out, c.values[i][r]);
          Py_DECREF(out);
          if (!ok) return wrong(c, i, r, v);
        }
        break;
    }
    c.status[i][r] = ducklearn::kPresent;
  }

  FeaturePlan plan_;
  py::object convert_ts_;
  py::list keys_;
  py::object key_set_;
  py::object np_bool_, np_datetime_, np_timedelta_;
};

/**
 * One parsed batch: its cells, then (after validate) which rows are kept. Fills can run
 * several times (raw values to learn from, then the matrix) without parsing again. Holds a
 * reference to the records/columns it was parsed from, whose strings it points into.
 */
class ParsedBatch {
 public:
  ParsedBatch(py::object plan_owner, PyPlan* plan, std::unique_ptr<Cells> cells,
              py::object source)
      : owner_(std::move(plan_owner)), plan_(plan), cells_(std::move(cells)),
        source_(std::move(source)) {}

  int64_t n() const { return cells_->batch.n; }

  py::tuple validate(bool want_counts) {
    Cells& c = *cells_;
    const int64_t n = c.batch.n;
    const FeaturePlan& plan = plan_->plan();
    const auto nf = plan.n_fields();
    keep_ = py::array_t<uint8_t>(n);
    std::vector<ducklearn::Issue> issues;
    ducklearn::FieldCounts counts;
    {
      py::gil_scoped_release nogil;
      kept_ = plan.validate(c.batch, keep_.mutable_data(), &issues,
                            want_counts ? &counts : nullptr);
    }
    validated_ = true;
    py::list issue_list;
    for (const auto& t : c.pre_issues) {
      issue_list.append(py::make_tuple(std::get<0>(t), std::get<1>(t), std::get<2>(t),
                                       std::get<3>(t)));
    }
    for (const auto& is : issues) {
      if (is.code == ducklearn::kIssueWrongType) continue;  // reported by the parser above
      issue_list.append(py::make_tuple(is.row, is.field, static_cast<int>(is.code), is.value));
    }
    py::list unknown;
    for (const auto& u : c.unknown) unknown.append(py::make_tuple(u.first, u.second));
    py::object cnt = py::none();
    if (want_counts) {
      py::array_t<int64_t> a({int64_t{8}, nf});
      int64_t* p = a.mutable_data();
      int k = 0;
      for (const auto* v : {&counts.present, &counts.missing, &counts.wrong_type,
                            &counts.not_finite, &counts.out_of_range, &counts.missing_required,
                            &counts.unknown_category, &counts.other_level}) {
        std::copy(v->begin(), v->end(), p + (k++) * nf);
      }
      cnt = a;
    }
    return py::make_tuple(keep_, issue_list, unknown, cnt);
  }

  /** raw: None or what raw() returned for this batch (reused, see FeaturePlan::fill_dense). */
  const double* raw_ptr(const py::handle& raw) const {
    if (raw.is_none()) return nullptr;
    auto a = py::reinterpret_borrow<py::array>(raw);
    if (!py::isinstance<py::array_t<double>>(raw) || !(a.flags() & py::array::c_style) ||
        a.ndim() != 2 || a.shape(0) != kept_ || a.shape(1) != plan_->plan().n_fields()) {
      throw py::value_error("raw must be the C-contiguous float64 array raw() returned for "
                            "this batch");
    }
    return static_cast<const double*>(a.data());
  }

  py::array_t<float> dense(const py::handle& raw) {
    check_validated();
    const FeaturePlan& plan = plan_->plan();
    const double* rp = raw_ptr(raw);
    py::array_t<float> out({kept_, plan.n_features()});
    py::gil_scoped_release nogil;
    plan.fill_dense(cells_->batch, keep_.data(), out.mutable_data(), rp);
    return out;
  }

  py::tuple csr(const py::handle& raw) {
    check_validated();
    const double* rp = raw_ptr(raw);
    std::vector<int64_t> indptr;
    std::vector<int32_t> indices;
    std::vector<float> data;
    {
      py::gil_scoped_release nogil;
      plan_->plan().fill_csr(cells_->batch, keep_.data(), indptr, indices, data, rp);
    }
    py::array_t<float> d(static_cast<py::ssize_t>(data.size()));
    py::array_t<int32_t> ix(static_cast<py::ssize_t>(indices.size()));
    py::array_t<int64_t> ip(static_cast<py::ssize_t>(indptr.size()));
    std::copy(data.begin(), data.end(), d.mutable_data());
    std::copy(indices.begin(), indices.end(), ix.mutable_data());
    std::copy(indptr.begin(), indptr.end(), ip.mutable_data());
    return py::make_tuple(d, ix, ip);
  }

  py::array_t<double> raw() {
    check_validated();
    const FeaturePlan& plan = plan_->plan();
    py::array_t<double> out({kept_, plan.n_fields()});
    py::gil_scoped_release nogil;
    plan.fill_raw(cells_->batch, keep_.data(), out.mutable_data());
    return out;
  }

 private:
  void check_validated() const {
    if (!validated_) throw std::logic_error("call validate() before filling a parsed batch");
  }

  py::object owner_;  // keeps the plan alive
  PyPlan* plan_;
  std::unique_ptr<Cells> cells_;
  py::object source_;  // keeps the parsed strings alive
  py::array_t<uint8_t> keep_;
  int64_t kept_ = 0;
  bool validated_ = false;
};

using DVec = py::array_t<double, py::array::c_style | py::array::forcecast>;

DVec field_vector(const PyPlan& p, const py::handle& obj, const char* name) {
  DVec a = DVec::ensure(obj);
  if (!a) {
    PyErr_Clear();
    throw py::type_error(std::string(name) + " must be an array of numbers");
  }
  if (a.ndim() != 1 || a.shape(0) != p.plan().n_fields()) {
    throw py::value_error(std::string(name) + " must have one entry per field (" +
                          std::to_string(p.plan().n_fields()) + ")");
  }
  return a;
}

}  // namespace

void bind_feature_plan(py::module_& m) {
  m.attr("ISSUE_NOT_MAPPING") = kIssueNotMapping;
  m.attr("ISSUE_UNKNOWN_FIELD") = kIssueUnknownField;
  py::class_<PyPlan>(m, "FeaturePlan",
                     "Compiled feature extraction (see ducklearn.features.Extractor).")
      .def(py::init<const py::list&, const py::list&, uint32_t, py::object>(),
           py::arg("fields"), py::arg("crosses"), py::arg("seed"),
           py::arg("convert_timestamp"))
      .def_property_readonly("n_features", [](const PyPlan& p) { return p.plan().n_features(); })
      .def_property_readonly("n_fields", [](const PyPlan& p) { return p.plan().n_fields(); })
      .def_property_readonly("column_names",
                             [](const PyPlan& p) { return p.plan().column_names(); })
      .def("value_column", [](const PyPlan& p, int64_t i) { return p.plan().value_column(i); })
      .def(
          "set_normalization",
          [](PyPlan& p, const py::handle& shift, const py::handle& scale, const py::handle& lo,
             const py::handle& hi, const py::handle& impute) {
            DVec a = field_vector(p, shift, "shift"), b = field_vector(p, scale, "scale"),
                 c = field_vector(p, lo, "lo"), d = field_vector(p, hi, "hi");
            if (impute.is_none()) {
              p.plan().set_normalization(a.data(), b.data(), c.data(), d.data(), nullptr);
            } else {
              DVec e = field_vector(p, impute, "impute");
              p.plan().set_normalization(a.data(), b.data(), c.data(), d.data(), e.data());
            }
          },
          py::arg("shift"), py::arg("scale"), py::arg("lo"), py::arg("hi"),
          py::arg("impute") = py::none(),
          "Publish normalization (and impute) values atomically; running fills keep theirs.")
      .def(
          "set_impute",
          [](PyPlan& p, const py::handle& v) {
            DVec a = field_vector(p, v, "impute");
            p.plan().set_impute(a.data());
          },
          py::arg("values"))
      .def(
          "parse_records",
          [](py::object self, const py::handle& records, int policy, double now) {
            auto* p = self.cast<PyPlan*>();
            auto cells = p->parse_records(records, policy, now);
            return ParsedBatch(self, p, std::move(cells),
                               py::reinterpret_borrow<py::object>(records));
          },
          py::arg("records"), py::arg("unknown_policy"), py::arg("now"),
          "Parse a list of dicts (policy for unknown keys: 0 error, 1 ignore, 2 record); "
          "timestamp ages are measured from now (Unix seconds).")
      .def(
          "parse_columns",
          [](py::object self, const py::list& columns, int64_t n, const py::handle& rejected,
             double now) {
            auto* p = self.cast<PyPlan*>();
            auto cells = p->parse_columns(columns, n, rejected, now);
            return ParsedBatch(self, p, std::move(cells), columns);
          },
          py::arg("columns"), py::arg("n"), py::arg("rejected"), py::arg("now"),
          "Parse per-field columns: ('values', float64, uint8 status), ('objects', seq) or "
          "('missing',).");

  py::class_<ParsedBatch>(m, "ParsedBatch", "A parsed batch (see FeaturePlan.parse_records).")
      .def_property_readonly("n", &ParsedBatch::n)
      .def("validate", &ParsedBatch::validate, py::arg("want_counts") = false,
           "(keep uint8[n], issues [(row, field, code, detail)], unknown [(row, key)], counts)")
      .def("dense", &ParsedBatch::dense, py::arg("raw") = py::none(),
           "Kept rows as a float32 matrix (raw: reuse raw() values)")
      .def("csr", &ParsedBatch::csr, py::arg("raw") = py::none(),
           "Kept rows as CSR (data, indices, indptr)")
      .def("raw", &ParsedBatch::raw, "Kept rows: one raw float64 per field (NaN = missing)");

  m.def(
      "tokenize_text",
      [](const std::string& text) {
        std::string out;
        std::vector<size_t> ends;
        ducklearn::tokenize_text(text, out, ends);
        std::vector<std::string> toks;
        size_t start = 0;
        for (const size_t e : ends) {
          toks.emplace_back(out.substr(start, e - start));
          start = e;
        }
        return toks;
      },
      py::arg("text"), "The tokens a Text field hashes (lowercased alphanumeric runs).");
}
