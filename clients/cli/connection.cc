#include "connection.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>

#include "absl/strings/str_cat.h"
#include "longnet/api/status_names.h"

namespace longnet::client {

namespace {

absl::StatusOr<std::string> read_file(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("--", flag, ": cannot read '", path, "'"));
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

const std::set<std::string>& connection_flags() {
  static const std::set<std::string> flags = {"target",      "ca-cert", "client-cert",  "client-key",
                                              "server-name", "api-key", "api-key-file", "timeout"};
  return flags;
}

const std::set<std::string>& connection_switches() {
  static const std::set<std::string> switches = {"tls"};
  return switches;
}

std::string_view connection_help() {
  return "  --target HOST:PORT      the server (default localhost:50051)\n"
         "  --tls                   TLS (implied by --ca-cert / --client-cert)\n"
         "  --ca-cert FILE          PEM roots to trust (default: the system's)\n"
         "  --client-cert FILE      PEM certificate for mutual TLS, with --client-key FILE\n"
         "  --server-name NAME      the name the server's certificate must carry\n"
         "  --api-key KEY           sent as `authorization: Bearer KEY` (else --api-key-file FILE, else\n"
         "                          the environment variable LONGNET_API_KEY)\n"
         "  --timeout SECONDS       deadline of each call (default 600)\n";
}

absl::StatusOr<Connection> read_connection(const cli::Args& args) {
  Connection c;
  c.target = args.get("target", c.target);
  if (c.target.empty()) return absl::InvalidArgumentError("--target: empty");
  absl::StatusOr<double> timeout = args.get_double("timeout", c.timeout_s);
  if (!timeout.ok()) return timeout.status();
  if (!(*timeout > 0) || !std::isfinite(*timeout)) {
    return absl::InvalidArgumentError(absl::StrCat("--timeout: ", *timeout, " is not a positive number"));
  }
  c.timeout_s = *timeout;
  for (const auto& [flag, field] :
       {std::pair{"ca-cert", &c.ca_cert}, std::pair{"client-cert", &c.client_cert},
        std::pair{"client-key", &c.client_key}}) {
    if (!args.has(flag)) continue;
    absl::StatusOr<std::string> pem = read_file(flag, args.get(flag, ""));
    if (!pem.ok()) return pem.status();
    *field = *std::move(pem);
  }
  if (c.client_cert.empty() != c.client_key.empty()) {
    return absl::InvalidArgumentError("--client-cert and --client-key go together");
  }
  c.server_name = args.get("server-name", "");
  c.tls = args.has("tls") || !c.ca_cert.empty() || !c.client_cert.empty();
  if (args.has("api-key")) {
    c.api_key = args.get("api-key", "");
  } else if (args.has("api-key-file")) {
    absl::StatusOr<std::string> text = read_file("api-key-file", args.get("api-key-file", ""));
    if (!text.ok()) return text.status();
    c.api_key = text->substr(0, text->find_first_of("\r\n"));
  } else if (const char* env = std::getenv("LONGNET_API_KEY"); env != nullptr) {
    c.api_key = env;
  }
  return c;
}

std::shared_ptr<grpc::Channel> open_channel(const Connection& c) {
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(-1);  // pooled vectors and token states of long documents
  if (!c.server_name.empty()) arguments.SetSslTargetNameOverride(c.server_name);
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (c.tls) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = c.ca_cert;
    ssl.pem_cert_chain = c.client_cert;
    ssl.pem_private_key = c.client_key;
    credentials = grpc::SslCredentials(ssl);
  }
  return grpc::CreateCustomChannel(c.target, credentials, arguments);
}

std::unique_ptr<grpc::ClientContext> call_context(const Connection& c) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::duration_cast<std::chrono::system_clock::duration>(
                            std::chrono::duration<double>(c.timeout_s)));
  if (!c.api_key.empty()) context->AddMetadata("authorization", "Bearer " + c.api_key);
  return context;
}

std::string describe_failure(std::string_view rpc, const grpc::Status& status) {
  return absl::StrCat(std::string(rpc), " failed: ", std::string(api::grpc_code_name(status.error_code())),
                      ": ", status.error_message());
}

}  // namespace longnet::client
