#include "json_util.h"

#include <exception>
#include <limits>
#include <set>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace longnet::model::json_util {

namespace {

// nlohmann prefixes its messages with "[json.exception.parse_error.101] "; users need only the rest.
std::string_view strip_exception_id(std::string_view what) {
  if (!what.empty() && what.front() == '[') {
    const size_t end = what.find("] ");
    if (end != std::string_view::npos) what.remove_prefix(end + 2);
  }
  return what;
}

absl::Status invalid_json(std::string_view file_name, std::string_view what, std::string_view reason) {
  return absl::InvalidArgumentError(
      absl::StrCat(to_absl(file_name), ": ", to_absl(what), " is not valid JSON: ", to_absl(reason)));
}

// Thrown from the parser callback to stop at the first level past kMaxDepth.
struct TooDeep {};

}  // namespace

absl::StatusOr<Json> parse(std::string_view text, std::string_view file_name, std::string_view what) {
  // One set of keys per object being parsed, innermost last; the first duplicate found is reported.
  std::vector<std::set<std::string, std::less<>>> open_objects;
  std::optional<std::string> duplicate;
  const Json::parser_callback_t track_keys = [&](int depth, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::array_start:
        if (depth >= kMaxDepth) throw TooDeep{};
        break;
      case Json::parse_event_t::object_start:
        if (depth >= kMaxDepth) throw TooDeep{};
        open_objects.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!open_objects.empty() && !open_objects.back().insert(parsed.get<std::string>()).second &&
            !duplicate) {
          duplicate = parsed.get<std::string>();
        }
        break;
      default:
        break;
    }
    return true;
  };
  try {
    Json value = Json::parse(text.begin(), text.end(), track_keys);
    if (duplicate) {
      return absl::InvalidArgumentError(absl::StrCat(to_absl(file_name), ": key ", quote(*duplicate),
                                                     " appears twice in one object of ", to_absl(what),
                                                     " (JSON readers disagree on which copy counts)"));
    }
    return value;
  } catch (const TooDeep&) {
    return invalid_json(file_name, what, absl::StrCat("nested deeper than ", kMaxDepth, " levels"));
  } catch (const Json::exception& e) {
    return invalid_json(file_name, what, strip_exception_id(e.what()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat(to_absl(file_name), ": out of memory parsing ", to_absl(what)));
  }
}

namespace {

constexpr size_t kMaxQuotedChars = 80;

// The length of the longest prefix of `s` of at most `limit` bytes that does not split a UTF-8 sequence.
size_t utf8_cut(std::string_view s, size_t limit) {
  if (s.size() <= limit) return s.size();
  size_t cut = limit;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80)
    --cut;
  return cut;
}

}  // namespace

std::string quote(std::string_view s) {
  const size_t cut = utf8_cut(s, kMaxQuotedChars);
  std::string text = Json(std::string(s.substr(0, cut))).dump(-1, ' ', false, Json::error_handler_t::replace);
  if (cut < s.size()) text += "...";
  return text;
}

std::string value_text(const Json& value) {
  if (value.is_string()) return quote(value.get_ref<const std::string&>());
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  const size_t cut = utf8_cut(text, kMaxQuotedChars);
  if (cut < text.size()) {
    text.resize(cut);
    text += "...";
  }
  return text;
}

std::optional<int64_t> as_int64(const Json& value) {
  if (value.is_number_unsigned()) {
    const auto u = value.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (value.is_number_integer()) return value.get<int64_t>();
  return std::nullopt;
}

}  // namespace longnet::model::json_util
