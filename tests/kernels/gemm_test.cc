#include "longnet/kernels/gemm.h"

#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace longnet::kernels {
namespace {

constexpr float kSentinel = 12345.0f;  // fills C's padding columns, which must stay untouched

std::vector<float> random_vector(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) {
    x = dist(rng);
  }
  return v;
}

// Inputs lie in [-1, 1], so |sum_k a b| <= K: a float sum of K products is off by at most ~K^2 eps in
// the worst case, and by ~sqrt(K) eps typically. 4 (K + 1) eps sits between, far below the O(1) errors
// a wrong index or transpose gives.
float tolerance(const GemmShape& s) {
  return 4.0f * FLT_EPSILON * static_cast<float>(s.k + 1) * (std::fabs(s.alpha) + std::fabs(s.beta) + 1.0f);
}

struct Operands {
  std::vector<float> a, b, c;
};

Operands make_operands(const GemmShape& s, int64_t count, std::mt19937& rng) {
  const int64_t a_rows = s.trans_a == Transpose::kNo ? s.m : s.k;
  const int64_t b_rows = s.trans_b == Transpose::kNo ? s.k : s.n;
  Operands o;
  o.a = random_vector(static_cast<size_t>(count * a_rows * s.lda), rng);
  o.b = random_vector(static_cast<size_t>(count * b_rows * s.ldb), rng);
  o.c = random_vector(static_cast<size_t>(count * s.m * s.ldc), rng);
  for (int64_t i = 0; i < count * s.m; ++i) {
    for (int64_t j = 0; j < s.ldc; ++j) {
      float& v = o.c[static_cast<size_t>(i * s.ldc + j)];
      // beta == 0 promises C is never read: poison it so any read shows up as NaN.
      if (j >= s.n) {
        v = kSentinel;
      } else if (s.beta == 0.0f) {
        v = std::numeric_limits<float>::quiet_NaN();
      }
    }
  }
  return o;
}

std::string describe(const GemmShape& s) {
  return "m=" + std::to_string(s.m) + " n=" + std::to_string(s.n) + " k=" + std::to_string(s.k) +
         " ta=" + std::to_string(s.trans_a == Transpose::kYes) +
         " tb=" + std::to_string(s.trans_b == Transpose::kYes) + " lda=" + std::to_string(s.lda) +
         " ldb=" + std::to_string(s.ldb) + " ldc=" + std::to_string(s.ldc) +
         " alpha=" + std::to_string(s.alpha) + " beta=" + std::to_string(s.beta);
}

void expect_close(const GemmShape& s, const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  const float tol = tolerance(s);
  const int64_t rows = static_cast<int64_t>(got.size()) / s.ldc;
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < s.ldc; ++j) {
      const size_t at = static_cast<size_t>(i * s.ldc + j);
      if (j >= s.n) {
        ASSERT_EQ(got[at], kSentinel) << "padding written at row " << i << " col " << j << " " << describe(s);
      } else {
        ASSERT_NEAR(got[at], want[at], tol) << "row " << i << " col " << j << " " << describe(s);
      }
    }
  }
}

GemmShape make_shape(int64_t m, int64_t n, int64_t k, Transpose ta, Transpose tb, int64_t pad, float alpha,
                     float beta) {
  GemmShape s;
  s.trans_a = ta;
  s.trans_b = tb;
  s.m = m;
  s.n = n;
  s.k = k;
  s.alpha = alpha;
  s.beta = beta;
  s.lda = (ta == Transpose::kNo ? k : m) + pad;
  s.ldb = (tb == Transpose::kNo ? n : k) + pad;
  s.ldc = n + pad;
  if (s.lda == 0) s.lda = 1;
  if (s.ldb == 0) s.ldb = 1;
  if (s.ldc == 0) s.ldc = 1;
  return s;
}

struct Dims {
  int64_t m, n, k;
};

TEST(GemmTest, MatchesReferenceOverShapesTransposesAndScalars) {
  const std::vector<Dims> dims = {{1, 1, 1},     {1, 64, 37},    {1, 1000, 768}, {37, 1, 64},  {64, 1, 1},
                                  {5, 7, 1},     {1, 7, 1},      {2, 3, 4},      {17, 19, 23}, {128, 96, 80},
                                  {33, 65, 129}, {200, 300, 50}, {3, 4, 0},      {0, 4, 3},    {4, 0, 3}};
  const std::vector<std::pair<float, float>> scalars = {
      {1.0f, 0.0f}, {0.5f, 1.5f}, {-2.0f, 0.25f}, {1.0f, 1.0f}};
  std::mt19937 rng(1234);
  int checked = 0;
  for (const Dims& d : dims) {
    for (Transpose ta : {Transpose::kNo, Transpose::kYes}) {
      for (Transpose tb : {Transpose::kNo, Transpose::kYes}) {
        for (int64_t pad : {0, 3}) {
          for (auto [alpha, beta] : scalars) {
            const GemmShape s = make_shape(d.m, d.n, d.k, ta, tb, pad, alpha, beta);
            ASSERT_TRUE(validate_gemm(s).ok()) << validate_gemm(s) << " " << describe(s);
            Operands o = make_operands(s, 1, rng);
            std::vector<float> want = o.c;
            cpu::gemm(s, o.a.data(), o.b.data(), o.c.data());
            reference::gemm(s, o.a.data(), o.b.data(), want.data());
            expect_close(s, o.c, want);
            ++checked;
          }
        }
      }
    }
  }
  EXPECT_EQ(checked, static_cast<int>(dims.size()) * 4 * 2 * 4);
}

