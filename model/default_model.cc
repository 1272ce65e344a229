#include "longnet/model/default_model.h"

#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace longnet::model {

absl::StatusOr<std::filesystem::path> find_demo_model() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return absl::NotFoundError(absl::StrCat("cannot locate the running executable: ", ec.message()));
  std::vector<std::filesystem::path> candidates = {exe.parent_path().parent_path() /
                                                   "share/longnet/models/demo"};
  for (std::filesystem::path dir = exe.parent_path(); !dir.empty() && dir != dir.root_path();
       dir = dir.parent_path()) {
    candidates.push_back(dir / "models/demo");
  }
  for (const auto& c : candidates) {
    if (std::filesystem::exists(c / "config.json", ec)) return c;
  }
  std::vector<std::string> searched;
  for (const auto& c : candidates)
    searched.push_back(c.string());
  return absl::NotFoundError(
      absl::StrCat("no model given and the demo model was not found in: ", absl::StrJoin(searched, ", ")));
}

}  // namespace longnet::model
