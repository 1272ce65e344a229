#include <immintrin.h>

#include <cmath>
#include <limits>

#include "cpu/prefix_rows.h"
#include "cpu/vec_avx2.h"

// AVX2/FMA row loops. One query row against keys read in place: this is a matrix-vector product, bound by
// reading k and v, so the loops aim at streaming them once with enough independent FMA chains to keep up:
// eight keys at a time for the scores (one q load feeds eight FMAs), and up to eight output vectors (two
// key-interleaved sets when the row is short) for the weighted sum of values.
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
void weighted_block(const float* p, const float* v, int64_t v_stride, int64_t n, __m256i last, float* acc) {
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
                             __m256i last, float* acc) {
  switch (vecs) {
    case 1:
      return weighted_block<1, kMaskLast>(p, v, v_stride, n, last, acc);
    case 2:
      return weighted_block<2, kMaskLast>(p, v, v_stride, n, last, acc);
    case 3:
      return weighted_block<3, kMaskLast>(p, v, v_stride, n, last, acc);
    case 4:
      return weighted_block<4, kMaskLast>(p, v, v_stride, n, last, acc);
    case 5:
      return weighted_block<5, kMaskLast>(p, v, v_stride, n, last, acc);
    case 6:
      return weighted_block<6, kMaskLast>(p, v, v_stride, n, last, acc);
    case 7:
      return weighted_block<7, kMaskLast>(p, v, v_stride, n, last, acc);
    default:
      return weighted_block<8, kMaskLast>(p, v, v_stride, n, last, acc);
  }
}

void weighted_sum_avx2(const float* p, const float* v, int64_t v_stride, int64_t n, int64_t dim, float* acc) {
  // Columns in blocks of up to 64 (eight vectors held in registers across every key); the value rows of a
  // wider head are read once per block.
  constexpr int64_t kBlock = 8 * kLanes;
  const __m256i last = last_vector_mask(dim);
  for (int64_t d0 = 0; d0 < dim; d0 += kBlock) {
    const int64_t cols = dim - d0 < kBlock ? dim - d0 : kBlock;
    const int vecs = static_cast<int>((cols + kLanes - 1) / kLanes);
    if (cols % kLanes != 0) {
      weighted_block_dispatch<true>(vecs, p, v + d0, v_stride, n, last, acc + d0);
    } else {
      weighted_block_dispatch<false>(vecs, p, v + d0, v_stride, n, last, acc + d0);
    }
  }
}

}  // namespace

const PrefixRowOps& prefix_row_ops_avx2() {
  static constexpr PrefixRowOps ops{scores_avx2, exp_sum_avx2, weighted_sum_avx2};
  return ops;
}

}  // namespace longnet::kernels::cpu
