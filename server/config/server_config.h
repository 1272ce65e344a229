#pragma once

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

// longnet-server's settings: command-line flags, each mirrored by a LONGNET_* environment variable, and an
// optional config file. All three are read through one table of flags (server_config.cc), so the help text,
// the environment names, the file keys and the documentation cannot disagree.
namespace longnet::server {

struct ServerConfig {
  std::string model_dir;                 // --model DIR; empty = the embedded demo model (found by the caller)
  std::string host = "0.0.0.0";          // --host
  int port = 50051;                      // --port (1..65535)
  int metrics_port = 9090;               // --metrics-port (0 = no metrics endpoint)
  std::string metrics_host = "0.0.0.0";  // --metrics-host
  int threads = 0;                       // --threads (0 = all cores)
  std::string device = "auto";           // --device auto|cpu|cuda|cuda:N (validated by the caller)
  int64_t max_queue_requests = 256;      // --max-queue-requests
  int64_t max_queue_tokens = 4194304;    // --max-queue-tokens
  int64_t max_batch_sequences = 64;      // --max-batch-sequences
  int64_t max_batch_tokens = 512;        // --max-batch-tokens (per engine step: chunked-prefill budget)
  int64_t encode_chunk_tokens = 2048;    // --encode-chunk-tokens
  int64_t max_prompt_tokens = 1048576;   // --max-prompt-tokens
  int64_t max_new_tokens = 4096;         // --max-new-tokens
  int64_t max_document_tokens = 2097152;  // --max-document-tokens
  int64_t max_batch_documents = 64;       // --max-batch-documents
  int64_t max_stop_sequences = 16;        // --max-stop-sequences
  int64_t max_stop_sequence_bytes = 256;  // --max-stop-sequence-bytes
  int64_t max_top_logprobs = 20;          // --max-top-logprobs
  int64_t max_message_bytes = 16777216;   // --max-message-bytes (largest request message received)
  int64_t memory_budget_mb = 8192;        // --memory-budget-mb (the memory pool's budget)
  std::string tls_cert;                   // --tls-cert PEM file (TLS on when set, with --tls-key)
  std::string tls_key;                    // --tls-key
  std::string tls_client_ca;              // --tls-client-ca: mutual TLS, client certificates required
  std::string api_key_file;               // --api-key-file: one key per line (# comments, blank lines)
  double drain_timeout_seconds = 30;      // --drain-timeout (seconds, >= 0)
  std::string log_format = "text";        // --log-format text|json
  std::string log_level = "info";         // --log-level trace|debug|info|warn|error
  std::string config_file;                // --config FILE
};

struct ParsedConfig {
  ServerConfig config;
  bool help = false;  // --help / -h was given: print server_config_help() and exit 0
};

// argv[0] is the program name. Precedence: command-line flag > environment variable > config file > default.
// Environment: each flag --foo-bar is mirrored by LONGNET_FOO_BAR (e.g. LONGNET_PORT, LONGNET_API_KEY_FILE,
// LONGNET_CONFIG for --config); a variable set to the empty string counts as unset. `getenv` is injectable
// for tests. Errors are InvalidArgument (NotFound for a missing config file) naming the flag, variable or
// file:line and the bad value.
absl::StatusOr<ParsedConfig> parse_server_config(
    int argc, const char* const* argv, const std::function<const char*(const char*)>& getenv = ::getenv);

// LONGNET_* variables in `environment` (NAME=value strings, as `environ`; null-terminated) that mirror no
// flag and that the server does not read otherwise (LONGNET_CPU_ISA, the kernels' ISA cap): most likely
// typos, which the parser would skip without a word. main() logs a warning naming each.
std::vector<std::string> unknown_environment_variables(const char* const* environment);

// The --help text: usage, every flag with its environment variable, default and meaning.
std::string server_config_help();

// Reads a file that the configuration names (config file, API key file, PEM files). NotFound when it cannot
// be opened or read, InvalidArgument when it is a directory; messages start with `what` and the path, e.g.
// `API key file "/etc/keys": cannot open it (No such file or directory)`.
absl::StatusOr<std::string> read_config_text_file(std::string_view what, const std::string& path);

// The flags as a Markdown table (flag, environment variable, default, meaning): the one in docs/server.md,
// which a test keeps equal to this.
std::string server_config_markdown_table();

}  // namespace longnet::server
