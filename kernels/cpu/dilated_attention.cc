#include "longnet/kernels/dilated_attention.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "cpu/attention_tile.h"
#include "cpu/cpu_features.h"

// The fast CPU path. Branches run one after another; inside a branch, a task is one (sequence, head,
// segment): it packs that head's visible keys and values of the segment (at most ceil(w/r) rows) into
// thread-private panels, then walks the segment's visible queries in tiles with an online softmax, and
// merges each finished row into the output by LSE weights. No task touches another task's (row, head)
// pairs, so the merge needs no locks; the work per segment is fixed by (w, r), so it is linear in N.
namespace longnet::kernels::cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int64_t kAlignFloats = 16;  // 64 bytes

int64_t round_up(int64_t a, int64_t m) {
  return (a + m - 1) / m * m;
}

// Asks for the cache lines of `floats` floats at p. Rows of one head are scattered over the whole
// sequence (r rows apart), so the hardware prefetcher does not see them coming.
void prefetch_floats(const float* p, int64_t floats) {
  for (int64_t i = 0; i < floats; i += 16)
    __builtin_prefetch(p + i);
}

struct Panels {
  int64_t max_visible = 0;  // the most visible rows any (branch, head, segment) can have
  int64_t dim_padded = 0;   // head_dim rounded up to whole key strips (value and output rows)

  int64_t k_floats(int64_t head_dim) const { return round_up(max_visible, kKeyStrip) * head_dim; }
  int64_t v_floats() const { return round_up(max_visible, kKeyStrip) * dim_padded; }
  int64_t per_thread(int64_t head_dim) const {
    return round_up(k_floats(head_dim), kAlignFloats) + round_up(v_floats(), kAlignFloats) +
           round_up(kQueryTile * head_dim, kAlignFloats) + kQueryTile * kKeyBlock + kQueryTile * dim_padded;
  }
};

Panels panel_geometry(const DilatedAttentionShape& shape, const DilatedAttentionParams& params) {
  Panels p;
  p.dim_padded = round_up(shape.head_dim, kKeyStrip);
  int64_t longest = 0;
  for (int64_t len : shape.seq_lens)
    longest = std::max(longest, len);
  for (const DilatedBranch& br : params.branches) {
    if (br.segment_length < 1 || br.dilation < 1) continue;  // invalid: validation reports it
    p.max_visible =
        std::max(p.max_visible, ceil_div(effective_segment_length(br.segment_length, longest), br.dilation));
  }
  return p;
}

// One (sequence, head, segment) of a branch.
struct SegmentTask {
  int64_t seq = 0;
  int64_t head = 0;
  int64_t segment = 0;
};

struct Context {
  const DilatedAttentionShape& shape;
  const AttentionTileOps& ops;
  const float* q;
  const float* k;
  const float* v;
  float* out;
  float* lse;
  float scale;
  bool causal;
  Panels panels;
};

// Writes (first branch) or LSE-merges one finished row of one head into out/lse.
void merge_row(const Context& ctx, int64_t row, int64_t head, const float* acc, float m, float l,
               bool first_branch) {
  const int64_t dim = ctx.shape.head_dim;
  float* o = ctx.out + row * ctx.shape.out_stride + head * dim;
  float& total = ctx.lse[row * ctx.shape.num_heads + head];
  const float branch_lse = m + std::log(l);
  const float inv_l = 1.0f / l;
  if (first_branch || total == kNegInf) {
    for (int64_t d = 0; d < dim; ++d)
      o[d] = acc[d] * inv_l;
    total = branch_lse;
    return;
  }
  const float new_total = std::max(total, branch_lse);
  const float w_old = std::exp(total - new_total);
  const float w_new = std::exp(branch_lse - new_total);
  const float norm = 1.0f / (w_old + w_new);
  for (int64_t d = 0; d < dim; ++d)
    o[d] = (o[d] * w_old + acc[d] * inv_l * w_new) * norm;
  total = new_total + std::log(w_old + w_new);
}

