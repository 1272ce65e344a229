#include "longnet/kernels/layer_norm.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "longnet/kernels/thread_pool.h"

namespace longnet::kernels {
namespace {

std::vector<float> random_vector(size_t n, float lo, float hi, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) {
    x = dist(rng);
  }
  return v;
}

// Outputs are O(1) (normalised values times gamma in [0.5, 1.5] plus beta); float sums over the row
// are off by ~sqrt(dim) eps relative, far below 1e-5.
constexpr float kTolerance = 1e-5f;

// Float's own limit on top: x - mean carries an error of an ulp of |x|, which the normalisation
// multiplies by 1/std (large when a row's values nearly coincide, e.g. dim = 2).
double row_tolerance(const float* x, int64_t dim, float eps) {
  double mean = 0, var = 0, max_abs = 0;
  for (int64_t i = 0; i < dim; ++i) {
    mean += x[i] / static_cast<double>(dim);
  }
  for (int64_t i = 0; i < dim; ++i) {
    var += (x[i] - mean) * (x[i] - mean) / static_cast<double>(dim);
    max_abs = std::max(max_abs, std::fabs(double{x[i]}));
  }
  return kTolerance + 8.0 * FLT_EPSILON * max_abs / std::sqrt(var + eps);
}

TEST(LayerNormTest, MatchesReferenceOverShapesAndStrides) {
  ThreadPool pool(3);
  std::mt19937 rng(42);
  for (int64_t dim : {1, 2, 7, 8, 15, 16, 17, 31, 64, 768, 1000, 4099}) {
    for (int64_t rows : {1, 3, 37}) {
      for (int64_t pad : {0, 5}) {
        LayerNormShape s;
        s.rows = rows;
        s.dim = dim;
        s.x_stride = dim + pad;
        s.y_stride = dim + 2 * pad;
        s.eps = pad == 0 ? 1e-5f : 1e-6f;
        // An offset mean and a spread other than 1, so both the centring and the scaling are exercised.
        const std::vector<float> x = random_vector(static_cast<size_t>(rows * s.x_stride), 1.0f, 4.0f, rng);
        const std::vector<float> gamma = random_vector(static_cast<size_t>(dim), 0.5f, 1.5f, rng);
        const std::vector<float> beta = random_vector(static_cast<size_t>(dim), -0.5f, 0.5f, rng);
        std::vector<float> got(static_cast<size_t>(rows * s.y_stride), -7.0f);
        std::vector<float> want = got;
        cpu::layer_norm(s, x.data(), gamma.data(), beta.data(), got.data(), pool);
        reference::layer_norm(s, x.data(), gamma.data(), beta.data(), want.data());
        for (int64_t r = 0; r < rows; ++r) {
          const double tol = row_tolerance(x.data() + r * s.x_stride, dim, s.eps);
          for (int64_t i = 0; i < s.y_stride; ++i) {
            const size_t at = static_cast<size_t>(r * s.y_stride + i);
            if (i >= dim) {
              ASSERT_EQ(got[at], -7.0f) << "padding written";
            } else {
              ASSERT_NEAR(got[at], want[at], tol)
                  << "dim=" << dim << " rows=" << rows << " r=" << r << " i=" << i;
            }
          }
        }
      }
    }
  }
}

TEST(LayerNormTest, ReferenceNormalisesEachRow) {
  // With gamma = 1 and beta = 0 every output row has mean 0 and variance var / (var + eps).
  std::mt19937 rng(5);
  LayerNormShape s{4, 33, 33, 33, 1e-5f};
  const std::vector<float> x = random_vector(4 * 33, -3.0f, 5.0f, rng);
  const std::vector<float> gamma(33, 1.0f), beta(33, 0.0f);
  std::vector<float> y(x.size());
  reference::layer_norm(s, x.data(), gamma.data(), beta.data(), y.data());
  for (int r = 0; r < 4; ++r) {
    double mean = 0, var_in = 0, mean_in = 0, var = 0;
    for (int i = 0; i < 33; ++i) {
      mean_in += x[r * 33 + i] / 33.0;
    }
    for (int i = 0; i < 33; ++i) {
      var_in += (x[r * 33 + i] - mean_in) * (x[r * 33 + i] - mean_in) / 33.0;
    }
    for (int i = 0; i < 33; ++i) {
      mean += y[r * 33 + i] / 33.0;
    }
    for (int i = 0; i < 33; ++i) {
      var += (y[r * 33 + i] - mean) * (y[r * 33 + i] - mean) / 33.0;
    }
    EXPECT_NEAR(mean, 0.0, 1e-6);
    EXPECT_NEAR(var, var_in / (var_in + 1e-5), 1e-5);
  }
}

TEST(LayerNormTest, InPlaceMatchesOutOfPlace) {
  ThreadPool pool(2);
  std::mt19937 rng(8);
  LayerNormShape s{50, 771, 800, 800, 1e-5f};
  std::vector<float> x = random_vector(50 * 800, -2.0f, 2.0f, rng);
  const std::vector<float> gamma = random_vector(771, 0.5f, 1.5f, rng);
  const std::vector<float> beta = random_vector(771, -0.5f, 0.5f, rng);
  std::vector<float> separate(x.size());
  cpu::layer_norm(s, x.data(), gamma.data(), beta.data(), separate.data(), pool);
  std::vector<float> ref_in_place = x;
  reference::layer_norm(s, ref_in_place.data(), gamma.data(), beta.data(), ref_in_place.data());
  cpu::layer_norm(s, x.data(), gamma.data(), beta.data(), x.data(), pool);
  for (int64_t r = 0; r < s.rows; ++r) {
    for (int64_t i = 0; i < s.dim; ++i) {
      const size_t at = static_cast<size_t>(r * s.x_stride + i);
      ASSERT_EQ(x[at], separate[at]) << r << "," << i;
      ASSERT_NEAR(x[at], ref_in_place[at], kTolerance) << r << "," << i;
    }
  }
}

TEST(LayerNormTest, ConstantRowGivesBeta) {
  // Zero variance: (x - mean) is exactly 0 for values whose sum is exact, so y == beta.
  ThreadPool pool(1);
  LayerNormShape s{2, 40, 40, 40, 1e-5f};
  const std::vector<float> x(80, 0.75f);
  const std::vector<float> gamma(40, 2.0f);
  std::vector<float> beta(40);
  for (int i = 0; i < 40; ++i) {
    beta[i] = static_cast<float>(i) * 0.1f;
  }
  std::vector<float> y(80, -1.0f);
  cpu::layer_norm(s, x.data(), gamma.data(), beta.data(), y.data(), pool);
  for (int i = 0; i < 80; ++i) {
    ASSERT_EQ(y[i], beta[i % 40]) << i;
  }
}

}  // namespace
}  // namespace longnet::kernels
