#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

// Command-line flags of longnet-run and longnet-cli: `--name value` or `--name=value`, boolean switches
// (`--decode`), and, where a command takes them, positional arguments (longnet-cli's FILE...).
namespace longnet::cli {

class Args {
 public:
  // `value_flags` take a value, `switches` do not; anything else is an error naming the argument.
  // Positional arguments are an error unless `positional` is true.
  static absl::StatusOr<Args> parse(const std::vector<std::string>& argv,
                                    const std::set<std::string>& value_flags,
                                    const std::set<std::string>& switches, bool positional = false);

  bool has(const std::string& name) const { return values_.count(name) > 0; }
  absl::StatusOr<std::string> required(const std::string& name) const;
  std::string get(const std::string& name, const std::string& fallback) const;
  // Parsed numbers; an unparsable value is an error naming the flag and the value.
  absl::StatusOr<int64_t> get_int(const std::string& name, int64_t fallback) const;
  absl::StatusOr<double> get_double(const std::string& name, double fallback) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;  // switches map to ""
  std::vector<std::string> positional_;
};

}  // namespace longnet::cli
