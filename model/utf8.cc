#include "longnet/model/utf8.h"

#include <cstddef>

namespace longnet::model {
namespace {

// The well-formed byte sequences are those of Unicode's Table 3-7. A lead byte fixes the length and the
// range of the second byte (E0, ED, F0 and F4 narrow it to exclude overlongs, surrogates and code points
// above U+10FFFF); every later byte is 80..BF.
int sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;  // 80..BF (a continuation byte), C0, C1 (overlong leads) and F5..FF never start a character
}

bool valid_second_byte(unsigned char lead, unsigned char byte) {
  unsigned char low = 0x80;
  unsigned char high = 0xBF;
  if (lead == 0xE0) low = 0xA0;
  if (lead == 0xED) high = 0x9F;
  if (lead == 0xF0) low = 0x90;
  if (lead == 0xF4) high = 0x8F;
  return byte >= low && byte <= high;
}

bool is_continuation(unsigned char byte) {
  return byte >= 0x80 && byte <= 0xBF;
}

}  // namespace

void Utf8Sanitizer::push_byte(unsigned char byte, std::string& out) {
  if (pending_size_ != 0) {
    const auto lead = static_cast<unsigned char>(pending_[0]);
    const bool fits = pending_size_ == 1 ? valid_second_byte(lead, byte) : is_continuation(byte);
    if (fits) {
      pending_[pending_size_++] = static_cast<char>(byte);
      if (pending_size_ == expected_size_) {
        out.append(pending_, pending_size_);
        pending_size_ = 0;
      }
      return;
    }
    // The held bytes are a maximal ill-formed subpart: one U+FFFD for them, then `byte` starts afresh.
    out.append(kReplacementCharacter);
    pending_size_ = 0;
  }
  const int length = sequence_length(byte);
  if (length == 1) {
    out.push_back(static_cast<char>(byte));
  } else if (length == 0) {
    out.append(kReplacementCharacter);
  } else {
    pending_[0] = static_cast<char>(byte);
    pending_size_ = 1;
    expected_size_ = static_cast<uint8_t>(length);
  }
}

void Utf8Sanitizer::append(std::string_view bytes, std::string& out) {
  size_t i = 0;
  while (i < bytes.size()) {
    // ASCII runs (most text) are copied whole.
    if (pending_size_ == 0) {
      size_t run = i;
      while (run < bytes.size() && static_cast<unsigned char>(bytes[run]) < 0x80)
        ++run;
      out.append(bytes.data() + i, run - i);
      i = run;
      if (i == bytes.size()) break;
    }
    push_byte(static_cast<unsigned char>(bytes[i]), out);
    ++i;
  }
}

void Utf8Sanitizer::finish(std::string& out) {
  if (pending_size_ != 0) out.append(kReplacementCharacter);
  pending_size_ = 0;
}

std::string sanitize_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  Utf8Sanitizer sanitizer;
  sanitizer.append(text, out);
  sanitizer.finish(out);
  return out;
}

bool is_valid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    const int length = sequence_length(lead);
    if (length == 0 || text.size() - i < static_cast<size_t>(length)) return false;
    if (length > 1 && !valid_second_byte(lead, static_cast<unsigned char>(text[i + 1]))) return false;
    for (int k = 2; k < length; ++k) {
      if (!is_continuation(static_cast<unsigned char>(text[i + k]))) return false;
    }
    i += static_cast<size_t>(length);
  }
  return true;
}

}  // namespace longnet::model
