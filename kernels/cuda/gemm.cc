#include "longnet/kernels/cuda_gemm.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "longnet/kernels/cuda_device.h"

// CUBLAS_COMPUTE_32F everywhere: fp32 operands stay fp32 (TF32 only with CUBLAS_COMPUTE_32F_FAST_TF32 or
// the TF32 math mode, neither used here); fp16 / bf16 operands run on the tensor cores with fp32
// accumulation. cuBLAS is column-major; a row-major M x N product C = op(A) op(B) is the column-major product
// C^T = op(B)^T op(A)^T, so every call passes B before A and swaps m and n. A linear layer
// y = x W^T + b is, column-major, y^T = W x^T + b: W (stored N x K row-major, i.e. K x N column-major)
// transposed times x^T, with the bias along y^T's rows -- cuBLASLt's BIAS epilogue.
namespace longnet::kernels::cuda {

absl::Status cublas_status(int status, const char* what) {
  const auto s = static_cast<cublasStatus_t>(status);
  if (s == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  const std::string message =
      absl::StrCat(what, " returned ", cublasGetStatusName(s), " (", cublasGetStatusString(s), ")");
  switch (s) {
    case CUBLAS_STATUS_ALLOC_FAILED:
      return absl::ResourceExhaustedError(message);
    case CUBLAS_STATUS_INVALID_VALUE:
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return absl::InvalidArgumentError(message);
    case CUBLAS_STATUS_NOT_INITIALIZED:
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return absl::FailedPreconditionError(message);
    default:
      return absl::InternalError(message);
  }
}

namespace {

cudaDataType_t data_type(DType dtype) {
  switch (dtype) {
    case DType::kF16:
      return CUDA_R_16F;
    case DType::kBF16:
      return CUDA_R_16BF;
    case DType::kF32:
      break;
  }
  return CUDA_R_32F;
}

absl::Status check_types(GemmTypes types) {
  if (types.c != types.ab && types.c != DType::kF32) {
    return absl::InvalidArgumentError(absl::StrCat("gemm: C of type ", dtype_name(types.c),
                                                   " with A and B of type ", dtype_name(types.ab),
                                                   ": C must be fp32 or their type"));
  }
  return absl::OkStatus();
}

cublasOperation_t op(Transpose t) {
  return t == Transpose::kYes ? CUBLAS_OP_T : CUBLAS_OP_N;
}

}  // namespace

struct Blas::Handles {
  cublasHandle_t blas = nullptr;
  cublasLtHandle_t lt = nullptr;
  cudaStream_t stream = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;

  ~Handles() {
    if (workspace != nullptr) (void)cudaFree(workspace);
    if (lt != nullptr) (void)cublasLtDestroy(lt);
    if (blas != nullptr) (void)cublasDestroy(blas);
  }
};

Blas::Blas(std::unique_ptr<Handles> handles) : handles_(std::move(handles)) {}
Blas::~Blas() = default;

absl::StatusOr<std::unique_ptr<Blas>> Blas::create(void* stream, size_t lt_workspace_bytes) {
  if (absl::StatusOr<int> count = device_count(); !count.ok()) return count.status();
  auto h = std::make_unique<Handles>();
  h->stream = static_cast<cudaStream_t>(stream);
  if (auto st = cublas_status(cublasCreate(&h->blas), "cublasCreate"); !st.ok()) return st;
  if (auto st = cublas_status(cublasSetStream(h->blas, h->stream), "cublasSetStream"); !st.ok()) return st;
  if (auto st = cublas_status(cublasLtCreate(&h->lt), "cublasLtCreate"); !st.ok()) return st;
  if (lt_workspace_bytes > 0) {
    if (auto st = to_status(cudaMalloc(&h->workspace, lt_workspace_bytes), "cudaMalloc (cuBLASLt workspace)");
        !st.ok())
      return st;
    h->workspace_bytes = lt_workspace_bytes;
  }
  return std::unique_ptr<Blas>(new Blas(std::move(h)));
}

absl::Status Blas::gemm(const GemmShape& shape, GemmTypes types, const void* a, const void* b, void* c) {
  return gemm_batched(shape, GemmBatch{}, types, a, b, c);
}

absl::Status Blas::gemm_batched(const GemmShape& shape, const GemmBatch& batch, GemmTypes types,
                                const void* a, const void* b, void* c) {
  if (auto st = validate_gemm(shape, batch); !st.ok()) return st;
  if (auto st = check_types(types); !st.ok()) return st;
  if (shape.m == 0 || shape.n == 0 || batch.count == 0) return absl::OkStatus();
  const auto i = [](int64_t x) { return static_cast<int>(x); };  // validate_gemm bounds them by INT_MAX
  const cublasStatus_t status = cublasGemmStridedBatchedEx(
      handles_->blas, op(shape.trans_b), op(shape.trans_a), i(shape.n), i(shape.m), i(shape.k), &shape.alpha,
      b, data_type(types.ab), i(shape.ldb), batch.stride_b, a, data_type(types.ab), i(shape.lda),
      batch.stride_a, &shape.beta, c, data_type(types.c), i(shape.ldc), batch.stride_c, i(batch.count),
      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  return cublas_status(status, "cublasGemmStridedBatchedEx");
}

namespace {

// Owners of the cuBLASLt descriptors of one call.
struct LtDescriptors {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t w = nullptr;
  cublasLtMatrixLayout_t x = nullptr;
  cublasLtMatrixLayout_t y = nullptr;
  cublasLtMatmulPreference_t preference = nullptr;
  ~LtDescriptors() {
    if (preference != nullptr) (void)cublasLtMatmulPreferenceDestroy(preference);
    if (y != nullptr) (void)cublasLtMatrixLayoutDestroy(y);
    if (x != nullptr) (void)cublasLtMatrixLayoutDestroy(x);
    if (w != nullptr) (void)cublasLtMatrixLayoutDestroy(w);
    if (op != nullptr) (void)cublasLtMatmulDescDestroy(op);
  }
};

}  // namespace

absl::Status Blas::linear(const LinearShape& shape, GemmTypes types, const void* x, const void* w,
                          const void* bias, void* y) {
  // The same checks as the product x (M x K) times W^T (K x N).
  GemmShape as_gemm;
  as_gemm.trans_b = Transpose::kYes;
  as_gemm.m = shape.m;
  as_gemm.n = shape.n;
  as_gemm.k = shape.k;
  as_gemm.lda = shape.ldx;
  as_gemm.ldb = shape.ldw;
  as_gemm.ldc = shape.ldy;
  if (auto st = validate_gemm(as_gemm); !st.ok()) return st;
  if (auto st = check_types(types); !st.ok()) return st;
  if (shape.m == 0 || shape.n == 0) return absl::OkStatus();

  LtDescriptors d;
  const auto u = [](int64_t v) { return static_cast<uint64_t>(v); };
  const auto check = [](cublasStatus_t s, const char* what) { return cublas_status(s, what); };
  if (auto st =
          check(cublasLtMatmulDescCreate(&d.op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
      !st.ok())
    return st;
  const cublasOperation_t transpose = CUBLAS_OP_T;
  if (auto st = check(
          cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof(transpose)),
          "cublasLtMatmulDescSetAttribute(TRANSA)");
      !st.ok())
    return st;
  if (bias != nullptr) {
    const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    const cudaDataType_t bias_type = data_type(types.c);
    if (auto st = check(
            cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)),
            "cublasLtMatmulDescSetAttribute(EPILOGUE)");
        !st.ok())
      return st;
    if (auto st = check(
            cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)),
            "cublasLtMatmulDescSetAttribute(BIAS_POINTER)");
        !st.ok())
      return st;
    if (auto st = check(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
                                                       sizeof(bias_type)),
                        "cublasLtMatmulDescSetAttribute(BIAS_DATA_TYPE)");
        !st.ok())
      return st;
  }
  // Column-major: W is K x N (ld ldw) and is transposed; x^T is K x M (ld ldx); y^T is N x M (ld ldy).
  if (auto st =
          check(cublasLtMatrixLayoutCreate(&d.w, data_type(types.ab), u(shape.k), u(shape.n), shape.ldw),
                "cublasLtMatrixLayoutCreate(W)");
      !st.ok())
    return st;
  if (auto st =
          check(cublasLtMatrixLayoutCreate(&d.x, data_type(types.ab), u(shape.k), u(shape.m), shape.ldx),
                "cublasLtMatrixLayoutCreate(x)");
      !st.ok())
    return st;
  if (auto st = check(cublasLtMatrixLayoutCreate(&d.y, data_type(types.c), u(shape.n), u(shape.m), shape.ldy),
                      "cublasLtMatrixLayoutCreate(y)");
      !st.ok())
    return st;
  if (auto st = check(cublasLtMatmulPreferenceCreate(&d.preference), "cublasLtMatmulPreferenceCreate");
      !st.ok())
    return st;
  const size_t workspace = handles_->workspace_bytes;
  if (auto st =
          check(cublasLtMatmulPreferenceSetAttribute(d.preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                     &workspace, sizeof(workspace)),
                "cublasLtMatmulPreferenceSetAttribute");
      !st.ok())
    return st;
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  if (auto st = check(cublasLtMatmulAlgoGetHeuristic(handles_->lt, d.op, d.w, d.x, d.y, d.y, d.preference, 1,
                                                     &heuristic, &found),
                      "cublasLtMatmulAlgoGetHeuristic");
      !st.ok())
    return st;
  if (found == 0) {
    return absl::UnimplementedError(absl::StrCat("linear: cuBLASLt has no algorithm for ", shape.m, " x ",
                                                 shape.n, " x ", shape.k, " with ", dtype_name(types.ab),
                                                 " operands"));
  }
  const float alpha = 1.0f;
  const float beta = 0.0f;
  return check(
      cublasLtMatmul(handles_->lt, d.op, &alpha, w, d.w, x, d.x, &beta, y, d.y, y, d.y, &heuristic.algo,
                     handles_->workspace, handles_->workspace_bytes, handles_->stream),
      "cublasLtMatmul");
}

}  // namespace longnet::kernels::cuda
