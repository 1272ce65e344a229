#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "longnet/model/cross_attention.h"
#include "longnet/model/kv_cache.h"
#include "longnet/model/layers.h"
#include "longnet/model/self_attention.h"
#include "longnet/model/weights.h"

// A LongNet model assembled from a model directory: longnet_decoder, longnet_encoder or
// longnet_encoder_decoder (MODEL_FORMAT.md "Forward pass"). Two ways through it:
//   - decoder side, incremental: a Sequence holds the bounded dilated KV cache; forward() takes chunks of
//     new tokens of any number of sequences (a prefill chunk, or one token per decode step), stacked so
//     the projections run as one GEMM, and returns logits or hidden states for them. A whole-sequence
//     decoder forward is chunked prefill: memory stays bounded by the chunk and the cache.
//   - encoder side, block-wise: encode() runs the non-causal encoder over blocks that no segment of any
//     branch crosses, each through all layers, handing every block's final-LN states to a callback.
namespace longnet::model {

class CudaGraph;

// One sequence's decoding state. After a failed forward() the state is undefined: drop the sequence.
class Sequence {
 public:
  int64_t length() const { return cache_.length(); }  // positions consumed
  const DilatedKvCache& cache() const { return cache_; }
  size_t nbytes()
      const;  // the cache plus the cross-attention memory (and the encoder's output while pending)
  // Encoder-decoder sequences from start_sequence_deferred: source positions encode_source has yet to
  // encode. The sequence decodes once this is 0.
  int64_t source_pending() const { return source_pending_; }

 private:
  friend class LongNetModel;
  friend class CudaGraph;
  explicit Sequence(DilatedKvCache cache) : cache_(std::move(cache)) {}
  DilatedKvCache cache_;
  std::vector<Tensor> cross_keys_;  // per decoder layer, encoder-decoder only
  std::vector<Tensor> cross_values_;
  std::vector<int32_t> source_ids_;  // while the source is encoded block by block
  Tensor encoder_output_;            // source rows x encoder embed_dim, filled as blocks are encoded
  int64_t source_pending_ = 0;
};

struct DecodeChunk {
  Sequence* sequence = nullptr;
  std::span<const int32_t> ids;  // the next tokens of the sequence (positions sequence->length()...)
};

enum class DecoderOutput {
  kLogits,           // vocab_size floats for every row of every chunk
  kLastLogits,       // vocab_size floats for the last row of each chunk only
  kHidden,           // embed_dim floats (final layer norm's output) for every row
  kHiddenAndLogits,  // embed_dim + vocab_size floats for every row: the hidden state, then the logits
};

class LongNetModel {
 public:
  // Loads and validates the directory; weights live in `allocator`, which must outlive the model.
  static absl::StatusOr<std::unique_ptr<LongNetModel>> load(const std::filesystem::path& dir,
                                                            Allocator& allocator);
  // A model from weights already in memory; every Linear's weight is packed into panels in `allocator`.
  static absl::StatusOr<std::unique_ptr<LongNetModel>> assemble(ModelDirectory directory,
                                                                Allocator& allocator);

  const ModelConfig& config() const { return dir_.config; }
  const std::filesystem::path& path() const { return dir_.path; }
  // Runs the graph on a CUDA device from now on (cuda_graph.h): the weights are copied into `device`, a
  // CUDA allocator that must outlive the model, which then also holds every sequence's cache and every
  // activation; outputs still arrive in host memory. Call it before starting any sequence.
  // FailedPrecondition in a build without the CUDA backend or for a CPU allocator.
  absl::Status to_cuda(Allocator& device);
  Device device() const;
  // Where sequences' caches and cross-attention memories live: the device's pool once the model is on a
  // CUDA device, `ctx`'s allocator otherwise. Admission control charges caches there.
  Allocator& cache_allocator(const ExecContext& ctx) const;

  bool has_decoder() const { return dir_.config.decoder.has_value(); }
  bool has_encoder() const { return dir_.config.encoder.has_value(); }
  int64_t vocab_size() const { return dir_.config.vocab_size; }
  int64_t output_dim(DecoderOutput what) const;

