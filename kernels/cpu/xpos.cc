#include "longnet/kernels/xpos.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/xpos_common.h"
#include "cpu/parallel.h"

namespace longnet::kernels::cpu {

// Angles and scales in double, rounded to float once: in float, t * inv_freq alone loses 1e-3 rad by
// t = 16K.
void xpos_rotation(const XposPairConstants& constants, int64_t position, float* cos, float* sin) {
  const auto t = static_cast<double>(position);
  for (int64_t j = 0; j < constants.half_dim(); ++j) {
    const double theta = t * constants.inv_freq[static_cast<size_t>(j)];
    cos[j] = static_cast<float>(std::cos(theta));
    sin[j] = static_cast<float>(std::sin(theta));
  }
}

void xpos_scales(const XposPairConstants& constants, int64_t position, double centre, float* q_scale,
                 float* k_scale) {
  const double power = (static_cast<double>(position) - centre) / constants.scale_base;
  for (int64_t j = 0; j < constants.half_dim(); ++j) {
    const double log_scale = constants.log_scale[static_cast<size_t>(j)];
    q_scale[j] = static_cast<float>(std::exp(power * log_scale));
    k_scale[j] = static_cast<float>(std::exp(-power * log_scale));
  }
}

absl::Status build_xpos_table(const XposConfig& config, int64_t first_position, int64_t num_positions,
                              double centre, XposTable* table, ThreadPool& pool) {
  absl::StatusOr<XposPairConstants> constants = xpos_pair_constants(config);
  if (!constants.ok()) return constants.status();
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
  parallel_rows(pool, num_positions, 4 * half, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const auto at = static_cast<size_t>(i * half);
      xpos_rotation(*constants, first_position + i, table->cos.data() + at, table->sin.data() + at);
      xpos_scales(*constants, first_position + i, centre, table->q_scale.data() + at,
                  table->k_scale.data() + at);
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

void xpos_rotate_row(const float* cos, const float* sin, int64_t num_heads, int64_t head_dim, const float* x,
                     float* out) {
  for (int64_t h = 0; h < num_heads; ++h) {
    const float* in = x + h * head_dim;
    float* o = out + h * head_dim;
    for (int64_t j = 0; j < head_dim / 2; ++j) {
      const float x0 = in[2 * j];
      const float x1 = in[2 * j + 1];
      o[2 * j] = x0 * cos[j] - x1 * sin[j];
      o[2 * j + 1] = x1 * cos[j] + x0 * sin[j];
    }
  }
}

void xpos_scale_head(const float* scale, int64_t head_dim, const float* x, float* out) {
  for (int64_t j = 0; j < head_dim / 2; ++j) {
    out[2 * j] = x[2 * j] * scale[j];
    out[2 * j + 1] = x[2 * j + 1] * scale[j];
  }
}

}  // namespace longnet::kernels::cpu
