#include "ducklearn/io/model_file.hpp"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <utility>

#include "ducklearn/io/sha256.hpp"
#include "ducklearn/kernels/activation.hpp"
#include "ducklearn/kernels/loss.hpp"
#include "ducklearn/optim/optimizer.hpp"
#include "ducklearn/optim/schedule.hpp"

namespace ducklearn::io {

namespace {

// Far above any real header, far below what a hostile length field could make us allocate.
constexpr uint64_t kMaxHeaderBytes = 64ull << 20;
constexpr size_t kMaxDims = 16;

bool little_endian_host() {
  const uint16_t probe = 1;
  uint8_t first;
  std::memcpy(&first, &probe, 1);
  return first == 1;
}

DType dtype_from(const std::string& s) {
  if (s == "F32") return DType::F32;
  if (s == "F64") return DType::F64;
  if (s == "I64") return DType::I64;
  if (s == "I32") return DType::I32;
  if (s == "U8") return DType::U8;
  throw ModelFileError("unsupported tensor dtype \"" + s + "\" (ducklearn reads F32, F64, I64, "
                       "I32, U8)");
}

uint64_t checked_mul(uint64_t a, uint64_t b, const std::string& what) {
  uint64_t out;
  if (__builtin_mul_overflow(a, b, &out)) throw ModelFileError(what + " overflows");
  return out;
}

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ModelFileError("cannot open " + path);
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) throw ModelFileError("cannot read " + path);
  in.seekg(0, std::ios::beg);
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size)) {
    throw ModelFileError("cannot read " + path);
  }
  return bytes;
}

