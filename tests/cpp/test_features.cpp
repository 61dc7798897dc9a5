// Feature kernels: running statistics (vs two-pass references, Chan merge), one-hot,
// MurmurHash3 against published vectors, and the hashing trick's bucket/sign properties.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "ducklearn/features/hashing.hpp"
#include "ducklearn/features/murmur3.hpp"
#include "ducklearn/features/one_hot.hpp"
#include "ducklearn/features/running_stats.hpp"
#include "test_util.hpp"

namespace {

using namespace dltest;
using ducklearn::RunningStats;

const float kNaN = std::numeric_limits<float>::quiet_NaN();

// ---------------------------------------------------------- running stats ----

// Columns with different offsets and scales, one constant column and ~10% missing cells.
std::vector<float> make_rows(int64_t n, int64_t d, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> X(static_cast<size_t>(n * d));
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < d; ++j) {
      float v = static_cast<float>(1e4 * (j % 3) + (0.5 + j) * rng.normal());
      if (j == 1) v = 3.25f;                                   // constant column
      if (j != 1 && rng.uniform(0.0f, 1.0f) < 0.1f) v = kNaN;  // missing
      X[r * d + j] = v;
    }
  }
  return X;
}

// numpy-style two-pass statistics of column j over rows [begin, end) (nan-aware).
struct TwoPass {
  double count = 0, mean = 0, var0 = 0, var1 = 0;
  float mn = std::numeric_limits<float>::infinity(), mx = -std::numeric_limits<float>::infinity();
};
TwoPass two_pass(const std::vector<float>& X, int64_t d, int64_t j, int64_t begin, int64_t end) {
  TwoPass s;
  double sum = 0.0;
  for (int64_t r = begin; r < end; ++r) {
    const float v = X[r * d + j];
    if (std::isnan(v)) continue;
    s.count += 1;
    sum += v;
    s.mn = std::min(s.mn, v);
    s.mx = std::max(s.mx, v);
  }
  s.mean = s.count > 0 ? sum / s.count : 0.0;
  double ss = 0.0;
  for (int64_t r = begin; r < end; ++r) {
    const float v = X[r * d + j];
    if (!std::isnan(v)) ss += (v - s.mean) * (v - s.mean);
  }
  s.var0 = s.count > 0 ? ss / s.count : std::nan("");
  s.var1 = s.count > 1 ? ss / (s.count - 1) : std::nan("");
  return s;
}

void expect_stats(const RunningStats& rs, const std::vector<float>& X, int64_t begin, int64_t end,
                  const char* what) {
  const int64_t d = rs.dim();
  std::vector<double> v0(d), v1(d);
  rs.variance(v0.data(), 0);
  rs.variance(v1.data(), 1);
  for (int64_t j = 0; j < d; ++j) {
    const TwoPass ref = two_pass(X, d, j, begin, end);
    EXPECT_EQ(rs.count()[j], ref.count) << what << " column " << j;
    EXPECT_TRUE(Close(rs.mean()[j], ref.mean, 1e-12, 1e-12)) << what << " column " << j;
    if (ref.count > 0) {
      EXPECT_TRUE(Close(v0[j], ref.var0, 1e-9, 1e-12)) << what << " column " << j;
    } else {
      EXPECT_TRUE(std::isnan(v0[j])) << what << " column " << j;
    }
    if (ref.count > 1) {
      EXPECT_TRUE(Close(v1[j], ref.var1, 1e-9, 1e-12)) << what << " column " << j;
    }
    EXPECT_EQ(rs.min()[j], ref.mn) << what << " column " << j;
    EXPECT_EQ(rs.max()[j], ref.mx) << what << " column " << j;
  }
}

TEST(RunningStats, MatchesTwoPassReferenceUnderEveryTarget) {
  const int64_t d = 17, n = 500;
  const auto X = make_rows(n, d, 701);
  for (Target t : supported_targets()) {
    ScopedTarget guard(t);
    RunningStats rs(d);
    rs.update(X.data(), 123);
    rs.update(X.data() + 123 * d, n - 123);
    expect_stats(rs, X, 0, n, ducklearn::simd::target_name(t));
  }
}

