#pragma once

#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "longnet/model/layers.h"

namespace longnet::model {

// The encoder-decoder's dense cross-attention (no XPOS, no sub-LN, not causal):
//   residual += out_proj(Attn(q = q_proj(LN_c(residual)), k = k_proj(memory), v = v_proj(memory)))
// where memory is the encoder's final-LN output. Keys and values of the memory are projected once per
// sequence (project_memory) and reused by every decoding step.
class CrossAttention {
 public:
  // `prefix` is the decoder layer's ("decoder.layers.3.").
  static CrossAttention from(const ModelWeights& weights, const ModelConfig& config, const StackConfig& stack,
                             const std::string& prefix);

  absl::Status project_memory(const ExecContext& ctx, int64_t memory_rows, const float* memory, Tensor* keys,
                              Tensor* values) const;
  absl::Status add_to(const ExecContext& ctx, int64_t rows, float* residual, const Tensor& keys,
                      const Tensor& values) const;

 private:
  friend class CudaGraph;  // the device graph reads the weights
  Norm norm_;
  Linear q_proj_, k_proj_, v_proj_, out_proj_;
  int64_t heads_ = 0;
  int64_t head_dim_ = 0;
  int64_t embed_dim_ = 0;
};

}  // namespace longnet::model
