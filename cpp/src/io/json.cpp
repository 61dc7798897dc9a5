#include "ducklearn/io/json.hpp"

#include <charconv>
#include <cmath>
#include <string>
#include <system_error>

namespace ducklearn::io {

namespace {

[[noreturn]] void fail(const std::string& msg, size_t pos) {
  throw ModelFileError("invalid JSON at byte " + std::to_string(pos) + ": " + msg);
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace

/** Recursive descent over a string_view; every read is checked against the end. */
class JsonParser {
 public:
  JsonParser(std::string_view s, const JsonLimits& lim) : s_(s), lim_(lim) {}

  Json document() {
    skip_ws();
    Json v = value(0);
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected trailing data", pos_);
    return v;
  }

 private:
  bool at_end() const { return pos_ >= s_.size(); }
  unsigned char peek() const { return static_cast<unsigned char>(s_[pos_]); }

  void skip_ws() {
    while (!at_end()) {
      const char c = s_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++pos_;
    }
  }

  void expect_literal(std::string_view lit) {
    if (s_.substr(pos_, lit.size()) != lit) fail("invalid literal", pos_);
    pos_ += lit.size();
  }

  Json value(size_t depth) {
    if (at_end()) fail("unexpected end of input", pos_);
    Json v;
    switch (s_[pos_]) {
      case '{':
        return object(depth + 1);
      case '[':
        return array(depth + 1);
      case '"':
        v.type_ = Json::Type::String;
        v.text_ = string();
        return v;
      case 't':
        expect_literal("true");
        v.type_ = Json::Type::Bool;
        v.bool_ = true;
        return v;
      case 'f':
        expect_literal("false");
        v.type_ = Json::Type::Bool;
        return v;
      case 'n':
        expect_literal("null");
        return v;
      default:
        return number();
    }
  }

  Json object(size_t depth) {
    if (depth > lim_.max_depth) fail("nesting deeper than " + std::to_string(lim_.max_depth), pos_);
    Json v;
    v.type_ = Json::Type::Object;
    ++pos_;  // '{'
    skip_ws();
    if (!at_end() && s_[pos_] == '}') {
      ++pos_;
      return v;
    }
    while (true) {
      skip_ws();
      if (at_end() || s_[pos_] != '"') fail("expected a string key", pos_);
      const size_t key_pos = pos_;
      std::string key = string();
      for (const auto& k : v.keys_) {
        if (k == key) fail("duplicate key \"" + key + "\"", key_pos);
      }
      skip_ws();
      if (at_end() || s_[pos_] != ':') fail("expected ':'", pos_);
      ++pos_;
      skip_ws();
      v.keys_.push_back(std::move(key));
      v.items_.push_back(value(depth));
      skip_ws();
      if (at_end()) fail("unterminated object", pos_);
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == '}') {
        ++pos_;
        return v;
      }
      fail("expected ',' or '}'", pos_);
    }
  }

  Json array(size_t depth) {
    if (depth > lim_.max_depth) fail("nesting deeper than " + std::to_string(lim_.max_depth), pos_);
    Json v;
    v.type_ = Json::Type::Array;
    ++pos_;  // '['
    skip_ws();
    if (!at_end() && s_[pos_] == ']') {
      ++pos_;
      return v;
    }
    while (true) {
      skip_ws();
      v.items_.push_back(value(depth));
      skip_ws();
      if (at_end()) fail("unterminated array", pos_);
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == ']') {
        ++pos_;
        return v;
      }
      fail("expected ',' or ']'", pos_);
    }
  }

