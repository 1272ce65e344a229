#include "longnet/model/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/safetensors_writer.h"

namespace longnet::model {
namespace {

using Json = nlohmann::json;
using testing::safetensors_bytes;
using testing::SafetensorsWriter;

std::span<const std::byte> as_bytes(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

absl::StatusOr<SafetensorsHeader> parse(const std::string& file) {
  return parse_safetensors_header(as_bytes(file), "model.safetensors");
}

// A header built from JSON, with `data_bytes` bytes of data after it.
absl::StatusOr<SafetensorsHeader> parse(const Json& header, size_t data_bytes) {
  return parse(safetensors_bytes(header.dump(), std::string(data_bytes, '\0')));
}

void expect_invalid(const absl::StatusOr<SafetensorsHeader>& result, const std::vector<std::string>& parts) {
  ASSERT_FALSE(result.ok()) << "parsed although it should not";
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
  const std::string message(result.status().message());
  for (const std::string& part : parts) {
    EXPECT_NE(message.find(part), std::string::npos) << "message: " << message << "\nlacks: " << part;
  }
}

Json entry(const std::string& dtype, std::vector<int64_t> shape, Json offsets) {
  return {{"dtype", dtype}, {"shape", std::move(shape)}, {"data_offsets", std::move(offsets)}};
}

TEST(SafetensorsTest, ParsesWhatTheWriterWrites) {
  const std::vector<float> a = {1, 2, 3, 4, 5, 6};
  const std::vector<float> b = {0.5f, -1.0f};
  const std::string file = SafetensorsWriter()
                               .add("a", DType::kF32, {2, 3}, a)
                               .add("b", DType::kBF16, {2}, b)
                               .add("c", DType::kF16, {1, 2}, b)
                               .add("empty", DType::kF32, {0, 4}, {})
                               .metadata("format", "pt")
                               .bytes();
  absl::StatusOr<SafetensorsHeader> header = parse(file);
  ASSERT_TRUE(header.ok()) << header.status();
  ASSERT_EQ(header->tensors.size(), 4u);
  const SafetensorsEntry& ea = header->tensors.at("a");
  EXPECT_EQ(ea.dtype, DType::kF32);
  EXPECT_EQ(ea.shape, (Dims{2, 3}));
  EXPECT_EQ(ea.begin, 0u);
  EXPECT_EQ(ea.end, 24u);
  EXPECT_EQ(ea.numel(), 6);
  EXPECT_EQ(header->tensors.at("b").dtype, DType::kBF16);
  EXPECT_EQ(header->tensors.at("b").nbytes(), 4u);
  EXPECT_EQ(header->tensors.at("c").dtype, DType::kF16);
  EXPECT_EQ(header->tensors.at("empty").numel(), 0);
  EXPECT_EQ(header->metadata.at("format"), "pt");
  EXPECT_EQ(header->data_offset % 8, 0u);  // the writer pads like the official one
  EXPECT_EQ(header->data_offset + header->data_size, file.size());

  // The bytes of a tensor are where the offsets say.
  absl::StatusOr<SafetensorsFile> opened = SafetensorsFile::from_bytes(as_bytes(file), "mem");
  ASSERT_TRUE(opened.ok()) << opened.status();
  ASSERT_NE(opened->find("a"), nullptr);
  EXPECT_EQ(opened->find("missing"), nullptr);
  const std::span<const std::byte> data = opened->data(*opened->find("a"));
  ASSERT_EQ(data.size(), 24u);
  std::vector<float> read(6);
  std::memcpy(read.data(), data.data(), 24);
  EXPECT_EQ(read, a);
  EXPECT_EQ(opened->name(), "mem");
}

TEST(SafetensorsTest, EmptyHeaderObjectIsValid) {
  absl::StatusOr<SafetensorsHeader> header = parse(safetensors_bytes("{}"));
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_TRUE(header->tensors.empty());
  EXPECT_EQ(header->data_size, 0u);
}

TEST(SafetensorsTest, GapsAndTrailingBytesAreAllowed) {
  Json header = {{"a", entry("F32", {1}, {8, 12})}, {"b", entry("F16", {2}, {16, 20})}};
  absl::StatusOr<SafetensorsHeader> parsed = parse(header, 64);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->tensors.at("b").begin, 16u);
}

TEST(SafetensorsTest, FileShorterThanTheLength) {
  expect_invalid(parse(std::string("\x05\x00\x00", 3)),
                 {"model.safetensors", "3 bytes", "shorter than the 8-byte"});
  expect_invalid(parse(std::string()), {"model.safetensors", "0 bytes"});
}

TEST(SafetensorsTest, HeaderLengthBeyondTheFile) {
  std::string file = safetensors_bytes(R"({"a": {}})");
  file.resize(file.size() - 2);  // cut inside the header
  expect_invalid(parse(file),
                 {"model.safetensors", "header length 9", "beyond the end of the file", "7 bytes"});
}

TEST(SafetensorsTest, AbsurdHeaderLength) {
  std::string file(16, '\0');
  const uint64_t length = (uint64_t{100} << 20) + 1;
  std::memcpy(file.data(), &length, sizeof(length));
  expect_invalid(parse(file), {"model.safetensors", "header length 104857601", "limit"});
  std::memset(file.data(), 0xFF, 8);
  expect_invalid(parse(file), {"model.safetensors", "header length 18446744073709551615"});
}

TEST(SafetensorsTest, HeaderNotJson) {
  expect_invalid(parse(safetensors_bytes("{\"a\": ")),
                 {"model.safetensors", "not valid JSON", "line 1, column"});
  expect_invalid(parse(safetensors_bytes("")), {"model.safetensors", "not valid JSON"});
  expect_invalid(parse(safetensors_bytes("{\"a\": 1}\xff")), {"model.safetensors", "not valid JSON"});
  expect_invalid(parse(safetensors_bytes(R"({"a": 1, "a": 2})")),
                 {"model.safetensors", "\"a\"", "appears twice"});
}

TEST(SafetensorsTest, DeepNestingRefused) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  expect_invalid(parse(safetensors_bytes("{\"w\": " + deep + "}")),
                 {"model.safetensors", "nested deeper than 64 levels"});
}

TEST(SafetensorsTest, HeaderNotAnObject) {
  expect_invalid(parse(safetensors_bytes("[1, 2]")), {"model.safetensors", "not a JSON object", "[1,2]"});
  expect_invalid(parse(safetensors_bytes("\"text\"")),
                 {"model.safetensors", "not a JSON object", "\"text\""});
}

TEST(SafetensorsTest, EntryNotAnObject) {
  expect_invalid(parse(Json{{"w", {1, 2}}}, 0), {"model.safetensors", "key \"w\"", "[1,2]", "not an object"});
}

TEST(SafetensorsTest, EntryFieldMissing) {
  for (const std::string field : {"dtype", "shape", "data_offsets"}) {
    SCOPED_TRACE(field);
    Json e = entry("F32", {1}, {0, 4});
    e.erase(field);
    expect_invalid(parse(Json{{"w", e}}, 4),
                   {"model.safetensors", "key \"w\"", "\"" + field + "\" is missing"});
  }
}

TEST(SafetensorsTest, EntryUnknownField) {
  Json e = entry("F32", {1}, {0, 4});
  e["offset"] = 0;
  expect_invalid(parse(Json{{"w", e}}, 4), {"model.safetensors", "key \"w\"", "unknown field \"offset\""});
}

TEST(SafetensorsTest, UnsupportedDtype) {
  for (const std::string dtype : {"F64", "I64", "BOOL", "U8", "F8_E4M3", "f32"}) {
    SCOPED_TRACE(dtype);
    expect_invalid(
        parse(Json{{"w", entry(dtype, {1}, {0, 8})}}, 8),
        {"model.safetensors", "key \"w\"", "\"dtype\" \"" + dtype + "\" is not supported", "BF16"});
  }
  Json e = entry("F32", {1}, {0, 4});
  e["dtype"] = 32;
  expect_invalid(parse(Json{{"w", e}}, 4), {"model.safetensors", "key \"w\"", "\"dtype\" 32"});
}

TEST(SafetensorsTest, BadShape) {
  const auto with_shape = [](Json shape) {
    Json e = entry("F32", {}, {0, 4});
    e["shape"] = std::move(shape);
    return Json{{"w", e}};
  };
  expect_invalid(parse(with_shape({2, -1}), 8), {"model.safetensors", "key \"w\"", "\"shape\" [2,-1]"});
  expect_invalid(parse(with_shape("[2]"), 8), {"model.safetensors", "key \"w\"", "\"shape\" \"[2]\""});
  expect_invalid(parse(with_shape({2.0}), 8), {"model.safetensors", "key \"w\"", "\"shape\" [2.0]"});
  expect_invalid(parse(with_shape({1, 1, 1, 1, 1, 1, 1, 1, 1}), 4),
                 {"model.safetensors", "key \"w\"", "rank 9, more than 8"});
  expect_invalid(
      parse(with_shape({uint64_t{1} << 40, uint64_t{1} << 40}), 8),
      {"model.safetensors", "key \"w\"", "[1099511627776,1099511627776]", "more elements than fit"});
  expect_invalid(parse(with_shape({uint64_t{1} << 62}), 8),
                 {"model.safetensors", "key \"w\"", "[4611686018427387904]", "more bytes than fit"});
  expect_invalid(parse(with_shape({18446744073709551615ULL}), 8),
                 {"model.safetensors", "key \"w\"", "[18446744073709551615]"});
}

TEST(SafetensorsTest, BadDataOffsets) {
  for (const Json& offsets : {Json{4, 0}, Json{0}, Json{0, 4, 8}, Json{-4, 0}, Json("0,4"), Json{0.0, 4.0},
                              Json{0, 18446744073709551615ULL}}) {
    SCOPED_TRACE(offsets.dump());
    expect_invalid(parse(Json{{"w", entry("F32", {1}, offsets)}}, 8),
                   {"model.safetensors", "key \"w\"", "\"data_offsets\" " + offsets.dump(), "[begin, end]"});
  }
}

TEST(SafetensorsTest, DataOffsetsBeyondTheDataSection) {
  expect_invalid(
      parse(Json{{"w", entry("F32", {4}, {0, 16})}}, 12),
      {"model.safetensors", "key \"w\"", "[0,16]", "beyond the data section (12 bytes)", "truncated"});
  // A truncated file made by the writer: the last tensor runs past the end.
  std::string file = SafetensorsWriter().add("x", DType::kF32, {3}, std::vector<float>{1, 2, 3}).bytes();
  file.resize(file.size() - 1);
  expect_invalid(parse(file), {"model.safetensors", "key \"x\"", "[0,12]", "truncated"});
}

TEST(SafetensorsTest, ByteSizeMustMatchShape) {
  expect_invalid(parse(Json{{"w", entry("F32", {3}, {0, 8})}}, 16),
                 {"model.safetensors", "key \"w\"", "[0,8] hold 8 bytes", "shape [3] of F32 needs 12"});
  expect_invalid(parse(Json{{"w", entry("BF16", {2, 2}, {0, 16})}}, 16),
                 {"model.safetensors", "key \"w\"", "hold 16 bytes", "shape [2, 2] of BF16 needs 8"});
}

TEST(SafetensorsTest, OverlappingTensors) {
  const Json header = {{"a", entry("F32", {2}, {0, 8})}, {"b", entry("F32", {2}, {4, 12})}};
  expect_invalid(parse(header, 16),
                 {"model.safetensors", "key \"b\"", "[4, 12] overlap those of \"a\" [0, 8]"});
  const Json same = {{"a", entry("F32", {2}, {0, 8})}, {"b", entry("F32", {2}, {0, 8})}};
  expect_invalid(parse(same, 16), {"model.safetensors", "overlap"});
  // Empty tensors share no byte, wherever they point.
  const Json empty = {{"a", entry("F32", {2}, {0, 8})}, {"e", entry("F32", {0}, {4, 4})}};
  EXPECT_TRUE(parse(empty, 8).ok());
}

TEST(SafetensorsTest, Metadata) {
  expect_invalid(parse(Json{{"__metadata__", {{"format", 1}}}}, 0),
                 {"model.safetensors", "key \"__metadata__\"", "\"format\"", "1", "not a string"});
  expect_invalid(parse(Json{{"__metadata__", "pt"}}, 0),
                 {"model.safetensors", "key \"__metadata__\"", "\"pt\"", "not an object"});
}

TEST(SafetensorsTest, OpenMapsTheFile) {
  testing::TempDir dir;
  const std::vector<float> values = {1.5f, -2.0f};
  SafetensorsWriter().add("w", DType::kF32, {2}, values).write(dir / "model.safetensors");
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::open(dir / "model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->name(), (dir / "model.safetensors").string());
  const SafetensorsEntry* w = file->find("w");
  ASSERT_NE(w, nullptr);
  std::vector<float> read(2);
  std::memcpy(read.data(), file->data(*w).data(), 8);
  EXPECT_EQ(read, values);

  // Moving the file keeps the mapping (and the spans into it) valid.
  SafetensorsFile moved = *std::move(file);
  std::memcpy(read.data(), moved.data(*moved.find("w")).data(), 8);
  EXPECT_EQ(read, values);
}

TEST(SafetensorsTest, OpenErrorsNameThePath) {
  testing::TempDir dir;
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::open(dir / "absent.safetensors");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(file.status().message().find((dir / "absent.safetensors").string()), std::string::npos);

  file = SafetensorsFile::open(dir.path());
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(file.status().message().find("not a regular file"), std::string::npos);

  testing::write_file(dir / "empty.safetensors", "");
  file = SafetensorsFile::open(dir / "empty.safetensors");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(file.status().message().find((dir / "empty.safetensors").string() + ": the file is 0 bytes"),
            std::string::npos)
      << file.status();
}

}  // namespace
}  // namespace longnet::model
