// Golden test of LongNet dilated attention: both kernels (reference and cpu) against outputs computed by an
// independent float64 PyTorch implementation (tools/reference/dilated_attention.py, two formulations that
// agree to 1e-10). Inputs are not stored: tests/support/hash_inputs.h regenerates them bit for bit from the
// case's seed. Regenerate the data with `python3 tools/reference/gen_attention_golden.py`.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "longnet/kernels/dilated_attention.h"
#include "longnet/kernels/thread_pool.h"
#include "support/hash_inputs.h"
#include "support/npy.h"

namespace longnet::kernels {
namespace {

using longnet::testing::NpyArray;

// Absolute tolerance on out and on finite lse values (the kernels compute in float32).
constexpr double kTolerance = 2e-4;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

std::string attention_dir() {
  return std::string(LONGNET_TEST_DATA_DIR) + "/attention";
}

struct GoldenCase {
  std::string name;
  int64_t num_heads = 0;
  int64_t head_dim = 0;
  std::vector<int64_t> seq_lens;
  std::vector<DilatedBranch> branches;
  bool causal = true;
  uint64_t seed = 0;
  float q_scale = 1.0f;
  std::string load_error;  // set when cases.json could not be read: the test then fails with it

  int64_t total_tokens() const {
    int64_t t = 0;
    for (int64_t n : seq_lens)
      t += n;
    return t;
  }
};

// gtest prints parameters in failure messages and --gtest_list_tests; the name is what identifies a case.
void PrintTo(const GoldenCase& c, std::ostream* os) {
  *os << c.name;
}

std::vector<GoldenCase> load_cases() {
  const std::string path = attention_dir() + "/cases.json";
  GoldenCase broken;
  broken.name = "cases_json_unreadable";
  try {
    std::ifstream in(path);
    if (!in) {
      broken.load_error = path + ": cannot open";
      return {broken};
    }
    const nlohmann::json doc = nlohmann::json::parse(in);
    std::vector<GoldenCase> cases;
    for (const auto& c : doc.at("cases")) {
      GoldenCase g;
      g.name = c.at("name").get<std::string>();
      g.num_heads = c.at("num_heads").get<int64_t>();
      g.head_dim = c.at("head_dim").get<int64_t>();
      g.seq_lens = c.at("seq_lens").get<std::vector<int64_t>>();
      for (const auto& b : c.at("branches")) {
        g.branches.push_back(DilatedBranch{b.at(0).get<int64_t>(), b.at(1).get<int64_t>()});
      }
      g.causal = c.at("causal").get<bool>();
      g.seed = c.at("seed").get<uint64_t>();
      g.q_scale = c.at("q_scale").get<float>();
      cases.push_back(std::move(g));
    }
    if (cases.empty()) {
      broken.load_error = path + ": no cases";
      return {broken};
    }
    return cases;
  } catch (const std::exception& e) {
    broken.load_error = path + ": " + e.what();
    return {broken};
  }
}

// The worst errors of one kernel against the golden data, and the first offending element.
struct Comparison {
  double max_out_error = 0.0;
  double max_lse_error = 0.0;
  int64_t bad = 0;
  std::string first_bad;

