#include "observability/metrics.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

namespace longnet::server {
namespace {

bool contains(const std::string& text, const std::string& fragment) {
  return text.find(fragment) != std::string::npos;
}

// A plain HTTP/1.0 GET on 127.0.0.1: the response, headers and body, or "" when the connection fails.
std::string http_get(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0) {
    const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      for (ssize_t n; (n = ::recv(fd, buffer, sizeof(buffer), 0)) > 0;)
        response.append(buffer, n);
    }
  }
  ::close(fd);
  return response;
}

// Families whose series carry per-call labels (rpc and code, build info) appear once they have one.
TEST(Metrics, RenderHasEveryUnlabelledFamilyBeforeAnyCall) {
  Metrics metrics;
  const std::string text = metrics.render();
  for (const char* family : {"longnet_time_to_first_token_seconds",
                             "longnet_inter_token_latency_seconds",
                             "longnet_queue_time_seconds",
                             "longnet_queue_depth_requests",
                             "longnet_queue_depth_tokens",
                             "longnet_running_requests",
                             "longnet_prompt_tokens_total",
                             "longnet_generated_tokens_total",
                             "longnet_encoded_tokens_total",
                             "longnet_batch_sequences",
                             "longnet_batch_tokens",
                             "longnet_step_duration_seconds",
                             "longnet_memory_pool_in_use_bytes",
                             "longnet_memory_pool_cached_bytes",
                             "longnet_memory_pool_budget_bytes",
                             "longnet_memory_pool_high_water_bytes",
                             "longnet_kv_cache_bytes",
                             "longnet_activation_reserve_bytes",
                             "longnet_ready",
                             "longnet_draining"}) {
    EXPECT_TRUE(contains(text, std::string("# TYPE ") + family + " ")) << family;
  }
  EXPECT_TRUE(contains(text, "longnet_ready 0\n")) << text;
}

TEST(Metrics, RequestsByRpcAndCode) {
  Metrics metrics;
  metrics.count_request("Generate", "OK", 0.2);
  metrics.count_request("Generate", "OK", 90);
  metrics.count_request("Generate", "INVALID_ARGUMENT", 0.001);
  metrics.count_request("Encode", "OK", 2);
  const std::string text = metrics.render();
  EXPECT_TRUE(contains(text, "longnet_requests_total{code=\"OK\",rpc=\"Generate\"} 2\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_requests_total{code=\"INVALID_ARGUMENT\",rpc=\"Generate\"} 1\n"))
      << text;
  EXPECT_TRUE(contains(text, "longnet_requests_total{code=\"OK\",rpc=\"Encode\"} 1\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_request_duration_seconds_count{rpc=\"Generate\"} 3\n")) << text;
  // Buckets reach minutes: the 90 s request is under 120 s but not under 60 s.
  EXPECT_TRUE(contains(text, "longnet_request_duration_seconds_bucket{rpc=\"Generate\",le=\"60\"} 2\n"))
      << text;
  EXPECT_TRUE(contains(text, "longnet_request_duration_seconds_bucket{rpc=\"Generate\",le=\"120\"} 3\n"))
      << text;
  EXPECT_TRUE(contains(text, "longnet_request_duration_seconds_bucket{rpc=\"Generate\",le=\"0.005\"} 1\n"))
      << text;
  EXPECT_TRUE(contains(text, "longnet_request_duration_seconds_bucket{rpc=\"Encode\",le=\"600\"} 1\n"))
      << text;
}

