#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

// The subcommands of longnet-run. Their flags and outputs are an interface external checks rely on
// (issue "Model", item 7): change them only by adding.
namespace longnet::cli {

absl::Status run_forward(const std::vector<std::string>& argv);
absl::Status run_generate(const std::vector<std::string>& argv);
absl::Status run_encode(const std::vector<std::string>& argv);
absl::Status run_score(const std::vector<std::string>& argv);

}  // namespace longnet::cli
