#pragma once

#include <cstdint>
#include <filesystem>
#include <span>

#include "absl/status/status.h"

namespace longnet::cli {

// Writes a little-endian float32 .npy file (format version 1.0, C order) of the given shape.
absl::Status write_npy_f32(const std::filesystem::path& path, std::span<const int64_t> shape,
                           const float* data);

}  // namespace longnet::cli
