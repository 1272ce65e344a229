#include "config/server_config.h"

#include <fmt/format.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "observability/logging.h"

namespace longnet::server {
namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr double kMaxDrainSeconds = 86400;  // a day: far past any grace period, and safe to turn into chrono

// Stores a textual value into its field. An error's message is what was expected ("an integer from 1 to
// 65535"); the caller adds where the value came from and the value itself.
using Setter = std::function<absl::Status(ServerConfig&, std::string_view)>;
using Getter = std::function<std::string(const ServerConfig&)>;

struct Flag {
  std::string_view name;          // without the leading "--"; also the config file key
  std::string_view value_name;    // placeholder shown in the help: PORT, DIR, ...
  std::string_view help;          // one sentence or two, no trailing newline
  std::string_view default_note;  // shown instead of the default value when set
  Setter set;
  Getter get;
};

absl::Status expected(std::string_view what) {
  return absl::InvalidArgumentError(std::string(what));
}

std::optional<int64_t> parse_int(std::string_view text) {
  int64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || text.empty()) return std::nullopt;
  return value;
}

template <typename T>
Flag integer_flag(std::string_view name, std::string_view value_name, T ServerConfig::*field, int64_t min,
                  int64_t max, std::string_view help, std::string_view default_note = {}) {
  return Flag{name,
              value_name,
              help,
              default_note,
              [field, min, max](ServerConfig& config, std::string_view text) {
                const std::optional<int64_t> value = parse_int(text);
                if (!value || *value < min || *value > max) {
                  return max == kInt64Max ? expected(fmt::format("an integer >= {}", min))
                                          : expected(fmt::format("an integer from {} to {}", min, max));
                }
                config.*field = static_cast<T>(*value);
                return absl::OkStatus();
              },
              [field](const ServerConfig& config) { return fmt::format("{}", config.*field); }};
}

// `check` (may be null) validates the text; it returns the expectation on failure.
Flag string_flag(std::string_view name, std::string_view value_name, std::string ServerConfig::*field,
                 std::string_view help, std::string_view default_note = {},
                 std::function<absl::Status(std::string_view)> check = nullptr) {
  return Flag{name,
              value_name,
              help,
              default_note,
              [field, check](ServerConfig& config, std::string_view text) {
                if (check) {
                  if (absl::Status status = check(text); !status.ok()) return status;
                }
                config.*field = std::string(text);
                return absl::OkStatus();
              },
              [field](const ServerConfig& config) { return config.*field; }};
}

absl::Status non_empty(std::string_view text) {
  return text.empty() ? expected("a non-empty value") : absl::OkStatus();
}

absl::Status log_format_name(std::string_view text) {
  return parse_log_format(text).ok() ? absl::OkStatus() : expected("text or json");
}

absl::Status log_level_name(std::string_view text) {
  return parse_log_level(text).ok() ? absl::OkStatus() : expected("trace, debug, info, warn or error");
}

Flag seconds_flag(std::string_view name, std::string_view value_name, double ServerConfig::*field,
                  std::string_view help) {
  return Flag{name,
              value_name,
              help,
              {},
              [field](ServerConfig& config, std::string_view text) {
                double value = 0;
                const char* end = text.data() + text.size();
                const auto [ptr, ec] = std::from_chars(text.data(), end, value);
                if (text.empty() || ec != std::errc() || ptr != end || !std::isfinite(value) || value < 0 ||
                    value > kMaxDrainSeconds) {
                  return expected(fmt::format("a number of seconds from 0 to {}", kMaxDrainSeconds));
                }
                config.*field = value;
                return absl::OkStatus();
              },
              [field](const ServerConfig& config) { return fmt::format("{}", config.*field); }};
}

