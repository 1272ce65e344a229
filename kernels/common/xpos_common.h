#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "longnet/kernels/xpos.h"

// Pieces of XPOS shared by the table builder and the reference.
namespace longnet::kernels {

// Checks the row layout of an apply call against the head dimension it is meant for.
absl::Status validate_xpos_rows(const XposApplyShape& shape, int64_t head_dim);

// 10000^(-j / (D/2)): the angle of pair j per position.
double xpos_inv_freq(int64_t j, int64_t half_dim);

}  // namespace longnet::kernels
