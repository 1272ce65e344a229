#include "longnet/model/model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "longnet/kernels/thread_pool.h"
#include "longnet/model/self_attention.h"
#include "support/random_model.h"

// The graph's own consistency: chunked prefill, one-token decoding and batching give the same rows.
// (Exactness against the float64 reference of the contract is checked through longnet-run by
// tests/model/forward_parity_test.py.)
namespace longnet::model {
namespace {

using kernels::DilatedBranch;

using testing::random_ids;

// Logits of every position of `ids`, fed `chunk` tokens per forward() call.
std::vector<float> logits_by_chunks(const LongNetModel& m, const ExecContext& ctx,
                                    const std::vector<int32_t>& ids, size_t chunk) {
  auto seq = m.start_sequence(ctx);
  EXPECT_TRUE(seq.ok()) << seq.status();
  const int64_t vocab = m.vocab_size();
  std::vector<float> out(ids.size() * static_cast<size_t>(vocab));
  const absl::Status st =
      m.forward_chunked(ctx, **seq, ids, static_cast<int64_t>(chunk), DecoderOutput::kLogits,
                        [&](int64_t first, int64_t rows, const float* logits) {
                          std::copy_n(logits, rows * vocab, out.data() + first * vocab);
                          return absl::OkStatus();
                        });
  EXPECT_TRUE(st.ok()) << st;
  return out;
}

// A pool, two threads and the context a forward pass runs in.
struct Runtime {
  MemoryPool pool;
  kernels::ThreadPool threads{2};
  ExecContext ctx{&threads, &pool};
  std::unique_ptr<LongNetModel> model(const ModelConfig& config) {
    return testing::random_model(config, pool);
  }
};

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float worst = 0.0f;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

struct Schedule {
  const char* name;
  std::vector<DilatedBranch> branches;
  int64_t heads;
};

class DecodeEqualsPrefill : public ::testing::TestWithParam<Schedule> {};

// Row t of the parallel (chunked) forward equals decode step t, across several segment boundaries of
// every branch, with w mod r != 0, r > heads and no r = 1 branch among the schedules.
TEST_P(DecodeEqualsPrefill, AtEveryPosition) {
  Runtime rt;
  const ExecContext& ctx = rt.ctx;
  const Schedule& s = GetParam();
  auto m = rt.model(testing::small_config(ModelType::kDecoder, 8 * s.heads, s.heads, 2, s.branches));
  ASSERT_NE(m, nullptr);
  const std::vector<int32_t> ids = random_ids(700, 3);
  const std::vector<float> prefill = logits_by_chunks(*m, ctx, ids, ids.size());
  const std::vector<float> decode = logits_by_chunks(*m, ctx, ids, 1);
  const std::vector<float> ragged = logits_by_chunks(*m, ctx, ids, 37);
  EXPECT_LE(max_abs_diff(prefill, decode), 2e-4f);
  EXPECT_LE(max_abs_diff(prefill, ragged), 2e-4f);
  for (float v : decode)
    ASSERT_TRUE(std::isfinite(v));
}

INSTANTIATE_TEST_SUITE_P(Schedules, DecodeEqualsPrefill,
                         ::testing::Values(Schedule{"geometric", {{16, 1}, {64, 2}, {256, 4}}, 4},
                                           Schedule{"odd", {{10, 3}, {48, 5}, {200, 7}}, 4},
                                           Schedule{"paper_like", {{32, 1}, {96, 6}}, 6}),
                         [](const ::testing::TestParamInfo<Schedule>& p) {
                           return std::string(p.param.name);
                         });

// XPOS keeps a centre per branch and moves it (rescaling the cached keys) every 4096 positions; decoding
// far past several moves must still match prefill.
TEST(ModelForward, XposRecentringKeepsDecodeEqualToPrefill) {
  Runtime rt;
  const ExecContext& ctx = rt.ctx;
  auto m = rt.model(testing::small_config(ModelType::kDecoder, 16, 2, 1, {{64, 1}, {16384, 2}}));
  ASSERT_NE(m, nullptr);
  const std::vector<int32_t> ids = random_ids(10'000, 5);
  const std::vector<float> prefill = logits_by_chunks(*m, ctx, ids, 2048);
  const std::vector<float> decode = logits_by_chunks(*m, ctx, ids, 1);
  EXPECT_LE(max_abs_diff(prefill, decode), 2e-4f);
}

// Decode steps share each position's XPOS factors across layers (a memo in the sequence's cache); a model
// whose layers have different scale buffers must not get another layer's factors.
TEST(ModelForward, DecodeWithDifferentXposScalesPerLayerEqualsPrefill) {
  MemoryPool pool;
  kernels::ThreadPool threads(2);
  const ExecContext ctx{&threads, &pool};
  const auto square_layer_1 = [](const std::string& name, std::span<float> values) {
    if (name != "layers.1.self_attn.xpos.scale") return;
    for (float& x : values)
      x *= x;
  };
  auto m = testing::random_model(testing::small_config(ModelType::kDecoder, 32, 4, 3, {{16, 1}, {64, 2}}),
                                 pool, 1, square_layer_1);
  ASSERT_NE(m, nullptr);
  const std::vector<int32_t> ids = random_ids(200, 7);
  EXPECT_LE(max_abs_diff(logits_by_chunks(*m, ctx, ids, ids.size()), logits_by_chunks(*m, ctx, ids, 1)),
            2e-4f);
}

// Sequences batched in one forward() call give what each gives alone, to float rounding: OpenBLAS picks
// its kernels by matrix size, so a row's logits are not bit-identical across batch compositions (1.5e-6
// here). The sampler's random stream is per sequence, so a seed gives the same tokens whenever the
// logits' argmax / ranking is not within that rounding of a tie.
TEST(ModelForward, BatchedChunksEqualSeparateSequences) {
  Runtime rt;
  const ExecContext& ctx = rt.ctx;
  auto m = rt.model(testing::small_config(ModelType::kDecoder, 32, 4, 2, {{16, 1}, {64, 4}}));
  ASSERT_NE(m, nullptr);
  const std::vector<int32_t> a = random_ids(90, 1);
  const std::vector<int32_t> b = random_ids(35, 2);
  const std::vector<float> alone_a = logits_by_chunks(*m, ctx, a, a.size());
  const std::vector<float> alone_b = logits_by_chunks(*m, ctx, b, b.size());
  auto sa = m->start_sequence(ctx);
  auto sb = m->start_sequence(ctx);
  ASSERT_TRUE(sa.ok() && sb.ok());
  const DecodeChunk chunks[] = {{sa->get(), a}, {sb->get(), b}};
  std::vector<float> both((a.size() + b.size()) * 259);
  ASSERT_TRUE(m->forward(ctx, chunks, DecoderOutput::kLogits, both.data()).ok());
  const std::vector<float> got_a(both.begin(), both.begin() + static_cast<long>(a.size() * 259));
  const std::vector<float> got_b(both.begin() + static_cast<long>(a.size() * 259), both.end());
  EXPECT_LE(max_abs_diff(got_a, alone_a), 1e-5f);
  EXPECT_LE(max_abs_diff(got_b, alone_b), 1e-5f);
}

// Decode steps of several sequences at different positions, batched in one forward() call per step beside
// another sequence's prefill chunk (by turns longer than kShortChunkRows, attended alone with the threads
// inside, and of 12 rows, attended in a task beside the decode tokens): every row equals that sequence's
// own prefill, with and without XPOS, across the segment boundaries of every branch.
TEST(ModelForward, BatchedDecodeStepsEqualPrefill) {
  for (const bool xpos : {true, false}) {
    Runtime rt;
    const ExecContext& ctx = rt.ctx;
    auto m =
        rt.model(testing::small_config(ModelType::kDecoder, 32, 4, 2, {{16, 1}, {64, 2}, {128, 4}}, xpos));
    ASSERT_NE(m, nullptr);
    constexpr size_t kSequences = 5;
    constexpr size_t kLength = 150;
    // Sequence 0's rows per call, by turns.
    constexpr std::array<size_t, 2> kChunks = {DilatedSelfAttention::kShortChunkRows + 6, 12};
    const int64_t vocab = m->vocab_size();
    std::vector<std::vector<int32_t>> ids;
    std::vector<std::vector<float>> want, got;
    std::vector<std::unique_ptr<Sequence>> seqs;
    for (size_t s = 0; s < kSequences; ++s) {
      ids.push_back(random_ids(kLength, static_cast<uint32_t>(10 + s)));
      want.push_back(logits_by_chunks(*m, ctx, ids[s], kLength));
      got.emplace_back(kLength * static_cast<size_t>(vocab));
      auto seq = m->start_sequence(ctx);
      ASSERT_TRUE(seq.ok()) << seq.status();
      seqs.push_back(*std::move(seq));
    }
    std::vector<size_t> done(kSequences);
    for (size_t s = 1; s < kSequences; ++s)
      done[s] = 9 * s;  // the prompts are prefilled below, each alone
    for (size_t s = 1; s < kSequences; ++s) {
      const DecodeChunk prompt{seqs[s].get(), std::span<const int32_t>(ids[s]).first(done[s])};
      ASSERT_TRUE(m->forward(ctx, {&prompt, 1}, DecoderOutput::kLogits, got[s].data()).ok());
    }
    for (size_t step = 0; *std::min_element(done.begin(), done.end()) < kLength; ++step) {
      std::vector<DecodeChunk> chunks;
      std::vector<size_t> rows;
      for (size_t s = 0; s < kSequences; ++s) {
        const size_t n = std::min(s == 0 ? kChunks[step % 2] : 1, kLength - done[s]);
        if (n == 0) continue;
        chunks.push_back({seqs[s].get(), std::span<const int32_t>(ids[s]).subspan(done[s], n)});
        rows.push_back(n);
      }
      size_t total = 0;
      for (size_t n : rows)
        total += n;
      std::vector<float> out(total * static_cast<size_t>(vocab));
      ASSERT_TRUE(m->forward(ctx, chunks, DecoderOutput::kLogits, out.data()).ok());
      const float* row = out.data();
      for (size_t c = 0; c < chunks.size(); ++c) {
        const size_t s =
            static_cast<size_t>(std::find_if(seqs.begin(), seqs.end(),
                                             [&](const auto& q) { return q.get() == chunks[c].sequence; }) -
                                seqs.begin());
        const size_t floats = rows[c] * static_cast<size_t>(vocab);
        std::copy_n(row, floats, got[s].data() + done[s] * static_cast<size_t>(vocab));
        row += floats;
        done[s] += rows[c];
      }
    }
    for (size_t s = 0; s < kSequences; ++s)
      EXPECT_LE(max_abs_diff(got[s], want[s]), 2e-4f)
          << "sequence " << s << (xpos ? " with" : " without") << " XPOS";
  }
}

// kHiddenAndLogits gives, row by row, exactly what kHidden and kLogits give on their own.
TEST(ModelForward, HiddenAndLogitsTogetherEqualEachAlone) {
  Runtime rt;
  const ExecContext& ctx = rt.ctx;
  auto m = rt.model(testing::small_config(ModelType::kDecoder, 16, 2, 1, {{16, 1}, {64, 4}}));
  ASSERT_NE(m, nullptr);
  const std::vector<int32_t> ids = random_ids(50, 4);
  auto run = [&](DecoderOutput what) {
    auto seq = m->start_sequence(ctx);
    EXPECT_TRUE(seq.ok());
    std::vector<float> out(ids.size() * static_cast<size_t>(m->output_dim(what)));
    const DecodeChunk c{seq->get(), ids};
    EXPECT_TRUE(m->forward(ctx, {&c, 1}, what, out.data()).ok());
    return out;
  };
  const std::vector<float> hidden = run(DecoderOutput::kHidden);
  const std::vector<float> logits = run(DecoderOutput::kLogits);
  const std::vector<float> both = run(DecoderOutput::kHiddenAndLogits);
  ASSERT_EQ(m->output_dim(DecoderOutput::kHiddenAndLogits), 16 + 259);
  for (size_t r = 0; r < ids.size(); ++r) {
    for (size_t d = 0; d < 16; ++d)
      ASSERT_EQ(both[r * 275 + d], hidden[r * 16 + d]) << r << " " << d;
    for (size_t v = 0; v < 259; ++v)
      ASSERT_EQ(both[r * 275 + 16 + v], logits[r * 259 + v]) << r << " " << v;
  }
}

TEST(ModelForward, BadIdIsRefusedBeforeTheCacheChanges) {
  Runtime rt;
  const ExecContext& ctx = rt.ctx;
  auto m = rt.model(testing::small_config(ModelType::kDecoder, 16, 2, 1, {{16, 1}}));
  ASSERT_NE(m, nullptr);
  auto seq = m->start_sequence(ctx);
  ASSERT_TRUE(seq.ok());
  const std::vector<int32_t> ids = {1, 2, 259};
  const DecodeChunk c{seq->get(), ids};
  std::vector<float> out(3 * 259);
  const absl::Status st = m->forward(ctx, {&c, 1}, DecoderOutput::kLogits, out.data());
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("259"), std::string_view::npos) << st;
  EXPECT_EQ((*seq)->length(), 0);
}

// An encoder-decoder source encoded a few blocks at a time (what the engine does between other sequences'
// steps) gives the same logits, bit for bit, as one encoded at once.
TEST(ModelForward, SourceEncodedBlockByBlockEqualsAtOnce) {
  Runtime rt;
  const ExecContext& ctx = rt.ctx;
  auto m = rt.model(testing::small_config(ModelType::kEncoderDecoder, 16, 2, 2, {{16, 1}, {32, 2}}));
  ASSERT_NE(m, nullptr);
  ASSERT_EQ(m->encoder_block_length(100), 32);
  const std::vector<int32_t> source = random_ids(100, 1);
  const std::vector<int32_t> target = random_ids(12, 2);
  std::vector<float> want(target.size() * 259);
  std::vector<float> got(want.size());
  auto at_once = m->start_sequence(ctx, source);
  ASSERT_TRUE(at_once.ok()) << at_once.status();
  EXPECT_EQ((*at_once)->source_pending(), 0);
  const DecodeChunk a{at_once->get(), target};
  ASSERT_TRUE(m->forward(ctx, {&a, 1}, DecoderOutput::kLogits, want.data()).ok());

  auto deferred = m->start_sequence_deferred(ctx, source);
  ASSERT_TRUE(deferred.ok()) << deferred.status();
  Sequence& seq = **deferred;
  EXPECT_EQ(seq.source_pending(), 100);
  const DecodeChunk b{&seq, target};
  const absl::Status early = m->forward(ctx, {&b, 1}, DecoderOutput::kLogits, got.data());
  EXPECT_EQ(early.code(), absl::StatusCode::kFailedPrecondition) << early;
  EXPECT_EQ(seq.length(), 0);
  // Whole blocks: as many as fit in the budget, and at least one.
  for (const auto& [budget, encoded, pending] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {40, 32, 68}, {1, 32, 36}, {1000, 36, 0}, {5, 0, 0}}) {
    absl::StatusOr<int64_t> n = m->encode_source(ctx, seq, budget);
    ASSERT_TRUE(n.ok()) << n.status();
    EXPECT_EQ(*n, encoded) << "budget " << budget;
    EXPECT_EQ(seq.source_pending(), pending) << "budget " << budget;
  }
  ASSERT_TRUE(m->forward(ctx, {&b, 1}, DecoderOutput::kLogits, got.data()).ok());
  EXPECT_EQ(got, want);
  EXPECT_EQ(seq.nbytes(), (*at_once)->nbytes());  // the encoder's output is gone once projected
}

// to_cuda() needs a CUDA allocator; the model stays on the CPU when it is refused. (The device graph itself
// is compared with this one in tests/gpu/model_gpu_test.cc.)
TEST(ModelForward, ToCudaWithAHostAllocatorIsRefused) {
  Runtime rt;
  auto m = rt.model(testing::small_config(ModelType::kDecoder, 16, 2, 1, {{16, 1}}));
  ASSERT_NE(m, nullptr);
  const absl::Status st = m->to_cuda(rt.pool);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_NE(st.message().find("not a CUDA device"), std::string_view::npos) << st;
  EXPECT_TRUE(m->device().is_cpu());
  EXPECT_EQ(&m->cache_allocator(rt.ctx), &rt.pool);
}

TEST(ModelForward, MaxPositionsIsEnforced) {
  Runtime rt;
  const ExecContext& ctx = rt.ctx;
  auto m = rt.model(testing::small_config(ModelType::kDecoder, 16, 2, 1, {{64, 1}}));
  ASSERT_NE(m, nullptr);
  auto seq = m->start_sequence(ctx, {}, /*max_positions=*/10);
  ASSERT_TRUE(seq.ok());
  EXPECT_LT((*seq)->nbytes(), m->sequence_cache_bytes());
  const std::vector<int32_t> ids = random_ids(11, 1);
  const DecodeChunk c{seq->get(), ids};
  std::vector<float> out(259);
  const absl::Status st = m->forward(ctx, {&c, 1}, DecoderOutput::kLastLogits, out.data());
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("limit of 10"), std::string_view::npos) << st;
}

