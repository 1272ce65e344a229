#include "longnet/kernels/prefix_attention.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>

#include "absl/strings/str_cat.h"
#include "cpu/attention_tile.h"
#include "cpu/cpu_features.h"
#include "cpu/prefix_attention_ops.h"

// The fast CPU path. The work is cut into tasks of (query tile, key chunk); each task leaves a softmax
// state per query row -- running max m, sum l = sum exp(s - m), and unnormalised output acc -- which is
// the answer when there is one chunk, and otherwise a partial that a last pass merges over the chunks
// (split-K, as in flash-decoding). How the work is cut depends on the shape only, never on the thread
// count, so every pool size gives bit-identical results.
namespace longnet::kernels::cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int64_t kAlignFloats = 16;  // 64 bytes

// Below this many queries the rows route runs: reading k and v in place once per query costs less than
// packing them for the tile kernels (measured with bench/prefix_attention_bench.cc).
constexpr int64_t kMinTileQueries = 4;
// Keys per task on the rows route: enough to hide a task's dispatch, few enough that a 2K-key decode
// already spreads over two threads.
constexpr int64_t kRowChunkKeys = 1024;
// The tile route wants at least this many tasks. With this many full query tiles or more, each task is one
// tile against all keys; with fewer, the keys are split too, in chunks of kTileChunkKeys.
constexpr int64_t kMinTasks = 8;
constexpr int64_t kTileChunkKeys = 8 * kKeyBlock;
// Keys are packed once for all tasks when there is no key split or the keys are few enough to stay in L2
// meanwhile; otherwise each task packs its own chunk into thread-private scratch (a few queries against a
// large cache must not pay a separate packing pass over it, from memory, before the real one).
constexpr int64_t kSharedPackMaxKeys = 4096;

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}
int64_t round_up(int64_t a, int64_t m) {
  return ceil_div(a, m) * m;
}

// How one call is cut into tasks, and where its scratch lives (sizes in floats, each region aligned).
struct Plan {
  bool tiles = false;        // the tile route (else the rows route)
  bool shared_pack = false;  // tile route: keys packed once for all tasks (else per task, privately)
  // Tile route: value rows are read in place (their stride is already dim_padded); only the last, partial
  // strip of keys gets a zero-padded copy, so the kernels never read past the caller's buffer.
  bool values_in_place = false;
  int64_t dim_padded = 0;  // accumulator rows: head_dim rounded up to whole key strips on the tile route
  int64_t tile_rows = 1;   // queries per task
  int64_t num_tiles = 0;
  int64_t chunk_keys = 0;  // keys per task (a multiple of kKeyBlock on the tile route)
  int64_t num_chunks = 1;
  // A softmax state for tile_rows rows: acc[tile_rows][dim_padded], then m[tile_rows], l[tile_rows].
  int64_t state_floats = 0;
  // Workspace: [shared packed keys][shared packed values][partial states, when num_chunks > 1]
  // [per thread: packed chunk (private packing), q tile + scores (tiles) or scores (rows), one state].
  int64_t packed_k_floats = 0;
  int64_t packed_v_floats = 0;
  int64_t partial_floats = 0;
  int64_t pack_floats = 0;     // per thread, private packing: keys (then values) of one chunk
  int64_t scratch_floats = 0;  // per thread, after the packed chunk
  int64_t thread_floats = 0;

  int64_t total_floats(int threads) const {
    return packed_k_floats + packed_v_floats + partial_floats + thread_floats * std::max(threads, 1) +
           kAlignFloats;  // room to align the base
  }
};

