#include "longnet/kernels/xpos.h"

#include <cmath>
#include <cstdint>

#include "absl/status/status.h"
#include "common/xpos_common.h"

namespace longnet::kernels::reference {

absl::Status apply_xpos(const XposApplyShape& shape, XposRole role, const XposConfig& config, double centre,
                        float* x) {
  if (auto status = validate_xpos(config); !status.ok()) return status;
  if (auto status = validate_xpos_rows(shape, config.head_dim); !status.ok()) return status;
  const int64_t half = config.head_dim / 2;
  for (int64_t r = 0; r < shape.rows; ++r) {
    const auto t = static_cast<double>(shape.first_position + r);
    for (int64_t h = 0; h < shape.num_heads; ++h) {
      float* v = x + r * shape.row_stride + h * shape.head_dim;
      for (int64_t j = 0; j < half; ++j) {
        const double theta = t * std::pow(10000.0, -static_cast<double>(j) / static_cast<double>(half));
        double zeta = std::pow(static_cast<double>(config.scale[j]), (t - centre) / config.scale_base);
        if (role == XposRole::kKey) zeta = 1.0 / zeta;
        const double x0 = v[2 * j];
        const double x1 = v[2 * j + 1];
        v[2 * j] = static_cast<float>((x0 * std::cos(theta) - x1 * std::sin(theta)) * zeta);
        v[2 * j + 1] = static_cast<float>((x1 * std::cos(theta) + x0 * std::sin(theta)) * zeta);
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace longnet::kernels::reference
