#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/embedding_check.h"
#include "longnet/kernels/embedding.h"

namespace longnet::kernels {

absl::Status check_embedding(const EmbeddingShape& shape, const int32_t* ids) {
  if (shape.vocab_size < 0 || shape.dim < 0 || shape.num_ids < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("embedding: negative size (vocab_size = ", shape.vocab_size, ", dim = ", shape.dim,
                     ", num_ids = ", shape.num_ids, ")"));
  }
  if (shape.num_ids > 1 && shape.out_stride < shape.dim) {
    return absl::InvalidArgumentError(
        absl::StrCat("embedding: out_stride = ", shape.out_stride, " is smaller than dim = ", shape.dim));
  }
  for (int64_t i = 0; i < shape.num_ids; ++i) {
    if (ids[i] < 0 || ids[i] >= shape.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("embedding: token id ", ids[i], " at index ", i,
                                                     " is outside the vocabulary of size ",
                                                     shape.vocab_size));
    }
  }
  return absl::OkStatus();
}

}  // namespace longnet::kernels
