// FeaturePlan: column layout, validation reason codes, dense/CSR agreement, raw values,
// normalization, hashing consistent with hash_token, and tokenization.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "ducklearn/features/hashing.hpp"
#include "ducklearn/features/plan.hpp"

namespace {

using ducklearn::CellBatch;
using ducklearn::CellColumn;
using ducklearn::CrossSpec;
using ducklearn::FeaturePlan;
using ducklearn::FieldKind;
using ducklearn::FieldSpec;

FieldSpec numeric(const std::string& name) {
  FieldSpec f;
  f.name = name;
  f.kind = FieldKind::Numeric;
  return f;
}

/** Owns the cells of a small batch: a numeric, a categorical and a tokens field. */
struct Batch3 {
  std::vector<uint8_t> st_num, st_cat, st_tok;
  std::vector<double> num;
  std::vector<std::string_view> cat, tok;
  std::vector<int64_t> tok_off;
  CellBatch batch;

  void finish() {
    batch.n = static_cast<int64_t>(num.size());
    batch.columns = {CellColumn{st_num.data(), num.data(), nullptr, nullptr},
                     CellColumn{st_cat.data(), nullptr, cat.data(), nullptr},
                     CellColumn{st_tok.data(), nullptr, tok.data(), tok_off.data()}};
  }
};

FeaturePlan plan3(bool required_num = false) {
  FieldSpec n = numeric("size");
  n.log1p = true;
  n.has_range = true;
  n.range_lo = 0;
  n.range_hi = 1e6;
  n.required = required_num;
  n.missing_indicator = true;
  FieldSpec c;
  c.name = "lang";
  c.kind = FieldKind::Categorical;
  c.vocabulary = {"py", "go"};
  FieldSpec t;
  t.name = "owners";
  t.kind = FieldKind::Tokens;
  t.hash_bits = 4;
  return FeaturePlan({n, c, t}, {}, 7);
}

TEST(FeaturePlan, ColumnLayoutAndNames) {
  FeaturePlan p = plan3();
  ASSERT_EQ(p.n_features(), 1 + 1 + 3 + 16);
  const auto& names = p.column_names();
  EXPECT_EQ(names[0], "size");
  EXPECT_EQ(names[1], "size:missing");
  EXPECT_EQ(names[2], "lang=py");
  EXPECT_EQ(names[4], "lang=__other__");
  EXPECT_EQ(names[5], "owners#0");
  EXPECT_EQ(p.value_column(2), 5);
}

TEST(FeaturePlan, RejectsBadSpecs) {
  FieldSpec a = numeric("a");
  EXPECT_THROW(FeaturePlan({a, a}, {}), std::invalid_argument);
  FieldSpec t;
  t.name = "t";
  t.kind = FieldKind::Tokens;
  t.hash_bits = 0;
  EXPECT_THROW(FeaturePlan({t}, {}), std::invalid_argument);
  FieldSpec r = numeric("r");
  r.has_range = true;
  r.range_lo = 2;
  r.range_hi = 1;
  EXPECT_THROW(FeaturePlan({r}, {}), std::invalid_argument);
  t.hash_bits = 4;
  CrossSpec x{0, 1, 4};  // numeric x tokens cannot be crossed
  EXPECT_THROW(FeaturePlan({numeric("n"), t}, {x}), std::invalid_argument);
}

TEST(FeaturePlan, ValidationCodesAndKeep) {
  FeaturePlan p = plan3(/*required_num=*/true);
  Batch3 b;
  // row 0 ok; row 1 NaN; row 2 out of range; row 3 missing required; row 4 wrong type
  b.num = {10.0, std::nan(""), -1.0, 0.0, 0.0};
  b.st_num = {0, 0, 0, ducklearn::kMissing, ducklearn::kWrongType};
  b.cat = {"py", "go", "rust", "py", "py"};
  b.st_cat = {0, 0, 0, 0, 0};
  b.st_tok = {0, 0, 0, 0, 0};
  b.tok = {"a", "b"};
  b.tok_off = {0, 2, 2, 2, 2, 2};
  b.finish();
  std::vector<uint8_t> keep(5);
  std::vector<ducklearn::Issue> issues;
  ducklearn::FieldCounts counts;
  EXPECT_EQ(p.validate(b.batch, keep.data(), &issues, &counts), 1);
  EXPECT_EQ(keep, (std::vector<uint8_t>{1, 0, 0, 0, 0}));
  ASSERT_EQ(issues.size(), 4u);
  EXPECT_EQ(issues[0].code, ducklearn::kIssueNotFinite);
  EXPECT_EQ(issues[1].code, ducklearn::kIssueOutOfRange);
  EXPECT_DOUBLE_EQ(issues[1].value, -1.0);
  EXPECT_EQ(issues[2].code, ducklearn::kIssueMissingRequired);
  EXPECT_EQ(issues[3].code, ducklearn::kIssueWrongType);
  EXPECT_EQ(counts.other_level[1], 1);  // "rust" went to the other bucket, not rejected
  EXPECT_EQ(counts.missing[0], 1);
}

TEST(FeaturePlan, DenseMatchesCsrAndHashing) {
  FeaturePlan p = plan3();
  Batch3 b;
  b.num = {0.0, 99.0};
  b.st_num = {ducklearn::kMissing, 0};
  b.cat = {"go", ""};
  b.st_cat = {0, ducklearn::kMissing};
  b.tok = {"alice", "bob", "alice"};
  b.tok_off = {0, 3, 3};
  b.st_tok = {0, 0};
  b.finish();
  std::vector<uint8_t> keep(2);
  ASSERT_EQ(p.validate(b.batch, keep.data(), nullptr, nullptr), 2);
  std::vector<float> X(static_cast<size_t>(2 * p.n_features()));
  p.fill_dense(b.batch, keep.data(), X.data());
  const int64_t d = p.n_features();
  EXPECT_FLOAT_EQ(X[0], 0.0f);  // imputed 0
  EXPECT_FLOAT_EQ(X[1], 1.0f);  // missing indicator
  EXPECT_FLOAT_EQ(X[3], 1.0f);  // lang=go
  EXPECT_FLOAT_EQ(X[d + 0], static_cast<float>(std::log1p(99.0)));
  // Tokens: the same bucket/sign as hash_token under the field's seed.
  const uint32_t fseed = ducklearn::field_seed("owners", 7);
  std::vector<float> expect(16, 0.0f);
  for (const char* t : {"alice", "bob", "alice"}) {
    const auto h = ducklearn::hash_token(fseed, t, 4);
    expect[h.index] += h.sign;
  }
  for (int k = 0; k < 16; ++k) EXPECT_FLOAT_EQ(X[5 + k], expect[static_cast<size_t>(k)]);
  std::vector<int64_t> indptr;
  std::vector<int32_t> indices;
  std::vector<float> data;
  p.fill_csr(b.batch, keep.data(), indptr, indices, data);
  ASSERT_EQ(indptr.size(), 3u);
  std::vector<float> back(X.size(), 0.0f);
  for (int64_t r = 0; r < 2; ++r) {
    for (int64_t k = indptr[r]; k < indptr[r + 1]; ++k) {
      if (k > indptr[r]) {
        EXPECT_LT(indices[k - 1], indices[k]);  // sorted, unique
      }
      back[static_cast<size_t>(r * d + indices[k])] = data[k];
    }
  }
  EXPECT_EQ(back, X);
}

TEST(FeaturePlan, NormalizationAndRaw) {
  FieldSpec a = numeric("a");
  FeaturePlan p({a}, {});
  std::vector<uint8_t> st = {0, 0, 0};
  std::vector<double> v = {1.0, 5.0, 100.0};
  CellBatch b;
  b.n = 3;
  b.columns = {CellColumn{st.data(), v.data(), nullptr, nullptr}};
  const double shift = 2.0, scale = 0.5, lo = -1.0, hi = 10.0;
  p.set_normalization(&shift, &scale, &lo, &hi);
  std::vector<uint8_t> keep(3);
  p.validate(b, keep.data(), nullptr, nullptr);
  std::vector<float> X(3);
  p.fill_dense(b, keep.data(), X.data());
  EXPECT_FLOAT_EQ(X[0], -0.5f);
  EXPECT_FLOAT_EQ(X[1], 1.5f);
  EXPECT_FLOAT_EQ(X[2], 10.0f);  // clipped
  std::vector<double> raw(3);
  p.fill_raw(b, keep.data(), raw.data());
  EXPECT_EQ(raw, v);  // raw values are before normalization
}

/** Reference piecewise-linear encoding: column t = clamp((x - e_t) / (e_{t+1} - e_t), 0, 1). */
std::vector<float> ple_reference(double x, const std::vector<double>& e) {
  std::vector<float> out;
  for (size_t t = 0; t + 1 < e.size(); ++t) {
    const double v = (x - e[t]) / (e[t + 1] - e[t]);
    out.push_back(static_cast<float>(std::min(1.0, std::max(0.0, v))));
  }
  return out;
}

TEST(FeaturePlan, PiecewiseLinearBins) {
  FieldSpec a = numeric("a");
  a.log1p = true;  // edges are in transformed units
  a.bin_edges = {0.0, 1.0, 2.5, 3.0};
  a.missing_indicator = true;
  a.impute = 2.0;
  FieldSpec b = numeric("b");
  FeaturePlan p({a, b}, {});
  ASSERT_EQ(p.n_features(), 3 + 1 + 1);
  const auto& names = p.column_names();
  EXPECT_EQ(names[0], "a:bin0");
  EXPECT_EQ(names[2], "a:bin2");
  EXPECT_EQ(names[3], "a:missing");
  EXPECT_EQ(names[4], "b");
  EXPECT_EQ(p.value_column(1), 4);
  // Normalization of a binned field is ignored; b's still applies.
  const double shift[2] = {5.0, 1.0}, scale[2] = {3.0, 2.0};
  const double lo[2] = {-1.0, -100.0}, hi[2] = {1.0, 100.0};
  p.set_normalization(shift, scale, lo, hi);

  // Below, at and between edges, above the last, and a missing cell (impute 2.0).
  const std::vector<double> xs = {-0.5, 0.0, 0.4, 1.0, 1.7, 2.5, 2.9, 3.0, 9.0, 0.0};
  std::vector<double> raw_vals;
  std::vector<uint8_t> st(xs.size(), 0);
  st.back() = ducklearn::kMissing;
  for (const double t : xs) raw_vals.push_back(std::copysign(std::expm1(std::fabs(t)), t));
  std::vector<double> bv(xs.size(), 3.0);
  std::vector<uint8_t> bst(xs.size(), 0);
  CellBatch batch;
  batch.n = static_cast<int64_t>(xs.size());
  batch.columns = {CellColumn{st.data(), raw_vals.data(), nullptr, nullptr},
                   CellColumn{bst.data(), bv.data(), nullptr, nullptr}};
  std::vector<uint8_t> keep(xs.size());
  ASSERT_EQ(p.validate(batch, keep.data(), nullptr, nullptr), batch.n);
  const int64_t d = p.n_features();
  std::vector<float> X(static_cast<size_t>(batch.n * d));
  p.fill_dense(batch, keep.data(), X.data());
  for (int64_t r = 0; r < batch.n; ++r) {
    const bool missing = r == batch.n - 1;
    const auto want = ple_reference(missing ? 2.0 : xs[static_cast<size_t>(r)], a.bin_edges);
    for (size_t t = 0; t < want.size(); ++t) {
      EXPECT_NEAR(X[static_cast<size_t>(r * d) + t], want[t], 1e-6) << "row " << r << " bin " << t;
    }
    EXPECT_FLOAT_EQ(X[static_cast<size_t>(r * d + 3)], missing ? 1.0f : 0.0f);
    EXPECT_FLOAT_EQ(X[static_cast<size_t>(r * d + 4)], 4.0f);  // (3 - 1) * 2
  }
  // Spot values: at an edge the lower bins are full and the next one empty.
  EXPECT_FLOAT_EQ(X[0 * d + 0], 0.0f);
  EXPECT_FLOAT_EQ(X[3 * d + 0], 1.0f);
  EXPECT_FLOAT_EQ(X[3 * d + 1], 0.0f);
  EXPECT_NEAR(X[4 * d + 1], 0.7f / 1.5f, 1e-6);
  EXPECT_FLOAT_EQ(X[8 * d + 2], 1.0f);

  // The raw scalar stays the transformed value (NaN where missing).
  std::vector<double> raw(static_cast<size_t>(batch.n * 2));
  p.fill_raw(batch, keep.data(), raw.data());
  EXPECT_NEAR(raw[4 * 2], 1.7, 1e-12);
  EXPECT_TRUE(std::isnan(raw[static_cast<size_t>((batch.n - 1) * 2)]));
  std::vector<float> X2(X.size());
  p.fill_dense(batch, keep.data(), X2.data(), raw.data());
  EXPECT_EQ(X2, X);  // the fill that reuses raw values encodes the same

  // CSR: the same matrix, with only the non-zero entries written.
  std::vector<int64_t> indptr;
  std::vector<int32_t> indices;
  std::vector<float> data;
  p.fill_csr(batch, keep.data(), indptr, indices, data);
  std::vector<float> back(X.size(), 0.0f);
  for (int64_t r = 0; r < batch.n; ++r) {
    for (int64_t k = indptr[r]; k < indptr[r + 1]; ++k) {
      EXPECT_NE(data[k], 0.0f);
      back[static_cast<size_t>(r * d + indices[k])] = data[k];
    }
  }
  EXPECT_EQ(back, X);
  EXPECT_EQ(indptr[1] - indptr[0], 1);  // below e_0: only b's column
}

TEST(FeaturePlan, RejectsBadBinEdges) {
  auto with_edges = [](std::vector<double> e, FieldKind kind = FieldKind::Numeric) {
    FieldSpec f = numeric("x");
    f.kind = kind;
    f.bin_edges = std::move(e);
    return FeaturePlan({f}, {});
  };
  EXPECT_THROW(with_edges({1.0}), std::invalid_argument);
  EXPECT_THROW(with_edges({0.0, 1.0, 1.0}), std::invalid_argument);
  EXPECT_THROW(with_edges({2.0, 1.0}), std::invalid_argument);
  EXPECT_THROW(with_edges({0.0, std::numeric_limits<double>::infinity()}),
               std::invalid_argument);
  EXPECT_THROW(with_edges({std::nan(""), 1.0}), std::invalid_argument);
  EXPECT_THROW(with_edges({0.0, 1.0}, FieldKind::Boolean), std::invalid_argument);
  EXPECT_NO_THROW(with_edges({0.0, 1.0}));
  // A binned field cannot be crossed.
  FieldSpec a = numeric("a");
  a.bin_edges = {0.0, 1.0};
  EXPECT_THROW(FeaturePlan({a, numeric("b")}, {CrossSpec{0, 1, 0}}), std::invalid_argument);
}

TEST(FeaturePlan, TimestampCyclical) {
  FieldSpec t;
  t.name = "ts";
  t.kind = FieldKind::Timestamp;
  FeaturePlan p({t}, {});
  std::vector<uint8_t> st = {0};
  std::vector<double> v = {6.0 * 3600.0};  // Thursday 1970-01-01 06:00 UTC
  CellBatch b;
  b.reference_time = 4.0 * 86400.0;
  b.n = 1;
  b.columns = {CellColumn{st.data(), v.data(), nullptr, nullptr}};
  std::vector<uint8_t> keep(1);
  p.validate(b, keep.data(), nullptr, nullptr);
  std::vector<float> X(static_cast<size_t>(p.n_features()));
  p.fill_dense(b, keep.data(), X.data());
  EXPECT_NEAR(X[0], 1.0, 1e-6);  // sin(2*pi*6/24)
  EXPECT_NEAR(X[1], 0.0, 1e-6);
  const double a = 2.0 * 3.14159265358979323846 * (3.0 + 0.25) / 7.0;
  EXPECT_NEAR(X[2], std::sin(a), 1e-6);
  EXPECT_NEAR(X[3], std::cos(a), 1e-6);
  EXPECT_NEAR(X[4], 4.0 - 0.25, 1e-6);  // age in days
}

TEST(FeaturePlan, Tokenize) {
  std::string out;
  std::vector<size_t> ends;
  ducklearn::tokenize_text("Hello, wörld!  foo_bar42", out, ends);
  ASSERT_EQ(ends.size(), 4u);
  EXPECT_EQ(out.substr(0, ends[0]), "hello");
  EXPECT_EQ(out.substr(ends[0], ends[1] - ends[0]), "w\xc3\xb6rld");
  EXPECT_EQ(out.substr(ends[1], ends[2] - ends[1]), "foo");
  EXPECT_EQ(out.substr(ends[2], ends[3] - ends[2]), "bar42");
}

}  // namespace
