#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// API keys sent as `authorization: Bearer <key>` metadata. Immutable once loaded, so check() is safe from
// any number of threads.
namespace longnet::server {

class ApiKeys {
 public:
  // One key per line; surrounding whitespace, blank lines and lines starting with # are ignored. A key is
  // printable ASCII without spaces. NotFound (missing/unreadable file) or InvalidArgument (a bad line, or no
  // key at all) naming the path and line; messages never contain a key.
  static absl::StatusOr<ApiKeys> load(const std::string& path);
  // No keys configured: everything allowed.
  static ApiKeys none();

  bool enabled() const { return !keys_.empty(); }
  size_t size() const { return keys_.size(); }

  // OK when disabled or when `authorization_header` is "Bearer <key>" with a configured key (scheme
  // case-insensitive, constant-time comparison); otherwise Unauthenticated saying what was missing or wrong,
  // never echoing what was sent.
  absl::Status check(std::optional<std::string_view> authorization_header) const;

 private:
  explicit ApiKeys(std::vector<std::string> keys) : keys_(std::move(keys)) {}

  std::vector<std::string> keys_;
};

}  // namespace longnet::server
