// Model files in C++: the strict JSON reader, SHA-256, safetensors validation, the Learner
// loader (bit-identical predictions and training state), and mutation fuzzing of all three:
// any input either loads or raises ModelFileError, never anything else.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <typeinfo>
#include <string>
#include <vector>

#include "ducklearn/io/json.hpp"
#include "ducklearn/io/model_file.hpp"
#include "ducklearn/io/sha256.hpp"
#include "ducklearn/stream/learner.hpp"

namespace {

using ducklearn::io::Json;
using ducklearn::io::ModelFileError;

// ---- a tiny writer for test files (the real writer is Python's ducklearn.modelfile) -----

std::string json_escape(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

struct TensorBytes {
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

template <class T>
TensorBytes tensor(const std::string& dtype, std::vector<int64_t> shape, const T* p, size_t n) {
  TensorBytes t{dtype, std::move(shape), std::vector<uint8_t>(n * sizeof(T))};
  if (n > 0) std::memcpy(t.data.data(), p, n * sizeof(T));
  return t;
}

std::string shape_json(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

// 8-byte little-endian header length, the header, the data.
std::vector<uint8_t> raw_file(const std::string& header, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out(8 + header.size() + data.size());
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, header.data(), header.size());
  if (!data.empty()) std::memcpy(out.data() + 8 + header.size(), data.data(), data.size());
  return out;
}

std::vector<uint8_t> write_file(const std::map<std::string, TensorBytes>& tensors,
                                const std::string& manifest_json) {
  std::string header = "{\"__metadata__\":{\"ducklearn\":" + json_escape(manifest_json) + "}";
  std::vector<uint8_t> data;
  for (const auto& [name, t] : tensors) {
    const size_t begin = data.size();
    data.insert(data.end(), t.data.begin(), t.data.end());
    header += "," + json_escape(name) + ":{\"dtype\":\"" + t.dtype + "\",\"shape\":" +
              shape_json(t.shape) + ",\"data_offsets\":[" + std::to_string(begin) + "," +
              std::to_string(data.size()) + "]}";
  }
  header += "}";
  while ((header.size() + 8) % 8) header += ' ';
  return raw_file(header, data);
}

// A trained Learner (MLP 5-8-1, logistic, Adam, standardized) and its model file.
struct Fixture {
  std::unique_ptr<ducklearn::Learner> learner;
  std::vector<uint8_t> file;
  std::vector<float> X;
};

Fixture make_fixture(bool standardize = true, bool average = false) {
  using namespace ducklearn;
  Sequential model(5, {8, 1}, {Activation::Tanh, Activation::Identity});
  model.init(11);
  LossSpec loss{LossKind::Logistic};
  OptimizerConfig opt;
  opt.kind = OptimizerKind::Adam;
  opt.schedule.lr = 0.01f;
  Fixture fx;
  fx.learner = std::make_unique<Learner>(std::move(model), loss, opt, standardize);
  std::mt19937 gen(3);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  fx.X.resize(200 * 5);
  std::vector<float> y(200);
  for (size_t i = 0; i < 200; ++i) {
    for (size_t j = 0; j < 5; ++j) fx.X[i * 5 + j] = nd(gen) * static_cast<float>(j + 1);
    y[i] = fx.X[i * 5] + fx.X[i * 5 + 1] > 0 ? 1.0f : 0.0f;
  }
  std::vector<float> preds(200);
  if (average) fx.learner->set_averaging(0.99f);
  fx.learner->prequential(fx.X.data(), y.data(), 200, preds.data());
  // Run-time adapted state the file must carry as well.
  fx.learner->consolidate(fx.X.data(), y.data(), 50, 0.3f, 0.9f);
  fx.learner->optimizer().set_lr_scale(0.5f);
  fx.learner->optimizer().set_hypergradient_lr(0.004f);

  const Learner& L = *fx.learner;
  const Sequential& m = L.model();
  std::map<std::string, TensorBytes> t;
  std::string tensors_json = "{";
  auto add = [&](const std::string& name, TensorBytes tb) {
    tensors_json += (tensors_json.size() > 1 ? "," : "") + json_escape(name) + ":{\"dtype\":\"" +
                    tb.dtype + "\",\"shape\":" + shape_json(tb.shape) + ",\"sha256\":\"" +
                    ducklearn::io::sha256_hex(tb.data.data(), tb.data.size()) + "\"}";
    t[name] = std::move(tb);
  };
  for (size_t i = 0; i < m.layers().size(); ++i) {
    const auto& Ly = m.layers()[i];
    add("layers." + std::to_string(i) + ".weight",
        tensor("F32", {Ly.out, Ly.in}, m.params() + Ly.w_offset, size_t(Ly.out * Ly.in)));
    add("layers." + std::to_string(i) + ".bias",
        tensor("F32", {Ly.out}, m.params() + Ly.b_offset, size_t(Ly.out)));
  }
  const auto n = static_cast<size_t>(m.n_params());
  const auto& o = L.optimizer();
  add("optimizer.m", tensor("F32", {m.n_params()}, o.state(), n));
  add("optimizer.v", tensor("F32", {m.n_params()}, o.state() + n, n));
  add("ewc.anchor", tensor("F32", {m.n_params()}, L.ewc_anchor().data(), n));
  add("ewc.fisher", tensor("F32", {m.n_params()}, L.ewc_fisher().data(), n));
  if (average) {
    add("average.params", tensor("F32", {m.n_params()}, L.served_model().params(), n));
  }
  if (standardize) {
    const auto* s = L.scaler();
    add("scaler.count", tensor("F64", {5}, s->count(), 5));
    add("scaler.mean", tensor("F64", {5}, s->mean(), 5));
    add("scaler.m2", tensor("F64", {5}, s->m2(), 5));
    add("scaler.min", tensor("F32", {5}, s->min(), 5));
    add("scaler.max", tensor("F32", {5}, s->max(), 5));
  }
  tensors_json += "}";
  const std::string manifest =
      std::string("{\"format\":\"ducklearn.model\",\"format_version\":1,") +
      "\"model_type\":\"test.Cpp\",\"library_version\":\"test\"," +
      "\"state\":{\"contract\":{\"feature_names\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}}," +
      "\"flat\":{\"params\":{\"size\":" + std::to_string(n) + "}}," +
      "\"core\":{\"n_inputs\":5,\"leaky_alpha\":0.01,\"layers\":[" +
      "{\"in\":5,\"out\":8,\"activation\":\"tanh\"},{\"in\":8,\"out\":1,\"activation\":\"identity\"}]," +
      "\"loss\":{\"kind\":\"logistic\",\"delta\":1.0,\"tau\":0.5},\"task\":\"binary\"," +
      "\"standardize\":" + (standardize ? "true" : "false") + "," +
      "\"optimizer\":{\"kind\":\"adam\",\"schedule\":{\"kind\":\"constant\",\"lr\":" +
      "0.009999999776482582},\"beta1\":0.8999999761581421,\"beta2\":0.9990000128746033," +
      "\"eps\":9.99999993922529e-09,\"steps\":" + std::to_string(o.steps()) +
      ",\"size\":" + std::to_string(o.size()) + ",\"slots\":[\"m\",\"v\"]," +
      "\"lr_scale\":0.5,\"hypergradient_lr\":0.004000000189989805}," +
      "\"ewc_lambda\":0.30000001192092896," +
      (average ? "\"average\":{\"decay\":0.9900000095367432,\"steps\":" +
                     std::to_string(L.average_steps()) + "},"
               : std::string()) +
      "\"examples_seen\":" + std::to_string(L.examples_seen()) + "}," +
      "\"tensors\":" + tensors_json + "}";
  fx.file = write_file(t, manifest);
  return fx;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// ---- JSON ---------------------------------------------------------------------------------

TEST(Json, ParsesEveryKind) {
  const Json j = Json::parse(R"( {"a": [1, -2.5e3, true, false, null], "b": {"c": "x\u00e9\ud83d\ude00\n"}} )");
  ASSERT_TRUE(j.is_object());
  const auto& a = j.at("a").as_array();
  EXPECT_EQ(a[0].as_int(), 1);
  EXPECT_DOUBLE_EQ(a[1].as_double(), -2500.0);
  EXPECT_TRUE(a[2].as_bool());
  EXPECT_FALSE(a[3].as_bool());
  EXPECT_TRUE(a[4].is_null());
  EXPECT_EQ(j.at("b").at("c").as_string(), "x\xc3\xa9\xf0\x9f\x98\x80\n");
}

TEST(Json, RejectsWhatRfc8259Forbids) {
  for (const char* bad : {"", "   ", "{", "[1,]", "{\"a\":1,}", "01", "1.", ".5", "-", "+1",
                          "1e", "NaN", "Infinity", "\"\\x\"", "\"a\tb\"", "\"\\ud800\"",
                          "\"\\udc00\"", "{\"a\":1,\"a\":2}", "[1] 2", "tru", "nul",
                          "{1:2}", "\"\xff\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"",
                          "\"\xf4\x90\x80\x80\"", "1e400", "\"abc"}) {
    EXPECT_THROW(Json::parse(bad), ModelFileError) << "accepted: " << bad;
  }
}

TEST(Json, LimitsDepthAndSizeWithoutRecursingForever) {
  const std::string deep(100000, '[');
  EXPECT_THROW(Json::parse(deep), ModelFileError);
  ducklearn::io::JsonLimits lim;
  lim.max_bytes = 4;
  EXPECT_THROW(Json::parse("[1,2,3]", lim), ModelFileError);
}

TEST(Json, IntegersAreExactAndChecked) {
  EXPECT_EQ(Json::parse("9007199254740993").as_int(), 9007199254740993LL);
  EXPECT_THROW(Json::parse("1.5").as_int(), ModelFileError);
  EXPECT_THROW(Json::parse("99999999999999999999").as_int(), ModelFileError);
  EXPECT_THROW(Json::parse("\"1\"").as_int("x"), ModelFileError);
}

// ---- SHA-256 ------------------------------------------------------------------------------

TEST(Sha256, MatchesFips180Vectors) {
  EXPECT_EQ(ducklearn::io::sha256_hex("", 0),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(ducklearn::io::sha256_hex("abc", 3),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(ducklearn::io::sha256_hex(two.data(), two.size()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  // Fed in uneven pieces: the same digest as one call.
  const std::string million(1000000, 'a');
  ducklearn::io::Sha256 h;
  for (size_t i = 0; i < million.size();) {
    const size_t n = std::min<size_t>(1 + (i % 97), million.size() - i);
    h.update(million.data() + i, n);
    i += n;
  }
  EXPECT_EQ(h.hexdigest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// ---- safetensors + loader -----------------------------------------------------------------

TEST(ModelFile, LoadsALearnerThatPredictsBitIdentically) {
  for (const bool standardize : {true, false}) {
    Fixture fx = make_fixture(standardize);
    auto loaded = ducklearn::io::load_model(fx.file);
    ASSERT_TRUE(loaded.learner);
    EXPECT_EQ(loaded.task, "binary");
    EXPECT_EQ(loaded.model_type, "test.Cpp");
    EXPECT_EQ(loaded.feature_names, (std::vector<std::string>{"a", "b", "c", "d", "e"}));
    ducklearn::Learner& a = *fx.learner;
    ducklearn::Learner& b = *loaded.learner;
    EXPECT_EQ(b.examples_seen(), a.examples_seen());
    EXPECT_EQ(b.optimizer().lr_scale(), 0.5f);
    EXPECT_EQ(b.optimizer().hypergradient_lr(), a.optimizer().hypergradient_lr());
    EXPECT_EQ(b.ewc_lambda(), a.ewc_lambda());
    ASSERT_EQ(b.ewc_anchor().size(), a.ewc_anchor().size());
    EXPECT_EQ(0, std::memcmp(b.ewc_fisher().data(), a.ewc_fisher().data(),
                             a.ewc_fisher().size() * sizeof(float)));
    std::vector<float> pa(200), pb(200);
    ducklearn::Workspace wa, wb;
    a.predict(fx.X.data(), 200, pa.data(), wa);
    b.predict(fx.X.data(), 200, pb.data(), wb);
    EXPECT_TRUE(bitwise_equal(pa, pb));
    // The training state came along too: the next steps are identical.
    for (int i = 0; i < 20; ++i) {
      a.learn_one(fx.X.data() + 5 * i, static_cast<float>(i % 2));
      b.learn_one(fx.X.data() + 5 * i, static_cast<float>(i % 2));
    }
    const auto n = static_cast<size_t>(a.model().n_params());
    EXPECT_EQ(0, std::memcmp(a.model().params(), b.model().params(), n * sizeof(float)));
  }
}

TEST(ModelFile, LoadsAveragedWeightsAndKeepsAveragingIdentically) {
  Fixture fx = make_fixture(true, /*average=*/true);
  auto loaded = ducklearn::io::load_model(fx.file);
  ducklearn::Learner& a = *fx.learner;
  ducklearn::Learner& b = *loaded.learner;
  ASSERT_EQ(b.averaging(), a.averaging());
  EXPECT_EQ(b.average_steps(), a.average_steps());
  std::vector<float> pa(200), pb(200), raw(200);
  ducklearn::Workspace wa, wb;
  a.predict(fx.X.data(), 200, pa.data(), wa);
  b.predict(fx.X.data(), 200, pb.data(), wb);
  EXPECT_TRUE(bitwise_equal(pa, pb));
  // Predictions come from the average, not the raw weights.
  ducklearn::infer(a.model(), a.scaler(), ducklearn::Task::Binary, fx.X.data(), 200,
                   raw.data(), wa, true);
  EXPECT_FALSE(bitwise_equal(pa, raw));
  for (int i = 0; i < 20; ++i) {
    a.learn_one(fx.X.data() + 5 * i, static_cast<float>(i % 2));
    b.learn_one(fx.X.data() + 5 * i, static_cast<float>(i % 2));
  }
  const auto n = static_cast<size_t>(a.model().n_params());
  EXPECT_EQ(0, std::memcmp(a.served_model().params(), b.served_model().params(),
                           n * sizeof(float)));
}

TEST(ModelFile, ChecksumsCatchFlippedDataBytes) {
  Fixture fx = make_fixture();
  std::vector<uint8_t> bad = fx.file;
  bad[bad.size() - 3] ^= 0x40;  // inside the last tensor's data
  try {
    ducklearn::io::load_model(bad);
    FAIL() << "a flipped data byte was not detected";
  } catch (const ModelFileError& e) {
    EXPECT_NE(std::string(e.what()).find("checksum mismatch"), std::string::npos) << e.what();
  }
  ducklearn::io::LoadOptions fast;
  fast.verify_checksums = false;
  EXPECT_NO_THROW(ducklearn::io::load_model(bad, fast));
}

TEST(ModelFile, RefusesNewerFormatVersionsWithAClearMessage) {
  Fixture fx = make_fixture();
  std::string s(fx.file.begin(), fx.file.end());
  const std::string from = "\\\"format_version\\\":1", to = "\\\"format_version\\\":7";
  const auto pos = s.find(from);
  ASSERT_NE(pos, std::string::npos);
  s.replace(pos, from.size(), to);
  try {
    ducklearn::io::load_model(std::vector<uint8_t>(s.begin(), s.end()));
    FAIL();
  } catch (const ModelFileError& e) {
    EXPECT_NE(std::string(e.what()).find("format version 7"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Upgrade ducklearn"), std::string::npos) << e.what();
  }
}

TEST(ModelFile, RejectsStructuralDamage) {
  Fixture fx = make_fixture();
  // Truncated anywhere.
  for (size_t cut : {size_t{0}, size_t{7}, size_t{8}, size_t{100}, fx.file.size() - 1}) {
    std::vector<uint8_t> t(fx.file.begin(), fx.file.begin() + static_cast<long>(cut));
    EXPECT_THROW(ducklearn::io::load_model(t), ModelFileError) << "cut at " << cut;
  }
  // Header length pointing past the end, or absurdly large.
  for (uint64_t n : {uint64_t{0}, uint64_t{1} << 40, uint64_t(fx.file.size())}) {
    std::vector<uint8_t> t = fx.file;
    for (int i = 0; i < 8; ++i) t[i] = static_cast<uint8_t>(n >> (8 * i));
    EXPECT_THROW(ducklearn::io::load_model(t), ModelFileError);
  }
  // Extra bytes after the last tensor: a hole nothing describes.
  std::vector<uint8_t> t = fx.file;
  t.push_back(0);
  EXPECT_THROW(ducklearn::io::load_model(t), ModelFileError);
  // A plain safetensors file without a ducklearn manifest.
  std::map<std::string, TensorBytes> plain;
  const float v = 1.0f;
  plain["x"] = tensor("F32", {1}, &v, 1);
  const std::string header =
      "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
  const auto raw = raw_file(header, plain["x"].data);
  const auto sf = ducklearn::io::SafetensorsFile::parse(raw);
  EXPECT_EQ(sf.floats("x"), std::vector<float>{1.0f});
  EXPECT_THROW(ducklearn::io::load_model(raw), ModelFileError);
}

TEST(ModelFile, OverlappingOrOversizedTensorsAreRefused) {
  const std::vector<std::string> headers = {
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
      R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
      R"({"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}})",
      R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})",
      R"({"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}})",
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})",
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})",
      R"({"__metadata__":{"k":1},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
  };
  for (const auto& h : headers) {
    const auto raw = raw_file(h, std::vector<uint8_t>(8, 0));
    EXPECT_THROW(ducklearn::io::SafetensorsFile::parse(raw), ModelFileError) << h;
  }
}