TEST(RunningStats, MergeEqualsTheConcatenatedStream) {
  const int64_t d = 9, n = 400;
  auto X = make_rows(n, d, 702);
  // Column 4 missing in the whole first part: merging into an empty column must copy.
  for (int64_t r = 0; r < 150; ++r) X[r * d + 4] = kNaN;
  RunningStats a(d), b(d), c(d), empty(d), whole(d);
  a.update(X.data(), 150);
  b.update(X.data() + 150 * d, 170);
  c.update(X.data() + 320 * d, n - 320);
  whole.update(X.data(), n);
  a.merge(b);
  a.merge(empty);
  a.merge(c);
  expect_stats(a, X, 0, n, "merged");
  for (int64_t j = 0; j < d; ++j) {
    EXPECT_TRUE(Close(a.mean()[j], whole.mean()[j], 1e-12, 1e-12));
    EXPECT_TRUE(Close(a.m2()[j], whole.m2()[j], 1e-9, 1e-12));
  }
  RunningStats wrong(d + 1);
  EXPECT_THROW(a.merge(wrong), std::invalid_argument);
}

TEST(RunningStats, MergeIntoEmptyCopiesTheOther) {
  const int64_t d = 4;
  const auto X = make_rows(50, d, 703);
  RunningStats a(d), b(d);
  b.update(X.data(), 50);
  a.merge(b);
  for (int64_t j = 0; j < d; ++j) {
    EXPECT_EQ(a.count()[j], b.count()[j]);
    EXPECT_EQ(a.mean()[j], b.mean()[j]);
    EXPECT_EQ(a.m2()[j], b.m2()[j]);
    EXPECT_EQ(a.min()[j], b.min()[j]);
    EXPECT_EQ(a.max()[j], b.max()[j]);
  }
}

TEST(RunningStats, StandardizeUsesPopulationStdAndUnitScaleForConstants) {
  const int64_t d = 5, n = 60;
  const auto X = make_rows(n, d, 704);
  RunningStats rs(d);
  rs.update(X.data(), n);
  std::vector<float> out(X.size());
  rs.standardize(X.data(), n, out.data());
  for (int64_t j = 0; j < d; ++j) {
    const TwoPass ref = two_pass(X, d, j, 0, n);
    const double sd = ref.var0 > 0 ? std::sqrt(ref.var0) : 1.0;
    for (int64_t r = 0; r < n; ++r) {
      const float x = X[r * d + j];
      if (std::isnan(x)) {
        EXPECT_TRUE(std::isnan(out[r * d + j]));
      } else {
        ASSERT_TRUE(Close(out[r * d + j], (x - ref.mean) / sd, 1e-5, 1e-5)) << "column " << j;
      }
    }
  }
  EXPECT_EQ(out[1], 0.0f) << "constant column: x - mean with scale 1";
}

TEST(RunningStats, FusedUpdateStandardizeEqualsRowByRow) {
  const int64_t d = 6, n = 80;
  const auto X = make_rows(n, d, 705);
  RunningStats fused(d), stepwise(d);
  std::vector<float> a(X.size()), b(X.size());
  fused.update_standardize(X.data(), n, a.data());
  for (int64_t r = 0; r < n; ++r) {
    stepwise.update(X.data() + r * d, 1);
    stepwise.standardize(X.data() + r * d, 1, b.data() + r * d);
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(b[i])) {
      ASSERT_TRUE(std::isnan(a[i]));
    } else {
      ASSERT_TRUE(Close(a[i], b[i], 1e-6, 1e-6)) << "at " << i;
    }
  }
  expect_stats(fused, X, 0, n, "fused");
}

