#pragma once
/**
 * A compiled feature plan: turns columnar, typed cells of a batch of entity records into
 * a dense float32 matrix or a CSR matrix, after validating every cell against the schema.
 *
 * The plan is built once from a list of FieldSpec (what a schema declares) and then runs
 * per batch without allocating per record. Inputs are columnar: one CellColumn per field,
 * holding n cells each (numbers as double, strings as string_view that the caller keeps
 * alive), plus a per-cell status written by whoever parsed the records (present, missing,
 * or of the wrong type). The plan knows nothing about where the cells came from.
 *
 * Per batch:
 *   1. validate(): per row, every failing field with a reason code (missing required,
 *      wrong type, NaN/inf, out of range, unknown category); rows with a failure are not
 *      kept. Per-field counts feed quality monitoring.
 *   2. fill_dense() / fill_csr(): the kept rows, each field written into its
 *      block of columns (layout fixed at construction, see column_names()).
 *   3. fill_raw(): one scalar per field per kept row before normalization (numeric value
 *      after log1p/clip, also for binned fields, boolean 0/1, category code, token count, timestamp age), NaN where
 *      missing: what online normalizers learn from and quality monitors watch.
 *
 * Normalization is an affine map per field value column, (x - shift) * scale, optionally
 * clipped to [lo, hi], set by set_normalization(); the statistics that produce it are
 * learned outside the plan (running moments, quantile sketches) and frozen into it.
 *
 * Thread safety: every member may run concurrently. Normalization and impute values are an
 * immutable snapshot that set_normalization / set_impute replace atomically; a fill uses
 * the snapshot current when it starts, so a learner can publish new statistics while
 * another thread extracts. The reference time of ages travels with each batch.
 */
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ducklearn/export.hpp"

namespace ducklearn {

enum class FieldKind : uint8_t {
  Numeric = 0,      ///< a real number
  Boolean = 1,      ///< true/false, written as 1/0
  Categorical = 2,  ///< one string: fixed vocabulary one-hot (+ "other") or hashed buckets
  Tokens = 3,       ///< a list of strings, hashed (the hashing trick)
  Text = 4,         ///< one string, tokenized (lowercase, split on non-alphanumerics), hashed
  Timestamp = 5,    ///< seconds since the Unix epoch (UTC)
};

/** How token occurrences become a value before hashing. */
enum class TokenWeight : uint8_t {
  Count = 0,   ///< term frequency: each occurrence adds 1
  Binary = 1,  ///< 1 per distinct token
  Log = 2,     ///< log1p(term frequency) per distinct token
};

/** Per-cell status written by the parser of the records. */
enum CellStatus : uint8_t {
  kPresent = 0,
  kMissing = 1,    ///< absent or null
  kWrongType = 2,  ///< present but not of the field's type (the parser names the type)
};

/** Reason codes of validation failures (stable: Python maps them to messages). */
enum IssueCode : uint8_t {
  kIssueMissingRequired = 1,
  kIssueWrongType = 2,
  kIssueNotFinite = 3,
  kIssueOutOfRange = 4,
  kIssueUnknownCategory = 5,
};

/** One field of a schema, as the plan needs it. */
struct FieldSpec {
  std::string name;
  FieldKind kind = FieldKind::Numeric;
  bool required = false;           ///< a missing cell rejects the row
  bool missing_indicator = false;  ///< adds a column, 1 where the cell was missing
  /** Value used for a missing, non-required Numeric/Boolean cell or Timestamp age, in the
   *  field's transformed space (after log1p/clip, before normalization). */
  double impute = 0.0;

  // Numeric
  bool log1p = false;  ///< value -> sign(v) * log1p(|v|) (after the range check)
  bool has_clip = false;
  double clip_lo = 0.0, clip_hi = 0.0;  ///< applied after log1p, before normalization
  bool has_range = false;
  double range_lo = 0.0, range_hi = 0.0;  ///< declared valid range of the raw value
  /** Piecewise-linear encoding (Gorishniy et al. 2022): with T + 1 ascending edges
   *  e_0 < ... < e_T (in transformed units, after log1p/clip) the field writes T columns,
   *  column t = clamp((x - e_t) / (e_{t+1} - e_t), 0, 1), instead of one normalized value.
   *  Empty: off. A binned field ignores normalization (its columns are already in [0, 1])
   *  and cannot be crossed. */
  std::vector<double> bin_edges;

