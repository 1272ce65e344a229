#include "longnet/kernels/embedding.h"

#include <cstdint>

#include "common/embedding_check.h"
#include "longnet/kernels/convert.h"

namespace longnet::kernels::reference {

absl::Status embedding(const EmbeddingShape& shape, const void* table, const int32_t* ids, float* out) {
  if (auto status = check_embedding(shape, ids); !status.ok()) return status;
  for (int64_t i = 0; i < shape.num_ids; ++i) {
    const int64_t offset = static_cast<int64_t>(ids[i]) * shape.dim;
    for (int64_t j = 0; j < shape.dim; ++j) {
      float value = 0.0f;
      switch (shape.table_dtype) {
        case DType::kF32:
          value = static_cast<const float*>(table)[offset + j];
          break;
        case DType::kF16:
          value = fp16_to_fp32(static_cast<const uint16_t*>(table)[offset + j]);
          break;
        case DType::kBF16:
          value = bf16_to_fp32(static_cast<const uint16_t*>(table)[offset + j]);
          break;
      }
      out[i * shape.out_stride + j] = shape.scale * value;
    }
  }
  return absl::OkStatus();
}

}  // namespace longnet::kernels::reference
