#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace longnet::model {

// Turns a byte stream that arrives in pieces (the bytes of one token after another) into valid UTF-8.
// A character split across pieces is held back until its last byte arrives; bytes that can never become
// a well-formed character are replaced by U+FFFD, one per maximal ill-formed subpart (Unicode's
// recommended practice, and what the WHATWG/JS TextDecoder does), so the output never holds invalid UTF-8
// and no text is lost: the result of appending every piece then finish() equals sanitizing the whole
// stream at once, however it was split.
class Utf8Sanitizer {
 public:
  // Appends to `out` every character that `bytes` completes.
  void append(std::string_view bytes, std::string& out);
  // Appends U+FFFD for a truncated character still held back, and starts afresh.
  void finish(std::string& out);
  // Whether bytes of an incomplete character are held back.
  bool has_pending() const { return pending_size_ != 0; }

 private:
  void push_byte(unsigned char byte, std::string& out);

  char pending_[4] = {};
  uint8_t pending_size_ = 0;   // bytes of the current character seen so far
  uint8_t expected_size_ = 0;  // its length, from the lead byte
};

// `text` with every ill-formed subpart replaced by U+FFFD (as Utf8Sanitizer does).
std::string sanitize_utf8(std::string_view text);
// Whether `text` is well-formed UTF-8 (no surrogates, overlongs or code points beyond U+10FFFF).
bool is_valid_utf8(std::string_view text);

inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD

}  // namespace longnet::model