TEST(Metrics, LatenciesTokensBatchesAndGauges) {
  Metrics metrics;
  metrics.observe_time_to_first_token(0.3);
  metrics.observe_inter_token_latency(0.002);
  metrics.observe_inter_token_latency(0.02);
  metrics.observe_queue_time(-1);  // a clock hiccup counts as 0, not as a negative sum
  metrics.set_queue_depth(3, 4096);
  metrics.set_running(5, 2);
  metrics.add_prompt_tokens(100);
  metrics.add_prompt_tokens(-5);  // ignored
  metrics.add_generated_tokens(7);
  metrics.add_encoded_tokens(1048576);
  metrics.observe_batch(3, 512, 0.003);
  metrics.set_memory(1000, 2000, 8589934592, 3000, 400, 500);
  metrics.set_ready(true);
  metrics.set_draining(true);
  const std::string text = metrics.render();
  EXPECT_TRUE(contains(text, "longnet_time_to_first_token_seconds_bucket{le=\"0.5\"} 1\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_inter_token_latency_seconds_bucket{le=\"0.001\"} 0\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_inter_token_latency_seconds_bucket{le=\"0.0025\"} 1\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_inter_token_latency_seconds_bucket{le=\"10\"} 2\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_inter_token_latency_seconds_count 2\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_queue_time_seconds_sum 0\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_queue_depth_requests 3\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_queue_depth_tokens 4096\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_running_requests{kind=\"generation\"} 5\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_running_requests{kind=\"encode\"} 2\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_prompt_tokens_total 100\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_generated_tokens_total 7\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_encoded_tokens_total 1048576\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_batch_sequences_bucket{le=\"2\"} 0\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_batch_sequences_bucket{le=\"4\"} 1\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_batch_tokens_bucket{le=\"512\"} 1\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_batch_tokens_count 1\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_step_duration_seconds_bucket{le=\"0.002\"} 0\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_step_duration_seconds_bucket{le=\"0.004\"} 1\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_memory_pool_in_use_bytes 1000\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_memory_pool_cached_bytes 2000\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_memory_pool_budget_bytes 8589934592\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_memory_pool_high_water_bytes 3000\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_kv_cache_bytes 400\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_activation_reserve_bytes 500\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_ready 1\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_draining 1\n")) << text;
}

TEST(Metrics, BuildInfoIsReplacedNotDuplicated) {
  Metrics metrics;
  metrics.set_build_info("0.1.0", "cpu", "demo");
  metrics.set_build_info("0.1.0", "cuda:0", "demo");
  const std::string text = metrics.render();
  EXPECT_TRUE(contains(text, "longnet_build_info{device=\"cuda:0\",model=\"demo\",version=\"0.1.0\"} 1\n"))
      << text;
  EXPECT_FALSE(contains(text, "device=\"cpu\"")) << text;
}

TEST(Metrics, CountsFromManyThreads) {
  Metrics metrics;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&metrics] {
      for (int i = 0; i < 1000; ++i) {
        metrics.count_request("Generate", "OK", 0.01);
        metrics.add_generated_tokens(1);
        metrics.observe_inter_token_latency(0.01);
      }
    });
  }
  for (std::thread& thread : threads)
    thread.join();
  const std::string text = metrics.render();
  EXPECT_TRUE(contains(text, "longnet_requests_total{code=\"OK\",rpc=\"Generate\"} 4000\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_generated_tokens_total 4000\n")) << text;
  EXPECT_TRUE(contains(text, "longnet_inter_token_latency_seconds_count 4000\n")) << text;
}

TEST(Metrics, ServesOverHttpAndRefusesATakenPort) {
  Metrics metrics;
  EXPECT_EQ(metrics.bound_port(), 0);
  metrics.count_request("Tokenize", "OK", 0.001);
  const absl::Status served = metrics.serve("127.0.0.1", 0);
  ASSERT_TRUE(served.ok()) << served;
  const int port = metrics.bound_port();
  ASSERT_GT(port, 0);

  const std::string response = http_get(port, "/metrics");
  EXPECT_TRUE(response.starts_with("HTTP/1.")) << response;
  EXPECT_TRUE(contains(response, " 200 ")) << response;
  EXPECT_TRUE(contains(response, "longnet_requests_total{code=\"OK\",rpc=\"Tokenize\"} 1")) << response;

  // The same object cannot serve twice.
  const absl::Status again = metrics.serve("127.0.0.1", 0);
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition) << again;

  // Another server on the taken port fails cleanly, naming the address.
  Metrics other;
  const absl::Status taken = other.serve("127.0.0.1", port);
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.code(), absl::StatusCode::kUnavailable) << taken;
  EXPECT_TRUE(contains(std::string(taken.message()), "127.0.0.1:" + std::to_string(port))) << taken;
  EXPECT_EQ(other.bound_port(), 0);

  // The first one still answers.
  EXPECT_TRUE(contains(http_get(port, "/metrics"), "longnet_ready"));
}

TEST(Metrics, ServeRejectsABadAddress) {
  Metrics metrics;
  EXPECT_FALSE(metrics.serve("127.0.0.1", 70000).ok());
  EXPECT_FALSE(metrics.serve("not-an-address.invalid", 0).ok());
}

}  // namespace
}  // namespace longnet::server
