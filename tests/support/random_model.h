#pragma once

// A LongNetModel with random weights, built in memory from a ModelConfig (no files): for tests of the
// graph, the KV cache and the engine that need a real model but no particular one. Weights follow the
// names and shapes of expected_tensors(config), with magnitudes that keep activations O(1).

#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "longnet/model/config.h"
#include "longnet/model/model.h"
#include "longnet/model/weights.h"

namespace longnet::testing {

// `n` ids drawn uniformly from the byte tokenizer's 259 (small_config's vocabulary).
inline std::vector<int32_t> random_ids(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(n);
  for (int32_t& id : ids)
    id = static_cast<int32_t>(rng() % 259);
  return ids;
}

// A decoder (or other type) of the given sizes with the byte tokenizer's 259 ids.
inline model::ModelConfig small_config(model::ModelType type, int64_t embed_dim, int64_t heads,
                                       int64_t layers, std::vector<kernels::DilatedBranch> branches,
                                       bool xpos = true) {
  model::ModelConfig c;
  c.model_type = type;
  c.vocab_size = 259;
  const model::StackConfig stack{embed_dim, heads, 2 * embed_dim, layers};
  if (type != model::ModelType::kEncoder) c.decoder = stack;
  if (type != model::ModelType::kDecoder) c.encoder = stack;
  c.branches = std::move(branches);
  c.subln = true;
  c.xpos_rel_pos = xpos;
  c.share_decoder_input_output_embed = true;
  c.bos_id = 256;
  c.eos_id = 257;
  c.pad_id = 258;
  c.tokenizer.type = "byte";
  return c;
}

// `edit`, when given, may change each tensor (name, elements) after it is filled.
inline std::unique_ptr<model::LongNetModel> random_model(
    const model::ModelConfig& config, model::Allocator& allocator, uint32_t seed = 1,
    const std::function<void(const std::string&, std::span<float>)>& edit = nullptr) {
  std::mt19937 rng(seed);
  model::ModelWeights weights;
  for (const model::ExpectedTensor& want : model::expected_tensors(config)) {
    auto t = model::Tensor::empty(want.shape, model::DType::kF32, allocator);
    if (!t.ok()) return nullptr;
    float* p = t->data<float>();
    const int64_t n = t->numel();
    const std::string& name = want.name;
    const auto ends_with = [&](const char* s) { return name.size() >= std::strlen(s) && name.ends_with(s); };
    const bool is_norm = name.find("layer_norm") != std::string::npos ||
                         name.find("_ln.") != std::string::npos ||
                         name.find("layernorm") != std::string::npos;
    if (ends_with("xpos.scale")) {
      const double d = 2.0 * static_cast<double>(n);  // torchscale's default: (2j + 0.4 D) / (1.4 D)
      for (int64_t j = 0; j < n; ++j)
        p[j] = static_cast<float>((2.0 * static_cast<double>(j) + 0.4 * d) / (1.4 * d));
    } else if (is_norm && ends_with(".weight")) {
      std::uniform_real_distribution<float> u(0.9f, 1.1f);
      for (int64_t i = 0; i < n; ++i)
        p[i] = u(rng);
    } else if (ends_with(".bias")) {
      std::normal_distribution<float> g(0.0f, 0.02f);
      for (int64_t i = 0; i < n; ++i)
        p[i] = g(rng);
    } else {  // (out, in) matrices and embeddings
      const float fan_in = static_cast<float>(want.shape.back());
      std::normal_distribution<float> g(0.0f, 1.0f / std::sqrt(fan_in));
      for (int64_t i = 0; i < n; ++i)
        p[i] = g(rng);
    }
    if (edit) edit(name, std::span<float>(p, static_cast<size_t>(n)));
    weights.insert(want.name, *std::move(t));
  }
  auto m = model::LongNetModel::assemble(model::ModelDirectory{"", config, std::move(weights)}, allocator);
  return m.ok() ? *std::move(m) : nullptr;
}

}  // namespace longnet::testing
