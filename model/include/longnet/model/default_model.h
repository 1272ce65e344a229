#pragma once

#include <filesystem>

#include "absl/status/statusor.h"

namespace longnet::model {

// The embedded demo model (models/demo of the source tree, installed as share/longnet/models/demo):
// the default when no model is named. Looked up from the running executable's directory: the install
// layout (<prefix>/bin -> <prefix>/share/longnet/models/demo) first, then each parent directory's
// models/demo (a build tree inside the source tree). NotFound names the places searched.
absl::StatusOr<std::filesystem::path> find_demo_model();

}  // namespace longnet::model
