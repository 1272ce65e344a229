#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "connection.h"
#include "longnet/v1/encode.grpc.pb.h"

// One text file sent to the server by EncodeStream, piece by piece, with a progress line on stderr.
namespace longnet::client {

// The longest prefix of `text` made of whole, valid UTF-8 characters, and whether what follows it is only
// the start of a character cut off by the end of `text` (then it goes with the next piece).
struct Utf8Prefix {
  size_t length = 0;
  bool cut_character = false;
};
Utf8Prefix utf8_prefix(std::string_view text);

struct StreamedDocument {
  int exit_code = kExitOk;  // kExitUsage (the file) or kExitRpcFailed (the call), with `error`
  std::string error;
  v1::EncodeResult result;
  uint64_t bytes = 0;
  double seconds = 0;
};

// Reads `path` in pieces of `piece_bytes` (cut at character boundaries; the file must be UTF-8) and sends
// them, the first with `options`; returns the result message.
StreamedDocument stream_document(v1::EncodingService::Stub& stub, const Connection& connection,
                                 const std::string& path, const v1::EncodeOptions& options,
                                 size_t piece_bytes, bool progress);

}  // namespace longnet::client
