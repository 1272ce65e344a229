#include "observability/logging.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace longnet::server {
namespace {

using std::chrono::system_clock;

// 2026-11-22T04:20:00.123Z
system_clock::time_point example_time() {
  using namespace std::chrono;
  return sys_days{year{2026} / November / 22} + hours{4} + minutes{20} + milliseconds{123};
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  return lines;
}

TEST(Logging, TextLine) {
  EXPECT_EQ(format_log_line(LogFormat::kText, "info", "req-7", "model loaded", example_time()),
            "2026-11-22T04:20:00.123Z info [req-7] model loaded");
  EXPECT_EQ(format_log_line(LogFormat::kText, "warn", "", "no request", example_time()),
            "2026-11-22T04:20:00.123Z warn [-] no request");
}

TEST(Logging, TextLineStaysOneLine) {
  const std::string line =
      format_log_line(LogFormat::kText, "error", "id\n2", "two\nlines\tand \"quotes\" \x01", example_time());
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line, "2026-11-22T04:20:00.123Z error [id\\n2] two\\nlines\\tand \"quotes\" \\u0001");
}

TEST(Logging, JsonLineParsesAndKeepsEveryField) {
  const std::string message =
      "quote \" backslash \\ newline \n tab \t bell \x07 del \x7f caf\xC3\xA9 \xE2\x9C\x93 "
      "\xF0\x9F\x98\x80 end";
  const std::string line = format_log_line(LogFormat::kJson, "info", "req-\"1\"", message, example_time());
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const nlohmann::json parsed = nlohmann::json::parse(line);
  EXPECT_EQ(parsed.at("ts"), "2026-11-22T04:20:00.123Z");
  EXPECT_EQ(parsed.at("level"), "info");
  EXPECT_EQ(parsed.at("request_id"), "req-\"1\"");
  EXPECT_EQ(parsed.at("msg"), message);
  EXPECT_EQ(parsed.size(), 4u);
  // Non-ASCII passes through as UTF-8, not as \u escapes.
  EXPECT_NE(line.find("caf\xC3\xA9 \xE2\x9C\x93"), std::string::npos);
  EXPECT_NE(line.find("\\\"1\\\""), std::string::npos);
  EXPECT_NE(line.find("\\\\"), std::string::npos);
  EXPECT_NE(line.find("\\u0007"), std::string::npos);
}

TEST(Logging, JsonLineReplacesInvalidUtf8) {
  // A stray continuation byte, a truncated sequence, an overlong '/', a surrogate and a byte past U+10FFFF.
  const std::string message =
      "a\x80"
      "b\xE2\x9C"
      "c\xC0\xAF"
      "d\xED\xA0\x80"
      "e\xF5\x80\x80\x80";
  const std::string line = format_log_line(LogFormat::kJson, "warn", "-", message, example_time());
  const nlohmann::json parsed = nlohmann::json::parse(line);  // throws on invalid UTF-8
  const std::string msg = parsed.at("msg");
  // Each byte that starts no valid sequence becomes one U+FFFD.
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(msg, "a" + r + "b" + r + r + "c" + r + r + "d" + r + r + r + "e" + r + r + r + r);
  EXPECT_EQ(msg.find_first_of("\x80\xC0\xED\xF5"), std::string::npos);
}

TEST(Logging, TimestampPadsFields) {
  using namespace std::chrono;
  const system_clock::time_point time = sys_days{year{2000} / January / 2} + milliseconds{7};
  EXPECT_EQ(format_log_line(LogFormat::kText, "info", "-", "x", time), "2000-01-02T00:00:00.007Z info [-] x");
}

TEST(Logging, ParsesNames) {
  EXPECT_EQ(*parse_log_format("json"), LogFormat::kJson);
  EXPECT_EQ(*parse_log_level("warn"), LogLevel::kWarn);
  EXPECT_EQ(log_level_name(LogLevel::kError), "error");
  const absl::StatusOr<LogLevel> bad = parse_log_level("loud");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("\"loud\""), absl::string_view::npos);
}

TEST(Logging, InitRejectsBadNames) {
  EXPECT_EQ(init_logging("yaml", "info").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(init_logging("text", "chatty").code(), absl::StatusCode::kInvalidArgument);
}

TEST(Logging, JsonLoggerWritesOneObjectPerLineWithRequestIds) {
  std::ostringstream out;
  ASSERT_TRUE(init_logging("json", "debug", std::make_shared<spdlog::sinks::ostream_sink_mt>(out)).ok());
  log_info("req-1", "prompt of {} tokens", 12);
  log_debug("req-2", "step {}", "one");
  log_trace("req-3", "dropped: below the level");
  spdlog::warn("straight through spdlog");
  const std::vector<std::string> lines = lines_of(out.str());
  ASSERT_EQ(lines.size(), 3u) << out.str();
  const nlohmann::json first = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(first.at("request_id"), "req-1");
  EXPECT_EQ(first.at("msg"), "prompt of 12 tokens");
  EXPECT_EQ(first.at("level"), "info");
  EXPECT_EQ(nlohmann::json::parse(lines[1]).at("level"), "debug");
  const nlohmann::json third = nlohmann::json::parse(lines[2]);
  EXPECT_EQ(third.at("request_id"), "-");
  EXPECT_EQ(third.at("level"), "warn");
  EXPECT_EQ(third.at("msg"), "straight through spdlog");
}

TEST(Logging, TextLoggerFiltersByLevel) {
  std::ostringstream out;
  ASSERT_TRUE(init_logging("text", "warn", std::make_shared<spdlog::sinks::ostream_sink_mt>(out)).ok());
  EXPECT_FALSE(log_enabled(LogLevel::kInfo));
  EXPECT_TRUE(log_enabled(LogLevel::kError));
  log_info("req-1", "hidden");
  log_error("req-9", "queue full: {} requests", 256);
  const std::vector<std::string> lines = lines_of(out.str());
  ASSERT_EQ(lines.size(), 1u) << out.str();
  EXPECT_NE(lines[0].find(" error [req-9] queue full: 256 requests"), std::string::npos) << lines[0];
}

TEST(Logging, EachThreadsLinesCarryItsOwnRequestId) {
  std::ostringstream out;
  ASSERT_TRUE(init_logging("json", "info", std::make_shared<spdlog::sinks::ostream_sink_mt>(out)).ok());
  constexpr int kThreads = 4;
  constexpr int kLines = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      const std::string id = "req-" + std::to_string(t);
      for (int i = 0; i < kLines; ++i)
        log_info(id, "from {}", id);
    });
  }
  for (std::thread& thread : threads)
    thread.join();
  const std::vector<std::string> lines = lines_of(out.str());
  ASSERT_EQ(lines.size(), static_cast<size_t>(kThreads * kLines));
  for (const std::string& line : lines) {
    const nlohmann::json parsed = nlohmann::json::parse(line);
    EXPECT_EQ(parsed.at("msg"), "from " + parsed.at("request_id").get<std::string>());
  }
}

}  // namespace
}  // namespace longnet::server
