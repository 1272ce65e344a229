#include "longnet/kernels/convert.h"

namespace longnet::kernels {

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
  }
  return "unknown";
}

}  // namespace longnet::kernels
