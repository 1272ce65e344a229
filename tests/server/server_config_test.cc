#include "config/server_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include "support/temp_dir.h"

namespace longnet::server {
namespace {

// A fake environment for parse_server_config's injectable getenv.
class FakeEnv {
 public:
  FakeEnv(std::initializer_list<std::pair<const std::string, std::string>> vars) : vars_(vars) {}
  std::function<const char*(const char*)> getenv() const {
    return [this](const char* name) -> const char* {
      const auto it = vars_.find(name);
      return it == vars_.end() ? nullptr : it->second.c_str();
    };
  }

 private:
  std::map<std::string, std::string> vars_;
};

absl::StatusOr<ParsedConfig> parse(std::vector<std::string> args, const FakeEnv& env = FakeEnv({})) {
  args.insert(args.begin(), "longnet-server");
  std::vector<const char*> argv;
  for (const std::string& arg : args)
    argv.push_back(arg.c_str());
  return parse_server_config(static_cast<int>(argv.size()), argv.data(), env.getenv());
}

// A file in this test process's own temporary directory, removed at exit.
std::string write_file(const std::string& name, const std::string& contents) {
  static const testing::TempDir dir;
  testing::write_file(dir / name, contents);
  return (dir / name).string();
}

void expect_error(const absl::StatusOr<ParsedConfig>& result, absl::StatusCode code,
                  std::initializer_list<std::string> fragments) {
  ASSERT_FALSE(result.ok()) << "expected an error";
  EXPECT_EQ(result.status().code(), code) << result.status();
  const std::string message(result.status().message());
  for (const std::string& fragment : fragments) {
    EXPECT_NE(message.find(fragment), std::string::npos) << "\"" << fragment << "\" not in: " << message;
  }
}

TEST(ServerConfig, DefaultsWithNoFlagsAndNoEnvironment) {
  const absl::StatusOr<ParsedConfig> parsed = parse({});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_FALSE(parsed->help);
  const ServerConfig& c = parsed->config;
  EXPECT_EQ(c.model_dir, "");
  EXPECT_EQ(c.host, "0.0.0.0");
  EXPECT_EQ(c.port, 50051);
  EXPECT_EQ(c.metrics_port, 9090);
  EXPECT_EQ(c.threads, 0);
  EXPECT_EQ(c.device, "auto");
  EXPECT_EQ(c.max_queue_requests, 256);
  EXPECT_EQ(c.max_batch_tokens, 512);
  EXPECT_EQ(c.max_message_bytes, 16777216);
  EXPECT_EQ(c.drain_timeout_seconds, 30);
  EXPECT_EQ(c.log_format, "text");
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.config_file, "");
}

TEST(ServerConfig, FlagsInBothSyntaxes) {
  const absl::StatusOr<ParsedConfig> parsed = parse(
      {"--port", "6000", "--host=127.0.0.1", "--model", "/models/x", "--drain-timeout=2.5", "--log-format",
       "json", "--max-new-tokens=17", "--metrics-port", "0", "--device", "cuda:1", "--tls-cert", "/c.pem",
       "--tls-key=/k.pem", "--tls-client-ca", "/ca.pem", "--memory-budget-mb=100"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const ServerConfig& c = parsed->config;
  EXPECT_EQ(c.port, 6000);
  EXPECT_EQ(c.host, "127.0.0.1");
  EXPECT_EQ(c.model_dir, "/models/x");
  EXPECT_EQ(c.drain_timeout_seconds, 2.5);
  EXPECT_EQ(c.log_format, "json");
  EXPECT_EQ(c.max_new_tokens, 17);
  EXPECT_EQ(c.metrics_port, 0);
  EXPECT_EQ(c.device, "cuda:1");
  EXPECT_EQ(c.tls_cert, "/c.pem");
  EXPECT_EQ(c.tls_key, "/k.pem");
  EXPECT_EQ(c.tls_client_ca, "/ca.pem");
  EXPECT_EQ(c.memory_budget_mb, 100);
}

TEST(ServerConfig, LastOccurrenceWins) {
  const absl::StatusOr<ParsedConfig> parsed = parse({"--port", "6000", "--port=6001"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->config.port, 6001);
}

TEST(ServerConfig, Help) {
  for (const char* flag : {"--help", "-h"}) {
    const absl::StatusOr<ParsedConfig> parsed = parse({"--port", "6000", flag});
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_TRUE(parsed->help) << flag;
  }
}

TEST(ServerConfig, BadCommandLines) {
  expect_error(parse({"--bogus", "1"}), absl::StatusCode::kInvalidArgument, {"unknown flag --bogus"});
  expect_error(parse({"serve"}), absl::StatusCode::kInvalidArgument, {"unexpected argument \"serve\""});
  expect_error(parse({"-port", "1"}), absl::StatusCode::kInvalidArgument, {"\"-port\""});
  expect_error(parse({"--port"}), absl::StatusCode::kInvalidArgument, {"--port", "missing value"});
  expect_error(parse({"--model", "--port", "1"}), absl::StatusCode::kInvalidArgument,
               {"--model", "missing value"});
  expect_error(parse({"--port", "abc"}), absl::StatusCode::kInvalidArgument,
               {"--port", "\"abc\"", "0 to 65535"});
  expect_error(parse({"--port=-1"}), absl::StatusCode::kInvalidArgument, {"--port", "\"-1\""});
  expect_error(parse({"--port=65536"}), absl::StatusCode::kInvalidArgument, {"--port", "\"65536\""});
  expect_error(parse({"--port=80x"}), absl::StatusCode::kInvalidArgument, {"--port", "\"80x\""});
  expect_error(parse({"--port="}), absl::StatusCode::kInvalidArgument, {"--port", "\"\""});
  expect_error(parse({"--metrics-port=-1"}), absl::StatusCode::kInvalidArgument,
               {"--metrics-port", "\"-1\""});
  expect_error(parse({"--threads=-2"}), absl::StatusCode::kInvalidArgument, {"--threads", "\"-2\""});
  expect_error(parse({"--max-queue-requests", "0"}), absl::StatusCode::kInvalidArgument,
               {"--max-queue-requests", "\"0\"", ">= 1"});
  expect_error(parse({"--max-queue-tokens", "99999999999999999999"}), absl::StatusCode::kInvalidArgument,
               {"--max-queue-tokens", "99999999999999999999"});
  expect_error(parse({"--max-message-bytes", "3000000000"}), absl::StatusCode::kInvalidArgument,
               {"--max-message-bytes", "3000000000"});
  expect_error(parse({"--memory-budget-mb", "0"}), absl::StatusCode::kInvalidArgument,
               {"--memory-budget-mb"});
  expect_error(parse({"--drain-timeout=-1"}), absl::StatusCode::kInvalidArgument,
               {"--drain-timeout", "\"-1\""});
  expect_error(parse({"--drain-timeout=nan"}), absl::StatusCode::kInvalidArgument,
               {"--drain-timeout", "nan"});
  expect_error(parse({"--log-format", "xml"}), absl::StatusCode::kInvalidArgument,
               {"--log-format", "\"xml\"", "text or json"});
  expect_error(parse({"--log-level", "verbose"}), absl::StatusCode::kInvalidArgument,
               {"--log-level", "\"verbose\""});
  expect_error(parse({"--host="}), absl::StatusCode::kInvalidArgument, {"--host", "non-empty"});
}

TEST(ServerConfig, ZeroDrainAndZeroThreadsAreAllowed) {
  const absl::StatusOr<ParsedConfig> parsed = parse({"--drain-timeout", "0", "--threads", "0"});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->config.drain_timeout_seconds, 0);
}

TEST(ServerConfig, TlsFlagsMustComeTogether) {
  expect_error(parse({"--tls-cert", "/c.pem"}), absl::StatusCode::kInvalidArgument,
               {"--tls-cert", "--tls-key"});
  expect_error(parse({"--tls-key", "/k.pem"}), absl::StatusCode::kInvalidArgument,
               {"--tls-cert", "--tls-key"});
  expect_error(parse({"--tls-client-ca", "/ca.pem"}), absl::StatusCode::kInvalidArgument,
               {"--tls-client-ca", "\"/ca.pem\"", "--tls-cert"});
}

TEST(ServerConfig, MetricsPortMustDifferFromPort) {
  expect_error(parse({"--port", "7000", "--metrics-port", "7000"}), absl::StatusCode::kInvalidArgument,
               {"--metrics-port 7000", "--port"});
}

TEST(ServerConfig, EnvironmentMirrorsEveryFlag) {
  const FakeEnv env({{"LONGNET_PORT", "6001"},
                     {"LONGNET_API_KEY_FILE", "/etc/keys"},
                     {"LONGNET_MAX_QUEUE_TOKENS", "1000"},
                     {"LONGNET_LOG_LEVEL", "debug"},
                     {"LONGNET_DRAIN_TIMEOUT", "5"},
                     {"LONGNET_MODEL", ""}});  // empty counts as unset
  const absl::StatusOr<ParsedConfig> parsed = parse({}, env);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->config.port, 6001);
  EXPECT_EQ(parsed->config.api_key_file, "/etc/keys");
  EXPECT_EQ(parsed->config.max_queue_tokens, 1000);
  EXPECT_EQ(parsed->config.log_level, "debug");
  EXPECT_EQ(parsed->config.drain_timeout_seconds, 5);
  EXPECT_EQ(parsed->config.model_dir, "");
}

TEST(ServerConfig, UnknownLongnetVariablesAreNamed) {
  const char* const environment[] = {
      "LONGNET_PORT=1",  "LONGNET_DRAIN_TIMEOUTX=5", "PATH=/bin",           "LONGNET_CPU_ISA=avx2",
      "LONGNET_CONFIG=", "LONGNET_THREAD=2",         "NOT_LONGNET_PORTX=1", nullptr};
  EXPECT_EQ(unknown_environment_variables(environment),
            (std::vector<std::string>{"LONGNET_DRAIN_TIMEOUTX", "LONGNET_THREAD"}));
  EXPECT_TRUE(unknown_environment_variables(nullptr).empty());
}

TEST(ServerConfig, FlagBeatsEnvironment) {
  const absl::StatusOr<ParsedConfig> parsed = parse({"--port", "7000"}, FakeEnv({{"LONGNET_PORT", "6001"}}));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->config.port, 7000);
}

TEST(ServerConfig, BadEnvironmentValueNamesTheVariable) {
  expect_error(parse({}, FakeEnv({{"LONGNET_PORT", "http"}})), absl::StatusCode::kInvalidArgument,
               {"LONGNET_PORT", "\"http\""});
}

TEST(ServerConfig, ConfigFileWithPrecedence) {
  const std::string path = write_file("good.conf",
                                      "# a comment\n"
                                      "\n"
                                      "port = 50052\r\n"
                                      "  api-key-file=/etc/keys  \n"
                                      "model = \"/models/with space\"\n"
                                      "max-batch-tokens = 1024\n"
                                      "host = 10.0.0.1\n");
  const FakeEnv env({{"LONGNET_MAX_BATCH_TOKENS", "2048"}, {"LONGNET_HOST", "10.0.0.2"}});
  const absl::StatusOr<ParsedConfig> parsed = parse({"--config", path, "--host", "10.0.0.3"}, env);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const ServerConfig& c = parsed->config;
  EXPECT_EQ(c.config_file, path);
  EXPECT_EQ(c.port, 50052);                // file
  EXPECT_EQ(c.api_key_file, "/etc/keys");  // file
  EXPECT_EQ(c.model_dir, "/models/with space");
  EXPECT_EQ(c.max_batch_tokens, 2048);  // environment beats file
  EXPECT_EQ(c.host, "10.0.0.3");        // flag beats both
}

TEST(ServerConfig, ConfigFileFromEnvironment) {
  const std::string path = write_file("from_env.conf", "port = 50053\n");
  const absl::StatusOr<ParsedConfig> parsed = parse({}, FakeEnv({{"LONGNET_CONFIG", path}}));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->config.port, 50053);
  EXPECT_EQ(parsed->config.config_file, path);
}

