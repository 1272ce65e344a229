#include "longnet/kernels/activation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "longnet/kernels/thread_pool.h"

namespace longnet::kernels {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// The fast gelu is held to 1e-6 relative (plus 1e-30 absolute for the far negative tail, where gelu is
// below 1e-37 and the fast path flushes to 0). A float evaluation of x/2 (1 + erf(x/sqrt2)) with
// std::erf would not pass this in the negative tail: 1 + erf cancels there.
void expect_gelu_close(const std::vector<float>& in, const std::vector<float>& got,
                       const std::vector<float>& want) {
  for (size_t i = 0; i < in.size(); ++i) {
    if (std::isnan(want[i])) {
      ASSERT_TRUE(std::isnan(got[i])) << "x=" << in[i];
      continue;
    }
    if (std::isinf(want[i])) {
      ASSERT_EQ(got[i], want[i]) << "x=" << in[i];
      continue;
    }
    const double tol = 1e-6 * std::fabs(double{want[i]}) + 1e-30;
    ASSERT_NEAR(got[i], want[i], tol) << "x=" << in[i];
  }
}

TEST(ActivationTest, ReferenceGeluMatchesKnownValues) {
  // 0.5 x erfc(-x / sqrt 2), evaluated in double precision (Python math.erfc).
  const std::vector<std::pair<float, double>> known = {
      {1.0f, 0.8413447460685429},      {-1.0f, -0.15865525393145707}, {2.0f, 1.9544997361036416},
      {-3.0f, -0.004049694094890287},  {0.5f, 0.34573123063700656},   {-6.0f, -5.919525870226207e-09},
      {-10.0f, -7.619853024160593e-23}};
  for (auto [x, want] : known) {
    float v = x;
    reference::activation(Activation::kGelu, &v, 1);
    EXPECT_NEAR(v, want, 1e-7 * std::fabs(want)) << "x=" << x;
  }
}

TEST(ActivationTest, GeluMatchesReferenceOnDenseSweepAndRandomInputs) {
  ThreadPool pool(3);
  std::vector<float> in;
  for (int i = -16000; i <= 16000; ++i) {
    in.push_back(static_cast<float>(i) * 1e-3f);  // every 0.001 in [-16, 16]
  }
  std::mt19937 rng(2024);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (int i = 0; i < 100003; ++i) {
    in.push_back(normal(rng));
  }
  std::vector<float> got = in, want = in;
  cpu::activation(Activation::kGelu, got.data(), static_cast<int64_t>(got.size()), pool);
  reference::activation(Activation::kGelu, want.data(), static_cast<int64_t>(want.size()));
  expect_gelu_close(in, got, want);
}

TEST(ActivationTest, GeluSpecialValues) {
  ThreadPool pool(1);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float denorm = std::numeric_limits<float>::denorm_min();
  const std::vector<float> in = {0.0f,    -0.0f,  denorm, -denorm, 1e-30f,  -1e-30f, 12.99f,
                                 -12.99f, 13.0f,  -13.0f, 13.01f,  -13.01f, 20.0f,   -20.0f,
                                 1e30f,   -1e30f, kInf,   -kInf,   nan,     3.4e38f, -3.4e38f};
  for (size_t len = 1; len <= in.size(); ++len) {  // every tail length of the 8-wide loop
    std::vector<float> got(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(len)), want = got;
    const std::vector<float> x = got;
    cpu::activation(Activation::kGelu, got.data(), static_cast<int64_t>(len), pool);
    reference::activation(Activation::kGelu, want.data(), static_cast<int64_t>(len));
    expect_gelu_close(x, got, want);
  }
  std::vector<float> v = {-kInf, kInf, 0.0f};
  cpu::activation(Activation::kGelu, v.data(), 3, pool);
  EXPECT_EQ(v[0], 0.0f);  // the limit, not NaN
  EXPECT_EQ(v[1], kInf);
  EXPECT_EQ(v[2], 0.0f);
}

TEST(ActivationTest, ReluIsExactAndKeepsNaN) {
  ThreadPool pool(3);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> in(70001);
  for (auto& x : in) {
    x = normal(rng);
  }
  in[5] = std::numeric_limits<float>::quiet_NaN();
  in[6] = -kInf;
  in[7] = kInf;
  std::vector<float> got = in, want = in;
  cpu::activation(Activation::kRelu, got.data(), static_cast<int64_t>(got.size()), pool);
  reference::activation(Activation::kRelu, want.data(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < in.size(); ++i) {
    if (std::isnan(in[i])) {
      ASSERT_TRUE(std::isnan(got[i]) && std::isnan(want[i]));
    } else {
      ASSERT_EQ(got[i], in[i] < 0.0f ? 0.0f : in[i]) << i;
      ASSERT_EQ(want[i], got[i]) << i;
    }
  }
}

}  // namespace
}  // namespace longnet::kernels
