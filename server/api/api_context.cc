#include "api/api_context.h"

#include <utility>

namespace longnet::server {

RequestLimits request_limits(const ServerConfig& config) {
  RequestLimits limits;
  limits.max_prompt_tokens = config.max_prompt_tokens;
  limits.max_new_tokens = config.max_new_tokens;
  limits.max_document_tokens = config.max_document_tokens;
  limits.max_batch_documents = config.max_batch_documents;
  limits.max_stop_sequences = config.max_stop_sequences;
  limits.max_stop_sequence_bytes = config.max_stop_sequence_bytes;
  limits.max_top_logprobs = config.max_top_logprobs;
  limits.max_message_bytes = config.max_message_bytes;
  return limits;
}

EngineLimits engine_limits(const ServerConfig& config) {
  EngineLimits limits;
  limits.max_queue_requests = config.max_queue_requests;
  limits.max_queue_tokens = config.max_queue_tokens;
  limits.max_batch_sequences = config.max_batch_sequences;
  limits.max_batch_tokens = config.max_batch_tokens;
  limits.encode_chunk_tokens = config.encode_chunk_tokens;
  return limits;
}

ApiContext::ApiContext(const ServerConfig& server_config, ApiKeys keys, Metrics* server_metrics)
    : config(server_config),
      limits(request_limits(server_config)),
      metrics(server_metrics),
      state(std::move(keys), server_metrics),
      uploads(static_cast<size_t>(server_config.memory_budget_mb) * (size_t{1} << 20) / 4) {}

std::vector<int32_t> ApiContext::tokenize(std::string_view text) const {
  return loaded.tokenizer->encode(text);
}

}  // namespace longnet::server
