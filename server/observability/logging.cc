#include "observability/logging.h"

#include <spdlog/formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <ctime>
#include <mutex>

namespace longnet::server {
namespace {

// The request id of the entry being written on this thread: log_message sets it around the spdlog call,
// and the formatter (which runs on the same thread: the logger is synchronous) reads it.
thread_local std::string_view current_request_id = "-";

std::atomic<bool> logging_initialized{false};

spdlog::level::level_enum to_spdlog(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace:
      return spdlog::level::trace;
    case LogLevel::kDebug:
      return spdlog::level::debug;
    case LogLevel::kInfo:
      return spdlog::level::info;
    case LogLevel::kWarn:
      return spdlog::level::warn;
    case LogLevel::kError:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

std::string_view level_text(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "critical";
    default:
      return "off";
  }
}

// Length of the valid UTF-8 sequence starting at text[0], or 0 when it is not one (stray continuation byte,
// truncated or overlong sequence, surrogate, past U+10FFFF).
size_t utf8_sequence_length(std::string_view text) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  size_t length = 0;
  uint32_t code_point = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
    code_point = lead & 0x1Fu;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    code_point = lead & 0x0Fu;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    code_point = lead & 0x07u;
  } else {
    return 0;
  }
  if (text.size() < length) return 0;
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0u) != 0x80u) return 0;
    code_point = (code_point << 6) | (byte(i) & 0x3Fu);
  }
  constexpr uint32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (code_point < kSmallest[length] || code_point > 0x10FFFF) return 0;
  if (code_point >= 0xD800 && code_point <= 0xDFFF) return 0;
  return length;
}

// Appends `text` with control characters escaped (and, for JSON, quotes and backslashes too); valid UTF-8
// passes through and invalid bytes become U+FFFD, so a line is always one line and always valid JSON.
void append_escaped(std::string& out, std::string_view text, bool json) {
  while (!text.empty()) {
    const unsigned char c = static_cast<unsigned char>(text.front());
    size_t consumed = 1;
    if (c >= 0x80) {
      consumed = utf8_sequence_length(text);
      if (consumed == 0) {
        out += "\xEF\xBF\xBD";
        consumed = 1;
      } else {
        out.append(text.substr(0, consumed));
      }
    } else if (c == '"' && json) {
      out += "\\\"";
    } else if (c == '\\' && json) {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\u{:04x}", c);
    } else {
      out += static_cast<char>(c);
    }
    text.remove_prefix(consumed);
  }
}

std::string timestamp(std::chrono::system_clock::time_point time) {
  const auto since_epoch = std::chrono::floor<std::chrono::milliseconds>(time.time_since_epoch());
  const auto seconds = std::chrono::floor<std::chrono::seconds>(since_epoch);
  const std::time_t whole = static_cast<std::time_t>(seconds.count());
  std::tm utc{};
  gmtime_r(&whole, &utc);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", utc.tm_year + 1900, utc.tm_mon + 1,
                     utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, (since_epoch - seconds).count());
}

class LineFormatter final : public spdlog::formatter {
 public:
  explicit LineFormatter(LogFormat format) : format_(format) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string line =
        format_log_line(format_, level_text(msg.level), current_request_id,
                        std::string_view(msg.payload.data(), msg.payload.size()), msg.time);
    dest.append(line.data(), line.data() + line.size());
    dest.push_back('\n');
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<LineFormatter>(format_);
  }

 private:
  LogFormat format_;
};

}  // namespace

absl::StatusOr<LogFormat> parse_log_format(std::string_view name) {
  if (name == "text") return LogFormat::kText;
  if (name == "json") return LogFormat::kJson;
  return absl::InvalidArgumentError(fmt::format("log format \"{}\": expected text or json", name));
}

absl::StatusOr<LogLevel> parse_log_level(std::string_view name) {
  for (const LogLevel level :
       {LogLevel::kTrace, LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn, LogLevel::kError}) {
    if (name == log_level_name(level)) return level;
  }
  return absl::InvalidArgumentError(
      fmt::format("log level \"{}\": expected trace, debug, info, warn or error", name));
}

std::string_view log_level_name(LogLevel level) {
  return level_text(to_spdlog(level));
}

absl::Status init_logging(std::string_view format, std::string_view level) {
  return init_logging(format, level, std::make_shared<spdlog::sinks::stderr_sink_mt>());
}

absl::Status init_logging(std::string_view format, std::string_view level,
                          std::shared_ptr<spdlog::sinks::sink> sink) {
  const absl::StatusOr<LogFormat> parsed_format = parse_log_format(format);
  if (!parsed_format.ok()) return parsed_format.status();
  const absl::StatusOr<LogLevel> parsed_level = parse_log_level(level);
  if (!parsed_level.ok()) return parsed_level.status();

  auto logger = std::make_shared<spdlog::logger>("longnet", std::move(sink));
  logger->set_formatter(std::make_unique<LineFormatter>(*parsed_format));
  logger->set_level(to_spdlog(*parsed_level));
  logger->flush_on(spdlog::level::trace);  // every line reaches the sink at once: logs are read live
  spdlog::set_default_logger(std::move(logger));
  logging_initialized.store(true);
  return absl::OkStatus();
}

std::string format_log_line(LogFormat format, std::string_view level, std::string_view request_id,
                            std::string_view message, std::chrono::system_clock::time_point time) {
  if (request_id.empty()) request_id = "-";
  std::string line;
  line.reserve(message.size() + request_id.size() + 80);
  if (format == LogFormat::kJson) {
    line += "{\"ts\":\"";
    line += timestamp(time);
    line += "\",\"level\":\"";
    append_escaped(line, level, true);
    line += "\",\"request_id\":\"";
    append_escaped(line, request_id, true);
    line += "\",\"msg\":\"";
    append_escaped(line, message, true);
    line += "\"}";
  } else {
    line += timestamp(time);
    line += ' ';
    append_escaped(line, level, false);
    line += " [";
    append_escaped(line, request_id, false);
    line += "] ";
    append_escaped(line, message, false);
  }
  return line;
}

bool log_enabled(LogLevel level) {
  return spdlog::default_logger_raw()->should_log(to_spdlog(level));
}

void log_message(LogLevel level, std::string_view request_id, std::string_view message) {
  if (!logging_initialized.load(std::memory_order_acquire)) {
    static std::once_flag default_setup;
    std::call_once(default_setup, [] {
      if (!logging_initialized.load()) (void)init_logging("text", "info");
    });
  }
  const std::string_view previous = current_request_id;
  current_request_id = request_id.empty() ? std::string_view("-") : request_id;
  spdlog::default_logger_raw()->log(to_spdlog(level), spdlog::string_view_t(message.data(), message.size()));
  current_request_id = previous;
}

}  // namespace longnet::server
