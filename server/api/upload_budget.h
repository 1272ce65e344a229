#pragma once

#include <cstddef>
#include <mutex>

#include "absl/status/status.h"

// Bytes of documents being uploaded by EncodeStream (held as text or ids until the last chunk, outside
// the memory pool), bounded for the whole server so that many concurrent uploads cannot exhaust memory:
// past the bound a chunk is refused with RESOURCE_EXHAUSTED (retry later). Thread-safe.
namespace longnet::server {

class UploadBudget {
 public:
  explicit UploadBudget(size_t limit_bytes) : limit_(limit_bytes) {}

  size_t limit() const { return limit_; }

  // One upload's share: grow() as its document grows; what it holds is given back on destruction.
  class Share {
   public:
    explicit Share(UploadBudget& budget) : budget_(budget) {}
    ~Share();
    Share(const Share&) = delete;
    Share& operator=(const Share&) = delete;
    // Makes the share `bytes` in all; ResourceExhausted (nothing changed) when that would pass the limit.
    absl::Status grow_to(size_t bytes);

   private:
    UploadBudget& budget_;
    size_t held_ = 0;
  };

 private:
  std::mutex mutex_;
  size_t limit_;
  size_t held_ = 0;
};

}  // namespace longnet::server
