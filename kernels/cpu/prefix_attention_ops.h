#pragma once

#include <cstdint>

// The inner loops of prefix attention that the dilated-attention tile kernels (attention_tile.h) do not
// already provide: the decode route's loops for one query row against keys read in place from the
// caller's row-major k and v (one query: packing the keys would cost as much as the attention), and the
// key packing of the tile route. Three implementations, chosen at run time: AVX-512, AVX2/FMA, portable.
namespace longnet::kernels::cpu {

struct PrefixAttentionOps {
  // scores[j] = scale * (q . k_j) for j < n, with k_j = k + j * k_stride (dim floats each); returns the
  // largest score (-inf when n == 0).
  float (*scores)(const float* q, const float* k, int64_t k_stride, int64_t n, int64_t dim, float scale,
                  float* scores);

  // p[j] = exp(p[j] - max) in place for j < n; returns the sum of the new p[j].
  float (*exp_sum)(float* p, int64_t n, float max);

  // acc[d] = sum_{j < n} p[j] * v_j[d] for d < dim, with v_j = v + j * v_stride (acc is overwritten).
  void (*weighted_sum)(const float* p, const float* v, int64_t v_stride, int64_t n, int64_t dim, float* acc);

  // Packs keys k_0 .. k_{n-1} (k_j = k + j * k_stride) into ceil(n / 16) strips of the tile kernels:
  // strips[s * 16 * dim + d * 16 + c] = k_{16 s + c}[d], with zeros for the keys n and later of the last
  // strip. A transpose, done in 16 x 16 (AVX-512) or 8 x 8 (AVX2) register blocks.
  void (*pack_key_strips)(const float* k, int64_t k_stride, int64_t n, int64_t dim, float* strips);
};

const PrefixAttentionOps& prefix_attention_ops_avx512();
const PrefixAttentionOps& prefix_attention_ops_avx2();
const PrefixAttentionOps& prefix_attention_ops_generic();

}  // namespace longnet::kernels::cpu
