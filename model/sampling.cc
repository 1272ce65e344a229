#include "longnet/model/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace longnet::model {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// SplitMix64's output function: a bijection on 64 bits whose outputs pass BigCrush for consecutive inputs.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The size of the nucleus of `candidates` (ranked by `before`): the shortest top prefix whose probability
// reaches top_p of theirs. A quickselect on probability mass: split the unresolved range at its middle
// rank; if the upper half holds the mass still needed the nucleus ends inside it, else the whole upper
// half is in and the search goes on in the lower half. O(n) expected. Leaves the nucleus (unordered) at
// the front of `candidates`.
template <typename Before>
size_t select_nucleus(std::vector<int32_t>& candidates, const std::vector<double>& p, float top_p,
                      const Before& before) {
  double total = 0;
  for (const int32_t id : candidates)
    total += p[static_cast<size_t>(id)];
  double needed = static_cast<double>(top_p) * total;
  // Invariant: candidates[0, lo) rank above [lo, hi), which rank above [hi, end); the top lo ids hold
  // less than the threshold (needed > 0 of it is missing) and the top hi ids reach it.
  size_t lo = 0;
  size_t hi = candidates.size();
  while (hi - lo > 1) {
    const size_t mid = lo + (hi - lo) / 2;
    const auto begin = candidates.begin();
    std::nth_element(begin + static_cast<std::ptrdiff_t>(lo), begin + static_cast<std::ptrdiff_t>(mid),
                     begin + static_cast<std::ptrdiff_t>(hi), before);
    double upper = 0;
    for (size_t i = lo; i < mid; ++i)
      upper += p[static_cast<size_t>(candidates[i])];
    if (upper >= needed) {
      hi = mid;
    } else {
      needed -= upper;
      lo = mid;
    }
  }
  return hi;
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
  if (!(top_p > 0 && top_p <= 1)) return invalid("top_p", top_p, "is not in (0, 1] (1 = off)");
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

  // Truncation keeps a prefix of the ids ranked by (logit descending, id ascending), a strict total order.
  // Both cuts are selections (O(V) expected); only the kept ids are sorted, to be drawn most likely
  // first. Without truncation the draw walks every id in id order. (kernels/cuda/sampling.cu draws in the
  // same orders, so both pick the same token for the same uniform number.)
  const auto before = [&w](int32_t a, int32_t b) {
    const double wa = w[static_cast<size_t>(a)];
    const double wb = w[static_cast<size_t>(b)];
    return wa != wb ? wa > wb : a < b;
  };
  std::vector<int32_t>& candidates = candidates_;
  candidates.resize(vocab);
  for (size_t i = 0; i < vocab; ++i)
    candidates[i] = static_cast<int32_t>(i);
  const bool top_k = params_.top_k > 0 && static_cast<size_t>(params_.top_k) < vocab;
  if (top_k) {
    const auto k = static_cast<std::ptrdiff_t>(params_.top_k);
    std::nth_element(candidates.begin(), candidates.begin() + (k - 1), candidates.end(), before);
    candidates.resize(static_cast<size_t>(k));
  }
  if (params_.top_p < 1.0f) candidates.resize(select_nucleus(candidates, p, params_.top_p, before));
  if (candidates.size() < vocab) std::sort(candidates.begin(), candidates.end(), before);

  double kept_total = 0;
  for (const int32_t id : candidates)
    kept_total += p[static_cast<size_t>(id)];
  const double target = u * kept_total;
  double cumulative = 0;
  int32_t last_possible = candidates[0];
  for (const int32_t id : candidates) {
    const double weight = p[static_cast<size_t>(id)];
    if (weight <= 0) continue;
    cumulative += weight;
    last_possible = id;
    if (cumulative > target) return id;
  }
  return last_possible;  // rounding left the target at the very top
}

}  // namespace longnet::model
