// matmul_panels (rows of A times a Linear's weight packed into panels) against the double-precision
// reference GEMM, for every SIMD variant this processor runs and the portable one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "cpu/cpu_features.h"
#include "cpu/matmul_panels.h"
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

// A product's operands: W (n x k, rows ldw = k + 5 apart, so the gaps are never read as data) and its
// panels, A (rows lda = k + 3 apart), C (rows ldc = n + 2 apart, the padding NaN).
struct Problem {
  MatmulPanelsShape s;
  int64_t ldw = 0;
  std::vector<float> a, w, panels, c;
};

Problem problem_of(int64_t m, int64_t n, int64_t k, bool accumulate, std::mt19937& rng) {
  Problem p;
  p.s.m = m;
  p.s.n = n;
  p.s.k = k;
  p.s.lda = k + 3;
  p.s.ldc = n + 2;
  p.s.accumulate = accumulate;
  p.ldw = k + 5;
  p.a = random_vector(m * p.s.lda, rng);
  p.w = random_vector(n * p.ldw, rng);
  p.panels.assign(static_cast<size_t>(panel_floats(n, k)), NAN);
  pack_panels(p.w.data(), n, k, p.ldw, p.panels.data());
  p.c = random_vector(m * p.s.ldc, rng);
  for (int64_t i = 0; i < m; ++i)
    std::fill(p.c.begin() + i * p.s.ldc + n, p.c.begin() + (i + 1) * p.s.ldc, NAN);
  return p;
}

// The pair of panels after the one at column col0, as matmul_panels hands it over (nullptr after the last).
const float* next_pair(const Problem& p, int64_t col0) {
  return col0 + 2 * kPanelWidth < p.s.n ? p.panels.data() + (col0 + 2 * kPanelWidth) * p.s.k : nullptr;
}

// C = A W^T (+ C) through the reference GEMM (double accumulation).
std::vector<float> expected(const Problem& p) {
  GemmShape g;
  g.trans_b = Transpose::kYes;
  g.m = p.s.m;
  g.n = p.s.n;
  g.k = p.s.k;
  g.beta = p.s.accumulate ? 1.0f : 0.0f;
  g.lda = p.s.lda;
  g.ldb = p.ldw;
  g.ldc = p.s.ldc;
  std::vector<float> c = p.c;
  reference::gemm(g, p.a.data(), p.w.data(), c.data());
  return c;
}

// The largest |x - y| over the m x n results; the padding between rows must be untouched (NaN stays NaN).
float max_error(const MatmulPanelsShape& s, const std::vector<float>& got, const std::vector<float>& want) {
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

float tolerance(int64_t k) {
  return 2e-5f * std::sqrt(static_cast<float>(std::max<int64_t>(k, 1)));
}

}  // namespace

TEST(PackPanels, PutsRowsOfWIntoColumnsOfPanelsAndZerosPastN) {
  const int64_t n = 18, k = 3, ldw = 4;
  std::vector<float> w(static_cast<size_t>(n * ldw));
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t p = 0; p < ldw; ++p)
      w[static_cast<size_t>(j * ldw + p)] = p < k ? static_cast<float>(100 * j + p) : NAN;
  }
  ASSERT_EQ(panel_floats(n, k), 2 * kPanelWidth * k);
  std::vector<float> panels(static_cast<size_t>(panel_floats(n, k)), NAN);
  pack_panels(w.data(), n, k, ldw, panels.data());
  for (int64_t j = 0; j < 2 * kPanelWidth; ++j) {
    for (int64_t p = 0; p < k; ++p) {
      const float got = panels[static_cast<size_t>((j / kPanelWidth) * k * kPanelWidth + p * kPanelWidth +
                                                   j % kPanelWidth)];
      EXPECT_EQ(got, j < n ? static_cast<float>(100 * j + p) : 0.0f) << "row " << j << " p " << p;
    }
  }
}

class MatmulPanelLoops : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (GetParam() == Isa::kAvx2 && !has_avx2_fma()) GTEST_SKIP() << "this processor has no AVX2/FMA";
    if (GetParam() == Isa::kAvx512 && !has_avx512())
      GTEST_SKIP() << "this processor has no AVX-512 (F/DQ/BW/VL)";
  }
  MatmulPanelsFn fn = GetParam() == Isa::kGeneric ? matmul_panels_generic
                      : GetParam() == Isa::kAvx2  ? matmul_panels_avx2
                                                  : matmul_panels_avx512;
};

