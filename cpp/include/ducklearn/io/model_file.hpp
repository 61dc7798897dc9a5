#pragma once
/**
 * Reading ducklearn model files (written by Python's ducklearn.modelfile.save_model) and
 * any safetensors file.
 *
 * A model file is a safetensors file: 8 bytes of little-endian header length, a JSON header
 * that maps tensor names to {dtype, shape, data_offsets} plus a "__metadata__" object of
 * strings, then the tensor bytes. ducklearn keeps its manifest (JSON text) in
 * __metadata__["ducklearn"]: format and format_version, model_type, a "core" section that
 * describes the Learner (layers, activations, loss, optimizer, standardization), the
 * SHA-256 of every tensor, metrics, lineage. Parameters are stored per layer:
 * "layers.{i}.weight" (out × in, float32, row-major) and "layers.{i}.bias" (out); the
 * scaler as "scaler.count|mean|m2" (float64) and "scaler.min|max" (float32); optimizer slots
 * as "optimizer.{slot}" (float32, same layout as the flat parameters); elastic weight
 * consolidation, when the model has it, as "ewc.anchor" and "ewc.fisher". A fitted feature
 * pipeline saved with the model ("features.*") is validated and left to Python.
 *
 * Every check the Python loader makes is made here too: header bounds, offsets that tile
 * the data exactly, dtypes and shapes against the manifest, checksums, format version.
 */
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ducklearn/export.hpp"
#include "ducklearn/io/json.hpp"
#include "ducklearn/stream/learner.hpp"

namespace ducklearn::io {

/** The model-file format version this library reads (and every older one). */
inline constexpr int64_t kModelFormatVersion = 1;

enum class DType { F64, F32, I64, I32, U8 };

/** Bytes per element. */
DUCKLEARN_EXPORT size_t dtype_size(DType t);
/** "F32", "F64", ... as safetensors spells them. */
DUCKLEARN_EXPORT const char* to_string(DType t);

/** One tensor of a safetensors file; begin/end are byte offsets into the data section. */
struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
  int64_t numel() const;
};

/** A parsed, validated safetensors file held in memory. */
class DUCKLEARN_EXPORT SafetensorsFile {
 public:
  /** Reads and validates a file. Throws ModelFileError (also for I/O errors). */
  static SafetensorsFile read(const std::string& path);
  /** Validates bytes already in memory (takes ownership). Throws ModelFileError. */
  static SafetensorsFile parse(std::vector<uint8_t> bytes);

  /** Tensors in data order. */
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  bool has(std::string_view name) const;
  /** Throws ModelFileError "no tensor <name>". */
  const TensorInfo& tensor(std::string_view name) const;
  /** __metadata__ (an object of strings), or a null Json when absent. */
  const Json& metadata() const { return metadata_; }

  /** Raw bytes of a tensor (end - begin bytes, little-endian). */
  const uint8_t* data(const TensorInfo& t) const { return bytes_.data() + data_start_ + t.begin; }
  /** Copies a tensor out, checking its dtype (F32 / F64) and, if given, its shape. */
  std::vector<float> floats(std::string_view name, const std::vector<int64_t>* shape = nullptr) const;
  std::vector<double> doubles(std::string_view name, const std::vector<int64_t>* shape = nullptr) const;

 private:
  std::vector<uint8_t> bytes_;
  size_t data_start_ = 0;
  std::vector<TensorInfo> tensors_;
  Json metadata_;
};

struct LoadOptions {
  bool verify_checksums = true;  ///< recompute every tensor's SHA-256 against the manifest
};

/** A model file turned back into a ready Learner: parameters, scaler, optimizer state with
 *  its adapted rates, EWC consolidation and example count, so it predicts and keeps learning
 *  exactly as the Python estimator it was saved from. */
struct DUCKLEARN_EXPORT LoadedModel {
  std::unique_ptr<Learner> learner;
  Json manifest;               ///< the whole ducklearn manifest
  std::string model_type;      ///< e.g. "ducklearn.nn.MLPClassifier"
  std::string task;            ///< "binary", "multiclass" or "regression"
  std::vector<std::string> feature_names;  ///< input columns in order (contract)
};

/** Loads a model file. Throws ModelFileError with what is wrong and what to do. */
DUCKLEARN_EXPORT LoadedModel load_model(const std::string& path, const LoadOptions& options = {});
/** The same from bytes in memory. */
DUCKLEARN_EXPORT LoadedModel load_model(std::vector<uint8_t> bytes, const LoadOptions& options = {});

/** The validated manifest alone (the header is parsed; tensor data is not checked). */
DUCKLEARN_EXPORT Json read_manifest(const std::string& path);

}  // namespace ducklearn::io