  void flag(const std::string& where) {
    if (bad++ == 0) first_bad = where;
  }
};

// Compares token rows [0, T) of the golden arrays with a kernel's output, whose row `t` of sequence b sits
// at row row_of[t] of `out` (stride out_stride) and `lse` (stride num_heads).
Comparison compare(const GoldenCase& c, const NpyArray& golden_out, const NpyArray& golden_lse,
                   const std::vector<int64_t>& row_of, const std::vector<float>& out, int64_t out_stride,
                   const std::vector<float>& lse) {
  Comparison r;
  const int64_t H = c.num_heads, D = c.head_dim;
  for (int64_t t = 0; t < c.total_tokens(); ++t) {
    const int64_t row = row_of[t];
    for (int64_t h = 0; h < H; ++h) {
      const float want_lse = golden_lse.data[t * H + h];
      const float got_lse = lse[row * H + h];
      if (std::isinf(want_lse)) {
        // No branch covers (t, h): -inf exactly, never a large negative number or NaN.
        if (!(std::isinf(got_lse) && got_lse < 0)) {
          r.flag(absl::StrFormat("lse[t=%d, h=%d] = %g, want -inf", t, h, got_lse));
        }
      } else if (!std::isfinite(got_lse)) {
        r.flag(absl::StrFormat("lse[t=%d, h=%d] = %g, want %.7g", t, h, got_lse, want_lse));
      } else {
        const double e = std::fabs(static_cast<double>(got_lse) - want_lse);
        r.max_lse_error = std::max(r.max_lse_error, e);
        if (e > kTolerance)
          r.flag(absl::StrFormat("lse[t=%d, h=%d] = %.7g, want %.7g", t, h, got_lse, want_lse));
      }
      for (int64_t d = 0; d < D; ++d) {
        const float want = golden_out.data[(t * H + h) * D + d];
        const float got = out[row * out_stride + h * D + d];
        const double e = std::fabs(static_cast<double>(got) - want);
        if (std::isnan(got) || !(e <= kTolerance)) {
          r.flag(absl::StrFormat("out[t=%d, h=%d, d=%d] = %.7g, want %.7g", t, h, d, got, want));
        }
        if (!std::isnan(e)) r.max_out_error = std::max(r.max_out_error, e);
      }
    }
  }
  return r;
}

std::string describe(const Comparison& r) {
  return absl::StrFormat("max |out err| %.3e, max |lse err| %.3e, %d elements out of tolerance%s",
                         r.max_out_error, r.max_lse_error, r.bad,
                         r.bad ? absl::StrCat(" (first: ", r.first_bad, ")") : "");
}

class DilatedAttentionGoldenTest : public ::testing::TestWithParam<GoldenCase> {
 protected:
  void SetUp() override {
    const GoldenCase& c = GetParam();
    ASSERT_TRUE(c.load_error.empty()) << c.load_error;
    auto out = longnet::testing::read_npy(attention_dir() + "/" + c.name + ".out.npy");
    ASSERT_TRUE(out.ok()) << out.status();
    auto lse = longnet::testing::read_npy(attention_dir() + "/" + c.name + ".lse.npy");
    ASSERT_TRUE(lse.ok()) << lse.status();
    const int64_t T = c.total_tokens();
    ASSERT_EQ(out->shape, (std::vector<int64_t>{T, c.num_heads, c.head_dim})) << c.name << ".out.npy";
    ASSERT_EQ(lse->shape, (std::vector<int64_t>{T, c.num_heads})) << c.name << ".lse.npy";
    golden_out_ = std::move(*out);
    golden_lse_ = std::move(*lse);
    params_.branches = c.branches;
    params_.causal = c.causal;
    params_.scale = 0.0f;  // 1/sqrt(D), as the Python reference
  }

  // Runs one kernel ("reference" or "cpu") on the buffers described by `shape`.
  absl::Status run(const std::string& kernel, const DilatedAttentionShape& shape, const float* q,
                   const float* k, const float* v, float* out, float* lse) {
    if (kernel == "reference") return reference::dilated_attention(shape, params_, q, k, v, out, lse);
    ThreadPool& pool = ThreadPool::global();
    const int64_t floats = cpu::dilated_attention_workspace_floats(shape, params_, pool.num_threads());
    if (floats < 0) return absl::InternalError(absl::StrCat("negative workspace size ", floats));
    std::vector<float> workspace(static_cast<size_t>(floats), kNaN);
    return cpu::dilated_attention(shape, params_, q, k, v, out, lse, workspace, pool);
  }

  void report(const std::string& layout, const std::string& kernel, const Comparison& r) {
    const GoldenCase& c = GetParam();
    RecordProperty(absl::StrCat(layout, "_", kernel, "_max_out_error"),
                   absl::StrFormat("%.3e", r.max_out_error));
    RecordProperty(absl::StrCat(layout, "_", kernel, "_max_lse_error"),
                   absl::StrFormat("%.3e", r.max_lse_error));
    std::printf("[ golden   ] %-30s %-7s %-9s max |out err| %.3e  max |lse err| %.3e%s\n", c.name.c_str(),
                layout.c_str(), kernel.c_str(), r.max_out_error, r.max_lse_error, r.bad ? "  FAIL" : "");
    EXPECT_EQ(r.bad, 0) << c.name << " (" << layout << " layout), " << kernel << " kernel: " << describe(r);
  }

