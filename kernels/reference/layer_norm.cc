#include "longnet/kernels/layer_norm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace longnet::kernels::reference {

void layer_norm(const LayerNormShape& shape, const float* x, const float* gamma, const float* beta,
                float* y) {
  std::vector<double> row(static_cast<size_t>(std::max<int64_t>(0, shape.dim)));
  for (int64_t r = 0; r < shape.rows; ++r) {
    const float* xr = x + r * shape.x_stride;
    double mean = 0.0;
    for (int64_t i = 0; i < shape.dim; ++i) {
      row[i] = xr[i];  // copied first: y may alias x
      mean += row[i];
    }
    mean /= static_cast<double>(shape.dim);
    double var = 0.0;
    for (int64_t i = 0; i < shape.dim; ++i) {
      var += (row[i] - mean) * (row[i] - mean);
    }
    var /= static_cast<double>(shape.dim);
    const double rstd = 1.0 / std::sqrt(var + double{shape.eps});
    float* yr = y + r * shape.y_stride;
    for (int64_t i = 0; i < shape.dim; ++i) {
      yr[i] = static_cast<float>((row[i] - mean) * rstd * gamma[i] + beta[i]);
    }
  }
}

}  // namespace longnet::kernels::reference