  // --- decoder side (longnet_decoder, longnet_encoder_decoder) ---
  // A new sequence; encoder-decoder models run the encoder on `source_ids` here (required, non-empty).
  // `max_positions` > 0 caps the sequence's length (and so its cache), 0 leaves it unbounded.
  absl::StatusOr<std::unique_ptr<Sequence>> start_sequence(const ExecContext& ctx,
                                                           std::span<const int32_t> source_ids = {},
                                                           int64_t max_positions = 0) const;
  // start_sequence with the encoder's work left for encode_source(), so that a serving engine can spread a
  // long source over several steps. Same checks; decoder-only models: the same as start_sequence.
  absl::StatusOr<std::unique_ptr<Sequence>> start_sequence_deferred(const ExecContext& ctx,
                                                                    std::span<const int32_t> source_ids,
                                                                    int64_t max_positions = 0) const;
  // Encodes the next encoder blocks of the sequence's pending source: at least one, and as many more as
  // fit in `max_tokens` positions; after the last it projects the cross-attention memory. Returns the
  // positions encoded (0 when nothing is pending). After an error the sequence is undefined: drop it.
  absl::StatusOr<int64_t> encode_source(const ExecContext& ctx, Sequence& sequence, int64_t max_tokens) const;
  // Bytes a new sequence's cache takes (without the cross-attention memory).
  size_t sequence_cache_bytes(int64_t max_positions = 0) const;
  // Runs the chunks' tokens through the decoder, filling their caches, and writes the requested output
  // rows (chunk after chunk) to `out`. Ids are checked before any cache changes.
  absl::Status forward(const ExecContext& ctx, std::span<const DecodeChunk> chunks, DecoderOutput what,
                       float* out) const;

  // Runs one sequence's `ids` through forward() `chunk` tokens at a time (chunked prefill; chunk 1 is
  // token-by-token decoding) and hands each call's output to `on_rows`: (first id of the call, its
  // number of ids, output rows as forward() writes them). Activations stay bounded by the chunk.
  using RowsCallback = std::function<absl::Status(int64_t first, int64_t rows, const float* out)>;
  absl::Status forward_chunked(const ExecContext& ctx, Sequence& sequence, std::span<const int32_t> ids,
                               int64_t chunk, DecoderOutput what, const RowsCallback& on_rows) const;

  // --- encoder side (longnet_encoder, and the encoder of longnet_encoder_decoder) ---
  using BlockCallback =
      std::function<absl::Status(int64_t first_position, int64_t rows, const float* hidden)>;
  // Final-LN hidden states of `ids`, block by block (rows x embed_dim each, positions in order).
  absl::Status encode(const ExecContext& ctx, std::span<const int32_t> ids,
                      const BlockCallback& on_block) const;
  // The block length encode() uses for an input of n tokens: the largest segment length when every
  // segment length divides it (no segment crosses a block), else n.
  int64_t encoder_block_length(int64_t n) const;

 private:
  friend class CudaGraph;
  struct Layer {
    Norm self_attn_norm;
    DilatedSelfAttention self_attn;
    std::optional<CrossAttention> cross_attn;
    FeedForward ffn;
  };
  struct Stack {
    StackConfig sizes;
    const float* embed_tokens = nullptr;
    float embed_scale = 1.0f;
    std::vector<Layer> layers;
    Norm final_norm;
  };

  explicit LongNetModel(ModelDirectory dir) : dir_(std::move(dir)) {}
  Stack build_stack(const StackConfig& sizes, const std::string& prefix, bool with_cross_attention) const;
  // encode() over the blocks of `ids` that start in [begin, end) (begin on a block boundary).
  absl::Status encode_range(const ExecContext& ctx, std::span<const int32_t> ids, int64_t begin, int64_t end,
                            const BlockCallback& on_block) const;
  absl::Status embed(const ExecContext& ctx, const Stack& stack, std::span<const int32_t> ids,
                     float* x) const;

  ModelDirectory dir_;
  std::optional<Stack> encoder_;
  std::optional<Stack> decoder_;
  Linear lm_head_;                   // decoder only
  std::shared_ptr<CudaGraph> cuda_;  // set by to_cuda()
};

}  // namespace longnet::model
