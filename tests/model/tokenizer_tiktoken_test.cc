// The "tiktoken" tokenizer on OpenAI's cl100k_base, against ids computed by the tiktoken npm package
// (tests/data/tokenizer/cl100k_golden.json, written by tools/tokenizer/gen_golden.js).

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "longnet/model/config.h"
#include "longnet/model/tokenizer.h"
#include "longnet/model/utf8.h"

namespace longnet::model {
namespace {

namespace fs = std::filesystem;

const fs::path kDataDir = fs::path(LONGNET_TEST_DATA_DIR) / "tokenizer";
constexpr int32_t kEndOfText = 100257;
constexpr int64_t kCl100kVocab = 100277;  // tiktoken's n_vocab for cl100k_base: ranks, then the specials
constexpr char kCl100kOptions[] =
    R"({"type":"tiktoken","file":"cl100k_base.tiktoken","pattern":"cl100k","special_tokens":)"
    R"({"<|endoftext|>":100257,"<|fim_prefix|>":100258,"<|fim_middle|>":100259,"<|fim_suffix|>":100260,)"
    R"("<|endofprompt|>":100276}})";

bool has(const absl::Status& status, const std::string& text) {
  return std::string(status.message()).find(text) != std::string::npos;
}

ModelConfig cl100k_config(bool add_bos = false, bool add_eos = false) {
  ModelConfig config;
  config.vocab_size = kCl100kVocab;
  config.bos_id = kEndOfText;
  config.eos_id = kEndOfText;
  config.pad_id = kEndOfText;
  config.tokenizer.type = "tiktoken";
  config.tokenizer.file = "cl100k_base.tiktoken";
  config.tokenizer.add_bos = add_bos;
  config.tokenizer.add_eos = add_eos;
  config.tokenizer.options_json = kCl100kOptions;
  return config;
}

// Loaded once: parsing 100K ranks for every test would only slow the suite.
const Tokenizer& cl100k() {
  static const Tokenizer* const tokenizer = [] {
    absl::StatusOr<std::unique_ptr<Tokenizer>> loaded = load_tokenizer(cl100k_config(), kDataDir);
    if (!loaded.ok()) {
      ADD_FAILURE() << loaded.status();
      std::abort();
    }
    return loaded->release();
  }();
  return *tokenizer;
}

std::vector<int32_t> encode_text(const Tokenizer& tokenizer, std::string_view text,
                                 SpecialTokens specials = SpecialTokens::kAsText) {
  std::vector<int32_t> ids;
  tokenizer.encode_text(text, specials, ids);
  return ids;
}

std::string from_hex(const std::string& hex) {
  std::string bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return bytes;
}

struct GoldenCase {
  std::string name;
  std::string text;  // raw bytes, possibly invalid UTF-8
  bool allow_special = false;
  std::vector<int32_t> ids;
  std::string decoded;
};

std::vector<GoldenCase> golden_cases() {
  std::ifstream in(kDataDir / "cl100k_golden.json");
  EXPECT_TRUE(in.good()) << "cannot open cl100k_golden.json";
  const nlohmann::json doc = nlohmann::json::parse(in);
  EXPECT_EQ(doc.at("package"), "tiktoken@1.0.22");
  std::vector<GoldenCase> cases;
  for (const auto& entry : doc.at("cases")) {
    GoldenCase c;
    c.name = entry.at("name");
    c.text =
        entry.contains("bytes_hex") ? from_hex(entry.at("bytes_hex")) : entry.at("text").get<std::string>();
    c.allow_special = entry.at("allow_special");
    c.ids = entry.at("ids").get<std::vector<int32_t>>();
    c.decoded = entry.at("decoded");
    cases.push_back(std::move(c));
  }
  return cases;
}

TEST(TiktokenTest, MatchesTheTiktokenPackageOnEveryGoldenCase) {
  const Tokenizer& tokenizer = cl100k();
  const std::vector<GoldenCase> cases = golden_cases();
  ASSERT_GE(cases.size(), 200u);
  for (const GoldenCase& c : cases) {
    const auto specials = c.allow_special ? SpecialTokens::kRecognise : SpecialTokens::kAsText;
    EXPECT_EQ(encode_text(tokenizer, c.text, specials), c.ids) << c.name;
    EXPECT_EQ(tokenizer.decode(c.ids), c.decoded) << c.name;
  }
}

TEST(TiktokenTest, ValidTextRoundTrips) {
  const Tokenizer& tokenizer = cl100k();
  for (const GoldenCase& c : golden_cases()) {
    if (!is_valid_utf8(c.text)) continue;
    EXPECT_EQ(tokenizer.decode(encode_text(tokenizer, c.text)), c.text) << c.name;
  }
}

TEST(TiktokenTest, KnownIds) {
  const Tokenizer& tokenizer = cl100k();
  EXPECT_EQ(tokenizer.kind(), "tiktoken");
  EXPECT_EQ(encode_text(tokenizer, "hello world"), (std::vector<int32_t>{15339, 1917}));
  EXPECT_EQ(tokenizer.token_bytes(15339), "hello");
  EXPECT_EQ(tokenizer.token_bytes(1917), " world");
  EXPECT_EQ(tokenizer.token_bytes(kEndOfText), "");  // special: not text
  EXPECT_EQ(tokenizer.token_bytes(100256), "");      // no token at all
  EXPECT_EQ(tokenizer.token_bytes(-1), "");
  EXPECT_EQ(tokenizer.token_bytes(1 << 30), "");
  EXPECT_EQ(tokenizer.vocab_size(), kCl100kVocab);
}

TEST(TiktokenTest, SpecialTokensArePlainTextUnlessRecognised) {
  const Tokenizer& tokenizer = cl100k();
  const std::string text = "a<|endoftext|>b";
  const std::vector<int32_t> plain = encode_text(tokenizer, text);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), kEndOfText), 0);
  EXPECT_EQ(tokenizer.decode(plain), text);  // a user's "<|endoftext|>" stays their text

  const std::vector<int32_t> recognised = encode_text(tokenizer, text, SpecialTokens::kRecognise);
  ASSERT_EQ(recognised.size(), 3u);
  EXPECT_EQ(recognised[1], kEndOfText);
  EXPECT_EQ(tokenizer.decode(recognised), "ab");  // decode drops specials
}

