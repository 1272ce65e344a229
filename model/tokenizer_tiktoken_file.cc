#include "tokenizer_tiktoken_file.h"

#include <charconv>
#include <fstream>
#include <iterator>
#include <limits>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "json_util.h"
#include "longnet/model/utf8.h"

namespace longnet::model {
namespace {

using json_util::Json;
using json_util::quote;

// Strict base64 (standard alphabet, padded): a rank file is generated, so anything else means damage.
bool decode_base64(std::string_view text, std::string& out) {
  const auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (text.empty() || text.size() % 4 != 0) return false;
  size_t padding = 0;
  if (text.back() == '=') ++padding;
  if (text.size() >= 2 && text[text.size() - 2] == '=') ++padding;
  for (size_t i = 0; i < text.size(); i += 4) {
    uint32_t group = 0;
    const bool last = i + 4 == text.size();
    for (size_t k = 0; k < 4; ++k) {
      const bool pad = last && k >= 4 - padding;
      const int v = pad ? 0 : value(text[i + k]);
      if (v < 0) return false;
      group = (group << 6) | static_cast<uint32_t>(v);
    }
    const size_t bytes = last ? 3 - padding : 3;
    for (size_t k = 0; k < bytes; ++k)
      out.push_back(static_cast<char>((group >> (16 - 8 * k)) & 0xFF));
  }
  return true;
}

std::string line_error(const std::string& path, size_t line, std::string_view what) {
  return absl::StrCat(path, ":", line, ": ", std::string(what));
}

}  // namespace

absl::StatusOr<std::unique_ptr<TiktokenRanks>> read_tiktoken_ranks(const std::filesystem::path& path,
                                                                   int64_t vocab_size) {
  const std::string name = path.string();
  std::error_code error;
  if (!std::filesystem::exists(path, error)) {
    return absl::NotFoundError(absl::StrCat("tokenizer file ", name, ": not found"));
  }
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer file ", name, ": cannot be read"));
  }
  if (text.size() > std::numeric_limits<uint32_t>::max()) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer file ", name, ": larger than 4 GiB"));
  }

  auto ranks = std::make_unique<TiktokenRanks>();
  ranks->by_id.assign(static_cast<size_t>(vocab_size), {});
  ranks->bytes.reserve(text.size());
  std::vector<int32_t> ids_in_order;
  size_t line_number = 0;
  for (size_t start = 0; start < text.size();) {
    ++line_number;
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + start, end - start);
    start = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

    const size_t space = line.find(' ');
    if (space == std::string_view::npos || line.find(' ', space + 1) != std::string_view::npos) {
      return absl::InvalidArgumentError(
          line_error(name, line_number, "expected \"<base64 token> <rank>\" (one space)"));
    }
    const std::string_view token_text = line.substr(0, space);
    const std::string_view rank_text = line.substr(space + 1);
    int64_t rank = -1;
    const auto [rank_end, rank_error] =
        std::from_chars(rank_text.data(), rank_text.data() + rank_text.size(), rank);
    if (rank_text.empty() || rank_error != std::errc() || rank_end != rank_text.data() + rank_text.size()) {
      return absl::InvalidArgumentError(
          line_error(name, line_number, absl::StrCat("rank ", quote(rank_text), " is not an integer")));
    }
    if (rank < 0 || rank >= vocab_size) {
      return absl::InvalidArgumentError(
          line_error(name, line_number,
                     absl::StrCat("rank ", rank, " is outside the vocabulary [0, ", vocab_size, ")")));
    }
    const size_t offset = ranks->bytes.size();
    if (!decode_base64(token_text, ranks->bytes)) {
      return absl::InvalidArgumentError(
          line_error(name, line_number, absl::StrCat("token ", quote(token_text), " is not valid base64")));
    }
    TiktokenRanks::Span& span = ranks->by_id[static_cast<size_t>(rank)];
    if (span.size != 0) {
      return absl::InvalidArgumentError(
          line_error(name, line_number, absl::StrCat("rank ", rank, " is given to a second token")));
    }
    span = {static_cast<uint32_t>(offset), static_cast<uint32_t>(ranks->bytes.size() - offset)};
    ids_in_order.push_back(static_cast<int32_t>(rank));
  }
  if (ids_in_order.empty())
    return absl::InvalidArgumentError(absl::StrCat("tokenizer file ", name, ": no tokens"));

  // The keys view into `bytes`, complete by now, so they stay valid.
  RankMap& map = ranks->vocabulary.ranks;
  map.reserve(ids_in_order.size());
  for (size_t i = 0; i < ids_in_order.size(); ++i) {
    const std::string_view token = ranks->token(ids_in_order[i]);
    const auto [it, inserted] = map.emplace(absl::string_view(token.data(), token.size()), ids_in_order[i]);
    if (!inserted) {
      return absl::InvalidArgumentError(
          line_error(name, i + 1,
                     absl::StrCat("token ", quote(sanitize_utf8(token)), " already has rank ", it->second)));
    }
  }
  ranks->token_count = ids_in_order.size();
  // Byte-level BPE starts from single bytes: without all 256 some text could not be encoded at all.
  for (int byte = 0; byte < 256; ++byte) {
    const char c = static_cast<char>(byte);
    const auto it = map.find(absl::string_view(&c, 1));
    if (it == map.end()) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer file ", name, ": byte ", byte,
                                                     " has no token (byte-level BPE needs all 256)"));
    }
    ranks->vocabulary.byte_ranks[static_cast<size_t>(byte)] = it->second;
  }
  return ranks;
}

