#include "longnet/model/config.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/safetensors_writer.h"

namespace longnet::model {
namespace {

using Json = nlohmann::json;

// The smallest valid decoder config: only the required keys.
Json minimal_decoder() {
  return Json{{"model_type", "longnet_decoder"}, {"vocab_size", 260},           {"decoder_embed_dim", 16},
              {"decoder_attention_heads", 4},    {"decoder_ffn_embed_dim", 32}, {"decoder_layers", 2},
              {"segment_length", {8, 16}},       {"dilated_ratio", {1, 2}}};
}

Json minimal_encoder() {
  return Json{{"model_type", "longnet_encoder"}, {"vocab_size", 260},           {"encoder_embed_dim", 16},
              {"encoder_attention_heads", 2},    {"encoder_ffn_embed_dim", 24}, {"encoder_layers", 1},
              {"segment_length", {4}},           {"dilated_ratio", {1}}};
}

Json minimal_encoder_decoder() {
  Json config = minimal_decoder();
  config["model_type"] = "longnet_encoder_decoder";
  config["encoder_embed_dim"] = 16;
  config["encoder_attention_heads"] = 8;
  config["encoder_ffn_embed_dim"] = 48;
  config["encoder_layers"] = 3;
  return config;
}

absl::StatusOr<ModelConfig> parse(const Json& config) {
  return parse_model_config(config.dump(), "config.json");
}

// Asserts that parsing fails with InvalidArgument and a message holding every one of `parts` (which, by the
// contract, always include the file, the key and the offending value).
void expect_invalid(const absl::StatusOr<ModelConfig>& result, const std::vector<std::string>& parts) {
  ASSERT_FALSE(result.ok()) << "parsed although it should not";
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
  const std::string message(result.status().message());
  for (const std::string& part : parts) {
    EXPECT_NE(message.find(part), std::string::npos) << "message: " << message << "\nlacks: " << part;
  }
}

void expect_invalid(const Json& config, const std::vector<std::string>& parts) {
  expect_invalid(parse(config), parts);
}

Json with(Json config, const std::string& key, Json value) {
  config[key] = std::move(value);
  return config;
}

TEST(ModelConfigTest, MinimalDecoderTakesTorchscaleDefaults) {
  absl::StatusOr<ModelConfig> config = parse(minimal_decoder());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->model_type, ModelType::kDecoder);
  EXPECT_EQ(config->vocab_size, 260);
  ASSERT_TRUE(config->decoder.has_value());
  EXPECT_FALSE(config->encoder.has_value());
  EXPECT_EQ(config->decoder->embed_dim, 16);
  EXPECT_EQ(config->decoder->attention_heads, 4);
  EXPECT_EQ(config->decoder->ffn_embed_dim, 32);
  EXPECT_EQ(config->decoder->layers, 2);
  EXPECT_EQ(config->decoder->head_dim(), 4);
  ASSERT_EQ(config->branches.size(), 2u);
  EXPECT_EQ(config->branches[0].segment_length, 8);
  EXPECT_EQ(config->branches[0].dilation, 1);
  EXPECT_EQ(config->branches[1].segment_length, 16);
  EXPECT_EQ(config->branches[1].dilation, 2);
  // torchscale's defaults for absent keys.
  EXPECT_EQ(config->activation, kernels::Activation::kGelu);
  EXPECT_TRUE(config->subln);
  EXPECT_TRUE(config->no_scale_embedding);
  EXPECT_FALSE(config->xpos_rel_pos);
  EXPECT_EQ(config->xpos_scale_base, 512.0);
  EXPECT_EQ(config->layernorm_eps, 1e-5);
  EXPECT_FALSE(config->share_decoder_input_output_embed);
  EXPECT_EQ(config->torch_dtype, DType::kF32);
  // MODEL_FORMAT.md's byte tokenizer, special ids right after the bytes.
  EXPECT_EQ(config->tokenizer.type, "byte");
  EXPECT_EQ(config->tokenizer.byte_offset, 0);
  EXPECT_TRUE(config->tokenizer.add_bos);
  EXPECT_FALSE(config->tokenizer.add_eos);
  EXPECT_EQ(config->bos_id, 256);
  EXPECT_EQ(config->eos_id, 257);
  EXPECT_EQ(config->pad_id, 258);
}

TEST(ModelConfigTest, EncoderAndEncoderDecoder) {
  absl::StatusOr<ModelConfig> encoder = parse(minimal_encoder());
  ASSERT_TRUE(encoder.ok()) << encoder.status();
  EXPECT_EQ(encoder->model_type, ModelType::kEncoder);
  ASSERT_TRUE(encoder->encoder.has_value());
  EXPECT_FALSE(encoder->decoder.has_value());
  EXPECT_EQ(encoder->encoder->ffn_embed_dim, 24);

  absl::StatusOr<ModelConfig> both = parse(minimal_encoder_decoder());
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_EQ(both->model_type, ModelType::kEncoderDecoder);
  ASSERT_TRUE(both->encoder.has_value() && both->decoder.has_value());
  EXPECT_EQ(both->encoder->attention_heads, 8);
  EXPECT_EQ(both->encoder->layers, 3);
  EXPECT_EQ(both->decoder->attention_heads, 4);
  EXPECT_EQ(model_type_name(both->model_type), "longnet_encoder_decoder");
}

// Every key a converter writes from torchscale's DecoderConfig, with every value the engine accepts.
TEST(ModelConfigTest, FullTorchscaleDumpIsAccepted) {
  Json config = minimal_decoder();
  config.update(
      Json{{"activation_fn", "relu"},
           {"subln", false},
           {"decoder_normalize_before", true},
           {"encoder_normalize_before", true},  // torchscale's DecoderConfig sets it too
           {"deepnorm", false},
           {"layernorm_eps", 1e-6},
           {"xpos_rel_pos", true},
           {"xpos_scale_base", 256},
           {"no_scale_embedding", false},
           {"share_decoder_input_output_embed", true},
           {"layernorm_embedding", false},
           {"no_output_layer", false},
           {"normalize_output", true},
           {"share_all_embeddings", false},
           {"multiway", false},
           {"rel_pos_buckets", 0},
           {"max_rel_pos", 0},
           {"moe_freq", 0},
           {"moe_expert_count", 0},
           {"use_xmoe", false},
           {"dropout", 0.0},
           {"attention_dropout", 0},
           {"activation_dropout", 0.0},
           {"drop_path_rate", 0.0},
           {"checkpoint_activations", false},
           {"fsdp", false},
           {"ddp_rank", 0},
           {"flash_attention", true},
           {"seq_parallel", false},
           {"bert_init", false},
           {"max_target_positions", 1024},
           {"max_source_positions", 1024},
           {"moe_top1_expert", false},
           {"moe_gating_use_fp32", true},
           {"moe_eval_capacity_token_fraction", 0.25},
           {"moe_second_expert_policy", "random"},
           {"moe_normalize_gate_prob_before_dropping", false},
           {"share_encoder_input_output_embed", false},
           {"img_size", 224},
           {"patch_size", 16},
           {"in_chans", 3},
           {"bos_id", 0},
           {"eos_id", 2},
           {"pad_id", 1},
           {"tokenizer", {{"type", "byte"}, {"byte_offset", 4}, {"add_bos", false}, {"add_eos", true}}},
           {"torch_dtype", "bfloat16"}});
  absl::StatusOr<ModelConfig> parsed = parse(config);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->activation, kernels::Activation::kRelu);
  EXPECT_FALSE(parsed->subln);
  EXPECT_EQ(parsed->layernorm_eps, 1e-6);
  EXPECT_TRUE(parsed->xpos_rel_pos);
  EXPECT_EQ(parsed->xpos_scale_base, 256.0);
  EXPECT_FALSE(parsed->no_scale_embedding);
  EXPECT_TRUE(parsed->share_decoder_input_output_embed);
  EXPECT_EQ(parsed->bos_id, 0);
  EXPECT_EQ(parsed->eos_id, 2);
  EXPECT_EQ(parsed->pad_id, 1);
  EXPECT_EQ(parsed->tokenizer.byte_offset, 4);
  EXPECT_FALSE(parsed->tokenizer.add_bos);
  EXPECT_TRUE(parsed->tokenizer.add_eos);
  EXPECT_EQ(parsed->torch_dtype, DType::kBF16);
}

