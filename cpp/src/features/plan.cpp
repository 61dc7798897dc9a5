#include "ducklearn/features/plan.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <unordered_set>
#include <utility>

#include "ducklearn/error.hpp"
#include "ducklearn/features/murmur3.hpp"

namespace ducklearn {

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int kMaxHashBits = 24;  // 16M columns: beyond that a dense block is never sensible
constexpr uint32_t kVocabSeed = 0x9e3779b9u;

bool is_numeric_like(const FieldSpec& f) {
  return f.kind == FieldKind::Numeric || f.kind == FieldKind::Boolean ||
         (f.kind == FieldKind::Timestamp && f.age);
}

/**
 * Piecewise-linear encoding of x over edges e_0 < ... < e_T: emits column t (offset from
 * base) = clamp((x - e_t) / (e_{t+1} - e_t), 0, 1), leaving out the zeros (every bin above
 * the one holding x), so dense rows, zeroed first, and CSR rows agree.
 */
template <class Emit>
inline void emit_bins(const std::vector<double>& e, double x, int64_t base, Emit& emit) {
  const size_t t_end = e.size() - 1;
  for (size_t t = 0; t < t_end; ++t) {
    if (!(x > e[t])) break;  // this and every later bin is 0
    const double v = x >= e[t + 1] ? 1.0 : (x - e[t]) / (e[t + 1] - e[t]);
    emit(base + static_cast<int64_t>(t), static_cast<float>(v));
  }
}

bool is_hashed(const FieldSpec& f) {
  return f.kind == FieldKind::Tokens || f.kind == FieldKind::Text ||
         (f.kind == FieldKind::Categorical && f.hash_bits > 0);
}

inline bool is_alnum_ascii(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/**
 * Length of the token character at text[i] (1 for ASCII letters/digits, the UTF-8 sequence
 * length for a word character beyond ASCII), or 0 for a separator. Beyond ASCII, letters of
 * every script count as word characters; the punctuation and space blocks common in
 * code-review text (Latin-1 punctuation and NBSP U+0080-U+00BF, general punctuation
 * U+2000-U+206F such as dashes and curly quotes, CJK punctuation U+3000-U+303F, the BOM)
 * and malformed bytes separate tokens. No Unicode tables are needed.
 */
size_t word_char(std::string_view text, size_t i) {
  const auto b0 = static_cast<unsigned char>(text[i]);
  if (b0 < 0x80) return is_alnum_ascii(b0) ? 1 : 0;
  size_t len;
  uint32_t cp;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2;
    cp = b0 & 0x1Fu;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3;
    cp = b0 & 0x0Fu;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4;
    cp = b0 & 0x07u;
  } else {
    return 0;  // a stray continuation byte or an invalid lead byte
  }
  if (i + len > text.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(text[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3Fu);
  }
  if ((cp >= 0x80 && cp <= 0xBF) || (cp >= 0x2000 && cp <= 0x206F) ||
      (cp >= 0x3000 && cp <= 0x303F) || cp == 0xFEFF) {
    return 0;
  }
  return len;
}

/** Bytes to skip over a separator at text[i]: a whole well-formed UTF-8 sequence, else 1. */
size_t separator_len(std::string_view text, size_t i) {
  const auto b0 = static_cast<unsigned char>(text[i]);
  size_t len = b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : b0 >= 0xC0 ? 2 : 1;
  if (i + len > text.size()) return 1;
  for (size_t k = 1; k < len; ++k) {
    if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) return 1;
  }
  return len;
}

}  // namespace

void tokenize_text(std::string_view text, std::string& out, std::vector<size_t>& ends) {
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    size_t w = word_char(text, i);
    if (w == 0) {
      i += separator_len(text, i);
      continue;
    }
    while (i < n && (w = word_char(text, i)) != 0) {
      for (size_t k = 0; k < w; ++k) {
        char c = text[i + k];
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        out.push_back(c);
      }
      i += w;
    }
    ends.push_back(out.size());
  }
}