// standardize reuses its 1/std factors per thread while a state is unchanged: every kind of
// change, and every copy, must be seen. The reference is computed here from the statistics
// (no standardize call in between, which would evict the cached factors).
TEST(RunningStats, StandardizeSeesEveryChangeAndEveryCopy) {
  const int64_t d = 4, n = 30;
  const auto X = make_rows(n, d, 707);
  std::vector<float> got(static_cast<size_t>(d));
  const float* probe = X.data() + 3 * d;
  auto check = [&](const RunningStats& rs, const char* what) {
    rs.standardize(probe, 1, got.data());
    for (int64_t j = 0; j < d; ++j) {
      const double var = rs.count()[j] > 0 ? rs.m2()[j] / rs.count()[j] : 0.0;
      const double want = (probe[j] - rs.mean()[j]) * (var > 0 ? 1.0 / std::sqrt(var) : 1.0);
      if (std::isnan(want)) {
        EXPECT_TRUE(std::isnan(got[j])) << what;
      } else {
        EXPECT_TRUE(Close(got[j], want, 1e-6, 1e-6)) << what << ", column " << j;
      }
    }
  };
  RunningStats a(d);
  a.update(X.data(), 10);
  check(a, "update");
  std::vector<float> scratch(X.size());
  a.update_standardize(X.data() + 10 * d, 5, scratch.data());
  check(a, "update_standardize");
  a.update_minmax(X.data() + 15 * d, 5, scratch.data());
  check(a, "update_minmax");
  RunningStats b(a);  // a copy, then both change differently
  a.update(X.data() + 20 * d, 5);
  b.update(X.data() + 25 * d, 5);
  check(a, "original after copy");
  check(b, "copy");
  b = a;
  check(b, "assignment");
  b.update(X.data() + 5 * d, 5);
  check(b, "assigned, then changed");
  check(a, "assigned from, unchanged");
  a.merge(b);
  check(a, "merge");
  b.load(a.count(), a.mean(), a.m2(), a.min(), a.max());
  check(b, "load");
  check(a, "loaded from");
  a.reset();
  check(a, "reset");
}

TEST(RunningStats, MinMaxScaling) {
  RunningStats rs(3);
  const std::vector<float> X = {1.0f,  5.0f, 2.0f,   // row 0
                                3.0f,  kNaN, 2.0f,   // row 1
                                -1.0f, 7.0f, 2.0f};  // row 2
  std::vector<float> out(9);
  rs.minmax(X.data(), 1, out.data());
  EXPECT_EQ(out[0], 0.0f) << "no data yet: 0";
  rs.update_minmax(X.data(), 3, out.data());
  // Each row is scaled with the range seen up to and including it.
  EXPECT_EQ(out[0], 0.0f);
  EXPECT_EQ(out[3], 1.0f);
  EXPECT_EQ(out[6], 0.0f);
  EXPECT_EQ(out[7], 1.0f);
  EXPECT_EQ(out[2], 0.0f) << "constant column (max == min) maps to 0";
  EXPECT_EQ(rs.min()[1], 5.0f) << "NaN does not touch min/max";
  EXPECT_EQ(rs.max()[1], 7.0f);
  const std::vector<float> x = {0.0f, 6.0f, 2.0f};
  rs.minmax(x.data(), 1, out.data());
  EXPECT_FLOAT_EQ(out[0], 0.25f);
  EXPECT_FLOAT_EQ(out[1], 0.5f);
  EXPECT_EQ(rs.count()[1], 2.0);
}

TEST(RunningStats, VarianceIsNaNWithTooFewValues) {
  RunningStats rs(2);
  const std::vector<float> row = {1.0f, kNaN};
  rs.update(row.data(), 1);
  std::vector<double> v(2);
  rs.variance(v.data(), 0);
  EXPECT_EQ(v[0], 0.0);
  EXPECT_TRUE(std::isnan(v[1]));
  rs.variance(v.data(), 1);
  EXPECT_TRUE(std::isnan(v[0]));
}

TEST(RunningStats, LoadResetAndValidation) {
  const int64_t d = 3;
  const auto X = make_rows(40, d, 706);
  RunningStats a(d), b(d);
  a.update(X.data(), 40);
  b.load(a.count(), a.mean(), a.m2(), a.min(), a.max());
  std::vector<float> oa(X.size()), ob(X.size());
  a.standardize(X.data(), 40, oa.data());
  b.standardize(X.data(), 40, ob.data());
  for (size_t i = 0; i < oa.size(); ++i) {
    ASSERT_TRUE(std::isnan(oa[i]) ? std::isnan(ob[i]) : oa[i] == ob[i]);
  }
  const double bad_count[d] = {-1.0, 0.0, 0.0};
  EXPECT_THROW(b.load(bad_count, a.mean(), a.m2(), a.min(), a.max()), std::invalid_argument);
  const double bad_m2[d] = {0.0, -2.0, 0.0};
  EXPECT_THROW(b.load(a.count(), a.mean(), bad_m2, a.min(), a.max()), std::invalid_argument);
  EXPECT_EQ(b.count()[0], a.count()[0]) << "a refused load keeps the old state";
  b.reset();
  EXPECT_EQ(b.count()[0], 0.0);
  EXPECT_EQ(b.min()[0], std::numeric_limits<float>::infinity());
  EXPECT_THROW(RunningStats(0), std::invalid_argument);
}