TEST(ModelConfigTest, TorchDtypes) {
  for (const auto& [name, dtype] : {std::pair{"float32", DType::kF32}, std::pair{"float16", DType::kF16},
                                    std::pair{"bfloat16", DType::kBF16}}) {
    absl::StatusOr<ModelConfig> config = parse(with(minimal_decoder(), "torch_dtype", name));
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->torch_dtype, dtype) << name;
  }
}

TEST(ModelConfigTest, SubwordTokenizerKeepsItsOptions) {
  Json config = minimal_decoder();
  config["tokenizer"] = {{"type", "tiktoken"},
                         {"file", "vocab/cl100k_base.tiktoken"},
                         {"pattern", "cl100k"},
                         {"add_eos", true},
                         {"special_tokens", {{"<|endoftext|>", 259}}}};
  config["bos_id"] = 256;
  config["eos_id"] = 259;
  config["pad_id"] = 0;  // the byte-range rule is the byte tokenizer's only
  absl::StatusOr<ModelConfig> parsed = parse(config);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->tokenizer.type, "tiktoken");
  EXPECT_EQ(parsed->tokenizer.file, "vocab/cl100k_base.tiktoken");
  EXPECT_TRUE(parsed->tokenizer.add_bos);
  EXPECT_TRUE(parsed->tokenizer.add_eos);
  EXPECT_EQ(Json::parse(parsed->tokenizer.options_json), config["tokenizer"]);
  EXPECT_EQ(parsed->pad_id, 0);
}

