#include "longnet/kernels/softmax.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "longnet/kernels/thread_pool.h"

namespace longnet::kernels {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Probabilities: 1e-5 relative plus 1e-9 absolute (exp is accurate to a few ulp and the float sum of
// dim terms to ~sqrt(dim) ulp). lse: 1e-5 absolute, a few ulp of values up to ~40.
void expect_softmax_close(const SoftmaxShape& s, const std::vector<float>& got,
                          const std::vector<float>& want, const std::vector<float>& got_lse,
                          const std::vector<float>& want_lse) {
  for (int64_t r = 0; r < s.rows; ++r) {
    for (int64_t i = 0; i < s.dim; ++i) {
      const size_t at = static_cast<size_t>(r * s.y_stride + i);
      ASSERT_NEAR(got[at], want[at], 1e-5 * want[at] + 1e-9)
          << "row " << r << " col " << i << " dim " << s.dim;
    }
    if (std::isinf(want_lse[r])) {
      ASSERT_EQ(got_lse[r], want_lse[r]) << "row " << r;
    } else {
      ASSERT_NEAR(got_lse[r], want_lse[r], 1e-5) << "row " << r << " dim " << s.dim;
    }
  }
}

struct Case {
  SoftmaxShape shape;
  std::vector<float> x;
};

Case random_case(int64_t rows, int64_t dim, int64_t pad, float spread, double masked_fraction,
                 std::mt19937& rng) {
  Case c;
  c.shape = {rows, dim, dim + pad, dim + 2 * pad};
  std::uniform_real_distribution<float> value(-spread, spread);
  std::bernoulli_distribution masked(masked_fraction);
  c.x.resize(static_cast<size_t>(rows * c.shape.x_stride));
  for (auto& v : c.x) {
    v = masked(rng) ? kNegInf : value(rng);
  }
  return c;
}

void check_case(const Case& c, ThreadPool& pool) {
  const SoftmaxShape& s = c.shape;
  std::vector<float> got(static_cast<size_t>(s.rows * s.y_stride), -3.0f), want = got;
  std::vector<float> got_lse(static_cast<size_t>(s.rows)), want_lse = got_lse;
  cpu::softmax(s, c.x.data(), got.data(), got_lse.data(), pool);
  reference::softmax(s, c.x.data(), want.data(), want_lse.data());
  expect_softmax_close(s, got, want, got_lse, want_lse);
  for (int64_t r = 0; r < s.rows; ++r) {
    for (int64_t i = 0; i < s.dim; ++i) {
      // Masked entries get exactly 0, not a tiny exp(-87).
      if (c.x[static_cast<size_t>(r * s.x_stride + i)] == kNegInf) {
        ASSERT_EQ(got[static_cast<size_t>(r * s.y_stride + i)], 0.0f);
      }
    }
  }
}

TEST(SoftmaxTest, MatchesReferenceOverShapes) {
  ThreadPool pool(3);
  std::mt19937 rng(11);
  for (int64_t dim : {1, 2, 5, 8, 13, 16, 64, 1000, 4097}) {
    for (int64_t rows : {1, 7, 37}) {
      for (float spread : {1.0f, 30.0f}) {
        check_case(random_case(rows, dim, 3, spread, 0.0, rng), pool);
      }
    }
  }
}

TEST(SoftmaxTest, MaskedEntriesAndFullyMaskedRows) {
  ThreadPool pool(2);
  std::mt19937 rng(12);
  for (int64_t dim : {3, 9, 100, 1025}) {
    Case c = random_case(20, dim, 1, 10.0f, 0.3, rng);
    // Rows 0 and 7 entirely masked; row 3 keeps a single live entry.
    for (int64_t i = 0; i < dim; ++i) {
      c.x[static_cast<size_t>(0 * c.shape.x_stride + i)] = kNegInf;
      c.x[static_cast<size_t>(7 * c.shape.x_stride + i)] = kNegInf;
      c.x[static_cast<size_t>(3 * c.shape.x_stride + i)] = i == dim / 2 ? 5.0f : kNegInf;
    }
    check_case(c, pool);

    std::vector<float> y(static_cast<size_t>(c.shape.rows * c.shape.y_stride), 9.0f);
    std::vector<float> lse(static_cast<size_t>(c.shape.rows));
    cpu::softmax(c.shape, c.x.data(), y.data(), lse.data(), pool);
    for (int64_t row : {0, 7}) {
      EXPECT_EQ(lse[static_cast<size_t>(row)], kNegInf);
      for (int64_t i = 0; i < dim; ++i) {
        ASSERT_EQ(y[static_cast<size_t>(row * c.shape.y_stride + i)], 0.0f);
      }
    }
    EXPECT_EQ(y[static_cast<size_t>(3 * c.shape.y_stride + dim / 2)], 1.0f);
    EXPECT_FLOAT_EQ(lse[3], 5.0f);
    for (float v : y) {
      ASSERT_FALSE(std::isnan(v));
    }
  }
}

TEST(SoftmaxTest, RowsSumToOneAndLargeValuesDoNotOverflow) {
  ThreadPool pool(2);
  std::mt19937 rng(13);
  Case c = random_case(9, 333, 0, 5.0f, 0.0, rng);
  for (auto& v : c.x) {
    v += 1e4f;  // exp(x) alone would overflow: the max subtraction must happen
  }
  std::vector<float> y(c.x.size()), lse(9);
  cpu::softmax(c.shape, c.x.data(), y.data(), lse.data(), pool);
  for (int64_t r = 0; r < 9; ++r) {
    double sum = 0;
    for (int64_t i = 0; i < 333; ++i) {
      sum += y[static_cast<size_t>(r * 333 + i)];
    }
    EXPECT_NEAR(sum, 1.0, 1e-5);
    EXPECT_TRUE(std::isfinite(lse[static_cast<size_t>(r)]));
    EXPECT_GT(lse[static_cast<size_t>(r)], 1e4f);
  }
}

TEST(SoftmaxTest, InPlaceAndNullLse) {
  ThreadPool pool(2);
  std::mt19937 rng(14);
  Case c = random_case(11, 77, 0, 8.0f, 0.1, rng);
  std::vector<float> separate(c.x.size());
  cpu::softmax(c.shape, c.x.data(), separate.data(), nullptr, pool);
  std::vector<float> in_place = c.x;
  cpu::softmax(c.shape, in_place.data(), in_place.data(), nullptr, pool);
  EXPECT_EQ(in_place, separate);
  std::vector<float> ref_in_place = c.x;
  reference::softmax(c.shape, ref_in_place.data(), ref_in_place.data(), nullptr);
  for (size_t i = 0; i < c.x.size(); ++i) {
    ASSERT_NEAR(in_place[i], ref_in_place[i], 1e-5 * ref_in_place[i] + 1e-9);
  }
}

TEST(SoftmaxTest, EmptyRowsHaveMinusInfinityLse) {
  ThreadPool pool(1);
  SoftmaxShape s{3, 0, 0, 0};
  std::vector<float> lse(3, 1.0f), ref_lse(3, 1.0f);
  cpu::softmax(s, nullptr, nullptr, lse.data(), pool);
  reference::softmax(s, nullptr, nullptr, ref_lse.data());
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(lse[static_cast<size_t>(i)], kNegInf);
    EXPECT_EQ(ref_lse[static_cast<size_t>(i)], kNegInf);
  }
}

}  // namespace
}  // namespace longnet::kernels
