#pragma once

// JSON helpers shared by the config.json and safetensors-header parsers (internal to longnet_model).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace longnet::model::json_util {

using Json = nlohmann::json;

// Debian's Abseil has its own string_view, which absl::StrCat takes and std::string_view does not convert to.
inline absl::string_view to_absl(std::string_view s) {
  return {s.data(), s.size()};
}

// The deepest nesting parse() accepts. Model files need four levels; nlohmann's dump() recurses once per
// level, so a value nested a hundred thousand deep would overflow the stack when a message quotes it.
inline constexpr int kMaxDepth = 64;

// Parses `text` as one JSON value. Never throws: a syntax error or a number out of range comes back as
// InvalidArgument "<file_name>: <what> is not valid JSON: <reason with line and column>", and a key that
// appears twice in one object (nlohmann would keep the last silently, so a file could say two things) as
// InvalidArgument "<file_name>: key "<key>" appears twice ...".
// Nesting deeper than kMaxDepth is refused the same way.
absl::StatusOr<Json> parse(std::string_view text, std::string_view file_name, std::string_view what);

// `s` as a JSON string literal, quotes and escapes included: keys and values from a file are quoted this
// way in messages, so a control character or a quote in them cannot garble the message. Strings longer than
// 80 bytes are cut ("..." after the closing quote), so a message stays a line whatever the file holds.
std::string quote(std::string_view s);

// A JSON value as it appears in a message: compact, invalid UTF-8 replaced, cut after about 80 characters.
std::string value_text(const Json& value);

// The value as an int64 when it is a JSON integer that fits; nullopt for floats (1.0 included), booleans,
// integers beyond int64 and everything else.
std::optional<int64_t> as_int64(const Json& value);

}  // namespace longnet::model::json_util
