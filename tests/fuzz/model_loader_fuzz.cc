// libFuzzer target for everything a model directory feeds the loader: config.json, the safetensors header,
// and the two together through the weight checks and the fp16/bf16 conversion.
//
// Input layout: byte 0 chooses the target (its value mod 3), the rest is that target's input.
//   0: config.json text          -> parse_model_config, then expected_tensors of what it accepts
//   1: a whole safetensors file  -> parse_safetensors_header, then the invariants it promises
//   2: config.json, a NUL byte, a safetensors file (JSON text never holds a raw NUL)
//                                -> both parsers, then load_model_weights
// Any status is fine; a crash, a sanitizer report, a hang or a broken invariant (trap) is a finding.
// Seeds: tests/fuzz/corpus (tests/fuzz/make_corpus.py). Run: tests/fuzz/run_fuzz.sh.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "longnet/model/config.h"
#include "longnet/model/memory_pool.h"
#include "longnet/model/safetensors.h"
#include "longnet/model/weights.h"

namespace {

using longnet::model::ModelConfig;

void check(bool invariant) {
  if (!invariant) __builtin_trap();
}

// expected_tensors costs time linear in the layer count (up to 1024 per stack); past a few layers the fuzzer
// learns nothing new from it, so big configs skip it to keep executions fast.
bool small_enough(const ModelConfig& config) {
  int64_t layers = 0;
  if (config.encoder) layers += config.encoder->layers;
  if (config.decoder) layers += config.decoder->layers;
  return layers <= 8;
}

void fuzz_config(std::string_view text) {
  absl::StatusOr<ModelConfig> config = longnet::model::parse_model_config(text, "config.json");
  if (!config.ok()) {
    check(config.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  check(!config->branches.empty());
  check(config->bos_id >= 0 && config->bos_id < config->vocab_size);
  if (small_enough(*config)) {
    for (const auto& tensor : longnet::model::expected_tensors(*config)) {
      for (int64_t size : tensor.shape)
        check(size > 0);
    }
  }
}

void fuzz_safetensors(std::span<const std::byte> bytes) {
  absl::StatusOr<longnet::model::SafetensorsHeader> header =
      longnet::model::parse_safetensors_header(bytes, "model.safetensors");
  if (!header.ok()) {
    check(header.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  check(header->data_offset + header->data_size == bytes.size());
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, entry] : header->tensors) {
    check(entry.begin <= entry.end && entry.end <= header->data_size);
    check(entry.nbytes() == static_cast<uint64_t>(entry.numel()) * longnet::model::dtype_size(entry.dtype));
    if (entry.nbytes() > 0) ranges.emplace_back(entry.begin, entry.end);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    check(ranges[i].first >= ranges[i - 1].second);  // no byte belongs to two tensors
}

void fuzz_both(std::string_view config_text, std::span<const std::byte> file_bytes) {
  absl::StatusOr<ModelConfig> config = longnet::model::parse_model_config(config_text, "config.json");
  absl::StatusOr<longnet::model::SafetensorsFile> file =
      longnet::model::SafetensorsFile::from_bytes(file_bytes, "model.safetensors");
  if (!config.ok() || !file.ok() || !small_enough(*config)) return;
  longnet::model::MemoryPool pool(size_t{64} << 20);
  absl::StatusOr<longnet::model::ModelWeights> weights =
      longnet::model::load_model_weights(*file, *config, pool);
  if (!weights.ok()) {
    check(weights.status().code() == absl::StatusCode::kInvalidArgument ||
          weights.status().code() == absl::StatusCode::kResourceExhausted);
    return;
  }
  check(weights->size() == longnet::model::expected_tensors(*config).size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto as_bytes = [](std::string_view s) {
    return std::as_bytes(std::span<const char>(s.data(), s.size()));
  };
  switch (data[0] % 3) {
    case 0:
      fuzz_config(rest);
      break;
    case 1:
      fuzz_safetensors(as_bytes(rest));
      break;
    default: {
      const size_t split = rest.find('\0');
      if (split == std::string_view::npos) return 0;
      fuzz_both(rest.substr(0, split), as_bytes(rest.substr(split + 1)));
      break;
    }
  }
  return 0;
}
