#include <immintrin.h>

#include <cmath>
#include <limits>

#include "cpu/prefix_attention_ops.h"
#include "cpu/vec_avx2.h"

// AVX2/FMA loops. One query row against keys read in place is a matrix-vector product, bound by reading k
// and v, so the loops aim at streaming them once with enough independent FMA chains to keep up: eight keys
// at a time for the scores (one q load feeds eight FMAs), and up to eight output vectors (two
// key-interleaved sets when the row is short) for the weighted sum of values. Key packing transposes 8 x 8
// blocks in registers.
namespace longnet::kernels::cpu {
namespace {

constexpr int kLanes = 8;
constexpr int kKeysPerBlock = 8;

// Lanes [0, dim % 8) of the last, partial vector of a row (all lanes when dim is a multiple of 8).
__m256i last_vector_mask(int64_t dim) {
  const int64_t rem = dim % kLanes;
  return avx2::tail_mask(rem == 0 ? kLanes : rem);
}

// Sum of the lanes of each of a[0..7], as one vector: lane i holds the sum of a[i].
inline __m256 reduce8(const __m256* a) {
  const __m256 t0 = _mm256_hadd_ps(a[0], a[1]);
  const __m256 t1 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 t2 = _mm256_hadd_ps(a[4], a[5]);
  const __m256 t3 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1);  // per 128-bit half: partial sums of a0..a3
  const __m256 u1 = _mm256_hadd_ps(t2, t3);  // and of a4..a7
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// a[i] = lane-wise partial products of q and key i (kKeys keys, key_stride apart); the lanes of a[i] sum to
// q . k_i. The last partial vector of the row goes through a masked load (masked lanes read as 0).
template <int kKeys>
inline void dot_lanes(const float* q, const float* k, int64_t k_stride, int64_t dim, __m256i last,
                      __m256* a) {
#pragma GCC unroll 8
  for (int i = 0; i < kKeys; ++i)
    a[i] = _mm256_setzero_ps();
  const int64_t body = (dim - 1) / kLanes * kLanes;  // every vector but the last
  for (int64_t d = 0; d < body; d += kLanes) {
    const __m256 qv = _mm256_loadu_ps(q + d);
#pragma GCC unroll 8
    for (int i = 0; i < kKeys; ++i)
      a[i] = _mm256_fmadd_ps(_mm256_loadu_ps(k + i * k_stride + d), qv, a[i]);
  }
  const __m256 qv = _mm256_maskload_ps(q + body, last);
#pragma GCC unroll 8
  for (int i = 0; i < kKeys; ++i)
    a[i] = _mm256_fmadd_ps(_mm256_maskload_ps(k + i * k_stride + body, last), qv, a[i]);
}

float scores_avx2(const float* q, const float* k, int64_t k_stride, int64_t n, int64_t dim, float scale,
                  float* scores) {
  const __m256i last = last_vector_mask(dim);
  const __m256 vscale = _mm256_set1_ps(scale);
  __m256 vmax = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t j = 0;
  for (; j + kKeysPerBlock <= n; j += kKeysPerBlock) {
    __m256 a[kKeysPerBlock];
    dot_lanes<kKeysPerBlock>(q, k + j * k_stride, k_stride, dim, last, a);
    const __m256 s = _mm256_mul_ps(reduce8(a), vscale);
    _mm256_storeu_ps(scores + j, s);
    vmax = _mm256_max_ps(vmax, s);
  }
  float max = avx2::hmax(vmax);
  for (; j < n; ++j) {
    __m256 a[1];
    dot_lanes<1>(q, k + j * k_stride, k_stride, dim, last, a);
    scores[j] = avx2::hsum(a[0]) * scale;
    max = scores[j] > max ? scores[j] : max;
  }
  return max;
}

float exp_sum_avx2(float* p, int64_t n, float max) {
  const __m256 shift = _mm256_set1_ps(max);
  __m256 vsum = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    const __m256 e = avx2::exp(_mm256_sub_ps(_mm256_loadu_ps(p + j), shift));
    _mm256_storeu_ps(p + j, e);
    vsum = _mm256_add_ps(vsum, e);
  }
  if (j < n) {
    const __m256i tail = avx2::tail_mask(n - j);
    const __m256 e = _mm256_and_ps(avx2::exp(_mm256_sub_ps(_mm256_maskload_ps(p + j, tail), shift)),
                                   _mm256_castsi256_ps(tail));
    _mm256_maskstore_ps(p + j, tail, e);
    vsum = _mm256_add_ps(vsum, e);
  }
  return avx2::hsum(vsum);
}

// acc[0 .. 8 * kVecs) = sum_j p[j] * v_j over the same columns; with kMaskLast the last vector covers only
// the lanes of `last`. Short rows (kVecs <= 4) run two key-interleaved accumulator sets, so that enough FMA
// chains are in flight to hide their latency.
template <int kVecs, bool kMaskLast>
void weighted_block(const float* p, const float* v, int64_t v_stride, int64_t n, __m256i last, bool add,
                    float* acc) {
  constexpr int kSets = kVecs <= 4 ? 2 : 1;
  __m256 a[kSets][kVecs];
#pragma GCC unroll 2
  for (int s = 0; s < kSets; ++s) {
#pragma GCC unroll 8
    for (int c = 0; c < kVecs; ++c)
      a[s][c] = _mm256_setzero_ps();
  }
  const auto load = [&](const float* row, int c) {
    return kMaskLast && c == kVecs - 1 ? _mm256_maskload_ps(row + c * kLanes, last)
                                       : _mm256_loadu_ps(row + c * kLanes);
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
      const __m256 pj = _mm256_broadcast_ss(p + j + s);
      const float* row = v + (j + s) * v_stride;
#pragma GCC unroll 8
      for (int c = 0; c < kVecs; ++c)
        a[s][c] = _mm256_fmadd_ps(pj, load(row, c), a[s][c]);
    }
  }
  for (; j < n; ++j) {
    const __m256 pj = _mm256_broadcast_ss(p + j);
#pragma GCC unroll 8
    for (int c = 0; c < kVecs; ++c)
      a[0][c] = _mm256_fmadd_ps(pj, load(v + j * v_stride, c), a[0][c]);
  }
#pragma GCC unroll 8
  for (int c = 0; c < kVecs; ++c) {
    const __m256 sum = kSets == 2 ? _mm256_add_ps(a[0][c], a[kSets - 1][c]) : a[0][c];
    if (kMaskLast && c == kVecs - 1) {
      _mm256_maskstore_ps(acc + c * kLanes, last, sum);
    } else {
      _mm256_storeu_ps(acc + c * kLanes, sum);
    }
  }
}

