#pragma once

// The tokenizer kinds load_tokenizer dispatches to (internal to longnet_model).

#include <cstdint>
#include <filesystem>
#include <memory>

#include "absl/status/statusor.h"
#include "longnet/model/config.h"
#include "longnet/model/tokenizer.h"

namespace longnet::model {

inline constexpr char kByteKind[] = "byte";
inline constexpr char kTiktokenKind[] = "tiktoken";

// bos/eos/pad of a config, each checked to lie in [0, vocab_size) (and vocab_size to fit int32 ids).
struct SpecialIds {
  int32_t bos = 0;
  int32_t eos = 0;
  int32_t pad = 0;
};
absl::StatusOr<SpecialIds> checked_special_ids(const ModelConfig& config);

absl::StatusOr<std::unique_ptr<Tokenizer>> make_byte_tokenizer(const ModelConfig& config);
absl::StatusOr<std::unique_ptr<Tokenizer>> load_tiktoken_tokenizer(const ModelConfig& config,
                                                                   const std::filesystem::path& model_dir);

}  // namespace longnet::model
