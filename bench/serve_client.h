#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "longnet/v1/encode.grpc.pb.h"
#include "longnet/v1/generate.grpc.pb.h"
#include "longnet/v1/info.grpc.pb.h"

// The calls bench/serve_load.cc makes to longnet-server, each timed and checked: a call that fails, or
// that answers other than asked (a stream of other than max_new_tokens tokens, an encode result counting
// other tokens), comes back as an error naming the call. Synchronous gRPC: one thread blocks per call.

namespace longnet::bench {

struct StreamRun {
  absl::Status status;
  int64_t tokens = 0;
  double ttft_s = 0;  // from sending the request to the first message with tokens
  double wall_s = 0;  // from sending the request to the call's status
};

class ServeClient {
 public:
  explicit ServeClient(const std::string& address);

  // Polls grpc.health.v1 until the server reports SERVING; stops early with the error `alive` returns
  // (called before each poll: a server that has exited will never serve).
  absl::Status wait_serving(double timeout_s, const std::function<absl::Status()>& alive);
  absl::StatusOr<v1::GetInfoResponse> info();
  // One GenerateStream of exactly max_new_tokens tokens (temperature 1, ignore_eos); thread-safe.
  StreamRun generate_stream(uint64_t seed, const std::string& prompt, int64_t max_new_tokens) const;
  // One document by EncodeStream in 1 MiB chunks of text, mean pooling; the wall time in seconds. The result
  // must count `tokens` tokens (none truncated) and pool to embed_dim floats.
  absl::StatusOr<double> encode_stream(const std::string& text, int64_t tokens, int64_t embed_dim) const;

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::GenerationService::Stub> generation_;
  std::unique_ptr<v1::EncodingService::Stub> encoding_;
};

}  // namespace longnet::bench
