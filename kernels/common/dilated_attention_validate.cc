#include <cmath>

#include "absl/strings/str_cat.h"
#include "longnet/kernels/dilated_attention.h"

namespace longnet::kernels {

absl::Status validate_dilated_attention(const DilatedAttentionShape& shape,
                                        const DilatedAttentionParams& params) {
  if (shape.num_heads < 1)
    return absl::InvalidArgumentError(absl::StrCat("num_heads=", shape.num_heads, ": must be >= 1"));
  if (shape.head_dim < 1)
    return absl::InvalidArgumentError(absl::StrCat("head_dim=", shape.head_dim, ": must be >= 1"));
  if (shape.seq_starts.size() != shape.seq_lens.size()) {
    return absl::InvalidArgumentError(absl::StrCat("seq_starts has ", shape.seq_starts.size(),
                                                   " entries but seq_lens has ", shape.seq_lens.size()));
  }
  for (size_t b = 0; b < shape.seq_lens.size(); ++b) {
    if (shape.seq_lens[b] < 0 || shape.seq_starts[b] < 0) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", b, ": start=", shape.seq_starts[b],
                                                     " len=", shape.seq_lens[b], ": must be >= 0"));
    }
  }
  const int64_t row = shape.num_heads * shape.head_dim;
  const std::pair<const char*, int64_t> strides[] = {{"q_stride", shape.q_stride},
                                                     {"k_stride", shape.k_stride},
                                                     {"v_stride", shape.v_stride},
                                                     {"out_stride", shape.out_stride}};
  for (const auto& [name, stride] : strides) {
    if (stride < row) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, "=", stride, ": must be >= num_heads * head_dim = ", row));
    }
  }
  if (params.branches.empty())
    return absl::InvalidArgumentError("branches: at least one (w, r) branch is required");
  for (size_t i = 0; i < params.branches.size(); ++i) {
    const DilatedBranch& br = params.branches[i];
    if (br.segment_length < 1 || br.dilation < 1) {
      return absl::InvalidArgumentError(absl::StrCat("branch ", i, ": segment_length=", br.segment_length,
                                                     " dilation=", br.dilation, ": both must be >= 1"));
    }
  }
  if (!std::isfinite(params.scale) || params.scale < 0.0f) {
    return absl::InvalidArgumentError(absl::StrCat("scale=", params.scale, ": must be finite and >= 0"));
  }
  return absl::OkStatus();
}

}  // namespace longnet::kernels
