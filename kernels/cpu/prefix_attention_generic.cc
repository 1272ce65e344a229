#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/prefix_attention_ops.h"

// Portable loops: the fallback for processors without AVX2/FMA, and the plainest statement of what the
// SIMD versions compute.
namespace longnet::kernels::cpu {
namespace {

float scores_generic(const float* q, const float* k, int64_t k_stride, int64_t n, int64_t dim, float scale,
                     float* scores) {
  float max = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < n; ++j) {
    const float* kj = k + j * k_stride;
    float dot = 0.0f;
    for (int64_t d = 0; d < dim; ++d)
      dot += q[d] * kj[d];
    scores[j] = dot * scale;
    max = std::max(max, scores[j]);
  }
  return max;
}

float exp_sum_generic(float* p, int64_t n, float max) {
  float sum = 0.0f;
  for (int64_t j = 0; j < n; ++j) {
    p[j] = std::exp(p[j] - max);
    sum += p[j];
  }
  return sum;
}

void weighted_sum_generic(const float* p, const float* v, int64_t v_stride, int64_t n, int64_t dim,
                          float* acc) {
  std::fill(acc, acc + dim, 0.0f);
  for (int64_t j = 0; j < n; ++j) {
    const float* vj = v + j * v_stride;
    for (int64_t d = 0; d < dim; ++d)
      acc[d] += p[j] * vj[d];
  }
}

void pack_key_strips_generic(const float* k, int64_t k_stride, int64_t n, int64_t dim, float* strips) {
  constexpr int64_t kStrip = 16;
  for (int64_t s = 0; s * kStrip < n; ++s) {
    float* strip = strips + s * kStrip * dim;
    for (int64_t c = 0; c < kStrip; ++c) {
      const int64_t j = s * kStrip + c;
      for (int64_t d = 0; d < dim; ++d)
        strip[d * kStrip + c] = j < n ? k[j * k_stride + d] : 0.0f;
    }
  }
}

}  // namespace

const PrefixAttentionOps& prefix_attention_ops_generic() {
  static constexpr PrefixAttentionOps ops{scores_generic, exp_sum_generic, weighted_sum_generic,
                                          pack_key_strips_generic};
  return ops;
}

}  // namespace longnet::kernels::cpu