Plan make_plan(const PrefixAttentionShape& s) {
  Plan p;
  const int64_t dim = s.head_dim;
  p.tiles = s.num_queries >= kMinTileQueries;
  if (p.tiles) {
    p.dim_padded = round_up(dim, kKeyStrip);
    if (s.num_queries >= kMinTasks * kQueryTile) {
      p.tile_rows = kQueryTile;
    } else {
      p.num_chunks = std::max<int64_t>(1, ceil_div(s.num_keys, kTileChunkKeys));
      // As few tiles as the task count allows: each tile reads every key once more.
      p.tile_rows = std::clamp(round_up(ceil_div(s.num_queries * p.num_chunks, kMinTasks), kMicroRows),
                               kMicroRows, kQueryTile);
    }
    p.num_tiles = ceil_div(s.num_queries, p.tile_rows);
    p.shared_pack = p.num_chunks == 1 || s.num_keys <= kSharedPackMaxKeys;
    p.values_in_place = s.v_stride == p.dim_padded;
    const int64_t keys_padded = round_up(s.num_keys, kKeyStrip);
    const int64_t packed_values = p.values_in_place ? 0 : 1;
    p.chunk_keys = p.num_chunks == 1 ? round_up(std::max<int64_t>(s.num_keys, 1), kKeyBlock) : kTileChunkKeys;
    if (p.shared_pack) {
      p.packed_k_floats = round_up(keys_padded * dim, kAlignFloats);
      p.packed_v_floats = (p.values_in_place ? kKeyStrip : keys_padded) * p.dim_padded;
    } else {
      p.pack_floats =
          round_up(p.chunk_keys * dim, kAlignFloats) + packed_values * p.chunk_keys * p.dim_padded;
      p.packed_v_floats = p.values_in_place ? kKeyStrip * p.dim_padded : 0;
    }
    p.scratch_floats = round_up(p.tile_rows * dim, kAlignFloats) + p.tile_rows * kKeyBlock;
  } else {
    p.dim_padded = dim;
    p.tile_rows = 1;
    p.num_tiles = s.num_queries;
    p.chunk_keys = kRowChunkKeys;
    p.num_chunks = std::max<int64_t>(1, ceil_div(s.num_keys, p.chunk_keys));
    p.scratch_floats = round_up(std::min(s.num_keys, kRowChunkKeys), kAlignFloats);
  }
  p.state_floats = round_up(p.tile_rows * (p.dim_padded + 2), kAlignFloats);
  p.partial_floats = p.num_chunks > 1 ? p.num_tiles * p.num_chunks * p.state_floats : 0;
  p.thread_floats = p.pack_floats + p.scratch_floats + p.state_floats;
  return p;
}

// An upper bound of make_plan(s').total_floats(threads) over every shape s' with no more queries and keys
// than s (and the same head_dim and strides), term by term (packed keys, partial states, per-thread
// scratch), each non-decreasing in both counts. Callers can then size one workspace for the largest call
// of a loop, although the plan switches routes, key splits and packing as the counts shrink.
int64_t workspace_bound(const PrefixAttentionShape& s, int threads) {
  const int64_t dim = s.head_dim;
  static_assert(kRowChunkKeys == kTileChunkKeys, "the partial-state bounds below assume one chunk size");
  const int64_t chunks = ceil_div(s.num_keys, kRowChunkKeys);
  // The rows route (fewer than kMinTileQueries queries).
  int64_t partials =
      chunks > 1 ? std::min(s.num_queries, kMinTileQueries - 1) * chunks * round_up(dim + 2, kAlignFloats)
                 : 0;
  int64_t per_thread =
      round_up(std::min(s.num_keys, kRowChunkKeys), kAlignFloats) + round_up(dim + 2, kAlignFloats);
  int64_t shared = 0;
  if (s.num_queries >= kMinTileQueries) {  // the tile route
    const int64_t dim_padded = round_up(dim, kKeyStrip);
    const bool values_in_place = s.v_stride == dim_padded;
    const int64_t keys_padded = round_up(s.num_keys, kKeyStrip);
    shared =
        round_up(keys_padded * dim, kAlignFloats) + (values_in_place ? kKeyStrip : keys_padded) * dim_padded;
    if (chunks > 1) {
      // Split only below kMinTasks full tiles; there, tiles * round_up(tile_rows * (dim_padded + 2), 16)
      // <= (queries + tile_rows - 1) * (dim_padded + 2) + 15 * tiles, with tile_rows >= kMicroRows.
      const int64_t queries = std::min(s.num_queries, kMinTasks * kQueryTile - 1);
      partials = std::max(partials, chunks * ((queries + kQueryTile - 1) * (dim_padded + 2) +
                                              (kAlignFloats - 1) * ceil_div(queries, kMicroRows)));
    }
    int64_t tile_thread = round_up(kQueryTile * dim, kAlignFloats) + kQueryTile * kKeyBlock +
                          round_up(kQueryTile * (dim_padded + 2), kAlignFloats);
    if (s.num_keys > kSharedPackMaxKeys) {  // private packing of one chunk
      tile_thread +=
          round_up(kTileChunkKeys * dim, kAlignFloats) + (values_in_place ? 0 : kTileChunkKeys * dim_padded);
    }
    per_thread = std::max(per_thread, tile_thread);
  }
  return shared + partials + per_thread * std::max(threads, 1) + kAlignFloats;
}