uint64_t header_length(const uint8_t* p, size_t available) {
  if (available < 8) {
    throw ModelFileError("file is truncated: " + std::to_string(available) +
                         " bytes, a safetensors file starts with an 8-byte header length");
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | p[i];
  if (n == 0 || n > kMaxHeaderBytes) {
    throw ModelFileError("header length " + std::to_string(n) +
                         " is not plausible; not a safetensors file");
  }
  return n;
}

/** The ducklearn manifest from the header's __metadata__, with format checks. */
Json manifest_from_metadata(const Json& metadata) {
  const Json* text = metadata.find("ducklearn");
  if (text == nullptr) {
    throw ModelFileError("not a ducklearn model file: the safetensors metadata has no "
                         "\"ducklearn\" manifest");
  }
  Json m = Json::parse(text->as_string("__metadata__.ducklearn"));
  if (!m.is_object()) throw ModelFileError("the model manifest must be a JSON object");
  const Json* format = m.find("format");
  if (format == nullptr || !format->is_string() || format->as_string() != "ducklearn.model") {
    throw ModelFileError("manifest format is not \"ducklearn.model\"");
  }
  const int64_t version = m.at("format_version", "manifest").as_int("format_version");
  if (version < 1) throw ModelFileError("manifest format_version must be >= 1");
  if (version > kModelFormatVersion) {
    const Json* lib = m.find("library_version");
    throw ModelFileError("this model file has format version " + std::to_string(version) +
                         ", written by ducklearn " +
                         (lib != nullptr && lib->is_string() ? lib->as_string() : "?") +
                         "; this library reads format version " +
                         std::to_string(kModelFormatVersion) +
                         " and older. Upgrade ducklearn to load it.");
  }
  return m;
}

void check_shape(const TensorInfo& t, const std::vector<int64_t>* shape) {
  if (shape != nullptr && *shape != t.shape) {
    std::string want, got;
    for (auto d : *shape) want += std::to_string(d) + ",";
    for (auto d : t.shape) got += std::to_string(d) + ",";
    throw ModelFileError("tensor \"" + t.name + "\" has shape [" + got + "], expected [" +
                         want + "]");
  }
}

float as_float(const Json& j, const char* what) { return static_cast<float>(j.as_double(what)); }

Schedule schedule_from(const Json& j) {
  Schedule s;
  for (size_t i = 0; i < j.keys().size(); ++i) {
    const std::string& k = j.keys()[i];
    const Json& v = j.values()[i];
    if (k == "kind") s.kind = schedule_from_string(v.as_string("schedule.kind"));
    else if (k == "lr") s.lr = as_float(v, "schedule.lr");
    else if (k == "gamma") s.gamma = as_float(v, "schedule.gamma");
    else if (k == "step_size") s.step_size = v.as_int("schedule.step_size");
    else if (k == "power") s.power = as_float(v, "schedule.power");
    else if (k == "t_max") s.t_max = v.as_int("schedule.t_max");
    else if (k == "min_lr") s.min_lr = as_float(v, "schedule.min_lr");
    else if (k == "warmup_steps") s.warmup_steps = v.as_int("schedule.warmup_steps");
    else if (k == "warmup_start") s.warmup_start = as_float(v, "schedule.warmup_start");
    else throw ModelFileError("unknown schedule setting \"" + k +
                              "\" (written by a newer ducklearn?)");
  }
  return s;
}

OptimizerConfig optimizer_from(const Json& j) {
  OptimizerConfig c;
  for (size_t i = 0; i < j.keys().size(); ++i) {
    const std::string& k = j.keys()[i];
    const Json& v = j.values()[i];
    if (k == "kind") c.kind = optimizer_from_string(v.as_string("optimizer.kind"));
    else if (k == "schedule") c.schedule = schedule_from(v);
    else if (k == "momentum") c.momentum = as_float(v, "optimizer.momentum");
    else if (k == "nesterov") c.nesterov = v.as_bool("optimizer.nesterov");
    else if (k == "beta1") c.beta1 = as_float(v, "optimizer.beta1");
    else if (k == "beta2") c.beta2 = as_float(v, "optimizer.beta2");
    else if (k == "rho") c.rho = as_float(v, "optimizer.rho");
    else if (k == "eps") c.eps = as_float(v, "optimizer.eps");
    else if (k == "initial_accumulator") c.initial_accumulator = as_float(v, "initial_accumulator");
    else if (k == "l2") c.l2 = as_float(v, "optimizer.l2");
    else if (k == "weight_decay") c.weight_decay = as_float(v, "optimizer.weight_decay");
    else if (k == "clip_norm") c.clip_norm = as_float(v, "optimizer.clip_norm");
    else if (k == "hypergradient") c.hypergradient = as_float(v, "optimizer.hypergradient");
    else if (k == "steps" || k == "size" || k == "slots" || k == "lr_scale" ||
               k == "hypergradient_lr") {
      continue;  // state, read separately
    } else {
      throw ModelFileError("unknown optimizer setting \"" + k +
                           "\" (written by a newer ducklearn?)");
    }
  }
  c.validate();
  return c;
}

std::string task_name(Task t) {
  switch (t) {
    case Task::Binary: return "binary";
    case Task::MultiClass: return "multiclass";
    default: return "regression";
  }
}

void check_manifest_tensors(const SafetensorsFile& f, const Json& manifest, bool verify) {
  const Json& table = manifest.at("tensors", "manifest");
  if (!table.is_object()) throw ModelFileError("manifest \"tensors\" must be an object");
  if (table.keys().size() != f.tensors().size()) {
    throw ModelFileError("the file holds " + std::to_string(f.tensors().size()) +
                         " tensors but the manifest lists " +
                         std::to_string(table.keys().size()));
  }
  for (size_t i = 0; i < table.keys().size(); ++i) {
    const std::string& name = table.keys()[i];
    const Json& spec = table.values()[i];
    if (!f.has(name)) throw ModelFileError("tensor \"" + name + "\" is missing from the file");
    const TensorInfo& t = f.tensor(name);
    if (spec.at("dtype", "tensor entry").as_string("dtype") != to_string(t.dtype)) {
      throw ModelFileError("tensor \"" + name + "\" dtype does not match the manifest");
    }
    std::vector<int64_t> shape;
    for (const Json& d : spec.at("shape", "tensor entry").as_array("shape")) {
      shape.push_back(d.as_int("shape entry"));
    }
    check_shape(t, &shape);
    if (verify) {
      const std::string& want = spec.at("sha256", "tensor entry").as_string("sha256");
      if (sha256_hex(f.data(t), static_cast<size_t>(t.end - t.begin)) != want) {
        throw ModelFileError("checksum mismatch for tensor \"" + name +
                             "\": the file is corrupt (or was modified after it was written)");
      }
    }
  }
}

LoadedModel build(const SafetensorsFile& f, const LoadOptions& opt) {
  LoadedModel out;
  out.manifest = manifest_from_metadata(f.metadata());
  const Json& m = out.manifest;
  out.model_type = m.at("model_type", "manifest").as_string("model_type");
  check_manifest_tensors(f, m, opt.verify_checksums);
  const Json& core = m.at("core", "manifest");
  if (core.is_null()) {
    throw ModelFileError("model type " + out.model_type + " has no C++ loader (no \"core\" "
                         "section); C++ hosts load the Sequential models of ducklearn.linear "
                         "and ducklearn.nn");
  }
  const int64_t n_inputs = core.at("n_inputs", "core").as_int("n_inputs");
  const float alpha = as_float(core.at("leaky_alpha", "core"), "leaky_alpha");
  std::vector<int64_t> widths;
  std::vector<Activation> acts;
  int64_t prev = n_inputs;
  for (const Json& L : core.at("layers", "core").as_array("core.layers")) {
    const int64_t in = L.at("in", "layer").as_int("layer.in");
    const int64_t o = L.at("out", "layer").as_int("layer.out");
    if (in != prev) throw ModelFileError("layer input widths do not chain");
    widths.push_back(o);
    acts.push_back(activation_from_string(L.at("activation", "layer").as_string("activation")));
    prev = o;
  }
  if (widths.empty()) throw ModelFileError("core.layers is empty");
  Sequential model(n_inputs, widths, acts, alpha);
  if (const Json* flat = m.find("flat")) {
    if (const Json* params = flat->find("params")) {
      if (params->at("size", "flat.params").as_int("flat.params.size") != model.n_params()) {
        throw ModelFileError("flat parameter size does not match the layers");
      }
    }
  }
  for (size_t i = 0; i < model.layers().size(); ++i) {
    const DenseLayer& L = model.layers()[i];
    const std::vector<int64_t> wshape{L.out, L.in}, bshape{L.out};
    const auto W = f.floats("layers." + std::to_string(i) + ".weight", &wshape);
    const auto b = f.floats("layers." + std::to_string(i) + ".bias", &bshape);
    std::copy(W.begin(), W.end(), model.params() + L.w_offset);
    std::copy(b.begin(), b.end(), model.params() + L.b_offset);
  }
  const Json& loss_j = core.at("loss", "core");
  LossSpec loss;
  loss.kind = loss_from_string(loss_j.at("kind", "loss").as_string("loss.kind"));
  loss.delta = as_float(loss_j.at("delta", "loss"), "loss.delta");
  loss.tau = as_float(loss_j.at("tau", "loss"), "loss.tau");
  const Json& opt_j = core.at("optimizer", "core");
  const OptimizerConfig oc = optimizer_from(opt_j);
  const bool standardize = core.at("standardize", "core").as_bool("standardize");
  out.learner = std::make_unique<Learner>(std::move(model), loss, oc, standardize);
  Learner& learner = *out.learner;
  out.task = task_name(learner.task());
  if (core.at("task", "core").as_string("task") != out.task) {
    throw ModelFileError("core.task does not match the loss and output width");
  }
  if (standardize) {
    const int64_t d = learner.n_inputs();
    const std::vector<int64_t> shape{d};
    const auto count = f.doubles("scaler.count", &shape);
    const auto mean = f.doubles("scaler.mean", &shape);
    const auto m2 = f.doubles("scaler.m2", &shape);
    const auto mn = f.floats("scaler.min", &shape);
    const auto mx = f.floats("scaler.max", &shape);
    learner.scaler()->load(count.data(), mean.data(), m2.data(), mn.data(), mx.data());
  }
  const int64_t steps = opt_j.at("steps", "optimizer").as_int("optimizer.steps");
  const int64_t size = opt_j.at("size", "optimizer").as_int("optimizer.size");
  if (size != 0 && size != learner.model().n_params()) {
    throw ModelFileError("optimizer state is sized for " + std::to_string(size) +
                         " parameters, the model has " +
                         std::to_string(learner.model().n_params()));
  }
  std::vector<float> state;
  const std::vector<int64_t> slot_shape{size};
  for (const Json& slot : opt_j.at("slots", "optimizer").as_array("optimizer.slots")) {
    const auto s = f.floats("optimizer." + slot.as_string("slot name"), &slot_shape);
    state.insert(state.end(), s.begin(), s.end());
  }
  learner.optimizer().load_state(steps, size, state.data(), static_cast<int64_t>(state.size()));
  // Rates adapted while learning (plateau scaling, hypergradient descent): without them the
  // next steps would differ from the ones Python would take.
  if (const Json* v = opt_j.find("lr_scale")) {
    learner.optimizer().set_lr_scale(as_float(*v, "optimizer.lr_scale"));
  }
  if (const Json* v = opt_j.find("hypergradient_lr")) {
    learner.optimizer().set_hypergradient_lr(as_float(*v, "optimizer.hypergradient_lr"));
  }
  if (f.has("ewc.anchor") || f.has("ewc.fisher")) {
    const Json* lambda = core.find("ewc_lambda");
    if (lambda == nullptr) throw ModelFileError("EWC tensors without core.ewc_lambda");
    const std::vector<int64_t> shape{learner.model().n_params()};
    const auto anchor = f.floats("ewc.anchor", &shape);
    const auto fisher = f.floats("ewc.fisher", &shape);
    learner.load_ewc(as_float(*lambda, "ewc_lambda"), anchor.data(), fisher.data(),
                     learner.model().n_params());
  }
  if (f.has("average.params")) {
    const Json* avg = core.find("average");
    if (avg == nullptr) throw ModelFileError("average.params without core.average");
    const std::vector<int64_t> shape{learner.model().n_params()};
    const auto params = f.floats("average.params", &shape);
    learner.load_average(as_float(avg->at("decay", "core.average"), "average.decay"),
                         avg->at("steps", "core.average").as_int("average.steps"),
                         params.data(), learner.model().n_params());
  }
  learner.set_examples_seen(core.at("examples_seen", "core").as_int("examples_seen"));
  if (const Json* state_j = m.find("state")) {
    if (const Json* contract = state_j->find("contract")) {
      if (const Json* names = contract->find("feature_names")) {
        for (const Json& n : names->as_array("feature_names")) {
          out.feature_names.push_back(n.as_string("feature name"));
        }
      }
    }
  }
  return out;
}

}  // namespace

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64:
    case DType::I64: return 8;
    case DType::F32:
    case DType::I32: return 4;
    default: return 1;
  }
}

