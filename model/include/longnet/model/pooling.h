#pragma once

#include <cstdint>
#include <vector>

#include <string_view>

#include "absl/status/statusor.h"

// Folds an encoded document's hidden states, arriving block by block in position order, into its pooled
// vector: mean (in float64), first or last row; then optionally scaled to unit L2 norm. longnet-run encode
// and the server's encoding both pool with it.
namespace longnet::model {

enum class Pooling { kMean, kFirst, kLast, kNone };

// "mean", "first", "last", "none"; InvalidArgument naming the text and the choices.
absl::StatusOr<Pooling> parse_pooling(std::string_view name);

class Pooler {
 public:
  Pooler(Pooling pooling, bool normalize, int64_t dim, int64_t total_rows);

  // Rows [first, first + rows) of `hidden`, each `stride` floats apart (the first `dim` used).
  void add(int64_t first, int64_t rows, const float* hidden, int64_t stride);

  // The pooled vector, in float64 (empty for Pooling::kNone). A zero vector stays zero when normalized.
  std::vector<double> result() const;

 private:
  Pooling pooling_;
  bool normalize_;
  int64_t dim_;
  int64_t total_;
  std::vector<double> sum_;
};

}  // namespace longnet::model