struct State {
  float* acc;  // rows x dim_padded
  float* m;
  float* l;
};

State state_at(float* base, const Plan& plan) {
  float* m = base + plan.tile_rows * plan.dim_padded;
  return {base, m, m + plan.tile_rows};
}

struct Context {
  const PrefixAttentionShape& shape;
  const Plan& plan;
  const PrefixAttentionOps& ops;
  const float* q;
  const float* k;
  const float* v;
  std::span<const int64_t> key_limit;
  float* out;
  float* lse;
  float scale;
  float* packed_k;  // shared packing: keys in strips
  float* packed_v;  // shared packing: values in rows of dim_padded; values in place: the last strip's
  float* partials;  // num_chunks > 1: one state per (tile, chunk)
};

// Writes row j's final output and lse from a one-chunk state.
void finish_row(const Context& ctx, int64_t j, const float* acc, float m, float l) {
  float* o = ctx.out + j * ctx.shape.out_stride;
  const int64_t dim = ctx.shape.head_dim;
  if (l == 0.0f) {  // no visible key
    std::fill(o, o + dim, 0.0f);
    if (ctx.lse != nullptr) ctx.lse[j] = kNegInf;
    return;
  }
  const float inv_l = 1.0f / l;
  for (int64_t d = 0; d < dim; ++d)
    o[d] = acc[d] * inv_l;
  if (ctx.lse != nullptr) ctx.lse[j] = m + std::log(l);
}

// Packs keys [begin, end) (begin a multiple of kKeyStrip, end at most num_keys rounded up to one) into
// strips (attention_tile.h) at `strips`, counted from key `begin`, with zeros for keys past num_keys.
void pack_key_strips(const Context& ctx, int64_t begin, int64_t end, float* strips) {
  const PrefixAttentionShape& s = ctx.shape;
  ctx.ops.pack_key_strips(ctx.k + begin * s.k_stride, s.k_stride, std::min(end, s.num_keys) - begin,
                          s.head_dim, strips);
}

// Copies the values of keys [begin, end) into rows of dim_padded floats at `values`, counted from key
// `begin`, zero-padded (columns past head_dim, keys past num_keys).
void pack_values(const Context& ctx, int64_t begin, int64_t end, float* values) {
  const PrefixAttentionShape& s = ctx.shape;
  const int64_t dim_padded = ctx.plan.dim_padded;
  const int64_t real_end = std::min(end, s.num_keys);
  for (int64_t j = begin; j < end; ++j) {
    float* vr = values + (j - begin) * dim_padded;
    const int64_t copied = j < real_end ? s.head_dim : 0;
    if (copied > 0) std::copy_n(ctx.v + j * s.v_stride, copied, vr);
    std::fill(vr + copied, vr + dim_padded, 0.0f);
  }
}

