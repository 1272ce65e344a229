// The CUDA kernels' launch shapes, checked on the host: built in every configuration, no CUDA needed.
#include "longnet/kernels/cuda_launch.h"

#include <cstdint>

#include <gtest/gtest.h>

namespace longnet::kernels::cuda {
namespace {

// The shapes are constexpr, so the basic facts hold at compile time as well.
static_assert(elementwise_launch(0).grid == 0);
static_assert(layer_norm_launch(0, 8).grid == 0);
static_assert(kElementwiseThreads % kWarpSize == 0 && kLayerNormMaxThreads % kWarpSize == 0);

TEST(ElementwiseLaunchTest, NothingToDoMeansNoLaunch) {
  EXPECT_EQ(elementwise_launch(0).grid, 0);
  EXPECT_EQ(elementwise_launch(-5).grid, 0);
}

TEST(ElementwiseLaunchTest, OneThreadPerElementInWholeBlocks) {
  EXPECT_EQ(elementwise_launch(1).grid, 1);
  EXPECT_EQ(elementwise_launch(1).block, kElementwiseThreads);
  EXPECT_EQ(elementwise_launch(kElementwiseThreads).grid, 1);
  EXPECT_EQ(elementwise_launch(kElementwiseThreads + 1).grid, 2);
  EXPECT_EQ(elementwise_launch(1000 * kElementwiseThreads).grid, 1000);
}

TEST(ElementwiseLaunchTest, GridIsCappedAndThreadsStride) {
  const int64_t at_cap = kMaxGridBlocks * kElementwiseThreads;
  EXPECT_EQ(elementwise_launch(at_cap).grid, kMaxGridBlocks);
  EXPECT_EQ(elementwise_launch(at_cap + 1).grid, kMaxGridBlocks);
  // Beyond 2^31 elements (indices need 64 bits in the kernel) the grid stays in range.
  const int64_t huge = int64_t{3} << 31;
  const ElementwiseLaunch launch = elementwise_launch(huge);
  EXPECT_EQ(launch.grid, kMaxGridBlocks);
  EXPECT_LE(launch.grid, 65535);
}

TEST(ElementwiseLaunchTest, EveryElementIsCoveredExactlyOnce) {
  // Simulates the kernel's grid-stride loop: thread t handles t, t + stride, ...
  for (int64_t n : {int64_t{1}, int64_t{255}, int64_t{257}, int64_t{12345}}) {
    const ElementwiseLaunch launch = elementwise_launch(n);
    const int64_t stride = launch.grid * launch.block;
    int64_t covered = 0;
    for (int64_t t = 0; t < stride; ++t) {
      for (int64_t i = t; i < n; i += stride)
        ++covered;
    }
    EXPECT_EQ(covered, n) << "n = " << n;
  }
}

TEST(LayerNormLaunchTest, NothingToDoMeansNoLaunch) {
  EXPECT_EQ(layer_norm_launch(0, 768).grid, 0);
  EXPECT_EQ(layer_norm_launch(4, 0).grid, 0);
  EXPECT_EQ(layer_norm_launch(-1, 768).grid, 0);
}

TEST(LayerNormLaunchTest, OneBlockPerRowUpToTheCap) {
  EXPECT_EQ(layer_norm_launch(1, 768).grid, 1);
  EXPECT_EQ(layer_norm_launch(4096, 768).grid, 4096);
  EXPECT_EQ(layer_norm_launch(kMaxGridBlocks + 1, 768).grid, kMaxGridBlocks);
  EXPECT_EQ(layer_norm_launch(int64_t{1} << 40, 768).grid, kMaxGridBlocks);
}

TEST(LayerNormLaunchTest, BlockIsWholeWarpsSizedByTheRow) {
  EXPECT_EQ(layer_norm_launch(1, 1).block, kWarpSize);    // short rows still get a full warp
  EXPECT_EQ(layer_norm_launch(1, 128).block, kWarpSize);  // 4 elements per thread
  EXPECT_EQ(layer_norm_launch(1, 129).block, 2 * kWarpSize);
  EXPECT_EQ(layer_norm_launch(1, 768).block, 192);
  EXPECT_EQ(layer_norm_launch(1, 1024).block, 256);
  EXPECT_EQ(layer_norm_launch(1, 4096).block, kLayerNormMaxThreads);
  EXPECT_EQ(layer_norm_launch(1, 100000).block, kLayerNormMaxThreads);  // then more per thread
}

TEST(LayerNormLaunchTest, SharedMemoryHoldsOneFloatPerWarp) {
  for (int64_t dim : {int64_t{1}, int64_t{7}, int64_t{768}, int64_t{1000}, int64_t{4096}, int64_t{1} << 20}) {
    const LayerNormLaunch launch = layer_norm_launch(3, dim);
    EXPECT_EQ(launch.block % kWarpSize, 0) << "dim = " << dim;
    EXPECT_GE(launch.block, kWarpSize) << "dim = " << dim;
    EXPECT_LE(launch.block, kLayerNormMaxThreads) << "dim = " << dim;
    EXPECT_EQ(launch.shared_bytes, static_cast<size_t>(launch.block / kWarpSize) * sizeof(float))
        << "dim = " << dim;
    EXPECT_LE(launch.shared_bytes, 48u * 1024u);  // within the default dynamic shared-memory limit
  }
}

}  // namespace
}  // namespace longnet::kernels::cuda
