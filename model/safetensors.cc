#include "longnet/model/safetensors.h"

#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "json_util.h"

namespace longnet::model {

namespace {

using json_util::Json;
using json_util::quote;
using json_util::to_absl;
using json_util::value_text;

constexpr size_t kLengthBytes = 8;

absl::Status invalid(std::string_view file, std::string_view detail) {
  return absl::InvalidArgumentError(absl::StrCat(to_absl(file), ": ", to_absl(detail)));
}

absl::Status invalid_key(std::string_view file, std::string_view key, std::string_view detail) {
  return absl::InvalidArgumentError(absl::StrCat(to_absl(file), ": key ", quote(key), ": ", to_absl(detail)));
}

uint64_t read_le64(std::span<const std::byte> bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < kLengthBytes; ++i)
    value |= static_cast<uint64_t>(bytes[i]) << (8 * i);
  return value;
}

absl::StatusOr<DType> parse_dtype_field(const Json& value, std::string_view file, std::string_view key) {
  if (value.is_string()) {
    const auto& name = value.get_ref<const std::string&>();
    for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
      if (name == safetensors_dtype_name(dtype)) return dtype;
    }
  }
  return invalid_key(file, key,
                     absl::StrCat("\"dtype\" ", value_text(value),
                                  " is not supported (expected \"F32\", \"F16\" or \"BF16\")"));
}

absl::StatusOr<Dims> parse_shape_field(const Json& value, DType dtype, std::string_view file,
                                       std::string_view key) {
  const auto bad = [&](std::string_view why) {
    return invalid_key(file, key, absl::StrCat("\"shape\" ", value_text(value), " ", to_absl(why)));
  };
  if (!value.is_array()) return bad("is not a list of non-negative integers");
  if (value.size() > static_cast<size_t>(kMaxRank)) {
    return bad(absl::StrCat("has rank ", value.size(), ", more than ", kMaxRank));
  }
  Dims shape;
  int64_t numel = 1;
  for (const Json& dim : value) {
    const std::optional<int64_t> size = json_util::as_int64(dim);
    if (!size || *size < 0) return bad("is not a list of non-negative integers");
    shape.push_back(*size);
    if (__builtin_mul_overflow(numel, *size, &numel)) return bad("has more elements than fit in 64 bits");
  }
  int64_t bytes = 0;
  if (__builtin_mul_overflow(numel, static_cast<int64_t>(dtype_size(dtype)), &bytes)) {
    return bad("has more bytes than fit in 64 bits");
  }
  return shape;
}

absl::StatusOr<SafetensorsEntry> parse_entry(const Json& value, uint64_t data_size, std::string_view file,
                                             std::string_view key) {
  if (!value.is_object()) {
    return invalid_key(file, key,
                       absl::StrCat("entry ", value_text(value),
                                    " is not an object {\"dtype\", \"shape\", \"data_offsets\"}"));
  }
  for (const auto& [field, unused] : value.items()) {
    if (field != "dtype" && field != "shape" && field != "data_offsets") {
      return invalid_key(file, key,
                         absl::StrCat("unknown field ", quote(field),
                                      " (expected \"dtype\", \"shape\" and \"data_offsets\")"));
    }
  }
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!value.contains(field))
      return invalid_key(file, key, absl::StrCat("field \"", field, "\" is missing"));
  }

  SafetensorsEntry entry;
  absl::StatusOr<DType> dtype = parse_dtype_field(value["dtype"], file, key);
  if (!dtype.ok()) return dtype.status();
  entry.dtype = *dtype;
  absl::StatusOr<Dims> shape = parse_shape_field(value["shape"], entry.dtype, file, key);
  if (!shape.ok()) return shape.status();
  entry.shape = *std::move(shape);

  const Json& offsets = value["data_offsets"];
  std::optional<int64_t> begin;
  std::optional<int64_t> end;
  if (offsets.is_array() && offsets.size() == 2) {
    begin = json_util::as_int64(offsets[0]);
    end = json_util::as_int64(offsets[1]);
  }
  if (!begin || !end || *begin < 0 || *begin > *end) {
    return invalid_key(file, key,
                       absl::StrCat("\"data_offsets\" ", value_text(offsets),
                                    " is not [begin, end] with 0 <= begin <= end"));
  }
  entry.begin = static_cast<uint64_t>(*begin);
  entry.end = static_cast<uint64_t>(*end);
  if (entry.end > data_size) {
    return invalid_key(
        file, key,
        absl::StrCat("\"data_offsets\" ", value_text(offsets), " end beyond the data section (", data_size,
                     " bytes): the file is truncated or the offsets are wrong"));
  }
  // parse_shape_field proved numel * dtype_size fits in int64.
  const auto needed = static_cast<uint64_t>(entry.numel()) * dtype_size(entry.dtype);
  if (entry.nbytes() != needed) {
    return invalid_key(file, key,
                       absl::StrCat("\"data_offsets\" ", value_text(offsets), " hold ", entry.nbytes(),
                                    " bytes, but shape ", dims_to_string(entry.shape), " of ",
                                    to_absl(safetensors_dtype_name(entry.dtype)), " needs ", needed));
  }
  return entry;
}

