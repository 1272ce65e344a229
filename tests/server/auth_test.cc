#include "security/auth.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "support/temp_dir.h"

namespace longnet::server {
namespace {

// A file in this test process's own temporary directory, removed at exit.
std::string write_file(const std::string& name, const std::string& contents) {
  static const testing::TempDir dir;
  testing::write_file(dir / name, contents);
  return (dir / name).string();
}

std::string message_of(const absl::Status& status) {
  return std::string(status.message());
}

ApiKeys two_keys() {
  const std::string path =
      write_file("keys", "# production keys\n\n  alpha-key-0123  \r\nbeta.KEY_456\n   # indented comment\n");
  absl::StatusOr<ApiKeys> keys = ApiKeys::load(path);
  EXPECT_TRUE(keys.ok()) << keys.status();
  return keys.ok() ? *std::move(keys) : ApiKeys::none();
}

TEST(Auth, NoneAllowsEverything) {
  const ApiKeys keys = ApiKeys::none();
  EXPECT_FALSE(keys.enabled());
  EXPECT_TRUE(keys.check(std::nullopt).ok());
  EXPECT_TRUE(keys.check("Bearer anything").ok());
  EXPECT_TRUE(keys.check("garbage").ok());
}

TEST(Auth, LoadsKeysSkippingCommentsAndBlanks) {
  const ApiKeys keys = two_keys();
  EXPECT_TRUE(keys.enabled());
  EXPECT_EQ(keys.size(), 2u);
}

TEST(Auth, AcceptsAConfiguredKeyWithAnyCaseOfScheme) {
  const ApiKeys keys = two_keys();
  EXPECT_TRUE(keys.check("Bearer alpha-key-0123").ok());
  EXPECT_TRUE(keys.check("bearer beta.KEY_456").ok());
  EXPECT_TRUE(keys.check("BEARER   alpha-key-0123  ").ok());
}

TEST(Auth, RefusesWithoutEchoingWhatWasSent) {
  const ApiKeys keys = two_keys();

  const absl::Status missing = keys.check(std::nullopt);
  EXPECT_EQ(missing.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(message_of(missing).find("authorization: Bearer"), std::string::npos) << missing;

  const absl::Status wrong = keys.check("Bearer secret-guess-999");
  EXPECT_EQ(wrong.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(message_of(wrong).find("invalid API key"), std::string::npos) << wrong;
  EXPECT_EQ(message_of(wrong).find("secret-guess-999"), std::string::npos) << wrong;

  const absl::Status basic = keys.check("Basic alpha-key-0123");
  EXPECT_EQ(basic.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(message_of(basic).find("Bearer"), std::string::npos) << basic;
  EXPECT_EQ(message_of(basic).find("alpha-key-0123"), std::string::npos) << basic;

  const absl::Status bare_key = keys.check("alpha-key-0123");  // the scheme forgotten
  EXPECT_EQ(bare_key.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(message_of(bare_key).find("alpha-key-0123"), std::string::npos) << bare_key;

  const absl::Status empty_token = keys.check("Bearer ");
  EXPECT_EQ(empty_token.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(message_of(empty_token).find("no API key"), std::string::npos) << empty_token;

  EXPECT_EQ(keys.check("").code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(keys.check("Bearer alpha-key-012").code(), absl::StatusCode::kUnauthenticated);     // a prefix
  EXPECT_EQ(keys.check("Bearer alpha-key-01234").code(), absl::StatusCode::kUnauthenticated);   // longer
  EXPECT_EQ(keys.check("Bearer alpha-key-0123 x").code(), absl::StatusCode::kUnauthenticated);  // extra
  EXPECT_EQ(keys.check("Bearer ALPHA-KEY-0123").code(), absl::StatusCode::kUnauthenticated);    // key case
}

TEST(Auth, LoadErrorsNameThePathAndLine) {
  const absl::StatusOr<ApiKeys> missing = ApiKeys::load("/no/such/keys.txt");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(message_of(missing.status()).find("/no/such/keys.txt"), std::string::npos) << missing.status();

  const std::string empty_path = write_file("empty", "# nothing here\n\n");
  const absl::StatusOr<ApiKeys> empty = ApiKeys::load(empty_path);
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(message_of(empty.status()).find(empty_path), std::string::npos) << empty.status();
  EXPECT_NE(message_of(empty.status()).find("no keys"), std::string::npos) << empty.status();

  const std::string spaced_path = write_file("spaced", "good-key\n\nsecret with-space\n");
  const absl::StatusOr<ApiKeys> spaced = ApiKeys::load(spaced_path);
  ASSERT_FALSE(spaced.ok());
  EXPECT_EQ(spaced.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(message_of(spaced.status()).find(spaced_path + "\", line 3"), std::string::npos)
      << spaced.status();
  EXPECT_EQ(message_of(spaced.status()).find("secret"), std::string::npos) << spaced.status();

  const absl::StatusOr<ApiKeys> directory = ApiKeys::load(::testing::TempDir());
  ASSERT_FALSE(directory.ok());
  EXPECT_EQ(directory.status().code(), absl::StatusCode::kInvalidArgument) << directory.status();
}

}  // namespace
}  // namespace longnet::server
