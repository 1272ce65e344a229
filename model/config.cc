#include "longnet/model/config.h"

#include <algorithm>
#include <array>
#include <fstream>
#include <iterator>
#include <limits>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "config_reader.h"
#include "json_util.h"

namespace longnet::model {

namespace {

using json_util::Json;
using json_util::quote;
using json_util::to_absl;
using json_util::value_text;

// Bounds that keep every later size computation (weight shapes, tensor counts, schedules) far from int64
// overflow and refuse sizes no real model has, so a corrupt config fails here rather than in an allocation.
constexpr int64_t kMaxVocab = std::numeric_limits<int32_t>::max();  // token ids travel as int32
constexpr int64_t kMaxEmbedDim = int64_t{1} << 16;
constexpr int64_t kMaxFfnDim = int64_t{1} << 20;
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxSegmentLength = int64_t{1} << 40;
constexpr size_t kMaxBranches = 64;
constexpr size_t kMaxConfigBytes = size_t{16} << 20;

// torchscale arguments that change nothing at inference, so a config may carry them with any value: training
// machinery (checkpointing, sharding, the flash/non-flash kernel choice), initialisation, position limits of
// learned position embeddings LongNet does not have, MoE knobs that only matter when moe_freq > 0 (refused),
// the encoder's output-embedding tie (the encoder has no output layer) and the vision embedding's geometry.
constexpr std::array<std::string_view, 17> kIgnoredKeys = {
    "checkpoint_activations",
    "fsdp",
    "ddp_rank",
    "flash_attention",
    "seq_parallel",
    "bert_init",
    "max_source_positions",
    "max_target_positions",
    "moe_top1_expert",
    "moe_gating_use_fp32",
    "moe_eval_capacity_token_fraction",
    "moe_second_expert_policy",
    "moe_normalize_gate_prob_before_dropping",
    "share_encoder_input_output_embed",
    "img_size",
    "patch_size",
    "in_chans",
};

// Keys read for every model type.
constexpr std::array<std::string_view, 30> kCommonKeys = {
    "model_type",
    "vocab_size",
    "segment_length",
    "dilated_ratio",
    "activation_fn",
    "subln",
    "decoder_normalize_before",
    "encoder_normalize_before",
    "deepnorm",
    "layernorm_eps",
    "xpos_rel_pos",
    "xpos_scale_base",
    "no_scale_embedding",
    "share_decoder_input_output_embed",
    "layernorm_embedding",
    "no_output_layer",
    "normalize_output",
    "share_all_embeddings",
    "multiway",
    "rel_pos_buckets",
    "max_rel_pos",
    "moe_freq",
    "moe_expert_count",
    "use_xmoe",
    "bos_id",
    "eos_id",
    "pad_id",
    "tokenizer",
    "torch_dtype",
    "drop_path_rate",
};

constexpr std::array<std::string_view, 4> kStackFields = {"embed_dim", "attention_heads", "ffn_embed_dim",
                                                          "layers"};

template <size_t N>
bool contains(const std::array<std::string_view, N>& keys, std::string_view key) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

bool is_dropout_key(std::string_view key) {
  return key == "drop_path_rate" || key.ends_with("dropout");
}

bool uses_encoder(ModelType type) {
  return type != ModelType::kDecoder;
}
bool uses_decoder(ModelType type) {
  return type != ModelType::kEncoder;
}

// The stack a key sizes ("decoder_embed_dim" -> "decoder"), or nullopt for any other key.
std::optional<std::string_view> stack_of(std::string_view key) {
  for (std::string_view stack : {"encoder", "decoder"}) {
    if (key.size() > stack.size() + 1 && key.starts_with(stack) && key[stack.size()] == '_' &&
        contains(kStackFields, key.substr(stack.size() + 1))) {
      return stack;
    }
  }
  return std::nullopt;
}

absl::StatusOr<ModelType> parse_model_type(const Json& root, const std::string& file) {
  const auto it = root.find("model_type");
  if (it == root.end()) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": key \"model_type\": missing (required)"));
  }
  for (ModelType type : {ModelType::kDecoder, ModelType::kEncoder, ModelType::kEncoderDecoder}) {
    if (it->is_string() && it->get_ref<const std::string&>() == model_type_name(type)) return type;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(file, ": key \"model_type\": unsupported value ", value_text(*it),
                   " (expected \"longnet_decoder\", \"longnet_encoder\" or \"longnet_encoder_decoder\")"));
}