// One (query tile, key chunk) on the tile kernels: the online softmax of dilated_attention.cc over the
// chunk's key blocks, each row masked at its own limit. `scratch` is the thread's slice.
void run_tile(const Context& ctx, const AttentionTileOps& tile_ops, int64_t tile, int64_t chunk,
              float* scratch, State st) {
  const Plan& plan = ctx.plan;
  const int64_t dim = ctx.shape.head_dim;
  const int64_t j0 = tile * plan.tile_rows;
  const int64_t rows = std::min(plan.tile_rows, ctx.shape.num_queries - j0);
  const int64_t rows_padded = round_up(rows, kMicroRows);
  int64_t max_limit = 0;
  for (int64_t i = 0; i < rows; ++i)
    max_limit = std::max(max_limit, ctx.key_limit[static_cast<size_t>(j0 + i)]);
  const int64_t key_begin = chunk * plan.chunk_keys;
  const int64_t key_end = std::min(key_begin + plan.chunk_keys, max_limit);

  std::fill(st.m, st.m + rows_padded, kNegInf);
  std::fill(st.l, st.l + rows_padded, 0.0f);
  std::fill(st.acc, st.acc + rows_padded * plan.dim_padded, 0.0f);
  if (key_begin >= key_end) return;

  // The chunk's keys and values: the shared packing, or this task's own (values in place need none).
  const float* k_strips = ctx.packed_k + key_begin * dim;
  const float* v_rows = ctx.packed_v + key_begin * plan.dim_padded;
  if (!plan.shared_pack) {
    float* own_k = scratch;
    pack_key_strips(ctx, key_begin, round_up(key_end, kKeyStrip), own_k);
    k_strips = own_k;
    if (!plan.values_in_place) {
      float* own_v = scratch + round_up(plan.chunk_keys * dim, kAlignFloats);
      pack_values(ctx, key_begin, round_up(key_end, kKeyStrip), own_v);
      v_rows = own_v;
    }
  }
  // Values in place: keys below full_strips_end have real value rows; the partial strip after them is the
  // padded copy at packed_v.
  const int64_t full_strips_end = ctx.shape.num_keys / kKeyStrip * kKeyStrip;
  float* q_tile = scratch + plan.pack_floats;
  float* scores = q_tile + round_up(plan.tile_rows * dim, kAlignFloats);
  for (int64_t i = 0; i < rows_padded; ++i) {
    float* qr = q_tile + i * dim;
    if (i < rows) {
      const float* src = ctx.q + (j0 + i) * ctx.shape.q_stride;
      for (int64_t d = 0; d < dim; ++d)
        qr[d] = src[d] * ctx.scale;
    } else {
      std::fill(qr, qr + dim, 0.0f);
    }
  }
  std::array<int64_t, kQueryTile> limit{};
  for (int64_t kb = key_begin; kb < key_end; kb += kKeyBlock) {
    const int64_t strips = ceil_div(std::min(kKeyBlock, key_end - kb), kKeyStrip);
    for (int64_t i = 0; i < rows_padded; ++i)
      limit[static_cast<size_t>(i)] = i < rows ? ctx.key_limit[static_cast<size_t>(j0 + i)] - kb : 0;
    tile_ops.scores(q_tile, rows_padded, dim, k_strips + (kb - key_begin) * dim, strips, scores, kKeyBlock);
    tile_ops.softmax_step(scores, rows_padded, strips * kKeyStrip, kKeyBlock, limit.data(), st.m, st.l,
                          st.acc, plan.dim_padded);
    if (plan.values_in_place) {
      const int64_t in_place = std::clamp(full_strips_end - kb, int64_t{0}, strips * kKeyStrip);
      if (in_place > 0) {
        tile_ops.accumulate_values(scores, rows_padded, in_place, kKeyBlock, ctx.v + kb * ctx.shape.v_stride,
                                   st.acc, plan.dim_padded);
      }
      if (in_place < strips * kKeyStrip) {  // the partial strip: the rest of this block
        tile_ops.accumulate_values(scores + in_place, rows_padded, kKeyStrip, kKeyBlock, ctx.packed_v, st.acc,
                                   plan.dim_padded);
      }
    } else {
      tile_ops.accumulate_values(scores, rows_padded, strips * kKeyStrip, kKeyBlock,
                                 v_rows + (kb - key_begin) * plan.dim_padded, st.acc, plan.dim_padded);
    }
  }
}