TEST(TiktokenTest, EncodeAddsBosAndEosAsConfigured) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = load_tokenizer(cl100k_config(true, true), kDataDir);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->encode("hello world"), (std::vector<int32_t>{kEndOfText, 15339, 1917, kEndOfText}));
  EXPECT_EQ((*tokenizer)->encode(""), (std::vector<int32_t>{kEndOfText, kEndOfText}));
  EXPECT_EQ((*tokenizer)->decode((*tokenizer)->encode("x")), "x");
}

TEST(TiktokenTest, InvalidUtf8IsRepairedBeforeEncoding) {
  const Tokenizer& tokenizer = cl100k();
  const std::string replacement(kReplacementCharacter);
  EXPECT_EQ(encode_text(tokenizer,
                        "a\xFF"
                        "b"),
            encode_text(tokenizer, "a" + replacement + "b"));
  EXPECT_EQ(encode_text(tokenizer, "x\xF0\x9F\x98"), encode_text(tokenizer, "x" + replacement));
  EXPECT_EQ(tokenizer.decode(encode_text(tokenizer, "\xC0\xAF")), replacement + replacement);
}

// The ids of `bytes` as one token when the vocabulary has it, else one token per byte (every byte has one).
std::vector<int32_t> raw_tokens(const Tokenizer& tokenizer, std::string_view bytes) {
  static const std::map<std::string, int32_t, std::less<>> by_bytes = [&] {
    std::map<std::string, int32_t, std::less<>> map;
    for (int32_t id = 0; id < kCl100kVocab; ++id) {
      const std::string_view token = tokenizer.token_bytes(id);
      if (!token.empty()) map.emplace(std::string(token), id);
    }
    return map;
  }();
  if (const auto it = by_bytes.find(bytes); it != by_bytes.end()) return {it->second};
  std::vector<int32_t> ids;
  for (const char c : bytes)
    ids.push_back(by_bytes.find(std::string_view(&c, 1))->second);
  return ids;
}

