#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "longnet/kernels/gemm.h"

namespace longnet::kernels {
namespace {

// BLAS libraries (OpenBLAS in its usual build, cuBLAS) take 32-bit dimensions.
constexpr int64_t kBlasIntMax = std::numeric_limits<int32_t>::max();

absl::Status check_dim(const char* op, const char* name, int64_t value, int64_t min) {
  if (value < min || value > kBlasIntMax) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, ": ", name, " = ", value, " is outside [", min, ", ", kBlasIntMax, "]"));
  }
  return absl::OkStatus();
}

absl::Status check_ld(const char* op, const char* name, int64_t value, int64_t cols) {
  if (value < cols || value > kBlasIntMax) {
    return absl::InvalidArgumentError(absl::StrCat(
        op, ": ", name, " = ", value, " is smaller than the row length ", cols, " or too large"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status validate_gemm(const GemmShape& s) {
  constexpr const char* kOp = "gemm";
  for (auto [name, value] : {std::pair{"m", s.m}, std::pair{"n", s.n}, std::pair{"k", s.k}}) {
    if (auto st = check_dim(kOp, name, value, 0); !st.ok()) return st;
  }
  const int64_t a_cols = s.trans_a == Transpose::kNo ? s.k : s.m;
  const int64_t b_cols = s.trans_b == Transpose::kNo ? s.n : s.k;
  if (auto st = check_ld(kOp, "lda", s.lda, std::max<int64_t>(1, a_cols)); !st.ok()) return st;
  if (auto st = check_ld(kOp, "ldb", s.ldb, std::max<int64_t>(1, b_cols)); !st.ok()) return st;
  return check_ld(kOp, "ldc", s.ldc, std::max<int64_t>(1, s.n));
}

absl::Status validate_gemm(const GemmShape& s, const GemmBatch& batch) {
  if (auto st = validate_gemm(s); !st.ok()) return st;
  if (batch.count < 0) {
    return absl::InvalidArgumentError(absl::StrCat("gemm: batch count = ", batch.count, " is negative"));
  }
  for (auto [name, value] : {std::pair{"stride_a", batch.stride_a}, std::pair{"stride_b", batch.stride_b},
                             std::pair{"stride_c", batch.stride_c}}) {
    if (value < 0) {
      return absl::InvalidArgumentError(absl::StrCat("gemm: ", name, " = ", value, " is negative"));
    }
  }
  if (batch.count > 1 && s.m > 0 && s.n > 0 && batch.stride_c < (s.m - 1) * s.ldc + s.n) {
    return absl::InvalidArgumentError(absl::StrCat("gemm: stride_c = ", batch.stride_c,
                                                   " makes the outputs overlap (one C spans ",
                                                   (s.m - 1) * s.ldc + s.n, " floats)"));
  }
  return absl::OkStatus();
}

absl::Status validate_gemv(const GemvShape& s) {
  constexpr const char* kOp = "gemv";
  if (auto st = check_dim(kOp, "rows", s.rows, 0); !st.ok()) return st;
  if (auto st = check_dim(kOp, "cols", s.cols, 0); !st.ok()) return st;
  if (auto st = check_dim(kOp, "incx", s.incx, 1); !st.ok()) return st;
  if (auto st = check_dim(kOp, "incy", s.incy, 1); !st.ok()) return st;
  return check_ld(kOp, "lda", s.lda, std::max<int64_t>(1, s.cols));
}

absl::Status validate_matmul_panels(const MatmulPanelsShape& s) {
  constexpr const char* kOp = "matmul_panels";
  for (auto [name, value] : {std::pair{"m", s.m}, std::pair{"n", s.n}, std::pair{"k", s.k}}) {
    if (auto st = check_dim(kOp, name, value, 0); !st.ok()) return st;
  }
  if (auto st = check_ld(kOp, "lda", s.lda, std::max<int64_t>(1, s.k)); !st.ok()) return st;
  return check_ld(kOp, "ldc", s.ldc, std::max<int64_t>(1, s.n));
}

}  // namespace longnet::kernels