/** Per-call scratch space, so rows are filled without allocating. */
struct FeaturePlan::Impl {
  explicit Impl(size_t n_fields) : numval(n_fields, 0.0), cathash(n_fields, 0),
                                   catpresent(n_fields, 0) {}
  std::vector<double> numval;     // per field: normalized value (numeric-like fields)
  std::vector<uint32_t> cathash;  // per field: identity hash of the categorical level
  std::vector<uint8_t> catpresent;
  std::string text;               // tokenized text, back to back
  std::vector<size_t> ends;       // token ends in text
  std::vector<std::string_view> tokens;
  std::string gram;
  std::vector<std::pair<uint32_t, float>> entries;  // (column, value) for one block or row
  std::vector<std::pair<uint32_t, float>> hashed;   // (token hash, sign) for weighting
};

FeaturePlan::~FeaturePlan() = default;
FeaturePlan::FeaturePlan(const FeaturePlan&) = default;

FeaturePlan::FeaturePlan(std::vector<FieldSpec> fields, std::vector<CrossSpec> crosses,
                         uint32_t seed)
    : fields_(std::move(fields)), crosses_(std::move(crosses)), seed_(seed) {
  DUCKLEARN_CHECK_ARG(!fields_.empty(), "a feature plan needs at least one field");
  std::unordered_set<std::string> seen;
  const auto nf = fields_.size();
  value_col_.assign(nf, -1);
  indicator_col_.assign(nf, -1);
  field_seeds_.resize(nf);
  vocab_tables_.resize(nf);
  int64_t col = 0;
  for (size_t i = 0; i < nf; ++i) {
    FieldSpec& f = fields_[i];
    DUCKLEARN_CHECK_ARG(!f.name.empty(), "field " + std::to_string(i) + " has an empty name");
    DUCKLEARN_CHECK_ARG(seen.insert(f.name).second,
                        "field name '" + f.name + "' appears twice; names must be unique");
    const std::string where = "field '" + f.name + "': ";
    field_seeds_[i] = murmur3_32(f.name.data(), f.name.size(), seed_);
    if (f.has_range) {
      DUCKLEARN_CHECK_ARG(f.range_lo <= f.range_hi,
                          where + "valid range lower bound exceeds the upper bound");
    }
    if (f.has_clip) {
      DUCKLEARN_CHECK_ARG(f.clip_lo <= f.clip_hi, where + "clip lower bound exceeds the upper");
    }
    if (!f.bin_edges.empty()) {
      DUCKLEARN_CHECK_ARG(f.kind == FieldKind::Numeric,
                          where + "bin edges apply to numeric fields only");
      DUCKLEARN_CHECK_ARG(f.bin_edges.size() >= 2,
                          where + "bin edges need at least 2 values (one bin), got " +
                              std::to_string(f.bin_edges.size()));
      for (size_t k = 0; k < f.bin_edges.size(); ++k) {
        DUCKLEARN_CHECK_ARG(std::isfinite(f.bin_edges[k]),
                            where + "bin edge " + std::to_string(k) + " is not finite");
        DUCKLEARN_CHECK_ARG(k == 0 || f.bin_edges[k] > f.bin_edges[k - 1],
                            where + "bin edges must be strictly increasing (edge " +
                                std::to_string(k) + " is not above edge " +
                                std::to_string(k - 1) + ")");
      }
    }
    if (is_hashed(f)) {
      DUCKLEARN_CHECK_ARG(f.hash_bits >= 1 && f.hash_bits <= kMaxHashBits,
                          where + "hash_bits must be in [1, 24], got " +
                              std::to_string(f.hash_bits));
    }
    if (f.kind == FieldKind::Tokens || f.kind == FieldKind::Text) {
      DUCKLEARN_CHECK_ARG(f.ngram_max >= 1 && f.ngram_max <= 8,
                          where + "ngram_max must be in [1, 8], got " +
                              std::to_string(f.ngram_max));
    }
    if (f.kind == FieldKind::Timestamp) {
      DUCKLEARN_CHECK_ARG(f.age_unit > 0.0 && std::isfinite(f.age_unit),
                          where + "age unit must be a positive number of seconds");
      DUCKLEARN_CHECK_ARG(f.hour_of_day || f.day_of_week || f.age || f.missing_indicator,
                          where + "a timestamp needs at least one of hour_of_day, "
                                  "day_of_week, age or a missing indicator");
    }
    value_col_[i] = col;
    switch (f.kind) {
      case FieldKind::Numeric:
      case FieldKind::Boolean:
        if (!f.bin_edges.empty()) {
          const auto n_bins = static_cast<int64_t>(f.bin_edges.size()) - 1;
          for (int64_t k = 0; k < n_bins; ++k) {
            names_.push_back(f.name + ":bin" + std::to_string(k));
          }
          col += n_bins;
        } else {
          names_.push_back(f.name);
          col += 1;
        }
        break;
      case FieldKind::Categorical:
        if (f.hash_bits > 0) {
          for (int64_t k = 0; k < (int64_t{1} << f.hash_bits); ++k) {
            names_.push_back(f.name + "#" + std::to_string(k));
          }
          col += int64_t{1} << f.hash_bits;
        } else {
          DUCKLEARN_CHECK_ARG(!f.vocabulary.empty() || f.other_bucket,
                              where + "a categorical needs a vocabulary, hash_bits or an "
                                      "'other' bucket");
          // Open addressing at load <= 1/2 keeps probes short.
          uint32_t cap = 2;
          while (cap < 2 * f.vocabulary.size()) cap <<= 1;
          VocabTable& t = vocab_tables_[i];
          t.slots.assign(cap, -1);
          t.mask = cap - 1;
          for (size_t v = 0; v < f.vocabulary.size(); ++v) {
            const std::string& level = f.vocabulary[v];
            DUCKLEARN_CHECK_ARG(lookup(static_cast<int64_t>(i), level) < 0,
                                where + "level '" + level + "' appears twice in the vocabulary");
            uint32_t h = murmur3_32(level.data(), level.size(), kVocabSeed) & t.mask;
            while (t.slots[h] >= 0) h = (h + 1) & t.mask;
            t.slots[h] = static_cast<int32_t>(v);
            names_.push_back(f.name + "=" + level);
          }
          col += static_cast<int64_t>(f.vocabulary.size());
          if (f.other_bucket) {
            names_.push_back(f.name + "=__other__");
            col += 1;
          }
        }
        break;
      case FieldKind::Tokens:
      case FieldKind::Text:
        for (int64_t k = 0; k < (int64_t{1} << f.hash_bits); ++k) {
          names_.push_back(f.name + "#" + std::to_string(k));
        }
        col += int64_t{1} << f.hash_bits;
        break;
      case FieldKind::Timestamp:
        if (f.hour_of_day) {
          names_.push_back(f.name + ":hour_sin");
          names_.push_back(f.name + ":hour_cos");
          col += 2;
        }
        if (f.day_of_week) {
          names_.push_back(f.name + ":dow_sin");
          names_.push_back(f.name + ":dow_cos");
          col += 2;
        }
        if (f.age) {
          names_.push_back(f.name + ":age");
          col += 1;
        }
        break;
    }
    if (f.missing_indicator) {
      indicator_col_[i] = col;
      names_.push_back(f.name + ":missing");
      col += 1;
    }
  }
  cross_col_.resize(crosses_.size());
  cross_seeds_.resize(crosses_.size());
  for (size_t c = 0; c < crosses_.size(); ++c) {
    CrossSpec& x = crosses_[c];
    DUCKLEARN_CHECK_ARG(x.a >= 0 && x.b >= 0 && x.a < static_cast<int32_t>(nf) &&
                            x.b < static_cast<int32_t>(nf) && x.a != x.b,
                        "cross " + std::to_string(c) + " must name two different fields");
    const FieldSpec& fa = fields_[x.a];
    const FieldSpec& fb = fields_[x.b];
    const std::string cname = fa.name + "*" + fb.name;
    // A binned field has no single normalized value to weight a cross with.
    DUCKLEARN_CHECK_ARG(fa.bin_edges.empty() && fb.bin_edges.empty(),
                        "cross '" + cname + "': a field with bin edges cannot be crossed");
    const bool ca = fa.kind == FieldKind::Categorical, cb = fb.kind == FieldKind::Categorical;
    DUCKLEARN_CHECK_ARG((ca || is_numeric_like(fa)) && (cb || is_numeric_like(fb)),
                        "cross '" + cname + "': only categorical, numeric, boolean and "
                        "timestamp-age fields can be crossed");
    if (!ca && cb) std::swap(x.a, x.b);  // categorical side first, so one code path serves
    cross_seeds_[c] = murmur3_32(cname.data(), cname.size(), seed_);
    cross_col_[c] = col;
    if (ca || cb) {
      DUCKLEARN_CHECK_ARG(x.hash_bits >= 1 && x.hash_bits <= kMaxHashBits,
                          "cross '" + cname + "': hash_bits must be in [1, 24]");
      for (int64_t k = 0; k < (int64_t{1} << x.hash_bits); ++k) {
        names_.push_back(cname + "#" + std::to_string(k));
      }
      col += int64_t{1} << x.hash_bits;
    } else {
      names_.push_back(cname);
      col += 1;
    }
  }
  n_features_ = col;
  auto a = std::make_shared<Affine>();
  a->shift.assign(nf, 0.0);
  a->scale.assign(nf, 1.0);
  a->lo.assign(nf, -std::numeric_limits<double>::infinity());
  a->hi.assign(nf, std::numeric_limits<double>::infinity());
  a->impute.resize(nf);
  for (size_t i = 0; i < nf; ++i) a->impute[i] = fields_[i].impute;
  affine_ = std::move(a);
}

