// matmul_rows (few rows of A times a Linear's weight, W read in place) against the double-precision
// reference GEMM, for every SIMD variant this processor runs and the portable one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "cpu/cpu_features.h"
#include "cpu/matmul_rows.h"
#include "longnet/kernels/gemm.h"
#include "longnet/kernels/thread_pool.h"

namespace longnet::kernels::cpu {

namespace {

std::vector<float> random_vector(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& e : x)
    e = dist(rng);
  return x;
}

// C = A W^T (+ C) through the reference GEMM (double accumulation).
std::vector<float> expected(const MatmulRowsShape& s, const std::vector<float>& a,
                            const std::vector<float>& w, std::vector<float> c) {
  GemmShape g;
  g.trans_b = Transpose::kYes;
  g.m = s.m;
  g.n = s.n;
  g.k = s.k;
  g.beta = s.accumulate ? 1.0f : 0.0f;
  g.lda = s.lda;
  g.ldb = s.ldw;
  g.ldc = s.ldc;
  reference::gemm(g, a.data(), w.data(), c.data());
  return c;
}

// The largest |x - y| over the m x n results; the padding between rows must be untouched (NaN stays NaN).
float max_error(const MatmulRowsShape& s, const std::vector<float>& got, const std::vector<float>& want) {
  float worst = 0.0f;
  for (int64_t i = 0; i < s.m; ++i) {
    for (int64_t j = 0; j < s.ldc; ++j) {
      const auto at = static_cast<size_t>(i * s.ldc + j);
      if (j < s.n) {
        worst = std::max(worst, std::abs(got[at] - want[at]));
      } else if (!std::isnan(got[at])) {
        return INFINITY;  // wrote past the row
      }
    }
  }
  return worst;
}

// A random C whose padding between rows is NaN (max_error checks that it stays so).
std::vector<float> output_of(const MatmulRowsShape& s, std::mt19937& rng) {
  std::vector<float> c = random_vector(s.m * s.ldc, rng);
  for (int64_t i = 0; i < s.m; ++i)
    std::fill(c.begin() + i * s.ldc + s.n, c.begin() + (i + 1) * s.ldc, NAN);
  return c;
}

MatmulRowsShape shape_of(int64_t m, int64_t n, int64_t k, bool accumulate) {
  MatmulRowsShape s;
  s.m = m;
  s.n = n;
  s.k = k;
  s.lda = k + 3;  // strides wider than the rows: the gaps are never read as data
  s.ldw = k + 5;
  s.ldc = n + 2;
  s.accumulate = accumulate;
  return s;
}

class MatmulStrips : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (GetParam() == Isa::kAvx2 && !has_avx2_fma()) GTEST_SKIP() << "this processor has no AVX2/FMA";
    if (GetParam() == Isa::kAvx512 && !has_avx512())
      GTEST_SKIP() << "this processor has no AVX-512 (F/DQ/BW/VL)";
  }
  MatmulStripFn fn = GetParam() == Isa::kGeneric ? matmul_strip_generic
                     : GetParam() == Isa::kAvx2  ? matmul_strip_avx2
                                                 : matmul_strip_avx512;
};