// ---- the JSON itself ----

TEST(ModelConfigTest, SyntaxErrorNamesFileAndPosition) {
  expect_invalid(
      parse_model_config("{\n  \"vocab_size\": 260,\n  \"model_type\" \"longnet_decoder\"\n}", "config.json"),
      {"config.json", "not valid JSON", "line 3, column"});
  expect_invalid(parse_model_config("", "config.json"),
                 {"config.json", "not valid JSON", "line 1, column 1"});
}

TEST(ModelConfigTest, NumberOverflowIsAnErrorNotAnException) {
  expect_invalid(
      parse_model_config(R"({"model_type": "longnet_decoder", "vocab_size": 1e400})", "config.json"),
      {"config.json", "not valid JSON", "1e400"});
}

TEST(ModelConfigTest, DuplicateKeyRefused) {
  expect_invalid(parse_model_config(R"({"model_type": "longnet_decoder", "subln": true, "subln": false})",
                                    "config.json"),
                 {"config.json", "\"subln\"", "appears twice"});
}

// Deep nesting is refused before anything recurses over it (quoting such a value would overflow the stack).
TEST(ModelConfigTest, DeepNestingRefused) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  expect_invalid(
      parse_model_config(R"({"model_type": "longnet_decoder", "foo": )" + deep + "}", "config.json"),
      {"config.json", "nested deeper than 64 levels"});
  // Long values are cut in messages.
  expect_invalid(with(minimal_decoder(), "activation_fn", std::string(1000, 'x')),
                 {"config.json", "\"activation_fn\"", "xxxxxxxx\"...", "(expected \"gelu\" or \"relu\")"});
}

TEST(ModelConfigTest, RootMustBeAnObject) {
  expect_invalid(parse_model_config("[1, 2]", "config.json"), {"config.json", "not a JSON object", "[1,2]"});
}

// ---- keys ----

TEST(ModelConfigTest, ModelType) {
  Json config = minimal_decoder();
  config.erase("model_type");
  expect_invalid(config, {"config.json", "\"model_type\"", "missing"});
  expect_invalid(with(minimal_decoder(), "model_type", "gpt2"),
                 {"config.json", "\"model_type\"", "unsupported value \"gpt2\"", "longnet_encoder_decoder"});
  expect_invalid(with(minimal_decoder(), "model_type", 3), {"config.json", "\"model_type\"", "3"});
}

