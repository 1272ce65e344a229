#include "api/stop_matcher.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace longnet::server {
namespace {

// Feeds `pieces` in order; returns everything released (feed + finish) and whether a stop matched.
std::pair<std::string, bool> run(StopMatcher& m, const std::vector<std::string>& pieces) {
  std::string out;
  bool matched = false;
  for (const std::string& piece : pieces) {
    StopMatcher::Result r = m.feed(piece);
    out += r.text;
    matched = matched || r.matched;
  }
  out += m.finish();
  return {out, matched};
}

TEST(StopMatcher, NoStopsReleasesEverythingAtOnce) {
  StopMatcher m({});
  EXPECT_EQ(m.feed("abc").text, "abc");
  EXPECT_EQ(m.held_bytes(), 0u);
  EXPECT_EQ(m.finish(), "");
}

TEST(StopMatcher, MatchInsideOnePieceCutsBeforeIt) {
  StopMatcher m({"END"});
  StopMatcher::Result r = m.feed("helloENDworld");
  EXPECT_TRUE(r.matched);
  EXPECT_EQ(r.text, "hello");
  EXPECT_TRUE(m.matched());
  EXPECT_EQ(m.feed("more").text, "");
  EXPECT_EQ(m.finish(), "");
}

TEST(StopMatcher, HoldsBackAPossibleStartAndReleasesItWhenItIsNot) {
  StopMatcher m({"END"});
  StopMatcher::Result r = m.feed("abE");
  EXPECT_EQ(r.text, "ab");
  EXPECT_EQ(m.held_bytes(), 1u);
  r = m.feed("N");
  EXPECT_EQ(r.text, "");
  EXPECT_EQ(m.held_bytes(), 2u);
  r = m.feed("x");
  EXPECT_FALSE(r.matched);
  EXPECT_EQ(r.text, "ENx");
  EXPECT_EQ(m.held_bytes(), 0u);
}

TEST(StopMatcher, StopSplitAcrossManyPieces) {
  StopMatcher m({"</s>"});
  auto [out, matched] = run(m, {"a", "<", "/", "s", ">", "b"});
  EXPECT_TRUE(matched);
  EXPECT_EQ(out, "a");
}

TEST(StopMatcher, FinishReleasesAHeldPrefix) {
  StopMatcher m({"STOP"});
  auto [out, matched] = run(m, {"ab", "ST", "O"});
  EXPECT_FALSE(matched);
  EXPECT_EQ(out, "abSTO");
}

TEST(StopMatcher, EarliestOfOverlappingCandidatesWins) {
  // "abcd" holds both "bc" (earlier) and "abcx"'s prefix; "bc" ends the text at "a".
  StopMatcher m({"abcx", "bc"});
  auto [out, matched] = run(m, {"a", "b", "c", "d"});
  EXPECT_TRUE(matched);
  EXPECT_EQ(out, "a");
}

TEST(StopMatcher, SelfOverlappingStop) {
  // "aab": after "aa" the suffix "a" may still start it; the match begins at the second 'a'.
  StopMatcher m({"ab"});
  auto [out, matched] = run(m, {"a", "a", "b"});
  EXPECT_TRUE(matched);
  EXPECT_EQ(out, "a");
}

TEST(StopMatcher, LongerHeldPrefixOfAnotherStop) {
  StopMatcher m({"xyz", "yq"});
  StopMatcher::Result r = m.feed("axy");
  EXPECT_EQ(r.text, "a");  // "xy" may become "xyz"
  r = m.feed("q");         // "xyq": "yq" matches, after "x"
  EXPECT_TRUE(r.matched);
  EXPECT_EQ(r.text, "x");
}

TEST(StopMatcher, MultiByteStopSplitInsideACharacter) {
  const std::string stop = "\xE2\x9C\x85";  // U+2705
  StopMatcher m({stop});
  auto [out, matched] = run(m, {"ok ", "\xE2", "\x9C", "\x85", " more"});
  EXPECT_TRUE(matched);
  EXPECT_EQ(out, "ok ");
}

// Whatever the split, the released text is the text up to the earliest stop (or all of it).
TEST(StopMatcher, AnySplitGivesTheSameResult) {
  const std::vector<std::string> stops = {"ll", "lo w", "xyz"};
  const std::vector<std::string> texts = {"hello world", "hexyzllo", "no stop here", "lol", "lo wx"};
  std::mt19937 random(7);
  for (const std::string& text : texts) {
    size_t first = std::string::npos;
    for (const std::string& s : stops)
      first = std::min(first, text.find(s));
    const std::string expected = first == std::string::npos ? text : text.substr(0, first);
    for (int trial = 0; trial < 50; ++trial) {
      std::vector<std::string> pieces;
      for (size_t i = 0; i < text.size();) {
        const size_t n = std::min<size_t>(text.size() - i, 1 + random() % 3);
        pieces.push_back(text.substr(i, n));
        i += n;
      }
      StopMatcher m(stops);
      auto [out, matched] = run(m, pieces);
      EXPECT_EQ(out, expected) << text;
      EXPECT_EQ(matched, first != std::string::npos) << text;
    }
  }
}

}  // namespace
}  // namespace longnet::server
