#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/attention_tile.h"

// Portable tile loops: the fallback for processors without AVX2/FMA, and the plainest statement of
// what the AVX2 versions compute.
namespace longnet::kernels::cpu {
namespace {

void scores_generic(const float* q, int64_t rows, int64_t head_dim, const float* k_strips, int64_t strips,
                    float* scores, int64_t ld_scores) {
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t c = 0; c < strips * kKeyStrip; ++c) {
      const float* strip = k_strips + (c / kKeyStrip) * head_dim * kKeyStrip + c % kKeyStrip;
      float dot = 0.0f;
      for (int64_t d = 0; d < head_dim; ++d)
        dot += q[i * head_dim + d] * strip[d * kKeyStrip];
      scores[i * ld_scores + c] = dot;
    }
  }
}

void softmax_step_generic(float* scores, int64_t rows, int64_t cols, int64_t ld_scores, const int64_t* limit,
                          float* m, float* l, float* acc, int64_t dim_padded) {
  for (int64_t i = 0; i < rows; ++i) {
    float* row = scores + i * ld_scores;
    const int64_t valid = std::clamp<int64_t>(limit[i], 0, cols);
    float block_max = -std::numeric_limits<float>::infinity();
    for (int64_t c = 0; c < valid; ++c)
      block_max = std::max(block_max, row[c]);
    if (valid == 0) {
      std::fill(row, row + cols, 0.0f);
      continue;
    }
    const float new_max = std::max(m[i], block_max);
    const float alpha = std::exp(m[i] - new_max);  // 0 when m[i] is still -inf
    float sum = 0.0f;
    for (int64_t c = 0; c < cols; ++c) {
      row[c] = c < valid ? std::exp(row[c] - new_max) : 0.0f;
      sum += row[c];
    }
    if (alpha != 1.0f) {
      for (int64_t d = 0; d < dim_padded; ++d)
        acc[i * dim_padded + d] *= alpha;
    }
    l[i] = l[i] * alpha + sum;
    m[i] = new_max;
  }
}

void accumulate_values_generic(const float* p, int64_t rows, int64_t keys, int64_t ld_p, const float* v,
                               float* acc, int64_t dim_padded) {
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < keys; ++j) {
      const float pij = p[i * ld_p + j];
      if (pij == 0.0f) continue;
      for (int64_t d = 0; d < dim_padded; ++d)
        acc[i * dim_padded + d] += pij * v[j * dim_padded + d];
    }
  }
}

}  // namespace

const AttentionTileOps& attention_tile_ops_generic() {
  static constexpr AttentionTileOps ops{scores_generic, softmax_step_generic, accumulate_values_generic};
  return ops;
}

}  // namespace longnet::kernels::cpu