  // Categorical
  std::vector<std::string> vocabulary;  ///< one-hot levels (when hash_bits == 0)
  bool other_bucket = true;             ///< unknown levels go to an extra column; else reject

  // Categorical (hashed), Tokens, Text
  int hash_bits = 0;  ///< 2^hash_bits columns; 0 = vocabulary one-hot (categorical only)

  // Tokens, Text
  int ngram_max = 1;  ///< also hash 2..ngram_max consecutive tokens joined by a space
  TokenWeight weighting = TokenWeight::Count;
  bool l2_normalize = false;  ///< scale the field's hashed block to unit L2 norm
  bool signed_hash = true;    ///< signed hashing (collisions cancel in expectation)

  // Timestamp
  bool hour_of_day = true;  ///< sin/cos of the hour of day (UTC)
  bool day_of_week = true;  ///< sin/cos of the day of week (UTC, continuous)
  bool age = true;          ///< (reference - t) / age_unit
  double age_unit = 86400.0;
};

/**
 * An interaction of two fields: categorical x categorical (hashed bucket of the pair),
 * categorical x numeric (hashed bucket of the level, weighted by the normalized number) or
 * numeric x numeric (one column, product of the normalized values). Booleans and
 * timestamps (their age) count as numeric.
 */
struct CrossSpec {
  int32_t a = 0, b = 0;  ///< field indices
  int hash_bits = 0;     ///< for crosses with a categorical side; ignored for numeric x numeric
};

/** The cells of one field for n rows; which members are used depends on the field kind. */
struct CellColumn {
  const uint8_t* status = nullptr;  ///< n CellStatus
  const double* values = nullptr;   ///< Numeric, Boolean, Timestamp: n values
  const std::string_view* strings = nullptr;  ///< Categorical/Text: n; Tokens: offsets[n]
  const int64_t* offsets = nullptr;  ///< Tokens: n + 1 offsets into strings
};

/** A batch: n rows, one CellColumn per field, and rows already rejected by the parser. */
struct CellBatch {
  int64_t n = 0;
  std::vector<CellColumn> columns;
  /** Optional n flags: 0 keep checking; 1 drop the row but still check (and report) its
   *  fields; 2 drop it unchecked (the record could not be read at all). */
  const uint8_t* row_rejected = nullptr;
  double reference_time = 0.0;  ///< Unix seconds that timestamp ages are measured from
};

/** A validation failure. value is the offending number where there is one (else NaN). */
struct Issue {
  int64_t row;
  int32_t field;
  uint8_t code;
  double value;
};

/** Per-field counts over a validated batch (each n_fields long). */
struct FieldCounts {
  std::vector<int64_t> present, missing, wrong_type, not_finite, out_of_range,
      missing_required, unknown_category, other_level;
};

class DUCKLEARN_EXPORT FeaturePlan {
 public:
  /** Checks the specs (names unique and non-empty, bits in [1, 24], ranges ordered...). */
  FeaturePlan(std::vector<FieldSpec> fields, std::vector<CrossSpec> crosses, uint32_t seed = 0);
  ~FeaturePlan();
  FeaturePlan(const FeaturePlan&);
  FeaturePlan& operator=(const FeaturePlan&) = delete;

  int64_t n_fields() const { return static_cast<int64_t>(fields_.size()); }
  int64_t n_features() const { return n_features_; }
  const std::vector<FieldSpec>& fields() const { return fields_; }
  const std::vector<CrossSpec>& crosses() const { return crosses_; }
  /** Column names in output order (see the schema docs for the naming scheme). */
  const std::vector<std::string>& column_names() const { return names_; }
  /** First output column of field i's value block; -1 when the field has no such block. */
  int64_t value_column(int64_t field) const;