int64_t FeaturePlan::value_column(int64_t field) const {
  DUCKLEARN_CHECK_ARG(field >= 0 && field < n_fields(), "field index out of range");
  return value_col_[static_cast<size_t>(field)];
}

std::shared_ptr<const FeaturePlan::Affine> FeaturePlan::affine() const {
  return std::atomic_load(&affine_);
}

void FeaturePlan::publish(std::shared_ptr<const Affine> a) { std::atomic_store(&affine_, a); }

void FeaturePlan::set_normalization(const double* shift, const double* scale, const double* lo,
                                    const double* hi) {
  set_normalization(shift, scale, lo, hi, nullptr);
}

void FeaturePlan::set_normalization(const double* shift, const double* scale, const double* lo,
                                    const double* hi, const double* impute) {
  const auto nf = fields_.size();
  for (size_t i = 0; i < nf; ++i) {
    DUCKLEARN_CHECK_ARG(std::isfinite(shift[i]) && std::isfinite(scale[i]),
                        "normalization of field '" + fields_[i].name +
                            "' must have a finite shift and scale");
    DUCKLEARN_CHECK_ARG(!(lo[i] > hi[i]), "normalization clip range of field '" +
                                              fields_[i].name + "' is reversed");
    DUCKLEARN_CHECK_ARG(impute == nullptr || std::isfinite(impute[i]),
                        "impute value of field '" + fields_[i].name + "' must be finite");
  }
  auto a = std::make_shared<Affine>(*affine());
  a->shift.assign(shift, shift + nf);
  a->scale.assign(scale, scale + nf);
  a->lo.assign(lo, lo + nf);
  a->hi.assign(hi, hi + nf);
  if (impute != nullptr) a->impute.assign(impute, impute + nf);
  publish(std::move(a));
}

