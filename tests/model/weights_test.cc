#include "longnet/model/weights.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "longnet/kernels/convert.h"
#include "longnet/kernels/gemm.h"
#include "support/safetensors_writer.h"

namespace longnet::model {
namespace {

using Json = nlohmann::json;
using testing::SafetensorsWriter;
using testing::TempDir;

Json decoder_json() {
  return Json{{"model_type", "longnet_decoder"}, {"vocab_size", 260},           {"decoder_embed_dim", 8},
              {"decoder_attention_heads", 2},    {"decoder_ffn_embed_dim", 12}, {"decoder_layers", 2},
              {"segment_length", {4, 8}},        {"dilated_ratio", {1, 2}},     {"xpos_rel_pos", true}};
}

Json encoder_json() {
  return Json{{"model_type", "longnet_encoder"}, {"vocab_size", 260},           {"encoder_embed_dim", 8},
              {"encoder_attention_heads", 4},    {"encoder_ffn_embed_dim", 16}, {"encoder_layers", 1},
              {"segment_length", {4}},           {"dilated_ratio", {1}},        {"subln", false}};
}

Json encoder_decoder_json() {
  Json config = decoder_json();
  config["model_type"] = "longnet_encoder_decoder";
  config.update(Json{{"encoder_embed_dim", 8},
                     {"encoder_attention_heads", 1},
                     {"encoder_ffn_embed_dim", 4},
                     {"encoder_layers", 1}});
  return config;
}

ModelConfig must_parse(const Json& json) {
  absl::StatusOr<ModelConfig> config = parse_model_config(json.dump(), "config.json");
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : ModelConfig{};
}

// Values in [-2, 2] on a grid of 1/8, exact in float16 and bfloat16, different for every tensor and element.
std::vector<float> values_for(size_t tensor, int64_t numel) {
  std::vector<float> values(static_cast<size_t>(numel));
  for (size_t k = 0; k < values.size(); ++k)
    values[k] = static_cast<float>(static_cast<int64_t>((k * 7 + tensor * 3) % 33) - 16) / 8.0f;
  return values;
}

int64_t numel(const Dims& shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

// A writer holding every tensor the config expects, in `dtype`, with values_for(i, ...).
SafetensorsWriter complete_writer(const ModelConfig& config, DType dtype) {
  SafetensorsWriter writer;
  const std::vector<ExpectedTensor> expected = expected_tensors(config);
  for (size_t i = 0; i < expected.size(); ++i) {
    const ExpectedTensor& t = expected[i];
    writer.add(t.name, dtype, std::vector<int64_t>(t.shape.begin(), t.shape.end()),
               values_for(i, numel(t.shape)));
  }
  return writer;
}

absl::StatusOr<ModelWeights> load_bytes(const std::string& bytes, const ModelConfig& config,
                                        Allocator& pool) {
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::from_bytes(
      std::as_bytes(std::span<const char>(bytes.data(), bytes.size())), "model.safetensors");
  if (!file.ok()) return file.status();
  return load_model_weights(*file, config, pool);
}

void expect_invalid(const absl::Status& status, const std::vector<std::string>& parts) {
  ASSERT_FALSE(status.ok()) << "loaded although it should not";
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  const std::string message(status.message());
  for (const std::string& part : parts) {
    EXPECT_NE(message.find(part), std::string::npos) << "message: " << message << "\nlacks: " << part;
  }
}

bool has_name(const std::vector<ExpectedTensor>& tensors, const std::string& name) {
  return std::any_of(tensors.begin(), tensors.end(), [&](const ExpectedTensor& t) { return t.name == name; });
}

Dims shape_of(const std::vector<ExpectedTensor>& tensors, const std::string& name) {
  for (const ExpectedTensor& t : tensors) {
    if (t.name == name) return t.shape;
  }
  ADD_FAILURE() << "no tensor " << name;
  return {};
}

// ---- expected_tensors: MODEL_FORMAT.md's table ----

TEST(ExpectedTensorsTest, DecoderNamesAndShapes) {
  ModelConfig config = must_parse(decoder_json());  // subln (default), xpos, V=260, E=8, F=12, D=4
  std::vector<ExpectedTensor> t = expected_tensors(config);
  // embed + 2 layers * (8 attn + 2 inner ln + 1 xpos + 2 sa ln + 4 ffn + 2 ffn ln + 2 final ln) + 2 ln + out.
  EXPECT_EQ(t.size(), 1u + 2 * 21 + 2 + 1);
  EXPECT_EQ(t.front().name, "embed_tokens.weight");
  EXPECT_EQ(shape_of(t, "embed_tokens.weight"), (Dims{260, 8}));
  for (const std::string proj : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
    EXPECT_EQ(shape_of(t, "layers.1.self_attn." + proj + ".weight"), (Dims{8, 8}));
    EXPECT_EQ(shape_of(t, "layers.1.self_attn." + proj + ".bias"), (Dims{8}));
  }
  EXPECT_EQ(shape_of(t, "layers.0.self_attn.inner_attn_ln.weight"), (Dims{8}));
  EXPECT_EQ(shape_of(t, "layers.0.self_attn.inner_attn_ln.bias"), (Dims{8}));
  EXPECT_EQ(shape_of(t, "layers.0.self_attn.xpos.scale"), (Dims{2}));
  EXPECT_EQ(shape_of(t, "layers.0.self_attn_layer_norm.weight"), (Dims{8}));
  EXPECT_EQ(shape_of(t, "layers.0.ffn.fc1.weight"), (Dims{12, 8}));
  EXPECT_EQ(shape_of(t, "layers.0.ffn.fc1.bias"), (Dims{12}));
  EXPECT_EQ(shape_of(t, "layers.0.ffn.fc2.weight"), (Dims{8, 12}));
  EXPECT_EQ(shape_of(t, "layers.0.ffn.fc2.bias"), (Dims{8}));
  EXPECT_EQ(shape_of(t, "layers.0.ffn.ffn_layernorm.weight"), (Dims{12}));
  EXPECT_EQ(shape_of(t, "layers.0.ffn.ffn_layernorm.bias"), (Dims{12}));
  EXPECT_EQ(shape_of(t, "layers.1.final_layer_norm.bias"), (Dims{8}));
  EXPECT_EQ(shape_of(t, "layer_norm.weight"), (Dims{8}));
  EXPECT_EQ(shape_of(t, "output_projection.weight"), (Dims{260, 8}));
  EXPECT_FALSE(has_name(t, "layers.2.ffn.fc1.weight"));
  EXPECT_FALSE(has_name(t, "layers.0.encoder_attn.q_proj.weight"));

  config.subln = false;
  config.xpos_rel_pos = false;
  config.share_decoder_input_output_embed = true;
  t = expected_tensors(config);
  EXPECT_EQ(t.size(), 1u + 2 * 16 + 2);
  EXPECT_FALSE(has_name(t, "layers.0.self_attn.inner_attn_ln.weight"));
  EXPECT_FALSE(has_name(t, "layers.0.ffn.ffn_layernorm.weight"));
  EXPECT_FALSE(has_name(t, "layers.0.self_attn.xpos.scale"));
  EXPECT_FALSE(has_name(t, "output_projection.weight"));
}

TEST(ExpectedTensorsTest, EncoderHasNoOutputProjection) {
  ModelConfig config = must_parse(encoder_json());
  std::vector<ExpectedTensor> t = expected_tensors(config);
  EXPECT_EQ(t.size(), 1u + 16 + 2);
  EXPECT_EQ(shape_of(t, "layers.0.ffn.fc1.weight"), (Dims{16, 8}));
  EXPECT_FALSE(has_name(t, "output_projection.weight"));
  config.share_decoder_input_output_embed = true;  // changes nothing for an encoder
  EXPECT_EQ(expected_tensors(config).size(), t.size());
}

TEST(ExpectedTensorsTest, EncoderDecoderPrefixesAndCrossAttention) {
  const ModelConfig config = must_parse(encoder_decoder_json());
  const std::vector<ExpectedTensor> t = expected_tensors(config);
  // encoder: embed + 1 layer * 21 + 2; decoder: embed + 2 layers * (21 + 8 cross + 2 cross ln) + 2 + out.
  EXPECT_EQ(t.size(), (1u + 21 + 2) + (1 + 2 * 31 + 2 + 1));
  EXPECT_EQ(shape_of(t, "encoder.embed_tokens.weight"), (Dims{260, 8}));
  EXPECT_EQ(shape_of(t, "decoder.embed_tokens.weight"), (Dims{260, 8}));
  EXPECT_EQ(shape_of(t, "encoder.layers.0.self_attn.xpos.scale"), (Dims{4}));  // D = 8 / 1 head
  EXPECT_EQ(shape_of(t, "decoder.layers.0.self_attn.xpos.scale"), (Dims{2}));  // D = 8 / 2 heads
  EXPECT_EQ(shape_of(t, "encoder.layers.0.ffn.fc2.weight"), (Dims{8, 4}));
  EXPECT_EQ(shape_of(t, "decoder.layers.1.encoder_attn.k_proj.weight"), (Dims{8, 8}));
  EXPECT_EQ(shape_of(t, "decoder.layers.1.encoder_attn.out_proj.bias"), (Dims{8}));
  EXPECT_EQ(shape_of(t, "decoder.layers.1.encoder_attn_layer_norm.weight"), (Dims{8}));
  EXPECT_EQ(shape_of(t, "decoder.output_projection.weight"), (Dims{260, 8}));
  EXPECT_EQ(shape_of(t, "encoder.layer_norm.bias"), (Dims{8}));
  EXPECT_FALSE(has_name(t, "encoder.output_projection.weight"));
  EXPECT_FALSE(has_name(t, "encoder.layers.0.encoder_attn.q_proj.weight"));
  EXPECT_FALSE(has_name(t, "decoder.layers.0.encoder_attn.inner_attn_ln.weight"));
  EXPECT_FALSE(has_name(t, "decoder.layers.0.encoder_attn.xpos.scale"));
  EXPECT_FALSE(has_name(t, "embed_tokens.weight"));
}

// ---- loading: every model type in every dtype, values converted exactly ----

class LoadWeightsTest : public ::testing::TestWithParam<std::tuple<std::string, DType>> {};

TEST_P(LoadWeightsTest, LoadsAndConvertsExactly) {
  const auto& [type, dtype] = GetParam();
  Json json = type == "decoder"   ? decoder_json()
              : type == "encoder" ? encoder_json()
                                  : encoder_decoder_json();
  json["torch_dtype"] = dtype_name(dtype);
  const ModelConfig config = must_parse(json);
  TempDir dir;
  testing::write_file(dir / "config.json", json.dump());
  complete_writer(config, dtype).write(dir / "model.safetensors");

  MemoryPool pool;
  absl::StatusOr<ModelDirectory> model = load_model_directory(dir.path(), pool);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->path, dir.path());
  EXPECT_EQ(model->config.model_type, config.model_type);
  const std::vector<ExpectedTensor> expected = expected_tensors(config);
  ASSERT_EQ(model->weights.size(), expected.size());
  size_t bytes = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const Tensor* tensor = model->weights.find(expected[i].name);
    ASSERT_NE(tensor, nullptr) << expected[i].name;
    EXPECT_EQ(tensor->dtype(), DType::kF32);
    EXPECT_TRUE(tensor->owns_storage());
    EXPECT_TRUE(tensor->is_contiguous());
    EXPECT_EQ(Dims(tensor->shape().begin(), tensor->shape().end()), expected[i].shape) << expected[i].name;
    const std::vector<float> want = values_for(i, tensor->numel());
    ASSERT_TRUE(std::equal(want.begin(), want.end(), tensor->data<float>())) << expected[i].name;
    bytes += tensor->nbytes();
  }
  EXPECT_EQ(model->weights.nbytes(), bytes);
  EXPECT_GE(pool.stats().in_use_bytes, bytes);
}

INSTANTIATE_TEST_SUITE_P(AllTypesAllDtypes, LoadWeightsTest,
                         ::testing::Combine(::testing::Values("decoder", "encoder", "encoder_decoder"),
                                            ::testing::Values(DType::kF32, DType::kF16, DType::kBF16)),
                         [](const auto& param_info) {
                           return std::get<0>(param_info.param) + "_" +
                                  dtype_name(std::get<1>(param_info.param));
                         });

// Special values survive: signed zero, subnormals, infinities, the extremes of each format.
TEST(LoadWeightsBitsTest, SixteenBitPatternsConvertLikeTheReference) {
  Json json = encoder_json();
  for (const DType dtype : {DType::kF16, DType::kBF16}) {
    SCOPED_TRACE(dtype_name(dtype));
    json["torch_dtype"] = dtype_name(dtype);
    const ModelConfig config = must_parse(json);
    SafetensorsWriter writer = complete_writer(config, dtype);
    // layer_norm.weight (8 elements): replace it with raw bit patterns.
    const std::vector<uint16_t> bits = {0x0000, 0x8000, 0x0001, 0x03FF, 0x7BFF, 0xFC00, 0x3C00, 0xC000};
    writer.add_raw("layer_norm.weight", SafetensorsWriter::dtype_string(dtype), {8},
                   std::string(reinterpret_cast<const char*>(bits.data()), bits.size() * 2));
    MemoryPool pool;
    absl::StatusOr<ModelWeights> weights = load_bytes(writer.bytes(), config, pool);
    ASSERT_TRUE(weights.ok()) << weights.status();
    const float* got = weights->get("layer_norm.weight").data<float>();
    for (size_t i = 0; i < bits.size(); ++i) {
      const float want = dtype == DType::kF16 ? kernels::reference::fp16_to_fp32(bits[i])
                                              : kernels::reference::bf16_to_fp32(bits[i]);
      uint32_t got_bits = 0;
      uint32_t want_bits = 0;
      std::memcpy(&got_bits, &got[i], 4);
      std::memcpy(&want_bits, &want, 4);
      EXPECT_EQ(got_bits, want_bits) << "element " << i;
    }
    if (dtype == DType::kF16) {
      EXPECT_EQ(got[6], 1.0f);
      EXPECT_EQ(got[7], -2.0f);
      EXPECT_EQ(got[4], 65504.0f);
      EXPECT_EQ(got[2], 0x1p-24f);
    } else {
      EXPECT_EQ(got[2], 0x1p-133f);  // bf16 0x0001: the smallest subnormal
    }
  }
}

// The format aligns nothing: an odd header length puts 16-bit data at odd addresses.
TEST(LoadWeightsBitsTest, MisalignedSixteenBitData) {
  Json json = decoder_json();
  json["torch_dtype"] = "float16";
  const ModelConfig config = must_parse(json);
  const std::string bytes = complete_writer(config, DType::kF16).pad_header(false).bytes();
  MemoryPool pool;
  absl::StatusOr<ModelWeights> weights = load_bytes(bytes, config, pool);
  ASSERT_TRUE(weights.ok()) << weights.status();
  const std::vector<float> want = values_for(0, 260 * 8);
  EXPECT_TRUE(std::equal(want.begin(), want.end(), weights->get("embed_tokens.weight").data<float>()));
}

// ---- loading: every mismatch is reported with the file, the key and what is wrong ----

TEST(LoadWeightsErrorsTest, MissingTensor) {
  const ModelConfig config = must_parse(decoder_json());
  SafetensorsWriter writer = complete_writer(config, DType::kF32);
  writer.header().erase("layers.1.ffn.fc1.bias");
  MemoryPool pool;
  expect_invalid(load_bytes(writer.bytes(), config, pool).status(),
                 {"model.safetensors: key \"layers.1.ffn.fc1.bias\": missing (expected F32 [12])"});
}

TEST(LoadWeightsErrorsTest, MissingSubLnTensorsMentionTheDefault) {
  Json json = decoder_json();
  json["subln"] = false;
  const ModelConfig without = must_parse(json);
  const ModelConfig with_subln = must_parse(decoder_json());  // subln absent: torchscale's default, true
  MemoryPool pool;
  expect_invalid(load_bytes(complete_writer(without, DType::kF32).bytes(), with_subln, pool).status(),
                 {"model.safetensors", "key \"layers.0.self_attn.inner_attn_ln.weight\"", "missing",
                  "subln is true", "default"});
}

TEST(LoadWeightsErrorsTest, UnexpectedTensor) {
  const ModelConfig config = must_parse(decoder_json());
  SafetensorsWriter writer = complete_writer(config, DType::kF32);
  writer.add("layers.0.self_attn.rel_pos.weight", DType::kF32, {3}, std::vector<float>{1, 2, 3});
  MemoryPool pool;
  expect_invalid(load_bytes(writer.bytes(), config, pool).status(),
                 {"model.safetensors: key \"layers.0.self_attn.rel_pos.weight\": unexpected tensor (F32 [3])",
                  "longnet_decoder"});
}

TEST(LoadWeightsErrorsTest, TiedOutputProjectionMustBeAbsent) {
  Json json = decoder_json();
  json["share_decoder_input_output_embed"] = true;
  const ModelConfig shared = must_parse(json);
  const ModelConfig untied = must_parse(decoder_json());
  MemoryPool pool;
  expect_invalid(load_bytes(complete_writer(untied, DType::kF32).bytes(), shared, pool).status(),
                 {"model.safetensors", "key \"output_projection.weight\"", "unexpected",
                  "share_decoder_input_output_embed is true"});
}

TEST(LoadWeightsErrorsTest, WrongShape) {
  const ModelConfig config = must_parse(decoder_json());
  SafetensorsWriter writer = complete_writer(config, DType::kF32);
  writer.add("layers.0.ffn.fc2.weight", DType::kF32, {12, 8}, values_for(0, 96));  // transposed
  MemoryPool pool;
  expect_invalid(load_bytes(writer.bytes(), config, pool).status(),
                 {"model.safetensors: key \"layers.0.ffn.fc2.weight\": shape [12, 8], expected [8, 12]"});
}

TEST(LoadWeightsErrorsTest, DtypeMustBeTorchDtype) {
  const ModelConfig config = must_parse(decoder_json());  // torch_dtype absent: float32
  SafetensorsWriter writer = complete_writer(config, DType::kF32);
  writer.add("layer_norm.bias", DType::kBF16, {8}, values_for(0, 8));
  MemoryPool pool;
  expect_invalid(
      load_bytes(writer.bytes(), config, pool).status(),
      {"model.safetensors: key \"layer_norm.bias\": dtype BF16, expected F32", "torch_dtype \"float32\""});
  // A whole file in another dtype: one problem per tensor, the first five listed.
  expect_invalid(load_bytes(complete_writer(config, DType::kF16).bytes(), config, pool).status(),
                 {"model.safetensors: 46 problems: key \"embed_tokens.weight\": dtype F16, expected F32",
                  "and 41 more"});
}

TEST(LoadWeightsErrorsTest, SeveralProblemsInOneMessage) {
  const ModelConfig config = must_parse(encoder_json());
  SafetensorsWriter writer = complete_writer(config, DType::kF32);
  writer.header().erase("layer_norm.bias");
  writer.add("extra", DType::kF32, {1}, std::vector<float>{0});
  writer.add("layers.0.ffn.fc1.bias", DType::kF32, {15}, values_for(0, 15));
  MemoryPool pool;
  const absl::Status status = load_bytes(writer.bytes(), config, pool).status();
  expect_invalid(status, {"model.safetensors: 3 problems: ", "key \"layers.0.ffn.fc1.bias\": shape [15]",
                          "key \"layer_norm.bias\": missing", "key \"extra\": unexpected"});
  EXPECT_EQ(std::string(status.message()).find("more"), std::string::npos);
}

TEST(LoadWeightsErrorsTest, BadFileIsReportedBeforeTheConfigCheck) {
  const ModelConfig config = must_parse(encoder_json());
  MemoryPool pool;
  expect_invalid(load_bytes(testing::safetensors_bytes("{\"a\":"), config, pool).status(),
                 {"model.safetensors", "not valid JSON"});
}

TEST(LoadWeightsErrorsTest, OutOfMemoryIsResourceExhausted) {
  const ModelConfig config = must_parse(encoder_json());
  MemoryPool pool(/*budget_bytes=*/4096);  // embed_tokens alone is 260 * 8 * 4 = 8320 bytes
  const absl::Status status = load_bytes(complete_writer(config, DType::kF32).bytes(), config, pool).status();
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_NE(std::string(status.message()).find("model.safetensors: key \"embed_tokens.weight\""),
            std::string::npos)
      << status;
}

// ---- the model directory ----

TEST(ModelDirectoryTest, MissingPiecesAreNotFoundNamingThePath) {
  TempDir dir;
  MemoryPool pool;
  const auto expect_not_found = [&](const std::filesystem::path& path) {
    const absl::Status status = load_model_directory(dir.path(), pool).status();
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
    EXPECT_NE(std::string(status.message()).find(path.string()), std::string::npos) << status;
  };
  expect_not_found(dir / "config.json");

  Json json = encoder_json();
  testing::write_file(dir / "config.json", json.dump());
  expect_not_found(dir / "model.safetensors");

  complete_writer(must_parse(json), DType::kF32).write(dir / "model.safetensors");
  json.update(Json{{"tokenizer", {{"type", "sentencepiece"}, {"file", "spm/tok.model"}}},
                   {"bos_id", 1},
                   {"eos_id", 2},
                   {"pad_id", 0}});
  testing::write_file(dir / "config.json", json.dump());
  expect_not_found(dir / "spm/tok.model");

  std::filesystem::create_directories(dir / "spm");
  testing::write_file(dir / "spm/tok.model", "not read here");
  EXPECT_TRUE(load_model_directory(dir.path(), pool).ok());

  const absl::Status status = load_model_directory(dir / "nowhere", pool).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_NE(std::string(status.message()).find((dir / "nowhere").string()), std::string::npos) << status;
}

TEST(ModelDirectoryTest, ConfigErrorsNameTheConfigPath) {
  TempDir dir;
  MemoryPool pool;
  Json json = encoder_json();
  json["encoder_layers"] = 0;
  testing::write_file(dir / "config.json", json.dump());
  expect_invalid(load_model_directory(dir.path(), pool).status(),
                 {(dir / "config.json").string() + ": key \"encoder_layers\"", "found 0"});
  testing::write_file(dir / "not_a_dir", "");
  expect_invalid(load_model_directory(dir / "not_a_dir", pool).status(), {(dir / "not_a_dir").string()});
}

TEST(ModelWeightsTest, InsertFindGet) {
  MemoryPool pool;
  ModelWeights weights;
  EXPECT_EQ(weights.size(), 0u);
  EXPECT_EQ(weights.find("w"), nullptr);
  absl::StatusOr<Tensor> tensor = Tensor::empty({2, 3}, DType::kF32, pool);
  ASSERT_TRUE(tensor.ok());
  weights.insert("w", *tensor);
  ASSERT_NE(weights.find("w"), nullptr);
  EXPECT_EQ(weights.get("w").numel(), 6);
  EXPECT_EQ(weights.size(), 1u);
  EXPECT_EQ(weights.nbytes(), 24u);
}

// A Linear's weight packed into panels: its elements where kernels::pack_panels puts them, once per
// name, counted in the pool (not in nbytes()); anything but a 2-D tensor of the model is refused by name.
TEST(WeightPanelsTest, PacksTwoDimensionalTensorsOnceAndRefusesOthers) {
  MemoryPool pool;
  ModelWeights weights;
  const int64_t shape[] = {3, 5};
  absl::StatusOr<Tensor> w = Tensor::empty(shape, DType::kF32, pool);
  ASSERT_TRUE(w.ok());
  for (int64_t i = 0; i < 15; ++i)
    w->data<float>()[i] = static_cast<float>(i);
  const int64_t vector_shape[] = {5};
  absl::StatusOr<Tensor> bias = Tensor::empty(vector_shape, DType::kF32, pool);
  ASSERT_TRUE(bias.ok());
  weights.insert("fc.weight", *w);
  weights.insert("fc.bias", *bias);
  const size_t before = pool.stats().in_use_bytes;

  EXPECT_EQ(weights.panels("fc.weight"), nullptr);
  ASSERT_TRUE(weights.pack_panels("fc.weight", pool).ok());
  const float* panels = weights.panels("fc.weight");
  ASSERT_NE(panels, nullptr);
  for (int64_t j = 0; j < kernels::kPanelWidth; ++j) {
    for (int64_t p = 0; p < 5; ++p)
      EXPECT_EQ(panels[p * kernels::kPanelWidth + j], j < 3 ? static_cast<float>(j * 5 + p) : 0.0f);
  }
  const size_t packed = pool.stats().in_use_bytes;
  EXPECT_GE(packed - before, static_cast<size_t>(kernels::panel_floats(3, 5)) * sizeof(float));
  ASSERT_TRUE(weights.pack_panels("fc.weight", pool).ok());
  EXPECT_EQ(weights.panels("fc.weight"), panels);
  EXPECT_EQ(pool.stats().in_use_bytes, packed);
  EXPECT_EQ(weights.nbytes(), 20u * sizeof(float));

  for (const char* name : {"fc.bias", "nothing.weight"}) {
    const absl::Status st = weights.pack_panels(name, pool);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_NE(st.message().find(name), std::string::npos) << st.message();
  }
}

}  // namespace
}  // namespace longnet::model
