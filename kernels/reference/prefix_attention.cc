#include "longnet/kernels/prefix_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

// Straight from the definitions in prefix_attention.h, one query (or row) at a time, in double precision.
namespace longnet::kernels::reference {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

}  // namespace

absl::Status prefix_attention(const PrefixAttentionShape& shape, const float* q, const float* k,
                              const float* v, std::span<const int64_t> key_limit, float* out, float* lse) {
  if (absl::Status st = validate_prefix_attention(shape, key_limit); !st.ok()) return st;
  const int64_t dim = shape.head_dim;
  const double scale = shape.scale > 0.0f ? shape.scale : 1.0 / std::sqrt(static_cast<double>(dim));
  std::vector<double> scores;
  std::vector<double> acc(static_cast<size_t>(dim));
  for (int64_t j = 0; j < shape.num_queries; ++j) {
    const float* qj = q + j * shape.q_stride;
    const int64_t limit = key_limit[static_cast<size_t>(j)];
    scores.assign(static_cast<size_t>(limit), 0.0);
    double max_score = kNegInf;
    for (int64_t u = 0; u < limit; ++u) {
      const float* ku = k + u * shape.k_stride;
      double dot = 0.0;
      for (int64_t d = 0; d < dim; ++d)
        dot += static_cast<double>(qj[d]) * static_cast<double>(ku[d]);
      scores[static_cast<size_t>(u)] = dot * scale;
      max_score = std::max(max_score, dot * scale);
    }
    double sum = 0.0;
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t u = 0; u < limit; ++u) {
      const double p = std::exp(scores[static_cast<size_t>(u)] - max_score);
      sum += p;
      const float* vu = v + u * shape.v_stride;
      for (int64_t d = 0; d < dim; ++d)
        acc[static_cast<size_t>(d)] += p * vu[d];
    }
    float* oj = out + j * shape.out_stride;
    for (int64_t d = 0; d < dim; ++d)
      oj[d] = limit == 0 ? 0.0f : static_cast<float>(acc[static_cast<size_t>(d)] / sum);
    if (lse != nullptr)
      lse[j] = limit == 0 ? -std::numeric_limits<float>::infinity()
                          : static_cast<float>(max_score + std::log(sum));
  }
  return absl::OkStatus();
}

void merge_attention_lse(int64_t rows, int64_t head_dim, const float* out, int64_t out_stride,
                         const float* lse, float* acc_out, int64_t acc_stride, float* acc_lse) {
  for (int64_t i = 0; i < rows; ++i) {
    const double a = acc_lse[i];
    const double b = lse[i];
    if (b == kNegInf) continue;  // an empty branch: nothing to add
    const double total = a == kNegInf ? b : std::max(a, b) + std::log1p(std::exp(-std::abs(a - b)));
    const double w_acc = std::exp(a - total);  // 0 when the accumulator is still empty
    const double w_new = std::exp(b - total);
    float* acc_row = acc_out + i * acc_stride;
    const float* row = out + i * out_stride;
    for (int64_t d = 0; d < head_dim; ++d) {
      const double merged = a == kNegInf ? row[d] : w_acc * acc_row[d] + w_new * row[d];
      acc_row[d] = static_cast<float>(merged);
    }
    acc_lse[i] = static_cast<float>(total);
  }
}

}  // namespace longnet::kernels::reference
