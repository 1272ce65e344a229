#include "longnet/model/weights.h"

#include <array>
#include <bit>
#include <cassert>
#include <cstring>
#include <set>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "json_util.h"
#include "longnet/kernels/convert.h"
#include "longnet/kernels/gemm.h"

namespace longnet::model {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

namespace {

using json_util::quote;
using json_util::to_absl;

constexpr size_t kMaxProblemsShown = 5;

// The tensors of one stack (MODEL_FORMAT.md), every name prefixed with `prefix` ("", "encoder.", "decoder.").
void append_stack(std::vector<ExpectedTensor>& out, const ModelConfig& config, const StackConfig& stack,
                  const std::string& prefix, bool cross_attention, bool output_projection) {
  const int64_t v = config.vocab_size;
  const int64_t e = stack.embed_dim;
  const int64_t f = stack.ffn_embed_dim;
  const auto add = [&](const std::string& name, Dims shape) {
    out.push_back({prefix + name, std::move(shape)});
  };
  const auto add_layer_norm = [&](const std::string& name, int64_t dim) {
    add(name + ".weight", {dim});
    add(name + ".bias", {dim});
  };
  const auto add_attention = [&](const std::string& name) {
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
      add(absl::StrCat(name, ".", proj, ".weight"), {e, e});
      add(absl::StrCat(name, ".", proj, ".bias"), {e});
    }
  };