template <bool kMaskLast>
void weighted_block_dispatch(int vecs, const float* p, const float* v, int64_t v_stride, int64_t n,
                             __m256i last, bool add, float* acc) {
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

void weighted_sum_avx2(const float* p, const float* v, int64_t v_stride, int64_t n, int64_t dim, float* acc) {
  // Columns in blocks of up to 64 (eight vectors held in registers across the keys). A wider head
  // takes its keys 64 at a time, every column block in turn, so that their value rows are still in
  // L1 for the second block.
  constexpr int64_t kBlock = 8 * kLanes;
  constexpr int64_t kKeysPerPass = 64;
  const __m256i last = last_vector_mask(dim);
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

// Transposes the 8 x 8 block r[0..7] in place: afterwards r[i] holds lane i of every input row.
inline void transpose8(__m256* r) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]);
  const __m256 t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]);
  const __m256 t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]);
  const __m256 t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]);
  const __m256 t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44);
  const __m256 s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44);
  const __m256 s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44);
  const __m256 s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44);
  const __m256 s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

void pack_key_strips_avx2(const float* k, int64_t k_stride, int64_t n, int64_t dim, float* strips) {
  constexpr int64_t kStrip = 16;
  for (int64_t j0 = 0; j0 < n; j0 += kStrip) {
    float* strip = j0 * dim + strips;
    // Each half strip (8 keys) fills lanes [8 * half, 8 * half + 8) of the strip's 16-float rows.
    for (int64_t half = 0; half < 2; ++half) {
      const int64_t first = j0 + half * kLanes;
      for (int64_t d0 = 0; d0 < dim; d0 += kLanes) {
        const int64_t cols = dim - d0 < kLanes ? dim - d0 : kLanes;
        const __m256i mask = avx2::tail_mask(cols);
        __m256 r[kLanes];
#pragma GCC unroll 8
        for (int i = 0; i < kLanes; ++i) {
          r[i] =
              first + i < n ? _mm256_maskload_ps(k + (first + i) * k_stride + d0, mask) : _mm256_setzero_ps();
        }
        transpose8(r);
        for (int64_t c = 0; c < cols; ++c)
          _mm256_storeu_ps(strip + (d0 + c) * kStrip + half * kLanes, r[c]);
      }
    }
  }
}

}  // namespace

const PrefixAttentionOps& prefix_attention_ops_avx2() {
  static constexpr PrefixAttentionOps ops{scores_avx2, exp_sum_avx2, weighted_sum_avx2, pack_key_strips_avx2};
  return ops;
}

}  // namespace longnet::kernels::cpu