TEST(ModelForward, EncoderRefusesXposBlocksBeyondFloatRange) {
  Runtime rt;
  const ExecContext& ctx = rt.ctx;
  auto m = rt.model(testing::small_config(ModelType::kEncoder, 16, 2, 1, {{65536, 16}}));
  ASSERT_NE(m, nullptr);
  const std::vector<int32_t> ids = random_ids(20'000, 1);
  const absl::Status st =
      m->encode(ctx, ids, [](int64_t, int64_t, const float*) { return absl::OkStatus(); });
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("16939"), std::string_view::npos) << st;
}

TEST(ModelForward, EncoderBlocksAreTheLargestSegmentWhenAllDivideIt) {
  MemoryPool pool;
  auto m =
      testing::random_model(testing::small_config(ModelType::kEncoder, 16, 2, 1, {{16, 1}, {64, 4}}), pool);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->encoder_block_length(1000), 64);
  EXPECT_EQ(m->encoder_block_length(50), 50);
  auto odd =
      testing::random_model(testing::small_config(ModelType::kEncoder, 16, 2, 1, {{12, 1}, {20, 3}}), pool);
  ASSERT_NE(odd, nullptr);
  EXPECT_EQ(odd->encoder_block_length(1000), 1000);
}

}  // namespace
}  // namespace longnet::model