TEST(ModelConfigTest, UnknownKeyRefusedByName) {
  expect_invalid(with(minimal_decoder(), "decoder_layer", 2),
                 {"config.json", "key \"decoder_layer\"", "unknown key", "2"});
  expect_invalid(with(minimal_decoder(), "chunkwise_recurrent", true),
                 {"config.json", "key \"chunkwise_recurrent\"", "unknown key", "true"});
  // Keys with odd characters are quoted as JSON strings, so the message stays readable.
  expect_invalid(with(minimal_decoder(), "bad\nkey", 1), {"config.json", "key \"bad\\nkey\"", "unknown key"});
}

TEST(ModelConfigTest, OtherStacksKeysRefused) {
  expect_invalid(with(minimal_decoder(), "encoder_layers", 2),
                 {"config.json", "\"encoder_layers\"", "not used by model_type \"longnet_decoder\"", "2"});
  expect_invalid(
      with(minimal_encoder(), "decoder_embed_dim", 16),
      {"config.json", "\"decoder_embed_dim\"", "not used by model_type \"longnet_encoder\"", "16"});
}

TEST(ModelConfigTest, VocabSize) {
  Json config = minimal_decoder();
  config.erase("vocab_size");
  expect_invalid(config, {"config.json", "\"vocab_size\"", "missing", "longnet_decoder"});
  expect_invalid(with(minimal_decoder(), "vocab_size", "260"),
                 {"config.json", "\"vocab_size\"", "an integer", "\"260\""});
  expect_invalid(with(minimal_decoder(), "vocab_size", 0), {"config.json", "\"vocab_size\"", "found 0"});
  expect_invalid(with(minimal_decoder(), "vocab_size", -5), {"config.json", "\"vocab_size\"", "found -5"});
  expect_invalid(with(minimal_decoder(), "vocab_size", 260.0),
                 {"config.json", "\"vocab_size\"", "found 260.0"});
  expect_invalid(with(minimal_decoder(), "vocab_size", true),
                 {"config.json", "\"vocab_size\"", "found true"});
  expect_invalid(with(minimal_decoder(), "vocab_size", 4294967296LL),
                 {"config.json", "\"vocab_size\"", "found 4294967296"});
  expect_invalid(with(minimal_decoder(), "vocab_size", 18446744073709551615ULL),
                 {"config.json", "\"vocab_size\"", "found 18446744073709551615"});
}

TEST(ModelConfigTest, StackSizesRequiredAndPositive) {
  for (const std::string stack : {"decoder", "encoder"}) {
    const Json base = stack == "decoder" ? minimal_decoder() : minimal_encoder();
    for (const std::string field : {"embed_dim", "attention_heads", "ffn_embed_dim", "layers"}) {
      const std::string key = stack + "_" + field;
      SCOPED_TRACE(key);
      Json config = base;
      config.erase(key);
      expect_invalid(config, {"config.json", "\"" + key + "\"", "missing"});
      expect_invalid(with(base, key, 0), {"config.json", "\"" + key + "\"", "found 0"});
      expect_invalid(with(base, key, -1), {"config.json", "\"" + key + "\"", "found -1"});
      expect_invalid(with(base, key, "8"), {"config.json", "\"" + key + "\"", "found \"8\""});
    }
  }
  expect_invalid(with(minimal_decoder(), "decoder_layers", 100000),
                 {"config.json", "\"decoder_layers\"", "found 100000"});
  // An encoder-decoder needs both stacks.
  Json config = minimal_encoder_decoder();
  config.erase("encoder_ffn_embed_dim");
  expect_invalid(config, {"config.json", "\"encoder_ffn_embed_dim\"", "missing", "longnet_encoder_decoder"});
}

TEST(ModelConfigTest, HeadsMustDivideEmbedDim) {
  expect_invalid(
      with(minimal_decoder(), "decoder_attention_heads", 3),
      {"config.json", "\"decoder_attention_heads\"", "value 3 does not divide decoder_embed_dim 16"});
  expect_invalid(with(minimal_encoder(), "encoder_attention_heads", 5),
                 {"config.json", "\"encoder_attention_heads\"", "value 5"});
}

