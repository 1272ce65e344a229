#include "longnet/kernels/embedding.h"

#include <cstdint>
#include <cstring>

#include "common/embedding_check.h"
#include "cpu/parallel.h"
#include "longnet/kernels/convert.h"

namespace longnet::kernels::cpu {

absl::Status embedding(const EmbeddingShape& shape, const void* table, const int32_t* ids, float* out,
                       ThreadPool& pool) {
  if (auto status = check_embedding(shape, ids); !status.ok()) return status;
  const int64_t dim = shape.dim;
  parallel_rows(pool, shape.num_ids, dim, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t offset = static_cast<int64_t>(ids[i]) * dim;
      float* row = out + i * shape.out_stride;
      switch (shape.table_dtype) {
        case DType::kF32:
          std::memcpy(row, static_cast<const float*>(table) + offset,
                      static_cast<size_t>(dim) * sizeof(float));
          break;
        case DType::kF16:
          fp16_to_fp32(static_cast<const uint16_t*>(table) + offset, row, dim);
          break;
        case DType::kBF16:
          bf16_to_fp32(static_cast<const uint16_t*>(table) + offset, row, dim);
          break;
      }
      if (shape.scale != 1.0f) {
        for (int64_t j = 0; j < dim; ++j) {
          row[j] *= shape.scale;
        }
      }
    }
  });
  return absl::OkStatus();
}

}  // namespace longnet::kernels::cpu
