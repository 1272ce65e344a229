#include "config_reader.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"

namespace longnet::model {

using json_util::Json;
using json_util::to_absl;
using json_util::value_text;

ConfigReader::ConfigReader(const Json& object, std::string file, std::string prefix)
    : object_(object), file_(std::move(file)), prefix_(std::move(prefix)) {}

void ConfigReader::fail(std::string_view key, std::string_view detail) {
  if (!status_.ok()) return;
  status_ = absl::InvalidArgumentError(absl::StrCat(
      file_, ": key ", json_util::quote(absl::StrCat(prefix_, to_absl(key))), ": ", to_absl(detail)));
}

void ConfigReader::fail_value(std::string_view key, const Json& value, std::string_view expected) {
  fail(key, absl::StrCat("expected ", to_absl(expected), ", found ", value_text(value)));
}

void ConfigReader::missing(std::string_view key, std::string_view required_for) {
  fail(key, required_for.empty() ? std::string("missing (required)")
                                 : absl::StrCat("missing (required for ", to_absl(required_for), ")"));
}

const Json* ConfigReader::find(std::string_view key) const {
  const auto it = object_.find(key);
  return it == object_.end() ? nullptr : &*it;
}

int64_t ConfigReader::integer(std::string_view key, std::optional<int64_t> fallback, int64_t min, int64_t max,
                              std::string_view required_for) {
  const Json* value = find(key);
  if (value == nullptr) {
    if (!fallback) missing(key, required_for);
    return fallback.value_or(0);
  }
  const std::optional<int64_t> number = json_util::as_int64(*value);
  if (!number || *number < min || *number > max) {
    fail_value(key, *value, absl::StrCat("an integer from ", min, " to ", max));
    return fallback.value_or(0);
  }
  return *number;
}

bool ConfigReader::boolean(std::string_view key, bool fallback) {
  const Json* value = find(key);
  if (value == nullptr) return fallback;
  if (!value->is_boolean()) {
    fail_value(key, *value, "true or false");
    return fallback;
  }
  return value->get<bool>();
}

double ConfigReader::positive_number(std::string_view key, double fallback) {
  const Json* value = find(key);
  if (value == nullptr) return fallback;
  if (!value->is_number() || !(value->get<double>() > 0.0) || !std::isfinite(value->get<double>())) {
    fail_value(key, *value, "a finite number > 0");
    return fallback;
  }
  return value->get<double>();
}

std::string ConfigReader::string(std::string_view key, std::optional<std::string> fallback,
                                 std::string_view required_for) {
  const Json* value = find(key);
  if (value == nullptr) {
    if (!fallback) missing(key, required_for);
    return fallback.value_or("");
  }
  if (!value->is_string()) {
    fail_value(key, *value, "a string");
    return fallback.value_or("");
  }
  return value->get<std::string>();
}

std::vector<int64_t> ConfigReader::positive_int_list(std::string_view key, size_t max_items, int64_t max,
                                                     std::string_view required_for) {
  const Json* value = find(key);
  if (value == nullptr) {
    missing(key, required_for);
    return {};
  }
  const std::string expected = absl::StrCat("a list of 1 to ", max_items, " integers from 1 to ", max);
  if (value->is_string()) {
    // torchscale keeps these as strings it evals ("[2048,4096]"); the converter must write real lists.
    fail_value(key, *value, absl::StrCat(expected, " (a JSON list, not a string)"));
    return {};
  }
  if (!value->is_array() || value->empty() || value->size() > max_items) {
    fail_value(key, *value, expected);
    return {};
  }
  std::vector<int64_t> items;
  for (const Json& item : *value) {
    const std::optional<int64_t> number = json_util::as_int64(item);
    if (!number || *number < 1 || *number > max) {
      fail_value(key, *value, expected);
      return {};
    }
    items.push_back(*number);
  }
  return items;
}

void ConfigReader::expect_bool(std::string_view key, bool supported, std::string_view why) {
  const Json* value = find(key);
  if (value == nullptr) return;
  if (!value->is_boolean()) {
    fail_value(key, *value, supported ? "true" : "false");
  } else if (value->get<bool>() != supported) {
    fail(key, absl::StrCat("unsupported value ", value_text(*value), " (expected ",
                           supported ? "true" : "false", ": ", to_absl(why), ")"));
  }
}

void ConfigReader::expect_int(std::string_view key, int64_t supported, std::string_view why) {
  const Json* value = find(key);
  if (value == nullptr) return;
  const std::optional<int64_t> number = json_util::as_int64(*value);
  if (!number) {
    fail_value(key, *value, absl::StrCat("the integer ", supported));
  } else if (*number != supported) {
    fail(key, absl::StrCat("unsupported value ", value_text(*value), " (expected ", supported, ": ",
                           to_absl(why), ")"));
  }
}

}  // namespace longnet::model