// ---------------------------------------------------------------- one-hot ----

TEST(OneHot, KnownCodesAndTheOtherBucket) {
  const std::vector<int64_t> codes = {0, 2, 1, 5, -1, 2};
  std::vector<float> out(codes.size() * 4, 9.0f);
  ducklearn::one_hot(codes.data(), 6, 4, true, out.data());
  // 3 known categories + "other" in the last column.
  const std::vector<int64_t> hot = {0, 2, 1, 3, 3, 2};
  for (size_t r = 0; r < codes.size(); ++r) {
    for (int64_t j = 0; j < 4; ++j) {
      EXPECT_EQ(out[r * 4 + j], j == hot[r] ? 1.0f : 0.0f) << "row " << r << " col " << j;
    }
  }
  std::vector<float> plain(3 * 3, 9.0f);
  ducklearn::one_hot(codes.data(), 3, 3, false, plain.data());
  EXPECT_EQ(plain, (std::vector<float>{1, 0, 0, 0, 0, 1, 0, 1, 0}));
}

TEST(OneHot, OutOfRangeWithoutOtherBucketNamesTheRow) {
  const std::vector<int64_t> codes = {0, 1, 3};
  std::vector<float> out(9);
  try {
    ducklearn::one_hot(codes.data(), 3, 3, false, out.data());
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("row 2"), std::string::npos) << what;
    EXPECT_NE(what.find("other"), std::string::npos) << "names the fix: " << what;
  }
  const int64_t neg = -1;
  EXPECT_THROW(ducklearn::one_hot(&neg, 1, 3, false, out.data()), std::invalid_argument);
  EXPECT_THROW(ducklearn::one_hot(codes.data(), 1, 0, false, out.data()), std::invalid_argument);
  EXPECT_THROW(ducklearn::one_hot(codes.data(), 1, 1, true, out.data()), std::invalid_argument)
      << "an other bucket needs at least one real category beside it";
}

// ------------------------------------------------------------------ murmur3 ----

struct Vector {
  std::string data;
  uint32_t seed, hash;
};

// Published MurmurHash3_x86_32 vectors, each cross-checked with the `mmh3` package
// (mmh3.hash(data, seed, signed=False), mmh3 5.3.1); the last rows cover 1-3 byte tails
// and bytes >= 0x80 (a signed-char tail load would change them).
const std::vector<Vector> kMurmur = {
    {"", 0u, 0u},
    {"", 1u, 0x514E28B7u},
    {"", 0xffffffffu, 0x81F16F39u},
    {std::string("\0\0\0\0", 4), 0u, 0x2362F9DEu},
    {"aaaa", 0x9747b28cu, 0x5A97808Au},
    {"Hello, world!", 1234u, 0xFAF6CDB3u},
    {"The quick brown fox jumps over the lazy dog", 0x9747b28cu, 0x2FA826CDu},
    {"a", 0x9747b28cu, 0x7FA09EA6u},
    {"aa", 0x9747b28cu, 0x5D211726u},
    {"aaa", 0x9747b28cu, 0x283E0130u},
    {"abc", 0u, 0xB3DD93FAu},
    {"abcd", 0u, 0x43ED676Au},
    {"Hello, world!", 0u, 0xC0363E43u},
    {"\xff\xfe\xfd", 7u, 0xA2F1E08Eu},
};

TEST(Murmur3, PublishedTestVectors) {
  for (const Vector& v : kMurmur) {
    EXPECT_EQ(ducklearn::murmur3_32(v.data.data(), v.data.size(), v.seed), v.hash)
        << "\"" << v.data << "\" seed " << v.seed;
  }
}

TEST(Murmur3, ReadsOnlyTheGivenBytesAtAnyAlignment) {
  const std::string s = "The quick brown fox jumps over the lazy dog";
  std::vector<char> buf(s.size() + 8, 'X');
  for (size_t off = 0; off < 4; ++off) {
    std::memcpy(buf.data() + off, s.data(), s.size());
    EXPECT_EQ(ducklearn::murmur3_32(buf.data() + off, s.size(), 0x9747b28cu), 0x2FA826CDu)
        << "offset " << off;
  }
}

