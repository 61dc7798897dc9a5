#pragma once
/**
 * A small, strict JSON reader for model-file headers (RFC 8259).
 *
 * Model files come from outside, so the parser is bounds-checked throughout and refuses
 * rather than guesses: invalid UTF-8, unescaped control characters, lone surrogates,
 * duplicate object keys, numbers that overflow a double, trailing bytes, and nesting deeper
 * than JsonLimits::max_depth all raise ModelFileError with the byte offset.
 */
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "ducklearn/export.hpp"

namespace ducklearn::io {

/** A model file (or its JSON) that cannot be read: corrupt, truncated, not a ducklearn model,
 *  or written in a format version this library does not understand. */
class DUCKLEARN_EXPORT ModelFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct JsonLimits {
  size_t max_depth = 64;             ///< arrays/objects nested deeper than this are refused
  size_t max_bytes = 64u << 20;      ///< longer texts are refused before parsing
};

/** An immutable JSON value. Object members keep their order; keys are unique. */
class DUCKLEARN_EXPORT Json {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };

  Json() = default;

  /** Parses one JSON text (surrounding whitespace allowed). Throws ModelFileError. */
  static Json parse(std::string_view text, const JsonLimits& limits = {});

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_bool() const { return type_ == Type::Bool; }
  bool is_number() const { return type_ == Type::Number; }
  bool is_string() const { return type_ == Type::String; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }

  /** Typed accessors; each throws ModelFileError naming `what` when the type differs. */
  bool as_bool(const char* what = "value") const;
  double as_double(const char* what = "value") const;
  /** An integer written without fraction or exponent that fits int64. */
  int64_t as_int(const char* what = "value") const;
  const std::string& as_string(const char* what = "value") const;
  const std::vector<Json>& as_array(const char* what = "value") const;

  /** Object members (keys()[i] ↦ values()[i]); empty for non-objects. */
  const std::vector<std::string>& keys() const { return keys_; }
  const std::vector<Json>& values() const { return items_; }
  /** Member by key, or nullptr (also for non-objects). */
  const Json* find(std::string_view key) const;
  /** Member by key; throws ModelFileError "missing <key> in <what>". */
  const Json& at(std::string_view key, const char* what = "object") const;

 private:
  friend class JsonParser;
  Type type_ = Type::Null;
  bool bool_ = false;
  std::string text_;              ///< string contents, or the number's source text
  std::vector<std::string> keys_;
  std::vector<Json> items_;       ///< array elements or object values
};

}  // namespace ducklearn::io
