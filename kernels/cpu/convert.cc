#include "longnet/kernels/convert.h"

#include <cstdint>

#include "cpu/basic_avx2.h"
#include "cpu/cpu_features.h"

namespace longnet::kernels::cpu {
namespace {

bool use_avx2() {
#if defined(__x86_64__) || defined(__i386__)
  // F16C came with AVX2 on every x86 design, but a hypervisor can hide it separately.
  static const bool supported = has_avx2_fma() && __builtin_cpu_supports("f16c");
  return supported;
#else
  return false;
#endif
}

}  // namespace

void fp16_to_fp32(const uint16_t* src, float* dst, int64_t n) {
  use_avx2() ? avx2::fp16_to_fp32(src, dst, n) : reference::fp16_to_fp32(src, dst, n);
}
void fp32_to_fp16(const float* src, uint16_t* dst, int64_t n) {
  use_avx2() ? avx2::fp32_to_fp16(src, dst, n) : reference::fp32_to_fp16(src, dst, n);
}
void bf16_to_fp32(const uint16_t* src, float* dst, int64_t n) {
  use_avx2() ? avx2::bf16_to_fp32(src, dst, n) : reference::bf16_to_fp32(src, dst, n);
}
void fp32_to_bf16(const float* src, uint16_t* dst, int64_t n) {
  use_avx2() ? avx2::fp32_to_bf16(src, dst, n) : reference::fp32_to_bf16(src, dst, n);
}

}  // namespace longnet::kernels::cpu
