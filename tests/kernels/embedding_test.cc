#include "longnet/kernels/embedding.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "longnet/kernels/convert.h"
#include "longnet/kernels/thread_pool.h"

namespace longnet::kernels {
namespace {

constexpr int64_t kVocab = 1000;
constexpr int64_t kDim = 67;  // not a multiple of 8: the conversion tails run too

struct Tables {
  std::vector<float> f32;
  std::vector<uint16_t> f16, bf16;
};

Tables make_tables(std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 0.05f);
  Tables t;
  t.f32.resize(static_cast<size_t>(kVocab * kDim));
  for (auto& v : t.f32) {
    v = normal(rng);
  }
  t.f16.resize(t.f32.size());
  t.bf16.resize(t.f32.size());
  reference::fp32_to_fp16(t.f32.data(), t.f16.data(), static_cast<int64_t>(t.f32.size()));
  reference::fp32_to_bf16(t.f32.data(), t.bf16.data(), static_cast<int64_t>(t.f32.size()));
  return t;
}

const void* table_for(const Tables& t, DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return t.f32.data();
    case DType::kF16:
      return t.f16.data();
    case DType::kBF16:
      return t.bf16.data();
  }
  return nullptr;
}

float element(const Tables& t, DType dtype, size_t at) {
  switch (dtype) {
    case DType::kF32:
      return t.f32[at];
    case DType::kF16:
      return reference::fp16_to_fp32(t.f16[at]);
    case DType::kBF16:
      return reference::bf16_to_fp32(t.bf16[at]);
  }
  return NAN;
}

TEST(EmbeddingTest, LooksUpScalesAndWidensEveryDType) {
  ThreadPool pool(3);
  std::mt19937 rng(21);
  const Tables tables = make_tables(rng);
  std::uniform_int_distribution<int32_t> id_dist(0, kVocab - 1);
  std::vector<int32_t> ids(2000);
  for (auto& id : ids) {
    id = id_dist(rng);
  }
  ids[0] = 0;
  ids[1] = kVocab - 1;
  ids[2] = ids[3];  // repeats are fine
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (float scale : {1.0f, std::sqrt(static_cast<float>(kDim))}) {
      EmbeddingShape s{kVocab, kDim, static_cast<int64_t>(ids.size()), kDim + 5, dtype, scale};
      std::vector<float> got(ids.size() * static_cast<size_t>(s.out_stride), -1.0f), want = got;
      ASSERT_TRUE(cpu::embedding(s, table_for(tables, dtype), ids.data(), got.data(), pool).ok());
      ASSERT_TRUE(reference::embedding(s, table_for(tables, dtype), ids.data(), want.data()).ok());
      for (size_t i = 0; i < ids.size(); ++i) {
        for (int64_t j = 0; j < s.out_stride; ++j) {
          const size_t at = i * static_cast<size_t>(s.out_stride) + static_cast<size_t>(j);
          // One float product per element on both sides: bit-identical.
          ASSERT_EQ(got[at], want[at]) << dtype_name(dtype) << " row " << i << " col " << j;
          const float expected =
              j < kDim ? scale * element(tables, dtype, static_cast<size_t>(ids[i] * kDim + j)) : -1.0f;
          ASSERT_EQ(got[at], expected) << dtype_name(dtype) << " row " << i << " col " << j;
        }
      }
    }
  }
}

TEST(EmbeddingTest, OutOfRangeIdIsInvalidArgumentAndWritesNothing) {
  ThreadPool pool(2);
  std::mt19937 rng(22);
  const Tables tables = make_tables(rng);
  for (int32_t bad : {static_cast<int32_t>(kVocab), -1, 1 << 30}) {
    std::vector<int32_t> ids = {5, 6, 7, bad, 8};
    EmbeddingShape s{kVocab, kDim, 5, kDim, DType::kF16, 1.0f};
    std::vector<float> out(5 * kDim, 42.0f);
    for (int pass = 0; pass < 2; ++pass) {
      const absl::Status status = pass == 0
                                      ? cpu::embedding(s, tables.f16.data(), ids.data(), out.data(), pool)
                                      : reference::embedding(s, tables.f16.data(), ids.data(), out.data());
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
      const std::string message(status.message());
      EXPECT_NE(message.find("id " + std::to_string(bad)), std::string::npos) << message;
      EXPECT_NE(message.find("index 3"), std::string::npos) << message;
      EXPECT_NE(message.find("size 1000"), std::string::npos) << message;
      for (float v : out) {
        ASSERT_EQ(v, 42.0f);
      }
    }
  }
}

TEST(EmbeddingTest, BadShapeIsInvalidArgument) {
  ThreadPool pool(1);
  const std::vector<float> table(10 * 4, 1.0f);
  const std::vector<int32_t> ids = {1, 2};
  std::vector<float> out(8);
  EmbeddingShape s{10, 4, 2, 3, DType::kF32, 1.0f};  // out_stride < dim: rows would overlap
  const absl::Status status = cpu::embedding(s, table.data(), ids.data(), out.data(), pool);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("out_stride = 3"), std::string::npos) << status;
}

}  // namespace
}  // namespace longnet::kernels