// The one table of flags: help, environment variables, config file keys and docs all come from here.
const std::vector<Flag>& flags() {
  using C = ServerConfig;
  static const std::vector<Flag> table = {
      string_flag("config", "FILE", &C::config_file,
                  "Config file of `name = value` lines (flag names without --; # starts a comment line). "
                  "Flags and environment variables override it.",
                  "none"),
      string_flag("model", "DIR", &C::model_dir,
                  "Model directory (config.json, safetensors weights, tokenizer).",
                  "the embedded demo model"),
      string_flag("host", "ADDR", &C::host, "Address the gRPC server listens on.", {}, non_empty),
      integer_flag("port", "PORT", &C::port, 0, 65535, "gRPC port; 0 picks a free one (the log says which)."),
      string_flag("metrics-host", "ADDR", &C::metrics_host, "Address of the Prometheus /metrics endpoint.",
                  {}, non_empty),
      integer_flag("metrics-port", "PORT", &C::metrics_port, 0, 65535,
                   "Port of the Prometheus /metrics endpoint; 0 turns it off."),
      integer_flag("threads", "N", &C::threads, 0, 4096, "Compute threads; 0 uses every core.",
                   "0 (all cores)"),
      string_flag("device", "DEVICE", &C::device,
                  "auto, cpu, cuda or cuda:N; auto uses a GPU when there is one, else the CPU.", {},
                  non_empty),
      integer_flag("max-queue-requests", "N", &C::max_queue_requests, 1, kInt64Max,
                   "Requests waiting in the queue at most; more are refused with RESOURCE_EXHAUSTED."),
      integer_flag("max-queue-tokens", "N", &C::max_queue_tokens, 1, kInt64Max,
                   "Prompt and document tokens waiting in the queue at most; more are refused with "
                   "RESOURCE_EXHAUSTED."),
      integer_flag("max-batch-sequences", "N", &C::max_batch_sequences, 1, kInt64Max,
                   "Sequences in one engine step at most."),
      integer_flag(
          "max-batch-tokens", "N", &C::max_batch_tokens, 1, kInt64Max,
          "Tokens processed in one engine step at most: long prompts are prefilled in chunks of this "
          "budget, interleaved with the decode steps of running requests."),
      integer_flag("encode-chunk-tokens", "N", &C::encode_chunk_tokens, 1, kInt64Max,
                   "Tokens of a document encoded in one engine step."),
      integer_flag("max-prompt-tokens", "N", &C::max_prompt_tokens, 1, kInt64Max,
                   "Longest prompt accepted, in tokens."),
      integer_flag("max-new-tokens", "N", &C::max_new_tokens, 1, kInt64Max,
                   "Largest max_new_tokens a request may ask for."),
      integer_flag("max-document-tokens", "N", &C::max_document_tokens, 1, kInt64Max,
                   "Longest document accepted for encoding, in tokens."),
      integer_flag("max-batch-documents", "N", &C::max_batch_documents, 1, kInt64Max,
                   "Documents in one batch request at most."),
      integer_flag("max-stop-sequences", "N", &C::max_stop_sequences, 1, kInt64Max,
                   "Stop sequences in one request at most."),
      integer_flag("max-stop-sequence-bytes", "N", &C::max_stop_sequence_bytes, 1, kInt64Max,
                   "Longest stop sequence, in bytes."),
      integer_flag("max-top-logprobs", "N", &C::max_top_logprobs, 1, kInt64Max,
                   "Most alternatives per token a request may ask for with top logprobs."),
      integer_flag("max-message-bytes", "N", &C::max_message_bytes, 1, std::numeric_limits<int32_t>::max(),
                   "Largest request message received, in bytes (gRPC's own default is 4 MiB)."),
      integer_flag("memory-budget-mb", "MB", &C::memory_budget_mb, 1, int64_t{1} << 24,
                   "Memory pool budget in MiB: weights, KV caches and activations. Work that does not fit "
                   "now is refused with RESOURCE_EXHAUSTED."),
      string_flag("tls-cert", "FILE", &C::tls_cert,
                  "Server certificate chain (PEM). TLS is on when set; needs --tls-key.", "none (plaintext)"),
      string_flag("tls-key", "FILE", &C::tls_key, "Private key of --tls-cert (PEM).", "none"),
      string_flag("tls-client-ca", "FILE", &C::tls_client_ca,
                  "CA certificates (PEM) for mutual TLS: clients must present a certificate signed by one.",
                  "none"),
      string_flag("api-key-file", "FILE", &C::api_key_file,
                  "API keys, one per line (# comments and blank lines ignored); calls must then send "
                  "`authorization: Bearer <key>`. Health and reflection stay open.",
                  "none (no keys)"),
      seconds_flag("drain-timeout", "SECONDS", &C::drain_timeout_seconds,
                   "On SIGTERM, how long in-flight calls may take to finish before the server exits."),
      string_flag("log-format", "FORMAT", &C::log_format, "text, or json for one JSON object per line.", {},
                  log_format_name),
      string_flag("log-level", "LEVEL", &C::log_level, "trace, debug, info, warn or error.", {},
                  log_level_name),
  };
  return table;
}

const Flag* find_flag(std::string_view name) {
  for (const Flag& flag : flags()) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

std::string env_name(std::string_view flag_name) {
  std::string env = "LONGNET_";
  for (const char c : flag_name) {
    env += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return env;
}

std::string default_text(const Flag& flag) {
  return flag.default_note.empty() ? flag.get(ServerConfig{}) : std::string(flag.default_note);
}

// Where a value came from, for error messages: "--port", "LONGNET_PORT", "/etc/longnet.conf:3: port".
absl::Status apply(const Flag& flag, std::string_view value, std::string_view source, ServerConfig& config) {
  const absl::Status status = flag.set(config, value);
  if (status.ok()) return status;
  return absl::InvalidArgumentError(
      fmt::format("{}: invalid value \"{}\": expected {}", source, value, std::string(status.message())));
}

std::string_view trim(std::string_view text) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!text.empty() && is_space(text.front()))
    text.remove_prefix(1);
  while (!text.empty() && is_space(text.back()))
    text.remove_suffix(1);
  return text;
}

