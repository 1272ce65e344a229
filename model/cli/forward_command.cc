// longnet-run forward --model DIR --tokens FILE.json --out FILE.npy [--decode]
// FILE.json: {"input_ids": [[...], ...]} (ragged) or, for encoder-decoder models, {"src_ids": [[...]],
// "tgt_ids": [[...]]}. Writes float32 (B, Lmax, F), zero past each sequence's end: logits for decoder and
// encoder-decoder models, final-LN hidden states for encoders. With --decode, decoder rows come from a
// one-token prefill and then one cached decode step per token; without it, from chunked prefill.
#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "cli_args.h"
#include "commands.h"
#include "nlohmann/json.hpp"
#include "npy_writer.h"
#include "runtime.h"

namespace longnet::cli {
namespace {

using Batch = std::vector<std::vector<int32_t>>;

absl::StatusOr<Batch> read_batch(const nlohmann::json& doc, const std::string& key, const std::string& file) {
  auto it = doc.find(key);
  if (it == doc.end())
    return absl::InvalidArgumentError(absl::StrCat(file, ": key \"", key, "\" is missing"));
  if (!it->is_array()) return absl::InvalidArgumentError(absl::StrCat(file, ": \"", key, "\" is not a list"));
  Batch batch;
  for (size_t b = 0; b < it->size(); ++b) {
    const nlohmann::json& row = (*it)[b];
    if (!row.is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": \"", key, "\"[", b, "] is not a list of ids"));
    }
    std::vector<int32_t> ids;
    for (size_t i = 0; i < row.size(); ++i) {
      const nlohmann::json& id = row[i];
      if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
          id.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
        return absl::InvalidArgumentError(
            absl::StrCat(file, ": \"", key, "\"[", b, "][", i, "] = ", id.dump(), " is not a token id"));
      }
      ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
    }
    batch.push_back(std::move(ids));
  }
  return batch;
}

// Logits rows of one sequence, computed `chunk` tokens per forward() call, into `out`.
absl::Status decoder_rows(const Runtime& rt, std::span<const int32_t> source, std::span<const int32_t> ids,
                          int64_t chunk, float* out) {
  if (ids.empty()) return absl::OkStatus();
  const model::ExecContext ctx = rt.context();
  absl::StatusOr<std::unique_ptr<model::Sequence>> seq = rt.model->start_sequence(ctx, source);
  if (!seq.ok()) return seq.status();
  const int64_t vocab = rt.model->vocab_size();
  return rt.model->forward_chunked(ctx, **seq, ids, chunk, model::DecoderOutput::kLogits,
                                   [&](int64_t first, int64_t rows, const float* logits) {
                                     std::copy_n(logits, rows * vocab, out + first * vocab);
                                     return absl::OkStatus();
                                   });
}

}  // namespace

absl::Status run_forward(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args = Args::parse(argv, {"model", "threads", "tokens", "out"}, {"decode"});
  if (!args.ok()) return args.status();
  absl::StatusOr<std::string> tokens_path = args->required("tokens");
  if (!tokens_path.ok()) return tokens_path.status();
  absl::StatusOr<std::string> out_path = args->required("out");
  if (!out_path.ok()) return out_path.status();
  absl::StatusOr<Runtime> rt = open_runtime(*args);
  if (!rt.ok()) return rt.status();
  absl::StatusOr<std::string> text = read_file(*tokens_path);
  if (!text.ok()) return text.status();
  const nlohmann::json doc = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(*tokens_path, ": not a JSON object"));
  }

  const model::LongNetModel& m = *rt->model;
  const bool seq2seq = m.has_encoder() && m.has_decoder();
  absl::StatusOr<Batch> inputs = read_batch(doc, seq2seq ? "tgt_ids" : "input_ids", *tokens_path);
  if (!inputs.ok()) return inputs.status();
  Batch sources(inputs->size());
  if (seq2seq) {
    absl::StatusOr<Batch> src = read_batch(doc, "src_ids", *tokens_path);
    if (!src.ok()) return src.status();
    if (src->size() != inputs->size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          *tokens_path, ": ", src->size(), " src_ids sequences but ", inputs->size(), " tgt_ids sequences"));
    }
    sources = *std::move(src);
  }

  const int64_t batch = static_cast<int64_t>(inputs->size());
  size_t longest = 0;
  for (const auto& ids : *inputs)
    longest = std::max(longest, ids.size());
  const int64_t lmax = static_cast<int64_t>(longest);
  const int64_t features = m.has_decoder() ? m.vocab_size() : m.output_dim(model::DecoderOutput::kHidden);
  std::vector<float> out(static_cast<size_t>(batch * lmax * features), 0.0f);
  const int64_t chunk = args->has("decode") ? 1 : kPrefillChunk;
  for (int64_t b = 0; b < batch; ++b) {
    float* rows = out.data() + b * lmax * features;
    const std::vector<int32_t>& ids = (*inputs)[static_cast<size_t>(b)];
    absl::Status st;
    if (m.has_decoder()) {
      st = decoder_rows(*rt, sources[static_cast<size_t>(b)], ids, chunk, rows);
    } else if (!ids.empty()) {
      st = m.encode(rt->context(), ids, [&](int64_t first, int64_t n, const float* hidden) {
        std::copy_n(hidden, n * features, rows + first * features);
        return absl::OkStatus();
      });
    }
    if (!st.ok()) return absl::Status(st.code(), absl::StrCat("sequence ", b, ": ", st.message()));
  }
  const int64_t shape[] = {batch, lmax, features};
  return write_npy_f32(*out_path, shape, out.data());
}

}  // namespace longnet::cli