// Every key is one the engine reads, a dropout that is 0, or on the ignore list; anything else is refused so
// that a typo or an unsupported torchscale feature is not silently dropped.
void check_keys(const Json& root, ModelType type, ConfigReader& reader) {
  for (const auto& item : root.items()) {
    const std::string& key = item.key();
    const std::optional<std::string_view> stack = stack_of(key);
    if (is_dropout_key(key)) {
      const Json& value = item.value();
      if (!value.is_number() || value.get<double>() != 0.0) {
        reader.fail(key, absl::StrCat("unsupported value ", value_text(value),
                                      " (expected 0: dropouts must be absent or 0 for inference)"));
      }
    } else if (stack) {
      const bool used = *stack == "encoder" ? uses_encoder(type) : uses_decoder(type);
      if (!used) {
        reader.fail(key, absl::StrCat("not used by model_type ", quote(model_type_name(type)), " (found ",
                                      value_text(item.value()), ")"));
      }
    } else if (!contains(kCommonKeys, key) && !contains(kIgnoredKeys, key)) {
      reader.fail(key, absl::StrCat("unknown key (found ", value_text(item.value()), ")"));
    }
  }
}

StackConfig read_stack(ConfigReader& reader, std::string_view stack, std::string_view required_for) {
  const auto key = [&](std::string_view field) { return absl::StrCat(to_absl(stack), "_", to_absl(field)); };
  StackConfig config;
  config.embed_dim = reader.integer(key("embed_dim"), std::nullopt, 1, kMaxEmbedDim, required_for);
  config.attention_heads =
      reader.integer(key("attention_heads"), std::nullopt, 1, kMaxEmbedDim, required_for);
  config.ffn_embed_dim = reader.integer(key("ffn_embed_dim"), std::nullopt, 1, kMaxFfnDim, required_for);
  config.layers = reader.integer(key("layers"), std::nullopt, 1, kMaxLayers, required_for);
  if (reader.ok() && config.embed_dim % config.attention_heads != 0) {
    reader.fail(key("attention_heads"), absl::StrCat("value ", config.attention_heads, " does not divide ",
                                                     key("embed_dim"), " ", config.embed_dim));
  }
  return config;
}

void check_xpos_head_dim(ConfigReader& reader, const StackConfig& stack, std::string_view name) {
  if (stack.head_dim() % 2 == 0) return;
  reader.fail("xpos_rel_pos", absl::StrCat("true needs an even head dim, but ", to_absl(name), "_embed_dim ",
                                           stack.embed_dim, " / ", to_absl(name), "_attention_heads ",
                                           stack.attention_heads, " = ", stack.head_dim()));
}

// A relative path that stays inside the model directory.
bool is_contained_relative_path(std::string_view file) {
  if (file.empty() || file.front() == '/' || file.find('\0') != std::string_view::npos) return false;
  size_t start = 0;
  while (start <= file.size()) {
    const size_t slash = std::min(file.find('/', start), file.size());
    if (file.substr(start, slash - start) == "..") return false;
    start = slash + 1;
  }
  return true;
}

TokenizerConfig read_tokenizer(int64_t vocab_size, const std::string& file, ConfigReader& reader) {
  TokenizerConfig tokenizer;
  tokenizer.type = "byte";
  const Json* object = reader.find("tokenizer");
  if (object == nullptr) {
    tokenizer.options_json = R"({"type":"byte"})";
    return tokenizer;  // MODEL_FORMAT.md's byte tokenizer: byte_offset 0, add_bos, no add_eos
  }
  if (!object->is_object()) {
    reader.fail("tokenizer", absl::StrCat("expected an object {\"type\": ...}, found ", value_text(*object)));
    return tokenizer;
  }
  tokenizer.options_json = object->dump(-1, ' ', false, Json::error_handler_t::replace);
  ConfigReader nested(*object, file, "tokenizer.");
  tokenizer.type = nested.string("type", std::nullopt);
  if (nested.ok() && tokenizer.type.empty()) nested.fail("type", "expected a non-empty string, found \"\"");
  tokenizer.add_bos = nested.boolean("add_bos", true);
  tokenizer.add_eos = nested.boolean("add_eos", false);
  if (tokenizer.type == "byte") {
    for (const auto& item : object->items()) {
      const std::string& key = item.key();
      if (key != "type" && key != "byte_offset" && key != "add_bos" && key != "add_eos") {
        nested.fail(key, absl::StrCat("not a key of the byte tokenizer (found ", value_text(item.value()),
                                      "; expected type, byte_offset, add_bos, add_eos)"));
      }
    }
    tokenizer.byte_offset = nested.integer("byte_offset", 0, 0, kMaxVocab);
    if (nested.ok() && tokenizer.byte_offset + 256 > vocab_size) {
      nested.fail("byte_offset", absl::StrCat("value ", tokenizer.byte_offset, " puts the 256 byte ids at ",
                                              tokenizer.byte_offset, "..", tokenizer.byte_offset + 255,
                                              ", beyond vocab_size ", vocab_size));
    }
  } else if (nested.ok()) {
    // A subword kind: the tokenizer module knows the kinds and their other keys (in options_json).
    tokenizer.file =
        nested.string("file", std::nullopt, absl::StrCat("tokenizer type ", quote(tokenizer.type)));
    if (nested.ok() && !is_contained_relative_path(tokenizer.file)) {
      nested.fail("file", absl::StrCat("value ", quote(tokenizer.file),
                                       " is not a relative path inside the model directory (no leading /, "
                                       "no \"..\")"));
    }
  }
  reader.absorb(nested.status());
  return tokenizer;
}