const char* to_string(DType t) {
  switch (t) {
    case DType::F64: return "F64";
    case DType::F32: return "F32";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    default: return "U8";
  }
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

SafetensorsFile SafetensorsFile::read(const std::string& path) {
  try {
    return parse(read_all(path));
  } catch (const ModelFileError& e) {
    throw ModelFileError(path + ": " + e.what());
  }
}

SafetensorsFile SafetensorsFile::parse(std::vector<uint8_t> bytes) {
  if (!little_endian_host()) {
    throw ModelFileError("model files are little-endian; big-endian hosts are not supported");
  }
  SafetensorsFile f;
  const uint64_t n = header_length(bytes.data(), bytes.size());
  if (n > bytes.size() - 8) {
    throw ModelFileError("file is truncated: the header says " + std::to_string(n) +
                         " bytes, " + std::to_string(bytes.size() - 8) + " follow");
  }
  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8),
                              static_cast<size_t>(n));
  const Json header = Json::parse(text);
  if (!header.is_object()) throw ModelFileError("the safetensors header must be a JSON object");
  f.data_start_ = static_cast<size_t>(8 + n);
  const uint64_t data_size = bytes.size() - f.data_start_;
  for (size_t i = 0; i < header.keys().size(); ++i) {
    const std::string& name = header.keys()[i];
    const Json& v = header.values()[i];
    if (name == "__metadata__") {
      if (!v.is_object()) throw ModelFileError("__metadata__ must be an object");
      for (const Json& s : v.values()) s.as_string("__metadata__ value");
      f.metadata_ = v;
      continue;
    }
    if (!v.is_object() || v.keys().size() != 3) {
      throw ModelFileError("tensor \"" + name + "\" must be {dtype, shape, data_offsets}");
    }
    TensorInfo t;
    t.name = name;
    t.dtype = dtype_from(v.at("dtype", "tensor").as_string("dtype"));
    const auto& shape = v.at("shape", "tensor").as_array("shape");
    if (shape.size() > kMaxDims) throw ModelFileError("tensor \"" + name + "\" has too many dims");
    uint64_t numel = 1;
    for (const Json& d : shape) {
      const int64_t dim = d.as_int("shape entry");
      if (dim < 0) throw ModelFileError("tensor \"" + name + "\" has a negative dimension");
      t.shape.push_back(dim);
      numel = checked_mul(numel, static_cast<uint64_t>(dim), "tensor \"" + name + "\" size");
    }
    const auto& off = v.at("data_offsets", "tensor").as_array("data_offsets");
    if (off.size() != 2) throw ModelFileError("data_offsets must be [begin, end]");
    const int64_t b = off[0].as_int("data_offsets[0]"), e = off[1].as_int("data_offsets[1]");
    if (b < 0 || e < b || static_cast<uint64_t>(e) > data_size) {
      throw ModelFileError("tensor \"" + name + "\" has data_offsets outside the data (" +
                           std::to_string(b) + ", " + std::to_string(e) + " of " +
                           std::to_string(data_size) + " bytes)");
    }
    t.begin = static_cast<uint64_t>(b);
    t.end = static_cast<uint64_t>(e);
    const uint64_t nbytes = checked_mul(numel, dtype_size(t.dtype), "tensor \"" + name + "\"");
    if (t.end - t.begin != nbytes) {
      throw ModelFileError("tensor \"" + name + "\" data size does not match its shape");
    }
    f.tensors_.push_back(std::move(t));
  }
  std::stable_sort(f.tensors_.begin(), f.tensors_.end(),
                   [](const TensorInfo& a, const TensorInfo& b) { return a.begin < b.begin; });
  // The data section must be tiled exactly: no overlap (two tensors sharing bytes) and no
  // holes (bytes nothing describes), as the safetensors format requires.
  uint64_t cursor = 0;
  for (const auto& t : f.tensors_) {
    if (t.begin != cursor) {
      throw ModelFileError("tensor \"" + t.name + "\" overlaps another or leaves a gap");
    }
    cursor = t.end;
  }
  if (cursor != data_size) {
    throw ModelFileError("the data section has " + std::to_string(data_size - cursor) +
                         " bytes no tensor describes");
  }
  f.bytes_ = std::move(bytes);
  return f;
}

