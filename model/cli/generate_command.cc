// longnet-run generate --model DIR --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-k K]
//                      [--top-p P] [--repetition-penalty R] [--seed S]
// Decoder models continue the prompt; encoder-decoder models read the prompt as the source and generate
// the target from [bos]. The prompt is prefilled in chunks, then one cached decode step per new token;
// text is printed as soon as its characters are complete. Stops at eos or after N new tokens.
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "cli_args.h"
#include "commands.h"
#include "longnet/model/sampling.h"
#include "longnet/model/tokenizer.h"
#include "runtime.h"

namespace longnet::cli {
namespace {

absl::StatusOr<model::SamplingParams> sampling_from(const Args& args) {
  model::SamplingParams p;
  absl::StatusOr<double> temperature = args.get_double("temperature", 1.0);
  absl::StatusOr<int64_t> top_k = args.get_int("top-k", 0);
  absl::StatusOr<double> top_p = args.get_double("top-p", 1.0);
  absl::StatusOr<double> penalty = args.get_double("repetition-penalty", 1.0);
  absl::StatusOr<int64_t> seed = args.get_int("seed", 0);
  for (const absl::Status& s :
       {temperature.status(), top_k.status(), top_p.status(), penalty.status(), seed.status()}) {
    if (!s.ok()) return s;
  }
  p.temperature = static_cast<float>(*temperature);
  p.top_k = static_cast<int32_t>(*top_k);
  p.top_p = static_cast<float>(*top_p);
  p.repetition_penalty = static_cast<float>(*penalty);
  p.seed = static_cast<uint64_t>(*seed);
  return p;  // Sampler::create validates
}

}  // namespace

absl::Status run_generate(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args = Args::parse(argv,
                                          {"model", "threads", "prompt", "max-new-tokens", "temperature",
                                           "top-k", "top-p", "repetition-penalty", "seed"},
                                          {});
  if (!args.ok()) return args.status();
  absl::StatusOr<std::string> prompt = args->required("prompt");
  if (!prompt.ok()) return prompt.status();
  absl::StatusOr<int64_t> max_new = args->get_int("max-new-tokens", 128);
  if (!max_new.ok()) return max_new.status();
  if (*max_new < 0)
    return absl::InvalidArgumentError(absl::StrCat("--max-new-tokens must be >= 0, got ", *max_new));
  absl::StatusOr<model::SamplingParams> params = sampling_from(*args);
  if (!params.ok()) return params.status();
  absl::StatusOr<Runtime> rt = open_runtime(*args);
  if (!rt.ok()) return rt.status();
  const model::LongNetModel& m = *rt->model;
  if (!m.has_decoder()) return absl::FailedPreconditionError("generate needs a model with a decoder");
  absl::StatusOr<std::unique_ptr<model::Tokenizer>> tok = model::load_tokenizer(m.config(), m.path());
  if (!tok.ok()) return tok.status();
  params->stop_ids.push_back((*tok)->eos_id());

  const model::ExecContext ctx = rt->context();
  std::vector<int32_t> source;
  std::vector<int32_t> history;
  if (m.has_encoder()) {
    source = (*tok)->encode(*prompt);
    history = {(*tok)->bos_id()};
  } else {
    history = (*tok)->encode(*prompt);
  }
  if (history.empty()) return absl::InvalidArgumentError("--prompt: the prompt has no tokens");
  absl::StatusOr<std::unique_ptr<model::Sequence>> seq = m.start_sequence(ctx, source);
  if (!seq.ok()) return seq.status();

  std::vector<float> logits(static_cast<size_t>(m.vocab_size()));
  // Prefill: only the prompt's last row of logits is needed, and each chunk's call returns its last row.
  absl::Status prefill =
      m.forward_chunked(ctx, **seq, history, kPrefillChunk, model::DecoderOutput::kLastLogits,
                        [&](int64_t, int64_t, const float* last) {
                          std::copy_n(last, m.vocab_size(), logits.data());
                          return absl::OkStatus();
                        });
  if (!prefill.ok()) return prefill;
  absl::StatusOr<model::Sampler> sampler = model::Sampler::create(*params);
  if (!sampler.ok()) return sampler.status();
  model::IncrementalDecoder text = (*tok)->incremental_decoder();
  for (int64_t step = 0; step < *max_new; ++step) {
    absl::StatusOr<int32_t> next = sampler->sample(logits, history);
    if (!next.ok()) return next.status();
    if (sampler->is_stop(*next)) break;
    history.push_back(*next);
    std::fputs(text.feed(*next).c_str(), stdout);
    std::fflush(stdout);
    if (step + 1 == *max_new) break;
    const model::DecodeChunk c{seq->get(), std::span<const int32_t>(&history.back(), 1)};
    if (absl::Status st = m.forward(ctx, {&c, 1}, model::DecoderOutput::kLastLogits, logits.data());
        !st.ok()) {
      return st;
    }
  }
  std::fputs(text.finish().c_str(), stdout);
  std::fputc('\n', stdout);
  return absl::OkStatus();
}

}  // namespace longnet::cli