// One call per pair of panels: every row count of the tile loops and their remainders (AVX-512 tiles of
// 12; AVX2 tiles of 6, whose remainders of 1 to 3 rows split the last 6 + r rows in two: 7, 8, 9, 32),
// n around the panel widths (a short last panel, a lone last panel), odd k.
TEST_P(MatmulPanelLoops, MatchReference) {
  std::mt19937 rng(7);
  for (int64_t m : {1, 2, 5, 6, 7, 8, 9, 11, 12, 13, 25, 32, 64}) {
    for (int64_t k : {1, 7, 16, 33, 256}) {
      for (int64_t n : {1, 15, 16, 17, 32, 33, 50}) {
        for (bool accumulate : {false, true}) {
          Problem p = problem_of(m, n, k, accumulate, rng);
          const std::vector<float> want = expected(p);
          for (int64_t col0 = 0; col0 < n; col0 += 2 * kPanelWidth) {
            const int64_t cols = std::min(2 * kPanelWidth, n - col0);
            fn(p.a.data(), m, p.s.lda, p.panels.data() + col0 * k, k, cols > kPanelWidth ? 2 : 1,
               p.c.data() + col0, p.s.ldc, cols, accumulate, next_pair(p, col0));
          }
          EXPECT_LE(max_error(p.s, p.c, want), tolerance(k))
              << "m " << m << " n " << n << " k " << k << " accumulate " << accumulate;
        }
      }
    }
  }
}

// One or two rows against up to kMaxPanelsPerRowCall panels per call (the matrix-vector route), with a
// short last panel, and the same bits as the same row taken one or two panels at a time.
TEST_P(MatmulPanelLoops, FewRowsTakeManyPanelsPerCall) {
  std::mt19937 rng(9);
  for (int64_t m : {1, 2}) {
    for (int64_t k : {1, 33, 256}) {
      for (int64_t n : {40, 113, 128, 200}) {
        for (bool accumulate : {false, true}) {
          Problem p = problem_of(m, n, k, accumulate, rng);
          const std::vector<float> want = expected(p);
          std::vector<float> pairs = p.c;
          const int64_t group = kMaxPanelsPerRowCall * kPanelWidth;
          for (int64_t col0 = 0; col0 < n; col0 += group) {
            const int64_t cols = std::min(group, n - col0);
            const auto count = static_cast<int>((cols + kPanelWidth - 1) / kPanelWidth);
            fn(p.a.data(), m, p.s.lda, p.panels.data() + col0 * k, k, count, p.c.data() + col0, p.s.ldc, cols,
               accumulate, nullptr);
          }
          for (int64_t col0 = 0; col0 < n; col0 += 2 * kPanelWidth) {
            const int64_t cols = std::min(2 * kPanelWidth, n - col0);
            fn(p.a.data(), m, p.s.lda, p.panels.data() + col0 * k, k, cols > kPanelWidth ? 2 : 1,
               pairs.data() + col0, p.s.ldc, cols, accumulate, next_pair(p, col0));
          }
          EXPECT_LE(max_error(p.s, p.c, want), tolerance(k))
              << "m " << m << " n " << n << " k " << k << " accumulate " << accumulate;
          EXPECT_EQ(0, std::memcmp(p.c.data(), pairs.data(), p.c.size() * sizeof(float)))
              << "m " << m << " n " << n << " k " << k;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, MatmulPanelLoops, ::testing::Values(Isa::kGeneric, Isa::kAvx2, Isa::kAvx512),
                         [](const ::testing::TestParamInfo<Isa>& param) {
                           return param.param == Isa::kGeneric ? "generic"
                                  : param.param == Isa::kAvx2  ? "avx2"
                                                               : "avx512";
                         });

// Shapes for the fused steps (bias, activation): a row alone, a decode batch, a tall A, and k = 0.
constexpr std::tuple<int64_t, int64_t, int64_t> kFusedShapes[] = {
    {1, 259, 64}, {32, 100, 48}, {200, 70, 24}, {5, 33, 0}};

// A bias is added to every row before the product accumulates: the same bits as writing it into C (or
// adding it to C) and then accumulating the product, for any thread count, and alone when k is 0.
TEST(MatmulPanels, BiasIsAddedBeforeTheProduct) {
  std::mt19937 rng(11);
  ThreadPool one(1);
  ThreadPool three(3);
  for (auto [m, n, k] : kFusedShapes) {
    for (bool accumulate : {false, true}) {
      const Problem p = problem_of(m, n, k, accumulate, rng);
      const std::vector<float> bias = random_vector(n, rng);
      std::vector<float> want = p.c;
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) {
          float& x = want[static_cast<size_t>(i * p.s.ldc + j)];
          x = accumulate ? x + bias[static_cast<size_t>(j)] : bias[static_cast<size_t>(j)];
        }
      }
      MatmulPanelsShape then = p.s;
      then.accumulate = true;
      matmul_panels(then, p.a.data(), p.panels.data(), want.data(), one);
      for (ThreadPool* pool : {&one, &three}) {
        std::vector<float> got = p.c;
        matmul_panels(p.s, p.a.data(), p.panels.data(), got.data(), *pool, bias.data());
        EXPECT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float)))
            << m << "x" << n << "x" << k << " accumulate " << accumulate << " threads "
            << pool->num_threads();
      }
    }
  }
}

