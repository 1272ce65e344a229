#pragma once

// Deterministic test inputs that need no stored files: value(stream, i) is a hash of (stream, i), the same
// function as tools/reference/dilated_attention.py (hash_values), bit for bit. Golden outputs computed in
// Python from these inputs can therefore be checked in C++ with only the outputs on disk.

#include <cstdint>
#include <span>
#include <vector>

namespace longnet::testing {

// splitmix64's output function (Steele, Lea, Flood 2014), on unsigned 64-bit arithmetic that wraps.
constexpr uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  uint64_t z = x;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A float in [-1, 1) with 24 significant bits, so it is exact in float32:
// (top 24 bits of the hash) / 2^23 - 1.
constexpr float hash_value(uint64_t stream, uint64_t i) {
  const uint64_t top24 = splitmix64(stream * (uint64_t{1} << 32) + i) >> 40;
  return static_cast<float>(static_cast<double>(top24) / static_cast<double>(1 << 23) - 1.0);
}

// Fills `out` with value(stream, 0), value(stream, 1), ... times `scale` (a power of two keeps it exact).
inline void fill_hash_values(uint64_t stream, std::span<float> out, float scale = 1.0f) {
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = hash_value(stream, i) * scale;
}

// q, k and v of a golden case with seed `seed`: streams 3*seed, 3*seed+1 and 3*seed+2 over `count` values
// (the flat index of the packed (T, H, D) tensor); q is multiplied by q_scale.
struct HashQkv {
  std::vector<float> q, k, v;
};

inline HashQkv hash_qkv(uint64_t seed, size_t count, float q_scale) {
  HashQkv t{std::vector<float>(count), std::vector<float>(count), std::vector<float>(count)};
  fill_hash_values(3 * seed, t.q, q_scale);
  fill_hash_values(3 * seed + 1, t.k);
  fill_hash_values(3 * seed + 2, t.v);
  return t;
}

}  // namespace longnet::testing
