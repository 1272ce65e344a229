#include "longnet/kernels/xpos.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/xpos_common.h"
#include "cpu/parallel.h"

namespace longnet::kernels::cpu {

absl::Status build_xpos_table(const XposConfig& config, int64_t first_position, int64_t num_positions,
                              double centre, XposTable* table, ThreadPool& pool) {
  if (auto status = validate_xpos(config); !status.ok()) return status;
  if (first_position < 0 || num_positions < 0) {
    return absl::InvalidArgumentError(absl::StrCat("xpos: first_position = ", first_position,
                                                   " and num_positions = ", num_positions,
                                                   " must not be negative"));
  }
  if (!std::isfinite(centre)) return absl::InvalidArgumentError(absl::StrCat("xpos: centre = ", centre));
  const int64_t half = config.head_dim / 2;
  const auto size = static_cast<size_t>(num_positions * half);
  table->first_position = first_position;
  table->num_positions = num_positions;
  table->half_dim = half;
  table->centre = centre;
  table->cos.resize(size);
  table->sin.resize(size);
  table->q_scale.resize(size);
  table->k_scale.resize(size);

  std::vector<double> inv_freq(static_cast<size_t>(half));
  std::vector<double> log_scale(static_cast<size_t>(half));
  for (int64_t j = 0; j < half; ++j) {
    inv_freq[j] = xpos_inv_freq(j, half);
    log_scale[j] = std::log(static_cast<double>(config.scale[j]));
  }
  // Everything in double and rounded once: in float, t * inv_freq alone loses 1e-3 rad by t = 16K.
  parallel_rows(pool, num_positions, 4 * half, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const auto t = static_cast<double>(first_position + i);
      const double power = (t - centre) / config.scale_base;
      for (int64_t j = 0; j < half; ++j) {
        const double theta = t * inv_freq[j];
        const auto at = static_cast<size_t>(i * half + j);
        table->cos[at] = static_cast<float>(std::cos(theta));
        table->sin[at] = static_cast<float>(std::sin(theta));
        table->q_scale[at] = static_cast<float>(std::exp(power * log_scale[j]));
        table->k_scale[at] = static_cast<float>(std::exp(-power * log_scale[j]));
      }
    }
  });
  return absl::OkStatus();
}

absl::Status apply_xpos(const XposApplyShape& shape, XposRole role, const XposTable& table, float* x,
                        ThreadPool& pool) {
  if (auto status = validate_xpos_rows(shape, 2 * table.half_dim); !status.ok()) return status;
  const int64_t first_row = shape.first_position - table.first_position;
  if (first_row < 0 || first_row + shape.rows > table.num_positions) {
    return absl::InvalidArgumentError(absl::StrCat("xpos: positions [", shape.first_position, ", ",
                                                   shape.first_position + shape.rows,
                                                   ") are not all in the table's [", table.first_position,
                                                   ", ", table.first_position + table.num_positions, ")"));
  }
  const int64_t half = table.half_dim;
  const std::vector<float>& zeta = role == XposRole::kQuery ? table.q_scale : table.k_scale;
  parallel_rows(pool, shape.rows, shape.num_heads * shape.head_dim, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const auto t = static_cast<size_t>((first_row + r) * half);
      const float* cos = table.cos.data() + t;
      const float* sin = table.sin.data() + t;
      const float* scale = zeta.data() + t;
      for (int64_t h = 0; h < shape.num_heads; ++h) {
        float* v = x + r * shape.row_stride + h * shape.head_dim;
        for (int64_t j = 0; j < half; ++j) {
          const float x0 = v[2 * j];
          const float x1 = v[2 * j + 1];
          v[2 * j] = (x0 * cos[j] - x1 * sin[j]) * scale[j];
          v[2 * j + 1] = (x1 * cos[j] + x0 * sin[j]) * scale[j];
        }
      }
    }
  });
  return absl::OkStatus();
}

}  // namespace longnet::kernels::cpu
