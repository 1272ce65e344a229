#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

// Log-probabilities from one row of logits: of the model's own distribution (before temperature, top-k/top-p
// and the repetition penalty), computed in float64. longnet-run score and the server's scoring and logprobs
// use these.
namespace longnet::model {

// ln sum exp(logits): the normaliser of the row (finite for any row with a finite logit).
double log_sum_exp(std::span<const float> logits);

// ln p(id) of the row.
double log_probability(std::span<const float> logits, int32_t id);

// The `n` most likely ids with their ln p, most likely first (ties: lower id first). n is clamped to the
// row's size.
std::vector<std::pair<int32_t, float>> top_log_probabilities(std::span<const float> logits, int32_t n);

}  // namespace longnet::model
