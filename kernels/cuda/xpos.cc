#include "longnet/kernels/xpos.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "common/xpos_common.h"
#include "cuda/attention_launch.h"
#include "longnet/kernels/cuda_device.h"

// The host side of XPOS on CUDA: the table upload and the checks of cpu::apply_xpos (kernel in
// xpos_kernel.cu).
namespace longnet::kernels::cuda {

int64_t xpos_device_table_floats(const XposTable& table) {
  return 4 * table.num_positions * table.half_dim;
}

absl::Status upload_xpos_table(const XposTable& table, float* device_floats, int64_t capacity_floats,
                               XposDeviceTable* view, void* stream) {
  const int64_t n = table.num_positions * table.half_dim;
  if (capacity_floats < 4 * n) {
    return absl::InvalidArgumentError(
        absl::StrCat("xpos: the device buffer holds ", capacity_floats, " floats; the table needs ", 4 * n));
  }
  for (const std::vector<float>* part : {&table.cos, &table.sin, &table.q_scale, &table.k_scale}) {
    if (static_cast<int64_t>(part->size()) != n) {
      return absl::InvalidArgumentError(absl::StrCat("xpos: a table array holds ", part->size(),
                                                     " floats; num_positions * half_dim = ", n));
    }
  }
  const auto s = static_cast<cudaStream_t>(stream);
  float* dst = device_floats;
  const float* parts[4] = {};
  int i = 0;
  for (const std::vector<float>* part : {&table.cos, &table.sin, &table.q_scale, &table.k_scale}) {
    // From pageable memory the copy is staged before cudaMemcpyAsync returns.
    if (n > 0) {
      absl::Status st = to_status(cudaMemcpyAsync(dst, part->data(), static_cast<size_t>(n) * sizeof(float),
                                                  cudaMemcpyHostToDevice, s),
                                  "xpos: copying the table to the device");
      if (!st.ok()) return st;
    }
    parts[i++] = dst;
    dst += n;
  }
  *view = {table.first_position, table.num_positions, table.half_dim, parts[0], parts[1], parts[2], parts[3]};
  return absl::OkStatus();
}

absl::Status apply_xpos(const XposApplyShape& shape, XposRole role, const XposDeviceTable& table, DType dtype,
                        void* x, void* stream) {
  if (auto status = validate_xpos_rows(shape, 2 * table.half_dim); !status.ok()) return status;
  const int64_t first_row = shape.first_position - table.first_position;
  if (first_row < 0 || first_row + shape.rows > table.num_positions) {
    return absl::InvalidArgumentError(absl::StrCat("xpos: positions [", shape.first_position, ", ",
                                                   shape.first_position + shape.rows,
                                                   ") are not all in the table's [", table.first_position,
                                                   ", ", table.first_position + table.num_positions, ")"));
  }
  XposLaunchArgs args;
  args.rows = shape.rows;
  args.num_heads = shape.num_heads;
  args.head_dim = shape.head_dim;
  args.row_stride = shape.row_stride;
  args.first_row = first_row;
  args.cos = table.cos;
  args.sin = table.sin;
  args.scale = role == XposRole::kQuery ? table.q_scale : table.k_scale;
  return to_status(launch_xpos(dtype, args, x, static_cast<cudaStream_t>(stream)), "apply_xpos launch");
}

}  // namespace longnet::kernels::cuda