// The activation epilogue applies the element-wise function to each finished block of C: the same bits as
// the product followed by a pass of cpu::activation over C (gaps between rows of C untouched).
TEST(MatmulPanels, ActivationEpilogueEqualsASeparatePass) {
  std::mt19937 rng(12);
  ThreadPool one(1);
  ThreadPool three(3);
  for (auto [m, n, k] : kFusedShapes) {
    for (Activation act : {Activation::kGelu, Activation::kRelu}) {
      for (bool with_bias : {false, true}) {
        const Problem p = problem_of(m, n, k, /*accumulate=*/with_bias, rng);
        const std::vector<float> bias = random_vector(n, rng);
        const float* b = with_bias ? bias.data() : nullptr;
        std::vector<float> want = p.c;
        matmul_panels(p.s, p.a.data(), p.panels.data(), want.data(), one, b);
        for (int64_t i = 0; i < m; ++i)
          activation(act, want.data() + i * p.s.ldc, n, one);
        for (ThreadPool* pool : {&one, &three}) {
          std::vector<float> got = p.c;
          matmul_panels(p.s, p.a.data(), p.panels.data(), got.data(), *pool, b, act);
          EXPECT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float)))
              << m << "x" << n << "x" << k << (act == Activation::kGelu ? " gelu" : " relu") << " bias "
              << with_bias << " threads " << pool->num_threads();
        }
      }
    }
  }
}

// Products run together hand out their units as one sequence; each result is the bits matmul_panels gives
// it alone, whatever the mix (shared A, bias, accumulate, activation, k = 0, an empty product) and threads.
TEST(MatmulPanels, ProductsRunTogetherEqualEachAlone) {
  std::mt19937 rng(13);
  ThreadPool one(1);
  ThreadPool three(3);
  for (int64_t m : {1, 2, 32, 130}) {
    const int64_t k = 40;
    std::vector<Problem> problems;
    problems.push_back(problem_of(m, 100, k, false, rng));
    problems.push_back(problem_of(m, 48, k, true, rng));
    problems.push_back(problem_of(m, 33, 0, false, rng));
    problems.push_back(problem_of(0, 20, k, false, rng));
    problems[1].a = problems[0].a;  // two products of one input, as q, k and v are
    const std::vector<float> bias = random_vector(48, rng);
    std::vector<std::vector<float>> want;
    std::vector<MatmulPanelsJob> jobs;
    for (size_t i = 0; i < problems.size(); ++i) {
      const Problem& p = problems[i];
      const float* b = i == 1 ? bias.data() : nullptr;
      const std::optional<Activation> act =
          i == 0 ? std::optional<Activation>(Activation::kGelu) : std::nullopt;
      want.push_back(p.c);
      matmul_panels(p.s, p.a.data(), p.panels.data(), want.back().data(), one, b, act);
      jobs.push_back({p.s, p.a.data(), p.panels.data(), nullptr, b, act});
    }
    for (ThreadPool* pool : {&one, &three}) {
      std::vector<std::vector<float>> got;
      got.reserve(problems.size());
      for (size_t i = 0; i < problems.size(); ++i) {
        got.push_back(problems[i].c);
        jobs[i].c = got.back().data();
      }
      matmul_panels_together(jobs, *pool);
      for (size_t i = 0; i < problems.size(); ++i) {
        ASSERT_EQ(want[i].size(), got[i].size());
        if (want[i].empty()) continue;  // the empty product (memcmp must not see its null data)
        EXPECT_EQ(0, std::memcmp(want[i].data(), got[i].data(), want[i].size() * sizeof(float)))
            << "m " << m << " product " << i << " threads " << pool->num_threads();
      }
    }
  }
}