TEST(ModelConfigTest, XposNeedsAnEvenHeadDim) {
  Json config = with(minimal_decoder(), "xpos_rel_pos", true);
  config["decoder_embed_dim"] = 12;  // 12 / 4 heads = 3
  expect_invalid(config, {"config.json", "\"xpos_rel_pos\"", "even head dim", "decoder_embed_dim 12", "= 3"});
  config["xpos_rel_pos"] = false;  // an odd head dim is fine without XPOS
  EXPECT_TRUE(parse(config).ok());
}

TEST(ModelConfigTest, EncoderDecoderNeedsEqualEmbedDims) {
  expect_invalid(with(minimal_encoder_decoder(), "encoder_embed_dim", 32),
                 {"config.json", "\"encoder_embed_dim\"", "value 32", "decoder_embed_dim 16"});
}

TEST(ModelConfigTest, Schedule) {
  Json config = minimal_decoder();
  config.erase("segment_length");
  expect_invalid(config, {"config.json", "\"segment_length\"", "missing"});
  config = minimal_decoder();
  config.erase("dilated_ratio");
  expect_invalid(config, {"config.json", "\"dilated_ratio\"", "missing"});
  // torchscale's own string form must be converted to a list.
  expect_invalid(with(minimal_decoder(), "segment_length", "[8,16]"),
                 {"config.json", "\"segment_length\"", "not a string", "\"[8,16]\""});
  expect_invalid(with(minimal_decoder(), "segment_length", Json::array()),
                 {"config.json", "\"segment_length\"", "found []"});
  expect_invalid(with(minimal_decoder(), "segment_length", {8, 0}),
                 {"config.json", "\"segment_length\"", "found [8,0]"});
  expect_invalid(with(minimal_decoder(), "dilated_ratio", {1, -2}),
                 {"config.json", "\"dilated_ratio\"", "found [1,-2]"});
  expect_invalid(with(minimal_decoder(), "dilated_ratio", {1, 2.5}),
                 {"config.json", "\"dilated_ratio\"", "found [1,2.5]"});
  expect_invalid(with(minimal_decoder(), "dilated_ratio", 1),
                 {"config.json", "\"dilated_ratio\"", "found 1"});
  expect_invalid(with(minimal_decoder(), "dilated_ratio", {1, 2, 4}),
                 {"config.json", "\"dilated_ratio\"", "has 3 entries [1,2,4]", "segment_length has 2"});
}

TEST(ModelConfigTest, ActivationFn) {
  expect_invalid(
      with(minimal_decoder(), "activation_fn", "swish"),
      {R"(config.json: key "activation_fn": unsupported value "swish" (expected "gelu" or "relu"))"});
  expect_invalid(with(minimal_decoder(), "activation_fn", 1),
                 {"config.json", "\"activation_fn\"", "a string, found 1"});
}

TEST(ModelConfigTest, PostLayerNormRefused) {
  expect_invalid(with(minimal_decoder(), "decoder_normalize_before", false),
                 {"config.json", "\"decoder_normalize_before\"",
                  "post-LN (decoder_normalize_before=false) is not supported"});
  expect_invalid(with(minimal_encoder(), "encoder_normalize_before", false),
                 {"config.json", "\"encoder_normalize_before\"",
                  "post-LN (encoder_normalize_before=false) is not supported"});
  expect_invalid(with(minimal_decoder(), "decoder_normalize_before", "yes"),
                 {"config.json", "\"decoder_normalize_before\"", "found \"yes\""});
  expect_invalid(with(minimal_decoder(), "deepnorm", true),
                 {"config.json", "\"deepnorm\"", "unsupported value true", "post-LN"});
}

// Keys that must hold one value: each refusal names the key and the value.
TEST(ModelConfigTest, SingleValueKeys) {
  struct Case {
    Json base;
    std::string key;
    Json value;
  };
  const std::vector<Case> cases = {
      {minimal_decoder(), "layernorm_embedding", true},
      {minimal_decoder(), "share_all_embeddings", true},
      {minimal_encoder_decoder(), "share_all_embeddings", true},
      {minimal_decoder(), "no_output_layer", true},
      {minimal_encoder(), "no_output_layer", false},
      {minimal_decoder(), "normalize_output", false},
      {minimal_decoder(), "multiway", true},
      {minimal_decoder(), "rel_pos_buckets", 32},
      {minimal_decoder(), "max_rel_pos", 128},
      {minimal_decoder(), "moe_freq", 2},
      {minimal_decoder(), "moe_expert_count", 8},
      {minimal_decoder(), "use_xmoe", true},
      {minimal_decoder(), "layernorm_embedding", "false"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.key);
    expect_invalid(with(c.base, c.key, c.value), {"config.json", "\"" + c.key + "\"", c.value.dump()});
  }
  // The accepted values parse.
  EXPECT_TRUE(parse(with(minimal_encoder(), "no_output_layer", true)).ok());
  EXPECT_TRUE(parse(with(minimal_decoder(), "no_output_layer", false)).ok());
}

