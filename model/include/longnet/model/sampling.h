#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace longnet::model {

// How one sequence picks its next token from the logits. Applied in this order (as Hugging Face does):
// repetition penalty, temperature, top-k, top-p, then a draw.
struct SamplingParams {
  float temperature = 1.0f;  // 0: greedy (argmax, lowest id on a tie); otherwise logits / temperature
  int32_t top_k = 0;         // keep the k most likely ids; 0: off (k beyond the vocabulary keeps all)
  float top_p = 1.0f;        // keep the smallest most-likely set whose probability reaches p; 1: off
  // CTRL-style, over every distinct id of the history (prompt + generated): a positive logit is divided
  // by it, a negative one multiplied, so > 1 discourages repeats. 1: off.
  float repetition_penalty = 1.0f;
  uint64_t seed = 0;
  std::vector<int32_t> stop_ids;  // generation ends after one of these is sampled (see Sampler::is_stop)

  // InvalidArgument naming the field and its value: temperature negative or not finite, top_k negative,
  // top_p outside (0, 1] or NaN, repetition_penalty <= 0 or not finite, a stop id negative or (when
  // vocab_size > 0) not below vocab_size.
  absl::Status validate(int64_t vocab_size = 0) const;
};

// The sampler of one sequence. It owns its random stream: the draw for step t is a pure function of
// (seed, t), a counter-based generator (SplitMix64 of the seed and t), so a sequence gets the same tokens
// from the same seed and logits however it is batched, whatever other sequences do, and even when
// restarted at step t (set_step) after preemption. Not thread-safe; one per sequence.
class Sampler {
 public:
  // `params` must be valid (validate()); create() checks.
  static absl::StatusOr<Sampler> create(SamplingParams params);

  // The next token for `logits` (one per vocabulary id) given the ids so far. Each successful call
  // advances the step by one, greedy or not. -inf logits are never chosen; +inf logits share all the
  // probability. Errors: Internal for a NaN logit (named by id) or every logit -inf (the model's
  // numerics failed); InvalidArgument for empty logits or a history id outside [0, logits.size()).
  // Cost O(V + history + n log n) per call for n kept ids: top-k and top-p are selections (nth_element,
  // a quickselect on probability mass), never a sort of the whole vocabulary.
  absl::StatusOr<int32_t> sample(std::span<const float> logits, std::span<const int32_t> history);

  bool is_stop(int32_t id) const;

  const SamplingParams& params() const { return params_; }
  uint64_t step() const { return step_; }
  void set_step(uint64_t step) { step_ = step; }

  // The uniform number in [0, 1) that step `step` of a sampler seeded `seed` draws (53 random bits).
  static double uniform(uint64_t seed, uint64_t step);

 private:
  explicit Sampler(SamplingParams params) : params_(std::move(params)) {}

  SamplingParams params_;
  uint64_t step_ = 0;
  // Scratch reused across calls (no allocation per token once warm).
  std::vector<double> logits_;
  std::vector<double> probabilities_;
  std::vector<int32_t> candidates_;
  std::vector<uint8_t> seen_;
};

}  // namespace longnet::model
