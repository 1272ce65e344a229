// longnet-server: the gRPC inference server for LongNet models. See docs/server.md.
#include <unistd.h>  // environ

#include <cstdio>
#include <string>

#include "api/server_app.h"
#include "config/server_config.h"
#include "observability/logging.h"

int main(int argc, char** argv) {
  // Before any thread starts, so every thread inherits the mask and only the server's signal thread sees
  // SIGTERM / SIGINT.
  longnet::server::block_stop_signals();

  absl::StatusOr<longnet::server::ParsedConfig> parsed = longnet::server::parse_server_config(argc, argv);
  if (!parsed.ok()) {
    std::fprintf(stderr, "longnet-server: %s\n(see longnet-server --help)\n",
                 std::string(parsed.status().message()).c_str());
    return 2;
  }
  if (parsed->help) {
    std::fputs(longnet::server::server_config_help().c_str(), stdout);
    return 0;
  }
  const longnet::server::ServerConfig& config = parsed->config;
  if (absl::Status st = longnet::server::init_logging(config.log_format, config.log_level); !st.ok()) {
    std::fprintf(stderr, "longnet-server: %s\n", std::string(st.message()).c_str());
    return 2;
  }
  for (const std::string& name : longnet::server::unknown_environment_variables(environ)) {
    longnet::server::log_warn(
        "-", "environment variable {} is not a longnet-server setting: ignored (see --help)", name);
  }
  longnet::server::ServerApp app(config);
  return app.run();
}
