#pragma once

#include <fmt/format.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace spdlog::sinks {
class sink;
}  // namespace spdlog::sinks

// Process-wide logging through spdlog's default logger: one line per entry, as text or as JSON, each with the
// request id it is about ("-" when none). Lines logged with spdlog directly (spdlog::info) get the same
// format, with request id "-".
namespace longnet::server {

enum class LogFormat { kText, kJson };
enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError };

// "text" | "json"; InvalidArgument naming the value otherwise.
absl::StatusOr<LogFormat> parse_log_format(std::string_view name);
// "trace" | "debug" | "info" | "warn" | "error"; InvalidArgument naming the value otherwise.
absl::StatusOr<LogLevel> parse_log_level(std::string_view name);
std::string_view log_level_name(LogLevel level);

// Makes the default logger write to stderr in `format`, dropping entries below `level`. May be called again
// (the last call wins), but not while other threads are logging. Logging before any call uses text / info.
absl::Status init_logging(std::string_view format, std::string_view level);
// The same, writing to `sink` instead of stderr (tests capture lines with an ostream sink).
absl::Status init_logging(std::string_view format, std::string_view level,
                          std::shared_ptr<spdlog::sinks::sink> sink);

// One log line, without the trailing newline. Text: `2026-11-22T04:20:00.123Z info [req-id] message`, control
// characters escaped so an entry stays on one line. JSON: {"ts":...,"level":...,"request_id":...,"msg":...}
// with JSON escaping; non-ASCII UTF-8 passes through, invalid UTF-8 bytes become U+FFFD. An empty
// request_id is written as "-".
std::string format_log_line(LogFormat format, std::string_view level, std::string_view request_id,
                            std::string_view message, std::chrono::system_clock::time_point time);

// Whether an entry at `level` would be written (so callers can skip building it).
bool log_enabled(LogLevel level);
void log_message(LogLevel level, std::string_view request_id, std::string_view message);

template <typename... Args>
void log_at(LogLevel level, std::string_view request_id, fmt::format_string<Args...> format, Args&&... args) {
  if (!log_enabled(level)) return;
  log_message(level, request_id, fmt::format(format, std::forward<Args>(args)...));
}

template <typename... Args>
void log_trace(std::string_view request_id, fmt::format_string<Args...> format, Args&&... args) {
  log_at(LogLevel::kTrace, request_id, format, std::forward<Args>(args)...);
}
template <typename... Args>
void log_debug(std::string_view request_id, fmt::format_string<Args...> format, Args&&... args) {
  log_at(LogLevel::kDebug, request_id, format, std::forward<Args>(args)...);
}
template <typename... Args>
void log_info(std::string_view request_id, fmt::format_string<Args...> format, Args&&... args) {
  log_at(LogLevel::kInfo, request_id, format, std::forward<Args>(args)...);
}
template <typename... Args>
void log_warn(std::string_view request_id, fmt::format_string<Args...> format, Args&&... args) {
  log_at(LogLevel::kWarn, request_id, format, std::forward<Args>(args)...);
}
template <typename... Args>
void log_error(std::string_view request_id, fmt::format_string<Args...> format, Args&&... args) {
  log_at(LogLevel::kError, request_id, format, std::forward<Args>(args)...);
}

}  // namespace longnet::server