  NpyArray golden_out_;
  NpyArray golden_lse_;
  DilatedAttentionParams params_;
};

// The layout the brief of the engine describes first: sequences packed back to back, strides H*D.
TEST_P(DilatedAttentionGoldenTest, Packed) {
  const GoldenCase& c = GetParam();
  const int64_t T = c.total_tokens(), H = c.num_heads, D = c.head_dim;
  const auto qkv = longnet::testing::hash_qkv(c.seed, static_cast<size_t>(T * H * D), c.q_scale);

  std::vector<int64_t> starts;
  int64_t pos = 0;
  for (int64_t n : c.seq_lens) {
    starts.push_back(pos);
    pos += n;
  }
  DilatedAttentionShape shape;
  shape.num_heads = H;
  shape.head_dim = D;
  shape.seq_starts = starts;
  shape.seq_lens = c.seq_lens;
  shape.q_stride = shape.k_stride = shape.v_stride = shape.out_stride = H * D;

  std::vector<int64_t> row_of(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t)
    row_of[t] = t;

  for (const std::string kernel : {"reference", "cpu"}) {
    // NaN everywhere first, so an element the kernel forgets to write cannot pass.
    std::vector<float> out(static_cast<size_t>(T * H * D), kNaN);
    std::vector<float> lse(static_cast<size_t>(T * H), kNaN);
    const absl::Status status =
        run(kernel, shape, qkv.q.data(), qkv.k.data(), qkv.v.data(), out.data(), lse.data());
    ASSERT_TRUE(status.ok()) << c.name << ", " << kernel << " kernel: " << status;
    report("packed", kernel, compare(c, golden_out_, golden_lse_, row_of, out, H * D, lse));
  }
}

// The same data in the layout of a fused QKV projection (row stride 3*H*D), with gap rows between the
// sequences and padding columns after each output row: results must not change, and nothing outside the
// sequences' rows and the H*D columns may be written.
TEST_P(DilatedAttentionGoldenTest, StridedWithGaps) {
  const GoldenCase& c = GetParam();
  const int64_t T = c.total_tokens(), H = c.num_heads, D = c.head_dim;
  const auto packed = longnet::testing::hash_qkv(c.seed, static_cast<size_t>(T * H * D), c.q_scale);

  constexpr int64_t kLeadingRows = 2, kGapRows = 3, kOutPad = 3;
  std::vector<int64_t> starts, row_of;
  int64_t row = kLeadingRows;
  for (int64_t n : c.seq_lens) {
    starts.push_back(row);
    for (int64_t j = 0; j < n; ++j)
      row_of.push_back(row + j);
    row += n + kGapRows;
  }
  const int64_t rows = row;
  const int64_t qkv_stride = 3 * H * D, out_stride = H * D + kOutPad;

  // Gap rows hold large values: if a kernel reads them, the results move far outside the tolerance.
  std::vector<float> qkv(static_cast<size_t>(rows * qkv_stride), 1e3f);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t i = 0; i < H * D; ++i) {
      qkv[row_of[t] * qkv_stride + i] = packed.q[t * H * D + i];
      qkv[row_of[t] * qkv_stride + H * D + i] = packed.k[t * H * D + i];
      qkv[row_of[t] * qkv_stride + 2 * H * D + i] = packed.v[t * H * D + i];
    }
  }

  DilatedAttentionShape shape;
  shape.num_heads = H;
  shape.head_dim = D;
  shape.seq_starts = starts;
  shape.seq_lens = c.seq_lens;
  shape.q_stride = shape.k_stride = shape.v_stride = qkv_stride;
  shape.out_stride = out_stride;

  constexpr float kSentinel = -12345.0f;
  for (const std::string kernel : {"reference", "cpu"}) {
    std::vector<float> out(static_cast<size_t>(rows * out_stride), kSentinel);
    std::vector<float> lse(static_cast<size_t>(rows * H), kSentinel);
    // Rows inside a sequence start as NaN (must be written); everything else keeps the sentinel.
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t i = 0; i < H * D; ++i)
        out[row_of[t] * out_stride + i] = kNaN;
      for (int64_t h = 0; h < H; ++h)
        lse[row_of[t] * H + h] = kNaN;
    }
    const absl::Status status =
        run(kernel, shape, qkv.data(), qkv.data() + H * D, qkv.data() + 2 * H * D, out.data(), lse.data());
    ASSERT_TRUE(status.ok()) << c.name << ", " << kernel << " kernel: " << status;
    report("strided", kernel, compare(c, golden_out_, golden_lse_, row_of, out, out_stride, lse));

    std::vector<bool> in_sequence(static_cast<size_t>(rows), false);
    for (int64_t r : row_of)
      in_sequence[r] = true;
    int64_t touched = 0;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t i = 0; i < out_stride; ++i) {
        if ((!in_sequence[r] || i >= H * D) && out[r * out_stride + i] != kSentinel) ++touched;
      }
      for (int64_t h = 0; h < H; ++h) {
        if (!in_sequence[r] && lse[r * H + h] != kSentinel) ++touched;
      }
    }
    EXPECT_EQ(touched, 0) << c.name << ", " << kernel
                          << " kernel wrote outside the sequences' rows or past H*D columns";
  }
}