TEST(TiktokenIncrementalDecoderTest, FourByteEmojiSplitAcrossTokens) {
  const Tokenizer& tokenizer = cl100k();
  const std::string emoji = "\xF0\x9F\x98\x80";  // U+1F600
  for (size_t split : {1u, 2u, 3u}) {
    std::vector<int32_t> ids = raw_tokens(tokenizer, "a");
    const size_t emoji_start = ids.size();
    for (const int32_t id : raw_tokens(tokenizer, emoji.substr(0, split)))
      ids.push_back(id);
    for (const int32_t id : raw_tokens(tokenizer, emoji.substr(split)))
      ids.push_back(id);
    const size_t emoji_end = ids.size();
    ids.push_back(raw_tokens(tokenizer, "b")[0]);

    IncrementalDecoder decoder = tokenizer.incremental_decoder();
    std::vector<std::string> pieces;
    for (const int32_t id : ids)
      pieces.push_back(decoder.feed(id));
    EXPECT_EQ(pieces[0], "a") << split;
    for (size_t i = emoji_start; i + 1 < emoji_end; ++i)
      EXPECT_EQ(pieces[i], "") << "split " << split << " at " << i;
    EXPECT_EQ(pieces[emoji_end - 1], emoji) << split;
    EXPECT_EQ(pieces.back(), "b") << split;
    EXPECT_EQ(decoder.finish(), "");
  }
}

TEST(TiktokenIncrementalDecoderTest, RealEncodingsSplitCharactersAndStreamLosslessly) {
  const Tokenizer& tokenizer = cl100k();
  const std::string text =
      "\xF0\x9F\xA6\x9C\xF0\x9F\xAA\xBF "
      "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 "
      "\xE9\xBE\x98\xE7\x88\xA8\xE9\xAC\xB1 \xF0\xA0\x80\x80\xF0\xAA\x9A\xB2 e\xCC\x81\xCC\xA7 done";
  const std::vector<int32_t> ids = encode_text(tokenizer, text);
  IncrementalDecoder decoder = tokenizer.incremental_decoder();
  std::string streamed;
  int held_back = 0;
  for (const int32_t id : ids) {
    const std::string piece = decoder.feed(id);
    ASSERT_TRUE(is_valid_utf8(piece));
    held_back += decoder.has_pending() ? 1 : 0;
    streamed += piece;
  }
  streamed += decoder.finish();
  EXPECT_EQ(streamed, text);
  EXPECT_GT(held_back, 0) << "no token ended inside a character: the split path went untested";
}

TEST(TiktokenIncrementalDecoderTest, InvalidAndTruncatedBytesBecomeReplacementCharacters) {
  const Tokenizer& tokenizer = cl100k();
  const std::string r(kReplacementCharacter);
  IncrementalDecoder decoder = tokenizer.incremental_decoder();
  EXPECT_EQ(decoder.feed(raw_tokens(tokenizer, "\x80")[0]), r);
  EXPECT_EQ(decoder.feed(raw_tokens(tokenizer, "\xF0")[0]), "");
  EXPECT_EQ(decoder.feed(kEndOfText), "");
  EXPECT_EQ(decoder.feed(raw_tokens(tokenizer, "\x9F")[0]), "");
  EXPECT_EQ(decoder.finish(), r);
}

