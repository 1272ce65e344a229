#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "longnet/kernels/dtype.h"
#include "longnet/kernels/thread_pool.h"

// XPOS (torchscale's xpos_rel_pos), as ../shared/design/MODEL_FORMAT.md defines it. For head dimension D,
// pair j < D/2 of a query or key at absolute 0-based position t is rotated by
//   theta[t,j] = t * 10000^(-j / (D/2))
// acting on (x[2j], x[2j+1]):  x0' = x0 cos - x1 sin,  x1' = x1 cos + x0 sin,
// and then scaled by zeta[t,j] = scale[j]^((t - c) / scale_base) for queries, divided by it for keys.
// Only q'.k' is ever used, where zeta enters as scale[j]^((t - u) / scale_base): the centre c cancels,
// provided a query and the keys it meets were built with the same c. Pick c inside the segment they
// share, so zeta stays finite at any absolute position (one global centre overflows float long before
// a million tokens). Angles and scales are computed in double and rounded to float once.
namespace longnet::kernels {

struct XposConfig {
  int64_t head_dim = 0;  // D, even
  double scale_base = 512.0;
  // D/2 per-pair scales: the checkpoint's layers.{i}.self_attn.xpos.scale buffer. Must be > 0.
  std::span<const float> scale;
};

// torchscale's initial value of the scale buffer: (2j + 0.4 D) / (1.4 D), rounded as float32 torch does.
std::vector<float> xpos_default_scale(int64_t head_dim);

// Tables for the positions [first_position, first_position + num_positions): row i describes position
// first_position + i and holds half_dim = D/2 entries per table.
struct XposTable {
  int64_t first_position = 0;
  int64_t num_positions = 0;
  int64_t half_dim = 0;
  double centre = 0.0;
  std::vector<float> cos;
  std::vector<float> sin;
  std::vector<float> q_scale;  // zeta
  std::vector<float> k_scale;  // 1 / zeta (computed as a power, not a division)
};

enum class XposRole { kQuery, kKey };

// Rows of num_heads * head_dim floats (head h at offset h * head_dim), row_stride floats apart (so q or
// k may sit inside a fused projection). Row r holds position first_position + r.
struct XposApplyShape {
  int64_t rows = 0;
  int64_t num_heads = 0;
  int64_t head_dim = 0;
  int64_t row_stride = 0;
  int64_t first_position = 0;
};

// InvalidArgument naming the field for an odd or non-positive head_dim, a scale of the wrong length or
// with a non-positive or non-finite entry, a non-positive scale_base, a negative position or count.
absl::Status validate_xpos(const XposConfig& config);

// What every position of a config shares, per pair j: the angle per position, 10000^(-j / (D/2)), and
// ln scale[j]. build_xpos_table derives them on every call; a caller that meets one position at a time (a
// decode step) derives them once.
struct XposPairConstants {
  double scale_base = 512.0;
  std::vector<double> inv_freq;
  std::vector<double> log_scale;
  int64_t half_dim() const { return static_cast<int64_t>(inv_freq.size()); }
};

// validate_xpos(config), then the constants of `config`.
absl::StatusOr<XposPairConstants> xpos_pair_constants(const XposConfig& config);

namespace cpu {
// Fills `table` (reusing its storage) for positions [first_position, first_position + num_positions).
absl::Status build_xpos_table(const XposConfig& config, int64_t first_position, int64_t num_positions,
                              double centre, XposTable* table, ThreadPool& pool);

// Rotates and scales x in place. InvalidArgument when the rows' positions are not all in the table, the
// head_dim does not match it, or the row stride is shorter than a row.
absl::Status apply_xpos(const XposApplyShape& shape, XposRole role, const XposTable& table, float* x,
                        ThreadPool& pool);

// One position at a time, for a decode step: it meets its position in every branch, each branch with its
// own centre, and only the scales depend on the centre. Unchecked (the constants come from a validated
// config; position >= 0; half_dim floats per array).
//
// Row `position` of a table built around `centre`, bit for bit what build_xpos_table writes there (it
// calls these two).
void xpos_rotation(const XposPairConstants& constants, int64_t position, float* cos, float* sin);
void xpos_scales(const XposPairConstants& constants, int64_t position, double centre, float* q_scale,
                 float* k_scale);
// apply_xpos on one row in two steps: every head of x rotated into `out` once, then one head scaled per
// centre (pair j of x times scale[j], into `out`; q_scale for a query, k_scale for a key). The same
// arithmetic as apply_xpos, in the same order. x and out may be the same.
void xpos_rotate_row(const float* cos, const float* sin, int64_t num_heads, int64_t head_dim, const float* x,
                     float* out);
void xpos_scale_head(const float* scale, int64_t head_dim, const float* x, float* out);
}  // namespace cpu

namespace reference {
// The definition evaluated directly in double for every element (no tables), rounded to float at the end.
absl::Status apply_xpos(const XposApplyShape& shape, XposRole role, const XposConfig& config, double centre,
                        float* x);
}  // namespace reference

#if defined(LONGNET_WITH_CUDA)
namespace cuda {
// An XposTable's four arrays in device memory (built on the host by cpu::build_xpos_table, then copied
// by upload_xpos_table): num_positions * half_dim floats each.
struct XposDeviceTable {
  int64_t first_position = 0;
  int64_t num_positions = 0;
  int64_t half_dim = 0;
  const float* cos = nullptr;
  const float* sin = nullptr;
  const float* q_scale = nullptr;
  const float* k_scale = nullptr;
};

// Floats of device memory a table of `num_positions` positions takes: 4 * num_positions * half_dim.
int64_t xpos_device_table_floats(const XposTable& table);

// Copies `table` into `device_floats` (at least xpos_device_table_floats(table) floats of device memory)
// and describes it in `view`. Queued on `stream`; the host table may change once the call returns.
absl::Status upload_xpos_table(const XposTable& table, float* device_floats, int64_t capacity_floats,
                               XposDeviceTable* view, void* stream);

// apply_xpos on device rows of `dtype` (fp32, fp16, bf16; rotated in fp32), in place, with the checks of
// cpu::apply_xpos. Queued on `stream`; launch errors are returned.
absl::Status apply_xpos(const XposApplyShape& shape, XposRole role, const XposDeviceTable& table, DType dtype,
                        void* x, void* stream);
}  // namespace cuda
#endif

}  // namespace longnet::kernels
