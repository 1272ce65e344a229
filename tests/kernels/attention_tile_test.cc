// The SIMD tile loops of the CPU dilated-attention kernel (AVX-512, AVX2) against the portable ones.
// End to end, a machine only ever runs its best variant; here every variant it can run is compared.
#include "cpu/attention_tile.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <ostream>
#include <random>
#include <vector>

#include "cpu/cpu_features.h"

namespace longnet::kernels::cpu {

void PrintTo(Isa isa, std::ostream* os) {
  *os << (isa == Isa::kAvx2 ? "avx2" : "avx512");
}

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

class AttentionTiles : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (GetParam() == Isa::kAvx2 && !has_avx2_fma()) GTEST_SKIP() << "this processor has no AVX2/FMA";
    if (GetParam() == Isa::kAvx512 && !has_avx512())
      GTEST_SKIP() << "this processor has no AVX-512 (F/DQ/BW/VL)";
  }
  const AttentionTileOps& fast =
      GetParam() == Isa::kAvx2 ? attention_tile_ops_avx2() : attention_tile_ops_avx512();
  const AttentionTileOps& plain = attention_tile_ops_generic();
};

TEST_P(AttentionTiles, ScoresAgree) {
  std::mt19937 rng(1);
  for (int64_t head_dim : {8, 20, 64, 128}) {
    const int64_t rows = 24, strips = 3, ld = 64;  // an odd strip count exercises the narrow blocks
    const auto q = random_vector(static_cast<size_t>(rows * head_dim), rng);
    const auto k = random_vector(static_cast<size_t>(strips * kKeyStrip * head_dim), rng);
    std::vector<float> s_fast(static_cast<size_t>(rows * ld), 0.0f), s_plain = s_fast;
    fast.scores(q.data(), rows, head_dim, k.data(), strips, s_fast.data(), ld);
    plain.scores(q.data(), rows, head_dim, k.data(), strips, s_plain.data(), ld);
    EXPECT_LE(max_abs_diff(s_fast, s_plain), 1e-5f) << "head_dim " << head_dim;
  }
}

TEST_P(AttentionTiles, SoftmaxStepAgreesIncludingMaskedRows) {
  std::mt19937 rng(2);
  const int64_t rows = 12, cols = 48, ld = 64, dim = 32;
  std::vector<int64_t> limit{48, 1, 0, 17, -5, 100, 33, 16, 47, 2, 0, 48};
  auto s_fast = random_vector(static_cast<size_t>(rows * ld), rng, 6.0f);
  auto s_plain = s_fast;
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> m_fast{-inf, 0.5f, 1.0f, 9.0f, 0.0f, -1.0f, -inf, 2.0f, 30.0f, -3.0f, 0.0f, 1.0f};
  std::vector<float> l_fast{0.0f, 2.0f, 3.0f, 1.5f, 1.0f, 4.0f, 0.0f, 1.0f, 7.0f, 2.0f, 1.0f, 1.0f};
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

TEST_P(AttentionTiles, AccumulateValuesAgree) {
  std::mt19937 rng(3);
  for (int64_t dim : {16, 48, 64, 80}) {
    const int64_t rows = 24, keys = 48, ld = 64;
    const auto p = random_vector(static_cast<size_t>(rows * ld), rng);
    const auto v = random_vector(static_cast<size_t>(keys * dim), rng);
    auto acc_fast = random_vector(static_cast<size_t>(rows * dim), rng);
    auto acc_plain = acc_fast;
    fast.accumulate_values(p.data(), rows, keys, ld, v.data(), acc_fast.data(), dim);
    plain.accumulate_values(p.data(), rows, keys, ld, v.data(), acc_plain.data(), dim);
    EXPECT_LE(max_abs_diff(acc_fast, acc_plain), 1e-5f) << "dim " << dim;
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, AttentionTiles, ::testing::Values(Isa::kAvx2, Isa::kAvx512),
                         [](const ::testing::TestParamInfo<Isa>& param_info) {
                           return param_info.param == Isa::kAvx2 ? "Avx2" : "Avx512";
                         });

}  // namespace
}  // namespace longnet::kernels::cpu