absl::StatusOr<TiktokenSettings> read_tiktoken_settings(std::string_view options_json, int64_t vocab_size) {
  TiktokenSettings settings;
  if (options_json.empty()) return settings;
  absl::StatusOr<Json> parsed = json_util::parse(options_json, "config.json", "the tokenizer entry");
  if (!parsed.ok()) return parsed.status();
  if (!parsed->is_object()) return absl::InvalidArgumentError("config.json: tokenizer: expected an object");

  const auto fail = [](std::string_view key, std::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: tokenizer.", std::string(key), ": ", std::string(what)));
  };
  for (const auto& item : parsed->items()) {
    const std::string& key = item.key();
    const Json& value = item.value();
    if (key == "type" || key == "file" || key == "add_bos" || key == "add_eos") continue;  // config.cc's
    if (key == "pattern") {
      if (!value.is_string())
        return fail(key, absl::StrCat("expected a string, found ", json_util::value_text(value)));
      settings.pattern = value.get<std::string>();
    } else if (key == "special_tokens") {
      if (!value.is_object()) {
        return fail(key, absl::StrCat("expected an object {\"<text>\": id, ...}, found ",
                                      json_util::value_text(value)));
      }
      for (const auto& special : value.items()) {
        const std::string entry_key = absl::StrCat(key, ".", special.key());
        const std::optional<int64_t> id = json_util::as_int64(special.value());
        if (special.key().empty() || !is_valid_utf8(special.key())) {
          return fail(entry_key, "a special token must be a non-empty valid UTF-8 string");
        }
        if (!id || *id < 0 || *id >= vocab_size) {
          return fail(entry_key, absl::StrCat("value ", json_util::value_text(special.value()),
                                              " is not an id in the vocabulary [0, ", vocab_size, ")"));
        }
        for (const auto& [other, other_id] : settings.special_tokens) {
          if (other_id == *id) {
            return fail(entry_key, absl::StrCat("id ", *id, " is already the id of ", quote(other)));
          }
        }
        settings.special_tokens.emplace_back(special.key(), static_cast<int32_t>(*id));
      }
    } else {
      return fail(key,
                  absl::StrCat("not a key of the tiktoken tokenizer (found ", json_util::value_text(value),
                               "; expected type, file, pattern, special_tokens, add_bos, add_eos)"));
    }
  }
  return settings;
}

}  // namespace longnet::model
