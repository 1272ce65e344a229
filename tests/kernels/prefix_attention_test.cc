// Prefix attention (the bounded KV cache's kernel) on the CPU against the double-precision reference:
// both routes (decode rows, prefill tiles), with and without the key split, over the edge cases of the key
// limits, head sizes, strides with gaps and large logits; workspace sizing, threads, argument checking;
// the LSE merge; and the inner loops (decode rows, key packing) of every SIMD path against the portable
// ones.
#include "longnet/kernels/prefix_attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <ostream>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "cpu/cpu_features.h"
#include "cpu/prefix_attention_ops.h"

namespace longnet::kernels {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Float32 rounding against a double reference: outputs are O(1), lse is compared relative to max(1, |lse|)
// (a score of 80 carries 80 * 2^-24 of rounding before any arithmetic).
constexpr float kTolerance = 2e-5f;
constexpr float kSentinel = 12345.0f;  // in the gaps between output rows: must survive

enum class Limits { kAll, kCausal, kZero, kOne, kRandom };

struct Case {
  std::string name;
  int64_t num_queries;
  int64_t num_keys;
  int64_t head_dim;
  Limits limits;
  int64_t gap = 0;             // extra floats between rows (a different amount for each operand)
  float max_abs_score = 0.0f;  // > 0: scale chosen so that the largest |score| is exactly this
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

struct Problem {
  PrefixAttentionShape shape;
  std::vector<float> q, k, v;
  std::vector<int64_t> limit;
};

std::vector<int64_t> make_limits(Limits kind, int64_t num_queries, int64_t num_keys, std::mt19937& rng) {
  std::vector<int64_t> limit(static_cast<size_t>(num_queries));
  for (int64_t j = 0; j < num_queries; ++j) {
    int64_t& l = limit[static_cast<size_t>(j)];
    switch (kind) {
      case Limits::kAll:
        l = num_keys;
        break;
      // The last query sees every key, query j sees j fewer: a chunk of new tokens after a cached prefix.
      case Limits::kCausal:
        l = std::max<int64_t>(0, num_keys - (num_queries - 1 - j));
        break;
      case Limits::kZero:
        l = 0;
        break;
      case Limits::kOne:
        l = std::min<int64_t>(1, num_keys);
        break;
      case Limits::kRandom:
        l = std::uniform_int_distribution<int64_t>(0, num_keys)(rng);
        break;
    }
  }
  return limit;
}

Problem make_problem(const Case& c, uint32_t seed) {
  Problem p;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  PrefixAttentionShape& s = p.shape;
  s.num_queries = c.num_queries;
  s.num_keys = c.num_keys;
  s.head_dim = c.head_dim;
  s.q_stride = c.head_dim + c.gap;
  s.k_stride = c.head_dim + 2 * c.gap;
  s.v_stride = c.head_dim + 3 * c.gap;
  s.out_stride = c.head_dim + c.gap;
  const auto fill = [&](std::vector<float>& x, int64_t rows, int64_t stride) {
    x.resize(static_cast<size_t>(std::max<int64_t>(rows * stride, 1)));
    for (float& e : x)
      e = dist(rng);
  };
  fill(p.q, s.num_queries, s.q_stride);
  fill(p.k, s.num_keys, s.k_stride);
  fill(p.v, s.num_keys, s.v_stride);
  p.limit = make_limits(c.limits, c.num_queries, c.num_keys, rng);
  if (c.max_abs_score > 0.0f) {
    double largest = 0.0;
    for (int64_t j = 0; j < s.num_queries; ++j) {
      for (int64_t u = 0; u < s.num_keys; ++u) {
        double dot = 0.0;
        for (int64_t d = 0; d < s.head_dim; ++d)
          dot += double{p.q[static_cast<size_t>(j * s.q_stride + d)]} *
                 p.k[static_cast<size_t>(u * s.k_stride + d)];
        largest = std::max(largest, std::abs(dot));
      }
    }
    s.scale = static_cast<float>(c.max_abs_score / largest);
  }
  return p;
}

struct Result {
  std::vector<float> out, lse;
};

Result run_cpu(const Problem& p, ThreadPool& pool, absl::Status* status = nullptr) {
  Result r;
  r.out.assign(static_cast<size_t>(std::max<int64_t>(p.shape.num_queries * p.shape.out_stride, 1)),
               kSentinel);
  r.lse.assign(static_cast<size_t>(std::max<int64_t>(p.shape.num_queries, 1)), kSentinel);
  std::vector<float> workspace(
      static_cast<size_t>(cpu::prefix_attention_workspace_floats(p.shape, pool.num_threads())),
      std::nanf(""));
  const absl::Status st = cpu::prefix_attention(p.shape, p.q.data(), p.k.data(), p.v.data(), p.limit,
                                                r.out.data(), r.lse.data(), workspace, pool);
  if (status != nullptr) *status = st;
  EXPECT_TRUE(st.ok()) << st;
  return r;
}

Result run_reference(const Problem& p) {
  Result r;
  r.out.assign(static_cast<size_t>(std::max<int64_t>(p.shape.num_queries * p.shape.out_stride, 1)),
               kSentinel);
  r.lse.assign(static_cast<size_t>(std::max<int64_t>(p.shape.num_queries, 1)), kSentinel);
  const absl::Status st = reference::prefix_attention(p.shape, p.q.data(), p.k.data(), p.v.data(), p.limit,
                                                      r.out.data(), r.lse.data());
  EXPECT_TRUE(st.ok()) << st;
  return r;
}

// Largest error of `fast` against `ref` (lse relative to max(1, |lse|)); fails at once on a NaN, on an
// infinite lse that does not match, or on a touched gap.
float compare(const Problem& p, const Result& fast, const Result& ref) {
  float max_err = 0.0f;
  const PrefixAttentionShape& s = p.shape;
  for (int64_t j = 0; j < s.num_queries; ++j) {
    for (int64_t d = 0; d < s.out_stride; ++d) {
      const auto i = static_cast<size_t>(j * s.out_stride + d);
      if (d >= s.head_dim) {
        EXPECT_EQ(fast.out[i], kSentinel) << "gap written at query " << j;
        continue;
      }
      EXPECT_FALSE(std::isnan(fast.out[i])) << "NaN at query " << j << " dim " << d;
      max_err = std::max(max_err, std::abs(fast.out[i] - ref.out[i]));
    }
    const float fl = fast.lse[static_cast<size_t>(j)];
    const float rl = ref.lse[static_cast<size_t>(j)];
    if (std::isinf(rl)) {
      EXPECT_EQ(fl, rl) << "lse at query " << j;
      for (int64_t d = 0; d < s.head_dim; ++d)
        EXPECT_EQ(fast.out[static_cast<size_t>(j * s.out_stride + d)], 0.0f)
            << "query " << j << " sees no key";
    } else {
      max_err = std::max(max_err, std::abs(fl - rl) / std::max(1.0f, std::abs(rl)));
    }
  }
  return max_err;
}

class PrefixAttentionParity : public ::testing::TestWithParam<Case> {};

TEST_P(PrefixAttentionParity, FastMatchesReference) {
  const Case& c = GetParam();
  const Problem p = make_problem(c, 11);
  const float err = compare(p, run_cpu(p, ThreadPool::global()), run_reference(p));
  std::ostringstream text;
  text << std::scientific << err;
  RecordProperty("max_error", text.str());
  EXPECT_LE(err, kTolerance);
}

std::vector<Case> parity_cases() {
  std::vector<Case> cases = {
      // Decode (the rows route): one query against a cache.
      {"decode_one_key", 1, 1, 64, Limits::kAll},
      {"decode_limit_zero", 1, 50, 64, Limits::kZero},
      {"decode_limit_one", 1, 50, 64, Limits::kOne},
      {"decode_no_keys", 1, 0, 32, Limits::kAll},
      {"decode_gaps", 1, 3000, 80, Limits::kAll, 5},
      {"decode_logits_80", 1, 5000, 64, Limits::kAll, 0, 80.0f},
      {"decode_logits_80_d128", 1, 3000, 128, Limits::kAll, 3, 80.0f},
      {"decode_odd_dim", 1, 1500, 20, Limits::kAll, 1},
      {"decode_dim_1", 1, 100, 1, Limits::kAll},
      {"decode_dim_3", 1, 1100, 3, Limits::kAll, 2},
      {"few_queries_ragged", 3, 2500, 64, Limits::kRandom, 2},
      {"few_queries_causal", 3, 2500, 32, Limits::kCausal},
      // Chunked prefill (the tile route).
      {"tile_min_queries", 4, 100, 64, Limits::kCausal},
      {"one_tile_split_keys", 12, 5000, 64, Limits::kCausal, 3},
      {"one_tile_split_keys_noncausal", 13, 4500, 32, Limits::kAll},
      {"few_tiles_split_keys_random", 50, 6000, 80, Limits::kRandom, 1},
      {"many_tiles_causal", 700, 900, 64, Limits::kCausal, 2},
      {"many_tiles_noncausal", 500, 1000, 128, Limits::kAll},
      {"many_tiles_random", 600, 777, 32, Limits::kRandom, 4},
      {"prefill_chunk_after_cache", 256, 2300, 64, Limits::kCausal},
      {"prefill_square_causal", 1000, 1000, 64, Limits::kCausal},  // values read in place (stride 64)
      {"tiles_all_limits_zero", 100, 300, 64, Limits::kZero},
      {"tiles_all_limits_one", 100, 300, 64, Limits::kOne, 1},
      {"tiles_no_keys", 40, 0, 16, Limits::kAll},
      {"tiles_odd_dim", 77, 333, 20, Limits::kRandom, 3},
      {"tiles_dim_8", 200, 500, 8, Limits::kCausal, 1},
      {"tiles_dim_1", 30, 70, 1, Limits::kRandom},
      {"tiles_logits_80", 300, 600, 64, Limits::kCausal, 0, 80.0f},
      {"tiles_logits_80_split", 20, 5000, 32, Limits::kRandom, 2, 80.0f},
      {"tiles_logits_80_d128", 150, 400, 128, Limits::kAll, 1, 80.0f},
  };
  for (int64_t dim : {8, 32, 64, 80, 128}) {
    cases.push_back({"decode_d" + std::to_string(dim), 1, 2049, dim, Limits::kAll, 1});
    cases.push_back({"prefill_causal_d" + std::to_string(dim), 300, 700, dim, Limits::kCausal, 2});
    cases.push_back({"prefill_ragged_d" + std::to_string(dim), 97, 3000, dim, Limits::kRandom});
    cases.push_back({"prefill_noncausal_d" + std::to_string(dim), 129, 257, dim, Limits::kAll, 3});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Cases, PrefixAttentionParity, ::testing::ValuesIn(parity_cases()),
                         [](const ::testing::TestParamInfo<Case>& param_info) {
                           return param_info.param.name;
                         });

// Decode against caches of every size class: around the SIMD widths, the key chunks and far beyond.
TEST(PrefixAttentionDecode, CacheSizesFromOneTo70000) {
  for (int64_t n : {1,   2,   7,    8,    9,    15,   16,   17,   31,   33,    127,
                    128, 129, 1023, 1024, 1025, 2047, 2048, 2049, 4100, 16384, 70000}) {
    for (int64_t dim : {32, 64}) {
      const Problem p = make_problem({"", 1, n, dim, Limits::kAll, 1}, static_cast<uint32_t>(n + dim));
      EXPECT_LE(compare(p, run_cpu(p, ThreadPool::global()), run_reference(p)), kTolerance)
          << "num_keys " << n << " head_dim " << dim;
    }
  }
}

// Scores far beyond e^88 (the float overflow) in both directions: the softmax shifts by the max, so
// nothing overflows, and a row whose scores are all very negative still has a finite lse.
TEST(PrefixAttention, HugeLogitsNeitherOverflowNorVanish) {
  for (float extreme : {300.0f, 2000.0f}) {
    for (int64_t num_queries : {1, 40}) {
      Problem p = make_problem({"", num_queries, 3000, 64, Limits::kRandom, 0, extreme}, 5);
      const Result fast = run_cpu(p, ThreadPool::global());
      const Result ref = run_reference(p);
      for (int64_t j = 0; j < num_queries; ++j) {
        const float rl = ref.lse[static_cast<size_t>(j)];
        const float fl = fast.lse[static_cast<size_t>(j)];
        if (std::isinf(rl)) {
          EXPECT_EQ(fl, rl);
          continue;
        }
        EXPECT_TRUE(std::isfinite(fl)) << "query " << j;
        EXPECT_NEAR(fl, rl, 1e-5f * std::abs(rl) + 1e-4f) << "query " << j;
        for (int64_t d = 0; d < 64; ++d) {
          const auto i = static_cast<size_t>(j * 64 + d);
          ASSERT_TRUE(std::isfinite(fast.out[i])) << "query " << j;
          // A score error of |s| * 2^-24 moves the softmax weights by as much, relative.
          EXPECT_NEAR(fast.out[i], ref.out[i], extreme * 1e-6f) << "query " << j;
        }
      }
    }
  }
  // Every score of the row about -80 (a query opposite to every key): lse near -80, output still a
  // proper average of the values.
  Problem p = make_problem({"", 1, 500, 16, Limits::kAll}, 3);
  for (int64_t u = 0; u < 500; ++u) {
    for (int64_t d = 0; d < 16; ++d)
      p.k[static_cast<size_t>(u * 16 + d)] = -std::abs(p.k[static_cast<size_t>(u * 16 + d)]) - 1.0f;
  }
  std::fill(p.q.begin(), p.q.end(), 1.0f);
  p.shape.scale = 80.0f / 16.0f;
  const Result fast = run_cpu(p, ThreadPool::global());
  const Result ref = run_reference(p);
  EXPECT_LT(fast.lse[0], -75.0f);
  EXPECT_LE(compare(p, fast, ref), kTolerance);
}

// The work is cut by shape only, so every pool size gives the same bits, on both routes.
TEST(PrefixAttention, ThreadCountDoesNotChangeResult) {
  ThreadPool single(1);
  ThreadPool three(3);
  for (const Case& c : {Case{"", 1, 9000, 64, Limits::kAll}, Case{"", 20, 7000, 32, Limits::kRandom},
                        Case{"", 500, 600, 64, Limits::kCausal}}) {
    const Problem p = make_problem(c, 2);
    const Result a = run_cpu(p, single);
    const Result b = run_cpu(p, three);
    EXPECT_EQ(a.out, b.out) << c.num_queries << " queries";
    EXPECT_EQ(a.lse, b.lse) << c.num_queries << " queries";
  }
}

// Called from inside a pool task (as a model layer running heads in parallel would), the kernel runs
// inline on that thread and gives the same result.
TEST(PrefixAttention, NestedInsideAPoolTaskGivesTheSameResult) {
  ThreadPool pool(2);
  const Problem decode = make_problem({"", 1, 5000, 64, Limits::kAll}, 4);
  const Problem prefill = make_problem({"", 100, 3000, 64, Limits::kCausal}, 4);
  const Result decode_alone = run_cpu(decode, pool);
  const Result prefill_alone = run_cpu(prefill, pool);
  std::vector<Result> nested(2);
  pool.parallel_for(2, [&](int64_t task, int) {
    nested[static_cast<size_t>(task)] = run_cpu(task == 0 ? decode : prefill, pool);
  });
  EXPECT_EQ(nested[0].out, decode_alone.out);
  EXPECT_EQ(nested[1].out, prefill_alone.out);
  EXPECT_EQ(nested[1].lse, prefill_alone.lse);
}

// lse may be omitted when the caller has nothing to merge.
TEST(PrefixAttention, LseMayBeNull) {
  for (int64_t num_queries : {1, 64}) {
    const Problem p = make_problem({"", num_queries, 2500, 32, Limits::kCausal}, 8);
    const Result with_lse = run_cpu(p, ThreadPool::global());
    std::vector<float> out(with_lse.out.size(), kSentinel);
    std::vector<float> workspace(static_cast<size_t>(
        cpu::prefix_attention_workspace_floats(p.shape, ThreadPool::global().num_threads())));
    ASSERT_TRUE(cpu::prefix_attention(p.shape, p.q.data(), p.k.data(), p.v.data(), p.limit, out.data(),
                                      nullptr, workspace, ThreadPool::global())
                    .ok());
    EXPECT_EQ(out, with_lse.out);
  }
}

// Scratch grows with the cache (keys are packed for the tile route; values too unless their rows are
// already dim_padded apart), never with how many keys the queries actually see, and the decode route packs
// nothing.
TEST(PrefixAttention, WorkspaceSizes) {
  PrefixAttentionShape s{1, 65536, 64, 64, 64, 64, 64, 0.0f};
  EXPECT_LT(cpu::prefix_attention_workspace_floats(s, 2), 20000) << "decode needs only chunk scratch";
  s.num_queries = 2048;
  s.num_keys = 2048;
  const int64_t values_in_place = cpu::prefix_attention_workspace_floats(s, 2);
  EXPECT_GE(values_in_place, 2048 * 64);
  EXPECT_LT(values_in_place, 2048 * 64 * 3 / 2 + 40000);
  s.v_stride = 72;
  const int64_t values_packed = cpu::prefix_attention_workspace_floats(s, 2);
  EXPECT_GE(values_packed, 2 * 2048 * 64);
  EXPECT_LT(values_packed, 2 * 2048 * 64 * 3 / 2 + 40000);
}

// The model sizes one workspace for the largest call of a loop (a whole chunk, the full cache) and calls
// with fewer queries and keys; the kernel switches routes, key splits and packing as they shrink, and the
// workspace must still do. Exactly that many floats: an overrun shows under AddressSanitizer.
TEST(PrefixAttention, AWorkspaceForTheLargestShapeServesEverySmallerOne) {
  ThreadPool pool(3);
  std::mt19937 rng(12);
  for (const int64_t dim : {16, 64}) {
    for (const int64_t v_gap : {0, 3}) {
      for (const auto& [max_q, max_k] : {std::pair<int64_t, int64_t>{3, 3000},
                                         {4, 5000},
                                         {400, 5000},
                                         {390, 1100},
                                         {60, 4200},
                                         {383, 9000}}) {
        PrefixAttentionShape s{max_q, max_k, dim, dim, dim, dim + v_gap, dim, 0.0f};
        std::vector<float> workspace(static_cast<size_t>(cpu::prefix_attention_workspace_floats(s, 3)));
        const Problem full = make_problem({"", max_q, max_k, dim, Limits::kAll, 0}, 1);
        std::vector<float> v(static_cast<size_t>(max_k * (dim + v_gap)), 0.5f);
        std::vector<float> out(static_cast<size_t>(max_q * dim)), lse(static_cast<size_t>(max_q));
        for (const int64_t nq : {int64_t{1}, int64_t{3}, int64_t{4}, int64_t{13}, max_q / 2, max_q}) {
          for (const int64_t nk : {int64_t{1}, int64_t{1025}, int64_t{4096}, int64_t{4097}, max_k}) {
            if (nq > max_q || nk > max_k) continue;
            // The last query sees every key (so every chunk and strip is packed and read), the others one.
            std::vector<int64_t> limit(static_cast<size_t>(nq), 1);
            limit.back() = nk;
            std::shuffle(limit.begin(), limit.end(), rng);
            PrefixAttentionShape call = s;
            call.num_queries = nq;
            call.num_keys = nk;
            const absl::Status st = cpu::prefix_attention(call, full.q.data(), full.k.data(), v.data(), limit,
                                                          out.data(), lse.data(), workspace, pool);
            EXPECT_TRUE(st.ok()) << "sized for " << max_q << " x " << max_k << ", called with " << nq << " x "
                                 << nk << " (dim " << dim << ", v gap " << v_gap << "): " << st;
          }
        }
      }
    }
  }
}

TEST(PrefixAttention, RejectsBadArguments) {
  Problem p = make_problem({"", 3, 10, 8, Limits::kAll}, 1);
  const auto check = [&](const Problem& bad, const std::string& needle) {
    std::vector<float> out(64), lse(3);
    std::vector<float> workspace(1 << 16);
    const absl::Status st =
        cpu::prefix_attention(bad.shape, bad.q.data(), bad.k.data(), bad.v.data(), bad.limit, out.data(),
                              lse.data(), workspace, ThreadPool::global());
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << needle;
    EXPECT_NE(st.message().find(needle), std::string::npos) << st;
    const absl::Status ref = reference::prefix_attention(bad.shape, bad.q.data(), bad.k.data(), bad.v.data(),
                                                         bad.limit, out.data(), lse.data());
    EXPECT_EQ(ref, st);
  };
  Problem bad = p;
  bad.limit.pop_back();
  check(bad, "key_limit has 2 entries");
  bad = p;
  bad.limit[1] = 11;
  check(bad, "key_limit[1]=11");
  bad.limit[1] = -1;
  check(bad, "key_limit[1]=-1");
  bad = p;
  bad.shape.k_stride = 7;
  check(bad, "k_stride=7");
  bad = p;
  bad.shape.head_dim = 0;
  check(bad, "head_dim=0");
  bad = p;
  bad.shape.scale = -1.0f;
  check(bad, "scale=-1");
  bad.shape.scale = std::nanf("");
  check(bad, "scale=nan");
  bad = p;
  bad.shape.num_keys = -2;
  check(bad, "num_keys=-2");

  std::vector<float> out(64), lse(3), too_small(4);
  const absl::Status st = cpu::prefix_attention(p.shape, p.q.data(), p.k.data(), p.v.data(), p.limit,
                                                out.data(), lse.data(), too_small, ThreadPool::global());
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("workspace"), std::string::npos) << st;
}

// ---- merge_attention_lse ----

using MergeFn = void (*)(int64_t, int64_t, const float*, int64_t, const float*, float*, int64_t, float*);

class PrefixAttentionMerge : public ::testing::TestWithParam<MergeFn> {};

// Two branches over key sets A and B, merged, equal one attention over A followed by B: a key in both
// (here B repeats part of A) is counted once per branch.
TEST_P(PrefixAttentionMerge, TwoBranchesEqualAttentionOverTheUnion) {
  const MergeFn merge = GetParam();
  const int64_t nq = 40, na = 300, nb = 200, dim = 32;
  std::mt19937 rng(6);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> q(nq * dim), ka(na * dim), va(na * dim);
  for (auto* x : {&q, &ka, &va})
    for (float& e : *x)
      e = dist(rng) * 2.0f;
  // B: its first 100 keys and values are A's keys 50..149 again, the rest new.
  std::vector<float> kb(ka.begin() + 50 * dim, ka.begin() + 150 * dim),
      vb(va.begin() + 50 * dim, va.begin() + 150 * dim);
  for (int64_t i = 0; i < (nb - 100) * dim; ++i) {
    kb.push_back(dist(rng) * 2.0f);
    vb.push_back(dist(rng));
  }
  // Ragged limits on both branches; some rows see nothing in A, some nothing in B, one nothing at all.
  std::vector<int64_t> la(nq), lb(nq), lu(nq);
  std::vector<float> ku(ka), vu(va);
  for (int64_t j = 0; j < nq; ++j) {
    la[j] = j % 5 == 0 ? 0 : std::uniform_int_distribution<int64_t>(1, na)(rng);
    lb[j] = j % 7 == 0 ? 0 : std::uniform_int_distribution<int64_t>(1, nb)(rng);
  }
  la[0] = lb[0] = 0;
  // The union as one buffer needs one prefix per query: put A's visible keys then B's, per query.
  std::vector<float> acc(nq * dim, 0.0f), acc_lse(nq, kNegInf);
  for (const auto& [k, v, l, n] : {std::tuple{&ka, &va, &la, na}, std::tuple{&kb, &vb, &lb, nb}}) {
    PrefixAttentionShape s{nq, n, dim, dim, dim, dim, dim, 0.0f};
    std::vector<float> out(nq * dim), lse(nq);
    ASSERT_TRUE(
        reference::prefix_attention(s, q.data(), k->data(), v->data(), *l, out.data(), lse.data()).ok());
    merge(nq, dim, out.data(), dim, lse.data(), acc.data(), dim, acc_lse.data());
  }
  for (int64_t j = 0; j < nq; ++j) {
    std::vector<float> k_union(ka.begin(), ka.begin() + la[j] * dim),
        v_union(va.begin(), va.begin() + la[j] * dim);
    k_union.insert(k_union.end(), kb.begin(), kb.begin() + lb[j] * dim);
    v_union.insert(v_union.end(), vb.begin(), vb.begin() + lb[j] * dim);
    const int64_t n = la[j] + lb[j];
    PrefixAttentionShape s{1, n, dim, dim, dim, dim, dim, 0.0f};
    std::vector<float> out(dim), lse(1);
    const std::vector<int64_t> all{n};
    ASSERT_TRUE(reference::prefix_attention(s, q.data() + j * dim, k_union.data(), v_union.data(), all,
                                            out.data(), lse.data())
                    .ok());
    if (n == 0) {
      EXPECT_EQ(acc_lse[j], kNegInf);
      for (int64_t d = 0; d < dim; ++d)
        EXPECT_EQ(acc[j * dim + d], 0.0f);
      continue;
    }
    EXPECT_NEAR(acc_lse[j], lse[0], 1e-5f * std::max(1.0f, std::abs(lse[0]))) << "query " << j;
    for (int64_t d = 0; d < dim; ++d)
      EXPECT_NEAR(acc[j * dim + d], out[d], 1e-5f) << "query " << j;
  }
}

// A branch row with lse = -inf adds nothing, whatever its output holds; the first real branch is copied
// whatever the (empty) accumulator holds; lse far apart give weights 0 and 1, not NaN.
TEST_P(PrefixAttentionMerge, InfinitiesAndFarApartLse) {
  const MergeFn merge = GetParam();
  const float nan = std::nanf("");
  // Row:                          0: empty branch  1: empty acc  2: equal lse  3: branch e^-300  4: acc
  // e^-1000
  const std::vector<float> out{nan, nan, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f, 7.0f, 8.0f};
  const std::vector<float> lse{kNegInf, 0.5f, 3.0f, -200.0f, 500.0f};
  std::vector<float> acc{9.0f, 9.0f, nan, nan, -1.0f, -2.0f, 1.0f, 1.0f, 2.0f, 2.0f};
  std::vector<float> acc_lse{1.0f, kNegInf, 3.0f, 100.0f, -500.0f};
  merge(5, 2, out.data(), 2, lse.data(), acc.data(), 2, acc_lse.data());
  EXPECT_EQ(acc[0], 9.0f);
  EXPECT_EQ(acc[1], 9.0f);
  EXPECT_EQ(acc_lse[0], 1.0f);
  EXPECT_EQ(acc[2], 1.0f);
  EXPECT_EQ(acc[3], 2.0f);
  EXPECT_EQ(acc_lse[1], 0.5f);
  EXPECT_NEAR(acc[4], 1.0f, 1e-6f);
  EXPECT_NEAR(acc[5], 1.0f, 1e-6f);
  EXPECT_NEAR(acc_lse[2], 3.0f + std::log(2.0f), 1e-6f);
  EXPECT_EQ(acc[6], 1.0f);
  EXPECT_EQ(acc[7], 1.0f);
  EXPECT_EQ(acc_lse[3], 100.0f);
  EXPECT_EQ(acc[8], 7.0f);
  EXPECT_EQ(acc[9], 8.0f);
  EXPECT_EQ(acc_lse[4], 500.0f);
}

// The fast merge against the reference on random rows, strided, merged in either order.
TEST_P(PrefixAttentionMerge, MatchesReferenceInEitherOrder) {
  const MergeFn merge = GetParam();
  const int64_t rows = 64, dim = 80, stride = 83;
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> a(rows * stride), b(rows * stride), la(rows), lb(rows);
  for (auto* x : {&a, &b})
    for (float& e : *x)
      e = dist(rng);
  for (int64_t i = 0; i < rows; ++i) {
    la[i] = i % 9 == 0 ? kNegInf : dist(rng) * 30.0f;
    lb[i] = i % 11 == 0 ? kNegInf : dist(rng) * 30.0f;
  }
  const auto merged = [&](MergeFn fn, bool a_first) {
    std::vector<float> acc(rows * stride, 0.0f), acc_lse(rows, kNegInf);
    for (int pass = 0; pass < 2; ++pass) {
      const bool take_a = (pass == 0) == a_first;
      fn(rows, dim, (take_a ? a : b).data(), stride, (take_a ? la : lb).data(), acc.data(), stride,
         acc_lse.data());
    }
    acc.insert(acc.end(), acc_lse.begin(), acc_lse.end());
    return acc;
  };
  const std::vector<float> ref = merged(reference::merge_attention_lse, true);
  for (bool a_first : {true, false}) {
    const std::vector<float> got = merged(merge, a_first);
    for (size_t i = 0; i < ref.size(); ++i) {
      if (std::isinf(ref[i])) {
        EXPECT_EQ(got[i], ref[i]) << i;
      } else {
        EXPECT_NEAR(got[i], ref[i], 2e-6f * std::max(1.0f, std::abs(ref[i]))) << i;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, PrefixAttentionMerge,
                         ::testing::Values(&cpu::merge_attention_lse, &reference::merge_attention_lse),
                         [](const ::testing::TestParamInfo<MergeFn>& param_info) {
                           return param_info.param == &cpu::merge_attention_lse ? "cpu" : "reference";
                         });

// ---- the inner loops (decode rows, key packing), every SIMD path against the portable one ----

class PrefixAttentionOps : public ::testing::TestWithParam<cpu::Isa> {
 protected:
  void SetUp() override {
    if (GetParam() == cpu::Isa::kAvx2 && !cpu::has_avx2_fma())
      GTEST_SKIP() << "this processor has no AVX2/FMA";
    if (GetParam() == cpu::Isa::kAvx512 && !cpu::has_avx512())
      GTEST_SKIP() << "this processor has no AVX-512 (F/DQ/BW/VL)";
  }
  const cpu::PrefixAttentionOps& fast =
      GetParam() == cpu::Isa::kAvx2 ? cpu::prefix_attention_ops_avx2() : cpu::prefix_attention_ops_avx512();
  const cpu::PrefixAttentionOps& plain = cpu::prefix_attention_ops_generic();
};

TEST_P(PrefixAttentionOps, AgreeWithThePortableLoops) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (int64_t dim : {1, 3, 8, 15, 16, 17, 20, 32, 64, 72, 80, 128, 129, 200}) {
    for (int64_t n : {0, 1, 5, 8, 15, 16, 17, 100}) {
      const int64_t stride = dim + 3;
      std::vector<float> q(dim), k(std::max<int64_t>(n, 1) * stride), v(k.size());
      for (auto* x : {&q, &k, &v})
        for (float& e : *x)
          e = dist(rng);
      std::vector<float> s_fast(n + 1, kSentinel), s_plain(n + 1, kSentinel);
      const float m_fast = fast.scores(q.data(), k.data(), stride, n, dim, 0.7f, s_fast.data());
      const float m_plain = plain.scores(q.data(), k.data(), stride, n, dim, 0.7f, s_plain.data());
      if (n == 0) {
        EXPECT_EQ(m_fast, kNegInf);
        EXPECT_EQ(m_plain, kNegInf);
      } else {
        EXPECT_NEAR(m_fast, m_plain, 1e-5f) << "dim " << dim << " n " << n;
      }
      for (int64_t j = 0; j <= n; ++j)
        EXPECT_NEAR(s_fast[j], s_plain[j], 1e-5f) << "dim " << dim << " n " << n << " key " << j;
      if (n > 0) {
        EXPECT_NEAR(fast.exp_sum(s_fast.data(), n, m_fast), plain.exp_sum(s_plain.data(), n, m_plain),
                    1e-5f * static_cast<float>(n));
        EXPECT_EQ(s_fast[n], kSentinel) << "exp_sum wrote past n";
      }
      std::vector<float> a_fast(dim + 1, kSentinel), a_plain(dim + 1, kSentinel);
      fast.weighted_sum(s_plain.data(), v.data(), stride, n, dim, a_fast.data());
      plain.weighted_sum(s_plain.data(), v.data(), stride, n, dim, a_plain.data());
      for (int64_t d = 0; d <= dim; ++d)
        EXPECT_NEAR(a_fast[d], a_plain[d], 1e-5f * static_cast<float>(n + 1)) << "dim " << dim << " n " << n;
    }
  }
}

// Packing is a copy: the SIMD transposes must give the portable result exactly, padding included.
TEST_P(PrefixAttentionOps, PackKeyStripsIsAnExactTranspose) {
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (int64_t dim : {1, 5, 8, 15, 16, 17, 20, 32, 64, 80, 128, 129}) {
    for (int64_t n : {1, 7, 8, 9, 16, 17, 40, 64}) {
      const int64_t stride = dim + 2;
      std::vector<float> k(n * stride);
      for (float& e : k)
        e = dist(rng);
      const int64_t floats = (n + 15) / 16 * 16 * dim;
      std::vector<float> fast_strips(floats + 1, kSentinel), plain_strips(floats + 1, kSentinel);
      fast.pack_key_strips(k.data(), stride, n, dim, fast_strips.data());
      plain.pack_key_strips(k.data(), stride, n, dim, plain_strips.data());
      EXPECT_EQ(fast_strips, plain_strips) << "dim " << dim << " n " << n;
      // The layout itself: key 1 of dimension 0 is the second float, padding keys are 0, nothing past.
      EXPECT_EQ(plain_strips[0], k[0]);
      if (n > 1) {
        EXPECT_EQ(plain_strips[1], k[stride]);
      }
      if (n % 16 != 0) {
        EXPECT_EQ(plain_strips[n / 16 * 16 * dim + n % 16], 0.0f);
      }
      EXPECT_EQ(plain_strips[floats], kSentinel);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, PrefixAttentionOps, ::testing::Values(cpu::Isa::kAvx2, cpu::Isa::kAvx512),
                         [](const ::testing::TestParamInfo<cpu::Isa>& param_info) {
                           return param_info.param == cpu::Isa::kAvx2 ? "avx2" : "avx512";
                         });

}  // namespace
}  // namespace longnet::kernels
