#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "longnet/kernels/cuda_launch.h"
#include "longnet/kernels/dilated_schedule.h"
#include "longnet/kernels/host_device.h"

// How the CUDA attention kernels cut their work, as plain arithmetic that the host tests check without a
// GPU (tests/kernels/cuda_attention_plan_test.cc): tile shapes and shared-memory layouts per head size,
// which (sequence, head, segment, query tile) a thread block of the dilated kernel works on, which keys
// each of its queries may see, and how decode attention splits its keys. The kernels
// (kernels/cuda/*.cu) call exactly these functions. No CUDA header here, and C++17 only (nvcc compiles
// the .cu files as C++17). The algorithms are described in docs/gpu.md.
namespace longnet::kernels::cuda {

// ---- Tiles of the flash-style attention kernel -----------------------------------------------------------

// A block of kAttentionThreads threads computes a tile of kAttentionBlockM queries against key tiles of
// block_n keys. Query rows are shared by groups of kAttentionRowLanes consecutive lanes (one eighth of a
// warp), so a row's running max and sum are reduced with three shuffles and never leave the warp. Each
// thread holds kAttentionRowsPerThread rows: block_n / 8 scores and head_dim / 8 output columns of each.
inline constexpr int kAttentionThreads = 128;
inline constexpr int kAttentionRowLanes = 8;
inline constexpr int kAttentionRowsPerThread = 4;
inline constexpr int kAttentionBlockM = kAttentionThreads / kAttentionRowLanes * kAttentionRowsPerThread;

// Head sizes with a compiled kernel. Others are refused with InvalidArgument (the CPU backend takes any).
inline constexpr int kSupportedHeadDims[] = {32, 64, 80, 96, 128};

constexpr bool is_supported_head_dim(int64_t head_dim) {
  for (int d : kSupportedHeadDims) {
    if (d == head_dim) return true;
  }
  return false;
}

struct AttentionTileConfig {
  int head_dim = 0;
  int block_m = 0;          // queries per tile
  int block_n = 0;          // keys per tile
  int cols_per_thread = 0;  // scores per row and thread: block_n / kAttentionRowLanes
  int dims_per_thread = 0;  // output columns per row and thread: head_dim / kAttentionRowLanes
  // Shared memory, in floats (every tile is converted to fp32 as it is loaded):
  //   Q [block_m][head_dim + 1]   pre-scaled queries
  //   K [block_n][head_dim + 1]   keys; once the scores are in registers, P [block_m][block_n + 1]
  //                               (the probabilities) reuses this space
  //   V [block_n][head_dim]
  // The odd row strides of Q, K and P make the column walks of the score loop (8 rows apart per lane
  // group, 4 row groups per warp) fall in distinct banks; V is read along rows, so it needs no padding.
  int q_stride = 0;
  int k_stride = 0;
  int p_stride = 0;
  int v_stride = 0;
  int q_offset = 0;
  int kp_offset = 0;
  int v_offset = 0;
  int smem_floats = 0;
  size_t smem_bytes = 0;
};

// Wider heads get narrower key tiles, so that the accumulators (4 rows x head_dim / 8) and the scores
// (4 x block_n / 8) fit in registers together without spilling, and shared memory stays under 100 KB
// (two blocks per SM on an A100, three on an H100). Zeroes for an unsupported head size.
constexpr AttentionTileConfig attention_tile_config(int head_dim) {
  AttentionTileConfig c;
  if (!is_supported_head_dim(head_dim)) return c;
  c.head_dim = head_dim;
  c.block_m = kAttentionBlockM;
  c.block_n = head_dim <= 64 ? 64 : 32;
  c.cols_per_thread = c.block_n / kAttentionRowLanes;
  c.dims_per_thread = head_dim / kAttentionRowLanes;
  c.q_stride = head_dim + 1;
  c.k_stride = head_dim + 1;
  c.p_stride = c.block_n + 1;
  c.v_stride = head_dim;
  const int q_floats = c.block_m * c.q_stride;
  const int k_floats = c.block_n * c.k_stride;
  const int p_floats = c.block_m * c.p_stride;
  const int kp_floats = k_floats > p_floats ? k_floats : p_floats;
  c.q_offset = 0;
  c.kp_offset = q_floats;
  c.v_offset = c.kp_offset + kp_floats;
  c.smem_floats = c.v_offset + c.block_n * c.v_stride;
  c.smem_bytes = static_cast<size_t>(c.smem_floats) * sizeof(float);
  return c;
}

// Above this, a kernel must opt in (cudaFuncAttributeMaxDynamicSharedMemorySize) before its launch.
inline constexpr size_t kDefaultSharedMemoryBytes = 48 * 1024;
// What the tiles may use at most: sm_80 allows 163 KB per block, sm_86/89 99 KB, sm_90 227 KB.
inline constexpr size_t kMaxAttentionSharedMemoryBytes = 99 * 1024;

// ---- Dilated attention: the work of one launch
// -------------------------------------------------------------

// One launch handles one branch for up to kMaxSequencesPerLaunch sequences of a batch; the table travels
// in the kernel's parameters (about 1.6 KB, a __grid_constant__), so a call needs no device workspace and
// no copy to the device. Bigger batches take several launches.
inline constexpr int kMaxSequencesPerLaunch = 32;

// Work item w of a launch is one (sequence, head, segment, query tile). Sequence s owns the items
// [work_begin[s], work_begin[s] + num_heads * segments[s] * tiles[s]).
struct DilatedWorkTable {
  int num_seqs = 0;
  int64_t num_heads = 0;
  int64_t dilation = 1;  // r of the branch
  int64_t block_m = 0;   // queries per tile
  int64_t total_work = 0;
  int64_t seq_start[kMaxSequencesPerLaunch] = {};       // first row of the sequence
  int64_t seq_len[kMaxSequencesPerLaunch] = {};         // its tokens (> 0)
  int64_t segment_length[kMaxSequencesPerLaunch] = {};  // min(w, len): the branch's segments in it
  int64_t segments[kMaxSequencesPerLaunch] = {};        // ceil(len / segment_length)
  int64_t tiles[kMaxSequencesPerLaunch] = {};           // query tiles per segment: ceil(ceil(w/r) / block_m)
  int64_t work_begin[kMaxSequencesPerLaunch] = {};
};

struct DilatedWorkItem {
  int seq = 0;  // index into the table
  int64_t head = 0;
  int64_t segment = 0;
  int64_t tile = 0;
};

// The item of work index `work` (0 <= work < total_work). Within a (sequence, head, segment) the tiles come
// last first: causal tiles grow towards the end of a segment, and blocks start roughly in index order, so
// the longest tiles start first and the short ones fill the gaps at the end.
LONGNET_HOST_DEVICE DilatedWorkItem decode_dilated_work(const DilatedWorkTable& table, int64_t work) {
  DilatedWorkItem item;
  int s = 0;
  while (s + 1 < table.num_seqs && table.work_begin[s + 1] <= work)
    ++s;
  item.seq = s;
  int64_t local = work - table.work_begin[s];
  const int64_t tiles = table.tiles[s];
  const int64_t per_head = table.segments[s] * tiles;
  item.head = local / per_head;
  local -= item.head * per_head;
  item.segment = local / tiles;
  item.tile = tiles - 1 - (local - item.segment * tiles);
  return item;
}

// One head's view of one segment: its visible tokens are rows first_row + j * row_step, j < visible.
// These are both the queries and the keys of that (branch, head, segment).
struct DilatedSegmentView {
  int64_t first_row = 0;
  int64_t row_step = 1;
  int64_t visible = 0;
};

LONGNET_HOST_DEVICE DilatedSegmentView dilated_segment_view(const DilatedWorkTable& table,
                                                            const DilatedWorkItem& item) {
  const int64_t w = table.segment_length[item.seq];
  const int64_t r = table.dilation;
  const int64_t offset = head_offset(item.head, table.num_heads, r);
  const int64_t segment_begin = item.segment * w;
  const int64_t remaining = table.seq_len[item.seq] - segment_begin;
  DilatedSegmentView view;
  view.first_row = table.seq_start[item.seq] + segment_begin + offset;
  view.row_step = r;
  view.visible = visible_count(remaining < w ? remaining : w, r, offset);
  return view;
}

// Queries [begin, end) of a tile (indices into the segment's visible tokens; empty when the head sees
// fewer tokens in this segment than the tile starts at) and the keys any of them may see: [0, key_end).
struct QueryTileRange {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t key_end = 0;
};

LONGNET_HOST_DEVICE QueryTileRange query_tile_range(int64_t visible, int64_t tile, int64_t block_m,
                                                    bool causal) {
  QueryTileRange range;
  range.begin = tile * block_m;
  range.end = range.begin + block_m < visible ? range.begin + block_m : visible;
  if (range.end < range.begin) range.end = range.begin;
  range.key_end = range.end <= range.begin ? 0 : (causal ? range.end : visible);
  return range;
}

// Query j of a segment sees the keys [0, limit): causal, itself and the ones before it; otherwise every
// visible token of the segment, and never the padding past the last real token of a short segment.
LONGNET_HOST_DEVICE int64_t query_key_limit(int64_t j, int64_t visible, bool causal) {
  return causal ? j + 1 : visible;
}

// The launches of one branch over a batch (ragged: sequences of any length, empty ones skipped), in
// chunks of kMaxSequencesPerLaunch sequences. `block_m` is the query tile (kAttentionBlockM).
inline std::vector<DilatedWorkTable> plan_dilated_branch(const int64_t* seq_starts, const int64_t* seq_lens,
                                                         size_t num_seqs, int64_t num_heads,
                                                         const DilatedBranch& branch, int64_t block_m) {
  std::vector<DilatedWorkTable> tables;
  DilatedWorkTable* table = nullptr;
  for (size_t b = 0; b < num_seqs; ++b) {
    const int64_t len = seq_lens[b];
    if (len <= 0) continue;
    if (table == nullptr || table->num_seqs == kMaxSequencesPerLaunch) {
      table = &tables.emplace_back();
      table->num_heads = num_heads;
      table->dilation = branch.dilation;
      table->block_m = block_m;
    }
    const int s = table->num_seqs++;
    const int64_t w = effective_segment_length(branch.segment_length, len);
    table->seq_start[s] = seq_starts[b];
    table->seq_len[s] = len;
    table->segment_length[s] = w;
    table->segments[s] = num_segments(len, w);
    table->tiles[s] = ceil_div(ceil_div(w, branch.dilation), block_m);
    table->work_begin[s] = table->total_work;
    table->total_work += num_heads * table->segments[s] * table->tiles[s];
  }
  return tables;
}

// Blocks of a launch: one per work item up to kMaxGridBlocks; past that, blocks loop over the items.
constexpr int64_t attention_grid(int64_t total_work) {
  return total_work < kMaxGridBlocks ? total_work : kMaxGridBlocks;
}

// ---- Decode: queries over a key prefix, keys split across blocks
// ---------------------------------------------

// A block of kDecodeThreads threads handles one (problem, query, key split). It walks its split in chunks
// of kDecodeChunkKeys keys with an online softmax: scores of a chunk go to shared memory (8 lanes per key,
// one warp-quarter each), then each warp accumulates p * v over a quarter of the chunk's keys.
inline constexpr int kDecodeThreads = 128;
inline constexpr int kDecodeLanesPerKey = 8;
inline constexpr int64_t kDecodeChunkKeys = 256;
// Keys are split until about this many blocks are in flight (an H100 has 132 SMs; a few blocks each), and
// never into splits shorter than one chunk.
inline constexpr int64_t kDecodeTargetBlocks = 1024;

struct PrefixAttentionPlan {
  int64_t splits = 0;      // key splits per query; 0: nothing to do
  int64_t split_keys = 0;  // keys per split, a multiple of kDecodeChunkKeys (the last split may be short)
  // Blocks: x = splits, y = queries, z = problems; y and z are capped at kMaxGridBlocks and loop past it.
  int64_t grid_x = 0;
  int64_t grid_y = 0;
  int64_t grid_z = 0;
  // With splits > 1 every (problem, query, split) leaves a partial state in the workspace -- running max
  // and sum, then head_dim unnormalised output columns -- which a second kernel merges.
  int64_t partial_floats = 0;  // per (problem, query, split): head_dim + 2
  int64_t workspace_floats = 0;
  size_t smem_bytes = 0;  // query, a chunk's probabilities, and per-warp accumulators for the final sum
};

constexpr PrefixAttentionPlan prefix_attention_plan(int64_t count, int64_t num_queries, int64_t num_keys,
                                                    int64_t head_dim) {
  PrefixAttentionPlan plan;
  if (count <= 0 || num_queries <= 0 || head_dim <= 0) return plan;
  const int64_t chunks = num_keys <= 0 ? 1 : ceil_div(num_keys, kDecodeChunkKeys);
  const int64_t rows = count * num_queries;
  int64_t splits = rows >= kDecodeTargetBlocks ? 1 : ceil_div(kDecodeTargetBlocks, rows);
  if (splits > chunks) splits = chunks;
  const int64_t chunks_per_split = ceil_div(chunks, splits);
  plan.split_keys = chunks_per_split * kDecodeChunkKeys;
  plan.splits = num_keys <= 0 ? 1 : ceil_div(num_keys, plan.split_keys);  // no empty trailing split
  plan.grid_x = plan.splits;
  plan.grid_y = num_queries < kMaxGridBlocks ? num_queries : kMaxGridBlocks;
  plan.grid_z = count < kMaxGridBlocks ? count : kMaxGridBlocks;
  plan.partial_floats = head_dim + 2;
  plan.workspace_floats = plan.splits > 1 ? rows * plan.splits * plan.partial_floats : 0;
  const int64_t warps = kDecodeThreads / kWarpSize;
  plan.smem_bytes =
      static_cast<size_t>(head_dim + kDecodeChunkKeys + warps * head_dim + warps) * sizeof(float);
  return plan;
}

}  // namespace longnet::kernels::cuda