void FeaturePlan::set_impute(const double* values) {
  for (size_t i = 0; i < fields_.size(); ++i) {
    DUCKLEARN_CHECK_ARG(std::isfinite(values[i]),
                        "impute value of field '" + fields_[i].name + "' must be finite");
  }
  auto a = std::make_shared<Affine>(*affine());
  a->impute.assign(values, values + fields_.size());
  publish(std::move(a));
}

int32_t FeaturePlan::lookup(int64_t field, std::string_view s) const {
  const VocabTable& t = vocab_tables_[static_cast<size_t>(field)];
  if (t.slots.empty()) return -1;
  const auto& vocab = fields_[static_cast<size_t>(field)].vocabulary;
  uint32_t h = murmur3_32(s.data(), s.size(), kVocabSeed) & t.mask;
  while (true) {
    const int32_t v = t.slots[h];
    if (v < 0) return -1;
    if (vocab[static_cast<size_t>(v)] == s) return v;
    h = (h + 1) & t.mask;
  }
}

double FeaturePlan::raw_numeric(const FieldSpec& f, double v) const {
  if (f.log1p) v = std::copysign(std::log1p(std::fabs(v)), v);
  if (f.has_clip) v = std::min(std::max(v, f.clip_lo), f.clip_hi);
  return v;
}

