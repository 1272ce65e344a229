// The CUDA attention kernels' work split, tile ranges, masks and shared-memory layouts, checked on the host
// (no CUDA needed: built in every configuration). The dilated kernel's whole tile walk is emulated here
// with the very functions the kernel calls (cuda_attention_plan.h, attention_softmax_math.h), row by row
// in float, and compared with the double-precision reference; thread-level details (which lane holds
// what) are checked for shared-memory bank conflicts by simulating a warp's addresses.
#include "longnet/kernels/cuda_attention_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "longnet/kernels/attention_softmax_math.h"
#include "longnet/kernels/dilated_attention.h"

namespace longnet::kernels::cuda {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// ---- tile configurations ---------------------------------------------------------------------------------

static_assert(kAttentionBlockM == 64);
static_assert(kWarpSize % kAttentionRowLanes == 0, "a row's lanes never straddle two warps");
static_assert(attention_tile_config(48).smem_bytes == 0, "unsupported head sizes have no configuration");

TEST(AttentionTileConfigTest, EverySupportedHeadSizeHasWholeColumnsPerThread) {
  for (int d : kSupportedHeadDims) {
    SCOPED_TRACE("head_dim " + std::to_string(d));
    const AttentionTileConfig c = attention_tile_config(d);
    EXPECT_EQ(c.head_dim, d);
    EXPECT_EQ(c.block_m, kAttentionBlockM);
    EXPECT_EQ(c.block_n, d <= 64 ? 64 : 32);
    EXPECT_EQ(c.cols_per_thread * kAttentionRowLanes, c.block_n);
    EXPECT_EQ(c.dims_per_thread * kAttentionRowLanes, d);
    EXPECT_EQ(kAttentionThreads / kAttentionRowLanes * kAttentionRowsPerThread, c.block_m);
    // Registers per thread for the tile state: accumulators plus scores, well under what 128 threads
    // per block may use (255) so nothing spills (checked for real by ptxas -warn-spills in the build).
    EXPECT_LE(kAttentionRowsPerThread * (c.dims_per_thread + c.cols_per_thread), 96);
  }
}

TEST(AttentionTileConfigTest, UnsupportedHeadSizesAreRefused) {
  for (int d : {0, 1, 16, 48, 63, 65, 112, 129, 256}) {
    EXPECT_FALSE(is_supported_head_dim(d)) << d;
    EXPECT_EQ(attention_tile_config(d).smem_bytes, 0u) << d;
  }
  for (int d : kSupportedHeadDims)
    EXPECT_TRUE(is_supported_head_dim(d)) << d;
}

TEST(AttentionTileConfigTest, SharedMemoryRegionsFitAndDoNotOverlap) {
  for (int d : kSupportedHeadDims) {
    SCOPED_TRACE("head_dim " + std::to_string(d));
    const AttentionTileConfig c = attention_tile_config(d);
    EXPECT_GE(c.q_stride, d);
    EXPECT_GE(c.k_stride, d);
    EXPECT_GE(c.v_stride, d);
    EXPECT_GE(c.p_stride, c.block_n);
    EXPECT_EQ(c.q_offset, 0);
    EXPECT_GE(c.kp_offset, c.q_offset + c.block_m * c.q_stride);  // Q
    EXPECT_GE(c.v_offset, c.kp_offset + c.block_n * c.k_stride);  // K
    EXPECT_GE(c.v_offset, c.kp_offset + c.block_m * c.p_stride);  // P, in K's place
    EXPECT_EQ(c.smem_floats, c.v_offset + c.block_n * c.v_stride);
    EXPECT_EQ(c.smem_bytes, static_cast<size_t>(c.smem_floats) * sizeof(float));
    EXPECT_LE(c.smem_bytes, kMaxAttentionSharedMemoryBytes);
  }
  // The figures docs/gpu.md quotes.
  EXPECT_EQ(attention_tile_config(32).smem_bytes, 33280u);
  EXPECT_EQ(attention_tile_config(64).smem_bytes, 49664u);
  EXPECT_EQ(attention_tile_config(80).smem_bytes, 41344u);
  EXPECT_EQ(attention_tile_config(96).smem_bytes, 49536u);
  EXPECT_EQ(attention_tile_config(128).smem_bytes, 65920u);
}

// The largest number of distinct word addresses one bank serves in a warp-wide access (1 = conflict free;
// lanes reading the same address are a broadcast, not a conflict).
int bank_conflict_degree(const std::vector<int>& addresses) {
  std::map<int, std::set<int>> banks;
  for (int a : addresses)
    banks[a % 32].insert(a);
  size_t worst = 0;
  for (const auto& [bank, words] : banks)
    worst = std::max(worst, words.size());
  return static_cast<int>(worst);
}

// Every shared-memory access of the kernel's inner loops, for each warp of the block, with the lane ->
// (row group, column) map of dilated_attention_kernel.cu.
TEST(AttentionTileConfigTest, InnerLoopsAreFreeOfBankConflicts) {
  for (int d : kSupportedHeadDims) {
    SCOPED_TRACE("head_dim " + std::to_string(d));
    const AttentionTileConfig c = attention_tile_config(d);
    int worst_q = 0, worst_k = 0, worst_p_read = 0, worst_p_write = 0, worst_v = 0;
    for (int warp = 0; warp < kAttentionThreads / kWarpSize; ++warp) {
      const auto lanes = [&](auto address) {
        std::vector<int> a;
        for (int lane = 0; lane < kWarpSize; ++lane) {
          const int t = warp * kWarpSize + lane;
          a.push_back(address(t / kAttentionRowLanes * kAttentionRowsPerThread, t % kAttentionRowLanes));
        }
        return bank_conflict_degree(a);
      };
      for (int dd = 0; dd < d; ++dd) {
        for (int i = 0; i < kAttentionRowsPerThread; ++i)
          worst_q = std::max(worst_q, lanes([&](int row0, int) { return (row0 + i) * c.q_stride + dd; }));
        for (int j = 0; j < c.cols_per_thread; ++j) {
          worst_k = std::max(
              worst_k, lanes([&](int, int col) { return (col + kAttentionRowLanes * j) * c.k_stride + dd; }));
        }
      }
      for (int n = 0; n < c.block_n; ++n) {
        for (int i = 0; i < kAttentionRowsPerThread; ++i) {
          worst_p_read =
              std::max(worst_p_read, lanes([&](int row0, int) { return (row0 + i) * c.p_stride + n; }));
        }
        for (int cc = 0; cc < c.dims_per_thread; ++cc) {
          worst_v = std::max(
              worst_v, lanes([&](int, int col) { return n * c.v_stride + col + kAttentionRowLanes * cc; }));
        }
      }
      for (int i = 0; i < kAttentionRowsPerThread; ++i) {
        for (int j = 0; j < c.cols_per_thread; ++j) {
          worst_p_write = std::max(worst_p_write, lanes([&](int row0, int col) {
                                     return (row0 + i) * c.p_stride + col + kAttentionRowLanes * j;
                                   }));
        }
      }
    }
    EXPECT_EQ(worst_q, 1);
    EXPECT_EQ(worst_k, 1);
    EXPECT_EQ(worst_p_read, 1);
    EXPECT_EQ(worst_v, 1);
    // P is written once per key tile (kRows x kCols stores against the head_dim-long score loop): two-way
    // conflicts there cost less than the padding that would avoid them.
    EXPECT_LE(worst_p_write, 2);
  }
}

// ---- dilated work tables
// -------------------------------------------------------------------------------------

TEST(DilatedWorkTableTest, SkipsEmptySequencesAndChunksTheBatch) {
  std::vector<int64_t> starts, lens;
  for (int b = 0; b < 70; ++b) {
    starts.push_back(b * 100);
    lens.push_back(b % 7 == 3 ? 0 : 1 + b);
  }
  const auto tables = plan_dilated_branch(starts.data(), lens.data(), lens.size(), 4, {16, 2}, 64);
  int seen = 0;
  for (const DilatedWorkTable& t : tables) {
    EXPECT_GT(t.num_seqs, 0);
    EXPECT_LE(t.num_seqs, kMaxSequencesPerLaunch);
    for (int s = 0; s < t.num_seqs; ++s)
      EXPECT_GT(t.seq_len[s], 0);
    seen += t.num_seqs;
  }
  EXPECT_EQ(seen, 60);  // 10 empty ones skipped
  EXPECT_EQ(tables.size(), 2u);
  EXPECT_TRUE(plan_dilated_branch(starts.data(), lens.data(), 0, 4, {16, 2}, 64).empty());
}

TEST(DilatedWorkTableTest, WorkIndicesDecodeToEveryItemOnce) {
  const std::vector<int64_t> starts = {0, 500, 2000, 9000};
  const std::vector<int64_t> lens = {1, 300, 4096, 77};
  for (const DilatedBranch br :
       {DilatedBranch{64, 1}, DilatedBranch{2048, 4}, DilatedBranch{100, 3}, DilatedBranch{1 << 20, 16}}) {
    const auto tables = plan_dilated_branch(starts.data(), lens.data(), lens.size(), 6, br, 64);
    ASSERT_EQ(tables.size(), 1u);
    const DilatedWorkTable& t = tables[0];
    std::set<std::tuple<int, int64_t, int64_t, int64_t>> items;
    for (int64_t w = 0; w < t.total_work; ++w) {
      const DilatedWorkItem it = decode_dilated_work(t, w);
      ASSERT_GE(it.seq, 0);
      ASSERT_LT(it.seq, t.num_seqs);
      ASSERT_LT(it.head, t.num_heads);
      ASSERT_LT(it.segment, t.segments[it.seq]);
      ASSERT_GE(it.tile, 0);
      ASSERT_LT(it.tile, t.tiles[it.seq]);
      items.insert({it.seq, it.head, it.segment, it.tile});
    }
    EXPECT_EQ(static_cast<int64_t>(items.size()), t.total_work);
  }
}

TEST(DilatedWorkTableTest, CausalTilesRunLongestFirst) {
  const int64_t start = 0, len = 1000;
  const auto t = plan_dilated_branch(&start, &len, 1, 1, {1000, 1}, 64)[0];
  ASSERT_EQ(t.tiles[0], 16);
  EXPECT_EQ(decode_dilated_work(t, 0).tile, 15);
  EXPECT_EQ(decode_dilated_work(t, 15).tile, 0);
}

TEST(DilatedWorkTableTest, GridIsCapped) {
  EXPECT_EQ(attention_grid(0), 0);
  EXPECT_EQ(attention_grid(7), 7);
  EXPECT_EQ(attention_grid(int64_t{1} << 40), kMaxGridBlocks);
}

TEST(QueryTileRangeTest, ShortLastTileAndEmptyTiles) {
  QueryTileRange r = query_tile_range(100, 1, 64, true);
  EXPECT_EQ(r.begin, 64);
  EXPECT_EQ(r.end, 100);
  EXPECT_EQ(r.key_end, 100);
  r = query_tile_range(100, 0, 64, true);
  EXPECT_EQ(r.key_end, 64);  // causal: no key past the tile's last query
  r = query_tile_range(100, 0, 64, false);
  EXPECT_EQ(r.key_end, 100);  // non-causal: the whole segment, and no padding
  r = query_tile_range(40, 1, 64, false);
  EXPECT_EQ(r.end, r.begin);  // a head that sees fewer tokens in a short last segment
  EXPECT_EQ(r.key_end, 0);
  EXPECT_EQ(query_key_limit(5, 100, true), 6);
  EXPECT_EQ(query_key_limit(5, 100, false), 100);
}

// ---- the kernel's tile walk, emulated
// ----------------------------------------------------------------------

struct Case {
  std::string name;
  int64_t num_heads;
  int head_dim;
  std::vector<int64_t> starts;
  std::vector<int64_t> lens;
  std::vector<DilatedBranch> branches;
  bool causal;
};

struct Walk {
  std::vector<float> out;
  std::vector<float> lse;
  std::string failure;  // first structural failure, if any
};

// dilated_attention_kernel.cu's algorithm for every work item of every launch, one query row at a time:
// the same plan, tile ranges, masks (by key tile of block_n), online softmax and merge. Also checks that
// every row it touches lies in its sequence, that each (row, head) of a branch is a query of exactly one
// tile, and that its keys are exactly LONGNET.md's K_i,h(t).
Walk emulate(const Case& c, const std::vector<float>& q, const std::vector<float>& k,
             const std::vector<float>& v, int64_t rows, int64_t stride) {
  const AttentionTileConfig cfg = attention_tile_config(c.head_dim);
  const int64_t d_count = c.head_dim;
  const float scale_log2 = 1.0f / std::sqrt(static_cast<float>(d_count)) * 1.4426950408889634f;
  Walk walk;
  walk.out.assign(static_cast<size_t>(rows * stride), 1234.5f);  // rows outside the sequences keep it
  walk.lse.assign(static_cast<size_t>(rows * c.num_heads), 1234.5f);
  const auto fail = [&](const std::string& what) {
    if (walk.failure.empty()) walk.failure = what;
  };

  std::vector<DilatedBranch> order = c.branches;
  const auto dense =
      std::find_if(order.begin(), order.end(), [](const DilatedBranch& b) { return b.dilation == 1; });
  const bool first_writes = dense != order.end();
  if (first_writes) std::rotate(order.begin(), dense, dense + 1);
  if (!first_writes) {  // launch_clear_attention_outputs
    for (size_t b = 0; b < c.lens.size(); ++b) {
      for (int64_t t = c.starts[b]; t < c.starts[b] + c.lens[b]; ++t) {
        std::fill_n(walk.out.begin() + t * stride, c.num_heads * d_count, 0.0f);
        std::fill_n(walk.lse.begin() + t * c.num_heads, c.num_heads, kNegInf);
      }
    }
  }

  std::vector<float> o(static_cast<size_t>(d_count));
  for (size_t bi = 0; bi < order.size(); ++bi) {
    const DilatedBranch& br = order[bi];
    std::map<std::pair<int64_t, int64_t>, int> query_count;  // (row, head) -> tiles that computed it
    for (const DilatedWorkTable& table :
         plan_dilated_branch(c.starts.data(), c.lens.data(), c.lens.size(), c.num_heads, br, cfg.block_m)) {
      for (int64_t work = 0; work < table.total_work; ++work) {
        const DilatedWorkItem item = decode_dilated_work(table, work);
        const DilatedSegmentView seg = dilated_segment_view(table, item);
        const QueryTileRange tile = query_tile_range(seg.visible, item.tile, cfg.block_m, c.causal);
        if (tile.end <= tile.begin) continue;
        const int64_t seq_begin = table.seq_start[item.seq];
        const int64_t seq_end = seq_begin + table.seq_len[item.seq];
        const int64_t w = table.segment_length[item.seq];
        const int64_t offset = head_offset(item.head, c.num_heads, br.dilation);
        const auto row_of = [&](int64_t j) {
          const int64_t row = seg.first_row + j * seg.row_step;
          if (row < seq_begin || row >= seq_end) fail("row " + std::to_string(row) + " outside its sequence");
          return row;
        };
        for (int64_t i = 0; i < cfg.block_m; ++i) {
          const int64_t j = tile.begin + i;
          const int64_t limit = j < tile.end ? query_key_limit(j, seg.visible, c.causal) : 0;
          if (j >= tile.end) continue;  // padding rows: every score masked, nothing written
          const int64_t row = row_of(j);
          ++query_count[{row, item.head}];
          // The key set this query meets, against the definition.
          std::set<int64_t> keys, expected;
          const int64_t t = row - seq_begin;
          for (int64_t u = t / w * w; u < std::min(t / w * w + w, table.seq_len[item.seq]); ++u) {
            if (is_visible(u, w, br.dilation, offset) && (!c.causal || u <= t))
              expected.insert(seq_begin + u);
          }
          if (!is_visible(t, w, br.dilation, offset)) fail("a query that its head does not see");

          float m = kNegInf, l = 0.0f;
          std::fill(o.begin(), o.end(), 0.0f);
          const float* qr = q.data() + row * stride + item.head * d_count;
          for (int64_t kb = 0; kb < tile.key_end; kb += cfg.block_n) {
            std::vector<float> s(static_cast<size_t>(cfg.block_n), kNegInf);
            float tile_max = kNegInf;
            for (int64_t n = 0; n < cfg.block_n; ++n) {
              if (n >= limit - kb) continue;  // the kernel's mask
              const int64_t key_row = row_of(kb + n);
              keys.insert(key_row);
              const float* kr = k.data() + key_row * stride + item.head * d_count;
              float dot = 0.0f;
              for (int64_t d = 0; d < d_count; ++d)
                dot = std::fma(qr[d] * scale_log2, kr[d], dot);
              s[static_cast<size_t>(n)] = dot;
              tile_max = std::max(tile_max, dot);
            }
            const OnlineSoftmaxStep st = online_softmax_step(m, tile_max);
            float sum = 0.0f;
            for (float& x : s) {
              x = exp2f(x - st.base);
              sum += x;
            }
            l = l * st.alpha + sum;
            m = st.m_new;
            for (int64_t d = 0; d < d_count; ++d) {
              float acc = o[static_cast<size_t>(d)] * st.alpha;
              for (int64_t n = 0; n < cfg.block_n && kb + n < tile.key_end; ++n) {
                acc =
                    std::fma(s[static_cast<size_t>(n)],
                             v[static_cast<size_t>(row_of(kb + n) * stride + item.head * d_count + d)], acc);
              }
              o[static_cast<size_t>(d)] = acc;
            }
          }
          if (keys != expected)
            fail("row " + std::to_string(row) + " head " + std::to_string(item.head) + ": wrong key set");
          float& lse = walk.lse[static_cast<size_t>(row * c.num_heads + item.head)];
          const bool first_branch = first_writes && bi == 0;
          const LseMerge mw = lse_merge(first_branch ? kNegInf : lse, row_lse(m, l));
          float* out_row = walk.out.data() + row * stride + item.head * d_count;
          for (int64_t d = 0; d < d_count; ++d) {
            const float mine = o[static_cast<size_t>(d)] / l;
            out_row[d] = mw.w_old == 0.0f ? mw.w_new * mine : mw.w_old * out_row[d] + mw.w_new * mine;
          }
          lse = mw.lse;
        }
      }
    }
    // Every (row, head) the branch covers is a query exactly once; the others never.
    for (size_t b = 0; b < c.lens.size(); ++b) {
      const int64_t len = c.lens[b];
      const int64_t w = effective_segment_length(br.segment_length, len);
      for (int64_t t = 0; t < len; ++t) {
        for (int64_t h = 0; h < c.num_heads; ++h) {
          const auto it = query_count.find({c.starts[b] + t, h});
          const int got = it == query_count.end() ? 0 : it->second;
          const int want = is_visible(t, w, br.dilation, head_offset(h, c.num_heads, br.dilation)) ? 1 : 0;
          if (got != want)
            fail("row " + std::to_string(t) + " head " + std::to_string(h) + " computed " +
                 std::to_string(got) + " times");
        }
      }
    }
  }
  return walk;
}

class DilatedTileWalkTest : public ::testing::TestWithParam<Case> {};

TEST_P(DilatedTileWalkTest, MatchesTheReference) {
  const Case& c = GetParam();
  int64_t rows = 0;
  for (size_t b = 0; b < c.lens.size(); ++b)
    rows = std::max(rows, c.starts[b] + c.lens[b]);
  const int64_t stride = c.num_heads * c.head_dim + 3;  // rows wider than the heads: strides matter
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> dist(-1.5f, 1.5f);
  std::vector<float> q(static_cast<size_t>(rows * stride)), k(q.size()), v(q.size());
  for (auto* x : {&q, &k, &v}) {
    for (float& f : *x)
      f = dist(rng);
  }
  const Walk walk = emulate(c, q, k, v, rows, stride);
  ASSERT_TRUE(walk.failure.empty()) << walk.failure;

  std::vector<float> out(walk.out.size(), 1234.5f), lse(walk.lse.size(), 1234.5f);
  DilatedAttentionShape shape;
  shape.num_heads = c.num_heads;
  shape.head_dim = c.head_dim;
  shape.seq_starts = c.starts;
  shape.seq_lens = c.lens;
  shape.q_stride = shape.k_stride = shape.v_stride = shape.out_stride = stride;
  DilatedAttentionParams params;
  params.branches = c.branches;
  params.causal = c.causal;
  ASSERT_TRUE(
      reference::dilated_attention(shape, params, q.data(), k.data(), v.data(), out.data(), lse.data()).ok());

  float worst = 0.0f;
  for (size_t i = 0; i < out.size(); ++i) {
    ASSERT_FALSE(std::isnan(walk.out[i])) << "out[" << i << "]";
    worst = std::max(worst, std::fabs(walk.out[i] - out[i]));
  }
  EXPECT_LE(worst, 2e-5f);
  for (size_t i = 0; i < lse.size(); ++i) {
    if (std::isinf(lse[i])) {
      EXPECT_EQ(walk.lse[i], lse[i]) << "lse[" << i << "]";  // uncovered heads: -inf exactly
    } else {
      EXPECT_NEAR(walk.lse[i], lse[i], 2e-5f * std::max(1.0f, std::fabs(lse[i]))) << "lse[" << i << "]";
    }
  }
}

std::vector<Case> walk_cases() {
  std::vector<Case> cases;
  for (bool causal : {true, false}) {
    const std::string mode = causal ? "Causal" : "NonCausal";
    // Several query and key tiles per segment, a short last segment, and w % r != 0.
    cases.push_back({"Schedule" + mode, 4, 32, {0}, {300}, {{96, 1}, {160, 2}, {200, 3}}, causal});
    // No r = 1 branch and r > H: heads and residues no branch covers; w > N.
    cases.push_back({"Uncovered" + mode, 3, 32, {0}, {90}, {{20, 4}, {512, 6}}, causal});
    // A ragged batch with gaps between the sequences and an empty one.
    cases.push_back({"Ragged" + mode, 2, 32, {5, 40, 41, 200}, {30, 0, 150, 1}, {{64, 1}, {32, 2}}, causal});
    // The narrow key tiles of wide heads.
    cases.push_back({"Head80" + mode, 2, 80, {0}, {150}, {{128, 1}, {150, 2}}, causal});
  }
  // More sequences than one launch takes.
  Case many{"ManySequences", 2, 32, {}, {}, {{8, 1}, {16, 4}}, true};
  for (int b = 0; b < 45; ++b) {
    many.starts.push_back(b * 20);
    many.lens.push_back(1 + b % 19);
  }
  cases.push_back(many);
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Cases, DilatedTileWalkTest, ::testing::ValuesIn(walk_cases()),
                         [](const ::testing::TestParamInfo<Case>& param_info) {
                           return param_info.param.name;
                         });

// ---- softmax arithmetic
// ----------------------------------------------------------------------------------------

TEST(AttentionSoftmaxMathTest, RowsWithoutKeysStayFinite) {
  const OnlineSoftmaxStep st = online_softmax_step(kNegInf, kNegInf);
  EXPECT_EQ(st.m_new, kNegInf);
  EXPECT_EQ(st.base, 0.0f);
  EXPECT_EQ(st.alpha, 0.0f);
  EXPECT_EQ(exp2f(kNegInf - st.base), 0.0f);
  const OnlineSoftmaxStep first = online_softmax_step(kNegInf, 3.0f);
  EXPECT_EQ(first.alpha, 0.0f);
  EXPECT_EQ(first.base, 3.0f);
  const OnlineSoftmaxStep later = online_softmax_step(3.0f, 1.0f);
  EXPECT_EQ(later.m_new, 3.0f);
  EXPECT_EQ(later.alpha, 1.0f);
}

TEST(AttentionSoftmaxMathTest, LseMergeIsOneSoftmaxOverBothSets) {
  const LseMerge copy = lse_merge(kNegInf, 0.5f);
  EXPECT_EQ(copy.w_old, 0.0f);
  EXPECT_EQ(copy.w_new, 1.0f);
  EXPECT_EQ(copy.lse, 0.5f);
  for (const auto& [a, b] : {std::pair{0.0f, 0.0f}, {1.0f, -2.0f}, {-30.0f, 40.0f}, {7.0f, 7.5f}}) {
    const LseMerge m = lse_merge(a, b);
    const double expect = std::max<double>(a, b) + std::log1p(std::exp(-std::fabs(double{a} - b)));
    EXPECT_NEAR(m.lse, expect, 1e-6 * std::max(1.0, std::fabs(expect)));
    EXPECT_NEAR(m.w_old + m.w_new, 1.0f, 1e-6f);
    EXPECT_NEAR(m.w_old, std::exp(double{a} - expect), 1e-6);
  }
  EXPECT_NEAR(row_lse(0.0f, 1.0f), 0.0f, 1e-7f);
  EXPECT_NEAR(row_lse(3.0f, 2.0f), 4.0f * 0.6931472f, 1e-6f);  // log(2^3 * 2)
}

// ---- decode split
// ---------------------------------------------------------------------------------------------

TEST(PrefixAttentionPlanTest, NothingToDo) {
  EXPECT_EQ(prefix_attention_plan(0, 1, 100, 64).splits, 0);
  EXPECT_EQ(prefix_attention_plan(4, 0, 100, 64).splits, 0);
}

TEST(PrefixAttentionPlanTest, FewRowsSplitTheKeysManyRowsDoNot) {
  // One decode query of one head over 2731 keys (the paper's (32768, 12) branch): split into chunks.
  PrefixAttentionPlan p = prefix_attention_plan(1, 1, 2731, 64);
  EXPECT_EQ(p.splits, 11);
  EXPECT_EQ(p.split_keys, kDecodeChunkKeys);
  EXPECT_EQ(p.workspace_floats, 11 * 66);
  // Enough rows to fill the GPU on their own: one split, no workspace, the block walks all keys.
  p = prefix_attention_plan(64, 16, 2731, 128);
  EXPECT_EQ(p.splits, 1);
  EXPECT_EQ(p.workspace_floats, 0);
  EXPECT_GE(p.split_keys, 2731);
  // No keys at all: one (empty) split per row, which writes 0 / -inf.
  p = prefix_attention_plan(2, 3, 0, 32);
  EXPECT_EQ(p.splits, 1);
}

TEST(PrefixAttentionPlanTest, SplitsCoverTheKeysWithoutEmptyOnes) {
  for (int64_t count : {1, 3, 16, 200}) {
    for (int64_t nq : {1, 2, 7}) {
      for (int64_t keys : {1, 255, 256, 257, 4096, 100000}) {
        const PrefixAttentionPlan p = prefix_attention_plan(count, nq, keys, 96);
        SCOPED_TRACE(std::to_string(count) + " x " + std::to_string(nq) + " x " + std::to_string(keys));
        EXPECT_GE(p.splits, 1);
        EXPECT_EQ(p.split_keys % kDecodeChunkKeys, 0);
        EXPECT_GE(p.splits * p.split_keys, keys);
        EXPECT_LT((p.splits - 1) * p.split_keys, keys);  // the last split has a key
        EXPECT_LE(p.splits * count * nq, std::max<int64_t>(kDecodeTargetBlocks, count * nq) + count * nq);
        EXPECT_EQ(p.grid_x, p.splits);
        EXPECT_LE(p.grid_y, kMaxGridBlocks);
        EXPECT_LE(p.grid_z, kMaxGridBlocks);
        EXPECT_EQ(p.workspace_floats, p.splits > 1 ? count * nq * p.splits * (96 + 2) : 0);
        EXPECT_LE(p.smem_bytes, kDefaultSharedMemoryBytes);
      }
    }
  }
}

}  // namespace
}  // namespace longnet::kernels::cuda
