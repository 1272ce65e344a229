#include <immintrin.h>

#include <cstdint>
#include <limits>

#include "cpu/prefix_attention_ops.h"

// GCC 12's own AVX-512 intrinsics start from _mm512_undefined_ps() and trip -Wmaybe-uninitialized when
// inlined; the warning is about the header, not this code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// AVX-512 loops: the AVX2 ones (prefix_attention_avx2.cc) on 16-float vectors, with masked loads for the
// last partial vector of a row. A 128-float head fits its whole output row in eight registers, so the
// values are read in one pass. e^x is a short pass over the scores: the AVX2 loop serves. Key packing
// transposes 16 x 16 blocks, one strip at a time.
namespace longnet::kernels::cpu {
namespace {

constexpr int kLanes = 16;
constexpr int kKeysPerBlock = 8;

__mmask16 last_vector_mask(int64_t dim) {
  const int64_t rem = dim % kLanes;
  return rem == 0 ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << rem) - 1u);
}

inline __m256 fold(__m512 a) {
  return _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
}

// Lane i of the result: the sum of the lanes of a[i].
inline __m256 reduce8(const __m512* a) {
  const __m256 t0 = _mm256_hadd_ps(fold(a[0]), fold(a[1]));
  const __m256 t1 = _mm256_hadd_ps(fold(a[2]), fold(a[3]));
  const __m256 t2 = _mm256_hadd_ps(fold(a[4]), fold(a[5]));
  const __m256 t3 = _mm256_hadd_ps(fold(a[6]), fold(a[7]));
  const __m256 u0 = _mm256_hadd_ps(t0, t1);
  const __m256 u1 = _mm256_hadd_ps(t2, t3);
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

template <int kKeys>
inline void dot_lanes(const float* q, const float* k, int64_t k_stride, int64_t dim, __mmask16 last,
                      __m512* a) {
#pragma GCC unroll 8
  for (int i = 0; i < kKeys; ++i)
    a[i] = _mm512_setzero_ps();
  const int64_t body = (dim - 1) / kLanes * kLanes;
  for (int64_t d = 0; d < body; d += kLanes) {
    const __m512 qv = _mm512_loadu_ps(q + d);
#pragma GCC unroll 8
    for (int i = 0; i < kKeys; ++i)
      a[i] = _mm512_fmadd_ps(_mm512_loadu_ps(k + i * k_stride + d), qv, a[i]);
  }
  const __m512 qv = _mm512_maskz_loadu_ps(last, q + body);
#pragma GCC unroll 8
  for (int i = 0; i < kKeys; ++i)
    a[i] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(last, k + i * k_stride + body), qv, a[i]);
}

float scores_avx512(const float* q, const float* k, int64_t k_stride, int64_t n, int64_t dim, float scale,
                    float* scores) {
  const __mmask16 last = last_vector_mask(dim);
  const __m256 vscale = _mm256_set1_ps(scale);
  __m256 vmax = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t j = 0;
  for (; j + kKeysPerBlock <= n; j += kKeysPerBlock) {
    __m512 a[kKeysPerBlock];
    dot_lanes<kKeysPerBlock>(q, k + j * k_stride, k_stride, dim, last, a);
    const __m256 s = _mm256_mul_ps(reduce8(a), vscale);
    _mm256_storeu_ps(scores + j, s);
    vmax = _mm256_max_ps(vmax, s);
  }
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  float max = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
  for (; j < n; ++j) {
    __m512 a[1];
    dot_lanes<1>(q, k + j * k_stride, k_stride, dim, last, a);
    scores[j] = _mm512_reduce_add_ps(a[0]) * scale;
    max = scores[j] > max ? scores[j] : max;
  }
  return max;
}

template <int kVecs, bool kMaskLast>
void weighted_block(const float* p, const float* v, int64_t v_stride, int64_t n, __mmask16 last, bool add,
                    float* acc) {
  constexpr int kSets = kVecs <= 4 ? 2 : 1;
  __m512 a[kSets][kVecs];
#pragma GCC unroll 2
  for (int s = 0; s < kSets; ++s) {
#pragma GCC unroll 8
    for (int c = 0; c < kVecs; ++c)
      a[s][c] = _mm512_setzero_ps();
  }
  const auto load = [&](const float* row, int c) {
    return kMaskLast && c == kVecs - 1 ? _mm512_maskz_loadu_ps(last, row + c * kLanes)
                                       : _mm512_loadu_ps(row + c * kLanes);
  };
  if (add) {
#pragma GCC unroll 8
    for (int c = 0; c < kVecs; ++c)
      a[0][c] = load(acc, c);
  }
  int64_t j = 0;
  for (; j + kSets <= n; j += kSets) {
#pragma GCC unroll 2
    for (int s = 0; s < kSets; ++s) {
      const __m512 pj = _mm512_set1_ps(p[j + s]);
      const float* row = v + (j + s) * v_stride;
#pragma GCC unroll 8
      for (int c = 0; c < kVecs; ++c)
        a[s][c] = _mm512_fmadd_ps(pj, load(row, c), a[s][c]);
    }
  }
  for (; j < n; ++j) {
    const __m512 pj = _mm512_set1_ps(p[j]);
#pragma GCC unroll 8
    for (int c = 0; c < kVecs; ++c)
      a[0][c] = _mm512_fmadd_ps(pj, load(v + j * v_stride, c), a[0][c]);
  }
#pragma GCC unroll 8
  for (int c = 0; c < kVecs; ++c) {
    const __m512 sum = kSets == 2 ? _mm512_add_ps(a[0][c], a[kSets - 1][c]) : a[0][c];
    if (kMaskLast && c == kVecs - 1) {
      _mm512_mask_storeu_ps(acc + c * kLanes, last, sum);
    } else {
      _mm512_storeu_ps(acc + c * kLanes, sum);
    }
  }
}

