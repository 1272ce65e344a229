#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "longnet/kernels/convert.h"
#include "longnet/kernels/thread_pool.h"

// Token embedding lookup: out row i = scale * table[ids[i]], widened to float32 from the table's
// storage type (weights stay fp16/bf16 in memory as they were in the file).
namespace longnet::kernels {

struct EmbeddingShape {
  int64_t vocab_size = 0;  // table rows
  int64_t dim = 0;         // table columns (the table is contiguous: row stride == dim)
  int64_t num_ids = 0;
  int64_t out_stride = 0;  // floats between output rows, >= dim
  DType table_dtype = DType::kF32;
  float scale = 1.0f;  // embed_scale: sqrt(dim) unless no_scale_embedding
};

// Every id is checked before anything is written: an id outside [0, vocab_size) gives InvalidArgument
// naming the id, its index and the vocabulary size, and leaves `out` untouched.
namespace cpu {
absl::Status embedding(const EmbeddingShape& shape, const void* table, const int32_t* ids, float* out,
                       ThreadPool& pool);
}  // namespace cpu

namespace reference {
absl::Status embedding(const EmbeddingShape& shape, const void* table, const int32_t* ids, float* out);
}  // namespace reference

#if defined(LONGNET_WITH_CUDA)
namespace cuda {
// The lookup on a CUDA device: `table` and `out` are device memory. The ids come from the host
// (`host_ids`) and are checked there exactly as on the CPU before anything is queued, then copied into
// `device_ids` (device memory for num_ids ids; the host array may be reused once the call returns).
// Queued on `stream` (a cudaStream_t; nullptr = the default stream); launch errors are returned.
absl::Status embedding(const EmbeddingShape& shape, const void* table, const int32_t* host_ids,
                       int32_t* device_ids, float* out, void* stream);

// For ids already on the device (sampled there): nothing can be checked before the launch, so an id
// outside [0, vocab_size) gets a row of NaN (never a read outside the table) for the caller to notice.
// Shape errors (negative sizes, out_stride < dim) are InvalidArgument.
absl::Status embedding_device_ids(const EmbeddingShape& shape, const void* table, const int32_t* device_ids,
                                  float* out, void* stream);
}  // namespace cuda
#endif

}  // namespace longnet::kernels
