#include <cmath>
#include <limits>
#include <vector>

#include "longnet/kernels/dilated_attention.h"

// Straight from LONGNET.md, one (sequence, head, token) at a time, in double precision.
namespace longnet::kernels::reference {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

struct BranchResult {
  double lse = kNegInf;  // -inf: the token is not visible to this head in this branch
  std::vector<double> out;
};

BranchResult attend_branch(const DilatedAttentionShape& shape, const DilatedBranch& branch, bool causal,
                           double scale, const float* q, const float* k, const float* v, int64_t start,
                           int64_t len, int64_t head, int64_t t) {
  const int64_t d_count = shape.head_dim;
  BranchResult res;
  const int64_t w = effective_segment_length(branch.segment_length, len);
  const int64_t r = branch.dilation;
  const int64_t offset = head_offset(head, shape.num_heads, r);
  if (!is_visible(t, w, r, offset)) return res;

  const int64_t seg_begin = (t / w) * w;
  const int64_t seg_end = std::min(seg_begin + w, len);
  const float* qt = q + (start + t) * shape.q_stride + head * d_count;
  std::vector<int64_t> keys;
  std::vector<double> scores;
  for (int64_t u = seg_begin; u < seg_end; ++u) {
    if (!is_visible(u, w, r, offset) || (causal && u > t)) continue;
    const float* ku = k + (start + u) * shape.k_stride + head * d_count;
    double dot = 0.0;
    for (int64_t d = 0; d < d_count; ++d)
      dot += static_cast<double>(qt[d]) * static_cast<double>(ku[d]);
    keys.push_back(u);
    scores.push_back(dot * scale);
  }
  double max_score = kNegInf;
  for (double s : scores)
    max_score = std::max(max_score, s);
  double sum = 0.0;
  for (double& s : scores) {
    s = std::exp(s - max_score);
    sum += s;
  }
  res.lse = max_score + std::log(sum);
  res.out.assign(static_cast<size_t>(d_count), 0.0);
  for (size_t j = 0; j < keys.size(); ++j) {
    const float* vu = v + (start + keys[j]) * shape.v_stride + head * d_count;
    for (int64_t d = 0; d < d_count; ++d)
      res.out[static_cast<size_t>(d)] += scores[j] / sum * vu[d];
  }
  return res;
}

}  // namespace

absl::Status dilated_attention(const DilatedAttentionShape& shape, const DilatedAttentionParams& params,
                               const float* q, const float* k, const float* v, float* out, float* lse) {
  if (absl::Status st = validate_dilated_attention(shape, params); !st.ok()) return st;
  const double scale =
      params.scale > 0.0f ? params.scale : 1.0 / std::sqrt(static_cast<double>(shape.head_dim));
  const auto d_count = static_cast<size_t>(shape.head_dim);

  for (size_t b = 0; b < shape.seq_lens.size(); ++b) {
    const int64_t start = shape.seq_starts[b];
    const int64_t len = shape.seq_lens[b];
    for (int64_t t = 0; t < len; ++t) {
      for (int64_t h = 0; h < shape.num_heads; ++h) {
        // Merge the branches where t is visible by their LSE weights.
        std::vector<BranchResult> results;
        double total = kNegInf;
        for (const DilatedBranch& br : params.branches) {
          BranchResult res = attend_branch(shape, br, params.causal, scale, q, k, v, start, len, h, t);
          if (res.lse == kNegInf) continue;
          total = total == kNegInf
                      ? res.lse
                      : std::max(total, res.lse) + std::log1p(std::exp(-std::abs(total - res.lse)));
          results.push_back(std::move(res));
        }
        std::vector<double> merged(d_count, 0.0);
        for (const BranchResult& res : results) {
          const double weight = std::exp(res.lse - total);
          for (size_t d = 0; d < d_count; ++d)
            merged[d] += weight * res.out[d];
        }
        float* o = out + (start + t) * shape.out_stride + h * shape.head_dim;
        for (size_t d = 0; d < d_count; ++d)
          o[d] = static_cast<float>(merged[d]);
        lse[(start + t) * shape.num_heads + h] = static_cast<float>(total);
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace longnet::kernels::reference