int64_t FeaturePlan::validate(const CellBatch& batch, uint8_t* keep, std::vector<Issue>* issues,
                              FieldCounts* counts) const {
  const auto nf = fields_.size();
  DUCKLEARN_CHECK_ARG(batch.columns.size() == nf,
                      "batch has " + std::to_string(batch.columns.size()) +
                          " columns but the plan has " + std::to_string(nf) + " fields");
  if (counts != nullptr) {
    for (auto* v : {&counts->present, &counts->missing, &counts->wrong_type,
                    &counts->not_finite, &counts->out_of_range, &counts->missing_required,
                    &counts->unknown_category, &counts->other_level}) {
      v->assign(nf, 0);
    }
  }
  int64_t kept = 0;
  for (int64_t r = 0; r < batch.n; ++r) {
    const uint8_t pre = batch.row_rejected == nullptr ? 0 : batch.row_rejected[r];
    if (pre == 2) {
      keep[r] = 0;
      continue;
    }
    bool ok = pre == 0;
    for (size_t i = 0; i < nf; ++i) {
      const FieldSpec& f = fields_[i];
      const CellColumn& c = batch.columns[i];
      uint8_t code = 0;
      double value = kNaN;
      const uint8_t st = c.status[r];
      if (st == kWrongType) {
        code = kIssueWrongType;
      } else if (st == kMissing) {
        if (f.required) code = kIssueMissingRequired;
        if (counts != nullptr) counts->missing[i] += 1;
      } else {
        if (counts != nullptr) counts->present[i] += 1;
        if (f.kind == FieldKind::Numeric || f.kind == FieldKind::Timestamp) {
          const double v = c.values[r];
          if (!std::isfinite(v)) {
            code = kIssueNotFinite;
            value = v;
          } else if (f.has_range && (v < f.range_lo || v > f.range_hi)) {
            code = kIssueOutOfRange;
            value = v;
          }
        } else if (f.kind == FieldKind::Categorical && f.hash_bits == 0) {
          if (lookup(static_cast<int64_t>(i), c.strings[r]) < 0) {
            if (f.other_bucket) {
              if (counts != nullptr) counts->other_level[i] += 1;
            } else {
              code = kIssueUnknownCategory;
            }
          }
        }
      }
      if (code == 0) continue;
      ok = false;
      if (counts != nullptr) {
        switch (code) {
          case kIssueWrongType: counts->wrong_type[i] += 1; break;
          case kIssueMissingRequired: counts->missing_required[i] += 1; break;
          case kIssueNotFinite: counts->not_finite[i] += 1; break;
          case kIssueOutOfRange: counts->out_of_range[i] += 1; break;
          case kIssueUnknownCategory: counts->unknown_category[i] += 1; break;
          default: break;
        }
      }
      if (issues != nullptr) issues->push_back(Issue{r, static_cast<int32_t>(i), code, value});
    }
    keep[r] = ok ? 1 : 0;
    kept += ok ? 1 : 0;
  }
  return kept;
}

