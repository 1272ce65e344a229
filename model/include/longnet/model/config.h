#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "longnet/kernels/activation.h"
#include "longnet/kernels/dilated_schedule.h"
#include "longnet/model/dtype.h"

namespace longnet::model {

// config.json of a model directory (../shared/design/MODEL_FORMAT.md), validated: every field here holds a
// value the engine supports, or parsing failed with the file, the key and the value named.
//
// parse_model_config, key by key (every failure is InvalidArgument "<file>: key "<key>": <what>, <value>"):
//   required: model_type; vocab_size; {decoder,encoder}_{embed_dim,attention_heads,ffn_embed_dim,layers} of
//   the
//     stacks the type has (the other stack's keys are refused); segment_length and dilated_ratio (JSON lists
//     of equal length, positive ints: torchscale's string form "[2048,4096]" is refused with a hint).
//   defaults for absent keys are torchscale's (what a checkpoint trained without the key used), which differ
//     from this struct's initialisers for two keys: subln = true and no_scale_embedding = true. The others:
//     activation_fn "gelu", layernorm_eps 1e-5, xpos_rel_pos false, xpos_scale_base 512,
//     share_decoder_input_output_embed false, torch_dtype "float32" (torch's default dtype), tokenizer
//     {"type": "byte", "byte_offset": 0, "add_bos": true, "add_eos": false}, and for byte tokenizers bos_id,
//     eos_id, pad_id = byte_offset + 256, 257, 258 (required for subword tokenizers).
//   only one value accepted (absent is fine): *_normalize_before true (post-LN is refused), deepnorm false,
//     layernorm_embedding false, normalize_output true, share_all_embeddings false, no_output_layer (true for
//     longnet_encoder, false otherwise), multiway false, rel_pos_buckets / max_rel_pos / moe_freq /
//     moe_expert_count 0, use_xmoe false, and every key ending in "dropout" plus drop_path_rate: 0.
//   checked: heads divide embed_dim; head dim even when xpos_rel_pos; encoder_embed_dim == decoder_embed_dim
//     for longnet_encoder_decoder; bos/eos/pad inside the vocabulary and, for the byte tokenizer, outside its
//     256 byte ids; byte_offset + 256 <= vocab_size; a subword tokenizer's "file" is a relative path with no
//     ".." component. Sizes are bounded (vocab < 2^31, embed_dim <= 65536, ffn <= 2^20, layers <= 1024,
//     segment lengths and dilations <= 2^40, at most 64 branches) so no later size computation overflows.
//   ignored with any value (they change nothing at inference): checkpoint_activations, fsdp, ddp_rank,
//     flash_attention, seq_parallel, bert_init, max_source_positions, max_target_positions (LongNet has no
//     learned positions), the MoE knobs moe_top1_expert, moe_gating_use_fp32,
//     moe_eval_capacity_token_fraction, moe_second_expert_policy, moe_normalize_gate_prob_before_dropping
//     (moot with moe_freq 0), share_encoder_input_output_embed (the encoder has no output layer), img_size,
//     patch_size, in_chans.
//   anything else: refused as an unknown key, so a typo or an unsupported feature is never silently dropped.
// The JSON itself: a syntax error is reported with its line and column, and a key repeated in one object is
// refused (JSON parsers disagree on which copy wins).

enum class ModelType { kDecoder, kEncoder, kEncoderDecoder };
std::string_view model_type_name(ModelType type);  // "longnet_decoder", ...

// The sizes of one transformer stack (the encoder's or the decoder's).
struct StackConfig {
  int64_t embed_dim = 0;
  int64_t attention_heads = 0;
  int64_t ffn_embed_dim = 0;
  int64_t layers = 0;
  int64_t head_dim() const { return embed_dim / attention_heads; }
};

// The tokenizer entry. "byte": ids 0..255 are bytes shifted by byte_offset. Subword kinds name a file
// inside the model directory (`file`, relative, no "..").
struct TokenizerConfig {
  std::string type;  // "byte" or a subword kind the engine documents
  int64_t byte_offset = 0;
  bool add_bos = true;
  bool add_eos = false;
  std::string file;
  std::string options_json;  // the whole "tokenizer" object as compact JSON: kind-specific keys
};

struct ModelConfig {
  ModelType model_type = ModelType::kDecoder;
  int64_t vocab_size = 0;
  std::optional<StackConfig> encoder;            // set for longnet_encoder and longnet_encoder_decoder
  std::optional<StackConfig> decoder;            // set for longnet_decoder and longnet_encoder_decoder
  std::vector<kernels::DilatedBranch> branches;  // from segment_length / dilated_ratio
  kernels::Activation activation = kernels::Activation::kGelu;
  bool subln = false;
  double layernorm_eps = 1e-5;
  bool xpos_rel_pos = false;
  double xpos_scale_base = 512.0;
  bool no_scale_embedding = false;
  bool share_decoder_input_output_embed = false;
  int64_t bos_id = 0;
  int64_t eos_id = 0;
  int64_t pad_id = 0;
  TokenizerConfig tokenizer;
  DType torch_dtype = DType::kF32;
};

// `file_name` only labels error messages ("config.json: key 'vocab_size': ...").
absl::StatusOr<ModelConfig> parse_model_config(std::string_view json_text, std::string_view file_name);
absl::StatusOr<ModelConfig> load_model_config(const std::filesystem::path& path);

}  // namespace longnet::model
