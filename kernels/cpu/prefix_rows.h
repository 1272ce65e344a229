#pragma once

#include <cstdint>

// The inner loops of prefix attention for a single query row against a run of keys read straight from
// the caller's row-major k and v (the decode route of prefix_attention.cc: one query, so no key packing,
// which would cost as much as the attention itself). Three implementations, chosen at run time: AVX-512,
// AVX2/FMA, portable C++.
namespace longnet::kernels::cpu {

struct PrefixRowOps {
  // scores[j] = scale * (q . k_j) for j < n, with k_j = k + j * k_stride (dim floats each); returns the
  // largest score (-inf when n == 0).
  float (*scores)(const float* q, const float* k, int64_t k_stride, int64_t n, int64_t dim, float scale,
                  float* scores);

  // p[j] = exp(p[j] - max) in place for j < n; returns the sum of the new p[j].
  float (*exp_sum)(float* p, int64_t n, float max);

  // acc[d] = sum_{j < n} p[j] * v_j[d] for d < dim, with v_j = v + j * v_stride (acc is overwritten).
  void (*weighted_sum)(const float* p, const float* v, int64_t v_stride, int64_t n, int64_t dim, float* acc);
};

const PrefixRowOps& prefix_row_ops_avx512();
const PrefixRowOps& prefix_row_ops_avx2();
const PrefixRowOps& prefix_row_ops_generic();

}  // namespace longnet::kernels::cpu