  uint32_t hex4() {
    if (s_.size() - pos_ < 4) fail("truncated \\u escape", pos_);
    uint32_t cp = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[pos_++];
      cp <<= 4;
      if (c >= '0' && c <= '9') cp |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') cp |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') cp |= static_cast<uint32_t>(c - 'A' + 10);
      else fail("bad hex digit in \\u escape", pos_ - 1);
    }
    return cp;
  }

  // One UTF-8 sequence starting at pos_, validated (no overlongs, no surrogates, <= U+10FFFF).
  void utf8_sequence(std::string& out) {
    const size_t start = pos_;
    const unsigned char c0 = peek();
    int len;
    uint32_t cp;
    if (c0 >= 0xC2 && c0 <= 0xDF) { len = 2; cp = c0 & 0x1F; }
    else if (c0 >= 0xE0 && c0 <= 0xEF) { len = 3; cp = c0 & 0x0F; }
    else if (c0 >= 0xF0 && c0 <= 0xF4) { len = 4; cp = c0 & 0x07; }
    else fail("invalid UTF-8 lead byte", start);
    if (s_.size() - pos_ < static_cast<size_t>(len)) fail("truncated UTF-8 sequence", start);
    for (int i = 1; i < len; ++i) {
      const auto c = static_cast<unsigned char>(s_[pos_ + i]);
      if ((c & 0xC0) != 0x80) fail("invalid UTF-8 continuation byte", pos_ + i);
      cp = (cp << 6) | (c & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) fail("overlong UTF-8", start);
    if (cp >= 0xD800 && cp <= 0xDFFF) fail("UTF-8 encodes a surrogate", start);
    if (cp > 0x10FFFF) fail("code point above U+10FFFF", start);
    out.append(s_.substr(pos_, static_cast<size_t>(len)));
    pos_ += static_cast<size_t>(len);
  }

  std::string string() {
    ++pos_;  // opening quote
    std::string out;
    while (true) {
      if (at_end()) fail("unterminated string", pos_);
      const unsigned char c = peek();
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) fail("unescaped control character in string", pos_);
      if (c == '\\') {
        ++pos_;
        if (at_end()) fail("unterminated escape", pos_);
        const char e = s_[pos_++];
        switch (e) {
          case '"': out.push_back('"'); break;
          case '\\': out.push_back('\\'); break;
          case '/': out.push_back('/'); break;
          case 'b': out.push_back('\b'); break;
          case 'f': out.push_back('\f'); break;
          case 'n': out.push_back('\n'); break;
          case 'r': out.push_back('\r'); break;
          case 't': out.push_back('\t'); break;
          case 'u': {
            uint32_t cp = hex4();
            if (cp >= 0xD800 && cp <= 0xDBFF) {
              if (s_.size() - pos_ < 2 || s_[pos_] != '\\' || s_[pos_ + 1] != 'u') {
                fail("lone high surrogate", pos_);
              }
              pos_ += 2;
              const uint32_t lo = hex4();
              if (lo < 0xDC00 || lo > 0xDFFF) fail("invalid low surrogate", pos_ - 4);
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
              fail("lone low surrogate", pos_ - 4);
            }
            append_utf8(out, cp);
            break;
          }
          default:
            fail("invalid escape", pos_ - 1);
        }
        continue;
      }
      if (c < 0x80) {
        out.push_back(static_cast<char>(c));
        ++pos_;
      } else {
        utf8_sequence(out);
      }
    }
  }

  static bool digit(char c) { return c >= '0' && c <= '9'; }

  Json number() {
    const size_t start = pos_;
    if (!at_end() && s_[pos_] == '-') ++pos_;
    if (at_end() || !digit(s_[pos_])) fail("invalid value", start);
    if (s_[pos_] == '0') {
      ++pos_;
    } else {
      while (!at_end() && digit(s_[pos_])) ++pos_;
    }
    if (!at_end() && s_[pos_] == '.') {
      ++pos_;
      if (at_end() || !digit(s_[pos_])) fail("digit expected after '.'", pos_);
      while (!at_end() && digit(s_[pos_])) ++pos_;
    }
    if (!at_end() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (!at_end() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (at_end() || !digit(s_[pos_])) fail("digit expected in exponent", pos_);
      while (!at_end() && digit(s_[pos_])) ++pos_;
    }
    Json v;
    v.type_ = Json::Type::Number;
    v.text_ = std::string(s_.substr(start, pos_ - start));
    // Refuse numbers a double cannot hold rather than silently saturating them.
    double d = 0.0;
    const auto r = std::from_chars(v.text_.data(), v.text_.data() + v.text_.size(), d);
    if (r.ec != std::errc() || !std::isfinite(d)) fail("number out of range", start);
    return v;
  }

  std::string_view s_;
  JsonLimits lim_;
  size_t pos_ = 0;
};

Json Json::parse(std::string_view text, const JsonLimits& limits) {
  if (text.size() > limits.max_bytes) {
    throw ModelFileError("JSON text of " + std::to_string(text.size()) +
                         " bytes exceeds the limit of " + std::to_string(limits.max_bytes));
  }
  return JsonParser(text, limits).document();
}

namespace {
const char* type_name(Json::Type t) {
  switch (t) {
    case Json::Type::Null: return "null";
    case Json::Type::Bool: return "a boolean";
    case Json::Type::Number: return "a number";
    case Json::Type::String: return "a string";
    case Json::Type::Array: return "an array";
    default: return "an object";
  }
}

[[noreturn]] void wrong_type(const char* what, const char* want, Json::Type got) {
  throw ModelFileError(std::string(what) + " must be " + want + ", got " + type_name(got));
}
}  // namespace

bool Json::as_bool(const char* what) const {
  if (type_ != Type::Bool) wrong_type(what, "a boolean", type_);
  return bool_;
}

double Json::as_double(const char* what) const {
  if (type_ != Type::Number) wrong_type(what, "a number", type_);
  double d = 0.0;
  std::from_chars(text_.data(), text_.data() + text_.size(), d);
  return d;
}

int64_t Json::as_int(const char* what) const {
  if (type_ != Type::Number) wrong_type(what, "an integer", type_);
  int64_t v = 0;
  const auto r = std::from_chars(text_.data(), text_.data() + text_.size(), v);
  if (r.ec != std::errc() || r.ptr != text_.data() + text_.size()) {
    throw ModelFileError(std::string(what) + " must be an integer that fits 64 bits, got " +
                         text_);
  }
  return v;
}

const std::string& Json::as_string(const char* what) const {
  if (type_ != Type::String) wrong_type(what, "a string", type_);
  return text_;
}

const std::vector<Json>& Json::as_array(const char* what) const {
  if (type_ != Type::Array) wrong_type(what, "an array", type_);
  return items_;
}

const Json* Json::find(std::string_view key) const {
  if (type_ != Type::Object) return nullptr;
  for (size_t i = 0; i < keys_.size(); ++i) {
    if (keys_[i] == key) return &items_[i];
  }
  return nullptr;
}

const Json& Json::at(std::string_view key, const char* what) const {
  if (type_ != Type::Object) wrong_type(what, "an object", type_);
  const Json* v = find(key);
  if (v == nullptr) throw ModelFileError("missing \"" + std::string(key) + "\" in " + what);
  return *v;
}

}  // namespace ducklearn::io
