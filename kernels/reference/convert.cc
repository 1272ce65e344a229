#include "longnet/kernels/convert.h"

#include <bit>
#include <cmath>
#include <cstdint>

namespace longnet::kernels::reference {
namespace {

constexpr uint32_t kF32AbsMask = 0x7fffffffu;
constexpr uint32_t kF32Inf = 0x7f800000u;

// Drops the low `shift` bits of `value`, rounding to nearest with ties to even (shift in [1, 31]).
uint32_t shift_right_rne(uint32_t value, int shift) {
  const uint32_t kept = value >> shift;
  const uint32_t rest = value & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1);
  return kept + ((rest > half || (rest == half && (kept & 1u) != 0)) ? 1u : 0u);
}

}  // namespace

float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24, exact in float.
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return std::bit_cast<float>(sign | std::bit_cast<uint32_t>(magnitude));
  }
  if (exponent == 0x1f) {
    // Inf, or NaN made quiet with its payload kept in the top mantissa bits.
    const uint32_t nan_bits = mantissa == 0 ? 0u : (0x400000u | (mantissa << 13));
    return std::bit_cast<float>(sign | kF32Inf | nan_bits);
  }
  return std::bit_cast<float>(sign | ((exponent + 127 - 15) << 23) | (mantissa << 13));
}

uint16_t fp32_to_fp16(float f) {
  const auto bits = std::bit_cast<uint32_t>(f);
  const auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & kF32AbsMask;
  if (abs > kF32Inf) return static_cast<uint16_t>(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));
  const int exponent = static_cast<int>(abs >> 23);  // biased by 127
  uint32_t magnitude = 0;
  if (exponent >= 127 - 14) {
    // Normal in fp16 (or overflowing): rebias, round away 13 mantissa bits. A carry out of the mantissa
    // moves to the next exponent, and past the largest one lands exactly on the inf pattern.
    magnitude = shift_right_rne(abs - ((127u - 15u) << 23), 13);
    if (magnitude > 0x7c00u) magnitude = 0x7c00u;
  } else {
    // fp16 subnormal (units of 2^-24): the value is (mantissa | implicit 1) * 2^(exponent - 150).
    const int shift = 126 - exponent;
    if (exponent != 0 && shift <= 24) magnitude = shift_right_rne((abs & 0x7fffffu) | 0x800000u, shift);
  }
  return static_cast<uint16_t>(sign | magnitude);
}

float bf16_to_fp32(uint16_t b) {
  return std::bit_cast<float>(static_cast<uint32_t>(b) << 16);
}

uint16_t fp32_to_bf16(float f) {
  const auto bits = std::bit_cast<uint32_t>(f);
  if ((bits & kF32AbsMask) > kF32Inf) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  // Overflow needs no case: rounding the largest finite values up carries into the inf pattern.
  return static_cast<uint16_t>(shift_right_rne(bits & kF32AbsMask, 16) | ((bits >> 16) & 0x8000u));
}

void fp16_to_fp32(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    dst[i] = fp16_to_fp32(src[i]);
  }
}
void fp32_to_fp16(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    dst[i] = fp32_to_fp16(src[i]);
  }
}
void bf16_to_fp32(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    dst[i] = bf16_to_fp32(src[i]);
  }
}
void fp32_to_bf16(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    dst[i] = fp32_to_bf16(src[i]);
  }
}

}  // namespace longnet::kernels::reference