template <class Emit>
void FeaturePlan::emit_row(const CellBatch& batch, int64_t r, const double* raw_row,
                           const Affine& a, Impl& s, Emit&& emit) const {
  const auto nf = fields_.size();
  for (size_t i = 0; i < nf; ++i) {
    const FieldSpec& f = fields_[i];
    const CellColumn& c = batch.columns[i];
    const bool missing = c.status[r] != kPresent;
    const int64_t base = value_col_[i];
    switch (f.kind) {
      case FieldKind::Numeric:
      case FieldKind::Boolean: {
        double x = missing ? a.impute[i]
                   : raw_row != nullptr ? raw_row[i]
                   : (f.kind == FieldKind::Numeric ? raw_numeric(f, c.values[r]) : c.values[r]);
        if (!f.bin_edges.empty()) {
          emit_bins(f.bin_edges, x, base, emit);
          break;
        }
        x = std::min(std::max((x - a.shift[i]) * a.scale[i], a.lo[i]), a.hi[i]);
        s.numval[i] = x;
        emit(base, static_cast<float>(x));
        break;
      }
      case FieldKind::Categorical: {
        s.catpresent[i] = !missing;
        if (missing) break;
        const std::string_view v = c.strings[r];
        const uint32_t h = murmur3_32(v.data(), v.size(), field_seeds_[i]);
        s.cathash[i] = h;
        if (f.hash_bits > 0) {
          emit(base + (h & ((1u << f.hash_bits) - 1u)), 1.0f);
        } else {
          const int32_t code = lookup(static_cast<int64_t>(i), v);
          // validate() rejected unknown levels when there is no other bucket.
          emit(base + (code >= 0 ? code : static_cast<int64_t>(f.vocabulary.size())), 1.0f);
        }
        break;
      }
      case FieldKind::Tokens:
      case FieldKind::Text: {
        if (missing) break;
        s.tokens.clear();
        if (f.kind == FieldKind::Text) {
          s.text.clear();
          s.ends.clear();
          tokenize_text(c.strings[r], s.text, s.ends);
          size_t start = 0;
          for (const size_t e : s.ends) {
            s.tokens.emplace_back(s.text.data() + start, e - start);
            start = e;
          }
        } else {
          for (int64_t k = c.offsets[r]; k < c.offsets[r + 1]; ++k) s.tokens.push_back(c.strings[k]);
        }
        const uint32_t mask = (1u << f.hash_bits) - 1u;
        const bool fast = f.weighting == TokenWeight::Count && !f.l2_normalize;
        s.hashed.clear();
        const size_t nt = s.tokens.size();
        for (int n = 1; n <= f.ngram_max; ++n) {
          if (static_cast<size_t>(n) > nt) break;
          for (size_t t = 0; t + n <= nt; ++t) {
            uint32_t h;
            if (n == 1) {
              h = murmur3_32(s.tokens[t].data(), s.tokens[t].size(), field_seeds_[i]);
            } else {
              // n-grams hash their tokens joined by a space, so "a b" as a bigram and a
              // single token "a b" of a Tokens field land in the same bucket on purpose.
              s.gram.assign(s.tokens[t].data(), s.tokens[t].size());
              for (int k = 1; k < n; ++k) {
                s.gram.push_back(' ');
                s.gram.append(s.tokens[t + k].data(), s.tokens[t + k].size());
              }
              h = murmur3_32(s.gram.data(), s.gram.size(), field_seeds_[i]);
            }
            const float sign = (f.signed_hash && (h >> 31)) ? -1.0f : 1.0f;
            if (fast) {
              emit(base + (h & mask), sign);
            } else {
              s.hashed.emplace_back(h, sign);
            }
          }
        }
        if (fast) break;
        // Distinct tokens (by full 32-bit hash) get their weight before they share buckets.
        std::sort(s.hashed.begin(), s.hashed.end(),
                  [](const auto& a, const auto& b) { return a.first < b.first; });
        s.entries.clear();
        for (size_t k = 0; k < s.hashed.size();) {
          size_t e = k;
          while (e < s.hashed.size() && s.hashed[e].first == s.hashed[k].first) ++e;
          const double tf = static_cast<double>(e - k);
          const double w = f.weighting == TokenWeight::Count    ? tf
                           : f.weighting == TokenWeight::Binary ? 1.0
                                                                : std::log1p(tf);
          s.entries.emplace_back(s.hashed[k].first & mask,
                                 static_cast<float>(w) * s.hashed[k].second);
          k = e;
        }
        std::sort(s.entries.begin(), s.entries.end(),
                  [](const auto& a, const auto& b) { return a.first < b.first; });
        size_t out = 0;
        for (size_t k = 0; k < s.entries.size(); ++k) {
          if (out > 0 && s.entries[out - 1].first == s.entries[k].first) {
            s.entries[out - 1].second += s.entries[k].second;
          } else {
            s.entries[out++] = s.entries[k];
          }
        }
        s.entries.resize(out);
        double scale = 1.0;
        if (f.l2_normalize) {
          double ss = 0.0;
          for (const auto& e : s.entries) ss += static_cast<double>(e.second) * e.second;
          scale = ss > 0.0 ? 1.0 / std::sqrt(ss) : 1.0;
        }
        for (const auto& e : s.entries) {
          emit(base + e.first, static_cast<float>(e.second * scale));
        }
        break;
      }
      case FieldKind::Timestamp: {
        int64_t col = base;
        const double t = missing ? 0.0 : c.values[r];
        if (f.hour_of_day) {
          if (!missing) {
            // Seconds into the UTC day; floor-mod so times before 1970 work too.
            const double sec = t - 86400.0 * std::floor(t / 86400.0);
            const double a = 2.0 * kPi * sec / 86400.0;
            emit(col, static_cast<float>(std::sin(a)));
            emit(col + 1, static_cast<float>(std::cos(a)));
          }
          col += 2;
        }
        if (f.day_of_week) {
          if (!missing) {
            // 1970-01-01 was a Thursday: +3 days puts Monday 00:00 at angle 0.
            const double week = 7.0 * 86400.0;
            const double u = t + 3.0 * 86400.0;
            const double a = 2.0 * kPi * (u - week * std::floor(u / week)) / week;
            emit(col, static_cast<float>(std::sin(a)));
            emit(col + 1, static_cast<float>(std::cos(a)));
          }
          col += 2;
        }
        if (f.age) {
          double x = missing              ? a.impute[i]
                     : raw_row != nullptr ? raw_row[i]
                                          : (batch.reference_time - t) / f.age_unit;
          x = std::min(std::max((x - a.shift[i]) * a.scale[i], a.lo[i]), a.hi[i]);
          s.numval[i] = x;
          emit(col, static_cast<float>(x));
        }
        break;
      }
    }
    if (f.missing_indicator && missing) emit(indicator_col_[i], 1.0f);
  }
  for (size_t k = 0; k < crosses_.size(); ++k) {
    const CrossSpec& x = crosses_[k];
    const FieldSpec& fa = fields_[x.a];
    const FieldSpec& fb = fields_[x.b];
    const int64_t base = cross_col_[k];
    if (fa.kind != FieldKind::Categorical) {  // numeric x numeric
      emit(base, static_cast<float>(s.numval[x.a] * s.numval[x.b]));
      continue;
    }
    if (!s.catpresent[x.a]) continue;
    const uint32_t mask = (1u << x.hash_bits) - 1u;
    if (fb.kind == FieldKind::Categorical) {
      if (!s.catpresent[x.b]) continue;
      const uint32_t pair[2] = {s.cathash[x.a], s.cathash[x.b]};
      const uint32_t h = murmur3_32(pair, sizeof(pair), cross_seeds_[k]);
      emit(base + (h & mask), 1.0f);
    } else {
      const uint32_t h = murmur3_32(&s.cathash[x.a], sizeof(uint32_t), cross_seeds_[k]);
      emit(base + (h & mask), static_cast<float>(s.numval[x.b]));
    }
  }
}

