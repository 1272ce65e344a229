#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/xpos_common.h"
#include "longnet/kernels/xpos.h"

namespace longnet::kernels {

std::vector<float> xpos_default_scale(int64_t head_dim) {
  // torchscale: (torch.arange(0, D, 2) + 0.4 * D) / (1.4 * D) in float32, the Python scalars rounded to
  // float32 before each operation.
  std::vector<float> scale(static_cast<size_t>(std::max<int64_t>(0, head_dim / 2)));
  const auto offset = static_cast<float>(0.4 * static_cast<double>(head_dim));
  const auto denominator = static_cast<float>(1.4 * static_cast<double>(head_dim));
  for (size_t j = 0; j < scale.size(); ++j) {
    scale[j] = (static_cast<float>(2 * j) + offset) / denominator;
  }
  return scale;
}

absl::Status validate_xpos(const XposConfig& config) {
  if (config.head_dim <= 0 || config.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("xpos: head_dim = ", config.head_dim, " must be positive and even"));
  }
  if (!(config.scale_base > 0.0) || !std::isfinite(config.scale_base)) {
    return absl::InvalidArgumentError(
        absl::StrCat("xpos: scale_base = ", config.scale_base, " must be positive and finite"));
  }
  if (static_cast<int64_t>(config.scale.size()) != config.head_dim / 2) {
    return absl::InvalidArgumentError(absl::StrCat("xpos: scale has ", config.scale.size(),
                                                   " entries; head_dim = ", config.head_dim, " needs ",
                                                   config.head_dim / 2));
  }
  for (size_t j = 0; j < config.scale.size(); ++j) {
    if (!(config.scale[j] > 0.0f) || !std::isfinite(config.scale[j])) {
      return absl::InvalidArgumentError(
          absl::StrCat("xpos: scale[", j, "] = ", config.scale[j], " must be positive and finite"));
    }
  }
  return absl::OkStatus();
}

absl::Status validate_xpos_rows(const XposApplyShape& shape, int64_t head_dim) {
  if (shape.rows < 0 || shape.num_heads < 0 || shape.first_position < 0) {
    return absl::InvalidArgumentError(absl::StrCat("xpos: negative rows (", shape.rows, "), num_heads (",
                                                   shape.num_heads, ") or first_position (",
                                                   shape.first_position, ")"));
  }
  if (shape.head_dim != head_dim) {
    return absl::InvalidArgumentError(
        absl::StrCat("xpos: head_dim = ", shape.head_dim, " but the tables are for head_dim = ", head_dim));
  }
  if (shape.rows > 1 && shape.row_stride < shape.num_heads * shape.head_dim) {
    return absl::InvalidArgumentError(absl::StrCat("xpos: row_stride = ", shape.row_stride,
                                                   " is shorter than a row of ", shape.num_heads, " heads x ",
                                                   shape.head_dim));
  }
  return absl::OkStatus();
}

absl::StatusOr<XposPairConstants> xpos_pair_constants(const XposConfig& config) {
  if (auto status = validate_xpos(config); !status.ok()) return status;
  XposPairConstants constants;
  constants.scale_base = config.scale_base;
  const int64_t half = config.head_dim / 2;
  for (int64_t j = 0; j < half; ++j) {
    constants.inv_freq.push_back(xpos_inv_freq(j, half));
    constants.log_scale.push_back(std::log(static_cast<double>(config.scale[static_cast<size_t>(j)])));
  }
  return constants;
}

double xpos_inv_freq(int64_t j, int64_t half_dim) {
  return std::pow(10000.0, -static_cast<double>(j) / static_cast<double>(half_dim));
}

}  // namespace longnet::kernels