// ------------------------------------------------------------------ hashing ----

TEST(Hashing, BucketIsTheLowBitsAndSignIsBit31) {
  const uint32_t fseed = ducklearn::field_seed("city", 42);
  EXPECT_EQ(fseed, ducklearn::murmur3_32("city", 4, 42));
  for (int bits : {1, 4, 18, 31}) {
    for (const char* tok : {"paris", "tokyo", "", "a much longer token with spaces"}) {
      const uint32_t h = ducklearn::murmur3_32(tok, std::strlen(tok), fseed);
      const auto f = ducklearn::hash_token(fseed, tok, bits);
      EXPECT_EQ(f.index, h & ((1u << bits) - 1u)) << tok << " bits " << bits;
      EXPECT_LT(f.index, 1u << bits);
      EXPECT_EQ(f.sign, (h >> 31) ? -1.0f : 1.0f);
    }
  }
}

TEST(Hashing, BucketsAreUniformAndSignsBalanced) {
  const uint32_t fseed = ducklearn::field_seed("user_id");
  const int bits = 4, buckets = 16, n = 16000;
  std::vector<int> counts(buckets, 0);
  int plus = 0;
  for (int i = 0; i < n; ++i) {
    const auto f = ducklearn::hash_token(fseed, "user-" + std::to_string(i), bits);
    ++counts[f.index];
    plus += f.sign > 0.0f;
  }
  double chi2 = 0.0;
  const double expect = double(n) / buckets;
  for (int c : counts) chi2 += (c - expect) * (c - expect) / expect;
  EXPECT_LT(chi2, 37.7) << "chi-square with 15 dof above its 0.999 quantile";
  EXPECT_NEAR(plus, n / 2, 4 * std::sqrt(n / 4.0)) << "signs within 4 sigma of balanced";
}

TEST(Hashing, FieldsSeparateEqualTokens) {
  const uint32_t a = ducklearn::field_seed("country"), b = ducklearn::field_seed("language");
  ASSERT_NE(a, b);
  int same = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::string tok = "v" + std::to_string(i);
    same += ducklearn::hash_token(a, tok, 20).index == ducklearn::hash_token(b, tok, 20).index;
  }
  EXPECT_LE(same, 2) << "with 2^20 buckets, equal tokens of two fields almost never collide";
}

TEST(Hashing, BatchEqualsOneByOne) {
  const std::vector<std::string> toks = {"red", "", "green", "blue", "a\xff", "red"};
  std::string bytes;
  std::vector<int64_t> offsets = {0};
  for (const auto& t : toks) {
    bytes += t;
    offsets.push_back(static_cast<int64_t>(bytes.size()));
  }
  const uint32_t fseed = ducklearn::field_seed("colour", 3);
  std::vector<uint32_t> idx(toks.size());
  std::vector<float> sign(toks.size());
  ducklearn::hash_tokens(fseed, bytes.data(), offsets.data(), 6, 12, idx.data(), sign.data());
  for (size_t i = 0; i < toks.size(); ++i) {
    const auto f = ducklearn::hash_token(fseed, toks[i], 12);
    EXPECT_EQ(idx[i], f.index) << toks[i];
    EXPECT_EQ(sign[i], f.sign) << toks[i];
  }
  EXPECT_EQ(idx[0], idx[5]);
}

TEST(Hashing, RejectsBadBitsAndOffsets) {
  for (int bits : {0, -1, 32}) {
    EXPECT_THROW(ducklearn::validate_hash_bits(bits), std::invalid_argument) << bits;
  }
  EXPECT_NO_THROW(ducklearn::validate_hash_bits(1));
  EXPECT_NO_THROW(ducklearn::validate_hash_bits(31));
  const std::string bytes = "abcdef";
  const std::vector<int64_t> offsets = {0, 4, 2};  // second token would have length -2
  std::vector<uint32_t> idx(2);
  std::vector<float> sign(2);
  EXPECT_THROW(
      ducklearn::hash_tokens(0, bytes.data(), offsets.data(), 2, 8, idx.data(), sign.data()),
      std::invalid_argument);
  EXPECT_THROW(
      ducklearn::hash_tokens(0, bytes.data(), offsets.data(), 1, 32, idx.data(), sign.data()),
      std::invalid_argument);
}

}  // namespace