void FeaturePlan::fill_dense(const CellBatch& batch, const uint8_t* keep, float* out,
                             const double* raw) const {
  const auto a = affine();  // one snapshot for the whole batch
  Impl s(fields_.size());
  const int64_t d = n_features_;
  int64_t o = 0;
  for (int64_t r = 0; r < batch.n; ++r) {
    if (keep != nullptr && keep[r] == 0) continue;
    float* row = out + o * d;
    std::memset(row, 0, static_cast<size_t>(d) * sizeof(float));
    const double* raw_row = raw == nullptr ? nullptr : raw + o * n_fields();
    emit_row(batch, r, raw_row, *a, s, [row](int64_t col, float v) { row[col] += v; });
    ++o;
  }
}

void FeaturePlan::fill_csr(const CellBatch& batch, const uint8_t* keep,
                           std::vector<int64_t>& indptr, std::vector<int32_t>& indices,
                           std::vector<float>& data, const double* raw) const {
  DUCKLEARN_CHECK_ARG(n_features_ <= std::numeric_limits<int32_t>::max(),
                      "too many columns for int32 CSR indices");
  const auto a = affine();  // one snapshot for the whole batch
  Impl s(fields_.size());
  indptr.clear();
  indices.clear();
  data.clear();
  indptr.push_back(0);
  std::vector<std::pair<uint32_t, float>> acc;  // (column, value) of one row
  for (int64_t r = 0; r < batch.n; ++r) {
    if (keep != nullptr && keep[r] == 0) continue;
    acc.clear();
    const double* raw_row =
        raw == nullptr ? nullptr : raw + static_cast<int64_t>(indptr.size() - 1) * n_fields();
    emit_row(batch, r, raw_row, *a, s, [&acc](int64_t col, float v) {
      acc.emplace_back(static_cast<uint32_t>(col), v);
    });
    std::sort(acc.begin(), acc.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (size_t k = 0; k < acc.size();) {
      size_t e = k;
      float sum = 0.0f;
      while (e < acc.size() && acc[e].first == acc[k].first) sum += acc[e++].second;
      if (sum != 0.0f) {
        indices.push_back(static_cast<int32_t>(acc[k].first));
        data.push_back(sum);
      }
      k = e;
    }
    indptr.push_back(static_cast<int64_t>(indices.size()));
  }
}

void FeaturePlan::fill_raw(const CellBatch& batch, const uint8_t* keep, double* out) const {
  const auto nf = fields_.size();
  std::string text;
  std::vector<size_t> ends;
  int64_t o = 0;
  for (int64_t r = 0; r < batch.n; ++r) {
    if (keep != nullptr && keep[r] == 0) continue;
    double* row = out + o * static_cast<int64_t>(nf);
    for (size_t i = 0; i < nf; ++i) {
      const FieldSpec& f = fields_[i];
      const CellColumn& c = batch.columns[i];
      if (c.status[r] != kPresent) {
        row[i] = kNaN;
        continue;
      }
      switch (f.kind) {
        case FieldKind::Numeric: row[i] = raw_numeric(f, c.values[r]); break;
        case FieldKind::Boolean: row[i] = c.values[r]; break;
        case FieldKind::Categorical:
          if (f.hash_bits > 0) {
            const std::string_view v = c.strings[r];
            row[i] = static_cast<double>(murmur3_32(v.data(), v.size(), field_seeds_[i]) &
                                         ((1u << f.hash_bits) - 1u));
          } else {
            row[i] = static_cast<double>(lookup(static_cast<int64_t>(i), c.strings[r]));
          }
          break;
        case FieldKind::Tokens:
          row[i] = static_cast<double>(c.offsets[r + 1] - c.offsets[r]);
          break;
        case FieldKind::Text:
          text.clear();
          ends.clear();
          tokenize_text(c.strings[r], text, ends);
          row[i] = static_cast<double>(ends.size());
          break;
        case FieldKind::Timestamp:
          row[i] = (batch.reference_time - c.values[r]) / f.age_unit;
          break;
      }
    }
    ++o;
  }
}

}  // namespace ducklearn