absl::Status check_no_overlap(const SafetensorsHeader& header, std::string_view file) {
  std::vector<std::pair<const std::string*, const SafetensorsEntry*>> by_offset;
  for (const auto& [name, entry] : header.tensors) {
    if (entry.nbytes() > 0) by_offset.emplace_back(&name, &entry);  // an empty range shares no byte
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const auto& a, const auto& b) { return a.second->begin < b.second->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const auto& [prev_name, prev] = by_offset[i - 1];
    const auto& [name, entry] = by_offset[i];
    if (entry->begin < prev->end) {
      return invalid_key(
          file, *name,
          absl::StrCat("\"data_offsets\" [", entry->begin, ", ", entry->end, "] overlap those of ",
                       quote(*prev_name), " [", prev->begin, ", ", prev->end, "]"));
    }
  }
  return absl::OkStatus();
}

absl::Status parse_metadata(const Json& value, std::string_view file, SafetensorsHeader& header) {
  if (!value.is_object()) {
    return invalid_key(file, "__metadata__",
                       absl::StrCat("value ", value_text(value), " is not an object of strings"));
  }
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string()) {
      return invalid_key(
          file, "__metadata__",
          absl::StrCat("entry ", quote(key), " has value ", value_text(item), ", not a string"));
    }
    header.metadata.emplace(key, item.get<std::string>());
  }
  return absl::OkStatus();
}

}  // namespace

int64_t SafetensorsEntry::numel() const {
  int64_t n = 1;
  for (int64_t size : shape)
    n *= size;
  return n;
}

std::string_view safetensors_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
  }
  return "?";
}

absl::StatusOr<SafetensorsHeader> parse_safetensors_header(std::span<const std::byte> file_bytes,
                                                           std::string_view file_name) {
  if (file_bytes.size() < kLengthBytes) {
    return invalid(file_name, absl::StrCat("the file is ", file_bytes.size(),
                                           " bytes, shorter than the 8-byte header length of a "
                                           "safetensors file (truncated?)"));
  }
  const uint64_t header_bytes = read_le64(file_bytes);
  const uint64_t after_length = file_bytes.size() - kLengthBytes;
  if (header_bytes > SafetensorsHeader::kMaxHeaderBytes) {
    return invalid(file_name,
                   absl::StrCat("header length ", header_bytes, " is more than the limit of ",
                                SafetensorsHeader::kMaxHeaderBytes, " bytes (not a safetensors file?)"));
  }
  if (header_bytes > after_length) {
    return invalid(file_name,
                   absl::StrCat("header length ", header_bytes, " goes beyond the end of the file (",
                                after_length, " bytes follow the length): truncated?"));
  }

  const std::string_view text(reinterpret_cast<const char*>(file_bytes.data()) + kLengthBytes, header_bytes);
  absl::StatusOr<Json> json = json_util::parse(text, file_name, "the header (from byte 8)");
  if (!json.ok()) return json.status();
  if (!json->is_object()) {
    return invalid(file_name, absl::StrCat("the header is not a JSON object but ", json->type_name(), " ",
                                           value_text(*json)));
  }

  SafetensorsHeader header;
  header.data_offset = kLengthBytes + header_bytes;
  header.data_size = after_length - header_bytes;
  for (const auto& [key, value] : json->items()) {
    if (key == "__metadata__") {
      if (absl::Status status = parse_metadata(value, file_name, header); !status.ok()) return status;
      continue;
    }
    absl::StatusOr<SafetensorsEntry> entry = parse_entry(value, header.data_size, file_name, key);
    if (!entry.ok()) return entry.status();
    header.tensors.emplace(key, *std::move(entry));
  }
  if (absl::Status status = check_no_overlap(header, file_name); !status.ok()) return status;
  return header;
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
  absl::StatusOr<MappedFile> mapping = MappedFile::open(path);
  if (!mapping.ok()) return mapping.status();
  SafetensorsFile file;
  file.mapping_ = *std::move(mapping);
  file.bytes_ = file.mapping_.bytes();
  file.name_ = file.mapping_.path();
  absl::StatusOr<SafetensorsHeader> header = parse_safetensors_header(file.bytes_, file.name_);
  if (!header.ok()) return header.status();
  file.header_ = *std::move(header);
  return file;
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::from_bytes(std::span<const std::byte> bytes,
                                                            std::string name) {
  SafetensorsFile file;
  file.bytes_ = bytes;
  file.name_ = std::move(name);
  absl::StatusOr<SafetensorsHeader> header = parse_safetensors_header(file.bytes_, file.name_);
  if (!header.ok()) return header.status();
  file.header_ = *std::move(header);
  return file;
}

const SafetensorsEntry* SafetensorsFile::find(std::string_view tensor_name) const {
  const auto it = header_.tensors.find(tensor_name);
  return it == header_.tensors.end() ? nullptr : &it->second;
}

std::span<const std::byte> SafetensorsFile::data(const SafetensorsEntry& entry) const {
  return bytes_.subspan(header_.data_offset + entry.begin, entry.nbytes());
}

}  // namespace longnet::model
