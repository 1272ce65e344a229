#include "longnet/kernels/prefix_attention.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "cuda/attention_launch.h"
#include "longnet/kernels/cuda_device.h"

// The host side of the CUDA prefix attention: checks and the split plan (kernels in
// prefix_attention_kernel.cu).
namespace longnet::kernels::cuda {

int64_t prefix_attention_workspace_floats(const PrefixAttentionShape& shape,
                                          const PrefixAttentionBatch& batch) {
  return prefix_attention_plan(batch.count, shape.num_queries, shape.num_keys, shape.head_dim)
      .workspace_floats;
}

absl::Status prefix_attention(const PrefixAttentionShape& shape, const PrefixAttentionBatch& batch,
                              DType dtype, const void* q, const void* k, const void* v,
                              const int64_t* key_limit, void* out, float* lse, float* workspace,
                              int64_t workspace_floats, void* stream) {
  // The limits live on the device: the host checks everything else (an empty span passes the count check
  // only when there are no queries, so check with a null limit per query instead).
  PrefixAttentionShape host_shape = shape;
  const int64_t nq = shape.num_queries;
  host_shape.num_queries = 0;
  if (absl::Status st = validate_prefix_attention(host_shape, {}); !st.ok()) return st;
  if (nq < 0) return absl::InvalidArgumentError(absl::StrCat("num_queries=", nq, ": must be >= 0"));
  if (batch.count < 0)
    return absl::InvalidArgumentError(absl::StrCat("count=", batch.count, ": must be >= 0"));
  if (!is_supported_head_dim(shape.head_dim)) {
    return absl::InvalidArgumentError(
        absl::StrCat("head_dim=", shape.head_dim, ": the CUDA kernels support 32, 64, 80, 96 and 128"));
  }
  const PrefixAttentionPlan plan = prefix_attention_plan(batch.count, nq, shape.num_keys, shape.head_dim);
  if (workspace_floats < plan.workspace_floats || (plan.workspace_floats > 0 && workspace == nullptr)) {
    return absl::InvalidArgumentError(absl::StrCat("workspace holds ", workspace_floats, " floats; ",
                                                   plan.workspace_floats, " are needed"));
  }
  if (plan.splits == 0) return absl::OkStatus();
  PrefixAttentionArgs args;
  args.plan = plan;
  args.count = batch.count;
  args.num_queries = nq;
  args.num_keys = shape.num_keys;
  args.q = q;
  args.k = k;
  args.v = v;
  args.out = out;
  args.lse = lse;
  args.key_limit = key_limit;
  args.q_stride = shape.q_stride;
  args.k_stride = shape.k_stride;
  args.v_stride = shape.v_stride;
  args.out_stride = shape.out_stride;
  args.q_batch_stride = batch.q_stride;
  args.k_batch_stride = batch.k_stride;
  args.v_batch_stride = batch.v_stride;
  args.out_batch_stride = batch.out_stride;
  args.lse_batch_stride = batch.lse_stride;
  const float scale = shape.scale > 0.0f ? shape.scale : 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
  args.scale_log2 = scale * 1.4426950408889634f;
  args.partials = workspace;
  return to_status(launch_prefix_attention(dtype, static_cast<int>(shape.head_dim), args,
                                           static_cast<cudaStream_t>(stream)),
                   "prefix_attention launch");
}

void merge_attention_lse(int64_t rows, int64_t head_dim, const float* out, int64_t out_stride,
                         const float* lse, float* acc_out, int64_t acc_stride, float* acc_lse, void* stream) {
  (void)launch_merge_attention_lse(rows, head_dim, out, out_stride, lse, acc_out, acc_stride, acc_lse,
                                   static_cast<cudaStream_t>(stream));
}

}  // namespace longnet::kernels::cuda
