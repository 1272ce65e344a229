#include "longnet/kernels/convert.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace longnet::kernels {
namespace {

uint32_t bits(float f) {
  return std::bit_cast<uint32_t>(f);
}

// Independent decoders, straight from the format definitions (value = 2^(e - bias) * 1.m, or the
// subnormal 2^(1 - bias) * 0.m), used to check the reference itself. The all-ones exponent decodes
// as the next power of two so rounding into overflow can be checked like any other rounding.
double decode_fp16(uint16_t h) {
  const int e = (h >> 10) & 0x1f;
  const int m = h & 0x3ff;
  const double magnitude = e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
  return (h & 0x8000) ? -magnitude : magnitude;
}

double decode_bf16(uint16_t b) {
  const int e = (b >> 7) & 0xff;
  const int m = b & 0x7f;
  const double magnitude = e == 0 ? std::ldexp(m, -133) : std::ldexp(128 + m, e - 134);
  return (b & 0x8000) ? -magnitude : magnitude;
}

bool is_nan16(uint16_t h, int exponent_mask, int mantissa_mask) {
  return (h & exponent_mask) == exponent_mask && (h & mantissa_mask) != 0;
}

// Checks that `got` (magnitude bits of a finite-or-inf result) is the round-to-nearest-even of |x|:
// no neighbour is nearer, and on a tie the result is even.
template <typename Decode>
void expect_rne(float x, uint16_t got, uint16_t inf_bits, Decode decode) {
  const double ax = std::fabs(double{x});
  const uint16_t mag = got & 0x7fff;
  ASSERT_LE(mag, inf_bits) << std::hex << bits(x);
  const double err = std::fabs(ax - decode(mag));
  if (mag > 0) {
    const double down = std::fabs(ax - decode(static_cast<uint16_t>(mag - 1)));
    ASSERT_LE(err, down) << std::hex << bits(x);
    if (err == down) {
      ASSERT_EQ(mag & 1, 0) << "tie not to even " << std::hex << bits(x);
    }
  }
  if (mag < inf_bits) {
    const double up = std::fabs(ax - decode(static_cast<uint16_t>(mag + 1)));
    ASSERT_LE(err, up) << std::hex << bits(x);
    if (err == up) {
      ASSERT_EQ(mag & 1, 0) << "tie not to even " << std::hex << bits(x);
    }
  }
  ASSERT_EQ(got & 0x8000, (bits(x) >> 16) & 0x8000) << "sign " << std::hex << bits(x);
}

// Floats covering every exponent and every rounding situation of both formats: each of the 65536
// upper halves combined with low halves at and around the fp16 (bit 12) and bf16 (bit 15) round points.
std::vector<float> rounding_sweep() {
  const uint32_t lows[] = {0x0000, 0x0001, 0x0fff, 0x1000, 0x1001, 0x1fff, 0x2000,
                           0x3000, 0x7fff, 0x8000, 0x8001, 0xa5a5, 0xffff};
  std::vector<float> out;
  out.reserve(65536 * std::size(lows));
  for (uint32_t hi = 0; hi < 65536; ++hi) {
    for (uint32_t lo : lows) {
      out.push_back(std::bit_cast<float>((hi << 16) | lo));
    }
  }
  std::mt19937 rng(31);
  for (int i = 0; i < 1000000; ++i) {
    out.push_back(std::bit_cast<float>(static_cast<uint32_t>(rng())));
  }
  return out;
}

std::vector<uint16_t> all_16bit_patterns() {
  std::vector<uint16_t> v(65536);
  for (uint32_t i = 0; i < 65536; ++i) {
    v[i] = static_cast<uint16_t>(i);
  }
  return v;
}

TEST(ConvertTest, Fp16ToFp32ExhaustiveMatchesReferenceAndDefinition) {
  const std::vector<uint16_t> all = all_16bit_patterns();
  std::vector<float> fast(all.size()), ref(all.size());
  cpu::fp16_to_fp32(all.data(), fast.data(), static_cast<int64_t>(all.size()));
  reference::fp16_to_fp32(all.data(), ref.data(), static_cast<int64_t>(all.size()));
  for (size_t i = 0; i < all.size(); ++i) {
    ASSERT_EQ(bits(fast[i]), bits(ref[i])) << std::hex << all[i];
    if (is_nan16(all[i], 0x7c00, 0x3ff)) {
      ASSERT_TRUE(std::isnan(ref[i])) << std::hex << all[i];
    } else if ((all[i] & 0x7c00) == 0x7c00) {
      ASSERT_TRUE(std::isinf(ref[i]) && std::signbit(ref[i]) == ((all[i] & 0x8000) != 0))
          << std::hex << all[i];
    } else {
      ASSERT_EQ(double{ref[i]}, decode_fp16(all[i])) << std::hex << all[i];
      ASSERT_EQ(std::signbit(ref[i]), (all[i] & 0x8000) != 0) << std::hex << all[i];
    }
  }
}

TEST(ConvertTest, Bf16ToFp32ExhaustiveMatchesReferenceAndDefinition) {
  const std::vector<uint16_t> all = all_16bit_patterns();
  std::vector<float> fast(all.size()), ref(all.size());
  cpu::bf16_to_fp32(all.data(), fast.data(), static_cast<int64_t>(all.size()));
  reference::bf16_to_fp32(all.data(), ref.data(), static_cast<int64_t>(all.size()));
  for (size_t i = 0; i < all.size(); ++i) {
    ASSERT_EQ(bits(fast[i]), bits(ref[i])) << std::hex << all[i];
    if (is_nan16(all[i], 0x7f80, 0x7f)) {
      ASSERT_TRUE(std::isnan(ref[i])) << std::hex << all[i];
    } else if ((all[i] & 0x7f80) == 0x7f80) {
      ASSERT_TRUE(std::isinf(ref[i])) << std::hex << all[i];
    } else {
      ASSERT_EQ(double{ref[i]}, decode_bf16(all[i])) << std::hex << all[i];
    }
  }
}

TEST(ConvertTest, Fp32ToFp16RoundsToNearestEven) {
  const std::vector<float> in = rounding_sweep();
  std::vector<uint16_t> fast(in.size()), ref(in.size());
  cpu::fp32_to_fp16(in.data(), fast.data(), static_cast<int64_t>(in.size()));
  reference::fp32_to_fp16(in.data(), ref.data(), static_cast<int64_t>(in.size()));
  for (size_t i = 0; i < in.size(); ++i) {
    ASSERT_EQ(fast[i], ref[i]) << std::hex << bits(in[i]);
    if (std::isnan(in[i])) {
      ASSERT_TRUE(is_nan16(ref[i], 0x7c00, 0x3ff)) << std::hex << bits(in[i]);
    } else if (std::isinf(in[i])) {
      ASSERT_EQ(ref[i] & 0x7fff, 0x7c00);
    } else {
      expect_rne(in[i], ref[i], 0x7c00, decode_fp16);
    }
  }
}

TEST(ConvertTest, Fp32ToBf16RoundsToNearestEven) {
  const std::vector<float> in = rounding_sweep();
  std::vector<uint16_t> fast(in.size()), ref(in.size());
  cpu::fp32_to_bf16(in.data(), fast.data(), static_cast<int64_t>(in.size()));
  reference::fp32_to_bf16(in.data(), ref.data(), static_cast<int64_t>(in.size()));
  for (size_t i = 0; i < in.size(); ++i) {
    ASSERT_EQ(fast[i], ref[i]) << std::hex << bits(in[i]);
    if (std::isnan(in[i])) {
      ASSERT_TRUE(is_nan16(ref[i], 0x7f80, 0x7f)) << std::hex << bits(in[i]);
    } else if (std::isinf(in[i])) {
      ASSERT_EQ(ref[i] & 0x7fff, 0x7f80);
    } else {
      expect_rne(in[i], ref[i], 0x7f80, decode_bf16);
    }
  }
}

TEST(ConvertTest, RoundTripsEvery16BitPattern) {
  const std::vector<uint16_t> all = all_16bit_patterns();
  std::vector<float> wide(all.size());
  std::vector<uint16_t> back(all.size());
  cpu::fp16_to_fp32(all.data(), wide.data(), static_cast<int64_t>(all.size()));
  cpu::fp32_to_fp16(wide.data(), back.data(), static_cast<int64_t>(all.size()));
  for (size_t i = 0; i < all.size(); ++i) {
    // NaN comes back quiet: the quiet bit (0x200) is the only one allowed to change.
    const uint16_t expected = is_nan16(all[i], 0x7c00, 0x3ff) ? (all[i] | 0x200) : all[i];
    ASSERT_EQ(back[i], expected) << std::hex << all[i];
  }
  cpu::bf16_to_fp32(all.data(), wide.data(), static_cast<int64_t>(all.size()));
  cpu::fp32_to_bf16(wide.data(), back.data(), static_cast<int64_t>(all.size()));
  for (size_t i = 0; i < all.size(); ++i) {
    const uint16_t expected = is_nan16(all[i], 0x7f80, 0x7f) ? (all[i] | 0x40) : all[i];
    ASSERT_EQ(back[i], expected) << std::hex << all[i];
  }
}

TEST(ConvertTest, EveryLengthAndOffset) {
  // The SIMD body and the scalar tail meet at every split point, from unaligned addresses.
  std::mt19937 rng(32);
  std::normal_distribution<float> normal(0.0f, 100.0f);
  std::vector<float> src(64);
  for (auto& v : src) {
    v = normal(rng);
  }
  for (int64_t offset = 0; offset < 3; ++offset) {
    for (int64_t n = 0; n <= 40; ++n) {
      std::vector<uint16_t> h(64, 0xdead), h_ref(64, 0xdead);
      cpu::fp32_to_fp16(src.data() + offset, h.data() + offset, n);
      reference::fp32_to_fp16(src.data() + offset, h_ref.data() + offset, n);
      ASSERT_EQ(h, h_ref) << "n=" << n;
      cpu::fp32_to_bf16(src.data() + offset, h.data() + offset, n);
      reference::fp32_to_bf16(src.data() + offset, h_ref.data() + offset, n);
      ASSERT_EQ(h, h_ref) << "n=" << n;
      std::vector<float> f(64, -1.0f), f_ref(64, -1.0f);
      cpu::fp16_to_fp32(h.data() + offset, f.data() + offset, n);
      reference::fp16_to_fp32(h.data() + offset, f_ref.data() + offset, n);
      ASSERT_EQ(f, f_ref) << "n=" << n;
      cpu::bf16_to_fp32(h.data() + offset, f.data() + offset, n);
      reference::bf16_to_fp32(h.data() + offset, f_ref.data() + offset, n);
      ASSERT_EQ(f, f_ref) << "n=" << n;
    }
  }
}

TEST(ConvertTest, KnownValues) {
  EXPECT_EQ(reference::fp32_to_fp16(1.0f), 0x3c00);
  EXPECT_EQ(reference::fp32_to_fp16(-2.0f), 0xc000);
  EXPECT_EQ(reference::fp32_to_fp16(65504.0f), 0x7bff);
  EXPECT_EQ(reference::fp32_to_fp16(65519.0f), 0x7bff);
  EXPECT_EQ(reference::fp32_to_fp16(65520.0f), 0x7c00);  // the tie above the largest half rounds to inf
  EXPECT_EQ(reference::fp32_to_fp16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(reference::fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);  // tie with 0: even
  EXPECT_EQ(reference::fp32_to_fp16(std::ldexp(1.5f, -24)), 0x0002);  // tie 1.5 ulp: up to even
  EXPECT_EQ(reference::fp32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(reference::fp32_to_bf16(std::bit_cast<float>(0x3f808000u)), 0x3f80);  // tie: even
  EXPECT_EQ(reference::fp32_to_bf16(std::bit_cast<float>(0x3f818000u)), 0x3f82);  // tie: up to even
  EXPECT_EQ(reference::fp32_to_bf16(std::bit_cast<float>(0x7f7fffffu)), 0x7f80);  // FLT_MAX overflows
  EXPECT_EQ(reference::fp16_to_fp32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(reference::bf16_to_fp32(0xc0a0), -5.0f);
}

}  // namespace
}  // namespace longnet::kernels
