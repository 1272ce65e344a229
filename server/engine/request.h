#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "longnet/model/pooling.h"
#include "longnet/model/sampling.h"

// What the engine is asked to do, and what it hands back: plain types, no gRPC. The service layer turns
// validated protobuf requests into these and these into responses.
namespace longnet::server {

using Clock = std::chrono::steady_clock;

// Why a generation ended. kStopSequence is decided by the caller (it matches text); the engine reports
// the others.
enum class FinishReason { kNone, kLength, kEos, kStopToken, kStopSequence, kCancelled };

struct GenerationJob {
  std::string request_id;
  std::vector<int32_t> source_ids;  // encoder-decoder models: the encoder's input (non-empty)
  std::vector<int32_t> prompt_ids;  // decoder input: the prompt (decoder models) or [bos] (encoder-decoder)
  int64_t max_new_tokens = 64;
  model::SamplingParams sampling;  // stop_ids: eos (unless ignore_eos) and the request's stop ids
  int32_t eos_id = -1;             // to tell kEos from kStopToken; -1 when eos is ignored
  bool logprobs = false;
  int32_t top_logprobs = 0;
  Clock::time_point deadline = Clock::time_point::max();
};

using Pooling = model::Pooling;  // mean, first, last or none

struct EncodeJob {
  std::string request_id;
  std::vector<int32_t> ids;  // the document, already truncated to the limit (non-empty)
  Pooling pooling = Pooling::kMean;
  bool normalize = false;
  bool score = false;                  // decoder models: log-likelihood of ids[1..] given what precedes
  bool return_token_states = false;    // stream final-LN states of every token
  bool return_token_logprobs = false;  // stream ln p(token) of every token (needs score)
  Clock::time_point deadline = Clock::time_point::max();
};

// Seconds since the request was accepted (submit), for each stage reached; negative = not reached.
struct StageTimes {
  double admitted = -1;     // left the queue, cache allocated
  double prefilled = -1;    // prompt / document fully processed
  double first_token = -1;  // generation: first token sampled
  double finished = -1;
};

struct TokenEvent {
  int32_t id = 0;
  float logprob = 0.0f;                        // when asked: ln p(id) under the model's distribution
  std::vector<std::pair<int32_t, float>> top;  // when asked: most likely first
};

// Rows [first, first + rows) of an encoded document.
struct TokenRows {
  int64_t first = 0;
  int64_t rows = 0;
  std::vector<float> states;    // rows x embed_dim when return_token_states
  std::vector<float> logprobs;  // rows when return_token_logprobs (position 0: 0)
};

struct EncodeOutcome {
  std::vector<float> pooled;  // embed_dim floats unless Pooling::kNone
  double log_likelihood = 0;  // natural log, when score
  int64_t scored_tokens = 0;
  int64_t tokens = 0;
};

}  // namespace longnet::server
