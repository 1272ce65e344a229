#pragma once

#include <string_view>

#include <grpcpp/support/status.h>

// gRPC status codes by name -- "OK", "INVALID_ARGUMENT", ... -- for the server's metrics and access log and
// the clients' error messages: part of the API library, so every side spells them the same way.
namespace longnet::api {

std::string_view grpc_code_name(grpc::StatusCode code);

}  // namespace longnet::api
