#pragma once

// Splitting text into the pieces that byte-level BPE encodes one by one (internal to longnet_model).

#include <memory>
#include <string_view>

#include "absl/status/statusor.h"

namespace longnet::model {

// A compiled pre-tokenizer regex (PCRE2, UTF + Unicode properties, JIT-compiled when the library has a
// JIT). Immutable after creation, so one instance serves every thread.
class Pretokenizer {
 public:
  // The pattern called `name`: "cl100k" is the only one built in. InvalidArgument names the others.
  static absl::StatusOr<std::unique_ptr<Pretokenizer>> create(std::string_view name);
  ~Pretokenizer();
  Pretokenizer(const Pretokenizer&) = delete;
  Pretokenizer& operator=(const Pretokenizer&) = delete;

  // The regex source the name stands for (for messages and tests).
  static std::string_view pattern_source(std::string_view name);

  class Pieces;

 private:
  struct Compiled;
  explicit Pretokenizer(std::unique_ptr<Compiled> compiled);
  std::unique_ptr<Compiled> compiled_;
};

// The pieces of one text, in order. They tile the text exactly: a stretch the regex does not match (none
// does for cl100k) or a regex engine error (its resource limits; never seen, even on multi-megabyte runs
// of one character) still comes out as pieces, so no text is ever dropped. `text` must be valid UTF-8 and
// outlive the iterator. Not thread-safe: one per encode call.
class Pretokenizer::Pieces {
 public:
  Pieces(const Pretokenizer& pretokenizer, std::string_view text);
  ~Pieces();
  Pieces(const Pieces&) = delete;
  Pieces& operator=(const Pieces&) = delete;

  // The next piece, or false at the end of the text.
  bool next(std::string_view& piece);

 private:
  struct MatchState;
  const Pretokenizer::Compiled* compiled_;
  std::string_view text_;
  size_t offset_ = 0;
  size_t pending_match_end_ = 0;  // a match found after an unmatched gap, handed out after the gap
  std::unique_ptr<MatchState> state_;
};

}  // namespace longnet::model
