#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "longnet/kernels/embedding.h"

namespace longnet::kernels {

// The input checks both embedding implementations run before writing anything.
absl::Status check_embedding(const EmbeddingShape& shape, const int32_t* ids);

}  // namespace longnet::kernels
