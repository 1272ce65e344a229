#include <algorithm>
#include <cmath>
#include <limits>

#include "longnet/kernels/prefix_attention.h"

// LSE merge of one branch into an accumulator. O(rows * head_dim) against the O(rows * keys * head_dim) of
// the attention that produced the branch, so one plain loop (auto-vectorised) and no threads.
namespace longnet::kernels::cpu {

void merge_attention_lse(int64_t rows, int64_t head_dim, const float* out, int64_t out_stride,
                         const float* lse, float* acc_out, int64_t acc_stride, float* acc_lse) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < rows; ++i) {
    const float a = acc_lse[i];
    const float b = lse[i];
    if (b == kNegInf) continue;  // an empty branch adds nothing
    float* acc = acc_out + i * acc_stride;
    const float* row = out + i * out_stride;
    if (a == kNegInf) {  // the first branch: a copy (whatever acc held is not read)
      for (int64_t d = 0; d < head_dim; ++d)
        acc[d] = row[d];
      acc_lse[i] = b;
      continue;
    }
    // With L = max + log(1 + e^-|a-b|), the weights exp(a - L) and exp(b - L) are the two shares of one
    // softmax over {a, b}: both come from a single e^-|a-b|, which cannot overflow.
    const float e = std::exp(-std::abs(a - b));
    const float inv = 1.0f / (1.0f + e);
    const float w_acc = a >= b ? inv : e * inv;
    const float w_new = a >= b ? e * inv : inv;
    for (int64_t d = 0; d < head_dim; ++d)
      acc[d] = w_acc * acc[d] + w_new * row[d];
    acc_lse[i] = std::max(a, b) + std::log1p(e);
  }
}

}  // namespace longnet::kernels::cpu
