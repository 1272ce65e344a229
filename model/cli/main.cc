// longnet-run: run a LongNet model directory from the command line (no server).
#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"

namespace {

constexpr const char* kUsage = R"(usage: longnet-run COMMAND [options]

commands:
  forward  --model DIR --tokens FILE.json --out FILE.npy [--decode]
           logits (decoders, encoder-decoders) or final-LN hidden states (encoders) as float32 .npy
           (B, Lmax, F), zero past each sequence's length
  generate --model DIR --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P]
           [--repetition-penalty R] [--seed S]
           prints the generated text
  encode   --model DIR --input FILE [--pooling mean|first|last] [--progress]
           prints the pooled final-LN hidden state of the file's text as a JSON list
  score    --model DIR --input FILE
           bits per byte (and per token) of the file's text under a decoder model, as JSON

common options:
  --model DIR   model directory (config.json + model.safetensors); default: the embedded demo model
  --threads N   worker threads (default: LONGNET_THREADS, else every core)
)";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  const std::vector<std::string> rest(argv + 2, argv + argc);
  absl::Status status;
  if (command == "forward") {
    status = longnet::cli::run_forward(rest);
  } else if (command == "generate") {
    status = longnet::cli::run_generate(rest);
  } else if (command == "encode") {
    status = longnet::cli::run_encode(rest);
  } else if (command == "score") {
    status = longnet::cli::run_score(rest);
  } else {
    std::fprintf(stderr, "longnet-run: unknown command '%s'\n\n%s", command.c_str(), kUsage);
    return 2;
  }
  if (!status.ok()) {
    std::fprintf(stderr, "longnet-run %s: %s\n", command.c_str(), status.ToString().c_str());
    return 1;
  }
  return 0;
}
