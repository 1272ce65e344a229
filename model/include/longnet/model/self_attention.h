#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "longnet/kernels/dilated_schedule.h"
#include "longnet/kernels/xpos.h"
#include "longnet/model/kv_cache.h"
#include "longnet/model/layers.h"

namespace longnet::model {

// A run of consecutive positions of one sequence inside a batch's stacked rows: rows
// [row_begin, row_begin + rows) hold positions [first_position, first_position + rows) of the sequence
// whose cache is `cache`.
struct SequenceChunk {
  int64_t row_begin = 0;
  int64_t rows = 0;
  int64_t first_position = 0;
  DilatedKvCache* cache = nullptr;
};

// LongNet's dilated multi-head self-attention (LONGNET.md) with XPOS and sub-LN:
//   residual += out_proj(SubLN(DilatedAttn(XPOS(q), XPOS(k), v)))
// for an input that is already layer-normed.
//
// XPOS and float range. Only q'.k' matters, and it carries scale^((t - u) / base), but q and k are scaled
// separately around a centre c (q by scale^((t-c)/base), k by scale^((c-u)/base)), and either factor
// leaves float range once |t - c| reaches some 30,000 positions. So every branch keeps its own centre: the
// start of its current segment, moved forward (and the cached keys rescaled) whenever the queries run
// more than kXposRecentre positions past it. Keys then only ever shrink (u < c) or grow by at most
// scale^(-(kXposRecentre + chunk)/base); a key that shrinks below float range contributes ~1e-38 of its
// true weight, which is what it is worth.
class DilatedSelfAttention {
 public:
  static constexpr int64_t kXposRecentre = 4096;
  // Chunks of at most this many rows are attended side by side, one per task: decode tokens, and short
  // prompts starting together (32 prompts of 25 tokens, base-shaped model: 1101-1259 ms a step against
  // 1199-1410 with 16 here, where each went alone with its small loops split over the threads).
  static constexpr int64_t kShortChunkRows = 64;

  // `prefix` is the layer's ("layers.3." or "decoder.layers.3.").
  static DilatedSelfAttention from(const ModelWeights& weights, const ModelConfig& config,
                                   const StackConfig& stack, const std::string& prefix);

  // Causal attention of the chunks' rows through their caches (layer `layer` of each), which it fills.
  // x_normed and residual are rows x E for all chunks stacked; residual += the block's output.
  absl::Status forward_cached(const ExecContext& ctx, std::span<const SequenceChunk> chunks, int64_t layer,
                              const float* x_normed, float* residual) const;

  // Non-causal attention over one block of `rows` positions starting at `first_position`, every branch's
  // segments lying inside it (an encoder's block). residual += the output.
  absl::Status forward_block(const ExecContext& ctx, int64_t rows, int64_t first_position,
                             const float* x_normed, float* residual) const;

  // Longest block forward_block takes with XPOS on. Non-causal attention pairs a query with keys up to a
  // block away on either side, and the exact score then carries scale^(-(u - t)/base), which for a key far
  // after the query exceeds float32 range (the paper's scales: 1e69 at 65,536 positions). The limit keeps
  // max_j scale_j^(-block/base) <= 1e18, leaving 1e20 for |q||k|: 16,939 positions for torchscale's
  // default scales. Longer non-causal XPOS blocks are refused, never computed wrongly.
  int64_t xpos_max_block() const { return xpos_max_block_; }

 private:
  friend class CudaGraph;  // the device graph reads the weights and the schedule, and runs the same steps
  struct TokenScratch;     // a decode step's buffers, one set per thread (self_attention.cc)

  // A one-row chunk (a decode step); attend_chunk takes the longer ones.
  absl::Status attend_token(const ExecContext& ctx, const SequenceChunk& chunk, int64_t layer, const float* q,
                            const float* k, const float* v, float* acc, float* acc_lse,
                            const TokenScratch& scratch) const;
  absl::Status attend_token_head(const ExecContext& ctx, BranchKv& kv, int64_t head, const float* q,
                                 const float* k, const float* v, const float* q_scale, const float* k_scale,
                                 const TokenScratch& scratch, float* acc, float* acc_lse) const;
  absl::Status attend_chunk(const ExecContext& ctx, const SequenceChunk& chunk, int64_t layer, const float* q,
                            const float* k, const float* v, float* acc, float* acc_lse) const;
  absl::Status attend_piece(const ExecContext& ctx, BranchKv& kv, int64_t branch, int64_t segment_start,
                            int64_t piece_begin, int64_t piece_rows, const float* q, const float* k,
                            const float* v, float* acc, float* acc_lse) const;
  void project_qkv(const ExecContext& ctx, int64_t rows, const float* x_normed, float* q, float* k,
                   float* v) const;
  absl::Status apply_xpos(const ExecContext& ctx, int64_t rows, int64_t first_position, int64_t centre,
                          float* q, float* k) const;
  void recentre_keys(BranchKv& kv, int64_t new_centre) const;

  Linear q_proj_, k_proj_, v_proj_, out_proj_;
  std::optional<Norm> inner_norm_;
  std::span<const float> xpos_scale_;  // empty without XPOS
  kernels::XposPairConstants xpos_constants_;
  absl::Status xpos_status_;  // a scale buffer validate_xpos refuses: every forward returns this
  double xpos_scale_base_ = 512.0;
  int64_t xpos_max_block_ = 0;
  std::vector<kernels::DilatedBranch> branches_;
  int64_t heads_ = 0;
  int64_t head_dim_ = 0;
  int64_t embed_dim_ = 0;
};

}  // namespace longnet::model
