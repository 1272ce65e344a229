// The fast CPU dilated-attention kernel against the double-precision reference, on random inputs over
// the edge cases of LONGNET.md, plus the properties the definition implies (causality, sequences
// evaluated on their own, uncovered heads give 0) and argument checking.
#include "longnet/kernels/dilated_attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace longnet::kernels {
namespace {

constexpr float kTolerance = 2e-4f;

struct Case {
  std::string name;
  int64_t heads;
  int64_t dim;
  std::vector<int64_t> lens;
  std::vector<DilatedBranch> branches;
  bool causal;
  float q_scale = 1.0f;
};

// gtest prints parameters by name rather than as raw bytes.
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

struct Buffers {
  std::vector<float> q, k, v, out, lse;
  std::vector<int64_t> starts, lens;
  DilatedAttentionShape shape;
};

// Packed rows with a row stride wider than heads*dim (as inside a fused QKV projection).
Buffers make_buffers(const Case& c, uint32_t seed, int64_t extra_stride = 3) {
  Buffers b;
  b.lens = c.lens;
  int64_t rows = 0;
  for (int64_t len : c.lens) {
    b.starts.push_back(rows);
    rows += len;
  }
  const int64_t stride = c.heads * c.dim + extra_stride;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  auto fill = [&](std::vector<float>& x, float scale) {
    x.resize(static_cast<size_t>(std::max<int64_t>(rows, 1) * stride));
    for (float& e : x)
      e = dist(rng) * scale;
  };
  fill(b.q, c.q_scale);
  fill(b.k, 1.0f);
  fill(b.v, 1.0f);
  b.out.assign(b.q.size(), 12345.0f);  // rows outside sequences and padding columns must stay untouched
  b.lse.assign(static_cast<size_t>(std::max<int64_t>(rows, 1) * c.heads), 0.0f);
  b.shape.num_heads = c.heads;
  b.shape.head_dim = c.dim;
  b.shape.seq_starts = b.starts;
  b.shape.seq_lens = b.lens;
  b.shape.q_stride = b.shape.k_stride = b.shape.v_stride = b.shape.out_stride = stride;
  return b;
}

absl::Status run_cpu(const DilatedAttentionParams& params, Buffers& b, ThreadPool& pool) {
  std::vector<float> workspace(
      static_cast<size_t>(cpu::dilated_attention_workspace_floats(b.shape, params, pool.num_threads())));
  return cpu::dilated_attention(b.shape, params, b.q.data(), b.k.data(), b.v.data(), b.out.data(),
                                b.lse.data(), workspace, pool);
}

class DilatedAttentionParity : public ::testing::TestWithParam<Case> {};

TEST_P(DilatedAttentionParity, FastMatchesReference) {
  const Case& c = GetParam();
  DilatedAttentionParams params{c.branches, c.causal, 0.0f};
  Buffers fast = make_buffers(c, 7);
  Buffers ref = make_buffers(c, 7);
  ASSERT_TRUE(run_cpu(params, fast, ThreadPool::global()).ok());
  ASSERT_TRUE(reference::dilated_attention(ref.shape, params, ref.q.data(), ref.k.data(), ref.v.data(),
                                           ref.out.data(), ref.lse.data())
                  .ok());
  float max_err = 0.0f;
  for (size_t i = 0; i < fast.out.size(); ++i) {
    ASSERT_FALSE(std::isnan(fast.out[i])) << "NaN at " << i;
    max_err = std::max(max_err, std::abs(fast.out[i] - ref.out[i]));
  }
  for (size_t i = 0; i < fast.lse.size(); ++i) {
    if (std::isinf(ref.lse[i])) {
      ASSERT_EQ(fast.lse[i], ref.lse[i]) << "lse at " << i;
    } else {
      max_err = std::max(max_err, std::abs(fast.lse[i] - ref.lse[i]));
    }
  }
  std::ostringstream err;
  err << std::scientific << max_err;
  RecordProperty("max_abs_error", err.str());
  EXPECT_LE(max_err, kTolerance);
}

std::vector<Case> parity_cases() {
  return {
      {"dense_one_segment", 4, 16, {37}, {{64, 1}}, true},
      {"dense_short_last_segment", 4, 16, {100}, {{32, 1}}, true},
      {"dense_short_last_segment_noncausal", 4, 16, {100}, {{32, 1}}, false},
      {"length_one", 3, 8, {1}, {{16, 1}, {32, 2}}, true},
      {"w_mod_r_nonzero_causal", 4, 8, {95}, {{10, 3}, {16, 6}}, true},
      {"w_mod_r_nonzero_noncausal", 4, 8, {95}, {{10, 3}, {16, 6}}, false},
      {"r_greater_than_heads", 4, 16, {200}, {{24, 1}, {48, 6}}, true},
      {"heads_not_divisible_by_r", 6, 16, {150}, {{16, 1}, {40, 4}}, false},
      {"no_dense_branch_uncovered_heads", 2, 8, {90}, {{12, 4}, {30, 3}}, true},
      {"no_dense_branch_noncausal", 5, 8, {77}, {{20, 4}}, false},
      {"ragged_batch_causal", 4, 16, {1, 33, 128, 7, 200}, {{16, 1}, {64, 2}, {128, 4}}, true},
      {"ragged_batch_noncausal", 4, 16, {1, 33, 128, 7, 200}, {{16, 1}, {64, 2}, {128, 4}}, false},
      {"head_dim_not_multiple_of_16", 3, 20, {150}, {{32, 1}, {64, 2}}, true},
      {"peaky_softmax", 4, 16, {300}, {{64, 1}, {128, 2}}, true, 8.0f},
      {"paper_shaped_causal", 12, 16, {1100}, {{32, 1}, {64, 2}, {128, 4}, {256, 6}, {512, 12}}, true},
      {"paper_shaped_noncausal", 12, 16, {1100}, {{32, 1}, {64, 2}, {128, 4}, {256, 6}, {512, 12}}, false},
      {"head_dim_64_long_segment", 2, 64, {700}, {{512, 1}, {600, 3}}, true},
      {"empty_sequence_in_batch", 2, 8, {0, 20, 0}, {{8, 1}, {16, 2}}, true},
  };
}

INSTANTIATE_TEST_SUITE_P(Cases, DilatedAttentionParity, ::testing::ValuesIn(parity_cases()),
                         [](const ::testing::TestParamInfo<Case>& param_info) {
                           return param_info.param.name;
                         });

// Rows before t are unchanged when every input at t and later changes (causal mode).
TEST(DilatedAttention, CausalOutputsIgnoreLaterTokens) {
  const Case c{"", 4, 16, {150}, {{32, 1}, {64, 2}, {100, 3}}, true};
  DilatedAttentionParams params{c.branches, true, 0.0f};
  Buffers a = make_buffers(c, 1);
  Buffers b = make_buffers(c, 1);
  const int64_t cut = 97;
  const auto stride = static_cast<size_t>(a.shape.q_stride);
  for (size_t i = static_cast<size_t>(cut) * stride; i < b.q.size(); ++i) {
    b.q[i] = -b.q[i] * 2.0f;
    b.k[i] = 0.5f - b.k[i];
    b.v[i] = b.v[i] * 3.0f;
  }
  ASSERT_TRUE(run_cpu(params, a, ThreadPool::global()).ok());
  ASSERT_TRUE(run_cpu(params, b, ThreadPool::global()).ok());
  for (size_t i = 0; i < static_cast<size_t>(cut) * stride; ++i)
    ASSERT_EQ(a.out[i], b.out[i]) << i;
  bool later_changed = false;
  for (size_t i = static_cast<size_t>(cut) * stride; i < a.out.size(); ++i)
    later_changed |= a.out[i] != b.out[i];
  EXPECT_TRUE(later_changed);
}

// A sequence of a ragged batch gives the same result as when it is evaluated alone.
TEST(DilatedAttention, SequencesAreIndependent) {
  const std::vector<DilatedBranch> branches{{16, 1}, {48, 3}};
  const Case batch{"", 3, 16, {40, 75, 9}, branches, true};
  const Case alone{"", 3, 16, {75}, branches, true};
  DilatedAttentionParams params{branches, true, 0.0f};
  Buffers b = make_buffers(batch, 3);
  Buffers s = make_buffers(alone, 3);
  const auto stride = static_cast<size_t>(b.shape.q_stride);
  std::copy_n(b.q.begin() + 40 * static_cast<long>(stride), 75 * stride, s.q.begin());
  std::copy_n(b.k.begin() + 40 * static_cast<long>(stride), 75 * stride, s.k.begin());
  std::copy_n(b.v.begin() + 40 * static_cast<long>(stride), 75 * stride, s.v.begin());
  ASSERT_TRUE(run_cpu(params, b, ThreadPool::global()).ok());
  ASSERT_TRUE(run_cpu(params, s, ThreadPool::global()).ok());
  for (size_t i = 0; i < 75 * stride; ++i)
    ASSERT_EQ(b.out[40 * stride + i], s.out[i]) << i;
}

// Without an r = 1 branch, a head that sees a token in no branch outputs exactly 0 with lse -inf.
TEST(DilatedAttention, UncoveredHeadsAreZeroNotNaN) {
  // H = 2, one branch r = 4: heads take offsets 0 and 2; positions with p % 4 in {1, 3} are seen by nobody.
  const Case c{"", 2, 8, {32}, {{16, 4}}, true};
  DilatedAttentionParams params{c.branches, true, 0.0f};
  Buffers b = make_buffers(c, 5, 0);
  ASSERT_TRUE(run_cpu(params, b, ThreadPool::global()).ok());
  for (int64_t t = 0; t < 32; ++t) {
    for (int64_t h = 0; h < 2; ++h) {
      const bool covered = (t % 16) % 4 == head_offset(h, 2, 4);
      const float lse = b.lse[static_cast<size_t>(t * 2 + h)];
      EXPECT_EQ(std::isinf(lse), !covered) << "t=" << t << " h=" << h;
      for (int64_t d = 0; d < 8; ++d) {
        const float o = b.out[static_cast<size_t>(t * 16 + h * 8 + d)];
        EXPECT_FALSE(std::isnan(o));
        if (!covered) {
          EXPECT_EQ(o, 0.0f);
        }
      }
    }
  }
}

// The result does not depend on how many threads run it.
TEST(DilatedAttention, ThreadCountDoesNotChangeResult) {
  const Case c{"", 4, 32, {500, 260}, {{64, 1}, {128, 2}, {256, 4}}, true};
  DilatedAttentionParams params{c.branches, true, 0.0f};
  Buffers one = make_buffers(c, 9);
  Buffers many = make_buffers(c, 9);
  ThreadPool single(1);
  ThreadPool four(4);
  ASSERT_TRUE(run_cpu(params, one, single).ok());
  ASSERT_TRUE(run_cpu(params, many, four).ok());
  EXPECT_EQ(one.out, many.out);
  EXPECT_EQ(one.lse, many.lse);
}

// Scratch memory is bounded by the schedule (ceil(w / r) rows per panel), not by the sequence: the fast
// path never holds a gathered copy of a whole branch.
TEST(DilatedAttention, WorkspaceDoesNotGrowWithTheSequence) {
  const DilatedAttentionParams params{{{2048, 1}, {4096, 2}, {8192, 4}, {16384, 6}, {32768, 12}}, true, 0.0f};
  const auto floats_for = [&](int64_t n) {
    const std::vector<int64_t> starts{0};
    const std::vector<int64_t> lens{n};
    DilatedAttentionShape shape;
    shape.num_heads = 8;
    shape.head_dim = 64;
    shape.seq_starts = starts;
    shape.seq_lens = lens;
    shape.q_stride = shape.k_stride = shape.v_stride = shape.out_stride = 8 * 64;
    return cpu::dilated_attention_workspace_floats(shape, params, 2);
  };
  EXPECT_EQ(floats_for(65536), floats_for(1 << 20));
  EXPECT_EQ(floats_for(32768), floats_for(1 << 30));
  // The largest panel: 2048 keys of the r = 1 branch and 32768 / 12 of the widest, for K and V.
  EXPECT_LT(floats_for(1 << 20), 2 * 2 * 2816 * 64 + 2 * 16384);
}

TEST(DilatedAttention, RejectsBadArguments) {
  const Case c{"", 2, 8, {10}, {{8, 1}}, true};
  Buffers b = make_buffers(c, 1);
  ThreadPool& pool = ThreadPool::global();

  DilatedAttentionParams no_branches{{}, true, 0.0f};
  absl::Status st = run_cpu(no_branches, b, pool);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("branches"), std::string::npos) << st;

  DilatedAttentionParams zero_dilation{{{8, 0}}, true, 0.0f};
  st = run_cpu(zero_dilation, b, pool);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("dilation=0"), std::string::npos) << st;

  DilatedAttentionParams ok{{{8, 1}}, true, 0.0f};
  b.shape.k_stride = 4;
  st = run_cpu(ok, b, pool);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("k_stride=4"), std::string::npos) << st;

  b = make_buffers(c, 1);
  std::vector<float> too_small(8);
  st = cpu::dilated_attention(b.shape, ok, b.q.data(), b.k.data(), b.v.data(), b.out.data(), b.lse.data(),
                              too_small, pool);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("workspace"), std::string::npos) << st;
}

}  // namespace
}  // namespace longnet::kernels
