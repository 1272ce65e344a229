#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "longnet/kernels/prefix_attention.h"

namespace longnet::kernels {

absl::Status validate_prefix_attention(const PrefixAttentionShape& shape,
                                       std::span<const int64_t> key_limit) {
  if (shape.num_queries < 0) {
    return absl::InvalidArgumentError(absl::StrCat("num_queries=", shape.num_queries, ": must be >= 0"));
  }
  if (shape.num_keys < 0)
    return absl::InvalidArgumentError(absl::StrCat("num_keys=", shape.num_keys, ": must be >= 0"));
  if (shape.head_dim < 1)
    return absl::InvalidArgumentError(absl::StrCat("head_dim=", shape.head_dim, ": must be >= 1"));
  const std::pair<const char*, int64_t> strides[] = {{"q_stride", shape.q_stride},
                                                     {"k_stride", shape.k_stride},
                                                     {"v_stride", shape.v_stride},
                                                     {"out_stride", shape.out_stride}};
  for (const auto& [name, stride] : strides) {
    if (stride < shape.head_dim) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, "=", stride, ": must be >= head_dim = ", shape.head_dim));
    }
  }
  if (!std::isfinite(shape.scale) || shape.scale < 0.0f) {
    return absl::InvalidArgumentError(absl::StrCat("scale=", shape.scale, ": must be finite and >= 0"));
  }
  if (static_cast<int64_t>(key_limit.size()) != shape.num_queries) {
    return absl::InvalidArgumentError(
        absl::StrCat("key_limit has ", key_limit.size(), " entries; num_queries=", shape.num_queries));
  }
  for (size_t j = 0; j < key_limit.size(); ++j) {
    if (key_limit[j] < 0 || key_limit[j] > shape.num_keys) {
      return absl::InvalidArgumentError(absl::StrCat("key_limit[", j, "]=", key_limit[j],
                                                     ": must be in [0, num_keys=", shape.num_keys, "]"));
    }
  }
  return absl::OkStatus();
}

}  // namespace longnet::kernels
