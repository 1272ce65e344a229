#pragma once

#include <grpcpp/grpcpp.h>

#include "api/api_context.h"
#include "longnet/v1/generate.grpc.pb.h"

// longnet.v1.GenerationService: validate -> tokenize -> engine -> detokenize incrementally -> stop strings
// -> the client, one message per token (GenerateStream) or all at once (Generate).
namespace longnet::server {

class GenerationService final : public v1::GenerationService::Service {
 public:
  explicit GenerationService(ApiContext& api) : api_(api) {}

  grpc::Status Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                        v1::GenerateResponse* response) override;
  grpc::Status GenerateStream(grpc::ServerContext* context, const v1::GenerateRequest* request,
                              grpc::ServerWriter<v1::GenerateStreamResponse>* writer) override;

 private:
  ApiContext& api_;
};

}  // namespace longnet::server
