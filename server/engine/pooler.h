#pragma once

#include <cstdint>
#include <vector>

#include "request.h"

// Folds an encoded document's hidden states, arriving block by block in position order, into its pooled
// vector: mean (in float64), first or last row; then optionally scaled to unit L2 norm.
namespace longnet::server {

class Pooler {
 public:
  Pooler(Pooling pooling, bool normalize, int64_t dim, int64_t total_rows);

  // Rows [first, first + rows) of `hidden`, each `stride` floats apart (the first `dim` used).
  void add(int64_t first, int64_t rows, const float* hidden, int64_t stride);

  // The pooled vector (empty for Pooling::kNone). A zero vector stays zero when normalized.
  std::vector<float> result() const;

 private:
  Pooling pooling_;
  bool normalize_;
  int64_t dim_;
  int64_t total_;
  std::vector<double> sum_;
};

}  // namespace longnet::server
