#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/status/statusor.h"
#include "longnet/kernels/dtype.h"

namespace longnet::model {

// The element types are the kernels' (longnet/kernels/dtype.h).
using kernels::DType;
using kernels::dtype_name;
using kernels::dtype_size;

// Accepts dtype_name's names (and the short forms "f32"/"fp32", "f16"/"fp16"/"half", "bf16").
absl::StatusOr<DType> parse_dtype(std::string_view name);

// Whether elements of `dtype` may be accessed as T. fp16/bf16 have no C++ type of their own here, so
// they are accessed as their raw bits (uint16_t); std::byte views any dtype.
template <typename T>
constexpr bool dtype_holds(DType dtype) {
  using U = std::remove_const_t<T>;
  if constexpr (std::is_same_v<U, std::byte>) return true;
  if constexpr (std::is_same_v<U, float>) return dtype == DType::kF32;
  if constexpr (std::is_same_v<U, uint16_t>) return dtype == DType::kF16 || dtype == DType::kBF16;
  return false;
}

enum class DeviceType : uint8_t { kCpu, kCuda };

struct Device {
  DeviceType type = DeviceType::kCpu;
  int index = 0;  // the CUDA ordinal; always 0 for the CPU

  static constexpr Device cpu() { return {DeviceType::kCpu, 0}; }
  static constexpr Device cuda(int ordinal) { return {DeviceType::kCuda, ordinal}; }

  bool is_cpu() const { return type == DeviceType::kCpu; }
  bool is_cuda() const { return type == DeviceType::kCuda; }
  std::string to_string() const;  // "cpu", "cuda:0"

  friend bool operator==(const Device&, const Device&) = default;
};

}  // namespace longnet::model
