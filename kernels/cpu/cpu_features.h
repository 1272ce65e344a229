#pragma once

namespace longnet::kernels::cpu {

// True when the processor runs AVX2 and FMA code (the *_avx2.cc translation units). Checked once.
inline bool has_avx2_fma() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return supported;
#else
  return false;
#endif
}

}  // namespace longnet::kernels::cpu
