#pragma once

#include <cstdint>
#include <span>

#include "absl/status/status.h"
#include "longnet/kernels/dtype.h"
#include "longnet/kernels/thread_pool.h"

// Attention of a block of queries over a key/value buffer where each query sees a prefix of the keys: the
// primitive of the bounded dilated KV cache and of chunked prefill (../shared/design/LONGNET.md,
// "Incremental decoding with a bounded cache"). The caller gathers one (layer, branch, head)'s visible keys
// into a buffer, already XPOS-rotated; query j sees keys [0, key_limit[j]) (causal: the keys at positions up
// to its own; non-causal or cross-attention: all of them). Branches are then combined with
// merge_attention_lse.
namespace longnet::kernels {

// Row i of q / k / v / out is head_dim floats at ptr + i * stride (strides >= head_dim; gaps are never
// read or written). q and out have num_queries rows, k and v num_keys rows.
struct PrefixAttentionShape {
  int64_t num_queries = 0;
  int64_t num_keys = 0;
  int64_t head_dim = 0;
  int64_t q_stride = 0;
  int64_t k_stride = 0;
  int64_t v_stride = 0;
  int64_t out_stride = 0;
  float scale = 0.0f;  // 0 means 1/sqrt(head_dim)
};

// InvalidArgument naming the field and the value: a negative count, head_dim < 1, a stride < head_dim,
// a scale that is negative or not finite, key_limit.size() != num_queries, or a limit outside
// [0, num_keys]. Every backend calls it first.
absl::Status validate_prefix_attention(const PrefixAttentionShape& shape, std::span<const int64_t> key_limit);

// Outputs of prefix_attention, for each query j:
//   lse[j] = log sum_{u < key_limit[j]} exp(scale * q_j . k_u)          (natural log)
//   out[j] = sum_{u < key_limit[j]} exp(scale * q_j . k_u - lse[j]) v_u
// A query with key_limit 0 sees nothing: out = 0 and lse = -inf (never NaN). lse is num_queries contiguous
// floats and may be nullptr when the caller has nothing to merge.
namespace cpu {

// Floats of scratch space prefix_attention needs with `num_threads` threads, for this shape and for every
// shape with no more queries and keys (same head_dim and strides): one workspace sized for the largest
// call of a loop serves them all. It grows with num_keys (the keys are repacked for the tile kernels),
// not with the key limits.
int64_t prefix_attention_workspace_floats(const PrefixAttentionShape& shape, int num_threads);

// Two routes, chosen from the shape alone (so results do not depend on the thread count):
// - few queries (decode): per-query dot products and weighted sums straight from k and v, keys split into
//   fixed chunks run in parallel, each keeping a partial (max, sum, accumulator) merged at the end;
// - a block of queries (chunked prefill): keys packed once, query tiles against key blocks with an online
//   softmax on the dilated-attention tile kernels, split over keys too when there are few tiles.
// `workspace` (prefix_attention_workspace_floats(shape, pool.num_threads()) floats, or that of a larger
// shape) belongs to this call alone while it runs: concurrent calls need their own. Called from inside a
// task of `pool` (heads in parallel, say), it runs inline on that thread, with the same result.
absl::Status prefix_attention(const PrefixAttentionShape& shape, const float* q, const float* k,
                              const float* v, std::span<const int64_t> key_limit, float* out, float* lse,
                              std::span<float> workspace, ThreadPool& pool);

}  // namespace cpu

namespace reference {
// Plain loops in double precision, straight from the definition. Slow; for tests only.
absl::Status prefix_attention(const PrefixAttentionShape& shape, const float* q, const float* k,
                              const float* v, std::span<const int64_t> key_limit, float* out, float* lse);
}  // namespace reference

// Merges one branch's attention result into an accumulator, row by row:
//   L = logaddexp(acc_lse, lse),  acc_out = exp(acc_lse - L) * acc_out + exp(lse - L) * out,  acc_lse = L.
// An accumulator starts as acc_out = 0, acc_lse = -inf; a row with lse = -inf contributes nothing (its out
// is not read), so merging an empty branch leaves the accumulator as it was; into an empty accumulator
// (acc_lse = -inf, acc_out not read) a branch is copied. Rows are out_stride /
// acc_stride floats apart; lse and acc_lse are contiguous. The result is one softmax over the union of the
// merged key sets, with a key present in several branches counted once per branch.
namespace cpu {
void merge_attention_lse(int64_t rows, int64_t head_dim, const float* out, int64_t out_stride,
                         const float* lse, float* acc_out, int64_t acc_stride, float* acc_lse);
}  // namespace cpu
namespace reference {
void merge_attention_lse(int64_t rows, int64_t head_dim, const float* out, int64_t out_stride,
                         const float* lse, float* acc_out, int64_t acc_stride, float* acc_lse);
}  // namespace reference

#if defined(LONGNET_WITH_CUDA)
namespace cuda {
// A strided batch of independent prefix-attention problems of one shape, e.g. every head of one branch of
// a KV cache laid out [problem][slot][head_dim]: problem b's q, k, v, out and lse start q_stride, ...,
// lse_stride elements after problem b-1's, and its key limits are key_limit[b * num_queries, ...).
struct PrefixAttentionBatch {
  int64_t count = 1;
  int64_t q_stride = 0;
  int64_t k_stride = 0;
  int64_t v_stride = 0;
  int64_t out_stride = 0;
  int64_t lse_stride = 0;
};

// Floats of device workspace prefix_attention needs (0 when the keys are not split: many rows, or few
// keys). Depends on the shape only.
int64_t prefix_attention_workspace_floats(const PrefixAttentionShape& shape,
                                          const PrefixAttentionBatch& batch);

// prefix_attention on a CUDA device for `batch.count` problems (kernels/cuda/prefix_attention_kernel.cu):
// keys split across blocks, each split's (max, sum, accumulator) merged by a second kernel. q, k, v, out
// are device memory of `dtype` (fp32, fp16 or bf16; fp32 arithmetic; out in `dtype`); lse (fp32, may be
// nullptr) and key_limit (count * num_queries int64 values, or nullptr: every query sees all num_keys)
// are device memory. Limits cannot be checked on the host without a copy back; the kernel clamps them
// to [0, num_keys], so a bad one gives a wrong answer, never an out-of-bounds read. Head sizes 32, 64, 80,
// 96, 128. `workspace` holds workspace_floats floats (>= prefix_attention_workspace_floats). Queued on
// `stream`; launch errors are returned.
absl::Status prefix_attention(const PrefixAttentionShape& shape, const PrefixAttentionBatch& batch,
                              DType dtype, const void* q, const void* k, const void* v,
                              const int64_t* key_limit, void* out, float* lse, float* workspace,
                              int64_t workspace_floats, void* stream);

// merge_attention_lse on device memory (fp32), queued on `stream`. Launch errors stay in the runtime's
// error state (cudaGetLastError), as for the other void kernels.
void merge_attention_lse(int64_t rows, int64_t head_dim, const float* out, int64_t out_stride,
                         const float* lse, float* acc_out, int64_t acc_stride, float* acc_lse, void* stream);
}  // namespace cuda
#endif

}  // namespace longnet::kernels
