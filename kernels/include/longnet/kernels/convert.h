#pragma once

#include <cstddef>
#include <cstdint>

#include "longnet/kernels/dtype.h"

// Conversions between float32 and the 16-bit storage formats of model weights: IEEE binary16 (fp16)
// and bfloat16 (bf16), both carried as raw uint16_t bits. Narrowing rounds to nearest, ties to even;
// overflow gives inf; subnormals are exact both ways; NaN stays NaN (quietened, sign and the top
// payload bits kept, as x86 F16C does). Widening is exact.
namespace longnet::kernels {

namespace cpu {
// F16C / AVX2 when the processor has them, else the reference. src and dst must not overlap.
void fp16_to_fp32(const uint16_t* src, float* dst, int64_t n);
void fp32_to_fp16(const float* src, uint16_t* dst, int64_t n);
void bf16_to_fp32(const uint16_t* src, float* dst, int64_t n);
void fp32_to_bf16(const float* src, uint16_t* dst, int64_t n);
}  // namespace cpu

namespace reference {
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
float bf16_to_fp32(uint16_t b);
uint16_t fp32_to_bf16(float f);

void fp16_to_fp32(const uint16_t* src, float* dst, int64_t n);
void fp32_to_fp16(const float* src, uint16_t* dst, int64_t n);
void bf16_to_fp32(const uint16_t* src, float* dst, int64_t n);
void fp32_to_bf16(const float* src, uint16_t* dst, int64_t n);
}  // namespace reference

}  // namespace longnet::kernels