struct Setting {
  const Flag* flag;
  std::string value;
  std::string source;
};

absl::StatusOr<std::vector<Setting>> read_command_line(int argc, const char* const* argv, bool& help) {
  std::vector<Setting> settings;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help = true;
      return settings;
    }
    if (arg.size() <= 2 || !arg.starts_with("--")) {
      return absl::InvalidArgumentError(fmt::format(
          "unexpected argument \"{}\": flags are --name value or --name=value (see --help)", arg));
    }
    const std::string_view body = arg.substr(2);
    const size_t equals = body.find('=');
    const std::string_view name = body.substr(0, equals);
    const Flag* flag = find_flag(name);
    if (flag == nullptr)
      return absl::InvalidArgumentError(fmt::format("unknown flag --{} (see --help)", name));
    std::string value;
    if (equals != std::string_view::npos) {
      value = std::string(body.substr(equals + 1));
    } else if (i + 1 < argc && !std::string_view(argv[i + 1]).starts_with("--")) {
      value = argv[++i];
    } else {
      return absl::InvalidArgumentError(
          fmt::format("--{}: missing value (use --{} {} or --{}=...)", name, name, flag->value_name, name));
    }
    settings.push_back({flag, std::move(value), fmt::format("--{}", name)});
  }
  return settings;
}

absl::StatusOr<std::vector<Setting>> read_config_file(const std::string& path, std::string_view named_by) {
  const absl::StatusOr<std::string> contents =
      read_config_text_file(fmt::format("{}: config file", named_by), path);
  if (!contents.ok()) return contents.status();

  std::vector<Setting> settings;
  std::string_view rest = *contents;
  if (rest.starts_with("\xEF\xBB\xBF")) rest.remove_prefix(3);  // a UTF-8 byte order mark
  for (int line_number = 1; !rest.empty(); ++line_number) {
    const size_t newline = rest.find('\n');
    const std::string_view line = trim(rest.substr(0, newline));
    rest.remove_prefix(newline == std::string_view::npos ? rest.size() : newline + 1);
    if (line.empty() || line.front() == '#') continue;

    const std::string where = fmt::format("{}:{}", path, line_number);
    const size_t equals = line.find('=');
    if (equals == std::string_view::npos) {
      return absl::InvalidArgumentError(
          fmt::format("{}: expected `name = value`, found \"{}\"", where, line));
    }
    const std::string_view name = trim(line.substr(0, equals));
    std::string_view value = trim(line.substr(equals + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
      value = value.substr(1, value.size() - 2);
    const Flag* flag = find_flag(name);
    if (flag == nullptr) {
      return absl::InvalidArgumentError(fmt::format(
          "{}: unknown setting \"{}\" (the names are the flags without --; see --help)", where, name));
    }
    if (flag->name == "config") {
      return absl::InvalidArgumentError(fmt::format("{}: config cannot be set inside a config file", where));
    }
    settings.push_back({flag, std::string(value), fmt::format("{}: {}", where, name)});
  }
  return settings;
}

// Settings that are fine one by one but not together.
absl::Status check_consistency(const ServerConfig& config) {
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    return absl::InvalidArgumentError(fmt::format(
        "--tls-cert and --tls-key must be given together (--tls-cert is \"{}\", --tls-key is \"{}\")",
        config.tls_cert, config.tls_key));
  }
  if (!config.tls_client_ca.empty() && config.tls_cert.empty()) {
    return absl::InvalidArgumentError(fmt::format(
        "--tls-client-ca \"{}\" needs --tls-cert and --tls-key: mutual TLS is TLS with client certificates",
        config.tls_client_ca));
  }
  if (config.metrics_port != 0 && config.metrics_port == config.port) {
    return absl::InvalidArgumentError(
        fmt::format("--metrics-port {} is the same as --port: the metrics endpoint needs a port of its own "
                    "(0 turns it off)",
                    config.metrics_port));
  }
  return absl::OkStatus();
}

// Breaks `text` into lines of at most `width` characters, each starting with `indent`.
std::string wrap(std::string_view text, std::string_view indent, size_t width) {
  std::string out;
  size_t line_length = 0;
  while (!text.empty()) {
    const size_t space = text.find(' ');
    const std::string_view word = text.substr(0, space);
    text.remove_prefix(space == std::string_view::npos ? text.size() : space + 1);
    if (line_length > 0 && line_length + 1 + word.size() > width) {
      out += '\n';
      line_length = 0;
    }
    if (line_length == 0) {
      out += indent;
      line_length = indent.size();
    } else {
      out += ' ';
      ++line_length;
    }
    out += word;
    line_length += word.size();
  }
  return out + '\n';
}

}  // namespace