TEST(ServerConfig, ConfigFileErrorsNameFileAndLine) {
  const std::string unknown = write_file("unknown.conf", "port = 1\n\n# x\nprot = 2\n");
  expect_error(parse({"--config", unknown}), absl::StatusCode::kInvalidArgument,
               {unknown + ":4", "unknown setting \"prot\""});
  const std::string bad_value = write_file("bad_value.conf", "port = 1\nmetrics-port = lots\n");
  expect_error(parse({"--config", bad_value}), absl::StatusCode::kInvalidArgument,
               {bad_value + ":2", "metrics-port", "\"lots\""});
  const std::string no_equals = write_file("no_equals.conf", "port 50052\n");
  expect_error(parse({"--config", no_equals}), absl::StatusCode::kInvalidArgument,
               {no_equals + ":1", "name = value"});
  const std::string nested = write_file("nested.conf", "config = other.conf\n");
  expect_error(parse({"--config", nested}), absl::StatusCode::kInvalidArgument, {nested + ":1", "config"});
  expect_error(parse({"--config", "/no/such/longnet.conf"}), absl::StatusCode::kNotFound,
               {"--config", "/no/such/longnet.conf"});
  expect_error(parse({}, FakeEnv({{"LONGNET_CONFIG", "/no/such/env.conf"}})), absl::StatusCode::kNotFound,
               {"LONGNET_CONFIG", "/no/such/env.conf"});
}

