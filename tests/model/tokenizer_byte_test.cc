// The byte tokenizer of MODEL_FORMAT.md, and the UTF-8 handling every tokenizer's decoding shares.

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "longnet/model/config.h"
#include "longnet/model/tokenizer.h"
#include "longnet/model/utf8.h"

namespace longnet::model {
namespace {

bool has(const absl::Status& status, const std::string& text) {
  return std::string(status.message()).find(text) != std::string::npos;
}

// bos/eos/pad right after the bytes, as MODEL_FORMAT.md lays them out.
ModelConfig byte_config(int64_t byte_offset = 0, bool add_bos = true, bool add_eos = false) {
  ModelConfig config;
  config.tokenizer.type = "byte";
  config.tokenizer.byte_offset = byte_offset;
  config.tokenizer.add_bos = add_bos;
  config.tokenizer.add_eos = add_eos;
  config.vocab_size = byte_offset + 256 + 3;
  config.bos_id = byte_offset + 256;
  config.eos_id = byte_offset + 257;
  config.pad_id = byte_offset + 258;
  return config;
}

std::unique_ptr<Tokenizer> must_load(const ModelConfig& config) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = load_tokenizer(config, "/nonexistent");
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? *std::move(tokenizer) : nullptr;
}

TEST(ByteTokenizerTest, EncodeIsBosThenTheBytes) {
  const auto tokenizer = must_load(byte_config());
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(tokenizer->kind(), "byte");
  EXPECT_EQ(tokenizer->encode("hi \xC3\xA9"), (std::vector<int32_t>{256, 'h', 'i', ' ', 0xC3, 0xA9}));
  EXPECT_EQ(tokenizer->encode(""), (std::vector<int32_t>{256}));
  EXPECT_EQ(tokenizer->vocab_size(), 259);
  EXPECT_EQ(tokenizer->bos_id(), 256);
  EXPECT_EQ(tokenizer->eos_id(), 257);
  EXPECT_EQ(tokenizer->pad_id(), 258);
}

TEST(ByteTokenizerTest, AddBosAndAddEosFollowTheConfig) {
  EXPECT_EQ(must_load(byte_config(0, false, false))->encode("ab"), (std::vector<int32_t>{'a', 'b'}));
  EXPECT_EQ(must_load(byte_config(0, true, true))->encode("ab"), (std::vector<int32_t>{256, 'a', 'b', 257}));
  EXPECT_EQ(must_load(byte_config(0, false, true))->encode(""), (std::vector<int32_t>{257}));
}

TEST(ByteTokenizerTest, ByteOffsetShiftsEveryByte) {
  ModelConfig config = byte_config(3);
  config.bos_id = 0;  // ByT5-style: specials first, bytes after
  config.eos_id = 1;
  config.pad_id = 2;
  const auto tokenizer = must_load(config);
  ASSERT_NE(tokenizer, nullptr);
  std::string all_bytes;
  for (int b = 0; b < 256; ++b)
    all_bytes.push_back(static_cast<char>(b));
  std::vector<int32_t> expected = {0};
  for (int b = 0; b < 256; ++b)
    expected.push_back(3 + b);
  EXPECT_EQ(tokenizer->encode(all_bytes), expected);
  EXPECT_EQ(tokenizer->token_bytes(3), std::string_view("\0", 1));
  EXPECT_EQ(tokenizer->token_bytes(258), "\xFF");
  EXPECT_EQ(tokenizer->token_bytes(2), "");
  EXPECT_EQ(tokenizer->decode(std::vector<int32_t>{0, 3 + 'o', 3 + 'k', 1}), "ok");
}

TEST(ByteTokenizerTest, DecodeDropsIdsThatAreNotText) {
  const auto tokenizer = must_load(byte_config());
  const std::vector<int32_t> ids = {256, 'a', 257, 258, -1, 100000, 'b', 259};
  EXPECT_EQ(tokenizer->decode(ids), "ab");
}

TEST(ByteTokenizerTest, ValidTextRoundTrips) {
  const auto tokenizer = must_load(byte_config());
  for (const std::string& text : {std::string(), std::string("plain ascii"),
                                  std::string("caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80!"),
                                  std::string("e\xCC\x81 \xE2\x80\x8D\r\n\t"), std::string(1000, 'x')}) {
    EXPECT_EQ(tokenizer->decode(tokenizer->encode(text)), text);
  }
}

TEST(ByteTokenizerTest, InvalidBytesEncodeLosslesslyAndDecodeAsReplacementCharacters) {
  const auto tokenizer = must_load(byte_config(0, false));
  const std::string bytes = "a\xFF\xC3";
  EXPECT_EQ(tokenizer->encode(bytes), (std::vector<int32_t>{'a', 0xFF, 0xC3}));
  EXPECT_EQ(tokenizer->decode(tokenizer->encode(bytes)), "a\xEF\xBF\xBD\xEF\xBF\xBD");
}

// One U+FFFD per maximal ill-formed subpart (Unicode's recommended practice, as JavaScript's TextDecoder).
TEST(Utf8SanitizerTest, ReplacesEachMaximalIllFormedSubpart) {
  const std::string r(kReplacementCharacter);
  const struct {
    std::string in;
    std::string out;
  } cases[] = {
      {"\x80", r},
      {"\xBF\xBF", r + r},
      {"\xC3", r},         // truncated at the end
      {"\xC3 ", r + " "},  // truncated before a space
      {"\xE6\x97", r},     // 2 of 3 bytes: one subpart
      {"\xE6\x97"
       "A",
       r + "A"},            //
      {"\xF0\x9F\x98", r},  // 3 of 4 bytes
      {"\xF0\x9F\x98"
       "A\xF0\x9F\x98\x80",
       r + "A\xF0\x9F\x98\x80"},
      {"\xC0\xAF", r + r},                       // overlong lead bytes never start a character
      {"\xE0\x80\xAF", r + r + r},               // E0 needs A0..BF next
      {"\xED\xA0\x80", r + r + r},               // a surrogate
      {"\xED\x9F\xBF", "\xED\x9F\xBF"},          // U+D7FF, just below the surrogates
      {"\xF4\x8F\xBF\xBF", "\xF4\x8F\xBF\xBF"},  // U+10FFFF
      {"\xF4\x90\x80\x80", r + r + r + r},       // above U+10FFFF
      {"\xF5\x80", r + r},
      {"\xFE\xFF", r + r},
      // Unicode's own example (chapter 3, U+FFFD substitution of maximal subparts).
      {"\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64", "a" + r + r + r + "b" + r + "c" + r + r + "d"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(sanitize_utf8(c.in), c.out) << testing::PrintToString(c.in);
    EXPECT_EQ(is_valid_utf8(c.in), c.in == c.out) << testing::PrintToString(c.in);
  }
}

// However a byte stream is cut into pieces, the sanitized output is the same and every piece of output
// is valid UTF-8 on its own.
TEST(Utf8SanitizerTest, ResultDoesNotDependOnHowTheStreamIsSplit) {
  std::mt19937 rng(7);
  const std::string alphabet[] = {
      "a",    " ",        "\xC3\xA9", "\xE6\x97\xA5", "\xF0\x9F\x98\x80", "\x80",
      "\xC3", "\xE6\x97", "\xF0\x9F", "\xFF",         "\xED\xA0\x80",     "\xF4\x90"};
  for (int trial = 0; trial < 500; ++trial) {
    std::string bytes;
    const int parts = 1 + static_cast<int>(rng() % 12);
    for (int i = 0; i < parts; ++i)
      bytes += alphabet[rng() % std::size(alphabet)];
    const std::string whole = sanitize_utf8(bytes);
    ASSERT_TRUE(is_valid_utf8(whole));

    Utf8Sanitizer sanitizer;
    std::string streamed;
    for (size_t start = 0; start < bytes.size();) {
      const size_t length = std::min<size_t>(1 + rng() % 4, bytes.size() - start);
      std::string piece;
      sanitizer.append(std::string_view(bytes).substr(start, length), piece);
      ASSERT_TRUE(is_valid_utf8(piece)) << testing::PrintToString(bytes);
      streamed += piece;
      start += length;
    }
    std::string tail;
    sanitizer.finish(tail);
    ASSERT_TRUE(is_valid_utf8(tail));
    EXPECT_EQ(streamed + tail, whole) << testing::PrintToString(bytes);
    EXPECT_FALSE(sanitizer.has_pending());
  }
}

TEST(ByteIncrementalDecoderTest, HoldsASplitCharacterBackUntilItsLastByte) {
  const auto tokenizer = must_load(byte_config());
  const std::string emoji = "\xF0\x9F\x98\x80";  // U+1F600, 4 bytes
  IncrementalDecoder decoder = tokenizer->incremental_decoder();
  EXPECT_EQ(decoder.feed(256), "");  // bos is not text
  EXPECT_EQ(decoder.feed('A'), "A");
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(decoder.feed(static_cast<unsigned char>(emoji[i])), "") << i;
    EXPECT_TRUE(decoder.has_pending());
  }
  EXPECT_EQ(decoder.feed(257), "");  // a special in the middle neither emits nor breaks the character
  EXPECT_EQ(decoder.feed(static_cast<unsigned char>(emoji[3])), emoji);
  EXPECT_FALSE(decoder.has_pending());
  EXPECT_EQ(decoder.finish(), "");
}

TEST(ByteIncrementalDecoderTest, BrokenAndTruncatedCharactersBecomeReplacementCharacters) {
  const auto tokenizer = must_load(byte_config());
  const std::string r(kReplacementCharacter);
  IncrementalDecoder decoder = tokenizer->incremental_decoder();
  EXPECT_EQ(decoder.feed(0xF0), "");
  EXPECT_EQ(decoder.feed(0x9F), "");
  EXPECT_EQ(decoder.feed('x'), r + "x");  // the character can no longer complete
  EXPECT_EQ(decoder.feed(0xFF), r);       // never part of UTF-8: replaced at once
  EXPECT_EQ(decoder.feed(0xE6), "");
  EXPECT_EQ(decoder.finish(), r);  // the stream ended inside a character
  EXPECT_FALSE(decoder.has_pending());
  EXPECT_EQ(decoder.feed('y'), "y");  // finish() starts afresh
}

TEST(ByteIncrementalDecoderTest, ConcatenatedOutputEqualsDecode) {
  const auto tokenizer = must_load(byte_config());
  std::mt19937 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<int32_t> ids;
    const int n = static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) {
      // Mostly UTF-8-looking bytes, sometimes a special or an id of no token.
      const auto pick = rng() % 20;
      ids.push_back(pick == 0 ? 256 + static_cast<int32_t>(rng() % 4) : static_cast<int32_t>(rng() % 256));
    }
    IncrementalDecoder decoder = tokenizer->incremental_decoder();
    std::string streamed;
    for (const int32_t id : ids) {
      const std::string piece = decoder.feed(id);
      ASSERT_TRUE(is_valid_utf8(piece));
      streamed += piece;
    }
    streamed += decoder.finish();
    EXPECT_EQ(streamed, tokenizer->decode(ids));
  }
}

