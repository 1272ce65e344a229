#pragma once

#include <cstdint>

// Entry points of the AVX2/FMA/F16C translation units (cpu/*_avx2.cc) for the basic kernels. Call them
// only after cpu_features.h says the processor runs them.
namespace longnet::kernels::cpu::avx2 {

void layer_norm_row(const float* x, const float* gamma, const float* beta, float* y, int64_t dim, float eps);
void gelu(float* x, int64_t n);
// Softmax of one row (y may alias x); returns its log-sum-exp. Requires dim > 0.
float softmax_row(const float* x, float* y, int64_t dim);

void fp16_to_fp32(const uint16_t* src, float* dst, int64_t n);
void fp32_to_fp16(const float* src, uint16_t* dst, int64_t n);
void bf16_to_fp32(const uint16_t* src, float* dst, int64_t n);
void fp32_to_bf16(const float* src, uint16_t* dst, int64_t n);

}  // namespace longnet::kernels::cpu::avx2
