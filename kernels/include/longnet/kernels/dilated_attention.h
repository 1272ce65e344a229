#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "longnet/kernels/dilated_schedule.h"
#include "longnet/kernels/dtype.h"
#include "longnet/kernels/thread_pool.h"

// LongNet dilated attention, exactly as ../shared/design/LONGNET.md defines it: per-branch attention over
// each head's dilated positions of a segment, producing an output and a log-sum-exp per (token, head),
// and the branches merged by their LSE weights.
namespace longnet::kernels {

// Where the tokens are. Element (token row t, head h, dim d) of q/k/v/out is at
// ptr[t * stride + h * head_dim + d]; the row stride lets q, k and v live inside one fused projection.
// Sequence b occupies rows [seq_starts[b], seq_starts[b] + seq_lens[b]) and is evaluated on its own with
// positions counted from 0 at its first row (ragged batches: packed or padded, as the caller likes).
// Rows outside every sequence are never read or written.
struct DilatedAttentionShape {
  int64_t num_heads = 0;
  int64_t head_dim = 0;
  std::span<const int64_t> seq_starts;
  std::span<const int64_t> seq_lens;
  int64_t q_stride = 0;
  int64_t k_stride = 0;
  int64_t v_stride = 0;
  int64_t out_stride = 0;
};

struct DilatedAttentionParams {
  std::vector<DilatedBranch> branches;
  bool causal = true;
  float scale = 0.0f;  // 0 means 1/sqrt(head_dim)
};

// Checks shapes and branches; every backend calls it first. Errors name the field and the value.
absl::Status validate_dilated_attention(const DilatedAttentionShape& shape,
                                        const DilatedAttentionParams& params);

// Outputs: out (rows as above) and lse, the merged log-sum-exp, at lse[t * num_heads + h]. A head that no
// branch covers at token t gets out = 0 and lse = -inf.
namespace cpu {

// Floats of scratch space the fast kernel needs with `num_threads` threads.
int64_t dilated_attention_workspace_floats(const DilatedAttentionShape& shape,
                                           const DilatedAttentionParams& params, int num_threads);

// Fused and multithreaded: works segment by segment on packed tiles of one head's dilated rows, so it
// never materialises a gathered copy of the sequence, and its work is linear in N for a fixed schedule.
// `workspace` must hold dilated_attention_workspace_floats(shape, params, pool.num_threads()) floats.
absl::Status dilated_attention(const DilatedAttentionShape& shape, const DilatedAttentionParams& params,
                               const float* q, const float* k, const float* v, float* out, float* lse,
                               std::span<float> workspace, ThreadPool& pool);

}  // namespace cpu

namespace reference {

// Plain loops in double precision, straight from the definition. Slow; for tests only.
absl::Status dilated_attention(const DilatedAttentionShape& shape, const DilatedAttentionParams& params,
                               const float* q, const float* k, const float* v, float* out, float* lse);

}  // namespace reference

#if defined(LONGNET_WITH_CUDA)
namespace cuda {
// The same function on a CUDA device (kernels/cuda/dilated_attention.cu, docs/gpu.md). q, k, v and out
// are device memory of `dtype` (fp32, or fp16 / bf16 with fp32 arithmetic; out has the dtype of the
// inputs); lse is fp32 device memory, as on the CPU. The shape's spans are host memory, read before the
// call returns. Head sizes 32, 64, 80, 96 and 128 have kernels; others are InvalidArgument, like the
// checks of validate_dilated_attention. Work is queued on `stream` (a cudaStream_t; nullptr = the
// default stream) and not waited for; launch errors are returned (cudaGetLastError, which also reports
// an earlier unchecked error of this thread), errors while running surface at the next synchronisation.
absl::Status dilated_attention(const DilatedAttentionShape& shape, const DilatedAttentionParams& params,
                               DType dtype, const void* q, const void* k, const void* v, void* out,
                               float* lse, void* stream);
}  // namespace cuda
#endif

}  // namespace longnet::kernels