bool SafetensorsFile::has(std::string_view name) const {
  for (const auto& t : tensors_) {
    if (t.name == name) return true;
  }
  return false;
}

const TensorInfo& SafetensorsFile::tensor(std::string_view name) const {
  for (const auto& t : tensors_) {
    if (t.name == name) return t;
  }
  throw ModelFileError("no tensor \"" + std::string(name) + "\" in the file");
}

std::vector<float> SafetensorsFile::floats(std::string_view name,
                                           const std::vector<int64_t>* shape) const {
  const TensorInfo& t = tensor(name);
  if (t.dtype != DType::F32) throw ModelFileError("tensor \"" + t.name + "\" must be F32");
  check_shape(t, shape);
  std::vector<float> out(static_cast<size_t>(t.numel()));
  if (!out.empty()) std::memcpy(out.data(), data(t), out.size() * sizeof(float));
  return out;
}

std::vector<double> SafetensorsFile::doubles(std::string_view name,
                                             const std::vector<int64_t>* shape) const {
  const TensorInfo& t = tensor(name);
  if (t.dtype != DType::F64) throw ModelFileError("tensor \"" + t.name + "\" must be F64");
  check_shape(t, shape);
  std::vector<double> out(static_cast<size_t>(t.numel()));
  if (!out.empty()) std::memcpy(out.data(), data(t), out.size() * sizeof(double));
  return out;
}

