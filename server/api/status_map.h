#pragma once

#include <string_view>

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "longnet/api/status_names.h"

// The one table from absl status codes (what validation and the engine return) to gRPC status codes. The
// two enumerations share their numbering, so the mapping is 1:1 and keeps the message.
namespace longnet::server {

grpc::Status to_grpc(const absl::Status& status);

// "OK", "INVALID_ARGUMENT", ...: the label of the requests metric and of the access log.
using api::grpc_code_name;

}  // namespace longnet::server
