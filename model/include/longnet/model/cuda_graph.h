#pragma once

// The model graph on a CUDA device. LongNetModel::to_cuda() builds one; the model's forward(),
// start_sequence() and encode() then run here, while their checks and the sequences' bookkeeping (positions,
// segments, entry counts and XPOS centres of the caches) stay on the host, shared with the CPU graph
// (kv_cache.h). Weights are copied to the device once; activations and the KV caches live in the device
// pool; every step is a kernel of kernels/cuda or a cuBLAS product, queued on the legacy default stream
// (the one the device pool orders its allocations on). Outputs come back to host memory. CUDA builds only.
//
// What it is not yet: fast. Each (chunk, branch, segment piece, head) of a decode step is its own
// prefix-attention launch with its own copies, where one launch per branch over the whole batch would do;
// see docs/gpu.md ("The model graph on the device"). Nothing here has run on a GPU in this repository's CI
// (there is none); tests/gpu/model_gpu_test.cc compares it with the CPU graph where a device exists.
#if defined(LONGNET_WITH_CUDA)

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "longnet/kernels/activation.h"
#include "longnet/kernels/cuda_gemm.h"
#include "longnet/model/layers.h"
#include "longnet/model/model.h"

namespace longnet::model {

class CudaGraph {
 public:
  // Copies every weight the graph reads into `device` (a CUDA allocator), which must outlive the graph.
  static absl::StatusOr<std::unique_ptr<CudaGraph>> create(const LongNetModel& model, Allocator& device);
  ~CudaGraph();
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  Allocator& allocator() const { return device_; }

  // LongNetModel::forward after its checks: `views` index the rows of `ids` (all chunks stacked); the
  // caches (device memory) are filled, their counts and segments updated, but not advanced.
  absl::Status forward(const ExecContext& ctx, std::span<const DecodeChunk> chunks,
                       std::span<const SequenceChunk> views, std::span<const int32_t> ids, DecoderOutput what,
                       float* out);
  // LongNetModel::encode_range: the encoder over the blocks of `ids` that start in [begin, end), `block`
  // rows at a time; hidden rows reach `on_block` in host memory.
  absl::Status encode(const ExecContext& ctx, std::span<const int32_t> ids, int64_t begin, int64_t end,
                      int64_t block, const LongNetModel::BlockCallback& on_block);
  // The same, the hidden rows written into `out` (device memory, row p at out + p * embed_dim).
  absl::Status encode_into(const ExecContext& ctx, std::span<const int32_t> ids, int64_t begin, int64_t end,
                           int64_t block, float* out);
  // An encoder-decoder sequence's cross-attention memory: the encoder's output (`rows` rows, device
  // memory) projected by every decoder layer's k_proj and v_proj into device tensors of the cache pool.
  absl::Status project_cross_memory(const ExecContext& ctx, const float* memory, int64_t rows,
                                    std::vector<Tensor>* keys, std::vector<Tensor>* values);

 private:
  struct Linear {
    const float* weight = nullptr;
    const float* bias = nullptr;
    int64_t in_features = 0;
    int64_t out_features = 0;
  };
  struct Norm {
    const float* gamma = nullptr;
    const float* beta = nullptr;
    int64_t dim = 0;
    float eps = 1e-5f;
  };
  struct FeedForward {
    Norm norm;
    Linear fc1, fc2;
    std::optional<Norm> inner_norm;
    kernels::Activation activation = kernels::Activation::kGelu;
  };
  struct SelfAttention {
    const DilatedSelfAttention* host = nullptr;  // branches, heads, XPOS constants and limits
    Linear q_proj, k_proj, v_proj, out_proj;
    std::optional<Norm> inner_norm;
  };
  struct CrossAttention {
    Norm norm;
    Linear q_proj, k_proj, v_proj, out_proj;
  };
  struct Layer {
    Norm self_attn_norm;
    SelfAttention self_attn;
    std::optional<CrossAttention> cross_attn;
    FeedForward ffn;
  };
  struct Stack {
    const LongNetModel::Stack* host = nullptr;
    const float* embed_tokens = nullptr;
    std::vector<Layer> layers;
    Norm final_norm;
  };

