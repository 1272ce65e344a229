#include "api/info_service.h"

#include <algorithm>

#include "longnet/model/device_select.h"

#ifndef LONGNET_VERSION
#define LONGNET_VERSION "unknown"
#endif

namespace longnet::server {
namespace {

v1::ModelType to_proto(model::ModelType type) {
  switch (type) {
    case model::ModelType::kDecoder:
      return v1::MODEL_TYPE_DECODER;
    case model::ModelType::kEncoder:
      return v1::MODEL_TYPE_ENCODER;
    case model::ModelType::kEncoderDecoder:
      return v1::MODEL_TYPE_ENCODER_DECODER;
  }
  return v1::MODEL_TYPE_UNSPECIFIED;
}

}  // namespace

std::string_view server_version() {
  return LONGNET_VERSION;
}

v1::GetInfoResponse describe_server(const ApiContext& api) {
  v1::GetInfoResponse info;
  const ServerConfig& c = api.config;
  const model::ModelConfig& mc = api.loaded.model->config();
  const model::Tokenizer& tokenizer = *api.loaded.tokenizer;

  v1::ModelInfo* m = info.mutable_model();
  m->set_name(api.loaded.name);
  m->set_type(to_proto(mc.model_type));
  m->set_vocab_size(mc.vocab_size);
  const model::StackConfig& main_stack = mc.decoder ? *mc.decoder : *mc.encoder;
  m->set_embed_dim(main_stack.embed_dim);
  m->set_attention_heads(main_stack.attention_heads);
  m->set_layers(main_stack.layers);
  m->set_encoder_layers(mc.encoder ? mc.encoder->layers : 0);
  for (const auto& branch : mc.branches) {
    v1::DilatedBranch* b = m->add_branches();
    b->set_segment_length(branch.segment_length);
    b->set_dilation(branch.dilation);
  }
  m->set_dtype("float32");  // weights are converted to float32 at load; every kernel computes in it
  m->set_tokenizer(std::string(tokenizer.kind()));
  m->set_bos_id(tokenizer.bos_id());
  m->set_eos_id(tokenizer.eos_id());
  m->set_pad_id(tokenizer.pad_id());
  const int64_t generation_context = mc.decoder ? c.max_prompt_tokens + c.max_new_tokens : 0;
  m->set_max_context_tokens(std::max(generation_context, c.max_document_tokens));
  m->set_xpos(mc.xpos_rel_pos);

  v1::BuildInfo* build = info.mutable_build();
  build->set_version(std::string(server_version()));
  build->set_cuda_compiled(model::cuda_backend_built());

  info.set_device(api.loaded.device);

  v1::ServerLimits* l = info.mutable_limits();
  l->set_max_queue_requests(c.max_queue_requests);
  l->set_max_queue_tokens(c.max_queue_tokens);
  l->set_max_batch_sequences(c.max_batch_sequences);
  l->set_max_batch_tokens(c.max_batch_tokens);
  l->set_max_message_bytes(c.max_message_bytes);
  l->set_max_prompt_tokens(c.max_prompt_tokens);
  l->set_max_new_tokens(c.max_new_tokens);
  l->set_max_document_tokens(c.max_document_tokens);
  l->set_max_batch_documents(c.max_batch_documents);
  l->set_max_stop_sequences(c.max_stop_sequences);
  l->set_max_stop_sequence_bytes(c.max_stop_sequence_bytes);
  l->set_max_top_logprobs(c.max_top_logprobs);
  l->set_memory_budget_bytes(c.memory_budget_mb * 1024 * 1024);
  l->set_max_document_bytes(api.limits.max_document_bytes());
  return info;
}

grpc::Status InfoService::GetInfo(grpc::ServerContext* context, const v1::GetInfoRequest* /*request*/,
                                  v1::GetInfoResponse* response) {
  CallGuard guard(api_.state, *context, "GetInfo");
  if (!guard.admitted()) return guard.finish(guard.admission());
  *response = describe_server(api_);
  return guard.finish(grpc::Status::OK);
}

}  // namespace longnet::server
