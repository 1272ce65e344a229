#include "longnet/kernels/softmax.h"

#include <cmath>
#include <cstdint>
#include <limits>

namespace longnet::kernels::reference {

void softmax(const SoftmaxShape& shape, const float* x, float* y, float* lse) {
  constexpr double kNegInf = -std::numeric_limits<double>::infinity();
  for (int64_t r = 0; r < shape.rows; ++r) {
    const float* xr = x + r * shape.x_stride;
    float* yr = y + r * shape.y_stride;
    double max = kNegInf;
    for (int64_t i = 0; i < shape.dim; ++i) {
      max = std::fmax(max, double{xr[i]});
    }
    if (max == kNegInf) {  // all entries masked (or dim == 0): zeros and lse = -inf by definition
      for (int64_t i = 0; i < shape.dim; ++i) {
        yr[i] = 0.0f;
      }
      if (lse != nullptr) lse[r] = static_cast<float>(kNegInf);
      continue;
    }
    double sum = 0.0;
    for (int64_t i = 0; i < shape.dim; ++i) {
      sum += std::exp(double{xr[i]} - max);
    }
    // Second exp pass instead of a buffer: y may alias x, so x must be read in full before y is written.
    for (int64_t i = 0; i < shape.dim; ++i) {
      yr[i] = static_cast<float>(std::exp(double{xr[i]} - max) / sum);
    }
    if (lse != nullptr) lse[r] = static_cast<float>(max + std::log(sum));
  }
}

}  // namespace longnet::kernels::reference
