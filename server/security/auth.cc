#include "security/auth.h"

#include <fmt/format.h>

#include <cctype>
#include <utility>

#include "config/server_config.h"

namespace longnet::server {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_space(text.front()))
    text.remove_prefix(1);
  while (!text.empty() && is_space(text.back()))
    text.remove_suffix(1);
  return text;
}

// Compares in time that depends only on `expected`'s length, never on where `given` first differs; `given`'s
// length is folded into the result instead of cutting the loop short.
bool constant_time_equal(std::string_view given, std::string_view expected) {
  unsigned char difference = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    const char g = given.empty() ? '\0' : given[i % given.size()];
    difference |= static_cast<unsigned char>(g ^ expected[i]);
  }
  return difference == 0;
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<ApiKeys> ApiKeys::load(const std::string& path) {
  const absl::StatusOr<std::string> contents = read_config_text_file("API key file", path);
  if (!contents.ok()) return contents.status();

  std::vector<std::string> keys;
  std::string_view rest = *contents;
  for (int line_number = 1; !rest.empty(); ++line_number) {
    const size_t newline = rest.find('\n');
    const std::string_view line = trim(rest.substr(0, newline));
    rest.remove_prefix(newline == std::string_view::npos ? rest.size() : newline + 1);
    if (line.empty() || line.front() == '#') continue;
    for (const char c : line) {
      // A key travels in an HTTP/2 header after "Bearer ": printable ASCII, no spaces.
      if (c <= ' ' || c > '~') {
        return absl::InvalidArgumentError(fmt::format(
            "API key file \"{}\", line {}: a key must be printable ASCII without spaces (one key per line)",
            path, line_number));
      }
    }
    keys.emplace_back(line);
  }
  if (keys.empty()) {
    return absl::InvalidArgumentError(fmt::format(
        "API key file \"{}\" holds no keys (one per line; # comments and blank lines are ignored)", path));
  }
  return ApiKeys(std::move(keys));
}

ApiKeys ApiKeys::none() {
  return ApiKeys({});
}

absl::Status ApiKeys::check(std::optional<std::string_view> authorization_header) const {
  if (!enabled()) return absl::OkStatus();
  if (!authorization_header.has_value()) {
    return absl::UnauthenticatedError(
        "missing API key: send the metadata \"authorization: Bearer <api key>\"");
  }
  const std::string_view header = trim(*authorization_header);
  const size_t space = header.find_first_of(" \t");
  const std::string_view scheme = header.substr(0, space);
  if (!equals_ignoring_case(scheme, "bearer")) {
    return absl::UnauthenticatedError(
        "authorization metadata must be \"Bearer <api key>\" (the Bearer scheme was not found)");
  }
  const std::string_view token =
      space == std::string_view::npos ? std::string_view() : trim(header.substr(space));
  if (token.empty()) {
    return absl::UnauthenticatedError("authorization metadata \"Bearer\" carries no API key");
  }
  // Every configured key is compared, so the time taken does not tell which one (if any) came close.
  bool match = false;
  for (const std::string& key : keys_)
    match |= constant_time_equal(token, key);
  if (!match) return absl::UnauthenticatedError("invalid API key");
  return absl::OkStatus();
}

}  // namespace longnet::server