// One strip call per 4 rows of W, every row count of the tile loops and their remainders, k around the
// vector widths (masked tails), short last strips.
TEST_P(MatmulStrips, MatchReference) {
  std::mt19937 rng(7);
  for (int64_t m : {1, 2, 3, 5, 6, 7, 12, 13, 64}) {
    for (int64_t k : {1, 7, 8, 9, 15, 16, 17, 33, 256}) {
      for (int64_t n : {1, 3, 4, 6}) {
        for (bool accumulate : {false, true}) {
          const MatmulRowsShape s = shape_of(m, n, k, accumulate);
          const auto a = random_vector(m * s.lda, rng);
          const auto w = random_vector(n * s.ldw, rng);
          std::vector<float> c = output_of(s, rng);
          const std::vector<float> want = expected(s, a, w, c);
          for (int64_t n0 = 0; n0 < n; n0 += kMatmulStrip) {
            const int64_t cols = std::min(kMatmulStrip, n - n0);
            const float* rows[kMatmulStrip];
            for (int64_t j = 0; j < kMatmulStrip; ++j)
              rows[j] = w.data() + (n0 + std::min(j, cols - 1)) * s.ldw;
            fn(a.data(), m, s.lda, rows, k, c.data() + n0, s.ldc, cols, accumulate);
          }
          EXPECT_LE(max_error(s, c, want), 2e-5f * std::sqrt(static_cast<float>(k)))
              << "m " << m << " n " << n << " k " << k << " accumulate " << accumulate;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, MatmulStrips, ::testing::Values(Isa::kGeneric, Isa::kAvx2, Isa::kAvx512),
                         [](const ::testing::TestParamInfo<Isa>& param) {
                           return param.param == Isa::kGeneric ? "generic"
                                  : param.param == Isa::kAvx2  ? "avx2"
                                                               : "avx512";
                         });

// The driver: strips split over the pool, any thread count gives the same bits.
TEST(MatmulRows, MatchesReferenceAndIsDeterministicAcrossThreadCounts) {
  std::mt19937 rng(3);
  ThreadPool one(1);
  ThreadPool two(2);
  ThreadPool three(3);
  for (auto [m, n, k] : {std::tuple{1, 259, 256}, std::tuple{32, 1024, 256}, std::tuple{32, 256, 1024},
                         std::tuple{7, 33, 100}, std::tuple{64, 5, 3}}) {
    for (bool accumulate : {false, true}) {
      const MatmulRowsShape s = shape_of(m, n, k, accumulate);
      const auto a = random_vector(m * s.lda, rng);
      const auto w = random_vector(n * s.ldw, rng);
      const std::vector<float> c0 = output_of(s, rng);
      const std::vector<float> want = expected(s, a, w, c0);
      std::vector<float> c1 = c0, c2 = c0, c3 = c0;
      matmul_rows(s, a.data(), w.data(), c1.data(), one);
      matmul_rows(s, a.data(), w.data(), c2.data(), two);
      matmul_rows(s, a.data(), w.data(), c3.data(), three);
      EXPECT_LE(max_error(s, c1, want), 2e-5f * std::sqrt(static_cast<float>(k)))
          << m << "x" << n << "x" << k;
      EXPECT_EQ(0, std::memcmp(c1.data(), c2.data(), c1.size() * sizeof(float))) << m << "x" << n << "x" << k;
      EXPECT_EQ(0, std::memcmp(c1.data(), c3.data(), c1.size() * sizeof(float))) << m << "x" << n << "x" << k;
    }
  }
}

// A row's result does not depend on the rows beside it (the tile it lands in).
TEST(MatmulRows, ARowGivesTheSameBitsAloneAndInABatch) {
  std::mt19937 rng(11);
  ThreadPool pool(2);
  const MatmulRowsShape batch = shape_of(13, 37, 70, false);
  const auto a = random_vector(batch.m * batch.lda, rng);
  const auto w = random_vector(batch.n * batch.ldw, rng);
  std::vector<float> together(static_cast<size_t>(batch.m * batch.ldc));
  matmul_rows(batch, a.data(), w.data(), together.data(), pool);
  MatmulRowsShape one = batch;
  one.m = 1;
  for (int64_t i = 0; i < batch.m; ++i) {
    std::vector<float> alone(static_cast<size_t>(batch.ldc));
    matmul_rows(one, a.data() + i * batch.lda, w.data(), alone.data(), pool);
    EXPECT_EQ(0, std::memcmp(alone.data(), together.data() + i * batch.ldc, batch.n * sizeof(float))) << i;
  }
}

TEST(MatmulRows, EmptyReductionClearsOrKeepsC) {
  ThreadPool pool(2);
  MatmulRowsShape s = shape_of(3, 5, 0, false);
  std::vector<float> c(static_cast<size_t>(3 * s.ldc), 7.0f);
  matmul_rows(s, nullptr, nullptr, c.data(), pool);
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t j = 0; j < s.ldc; ++j)
      EXPECT_EQ(c[static_cast<size_t>(i * s.ldc + j)], j < 5 ? 0.0f : 7.0f);
  }
  s.accumulate = true;
  std::fill(c.begin(), c.end(), 7.0f);
  matmul_rows(s, nullptr, nullptr, c.data(), pool);
  for (float v : c)
    EXPECT_EQ(v, 7.0f);
}

TEST(MatmulRows, ValidationNamesTheField) {
  MatmulRowsShape s = shape_of(2, 3, 4, false);
  EXPECT_TRUE(validate_matmul_rows(s).ok());
  s.m = kMatmulRowsMax + 1;
  EXPECT_NE(validate_matmul_rows(s).message().find("kMatmulRowsMax"), std::string::npos);
  s = shape_of(2, 3, 4, false);
  s.ldw = 3;
  EXPECT_NE(validate_matmul_rows(s).message().find("ldw = 3"), std::string::npos);
  s = shape_of(2, 3, 4, false);
  s.k = -1;
  EXPECT_NE(validate_matmul_rows(s).message().find("k = -1"), std::string::npos);
}

}  // namespace
}  // namespace longnet::kernels::cpu