// Threads that finish their own run of units take the others' from the back: with many tiny units and
// three threads racing for them, every unit is still computed exactly once (the same bits as one thread).
TEST(MatmulPanels, StolenUnitsAreComputedOnce) {
  std::mt19937 rng(5);
  ThreadPool one(1);
  ThreadPool three(3);
  const Problem p = problem_of(200, 700, 24, /*accumulate=*/true, rng);
  std::vector<float> want = p.c;
  matmul_panels(p.s, p.a.data(), p.panels.data(), want.data(), one);
  for (int round = 0; round < 100; ++round) {
    std::vector<float> got = p.c;
    matmul_panels(p.s, p.a.data(), p.panels.data(), got.data(), three);
    ASSERT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float))) << "round " << round;
  }
}

// The driver: units of rows x panel pairs split over the pool (tall A in blocks of rows), any thread
// count gives the same bits.
TEST(MatmulPanels, MatchesReferenceAndIsDeterministicAcrossThreadCounts) {
  std::mt19937 rng(3);
  ThreadPool one(1);
  ThreadPool two(2);
  ThreadPool three(3);
  for (auto [m, n, k] : {std::tuple{1, 259, 256}, std::tuple{32, 1024, 256}, std::tuple{32, 256, 1024},
                         std::tuple{7, 33, 100}, std::tuple{64, 5, 3}, std::tuple{300, 70, 40}}) {
    for (bool accumulate : {false, true}) {
      const Problem p = problem_of(m, n, k, accumulate, rng);
      const std::vector<float> want = expected(p);
      std::vector<float> c1 = p.c, c2 = p.c, c3 = p.c;
      matmul_panels(p.s, p.a.data(), p.panels.data(), c1.data(), one);
      matmul_panels(p.s, p.a.data(), p.panels.data(), c2.data(), two);
      matmul_panels(p.s, p.a.data(), p.panels.data(), c3.data(), three);
      EXPECT_LE(max_error(p.s, c1, want), tolerance(k)) << m << "x" << n << "x" << k;
      EXPECT_EQ(0, std::memcmp(c1.data(), c2.data(), c1.size() * sizeof(float))) << m << "x" << n << "x" << k;
      EXPECT_EQ(0, std::memcmp(c1.data(), c3.data(), c1.size() * sizeof(float))) << m << "x" << n << "x" << k;
    }
  }
}

// A row's result does not depend on the rows beside it (the tile or block it lands in).
TEST(MatmulPanels, ARowGivesTheSameBitsAloneAndInABatch) {
  std::mt19937 rng(11);
  ThreadPool pool(2);
  const Problem batch = problem_of(113, 37, 70, false, rng);
  std::vector<float> together = batch.c;
  matmul_panels(batch.s, batch.a.data(), batch.panels.data(), together.data(), pool);
  MatmulPanelsShape one = batch.s;
  one.m = 1;
  for (int64_t i = 0; i < batch.s.m; ++i) {
    std::vector<float> alone(static_cast<size_t>(batch.s.ldc));
    matmul_panels(one, batch.a.data() + i * batch.s.lda, batch.panels.data(), alone.data(), pool);
    EXPECT_EQ(0, std::memcmp(alone.data(), together.data() + i * batch.s.ldc, batch.s.n * sizeof(float)))
        << i;
  }
}

TEST(MatmulPanels, EmptyReductionClearsOrKeepsC) {
  ThreadPool pool(2);
  MatmulPanelsShape s;
  s.m = 3;
  s.n = 5;
  s.k = 0;
  s.lda = 1;
  s.ldc = 7;
  std::vector<float> c(static_cast<size_t>(3 * s.ldc), 7.0f);
  matmul_panels(s, nullptr, nullptr, c.data(), pool);
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t j = 0; j < s.ldc; ++j)
      EXPECT_EQ(c[static_cast<size_t>(i * s.ldc + j)], j < 5 ? 0.0f : 7.0f);
  }
  s.accumulate = true;
  std::fill(c.begin(), c.end(), 7.0f);
  matmul_panels(s, nullptr, nullptr, c.data(), pool);
  for (float v : c)
    EXPECT_EQ(v, 7.0f);
}

TEST(MatmulPanels, ValidationNamesTheField) {
  MatmulPanelsShape s;
  s.m = 2;
  s.n = 3;
  s.k = 4;
  s.lda = 4;
  s.ldc = 3;
  EXPECT_TRUE(validate_matmul_panels(s).ok());
  s.lda = 3;
  EXPECT_NE(validate_matmul_panels(s).message().find("lda = 3"), std::string::npos);
  s.lda = 4;
  s.ldc = 2;
  EXPECT_NE(validate_matmul_panels(s).message().find("ldc = 2"), std::string::npos);
  s.ldc = 3;
  s.k = -1;
  EXPECT_NE(validate_matmul_panels(s).message().find("k = -1"), std::string::npos);
}

}  // namespace longnet::kernels::cpu
