#include "longnet/model/tensor.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "longnet/model/dtype.h"
#include "longnet/model/memory_pool.h"

namespace longnet::model {
namespace {

Tensor must(absl::StatusOr<Tensor> t) {
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : Tensor();
}

// The float at a multi-index, found through the strides (not through any contiguity assumption).
float at(const Tensor& t, std::initializer_list<int64_t> index) {
  int64_t offset = 0;
  int d = 0;
  for (int64_t i : index)
    offset += i * t.stride(d++);
  return t.data<float>()[offset];
}

// A [2, 3, 4] float tensor holding 0, 1, ..., 23 in row-major order.
Tensor iota_234(Allocator& pool) {
  Tensor t = must(Tensor::empty({2, 3, 4}, DType::kF32, pool));
  std::iota(t.data<float>(), t.data<float>() + t.numel(), 0.0f);
  return t;
}

bool has(const absl::Status& status, const std::string& text) {
  return std::string(status.message()).find(text) != std::string::npos;
}

TEST(DTypeTest, SizesAndNames) {
  EXPECT_EQ(dtype_size(DType::kF32), 4u);
  EXPECT_EQ(dtype_size(DType::kF16), 2u);
  EXPECT_EQ(dtype_size(DType::kBF16), 2u);
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16}) {
    absl::StatusOr<DType> parsed = parse_dtype(dtype_name(d));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, d);
  }
  EXPECT_STREQ(dtype_name(DType::kBF16), "bfloat16");
  EXPECT_EQ(*parse_dtype("BF16"), DType::kBF16);  // safetensors spelling
  EXPECT_EQ(*parse_dtype("F32"), DType::kF32);
}

TEST(DTypeTest, UnknownNameIsNamedInTheError) {
  absl::StatusOr<DType> parsed = parse_dtype("float64");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(has(parsed.status(), "float64")) << parsed.status();
}

TEST(DTypeTest, DeviceToString) {
  EXPECT_EQ(Device::cpu().to_string(), "cpu");
  EXPECT_EQ(Device::cuda(1).to_string(), "cuda:1");
  EXPECT_NE(Device::cuda(0), Device::cuda(1));
  EXPECT_EQ(Device{}, Device::cpu());
}

TEST(TensorTest, EmptyIsContiguousRowMajor) {
  MemoryPool pool;
  Tensor t = must(Tensor::empty({2, 3, 4}, DType::kF32, pool));
  EXPECT_EQ(t.rank(), 3);
  EXPECT_EQ(t.dim(0), 2);
  EXPECT_EQ(t.dim(-1), 4);
  EXPECT_EQ(std::vector<int64_t>(t.strides().begin(), t.strides().end()), (std::vector<int64_t>{12, 4, 1}));
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.nbytes(), 96u);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_TRUE(t.owns_storage());
  EXPECT_EQ(t.device(), Device::cpu());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % 64, 0u);
  EXPECT_EQ(t.to_string(), "Tensor(float32, [2, 3, 4], cpu)");
  EXPECT_EQ(pool.stats().in_use_bytes, MemoryPool::size_class(96));
}

TEST(TensorTest, HalfTypesStoreTwoBytes) {
  MemoryPool pool;
  Tensor t = must(Tensor::empty({10, 7}, DType::kBF16, pool));
  EXPECT_EQ(t.nbytes(), 140u);
  EXPECT_NE(t.data<uint16_t>(), nullptr);
  EXPECT_NE(t.data<std::byte>(), nullptr);
}

TEST(TensorTest, ScalarAndZeroElementShapes) {
  MemoryPool pool;
  Tensor scalar = must(Tensor::empty({}, DType::kF32, pool));
  EXPECT_EQ(scalar.rank(), 0);
  EXPECT_EQ(scalar.numel(), 1);
  Tensor none = must(Tensor::empty({4, 0, 3}, DType::kF32, pool));
  EXPECT_EQ(none.numel(), 0);
  EXPECT_EQ(none.raw_data(), nullptr);
  EXPECT_TRUE(none.is_contiguous());
  Tensor view = must(none.slice(0, 1, 3));
  EXPECT_EQ(view.numel(), 0);
  Tensor def;
  EXPECT_EQ(def.numel(), 0);
  EXPECT_EQ(def.rank(), 1);
}

