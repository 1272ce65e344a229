// longnet-run score --model DIR --input FILE
// Bits per byte of the file's text under a decoder model: the text is tokenized as the model's tokenizer
// does (for the byte tokenizer: [bos] + its bytes) and run as ONE sequence, in chunks through the KV
// cache so memory stays bounded; every token after the first is predicted from all before it, and
// bits_per_byte = sum of -log2 p(token) / bytes of text. Prints one JSON object.
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "cli_args.h"
#include "commands.h"
#include "longnet/model/log_probs.h"
#include "longnet/model/tokenizer.h"
#include "runtime.h"

namespace longnet::cli {

absl::Status run_score(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args = Args::parse(argv, {"model", "threads", "input"}, {});
  if (!args.ok()) return args.status();
  absl::StatusOr<std::string> input = args->required("input");
  if (!input.ok()) return input.status();
  absl::StatusOr<Runtime> rt = open_runtime(*args);
  if (!rt.ok()) return rt.status();
  const model::LongNetModel& m = *rt->model;
  if (!m.has_decoder() || m.has_encoder()) {
    return absl::FailedPreconditionError("score needs a decoder-only model (longnet_decoder)");
  }
  absl::StatusOr<std::string> text = read_file(*input);
  if (!text.ok()) return text.status();
  absl::StatusOr<std::unique_ptr<model::Tokenizer>> tok = model::load_tokenizer(m.config(), m.path());
  if (!tok.ok()) return tok.status();
  const std::vector<int32_t> ids = (*tok)->encode(*text);
  if (ids.size() < 2)
    return absl::InvalidArgumentError(absl::StrCat(*input, ": nothing to score (", ids.size(), " tokens)"));

  const model::ExecContext ctx = rt->context();
  absl::StatusOr<std::unique_ptr<model::Sequence>> seq = m.start_sequence(ctx);
  if (!seq.ok()) return seq.status();
  const int64_t vocab = m.vocab_size();
  const size_t n = ids.size();
  double nats = 0.0;
  // Rows of ids[0 .. n-2] predict ids[1 .. n-1]; the last token predicts nothing.
  absl::Status st =
      m.forward_chunked(ctx, **seq, std::span<const int32_t>(ids).first(n - 1), kPrefillChunk,
                        model::DecoderOutput::kLogits, [&](int64_t first, int64_t rows, const float* logits) {
                          for (int64_t r = 0; r < rows; ++r) {
                            const std::span<const float> row(logits + r * vocab, static_cast<size_t>(vocab));
                            nats -= model::log_probability(row, ids[static_cast<size_t>(first + r + 1)]);
                          }
                          return absl::OkStatus();
                        });
  if (!st.ok()) return st;
  const double bits = nats / std::log(2.0);
  const size_t bytes = text->size();
  std::printf("{\"bits_per_byte\": %.6f, \"bits_per_token\": %.6f, \"tokens\": %zu, \"bytes\": %zu}\n",
              bytes > 0 ? bits / static_cast<double>(bytes) : 0.0, bits / static_cast<double>(n - 1), n - 1,
              bytes);
  return absl::OkStatus();
}

}  // namespace longnet::cli
