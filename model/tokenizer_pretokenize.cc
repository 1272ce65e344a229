#include "tokenizer_pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "json_util.h"

namespace longnet::model {
namespace {

// tiktoken's cl100k_base pattern, as its Rust core (fancy-regex) runs it:
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|
//   \s+(?!\S)|\s+
// with \s spelled \p{White_Space}: Rust's \s is exactly that property, while PCRE2's \s under UCP also
// takes U+180E MONGOLIAN VOWEL SEPARATOR (White_Space until Unicode 6.3), which splits " \u180Ex"
// differently. Both engines are backtracking and leftmost-first, so alternation order means the same.
constexpr std::string_view kCl100kPattern =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d))re"             // contractions
    R"re(|[^\r\n\p{L}\p{N}]?\p{L}+)re"                // words, with one leading non-letter
    R"re(|\p{N}{1,3})re"                              // numbers, 3 digits at most
    R"re(| ?[^\p{White_Space}\p{L}\p{N}]+[\r\n]*)re"  // punctuation runs
    R"re(|\p{White_Space}*[\r\n]+)re"                 // whitespace up to the last line break
    R"re(|\p{White_Space}+(?!\P{White_Space}))re"     // whitespace but the last before a word
    R"re(|\p{White_Space}+)re";

constexpr size_t kJitStackStart = size_t{32} * 1024;
constexpr size_t kJitStackMax = size_t{1024} * 1024;

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  if (pcre2_get_error_message(code, buffer, sizeof(buffer)) < 0) return absl::StrCat("PCRE2 error ", code);
  return {reinterpret_cast<const char*>(buffer)};
}

// Bytes of the UTF-8 character that starts with `lead` (the text is valid, so the lead is one).
size_t char_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

}  // namespace

struct Pretokenizer::Compiled {
  pcre2_code* code = nullptr;
  ~Compiled() { pcre2_code_free(code); }
};

struct Pretokenizer::Pieces::MatchState {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
  ~MatchState() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
};

std::string_view Pretokenizer::pattern_source(std::string_view name) {
  return name == "cl100k" ? kCl100kPattern : std::string_view();
}

absl::StatusOr<std::unique_ptr<Pretokenizer>> Pretokenizer::create(std::string_view name) {
  const std::string_view source = pattern_source(name);
  if (source.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer: unknown pattern ", json_util::quote(name), R"(; supported: "cl100k")"));
  }
  auto compiled = std::make_unique<Compiled>();
  int error = 0;
  PCRE2_SIZE error_offset = 0;
  compiled->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(source.data()), source.size(),
                                 PCRE2_UTF | PCRE2_UCP, &error, &error_offset, nullptr);
  if (compiled->code == nullptr) {
    return absl::InternalError(absl::StrCat("tokenizer: pattern \"", std::string(name),
                                            "\" does not compile at offset ", error_offset, ": ",
                                            pcre2_message(error)));
  }
  // Without a JIT (not every architecture has one) PCRE2 interprets the same pattern, only slower.
  (void)pcre2_jit_compile(compiled->code, PCRE2_JIT_COMPLETE);
  return std::unique_ptr<Pretokenizer>(new Pretokenizer(std::move(compiled)));
}

Pretokenizer::Pretokenizer(std::unique_ptr<Compiled> compiled) : compiled_(std::move(compiled)) {}
Pretokenizer::~Pretokenizer() = default;

Pretokenizer::Pieces::Pieces(const Pretokenizer& pretokenizer, std::string_view text)
    : compiled_(pretokenizer.compiled_.get()), text_(text), state_(std::make_unique<MatchState>()) {
  state_->data = pcre2_match_data_create_from_pattern(compiled_->code, nullptr);
  state_->context = pcre2_match_context_create(nullptr);
  state_->jit_stack = pcre2_jit_stack_create(kJitStackStart, kJitStackMax, nullptr);
  if (state_->context != nullptr && state_->jit_stack != nullptr) {
    pcre2_jit_stack_assign(state_->context, nullptr, state_->jit_stack);
  }
}

Pretokenizer::Pieces::~Pieces() = default;

bool Pretokenizer::Pieces::next(std::string_view& piece) {
  if (offset_ >= text_.size()) return false;
  size_t end = 0;
  if (pending_match_end_ > offset_) {
    end = pending_match_end_;
  } else {
    // The text was validated as UTF-8 once, by the caller; checking it again on every call would make
    // splitting quadratic in the text length.
    const int rc =
        state_->data == nullptr
            ? PCRE2_ERROR_NOMEMORY
            : pcre2_match(compiled_->code, reinterpret_cast<PCRE2_SPTR>(text_.data()), text_.size(), offset_,
                          PCRE2_NO_UTF_CHECK, state_->data, state_->context);
    if (rc > 0) {
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(state_->data);
      const size_t start = ovector[0];
      end = ovector[1];
      if (end <= start) {
        end = offset_ + char_length(static_cast<unsigned char>(text_[offset_]));  // an empty match
      } else if (start > offset_) {
        pending_match_end_ = end;
        end = start;  // the unmatched gap first
      }
    } else if (rc == PCRE2_ERROR_NOMATCH) {
      end = text_.size();
    } else {
      end = offset_ + char_length(static_cast<unsigned char>(text_[offset_]));
    }
  }
  piece = text_.substr(offset_, end - offset_);
  offset_ = end;
  return true;
}

}  // namespace longnet::model
