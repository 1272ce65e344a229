#include "longnet/model/pooling.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace longnet::model {

absl::StatusOr<Pooling> parse_pooling(std::string_view name) {
  if (name == "mean") return Pooling::kMean;
  if (name == "first") return Pooling::kFirst;
  if (name == "last") return Pooling::kLast;
  if (name == "none") return Pooling::kNone;
  return absl::InvalidArgumentError(
      absl::StrCat("pooling '", std::string(name), "' is not one of mean, first, last, none"));
}

Pooler::Pooler(Pooling pooling, bool normalize, int64_t dim, int64_t total_rows)
    : pooling_(pooling),
      normalize_(normalize),
      dim_(dim),
      total_(total_rows),
      sum_(pooling == Pooling::kNone ? 0 : static_cast<size_t>(dim), 0.0) {}

void Pooler::add(int64_t first, int64_t rows, const float* hidden, int64_t stride) {
  if (pooling_ == Pooling::kNone) return;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t pos = first + r;
    const bool take = pooling_ == Pooling::kMean || (pooling_ == Pooling::kFirst && pos == 0) ||
                      (pooling_ == Pooling::kLast && pos == total_ - 1);
    if (!take) continue;
    const float* h = hidden + r * stride;
    for (int64_t d = 0; d < dim_; ++d)
      sum_[static_cast<size_t>(d)] += h[d];
  }
}

std::vector<double> Pooler::result() const {
  std::vector<double> v = sum_;
  if (pooling_ == Pooling::kMean && total_ > 0) {
    for (double& x : v)
      x /= static_cast<double>(total_);
  }
  if (normalize_) {
    double norm = 0.0;
    for (double x : v)
      norm += x * x;
    norm = std::sqrt(norm);
    if (norm > 0.0) {
      for (double& x : v)
        x /= norm;
    }
  }
  return v;
}

}  // namespace longnet::model