// One CTest entry per case, named after it (names in cases.json are [A-Za-z0-9_]).
std::string case_name(const ::testing::TestParamInfo<GoldenCase>& param_info) {
  return param_info.param.name;
}

INSTANTIATE_TEST_SUITE_P(Golden, DilatedAttentionGoldenTest, ::testing::ValuesIn(load_cases()), case_name);

// --- The input generator: these constants were printed by tools/reference/gen_attention_golden.py, so
// this is a cross-language check of the hash, not a copy of the C++ against itself.
TEST(HashInputs, MatchesPython) {
  using longnet::testing::hash_value;
  using longnet::testing::splitmix64;
  static_assert(splitmix64(0) == 0xE220A8397B1DCDAFull);  // also splitmix64's published first output
  EXPECT_EQ(splitmix64(1), 0x910A2DEC89025CC1ull);
  EXPECT_EQ(splitmix64(uint64_t{69} << 32 | 123456), 0xA8CBB8183136DE56ull);
  EXPECT_EQ(splitmix64(uint64_t{74} << 32 | 211199), 0x4EFF09D90A8EA3E0ull);
  EXPECT_EQ(hash_value(0, 0), 0.7666215896606445f);
  EXPECT_EQ(hash_value(0, 1), 0.13312304019927979f);
  EXPECT_EQ(hash_value(0, 2), 0.1823793649673462f);
  EXPECT_EQ(hash_value(1, 0), 0.5326035022735596f);
  EXPECT_EQ(hash_value(5, 7), 0.7131023406982422f);
  EXPECT_EQ(hash_value(69, 123456), 0.31871700286865234f);
  EXPECT_EQ(hash_value(74, 211199), -0.38284194469451904f);
  // Every value is in [-1, 1) on the 2^-23 grid.
  for (uint64_t i = 0; i < 4096; ++i) {
    const float x = hash_value(9, i);
    ASSERT_GE(x, -1.0f);
    ASSERT_LT(x, 1.0f);
    ASSERT_EQ(std::ldexp(x, 23), std::round(std::ldexp(x, 23)));
  }
}

// --- The .npy reader and writer.

std::string write_bytes(const std::string& name, const std::string& bytes) {
  std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

TEST(Npy, RoundTripsThroughAFile) {
  const std::vector<int64_t> shape = {2, 3};
  const std::vector<float> data = {0.5f, -1.0f, 3.25f, -std::numeric_limits<float>::infinity(), 0.0f, 1e-30f};
  const std::string path = ::testing::TempDir() + "/npy_round_trip.npy";
  ASSERT_TRUE(longnet::testing::write_npy(path, shape, data).ok());
  auto back = longnet::testing::read_npy(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->shape, shape);
  EXPECT_EQ(back->data, data);
}

TEST(Npy, WriterMatchesNumpyBytes) {
  // np.save wrote the golden files; re-encoding what we read must give the same bytes, header included.
  for (const std::string name :
       {"n_eq_1_causal.lse.npy", "ragged_causal.out.npy", "single_r1_causal.out.npy"}) {
    const std::string path = attention_dir() + "/" + name;
    std::ifstream in(path, std::ios::binary);
    ASSERT_TRUE(in) << path;
    const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    auto array = longnet::testing::parse_npy(bytes, path);
    ASSERT_TRUE(array.ok()) << array.status();
    auto encoded = longnet::testing::encode_npy(array->shape, array->data);
    ASSERT_TRUE(encoded.ok()) << encoded.status();
    EXPECT_EQ(*encoded, bytes) << name;
  }
}

TEST(Npy, OneDimensionalAndScalarShapes) {
  for (const std::vector<int64_t>& shape : {std::vector<int64_t>{4}, std::vector<int64_t>{}}) {
    const std::vector<float> data(shape.empty() ? 1 : 4, 2.0f);
    auto bytes = longnet::testing::encode_npy(shape, data);
    ASSERT_TRUE(bytes.ok());
    auto back = longnet::testing::parse_npy(*bytes);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->shape, shape);
    EXPECT_EQ(back->data, data);
  }
}