TEST(ModelConfigTest, BoolKeysMustBeBools) {
  for (const std::string key :
       {"subln", "xpos_rel_pos", "no_scale_embedding", "share_decoder_input_output_embed"}) {
    SCOPED_TRACE(key);
    expect_invalid(with(minimal_decoder(), key, 1),
                   {"config.json", "\"" + key + "\"", "true or false, found 1"});
  }
}

TEST(ModelConfigTest, PositiveNumbers) {
  expect_invalid(with(minimal_decoder(), "layernorm_eps", 0),
                 {"config.json", "\"layernorm_eps\"", "found 0"});
  expect_invalid(with(minimal_decoder(), "layernorm_eps", -1e-5),
                 {"config.json", "\"layernorm_eps\"", "found -1e-05"});
  expect_invalid(with(minimal_decoder(), "layernorm_eps", "1e-5"),
                 {"config.json", "\"layernorm_eps\"", "found \"1e-5\""});
  expect_invalid(with(minimal_decoder(), "xpos_scale_base", 0),
                 {"config.json", "\"xpos_scale_base\"", "found 0"});
}

TEST(ModelConfigTest, DropoutsMustBeZero) {
  for (const std::string key :
       {"dropout", "attention_dropout", "activation_dropout", "drop_path_rate", "classifier_dropout"}) {
    SCOPED_TRACE(key);
    expect_invalid(with(minimal_decoder(), key, 0.1),
                   {"config.json", "\"" + key + "\"", "unsupported value 0.1"});
    expect_invalid(with(minimal_decoder(), key, "0"), {"config.json", "\"" + key + "\"", "\"0\""});
    EXPECT_TRUE(parse(with(minimal_decoder(), key, 0)).ok());
  }
}

TEST(ModelConfigTest, SpecialIds) {
  for (const std::string key : {"bos_id", "eos_id", "pad_id"}) {
    SCOPED_TRACE(key);
    expect_invalid(with(minimal_decoder(), key, 260), {"config.json", "\"" + key + "\"", "value 260",
                                                       "outside the vocabulary (vocab_size 260)"});
    expect_invalid(with(minimal_decoder(), key, -1), {"config.json", "\"" + key + "\"", "found -1"});
    expect_invalid(with(minimal_decoder(), key, 65),
                   {"config.json", "\"" + key + "\"", "value 65", "byte ids"});
    expect_invalid(with(minimal_decoder(), key, "1"), {"config.json", "\"" + key + "\"", "found \"1\""});
  }
  // The defaults (256, 257, 258) need room after the bytes.
  expect_invalid(with(minimal_decoder(), "vocab_size", 257),
                 {"config.json", "\"eos_id\"", "default value 257", "vocab_size 257"});
}

TEST(ModelConfigTest, TorchDtype) {
  expect_invalid(with(minimal_decoder(), "torch_dtype", "float64"),
                 {R"(config.json: key "torch_dtype": unsupported value "float64")", "bfloat16"});
  expect_invalid(with(minimal_decoder(), "torch_dtype", "fp16"),
                 {"config.json", "\"torch_dtype\"", "\"fp16\""});
  expect_invalid(with(minimal_decoder(), "torch_dtype", 16), {"config.json", "\"torch_dtype\"", "found 16"});
}