TEST(ByteTokenizerLoadTest, RefusesIdsThatDoNotFit) {
  ModelConfig config = byte_config();
  config.bos_id = 65;
  absl::Status status = load_tokenizer(config, "/nonexistent").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(has(status, "bos_id 65 is one of the byte ids [0, 256)")) << status;

  config = byte_config();
  config.eos_id = 259;
  status = load_tokenizer(config, "/nonexistent").status();
  EXPECT_TRUE(has(status, "eos_id 259 is outside the vocabulary [0, 259)")) << status;

  config = byte_config();
  config.tokenizer.byte_offset = 4;
  status = load_tokenizer(config, "/nonexistent").status();
  EXPECT_TRUE(has(status, "byte_offset 4")) << status;
  EXPECT_TRUE(has(status, "outside the vocabulary [0, 259)")) << status;
}

TEST(TokenizerLoadTest, UnknownTypeNamesTheValueAndTheSupportedKinds) {
  ModelConfig config = byte_config();
  config.tokenizer.type = "sentencepiece";
  const absl::Status status = load_tokenizer(config, "/nonexistent").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(has(status, "\"sentencepiece\"")) << status;
  EXPECT_TRUE(has(status, "\"byte\"")) << status;
  EXPECT_TRUE(has(status, "\"tiktoken\"")) << status;
}

}  // namespace
}  // namespace longnet::model