  CudaGraph(const LongNetModel& model, Allocator& device);
  absl::Status build();
  // Every public call starts here: makes the pool's device current on the calling thread (the engine
  // calls from its own threads) and takes the call's activations from ctx.device_allocator if set.
  absl::Status enter(const ExecContext* ctx);

  // Weights: the device copy of `n` host floats at `host`, made on first use (tied weights share one).
  absl::StatusOr<const float*> upload(const float* host, int64_t n);
  absl::StatusOr<Linear> mirror(const model::Linear& l);
  absl::StatusOr<Norm> mirror(const model::Norm& n);
  absl::StatusOr<Stack> mirror(const LongNetModel::Stack& s);

  // Device scratch: rows x cols floats, or raw bytes (ids, key limits).
  absl::StatusOr<Tensor> scratch(int64_t rows, int64_t cols) const;
  absl::StatusOr<PoolBuffer> scratch_bytes(size_t bytes) const;

  // The ops (cuda_graph_ops.cc). x, y: device rows `ld` floats apart.
  absl::Status linear(const Linear& l, int64_t rows, const float* x, int64_t ldx, float* y, int64_t ldy);
  absl::Status linear_add(const Linear& l, int64_t rows, const float* x, float* y);  // y += x W^T + b
  absl::Status norm(const Norm& n, int64_t rows, const float* x, float* y);
  absl::Status feed_forward(const FeedForward& f, int64_t rows, float* x);
  absl::Status embed(const Stack& s, std::span<const int32_t> ids, float* x);
  absl::Status fill(float* x, int64_t n, float value);

  // Attention (cuda_graph_attention.cc).
  absl::Status self_attention_cached(const ExecContext& ctx, const SelfAttention& a,
                                     std::span<const SequenceChunk> views, int64_t layer, int64_t total,
                                     const float* x_normed, float* x);
  absl::Status attend_chunk(const ExecContext& ctx, const SelfAttention& a, const SequenceChunk& chunk,
                            int64_t layer, const float* q, const float* k, const float* v, float* acc,
                            float* acc_lse);
  absl::Status attend_piece(const SelfAttention& a, BranchKv& kv, int64_t branch, int64_t segment_start,
                            int64_t piece_begin, int64_t n, const float* q, const float* k, const float* v,
                            float* acc, float* acc_lse);
  absl::Status self_attention_block(const ExecContext& ctx, const SelfAttention& a, int64_t rows,
                                    int64_t first_position, const float* x_normed, float* x);
  absl::Status apply_xpos(const ExecContext& ctx, const SelfAttention& a, int64_t rows,
                          int64_t first_position, int64_t centre, float* q, float* k);
  absl::Status recentre_keys(const SelfAttention& a, BranchKv& kv, int64_t new_centre);
  absl::Status cross_attention(const CrossAttention& a, int64_t rows, float* x, const Tensor& keys,
                               const Tensor& values);

  // encode()'s loop; each block's final-LN rows (device memory) go to `on_block`.
  using DeviceBlockCallback = std::function<absl::Status(int64_t first, int64_t rows, const float* hidden)>;
  absl::Status encode_device(const ExecContext& ctx, std::span<const int32_t> ids, int64_t begin, int64_t end,
                             int64_t block, const DeviceBlockCallback& on_block);
  absl::Status write_output(std::span<const SequenceChunk> views, int64_t total, const float* xn,
                            DecoderOutput what, float* out);

  const LongNetModel& model_;
  Allocator& device_;
  std::unique_ptr<kernels::cuda::Blas> blas_;
  std::map<const float*, PoolBuffer> weights_;  // host address -> device copy
  std::optional<Stack> encoder_;
  std::optional<Stack> decoder_;
  Linear lm_head_;
  std::mutex mutex_;                  // one call at a time: the cuBLAS handle is not shared between threads
  Allocator* activations_ = nullptr;  // the current call's scratch: device_ or the caller's wrapper of it
};

}  // namespace longnet::model

#endif  // LONGNET_WITH_CUDA