// One (query, key chunk) on the row loops, reading k and v in place.
void run_row(const Context& ctx, int64_t j, int64_t chunk, float* scores, State st) {
  const PrefixAttentionShape& s = ctx.shape;
  const int64_t key_begin = chunk * ctx.plan.chunk_keys;
  const int64_t key_end = std::min(key_begin + ctx.plan.chunk_keys, ctx.key_limit[static_cast<size_t>(j)]);
  if (key_begin >= key_end) {
    *st.m = kNegInf;
    *st.l = 0.0f;
    std::fill(st.acc, st.acc + s.head_dim, 0.0f);
    return;
  }
  const int64_t n = key_end - key_begin;
  const float* qj = ctx.q + j * s.q_stride;
  const float max =
      ctx.ops.scores(qj, ctx.k + key_begin * s.k_stride, s.k_stride, n, s.head_dim, ctx.scale, scores);
  *st.m = max;
  *st.l = ctx.ops.exp_sum(scores, n, max);
  ctx.ops.weighted_sum(scores, ctx.v + key_begin * s.v_stride, s.v_stride, n, s.head_dim, st.acc);
}

// Merges the chunk states of one query tile into the final rows (split-K).
void combine_tile(const Context& ctx, int64_t tile) {
  const Plan& plan = ctx.plan;
  const int64_t dim = ctx.shape.head_dim;
  const int64_t j0 = tile * plan.tile_rows;
  const int64_t rows = std::min(plan.tile_rows, ctx.shape.num_queries - j0);
  const auto chunk_state = [&](int64_t c) {
    return state_at(ctx.partials + (tile * plan.num_chunks + c) * plan.state_floats, plan);
  };
  for (int64_t i = 0; i < rows; ++i) {
    float m = kNegInf;
    for (int64_t c = 0; c < plan.num_chunks; ++c)
      m = std::max(m, chunk_state(c).m[i]);
    float* o = ctx.out + (j0 + i) * ctx.shape.out_stride;
    std::fill(o, o + dim, 0.0f);
    if (m == kNegInf) {
      if (ctx.lse != nullptr) ctx.lse[j0 + i] = kNegInf;
      continue;
    }
    float l = 0.0f;
    for (int64_t c = 0; c < plan.num_chunks; ++c) {
      const State st = chunk_state(c);
      if (st.m[i] == kNegInf) continue;  // an empty chunk (past this row's limit)
      const float w = std::exp(st.m[i] - m);
      l += w * st.l[i];
      const float* acc = st.acc + i * plan.dim_padded;
      for (int64_t d = 0; d < dim; ++d)
        o[d] += w * acc[d];
    }
    const float inv_l = 1.0f / l;
    for (int64_t d = 0; d < dim; ++d)
      o[d] *= inv_l;
    if (ctx.lse != nullptr) ctx.lse[j0 + i] = m + std::log(l);
  }
}

const AttentionTileOps& select_tile_ops() {
  if (has_avx512()) return attention_tile_ops_avx512();
  if (has_avx2_fma()) return attention_tile_ops_avx2();
  return attention_tile_ops_generic();
}

const PrefixAttentionOps& select_ops() {
  if (has_avx512()) return prefix_attention_ops_avx512();
  if (has_avx2_fma()) return prefix_attention_ops_avx2();
  return prefix_attention_ops_generic();
}

}  // namespace

int64_t prefix_attention_workspace_floats(const PrefixAttentionShape& shape, int num_threads) {
  return workspace_bound(shape, num_threads);
}