void run_segment(const Context& ctx, const DilatedBranch& branch, const SegmentTask& task, float* scratch,
                 bool first_branch) {
  const DilatedAttentionShape& shape = ctx.shape;
  const int64_t dim = shape.head_dim;
  const int64_t dim_padded = ctx.panels.dim_padded;
  const int64_t start = shape.seq_starts[static_cast<size_t>(task.seq)];
  const int64_t len = shape.seq_lens[static_cast<size_t>(task.seq)];
  const int64_t w = effective_segment_length(branch.segment_length, len);
  const int64_t r = branch.dilation;
  const int64_t offset = head_offset(task.head, shape.num_heads, r);
  const int64_t seg_begin = task.segment * w;
  const int64_t visible = visible_count(std::min(w, len - seg_begin), r, offset);
  if (visible == 0) return;
  // Row of the j-th visible token of this segment for this head.
  const auto row_of = [&](int64_t j) { return start + seg_begin + offset + j * r; };
  const int64_t col = task.head * dim;

  float* k_strips = scratch;
  float* v_rows = k_strips + round_up(ctx.panels.k_floats(dim), kAlignFloats);
  float* q_tile = v_rows + round_up(ctx.panels.v_floats(), kAlignFloats);
  float* scores = q_tile + round_up(kQueryTile * dim, kAlignFloats);
  float* acc = scores + kQueryTile * kKeyBlock;

  // Keys go into strips (see attention_tile.h), written strip by strip so the stores stay sequential;
  // values into rows padded to dim_padded. Padding keys are zero (their scores are masked anyway).
  constexpr int64_t kPrefetchRows = 8;
  const int64_t visible_padded = round_up(visible, kKeyStrip);
  for (int64_t j0 = 0; j0 < visible_padded; j0 += kKeyStrip) {
    float* strip = k_strips + j0 * dim;
    for (int64_t c = 0; c < kKeyStrip; ++c) {
      const int64_t j = j0 + c;
      float* vr = v_rows + j * dim_padded;
      if (j + kPrefetchRows < visible) {
        prefetch_floats(ctx.k + row_of(j + kPrefetchRows) * shape.k_stride + col, dim);
        prefetch_floats(ctx.v + row_of(j + kPrefetchRows) * shape.v_stride + col, dim);
      }
      if (j < visible) {
        const float* kr = ctx.k + row_of(j) * shape.k_stride + col;
        for (int64_t d = 0; d < dim; ++d)
          strip[d * kKeyStrip + c] = kr[d];
        std::copy_n(ctx.v + row_of(j) * shape.v_stride + col, dim, vr);
        std::fill(vr + dim, vr + dim_padded, 0.0f);
      } else {
        for (int64_t d = 0; d < dim; ++d)
          strip[d * kKeyStrip + c] = 0.0f;
        std::fill(vr, vr + dim_padded, 0.0f);
      }
    }
  }

  std::array<float, kQueryTile> m{};
  std::array<float, kQueryTile> l{};
  std::array<int64_t, kQueryTile> limit{};
  for (int64_t j0 = 0; j0 < visible; j0 += kQueryTile) {
    const int64_t rows = std::min<int64_t>(kQueryTile, visible - j0);
    const int64_t rows_padded = round_up(rows, kMicroRows);
    for (int64_t i = 0; i < rows_padded; ++i) {
      float* qr = q_tile + i * dim;
      if (i < rows) {
        const float* src = ctx.q + row_of(j0 + i) * shape.q_stride + col;
        for (int64_t d = 0; d < dim; ++d)
          qr[d] = src[d] * ctx.scale;
      } else {
        std::fill(qr, qr + dim, 0.0f);
      }
    }
    // The next tile's queries and this tile's output rows arrive while this tile computes.
    for (int64_t i = 0; i < std::min<int64_t>(kQueryTile, visible - j0 - rows); ++i) {
      prefetch_floats(ctx.q + row_of(j0 + rows + i) * shape.q_stride + col, dim);
    }
    for (int64_t i = 0; i < rows; ++i)
      prefetch_floats(ctx.out + row_of(j0 + i) * shape.out_stride + col, dim);
    std::fill(m.begin(), m.end(), kNegInf);
    std::fill(l.begin(), l.end(), 0.0f);
    std::fill(acc, acc + rows_padded * dim_padded, 0.0f);

    const int64_t key_end = ctx.causal ? j0 + rows : visible;
    for (int64_t kb = 0; kb < key_end; kb += kKeyBlock) {
      const int64_t strips = ceil_div(std::min<int64_t>(kKeyBlock, key_end - kb), kKeyStrip);
      for (int64_t i = 0; i < rows_padded; ++i) {
        limit[static_cast<size_t>(i)] = i < rows ? (ctx.causal ? j0 + i + 1 : visible) - kb : 0;
      }
      ctx.ops.scores(q_tile, rows_padded, dim, k_strips + kb * dim, strips, scores, kKeyBlock);
      ctx.ops.softmax_step(scores, rows_padded, strips * kKeyStrip, kKeyBlock, limit.data(), m.data(),
                           l.data(), acc, dim_padded);
      ctx.ops.accumulate_values(scores, rows_padded, strips * kKeyStrip, kKeyBlock, v_rows + kb * dim_padded,
                                acc, dim_padded);
    }
    for (int64_t i = 0; i < rows; ++i) {
      merge_row(ctx, row_of(j0 + i), task.head, acc + i * dim_padded, m[static_cast<size_t>(i)],
                l[static_cast<size_t>(i)], first_branch);
    }
  }
}

