#include "api/tokenizer_service.h"

#include "absl/strings/str_cat.h"
#include "api/status_map.h"
#include "longnet/model/utf8.h"

namespace longnet::server {

grpc::Status TokenizerService::Tokenize(grpc::ServerContext* context, const v1::TokenizeRequest* request,
                                        v1::TokenizeResponse* response) {
  CallGuard guard(api_.state, *context, "Tokenize");
  if (!guard.admitted()) return guard.finish(guard.admission());
  if (absl::Status st = check_message_size(request->ByteSizeLong(), api_.limits); !st.ok()) {
    return guard.finish(to_grpc(st));
  }
  const model::Tokenizer& tokenizer = *api_.loaded.tokenizer;
  std::vector<int32_t> ids;
  if (request->add_special_tokens()) {
    ids = tokenizer.encode(request->text());
  } else {
    tokenizer.encode_text(request->text(), model::SpecialTokens::kAsText, ids);
  }
  response->mutable_ids()->Add(ids.begin(), ids.end());
  for (int32_t id : ids) {
    // Pieces are proto3 strings, so a token ending inside a character shows U+FFFD for its partial bytes.
    response->add_pieces(model::sanitize_utf8(tokenizer.token_bytes(id)));
  }
  guard.note(absl::StrCat("tokens=", ids.size()));
  return guard.finish(grpc::Status::OK);
}

grpc::Status TokenizerService::Detokenize(grpc::ServerContext* context, const v1::DetokenizeRequest* request,
                                          v1::DetokenizeResponse* response) {
  CallGuard guard(api_.state, *context, "Detokenize");
  if (!guard.admitted()) return guard.finish(guard.admission());
  if (absl::Status st = check_message_size(request->ByteSizeLong(), api_.limits); !st.ok()) {
    return guard.finish(to_grpc(st));
  }
  if (absl::Status st = check_token_ids(as_span(request->ids()), api_.loaded.traits.vocab_size, "ids");
      !st.ok()) {
    return guard.finish(to_grpc(st));
  }
  response->set_text(api_.loaded.tokenizer->decode(as_span(request->ids())));
  guard.note(absl::StrCat("tokens=", request->ids_size()));
  return guard.finish(grpc::Status::OK);
}

}  // namespace longnet::server
