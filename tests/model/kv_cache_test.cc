#include "longnet/model/kv_cache.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "longnet/kernels/thread_pool.h"
#include "longnet/model/model.h"
#include "support/random_model.h"

namespace longnet::model {
namespace {

using kernels::DilatedBranch;

TEST(DilatedKvCache, CapacityIsCeilOfSegmentOverDilation) {
  EXPECT_EQ(DilatedKvCache::branch_capacity({2048, 1}, 0), 2048);
  EXPECT_EQ(DilatedKvCache::branch_capacity({16384, 6}, 0), 2731);  // the paper's w mod r != 0 branch
  EXPECT_EQ(DilatedKvCache::branch_capacity({16384, 6}, 1000), 167);
  // LONGNET.md: sum_i ceil(w_i / r_i) entries per head for the paper's schedule is 11,606.
  const std::vector<DilatedBranch> paper = {{2048, 1}, {4096, 2}, {8192, 4}, {16384, 6}, {32768, 12}};
  int64_t entries = 0;
  for (const auto& b : paper)
    entries += DilatedKvCache::branch_capacity(b, 0);
  EXPECT_EQ(entries, 11606);
  EXPECT_EQ(DilatedKvCache::bytes_for(2, 3, 4, paper, 0), size_t{2} * 4 * 2 * 3 * 4 * 11606);
}

TEST(DilatedKvCache, RefusesBadShapes) {
  MemoryPool pool;
  const std::vector<DilatedBranch> branches = {{16, 1}};
  EXPECT_EQ(DilatedKvCache::create(0, 1, 8, branches, pool).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DilatedKvCache::create(1, 1, 8, {}, pool).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DilatedKvCache, RefusalByTheBudgetIsResourceExhausted) {
  MemoryPool pool(/*budget_bytes=*/4096);
  const std::vector<DilatedBranch> branches = {{4096, 1}};
  EXPECT_EQ(DilatedKvCache::create(1, 1, 64, branches, pool).status().code(),
            absl::StatusCode::kResourceExhausted);
}

// The bar of the issue: the cache holds the same bytes after 10K and after 200K tokens, and so does the
// pool once the forward passes' scratch has been returned.
TEST(DilatedKvCache, BytesAreTheSameAfter10KAnd200KTokens) {
  MemoryPool pool;
  kernels::ThreadPool threads(2);
  const ModelConfig config =
      testing::small_config(ModelType::kDecoder, 16, 2, 2, {{64, 1}, {256, 4}, {1024, 8}});
  auto model = testing::random_model(config, pool);
  ASSERT_NE(model, nullptr);
  const ExecContext ctx{&threads, &pool};
  auto seq = model->start_sequence(ctx);
  ASSERT_TRUE(seq.ok()) << seq.status();
  const size_t expected = model->sequence_cache_bytes();
  EXPECT_EQ((*seq)->nbytes(), expected);

  std::mt19937 rng(7);
  std::vector<int32_t> chunk(5000);
  std::vector<float> logits(259);
  auto feed_until = [&](int64_t target) {
    while ((*seq)->length() < target) {
      for (int32_t& id : chunk)
        id = static_cast<int32_t>(rng() % 256);
      const DecodeChunk c{seq->get(), chunk};
      ASSERT_TRUE(model->forward(ctx, {&c, 1}, DecoderOutput::kLastLogits, logits.data()).ok());
    }
  };
  feed_until(10'000);
  const size_t bytes_10k = (*seq)->nbytes();
  const size_t pool_10k = pool.stats().in_use_bytes;
  feed_until(200'000);
  EXPECT_EQ((*seq)->length(), 200'000);
  EXPECT_EQ((*seq)->nbytes(), bytes_10k);
  EXPECT_EQ(bytes_10k, expected);
  EXPECT_EQ(pool.stats().in_use_bytes, pool_10k);
  for (float v : logits)
    ASSERT_TRUE(std::isfinite(v));
}

// head_rows against its definition: rows i of the piece with (rel + i) % r == offset, in order.
TEST(HeadRows, AreThePieceRowsTheHeadSees) {
  for (int64_t r = 1; r <= 5; ++r) {
    for (int64_t offset = 0; offset < r; ++offset) {
      for (int64_t rel = 0; rel < 12; ++rel) {
        for (int64_t n = 0; n < 12; ++n) {
          std::vector<int64_t> want;
          for (int64_t i = 0; i < n; ++i) {
            if ((rel + i) % r == offset) want.push_back(i);
          }
          const HeadRows got = head_rows(rel, n, r, offset);
          ASSERT_EQ(got.count, static_cast<int64_t>(want.size()))
              << "r=" << r << " offset=" << offset << " rel=" << rel << " n=" << n;
          for (int64_t j = 0; j < got.count; ++j)
            ASSERT_EQ(got.first + j * r, want[static_cast<size_t>(j)]);
        }
      }
    }
  }
}

TEST(BranchKv, EnterSegmentClearsOnlyOnANewSegment) {
  BranchKv kv;
  kv.count = {3, 4};
  EXPECT_EQ(kv.enter_segment(130, 64), 128);
  EXPECT_EQ(kv.count, (std::vector<int64_t>{0, 0}));
  EXPECT_EQ(kv.segment, 2);
  EXPECT_EQ(kv.centre, 128);
  kv.count = {1, 2};
  kv.centre = 150;  // recentred inside the segment: stays
  EXPECT_EQ(kv.enter_segment(191, 64), 128);
  EXPECT_EQ(kv.count, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(kv.centre, 150);
  EXPECT_EQ(kv.enter_segment(192, 64), 192);
  EXPECT_EQ(kv.count, (std::vector<int64_t>{0, 0}));
}

TEST(XposRecentre, FactorsArePowersOfTheScale) {
  const std::vector<float> scale = {0.5f, 0.9f, 1.0f};
  const std::vector<float> f = xpos_recentre_factors(scale, 512.0, 1024);
  ASSERT_EQ(f.size(), 3u);
  EXPECT_FLOAT_EQ(f[0], 0.25f);
  EXPECT_FLOAT_EQ(f[1], 0.81f);
  EXPECT_FLOAT_EQ(f[2], 1.0f);
}

}  // namespace
}  // namespace longnet::model
