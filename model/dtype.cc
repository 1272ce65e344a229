#include "longnet/model/dtype.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace longnet::model {

absl::StatusOr<DType> parse_dtype(std::string_view name) {
  // Debian's Abseil keeps its own string_view, so std::string_view is converted by hand.
  const absl::string_view view(name.data(), name.size());
  const std::string lower = absl::AsciiStrToLower(view);
  if (lower == "float32" || lower == "f32" || lower == "fp32") return DType::kF32;
  if (lower == "float16" || lower == "f16" || lower == "fp16" || lower == "half") return DType::kF16;
  if (lower == "bfloat16" || lower == "bf16") return DType::kBF16;
  return absl::InvalidArgumentError(
      absl::StrCat("dtype: unknown name \"", view, "\" (expected float32, float16 or bfloat16)"));
}

std::string Device::to_string() const {
  if (type == DeviceType::kCpu) return "cpu";
  return absl::StrCat("cuda:", index);
}

}  // namespace longnet::model
