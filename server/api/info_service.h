#pragma once

#include <grpcpp/grpcpp.h>

#include "api/api_context.h"
#include "longnet/v1/info.grpc.pb.h"

// longnet.v1.InfoService: the model, the build, the device and every limit a client must respect.
namespace longnet::server {

class InfoService final : public v1::InfoService::Service {
 public:
  explicit InfoService(ApiContext& api) : api_(api) {}

  grpc::Status GetInfo(grpc::ServerContext* context, const v1::GetInfoRequest* request,
                       v1::GetInfoResponse* response) override;

 private:
  ApiContext& api_;
};

// The response, from what the server loaded and its configuration (GetInfo without the call around it).
v1::GetInfoResponse describe_server(const ApiContext& api);

// The server's version (the CMake project version).
std::string_view server_version();

}  // namespace longnet::server
