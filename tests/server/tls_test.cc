#include "security/tls.h"

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace longnet::server {
namespace {

namespace fs = std::filesystem;

// A throwaway CA, a server certificate it signs, an unrelated key and an encrypted copy of the server key,
// made once per test process with the openssl command-line tool.
class Tls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::path(::testing::TempDir()) / ("longnet_tls_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    const std::string d = dir_.string();
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    const std::string script =
        "cd '" + d + "' && openssl version >/dev/null 2>&1 && {" + " openssl req -x509" + ec +
        " -keyout ca.key -out ca.pem -days 2 -subj /CN=longnet-test-ca &&" + " openssl req" + ec +
        " -keyout server.key -out server.csr -subj /CN=localhost &&" +
        " openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 "
        "&&" +
        " openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out other.key &&" +
        " openssl pkey -in server.key -out encrypted.key -aes256 -passout pass:longnet &&" +
        " cat server.pem ca.pem > chain.pem &&" +
        " printf 'not a certificate\\n' > garbage.pem; } >openssl.log 2>&1";
    generated_ = std::system(script.c_str()) == 0;
  }

  static void TearDownTestSuite() {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  void SetUp() override {
    if (!generated_)
      GTEST_SKIP() << "could not make test certificates with openssl (see " << path("openssl.log") << ")";
  }

  static std::string path(const std::string& name) { return (dir_ / name).string(); }

  static ServerConfig tls_config() {
    ServerConfig config;
    config.tls_cert = path("server.pem");
    config.tls_key = path("server.key");
    return config;
  }

  static void expect_error(const ServerConfig& config, absl::StatusCode code,
                           std::initializer_list<std::string> fragments) {
    const absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
        make_server_credentials(config);
    ASSERT_FALSE(credentials.ok()) << "expected an error";
    EXPECT_EQ(credentials.status().code(), code) << credentials.status();
    const std::string message(credentials.status().message());
    for (const std::string& fragment : fragments) {
      EXPECT_NE(message.find(fragment), std::string::npos) << "\"" << fragment << "\" not in: " << message;
    }
  }

  // gRPC itself accepts the credentials: a server with them starts listening on a free loopback port.
  static void expect_server_starts(const std::shared_ptr<grpc::ServerCredentials>& credentials) {
    grpc::CallbackGenericService service;  // a server needs a service to start; this one answers nothing
    grpc::ServerBuilder builder;
    builder.RegisterCallbackGenericService(&service);
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", credentials, &port);
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    ASSERT_NE(server, nullptr);
    EXPECT_GT(port, 0);
    server->Shutdown();
  }

  static inline fs::path dir_;
  static inline bool generated_ = false;
};

TEST_F(Tls, InsecureWithoutCertificate) {
  const absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      make_server_credentials(ServerConfig{});
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  ASSERT_NE(*credentials, nullptr);
  expect_server_starts(*credentials);
}

TEST_F(Tls, TlsFromPemFiles) {
  const absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      make_server_credentials(tls_config());
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  ASSERT_NE(*credentials, nullptr);
  expect_server_starts(*credentials);
}

TEST_F(Tls, TlsWithAFullChain) {
  ServerConfig config = tls_config();
  config.tls_cert = path("chain.pem");
  const absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      make_server_credentials(config);
  ASSERT_TRUE(credentials.ok()) << credentials.status();
}

TEST_F(Tls, MutualTls) {
  ServerConfig config = tls_config();
  config.tls_client_ca = path("ca.pem");
  const absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      make_server_credentials(config);
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  ASSERT_NE(*credentials, nullptr);
  expect_server_starts(*credentials);
}

TEST_F(Tls, MissingFilesAreNamed) {
  ServerConfig config = tls_config();
  config.tls_cert = path("absent.pem");
  expect_error(config, absl::StatusCode::kNotFound, {"--tls-cert", path("absent.pem")});
  config = tls_config();
  config.tls_key = path("absent.key");
  expect_error(config, absl::StatusCode::kNotFound, {"--tls-key", path("absent.key")});
  config = tls_config();
  config.tls_client_ca = path("absent-ca.pem");
  expect_error(config, absl::StatusCode::kNotFound, {"--tls-client-ca", path("absent-ca.pem")});
}

TEST_F(Tls, GarbagePemIsNamed) {
  ServerConfig config = tls_config();
  config.tls_cert = path("garbage.pem");
  expect_error(config, absl::StatusCode::kInvalidArgument,
               {"--tls-cert", path("garbage.pem"), "certificate"});
  config = tls_config();
  config.tls_key = path("garbage.pem");
  expect_error(config, absl::StatusCode::kInvalidArgument, {"--tls-key", path("garbage.pem"), "private key"});
  config = tls_config();
  config.tls_client_ca = path("garbage.pem");
  expect_error(config, absl::StatusCode::kInvalidArgument, {"--tls-client-ca", path("garbage.pem")});
  config = tls_config();
  config.tls_cert = path("server.key");  // a key where the certificate belongs
  expect_error(config, absl::StatusCode::kInvalidArgument, {"--tls-cert", path("server.key")});
}

TEST_F(Tls, KeyMustMatchTheCertificate) {
  ServerConfig config = tls_config();
  config.tls_key = path("other.key");
  expect_error(config, absl::StatusCode::kInvalidArgument,
               {path("other.key"), path("server.pem"), "not the private key"});
}

TEST_F(Tls, EncryptedKeyIsRefusedWithoutPrompting) {
  ServerConfig config = tls_config();
  config.tls_key = path("encrypted.key");
  expect_error(config, absl::StatusCode::kInvalidArgument, {"--tls-key", path("encrypted.key"), "encrypted"});
}

TEST_F(Tls, HalfConfiguredTlsIsRefused) {
  ServerConfig config;
  config.tls_key = path("server.key");
  expect_error(config, absl::StatusCode::kInvalidArgument, {"--tls-cert"});
  config = ServerConfig{};
  config.tls_cert = path("server.pem");
  expect_error(config, absl::StatusCode::kInvalidArgument, {"--tls-key"});
  config = ServerConfig{};
  config.tls_client_ca = path("ca.pem");
  expect_error(config, absl::StatusCode::kInvalidArgument, {"--tls-cert"});
}

}  // namespace
}  // namespace longnet::server
