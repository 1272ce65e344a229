// longnet-cli: the command-line client of longnet-server (the longnet.v1 gRPC API). See --help.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "commands.h"
#include "connection.h"

namespace {

void print_help() {
  std::printf(
      "usage: longnet-cli COMMAND [options] [arguments]\n\n"
      "commands:\n"
      "  generate PROMPT...      stream the prompt's continuation to stdout as it is generated\n"
      "      --max-new-tokens N  --temperature T (0 = greedy)  --top-k K  --top-p P\n"
      "      --repetition-penalty R  --seed S  --stop TEXT  --ignore-eos\n"
      "  encode FILE...          upload each UTF-8 file by EncodeStream (progress on stderr) and print one "
      "JSON\n"
      "                          line per file with its pooled vector\n"
      "      --pooling mean|first|last|none (default mean)  --normalize  --truncate none|left|right\n"
      "      --max-tokens N  --output FILE.json|FILE.npy (.npy: files x embed_dim float32)\n"
      "      --piece-bytes N (default 256 KiB)  --no-progress\n"
      "  score FILE...           the same upload, printing log-likelihood and bits per byte (decoder "
      "models)\n"
      "  tokenize TEXT...        token ids and pieces as JSON  (--add-special-tokens)\n"
      "  info                    the model, the server's limits and build, as JSON\n"
      "  health                  grpc.health.v1 status of --service NAME (default \"\": the server)\n\n"
      "options of every command:\n%s\n"
      "exit codes: 0 success; 1 the call failed (the message names the gRPC status, e.g. \"GenerateStream\n"
      "failed: INVALID_ARGUMENT: ...\"); 2 bad options, arguments or files; 3 health: not SERVING.\n",
      std::string(longnet::client::connection_help()).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0 ||
      std::strcmp(argv[1], "help") == 0) {
    print_help();
    return argc < 2 ? longnet::client::kExitUsage : longnet::client::kExitOk;
  }
  const std::string command = argv[1];
  const std::vector<std::string> rest(argv + 2, argv + argc);
  using Run = int (*)(const std::vector<std::string>&);
  const std::pair<const char*, Run> commands[] = {
      {"generate", longnet::client::run_generate}, {"encode", longnet::client::run_encode},
      {"score", longnet::client::run_score},       {"tokenize", longnet::client::run_tokenize},
      {"info", longnet::client::run_info},         {"health", longnet::client::run_health}};
  for (const auto& [name, run] : commands) {
    if (command == name) return run(rest);
  }
  std::fprintf(stderr, "longnet-cli: unknown command '%s' (see longnet-cli --help)\n", command.c_str());
  return longnet::client::kExitUsage;
}