// Runs of one character make one huge piece; BPE on it must stay O(n log n), not O(n^2) (which would take
// hours at a megabyte). The bound is loose enough for sanitizer builds.
TEST(TiktokenTest, MegabyteRunsOfOneCharacterEncodeQuickly) {
  const Tokenizer& tokenizer = cl100k();
  const size_t kBytes = size_t{1} << 20;
  const auto repeat = [&](std::string_view unit) {
    std::string text;
    while (text.size() + unit.size() <= kBytes)
      text += unit;
    return text;
  };
  for (const std::string& text :
       {repeat("a"), repeat(" "), repeat("\n"), repeat("7"), repeat("!"), repeat("\xE6\xBC\xA2"),
        repeat("\xF0\x9F\x9A\x80"), repeat("ab "), repeat(" \n")}) {
    const auto start = std::chrono::steady_clock::now();
    const std::vector<int32_t> ids = encode_text(tokenizer, text);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(seconds, 20.0) << testing::PrintToString(text.substr(0, 8));
    EXPECT_FALSE(ids.empty());
    EXPECT_EQ(tokenizer.decode(ids), text) << testing::PrintToString(text.substr(0, 8));
  }
}

TEST(TiktokenTest, ConcurrentEncodingGivesTheSameIds) {
  const Tokenizer& tokenizer = cl100k();
  const std::vector<GoldenCase> cases = golden_cases();
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (size_t t = 0; t < mismatches.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 3; ++round) {
        for (const GoldenCase& c : cases) {
          const auto specials = c.allow_special ? SpecialTokens::kRecognise : SpecialTokens::kAsText;
          if (encode_text(tokenizer, c.text, specials) != c.ids) ++mismatches[t];
        }
      }
    });
  }
  for (std::thread& thread : threads)
    thread.join();
  for (const int m : mismatches)
    EXPECT_EQ(m, 0);
}

// A scratch model directory with a rank file made of cl100k's first lines (its 256 single bytes first).
class TiktokenLoadTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("longnet_tiktoken_" + std::to_string(::getpid()) + "_" +
                                        testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    std::ifstream in(kDataDir / "cl100k_base.tiktoken");
    std::string line;
    for (int i = 0; i < 300 && std::getline(in, line); ++i)
      first_lines_.push_back(line);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write_ranks(const std::vector<std::string>& lines) {
    std::ofstream out(dir_ / "ranks.tiktoken", std::ios::binary);
    for (const std::string& line : lines)
      out << line << "\n";
  }
  std::vector<std::string> lines(size_t n) const {
    return {first_lines_.begin(), first_lines_.begin() + static_cast<std::ptrdiff_t>(n)};
  }
  ModelConfig config(const std::string& options = R"({"special_tokens":{"<|endoftext|>":1000}})") const {
    ModelConfig c;
    c.vocab_size = 1001;
    c.bos_id = c.eos_id = c.pad_id = 1000;
    c.tokenizer.type = "tiktoken";
    c.tokenizer.file = "ranks.tiktoken";
    c.tokenizer.options_json = options;
    return c;
  }
  absl::Status load(const ModelConfig& c) const { return load_tokenizer(c, dir_).status(); }
  std::string rank_path() const { return (dir_ / "ranks.tiktoken").string(); }

  fs::path dir_;
  std::vector<std::string> first_lines_;
};

TEST_F(TiktokenLoadTest, ASmallValidFileLoadsAndEncodes) {
  write_ranks(lines(300));
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = load_tokenizer(config(), dir_);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const std::vector<int32_t> ids = (*tokenizer)->encode("the end<|endoftext|>", SpecialTokens::kRecognise);
  EXPECT_EQ(ids.front(), 1000);  // add_bos
  EXPECT_EQ(ids.back(), 1000);
  EXPECT_EQ((*tokenizer)->decode(ids), "the end");
}

TEST_F(TiktokenLoadTest, MissingFileNamesThePath) {
  const absl::Status status = load(config());
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(has(status, rank_path())) << status;
}

