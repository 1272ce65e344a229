// longnet-cli tokenize TEXT..., info, health: one unary call each, the answer as JSON (health: its status).
#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <set>

#include "absl/strings/str_join.h"
#include "commands.h"
#include "connection.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "longnet/v1/info.grpc.pb.h"
#include "longnet/v1/tokenize.grpc.pb.h"

namespace longnet::client {

namespace {

// Parses a command's flags; nullopt after printing the error.
std::optional<std::pair<cli::Args, Connection>> parse(const char* command,
                                                      const std::vector<std::string>& argv,
                                                      std::set<std::string> flags,
                                                      std::set<std::string> switches, bool positional) {
  flags.insert(connection_flags().begin(), connection_flags().end());
  switches.insert(connection_switches().begin(), connection_switches().end());
  absl::StatusOr<cli::Args> args = cli::Args::parse(argv, flags, switches, positional);
  absl::StatusOr<Connection> connection = args.ok() ? read_connection(*args) : args.status();
  if (!connection.ok()) {
    std::fprintf(stderr, "longnet-cli %s: %s\n", command, std::string(connection.status().message()).c_str());
    return std::nullopt;
  }
  return std::pair{*std::move(args), *std::move(connection)};
}

int print_json(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  std::fputs(json.c_str(), stdout);
  if (json.empty() || json.back() != '\n') std::fputc('\n', stdout);
  return kExitOk;
}

int failed(const char* rpc, const grpc::Status& status) {
  std::fprintf(stderr, "longnet-cli: %s\n", describe_failure(rpc, status).c_str());
  return kExitRpcFailed;
}

}  // namespace

int run_tokenize(const std::vector<std::string>& argv) {
  auto parsed = parse("tokenize", argv, {}, {"add-special-tokens"}, /*positional=*/true);
  if (!parsed) return kExitUsage;
  const auto& [args, connection] = *parsed;
  v1::TokenizeRequest request;
  request.set_text(absl::StrJoin(args.positional(), " "));
  request.set_add_special_tokens(args.has("add-special-tokens"));
  v1::TokenizeResponse response;
  auto stub = v1::TokenizerService::NewStub(open_channel(connection));
  const grpc::Status status = stub->Tokenize(call_context(connection).get(), request, &response);
  return status.ok() ? print_json(response) : failed("Tokenize", status);
}

int run_info(const std::vector<std::string>& argv) {
  auto parsed = parse("info", argv, {}, {}, /*positional=*/false);
  if (!parsed) return kExitUsage;
  const Connection& connection = parsed->second;
  v1::GetInfoResponse response;
  auto stub = v1::InfoService::NewStub(open_channel(connection));
  const grpc::Status status = stub->GetInfo(call_context(connection).get(), v1::GetInfoRequest(), &response);
  return status.ok() ? print_json(response) : failed("GetInfo", status);
}

// Prints the service's status (grpc.health.v1); exit 0 only for SERVING. Health needs no API key.
int run_health(const std::vector<std::string>& argv) {
  auto parsed = parse("health", argv, {"service"}, {}, /*positional=*/false);
  if (!parsed) return kExitUsage;
  const auto& [args, connection] = *parsed;
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(args.get("service", ""));
  grpc::health::v1::HealthCheckResponse response;
  auto stub = grpc::health::v1::Health::NewStub(open_channel(connection));
  const grpc::Status status = stub->Check(call_context(connection).get(), request, &response);
  if (!status.ok()) return failed("Health/Check", status);
  std::printf("%s\n", grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status()).c_str());
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? kExitOk : kExitNotServing;
}

}  // namespace longnet::client
