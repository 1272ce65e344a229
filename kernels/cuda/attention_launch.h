#pragma once

// The boundary between the host side of the CUDA kernels whose public headers need C++20
// (kernels/cuda/*.cc: checks, planning, branch order) and their kernels (*.cu: C++17). Internal to
// kernels/cuda.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "longnet/kernels/cuda_attention_plan.h"
#include "longnet/kernels/dtype.h"

namespace longnet::kernels::cuda {

// One branch of dilated attention over one chunk of sequences (see DilatedWorkTable).
struct DilatedBranchArgs {
  DilatedWorkTable table;
  const void* q = nullptr;  // elements of the launch's dtype
  const void* k = nullptr;
  const void* v = nullptr;
  void* out = nullptr;
  float* lse = nullptr;
  int64_t q_stride = 0;
  int64_t k_stride = 0;
  int64_t v_stride = 0;
  int64_t out_stride = 0;
  float scale_log2 = 0.0f;  // softmax scale times log2(e): the kernel works in base 2
  bool causal = true;
  bool first_branch = false;  // write out/lse instead of merging into them
};

// Queues the branch; a head size or dtype without a kernel is cudaErrorInvalidValue.
cudaError_t launch_dilated_branch(DType dtype, int head_dim, const DilatedBranchArgs& args,
                                  cudaStream_t stream);

// out = 0 and lse = -inf on every row of the table's sequences (a schedule without an r = 1 branch leaves
// some (row, head) pairs to no branch, and those must read so).
cudaError_t launch_clear_attention_outputs(DType dtype, const DilatedWorkTable& table, int64_t head_dim,
                                           void* out, int64_t out_stride, float* lse, cudaStream_t stream);

// A strided batch of prefix-attention problems (prefix_attention.h): problem b has its queries at
// q + b * q_batch_stride, etc., and its key limits at key_limit + b * num_queries (nullptr: all keys).
struct PrefixAttentionArgs {
  PrefixAttentionPlan plan;
  int64_t count = 0;
  int64_t num_queries = 0;
  int64_t num_keys = 0;
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* out = nullptr;
  float* lse = nullptr;  // may be nullptr
  const int64_t* key_limit = nullptr;
  int64_t q_stride = 0;
  int64_t k_stride = 0;
  int64_t v_stride = 0;
  int64_t out_stride = 0;
  int64_t q_batch_stride = 0;
  int64_t k_batch_stride = 0;
  int64_t v_batch_stride = 0;
  int64_t out_batch_stride = 0;
  int64_t lse_batch_stride = 0;
  float scale_log2 = 0.0f;
  float* partials = nullptr;  // plan.workspace_floats floats when plan.splits > 1
};

cudaError_t launch_prefix_attention(DType dtype, int head_dim, const PrefixAttentionArgs& args,
                                    cudaStream_t stream);

// merge_attention_lse of prefix_attention.h (fp32).
cudaError_t launch_merge_attention_lse(int64_t rows, int64_t head_dim, const float* out, int64_t out_stride,
                                       const float* lse, float* acc_out, int64_t acc_stride, float* acc_lse,
                                       cudaStream_t stream);

// The XPOS rotation of xpos.h over rows x heads x pairs; the table arrays are device memory indexed
// [(first_row + r) * half_dim + j]. Launch errors are returned.
struct XposLaunchArgs {
  int64_t rows = 0;
  int64_t num_heads = 0;
  int64_t head_dim = 0;
  int64_t row_stride = 0;
  int64_t first_row = 0;  // table row of x's row 0
  const float* cos = nullptr;
  const float* sin = nullptr;
  const float* scale = nullptr;  // q_scale or k_scale
};
cudaError_t launch_xpos(DType dtype, const XposLaunchArgs& args, void* x, cudaStream_t stream);

}  // namespace longnet::kernels::cuda