// ---- fuzzing ------------------------------------------------------------------------------

// Iterations of the fuzz loops: the defaults keep the suite fast; DUCKLEARN_FUZZ_SCALE=50
// (e.g. under -fsanitize=address,undefined) runs fifty times as many.
int fuzz_iterations(int base) {
  const char* env = std::getenv("DUCKLEARN_FUZZ_SCALE");
  const int scale = env != nullptr ? std::atoi(env) : 1;
  return base * (scale > 0 ? scale : 1);
}

// Calls f and fails the test if it throws anything but ModelFileError.
template <class F>
void only_model_file_errors(F&& f, const std::string& what) {
  try {
    f();
  } catch (const ModelFileError&) {
  } catch (const std::exception& e) {
    ADD_FAILURE() << what << ": unexpected " << typeid(e).name() << ": " << e.what();
  }
}

TEST(ModelFileFuzz, RandomJsonTextNeverCrashes) {
  std::mt19937_64 gen(1234);
  const std::string alphabet = "{}[]\",:.-+eE0123456789 \\utrfalsn\t\n\x80\xc3\xff";
  const int iterations = fuzz_iterations(30000);
  for (int it = 0; it < iterations; ++it) {
    std::string s(gen() % 48, ' ');
    for (char& c : s) c = alphabet[gen() % alphabet.size()];
    only_model_file_errors([&] { (void)Json::parse(s); }, "json " + s);
  }
}

