#include "longnet/kernels/convert.h"

#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "cpu/basic_avx2.h"
#include "cpu/cpu_features.h"

namespace longnet::kernels::cpu {
namespace {

bool use_avx2() {
#if defined(__x86_64__) || defined(__i386__)
  // F16C came with AVX2 on every x86 design, but a hypervisor can hide it separately. Asked of CPUID
  // (leaf 1, ECX) directly: clang 14 does not know "f16c" as a __builtin_cpu_supports feature.
  static const bool supported = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return has_avx2_fma() && __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
  }();
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