TEST(GemmTest, ReferenceMatchesHandComputedProduct) {
  // [1 2 3; 4 5 6] x [7 8; 9 10; 11 12] = [58 64; 139 154]
  const std::vector<float> a = {1, 2, 3, 4, 5, 6};
  const std::vector<float> b = {7, 8, 9, 10, 11, 12};
  std::vector<float> c = {1, 1, 1, 1};
  GemmShape s = make_shape(2, 2, 3, Transpose::kNo, Transpose::kNo, 0, 2.0f, 0.5f);
  reference::gemm(s, a.data(), b.data(), c.data());
  EXPECT_EQ(c, (std::vector<float>{116.5f, 128.5f, 278.5f, 308.5f}));
  std::vector<float> fast = {1, 1, 1, 1};
  cpu::gemm(s, a.data(), b.data(), fast.data());
  EXPECT_EQ(fast, c);
}

TEST(GemmTest, BatchedMatchesReferenceWithSharedOperand) {
  std::mt19937 rng(99);
  for (const Dims& d : std::vector<Dims>{{1, 48, 32}, {16, 24, 8}, {9, 1, 5}}) {
    for (Transpose tb : {Transpose::kNo, Transpose::kYes}) {
      const GemmShape s = make_shape(d.m, d.n, d.k, Transpose::kNo, tb, 2, 1.0f, 0.0f);
      const int64_t count = 5;
      const int64_t a_size = s.m * s.lda;
      const int64_t b_rows = tb == Transpose::kNo ? s.k : s.n;
      GemmBatch batch;
      batch.count = count;
      batch.stride_a = a_size + 7;  // gaps between operands
      batch.stride_b = 0;           // one B shared by the batch (a weight matrix)
      batch.stride_c = s.m * s.ldc;
      ASSERT_TRUE(validate_gemm(s, batch).ok()) << validate_gemm(s, batch);
      const std::vector<float> a = random_vector(static_cast<size_t>(count * batch.stride_a), rng);
      const std::vector<float> b = random_vector(static_cast<size_t>(b_rows * s.ldb), rng);
      Operands o = make_operands(s, count, rng);
      std::vector<float> want = o.c;
      cpu::gemm_batched(s, batch, a.data(), b.data(), o.c.data());
      reference::gemm_batched(s, batch, a.data(), b.data(), want.data());
      expect_close(s, o.c, want);
    }
  }
}

TEST(GemmTest, GemvMatchesReferenceWithStrides) {
  std::mt19937 rng(7);
  for (Transpose t : {Transpose::kNo, Transpose::kYes}) {
    for (auto [rows, cols] :
         std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 300}, {300, 3}, {257, 129}}) {
      for (auto [incx, incy] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 2}}) {
        GemvShape s;
        s.trans = t;
        s.rows = rows;
        s.cols = cols;
        s.alpha = 0.75f;
        s.beta = incx == 1 ? 0.0f : -0.5f;
        s.lda = cols + 5;
        s.incx = incx;
        s.incy = incy;
        ASSERT_TRUE(validate_gemv(s).ok());
        const int64_t x_len = t == Transpose::kNo ? cols : rows;
        const int64_t y_len = t == Transpose::kNo ? rows : cols;
        const std::vector<float> a = random_vector(static_cast<size_t>(rows * s.lda), rng);
        const std::vector<float> x = random_vector(static_cast<size_t>(x_len * incx), rng);
        std::vector<float> y = random_vector(static_cast<size_t>(y_len * incy), rng);
        if (s.beta == 0.0f) {
          for (int64_t i = 0; i < y_len; ++i) {
            y[static_cast<size_t>(i * incy)] = std::numeric_limits<float>::quiet_NaN();
          }
        }
        std::vector<float> want = y;
        cpu::gemv(s, a.data(), x.data(), y.data());
        reference::gemv(s, a.data(), x.data(), want.data());
        const float tol = 4.0f * FLT_EPSILON * static_cast<float>(x_len + 1) * 2.0f;
        for (size_t i = 0; i < y.size(); ++i) {
          // NaN (a read of y under beta == 0) fails ASSERT_NEAR; the gaps of a strided y must stay as they
          // were.
          ASSERT_NEAR(y[i], want[i], tol) << "i=" << i << " rows=" << rows << " cols=" << cols;
        }
      }
    }
  }
}

TEST(GemmTest, ValidationNamesTheField) {
  GemmShape s = make_shape(4, 5, 6, Transpose::kNo, Transpose::kYes, 0, 1.0f, 0.0f);
  EXPECT_TRUE(validate_gemm(s).ok());
  s.lda = 5;
  absl::Status status = validate_gemm(s);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("lda = 5"), std::string::npos) << status;
  s = make_shape(4, 5, 6, Transpose::kNo, Transpose::kYes, 0, 1.0f, 0.0f);
  s.k = -1;
  EXPECT_NE(validate_gemm(s).message().find("k = -1"), std::string::npos) << validate_gemm(s);
  s = make_shape(4, 5, 6, Transpose::kNo, Transpose::kNo, 0, 1.0f, 0.0f);
  GemmBatch batch{3, 24, 30, 10};  // C spans 4 x 5 = 20 floats: stride 10 overlaps
  EXPECT_NE(validate_gemm(s, batch).message().find("stride_c = 10"), std::string::npos)
      << validate_gemm(s, batch);
  GemvShape v;
  v.rows = 3;
  v.cols = 4;
  v.lda = 4;
  v.incx = 0;
  EXPECT_NE(validate_gemv(v).message().find("incx = 0"), std::string::npos) << validate_gemv(v);
}

}  // namespace
}  // namespace longnet::kernels