TEST(TensorTest, EmptyRejectsBadShapes) {
  MemoryPool pool;
  absl::StatusOr<Tensor> negative = Tensor::empty({2, -3}, DType::kF32, pool);
  ASSERT_FALSE(negative.ok());
  EXPECT_EQ(negative.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(has(negative.status(), "-3")) << negative.status();

  absl::StatusOr<Tensor> deep = Tensor::empty({1, 1, 1, 1, 1, 1, 1, 1, 1}, DType::kF32, pool);
  ASSERT_FALSE(deep.ok());
  EXPECT_TRUE(has(deep.status(), "rank 9")) << deep.status();

  absl::StatusOr<Tensor> huge = Tensor::empty({int64_t{1} << 40, int64_t{1} << 40}, DType::kF32, pool);
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(pool.stats().allocations, 0u);
}

TEST(TensorTest, EmptyPassesOnThePoolRefusal) {
  MemoryPool pool(1024);
  absl::StatusOr<Tensor> t = Tensor::empty({1024}, DType::kF32, pool);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(has(t.status(), "4096")) << t.status();
}

TEST(TensorTest, ViewsShareStorageAndKeepItAlive) {
  MemoryPool pool;
  Tensor row;
  {
    Tensor t = iota_234(pool);
    row = must(t.select(0, 1));
    t.data<float>()[12] = 42.0f;  // writes through the original are seen by the view
  }
  EXPECT_EQ(pool.stats().in_use_bytes, MemoryPool::size_class(96));  // the view holds the block
  EXPECT_EQ(at(row, {0, 0}), 42.0f);
  EXPECT_EQ(at(row, {2, 3}), 23.0f);
  Tensor copy = row;
  row = Tensor();
  EXPECT_EQ(pool.stats().in_use_bytes, MemoryPool::size_class(96));
  copy = Tensor();
  EXPECT_EQ(pool.stats().in_use_bytes, 0u);
  EXPECT_EQ(pool.stats().cached_bytes, MemoryPool::size_class(96));
}

TEST(TensorTest, BorrowViewsExternalMemory) {
  std::vector<float> weights(12);
  std::iota(weights.begin(), weights.end(), 0.0f);
  Tensor t = must(Tensor::borrow(weights.data(), {3, 4}, DType::kF32, Device::cpu()));
  EXPECT_FALSE(t.owns_storage());
  EXPECT_EQ(t.data<float>(), weights.data());
  EXPECT_EQ(at(t, {2, 1}), 9.0f);
  Tensor col = must(t.select(1, 1));
  EXPECT_FALSE(col.owns_storage());
  EXPECT_EQ(at(col, {2}), 9.0f);
}

TEST(TensorTest, BorrowHoldsTheKeepAlive) {
  auto mapping = std::make_shared<std::vector<float>>(8, 1.0f);
  std::weak_ptr<std::vector<float>> watch = mapping;
  Tensor view;
  {
    Tensor t = must(Tensor::borrow(mapping->data(), {8}, DType::kF32, Device::cpu(), mapping));
    mapping.reset();
    view = must(t.slice(0, 2, 6));
  }
  EXPECT_FALSE(watch.expired());
  EXPECT_EQ(at(view, {3}), 1.0f);
  view = Tensor();
  EXPECT_TRUE(watch.expired());
}

TEST(TensorTest, BorrowRejectsNullDataWithElements) {
  absl::StatusOr<Tensor> t = Tensor::borrow(nullptr, {2}, DType::kF32, Device::cpu());
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Tensor::borrow(nullptr, {0}, DType::kF32, Device::cpu()).ok());
}

TEST(TensorTest, SliceAlongTheFirstDimStaysContiguous) {
  MemoryPool pool;
  Tensor t = iota_234(pool);
  Tensor s = must(t.slice(0, 1, 2));
  EXPECT_EQ(s.dim(0), 1);
  EXPECT_TRUE(s.is_contiguous());
  EXPECT_EQ(s.data<float>(), t.data<float>() + 12);
  EXPECT_EQ(at(s, {0, 1, 2}), 18.0f);
}

TEST(TensorTest, SliceAlongAnInnerDimIsAStridedView) {
  MemoryPool pool;
  Tensor t = iota_234(pool);
  Tensor s = must(t.slice(2, 1, 3));  // [2, 3, 2]
  EXPECT_EQ(s.dim(2), 2);
  EXPECT_EQ(s.stride(0), 12);
  EXPECT_EQ(s.stride(1), 4);
  EXPECT_EQ(s.stride(2), 1);
  EXPECT_FALSE(s.is_contiguous());
  EXPECT_EQ(at(s, {0, 0, 0}), 1.0f);
  EXPECT_EQ(at(s, {1, 2, 1}), 12.0f + 8.0f + 2.0f);
  Tensor mid = must(t.slice(-2, 1, 3));  // negative dims count from the end
  EXPECT_EQ(at(mid, {1, 0, 3}), 12.0f + 4.0f + 3.0f);
}

TEST(TensorTest, SliceWithAStep) {
  MemoryPool pool;
  Tensor t = iota_234(pool);
  Tensor s = must(t.slice(2, 0, 4, 3));  // elements 0 and 3 of the last dim
  EXPECT_EQ(s.dim(2), 2);
  EXPECT_EQ(s.stride(2), 3);
  EXPECT_EQ(at(s, {1, 1, 1}), 12.0f + 4.0f + 3.0f);
  Tensor odd = must(t.slice(1, 1, 3, 2));  // just row 1
  EXPECT_EQ(odd.dim(1), 1);
  EXPECT_EQ(at(odd, {0, 0, 2}), 6.0f);
}

