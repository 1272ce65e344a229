#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "longnet/model/config.h"
#include "longnet/model/memory_pool.h"
#include "longnet/model/safetensors.h"
#include "longnet/model/tensor.h"

namespace longnet::model {

// One tensor model.safetensors must hold for a config (MODEL_FORMAT.md's table), and its shape.
struct ExpectedTensor {
  std::string name;
  Dims shape;
};
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& config);

// The weights of a model, every tensor contiguous float32 on the CPU (converted from F16/BF16 at load),
// in blocks of the allocator they were loaded with.
class ModelWeights {
 public:
  // The tensor called `name`. Names are validated at load, so asking for one that the config implies is
  // always answered; asking for any other name is a programming error (asserts, then returns an empty one).
  const Tensor& get(std::string_view name) const;
  const Tensor* find(std::string_view name) const;
  size_t size() const { return tensors_.size(); }
  size_t nbytes() const;  // the tensors' bytes (panels not included)

  void insert(std::string name, Tensor tensor);  // used by the loader and by tests that build weights

  // The 2-D tensor `name` repacked for kernels::cpu::matmul_panels (kernels::pack_panels), in a block of
  // `allocator`; once per name. A Linear's products read its panels, the CUDA graph and the embedding
  // lookups the tensor itself.
  absl::Status pack_panels(std::string_view name, Allocator& allocator);
  // Its panels: null when pack_panels(name) has not run.
  const float* panels(std::string_view name) const;

 private:
  std::map<std::string, Tensor, std::less<>> tensors_;
  std::map<std::string, Tensor, std::less<>> panels_;
};

// Reads `file` (memory-mapped), checks it against expected_tensors(config) (missing, unexpected, shape,
// dtype = config.torch_dtype), converts every tensor to float32. Errors name the file, the key and what
// was wrong.
absl::StatusOr<ModelWeights> load_model_weights(const std::filesystem::path& file, const ModelConfig& config,
                                                Allocator& allocator);
// The same for a file already opened (or borrowed from memory: tests, the fuzzer). At most 5 problems are
// listed in one message ("<file>: 7 problems: key "a": missing ...; ...; and 2 more"), missing and mismatched
// tensors in expected_tensors() order first, then unexpected ones by name. Nothing is allocated until the
// whole file has been checked.
absl::StatusOr<ModelWeights> load_model_weights(const SafetensorsFile& file, const ModelConfig& config,
                                                Allocator& allocator);

// A model directory: config.json + model.safetensors (+ the tokenizer file the config names). A missing
// directory or file is NotFound naming its path; the tokenizer file is only checked to exist here (the
// tokenizer module reads it).
struct ModelDirectory {
  std::filesystem::path path;
  ModelConfig config;
  ModelWeights weights;
};
absl::StatusOr<ModelDirectory> load_model_directory(const std::filesystem::path& dir, Allocator& allocator);

}  // namespace longnet::model
