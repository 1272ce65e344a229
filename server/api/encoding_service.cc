#include "api/encoding_service.h"

#include <algorithm>
#include <cmath>
#include <list>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "api/request_loop.h"
#include "api/status_map.h"
#include "observability/metrics.h"

namespace longnet::server {
namespace {

EncodeJob job_for(PreparedDocument& doc, const EncodeSettings& settings, const CallGuard& guard,
                  Clock::time_point deadline) {
  EncodeJob job;
  job.request_id = guard.request_id();
  job.ids = std::move(doc.ids);
  job.pooling = settings.pooling;
  job.normalize = settings.normalize;
  job.score = settings.score;
  job.return_token_states = settings.return_token_states;
  job.return_token_logprobs = settings.return_token_logprobs;
  job.deadline = deadline;
  return job;
}

v1::EncodeResult result_from(const EncodeOutcome& outcome, const PreparedDocument& doc,
                             const EncodeSettings& settings, const StageTimes& times,
                             Clock::time_point accepted, const std::string& id) {
  v1::EncodeResult result;
  result.set_id(id);
  result.mutable_pooled()->Add(outcome.pooled.begin(), outcome.pooled.end());
  result.set_tokens(static_cast<uint64_t>(outcome.tokens));
  result.set_truncated_tokens(static_cast<uint64_t>(doc.truncated));
  if (settings.score) {
    v1::Score* score = result.mutable_score();
    const double bits = -outcome.log_likelihood / std::log(2.0);
    score->set_log_likelihood(outcome.log_likelihood);
    score->set_scored_tokens(static_cast<uint64_t>(outcome.scored_tokens));
    score->set_bits_per_token(outcome.scored_tokens > 0 ? bits / static_cast<double>(outcome.scored_tokens)
                                                        : 0);
    score->set_bytes(doc.bytes);
    score->set_bits_per_byte(doc.bytes > 0 ? bits / static_cast<double>(doc.bytes) : 0);
  }
  *result.mutable_timings() = timings_from(times, accepted);
  return result;
}

void record(Metrics* metrics, const EncodeOutcome& outcome, const StageTimes& times) {
  if (metrics == nullptr) return;
  metrics->add_encoded_tokens(outcome.tokens);
  if (times.admitted >= 0) metrics->observe_queue_time(times.admitted);
}

// `rows` as TokenChunk messages of at most kMaxChunkFloats floats each.
template <typename Emit>
bool emit_chunks(const TokenRows& rows, Emit&& emit) {
  if (rows.rows <= 0) return true;
  const size_t dim = rows.states.size() / static_cast<size_t>(rows.rows);
  const size_t per_row = dim + (rows.logprobs.empty() ? 0 : 1);
  const int64_t rows_per_chunk =
      static_cast<int64_t>(std::max<size_t>(1, kMaxChunkFloats / std::max<size_t>(1, per_row)));
  for (int64_t off = 0; off < rows.rows; off += rows_per_chunk) {
    const int64_t n = std::min(rows_per_chunk, rows.rows - off);
    v1::TokenChunk chunk;
    chunk.set_first_position(static_cast<uint64_t>(rows.first + off));
    chunk.set_rows(static_cast<uint32_t>(n));
    if (dim > 0) {
      chunk.set_dim(static_cast<uint32_t>(dim));
      const auto begin = rows.states.begin() + off * static_cast<int64_t>(dim);
      chunk.mutable_states()->Add(begin, begin + n * static_cast<int64_t>(dim));
    }
    if (!rows.logprobs.empty()) {
      const auto begin = rows.logprobs.begin() + off;
      chunk.mutable_logprobs()->Add(begin, begin + n);
    }
    if (!emit(std::move(chunk))) return false;
  }
  return true;
}

absl::Status with_field(const absl::Status& status, std::string_view field) {
  return {status.code(), absl::StrCat(absl::string_view(field.data(), field.size()), ": ", status.message())};
}

}  // namespace

grpc::Status EncodingService::Encode(grpc::ServerContext* context, const v1::EncodeRequest* request,
                                     v1::EncodeResponse* response) {
  CallGuard guard(api_.state, *context, "Encode");
  if (!guard.admitted()) return guard.finish(guard.admission());
  auto run = [&]() -> grpc::Status {
    if (absl::Status st = check_message_size(request->ByteSizeLong(), api_.limits); !st.ok())
      return to_grpc(st);
    if (absl::Status st = guard.adopt_request_id(request->request_id()); !st.ok()) return to_grpc(st);
    const LoadedModel& loaded = api_.loaded;
    absl::StatusOr<EncodeSettings> settings =
        validate_encode_options(request->options(), loaded.traits, api_.limits, EncodeRpc::kEncode);
    if (!settings.ok()) return to_grpc(settings.status());
    absl::StatusOr<PreparedDocument> doc =
        prepare_document(request->document(), *settings, loaded.traits, api_.tokenize_fn(), "document");
    if (!doc.ok()) return to_grpc(doc.status());
    const Clock::time_point deadline = call_deadline(*context);
    auto handle = loaded.engine->submit(job_for(*doc, *settings, guard, deadline));
    if (!handle.ok()) return to_grpc(handle.status());
    const Clock::time_point accepted = Clock::now();
    RequestLoop<EncodeHandle> loop(**handle, *context, deadline);
    EncodeHandle::UpdateType last = loop.run([](std::vector<TokenRows>&) {});
    if (grpc::Status st = loop.ending_status(last.status); !st.ok()) return st;
    record(api_.metrics, last.outcome, last.times);
    guard.note(absl::StrCat("tokens=", last.outcome.tokens));
    *response->mutable_result() =
        result_from(last.outcome, *doc, *settings, last.times, accepted, request->document().id());
    return grpc::Status::OK;
  };
  grpc::Status status = run();
  response->set_request_id(guard.request_id());
  return guard.finish(status);
}

grpc::Status EncodingService::EncodeStream(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::EncodeStreamResponse, v1::EncodeStreamRequest>* stream) {
  CallGuard guard(api_.state, *context, "EncodeStream");
  if (!guard.admitted()) return guard.finish(guard.admission());
  auto run = [&]() -> grpc::Status {
    const LoadedModel& loaded = api_.loaded;
    DocumentAssembler assembler(api_.limits);
    UploadBudget::Share upload(api_.uploads);
    EncodeSettings settings;
    std::string document_id;
    v1::EncodeStreamRequest message;
    size_t index = 0;
    while (stream->Read(&message)) {
      if (absl::Status st = check_message_size(message.ByteSizeLong(), api_.limits); !st.ok())
        return to_grpc(st);
      if (index == 0) {
        if (absl::Status st = guard.adopt_request_id(message.request_id()); !st.ok()) return to_grpc(st);
        absl::StatusOr<EncodeSettings> s =
            validate_encode_options(message.options(), loaded.traits, api_.limits, EncodeRpc::kEncodeStream);
        if (!s.ok()) return to_grpc(s.status());
        settings = *s;
        document_id = message.document_id();
      }
      if (absl::Status st = assembler.add(message, index); !st.ok()) return to_grpc(st);
      const size_t held =
          assembler.is_text() ? assembler.text().size() : assembler.ids().size() * sizeof(int32_t);
      if (absl::Status st = upload.grow_to(held); !st.ok()) return to_grpc(st);
      ++index;
    }
    if (context->IsCancelled()) return {grpc::StatusCode::CANCELLED, "client cancelled"};
    if (index == 0) {
      return {grpc::StatusCode::INVALID_ARGUMENT,
              "request: no messages (the first message carries the options, then the document's chunks)"};
    }
    if (assembler.empty() || (assembler.is_text() ? assembler.text().empty() : assembler.ids().empty())) {
      return {grpc::StatusCode::INVALID_ARGUMENT, "document: no text or ids received"};
    }
    absl::StatusOr<PreparedDocument> doc =
        assembler.is_text()
            ? prepare_document(api_.tokenize(assembler.text()), true, assembler.text().size(), settings,
                               loaded.traits, "document")
            : prepare_document(std::move(assembler.ids()), false, 0, settings, loaded.traits, "document");
    if (!doc.ok()) return to_grpc(doc.status());
    const Clock::time_point deadline = call_deadline(*context);
    auto handle = loaded.engine->submit(job_for(*doc, settings, guard, deadline));
    if (!handle.ok()) return to_grpc(handle.status());
    const Clock::time_point accepted = Clock::now();
    RequestLoop<EncodeHandle> loop(**handle, *context, deadline);
    auto write_chunk = [&](v1::TokenChunk chunk) {
      v1::EncodeStreamResponse out;
      *out.mutable_chunk() = std::move(chunk);
      out.set_request_id(guard.request_id());
      return stream->Write(out);
    };
    EncodeHandle::UpdateType last = loop.run([&](std::vector<TokenRows>& events) {
      for (const TokenRows& rows : events) {
        if (!emit_chunks(rows, write_chunk)) {
          loop.client_gone();
          return;
        }
      }
    });
    if (grpc::Status st = loop.ending_status(last.status); !st.ok()) return st;
    record(api_.metrics, last.outcome, last.times);
    guard.note(absl::StrCat("tokens=", last.outcome.tokens, " messages=", index));
    v1::EncodeStreamResponse out;
    *out.mutable_result() = result_from(last.outcome, *doc, settings, last.times, accepted, document_id);
    out.set_request_id(guard.request_id());
    if (!stream->Write(out)) return {grpc::StatusCode::CANCELLED, "client went away"};
    return grpc::Status::OK;
  };
  return guard.finish(run());
}

grpc::Status EncodingService::EncodeBatch(grpc::ServerContext* context, const v1::EncodeBatchRequest* request,
                                          grpc::ServerWriter<v1::EncodeBatchResponse>* writer) {
  CallGuard guard(api_.state, *context, "EncodeBatch");
  if (!guard.admitted()) return guard.finish(guard.admission());
  auto run = [&]() -> grpc::Status {
    if (absl::Status st = check_message_size(request->ByteSizeLong(), api_.limits); !st.ok())
      return to_grpc(st);
    if (absl::Status st = guard.adopt_request_id(request->request_id()); !st.ok()) return to_grpc(st);
    if (absl::Status st = validate_batch_shape(*request, api_.limits); !st.ok()) return to_grpc(st);
    const LoadedModel& loaded = api_.loaded;
    absl::StatusOr<EncodeSettings> settings =
        validate_encode_options(request->options(), loaded.traits, api_.limits, EncodeRpc::kEncodeBatch);
    if (!settings.ok()) return to_grpc(settings.status());

    // Every document is checked before any is submitted: one bad document fails the call with no work done.
    struct Pending {
      int index;
      PreparedDocument doc;
      std::shared_ptr<EncodeHandle> handle;
    };
    std::list<Pending> pending;
    for (int i = 0; i < request->documents_size(); ++i) {
      absl::StatusOr<PreparedDocument> doc =
          prepare_document(request->documents(i), *settings, loaded.traits, api_.tokenize_fn(),
                           absl::StrCat("documents[", i, "]"));
      if (!doc.ok()) return to_grpc(doc.status());
      pending.push_back({i, *std::move(doc), nullptr});
    }

    const Clock::time_point deadline = call_deadline(*context);
    absl::Status failure;
    for (Pending& p : pending) {
      // The job takes the ids; the counts the result reports stay in p.doc.
      auto handle = loaded.engine->submit(job_for(p.doc, *settings, guard, deadline));
      if (!handle.ok()) {
        failure = with_field(handle.status(), absl::StrCat("documents[", p.index, "]"));
        break;
      }
      p.handle = *std::move(handle);
    }
    std::erase_if(pending, [](const Pending& p) { return p.handle == nullptr; });
    const Clock::time_point accepted = Clock::now();

    // The batch ends early when a document fails (`failure`) or this side ends the call (`why`).
    CallEnd why = CallEnd::kNone;
    auto cancel_all = [&](const absl::Status& status) {
      for (Pending& p : pending)
        p.handle->cancel(status);
    };
    auto going = [&] { return failure.ok() && why == CallEnd::kNone; };
    if (!failure.ok()) cancel_all(absl::CancelledError("another document of the batch failed"));
    int64_t tokens = 0;
    // Results go out in completion order: poll every pending document, sleep on the oldest.
    while (!pending.empty()) {
      bool progressed = false;
      for (auto it = pending.begin(); it != pending.end();) {
        const bool oldest = it == pending.begin() && !progressed;
        EncodeHandle::UpdateType u =
            it->handle->take(oldest ? Clock::now() + std::chrono::milliseconds(10) : Clock::now());
        if (!u.done) {
          ++it;
          continue;
        }
        progressed = true;
        if (going()) {
          if (!u.status.ok()) {
            const std::string& id = request->documents(it->index).id();
            failure = with_field(u.status, absl::StrCat("documents[", it->index, "] (id \"", id, "\")"));
            cancel_all(absl::CancelledError("another document of the batch failed"));
          } else {
            record(api_.metrics, u.outcome, u.times);
            tokens += u.outcome.tokens;
            v1::EncodeBatchResponse out;
            *out.mutable_result() = result_from(u.outcome, it->doc, *settings, u.times, accepted,
                                                request->documents(it->index).id());
            out.set_request_id(guard.request_id());
            if (!writer->Write(out)) {
              why = CallEnd::kClientGone;
              cancel_all(cancel_status(why));
            }
          }
        }
        it = pending.erase(it);
      }
      if (going() && !pending.empty()) {
        why = check_call(*context, deadline);
        if (why != CallEnd::kNone) cancel_all(cancel_status(why));
      }
    }
    guard.note(absl::StrCat("documents=", request->documents_size(), " tokens=", tokens));
    return call_status(why, failure);
  };
  return guard.finish(run());
}

}  // namespace longnet::server