TEST(TensorTest, SliceAndSelectErrorsNameTheValues) {
  MemoryPool pool;
  Tensor t = iota_234(pool);
  for (const absl::StatusOr<Tensor>& bad : {t.slice(3, 0, 1), t.slice(-4, 0, 1), t.slice(1, 2, 1),
                                            t.slice(1, 0, 4), t.slice(1, -1, 2), t.slice(1, 0, 2, 0)}) {
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  }
  absl::StatusOr<Tensor> bad_dim = t.slice(3, 0, 1);
  EXPECT_TRUE(has(bad_dim.status(), "dim 3")) << bad_dim.status();
  absl::StatusOr<Tensor> bad_index = t.select(1, 3);
  ASSERT_FALSE(bad_index.ok());
  EXPECT_TRUE(has(bad_index.status(), "index 3")) << bad_index.status();
  EXPECT_FALSE(t.select(0, -1).ok());
  EXPECT_FALSE(t.select(5, 0).ok());
  EXPECT_TRUE(must(t.slice(1, 3, 3)).numel() == 0);  // an empty range is fine
}

TEST(TensorTest, SelectDropsTheDim) {
  MemoryPool pool;
  Tensor t = iota_234(pool);
  Tensor s = must(t.select(1, 2));  // [2, 4]
  ASSERT_EQ(s.rank(), 2);
  EXPECT_EQ(s.dim(0), 2);
  EXPECT_EQ(s.dim(1), 4);
  EXPECT_EQ(s.stride(0), 12);
  EXPECT_EQ(at(s, {1, 3}), 12.0f + 8.0f + 3.0f);
  Tensor scalar = must(must(s.select(0, 1)).select(0, 3));
  EXPECT_EQ(scalar.rank(), 0);
  EXPECT_EQ(*scalar.data<float>(), 23.0f);
}

TEST(TensorTest, ReshapeSharesTheElements) {
  MemoryPool pool;
  Tensor t = iota_234(pool);
  Tensor r = must(t.reshape({6, -1}));
  EXPECT_EQ(r.dim(1), 4);
  EXPECT_EQ(r.stride(0), 4);
  EXPECT_EQ(r.data<float>(), t.data<float>());
  EXPECT_EQ(at(r, {5, 3}), 23.0f);
  Tensor flat = must(t.reshape({24}));
  EXPECT_EQ(flat.rank(), 1);
  Tensor row = must(t.slice(0, 1, 2));
  Tensor row_flat = must(row.reshape({-1}));
  EXPECT_EQ(row_flat.dim(0), 12);
  EXPECT_EQ(at(row_flat, {0}), 12.0f);
}

TEST(TensorTest, ReshapeErrors) {
  MemoryPool pool;
  Tensor t = iota_234(pool);
  absl::StatusOr<Tensor> mismatch = t.reshape({5, 5});
  ASSERT_FALSE(mismatch.ok());
  EXPECT_EQ(mismatch.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(has(mismatch.status(), "[5, 5]")) << mismatch.status();
  EXPECT_TRUE(has(mismatch.status(), "24")) << mismatch.status();
  EXPECT_FALSE(t.reshape({-1, -1}).ok());
  EXPECT_FALSE(t.reshape({5, -1}).ok());
  EXPECT_FALSE(t.reshape({-2, -12}).ok());
  EXPECT_FALSE(t.reshape({1, 1, 1, 1, 1, 1, 1, 1, 24}).ok());

  absl::StatusOr<Tensor> strided = must(t.slice(2, 0, 2)).reshape({12});
  ASSERT_FALSE(strided.ok());
  EXPECT_EQ(strided.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(TensorTest, ContiguityIgnoresStridesOfSizeOneDims) {
  MemoryPool pool;
  Tensor t = iota_234(pool);
  Tensor one = must(t.slice(1, 1, 2));  // [2, 1, 4], strides [12, 4, 1]: row gaps
  EXPECT_FALSE(one.is_contiguous());
  Tensor inner = must(must(t.select(0, 1)).slice(0, 2, 3));  // [1, 4] with stride 4 on the 1
  EXPECT_TRUE(inner.is_contiguous());
  Tensor stepped = must(t.slice(0, 0, 2, 2));  // [1, 3, 4], stride 24 on the 1
  EXPECT_TRUE(stepped.is_contiguous());
}

TEST(TensorTest, DataChecksTheDtypeInDebugBuilds) {
  MemoryPool pool;
  Tensor t = must(Tensor::empty({4}, DType::kF16, pool));
  EXPECT_DEBUG_DEATH((void)t.data<float>(), "does not match");
}

}  // namespace
}  // namespace longnet::model
