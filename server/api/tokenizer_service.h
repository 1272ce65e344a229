#pragma once

#include <grpcpp/grpcpp.h>

#include "api/api_context.h"
#include "longnet/v1/tokenize.grpc.pb.h"

// longnet.v1.TokenizerService: the model's tokenizer, as prompts and documents are tokenized.
namespace longnet::server {

class TokenizerService final : public v1::TokenizerService::Service {
 public:
  explicit TokenizerService(ApiContext& api) : api_(api) {}

  grpc::Status Tokenize(grpc::ServerContext* context, const v1::TokenizeRequest* request,
                        v1::TokenizeResponse* response) override;
  grpc::Status Detokenize(grpc::ServerContext* context, const v1::DetokenizeRequest* request,
                          v1::DetokenizeResponse* response) override;

 private:
  ApiContext& api_;
};

}  // namespace longnet::server
