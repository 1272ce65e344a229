#pragma once

#include <cstdlib>
#include <cstring>

// Which SIMD code paths the processor runs. LONGNET_CPU_ISA=generic|avx2|avx512 caps the choice (for
// tests of the lower paths on a machine that has the higher ones, and to rule a path out when debugging).
namespace longnet::kernels::cpu {

enum class Isa { kGeneric = 0, kAvx2 = 1, kAvx512 = 2 };

inline Isa detect_isa() {
#if defined(__x86_64__) || defined(__i386__)
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("fma")) {
    return Isa::kAvx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
#endif
  return Isa::kGeneric;
}

// The best path the processor runs, capped by LONGNET_CPU_ISA when set. Decided once per process.
inline Isa cpu_isa() {
  static const Isa isa = [] {
    Isa best = detect_isa();
    if (const char* cap = std::getenv("LONGNET_CPU_ISA"); cap != nullptr) {
      Isa limit = best;
      if (std::strcmp(cap, "generic") == 0) limit = Isa::kGeneric;
      if (std::strcmp(cap, "avx2") == 0) limit = Isa::kAvx2;
      if (static_cast<int>(limit) < static_cast<int>(best)) best = limit;
    }
    return best;
  }();
  return isa;
}

// True when the *_avx2.cc translation units (AVX2 + FMA) may run.
inline bool has_avx2_fma() {
  return static_cast<int>(cpu_isa()) >= static_cast<int>(Isa::kAvx2);
}

// True when the *_avx512.cc translation units (AVX-512 F/DQ/BW/VL) may run.
inline bool has_avx512() {
  return cpu_isa() == Isa::kAvx512;
}

}  // namespace longnet::kernels::cpu
