// The AVX2 tile loops of the CPU dilated-attention kernel against the portable ones (the fallback on
// processors without AVX2, which the end-to-end tests on this machine never select).
#include "cpu/attention_tile.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "cpu/cpu_features.h"

namespace longnet::kernels::cpu {
namespace {

std::vector<float> random_vector(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> x(n);
  for (float& e : x)
    e = dist(rng);
  return x;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0.0f;
  for (size_t i = 0; i < a.size(); ++i)
    m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

class AttentionTiles : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!has_avx2_fma()) GTEST_SKIP() << "this processor has no AVX2/FMA: only the portable tile loops exist";
  }
  const AttentionTileOps& fast = attention_tile_ops_avx2();
  const AttentionTileOps& plain = attention_tile_ops_generic();
};

TEST_F(AttentionTiles, ScoresAgree) {
  std::mt19937 rng(1);
  for (int64_t head_dim : {8, 20, 64, 128}) {
    const int64_t rows = 12, strips = 3, ld = 64;
    const auto q = random_vector(static_cast<size_t>(rows * head_dim), rng);
    const auto k = random_vector(static_cast<size_t>(strips * kKeyStrip * head_dim), rng);
    std::vector<float> s_fast(static_cast<size_t>(rows * ld), 0.0f), s_plain = s_fast;
    fast.scores(q.data(), rows, head_dim, k.data(), strips, s_fast.data(), ld);
    plain.scores(q.data(), rows, head_dim, k.data(), strips, s_plain.data(), ld);
    EXPECT_LE(max_abs_diff(s_fast, s_plain), 1e-5f) << "head_dim " << head_dim;
  }
}

TEST_F(AttentionTiles, SoftmaxStepAgreesIncludingMaskedRows) {
  std::mt19937 rng(2);
  const int64_t rows = 6, cols = 48, ld = 64, dim = 32;
  std::vector<int64_t> limit{48, 1, 0, 17, -5, 100};
  auto s_fast = random_vector(static_cast<size_t>(rows * ld), rng, 6.0f);
  auto s_plain = s_fast;
  std::vector<float> m_fast{-std::numeric_limits<float>::infinity(), 0.5f, 1.0f, 9.0f, 0.0f, -1.0f};
  std::vector<float> l_fast{0.0f, 2.0f, 3.0f, 1.5f, 1.0f, 4.0f};
  auto m_plain = m_fast, l_plain = l_fast;
  auto acc_fast = random_vector(static_cast<size_t>(rows * dim), rng);
  auto acc_plain = acc_fast;
  fast.softmax_step(s_fast.data(), rows, cols, ld, limit.data(), m_fast.data(), l_fast.data(),
                    acc_fast.data(), dim);
  plain.softmax_step(s_plain.data(), rows, cols, ld, limit.data(), m_plain.data(), l_plain.data(),
                     acc_plain.data(), dim);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t c = 0; c < cols; ++c) {
      const size_t at = static_cast<size_t>(i * ld + c);
      if (c >= std::max<int64_t>(limit[static_cast<size_t>(i)], 0)) {
        EXPECT_EQ(s_fast[at], 0.0f) << "masked column " << c << " of row " << i << " must be exactly 0";
      }
      EXPECT_NEAR(s_fast[at], s_plain[at], 1e-6f * std::max(1.0f, std::abs(s_plain[at])));
    }
  }
  EXPECT_EQ(m_fast, m_plain);
  for (size_t i = 0; i < l_fast.size(); ++i)
    EXPECT_NEAR(l_fast[i], l_plain[i], 1e-5f * l_plain[i]) << i;
  EXPECT_LE(max_abs_diff(acc_fast, acc_plain), 1e-6f);
}

TEST_F(AttentionTiles, AccumulateValuesAgree) {
  std::mt19937 rng(3);
  const int64_t rows = 12, keys = 48, ld = 64, dim = 64;
  const auto p = random_vector(static_cast<size_t>(rows * ld), rng);
  const auto v = random_vector(static_cast<size_t>(keys * dim), rng);
  auto acc_fast = random_vector(static_cast<size_t>(rows * dim), rng);
  auto acc_plain = acc_fast;
  fast.accumulate_values(p.data(), rows, keys, ld, v.data(), acc_fast.data(), dim);
  plain.accumulate_values(p.data(), rows, keys, ld, v.data(), acc_plain.data(), dim);
  EXPECT_LE(max_abs_diff(acc_fast, acc_plain), 1e-5f);
}

}  // namespace
}  // namespace longnet::kernels::cpu
