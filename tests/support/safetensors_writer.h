#pragma once

// Test helpers for model files: a small safetensors writer (F32 / F16 / BF16 tensors from float values, or
// any header text and data for malformed files), and a temporary directory removed at scope exit.

#include <unistd.h>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

#include "longnet/kernels/convert.h"
#include "longnet/model/dtype.h"
#include "support/temp_dir.h"

namespace longnet::testing {

static_assert(std::endian::native == std::endian::little, "the writer stores host-order data");

// The 8-byte little-endian length, `header` as is, then `data`: for files whose header is wrong on purpose.
inline std::string safetensors_bytes(std::string_view header, std::string_view data = "") {
  std::string out;
  uint64_t length = header.size();
  for (int i = 0; i < 8; ++i, length >>= 8)
    out.push_back(static_cast<char>(length & 0xFF));
  out.append(header);
  out.append(data);
  return out;
}

// Builds a valid safetensors file the way the official writer does: tensors laid out back to back in the
// order added, the header padded with spaces to a multiple of 8 bytes (unless pad_header is false, which
// leaves 16-bit data misaligned in memory: a case the loader must handle too).
class SafetensorsWriter {
 public:
  // `values` are rounded to `dtype` (ties to even); exact when they are representable in it.
  SafetensorsWriter& add(const std::string& name, model::DType dtype, std::vector<int64_t> shape,
                         std::span<const float> values) {
    std::string bytes;
    if (dtype == model::DType::kF32) {
      bytes.assign(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
    } else {
      std::vector<uint16_t> bits(values.size());
      for (size_t i = 0; i < values.size(); ++i) {
        bits[i] = dtype == model::DType::kF16 ? kernels::reference::fp32_to_fp16(values[i])
                                              : kernels::reference::fp32_to_bf16(values[i]);
      }
      bytes.assign(reinterpret_cast<const char*>(bits.data()), bits.size() * sizeof(uint16_t));
    }
    return add_raw(name, dtype_string(dtype), std::move(shape), bytes);
  }

  // Any dtype string and bytes (the shape is not checked against them).
  SafetensorsWriter& add_raw(const std::string& name, const std::string& dtype, std::vector<int64_t> shape,
                             std::string_view bytes) {
    const size_t begin = data_.size();
    data_.append(bytes);
    header_[name] = {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {begin, data_.size()}}};
    return *this;
  }

  SafetensorsWriter& metadata(const std::string& key, const std::string& value) {
    header_["__metadata__"][key] = value;
    return *this;
  }

  SafetensorsWriter& pad_header(bool pad) {
    pad_header_ = pad;
    return *this;
  }

  nlohmann::json& header() { return header_; }  // to break an entry on purpose

  std::string bytes() const {
    std::string header = header_.empty() ? std::string("{}") : header_.dump();
    if (pad_header_) {
      while (header.size() % 8 != 0)
        header.push_back(' ');
    } else if (header.size() % 2 == 0) {
      header.push_back(' ');  // odd: the data section starts at an odd address
    }
    return safetensors_bytes(header, data_);
  }

  void write(const std::filesystem::path& path) const { write_file(path, bytes()); }

  static std::string dtype_string(model::DType dtype) {
    switch (dtype) {
      case model::DType::kF32:
        return "F32";
      case model::DType::kF16:
        return "F16";
      case model::DType::kBF16:
        return "BF16";
    }
    return "?";
  }

 private:
  nlohmann::json header_ = nlohmann::json::object();
  std::string data_;
  bool pad_header_ = true;
};

}  // namespace longnet::testing