absl::StatusOr<ParsedConfig> parse_server_config(int argc, const char* const* argv,
                                                 const std::function<const char*(const char*)>& getenv) {
  ParsedConfig parsed;
  absl::StatusOr<std::vector<Setting>> command_line = read_command_line(argc, argv, parsed.help);
  if (!command_line.ok()) return command_line.status();
  if (parsed.help) return parsed;

  // The config file is named by --config, else by LONGNET_CONFIG.
  std::string config_path;
  std::string config_named_by;
  for (const Setting& setting : *command_line) {
    if (setting.flag->name == "config") {
      config_path = setting.value;
      config_named_by = setting.source;
    }
  }
  const std::string config_env = env_name("config");
  if (config_named_by.empty()) {
    const char* value = getenv(config_env.c_str());
    if (value != nullptr && *value != '\0') {
      config_path = value;
      config_named_by = config_env;
    }
  }

  ServerConfig& config = parsed.config;
  if (!config_path.empty()) {
    absl::StatusOr<std::vector<Setting>> from_file = read_config_file(config_path, config_named_by);
    if (!from_file.ok()) return from_file.status();
    for (const Setting& setting : *from_file) {
      if (absl::Status status = apply(*setting.flag, setting.value, setting.source, config); !status.ok()) {
        return status;
      }
    }
  }
  for (const Flag& flag : flags()) {
    const std::string env = env_name(flag.name);
    const char* value = getenv(env.c_str());
    if (value == nullptr || *value == '\0') continue;
    if (absl::Status status = apply(flag, value, env, config); !status.ok()) return status;
  }
  for (const Setting& setting : *command_line) {
    if (absl::Status status = apply(*setting.flag, setting.value, setting.source, config); !status.ok()) {
      return status;
    }
  }
  config.config_file = config_path;
  if (absl::Status status = check_consistency(config); !status.ok()) return status;
  return parsed;
}

std::vector<std::string> unknown_environment_variables(const char* const* environment) {
  std::vector<std::string> unknown;
  if (environment == nullptr) return unknown;
  for (const char* const* entry = environment; *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    const std::string_view name = text.substr(0, text.find('='));
    if (!name.starts_with("LONGNET_") || name == "LONGNET_CPU_ISA") continue;
    bool known = false;
    for (const Flag& flag : flags())
      known = known || env_name(flag.name) == name;
    if (!known) unknown.emplace_back(name);
  }
  return unknown;
}

absl::StatusOr<std::string> read_config_text_file(std::string_view what, const std::string& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {
    return absl::InvalidArgumentError(fmt::format("{} \"{}\" is a directory, not a file", what, path));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        fmt::format("{} \"{}\": cannot open it ({})", what, path, std::strerror(errno)));
  }
  std::string contents((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return absl::NotFoundError(fmt::format("{} \"{}\": cannot read it", what, path));
  return contents;
}

std::string server_config_help() {
  std::string help =
      "Usage: longnet-server [--flag value | --flag=value]...\n"
      "\n"
      "Serves a LongNet model over gRPC (package longnet.v1), with Prometheus metrics on HTTP /metrics.\n"
      "\n"
      "Every flag can also be set by the environment variable shown, or in the --config file as\n"
      "`name = value` (the flag name without --). Precedence: flag > environment > config file > default.\n"
      "A value starting with -- must be written --flag=value.\n"
      "\n"
      "Flags:\n"
      "  -h, --help\n"
      "      Print this help and exit.\n";
  for (const Flag& flag : flags()) {
    help += fmt::format("  --{} {}  (env {}; default: {})\n", flag.name, flag.value_name, env_name(flag.name),
                        default_text(flag));
    help += wrap(flag.help, "      ", 100);
  }
  return help;
}

std::string server_config_markdown_table() {
  std::string table =
      "| Flag | Environment variable | Default | Meaning |\n"
      "|---|---|---|---|\n";
  for (const Flag& flag : flags()) {
    const std::string value = default_text(flag);
    const std::string default_cell = flag.default_note.empty() ? fmt::format("`{}`", value) : value;
    table += fmt::format("| `--{} {}` | `{}` | {} | {} |\n", flag.name, flag.value_name, env_name(flag.name),
                         default_cell, flag.help);
  }
  return table;
}

}  // namespace longnet::server
