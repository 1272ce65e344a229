#pragma once

#include <grpcpp/security/server_credentials.h>

#include <memory>

#include "absl/status/statusor.h"
#include "config/server_config.h"

namespace longnet::server {

// Insecure credentials when config.tls_cert is empty; TLS from PEM files otherwise; mutual TLS (client
// certificate required and verified against tls_client_ca) when tls_client_ca is set. The files are read
// and checked here, so a bad setup fails at start naming the flag and file: NotFound for a file that cannot
// be read, InvalidArgument for one that holds no usable PEM, for an encrypted key, or for a key that does not
// belong to the certificate.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> make_server_credentials(const ServerConfig& config);

}  // namespace longnet::server