template <bool kMaskLast>
void weighted_block_dispatch(int vecs, const float* p, const float* v, int64_t v_stride, int64_t n,
                             __mmask16 last, bool add, float* acc) {
  switch (vecs) {
    case 1:
      return weighted_block<1, kMaskLast>(p, v, v_stride, n, last, add, acc);
    case 2:
      return weighted_block<2, kMaskLast>(p, v, v_stride, n, last, add, acc);
    case 3:
      return weighted_block<3, kMaskLast>(p, v, v_stride, n, last, add, acc);
    case 4:
      return weighted_block<4, kMaskLast>(p, v, v_stride, n, last, add, acc);
    case 5:
      return weighted_block<5, kMaskLast>(p, v, v_stride, n, last, add, acc);
    case 6:
      return weighted_block<6, kMaskLast>(p, v, v_stride, n, last, add, acc);
    case 7:
      return weighted_block<7, kMaskLast>(p, v, v_stride, n, last, add, acc);
    default:
      return weighted_block<8, kMaskLast>(p, v, v_stride, n, last, add, acc);
  }
}

void weighted_sum_avx512(const float* p, const float* v, int64_t v_stride, int64_t n, int64_t dim,
                         float* acc) {
  // Columns in blocks of up to 128 (eight vectors held in registers across the keys). A wider head
  // takes its keys 64 at a time, every column block in turn, so that their value rows are still in L1
  // for the second block.
  constexpr int64_t kBlock = 8 * kLanes;
  constexpr int64_t kKeysPerPass = 64;
  const __mmask16 last = last_vector_mask(dim);
  const int64_t keys_per_pass = dim <= kBlock ? n : kKeysPerPass;
  int64_t j0 = 0;
  do {  // at least once: with n == 0 the one pass writes the zeros
    const int64_t keys = n - j0 < keys_per_pass ? n - j0 : keys_per_pass;
    for (int64_t d0 = 0; d0 < dim; d0 += kBlock) {
      const int64_t cols = dim - d0 < kBlock ? dim - d0 : kBlock;
      const int vecs = static_cast<int>((cols + kLanes - 1) / kLanes);
      const float* vb = v + j0 * v_stride + d0;
      if (cols % kLanes != 0) {
        weighted_block_dispatch<true>(vecs, p + j0, vb, v_stride, keys, last, j0 > 0, acc + d0);
      } else {
        weighted_block_dispatch<false>(vecs, p + j0, vb, v_stride, keys, last, j0 > 0, acc + d0);
      }
    }
    j0 += keys_per_pass;
  } while (j0 < n);
}

// Transposes the 16 x 16 block r[0..15] in place: afterwards r[i] holds lane i of every input row.
inline void transpose16(__m512* r) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  // r[4g + i] now holds, per 128-bit lane, rows 4g..4g+3 at columns {i of each 4-column group}.
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
    t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
  }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
  }
}

void pack_key_strips_avx512(const float* k, int64_t k_stride, int64_t n, int64_t dim, float* strips) {
  for (int64_t j0 = 0; j0 < n; j0 += kLanes) {
    float* strip = strips + j0 * dim;
    for (int64_t d0 = 0; d0 < dim; d0 += kLanes) {
      const int64_t cols = dim - d0 < kLanes ? dim - d0 : kLanes;
      const auto mask = static_cast<__mmask16>((1u << cols) - 1u);
      __m512 r[kLanes];
#pragma GCC unroll 16
      for (int i = 0; i < kLanes; ++i)
        r[i] = j0 + i < n ? _mm512_maskz_loadu_ps(mask, k + (j0 + i) * k_stride + d0) : _mm512_setzero_ps();
      transpose16(r);
      for (int64_t c = 0; c < cols; ++c)
        _mm512_storeu_ps(strip + (d0 + c) * kLanes, r[c]);
    }
  }
}

}  // namespace

const PrefixAttentionOps& prefix_attention_ops_avx512() {
  static const PrefixAttentionOps ops{scores_avx512, prefix_attention_ops_avx2().exp_sum, weighted_sum_avx512,
                                      pack_key_strips_avx512};
  return ops;
}

}  // namespace longnet::kernels::cpu
