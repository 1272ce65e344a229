#include <immintrin.h>

#include <cstdint>

#include "cpu/basic_avx2.h"
#include "longnet/kernels/convert.h"

namespace longnet::kernels::cpu::avx2 {

// Tails (n % 8 elements) go through the reference, which gives the same bits.

void fp16_to_fp32(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
  reference::fp16_to_fp32(src + i, dst + i, n - i);
}

void fp32_to_fp16(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h =
        _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
  reference::fp32_to_fp16(src + i, dst + i, n - i);
}

void bf16_to_fp32(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm256_slli_epi32(wide, 16));
  }
  reference::bf16_to_fp32(src + i, dst + i, n - i);
}

void fp32_to_bf16(const float* src, uint16_t* dst, int64_t n) {
  const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
  const __m256i inf = _mm256_set1_epi32(0x7f800000);
  const __m256i round_bias = _mm256_set1_epi32(0x7fff);
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i quiet = _mm256_set1_epi32(0x40);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    // Round to nearest even: add 0x7fff plus the lowest kept bit, then drop the low half.
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), one);
    const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(bits, _mm256_add_epi32(round_bias, lsb)), 16);
    const __m256i nan_mask = _mm256_cmpgt_epi32(_mm256_and_si256(bits, abs_mask), inf);
    const __m256i nan = _mm256_or_si256(_mm256_srli_epi32(bits, 16), quiet);
    const __m256i out32 = _mm256_blendv_epi8(rounded, nan, nan_mask);
    // Narrow 8 x 32 -> 8 x 16; packus works per 128-bit lane, so gather the two halves afterwards.
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(out32, out32), 0x08);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm256_castsi256_si128(packed));
  }
  reference::fp32_to_bf16(src + i, dst + i, n - i);
}

}  // namespace longnet::kernels::cpu::avx2