TEST_F(TiktokenLoadTest, CorruptLinesNameThePathAndTheLine) {
  const struct {
    std::string line;
    std::string message;
  } cases[] = {
      {"aGVsbG8=", "expected \"<base64 token> <rank>\""},
      {"aGVsbG8= 300 7", "expected \"<base64 token> <rank>\""},
      {"aGVsbG8 300", "token \"aGVsbG8\" is not valid base64"},
      {"a$VsbG8= 300", "token \"a$VsbG8=\" is not valid base64"},
      {"aGVsbG8= x300", "rank \"x300\" is not an integer"},
      {"aGVsbG8= ", "rank \"\" is not an integer"},
      {"aGVsbG8= 5000", "rank 5000 is outside the vocabulary [0, 1001)"},
      {"aGVsbG8= -1", "rank -1 is outside the vocabulary"},
      {"aGVsbG8= 299", "rank 299 is given to a second token"},
      {"", "expected \"<base64 token> <rank>\""},
  };
  for (const auto& c : cases) {
    std::vector<std::string> file = lines(300);
    file.push_back(c.line);
    write_ranks(file);
    const absl::Status status = load(config());
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.line;
    EXPECT_TRUE(has(status, rank_path() + ":301: " + c.message)) << status;
  }
  std::vector<std::string> file = lines(300);
  file.push_back(first_lines_[7].substr(0, first_lines_[7].find(' ')) + " 400");  // byte 7's token again
  write_ranks(file);
  const absl::Status status = load(config());
  EXPECT_TRUE(has(status, rank_path() + ":301: token")) << status;
  EXPECT_TRUE(has(status, "already has rank 7")) << status;
}

TEST_F(TiktokenLoadTest, EveryByteNeedsAToken) {
  std::vector<std::string> file = lines(300);
  file.erase(file.begin() + 65);
  write_ranks(file);
  const absl::Status status = load(config());
  EXPECT_TRUE(has(status, rank_path())) << status;
  EXPECT_TRUE(has(status, "has no token")) << status;
  write_ranks({});
  EXPECT_TRUE(has(load(config()), "no tokens"));
}

TEST_F(TiktokenLoadTest, RefusesBadOptions) {
  write_ranks(lines(300));
  absl::Status status = load(config(R"({"pattern":"o200k"})"));
  EXPECT_TRUE(has(status, "unknown pattern \"o200k\"; supported: \"cl100k\"")) << status;
  status = load(config(R"({"pattern":7})"));
  EXPECT_TRUE(has(status, "tokenizer.pattern: expected a string")) << status;
  status = load(config(R"({"merges":"x"})"));
  EXPECT_TRUE(has(status, "tokenizer.merges: not a key of the tiktoken tokenizer")) << status;
  status = load(config(R"({"special_tokens":{"<|x|>":5000}})"));
  EXPECT_TRUE(has(status, "tokenizer.special_tokens.<|x|>: value 5000 is not an id in the vocabulary"))
      << status;
  status = load(config(R"({"special_tokens":{"<|x|>":1000,"<|y|>":1000}})"));
  EXPECT_TRUE(has(status, "id 1000 is already the id of \"<|x|>\"")) << status;
  status = load(config(R"({"special_tokens":{"<|x|>":12}})"));
  EXPECT_TRUE(has(status, "special_tokens.<|x|>: id 12 is an ordinary token")) << status;
  status = load(config(R"({"special_tokens":{"":999}})"));
  EXPECT_TRUE(has(status, "non-empty valid UTF-8")) << status;
}

TEST_F(TiktokenLoadTest, RefusesSpecialIdsThatAreOrdinaryTokens) {
  write_ranks(lines(300));
  ModelConfig c = config();
  c.bos_id = 0;
  absl::Status status = load(c);
  EXPECT_TRUE(has(status, "bos_id 0 is the ordinary token \"!\"")) << status;
  c = config();
  c.pad_id = 1001;
  status = load(c);
  EXPECT_TRUE(has(status, "pad_id 1001 is outside the vocabulary [0, 1001)")) << status;
  c = config();
  c.tokenizer.file = "";
  status = load(c);
  EXPECT_TRUE(has(status, "needs \"file\"")) << status;
}

}  // namespace
}  // namespace longnet::model
