#pragma once

#include <string>
#include <string_view>
#include <vector>

// Finds the request's stop strings in generated text that arrives piece by piece (one token's text at a
// time). Text is released as soon as it can no longer be the start of a stop string; a suffix that may
// still grow into one is held back. When a stop string appears (possibly split across pieces, and the
// earliest one when candidates overlap), the text before it is released and the rest dropped: stop strings
// are never returned.
namespace longnet::server {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);

  struct Result {
    std::string text;      // safe to hand out now
    bool matched = false;  // a stop string ended the text; `text` is what preceded it
  };

  // Adds the next piece. After a match every later call returns nothing.
  Result feed(std::string_view piece);
  // The end of the text: releases what was held back (nothing after a match).
  std::string finish();

  bool matched() const { return matched_; }
  size_t held_bytes() const { return held_.size(); }

 private:
  // The length of the longest suffix of `held_` that is a proper prefix of some stop string.
  size_t longest_partial_suffix() const;

  std::vector<std::string> stops_;
  std::string held_;
  bool matched_ = false;
};

}  // namespace longnet::server
