#pragma once

#include <math.h>  // expf, exp2f, log1pf, fmaxf, fabsf, INFINITY: the same names on the host and in CUDA

#include "longnet/kernels/host_device.h"

// The scalar steps of attention's online softmax and of the LSE merge, written once for the CUDA kernels
// and for the host emulation that tests their tile walk without a GPU (tests/kernels/cuda_attention_*).
// Scores are in base 2 (pre-multiplied by log2(e)), as the kernels keep them: exp2 is one instruction.
namespace longnet::kernels::cuda {

// A row meets a new tile of scores whose maximum is `tile_max`. Scores are then exponentiated against
// `base` and the running sum and accumulator are multiplied by `alpha`. A row with no key yet (both
// maxima -inf) keeps m = -inf but uses base 0, so exp2(-inf - base) = 0 rather than NaN.
struct OnlineSoftmaxStep {
  float m_new = 0.0f;
  float base = 0.0f;
  float alpha = 0.0f;
};

LONGNET_HOST_DEVICE OnlineSoftmaxStep online_softmax_step(float m_old, float tile_max) {
  OnlineSoftmaxStep step;
  step.m_new = fmaxf(m_old, tile_max);
  step.base = step.m_new == -INFINITY ? 0.0f : step.m_new;
  step.alpha = exp2f(m_old - step.base);
  return step;
}

// Natural-log LSE of a finished row from its base-2 running max and sum (sum > 0).
LONGNET_HOST_DEVICE float row_lse(float m_base2, float sum) {
  return (m_base2 + log2f(sum)) * 0.6931471805599453f;
}

// Merging a branch's row (log-sum-exp `branch_lse`, normalised output o_b) into an accumulator (old_lse,
// o_a): o = w_old * o_a + w_new * o_b, lse = merged. Both weights come from one exp(-|a - b|), which cannot
// overflow (the arithmetic of cpu::merge_attention_lse). An empty accumulator (old_lse = -inf) gives
// w_old = 0, w_new = 1: a copy, and the old output must not be read (it may be anything). An empty branch
// (branch_lse = -inf) must be skipped by the caller.
struct LseMerge {
  float w_old = 0.0f;
  float w_new = 1.0f;
  float lse = 0.0f;
};

LONGNET_HOST_DEVICE LseMerge lse_merge(float old_lse, float branch_lse) {
  LseMerge m;
  if (old_lse == -INFINITY) {
    m.lse = branch_lse;
    return m;
  }
  const float e = expf(-fabsf(old_lse - branch_lse));
  const float inv = 1.0f / (1.0f + e);
  m.w_old = old_lse >= branch_lse ? inv : e * inv;
  m.w_new = old_lse >= branch_lse ? e * inv : inv;
  m.lse = fmaxf(old_lse, branch_lse) + log1pf(e);
  return m;
}

}  // namespace longnet::kernels::cuda
