#include "longnet/kernels/dtype.h"

namespace longnet::kernels {

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "float32";
    case DType::kF16:
      return "float16";
    case DType::kBF16:
      return "bfloat16";
  }
  return "unknown";
}

}  // namespace longnet::kernels
