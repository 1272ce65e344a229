#include "serve_client.h"

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace longnet::bench {
namespace {

using Clock = std::chrono::steady_clock;
namespace health = grpc::health::v1;

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

void set_timeout(grpc::ClientContext& ctx, double timeout_s) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::duration_cast<std::chrono::milliseconds>(
                                                          std::chrono::duration<double>(timeout_s)));
}

// gRPC's codes are absl's (both are google.rpc.Code).
absl::Status failed(const std::string& call, const grpc::Status& status) {
  return {static_cast<absl::StatusCode>(status.error_code()),
          absl::StrCat(call, " failed: ", status.error_message())};
}

}  // namespace

ServeClient::ServeClient(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  channel_ = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  generation_ = v1::GenerationService::NewStub(channel_);
  encoding_ = v1::EncodingService::NewStub(channel_);
}

absl::Status ServeClient::wait_serving(double timeout_s, const std::function<absl::Status()>& alive) {
  std::unique_ptr<health::Health::Stub> stub = health::Health::NewStub(channel_);
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  std::string last = "none";
  while (Clock::now() < deadline) {
    if (absl::Status st = alive(); !st.ok()) return st;
    grpc::ClientContext ctx;
    ctx.set_wait_for_ready(true);
    set_timeout(ctx, 2);
    health::HealthCheckResponse response;
    const grpc::Status st = stub->Check(&ctx, health::HealthCheckRequest(), &response);
    if (st.ok() && response.status() == health::HealthCheckResponse::SERVING) return absl::OkStatus();
    last = st.ok() ? health::HealthCheckResponse::ServingStatus_Name(response.status())
                   : failed("Health/Check", st).ToString();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return absl::DeadlineExceededError(
      absl::StrFormat("the server is not SERVING after %.0f s; the last health check: %s", timeout_s, last));
}

absl::StatusOr<v1::GetInfoResponse> ServeClient::info() {
  grpc::ClientContext ctx;
  set_timeout(ctx, 10);
  v1::GetInfoResponse response;
  const grpc::Status st = v1::InfoService::NewStub(channel_)->GetInfo(&ctx, v1::GetInfoRequest(), &response);
  if (!st.ok()) return failed("GetInfo", st);
  return response;
}

StreamRun ServeClient::generate_stream(uint64_t seed, const std::string& prompt,
                                       int64_t max_new_tokens) const {
  v1::GenerateRequest request;
  request.set_text(prompt);
  v1::GenerationParameters* p = request.mutable_parameters();
  p->set_max_new_tokens(static_cast<uint32_t>(max_new_tokens));
  p->set_temperature(1.0f);
  p->set_seed(seed);
  p->set_ignore_eos(true);
  grpc::ClientContext ctx;
  set_timeout(ctx, 600);

  StreamRun run;
  const auto t0 = Clock::now();
  std::unique_ptr<grpc::ClientReader<v1::GenerateStreamResponse>> reader =
      generation_->GenerateStream(&ctx, request);
  v1::GenerateStreamResponse message;  // reused: Read parses into it afresh
  v1::FinishReason finish = v1::FINISH_REASON_UNSPECIFIED;
  while (reader->Read(&message)) {
    if (run.tokens == 0 && message.tokens_size() > 0) run.ttft_s = seconds(Clock::now() - t0);
    run.tokens += message.tokens_size();  // a message may carry several tokens
    if (message.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) finish = message.finish_reason();
  }
  const grpc::Status st = reader->Finish();
  run.wall_s = seconds(Clock::now() - t0);

  const std::string call = absl::StrFormat("GenerateStream (seed %d)", seed);
  if (!st.ok()) {
    run.status = failed(call, st);
  } else if (run.tokens != max_new_tokens) {
    run.status = absl::InternalError(
        absl::StrFormat("%s: %d tokens, not max_new_tokens %d", call, run.tokens, max_new_tokens));
  } else if (finish != v1::FINISH_REASON_LENGTH) {
    run.status = absl::InternalError(absl::StrFormat("%s: finish_reason %s, not FINISH_REASON_LENGTH", call,
                                                     v1::FinishReason_Name(finish)));
  }
  return run;
}

absl::StatusOr<double> ServeClient::encode_stream(const std::string& text, int64_t tokens,
                                                  int64_t embed_dim) const {
  constexpr size_t kChunkBytes = size_t{1} << 20;  // a million tokens is past gRPC's default message size
  const std::string call = absl::StrFormat("EncodeStream (%d tokens)", tokens);
  grpc::ClientContext ctx;
  set_timeout(ctx, 3600);

  const auto t0 = Clock::now();
  std::unique_ptr<grpc::ClientReaderWriter<v1::EncodeStreamRequest, v1::EncodeStreamResponse>> stream =
      encoding_->EncodeStream(&ctx);
  v1::EncodeStreamRequest request;
  for (size_t at = 0; at < text.size(); at += kChunkBytes) {
    request.Clear();
    if (at == 0) request.mutable_options()->set_pooling(v1::POOLING_MEAN);  // the first message only
    request.set_text(text.substr(at, kChunkBytes));
    if (!stream->Write(request)) break;  // the server ended the call: Finish says why
  }
  stream->WritesDone();
  // Without per-token states or log-probabilities the only message back is the result.
  v1::EncodeStreamResponse response;
  v1::EncodeResult result;
  bool have_result = false;
  while (stream->Read(&response)) {
    if (response.has_result()) {
      result = response.result();
      have_result = true;
    }
  }
  const grpc::Status st = stream->Finish();
  const double wall_s = seconds(Clock::now() - t0);

  if (!st.ok()) return failed(call, st);
  if (!have_result) return absl::InternalError(call + ": the stream ended without a result");
  if (static_cast<int64_t>(result.tokens()) != tokens || result.truncated_tokens() != 0) {
    return absl::InternalError(absl::StrFormat("%s: the result counts %d tokens (%d truncated)", call,
                                               result.tokens(), result.truncated_tokens()));
  }
  if (result.pooled_size() != embed_dim) {
    return absl::InternalError(absl::StrFormat("%s: a pooled vector of %d floats, not embed_dim %d", call,
                                               result.pooled_size(), embed_dim));
  }
  return wall_s;
}

}  // namespace longnet::bench
