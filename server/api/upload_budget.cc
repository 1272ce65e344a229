#include "api/upload_budget.h"

#include "absl/strings/str_cat.h"

namespace longnet::server {

UploadBudget::Share::~Share() {
  std::lock_guard lock(budget_.mutex_);
  budget_.held_ -= held_;
}

absl::Status UploadBudget::Share::grow_to(size_t bytes) {
  if (bytes <= held_) return absl::OkStatus();
  std::lock_guard lock(budget_.mutex_);
  const size_t more = bytes - held_;
  if (budget_.held_ + more > budget_.limit_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("documents being uploaded hold ", budget_.held_, " bytes; this one would add ", more,
                     " more, past the server's limit of ", budget_.limit_,
                     " bytes for uploads in progress (a quarter of memory_budget_bytes); retry later"));
  }
  budget_.held_ += more;
  held_ = bytes;
  return absl::OkStatus();
}

}  // namespace longnet::server