TEST(ModelConfigTest, ByteTokenizer) {
  expect_invalid(with(minimal_decoder(), "tokenizer", "byte"), {"config.json", "\"tokenizer\"", "\"byte\""});
  expect_invalid(with(minimal_decoder(), "tokenizer", Json{{"byte_offset", 0}}),
                 {"config.json", "\"tokenizer.type\"", "missing"});
  expect_invalid(with(minimal_decoder(), "tokenizer", Json{{"type", ""}}),
                 {"config.json", "\"tokenizer.type\"", "found \"\""});
  expect_invalid(with(minimal_decoder(), "tokenizer", Json{{"type", 7}}),
                 {"config.json", "\"tokenizer.type\"", "found 7"});
  Json config = with(minimal_decoder(), "tokenizer", Json{{"type", "byte"}, {"byte_offset", 5}});
  expect_invalid(config, {"config.json", "\"tokenizer.byte_offset\"", "value 5", "beyond vocab_size 260"});
  expect_invalid(with(minimal_decoder(), "tokenizer", Json{{"type", "byte"}, {"byte_offset", -1}}),
                 {"config.json", "\"tokenizer.byte_offset\"", "found -1"});
  expect_invalid(with(minimal_decoder(), "tokenizer", Json{{"type", "byte"}, {"file", "x.model"}}),
                 {"config.json", "\"tokenizer.file\"", "not a key of the byte tokenizer", "\"x.model\""});
  expect_invalid(with(minimal_decoder(), "tokenizer", Json{{"type", "byte"}, {"add_bos", "yes"}}),
                 {"config.json", "\"tokenizer.add_bos\"", "found \"yes\""});
  expect_invalid(with(minimal_decoder(), "tokenizer", Json{{"type", "byte"}, {"add_eos", 0}}),
                 {"config.json", "\"tokenizer.add_eos\"", "found 0"});
}

TEST(ModelConfigTest, SubwordTokenizerFile) {
  Json base = minimal_decoder();
  base.update(Json{{"bos_id", 1}, {"eos_id", 2}, {"pad_id", 0}});
  expect_invalid(with(base, "tokenizer", Json{{"type", "tiktoken"}}),
                 {"config.json", "\"tokenizer.file\"", "missing", "\"tiktoken\""});
  expect_invalid(with(base, "tokenizer", Json{{"type", "tiktoken"}, {"file", 3}}),
                 {"config.json", "\"tokenizer.file\"", "found 3"});
  for (const std::string bad : {"/etc/passwd", "../outside.model", "a/../../b", "sub/..", "", ".."}) {
    SCOPED_TRACE(bad);
    expect_invalid(with(base, "tokenizer", Json{{"type", "sentencepiece"}, {"file", bad}}),
                   {"config.json", "\"tokenizer.file\"", Json(bad).dump(), "relative path"});
  }
  EXPECT_TRUE(
      parse(with(base, "tokenizer", Json{{"type", "sentencepiece"}, {"file", "a..b/x..model"}})).ok());
  // Subword vocabularies have no default special ids.
  Json no_ids = with(minimal_decoder(), "tokenizer", Json{{"type", "tiktoken"}, {"file", "t.tiktoken"}});
  expect_invalid(no_ids, {"config.json", "\"bos_id\"", "missing", "tokenizer type \"tiktoken\""});
}

TEST(ModelConfigTest, LoadFromFile) {
  testing::TempDir dir;
  testing::write_file(dir / "config.json", minimal_encoder().dump(2));
  absl::StatusOr<ModelConfig> config = load_model_config(dir / "config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->model_type, ModelType::kEncoder);

  // Errors from a file name its path.
  testing::write_file(dir / "config.json", with(minimal_encoder(), "activation_fn", "tanh").dump());
  config = load_model_config(dir / "config.json");
  expect_invalid(config, {(dir / "config.json").string() + ": key \"activation_fn\"", "\"tanh\""});
}

TEST(ModelConfigTest, MissingFileIsNotFound) {
  testing::TempDir dir;
  const absl::StatusOr<ModelConfig> config = load_model_config(dir / "config.json");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(config.status().message().find((dir / "config.json").string()), std::string::npos)
      << config.status();
}

TEST(ModelConfigTest, DirectoryIsNotAConfig) {
  testing::TempDir dir;
  const absl::StatusOr<ModelConfig> config = load_model_config(dir.path());
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(config.status().message().find(dir.path().string()), std::string::npos) << config.status();
}

}  // namespace
}  // namespace longnet::model