// bos/eos/pad: inside the vocabulary and, for the byte tokenizer, outside its 256 byte ids (or decoding could
// not tell a special token from a byte). Byte models default them to the three ids after the bytes.
void read_special_ids(ConfigReader& reader, ModelConfig& config) {
  const bool byte = config.tokenizer.type == "byte";
  const int64_t first_free = config.tokenizer.byte_offset + 256;
  const std::string required_for = absl::StrCat("tokenizer type ", quote(config.tokenizer.type));
  int64_t next_default = first_free;
  for (auto [key, id] : {std::pair{"bos_id", &config.bos_id}, std::pair{"eos_id", &config.eos_id},
                         std::pair{"pad_id", &config.pad_id}}) {
    const std::optional<int64_t> fallback = byte ? std::optional<int64_t>(next_default++) : std::nullopt;
    const bool given = reader.has(key);
    *id = reader.integer(key, fallback, 0, kMaxVocab, required_for);
    if (!reader.ok()) return;
    const std::string value = given ? absl::StrCat("value ", *id)
                                    : absl::StrCat("default value ", *id, " (the first ids after the bytes)");
    if (*id >= config.vocab_size) {
      reader.fail(key,
                  absl::StrCat(value, " is outside the vocabulary (vocab_size ", config.vocab_size, ")"));
    } else if (byte && *id >= config.tokenizer.byte_offset && *id < first_free) {
      reader.fail(key, absl::StrCat(value, " is one of the byte tokenizer's byte ids (",
                                    config.tokenizer.byte_offset, "..", first_free - 1, ")"));
    }
  }
}

