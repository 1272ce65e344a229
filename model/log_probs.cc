#include "longnet/model/log_probs.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace longnet::model {

double log_sum_exp(std::span<const float> logits) {
  double max = -std::numeric_limits<double>::infinity();
  for (float v : logits)
    max = std::max(max, static_cast<double>(v));
  if (!std::isfinite(max)) return max;
  double sum = 0.0;
  for (float v : logits)
    sum += std::exp(static_cast<double>(v) - max);
  return max + std::log(sum);
}

double log_probability(std::span<const float> logits, int32_t id) {
  return static_cast<double>(logits[static_cast<size_t>(id)]) - log_sum_exp(logits);
}

std::vector<std::pair<int32_t, float>> top_log_probabilities(std::span<const float> logits, int32_t n) {
  const size_t k = std::min(static_cast<size_t>(std::max(n, 0)), logits.size());
  std::vector<int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  auto more_likely = [&](int32_t a, int32_t b) {
    const float la = logits[static_cast<size_t>(a)];
    const float lb = logits[static_cast<size_t>(b)];
    return la > lb || (la == lb && a < b);
  };
  std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(), more_likely);
  const double norm = log_sum_exp(logits);
  std::vector<std::pair<int32_t, float>> out;
  out.reserve(k);
  for (size_t i = 0; i < k; ++i) {
    const int32_t id = ids[i];
    out.emplace_back(id, static_cast<float>(static_cast<double>(logits[static_cast<size_t>(id)]) - norm));
  }
  return out;
}

}  // namespace longnet::model
