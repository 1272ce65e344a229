#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "longnet/model/dtype.h"
#include "longnet/model/mapped_file.h"
#include "longnet/model/tensor.h"

// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length
// N, N bytes of UTF-8 JSON, then the data section. The JSON is an object mapping each tensor name to
// {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]} (offsets relative to the data section), plus
// an optional "__metadata__" object of strings.
//
// What is checked, each failure an InvalidArgument naming the file, the key and the value:
//   - the file holds the 8 length bytes, N fits in the file and is at most kMaxHeaderBytes;
//   - the header is a JSON object with no key twice; every entry an object with exactly the three fields,
//     of the right types; "__metadata__", when present, an object of strings;
//   - dtype is F32, F16 or BF16 (what LongNet checkpoints hold; the engine computes in float32);
//   - shape: at most kMaxRank non-negative integers whose element and byte counts fit in int64;
//   - data_offsets: two integers, begin <= end <= size of the data section, end - begin == the byte size of
//     the shape and dtype;
//   - no two tensors share a byte.
// Gaps between tensors, and bytes after the last one, are allowed: the official writer leaves none, but
// other writers align tensors, and an unread byte cannot corrupt anything. (The official reader refuses
// them.) A truncated file is still caught: its last tensor ends beyond the data section.
namespace longnet::model {

struct SafetensorsEntry {
  DType dtype = DType::kF32;
  Dims shape;
  uint64_t begin = 0;  // byte offsets in the data section
  uint64_t end = 0;

  int64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

struct SafetensorsHeader {
  static constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;

  std::map<std::string, SafetensorsEntry, std::less<>> tensors;
  std::map<std::string, std::string, std::less<>> metadata;  // "__metadata__"
  uint64_t data_offset = 0;  // where the data section starts in the file: 8 + N
  uint64_t data_size = 0;    // bytes from data_offset to the end of the file
};

// The safetensors dtype string of `dtype`: "F32", "F16", "BF16".
std::string_view safetensors_dtype_name(DType dtype);

// Parses and validates the header of a whole safetensors file held in `file_bytes` (the data section is only
// measured, never read). `file_name` labels error messages. Pure: no I/O, no exceptions, any input.
absl::StatusOr<SafetensorsHeader> parse_safetensors_header(std::span<const std::byte> file_bytes,
                                                           std::string_view file_name);

// A validated safetensors file, memory-mapped (open) or borrowed from bytes someone else keeps alive
// (from_bytes: tests and the fuzzer). Move-only.
class SafetensorsFile {
 public:
  // NotFound naming the path when it does not exist; InvalidArgument for a bad file.
  static absl::StatusOr<SafetensorsFile> open(const std::filesystem::path& path);
  // `bytes` must outlive the returned object.
  static absl::StatusOr<SafetensorsFile> from_bytes(std::span<const std::byte> bytes, std::string name);

  const std::string& name() const { return name_; }  // the path, or the name given to from_bytes
  const SafetensorsHeader& header() const { return header_; }
  const SafetensorsEntry* find(std::string_view tensor_name) const;
  // The bytes of one entry of header(). Not aligned beyond 1 byte in general: the format aligns nothing.
  std::span<const std::byte> data(const SafetensorsEntry& entry) const;

 private:
  SafetensorsFile() = default;

  MappedFile mapping_;  // empty for from_bytes
  std::span<const std::byte> bytes_;
  std::string name_;
  SafetensorsHeader header_;
};

}  // namespace longnet::model