absl::Status prefix_attention(const PrefixAttentionShape& shape, const float* q, const float* k,
                              const float* v, std::span<const int64_t> key_limit, float* out, float* lse,
                              std::span<float> workspace, ThreadPool& pool) {
  if (absl::Status st = validate_prefix_attention(shape, key_limit); !st.ok()) return st;
  const Plan plan = make_plan(shape);
  const int64_t needed = plan.total_floats(pool.num_threads());
  if (static_cast<int64_t>(workspace.size()) < needed) {
    return absl::InvalidArgumentError(absl::StrCat("workspace holds ", workspace.size(), " floats; ", needed,
                                                   " are needed for ", pool.num_threads(), " threads"));
  }
  if (shape.num_queries == 0) return absl::OkStatus();

  float* base = workspace.data();
  base += (kAlignFloats - (reinterpret_cast<uintptr_t>(base) / sizeof(float)) % kAlignFloats) % kAlignFloats;
  float* packed_k = base;
  float* packed_v = packed_k + plan.packed_k_floats;
  float* partials = packed_v + plan.packed_v_floats;
  float* thread_base = partials + plan.partial_floats;
  const Context ctx{shape,
                    plan,
                    select_ops(),
                    q,
                    k,
                    v,
                    key_limit,
                    out,
                    lse,
                    shape.scale > 0.0f ? shape.scale : 1.0f / std::sqrt(static_cast<float>(shape.head_dim)),
                    packed_k,
                    packed_v,
                    partials};

  const int64_t chunks = plan.num_chunks;
  // Each task leaves its state in its partial slot (several chunks) or in its thread's scratch, from
  // which it writes the final rows at once (one chunk).
  const auto task_state = [&](int64_t tile, int64_t chunk, int thread) {
    return chunks > 1
               ? state_at(partials + (tile * chunks + chunk) * plan.state_floats, plan)
               : state_at(thread_base + thread * plan.thread_floats + plan.pack_floats + plan.scratch_floats,
                          plan);
  };
  // Later query tiles see more keys under causal limits: hand them out first so the longest tasks do not
  // end up last.
  const auto tile_of = [&](int64_t task) { return plan.num_tiles - 1 - task / chunks; };

  if (plan.tiles) {
    if (plan.values_in_place && shape.num_keys % kKeyStrip != 0) {
      const int64_t full_strips_end = shape.num_keys / kKeyStrip * kKeyStrip;
      pack_values(ctx, full_strips_end, full_strips_end + kKeyStrip, packed_v);
    }
    if (plan.shared_pack) {
      // Only keys some query sees are packed.
      const int64_t pack_end = round_up(*std::max_element(key_limit.begin(), key_limit.end()), kKeyStrip);
      constexpr int64_t kKeysPerPackTask = 512;
      pool.parallel_for(ceil_div(pack_end, kKeysPerPackTask), [&](int64_t t, int) {
        const int64_t begin = t * kKeysPerPackTask;
        const int64_t end = std::min(pack_end, begin + kKeysPerPackTask);
        pack_key_strips(ctx, begin, end, packed_k + begin * shape.head_dim);
        if (!plan.values_in_place) pack_values(ctx, begin, end, packed_v + begin * plan.dim_padded);
      });
    }
    const AttentionTileOps& tile_ops = select_tile_ops();
    pool.parallel_for(plan.num_tiles * chunks, [&](int64_t task, int thread) {
      const int64_t tile = tile_of(task);
      const State st = task_state(tile, task % chunks, thread);
      run_tile(ctx, tile_ops, tile, task % chunks, thread_base + thread * plan.thread_floats, st);
      if (chunks > 1) return;
      const int64_t j0 = tile * plan.tile_rows;
      for (int64_t i = 0; i < std::min(plan.tile_rows, shape.num_queries - j0); ++i)
        finish_row(ctx, j0 + i, st.acc + i * plan.dim_padded, st.m[i], st.l[i]);
    });
  } else {
    const auto row_task = [&](int64_t task, int thread) {
      const int64_t j = tile_of(task);
      const State st = task_state(j, task % chunks, thread);
      run_row(ctx, j, task % chunks, thread_base + thread * plan.thread_floats, st);
      if (chunks == 1) finish_row(ctx, j, st.acc, *st.m, *st.l);
    };
    // A decode step over at most kRowChunkKeys keys is one task: run here, it skips the loop's setup (a
    // std::function, which may allocate), a noticeable part of a short cache's attention.
    if (plan.num_tiles * chunks == 1) {
      row_task(0, 0);
    } else {
      pool.parallel_for(plan.num_tiles * chunks, row_task);
    }
  }
  if (chunks > 1) pool.parallel_for(plan.num_tiles, [&](int64_t tile, int) { combine_tile(ctx, tile); });
  return absl::OkStatus();
}

}  // namespace longnet::kernels::cpu