absl::StatusOr<ModelConfig> parse_root(const Json& root, const std::string& file) {
  if (!root.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": not a JSON object but ", root.type_name(), " ", value_text(root)));
  }
  ModelConfig config;
  absl::StatusOr<ModelType> type = parse_model_type(root, file);
  if (!type.ok()) return type.status();
  config.model_type = *type;
  const std::string required_for = absl::StrCat("model_type ", quote(model_type_name(config.model_type)));

  ConfigReader reader(root, file);
  check_keys(root, config.model_type, reader);
  config.vocab_size = reader.integer("vocab_size", std::nullopt, 1, kMaxVocab, required_for);
  if (uses_encoder(config.model_type)) config.encoder = read_stack(reader, "encoder", required_for);
  if (uses_decoder(config.model_type)) config.decoder = read_stack(reader, "decoder", required_for);
  if (reader.ok() && config.encoder && config.decoder &&
      config.encoder->embed_dim != config.decoder->embed_dim) {
    reader.fail("encoder_embed_dim",
                absl::StrCat("value ", config.encoder->embed_dim, " differs from decoder_embed_dim ",
                             config.decoder->embed_dim, " (an encoder-decoder needs them equal)"));
  }

  const std::vector<int64_t> segments =
      reader.positive_int_list("segment_length", kMaxBranches, kMaxSegmentLength, required_for);
  const std::vector<int64_t> ratios =
      reader.positive_int_list("dilated_ratio", kMaxBranches, kMaxSegmentLength, required_for);
  if (reader.ok() && segments.size() != ratios.size()) {
    reader.fail("dilated_ratio",
                absl::StrCat("has ", ratios.size(), " entries ", value_text(*reader.find("dilated_ratio")),
                             " but segment_length has ", segments.size(), " (one (w, r) pair per branch)"));
  }
  for (size_t i = 0; reader.ok() && i < segments.size(); ++i)
    config.branches.push_back({.segment_length = segments[i], .dilation = ratios[i]});

  const std::string activation = reader.string("activation_fn", "gelu");
  if (activation == "gelu") {
    config.activation = kernels::Activation::kGelu;
  } else if (activation == "relu") {
    config.activation = kernels::Activation::kRelu;
  } else if (reader.ok()) {
    reader.fail("activation_fn", absl::StrCat("unsupported value ", value_text(Json(activation)),
                                              " (expected \"gelu\" or \"relu\")"));
  }

  config.subln = reader.boolean("subln", true);
  for (std::string_view key : {"decoder_normalize_before", "encoder_normalize_before"}) {
    if (!reader.boolean(key, true)) {
      reader.fail(key, absl::StrCat("post-LN (", to_absl(key), "=false) is not supported"));
    }
  }
  reader.expect_bool("deepnorm", false, "DeepNorm is a post-LN scheme, which is not supported");
  config.layernorm_eps = reader.positive_number("layernorm_eps", 1e-5);
  config.xpos_rel_pos = reader.boolean("xpos_rel_pos", false);
  config.xpos_scale_base = reader.positive_number("xpos_scale_base", 512.0);
  if (reader.ok() && config.xpos_rel_pos) {
    if (config.encoder) check_xpos_head_dim(reader, *config.encoder, "encoder");
    if (config.decoder) check_xpos_head_dim(reader, *config.decoder, "decoder");
  }
  config.no_scale_embedding = reader.boolean("no_scale_embedding", true);
  config.share_decoder_input_output_embed = reader.boolean("share_decoder_input_output_embed", false);
  reader.expect_bool("layernorm_embedding", false, "a LayerNorm after the embedding is not supported");
  const bool encoder_only = config.model_type == ModelType::kEncoder;
  reader.expect_bool("no_output_layer", encoder_only,
                     encoder_only ? "a longnet_encoder outputs its final-LN hidden states"
                                  : "the decoder's output layer produces the logits");
  reader.expect_bool("normalize_output", true, "the final layer_norm is part of every supported model");
  reader.expect_bool("share_all_embeddings", false, "encoder and decoder keep separate embeddings");
  reader.expect_bool("multiway", false, "multiway (BEiT-3) layers are not supported");
  reader.expect_int("rel_pos_buckets", 0, "relative position bias is not supported");
  reader.expect_int("max_rel_pos", 0, "relative position bias is not supported");
  reader.expect_int("moe_freq", 0, "mixture-of-experts layers are not supported");
  reader.expect_int("moe_expert_count", 0, "mixture-of-experts layers are not supported");
  reader.expect_bool("use_xmoe", false, "mixture-of-experts layers are not supported");

  const std::string dtype = reader.string("torch_dtype", "float32");
  if (dtype == "float32") {
    config.torch_dtype = DType::kF32;
  } else if (dtype == "float16") {
    config.torch_dtype = DType::kF16;
  } else if (dtype == "bfloat16") {
    config.torch_dtype = DType::kBF16;
  } else if (reader.ok()) {
    reader.fail("torch_dtype", absl::StrCat("unsupported value ", value_text(Json(dtype)),
                                            " (expected \"float32\", \"float16\" or \"bfloat16\")"));
  }

  if (reader.ok()) config.tokenizer = read_tokenizer(config.vocab_size, file, reader);
  if (reader.ok()) read_special_ids(reader, config);
  if (!reader.ok()) return reader.status();
  return config;
}

}  // namespace

std::string_view model_type_name(ModelType type) {
  switch (type) {
    case ModelType::kDecoder:
      return "longnet_decoder";
    case ModelType::kEncoder:
      return "longnet_encoder";
    case ModelType::kEncoderDecoder:
      return "longnet_encoder_decoder";
  }
  return "?";
}

absl::StatusOr<ModelConfig> parse_model_config(std::string_view json_text, std::string_view file_name) {
  const std::string file(file_name);
  absl::StatusOr<Json> root = json_util::parse(json_text, file, "the file");
  if (!root.ok()) return root.status();
  return parse_root(*root, file);
}

absl::StatusOr<ModelConfig> load_model_config(const std::filesystem::path& path) {
  const std::string file = path.string();
  std::error_code error;
  const auto status = std::filesystem::status(path, error);
  if (!std::filesystem::exists(status)) return absl::NotFoundError(absl::StrCat(file, ": not found"));
  if (!std::filesystem::is_regular_file(status)) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": not a regular file"));
  }
  const auto size = std::filesystem::file_size(path, error);
  if (!error && size > kMaxConfigBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": ", size, " bytes, more than the ", kMaxConfigBytes, " a config may have"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in.is_open()) return absl::PermissionDeniedError(absl::StrCat(file, ": cannot open for reading"));
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) return absl::DataLossError(absl::StrCat(file, ": read error"));
  return parse_model_config(text, file);
}

}  // namespace longnet::model
