#include "document_stream.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <vector>

#include "absl/strings/str_format.h"

namespace longnet::client {

namespace {

using Clock = std::chrono::steady_clock;

double megabytes(uint64_t bytes) {
  return static_cast<double>(bytes) / 1e6;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// One line on stderr, rewritten in place at most every 100 ms (and at the end).
class Progress {
 public:
  Progress(bool on, std::string name, uint64_t total) : on_(on), name_(std::move(name)), total_(total) {}
  void sent(uint64_t bytes, bool force = false) {
    if (!on_) return;
    if (!force && seconds_since(last_) < 0.1) return;
    last_ = Clock::now();
    const double s = seconds_since(start_);
    std::fprintf(stderr, "\r%s: %.1f / %.1f MB sent (%3.0f%%), %.1f MB/s   ", name_.c_str(), megabytes(bytes),
                 megabytes(total_),
                 total_ > 0 ? 100.0 * static_cast<double>(bytes) / static_cast<double>(total_) : 100.0,
                 s > 0 ? megabytes(bytes) / s : 0.0);
    std::fflush(stderr);
  }
  // Everything is sent: the server encodes the rest, and its result is awaited.
  void waiting(uint64_t bytes) {
    if (!on_) return;
    std::fprintf(stderr, "\r%s: %.1f MB sent (100%%) in %.2f s; the server is encoding...          ",
                 name_.c_str(), megabytes(bytes), seconds_since(start_));
    std::fflush(stderr);
  }
  void done(uint64_t bytes, uint64_t tokens) {
    if (!on_) return;
    const double s = seconds_since(start_);
    std::fprintf(stderr, "\r%s: %.1f MB sent, %llu tokens encoded in %.2f s (%.0f tokens/s)          \n",
                 name_.c_str(), megabytes(bytes), static_cast<unsigned long long>(tokens), s,
                 s > 0 ? static_cast<double>(tokens) / s : 0.0);
  }
  void abandon() {
    if (on_) std::fputc('\n', stderr);
  }

 private:
  bool on_;
  std::string name_;
  uint64_t total_;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_ = Clock::time_point();
};

// Bytes in a UTF-8 sequence that starts with `lead`, or 0 for a byte no sequence starts with.
int sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

bool continuation(unsigned char c) {
  return (c & 0xC0) == 0x80;
}

}  // namespace

Utf8Prefix utf8_prefix(std::string_view text) {
  Utf8Prefix p;
  size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    const int n = sequence_length(lead);
    if (n == 0) break;
    size_t have = 1;
    while (have < static_cast<size_t>(n) && i + have < text.size() &&
           continuation(static_cast<unsigned char>(text[i + have])))
      ++have;
    if (have < static_cast<size_t>(n)) {
      p.cut_character = i + have == text.size();
      break;
    }
    // Overlong three- and four-byte forms, surrogates and code points past U+10FFFF.
    const auto second = static_cast<unsigned char>(text[i + 1 < text.size() ? i + 1 : i]);
    if ((lead == 0xE0 && second < 0xA0) || (lead == 0xED && second > 0x9F) ||
        (lead == 0xF0 && second < 0x90) || (lead == 0xF4 && second > 0x8F))
      break;
    i += static_cast<size_t>(n);
  }
  p.length = i;
  return p;
}

StreamedDocument stream_document(v1::EncodingService::Stub& stub, const Connection& connection,
                                 const std::string& path, const v1::EncodeOptions& options,
                                 size_t piece_bytes, bool progress) {
  StreamedDocument out;
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) {
    out.exit_code = kExitUsage;
    out.error = absl::StrFormat("%s: cannot open it", path);
    return out;
  }
  const auto total = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  const Clock::time_point start = Clock::now();
  Progress bar(progress, path, total);
  std::unique_ptr<grpc::ClientContext> context = call_context(connection);
  std::unique_ptr<grpc::ClientReaderWriter<v1::EncodeStreamRequest, v1::EncodeStreamResponse>> call =
      stub.EncodeStream(context.get());
  v1::EncodeStreamRequest first;
  *first.mutable_options() = options;
  first.set_document_id(path);
  bool writable = call->Write(first);
  std::string carry;  // the start of a character cut off by the previous piece
  std::vector<char> buffer(piece_bytes);
  uint64_t offset = 0;  // file bytes sent
  while (writable && in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto got = static_cast<size_t>(in.gcount());
    if (got == 0) break;
    std::string piece = carry + std::string(buffer.data(), got);
    const Utf8Prefix valid = utf8_prefix(piece);
    const bool last_piece = in.peek() == std::char_traits<char>::eof();
    if (valid.length < piece.size() && (!valid.cut_character || last_piece)) {
      context->TryCancel();
      bar.abandon();
      out.exit_code = kExitUsage;
      out.error = absl::StrFormat("%s: not UTF-8 text (byte %d)", path, offset + valid.length);
      (void)call->Finish();
      return out;
    }
    carry = piece.substr(valid.length);
    piece.resize(valid.length);
    offset += valid.length;
    v1::EncodeStreamRequest message;
    message.set_text(std::move(piece));
    writable = call->Write(message);
    bar.sent(offset);
  }
  call->WritesDone();
  bar.waiting(offset);
  v1::EncodeStreamResponse response;
  while (call->Read(&response)) {
    if (response.has_result()) out.result = response.result();
  }
  const grpc::Status status = call->Finish();
  if (!status.ok()) {
    bar.abandon();
    out.exit_code = kExitRpcFailed;
    out.error = describe_failure("EncodeStream", status);
    return out;
  }
  out.bytes = offset;
  out.seconds = seconds_since(start);
  bar.done(offset, out.result.tokens());
  return out;
}

}  // namespace longnet::client
