#include "longnet/kernels/xpos.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "longnet/kernels/thread_pool.h"

namespace longnet::kernels {
namespace {

constexpr int64_t kHeads = 3;
constexpr int64_t kHeadDim = 64;
constexpr int64_t kStride = kHeads * kHeadDim + 8;  // rows inside a wider buffer (a fused projection)

std::vector<float> random_rows(int64_t rows, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(rows * kStride));
  for (auto& x : v) {
    x = dist(rng);
  }
  return v;
}

XposApplyShape shape_for(int64_t rows, int64_t first_position) {
  return {rows, kHeads, kHeadDim, kStride, first_position};
}

// Rotates and scales rows with the fast path: builds the table for exactly these rows and applies it.
std::vector<float> fast_xpos(std::vector<float> x, int64_t rows, int64_t first, double centre, XposRole role,
                             const XposConfig& config, ThreadPool& pool) {
  XposTable table;
  EXPECT_TRUE(cpu::build_xpos_table(config, first, rows, centre, &table, pool).ok());
  EXPECT_TRUE(cpu::apply_xpos(shape_for(rows, first), role, table, x.data(), pool).ok());
  return x;
}

// q'(row i) . k'(row j) for one head, accumulated in double.
double dot(const std::vector<float>& q, int64_t i, const std::vector<float>& k, int64_t j, int64_t head) {
  double sum = 0;
  for (int64_t d = 0; d < kHeadDim; ++d) {
    sum += double{q[static_cast<size_t>(i * kStride + head * kHeadDim + d)]} *
           k[static_cast<size_t>(j * kStride + head * kHeadDim + d)];
  }
  return sum;
}

// The relative form, straight from the definition: q'(t).k'(u) = sum_j scale_j^((t-u)/base) *
// <R((t-u) theta_j) (q0,q1), (k0,k1)>, where the rotations by t and u compose to one by t - u.
double relative_dot(const std::vector<float>& q, int64_t i, const std::vector<float>& k, int64_t j,
                    int64_t head, double delta, const XposConfig& config) {
  double sum = 0;
  for (int64_t p = 0; p < kHeadDim / 2; ++p) {
    const double angle = delta * std::pow(10000.0, -static_cast<double>(p) / (kHeadDim / 2.0));
    const double zeta = std::pow(double{config.scale[static_cast<size_t>(p)]}, delta / config.scale_base);
    const size_t qa = static_cast<size_t>(i * kStride + head * kHeadDim + 2 * p);
    const size_t ka = static_cast<size_t>(j * kStride + head * kHeadDim + 2 * p);
    const double q0 = q[qa], q1 = q[qa + 1];
    const double r0 = q0 * std::cos(angle) - q1 * std::sin(angle);
    const double r1 = q1 * std::cos(angle) + q0 * std::sin(angle);
    sum += zeta * (r0 * k[ka] + r1 * k[ka + 1]);
  }
  return sum;
}

TEST(XposTest, DefaultScaleIsTorchscales) {
  const std::vector<float> scale = xpos_default_scale(kHeadDim);
  ASSERT_EQ(scale.size(), 32u);
  EXPECT_FLOAT_EQ(scale[0], 0.4f / 1.4f);
  EXPECT_FLOAT_EQ(scale[31], (62.0f + 25.6f) / 89.6f);
  for (size_t j = 1; j < scale.size(); ++j) {
    EXPECT_GT(scale[j], scale[j - 1]);
  }
}

TEST(XposTest, FastMatchesReference) {
  ThreadPool pool(3);
  std::mt19937 rng(51);
  const std::vector<float> scale = xpos_default_scale(kHeadDim);
  const XposConfig config{kHeadDim, 512.0, scale};
  for (auto [first, rows, centre] : std::vector<std::tuple<int64_t, int64_t, double>>{
           {0, 1, 0.0}, {0, 300, 150.0}, {16384, 200, 16384 + 1024.0}, {999000, 50, 999025.5}}) {
    for (XposRole role : {XposRole::kQuery, XposRole::kKey}) {
      const std::vector<float> x = random_rows(rows, rng);
      const std::vector<float> got = fast_xpos(x, rows, first, centre, role, config, pool);
      std::vector<float> want = x;
      ASSERT_TRUE(reference::apply_xpos(shape_for(rows, first), role, config, centre, want.data()).ok());
      for (size_t i = 0; i < x.size(); ++i) {
        // The float path rounds cos, sin and zeta once each and does 3 float operations: ~4 ulp of
        // the result's scale (|x| <= 1, zeta <= 4 here).
        ASSERT_NEAR(got[i], want[i], 2e-6) << "first=" << first << " i=" << i;
        if (static_cast<int64_t>(i) % kStride >= kHeads * kHeadDim) {
          ASSERT_EQ(got[i], x[i]) << "padding touched";
        }
      }
    }
  }
}

TEST(XposTest, DotProductsDependOnlyOnPositionDifference) {
  ThreadPool pool(2);
  std::mt19937 rng(52);
  const std::vector<float> scale = xpos_default_scale(kHeadDim);
  const XposConfig config{kHeadDim, 512.0, scale};
  const int64_t rows = 96;
  const std::vector<float> q = random_rows(rows, rng);
  const std::vector<float> k = random_rows(rows, rng);
  const int64_t base = 1000;
  const int64_t shift = 100000;
  const std::vector<float> q1 = fast_xpos(q, rows, base, base + 40.0, XposRole::kQuery, config, pool);
  const std::vector<float> k1 = fast_xpos(k, rows, base, base + 40.0, XposRole::kKey, config, pool);
  const std::vector<float> q2 =
      fast_xpos(q, rows, base + shift, base + shift + 40.0, XposRole::kQuery, config, pool);
  const std::vector<float> k2 =
      fast_xpos(k, rows, base + shift, base + shift + 40.0, XposRole::kKey, config, pool);
  // A float32 angle table would be off by ~4e-3 rad at t = 100000 and miss these by ~0.1.
  constexpr double kTol = 2e-5;
  for (int64_t h = 0; h < kHeads; ++h) {
    for (int64_t i = 0; i < rows; i += 5) {
      for (int64_t j = 0; j < rows; j += 3) {
        const double near = dot(q1, i, k1, j, h);
        const double far = dot(q2, i, k2, j, h);
        const double exact = relative_dot(q, i, k, j, h, static_cast<double>(i - j), config);
        ASSERT_NEAR(near, far, kTol) << "i=" << i << " j=" << j;
        ASSERT_NEAR(near, exact, kTol) << "i=" << i << " j=" << j;
      }
    }
  }
}

TEST(XposTest, FiniteAndExactAtOneMillionTokens) {
  ThreadPool pool(2);
  std::mt19937 rng(53);
  const std::vector<float> scale = xpos_default_scale(kHeadDim);
  const XposConfig config{kHeadDim, 512.0, scale};
  const int64_t rows = 64;
  const int64_t first = 1000000;
  const double centre = first + 32.0;
  const std::vector<float> q = random_rows(rows, rng);
  const std::vector<float> k = random_rows(rows, rng);
  const std::vector<float> qr = fast_xpos(q, rows, first, centre, XposRole::kQuery, config, pool);
  const std::vector<float> kr = fast_xpos(k, rows, first, centre, XposRole::kKey, config, pool);
  for (size_t i = 0; i < qr.size(); ++i) {
    ASSERT_TRUE(std::isfinite(qr[i]) && std::isfinite(kr[i])) << i;
  }
  for (int64_t i = 0; i < rows; i += 7) {
    for (int64_t j = 0; j <= i; ++j) {
      ASSERT_NEAR(dot(qr, i, kr, j, 1), relative_dot(q, i, k, j, 1, static_cast<double>(i - j), config), 2e-5)
          << i << "," << j;
    }
  }
}

// The decode path's pieces (one position, several centres) give what the table path gives, bit for bit:
// the factors are the table's rows, and rotating once then scaling per head is apply_xpos.
TEST(XposTest, OnePositionFactorsAreTheTableRows) {
  ThreadPool pool(1);
  const std::vector<float> scale = xpos_default_scale(kHeadDim);
  const XposConfig config{kHeadDim, 512.0, scale};
  absl::StatusOr<XposPairConstants> constants = xpos_pair_constants(config);
  ASSERT_TRUE(constants.ok()) << constants.status();
  ASSERT_EQ(constants->half_dim(), kHeadDim / 2);
  constexpr int64_t kHalf = kHeadDim / 2;
  for (const auto& [position, centre] :
       {std::pair<int64_t, double>{0, 0.0}, {77, 64.0}, {5000, 4096.0}, {1'000'003, 999'424.0}, {12, 20.0}}) {
    XposTable table;
    ASSERT_TRUE(cpu::build_xpos_table(config, position, 1, centre, &table, pool).ok());
    std::vector<float> cos(kHalf), sin(kHalf), q_scale(kHalf), k_scale(kHalf);
    cpu::xpos_rotation(*constants, position, cos.data(), sin.data());
    cpu::xpos_scales(*constants, position, centre, q_scale.data(), k_scale.data());
    EXPECT_EQ(cos, table.cos) << "position " << position;
    EXPECT_EQ(sin, table.sin) << "position " << position;
    EXPECT_EQ(q_scale, table.q_scale) << "position " << position << " centre " << centre;
    EXPECT_EQ(k_scale, table.k_scale) << "position " << position << " centre " << centre;
  }
}

TEST(XposTest, RotateOnceThenScalePerHeadIsApply) {
  ThreadPool pool(1);
  std::mt19937 rng(9);
  const std::vector<float> scale = xpos_default_scale(kHeadDim);
  const XposConfig config{kHeadDim, 512.0, scale};
  const XposPairConstants constants = *xpos_pair_constants(config);
  constexpr int64_t kHalf = kHeadDim / 2;
  const int64_t position = 4321;
  for (const double centre : {4096.0, 0.0, 8192.0}) {
    for (const XposRole role : {XposRole::kQuery, XposRole::kKey}) {
      const std::vector<float> x = random_rows(1, rng);
      const std::vector<float> want = fast_xpos(x, 1, position, centre, role, config, pool);
      std::vector<float> cos(kHalf), sin(kHalf), q_scale(kHalf), k_scale(kHalf);
      cpu::xpos_rotation(constants, position, cos.data(), sin.data());
      cpu::xpos_scales(constants, position, centre, q_scale.data(), k_scale.data());
      std::vector<float> rotated(static_cast<size_t>(kHeads * kHeadDim));
      cpu::xpos_rotate_row(cos.data(), sin.data(), kHeads, kHeadDim, x.data(), rotated.data());
      for (int64_t h = 0; h < kHeads; ++h) {
        std::vector<float> got(kHeadDim);
        const float* head = rotated.data() + h * kHeadDim;
        cpu::xpos_scale_head(role == XposRole::kQuery ? q_scale.data() : k_scale.data(), kHeadDim, head,
                             got.data());
        const std::vector<float> expected(want.begin() + h * kHeadDim, want.begin() + (h + 1) * kHeadDim);
        EXPECT_EQ(got, expected) << "head " << h << " centre " << centre;
      }
      // In place, as the caller may do.
      std::vector<float> in_place(x.begin(), x.begin() + kHeads * kHeadDim);
      cpu::xpos_rotate_row(cos.data(), sin.data(), kHeads, kHeadDim, in_place.data(), in_place.data());
      EXPECT_EQ(in_place, rotated);
    }
  }
}

TEST(XposTest, RejectsBadInput) {
  ThreadPool pool(1);
  const std::vector<float> scale = xpos_default_scale(kHeadDim);
  XposTable table;
  const XposConfig odd{63, 512.0, scale};
  EXPECT_NE(validate_xpos(odd).message().find("head_dim = 63"), std::string::npos);
  const XposConfig short_scale{kHeadDim, 512.0, std::span<const float>(scale).first(31)};
  EXPECT_NE(validate_xpos(short_scale).message().find("31"), std::string::npos);
  std::vector<float> bad_scale = scale;
  bad_scale[4] = -0.5f;
  const XposConfig negative{kHeadDim, 512.0, bad_scale};
  EXPECT_NE(cpu::build_xpos_table(negative, 0, 4, 0.0, &table, pool).message().find("scale[4]"),
            std::string::npos);
  EXPECT_NE(xpos_pair_constants(negative).status().message().find("scale[4]"), std::string::npos);

  const XposConfig config{kHeadDim, 512.0, scale};
  ASSERT_TRUE(cpu::build_xpos_table(config, 100, 10, 105.0, &table, pool).ok());
  std::vector<float> x(static_cast<size_t>(20 * kStride));
  const absl::Status outside = cpu::apply_xpos(shape_for(5, 108), XposRole::kQuery, table, x.data(), pool);
  EXPECT_EQ(outside.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(outside.message().find("[108, 113)"), std::string::npos) << outside;
  XposApplyShape wrong_dim = shape_for(5, 100);
  wrong_dim.head_dim = 32;
  EXPECT_NE(cpu::apply_xpos(wrong_dim, XposRole::kKey, table, x.data(), pool).message().find("head_dim = 32"),
            std::string::npos);
}

}  // namespace
}  // namespace longnet::kernels