  add("embed_tokens.weight", {v, e});
  for (int64_t i = 0; i < stack.layers; ++i) {
    const std::string layer = absl::StrCat("layers.", i, ".");
    add_attention(layer + "self_attn");
    if (config.subln) add_layer_norm(layer + "self_attn.inner_attn_ln", e);
    if (config.xpos_rel_pos) add(layer + "self_attn.xpos.scale", {stack.head_dim() / 2});
    add_layer_norm(layer + "self_attn_layer_norm", e);
    if (cross_attention) {
      add_attention(layer + "encoder_attn");
      add_layer_norm(layer + "encoder_attn_layer_norm", e);
    }
    add(layer + "ffn.fc1.weight", {f, e});
    add(layer + "ffn.fc1.bias", {f});
    add(layer + "ffn.fc2.weight", {e, f});
    add(layer + "ffn.fc2.bias", {e});
    if (config.subln) add_layer_norm(layer + "ffn.ffn_layernorm", f);
    add_layer_norm(layer + "final_layer_norm", e);
  }
  add_layer_norm("layer_norm", e);
  if (output_projection) add("output_projection.weight", {v, e});
}

bool has(std::string_view s, std::string_view part) {
  return s.find(part) != std::string_view::npos;
}

// Why a tensor may be missing or unexpected: the config switch that decides it, if any, so the reader knows
// whether the file or the config is at fault.
std::string hint(std::string_view name, const ModelConfig& config) {
  if (has(name, ".inner_attn_ln.") || has(name, ".ffn_layernorm.")) {
    return absl::StrCat(" (config subln is ", config.subln ? "true" : "false",
                        config.subln ? "; true is torchscale's default when the key is absent)" : ")");
  }
  if (name.ends_with(".xpos.scale")) {
    return absl::StrCat(" (config xpos_rel_pos is ", config.xpos_rel_pos ? "true" : "false", ")");
  }
  if (name.ends_with("output_projection.weight")) {
    if (config.model_type == ModelType::kEncoder) return " (a longnet_encoder has no output layer)";
    return absl::StrCat(" (config share_decoder_input_output_embed is ",
                        config.share_decoder_input_output_embed ? "true" : "false", ")");
  }
  return "";
}

std::string tensor_type(DType dtype, absl::Span<const int64_t> shape) {
  return absl::StrCat(to_absl(safetensors_dtype_name(dtype)), " ", dims_to_string(shape));
}

// Every disagreement between the file and the config, in the order of expected_tensors, then the tensors the
// config does not know.
std::vector<std::string> find_problems(const SafetensorsFile& file, const ModelConfig& config,
                                       const std::vector<ExpectedTensor>& expected) {
  std::vector<std::string> problems;
  std::set<std::string_view> expected_names;
  for (const ExpectedTensor& want : expected) {
    expected_names.insert(want.name);
    const SafetensorsEntry* found = file.find(want.name);
    const std::string key = absl::StrCat("key ", quote(want.name), ": ");
    if (found == nullptr) {
      problems.push_back(absl::StrCat(key, "missing (expected ", tensor_type(config.torch_dtype, want.shape),
                                      ")", hint(want.name, config)));
      continue;
    }
    if (found->shape != want.shape) {
      problems.push_back(absl::StrCat(key, "shape ", dims_to_string(found->shape), ", expected ",
                                      dims_to_string(want.shape)));
    }
    if (found->dtype != config.torch_dtype) {
      problems.push_back(absl::StrCat(key, "dtype ", to_absl(safetensors_dtype_name(found->dtype)),
                                      ", expected ", to_absl(safetensors_dtype_name(config.torch_dtype)),
                                      " (config torch_dtype \"", dtype_name(config.torch_dtype), "\")"));
    }
  }
  for (const auto& [name, entry] : file.header().tensors) {
    if (expected_names.contains(name)) continue;
    problems.push_back(absl::StrCat(
        "key ", quote(name), ": unexpected tensor (", tensor_type(entry.dtype, entry.shape), ") not in a ",
        to_absl(model_type_name(config.model_type)), " with this config", hint(name, config)));
  }
  return problems;
}

// Converts n elements of `dtype` at `src` (any alignment: the format aligns nothing) to float32.
void convert_to_f32(std::span<const std::byte> src, DType dtype, float* dst, int64_t n) {
  if (n == 0) return;
  if (dtype == DType::kF32) {
    std::memcpy(dst, src.data(), static_cast<size_t>(n) * sizeof(float));
    return;
  }
  const auto convert = [dtype](const uint16_t* from, float* to, int64_t count) {
    dtype == DType::kF16 ? kernels::cpu::fp16_to_fp32(from, to, count)
                         : kernels::cpu::bf16_to_fp32(from, to, count);
  };
  if (reinterpret_cast<uintptr_t>(src.data()) % alignof(uint16_t) == 0) {
    convert(reinterpret_cast<const uint16_t*>(src.data()), dst, n);
    return;
  }
  // An odd header length leaves 16-bit data misaligned; convert through an aligned bounce buffer.
  std::array<uint16_t, 4096> chunk;
  for (int64_t done = 0; done < n;) {
    const int64_t count = std::min<int64_t>(n - done, static_cast<int64_t>(chunk.size()));
    std::memcpy(chunk.data(), src.data() + done * 2, static_cast<size_t>(count) * 2);
    convert(chunk.data(), dst + done, count);
    done += count;
  }
}

}  // namespace

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& config) {
  std::vector<ExpectedTensor> out;
  switch (config.model_type) {
    case ModelType::kDecoder:
      if (config.decoder) {
        append_stack(out, config, *config.decoder, "", /*cross_attention=*/false,
                     !config.share_decoder_input_output_embed);
      }
      break;
    case ModelType::kEncoder:
      if (config.encoder) append_stack(out, config, *config.encoder, "", false, /*output_projection=*/false);
      break;
    case ModelType::kEncoderDecoder:
      if (config.encoder) append_stack(out, config, *config.encoder, "encoder.", false, false);
      if (config.decoder) {
        append_stack(out, config, *config.decoder, "decoder.", /*cross_attention=*/true,
                     !config.share_decoder_input_output_embed);
      }
      break;
  }
  return out;
}

const Tensor& ModelWeights::get(std::string_view name) const {
  if (const Tensor* tensor = find(name)) return *tensor;
  assert(false && "ModelWeights::get: no tensor of that name");
  static const Tensor kEmpty;
  return kEmpty;
}

