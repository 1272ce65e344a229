#pragma once

// A small reader and writer of NumPy .npy files, for test data: version 1.0, 2.0 and 3.0 headers, dtype
// '<f4' (little-endian float32), C order, any number of dimensions. Everything else is refused with an error
// that names the file and what is wrong, so a bad golden file fails a test with a readable message.
// Format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html

#include <bit>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace longnet::testing {

static_assert(std::endian::native == std::endian::little, "npy.h copies '<f4' data as host floats");

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;  // C order

  int64_t size() const {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    return n;
  }
  std::string shape_string() const { return absl::StrCat("(", absl::StrJoin(shape, ", "), ")"); }
};

namespace npy_detail {

inline constexpr std::string_view kMagic = "\x93NUMPY";

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\n' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

// The header is a Python dict literal written by numpy, e.g.
//   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
// Returns the text of the value of `key` (a quoted string, a bare word or a parenthesised tuple).
inline absl::StatusOr<std::string_view> dict_value(std::string_view header, std::string_view key,
                                                   const std::string& what) {
  for (const char quote : {'\'', '"'}) {
    const std::string pattern = std::string(1, quote) + std::string(key) + std::string(1, quote);
    const size_t at = header.find(pattern);
    if (at == std::string_view::npos) continue;
    std::string_view rest = trim(header.substr(at + pattern.size()));
    if (rest.empty() || rest.front() != ':') break;
    rest = trim(rest.substr(1));
    size_t end = std::string_view::npos;
    if (!rest.empty() && (rest.front() == '\'' || rest.front() == '"')) {
      end = rest.find(rest.front(), 1);
      if (end != std::string_view::npos) return rest.substr(1, end - 1);
    } else if (!rest.empty() && rest.front() == '(') {
      end = rest.find(')');
      if (end != std::string_view::npos) return rest.substr(0, end + 1);
    } else {
      end = rest.find_first_of(",}");
      if (end != std::string_view::npos) return trim(rest.substr(0, end));
    }
    break;
  }
  return absl::InvalidArgumentError(absl::StrCat(what, ": npy header has no readable '", std::string(key),
                                                 "' entry: ", std::string(header)));
}

inline absl::StatusOr<std::vector<int64_t>> parse_shape(std::string_view tuple, const std::string& what) {
  // tuple looks like "()", "(5,)" or "(3, 4)".
  std::vector<int64_t> shape;
  std::string_view body = tuple.substr(1, tuple.size() - 2);
  while (true) {
    body = trim(body);
    if (body.empty()) break;
    const size_t comma = body.find(',');
    const std::string_view item = trim(body.substr(0, comma));
    if (item.empty() || item.size() > 15) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": bad npy shape ", std::string(tuple)));
    }
    int64_t dim = 0;
    for (const char c : item) {
      if (c < '0' || c > '9')
        return absl::InvalidArgumentError(absl::StrCat(what, ": bad npy shape ", std::string(tuple)));
      dim = dim * 10 + (c - '0');
    }
    shape.push_back(dim);
    if (comma == std::string_view::npos) break;
    body.remove_prefix(comma + 1);
  }
  return shape;
}

inline void append_le(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i)
    out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

}  // namespace npy_detail