const AttentionTileOps& select_tile_ops() {
  if (has_avx512()) return attention_tile_ops_avx512();
  if (has_avx2_fma()) return attention_tile_ops_avx2();
  return attention_tile_ops_generic();
}

// Without an r = 1 branch some (row, head) pairs may be covered by no branch: they must read 0 / -inf.
void clear_outputs(const Context& ctx, ThreadPool& pool) {
  const DilatedAttentionShape& shape = ctx.shape;
  pool.parallel_for(static_cast<int64_t>(shape.seq_lens.size()), [&](int64_t b, int) {
    const int64_t start = shape.seq_starts[static_cast<size_t>(b)];
    for (int64_t t = start; t < start + shape.seq_lens[static_cast<size_t>(b)]; ++t) {
      std::fill_n(ctx.out + t * shape.out_stride, shape.num_heads * shape.head_dim, 0.0f);
      std::fill_n(ctx.lse + t * shape.num_heads, shape.num_heads, kNegInf);
    }
  });
}

}  // namespace

int64_t dilated_attention_workspace_floats(const DilatedAttentionShape& shape,
                                           const DilatedAttentionParams& params, int num_threads) {
  return round_up(panel_geometry(shape, params).per_thread(shape.head_dim), kAlignFloats) *
             std::max(num_threads, 1) +
         kAlignFloats;
}

absl::Status dilated_attention(const DilatedAttentionShape& shape, const DilatedAttentionParams& params,
                               const float* q, const float* k, const float* v,
                               float* out,  // NOLINT(readability-non-const-parameter): written via Context
                               float* lse,  // NOLINT(readability-non-const-parameter): written via Context
                               std::span<float> workspace, ThreadPool& pool) {
  if (absl::Status st = validate_dilated_attention(shape, params); !st.ok()) return st;
  const int64_t needed = dilated_attention_workspace_floats(shape, params, pool.num_threads());
  if (static_cast<int64_t>(workspace.size()) < needed) {
    return absl::InvalidArgumentError(absl::StrCat("workspace holds ", workspace.size(), " floats; ", needed,
                                                   " are needed for ", pool.num_threads(), " threads"));
  }
  const Context ctx{shape,
                    select_tile_ops(),
                    q,
                    k,
                    v,
                    out,
                    lse,
                    params.scale > 0.0f ? params.scale : 1.0f / std::sqrt(static_cast<float>(shape.head_dim)),
                    params.causal,
                    panel_geometry(shape, params)};
  // Scratch slices start on 64-byte boundaries.
  float* base = workspace.data();
  base += (kAlignFloats - (reinterpret_cast<uintptr_t>(base) / sizeof(float)) % kAlignFloats) % kAlignFloats;
  const int64_t slice = round_up(ctx.panels.per_thread(shape.head_dim), kAlignFloats);

  // A branch with r = 1 covers every (row, head): run it first and let it write instead of merge.
  std::vector<DilatedBranch> order = params.branches;
  const auto dense =
      std::find_if(order.begin(), order.end(), [](const DilatedBranch& b) { return b.dilation == 1; });
  const bool first_writes = dense != order.end();
  if (first_writes) {
    std::rotate(order.begin(), dense, dense + 1);
  } else {
    clear_outputs(ctx, pool);
  }

  std::vector<SegmentTask> tasks;
  for (size_t i = 0; i < order.size(); ++i) {
    const DilatedBranch& branch = order[i];
    tasks.clear();
    for (size_t b = 0; b < shape.seq_lens.size(); ++b) {
      const int64_t len = shape.seq_lens[b];
      if (len == 0) continue;
      const int64_t segments = num_segments(len, effective_segment_length(branch.segment_length, len));
      for (int64_t h = 0; h < shape.num_heads; ++h) {
        for (int64_t s = 0; s < segments; ++s)
          tasks.push_back({static_cast<int64_t>(b), h, s});
      }
    }
    const bool first_branch = first_writes && i == 0;
    pool.parallel_for(static_cast<int64_t>(tasks.size()), [&](int64_t t, int thread) {
      run_segment(ctx, branch, tasks[static_cast<size_t>(t)], base + thread * slice, first_branch);
    });
  }
  return absl::OkStatus();
}

}  // namespace longnet::kernels::cpu