LoadedModel load_model(std::vector<uint8_t> bytes, const LoadOptions& options) {
  const SafetensorsFile f = SafetensorsFile::parse(std::move(bytes));
  try {
    return build(f, options);
  } catch (const std::invalid_argument& e) {
    // The core refused a value (an unknown activation, a bad optimizer setting...).
    throw ModelFileError(std::string("the model file describes an invalid model: ") + e.what());
  }
}

LoadedModel load_model(const std::string& path, const LoadOptions& options) {
  try {
    return load_model(read_all(path), options);
  } catch (const ModelFileError& e) {
    throw ModelFileError(path + ": " + e.what());
  }
}

Json read_manifest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ModelFileError("cannot open " + path);
  uint8_t head[8];
  in.read(reinterpret_cast<char*>(head), 8);
  try {
    const uint64_t n = header_length(head, static_cast<size_t>(in.gcount()));
    std::string text(static_cast<size_t>(n), '\0');
    in.read(text.data(), static_cast<std::streamsize>(n));
    if (static_cast<uint64_t>(in.gcount()) != n) throw ModelFileError("file is truncated");
    const Json header = Json::parse(text);
    const Json* meta = header.find("__metadata__");
    if (meta == nullptr || !meta->is_object()) {
      throw ModelFileError("not a ducklearn model file: no __metadata__");
    }
    return manifest_from_metadata(*meta);
  } catch (const ModelFileError& e) {
    throw ModelFileError(path + ": " + e.what());
  }
}

}  // namespace ducklearn::io
