// Token embedding lookup (embedding.h) on CUDA: one block per id (ids strided past the grid cap), the
// row read coalesced and widened to fp32 from the table's storage type.
#include <cuda_runtime.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/embedding_check.h"
#include "cuda/device_utils.cuh"
#include "longnet/kernels/cuda_device.h"
#include "longnet/kernels/embedding.h"

namespace longnet::kernels::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    embedding_kernel(EmbeddingShape shape, const T* table, const int32_t* ids, float* out) {
  for (int64_t i = blockIdx.x; i < shape.num_ids; i += gridDim.x) {
    const int32_t id = ids[i];
    float* row = out + i * shape.out_stride;
    if (id < 0 || id >= shape.vocab_size) {  // only reachable from embedding_device_ids
      for (int64_t j = threadIdx.x; j < shape.dim; j += blockDim.x)
        row[j] = NAN;
      continue;
    }
    const T* src = table + static_cast<int64_t>(id) * shape.dim;
    for (int64_t j = threadIdx.x; j < shape.dim; j += blockDim.x)
      row[j] = shape.scale * to_float(src[j]);
  }
}

absl::Status launch(const EmbeddingShape& shape, const void* table, const int32_t* ids, float* out,
                    cudaStream_t stream) {
  if (shape.num_ids == 0 || shape.dim == 0) return absl::OkStatus();
  const unsigned grid =
      static_cast<unsigned>(shape.num_ids < kMaxGridBlocks ? shape.num_ids : kMaxGridBlocks);
  dispatch_dtype(shape.table_dtype, [&](auto type_tag) {
    using T = decltype(type_tag);
    embedding_kernel<T><<<grid, kThreads, 0, stream>>>(shape, static_cast<const T*>(table), ids, out);
  });
  return to_status(cudaGetLastError(), "embedding launch");
}

}  // namespace

absl::Status embedding(const EmbeddingShape& shape, const void* table, const int32_t* host_ids,
                       int32_t* device_ids, float* out, void* stream) {
  if (absl::Status status = check_embedding(shape, host_ids); !status.ok()) return status;
  if (shape.num_ids == 0) return absl::OkStatus();
  const auto s = static_cast<cudaStream_t>(stream);
  // From pageable memory the copy is staged before cudaMemcpyAsync returns, so host_ids may go at once.
  absl::Status copied =
      to_status(cudaMemcpyAsync(device_ids, host_ids, static_cast<size_t>(shape.num_ids) * sizeof(int32_t),
                                cudaMemcpyHostToDevice, s),
                "embedding: copying the ids to the device");
  if (!copied.ok()) return copied;
  return launch(shape, table, device_ids, out, s);
}

absl::Status embedding_device_ids(const EmbeddingShape& shape, const void* table, const int32_t* device_ids,
                                  float* out, void* stream) {
  EmbeddingShape sizes = shape;  // the ids are on the device: check everything else
  sizes.num_ids = shape.num_ids > 1 ? 2 : shape.num_ids;
  const int32_t valid_ids[2] = {0, 0};
  if (shape.vocab_size > 0 || shape.num_ids <= 0) {
    if (absl::Status status = check_embedding(sizes, valid_ids); !status.ok()) return status;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("embedding: vocab_size = ", shape.vocab_size,
                                                   " leaves no valid id for ", shape.num_ids, " ids"));
  }
  return launch(shape, table, device_ids, out, static_cast<cudaStream_t>(stream));
}

}  // namespace longnet::kernels::cuda
