// longnet-cli generate [options] PROMPT...: the prompt's continuation, printed as the tokens arrive.
#include <cstdio>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "commands.h"
#include "connection.h"
#include "longnet/v1/generate.grpc.pb.h"

namespace longnet::client {

namespace {

// The sampling flags that were given, into the request's optional fields.
absl::Status read_parameters(const cli::Args& args, v1::GenerationParameters& p) {
  if (args.has("max-new-tokens")) {
    absl::StatusOr<int64_t> v = args.get_int("max-new-tokens", 0);
    if (!v.ok()) return v.status();
    if (*v < 1 || *v > UINT32_MAX) return absl::InvalidArgumentError("--max-new-tokens: must be >= 1");
    p.set_max_new_tokens(static_cast<uint32_t>(*v));
  }
  for (const auto& [flag, setter] :
       {std::pair<const char*, void (v1::GenerationParameters::*)(float)>{
            "temperature", &v1::GenerationParameters::set_temperature},
        {"top-p", &v1::GenerationParameters::set_top_p},
        {"repetition-penalty", &v1::GenerationParameters::set_repetition_penalty}}) {
    if (!args.has(flag)) continue;
    absl::StatusOr<double> v = args.get_double(flag, 0);
    if (!v.ok()) return v.status();
    (p.*setter)(static_cast<float>(*v));
  }
  if (args.has("top-k")) {
    absl::StatusOr<int64_t> v = args.get_int("top-k", 0);
    if (!v.ok()) return v.status();
    if (*v < 0 || *v > INT32_MAX) return absl::InvalidArgumentError("--top-k: must be >= 0");
    p.set_top_k(static_cast<int32_t>(*v));
  }
  if (args.has("seed")) {
    absl::StatusOr<int64_t> v = args.get_int("seed", 0);
    if (!v.ok()) return v.status();
    if (*v < 0) return absl::InvalidArgumentError("--seed: must be >= 0");
    p.set_seed(static_cast<uint64_t>(*v));
  }
  if (args.has("stop")) p.add_stop(args.get("stop", ""));
  p.set_ignore_eos(args.has("ignore-eos"));
  return absl::OkStatus();
}

}  // namespace

int run_generate(const std::vector<std::string>& argv) {
  std::set<std::string> flags = connection_flags();
  flags.insert({"max-new-tokens", "temperature", "top-k", "top-p", "repetition-penalty", "seed", "stop"});
  std::set<std::string> switches = connection_switches();
  switches.insert("ignore-eos");
  absl::StatusOr<cli::Args> args = cli::Args::parse(argv, flags, switches, /*positional=*/true);
  if (!args.ok()) {
    std::fprintf(stderr, "longnet-cli generate: %s\n", std::string(args.status().message()).c_str());
    return kExitUsage;
  }
  absl::StatusOr<Connection> connection = read_connection(*args);
  v1::GenerateRequest request;
  absl::Status st =
      connection.ok() ? read_parameters(*args, *request.mutable_parameters()) : connection.status();
  if (st.ok() && args->positional().empty())
    st = absl::InvalidArgumentError("no prompt: give it as arguments");
  if (!st.ok()) {
    std::fprintf(stderr, "longnet-cli generate: %s\n", std::string(st.message()).c_str());
    return kExitUsage;
  }
  request.set_text(absl::StrJoin(args->positional(), " "));

  auto stub = v1::GenerationService::NewStub(open_channel(*connection));
  std::unique_ptr<grpc::ClientContext> context = call_context(*connection);
  std::unique_ptr<grpc::ClientReader<v1::GenerateStreamResponse>> reader =
      stub->GenerateStream(context.get(), request);
  v1::GenerateStreamResponse message;
  v1::GenerateStreamResponse last;
  while (reader->Read(&message)) {
    std::fwrite(message.text().data(), 1, message.text().size(), stdout);
    std::fflush(stdout);
    if (message.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) last = message;
  }
  const grpc::Status status = reader->Finish();
  std::fputc('\n', stdout);
  if (!status.ok()) {
    std::fprintf(stderr, "longnet-cli: %s\n", describe_failure("GenerateStream", status).c_str());
    return kExitRpcFailed;
  }
  std::fprintf(stderr, "[finish_reason=%s prompt_tokens=%u generated_tokens=%u seed=%llu]\n",
               v1::FinishReason_Name(last.finish_reason()).c_str(), last.usage().prompt_tokens(),
               last.usage().generated_tokens(), static_cast<unsigned long long>(last.seed()));
  return kExitOk;
}

}  // namespace longnet::client
