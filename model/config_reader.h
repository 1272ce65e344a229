#pragma once

// Typed, range-checked reads of one JSON object of config.json (internal to longnet_model).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "json_util.h"

namespace longnet::model {

// The first problem found wins and is kept; later reads still return a value (the default, or 0) so a parser
// reads straight through and asks status() once at the end, instead of checking after every key. Every
// message is "<file>: key "<prefix><key>": <what>, found <value>".
class ConfigReader {
 public:
  // `object` must be a JSON object and outlive the reader. `prefix` names nested objects ("tokenizer.").
  ConfigReader(const json_util::Json& object, std::string file, std::string prefix = "");

  bool ok() const { return status_.ok(); }
  const absl::Status& status() const { return status_; }
  // Records "<file>: key "<prefix><key>": <detail>" unless a problem is already recorded.
  void fail(std::string_view key, std::string_view detail);
  // Records `status` (a nested reader's) unless a problem is already recorded.
  void absorb(const absl::Status& status) {
    if (status_.ok()) status_ = status;
  }

  const json_util::Json* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }

  // An integer in [min, max]; absent: `fallback`, or a "missing" problem when there is none. `required_for`
  // says why a key without fallback is needed ("model_type \"longnet_decoder\"").
  int64_t integer(std::string_view key, std::optional<int64_t> fallback, int64_t min, int64_t max,
                  std::string_view required_for = "");
  bool boolean(std::string_view key, bool fallback);
  // A finite number > 0.
  double positive_number(std::string_view key, double fallback);
  std::string string(std::string_view key, std::optional<std::string> fallback,
                     std::string_view required_for = "");
  // A non-empty list of at most `max_items` integers in [1, max].
  std::vector<int64_t> positive_int_list(std::string_view key, size_t max_items, int64_t max,
                                         std::string_view required_for);

  // A boolean that may only hold `supported` (absent is fine): `why` explains the refusal.
  void expect_bool(std::string_view key, bool supported, std::string_view why);
  // An integer that may only hold `supported` (absent is fine).
  void expect_int(std::string_view key, int64_t supported, std::string_view why);

 private:
  void fail_value(std::string_view key, const json_util::Json& value, std::string_view expected);
  void missing(std::string_view key, std::string_view required_for);

  const json_util::Json& object_;
  std::string file_;
  std::string prefix_;
  absl::Status status_;
};

}  // namespace longnet::model
