#include "longnet/model/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace longnet::model {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// The first partial sort for top-p: nuclei are usually a few dozen ids, so sorting the whole vocabulary
// (100K ids per token) would be wasted; the prefix grows 4x until it holds the nucleus.
constexpr size_t kFirstNucleusGuess = 64;

// SplitMix64's output function: a bijection on 64 bits whose outputs pass BigCrush for consecutive inputs.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

absl::Status invalid(const char* field, float value, const char* requirement) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", value, " ", requirement));
}

}  // namespace

absl::Status SamplingParams::validate(int64_t vocab_size) const {
  if (!std::isfinite(temperature) || temperature < 0) {
    return invalid("temperature", temperature, "must be finite and >= 0 (0 = greedy)");
  }
  if (top_k < 0) return absl::InvalidArgumentError(absl::StrCat("top_k: ", top_k, " must be >= 0 (0 = off)"));
  if (!(top_p > 0 && top_p <= 1)) return invalid("top_p", top_p, "must be in (0, 1] (1 = off)");
  if (!std::isfinite(repetition_penalty) || repetition_penalty <= 0) {
    return invalid("repetition_penalty", repetition_penalty, "must be finite and > 0 (1 = off)");
  }
  for (const int32_t id : stop_ids) {
    if (id < 0 || (vocab_size > 0 && id >= vocab_size)) {
      return absl::InvalidArgumentError(
          absl::StrCat("stop_ids: ", id, " is not a token id",
                       vocab_size > 0 ? absl::StrCat(" (vocabulary [0, ", vocab_size, "))") : ""));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Sampler> Sampler::create(SamplingParams params) {
  if (absl::Status status = params.validate(); !status.ok()) return status;
  return Sampler(std::move(params));
}

double Sampler::uniform(uint64_t seed, uint64_t step) {
  const uint64_t bits = mix64(mix64(seed) + (step + 1) * 0x9E3779B97F4A7C15ull);
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

bool Sampler::is_stop(int32_t id) const {
  return std::find(params_.stop_ids.begin(), params_.stop_ids.end(), id) != params_.stop_ids.end();
}

absl::StatusOr<int32_t> Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  const size_t vocab = logits.size();
  if (vocab == 0) return absl::InvalidArgumentError("sample: no logits");
  if (vocab > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return absl::InvalidArgumentError(absl::StrCat("sample: ", vocab, " logits are more than int32 ids"));
  }
  for (size_t i = 0; i < vocab; ++i) {
    if (std::isnan(logits[i]))
      return absl::InternalError(absl::StrCat("sample: the logit of id ", i, " is NaN"));
  }
  for (const int32_t id : history) {
    if (id < 0 || static_cast<size_t>(id) >= vocab) {
      return absl::InvalidArgumentError(
          absl::StrCat("sample: history id ", id, " is outside [0, ", vocab, ")"));
    }
  }

  std::vector<double>& w = logits_;
  w.assign(logits.begin(), logits.end());
  if (params_.repetition_penalty != 1.0f) {
    const double penalty = params_.repetition_penalty;
    seen_.resize(vocab, 0);
    for (const int32_t id : history) {
      uint8_t& seen = seen_[static_cast<size_t>(id)];
      if (seen) continue;  // once per distinct id, however often it occurred
      seen = 1;
      double& x = w[static_cast<size_t>(id)];
      x = x > 0 ? x / penalty : x * penalty;
    }
    for (const int32_t id : history)
      seen_[static_cast<size_t>(id)] = 0;  // all zero again for the next call
  }

  // Greedy and every ordering below break ties towards the lowest id, so results never depend on the
  // standard library's sort.
  const size_t argmax = static_cast<size_t>(std::max_element(w.begin(), w.end()) - w.begin());
  const double max = w[argmax];
  if (max == -kInf) return absl::InternalError("sample: every logit is -inf");
  // Every successful call is one step, greedy or not, so the draw of step t is the same whatever the
  // earlier steps did.
  const double u = uniform(params_.seed, step_++);
  if (params_.temperature == 0.0f) return static_cast<int32_t>(argmax);

  // Probabilities up to a common factor. Subtracting the max first keeps exp() in range for any logits
  // and temperatures; +inf logits (max = +inf) share everything equally.
  std::vector<double>& p = probabilities_;
  p.resize(vocab);
  const double temperature = params_.temperature;
  for (size_t i = 0; i < vocab; ++i) {
    p[i] = max == kInf ? (w[i] == kInf ? 1.0 : 0.0) : std::exp((w[i] - max) / temperature);
  }

  // The candidates: most likely first (by logit, then id) once truncated, else every id in id order.
  const auto before = [&w](int32_t a, int32_t b) {
    const double wa = w[static_cast<size_t>(a)];
    const double wb = w[static_cast<size_t>(b)];
    return wa != wb ? wa > wb : a < b;
  };
  std::vector<int32_t>& candidates = candidates_;
  candidates.resize(vocab);
  for (size_t i = 0; i < vocab; ++i)
    candidates[i] = static_cast<int32_t>(i);
  size_t sorted = 0;  // candidates[0, sorted) are the most likely, in order
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < vocab) {
    const auto k = static_cast<std::ptrdiff_t>(params_.top_k);
    std::nth_element(candidates.begin(), candidates.begin() + (k - 1), candidates.end(), before);
    candidates.resize(static_cast<size_t>(k));
    std::sort(candidates.begin(), candidates.end(), before);
    sorted = candidates.size();
  }
  size_t keep = candidates.size();
  if (params_.top_p < 1.0f) {
    double total = 0;
    for (const int32_t id : candidates)
      total += p[static_cast<size_t>(id)];
    const double threshold = static_cast<double>(params_.top_p) * total;
    for (size_t guess = std::min(kFirstNucleusGuess, candidates.size());;
         guess = std::min(guess * 4, candidates.size())) {
      if (sorted < guess) {
        std::partial_sort(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(guess),
                          candidates.end(), before);
        sorted = guess;
      }
      double cumulative = 0;
      size_t n = 0;
      while (n < sorted && cumulative < threshold)
        cumulative += p[static_cast<size_t>(candidates[n++])];
      if (cumulative >= threshold || sorted == candidates.size()) {
        keep = std::max<size_t>(n, 1);
        break;
      }
    }
  }

  double kept_total = 0;
  for (size_t i = 0; i < keep; ++i)
    kept_total += p[static_cast<size_t>(candidates[i])];
  const double target = u * kept_total;
  double cumulative = 0;
  int32_t last_possible = candidates[0];
  for (size_t i = 0; i < keep; ++i) {
    const double weight = p[static_cast<size_t>(candidates[i])];
    if (weight <= 0) continue;
    cumulative += weight;
    last_possible = candidates[i];
    if (cumulative > target) return last_possible;
  }
  return last_possible;  // rounding left the target at the very top
}

}  // namespace longnet::model