TEST(ServerConfig, HelpListsEveryFlagWithItsVariableAndDefault) {
  const std::string help = server_config_help();
  for (const char* fragment : {"--model DIR",
                               "LONGNET_MODEL",
                               "--port PORT",
                               "LONGNET_PORT",
                               "default: 50051",
                               "--api-key-file FILE",
                               "LONGNET_API_KEY_FILE",
                               "--config FILE",
                               "LONGNET_CONFIG",
                               "--max-queue-tokens",
                               "default: 4194304",
                               "--drain-timeout SECONDS",
                               "default: 30",
                               "--log-level",
                               "--help",
                               "--memory-budget-mb",
                               "--max-stop-sequence-bytes",
                               "--encode-chunk-tokens",
                               "--tls-client-ca",
                               "--metrics-host"}) {
    EXPECT_NE(help.find(fragment), std::string::npos) << fragment;
  }
  for (size_t start = 0, end; start < help.size(); start = end + 1) {
    end = help.find('\n', start);
    EXPECT_LE(end - start, 110u) << help.substr(start, end - start);
  }
}

// docs/server.md carries the table generated from the flags: this keeps the two equal.
TEST(ServerConfig, DocsTableMatchesTheFlags) {
  const std::string docs_path = std::string(LONGNET_TEST_DATA_DIR) + "/../../docs/server.md";
  std::ifstream in(docs_path);
  ASSERT_TRUE(in) << docs_path;
  const std::string docs((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string table = server_config_markdown_table();
  EXPECT_NE(docs.find(table), std::string::npos)
      << "the flag table in docs/server.md is out of date; replace it with:\n"
      << table;
}

}  // namespace
}  // namespace longnet::server