TEST(Npy, RejectsATruncatedFile) {
  auto bytes = longnet::testing::encode_npy(std::vector<int64_t>{4, 4}, std::vector<float>(16, 1.0f));
  ASSERT_TRUE(bytes.ok());
  const std::string path = write_bytes("npy_truncated.npy", bytes->substr(0, bytes->size() - 10));
  auto r = longnet::testing::read_npy(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("truncated"), std::string_view::npos) << r.status();
  EXPECT_NE(r.status().message().find("needs 64 bytes but the file holds 54"), std::string_view::npos)
      << r.status();
  EXPECT_NE(r.status().message().find(path), std::string_view::npos) << r.status();

  // Cut inside the header too.
  auto header_cut = longnet::testing::parse_npy(bytes->substr(0, 20), "cut.npy");
  ASSERT_FALSE(header_cut.ok());
  EXPECT_NE(header_cut.status().message().find("truncated .npy header"), std::string_view::npos)
      << header_cut.status();
}

TEST(Npy, RejectsAWrongDtype) {
  auto bytes = longnet::testing::encode_npy(std::vector<int64_t>{2}, std::vector<float>(2, 1.0f));
  ASSERT_TRUE(bytes.ok());
  std::string f8 = *bytes;
  f8.replace(f8.find("<f4"), 3, "<f8");
  const std::string path = write_bytes("npy_f8.npy", f8);
  auto r = longnet::testing::read_npy(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("dtype '<f8' is not supported"), std::string_view::npos) << r.status();

  std::string big_endian = *bytes;
  big_endian.replace(big_endian.find("<f4"), 3, ">f4");
  auto be = longnet::testing::parse_npy(big_endian, "be.npy");
  ASSERT_FALSE(be.ok());
  EXPECT_NE(be.status().message().find("'>f4'"), std::string_view::npos) << be.status();
}

TEST(Npy, RejectsOtherMalformedFiles) {
  auto bytes = longnet::testing::encode_npy(std::vector<int64_t>{2}, std::vector<float>(2, 1.0f));
  ASSERT_TRUE(bytes.ok());

  auto magic = longnet::testing::parse_npy("PK\x03\x04 not npy at all", "zip.npy");
  ASSERT_FALSE(magic.ok());
  EXPECT_NE(magic.status().message().find("bad magic"), std::string_view::npos) << magic.status();

  std::string fortran = *bytes;
  fortran.replace(fortran.find("False"), 5, "True ");
  auto f = longnet::testing::parse_npy(fortran, "f.npy");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("Fortran"), std::string_view::npos) << f.status();

  std::string version = *bytes;
  version[6] = '\x09';
  auto v = longnet::testing::parse_npy(version, "v.npy");
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("version 9"), std::string_view::npos) << v.status();

  std::string longer = *bytes + "junk";
  auto l = longnet::testing::parse_npy(longer, "long.npy");
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.status().message().find("needs 8 bytes but the file holds 12"), std::string_view::npos)
      << l.status();

  auto missing = longnet::testing::read_npy(::testing::TempDir() + "/does_not_exist.npy");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);

  auto writer = longnet::testing::encode_npy(std::vector<int64_t>{3}, std::vector<float>(2, 1.0f));
  ASSERT_FALSE(writer.ok());
  EXPECT_NE(writer.status().message().find("holds 3 values but 2 were given"), std::string_view::npos)
      << writer.status();
}

TEST(Npy, ReadsVersion2Headers) {
  // Version 2.0 differs only in a 4-byte header length; build one from a 1.0 file.
  auto v1 = longnet::testing::encode_npy(std::vector<int64_t>{3}, std::vector<float>{1.0f, 2.0f, 3.0f});
  ASSERT_TRUE(v1.ok());
  const size_t header_len =
      static_cast<uint8_t>((*v1)[8]) | static_cast<size_t>(static_cast<uint8_t>((*v1)[9])) << 8;
  std::string v2 = v1->substr(0, 6) + std::string("\x02\x00", 2);
  for (int i = 0; i < 4; ++i)
    v2.push_back(static_cast<char>((header_len >> (8 * i)) & 0xFF));
  v2 += v1->substr(10);
  auto r = longnet::testing::parse_npy(v2, "v2.npy");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->data, (std::vector<float>{1.0f, 2.0f, 3.0f}));
}

}  // namespace
}  // namespace longnet::kernels
