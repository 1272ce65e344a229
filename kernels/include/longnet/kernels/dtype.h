#pragma once

#include <cstddef>
#include <cstdint>

namespace longnet::kernels {

// How tensor elements are stored. Compute is fp32; fp16 and bf16 store weights and caches compactly.
enum class DType : uint8_t { kF32, kF16, kBF16 };

constexpr size_t dtype_size(DType dtype) {
  return dtype == DType::kF32 ? 4 : 2;
}

// "float32", "float16", "bfloat16": the names torch and model configs use.
const char* dtype_name(DType dtype);

}  // namespace longnet::kernels