  /**
   * Normalization of field value columns: shift, scale, lo, hi each n_fields long;
   * out = clamp((x - shift) * scale, lo, hi). Identity: shift 0, scale 1, lo -inf, hi +inf.
   * Applies to Numeric fields without bin edges and to the age of Timestamp fields; the
   * entries of binned fields are ignored.
   */
  void set_normalization(const double* shift, const double* scale, const double* lo,
                         const double* hi);
  /** Impute values (see FieldSpec::impute), n_fields long. */
  void set_impute(const double* values);
  /** Both at once, published as one snapshot (impute may be null: unchanged). */
  void set_normalization(const double* shift, const double* scale, const double* lo,
                         const double* hi, const double* impute);

  /**
   * Validates every row. keep: n flags (1 = valid). issues (may be null) gets every
   * failure, row-major. counts (may be null) is resized and filled. Returns rows kept.
   */
  int64_t validate(const CellBatch& batch, uint8_t* keep, std::vector<Issue>* issues,
                   FieldCounts* counts) const;

  /**
   * out: n_keep x n_features, row-major, the kept rows in order. raw (optional) is what
   * fill_raw() wrote for the same batch and keep flags: numeric values and timestamp ages
   * are then read from it instead of being transformed again (log1p is the costliest step
   * of a row, and learning needs the raw values anyway).
   */
  void fill_dense(const CellBatch& batch, const uint8_t* keep, float* out,
                  const double* raw = nullptr) const;
  /**
   * Kept rows as CSR, appended to the vectors (cleared first): indptr gets n_keep + 1
   * entries; per row, column indices are sorted and unique (colliding hashed columns are
   * summed) and exact zeros are left out.
   */
  void fill_csr(const CellBatch& batch, const uint8_t* keep, std::vector<int64_t>& indptr,
                std::vector<int32_t>& indices, std::vector<float>& data,
                const double* raw = nullptr) const;
  /** out: n_keep x n_fields raw scalars per field (NaN where missing); see the file doc. */
  void fill_raw(const CellBatch& batch, const uint8_t* keep, double* out) const;

 private:
  struct Impl;
  /** Normalization and impute values per field; replaced whole, never mutated. */
  struct Affine {
    std::vector<double> shift, scale, lo, hi, impute;
  };
  std::shared_ptr<const Affine> affine() const;
  void publish(std::shared_ptr<const Affine> a);

  template <class Emit>
  void emit_row(const CellBatch& batch, int64_t row, const double* raw_row, const Affine& a,
                Impl& scratch, Emit&& emit) const;
  double raw_numeric(const FieldSpec& f, double v) const;

  std::vector<FieldSpec> fields_;
  std::vector<CrossSpec> crosses_;
  uint32_t seed_;
  std::vector<std::string> names_;
  int64_t n_features_ = 0;
  std::vector<int64_t> value_col_;      // per field: first column of its main block
  std::vector<int64_t> indicator_col_;  // per field: missing-indicator column or -1
  std::vector<int64_t> cross_col_;      // per cross: first column
  std::vector<uint32_t> field_seeds_;   // per field: murmur3 seed of its name
  std::vector<uint32_t> cross_seeds_;
  std::shared_ptr<const Affine> affine_;  // read/written with std::atomic_load/store
  // Vocabulary lookup: open addressing over murmur3 hashes of the levels.
  struct VocabTable {
    std::vector<int32_t> slots;  // index into vocabulary or -1
    uint32_t mask = 0;
  };
  std::vector<VocabTable> vocab_tables_;
  int32_t lookup(int64_t field, std::string_view s) const;
};

/**
 * Splits text into tokens the way Text fields do: maximal runs of word characters (ASCII
 * letters and digits, and UTF-8 characters outside the common punctuation blocks, so words
 * of any script stay whole), ASCII letters lowercased. Appends to out (token bytes back to
 * back) and token ends to ends.
 */
DUCKLEARN_EXPORT void tokenize_text(std::string_view text, std::string& out,
                                    std::vector<size_t>& ends);

}  // namespace ducklearn
