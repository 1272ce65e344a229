#pragma once

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>

#include "absl/status/statusor.h"

namespace longnet::model {

// A whole file mapped read-only into memory, unmapped when the last owner goes. Move-only.
//
// Weight files are read through a mapping rather than read() so that a multi-gigabyte checkpoint is paged in
// once, as the loader converts it, instead of being copied into a second buffer first. The file must not be
// truncated while it is mapped: reading a page that no longer exists raises SIGBUS, which no status can
// report (every loader in the wild, safetensors' own included, shares this limit).
class MappedFile {
 public:
  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() { reset(); }

  // NotFound when `path` does not exist; InvalidArgument when it is not a regular file; the errno's code
  // otherwise. Each message names the path. An empty file maps to an empty span.
  static absl::StatusOr<MappedFile> open(const std::filesystem::path& path);

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  void reset();

  const std::byte* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace longnet::model
