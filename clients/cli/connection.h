#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "cli_args.h"

// How longnet-cli reaches the server: target, TLS, API key and deadline, from options every command takes.
namespace longnet::client {

// Exit codes of longnet-cli.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRpcFailed = 1;   // the server (or the connection) answered with an error status
inline constexpr int kExitUsage = 2;       // bad flags or arguments, unreadable files
inline constexpr int kExitNotServing = 3;  // `health`: the service is not SERVING

struct Connection {
  std::string target = "localhost:50051";
  bool tls = false;
  std::string ca_cert;      // PEM contents (empty: the system's roots)
  std::string client_cert;  // PEM contents, with client_key: mutual TLS
  std::string client_key;
  std::string server_name;  // TLS name override
  std::string api_key;      // sent as `authorization: Bearer KEY`
  double timeout_s = 600;
};

// Value flags and switches every command takes, for cli::Args::parse.
const std::set<std::string>& connection_flags();
const std::set<std::string>& connection_switches();
// Usage text of those options.
std::string_view connection_help();

// Reads the options: --target, --tls, --ca-cert FILE, --client-cert FILE, --client-key FILE,
// --server-name NAME, --api-key KEY, --api-key-file FILE (first line), else the environment's
// LONGNET_API_KEY, and --timeout SECONDS. Errors name the option and, for files, the path.
absl::StatusOr<Connection> read_connection(const cli::Args& args);

std::shared_ptr<grpc::Channel> open_channel(const Connection& connection);
// A context for one call: the deadline and the API key.
std::unique_ptr<grpc::ClientContext> call_context(const Connection& connection);

// "Generate failed: INVALID_ARGUMENT: parameters.top_p: ..." for stderr.
std::string describe_failure(std::string_view rpc, const grpc::Status& status);

}  // namespace longnet::client