const Tensor* ModelWeights::find(std::string_view name) const {
  const auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

size_t ModelWeights::nbytes() const {
  size_t total = 0;
  for (const auto& [name, tensor] : tensors_)
    total += tensor.nbytes();
  return total;
}

absl::Status ModelWeights::pack_panels(std::string_view name, Allocator& allocator) {
  if (panels_.contains(name)) return absl::OkStatus();
  const Tensor* w = find(name);
  if (w == nullptr || w->rank() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("pack_panels: ", std::string(name), " is not a 2-D tensor of the model"));
  }
  const int64_t n = w->dim(0), k = w->dim(1);
  const int64_t shape[] = {kernels::panel_floats(n, k)};
  absl::StatusOr<Tensor> panels = Tensor::empty(shape, DType::kF32, allocator);
  if (!panels.ok()) return panels.status();
  kernels::pack_panels(w->data<float>(), n, k, k, panels->data<float>());
  panels_.emplace(std::string(name), *std::move(panels));
  return absl::OkStatus();
}

const float* ModelWeights::panels(std::string_view name) const {
  const auto it = panels_.find(name);
  return it == panels_.end() ? nullptr : it->second.data<float>();
}

void ModelWeights::insert(std::string name, Tensor tensor) {
  tensors_.insert_or_assign(std::move(name), std::move(tensor));
}

absl::StatusOr<ModelWeights> load_model_weights(const SafetensorsFile& file, const ModelConfig& config,
                                                Allocator& allocator) {
  const std::vector<ExpectedTensor> expected = expected_tensors(config);
  const std::vector<std::string> problems = find_problems(file, config, expected);
  if (!problems.empty()) {
    const size_t shown = std::min(problems.size(), kMaxProblemsShown);
    std::string message = problems.size() == 1
                              ? file.name() + ": "
                              : absl::StrCat(file.name(), ": ", problems.size(), " problems: ");
    absl::StrAppend(&message,
                    absl::StrJoin(problems.begin(), problems.begin() + static_cast<ptrdiff_t>(shown), "; "));
    if (problems.size() > shown) absl::StrAppend(&message, "; and ", problems.size() - shown, " more");
    return absl::InvalidArgumentError(message);
  }

  ModelWeights weights;
  for (const ExpectedTensor& want : expected) {
    const SafetensorsEntry& entry = *file.find(want.name);
    absl::StatusOr<Tensor> tensor = Tensor::empty(want.shape, DType::kF32, allocator);
    if (!tensor.ok()) {
      return absl::Status(
          tensor.status().code(),
          absl::StrCat(file.name(), ": key ", quote(want.name), ": cannot allocate ",
                       tensor_type(DType::kF32, want.shape), ": ", tensor.status().message()));
    }
    convert_to_f32(file.data(entry), entry.dtype, tensor->data<float>(), tensor->numel());
    weights.insert(want.name, *std::move(tensor));
  }
  return weights;
}

absl::StatusOr<ModelWeights> load_model_weights(const std::filesystem::path& file, const ModelConfig& config,
                                                Allocator& allocator) {
  absl::StatusOr<SafetensorsFile> opened = SafetensorsFile::open(file);
  if (!opened.ok()) return opened.status();
  return load_model_weights(*opened, config, allocator);
}

absl::StatusOr<ModelDirectory> load_model_directory(const std::filesystem::path& dir, Allocator& allocator) {
  std::error_code error;
  const auto status = std::filesystem::status(dir, error);
  if (!std::filesystem::exists(status)) {
    return absl::NotFoundError(absl::StrCat(dir.string(), ": model directory not found"));
  }
  if (!std::filesystem::is_directory(status)) {
    return absl::InvalidArgumentError(
        absl::StrCat(dir.string(), ": not a directory (expected a model directory)"));
  }
  absl::StatusOr<ModelConfig> config = load_model_config(dir / "config.json");
  if (!config.ok()) return config.status();
  if (!config->tokenizer.file.empty()) {
    const std::filesystem::path tokenizer = dir / config->tokenizer.file;
    if (!std::filesystem::is_regular_file(tokenizer, error)) {
      return absl::NotFoundError(absl::StrCat(
          tokenizer.string(), ": not found (the tokenizer file named by key \"tokenizer.file\" of ",
          (dir / "config.json").string(), ")"));
    }
  }
  absl::StatusOr<ModelWeights> weights = load_model_weights(dir / "model.safetensors", *config, allocator);
  if (!weights.ok()) return weights.status();
  return ModelDirectory{dir, *std::move(config), *std::move(weights)};
}

}  // namespace longnet::model
