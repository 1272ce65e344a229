#include "longnet/kernels/dilated_attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cuda/attention_launch.h"
#include "longnet/kernels/cuda_device.h"

// The host side of the CUDA dilated attention: checks, the branch order, and one launch per branch and
// chunk of sequences (kernels in dilated_attention_kernel.cu).
namespace longnet::kernels::cuda {

absl::Status dilated_attention(const DilatedAttentionShape& shape, const DilatedAttentionParams& params,
                               DType dtype, const void* q, const void* k, const void* v, void* out,
                               float* lse, void* stream) {
  if (absl::Status st = validate_dilated_attention(shape, params); !st.ok()) return st;
  if (!is_supported_head_dim(shape.head_dim)) {
    return absl::InvalidArgumentError(
        absl::StrCat("head_dim=", shape.head_dim, ": the CUDA kernels support 32, 64, 80, 96 and 128"));
  }
  const auto s = static_cast<cudaStream_t>(stream);
  const int head_dim = static_cast<int>(shape.head_dim);
  const float scale =
      params.scale > 0.0f ? params.scale : 1.0f / std::sqrt(static_cast<float>(shape.head_dim));

  // A branch with r = 1 covers every (row, head): it runs first and writes, the others merge into it.
  // Without one, outputs start at 0 / -inf, which is what a (row, head) no branch covers must read.
  std::vector<DilatedBranch> order = params.branches;
  const auto dense =
      std::find_if(order.begin(), order.end(), [](const DilatedBranch& b) { return b.dilation == 1; });
  const bool first_writes = dense != order.end();
  if (first_writes) std::rotate(order.begin(), dense, dense + 1);

  DilatedBranchArgs args;
  args.q = q;
  args.k = k;
  args.v = v;
  args.out = out;
  args.lse = lse;
  args.q_stride = shape.q_stride;
  args.k_stride = shape.k_stride;
  args.v_stride = shape.v_stride;
  args.out_stride = shape.out_stride;
  args.scale_log2 = scale * 1.4426950408889634f;
  args.causal = params.causal;
  for (size_t i = 0; i < order.size(); ++i) {
    const std::vector<DilatedWorkTable> tables =
        plan_dilated_branch(shape.seq_starts.data(), shape.seq_lens.data(), shape.seq_lens.size(),
                            shape.num_heads, order[i], kAttentionBlockM);
    for (const DilatedWorkTable& table : tables) {
      if (i == 0 && !first_writes) {
        const cudaError_t cleared =
            launch_clear_attention_outputs(dtype, table, shape.head_dim, out, shape.out_stride, lse, s);
        if (cleared != cudaSuccess) return to_status(cleared, "dilated_attention: clearing the outputs");
      }
      args.table = table;
      args.first_branch = first_writes && i == 0;
      const cudaError_t launched = launch_dilated_branch(dtype, head_dim, args, s);
      if (launched != cudaSuccess) {
        return to_status(launched, absl::StrCat("dilated_attention: launching branch (w=",
                                                order[i].segment_length, ", r=", order[i].dilation, ")"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace longnet::kernels::cuda
