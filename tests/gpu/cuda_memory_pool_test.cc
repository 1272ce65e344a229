// The CUDA Allocator: the budget, refusals and statistics of the CPU pool's contract, on the driver's
// stream-ordered pool. Without a device, creation is FailedPrecondition with the runtime's reason (that
// test runs everywhere); the rest skip.
#include "longnet/model/cuda_memory_pool.h"

#include <cuda_runtime_api.h>

#include <memory>
#include <vector>

#include <gtest/gtest.h>

#include "gpu/gpu_test_support.h"

namespace longnet::model {
namespace {

class CudaMemoryPoolTest : public kernels::gpu_test::GpuTest {};

TEST(CudaMemoryPoolChecksTest, CreateWithoutDeviceIsFailedPrecondition) {
  absl::StatusOr<std::unique_ptr<CudaMemoryPool>> pool = CudaMemoryPool::create({});
  if (pool.ok()) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kFailedPrecondition) << pool.status();
  EXPECT_NE(pool.status().message().find("no CUDA device"), std::string::npos) << pool.status();
}

TEST(CudaMemoryPoolChecksTest, BlocksAreChargedInWholeGranules) {
  EXPECT_EQ(CudaMemoryPool::size_class(0), 0u);
  EXPECT_EQ(CudaMemoryPool::size_class(1), 256u);
  EXPECT_EQ(CudaMemoryPool::size_class(256), 256u);
  EXPECT_EQ(CudaMemoryPool::size_class(257), 512u);
}

TEST_F(CudaMemoryPoolTest, AllocatesReusesAndCounts) {
  absl::StatusOr<std::unique_ptr<CudaMemoryPool>> pool = CudaMemoryPool::create({});
  LONGNET_GPU_ASSERT_OK(pool.status());
  EXPECT_TRUE((*pool)->device().is_cuda());
  {
    absl::StatusOr<PoolBuffer> a = (*pool)->allocate(1000);
    LONGNET_GPU_ASSERT_OK(a.status());
    EXPECT_EQ(a->block_bytes(), 1024u);
    // The memory is usable on the pool's stream.
    LONGNET_GPU_ASSERT_OK(kernels::cuda::to_status(cudaMemset(a->data(), 0, 1000), "cudaMemset"));
    const PoolStats s = (*pool)->stats();
    EXPECT_EQ(s.in_use_bytes, 1024u);
    EXPECT_EQ(s.allocations, 1u);
    EXPECT_EQ(s.cache_misses, 1u);
  }
  LONGNET_GPU_ASSERT_OK(kernels::cuda::to_status(cudaDeviceSynchronize(), "sync"));
  PoolStats s = (*pool)->stats();
  EXPECT_EQ(s.in_use_bytes, 0u);
  EXPECT_GT(s.cached_bytes, 0u);  // kept reserved: the default release threshold keeps everything
  absl::StatusOr<PoolBuffer> again = (*pool)->allocate(1000);
  LONGNET_GPU_ASSERT_OK(again.status());
  EXPECT_EQ((*pool)->stats().cache_hits, 1u);
  again->reset();
  (*pool)->trim();
  EXPECT_EQ((*pool)->stats().cached_bytes, 0u);
  EXPECT_EQ((*pool)->stats().high_water_bytes, 1024u);
}

TEST_F(CudaMemoryPoolTest, BudgetRefusesWithResourceExhausted) {
  CudaMemoryPool::Options options;
  options.budget_bytes = size_t{4} << 20;
  absl::StatusOr<std::unique_ptr<CudaMemoryPool>> pool = CudaMemoryPool::create(options);
  LONGNET_GPU_ASSERT_OK(pool.status());
  absl::StatusOr<PoolBuffer> a = (*pool)->allocate(size_t{3} << 20);
  LONGNET_GPU_ASSERT_OK(a.status());
  EXPECT_FALSE((*pool)->can_allocate(size_t{2} << 20));
  absl::StatusOr<PoolBuffer> b = (*pool)->allocate(size_t{2} << 20);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kResourceExhausted) << b.status();
  EXPECT_EQ((*pool)->stats().refusals, 1u);
  absl::StatusOr<PoolBuffer> huge = (*pool)->allocate(size_t{1} << 50);
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kResourceExhausted);
  a->reset();
  // Once the first buffer is back, the cache is trimmed to make room.
  absl::StatusOr<PoolBuffer> c = (*pool)->allocate(size_t{2} << 20);
  LONGNET_GPU_ASSERT_OK(c.status());
  const PoolStats s = (*pool)->stats();
  EXPECT_LE(s.in_use_bytes, options.budget_bytes);
  EXPECT_EQ(s.budget_bytes, options.budget_bytes);
}

TEST_F(CudaMemoryPoolTest, DeviceMemoryExhaustionIsRefusedNotFatal) {
  absl::StatusOr<std::unique_ptr<CudaMemoryPool>> pool = CudaMemoryPool::create({});
  LONGNET_GPU_ASSERT_OK(pool.status());
  absl::StatusOr<PoolBuffer> too_big = (*pool)->allocate(size_t{1} << 47);  // 128 TiB: no device has it
  EXPECT_EQ(too_big.status().code(), absl::StatusCode::kResourceExhausted) << too_big.status();
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);  // nothing left behind for later launch checks
}

}  // namespace
}  // namespace longnet::model
