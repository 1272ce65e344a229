#include "api/stop_matcher.h"

#include <algorithm>
#include <utility>

namespace longnet::server {

StopMatcher::StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
}

StopMatcher::Result StopMatcher::feed(std::string_view piece) {
  Result result;
  if (matched_) return result;
  if (stops_.empty()) {
    result.text.assign(piece);
    return result;
  }
  held_.append(piece);
  // The earliest stop string in the held text. Everything before held_ was released because no stop string
  // could start there, so a match can only start inside held_.
  size_t first = std::string::npos;
  for (const std::string& stop : stops_) {
    const size_t at = held_.find(stop);
    if (at < first) first = at;
  }
  if (first != std::string::npos) {
    matched_ = true;
    result.matched = true;
    result.text = held_.substr(0, first);
    held_.clear();
    return result;
  }
  const size_t keep = longest_partial_suffix();
  result.text = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return result;
}

std::string StopMatcher::finish() {
  if (matched_) return {};
  return std::exchange(held_, {});
}

size_t StopMatcher::longest_partial_suffix() const {
  size_t best = 0;
  for (const std::string& stop : stops_) {
    const size_t max_len = std::min(stop.size() - 1, held_.size());
    for (size_t len = max_len; len > best; --len) {
      if (std::string_view(held_).substr(held_.size() - len) == std::string_view(stop).substr(0, len)) {
        best = len;
        break;
      }
    }
  }
  return best;
}

}  // namespace longnet::server