TEST(ModelFileFuzz, MutatedModelFilesLoadOrFailCleanly) {
  Fixture fx = make_fixture();
  std::mt19937_64 gen(99);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | fx.file[i];
  int loaded = 0;
  const int iterations = fuzz_iterations(4000);
  for (int it = 0; it < iterations; ++it) {
    std::vector<uint8_t> b = fx.file;
    const int kind = static_cast<int>(gen() % 5);
    if (kind == 0) {  // random bytes anywhere
      for (int k = 0; k < 1 + static_cast<int>(gen() % 4); ++k) b[gen() % b.size()] = uint8_t(gen());
    } else if (kind == 1) {  // inside the JSON header, JSON-ish characters
      const char* chars = "{}[]\",:0123456789-.eE \\";
      for (int k = 0; k < 1 + static_cast<int>(gen() % 3); ++k) {
        b[8 + gen() % header_len] = static_cast<uint8_t>(chars[gen() % 23]);
      }
    } else if (kind == 2) {  // truncation
      b.resize(gen() % b.size());
    } else if (kind == 3) {  // insertion inside the header, with a fixed-up length
      const size_t at = 8 + gen() % header_len;
      b.insert(b.begin() + static_cast<long>(at), static_cast<uint8_t>("0,]}\" "[gen() % 6]));
      const uint64_t n = header_len + 1;
      for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(n >> (8 * i));
    } else {  // a digit of a number in the manifest changed (shapes, offsets, sizes)
      std::vector<size_t> digits;
      for (size_t i = 8; i < 8 + header_len; ++i) {
        if (b[i] >= '0' && b[i] <= '9') digits.push_back(i);
      }
      b[digits[gen() % digits.size()]] = static_cast<uint8_t>('0' + gen() % 10);
    }
    only_model_file_errors(
        [&] {
          auto m = ducklearn::io::load_model(b);
          ++loaded;
          std::vector<float> p(1);
          ducklearn::Workspace ws;
          m.learner->predict(fx.X.data(), 1, p.data(), ws);
        },
        "mutation " + std::to_string(it));
  }
  // Most mutations must be caught; the few that load changed only padding or a number
  // that does not matter (e.g. a metric digit) and still predict without crashing.
  EXPECT_LT(loaded, iterations);
}

}  // namespace
