#pragma once

#include <grpcpp/grpcpp.h>

#include "api/api_context.h"
#include "longnet/v1/encode.grpc.pb.h"

// longnet.v1.EncodingService: one document (Encode), one document in chunks with per-token rows streamed
// back (EncodeStream), or many documents answered in completion order (EncodeBatch).
namespace longnet::server {

class EncodingService final : public v1::EncodingService::Service {
 public:
  explicit EncodingService(ApiContext& api) : api_(api) {}

  grpc::Status Encode(grpc::ServerContext* context, const v1::EncodeRequest* request,
                      v1::EncodeResponse* response) override;
  grpc::Status EncodeStream(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::EncodeStreamResponse, v1::EncodeStreamRequest>* stream) override;
  grpc::Status EncodeBatch(grpc::ServerContext* context, const v1::EncodeBatchRequest* request,
                           grpc::ServerWriter<v1::EncodeBatchResponse>* writer) override;

 private:
  ApiContext& api_;
};

// Per-token rows go out in TokenChunk messages of at most this many floats (1 MiB), a big TokenRows split
// across several.
inline constexpr size_t kMaxChunkFloats = (size_t{1} << 20) / sizeof(float);

}  // namespace longnet::server