// Parses the bytes of a .npy file. `what` names the source in error messages (usually the path).
inline absl::StatusOr<NpyArray> parse_npy(std::string_view bytes, const std::string& what = "npy data") {
  using npy_detail::kMagic;
  if (bytes.size() < kMagic.size() + 2 || bytes.substr(0, kMagic.size()) != kMagic) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": not a .npy file (bad magic string)"));
  }
  const auto major = static_cast<uint8_t>(bytes[6]);
  size_t len_bytes = 0;
  if (major == 1) {
    len_bytes = 2;
  } else if (major == 2 || major == 3) {
    len_bytes = 4;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": unsupported .npy version ", static_cast<int>(major)));
  }
  const size_t prefix = kMagic.size() + 2 + len_bytes;
  if (bytes.size() < prefix) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": truncated .npy header"));
  }
  size_t header_len = 0;
  for (size_t i = 0; i < len_bytes; ++i) {
    header_len |= static_cast<size_t>(static_cast<uint8_t>(bytes[8 + i])) << (8 * i);
  }
  if (bytes.size() < prefix + header_len) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": truncated .npy header (needs ", header_len,
                                                   " bytes, file has ", bytes.size() - prefix, ")"));
  }
  const std::string_view header = bytes.substr(prefix, header_len);

  auto descr = npy_detail::dict_value(header, "descr", what);
  if (!descr.ok()) return descr.status();
  if (*descr != "<f4") {
    return absl::InvalidArgumentError(absl::StrCat(what, ": dtype '", std::string(*descr),
                                                   "' is not supported (only '<f4', little-endian float32)"));
  }
  auto fortran = npy_detail::dict_value(header, "fortran_order", what);
  if (!fortran.ok()) return fortran.status();
  if (*fortran != "False") {
    return absl::InvalidArgumentError(absl::StrCat(what, ": Fortran-order arrays are not supported"));
  }
  auto shape_text = npy_detail::dict_value(header, "shape", what);
  if (!shape_text.ok()) return shape_text.status();
  auto shape = npy_detail::parse_shape(*shape_text, what);
  if (!shape.ok()) return shape.status();

  NpyArray array;
  array.shape = std::move(*shape);
  // Guard the element count against overflow before trusting it for a size check.
  int64_t count = 1;
  for (int64_t d : array.shape) {
    if (d != 0 && count > std::numeric_limits<int64_t>::max() / 4 / d) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": npy shape ", std::string(*shape_text), " is too large"));
    }
    count *= d;
  }
  const std::string_view payload = bytes.substr(prefix + header_len);
  const auto expected = static_cast<size_t>(count) * sizeof(float);
  if (payload.size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": npy data of shape ", array.shape_string(), " needs ", expected, " bytes but the file holds ",
        payload.size(), payload.size() < expected ? " (truncated)" : ""));
  }
  array.data.resize(static_cast<size_t>(count));
  if (count > 0) std::memcpy(array.data.data(), payload.data(), expected);
  return array;
}

inline absl::StatusOr<NpyArray> read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
  return parse_npy(bytes, path);
}

// The bytes of a version 1.0 .npy file holding `data` (float32, C order) with the given shape; what
// np.save writes for the same array, so numpy reads it back with np.load.
inline absl::StatusOr<std::string> encode_npy(std::span<const int64_t> shape, std::span<const float> data) {
  int64_t count = 1;
  for (int64_t d : shape) {
    if (d < 0) return absl::InvalidArgumentError(absl::StrCat("npy shape has a negative dimension ", d));
    count *= d;
  }
  if (static_cast<size_t>(count) != data.size()) {
    return absl::InvalidArgumentError(absl::StrCat("npy shape (", absl::StrJoin(shape, ", "), ") holds ",
                                                   count, " values but ", data.size(), " were given"));
  }
  std::string dims = absl::StrJoin(shape, ", ");
  if (shape.size() == 1) dims += ",";  // Python's one-element tuple
  std::string header = absl::StrCat("{'descr': '<f4', 'fortran_order': False, 'shape': (", dims, "), }");
  // Pad with spaces and end with '\n' so that the data starts on a 64-byte boundary, as numpy does.
  const size_t unpadded = npy_detail::kMagic.size() + 2 + 2 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  if (header.size() > 0xFFFF) return absl::InvalidArgumentError("npy header too long for version 1.0");

  std::string out(npy_detail::kMagic);
  out.push_back('\x01');
  out.push_back('\x00');
  npy_detail::append_le(out, header.size(), 2);
  out += header;
  const size_t at = out.size();
  out.resize(at + data.size_bytes());
  if (!data.empty()) std::memcpy(out.data() + at, data.data(), data.size_bytes());
  return out;
}

inline absl::Status write_npy(const std::string& path, std::span<const int64_t> shape,
                              std::span<const float> data) {
  auto bytes = encode_npy(shape, data);
  if (!bytes.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", bytes.status().message()));
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::NotFoundError(absl::StrCat(path, ": cannot open for writing"));
  out.write(bytes->data(), static_cast<std::streamsize>(bytes->size()));
  out.close();
  if (!out) return absl::DataLossError(absl::StrCat(path, ": write error"));
  return absl::OkStatus();
}

}  // namespace longnet::testing
