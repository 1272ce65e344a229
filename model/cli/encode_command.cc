// longnet-run encode --model DIR --input FILE [--pooling mean|first|last] [--progress]
// The pooled final-LN hidden state of the file's text: through the encoder for encoder and
// encoder-decoder models (block by block), through the decoder (chunked prefill) for decoder models.
// Memory stays bounded by a block / chunk whatever the length. Prints a JSON list of floats.
#include <chrono>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli_args.h"
#include "commands.h"
#include "longnet/model/pooling.h"
#include "longnet/model/tokenizer.h"
#include "runtime.h"

namespace longnet::cli {

absl::Status run_encode(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args = Args::parse(argv, {"model", "threads", "input", "pooling"}, {"progress"});
  if (!args.ok()) return args.status();
  absl::StatusOr<std::string> input = args->required("input");
  if (!input.ok()) return input.status();
  absl::StatusOr<model::Pooling> pooling = model::parse_pooling(args->get("pooling", "mean"));
  if (!pooling.ok() || *pooling == model::Pooling::kNone) {
    return absl::InvalidArgumentError(
        absl::StrCat("--pooling: '", args->get("pooling", "mean"), "' is not one of mean, first, last"));
  }
  absl::StatusOr<Runtime> rt = open_runtime(*args);
  if (!rt.ok()) return rt.status();
  const model::LongNetModel& m = *rt->model;
  absl::StatusOr<std::string> text = read_file(*input);
  if (!text.ok()) return text.status();
  absl::StatusOr<std::unique_ptr<model::Tokenizer>> tok = model::load_tokenizer(m.config(), m.path());
  if (!tok.ok()) return tok.status();
  const std::vector<int32_t> ids = (*tok)->encode(*text);
  if (ids.empty()) return absl::InvalidArgumentError(absl::StrCat(*input, ": no tokens to encode"));

  const int64_t n = static_cast<int64_t>(ids.size());
  const int64_t dim = m.output_dim(model::DecoderOutput::kHidden);
  model::Pooler pooler(*pooling, /*normalize=*/false, dim, n);
  const bool progress = args->has("progress");
  const auto start = std::chrono::steady_clock::now();
  auto on_block = [&](int64_t first, int64_t rows, const float* hidden) {
    pooler.add(first, rows, hidden, dim);
    if (progress) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::fprintf(stderr, "\rencoded %lld / %lld tokens (%.0f tokens/s)",
                   static_cast<long long>(first + rows), static_cast<long long>(n),
                   static_cast<double>(first + rows) / std::max(s, 1e-9));
      if (first + rows == n) std::fputc('\n', stderr);
    }
    return absl::OkStatus();
  };

  const model::ExecContext ctx = rt->context();
  if (m.has_encoder()) {
    absl::Status st = m.encode(ctx, ids, on_block);
    if (!st.ok()) return st;
  } else {
    absl::StatusOr<std::unique_ptr<model::Sequence>> seq = m.start_sequence(ctx);
    if (!seq.ok()) return seq.status();
    absl::Status st =
        m.forward_chunked(ctx, **seq, ids, kPrefillChunk, model::DecoderOutput::kHidden, on_block);
    if (!st.ok()) return st;
  }
  std::string json = "[";
  for (double v : pooler.result())
    absl::StrAppend(&json, json.size() > 1 ? ", " : "", absl::StrFormat("%.9g", v));
  std::printf("%s]\n", json.c_str());
  return absl::OkStatus();
}

}  // namespace longnet::cli
