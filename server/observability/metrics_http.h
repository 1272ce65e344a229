#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

// The HTTP endpoint Prometheus scrapes: GET /metrics answers with the text a callback renders; anything
// else is 404 (405 for other methods). One thread of our own with an ordinary stack (prometheus-cpp's
// civetweb threads get ~100 KB stacks, of which glibc takes the process's static TLS: with OpenBLAS
// linked in, a scrape could overflow them), one connection at a time, each with 2-second socket
// timeouts so a stuck client cannot hold it.
namespace longnet::server {

class MetricsHttpServer {
 public:
  using Render = std::function<std::string()>;

  // Listens on host:port (port 0: a free port, see port()). Unavailable naming the address when it cannot.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> start(const std::string& host, int port,
                                                                  Render render);
  ~MetricsHttpServer();  // stops accepting and joins the thread
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  int port() const { return port_; }

 private:
  MetricsHttpServer(int listen_fd, int stop_read, int stop_write, int port, Render render);
  void run();
  void answer(int fd) const;

  int listen_fd_;
  int stop_read_;
  int stop_write_;
  int port_;
  Render render_;
  std::thread thread_;
};

}  // namespace longnet::server
